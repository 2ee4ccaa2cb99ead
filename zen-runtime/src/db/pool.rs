//! The pool: sqlx's, whose every query reports into the current budget.

use futures_core::future::BoxFuture;
use futures_core::stream::BoxStream;
use sqlx::pool::PoolOptions;
use sqlx::{Database, Describe, Either, Execute, Executor, SqlStr};

use super::checkout::{self, checkout};
use super::measure::{self, Rebuilt};
use super::{Backend, PoolConnection, Transaction};

type Options<DB> = <<DB as Database>::Connection as sqlx::Connection>::Options;

/// A sqlx pool whose queries report into the current budget. Use `&pool`
/// wherever sqlx takes an executor; `pool.acquire()` and `pool.begin()` give
/// a connection and a transaction that report too.
pub struct Pool<DB: Database> {
    inner: sqlx::Pool<DB>,
}

impl<DB: Database> Clone for Pool<DB> {
    fn clone(&self) -> Self {
        Pool { inner: self.inner.clone() }
    }
}

impl<DB: Database> std::fmt::Debug for Pool<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Pool").field(&self.inner).finish()
    }
}

impl<DB: Backend> Pool<DB> {
    /// Connects with sqlx's default pool options.
    ///
    /// # Errors
    /// A bad URL, or the first connection failing.
    pub async fn connect(url: &str) -> Result<Self, sqlx::Error> {
        Self::connect_with(url.parse::<Options<DB>>()?).await
    }

    /// Connects with sqlx's default pool options and these connect options,
    /// tuned so that a cut query stops on the server.
    ///
    /// # Errors
    /// The first connection failing.
    pub async fn connect_with(options: Options<DB>) -> Result<Self, sqlx::Error> {
        Self::connect_with_pool_options(PoolOptions::new(), options).await
    }

    /// Connects with your pool options (size, timeouts, hooks).
    ///
    /// # Errors
    /// The first connection failing.
    pub async fn connect_with_pool_options(pool: PoolOptions<DB>, options: Options<DB>) -> Result<Self, sqlx::Error> {
        Ok(Pool { inner: pool.connect_with(DB::tune(options)).await? })
    }

    /// Creates the pool without connecting: connections open on first use.
    pub fn connect_lazy_with(pool: PoolOptions<DB>, options: Options<DB>) -> Self {
        Pool { inner: pool.connect_lazy_with(DB::tune(options)) }
    }

    /// Wraps a pool you built. Its connect options are not tuned: on
    /// PostgreSQL, set `client_connection_check_interval` in them for cut
    /// queries to stop on the server promptly.
    pub fn from_sqlx(pool: sqlx::Pool<DB>) -> Self {
        Pool { inner: pool }
    }

    /// The sqlx pool underneath. Queries run on it directly are not counted.
    pub fn as_sqlx(&self) -> &sqlx::Pool<DB> {
        &self.inner
    }

    /// Checks a connection out; the wait is reported as `db_wait`.
    ///
    /// # Errors
    /// As sqlx's `acquire`.
    pub async fn acquire(&self) -> Result<PoolConnection<DB>, sqlx::Error> {
        Ok(PoolConnection::new(measure::acquire(&self.inner).await?))
    }

    /// Checks a connection out and begins a transaction on it.
    ///
    /// # Errors
    /// As sqlx's `begin`, or a `BudgetExceeded` in `enforce` mode.
    pub async fn begin(&self) -> Result<Transaction<'static, DB>, sqlx::Error> {
        Transaction::begin_owned(measure::acquire(&self.inner).await?).await
    }

    /// Closes the pool; see sqlx's `Pool::close`.
    pub async fn close(&self) {
        self.inner.close().await;
    }

    /// Connections open, idle or in use.
    pub fn size(&self) -> u32 {
        self.inner.size()
    }

    /// Idle connections.
    pub fn num_idle(&self) -> usize {
        self.inner.num_idle()
    }
}

impl<DB: Backend> From<sqlx::Pool<DB>> for Pool<DB> {
    fn from(pool: sqlx::Pool<DB>) -> Self {
        Pool::from_sqlx(pool)
    }
}

impl<'p, DB> Executor<'p> for &'_ Pool<DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    type Database = DB;

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, Result<Either<DB::QueryResult, DB::Row>, sqlx::Error>>
    where
        E: 'q + Execute<'q, DB>,
    {
        Box::pin(checkout::query(&self.inner, Rebuilt::new(query)))
    }

    fn fetch_optional<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Option<DB::Row>, sqlx::Error>>
    where
        E: 'q + Execute<'q, DB>,
    {
        let pool = self.inner.clone();
        let query = Rebuilt::new(query);
        Box::pin(async move {
            let mut conn = checkout(&pool, query.text()).await?;
            measure::fetch_optional::<DB>(&mut conn, query).await
        })
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [DB::TypeInfo],
    ) -> BoxFuture<'e, Result<DB::Statement, sqlx::Error>>
    where
        'p: 'e,
    {
        let pool = self.inner.clone();
        Box::pin(async move { pool.acquire().await?.prepare_with(sql, parameters).await })
    }

    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<Describe<DB>, sqlx::Error>> {
        let pool = self.inner.clone();
        Box::pin(async move { pool.acquire().await?.describe(sql).await })
    }
}

/// For `sqlx::migrate!().run(&pool)` and other code generic over
/// `sqlx::Acquire`: hands out sqlx's own connections, which are not counted
/// (migrations run at start-up, outside any budget).
impl<'a, DB: Backend> sqlx::Acquire<'a> for &'_ Pool<DB> {
    type Database = DB;
    type Connection = sqlx::pool::PoolConnection<DB>;

    fn acquire(self) -> BoxFuture<'a, Result<Self::Connection, sqlx::Error>> {
        Box::pin(self.inner.acquire())
    }

    fn begin(self) -> BoxFuture<'a, Result<sqlx::Transaction<'a, DB>, sqlx::Error>> {
        let pool = self.inner.clone();
        Box::pin(async move { pool.begin().await })
    }
}
