//! MongoDB through the official driver and a real wire-protocol server
//! (`ZEN_TEST_MONGODB_URL`; `.ci/run` starts one): every command counted,
//! timed, fingerprinted without values and refused or cut in `enforce`,
//! exactly as SQL queries are.

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use futures::TryStreamExt as _;
use mongodb::bson::{Document, doc};
use mongodb::event::EventHandler;
use mongodb::event::command::CommandEvent;
use tower::ServiceExt as _;
use zen_runtime::db::SqlitePool;
use zen_runtime::layer::ZenLayer;
use zen_runtime::mongodb::{WithinBudget as _, as_budget_exceeded};
use zen_runtime::report::Writes;
use zen_runtime::{Budget, Mode, Report, testing, zen};

type Coll = mongodb::Collection<Document>;

/// A collection of its own for each test, in a database of this process,
/// with `n` documents `{i, tag}`; `None` when no server answers.
async fn collection(name: &str, n: i32) -> Option<Coll> {
    let url = common::mongodb_url().await?;
    let mut options = mongodb::options::ClientOptions::parse(&url).await.unwrap();
    zen_runtime::mongodb::install(&mut options);
    let client = mongodb::Client::with_options(options).unwrap();
    let coll = client.database(&format!("zen_test_{}", std::process::id())).collection::<Document>(name);
    coll.drop().await.unwrap();
    if n > 0 {
        coll.insert_many((0..n).map(|i| doc! { "i": i, "tag": "t" })).await.unwrap();
    }
    Some(coll)
}

/// A handler's error: the driver's or the database's, answered `500`.
#[derive(Debug)]
struct Failed(String);

impl From<mongodb::error::Error> for Failed {
    fn from(e: mongodb::error::Error) -> Self {
        Failed(e.to_string())
    }
}

impl From<sqlx::Error> for Failed {
    fn from(e: sqlx::Error) -> Self {
        Failed(e.to_string())
    }
}

impl From<zen_runtime::BudgetExceeded> for Failed {
    fn from(e: zen_runtime::BudgetExceeded) -> Self {
        Failed(e.to_string())
    }
}

impl axum::response::IntoResponse for Failed {
    fn into_response(self) -> axum::response::Response {
        (axum::http::StatusCode::INTERNAL_SERVER_ERROR, self.0).into_response()
    }
}

/// Five finds, as `over_sql` runs five queries.
#[zen(max_queries = 3)]
async fn over_mongo(State(coll): State<Coll>) -> Result<String, Failed> {
    for i in 0..5 {
        coll.find_one(doc! { "i": i }).within_budget().await?;
    }
    Ok("done".into())
}

#[zen(max_queries = 3)]
async fn over_sql(State(pool): State<SqlitePool>) -> Result<String, Failed> {
    for i in 0..5 {
        sqlx::query("SELECT ?").bind(i).execute(&pool).await?;
    }
    Ok("done".into())
}

/// The same five finds, not awaited within the budget: counted, and cut
/// by `enforce` once past it.
#[zen(max_queries = 3)]
async fn over_mongo_counted(State(coll): State<Coll>) -> Result<String, Failed> {
    for i in 0..5 {
        coll.insert_one(doc! { "over": i }).await?;
    }
    Ok("done".into())
}

fn mongo_app(coll: &Coll, mode: Mode) -> Router {
    Router::new()
        .route("/mongo", get(over_mongo))
        .route("/counted", get(over_mongo_counted))
        .with_state(coll.clone())
        .layer(ZenLayer::new().mode(mode))
}

async fn sql_app(mode: Mode) -> Router {
    let pool = common::sqlite_pool_at(&common::sqlite_url(), 1).await;
    Router::new().route("/sql", get(over_sql)).with_state(pool).layer(ZenLayer::new().mode(mode))
}

