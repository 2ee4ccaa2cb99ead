//! Running one query on one connection while it reports into the budget:
//! counted when issued, timed until its stream ends or is dropped, cut when
//! its time limit runs out.

use std::time::Instant;

use futures_core::future::BoxFuture;
use futures_core::stream::BoxStream;
use futures_util::StreamExt;
use sqlx::error::BoxDynError;
use sqlx::{Database, Either, Execute, Executor, SqlStr};

use super::{Backend, Connection, budget_error};
use crate::instrument::{self, Operation};

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
/// it reaches the database.
pub(crate) fn issue<DB: Backend>(conn: &Connection<DB>, sql: &str) -> Result<Operation, sqlx::Error> {
    if let Some(exceeded) = &conn.cut {
        return Err(budget_error(exceeded.clone()));
    }
    instrument::query(DB::NAME, sql).map_err(budget_error)
}

type Step<DB> = Either<<DB as Database>::QueryResult, <DB as Database>::Row>;

pub(crate) fn fetch_many<'e, DB>(
    conn: &'e mut Connection<DB>,
    query: Rebuilt<DB>,
) -> BoxStream<'e, Result<Step<DB>, sqlx::Error>>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    let op = match issue(conn, query.text()) {
        Ok(op) => op,
        Err(e) => return futures_util::stream::once(async move { Err(e) }).boxed(),
    };
    Box::pin(async_stream::stream! {
        let mut timer = op.time_limit().map(|limit| Box::pin(tokio::time::sleep(limit)));
        let mut op = Some(op);
        let mut expired = false;
        {
            let mut steps = conn.raw().fetch_many(query);
            loop {
                let next = match timer.as_mut() {
                    Some(timer) => tokio::select! {
                        biased;
                        next = steps.next() => next,
                        () = timer.as_mut() => { expired = true; break; }
                    },
                    None => steps.next().await,
                };
                match next {
                    Some(Ok(step)) => yield Ok(step),
                    Some(Err(e)) => {
                        if let Some(op) = op.take() { op.finish(false); }
                        yield Err(e);
                        break;
                    }
                    None => break,
                }
            }
        }
        match op.take() {
            Some(op) if expired => yield Err(conn.cut(op)),
            Some(op) => op.finish(true),
            None => {}
        }
    })
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
        let op = issue(conn, query.text())?;
        let result = match op.time_limit() {
            Some(limit) => match tokio::time::timeout(limit, conn.raw().fetch_optional(query)).await {
                Ok(result) => result,
                Err(_elapsed) => return Err(conn.cut(op)),
            },
            None => conn.raw().fetch_optional(query).await,
        };
        op.finish(result.is_ok());
        result
    })
}

/// Acquires from the pool, recording the wait apart from query time.
pub(crate) async fn acquire<DB: Backend>(pool: &sqlx::Pool<DB>) -> Result<Connection<DB>, sqlx::Error> {
    let start = Instant::now();
    let raw = pool.acquire().await;
    instrument::record_wait(start.elapsed());
    Ok(Connection::new(raw?))
}
