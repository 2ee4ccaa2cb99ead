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
//! Three modes decide what a blown budget does (see [`Mode`], and
//! [Modes](macro@zen#modes) for the detail): `observe` (the default)
//! reports and warns; `enforce` refuses further work and cuts the scope
//! short; `strict` panics with the report, for tests and CI. Call [`init`]
//! at start-up so that a bad `ZEN_MODE` stops the process there.
//!
//! # Where to read
//!
//! | topic | where |
//! |---|---|
//! | the attribute: every key, modes, compile-time checks, exemptions | [`zen`](macro@zen) |
//! | what a report holds, the `zen` event and its fields | [`report`] |
//! | requests under axum or any tower service, `Server-Timing`, the `503` | [`layer`] |
//! | background jobs, in-process and on apalis | [`jobs`] |
//! | sqlx pools, Redis connections and MongoDB clients that count, time and cut | [`db`], [`redis`], [`mongodb`] |
//! | an outgoing HTTP client that cannot forget its timeout | [`http`] |
//! | memory per scope | [`alloc`] |
//! | counting a client zen has no wrapper for | [`instrument`] |
//! | watching scopes end: your own exporter | [`observe`], [`sinks`] |
//! | Prometheus metrics and OpenTelemetry traces | [`metrics`], [`otel`] |
//! | a live page per route and job | [`dashboard`] |
//! | CI: the budget lock, query assertions, budgets suggested from traffic | [`lock`], [`testing`], [`sinks::JsonLines`] and the `zen` command (crate `zen-cli`) |
//! | statement fingerprints: why no value reaches a report | [`fingerprint`] |
//! | `ZEN_MODE`, `ZEN_N_PLUS_ONE`, the cap on distinct names | [`config`] |
//!
//! # Features
//!
//! None is on by default; in-process jobs need none.
//!
//! | feature | what it adds |
//! |---|---|
//! | `tower` | [`layer::ZenLayer`], for any tower service of HTTP requests |
//! | `axum` | the same, with requests named by their route (`MatchedPath`) |
//! | `postgres`, `sqlite`, `mysql` | the sqlx wrappers of [`db`] |
//! | `redis` | the Redis wrapper, [`redis::Connection`] |
//! | `mongodb` | every command of the official MongoDB driver: [`mongodb`] |
//! | `http` | the outgoing client, [`http::Client`] |
//! | `reqwest-middleware` | the same rules as a `reqwest-middleware` middleware |
//! | `apalis` | durable jobs: [`jobs::apalis`] |
//! | `metrics` | every scope's figures in the `metrics` facade: [`metrics`] |
//! | `opentelemetry` | every scope's figures on the current span: [`otel`] |
//! | `dashboard` | a live page per route and job: [`dashboard`] |
//! | `lock` | the budget lock, `zen.lock`, checked in tests: [`lock`] |
//!
//! # Scopes, nesting and tasks
//!
//! Each call of an annotated fn is one scope, made current on the polling
//! thread for every poll of its future, so work-stealing and
//! `join!`/`select!` inside the fn are counted correctly. An annotated fn
//! called from another opens a nested scope: its usage counts toward both,
//! and each reports. [`spawn`] and [`spawn_blocking`] carry the current
//! scope into the new task; **a plain `tokio::spawn` does not**, and its
//! work is counted nowhere. [`attach`] does the same for any other
//! executor. Under [`layer::ZenLayer`] and the runners of [`jobs`], the
//! request or the job is the scope, and the `#[zen]` handler or job fn
//! tightens it instead of opening one of its own.
//!
//! ```
//! use zen_runtime::{instrument, testing, zen};
//!
//! #[zen(max_queries = 5)]
//! async fn handler() {
//!     // Counted toward `handler`, from whichever thread runs the task.
//!     zen_runtime::spawn(async { instrument::query("sqlite", "SELECT 1").unwrap().finish(true) })
//!         .await
//!         .unwrap();
//!     // Counted nowhere.
//!     tokio::spawn(async { instrument::query("sqlite", "SELECT 2").unwrap().finish(true) })
//!         .await
//!         .unwrap();
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let ((), report) = testing::measure(handler()).await;
//! assert_eq!(report.figures.queries(), 1);
//! # }
//! ```
//!
//! # Dependencies, and why
//!
//! | crate | why |
//! |---|---|
//! | `syn`, `quote`, `proc-macro2` | the only dependencies of `zen-macros`: parse the attribute and the fn, emit the rewritten body with your spans |
//! | `tokio` | the runtime zen users run: [`spawn`]/[`spawn_blocking`] that carry a scope, the timer that cuts a scope at its deadline, the in-process job runner's channels |
//! | `tracing` | reports as structured events that any subscriber (logs, OpenTelemetry) already understands |
//! | `backtrace` | the call site of an N+1 suspect: the stack's return addresses (and, off Linux, their names) |
//! | `gimli`, `object`, `memmap2`, `rustc-demangle` (Linux) | name those addresses from the program's own DWARF, one compilation unit at a time, from a mapping of the file that goes when the names are found; the versions `backtrace` builds already |
//! | `pin-project-lite` | pin projection for the futures of the layer and the job runners, and the layer's body, without `unsafe` of zen's own |
//! | `sqlx`, `sqlx-core` (`postgres`, `sqlite`, `mysql`) | the wrappers implement sqlx's own `Executor`, so call sites do not change; `sqlx-core` for `TransactionManager`, which `sqlx` does not re-export |
//! | `futures-core`, `futures-util` (the same) | sqlx's boxed future and stream types (the streaming query that owns its pooled connection is written by hand: a generator cost more per row) |
//! | `redis` (`redis`) | the wrapper implements its `ConnectionLike`, so every command passes through it |
//! | `mongodb` (`mongodb`; no default features) | its command events tell of every command the driver sends; the driver has no hook to wrap instead |
//! | `reqwest` (`http`) | HTTP itself: zen adds the mandatory timeout and the budget |
//! | `reqwest-middleware`, `async-trait` (`reqwest-middleware`) | the middleware form of the same rules, for clients already built that way; `async-trait` because its trait is declared with it |
//! | `http`, `http-body`, `bytes`, `tower-layer`, `tower-service` (`tower`) | the layer is a plain tower `Layer` over `http` requests, so it fits axum, tonic or hyper alike, and its body is an `http-body` body; the HTTP client wraps response bodies with the first three too |
//! | `axum` (`axum`; no default features but `matched-path`) | `MatchedPath`, the route template that names each request |
//! | `apalis-core` (`apalis`) | the task type of apalis 1.0's workers, which the job layer wraps: a well-kept queue with SQLite and PostgreSQL storages, retries and heartbeats, rather than a queue of zen's own |
//! | `metrics` (`metrics`) | the facade every Rust metrics recorder implements (Prometheus, StatsD, OpenTelemetry), so zen chooses none |
//! | `tracing-opentelemetry`, `opentelemetry` (`opentelemetry`) | attributes and events on the span your `tracing-opentelemetry` layer already exports |
//! | `serde_json` (`dashboard`) | the dashboard's JSON endpoints, escaped as JSON must be |
//! | `toml` (`lock`; parser only) | reads `zen.lock` with the position of every value, so a bad file names its line |
//! | `serde_json` (`zen-cli` only) | reads the JSON-lines reports; the runtime writes them by hand |
//!
//! The tests, the demo and the benchmarks also use:
//!
//! | crate | why |
//! |---|---|
//! | `trybuild` | compile-fail tests that pin each error message and its span |
//! | `sqlparser`, `proptest` | an independent SQL tokenizer per dialect, the oracle of the property test that no literal survives fingerprinting |
//! | `divan` | benchmarks with nanosecond resolution for the per-call cost |
//! | `stats_alloc` | the process-wide reference that per-scope memory is checked against, and the baseline it is benchmarked against |
//! | `serde`, `serde_json` | the realistic handler of the allocator benchmark |
//! | `sqlx`, `redis`, `axum`, `tracing-subscriber`, `futures` | real SQLite, PostgreSQL, Redis, a real axum server and a real subscriber |
//! | `reqwest`, `reqwest-middleware`, `http-body-util` | real HTTP clients against the local servers of the tests and the demo |
//! | `tower`, `tower-http` | `ServiceExt::oneshot` to call a router in-process, and `TraceLayer`, the baseline of the layer's benchmark |
//! | `metrics-exporter-prometheus`, `metrics-util` | the recorder of the Prometheus test, the demo's `/metrics` and the benchmark; `metrics-util`'s debugging recorder for the cardinality test |
//! | `fantoccini`, `hyper-util` | WebDriver, to drive a real Chromium through ChromeDriver in the dashboard's browser test, over plain HTTP (no TLS stack) |
//! | `opentelemetry_sdk` | the SDK's in-memory span exporter, to read back what the traces carry |
//! | `apalis`, `apalis-sqlite`, `apalis-postgres` | real workers on real SQLite and PostgreSQL queues in the tests and the jobs example |

