//! `ZenAlloc`: a global allocator that attributes every allocation and free
//! to the budget scope being polled on the allocating thread.
//!
//! ```
//! #[global_allocator]
//! static ALLOC: zen_runtime::alloc::ZenAlloc = zen_runtime::alloc::ZenAlloc::system();
//! ```
//!
//! Many requests share a thread and a request moves between threads, so
//! process-wide counters (such as a `stats_alloc` `Region`) cannot tell
//! requests apart. `ZenAlloc` adds each allocation to plain counters of the
//! allocating thread, which the tracker hands to the scope being polled when
//! the poll ends (and to its parents, and from tasks started with
//! `zen_runtime::spawn`). The allocation path takes no lock, touches no
//! shared cache line, allocates nothing and cannot panic; outside a scope
//! (including while a thread starts or ends) it only reads one thread-local
//! pointer.
//!
//! Reports then carry `memory`: bytes allocated, peak live bytes, and bytes
//! still held at the end (`retained`). `max_mem_kb` applies to the peak.
//! Without `ZenAlloc` installed, `memory` is `None`, and a budget that sets
//! `max_mem_kb` says so once, in a warning.
//!
//! For process-wide totals as well, wrap `stats_alloc`:
//! `ZenAlloc::new(stats_alloc::StatsAlloc::system())` (at the price of its
//! shared atomic counters on every allocation).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::scope::THREAD;

static INSTALLED: AtomicBool = AtomicBool::new(false);
static WARNED: AtomicBool = AtomicBool::new(false);

/// `true` once `ZenAlloc` has counted an allocation inside a scope: memory
/// is measured. (Set when the tracker collects the counts, so the
/// allocation path writes no shared memory at all.)
pub fn installed() -> bool {
    INSTALLED.load(Ordering::Relaxed)
}

pub(crate) fn mark_installed() {
    if !INSTALLED.load(Ordering::Relaxed) {
        INSTALLED.store(true, Ordering::Relaxed);
    }
}

pub(crate) fn warn_if_not_installed() {
    if !installed() && !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            target: "zen",
            "`max_mem_kb` is set but memory is not being measured: install the allocator with \
             `#[global_allocator] static ALLOC: zen_runtime::alloc::ZenAlloc = zen_runtime::alloc::ZenAlloc::system();`"
        );
    }
}

/// A global allocator over `A` (the system allocator by default) that
/// attributes memory to budget scopes.
#[derive(Debug, Default)]
pub struct ZenAlloc<A = System> {
    inner: A,
}

impl ZenAlloc<System> {
    /// Over the system allocator.
    #[must_use]
    pub const fn system() -> Self {
        ZenAlloc { inner: System }
    }
}

impl<A> ZenAlloc<A> {
    /// Over any global allocator (jemalloc, mimalloc, `stats_alloc`, ...).
    pub const fn new(inner: A) -> Self {
        ZenAlloc { inner }
    }

    /// The allocator underneath.
    pub const fn inner(&self) -> &A {
        &self.inner
    }
}

/// Allocation sizes fit in `isize` (a `Layout` guarantees it).
#[inline]
fn signed(bytes: usize) -> i64 {
    bytes.cast_signed() as i64
}

#[inline]
fn grew(bytes: usize) {
    // A `const` thread-local without a destructor: usable at any point of a
    // thread's life, and never allocates.
    THREAD.with(|t| {
        if t.current.get().is_null() {
            return;
        }
        let live = t.live.get().wrapping_add(signed(bytes));
        t.live.set(live);
        if live > t.peak.get() {
            t.peak.set(live);
        }
        t.allocated.set(t.allocated.get().wrapping_add(bytes as u64));
    });
}

#[inline]
fn shrank(bytes: usize) {
    THREAD.with(|t| {
        if !t.current.get().is_null() {
            t.live.set(t.live.get().wrapping_sub(signed(bytes)));
        }
    });
}

// SAFETY: every method forwards to `inner`, which upholds `GlobalAlloc`'s
// contract; the accounting around it only touches thread-local cells and
// neither allocates, unwinds nor changes the pointers and layouts passed.
unsafe impl<A: GlobalAlloc> GlobalAlloc for ZenAlloc<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let ptr = unsafe { self.inner.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let ptr = unsafe { self.inner.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let new = unsafe { self.inner.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        new
    }
}
