//! One report per scope, however it ends, delivered to `tracing`, to sinks
//! and to tests.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use zen_runtime::{Budget, Outcome, Report, instrument, sinks, testing, zen};

#[zen(name = "report::panics", max_queries = 1)]
async fn panics() {
    instrument::query("test", "SELECT 1").unwrap().finish(true);
    tokio::task::yield_now().await;
    panic!("boom");
}

#[tokio::test]
async fn a_panic_reports_panicked_once() {
    let (result, reports) = testing::collect(std::panic::AssertUnwindSafe(panics()).catch_unwind()).await;
    assert!(result.is_err(), "the panic is passed on");
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].outcome, Outcome::Panicked);
    assert_eq!(reports[0].figures.queries(), 1);
}

#[tokio::test]
async fn a_panic_in_a_spawned_task_reports_panicked() {
    let (join, reports) = testing::collect(async { zen_runtime::spawn(panics()).await }).await;
    assert!(join.unwrap_err().is_panic());
    assert_eq!(reports.iter().map(|r| r.outcome).collect::<Vec<_>>(), [Outcome::Panicked]);
}

#[zen(name = "report::sleeps")]
async fn sleeps() {
    instrument::query("test", "SELECT 1").unwrap().finish(true);
    tokio::time::sleep(Duration::from_secs(30)).await;
}

#[tokio::test]
async fn a_dropped_future_reports_cancelled_once() {
    let (timed_out, reports) = testing::collect(tokio::time::timeout(Duration::from_millis(20), sleeps())).await;
    assert!(timed_out.is_err());
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].outcome, Outcome::Cancelled);
    assert_eq!(reports[0].figures.queries(), 1);
    assert!(reports[0].figures.elapsed() >= Duration::from_millis(20));
}

#[tokio::test]
async fn a_future_dropped_before_its_first_poll_reports_nothing() {
    // The scope opens at the first poll: a future never polled did no work.
    let ((), reports) = testing::collect(async { drop(sleeps()) }).await;
    assert!(reports.is_empty());
}

#[zen(name = "report::over", max_queries = 1, timeout_ms = 5)]
async fn over_budget() {
    for _ in 0..3 {
        instrument::query("test", "SELECT 1").unwrap().finish(true);
    }
    tokio::time::sleep(Duration::from_millis(15)).await;
}

#[tokio::test]
async fn violations_say_which_budget_its_limit_and_what_was_used() {
    let ((), reports) = testing::collect(over_budget()).await;
    let r = &reports[0];
    assert_eq!(r.outcome, Outcome::Exceeded);
    let queries = r.violation(Budget::Queries).expect("max_queries violated");
    assert_eq!((queries.limit, queries.used), (1, 3));
    let timeout = r.violation(Budget::Timeout).expect("timeout_ms violated");
    assert_eq!(timeout.limit, 5);
    assert!(timeout.used >= 15, "{timeout}");
    assert!(r.violation(Budget::DbTime).is_none());
    let text = r.to_string();
    assert!(text.contains("max_queries = 1: used 3 queries"), "{text}");
}

// Sinks see the whole process: each sink test watches a scope of its own.
#[zen(name = "report::for_sink", max_queries = 1)]
async fn for_sink() {
    for _ in 0..3 {
        instrument::query("test", "SELECT 1").unwrap().finish(true);
    }
}

#[zen(name = "report::for_panicking_sink")]
async fn for_panicking_sink() {}

#[tokio::test]
async fn sinks_receive_every_report_until_removed() {
    let seen = Arc::new(Mutex::new(Vec::<Report>::new()));
    let sink = Arc::clone(&seen);
    let id = sinks::add_sink(move |r| {
        if r.name == "report::for_sink" {
            sink.lock().unwrap().push(r.clone());
        }
    });
    for_sink().await;
    assert!(sinks::remove_sink(id));
    for_sink().await;
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "one report while registered, none after");
    assert_eq!(seen[0].figures.queries(), 3);
}

