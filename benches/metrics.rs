//! What the `metrics` feature adds to each scope: a `#[zen]` fn with three
//! limits, ended with no recorder installed against with
//! `metrics-exporter-prometheus`'s recorder (zen's buckets) installed, and
//! the plain fn as the baseline of the run.
//!
//! `cargo bench --bench metrics`. As in `benches/scope.rs`, each future is
//! polled once to completion with a no-op waker. The recorder is installed
//! for the calling thread (`metrics::with_local_recorder`) around each call,
//! in both variants, so the two differ only by the recorder.

mod common;

use common::{annotated_with_limits, plain, poll_once};

use std::sync::LazyLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};

fn main() {
    divan::main();
}

static PROMETHEUS: LazyLock<PrometheusRecorder> = LazyLock::new(|| {
    let mut builder = PrometheusBuilder::new();
    for (name, buckets) in zen_runtime::metrics::BUCKETS {
        builder = builder.set_buckets_for_metric(Matcher::Full((*name).into()), buckets).unwrap();
    }
    builder.build_recorder()
});

static NOOP: metrics::NoopRecorder = metrics::NoopRecorder;

#[divan::bench]
fn plain_fn() -> u64 {
    metrics::with_local_recorder(&NOOP, || poll_once(plain(divan::black_box(1))))
}

#[divan::bench]
fn zen_fn_no_recorder() -> u64 {
    metrics::with_local_recorder(&NOOP, || poll_once(annotated_with_limits(divan::black_box(1))))
}

#[divan::bench]
fn zen_fn_prometheus() -> u64 {
    let out = metrics::with_local_recorder(&*PROMETHEUS, || poll_once(annotated_with_limits(divan::black_box(1))));
    // What the exporter's upkeep does every few seconds, here every 4096 scopes.
    if ROUND.fetch_add(1, std::sync::atomic::Ordering::Relaxed).is_multiple_of(4096) {
        PROMETHEUS.handle().run_upkeep();
    }
    out
}

static ROUND: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
