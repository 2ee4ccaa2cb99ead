//! What a scope is held to, and adoption: a `#[zen]` fn run directly inside
//! a boundary's scope (the layer's request, a job) is that boundary's
//! handler, and tightens its terms instead of opening a scope of its own.

use std::cell::UnsafeCell;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::time::Instant;

use super::{Scope, current};
use crate::tracker::budget::{Budget, Kind, Limits, Mode};
use crate::tracker::report::Exemption;

/// What a scope is held to.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Terms {
    pub(crate) limits: Limits,
    pub(crate) mode: Mode,
    pub(crate) deadline: Option<Instant>,
    pub(crate) n_plus_one: u32,
    /// The annotated handler adopted by a boundary's scope.
    pub(crate) handler: Option<&'static str>,
    /// What the fn's `exempt(...)` accepts.
    pub(crate) exemptions: &'static [Exemption],
}

impl Terms {
    pub(crate) fn new(start: Instant, d: &Asked, mode: Mode, n_plus_one: u32) -> Self {
        Terms {
            limits: d.limits,
            mode,
            deadline: deadline(start, &d.limits),
            n_plus_one,
            handler: None,
            exemptions: d.exemptions,
        }
    }
}

fn deadline(start: Instant, limits: &Limits) -> Option<Instant> {
    // A deadline too far to represent is no deadline.
    limits.duration(Budget::Timeout).and_then(|t| start.checked_add(t))
}

/// A boundary's terms as its handler tightened them: written once, by the
/// one caller that wins the scope's `adoptable` swap, then only read. A
/// `OnceLock` would do the same through its slow path, on every request:
/// this cell is 115 instructions a request cheaper (BENCHMARKS.md,
/// "What was cut in the fourth session"), which pays for its `unsafe`.
#[derive(Default)]
pub(super) struct Adopted {
    set: AtomicBool,
    terms: UnsafeCell<Option<Terms>>,
}

// SAFETY: `terms` is written once, before `set` is stored (`Release`), by
// the only caller of `Adopted::set` (the winner of `adoptable`'s swap), and
// read only after `set` is loaded `true` (`Acquire`): no read overlaps the
// write, and there is no second write. `Terms` is `Copy` and `Send`.
unsafe impl Sync for Adopted {}

// What `OnceLock<Terms>` checked for itself: the terms may be shared.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<Terms>();
};

impl Adopted {
    fn get(&self) -> Option<&Terms> {
        if !self.set.load(Acquire) {
            return None;
        }
        // SAFETY: see `Sync` above: written before `set`, never again.
        unsafe { (*self.terms.get()).as_ref() }
    }

    /// Only the winner of the scope's `adoptable` swap calls this, once.
    fn set(&self, terms: Terms) {
        debug_assert!(!self.set.load(Relaxed), "a scope adopts one handler");
        // SAFETY: see `Sync` above: nobody reads `terms` until `set` is true.
        unsafe { *self.terms.get() = Some(terms) };
        self.set.store(true, Release);
    }
}

/// What a boundary (the layer, a job runner) or a `#[zen]` fn asks of a
/// scope: its limits, and its mode and N+1 threshold where it sets them
/// (else the enclosing boundary's, else the process's). A scope resolves it
/// into its [`Terms`] when it opens; an adopted handler's tightens them.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Asked {
    pub(crate) limits: Limits,
    pub(crate) mode: Option<Mode>,
    pub(crate) n_plus_one: Option<u32>,
    pub(crate) exemptions: &'static [Exemption],
}

/// One annotated fn as written, built at compile time in a static: its
/// name, its kind if it sets one, and what it asks.
#[derive(Debug)]
pub struct Site {
    pub(crate) name: &'static str,
    pub(crate) kind: Option<Kind>,
    pub(crate) asked: Asked,
}

impl Site {
    /// The fn `name`, its budget keys, and its `mode` and `kind` where the
    /// attribute sets them.
    #[must_use]
    pub const fn new(name: &'static str, limits: Limits, mode: Option<Mode>, kind: Option<Kind>) -> Self {
        Site { name, kind, asked: Asked { limits, mode, n_plus_one: None, exemptions: &[] } }
    }

    /// `exempt(...)` on the attribute.
    #[must_use]
    pub const fn exempt(mut self, exemptions: &'static [Exemption]) -> Self {
        self.asked.exemptions = exemptions;
        self
    }

    /// `n_plus_one = N` on the attribute.
    #[must_use]
    pub const fn n_plus_one(mut self, threshold: u32) -> Self {
        self.asked.n_plus_one = Some(threshold);
        self
    }
}

impl Scope {
    /// What the scope is held to: as opened, or as tightened by its handler.
    pub(crate) fn terms(&self) -> &Terms {
        self.adopted.get().unwrap_or(&self.terms)
    }

    pub(crate) fn mode(&self) -> Mode {
        self.terms().mode
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.terms().deadline
    }

    pub(crate) fn limit(&self, budget: Budget) -> Option<u64> {
        self.terms().limits.get(budget)
    }

    /// The current scope adopts the fn about to run as its handler, when it
    /// is a boundary's scope that has none yet, entered by its own future
    /// (not carried into a task), and the fn's kind is unset or the same.
    /// The scope then holds the tighter of each pair of limits, the deadline
    /// counted from the boundary's start, and the fn's mode and N+1
    /// threshold where it sets them; the fn reports nothing of its own.
    pub(crate) fn adopt(site: &Site) -> Option<Arc<Scope>> {
        let asked = &site.asked;
        // Most scopes open outside any boundary: find out without a
        // reference count.
        let scope = current::with(|scope| {
            let scope = scope?;
            let adopts = scope.adoptable.load(Relaxed) && site.kind.is_none_or(|k| k == scope.kind);
            adopts.then(|| Arc::clone(scope))
        })?;
        if current::carried() || !scope.adoptable.swap(false, Relaxed) {
            return None;
        }
        let before = scope.terms;
        let limits = before.limits.tighter(asked.limits);
        let terms = Terms {
            limits,
            mode: asked.mode.unwrap_or(before.mode),
            deadline: deadline(scope.start, &limits),
            n_plus_one: asked.n_plus_one.unwrap_or(before.n_plus_one),
            handler: Some(site.name),
            exemptions: if asked.exemptions.is_empty() { before.exemptions } else { asked.exemptions },
        };
        // Only the swap above gets here, once per scope.
        scope.adopted.set(terms);
        Some(scope)
    }

    /// The boundary's work ended: the scope adopts nothing more (a store,
    /// which wins no swap).
    pub(crate) fn stop_adopting(&self) {
        self.adoptable.store(false, Relaxed);
    }
}
