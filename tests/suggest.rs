//! Reports of a real run (an axum app on SQLite under the layer) written as
//! JSON lines, in files of bounded size, and the budgets `zen suggest`
//! proposes from them.

mod common;

use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use zen_runtime::db::SqlitePool;
use zen_runtime::layer::ZenLayer;
use zen_runtime::sinks::JsonLines;

/// One lookup per article, then one query with a literal in its text.
#[zen_runtime::zen]
async fn articles(State(pool): State<SqlitePool>, Path(id): Path<i64>) -> String {
    for n in 0..=id % 3 {
        let _: Option<String> = sqlx::query_scalar("SELECT title FROM articles WHERE id = ?")
            .bind(n + 1)
            .fetch_optional(&pool)
            .await
            .unwrap();
    }
    let others: i64 =
        sqlx::query_scalar("SELECT count(*) FROM users WHERE name <> 'hunter2-secret'").fetch_one(&pool).await.unwrap();
    format!("{others}")
}

async fn health() -> &'static str {
    "ok"
}

/// Refuses every request, as a handler that validates its input first.
#[zen_runtime::zen]
async fn delete_article(Path(_id): Path<i64>) -> axum::http::StatusCode {
    axum::http::StatusCode::BAD_REQUEST
}

#[zen_runtime::zen]
async fn rare() -> &'static str {
    "seldom asked"
}

