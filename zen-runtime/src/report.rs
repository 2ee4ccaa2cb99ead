//! What a scope used, and where that reaches: a `tracing` event with target
//! `zen`, every registered sink, and the collectors of `zen_runtime::testing`.

use std::borrow::Cow;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use crate::budget::{Budget, Kind, Limits, Mode};

/// How a scope ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

/// One budget that was exceeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Which budget.
    pub budget: Budget,
    /// Its limit, in the budget's unit.
    pub limit: u64,
    /// What was used or attempted, in the same unit, rounded up.
    pub used: u64,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = {}: used {} {}", self.budget.key(), self.limit, self.used, self.budget.unit())
    }
}

/// Memory figures, present only when `ZenAlloc` is the global allocator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Memory {
    /// Bytes allocated during the scope, frees not subtracted.
    pub allocated: u64,
    /// The highest live heap of the scope, in bytes.
    pub peak: u64,
    /// Bytes allocated by the scope and still held when it ended.
    pub retained: u64,
}

/// The slowest database operation of a scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlowQuery {
    /// The backend that ran it (`"postgres"`, `"sqlite"`, `"redis"`, ...).
    pub backend: &'static str,
    /// Its statement, as the client described it.
    pub statement: String,
    /// How long it took.
    pub elapsed: Duration,
}

/// One statement fingerprint and what its executions took.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatementSummary {
    /// The SQL with values and spacing normalised (never bound values).
    pub fingerprint: String,
    /// The backend that ran it.
    pub backend: &'static str,
    /// Times issued.
    pub count: u64,
    /// Times it failed.
    pub failed: u64,
    /// Total time.
    pub total: Duration,
    /// Longest single execution.
    pub max: Duration,
}

/// A statement issued again and again in one scope: the N+1 pattern, a
/// query per item of a list where one query for the list would do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NPlusOne {
    /// The repeated statement.
    pub fingerprint: String,
    /// The backend that ran it.
    pub backend: &'static str,
    /// Times issued.
    pub count: u64,
    /// Where user code issued it: function, and file and line when debug
    /// information is present.
    pub call_site: Option<String>,
}

/// Figures for one backend (`"PostgreSQL"`, `"SQLite"`, `"redis"`, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendSummary {
    /// The backend.
    pub backend: &'static str,
    /// Operations issued.
    pub queries: u64,
    /// Operations that failed.
    pub failed: u64,
    /// Time spent.
    pub time: Duration,
}

/// External calls to one host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostSummary {
    /// The host called.
    pub host: String,
    /// Calls made.
    pub calls: u64,
    /// Calls that failed (including those cut by a budget).
    pub failed: u64,
    /// Time spent.
    pub time: Duration,
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
    /// The mode the scope ran in.
    pub mode: Mode,
    /// How it ended.
    pub outcome: Outcome,
    /// Wall-clock time from the first poll to the end.
    pub elapsed: Duration,
    /// Database operations issued (refused ones not included).
    pub queries: u64,
    /// Database operations that returned an error.
    pub failed_queries: u64,
    /// Database operations refused by `enforce` before they were issued.
    pub refused_queries: u64,
    /// Time spent in database operations.
    pub db_time: Duration,
    /// Time spent waiting for a pooled connection (not part of `db_time`).
    pub db_wait: Duration,
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
    /// Calls to external systems made.
    pub http_calls: u64,
    /// Calls that returned an error.
    pub failed_http_calls: u64,
    /// Calls refused by `enforce` before they were made.
    pub refused_http_calls: u64,
    /// Time spent in calls to external systems.
    pub http_time: Duration,
    /// External calls per host (at most 32 hosts per scope).
    pub http_hosts: Vec<HostSummary>,
    /// Heap figures; `None` when memory is not measured.
    pub memory: Option<Memory>,
    /// The limits the scope ran under.
    pub limits: Limits,
    /// Every budget exceeded, in `Budget::ALL` order.
    pub violations: Vec<Violation>,
}

impl Report {
    /// `true` when no budget was exceeded.
    #[must_use]
    pub fn within_budget(&self) -> bool {
        self.violations.is_empty()
    }

    /// `true` when a request handler called an external system itself: the
    /// rule is to push such calls to a background job.
    #[must_use]
    pub fn http_in_handler(&self) -> bool {
        self.kind == Kind::Handler && self.http_calls > 0
    }

    /// `true` when a budget was exceeded or an N+1 pattern was seen: what
    /// makes the `tracing` event a WARN.
    #[must_use]
    pub fn needs_attention(&self) -> bool {
        !self.violations.is_empty() || !self.n_plus_one.is_empty()
    }

