//! One run of a job inside its own budget scope: the same figures, modes
//! and reports as a request, whatever runs the job.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use crate::tracker::boundary::{Boundary, Ended};
use crate::tracker::budget::Kind;
use crate::tracker::error::BudgetExceeded;
use crate::tracker::report::Outcome;
use crate::tracker::scope::{Asked, Scope, Spec};

/// Why a job's run ended without its output.
#[derive(Debug)]
pub enum Stopped {
    /// `enforce` cut it: a budget was blown or the deadline passed.
    Exceeded(BudgetExceeded),
    /// It panicked; the message, when it was a string.
    Panicked(String),
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stopped::Exceeded(e) => write!(f, "job stopped: {e}"),
            Stopped::Panicked(message) => write!(f, "job panicked: {message}"),
        }
    }
}

impl std::error::Error for Stopped {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Stopped::Exceeded(e) => Some(e),
            Stopped::Panicked(_) => None,
        }
    }
}

/// Opens a job's scope: a boundary whose `#[zen]` fn (the job function)
/// tightens it rather than opening its own.
pub(crate) fn open(name: Cow<'static, str>, attempt: u32, defaults: Asked) -> Arc<Scope> {
    Scope::open(Spec {
        name,
        method: None,
        kind: Some(Kind::Job),
        asked: defaults,
        collector: None,
        adoptable: true,
        attempt: Some(attempt),
        caller_time_left: None,
    })
}

/// Runs `make` inside `scope`, so that a `#[zen]` job fn it calls is adopted.
pub(crate) fn start<F>(scope: Arc<Scope>, make: impl FnOnce() -> F) -> Run<F> {
    Run { work: Boundary::start(scope, make) }
}

pin_project_lite::pin_project! {
    /// A job's future in its scope: cut in `enforce`, a panic caught and
    /// turned into [`Stopped::Panicked`], one report when it ends (or
    /// `cancelled` when dropped unfinished).
    pub(crate) struct Run<F> {
        #[pin]
        work: Boundary<F>,
    }
}

impl<F: Future> Future for Run<F> {
    type Output = Result<F::Output, Stopped>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut work = self.project().work;
        let (outcome, result) = match ready!(work.as_mut().poll_work(cx)) {
            // A job that got to its end is done, even past its budget (the
            // report says so): failing it then would run its effects again.
            Ended::Done(output) => (Outcome::Ok, Ok(output)),
            Ended::Cut(exceeded) => (Outcome::Exceeded, Err(Stopped::Exceeded(exceeded))),
            Ended::Panicked(payload) => {
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a non-string payload".to_owned());
                (Outcome::Panicked, Err(Stopped::Panicked(message)))
            }
        };
        work.finish(outcome);
        Poll::Ready(result)
    }
}
