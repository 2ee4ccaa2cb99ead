//! The tracker: one `Scope` per call of an annotated fn, made current on the
//! polling thread for the duration of every poll of its future.
//!
//! Usage is recorded with relaxed atomics on the current scope and each of
//! its parents, so a nested scope counts toward every enclosing one and tasks
//! started with `zen_runtime::spawn` (which carry the scope along) can record
//! from any thread.

use std::borrow::Cow;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crate::budget::{Budget, Kind, Limits, Mode};
use crate::error::BudgetExceeded;
use crate::report::{Memory, Outcome, Report, Violation};
use crate::stats::{self, DbStats, HttpStats};

/// What a thread knows of the scope it is polling: the scope, and the heap
/// its allocations added since the scope was entered (flushed into the
/// scope when it is left, so the allocator touches no shared memory).
/// Aligned to its own cache lines, away from heap chunks. `allocated` and
/// `live` are kept apart: side by side, the compiler updates both with one
/// 16-byte load and store, which a free's 8-byte store to `live` then
/// stalls (store forwarding fails), a third of the allocator's cost.
#[repr(C, align(128))]
pub(crate) struct ThreadState {
    // Raw, not `Arc`: setting it costs no reference count, and the owner (the
    // future being polled, or a guard) keeps the scope alive while it is set.
    pub(crate) current: Cell<*const Scope>,
    pub(crate) live: Cell<i64>,
    pub(crate) peak: Cell<i64>,
    pub(crate) allocated: Cell<u64>,
    /// The current scope was carried here (by `spawn`, `attach`), not
    /// entered by its own future: no `#[zen]` fn may be adopted by it.
    carried: Cell<bool>,
}

thread_local! {
    pub(crate) static THREAD: ThreadState = const {
        ThreadState {
            current: Cell::new(std::ptr::null()),
            live: Cell::new(0),
            peak: Cell::new(0),
            allocated: Cell::new(0),
            carried: Cell::new(false),
        }
    };
}

impl ThreadState {
    /// Makes `next` current, first handing the heap counted so far to the
    /// scope that was current.
    fn switch(&self, next: *const Scope) -> *const Scope {
        // Only `ZenAlloc` moves these: without it, two reads and no more.
        if self.allocated.get() != 0 || self.live.get() != 0 {
            self.flush();
        }
        self.current.replace(next)
    }

    fn flush(&self) {
        let (allocated, live, peak) = (self.allocated.replace(0), self.live.replace(0), self.peak.replace(0));
        crate::alloc::mark_installed();
        // SAFETY: as in `current`: the pointee is alive while it is current.
        if let Some(scope) = unsafe { self.current.get().as_ref() } {
            scope.add_memory(allocated, live, peak);
        }
    }
}

/// Reports of nested scopes, gathered for `zen_runtime::testing::collect`.
pub(crate) type Collector = Arc<Mutex<Vec<Report>>>;

pub(crate) struct Scope {
    pub(crate) name: Cow<'static, str>,
    pub(crate) kind: Kind,
    /// For a job: which attempt this is, 1 for the first.
    pub(crate) attempt: Option<u32>,
    pub(crate) parent: Option<Arc<Scope>>,
    start: Instant,
    terms: Terms,
    /// A request scope opened by the layer: the first `#[zen]` fn run
    /// directly inside it (the handler) tightens its terms instead of opening
    /// a scope of its own.
    adoptable: AtomicBool,
    adopted: OnceLock<Terms>,
    /// How a layer's request ended, and its report, built when first
    /// asked for (most requests are never asked).
    /// Nanoseconds to the end, `u64::MAX` until sealed; plain atomics, as
    /// a `OnceLock` costs a slow path on every request.
    sealed_nanos: AtomicU64,
    sealed_outcome: std::sync::atomic::AtomicU8,
    built: OnceLock<Box<Report>>,
    collector: Option<Collector>,
    pub(crate) panicked: AtomicBool,
    /// A statement reached the N+1 threshold: the report must be built and
    /// warned about even within budget.
    pub(crate) suspected: AtomicBool,
    usage: Usage,
}

/// A scope's main figures, read without building a report.
#[cfg(feature = "tower")]
#[derive(Clone, Copy, Debug)]
pub(crate) struct Figures {
    pub(crate) queries: u64,
    pub(crate) db_time: Duration,
    pub(crate) db_wait: Duration,
    pub(crate) http_calls: u64,
    pub(crate) http_time: Duration,
    pub(crate) memory: Option<Memory>,
    pub(crate) limits: Limits,
}

