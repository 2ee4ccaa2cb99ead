//! `ZenAlloc`: a global allocator that attributes every allocation and free
//! to the budget scope being polled on the allocating thread.
//!
//! ```
//! #[global_allocator]
//! static ALLOC: zen_runtime::alloc::ZenAlloc = zen_runtime::alloc::ZenAlloc::system();
//! ```
//!
//! In async Rust many requests share a thread and a request moves between
//! threads, so process-wide counters cannot tell requests apart (a
//! `stats_alloc` `Region` per request counts its neighbours; a test shows
//! it). `ZenAlloc` adds each allocation and free to plain counters of the
//! allocating thread, which the tracker hands to the scope being polled
//! when the poll ends (and to its parents, and from tasks started with
//! `zen_runtime::spawn` or `spawn_blocking`). The allocation path takes no
//! lock, touches no shared cache line, allocates nothing and cannot panic;
//! it is the same few instructions inside a scope and outside one
//! (including while a thread starts or ends), where what it counted is
//! dropped. zen's own bookkeeping is never charged to a scope.
//!
//! Reports then carry `memory`: bytes allocated, peak live bytes, and bytes
//! still held at the end (`retained`: memory grew, find out why). Memory a
//! scope frees but did not allocate never takes a figure below zero.
//! `max_mem_kb` applies to the peak; in `enforce`, a scope over it is
//! stopped at its next poll and its clients refuse new work. Without
//! `ZenAlloc` installed, `memory` is `None` (not zero), and a budget that
//! sets `max_mem_kb` says once, in a warning, how to turn it on.
//!
//! [`ZenAlloc::new`] wraps another allocator: jemalloc, mimalloc, or, for
//! process-wide totals as well, `stats_alloc`:
//! `ZenAlloc::new(stats_alloc::StatsAlloc::system())` (at the price of its
//! shared atomic counters on every allocation).
//!
//! The accounting costs about 10 instructions per allocation-and-free pair
//! (+6.7% over `System`) when the compiler inlines the thread-local access
//! into the allocation site, which it does only within one codegen unit:
//! with cargo's default of 16 per crate an allocation may cost twice that
//! (+21.7 instead of +10.5 instructions per pair, depending on how your crate
//! is partitioned). `codegen-units = 1` or `lto` in your release profile
//! makes it the lower figure (BENCHMARKS.md).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

/// The heap a thread's allocations added since its owner last changed, and
/// who they count for: plain counters only their own thread touches,
/// updated on every allocation whoever the owner is (a branch on "is anyone
/// counting" would cost as much as the counting), and handed over, or
/// dropped when nobody owns them, when the owner changes. Aligned to its
/// own cache lines, away from heap chunks. `allocated` and `live` are kept
/// apart: side by side, the compiler updates both with one 16-byte load and
/// store, which a free's 8-byte store to `live` then stalls (store
/// forwarding fails), a third of the allocator's cost.
#[repr(C, align(128))]
struct Heap {
    live: Cell<i64>,
    peak: Cell<i64>,
    allocated: Cell<u64>,
    /// Who allocations count for: a word the tracker sets, 0 for nobody.
    /// This module never looks inside it.
    owner: Cell<usize>,
    /// How many [`untracked`] calls are running on this thread: while any
    /// is, what is counted is nobody's, even across a change of owner.
    untracked: Cell<u32>,
}

thread_local! {
    // `const` and without a destructor: usable at any point of a thread's
    // life (start, end, inside other thread-locals' destructors), and never
    // allocates.
    static HEAP: Heap = const {
        Heap {
            live: Cell::new(0),
            peak: Cell::new(0),
            allocated: Cell::new(0),
            owner: Cell::new(0),
            untracked: Cell::new(0),
        }
    };
}

/// What a thread allocated for one owner: bytes allocated, the net change,
/// and the highest the net reached meanwhile.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counted {
    pub(crate) allocated: u64,
    pub(crate) live: i64,
    pub(crate) peak: i64,
}

/// Makes `owner` (0: nobody) the one this thread's allocations count for.
/// Returns the previous owner and what was counted for it, if anything
/// (without `ZenAlloc`, nothing ever is).
#[inline]
pub(crate) fn set_owner(owner: usize) -> (usize, Option<Counted>) {
    HEAP.try_with(|h| {
        let previous = h.owner.replace(owner);
        if h.allocated.get() == 0 && h.live.get() == 0 {
            return (previous, None);
        }
        let counted = h.take();
        // Nobody's allocations are counted too, and dropped here; so are
        // zen's own, should its bookkeeping change the owner.
        if previous == 0 || h.untracked.get() > 0 {
            return (previous, None);
        }
        mark_installed();
        (previous, Some(counted))
    })
    .unwrap_or((0, None))
}

impl Heap {
    /// What was counted since the last take, and a fresh start.
    fn take(&self) -> Counted {
        Counted { allocated: self.allocated.replace(0), live: self.live.replace(0), peak: self.peak.replace(0) }
    }

    fn restore(&self, counted: Counted) {
        self.allocated.set(counted.allocated);
        self.live.set(counted.live);
        self.peak.set(counted.peak);
    }
}

/// The owner set on this thread, 0 for nobody.
#[inline]
pub(crate) fn owner() -> usize {
    HEAP.try_with(|h| h.owner.get()).unwrap_or(0)
}

/// Runs `f` without counting its allocations: zen's own bookkeeping (the
/// statement cache, a scope's tables), and an adapter's or an observer's
/// (see [`instrument`](crate::instrument)), is never charged to a user's
/// scope.
/// What was counted before is put aside and back, so that what `f`
/// allocates (and frees) in between is forgotten, also if `f` makes another
/// scope current for a while (a report sink polling a scoped future): that
/// scope is charged nothing, as no scope is for zen's work.
pub fn untracked<R>(f: impl FnOnce() -> R) -> R {
    /// What was put aside, put back when `f` returns or unwinds.
    struct Resume<'a>(&'a Heap, Counted);
    impl Drop for Resume<'_> {
        fn drop(&mut self) {
            self.0.untracked.set(self.0.untracked.get() - 1);
            self.0.restore(self.1);
        }
    }
    // `HEAP` is `const` and has no destructor: it is there for the whole
    // life of the thread, so `with` cannot fail.
    HEAP.with(|h| {
        h.untracked.set(h.untracked.get() + 1);
        let _resume = Resume(h, h.take());
        f()
    })
}

static INSTALLED: AtomicBool = AtomicBool::new(false);
static WARNED: AtomicBool = AtomicBool::new(false);

/// `true` once `ZenAlloc` has counted an allocation inside a scope: memory
/// is measured. (Set when the tracker collects the counts, so the
/// allocation path writes no shared memory at all.)
pub fn installed() -> bool {
    INSTALLED.load(Ordering::Relaxed)
}

fn mark_installed() {
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
    HEAP.with(|t| {
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
    HEAP.with(|t| t.live.set(t.live.get().wrapping_sub(signed(bytes))));
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
