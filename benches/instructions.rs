//! What zen costs, in instructions: callgrind (valgrind) through gungraun,
//! which counts only the benchmarked function, not its setup. Instruction
//! counts do not drift with the machine's load as times do, so differences
//! of a fraction of a percent show.
//!
//! ```sh
//! cargo install gungraun-runner --version 0.20.0   # once; it must match gungraun's version
//! cargo bench --bench instructions                  # needs PostgreSQL on 127.0.0.1:5432 (database test)
//! ```
//!
//! Each group compares its functions bench by bench (`compare_by_id`):
//!
//! - `realistic`: a list endpoint reading 20 rows and answering about 26 KB
//!   of JSON through axum, 20 requests, on PostgreSQL and on SQLite: plain
//!   (sqlx's pool, no layer, `System`) against the whole zen stack (the
//!   layer, a `#[zen]` handler, zen's pool, `ZenAlloc`), and on PostgreSQL
//!   against every feature a team turns on besides (below). SQLite
//!   statements run on sqlx's worker thread, which the count leaves out: its
//!   ratio is of the async side only.
//! - `features`: the same PostgreSQL endpoint with one connection per
//!   request, as a server sees clients that do not keep connections alive
//!   (axum's `serve` makes each connection its own copy of the router with
//!   `Router::with_state`, whose cost grows with the router): plain, zen
//!   alone, zen with each feature on its own (the dashboard served by its
//!   layer, or nested in the router as a router of its own; metrics with a
//!   Prometheus recorder; OpenTelemetry with a subscriber that exports
//!   nothing, at INFO as in production; a `JsonLines` sink), and with every
//!   one of them.
//! - `trivial`: a handler answering a short string, 100 requests: bare, a
//!   do-nothing `from_fn`, tower-http's `TraceLayer`, zen's layer with a
//!   `#[zen]` handler (no `Server-Timing`, the default), and the same with `server_timing(true)` (all with
//!   `System`).
//! - `allocator`: 1,000 allocation-and-free pairs of 64 bytes inside a
//!   scope, `System` against `ZenAlloc`.
//! - `query`: one scope, then the same scope with 100 queries' bookkeeping
//!   (count, fingerprint from the cache, time, the statement table): the
//!   difference over 100 is one query's.
//! - `mongodb_command`: one scope in which the driver's events of 100 commands (a
//!   `find` by id and its answer, caught from a real server in the setup)
//!   reach a command event handler that does nothing, then zen's
//!   (`zen_runtime::mongodb::install`): the difference over 100 is one
//!   command's bookkeeping (shape, count, time, documents, the table of
//!   commands on their way). Needs a MongoDB wire-protocol server on
//!   127.0.0.1:27017 (`ZEN_TEST_MONGODB_URL`).
//! - `mongodb_round_trip`: 100 finds by id against that server, one round
//!   trip each, in one scope, with a client zen is not installed on, then
//!   one it is: all a command costs the client process, the driver's
//!   making of the events zen listens to included (the server's work is
//!   another process's).
//! - `deadline_in`: the trivial handler, 100 requests that carry
//!   `x-request-timeout-ms`, under a layer that does not trust it, then
//!   one that does: what reading a caller's deadline and shortening the
//!   budget costs.
//! - `deadline_out`: 100 external calls in an enforced scope with time
//!   left, counted as zen's clients count one, then sent through
//!   `DeadlineLayer`: what writing `grpc-timeout` costs on top (with the
//!   layer's boxed future and timer).
//! - `observers`: the same scope with 100 queries, with the crate's own
//!   observers (as in `query`), with none registered, and with one that
//!   takes every hook and does nothing: what the registry costs when it is
//!   empty, and what one observer adds to a scope and its operations.
//! - `timeline`: one scope with 100 queries given their values, with no
//!   timeline asked for, then with an observer asking for timelines: what
//!   recording one costs per operation (an entry, the values hashed, the
//!   duplicates table).
#![allow(clippy::print_stdout, missing_docs)]

#[path = "common/apps.rs"]
mod apps;
#[path = "common/mod.rs"]
mod common;

use std::alloc::{GlobalAlloc, System};
use std::hint::black_box;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use gungraun::{library_benchmark, library_benchmark_group, main};
use tower::Service as _;
use tower::ServiceExt;
use zen_runtime::alloc::ZenAlloc;
use zen_runtime::deadline::{Deadline, DeadlineLayer};
use zen_runtime::layer::ZenLayer;
use zen_runtime::{instrument, observe, testing, zen};

