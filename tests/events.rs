//! The `tracing` event of a report. Alone in its binary: `tracing` caches
//! each callsite's interest process-wide, so a test with a scoped subscriber
//! must not race with tests that have none.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use zen_runtime::{instrument, testing, zen};

#[zen(name = "report::over", max_queries = 1, timeout_ms = 5)]
async fn over_budget() {
    for _ in 0..3 {
        instrument::query("test", "SELECT 1").unwrap().finish(true);
    }
    tokio::time::sleep(Duration::from_millis(15)).await;
}

/// One event: its level and each field's name and value, as text.
type Recorded = (tracing::Level, Vec<(String, String)>);

/// Records the `zen` events.
#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<Recorded>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Events {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        struct Fields(Vec<(String, String)>);
        impl Visit for Fields {
            fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
                self.0.push((field.name().to_owned(), format!("{value:?}")));
            }
        }
        if event.metadata().target() == "zen" {
            let mut fields = Fields(Vec::new());
            event.record(&mut fields);
            self.0.lock().unwrap().push((*event.metadata().level(), fields.0));
        }
    }
}

#[zen(name = "report::fine", max_queries = 5)]
async fn fine() {
    instrument::query("test", "SELECT 1").unwrap().finish(true);
}

#[zen(name = "report::n_plus_one")]
async fn n_plus_one() {
    for id in 0..6 {
        let _ = id;
        instrument::query("test", "SELECT name FROM users WHERE id = $1").unwrap().finish(true);
    }
}

/// One scoped subscriber at a time: callsite interest is process-wide.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn an_n_plus_one_within_budget_is_a_warning_even_when_only_warnings_are_on() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let events = Events::default();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::Layer::with_filter(events.clone(), tracing::level_filters::LevelFilter::WARN));
    tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            fine().await;
            n_plus_one().await;
        });
    });
    let events = events.0.lock().unwrap();
    assert_eq!(events.len(), 1, "only the N+1 scope warns");
    let (level, fields) = &events[0];
    assert_eq!(*level, tracing::Level::WARN);
    let suspects = fields.iter().find(|(n, _)| n == "n_plus_one").map(|(_, v)| v.as_str()).unwrap();
    assert!(suspects.contains("6x `SELECT name FROM users WHERE id = ?`"), "{suspects}");
}

#[test]
fn tracing_events_carry_one_field_per_figure_at_the_right_level() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let events = Events::default();
    let subscriber = tracing_subscriber::registry().with(events.clone());
    tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            fine().await;
            over_budget().await;
        });
    });
    let events = events.0.lock().unwrap();
    let field = |i: usize, name: &str| {
        events[i].1.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap_or_else(|| panic!("no field {name}"))
    };
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].0, tracing::Level::DEBUG);
    assert_eq!(field(0, "name"), "\"report::fine\"", "text fields are strings, quoted by formatters");
    assert_eq!(field(0, "queries"), "1");
    assert_eq!(field(0, "outcome"), "\"ok\"");
    assert_eq!(events[1].0, tracing::Level::WARN);
    assert_eq!(field(1, "outcome"), "\"exceeded\"");
    assert_eq!(field(1, "queries"), "3");
    assert!(field(1, "violations").contains("max_queries = 1: used 3 queries"));
    for name in ["kind", "mode", "failed_queries", "refused_queries", "slow_polls"] {
        field(1, name);
    }
    // One field per budget, from the budget table, but those not measured
    // here (memory without `ZenAlloc`, a response body outside the layer):
    // absent, not zero.
    for budget in zen_runtime::Budget::ALL {
        let present = events[1].1.iter().any(|(n, _)| n == budget.event_field());
        let measured = !matches!(budget.key(), "max_mem_kb" | "max_response_kb");
        assert_eq!(present, measured, "{budget}: field `{}`", budget.event_field());
    }
}

mod common;

use std::io::Write as _;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use zen_runtime::db::{self, SqlitePool};
use zen_runtime::layer::{RequestReport, ZenLayer};
use zen_runtime::{Budget, BudgetExceeded, Report};

/// What a formatting subscriber wrote.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buffer {
    type Writer = Buffer;

    fn make_writer(&'a self) -> Buffer {
        self.clone()
    }
}

