//! The dashboard in a real browser: Debian's headless Chromium driven
//! through ChromeDriver (WebDriver) after known traffic against a real
//! server. Screenshots go to `target/zen-dashboard/` for a person to look
//! at. Skips, saying why, when `chromium` or `chromedriver` is missing,
//! unless `ZEN_TEST_REQUIRE_SERVICES=1` (`.ci/run` installs both).

#[path = "common/dashboard_app.rs"]
mod app;
mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use app::{HOSTILE, TOKEN, serve, traffic};
use fantoccini::{Client, ClientBuilder, Locator};
use zen_runtime::dashboard::Dashboard;

/// ChromeDriver on a free port, stopped on drop.
struct Driver(Child, std::path::PathBuf);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

/// A headless Chromium session, if the browser and its driver are installed.
async fn browser() -> Option<(Driver, Client)> {
    let chromium = std::env::var("ZEN_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let chromedriver = std::env::var("ZEN_TEST_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
    if !std::path::Path::new(&chromium).exists() {
        return common::unavailable_binary("Chromium", &chromium);
    }
    if Command::new(&chromedriver).arg("--version").output().is_err() {
        return common::unavailable_binary("ChromeDriver", &chromedriver);
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let profile = std::env::temp_dir().join(format!("zen-chromium-{}-{port}", std::process::id()));
    let child = Command::new(&chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let driver = Driver(child, profile.clone());
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("{url}/status")).await.is_err() {
        assert!(Instant::now() < deadline, "ChromeDriver did not answer in 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let capabilities = serde_json::json!({
        "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1500,1000", format!("--user-data-dir={}", profile.display())],
        }
    });
    let serde_json::Value::Object(capabilities) = capabilities else { unreachable!() };
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&url)
        .await
        .expect("a Chromium session");
    Some((driver, client))
}

