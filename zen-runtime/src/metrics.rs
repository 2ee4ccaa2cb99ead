//! Every scope's figures in the [`metrics`](https://docs.rs/metrics) facade
//! (feature `metrics`), so any recorder (Prometheus, StatsD, OpenTelemetry)
//! aggregates them across every instance: which routes run close to their
//! budgets, how often they blow them, and whether it is getting worse. A
//! report is one request; these are the operator's view.
//!
//! With Prometheus, add `metrics-exporter-prometheus = { version = "0.18",
//! default-features = false }`: your app serves `handle.render()` itself
//! (below), so the exporter's HTTP listener (`http-listener`) is not
//! needed. Install the recorder with zen's buckets before serving (before
//! the first scope ends: zen keeps the handles it registers per route),
//! call its `PrometheusHandle::run_upkeep` periodically, and serve
//! `/metrics`:
//!
//! ```no_run
//! # #[cfg(feature = "axum")]
//! # fn app() -> Result<axum::Router, Box<dyn std::error::Error>> {
//! use std::time::Duration;
//!
//! use axum::{Router, routing::get};
//! use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
//! use zen_runtime::layer::ZenLayer;
//!
//! let mut builder = PrometheusBuilder::new();
//! for (name, buckets) in zen_runtime::metrics::BUCKETS {
//!     builder = builder.set_buckets_for_metric(Matcher::Full((*name).into()), buckets)?;
//! }
//! let prometheus = builder.install_recorder()?;
//! // The recorder drains its histograms only when told to: every 5 s.
//! let upkeep = prometheus.clone();
//! tokio::spawn(async move {
//!     let mut every = tokio::time::interval(Duration::from_secs(5));
//!     loop {
//!         every.tick().await;
//!         upkeep.run_upkeep();
//!     }
//! });
//! let app: Router = Router::new()
//!     // ... your routes ...
//!     .layer(ZenLayer::new())
//!     // After the layer: a scrape is nobody's request.
//!     .route("/metrics", get(move || std::future::ready(prometheus.render())));
//! # Ok(app) }
//! ```
//!
//! At every scope's end (from its counters, whether or not a report is
//! built) and per database operation:
//!
//! | metric | type | labels | what |
//! |---|---|---|---|
//! | `zen_scopes_total` | counter | `outcome` | scopes ended: `ok`, `exceeded`, `cancelled`, `panicked` |
//! | `zen_scope_queries` | histogram | | database operations asked for |
//! | `zen_scope_db_duration_seconds` | histogram | | time in database operations |
//! | `zen_scope_duration_seconds` | histogram | | wall-clock time |
//! | `zen_scope_peak_memory_bytes` | histogram | | peak live heap (with `ZenAlloc`) |
//! | `zen_scope_http_calls`, `zen_scope_http_duration_seconds` | histogram | | external calls and their time |
//! | `zen_scope_rows`, `zen_scope_longest_poll_seconds`, `zen_scope_response_bytes` | histogram | | where `max_rows`, `max_poll_ms`, `max_response_kb` is set |
//! | `zen_budget_utilization_ratio` | histogram | `budget` | used / limit of each limited budget (`1.0` is the limit) |
//! | `zen_budget_violations_total` | counter | `budget` | budgets exceeded |
//! | `zen_budget_limit` | gauge | `budget` | the limit of each limited budget, in its figure's unit (the last one set) |
//! | `zen_n_plus_one_total` | counter | | N+1 suspects (statements run past the threshold) |
//! | `db_client_operation_duration_seconds` | histogram | `db_system_name`, `db_operation_name` | every database operation inside a scope (OpenTelemetry's `db.client.operation.duration`) |
//!
//! Names follow Prometheus and OpenTelemetry conventions (base units,
//! `_total` for counters, `_ratio`). Every `zen_` metric has `route` (the
//! route template for a request, `/articles/{slug}`; the job's name; the
//! fn's path), `method` (requests only), `kind` and `mode`. Labels never
//! hold SQL, a fingerprint, a raw URI or an id; `db_operation_name` is one
//! of a fixed set of verbs (`SELECT`, `INSERT`, ..., a Redis command, else
//! `OTHER`). Cardinality is bounded: the first 500 distinct names get a
//! `route` of their own ([`config::set_max_names`](crate::config::set_max_names)
//! changes it), every later one shares `route="(other)"`.
//!
//! Series are made only where they answer something: a budget's use and
//! violations once a route limits it, a figure's histogram once the route
//! limits it or one of its scopes uses it (a route that never calls out
//! has no external-call series, one that never queries no query series;
//! from then on every scope is recorded, zeros included), rows, the
//! longest poll and the response's size only where limited. With the
//! Prometheus recorder and zen's buckets, a route limited on queries,
//! database time and the timeout, that queries and never calls out, costs
//! 97 series, 110 under `ZenAlloc` (its peak memory); one with no limit
//! that neither queries nor calls out, 21 and 34 (BENCHMARKS.md counts
//! them).
//! Buckets ([`BUCKETS`]): seconds from 1 ms to 10 s, counts on a Fibonacci
//! scale to 144, rows to 100,000, bytes from 1 KiB to 256 MiB by fours,
//! ratios finer near 1.
//!
//! A route is its method and its template: group by both. The routes
//! closest to their budgets, closest first, and how often each blows one
//! per request:
//!
//! ```promql
//! sort_desc(topk(10, histogram_quantile(0.99,
//!   sum by (le, route, method, budget) (rate(zen_budget_utilization_ratio_bucket[5m]))) >= 0))
//!
//! sum by (route, method, budget) (rate(zen_budget_violations_total[5m]))
//!   / on (route, method) group_left sum by (route, method) (rate(zen_scopes_total[5m]))
//! ```
//!
//! Tested against a real Prometheus server that scrapes a test app after
//! known traffic (the p99 of queries per route, the violation rate and the
//! ranking above, asserted through its HTTP API). The added cost per scope
//! with the Prometheus recorder is about 160 ns (BENCHMARKS.md); without the
//! feature, nothing is compiled in.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::thread::LocalKey;

