//! What leaves a process about every scope and operation, whether or not a
//! report is built: the `metrics` facade (feature `metrics`) and the current
//! `tracing` span's OpenTelemetry attributes (feature `opentelemetry`), and
//! every live dashboard (feature `dashboard`), the budget lock (feature
//! `lock`). With none of the features,
//! nothing here is compiled in.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::budget::{Kind, Limits, Mode};
use crate::report::{Figures, Outcome, Report};
use crate::stats::{DbStats, HttpStats};

/// One scope's end, as the exporters see it: no SQL, no values, no ids.
pub(crate) struct ScopeEnd<'a> {
    pub(crate) name: &'a str,
    #[cfg_attr(not(any(feature = "metrics", feature = "opentelemetry", feature = "dashboard")), allow(dead_code))]
    pub(crate) kind: Kind,
    #[cfg_attr(not(any(feature = "metrics", feature = "opentelemetry")), allow(dead_code))]
    pub(crate) mode: Mode,
    /// `ok` only when no budget of the scope's own was exceeded.
    pub(crate) outcome: Outcome,
    #[cfg_attr(not(feature = "dashboard"), allow(dead_code))]
    pub(crate) ended_at: Instant,
    pub(crate) figures: &'a Figures,
    #[cfg_attr(not(any(feature = "metrics", feature = "opentelemetry", feature = "dashboard")), allow(dead_code))]
    pub(crate) limits: &'a Limits,
    /// Its statements, when it ran any.
    #[cfg_attr(not(any(feature = "dashboard", feature = "lock")), allow(dead_code))]
    pub(crate) db: Option<&'a Mutex<DbStats>>,
    /// Its external calls per host, when it made any.
    #[cfg_attr(not(feature = "lock"), allow(dead_code))]
    pub(crate) hosts: Option<&'a Mutex<HttpStats>>,
    /// Its report, when one was built: a budget exceeded, a cut, a panic,
    /// an N+1 suspect, or someone listening.
    pub(crate) report: Option<&'a Report>,
}

impl ScopeEnd<'_> {
    /// N+1 suspects: statements run past the scope's threshold (a report is
    /// always built when there is one).
    #[cfg(any(feature = "metrics", feature = "opentelemetry"))]
    pub(crate) fn n_plus_one(&self) -> usize {
        self.report.map_or(0, |r| r.n_plus_one.len())
    }
}

/// Hands a scope's end to every exporter compiled in. Their allocations
/// (first registrations, histogram storage) are no scope's.
#[inline]
pub(crate) fn scope_ended(end: &ScopeEnd<'_>) {
    crate::alloc::untracked(|| {
        #[cfg(feature = "metrics")]
        crate::metrics::scope_ended(end);
        #[cfg(feature = "opentelemetry")]
        crate::otel::scope_ended(end);
        #[cfg(feature = "dashboard")]
        crate::dashboard::scope_ended(end);
        #[cfg(feature = "lock")]
        crate::lock::scope_ended(end);
    });
}

/// Hands one finished database operation to every exporter compiled in.
#[inline]
pub(crate) fn operation_ended(backend: &'static str, operation: &'static str, elapsed: Duration) {
    crate::alloc::untracked(|| {
        #[cfg(feature = "metrics")]
        crate::metrics::operation_ended(backend, operation, elapsed);
    });
    #[cfg(not(feature = "metrics"))]
    let _ = (backend, operation, elapsed);
}

/// `postgresql`, `sqlite`, `mysql`, `redis`: the OpenTelemetry semantic
/// convention's `db.system.name` of a backend as zen names it.
#[cfg(any(feature = "metrics", feature = "opentelemetry"))]
pub(crate) fn system_name(backend: &'static str) -> &'static str {
    match backend {
        "PostgreSQL" => "postgresql",
        "SQLite" => "sqlite",
        "MySQL" => "mysql",
        _ => backend,
    }
}

#[cfg(all(test, any(feature = "metrics", feature = "opentelemetry")))]
mod tests {
    use super::system_name;

    #[test]
    fn systems_are_named_as_the_convention_says() {
        assert_eq!(system_name("PostgreSQL"), "postgresql");
        assert_eq!(system_name("redis"), "redis");
    }
}
