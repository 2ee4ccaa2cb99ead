//! The tower/axum layer against a real axum server on 127.0.0.1, called
//! with real HTTP clients, on SQLite in memory (PostgreSQL where the
//! server's side of a cut matters).

mod common;

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tokio::io::AsyncWriteExt;
use zen_runtime::db::{PgPool, SqlitePool};
use zen_runtime::layer::{RequestReport, ServerTiming, ZenLayer};
use zen_runtime::{Budget, Limits, Mode, Outcome, zen};

use common::report_named;

/// Serves `app` on an ephemeral port; an outer middleware copies a few
/// figures of the report it finds in the response's extensions to headers,
/// as any middleware further out could, and the client's address to
/// `x-peer` (one per connection).
async fn serve(app: Router) -> String {
    common::collect_reports();
    let app = app.layer(axum::middleware::from_fn(
        |peer: axum::extract::ConnectInfo<std::net::SocketAddr>, request, next: axum::middleware::Next| async move {
            let mut response = next.run(request).await;
            response.headers_mut().insert("x-peer", peer.0.to_string().parse().unwrap());
            response
        },
    ));
    let app = app.layer(axum::middleware::map_response(|mut response: axum::response::Response| async move {
        if let Some(report) = response.extensions().get::<RequestReport>().map(RequestReport::report) {
            let queries = report.figures.queries().to_string();
            let outcome = report.outcome.as_str();
            let name = report.name.to_string();
            let headers = response.headers_mut();
            headers.insert("x-zen-queries", queries.parse().unwrap());
            headers.insert("x-zen-outcome", outcome.parse().unwrap());
            headers.insert("x-zen-name", name.parse().unwrap());
        }
        response
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap()
}

async fn sqlite(max_connections: u32) -> SqlitePool {
    common::sqlite_pool_at(&common::sqlite_url(), max_connections).await
}

/// One `Server-Timing` metric: its `dur` and `desc`.
fn metric(header: &str, name: &str) -> Option<(Option<f64>, Option<String>)> {
    header.split(", ").find(|m| m.split(';').next() == Some(name)).map(|m| {
        let mut dur = None;
        let mut desc = None;
        for param in m.split(';').skip(1) {
            if let Some(d) = param.strip_prefix("dur=") {
                dur = Some(d.parse().unwrap());
            } else if let Some(d) = param.strip_prefix("desc=") {
                desc = Some(d.trim_matches('"').to_owned());
            }
        }
        (dur, desc)
    })
}

#[derive(Debug)]
struct AppError(String);

impl<E: std::fmt::Display> From<E> for AppError {
    fn from(e: E) -> Self {
        AppError(e.to_string())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> axum::response::Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.0).into_response()
    }
}

#[zen(max_queries = 5, timeout_ms = 2_000)]
async fn article(
    State(pool): State<SqlitePool>,
    axum::extract::Path(slug): axum::extract::Path<String>,
) -> Result<String, AppError> {
    let mut names = Vec::new();
    for id in 1..=3 {
        let name: String = sqlx::query_scalar("SELECT name FROM users WHERE id = ?").bind(id).fetch_one(&pool).await?;
        names.push(name);
    }
    Ok(format!("{slug}: {}", names.join(",")))
}

#[tokio::test]
async fn server_timing_names_the_route_and_gives_each_figure_against_its_limit() {
    let pool = sqlite(2).await;
    let app = Router::new()
        .route("/timing/articles/{slug}", get(article))
        .layer(ZenLayer::new().server_timing(true).limits(Limits::NONE.max_queries(50).timeout_ms(10_000)))
        .with_state(pool);
    let url = serve(app).await;

    let response = client().get(format!("{url}/timing/articles/hello-world")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let header = response.headers()["server-timing"].to_str().unwrap().to_owned();
    assert_eq!(response.headers()["x-zen-queries"], "3", "the report reached the outer middleware");
    assert_eq!(response.text().await.unwrap(), "hello-world: user1,user2,user3", "the body is the handler's");

    let report = report_named("GET /timing/articles/{slug}").await;
    assert!(report.handler.is_some_and(|h| h.ends_with("article")), "{:?}", report.handler);
    assert_eq!(report.figures.queries(), 3);
    // The handler's limits tightened the layer's default.
    assert_eq!(report.limits.get(Budget::Queries), Some(5));
    assert_eq!(report.limits.get(Budget::Timeout), Some(2_000));
    assert_eq!(report.outcome, Outcome::Ok);

    let (_, queries) = metric(&header, "queries").expect(&header);
    assert_eq!(queries.as_deref(), Some("3/5"), "{header}");
    let (db_dur, db_desc) = metric(&header, "db").expect(&header);
    assert_eq!(db_desc, None, "no max_db_ms: {header}");
    let db_ms = report.figures.db_time().as_secs_f64() * 1000.0;
    assert!((db_dur.unwrap() - db_ms).abs() <= 0.051, "{header} vs {db_ms}");
    let (total, total_desc) = metric(&header, "total").expect(&header);
    assert_eq!(total_desc.as_deref(), Some("budget 2000ms"));
    assert!((total.unwrap() - report.figures.elapsed().as_secs_f64() * 1000.0).abs() <= 0.051, "{header}");
    assert!(total.unwrap() >= db_dur.unwrap());
    let memory = report.figures.memory().expect("ZenAlloc is installed");
    let (_, mem) = metric(&header, "mem").expect(&header);
    assert_eq!(mem, Some(format!("{} KiB", memory.peak.div_ceil(1024))));
    assert!(metric(&header, "http").is_none(), "no call, no limit: no http metric");
}

async fn three_queries(State(pool): State<SqlitePool>) -> Result<&'static str, AppError> {
    for id in 1..=3 {
        sqlx::query("SELECT name FROM users WHERE id = ?").bind(id).fetch_one(&pool).await?;
    }
    Ok("done")
}

#[zen(max_queries = 100)]
async fn loose(state: State<SqlitePool>) -> Result<&'static str, AppError> {
    three_queries(state).await
}

#[tokio::test]
async fn the_layer_default_holds_every_route_and_a_handler_can_only_tighten_it() {
    let pool = sqlite(2).await;
    let app = Router::new()
        .route("/default/plain", get(three_queries))
        .route("/default/loose", get(loose))
        .layer(ZenLayer::new().server_timing(true).limits(Limits::NONE.max_queries(2)).mode(Mode::Observe))
        .with_state(pool);
    let url = serve(app).await;

    for route in ["plain", "loose"] {
        let response = client().get(format!("{url}/default/{route}")).send().await.unwrap();
        assert_eq!(response.status(), 200, "observe leaves the response alone");
        let header = response.headers()["server-timing"].to_str().unwrap().to_owned();
        assert_eq!(response.headers()["x-zen-outcome"], "exceeded");
        assert_eq!(response.text().await.unwrap(), "done");
        assert_eq!(metric(&header, "queries").unwrap().1.as_deref(), Some("3/2"), "{header}");
        let report = report_named(&format!("GET /default/{route}")).await;
        let v = report.violation(Budget::Queries).expect("max_queries = 2 was exceeded");
        assert_eq!((v.limit, v.used), (2, 3));
        assert_eq!(report.handler.is_some(), route == "loose");
    }
}

#[tokio::test]
async fn unmatched_requests_are_named_without_their_uri() {
    let app = Router::new().route("/known", get(|| async { "ok" })).layer(ZenLayer::new());
    let url = serve(app).await;
    // This request's own report, as middleware further out reads it.
    let response = client().get(format!("{url}/secret/token-123")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["x-zen-name"], "GET (unmatched)");
    // A method of the client's own making names nothing: each would be a
    // name, a metric label and a dashboard row.
    let purge = reqwest::Method::from_bytes(b"PURGE-A1B2").unwrap();
    let response = client().request(purge, format!("{url}/known")).send().await.unwrap();
    assert_eq!(response.headers()["x-zen-name"], "OTHER /known");
    assert_eq!(response.headers()["x-zen-outcome"], "ok");
}

#[tokio::test]
async fn server_timing_is_off_by_default_on_for_everyone_when_asked_or_for_the_admitted_only() {
    let quiet = |layer: ZenLayer| Router::new().route("/quiet", get(|| async { "ok" })).layer(layer);
    let admitted = ServerTiming::admitted(|parts| parts.headers.get("x-operator").is_some_and(|v| v == "yes"));
    let cases = [
        ("default", ZenLayer::new(), [false, false]),
        ("false", ZenLayer::new().server_timing(false), [false, false]),
        ("on", ZenLayer::new().server_timing(ServerTiming::On), [true, true]),
        ("true", ZenLayer::new().server_timing(true), [true, true]),
        ("admitted", ZenLayer::new().server_timing(admitted), [false, true]),
    ];
    for (setting, layer, shown) in cases {
        let url = serve(quiet(layer)).await;
        for (operator, shown) in [false, true].into_iter().zip(shown) {
            let mut request = client().get(format!("{url}/quiet"));
            if operator {
                request = request.header("x-operator", "yes");
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            assert_eq!(
                response.headers().contains_key("server-timing"),
                shown,
                "{setting}, operator: {operator}: {:?}",
                response.headers()
            );
            if shown {
                let header = response.headers()["server-timing"].to_str().unwrap().to_owned();
                assert!(metric(&header, "total").is_some(), "{header}");
            }
            // Shown for some requests only: the response varies by their credentials.
            let varies = response.headers().get("vary").is_some_and(|v| v == "authorization, cookie");
            let private = response.headers().get("cache-control").is_some_and(|v| v == "private");
            let admitted = shown && setting == "admitted";
            assert_eq!((varies, private), (admitted, admitted), "{setting}: {:?}", response.headers());
            assert_eq!(response.headers()["x-zen-outcome"], "ok", "the report is in the extensions either way");
        }
    }
}

#[zen(timeout_ms = 300)]
async fn sleepy() -> &'static str {
    tokio::time::sleep(Duration::from_secs(5)).await;
    "late"
}

async fn problem(response: reqwest::Response) -> serde_json::Value {
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    assert!(response.headers().contains_key("server-timing"));
    serde_json::from_str(&response.text().await.unwrap()).unwrap()
}

#[tokio::test]
async fn enforce_answers_503_problem_json_at_the_handlers_deadline() {
    let app = Router::new()
        .route("/enforce/sleepy", get(sleepy))
        .layer(ZenLayer::new().server_timing(true).mode(Mode::Enforce).limits(Limits::NONE.timeout_ms(10_000)));
    let url = serve(app).await;
    let start = Instant::now();
    let response = client().get(format!("{url}/enforce/sleepy")).send().await.unwrap();
    let took = start.elapsed();
    let body = problem(response).await;
    assert!(took >= Duration::from_millis(300) && took < Duration::from_millis(1_300), "{took:?}");
    assert_eq!(body["status"], 503);
    assert_eq!(body["title"], "Budget exceeded");
    assert_eq!(body["budget"], "timeout_ms");
    assert_eq!(body["limit"], 300);
    assert!(body["used"].as_u64().unwrap() >= 300, "{body}");
    assert_eq!(body["route"], "GET /enforce/sleepy");
    let report = report_named("GET /enforce/sleepy").await;
    assert_eq!(report.outcome, Outcome::Exceeded);
    assert!(report.violation(Budget::Timeout).is_some());
}

#[tokio::test]
async fn enforce_answers_503_when_a_refused_query_ends_the_handler() {
    let pool = sqlite(2).await;
    let app = Router::new()
        .route("/enforce/queries", get(three_queries))
        .layer(ZenLayer::new().server_timing(true).mode(Mode::Enforce).limits(Limits::NONE.max_queries(2)))
        .with_state(pool);
    let url = serve(app).await;
    let body = problem(client().get(format!("{url}/enforce/queries")).send().await.unwrap()).await;
    assert_eq!(
        (body["budget"].as_str(), body["limit"].as_u64(), body["used"].as_u64()),
        (Some("max_queries"), Some(2), Some(3))
    );
    let report = report_named("GET /enforce/queries").await;
    assert_eq!(
        (report.figures.queries(), report.figures.refused_queries()),
        (3, 1),
        "the third query never reached SQLite"
    );
}

const SLOW: &str =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000000) SELECT count(*) FROM c";

