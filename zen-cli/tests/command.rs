//! The `zen suggest` command on reports written by `JsonLines` from real
//! scopes, and on a file that is not one.

use std::process::Command;

use zen_runtime::sinks::JsonLines;
use zen_runtime::{instrument, zen};

#[zen(name = "job digest", kind = "job")]
async fn digest(users: u32) {
    for _ in 0..users {
        instrument::query("sqlite", "SELECT email FROM users WHERE id = ?").unwrap().finish(true);
    }
}

fn zen(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_zen")).args(args).output().unwrap()
}

/// Every sink sees every report of the process: the tests that write
/// reports run one at a time.
static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[zen(name = "job export", kind = "job")]
async fn export(rows: u32, audit: bool) {
    for _ in 0..rows {
        instrument::query("sqlite", "SELECT line FROM orders WHERE id = ?").unwrap().finish(true);
    }
    if audit {
        instrument::query("sqlite", "INSERT INTO audit (what) VALUES (?)").unwrap().finish(true);
    }
}

/// The reports of 30 runs of `export(rows, audit)`, written by `JsonLines`.
async fn reports_of(path: &std::path::Path, rows: u32, audit: bool) {
    let _ = std::fs::remove_file(path);
    let sink = JsonLines::builder(path).open().unwrap();
    for _ in 0..30 {
        export(rows, audit).await;
    }
    sink.flush();
}