/// What a scope is held to.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Terms {
    pub(crate) limits: Limits,
    pub(crate) mode: Mode,
    pub(crate) deadline: Option<Instant>,
    pub(crate) n_plus_one: u32,
    /// The annotated handler adopted by a request scope.
    pub(crate) handler: Option<&'static str>,
}

#[derive(Default)]
struct Usage {
    queries: AtomicU64,
    failed_queries: AtomicU64,
    refused_queries: AtomicU64,
    db_nanos: AtomicU64,
    wait_nanos: AtomicU64,
    db: Mutex<DbStats>,
    hosts: Mutex<HttpStats>,
    mem_allocated: AtomicU64,
    mem_live: AtomicI64,
    mem_peak: AtomicI64,
    http_calls: AtomicU64,
    failed_http: AtomicU64,
    refused_http: AtomicU64,
    http_nanos: AtomicU64,
}

/// What a new scope is: name, kind, limits and the mode written on it.
pub(crate) struct Spec {
    pub(crate) name: Cow<'static, str>,
    pub(crate) kind: Option<Kind>,
    pub(crate) mode: Option<Mode>,
    pub(crate) limits: Limits,
    pub(crate) n_plus_one: Option<u32>,
    pub(crate) collector: Option<Collector>,
    /// Opened by a boundary (the HTTP layer, a job runner): the first
    /// `#[zen]` fn of the same kind run directly inside it is adopted.
    pub(crate) adoptable: bool,
    pub(crate) attempt: Option<u32>,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn ceil_ms(nanos: u64) -> u64 {
    nanos.div_ceil(1_000_000)
}

/// Database operations or external calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resource {
    Db,
    Http,
}

impl Scope {
    /// A scope nested in the current one, if any.
    pub(crate) fn open(spec: Spec) -> Arc<Scope> {
        let parent = current();
        let kind = spec.kind.or_else(|| parent.as_ref().map(|p| p.kind)).unwrap_or(Kind::Other);
        let mode = spec.mode.unwrap_or_else(crate::config::global_mode);
        let start = Instant::now();
        Arc::new(Scope {
            name: spec.name,
            kind,
            attempt: spec.attempt,
            terms: Terms {
                limits: spec.limits,
                mode,
                deadline: spec.limits.timeout().map(|t| start + t),
                n_plus_one: spec.n_plus_one.unwrap_or_else(crate::config::n_plus_one),
                handler: None,
            },
            adoptable: AtomicBool::new(spec.adoptable),
            adopted: OnceLock::new(),
            sealed_nanos: AtomicU64::new(u64::MAX),
            sealed_outcome: std::sync::atomic::AtomicU8::new(0),
            built: OnceLock::new(),
            parent,
            start,
            collector: spec.collector,
            panicked: AtomicBool::new(false),
            suspected: AtomicBool::new(false),
            usage: Usage::default(),
        })
    }

    /// What the scope is held to: as opened, or as tightened by the handler.
    pub(crate) fn terms(&self) -> &Terms {
        self.adopted.get().unwrap_or(&self.terms)
    }

    pub(crate) fn mode(&self) -> Mode {
        self.terms().mode
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.terms().deadline
    }

    /// Called by a `#[zen]` fn about to open its scope: when the current
    /// scope is a boundary's (a request, a job) that has no fn yet, and the
    /// fn's kind is unset or the same, the fn is its handler. The scope then holds the tighter of each pair of limits, the
    /// deadline counted from the request's start, and the fn's mode and N+1
    /// threshold where it sets them; the fn reports nothing of its own.
    pub(crate) fn adopt(
        name: &'static str,
        kind: Option<Kind>,
        limits: Limits,
        mode: Option<Mode>,
        n_plus_one: Option<u32>,
    ) -> Option<Arc<Scope>> {
        let (ptr, carried) = THREAD.with(|t| (t.current.get(), t.carried.get()));
        if carried {
            return None;
        }
        // SAFETY: as in `current`.
        let scope = unsafe { ptr.as_ref() }?;
        if kind.is_some_and(|k| k != scope.kind)
            || !scope.adoptable.load(Relaxed)
            || !scope.adoptable.swap(false, Relaxed)
        {
            return None;
        }
        let before = scope.terms;
        let limits = before.limits.tighter(limits);
        let terms = Terms {
            limits,
            mode: mode.unwrap_or(before.mode),
            deadline: limits.timeout().map(|t| scope.start + t),
            n_plus_one: n_plus_one.unwrap_or(before.n_plus_one),
            handler: Some(name),
        };
        // Only the swap above gets here, once per scope.
        let _ = scope.adopted.set(terms);
        current()
    }

