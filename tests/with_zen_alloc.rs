//! The behaviour suites of the other capabilities, run again with `ZenAlloc`
//! as the global allocator: every allocation and free of the runtime, the
//! database clients and the tests goes through zen's accounting, and
//! nothing may change, crash, deadlock or recurse.
//!
//! (`axum_layer.rs` runs here alone: its requests' memory is a figure.)

// Each suite declares the shared helpers itself, so they load once per suite.
#![allow(clippy::duplicate_mod)]

#[global_allocator]
static ALLOC: zen_runtime::alloc::ZenAlloc = zen_runtime::alloc::ZenAlloc::system();

#[path = "axum_layer.rs"]
mod axum_layer;
#[path = "compose.rs"]
mod compose;
#[path = "db_postgres.rs"]
mod db_postgres;
#[path = "db_sqlite.rs"]
mod db_sqlite;
#[path = "http_client.rs"]
mod http_client;
#[path = "instrument_sqlite.rs"]
mod instrument_sqlite;
#[path = "modes.rs"]
mod modes;
#[path = "redis.rs"]
mod redis_suite;
#[path = "report.rs"]
mod report;
#[path = "scope.rs"]
mod scope;

#[tokio::test]
async fn memory_is_measured_in_this_binary() {
    let (_, report) = zen_runtime::testing::measure(async { std::hint::black_box(vec![0u8; 4096]) }).await;
    assert!(report.figures.memory().is_some_and(|m| m.allocated >= 4096));
}
