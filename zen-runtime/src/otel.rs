//! Every scope's figures as OpenTelemetry attributes of the current
//! `tracing` span (feature `opentelemetry`), exported by
//! [`tracing-opentelemetry`](https://docs.rs/tracing-opentelemetry) with
//! the rest of the trace.
//!
//! With `tracing_opentelemetry::layer()` in your subscriber, when a scope
//! ends (from its counters, whether or not a report is built), the span
//! current at that moment gets (the request's span under
//! `tower_http::trace::TraceLayer` placed outside zen's layer, or the span
//! of `#[tracing::instrument]` written below `#[zen]`):
//!
//! | attribute | value |
//! |---|---|
//! | `zen.scope.name` | the scope's name (for a request, its route template) |
//! | `zen.scope.kind` | `handler`, `job` or `other` |
//! | `zen.mode` | `observe`, `enforce` or `strict` |
//! | `zen.outcome` | `ok`, `exceeded`, `cancelled` or `panicked` |
//! | `zen.queries`, `zen.db_ms`, `zen.elapsed_ms`, ... | each figure, named and valued as in the report event |
//! | `zen.limit.max_queries`, ... | each limit set, in its unit |
//! | `zen.n_plus_one` | N+1 suspects |
//! | `http.route` | the route template, for a request |
//!
//! and one span event `zen.budget_exceeded` per budget exceeded, with
//! `zen.budget` (its key), `zen.limit`, `zen.used` and `zen.unit`. A scope
//! nested in another in the same span writes first; the enclosing one, ending
//! later, overwrites with its own figures.
//!
//! With [`set_db_spans`]`(true)`, every database operation is also a span of
//! kind CLIENT, `zen::db` target, named after its verb (`SELECT`, a Redis
//! command; the system's name for any other), with `db.system.name`, `db.operation.name` and
//! `db.query.text` holding the statement's fingerprint: never a value.
//! (sqlx's own `sqlx::query` log events carry the statement's text as
//! written: filter them with `sqlx=warn` where a literal in SQL must not
//! reach a trace.)
//!
//! With [`set_timelines`]`(true)` (or while a dashboard keeps timelines),
//! each scope records its [timeline](crate::timeline), and the span gets
//! one event `zen.operation` per operation, stamped with the time it
//! started: `zen.backend`, `db.query.text` (the fingerprint, or a call's
//! method, host and path template), `zen.duration_ms`, `zen.rows` and
//! `zen.outcome` (`ok`, `failed`, `refused`, `cut`, `dropped`), for the
//! first 100 operations; and, before them, one event `zen.duplicate` or
//! `zen.repeated_call` per pattern found, with `db.query.text` and
//! `zen.count` (a span keeps its first 128 events by default: the findings
//! and the budgets exceeded come first).
//!
//! Tested with the OpenTelemetry SDK's in-memory exporter. Without the
//! feature, nothing is compiled in.

use std::sync::{Mutex, PoisonError};

use opentelemetry::{KeyValue, Value};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::tracker::budget::{Budget, Measure};
use crate::tracker::observe::{self, Hooks, Observer, ObserverId, OnEnd, OperationEnd, ScopeEnd};

static DB_SPANS: Mutex<Option<ObserverId>> = Mutex::new(None);
static TIMELINES: Mutex<Option<ObserverId>> = Mutex::new(None);

/// Makes every scope record its timeline, written on its span as events
/// (off by default: an operation then costs a lock and a push, and a span
/// one event per operation).
pub fn set_timelines(on: bool) {
    switch(&TIMELINES, on, || AskTimelines);
}

/// Registers the observer `make` makes, or unregisters it, once, as `on`
/// says; `slot` holds it while registered.
fn switch<O: Observer>(slot: &Mutex<Option<ObserverId>>, on: bool, make: impl FnOnce() -> O) {
    let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
    match (on, *slot) {
        (true, None) => *slot = Some(observe::register(make())),
        (false, Some(id)) => {
            observe::unregister(id);
            *slot = None;
        }
        _ => {}
    }
}

