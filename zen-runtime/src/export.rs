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
pub(crate) fn operation_ended(backend: &'static str, fingerprint: &str, elapsed: Duration) {
    crate::alloc::untracked(|| {
        #[cfg(feature = "metrics")]
        crate::metrics::operation_ended(backend, fingerprint, elapsed);
    });
    #[cfg(not(feature = "metrics"))]
    let _ = (backend, fingerprint, elapsed);
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

/// The operation of a statement from a fixed set (`SELECT`, `INSERT`, ...,
/// or a Redis command), else `OTHER`: never text of the statement's own.
#[cfg(any(feature = "metrics", feature = "opentelemetry"))]
pub(crate) fn operation_name(fingerprint: &str) -> &'static str {
    // The most frequent first: a statement is mostly found in a compare or two.
    const KNOWN: [&str; 44] = [
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
        "WITH",
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "SAVEPOINT",
        "RELEASE",
        "GET",
        "SET",
        "DEL",
        "MGET",
        "MSET",
        "HGET",
        "HSET",
        "HGETALL",
        "EXPIRE",
        "INCR",
        "DECR",
        "LPUSH",
        "RPUSH",
        "LPOP",
        "RPOP",
        "BLPOP",
        "BRPOP",
        "SADD",
        "SREM",
        "ZADD",
        "ZRANGE",
        "PIPELINE",
        "PUBLISH",
        "EVAL",
        "EVALSHA",
        "CREATE",
        "ALTER",
        "DROP",
        "TRUNCATE",
        "COPY",
        "CALL",
        "SHOW",
        "EXPLAIN",
        "VALUES",
    ];
    // Each word as a number: compared in one instruction, not by `memcmp`.
    const fn key(word: &[u8]) -> u128 {
        let mut key = 0u128;
        let mut i = 0;
        while i < word.len() {
            key = key << 8 | word[i] as u128;
            i += 1;
        }
        key
    }
    const KEYS: [u128; 44] = {
        let mut keys = [0; 44];
        let mut i = 0;
        while i < KNOWN.len() {
            keys[i] = key(KNOWN[i].as_bytes());
            i += 1;
        }
        keys
    };
    // The first word, upper-cased on the stack; longer than any known one
    // is `OTHER` at once.
    let bytes = fingerprint.as_bytes();
    let start = bytes.iter().position(u8::is_ascii_alphabetic).unwrap_or(bytes.len());
    let mut word = [0u8; 9];
    let mut len = 0;
    for &b in &bytes[start..] {
        if !b.is_ascii_alphabetic() {
            break;
        }
        if len == word.len() {
            return "OTHER";
        }
        word[len] = b.to_ascii_uppercase();
        len += 1;
    }
    let key = key(&word[..len]);
    KEYS.iter().position(|k| *k == key).map_or("OTHER", |i| KNOWN[i])
}

#[cfg(all(test, any(feature = "metrics", feature = "opentelemetry")))]
mod tests {
    use super::{operation_name, system_name};

    #[test]
    fn operations_come_from_a_fixed_set() {
        assert_eq!(operation_name("SELECT id FROM users WHERE id = $1"), "SELECT");
        assert_eq!(operation_name("  with t AS (SELECT ?) SELECT * FROM t"), "WITH");
        assert_eq!(operation_name("(SELECT 1) UNION (SELECT 2)"), "SELECT");
        assert_eq!(operation_name("GET"), "GET");
        assert_eq!(operation_name("secret_procedure(?)"), "OTHER");
        assert_eq!(operation_name(""), "OTHER");
        assert_eq!(operation_name("savepoint sp1"), "SAVEPOINT");
        assert_eq!(operation_name("SAVEPOINTS"), "OTHER", "longer than any known word");
        assert_eq!(operation_name("hgetall key"), "HGETALL");
        assert_eq!(system_name("PostgreSQL"), "postgresql");
        assert_eq!(system_name("redis"), "redis");
    }
}
