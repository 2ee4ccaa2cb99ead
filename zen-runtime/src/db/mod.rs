//! sqlx wrappers that count, time and cut every query.
//!
//! Adoption is one line: change the pool's type from `sqlx::PgPool` to
//! `zen_runtime::db::PgPool` (or `SqlitePool`, `MySqlPool`; features
//! `postgres`, `sqlite`, `mysql`), which wrap sqlx 0.9's pool. Query call
//! sites stay as they are: `&pool` is a `sqlx::Executor`, and
//! `pool.acquire()` and `pool.begin()` return a connection and a
//! transaction whose `&mut *conn` and `&mut *tx` are executors too, as with
//! sqlx's own types; `sqlx::query(..).fetch_one(&pool)`, `query_as`,
//! `query_scalar`, the `query!` macros, streaming `.fetch(..)` and
//! `sqlx::migrate!().run(&pool)` work unchanged.
//!
//! ```no_run
//! # async fn demo(url: &str) -> Result<(), sqlx::Error> {
//! use std::time::Duration;
//! use zen_runtime::db::PgPoolOptions; // was: use sqlx::postgres::PgPoolOptions;
//!
//! let pool = PgPoolOptions::new().max_connections(20).acquire_timeout(Duration::from_secs(3)).connect(url).await?;
//! let one: i64 = sqlx::query_scalar("SELECT 1").fetch_one(&pool).await?;
//! let mut tx = pool.begin().await?;
//! sqlx::query("CREATE TABLE t (x INTEGER)").execute(&mut *tx).await?;
//! tx.commit().await?;
//! # Ok(()) }
//! ```
//!
//! The builder forwards `max_connections`, `min_connections`,
//! `acquire_timeout`, `idle_timeout`, `max_lifetime`, `test_before_acquire`,
//! and the rest through `.with(|o| o.after_connect(..))`; there are also
//! [`Pool::connect`]`(url)`, [`Pool::connect_with`]`(options)`,
//! [`SqlitePoolOptions`] and [`MySqlPoolOptions`]. [`Pool::as_sqlx`] is the
//! sqlx pool underneath (its queries are not counted).
//!
//! # What is counted
//!
//! Each query is counted once, when issued (toward `max_queries`), and
//! timed from issue until its result stream ends or is dropped; then the
//! statement table records it under its fingerprint (the SQL with literals,
//! placeholders, `IN (...)` lists, comments and spacing normalised; bound
//! values never reach a report), one lock per query and scope (once more
//! per N+1 suspect, to take its call site: see
//! [`report`](crate::report#statements-and-n1-suspects)). `BEGIN`, `COMMIT`,
//! `ROLLBACK` and savepoints are round trips and count too. Failed queries
//! count, and the report says how many. Time waiting for a pooled
//! connection is reported apart, as `db_wait`. Rows returned to the scope
//! count toward `max_rows`; in `enforce`, the row past it ends the stream
//! with the budget's error and the connection is closed, so the server
//! stops sending (a test cuts an unbounded `SELECT` of five million rows on
//! PostgreSQL at 1,000).
//!
//! # `enforce`
//!
//! A query past `max_queries` or `max_db_ms` is refused before it takes a
//! connection, with a `sqlx::Error` whose `source()` is [`BudgetExceeded`]
//! (`sqlx::Error::Configuration`, the variant whose source is the error
//! itself; [`as_budget_exceeded`] finds it). Each query is given at most the
//! time left in the DB budget and before the deadline; one that runs out is
//! cut, and its connection is **closed, never returned to the pool**, so no
//! half-read connection is ever reused. On PostgreSQL the server then stops
//! the statement too: the pool constructors ([`Pool::connect`],
//! [`Pool::connect_with`], the options' `connect`) set
//! `client_connection_check_interval = 100ms`, so the backend notices the
//! closed connection and cancels (a test checks `pg_stat_activity` for a
//! cut `pg_sleep(5)`). A pool you wrap with [`Pool::from_sqlx`] keeps your
//! options: set that parameter yourself.
//!
//! `BEGIN`, `COMMIT`, `ROLLBACK` and savepoints from `begin()`, `commit()`
//! and `rollback()` are bounded by the time left like any query. One cut,
//! or whose future is dropped (a deadline of the layer, your own
//! `tokio::time::timeout`), before its reply leaves its connection
//! unsettled: the server may hold a transaction sqlx does not know of, so
//! the connection refuses further queries and is closed, never returned to
//! the pool, where the next request's autocommit write would run inside
//! that transaction and be lost with it. Writes inside a transaction take
//! effect at its `COMMIT`: see [`Writes`](crate::report::Writes) for what a
//! refused request says about them.
//!
//! An application whose error type logs every `sqlx::Error` as a 500 would
//! log each refusal twice (its ERROR, zen's WARN): give budget errors their
//! own arm.
//!
//! ```
//! use zen_runtime::BudgetExceeded;
//!
//! #[derive(Debug)]
//! enum AppError {
//!     Budget(BudgetExceeded),
//!     Db(sqlx::Error),
//! }
//!
//! impl From<sqlx::Error> for AppError {
//!     fn from(e: sqlx::Error) -> Self {
//!         match zen_runtime::db::as_budget_exceeded(&e) {
//!             // zen reports it (and, under the layer in enforce, answers 503): no second log line.
//!             Some(exceeded) => AppError::Budget(exceeded.clone()),
//!             None => AppError::Db(e),
//!         }
//!     }
//! }
//! ```
//!
//! An in-memory SQLite database lives only as long as its last connection:
//! if every connection of the pool is cut and closed, the data goes with
//! them. Keep one connection aside (the demo does), or use a file.

