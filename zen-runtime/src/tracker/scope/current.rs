//! The scope being polled on this thread.
//!
//! A scope is made current for the length of a closure, as tokio's
//! `Scoped::set` does: [`enter`] stores the address of the `Arc<Scope>` it
//! borrows, runs the closure, and puts the previous value back before it
//! returns or unwinds. So while the address is set, what it points to is
//! alive, and one `unsafe` block (in [`at`]) reads it.
//!
//! The address is the owner word of the allocator's per-thread state
//! ([`crate::alloc::set_owner`]), so that one thread-local says both which
//! scope is current and who this thread's allocations count for; switching
//! hands what was counted to the scope being left. The low bit (the address
//! of an `Arc` is aligned) says the scope was carried here rather than
//! entered by its own future.

use std::ptr;
use std::sync::Arc;

use super::Scope;
use crate::tracker::alloc;

const CARRIED: usize = 1;

/// Who makes a scope current.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// The scope's own future: a panic through it is the scope's, and the
    /// first `#[zen]` fn it runs may be adopted as the boundary's handler.
    /// (A boundary drops its finished work in the same switch, catching
    /// what the destructors panic and adopting nothing more.)
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
    // The generic part is this function alone: what every caller's closure
    // instantiates stays three calls.
    let mut leave = Leave::enter(scope, role);
    let result = f();
    leave.returned = true;
    result
}

/// Puts the previous scope back when dropped; a panic through an `Own`
/// scope marks it panicked.
struct Leave<'a> {
    previous: usize,
    owner: Option<&'a Scope>,
    returned: bool,
}

impl<'a> Leave<'a> {
    fn enter(scope: Option<&'a Arc<Scope>>, role: Role) -> Self {
        let carried = if role == Role::Carried { CARRIED } else { 0 };
        let next = scope.map_or(0, |s| ptr::from_ref(s) as usize | carried);
        let owner = scope.filter(|_| role == Role::Own).map(|s| &**s);
        Leave { previous: switch(next), owner, returned: false }
    }
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        switch(self.previous);
        if !self.returned
            && let Some(owner) = self.owner
        {
            owner.mark_panicked();
        }
    }
}

/// Makes `next` current, handing what this thread allocated since the last
/// switch to the scope being left. Returns the word that was current.
fn switch(next: usize) -> usize {
    let (left, counted) = alloc::set_owner(next);
    if let Some(counted) = counted
        && let Some(scope) = at(left)
    {
        scope.add_memory(counted);
    }
    left
}

/// The scope a current word names.
fn at<'a>(word: usize) -> Option<&'a Arc<Scope>> {
    let ptr = (word & !CARRIED) as *const Arc<Scope>;
    // SAFETY: the words `enter` sets (and `switch` hands back) are 0 or the
    // address of an `Arc<Scope>` borrowed by an `enter` call still running on
    // this thread: `enter` puts the previous word back (through `Leave`, also
    // on unwinding) before that borrow ends. So a word read here, or just
    // replaced by `switch`, names a live `Arc`, for as long as the caller
    // (further down the same stack) uses it.
    unsafe { ptr.as_ref() }
}

/// Runs `f` with the current scope, without touching its reference count.
pub(crate) fn with<R>(f: impl FnOnce(Option<&Arc<Scope>>) -> R) -> R {
    f(at(alloc::owner()))
}

/// The current scope, if any, as a new reference.
pub(crate) fn current() -> Option<Arc<Scope>> {
    with(|scope| scope.cloned())
}

/// Runs `f` with `scope` current as its own future's, like
/// `enter(Some(scope), Role::Own, f)`, without switching when it is current
/// so already (an adopted handler polled by its boundary): a panic through
/// `f` still marks it panicked, as `enter` would.
pub(crate) fn enter_own<R>(scope: &Arc<Scope>, f: impl FnOnce() -> R) -> R {
    let word = alloc::owner();
    if word & CARRIED != 0 || !at(word).is_some_and(|current| Arc::ptr_eq(current, scope)) {
        return enter(Some(scope), Role::Own, f);
    }
    /// Marks the scope panicked unless forgotten once `f` returned.
    struct Unwinding<'a>(&'a Scope);
    impl Drop for Unwinding<'_> {
        fn drop(&mut self) {
            self.0.mark_panicked();
        }
    }
    let unwinding = Unwinding(scope);
    let result = f();
    std::mem::forget(unwinding);
    result
}

/// `true` when the current scope was carried here rather than entered by
/// its own future.
pub(crate) fn carried() -> bool {
    alloc::owner() & CARRIED != 0
}