impl Buffer {
    fn lines(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap().lines().map(str::to_owned).collect()
    }
}

type Refusal = Arc<Mutex<Option<BudgetExceeded>>>;

/// BEGIN, an insert, then a third statement that `enforce` refuses: the
/// handler keeps the refusal's error and turns it into its own 500.
#[zen(max_queries = 2)]
async fn refused_in_a_transaction(
    State((pool, refusal)): State<(SqlitePool, Refusal)>,
) -> Result<&'static str, (axum::http::StatusCode, String)> {
    let internal = |e: sqlx::Error| (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    let mut tx = pool.begin().await.map_err(internal)?;
    sqlx::query("INSERT INTO users (id, name) VALUES (700, 'x')").execute(&mut *tx).await.map_err(internal)?;
    let error = sqlx::query("SELECT 1").execute(&mut *tx).await.expect_err("the third is refused");
    *refusal.lock().unwrap() = db::as_budget_exceeded(&error).cloned();
    Err(internal(error))
}

/// Runs `work` on one thread under `subscriber`, so that the server's
/// events reach it.
fn on_one_thread<S, F>(subscriber: S, work: impl FnOnce() -> F) -> F::Output
where
    S: tracing::Subscriber + Send + Sync + 'static,
    F: std::future::Future,
{
    tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(work())
    })
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[test]
fn a_refusal_is_one_number_in_the_error_the_header_the_problem_the_report_and_the_event() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let events = Events::default();
    let refusal = Refusal::default();
    let reports: Arc<Mutex<Vec<Report>>> = Arc::default();
    let (header, problem) = on_one_thread(tracing_subscriber::registry().with(events.clone()), || {
        let (refusal, reports) = (Arc::clone(&refusal), Arc::clone(&reports));
        async move {
            let pool = common::sqlite_pool_at(&common::sqlite_url(), 1).await;
            let app = Router::new()
                .route("/refused", get(refused_in_a_transaction))
                .layer(ZenLayer::new().server_timing(true).mode(zen_runtime::Mode::Enforce))
                .layer(axum::middleware::map_response(move |response: axum::response::Response| {
                    let reports = Arc::clone(&reports);
                    async move {
                        let report = response.extensions().get::<RequestReport>().unwrap().report().clone();
                        reports.lock().unwrap().push(report);
                        response
                    }
                }))
                .with_state((pool, refusal));
            let url = serve(app).await;
            let response = reqwest::get(format!("{url}/refused")).await.unwrap();
            assert_eq!(response.status(), 503, "the layer answers for the blown budget");
            let header = response.headers()["server-timing"].to_str().unwrap().to_owned();
            let problem: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
            (header, problem)
        }
    });
    let error = refusal.lock().unwrap().clone().expect("the handler saw the refusal");
    assert_eq!(
        (error.budget(), error.limit(), error.used()),
        (Budget::Queries, 2, 3),
        "BEGIN, INSERT, and the refused one"
    );
    assert!(header.contains("queries;desc=\"3/2\""), "{header}");
    assert_eq!((problem["budget"].as_str(), problem["used"].as_u64()), (Some("max_queries"), Some(3)), "{problem}");
    let report = &reports.lock().unwrap()[0];
    assert_eq!((report.figures.queries(), report.figures.refused_queries()), (3, 1), "{report}");
    assert_eq!(report.violation(Budget::Queries).map(|v| v.used), Some(3));
    assert_eq!(report.status, Some(503));
    let events = events.0.lock().unwrap();
    let event = events.iter().find(|(_, f)| f.iter().any(|(n, v)| n == "name" && v.contains("/refused"))).unwrap();
    let field = |name: &str| event.1.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap();
    assert_eq!(field("queries"), "3");
    assert_eq!(field("refused_queries"), "1");
    assert_eq!(field("status"), "503");
    assert!(field("violations").contains("max_queries = 2: used 3 queries"));
}

#[zen(name = "GET /orders/{id} with spaces", max_queries = 2)]
async fn spaced_and_over() {
    for _ in 0..6 {
        instrument::query("PostgreSQL", "SELECT name, total FROM orders WHERE id = $1").unwrap().finish(true);
    }
}