use metrics::{Counter, Gauge, Histogram, Label, Unit};

use crate::tracker::budget::{Budget, Kind, Mode, Scale};
use crate::tracker::config::OTHER_NAMES;
use crate::tracker::hash::FxBuild;
use crate::tracker::observe::{Hooks, Observer, OperationEnd, Route, ScopeEnd};
use crate::tracker::report::Outcome;

/// Scopes ended, by `outcome`.
pub const SCOPES: &str = "zen_scopes_total";
/// Used / limit of each limited budget, by `budget`.
pub const UTILIZATION: &str = "zen_budget_utilization_ratio";
/// Budgets exceeded, by `budget`.
pub const VIOLATIONS: &str = "zen_budget_violations_total";
/// Each limited budget's limit, by `budget`, in its figure's unit (seconds,
/// bytes or a count): a rule compares use with it without a line per route.
pub const LIMIT: &str = "zen_budget_limit";
/// N+1 suspects seen (statements repeated past the threshold).
pub const N_PLUS_ONE: &str = "zen_n_plus_one_total";
/// Every database operation's time, by `db_system_name` and
/// `db_operation_name` (OpenTelemetry's `db.client.operation.duration`).
pub const DB_OPERATION_DURATION: &str = "db_client_operation_duration_seconds";

/// Bucket boundaries for durations, in seconds: 1 ms to 10 s.
pub const SECONDS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Bucket boundaries for counts of queries, calls and the like.
pub const COUNTS: &[f64] = &[0.0, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0, 55.0, 89.0, 144.0];
/// Bucket boundaries for rows: 0 to 100,000.
pub const ROW_COUNTS: &[f64] = &[0.0, 1.0, 10.0, 50.0, 100.0, 500.0, 1_000.0, 5_000.0, 10_000.0, 100_000.0];
/// Bucket boundaries for bytes: 1 KiB to 256 MiB, by fours.
pub const BYTES: &[f64] = &[
    1024.0,
    4096.0,
    16_384.0,
    65_536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
    268_435_456.0,
];
/// Bucket boundaries for used / limit: finer near 1, where a budget is
/// about to be blown.
pub const RATIOS: &[f64] = &[0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.5, 2.0, 5.0];

