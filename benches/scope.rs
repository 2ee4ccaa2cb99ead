//! The cost of a budget scope: an empty `#[zen]` async fn against the same fn
//! without the attribute, and one reported operation inside a scope.
//!
//! `cargo bench --bench scope`. Each future is created and polled to
//! completion with a no-op waker, so the figure is the scope's own cost
//! (open, one poll with the scope current, close and report), with no
//! runtime in the way; the `tokio_` variants add a current-thread runtime's
//! `block_on` around both, as a caller would see it.

mod common;

use common::{annotated_with_limits, plain, poll_once};

use zen_runtime::{instrument, zen};

fn main() {
    divan::main();
}

#[zen]
async fn annotated(x: u64) -> u64 {
    x + 1
}

async fn one_operation() {
    instrument::query("bench", "SELECT 1").unwrap().finish(true);
}

#[zen(max_queries = 5)]
async fn annotated_one_operation() {
    instrument::query("bench", "SELECT 1").unwrap().finish(true);
}

#[zen]
async fn annotated_ten_operations() {
    for _ in 0..10 {
        instrument::query("bench", "SELECT * FROM articles WHERE id = $1").unwrap().finish(true);
    }
}

#[divan::bench]
fn plain_fn() -> u64 {
    poll_once(plain(divan::black_box(1)))
}

#[divan::bench]
fn zen_fn() -> u64 {
    poll_once(annotated(divan::black_box(1)))
}

#[divan::bench]
fn zen_fn_with_limits() -> u64 {
    poll_once(annotated_with_limits(divan::black_box(1)))
}

#[divan::bench]
fn operation_outside_scope() {
    poll_once(one_operation());
}

#[divan::bench]
fn zen_fn_with_one_operation() {
    poll_once(annotated_one_operation());
}

#[divan::bench]
fn zen_fn_with_ten_operations() {
    poll_once(annotated_ten_operations());
}

#[divan::bench]
fn tokio_plain_fn(bencher: divan::Bencher<'_, '_>) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    bencher.bench_local(|| rt.block_on(plain(divan::black_box(1))));
}

#[divan::bench]
fn tokio_zen_fn(bencher: divan::Bencher<'_, '_>) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    bencher.bench_local(|| rt.block_on(annotated(divan::black_box(1))));
}
