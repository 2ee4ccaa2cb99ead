//! Assertions on what code uses: the `assertNumQueries` of zen, for every
//! figure.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use zen_runtime::{instrument, testing};
//!
//! let ((), report) = testing::measure(async {
//!     for _ in 0..3 {
//!         instrument::query("sqlite", "SELECT 1").unwrap().finish(true);
//!     }
//! })
//! .await;
//! assert_eq!(report.figures.queries(), 3);
//! # }
//! ```

use std::borrow::Cow;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use crate::budget::{Kind, Mode};
use crate::future::Scoped;
use crate::report::Report;
use crate::scope::{Defaults, Scope, Spec};

/// Runs `fut` in an unlimited scope of its own (nested in the current one,
/// if any) and returns its output with the scope's report: every query,
/// call and (with `ZenAlloc`) byte that `fut` and the scopes it calls used.
/// The report is returned, not logged or sent to sinks.
///
/// The measuring scope has no limits of its own, but a `#[zen]` fn that
/// `fut` calls keeps its own: if it (or any scope that ended inside `fut`)
/// exceeded its budget, the report's `nested_violations` say which, and
/// `within_budget()` is `false`. So `assert!(report.within_budget())`
/// checks the handler's budget.
///
/// # Panics
/// If `fut` panics, the panic is passed on.
pub async fn measure<F: Future>(fut: F) -> (F::Output, Report) {
    let slot = Arc::new(Mutex::new(None));
    let scope = Scope::open(spec("zen::testing::measure", None));
    let output = Scoped::new(scope, None, fut).keep(Arc::clone(&slot)).await;
    let report = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
    (output, report.expect("a finished scope always leaves its report"))
}

/// Runs `fut` and returns the reports of every scope that ended inside it
/// (annotated fns it called, at any depth, and tasks it started with
/// `zen_runtime::spawn`), in the order they ended. Unlike a sink, it sees
/// only this future's scopes, so tests running in parallel do not mix.
pub async fn collect<F: Future>(fut: F) -> (F::Output, Vec<Report>) {
    let collector = Arc::new(Mutex::new(Vec::new()));
    let scope = Scope::open(spec("zen::testing::collect", Some(Arc::clone(&collector))));
    let output = Scoped::new(scope, None, fut).keep(Arc::new(Mutex::new(None))).await;
    let reports = std::mem::take(&mut *collector.lock().unwrap_or_else(PoisonError::into_inner));
    (output, reports)
}

fn spec(name: &'static str, collector: Option<crate::scope::Collector>) -> Spec {
    Spec {
        name: Cow::Borrowed(name),
        kind: Some(Kind::Other),
        defaults: Defaults { mode: Some(Mode::Observe), ..Defaults::default() },
        collector,
        adoptable: false,
        attempt: None,
    }
}
