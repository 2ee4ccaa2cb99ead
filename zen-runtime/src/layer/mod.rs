//! A tower layer that gives every HTTP request a budget scope (feature
//! `tower`; with `axum`, requests are named by their route).
//!
//! ```
//! # #[cfg(feature = "axum")] {
//! use axum::{Router, routing::get};
//! use zen_runtime::{Limits, layer::ZenLayer, zen};
//!
//! #[zen(max_queries = 5, timeout_ms = 200)]
//! async fn article() -> &'static str {
//!     "..."
//! }
//!
//! let app: Router = Router::new()
//!     .route("/articles/{slug}", get(article))
//!     // Every route: at most 50 queries and 2 s, unless its handler says less.
//!     .layer(ZenLayer::new().limits(Limits::NONE.max_queries(50).timeout_ms(2_000)));
//! # }
//! ```
//!
//! # One scope per request
//!
//! The scope opens when the request reaches the layer, **before
//! extraction**, so reading and parsing the body count. Added with
//! `Router::layer` (after routing), it is named by the method and the
//! matched route template, `GET /articles/{slug}`, never the raw URI:
//! unmatched requests are `GET (unmatched)`, and methods other than the
//! nine standard ones (RFC 9110's and `PATCH`) are `OTHER`, so a client
//! cannot invent names. On any other tower service, put a [`RouteName`] in
//! the request's extensions (`RouteName("/things/{id}".into())`).
//!
//! [`ZenLayer::limits`] is every route's default budget. A `#[zen]`
//! handler run under the layer does not open a second scope: it tightens
//! the request's, each limit becoming the lower of the two (a route cannot
//! loosen the layer's default), its `timeout_ms` counting from the
//! request's arrival, and its `mode` and `n_plus_one` apply. One report per
//! request, whose `handler` names the fn. The first `#[zen]` fn a request
//! runs is taken for its handler: give an annotated helper called by an
//! unannotated handler `kind = "other"`. A `#[zen]` fn run in a task the
//! handler spawned ([`spawn`](crate::spawn)) is never taken for the
//! handler: it opens its own scope, nested in the request's.
//! [`ZenLayer::mode`] sets the mode of every route instead of `ZEN_MODE`.
//! Deadlines in `enforce` need tokio's timer (`enable_all()`, as
//! `#[tokio::main]` does).
//!
//! # `Server-Timing`
//!
//! A response can carry the request's figures against their limits, one
//! entry per budget that was used or is limited (named in the budget table,
//! [`Budget::timing_name`](crate::Budget::timing_name)), which a browser's
//! developer tools show under Timing:
//!
//! ```text
//! queries;desc="4/5", db;dur=12.4;desc="budget 50ms", mem;desc="312/512 KiB", http-calls;desc="1/1", http;dur=301.2, poll;dur=0.8, rows;desc="20", resp;desc="26/64 KiB", total;dur=348.1;desc="budget 1000ms"
//! ```
//!
//! The header never holds SQL, a value or a raw URI, but it tells whoever
//! reads it what each request costs and which routes are expensive: a map
//! for an attacker, and a timing side channel. So it is off by default, and
//! [`ZenLayer::server_timing`] says who sees it ([`ServerTiming`]):
//!
//! ```
//! # #[cfg(feature = "dashboard")] {
//! # fn demo(token: &str) -> Result<(), Box<dyn std::error::Error>> {
//! use zen_runtime::dashboard::Authorize;
//! use zen_runtime::layer::{ServerTiming, ZenLayer};
//!
//! // Development and demos: every response.
//! let everyone = ZenLayer::new().server_timing(ServerTiming::On);
//! // Production: the requests that send the dashboard's token as
//! // `Authorization: Bearer`, so that an operator sees it (with curl, or
//! // a header extension in the browser's developer tools).
//! let operators = ZenLayer::new().server_timing(Authorize::token(token)?);
//! # Ok(()) }
//! # }
//! ```
//!
//! # The response body
//!
//! The body counts toward `max_response_kb`. A body whose size is known when
//! the headers leave (`Json`, `String`, `Bytes`) is counted then; in
//! `enforce`, one over the budget is answered `503` instead. A streamed body
//! is counted as it goes, with the request's scope current while it is
//! polled (its queries count toward the request), and the request's report
//! is delivered when it ends or is dropped. In `enforce`, it is cut at the
//! budget: the body ends with an error, so the server aborts the response
//! and the client sees it cut short, never passed off as complete (the
//! headers, `200`, are already gone).
//!
//! # `observe` and `enforce`
//!
//! In `observe` (and `strict`) the response is untouched apart from
//! `Server-Timing` where it is on. In `enforce`, when a budget is blown or the deadline
//! passes, the handler's future is dropped (its pooled connections go back
//! or are closed, its timers and the work it did not spawn with it) and the
//! client gets `503 Service Unavailable`, `content-type:
//! application/problem+json` (RFC 9457), `cache-control: no-store`:
//!
//! ```json
//! {"type":"https://github.com/zen-rs/zen#when-a-budget-is-exceeded","title":"Budget exceeded","status":503,
//!  "detail":"GET /reports/slow used 21 ms of its max_db_ms = 20","route":"GET /reports/slow",
//!  "budget":"max_db_ms","limit":20,"used":21,"unit":"ms","writes":"none"}
//! ```
//!
//! A handler that got to its end with a blown budget (it turned a refused
//! query into its own error, or built a response past `max_mem_kb`) is
//! answered the same way, so clients learn it one way.
//!
//! A handler that panics is answered `500` with a problem document (the
//! panic message stays in your logs), the report says `panicked`, and the
//! connection keeps serving. A client that goes away mid-request drops the
//! handler; its report says `cancelled`.
//!
//! # gRPC
//!
//! On a tonic server (`Server::builder().layer(ZenLayer::new())`), each
//! call (`POST` over HTTP/2 with `content-type: application/grpc`) is a
//! scope named by its method, `POST /package.Service/Method`: the first
//! 128 such paths of up to 128 bytes, since they are the client's to send;
//! any other is `(unmatched)`. A `#[zen]`
//! handler tightens it as under axum; metrics, the dashboard and the lock
//! see it as a route. A caller's `grpc-timeout` shortens its budget
//! ([`deadline`](crate::deadline)). In `enforce`, a blown budget is
//! answered as gRPC requires, never with a `503` a gRPC client cannot
//! read: HTTP `200` with `grpc-status` `DEADLINE_EXCEEDED` (4) for the
//! deadline, `RESOURCE_EXHAUSTED` (8) for any other budget and `INTERNAL`
//! (13) for a panic, a `grpc-message` naming the budget (`POST
//! /pkg.Svc/Get used 151 ms of its timeout_ms = 150`), and `zen-writes`
//! (`none`, `committed`, `unknown`) in place of the problem document's
//! `writes`. A response stream past `max_response_kb` ends there with
//! those trailers.
//!
//! # `writes`: may the client retry?
//!
//! Both problem documents say what the request's writes did, in `writes`
//! ([`Writes`](crate::report::Writes)):
//!
//! | `writes` | what it means | retry |
//! |---|---|---|
//! | `none` | nothing was committed: no write took effect, none was cut waiting for its answer | safe: it does the work once |
//! | `committed` | at least one write took effect | only an idempotent request |
//! | `unknown` | a write (a `COMMIT`, an autocommit statement, a call) was cut before its answer, or failed in a way that says nothing of what it left | check first |
//!
//! zen reads it from what the request's writes did: autocommit statements
//! and `COMMIT`s, Redis writes, and external calls other than `GET`, `HEAD`,
//! `OPTIONS` and `TRACE` ([`instrument`](crate::instrument#writes) has the
//! rules). A transaction-control statement cut before its answer closes its
//! connection, so no later write runs inside a transaction the server still
//! holds. Writes that tasks the request spawned are still making when it is
//! answered are not known to it.
//!
//! # The report, for middleware further out
//!
//! Middleware further out finds the request's [`Report`] in the response's
//! extensions, as a [`RequestReport`]:
//! `response.extensions().get::<RequestReport>().map(RequestReport::report)`.
//! It is built when first asked for, so requests nobody asks about cost no
//! report. Its `status` is the response's (the layer's own `503` or `500`
//! when it answered instead); for a streamed body asked about before the
//! body ended, the body's bytes are not in it yet.
//!
//! [`Report`]: crate::Report

