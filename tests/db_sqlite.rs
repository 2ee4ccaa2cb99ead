//! The sqlx wrapper on a real SQLite database in memory: adoption by
//! swapping the pool type, exact counts, N+1, enforcement, failures.

#[path = "common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use futures::TryStreamExt;
use sqlx::Row;
use zen_runtime::db::{self, SqlitePool};
use zen_runtime::{Budget, BudgetExceeded, Outcome, testing, zen};

use common::AppError;

async fn pool(max_connections: u32) -> SqlitePool {
    common::sqlite_pool_at(&common::sqlite_url(), max_connections).await
}

#[derive(sqlx::FromRow)]
struct Article {
    id: i64,
    title: String,
}

/// Every sqlx call shape an application uses, unchanged.
#[zen(max_queries = 20)]
async fn every_shape(pool: &SqlitePool) -> Result<usize, AppError> {
    let one: i64 = sqlx::query_scalar("SELECT 1").fetch_one(pool).await?;
    let articles: Vec<Article> = sqlx::query_as("SELECT id, title FROM articles ORDER BY id").fetch_all(pool).await?;
    let maybe = sqlx::query("SELECT name FROM users WHERE id = ?").bind(99).fetch_optional(pool).await?;
    let row = sqlx::query!("SELECT 40 + 2 AS answer").fetch_one(pool).await?;
    let mut conn = pool.acquire().await?;
    sqlx::query("UPDATE users SET name = name WHERE id = 1").execute(&mut *conn).await?;
    drop(conn);
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO users (id, name) VALUES (100, 'tx')").execute(&mut *tx).await?;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&mut *tx).await?;
    tx.commit().await?;
    // A stream dropped halfway: one query, however many rows were read.
    let mut rows = sqlx::query("SELECT id FROM articles").fetch(pool);
    let first = rows.try_next().await?.expect("a row");
    drop(rows);
    assert_eq!((one, row.answer, n, first.get::<i64, _>(0)), (1, 42, 11, 1));
    assert!(maybe.is_none());
    assert_eq!(articles[0].title, "a1");
    Ok(articles.iter().filter(|a| a.id > 0).count())
}

#[tokio::test]
async fn every_call_shape_is_counted_exactly_once() {
    let pool = pool(2).await;
    let (result, reports) = testing::collect(every_shape(&pool)).await;
    assert_eq!(result.unwrap(), 10);
    let r = &reports[0];
    // 4 on the pool, 1 on the connection, BEGIN + 2 + COMMIT, 1 stream.
    assert_eq!(r.figures.queries(), 10, "{r}");
    assert_eq!(r.figures.failed_queries(), 0);
    assert!(r.figures.db_time() > Duration::ZERO && r.figures.db_time() <= r.figures.elapsed(), "{r}");
    assert!(r.backends.iter().any(|b| b.backend == "SQLite" && b.queries == 10), "{:?}", r.backends);
    let fingerprints: Vec<&str> = r.statements.iter().map(|s| s.fingerprint.as_str()).collect();
    for expected in ["SELECT ?", "SELECT name FROM users WHERE id = ?", "BEGIN", "COMMIT", "SELECT id FROM articles"] {
        assert!(fingerprints.contains(&expected), "{expected} in {fingerprints:?}");
    }
    assert!(r.n_plus_one.is_empty());
}

#[zen(max_queries = 3)]
async fn n_plus_one(pool: &SqlitePool, ids: &[i64]) -> Result<Vec<String>, AppError> {
    let mut names = Vec::new();
    for id in ids {
        let name: String = sqlx::query_scalar("SELECT name FROM users WHERE id = ?").bind(id).fetch_one(pool).await?;
        names.push(name);
    }
    Ok(names)
}

