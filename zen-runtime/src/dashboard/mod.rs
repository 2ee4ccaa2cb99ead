//! A live budget dashboard, per route and per job (feature `dashboard`).
//!
//! A [`Dashboard`] sees every scope that ends in the process, from its
//! counters (no report is built for it), and keeps, per scope name and
//! kind, in fixed memory: counts and outcomes; p50, p95, p99 and max of
//! queries, database time, elapsed time, peak memory and external calls,
//! each beside its limit; violations and the use of each budget; the
//! statements by total time (fingerprints only); N+1 suspects with their
//! call sites; a ten-minute series of each name's highest use of a limit;
//! and the last 100 exceeded, cancelled or panicked reports in full (each
//! name keeps its last 5 in brief, with the full report while the ring
//! holds it; see [`Options`]).
//!
//! Its pages are served by a layer you add ([`Dashboard::layer`]), never by
//! default, behind an authorisation check you must give: there is no open
//! mode. A request it refuses goes on to your application, which answers it
//! as any path it does not know (same status, headers and body), so a
//! stranger cannot tell where the dashboard is:
//!
//! ```no_run
//! # fn app() -> Result<axum::Router, Box<dyn std::error::Error>> {
//! use axum::Router;
//! use zen_runtime::dashboard::{Authorize, Dashboard};
//! use zen_runtime::layer::ZenLayer;
//!
//! let dashboard = Dashboard::new();
//! let token = std::env::var("ZEN_DASHBOARD_TOKEN").map_err(|e| format!("ZEN_DASHBOARD_TOKEN: {e}"))?;
//! let app: Router = Router::new()
//!     // ... your routes ...
//!     .layer(ZenLayer::new())
//!     // After the layer: looking at the dashboard is nobody's request.
//!     .layer(dashboard.layer("/_zen", Authorize::token(&token)?));
//! // Or `Authorize::with(|parts| ...)`: your session, your proxy's header.
//! # Ok(app) }
//! ```
//!
//! Open `/_zen?token=...` once: the token (16 characters or more, letters,
//! digits, `-` and `_`) becomes an HTTP-only, same-site cookie scoped to the
//! dashboard's path (`Secure` over TLS, or with
//! [`Authorize::secure_cookie`]`(true)`), and leaves the address.
//! `Authorization: Bearer ...` (the scheme in any case) works too.
//! [`Dashboard::router`] gives the pages as a `Router` of their own, for a
//! listener apart (an admin port); there, a refused request gets an empty
//! `404`. `cargo run --example quickstart -- --serve` mounts it and prints
//! its address with a fresh token.
//!
//! # The pages
//!
//! The overview lists every route and job, sortable by use and violation
//! rate, with a small chart of the last ten minutes; each route's page has
//! its figures and budgets, a chart of its use, the histogram of each
//! figure, its statements, N+1 suspects and recent bad requests. Pages
//! refresh themselves when scopes end (server-sent events, then the page
//! fetches itself). `api/overview` and `api/routes/{id}` give the same data
//! as JSON. Pages are rendered on the server with every text escaped (route
//! templates, job names and statements are user-influenced), no inline
//! script or style, and `Content-Security-Policy: default-src 'none';
//! script-src 'self'; style-src 'self'; ...`, `X-Frame-Options: DENY`,
//! `Cache-Control: no-store`.
//!
//! # A request's timeline
//!
//! A dashboard asks every scope for its [timeline](crate::timeline) and
//! keeps, per name, those of its worst scopes (panicked, then over budget,
//! then the slowest; [`Options::timelines`], 3 by default) and the last
//! two of a sample of the others ([`Options::sample_one_in`], one in 100).
//! A route's page draws the worst one as a waterfall (server-side SVG: a
//! bar per operation on a time axis, coloured by backend and outlined by
//! outcome, the scope's polls and the gaps where nothing ran, `timeout_ms`
//! as a line, each bar's statement and figures on hover) with its
//! duplicates, repeated calls and N+1 suspects at their call sites, and
//! links each kept one's own page, `requests/{id}` (JSON:
//! `api/requests/{id}`). While a dashboard asks, recording costs each
//! operation of every scope about 1,400 instructions, and a request of a
//! realistic endpoint some 4 to 8 thousand (1 to 2%; BENCHMARKS.md); with
//! both options 0 the dashboard asks for none. Kept timelines take about
//! 1 KiB each, at most some 25 KiB: 62 MiB for 500 names at the bounds.
//!
//! # Bounds and cost
//!
//! At most 500 names per kind
//! ([`config::set_max_names`](crate::config::set_max_names), or fewer with
//! [`Options::max_names`]; later ones share [`OTHER_NAMES`]), 16 statements
//! and 8 N+1 suspects per name, and fixed-size histograms: HDR's layout at
//! one significant digit (exact below 16, then 8 buckets per power of two,
//! so a quantile is at most 12.5% high), 960 bytes, allocated once a value
//! above zero is seen; HDR histograms from the `hdrhistogram` crate would
//! take some 30 KB each at two digits. For 1,000 names the dashboard holds
//! about 10 MiB with their timelines (6 before timelines), and 46 MiB when
//! every scope blows its budget with 16 long statements (BENCHMARKS.md).
//! Collecting adds about 1,000 instructions (50
//! to 100 ns) to each scope, and the timelines it asks for (above) more;
//! without the feature, nothing.
//!
//! Tested in a real browser: `tests/dashboard_browser.rs` drives Debian's
//! headless Chromium through ChromeDriver after known traffic (a route's
//! query p99 and violations, sorting, the route page opened from the
//! overview, markup in a name and a statement shown as text and never run,
//! the refused request, the page refreshing itself) and writes screenshots
//! to `target/zen-dashboard/`.

