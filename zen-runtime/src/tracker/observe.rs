//! Observers: how whatever watches zen's scopes (a log, metrics, traces, a
//! dashboard, the budget lock, a test) learns of each scope's end and of
//! each database operation's, through one registry.
//!
//! An [`Observer`] implements the hooks it needs; each has a no-op default,
//! as `tracing-subscriber`'s `Layer` does. [`register`] adds one for the
//! life of the process (or until [`unregister`]):
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use zen_runtime::observe::{self, Observer, ScopeEnd};
//!
//! /// Counts the scopes that blew a budget.
//! #[derive(Default)]
//! struct Blown(AtomicU64);
//!
//! impl Observer for Blown {
//!     fn scope_ended(&self, end: &ScopeEnd<'_>) {
//!         if end.figures().exceed(end.limits()) {
//!             self.0.fetch_add(1, Ordering::Relaxed);
//!         }
//!     }
//! }
//!
//! let id = observe::register(Blown::default());
//! # observe::unregister(id);
//! ```
//!
//! What an observer sees costs the scope nothing it did not already pay:
//! its figures and limits as they are, its statements and hosts when asked
//! for, and its full [`Report`] built only for an observer that calls
//! [`ScopeEnd::report`]. It never sees a value: statements are
//! fingerprints. Hooks run on the thread that ends the scope, after the
//! scope's figures are sealed, and what they allocate is charged to no
//! scope; keep them short: hand slow work to a thread of your own, and the
//! scope with it ([`ScopeEnd::keep`]), as
//! [`JsonLines`](crate::sinks::JsonLines) does, which builds each report
//! and its line there. A hook that panics is
//! logged and skipped; the others still run.
//!
//! The features of this crate register theirs on first use: the `zen`
//! event (always), the `metrics` facade, OpenTelemetry attributes, every
//! live dashboard and the budget lock. With none registered, a scope's end
//! costs one atomic load here.

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::tracker::budget::{Kind, Limits, Mode};
use crate::tracker::call_site::CallSite;
use crate::tracker::report::{Exemption, Figures, Outcome, Report};
use crate::tracker::timeline::Timeline;

/// What watches zen's scopes. Every hook has a no-op default.
pub trait Observer: Send + Sync + 'static {
    /// The hooks this observer implements: the registry calls only these,
    /// so a hook left out costs nothing (default: all of them).
    fn hooks(&self) -> Hooks {
        Hooks::ALL
    }

    /// A scope ended: its figures are final.
    fn scope_ended(&self, end: &ScopeEnd<'_>) {
        let _ = end;
    }

    /// A database operation starts (`start.elapsed()` is zero): what it
    /// returns is called with whether it succeeded when it ends (or is
    /// dropped), on whatever thread ends it. For work that lasts as long as
    /// the operation, such as a span.
    fn operation_started(&self, start: &OperationEnd<'_>) -> Option<OnEnd> {
        let _ = start;
        None
    }

    /// A database operation ended.
    fn operation_ended(&self, end: &OperationEnd<'_>) {
        let _ = end;
    }

    /// Calls `each` with every exemption this observer holds for scopes
    /// named `scope` (the budget lock's `[[exempt]]` entries): they judge a
    /// scope's report as the attribute's `exempt(...)` does.
    fn exemptions(&self, scope: &str, each: &mut dyn FnMut(&Exemption)) {
        let _ = (scope, each);
    }
}

/// What [`Observer::operation_started`] gives back: called with whether
/// the operation succeeded.
pub type OnEnd = Box<dyn FnOnce(bool) + Send + Sync>;

/// Which hooks of an [`Observer`] the registry calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hooks(u8);

