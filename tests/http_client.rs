//! The outgoing HTTP client against real local HTTP peers: an axum server,
//! and a socket that accepts and never answers.

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::routing::get;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioExecutor;
use tower::ServiceExt;
use zen_runtime::deadline::{Deadline, DeadlineLayer};
use zen_runtime::http::{Client, Error};
use zen_runtime::instrument::CallTemplate;
use zen_runtime::report::Writes;
use zen_runtime::{Budget, BudgetExceeded, Kind, testing, zen};

/// A server with a fast, a failing and a slow route, counting every hit.
async fn server() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&hits);
    let app = Router::new()
        .route("/fast", get(|| async { "ok" }).post(|| async { "ok" }))
        // A write answered with a redirect (303, as after a form) to a page that is gone.
        .route("/moved", axum::routing::post(|| async { axum::response::Redirect::to("/missing") }))
        .route(
            "/fail",
            get(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "no") })
                .post(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "no") }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            })
            .post(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        // Headers at once, then five bytes 200 ms apart.
        .route(
            "/trickle",
            get(|| async {
                let bytes = futures::stream::unfold(0, |i| async move {
                    if i == 5 {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Some((Ok::<_, std::convert::Infallible>(axum::body::Bytes::from_static(b"x")), i + 1))
                });
                axum::body::Body::from_stream(bytes)
            }),
        )
        .layer(axum::middleware::from_fn(move |req, next: axum::middleware::Next| {
            counted.fetch_add(1, Ordering::SeqCst);
            async move { next.run(req).await }
        }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, hits)
}

fn client(timeout: Duration) -> Client {
    Client::builder().timeout(timeout).build().unwrap()
}

#[derive(Debug)]
enum AppError {
    Http(Error),
    Budget(#[allow(dead_code)] BudgetExceeded),
}

impl From<Error> for AppError {
    fn from(e: Error) -> Self {
        AppError::Http(e)
    }
}

impl From<BudgetExceeded> for AppError {
    fn from(e: BudgetExceeded) -> Self {
        AppError::Budget(e)
    }
}

fn http_error(result: Result<(), AppError>) -> Error {
    match result {
        Err(AppError::Http(e)) => e,
        other => panic!("expected the client's error, got {other:?}"),
    }
}

#[zen(kind = "handler")]
async fn three_calls(client: &Client, url: &str) -> Result<u16, AppError> {
    let mut statuses = 0;
    for path in ["/fast", "/fast", "/fail"] {
        statuses += client.get(format!("{url}{path}")).send().await?.status().as_u16();
    }
    Ok(statuses)
}

#[tokio::test]
async fn calls_are_counted_timed_and_grouped_by_host() {
    let (url, hits) = server().await;
    let (statuses, reports) = testing::collect(three_calls(&client(Duration::from_secs(5)), &url)).await;
    assert_eq!(statuses.unwrap(), 200 + 200 + 500);
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    let r = &reports[0];
    assert_eq!((r.figures.http_calls(), r.figures.failed_http_calls()), (3, 1), "{r}");
    assert!(r.figures.http_time() > Duration::ZERO);
    assert_eq!(r.http_hosts.len(), 1);
    assert_eq!((r.http_hosts[0].host.as_str(), r.http_hosts[0].calls), ("127.0.0.1", 3));
    assert_eq!(r.kind, Kind::Handler);
    assert!(r.http_in_handler(), "a handler called out itself: flagged");
}

#[tokio::test]
async fn a_peer_that_never_answers_is_cut_by_the_client_timeout() {
    // Accepted by the kernel, never read or answered.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", silent.local_addr().unwrap());
    let start = Instant::now();
    let (result, report) = testing::measure(client(Duration::from_millis(200)).get(url).send()).await;
    let Err(Error::Request(e)) = result else { panic!("expected a timeout") };
    assert!(e.is_timeout(), "{e}");
    assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
    assert_eq!((report.figures.http_calls(), report.figures.failed_http_calls()), (1, 1));
}

#[zen(max_http_calls = 1, mode = "enforce")]
async fn two_calls(client: &Client, url: &str) -> Result<(), AppError> {
    client.get(format!("{url}/fast")).send().await?;
    client.get(format!("{url}/fast")).send().await?;
    Ok(())
}

#[tokio::test]
async fn enforce_refuses_the_call_past_max_http_calls_before_it_is_made() {
    let (url, hits) = server().await;
    let error = http_error(two_calls(&client(Duration::from_secs(5)), &url).await);
    let exceeded = std::error::Error::source(&error)
        .and_then(|s| s.downcast_ref::<BudgetExceeded>())
        .expect("source() is BudgetExceeded");
    assert_eq!(exceeded.budget(), Budget::HttpCalls);
    assert_eq!(hits.load(Ordering::SeqCst), 1, "the second call never left");
}

#[zen(max_http_ms = 150, timeout_ms = 3000, mode = "enforce")]
async fn slow_call(client: &Client, url: &str) -> Result<(), AppError> {
    client.get(format!("{url}/slow")).send().await?;
    Ok(())
}

#[tokio::test]
async fn enforce_gives_a_call_at_most_the_budget_left() {
    let (url, _) = server().await;
    let start = Instant::now();
    let error = http_error(slow_call(&client(Duration::from_secs(10)), &url).await);
    let Error::Budget(exceeded) = error else { panic!("expected the budget to cut it: {error}") };
    assert_eq!(exceeded.budget(), Budget::HttpTime);
    assert!(start.elapsed() < Duration::from_secs(2), "cut at ~150 ms: {:?}", start.elapsed());
}

fn middleware_client(timeout: Duration) -> reqwest_middleware::ClientWithMiddleware {
    // A plain reqwest client with no timeout of its own: the middleware's holds.
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(zen_runtime::http::Middleware::new(timeout))
        .build()
}

/// The budget error inside what a middleware call returned.
fn budget_of<'a>(error: &'a (dyn std::error::Error + Send + Sync + 'static)) -> Option<&'a BudgetExceeded> {
    match error.downcast_ref::<reqwest_middleware::Error>()? {
        reqwest_middleware::Error::Middleware(e) => e.downcast_ref::<BudgetExceeded>(),
        reqwest_middleware::Error::Reqwest(_) => None,
    }
}

#[tokio::test]
async fn the_middleware_counts_calls_per_host_like_the_client() {
    let (url, hits) = server().await;
    let client = middleware_client(Duration::from_secs(5));
    let (statuses, report) = testing::measure(async {
        let mut statuses = Vec::new();
        for path in ["/fast", "/fail"] {
            statuses.push(client.get(format!("{url}{path}")).send().await.unwrap().status().as_u16());
        }
        statuses
    })
    .await;
    assert_eq!(statuses, [200, 500]);
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    assert_eq!((report.figures.http_calls(), report.figures.failed_http_calls()), (2, 1));
    assert_eq!((report.http_hosts[0].host.as_str(), report.http_hosts[0].calls), ("127.0.0.1", 2));
}

#[tokio::test]
async fn the_middleware_cuts_a_silent_peer_at_its_timeout() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", silent.local_addr().unwrap());
    let start = Instant::now();
    let (result, report) = testing::measure(middleware_client(Duration::from_millis(200)).get(url).send()).await;
    let Err(reqwest_middleware::Error::Reqwest(e)) = result else { panic!("expected a timeout: {result:?}") };
    assert!(e.is_timeout(), "{e}");
    assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
    assert_eq!((report.figures.http_calls(), report.figures.failed_http_calls()), (1, 1));
}

#[zen(max_http_calls = 1, mode = "enforce")]
async fn two_middleware_calls(
    client: &reqwest_middleware::ClientWithMiddleware,
    url: &str,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    client.get(format!("{url}/fast")).send().await?;
    client.get(format!("{url}/fast")).send().await?;
    Ok(())
}

#[tokio::test]
async fn the_middleware_refuses_a_call_past_the_budget() {
    let (url, hits) = server().await;
    let error = two_middleware_calls(&middleware_client(Duration::from_secs(5)), &url).await.unwrap_err();
    assert_eq!(budget_of(&*error).expect("a budget error").budget(), Budget::HttpCalls);
    assert_eq!(hits.load(Ordering::SeqCst), 1, "the second call never left");
}

#[zen(max_http_ms = 150, timeout_ms = 3000, mode = "enforce")]
async fn slow_middleware_call(
    client: &reqwest_middleware::ClientWithMiddleware,
    url: &str,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    client.get(format!("{url}/slow")).send().await?;
    Ok(())
}

#[tokio::test]
async fn the_middleware_gives_a_call_at_most_the_budget_left() {
    let (url, _) = server().await;
    let start = Instant::now();
    let error = slow_middleware_call(&middleware_client(Duration::from_secs(10)), &url).await.unwrap_err();
    assert_eq!(budget_of(&*error).expect("the budget cut it").budget(), Budget::HttpTime);
    assert!(start.elapsed() < Duration::from_secs(2), "cut at ~150 ms: {:?}", start.elapsed());
}

#[tokio::test]
async fn a_call_dropped_before_it_ends_counts_as_failed() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", silent.local_addr().unwrap());
    let client = client(Duration::from_secs(10));
    let middleware = middleware_client(Duration::from_secs(10));
    let (_, report) = testing::measure(async {
        // Given up on by the caller (a `select!`, an enclosing timeout), not by the client.
        let _ = tokio::time::timeout(Duration::from_millis(100), client.get(url.as_str()).send()).await;
        let _ = tokio::time::timeout(Duration::from_millis(100), middleware.get(url.as_str()).send()).await;
    })
    .await;
    assert_eq!((report.figures.http_calls(), report.figures.failed_http_calls()), (2, 2));
}

#[tokio::test]
async fn a_call_lasts_until_its_body_is_read() {
    let (url, _) = server().await;
    let plain = client(Duration::from_secs(10));
    let middleware = middleware_client(Duration::from_secs(10));
    let (bodies, report) = testing::measure(async {
        let a = plain.get(format!("{url}/trickle")).send().await.unwrap().bytes().await.unwrap();
        let b = middleware.get(format!("{url}/trickle")).send().await.unwrap().bytes().await.unwrap();
        (a, b)
    })
    .await;
    assert_eq!((&bodies.0[..], &bodies.1[..]), (&b"xxxxx"[..], &b"xxxxx"[..]));
    assert_eq!((report.figures.http_calls(), report.figures.failed_http_calls()), (2, 0));
    // Each body took about a second to arrive, after headers that came at once.
    assert!(report.figures.http_time() >= Duration::from_millis(1800), "{:?}", report.figures.http_time());
    assert!(report.http_hosts[0].time >= Duration::from_millis(1800), "{:?}", report.http_hosts);
}

#[zen(max_http_ms = 300, timeout_ms = 5000, mode = "enforce")]
async fn trickled(client: &Client, url: &str) -> Result<(), AppError> {
    let response = client.get(format!("{url}/trickle")).send().await?;
    let error = response.bytes().await.expect_err("the read is cut at the budget");
    let exceeded = zen_runtime::http::as_budget_exceeded(&error).expect("the read's error says why").clone();
    Err(AppError::Budget(exceeded))
}

#[zen(max_http_ms = 300, timeout_ms = 5000, mode = "enforce")]
async fn trickled_through_middleware(
    client: &reqwest_middleware::ClientWithMiddleware,
    url: &str,
) -> Result<(), AppError> {
    let response = client.get(format!("{url}/trickle")).send().await.unwrap();
    let error = response.bytes().await.expect_err("the read is cut at the budget");
    let exceeded = zen_runtime::http::as_budget_exceeded(&error).expect("the read's error says why").clone();
    Err(AppError::Budget(exceeded))
}

#[tokio::test]
async fn enforce_cuts_a_body_read_at_the_budget_and_records_it() {
    let (url, _) = server().await;
    let plain = client(Duration::from_secs(10));
    let middleware = middleware_client(Duration::from_secs(10));
    for through_middleware in [false, true] {
        let start = Instant::now();
        let (result, reports) = testing::collect(async {
            if through_middleware {
                trickled_through_middleware(&middleware, &url).await
            } else {
                trickled(&plain, &url).await
            }
        })
        .await;
        let Err(AppError::Budget(exceeded)) = result else { panic!("expected the budget's error: {result:?}") };
        assert_eq!(exceeded.budget(), Budget::HttpTime);
        assert!(start.elapsed() < Duration::from_millis(900), "cut at ~300 ms: {:?}", start.elapsed());
        let r = &reports[0];
        let v = r.violation(Budget::HttpTime).expect("the cut is a violation in the report");
        assert_eq!((v.limit, v.used), (300, exceeded.used()), "the error and the report agree: {r}");
        assert_eq!((r.figures.http_calls(), r.figures.failed_http_calls()), (1, 1));
    }
}

/// Every call but a `GET`, `HEAD`, `OPTIONS` or `TRACE` may write: its
/// answer says what it did, and a call without one may have.
#[tokio::test]
async fn a_call_says_what_its_write_did() {
    let (url, _) = server().await;
    let client = client(Duration::from_millis(300));
    for (method, path, writes) in [
        (reqwest::Method::GET, "/fast", Writes::None),
        (reqwest::Method::POST, "/fast", Writes::Committed),
        // Refused by the peer (no such route): nothing done.
        (reqwest::Method::POST, "/missing", Writes::None),
        // A server error, and a call the client's own timeout gave up on.
        (reqwest::Method::POST, "/fail", Writes::Unknown),
        (reqwest::Method::POST, "/slow", Writes::Unknown),
        // The 404 is the redirect's, not the write's, which was answered.
        (reqwest::Method::POST, "/moved", Writes::Unknown),
        (reqwest::Method::GET, "/slow", Writes::None),
    ] {
        let ((), report) = testing::measure(async {
            if let Ok(response) = client.request(method.clone(), format!("{url}{path}")).send().await {
                let _ = response.bytes().await;
            }
        })
        .await;
        assert_eq!(report.figures.writes(), writes, "{method} {path}");
    }
}

#[tokio::test]
async fn a_call_is_named_by_its_template_never_by_a_value_of_its_path() {
    let app = Router::new().route("/users/{name}", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = client(Duration::from_secs(5));
    let middleware = middleware_client(Duration::from_secs(5));
    let layered = tower::ServiceBuilder::new()
        .layer(DeadlineLayer::new(Deadline::header("x-deadline")))
        .service(hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());
    let alice = format!("{url}/users/alice");
    let asking = common::Timelines::asked();
    let (result, report) = testing::measure(async {
        client.get(format!("{url}/users/42?token=s3cret")).send().await?;
        client.get(&alice).send().await?;
        client.get(&alice).template("/users/{name}").send().await?;
        middleware.get(&alice).send().await.unwrap();
        middleware.get(&alice).with_extension(CallTemplate("/users/{name}")).send().await.unwrap();
        for template in [None, Some(CallTemplate("/users/{name}"))] {
            let mut request = axum::http::Request::get(&alice).body(Empty::<Bytes>::new()).unwrap();
            if let Some(template) = template {
                request.extensions_mut().insert(template);
            }
            let response = layered.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), 200);
            response.into_body().collect().await.unwrap();
        }
        Ok::<_, Error>(())
    })
    .await;
    drop(asking);
    result.unwrap();
    let calls: Vec<&str> = report.timeline.as_ref().unwrap().entries().iter().map(|e| &*e.subject).collect();
    // A value made of digits (and the query) never shows; a lowercase word
    // stays, unless the caller names the template: zen's client, the
    // reqwest middleware and `DeadlineLayer` alike.
    let (digits, word, template) = ("GET 127.0.0.1/users/{}", "GET 127.0.0.1/users/alice", "GET 127.0.0.1/users/{}");
    assert_eq!(calls, [digits, word, template, word, template, word, template]);
    assert!(!report.to_json().contains("s3cret"));
}
