//! What zen's layer costs a request, against no middleware and against
//! tower-http's `TraceLayer`.
//!
//! `cargo bench --bench web`: in-process, the router called as a tower
//! service (`ServiceExt::oneshot`) on a current-thread runtime, for a
//! handler returning a short string, for one running a SQLite query, and for
//! the realistic list endpoint of `instructions.rs` (20 rows, 26 KB of JSON)
//! on PostgreSQL (127.0.0.1:5432, database test) and SQLite, plain against
//! the whole zen stack.
//! `cargo bench --bench web -- --wrk`: the same apps served on 127.0.0.1 and
//! loaded by `wrk` (installed apart: `apt-get install wrk`).
//!
//! Interleaved rounds, not one benchmark after another: on a 2-core machine
//! consecutive benchmarks drift more (±10%) than what is measured. Each
//! round times a batch of requests for every variant in turn, rotating the
//! order; the table gives the median per request, the time added to the
//! bare router's, and the throughput as a ratio of the bare router's.
#![allow(clippy::print_stdout)]

#[path = "common/apps.rs"]
mod apps;
#[path = "support/mod.rs"]
mod support;

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::Request;
use axum::routing::get;
use tower::ServiceExt;
use zen_runtime::alloc::ZenAlloc;
use zen_runtime::db::SqlitePool;
use zen_runtime::layer::ZenLayer;
use zen_runtime::{Limits, Mode, zen};

// As an application measuring memory would run: zen's allocator everywhere,
// so every variant pays the same for it.
#[global_allocator]
static ALLOC: ZenAlloc = ZenAlloc::system();

const ROUNDS: usize = 41;

#[zen(max_queries = 5, max_db_ms = 50, timeout_ms = 200)]
async fn zen_hello() -> &'static str {
    "hello, world"
}

async fn count(State(pool): State<sqlx::SqlitePool>) -> String {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM t").fetch_one(&pool).await.unwrap();
    n.to_string()
}

async fn zen_count_plain(State(pool): State<SqlitePool>) -> String {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM t").fetch_one(&pool).await.unwrap();
    n.to_string()
}

#[zen(max_queries = 5, max_db_ms = 50, timeout_ms = 200)]
async fn zen_count(State(pool): State<SqlitePool>) -> String {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM t").fetch_one(&pool).await.unwrap();
    n.to_string()
}

/// The variants of one table: a label and the app.
fn trivial_apps() -> Vec<(&'static str, Router)> {
    // `with_state(())` turns handlers into routes (and applies the layers)
    // once, as `axum::serve` does; called bare, a router does it per request.
    let [bare, from_fn, trace_layer] = apps::trivial_baselines();
    let apps: Vec<(&'static str, Router)> = vec![
        ("bare router", bare),
        ("`from_fn` doing nothing", from_fn),
        ("tower-http `TraceLayer`", trace_layer),
        ("zen layer + `#[zen]` handler", apps::trivial(zen_hello).layer(ZenLayer::new())),
        ("zen, no `Server-Timing`", apps::trivial(zen_hello).layer(ZenLayer::new().server_timing(false))),
        ("zen in `enforce` (deadline timer)", apps::trivial(zen_hello).layer(ZenLayer::new().mode(Mode::Enforce))),
    ];
    apps.into_iter().map(|(label, app)| (label, app.with_state(()))).collect()
}

async fn sqlite_apps() -> Vec<(&'static str, Router)> {
    // One connection, and so one SQLite worker thread, for every variant:
    // two pools' worker threads wake up at different speeds (16 µs against
    // 140 µs per query, seen here), which would swamp what is measured.
    // A request wrk leaves mid-query closes its connection, and an in-memory
    // database lasts as long as its last connection: one is kept aside.
    let url = "sqlite:file:zen-bench-web?mode=memory&cache=shared";
    let keeper = <sqlx::SqliteConnection as sqlx::Connection>::connect(url).await.unwrap();
    std::mem::forget(keeper);
    let options = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).min_connections(1);
    let raw = options.connect(url).await.unwrap();
    let zen = SqlitePool::from_sqlx(raw.clone());
    sqlx::query("CREATE TABLE t (x INTEGER)").execute(&raw).await.unwrap();
    sqlx::query("INSERT INTO t VALUES (1), (2), (3)").execute(&raw).await.unwrap();
    vec![
        ("bare router, sqlx pool", Router::new().route("/", get(count)).with_state(raw.clone())),
        (
            "tower-http `TraceLayer`, sqlx pool",
            Router::new().route("/", get(count)).layer(tower_http::trace::TraceLayer::new_for_http()).with_state(raw),
        ),
        ("bare router, zen pool", Router::new().route("/", get(zen_count_plain)).with_state(zen.clone())),
        (
            "zen layer + `#[zen]` handler, zen pool",
            Router::new()
                .route("/", get(zen_count))
                .layer(ZenLayer::new().limits(Limits::NONE.timeout_ms(1_000)))
                .with_state(zen),
        ),
    ]
}

async fn call(app: &Router, path: &str) {
    let response: Result<_, Infallible> = app.clone().oneshot(Request::get(path).body(Body::empty()).unwrap()).await;
    let response = response.unwrap();
    assert!(response.status().is_success());
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    assert!(!body.is_empty());
}