mod body;
mod future;
mod response;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response};

use crate::deadline::Deadline;
use crate::tracker::boundary::Boundary;
use crate::tracker::budget::{Kind, Limits, Mode};
use crate::tracker::hash::FxBuild;
use crate::tracker::scope::{Asked, Scope, Spec};

pub use body::{BoxError, ZenBody};
use future::Shown;
pub use future::{RequestReport, ResponseFuture};

/// Names the route of a request for the layer, when the service is not an
/// axum router (which provides `MatchedPath`): the template, without the
/// method, such as `/articles/{id}`. Insert it in the request's extensions
/// before the layer sees the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteName(pub Cow<'static, str>);

/// The layer: a default budget for every request, the mode, and who sees
/// `Server-Timing`.
#[derive(Clone, Debug)]
pub struct ZenLayer {
    defaults: Asked,
    server_timing: ServerTiming,
    deadline: Option<Deadline>,
}

/// Which responses carry `Server-Timing` ([`ZenLayer::server_timing`]).
#[derive(Clone, Default)]
pub enum ServerTiming {
    /// None (the default).
    #[default]
    Off,
    /// Every response: for development and demos, where the client is you.
    On,
    /// The responses to requests that the check admits, read from the
    /// request's head before the handler sees it. Such a response also says
    /// `Vary: authorization, cookie` and, unless the application set its
    /// own `Cache-Control`, `Cache-Control: private`, so that a shared cache
    /// does not hand it to anyone else (with a `Cache-Control` of your own,
    /// that is yours to see to). The dashboard's `Authorize` converts into
    /// it (feature `dashboard`): a request that sends the dashboard's token
    /// as `Authorization: Bearer` (curl, a header extension in the
    /// browser) gets the header.
    Admitted(Arc<dyn Fn(&http::request::Parts) -> bool + Send + Sync>),
}