async fn slow_sqlite(State(pool): State<SqlitePool>) -> Result<String, AppError> {
    let n: i64 = sqlx::query_scalar(SLOW).fetch_one(&pool).await?;
    Ok(n.to_string())
}

async fn one_query(State(pool): State<SqlitePool>) -> Result<String, AppError> {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&pool).await?;
    Ok(n.to_string())
}

#[tokio::test]
async fn a_cut_leaks_no_connection_from_the_pool() {
    let name = common::sqlite_url();
    // An in-memory database lives as long as one connection to it: cut
    // connections are closed, so one is kept outside the pool.
    let _keeper = <sqlx::SqliteConnection as sqlx::Connection>::connect(&name).await.unwrap();
    let pool = common::sqlite_pool_at(&name, 2).await;
    let app = Router::new()
        .route("/cut/slow", get(slow_sqlite))
        .route("/cut/one", get(one_query))
        .layer(ZenLayer::new().server_timing(true).mode(Mode::Enforce).limits(Limits::NONE.timeout_ms(200)))
        .with_state(pool.clone());
    let url = serve(app).await;
    for _ in 0..3 {
        let body = problem(client().get(format!("{url}/cut/slow")).send().await.unwrap()).await;
        assert_eq!(body["budget"], "timeout_ms");
    }
    // Every connection the cut requests held is back in the pool or closed.
    let deadline = Instant::now() + Duration::from_secs(30);
    while pool.num_idle() != pool.size() as usize {
        assert!(Instant::now() < deadline, "{} idle of {}", pool.num_idle(), pool.size());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..4 {
        let response = client().get(format!("{url}/cut/one")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{:?}", response.text().await);
        assert_eq!(response.text().await.unwrap(), "10");
    }
}

async fn pg_sleep(State(pool): State<PgPool>) -> Result<&'static str, AppError> {
    sqlx::query("SELECT pg_sleep(5), 'zen-layer-cut'").execute(&pool).await?;
    Ok("slept")
}

#[tokio::test]
async fn a_cut_on_postgres_frees_the_pool_and_the_server() {
    let Some(url) = common::postgres_url().await else { return };
    let pool = PgPool::connect_with_pool_options(
        sqlx::postgres::PgPoolOptions::new().max_connections(2),
        url.parse().unwrap(),
    )
    .await
    .unwrap();
    let app = Router::new()
        .route("/pg/sleep", get(pg_sleep))
        .layer(ZenLayer::new().server_timing(true).mode(Mode::Enforce).limits(Limits::NONE.timeout_ms(300)))
        .with_state(pool.clone());
    let base = serve(app).await;
    let start = Instant::now();
    let body = problem(client().get(format!("{base}/pg/sleep")).send().await.unwrap()).await;
    assert!(start.elapsed() < Duration::from_millis(1_500));
    assert_eq!(body["budget"], "timeout_ms");
    assert_eq!(pool.num_idle(), pool.size() as usize, "no connection is held after the 503");
    // The statement is gone from the server too, not left running.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let running: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%zen-layer-cut%' AND query NOT LIKE '%pg_stat_activity%'",
        )
        .fetch_one(pool.as_sqlx())
        .await
        .unwrap();
        if running == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the cut statement still runs on the server");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_client_that_goes_away_leaves_a_cancelled_report() {
    let started = std::sync::Arc::new(tokio::sync::Notify::new());
    let handler_started = std::sync::Arc::clone(&started);
    let app = Router::new()
        .route(
            "/gone",
            get(move || async move {
                handler_started.notify_one();
                tokio::time::sleep(Duration::from_secs(30)).await;
                "nobody is listening"
            }),
        )
        .layer(ZenLayer::new());
    let url = serve(app).await;
    let address = url.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    socket.write_all(format!("GET /gone HTTP/1.1\r\nhost: {address}\r\n\r\n").as_bytes()).await.unwrap();
    started.notified().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let start = Instant::now();
    drop(socket);
    let report = report_named("GET /gone").await;
    assert_eq!(report.outcome, Outcome::Cancelled);
    assert!(start.elapsed() < Duration::from_secs(5), "the handler was dropped when the client left");
    assert!(
        report.figures.elapsed() >= Duration::from_millis(100) && report.figures.elapsed() < Duration::from_secs(10)
    );
}