fn dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("zen-suggest-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every sink sees every report of the process: tests that count what a
/// sink wrote run one at a time.
static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn reports_of_a_real_run_give_a_budget_per_route_in_files_that_stay_small() {
    let _alone = ALONE.lock().await;
    let dir = dir("run");
    let path = dir.join("zen.jsonl");
    let sink = JsonLines::builder(&path).max_bytes(16 * 1024).keep(2).open().unwrap();

    let pool = common::sqlite_pool_at(&common::sqlite_url(), 2).await;
    let app = Router::new()
        .route("/articles/{id}", get(articles).delete(delete_article))
        .route("/health", get(health))
        .route("/rare", get(rare))
        .layer(ZenLayer::new())
        .with_state(pool);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    for id in 0..150 {
        assert_eq!(client.get(format!("{url}/articles/{id}")).send().await.unwrap().status(), 200);
    }
    for _ in 0..30 {
        client.get(format!("{url}/health")).send().await.unwrap();
    }
    // Samples that must not become budgets: a refusal, a method the route
    // has no handler for, and a route seen three times.
    assert_eq!(client.delete(format!("{url}/articles/7")).send().await.unwrap().status(), 400);
    for _ in 0..3 {
        assert_eq!(client.post(format!("{url}/health")).send().await.unwrap().status(), 405);
        client.get(format!("{url}/rare")).send().await.unwrap();
    }
    sink.flush();
    assert_eq!((sink.written(), sink.dropped()), (187, 0));

    // Bounded: the current file and two rotated ones, none over the limit.
    let mut text = String::new();
    for name in ["zen.jsonl.2", "zen.jsonl.1", "zen.jsonl"] {
        let file = std::fs::read_to_string(dir.join(name)).unwrap();
        assert!(file.len() <= 16 * 1024, "{name}: {} bytes", file.len());
        text.push_str(&file);
    }
    assert!(!dir.join("zen.jsonl.3").exists());
    assert!(!text.contains("hunter2") && !text.contains("\"id\":"), "no value in a report line");
    assert!(text.contains("SELECT count(*) FROM users WHERE name <> ?"));

    // What the files still hold: the newest reports, every line whole.
    let records = zen_cli::parse("zen.jsonl", &text).unwrap();
    assert!(records.len() > 30 && records.len() < 180, "{} lines kept", records.len());
    let settings = zen_cli::Settings::default();
    let suggestions = zen_cli::suggest(&records, settings);
    let scope = |name: &str| suggestions.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("{name}"));
    let article = scope("GET /articles/{id}");
    assert_eq!(article.handlers, ["suggest::articles"], "the fn beside the route");
    let queries = &article.figures[0];
    assert_eq!((queries.key, queries.p50, queries.p99, queries.max), ("max_queries", 3.0, 4.0, 4.0));
    assert_eq!(queries.proposed, 6, "4 + 50%");
    let attribute = article.attribute().expect("enough successful reports");
    assert!(attribute.starts_with("#[zen(max_queries = 6, max_db_ms = "), "{attribute}");
    assert!(attribute.contains(", timeout_ms = ") && attribute.contains(", max_http_calls = 0"), "{attribute}");

    // Covered by nothing: proposed, and said so.
    let health = scope("GET /health");
    assert!(!health.covered && health.handlers.is_empty());
    let health_line = health.attribute().expect("30 successful reports");
    assert!(health_line.starts_with("#[zen(max_queries = 0, timeout_ms = "), "{health_line}");
    // Error responses alone, and too few samples: no budget at all.
    let delete = scope("DELETE /articles/{id}");
    assert_eq!((delete.reports, delete.left_out, delete.attribute()), (0, 1, None), "a 400 is no sample");
    assert_eq!(delete.handlers, ["suggest::delete_article"]);
    let not_allowed = scope("POST /health");
    assert_eq!((not_allowed.reports, not_allowed.left_out, not_allowed.covered), (0, 3, false), "axum's 405");
    assert_eq!(not_allowed.attribute(), None);
    let seldom = scope("GET /rare");
    assert_eq!((seldom.reports, seldom.attribute()), (3, None), "3 samples are not 20");

    let printed = zen_cli::render(&suggestions, settings);
    assert!(
        printed.contains("GET /articles/{id} (handler, fn suggest::articles, ") && printed.contains(&attribute),
        "{printed}"
    );
    let section = |name: &str| printed.split("\n\n").find(|s| s.starts_with(name)).unwrap().to_owned();
    assert!(section("GET /health (").contains("no #[zen] fn and no layer budget covers this scope"), "{printed}");
    assert!(section("DELETE /articles/{id} (").contains("not enough data: 0 successful reports, at least 20 needed"));
    assert!(!section("DELETE /articles/{id} (").contains("#[zen("), "{printed}");
    assert!(section("GET /rare (").contains("not enough data: 3 successful reports"), "{printed}");
    assert!(
        !section("GET /articles/{id} (").contains("not enough data")
            && !section("GET /articles/{id} (").contains("covers")
    );

    // Fewer samples asked for: the rare route gets a line; the refusals still none.
    let loose = zen_cli::suggest(&records, zen_cli::Settings { min_samples: 3, ..settings });
    let find = |name: &str| loose.iter().find(|s| s.name == name).unwrap().attribute();
    assert!(find("GET /rare").is_some_and(|a| a.starts_with("#[zen(max_queries = 0, ")));
    assert_eq!((find("DELETE /articles/{id}"), find("POST /health")), (None, None));
}

#[zen_runtime::zen(kind = "job")]
async fn tick() {}

#[test]
fn a_file_too_small_for_a_report_is_refused_with_its_size() {
    let dir = dir("small");
    let e = JsonLines::builder(dir.join("zen.jsonl")).max_bytes(1000).open().unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("max_bytes(1000)") && e.to_string().contains("4096"), "{e}");
    assert!(JsonLines::builder(dir.join("zen.jsonl")).max_bytes(zen_runtime::sinks::MIN_BYTES).open().is_ok());
}

#[tokio::test]
async fn writing_resumes_soon_after_the_directory_comes_back() {
    let dir = dir("removed");
    let path = dir.join("zen.jsonl");
    let sink = JsonLines::builder(&path).max_bytes(4096).keep(2).open().unwrap();
    let _alone = ALONE.lock().await;
    let run = |n: usize| async move {
        for _ in 0..n {
            tick().await;
        }
    };
    run(100).await;
    sink.flush();
    assert!(dir.join("zen.jsonl.1").exists(), "rotated while the directory was there");
    // Gone: rotations fail, and the reports are dropped and counted.
    std::fs::remove_dir_all(&dir).unwrap();
    let dropped = sink.dropped();
    run(100).await;
    sink.flush();
    assert!(sink.dropped() > dropped, "reports with nowhere to go are counted");
    // Back: within a second, reports are written again.
    std::fs::create_dir_all(&dir).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let written = sink.written();
    run(100).await;
    sink.flush();
    assert!(sink.written() > written, "written again once the directory is back");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.lines().count() > 0 && text.len() <= 4096, "{} bytes", text.len());
}

