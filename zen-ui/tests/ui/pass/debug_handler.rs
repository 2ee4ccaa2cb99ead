#![deny(warnings)]
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Router, debug_handler};
use zen_runtime::zen;

#[derive(Clone)]
struct AppState {
    greeting: &'static str,
}

#[debug_handler]
#[zen(max_queries = 3, timeout_ms = 200)]
async fn debug_first(State(state): State<AppState>, Path(name): Path<String>) -> String {
    format!("{} {name}", state.greeting)
}

#[zen(max_queries = 3, timeout_ms = 200)]
#[debug_handler]
async fn zen_first(State(state): State<AppState>) -> &'static str {
    state.greeting
}

fn main() {
    let _app: Router = Router::new()
        .route("/hello/{name}", get(debug_first))
        .route("/", get(zen_first))
        .with_state(AppState { greeting: "hello" });
}