use common::{Switch, USE_ZEN, ZEN};

// `System` until a benchmark's setup turns zen's on. Gungraun runs each
// benchmark in a process of its own, so each has one allocator.
#[global_allocator]
static GLOBAL: Switch = Switch;

const REALISTIC_REQUESTS: usize = 20;
const TRIVIAL_REQUESTS: usize = 100;

#[zen(max_queries = 5, max_db_ms = 30_000, timeout_ms = 60_000)]
async fn zen_hello() -> &'static str {
    "hello, world"
}

/// A router on a current-thread runtime, warmed up.
struct App {
    rt: tokio::runtime::Runtime,
    router: Router,
    path: &'static str,
    /// Each request on a connection of its own: the router is made again
    /// for it, as axum's `serve` does for each connection.
    per_connection: bool,
    /// What must live as long as the app: a sink, a recorder's handle.
    _kept: Vec<Box<dyn std::any::Any>>,
    /// A header every request carries.
    header: Option<(&'static str, &'static str)>,
}

impl App {
    fn new(rt: tokio::runtime::Runtime, router: Router, path: &'static str) -> App {
        let app = App { rt, router, path, per_connection: false, _kept: Vec::new(), header: None };
        app.serve(5);
        app
    }

    /// What each benchmark does: `n` requests; the app is handed back, so
    /// that dropping it is not counted.
    fn served(self, n: usize) -> App {
        black_box(self.serve(n));
        self
    }