#[tokio::test]
async fn an_n_plus_one_loop_is_flagged_with_its_call_site() {
    let pool = pool(1).await;
    let ((), reports) = testing::collect(async {
        n_plus_one(&pool, &[1, 2, 3, 4, 5, 6, 7]).await.unwrap();
        n_plus_one(&pool, &[1, 2, 3, 4]).await.unwrap();
    })
    .await;
    let flagged = &reports[0];
    assert_eq!(flagged.n_plus_one.len(), 1, "{flagged}");
    let suspect = &flagged.n_plus_one[0];
    assert_eq!((suspect.fingerprint.as_str(), suspect.count), ("SELECT name FROM users WHERE id = ?", 7));
    let site = suspect.call_site.as_deref().unwrap();
    assert!(site.contains(concat!(module_path!(), "::n_plus_one")), "{site}");
    assert!(site.contains("(tests/db_sqlite.rs:"), "file and line, relative to the workspace: {site}");
    assert!(!site.contains(env!("CARGO_MANIFEST_DIR")), "no path of the machine that built it: {site}");
    assert_eq!(flagged.violation(Budget::Queries).map(|v| v.used), Some(7));
    assert!(reports[1].n_plus_one.is_empty(), "4 repetitions are under the threshold of 5");
}

/// An N+1 loop of streams each dropped after its first row: every run ends
/// in a drop, so the call site is taken where the statement is issued.
#[zen(n_plus_one = 3)]
async fn first_rows(pool: &SqlitePool) -> Result<u32, AppError> {
    let mut issued_at = 0;
    for _ in 0..4 {
        let mut rows = sqlx::query("SELECT id FROM articles ORDER BY id").fetch(pool);
        let (first, line) = (rows.try_next().await?, line!());
        assert!(first.is_some());
        issued_at = line;
    }
    Ok(issued_at)
}

#[tokio::test]
async fn an_n_plus_one_of_dropped_streams_is_flagged_where_it_is_issued() {
    let pool = pool(1).await;
    let asking = common::Timelines::asked();
    let (result, reports) = testing::collect(first_rows(&pool)).await;
    drop(asking);
    let line = result.unwrap();
    let [suspect] = reports[0].n_plus_one.as_slice() else { panic!("one suspect: {}", reports[0]) };
    assert_eq!(suspect.count, 4);
    let site = suspect.call_site.as_deref().unwrap_or_default();
    assert!(site.contains("first_rows") && site.ends_with(&format!("(tests/db_sqlite.rs:{line})")), "{site:?}");
    // The same statement with the same (no) values: a duplicate, whose
    // call site is taken where it is issued too.
    let [duplicate] = reports[0].duplicates() else { panic!("one duplicate: {}", reports[0]) };
    assert_eq!(duplicate.count, 4);
    let site = duplicate.call_site.as_deref().unwrap_or_default();
    assert!(site.contains("first_rows") && site.ends_with(&format!("(tests/db_sqlite.rs:{line})")), "{site:?}");
}

#[zen(max_queries = 3, mode = "enforce")]
async fn insert_many(pool: &SqlitePool, n: i64) -> Result<(), AppError> {
    for i in 0..n {
        sqlx::query("INSERT INTO users (id, name) VALUES (?, ?)")
            .bind(1000 + i)
            .bind(format!("n{i}"))
            .execute(pool)
            .await?;
    }
    Ok(())
}

#[tokio::test]
async fn enforce_refuses_the_query_past_max_queries_before_it_reaches_sqlite() {
    let pool = pool(1).await;
    let (result, reports) = testing::collect(insert_many(&pool, 6)).await;
    let Err(AppError::Db(error)) = result else { panic!("expected the refusal as a sqlx::Error") };
    let exceeded = std::error::Error::source(&error)
        .and_then(|s| s.downcast_ref::<BudgetExceeded>())
        .expect("source() is BudgetExceeded");
    assert_eq!((exceeded.budget(), exceeded.limit()), (Budget::Queries, 3));
    assert_eq!(db::as_budget_exceeded(&error), Some(exceeded));
    let inserted: i64 =
        sqlx::query_scalar("SELECT count(*) FROM users WHERE id >= 1000").fetch_one(pool.as_sqlx()).await.unwrap();
    assert_eq!(inserted, 3, "the 4th insert never reached the database");
    assert_eq!((reports[0].figures.queries(), reports[0].figures.refused_queries()), (4, 1));
}