async fn explode() -> &'static str {
    panic!("the handler failed");
}

#[tokio::test]
async fn a_panicking_handler_gets_500_and_the_connection_keeps_serving() {
    let app = Router::new()
        .route("/panic/explode", get(explode))
        .route("/panic/fine", get(|| async { "fine" }))
        .layer(ZenLayer::new());
    let url = serve(app).await;
    // One client, one keep-alive connection for all three requests.
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).pool_max_idle_per_host(1).build().unwrap();
    let response = client.get(format!("{url}/panic/explode")).send().await.unwrap();
    assert_eq!(response.status(), 500);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    assert_eq!(response.headers()["x-zen-outcome"], "panicked");
    let peer = response.headers()["x-peer"].clone();
    let body: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(body["status"], 500);
    assert!(!body.to_string().contains("the handler failed"), "the panic message stays in the logs");
    for _ in 0..2 {
        let response = client.get(format!("{url}/panic/fine")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-peer"], peer, "served on the connection of the panic");
        assert_eq!(response.text().await.unwrap(), "fine");
    }
    assert_eq!(report_named("GET /panic/explode").await.outcome, Outcome::Panicked);
}

#[zen(max_queries = 5)]
async fn adopted_then_panics() -> &'static str {
    panic!("caught further in");
}