    /// Sends `n` requests and reads each body; the bytes read.
    fn serve(&self, n: usize) -> usize {
        self.rt.block_on(async {
            let mut bytes = 0;
            for _ in 0..n {
                let mut request = Request::get(self.path);
                if let Some((name, value)) = self.header {
                    request = request.header(name, value);
                }
                let request = request.body(Body::empty()).unwrap();
                let router =
                    if self.per_connection { self.router.clone().with_state::<()>(()) } else { self.router.clone() };
                let response = router.oneshot(request).await.unwrap();
                assert!(response.status().is_success());
                bytes += axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap().len();
            }
            bytes
        })
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn realistic_app(app: impl std::future::Future<Output = Router>) -> App {
    let rt = runtime();
    let router = rt.block_on(app);
    App::new(rt, router, apps::PATH)
}

fn setup_plain_pg() -> App {
    realistic_app(apps::plain_pg_app())
}

fn setup_zen_pg() -> App {
    USE_ZEN.store(true, Ordering::Relaxed);
    realistic_app(apps::zen_pg_app())
}

fn setup_plain_sqlite() -> App {
    realistic_app(apps::plain_sqlite_app())
}

fn setup_zen_sqlite() -> App {
    USE_ZEN.store(true, Ordering::Relaxed);
    realistic_app(apps::zen_sqlite_app())
}

#[library_benchmark]
#[bench::postgres(setup = setup_plain_pg)]
#[bench::sqlite(setup = setup_plain_sqlite)]
fn plain(app: App) -> App {
    app.served(REALISTIC_REQUESTS)
}

#[library_benchmark]
#[bench::postgres(setup = setup_zen_pg)]
#[bench::sqlite(setup = setup_zen_sqlite)]
fn zen_stack(app: App) -> App {
    app.served(REALISTIC_REQUESTS)
}

#[library_benchmark]
#[bench::postgres(setup = setup_every_feature)]
fn every_feature(app: App) -> App {
    app.served(REALISTIC_REQUESTS)
}

library_benchmark_group!(name = realistic; compare_by_id = true; benchmarks = plain, zen_stack, every_feature);

/// The features a team turns on beside zen, each alone or all together.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Feature {
    Dashboard,
    DashboardNested,
    Metrics,
    OpenTelemetry,
    JsonLines,
}

const EVERY_FEATURE: [Feature; 4] = [Feature::Dashboard, Feature::Metrics, Feature::OpenTelemetry, Feature::JsonLines];
const TOKEN: &str = "bench-token-0123456789abcdef";

/// The zen stack on PostgreSQL with `features` on.
fn zen_with(features: &[Feature], per_connection: bool) -> App {
    use zen_runtime::dashboard::{Authorize, Dashboard};
    USE_ZEN.store(true, Ordering::Relaxed);
    let rt = runtime();
    let mut kept: Vec<Box<dyn std::any::Any>> = Vec::new();
    let authorize = || Authorize::token(TOKEN).unwrap();
    for feature in features {
        match feature {
            Feature::Metrics => {
                let handle = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder().unwrap();
                kept.push(Box::new(handle));
            }
            Feature::OpenTelemetry => {
                use opentelemetry::trace::TracerProvider as _;
                use tracing_subscriber::layer::SubscriberExt as _;
                // As in production: INFO and above (`zen`'s DEBUG event per
                // scope would build every report).
                let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
                let subscriber = tracing_subscriber::registry()
                    .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench")))
                    .with(tracing_subscriber::filter::LevelFilter::INFO);
                tracing::subscriber::set_global_default(subscriber).unwrap();
                kept.push(Box::new(provider));
            }
            Feature::JsonLines => {
                let path = std::env::temp_dir().join(format!("zen-bench-{}.jsonl", std::process::id()));
                let sink = zen_runtime::sinks::JsonLines::builder(path).open().unwrap();
                kept.push(Box::new(sink));
            }
            Feature::Dashboard | Feature::DashboardNested => {}
        }
    }
    let (layered, nested) = (features.contains(&Feature::Dashboard), features.contains(&Feature::DashboardNested));
    // A live dashboard watches every scope: made only where it is asked for.
    let dashboard = (layered || nested).then(Dashboard::new);
    let router = rt.block_on(apps::zen_pg_app_with(ZenLayer::new(), |router| match &dashboard {
        Some(dashboard) if nested => router.nest("/_zen", dashboard.router(authorize())),
        Some(dashboard) => router.layer(dashboard.layer("/_zen", authorize())),
        None => router,
    }));
    kept.push(Box::new(dashboard));
    let mut app = App::new(rt, router, apps::PATH);
    app.per_connection = per_connection;
    app._kept = kept;
    app
}

fn setup_every_feature() -> App {
    zen_with(&EVERY_FEATURE, false)
}

fn plain_per_connection() -> App {
    let mut app = setup_plain_pg();
    app.per_connection = true;
    app
}

fn zen_alone() -> App {
    zen_with(&[], true)
}

fn with_dashboard() -> App {
    zen_with(&[Feature::Dashboard], true)
}

fn with_dashboard_nested() -> App {
    zen_with(&[Feature::DashboardNested], true)
}

fn with_metrics() -> App {
    zen_with(&[Feature::Metrics], true)
}

fn with_opentelemetry() -> App {
    zen_with(&[Feature::OpenTelemetry], true)
}

fn with_json_lines() -> App {
    zen_with(&[Feature::JsonLines], true)
}

fn with_every_feature() -> App {
    zen_with(&EVERY_FEATURE, true)
}

#[library_benchmark]
#[bench::plain(setup = plain_per_connection)]
#[bench::zen(setup = zen_alone)]
#[bench::dashboard(setup = with_dashboard)]
#[bench::dashboard_nested(setup = with_dashboard_nested)]
#[bench::metrics(setup = with_metrics)]
#[bench::opentelemetry(setup = with_opentelemetry)]
#[bench::json_lines(setup = with_json_lines)]
#[bench::every_feature(setup = with_every_feature)]
fn connection_per_request(app: App) -> App {
    app.served(REALISTIC_REQUESTS)
}

library_benchmark_group!(name = features; benchmarks = connection_per_request);

fn trivial_app(router: Router) -> App {
    App::new(runtime(), router.with_state(()), "/")
}

fn setup_bare() -> App {
    let [bare, ..] = apps::trivial_baselines();
    trivial_app(bare)
}

fn setup_from_fn() -> App {
    let [_, from_fn, _] = apps::trivial_baselines();
    trivial_app(from_fn)
}

fn setup_trace_layer() -> App {
    let [.., trace_layer] = apps::trivial_baselines();
    trivial_app(trace_layer)
}

fn setup_zen_layer() -> App {
    trivial_app(apps::trivial(zen_hello).layer(ZenLayer::new()))
}

fn setup_zen_layer_with_header() -> App {
    trivial_app(apps::trivial(zen_hello).layer(ZenLayer::new().server_timing(true)))
}

#[library_benchmark]
#[bench::hello(setup = setup_bare)]
fn bare(app: App) -> App {
    app.served(TRIVIAL_REQUESTS)
}

#[library_benchmark]
#[bench::hello(setup = setup_from_fn)]
fn from_fn(app: App) -> App {
    app.served(TRIVIAL_REQUESTS)
}

#[library_benchmark]
#[bench::hello(setup = setup_trace_layer)]
fn trace_layer(app: App) -> App {
    app.served(TRIVIAL_REQUESTS)
}

#[library_benchmark]
#[bench::hello(setup = setup_zen_layer)]
fn zen_layer(app: App) -> App {
    app.served(TRIVIAL_REQUESTS)
}

#[library_benchmark]
#[bench::hello(setup = setup_zen_layer_with_header)]
fn zen_layer_with_header(app: App) -> App {
    app.served(TRIVIAL_REQUESTS)
}

library_benchmark_group!(
    name = trivial;
    compare_by_id = true;
    benchmarks = bare, from_fn, trace_layer, zen_layer, zen_layer_with_header
);

/// The trivial app, its requests with `x-request-timeout-ms: 300`, under
/// a layer that trusts the header or not.
fn deadline_app(trusted: bool) -> App {
    let layer = ZenLayer::new();
    let layer = if trusted { layer.deadline(Deadline::header("x-request-timeout-ms")) } else { layer };
    let mut app = trivial_app(apps::trivial(zen_hello).layer(layer));
    app.header = Some(("x-request-timeout-ms", "300"));
    app
}

fn setup_no_deadline() -> App {
    deadline_app(false)
}

fn setup_deadline() -> App {
    deadline_app(true)
}

#[library_benchmark]
#[bench::hello(setup = setup_no_deadline)]
fn no_deadline_header(app: App) -> App {
    app.served(TRIVIAL_REQUESTS)
}

#[library_benchmark]
#[bench::hello(setup = setup_deadline)]
fn deadline_header(app: App) -> App {
    app.served(TRIVIAL_REQUESTS)
}

library_benchmark_group!(name = deadline_in; compare_by_id = true; benchmarks = no_deadline_header, deadline_header);

const CALLS: usize = 100;

/// `CALLS` external calls in an enforced scope with time left: each
/// counted as zen's own clients count one (admitted, its time limit read,
/// finished), or (`layered`) sent through `DeadlineLayer`, which does the
/// same and writes `grpc-timeout`.
#[zen(mode = "enforce", timeout_ms = 60_000)]
async fn calls(layered: bool) -> Result<usize, zen_runtime::BudgetExceeded> {
    let mut inner = tower::service_fn(|_: Request<()>| {
        let empty = http_body_util::Empty::<axum::body::Bytes>::new();
        std::future::ready(Ok::<_, std::convert::Infallible>(axum::http::Response::new(empty)))
    });
    let mut service = tower::ServiceBuilder::new().layer(DeadlineLayer::new(Deadline::grpc())).service(inner);
    let mut sent = 0;
    for _ in 0..CALLS {
        let request = Request::post("http://peer:50051/zen.Svc/Call").body(()).unwrap();
        if layered {
            service.ready().await.unwrap().call(request).await.unwrap();
        } else {
            let call = instrument::call("peer").unwrap();
            black_box(call.time_limit());
            inner.ready().await.unwrap().call(request).await.unwrap();
            call.finish(true);
        }
        sent += 1;
    }
    Ok(sent)
}

/// A runtime on which both kinds of call ran once.
fn warmed_calls() -> tokio::runtime::Runtime {
    let rt = runtime();
    rt.block_on(calls(true)).unwrap();
    rt.block_on(calls(false)).unwrap();
    rt
}

#[library_benchmark]
#[bench::hundred(setup = warmed_calls)]
fn call_bookkeeping(rt: tokio::runtime::Runtime) -> tokio::runtime::Runtime {
    black_box(rt.block_on(calls(false)).unwrap());
    rt
}

#[library_benchmark]
#[bench::hundred(setup = warmed_calls)]
fn call_with_grpc_timeout(rt: tokio::runtime::Runtime) -> tokio::runtime::Runtime {
    black_box(rt.block_on(calls(true)).unwrap());
    rt
}

library_benchmark_group!(name = deadline_out; compare_by_id = true; benchmarks = call_bookkeeping, call_with_grpc_timeout);

/// `PAIRS` allocation-and-free pairs of 64 bytes through `allocator`,
/// inside a scope.
fn pairs_in_scope<A: GlobalAlloc>(allocator: &A) {
    common::poll_once(testing::measure(async { common::pairs(allocator, 64) }));
}

/// One scope first: what the process does once (its first scope, the
/// observers it registers) is not a pair's cost.
fn warmed_up() {
    pairs_in_scope(&System);
}

#[library_benchmark]
#[bench::pairs(setup = warmed_up)]
fn system((): ()) {
    pairs_in_scope(&System);
}

fn setup_zen_alloc() -> &'static ZenAlloc {
    warmed_up();
    USE_ZEN.store(true, Ordering::Relaxed);
    &ZEN
}

