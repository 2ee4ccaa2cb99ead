//! The work of a boundary (an HTTP request under the layer, a job under a
//! runner) inside the scope the boundary opened: polled in the scope, cut
//! in `enforce`, a panic caught, and exactly one report when it ends.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::error::BudgetExceeded;
use crate::report::Outcome;
use crate::scope::{Receiver, Role, Scope, enter};

/// How a boundary's work ended.
pub(crate) enum Ended<T> {
    /// It completed with this output.
    Done(T),
    /// `enforce` cut it: a budget was blown or the deadline passed.
    Cut(BudgetExceeded),
    /// It panicked, with this payload.
    Panicked(Box<dyn Any + Send>),
}

pin_project_lite::pin_project! {
    /// Work inside a boundary's scope. Once [`poll_work`](Self::poll_work)
    /// is ready, the caller ends the scope with [`finish`](Self::finish);
    /// dropped before that, the scope ends `cancelled` (the client went
    /// away, a runner's shutdown gave up on it).
    pub(crate) struct Boundary<F> {
        #[pin]
        work: Option<F>,
        scope: Arc<Scope>,
        timer: Option<Pin<Box<tokio::time::Sleep>>>,
    }

    impl<F> PinnedDrop for Boundary<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if this.work.is_some() {
                drop_work(this.scope, this.work.as_mut());
                // Never panics from a drop (`strict`): it could abort the process.
                this.scope.end(Outcome::Cancelled, Receiver::Everyone, false);
            }
        }
    }
}

impl<F> Boundary<F> {
    /// Makes the work inside the scope: a service may start it in `call`
    /// already, and a `#[zen]` fn called there is adopted as the handler.
    #[inline]
    pub(crate) fn start(scope: Arc<Scope>, make: impl FnOnce() -> F) -> Self {
        let work = enter(Some(&scope), Role::Own, make);
        Boundary { work: Some(work), scope, timer: None }
    }

    #[cfg(feature = "tower")]
    pub(crate) fn scope(&self) -> &Arc<Scope> {
        &self.scope
    }

    /// Drops `value` inside the scope, so that what it frees is the scope's.
    #[cfg(feature = "tower")]
    pub(crate) fn drop_in_scope<T>(&self, value: T) {
        enter(Some(&self.scope), Role::Carried, || drop(value));
    }

    /// Ends the scope after [`poll_work`](Self::poll_work) was ready: seals
    /// it and reports it once. Returns the boundary's time.
    #[inline]
    pub(crate) fn finish(&self, outcome: Outcome) -> Duration {
        self.scope.end(outcome, Receiver::Everyone, true)
    }

    /// Delivers the report of a scope the caller sealed itself, and then
    /// read the figures of.
    #[cfg(feature = "tower")]
    pub(crate) fn deliver(&self, figures: &crate::report::Figures) {
        self.scope.deliver_figures(Receiver::Everyone, true, Some(figures));
    }
}

impl<F: Future> Boundary<F> {
    /// Polls the work inside the scope. When it ends, is cut or panics, it
    /// is dropped inside the scope before this returns ready.
    #[inline]
    pub(crate) fn poll_work(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Ended<F::Output>> {
        let mut this = self.project();
        let Some(work) = this.work.as_mut().as_pin_mut() else {
            panic!("a zen boundary was polled after its work ended");
        };
        let start = Instant::now();
        let poll = enter(Some(this.scope), Role::Own, || catch_unwind(AssertUnwindSafe(|| work.poll(cx))));
        this.scope.record_poll(start.elapsed());
        let ended = match poll {
            Ok(Poll::Ready(output)) => Ended::Done(output),
            Ok(Poll::Pending) => match crate::future::poll_cut(this.scope, this.timer, cx) {
                None => return Poll::Pending,
                Some(exceeded) => Ended::Cut(exceeded),
            },
            Err(payload) => {
                this.scope.mark_panicked();
                Ended::Panicked(payload)
            }
        };
        drop_work(this.scope, this.work.as_mut());
        Poll::Ready(ended)
    }
}

/// Drops the work inside the scope, and keeps a panic in its destructor here.
fn drop_work<F>(scope: &Arc<Scope>, mut work: Pin<&mut Option<F>>) {
    enter(Some(scope), Role::Carried, || {
        let _ = catch_unwind(AssertUnwindSafe(|| work.set(None)));
    });
}
