//! The figures of a scope, and what each budget measures among them.
//!
//! One meaning per figure:
//!
//! - `queries`: the database operations the scope **asked for**, each
//!   counted once. That is what `max_queries` limits, and the number the
//!   refusal's error, `Server-Timing`, the problem document, the report and
//!   the event all show.
//! - `refused_queries`: those of them `enforce` stopped before they left;
//!   the rest were **issued**, whatever their result (`failed_queries` of
//!   them failed). `BEGIN`, `COMMIT`, `ROLLBACK` and savepoints sent by
//!   `begin()`, `commit()` and `rollback()` are operations like any other.
//!   The `ROLLBACK` sqlx sends for a transaction dropped without either is
//!   not the scope's: sqlx's pool sends it when the connection is next used
//!   or returned, untimed and unrefusable, after the scope let go of it.
//! - External calls count the same way: `http_calls` asked for, of which
//!   `refused_http_calls` refused and `failed_http_calls` failed.

use std::time::Duration;

use super::{Memory, Violation};
use crate::budget::{Budget, Limits};

/// Everything a scope used, in base units.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Figures {
    /// Wall-clock time from the start to the end (to the response's
    /// headers, for a request under the layer).
    pub elapsed: Duration,
    /// Database operations asked for: issued (whatever their result) or refused.
    pub queries: u64,
    /// Issued database operations that returned an error.
    pub failed_queries: u64,
    /// Database operations refused by `enforce` before they were issued.
    pub refused_queries: u64,
    /// Time spent in database operations, from issue until their result was
    /// read or dropped.
    pub db_time: Duration,
    /// Time spent waiting for a pooled connection (not part of `db_time`).
    pub db_wait: Duration,
    /// Rows the scope's queries returned to it.
    pub rows: u64,
    /// Calls to external systems asked for: made or refused.
    pub http_calls: u64,
    /// Calls that failed (an error, a 5xx, a timeout, a body cut short).
    pub failed_http_calls: u64,
    /// Calls refused by `enforce` before they were made.
    pub refused_http_calls: u64,
    /// Time spent in external calls, from the request until the response
    /// body was read or dropped.
    pub http_time: Duration,
    /// Heap figures; `None` when memory is not measured (no `ZenAlloc`).
    pub memory: Option<Memory>,
    /// The longest single poll of the scope's future: how long it held a
    /// thread without yielding.
    pub longest_poll: Duration,
    /// Polls longer than `max_poll_ms`.
    pub slow_polls: u64,
    /// Bytes of the response body, for a request under the layer; `None`
    /// elsewhere, and while a streamed body is still being sent.
    pub response_bytes: Option<u64>,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Figures {
    /// What `budget` measures: a count, nanoseconds or bytes; `None` when it
    /// is not measured. The one place a budget meets its measurement.
    #[must_use]
    pub fn used(&self, budget: Budget) -> Option<u64> {
        match budget {
            Budget::Queries => Some(self.queries),
            Budget::DbTime => Some(nanos(self.db_time)),
            Budget::Memory => self.memory.map(|m| m.peak),
            Budget::Timeout => Some(nanos(self.elapsed)),
            Budget::HttpCalls => Some(self.http_calls),
            Budget::HttpTime => Some(nanos(self.http_time)),
            Budget::PollTime => Some(nanos(self.longest_poll)),
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
        let mut violations = Vec::new();
        for &budget in Budget::ALL {
            let (Some(limit), Some(used)) = (limits.get(budget), self.used(budget)) else { continue };
            if budget.measure().over(used, limit) {
                violations.push(Violation { budget, limit, used: budget.measure().rounded(used) });
            }
        }
        violations
    }
}
