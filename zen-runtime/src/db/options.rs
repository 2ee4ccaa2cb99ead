//! The pool builder in the shape sqlx users know:
//! `PgPoolOptions::new().max_connections(5).connect(url)`, with zen's pool
//! at the end, its connections tuned so that a cut query stops on the
//! server too.

use std::time::Duration;

use super::{Backend, Pool};

type ConnectOptions<DB> = <<DB as sqlx::Database>::Connection as sqlx::Connection>::Options;

/// Builds a zen [`Pool`]: sqlx's `PoolOptions`, whose settings it forwards.
/// Settings it does not list (hooks such as `after_connect`) are one
/// [`with`](Self::with) away.
#[must_use]
pub struct PoolOptions<DB: sqlx::Database> {
    inner: sqlx::pool::PoolOptions<DB>,
}

impl<DB: sqlx::Database> std::fmt::Debug for PoolOptions<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

impl<DB: Backend> Default for PoolOptions<DB> {
    fn default() -> Self {
        Self::new()
    }
}

impl<DB: Backend> From<sqlx::pool::PoolOptions<DB>> for PoolOptions<DB> {
    fn from(inner: sqlx::pool::PoolOptions<DB>) -> Self {
        PoolOptions { inner }
    }
}

impl<DB: Backend> PoolOptions<DB> {
    /// sqlx's defaults.
    pub fn new() -> Self {
        PoolOptions { inner: sqlx::pool::PoolOptions::new() }
    }

    /// The most connections the pool opens.
    pub fn max_connections(self, max: u32) -> Self {
        self.with(|o| o.max_connections(max))
    }

    /// The connections the pool keeps open, even idle.
    pub fn min_connections(self, min: u32) -> Self {
        self.with(|o| o.min_connections(min))
    }

    /// The longest a caller waits for a connection.
    pub fn acquire_timeout(self, timeout: Duration) -> Self {
        self.with(|o| o.acquire_timeout(timeout))
    }

    /// How long a connection may stay idle before it is closed.
    pub fn idle_timeout(self, timeout: impl Into<Option<Duration>>) -> Self {
        self.with(|o| o.idle_timeout(timeout))
    }

    /// How long a connection may live.
    pub fn max_lifetime(self, lifetime: impl Into<Option<Duration>>) -> Self {
        self.with(|o| o.max_lifetime(lifetime))
    }

    /// Whether a connection is pinged before it is handed out.
    pub fn test_before_acquire(self, test: bool) -> Self {
        self.with(|o| o.test_before_acquire(test))
    }

    /// Any other sqlx setting: `.with(|o| o.after_connect(..))`.
    pub fn with(self, configure: impl FnOnce(sqlx::pool::PoolOptions<DB>) -> sqlx::pool::PoolOptions<DB>) -> Self {
        PoolOptions { inner: configure(self.inner) }
    }

    /// Connects to `url`.
    ///
    /// # Errors
    /// A bad URL, or the first connection failing.
    pub async fn connect(self, url: &str) -> Result<Pool<DB>, sqlx::Error> {
        self.connect_with(url.parse()?).await
    }

    /// Connects with these connect options.
    ///
    /// # Errors
    /// The first connection failing.
    pub async fn connect_with(self, options: ConnectOptions<DB>) -> Result<Pool<DB>, sqlx::Error> {
        Ok(Pool::from_sqlx(self.inner.connect_with(DB::tune(options)).await?))
    }

    /// Creates the pool without connecting: connections open on first use.
    ///
    /// # Errors
    /// A bad URL.
    pub fn connect_lazy(self, url: &str) -> Result<Pool<DB>, sqlx::Error> {
        Ok(self.connect_lazy_with(url.parse()?))
    }

    /// Creates the pool without connecting, with these connect options.
    pub fn connect_lazy_with(self, options: ConnectOptions<DB>) -> Pool<DB> {
        Pool::from_sqlx(self.inner.connect_lazy_with(DB::tune(options)))
    }
}
