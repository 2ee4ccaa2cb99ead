//! The apps that `instructions.rs` counts and `web.rs` times. The trivial
//! handler's baselines: bare, under a do-nothing `from_fn`, under
//! tower-http's `TraceLayer` (each bench adds its zen variants, whose
//! limits differ). The realistic list endpoint: 20 articles of about 1.3 KB of JSON each, read with one query and
//! answered through axum's `Json`, on PostgreSQL and on SQLite; plain (sqlx's
//! pool, no layer) against the whole zen stack (zen's pool, a `#[zen]`
//! handler, the layer). Time limits are generous: under callgrind
//! everything runs some fifty times slower, and a blown budget would build
//! a report and an event that the plain arm does not.
#![allow(dead_code, unreachable_pub)]

use axum::body::Body;
use axum::extract::State;
use axum::http::Request;
use axum::routing::get;
use axum::{Json, Router};
use zen_runtime::layer::ZenLayer;
use zen_runtime::zen;

async fn hello() -> &'static str {
    "hello, world"
}

/// `hello`'s route, `/`, with `hello` as its handler; `handler` for the
/// variants that annotate it.
pub fn trivial<H, T>(handler: H) -> Router
where
    H: axum::handler::Handler<T, ()>,
    T: 'static,
{
    Router::new().route("/", get(handler))
}

async fn noop(request: Request<Body>, next: axum::middleware::Next) -> axum::response::Response {
    next.run(request).await
}

/// The trivial handler without middleware, under a do-nothing `from_fn`,
/// and under `TraceLayer` (no subscriber).
pub fn trivial_baselines() -> [Router; 3] {
    [
        trivial(hello),
        trivial(hello).layer(axum::middleware::from_fn(noop)),
        trivial(hello).layer(tower_http::trace::TraceLayer::new_for_http()),
    ]
}

pub const PATH: &str = "/articles";
const LIST: &str = "SELECT id, title, author, body, tags FROM zen_bench_articles ORDER BY id LIMIT 20";

#[derive(serde::Serialize)]
struct Article {
    id: i64,
    title: String,
    author: String,
    body: String,
    tags: String,
}

type Row = (i64, String, String, String, String);

fn articles(rows: Vec<Row>) -> Json<Vec<Article>> {
    Json(rows.into_iter().map(|(id, title, author, body, tags)| Article { id, title, author, body, tags }).collect())
}

async fn plain_pg(State(pool): State<sqlx::PgPool>) -> Json<Vec<Article>> {
    articles(sqlx::query_as(LIST).fetch_all(&pool).await.unwrap())
}

#[zen(max_queries = 5, max_db_ms = 30_000, max_mem_kb = 4096, timeout_ms = 60_000)]
async fn zen_pg(State(pool): State<zen_runtime::db::PgPool>) -> Json<Vec<Article>> {
    articles(sqlx::query_as(LIST).fetch_all(&pool).await.unwrap())
}

async fn plain_sqlite(State(pool): State<sqlx::SqlitePool>) -> Json<Vec<Article>> {
    articles(sqlx::query_as(LIST).fetch_all(&pool).await.unwrap())
}

#[zen(max_queries = 5, max_db_ms = 30_000, max_mem_kb = 4096, timeout_ms = 60_000)]
async fn zen_sqlite(State(pool): State<zen_runtime::db::SqlitePool>) -> Json<Vec<Article>> {
    articles(sqlx::query_as(LIST).fetch_all(&pool).await.unwrap())
}

/// Twenty articles through `$db` (any executor) with `$insert`.
macro_rules! seed {
    ($db:expr, $insert:expr) => {
        for id in 1..=20_i64 {
            sqlx::query($insert)
                .bind(id)
                .bind(format!("Article number {id}: budgets for every request"))
                .bind(format!("author{}", id % 5))
                .bind(format!("Paragraph {id}. ").repeat(80))
                .bind("rust,axum,sqlx,budgets")
                .execute($db)
                .await
                .unwrap();
        }
    };
}