/// The buckets of a figure's histogram, by the range its values take.
#[must_use]
pub const fn buckets(scale: Scale) -> &'static [f64] {
    match scale {
        Scale::Counts => COUNTS,
        Scale::Rows => ROW_COUNTS,
        Scale::Seconds => SECONDS,
        Scale::Bytes => BYTES,
    }
}

/// The recommended buckets of each histogram, by name: each budget's figure
/// ([`Budget::metric`]), the use of limits, and database operations.
pub const BUCKETS: [(&str, &[f64]); Budget::ALL.len() + 2] = {
    let mut all: [(&str, &[f64]); Budget::ALL.len() + 2] = [("", &[]); Budget::ALL.len() + 2];
    let mut i = 0;
    while i < Budget::ALL.len() {
        all[i] = (Budget::ALL[i].metric(), buckets(Budget::ALL[i].scale()));
        i += 1;
    }
    all[i] = (UTILIZATION, RATIOS);
    all[i + 1] = (DB_OPERATION_DURATION, SECONDS);
    all
};

/// The handles of one scope name, kind and mode. Outcomes are registered at
/// once (so that a rate starts from zero); a figure's histogram when it is
/// first recorded, a budget's when it is first limited, so that no series
/// exists for what a route never measures or limits.
struct Handles {
    /// The scope name they were registered for ([`OTHER_NAMES`] past the limit).
    name: Box<str>,
    kind: Kind,
    mode: Mode,
    /// `route`, `method` (for a request), `kind`, `mode`.
    labels: Vec<Label>,
    /// Per budget, the histogram of its figure.
    figures: [OnceLock<Histogram>; Budget::ALL.len()],
    outcomes: [Counter; 4],
    /// Per budget: its use over its limit, its violations, its limit.
    budgets: [OnceLock<BudgetHandles>; Budget::ALL.len()],
    n_plus_one: Counter,
}

impl Handles {
    fn new(name: &str, route: &str, method: Option<&'static str>, kind: Kind, mode: Mode) -> Handles {
        let mut labels = vec![Label::new("route", route.to_owned())];
        labels.extend(method.map(|m| Label::new("method", m)));
        labels.push(Label::new("kind", kind.as_str()));
        labels.push(Label::new("mode", mode.as_str()));
        let with = |key: &'static str, value: &'static str| {
            let mut all = labels.clone();
            all.push(Label::new(key, value));
            all
        };
        Handles {
            name: name.into(),
            kind,
            mode,
            outcomes: Outcome::ALL.map(|o| metrics::counter!(SCOPES, with("outcome", o.as_str()))),
            n_plus_one: metrics::counter!(N_PLUS_ONE, labels.clone()),
            figures: std::array::from_fn(|_| OnceLock::new()),
            budgets: std::array::from_fn(|_| OnceLock::new()),
            labels,
        }
    }

    fn record(&self, budget: Budget, value: f64) {
        self.figures[budget as usize]
            .get_or_init(|| metrics::histogram!(budget.metric(), self.labels.clone()))
            .record(value);
    }

    /// Whether the histogram of `budget`'s figure exists.
    fn has(&self, budget: Budget) -> bool {
        self.figures[budget as usize].get().is_some()
    }

    fn budget(&self, budget: Budget) -> &BudgetHandles {
        self.budgets[budget as usize].get_or_init(|| {
            let mut labels = self.labels.clone();
            labels.push(Label::new("budget", budget.key()));
            BudgetHandles {
                utilization: metrics::histogram!(UTILIZATION, labels.clone()),
                violations: metrics::counter!(VIOLATIONS, labels.clone()),
                limit: metrics::gauge!(LIMIT, labels),
            }
        })
    }
}