impl Hooks {
    /// None: an observer that wants nothing now.
    pub const NONE: Hooks = Hooks(0);
    /// [`Observer::scope_ended`].
    pub const SCOPE_ENDED: Hooks = Hooks(1);
    /// [`Observer::operation_started`].
    pub const OPERATION_STARTED: Hooks = Hooks(2);
    /// [`Observer::operation_ended`].
    pub const OPERATION_ENDED: Hooks = Hooks(4);
    /// [`Observer::exemptions`].
    pub const EXEMPTIONS: Hooks = Hooks(8);
    /// Not a hook: while an observer that asks for it is registered, zen
    /// keeps where user code first ran each statement of a scope, for
    /// [`Statement::call_site`] (the budget lock asks, to put each
    /// regression at its line). It takes a stack once per scope name and
    /// statement in the process; not part of [`Hooks::ALL`].
    pub const CALL_SITES: Hooks = Hooks(16);
    /// Not a hook: while an observer that asks for it is registered, every
    /// scope records its timeline, for [`ScopeEnd::timeline`] (see
    /// [`timeline`](crate::timeline): an operation costs a lock and a
    /// push). Not part of [`Hooks::ALL`].
    pub const TIMELINES: Hooks = Hooks(32);
    /// Every hook.
    pub const ALL: Hooks = Hooks(15);

    /// Both sets of hooks.
    #[must_use]
    pub const fn and(self, other: Hooks) -> Hooks {
        Hooks(self.0 | other.0)
    }

    const fn has(self, hook: Hooks) -> bool {
        self.0 & hook.0 != 0
    }

    /// Its place in [`COUNTS`].
    const fn index(self) -> usize {
        self.0.trailing_zeros() as usize
    }
}

/// A scope's end, as an observer sees it.
pub struct ScopeEnd<'a> {
    pub(crate) name: &'a str,
    pub(crate) route: Option<Route<'a>>,
    pub(crate) kind: Kind,
    pub(crate) mode: Mode,
    pub(crate) outcome: Outcome,
    pub(crate) ended_at: Instant,
    pub(crate) figures: &'a Figures,
    pub(crate) limits: &'a Limits,
    pub(crate) measuring: bool,
    pub(crate) status: Option<u16>,
    pub(crate) source: &'a dyn Source,
}

/// A request's route: its method and its template, as the layer named it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route<'a> {
    /// `GET`, `POST`, ..., or `OTHER` for a method of the client's own.
    pub method: &'static str,
    /// The route template (`/articles/{slug}`), or `(unmatched)`.
    pub template: &'a str,
}

/// One statement of a scope: its fingerprint and what its runs took.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Statement<'a> {
    /// The statement with every value replaced: never a value. Shared with
    /// zen's own tables: clone it to keep it without a copy.
    pub fingerprint: &'a Arc<str>,
    /// The backend that ran it (`PostgreSQL`, `SQLite`, `redis`, ...).
    pub backend: &'static str,
    /// Times it ran, as each ended.
    pub count: u64,
    /// Their total time.
    pub total: Duration,
    pub(crate) first_site: Option<&'a Arc<CallSite>>,
}

impl Statement<'_> {
    /// Where user code first ran it, as `function (path:line)` with the
    /// path relative to the workspace: kept only while an observer that
    /// asks for [`Hooks::CALL_SITES`] is registered, and only when the run
    /// ended while its caller polled it. Named on the first call, from the
    /// program's debug information: ask for the statements you report, not
    /// for every one.
    #[must_use]
    pub fn call_site(&self) -> Option<String> {
        self.first_site.map(|site| site.resolve())
    }

    /// The total time, in nanoseconds.
    #[must_use]
    pub fn total_ns(&self) -> u64 {
        u64::try_from(self.total.as_nanos()).unwrap_or(u64::MAX)
    }
}

/// What the tracker gives a [`ScopeEnd`] when asked: the scope itself.
pub(crate) trait Source {
    fn report(&self) -> &Report;
    fn each_statement(&self, each: &mut dyn FnMut(Statement<'_>));
    fn each_host(&self, each: &mut dyn FnMut(&str, u64));
    fn n_plus_one(&self) -> usize;
    fn timeline(&self) -> Option<Arc<Timeline>>;
    /// Another reference to the scope.
    fn keep(&self) -> Arc<dyn Kept>;
}

/// What an [`EndedScope`] reads of the scope it keeps.
pub(crate) trait Kept: Send + Sync {
    fn report(&self) -> &Report;
}

/// A scope that ended, kept past the hook that saw it
/// ([`ScopeEnd::keep`]): its report can be built on another thread, later,
/// so that the thread that ended the scope does not pay for it.
#[derive(Clone)]
pub struct EndedScope(Arc<dyn Kept>);

impl EndedScope {
    /// The scope's full report, built the first time anyone asks (on this
    /// thread, if nobody did at the scope's end), and kept. Built later, it
    /// counts what the scope's counters hold then: the same, unless a task
    /// the scope spawned is still adding to them.
    #[must_use]
    pub fn report(&self) -> &Report {
        self.0.report()
    }
}

impl std::fmt::Debug for EndedScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndedScope").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ScopeEnd<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopeEnd")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("outcome", &self.outcome)
            .finish_non_exhaustive()
    }
}