/// The feed: five articles, then their authors in one query, or (`true`,
/// the change under review) one query per article: an N+1.
#[zen_runtime::zen]
async fn feed(State((pool, n_plus_one)): State<(SqlitePool, bool)>) -> String {
    let articles: Vec<(i64, String, i64)> =
        sqlx::query_as("SELECT id, title, author_id FROM articles ORDER BY id LIMIT 5").fetch_all(&pool).await.unwrap();
    let names: Vec<String> = if n_plus_one {
        let mut names = Vec::new();
        for (_, _, author) in &articles {
            names.push(
                sqlx::query_scalar("SELECT name FROM users WHERE id = ?").bind(author).fetch_one(&pool).await.unwrap(),
            );
        }
        names
    } else {
        let ids: Vec<String> = articles.iter().map(|(_, _, author)| author.to_string()).collect();
        // Whole numbers of the database's own: nothing to inject.
        let sql = format!("SELECT name FROM users WHERE id IN ({})", ids.join(", "));
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_all(&pool).await.unwrap()
    };
    names.join(",")
}

/// The reports of 40 requests to the feed of a real app, as `JsonLines`
/// wrote them.
async fn feed_reports(dir: &std::path::Path, n_plus_one: bool) -> Vec<zen_cli::Record> {
    let path = dir.join(if n_plus_one { "after.jsonl" } else { "before.jsonl" });
    let sink = JsonLines::builder(&path).open().unwrap();
    let pool = common::sqlite_pool_at(&common::sqlite_url(), 2).await;
    let app = Router::new().route("/feed", get(feed)).layer(ZenLayer::new()).with_state((pool, n_plus_one));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/feed", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    for _ in 0..40 {
        assert_eq!(client.get(&url).send().await.unwrap().text().await.unwrap(), "user1,user2,user3,user4,user5");
    }
    server.abort();
    sink.flush();
    drop(sink);
    let text = std::fs::read_to_string(&path).unwrap();
    zen_cli::parse(path.to_str().unwrap(), &text).unwrap()
}

/// `zen diff` on the reports of two real runs, before and after a change
/// that brought an N+1: the query count's p99 grew from 2 to 6, the lookup
/// is new, and a threshold fails it; no value reaches the table.
#[tokio::test]
async fn zen_diff_shows_the_n_plus_one_a_change_brought() {
    let _alone = ALONE.lock().await;
    let dir = dir("diff");
    let before = feed_reports(&dir, false).await;
    let after = feed_reports(&dir, true).await;
    let change = zen_cli::diff(&before, &after);
    let text = zen_cli::render_diff(&change, false);
    assert!(text.contains("GET /feed (handler, 40 reports before, 40 after)"), "{text}");
    let row = text.lines().find(|l| l.trim_start().starts_with("max_queries")).unwrap();
    assert!(row.contains("2 → 6") && row.ends_with("+200.0%"), "{row}");
    assert!(text.contains("new: SELECT name FROM users WHERE id = ? (0 → 5 per report)"), "{text}");
    assert!(change.exceeds(10.0), "an N+1 fails --fail-above 10");
    assert!(!text.contains("user1") && !text.contains("IN (1"), "no value: {text}");
    let markdown = zen_cli::render_diff(&change, true);
    assert!(markdown.contains("| `max_queries` | 2 → 6 | 2 → 6 | 2 → 6 | +200.0% |"), "{markdown}");
    // The same code against itself: no statement is new or grew.
    let same = zen_cli::render_diff(&zen_cli::diff(&before, &before), false);
    assert!(!same.contains("new:") && !same.contains("grew:"), "{same}");
}