mod histogram;
mod mount;
mod page;
mod route;
mod router;
mod waterfall;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock, Weak};
use std::time::{Instant, SystemTime};

pub use mount::{DashboardFuture, DashboardLayer, DashboardService};
pub use router::{Authorize, WeakToken};

use crate::tracker::budget::Kind;
use crate::tracker::hash::FxBuild;
use crate::tracker::observe::{self, Hooks, Observer, ObserverId, ScopeEnd};
use crate::tracker::report::Outcome;
use route::{Recent, Route, SLOT_SECONDS, Stats};

pub use crate::tracker::config::OTHER_NAMES;

/// What a dashboard keeps.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    max_names: Option<usize>,
    recent: usize,
    recent_per_name: usize,
    timelines: usize,
    sample_one_in: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options { max_names: None, recent: 100, recent_per_name: 5, timelines: 3, sample_one_in: 100 }
    }
}

impl Options {
    /// Distinct scope names (per kind) kept apart; later ones are grouped
    /// under [`OTHER_NAMES`]. Default: zen's one cap,
    /// [`config::max_names`](crate::config::max_names); a dashboard may keep
    /// fewer, never more (a larger value keeps the cap).
    #[must_use]
    pub fn max_names(mut self, max: usize) -> Self {
        self.max_names = Some(max);
        self
    }

    /// Exceeded, cancelled or panicked reports kept in full, newest first.
    /// Default 100.
    #[must_use]
    pub fn recent(mut self, max: usize) -> Self {
        self.recent = max;
        self
    }

    /// Exceeded, cancelled or panicked scopes each name keeps in brief for
    /// its own page (time, outcome, status, violations; the full report
    /// while the ring above still holds it). Default 5.
    #[must_use]
    pub fn recent_per_name(mut self, max: usize) -> Self {
        self.recent_per_name = max;
        self
    }

    /// Timelines each name keeps of its worst scopes (those that panicked,
    /// then those over budget, then the slowest), each shown as a
    /// waterfall. Default 3. With this and [`sample_one_in`](Self::sample_one_in)
    /// both 0, the dashboard asks for no timeline, and scopes record none.
    #[must_use]
    pub fn timelines(mut self, max: usize) -> Self {
        self.timelines = max;
        self
    }

