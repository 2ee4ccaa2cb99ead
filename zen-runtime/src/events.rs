//! The `zen` event: every scope's report as a `tracing` event of target
//! `zen`, one of the observers the crate registers by default. A WARN when
//! a budget was exceeded or an N+1 pattern seen; otherwise a DEBUG, built
//! only when a subscriber wants `zen` at that level.
//!
//! Every field parses as logfmt (text fields are written as quoted strings
//! by `tracing-subscriber`'s formatter) and as JSON (strings, numbers,
//! booleans): it is one record for log pipelines to read. Its field
//! reference, for users, is in the docs of the `report` module.

use std::fmt;

use crate::tracker::budget::report_event;
use crate::tracker::observe::{Hooks, Observer, ScopeEnd};
use crate::tracker::report::{Duplicate, NPlusOne, NestedViolation, Outcome, RepeatedCall, Report, Violation};

/// The observer that sends the `zen` event.
#[derive(Debug, Default)]
pub(crate) struct Events;

impl Observer for Events {
    fn hooks(&self) -> Hooks {
        Hooks::SCOPE_ENDED
    }

    fn scope_ended(&self, end: &ScopeEnd<'_>) {
        // `testing::measure` hands its report to the test, not the log.
        if end.is_measurement() {
            return;
        }
        let attention = end.outcome() != Outcome::Ok || end.n_plus_one() > 0;
        if !attention && !tracing::enabled!(target: "zen", tracing::Level::DEBUG) {
            return;
        }
        let report = end.report();
        if !report.violations.is_empty() {
            event!(tracing::Level::WARN, report, "zen budget exceeded");
        } else if !report.n_plus_one.is_empty() {
            event!(tracing::Level::WARN, report, "zen N+1 queries suspected");
        } else {
            event!(tracing::Level::DEBUG, report, "zen scope ended within budget");
        }
    }
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

/// Duplicates, then repeated calls, joined by `; `.
fn repeated(duplicates: &[Duplicate], calls: &[RepeatedCall]) -> String {
    let (d, c) = (Joined(duplicates).to_string(), Joined(calls).to_string());
    if d.is_empty() || c.is_empty() { d + &c } else { d + "; " + &c }
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
        let mem = x.memory();
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
            caller_time_left_ms = r.caller_time_left.map(ms),
            mode = r.mode.as_str(),
            outcome = r.outcome.as_str(),
            status = r.status,
            failed_queries = x.failed_queries(),
            refused_queries = x.refused_queries(),
            db_wait_ms = ms(x.db_wait()),
            slowest_query = r.slowest_query.as_ref().map(|q| q.statement.as_str()),
            slowest_query_ms = r.slowest_query.as_ref().map(|q| ms(q.elapsed)),
            failed_http_calls = x.failed_http_calls(),
            refused_http_calls = x.refused_http_calls(),
            http_in_handler = r.http_in_handler(),
            mem_allocated_bytes = mem.map(|m| m.allocated),
            mem_retained_bytes = mem.map(|m| m.retained),
            slow_polls = x.slow_polls(),
            writes = (r.outcome != Outcome::Ok).then(|| x.writes().as_str()),
            violations = (!r.violations.is_empty()).then(|| Joined::<Violation>(&r.violations).to_string()).as_deref(),
            n_plus_one = (!r.n_plus_one.is_empty()).then(|| Joined::<NPlusOne>(&r.n_plus_one).to_string()).as_deref(),
            // tracing takes 32 fields at most: both patterns in one.
            repeated = (!r.duplicates().is_empty() || !r.repeated_calls().is_empty())
                .then(|| repeated(r.duplicates(), r.repeated_calls()))
                .as_deref(),
            nested_violations = (!r.nested_violations.is_empty())
                .then(|| Joined::<NestedViolation>(&r.nested_violations).to_string())
                .as_deref(),
        );
    }};
}
use event;