    /// The violation of one budget, if it was exceeded.
    #[must_use]
    pub fn violation(&self, budget: Budget) -> Option<&Violation> {
        self.violations.iter().find(|v| v.budget == budget)
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let limit = |b: Budget| self.limits.get(b).map_or_else(String::new, |l| format!(" (limit {l})"));
        write!(f, "{} `{}`", self.kind, self.name)?;
        if let Some(handler) = self.handler {
            write!(f, " ({handler})")?;
        }
        if let Some(attempt) = self.attempt {
            write!(f, ", attempt {attempt}")?;
        }
        writeln!(f, ": {} in {} mode", self.outcome, self.mode)?;
        writeln!(f, "  elapsed    {:>10.3} ms{}", ms(self.elapsed), limit(Budget::Timeout))?;
        writeln!(
            f,
            "  queries    {:>10}{} ({} failed, {} refused)",
            self.queries,
            limit(Budget::Queries),
            self.failed_queries,
            self.refused_queries
        )?;
        writeln!(f, "  db time    {:>10.3} ms{}", ms(self.db_time), limit(Budget::DbTime))?;
        if !self.db_wait.is_zero() {
            writeln!(f, "  pool wait  {:>10.3} ms", ms(self.db_wait))?;
        }
        if let Some(q) = &self.slowest_query {
            writeln!(f, "  slowest    {:>10.3} ms {}: {}", ms(q.elapsed), q.backend, q.statement)?;
        }
        for s in self.statements.iter().take(5) {
            writeln!(f, "  {:>8}x   {:>10.3} ms {}: {}", s.count, ms(s.total), s.backend, s.fingerprint)?;
        }
        for n in &self.n_plus_one {
            let site = n.call_site.as_deref().unwrap_or("an unknown call site");
            writeln!(f, "  N+1        {}x `{}` from {site}", n.count, n.fingerprint)?;
        }
        writeln!(f, "  http calls {:>10}{}", self.http_calls, limit(Budget::HttpCalls))?;
        writeln!(f, "  http time  {:>10.3} ms{}", ms(self.http_time), limit(Budget::HttpTime))?;
        match &self.memory {
            Some(m) => writeln!(
                f,
                "  memory     {:>10} KiB peak{}, {} KiB allocated, {} KiB retained",
                m.peak.div_ceil(1024),
                limit(Budget::Memory),
                m.allocated.div_ceil(1024),
                m.retained.div_ceil(1024)
            )?,
            None => writeln!(f, "  memory     not measured (install zen_runtime::alloc::ZenAlloc)")?,
        }
        if self.violations.is_empty() {
            write!(f, "  within budget")
        } else {
            write!(f, "  exceeded:")?;
            for v in &self.violations {
                write!(f, " [{v}]")?;
            }
            Ok(())
        }
    }
}

struct Suspects<'a>(&'a [NPlusOne]);

impl fmt::Display for Suspects<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, n) in self.0.iter().enumerate() {
            let site = n.call_site.as_deref().unwrap_or("unknown call site");
            write!(f, "{}{}x `{}` at {site}", if i == 0 { "" } else { "; " }, n.count, n.fingerprint)?;
        }
        Ok(())
    }
}

struct Violations<'a>(&'a [Violation]);

impl fmt::Display for Violations<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            write!(f, "{}{v}", if i == 0 { "" } else { "; " })?;
        }
        Ok(())
    }
}

/// A receiver of every report, registered with [`add_sink`].
pub type Sink = Arc<dyn Fn(&Report) + Send + Sync>;

/// Identifies a registered sink, to remove it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SinkId(u64);

static SINKS: RwLock<Vec<(SinkId, Sink)>> = RwLock::new(Vec::new());
static SINK_COUNT: AtomicUsize = AtomicUsize::new(0);
static NEXT_SINK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

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

macro_rules! report_event {
    ($level:expr, $r:expr, $message:literal) => {{
        let r = $r;
        let mem = r.memory.as_ref();
        tracing::event!(
            target: "zen",
            $level,
            name = %r.name,
            kind = r.kind.as_str(),
            handler = r.handler,
            attempt = r.attempt,
            mode = r.mode.as_str(),
            outcome = r.outcome.as_str(),
            elapsed_ms = ms(r.elapsed),
            queries = r.queries,
            failed_queries = r.failed_queries,
            refused_queries = r.refused_queries,
            db_ms = ms(r.db_time),
            db_wait_ms = ms(r.db_wait),
            slowest_query = r.slowest_query.as_ref().map(|q| tracing::field::display(&q.statement)),
            slowest_query_ms = r.slowest_query.as_ref().map(|q| ms(q.elapsed)),
            http_calls = r.http_calls,
            http_ms = ms(r.http_time),
            http_in_handler = r.http_in_handler(),
            mem_allocated_bytes = mem.map(|m| m.allocated),
            mem_peak_bytes = mem.map(|m| m.peak),
            mem_retained_bytes = mem.map(|m| m.retained),
            violations = %Violations(&r.violations),
            n_plus_one = %Suspects(&r.n_plus_one),
            $message
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
        report_event!(tracing::Level::WARN, report, "zen budget exceeded");
    } else if !report.n_plus_one.is_empty() {
        report_event!(tracing::Level::WARN, report, "zen N+1 queries suspected");
    } else {
        report_event!(tracing::Level::DEBUG, report, "zen scope ended within budget");
    }
    if SINK_COUNT.load(Ordering::Acquire) == 0 {
        return;
    }
    let sinks: Vec<Sink> =
        SINKS.read().unwrap_or_else(PoisonError::into_inner).iter().map(|(_, s)| Arc::clone(s)).collect();
    for sink in sinks {
        if catch_unwind(AssertUnwindSafe(|| sink(report))).is_err() {
            tracing::error!(target: "zen", name = %report.name, "a zen report sink panicked; the report was not delivered to it");
        }
    }
}