    /// Keeps the timeline of one scope in `n` of each name, besides the
    /// worst: the last two sampled. Default 100; 0 samples none.
    #[must_use]
    pub fn sample_one_in(mut self, n: u64) -> Self {
        self.sample_one_in = n;
        self
    }

    fn wants_timelines(&self) -> bool {
        self.timelines > 0 || self.sample_one_in > 0
    }
}

/// A live dashboard. Clones share it; it collects from its creation until
/// the last clone (and every router made from it) is dropped.
#[derive(Clone)]
pub struct Dashboard {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard").field("options", &self.inner.options).finish_non_exhaustive()
    }
}

struct Inner {
    options: Options,
    started: Instant,
    routes: RwLock<Routes>,
    recent: Mutex<VecDeque<Arc<Recent>>>,
    /// Scopes seen: the page refreshes when it moves.
    generation: AtomicU64,
    /// Its observer, unregistered when the last clone goes.
    observer: OnceLock<ObserverId>,
    /// The id of the next timeline kept.
    next_timeline: AtomicU64,
}

#[derive(Default)]
struct Routes {
    by_name: HashMap<Box<str>, Vec<Arc<Route>>, FxBuild>,
    all: Vec<Arc<Route>>,
    /// Names kept apart, per kind (by `Kind as usize`).
    named: [usize; Kind::Other as usize + 1],
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(id) = self.observer.get() {
            observe::unregister(*id);
        }
    }
}

/// A dashboard's observer: it sees every scope that ends while the
/// dashboard lives.
struct Watch(Weak<Inner>, bool);

impl Observer for Watch {
    fn hooks(&self) -> Hooks {
        if self.1 { Hooks::SCOPE_ENDED.and(Hooks::TIMELINES) } else { Hooks::SCOPE_ENDED }
    }

    fn scope_ended(&self, end: &ScopeEnd<'_>) {
        if let Some(inner) = self.0.upgrade() {
            inner.record(end);
        }
    }
}

impl Default for Dashboard {
    fn default() -> Self {
        Dashboard::new()
    }
}

impl Dashboard {
    /// A dashboard with the default [`Options`], collecting from now on.
    #[must_use]
    pub fn new() -> Dashboard {
        Dashboard::with_options(Options::default())
    }

    /// A dashboard keeping what `options` say, collecting from now on.
    #[must_use]
    pub fn with_options(options: Options) -> Dashboard {
        let inner = Arc::new(Inner {
            options,
            started: Instant::now(),
            routes: RwLock::default(),
            recent: Mutex::default(),
            generation: AtomicU64::new(0),
            observer: OnceLock::new(),
            next_timeline: AtomicU64::new(1),
        });
        let watch = Watch(Arc::downgrade(&inner), options.wants_timelines());
        let _ = inner.observer.set(observe::register(watch));
        Dashboard { inner }
    }

    /// Scopes seen so far.
    #[must_use]
    pub fn scopes(&self) -> u64 {
        self.inner.generation.load(Relaxed)
    }

    /// Names kept apart so far (grouped ones count once).
    #[must_use]
    pub fn names(&self) -> usize {
        self.inner.routes.read().unwrap_or_else(PoisonError::into_inner).all.len()
    }
}

impl Inner {
    fn record(&self, end: &ScopeEnd<'_>) {
        let route = self.route(end.name(), end.kind());
        let slot = end.ended_at().saturating_duration_since(self.started).as_secs() / SLOT_SECONDS;
        let bad = (end.outcome() != Outcome::Ok).then(|| end.report()).filter(|r| route::is_bad(r));
        let recent = bad.map(|r| Arc::new(Recent { at: SystemTime::now(), route: route.id, report: r.clone() }));
        {
            let mut stats = route.stats.lock().unwrap_or_else(PoisonError::into_inner);
            stats.record(end, slot);
            if let Some(recent) = &recent {
                push_bounded(&mut stats.recent, route::Brief::of(recent), self.options.recent_per_name);
            }
        }
        if let Some(recent) = recent {
            push_bounded(&mut self.recent.lock().unwrap_or_else(PoisonError::into_inner), recent, self.options.recent);
        }
        if self.options.wants_timelines() {
            self.keep_timeline(&route, end);
        }
        self.generation.fetch_add(1, Relaxed);
    }

