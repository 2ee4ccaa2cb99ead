//! A pooled connection and a transaction whose queries report into the
//! budget. Both dereference to [`Connection`], so `&mut *conn` and
//! `&mut *tx` are `sqlx::Executor`s, as with sqlx's own types.

use std::fmt;
use std::ops::{Deref, DerefMut};

use futures_core::future::BoxFuture;
use futures_core::stream::BoxStream;
use sqlx::{Database, Describe, Either, Execute, Executor, SqlStr};
use sqlx_core::transaction::TransactionManager;

use super::Backend;
use super::measure::{self, Rebuilt};
use crate::tracker::error::BudgetExceeded;

/// A database connection checked out of a zen [`Pool`](super::Pool): the
/// target of `&mut *conn` and `&mut *tx`.
pub struct Connection<DB: Database> {
    pub(crate) raw: sqlx::pool::PoolConnection<DB>,
    /// Set when a budget cut a query on this connection: it may still be
    /// mid-reply, so it refuses further work and is closed, not reused.
    pub(crate) cut: Option<BudgetExceeded>,
    /// Set while a transaction-control statement (`BEGIN`, `COMMIT`, ...)
    /// awaits its reply, and left set if that never came (the statement was
    /// cut, or its future dropped): the server may hold a transaction sqlx
    /// does not know of, so the connection refuses further work and is
    /// closed, never returned to the pool, where a later autocommit write
    /// would run inside that transaction and be lost with it.
    unsettled: bool,
}

impl<DB: Database> Drop for Connection<DB> {
    fn drop(&mut self) {
        // A connection a budget cut may still be mid-reply: closing it, not
        // returning it to the pool, makes the server stop the statement too
        // (and roll back any transaction it holds).
        if self.cut.is_some() || self.unsettled {
            self.raw.close_on_drop();
        }
    }
}

impl<DB: Database> fmt::Debug for Connection<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("raw", &self.raw)
            .field("cut", &self.cut.is_some())
            .field("unsettled", &self.unsettled)
            .finish()
    }
}

impl<DB: Backend> Connection<DB> {
    pub(crate) fn new(raw: sqlx::pool::PoolConnection<DB>) -> Self {
        Connection { raw, cut: None, unsettled: false }
    }

    pub(crate) fn raw(&mut self) -> &mut DB::Connection {
        &mut self.raw
    }

    /// `Ok` unless a budget cut this connection or a transaction-control
    /// statement left it unsettled: it then refuses every further query.
    pub(crate) fn usable(&self) -> Result<(), sqlx::Error> {
        if let Some(exceeded) = &self.cut {
            return Err(super::budget_error(exceeded.clone()));
        }
        if self.unsettled {
            return Err(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "a transaction-control statement on this connection was cancelled before its reply: whether the \
                 server holds a transaction is unknown, so the connection is closed rather than used again",
            )));
        }
        Ok(())
    }

    /// The sqlx connection underneath, for what zen does not wrap. Queries
    /// run on it directly are not counted.
    pub fn as_sqlx(&mut self) -> &mut DB::Connection {
        &mut self.raw
    }

    /// Starts a transaction on this connection, or a savepoint inside the
    /// current one.
    ///
    /// # Errors
    /// As sqlx's `begin`, or a [`BudgetExceeded`] in `enforce` mode.
    pub async fn begin(&mut self) -> Result<Transaction<'_, DB>, sqlx::Error> {
        Transaction::begin(Slot::Borrowed(self)).await
    }

    /// Runs one transaction-control statement, counted and bounded by the
    /// time left like any query. Cut, or dropped, before its reply, it
    /// leaves the connection unsettled: closed, never reused.
    async fn control<'c, F>(
        &'c mut self,
        statement: &str,
        run: impl FnOnce(&'c mut DB::Connection) -> F,
    ) -> Result<(), sqlx::Error>
    where
        F: Future<Output = Result<(), sqlx::Error>> + 'c,
    {
        // A `COMMIT` is where a transaction's writes take effect.
        let op = measure::issue(self, statement)?.writes(statement == "COMMIT");
        let limit = op.time_limit();
        let Connection { raw, cut, unsettled } = self;
        // Until the reply is read; a dropped future leaves it set.
        *unsettled = true;
        let run = run(DerefMut::deref_mut(raw));
        let result = match limit {
            Some(limit) => match tokio::time::timeout(limit, run).await {
                Ok(result) => result,
                Err(_elapsed) => return Err(measure::cut(cut, op.expire())),
            },
            None => run.await,
        };
        *unsettled = false;
        measure::settle(op, &result);
        result
    }
}

impl<'c, DB> Executor<'c> for &'c mut Connection<DB>
where
    DB: Backend,
    for<'x> &'x mut DB::Connection: Executor<'x, Database = DB>,
{
    type Database = DB;

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, Result<Either<DB::QueryResult, DB::Row>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, DB>,
    {
        measure::fetch_many::<DB>(self, Rebuilt::<DB>::new(query))
    }

    fn fetch_optional<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Option<DB::Row>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, DB>,
    {
        measure::fetch_optional::<DB>(self, Rebuilt::<DB>::new(query))
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [DB::TypeInfo],
    ) -> BoxFuture<'e, Result<DB::Statement, sqlx::Error>>
    where
        'c: 'e,
    {
        if let Err(e) = self.usable() {
            return Box::pin(std::future::ready(Err(e)));
        }
        self.raw().prepare_with(sql, parameters)
    }

    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<Describe<DB>, sqlx::Error>>
    where
        'c: 'e,
    {
        if let Err(e) = self.usable() {
            return Box::pin(std::future::ready(Err(e)));
        }
        self.raw().describe(sql)
    }
}