/// A limited budget's series.
struct BudgetHandles {
    utilization: Histogram,
    violations: Counter,
    limit: Gauge,
}

impl BudgetHandles {
    /// `limit` in the attribute's unit (ms, KiB, a count); the gauge holds
    /// it in the figure's (seconds, bytes, the count). Set at every scope:
    /// a store, and the last scope's limit whichever thread ends it.
    fn set_limit(&self, budget: Budget, limit: u64) {
        let base = u64::try_from(budget.measure().base(limit)).unwrap_or(u64::MAX);
        self.limit.set(budget.in_metric_unit(base));
    }
}

#[derive(Default)]
struct Registered {
    /// The recorder the handles belong to: registered again if it changes.
    recorder: usize,
    /// By scope name, then kind and mode (almost always one of each).
    scopes: HashMap<Box<str>, Vec<Arc<Handles>>, FxBuild>,
    operations: HashMap<(&'static str, &'static str), Histogram, FxBuild>,
}

static REGISTERED: RwLock<Option<Registered>> = RwLock::new(None);

/// Which recorder is installed: its address (the no-op one has its own).
fn recorder() -> usize {
    metrics::with_recorder(|r| std::ptr::from_ref(r).cast::<()>() as usize)
}

fn describe() {
    for &budget in Budget::ALL {
        let unit = match budget.scale() {
            Scale::Seconds => Unit::Seconds,
            Scale::Bytes => Unit::Bytes,
            Scale::Counts | Scale::Rows => Unit::Count,
        };
        metrics::describe_histogram!(budget.metric(), unit, format!("{} per zen scope", budget.label()));
    }
    metrics::describe_histogram!(DB_OPERATION_DURATION, Unit::Seconds, "duration of database client operations");
    metrics::describe_histogram!(UTILIZATION, "used / limit of each limited budget, per zen scope");
    metrics::describe_counter!(SCOPES, Unit::Count, "zen scopes ended, by outcome");
    metrics::describe_counter!(VIOLATIONS, Unit::Count, "zen budgets exceeded, by budget");
    metrics::describe_gauge!(LIMIT, "the limit of each limited zen budget, in its figure's unit");
    metrics::describe_counter!(N_PLUS_ONE, Unit::Count, "N+1 suspects: statements repeated past the threshold");
}

/// The registered handles, for the recorder installed now (registered
/// afresh when it changed).
fn registered(recorder: usize) -> std::sync::RwLockWriteGuard<'static, Option<Registered>> {
    let mut registered = REGISTERED.write().unwrap_or_else(PoisonError::into_inner);
    if registered.as_ref().is_none_or(|r| r.recorder != recorder) {
        describe();
        *registered = Some(Registered { recorder, ..Registered::default() });
    }
    registered
}

impl Registered {
    fn find(&self, name: &str, kind: Kind, mode: Mode) -> Option<&Arc<Handles>> {
        self.scopes.get(name)?.iter().find(|h| h.kind == kind && h.mode == mode)
    }

    /// The handles of one scope name, kind and mode, registered on first
    /// use; past `max` names, those of [`OTHER_NAMES`]. A request's route
    /// label is its template, its method apart.
    fn handles(&mut self, name: &str, route: Option<Route<'_>>, kind: Kind, mode: Mode, max: usize) -> &Arc<Handles> {
        let name = if self.scopes.contains_key(name) || self.scopes.len() < max { name } else { OTHER_NAMES };
        let (route, method) = match route {
            Some(route) if name != OTHER_NAMES => (route.template, Some(route.method)),
            _ => (name, None),
        };
        let handles = self.scopes.entry(name.into()).or_default();
        let i = match handles.iter().position(|h| h.kind == kind && h.mode == mode) {
            Some(i) => i,
            None => {
                handles.push(Arc::new(Handles::new(name, route, method, kind, mode)));
                handles.len() - 1
            }
        };
        &handles[i]
    }
}

