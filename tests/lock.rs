//! The budget lock (`ZEN_LOCK`, `zen.lock`) and exemptions.
//!
//! The lock acts when a process ends, so each case runs this test binary
//! again as a child (`child`, ignored in a normal run, and a no-op unless
//! `ZEN_LOCK_CHILD` is set) with its own lock file, and reads the child's exit code, its
//! stderr and the file.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use zen_runtime::db::SqlitePool;
use zen_runtime::{Budget, testing, zen};

/// The articles route of a small app: `queries` lookups of one statement,
/// then, if asked, a statement the lock has not seen, and one run twice
/// with the same value (a duplicate).
#[zen(name = "GET /articles", n_plus_one = 5)]
async fn articles(pool: &SqlitePool, queries: u32, extra: bool, duplicate: bool) -> Result<(), sqlx::Error> {
    for id in 0..queries {
        sqlx::query("SELECT name FROM users WHERE id = ?").bind(i64::from(id)).fetch_optional(pool).await?;
    }
    if extra {
        sqlx::query("SELECT title FROM articles WHERE author_id = ?").bind(1).fetch_all(pool).await?;
    }
    for _ in 0..if duplicate { 2 } else { 0 } {
        sqlx::query("SELECT count(*) FROM users WHERE name = ?").bind("ann").fetch_one(pool).await?;
    }
    Ok(())
}

/// Runs the scope a parent asked for through the environment, and prints
/// its report. Only the other tests here run it, as a child process.
#[test]
#[ignore = "the other tests of this file run it as a child process"]
fn child() {
    if std::env::var_os("ZEN_LOCK_CHILD").is_none() {
        return;
    }
    let var = |name: &str| std::env::var(name).ok();
    let queries: u32 = var("ZEN_LOCK_QUERIES").map_or(2, |v| v.parse().unwrap());
    let extra = var("ZEN_LOCK_EXTRA").is_some();
    let duplicate = var("ZEN_LOCK_DUPLICATE").is_some();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let pool = common::sqlite_pool_at(&common::sqlite_url(), 1).await;
        let scope = var("ZEN_LOCK_SCOPE");
        let (result, reports) = match scope {
            // A scope of another name, for the writers that run at once.
            Some(name) => {
                let jobs = zen_runtime::jobs::Jobs::builder().start().unwrap();
                let pool = pool.clone();
                jobs.spawn(name, move || async move {
                    for _ in 0..queries {
                        sqlx::query("SELECT 1").execute(&pool).await?;
                    }
                    Ok::<_, sqlx::Error>(())
                })
                .unwrap();
                assert!(jobs.shutdown(std::time::Duration::from_secs(10)).await.abandoned.is_empty());
                (Ok(()), Vec::new())
            }
            None => testing::collect(articles(&pool, queries, extra, duplicate)).await,
        };
        result.unwrap();
        // The lock was read when the scope ended: how much memory it took.
        if var("ZEN_LOCK_MEMORY").is_some() {
            let status = std::fs::read_to_string("/proc/self/status").unwrap();
            let peak = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).unwrap().trim().to_owned();
            eprintln!("peak resident set: {peak}");
        }
        // The parent reads the reports from the child's output.
        #[allow(clippy::print_stdout)]
        for report in reports {
            println!("{report}");
        }
    });
}

struct Run {
    file: PathBuf,
}

