//! Budgets across services: a chain of three real local services (axum →
//! axum → tonic) where the front's deadline reaches the last hop, headers
//! that ask for more or say nothing, gRPC statuses through a real tonic
//! client, and a database query capped by the caller's deadline.

mod common;

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use zen_runtime::deadline::{Deadline, DeadlineLayer};
use zen_runtime::layer::ZenLayer;
use zen_runtime::{Limits, Mode, Outcome};

/// The message of the test service: how long to work, and how many
/// queries to run.
#[derive(Clone, PartialEq, prost::Message)]
struct Work {
    #[prost(uint64, tag = "1")]
    sleep_ms: u64,
    #[prost(uint32, tag = "2")]
    queries: u32,
}

/// Its answer: how long it worked (and, streamed, a page of bytes).
#[derive(Clone, PartialEq, prost::Message)]
struct Done {
    #[prost(uint64, tag = "1")]
    worked_ms: u64,
    #[prost(bytes = "vec", tag = "2")]
    page: Vec<u8>,
}

const WORK: &str = "/zen.test.Last/Work";
/// `queries` pages of 300 bytes, streamed.
const PAGES: &str = "/zen.test.Last/Pages";
/// The scope of a call of it.
const WORK_SCOPE: &str = "POST /zen.test.Last/Work";

/// The last hop, a gRPC service written by hand (what tonic's code
/// generator writes, for one unary method): sleeps, then runs queries.
#[derive(Clone)]
struct Last {
    pool: zen_runtime::db::SqlitePool,
}

impl tonic::server::NamedService for Last {
    const NAME: &'static str = "zen.test.Last";
}

impl tonic::server::UnaryService<Work> for Last {
    type Response = Done;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<tonic::Response<Done>, tonic::Status>> + Send>>;

    fn call(&mut self, request: tonic::Request<Work>) -> Self::Future {
        Box::pin(do_work(self.pool.clone(), request.into_inner()))
    }
}

/// The method's handler: under the layer, its `#[zen]` tightens the
/// call's budget, as a handler's does under axum.
#[zen_runtime::zen(max_queries = 1)]
async fn do_work(pool: zen_runtime::db::SqlitePool, work: Work) -> Result<tonic::Response<Done>, tonic::Status> {
    let start = Instant::now();
    tokio::time::sleep(Duration::from_millis(work.sleep_ms)).await;
    for _ in 0..work.queries {
        sqlx::query("SELECT 1").execute(&pool).await.map_err(|e| tonic::Status::internal(e.to_string()))?;
    }
    let worked_ms = u64::try_from(start.elapsed().as_millis()).unwrap();
    Ok(tonic::Response::new(Done { worked_ms, page: Vec::new() }))
}

type Pages = std::pin::Pin<Box<dyn futures::Stream<Item = Result<Done, tonic::Status>> + Send>>;

impl tonic::server::ServerStreamingService<Work> for Last {
    type Response = Done;
    type ResponseStream = Pages;
    type Future = std::future::Ready<Result<tonic::Response<Pages>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<Work>) -> Self::Future {
        let pages = request.into_inner().queries;
        // One page at a time, as a cursor's are: each is a frame of its own.
        let stream = futures::stream::unfold(0, move |sent| async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            (sent < pages).then(|| (Ok(Done { worked_ms: 0, page: vec![7; 300] }), sent + 1))
        });
        std::future::ready(Ok(tonic::Response::new(Box::pin(stream) as Pages)))
    }
}

impl tower::Service<axum::http::Request<tonic::body::Body>> for Last {
    type Response = axum::http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: axum::http::Request<tonic::body::Body>) -> Self::Future {
        let service = self.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::<Done, Work>::default());
            match request.uri().path() {
                WORK => Ok(grpc.unary(service, request).await),
                PAGES => Ok(grpc.server_streaming(service, request).await),
                _ => Ok(tonic::Status::unimplemented("no such method").into_http()),
            }
        })
    }
}

/// Serves the last hop under `layer`; its address.
async fn serve_last(layer: ZenLayer) -> String {
    let pool = common::sqlite_pool_at(&common::sqlite_url(), 2).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let incoming = tokio_stream_of(listener);
    tokio::spawn(
        tonic::transport::Server::builder().layer(layer).add_service(Last { pool }).serve_with_incoming(incoming),
    );
    address
}

/// The listener's connections, as tonic takes them.
fn tokio_stream_of(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| stream);
        Some((accepted, listener))
    })
}