#[library_benchmark]
#[bench::pairs(setup = setup_zen_alloc)]
fn zen_alloc(allocator: &'static ZenAlloc) {
    pairs_in_scope(allocator);
}

library_benchmark_group!(name = allocator; compare_by_id = true; benchmarks = system, zen_alloc);

/// One scope, with `n` queries' bookkeeping in it.
fn scope_with(n: usize) -> u64 {
    let ((), report) = common::poll_once(testing::measure(async {
        for _ in 0..n {
            instrument::query("PostgreSQL", "SELECT id, title FROM articles WHERE author_id = $1 ORDER BY id LIMIT 20")
                .unwrap()
                .finish(true);
        }
    }));
    report.figures.queries()
}

/// N+1 detection off (a statement run 100 times would be one, and its call
/// site resolved once, a cost of its own), and the statement's fingerprint
/// cached, as in a server that has run for a while.
fn steady() {
    zen_runtime::config::set_n_plus_one(0);
    scope_with(1);
}

#[library_benchmark]
#[bench::one_scope(setup = steady)]
fn no_query((): ()) -> u64 {
    black_box(scope_with(0))
}

#[library_benchmark]
#[bench::one_scope(setup = steady)]
fn hundred_queries((): ()) -> u64 {
    black_box(scope_with(100))
}