impl Run {
    fn new(name: &str) -> Run {
        let dir = std::env::temp_dir().join(format!("zen-lock-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("zen.lock");
        let _ = std::fs::remove_file(&file);
        Run { file }
    }

    fn command(&self, mode: &str, vars: &[(&str, &str)]) -> Command {
        let mut c = Command::new(std::env::current_exe().unwrap());
        c.args(["--ignored", "--exact", "child", "--nocapture", "--test-threads=1"])
            .env("ZEN_LOCK_CHILD", "1")
            .env("ZEN_LOCK", mode)
            .env("ZEN_LOCK_FILE", &self.file)
            .env_remove("ZEN_MODE")
            .env_remove("ZEN_LOCK_SCOPE")
            .env_remove("ZEN_LOCK_REPORT");
        for (k, v) in vars {
            c.env(k, v);
        }
        c
    }

    fn run(&self, mode: &str, vars: &[(&str, &str)]) -> Output {
        self.command(mode, vars).output().unwrap()
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.file).unwrap_or_default()
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[track_caller]
fn ok(o: &Output) {
    assert!(o.status.success(), "the child failed ({:?}):\n{}\n{}", o.status, stdout(o), stderr(o));
}

#[track_caller]
fn fails(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(1), "the child should fail with 1:\n{}\n{}", stdout(o), stderr(o));
    stderr(o)
}

const ENTRY: &str = "[tests.\"lock::child\".\"GET /articles\"]";

#[test]
fn update_writes_check_fails_on_more_with_a_diff_and_update_only_tightens() {
    let run = Run::new("ratchet");
    ok(&run.run("update", &[("ZEN_LOCK_QUERIES", "2")]));
    let written = run.text();
    assert!(written.contains(&format!("{ENTRY}\nqueries = 2\n")), "{written}");
    assert!(written.contains("\"SELECT name FROM users WHERE id = ?\" = 2"), "{written}");
    assert!(!written.contains("bind") && !written.contains("= 0\n"), "no value is kept: {written}");

    ok(&run.run("check", &[("ZEN_LOCK_QUERIES", "2")]));
    assert_eq!(run.text(), written, "check never writes");

    let e = fails(&run.run("check", &[("ZEN_LOCK_QUERIES", "2"), ("ZEN_LOCK_EXTRA", "1")]));
    assert!(e.contains("lock::child › GET /articles: 2 → 3 queries"), "{e}");
    assert!(e.contains("new: SELECT title FROM articles WHERE author_id = ?"), "{e}");
    assert!(e.contains(&run.file.display().to_string()), "names the file: {e}");

    let e = fails(&run.run("check", &[("ZEN_LOCK_QUERIES", "6")]));
    assert!(e.contains("2 → 6 queries"), "{e}");
    assert!(e.contains("new N+1 at") && e.contains("tests/lock.rs:"), "an N+1 names its call site: {e}");

    let e = fails(&run.run("check", &[("ZEN_LOCK_QUERIES", "2"), ("ZEN_LOCK_DUPLICATE", "1")]));
    let duplicate = "new duplicate at lock::articles (tests/lock.rs:";
    assert!(e.contains(duplicate) && e.contains("SELECT count(*) FROM users WHERE name = ?"), "{e}");
    assert!(!e.contains("ann"), "no value: {e}");

    let o = run.run("check", &[("ZEN_LOCK_QUERIES", "1")]);
    ok(&o);
    assert!(stderr(&o).contains("can tighten") && stderr(&o).contains("2 → 1 queries"), "{}", stderr(&o));

    // `update` never loosens: the run fails and the entry stays.
    let e = fails(&run.run("update", &[("ZEN_LOCK_QUERIES", "3")]));
    assert!(e.contains("2 → 3 queries"), "{e}");
    assert_eq!(run.text(), written);
    // It tightens.
    ok(&run.run("update", &[("ZEN_LOCK_QUERIES", "1")]));
    assert!(run.text().contains(&format!("{ENTRY}\nqueries = 1\n")), "{}", run.text());
    // `reset` accepts what the run used.
    ok(&run.run("reset", &[("ZEN_LOCK_QUERIES", "3")]));
    assert!(run.text().contains(&format!("{ENTRY}\nqueries = 3\n")), "{}", run.text());

    // A scope the lock does not know fails a check.
    let e = fails(&run.run("check", &[("ZEN_LOCK_SCOPE", "job nightly")]));
    assert!(e.contains("not in the lock") && e.contains("lock::child › job nightly"), "{e}");
}

#[test]
fn processes_writing_at_once_lose_no_entry() {
    let run = Run::new("concurrent");
    let children: Vec<_> = (0..8)
        .map(|i| {
            let scope = format!("job writer-{i}");
            run.command("update", &[("ZEN_LOCK_SCOPE", scope.as_str()), ("ZEN_LOCK_QUERIES", "1")])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        ok(&child.wait_with_output().unwrap());
    }
    let text = run.text();
    for i in 0..8 {
        assert!(text.contains(&format!("[tests.\"lock::child\".\"job writer-{i}\"]")), "writer {i} lost:\n{text}");
    }
    ok(&run.run("check", &[("ZEN_LOCK_SCOPE", "job writer-3"), ("ZEN_LOCK_QUERIES", "1")]));
}

#[test]
fn a_broken_lock_file_is_an_error_naming_file_and_line_and_is_left_as_it_was() {
    let run = Run::new("broken");
    ok(&run.run("update", &[]));
    let broken = run.text().replacen("queries = 2", "queries = -2", 1);
    let line = broken.lines().position(|l| l == "queries = -2").unwrap() + 1;
    std::fs::write(&run.file, &broken).unwrap();
    for mode in ["check", "update", "reset"] {
        let e = fails(&run.run(mode, &[]));
        assert!(e.contains(&format!("{}:{line}: ", run.file.display())), "{mode}: {e}");
        assert!(e.contains("`queries` must be a whole number"), "{e}");
        assert_eq!(run.text(), broken, "{mode} left the file alone");
    }
    let e = fails(&run.run("chek", &[]));
    assert!(e.contains("ZEN_LOCK=\"chek\""), "a bad mode names the variable: {e}");
}

#[test]
fn the_lock_files_exemptions_accept_an_n_plus_one_until_their_date() {
    let run = Run::new("exempt");
    let exemption = |until: &str| {
        format!(
            "version = 1\n\n[[exempt]]\nscope = \"GET /articles\"\nn_plus_one = true\n\
             statement = \"SELECT name FROM users WHERE id = ?\"\nreason = \"paged in #412\"\nuntil = \"{until}\"\n"
        )
    };
    std::fs::write(&run.file, exemption("2999-12-31")).unwrap();
    let o = run.run("update", &[("ZEN_LOCK_QUERIES", "6")]);
    ok(&o);
    assert!(
        stdout(&o).contains("exempted: N+1 of `SELECT name FROM users WHERE id = ?`: paged in #412 (until 2999-12-31)"),
        "{}",
        stdout(&o)
    );
    let text = run.text();
    assert!(text.contains("queries = 6") && !text.contains(".n_plus_one]"), "the accepted N+1 is not locked: {text}");
    assert!(text.contains("reason = \"paged in #412\""), "the exemption is kept: {text}");

    // Past its date, strict fails on it.
    std::fs::write(&run.file, run.text().replace("2999-12-31", "2020-01-01")).unwrap();
    let o = run.run("check", &[("ZEN_LOCK_QUERIES", "6"), ("ZEN_MODE", "strict")]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("exemption expired: N+1 of"), "{}", stderr(&o));
}

// Exemptions written in the attribute, in this process.

#[zen(
    n_plus_one = 3,
    max_queries = 4,
    exempt(n_plus_one, statement = "select name from users where id = $1", reason = "paged in #412"),
    exempt(
        budget = "max_queries",
        statement = "SELECT name FROM users WHERE id = ?",
        reason = "known",
        until = "2999-01-01"
    )
)]
async fn exempted(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    for id in 0..6 {
        sqlx::query("SELECT name FROM users WHERE id = ?").bind(id).fetch_optional(pool).await?;
    }
    Ok(())
}

#[zen(
    n_plus_one = 3,
    mode = "strict",
    exempt(n_plus_one, call_site = "tests/lock.rs", reason = "was paged", until = "2021-06-30")
)]
async fn expired(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    for id in 0..6 {
        sqlx::query("SELECT name FROM users WHERE id = ?").bind(id).fetch_optional(pool).await?;
    }
    Ok(())
}

