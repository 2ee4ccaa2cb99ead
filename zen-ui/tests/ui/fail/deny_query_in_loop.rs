use sqlx::SqlitePool;
use zen_runtime::zen;

#[zen(deny_query_in_loop = true)]
async fn authors(pool: &SqlitePool, ids: &[i64]) -> Result<Vec<String>, sqlx::Error> {
    let mut names = Vec::new();
    for id in ids {
        names.push(sqlx::query_scalar("SELECT name FROM users WHERE id = ?").bind(id).fetch_one(pool).await?);
    }
    let futures = ids.iter().map(|id| sqlx::query_scalar::<_, String>("SELECT name FROM users WHERE id = ?").bind(id).fetch_one(pool));
    let _ = futures;
    Ok(names)
}

fn main() {}
