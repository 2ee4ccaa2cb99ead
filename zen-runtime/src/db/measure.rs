//! Running one query on one connection while it reports into the budget:
//! counted when issued, timed until its stream ends or is dropped, its rows
//! counted, cut when its time limit runs out or its rows pass `max_rows`.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_core::Stream;
use futures_core::future::BoxFuture;
use futures_core::stream::BoxStream;
use sqlx::error::BoxDynError;
use sqlx::{Database, Either, Execute, Executor, SqlStr};
use sqlx_core::transaction::TransactionManager;

use super::{Backend, Connection, budget_error};
use crate::tracker::error::BudgetExceeded;
use crate::tracker::instrument::{self, Operation};

/// A query taken apart and put back together, so that zen can read its SQL
/// (sqlx 0.9's `Execute::sql` consumes the query).
pub(crate) struct Rebuilt<DB: Database> {
    sql: SqlStr,
    arguments: Option<Result<Option<DB::Arguments>, BoxDynError>>,
    persistent: bool,
}

impl<DB: Database> Rebuilt<DB> {
    pub(crate) fn new<'q>(mut query: impl Execute<'q, DB>) -> Self {
        let persistent = query.persistent();
        let arguments = Some(query.take_arguments());
        Rebuilt { sql: query.sql(), arguments, persistent }
    }

    pub(crate) fn text(&self) -> &str {
        self.sql.as_str()
    }
}

impl<DB: Backend> Rebuilt<DB> {
    /// Its bound arguments, for [`Operation::values`].
    pub(crate) fn values(&self) -> &dyn std::fmt::Debug {
        &self.arguments
    }
}

impl<DB: Database> Execute<'_, DB> for Rebuilt<DB> {
    fn sql(self) -> SqlStr {
        self.sql
    }

    fn statement(&self) -> Option<&DB::Statement> {
        None
    }

    fn take_arguments(&mut self) -> Result<Option<DB::Arguments>, BoxDynError> {
        self.arguments.take().unwrap_or(Ok(None))
    }

    fn persistent(&self) -> bool {
        self.persistent
    }
}

/// Counts the query and checks the budget; the error ends the query before
/// it reaches the database. Inside a transaction nothing is written before
/// its `COMMIT`.
pub(crate) fn issue<DB: Backend>(conn: &Connection<DB>, sql: &str) -> Result<Operation, sqlx::Error> {
    conn.usable()?;
    let op = instrument::query(DB::NAME, sql).map_err(budget_error)?;
    // A statement that may do its work apart from the transaction (MySQL
    // commits around DDL) stays a write.
    let in_transaction = DB::TransactionManager::get_transaction_depth(&conn.raw) > 0;
    Ok(if in_transaction && op.fails_whole() { op.writes(false) } else { op })
}

/// Records how an operation ended from its result: an error the database
/// answered with is a rejection; any other (the connection broke) says
/// nothing of what was done.
pub(crate) fn settle<T>(op: Operation, result: &Result<T, sqlx::Error>) {
    match result {
        Ok(_) => op.finish(true),
        Err(sqlx::Error::Database(_)) => op.finish_rejected(),
        Err(_) => op.finish(false),
    }
}

pub(crate) type Step<DB> = Either<<DB as Database>::QueryResult, <DB as Database>::Row>;

pin_project_lite::pin_project! {
    /// The steps of one query, measured. Polled once per row, it adds a
    /// count and a comparison to sqlx's own stream; its timer is polled only
    /// while the database keeps the query waiting.
    pub(crate) struct Measured<'e, DB: Database> {
        steps: BoxStream<'e, Result<Step<DB>, sqlx::Error>>,
        // Where to mark the connection cut: closed when dropped, never reused.
        cut: &'e mut Option<BudgetExceeded>,
        // `None` once the query ended: the stream is over.
        op: Option<Operation>,
        #[pin]
        timer: Option<tokio::time::Sleep>,
        rows: u64,
        rows_left: Option<u64>,
    }

    impl<'e, DB: Database> PinnedDrop for Measured<'e, DB> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped halfway: what it returned counts, and it counts as a
            // success (dropped, not finished: maybe cancelled from outside
            // the code that ran it).
            let this = this.project();
            if let Some(op) = this.op.take() {
                op.add_rows(*this.rows);
                drop(op);
            }
        }
    }
}