impl ServerTiming {
    /// The responses to requests that `check` admits.
    pub fn admitted(check: impl Fn(&http::request::Parts) -> bool + Send + Sync + 'static) -> ServerTiming {
        ServerTiming::Admitted(Arc::new(check))
    }

    /// Whether the response to `request` carries the header.
    fn shown<B>(&self, request: Request<B>) -> (Shown, Request<B>) {
        match self {
            ServerTiming::Off => (Shown::No, request),
            ServerTiming::On => (Shown::Always, request),
            ServerTiming::Admitted(check) => {
                let (parts, body) = request.into_parts();
                let shown = if check(&parts) { Shown::Admitted } else { Shown::No };
                (shown, Request::from_parts(parts, body))
            }
        }
    }
}

/// `true`: [`ServerTiming::On`]; `false`: [`ServerTiming::Off`].
impl From<bool> for ServerTiming {
    fn from(on: bool) -> ServerTiming {
        if on { ServerTiming::On } else { ServerTiming::Off }
    }
}

impl std::fmt::Debug for ServerTiming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ServerTiming::Off => "ServerTiming::Off",
            ServerTiming::On => "ServerTiming::On",
            ServerTiming::Admitted(_) => "ServerTiming::Admitted(..)",
        })
    }
}

impl Default for ZenLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl ZenLayer {
    /// Measures every request and limits nothing (until a handler's `#[zen]`
    /// does); the mode is `ZEN_MODE`'s; no response carries `Server-Timing`.
    #[must_use]
    pub fn new() -> Self {
        ZenLayer { defaults: Asked::default(), server_timing: ServerTiming::Off, deadline: None }
    }

    fn with(mut self, change: impl FnOnce(&mut Self)) -> Self {
        change(&mut self);
        self
    }

    /// The default budget of every route; an annotated handler can only
    /// tighten it.
    #[must_use]
    pub fn limits(self, limits: Limits) -> Self {
        self.with(|l| l.defaults.limits = limits)
    }

    /// The mode of every request, instead of `ZEN_MODE`'s; a handler's
    /// `mode = "..."` still wins.
    #[must_use]
    pub fn mode(self, mode: Mode) -> Self {
        self.with(|l| l.defaults.mode = Some(mode))
    }

    /// The N+1 threshold of every request, instead of `ZEN_N_PLUS_ONE`'s.
    #[must_use]
    pub fn n_plus_one(self, threshold: u32) -> Self {
        self.with(|l| l.defaults.n_plus_one = Some(threshold))
    }

    /// Trusts the time left a caller sends in this header (whole
    /// milliseconds; see [`deadline`](crate::deadline)): a request's
    /// deadline becomes the earlier of its own `timeout_ms` and that long
    /// after arrival, and its report says what the caller gave
    /// ([`Report::caller_time_left`](crate::Report::caller_time_left)). A
    /// gRPC request's `grpc-timeout` is read without it. Name a header
    /// only your own services (or your proxy, such as Envoy's
    /// `x-envoy-expected-rq-timeout-ms`) can set: a client can shorten its
    /// budget, never lengthen it, but it can make you answer sooner.
    #[must_use]
    pub fn deadline(self, deadline: Deadline) -> Self {
        self.with(|l| l.deadline = Some(deadline))
    }

