//! The examples, run as a user runs them: `cargo test` builds them first.

use std::process::Command;

fn example(name: &str) -> Command {
    // target/debug/deps/quickstart-<hash> -> target/debug/examples/<name>
    let mut path = std::env::current_exe().unwrap();
    path.pop();
    path.pop();
    path.push("examples");
    path.push(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(path.exists(), "build the example first: cargo build --example {name} ({})", path.display());
    let mut command = Command::new(path);
    command.env_remove("RUST_LOG");
    command
}

fn quickstart() -> Command {
    example("quickstart")
}

/// The table row of one route: `GET /articles   200   ok ...`.
fn row<'a>(stdout: &'a str, route: &str) -> Vec<&'a str> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&format!("GET {route} ")) && !l.contains("Server-Timing"))
        .unwrap_or_else(|| panic!("no row for {route}:\n{stdout}"));
    line.split_whitespace().collect()
}

#[test]
fn the_demo_prints_each_budget_against_its_use() {
    let out = quickstart().env_remove("ZEN_MODE").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    // route, status, outcome, queries, db ms, peak KiB, http, elapsed ms, violations
    let ok = row(&stdout, "/articles");
    assert_eq!(ok[2..5], ["200", "ok", "1/2"], "{stdout}");
    let n_plus_one = row(&stdout, "/articles/n-plus-one");
    assert_eq!(n_plus_one[2..5], ["200", "exceeded", "9/5"], "{stdout}");
    assert!(n_plus_one.join(" ").ends_with("max_queries = 5: used 9 queries"), "{stdout}");
    assert!(stdout.contains("N+1 in GET /articles/n-plus-one: 8x"), "{stdout}");
    assert!(stdout.contains("from quickstart::articles_n_plus_one"), "the call site is named: {stdout}");
    assert!(row(&stdout, "/reports/slow").join(" ").contains("max_db_ms = 20: used"), "{stdout}");
    let export = row(&stdout, "/export.csv");
    assert!(export.join(" ").contains("max_mem_kb = 512: used"), "{stdout}");
    let weather = row(&stdout, "/weather");
    assert_eq!(weather[2..4], ["200", "ok"], "the client's timeout saved it: {stdout}");
    assert_eq!(weather[7], "1/1", "{stdout}");
    let elapsed: u64 = weather[8].split('/').next().unwrap().parse().unwrap();
    assert!((290..1000).contains(&elapsed), "cut at the 300 ms client timeout, not the 2 s service: {stdout}");
    assert!(stdout.contains("GET /weather called an external service from the handler"), "{stdout}");
    assert!(stdout.contains("Server-Timing: queries;desc=") && stdout.contains("db;dur="), "{stdout}");
}

#[test]
fn in_enforce_the_demo_answers_503_for_the_blown_budgets() {
    let out = quickstart().env("ZEN_MODE", "enforce").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert_eq!(row(&stdout, "/articles")[2], "200", "{stdout}");
    for route in ["/articles/n-plus-one", "/reports/slow", "/export.csv"] {
        assert_eq!(row(&stdout, route)[2..4], ["503", "exceeded"], "{route}: {stdout}");
    }
    assert_eq!(row(&stdout, "/weather")[2], "200", "{stdout}");
}

