//! Budgets for every request and every job.
//!
//! Put `#[zen(...)]` on an async handler or job function and every call runs
//! in a budget scope that counts its database queries and their time, its
//! calls to external systems, its wall-clock time and (with
//! [`alloc::ZenAlloc`] installed) its memory, checks them against the
//! limits you set, and reports: a `tracing` event with target `zen`, every
//! [`sinks::add_sink`] sink, and [`testing::measure`] in tests.
//!
//! ```
//! use zen_runtime::zen;
//!
//! #[zen(max_queries = 5, max_db_ms = 50, timeout_ms = 200)]
//! async fn show_article(id: i64) -> String {
//!     format!("article {id}")
//! }
//! # #[tokio::main(flavor = "current_thread")] async fn main() { show_article(1).await; }
//! ```
//!
//! Three modes decide what a blown budget does (see [`Mode`]): `observe`
//! (the default) reports and warns; `enforce` refuses further work and cuts
//! the scope short; `strict` panics with the report, for tests and CI.

mod tracker;

// The integrations: each depends on the core, never the other way round.
#[cfg(feature = "dashboard")]
pub mod dashboard;
#[cfg(feature = "sqlx")]
pub mod db;
mod events;
#[cfg(feature = "http")]
pub mod http;
pub mod jobs;
#[cfg(feature = "tower")]
pub mod layer;
#[cfg(feature = "lock")]
pub mod lock;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "opentelemetry")]
pub mod otel;
#[cfg(feature = "redis")]
pub mod redis;
pub mod sinks;

#[doc(hidden)]
pub mod __private;

// The public surface: what a user writes at the root, the rest by module,
// one path per item.
pub use tracker::budget::{Budget, Kind, Limits, Mode, Scale};
pub use tracker::error::BudgetExceeded;
pub use tracker::future::{Attached, Scoped};
pub use tracker::report::whole::{Outcome, Report};
pub use tracker::spawn::{attach, spawn, spawn_blocking};
pub use tracker::{alloc, config, fingerprint, instrument, observe, report, testing};

/// Reads zen's settings from the environment and makes them global: `ZEN_MODE`
/// and `ZEN_N_PLUS_ONE` (and, with feature `lock`, checks `ZEN_LOCK`). Call
/// it at start-up, before serving, so that a bad value stops the process with
/// an error naming the variable. Returns the global mode.
///
/// # Errors
/// `ZEN_MODE` holds something other than a mode name, `ZEN_N_PLUS_ONE`
/// something other than a whole number, or `ZEN_LOCK` something other than
/// `check`, `update` or `reset`.
pub fn init() -> Result<Mode, config::ConfigError> {
    #[cfg(feature = "lock")]
    lock::parse_mode(std::env::var(lock::LOCK_VAR).ok().as_deref())?;
    config::init()
}

/// The observers the crate registers before any other (see [`observe`]):
/// the `zen` event always, and those of the features on. The one place
/// that names them; the tracker only asks for this list.
fn default_observers() -> Vec<std::sync::Arc<dyn observe::Observer>> {
    use std::sync::Arc;
    vec![
        Arc::new(events::Events) as Arc<dyn observe::Observer>,
        #[cfg(feature = "metrics")]
        Arc::new(metrics::Metrics),
        #[cfg(feature = "opentelemetry")]
        Arc::new(otel::Attributes),
        #[cfg(feature = "lock")]
        Arc::new(lock::Lock),
    ]
}

