use sqlx::{Executor, SqlitePool};
use zen_runtime::zen;

// Futures given to `join!` all run.
#[zen(max_queries = 1)]
async fn joined(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    let (a, b) = tokio::join!(
        sqlx::query("SELECT 1").fetch_one(pool),
        sqlx::query("SELECT 2").fetch_one(pool)
    );
    a?;
    b?;
    Ok(())
}

// Inside `format!` arguments, an async block awaited in place, and
// `Executor::execute` called by path.
#[zen(max_queries = 2)]
async fn elsewhere(pool: &SqlitePool) -> Result<String, sqlx::Error> {
    let text = format!("{}", sqlx::query_scalar::<_, i64>("SELECT 1").fetch_one(pool).await?);
    async { sqlx::query("SELECT 2").execute(pool).await }.await?;
    Executor::execute(pool, "DELETE FROM t").await?;
    Ok(text)
}

fn main() {}