/// A logfmt line's `key=value` pairs: a value is a quoted string (with `\"`
/// and `\\` escapes) or runs to the next space.
fn logfmt(line: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if_eq(&' ').is_some() {}
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ' ')).collect();
        if key.is_empty() {
            break;
        }
        if chars.next_if_eq(&'=').is_none() {
            continue;
        }
        let value = if chars.next_if_eq(&'"').is_some() {
            let mut value = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
            value
        } else {
            std::iter::from_fn(|| chars.next_if(|c| *c != ' ')).collect()
        };
        pairs.push((key, value));
    }
    pairs
}

#[test]
fn every_field_parses_in_logfmt_and_in_json() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let text = Buffer::default();
    let json = Buffer::default();
    let fmt = tracing_subscriber::fmt().with_writer(text.clone()).with_ansi(false).finish();
    on_one_thread(fmt, spaced_and_over);
    let fmt = tracing_subscriber::fmt().json().with_writer(json.clone()).finish();
    on_one_thread(fmt, spaced_and_over);
    let _ = std::io::stderr().flush();

    let line = text.lines().into_iter().find(|l| l.contains("zen budget exceeded")).expect("a WARN line");
    let pairs = logfmt(line.split("zen budget exceeded").nth(1).unwrap());
    let value = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    assert_eq!(value("name"), Some("GET /orders/{id} with spaces"), "{line}");
    assert_eq!(value("slowest_query"), Some("SELECT name, total FROM orders WHERE id = ?"), "{line}");
    assert_eq!(value("violations"), Some("max_queries = 2: used 6 queries"), "{line}");
    assert!(value("n_plus_one").is_some_and(|n| n.starts_with("6x `SELECT name, total")), "{line}");
    assert_eq!(value("queries"), Some("6"));
    // Nothing else on the line: every word belongs to a pair.
    assert!(pairs.iter().all(|(k, _)| k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')), "{pairs:?}");

    let line = json.lines().into_iter().find(|l| l.contains("zen budget exceeded")).expect("a WARN line");
    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
    let fields = &event["fields"];
    assert_eq!(fields["name"], "GET /orders/{id} with spaces", "{line}");
    assert_eq!(fields["slowest_query"], "SELECT name, total FROM orders WHERE id = ?");
    assert_eq!(fields["violations"], "max_queries = 2: used 6 queries");
    assert_eq!(fields["queries"], 6, "numbers are numbers");
    assert_eq!(fields["kind"], "other");
}

/// Statements that fooled the old reader, each with a value the reports
/// must never show, per backend.
const HOSTILE: &[(&str, &str)] = &[
    ("PostgreSQL", r"SELECT 'C:\', 'hunter-pg-1' FROM t WHERE id = $1"),
    ("PostgreSQL", "SELECT 1 /* a /* b */ hunter-pg-2 */ FROM t"),
    ("SQLite", r#"SELECT * FROM t WHERE name = "hunter-lite-3""#),
    ("MySQL", "SELECT 1 # hunter-my-4\nFROM t"),
    ("MySQL", r#"SELECT * FROM t WHERE name = "hunter-my-5""#),
    ("memcached", "GET session:hunter-mc-6"),
];

#[zen(name = "secrets", max_queries = 3)]
async fn hostile_statements() {
    for _ in 0..6 {
        for (backend, sql) in HOSTILE {
            instrument::query(backend, sql).unwrap().finish(true);
        }
    }
}

#[test]
fn no_value_reaches_an_event_or_a_report() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let text = Buffer::default();
    let json = Buffer::default();
    let fmt = tracing_subscriber::fmt().with_writer(text.clone()).with_ansi(false).finish();
    let reports = on_one_thread(fmt, || async { testing::collect(hostile_statements()).await.1 });
    let fmt = tracing_subscriber::fmt().json().with_writer(json.clone()).finish();
    on_one_thread(fmt, hostile_statements);
    let report = &reports[0];
    assert!(!report.n_plus_one.is_empty() && report.slowest_query.is_some(), "every field is filled: {report}");
    let everywhere = [text.lines().join("\n"), json.lines().join("\n"), report.to_string(), format!("{report:?}")];
    assert!(everywhere[0].contains("zen budget exceeded") && everywhere[1].contains("secrets"));
    for shown in everywhere {
        assert!(!shown.contains("hunter"), "a value leaked:\n{shown}");
    }
}