    /// Which responses carry a `Server-Timing` header ([`ServerTiming`]:
    /// none by default, `true` or [`ServerTiming::On`] for all, or those a
    /// check admits, such as the dashboard's `Authorize`).
    #[must_use]
    pub fn server_timing(self, who: impl Into<ServerTiming>) -> Self {
        let who = who.into();
        self.with(|l| l.server_timing = who)
    }
}

impl<S> tower_layer::Layer<S> for ZenLayer {
    type Service = ZenService<S>;

    fn layer(&self, inner: S) -> ZenService<S> {
        let shared = Shared {
            defaults: self.defaults,
            server_timing: self.server_timing.clone(),
            deadline: self.deadline.clone(),
            names: Default::default(),
        };
        ZenService { inner, shared: Arc::new(shared) }
    }
}

/// The service [`ZenLayer`] wraps around yours.
#[derive(Clone, Debug)]
pub struct ZenService<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// What every clone of one service shares: the configuration, and the
/// name of its route per method. Under `Router::layer` each route has its
/// own service, whose route is always the same: looking the name up costs
/// a comparison.
#[derive(Debug)]
struct Shared {
    defaults: Asked,
    server_timing: ServerTiming,
    deadline: Option<Deadline>,
    names: [OnceLock<(Box<str>, &'static str)>; 9],
}

impl Shared {
    /// The time the request's caller will still wait, if it said so in a
    /// header this layer trusts (`grpc-timeout` on a gRPC request).
    /// With both, the shorter.
    fn caller_time_left(&self, headers: &http::HeaderMap, grpc: bool) -> Option<Duration> {
        let trusted = self.deadline.as_ref().and_then(|deadline| deadline.read(headers));
        let grpc = if grpc { Deadline::grpc().read(headers) } else { None };
        match (trusted, grpc) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The layer's budget, its deadline no later than `left` from now.
    fn asked(&self, left: Option<Duration>) -> Asked {
        let mut asked = self.defaults;
        if let Some(left) = left {
            // Whole milliseconds, rounded down: never later than the caller's.
            let ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX).max(1);
            asked.limits = asked.limits.tighter(Limits::NONE.timeout_ms(ms));
        }
        asked
    }

    /// The request's name and its method as the name carries it.
    fn name<B>(&self, request: &Request<B>, grpc: bool) -> (Cow<'static, str>, &'static str) {
        let method = request.method();
        let route = route(request, grpc);
        let Some(index) = method_index(method) else {
            // Methods past the standard nine (RFC 9110's and PATCH) are the
            // client's to invent:
            // one name for them all keeps names, metric labels and
            // dashboard rows bounded.
            static OTHER: OnceLock<Method> = OnceLock::new();
            let other = OTHER.get_or_init(|| Method::from_bytes(b"OTHER").expect("a method token"));
            return (intern(other, route), "OTHER");
        };
        let slot = &self.names[index];
        let name = match slot.get() {
            Some((cached, name)) if **cached == *route => Cow::Borrowed(*name),
            Some(_) => intern(method, route),
            None => {
                let name = intern(method, route);
                if let Cow::Borrowed(name) = name {
                    let _ = slot.set((route.into(), name));
                }
                name
            }
        };
        (name, METHODS[index].1)
    }
}

/// The methods a request's name may carry: RFC 9110's and PATCH. Any other
/// is the client's to invent, and is named `OTHER`.
const METHODS: [(Method, &str); 9] = [
    (Method::GET, "GET"),
    (Method::POST, "POST"),
    (Method::PUT, "PUT"),
    (Method::DELETE, "DELETE"),
    (Method::PATCH, "PATCH"),
    (Method::HEAD, "HEAD"),
    (Method::OPTIONS, "OPTIONS"),
    (Method::CONNECT, "CONNECT"),
    (Method::TRACE, "TRACE"),
];

fn method_index(method: &Method) -> Option<usize> {
    METHODS.iter().position(|(m, _)| m == method)
}

impl<S, ReqBody, ResBody> tower_service::Service<Request<ReqBody>> for ZenService<S>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: http_body::Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<ZenBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let grpc = is_grpc(&request);
        let (name, method) = self.shared.name(&request, grpc);
        let caller_time_left = self.shared.caller_time_left(request.headers(), grpc);
        let asked = self.shared.asked(caller_time_left);
        let scope = Scope::open(Spec {
            name,
            method: Some(method),
            kind: Some(Kind::Handler),
            asked,
            collector: None,
            adoptable: true,
            attempt: None,
            caller_time_left,
        });
        let (timing, request) = self.shared.server_timing.shown(request);
        let work = Boundary::start(scope, || self.inner.call(request));
        ResponseFuture::new(work, timing, grpc)
    }
}

