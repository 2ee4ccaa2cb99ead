use sqlx::SqlitePool;
use zen_runtime::db;
use zen_runtime::zen;

// BEGIN, two inserts and COMMIT: four operations on every call.
#[zen(max_queries = 2)]
async fn transfer(pool: &db::SqlitePool) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE accounts SET balance = balance - 1 WHERE id = 1").execute(&mut *tx).await?;
    sqlx::query("UPDATE accounts SET balance = balance + 1 WHERE id = 2").execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

fn main() {
    let _: Option<SqlitePool> = None;
}
