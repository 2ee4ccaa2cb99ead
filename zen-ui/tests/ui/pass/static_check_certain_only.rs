//! The static check fires only when every way through the body runs more
//! queries than the budget: none of these does.
#![deny(warnings)]
use futures::TryStreamExt;
use sqlx::SqlitePool;
use zen_runtime::zen;

struct Cache;
impl Cache {
    async fn execute(&self, _key: &str) {}
    fn fetch(&self, _key: &str) -> u32 {
        0
    }
}

struct Http;
impl Http {
    async fn execute(&self, _request: u32) -> u32 {
        0
    }
}

// Methods that only share sqlx's names.
#[zen(max_queries = 0)]
async fn not_queries(cache: &Cache, http: &Http) -> u32 {
    cache.execute("user:1").await;
    http.execute(1).await + cache.fetch("x")
}

// A query future built and dropped, a stream never polled.
#[zen(max_queries = 1)]
async fn built_not_run(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    let unused = sqlx::query("DELETE FROM a").execute(pool);
    drop(unused);
    let _stream = sqlx::query("SELECT 1").fetch(pool);
    sqlx::query("SELECT 2").execute(pool).await?;
    Ok(())
}

// A labeled block that may break before the queries.
#[zen(max_queries = 1)]
async fn labeled(pool: &SqlitePool, skip: bool) -> Result<(), sqlx::Error> {
    'work: {
        if skip {
            break 'work;
        }
        sqlx::query("SELECT 1").execute(pool).await?;
        sqlx::query("SELECT 2").execute(pool).await?;
    }
    Ok(())
}

// Code after `let ... else { return }` may not run.
#[zen(max_queries = 1)]
async fn let_else(pool: &SqlitePool, id: Option<i64>) -> Result<(), sqlx::Error> {
    let Some(id) = id else { return Ok(()) };
    sqlx::query("SELECT ?").bind(id).execute(pool).await?;
    sqlx::query("SELECT ?").bind(id).execute(pool).await?;
    Ok(())
}

// A stream consumed to the end is one query.
#[zen(max_queries = 1)]
async fn streamed(pool: &SqlitePool) -> Result<Vec<sqlx::sqlite::SqliteRow>, sqlx::Error> {
    sqlx::query("SELECT 1").fetch(pool).try_collect().await
}

fn main() {
    let _ = (not_queries, built_not_run, labeled, let_else, streamed);
}