async fn in_process(title: &str, apps: &[(&'static str, Router)], batch: u32, path: &str) {
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); apps.len()];
    for round in 0..=ROUNDS {
        for i in 0..apps.len() {
            let variant = (round + i) % apps.len();
            let start = Instant::now();
            for _ in 0..batch {
                call(&apps[variant].1, path).await;
            }
            // The first round warms caches, connections and route names up.
            if round > 0 {
                times[variant].push(start.elapsed() / batch);
            }
        }
    }
    let medians: Vec<Duration> = times.into_iter().map(support::median).collect();
    println!("\n{title}\n");
    println!("| variant | per request (median) | added | throughput vs bare |");
    println!("|---|---|---|---|");
    let base = medians[0].as_secs_f64();
    for ((label, _), median) in apps.iter().zip(&medians) {
        let ns = median.as_secs_f64() * 1e9;
        println!("| {label} | {ns:.0} ns | {:+.0} ns | {:.3} |", ns - base * 1e9, base / median.as_secs_f64());
    }
}

/// Serves each app on its own port and loads it with `wrk`, interleaved.
/// CPU time this process (the server; wrk is another process) has used, in
/// clock ticks of 10 ms (Linux's fixed `USER_HZ`).
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    // utime and stime: fields 14 and 15 of the line, 12 and 13 after the name.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Serves each app on its own port and loads it with `wrk`, interleaved.
/// Throughput over loopback also measures wrk, which shares the machine
/// and parses every response: the server's own CPU time per request is
/// given beside it.
fn over_loopback(server: &tokio::runtime::Runtime, title: &str, apps: Vec<(&'static str, Router)>, rounds: usize) {
    let urls: Vec<(&str, String)> = apps
        .into_iter()
        .map(|(label, app)| {
            let listener = server.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
            let url = format!("http://{}/", listener.local_addr().unwrap());
            server.spawn(async move { axum::serve(listener, app).await });
            (label, url)
        })
        .collect();
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); urls.len()];
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); urls.len()];
    for round in 0..=rounds {
        for i in 0..urls.len() {
            let variant = (round + i) % urls.len();
            let ticks = cpu_ticks();
            let out = std::process::Command::new("wrk")
                .args(["-t1", "-c16", if round == 0 { "-d1s" } else { "-d3s" }, &urls[variant].1])
                .output()
                .expect("wrk runs (apt-get install wrk)");
            let ticks = cpu_ticks() - ticks;
            let text = String::from_utf8_lossy(&out.stdout);
            let number = |prefix: &str, line: &str| line.trim().strip_prefix(prefix).map(|r| r.trim().to_owned());
            let rate: f64 = text
                .lines()
                .find_map(|l| number("Requests/sec:", l))
                .and_then(|r| r.parse().ok())
                .unwrap_or_else(|| panic!("no rate in wrk's output:\n{text}"));
            let requests: f64 = text
                .lines()
                .find_map(|l| l.split_once(" requests in ").and_then(|(n, _)| n.trim().parse().ok()))
                .unwrap_or_else(|| panic!("no request count in wrk's output:\n{text}"));
            if round > 0 {
                rates[variant].push(rate);
                cpu[variant].push(ticks as f64 * 10_000.0 / requests);
            }
        }
    }
    println!("\n{title}\n");
    println!("| variant | requests/s (median of {rounds}) | throughput vs bare | server CPU per request | vs bare |");
    println!("|---|---|---|---|---|");
    let rates: Vec<f64> = rates.into_iter().map(support::median).collect();
    let cpu: Vec<f64> = cpu.into_iter().map(support::median).collect();
    for (((label, _), rate), us) in urls.iter().zip(&rates).zip(&cpu) {
        println!("| {label} | {rate:.0} | {:.3} | {us:.2} µs | {:+.2} µs |", rate / rates[0], us - cpu[0]);
    }
}

fn main() {
    let wrk = std::env::args().any(|a| a == "--wrk");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // `--profile N`: only variant N of the trivial table, for 5 s, under `perf`.
    if let Some(n) = std::env::args().skip_while(|a| a != "--profile").nth(1) {
        let apps = trivial_apps();
        let app = &apps[n.parse::<usize>().unwrap()].1;
        let start = Instant::now();
        rt.block_on(async {
            while start.elapsed() < Duration::from_secs(5) {
                call(app, "/").await;
            }
        });
        return;
    }
    if wrk {
        // One worker thread for the server, the other core for wrk. The
        // pools are made on the runtime that serves them.
        let server = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        over_loopback(&server, "Over loopback, trivial handler (`wrk -t1 -c16`)", trivial_apps(), 9);
        let apps = server.block_on(sqlite_apps());
        over_loopback(&server, "Over loopback, one SQLite query per request (`wrk -t1 -c16`)", apps, 9);
        return;
    }
    rt.block_on(async {
        in_process("In-process, trivial handler", &trivial_apps(), 2_000, "/").await;
        in_process("In-process, one SQLite query per request", &sqlite_apps().await, 200, "/").await;
        let pg = [("plain, PostgreSQL", apps::plain_pg_app().await), ("zen, PostgreSQL", apps::zen_pg_app().await)];
        in_process("In-process, the realistic list endpoint on PostgreSQL", &pg, 20, apps::PATH).await;
        let sqlite = [("plain, SQLite", apps::plain_sqlite_app().await), ("zen, SQLite", apps::zen_sqlite_app().await)];
        in_process("In-process, the realistic list endpoint on SQLite", &sqlite, 20, apps::PATH).await;
    });
}
