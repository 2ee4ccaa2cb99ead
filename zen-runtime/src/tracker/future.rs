//! The futures that put work inside a scope: [`Scoped`] opens one and
//! reports it; [`Attached`] carries an existing one into another task.

use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::tracker::budget::Mode;
use crate::tracker::error::BudgetExceeded;
use crate::tracker::report::{Outcome, Report};
use crate::tracker::scope::{Asked, Defaults, Receiver, Role, Scope, Spec, current, enter};

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
    cut: Option<fn(BudgetExceeded) -> F::Output>,
    // Everything that does not depend on `F`, so that what each annotated fn
    // instantiates stays small.
    track: Track,
}

/// The scope of a [`Scoped`], and where its report goes.
struct Track {
    /// Until the first poll: what the `#[zen]` fn asks for. Its scope opens
    /// (or a boundary's adopts it) at the first poll, where its work starts.
    asked: Option<&'static Asked>,
    scope: Option<Arc<Scope>>,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    finish: Finish,
}

/// When a poll started, and whether it was the first (its time is then the
/// scope's so far).
#[derive(Clone, Copy)]
struct PollStart {
    at: Instant,
    first: bool,
}

/// When a poll ended, and the scope's time then if it is known already.
#[derive(Clone, Copy)]
struct PollEnd {
    at: Instant,
    elapsed: Option<Duration>,
}

impl<F: Future> std::fmt::Debug for Scoped<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = &self.track;
        let name = t.scope.as_ref().map(|s| &*s.name).or(t.asked.map(|a| a.name));
        f.debug_struct("Scoped").field("name", &name).finish_non_exhaustive()
    }
}

impl<F: Future> Scoped<F> {
    pub(crate) fn new(scope: Arc<Scope>, cut: Option<fn(BudgetExceeded) -> F::Output>, fut: F) -> Self {
        let track = Track { asked: None, scope: Some(scope), timer: None, finish: Finish::Deliver };
        Scoped { fut: Some(fut), cut, track }
    }

    /// The body of a `#[zen]` fn, whose scope opens at its first poll.
    pub(crate) fn asked(asked: &'static Asked, cut: Option<fn(BudgetExceeded) -> F::Output>, fut: F) -> Self {
        let track = Track { asked: Some(asked), scope: None, timer: None, finish: Finish::Deliver };
        Scoped { fut: Some(fut), cut, track }
    }

    pub(crate) fn keep(mut self, slot: Arc<Mutex<Option<Report>>>) -> Self {
        self.track.finish = Finish::Keep(slot);
        self
    }

    /// Drops what the future still holds inside its scope (it was cut or
    /// dropped unfinished), then ends the scope. A drop never panics.
    fn stop(&mut self, outcome: Outcome) {
        match &self.track.scope {
            Some(scope) => enter(Some(scope), Role::Own, || self.fut = None),
            None => self.fut = None,
        }
        self.track.end(None, outcome, false);
    }
}

impl Track {
    /// Opens the scope if this is the first poll; returns when the poll
    /// starts, unless the scope is adopted (its boundary times its polls).
    fn begin(&mut self) -> Option<PollStart> {
        if self.scope.is_some() {
            return (!matches!(self.finish, Finish::Joined)).then(|| PollStart { at: Instant::now(), first: false });
        }
        let Some(asked) = self.asked else { unreachable!("a scoped future has a scope or what it asks for") };
        // Run directly inside a boundary's scope (the layer's request, a job),
        // the fn is its handler: it tightens that scope rather than opening one.
        if let Some(scope) = Scope::adopt(asked) {
            self.finish = Finish::Joined;
            self.scope = Some(scope);
            return None;
        }
        let scope = Scope::open(Spec {
            name: std::borrow::Cow::Borrowed(asked.name),
            method: None,
            kind: asked.kind,
            defaults: Defaults {
                limits: asked.limits,
                mode: asked.mode,
                n_plus_one: asked.n_plus_one,
                exemptions: asked.exemptions,
            },
            collector: None,
            adoptable: false,
            attempt: None,
        });
        let at = scope.start;
        self.scope = Some(scope);
        Some(PollStart { at, first: true })
    }

    /// Records a poll that started at `start`: one clock reading ends it
    /// and, if it is the last, the scope.
    fn polled(&self, start: Option<PollStart>) -> Option<PollEnd> {
        let (start, scope) = (start?, self.scope.as_ref()?);
        let at = Instant::now();
        let poll = at.saturating_duration_since(start.at);
        scope.record_poll(poll);
        Some(PollEnd { at, elapsed: start.first.then_some(poll) })
    }

    /// In `enforce`: the budget that stops the work now.
    fn cut_now(&mut self, cx: &mut Context<'_>) -> Option<BudgetExceeded> {
        if matches!(self.finish, Finish::Joined) {
            return None;
        }
        poll_cut(self.scope.as_ref()?, &mut self.timer, cx)
    }

    /// Ends the scope (at `end` if the caller read the clock) and reports.
    /// Only a scope that ran to its end may panic here (`strict`).
    fn end(&mut self, end: Option<PollEnd>, outcome: Outcome, may_panic: bool) {
        let receiver = match mem::replace(&mut self.finish, Finish::Done) {
            Finish::Deliver => Receiver::Everyone,
            Finish::Keep(slot) => Receiver::Slot(slot),
            Finish::Joined | Finish::Done => return,
        };
        // Never polled: no scope was opened, and there is nothing to report.
        let Some(scope) = &self.scope else { return };
        match end {
            Some(PollEnd { elapsed: Some(elapsed), .. }) => scope.end_after(elapsed, outcome, receiver, may_panic),
            Some(PollEnd { at, .. }) => scope.end_at(at, outcome, receiver, may_panic),
            None => scope.end(outcome, receiver, may_panic),
        };
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
        let start = this.track.begin();
        let (Some(fut), Some(scope)) = (this.fut.as_mut(), this.track.scope.as_ref()) else {
            unreachable!("checked and opened above")
        };
        // SAFETY: see above; `this` is pinned, so its `fut` is too.
        let fut = unsafe { Pin::new_unchecked(fut) };
        // An adopted handler is polled by its boundary, inside the scope
        // already: only a poll from elsewhere (the future moved) switches.
        let poll = if matches!(this.track.finish, Finish::Joined) {
            current::enter_own(scope, || fut.poll(cx))
        } else {
            enter(Some(scope), Role::Own, || fut.poll(cx))
        };
        let end = this.track.polled(start);
        match poll {
            Poll::Ready(output) => {
                // Completed: its locals are gone already, nothing is left to free.
                this.fut = None;
                this.track.end(end, Outcome::Ok, true);
                Poll::Ready(output)
            }
            Poll::Pending => match this.cut {
                Some(cut) => match this.track.cut_now(cx) {
                    Some(exceeded) => {
                        this.stop(Outcome::Exceeded);
                        Poll::Ready(cut(exceeded))
                    }
                    None => Poll::Pending,
                },
                None => Poll::Pending,
            },
        }
    }
}

impl<F: Future> Drop for Scoped<F> {
    fn drop(&mut self) {
        if !matches!(self.track.finish, Finish::Done) {
            self.stop(Outcome::Cancelled);
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
        Attached { fut, scope: crate::tracker::scope::current() }
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