/// Catches the panic of the fn it runs, which the layer's request adopted.
async fn catches_its_handlers_panic() -> &'static str {
    use futures::FutureExt;
    std::panic::AssertUnwindSafe(adopted_then_panics()).catch_unwind().await.unwrap_or("caught")
}

#[tokio::test]
async fn a_panic_caught_between_the_layer_and_its_handler_is_still_the_requests() {
    let app = Router::new().route("/panic/caught", get(catches_its_handlers_panic)).layer(ZenLayer::new());
    let url = serve(app).await;
    let response = client().get(format!("{url}/panic/caught")).send().await.unwrap();
    assert_eq!(response.status(), 200, "the panic was caught before the layer");
    assert_eq!(response.headers()["x-zen-outcome"], "panicked");
    assert_eq!(response.text().await.unwrap(), "caught");
    let report = report_named("GET /panic/caught").await;
    assert_eq!(report.handler, Some(concat!(module_path!(), "::adopted_then_panics")));
    assert_eq!(report.outcome, Outcome::Panicked);
}

#[derive(serde::Deserialize)]
struct Batch {
    items: Vec<u64>,
}

async fn batch(axum::Json(batch): axum::Json<Batch>) -> String {
    batch.items.len().to_string()
}

#[tokio::test]
async fn reading_and_parsing_the_body_count_toward_the_request() {
    // Added after zen's, so it runs before it: the request has reached the router.
    let arrived = std::sync::Arc::new(tokio::sync::Notify::new());
    let arriving = std::sync::Arc::clone(&arrived);
    let app = Router::new().route("/body/batch", post(batch)).layer(ZenLayer::new()).layer(axum::middleware::from_fn(
        move |request, next: axum::middleware::Next| {
            arriving.notify_one();
            next.run(request)
        },
    ));
    let url = serve(app).await;
    let items: Vec<String> = (0..100_000u64).map(|i| (i * 7919).to_string()).collect();
    let json = format!("{{\"items\":[{}]}}", items.join(","));
    // The headers arrive, then the body 300 ms later: a scope opened after
    // extraction would not see that wait.
    let address = url.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /body/batch HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        json.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    arrived.notified().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    socket.write_all(json.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut socket, &mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("100000"), "{answer}");
    let report = report_named("POST /body/batch").await;
    assert!(report.figures.elapsed() >= Duration::from_millis(250), "{:?}", report.figures.elapsed());
    // Parsing allocated the 800 KB of `Vec<u64>` inside the scope.
    assert!(report.figures.memory().unwrap().allocated >= 800_000, "{:?}", report.figures.memory());
}

