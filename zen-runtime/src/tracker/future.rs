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
use crate::tracker::scope::{EndAt, Receiver, Role, Scope, Site, Spec, current, enter};

/// Where the report goes when the scope ends.
enum Finish {
    Deliver,
    Keep(Arc<Mutex<Option<Report>>>),
    /// The scope belongs to an enclosing future (the layer's request), which
    /// reports it.
    Joined,
    Done,
}

pin_project_lite::pin_project! {
    /// A future running inside its own budget scope; produced by `#[zen]`.
    ///
    /// Each poll makes the scope current on the polling thread. The scope
    /// ends, and reports exactly once, when the future completes, panics, is
    /// cut in `enforce` mode, or is dropped.
    #[must_use = "futures do nothing unless polled"]
    pub struct Scoped<F: Future> {
        // Dropped in place (set to `None`) inside the scope, so that what it
        // frees is the scope's.
        #[pin]
        fut: Option<F>,
        cut: Option<fn(BudgetExceeded) -> F::Output>,
        // Everything that does not depend on `F`, so that what each annotated
        // fn instantiates stays small.
        track: Track,
    }

    impl<F: Future> PinnedDrop for Scoped<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if !matches!(this.track.finish, Finish::Done) {
                stop(this.fut, this.track, Outcome::Cancelled);
            }
        }
    }
}

/// The scope of a [`Scoped`], and where its report goes.
struct Track {
    /// Until the first poll: the `#[zen]` fn as written. Its scope opens
    /// (or a boundary's adopts it) at the first poll, where its work starts.
    site: Option<&'static Site>,
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
        let name = t.scope.as_ref().map(|s| &*s.name).or(t.site.map(|a| a.name));
        f.debug_struct("Scoped").field("name", &name).finish_non_exhaustive()
    }
}

impl<F: Future> Scoped<F> {
    pub(crate) fn new(scope: Arc<Scope>, cut: Option<fn(BudgetExceeded) -> F::Output>, fut: F) -> Self {
        let track = Track { site: None, scope: Some(scope), timer: None, finish: Finish::Deliver };
        Scoped { fut: Some(fut), cut, track }
    }

    /// The body of a `#[zen]` fn, whose scope opens at its first poll.
    pub(crate) fn site(site: &'static Site, cut: Option<fn(BudgetExceeded) -> F::Output>, fut: F) -> Self {
        let track = Track { site: Some(site), scope: None, timer: None, finish: Finish::Deliver };
        Scoped { fut: Some(fut), cut, track }
    }

    pub(crate) fn keep(mut self, slot: Arc<Mutex<Option<Report>>>) -> Self {
        self.track.finish = Finish::Keep(slot);
        self
    }
}

/// Drops what the future still holds inside its scope (it was cut or
/// dropped unfinished), then ends the scope. A drop never panics.
fn stop<F>(mut fut: Pin<&mut Option<F>>, track: &mut Track, outcome: Outcome) {
    match &track.scope {
        Some(scope) => enter(Some(scope), Role::Own, || fut.set(None)),
        None => fut.set(None),
    }
    track.end(None, outcome, false);
}

impl Track {
    /// Opens the scope if this is the first poll; returns when the poll
    /// starts, unless the scope is adopted (its boundary times its polls).
    fn begin(&mut self) -> Option<PollStart> {
        if self.scope.is_some() {
            return (!matches!(self.finish, Finish::Joined)).then(|| PollStart { at: Instant::now(), first: false });
        }
        let Some(site) = self.site else { unreachable!("a scoped future has a scope or its site") };
        // Run directly inside a boundary's scope (the layer's request, a job),
        // the fn is its handler: it tightens that scope rather than opening one.
        if let Some(scope) = Scope::adopt(site) {
            self.finish = Finish::Joined;
            self.scope = Some(scope);
            return None;
        }
        let scope = Scope::open(Spec {
            name: std::borrow::Cow::Borrowed(site.name),
            method: None,
            kind: site.kind,
            asked: site.asked,
            collector: None,
            adoptable: false,
            attempt: None,
            caller_time_left: None,
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
        scope.record_timeline_poll(start.at, poll);
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
        let at = match end {
            Some(PollEnd { elapsed: Some(elapsed), .. }) => EndAt::After(elapsed),
            Some(PollEnd { at, .. }) => EndAt::At(at),
            None => EndAt::Now,
        };
        scope.end(at, outcome, receiver, may_panic);
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
        let mut this = self.project();
        if this.fut.is_none() {
            panic!("a zen scope was polled after it completed");
        }
        let start = this.track.begin();
        let (Some(fut), Some(scope)) = (this.fut.as_mut().as_pin_mut(), this.track.scope.as_ref()) else {
            unreachable!("checked and opened above")
        };
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
                this.fut.set(None);
                this.track.end(end, Outcome::Ok, true);
                Poll::Ready(output)
            }
            Poll::Pending => match *this.cut {
                Some(cut) => match this.track.cut_now(cx) {
                    Some(exceeded) => {
                        stop(this.fut, this.track, Outcome::Exceeded);
                        Poll::Ready(cut(exceeded))
                    }
                    None => Poll::Pending,
                },
                None => Poll::Pending,
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// A future that runs inside the scope that was current when it was
    /// made: its usage counts toward that scope. See [`attach`](crate::attach).
    #[must_use = "futures do nothing unless polled"]
    pub struct Attached<F> {
        #[pin]
        fut: F,
        scope: Option<Arc<Scope>>,
    }
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
        let this = self.project();
        enter(this.scope.as_ref(), Role::Carried, || this.fut.poll(cx))
    }
}