impl<DB: Database> Stream for Measured<'_, DB> {
    type Item = Result<Step<DB>, sqlx::Error>;

    // Inlined into the pool's query stream, which polls it once per row.
    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        if this.op.is_none() {
            return Poll::Ready(None);
        }
        let step = match this.steps.as_mut().poll_next(cx) {
            Poll::Ready(step) => step,
            Poll::Pending => {
                if !this.timer.as_pin_mut().is_some_and(|t| t.poll(cx).is_ready()) {
                    return Poll::Pending;
                }
                let Some(op) = this.op.take() else { return Poll::Ready(None) };
                op.add_rows(*this.rows);
                return Poll::Ready(Some(Err(cut(this.cut, op.expire()))));
            }
        };
        match step {
            Some(Ok(step)) => {
                if matches!(step, Either::Right(_)) {
                    *this.rows += 1;
                    if this.rows_left.is_some_and(|left| *this.rows > left)
                        && let Some(op) = this.op.take()
                    {
                        return Poll::Ready(Some(Err(cut(this.cut, op.exceed_rows(*this.rows)))));
                    }
                }
                Poll::Ready(Some(Ok(step)))
            }
            Some(Err(e)) => {
                let result = Err(e);
                end(this.op, *this.rows, &result);
                Poll::Ready(Some(result))
            }
            None => {
                end(this.op, *this.rows, &Ok(()));
                Poll::Ready(None)
            }
        }
    }
}

fn end<T>(op: &mut Option<Operation>, rows: u64, result: &Result<T, sqlx::Error>) {
    if let Some(op) = op.take() {
        op.add_rows(rows);
        settle(op, result);
    }
}

/// Marks the connection cut (it may be mid-reply: it is closed, not
/// reused, so the server stops too) and returns the query's error.
pub(crate) fn cut(slot: &mut Option<BudgetExceeded>, exceeded: BudgetExceeded) -> sqlx::Error {
    *slot = Some(exceeded.clone());
    budget_error(exceeded)
}

pub(crate) fn fetch_many<'e, DB>(
    conn: &'e mut Connection<DB>,
    query: Rebuilt<DB>,
) -> BoxStream<'e, Result<Step<DB>, sqlx::Error>>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    match measured::<DB>(conn, query) {
        Ok(steps) => Box::pin(steps),
        Err(e) => Box::pin(futures_util::stream::once(async move { Err(e) })),
    }
}

/// Issues the query on `conn` and starts its measured steps; the error
/// refuses it before it reaches the database.
pub(crate) fn measured<'e, DB>(
    conn: &'e mut Connection<DB>,
    query: Rebuilt<DB>,
) -> Result<Measured<'e, DB>, sqlx::Error>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    let op = issue(conn, query.text())?.values(query.values());
    let timer = op.time_limit().map(tokio::time::sleep);
    let rows_left = op.rows_left();
    let Connection { raw, cut, .. } = conn;
    let steps = (&mut **raw).fetch_many(query);
    Ok(Measured { steps, cut, op: Some(op), timer, rows: 0, rows_left })
}

pub(crate) fn fetch_optional<'e, DB>(
    conn: &'e mut Connection<DB>,
    query: Rebuilt<DB>,
) -> BoxFuture<'e, Result<Option<DB::Row>, sqlx::Error>>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    Box::pin(async move {
        let op = issue(conn, query.text())?.values(query.values());
        let rows_left = op.rows_left();
        let result = match op.time_limit() {
            Some(limit) => match tokio::time::timeout(limit, conn.raw().fetch_optional(query)).await {
                Ok(result) => result,
                Err(_elapsed) => return Err(cut(&mut conn.cut, op.expire())),
            },
            None => conn.raw().fetch_optional(query).await,
        };
        let rows = u64::from(matches!(result, Ok(Some(_))));
        if rows_left.is_some_and(|left| rows > left) {
            return Err(cut(&mut conn.cut, op.exceed_rows(rows)));
        }
        op.add_rows(rows);
        settle(op, &result);
        result
    })
}

/// Acquires from the pool, recording the wait apart from query time.
pub(crate) async fn acquire<DB: Backend>(pool: &sqlx::Pool<DB>) -> Result<Connection<DB>, sqlx::Error> {
    let asked = Instant::now();
    waited(asked, pool.acquire().await)
}

/// A checkout asked for at `asked` ended: its wait is recorded.
pub(crate) fn waited<DB: Backend>(
    asked: Instant,
    raw: Result<sqlx::pool::PoolConnection<DB>, sqlx::Error>,
) -> Result<Connection<DB>, sqlx::Error> {
    instrument::record_wait(asked.elapsed());
    Ok(Connection::new(raw?))
}
