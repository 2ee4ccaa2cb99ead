//! Background jobs under the same budgets as requests.
//!
//! A job fn takes the same `#[zen(...)]` as a handler; run by a zen runner,
//! each run is a scope of kind `job`, named by the job, whose report
//! carries its **attempt number** and goes to the same `tracing` target and
//! sinks as requests'. Two runners:
//!
//! - [`Jobs`] (no feature): in-process, fire-and-forget work started from a
//!   handler, for work that may be lost with the process.
//! - [`apalis::ZenJobLayer`] (feature `apalis`): durable jobs. zen does not
//!   write a queue: apalis 1.0's workers are tower services, which the
//!   layer wraps, on apalis's SQLite storage (embedded) or PostgreSQL
//!   storage (many workers on many machines sharing one queue).
//!
//! # In-process jobs
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use zen_runtime::jobs::Jobs;
//! use zen_runtime::{Limits, zen};
//!
//! #[zen(max_queries = 20, max_db_ms = 500, timeout_ms = 30_000)]
//! async fn send_welcome(user: u64) -> Result<(), std::io::Error> {
//!     Ok(())
//! }
//!
//! let jobs = Jobs::builder().capacity(1_000).concurrency(8).limits(Limits::NONE.timeout_ms(60_000)).start()?;
//! // In a handler (`Jobs` is cheap to clone: keep it in the app state):
//! // answer now, do the work in the background.
//! jobs.spawn("send_welcome", move || send_welcome(42))?; // Err(JobError::QueueFull { .. }) when full
//! // On SIGTERM: running jobs get at most 10 s.
//! let shutdown = jobs.shutdown(Duration::from_secs(10)).await;
//! assert!(shutdown.abandoned.is_empty());
//! # Ok(()) }
//! ```
//!
//! - The queue is bounded: a full queue is an error the handler sees
//!   ([`JobError::QueueFull`]: answer `503` or shed the work), never
//!   unbounded memory. At most `concurrency` jobs run at once.
//! - Each job runs in a scope of its own, not the request's that queued it:
//!   the closure is called when the job starts, inside the job's scope, so
//!   a `#[zen]` job fn it calls is that job's budget (write
//!   `move || send_welcome(id)`, not `send_welcome(id)`, which the
//!   signature refuses anyway). The runner's [`limits`](JobsBuilder::limits)
//!   are every job's default; a job fn's `#[zen]` tightens them, as a
//!   handler's does under the layer. [`mode`](JobsBuilder::mode)`(Mode::Enforce)`
//!   cuts a job at its deadline or blown budget.
//! - A job that returns `Err` or panics is logged at WARN (the report of
//!   one that panicked says `panicked`); the runner goes on.
//! - [`Jobs::shutdown`]`(grace)` stops taking jobs, runs what is queued and
//!   running for at most `grace`, then drops what is left and returns
//!   [`Shutdown`]` { finished, abandoned }`, naming each abandoned job (also
//!   logged at WARN; a dropped running job leaves a `cancelled` report).
//!   Nothing is lost silently.

#[cfg(feature = "apalis")]
pub mod apalis;
mod run;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use crate::tracker::budget::{Limits, Mode};
use crate::tracker::scope::Asked;
pub use run::Stopped;

/// What a job returns: `()`, or a `Result` whose error is logged as the
/// job's failure.
#[diagnostic::on_unimplemented(
    message = "a background job must return `()` or `Result<T, E>` with `E: Display`, not `{Self}`",
    label = "returned by this job"
)]
pub trait JobOutput: Send + 'static {
    /// The failure to log, if the job failed.
    fn failure(&self) -> Option<String>;
}

impl JobOutput for () {
    fn failure(&self) -> Option<String> {
        None
    }
}

impl<T: Send + 'static, E: fmt::Display + Send + 'static> JobOutput for Result<T, E> {
    fn failure(&self) -> Option<String> {
        self.as_ref().err().map(ToString::to_string)
    }
}

/// Why a job was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobError {
    /// The queue holds `capacity` jobs waiting to start: shed the work, or
    /// answer 503, rather than grow memory without bound.
    QueueFull {
        /// The queue's capacity.
        capacity: usize,
    },
    /// [`Jobs::shutdown`] has begun: nothing new starts.
    ShuttingDown,
    /// [`JobsBuilder::start`] was called outside a tokio runtime.
    NoRuntime,
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::QueueFull { capacity } => {
                write!(f, "the background job queue is full ({capacity} jobs waiting); try again later")
            }
            JobError::ShuttingDown => f.write_str("background jobs are shutting down; no new job starts"),
            JobError::NoRuntime => f.write_str("background jobs need a tokio runtime: start them from async code"),
        }
    }
}

