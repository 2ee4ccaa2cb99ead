//! A request's timeline against real servers: an axum app on PostgreSQL
//! whose handler runs a known sequence (a `join!` of two queries, a
//! duplicate, an N+1, a slow query and a repeated call to a peer axum
//! server), read back operation by operation from the dashboard's JSON,
//! its page, the report and the event; no value in any of them; and the
//! timelines a dashboard keeps bounded under a flood of names.
//! `tests/dashboard_browser.rs` shows the same waterfall in Chromium.

mod common;

use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use serde_json::Value;
use zen_runtime::dashboard::{Authorize, Dashboard, Options};
use zen_runtime::db::PgPool;
use zen_runtime::fingerprint::{Dialect, fingerprint};
use zen_runtime::http::Client;
use zen_runtime::layer::ZenLayer;
use zen_runtime::{instrument, zen};

pub(crate) const TOKEN: &str = "timeline-token-0123456789";
/// A value bound to a query: it must reach no surface.
const SECRET: &str = "owner-secret-5521";
// The two run at once take 5 ms each, so that they overlap.
const COUNT: &str = "SELECT count(*) FROM zen_timeline_items, pg_sleep(0.005) WHERE owner = $1";
const NAME: &str = "SELECT name FROM zen_timeline_items, pg_sleep(0.005) WHERE id = $1";
const PRICE: &str = "SELECT price FROM zen_timeline_items WHERE id = $1";
const SLEEP: &str = "SELECT pg_sleep($1::float8)";

#[derive(Clone)]
struct App {
    pool: PgPool,
    peer: String,
    client: Client,
}

/// The known sequence: 2 queries at once, the second's statement again
/// with the same value (a duplicate), 5 prices one by one (an N+1), a
/// sleep of `id` × 10 ms, and 4 calls to the peer for one item each.
#[zen(max_queries = 30, timeout_ms = 80, n_plus_one = 4)]
async fn order(State(app): State<App>, Path(id): Path<i64>) -> String {
    let pool = &app.pool;
    let (count, name) = tokio::join!(
        sqlx::query_scalar::<_, i64>(COUNT).bind(SECRET).fetch_one(pool),
        sqlx::query_scalar::<_, String>(NAME).bind(id).fetch_one(pool),
    );
    let again: String = sqlx::query_scalar(NAME).bind(id).fetch_one(pool).await.unwrap();
    assert_eq!(name.unwrap(), again);
    let mut total = 0;
    for item in 1..=5_i64 {
        let price: i64 = sqlx::query_scalar(PRICE).bind(item).fetch_one(pool).await.unwrap();
        total += price;
    }
    sqlx::query(SLEEP).bind(id as f64 / 100.0).execute(pool).await.unwrap();
    for item in 1..=4 {
        let response = app.client.get(format!("{}/items/{item}?token={SECRET}", app.peer)).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap();
    }
    format!("{} items, {total}", count.unwrap())
}

