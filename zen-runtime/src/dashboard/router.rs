//! The dashboard's axum `Router`: authorisation before anything else (a
//! refusal is a plain `404`), strict security headers, the pages, the JSON
//! endpoints, the live-refresh event stream and two static assets.

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use axum::Router;
use axum::extract::{OriginalUri, Request, State};
use axum::http::{HeaderValue, StatusCode, header, request::Parts};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::stream::Stream;

use super::page::{self, Sort};
use super::route::{Route, shown};
use super::{Dashboard, Inner};
use crate::tracker::budget::Budget;

/// Who may see the dashboard. There is no open mode: build one with
/// [`Authorize::token`] or [`Authorize::with`].
#[derive(Clone)]
pub struct Authorize {
    check: Arc<dyn Fn(&Parts) -> bool + Send + Sync>,
    /// The token of [`Authorize::token`], which `?token=` turns into a cookie.
    token: Option<Arc<str>>,
    /// Whether the cookie is `Secure`; `None`: when the request came over TLS.
    secure_cookie: Option<bool>,
}

impl fmt::Debug for Authorize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.token.is_some() { "Authorize::token(..)" } else { "Authorize::with(..)" })
    }
}

/// A dashboard token too short to resist guessing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeakToken {
    /// Its length.
    pub length: usize,
}

impl fmt::Display for WeakToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a dashboard token must be at least {MIN_TOKEN} characters of [A-Za-z0-9_-] (this one: {} characters)",
            self.length
        )
    }
}

impl std::error::Error for WeakToken {}

const MIN_TOKEN: usize = 16;
const COOKIE: &str = "zen_dashboard";

/// `a == b` in time that depends on their lengths only.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Authorize {
    /// Lets in a request that carries `token`: in `Authorization: Bearer`,
    /// in the dashboard's cookie, or once in `?token=` (answered with the
    /// cookie and a redirect to the same address without it).
    ///
    /// # Errors
    /// A token shorter than 16 characters, or with characters other than
    /// letters, digits, `-` and `_`.
    pub fn token(token: &str) -> Result<Authorize, WeakToken> {
        let valid = token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if token.len() < MIN_TOKEN || !valid {
            return Err(WeakToken { length: token.len() });
        }
        let expected: Arc<str> = Arc::from(token);
        let check = Arc::clone(&expected);
        Ok(Authorize {
            check: Arc::new(move |parts: &Parts| presented(parts).iter().any(|t| same(t.as_bytes(), check.as_bytes()))),
            token: Some(expected),
            secure_cookie: None,
        })
    }

    /// Lets in the requests `check` approves: your own session, an
    /// internal network's address, a header set by your proxy.
    pub fn with(check: impl Fn(&Parts) -> bool + Send + Sync + 'static) -> Authorize {
        Authorize { check: Arc::new(check), token: None, secure_cookie: None }
    }

    /// Whether the cookie that `?token=` sets is `Secure` (sent over HTTPS
    /// only). By default it is when the request says it came over TLS: an
    /// HTTP/2 request's `https` scheme, or a proxy's `X-Forwarded-Proto:
    /// https` or `Forwarded: proto=https`. An HTTP/1.1 server that ends TLS
    /// itself sees no sign of it: say `true` there, and behind a proxy that
    /// says nothing.
    #[must_use]
    pub fn secure_cookie(mut self, secure: bool) -> Authorize {
        self.secure_cookie = Some(secure);
        self
    }

    /// Whether the request may see the dashboard.
    pub(super) fn admits(&self, parts: &Parts) -> bool {
        (self.check)(parts)
    }
}

/// `Server-Timing` for the requests that may see the dashboard
/// ([`ZenLayer::server_timing`](crate::layer::ZenLayer::server_timing)).
/// Of [`Authorize::token`]'s ways, the `Authorization: Bearer` header
/// alone: the dashboard's cookie is sent to its own path only, and a token
/// in an application's address would reach its access logs and `Referer`
/// headers. [`Authorize::with`]'s check as it is.
impl From<Authorize> for crate::layer::ServerTiming {
    fn from(authorize: Authorize) -> crate::layer::ServerTiming {
        match authorize.token {
            Some(expected) => crate::layer::ServerTiming::admitted(move |parts: &Parts| {
                bearer(parts).any(|t| same(t.as_bytes(), expected.as_bytes()))
            }),
            None => crate::layer::ServerTiming::Admitted(authorize.check),
        }
    }
}