#[zen(n_plus_one = 3, max_queries = 4)]
async fn not_exempted(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    for id in 0..6 {
        sqlx::query("SELECT name FROM users WHERE id = ?").bind(id).fetch_optional(pool).await?;
    }
    Ok(())
}

#[tokio::test]
async fn the_attributes_exemptions_are_listed_and_expire() {
    let pool = common::sqlite_pool_at(&common::sqlite_url(), 1).await;
    let (_, reports) = testing::collect(not_exempted(&pool)).await;
    let report = &reports[0];
    assert_eq!(report.n_plus_one.len(), 1);
    assert!(report.violation(Budget::Queries).is_some(), "{report}");

    let (result, reports) = testing::collect(exempted(&pool)).await;
    result.unwrap();
    let report = &reports[0];
    assert!(report.n_plus_one.is_empty(), "{report}");
    assert!(report.violations.is_empty() && report.within_budget(), "{report}");
    assert_eq!(report.figures.queries(), 6, "the figures are what happened");
    assert_eq!(report.exemptions.len(), 2, "{report}");
    let text = report.to_string();
    assert!(text.contains("exempted: N+1 of `select name from users where id = $1`: paged in #412"), "{text}");
    assert!(text.contains("exempted: `max_queries` overrun of"), "{text}");

    // Past its date: the suspect is reported again and strict panics.
    let pool2 = pool.clone();
    let panic = tokio::spawn(async move { testing::collect(expired(&pool2)).await }).await.unwrap_err();
    let message = panic.into_panic();
    let message = message.downcast_ref::<String>().unwrap();
    assert!(message.contains("exemption expired: N+1 at tests/lock.rs: was paged (until 2021-06-30)"), "{message}");
}

