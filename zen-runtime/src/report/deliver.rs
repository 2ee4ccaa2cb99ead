//! Where a report goes: the `zen` event and every registered sink.
//!
//! Every field of the event parses as logfmt (text fields are written as
//! quoted strings by `tracing-subscriber`'s formatter) and as JSON (strings,
//! numbers, booleans): it is one record for log pipelines to read.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use super::{NPlusOne, NestedViolation, Report, Violation};
use crate::budget::report_event;

/// A receiver of every report, registered with [`add_sink`].
pub type Sink = Arc<dyn Fn(&Report) + Send + Sync>;

/// Identifies a registered sink, to remove it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SinkId(u64);

static SINKS: RwLock<Vec<(SinkId, Sink)>> = RwLock::new(Vec::new());
static SINK_COUNT: AtomicUsize = AtomicUsize::new(0);
static NEXT_SINK: AtomicU64 = AtomicU64::new(1);

/// Registers a function that receives every report of the process, for an
/// exporter (metrics, a log pipeline) or a test. It runs on the thread that
/// ends the scope, so keep it short; a sink that panics is logged and skipped.
pub fn add_sink(sink: impl Fn(&Report) + Send + Sync + 'static) -> SinkId {
    let id = SinkId(NEXT_SINK.fetch_add(1, Ordering::Relaxed));
    let mut sinks = SINKS.write().unwrap_or_else(PoisonError::into_inner);
    sinks.push((id, Arc::new(sink)));
    SINK_COUNT.store(sinks.len(), Ordering::Release);
    id
}

/// Unregisters a sink; `false` if it was not registered.
pub fn remove_sink(id: SinkId) -> bool {
    let mut sinks = SINKS.write().unwrap_or_else(PoisonError::into_inner);
    let before = sinks.len();
    sinks.retain(|(i, _)| *i != id);
    SINK_COUNT.store(sinks.len(), Ordering::Release);
    sinks.len() != before
}

/// Items joined by `; `.
struct Joined<'a, T>(&'a [T]);

impl<T: fmt::Display> fmt::Display for Joined<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, item) in self.0.iter().enumerate() {
            write!(f, "{}{item}", if i == 0 { "" } else { "; " })?;
        }
        Ok(())
    }
}

impl fmt::Display for NPlusOne {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let site = self.call_site.as_deref().unwrap_or("unknown call site");
        write!(f, "{}x `{}` at {site}", self.count, self.fingerprint)
    }
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Sends one report as the `zen` event. Text fields are `&str` values, which
/// formatters quote and escape; absent figures are absent fields.
macro_rules! event {
    ($level:expr, $r:expr, $message:literal) => {{
        let r: &Report = $r;
        let x = &r.figures;
        let mem = x.memory.as_ref();
        // The lists are formatted only if a subscriber wants the event:
        // tracing evaluates field values after its own check.
        report_event!(
            $level,
            r,
            $message,
            name = &*r.name,
            kind = r.kind.as_str(),
            handler = r.handler,
            attempt = r.attempt,
            mode = r.mode.as_str(),
            outcome = r.outcome.as_str(),
            status = r.status,
            failed_queries = x.failed_queries,
            refused_queries = x.refused_queries,
            db_wait_ms = ms(x.db_wait()),
            slowest_query = r.slowest_query.as_ref().map(|q| q.statement.as_str()),
            slowest_query_ms = r.slowest_query.as_ref().map(|q| ms(q.elapsed)),
            failed_http_calls = x.failed_http_calls,
            refused_http_calls = x.refused_http_calls,
            http_in_handler = r.http_in_handler(),
            mem_allocated_bytes = mem.map(|m| m.allocated),
            mem_retained_bytes = mem.map(|m| m.retained),
            slow_polls = x.slow_polls,
            violations = (!r.violations.is_empty()).then(|| Joined::<Violation>(&r.violations).to_string()).as_deref(),
            n_plus_one = (!r.n_plus_one.is_empty()).then(|| Joined::<NPlusOne>(&r.n_plus_one).to_string()).as_deref(),
            nested_violations = (!r.nested_violations.is_empty())
                .then(|| Joined::<NestedViolation>(&r.nested_violations).to_string())
                .as_deref(),
        );
    }};
}

/// `true` when a report within budget would reach anyone: a sink, or a
/// `tracing` subscriber that wants `zen` at DEBUG. A violation always does.
pub(crate) fn wanted() -> bool {
    SINK_COUNT.load(Ordering::Acquire) > 0 || tracing::enabled!(target: "zen", tracing::Level::DEBUG)
}

/// Sends a finished report to `tracing` and to every sink.
pub(crate) fn deliver(report: &Report) {
    if !report.violations.is_empty() {
        event!(tracing::Level::WARN, report, "zen budget exceeded");
    } else if !report.n_plus_one.is_empty() {
        event!(tracing::Level::WARN, report, "zen N+1 queries suspected");
    } else {
        event!(tracing::Level::DEBUG, report, "zen scope ended within budget");
    }
    if SINK_COUNT.load(Ordering::Acquire) == 0 {
        return;
    }
    let sinks: Vec<Sink> =
        SINKS.read().unwrap_or_else(PoisonError::into_inner).iter().map(|(_, s)| Arc::clone(s)).collect();
    for sink in sinks {
        if catch_unwind(AssertUnwindSafe(|| sink(report))).is_err() {
            tracing::error!(target: "zen", name = &*report.name, "a zen report sink panicked; the report was not delivered to it");
        }
    }
}
