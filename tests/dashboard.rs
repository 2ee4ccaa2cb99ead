//! The dashboard against a real axum server on 127.0.0.1 after known
//! traffic on SQLite in memory: what its JSON and pages say, who may see
//! them, and that they stay bounded. `tests/dashboard_browser.rs` drives the
//! same pages in a real browser.

#[path = "common/dashboard_app.rs"]
mod app;
mod common;

use std::time::{Duration, Instant};

use app::{TOKEN, serve, traffic};
use axum::Router;
use serde_json::Value;
use zen_runtime::dashboard::{Authorize, Dashboard, Options};
use zen_runtime::layer::ZenLayer;

fn bearer() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    reqwest::Client::builder().default_headers(headers).build().unwrap()
}

async fn json(client: &reqwest::Client, url: String) -> Value {
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    serde_json::from_str(&response.text().await.unwrap()).unwrap()
}

fn route<'a>(overview: &'a Value, name: &str) -> &'a Value {
    overview["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no route {name} in {overview}"))
}

#[tokio::test]
async fn the_json_holds_each_routes_figures_against_its_limits() {
    let dashboard = Dashboard::new();
    let url = serve("/j", &dashboard).await;
    traffic(&url, "/j").await;
    let client = bearer();
    let overview = json(&client, format!("{url}/_zen/api/overview")).await;

    let articles = route(&overview, "GET /j/articles/{id}");
    assert_eq!(articles["kind"], "handler");
    assert_eq!(articles["scopes"], 20);
    assert_eq!(articles["outcomes"]["ok"], 20);
    assert_eq!(articles["figures"]["queries"]["p50"], 3.0);
    assert_eq!(articles["figures"]["queries"]["p99"], 3.0);
    assert_eq!(articles["figures"]["queries"]["max"], 3.0);
    assert_eq!(articles["figures"]["queries"]["limit"], 4);
    assert_eq!(articles["violation_rate"], 0.0);
    assert_eq!(articles["use_p99"], 0.75);
    assert!(articles["figures"]["elapsed_ms"]["p99"].as_f64().unwrap() > 0.0);

    let over = route(&overview, "GET /j/over");
    assert_eq!(over["scopes"], 10);
    assert_eq!(over["outcomes"]["exceeded"], 5);
    assert_eq!(over["violation_rate"], 0.5);
    assert_eq!(over["budgets"]["max_queries"]["exceeded"], 5);
    assert_eq!(over["budgets"]["max_queries"]["max_use"], 1.5);
    assert_eq!(over["figures"]["queries"]["p50"], 1.0);
    assert_eq!(over["figures"]["queries"]["p99"], 3.0);

    let id = articles["id"].as_u64().unwrap();
    let detail = json(&client, format!("{url}/_zen/api/routes/{id}")).await;
    let statements = detail["statements"].as_array().unwrap();
    assert_eq!(statements.len(), 1, "{detail}");
    assert_eq!(statements[0]["fingerprint"], "SELECT name FROM users WHERE id = ?");
    assert_eq!(statements[0]["count"], 60);
    assert_eq!(detail["series_10s"].as_array().unwrap().len(), 60);
    let seen: u64 = detail["series_10s"].as_array().unwrap().iter().filter_map(|s| s["scopes"].as_u64()).sum();
    assert_eq!(seen, 20, "every scope is in the last ten minutes");

    // The N+1 listing: its suspect, with the call site in this file.
    let listing = route(&overview, "GET /j/listing");
    let detail = json(&client, format!("{url}/_zen/api/routes/{}", listing["id"])).await;
    let suspects = detail["n_plus_one"].as_array().unwrap();
    assert_eq!(suspects.len(), 1, "{detail}");
    assert_eq!(suspects[0]["scopes"], 3);
    assert_eq!(suspects[0]["max_count"], 6);
    assert!(suspects[0]["call_site"].as_str().unwrap().contains("app::listing"), "{detail}");

    // The exceeded ones, in full, newest first.
    let over_detail = json(&client, format!("{url}/_zen/api/routes/{}", over["id"])).await;
    let recent = over_detail["recent"].as_array().unwrap();
    assert_eq!(recent.len(), 5, "{over_detail}");
    assert!(recent[0]["report"].as_str().unwrap().contains("max_queries = 2: used 3 queries"));
    assert_eq!(recent[0]["outcome"], "exceeded");
    assert!(overview["recent"].as_array().unwrap().iter().any(|r| r["route"] == over["id"]));
}

