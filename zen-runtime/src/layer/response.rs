//! What the layer adds to a response: the `Server-Timing` header, and the
//! problem responses it sends instead of the handler's.

use std::fmt::Write as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body::{Body, Frame, SizeHint};

use crate::budget::Budget;
use crate::error::BudgetExceeded;
use crate::report::Report;

pin_project_lite::pin_project! {
    /// The body of a response that passed through the layer: the handler's,
    /// or the layer's own problem document.
    #[derive(Debug)]
    pub struct ZenBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Full { data: Option<Bytes> },
    }
}

impl<B> ZenBody<B> {
    pub(super) fn inner(body: B) -> Self {
        ZenBody { kind: Kind::Inner { body } }
    }

    fn full(data: String) -> Self {
        ZenBody { kind: Kind::Full { data: Some(Bytes::from(data)) } }
    }
}

impl<B: Body<Data = Bytes>> Body for ZenBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Full { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Full { data } => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `db;dur=12.4;desc="4/5 queries", total;dur=48.1;desc="budget 200ms"`:
/// each figure and its limit, in the form browsers' developer tools show.
pub(super) fn server_timing(report: &Report) -> Option<HeaderValue> {
    let limits = &report.limits;
    let of = |used: u64, budget: Budget| match limits.get(budget) {
        Some(limit) => format!("{used}/{limit}"),
        None => used.to_string(),
    };
    let mut v = String::with_capacity(160);
    let _ = write!(v, "db;dur={:.1};desc=\"{} queries", ms(report.db_time), of(report.queries, Budget::Queries));
    if let Some(limit) = limits.get(Budget::DbTime) {
        let _ = write!(v, ", budget {limit}ms");
    }
    v.push('"');
    if report.db_wait >= Duration::from_millis(1) {
        let _ = write!(v, ", db-wait;dur={:.1};desc=\"pool wait\"", ms(report.db_wait));
    }
    if report.http_calls > 0 || limits.get(Budget::HttpCalls).is_some() || limits.get(Budget::HttpTime).is_some() {
        let _ = write!(
            v,
            ", http;dur={:.1};desc=\"{} calls",
            ms(report.http_time),
            of(report.http_calls, Budget::HttpCalls)
        );
        if let Some(limit) = limits.get(Budget::HttpTime) {
            let _ = write!(v, ", budget {limit}ms");
        }
        v.push('"');
    }
    if let Some(memory) = &report.memory {
        let _ = write!(v, ", mem;desc=\"peak {} KiB\"", of(memory.peak.div_ceil(1024), Budget::Memory));
    }
    let _ = write!(v, ", total;dur={:.1}", ms(report.elapsed));
    if let Some(limit) = limits.get(Budget::Timeout) {
        let _ = write!(v, ";desc=\"budget {limit}ms\"");
    }
    HeaderValue::try_from(v).ok()
}

/// Where the problem types are described.
const BUDGET_EXCEEDED: &str = "https://github.com/zen-rs/zen#when-a-budget-is-exceeded";

/// `503` with an RFC 9457 problem document naming the budget.
pub(super) fn exceeded<B>(e: &BudgetExceeded) -> Response<ZenBody<B>> {
    let budget = e.budget();
    let mut body = String::with_capacity(320);
    body.push_str("{\"type\":");
    json_string(&mut body, BUDGET_EXCEEDED);
    body.push_str(",\"title\":\"Budget exceeded\",\"status\":503,\"detail\":");
    json_string(
        &mut body,
        &format!("{} used {} {} of its {} = {}", e.scope(), e.used(), budget.unit(), budget.key(), e.limit()),
    );
    body.push_str(",\"route\":");
    json_string(&mut body, e.scope());
    let _ = write!(
        body,
        ",\"budget\":\"{}\",\"limit\":{},\"used\":{},\"unit\":\"{}\"}}",
        budget.key(),
        e.limit(),
        e.used(),
        budget.unit()
    );
    problem(StatusCode::SERVICE_UNAVAILABLE, body)
}

/// `500` for a handler that panicked; what it said stays in the logs.
pub(super) fn panicked<B>(route: &str) -> Response<ZenBody<B>> {
    let mut body = String::from(
        "{\"type\":\"about:blank\",\"title\":\"Internal Server Error\",\"status\":500,\"detail\":\"the handler panicked\",\"route\":",
    );
    json_string(&mut body, route);
    body.push('}');
    problem(StatusCode::INTERNAL_SERVER_ERROR, body)
}

fn problem<B>(status: StatusCode, body: String) -> Response<ZenBody<B>> {
    let mut response = Response::new(ZenBody::full(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::json_string;

    #[test]
    fn json_strings_are_escaped() {
        let mut out = String::new();
        json_string(&mut out, "GET /a\"b\\c\n{d}");
        assert_eq!(out, r#""GET /a\"b\\c\u000a{d}""#);
    }
}