#[tokio::test]
async fn a_panicking_sink_is_skipped_and_does_not_crash() {
    // Sinks before and after it still get the report.
    let counted = |count: &std::sync::Arc<std::sync::atomic::AtomicU32>| {
        let count = std::sync::Arc::clone(count);
        move |r: &zen_runtime::Report| {
            if r.name == "report::for_panicking_sink" {
                count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    };
    let (before, after) = (std::sync::Arc::default(), std::sync::Arc::default());
    let first = sinks::add_sink(counted(&before));
    let id = sinks::add_sink(|r| {
        if r.name == "report::for_panicking_sink" {
            panic!("sink bug");
        }
    });
    let last = sinks::add_sink(counted(&after));
    let ((), reports) = testing::collect(for_panicking_sink()).await;
    for sink in [first, id, last] {
        sinks::remove_sink(sink);
    }
    assert_eq!(reports.len(), 1);
    let load = |c: &std::sync::Arc<std::sync::atomic::AtomicU32>| c.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!((load(&before), load(&after)), (1, 1), "the other sinks ran");
}

#[zen(max_queries = 3)]
async fn eleven_queries() {
    for _ in 0..11 {
        zen_runtime::instrument::query("sqlite", "SELECT 1").unwrap().finish(true);
    }
}

#[tokio::test]
async fn measure_says_when_a_scope_inside_it_blew_its_budget() {
    let ((), report) = testing::measure(eleven_queries()).await;
    assert_eq!(report.figures.queries(), 11);
    assert!(report.violations.is_empty(), "the measuring scope has no limits of its own");
    assert!(!report.within_budget(), "but the handler it ran blew its budget: {report}");
    let nested = &report.nested_violations[0];
    assert!(nested.scope.ends_with("eleven_queries"), "{nested}");
    assert_eq!((nested.violation.budget, nested.violation.limit, nested.violation.used), (Budget::Queries, 3, 11));
    assert!(report.to_string().contains("exceeded inside: `"), "{report}");
}

/// Every time, memory and byte limit at the largest value the attribute
/// accepts: nothing overflows when the scope ends, and nothing is exceeded.
#[zen(
    timeout_ms = 18446744073709551615,
    max_db_ms = 18446744073709551615,
    max_http_ms = 18446744073709551615,
    max_poll_ms = 18446744073709551615,
    max_mem_kb = 18446744073709551615,
    max_rows = 18446744073709551615,
    max_response_kb = 18446744073709551615,
    max_queries = 4294967295,
    max_http_calls = 4294967295,
    mode = "strict"
)]
async fn largest_limits() -> Result<(), zen_runtime::BudgetExceeded> {
    let op = zen_runtime::instrument::query("sqlite", "SELECT 1")?;
    assert!(op.time_limit().is_none(), "no enforced limit in strict mode");
    op.finish(true);
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    Ok(())
}

#[zen(timeout_ms = 18446744073709551615, max_db_ms = 18446744073709551615, mode = "enforce")]
async fn largest_limits_enforced() -> Result<std::time::Duration, zen_runtime::BudgetExceeded> {
    let op = zen_runtime::instrument::query("sqlite", "SELECT 1")?;
    let left = op.time_limit().expect("enforced: some time is left");
    op.finish(true);
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    Ok(left)
}

#[tokio::test]
async fn the_largest_limits_never_overflow() {
    let (result, reports) = testing::collect(largest_limits()).await;
    result.unwrap();
    assert!(reports[0].violations.is_empty(), "{}", reports[0]);
    assert_eq!(reports[0].limits.get(Budget::Timeout), Some(u64::MAX));
    let (left, reports) = testing::collect(largest_limits_enforced()).await;
    assert!(left.unwrap() > std::time::Duration::from_secs(1_000_000_000), "saturates instead of wrapping");
    assert_eq!(reports[0].outcome, zen_runtime::Outcome::Ok);
}
