//! What a collecting dashboard adds to each scope, and what it holds for a
//! thousand names.
//!
//! `cargo bench --bench dashboard`. The time rows: a `#[zen]` fn with three
//! limits, and the same with one reported query, polled once with a no-op
//! waker, without a dashboard and with one collecting; the plain fn is the
//! run's baseline. Before them, the memory rows: the bytes the process
//! holds for a dashboard after 1,000 job names ended 10 times each, in a
//! typical case (3 statements per name, within budget) and in the worst case
//! the limits allow (every scope over budget with 16 long statements and an
//! N+1 suspect, so every ring of reports is full).
#![allow(clippy::print_stdout)]

mod common;

use common::{annotated_with_limits, plain, poll_once};

use std::time::Duration;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use zen_runtime::dashboard::{Dashboard, Options};
use zen_runtime::jobs::Jobs;
use zen_runtime::{Limits, instrument, zen};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

fn main() {
    // `ZEN_BENCH_NO_MEMORY=1`: the time rows only (as under callgrind).
    if std::env::var_os("ZEN_BENCH_NO_MEMORY").is_none() {
        memory();
    }
    divan::main();
}

/// The bytes a dashboard holds after `run`: what dropping it frees.
fn held(options: Options, names: usize, run: impl FnOnce()) -> i64 {
    let net = |r: &Region<'_, std::alloc::System>| {
        let c = r.change();
        c.bytes_allocated as i64 - c.bytes_deallocated as i64 + c.bytes_reallocated as i64
    };
    let dashboard = Dashboard::with_options(options);
    run();
    assert_eq!(dashboard.names(), names);
    let region = Region::new(GLOBAL);
    drop(dashboard);
    -net(&region)
}

fn run_jobs(names: usize, runs: usize, limits: Limits, statements: usize, width: usize) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let jobs = Jobs::builder().capacity(names * runs).limits(limits).start().unwrap();
        for run in 0..runs {
            for name in 0..names {
                jobs.spawn(format!("job {name:04}"), move || async move {
                    for s in 0..statements {
                        let padding = "x".repeat(width);
                        let statement = format!("SELECT {padding} FROM table_{name}_{s} WHERE id = ?");
                        let repeat = if s == 0 { 5 } else { 1 };
                        for _ in 0..repeat {
                            instrument::query("PostgreSQL", &statement).unwrap().finish(true);
                        }
                    }
                    let _ = run;
                })
                .unwrap();
            }
        }
        let shutdown = jobs.shutdown(Duration::from_secs(600)).await;
        assert!(shutdown.abandoned.is_empty());
    });
}

fn memory() {
    // zen's one cap on names is 500 unless raised.
    zen_runtime::config::set_max_names(1000);
    let mib = |bytes: i64| bytes as f64 / 1048576.0;
    let options = Options::default().max_names(1000);
    let typical = held(options, 1000, || run_jobs(1000, 10, Limits::NONE.max_queries(100).timeout_ms(1000), 3, 10));
    let worst = held(options, 1000, || run_jobs(1000, 10, Limits::NONE.max_queries(1), 16, 450));
    println!("dashboard memory for 1,000 names, 10 scopes each (what dropping it frees):");
    println!("  typical (3 short statements, within budget): {:.2} MiB", mib(typical));
    println!("  worst (16 statements of 512 bytes, N+1, all over budget): {:.2} MiB", mib(worst));
    // Timelines: each name keeps its 3 worst and a sample; off, none.
    let on = Options::default().max_names(500);
    let off = on.timelines(0).sample_one_in(0);
    let typical = || run_jobs(500, 10, Limits::NONE.max_queries(100).timeout_ms(1000), 3, 10);
    let worst = || run_jobs(500, 10, Limits::NONE.max_queries(1), 140, 450);
    let (typical_on, typical_off) = (held(on, 500, typical), held(off, 500, typical));
    let (worst_on, worst_off) = (held(on, 500, worst), held(off, 500, worst));
    println!("dashboard memory for 500 names, 10 scopes each, timelines on / off:");
    println!("  typical (7 operations a scope): {:.2} / {:.2} MiB", mib(typical_on), mib(typical_off));
    println!(
        "  worst (144 operations of 140 statements of 512 bytes): {:.2} / {:.2} MiB",
        mib(worst_on),
        mib(worst_off)
    );
}

#[zen(max_queries = 5, max_db_ms = 50, timeout_ms = 200)]
async fn one_query() {
    instrument::query("bench", "SELECT * FROM articles WHERE id = $1").unwrap().finish(true);
}

#[divan::bench]
fn plain_fn() -> u64 {
    poll_once(plain(divan::black_box(1)))
}

#[divan::bench]
fn zen_fn_no_dashboard() -> u64 {
    poll_once(annotated_with_limits(divan::black_box(1)))
}

#[divan::bench]
fn zen_fn_dashboard(bencher: divan::Bencher<'_, '_>) {
    let dashboard = Dashboard::new();
    bencher.bench_local(|| poll_once(annotated_with_limits(divan::black_box(1))));
    assert!(dashboard.scopes() > 0);
}

#[divan::bench]
fn zen_fn_one_query_no_dashboard() {
    poll_once(one_query());
}

#[divan::bench]
fn zen_fn_one_query_dashboard(bencher: divan::Bencher<'_, '_>) {
    let dashboard = Dashboard::new();
    bencher.bench_local(|| poll_once(one_query()));
    assert!(dashboard.scopes() > 0);
}