#[tokio::test]
async fn observe_changes_nothing() {
    let pool = pool(1).await;
    let ((), reports) = testing::collect(async {
        n_plus_one(&pool, &[1, 2, 3, 4, 5, 6]).await.unwrap();
    })
    .await;
    assert_eq!(reports[0].outcome, Outcome::Exceeded);
    assert_eq!(reports[0].figures.queries(), 6, "all ran");
}

const SLOW: &str =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000000) SELECT count(*) FROM c";

#[zen(max_db_ms = 50, mode = "enforce")]
async fn slow(pool: &SqlitePool) -> Result<i64, AppError> {
    Ok(sqlx::query_scalar(SLOW).fetch_one(pool).await?)
}

#[tokio::test]
async fn enforce_cuts_a_slow_query_at_the_db_budget_and_the_pool_recovers() {
    let pool = pool(2).await;
    let start = Instant::now();
    let (result, reports) = testing::collect(slow(&pool)).await;
    let waited = start.elapsed();
    let Err(AppError::Db(error)) = result else { panic!("expected a cut") };
    assert_eq!(db::as_budget_exceeded(&error).map(BudgetExceeded::budget), Some(Budget::DbTime), "{error}");
    assert!(waited < Duration::from_millis(1000), "cut near 50 ms, not at the end of the query: {waited:?}");
    let r = &reports[0];
    assert_eq!((r.figures.queries(), r.figures.failed_queries(), r.outcome), (1, 1, Outcome::Exceeded), "{r}");
    // The cut connection was closed, not returned: the pool still serves.
    let one: i64 = sqlx::query_scalar("SELECT 1").fetch_one(&pool).await.unwrap();
    assert_eq!(one, 1);
}

#[zen]
async fn failures(pool: &SqlitePool) -> Vec<bool> {
    vec![
        sqlx::query("SELEC broken").execute(pool).await.is_err(),
        sqlx::query("INSERT INTO users (id, name) VALUES (1, 'dup')").execute(pool).await.is_err(),
        sqlx::query("SELECT 1").execute(pool).await.is_err(),
    ]
}

#[tokio::test]
async fn failed_queries_count_and_say_so() {
    let pool = pool(1).await;
    let (errors, reports) = testing::collect(failures(&pool)).await;
    assert_eq!(errors, [true, true, false]);
    assert_eq!((reports[0].figures.queries(), reports[0].figures.failed_queries()), (3, 2));
}