    /// This scope, then each enclosing one.
    pub(crate) fn chain(&self) -> impl Iterator<Item = &Scope> {
        std::iter::successors(Some(self), |s| s.parent.as_deref())
    }

    /// In `enforce`, refuses an operation that this scope or an enclosing
    /// enforced one has no budget left for; counts the refusal.
    pub(crate) fn admit(&self, resource: Resource) -> Result<(), BudgetExceeded> {
        let mut enforced = self.chain().filter(|s| s.mode() == Mode::Enforce).peekable();
        if enforced.peek().is_none() {
            return Ok(());
        }
        let now = Instant::now();
        for scope in enforced {
            if let Some(exceeded) = scope.refusal(resource, now) {
                let refused = match resource {
                    Resource::Db => &scope.usage.refused_queries,
                    Resource::Http => &scope.usage.refused_http,
                };
                refused.fetch_add(1, Relaxed);
                return Err(exceeded);
            }
        }
        Ok(())
    }

    fn refusal(&self, resource: Resource, now: Instant) -> Option<BudgetExceeded> {
        let u = &self.usage;
        let (count, budget_count, time, budget_time) = match resource {
            Resource::Db => (&u.queries, Budget::Queries, &u.db_nanos, Budget::DbTime),
            Resource::Http => (&u.http_calls, Budget::HttpCalls, &u.http_nanos, Budget::HttpTime),
        };
        if let Some(max) = self.terms().limits.get(budget_count) {
            let used = count.load(Relaxed);
            if used >= max {
                return Some(self.exceeded(budget_count, max, used + 1));
            }
        }
        if let Some(max) = self.terms().limits.get(budget_time) {
            let used = time.load(Relaxed);
            if used >= max * 1_000_000 {
                return Some(self.exceeded(budget_time, max, ceil_ms(used)));
            }
        }
        if let Some(max) = self.terms().limits.get(Budget::Memory)
            && self.peak_kib() > max
        {
            return Some(self.exceeded(Budget::Memory, max, self.peak_kib()));
        }
        self.past_deadline(now)
    }

    fn past_deadline(&self, now: Instant) -> Option<BudgetExceeded> {
        let deadline = self.deadline()?;
        (now >= deadline).then(|| {
            let limit = self.terms().limits.get(Budget::Timeout).unwrap_or(0);
            self.exceeded(Budget::Timeout, limit, ceil_ms(nanos(now - self.start)))
        })
    }

    fn exceeded(&self, budget: Budget, limit: u64, used: u64) -> BudgetExceeded {
        BudgetExceeded::new(self.name.clone(), budget, limit, used)
    }

    /// The most an operation may take: the smallest of the time left before
    /// each enforced deadline and in each enforced time budget.
    pub(crate) fn time_left(&self, resource: Resource) -> Option<Duration> {
        let mut enforced = self.chain().filter(|s| s.mode() == Mode::Enforce).peekable();
        enforced.peek()?;
        let now = Instant::now();
        let mut left: Option<Duration> = None;
        for scope in enforced {
            let (time, budget) = match resource {
                Resource::Db => (&scope.usage.db_nanos, Budget::DbTime),
                Resource::Http => (&scope.usage.http_nanos, Budget::HttpTime),
            };
            let budget_left = scope
                .terms()
                .limits
                .get(budget)
                .map(|max| Duration::from_nanos((max * 1_000_000).saturating_sub(time.load(Relaxed))));
            let deadline_left = scope.deadline().map(|d| d.saturating_duration_since(now));
            for candidate in [budget_left, deadline_left].into_iter().flatten() {
                left = Some(left.map_or(candidate, |l| l.min(candidate)));
            }
        }
        left
    }

