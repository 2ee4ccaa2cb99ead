//! Each figure is described once, in the budget table, and every exporter
//! shows every figure from it: one request that uses and limits them all,
//! through the layer, seen in the metrics, the dashboard, OpenTelemetry,
//! JSON lines, `Server-Timing` and the `zen` event. A figure an exporter
//! leaves out fails here.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tracing_subscriber::layer::SubscriberExt as _;
use zen_runtime::dashboard::{Authorize, Dashboard};
use zen_runtime::db::SqlitePool;
use zen_runtime::layer::ZenLayer;
use zen_runtime::{Budget, zen};

const TOKEN: &str = "figures-test-token-0123456789";

/// Uses every figure: a query with rows, an external call, memory, a poll,
/// time, and a response body.
#[zen(
    max_queries = 10,
    max_db_ms = 5_000,
    max_mem_kb = 65_536,
    timeout_ms = 10_000,
    max_http_calls = 5,
    max_http_ms = 5_000,
    max_poll_ms = 5_000,
    max_rows = 100,
    max_response_kb = 1_024
)]
async fn everything(State((pool, peer)): State<(SqlitePool, String)>) -> String {
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM users").fetch_all(&pool).await.unwrap();
    let client = zen_runtime::http::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let answer = client.get(format!("{peer}/peer")).send().await.unwrap().text().await.unwrap();
    let held = std::hint::black_box(vec![1u8; 64 * 1024]);
    tokio::time::sleep(Duration::from_millis(2)).await;
    format!("{} {answer} {}", names.len(), held.len())
}

/// The names of the fields of the `zen` event of the scope `GET /everything`.
struct Fields(Arc<Mutex<BTreeSet<String>>>);

/// Whether an event's `name` field is `GET /everything`.
struct Everything(bool);

impl tracing::field::Visit for Everything {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0 |= field.name() == "name" && value == "GET /everything";
    }

    fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Fields {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut everything = Everything(false);
        event.record(&mut everything);
        if event.metadata().target() == "zen" && everything.0 {
            let mut names = self.0.lock().unwrap();
            for field in event.metadata().fields() {
                names.insert(field.name().to_owned());
            }
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn every_exporter_shows_every_figure_of_the_table() {
    // Every exporter at once: a metrics recorder, a dashboard, an
    // OpenTelemetry exporter, a sink writing JSON lines, the event.
    // This thread's recorder: the binary's global one belongs to metrics.rs.
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let _recorder = metrics::set_default_local_recorder(&recorder);
    let dashboard = Dashboard::new();
    let spans = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder().with_simple_exporter(spans.clone()).build();
    let fields = Arc::new(Mutex::new(BTreeSet::new()));
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("zen-figures")))
        .with(Fields(Arc::clone(&fields)));
    // The process's subscriber (this binary's other suite uses none): a
    // subscriber scoped to this thread would miss the callsites another
    // thread registers first, which tracing then caches as uninteresting.
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&lines);
    let sink = zen_runtime::sinks::add_sink(move |r| {
        if r.name == "GET /everything" {
            kept.lock().unwrap().push(r.to_json());
        }
    });

    let peer = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peer_url = format!("http://{}", peer.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(peer, Router::new().route("/peer", get(|| async { "hi" }))).await });
    let pool = common::sqlite_pool_at(&common::sqlite_url(), 1).await;
    let app = Router::new()
        .route("/everything", get(everything))
        .layer(ZenLayer::new().server_timing(true))
        .layer(dashboard.layer("/_zen", Authorize::token(TOKEN).unwrap()))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state((pool, peer_url));
    let request = || axum::http::Request::get("/everything").body(axum::body::Body::empty()).unwrap();
    let response = tower::ServiceExt::oneshot(app.clone(), request()).await.unwrap();
    assert_eq!(response.status(), 200);
    let timing = response.headers()["server-timing"].to_str().unwrap().to_owned();
    let _ = http_body_util::BodyExt::collect(response.into_body()).await.unwrap();
    zen_runtime::sinks::remove_sink(sink);

    let overview = common::dashboard_overview(app, TOKEN).await;
    let route = overview["routes"].as_array().unwrap().iter().find(|r| r["name"] == "GET /everything").unwrap();
    let line: serde_json::Value = serde_json::from_str(&lines.lock().unwrap()[0]).unwrap();
    let metrics = handle.render();
    let spans = spans.get_finished_spans().unwrap();
    let attributes: BTreeSet<String> =
        spans.iter().flat_map(|s| s.attributes.iter().map(|kv| kv.key.to_string())).collect();
    let fields = fields.lock().unwrap().clone();

    // Each entry's name, before its parameters: `http` is not `http-calls`.
    let timing_names: Vec<&str> = timing.split(',').map(|entry| entry.split(';').next().unwrap().trim()).collect();
    for &budget in Budget::ALL {
        let missing = |exporter: &str| format!("{exporter} leaves out {budget}");
        assert!(metrics.contains(&format!("{}_count", budget.metric())), "{}", missing("the metrics"));
        assert!(route["figures"].get(budget.event_field()).is_some(), "{}: {route}", missing("the dashboard"));
        assert!(attributes.contains(budget.attribute()), "{}: {attributes:?}", missing("OpenTelemetry"));
        assert!(attributes.contains(budget.limit_attribute()), "{}", missing("OpenTelemetry's limits"));
        assert!(line["used"].get(budget.key()).is_some(), "{}: {line}", missing("JSON lines"));
        assert!(line["limits"].get(budget.key()).is_some(), "{}: {line}", missing("JSON lines' limits"));
        assert!(timing_names.contains(&budget.timing_name()), "{}: {timing}", missing("Server-Timing"));
        assert!(fields.contains(budget.event_field()), "{}: {fields:?}", missing("the event"));
    }
}
