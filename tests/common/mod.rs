//! Servers the tests talk to. PostgreSQL and Redis tests skip, saying why,
//! when the server does not answer, unless `ZEN_TEST_REQUIRE_SERVICES=1`
//! (CI) makes them mandatory.
#![allow(dead_code, unreachable_pub)]

use axum::extract::{Query, State};
use zen_runtime::db::SqlitePool;
use zen_runtime::{BudgetExceeded, Report, zen};

fn required() -> bool {
    std::env::var("ZEN_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

fn unavailable(what: &str, url: &str, error: &dyn std::fmt::Display) -> Option<String> {
    assert!(!required(), "{what} at {url} is required (ZEN_TEST_REQUIRE_SERVICES=1) but does not answer: {error}");
    eprintln!("skipped: {what} at {url} does not answer ({error}); set ZEN_TEST_REQUIRE_SERVICES=1 to fail instead");
    None
}

/// `None`, saying why, when a program a test needs is not installed (or
/// a failed assertion when `ZEN_TEST_REQUIRE_SERVICES=1`).
pub fn unavailable_binary<T>(what: &str, binary: &str) -> Option<T> {
    assert!(!required(), "{what} (`{binary}`) is required (ZEN_TEST_REQUIRE_SERVICES=1) but is not installed");
    eprintln!("skipped: {what} (`{binary}`) is not installed; set ZEN_TEST_REQUIRE_SERVICES=1 to fail instead");
    None
}

/// The PostgreSQL URL, if the server answers.
pub async fn postgres_url() -> Option<String> {
    let url =
        std::env::var("ZEN_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let options: sqlx::postgres::PgConnectOptions = url.parse().expect("a valid PostgreSQL URL");
    match sqlx::ConnectOptions::connect(&options).await {
        Ok(conn) => {
            drop(conn);
            Some(url)
        }
        Err(e) => unavailable("PostgreSQL", &url, &e),
    }
}

/// The Redis URL, if the server answers.
pub async fn redis_url() -> Option<String> {
    let url = std::env::var("ZEN_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let client = redis::Client::open(url.as_str()).expect("a valid Redis URL");
    match client.get_multiplexed_async_connection().await {
        Ok(_) => Some(url),
        Err(e) => unavailable("Redis", &url, &e),
    }
}

/// The MongoDB URL (`ZEN_TEST_MONGODB_URL`, by default the wire-protocol
/// server `.ci/run` starts), if a server answers a `ping`.
pub async fn mongodb_url() -> Option<String> {
    let url = std::env::var("ZEN_TEST_MONGODB_URL").unwrap_or_else(|_| "mongodb://127.0.0.1:27017".into());
    let mut options = mongodb::options::ClientOptions::parse(&url).await.expect("a valid MongoDB URL");
    options.server_selection_timeout = Some(std::time::Duration::from_secs(2));
    let client = mongodb::Client::with_options(options).expect("a MongoDB client");
    match client.database("admin").run_command(mongodb::bson::doc! { "ping": 1 }).await {
        Ok(_) => Some(url),
        Err(e) => unavailable("MongoDB", &url, &e),
    }
}

/// A handler's error type: what a real application would write, so that
/// `?` works on sqlx errors and `mode = "enforce"` can return a blown budget.
#[derive(Debug)]
pub enum AppError {
    Db(sqlx::Error),
    Budget(BudgetExceeded),
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        AppError::Db(e)
    }
}

impl From<BudgetExceeded> for AppError {
    fn from(e: BudgetExceeded) -> Self {
        AppError::Budget(e)
    }
}

/// Asserts that the reports' query counts are exactly `expected`, in any
/// order (concurrent scopes end in any order).
pub fn assert_counts(reports: &[Report], expected: impl IntoIterator<Item = u64>) {
    let mut counts: Vec<u64> = reports.iter().map(|r| r.figures.queries()).collect();
    counts.sort_unstable();
    let mut expected: Vec<u64> = expected.into_iter().collect();
    expected.sort_unstable();
    assert_eq!(counts, expected);
}

/// A new shared in-memory SQLite database's URL, unique in the process.
pub fn sqlite_url() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    // Each suite of a binary has its own copy of this module: the address of
    // its counter tells them apart.
    let copy = &raw const NEXT as usize;
    let (pid, n) = (std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    format!("sqlite:file:zen{pid}x{copy:x}x{n}?mode=memory&cache=shared")
}

/// A pool on the database at `url`, migrated with sqlx's own macro, with
/// ten users and an article by each.
///
/// An in-memory database lives only while a connection to it is open, and
/// every budget cut closes the connection it cut: one connection outside
/// the pool is left open for the rest of the process, so that a test whose
/// cuts closed every pooled connection still finds its data.
pub async fn sqlite_pool_at(url: &str, max_connections: u32) -> SqlitePool {
    let keeper = <sqlx::SqliteConnection as sqlx::Connection>::connect(url).await.unwrap();
    std::mem::forget(keeper);
    let options = url.parse().unwrap();
    let pool = SqlitePool::connect_with_pool_options(
        sqlx::sqlite::SqlitePoolOptions::new().max_connections(max_connections),
        options,
    )
    .await
    .unwrap();
    sqlx::migrate!("tests/migrations").run(&pool).await.unwrap();
    for i in 1..=10 {
        sqlx::query("INSERT INTO users (id, name) VALUES (?, ?)")
            .bind(i)
            .bind(format!("user{i}"))
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO articles (title, author_id) VALUES (?, ?)")
            .bind(format!("a{i}"))
            .bind(i)
            .execute(&pool)
            .await
            .unwrap();
    }
    pool
}

/// Every report of the process, for reports that no future returns (a
/// request whose client went away, a background job).
static REPORTS: std::sync::Mutex<Vec<Report>> = std::sync::Mutex::new(Vec::new());

/// Registers the sink behind [`report_named`], once per process.
pub fn collect_reports() {
    static SINK: std::sync::Once = std::sync::Once::new();
    SINK.call_once(|| {
        zen_runtime::sinks::add_sink(|r| REPORTS.lock().unwrap().push(r.clone()));
    });
}

/// The reports named `name` so far.
pub fn reports_named(name: &str) -> Vec<Report> {
    collect_reports();
    REPORTS.lock().unwrap().iter().filter(|r| r.name == name).cloned().collect()
}

/// Waits up to 10 s for the `n`th report named `name` (1 for the first).
pub async fn nth_report_named(name: &str, n: usize) -> Report {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(r) = reports_named(name).into_iter().nth(n - 1) {
            return r;
        }
        assert!(std::time::Instant::now() < deadline, "no report #{n} named `{name}`");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Waits up to 10 s for a report named `name`.
pub async fn report_named(name: &str) -> Report {
    nth_report_named(name, 1).await
}

#[derive(serde::Deserialize)]
pub struct Many {
    n: u32,
}

/// A route of a budget of 2 queries that runs `?n=` of them: over its
/// budget when `n` is more than 2.
#[zen(max_queries = 2)]
pub async fn over(State(pool): State<SqlitePool>, Query(Many { n }): Query<Many>) -> String {
    for _ in 0..n {
        sqlx::query("SELECT 1").execute(&pool).await.unwrap();
    }
    format!("{n} queries")
}

/// The dashboard's overview as JSON, asked of `app` in-process with the
/// bearer `token`.
pub async fn dashboard_overview(app: axum::Router, token: &str) -> serde_json::Value {
    dashboard_get(app, "/_zen/api/overview", token).await
}

/// A JSON page of the dashboard at `path`, asked of `app` in-process with
/// the bearer `token`.
pub async fn dashboard_get(app: axum::Router, path: &str, token: &str) -> serde_json::Value {
    let request = axum::http::Request::get(path)
        .header("authorization", format!("Bearer {token}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(app, request).await.unwrap();
    let body = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
    serde_json::from_slice(&body).unwrap()
}

/// Every scope records its timeline while this lives (as while a
/// dashboard does): an observer that asks for timelines and takes no hook.
pub struct Timelines(zen_runtime::observe::ObserverId);

struct AskTimelines;

impl zen_runtime::observe::Observer for AskTimelines {
    fn hooks(&self) -> zen_runtime::observe::Hooks {
        zen_runtime::observe::Hooks::TIMELINES
    }
}

impl Timelines {
    pub fn asked() -> Timelines {
        Timelines(zen_runtime::observe::register(AskTimelines))
    }
}

impl Drop for Timelines {
    fn drop(&mut self) {
        zen_runtime::observe::unregister(self.0);
    }
}