/// Asks for timelines, and takes no hook: [`Attributes`] writes them.
struct AskTimelines;

impl Observer for AskTimelines {
    fn hooks(&self) -> Hooks {
        Hooks::TIMELINES
    }
}

/// Makes every database operation a CLIENT span of its own (off by default:
/// a span per query is costly at volume, and the scope's figures already
/// carry the counts). On, it is an observer of each operation's start; off,
/// it costs operations nothing.
pub fn set_db_spans(on: bool) {
    switch(&DB_SPANS, on, || DbSpans);
}

/// `true` when database operations get spans of their own.
#[must_use]
pub fn db_spans() -> bool {
    DB_SPANS.lock().unwrap_or_else(PoisonError::into_inner).is_some()
}

/// The observer that writes every scope's figures on the current span.
#[derive(Debug, Default)]
pub(crate) struct Attributes;

impl Observer for Attributes {
    fn hooks(&self) -> Hooks {
        Hooks::SCOPE_ENDED
    }

    fn scope_ended(&self, end: &ScopeEnd<'_>) {
        write_attributes(end);
    }
}

/// The observer that makes each database operation a CLIENT span.
struct DbSpans;

impl Observer for DbSpans {
    fn hooks(&self) -> Hooks {
        Hooks::OPERATION_STARTED
    }

    fn operation_started(&self, start: &OperationEnd<'_>) -> Option<OnEnd> {
        let span = operation_span(start);
        Some(Box::new(move |ok| close_operation_span(span, ok)))
    }
}

/// A figure as its attribute's value: milliseconds with decimals for time,
/// KiB rounded up for bytes, the count otherwise, as in the report event.
fn value(measure: Measure, used: u64) -> Value {
    match measure {
        Measure::Millis => Value::F64(used as f64 / 1e6),
        Measure::KiB | Measure::Count => Value::I64(i64::try_from(measure.rounded(used)).unwrap_or(i64::MAX)),
    }
}

fn int(n: u64) -> Value {
    Value::I64(i64::try_from(n).unwrap_or(i64::MAX))
}

/// Writes one scope's end on the current span.
fn write_attributes(end: &ScopeEnd<'_>) {
    // No subscriber wants anything (none is set): no span can be current.
    if tracing::level_filters::LevelFilter::current() == tracing::level_filters::LevelFilter::OFF {
        return;
    }
    let span = tracing::Span::current();
    if span.is_none() {
        return;
    }
    let f = end.figures();
    span.set_attribute("zen.scope.name", end.name().to_owned());
    span.set_attribute("zen.scope.kind", end.kind().as_str());
    span.set_attribute("zen.mode", end.mode().as_str());
    span.set_attribute("zen.outcome", end.outcome().as_str());
    if let Some(route) = end.route().filter(|r| r.template.starts_with('/')) {
        span.set_attribute("http.route", route.template.to_owned());
    }
    for &budget in Budget::ALL {
        if let Some(used) = f.used(budget) {
            span.set_attribute(budget.attribute(), value(budget.measure(), used));
        }
    }
    for (budget, limit) in end.limits().iter() {
        span.set_attribute(budget.limit_attribute(), int(limit));
    }
    span.set_attribute("zen.n_plus_one", int(end.n_plus_one() as u64));
    // The findings and the budgets exceeded first: a span keeps its first
    // 128 events (the SDK's default), and these matter most.
    // The scope's start by the wall clock, read once for every event.
    let timeline = end.timeline().map(|t| (started(end, &t), t));
    if let Some((start, timeline)) = &timeline {
        finding_events(&span, *start, timeline);
    }
    for v in f.violations(end.limits()) {
        span.add_event(
            "zen.budget_exceeded",
            vec![
                KeyValue::new("zen.budget", v.budget.key()),
                KeyValue::new("zen.limit", int(v.limit)),
                KeyValue::new("zen.used", int(v.used)),
                KeyValue::new("zen.unit", v.budget.unit()),
            ],
        );
    }
    if let Some((start, timeline)) = &timeline {
        operation_events(&span, *start, timeline);
    }
}

