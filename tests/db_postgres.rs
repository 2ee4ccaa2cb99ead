//! The sqlx wrapper on the PostgreSQL running on this machine: counts that
//! match what the server logged, a cut query that stops on the server, and
//! a server that is not there.

#[path = "common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use futures::TryStreamExt;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection};
use zen_runtime::db::{self, PgPool};
use zen_runtime::{Budget, BudgetExceeded, Outcome, testing, zen};

use common::AppError;

/// Connect options naming the test, so server-side checks find only its own
/// sessions.
async fn options(application: &str) -> Option<PgConnectOptions> {
    let url = common::postgres_url().await?;
    Some(url.parse::<PgConnectOptions>().unwrap().application_name(application))
}

async fn setup(pool: &PgPool, table: &str) {
    let raw = pool.as_sqlx();
    sqlx::raw_sql(
        &*format!("DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id BIGINT PRIMARY KEY, name TEXT NOT NULL)")
            .leak(),
    )
    .execute(raw)
    .await
    .unwrap();
    sqlx::query(&*format!("INSERT INTO {table} SELECT g, 'n' || g FROM generate_series(1, 50) g").leak())
        .execute(raw)
        .await
        .unwrap();
}

#[zen(max_queries = 20)]
async fn known_sequence(pool: &PgPool) -> Result<(), AppError> {
    let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(pool).await?;
    let names: Vec<String> =
        sqlx::query_scalar("SELECT name FROM zen_pg_count ORDER BY id LIMIT 5").fetch_all(pool).await?;
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO zen_pg_count (id, name) VALUES ($1, $2)")
        .bind(1000_i64)
        .bind("tx")
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE zen_pg_count SET name = $1 WHERE id = $2").bind("upd").bind(1_i64).execute(&mut *tx).await?;
    tx.commit().await?;
    let mut stream = sqlx::query_scalar::<_, i64>("SELECT id FROM zen_pg_count ORDER BY id").fetch(pool);
    let first = stream.try_next().await?;
    drop(stream);
    let none: Option<String> =
        sqlx::query_scalar("SELECT name FROM zen_pg_count WHERE id = $1").bind(-1_i64).fetch_optional(pool).await?;
    assert_eq!((one, names.len(), first, none), (1, 5, Some(1), None));
    Ok(())
}

/// Statements the server logged for one backend between two markers.
fn logged_between(pid: i32, start: &str, end: &str) -> Option<usize> {
    let dir = std::fs::read_dir("/var/log/postgresql").ok()?;
    for entry in dir.flatten() {
        let Ok(log) = std::fs::read_to_string(entry.path()) else { continue };
        let Some(from) = log.rfind(start) else { continue };
        let Some(to) = log[from..].find(end) else { continue };
        // Whole lines after the start marker's line, before the end marker's.
        let end_line = log[..from + to].rfind('\n').unwrap_or(from);
        let tag = format!("[{pid}]");
        let lines = log[from..end_line].lines().skip(1);
        return Some(
            lines
                .filter(|l| l.contains(&tag) && (l.contains("LOG:  statement:") || l.contains("LOG:  execute")))
                .count(),
        );
    }
    None
}

#[tokio::test]
async fn the_count_matches_what_postgresql_logged() {
    let Some(options) = options("zen-count").await else { return };
    // Superuser only: log every statement of these sessions.
    let options = options.options([("log_statement", "all")]);
    let pool = PgPool::connect_with_pool_options(PgPoolOptions::new().min_connections(1).max_connections(1), options)
        .await
        .unwrap();
    setup(&pool, "zen_pg_count").await;
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(pool.as_sqlx()).await.unwrap();
    let marker = format!("zen-marker-{}", std::process::id());
    sqlx::query(&*format!("SELECT '{marker}-start'").leak()).execute(pool.as_sqlx()).await.unwrap();
    let (result, report) = testing::measure(known_sequence(&pool)).await;
    result.unwrap();
    sqlx::query(&*format!("SELECT '{marker}-end'").leak()).execute(pool.as_sqlx()).await.unwrap();
    // SELECT, SELECT, BEGIN, INSERT, UPDATE, COMMIT, streamed SELECT, SELECT.
    assert_eq!(report.figures.queries(), 8, "{report}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    match logged_between(pid, &format!("{marker}-start"), &format!("{marker}-end")) {
        Some(logged) => assert_eq!(logged, 8, "PostgreSQL's own log must agree with zen's count"),
        None => {
            assert!(
                std::env::var("ZEN_TEST_REQUIRE_SERVICES").is_err(),
                "the PostgreSQL log in /var/log/postgresql is needed to cross-check the count"
            );
            eprintln!("skipped the server-log cross-check: no readable log in /var/log/postgresql");
        }
    }
}

#[zen(max_db_ms = 300, mode = "enforce")]
async fn sleepy(pool: &PgPool) -> Result<(), AppError> {
    sqlx::query("SELECT pg_sleep(5)").execute(pool).await?;
    Ok(())
}

#[zen(max_db_ms = 300, mode = "enforce")]
async fn sleepy_in_transaction(pool: &PgPool) -> Result<(), AppError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_sleep(5)").execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

async fn sleeping_sessions(application: &str) -> i64 {
    let url = common::postgres_url().await.unwrap();
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let n = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'SELECT pg_sleep%' AND state = 'active'",
    )
    .bind(application)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    n
}