#[zen(timeout_ms = 300)]
async fn calls_silent_peer(State(peer): State<String>) -> Result<String, AppError> {
    let client = zen_runtime::http::Client::builder().timeout(Duration::from_secs(5)).build()?;
    Ok(client.get(format!("http://{peer}/")).send().await?.status().to_string())
}

/// A socket that accepts connections and never answers.
async fn silent_peer() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (address, task)
}

#[tokio::test]
async fn a_peer_that_never_answers_is_cut_by_the_budget_not_awaited() {
    let (peer, _task) = silent_peer().await;
    let app = Router::new()
        .route("/call/silent", get(calls_silent_peer))
        .layer(ZenLayer::new().server_timing(true).mode(Mode::Enforce))
        .with_state(peer);
    let url = serve(app).await;
    let start = Instant::now();
    let body = problem(client().get(format!("{url}/call/silent")).send().await.unwrap()).await;
    assert!(start.elapsed() < Duration::from_millis(1_300), "{:?}", start.elapsed());
    assert_eq!(body["budget"], "timeout_ms");
    let report = report_named("GET /call/silent").await;
    assert_eq!((report.figures.http_calls(), report.figures.failed_http_calls()), (1, 1));
    assert!(report.http_in_handler(), "an external call from a handler is flagged");
}

