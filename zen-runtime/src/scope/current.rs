//! The scope being polled on this thread.
//!
//! A scope is made current for the length of a closure, as tokio's
//! `Scoped::set` does: [`enter`] stores the address of the `Arc<Scope>` it
//! borrows, runs the closure, and puts the previous value back before it
//! returns or unwinds. So while the address is set, what it points to is
//! alive, and one `unsafe` block (in [`with`]) reads it.
//!
//! Switching scopes is also when the heap this thread counted (with
//! `ZenAlloc`) is handed to the scope being left.

use std::cell::Cell;
use std::ptr;
use std::sync::Arc;

use super::Scope;

struct Current {
    /// Null, or the `Arc<Scope>` that [`enter`] borrows until it returns.
    scope: Cell<*const Arc<Scope>>,
    /// The current scope was carried here (a spawned task, a response
    /// body), not entered by its own future.
    carried: Cell<bool>,
}

thread_local! {
    static CURRENT: Current = const { Current { scope: Cell::new(ptr::null()), carried: Cell::new(false) } };
}

/// Who makes a scope current.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// The scope's own future: a panic through it is the scope's, and the
    /// first `#[zen]` fn it runs may be adopted as the boundary's handler.
    Own,
    /// Work carried into the scope (a task started with `spawn`, a future
    /// being dropped, a response body): its panics are its own, and it
    /// adopts nothing.
    Carried,
}

/// Runs `f` with `scope` current on this thread (`None`: no scope), then
/// makes the previous one current again, also if `f` unwinds. An `Own`
/// scope that `f` unwinds through is marked panicked.
pub(crate) fn enter<R>(scope: Option<&Arc<Scope>>, role: Role, f: impl FnOnce() -> R) -> R {
    struct Leave<'a> {
        prev: *const Arc<Scope>,
        prev_carried: bool,
        owner: Option<&'a Scope>,
        returned: bool,
    }
    impl Drop for Leave<'_> {
        fn drop(&mut self) {
            CURRENT.with(|c| {
                switch(c, self.prev);
                c.carried.set(self.prev_carried);
            });
            if !self.returned
                && let Some(owner) = self.owner
            {
                owner.mark_panicked();
            }
        }
    }
    let next = scope.map_or(ptr::null(), ptr::from_ref);
    let (prev, prev_carried) = CURRENT.with(|c| (switch(c, next), c.carried.replace(role == Role::Carried)));
    let owner = scope.filter(|_| role == Role::Own).map(|s| &**s);
    let mut leave = Leave { prev, prev_carried, owner, returned: false };
    let result = f();
    leave.returned = true;
    result
}

/// Makes `next` current, first handing what this thread allocated since the
/// last switch to the scope being left.
fn switch(c: &Current, next: *const Arc<Scope>) -> *const Arc<Scope> {
    if let Some(counted) = crate::alloc::take(!next.is_null()) {
        with(|left| {
            if let Some(left) = left {
                left.add_memory(counted);
            }
        });
    }
    c.scope.replace(next)
}

/// Runs `f` with the current scope, without touching its reference count.
pub(crate) fn with<R>(f: impl FnOnce(Option<&Arc<Scope>>) -> R) -> R {
    let ptr = CURRENT.with(|c| c.scope.get());
    // SAFETY: `CURRENT.scope` is null or was set by `enter` from a reference
    // that outlives `enter`'s closure, and `enter` restores the previous value
    // (through `Leave`, also on unwinding) before that reference ends; the
    // previous value is valid for the same reason, one `enter` further out.
    // Only this thread reads its own `CURRENT`, so the `Arc` is alive here.
    f(unsafe { ptr.as_ref() })
}

/// The current scope, if any, as a new reference.
pub(crate) fn current() -> Option<Arc<Scope>> {
    with(|scope| scope.cloned())
}

/// `true` when the current scope was carried here rather than entered by
/// its own future.
pub(crate) fn carried() -> bool {
    CURRENT.with(|c| c.carried.get())
}
