//! Every scope's figures in the `metrics` facade, through
//! `metrics-exporter-prometheus` set up as the README says, served by a real
//! axum server on 127.0.0.1 and scraped by a real Prometheus server, whose
//! HTTP API answers the PromQL an operator would write.

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use zen_runtime::db::SqlitePool;
use zen_runtime::layer::ZenLayer;
use zen_runtime::{Budget, metrics as zm, zen};

/// The recorder of this process, installed once with zen's buckets.
fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let mut builder = PrometheusBuilder::new();
        for (name, buckets) in zm::BUCKETS {
            builder = builder.set_buckets_for_metric(Matcher::Full((*name).into()), buckets).unwrap();
        }
        builder.install_recorder().unwrap()
    })
}

#[zen(max_queries = 4)]
async fn article(State(pool): State<SqlitePool>, Path(id): Path<i64>) -> String {
    let mut names = Vec::new();
    for n in 1..=2 {
        let name: String =
            sqlx::query_scalar("SELECT name FROM users WHERE id = ?").bind(n).fetch_one(&pool).await.unwrap();
        names.push(name);
    }
    // A literal in the SQL: it must never reach a label.
    let others: i64 =
        sqlx::query_scalar("SELECT count(*) FROM users WHERE name <> 'hunter2-secret'").fetch_one(&pool).await.unwrap();
    format!("{id}: {} and {others} others", names.join(","))
}

/// An app under the layer, its routes under `prefix`, with `/metrics`
/// outside the layer (a scrape is nobody's request).
async fn serve(prefix: &str) -> String {
    let handle = handle().clone();
    let pool = common::sqlite_pool_at(&common::sqlite_url(), 2).await;
    let app = Router::new()
        .route(&format!("{prefix}/articles/{{id}}"), get(article))
        .route(&format!("{prefix}/over"), get(common::over))
        .route(&format!("{prefix}/listing"), get(listing))
        .route(&format!("{prefix}/static"), get(|| async { "nothing to measure" }))
        .route(&format!("{prefix}/sometimes/{{n}}"), get(sometimes))
        .layer(ZenLayer::new())
        .with_state(pool)
        .route("/metrics", get(move || std::future::ready(handle.render())));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// Known traffic: `articles` requests of 3 queries (ids that must not
/// reach a label) and `2 * over` requests, half of them over budget.
async fn traffic(url: &str, prefix: &str, articles: u32, over: u32) {
    let client = reqwest::Client::new();
    for i in 0..articles {
        let r = client.get(format!("{url}{prefix}/articles/{}", 424_240 + i)).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    for _ in 0..over {
        for n in [3, 1] {
            let r = client.get(format!("{url}{prefix}/over?n={n}")).send().await.unwrap();
            assert_eq!(r.status(), 200);
        }
    }
}

/// The value of the one sample of `name` whose labels include `labels`, in
/// Prometheus's text format.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    let mut found = text.lines().filter_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (series_name, rest) = series.split_once('{').unwrap_or((series, "}"));
        let have: Vec<&str> = rest.trim_end_matches('}').split(',').collect();
        (series_name == name && wanted.iter().all(|w| have.contains(&w.as_str()))).then(|| value.parse().unwrap())
    });
    let first = found.next();
    assert!(found.next().is_none(), "more than one sample of {name} with {labels:?}");
    first
}