/// The route template: from `RouteName`, else axum's `MatchedPath`.
fn route<B>(request: &Request<B>, grpc: bool) -> &str {
    let extensions = request.extensions();
    if let Some(RouteName(route)) = extensions.get::<RouteName>() {
        return route;
    }
    #[cfg(feature = "axum")]
    if let Some(path) = extensions.get::<axum::extract::MatchedPath>() {
        return path.as_str();
    }
    if grpc {
        return grpc_method(request.uri().path());
    }
    "(unmatched)"
}

/// A gRPC request: `POST` over HTTP/2 with `content-type:
/// application/grpc` (alone, or with `+proto`, `;...`).
fn is_grpc<B>(request: &Request<B>) -> bool {
    // The version first: most requests are told apart without a lookup.
    if request.version() != http::Version::HTTP_2 || request.method() != Method::POST {
        return false;
    }
    crate::call::is_grpc(request.headers())
}

/// The most distinct gRPC methods named, and the longest path: the paths
/// are the client's to send, and a service has few methods.
const MAX_GRPC_METHODS: usize = 128;
const MAX_GRPC_PATH: usize = 128;

/// Those named so far.
static GRPC_METHODS: RwLock<Vec<Box<str>>> = RwLock::new(Vec::new());

/// `/package.Service/Method`, which names a gRPC call's scope: the first
/// 128 such paths a process sees, up to 128 bytes each; any other path,
/// and any past them, is `(unmatched)`.
fn grpc_method(path: &str) -> &str {
    const UNMATCHED: &str = "(unmatched)";
    let name = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
    let shaped = path.len() <= MAX_GRPC_PATH
        && path
            .strip_prefix('/')
            .and_then(|p| p.split_once('/'))
            .is_some_and(|(svc, method)| name(svc) && name(method));
    if !shaped {
        return UNMATCHED;
    }
    {
        let known = GRPC_METHODS.read().unwrap_or_else(PoisonError::into_inner);
        if known.iter().any(|m| **m == *path) {
            return path;
        }
        if known.len() >= MAX_GRPC_METHODS {
            return UNMATCHED;
        }
    }
    let mut known = GRPC_METHODS.write().unwrap_or_else(PoisonError::into_inner);
    if known.iter().any(|m| **m == *path) {
        return path;
    }
    if known.len() >= MAX_GRPC_METHODS {
        return UNMATCHED;
    }
    crate::tracker::alloc::untracked(|| known.push(path.into()));
    path
}

type Names = Vec<(Method, HashMap<Box<str>, &'static str, FxBuild>)>;

/// Route names are few (one per route and method) and asked for on every
/// request: each is built once and kept for the life of the process. Past
/// [`config::max_names`](crate::config::max_names) (a `RouteName` made from
/// raw paths, say) they are built per request.
static NAMES: RwLock<Names> = RwLock::new(Vec::new());

fn intern(method: &Method, route: &str) -> Cow<'static, str> {
    {
        let names = NAMES.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(name) = names.iter().find(|(m, _)| m == method).and_then(|(_, routes)| routes.get(route)) {
            return Cow::Borrowed(name);
        }
    }
    let name = format!("{method} {route}");
    let mut names = NAMES.write().unwrap_or_else(PoisonError::into_inner);
    if names.iter().map(|(_, routes)| routes.len()).sum::<usize>() >= crate::tracker::config::max_names() {
        return Cow::Owned(name);
    }
    let index = match names.iter().position(|(m, _)| m == method) {
        Some(index) => index,
        None => {
            names.push((method.clone(), HashMap::default()));
            names.len() - 1
        }
    };
    let name: &'static str = names[index].1.entry(route.into()).or_insert_with(|| Box::leak(name.into_boxed_str()));
    Cow::Borrowed(name)
}
