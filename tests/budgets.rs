//! The budgets added through the table: `max_poll_ms` (a poll that holds
//! its thread), `max_rows` (rows returned to the scope) and
//! `max_response_kb` (the response body under the layer), on real servers.

mod common;

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::routing::get;
use futures::{StreamExt, TryStreamExt};
use zen_runtime::db::{self, PgPool, SqlitePool};
use zen_runtime::layer::ZenLayer;
use zen_runtime::{Budget, Limits, Mode, Outcome, testing, zen};

use common::{AppError, report_named};

async fn serve(app: Router) -> String {
    common::collect_reports();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap()
}

fn metric(header: &str, name: &str) -> Option<String> {
    header.split(", ").find(|m| m.split(';').next() == Some(name)).map(str::to_owned)
}

/// Blocks its thread twice for 60 ms: what a synchronous driver or a CPU
/// loop in async code does.
#[zen(max_poll_ms = 20)]
async fn blocking(State(pool): State<SqlitePool>) -> Result<&'static str, String> {
    std::thread::sleep(Duration::from_millis(60));
    tokio::task::yield_now().await;
    std::thread::sleep(Duration::from_millis(60));
    sqlx::query("SELECT 1").execute(&pool).await.map_err(|e| e.to_string())?;
    Ok("done")
}

#[tokio::test]
async fn max_poll_ms_reports_the_longest_poll_and_the_polls_over_it() {
    let pool = common::sqlite_pool_at(&common::sqlite_url(), 2).await;
    let app = Router::new()
        .route("/budgets/blocking", get(blocking))
        .layer(ZenLayer::new().server_timing(true))
        .with_state(pool);
    let url = serve(app).await;
    let response = client().get(format!("{url}/budgets/blocking")).send().await.unwrap();
    assert_eq!(response.status(), 200, "observe changes nothing");
    let header = response.headers()["server-timing"].to_str().unwrap().to_owned();
    let report = report_named("GET /budgets/blocking").await;
    let x = &report.figures;
    assert!(x.longest_poll() >= Duration::from_millis(60), "{report}");
    assert_eq!(x.slow_polls(), 2, "two polls held the thread: {report}");
    let v = report.violation(Budget::PollTime).expect("max_poll_ms was exceeded");
    assert_eq!(v.limit, 20);
    assert!(v.used >= 60);
    let poll = metric(&header, "poll").expect(&header);
    assert!(poll.ends_with(";desc=\"budget 20ms\""), "{poll}");
}

#[tokio::test]
async fn in_enforce_a_blocking_poll_stops_the_request_at_its_end() {
    let pool = common::sqlite_pool_at(&common::sqlite_url(), 2).await;
    let app = Router::new()
        .route("/budgets/blocking-enforced", get(blocking))
        .layer(ZenLayer::new().mode(Mode::Enforce))
        .with_state(pool);
    let url = serve(app).await;
    let response = client().get(format!("{url}/budgets/blocking-enforced")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let problem: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(problem["budget"], "max_poll_ms");
    let report = report_named("GET /budgets/blocking-enforced").await;
    assert_eq!(report.outcome, Outcome::Exceeded);
    assert_eq!(report.figures.slow_polls(), 1, "no poll pre-empted, but no second one either: {report}");
    assert_eq!(report.figures.queries(), 0, "the work after the blocking poll never ran");
}

#[zen(max_rows = 4)]
async fn all_users(pool: &SqlitePool) -> Result<usize, AppError> {
    let rows: Vec<(i64, String)> = sqlx::query_as("SELECT id, name FROM users").fetch_all(pool).await?;
    Ok(rows.len())
}

#[zen(max_rows = 4, mode = "enforce")]
async fn all_users_enforced(pool: &SqlitePool) -> Result<usize, AppError> {
    let rows: Vec<(i64, String)> = sqlx::query_as("SELECT id, name FROM users").fetch_all(pool).await?;
    Ok(rows.len())
}

#[zen(max_rows = 2, mode = "enforce")]
async fn one_at_a_time(pool: &SqlitePool) -> Result<(), AppError> {
    for id in 1..=3 {
        let _: String = sqlx::query_scalar("SELECT name FROM users WHERE id = ?").bind(id).fetch_one(pool).await?;
    }
    Ok(())
}

#[tokio::test]
async fn max_rows_counts_rows_returned_and_enforce_ends_the_stream_at_the_limit() {
    let pool = common::sqlite_pool_at(&common::sqlite_url(), 2).await;
    let (result, reports) = testing::collect(all_users(&pool)).await;
    assert_eq!(result.unwrap(), 10);
    assert_eq!(reports[0].figures.rows(), 10);
    assert_eq!(reports[0].violation(Budget::Rows).map(|v| (v.limit, v.used)), Some((4, 10)));

    let (result, reports) = testing::collect(all_users_enforced(&pool)).await;
    let Err(AppError::Db(error)) = result else { panic!("the stream ends with the budget's error: {result:?}") };
    let exceeded = db::as_budget_exceeded(&error).expect("a budget error");
    assert_eq!((exceeded.budget(), exceeded.limit(), exceeded.used()), (Budget::Rows, 4, 5));
    assert_eq!(reports[0].figures.rows(), 5, "the fifth row ended it");

    // One row at a time through `fetch_one`: the third is refused.
    let (result, reports) = testing::collect(one_at_a_time(&pool)).await;
    let Err(AppError::Db(error)) = result else { panic!("{result:?}") };
    assert_eq!(db::as_budget_exceeded(&error).map(|e| e.budget()), Some(Budget::Rows));
    assert_eq!(reports[0].figures.rows(), 3);
    // The pool is healthy afterwards.
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&pool).await.unwrap();
    assert_eq!(n, 10);
}

