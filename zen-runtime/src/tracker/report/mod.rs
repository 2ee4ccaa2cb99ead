//! What a scope used: its [`Report`], its [`Figures`], and what its budgets
//! and exemptions made of them. Where reports go is the observers' business
//! ([`observe`](crate::observe)).

mod exempt;
mod figures;
mod json;
pub(crate) mod whole;

use std::fmt;
use std::time::Duration;

pub use exempt::{Date, Exempted, Exemption, Matches};
pub(crate) use exempt::{Judged, judge};
pub use figures::{Figures, Writes};
// At the crate's root alone.
#[cfg_attr(not(feature = "tower"), allow(unused_imports))]
pub(crate) use json::json_string;
pub(crate) use whole::{Outcome, Report};

use crate::tracker::budget::Budget;

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

/// A budget exceeded by a scope that ended inside another one (a `#[zen]`
/// fn called by a handler, or by the future `testing::measure` runs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NestedViolation {
    /// The name of the scope that exceeded it.
    pub scope: String,
    /// What it exceeded.
    pub violation: Violation,
}

impl fmt::Display for NestedViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.scope, self.violation)
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
    /// Times run, recorded as each ended (a run still going when the
    /// report is built counts in `queries` only).
    pub count: u64,
    /// Times it failed.
    pub failed: u64,
    /// Total time.
    pub total: Duration,
    /// Longest single execution.
    pub max: Duration,
}

impl fmt::Display for NPlusOne {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let site = self.call_site.as_deref().unwrap_or("unknown call site");
        write!(f, "{}x `{}` at {site}", self.count, self.fingerprint)
    }
}

/// A statement issued again and again in one scope: the N+1 pattern, a
/// query per item of a list where one query for the list would do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NPlusOne {
    /// The repeated statement.
    pub fingerprint: String,
    /// The backend that ran it.
    pub backend: &'static str,
    /// Times run, recorded as each ended.
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
    /// Operations run, recorded as each ended.
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