mod checkout;
mod connection;
mod measure;
mod options;
mod pool;

pub use connection::{Connection, PoolConnection, Transaction};
pub use options::PoolOptions;
pub use pool::Pool;

use crate::tracker::error::BudgetExceeded;

/// A database zen can wrap: sqlx's `Database`, with what zen needs to tune
/// its connections.
pub trait Backend: sqlx::Database<Arguments: std::fmt::Debug> {
    /// Adjusts connection options so that a cut query stops on the server.
    fn tune(
        options: <Self::Connection as sqlx::Connection>::Options,
    ) -> <Self::Connection as sqlx::Connection>::Options {
        options
    }
}

#[cfg(feature = "postgres")]
impl Backend for sqlx::Postgres {
    fn tune(options: sqlx::postgres::PgConnectOptions) -> sqlx::postgres::PgConnectOptions {
        // The server checks the client is still there while a statement runs,
        // so closing the connection of a cut query ends the query too.
        options.options([("client_connection_check_interval", "100ms")])
    }
}

#[cfg(feature = "sqlite")]
impl Backend for sqlx::Sqlite {}

#[cfg(feature = "mysql")]
impl Backend for sqlx::MySql {}

/// A PostgreSQL pool whose queries report into the current budget.
#[cfg(feature = "postgres")]
pub type PgPool = Pool<sqlx::Postgres>;
/// A SQLite pool whose queries report into the current budget.
#[cfg(feature = "sqlite")]
pub type SqlitePool = Pool<sqlx::Sqlite>;
/// A MySQL pool whose queries report into the current budget.
#[cfg(feature = "mysql")]
pub type MySqlPool = Pool<sqlx::MySql>;
/// Builds a [`PgPool`]: `PgPoolOptions::new().max_connections(5).connect(url)`.
#[cfg(feature = "postgres")]
pub type PgPoolOptions = PoolOptions<sqlx::Postgres>;
/// Builds a [`SqlitePool`].
#[cfg(feature = "sqlite")]
pub type SqlitePoolOptions = PoolOptions<sqlx::Sqlite>;
/// Builds a [`MySqlPool`].
#[cfg(feature = "mysql")]
pub type MySqlPoolOptions = PoolOptions<sqlx::MySql>;

/// The `sqlx::Error` of a refused or cut query, whose `source()` is the
/// [`BudgetExceeded`]. sqlx has no variant for it; `Configuration` is the
/// one whose source is the error itself (`Database`'s is a box around it)
/// and that nothing retries: a budget is configuration.
#[must_use]
pub fn budget_error(exceeded: BudgetExceeded) -> sqlx::Error {
    sqlx::Error::Configuration(Box::new(exceeded))
}

/// The [`BudgetExceeded`] inside a `sqlx::Error`, if a budget caused it.
#[must_use]
pub fn as_budget_exceeded(error: &sqlx::Error) -> Option<&BudgetExceeded> {
    match error {
        sqlx::Error::Configuration(e) => e.downcast_ref::<BudgetExceeded>(),
        _ => None,
    }
}