#[tokio::test]
async fn every_scope_is_counted_by_route_with_no_value_in_any_label() {
    let url = serve("/m").await;
    traffic(&url, "/m", 10, 4).await;
    let text = reqwest::get(format!("{url}/metrics")).await.unwrap().text().await.unwrap();

    let articles = [("route", "/m/articles/{id}"), ("method", "GET"), ("kind", "handler"), ("mode", "observe")];
    let with = |extra: (&'static str, &'static str)| {
        let mut labels = articles.to_vec();
        labels.push(extra);
        labels
    };
    assert_eq!(sample(&text, "zen_scopes_total", &with(("outcome", "ok"))), Some(10.0), "{text}");
    assert_eq!(sample(&text, "zen_scopes_total", &with(("outcome", "exceeded"))), Some(0.0));
    assert_eq!(sample(&text, "zen_scope_queries_count", &articles), Some(10.0));
    assert_eq!(sample(&text, "zen_scope_queries_sum", &articles), Some(30.0));
    assert_eq!(sample(&text, "zen_scope_queries_bucket", &with(("le", "2"))), Some(0.0));
    assert_eq!(sample(&text, "zen_scope_queries_bucket", &with(("le", "3"))), Some(10.0));
    let utilization = sample(&text, "zen_budget_utilization_ratio_sum", &with(("budget", "max_queries")));
    assert_eq!(utilization, Some(7.5), "3 of 4 queries, 10 times");
    assert!(sample(&text, "zen_scope_db_duration_seconds_sum", &articles).unwrap() > 0.0);
    assert_eq!(sample(&text, "zen_scope_duration_seconds_count", &articles), Some(10.0));

    let over = [("route", "/m/over"), ("method", "GET")];
    let over_with = |extra: (&'static str, &'static str)| {
        let mut labels = over.to_vec();
        labels.push(extra);
        labels
    };
    assert_eq!(sample(&text, "zen_scopes_total", &over_with(("outcome", "exceeded"))), Some(4.0));
    assert_eq!(sample(&text, "zen_scopes_total", &over_with(("outcome", "ok"))), Some(4.0));
    assert_eq!(sample(&text, "zen_budget_violations_total", &over_with(("budget", "max_queries"))), Some(4.0));
    assert_eq!(sample(&text, "zen_budget_violations_total", &over_with(("budget", "timeout_ms"))), None);
    let utilization = sample(&text, "zen_budget_utilization_ratio_sum", &over_with(("budget", "max_queries")));
    assert_eq!(utilization, Some(4.0 * 1.5 + 4.0 * 0.5));

    let selects = [("db_system_name", "sqlite"), ("db_operation_name", "SELECT")];
    assert!(sample(&text, "db_client_operation_duration_seconds_count", &selects).unwrap() >= 30.0 + 16.0);
    for histogram in [Budget::Queries.metric(), Budget::DbTime.metric(), zm::UTILIZATION, zm::DB_OPERATION_DURATION] {
        assert!(text.contains(&format!("# TYPE {histogram} histogram")), "{histogram} is not a histogram");
    }
    // Routes are templates; no SQL, fingerprint, literal or id anywhere.
    for leak in ["hunter2", "42424", "FROM", "users", "n=3"] {
        assert!(!text.contains(leak), "`{leak}` reached the metrics:\n{text}");
    }
}

