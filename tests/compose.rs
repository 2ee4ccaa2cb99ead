//! `#[zen]` composed with the attributes it must live with, run for real:
//! `#[tokio::test]`, `#[tracing::instrument]` and `#[axum::debug_handler]`
//! in either order, handlers served over HTTP on 127.0.0.1.

use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Router, debug_handler};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zen_runtime::{Kind, Report, instrument, sinks, testing, zen};

#[tokio::test]
#[zen(max_queries = 1, mode = "strict")]
async fn tokio_test_then_zen() {
    assert!(instrument::in_scope(), "the test body runs inside the scope");
    instrument::query("test", "SELECT 1").unwrap().finish(true);
}

#[zen(max_queries = 1, mode = "strict")]
#[tokio::test]
async fn zen_then_tokio_test() {
    assert!(instrument::in_scope(), "the test body runs inside the scope");
    instrument::query("test", "SELECT 1").unwrap().finish(true);
}

#[tracing::instrument]
#[zen(max_queries = 2)]
async fn instrument_first(id: u32) -> u32 {
    assert!(tracing::Span::current().metadata().is_some_and(|m| m.name() == "instrument_first"));
    instrument::query("test", "SELECT 1").unwrap().finish(true);
    id
}

#[zen(max_queries = 2)]
#[tracing::instrument(ret)]
async fn zen_first(id: u32) -> u32 {
    instrument::query("test", "SELECT 1").unwrap().finish(true);
    id
}

#[tokio::test]
async fn tracing_instrument_in_either_order() {
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry());
    let (n, reports) = testing::collect(async { instrument_first(1).await + zen_first(2).await }).await;
    assert_eq!(n, 3);
    let names: Vec<&str> = reports.iter().map(|r| r.name.as_ref()).collect();
    assert_eq!(names, [concat!(module_path!(), "::instrument_first"), concat!(module_path!(), "::zen_first")]);
    assert!(reports.iter().all(|r| r.figures.queries() == 1));
}

#[derive(Clone)]
struct AppState {
    greeting: &'static str,
}

#[debug_handler]
#[zen(name = "compose::greet", kind = "handler", max_queries = 3, timeout_ms = 1000)]
async fn greet(State(state): State<AppState>, Path(name): Path<String>) -> String {
    instrument::query("test", "SELECT name FROM users WHERE slug = ?").unwrap().finish(true);
    format!("{} {name}", state.greeting)
}

#[zen(name = "compose::index", kind = "handler", max_queries = 0)]
#[debug_handler]
async fn index(State(state): State<AppState>) -> &'static str {
    state.greeting
}

async fn get_text(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotated_handlers_serve_real_requests() {
    let seen = Arc::new(Mutex::new(Vec::<Report>::new()));
    let sink = Arc::clone(&seen);
    let id = sinks::add_sink(move |r| {
        if r.name.starts_with("compose::") && r.kind == Kind::Handler {
            sink.lock().unwrap().push(r.clone());
        }
    });
    let app = Router::new()
        .route("/hello/{name}", get(greet))
        .route("/", get(index))
        .with_state(AppState { greeting: "hello" });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let response = get_text(addr, "/hello/ada").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("hello ada"), "{response}");
    let response = get_text(addr, "/").await;
    assert!(response.ends_with("hello"), "{response}");

    server.abort();
    sinks::remove_sink(id);
    let seen = seen.lock().unwrap();
    let greet = seen.iter().find(|r| r.name == "compose::greet").expect("a report for /hello");
    assert_eq!(greet.figures.queries(), 1);
    assert!(greet.within_budget());
    let index = seen.iter().find(|r| r.name == "compose::index").expect("a report for /");
    assert_eq!(index.figures.queries(), 0);
}