    /// Counts an issued database operation on this scope and its parents,
    /// and notes where user code issued it once it looks like N+1.
    pub(crate) fn issue_query(&self, backend: &'static str, fingerprint: &Arc<str>) {
        let mut suspect = false;
        for scope in self.chain() {
            scope.usage.queries.fetch_add(1, Relaxed);
            let mut db = scope.usage.db.lock().unwrap_or_else(PoisonError::into_inner);
            let count = db.issue(fingerprint, backend);
            let threshold = scope.terms().n_plus_one;
            if threshold > 0 && count >= u64::from(threshold) {
                scope.suspected.store(true, Relaxed);
                suspect |= !db.has_call_site(fingerprint);
            }
        }
        if suspect {
            let site = stats::CallSite::of(&self.name, fingerprint);
            for scope in self.chain() {
                scope.usage.db.lock().unwrap_or_else(PoisonError::into_inner).set_call_site(fingerprint, &site);
            }
        }
    }

    /// Records how an issued database operation ended.
    pub(crate) fn finish_query(&self, backend: &'static str, fingerprint: &Arc<str>, elapsed: Duration, ok: bool) {
        let ns = nanos(elapsed);
        for scope in self.chain() {
            let u = &scope.usage;
            u.db_nanos.fetch_add(ns, Relaxed);
            if !ok {
                u.failed_queries.fetch_add(1, Relaxed);
            }
            u.db.lock().unwrap_or_else(PoisonError::into_inner).finish(fingerprint, backend, ns, ok);
        }
    }

    /// Adds heap counted on one thread: `allocated` bytes, `live` net bytes,
    /// and `peak`, the highest the net reached on that thread meanwhile.
    pub(crate) fn add_memory(&self, allocated: u64, live: i64, peak: i64) {
        for scope in self.chain() {
            let u = &scope.usage;
            u.mem_allocated.fetch_add(allocated, Relaxed);
            let before = u.mem_live.fetch_add(live, Relaxed);
            u.mem_peak.fetch_max(before + peak, Relaxed);
        }
    }

    fn memory(&self) -> Option<Memory> {
        let u = &self.usage;
        if !crate::alloc::installed() && self.terms().limits.get(Budget::Memory).is_some() {
            crate::alloc::warn_if_not_installed();
        }
        crate::alloc::installed().then(|| Memory {
            allocated: u.mem_allocated.load(Relaxed),
            // Frees of memory allocated elsewhere never take a figure below zero.
            peak: u64::try_from(u.mem_peak.load(Relaxed)).unwrap_or(0),
            retained: u64::try_from(u.mem_live.load(Relaxed)).unwrap_or(0),
        })
    }

    fn peak_kib(&self) -> u64 {
        u64::try_from(self.usage.mem_peak.load(Relaxed)).unwrap_or(0).div_ceil(1024)
    }

    /// Records time spent waiting for a pooled connection.
    pub(crate) fn record_wait(&self, elapsed: Duration) {
        let ns = nanos(elapsed);
        for scope in self.chain() {
            scope.usage.wait_nanos.fetch_add(ns, Relaxed);
        }
    }

    /// Records a finished external call on this scope and its parents.
    pub(crate) fn record_call(&self, host: &str, elapsed: Duration, ok: bool) {
        let ns = nanos(elapsed);
        for scope in self.chain() {
            let u = &scope.usage;
            u.http_calls.fetch_add(1, Relaxed);
            u.http_nanos.fetch_add(ns, Relaxed);
            if !ok {
                u.failed_http.fetch_add(1, Relaxed);
            }
            u.hosts.lock().unwrap_or_else(PoisonError::into_inner).record(host, ns, ok);
        }
    }

    /// In `enforce`: the budget this scope has blown, if any, so that its
    /// future can be cut.
    pub(crate) fn blown(&self) -> Option<BudgetExceeded> {
        let now = Instant::now();
        if let Some(v) = self.violations(now - self.start).first() {
            return Some(self.exceeded(v.budget, v.limit, v.used));
        }
        // A refusal at exactly the limit is not a violation of the figures,
        // but the work it belongs to cannot go on.
        let u = &self.usage;
        let db = (u.refused_queries.load(Relaxed) > 0).then(|| self.refusal(Resource::Db, now)).flatten();
        db.or_else(|| (u.refused_http.load(Relaxed) > 0).then(|| self.refusal(Resource::Http, now)).flatten())
    }