library_benchmark_group!(name = query; compare_by_id = true; benchmarks = no_query, hundred_queries);

/// An observer that takes every hook and does nothing with it.
struct Idle;

impl observe::Observer for Idle {
    fn scope_ended(&self, end: &observe::ScopeEnd<'_>) {
        black_box(end.figures());
    }

    fn operation_started(&self, _: &observe::OperationEnd<'_>) -> Option<observe::OnEnd> {
        None
    }

    fn operation_ended(&self, end: &observe::OperationEnd<'_>) {
        black_box(end.elapsed());
    }
}

/// [`steady`], with no observer registered, then with `observer` alone.
fn only(observer: Option<Idle>) {
    steady();
    for id in observe::registered() {
        observe::unregister(id);
    }
    if let Some(observer) = observer {
        observe::register(observer);
    }
    scope_with(1);
}

fn setup_no_observer() {
    only(None);
}

fn setup_one_observer() {
    only(Some(Idle));
}

#[library_benchmark]
#[bench::hundred_queries(setup = steady)]
fn the_crates_own((): ()) -> u64 {
    black_box(scope_with(100))
}

#[library_benchmark]
#[bench::hundred_queries(setup = setup_no_observer)]
fn none((): ()) -> u64 {
    black_box(scope_with(100))
}

#[library_benchmark]
#[bench::hundred_queries(setup = setup_one_observer)]
fn one_idle((): ()) -> u64 {
    black_box(scope_with(100))
}

library_benchmark_group!(name = observers; compare_by_id = true; benchmarks = the_crates_own, none, one_idle);

/// Asks every scope for its timeline.
struct Timelines;

impl observe::Observer for Timelines {
    fn hooks(&self) -> observe::Hooks {
        observe::Hooks::TIMELINES
    }
}

/// One scope with 100 queries given their values, as zen's sqlx wrapper
/// gives them (read only while the scope records its timeline).
fn scope_with_values() -> u64 {
    let ((), report) = common::poll_once(testing::measure(async {
        for id in 0..100_i64 {
            instrument::query("PostgreSQL", "SELECT id, title FROM articles WHERE author_id = $1 ORDER BY id LIMIT 20")
                .unwrap()
                .values(&id)
                .finish(true);
        }
    }));
    report.figures.queries()
}

fn setup_timelines_on() {
    steady();
    observe::register(Timelines);
    scope_with_values();
}

#[library_benchmark]
#[bench::hundred_queries(setup = steady)]
fn timelines_off((): ()) -> u64 {
    black_box(scope_with_values())
}

#[library_benchmark]
#[bench::hundred_queries(setup = setup_timelines_on)]
fn timelines_on((): ()) -> u64 {
    black_box(scope_with_values())
}

library_benchmark_group!(name = timeline; compare_by_id = true; benchmarks = timelines_off, timelines_on);

type CommandEvents =
    (Vec<mongodb::event::command::CommandEvent>, mongodb::event::EventHandler<mongodb::event::command::CommandEvent>);