impl<'a> ScopeEnd<'a> {
    /// The scope's name: the route for a request (`GET /articles/{slug}`),
    /// the job's name for a job, the fn's path (or its `name = ...`)
    /// otherwise.
    #[must_use]
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// A request's method and route template, apart.
    #[must_use]
    pub fn route(&self) -> Option<Route<'a>> {
        self.route
    }

    /// The kind of work.
    #[must_use]
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The mode it ran in.
    #[must_use]
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// How it ended: `Ok` only when none of its own budgets was exceeded.
    #[must_use]
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// For a request under the layer: the status of its response (see
    /// [`Report::status`]).
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// When it ended.
    #[must_use]
    pub fn ended_at(&self) -> Instant {
        self.ended_at
    }

    /// What it used.
    #[must_use]
    pub fn figures(&self) -> &'a Figures {
        self.figures
    }

    /// What it was held to.
    #[must_use]
    pub fn limits(&self) -> &'a Limits {
        self.limits
    }

    /// `true` for the scopes `testing::measure` and `testing::collect` open
    /// around the code they measure: a test's, not the application's.
    #[must_use]
    pub fn is_measurement(&self) -> bool {
        self.measuring
    }

    /// N+1 suspects: statements run past the scope's threshold.
    #[must_use]
    pub fn n_plus_one(&self) -> usize {
        self.source.n_plus_one()
    }

    /// Calls `each` with each statement the scope kept (at most 64; the
    /// report counts the rest).
    pub fn statements(&self, mut each: impl FnMut(Statement<'_>)) {
        if self.figures.queries() > 0 {
            self.source.each_statement(&mut each);
        }
    }

    /// Calls `each` with each host the scope called, and how many times.
    pub fn hosts(&self, mut each: impl FnMut(&str, u64)) {
        if self.figures.http_calls() > 0 {
            self.source.each_host(&mut each);
        }
    }

    /// The scope's full report, built the first time any observer asks
    /// (and kept for the others).
    #[must_use]
    pub fn report(&self) -> &'a Report {
        self.source.report()
    }

    /// The scope's timeline, when it recorded one (while an observer asks
    /// for [`Hooks::TIMELINES`]): made the first time any observer asks,
    /// and shared; keep it as long as you like.
    #[must_use]
    pub fn timeline(&self) -> Option<Arc<Timeline>> {
        self.source.timeline()
    }

    /// The scope, kept past this hook: hand it to a thread of your own and
    /// build its report there ([`EndedScope::report`]), as
    /// [`JsonLines`](crate::sinks::JsonLines) does. It keeps the scope's
    /// tables (at most 64 statements and 32 hosts) alive until dropped:
    /// bound how many you hold.
    #[must_use]
    pub fn keep(&self) -> EndedScope {
        EndedScope(self.source.keep())
    }
}

/// A database operation's end, as an observer sees it.
#[derive(Clone, Copy, Debug)]
pub struct OperationEnd<'a> {
    pub(crate) backend: &'static str,
    pub(crate) operation: &'static str,
    pub(crate) fingerprint: &'a str,
    pub(crate) elapsed: Duration,
    pub(crate) ok: bool,
}