/// A tonic client of the last hop through `DeadlineLayer`.
type LastClient = tonic::client::Grpc<zen_runtime::deadline::DeadlineService<tonic::transport::Channel>>;

async fn last_client(address: &str) -> LastClient {
    let channel = tonic::transport::Endpoint::from_shared(address.to_owned()).unwrap().connect().await.unwrap();
    let deadline = Deadline::grpc().margin(Duration::from_millis(20));
    let channel = tower::ServiceBuilder::new().layer(DeadlineLayer::new(deadline).host("last")).service(channel);
    tonic::client::Grpc::new(channel)
}

async fn work(client: &mut LastClient, request: tonic::Request<Work>) -> Result<Done, tonic::Status> {
    client.ready().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let codec = tonic_prost::ProstCodec::<Work, Done>::default();
    let path = axum::http::uri::PathAndQuery::from_static(WORK);
    client.unary(request, path, codec).await.map(tonic::Response::into_inner)
}

/// The middle hop's handler: calls the last hop, and says how it went.
async fn middle(State(last): State<String>) -> (axum::http::StatusCode, String) {
    let mut client = last_client(&last).await;
    match work(&mut client, tonic::Request::new(Work { sleep_ms: 2_000, queries: 0 })).await {
        Ok(done) => (axum::http::StatusCode::OK, format!("worked {} ms", done.worked_ms)),
        Err(status) => (axum::http::StatusCode::GATEWAY_TIMEOUT, format!("{:?}: {}", status.code(), status.message())),
    }
}

/// The front's handler: calls the middle hop with the time it has left.
async fn front(State(middle): State<String>) -> (axum::http::StatusCode, String) {
    let client = zen_runtime::http::Client::builder()
        .timeout(Duration::from_secs(10))
        .deadline(Deadline::header("x-request-timeout-ms").margin(Duration::from_millis(20)))
        .build()
        .unwrap();
    match client.get(format!("{middle}/middle")).send().await {
        Ok(response) => {
            let status = response.status();
            (status, response.text().await.unwrap_or_default())
        }
        Err(e) => (axum::http::StatusCode::BAD_GATEWAY, e.to_string()),
    }
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

fn enforce(timeout_ms: u64) -> ZenLayer {
    ZenLayer::new()
        .mode(Mode::Enforce)
        .limits(Limits::NONE.timeout_ms(timeout_ms))
        .deadline(Deadline::header("x-request-timeout-ms"))
}

/// Waits up to 10 s for a report named `name` that `test` accepts (tests
/// of this file run at once, and two serve the same gRPC method).
async fn report_where(name: &str, test: impl Fn(&zen_runtime::Report) -> bool) -> zen_runtime::Report {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(r) = common::reports_named(name).into_iter().find(|r| test(r)) {
            return r;
        }
        assert!(Instant::now() < deadline, "no such report named `{name}`");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The front's 300 ms reach the last hop as at most 300 ms less what was
/// spent on the way (and the margins), and the last hop cuts in time with
/// `DEADLINE_EXCEEDED`; each hop's report says what it received.
#[tokio::test]
async fn a_deadline_travels_through_three_services_and_the_last_cuts_in_time() {
    common::collect_reports();
    let last = serve_last(enforce(5_000)).await;
    let middle_url =
        serve(Router::new().route("/middle", get(middle)).layer(enforce(2_000)).with_state(last.clone())).await;
    let front_url =
        serve(Router::new().route("/front", get(front)).layer(enforce(300)).with_state(middle_url.clone())).await;

    let start = Instant::now();
    let response = reqwest::get(format!("{front_url}/front")).await.unwrap();
    let took = start.elapsed();
    let status = response.status();
    let text = response.text().await.unwrap();
    // The last hop answers DEADLINE_EXCEEDED as its deadline passes; tonic's
    // channel gives up at the same moment (it honours the `grpc-timeout`
    // it sends), and whichever is first is what the middle hop sees.
    // (On a machine so loaded that the front's own deadline passes first,
    // the front answers 503 itself: the chain still stopped in time.)
    let relayed =
        status == 504 && (text.starts_with("DeadlineExceeded: ") || text.starts_with("Cancelled: Timeout expired"));
    assert!(relayed || status == 503, "the middle hop answered with the last one's status: {status} {text}");
    assert!(took < Duration::from_millis(600), "answered about the front's deadline at the latest: {took:?}");

    let front = common::report_named("GET /front").await;
    let middle = common::report_named("GET /middle").await;
    let last = report_where(WORK_SCOPE, |r| r.caller_time_left.is_some_and(|l| l < Duration::from_millis(300))).await;
    assert_eq!(front.caller_time_left, None, "the front's caller said nothing");
    let to_middle = middle.caller_time_left.expect("the middle hop received the time left");
    let to_last = last.caller_time_left.expect("the last hop received grpc-timeout");
    assert!(to_middle <= Duration::from_millis(280) && to_middle > Duration::from_millis(200), "{to_middle:?}");
    assert!(to_last <= to_middle - Duration::from_millis(20), "less the margin and what the middle spent: {to_last:?}");
    assert_eq!(middle.limits.get(zen_runtime::Budget::Timeout), Some(u64::try_from(to_middle.as_millis()).unwrap()));
    assert_eq!(last.limits.get(zen_runtime::Budget::Timeout), Some(u64::try_from(to_last.as_millis()).unwrap()));
    // Stopped at its deadline: cut by its own timer, or cancelled by the
    // middle's tonic channel, which gives up at the same deadline (counted
    // from a moment earlier, by the request's transit) and resets the call.
    assert!(matches!(last.outcome, Outcome::Exceeded | Outcome::Cancelled), "{:?}", last.outcome);
    let last_took = last.figures.elapsed();
    let (earliest, latest) = (to_last - Duration::from_millis(10), to_last + Duration::from_millis(150));
    assert!(last_took >= earliest && last_took < latest, "{last_took:?} for {to_last:?}");
    assert_eq!(middle.figures.http_calls(), 1);
    assert_eq!(middle.http_hosts.iter().map(|h| (h.host.as_str(), h.calls)).collect::<Vec<_>>(), [("last", 1)]);
    assert!(middle.to_string().contains("its caller would wait"), "{middle}");
    assert!(common::reports_named("GET /front")[0].to_json().contains("\"used\""));
    assert!(last.to_json().contains("\"caller_time_left_ms\":"), "{}", last.to_json());
    eprintln!(
        "front {:.1} ms; middle got {:.1} ms; last got {:.1} ms, cut after {:.1} ms",
        ms(took),
        ms(to_middle),
        ms(to_last),
        ms(last_took)
    );
}

#[zen_runtime::zen(timeout_ms = 200)]
async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(1)).await;
    "slept"
}