#[tokio::test]
async fn any_tower_service_can_carry_the_layer() {
    use tower::{Layer, ServiceExt};
    use zen_runtime::layer::RouteName;

    let service = ZenLayer::new().server_timing(true).limits(Limits::NONE.max_queries(1)).layer(tower::service_fn(
        |_request: axum::http::Request<String>| async {
            Ok::<_, std::convert::Infallible>(axum::http::Response::new(http_body_util::Full::new(bytes_of(
                "plain tower",
            ))))
        },
    ));
    let mut request = axum::http::Request::post("/things/42").body(String::new()).unwrap();
    request.extensions_mut().insert(RouteName("/things/{id}".into()));
    let (response, reports) = zen_runtime::testing::collect(service.clone().oneshot(request)).await;
    let response = response.unwrap();
    assert!(response.headers()["server-timing"].to_str().unwrap().contains("queries;desc=\"0/1\""));
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].name, "POST /things/{id}");
    let body = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
    assert_eq!(&body[..], b"plain tower");

    let request = axum::http::Request::get("/anything/else").body(String::new()).unwrap();
    let (_, reports) = zen_runtime::testing::collect(service.oneshot(request)).await;
    assert_eq!(reports[0].name, "GET (unmatched)");
}

/// A service's future that holds a buffer allocated when the request
/// arrived, and frees it (then panics) only when the layer drops it.
struct DropsLate {
    buffer: Vec<u8>,
}

impl std::future::Future for DropsLate {
    type Output = Result<axum::http::Response<http_body_util::Full<axum::body::Bytes>>, std::convert::Infallible>;

    fn poll(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        std::task::Poll::Ready(Ok(axum::http::Response::new(http_body_util::Full::new(bytes_of("dropped late")))))
    }
}

/// Run to its end by a destructor, where the request's scope is current.
#[zen]
async fn run_by_a_destructor() {}

impl Drop for DropsLate {
    fn drop(&mut self) {
        drop(std::mem::take(&mut self.buffer));
        // The request's work has ended: it adopts no handler any more.
        futures::executor::block_on(run_by_a_destructor());
        // A panic without the hook's message and backtrace, whose memory
        // would count toward the request.
        std::panic::resume_unwind(Box::new("a destructor that panics"));
    }
}

