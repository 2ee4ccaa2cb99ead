//! zen in one screen: an axum app on SQLite in memory whose handlers each
//! show one budget, and a second local server playing a slow external
//! service. It sends itself one request per route, prints each request's
//! figures against its budget, and exits.
//!
//! ```text
//! cargo run --example quickstart                    # observe: figures and violations
//! ZEN_MODE=enforce cargo run --example quickstart   # enforce: blown budgets answer 503
//! cargo run --example quickstart -- --serve         # keep serving on 127.0.0.1:3000 (or --serve ADDRESS)
//! ```
//!
//! Serving, it also exposes every route's figures to Prometheus at `/metrics`
//! and shows them on the dashboard at `/_zen` (the address, with its token,
//! is printed at start).
#![allow(clippy::print_stdout)]

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sqlx::sqlite::SqlitePoolOptions;
use zen_runtime::alloc::ZenAlloc;
use zen_runtime::dashboard::{Authorize, Dashboard};
use zen_runtime::db::SqlitePool;
use zen_runtime::layer::ZenLayer;
use zen_runtime::{Budget, Limits, Report, zen};

// Memory is measured per request only with zen's allocator.
#[global_allocator]
static ALLOC: ZenAlloc = ZenAlloc::system();

#[derive(Clone)]
struct App {
    db: SqlitePool,
    weather: zen_runtime::http::Client,
    weather_url: String,
}

/// What a real application's error type does: `?` on sqlx and HTTP errors.
struct AppError(String);

impl<E: std::error::Error> From<E> for AppError {
    fn from(e: E) -> Self {
        AppError(e.to_string())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.0).into_response()
    }
}

/// Within budget: one query for the whole page.
#[zen(max_queries = 2, max_db_ms = 50, timeout_ms = 200)]
async fn articles(State(app): State<App>) -> Result<String, AppError> {
    let rows: Vec<(i64, String)> =
        sqlx::query_as("SELECT a.id, a.title || ' by ' || u.name FROM articles a JOIN users u ON u.id = a.author_id")
            .fetch_all(&app.db)
            .await?;
    Ok(format!("{} articles\n", rows.len()))
}

/// N+1: one query for the list, then one per article.
#[zen(max_queries = 5, max_db_ms = 50, timeout_ms = 200)]
async fn articles_n_plus_one(State(app): State<App>) -> Result<String, AppError> {
    let articles: Vec<(i64, String)> = sqlx::query_as("SELECT id, title FROM articles").fetch_all(&app.db).await?;
    for (id, _) in &articles {
        let _author: String =
            sqlx::query_scalar("SELECT u.name FROM users u JOIN articles a ON a.author_id = u.id WHERE a.id = ?")
                .bind(id)
                .fetch_one(&app.db)
                .await?;
    }
    Ok(format!("{} articles, one query each\n", articles.len()))
}

/// A slow query: a recursive count that takes far longer than `max_db_ms`.
#[zen(max_queries = 3, max_db_ms = 20, timeout_ms = 1000)]
async fn slow_report(State(app): State<App>) -> Result<String, AppError> {
    let n: i64 = sqlx::query_scalar(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) SELECT count(*) FROM c",
    )
    .bind(2_000_000)
    .fetch_one(&app.db)
    .await?;
    Ok(format!("counted {n}\n"))
}

/// A large response built in memory: about 700 KiB against 512 KiB.
#[zen(max_queries = 2, max_mem_kb = 512, timeout_ms = 1000)]
async fn export(State(app): State<App>) -> Result<String, AppError> {
    let titles: Vec<String> = sqlx::query_scalar("SELECT title FROM articles").fetch_all(&app.db).await?;
    let mut csv = String::from("row,title\n");
    for row in 0..40_000 {
        csv.push_str(&format!("{row},{}\n", titles[row % titles.len()]));
    }
    Ok(csv)
}

/// Calls an external service that takes 2 s; the client's 300 ms timeout
/// saves the request, which answers without the forecast.
#[zen(max_http_calls = 1, timeout_ms = 1000)]
async fn weather(State(app): State<App>) -> String {
    match app.weather.get(format!("{}/forecast", app.weather_url)).send().await {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(e) => format!("no forecast today ({e})\n"),
    }
}

/// The slow external service, on a port of its own.
async fn start_weather_service() -> std::io::Result<String> {
    let service = Router::new().route(
        "/forecast",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            "sunny\n"
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, service).await });
    Ok(url)
}

/// The database, and a connection that keeps it alive: an in-memory SQLite
/// database lasts as long as its last connection, and `enforce` closes a
/// connection whose query it cut.
async fn database() -> Result<(SqlitePool, sqlx::SqliteConnection), sqlx::Error> {
    let url = "sqlite:file:quickstart?mode=memory&cache=shared";
    let keeper = <sqlx::SqliteConnection as sqlx::Connection>::connect(url).await?;
    let pool = SqlitePool::connect_with_pool_options(SqlitePoolOptions::new().max_connections(4), url.parse()?).await?;
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
    Ok((pool, keeper))
}

/// What `--serve` adds: `/metrics` for Prometheus, and the dashboard at
/// `/_zen` behind a token.
struct Observed {
    metrics: PrometheusHandle,
    dashboard: Dashboard,
    token: String,
}

fn app(state: App, observed: Option<&Observed>) -> Router {
    let router = Router::new()
        .route("/articles", get(articles))
        .route("/articles/n-plus-one", get(articles_n_plus_one))
        .route("/reports/slow", get(slow_report))
        .route("/export.csv", get(export))
        .route("/weather", get(weather))
        // Every route: at most 2 s and 20 queries, unless its handler says less;
        // `Server-Timing` on every response, as suits a demo (off by default).
        .layer(ZenLayer::new().limits(Limits::NONE.timeout_ms(2_000).max_queries(20)).server_timing(true))
        .with_state(state);
    let Some(observed) = observed else { return router };
    let handle = observed.metrics.clone();
    // Added after the layer: a scrape or a look at the dashboard is nobody's request.
    let authorize = Authorize::token(&observed.token).expect("32 hexadecimal digits are long enough");
    router
        .route("/metrics", get(move || std::future::ready(handle.render())))
        .layer(observed.dashboard.layer("/_zen", authorize))
}

