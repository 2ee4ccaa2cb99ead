//! Reporting into the current budget from any client library.
//!
//! zen's own wrappers use this module; so can an application that talks to a
//! system zen has no wrapper for. Ask before the operation (in `enforce` a
//! blown budget refuses it), bound it by [`Operation::time_limit`], and
//! finish it with what it was:
//!
//! ```
//! use std::time::Duration;
//! use zen_runtime::instrument;
//!
//! # struct Cache; impl Cache { async fn get(&self, _: &str) -> Result<String, std::io::Error> { Ok(String::new()) } }
//! async fn cached_user(cache: &Cache, id: u64) -> Result<String, Box<dyn std::error::Error>> {
//!     let op = instrument::query("memcached")?; // Err(BudgetExceeded) when refused
//!     let key = format!("user:{id}");
//!     let fetch = cache.get(&key);
//!     let result = match op.time_limit() {
//!         Some(limit) => tokio::time::timeout(limit, fetch).await.map_err(|_| "cache timed out")?,
//!         None => fetch.await,
//!     };
//!     op.finish("GET user:?", result.is_ok());
//!     Ok(result?)
//! }
//! ```
//!
//! Outside any scope, every function here does nothing and never refuses.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::BudgetExceeded;
use crate::scope::{self, Resource, Scope};

/// One database operation or external call in progress, started by [`query`]
/// or [`call`]. Recorded when finished, or when dropped (as a success with no
/// statement).
#[derive(Debug)]
#[must_use = "an operation is recorded when finished or dropped; dropping it at once records nothing useful"]
pub struct Operation {
    scope: Option<Arc<Scope>>,
    resource: Resource,
    backend: &'static str,
    start: Option<Instant>,
}

impl std::fmt::Debug for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope")
            .field("name", &self.name)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// Starts a database operation on `backend` (`"postgres"`, `"redis"`, ...).
///
/// # Errors
/// In `enforce` mode, when the current scope or an enclosing enforced one has
/// used its `max_queries` or `max_db_ms`, or is past its deadline. The refusal
/// is counted in the report.
pub fn query(backend: &'static str) -> Result<Operation, BudgetExceeded> {
    start(Resource::Db, backend)
}

/// Starts a call to an external system.
///
/// # Errors
/// In `enforce` mode, when the current scope or an enclosing enforced one has
/// used its `max_http_calls` or `max_http_ms`, or is past its deadline.
pub fn call() -> Result<Operation, BudgetExceeded> {
    start(Resource::Http, "http")
}

fn start(resource: Resource, backend: &'static str) -> Result<Operation, BudgetExceeded> {
    let scope = scope::current();
    let start = match &scope {
        Some(scope) => {
            scope.admit(resource)?;
            Some(Instant::now())
        }
        // Outside a scope nothing is recorded, so nothing needs the clock.
        None => None,
    };
    Ok(Operation {
        scope,
        resource,
        backend,
        start,
    })
}

impl Operation {
    /// The longest this operation may take before a budget in `enforce` mode
    /// is blown: the least of the time left before each enforced deadline and
    /// in each enforced time budget. `None`: no enforced bound applies (your
    /// client's own timeout still should).
    #[must_use]
    pub fn time_limit(&self) -> Option<Duration> {
        self.scope.as_ref().and_then(|s| s.time_left(self.resource))
    }

    /// Records the operation: what it was (a SQL statement, a command, a URL
    /// without its query string: never values that may hold personal data)
    /// and whether it succeeded.
    pub fn finish(mut self, statement: &str, ok: bool) {
        self.record(statement, ok);
    }

    /// Records the operation as failed because [`time_limit`](Self::time_limit)
    /// ran out, and returns the error that says which budget it hit, for the
    /// caller to return.
    pub fn expire(mut self, statement: &str) -> BudgetExceeded {
        let scope = self.scope.clone();
        self.record(statement, false);
        match scope {
            Some(scope) => scope.expired(),
            None => unreachable!("an operation outside a scope has no time limit to run out"),
        }
    }

    fn record(&mut self, statement: &str, ok: bool) {
        if let (Some(scope), Some(start)) = (self.scope.take(), self.start) {
            let elapsed = start.elapsed();
            match self.resource {
                Resource::Db => scope.record_query(self.backend, statement, elapsed, ok),
                Resource::Http => scope.record_call(elapsed, ok),
            }
        }
    }
}

impl Drop for Operation {
    fn drop(&mut self) {
        self.record("", true);
    }
}

/// Records a database operation that already happened and was timed by the
/// caller. Never refuses; use [`query`] to be refused in `enforce`.
pub fn record_query(backend: &'static str, statement: &str, elapsed: Duration, ok: bool) {
    scope::with_current(|s| {
        if let Some(s) = s {
            s.record_query(backend, statement, elapsed, ok);
        }
    });
}

/// Records an external call that already happened and was timed by the
/// caller.
pub fn record_call(elapsed: Duration, ok: bool) {
    scope::with_current(|s| {
        if let Some(s) = s {
            s.record_call(elapsed, ok);
        }
    });
}

/// `true` when the calling code runs inside a budget scope.
#[must_use]
pub fn in_scope() -> bool {
    scope::with_current(|s| s.is_some())
}
