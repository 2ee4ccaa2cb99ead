//! A query run on the pool: a stream that checks a connection out, runs the
//! query on it measured, and returns it to the pool when the query ends.
//! Written by hand rather than as a generator: the stream owns the
//! connection its query borrows, so each row costs one poll of the
//! measured steps and nothing more.

use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use futures_core::Stream;
use futures_core::future::BoxFuture;
use sqlx::Executor;

use super::measure::{self, Measured, Rebuilt, Step};
use super::{Backend, Connection, budget_error};
use crate::tracker::instrument;

/// Refuses before a connection is taken; counts a query that cannot get one
/// as failed (the wait is in `db_wait`).
pub(super) async fn checkout<DB: Backend>(pool: &sqlx::Pool<DB>, sql: &str) -> Result<Connection<DB>, sqlx::Error> {
    admit()?;
    counted(measure::acquire(pool).await, sql)
}

/// The budget's word before a connection is taken.
fn admit() -> Result<(), sqlx::Error> {
    instrument::admit_query().map_err(budget_error)
}

/// A checkout for `sql` that failed counts as a failed query.
fn counted<DB: Backend>(
    acquired: Result<Connection<DB>, sqlx::Error>,
    sql: &str,
) -> Result<Connection<DB>, sqlx::Error> {
    acquired.inspect_err(|_| instrument::record_query(DB::NAME, sql, Duration::ZERO, false))
}

/// A connection on the heap, owned through a pointer so that the query's
/// steps may borrow it while both live in one stream. Its `unsafe` is paid
/// for by the stream it makes possible: about 130 instead of 240
/// instructions per row, and 19.4k of sqlx's pool path saved per query
/// (BENCHMARKS.md, "What was cut in the third session" and the realistic
/// PostgreSQL request's breakdown).
pub(super) struct Owned<DB: Backend>(NonNull<Connection<DB>>);

impl<DB: Backend> Owned<DB> {
    fn new(conn: Connection<DB>) -> Self {
        Owned(NonNull::from(Box::leak(Box::new(conn))))
    }
}

impl<DB: Backend> Drop for Owned<DB> {
    fn drop(&mut self) {
        // SAFETY: the pointer came from `Box::leak` in `new` and is freed
        // only here; whatever borrowed the connection is dropped before
        // (see `Query::Running`).
        drop(unsafe { Box::from_raw(self.0.as_ptr()) });
    }
}

// SAFETY: `Owned` owns its connection as a `Box` would, and a `Box` of a
// `Send` connection is `Send`.
unsafe impl<DB: Backend> Send for Owned<DB> where Connection<DB>: Send {}

/// sqlx's checkout, a future of kilobytes, boxed (see [`in_place`]) so
/// that the stream's changes of state do not move it.
type Acquire<DB> = BoxFuture<'static, Result<sqlx::pool::PoolConnection<DB>, sqlx::Error>>;

/// Boxes what `make` returns with the box allocated first, so that the
/// optimiser can build the value in the box instead of on the stack and
/// copy it there. Not guaranteed, but measured: `Box::pin(make())` copied
/// sqlx's checkout (8.7k instructions per query), this does not.
fn in_place<F>(make: impl FnOnce() -> F) -> Pin<Box<F>> {
    Box::into_pin(Box::write(Box::new_uninit(), make()))
}

pin_project_lite::pin_project! {
    /// The steps of one query on the pool.
    #[project = QueryProj]
    pub(super) enum Query<DB: Backend> {
        /// Admitted on the first poll (`asked` is when), then waiting for
        /// a connection.
        Checkout { acquire: Acquire<DB>, query: Option<Rebuilt<DB>>, asked: Option<Instant> },
        /// Its steps borrow `conn` for as long as the stream lives (hence
        /// `'static`): declared first, they are dropped first.
        Running { #[pin] steps: Measured<'static, DB>, conn: Owned<DB> },
        /// Ended: the connection is back in the pool.
        Done,
    }
}

/// The query's stream; nothing runs before it is polled.
pub(super) fn query<DB: Backend>(pool: &sqlx::Pool<DB>, query: Rebuilt<DB>) -> Query<DB> {
    Query::Checkout { acquire: in_place(|| pool.acquire()), query: Some(query), asked: None }
}

impl<DB> Stream for Query<DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    type Item = Result<Step<DB>, sqlx::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match self.as_mut().project() {
                QueryProj::Checkout { acquire, query, asked } => {
                    // The same steps as `checkout`, around sqlx's future in
                    // its box.
                    let asked = match *asked {
                        Some(asked) => asked,
                        None => {
                            if let Err(refused) = admit() {
                                self.set(Query::Done);
                                return Poll::Ready(Some(Err(refused)));
                            }
                            *asked.insert(Instant::now())
                        }
                    };
                    let raw = ready!(acquire.as_mut().poll(cx));
                    let Some(query) = query.take() else {
                        self.set(Query::Done);
                        return Poll::Ready(None);
                    };
                    let conn = match counted(measure::waited(asked, raw), query.text()) {
                        Ok(conn) => Owned::new(conn),
                        Err(e) => {
                            self.set(Query::Done);
                            return Poll::Ready(Some(Err(e)));
                        }
                    };
                    // SAFETY: the connection stays where it is until `conn`
                    // is dropped, which `Running` does after the steps;
                    // nothing else reaches it meanwhile.
                    let borrowed = unsafe { &mut *conn.0.as_ptr() };
                    match measure::measured::<DB>(borrowed, query) {
                        Ok(steps) => self.set(Query::Running { steps, conn }),
                        Err(refused) => {
                            self.set(Query::Done);
                            return Poll::Ready(Some(Err(refused)));
                        }
                    }
                }
                QueryProj::Running { steps, .. } => {
                    let step = ready!(steps.poll_next(cx));
                    if step.is_none() {
                        // Ended: the connection goes back now, not when the
                        // stream is dropped.
                        self.set(Query::Done);
                    }
                    return Poll::Ready(step);
                }
                QueryProj::Done => return Poll::Ready(None),
            }
        }
    }
}