impl<'a> OperationEnd<'a> {
    /// The backend, as its client named it (`PostgreSQL`, `SQLite`,
    /// `MySQL`, `redis`, ...).
    #[must_use]
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// The backend as OpenTelemetry's semantic conventions name it in
    /// `db.system.name`: `postgresql`, `sqlite`, `mysql`, `redis`, ...
    #[must_use]
    pub fn system(&self) -> &'static str {
        system_name(self.backend)
    }

    /// The operation, from a fixed set: `SELECT`, `INSERT`, ..., a Redis
    /// command, or `OTHER`. Never text of the statement's own.
    #[must_use]
    pub fn operation(&self) -> &'static str {
        self.operation
    }

    /// The statement's fingerprint: never a value.
    #[must_use]
    pub fn fingerprint(&self) -> &'a str {
        self.fingerprint
    }

    /// How long it took.
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// Whether it succeeded.
    #[must_use]
    pub fn ok(&self) -> bool {
        self.ok
    }
}

/// `postgresql`, `sqlite`, `mysql`, `redis`: the OpenTelemetry semantic
/// convention's `db.system.name` of a backend as zen names it.
pub(crate) fn system_name(backend: &'static str) -> &'static str {
    match backend {
        "PostgreSQL" => "postgresql",
        "SQLite" => "sqlite",
        "MySQL" => "mysql",
        _ => backend,
    }
}

/// Identifies a registered observer, to [`unregister`] it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ObserverId(u64);

/// A registered observer, with the hooks it asked for.
#[derive(Clone)]
struct Entry {
    id: ObserverId,
    hooks: Hooks,
    observer: Arc<dyn Observer>,
}

/// The registered observers, and for each hook (by [`Hooks::index`]) those
/// that take it, in order: a hook walks its own list only.
#[derive(Default)]
struct Registry {
    entries: Vec<Entry>,
    by_hook: [Box<[Arc<dyn Observer>]>; 4],
}

type Observers = Arc<Registry>;

/// Every registered observer, replaced whole on each change: a hook reads
/// its copy without a lock.
static REGISTRY: RwLock<Option<Observers>> = RwLock::new(None);
/// How many observers take each hook (by [`Hooks::index`]); [`UNSET`] until
/// the crate's own are registered.
static COUNTS: [AtomicUsize; 4] = [const { AtomicUsize::new(UNSET) }; 4];
/// Bumped on each change: a thread's copy of the registry is still good
/// while it holds.
static GENERATION: AtomicU64 = AtomicU64::new(0);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
const UNSET: usize = usize::MAX;
/// Whether a registered observer asks for [`Hooks::CALL_SITES`].
static CALL_SITES: AtomicBool = AtomicBool::new(false);
/// Whether a registered observer asks for [`Hooks::TIMELINES`].
static TIMELINES: AtomicBool = AtomicBool::new(false);

/// Whether scopes record their timeline: read once per scope, at its open.
#[inline]
pub(crate) fn timelines_wanted() -> bool {
    install();
    TIMELINES.load(Ordering::Acquire)
}

/// Whether zen keeps where each statement first ran: read once per
/// statement and scope, at its first run.
pub(crate) fn call_sites_wanted() -> bool {
    install();
    CALL_SITES.load(Ordering::Acquire)
}

/// Adds an observer for the life of the process, or until [`unregister`].
pub fn register(observer: impl Observer) -> ObserverId {
    install();
    let id = ObserverId(NEXT_ID.fetch_add(1, Ordering::Relaxed));
    let entry = Entry { id, hooks: observer.hooks(), observer: Arc::new(observer) };
    change(|observers| observers.push(entry));
    id
}

/// Removes an observer; `false` if it was not registered. (The crate's own
/// are registered like any other: removing one turns its output off.)
///
/// No hook of it starts once this returns (one running on another thread
/// may finish). It is dropped when no thread holds the registry from
/// before: this thread lets go of its copy here, every other at its next
/// scope or operation, or when it ends.
pub fn unregister(id: ObserverId) -> bool {
    install();
    let removed = change(|observers| observers.retain(|e| e.id != id));
    let old = SEEN.try_with(|seen| seen.try_borrow_mut().ok().and_then(|mut seen| seen.take()));
    crate::tracker::alloc::untracked(|| drop(old));
    removed
}

/// Every observer registered now.
#[must_use]
pub fn registered() -> Vec<ObserverId> {
    install();
    let registry = REGISTRY.read().unwrap_or_else(PoisonError::into_inner);
    registry.as_deref().map(|r| r.entries.iter().map(|e| e.id).collect()).unwrap_or_default()
}

/// Applies `edit` to the list; `true` when it changed it. zen's memory,
/// charged to no scope.
fn change(edit: impl FnOnce(&mut Vec<Entry>)) -> bool {
    crate::tracker::alloc::untracked(|| edit_registry(edit))
}

fn edit_registry(edit: impl FnOnce(&mut Vec<Entry>)) -> bool {
    let mut registry = REGISTRY.write().unwrap_or_else(PoisonError::into_inner);
    let mut observers: Vec<Entry> = registry.as_deref().map(|r| r.entries.clone()).unwrap_or_default();
    let before = observers.len();
    edit(&mut observers);
    let changed = observers.len() != before;
    let old = publish(&mut registry, observers);
    // An observer removed may be dropped with the old registry: after the
    // lock is let go, since its `Drop` may register or unregister another.
    drop(registry);
    drop(old);
    changed
}

/// Makes `observers` the registry, with each hook's list and count;
/// returns the registry it replaced.
fn publish(registry: &mut Option<Observers>, observers: Vec<Entry>) -> Option<Observers> {
    // Before the counts: a thread that sees them set (`install`) sees it.
    CALL_SITES.store(observers.iter().any(|e| e.hooks.has(Hooks::CALL_SITES)), Ordering::Release);
    TIMELINES.store(observers.iter().any(|e| e.hooks.has(Hooks::TIMELINES)), Ordering::Release);
    let mut by_hook: [Box<[Arc<dyn Observer>]>; 4] = Default::default();
    for hook in [Hooks::SCOPE_ENDED, Hooks::OPERATION_STARTED, Hooks::OPERATION_ENDED, Hooks::EXEMPTIONS] {
        let takers: Box<[Arc<dyn Observer>]> =
            observers.iter().filter(|e| e.hooks.has(hook)).map(|e| Arc::clone(&e.observer)).collect();
        COUNTS[hook.index()].store(takers.len(), Ordering::Release);
        by_hook[hook.index()] = takers;
    }
    let old = registry.replace(Arc::new(Registry { entries: observers, by_hook }));
    GENERATION.fetch_add(1, Ordering::Release);
    old
}

/// Registers the crate's own observers, once, before anything else is.
/// (They are made under the registry's lock: making one registers nothing
/// and ends no scope. What they read to start, such as the budget lock's
/// file, is zen's memory, charged to no scope.)
fn install() {
    if COUNTS[0].load(Ordering::Acquire) != UNSET {
        return;
    }
    crate::tracker::alloc::untracked(install_defaults);
}

fn install_defaults() {
    let mut registry = REGISTRY.write().unwrap_or_else(PoisonError::into_inner);
    if registry.is_some() {
        return;
    }
    let observers: Vec<Entry> = crate::default_observers()
        .into_iter()
        .map(|observer| Entry {
            id: ObserverId(NEXT_ID.fetch_add(1, Ordering::Relaxed)),
            hooks: observer.hooks(),
            observer,
        })
        .collect();
    publish(&mut registry, observers);
}

thread_local! {
    /// The registry as this thread last found it, and its generation: a
    /// hook reads it without touching memory other threads write, and
    /// takes the registry anew once a change bumped the generation.
    static SEEN: RefCell<Option<(u64, Observers)>> = const { RefCell::new(None) };
}

/// Calls `f` with the registry now: this thread's copy while no change was
/// made since, else the registry's (kept as the thread's new copy, and the
/// old one let go, unless a hook of this thread is running on it).
#[inline]
fn with_current(mut f: impl FnMut(&Registry)) {
    let generation = GENERATION.load(Ordering::Acquire);
    let seen = SEEN.try_with(|seen| match seen.try_borrow() {
        Ok(seen) => match &*seen {
            Some((g, observers)) if *g == generation => {
                f(observers);
                true
            }
            _ => false,
        },
        Err(_) => false,
    });
    if seen == Ok(true) {
        return;
    }
    let observers = REGISTRY.read().unwrap_or_else(PoisonError::into_inner).clone().unwrap_or_default();
    f(&observers);
    keep(generation, observers);
}

/// Makes `observers` this thread's copy of the registry, when no hook of
/// this thread is reading the old one. The old copy is dropped after the
/// borrow ends, so that an observer dropped with it may itself end a scope.
fn keep(generation: u64, observers: Observers) {
    let old = SEEN.try_with(|seen| seen.try_borrow_mut().ok().map(|mut seen| seen.replace((generation, observers))));
    drop(old);
}

/// Whether any observer takes `hook` (installing the crate's own first).
#[inline]
fn wanted(hook: Hooks) -> bool {
    match COUNTS[hook.index()].load(Ordering::Acquire) {
        0 => false,
        UNSET => {
            install();
            COUNTS[hook.index()].load(Ordering::Acquire) > 0
        }
        _ => true,
    }
}

/// Runs `call` on every observer that takes `hook`, each panic caught and
/// logged with `scope` (the scope's name, or the operation's backend): the
/// others still run. What they allocate is no scope's.
#[inline(never)]
fn each(hook: Hooks, scope: &str, mut call: impl FnMut(&dyn Observer)) {
    crate::tracker::alloc::untracked(|| {
        with_current(|registry| {
            for observer in &registry.by_hook[hook.index()] {
                if catch_unwind(AssertUnwindSafe(|| call(&**observer))).is_err() {
                    panicked(scope);
                }
            }
        });
    });
}

#[cold]
fn panicked(scope: &str) {
    tracing::error!(target: "zen", name = scope, "a zen observer panicked; the others ran");
}

/// Calls what observers gave back at an operation's start, a panic caught
/// and logged as a hook's is. What it allocates is no scope's.
pub(crate) fn operation_ends(on_end: OnEnd, backend: &str, ok: bool) {
    crate::tracker::alloc::untracked(|| {
        if catch_unwind(AssertUnwindSafe(|| on_end(ok))).is_err() {
            panicked(backend);
        }
    });
}

/// Hands a scope's end to every observer.
#[inline]
pub(crate) fn scope_ended(end: &ScopeEnd<'_>) {
    if wanted(Hooks::SCOPE_ENDED) {
        each(Hooks::SCOPE_ENDED, end.name, |o| o.scope_ended(end));
    }
}

/// Tells the observers a database operation starts; what they give back
/// is called when it ends.
/// (`start` is made only when an observer takes the hook.)
#[inline]
pub(crate) fn operation_started<'a>(start: impl FnOnce() -> OperationEnd<'a>) -> Option<OnEnd> {
    if !wanted(Hooks::OPERATION_STARTED) {
        return None;
    }
    let start = &start();
    let mut on_end: Option<OnEnd> = None;
    each(Hooks::OPERATION_STARTED, start.backend, |o| {
        if let Some(next) = o.operation_started(start) {
            on_end = Some(match on_end.take() {
                None => next,
                // Each one's panic caught apart: the next still runs.
                Some(first) => {
                    let backend = start.backend;
                    Box::new(move |ok| {
                        operation_ends(first, backend, ok);
                        operation_ends(next, backend, ok);
                    })
                }
            });
        }
    });
    on_end
}

/// Hands a database operation's end to every observer.
/// (`end` is made only when an observer takes the hook.)
#[inline]
pub(crate) fn operation_ended<'a>(end: impl FnOnce() -> OperationEnd<'a>) {
    if wanted(Hooks::OPERATION_ENDED) {
        let end = &end();
        each(Hooks::OPERATION_ENDED, end.backend, |o| o.operation_ended(end));
    }
}

/// Calls `each_one` with every exemption the observers hold for `scope`.
pub(crate) fn exemptions(scope: &str, each_one: &mut dyn FnMut(&Exemption)) {
    if wanted(Hooks::EXEMPTIONS) {
        each(Hooks::EXEMPTIONS, scope, |o| o.exemptions(scope, each_one));
    }
}

/// Whether any observer may hold exemptions.
pub(crate) fn has_exemptions() -> bool {
    wanted(Hooks::EXEMPTIONS)
}
