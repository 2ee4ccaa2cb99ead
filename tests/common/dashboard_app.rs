#![allow(unreachable_pub)]
//! The app both dashboard tests serve: routes with known figures on SQLite
//! in memory, under the layer, and the dashboard at `/_zen`.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use zen_runtime::dashboard::{Authorize, Dashboard};
use zen_runtime::db::SqlitePool;
use zen_runtime::layer::ZenLayer;
use zen_runtime::{instrument, zen};

pub const TOKEN: &str = "test-token-0123456789abcdef";

#[zen(max_queries = 4)]
async fn article(State(pool): State<SqlitePool>, Path(id): Path<i64>) -> String {
    for n in 1..=3 {
        let _: String =
            sqlx::query_scalar("SELECT name FROM users WHERE id = ?").bind(n).fetch_one(&pool).await.unwrap();
    }
    format!("article {id}")
}

#[zen(max_queries = 20)]
async fn listing(State(pool): State<SqlitePool>) -> String {
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM articles ORDER BY id").fetch_all(&pool).await.unwrap();
    for id in &ids[..6] {
        let _: String =
            sqlx::query_scalar("SELECT name FROM users WHERE id = ?").bind(id).fetch_one(&pool).await.unwrap();
    }
    format!("{} articles", ids.len())
}

/// The name of a scope whose name and statement carry markup.
pub const HOSTILE: &str = "<script>window.zenInjected = 1</script>";

/// A scope whose name and statement carry markup, as a name given by
/// `name = ...` or a job's name from data could.
#[zen(name = "<script>window.zenInjected = 1</script>", kind = "other")]
async fn hostile() -> &'static str {
    // A statement of a backend zen has no dialect for.
    instrument::query("memcached", "GET <script>alert(1)</script>").unwrap().finish(true);
    "ok"
}

/// The app of these tests, its routes under `prefix`, and the dashboard at
/// `/_zen`, after the layer.
pub async fn serve(prefix: &str, dashboard: &Dashboard) -> String {
    serve_with(prefix, dashboard, ZenLayer::new(), Authorize::token(TOKEN).unwrap()).await
}

/// [`serve`], with this layer and this authorisation.
pub async fn serve_with(prefix: &str, dashboard: &Dashboard, layer: ZenLayer, authorize: Authorize) -> String {
    let pool = super::common::sqlite_pool_at(&super::common::sqlite_url(), 2).await;
    let app = Router::new()
        .route(&format!("{prefix}/articles/{{id}}"), get(article))
        .route(&format!("{prefix}/over"), get(super::common::over))
        .route(&format!("{prefix}/listing"), get(listing))
        .route(&format!("{prefix}/hostile"), get(hostile))
        .layer(layer)
        .layer(dashboard.layer("/_zen", authorize))
        .with_state(pool);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// Known traffic: 20 articles (3 queries each), 10 of `over` (half over
/// its 2 queries), 3 listings (an N+1 of 6), one hostile name.
pub async fn traffic(url: &str, prefix: &str) {
    let client = reqwest::Client::new();
    let get = |path: String| {
        let client = client.clone();
        async move {
            let r = client.get(path).send().await.unwrap();
            assert_eq!(r.status(), 200);
        }
    };
    for i in 0..20 {
        get(format!("{url}{prefix}/articles/{i}")).await;
    }
    for i in 0..10 {
        get(format!("{url}{prefix}/over?n={}", if i % 2 == 0 { 3 } else { 1 })).await;
    }
    for _ in 0..3 {
        get(format!("{url}{prefix}/listing")).await;
    }
    get(format!("{url}{prefix}/hostile")).await;
}