pub fn postgres_url() -> String {
    std::env::var("ZEN_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// The articles table on PostgreSQL, written afresh.
async fn seed_pg() {
    use sqlx::Connection;
    let mut db = sqlx::PgConnection::connect(&postgres_url()).await.unwrap();
    sqlx::query("CREATE TABLE IF NOT EXISTS zen_bench_articles (id BIGINT PRIMARY KEY, title TEXT NOT NULL, author TEXT NOT NULL, body TEXT NOT NULL, tags TEXT NOT NULL)")
        .execute(&mut db)
        .await
        .unwrap();
    sqlx::query("DELETE FROM zen_bench_articles").execute(&mut db).await.unwrap();
    seed!(&mut db, "INSERT INTO zen_bench_articles (id, title, author, body, tags) VALUES ($1, $2, $3, $4, $5)");
}

fn pg_options() -> sqlx::postgres::PgPoolOptions {
    sqlx::postgres::PgPoolOptions::new().max_connections(1).min_connections(1)
}

/// Plain, on PostgreSQL (the table seeded afresh).
pub async fn plain_pg_app() -> Router {
    seed_pg().await;
    let pool = pg_options().connect(&postgres_url()).await.unwrap();
    Router::new().route(PATH, get(plain_pg)).with_state(pool)
}

/// The zen stack, on PostgreSQL (the table seeded afresh).
pub async fn zen_pg_app() -> Router {
    zen_pg_app_with(ZenLayer::new(), |router| router).await
}

/// The zen stack on PostgreSQL under `layer`, with `wrap` applied to the
/// router before its state: another layer, or a nested router.
pub async fn zen_pg_app_with(layer: ZenLayer, wrap: impl FnOnce(Router<ZenPg>) -> Router<ZenPg>) -> Router {
    seed_pg().await;
    let pool = zen_runtime::db::PgPool::connect_with_pool_options(pg_options(), postgres_url().parse().unwrap())
        .await
        .unwrap();
    wrap(Router::new().route(PATH, get(zen_pg)).layer(layer)).with_state(pool)
}

/// The state of the zen stack on PostgreSQL.
pub type ZenPg = zen_runtime::db::PgPool;

const SQLITE_TABLE: &str = "CREATE TABLE zen_bench_articles (id INTEGER PRIMARY KEY, title TEXT NOT NULL, author TEXT NOT NULL, body TEXT NOT NULL, tags TEXT NOT NULL)";
const SQLITE_INSERT: &str = "INSERT INTO zen_bench_articles (id, title, author, body, tags) VALUES (?, ?, ?, ?, ?)";

/// A pool of one connection to a database of its own in memory.
fn sqlite_options() -> (sqlx::sqlite::SqlitePoolOptions, sqlx::sqlite::SqliteConnectOptions) {
    (sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).min_connections(1), "sqlite::memory:".parse().unwrap())
}

/// Plain, on SQLite in memory.
pub async fn plain_sqlite_app() -> Router {
    let (pool, options) = sqlite_options();
    let pool = pool.connect_with(options).await.unwrap();
    sqlx::query(SQLITE_TABLE).execute(&pool).await.unwrap();
    seed!(&pool, SQLITE_INSERT);
    Router::new().route(PATH, get(plain_sqlite)).with_state(pool)
}

/// The zen stack, on SQLite in memory.
pub async fn zen_sqlite_app() -> Router {
    let (pool, options) = sqlite_options();
    let pool = zen_runtime::db::SqlitePool::connect_with_pool_options(pool, options).await.unwrap();
    sqlx::query(SQLITE_TABLE).execute(&pool).await.unwrap();
    seed!(&pool, SQLITE_INSERT);
    Router::new().route(PATH, get(zen_sqlite)).layer(ZenLayer::new()).with_state(pool)
}
