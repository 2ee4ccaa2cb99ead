//! Every scope's figures in the [`metrics`](https://docs.rs/metrics) facade
//! (feature `metrics`), so any recorder (Prometheus, StatsD, OpenTelemetry)
//! aggregates them across every instance: which routes run close to their
//! budgets, how often they blow them, and whether it is getting worse.
//!
//! ```no_run
//! # fn setup() -> Result<(), Box<dyn std::error::Error>> {
//! use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
//!
//! let mut builder = PrometheusBuilder::new();
//! for (name, buckets) in zen_runtime::metrics::BUCKETS {
//!     builder = builder.set_buckets_for_metric(Matcher::Full((*name).into()), buckets)?;
//! }
//! let handle = builder.install_recorder()?; // before serving: serve `handle.render()` at /metrics
//! # Ok(()) }
//! ```
//!
//! At every scope's end: histograms of its figures and of each limited
//! budget's use (`zen_budget_utilization_ratio`, used / limit), counters of
//! outcomes, violations and N+1 suspects; and per database operation, the
//! semantic convention's `db_client_operation_duration_seconds`. Names
//! follow Prometheus and OpenTelemetry conventions (base units, `_total` for
//! counters, `_ratio`); labels are `route` (the route template for a request,
//! the job's name for a job, the fn's path otherwise), `method`, `kind`,
//! `mode`, and `outcome` or `budget` where they apply. Never SQL, a
//! fingerprint, a raw URI or an id. At most
//! [`config::max_names`](crate::config::max_names) distinct names get a
//! label of their own; the rest share `route="(other)"`.
//!
//! Install the recorder before the first scope ends (as every `metrics`
//! user does at start-up): zen keeps the handles it registers per route.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::thread::LocalKey;

use metrics::{Counter, Histogram, Label, Unit};

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
    /// Per budget: its use over its limit, and its violations.
    budgets: [OnceLock<(Histogram, Counter)>; Budget::ALL.len()],
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

    fn budget(&self, budget: Budget) -> &(Histogram, Counter) {
        self.budgets[budget as usize].get_or_init(|| {
            let mut labels = self.labels.clone();
            labels.push(Label::new("budget", budget.key()));
            (metrics::histogram!(UTILIZATION, labels.clone()), metrics::counter!(VIOLATIONS, labels))
        })
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
/// order, except that one not every scope measures (rows, the longest
/// poll, a response's size) has a series only where a limit is set.
fn record_scope(end: &ScopeEnd<'_>) {
    let (f, limits) = (end.figures(), end.limits());
    with_handles(end.name(), end.route(), end.kind(), end.mode(), |h| {
        for &budget in Budget::ALL {
            let limit = limits.get(budget);
            let Some(used) = f.used(budget) else { continue };
            if !budget.every_scope() && limit.is_none() {
                continue;
            }
            h.record(budget, budget.in_metric_unit(used));
            let Some(limit) = limit else { continue };
            let (utilization, violations) = h.budget(budget);
            if let Some(ratio) = budget.ratio(used, limit) {
                utilization.record(ratio);
            }
            if budget.measure().over(used, limit) {
                violations.increment(1);
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
