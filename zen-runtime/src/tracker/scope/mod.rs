//! The tracker: one `Scope` per call of an annotated fn, per request under
//! the layer and per job run, made current on the polling thread for every
//! poll of its future.
//!
//! - [`current`]: which scope is current on this thread;
//! - [`terms`]: what a scope is held to, and adoption by a boundary;
//! - [`usage`]: what it used, recorded on it and each enclosing scope;
//! - [`enforce`]: refusing and cutting work in `enforce`;
//! - [`end`]: the one way a scope ends and reports.

pub(crate) mod current;
mod end;
mod enforce;
pub(crate) mod terms;
mod usage;

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

pub(crate) use current::{Role, current, enter};
pub(crate) use end::{EndAt, Receiver};
pub(crate) use enforce::Resource;
pub use terms::Site;
pub(crate) use terms::{Asked, Terms};
pub(crate) use usage::Usage;

use crate::tracker::alloc::untracked;
use crate::tracker::budget::Kind;
use crate::tracker::observe;
use crate::tracker::report::Report;
use crate::tracker::timeline::{Done, Recording, Timeline};

/// Reports of nested scopes, gathered for `zen_runtime::testing::collect`.
pub(crate) type Collector = Arc<Mutex<Vec<Report>>>;

pub(crate) struct Scope {
    pub(crate) name: Cow<'static, str>,
    /// A request's method: its name is `"{method} {template}"`.
    method: Option<&'static str>,
    pub(crate) kind: Kind,
    /// For a job: which attempt this is, 1 for the first.
    pub(crate) attempt: Option<u32>,
    /// For a request: the time its caller said it would still wait.
    pub(crate) caller_time_left: Option<Duration>,
    pub(crate) parent: Option<Arc<Scope>>,
    pub(crate) start: Instant,
    /// As opened; `adopted` once a boundary's handler tightened them.
    terms: Terms,
    adopted: terms::Adopted,
    /// A boundary's scope whose handler has not been adopted yet.
    adoptable: AtomicBool,
    pub(crate) usage: Usage,
    collector: Option<Collector>,
    panicked: AtomicBool,
    /// How the scope ended, and its report, built when first needed.
    ended: end::Ended,
    /// Its timeline, while an observer asks for timelines (or the
    /// enclosing scope records one).
    timeline: Option<Box<Mutex<Recording>>>,
}

/// What a new scope is.
pub(crate) struct Spec {
    pub(crate) name: Cow<'static, str>,
    /// A request's method, which `name` starts with (then a space and the
    /// route's template).
    pub(crate) method: Option<&'static str>,
    /// Unset: the enclosing scope's, else `other`.
    pub(crate) kind: Option<Kind>,
    pub(crate) asked: Asked,
    pub(crate) collector: Option<Collector>,
    /// Opened by a boundary (the HTTP layer, a job runner): the first
    /// `#[zen]` fn of the same kind run directly inside it is adopted.
    pub(crate) adoptable: bool,
    pub(crate) attempt: Option<u32>,
    /// For a request: the time its caller said it would still wait, which
    /// `asked`'s timeout already holds.
    pub(crate) caller_time_left: Option<Duration>,
}

impl Scope {
    /// A scope nested in the current one, if any.
    pub(crate) fn open(spec: Spec) -> Arc<Scope> {
        let parent = current();
        let kind = spec.kind.or_else(|| parent.as_ref().map(|p| p.kind)).unwrap_or(Kind::Other);
        let d = spec.asked;
        let mode = d.mode.unwrap_or_else(crate::tracker::config::global_mode);
        let n_plus_one = d.n_plus_one.unwrap_or_else(crate::tracker::config::n_plus_one);
        // Before the clock: the process's first scope installs the crate's
        // observers here (the budget lock reads its file), in no scope's time.
        let records = parent.as_ref().is_some_and(|p| p.timeline.is_some()) || observe::timelines_wanted();
        let start = Instant::now();
        let timeline = records.then(|| untracked(|| Box::new(Mutex::new(Recording::new(start)))));
        // Allocated first, so that the optimiser builds the scope in place
        // rather than on the stack and then copies it (measured, not
        // guaranteed: 67 instructions a scope, BENCHMARKS.md, "What was cut
        // in the fourth session", which pays for the `unsafe` below).
        let mut scope = Arc::new_uninit();
        Arc::get_mut(&mut scope).expect("a new Arc is unique").write(Scope {
            name: spec.name,
            method: spec.method,
            kind,
            attempt: spec.attempt,
            caller_time_left: spec.caller_time_left,
            terms: Terms::new(start, &d, mode, n_plus_one),
            adopted: terms::Adopted::default(),
            adoptable: AtomicBool::new(spec.adoptable),
            usage: Usage::default(),
            parent,
            start,
            collector: spec.collector,
            panicked: AtomicBool::new(false),
            ended: end::Ended::default(),
            timeline,
        });
        // SAFETY: written just above.
        unsafe { scope.assume_init() }
    }