/// The events of 100 finds by id, caught from the server, and the handler
/// they go to: zen's, or one that does nothing.
fn command_events(zen: bool) -> CommandEvents {
    use mongodb::event::EventHandler;
    use mongodb::event::command::CommandEvent;
    steady();
    let url = std::env::var("ZEN_TEST_MONGODB_URL").unwrap_or_else(|_| "mongodb://127.0.0.1:27017".into());
    let caught = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let rt = runtime();
    rt.block_on(async {
        let mut options = mongodb::options::ClientOptions::parse(&url).await.unwrap();
        let into = caught.clone();
        options.command_event_handler =
            Some(EventHandler::callback(move |e: CommandEvent| into.lock().unwrap().push(e)));
        let client = mongodb::Client::with_options(options).unwrap();
        let coll = client.database("zen_bench").collection::<mongodb::bson::Document>("items");
        coll.find_one(mongodb::bson::doc! { "_id": 42 }).await.unwrap();
    });
    let pair: Vec<CommandEvent> = caught.lock().unwrap().clone();
    assert_eq!(pair.len(), 2, "a find and its answer");
    let events = (0..100).flat_map(|_| pair.iter().cloned()).collect();
    let mut options = mongodb::options::ClientOptions::default();
    options.command_event_handler = Some(EventHandler::callback(|e: CommandEvent| drop(black_box(e))));
    if zen {
        zen_runtime::mongodb::install(&mut options);
        // Warm: the shape's fingerprint cached, as in a server that has run.
        let (events, handler) = (pair.clone(), options.command_event_handler.clone().unwrap());
        replay((events, handler));
    }
    (events, options.command_event_handler.unwrap())
}

/// The events handed to the handler inside one scope; the commands counted.
fn replay((events, handler): CommandEvents) -> u64 {
    let mongodb::event::EventHandler::Callback(handler) = handler else { unreachable!("a callback") };
    let ((), report) = common::poll_once(testing::measure(async {
        for event in events {
            handler(event);
        }
    }));
    report.figures.queries()
}

#[library_benchmark]
#[bench::hundred_commands(setup = command_events, args = (false))]
fn driver_alone(events: CommandEvents) -> u64 {
    black_box(replay(events))
}

#[library_benchmark]
#[bench::hundred_commands(setup = command_events, args = (true))]
fn with_zen(events: CommandEvents) -> u64 {
    black_box(replay(events))
}

library_benchmark_group!(name = mongodb_command; compare_by_id = true; benchmarks = driver_alone, with_zen);

/// A client of the server, with zen installed or not, warmed up, and the
/// runtime it runs on.
type MongoClient = (tokio::runtime::Runtime, mongodb::Collection<mongodb::bson::Document>);

fn mongo_client(zen: bool) -> MongoClient {
    steady();
    let url = std::env::var("ZEN_TEST_MONGODB_URL").unwrap_or_else(|_| "mongodb://127.0.0.1:27017".into());
    let rt = runtime();
    let coll = rt.block_on(async {
        let mut options = mongodb::options::ClientOptions::parse(&url).await.unwrap();
        if zen {
            zen_runtime::mongodb::install(&mut options);
        }
        let coll = mongodb::Client::with_options(options).unwrap().database("zen_bench").collection("items");
        coll.find_one(mongodb::bson::doc! { "_id": 42 }).await.unwrap();
        coll
    });
    let client = (rt, coll);
    finds(&client);
    client
}

/// 100 finds by id, one round trip each, in one scope.
fn finds((rt, coll): &MongoClient) -> u64 {
    let ((), report) = rt.block_on(testing::measure(async {
        for id in 0..100 {
            coll.find_one(mongodb::bson::doc! { "_id": id }).await.unwrap();
        }
    }));
    report.figures.queries()
}

#[library_benchmark]
#[bench::hundred_finds(setup = mongo_client, args = (false))]
fn not_installed(client: MongoClient) -> MongoClient {
    black_box(finds(&client));
    client
}

#[library_benchmark]
#[bench::hundred_finds(setup = mongo_client, args = (true))]
fn installed(client: MongoClient) -> MongoClient {
    black_box(finds(&client));
    client
}

library_benchmark_group!(name = mongodb_round_trip; compare_by_id = true; benchmarks = not_installed, installed);

main!(
    library_benchmark_groups = realistic,
    features,
    trivial,
    allocator,
    query,
    observers,
    mongodb_command,
    mongodb_round_trip,
    deadline_in,
    deadline_out,
    timeline
);
