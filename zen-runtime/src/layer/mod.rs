//! A tower layer that gives every HTTP request a budget scope.
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
//! The scope opens when the request reaches the layer, before extraction,
//! so reading and parsing the body count. Added with `Router::layer` (after
//! routing), it is named by the method and the matched route template,
//! `GET /articles/{slug}`, never the raw URI; on any other tower service, put
//! a [`RouteName`] in the request's extensions, or the name is
//! `GET (unmatched)`.
//!
//! A `#[zen]` handler run under the layer does not open a scope of its own:
//! it tightens the request's, each limit becoming the lower of the layer's
//! default and the handler's (its `timeout_ms` counts from the request's
//! arrival), and its `mode` and `n_plus_one` apply. The report, one per
//! request, names the handler. An annotated helper called by an
//! unannotated handler would be taken for the handler: give it
//! `kind = "other"`.
//!
//! Every response carries a `Server-Timing` header with the request's
//! figures against their limits (browser developer tools show it), unless
//! [`ZenLayer::server_timing`] turns it off, and the request's [`Report`] in
//! its extensions, as a [`RequestReport`], for middleware further out. In `observe` (and `strict`) the
//! response is otherwise untouched. In `enforce`, when a budget is blown or
//! the deadline passes, the handler's future is dropped (its connections go
//! back to the pool or are closed, its timers and tasks with it) and the
//! client gets `503 Service Unavailable` with an RFC 9457
//! `application/problem+json` body naming the budget, its limit and what was
//! used. A handler that panics gets a `500` problem response, the report says
//! `panicked`, and the connection stays up; a client that goes away
//! mid-request leaves a report that says `cancelled`.
//!
//! Both problem documents say what the request's writes did, in `writes`
//! ([`Writes`](crate::report::Writes)), so that a client knows whether it
//! may retry:
//!
//! | `writes` | what it means | retry |
//! |---|---|---|
//! | `none` | no write took effect, none was cut waiting for its answer | safe |
//! | `committed` | at least one write took effect | only an idempotent request |
//! | `unknown` | a write (a `COMMIT`, an autocommit statement, a call) was cut before its answer | check first |
//!
//! Writes that tasks the request spawned are still making when it is
//! answered are not known to it.
//!
//! [`Report`]: crate::Report

mod body;
mod future;
mod response;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Method, Request, Response};

use crate::tracker::boundary::Boundary;
use crate::tracker::budget::{Kind, Limits, Mode};
use crate::tracker::hash::FxBuild;
use crate::tracker::scope::{Defaults, Scope, Spec};

pub use body::{BoxError, ZenBody};
pub use future::{RequestReport, ResponseFuture};

/// Names the route of a request for the layer, when the service is not an
/// axum router (which provides `MatchedPath`): the template, without the
/// method, such as `/articles/{id}`. Insert it in the request's extensions
/// before the layer sees the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteName(pub Cow<'static, str>);

/// The layer: a default budget for every request, the mode, and whether
/// responses carry `Server-Timing`.
#[derive(Clone, Debug)]
pub struct ZenLayer {
    defaults: Defaults,
    server_timing: bool,
}

impl Default for ZenLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl ZenLayer {
    /// Measures every request and limits nothing (until a handler's `#[zen]`
    /// does); the mode is `ZEN_MODE`'s; `Server-Timing` is on.
    #[must_use]
    pub fn new() -> Self {
        ZenLayer { defaults: Defaults::default(), server_timing: true }
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

    /// Whether responses carry a `Server-Timing` header (default `true`).
    /// Turn it off where clients should not see the figures.
    #[must_use]
    pub fn server_timing(self, on: bool) -> Self {
        self.with(|l| l.server_timing = on)
    }
}

impl<S> tower_layer::Layer<S> for ZenLayer {
    type Service = ZenService<S>;

    fn layer(&self, inner: S) -> ZenService<S> {
        let shared = Shared { defaults: self.defaults, server_timing: self.server_timing, names: Default::default() };
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
    defaults: Defaults,
    server_timing: bool,
    names: [OnceLock<(Box<str>, &'static str)>; 9],
}

impl Shared {
    fn name<B>(&self, request: &Request<B>) -> Cow<'static, str> {
        let method = request.method();
        let route = route(request);
        let Some(slot) = method_index(method).map(|i| &self.names[i]) else {
            // Methods past the standard nine (RFC 9110's and PATCH) are the
            // client's to invent:
            // one name for them all keeps names, metric labels and
            // dashboard rows bounded.
            static OTHER: OnceLock<Method> = OnceLock::new();
            return intern(OTHER.get_or_init(|| Method::from_bytes(b"OTHER").expect("a method token")), route);
        };
        match slot.get() {
            Some((cached, name)) if **cached == *route => Cow::Borrowed(name),
            Some(_) => intern(method, route),
            None => {
                let name = intern(method, route);
                if let Cow::Borrowed(name) = name {
                    let _ = slot.set((route.into(), name));
                }
                name
            }
        }
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

/// A method as a request's name and route carry it.
fn method_name(method: &Method) -> &'static str {
    method_index(method).map_or("OTHER", |i| METHODS[i].1)
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
        let scope = Scope::open(Spec {
            name: self.shared.name(&request),
            method: Some(method_name(request.method())),
            kind: Some(Kind::Handler),
            defaults: self.shared.defaults,
            collector: None,
            adoptable: true,
            attempt: None,
        });
        let work = Boundary::start(scope, || self.inner.call(request));
        ResponseFuture::new(work, self.shared.server_timing)
    }
}

/// The route template: from `RouteName`, else axum's `MatchedPath`.
fn route<B>(request: &Request<B>) -> &str {
    let extensions = request.extensions();
    if let Some(RouteName(route)) = extensions.get::<RouteName>() {
        return route;
    }
    #[cfg(feature = "axum")]
    if let Some(path) = extensions.get::<axum::extract::MatchedPath>() {
        return path.as_str();
    }
    "(unmatched)"
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
