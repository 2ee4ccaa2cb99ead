use sqlx::SqlitePool;
use zen_runtime::zen;

#[zen(max_queries = 0)]
async fn render(pool: &SqlitePool) -> Result<String, sqlx::Error> {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(pool).await?;
    Ok(n.to_string())
}

fn main() {}
