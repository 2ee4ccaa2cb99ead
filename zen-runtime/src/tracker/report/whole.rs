//! A scope's report, and how the scope ended: the two types of this module
//! a user writes, re-exported at the crate's root.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::{
    BackendSummary, Duplicate, Exemption, Figures, HostSummary, NPlusOne, NestedViolation, RepeatedCall, SlowQuery,
    StatementSummary, Violation,
};
use crate::tracker::budget::{Budget, Kind, Limits, Measure, Mode};
use crate::tracker::timeline::Timeline;

/// How a scope ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Outcome {
    /// It completed within every budget.
    Ok,
    /// It completed, or was cut, with at least one budget exceeded.
    Exceeded,
    /// It was dropped before completion (client gone, `select!` lost, cut by
    /// an enclosing scope).
    Cancelled,
    /// It panicked.
    Panicked,
}

impl Outcome {
    /// Every outcome, each at the place its discriminant says.
    pub const ALL: [Outcome; 4] = [Outcome::Ok, Outcome::Exceeded, Outcome::Cancelled, Outcome::Panicked];

    /// Lowercase name, as in the `tracing` event.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Exceeded => "exceeded",
            Outcome::Cancelled => "cancelled",
            Outcome::Panicked => "panicked",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything one scope used, against its limits. Exactly one per scope.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Report {
    /// The scope's name: the fn's path, `name = "..."`, or the route.
    pub name: Cow<'static, str>,
    /// Handler, job or other.
    pub kind: Kind,
    /// For a request scope opened by the layer: the `#[zen]` handler that
    /// served it, whose limits were applied.
    pub handler: Option<&'static str>,
    /// For a job: which attempt this was, 1 for the first.
    pub attempt: Option<u32>,
    /// For a request whose caller said how long it would still wait
    /// (`grpc-timeout`, or the header [`ZenLayer::deadline`] names): the
    /// time it had left on arrival. The request's `timeout_ms` limit is at
    /// most this, counted from arrival (see [`deadline`]).
    ///
    /// [`ZenLayer::deadline`]: crate::layer::ZenLayer::deadline
    /// [`deadline`]: crate::deadline
    pub caller_time_left: Option<Duration>,
    /// The mode the scope ran in.
    pub mode: Mode,
    /// How it ended.
    pub outcome: Outcome,
    /// For a request under the layer: the status of its response (the
    /// layer's own 503 or 500 when it answered instead of the handler; for
    /// a gRPC call, 200, whose `grpc-status` says the rest).
    pub status: Option<u16>,
    /// What it used: queries, time, calls, memory, rows, polls, bytes.
    pub figures: Figures,
    /// The slowest database operation.
    pub slowest_query: Option<SlowQuery>,
    /// Statements grouped by fingerprint, most total time first.
    pub statements: Vec<StatementSummary>,
    /// Statements not grouped because the scope already had the maximum
    /// number of distinct fingerprints (they still count everywhere else).
    pub untracked_statements: u64,
    /// Statements repeated at least the N+1 threshold of times.
    pub n_plus_one: Vec<NPlusOne>,
    /// Database figures per backend.
    pub backends: Vec<BackendSummary>,
    /// External calls per host (at most 32 hosts per scope).
    pub http_hosts: Vec<HostSummary>,
    /// The limits the scope ran under.
    pub limits: Limits,
    /// Every budget it exceeded, in `Budget::ALL` order.
    pub violations: Vec<Violation>,
    /// Budgets exceeded by scopes that ended inside this one (at most 16).
    pub nested_violations: Vec<NestedViolation>,
    /// Nested violations past the first 16, counted.
    pub untracked_nested: u64,
    /// Exemptions that accepted an N+1 suspect or a violation of this
    /// scope: what they accepted is not in `n_plus_one` or `violations`.
    pub exemptions: Vec<Exemption>,
    /// Exemptions past their `until` date that would have applied: what
    /// they covered is reported again, and `strict` fails.
    pub expired_exemptions: Vec<Exemption>,
    /// Its timeline, when it recorded one (while an observer asks for
    /// timelines: a dashboard, the budget lock while it is on): every
    /// operation in order, and the duplicates and repeated calls found in
    /// them ([`Report::duplicates`], [`Report::repeated_calls`]).
    pub timeline: Option<Arc<Timeline>>,
}

impl Report {
    /// `true` when neither this scope nor any scope that ended inside it
    /// exceeded a budget. (Its own budgets alone: `violations.is_empty()`.)
    #[must_use]
    pub fn within_budget(&self) -> bool {
        self.violations.is_empty() && self.nested_violations.is_empty() && self.untracked_nested == 0
    }

    /// `true` when a request handler called an external system itself: the
    /// rule is to push such calls to a background job.
    #[must_use]
    pub fn http_in_handler(&self) -> bool {
        self.kind == Kind::Handler && self.figures.http_calls > 0
    }

    /// `true` when a budget was exceeded or an N+1 pattern was seen: what
    /// makes the `tracing` event a WARN.
    #[must_use]
    pub fn needs_attention(&self) -> bool {
        !self.violations.is_empty() || !self.n_plus_one.is_empty()
    }

