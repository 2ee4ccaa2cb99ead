//! An exporter written outside zen, on its public observer interface alone:
//! it sees every scope's end and every database operation, statements as
//! fingerprints, and the full report only when it asks.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use zen_runtime::observe::{self, Hooks, Observer, OperationEnd, ScopeEnd};
use zen_runtime::{Kind, Outcome, instrument, zen};

/// A scope as this exporter keeps it: name, kind, outcome, queries, and
/// each statement with its runs.
type Kept = (String, Kind, Outcome, u64, Vec<(String, u64)>);

/// What this exporter saw of the scopes named `observe::*`.
#[derive(Default)]
struct Seen {
    scopes: Mutex<Vec<Kept>>,
    operations: Mutex<Vec<(&'static str, &'static str, String, bool)>>,
    reports: AtomicUsize,
}

struct Exporter(Arc<Seen>);

impl Observer for Exporter {
    fn scope_ended(&self, end: &ScopeEnd<'_>) {
        if !end.name().starts_with("observe::") {
            return;
        }
        let mut statements = Vec::new();
        end.statements(|s| statements.push((s.fingerprint.to_string(), s.count)));
        statements.sort();
        if end.outcome() != Outcome::Ok {
            // Asked for only when worth it: built then, not before.
            assert!(!end.report().violations.is_empty());
            self.0.reports.fetch_add(1, Ordering::Relaxed);
        }
        let entry = (end.name().to_owned(), end.kind(), end.outcome(), end.figures().queries(), statements);
        self.0.scopes.lock().unwrap().push(entry);
    }

    fn operation_ended(&self, end: &OperationEnd<'_>) {
        if end.fingerprint().contains("observed") {
            let entry = (end.backend(), end.operation(), end.fingerprint().to_owned(), end.ok());
            self.0.operations.lock().unwrap().push(entry);
        }
    }
}

#[zen(name = "observe::within", max_queries = 5)]
async fn within() {
    for id in 0..3 {
        let _ = id;
        instrument::query("PostgreSQL", "SELECT name FROM observed WHERE id = 42").unwrap().finish(true);
    }
}

#[zen(name = "observe::over", max_queries = 1, kind = "job")]
async fn over() {
    for _ in 0..2 {
        instrument::query("PostgreSQL", "UPDATE observed SET n = n + 1").unwrap().finish(false);
    }
}

/// Observers see every scope of the process: these tests run one at a time.
static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn an_exporter_outside_zen_sees_every_scope_and_operation_without_values() {
    let _alone = ALONE.lock().await;
    let seen = Arc::new(Seen::default());
    let id = observe::register(Exporter(Arc::clone(&seen)));
    within().await;
    over().await;
    assert!(observe::unregister(id));
    within().await;

    let scopes = seen.scopes.lock().unwrap().clone();
    assert_eq!(scopes.len(), 2, "two scopes while registered, none after: {scopes:?}");
    let within_seen = &scopes[0];
    assert_eq!(
        (within_seen.0.as_str(), within_seen.1, within_seen.2, within_seen.3),
        ("observe::within", Kind::Other, Outcome::Ok, 3)
    );
    assert_eq!(
        within_seen.4,
        [("SELECT name FROM observed WHERE id = ?".to_owned(), 3)],
        "a fingerprint, never the 42"
    );
    assert_eq!((scopes[1].1, scopes[1].2), (Kind::Job, Outcome::Exceeded));
    assert_eq!(seen.reports.load(Ordering::Relaxed), 1, "the report of the scope that blew its budget");

    let operations = seen.operations.lock().unwrap().clone();
    assert_eq!(operations.len(), 5, "{operations:?}");
    assert_eq!(operations[0], ("PostgreSQL", "SELECT", "SELECT name FROM observed WHERE id = ?".to_owned(), true));
    assert_eq!(operations[4].1, "UPDATE");
    assert!(!operations[4].3, "it failed");
}

/// An observer that panics in every hook.
struct Faulty;

impl Observer for Faulty {
    fn hooks(&self) -> Hooks {
        Hooks::SCOPE_ENDED
    }

    fn scope_ended(&self, end: &ScopeEnd<'_>) {
        if end.name().starts_with("observe::") {
            panic!("an exporter's bug");
        }
    }
}

/// Counts the scopes it sees, and says when it is dropped.
struct Counting(Arc<AtomicUsize>, Arc<AtomicUsize>);

impl Observer for Counting {
    fn hooks(&self) -> Hooks {
        Hooks::SCOPE_ENDED
    }

    fn scope_ended(&self, end: &ScopeEnd<'_>) {
        if end.name() == "observe::within" {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Counting {
    fn drop(&mut self) {
        self.1.fetch_add(1, Ordering::Relaxed);
    }
}

#[tokio::test]
async fn a_panicking_observer_is_skipped_and_an_unregistered_one_is_dropped() {
    let _alone = ALONE.lock().await;
    let (count, dropped) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let faulty = observe::register(Faulty);
    let counting = observe::register(Counting(Arc::clone(&count), Arc::clone(&dropped)));
    within().await;
    assert_eq!(count.load(Ordering::Relaxed), 1, "the observer after the faulty one ran");
    assert!(observe::unregister(counting));
    // Another test of this binary may be mid-dispatch on another thread and
    // hold it a moment; no thread keeps it longer.
    let since = std::time::Instant::now();
    while dropped.load(Ordering::Relaxed) == 0 && since.elapsed() < std::time::Duration::from_secs(2) {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(dropped.load(Ordering::Relaxed), 1, "dropped when unregistered, not kept by a thread that called it");
    within().await;
    assert_eq!(count.load(Ordering::Relaxed), 1);
    assert!(observe::unregister(faulty));
    assert!(!observe::unregister(faulty), "once");
}

/// Asks for the report while reading the statements and hosts, and gives
/// back, at each operation's start, a call that panics at its end.
struct Curious(Arc<AtomicUsize>);

impl Observer for Curious {
    fn scope_ended(&self, end: &ScopeEnd<'_>) {
        if end.name() == "observe::curious" {
            end.statements(|_| {
                let _ = end.report();
            });
            end.hosts(|_, _| {
                let _ = end.report();
            });
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn operation_started(&self, start: &OperationEnd<'_>) -> Option<observe::OnEnd> {
        start.fingerprint().contains("curious").then(|| -> observe::OnEnd { Box::new(|_| panic!("an exporter's bug")) })
    }
}

#[zen(name = "observe::curious")]
async fn curious() {
    instrument::query("PostgreSQL", "SELECT 1 FROM curious").unwrap().finish(true);
    instrument::call("curious.example").unwrap().finish(true);
}

#[test]
fn an_observer_may_ask_for_the_report_anywhere_and_its_end_of_operation_may_panic() {
    let _alone = ALONE.blocking_lock();
    let seen = Arc::new(AtomicUsize::new(0));
    let id = observe::register(Curious(Arc::clone(&seen)));
    // On a thread of its own: a deadlock fails here instead of hanging.
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (_, report) = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(zen_runtime::testing::measure(async { curious().await }));
        done.send(report).unwrap();
    });
    let report = finished.recv_timeout(std::time::Duration::from_secs(10)).expect("no deadlock");
    assert!(observe::unregister(id));
    assert_eq!(seen.load(Ordering::Relaxed), 1, "it read its statements and hosts, and the report within");
    assert_eq!(report.figures.queries(), 1);
    assert_eq!(report.figures.failed_queries(), 0, "the panic at its end was the observer's, not the query's");
}