/// `target/zen-dashboard/<name>.png`.
async fn screenshot(client: &Client, name: &str) {
    // target/debug/deps/<test> -> target
    let target = std::env::current_exe().unwrap().ancestors().nth(3).unwrap().to_path_buf();
    let dir = target.join("zen-dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), client.screenshot().await.unwrap()).unwrap();
}

/// The overview's row of a route.
fn row(name: &str) -> String {
    format!("//table[@class='overview']/tbody/tr[td[@class='name']/a[text()=\"{name}\"]]")
}

async fn text(client: &Client, xpath: &str) -> String {
    client.find(Locator::XPath(xpath)).await.unwrap_or_else(|e| panic!("{xpath}: {e}")).text().await.unwrap()
}

#[tokio::test]
async fn the_dashboard_shows_each_routes_figures_in_a_real_browser() {
    let dashboard = Dashboard::new();
    let url = serve("/b", &dashboard).await;
    traffic(&url, "/b").await;
    let Some((_driver, client)) = browser().await else { return };

    // Without the token: the plain 404 of an unknown route, nothing else.
    let refused = reqwest::get(format!("{url}/_zen")).await.unwrap();
    assert_eq!(refused.status(), 404);
    client.goto(&format!("{url}/_zen")).await.unwrap();
    assert!(client.find(Locator::Css("main")).await.is_err(), "no page without the token");
    assert!(!client.source().await.unwrap().contains("Routes and jobs"));

    // Once with it: the address loses it, a cookie keeps it.
    client.goto(&format!("{url}/_zen?token={TOKEN}")).await.unwrap();
    assert_eq!(client.current_url().await.unwrap().as_str(), format!("{url}/_zen"));
    assert_eq!(text(&client, "//h1").await, "Routes and jobs");

    // The figures of a route: its query p99, its violations.
    let articles = row("GET /b/articles/{id}");
    assert_eq!(text(&client, &format!("{articles}/td[@class='queries']/b[@class='p99']")).await, "3");
    assert_eq!(text(&client, &format!("{articles}/td[@class='scopes']")).await, "20");
    let over = row("GET /b/over");
    assert_eq!(text(&client, &format!("{over}/td[@class='violations']")).await, "50% (5)");
    assert_eq!(text(&client, &format!("{over}/td[@class='outcomes']")).await, "5 ok 5 exceeded");

    // Markup in a name is text, and nothing injected ran.
    assert_eq!(text(&client, &format!("{}/td[@class='name']", row(HOSTILE))).await, HOSTILE);
    let injected = client.execute("return window.zenInjected === undefined", vec![]).await.unwrap();
    assert_eq!(injected, serde_json::json!(true));
    screenshot(&client, "overview").await;

    // Sorted by violation rate: the rates never rise down the table, and
    // the route that blows its budget comes before those that do not.
    // (Other suites of this binary add routes of their own.)
    client.find(Locator::LinkText("violation rate")).await.unwrap().click().await.unwrap();
    assert!(client.current_url().await.unwrap().as_str().ends_with("/_zen?sort=violations"));
    let mut rows = Vec::new();
    for tr in client.find_all(Locator::XPath("//table[@class='overview']/tbody/tr")).await.unwrap() {
        let name = tr.find(Locator::XPath("td[@class='name']")).await.unwrap().text().await.unwrap();
        let rate = tr.find(Locator::XPath("td[@class='violations']")).await.unwrap().text().await.unwrap();
        let percent: f64 = rate.split('%').next().unwrap().trim().parse().unwrap_or(0.0);
        rows.push((name, percent));
    }
    assert!(rows.windows(2).all(|w| w[0].1 >= w[1].1), "{rows:?}");
    let at = |name: &str| rows.iter().position(|(n, _)| n == name).unwrap_or_else(|| panic!("{name}: {rows:?}"));
    assert!(at("GET /b/over") < at("GET /b/articles/{id}"), "{rows:?}");
    assert_eq!(rows[at("GET /b/over")].1, 50.0);

    // The route page opens from the overview.
    client.find(Locator::LinkText("GET /b/articles/{id}")).await.unwrap().click().await.unwrap();
    assert!(client.current_url().await.unwrap().path().starts_with("/_zen/routes/"));
    assert_eq!(text(&client, "//h1").await, "GET /b/articles/{id}");
    assert_eq!(text(&client, "//table[@class='figures']/tbody/tr[@class='queries']/td[@class='p99']").await, "3");
    assert_eq!(
        text(&client, "//table[@class='statements']/tbody/tr[1]/td[1]").await,
        "SELECT name FROM users WHERE id = ?"
    );
    screenshot(&client, "route").await;

    // The N+1 listing: its suspect and where it comes from.
    client.goto(&format!("{url}/_zen")).await.unwrap();
    client.find(Locator::LinkText("GET /b/listing")).await.unwrap().click().await.unwrap();
    let suspect = text(&client, "//table[@class='suspects']/tbody/tr[1]").await;
    assert!(suspect.contains("SELECT name FROM users WHERE id = ?") && suspect.contains("app::listing"), "{suspect}");

    // A statement with markup renders as text too.
    client.goto(&format!("{url}/_zen")).await.unwrap();
    client.find(Locator::LinkText(HOSTILE)).await.unwrap().click().await.unwrap();
    assert_eq!(text(&client, "//h1").await, HOSTILE);
    assert_eq!(
        text(&client, "//table[@class='statements']/tbody/tr[1]/td[1]").await,
        "GET < script > alert(?) </ script >"
    );
    let injected = client.execute("return window.zenInjected === undefined", vec![]).await.unwrap();
    assert_eq!(injected, serde_json::json!(true));

    // Live: new traffic shows without reloading the page.
    client.goto(&format!("{url}/_zen")).await.unwrap();
    client.execute("window.zenSamePage = true", vec![]).await.unwrap();
    for i in 0..5 {
        reqwest::get(format!("{url}/b/articles/{i}")).await.unwrap();
    }
    let cell = format!("{articles}/td[@class='scopes']");
    let deadline = Instant::now() + Duration::from_secs(20);
    while text(&client, &cell).await != "25" {
        assert!(Instant::now() < deadline, "the page did not refresh itself in 20 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let same = client.execute("return window.zenSamePage === true", vec![]).await.unwrap();
    assert_eq!(same, serde_json::json!(true), "refreshed in place, not reloaded");
    screenshot(&client, "overview-live").await;
    client.close().await.unwrap();
}

#[tokio::test]
async fn the_waterfall_of_the_slowest_request_shows_in_a_real_browser() {
    let dashboard = Dashboard::with_options(zen_runtime::dashboard::Options::default().timelines(2));
    let Some((url, route)) = super::timeline::ordered(&dashboard, "/w").await else { return };
    let Some((_driver, client)) = browser().await else { return };
    client.goto(&format!("{url}/_zen?token={}", super::timeline::TOKEN)).await.unwrap();

    // From the overview to the route, whose page draws its worst request.
    client.find(Locator::LinkText("GET /w/orders/{id}")).await.unwrap().click().await.unwrap();
    assert_eq!(text(&client, "//h1").await, "GET /w/orders/{id}");
    assert_eq!(client.find_all(Locator::Css("svg.waterfall rect.bar")).await.unwrap().len(), 13);
    let slowest = route["timelines"][0]["id"].as_u64().unwrap();
    let link = client.find(Locator::XPath("//ul[@class='timelines']/li[1]/a")).await.unwrap();
    assert!(link.attr("href").await.unwrap().unwrap().ends_with(&format!("/requests/{slowest}")));

    // Its own page: a bar per operation, laid out in time, each titled with
    // its statement; the budget's line; the findings.
    link.click().await.unwrap();
    let bars = client
        .execute(
            "return [...document.querySelectorAll('svg.waterfall rect.bar')].map(r => { \
               const b = r.getBBox(); \
               return [b.x, b.width, r.getAttribute('class'), r.querySelector('title').textContent]; })",
            vec![],
        )
        .await
        .unwrap();
    let bars = bars.as_array().unwrap();
    assert_eq!(bars.len(), 13);
    let x: Vec<f64> = bars.iter().map(|b| b[0].as_f64().unwrap()).collect();
    assert!(x.windows(2).all(|w| w[0] <= w[1]), "bars in order of start: {x:?}");
    assert!(bars.iter().all(|b| b[1].as_f64().unwrap() >= 1.0), "every bar visible: {bars:?}");
    // The sleep of 30 ms is the widest bar by far.
    let widths: Vec<f64> = bars.iter().map(|b| b[1].as_f64().unwrap()).collect();
    let widest = widths.iter().copied().fold(0.0, f64::max);
    assert_eq!(widths[8], widest, "{bars:?}");
    assert!(bars[8][3].as_str().unwrap().starts_with("SELECT pg_sleep(?::float8): "), "{bars:?}");
    assert_eq!(bars.iter().filter(|b| b[2] == "bar b-http o-ok").count(), 4);
    assert_eq!(bars.iter().filter(|b| b[2] == "bar b-postgresql o-ok").count(), 9);
    // The budget's line (80 ms) is past the end of the slowest bar.
    let line = client.find(Locator::Css("svg.waterfall line.budget")).await.unwrap();
    let sleep_ends = bars[8][0].as_f64().unwrap() + widest;
    assert!(line.attr("x1").await.unwrap().unwrap().parse::<f64>().unwrap() > sleep_ends, "{bars:?}");
    let duplicate = text(&client, "//table[@class='findings']/tbody/tr[@class='duplicate']").await;
    assert!(
        duplicate.contains("SELECT name FROM zen_timeline_items") && duplicate.contains("timeline.rs"),
        "{duplicate}"
    );
    let repeated = text(&client, "//table[@class='findings']/tbody/tr[@class='repeated-call']").await;
    assert!(repeated.contains("GET 127.0.0.1/items/{}") && repeated.contains('4'), "{repeated}");
    let source = client.source().await.unwrap();
    assert!(!source.contains("owner-secret-5521") && !source.contains("/items/1"), "a value reached the page");
    screenshot(&client, "timeline").await;
    client.close().await.unwrap();
}
