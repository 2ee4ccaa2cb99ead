//! What a budget is: its limits, its mode and the kind of work it covers.

use std::fmt;
use std::time::Duration;

/// The limits of one budget. `Limits::NONE` limits nothing; each setter adds
/// one limit. Built at compile time by `#[zen]`, and by hand for layers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    max_queries: Option<u64>,
    max_db_ms: Option<u64>,
    max_mem_kb: Option<u64>,
    timeout_ms: Option<u64>,
    max_http_calls: Option<u64>,
    max_http_ms: Option<u64>,
}

impl Limits {
    /// No limit at all: every figure is measured and reported, none is checked.
    pub const NONE: Limits = Limits {
        max_queries: None,
        max_db_ms: None,
        max_mem_kb: None,
        timeout_ms: None,
        max_http_calls: None,
        max_http_ms: None,
    };

    /// At most this many database operations (0: none at all).
    #[must_use]
    pub const fn max_queries(mut self, n: u64) -> Self {
        self.max_queries = Some(n);
        self
    }

    /// At most this much time spent in database operations, in milliseconds.
    #[must_use]
    pub const fn max_db_ms(mut self, ms: u64) -> Self {
        self.max_db_ms = Some(ms);
        self
    }

    /// At most this much live heap at the peak, in KiB.
    #[must_use]
    pub const fn max_mem_kb(mut self, kb: u64) -> Self {
        self.max_mem_kb = Some(kb);
        self
    }

    /// At most this much wall-clock time from start to end, in milliseconds.
    #[must_use]
    pub const fn timeout_ms(mut self, ms: u64) -> Self {
        self.timeout_ms = Some(ms);
        self
    }

    /// At most this many calls to external systems (0: none at all).
    #[must_use]
    pub const fn max_http_calls(mut self, n: u64) -> Self {
        self.max_http_calls = Some(n);
        self
    }

    /// At most this much time spent in calls to external systems, in milliseconds.
    #[must_use]
    pub const fn max_http_ms(mut self, ms: u64) -> Self {
        self.max_http_ms = Some(ms);
        self
    }

    /// The limit set for one budget, in that budget's unit.
    #[must_use]
    pub const fn get(&self, budget: Budget) -> Option<u64> {
        match budget {
            Budget::Queries => self.max_queries,
            Budget::DbTime => self.max_db_ms,
            Budget::Memory => self.max_mem_kb,
            Budget::Timeout => self.timeout_ms,
            Budget::HttpCalls => self.max_http_calls,
            Budget::HttpTime => self.max_http_ms,
        }
    }

    pub(crate) fn timeout(&self) -> Option<Duration> {
        self.timeout_ms.map(Duration::from_millis)
    }

    /// Each limit the lower of the two; a limit set on one side only holds.
    #[must_use]
    pub const fn tighter(self, other: Limits) -> Limits {
        const fn min(a: Option<u64>, b: Option<u64>) -> Option<u64> {
            match (a, b) {
                (Some(a), Some(b)) => Some(if a < b { a } else { b }),
                (Some(x), None) | (None, Some(x)) => Some(x),
                (None, None) => None,
            }
        }
        Limits {
            max_queries: min(self.max_queries, other.max_queries),
            max_db_ms: min(self.max_db_ms, other.max_db_ms),
            max_mem_kb: min(self.max_mem_kb, other.max_mem_kb),
            timeout_ms: min(self.timeout_ms, other.timeout_ms),
            max_http_calls: min(self.max_http_calls, other.max_http_calls),
            max_http_ms: min(self.max_http_ms, other.max_http_ms),
        }
    }

    /// `true` when no limit is set.
    #[must_use]
    pub fn is_none(&self) -> bool {
        *self == Limits::NONE
    }
}

/// One of the budgets a scope can hold, named after its `#[zen]` key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Budget {
    /// `max_queries`: database operations, counted.
    Queries,
    /// `max_db_ms`: time in database operations, in ms.
    DbTime,
    /// `max_mem_kb`: peak live heap, in KiB.
    Memory,
    /// `timeout_ms`: wall-clock time, in ms.
    Timeout,
    /// `max_http_calls`: calls to external systems, counted.
    HttpCalls,
    /// `max_http_ms`: time in calls to external systems, in ms.
    HttpTime,
}

impl Budget {
    /// Every budget, in report order.
    pub const ALL: [Budget; 6] =
        [Budget::Queries, Budget::DbTime, Budget::Memory, Budget::Timeout, Budget::HttpCalls, Budget::HttpTime];

    /// The `#[zen]` key that sets this budget.
    #[must_use]
    pub const fn key(self) -> &'static str {
        match self {
            Budget::Queries => "max_queries",
            Budget::DbTime => "max_db_ms",
            Budget::Memory => "max_mem_kb",
            Budget::Timeout => "timeout_ms",
            Budget::HttpCalls => "max_http_calls",
            Budget::HttpTime => "max_http_ms",
        }
    }

    /// The unit of the limit and of what was used.
    #[must_use]
    pub const fn unit(self) -> &'static str {
        match self {
            Budget::Queries => "queries",
            Budget::HttpCalls => "calls",
            Budget::Memory => "KiB",
            Budget::DbTime | Budget::Timeout | Budget::HttpTime => "ms",
        }
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// What happens when a budget is exceeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Never change behaviour: report, and warn on a violation. The default.
    Observe,
    /// Stop the work: wrappers refuse new operations with `BudgetExceeded`,
    /// and a scope that can return the error is cut short.
    Enforce,
    /// Panic at the end of a scope that exceeded a budget, with its report:
    /// for tests and CI, never for production.
    Strict,
}

impl Mode {
    /// The name used by `mode = "..."` and `ZEN_MODE`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Mode::Observe => "observe",
            Mode::Enforce => "enforce",
            Mode::Strict => "strict",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of work a scope covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// An HTTP request handler.
    Handler,
    /// A background job.
    Job,
    /// Anything else: a helper fn, a test, a measured future.
    Other,
}

impl Kind {
    /// Lowercase name, as in reports.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Handler => "handler",
            Kind::Job => "job",
            Kind::Other => "other",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
