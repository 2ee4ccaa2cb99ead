use sqlx::SqlitePool;
use zen_runtime::zen;

#[zen(max_queries = 2)]
async fn create_user(pool: &SqlitePool, name: &str) -> Result<i64, sqlx::Error> {
    sqlx::query("INSERT INTO users (name) VALUES (?)").bind(name).execute(pool).await?;
    let id: i64 = sqlx::query_scalar("SELECT last_insert_rowid()").fetch_one(pool).await?;
    if name.is_empty() {
        // In a branch: may not run, so not counted.
        sqlx::query("DELETE FROM users").execute(pool).await?;
    }
    sqlx::query("INSERT INTO audit (user_id) VALUES (?)").bind(id).execute(pool).await?;
    Ok(id)
}

fn main() {}