    /// Statements run more than once with the same values, found in the
    /// scope's timeline; none when it recorded none.
    #[must_use]
    pub fn duplicates(&self) -> &[Duplicate] {
        self.timeline.as_deref().map_or(&[], Timeline::duplicates)
    }

    /// External calls of one template run at least the N+1 threshold of
    /// times, found in the scope's timeline; none when it recorded none.
    #[must_use]
    pub fn repeated_calls(&self) -> &[RepeatedCall] {
        self.timeline.as_deref().map_or(&[], Timeline::repeated_calls)
    }

    /// The violation of one budget, if it was exceeded.
    #[must_use]
    pub fn violation(&self, budget: Budget) -> Option<&Violation> {
        self.violations.iter().find(|v| v.budget == budget)
    }

    /// What `budget` measured, in its base unit: see [`Figures::used`].
    #[must_use]
    pub fn used_base(&self, budget: Budget) -> Option<u64> {
        self.figures.used(budget)
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// What the report says after a budget's own line.
fn details(f: &mut fmt::Formatter<'_>, r: &Report, budget: Budget) -> fmt::Result {
    let x = &r.figures;
    match budget {
        Budget::Queries if x.failed_queries + x.refused_queries > 0 => {
            write!(f, ": {} refused, {} failed", x.refused_queries, x.failed_queries)
        }
        Budget::DbTime => {
            if x.wait_ns > 0 {
                write!(f, "\n  pool wait        {:>10.3} ms", ms(x.db_wait()))?;
            }
            if let Some(q) = &r.slowest_query {
                write!(f, "\n  slowest          {:>10.3} ms {}: {}", ms(q.elapsed), q.backend, q.statement)?;
            }
            for s in r.statements.iter().take(5) {
                write!(f, "\n  {:>8}x         {:>10.3} ms {}: {}", s.count, ms(s.total), s.backend, s.fingerprint)?;
            }
            for n in &r.n_plus_one {
                let site = n.call_site.as_deref().unwrap_or("an unknown call site");
                write!(f, "\n  N+1              {}x `{}` from {site}", n.count, n.fingerprint)?;
            }
            for d in r.duplicates() {
                let site = d.call_site.as_deref().unwrap_or("an unknown call site");
                write!(f, "\n  duplicate        {}x `{}` from {site}", d.count, d.fingerprint)?;
            }
            Ok(())
        }
        Budget::Memory => match &x.memory {
            Some(m) => write!(
                f,
                " peak, {} KiB allocated, {} KiB retained",
                m.allocated.div_ceil(1024),
                m.retained.div_ceil(1024)
            ),
            None => Ok(()),
        },
        Budget::HttpCalls => {
            if x.failed_http_calls + x.refused_http_calls > 0 {
                write!(f, ": {} refused, {} failed", x.refused_http_calls, x.failed_http_calls)?;
            }
            for c in r.repeated_calls() {
                let site = c.call_site.as_deref().unwrap_or("an unknown call site");
                write!(f, "\n  repeated call    {}x `{}` from {site}", c.count, c.call)?;
            }
            Ok(())
        }
        Budget::PollTime if x.slow_polls > 0 => write!(f, ", {} polls over the limit", x.slow_polls),
        _ => Ok(()),
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} `{}`", self.kind, self.name)?;
        if let Some(handler) = self.handler {
            write!(f, " ({handler})")?;
        }
        if let Some(attempt) = self.attempt {
            write!(f, ", attempt {attempt}")?;
        }
        if let Some(left) = self.caller_time_left {
            write!(f, ", its caller would wait {:.1} ms", left.as_secs_f64() * 1000.0)?;
        }
        write!(f, ": {} in {} mode", self.outcome, self.mode)?;
        if let Some(status) = self.status {
            write!(f, ", status {status}")?;
        }
        for &budget in Budget::ALL {
            let limit = self.limits.get(budget);
            let label = budget.event_field();
            match (self.figures.used(budget), budget.measure()) {
                (None, _) if budget == Budget::Memory => {
                    write!(f, "\n  {label:<16} not measured (install zen_runtime::alloc::ZenAlloc)")?;
                    continue;
                }
                (None, _) => continue,
                (Some(ns), Measure::Millis) => write!(f, "\n  {label:<16} {:>10.3} ms", ns as f64 / 1e6)?,
                (Some(used), measure) => write!(f, "\n  {label:<16} {:>10} {}", measure.rounded(used), budget.unit())?,
            }
            if let Some(limit) = limit {
                write!(f, " (limit {limit})")?;
            }
            details(f, self, budget)?;
        }
        if self.outcome != Outcome::Ok {
            write!(f, "\n  writes           {}", self.figures.writes)?;
        }
        if self.violations.is_empty() {
            write!(f, "\n  within budget")?;
        } else {
            write!(f, "\n  exceeded:")?;
            for v in &self.violations {
                write!(f, " [{v}]")?;
            }
        }
        for n in &self.nested_violations {
            write!(f, "\n  exceeded inside: {n}")?;
        }
        for e in &self.exemptions {
            write!(f, "\n  exempted: {e}")?;
        }
        for e in &self.expired_exemptions {
            write!(f, "\n  exemption expired: {e}")?;
        }
        Ok(())
    }
}