async fn assert_gone_within_a_second(application: &str) {
    let start = Instant::now();
    loop {
        let n = sleeping_sessions(application).await;
        if n == 0 {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "pg_sleep(5) still running on the server after {:?}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_cut_query_stops_on_the_server_and_the_pool_stays_healthy() {
    let application = &*format!("zen-cut-{}", std::process::id()).leak();
    let Some(options) = options(application).await else { return };
    let pool = PgPool::connect_with_pool_options(PgPoolOptions::new().max_connections(2), options).await.unwrap();
    for (name, fut) in [
        ("pool", Box::pin(sleepy(&pool)) as std::pin::Pin<Box<dyn Future<Output = _> + Send>>),
        ("transaction", Box::pin(sleepy_in_transaction(&pool))),
    ] {
        let start = Instant::now();
        let (result, report) = testing::measure(fut).await;
        let Err(AppError::Db(error)) = result else { panic!("{name}: expected a cut") };
        assert_eq!(db::as_budget_exceeded(&error).map(BudgetExceeded::budget), Some(Budget::DbTime), "{name}: {error}");
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{name}: cut at ~300 ms, not after 5 s: {:?}",
            start.elapsed()
        );
        assert!(report.figures.failed_queries() >= 1, "{name}: {report}");
        assert_gone_within_a_second(application).await;
    }
    // The cut connections were closed, not returned: what the pool hands out
    // works, and every connection it counts is one the server has, idle.
    for _ in 0..4 {
        let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&pool).await.unwrap();
        assert_eq!(one, 1);
    }
    let url = common::postgres_url().await.unwrap();
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let on_server: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
            .bind(application)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        if u32::try_from(on_server).unwrap() == pool.size() && pool.size() >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the server has {on_server} sessions, the pool counts {}", pool.size());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[zen]
async fn unreachable(pool: &PgPool) -> Result<i32, AppError> {
    Ok(sqlx::query_scalar("SELECT 1").fetch_one(pool).await?)
}

#[tokio::test]
async fn a_server_that_is_not_there_is_an_error_the_report_records() {
    // Nothing listens on port 1: refused at once.
    let options = PgConnectOptions::new().host("127.0.0.1").port(1).username("postgres").database("test");
    let pool = PgPool::connect_lazy_with(PgPoolOptions::new().acquire_timeout(Duration::from_secs(2)), options);
    let (result, reports) = testing::collect(unreachable(&pool)).await;
    let Err(AppError::Db(error)) = result else { panic!("expected a connection error") };
    assert!(db::as_budget_exceeded(&error).is_none(), "{error}");
    let r = &reports[0];
    assert_eq!((r.figures.queries(), r.figures.failed_queries(), r.outcome), (1, 1, Outcome::Ok), "{r}");
}

#[zen(name = "db_postgres::numbered")]
async fn numbered(pool: PgPool, n: u64) -> u64 {
    for _ in 0..n {
        let _: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_class").fetch_one(&pool).await.unwrap();
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_scopes_on_postgresql_each_exact() {
    let Some(options) = options("zen-concurrent").await else { return };
    let pool = PgPool::connect_with_pool_options(PgPoolOptions::new().max_connections(5), options).await.unwrap();
    let ((), reports) = testing::collect(async {
        let tasks: Vec<_> = (0..200u64).map(|i| zen_runtime::spawn(numbered(pool.clone(), i % 9))).collect();
        for task in tasks {
            task.await.unwrap();
        }
    })
    .await;
    common::assert_counts(&reports, (0..200).map(|i| i % 9));
    assert!(reports.iter().any(|r| r.figures.db_wait() > Duration::ZERO), "200 tasks on 5 connections wait for some");
}

#[tokio::test]
async fn the_pool_builder_has_sqlx_shape_and_keeps_the_server_side_cut() {
    let Some(url) = common::postgres_url().await else { return };
    // As sqlx users write it, with zen's type in the `use`.
    let pool = zen_runtime::db::PgPoolOptions::new().max_connections(3).connect(&url).await.unwrap();
    let ((), report) = testing::measure(async {
        let interval: String =
            sqlx::query_scalar("SHOW client_connection_check_interval").fetch_one(&pool).await.unwrap();
        assert_eq!(interval, "100ms", "a cut query stops on the server");
    })
    .await;
    assert_eq!(report.figures.queries(), 1);
    // `max_connections(3)` reached sqlx: a fourth checkout waits.
    let held = [pool.acquire().await.unwrap(), pool.acquire().await.unwrap(), pool.acquire().await.unwrap()];
    assert!(tokio::time::timeout(Duration::from_millis(200), pool.acquire()).await.is_err(), "only three");
    drop(held);
    assert!(
        tokio::time::timeout(Duration::from_secs(5), pool.acquire()).await.is_ok(),
        "and one again once they are back"
    );
}

#[zen(max_queries = 20)]
async fn hostile_on_postgres(pool: &PgPool) -> Result<(), AppError> {
    for _ in 0..5 {
        // Valid PostgreSQL, with the server's default `standard_conforming_strings`.
        let _: (String, String) = sqlx::query_as(r"SELECT 'C:\', 'hunter-pg-1'").fetch_one(pool).await?;
        let _: i32 = sqlx::query_scalar("SELECT 1 /* a /* b */ hunter-pg-2 */").fetch_one(pool).await?;
        let _: String = sqlx::query_scalar("SELECT $tag$hunter-pg-3$tag$").fetch_one(pool).await?;
    }
    Ok(())
}

#[tokio::test]
async fn no_value_reaches_a_report_on_postgresql() {
    let Some(url) = common::postgres_url().await else { return };
    let pool = PgPool::connect(&url).await.unwrap();
    let (result, reports) = testing::collect(hostile_on_postgres(&pool)).await;
    result.unwrap();
    let report = &reports[0];
    assert_eq!(report.figures.queries(), 15);
    assert!(!report.n_plus_one.is_empty() && report.slowest_query.is_some());
    for shown in [report.to_string(), format!("{report:?}")] {
        assert!(!shown.contains("hunter"), "a value leaked: {shown}");
    }
}