#[test]
fn a_byte_that_is_not_utf8_is_an_error_naming_its_line() {
    let run = Run::new("utf8");
    ok(&run.run("update", &[]));
    // A fingerprint cut inside a multi-byte character, as a truncated file is.
    let text = run.text();
    let line = text.lines().position(|l| l.starts_with("\"SELECT")).unwrap() + 1;
    let mut bytes = text.into_bytes();
    let at = bytes.windows(7).position(|w| w == b"\"SELECT").unwrap() + 1;
    bytes.splice(at..at, [0xE2, 0x80]);
    std::fs::write(&run.file, &bytes).unwrap();
    for mode in ["check", "update"] {
        let e = fails(&run.run(mode, &[]));
        assert!(e.contains(&format!("{}:{line}: ", run.file.display())), "{mode}: {e}");
        assert!(e.contains("UTF-8"), "{e}");
        assert_eq!(std::fs::read(&run.file).unwrap(), bytes, "{mode} left the file alone");
    }
}

/// KiB in a `/proc/self/status` line such as `VmHWM:   12345 kB`.
fn kib(stderr: &str) -> u64 {
    let line = stderr.lines().find_map(|l| l.strip_prefix("peak resident set:")).expect("the child says its peak");
    line.trim().trim_end_matches("kB").trim().parse().unwrap()
}