    /// This scope, then each enclosing one.
    pub(crate) fn chain(&self) -> impl Iterator<Item = &Scope> {
        std::iter::successors(Some(self), |s| s.parent.as_deref())
    }

    pub(crate) fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// A request's method and route template, apart.
    pub(crate) fn route(&self) -> Option<crate::tracker::observe::Route<'_>> {
        let method = self.method?;
        let template = self.name.strip_prefix(method)?.strip_prefix(' ')?;
        Some(crate::tracker::observe::Route { method, template })
    }

    /// Whether the scope records its timeline.
    pub(crate) fn records(&self) -> bool {
        self.timeline.is_some()
    }

    /// Puts an operation that ended on the timeline of this scope and of
    /// each enclosing one that records; a repeat seen for the first time
    /// takes its call site when user code is on the stack (`in_poll`).
    #[inline(never)]
    pub(crate) fn record_timeline(&self, done: &Done<'_>, in_poll: bool) {
        for scope in self.chain() {
            let Some(recording) = &scope.timeline else { continue };
            let threshold = u64::from(scope.terms().n_plus_one);
            let lock = || recording.lock().unwrap_or_else(PoisonError::into_inner);
            if let (Some(index), true) = (untracked(|| lock().operation(done, threshold)), in_poll) {
                let site = untracked(|| crate::tracker::call_site::CallSite::of(&scope.name, done.subject, false));
                lock().set_site(index, site);
            }
        }
    }

    /// A statement is issued with `values` (user code on the stack): where
    /// it is issued is kept for each recording scope in which the same
    /// values ran before, so that a duplicate whose runs end dropped still
    /// has its call site.
    #[cold]
    pub(crate) fn issued_with_values(&self, subject: &Arc<str>, values: u64) {
        for scope in self.chain() {
            let Some(recording) = &scope.timeline else { continue };
            let lock = || recording.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(key) = lock().wants_issue_site(subject, values) else { continue };
            let site = untracked(|| crate::tracker::call_site::CallSite::of(&scope.name, subject, false));
            untracked(|| lock().issued_from(key, site));
        }
    }

    /// Puts a poll of the scope's own future on its timeline, if it
    /// records one.
    #[inline]
    pub(crate) fn record_timeline_poll(&self, started: Instant, elapsed: Duration) {
        if let Some(recording) = &self.timeline {
            untracked(|| recording.lock().unwrap_or_else(PoisonError::into_inner).poll(started, elapsed));
        }
    }

    /// The scope's timeline as it ended `elapsed` after its start, if it
    /// recorded one.
    pub(crate) fn timeline(&self, elapsed: Duration) -> Option<Arc<Timeline>> {
        let recording = self.timeline.as_ref()?;
        let threshold = u64::from(self.terms().n_plus_one);
        Some(untracked(|| recording.lock().unwrap_or_else(PoisonError::into_inner).seal(elapsed, threshold)))
    }

    pub(crate) fn mark_panicked(&self) {
        self.panicked.store(true, Relaxed);
    }

    pub(crate) fn panicked(&self) -> bool {
        self.panicked.load(Relaxed)
    }
}

impl std::fmt::Debug for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope").field("name", &self.name).field("mode", &self.mode()).finish_non_exhaustive()
    }
}