    fn violations(&self, elapsed: Duration) -> Vec<Violation> {
        let u = &self.usage;
        let used = |budget: Budget| match budget {
            Budget::Queries => u.queries.load(Relaxed) + u.refused_queries.load(Relaxed),
            Budget::DbTime => ceil_ms(u.db_nanos.load(Relaxed)),
            Budget::Memory => self.peak_kib(),
            Budget::Timeout => ceil_ms(nanos(elapsed)),
            Budget::HttpCalls => u.http_calls.load(Relaxed) + u.refused_http.load(Relaxed),
            Budget::HttpTime => ceil_ms(u.http_nanos.load(Relaxed)),
        };
        let mut violations = Vec::new();
        for budget in Budget::ALL {
            let Some(limit) = self.terms().limits.get(budget) else {
                continue;
            };
            let over = match budget {
                // Time budgets compare exact nanoseconds, so 200.4 ms breaks 200 ms.
                Budget::DbTime => u.db_nanos.load(Relaxed) > limit * 1_000_000,
                Budget::HttpTime => u.http_nanos.load(Relaxed) > limit * 1_000_000,
                Budget::Timeout => nanos(elapsed) > limit * 1_000_000,
                _ => used(budget) > limit,
            };
            if over {
                violations.push(Violation { budget, limit, used: used(budget) });
            }
        }
        violations
    }

    /// The scope's report, `elapsed` after its start.
    pub(crate) fn report(&self, outcome: Outcome, elapsed: Duration) -> Report {
        let u = &self.usage;
        let terms = *self.terms();
        let violations = self.violations(elapsed);
        let queries = u.queries.load(Relaxed);
        let http_calls = u.http_calls.load(Relaxed);
        let db = if queries == 0 && u.refused_queries.load(Relaxed) == 0 {
            stats::Summary::default()
        } else {
            u.db.lock().unwrap_or_else(PoisonError::into_inner).summary(terms.n_plus_one)
        };
        let outcome = match outcome {
            Outcome::Ok if !violations.is_empty() => Outcome::Exceeded,
            other => other,
        };
        Report {
            name: self.name.clone(),
            kind: self.kind,
            handler: terms.handler,
            attempt: self.attempt,
            mode: terms.mode,
            outcome,
            elapsed,
            queries,
            failed_queries: u.failed_queries.load(Relaxed),
            refused_queries: u.refused_queries.load(Relaxed),
            db_time: Duration::from_nanos(u.db_nanos.load(Relaxed)),
            db_wait: Duration::from_nanos(u.wait_nanos.load(Relaxed)),
            slowest_query: db.slowest,
            statements: db.statements,
            untracked_statements: db.untracked,
            n_plus_one: db.n_plus_one,
            backends: db.backends,
            http_calls,
            failed_http_calls: u.failed_http.load(Relaxed),
            refused_http_calls: u.refused_http.load(Relaxed),
            http_time: Duration::from_nanos(u.http_nanos.load(Relaxed)),
            http_hosts: if http_calls == 0 {
                Vec::new()
            } else {
                u.hosts.lock().unwrap_or_else(PoisonError::into_inner).summary()
            },
            memory: self.memory(),
            limits: terms.limits,
            violations,
        }
    }

    /// `true` when an enclosing scope collects reports.
    pub(crate) fn collected(&self) -> bool {
        self.chain().skip(1).any(|s| s.collector.is_some())
    }

    /// `true` when this scope, `elapsed` after its start, has exceeded a budget.
    pub(crate) fn exceeded_any(&self, elapsed: Duration) -> bool {
        !self.violations(elapsed).is_empty()
    }

    /// Records how the scope ended, for [`sealed_report`](Self::sealed_report).
    pub(crate) fn seal(&self, outcome: Outcome, elapsed: Duration) {
        // An ended request or job adopts nothing more.
        self.adoptable.store(false, Relaxed);
        let code = match outcome {
            Outcome::Ok => 0,
            Outcome::Exceeded => 1,
            Outcome::Cancelled => 2,
            Outcome::Panicked => 3,
        };
        self.sealed_outcome.store(code, Relaxed);
        self.sealed_nanos.store(nanos(elapsed).min(u64::MAX - 1), std::sync::atomic::Ordering::Release);
    }

    /// The report of a sealed scope, built once.
    pub(crate) fn sealed_report(&self) -> Option<&Report> {
        let ns = self.sealed_nanos.load(std::sync::atomic::Ordering::Acquire);
        if ns == u64::MAX {
            return None;
        }
        let outcome = match self.sealed_outcome.load(Relaxed) {
            0 => Outcome::Ok,
            1 => Outcome::Exceeded,
            2 => Outcome::Cancelled,
            _ => Outcome::Panicked,
        };
        let elapsed = Duration::from_nanos(ns);
        Some(self.built.get_or_init(|| Box::new(self.report(outcome, elapsed))))
    }

