//! What a scope used: its [`Report`], its [`Figures`], and what its budgets
//! and exemptions made of them. Where reports go is the observers' business
//! ([`observe`](crate::observe)).
//!
//! Exactly one report per scope, when it completes, is cut, panics
//! (`panicked`) or is dropped (`cancelled`). It carries the name, kind,
//! mode, outcome (`ok`, `exceeded`, `cancelled`, `panicked`), the response
//! status under the layer, its figures (`report.figures`), the statements by
//! fingerprint, the slowest statement, N+1 suspects with their call site,
//! figures per backend and per host, each [`Violation`] (the budget, its
//! limit, what was used), and the violations of scopes that ended inside it.
//! `Display` writes it for people, [`Report::to_json`](crate::Report::to_json)
//! as one line of JSON.
//!
//! Reports go to:
//!
//! - the `zen` event (below), a `tracing` event of target `zen`;
//! - every sink registered with [`sinks::add_sink`](crate::sinks::add_sink),
//!   for exporters, and [`sinks::JsonLines`](crate::sinks::JsonLines);
//! - in tests, [`testing::measure`](crate::testing::measure), which returns
//!   `(output, Report)` for everything a future did, and
//!   [`testing::collect`](crate::testing::collect), the reports of every
//!   scope that ended inside it (their own scope's report goes to the test
//!   alone).
//!
//! # One meaning per figure
//!
//! - `queries` counts the database operations the scope **asked for**, each
//!   once. That one number is what `max_queries` limits and what the
//!   refusal's error, `Server-Timing`, the `503` problem document, the
//!   report and the event all show.
//! - `refused_queries` of them `enforce` stopped before they left; the rest
//!   were **issued** (sent to the server, whatever their result;
//!   `failed_queries` of them failed).
//! - `BEGIN`, `COMMIT`, `ROLLBACK` and savepoints sent by `begin()`,
//!   `commit()` and `rollback()` count like any query. The `ROLLBACK` that
//!   sqlx sends for a transaction dropped without either is not the scope's
//!   (sqlx's pool sends it when the connection is next used or returned,
//!   untimed and unrefusable, after the scope let go of it): call
//!   `tx.rollback()` to have it counted.
//! - External calls count the same way: `http_calls` asked for, of which
//!   `refused_http_calls` were refused and `failed_http_calls` failed.
//! - Time is measured in nanoseconds and compared exactly (200.4 ms breaks
//!   200 ms); it is shown rounded up.
//! - `memory` is absent, not zero, without
//!   [`ZenAlloc`](crate::alloc::ZenAlloc).
//!
//! # Statements and N+1 suspects
//!
//! Statements are listed by fingerprint ([`fingerprint`](crate::fingerprint):
//! no value ever reaches a report) with count, failures, total and longest
//! time, at most 64 distinct per scope (the rest are counted in
//! `untracked_statements`); external calls per host, at most 32.
//!
//! A fingerprint repeated at least `n_plus_one` times in one scope is an
//! **N+1 suspect**, reported with the function, file and line in your code
//! that issued it; a suspect makes the event a WARN even within budget. The
//! call site comes from the stack's return addresses, taken the first time
//! a scope shows the pattern (then cached per scope name and statement) and
//! named when the report is built, so its cost is not counted in the
//! scope's time. On Linux zen reads only the compilation unit that holds
//! each address from the program's DWARF, and lets go of it after: the
//! first call site of a process costs about half a MiB for good (6 MiB at
//! the peak), where a symboliser that indexes the whole program kept
//! 141 MiB (BENCHMARKS.md). Paths never name the build machine:
//! `src/handlers.rs:42` relative to the workspace, `tokio@1.54.1/src/...`
//! for a dependency.
//!
//! # The `zen` event
//!
//! Every report is a `tracing` event of target `zen` (but that of the scope
//! `testing::measure` or `testing::collect` opens around the code it
//! measures, which goes to the test alone): a WARN when a budget was exceeded
//! (`zen budget exceeded`) or an N+1 pattern seen (`zen N+1 queries
//! suspected`), a DEBUG otherwise (`zen scope ended within budget`), built
//! only when a subscriber wants `zen` at that level.
//! `RUST_LOG=info,zen=debug` shows every scope and keeps your own filter.
//! Text fields are strings, so each parses whole in logfmt and in
//! `tracing-subscriber`'s JSON output (tested with both); a field with
//! nothing to say is absent.
//!
//! | field | what |
//! |---|---|
//! | `name`, `kind`, `mode`, `outcome` | the scope's name, kind, mode, and how it ended |
//! | `handler` | under the layer or a job runner: the `#[zen]` fn whose limits applied |
//! | `attempt` | a job's attempt, 1 for the first |
//! | `status` | under the layer: the response's status |
//! | `queries`, `db_ms`, `mem_peak_kib`, `elapsed_ms`, `http_calls`, `http_ms`, `longest_poll_ms`, `rows`, `response_kib` | what was used of each budget ([`Budget::event_field`](crate::Budget::event_field)): time in ms with decimals, sizes in KiB rounded up |
//! | `failed_queries`, `refused_queries` | of `queries`: failed, and refused by `enforce` |
//! | `db_wait_ms` | time waiting for a pooled connection, apart from `db_ms` |
//! | `slowest_query`, `slowest_query_ms` | the slowest statement's fingerprint, and its time |
//! | `failed_http_calls`, `refused_http_calls` | of `http_calls`: failed, and refused |
//! | `http_in_handler` | a handler called an external system itself ([`Report::http_in_handler`](crate::Report::http_in_handler)) |
//! | `mem_allocated_bytes`, `mem_retained_bytes` | with `ZenAlloc`: bytes allocated, and still held at the end |
//! | `slow_polls` | polls longer than `max_poll_ms` |
//! | `writes` | when the outcome is not `ok`: `none`, `committed` or `unknown` ([`Writes`]) |
//! | `violations`, `n_plus_one`, `nested_violations` | each list as text, items joined by `; ` |
//! | `repeated` | while the scope recorded its timeline: its duplicates, then its repeated calls, as text joined by `; ` |

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

/// A statement run more than once in one scope with the same values:
/// each run after the first fetched what the scope already had. Found
/// while the scope records its timeline ([`timeline`](crate::timeline)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Duplicate {
    /// The statement: its fingerprint, never its values (which are
    /// compared by hash).
    pub fingerprint: String,
    /// The backend that ran it.
    pub backend: &'static str,
    /// Times it ran with the same values.
    pub count: u64,
    /// Where user code ran it again.
    pub call_site: Option<String>,
}

impl fmt::Display for Duplicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let site = self.call_site.as_deref().unwrap_or("unknown call site");
        write!(f, "{}x `{}` with the same values at {site}", self.count, self.fingerprint)
    }
}

/// An external call repeated in one scope: the N+1 pattern of calls, one
/// per item where one call for the list would do. Found while the scope
/// records its timeline ([`timeline`](crate::timeline)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepeatedCall {
    /// The call's method, host and path template: `GET api.test/users/{}`.
    pub call: String,
    /// Times it ran.
    pub count: u64,
    /// Where user code made it, at the threshold.
    pub call_site: Option<String>,
}

impl fmt::Display for RepeatedCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let site = self.call_site.as_deref().unwrap_or("unknown call site");
        write!(f, "{}x `{}` at {site}", self.count, self.call)
    }
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