/// The tokens of a request's `Authorization: Bearer` headers (the scheme in
/// any case).
fn bearer(parts: &Parts) -> impl Iterator<Item = &str> {
    parts.headers.get_all(header::AUTHORIZATION).iter().filter_map(|value| {
        let (scheme, token) = value.to_str().ok()?.trim_start().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    })
}

/// `true` when the request came over TLS, by its address or its proxy.
fn over_tls(parts: &Parts) -> bool {
    let https = |v: &str| v.trim().eq_ignore_ascii_case("https");
    parts.uri.scheme_str().is_some_and(https)
        || parts.headers.get_all("x-forwarded-proto").iter().any(|v| v.to_str().is_ok_and(https))
        || parts.headers.get_all(header::FORWARDED).iter().any(|v| {
            v.to_str().unwrap_or("").split([';', ',']).any(|pair| {
                pair.split_once('=')
                    .is_some_and(|(k, v)| k.trim().eq_ignore_ascii_case("proto") && https(v.trim_matches('"')))
            })
        })
}

/// The tokens a request presents: bearer (the scheme in any case), cookie
/// and query.
fn presented(parts: &Parts) -> Vec<String> {
    let mut tokens: Vec<String> = bearer(parts).map(str::to_owned).collect();
    for value in parts.headers.get_all(header::COOKIE) {
        for pair in value.to_str().unwrap_or("").split(';') {
            if let Some(t) = pair.trim().strip_prefix(COOKIE).and_then(|r| r.strip_prefix('=')) {
                tokens.push(t.to_owned());
            }
        }
    }
    if let Some(t) = query_token(parts.uri.query()) {
        tokens.push(t.to_owned());
    }
    tokens
}

fn query_token(query: Option<&str>) -> Option<&str> {
    query?.split('&').find_map(|pair| pair.strip_prefix("token="))
}

/// Where the dashboard is mounted: the original path less the nested one.
fn base(parts: &Parts) -> String {
    let nested = parts.uri.path();
    let original = parts.extensions.get::<OriginalUri>().map_or(nested, |o| o.0.path());
    let base = original.strip_suffix(nested).unwrap_or(if nested == "/" { original } else { "" });
    base.trim_end_matches('/').to_owned()
}

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
                   base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn secure(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Exactly what an unknown route answers: nothing to tell a stranger.
fn not_found() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Inner>,
    authorize: Authorize,
}

async fn guard(State(shared): State<Shared>, request: Request, next: axum::middleware::Next) -> Response {
    let (parts, body) = request.into_parts();
    if !shared.authorize.admits(&parts) {
        return not_found();
    }
    // A valid token in the address becomes the cookie, and leaves the
    // address. Only the expected token is ever written: a link carrying
    // another (`?token=x;Domain=...`) changes nothing.
    if let (Some(token), Some(expected)) = (query_token(parts.uri.query()), &shared.authorize.token)
        && same(token.as_bytes(), expected.as_bytes())
    {
        let base = base(&parts);
        let rest: Vec<&str> =
            parts.uri.query().unwrap_or("").split('&').filter(|p| !p.starts_with("token=") && !p.is_empty()).collect();
        let here = parts
            .extensions
            .get::<OriginalUri>()
            .map_or_else(|| parts.uri.path().to_owned(), |o| o.0.path().to_owned());
        let location = if rest.is_empty() { here } else { format!("{here}?{}", rest.join("&")) };
        // A base path that could end the cookie's attributes early gets the
        // whole site's path instead.
        let path = if base.is_empty() || base.contains([';', ',', ' ', '\t']) { "/" } else { &base };
        let tls = shared.authorize.secure_cookie.unwrap_or_else(|| over_tls(&parts));
        let attribute = if tls { "; Secure" } else { "" };
        let cookie = format!("{COOKIE}={expected}; Path={path}; HttpOnly; SameSite=Strict{attribute}");
        let mut response = StatusCode::SEE_OTHER.into_response();
        if let (Ok(location), Ok(cookie)) = (HeaderValue::from_str(&location), HeaderValue::from_str(&cookie)) {
            response.headers_mut().insert(header::LOCATION, location);
            response.headers_mut().insert(header::SET_COOKIE, cookie);
        }
        return secure(response);
    }
    secure(next.run(Request::from_parts(parts, body)).await)
}

fn html(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

fn json(value: &serde_json::Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], value.to_string()).into_response()
}

fn route_id(parts: &Parts, inner: &Inner) -> Option<Arc<Route>> {
    let id = parts.uri.path().rsplit('/').next()?.parse().ok()?;
    inner.route_by_id(id)
}