/// Puts an `async fn` under a budget.
///
/// Every call of the fn runs in a budget scope of its own: the queries,
/// external calls, time and memory of the body (and of everything it awaits,
/// and of tasks it starts with [`spawn`]) are counted, checked against the
/// limits below and reported once, when the call ends: completed, panicked
/// or dropped. Only the body is rewritten: the signature, generics and
/// attributes stay as written, so an axum handler is still a handler and
/// `#[tracing::instrument]`, `#[axum::debug_handler]` or `#[tokio::test]`
/// compose in either order. An annotated fn called from another one opens a
/// nested scope: its usage counts toward both, and each reports.
///
/// A handler run under [`layer::ZenLayer`] (feature `tower`/`axum`) is the
/// exception: the layer already opened the request's scope, and the
/// handler's limits tighten it instead of opening another; the layer
/// reports and, in `enforce`, answers `503`.
///
/// # Arguments
///
/// Every key is optional; a budget left out is measured but not limited.
///
/// | key | unit | default | meaning |
/// |---|---|---|---|
/// | `max_queries` | queries | none | database operations; `0` means none at all |
/// | `max_db_ms` | ms | none | time in database operations; at most `timeout_ms` |
/// | `max_mem_kb` | KiB | none | peak live heap of the call (needs `ZenAlloc`) |
/// | `timeout_ms` | ms | none | wall-clock time of the call |
/// | `max_http_calls` | calls | none | calls to external systems; `0` means none |
/// | `max_http_ms` | ms | none | time in external calls; at most `timeout_ms` |
/// | `n_plus_one` | repetitions | `ZEN_N_PLUS_ONE`, else 5 | flag a statement run this often in one call as N+1; `0`: off |
/// | `name` | string | module path and fn name | the name in reports |
/// | `mode` | `"observe"`, `"enforce"`, `"strict"` | `ZEN_MODE`, else `"observe"` | what a blown budget does |
/// | `kind` | `"handler"`, `"job"`, `"other"` | the enclosing scope's, else `"other"` | the kind in reports |
/// | `crate` | path | `::zen_runtime` | where the runtime is, if you re-export it |
/// | `static_check` | bool | `true` | reject at compile time a body that always exceeds `max_queries` |
///
/// Time and memory values must be positive: `timeout_ms = 0` would fail
/// every call.
///
/// # Modes
///
/// - `observe`: behaviour never changes; a violation is a WARN event.
/// - `enforce`: clients refuse new work with [`BudgetExceeded`] once a
///   budget is blown, and each operation is bounded by the time left. A fn
///   returning `Result<T, E>` with `E: From<BudgetExceeded>` is also cut
///   short: at its deadline, or at the first poll after a budget is blown, it
///   returns `Err(BudgetExceeded.into())`. Writing `mode = "enforce"` on a fn
///   that cannot return the error is a compile error; a fn under a global
///   `ZEN_MODE=enforce` that cannot is not cut (the boundary that owns its
///   future, such as the axum layer, is the place to stop it).
/// - `strict`: a violation panics at the end of the call with the whole
///   report. For tests and CI only.
///
/// # Examples
///
/// ```
/// use zen_runtime::{zen, BudgetExceeded};
///
/// #[derive(Debug)]
/// enum AppError {
///     Budget(BudgetExceeded),
/// }
///
/// impl From<BudgetExceeded> for AppError {
///     fn from(e: BudgetExceeded) -> Self {
///         AppError::Budget(e)
///     }
/// }
///
/// #[zen(max_queries = 2, timeout_ms = 50, mode = "enforce")]
/// async fn slow() -> Result<(), AppError> {
///     tokio::time::sleep(std::time::Duration::from_secs(5)).await;
///     Ok(())
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// // Cut at its 50 ms deadline, not after 5 s.
/// assert!(matches!(slow().await, Err(AppError::Budget(_))));
/// # }
/// ```
///
/// # Errors
///
/// Misuse is a compile error on the token at fault, saying how to fix it
/// (each message quoted here is the one `tests/ui` holds, and a test there
/// checks that it still is):
///
/// ```compile_fail
/// #[zen_runtime::zen(timeout_ms = 0)]
/// async fn handler() {}
/// // error: `timeout_ms = 0` would fail every call at once; use a positive
/// //        value, or remove `timeout_ms` for no limit
/// ```
///
/// ```compile_fail
/// #[zen_runtime::zen(max_db_ms = 500, timeout_ms = 200)]
/// async fn handler() {}
/// // error: `max_db_ms = 500` is greater than `timeout_ms = 200`, so it can
/// //        never be reached; write `max_db_ms = 200` or raise `timeout_ms`
/// ```
///
/// ```compile_fail
/// #[zen_runtime::zen(max_queries = 5)]
/// fn handler() {}
/// // error: `#[zen]` applies to an `async fn` only; make this fn `async fn`,
/// //        or call it from one that carries the attribute
/// ```
///
/// ```compile_fail,E0277
/// #[zen_runtime::zen(mode = "enforce")]
/// async fn handler() -> String { String::new() }
/// // error[E0277]: `#[zen(mode = "enforce")]` cannot cut this fn short: it
/// //               returns `String`
/// ```
///
/// A body that runs more queries than `max_queries` on every way through it
/// is rejected on the query that crosses the budget; `static_check = false`
/// turns this off:
///
/// ```compile_fail
/// # struct Db; impl Db { async fn execute(&self, _: &str) {} }
/// #[zen_runtime::zen(max_queries = 1)]
/// async fn handler(db: &Db) {
///     db.execute("INSERT INTO a VALUES (1)").await;
///     db.execute("INSERT INTO b VALUES (2)").await;
///     // error: every way through `handler` runs at least 2 operations that
///     //        zen counts, over `max_queries = 1`, and this is number 2;
///     //        counted in order: `.execute("..")`, `.execute("..")`.
/// }
/// ```
#[doc(inline)]
pub use zen_macros::zen;
