//! Starting tasks that stay inside the current budget.
//!
//! `tokio::spawn` starts a task that belongs to no scope: what it does is not
//! counted anywhere. These functions carry the current scope into the new
//! task, so its queries, calls and time count toward the scope that started
//! it, from whichever thread runs it.

use std::future::Future;

use tokio::task::JoinHandle;

use crate::tracker::future::Attached;
use crate::tracker::scope::{self, Role, enter};

/// Like [`tokio::spawn`], but the task's usage counts toward the current
/// scope (if any), from whichever thread runs it. A plain `tokio::spawn`
/// carries no scope: what its task does is counted nowhere. The scope still
/// ends when its own fn returns; work the task does after that is not
/// reported. A `#[zen]` fn the task runs opens its own scope, nested in the
/// current one: under the layer, it is never taken for the request's
/// handler.
///
/// # Panics
/// Outside a Tokio runtime, as `tokio::spawn` does.
pub fn spawn<F>(fut: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(Attached::new(fut))
}

/// Like [`tokio::task::spawn_blocking`], but the closure's usage counts
/// toward the current scope (if any).
///
/// # Panics
/// Outside a Tokio runtime, as `tokio::task::spawn_blocking` does.
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let scope = scope::current();
    tokio::task::spawn_blocking(move || enter(scope.as_ref(), Role::Carried, f))
}

/// Wraps a future so that, wherever it is polled, its usage counts toward
/// the scope current now. For executors and spawn functions other than
/// Tokio's: `my_executor.spawn(zen_runtime::attach(fut))`. (See
/// [Scopes, nesting and tasks](crate#scopes-nesting-and-tasks).)
pub fn attach<F: Future>(fut: F) -> Attached<F> {
    Attached::new(fut)
}
