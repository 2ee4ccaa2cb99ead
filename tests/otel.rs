//! zen's figures as OpenTelemetry attributes of the current span, exported
//! by `tracing-opentelemetry` to the SDK's in-memory exporter: on a
//! `#[tracing::instrument]` span, and on the request span of
//! `tower_http`'s `TraceLayer` in front of a real axum server.

mod common;

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use opentelemetry::trace::{SpanKind, TracerProvider as _};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::layer::SubscriberExt as _;
use zen_runtime::db::SqlitePool;
use zen_runtime::layer::ZenLayer;
use zen_runtime::zen;

/// One test at a time: `tracing` caches whether a callsite is enabled
/// process-wide, and a test's subscriber coming or going while the other
/// runs could leave a callsite of the other cached as disabled (seen once).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One test at a time, with a SQLite pool, and spans exported while it
/// lives, on this thread (these tests run on a current-thread runtime, so
/// every task they start is on it too). Its fields drop in order: the
/// subscriber before the lock.
struct Exporting {
    pool: SqlitePool,
    exporter: InMemorySpanExporter,
    _subscriber: tracing::subscriber::DefaultGuard,
    _one: tokio::sync::MutexGuard<'static, ()>,
}

/// The pool is made after the lock: sqlx's own events register their
/// callsites then, never while another test's subscriber is the one in
/// force.
async fn exporting() -> Exporting {
    let one = ONE_AT_A_TIME.lock().await;
    let pool = common::sqlite_pool_at(&common::sqlite_url(), 1).await;
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    let subscriber =
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("zen-test")));
    let guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();
    Exporting { pool, exporter, _subscriber: guard, _one: one }
}

fn attributes(attributes: &[KeyValue]) -> BTreeMap<String, Value> {
    attributes.iter().map(|kv| (kv.key.to_string(), kv.value.clone())).collect()
}

fn span<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no span `{name}` in {:?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>()))
}

// The scope's name is not the span's: an attribute that carried the span's
// own name would show.
#[zen(max_queries = 2, timeout_ms = 5_000, name = "users.nightly_sync")]
#[tracing::instrument(skip_all)]
async fn sync_users(pool: &SqlitePool) -> usize {
    let mut names = Vec::new();
    for id in 1..=3 {
        let name: String =
            sqlx::query_scalar("SELECT name FROM users WHERE id = ?").bind(id).fetch_one(pool).await.unwrap();
        names.push(name);
    }
    names.len()
}

#[tokio::test(flavor = "current_thread")]
async fn the_instrumented_span_carries_the_figures_and_the_budget_exceeded_event() {
    let Exporting { pool, exporter, .. } = &exporting().await;
    assert_eq!(sync_users(pool).await, 3);

    let spans = exporter.get_finished_spans().unwrap();
    let span = span(&spans, "sync_users");
    let a = attributes(&span.attributes);
    assert_eq!(a["zen.scope.name"], Value::from("users.nightly_sync"));
    assert_eq!(a["zen.scope.kind"], Value::from("other"));
    assert_eq!(a["zen.mode"], Value::from("observe"));
    assert_eq!(a["zen.outcome"], Value::from("exceeded"));
    assert_eq!(a["zen.queries"], Value::I64(3));
    assert_eq!(a["zen.limit.max_queries"], Value::I64(2));
    assert_eq!(a["zen.limit.timeout_ms"], Value::I64(5_000));
    assert!(matches!(a["zen.db_ms"], Value::F64(ms) if ms > 0.0), "{a:?}");
    assert!(matches!(a["zen.elapsed_ms"], Value::F64(ms) if ms > 0.0), "{a:?}");
    assert_eq!(a["zen.http_calls"], Value::I64(0));
    assert_eq!(a["zen.n_plus_one"], Value::I64(0));
    assert!(!a.contains_key("http.route"), "not a request");
    assert!(!a.contains_key("zen.limit.max_db_ms"), "no such limit");

    let exceeded: Vec<_> = span.events.events.iter().filter(|e| e.name == "zen.budget_exceeded").collect();
    assert_eq!(exceeded.len(), 1, "{:?}", span.events.events);
    let e = attributes(&exceeded[0].attributes);
    assert_eq!(e["zen.budget"], Value::from("max_queries"));
    assert_eq!(e["zen.limit"], Value::I64(2));
    assert_eq!(e["zen.used"], Value::I64(3));
    assert_eq!(e["zen.unit"], Value::from("queries"));
}

#[zen(max_queries = 5)]
async fn article(State(pool): State<SqlitePool>, Path(id): Path<i64>) -> String {
    let name: String =
        sqlx::query_scalar("SELECT name FROM users WHERE id = ?").bind(1).fetch_one(&pool).await.unwrap();
    let others: i64 =
        sqlx::query_scalar("SELECT count(*) FROM users WHERE name <> 'hunter2-secret'").fetch_one(&pool).await.unwrap();
    let _ = sqlx::query("SELECT no_such_column FROM users").execute(&pool).await;
    format!("{id}: {name} and {others}")
}