    /// Keeps the scope's timeline when it is one of its name's worst, or
    /// sampled. The timeline is made (and its call sites named) outside the
    /// name's lock, unless [`Stats::record`] made it first, building the
    /// report of a scope with an N+1 suspect (whose call sites it names
    /// there, as it did before timelines).
    fn keep_timeline(&self, route: &Route, end: &ScopeEnd<'_>) {
        let (max, one_in) = (self.options.timelines, self.options.sample_one_in);
        let rank = waterfall::rank(end);
        let (worst, sampled) =
            route.stats.lock().unwrap_or_else(PoisonError::into_inner).timelines.wants(rank, max, one_in);
        if !(worst || sampled) {
            return;
        }
        let Some(timeline) = end.timeline() else { return };
        let id = self.next_timeline.fetch_add(1, Relaxed);
        let kept = Arc::new(waterfall::Kept::of(end, id, route.id, worst, timeline));
        route.stats.lock().unwrap_or_else(PoisonError::into_inner).timelines.keep(rank, &kept, max, sampled);
    }

    /// A kept timeline, by its id.
    fn timeline(&self, id: u64) -> Option<(Arc<Route>, Arc<waterfall::Kept>)> {
        self.all_routes().into_iter().find_map(|route| {
            let kept = route.stats.lock().unwrap_or_else(PoisonError::into_inner).timelines.find(id)?;
            Some((route, kept))
        })
    }

    /// The entry of a name and kind, made on first use; past `max_names`
    /// names of its kind, the kind's shared one.
    fn route(&self, name: &str, kind: Kind) -> Arc<Route> {
        let find = |routes: &Routes, name: &str| {
            routes.by_name.get(name).and_then(|v| v.iter().find(|r| r.kind == kind)).cloned()
        };
        if let Some(route) = find(&self.routes.read().unwrap_or_else(PoisonError::into_inner), name) {
            return route;
        }
        let mut routes = self.routes.write().unwrap_or_else(PoisonError::into_inner);
        // Made by another thread since the read: found before the limit is
        // asked.
        if let Some(route) = find(&routes, name) {
            return route;
        }
        let cap = crate::tracker::config::max_names();
        let max = self.options.max_names.map_or(cap, |m| m.min(cap));
        let name = if routes.named[kind as usize] < max { name } else { OTHER_NAMES };
        if let Some(route) = find(&routes, name) {
            return route;
        }
        let route =
            Arc::new(Route { id: routes.all.len(), name: name.into(), kind, stats: Mutex::new(Stats::default()) });
        routes.by_name.entry(name.into()).or_default().push(Arc::clone(&route));
        routes.all.push(Arc::clone(&route));
        if name != OTHER_NAMES {
            routes.named[kind as usize] += 1;
        }
        route
    }

    /// The index of the series slot that holds now.
    fn now_slot(&self) -> u64 {
        self.started.elapsed().as_secs() / SLOT_SECONDS
    }

    fn all_routes(&self) -> Vec<Arc<Route>> {
        self.routes.read().unwrap_or_else(PoisonError::into_inner).all.clone()
    }

    fn route_by_id(&self, id: usize) -> Option<Arc<Route>> {
        self.routes.read().unwrap_or_else(PoisonError::into_inner).all.get(id).cloned()
    }

    fn recent(&self) -> Vec<Arc<Recent>> {
        self.recent.lock().unwrap_or_else(PoisonError::into_inner).iter().cloned().collect()
    }
}

fn push_bounded<T>(ring: &mut VecDeque<T>, item: T, max: usize) {
    if max == 0 {
        return;
    }
    while ring.len() >= max {
        ring.pop_back();
    }
    ring.push_front(item);
}