impl std::error::Error for JobError {}

/// What [`Jobs::shutdown`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shutdown {
    /// Jobs that ended (completed, failed or were cut) during the shutdown.
    pub finished: u64,
    /// Jobs still running at the end of the grace period, dropped (each
    /// leaves a `cancelled` report), and jobs still queued, never started.
    /// Each is also logged at WARN.
    pub abandoned: Vec<String>,
}

type BoxedJob = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

struct Queued {
    name: Cow<'static, str>,
    job: BoxedJob,
}

/// Configures [`Jobs`].
#[derive(Debug, Clone)]
#[must_use]
pub struct JobsBuilder {
    capacity: usize,
    concurrency: usize,
    defaults: Asked,
}

impl JobsBuilder {
    /// Jobs that may wait to start (default 1024); one more is refused.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// Jobs that may run at once (default 4).
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// The default budget of every job; a job's `#[zen]` tightens it.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.defaults.limits = limits;
        self
    }

    /// The mode of every job, instead of `ZEN_MODE`'s.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.defaults.mode = Some(mode);
        self
    }

    /// Starts the runner on the current tokio runtime.
    ///
    /// # Errors
    /// [`JobError::NoRuntime`] outside a tokio runtime.
    pub fn start(self) -> Result<Jobs, JobError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| JobError::NoRuntime)?;
        let (queue, waiting) = mpsc::channel(self.capacity);
        let (control, commands) = mpsc::channel(1);
        runtime.spawn(dispatch(waiting, commands, self.concurrency, self.defaults));
        Ok(Jobs { queue, control, capacity: self.capacity })
    }
}

/// In-process background jobs: a bounded queue, a concurrency limit, each
/// job in a budget scope of its own (not the request's that started it),
/// and a graceful shutdown. Cheap to clone: put it in your app state.
#[derive(Clone)]
pub struct Jobs {
    queue: mpsc::Sender<Queued>,
    control: mpsc::Sender<(Duration, oneshot::Sender<Shutdown>)>,
    capacity: usize,
}

impl fmt::Debug for Jobs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jobs").field("capacity", &self.capacity).finish_non_exhaustive()
    }
}

impl Jobs {
    /// A builder: capacity 1024, concurrency 4, no default limits.
    pub fn builder() -> JobsBuilder {
        JobsBuilder { capacity: 1024, concurrency: 4, defaults: Asked::default() }
    }

    /// Queues a job. `job` is called when the job starts, inside its scope,
    /// so a `#[zen]` job fn it calls is held to that scope (write
    /// `move || send_welcome(id)`, not `send_welcome(id)`).
    ///
    /// # Errors
    /// [`JobError::QueueFull`] when `capacity` jobs are waiting;
    /// [`JobError::ShuttingDown`] once [`shutdown`](Self::shutdown) began.
    pub fn spawn<F, Fut>(&self, name: impl Into<Cow<'static, str>>, job: F) -> Result<(), JobError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: JobOutput,
    {
        let name = name.into();
        let label = name.clone();
        let job: BoxedJob = Box::new(move || {
            Box::pin(async move {
                if let Some(failure) = job().await.failure() {
                    tracing::warn!(target: "zen", job = %label, %failure, "zen background job failed");
                }
            })
        });
        self.queue.try_send(Queued { name, job }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => JobError::QueueFull { capacity: self.capacity },
            mpsc::error::TrySendError::Closed(_) => JobError::ShuttingDown,
        })
    }

    /// Stops taking jobs, runs what is queued and running for at most
    /// `grace`, then drops what is left and says what it abandoned. A job
    /// that blocks its thread (no `.await` to stop at) cannot be dropped: it
    /// is listed as abandoned and left running, and the shutdown returns at
    /// most 100 ms after `grace`. Called again, or from another clone, it
    /// returns an empty [`Shutdown`]. Without a shutdown, dropping every
    /// handle lets the runner finish what is queued and end.
    pub async fn shutdown(&self, grace: Duration) -> Shutdown {
        let (reply, done) = oneshot::channel();
        if self.control.send((grace, reply)).await.is_err() {
            return Shutdown::default();
        }
        done.await.unwrap_or_default()
    }
}