/// When the scope started, by the wall clock.
fn started(end: &ScopeEnd<'_>, timeline: &crate::timeline::Timeline) -> std::time::SystemTime {
    std::time::SystemTime::now()
        .checked_sub(end.ended_at().elapsed().saturating_add(timeline.elapsed()))
        .unwrap_or(std::time::UNIX_EPOCH)
}

/// Operation events written per span at most: with the findings and
/// violations, within the 128 events a span keeps by default.
const MAX_OPERATION_EVENTS: usize = 100;

/// One event per operation of the scope's timeline, at its start (the
/// first [`MAX_OPERATION_EVENTS`]).
fn operation_events(span: &tracing::Span, start: std::time::SystemTime, timeline: &crate::timeline::Timeline) {
    for e in timeline.entries().iter().take(MAX_OPERATION_EVENTS) {
        span.add_event_with_timestamp(
            "zen.operation",
            start.checked_add(e.start).unwrap_or(start),
            vec![
                KeyValue::new("zen.backend", observe::system_name(e.backend)),
                KeyValue::new("db.query.text", e.subject.to_string()),
                KeyValue::new("zen.duration_ms", e.duration.as_secs_f64() * 1e3),
                KeyValue::new("zen.rows", int(e.rows)),
                KeyValue::new("zen.outcome", e.settled.as_str()),
            ],
        );
    }
}

/// One event per pattern found in the scope's timeline, at its end.
fn finding_events(span: &tracing::Span, start: std::time::SystemTime, timeline: &crate::timeline::Timeline) {
    let ended = start.checked_add(timeline.elapsed()).unwrap_or(start);
    for d in timeline.duplicates() {
        let attributes =
            vec![KeyValue::new("db.query.text", d.fingerprint.clone()), KeyValue::new("zen.count", int(d.count))];
        span.add_event_with_timestamp("zen.duplicate", ended, attributes);
    }
    for c in timeline.repeated_calls() {
        let attributes = vec![KeyValue::new("db.query.text", c.call.clone()), KeyValue::new("zen.count", int(c.count))];
        span.add_event_with_timestamp("zen.repeated_call", ended, attributes);
    }
}

/// The CLIENT span of one database operation.
fn operation_span(start: &OperationEnd<'_>) -> tracing::Span {
    let (system, operation) = (start.system(), start.operation());
    let name = if operation == "OTHER" { system } else { operation };
    tracing::info_span!(
        target: "zen::db",
        "db",
        otel.kind = "client",
        otel.name = name,
        otel.status_code = tracing::field::Empty,
        db.system.name = system,
        db.operation.name = operation,
        db.query.text = start.fingerprint(),
    )
}

/// Closes an operation's span, marked failed unless `ok`: outside the
/// scope's memory, where it was made.
fn close_operation_span(span: tracing::Span, ok: bool) {
    crate::tracker::alloc::untracked(|| {
        if !ok {
            span.record("otel.status_code", "ERROR");
        }
        drop(span);
    });
}

#[cfg(test)]
mod tests {
    use crate::Budget;

    #[test]
    fn attributes_are_named_after_the_event_fields_and_keys() {
        assert_eq!(Budget::Queries.attribute(), "zen.queries");
        assert_eq!(Budget::DbTime.limit_attribute(), "zen.limit.max_db_ms");
        for &budget in Budget::ALL {
            assert_eq!(budget.attribute(), format!("zen.{}", budget.event_field()));
            assert_eq!(budget.limit_attribute(), format!("zen.limit.{}", budget.key()));
        }
    }
}
