//! The demo, run as a user runs it: `cargo test` builds the examples first.

use std::process::Command;

fn quickstart() -> Command {
    // target/debug/deps/quickstart-<hash> -> target/debug/examples/quickstart
    let mut path = std::env::current_exe().unwrap();
    path.pop();
    path.pop();
    path.push("examples");
    path.push(format!("quickstart{}", std::env::consts::EXE_SUFFIX));
    assert!(path.exists(), "build the example first: cargo build --example quickstart ({})", path.display());
    let mut command = Command::new(path);
    command.env_remove("RUST_LOG");
    command
}

#[test]
fn the_demo_prints_each_budget_against_its_use() {
    let out = quickstart().env_remove("ZEN_MODE").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let line =
        |name: &str| stdout.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no row {name}:\n{stdout}"));
    assert!(line("quickstart::list_articles ").contains(" ok "), "{stdout}");
    assert!(line("quickstart::list_articles_n_plus_one").contains("max_queries = 5: used 9 queries"), "{stdout}");
    assert!(line("quickstart::slow_report").contains("max_db_ms = 20"), "{stdout}");
    assert!(line("quickstart::slow_handler").contains("timeout_ms = 50"), "{stdout}");
}

#[test]
fn in_enforce_the_demo_cuts_the_blown_budgets() {
    let out = quickstart().env("ZEN_MODE", "enforce").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("list_articles_n_plus_one   -> error: budget exceeded"), "{stdout}");
    assert!(stdout.contains("slow_report                -> error: budget exceeded"), "{stdout}");
    assert!(stdout.contains("slow_handler               -> error: budget exceeded"), "{stdout}");
}

#[test]
fn a_bad_zen_mode_stops_the_demo_at_start_up_naming_the_variable() {
    let out = quickstart().env("ZEN_MODE", "enforced").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid ZEN_MODE=\"enforced\""), "{stderr}");
    assert!(stderr.contains("\"observe\", \"enforce\", \"strict\""), "{stderr}");
}