    /// The figures a `Server-Timing` header shows, without a report.
    #[cfg(feature = "tower")]
    pub(crate) fn figures(&self) -> Figures {
        let u = &self.usage;
        Figures {
            queries: u.queries.load(Relaxed),
            db_time: Duration::from_nanos(u.db_nanos.load(Relaxed)),
            db_wait: Duration::from_nanos(u.wait_nanos.load(Relaxed)),
            http_calls: u.http_calls.load(Relaxed),
            http_time: Duration::from_nanos(u.http_nanos.load(Relaxed)),
            memory: self.memory(),
            limits: self.terms().limits,
        }
    }

    pub(crate) fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Hands a finished report to every enclosing collector.
    pub(crate) fn collect(&self, report: &Report) {
        for scope in self.chain().skip(1) {
            if let Some(collector) = &scope.collector {
                collector.lock().unwrap_or_else(PoisonError::into_inner).push(report.clone());
            }
        }
    }
}

/// The scope being polled on this thread, if any.
pub(crate) fn current() -> Option<Arc<Scope>> {
    let ptr = THREAD.with(|t| t.current.get());
    if ptr.is_null() {
        return None;
    }
    // SAFETY: `CURRENT` only holds a pointer obtained from an `Arc<Scope>`
    // that the `Enter` guard's owner keeps alive until the guard restores the
    // previous value, so the allocation is live and may gain a reference.
    unsafe {
        Arc::increment_strong_count(ptr);
        Some(Arc::from_raw(ptr))
    }
}

/// Runs `f` with a borrow of the current scope, without touching its count.
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&Scope>) -> R) -> R {
    let ptr = THREAD.with(|t| t.current.get());
    // SAFETY: as in `current`: the pointee outlives this call, since the guard
    // that set it is further up this thread's stack.
    f(unsafe { ptr.as_ref() })
}

/// Makes a scope current until dropped. Dropped by unwinding, it marks the
/// scope panicked (unless it only carries the scope into a spawned task);
/// `exit` is the normal way out.
pub(crate) struct Enter<'a> {
    owner: Option<&'a Scope>,
    prev: *const Scope,
    prev_carried: bool,
}

impl<'a> Enter<'a> {
    /// Entered by the scope's own future: a panic through it is the scope's.
    pub(crate) fn new(scope: &'a Arc<Scope>) -> Self {
        let (prev, prev_carried) = THREAD.with(|t| (t.switch(Arc::as_ptr(scope)), t.carried.replace(false)));
        Enter { owner: Some(scope), prev, prev_carried }
    }

    /// Entered by a task that carries the scope: its panic is its own.
    pub(crate) fn carry(scope: Option<&'a Arc<Scope>>) -> Self {
        let ptr = scope.map_or(std::ptr::null(), Arc::as_ptr);
        let (prev, prev_carried) = THREAD.with(|t| (t.switch(ptr), t.carried.replace(true)));
        Enter { owner: None, prev, prev_carried }
    }

    fn restore(&self) {
        THREAD.with(|t| {
            t.switch(self.prev);
            t.carried.set(self.prev_carried);
        });
    }

    pub(crate) fn exit(self) {
        self.restore();
        std::mem::forget(self);
    }
}

impl Drop for Enter<'_> {
    fn drop(&mut self) {
        self.restore();
        if let Some(scope) = self.owner {
            scope.panicked.store(true, Relaxed);
        }
    }
}

impl Scope {
    /// The enforced budget an operation ran out of: the first blown one in
    /// the chain, else the innermost enforced deadline.
    pub(crate) fn expired(&self) -> BudgetExceeded {
        let enforced = || self.chain().filter(|s| s.mode() == Mode::Enforce);
        enforced().find_map(Scope::blown).unwrap_or_else(|| enforced().next().unwrap_or(self).timed_out())
    }

    /// The deadline has passed: the `timeout_ms` error, as the timer saw it.
    pub(crate) fn timed_out(&self) -> BudgetExceeded {
        let limit = self.terms().limits.get(Budget::Timeout).unwrap_or(0);
        self.exceeded(Budget::Timeout, limit, ceil_ms(nanos(self.start.elapsed())).max(limit))
    }
}
