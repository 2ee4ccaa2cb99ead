//! What the benchmarks share: the fns they compare, and polling a future
//! once with a no-op waker, so that no runtime is in the way.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use zen_runtime::zen;

/// Polls `fut` once; it must be ready.
pub fn poll_once<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => unreachable!("the benchmarked futures never wait"),
    }
}

/// The baseline: an empty async fn.
pub async fn plain(x: u64) -> u64 {
    x + 1
}

/// The same under a budget of three limits.
#[zen(max_queries = 5, max_db_ms = 50, timeout_ms = 200)]
pub async fn annotated_with_limits(x: u64) -> u64 {
    x + 1
}
