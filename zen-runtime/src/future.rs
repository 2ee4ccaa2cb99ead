//! The futures that put work inside a scope: [`Scoped`] opens one and
//! reports it; [`Attached`] carries an existing one into another task.

use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::budget::Mode;
use crate::error::BudgetExceeded;
use crate::report::{Outcome, Report};
use crate::scope::{Asked, Defaults, Receiver, Role, Scope, Spec, enter};

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
    /// Until the first poll: what the `#[zen]` fn asks for. Its scope opens
    /// (or a boundary's adopts it) at the first poll, where its work starts.
    asked: Option<&'static Asked>,
    scope: Option<Arc<Scope>>,
    cut: Option<fn(BudgetExceeded) -> F::Output>,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    finish: Finish,
}

impl<F: Future> std::fmt::Debug for Scoped<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.scope.as_ref().map(|s| &*s.name).or(self.asked.map(|a| a.name));
        f.debug_struct("Scoped").field("name", &name).finish_non_exhaustive()
    }
}

impl<F: Future> Scoped<F> {
    pub(crate) fn new(scope: Arc<Scope>, cut: Option<fn(BudgetExceeded) -> F::Output>, fut: F) -> Self {
        Scoped { fut: Some(fut), asked: None, scope: Some(scope), cut, timer: None, finish: Finish::Deliver }
    }

    /// The body of a `#[zen]` fn, whose scope opens at its first poll.
    pub(crate) fn asked(asked: &'static Asked, cut: Option<fn(BudgetExceeded) -> F::Output>, fut: F) -> Self {
        Scoped { fut: Some(fut), asked: Some(asked), scope: None, cut, timer: None, finish: Finish::Deliver }
    }

    /// Opens the scope if this is the first poll; returns when the first
    /// poll started (the scope's own start) if it is.
    fn open(&mut self) -> Option<Instant> {
        if self.scope.is_some() {
            return None;
        }
        let Some(asked) = self.asked else { unreachable!("a scoped future has a scope or what it asks for") };
        // Run directly inside a boundary's scope (the layer's request, a job),
        // the fn is its handler: it tightens that scope rather than opening one.
        if let Some(scope) = Scope::adopt(asked) {
            self.finish = Finish::Joined;
            self.cut = None;
            self.scope = Some(scope);
            return None;
        }
        let scope = Scope::open(Spec {
            name: std::borrow::Cow::Borrowed(asked.name),
            kind: asked.kind,
            defaults: Defaults { limits: asked.limits, mode: asked.mode, n_plus_one: asked.n_plus_one },
            collector: None,
            adoptable: false,
            attempt: None,
        });
        let start = scope.start;
        self.scope = Some(scope);
        Some(start)
    }

    pub(crate) fn keep(mut self, slot: Arc<Mutex<Option<Report>>>) -> Self {
        self.finish = Finish::Keep(slot);
        self
    }

    /// Drops the inner future inside the scope, then ends the scope (at
    /// `now` if the caller read the clock). Only a scope that ran to its end
    /// may panic here (`strict`); a drop never does.
    fn end(&mut self, now: Option<(Instant, Option<Duration>)>, outcome: Outcome, may_panic: bool) {
        let Some(scope) = self.scope.clone() else {
            // Never polled: no scope was opened, and there is nothing to report.
            self.fut = None;
            self.finish = Finish::Done;
            return;
        };
        if outcome == Outcome::Ok {
            // Completed: its locals are gone already, nothing is left to free.
            self.fut = None;
        } else {
            // Cut or cancelled: what it still holds is freed inside the scope.
            enter(Some(&scope), Role::Own, || self.fut = None);
        }
        let receiver = match mem::replace(&mut self.finish, Finish::Done) {
            Finish::Deliver => Receiver::Everyone,
            Finish::Keep(slot) => Receiver::Slot(slot),
            Finish::Joined | Finish::Done => return,
        };
        match now {
            Some((_, Some(elapsed))) => scope.end_after(elapsed, outcome, receiver, may_panic),
            Some((now, None)) => scope.end_at(now, outcome, receiver, may_panic),
            None => scope.end(outcome, receiver, may_panic),
        };
    }

    /// In `enforce`, when the fn can return `BudgetExceeded`: stop at the
    /// first poll that finds a budget blown, and wake at the deadline.
    fn cut(&mut self, cx: &mut Context<'_>) -> Option<F::Output> {
        let cut = self.cut?;
        let exceeded = poll_cut(self.scope.as_ref()?, &mut self.timer, cx)?;
        self.end(None, Outcome::Exceeded, false);
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
        if this.fut.is_none() {
            panic!("a zen scope was polled after it completed");
        }
        let opened = this.open();
        let (Some(fut), Some(scope)) = (this.fut.as_mut(), this.scope.as_ref()) else {
            unreachable!("checked and opened above")
        };
        // SAFETY: see above; `this` is pinned, so its `fut` is too.
        let fut = unsafe { Pin::new_unchecked(fut) };
        // An adopted fn's polls are its boundary's, which times them; the
        // first poll starts when the scope does.
        let start = (!matches!(this.finish, Finish::Joined)).then(|| opened.unwrap_or_else(Instant::now));
        let poll = enter(Some(scope), Role::Own, || fut.poll(cx));
        // One clock reading ends the poll and, if it is the last, the scope;
        // a first poll's time is the scope's so far.
        let now = start.map(|start| {
            let now = Instant::now();
            let poll = now.saturating_duration_since(start);
            scope.record_poll(poll);
            (now, opened.map(|_| poll))
        });
        match poll {
            Poll::Ready(output) => {
                this.end(now, Outcome::Ok, true);
                Poll::Ready(output)
            }
            Poll::Pending => this.cut(cx).map_or(Poll::Pending, Poll::Ready),
        }
    }
}

impl<F: Future> Drop for Scoped<F> {
    fn drop(&mut self) {
        if !matches!(self.finish, Finish::Done) {
            self.end(None, Outcome::Cancelled, false);
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