thread_local! {
    /// This thread's last scope handles and their recorder: the same route
    /// again (the common case) skips the lock and the lookup.
    static LAST_SCOPE: RefCell<Option<(usize, Arc<Handles>)>> = const { RefCell::new(None) };
}

/// A thread's last lookup in the registry, kept so that the same route or
/// operation again skips its lock and lookup.
type Last<T> = &'static LocalKey<RefCell<Option<T>>>;

/// Runs `hit` on what this thread kept in `last`, when `matches` says it is
/// what is asked for; `false` otherwise (also when called again from inside
/// `hit`, by a recorder that ends a scope).
#[inline(always)]
fn recall<T>(last: Last<T>, matches: impl FnOnce(&T) -> bool, hit: impl FnOnce(&T)) -> bool {
    let found = last.try_with(|last| {
        let last = last.try_borrow().ok()?;
        hit(last.as_ref().filter(|kept| matches(kept))?);
        Some(())
    });
    matches!(found, Ok(Some(())))
}

/// Keeps `value` in `last` for this thread's next lookup.
fn remember<T>(last: Last<T>, value: T) {
    let _ = last.try_with(|last| {
        if let Ok(mut last) = last.try_borrow_mut() {
            *last = Some(value);
        }
    });
}

/// Runs `f` on the handles of one scope, registered on first use.
fn with_handles(name: &str, route: Option<Route<'_>>, kind: Kind, mode: Mode, f: impl FnOnce(&Handles)) {
    let recorder = recorder();
    let mut f = Some(f);
    let same = |(r, h): &(usize, Arc<Handles>)| *r == recorder && h.kind == kind && h.mode == mode && *h.name == *name;
    let hit = |(_, handles): &(usize, Arc<Handles>)| {
        if let Some(f) = f.take() {
            f(handles);
        }
    };
    if recall(&LAST_SCOPE, same, hit) {
        return;
    }
    let handles = {
        let registered = REGISTERED.read().unwrap_or_else(PoisonError::into_inner);
        registered.as_ref().filter(|r| r.recorder == recorder).and_then(|r| r.find(name, kind, mode)).cloned()
    };
    let handles = match handles {
        Some(handles) => handles,
        None => {
            let mut registered = registered(recorder);
            let Some(r) = registered.as_mut() else { return };
            Arc::clone(r.handles(name, route, kind, mode, crate::tracker::config::max_names()))
        }
    };
    if let Some(f) = f.take() {
        f(&handles);
    }
    remember(&LAST_SCOPE, (recorder, handles));
}

/// The observer that records every scope's figures, and every database
/// operation's time, in the `metrics` facade.
#[derive(Debug, Default)]
pub(crate) struct Metrics;

impl Observer for Metrics {
    fn hooks(&self) -> Hooks {
        Hooks::SCOPE_ENDED.and(Hooks::OPERATION_ENDED)
    }

    fn scope_ended(&self, end: &ScopeEnd<'_>) {
        record_scope(end);
    }

    fn operation_ended(&self, end: &OperationEnd<'_>) {
        record_operation(end);
    }
}

/// Records one scope's end: the figure of every budget, in the table's
/// order, where it is limited or has been used by a scope of the route
/// (more than zero) before or now; one not every scope measures (rows, the
/// longest poll, a response's size) only where it is limited.
fn record_scope(end: &ScopeEnd<'_>) {
    let (f, limits) = (end.figures(), end.limits());
    with_handles(end.name(), end.route(), end.kind(), end.mode(), |h| {
        for &budget in Budget::ALL {
            let limit = limits.get(budget);
            let Some(used) = f.used(budget) else { continue };
            // Unlimited: a figure every scope measures gets its series once a
            // scope of the route uses it; the others, never.
            if limit.is_none() && (!budget.every_scope() || (used == 0 && !h.has(budget))) {
                continue;
            }
            h.record(budget, budget.in_metric_unit(used));
            let Some(limit) = limit else { continue };
            let handles = h.budget(budget);
            handles.set_limit(budget, limit);
            if let Some(ratio) = budget.ratio(used, limit) {
                handles.utilization.record(ratio);
            }
            if budget.measure().over(used, limit) {
                handles.violations.increment(1);
            }
        }
        h.outcomes[end.outcome() as usize].increment(1);
        let n_plus_one = end.n_plus_one();
        if n_plus_one > 0 {
            h.n_plus_one.increment(n_plus_one as u64);
        }
    });
}

