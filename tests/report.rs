//! One report per scope, however it ends, delivered to `tracing`, to sinks
//! and to tests.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use zen_runtime::{Budget, Outcome, Report, instrument, report, testing, zen};

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
    assert_eq!(reports[0].figures.queries, 1);
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
    assert_eq!(reports[0].figures.queries, 1);
    assert!(reports[0].figures.elapsed >= Duration::from_millis(20));
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
    let id = report::add_sink(move |r| {
        if r.name == "report::for_sink" {
            sink.lock().unwrap().push(r.clone());
        }
    });
    for_sink().await;
    assert!(report::remove_sink(id));
    for_sink().await;
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "one report while registered, none after");
    assert_eq!(seen[0].figures.queries, 3);
}

#[tokio::test]
async fn a_panicking_sink_is_skipped_and_does_not_crash() {
    let id = report::add_sink(|r| {
        if r.name == "report::for_panicking_sink" {
            panic!("sink bug");
        }
    });
    let ((), reports) = testing::collect(for_panicking_sink()).await;
    report::remove_sink(id);
    assert_eq!(reports.len(), 1);
}
