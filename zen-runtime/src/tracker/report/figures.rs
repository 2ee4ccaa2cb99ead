//! The figures of a scope, and what each budget measures among them. What
//! each figure means, once for every place that shows it, is in the docs of
//! the `report` module ("One meaning per figure").

use std::time::Duration;

use super::{Memory, Violation};
use crate::tracker::budget::{Budget, Limits};

/// Everything a scope used. Kept in base units (nanoseconds, bytes, counts),
/// read through the methods below.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Figures {
    pub(crate) elapsed_ns: u64,
    pub(crate) queries: u64,
    pub(crate) failed_queries: u64,
    pub(crate) refused_queries: u64,
    pub(crate) db_ns: u64,
    pub(crate) wait_ns: u64,
    pub(crate) rows: u64,
    pub(crate) http_calls: u64,
    pub(crate) failed_http_calls: u64,
    pub(crate) refused_http_calls: u64,
    pub(crate) http_ns: u64,
    pub(crate) memory: Option<Memory>,
    pub(crate) longest_poll_ns: u64,
    pub(crate) slow_polls: u64,
    pub(crate) response_bytes: Option<u64>,
    pub(crate) writes: Writes,
}

/// What a scope's writes did, as far as zen saw them end: whether a client
/// may retry a request that was refused. Writes are the database
/// statements that may change what it keeps (outside a transaction; inside
/// one, its `COMMIT`) and external calls other than `GET`, `HEAD`,
/// `OPTIONS` and `TRACE` (see [`instrument`](crate::instrument#writes)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Writes {
    /// Nothing was committed: no write took effect, and none was cut
    /// waiting for its answer. Retrying does the work once.
    #[default]
    None,
    /// At least one write took effect (an autocommit write or a `COMMIT`
    /// answered, a call answered with a success or redirect). Retry only a
    /// request that is idempotent.
    Committed,
    /// A write was cut, or lost its connection, before its answer, and none
    /// is known to have taken effect: it may have. Check before retrying.
    Unknown,
}

impl Writes {
    /// Lowercase name, as in the problem document: `none`, `committed`,
    /// `unknown`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Writes::None => "none",
            Writes::Committed => "committed",
            Writes::Unknown => "unknown",
        }
    }

    pub(crate) const fn bit(self) -> u8 {
        match self {
            Writes::None => 0,
            Writes::Committed => 1,
            Writes::Unknown => 2,
        }
    }

    /// A write known to have taken effect says more than one in doubt.
    pub(crate) const fn of_bits(bits: u8) -> Writes {
        if bits & 1 != 0 {
            Writes::Committed
        } else if bits & 2 != 0 {
            Writes::Unknown
        } else {
            Writes::None
        }
    }
}

impl std::fmt::Display for Writes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Figures {
    /// Wall-clock time from the start to the end (to the response's
    /// headers, for a request under the layer).
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.elapsed_ns)
    }

    /// Database operations asked for: issued (whatever their result) or refused.
    #[must_use]
    pub fn queries(&self) -> u64 {
        self.queries
    }

    /// Issued database operations that returned an error.
    #[must_use]
    pub fn failed_queries(&self) -> u64 {
        self.failed_queries
    }

    /// Database operations refused by `enforce` before they were issued.
    #[must_use]
    pub fn refused_queries(&self) -> u64 {
        self.refused_queries
    }

    /// Time spent in database operations, from issue until their result was
    /// read or dropped.
    #[must_use]
    pub fn db_time(&self) -> Duration {
        Duration::from_nanos(self.db_ns)
    }

    /// Time spent waiting for a pooled connection (not part of `db_time`).
    #[must_use]
    pub fn db_wait(&self) -> Duration {
        Duration::from_nanos(self.wait_ns)
    }

    /// Rows the scope's queries returned to it.
    #[must_use]
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Calls to external systems asked for: made or refused.
    #[must_use]
    pub fn http_calls(&self) -> u64 {
        self.http_calls
    }

    /// Calls that failed (an error, a 5xx, a timeout, a body cut short).
    #[must_use]
    pub fn failed_http_calls(&self) -> u64 {
        self.failed_http_calls
    }

    /// Calls refused by `enforce` before they were made.
    #[must_use]
    pub fn refused_http_calls(&self) -> u64 {
        self.refused_http_calls
    }

    /// Time spent in external calls, from the request until the response
    /// body was read or dropped.
    #[must_use]
    pub fn http_time(&self) -> Duration {
        Duration::from_nanos(self.http_ns)
    }

    /// Heap figures; `None` when memory is not measured (no `ZenAlloc`).
    #[must_use]
    pub fn memory(&self) -> Option<Memory> {
        self.memory
    }

    /// The longest single poll of the scope's future: how long it held a
    /// thread without yielding.
    #[must_use]
    pub fn longest_poll(&self) -> Duration {
        Duration::from_nanos(self.longest_poll_ns)
    }

    /// Polls longer than `max_poll_ms`.
    #[must_use]
    pub fn slow_polls(&self) -> u64 {
        self.slow_polls
    }

    /// Bytes of the response body, for a request under the layer; `None`
    /// elsewhere, and while a streamed body is still being sent.
    #[must_use]
    pub fn response_bytes(&self) -> Option<u64> {
        self.response_bytes
    }

    /// What the scope's writes did.
    #[must_use]
    pub fn writes(&self) -> Writes {
        self.writes
    }

    /// What `budget` measures: a count, nanoseconds or bytes; `None` when it
    /// is not measured. The one place a budget meets its measurement.
    #[must_use]
    pub fn used(&self, budget: Budget) -> Option<u64> {
        match budget {
            Budget::Queries => Some(self.queries),
            Budget::DbTime => Some(self.db_ns),
            Budget::Memory => self.memory.map(|m| m.peak),
            Budget::Timeout => Some(self.elapsed_ns),
            Budget::HttpCalls => Some(self.http_calls),
            Budget::HttpTime => Some(self.http_ns),
            Budget::PollTime => Some(self.longest_poll_ns),
            Budget::Rows => Some(self.rows),
            Budget::ResponseSize => self.response_bytes,
        }
    }

    /// What `budget` measures, in its unit, rounded up.
    #[must_use]
    pub fn used_in_unit(&self, budget: Budget) -> Option<u64> {
        self.used(budget).map(|u| budget.measure().rounded(u))
    }

    /// Every budget of `limits` these figures exceed, in [`Budget::ALL`]
    /// order. Time compares exact nanoseconds: 200.4 ms breaks 200 ms.
    #[must_use]
    pub fn violations(&self, limits: &Limits) -> Vec<Violation> {
        self.over(limits).map(|(budget, limit, used)| Violation { budget, limit, used }).collect()
    }

    /// `true` when these figures exceed any of `limits`.
    #[must_use]
    pub fn exceed(&self, limits: &Limits) -> bool {
        self.over(limits).next().is_some()
    }

    /// The limits exceeded: budget, limit, and what was used in its unit.
    fn over<'a>(&'a self, limits: &'a Limits) -> impl Iterator<Item = (Budget, u64, u64)> + 'a {
        limits.iter().filter_map(|(budget, limit)| {
            let used = self.used(budget)?;
            budget.measure().over(used, limit).then(|| (budget, limit, budget.measure().rounded(used)))
        })
    }
}