/// What a stranger sees of a response: its status, its headers (the date
/// and the timings' durations aside) and its body.
async fn seen(response: reqwest::Response) -> (u16, Vec<(String, String)>, String) {
    let status = response.status().as_u16();
    let mut headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .filter(|(name, _)| *name != "date")
        .map(|(name, value)| {
            let value = value.to_str().unwrap();
            let value = if name == "server-timing" {
                // `total;dur=0.1` and `total;dur=0.2` say the same.
                value.split("dur=").map(|p| p.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.')).collect()
            } else {
                value.to_owned()
            };
            (name.to_string(), value)
        })
        .collect();
    headers.sort();
    (status, headers, response.text().await.unwrap())
}

#[tokio::test]
async fn a_refused_request_is_the_apps_own_answer_to_an_unknown_route() {
    // `Server-Timing` for everyone, for nobody, and for whoever may see the
    // dashboard: (the layer, a stranger sees it, an operator sees it).
    let layers = [
        (ZenLayer::new().server_timing(true), true, true),
        (ZenLayer::new(), false, false),
        (ZenLayer::new().server_timing(Authorize::token(TOKEN).unwrap()), false, true),
    ];
    for (layer, stranger, operator) in layers {
        let dashboard = Dashboard::new();
        let url = app::serve_with("/a", &dashboard, layer.clone(), Authorize::token(TOKEN).unwrap()).await;
        let plain = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let unknown = seen(plain.get(format!("{url}/no/such/route")).send().await.unwrap()).await;
        assert_eq!(unknown.0, 404);
        assert_eq!(unknown.1.iter().any(|(name, _)| name == "server-timing"), stranger, "{layer:?}");
        let theirs = plain
            .get(format!("{url}/a/articles/1"))
            .header("authorization", format!("Bearer {TOKEN}"))
            .send()
            .await
            .unwrap();
        assert_eq!(theirs.status(), 200);
        assert_eq!(theirs.headers().contains_key("server-timing"), operator, "{layer:?}");
        // The token in an application's address (its logs, `Referer`) shows nothing more than none.
        let in_address = plain.get(format!("{url}/a/articles/1?token={TOKEN}")).send().await.unwrap();
        assert_eq!(in_address.headers().contains_key("server-timing"), stranger, "{layer:?}");
        for path in ["/_zen/", "/_zen", "/_zen/api/overview", "/_zen/routes/0", "/_zen/events", "/_zen/assets/app.js"] {
            for token in [None, Some("wrong-token-0123456789abcdef"), Some(&TOKEN[1..])] {
                let mut request = plain.get(format!("{url}{path}"));
                if let Some(token) = token {
                    request = request.header("authorization", format!("Bearer {token}"));
                }
                let refused = seen(request.send().await.unwrap()).await;
                assert_eq!(refused, unknown, "{path} with {token:?}, under {layer:?}");
            }
            let wrong = plain.get(format!("{url}{path}?token=wrong-token-0123456789abcdef")).send().await.unwrap();
            assert_eq!(seen(wrong).await, unknown, "{path} with a wrong token in the address");
        }
        // Let in, the dashboard answers at its path with or without a slash,
        // and the scheme of `Authorization` is read in any case.
        for (path, scheme) in [("/_zen", "Bearer"), ("/_zen/", "bearer"), ("/_zen/api/overview", "BEARER")] {
            let response = plain
                .get(format!("{url}{path}"))
                .header("authorization", format!("{scheme} {TOKEN}"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{path} with {scheme}");
        }
    }
}

#[tokio::test]
async fn the_cookie_is_secure_over_tls_or_when_asked() {
    let plain = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let cookie = |url: String, proxy: Option<&'static str>| {
        let plain = plain.clone();
        async move {
            let mut request = plain.get(format!("{url}/_zen?token={TOKEN}"));
            if let Some(proxy) = proxy {
                request = request.header(proxy.split_once(':').unwrap().0, proxy.split_once(':').unwrap().1);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 303);
            response.headers()["set-cookie"].to_str().unwrap().to_owned()
        }
    };
    let url = serve("/c", &Dashboard::new()).await;
    assert!(!cookie(url.clone(), None).await.contains("Secure"));
    assert!(cookie(url.clone(), Some("x-forwarded-proto:https")).await.ends_with("; Secure"));
    assert!(cookie(url.clone(), Some("forwarded:for=1.2.3.4;proto=https")).await.ends_with("; Secure"));
    let always = Authorize::token(TOKEN).unwrap().secure_cookie(true);
    let url = app::serve_with("/c", &Dashboard::new(), ZenLayer::new(), always).await;
    assert!(cookie(url, None).await.ends_with("; Secure"));
}

#[tokio::test]
async fn tokens_are_checked_and_a_token_in_the_address_becomes_a_cookie() {
    let dashboard = Dashboard::new();
    let url = serve("/t", &dashboard).await;
    let plain = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    assert!(Authorize::token("short").is_err());
    assert!(Authorize::token("0123456789abcdef<script>").is_err(), "only URL-safe characters");

    // The token once in the address: a cookie for the dashboard's path, and the address loses it.
    let response = plain.get(format!("{url}/_zen?sort=violations&token={TOKEN}")).send().await.unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/_zen?sort=violations");
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert_eq!(cookie, format!("zen_dashboard={TOKEN}; Path=/_zen; HttpOnly; SameSite=Strict"));
    let page = plain
        .get(format!("{url}/_zen?sort=violations"))
        .header("cookie", format!("zen_dashboard={TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'") && !csp.contains("unsafe"),
        "{csp}"
    );
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    assert_eq!(page.headers()["cache-control"], "no-store");
    assert!(page.text().await.unwrap().contains("<h1>Routes and jobs</h1>"));
    // Let in by its cookie, a link with another token in it changes no cookie.
    let page = plain
        .get(format!("{url}/_zen?token=junk;Domain=example.com"))
        .header("cookie", format!("zen_dashboard={TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers().get("set-cookie").is_none(), "only the expected token is ever set");

    // Or any check of the application's own.
    let own = Dashboard::new();
    let app = Router::new().nest(
        "/_zen",
        own.router(Authorize::with(|parts| parts.headers.get("x-internal").is_some_and(|v| v == "yes"))),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let own_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    assert_eq!(plain.get(format!("{own_url}/_zen")).send().await.unwrap().status(), 404);
    let ok = plain.get(format!("{own_url}/_zen")).header("x-internal", "yes").send().await.unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn every_text_on_the_pages_is_escaped() {
    let dashboard = Dashboard::new();
    let url = serve("/e", &dashboard).await;
    traffic(&url, "/e").await;
    let client = bearer();
    let overview = client.get(format!("{url}/_zen")).send().await.unwrap().text().await.unwrap();
    let name = "&lt;script&gt;window.zenInjected = 1&lt;/script&gt;";
    assert!(overview.contains(name), "{overview}");
    assert!(!overview.contains("<script>window"), "{overview}");
    // The only script is the dashboard's own, from its own origin.
    assert_eq!(overview.matches("<script").count(), 1);
    assert!(overview.contains("<script src=\"/_zen/assets/app.js\" defer></script>"));
    assert!(!overview.contains(" style="), "no inline style: the CSP forbids it");

    let overview_json = json(&client, format!("{url}/_zen/api/overview")).await;
    let hostile = route(&overview_json, app::HOSTILE);
    let page = client.get(format!("{url}/_zen/routes/{}", hostile["id"])).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(&format!("<h1 class=\"route-name\">{name}</h1>")), "{page}");
    // The fingerprint spaces the operators; its markup characters are text.
    let statement = "GET &lt; script &gt; alert(?) &lt;/ script &gt;";
    assert!(page.contains(&format!("<code>{statement}</code>")), "{page}");
    assert!(!page.contains("<script>window") && !page.contains("<script>alert"), "{page}");
    let title = page.split("<title>").nth(1).unwrap().split("</title>").next().unwrap();
    assert!(title.contains("&lt;script&gt;"), "{title}");
}

#[tokio::test]
async fn the_event_stream_announces_new_scopes() {
    let dashboard = Dashboard::new();
    let url = serve("/s", &dashboard).await;
    let client = bearer();
    let mut events = client.get(format!("{url}/_zen/events")).send().await.unwrap();
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    reqwest::get(format!("{url}/s/articles/1")).await.unwrap();
    // Other tests' scopes move the same count: wait for an update that
    // counts this request's scope, which the dashboard holds by now.
    let overview = json(&client, format!("{url}/_zen/api/overview")).await;
    assert_eq!(route(&overview, "GET /s/articles/{id}")["scopes"], 1);
    let ours = overview["scopes"].as_u64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = String::new();
    loop {
        let announced = seen
            .split("\n\n")
            .filter(|event| event.contains("event: update"))
            .filter_map(|event| event.lines().find_map(|l| l.strip_prefix("data: "))?.trim().parse::<u64>().ok())
            .max();
        if announced.is_some_and(|n| n >= ours) {
            break;
        }
        let chunk = tokio::time::timeout_at(deadline.into(), events.chunk()).await;
        let chunk = chunk.unwrap_or_else(|_| panic!("no update counting scope {ours} within 10 s: {seen:?}"));
        seen.push_str(&String::from_utf8_lossy(&chunk.unwrap().unwrap()));
    }
}

#[zen_runtime::zen(name = "kept apart", kind = "other")]
async fn kept_apart() {}

#[tokio::test]
async fn names_past_the_limit_are_grouped() {
    let dashboard = Dashboard::with_options(Options::default().max_names(5).recent(3).recent_per_name(1));
    let jobs = zen_runtime::jobs::Jobs::builder().start().unwrap();
    for i in 0..200 {
        jobs.spawn(format!("grouped job {i}"), || async {}).unwrap();
    }
    let shutdown = jobs.shutdown(Duration::from_secs(10)).await;
    assert!(shutdown.abandoned.is_empty());
    // Five job names of their own, then `(other)`; the limit is per kind:
    // a kind with room still keeps a new name apart (other tests' scopes,
    // seen by every dashboard, may take some of its five).
    let overview = || {
        let client = Router::new().nest("/_zen", dashboard.router::<()>(Authorize::token(TOKEN).unwrap()));
        common::dashboard_overview(client, TOKEN)
    };
    let named = |overview: &Value, kind: &str| {
        let routes = overview["routes"].as_array().unwrap();
        routes.iter().filter(|r| r["kind"] == kind && r["name"] != zen_runtime::dashboard::OTHER_NAMES).count()
    };
    let before = overview().await;
    assert_eq!(named(&before, "job"), 5, "{before}");
    let room = named(&before, "other") < 5;
    kept_apart().await;
    let after = overview().await;
    let kept = after["routes"].as_array().unwrap().iter().any(|r| r["name"] == "kept apart" && r["kind"] == "other");
    assert!(kept || !room, "a name of a kind with room is kept apart: {after}");
    let overview = after;
    let other = overview["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == zen_runtime::dashboard::OTHER_NAMES && r["kind"] == "job")
        .unwrap();
    let jobs_kept: u64 = overview["routes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "job")
        .map(|r| r["scopes"].as_u64().unwrap())
        .sum();
    assert_eq!(jobs_kept, 200, "every job counted, under its name or `(other)`");
    assert!(other["scopes"].as_u64().unwrap() >= 195, "{other}");
}
