//! An action of the driver awaited within the budget: asked before it
//! sends anything, cut at the time left.

use std::cell::Cell;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;

use crate::instrument;

/// Awaiting a driver's action within the budget: implemented for every
/// action and future whose output is the driver's `Result`.
pub trait WithinBudget: IntoFuture<Output = mongodb::error::Result<Self::Value>> + Sized {
    /// What the action gives.
    type Value;

    /// The action, asked of the budget before it sends anything (refused in
    /// `enforce` once `max_queries`, `max_db_ms` or the deadline is spent,
    /// with an error [`as_budget_exceeded`](super::as_budget_exceeded)
    /// finds), and cut at the time left; its commands are counted as any
    /// other (see the [module's docs](super)).
    fn within_budget(self) -> Within<Self::IntoFuture> {
        Within { action: self.into_future(), timer: None, call: Call { id: 0, ended: false } }
    }
}

impl<A, T> WithinBudget for A
where
    A: IntoFuture<Output = mongodb::error::Result<T>>,
{
    type Value = T;
}

pin_project! {
    /// The future of [`WithinBudget::within_budget`].
    #[must_use = "futures do nothing unless awaited"]
    pub struct Within<F> {
        #[pin]
        action: F,
        timer: Option<Pin<Box<tokio::time::Sleep>>>,
        call: Call,
    }
}

impl<F> std::fmt::Debug for Within<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Within").field("call", &self.call.id).finish_non_exhaustive()
    }
}

/// One awaited action: its id (0 until it was admitted), which its commands
/// are sent under.
struct Call {
    id: u64,
    ended: bool,
}

impl Drop for Call {
    // Dropped before its action ended (its request cut, its future
    // cancelled): the commands it sent end here, dropped unfinished.
    fn drop(&mut self) {
        if self.id != 0 && !self.ended {
            super::drop_call(self.id);
        }
    }
}

thread_local! {
    /// The call being polled on this thread, 0 for none.
    static CALL: Cell<u64> = const { Cell::new(0) };
}

/// The [`Within`] call whose action is being polled here, 0 for none.
pub(super) fn current_call() -> u64 {
    CALL.with(Cell::get)
}

/// Puts back the call polled before, even if the action panics.
struct Polling(u64);

impl Drop for Polling {
    fn drop(&mut self) {
        CALL.with(|call| call.set(self.0));
    }
}

impl<F, T> Future for Within<F>
where
    F: Future<Output = mongodb::error::Result<T>>,
{
    type Output = mongodb::error::Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        static IDS: AtomicU64 = AtomicU64::new(1);
        let this = self.project();
        if this.call.ended {
            return Poll::Ready(Err(mongodb::error::Error::custom("polled after it ended")));
        }
        if this.call.id == 0 {
            if let Err(refused) = instrument::admit_query() {
                this.call.ended = true;
                return Poll::Ready(Err(refused.into()));
            }
            this.call.id = IDS.fetch_add(1, Relaxed);
            *this.timer = instrument::time_limit().map(|limit| Box::pin(tokio::time::sleep(limit)));
        }
        let polled = {
            let _back = Polling(CALL.with(|call| call.replace(this.call.id)));
            this.action.poll(cx)
        };
        if polled.is_ready() {
            this.call.ended = true;
            return polled;
        }
        while let Some(timer) = this.timer
            && timer.as_mut().poll(cx).is_ready()
        {
            // Its commands, cut: each counted failed.
            if let Some(exceeded) = super::expire_call(this.call.id) {
                this.call.ended = true;
                return Poll::Ready(Err(exceeded.into()));
            }
            // None sent yet (the driver is choosing a server or waiting for
            // a connection): refused if the budget is spent by now (the
            // deadline passed), else bounded again by the time left.
            if let Err(refused) = instrument::admit_query() {
                this.call.ended = true;
                return Poll::Ready(Err(refused.into()));
            }
            // At least a millisecond: what is left of `max_db_ms` does not
            // shrink while nothing runs, and must not make this a spin.
            let again = instrument::time_limit().map(|limit| limit.max(Duration::from_millis(1)));
            *this.timer = again.map(|limit| Box::pin(tokio::time::sleep(limit)));
        }
        Poll::Pending
    }
}
