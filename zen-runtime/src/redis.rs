//! A Redis connection whose commands report into the current budget, as
//! their own backend (`"redis"`) beside the SQL ones.
//!
//! Wrap any `redis::aio::ConnectionLike` (a `MultiplexedConnection`, a
//! `ConnectionManager`) and use it as before: every command and pipeline is
//! one operation of the backend `"redis"`, in the same budget as SQL
//! (`max_queries`, `max_db_ms`), named by its command (`GET`,
//! `PIPELINE GET SET`; never its keys or values), timed, refused in
//! `enforce` once the budget is spent, and given at most the time left.
//! [`as_budget_exceeded`] finds the budget in the error of a refused or cut
//! command. A command that is not one of Redis's reads (a pipeline, when
//! any of its commands is not) may write: it counts in what a refused
//! request says of its writes ([`Writes`](crate::report::Writes)).
//!
//! ```no_run
//! # async fn demo() -> redis::RedisResult<()> {
//! use redis::AsyncCommands;
//!
//! let client = redis::Client::open("redis://127.0.0.1:6379")?;
//! let mut redis = zen_runtime::redis::Connection::new(client.get_multiplexed_async_connection().await?);
//! let _: () = redis.set("greeting", "hello").await?;
//! # Ok(()) }
//! ```
//!
//! A command cut by its time limit is abandoned by the client; Redis still
//! runs it (commands are short, and blocking ones end at their own timeout).

use std::io;

use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Value};

use crate::tracker::error::BudgetExceeded;
use crate::tracker::instrument::{self, Operation};

/// The backend name in reports.
pub const BACKEND: &str = "redis";

/// A Redis connection that reports into the current budget.
#[derive(Debug, Clone)]
pub struct Connection<C> {
    inner: C,
}

impl<C> Connection<C> {
    /// Wraps a connection.
    pub fn new(inner: C) -> Self {
        Connection { inner }
    }

    /// The connection underneath; commands sent on it are not counted.
    pub fn into_inner(self) -> C {
        self.inner
    }
}

/// The error of a refused or cut command: an I/O error of kind `TimedOut`
/// (so redis' own `is_timeout` says true) carrying the [`BudgetExceeded`];
/// [`as_budget_exceeded`] finds it.
#[must_use]
pub fn budget_error(exceeded: BudgetExceeded) -> RedisError {
    RedisError::from(io::Error::new(io::ErrorKind::TimedOut, exceeded))
}

/// The [`BudgetExceeded`] inside a `RedisError`, if a budget caused it.
#[must_use]
pub fn as_budget_exceeded(error: &RedisError) -> Option<&BudgetExceeded> {
    type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
    // redis keeps the I/O error behind an `Arc<dyn Error>`.
    let mut layer: &(dyn std::error::Error + 'static) = std::error::Error::source(error)?;
    loop {
        if let Some(shared) = layer.downcast_ref::<Shared>() {
            layer = &**shared;
        } else if let Some(io) = layer.downcast_ref::<io::Error>() {
            return io.get_ref()?.downcast_ref::<BudgetExceeded>();
        } else {
            return layer.downcast_ref::<BudgetExceeded>();
        }
    }
}

/// The command's name (`GET`, `JSON.GET`): its first argument, if it looks
/// like a command; `?` otherwise, so that a value passed first never shows.
fn name(cmd: &Cmd) -> String {
    match cmd.args_iter().next() {
        Some(redis::Arg::Simple(name))
            if (1..=32).contains(&name.len())
                && name.iter().all(|b| b.is_ascii_alphabetic() || matches!(b, b'.' | b'_' | b'-')) =>
        {
            String::from_utf8_lossy(name).to_ascii_uppercase()
        }
        _ => "?".to_owned(),
    }
}

/// What Redis answered: an error reply arrives as a value, and the command
/// (every command of a pipeline) failed with it, taking no effect.
trait Answer {
    fn failed(&self) -> bool;
}

impl Answer for Value {
    fn failed(&self) -> bool {
        matches!(self, Value::ServerError(_))
    }
}

impl Answer for Vec<Value> {
    fn failed(&self) -> bool {
        !self.is_empty() && self.iter().all(Answer::failed)
    }
}

/// The arguments of a command or of a pipeline's, for
/// [`Operation::values`]: hashed, never kept.
enum Args<'a> {
    One(&'a Cmd),
    Pipeline(&'a Pipeline),
}

impl Args<'_> {
    fn each(&self, f: &mut dyn FnMut(&Cmd)) {
        match self {
            Args::One(cmd) => f(cmd),
            Args::Pipeline(pipeline) => pipeline.cmd_iter().for_each(f),
        }
    }

    /// A scan's pages differ by a cursor kept apart from the arguments:
    /// never give such a command's arguments, whose pages would look alike.
    fn scans(&self) -> bool {
        let mut scans = false;
        self.each(&mut |cmd| scans |= cmd.in_scan_mode());
        scans
    }
}

impl std::fmt::Debug for Args<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut list = f.debug_list();
        self.each(&mut |cmd| {
            for arg in cmd.args_iter() {
                if let redis::Arg::Simple(bytes) = arg {
                    list.entry(&bytes);
                }
            }
        });
        list.finish()
    }
}

async fn run<T: Answer>(
    statement: &str,
    args: Args<'_>,
    request: impl Future<Output = Result<T, RedisError>>,
) -> Result<T, RedisError> {
    let op: Operation = instrument::query(BACKEND, statement).map_err(budget_error)?;
    let op = if args.scans() { op } else { op.values(&args) };
    let result = match op.time_limit() {
        Some(limit) => match tokio::time::timeout(limit, request).await {
            Ok(result) => result,
            Err(_elapsed) => return Err(budget_error(op.expire())),
        },
        None => request.await,
    };
    match &result {
        // No answer came: a write may have taken effect.
        Err(e) if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() => op.finish(false),
        // Redis answered with an error (a script's may come after it wrote:
        // zen knows `EVAL` may fail halfway).
        Err(_) => op.finish_rejected(),
        Ok(answer) if answer.failed() => op.finish_rejected(),
        Ok(_) => op.finish(true),
    }
    result
}

impl<C: ConnectionLike + Send> ConnectionLike for Connection<C> {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let statement = name(cmd);
            run(&statement, Args::One(cmd), self.inner.req_packed_command(cmd)).await
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            // One round trip, one operation: named by its commands.
            let names: Vec<String> = pipeline.cmd_iter().map(name).collect();
            let statement = format!("PIPELINE {}", names.join(" "));
            run(&statement, Args::Pipeline(pipeline), self.inner.req_packed_commands(pipeline, offset, count)).await
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }
}