#[test]
fn a_large_lock_is_checked_within_a_few_times_its_size() {
    let run = Run::new("large");
    ok(&run.run("update", &[]));
    let empty = kib(&stderr(&run.run("check", &[("ZEN_LOCK_MEMORY", "1")])));
    // 20 MB of other tests' entries, as a long-lived project's lock grows:
    // many scopes, each with its statements.
    let mut text = run.text();
    let mut n = 0;
    while text.len() < 20 << 20 {
        text.push_str(&format!("\n[tests.\"app::test_{n}\".\"GET /items/{n}\"]\nqueries = 12\nmemory_kib = 128\n"));
        text.push_str(&format!("\n[tests.\"app::test_{n}\".\"GET /items/{n}\".statements]\n"));
        for s in 0..10 {
            text.push_str(&format!("\"SELECT id, name, price FROM items_{s} WHERE owner = ? AND kind = ?\" = {s}\n"));
        }
        n += 1;
    }
    std::fs::write(&run.file, &text).unwrap();
    let large = kib(&stderr(&run.run("check", &[("ZEN_LOCK_MEMORY", "1")])));
    let size_kib = u64::try_from(text.len()).unwrap() / 1024;
    eprintln!("a lock of {size_kib} KiB took {} KiB more to check", large - empty);
    assert!(large - empty < 4 * size_kib, "a lock of {size_kib} KiB took {} KiB more to check", large - empty);
}

