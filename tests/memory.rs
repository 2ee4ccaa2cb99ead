//! Memory per scope with `ZenAlloc` installed, against known allocations,
//! and against a `stats_alloc` `Region` (the process-wide view zen exists
//! to improve on).

use std::time::Duration;

use stats_alloc::{Region, StatsAlloc};
use zen_runtime::alloc::ZenAlloc;
use zen_runtime::{Budget, BudgetExceeded, Outcome, testing, zen};

// `stats_alloc` underneath gives the process-wide reference figures.
#[global_allocator]
static ALLOC: ZenAlloc<StatsAlloc<std::alloc::System>> = ZenAlloc::new(StatsAlloc::system());

const MIB: usize = 1 << 20;

fn within(actual: u64, truth: usize, percent: u64) -> bool {
    let truth = truth as u64;
    actual.abs_diff(truth) * 100 <= truth * percent
}

#[tokio::test]
async fn a_known_allocation_is_reported_within_five_percent() {
    let ((), r) = testing::measure(async {
        let block = vec![1u8; MIB];
        tokio::task::yield_now().await;
        drop(std::hint::black_box(block));
    })
    .await;
    let m = r.figures.memory().expect("measured with ZenAlloc installed");
    assert!(within(m.allocated, MIB, 5), "allocated {m:?}");
    assert!(within(m.peak, MIB, 5), "peak {m:?}");
    assert!(m.retained < (MIB / 20) as u64, "dropped, so not retained: {m:?}");

    let (kept, r) = testing::measure(async { vec![1u8; MIB] }).await;
    let m = r.figures.memory().unwrap();
    assert!(within(m.retained, MIB, 5), "still held at the end: {m:?}");
    drop(kept);
}

#[zen(name = "memory::holds")]
async fn holds(bytes: usize) -> usize {
    let block = std::hint::black_box(vec![7u8; bytes]);
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    block.len()
}

fn truth(i: usize) -> usize {
    64 * 1024 + i * 8 * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_scopes_each_see_their_own_peak() {
    let ((), reports) = testing::collect(async {
        let tasks: Vec<_> = (0..100).map(|i| zen_runtime::spawn(holds(truth(i)))).collect();
        for task in tasks {
            task.await.unwrap();
        }
    })
    .await;
    assert_eq!(reports.len(), 100);
    for r in &reports {
        // The report does not say which i it was: match it by its size.
        let peak = r.figures.memory().unwrap().peak;
        let i = (0..100).min_by_key(|&i| peak.abs_diff(truth(i) as u64)).unwrap();
        assert!(within(peak, truth(i), 5), "peak {peak} against {}", truth(i));
    }
    let mut peaks: Vec<u64> = reports.iter().map(|r| r.figures.memory().unwrap().peak / 1024).collect();
    peaks.sort_unstable();
    peaks.dedup_by(|a, b| a.abs_diff(*b) < 4);
    assert_eq!(peaks.len(), 100, "a hundred distinct peaks, one per scope");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stats_alloc_region_per_scope_cannot_tell_concurrent_scopes_apart() {
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            tokio::spawn(async move {
                let region = Region::new(ALLOC.inner());
                holds(truth(i)).await;
                let seen = region.change().bytes_allocated;
                (i, seen)
            })
        })
        .collect();
    let mut wrong = 0;
    for task in tasks {
        let (i, seen) = task.await.unwrap();
        if !within(seen as u64, truth(i), 5) {
            wrong += 1;
        }
    }
    assert!(wrong >= 50, "a process-wide region counts its neighbours: {wrong} of 100 off by more than 5%");
}

#[zen(name = "memory::child")]
async fn child() -> Vec<u8> {
    vec![3u8; 256 * 1024]
}

#[zen(name = "memory::parent")]
async fn parent() {
    let from_child = child().await;
    let spawned = zen_runtime::spawn(async { std::hint::black_box(vec![4u8; 128 * 1024]).len() });
    assert_eq!(spawned.await.unwrap(), 128 * 1024);
    // Freed here, allocated by the child: the parent's own figures hold it.
    drop(from_child);
}