#[tokio::test(flavor = "current_thread")]
async fn the_request_span_of_trace_layer_gets_the_route_and_each_query_a_client_span() {
    let Exporting { pool, exporter, .. } = &exporting().await;
    zen_runtime::otel::set_db_spans(true);
    let app = Router::new()
        .route("/o/articles/{id}", get(article))
        .layer(ZenLayer::new())
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(pool.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let body = reqwest::get(format!("{url}/o/articles/424242")).await.unwrap().text().await.unwrap();
    assert_eq!(body, "424242: user1 and 10");
    zen_runtime::otel::set_db_spans(false);

    let spans = exporter.get_finished_spans().unwrap();
    let request = span(&spans, "request");
    let a = attributes(&request.attributes);
    assert_eq!(a["http.route"], Value::from("/o/articles/{id}"));
    assert_eq!(a["zen.scope.name"], Value::from("GET /o/articles/{id}"));
    assert_eq!(a["zen.scope.kind"], Value::from("handler"));
    assert_eq!(a["zen.outcome"], Value::from("ok"));
    assert_eq!(a["zen.queries"], Value::I64(3));
    assert_eq!(a["zen.limit.max_queries"], Value::I64(5));
    assert!(request.events.events.iter().all(|e| e.name != "zen.budget_exceeded"));

    let db: Vec<&SpanData> = spans.iter().filter(|s| s.span_kind == SpanKind::Client).collect();
    assert_eq!(db.len(), 3, "one CLIENT span per query: {db:?}");
    for s in &db {
        assert_eq!(s.name, "SELECT");
        assert_eq!(s.parent_span_id, request.span_context.span_id(), "a child of the request's span");
        let a = attributes(&s.attributes);
        assert_eq!(a["db.system.name"], Value::from("sqlite"));
        assert_eq!(a["db.operation.name"], Value::from("SELECT"));
        assert!(matches!(&a["db.query.text"], Value::String(t) if t.as_str().starts_with("SELECT")), "{a:?}");
    }
    let texts: Vec<String> = db.iter().map(|s| attributes(&s.attributes)["db.query.text"].to_string()).collect();
    assert!(texts.iter().any(|t| t.contains("name <> ?")), "the literal became a placeholder: {texts:?}");
    let failed: Vec<_> = db.iter().filter(|s| s.status != opentelemetry::trace::Status::Unset).collect();
    assert_eq!(failed.len(), 1, "the failing query's span is an error: {db:?}");

    // What zen wrote holds no value: no literal, no id.
    for s in &spans {
        for kv in &s.attributes {
            let key = kv.key.as_str();
            if key.starts_with("zen.") || key.starts_with("db.") || key == "http.route" {
                let value = kv.value.to_string();
                assert!(!value.contains("hunter2") && !value.contains("424242"), "{key} = {value}");
            }
        }
    }
}

#[zen(max_queries = 10, name = "users.lookups")]
#[tracing::instrument(skip_all)]
async fn lookups(pool: &SqlitePool) {
    for id in [1, 2, 1] {
        let _: String = sqlx::query_scalar("SELECT name FROM users WHERE id = ? AND name <> ?")
            .bind(id)
            .bind("otel-secret-4417")
            .fetch_one(pool)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "current_thread")]
async fn with_timelines_on_each_operation_is_an_event_at_its_start() {
    let Exporting { pool, exporter, .. } = &exporting().await;
    zen_runtime::otel::set_timelines(true);
    let before = std::time::SystemTime::now();
    lookups(pool).await;
    zen_runtime::otel::set_timelines(false);

    let spans = exporter.get_finished_spans().unwrap();
    let span = span(&spans, "lookups");
    let events: Vec<_> = span.events.iter().filter(|e| e.name == "zen.operation").collect();
    assert_eq!(events.len(), 3, "{:?}", span.events);
    let mut at = before;
    for e in &events {
        let a = attributes(&e.attributes);
        assert_eq!(a["db.query.text"], Value::from("SELECT name FROM users WHERE id = ? AND name <> ?"));
        assert_eq!(a["zen.backend"], Value::from("sqlite"));
        assert_eq!(a["zen.outcome"], Value::from("ok"));
        assert_eq!(a["zen.rows"], Value::I64(1));
        assert!(matches!(a["zen.duration_ms"], Value::F64(ms) if ms > 0.0), "{a:?}");
        // In order, each stamped with its start, within the span.
        assert!(e.timestamp >= at && e.timestamp >= span.start_time && e.timestamp <= span.end_time, "{e:?}");
        at = e.timestamp;
    }
    let duplicate = span.events.iter().find(|e| e.name == "zen.duplicate").expect("the duplicate's event");
    let a = attributes(&duplicate.attributes);
    assert_eq!(
        (a["db.query.text"].clone(), a["zen.count"].clone()),
        (Value::from("SELECT name FROM users WHERE id = ? AND name <> ?"), Value::I64(2))
    );
    assert!(!format!("{:?}", span.events).contains("otel-secret-4417"), "no value in an event");
}