#[test]
fn the_lock_is_replaced_whole_never_rewritten_in_place() {
    use std::os::unix::fs::MetadataExt;
    let run = Run::new("replaced");
    ok(&run.run("update", &[("ZEN_LOCK_QUERIES", "2")]));
    let before = std::fs::metadata(&run.file).unwrap().ino();
    ok(&run.run("update", &[("ZEN_LOCK_QUERIES", "1")]));
    assert!(run.text().contains(&format!("{ENTRY}\nqueries = 1\n")), "{}", run.text());
    assert_ne!(std::fs::metadata(&run.file).unwrap().ino(), before, "a new file took the old one's place");
    let dir: Vec<_> = std::fs::read_dir(run.file.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(dir, ["zen.lock"], "nothing is left beside it");
    // Writers killed at any point leave a lock that reads whole.
    let mut text = run.text();
    for n in 0..20_000 {
        text.push_str(&format!("\n[tests.\"app::t{n}\".\"GET /{n}\"]\nqueries = 1\n"));
    }
    std::fs::write(&run.file, &text).unwrap();
    for wait in [5, 20, 40, 80, 160] {
        let mut child = run.command("update", &[("ZEN_LOCK_QUERIES", "1")]).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(wait));
        let _ = child.kill();
        let _ = child.wait();
        let o = run.run("check", &[("ZEN_LOCK_QUERIES", "1")]);
        ok(&o);
    }
    // What a killed writer left beside it goes with the next write.
    std::fs::write(run.file.with_file_name("zen.lock.tmp"), "half a lock").unwrap();
    ok(&run.run("update", &[("ZEN_LOCK_QUERIES", "2"), ("ZEN_LOCK_SCOPE", "job after the kills")]));
    let dir: Vec<_> = std::fs::read_dir(run.file.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(dir, ["zen.lock"], "nothing is left beside it");
    assert!(run.text().contains("job after the kills"));
}

/// Naming the first N+1 call site of a process reads the program's debug
/// information: a few megabytes at most, never the whole of it.
#[test]
fn naming_a_call_site_costs_little_memory() {
    let run = Run::new("call-site-memory");
    let peak = |queries: &str| {
        let o = run.run("reset", &[("ZEN_LOCK_QUERIES", queries), ("ZEN_LOCK_MEMORY", "1")]);
        ok(&o);
        (kib(&stderr(&o)), stdout(&o))
    };
    let (without, _) = peak("2");
    let (with, report) = peak("6");
    assert!(report.contains("N+1") && report.contains("from lock::articles (tests/lock.rs:"), "{report}");
    eprintln!("naming the call site took {} KiB", with.saturating_sub(without));
    assert!(with < without + 32 * 1024, "naming the call site took {} KiB", with.saturating_sub(without));
}

/// The line of this file that holds `needle`, from 1.
fn line_of(needle: &str) -> u64 {
    let source = include_str!("lock.rs");
    let at = source.lines().position(|l| l.contains(needle) && !l.contains("line_of(")).unwrap();
    u64::try_from(at + 1).unwrap()
}

/// An N+1 and a statement added to a test: with `ZEN_LOCK_REPORT`, each is
/// a SARIF result at the line that runs it (valid against the SARIF 2.1.0
/// schema), an `::error` annotation, a failed JUnit test case and a row of
/// the Markdown summary; paths are relative to the repository, here one
/// whose workspace is in `svc/`.
#[test]
fn an_n_plus_one_added_in_a_test_is_a_sarif_result_at_its_line() {
    let root = std::env::temp_dir().join(format!("zen-lock-{}-verdict", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let workspace = root.join("svc");
    std::fs::create_dir_all(root.join(".git")).unwrap();
    std::fs::create_dir_all(workspace.join("tests")).unwrap();
    std::fs::write(workspace.join("tests/lock.rs"), include_str!("lock.rs")).unwrap();
    let run = Run { file: workspace.join("zen.lock") };
    let verdict = root.join("verdict.jsonl");
    let report = verdict.to_str().unwrap();
    ok(&run.run("update", &[("ZEN_LOCK_QUERIES", "2")]));
    ok(&run.run("check", &[("ZEN_LOCK_QUERIES", "2"), ("ZEN_LOCK_REPORT", report)]));
    let regressed = [("ZEN_LOCK_QUERIES", "6"), ("ZEN_LOCK_EXTRA", "1"), ("ZEN_LOCK_DUPLICATE", "1")];
    fails(&run.run("check", &[regressed.as_slice(), &[("ZEN_LOCK_REPORT", report)]].concat()));
    let text = std::fs::read_to_string(&verdict).unwrap();
    assert_eq!(text.lines().count(), 2, "one line per scope and run: {text}");
    let machine = [root.display().to_string(), env!("CARGO_MANIFEST_DIR").to_owned()];
    assert!(machine.iter().all(|path| !text.contains(path.as_str())), "no path of this machine: {text}");
    let verdicts = zen_cli::parse_verdicts([(report, text.as_str())]).unwrap();
    assert_eq!(verdicts.len(), 1, "the same scope of the same test is one verdict: {verdicts:?}");
    assert_eq!(verdicts[0].status, zen_cli::Status::Regressed);

    // SARIF: valid, and each regression at its place.
    let sarif: serde_json::Value =
        serde_json::from_str(&zen_cli::render_verdicts(&verdicts, zen_cli::ReportFormat::Sarif)).unwrap();
    let schema: serde_json::Value = serde_json::from_str(include_str!("sarif/sarif-schema-2.1.0.json")).unwrap();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(&sarif).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "not valid SARIF 2.1.0: {errors:#?}");
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    let at_of = |rule: &str, of: &str| {
        let r = results
            .iter()
            .find(|r| r["ruleId"] == rule && r["message"]["text"].as_str().unwrap().contains(of))
            .unwrap_or_else(|| panic!("no {rule} of {of}: {sarif:#}"));
        let place = &r["locations"][0]["physicalLocation"];
        (place["artifactLocation"]["uri"].as_str().unwrap().to_owned(), place["region"]["startLine"].as_u64())
    };
    let at = |rule: &str| at_of(rule, "");
    let lookup = line_of("sqlx::query(\"SELECT name FROM users WHERE id = ?\")");
    let added = line_of("sqlx::query(\"SELECT title FROM articles WHERE author_id = ?\")");
    assert_eq!(at("zen/new-n-plus-one"), ("svc/tests/lock.rs".to_owned(), Some(lookup)), "{sarif:#}");
    assert_eq!(at("zen/grown-statement"), ("svc/tests/lock.rs".to_owned(), Some(lookup)));
    assert_eq!(at_of("zen/new-statement", "SELECT title"), ("svc/tests/lock.rs".to_owned(), Some(added)));
    let twice = line_of("sqlx::query(\"SELECT count(*) FROM users WHERE name = ?\")");
    assert_eq!(at("zen/new-duplicate"), ("svc/tests/lock.rs".to_owned(), Some(twice)), "{sarif:#}");
    let (lock, line) = at("zen/queries");
    assert_eq!(lock, "svc/zen.lock");
    let entry = run.text().lines().position(|l| l == ENTRY).unwrap() + 1;
    assert_eq!(line, Some(u64::try_from(entry).unwrap()), "a figure without a statement is at its entry");
    let n_plus_one = results.iter().find(|r| r["ruleId"] == "zen/new-n-plus-one").unwrap();
    assert_eq!(n_plus_one["locations"][0]["logicalLocations"][0]["fullyQualifiedName"], "lock::articles");
    assert!(n_plus_one["message"]["text"].as_str().unwrap().contains("SELECT name FROM users WHERE id = ?"));
    let fingerprint = n_plus_one["partialFingerprints"]["zenLockFinding/v1"].clone();
    assert!(fingerprint.as_str().is_some_and(|f| f.len() == 16));

    // The same regression in another run has the same fingerprint (no line,
    // no count in it).
    let _ = std::fs::remove_file(&verdict);
    fails(&run.run("check", &[("ZEN_LOCK_QUERIES", "7"), ("ZEN_LOCK_REPORT", report)]));
    let again = zen_cli::parse_verdicts([(report, std::fs::read_to_string(&verdict).unwrap().as_str())]).unwrap();
    let again: serde_json::Value =
        serde_json::from_str(&zen_cli::render_verdicts(&again, zen_cli::ReportFormat::Sarif)).unwrap();
    let same = again["runs"][0]["results"].as_array().unwrap().iter().find(|r| r["ruleId"] == "zen/new-n-plus-one");
    assert_eq!(same.unwrap()["partialFingerprints"]["zenLockFinding/v1"], fingerprint);

    // GitHub: an `::error` line per regression, at the same places.
    let github = zen_cli::render_verdicts(&verdicts, zen_cli::ReportFormat::Github);
    let regressions = verdicts[0].over.len();
    assert_eq!(github.lines().count(), regressions, "{github}");
    assert!(github.lines().all(|l| l.starts_with("::error file=svc/")), "{github}");
    assert!(
        github.contains(&format!("::error file=svc/tests/lock.rs,line={lookup},title=zen lock%3A GET /articles::"))
    );
    assert!(github.contains(&format!("file=svc/zen.lock,line={entry},")), "{github}");

    // JUnit: a test case per locked scope, read by a real XML parser.
    let junit = zen_cli::render_verdicts(&verdicts, zen_cli::ReportFormat::Junit);
    let xml = roxmltree::Document::parse(&junit).unwrap();
    let cases: Vec<_> = xml.descendants().filter(|n| n.has_tag_name("testcase")).collect();
    assert_eq!(cases.len(), 1, "{junit}");
    assert_eq!(
        (cases[0].attribute("classname"), cases[0].attribute("name")),
        (Some("lock::child"), Some("GET /articles"))
    );
    let failure = cases[0].children().find(|n| n.has_tag_name("failure")).unwrap();
    let failure = failure.text().unwrap();
    assert!(failure.starts_with("2 → 9 queries\n") && failure.contains("\n2 → 6 of SELECT name FROM users"), "{junit}");
    assert!(failure.contains("\nnew duplicate at lock::articles (tests/lock.rs:"), "{junit}");
    assert_eq!(xml.root_element().attribute("failures"), Some("1"));

    // Markdown: what grew, with where.
    let markdown = zen_cli::render_verdicts(&verdicts, zen_cli::ReportFormat::Markdown);
    assert!(markdown.starts_with("### zen lock: failed"), "{markdown}");
    assert!(markdown.contains(&format!("| `svc/tests/lock.rs:{added}` |")), "{markdown}");
    let _ = std::fs::remove_dir_all(&root);
}