#[tokio::test]
async fn nesting_and_spawn_count_toward_the_parent() {
    let ((), reports) = testing::collect(parent()).await;
    let child = reports.iter().find(|r| r.name == "memory::child").unwrap().figures.memory().unwrap();
    let parent = reports.iter().find(|r| r.name == "memory::parent").unwrap().figures.memory().unwrap();
    assert!(within(child.allocated, 256 * 1024, 5), "{child:?}");
    assert!(within(child.retained, 256 * 1024, 5), "the child returned it still held: {child:?}");
    assert!(parent.allocated >= (256 + 128) * 1024, "child and spawned task count toward the parent: {parent:?}");
    assert!(parent.retained < 16 * 1024, "{parent:?}");
}

#[zen(name = "memory::frees_foreign")]
async fn frees_foreign(foreign: Vec<u8>) {
    drop(foreign);
}

#[tokio::test]
async fn freeing_memory_another_scope_allocated_never_goes_below_zero() {
    let foreign = vec![0u8; 512 * 1024];
    let ((), reports) = testing::collect(frees_foreign(foreign)).await;
    let m = reports[0].figures.memory().unwrap();
    assert_eq!((m.peak, m.retained), (0, 0), "{m:?}");
}

#[derive(Debug)]
struct AppError(#[allow(dead_code)] BudgetExceeded);

impl From<BudgetExceeded> for AppError {
    fn from(e: BudgetExceeded) -> Self {
        AppError(e)
    }
}

#[zen(max_mem_kb = 256, mode = "enforce")]
async fn greedy() -> Result<usize, AppError> {
    let mut blocks = Vec::new();
    for _ in 0..100 {
        blocks.push(vec![1u8; 64 * 1024]);
        tokio::task::yield_now().await;
    }
    Ok(blocks.len())
}

#[tokio::test]
async fn enforce_stops_a_scope_over_max_mem_kb_at_its_next_poll() {
    let (result, reports) = testing::collect(greedy()).await;
    let AppError(e) = result.unwrap_err();
    assert_eq!(e.budget(), Budget::Memory);
    let r = &reports[0];
    assert_eq!(r.outcome, Outcome::Exceeded);
    let peak = r.figures.memory().unwrap().peak;
    assert!(peak < 512 * 1024, "stopped soon after 256 KiB, not at 6.4 MiB: {peak}");
    assert_eq!(r.violation(Budget::Memory).map(|v| v.limit), Some(256));
}

#[zen(name = "memory::reported")]
async fn reported() {}

/// zen's own work at a scope's end (here a report sink of the
/// application's, which holds 1 MiB and runs a scope of its own meanwhile)
/// is charged to no scope: neither the one whose report it is handed, nor
/// the one it runs.
#[tokio::test]
async fn a_report_sink_is_charged_to_no_scope_even_when_it_runs_one() {
    // What the sink saw: that it ran inside the outer scope, and what its
    // own scope was charged.
    let seen: std::sync::Arc<std::sync::Mutex<Option<(bool, u64)>>> = std::sync::Arc::default();
    let record = std::sync::Arc::clone(&seen);
    let id = zen_runtime::sinks::add_sink(move |r| {
        if r.name != "memory::reported" {
            return;
        }
        let inside = zen_runtime::instrument::in_scope();
        let held = std::hint::black_box(vec![5u8; MIB]);
        let ((), own) = futures::executor::block_on(testing::measure(async {
            std::hint::black_box(vec![6u8; MIB]);
        }));
        drop(held);
        *record.lock().unwrap() = Some((inside, own.figures.memory().map_or(u64::MAX, |m| m.allocated)));
    });
    let ((), outer) = testing::measure(reported()).await;
    zen_runtime::sinks::remove_sink(id);
    let (inside, own) = seen.lock().unwrap().expect("the sink ran");
    assert!(inside, "the sink ran while the outer scope was current");
    assert!(own < (MIB / 4) as u64, "the scope the sink ran was charged nothing: {own}");
    let m = outer.figures.memory().unwrap();
    assert!(m.peak < (MIB / 4) as u64 && m.allocated < (MIB / 4) as u64, "{m:?}");
}