async fn quick() -> &'static str {
    "quick"
}

/// A caller cannot lengthen a budget, and garbage changes nothing: not a
/// handler's `#[zen]` limit, nor the layer's own.
#[tokio::test]
async fn a_header_asking_for_more_or_saying_nothing_changes_nothing() {
    common::collect_reports();
    let url = serve(Router::new().route("/slow", get(slow)).route("/quick", get(quick)).layer(enforce(5_000))).await;
    let client = reqwest::Client::new();
    for (n, value, limit) in [(1, "10000", 5_000), (2, "300", 300), (3, "later", 5_000)] {
        let response = client.get(format!("{url}/quick")).header("x-request-timeout-ms", value).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let report = common::nth_report_named("GET /quick", n).await;
        assert_eq!(report.limits.get(zen_runtime::Budget::Timeout), Some(limit), "{value}: the layer's 5 s at most");
    }
    for (n, value) in [(1, "10000"), (2, "soon"), (3, "-5"), (4, "0")] {
        let start = Instant::now();
        let response = client.get(format!("{url}/slow")).header("x-request-timeout-ms", value).send().await.unwrap();
        assert_eq!(response.status(), 503, "{value}");
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(200) && took < Duration::from_millis(600), "{value}: {took:?}");
        let report = common::nth_report_named("GET /slow", n).await;
        assert_eq!(report.limits.get(zen_runtime::Budget::Timeout), Some(200), "{value}: the route's own 200 ms");
        let said = if value == "10000" { Some(Duration::from_secs(10)) } else { None };
        assert_eq!(report.caller_time_left, said, "{value}");
    }
}

