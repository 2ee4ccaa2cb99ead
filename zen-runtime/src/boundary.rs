//! The work of a boundary (an HTTP request under the layer, a job under a
//! runner) inside the scope the boundary opened: polled in the scope, cut
//! in `enforce`, a panic caught, and exactly one report when it ends.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::error::BudgetExceeded;
use crate::report::Outcome;
use crate::scope::{Enter, Scope};

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
                end(this.scope, Outcome::Cancelled);
            }
        }
    }
}

impl<F> Boundary<F> {
    /// Makes the work inside the scope: a service may start it in `call`
    /// already, and a `#[zen]` fn called there is adopted as the handler.
    #[inline]
    pub(crate) fn start(scope: Arc<Scope>, make: impl FnOnce() -> F) -> Self {
        let enter = Enter::new(&scope);
        let work = make();
        enter.exit();
        Boundary { work: Some(work), scope, timer: None }
    }

    #[cfg(feature = "tower")]
    pub(crate) fn scope(&self) -> &Arc<Scope> {
        &self.scope
    }

    /// Drops `value` inside the scope, so that what it frees is the scope's.
    #[cfg(feature = "tower")]
    pub(crate) fn drop_in_scope<T>(&self, value: T) {
        let enter = Enter::carry(Some(&self.scope));
        drop(value);
        enter.exit();
    }

    /// Ends the scope after [`poll_work`](Self::poll_work) was ready: seals
    /// it and reports it once. Returns the boundary's time.
    #[inline]
    pub(crate) fn finish(&self, outcome: Outcome) -> Duration {
        end(&self.scope, outcome)
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
        let enter = Enter::new(this.scope);
        let poll = catch_unwind(AssertUnwindSafe(|| work.poll(cx)));
        enter.exit();
        let ended = match poll {
            Ok(Poll::Ready(output)) => Ended::Done(output),
            Ok(Poll::Pending) => match crate::future::poll_cut(this.scope, this.timer, cx) {
                None => return Poll::Pending,
                Some(exceeded) => Ended::Cut(exceeded),
            },
            Err(payload) => {
                this.scope.panicked.store(true, Relaxed);
                Ended::Panicked(payload)
            }
        };
        drop_work(this.scope, this.work.as_mut());
        Poll::Ready(ended)
    }
}

/// Drops the work inside the scope, and keeps a panic in its destructor here.
fn drop_work<F>(scope: &Arc<Scope>, mut work: Pin<&mut Option<F>>) {
    let enter = Enter::carry(Some(scope));
    let _ = catch_unwind(AssertUnwindSafe(|| work.set(None)));
    enter.exit();
}

/// Seals a boundary's scope, and builds and delivers its report only when
/// someone receives it or it must be warned about (as for `#[zen]` scopes).
fn end(scope: &Scope, outcome: Outcome) -> Duration {
    let ended = outcome;
    let outcome = if scope.panicked.load(Relaxed) { Outcome::Panicked } else { outcome };
    let elapsed = scope.elapsed();
    scope.seal(outcome, elapsed);
    if crate::future::unreported(scope, outcome, elapsed) {
        return elapsed;
    }
    if let Some(report) = scope.sealed_report() {
        scope.collect(report);
        crate::report::deliver(report);
        // Never from a drop (`cancelled`): a panic there could abort the process.
        crate::future::strict(scope, report, ended != Outcome::Cancelled);
    }
    elapsed
}
