//! The futures that put work inside a scope: [`Scoped`] opens one and
//! reports it; [`Attached`] carries an existing one into another task.

use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use crate::budget::Mode;
use crate::error::BudgetExceeded;
use crate::report::{Outcome, Report};
use crate::scope::{Receiver, Role, Scope, enter};

/// Where the report goes when the scope ends.
enum Finish {
    Deliver,
    Keep(Arc<Mutex<Option<Report>>>),
    /// The scope belongs to an enclosing future (the layer's request), which
    /// reports it.
    Joined,
    Done,
}

/// A future running inside its own budget scope; produced by `#[zen]`.
///
/// Each poll makes the scope current on the polling thread. The scope ends,
/// and reports exactly once, when the future completes, panics, is cut in
/// `enforce` mode, or is dropped.
#[must_use = "futures do nothing unless polled"]
pub struct Scoped<F: Future> {
    fut: Option<F>,
    scope: Arc<Scope>,
    cut: Option<fn(BudgetExceeded) -> F::Output>,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    finish: Finish,
}

impl<F: Future> std::fmt::Debug for Scoped<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scoped").field("name", &self.scope.name).finish_non_exhaustive()
    }
}

impl<F: Future> Scoped<F> {
    pub(crate) fn new(scope: Arc<Scope>, cut: Option<fn(BudgetExceeded) -> F::Output>, fut: F) -> Self {
        Scoped { fut: Some(fut), scope, cut, timer: None, finish: Finish::Deliver }
    }

    pub(crate) fn joined(scope: Arc<Scope>, fut: F) -> Self {
        Scoped { fut: Some(fut), scope, cut: None, timer: None, finish: Finish::Joined }
    }

    pub(crate) fn keep(mut self, slot: Arc<Mutex<Option<Report>>>) -> Self {
        self.finish = Finish::Keep(slot);
        self
    }

    /// Drops the inner future inside the scope, then ends the scope. Only a
    /// scope that ran to its end may panic here (`strict`); a drop never does.
    fn end(&mut self, outcome: Outcome, may_panic: bool) {
        enter(Some(&self.scope), Role::Own, || self.fut = None);
        let receiver = match mem::replace(&mut self.finish, Finish::Done) {
            Finish::Deliver => Receiver::Everyone,
            Finish::Keep(slot) => Receiver::Slot(slot),
            Finish::Joined | Finish::Done => return,
        };
        self.scope.end(outcome, receiver, may_panic);
    }

    /// In `enforce`, when the fn can return `BudgetExceeded`: stop at the
    /// first poll that finds a budget blown, and wake at the deadline.
    fn cut(&mut self, cx: &mut Context<'_>) -> Option<F::Output> {
        let cut = self.cut?;
        let exceeded = poll_cut(&self.scope, &mut self.timer, cx)?;
        self.end(Outcome::Exceeded, false);
        Some(cut(exceeded))
    }
}

/// In `enforce`: the budget that stops the scope's work now, if any, one
/// already blown or the deadline; until then `timer` wakes the task at the
/// deadline (moved if the handler's `#[zen]` brought it closer).
pub(crate) fn poll_cut(
    scope: &Scope,
    timer: &mut Option<Pin<Box<tokio::time::Sleep>>>,
    cx: &mut Context<'_>,
) -> Option<BudgetExceeded> {
    if scope.mode() != Mode::Enforce {
        return None;
    }
    if let Some(exceeded) = scope.blown() {
        return Some(exceeded);
    }
    let deadline = tokio::time::Instant::from_std(scope.deadline()?);
    let sleep = match timer {
        Some(sleep) => {
            if sleep.deadline() != deadline {
                sleep.as_mut().reset(deadline);
            }
            sleep
        }
        None => {
            tokio::runtime::Handle::try_current().ok()?;
            timer.insert(Box::pin(tokio::time::sleep_until(deadline)))
        }
    };
    if sleep.as_mut().poll(cx).is_pending() {
        return None;
    }
    Some(scope.blown().unwrap_or_else(|| scope.timed_out()))
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `fut` is structurally pinned: it is never moved out of the
        // `Option`, only dropped in place by assigning `None`; no other field
        // is pinned, and `Scoped` does not implement `Unpin` by hand.
        let this = unsafe { self.get_unchecked_mut() };
        let Some(fut) = this.fut.as_mut() else {
            panic!("a zen scope was polled after it completed");
        };
        // SAFETY: see above; `this` is pinned, so its `fut` is too.
        let fut = unsafe { Pin::new_unchecked(fut) };
        // An adopted fn's polls are its boundary's, which times them.
        let start = (!matches!(this.finish, Finish::Joined)).then(Instant::now);
        let poll = enter(Some(&this.scope), Role::Own, || fut.poll(cx));
        if let Some(start) = start {
            this.scope.record_poll(start.elapsed());
        }
        match poll {
            Poll::Ready(output) => {
                this.end(Outcome::Ok, true);
                Poll::Ready(output)
            }
            Poll::Pending => this.cut(cx).map_or(Poll::Pending, Poll::Ready),
        }
    }
}

impl<F: Future> Drop for Scoped<F> {
    fn drop(&mut self) {
        if !matches!(self.finish, Finish::Done) {
            self.end(Outcome::Cancelled, false);
        }
    }
}

/// A future that runs inside the scope that was current when it was made:
/// its usage counts toward that scope. See [`attach`](crate::attach).
#[must_use = "futures do nothing unless polled"]
pub struct Attached<F> {
    fut: F,
    scope: Option<Arc<Scope>>,
}

impl<F> std::fmt::Debug for Attached<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attached").field("scope", &self.scope.as_ref().map(|s| &s.name)).finish_non_exhaustive()
    }
}

impl<F> Attached<F> {
    pub(crate) fn new(fut: F) -> Self {
        Attached { fut, scope: crate::scope::current() }
    }
}

impl<F: Future> Future for Attached<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `fut` is structurally pinned and never moved; `scope` is
        // not pinned and only read.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: as above.
        let fut = unsafe { Pin::new_unchecked(&mut this.fut) };
        enter(this.scope.as_ref(), Role::Carried, || fut.poll(cx))
    }
}