async fn peer() -> String {
    let app = Router::new().route("/items/{id}", get(|Path(id): Path<u32>| async move { format!("item {id}") }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// The app on PostgreSQL under the layer, the dashboard at `/_zen`.
async fn serve(dashboard: &Dashboard, prefix: &str) -> Option<String> {
    let url = common::postgres_url().await?;
    let pool = PgPool::connect(&url).await.unwrap();
    sqlx::raw_sql(
        "DROP TABLE IF EXISTS zen_timeline_items; \
         CREATE TABLE zen_timeline_items (id BIGINT PRIMARY KEY, name TEXT NOT NULL, owner TEXT NOT NULL, price BIGINT NOT NULL); \
         INSERT INTO zen_timeline_items SELECT g, 'item ' || g, 'owner-secret-5521', g * 10 FROM generate_series(1, 10) g",
    )
    .execute(pool.as_sqlx())
    .await
    .unwrap();
    // Two connections open, so that the join's two queries need not wait.
    let (a, b) = tokio::join!(pool.as_sqlx().acquire(), pool.as_sqlx().acquire());
    drop((a.unwrap(), b.unwrap()));
    let app =
        App { pool, peer: peer().await, client: Client::builder().timeout(Duration::from_secs(5)).build().unwrap() };
    let router = Router::new()
        .route(&format!("{prefix}/orders/{{id}}"), get(order))
        .layer(ZenLayer::new())
        .layer(dashboard.layer("/_zen", Authorize::token(TOKEN).unwrap()))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    Some(address)
}

fn bearer() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    reqwest::Client::builder().default_headers(headers).build().unwrap()
}

async fn text(client: &reqwest::Client, url: &str) -> String {
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    response.text().await.unwrap()
}

/// Three orders (the third the slowest) under `prefix` (each test its own:
/// every dashboard sees every scope of the process), then the route's JSON.
pub(crate) async fn ordered(dashboard: &Dashboard, prefix: &str) -> Option<(String, Value)> {
    let url = serve(dashboard, prefix).await?;
    for id in 1..=3 {
        let body = reqwest::get(format!("{url}{prefix}/orders/{id}")).await.unwrap().text().await.unwrap();
        assert_eq!(body, "10 items, 150");
    }
    let client = bearer();
    let overview: Value = serde_json::from_str(&text(&client, &format!("{url}/_zen/api/overview")).await).unwrap();
    let name = format!("GET {prefix}/orders/{{id}}");
    let route = overview["routes"].as_array().unwrap().iter().find(|r| r["name"] == name).unwrap();
    let route: Value =
        serde_json::from_str(&text(&client, &format!("{url}/_zen/api/routes/{}", route["id"])).await).unwrap();
    Some((url, route))
}

#[tokio::test]
async fn the_slowest_request_is_kept_and_read_operation_by_operation() {
    let dashboard = Dashboard::with_options(Options::default().timelines(2).sample_one_in(100));
    // Another dashboard, seeing the same requests, keeps none of the worst
    // and samples one in two: the first and the third (the slowest).
    let sampler = Dashboard::with_options(Options::default().timelines(0).sample_one_in(2));
    let Some((url, route)) = ordered(&dashboard, "/t").await else { return };
    let client = bearer();
    let pages = Router::new().nest("/_zen", sampler.router::<()>(Authorize::token(TOKEN).unwrap()));
    let overview = common::dashboard_overview(pages.clone(), TOKEN).await;
    let ours = overview["routes"].as_array().unwrap().iter().find(|r| r["name"] == "GET /t/orders/{id}").unwrap();
    let sampled = common::dashboard_get(pages, &format!("/_zen/api/routes/{}", ours["id"]), TOKEN).await;
    let sampled = sampled["timelines"].as_array().unwrap();
    assert_eq!(sampled.len(), 2, "{sampled:?}");
    assert!(sampled.iter().all(|k| k["kept_as"] == "sampled"), "{sampled:?}");
    // Newest first: the third request (30 ms of sleep), then the first (10).
    let ms = |k: &Value| k["elapsed_ms"].as_f64().unwrap();
    assert!(ms(&sampled[0]) >= 30.0 && ms(&sampled[1]) >= 10.0, "{sampled:?}");

    // The two slowest kept as the worst, the slowest first.
    let kept = route["timelines"].as_array().unwrap();
    let worst: Vec<&Value> = kept.iter().filter(|k| k["kept_as"] == "worst").collect();
    assert_eq!(worst.len(), 2, "{route}");
    let elapsed: Vec<f64> = worst.iter().map(|k| k["elapsed_ms"].as_f64().unwrap()).collect();
    assert!(elapsed[0] >= elapsed[1], "{elapsed:?}");
    let max = route["figures"]["elapsed_ms"]["max"].as_f64().unwrap();
    assert!((elapsed[0] - max).abs() < 0.01, "the slowest of the route is kept first: {route}");
    assert!(elapsed[0] >= 30.0, "the slowest slept 30 ms at least: {elapsed:?}");
    let id = &kept[0]["id"];
    let body = text(&client, &format!("{url}/_zen/api/requests/{id}")).await;
    assert!(!body.contains(SECRET), "a bound value reached the JSON: {body}");
    assert!(!body.contains("/items/1"), "a path's value reached the JSON: {body}");
    let t: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(t["name"], "GET /t/orders/{id}");
    assert_eq!(t["timeout_ms"], 80);
    let ops = t["operations"].as_array().unwrap();
    let pg = |sql: &str| fingerprint(sql, Dialect::Postgres);
    let call = "GET 127.0.0.1/items/{}";
    let statements: Vec<&str> = ops.iter().map(|o| o["statement"].as_str().unwrap()).collect();
    // The join's two in either order, then the rest as the handler ran them.
    let mut first_two = statements[..2].to_vec();
    first_two.sort_unstable();
    let mut joined = vec![pg(COUNT), pg(NAME)];
    joined.sort_unstable();
    assert_eq!(first_two, joined, "{statements:?}");
    let rest: Vec<String> = [vec![pg(NAME)], vec![pg(PRICE); 5], vec![pg(SLEEP)], vec![call.to_owned(); 4]].concat();
    assert_eq!(statements[2..], rest.iter().map(String::as_str).collect::<Vec<_>>()[..], "{statements:?}");
    for o in ops {
        assert_eq!(o["outcome"], "ok", "{o}");
    }
    let backends: Vec<&str> = ops.iter().map(|o| o["backend"].as_str().unwrap()).collect();
    assert_eq!(backends, [vec!["PostgreSQL"; 9], vec!["http"; 4]].concat());
    let rows: Vec<u64> = ops.iter().map(|o| o["rows"].as_u64().unwrap()).collect();
    assert_eq!(rows[..8], [1; 8], "each query of one row counts it");
    // The join ran both at once: each started before the other ended.
    let (a, b) = (&ops[0], &ops[1]);
    let end = |o: &Value| o["start_ms"].as_f64().unwrap() + o["ms"].as_f64().unwrap();
    assert!(b["start_ms"].as_f64().unwrap() < end(a) && a["start_ms"].as_f64().unwrap() < end(b), "{a} {b}");
    // Each one after the join started after the one before it ended.
    for pair in ops[1..].windows(2) {
        assert!(pair[1]["start_ms"].as_f64().unwrap() >= end(&pair[0]) - 0.05, "{pair:?}");
    }
    // The sleep: 10, 20 or 30 ms of the whole (the 30 ms request is the
    // slowest unless the machine held another one longer).
    let sleep = ops[8]["ms"].as_f64().unwrap();
    assert!((10.0..t["elapsed_ms"].as_f64().unwrap()).contains(&sleep), "{t}");
    // The handler's own code: its polls. Each operation began in one of
    // them, as the handler's code issued it.
    let polls = t["polls"].as_array().unwrap();
    let polled = |at: f64| {
        polls.iter().any(|p| {
            let start = p["start_ms"].as_f64().unwrap();
            (start - 0.05..=start + p["ms"].as_f64().unwrap() + 0.05).contains(&at)
        })
    };
    assert!(ops.iter().all(|o| polled(o["start_ms"].as_f64().unwrap())), "{t}");
    let last_end = ops.iter().map(end).fold(0.0, f64::max);
    assert!(last_end <= t["elapsed_ms"].as_f64().unwrap() + 0.05);

    // The findings, each with the call site in this file.
    let duplicates = t["duplicates"].as_array().unwrap();
    assert_eq!(duplicates.len(), 1, "{t}");
    assert_eq!(duplicates[0]["statement"], pg(NAME));
    assert_eq!(duplicates[0]["count"], 2);
    assert!(duplicates[0]["call_site"].as_str().unwrap().contains("tests/timeline.rs"), "{t}");
    let calls = t["repeated_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{t}");
    assert_eq!(calls[0]["call"], call);
    assert_eq!(calls[0]["count"], 4);
    assert!(calls[0]["call_site"].as_str().unwrap().contains("tests/timeline.rs"), "{t}");
    let n_plus_one = t["n_plus_one"].as_array().unwrap();
    assert_eq!(n_plus_one.len(), 1, "{t}");
    assert_eq!(n_plus_one[0]["statement"], pg(PRICE));

    // The page: one bar per operation, the budget's line, the findings.
    let page = text(&client, &format!("{url}/_zen/requests/{id}")).await;
    assert!(!page.contains(SECRET) && !page.contains("/items/1"), "a value reached the page");
    assert_eq!(page.matches("<rect class=\"bar ").count(), 13);
    assert_eq!(page.matches("class=\"bar b-http o-ok\"").count(), 4);
    assert!(page.contains("<line class=\"budget\""));
    assert!(page.contains("<tr class=\"duplicate\">") && page.contains("<tr class=\"repeated-call\">"));
    // The route's page shows the worst one's waterfall.
    let route_page = text(&client, &format!("{url}/_zen/routes/{}", route["id"])).await;
    assert!(route_page.contains("<svg class=\"waterfall\"") && route_page.contains(&format!("requests/{id}")));
    assert!(!route_page.contains(SECRET));
    let missing = client.get(format!("{url}/_zen/api/requests/999999")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    // Without the token, nobody sees a request's timeline.
    for path in [format!("/_zen/api/requests/{id}"), format!("/_zen/requests/{id}")] {
        let stranger = reqwest::get(format!("{url}{path}")).await.unwrap();
        assert_eq!(stranger.status(), 404, "{path}");
        assert!(!stranger.text().await.unwrap().contains("orders"), "{path}");
    }
}

#[zen(max_queries = 50)]
async fn repeats(pool: &zen_runtime::db::SqlitePool) {
    for n in [1, 1, 2, 1] {
        let _: i64 = sqlx::query_scalar("SELECT ? + 0").bind(n).fetch_one(pool).await.unwrap();
    }
    // Literal values are values too.
    for _ in 0..2 {
        let _: i64 = sqlx::query_scalar("SELECT 7 + 0").fetch_one(pool).await.unwrap();
    }
    let _: i64 = sqlx::query_scalar("SELECT 8 + 0").fetch_one(pool).await.unwrap();
    // An operation whose adapter gives no values is never a duplicate.
    for _ in 0..3 {
        instrument::query("kv", "GET ?").unwrap().finish(true);
    }
}

#[tokio::test]
async fn duplicates_are_the_same_statement_with_the_same_values_in_the_report() {
    let _dashboard = Dashboard::new();
    let pool = common::sqlite_pool_at(&common::sqlite_url(), 1).await;
    // The scope `measure` opens records the timeline of the fn's inside it.
    let (_, report) = zen_runtime::testing::measure(repeats(&pool)).await;
    let found: Vec<(String, u64)> = report.duplicates().iter().map(|d| (d.fingerprint.clone(), d.count)).collect();
    assert_eq!(
        found,
        [(fingerprint("SELECT ? + 0", Dialect::Sqlite), 3), (fingerprint("SELECT 7 + 0", Dialect::Sqlite), 2)],
        "{report}"
    );
    let json = report.to_json();
    assert!(json.contains("\"duplicates\":[{\"statement\":"), "{json}");
    assert!(report.to_string().contains("duplicate        3x"), "{report}");
}

#[tokio::test]
async fn a_flood_of_names_keeps_a_bounded_number_of_timelines() {
    let dashboard = Dashboard::with_options(Options::default().max_names(10).timelines(2).sample_one_in(1));
    let jobs = zen_runtime::jobs::Jobs::builder().start().unwrap();
    for i in 0..50 {
        jobs.spawn(format!("timeline flood {i}"), move || async move {
            for n in 0..150 {
                instrument::query("PostgreSQL", &format!("SELECT {n} FROM flood_{i}")).unwrap().finish(true);
            }
        })
        .unwrap();
    }
    assert!(jobs.shutdown(Duration::from_secs(30)).await.abandoned.is_empty());
    let client = Router::new().nest("/_zen", dashboard.router::<()>(Authorize::token(TOKEN).unwrap()));
    let overview = common::dashboard_overview(client.clone(), TOKEN).await;
    let mut kept = 0;
    let mut ours = None;
    for route in overview["routes"].as_array().unwrap().iter().filter(|r| r["kind"] == "job") {
        let detail = common::dashboard_get(client.clone(), &format!("/_zen/api/routes/{}", route["id"]), TOKEN).await;
        let timelines = detail["timelines"].as_array().unwrap();
        assert!(timelines.len() <= 4, "two worst and two sampled at most: {detail}");
        // (Other tests' jobs end meanwhile: every dashboard sees them.)
        for t in timelines {
            if route["name"].as_str().unwrap().starts_with("timeline flood ") {
                assert_eq!(t["operations"], 150, "{detail}");
            }
            // 150 operations: this test's, under its name or `(other)`.
            if t["operations"] == 150 {
                ours = Some(t["id"].clone());
            }
        }
        kept += timelines.len();
    }
    assert!(kept <= 11 * 4, "{kept} timelines for 10 names and `(other)`");
    let id = ours.expect("a timeline of this test kept");
    // The first 128 operations kept, the rest counted.
    let t = common::dashboard_get(client, &format!("/_zen/api/requests/{id}"), TOKEN).await;
    assert_eq!(t["operations"].as_array().unwrap().len(), 128);
    assert_eq!(t["omitted_operations"], 22);
}