/// Through a real tonic client: the deadline is `DEADLINE_EXCEEDED`, any
/// other budget `RESOURCE_EXHAUSTED`, each naming its budget, with HTTP 200
/// (a gRPC client cannot read a 503), and `zen-writes` saying what was done.
#[tokio::test]
async fn a_grpc_call_over_budget_gets_the_grpc_status_of_its_budget() {
    common::collect_reports();
    let layer = ZenLayer::new().mode(Mode::Enforce).limits(Limits::NONE.timeout_ms(150));
    let address = serve_last(layer).await;
    let channel = tonic::transport::Endpoint::from_shared(address).unwrap().connect().await.unwrap();
    let mut client = tonic::client::Grpc::new(channel);
    let codec = || tonic_prost::ProstCodec::<Work, Done>::default();
    let path = || axum::http::uri::PathAndQuery::from_static(WORK);

    // The method's 150 ms, shorter than the client's own second (which
    // tonic sends as `grpc-timeout`, and the report keeps).
    let mut request = tonic::Request::new(Work { sleep_ms: 2_000, queries: 0 });
    request.set_timeout(Duration::from_secs(1));
    client.ready().await.unwrap();
    let start = Instant::now();
    let status = client.unary(request, path(), codec()).await.unwrap_err();
    assert!(start.elapsed() < Duration::from_millis(1_000), "{:?}", start.elapsed());
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
    assert!(status.message().contains("of its timeout_ms = 150"), "{status:?}");
    assert_eq!(status.metadata().get("zen-writes").unwrap(), "none");
    let cut = report_where(WORK_SCOPE, |r| r.caller_time_left == Some(Duration::from_secs(1))).await;
    assert_eq!(cut.outcome, Outcome::Exceeded, "the client's grpc-timeout is kept, the method's 150 ms cut");
    assert_eq!(cut.status, Some(200), "gRPC's status is in grpc-status");

    // Three queries where the handler's `#[zen]` allows one.
    client.ready().await.unwrap();
    let status =
        client.unary(tonic::Request::new(Work { sleep_ms: 0, queries: 3 }), path(), codec()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("used 2 queries of its max_queries = 1"), "{status:?}");

    // Within budget: answered, and the scope is named by the method.
    client.ready().await.unwrap();
    let done = client.unary(tonic::Request::new(Work { sleep_ms: 0, queries: 1 }), path(), codec()).await.unwrap();
    assert!(done.into_inner().worked_ms < 1_000);
    let reports = common::reports_named(WORK_SCOPE);
    let ok =
        reports.iter().find(|r| r.outcome == Outcome::Ok && r.figures.queries() == 1).expect("the call within budget");
    assert!(ok.handler.is_some_and(|h| h.ends_with("deadline::do_work")), "the handler is named: {ok:?}");
    assert_eq!(ok.limits.get(zen_runtime::Budget::Queries), Some(1), "the handler's limit");
}

