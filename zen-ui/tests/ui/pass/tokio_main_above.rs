//! `#[tokio::main]` above `#[zen]` (it expands first) works as the other
//! order does.
use zen_runtime::zen;

#[tokio::main(flavor = "current_thread")]
#[zen(timeout_ms = 1000)]
async fn main() {
    tokio::task::yield_now().await;
}
