//! What the benchmarks share: the fns they compare, polling a future once
//! with a no-op waker, so that no runtime is in the way, and a global
//! allocator that switches between `System` and `ZenAlloc`.
#![allow(dead_code, unreachable_pub)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

use zen_runtime::alloc::ZenAlloc;
use zen_runtime::zen;

/// Polls `fut` once; it must be ready.
pub fn poll_once<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => unreachable!("the benchmarked futures never wait"),
    }
}

/// The baseline: an empty async fn.
pub async fn plain(x: u64) -> u64 {
    x + 1
}

/// The same under a budget of three limits.
#[zen(max_queries = 5, max_db_ms = 50, timeout_ms = 200)]
pub async fn annotated_with_limits(x: u64) -> u64 {
    x + 1
}

/// A global allocator for benchmarks that compare `System` and `ZenAlloc`
/// in one binary (`#[global_allocator] static GLOBAL: Switch = Switch;`):
/// `System` until `USE_ZEN` is set. Both forward to `System`, so memory from
/// one may be freed or grown by the other.
pub struct Switch;

pub static USE_ZEN: AtomicBool = AtomicBool::new(false);
pub static ZEN: ZenAlloc = ZenAlloc::system();

// SAFETY: forwards to `ZenAlloc<System>` or `System`, which share the
// system heap, so either may free or grow what the other allocated.
unsafe impl GlobalAlloc for Switch {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded.
        unsafe { if USE_ZEN.load(Ordering::Relaxed) { ZEN.alloc(layout) } else { System.alloc(layout) } }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded.
        unsafe { if USE_ZEN.load(Ordering::Relaxed) { ZEN.alloc_zeroed(layout) } else { System.alloc_zeroed(layout) } }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded.
        unsafe { if USE_ZEN.load(Ordering::Relaxed) { ZEN.dealloc(ptr, layout) } else { System.dealloc(ptr, layout) } }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded.
        unsafe {
            if USE_ZEN.load(Ordering::Relaxed) {
                ZEN.realloc(ptr, layout, new_size)
            } else {
                System.realloc(ptr, layout, new_size)
            }
        }
    }
}

pub const PAIRS: usize = 1000;

/// `PAIRS` allocations of `size` bytes through `allocator`, each freed at once.
pub fn pairs<A: GlobalAlloc>(allocator: &A, size: usize) {
    let layout = Layout::from_size_align(size, 8).unwrap();
    for _ in 0..PAIRS {
        // SAFETY: a non-zero layout, freed with the same layout.
        unsafe {
            let ptr = allocator.alloc(layout);
            black_box(ptr);
            allocator.dealloc(ptr, layout);
        }
    }
}
