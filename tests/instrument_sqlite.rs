//! The public reporting API around a client zen has no wrapper for, here
//! sqlx on a real in-memory SQLite database.

#[path = "common/mod.rs"]
mod common;

use sqlx::sqlite::SqlitePoolOptions;
use sqlx::{Row, SqlitePool};
use zen_runtime::{Budget, instrument, testing, zen};

use common::AppError;

/// What an application writes to count a client's operations itself.
async fn execute(pool: &SqlitePool, sql: &'static str) -> Result<u64, AppError> {
    let op = instrument::query("sqlite", sql)?;
    let result = sqlx::query(sql).execute(pool).await;
    op.finish(result.is_ok());
    Ok(result?.rows_affected())
}

async fn pool() -> SqlitePool {
    let pool = SqlitePoolOptions::new().max_connections(1).connect("sqlite::memory:").await.unwrap();
    sqlx::query("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)").execute(&pool).await.unwrap();
    pool
}

async fn count(pool: &SqlitePool) -> i64 {
    sqlx::query("SELECT count(*) AS n FROM items").fetch_one(pool).await.unwrap().get("n")
}

#[zen(max_queries = 3)]
async fn fill(pool: &SqlitePool) -> Result<(), AppError> {
    execute(pool, "INSERT INTO items (name) VALUES ('a')").await?;
    execute(pool, "INSERT INTO items (name) VALUES ('b')").await?;
    let broken = execute(pool, "INSERT INTO nowhere VALUES (1)").await;
    assert!(matches!(broken, Err(AppError::Db(_))));
    Ok(())
}

#[tokio::test]
async fn counts_real_queries_and_failures() {
    let pool = pool().await;
    let (result, report) = testing::measure(fill(&pool)).await;
    result.unwrap();
    assert_eq!(report.figures.queries(), 3);
    assert_eq!(report.figures.failed_queries(), 1);
    assert!(report.figures.db_time() > std::time::Duration::ZERO);
    assert!(report.slowest_query.as_ref().is_some_and(|q| q.backend == "sqlite"));
    assert_eq!(count(&pool).await, 2, "the database saw the two inserts");
}

#[zen(max_queries = 2, mode = "enforce")]
async fn overfill(pool: &SqlitePool) -> Result<(), AppError> {
    for _ in 0..5 {
        execute(pool, "INSERT INTO items (name) VALUES ('x')").await?;
    }
    Ok(())
}

#[tokio::test]
async fn enforce_keeps_the_refused_query_away_from_the_database() {
    let pool = pool().await;
    let (result, reports) = testing::collect(overfill(&pool)).await;
    assert!(matches!(result, Err(AppError::Budget(e)) if e.budget() == Budget::Queries));
    assert_eq!(count(&pool).await, 2, "the third insert never reached SQLite");
    assert_eq!((reports[0].figures.queries(), reports[0].figures.refused_queries()), (3, 1));
}

/// How an adapter's write ends decides what a refused request says of it.
#[tokio::test]
async fn how_a_write_ends_says_what_it_did() {
    use zen_runtime::report::Writes;
    type End = fn(zen_runtime::instrument::Operation);
    let cases: [(&str, End, Writes); 7] = [
        ("SELECT 1", |op| op.finish(false), Writes::None),
        ("INSERT INTO t VALUES (1)", |op| op.finish(true), Writes::Committed),
        // The system answered with an error: nothing done.
        ("INSERT INTO t VALUES (1)", |op| op.finish_rejected(), Writes::None),
        // No answer: it may have been done.
        ("INSERT INTO t VALUES (1)", |op| op.finish(false), Writes::Unknown),
        ("INSERT INTO t VALUES (1)", drop, Writes::Unknown),
        // A text of two statements, a procedure: the error may come after work was done.
        ("INSERT INTO a VALUES (1); INSERT INTO b VALUES (2)", |op| op.finish_rejected(), Writes::Unknown),
        ("CALL archive_old_orders()", |op| op.finish_rejected(), Writes::Unknown),
    ];
    for (statement, end, writes) in cases {
        let ((), report) = zen_runtime::testing::measure(async {
            end(zen_runtime::instrument::query("PostgreSQL", statement).unwrap());
        })
        .await;
        assert_eq!(report.figures.writes(), writes, "{statement}");
    }
    // A read that says it writes, and a write that says it does not.
    let ((), report) = zen_runtime::testing::measure(async {
        zen_runtime::instrument::query("memcached", "GET x").unwrap().writes(true).finish(true);
        zen_runtime::instrument::query("memcached", "SET x").unwrap().writes(false).finish(false);
    })
    .await;
    assert_eq!(report.figures.writes(), Writes::Committed);
}

/// An operation whose time limit ran out a hair before the clock says its
/// budget is spent (a timer rounds): its error names the budget that set
/// the limit, never a `timeout_ms` the scope does not have.
#[zen(max_db_ms = 50, mode = "enforce")]
async fn cut_at_its_limit() -> Result<(), zen_runtime::BudgetExceeded> {
    let op = instrument::query("sqlite", "SELECT 1")?;
    assert_eq!(op.time_limit().map(|left| left <= std::time::Duration::from_millis(50)), Some(true));
    Err(op.took(std::time::Duration::from_micros(49_900)).expire())
}

#[tokio::test]
async fn a_limit_that_runs_out_early_names_its_own_budget() {
    let exceeded = cut_at_its_limit().await.unwrap_err();
    assert_eq!((exceeded.budget(), exceeded.limit()), (Budget::DbTime, 50), "{exceeded}");
}