/// A Prometheus server scraping `target` every second, stopped on drop.
struct Prometheus {
    child: Child,
    url: String,
    dir: std::path::PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Prometheus {
    /// Starts one, if the `prometheus` binary is installed (Debian's
    /// package; `.ci/run` installs it).
    async fn start(target: &str) -> Option<Prometheus> {
        Prometheus::start_with(target, None).await
    }

    /// [`Self::start`], evaluating `rules` (a rule file's text) every second.
    async fn start_with(target: &str, rules: Option<&str>) -> Option<Prometheus> {
        let binary = std::env::var("ZEN_TEST_PROMETHEUS").unwrap_or_else(|_| "prometheus".into());
        if Command::new(&binary).arg("--version").output().is_err() {
            return common::unavailable_binary("Prometheus", &binary);
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(format!("zen-prometheus-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("prometheus.yml");
        let target = target.trim_start_matches("http://");
        let rule_files = match rules {
            Some(rules) => {
                std::fs::write(dir.join("zen-rules.yml"), rules).unwrap();
                "rule_files: ['zen-rules.yml']\n"
            }
            None => "",
        };
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n{rule_files}\
                 scrape_configs:\n  - job_name: zen\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let child = Command::new(&binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let prometheus = Prometheus { child, url: format!("http://127.0.0.1:{port}"), dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = reqwest::get(format!("{}/-/ready", prometheus.url)).await
                && r.status() == 200
            {
                return Some(prometheus);
            }
            assert!(Instant::now() < deadline, "Prometheus did not become ready in 30 s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The result vector of an instant PromQL query, as (labels, value).
    async fn query(&self, promql: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        let url = reqwest::Url::parse_with_params(&format!("{}/api/v1/query", self.url), &[("query", promql)]).unwrap();
        let body: serde_json::Value =
            serde_json::from_str(&reqwest::get(url).await.unwrap().text().await.unwrap()).unwrap();
        assert_eq!(body["status"], "success", "{promql}: {body}");
        body["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let labels = serde_json::from_value(r["metric"].clone()).unwrap();
                (labels, r["value"][1].as_str().unwrap().parse().unwrap())
            })
            .collect()
    }

    /// Waits up to 30 s until `promql` gives `value`.
    async fn wait_for(&self, promql: &str, value: f64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let result = self.query(promql).await;
            if result.first().is_some_and(|(_, v)| *v == value) {
                return;
            }
            assert!(Instant::now() < deadline, "{promql} never gave {value}: {result:?}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

#[tokio::test]
async fn prometheus_answers_which_routes_run_close_to_their_budgets() {
    let url = serve("/p").await;
    let Some(prometheus) = Prometheus::start(&url).await else { return };
    // Two rounds of traffic, each scraped, so that rates have two points.
    traffic(&url, "/p", 20, 10).await;
    prometheus.wait_for(r#"sum(zen_scopes_total{route="/p/over"})"#, 20.0).await;
    traffic(&url, "/p", 20, 10).await;
    prometheus.wait_for(r#"sum(zen_scopes_total{route="/p/over"})"#, 40.0).await;
    prometheus.wait_for(r#"sum(zen_scopes_total{route="/p/articles/{id}"})"#, 40.0).await;

    // The p99 of queries per route: every article request ran 3.
    let p99 = prometheus
        .query(r#"histogram_quantile(0.99, sum by (le, route) (zen_scope_queries_bucket{route=~"/p/.*"}))"#)
        .await;
    let p99: BTreeMap<String, f64> = p99.into_iter().map(|(l, v)| (l["route"].clone(), v)).collect();
    let articles = p99["/p/articles/{id}"];
    assert!(articles > 2.0 && articles <= 3.0, "p99 of queries {articles}");
    assert!(p99["/p/over"] > 2.0 && p99["/p/over"] <= 3.0, "{p99:?}");

    // The README's rate of violations per request: half of `/p/over` blew `max_queries`.
    let rate = prometheus
        .query(
            r#"sum by (route, budget) (rate(zen_budget_violations_total{route=~"/p/.*"}[5m]))
             / on (route) group_left sum by (route) (rate(zen_scopes_total{route=~"/p/.*"}[5m]))"#,
        )
        .await;
    let rate: BTreeMap<(String, String), f64> =
        rate.into_iter().map(|(l, v)| ((l["route"].clone(), l["budget"].clone()), v)).collect();
    let key = |route: &str| (route.to_owned(), "max_queries".to_owned());
    assert!((rate[&key("/p/over")] - 0.5).abs() < 1e-9, "violation rate {rate:?}");
    assert_eq!(rate[&key("/p/articles/{id}")], 0.0, "{rate:?}");
    assert_eq!(rate.len(), 2, "only limited budgets have series: {rate:?}");
    let totals = prometheus.query(r#"zen_budget_violations_total{route="/p/over", budget="max_queries"}"#).await;
    assert_eq!(totals.iter().map(|(_, v)| v).sum::<f64>(), 20.0);

    // The README's query: routes closest to their budgets, closest first.
    let closest = prometheus
        .query(
            r#"sort_desc(topk(10, histogram_quantile(0.99,
                 sum by (le, route, budget) (rate(zen_budget_utilization_ratio_bucket{route=~"/p/.*"}[5m]))) >= 0))"#,
        )
        .await;
    let order: Vec<(&str, &str)> = closest.iter().map(|(l, _)| (l["route"].as_str(), l["budget"].as_str())).collect();
    assert_eq!(order, [("/p/over", "max_queries"), ("/p/articles/{id}", "max_queries")], "{closest:?}");
    assert!(closest[0].1 > 1.0, "p99 use of /p/over is over its budget: {closest:?}");
    assert!(closest[1].1 > 0.5 && closest[1].1 <= 0.75, "3 of 4 queries: {closest:?}");

    // Nothing but templates, budgets and fixed names in any label.
    let series = prometheus.query(r#"{__name__=~"zen_.*|db_client_.*"}"#).await;
    assert!(series.len() > 20, "{}", series.len());
    for (labels, _) in &series {
        for value in labels.values() {
            assert!(!value.contains("4242") && !value.contains("FROM") && !value.contains("hunter2"), "{labels:?}");
        }
    }
}

#[zen(max_queries = 5, max_db_ms = 2_000, timeout_ms = 5_000)]
async fn listing(State(pool): State<SqlitePool>) -> String {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&pool).await.unwrap();
    format!("{n} users")
}

/// No limit; `n` queries.
async fn sometimes(State(pool): State<SqlitePool>, Path(n): Path<u32>) -> &'static str {
    for i in 0..n {
        sqlx::query("SELECT ?").bind(i).execute(&pool).await.unwrap();
    }
    "done"
}

/// The series of one route, by metric name (a histogram's `_bucket`,
/// `_sum` and `_count` under its own name).
fn series_of(text: &str, route: &str) -> BTreeMap<String, usize> {
    let label = format!("route=\"{route}\"");
    let mut series = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && l.contains(&label)) {
        let name = line.split(['{', ' ']).next().unwrap();
        let name = ["_bucket", "_sum", "_count"].iter().fold(name, |n, suffix| n.strip_suffix(suffix).unwrap_or(n));
        *series.entry(name.to_owned()).or_insert(0) += 1;
    }
    series
}

#[tokio::test]
async fn a_route_has_series_only_for_what_it_limits_or_uses() {
    let url = serve("/series").await;
    for path in ["listing", "static"] {
        for _ in 0..3 {
            assert_eq!(reqwest::get(format!("{url}/series/{path}")).await.unwrap().status(), 200);
        }
    }
    let text = reqwest::get(format!("{url}/metrics")).await.unwrap().text().await.unwrap();

    // Limited on queries, database time and time; it queries; it never
    // calls out: no external-call series. This binary counts memory with
    // `ZenAlloc`, so its peak has a histogram too.
    let listing = series_of(&text, "/series/listing");
    let histogram = |buckets: &[f64]| buckets.len() + 3; // `le` of each bucket and +Inf, sum, count
    let expected: BTreeMap<String, usize> = [
        (zm::SCOPES, 4),
        (zm::N_PLUS_ONE, 1),
        (Budget::Queries.metric(), histogram(zm::COUNTS)),
        (Budget::DbTime.metric(), histogram(zm::SECONDS)),
        (Budget::Timeout.metric(), histogram(zm::SECONDS)),
        (Budget::Memory.metric(), histogram(zm::BYTES)),
        (zm::UTILIZATION, 3 * histogram(zm::RATIOS)),
        (zm::VIOLATIONS, 3),
        (zm::LIMIT, 3),
    ]
    .into_iter()
    .map(|(name, n)| (name.to_owned(), n))
    .collect();
    assert_eq!(listing, expected, "{text}");
    assert_eq!(listing.values().sum::<usize>(), 110, "the series of one such route, as the docs say");
    // Each limit, in its figure's unit.
    let limit = |budget: &str| sample(&text, zm::LIMIT, &[("route", "/series/listing"), ("budget", budget)]);
    assert_eq!(
        (limit("max_queries"), limit("max_db_ms"), limit("timeout_ms")),
        (Some(5.0), Some(2.0), Some(5.0)),
        "{text}"
    );
    // Nothing limited, nothing used but time and memory: counters, and those.
    let idle = series_of(&text, "/series/static");
    let idle_names: Vec<&str> = idle.keys().map(String::as_str).collect();
    assert_eq!(idle_names, [zm::N_PLUS_ONE, Budget::Timeout.metric(), Budget::Memory.metric(), zm::SCOPES], "{text}");
    assert_eq!(idle.values().sum::<usize>(), 34);
    assert_eq!(sample(&text, zm::SCOPES, &[("route", "/series/static"), ("outcome", "ok")]), Some(3.0));
    assert_eq!(sample(&text, zm::SCOPES, &[("route", "/series/static"), ("outcome", "exceeded")]), Some(0.0));

    // Unlimited: no series until a scope of the route queries; from then on
    // every scope's count, zero too.
    for n in [0, 2, 0, 0] {
        assert_eq!(reqwest::get(format!("{url}/series/sometimes/{n}")).await.unwrap().status(), 200);
    }
    let text = reqwest::get(format!("{url}/metrics")).await.unwrap().text().await.unwrap();
    let queries = |suffix: &str| {
        sample(&text, &format!("{}{suffix}", Budget::Queries.metric()), &[("route", "/series/sometimes/{n}")])
    };
    assert_eq!((queries("_count"), queries("_sum")), (Some(3.0), Some(2.0)), "{text}");
    let calls = Budget::HttpCalls.metric();
    assert!(!text.lines().any(|l| l.starts_with(calls) && l.contains("/series/sometimes/")), "{text}");
}

#[tokio::test]
async fn the_rules_zen_writes_fire_on_a_real_prometheus_for_a_route_over_its_budget() {
    let url = serve("/f").await;
    // The defaults' shape, with windows a test can wait for.
    let settings = zen_cli::RuleSettings {
        short: "10s".into(),
        long: "30s".into(),
        hold: "0s".into(),
        ..zen_cli::RuleSettings::default()
    };
    let rules = zen_cli::render_rules(&settings).unwrap();
    let Some(prometheus) = Prometheus::start_with(&url, Some(&rules)).await else { return };
    // Every request of `/f/over` runs 3 queries on a budget of 2; those of
    // `/f/articles/{id}` run 3 on a budget of 4.
    let load = tokio::spawn(async move {
        let client = reqwest::Client::new();
        loop {
            for path in ["/f/over?n=3", "/f/articles/7"] {
                assert_eq!(client.get(format!("{url}{path}")).send().await.unwrap().status(), 200);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    let firing = loop {
        let body: serde_json::Value = serde_json::from_str(
            &reqwest::get(format!("{}/api/v1/alerts", prometheus.url)).await.unwrap().text().await.unwrap(),
        )
        .unwrap();
        let alerts = body["data"]["alerts"].as_array().cloned().unwrap_or_default();
        // Other tests' routes share this process's recorder: this one's.
        if let Some(alert) = alerts.iter().find(|a| a["state"] == "firing" && a["labels"]["route"] == "/f/over") {
            break (alert.clone(), alerts);
        }
        assert!(Instant::now() < deadline, "no alert fired in 90 s: {body}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    load.abort();
    let (alert, alerts) = firing;
    let labels = &alert["labels"];
    assert_eq!(
        (&labels["alertname"], &labels["route"], &labels["method"], &labels["budget"], &labels["severity"]),
        (&"ZenBudgetExceeded".into(), &"/f/over".into(), &"GET".into(), &"max_queries".into(), &"page".into()),
        "{alert}"
    );
    assert_eq!(alert["annotations"]["summary"], "GET /f/over exceeds max_queries", "{alert}");
    // Every request of the route blew it: 100%.
    let description = alert["annotations"]["description"].as_str().unwrap();
    assert!(description.starts_with("100% of its handler scopes exceeded max_queries"), "{alert}");
    // The route within its budget never alerts.
    assert!(alerts.iter().all(|a| a["labels"]["route"] != "/f/articles/{id}"), "{alerts:?}");
}