fn timeline_id(parts: &Parts, inner: &Inner) -> Option<(Arc<Route>, Arc<super::waterfall::Kept>)> {
    let id = parts.uri.path().rsplit('/').next()?.parse().ok()?;
    inner.timeline(id)
}

impl Dashboard {
    /// The dashboard's pages as a `Router` of their own, behind
    /// `authorize`: for a listener apart (an admin port). Pages: `/` (every
    /// route and job, sortable), `/routes/{id}`, `/requests/{id}` (a kept
    /// timeline's waterfall); JSON: `/api/overview`, `/api/routes/{id}`,
    /// `/api/requests/{id}`; live refresh: `/events` (server-sent events).
    ///
    /// In the application's own router, mount it with
    /// [`Dashboard::layer`] rather than `Router::nest`: axum's `serve`
    /// copies the whole router for each connection, and a nested dashboard
    /// adds its routes to every copy (28.6k instructions more per request
    /// with one connection per request, against 4.4k through the layer;
    /// BENCHMARKS.md).
    pub fn router<S: Clone + Send + Sync + 'static>(&self, authorize: Authorize) -> Router<S> {
        let shared = Shared { inner: Arc::clone(&self.inner), authorize };
        let inner = &shared.inner;
        let (a, b, c, d, e) =
            (Arc::clone(inner), Arc::clone(inner), Arc::clone(inner), Arc::clone(inner), Arc::clone(inner));
        let (f, g) = (Arc::clone(inner), Arc::clone(inner));
        Router::new()
            .route(
                "/",
                get(move |request: Request| {
                    let (parts, _) = request.into_parts();
                    std::future::ready(html(page::overview(&a, &base(&parts), Sort::parse(parts.uri.query()))))
                }),
            )
            .route(
                "/routes/{id}",
                get(move |request: Request| {
                    let (parts, _) = request.into_parts();
                    std::future::ready(match route_id(&parts, &b) {
                        Some(route) => html(page::route_page(&b, &base(&parts), &route)),
                        None => not_found(),
                    })
                }),
            )
            .route("/api/overview", get(move || std::future::ready(json(&overview_json(&c)))))
            .route(
                "/api/routes/{id}",
                get(move |request: Request| {
                    let (parts, _) = request.into_parts();
                    std::future::ready(match route_id(&parts, &d) {
                        Some(route) => json(&route_json(&d, &route, true)),
                        None => not_found(),
                    })
                }),
            )
            .route(
                "/requests/{id}",
                get(move |request: Request| {
                    let (parts, _) = request.into_parts();
                    std::future::ready(match timeline_id(&parts, &f) {
                        Some((route, kept)) => html(super::waterfall::page(&kept, &route.name, &base(&parts))),
                        None => not_found(),
                    })
                }),
            )
            .route(
                "/api/requests/{id}",
                get(move |request: Request| {
                    let (parts, _) = request.into_parts();
                    std::future::ready(match timeline_id(&parts, &g) {
                        Some((route, kept)) => json(&super::waterfall::json(&kept, &route.name)),
                        None => not_found(),
                    })
                }),
            )
            .route("/events", get(move || std::future::ready(events(Arc::clone(&e)).into_response())))
            .route("/assets/style.css", get(|| asset("text/css; charset=utf-8", include_str!("assets/style.css"))))
            .route("/assets/app.js", get(|| asset("text/javascript; charset=utf-8", include_str!("assets/app.js"))))
            .fallback(|| std::future::ready(not_found()))
            .layer(axum::middleware::from_fn_with_state(shared, guard))
    }
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// An `update` event whenever scopes ended since the last one, checked
/// every second; a comment every 15 quiet seconds keeps proxies from
/// closing the stream.
fn events(inner: Arc<Inner>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let last = inner.generation.load(Relaxed);
    let stream = futures_util::stream::unfold((inner, last), |(inner, last)| async move {
        for _ in 0..15 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = inner.generation.load(Relaxed);
            if now != last {
                return Some((Ok(Event::default().event("update").data(now.to_string())), (inner, now)));
            }
        }
        Some((Ok(Event::default().comment("")), (inner, last)))
    });
    Sse::new(stream)
}

