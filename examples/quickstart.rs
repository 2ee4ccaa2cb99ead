//! zen in one screen: a few handlers on SQLite in memory, each under a
//! budget, and the report of every call printed as a table.
//!
//! ```text
//! cargo run --example quickstart
//! ZEN_MODE=enforce cargo run --example quickstart
//! ```
#![allow(clippy::print_stdout)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::sqlite::SqlitePoolOptions;
use zen_runtime::db::SqlitePool;
use zen_runtime::{BudgetExceeded, Report, report, zen};

#[derive(Debug)]
enum AppError {
    Db(sqlx::Error),
    Budget(BudgetExceeded),
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppError::Db(e) => match zen_runtime::db::as_budget_exceeded(e) {
                Some(budget) => write!(f, "{budget}"),
                None => write!(f, "database: {e}"),
            },
            AppError::Budget(e) => write!(f, "{e}"),
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        AppError::Db(e)
    }
}

impl From<BudgetExceeded> for AppError {
    fn from(e: BudgetExceeded) -> Self {
        AppError::Budget(e)
    }
}

/// Within budget: one query for the whole page.
#[zen(max_queries = 2, max_db_ms = 50, timeout_ms = 200)]
async fn list_articles(pool: &SqlitePool) -> Result<usize, AppError> {
    let rows: Vec<(i64, String)> =
        sqlx::query_as("SELECT a.id, a.title || ' by ' || u.name FROM articles a JOIN users u ON u.id = a.author_id")
            .fetch_all(pool)
            .await?;
    Ok(rows.len())
}

/// N+1: one query for the list, then one per article.
#[zen(max_queries = 5, max_db_ms = 50, timeout_ms = 200)]
async fn list_articles_n_plus_one(pool: &SqlitePool) -> Result<usize, AppError> {
    let articles: Vec<(i64, String)> = sqlx::query_as("SELECT id, title FROM articles").fetch_all(pool).await?;
    for (id, _) in &articles {
        let _author: String =
            sqlx::query_scalar("SELECT u.name FROM users u JOIN articles a ON a.author_id = u.id WHERE a.id = ?")
                .bind(id)
                .fetch_one(pool)
                .await?;
    }
    Ok(articles.len())
}

/// A slow query: a recursive count that takes far longer than `max_db_ms`.
#[zen(max_queries = 3, max_db_ms = 20, timeout_ms = 1000)]
async fn slow_report(pool: &SqlitePool) -> Result<usize, AppError> {
    let n: i64 = sqlx::query_scalar(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) SELECT count(*) FROM c",
    )
    .bind(3_000_000)
    .fetch_one(pool)
    .await?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Sleeps past its deadline while holding no query at all.
#[zen(timeout_ms = 50)]
async fn slow_handler() -> Result<usize, AppError> {
    tokio::time::sleep(Duration::from_millis(120)).await;
    Ok(0)
}

async fn setup() -> Result<SqlitePool, sqlx::Error> {
    let pool = SqlitePool::connect_with_pool_options(
        SqlitePoolOptions::new().max_connections(2),
        "sqlite:file:quickstart?mode=memory&cache=shared".parse()?,
    )
    .await?;
    sqlx::query("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL)").execute(&pool).await?;
    sqlx::query("CREATE TABLE articles (id INTEGER PRIMARY KEY, title TEXT NOT NULL, author_id INTEGER NOT NULL)")
        .execute(&pool)
        .await?;
    for i in 1..=8 {
        sqlx::query("INSERT INTO users (id, name) VALUES (?, ?)")
            .bind(i)
            .bind(format!("user{i}"))
            .execute(&pool)
            .await?;
        sqlx::query("INSERT INTO articles (title, author_id) VALUES (?, ?)")
            .bind(format!("article {i}"))
            .bind(i)
            .execute(&pool)
            .await?;
    }
    Ok(pool)
}

fn print_table(reports: &[Report]) {
    println!("{:<42} {:>9} {:>9} {:>15} {:>15}  violations", "scope", "outcome", "queries", "db ms", "elapsed ms");
    for r in reports {
        let limit = |b| r.limits.get(b).map_or_else(|| "-".to_owned(), |l: u64| l.to_string());
        let violations: Vec<String> = r.violations.iter().map(ToString::to_string).collect();
        println!(
            "{:<42} {:>9} {:>9} {:>15} {:>15}  {}",
            r.name,
            r.outcome.as_str(),
            format!("{}/{}", r.queries, limit(zen_runtime::Budget::Queries)),
            format!("{:.1}/{}", r.db_time.as_secs_f64() * 1e3, limit(zen_runtime::Budget::DbTime)),
            format!("{:.1}/{}", r.elapsed.as_secs_f64() * 1e3, limit(zen_runtime::Budget::Timeout)),
            if violations.is_empty() { "-".to_owned() } else { violations.join("; ") }
        );
    }
    for r in reports {
        for suspect in &r.n_plus_one {
            println!(
                "N+1 in {}: {}x `{}` from {}",
                r.name,
                suspect.count,
                suspect.fingerprint,
                suspect.call_site.as_deref().unwrap_or("an unknown call site")
            );
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A bad ZEN_MODE stops the program here, naming the variable.
    let mode = match zen_runtime::init() {
        Ok(mode) => mode,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let reports = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&reports);
    report::add_sink(move |r| sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(r.clone()));

    let pool = setup().await?;
    println!("zen quickstart, global mode: {mode} (set ZEN_MODE=enforce to see budgets cut work short)\n");
    let results = [
        ("list_articles", list_articles(&pool).await),
        ("list_articles_n_plus_one", list_articles_n_plus_one(&pool).await),
        ("slow_report", slow_report(&pool).await),
        ("slow_handler", slow_handler().await),
    ];
    for (name, result) in &results {
        match result {
            Ok(n) => println!("{name:<26} -> ok, {n} rows"),
            Err(e) => println!("{name:<26} -> error: {e}"),
        }
    }
    println!();
    print_table(&reports.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    Ok(())
}
