//! The allocator: `ZenAlloc` against `System` and `stats_alloc`, and a
//! realistic handler with and without `ZenAlloc` installed.
//!
//! `cargo bench --bench alloc`
//!
//! - `pairs_*`: one allocation and its free, of 16 B, 256 B and 64 KiB,
//!   calling each allocator directly, 1000 pairs per iteration, on 1 and 2
//!   threads; `zen_in_scope` runs the 1000 pairs inside a budget scope, so
//!   every pair is attributed (the scope's own cost, about 150 ns, is spread
//!   over the 1000).
//! - `handler_*`: an annotated handler that builds 100 items and serialises
//!   them to JSON, with the global allocator switched between `System` and
//!   `ZenAlloc` (both variants pay the same switch).

mod common;

use common::{Switch, USE_ZEN, ZEN, pairs, poll_once};

use std::alloc::System;
use std::sync::atomic::Ordering;

use stats_alloc::StatsAlloc;
use zen_runtime::{testing, zen};

fn main() {
    divan::main();
}

// `System` or `ZenAlloc`, switched by each `handler_*` benchmark (both
// variants pay the same switch).
#[global_allocator]
static GLOBAL: Switch = Switch;

static STATS: StatsAlloc<System> = StatsAlloc::system();

const SIZES: [usize; 3] = [16, 256, 65536];

#[divan::bench(args = SIZES, threads = [1, 2])]
fn pairs_system(size: usize) {
    pairs(&System, size);
}

#[divan::bench(args = SIZES, threads = [1, 2])]
fn pairs_stats_alloc(size: usize) {
    pairs(&STATS, size);
}

#[divan::bench(args = SIZES, threads = [1, 2])]
fn pairs_zen_outside_scope(size: usize) {
    pairs(&ZEN, size);
}

#[divan::bench(args = SIZES, threads = [1, 2])]
fn pairs_zen_in_scope(size: usize) {
    poll_once(testing::measure(async { pairs(&ZEN, size) }));
}

#[derive(serde::Serialize)]
struct Item {
    id: u64,
    title: String,
    author: String,
    tags: Vec<String>,
    score: f64,
}

#[zen(max_mem_kb = 1024)]
async fn list_items() -> String {
    let items: Vec<Item> = (0..100u64)
        .map(|id| Item {
            id,
            title: format!("Article number {id}"),
            author: format!("author-{}", id % 7),
            tags: vec!["rust".into(), format!("tag{}", id % 5)],
            score: id as f64 / 3.0,
        })
        .collect();
    serde_json::to_string(&items).unwrap()
}

#[divan::bench(sample_count = 500)]
fn handler_system() -> usize {
    USE_ZEN.store(false, Ordering::Relaxed);
    poll_once(list_items()).len()
}

#[divan::bench(sample_count = 500)]
fn handler_zen_alloc() -> usize {
    USE_ZEN.store(true, Ordering::Relaxed);
    poll_once(list_items()).len()
}
