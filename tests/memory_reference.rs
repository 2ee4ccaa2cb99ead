//! zen's per-scope figure against `stats_alloc`'s process-wide one, where
//! they must agree: one thread, one task, and no other test in the binary
//! allocating at the same time.

use stats_alloc::{Region, StatsAlloc};
use zen_runtime::alloc::ZenAlloc;
use zen_runtime::testing;

#[global_allocator]
static ALLOC: ZenAlloc<StatsAlloc<std::alloc::System>> = ZenAlloc::new(StatsAlloc::system());

fn within(actual: u64, truth: u64, percent: u64) -> bool {
    actual.abs_diff(truth) * 100 <= truth * percent
}

#[tokio::test]
async fn a_single_threaded_scope_agrees_with_stats_alloc() {
    // zen's own one-time allocations (the fingerprint cache, the handles
    // the `metrics` feature registers per scope name) happen before.
    let _ = testing::measure(async {}).await;
    // One thread, one task: the process-wide region sees only this scope
    // (and the runtime's few bytes between polls).
    let region = Region::new(ALLOC.inner());
    let ((), r) = testing::measure(async {
        let mut strings = Vec::new();
        // Enough that the scope's own bookkeeping, allocated outside it but
        // inside the region, stays a small part of the total.
        for i in 0..4000 {
            strings.push(format!("item number {i}"));
            if i % 400 == 0 {
                tokio::task::yield_now().await;
            }
        }
        drop(strings);
    })
    .await;
    let process = region.change();
    let zen = r.figures.memory().unwrap().allocated;
    // stats_alloc counts realloc growth in `bytes_allocated` too, as zen does.
    let reference = process.bytes_allocated as u64;
    assert!(within(zen, reference, 2), "zen {zen} against stats_alloc {reference} ({process:?})");
}
