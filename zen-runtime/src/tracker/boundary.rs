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

use crate::tracker::error::BudgetExceeded;
use crate::tracker::report::Outcome;
use crate::tracker::scope::{EndAt, Receiver, Role, Scope, enter};

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
        // When the last poll ended (after dropping the work, when it was
        // ready): the boundary's end, once the work has ended.
        polled: Option<Instant>,
    }

    impl<F> PinnedDrop for Boundary<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if this.work.is_some() {
                drop_work(this.scope, this.work.as_mut());
                // Never panics from a drop (`strict`): it could abort the process.
                this.scope.end(EndAt::Now, Outcome::Cancelled, Receiver::Everyone, false);
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
        Boundary { work: Some(work), scope, timer: None, polled: None }
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

    /// When the work ended: the end of its last poll, one clock reading for
    /// both.
    fn ended_at(&self) -> Instant {
        self.polled.unwrap_or_else(Instant::now)
    }

    /// Ends the scope after [`poll_work`](Self::poll_work) was ready: seals
    /// it and reports it once. Returns the boundary's time.
    #[inline]
    pub(crate) fn finish(&self, outcome: Outcome) -> Duration {
        self.scope.end(EndAt::At(self.ended_at()), outcome, Receiver::Everyone, true)
    }

    /// Seals the scope after [`poll_work`](Self::poll_work) was ready,
    /// for a caller that reads its figures before delivering them.
    #[cfg(feature = "tower")]
    pub(crate) fn seal(&self, outcome: Outcome) -> Duration {
        self.scope.seal(EndAt::At(self.ended_at()), outcome)
    }

    /// Delivers the report of a scope the caller sealed itself, and then
    /// read the figures of.
    #[cfg(feature = "tower")]
    pub(crate) fn deliver(&self, figures: &crate::tracker::report::Figures) {
        self.scope.deliver(Receiver::Everyone, true, Some(figures));
    }
}

impl<F: Future> Boundary<F> {
    /// Polls the work inside the scope. When it ends or panics, it is
    /// dropped there and then, in the same switch to the scope, and the
    /// poll's time includes the drop (the thread was busy with it); when it
    /// is cut, after. Either way, before this returns ready, and before the
    /// boundary's end is read.
    #[inline]
    pub(crate) fn poll_work(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Ended<F::Output>> {
        let mut this = self.project();
        if this.work.is_none() {
            panic!("a zen boundary was polled after its work ended");
        }
        let start = Instant::now();
        let work = this.work.as_mut();
        let (poll, end) = enter(Some(this.scope), Role::Own, || {
            let mut work = work;
            let poll = catch_unwind(AssertUnwindSafe(|| match work.as_mut().as_pin_mut() {
                Some(work) => work.poll(cx),
                None => unreachable!("checked above"),
            }));
            if !matches!(poll, Ok(Poll::Pending)) {
                drop_here(this.scope, work);
            }
            (poll, Instant::now())
        });
        *this.polled = Some(end);
        let poll_time = end.saturating_duration_since(start);
        this.scope.record_poll(poll_time);
        this.scope.record_timeline_poll(start, poll_time);
        match poll {
            Ok(Poll::Ready(output)) => Poll::Ready(Ended::Done(output)),
            Ok(Poll::Pending) => match crate::tracker::future::poll_cut(this.scope, this.timer, cx) {
                None => Poll::Pending,
                Some(exceeded) => {
                    drop_work(this.scope, this.work.as_mut());
                    // What dropping it took (an operation still in flight
                    // records its time then) is the boundary's too.
                    *this.polled = Some(Instant::now());
                    Poll::Ready(Ended::Cut(exceeded))
                }
            },
            Err(payload) => {
                this.scope.mark_panicked();
                Poll::Ready(Ended::Panicked(payload))
            }
        }
    }
}

/// Drops the work inside the scope, and keeps a panic in its destructor here.
fn drop_work<F>(scope: &Arc<Scope>, work: Pin<&mut Option<F>>) {
    enter(Some(scope), Role::Carried, || drop_here(scope, work));
}

/// Drops the work where its scope is current (from inside the work's own
/// switch, or [`drop_work`]'s): the scope adopts nothing more, and a panic
/// in a destructor stays here (the work did not panic), as does one in
/// dropping that panic's payload (which is then leaked).
fn drop_here<F>(scope: &Scope, mut work: Pin<&mut Option<F>>) {
    scope.stop_adopting();
    if let Err(payload) = catch_unwind(AssertUnwindSafe(|| work.set(None)))
        && let Err(again) = catch_unwind(AssertUnwindSafe(|| drop(payload)))
    {
        std::mem::forget(again);
    }
}
