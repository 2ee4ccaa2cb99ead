//! The tracker: scopes, nesting, tasks and concurrency, counted exactly.

use std::time::Duration;

use zen_runtime::{Kind, Outcome, instrument, testing, zen};

/// `n` database operations through the public reporting API, each held
/// across an await so polls interleave with other tasks.
async fn queries(n: u64) {
    for _ in 0..n {
        let op = instrument::query("test", "SELECT 1").unwrap();
        tokio::task::yield_now().await;
        op.finish(true);
    }
}

#[zen(max_queries = 10)]
async fn inner(n: u64) {
    queries(n).await;
}

#[zen(max_queries = 10)]
async fn outer() {
    queries(2).await;
    inner(3).await;
}

#[tokio::test]
async fn measure_counts_every_operation_and_call() {
    let ((), report) = testing::measure(async {
        queries(4).await;
        instrument::query("test", "SELECT broken").unwrap().finish(false);
        instrument::record_query("test", "SELECT slow", Duration::from_millis(30), true);
        instrument::call("api.example.com").unwrap().finish(true);
        instrument::record_call("api.example.com", Duration::from_millis(7), false);
    })
    .await;
    assert_eq!(report.figures.queries(), 6);
    assert_eq!(report.figures.failed_queries(), 1);
    assert!(report.figures.db_time() >= Duration::from_millis(30), "{report}");
    let slowest = report.slowest_query.as_ref().expect("a slowest query");
    assert_eq!(slowest.statement, "SELECT slow");
    assert_eq!(slowest.backend, "test");
    assert_eq!(report.figures.http_calls(), 2);
    assert_eq!(report.figures.failed_http_calls(), 1);
    assert_eq!((report.http_hosts[0].host.as_str(), report.http_hosts[0].calls), ("api.example.com", 2));
    assert!(report.figures.http_time() >= Duration::from_millis(7));
    assert_eq!(report.outcome, Outcome::Ok);
    // Absent, not zero, without ZenAlloc (this file also runs with it installed).
    assert_eq!(report.figures.memory().is_some(), zen_runtime::alloc::installed());
}

#[tokio::test]
async fn nested_scopes_count_toward_both_and_each_reports() {
    let ((), reports) = testing::collect(outer()).await;
    let names: Vec<&str> = reports.iter().map(|r| r.name.as_ref()).collect();
    assert_eq!(names, [concat!(module_path!(), "::inner"), concat!(module_path!(), "::outer")]);
    assert_eq!(reports[0].figures.queries(), 3, "inner counts its own");
    assert_eq!(reports[1].figures.queries(), 5, "outer counts its own and inner's");
}

#[zen]
async fn spawns() {
    let task = zen_runtime::spawn(queries(3));
    let blocking = zen_runtime::spawn_blocking(|| {
        instrument::record_query("test", "SELECT in a thread", Duration::from_millis(1), true);
    });
    // A plain tokio task belongs to no scope: not counted.
    let untracked = tokio::spawn(queries(5));
    task.await.unwrap();
    blocking.await.unwrap();
    untracked.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zen_spawn_carries_the_budget_and_tokio_spawn_does_not() {
    let ((), reports) = testing::collect(spawns()).await;
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].figures.queries(), 4, "3 from spawn, 1 from spawn_blocking, 0 from tokio::spawn");
}

#[zen]
async fn joins_and_selects() {
    tokio::join!(queries(2), queries(3));
    tokio::select! {
        () = queries(1) => {}
        () = tokio::time::sleep(Duration::from_secs(10)) => {}
    }
}

#[tokio::test]
async fn join_and_select_inside_a_scope_count() {
    let ((), reports) = testing::collect(joins_and_selects()).await;
    assert_eq!(reports[0].figures.queries(), 6);
}

#[zen(name = "numbered")]
async fn numbered(n: u64) -> u64 {
    queries(n).await;
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_scopes_each_report_exactly_their_own() {
    let ((), reports) = testing::collect(async {
        let tasks: Vec<_> = (0..200u64).map(|i| zen_runtime::spawn(numbered(i % 17))).collect();
        for task in tasks {
            task.await.unwrap();
        }
    })
    .await;
    assert_eq!(reports.len(), 200);
    let mut counts: Vec<u64> = reports.iter().map(|r| r.figures.queries()).collect();
    counts.sort_unstable();
    let mut expected: Vec<u64> = (0..200u64).map(|i| i % 17).collect();
    expected.sort_unstable();
    assert_eq!(counts, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_scopes_on_plain_tasks_do_not_leak_into_each_other() {
    // Each task is its own root scope: counts come from the sink-free
    // `measure` of each, run on tokio::spawn across worker threads.
    let tasks: Vec<_> = (0..200u64)
        .map(|i| {
            tokio::spawn(async move {
                let (n, report) = testing::measure(numbered(i % 13)).await;
                (n, report.figures.queries())
            })
        })
        .collect();
    for task in tasks {
        let (n, queries) = task.await.unwrap();
        assert_eq!(queries, n);
    }
}

#[zen(kind = "handler")]
async fn handler_kind() {
    inherits_kind().await;
}

#[zen]
async fn inherits_kind() {}

#[tokio::test]
async fn kind_is_written_or_inherited() {
    let ((), reports) = testing::collect(handler_kind()).await;
    assert_eq!(reports[0].kind, Kind::Handler, "inner inherits the enclosing kind");
    assert_eq!(reports[1].kind, Kind::Handler);
    let ((), reports) = testing::collect(inherits_kind()).await;
    assert_eq!(reports[0].kind, Kind::Other);
}

#[tokio::test]
async fn outside_a_scope_nothing_is_recorded_or_refused() {
    assert!(!instrument::in_scope());
    let op = instrument::query("test", "SELECT 1").expect("never refused outside a scope");
    assert_eq!(op.time_limit(), None);
    op.finish(true);
    // Misused outside a scope, `expire` says so instead of panicking.
    let expired = instrument::query("test", "SELECT 1").unwrap().expire();
    assert_eq!(expired.scope(), "(outside any scope)");
}

/// Four runs of one statement, all issued before any ends: finished where
/// they ran, or dropped.
#[zen(n_plus_one = 3)]
async fn issued_together(finish: bool) {
    let ops: Vec<_> = (0..4).map(|_| instrument::query("test", "SELECT 2").unwrap()).collect();
    tokio::task::yield_now().await;
    for op in ops {
        if finish {
            op.finish(true);
        } else {
            drop(op);
        }
    }
}

#[tokio::test]
async fn an_n_plus_one_issued_together_takes_its_call_site_when_finished_never_when_dropped() {
    let ((), reports) = testing::collect(issued_together(true)).await;
    let report = &reports[0];
    let [suspect] = report.n_plus_one.as_slice() else { panic!("one suspect: {report}") };
    assert_eq!(suspect.count, 4);
    let site = suspect.call_site.as_deref().unwrap_or_default();
    assert!(site.contains("issued_together"), "the code that finished them: {site:?}");
    // Dropped, they may have been cancelled from outside: the suspect is
    // reported, and no frame that is not theirs is taken for its site.
    let ((), reports) = testing::collect(issued_together(false)).await;
    let report = &reports[0];
    let [suspect] = report.n_plus_one.as_slice() else { panic!("one suspect: {report}") };
    assert_eq!((suspect.count, suspect.call_site.as_deref()), (4, None));
}