async fn status(app: &Router, path: &str) -> (u16, String) {
    let request = axum::http::Request::get(path).body(axum::body::Body::empty()).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// What a report says of the budget, the same for both stores.
fn verdict(r: &Report) -> (u64, u64, Vec<Budget>, bool) {
    let budgets = r.violations.iter().map(|v| v.budget).collect();
    (r.figures.queries(), r.figures.refused_queries(), budgets, r.within_budget())
}

#[tokio::test]
async fn five_commands_over_a_budget_of_three_are_reported_and_refused_as_five_sql_queries_are() {
    let Some(coll) = collection("over", 5).await else { return };
    common::collect_reports();
    for mode in [Mode::Observe, Mode::Enforce] {
        let before = (common::reports_named("GET /mongo").len(), common::reports_named("GET /sql").len());
        let (mongo_status, _) = status(&mongo_app(&coll, mode), "/mongo").await;
        let (sql_status, _) = status(&sql_app(mode).await, "/sql").await;
        let mongo = common::nth_report_named("GET /mongo", before.0 + 1).await;
        let sql = common::nth_report_named("GET /sql", before.1 + 1).await;
        assert_eq!(mongo_status, sql_status, "{mode:?}");
        assert_eq!(verdict(&mongo), verdict(&sql), "{mode:?}\n{mongo}\n{sql}");
        let expected = match mode {
            Mode::Observe => (200, (5, 0)),
            _ => (503, (4, 1)),
        };
        assert_eq!((mongo_status, (mongo.figures.queries(), mongo.figures.refused_queries())), expected);
        assert_eq!(mongo.backends.iter().map(|b| b.backend).collect::<Vec<_>>(), ["mongodb"]);
        assert_eq!(mongo.figures.rows(), if mode == Mode::Observe { 5 } else { 3 });
    }
}

#[tokio::test]
async fn a_write_past_the_budget_not_awaited_within_it_is_counted_and_cut_saying_it_was_committed() {
    let Some(coll) = collection("counted", 0).await else { return };
    let (status, body) = status(&mongo_app(&coll, Mode::Enforce), "/counted").await;
    let report = common::report_named("GET /counted").await;
    assert_eq!(status, 503, "{body}");
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    // Three inserts were answered before the fourth, which the driver sent.
    assert_eq!(problem["writes"], "committed", "{problem}");
    assert_eq!((report.figures.queries(), report.figures.refused_queries()), (4, 0), "{report}");
    assert_eq!(report.figures.writes(), Writes::Committed);
    assert!(coll.count_documents(doc! {}).await.unwrap() >= 3);
}

/// Finds the documents below `k`; inserts one; a `findAndModify`.
#[zen(max_queries = 10)]
async fn below(State(coll): State<Coll>, Path(k): Path<i32>) -> String {
    let found: Vec<Document> =
        coll.find(doc! { "tag": "t", "i": { "$lt": k } }).await.unwrap().try_collect().await.unwrap();
    coll.insert_one(doc! { "i": -1 - k, "tag": "new" }).await.unwrap();
    coll.find_one_and_update(doc! { "i": 0 }, doc! { "$inc": { "seen": 1 } }).await.unwrap();
    found.len().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_requests_each_count_exactly_their_own_commands_and_documents() {
    let Some(coll) = collection("concurrent", 50).await else { return };
    common::collect_reports();
    let app = Router::new().route("/below/{k}", get(below)).with_state(coll).layer(ZenLayer::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::new();
    let answers = futures::future::join_all((0..200).map(|n| {
        let (client, url) = (client.clone(), url.clone());
        async move { client.get(format!("{url}/below/{}", n % 50)).send().await.unwrap().text().await.unwrap() }
    }))
    .await;
    let expected: Vec<u64> = (0..200).map(|n| n % 50).collect();
    assert_eq!(answers.iter().map(|a| a.parse::<u64>().unwrap()).collect::<Vec<_>>(), expected);
    common::nth_report_named("GET /below/{k}", 200).await;
    let reports = common::reports_named("GET /below/{k}");
    let mut rows: Vec<u64> = Vec::new();
    for report in &reports {
        assert_eq!(report.figures.queries(), 3, "{report}");
        assert_eq!(report.figures.failed_queries(), 0);
        let fingerprints: Vec<&str> = report.statements.iter().map(|s| s.fingerprint.as_str()).collect();
        assert_eq!(fingerprints.len(), 3, "find, insert and findAndModify each once: {fingerprints:?}");
        assert!(fingerprints.contains(&"find concurrent filter {tag: ?, i: {$lt: ?}}"), "{fingerprints:?}");
        assert!(report.statements.iter().all(|s| s.backend == "mongodb"));
        rows.push(report.figures.rows());
    }
    // Each request's batch, and the document findAndModify returned.
    rows.sort_unstable();
    let mut expected: Vec<u64> = expected.iter().map(|k| k + 1).collect();
    expected.sort_unstable();
    assert_eq!(rows, expected);
}

/// One find, then a write past the budget that the cut leaves on its way.
#[zen(max_queries = 1)]
async fn write_on_its_way(State(coll): State<Coll>) -> Result<String, Failed> {
    coll.find_one(doc! {}).await?;
    coll.insert_one(doc! { "on": "its way" }).await?;
    Ok("done".into())
}

#[tokio::test]
async fn a_write_on_its_way_when_its_request_is_cut_is_said_unknown_never_none() {
    let Some(coll) = collection("on_its_way", 0).await else { return };
    let app = Router::new()
        .route("/on-its-way", get(write_on_its_way))
        .with_state(coll)
        .layer(ZenLayer::new().mode(Mode::Enforce));
    let (status, body) = status(&app, "/on-its-way").await;
    assert_eq!(status, 503, "{body}");
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["writes"], "unknown", "{problem}");
}

/// The line of `one_by_one`'s lookup.
static LOOKUP_LINE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

#[zen(max_queries = 40)]
async fn one_by_one(coll: &Coll) {
    for i in 0..8 {
        LOOKUP_LINE.store(line!() + 1, Ordering::SeqCst);
        coll.find_one(doc! { "i": i }).await.unwrap();
    }
}

#[zen(max_queries = 40)]
async fn one_cursor_in_pages(coll: &Coll) -> usize {
    let cursor = coll.find(doc! {}).batch_size(2).await.unwrap();
    cursor.try_collect::<Vec<_>>().await.unwrap().len()
}

#[tokio::test]
async fn a_lookup_in_a_loop_is_an_n_plus_one_at_its_call_site_and_the_pages_of_one_cursor_are_not() {
    let Some(coll) = collection("n_plus_one", 20).await else { return };
    let ((), report) = testing::measure(one_by_one(&coll)).await;
    let suspect = report.n_plus_one.first().unwrap_or_else(|| panic!("no N+1 in\n{report}"));
    assert_eq!((suspect.fingerprint.as_str(), suspect.backend), ("find n_plus_one filter {i: ?}", "mongodb"));
    let site = suspect.call_site.as_deref().unwrap_or_default();
    let line = format!("tests/mongodb.rs:{})", LOOKUP_LINE.load(Ordering::SeqCst));
    assert!(site.ends_with(&line), "call site: {site}, not at {line}");

    let (n, report) = testing::measure(one_cursor_in_pages(&coll)).await;
    assert_eq!(n, 20);
    // A find and its getMores: 20 documents in pages of 2.
    assert!(report.figures.queries() >= 10, "{report}");
    assert_eq!(report.figures.rows(), 20);
    assert!(report.n_plus_one.is_empty(), "{report}");
}

#[zen(max_db_ms = 5, mode = "enforce")]
async fn slow_then_more(coll: &Coll) -> Result<u64, mongodb::error::Error> {
    let pipeline = vec![doc! { "$group": { "_id": "$tag", "n": { "$sum": 1 } } }, doc! { "$sort": { "n": -1 } }];
    let _ = coll.aggregate(pipeline.clone()).within_budget().await?;
    let _ = coll.aggregate(pipeline.clone()).within_budget().await?;
    let _ = coll.aggregate(pipeline).within_budget().await?;
    Ok(0)
}

#[tokio::test]
async fn a_command_is_cut_at_the_time_left_counted_failed_and_the_client_stays_usable() {
    let Some(coll) = collection("slow", 0).await else { return };
    coll.insert_many((0..5000).map(|i| doc! { "i": i, "tag": format!("t{}", i % 7) })).await.unwrap();
    let (result, report) = testing::measure(slow_then_more(&coll)).await;
    let error = result.expect_err("an aggregate over 5,000 documents takes more than 5 ms");
    let exceeded = as_budget_exceeded(&error).unwrap_or_else(|| panic!("not a budget's error: {error}"));
    assert_eq!(exceeded.budget(), Budget::DbTime, "{exceeded}");
    assert_eq!(report.figures.failed_queries(), 1, "{report}");
    // The same client, at once: the next command works.
    assert_eq!(coll.count_documents(doc! { "tag": "t1" }).await.unwrap(), 715);
}

#[zen(timeout_ms = 150, mode = "enforce")]
async fn write_in_a_transaction_then_stall(coll: &Coll, updated: &AtomicUsize) -> Result<(), mongodb::error::Error> {
    let mut session = coll.client().start_session().await?;
    session.start_transaction().await?;
    coll.update_one(doc! { "_id": "account" }, doc! { "$set": { "balance": 1 } }).session(&mut session).await?;
    updated.fetch_add(1, Ordering::SeqCst);
    // Cut here, before the commit: the session is dropped open.
    tokio::time::sleep(Duration::from_secs(5)).await;
    session.commit_transaction().await
}

#[tokio::test]
async fn a_transaction_cut_in_enforce_is_aborted_and_none_of_its_writes_is_kept() {
    let Some(coll) = collection("transaction", 0).await else { return };
    coll.insert_one(doc! { "_id": "account", "balance": 0 }).await.unwrap();
    let updated = AtomicUsize::new(0);
    let (result, report) = testing::measure(write_in_a_transaction_then_stall(&coll, &updated)).await;
    let error = result.expect_err("cut at its deadline");
    let exceeded = as_budget_exceeded(&error).unwrap_or_else(|| panic!("not cut but refused by the server: {error}"));
    assert_eq!(exceeded.budget(), Budget::Timeout);
    assert_eq!(updated.load(Ordering::SeqCst), 1, "the update ran inside the transaction");
    // Writes inside a transaction take effect at its commit, which never came.
    assert_eq!(report.figures.writes(), Writes::None, "{report}");
    // Aborted, the transaction holds the document no more: a write from
    // outside it goes through (an open one would conflict with it), on a
    // balance the transaction never set.
    let mut outside = None;
    for _ in 0..50 {
        match coll.find_one_and_update(doc! { "_id": "account" }, doc! { "$inc": { "balance": 10 } }).await {
            Ok(before) => {
                outside = before;
                break;
            }
            Err(_conflict) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let before = outside.expect("a write from outside the transaction, once it was aborted");
    assert_eq!(before.get_i32("balance").unwrap(), 0, "{before}");
    let after = coll.find_one(doc! { "_id": "account" }).await.unwrap().unwrap();
    assert_eq!(after.get_i32("balance").unwrap(), 10, "{after}");
}

#[zen(max_queries = 10)]
async fn both_stores(coll: &Coll, pool: &zen_runtime::db::PgPool) {
    sqlx::query("SELECT 1").execute(pool).await.unwrap();
    sqlx::query("SELECT 2").execute(pool).await.unwrap();
    coll.find_one(doc! {}).await.unwrap();
    coll.count_documents(doc! {}).await.unwrap();
    coll.insert_one(doc! { "x": 1 }).await.unwrap();
}

#[tokio::test]
async fn a_handler_that_uses_postgresql_and_mongodb_has_figures_per_backend() {
    let Some(coll) = collection("mixed", 3).await else { return };
    let Some(url) = common::postgres_url().await else { return };
    let pool = zen_runtime::db::PgPool::connect(&url).await.unwrap();
    let ((), report) = testing::measure(both_stores(&coll, &pool)).await;
    let backend = |name: &str| report.backends.iter().find(|b| b.backend == name).map(|b| b.queries);
    assert_eq!((backend("mongodb"), backend("PostgreSQL")), (Some(3), Some(2)), "{:?}", report.backends);
    assert_eq!(report.figures.queries(), 5);
}

#[zen(max_queries = 5)]
async fn job_that_reads(coll: Coll) {
    coll.find_one(doc! { "i": 1 }).await.unwrap();
    coll.find_one(doc! { "i": 2 }).await.unwrap();
}

#[tokio::test]
async fn a_job_counts_its_commands_and_the_applications_own_handler_still_hears_every_event() {
    let Some(url) = common::mongodb_url().await else { return };
    let heard = Arc::new(AtomicUsize::new(0));
    let mut options = mongodb::options::ClientOptions::parse(&url).await.unwrap();
    let counter = heard.clone();
    options.command_event_handler = Some(EventHandler::callback(move |event: CommandEvent| {
        if matches!(event, CommandEvent::Started(_)) {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    }));
    zen_runtime::mongodb::install(&mut options);
    let client = mongodb::Client::with_options(options).unwrap();
    let coll = client.database(&format!("zen_test_{}", std::process::id())).collection::<Document>("job");
    // Outside any scope: not counted, and no harm done.
    coll.find_one(doc! {}).await.unwrap();
    common::collect_reports();
    let jobs = zen_runtime::jobs::Jobs::builder().start().unwrap();
    jobs.spawn("mongodb job", move || job_that_reads(coll.clone())).unwrap();
    let report = common::report_named("mongodb job").await;
    assert_eq!(report.figures.queries(), 2, "{report}");
    assert_eq!(heard.load(Ordering::SeqCst), 3, "the application's handler heard every command");
}

/// Values a request hands its commands: each written so that it would be
/// found if any surface showed it.
#[derive(Debug, Clone)]
struct Values {
    text: String,
    number: i64,
    real: f64,
    id: mongodb::bson::oid::ObjectId,
    millis: i64,
    pattern: String,
    uuid: String,
}

impl Values {
    fn shown(&self) -> [String; 7] {
        [
            self.text.clone(),
            self.number.to_string(),
            format!("{}", self.real),
            self.id.to_hex(),
            self.millis.to_string(),
            self.pattern.clone(),
            self.uuid.clone(),
        ]
    }
}

fn values() -> impl proptest::strategy::Strategy<Value = Values> {
    use proptest::prelude::*;
    ("Vx[a-z]{10}", 100_000_000_000_i64..999_999_999_999, 1_000.5_f64..9_999.5, any::<[u8; 12]>(), "Vr[a-z]{10}")
        .prop_map(|(text, number, real, id, pattern)| Values {
            text,
            number,
            real: (real * 1000.0).round() / 1000.0 + 0.123,
            id: mongodb::bson::oid::ObjectId::from_bytes(id),
            millis: number + 7,
            pattern,
            uuid: format!("{:08x}-{:04x}-4a1b-8c2d-{:012x}", number % (1 << 32), number % 0xffff, number + 11),
        })
}

/// Every kind of command over the values, past a budget of five.
#[zen(max_queries = 5)]
async fn private(State((coll, values)): State<(Coll, Values)>) -> Result<String, Failed> {
    use mongodb::bson::{Binary, DateTime, Regex, spec::BinarySubtype};
    let v = &values;
    let date = DateTime::from_millis(v.millis);
    let binary = Binary { subtype: BinarySubtype::Generic, bytes: v.text.as_bytes().to_vec() };
    coll.insert_one(doc! { "text": &v.text, "n": v.number, "r": v.real, "ref": v.id, "at": date, "raw": binary })
        .within_budget()
        .await?;
    let regex = Regex { pattern: v.pattern.clone(), options: "i".into() };
    let filter = doc! { "text": &v.text, "n": { "$gte": v.number }, "ref": { "$in": [v.id, &v.text, v.real] },
    "note": regex, "at": { "$lt": date } };
    coll.find(filter.clone()).sort(doc! { "n": 1 }).within_budget().await?.try_collect::<Vec<_>>().await?;
    // Keys that are values: a number, an id, a UUID.
    let keys = doc! { format!("scores.{}", v.number): 1, v.id.to_hex(): 2, v.uuid.clone(): 3 };
    coll.update_one(filter.clone(), doc! { "$set": { "seen": &v.text, "count": v.number }, "$inc": keys })
        .within_budget()
        .await?;
    // A command whose own key is not a collection, but a value.
    let _refused_or_not =
        coll.client().database("admin").run_command(doc! { "usersInfo": &v.text }).within_budget().await;
    coll.aggregate([
        doc! { "$match": filter.clone() },
        doc! { "$project": { "label": { "$concat": [&v.text, "x"] } } },
    ])
    .within_budget()
    .await?;
    // The fifth: refused, so that the answer is the problem document.
    coll.delete_many(filter).within_budget().await?;
    Ok("done".into())
}

#[test]
fn no_value_of_a_command_reaches_a_report_header_problem_document_or_dashboard_page() {
    use proptest::test_runner::{Config, TestRunner};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(coll) = runtime.block_on(collection("private", 0)) else { return };
    common::collect_reports();
    let dashboard = zen_runtime::dashboard::Dashboard::new();
    let token = "mongodb-privacy-token-0123456789";
    let authorize = zen_runtime::dashboard::Authorize::token(token).unwrap();
    let mut runner = TestRunner::new(Config { cases: 12, failure_persistence: None, ..Config::default() });
    runner
        .run(&values(), |v| {
            runtime.block_on(async {
                let app = Router::new()
                    .route("/private", get(private))
                    .with_state((coll.clone(), v.clone()))
                    .layer(ZenLayer::new().mode(Mode::Enforce).server_timing(true))
                    .layer(dashboard.layer("/_zen", authorize.clone()));
                let before = common::reports_named("GET /private").len();
                let request = axum::http::Request::get("/private").body(axum::body::Body::empty()).unwrap();
                let response = app.clone().oneshot(request).await.unwrap();
                assert_eq!(response.status(), 503);
                let header = format!("{:?}", response.headers());
                let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
                let report = common::nth_report_named("GET /private", before + 1).await;
                assert_eq!(report.figures.refused_queries(), 1, "{report}");
                assert!(report.statements.iter().any(|s| s.fingerprint.starts_with("aggregate private pipeline")));
                let overview = common::dashboard_overview(app.clone(), token).await;
                let id = overview["routes"]
                    .as_array()
                    .and_then(|routes| routes.iter().find(|r| r["name"] == "GET /private"))
                    .map(|r| r["id"].to_string().trim_matches('"').to_owned())
                    .unwrap_or_else(|| panic!("no route in {overview}"));
                let mut pages = Vec::new();
                for path in [format!("/_zen/routes/{id}"), format!("/_zen/api/routes/{id}")] {
                    let request = axum::http::Request::get(path)
                        .header("authorization", format!("Bearer {token}"))
                        .body(axum::body::Body::empty())
                        .unwrap();
                    let page = app.clone().oneshot(request).await.unwrap();
                    assert_eq!(page.status(), 200);
                    pages.push(axum::body::to_bytes(page.into_body(), 1 << 22).await.unwrap());
                }
                let surfaces = [
                    ("Server-Timing", header),
                    ("problem document", String::from_utf8_lossy(&body).into_owned()),
                    ("report", report.to_string()),
                    ("report as JSON (the event's and JsonLines')", report.to_json()),
                    ("dashboard overview", overview.to_string()),
                    ("dashboard page", String::from_utf8_lossy(&pages[0]).into_owned()),
                    ("dashboard JSON", String::from_utf8_lossy(&pages[1]).into_owned()),
                ];
                for (surface, text) in &surfaces {
                    for value in v.shown() {
                        assert!(!text.contains(&value), "{value} in the {surface}: {text}");
                    }
                }
            });
            Ok(())
        })
        .unwrap();
}