#[zen(max_rows = 1000, mode = "enforce")]
async fn unbounded_select(pool: &PgPool) -> Result<u64, AppError> {
    let mut rows = sqlx::query_scalar::<_, i32>("SELECT g FROM generate_series(1, 5000000) g").fetch(pool);
    let mut n = 0;
    while rows.try_next().await?.is_some() {
        n += 1;
    }
    Ok(n)
}

#[tokio::test]
async fn an_unbounded_select_on_postgresql_is_cut_at_max_rows() {
    let Some(url) = common::postgres_url().await else { return };
    let pool = PgPool::connect(&url).await.unwrap();
    let start = Instant::now();
    let (result, reports) = testing::collect(unbounded_select(&pool)).await;
    let Err(AppError::Db(error)) = result else { panic!("{result:?}") };
    assert_eq!(db::as_budget_exceeded(&error).map(|e| e.budget()), Some(Budget::Rows));
    assert_eq!(reports[0].figures.rows(), 1001);
    assert!(start.elapsed() < Duration::from_secs(3), "five million rows were not read: {:?}", start.elapsed());
    let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&pool).await.unwrap();
    assert_eq!(one, 1, "the pool still serves");
}

/// 100 KiB, known in advance.
async fn big_page() -> String {
    "x".repeat(100 * 1024)
}

/// Ten 16 KiB chunks, one query before each: a streamed export.
async fn export(State(pool): State<SqlitePool>) -> Body {
    let chunks = futures::stream::iter(0..10).then(move |_| {
        let pool = pool.clone();
        async move {
            let _: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&pool).await.unwrap();
            Ok::<_, std::convert::Infallible>(Bytes::from(vec![b'y'; 16 * 1024]))
        }
    });
    Body::from_stream(chunks)
}

fn responses_app(pool: SqlitePool, mode: Mode) -> Router {
    Router::new()
        .route(&format!("/budgets/{mode}/page"), get(big_page))
        .route(&format!("/budgets/{mode}/export"), get(export))
        .layer(ZenLayer::new().server_timing(true).mode(mode).limits(Limits::NONE.max_response_kb(64)))
        .with_state(pool)
}

#[tokio::test]
async fn max_response_kb_counts_bodies_known_and_streamed() {
    let pool = common::sqlite_pool_at(&common::sqlite_url(), 2).await;
    let url = serve(responses_app(pool, Mode::Observe)).await;

    let response = client().get(format!("{url}/budgets/observe/page")).send().await.unwrap();
    let header = response.headers()["server-timing"].to_str().unwrap().to_owned();
    assert_eq!(response.bytes().await.unwrap().len(), 100 * 1024);
    assert_eq!(metric(&header, "resp").as_deref(), Some("resp;desc=\"100/64 KiB\""), "{header}");
    let report = report_named("GET /budgets/observe/page").await;
    assert_eq!(report.figures.response_bytes(), Some(100 * 1024));
    assert_eq!(report.violation(Budget::ResponseSize).map(|v| (v.limit, v.used)), Some((64, 100)));

    let body = client().get(format!("{url}/budgets/observe/export")).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(body.len(), 160 * 1024, "observe sends it all");
    let report = report_named("GET /budgets/observe/export").await;
    assert_eq!(report.figures.response_bytes(), Some(160 * 1024), "counted as it streamed: {report}");
    assert_eq!(report.figures.queries(), 10, "the body's queries are the request's");
    assert_eq!(report.outcome, Outcome::Exceeded);
}

#[tokio::test]
async fn in_enforce_a_known_body_is_refused_and_a_streamed_one_cut_short() {
    let pool = common::sqlite_pool_at(&common::sqlite_url(), 2).await;
    let url = serve(responses_app(pool, Mode::Enforce)).await;

    let response = client().get(format!("{url}/budgets/enforce/page")).send().await.unwrap();
    assert_eq!(response.status(), 503, "known before the headers leave: refused");
    let problem: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!((problem["budget"].as_str(), problem["used"].as_u64()), (Some("max_response_kb"), Some(100)));

    let response = client().get(format!("{url}/budgets/enforce/export")).send().await.unwrap();
    assert_eq!(response.status(), 200, "the headers were already sent");
    let read = response.bytes().await;
    assert!(read.is_err(), "the body is cut short, never passed off as whole");
    let report = report_named("GET /budgets/enforce/export").await;
    let used = report.figures.response_bytes().unwrap();
    assert!((64 * 1024..=80 * 1024).contains(&used), "stopped at the first chunk past 64 KiB: {used}");
    assert_eq!(report.violation(Budget::ResponseSize).map(|v| v.limit), Some(64));
    assert!(report.figures.queries() <= 5, "no query after the cut: {report}");
}
