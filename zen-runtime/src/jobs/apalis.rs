//! Durable jobs on apalis 1.0: a tower layer for its workers.
//!
//! ```ignore
//! // Needs `apalis` and `apalis-sqlite`, which zen does not depend on.
//! #[zen(max_queries = 20, max_db_ms = 500, max_mem_kb = 4096, timeout_ms = 30_000)]
//! async fn send_welcome(job: Welcome, deps: Data<Deps>) -> Result<(), BoxDynError> { /* ... */ }
//!
//! let worker = WorkerBuilder::new("mailer")
//!     .backend(SqliteStorage::new(&queue_pool).with_config(Config::default().queue("welcome")))
//!     .data(deps)
//!     .layer(ZenJobLayer::new().limits(Limits::NONE.timeout_ms(60_000)).mode(Mode::Enforce))
//!     .build(send_welcome);
//! ```
//!
//! - Each attempt of each job runs in a scope of kind `job`, named by its
//!   queue (`welcome`), with its attempt number; the job fn's `#[zen]`
//!   tightens the layer's default.
//! - In `enforce`, a job cut by its budget **fails its attempt** with
//!   [`Stopped::Exceeded`](super::Stopped) (whose `source()` is
//!   `BudgetExceeded`), and apalis's storage runs it again while attempts
//!   are left (`max_attempts`: 25 by default in apalis's SQL storages; set
//!   it per job with `TaskBuilder::max_attempts`). A panic fails the attempt
//!   the same way, and the worker takes the next job. (apalis records an
//!   attempt's end from inside the job's future; the layer marks a cut or
//!   panicked attempt failed itself, or the storage would keep it
//!   `Running`. A test shows it.)
//! - A job that got to its end past its budget is done, not failed: failing
//!   it then would run its effects again. Its report says `exceeded`.
//! - A worker process killed mid-job (SIGKILL) loses nothing: apalis gives
//!   the job back after the worker misses its heartbeats
//!   (`Config::heartbeat_interval`, `missed_heartbeats`), another worker
//!   runs it, and its report says attempt 2. A test kills a real worker
//!   process to show it.
//! - [`push`]`(&mut storage, job)` enqueues as one operation of the current
//!   scope (backend `apalis`): a handler that enqueues counts it among its
//!   queries, and `enforce` refuses it when the budget is blown.
//!   `storage.push(job)` through apalis's own pool is not counted.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use apalis_core::backend::{TaskSink, TaskSinkError};
use apalis_core::error::BoxDynError;
use apalis_core::task::Task;
use apalis_core::task::status::{AtomicStatus, Status};

use super::run;
use crate::tracker::budget::{Limits, Mode};
use crate::tracker::instrument;
use crate::tracker::scope::Asked;

/// The layer: a default budget for every job of the worker, and the mode.
#[derive(Clone, Debug, Default)]
pub struct ZenJobLayer {
    defaults: Asked,
}

impl ZenJobLayer {
    /// Measures every job and limits nothing (until a job fn's `#[zen]`
    /// does); the mode is `ZEN_MODE`'s.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The default budget of every job; a job fn's `#[zen]` tightens it.
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.defaults.limits = limits;
        self
    }

    /// The mode of every job, instead of `ZEN_MODE`'s; a job fn's `mode`
    /// still wins.
    #[must_use]
    pub fn mode(mut self, mode: Mode) -> Self {
        self.defaults.mode = Some(mode);
        self
    }
}

impl<S> tower_layer::Layer<S> for ZenJobLayer {
    type Service = ZenJobService<S>;

    fn layer(&self, inner: S) -> ZenJobService<S> {
        ZenJobService { inner, defaults: self.defaults }
    }
}

/// The service [`ZenJobLayer`] wraps around a worker's.
#[derive(Clone, Debug)]
pub struct ZenJobService<S> {
    inner: S,
    defaults: Asked,
}

impl<S, Args> tower_service::Service<Task<Args>> for ZenJobService<S>
where
    S: tower_service::Service<Task<Args>>,
    S::Error: Into<BoxDynError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxDynError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxDynError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxDynError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, task: Task<Args>) -> Self::Future {
        let name = match task.queue() {
            Some(queue) => queue.to_string().into(),
            None => std::any::type_name::<Args>().into(),
        };
        // apalis counts the attempt when the job starts, inside this layer.
        let attempt = u32::try_from(task.attempt()).unwrap_or(u32::MAX - 1) + 1;
        let status = task.raw_status().clone();
        let scope = run::open(name, attempt, self.defaults);
        let run = run::start(scope, || self.inner.call(task));
        Box::pin(async move {
            match run.await {
                Ok(result) => result.map_err(Into::into),
                Err(stopped) => {
                    fail(&status);
                    Err(Box::new(stopped) as BoxDynError)
                }
            }
        })
    }
}

/// apalis records how an attempt ended from inside the job's future; one
/// dropped by a cut, or ended by a panic, never got there.
fn fail(status: &AtomicStatus) {
    if matches!(status.load(), Status::Running | Status::Queued | Status::Pending) {
        status.store(Status::Failed);
    }
}

/// Pushes a job onto an apalis storage as one operation of the current
/// scope, so that a handler that enqueues sees it among its queries
/// (backend `"apalis"`, statement `PUSH <job type>`), bounded by the time
/// left, and refused in `enforce` when the budget is blown. (`storage.push`
/// through apalis's own pool is not counted.)
///
/// # Errors
/// The storage's error, or [`BudgetExceeded`](crate::BudgetExceeded) when
/// the budget refused or cut the push; both boxed, as apalis's errors are.
pub async fn push<S, Args, K>(storage: &mut S, job: Args) -> Result<(), BoxDynError>
where
    S: TaskSink<Args, K>,
    TaskSinkError<S::Error>: std::error::Error + Send + Sync + 'static,
{
    let op = instrument::query("apalis", &format!("PUSH {}", std::any::type_name::<Args>()))?;
    let result = match op.time_limit() {
        Some(limit) => match tokio::time::timeout(limit, storage.push(job)).await {
            Ok(result) => result,
            Err(_) => return Err(Box::new(op.expire())),
        },
        None => storage.push(job).await,
    };
    op.finish(result.is_ok());
    result.map_err(|e| Box::new(e) as BoxDynError)
}