#[tokio::test]
async fn the_finished_work_is_dropped_inside_its_request_and_its_destructor_panics_stay_there() {
    use tower::{Layer, ServiceExt};
    use zen_runtime::layer::RouteName;

    let service = ZenLayer::new().layer(tower::service_fn(|_request: axum::http::Request<String>| DropsLate {
        buffer: std::hint::black_box(vec![7u8; 256 * 1024]),
    }));
    let mut request = axum::http::Request::get("/late").body(String::new()).unwrap();
    request.extensions_mut().insert(RouteName("/late".into()));
    let (response, reports) = zen_runtime::testing::collect(service.oneshot(request)).await;
    let response = response.unwrap();
    assert_eq!(response.status(), 200, "a destructor's panic is not the request's");
    let destructors = concat!(module_path!(), "::run_by_a_destructor");
    assert!(reports.iter().any(|r| r.name == destructors), "a scope of its own, nested in the request's");
    let report = reports.into_iter().find(|r| r.name == "GET /late").expect("the request's report");
    assert_eq!(report.outcome, Outcome::Ok);
    assert_eq!(report.handler, None, "a fn run by a destructor is not the request's handler");
    let memory = report.figures.memory().expect("ZenAlloc is installed");
    assert!(memory.allocated >= 256 * 1024, "{memory:?}");
    // Freed when the layer dropped the finished future, inside the request.
    assert!(memory.retained < 64 * 1024, "{memory:?}");
    let body = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
    assert_eq!(&body[..], b"dropped late");
}

fn bytes_of(s: &'static str) -> axum::body::Bytes {
    axum::body::Bytes::from_static(s.as_bytes())
}

#[tokio::test]
async fn reports_of_concurrent_requests_stay_apart() {
    let pool = sqlite(4).await;
    let app = Router::new()
        .route(
            "/many/{n}",
            get(|State(pool): State<SqlitePool>, axum::extract::Path(n): axum::extract::Path<u64>| async move {
                for _ in 0..n {
                    sqlx::query("SELECT 1").execute(&pool).await.unwrap();
                    tokio::task::yield_now().await;
                }
                n.to_string()
            }),
        )
        .layer(ZenLayer::new())
        .with_state(pool);
    let url = serve(app).await;
    let client = client();
    let calls = (1..=40u64).map(|n| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let response = client.get(format!("{url}/many/{}", n % 8)).send().await.unwrap();
            let queries: u64 = response.headers()["x-zen-queries"].to_str().unwrap().parse().unwrap();
            (n % 8, queries)
        }
    });
    for (asked, counted) in futures::future::join_all(calls).await {
        assert_eq!(asked, counted);
    }
}

#[zen(timeout_ms = 50)]
async fn spawned_helper() -> u64 {
    tokio::time::sleep(Duration::from_millis(100)).await;
    7
}

#[tokio::test]
async fn a_zen_fn_in_a_spawned_task_is_not_taken_for_the_handler() {
    let app = Router::new()
        .route("/spawned/helper", get(|| async { zen_runtime::spawn(spawned_helper()).await.unwrap().to_string() }))
        .layer(ZenLayer::new().mode(Mode::Enforce).limits(Limits::NONE.timeout_ms(5_000)));
    let url = serve(app).await;
    let response = client().get(format!("{url}/spawned/helper")).send().await.unwrap();
    assert_eq!(response.status(), 200, "the helper's 50 ms did not become the request's deadline");
    assert_eq!(response.text().await.unwrap(), "7");
    let request = report_named("GET /spawned/helper").await;
    assert_eq!(request.handler, None);
    assert_eq!(request.limits.get(Budget::Timeout), Some(5_000));
    let helper = report_named(&format!("{}::spawned_helper", module_path!())).await;
    assert!(helper.violation(Budget::Timeout).is_some(), "the helper's own scope holds its budget");
}

/// Adopted as the handler at its first poll, inside the request; then moved
/// into a task of its own (a plain `tokio::spawn`, which carries no scope).
#[zen(max_queries = 10)]
async fn moved_after_its_first_poll(
    pool: SqlitePool,
    gate: tokio::sync::oneshot::Receiver<()>,
) -> Result<&'static str, AppError> {
    let _ = gate.await;
    sqlx::query("SELECT name FROM users WHERE id = ?").bind(1).fetch_one(&pool).await?;
    Ok("moved")
}

async fn moves_its_handler(State(pool): State<SqlitePool>) -> Result<&'static str, AppError> {
    let (open, gate) = tokio::sync::oneshot::channel();
    let mut handler = Box::pin(moved_after_its_first_poll(pool, gate));
    let first = std::future::poll_fn(|cx| std::task::Poll::Ready(handler.as_mut().poll(cx))).await;
    assert!(first.is_pending(), "waits for the gate");
    open.send(()).unwrap();
    tokio::spawn(handler).await.unwrap()
}