#![warn(missing_docs)]

mod tracker;

// The integrations: each depends on the core, never the other way round.
#[cfg(any(feature = "tower", feature = "http"))]
mod call;
#[cfg(feature = "dashboard")]
pub mod dashboard;
#[cfg(feature = "sqlx")]
pub mod db;
#[cfg(any(feature = "tower", feature = "http"))]
pub mod deadline;
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
#[cfg(feature = "mongodb")]
pub mod mongodb;
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
pub use tracker::{alloc, config, fingerprint, instrument, observe, report, testing, timeline};

/// Reads zen's settings from the environment and makes them global: `ZEN_MODE`
/// and `ZEN_N_PLUS_ONE` (and, with feature `lock`, checks `ZEN_LOCK`). Call
/// it at start-up, before serving, so that a bad value (`ZEN_MODE=enforced`)
/// stops the process with an error naming the variable and the values it
/// may hold; a process that never calls it logs that error on first use and
/// stays in `observe`. Returns the global mode.
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
/// or dropped. An annotated fn called from another one opens a nested scope:
/// its usage counts toward both, and each reports.
///
/// A handler run under [`layer::ZenLayer`] (feature `tower`/`axum`), or a
/// job fn run by a runner of [`jobs`], is the exception: the layer or the
/// runner already opened the scope, and the fn's limits tighten it instead
/// of opening another; the layer reports and, in `enforce`, answers `503`.
///
/// It goes on free async fns, methods (`&self`, `&mut self`, `self`),
/// generic fns, fns with `impl Trait` arguments or return types and async
/// fns in trait impls, on one-line bodies and `-> !` fns alike, warning-free
/// under `#![deny(warnings)]`. Only the body is rewritten: the signature,
/// generics and attributes stay as written, so an axum handler is still a
/// handler, a type error in your code still points at your code, and
/// `#[axum::debug_handler]`, `#[tracing::instrument]`, `#[tokio::test]` and
/// `#[tokio::main]` compose with it in either order.
///
/// # Arguments
///
/// Every key is optional; a budget left out is still measured and reported,
/// just not limited.
///
/// | key | unit | default | meaning |
/// |---|---|---|---|
/// | `max_queries` | queries | none | database operations asked for; `0` means none at all |
/// | `max_db_ms` | ms | none | time in database operations; at most `timeout_ms` |
/// | `max_mem_kb` | KiB | none | peak live heap of the call (needs [`ZenAlloc`](alloc::ZenAlloc)) |
/// | `timeout_ms` | ms | none | wall-clock time of the call |
/// | `max_http_calls` | calls | none | calls to external systems; `0` means none |
/// | `max_http_ms` | ms | none | time in external calls, response bodies included; at most `timeout_ms` |
/// | `max_poll_ms` | ms | none | the longest single poll: how long the fn held its thread without yielding; at most `timeout_ms` |
/// | `max_rows` | rows | none | rows the fn's queries returned to it |
/// | `max_response_kb` | KiB | none | the response body, under the layer |
/// | `n_plus_one` | repetitions | `ZEN_N_PLUS_ONE`, else 5 | flag a statement run this many times in one call as N+1; `0`: off; `1` is refused |
/// | `name` | string | module path and fn name | the name in reports |
/// | `mode` | `"observe"`, `"enforce"`, `"strict"` | `ZEN_MODE`, else `"observe"` | what a blown budget does (see [Modes](#modes)) |
/// | `kind` | `"handler"`, `"job"`, `"other"` | the enclosing scope's, else `"other"` | the kind in reports |
/// | `crate` | path | `::zen_runtime`, or its name in `Cargo.toml` | where the runtime is, if another crate re-exports it |
/// | `static_check` | bool | `true` | reject at compile time a body that exceeds `max_queries` on every way through it |
/// | `deny_query_in_loop` | bool | `false` | reject at compile time a query inside a loop or a per-item closure: the N+1 pattern |
/// | `exempt(...)` | list | none | accept a known N+1 or overrun, with a reason and an optional `until` date (see [Exemptions](#exemptions)) |
///
/// Time and memory values must be positive: `timeout_ms = 0` would fail
/// every call. Each budget key is one row of the runtime's budget table
/// ([`Budget`]): its key, which is also the name of its [`Limits`] setter,
/// its unit, its report event field and its `Server-Timing` entry come from
/// there, and a test checks that the attribute knows the same keys.
///
/// A dependency renamed in `Cargo.toml` (`zr = { package = "zen-runtime",
/// .. }`, also through `[workspace.dependencies]`) needs nothing more: the
/// attribute reads the manifest to find it. If the runtime reaches your
/// crate through another crate's re-export, write
/// `crate = "that_crate::zen_runtime"`.
///
/// # Modes
///
/// - `observe` (the default): behaviour never changes; a violation makes
///   the report a WARN event.
/// - `enforce`: clients refuse new work with [`BudgetExceeded`] once a
///   budget is blown (reachable through `source()` from the client's own
///   error), and each operation gets at most the time left. Under the layer
///   the request is answered `503` with a problem document naming the
///   budget ([`layer`]). Elsewhere a fn returning `Result<T, E>` with
///   `E: From<BudgetExceeded>` is cut short: at its deadline, or at the
///   first poll after a budget is blown, it returns
///   `Err(BudgetExceeded.into())`. Writing `mode = "enforce"` on a fn whose
///   return type cannot carry the error is a compile error saying which impl
///   to add; a fn under a global `ZEN_MODE=enforce` that cannot is not cut
///   (the boundary that owns its future, such as the layer, is the place to
///   stop it), but its clients still refuse work. Deadlines need tokio's
///   timer (`enable_all()`, as `#[tokio::main]` does).
/// - `strict`: a violation panics at the end of the call with the whole
///   report. For tests and CI, never production.
///
/// The global mode comes from `ZEN_MODE`, the N+1 threshold from
/// `ZEN_N_PLUS_ONE`. Call [`init`]`()?` at start-up so that a bad value
/// (`ZEN_MODE=enforced`) stops the process with an error naming the
/// variable and the valid values; a process that never calls it logs that
/// error on first use and stays in `observe`. A `mode` written on the
/// attribute wins over the global one, and over a layer's or job runner's
/// `.mode(..)`.
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
/// # Exemptions
///
/// A known N+1 or a known overrun can be accepted, with a reason and an
/// optional last day (`until`, `YYYY-MM-DD`):
///
/// ```
/// use zen_runtime::zen;
///
/// #[zen(
///     max_queries = 5,
///     exempt(n_plus_one, statement = "SELECT * FROM users WHERE id = ?", reason = "paged in #412", until = "2027-03-31"),
///     exempt(n_plus_one, call_site = "src/feed.rs:42", reason = "the feed is cached"),
///     exempt(budget = "max_db_ms", statement = "SELECT * FROM search(?)", reason = "the search index is rebuilt weekly")
/// )]
/// async fn feed() {}
/// # #[tokio::main(flavor = "current_thread")] async fn main() { feed().await; }
/// ```
///
/// `exempt(n_plus_one, ...)` accepts an N+1 suspect, by `statement` or by
/// `call_site` (matching a call site that contains it, such as
/// `src/feed.rs:42` or `feed::page`); `exempt(budget = "<key>", statement =
/// ...)` accepts an overrun of that budget in a call that ran the statement.
/// Statements are compared as fingerprints: spacing, values and case do not
/// matter. Every mistake in `exempt(...)` (a date that does not exist, a
/// missing reason, an unknown budget, both `statement` and `call_site`) is a
/// compile error on the token at fault. The same exemptions can be written
/// in the budget lock ([`lock`], `[[exempt]]`), where they apply only while
/// `ZEN_LOCK` is set, that is in tests; for production, write them here.
///
/// An exemption in force removes what it accepts from the report's
/// `n_plus_one` and `violations`, so it is not a WARN, not a lock regression
/// and not a `strict` failure; the report lists it (`exempted: N+1 of ...:
/// paged in #412 (until 2027-03-31)`). Past its date the suspect or
/// violation is reported again with `exemption expired: ...`, and `strict`
/// fails on it (an exemption for the same thing still in force, renewed
/// elsewhere, wins). Exemptions change how a scope is judged, not what
/// happens or what is measured: `enforce` still stops the work, the figures
/// are what was used, and metrics and the dashboard count an exempted
/// overrun as exceeded (their N+1 counts leave exempted suspects out).
///
/// # Errors
///
/// Misuse is a compile error on the token at fault, and the fix it suggests
/// compiles (`zen-ui/tests/ui/pass/suggested_fixes.rs` writes every suggestion
/// out): an unknown key (the valid ones listed, and the unit converted:
/// `timeout_s = 2` suggests `timeout_ms = 2000`), a duplicate key, `#[zen]`
/// written twice, a value that is not an integer (`timeout_ms = "200ms"`
/// suggests `200`), negative, signed (`+5`) or too large, `key: value`,
/// `timeout_ms = 0`, `max_db_ms` above `timeout_ms`, a `mode` that is not
/// one of the three lowercase strings, `n_plus_one = 1`, and the attribute
/// on anything but an `async fn`. Each message quoted here is the one
/// `zen-ui/tests/ui` holds, and a test there checks that it still is; after an
/// intended change to a message, `TRYBUILD=overwrite cargo test -p zen-ui`.
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
/// // error[E0277]: `#[zen(mode = "enforce")]` cannot cut this fn short:
/// //               `String` cannot carry `zen_runtime::BudgetExceeded`
/// ```
///
/// **The static check** fires only when it is certain: when every way
/// through the body (paths that end in an error propagated by `?` or in a
/// panic aside) runs more operations zen counts than `max_queries`. It
/// counts what certainly runs: a sqlx query built and run in one awaited
/// chain (`sqlx::query(..).bind(..).fetch_one(&pool).await`), a stream
/// consumed in the chain (`.fetch(&pool).try_collect().await`),
/// `Executor::execute(&pool, ..)`, SQL text passed to an executor, each
/// future given to `join!`/`try_join!`, `format!` arguments, `async {}`
/// blocks awaited in place, and the `BEGIN`, `COMMIT` and `ROLLBACK` of a
/// transaction the body queries on (`begin()` plus two queries plus
/// `commit()` is four). A method that only shares sqlx's name, a query
/// future built and dropped, a stream never consumed, or code that may be
/// skipped (a branch, a loop body, after a `return`, a `break` out of a
/// labeled block, the `else` of a `let ... else`) is not counted. The error
/// is on the call that crosses the budget and lists what was counted;
/// `static_check = false` turns the check off:
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
///
/// `deny_query_in_loop = true` also rejects a query inside a loop body or a
/// per-item closure (`.map(|id| query(..).fetch_one(..))`): the N+1
/// pattern, before it runs.
///
/// ```compile_fail
/// #[zen_runtime::zen(deny_query_in_loop = true)]
/// async fn authors(pool: &sqlx::SqlitePool, ids: &[i64]) -> Result<Vec<String>, sqlx::Error> {
///     let mut names = Vec::new();
///     for id in ids {
///         names.push(sqlx::query_scalar("SELECT name FROM users WHERE id = ?").bind(id).fetch_one(pool).await?);
///         // error: `query_scalar(..).fetch_one(..)` runs once per item of a loop: the N+1
///         //        pattern (`deny_query_in_loop`); fetch the rows in one query, such as
///         //        `WHERE id = ANY($1)` or `IN (...)`, or write `deny_query_in_loop = false`
///     }
///     Ok(names)
/// }
/// ```
#[doc(inline)]
pub use zen_macros::zen;
