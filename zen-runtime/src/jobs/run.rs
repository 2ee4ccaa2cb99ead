//! One run of a job inside its own budget scope: the same figures, modes
//! and reports as a request, whatever runs the job.

use std::borrow::Cow;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};

use crate::budget::{Kind, Limits, Mode};
use crate::error::BudgetExceeded;
use crate::report::Outcome;
use crate::scope::{Enter, Scope, Spec};

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

/// The terms a runner gives every job it runs.
#[derive(Clone, Debug, Default)]
pub(crate) struct Terms {
    pub(crate) limits: Limits,
    pub(crate) mode: Option<Mode>,
}

/// Opens a job's scope: a boundary whose `#[zen]` fn (the job function)
/// tightens it rather than opening its own.
pub(crate) fn open(name: Cow<'static, str>, attempt: u32, terms: &Terms) -> Arc<Scope> {
    Scope::open(Spec {
        name,
        kind: Some(Kind::Job),
        mode: terms.mode,
        limits: terms.limits,
        n_plus_one: None,
        collector: None,
        adoptable: true,
        attempt: Some(attempt),
    })
}

/// Runs `make` inside `scope`, so that a `#[zen]` job fn it calls is adopted.
pub(crate) fn start<F>(scope: &Arc<Scope>, make: impl FnOnce() -> F) -> Run<F> {
    let enter = Enter::new(scope);
    let inner = make();
    enter.exit();
    Run { inner: Some(inner), scope: Arc::clone(scope), timer: None }
}

pin_project_lite::pin_project! {
    /// A job's future in its scope: cut in `enforce`, a panic caught and
    /// turned into [`Stopped::Panicked`], one report when it ends (or
    /// `cancelled` when dropped unfinished).
    pub(crate) struct Run<F> {
        #[pin]
        inner: Option<F>,
        scope: Arc<Scope>,
        timer: Option<Pin<Box<tokio::time::Sleep>>>,
    }

    impl<F> PinnedDrop for Run<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if this.inner.is_some() {
                drop_inner(this.scope, this.inner.as_mut());
                crate::future::end_boundary(this.scope, Outcome::Cancelled);
            }
        }
    }
}

impl<F: Future> Future for Run<F> {
    type Output = Result<F::Output, Stopped>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            panic!("a zen job future was polled after it completed");
        };
        let enter = Enter::new(this.scope);
        let poll = catch_unwind(AssertUnwindSafe(|| inner.poll(cx)));
        enter.exit();
        let (outcome, result) = match poll {
            // A job that got to its end is done, even past its budget (the
            // report says so): failing it then would run its effects again.
            Ok(Poll::Ready(output)) => (Outcome::Ok, Ok(output)),
            Ok(Poll::Pending) => match crate::future::poll_cut(this.scope, this.timer, cx) {
                None => return Poll::Pending,
                Some(exceeded) => (Outcome::Exceeded, Err(Stopped::Exceeded(exceeded))),
            },
            Err(payload) => {
                this.scope.panicked.store(true, Relaxed);
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a non-string payload".to_owned());
                (Outcome::Panicked, Err(Stopped::Panicked(message)))
            }
        };
        drop_inner(this.scope, this.inner.as_mut());
        crate::future::end_boundary(this.scope, outcome);
        Poll::Ready(result)
    }
}

fn drop_inner<F>(scope: &Arc<Scope>, mut inner: Pin<&mut Option<F>>) {
    let enter = Enter::carry(Some(scope));
    let _ = catch_unwind(AssertUnwindSafe(|| inner.set(None)));
    enter.exit();
}