#[test]
fn with_serve_the_demo_keeps_serving() {
    use std::io::{BufRead, BufReader, Read, Write};

    /// Stops the server however the test ends.
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    let mut child = Killed(
        quickstart()
            .args(["--serve", "127.0.0.1:0"])
            .env_remove("ZEN_MODE")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let address =
        first.split("listening on http://").nth(1).and_then(|r| r.split(';').next()).expect(&first).to_owned();
    for _ in 0..2 {
        let mut socket = std::net::TcpStream::connect(&address).unwrap();
        write!(socket, "GET /articles HTTP/1.1\r\nhost: {address}\r\nconnection: close\r\n\r\n").unwrap();
        let mut answer = String::new();
        socket.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.to_lowercase().contains("server-timing: queries;desc="), "{answer}");
    }
    let mut socket = std::net::TcpStream::connect(&address).unwrap();
    write!(socket, "GET /metrics HTTP/1.1\r\nhost: {address}\r\nconnection: close\r\n\r\n").unwrap();
    let mut metrics = String::new();
    socket.read_to_string(&mut metrics).unwrap();
    let ok = r#"zen_scopes_total{route="/articles",method="GET",kind="handler",mode="observe",outcome="ok"} 2"#;
    assert!(metrics.contains(ok), "both requests reached Prometheus's format: {metrics}");
    assert!(metrics.contains("# TYPE zen_scope_queries histogram"), "{metrics}");
    // The dashboard, at the address printed with its token.
    let line =
        lines.by_ref().map_while(Result::ok).find(|l| l.contains("/_zen?token=")).expect("the dashboard's address");
    let token = line.rsplit("token=").next().unwrap().trim();
    assert_eq!(token.len(), 32, "{line}");
    let mut socket = std::net::TcpStream::connect(&address).unwrap();
    write!(
        socket,
        "GET /_zen/api/overview HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {token}\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut overview = String::new();
    socket.read_to_string(&mut overview).unwrap();
    assert!(overview.starts_with("HTTP/1.1 200"), "{overview}");
    let body: serde_json::Value = serde_json::from_str(overview.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    let articles = body["routes"].as_array().unwrap().iter().find(|r| r["name"] == "GET /articles").expect("the route");
    assert_eq!(articles["scopes"], 2, "{body}");
    assert_eq!(articles["figures"]["queries"]["limit"], 2, "{body}");
    let mut socket = std::net::TcpStream::connect(&address).unwrap();
    write!(socket, "GET /_zen/api/overview HTTP/1.1\r\nhost: {address}\r\nconnection: close\r\n\r\n").unwrap();
    let mut refused = String::new();
    socket.read_to_string(&mut refused).unwrap();
    assert!(refused.starts_with("HTTP/1.1 404"), "no token, no dashboard: {refused}");
    let logged = lines.map_while(Result::ok).find(|l| l.starts_with("GET /articles ")).unwrap_or_default();
    drop(child);
    assert!(logged.contains(" ok "), "each request is printed as it ends: {logged}");
}

#[test]
fn a_bad_zen_mode_stops_the_demo_at_start_up_naming_the_variable() {
    let out = quickstart().env("ZEN_MODE", "enforced").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid ZEN_MODE=\"enforced\""), "{stderr}");
    assert!(stderr.contains("\"observe\", \"enforce\", \"strict\""), "{stderr}");
}

#[test]
fn the_jobs_example_answers_at_once_and_runs_each_job_under_its_budget() {
    let out = example("jobs").env_remove("ZEN_MODE").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("both sign-ups welcomed by the worker"), "{stdout}");
    let rows = |name: &str| -> Vec<Vec<String>> {
        stdout
            .lines()
            .filter(|l| l.starts_with(name))
            .map(|l| l.split_whitespace().map(str::to_owned).collect())
            .collect()
    };
    // scope (two words for the request), kind, attempt, queries, http, elapsed, outcome
    let requests = rows("POST /signup  ");
    assert_eq!(requests.len(), 2, "{stdout}");
    for r in &requests {
        assert_eq!(r[2..6], ["handler", "-", "2/2", "0/-"], "the insert and the push: {stdout}");
        let elapsed: u64 = r[6].split('/').next().unwrap().parse().unwrap();
        assert!(elapsed < 200, "the request did not wait for the mail: {stdout}");
    }
    let jobs = rows("welcome ");
    assert_eq!(jobs.len(), 2, "{stdout}");
    for j in &jobs {
        assert_eq!(j[1..5], ["job", "1", "1/2", "1/1"], "{stdout}");
        let elapsed: u64 = j[5].split('/').next().unwrap().parse().unwrap();
        assert!(elapsed >= 300, "the job made the 300 ms call: {stdout}");
        assert_eq!(j[6], "ok", "{stdout}");
    }
}