/// The runner: starts queued jobs while fewer than `concurrency` run, until
/// told to shut down; once every handle is gone, it runs what is queued and
/// ends with the last job.
async fn dispatch(
    mut waiting: mpsc::Receiver<Queued>,
    mut commands: mpsc::Receiver<(Duration, oneshot::Sender<Shutdown>)>,
    concurrency: usize,
    defaults: Asked,
) {
    let mut running = JoinSet::new();
    let mut names = HashMap::new();
    let (mut controlled, mut queue_open) = (true, true);
    loop {
        tokio::select! {
            biased;
            command = commands.recv(), if controlled => match command {
                Some((grace, reply)) => {
                    let report = drain(&mut waiting, &mut running, &mut names, concurrency, defaults, grace).await;
                    let _ = reply.send(report);
                    commands.close();
                    return;
                }
                // Every handle is gone: nobody can ask for a shutdown.
                None => controlled = false,
            },
            Some(ended) = running.join_next_with_id() => {
                names.remove(&task_id(ended));
            }
            job = waiting.recv(), if queue_open && running.len() < concurrency => match job {
                Some(job) => start(job, &mut running, &mut names, defaults),
                None => queue_open = false,
            },
            else => return,
        }
    }
}

/// The task of a job that ended, however it ended.
fn task_id(ended: Result<(tokio::task::Id, ()), tokio::task::JoinError>) -> tokio::task::Id {
    ended.map_or_else(|e| e.id(), |(id, ())| id)
}

fn start(
    job: Queued,
    running: &mut JoinSet<()>,
    names: &mut HashMap<tokio::task::Id, Cow<'static, str>>,
    defaults: Asked,
) {
    let scope = run::open(job.name.clone(), 1, defaults);
    let name = job.name.clone();
    let handle = running.spawn(async move {
        let run = run::start(scope, job.job);
        if let Err(stopped) = run.await {
            tracing::warn!(target: "zen", job = %name, %stopped, "zen background job stopped");
        }
    });
    names.insert(handle.id(), job.name);
}

/// How long a shutdown waits, past its grace period, for the jobs it
/// aborted to let go: a job blocking its thread cannot be stopped, and is
/// left to run detached rather than hold the shutdown.
const ABORT_WAIT: Duration = Duration::from_millis(100);

/// Shutdown: no new job is accepted; queued and running ones go on until
/// none is left or `grace` runs out.
async fn drain(
    waiting: &mut mpsc::Receiver<Queued>,
    running: &mut JoinSet<()>,
    names: &mut HashMap<tokio::task::Id, Cow<'static, str>>,
    concurrency: usize,
    defaults: Asked,
    grace: Duration,
) -> Shutdown {
    waiting.close();
    // Jobs that ended before the shutdown are not its doing.
    while let Some(ended) = running.try_join_next_with_id() {
        names.remove(&task_id(ended));
    }
    let deadline = tokio::time::sleep(grace);
    tokio::pin!(deadline);
    let mut report = Shutdown::default();
    let mut queued = true;
    while queued || !running.is_empty() {
        tokio::select! {
            biased;
            () = &mut deadline => break,
            Some(ended) = running.join_next_with_id() => {
                names.remove(&task_id(ended));
                report.finished += 1;
            }
            job = waiting.recv(), if queued && running.len() < concurrency => match job {
                Some(job) => start(job, running, names, defaults),
                None => queued = false,
            },
            else => break,
        }
    }
    // Dropping a running job ends its scope with a `cancelled` report; one
    // that ends on its own meanwhile is not abandoned.
    running.abort_all();
    let _ = tokio::time::timeout(ABORT_WAIT, async {
        while let Some(ended) = running.join_next_with_id().await {
            if let Ok((id, ())) = ended {
                names.remove(&id);
                report.finished += 1;
            }
        }
    })
    .await;
    running.detach_all();
    let queued = std::iter::from_fn(|| waiting.try_recv().ok()).map(|job| job.name);
    for name in names.drain().map(|(_, name)| name).chain(queued) {
        tracing::warn!(target: "zen", job = %name, ?grace, "zen background job abandoned at shutdown");
        report.abandoned.push(name.into_owned());
    }
    report
}