#[tokio::test]
async fn compares_two_runs_and_fails_on_what_grew() {
    let _alone = ALONE.lock().await;
    let dir = std::env::temp_dir().join(format!("zen-cli-diff-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (before, after) = (dir.join("before.jsonl"), dir.join("after.jsonl"));
    reports_of(&before, 2, false).await;
    reports_of(&after, 5, true).await;
    let path = |p: &std::path::Path| p.to_str().unwrap().to_owned();

    let out = zen(&["diff", "--before", &path(&before), "--after", &path(&after), "--fail-above", "20"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("job export (job, 30 reports before, 30 after)"), "{text}");
    let row = text.lines().find(|l| l.trim_start().starts_with("max_queries")).unwrap();
    assert!(row.contains("2 → 6") && row.ends_with("+200.0%"), "{row}");
    assert!(text.contains("new: INSERT INTO audit (what) VALUES (...) (0 → 1 per report)"), "{text}");
    assert!(text.contains("grew: SELECT line FROM orders WHERE id = ? (2 → 5 per report)"), "{text}");
    assert!(text.contains("failed: --fail-above 20%"), "{text}");

    // A run against itself (times of scopes this short move by more than 20% between runs).
    let out = zen(&["diff", "--before", &path(&before), "--after", &path(&before), "--fail-above", "20", "--markdown"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("| `max_queries` | 2 → 2 | 2 → 2 | 2 → 2 | +0.0% |"), "{text}");
    assert!(!text.contains("new:") && !text.contains("grew:") && text.contains("passed: --fail-above 20%"));

    let out = zen(&["diff", &path(&before)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("say whose it is with --before or --after"));
}

#[tokio::test]
async fn suggests_a_budget_from_a_file_of_reports_and_names_a_bad_line() {
    let _alone = ALONE.lock().await;
    let dir = std::env::temp_dir().join(format!("zen-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("reports.jsonl");
    let _ = std::fs::remove_file(&path);
    let sink = JsonLines::builder(&path).open().unwrap();
    for users in 1..=200 {
        digest(users % 10).await;
    }
    sink.flush();
    drop(sink);

    let out = zen(&["suggest", "--margin", "20", path.to_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        text.contains(
            "200 successful reports (0 left out: errors, cancelled, panicked, cut by enforce), 1 scopes; proposed = p99 + 20%"
        ),
        "{text}"
    );
    assert!(text.contains("job digest (job, 200 successful reports)"), "{text}");
    assert!(!text.contains("covers"), "a job's scope is its fn's: {text}");
    // 0 to 9 queries: p99 9, + 20% = 10.8, rounded up to 11.
    let row =
        |key: &str| text.lines().map(|l| l.split_whitespace().collect::<Vec<_>>()).find(|w| w.first() == Some(&key));
    assert_eq!(row("max_queries").unwrap(), ["max_queries", "4", "9", "9", "11"], "{text}");
    assert!(text.contains("  #[zen(max_queries = 11, ") && text.contains(", timeout_ms = "), "{text}");

    let bad = dir.join("bad.jsonl");
    let good_line = std::fs::read_to_string(&path).unwrap().lines().next().unwrap().to_owned();
    std::fs::write(&bad, format!("{good_line}\n{{\"name\": 3}}\n")).unwrap();
    let out = zen(&["suggest", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8(out.stderr).unwrap();
    assert!(e.starts_with(&format!("zen: {}:2: no `name` string", bad.display())), "{e}");
    let out = zen(&["suggest", "--margin", "lots", bad.to_str().unwrap()]);
    assert!(String::from_utf8(out.stderr).unwrap().contains("--margin takes a whole percentage"));

    // Fewer samples than asked for: no line, and why.
    let out = zen(&["suggest", "--min-samples", "201", path.to_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("not enough data: 200 successful reports, at least 201 needed (--min-samples)"), "{text}");
    assert!(!text.contains("#[zen("), "{text}");
    let out = zen(&["suggest", "--min-samples", "0", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("--min-samples takes a count of 1 or more"));
}

/// `promtool` (Debian's prometheus package; `.ci/run` installs it), or
/// `None` with the reason, unless `ZEN_TEST_REQUIRE_SERVICES=1`.
fn promtool() -> Option<String> {
    let binary = std::env::var("ZEN_TEST_PROMTOOL").unwrap_or_else(|_| "promtool".into());
    if Command::new(&binary).arg("--version").output().is_ok() {
        return Some(binary);
    }
    let required = std::env::var("ZEN_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1");
    assert!(!required, "promtool (`{binary}`) is required (ZEN_TEST_REQUIRE_SERVICES=1) but is not installed");
    eprintln!("skipped: promtool (`{binary}`) is not installed; set ZEN_TEST_REQUIRE_SERVICES=1 to fail instead");
    None
}

#[test]
fn the_rules_pass_promtools_check_and_its_unit_tests_and_a_bad_flag_is_named() {
    let bad = zen(&["rules", "--short", "5min"]);
    assert_eq!(bad.status.code(), Some(2));
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(said.contains("--short 5min: not a Prometheus duration"), "{said}");

    let out = zen(&["rules"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let Some(promtool) = promtool() else { return };
    // The unit tests committed beside the file they test.
    let dir = std::env::temp_dir().join(format!("zen-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("zen-rules.yml"), &out.stdout).unwrap();
    let tests = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/rules/zen-rules_test.yml");
    std::fs::copy(tests, dir.join("zen-rules_test.yml")).unwrap();
    for args in [["check", "rules", "zen-rules.yml"], ["test", "rules", "zen-rules_test.yml"]] {
        let run = Command::new(&promtool).args(args).current_dir(&dir).output().unwrap();
        let said = format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
        assert!(run.status.success(), "promtool {args:?}: {said}");
        assert!(said.contains("SUCCESS"), "{said}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `zen lock report` on a verdict file: each format on stdout, a line that
/// is not a verdict named by file and line, a format it does not know
/// named. (`tests/lock.rs` in the workspace writes the file from real runs
/// and checks each format's content.)
#[test]
fn the_lock_report_renders_each_format_and_names_a_bad_line() {
    let dir = std::env::temp_dir().join(format!("zen-lock-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("verdict.jsonl");
    let regressed = r#"{"zen_lock_verdict":1,"lock":"zen.lock","line":7,"test":"app::lists","scope":"GET /a","verdict":"regressed","over":[{"about":"queries","phrase":"2 → 3 queries","subject":null,"locked":2,"seen":3,"site":null}],"under":[]}"#;
    let passed = r#"{"zen_lock_verdict":1,"lock":"zen.lock","line":12,"test":"app::shows","scope":"GET /b","verdict":"passed","over":[],"under":[{"about":"queries","phrase":"4 → 1 queries","subject":null,"locked":4,"seen":1,"site":null}]}"#;
    std::fs::write(&file, format!("{regressed}\n{passed}\n")).unwrap();
    let path = file.to_str().unwrap();

    let out = zen(&["lock", "report", "--format", "github", path]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text,
        "::error file=zen.lock,line=7,title=zen lock%3A GET /a::GET /a (test app::lists): 2 → 3 queries\n"
    );

    let out = zen(&["lock", "report", path]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(
            "### zen lock: failed\n\n2 scopes judged: 1 used more than their entry, 0 new, 1 can tighten."
        )
    );
    assert!(text.contains("| `GET /b` | `app::shows` | `4 → 1 queries` |"), "{text}");

    let out = zen(&["lock", "report", "--format", "junit", path]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("<testsuites name=\"zen lock\" tests=\"2\" failures=\"1\" errors=\"0\">"), "{text}");

    std::fs::write(&file, format!("{regressed}\n{{\"name\":\"GET /a\"}}\n")).unwrap();
    let out = zen(&["lock", "report", path]);
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains(&format!("{path}:2: not a verdict of zen's lock")), "{said}");

    let out = zen(&["lock", "report", "--format", "xml", path]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--format takes sarif, github, junit or markdown; found `xml`")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
