//! sqlx wrappers that count, time and cut every query.
//!
//! Adoption is one line: change the pool's type from `sqlx::PgPool` to
//! `zen_runtime::db::PgPool` (or `SqlitePool`, `MySqlPool`). Query call sites
//! stay as they are: `sqlx::query(..).fetch_one(&pool)`, `query_as`,
//! `query_scalar`, the `query!` macros, `.execute(&mut *tx)` on a
//! transaction from `pool.begin()`, `&mut *conn` from `pool.acquire()`,
//! streaming `.fetch(..)`, and `sqlx::migrate!().run(&pool)`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sqlx::Error> {
//! use zen_runtime::db::SqlitePoolOptions; // was: use sqlx::sqlite::SqlitePoolOptions;
//!
//! let pool = SqlitePoolOptions::new().max_connections(5).connect("sqlite::memory:").await?;
//! let one: i64 = sqlx::query_scalar("SELECT 1").fetch_one(&pool).await?;
//! let mut tx = pool.begin().await?;
//! sqlx::query("CREATE TABLE t (x INTEGER)").execute(&mut *tx).await?;
//! tx.commit().await?;
//! # Ok(()) }
//! ```
//!
//! Each query is counted once when issued (toward `max_queries`), and timed
//! from issue until its result stream ends or is dropped; it is then
//! recorded under its statement fingerprint, with the call site of user
//! code when it repeats like N+1. Time waiting for a
//! pooled connection is reported apart, as `db_wait`. `BEGIN`, `COMMIT` and
//! `ROLLBACK` are round trips too, and count as queries.
//!
//! In `enforce` mode a query past `max_queries` or `max_db_ms` is refused
//! before it reaches the database with a `sqlx::Error` whose `source()`
//! is [`BudgetExceeded`]; a query is given at most the time left
//! in the DB budget and before the deadline, and one that runs out is cut:
//! its connection is closed rather than returned to the pool, so the
//! server stops it too (PostgreSQL notices the closed connection within
//! `client_connection_check_interval`, which [`Pool::connect_with`] sets
//! to 100 ms) and no half-read connection is ever reused.
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
pub trait Backend: sqlx::Database {
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