#[zen(name = "db_sqlite::numbered")]
async fn numbered(pool: SqlitePool, n: u64) -> u64 {
    for _ in 0..n {
        let _: i64 = sqlx::query_scalar("SELECT count(*) FROM articles").fetch_one(&pool).await.unwrap();
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_scopes_each_count_their_own_queries() {
    let pool = pool(4).await;
    let ((), reports) = testing::collect(async {
        let tasks: Vec<_> = (0..200u64).map(|i| zen_runtime::spawn(numbered(pool.clone(), i % 7))).collect();
        for task in tasks {
            task.await.unwrap();
        }
    })
    .await;
    assert_eq!(reports.len(), 200);
    common::assert_counts(&reports, (0..200).map(|i| i % 7));
}

/// Streams on a pool of one connection: each must give it back when it
/// ends (even while still held) and when dropped halfway, or the next
/// query waits for it.
#[zen(max_queries = 4)]
async fn streams_on_one_connection(pool: &SqlitePool) -> Result<(u64, i64), AppError> {
    let mut ended = sqlx::query("SELECT id FROM articles ORDER BY id").fetch(pool);
    let mut read = 0;
    while ended.try_next().await?.is_some() {
        read += 1;
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM articles").fetch_one(pool).await?;
    let mut halfway = sqlx::query("SELECT id FROM articles").fetch(pool);
    halfway.try_next().await?.expect("a row");
    drop(halfway);
    let again: i64 = sqlx::query_scalar("SELECT count(*) FROM articles").fetch_one(pool).await?;
    drop(ended);
    assert_eq!(count, again);
    Ok((read, count))
}

#[tokio::test]
async fn a_pool_stream_gives_its_connection_back_when_it_ends_or_is_dropped() {
    let pool = pool(1).await;
    let (result, report) =
        testing::measure(tokio::time::timeout(Duration::from_secs(10), streams_on_one_connection(&pool))).await;
    let (read, count) = result.expect("no query waited for a connection a stream kept").unwrap();
    assert_eq!((read, count), (10, 10));
    // 10 streamed, 1 counted, 1 read before the drop, 1 counted again.
    assert_eq!((report.figures.queries(), report.figures.rows(), report.figures.failed_queries()), (4, 13, 0));
}

#[zen]
async fn waits_for_a_connection(pool: &SqlitePool) -> i64 {
    sqlx::query_scalar("SELECT 1").fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn time_waiting_for_a_pooled_connection_is_reported_apart() {
    let pool = pool(1).await;
    let held = pool.acquire().await.unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(60)).await;
        drop(held);
    });
    let (one, report) = testing::measure(waits_for_a_connection(&pool)).await;
    release.await.unwrap();
    assert_eq!(one, 1);
    assert!(report.figures.db_wait() >= Duration::from_millis(40), "{report}");
    assert!(report.figures.db_time() < Duration::from_millis(40), "query time excludes the wait: {report}");
}

#[tokio::test]
async fn outside_a_scope_the_pool_is_plain_sqlx() {
    let pool = pool(1).await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&pool).await.unwrap();
    assert_eq!(n, 10);
}

// Over budget on purpose (what the static check sees): `static_check = false`.
#[zen(max_queries = 2, mode = "enforce", static_check = false)]
async fn refused_savepoint(pool: &SqlitePool) -> Result<(), AppError> {
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO users (id, name) VALUES (500, 'in tx')").execute(&mut *tx).await?;
    let savepoint = tx.begin().await;
    assert!(savepoint.is_err(), "the third statement, SAVEPOINT, is refused");
    drop(savepoint);
    // Dropping the refused savepoint must not touch the outer transaction,
    // whose own drop then rolls back once.
    assert!(sqlx::query("SELECT 1").execute(&mut *tx).await.is_err(), "still over budget");
    Ok(())
}

#[tokio::test]
async fn a_refused_savepoint_leaves_its_transaction_alone() {
    let pool = pool(1).await;
    let (result, reports) = testing::collect(refused_savepoint(&pool)).await;
    result.unwrap();
    let r = &reports[0];
    // BEGIN and INSERT issued; SAVEPOINT and SELECT asked for and refused.
    // The ROLLBACK sqlx sends for the dropped transaction is the pool's.
    assert_eq!((r.figures.queries(), r.figures.refused_queries()), (4, 2), "{r}");
    assert_eq!(r.violation(Budget::Queries).map(|v| v.used), Some(4));
    let rolled_back: i64 =
        sqlx::query_scalar("SELECT count(*) FROM users WHERE id = 500").fetch_one(&pool).await.unwrap();
    assert_eq!(rolled_back, 0);
}

#[tokio::test]
async fn the_pool_builder_has_sqlx_shape() {
    let pool = zen_runtime::db::SqlitePoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&common::sqlite_url())
        .await
        .unwrap();
    let (n, report) =
        testing::measure(async { sqlx::query_scalar::<_, i64>("SELECT 41 + 1").fetch_one(&pool).await }).await;
    assert_eq!(n.unwrap(), 42);
    assert_eq!(report.figures.queries(), 1);
}