/// A connection checked out with [`Pool::acquire`](super::Pool::acquire);
/// returned to the pool when dropped (closed instead if a budget cut it,
/// or a transaction-control statement on it never got its reply).
pub struct PoolConnection<DB: Database> {
    conn: Connection<DB>,
}

impl<DB: Database> fmt::Debug for PoolConnection<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.conn.fmt(f)
    }
}

impl<DB: Backend> PoolConnection<DB> {
    pub(crate) fn new(conn: Connection<DB>) -> Self {
        PoolConnection { conn }
    }

    /// Closes the connection when dropped instead of returning it.
    pub fn close_on_drop(&mut self) {
        self.conn.raw.close_on_drop();
    }
}

impl<DB: Database> Deref for PoolConnection<DB> {
    type Target = Connection<DB>;

    fn deref(&self) -> &Connection<DB> {
        &self.conn
    }
}

impl<DB: Database> DerefMut for PoolConnection<DB> {
    fn deref_mut(&mut self) -> &mut Connection<DB> {
        &mut self.conn
    }
}

/// Owned by the transaction (from the pool) or borrowed (a savepoint, or a
/// transaction on an acquired connection).
enum Slot<'c, DB: Database> {
    Owned(Connection<DB>),
    Borrowed(&'c mut Connection<DB>),
}

/// A transaction or savepoint, from [`Pool::begin`](super::Pool::begin) or
/// [`Connection::begin`]. Rolled back when dropped without `commit`.
pub struct Transaction<'c, DB: Database> {
    conn: Slot<'c, DB>,
    open: bool,
    /// The connection's transaction depth once this one has begun: a
    /// savepoint refused before it was sent must not roll its parent back.
    level: usize,
}

impl<DB: Database> fmt::Debug for Transaction<'_, DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction").field("open", &self.open).finish_non_exhaustive()
    }
}

impl<'c, DB: Backend> Transaction<'c, DB> {
    async fn begin(conn: Slot<'c, DB>) -> Result<Self, sqlx::Error> {
        let mut tx = Transaction { conn, open: false, level: 0 };
        let depth = DB::TransactionManager::get_transaction_depth(tx.raw_ref());
        let statement = if depth == 0 { "BEGIN" } else { "SAVEPOINT" };
        // Open before the statement completes, as sqlx does: a `BEGIN` that
        // fails halfway is still rolled back (if it took effect).
        tx.open = true;
        tx.level = depth + 1;
        tx.control(statement, |c| DB::TransactionManager::begin(c, None)).await?;
        Ok(tx)
    }

    pub(crate) async fn begin_owned(conn: Connection<DB>) -> Result<Self, sqlx::Error> {
        Transaction::begin(Slot::Owned(conn)).await
    }

    fn raw_ref(&self) -> &DB::Connection {
        match &self.conn {
            Slot::Owned(c) => &c.raw,
            Slot::Borrowed(c) => &c.raw,
        }
    }

    /// Commits this transaction or releases this savepoint.
    ///
    /// # Errors
    /// As sqlx's `commit`, or a [`BudgetExceeded`] in `enforce` mode:
    /// refused before it is sent, the transaction is rolled back; cut after
    /// it was sent, whether it committed is unknown (the problem document
    /// says `writes: unknown`), and the connection is closed.
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        let statement = if self.depth() > 1 { "RELEASE SAVEPOINT" } else { "COMMIT" };
        self.control(statement, DB::TransactionManager::commit).await?;
        self.open = false;
        Ok(())
    }

    /// Rolls this transaction or savepoint back.
    ///
    /// # Errors
    /// As sqlx's `rollback`.
    pub async fn rollback(mut self) -> Result<(), sqlx::Error> {
        let statement = if self.depth() > 1 { "ROLLBACK TO SAVEPOINT" } else { "ROLLBACK" };
        self.control(statement, DB::TransactionManager::rollback).await?;
        self.open = false;
        Ok(())
    }

    fn depth(&self) -> usize {
        DB::TransactionManager::get_transaction_depth(self.raw_ref())
    }
}

impl<DB: Database> Deref for Transaction<'_, DB> {
    type Target = Connection<DB>;

    fn deref(&self) -> &Connection<DB> {
        match &self.conn {
            Slot::Owned(c) => c,
            Slot::Borrowed(c) => c,
        }
    }
}

impl<DB: Database> DerefMut for Transaction<'_, DB> {
    fn deref_mut(&mut self) -> &mut Connection<DB> {
        match &mut self.conn {
            Slot::Owned(c) => c,
            Slot::Borrowed(c) => c,
        }
    }
}

impl<DB: Database> Drop for Transaction<'_, DB> {
    fn drop(&mut self) {
        if !self.open {
            return;
        }
        let level = self.level;
        let conn: &mut Connection<DB> = self;
        if conn.cut.is_some() || conn.unsettled {
            // The connection is closed on drop: the server rolls back.
            return;
        }
        if DB::TransactionManager::get_transaction_depth(&conn.raw) < level {
            // It never began (refused, or cut before the server answered).
            return;
        }
        // Queued: sqlx sends it before the connection's next use, or when
        // the pool takes it back. Not the scope's operation: it is sent after
        // the scope let go of the transaction, untimed and unrefusable.
        DB::TransactionManager::start_rollback(&mut conn.raw);
    }
}

impl<DB: Backend> Connection<DB> {
    /// The `BudgetExceeded` that cut this connection, if one did.
    #[must_use]
    pub fn cut_by(&self) -> Option<&BudgetExceeded> {
        self.cut.as_ref()
    }
}