/// Records one database operation's time.
fn record_operation(end: &OperationEnd<'_>) {
    thread_local! {
        /// This thread's last operation and its histogram: the same kind of
        /// statement again (the common case) skips the lock and the lookup.
        static LAST: RefCell<Option<(usize, &'static str, &'static str, Histogram)>> = const { RefCell::new(None) };
    }
    let (backend, operation, elapsed) = (end.backend(), end.operation(), end.elapsed());
    let recorder = recorder();
    // Keyed by zen's name of the backend: the convention's is looked up on a miss.
    let same = |(r, b, o, _): &(usize, &'static str, &'static str, Histogram)| {
        *r == recorder && std::ptr::eq(*b, backend) && std::ptr::eq(*o, operation)
    };
    if recall(&LAST, same, |(.., histogram)| histogram.record(elapsed.as_secs_f64())) {
        return;
    }
    let system = end.system();
    {
        let registered = REGISTERED.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(r) = registered.as_ref().filter(|r| r.recorder == recorder)
            && let Some(h) = r.operations.get(&(system, operation))
        {
            h.record(elapsed.as_secs_f64());
            remember(&LAST, (recorder, backend, operation, h.clone()));
            return;
        }
    }
    let histogram = registered(recorder)
        .as_mut()
        .map(|r| {
            r.operations
                .entry((system, operation))
                .or_insert_with(|| {
                    metrics::histogram!(DB_OPERATION_DURATION, "db_system_name" => system, "db_operation_name" => operation)
                })
                .clone()
        })
        .unwrap_or_else(Histogram::noop);
    histogram.record(elapsed.as_secs_f64());
    remember(&LAST, (recorder, backend, operation, histogram));
}

#[cfg(test)]
mod tests {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    use super::{N_PLUS_ONE, OTHER_NAMES, Registered};
    use crate::tracker::budget::{Kind, Mode};
    use crate::tracker::observe::Route;

    #[test]
    fn past_the_limit_every_new_name_shares_one_label() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            let mut registered = Registered::default();
            for round in 0..2 {
                for i in 0..10 {
                    let name = format!("GET /items/{i}");
                    let route = Route { method: "GET", template: &name[4..] };
                    registered.handles(&name, Some(route), Kind::Handler, Mode::Observe, 3).n_plus_one.increment(1);
                }
                assert_eq!(registered.scopes.len(), 4, "round {round}: 3 names and the shared one");
            }
            let route = Route { method: "GET", template: "/items/0" };
            registered.handles("GET /items/0", Some(route), Kind::Handler, Mode::Enforce, 3).n_plus_one.increment(5);
        });
        let mut counts = std::collections::BTreeMap::new();
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            let (_, key) = key.into_parts();
            if key.name() != N_PLUS_ONE {
                continue;
            }
            let label = |k: &str| key.labels().find(|l| l.key() == k).map(|l| l.value().to_owned());
            let DebugValue::Counter(n) = value else { panic!("a counter") };
            counts.insert((label("route").unwrap(), label("method"), label("mode").unwrap()), n);
        }
        let get = |route: &str, method: Option<&str>, mode: &str| {
            counts.get(&(route.to_owned(), method.map(str::to_owned), mode.to_owned())).copied()
        };
        assert_eq!(get("/items/0", Some("GET"), "observe"), Some(2));
        assert_eq!(get("/items/2", Some("GET"), "observe"), Some(2));
        assert_eq!(get("/items/0", Some("GET"), "enforce"), Some(5), "a known name keeps its label");
        assert_eq!(get(OTHER_NAMES, None, "observe"), Some(14), "7 names, twice, share one label");
        assert_eq!(counts.len(), 5, "{counts:?}");
    }
}