/// A response stream past `max_response_kb` ends with `RESOURCE_EXHAUSTED`
/// in its trailers, after the pages that fit: a gRPC client reads why.
#[tokio::test]
async fn a_grpc_stream_past_its_budget_ends_with_resource_exhausted() {
    common::collect_reports();
    let layer = ZenLayer::new().mode(Mode::Enforce).limits(Limits::NONE.max_response_kb(1));
    let address = serve_last(layer).await;
    let channel = tonic::transport::Endpoint::from_shared(address).unwrap().connect().await.unwrap();
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<Work, Done>::default();
    let path = axum::http::uri::PathAndQuery::from_static(PAGES);
    let request = tonic::Request::new(Work { sleep_ms: 0, queries: 10 });
    let mut pages = client.server_streaming(request, path, codec).await.unwrap().into_inner();
    let mut received = 0;
    let status = loop {
        match pages.message().await {
            Ok(Some(page)) => {
                assert_eq!(page.page.len(), 300);
                received += 1;
            }
            Ok(None) => panic!("the stream ended whole after {received} pages"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("max_response_kb = 1"), "{status:?}");
    assert!((1..10).contains(&received), "the pages that fit came first: {received}");
    // (Another test of this file serves the method too.)
    let report =
        report_where("POST /zen.test.Last/Pages", |r| r.limits.get(zen_runtime::Budget::ResponseSize) == Some(1)).await;
    assert_eq!(report.outcome, Outcome::Exceeded, "{report:?}");
}

/// Reads the stream of `pages` pages through `DeadlineLayer`: how many
/// came, and the status it ended with.
async fn read_pages(address: &str, pages: u32) -> (u32, Option<tonic::Code>) {
    let mut client = last_client(address).await;
    client.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<Work, Done>::default();
    let path = axum::http::uri::PathAndQuery::from_static(PAGES);
    let request = tonic::Request::new(Work { sleep_ms: 0, queries: pages });
    let mut stream = client.server_streaming(request, path, codec).await.unwrap().into_inner();
    let mut received = 0;
    loop {
        match stream.message().await {
            Ok(Some(_)) => received += 1,
            Ok(None) => return (received, None),
            Err(status) => return (received, Some(status.code())),
        }
    }
}

/// A call through `DeadlineLayer` lasts until its response body ends, as
/// a call of zen's HTTP client does, and the gRPC status in its trailers
/// says whether it failed, and `zen-writes` what it wrote.
#[tokio::test]
async fn a_grpc_call_is_counted_until_its_stream_ends_and_its_trailers_say_how() {
    let whole = serve_last(ZenLayer::new()).await;
    let ((received, status), report) = zen_runtime::testing::measure(read_pages(&whole, 10)).await;
    assert_eq!((received, status), (10, None));
    assert_eq!((report.figures.http_calls(), report.figures.failed_http_calls()), (1, 0));
    let http = report.figures.http_time();
    assert!(http >= Duration::from_millis(50), "ten pages 5 ms apart, body included: {http:?}");

    let cut = serve_last(ZenLayer::new().mode(Mode::Enforce).limits(Limits::NONE.max_response_kb(1))).await;
    let ((received, status), report) = zen_runtime::testing::measure(read_pages(&cut, 10)).await;
    assert_eq!(status, Some(tonic::Code::ResourceExhausted), "after {received} pages");
    assert_eq!((report.figures.http_calls(), report.figures.failed_http_calls()), (1, 1), "the trailers said so");
    assert_eq!(report.figures.writes(), zen_runtime::report::Writes::None, "the peer's zen-writes: none");
}

/// The gRPC answer on the wire, read with a bare HTTP/2 client: HTTP 200
/// whose headers carry `grpc-status` and end the stream (a trailers-only
/// answer, which every gRPC client reads, not tonic's alone).
#[tokio::test]
async fn a_blown_grpc_budget_is_a_trailers_only_answer_on_the_wire() {
    let layer = ZenLayer::new().mode(Mode::Enforce).limits(Limits::NONE.timeout_ms(100));
    let address = serve_last(layer).await;
    let tcp = tokio::net::TcpStream::connect(address.trim_start_matches("http://")).await.unwrap();
    let (mut h2, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let request = axum::http::Request::post(format!("{address}{WORK}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (response, mut body) = h2.send_request(request, false).unwrap();
    let message = prost::Message::encode_to_vec(&Work { sleep_ms: 2_000, queries: 0 });
    let mut frame = vec![0];
    frame.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(&message);
    body.send_data(frame.into(), true).unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["grpc-status"], "4", "{:?}", response.headers());
    assert_eq!(response.headers()["content-type"], "application/grpc");
    assert!(response.body().is_end_stream(), "the headers end the stream: no data, no separate trailers");
}

async fn pg_sleep(State(pool): State<zen_runtime::db::PgPool>) -> Result<&'static str, String> {
    sqlx::query("SELECT pg_sleep(5)").execute(&pool).await.map_err(|e| e.to_string())?;
    Ok("slept")
}

/// A database query is bounded by the time left, a deadline the caller
/// gave included: cut after the caller's 150 ms, not the route's 5 s.
#[tokio::test]
async fn a_query_is_capped_by_the_callers_deadline() {
    let Some(url) = common::postgres_url().await else { return };
    common::collect_reports();
    let pool = zen_runtime::db::PgPool::connect(&url).await.unwrap();
    let app = Router::new().route("/pg", get(pg_sleep)).layer(enforce(5_000)).with_state(pool);
    let base = serve(app).await;
    let start = Instant::now();
    let response =
        reqwest::Client::new().get(format!("{base}/pg")).header("x-request-timeout-ms", "150").send().await.unwrap();
    let took = start.elapsed();
    assert_eq!(response.status(), 503);
    let problem: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!((problem["budget"].as_str(), problem["limit"].as_u64()), (Some("timeout_ms"), Some(150)), "{problem}");
    assert!(took >= Duration::from_millis(150) && took < Duration::from_millis(1_000), "{took:?}");
    let report = common::report_named("GET /pg").await;
    assert_eq!(report.caller_time_left, Some(Duration::from_millis(150)));
    assert_eq!(report.figures.failed_queries(), 1, "the query was cut at the time left");
}
