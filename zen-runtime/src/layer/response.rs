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
use crate::scope::Figures;

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

/// `db;dur=12.4;desc="4/5 queries", total;dur=48.1;desc="budget 200ms"`:
/// each figure and its limit, in the form browsers' developer tools show.
/// Written with integer arithmetic: `format!` and float printing were most
/// of the layer's cost per request.
pub(super) fn server_timing(report: &Figures, elapsed: Duration) -> Option<HeaderValue> {
    let limits = &report.limits;
    let mut v = Header { buf: [0; 512], len: 0, overflow: false };
    v.text("db;dur=").ms(report.db_time).text(";desc=\"").of(report.queries, limits.get(Budget::Queries));
    v.text(" queries");
    if let Some(limit) = limits.get(Budget::DbTime) {
        v.text(", budget ").int(limit).text("ms");
    }
    v.text("\"");
    if report.db_wait >= Duration::from_millis(1) {
        v.text(", db-wait;dur=").ms(report.db_wait).text(";desc=\"pool wait\"");
    }
    if report.http_calls > 0 || limits.get(Budget::HttpCalls).is_some() || limits.get(Budget::HttpTime).is_some() {
        v.text(", http;dur=").ms(report.http_time).text(";desc=\"");
        v.of(report.http_calls, limits.get(Budget::HttpCalls)).text(" calls");
        if let Some(limit) = limits.get(Budget::HttpTime) {
            v.text(", budget ").int(limit).text("ms");
        }
        v.text("\"");
    }
    if let Some(memory) = &report.memory {
        v.text(", mem;desc=\"peak ").of(memory.peak.div_ceil(1024), limits.get(Budget::Memory)).text(" KiB\"");
    }
    v.text(", total;dur=").ms(elapsed);
    if let Some(limit) = limits.get(Budget::Timeout) {
        v.text(";desc=\"budget ").int(limit).text("ms\"");
    }
    // Past 512 bytes (only with absurd limits such as `u64::MAX`), no header
    // rather than a cut one.
    if v.overflow {
        return None;
    }
    HeaderValue::from_bytes(v.as_bytes()).ok()
}

/// The header's text, on the stack: copied once, at its exact length, into
/// the header value.
struct Header {
    buf: [u8; 512],
    len: usize,
    overflow: bool,
}

impl Header {
    #[inline(always)]
    fn text(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }

    // Inlined, each piece's length is a constant and the copy a few moves,
    // not a call to `memcpy`.
    #[inline(always)]
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        match self.buf.get_mut(self.len..self.len + b.len()) {
            Some(slot) => {
                slot.copy_from_slice(b);
                self.len += b.len();
            }
            None => self.overflow = true,
        }
        self
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn int(&mut self, mut n: u64) -> &mut Self {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.bytes(&digits[i..])
    }

    /// Milliseconds with one decimal, rounded to nearest.
    fn ms(&mut self, d: Duration) -> &mut Self {
        // In u64: a u128 division is a call, and the slowest part of the header.
        let nanos = d.as_secs().saturating_mul(1_000_000_000).saturating_add(u64::from(d.subsec_nanos()));
        let tenths = nanos.saturating_add(50_000) / 100_000;
        self.int(tenths / 10).text(".").int(tenths % 10)
    }

    /// `used/limit`, or `used` without a limit.
    fn of(&mut self, used: u64, limit: Option<u64>) -> &mut Self {
        self.int(used);
        if let Some(limit) = limit {
            self.text("/").int(limit);
        }
        self
    }
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
    fn milliseconds_have_one_decimal_rounded_to_nearest() {
        use std::time::Duration;
        let ms = |nanos: u64| {
            let mut h = super::Header { buf: [0; 512], len: 0, overflow: false };
            h.ms(Duration::from_nanos(nanos));
            String::from_utf8(h.as_bytes().to_vec()).unwrap()
        };
        assert_eq!(ms(0), "0.0");
        assert_eq!(ms(49_999), "0.0");
        assert_eq!(ms(50_000), "0.1");
        assert_eq!(ms(12_449_999), "12.4");
        assert_eq!(ms(12_450_000), "12.5");
        assert_eq!(ms(1_999_950_000), "2000.0");
    }

    #[test]
    fn the_largest_figures_still_make_a_valid_header() {
        use std::time::Duration;

        use crate::budget::Limits;
        use crate::report::Memory;
        use crate::scope::Figures;
        let max = u64::MAX;
        let limits = Limits::NONE
            .max_queries(max)
            .max_db_ms(max)
            .max_mem_kb(max)
            .timeout_ms(max)
            .max_http_calls(max)
            .max_http_ms(max);
        let long = Duration::MAX;
        let figures = Figures {
            queries: max,
            db_time: long,
            db_wait: long,
            http_calls: max,
            http_time: long,
            memory: Some(Memory { allocated: max, peak: max, retained: max }),
            limits,
        };
        let header = super::server_timing(&figures, long).expect("fits in the buffer");
        let text = header.to_str().unwrap();
        assert_eq!(text.matches('"').count() % 2, 0, "{text}");
        assert!(text.ends_with(&format!("budget {max}ms\"")), "{text}");
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut out = String::new();
        json_string(&mut out, "GET /a\"b\\c\n{d}");
        assert_eq!(out, r#""GET /a\"b\\c\u000a{d}""#);
    }
}
