//! Assertions on what code uses: the `assertNumQueries` of zen, for every
//! figure.
//!
//! [`measure`] runs a future and returns its output with the [`Report`] of
//! everything it did; [`collect`] returns the reports of every scope that
//! ended inside it. Neither sends its own report anywhere else, and the
//! budget lock does not record the scopes they open around the code they
//! measure.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use zen_runtime::{instrument, testing, zen};
//!
//! #[zen(max_queries = 5)]
//! async fn list_articles() -> usize {
//!     for _ in 0..2 {
//!         instrument::query("sqlite", "SELECT * FROM articles").unwrap().finish(true);
//!     }
//!     2
//! }
//!
//! let (page, report) = testing::measure(list_articles()).await;
//! assert_eq!(page, 2);
//! assert_eq!(report.figures.queries(), 2);
//! // The handler's own budget: `measure` has none, but reports the
//! // violations of the scopes that ended inside it.
//! assert!(report.within_budget(), "{report}");
//! # }
//! ```
//!
//! # Queries that do not grow with the data
//!
//! [`assert_constant_queries`] and [`assert_linear_queries`] are
//! `n_plus_one_control`'s idea. With a real database,
//! `assert_constant_queries(&[1, 5, 20], |scale| populate(&pool, scale), ||
//! feed(&pool))` awaits `populate(scale)` for each scale factor, outside the
//! measurement, then measures `feed(&pool)`; `assert_linear_queries` takes a
//! `slope` after the scales. A count that grows (or grows more than `slope`
//! per unit of scale) fails with the count at each scale and the statements
//! that grew:
//!
//! ```text
//! zen: the number of queries grows with the data
//!   scale      1: 2 queries
//!   scale      5: 6 queries  (allowed 2)
//!   scale     20: 21 queries  (allowed 2)
//! statements that grew (times at each scale):
//!   1 → 5 → 20  SELECT name FROM users WHERE id = ?
//! ```

use std::borrow::Cow;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use crate::tracker::budget::{Kind, Mode};
use crate::tracker::future::Scoped;
use crate::tracker::report::Report;
use crate::tracker::scope::{Asked, Scope, Spec};

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

fn spec(name: &'static str, collector: Option<crate::tracker::scope::Collector>) -> Spec {
    Spec {
        name: Cow::Borrowed(name),
        method: None,
        kind: Some(Kind::Other),
        asked: Asked { mode: Some(Mode::Observe), ..Asked::default() },
        collector,
        adoptable: false,
        attempt: None,
        caller_time_left: None,
    }
}

/// Asserts that the queries `run` makes do not grow with the data, the
/// `n_plus_one_control` way: for each scale factor in `scales`, in order,
/// awaits `populate(scale)` (outside the measurement), then measures
/// `run()`. Returns the query count of each scale when they are all equal.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use zen_runtime::{instrument, testing};
///
/// let rows = AtomicU32::new(0);
/// let counts = testing::assert_constant_queries(
///     &[1, 5, 10],
///     |scale| { rows.store(scale, Ordering::Relaxed); async {} },
///     || async { instrument::query("sqlite", "SELECT * FROM articles").unwrap().finish(true) },
/// )
/// .await;
/// assert_eq!(counts, [1, 1, 1]);
/// # }
/// ```
///
/// # Panics
/// When a scale runs more queries than the first, with the count at each
/// scale and the statements that grew; when `scales` holds fewer than two
/// scales or is not increasing.
pub async fn assert_constant_queries<P, PF, R, RF>(scales: &[u32], populate: P, run: R) -> Vec<u64>
where
    P: FnMut(u32) -> PF,
    PF: Future<Output = ()>,
    R: FnMut() -> RF,
    RF: Future,
{
    assert_linear_queries(scales, 0, populate, run).await
}

/// Asserts that the queries `run` makes grow at most `slope` per unit of
/// scale: at each scale `s`, no more than the first scale's count plus
/// `slope * (s - first)`. With `slope = 0` this is
/// [`assert_constant_queries`]. Returns the query count of each scale.
///
/// # Panics
/// As [`assert_constant_queries`], when a scale runs more than the slope
/// allows.
pub async fn assert_linear_queries<P, PF, R, RF>(scales: &[u32], slope: u64, mut populate: P, mut run: R) -> Vec<u64>
where
    P: FnMut(u32) -> PF,
    PF: Future<Output = ()>,
    R: FnMut() -> RF,
    RF: Future,
{
    assert!(
        scales.len() >= 2 && scales.windows(2).all(|w| w[0] < w[1]),
        "zen: give at least two increasing scale factors, such as &[1, 5, 10]; got {scales:?}"
    );
    let mut runs = Vec::with_capacity(scales.len());
    for &scale in scales {
        populate(scale).await;
        let (_, report) = measure(run()).await;
        runs.push(report);
    }
    let counts: Vec<u64> = runs.iter().map(|r| r.figures.queries()).collect();
    let first = (u64::from(scales[0]), counts[0]);
    let allowed = |scale: u32| first.1 + slope * (u64::from(scale) - first.0);
    if scales.iter().zip(&counts).all(|(&s, &n)| n <= allowed(s)) {
        return counts;
    }
    let mut message = if slope == 0 {
        String::from("zen: the number of queries grows with the data\n")
    } else {
        format!("zen: the number of queries grows faster than {slope} per unit of scale\n")
    };
    for (s, n) in scales.iter().zip(&counts) {
        let over = if *n > allowed(*s) { format!("  (allowed {})", allowed(*s)) } else { String::new() };
        message.push_str(&format!("  scale {s:>6}: {n} queries{over}\n"));
    }
    message.push_str("statements that grew (times at each scale):\n");
    let mut fingerprints: Vec<&str> = Vec::new();
    for r in &runs {
        for st in &r.statements {
            if !fingerprints.contains(&st.fingerprint.as_str()) {
                fingerprints.push(&st.fingerprint);
            }
        }
    }
    for fingerprint in fingerprints {
        let times: Vec<u64> = runs
            .iter()
            .map(|r| r.statements.iter().find(|st| st.fingerprint == fingerprint).map_or(0, |st| st.count))
            .collect();
        if times.iter().any(|&n| n > times[0]) {
            let times: Vec<String> = times.iter().map(u64::to_string).collect();
            message.push_str(&format!("  {}  {fingerprint}\n", times.join(" → ")));
        }
    }
    panic!("{message}");
}