fn route_json(inner: &Inner, route: &Route, detail: bool) -> serde_json::Value {
    use serde_json::json;
    let s = route.stats.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut figures = serde_json::Map::new();
    for &budget in Budget::ALL {
        let h = &s.figures[budget as usize];
        if h.count() == 0 {
            continue;
        }
        figures.insert(
            budget.event_field().to_owned(),
            json!({
                "p50": shown(budget, h.quantile(0.5)),
                "p95": shown(budget, h.quantile(0.95)),
                "p99": shown(budget, h.quantile(0.99)),
                "max": shown(budget, h.max()),
                "limit": s.limits.get(budget),
            }),
        );
    }
    let mut budgets = serde_json::Map::new();
    for &budget in Budget::ALL {
        let u = s.uses[budget as usize];
        let exceeded = s.violations[budget as usize];
        if u.count > 0 || exceeded > 0 {
            budgets.insert(
                budget.key().to_owned(),
                json!({
                    "limit": s.limits.get(budget),
                    "unit": budget.unit(),
                    "exceeded": exceeded,
                    "mean_use": u.sum as f64 / u.count.max(1) as f64 / 1000.0,
                    "max_use": u.max as f64 / 1000.0,
                }),
            );
        }
    }
    let [ok, exceeded, cancelled, panicked] = s.outcomes;
    let mut value = json!({
        "id": route.id,
        "name": &*route.name,
        "kind": route.kind.as_str(),
        "scopes": s.count,
        "outcomes": { "ok": ok, "exceeded": exceeded, "cancelled": cancelled, "panicked": panicked },
        "violation_rate": s.violation_rate(),
        "use_p99": (s.utilization.count() > 0).then(|| s.utilization.quantile(0.99) as f64 / 1000.0),
        "figures": figures,
        "budgets": budgets,
    });
    if detail {
        let statements: Vec<serde_json::Value> = s
            .statements_by_time()
            .iter()
            .map(|st| json!({ "fingerprint": &*st.fingerprint, "backend": st.backend, "count": st.count, "total_ms": st.total_ns as f64 / 1e6 }))
            .collect();
        let suspects: Vec<serde_json::Value> = s
            .suspects
            .iter()
            .map(|x| json!({ "fingerprint": x.fingerprint, "call_site": x.call_site, "scopes": x.scopes, "max_count": x.max_count }))
            .collect();
        let series: Vec<serde_json::Value> = s
            .series(inner.now_slot())
            .iter()
            .map(|slot| {
                slot.map_or(
                    serde_json::Value::Null,
                    |x| json!({ "scopes": x.count, "exceeded": x.violated, "max_use": f64::from(x.max_use) / 1000.0 }),
                )
            })
            .collect();
        let recent: Vec<serde_json::Value> = s
            .recent
            .iter()
            .map(|b| {
                json!({
                    "seconds_ago": super::route::age(b.at).as_secs(),
                    "outcome": b.outcome.as_str(),
                    "status": b.status,
                    "violations": b.violations.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "report": b.full.upgrade().map(|full| full.report.to_string()),
                })
            })
            .collect();
        value["statements"] = json!(statements);
        value["other_statements"] =
            json!({ "count": s.other_statements.0, "total_ms": s.other_statements.1 as f64 / 1e6 });
        value["n_plus_one"] = json!(suspects);
        value["series_10s"] = json!(series);
        value["recent"] = json!(recent);
        let kept: Vec<serde_json::Value> = s
            .timelines
            .all()
            .iter()
            .map(|k| {
                json!({
                    "id": k.id,
                    "kept_as": if k.worst() { "worst" } else { "sampled" },
                    "outcome": k.outcome.as_str(),
                    "elapsed_ms": k.timeline.elapsed().as_secs_f64() * 1e3,
                    "operations": k.timeline.entries().len() as u64 + k.timeline.omitted_entries(),
                    "duplicates": k.timeline.duplicates().len(),
                    "repeated_calls": k.timeline.repeated_calls().len(),
                })
            })
            .collect();
        value["timelines"] = json!(kept);
    }
    value
}

fn overview_json(inner: &Inner) -> serde_json::Value {
    let routes: Vec<serde_json::Value> = inner.all_routes().iter().map(|r| route_json(inner, r, false)).collect();
    let recent: Vec<serde_json::Value> = inner
        .recent()
        .iter()
        .map(|r| {
            serde_json::json!({
                "route": r.route,
                "seconds_ago": super::route::age(r.at).as_secs(),
                "outcome": r.report.outcome.as_str(),
                "violations": r.report.violations.iter().map(ToString::to_string).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({ "scopes": inner.generation.load(Relaxed), "routes": routes, "recent": recent })
}