#[tokio::test]
async fn an_adopted_handler_moved_to_another_task_still_counts_toward_its_request() {
    let app = Router::new()
        .route("/moved/handler", get(moves_its_handler))
        .layer(ZenLayer::new())
        .with_state(sqlite(1).await);
    let url = serve(app).await;
    let response = client().get(format!("{url}/moved/handler")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-zen-queries"], "1");
    assert_eq!(response.text().await.unwrap(), "moved");
    let report = report_named("GET /moved/handler").await;
    assert_eq!(report.handler, Some(concat!(module_path!(), "::moved_after_its_first_poll")));
    assert_eq!(report.figures.queries(), 1, "its query, run in the other task, is the request's");
    assert_eq!(report.limits.get(Budget::Queries), Some(10));
}

#[derive(serde::Deserialize)]
struct Page {
    #[allow(dead_code)]
    page: u32,
}

#[tokio::test]
async fn the_report_and_the_event_carry_the_response_status() {
    let app = Router::new()
        .route("/status/page", get(|axum::extract::Query(_): axum::extract::Query<Page>| async { "ok" }))
        .layer(ZenLayer::new());
    let url = serve(app).await;
    let wrong_method = client().post(format!("{url}/status/page")).send().await.unwrap();
    assert_eq!(wrong_method.status(), 405);
    let bad_query = client().get(format!("{url}/status/page?page=x")).send().await.unwrap();
    assert_eq!(bad_query.status(), 400);
    let fine = client().get(format!("{url}/status/page?page=2")).send().await.unwrap();
    assert_eq!(fine.status(), 200);
    let post = report_named("POST /status/page").await;
    assert_eq!((post.status, post.outcome), (Some(405), Outcome::Ok));
    let gets: Vec<Option<u16>> = {
        let first = common::nth_report_named("GET /status/page", 1).await;
        let second = common::nth_report_named("GET /status/page", 2).await;
        vec![first.status, second.status]
    };
    assert_eq!(gets, [Some(400), Some(200)]);
    assert!(post.to_string().contains("status 405"), "{post}");
}

/// Values in SQL text (not bound): none may reach a header, a problem
/// document or a report.
async fn hostile(State(pool): State<SqlitePool>) -> Result<&'static str, AppError> {
    for _ in 0..3 {
        sqlx::query(r#"SELECT name FROM users WHERE name = "hunter-1" OR name = 'C:\'"#).fetch_all(&pool).await?;
        sqlx::query("/* hunter-2 */ SELECT name FROM users WHERE id = 42").fetch_optional(&pool).await?;
    }
    Ok("done")
}

#[tokio::test]
async fn no_value_reaches_a_header_a_problem_or_a_report() {
    let pool = sqlite(2).await;
    let app = Router::new()
        .route("/hostile", get(hostile))
        .layer(
            ZenLayer::new().server_timing(true).mode(Mode::Enforce).n_plus_one(2).limits(Limits::NONE.max_queries(5)),
        )
        .layer(axum::middleware::map_response(|mut response: axum::response::Response| async move {
            // What middleware further out can see of the report.
            if let Some(report) = response.extensions().get::<RequestReport>().map(RequestReport::report) {
                let shown = format!("{report}\n{report:?}").replace(['\n', '"'], " ");
                response.headers_mut().insert("x-report", shown.parse().unwrap());
            }
            response
        }))
        .with_state(pool);
    let url = serve(app).await;
    let response = client().get(format!("{url}/hostile")).send().await.unwrap();
    assert_eq!(response.status(), 503, "the sixth query is refused");
    let headers = format!("{:?}", response.headers());
    let body = response.text().await.unwrap();
    let report = report_named("GET /hostile").await;
    assert!(!report.n_plus_one.is_empty(), "{report}");
    assert!(headers.contains("x-report") && headers.contains("server-timing"), "{headers}");
    for shown in [headers, body, report.to_string(), format!("{report:?}")] {
        assert!(!shown.contains("hunter"), "a value leaked: {shown}");
    }
}