/// A token nobody can guess: 16 random bytes in hexadecimal.
fn token() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The Prometheus recorder, with zen's recommended buckets.
fn prometheus() -> Result<PrometheusHandle, Box<dyn std::error::Error>> {
    let mut builder = PrometheusBuilder::new();
    for (name, buckets) in zen_runtime::metrics::BUCKETS {
        builder = builder.set_buckets_for_metric(Matcher::Full((*name).into()), buckets)?;
    }
    let handle = builder.install_recorder()?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

const ROUTES: [&str; 5] = ["/articles", "/articles/n-plus-one", "/reports/slow", "/export.csv", "/weather"];

fn used(used: String, limit: Option<u64>) -> String {
    match limit {
        Some(limit) => format!("{used}/{limit}"),
        None => used,
    }
}

fn row(status: &str, r: &Report) -> String {
    let mem = r.figures.memory().map_or_else(|| "-".to_owned(), |m| m.peak.div_ceil(1024).to_string());
    let violations: Vec<String> = r.violations.iter().map(ToString::to_string).collect();
    format!(
        "{:<26} {:>6} {:>9} {:>8} {:>12} {:>10} {:>6} {:>12}  {}",
        r.name,
        status,
        r.outcome.as_str(),
        used(r.figures.queries().to_string(), r.limits.get(Budget::Queries)),
        used(format!("{:.1}", r.figures.db_time().as_secs_f64() * 1e3), r.limits.get(Budget::DbTime)),
        used(mem, r.limits.get(Budget::Memory)),
        used(r.figures.http_calls().to_string(), r.limits.get(Budget::HttpCalls)),
        used(format!("{:.0}", r.figures.elapsed().as_secs_f64() * 1e3), r.limits.get(Budget::Timeout)),
        if violations.is_empty() { "-".to_owned() } else { violations.join("; ") }
    )
}

fn header() -> String {
    format!(
        "{:<26} {:>6} {:>9} {:>8} {:>12} {:>10} {:>6} {:>12}  violations",
        "route", "status", "outcome", "queries", "db ms", "peak KiB", "http", "elapsed ms"
    )
}

fn notes(r: &Report) {
    for suspect in &r.n_plus_one {
        let site = suspect.call_site.as_deref().unwrap_or("an unknown call site");
        println!("  N+1 in {}: {}x `{}` from {site}", r.name, suspect.count, suspect.fingerprint);
    }
    if r.http_in_handler() {
        println!(
            "  {} called an external service from the handler ({} failed): move it to a background job",
            r.name,
            r.figures.failed_http_calls()
        );
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
    let mut args = std::env::args().skip(1);
    let serve = match args.next().as_deref() {
        None => None,
        Some("--serve") => Some(args.next().unwrap_or_else(|| "127.0.0.1:3000".into())),
        Some(other) => {
            eprintln!("error: unknown argument {other:?}\nusage: quickstart [--serve [ADDRESS]]");
            std::process::exit(2);
        }
    };

    let (db, _keeper) = database().await?;
    let state = App {
        db,
        weather: zen_runtime::http::Client::builder().timeout(Duration::from_millis(300)).build()?,
        weather_url: start_weather_service().await?,
    };
    let address = serve.as_deref().unwrap_or("127.0.0.1:0");
    let listener = match tokio::net::TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("error: cannot listen on {address:?}: {e}");
            std::process::exit(2);
        }
    };
    let url = format!("http://{}", listener.local_addr()?);
    let observed = match serve {
        Some(_) => Some(Observed { metrics: prometheus()?, dashboard: Dashboard::new(), token: token()? }),
        None => None,
    };
    let router = app(state, observed.as_ref());
    tokio::spawn(async move { axum::serve(listener, router).await });

    if serve.is_some() {
        println!("zen quickstart, mode {mode}, listening on {url}; one line per request below. Try:");
        for route in ROUTES {
            println!("  curl -i {url}{route}");
        }
        println!("and every route's figures for Prometheus: curl {url}/metrics");
        if let Some(observed) = &observed {
            println!(
                "the dashboard (open once with the token; a cookie keeps it): {url}/_zen?token={}",
                observed.token
            );
        }
        println!("\n{}", header());
        zen_runtime::sinks::add_sink(|r| {
            println!("{}", row("", r));
            notes(r);
        });
        tokio::signal::ctrl_c().await?;
        return Ok(());
    }

    let reports = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&reports);
    zen_runtime::sinks::add_sink(move |r| sink.lock().unwrap_or_else(PoisonError::into_inner).push(r.clone()));
    println!("zen quickstart, mode {mode} (ZEN_MODE=enforce answers 503 when a budget is blown)\n");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let mut rows = Vec::new();
    for route in ROUTES {
        let response = client.get(format!("{url}{route}")).send().await?;
        let status = response.status().as_u16().to_string();
        let timing = response.headers().get("server-timing").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        println!("GET {route:<22} {status}  Server-Timing: {timing}");
        let report = reports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|r| r.name == format!("GET {route}"))
            .cloned()
            .ok_or("no report for the request")?;
        rows.push((status, report));
    }
    println!("\n{}", header());
    for (status, report) in &rows {
        println!("{}", row(status, report));
    }
    println!();
    for (_, report) in &rows {
        notes(report);
    }
    Ok(())
}
