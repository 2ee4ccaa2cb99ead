//! What the layer adds to a response: the `Server-Timing` header, and the
//! problem responses it sends instead of the handler's.

use std::fmt::Write as _;
use std::mem::MaybeUninit;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Response, StatusCode, header};

use super::body::ZenBody;
use crate::tracker::budget::{Budget, Limits, Measure};
use crate::tracker::report::{Figures, Writes, json_string};
use crate::tracker::scope::Scope;

/// `queries;desc="4/5", db;dur=12.4;desc="budget 50ms", total;dur=48.1;desc="budget 200ms"`:
/// one entry per budget (its name in the budget table) that was used or is
/// limited, in the form browsers' developer tools show, with `total` last.
/// Written with integer arithmetic into a buffer on the stack, first a
/// short one: `format!`, float printing and zeroing a large buffer were
/// most of the layer's cost per request.
pub(super) fn server_timing(figures: &Figures, limits: &Limits) -> Option<HeaderValue> {
    write::<SHORT>(figures, limits).or_else(|| write_long(figures, limits))
}

/// The rare header past [`SHORT`], out of line: its buffer does not
/// enlarge the usual call's stack frame.
#[cold]
#[inline(never)]
fn write_long(figures: &Figures, limits: &Limits) -> Option<HeaderValue> {
    write::<LONGEST>(figures, limits)
}

/// The entries in header order: the budget table's, with `total` last.
const ORDER: [Budget; Budget::ALL.len()] = {
    let mut order = [Budget::Timeout; Budget::ALL.len()];
    let (mut i, mut j) = (0, 0);
    while i < Budget::ALL.len() {
        if !matches!(Budget::ALL[i], Budget::Timeout) {
            order[j] = Budget::ALL[i];
            j += 1;
        }
        i += 1;
    }
    order
};

/// The longest timing name [`NAMES`] holds.
const NAME: usize = 16;

/// Each budget's timing name (by `budget as usize`), padded to [`NAME`]
/// bytes: copied with one fixed-size move, then the length advanced by the
/// name's own. What makes the header's bytes valid without checking them
/// at run time: the names are visible ASCII, checked here when compiling.
const NAMES: [([u8; NAME], usize); Budget::ALL.len()] = {
    let mut names = [([0; NAME], 0); Budget::ALL.len()];
    let mut i = 0;
    while i < Budget::ALL.len() {
        let budget = Budget::ALL[i];
        let name = budget.timing_name().as_bytes();
        assert!(name.len() <= NAME, "a Server-Timing name fits its slot");
        let mut j = 0;
        while j < name.len() {
            assert!(name[j].is_ascii_graphic(), "a Server-Timing name must be visible ASCII");
            names[budget as usize].0[j] = name[j];
            j += 1;
        }
        names[budget as usize].1 = name.len();
        i += 1;
    }
    names
};

/// Fits the header of every budget at usual values (all nine limited, a
/// pool wait: about 300 bytes).
const SHORT: usize = 384;
/// Fits every budget at `u64::MAX`, and a name's padding past the end.
const LONGEST: usize = 1024 + NAME;

fn write<const N: usize>(figures: &Figures, limits: &Limits) -> Option<HeaderValue> {
    let mut v = Header::<N>::new();
    for budget in ORDER {
        let limit = limits.get(budget);
        let Some(used) = figures.used(budget) else { continue };
        if used == 0 && limit.is_none() && budget != Budget::Timeout {
            continue;
        }
        if v.len > 0 {
            v.text(", ");
        }
        v.name(budget);
        match budget.measure() {
            Measure::Millis => {
                v.text(";dur=").ms(used);
                if let Some(limit) = limit {
                    v.text(";desc=\"budget ").int(limit).text("ms\"");
                }
            }
            measure => {
                v.text(";desc=\"").of(measure.rounded(used), limit);
                if measure == Measure::KiB {
                    v.text(" KiB");
                }
                v.text("\"");
            }
        }
        if budget == Budget::DbTime && figures.wait_ns >= 1_000_000 {
            v.text(", db-wait;dur=").ms(figures.wait_ns).text(";desc=\"pool wait\"");
        }
    }
    if v.overflow {
        return None;
    }
    let bytes = Bytes::copy_from_slice(v.as_bytes());
    // SAFETY: every byte below the header's length is a budget's timing
    // name (visible ASCII, checked when compiling, above; a name's padding
    // lies past the length, and the next piece overwrites it), a piece of
    // text from this function or an ASCII digit: visible ASCII and spaces,
    // which a header value may hold (debug builds check it again, and a
    // test writes every budget at its largest).
    Some(unsafe { HeaderValue::from_maybe_shared_unchecked(bytes) })
}

/// `00` to `99`, for writing two digits at a time.
const PAIRS: [u8; 200] = {
    let mut pairs = [0; 200];
    let mut i = 0;
    while i < 100 {
        pairs[2 * i] = b'0' + (i / 10) as u8;
        pairs[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    pairs
};

/// The header's text, on the stack: copied once, at its exact length, into
/// the header value. The buffer is not zeroed first (that was a tenth of the
/// header's cost): every byte below `len` has been written.
struct Header<const N: usize> {
    buf: [MaybeUninit<u8>; N],
    len: usize,
    overflow: bool,
}

impl<const N: usize> Header<N> {
    fn new() -> Self {
        Header { buf: [MaybeUninit::uninit(); N], len: 0, overflow: false }
    }

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
                slot.write_copy_of_slice(b);
                self.len += b.len();
            }
            None => self.overflow = true,
        }
        self
    }

    /// A budget's timing name: one fixed-size copy of its padded slot.
    #[inline(always)]
    fn name(&mut self, budget: Budget) -> &mut Self {
        let (padded, len) = &NAMES[budget as usize];
        match self.buf.get_mut(self.len..self.len + NAME) {
            Some(slot) => {
                slot.write_copy_of_slice(padded);
                self.len += len;
            }
            None => self.overflow = true,
        }
        self
    }

    fn as_bytes(&self) -> &[u8] {
        // SAFETY: `len` only grows past bytes just written (`bytes`, `byte`,
        // `int` and `name` write their slot before moving it; `name` moves
        // it by no more than it wrote).
        unsafe { self.buf[..self.len].assume_init_ref() }
    }

    #[inline(always)]
    fn byte(&mut self, b: u8) -> &mut Self {
        match self.buf.get_mut(self.len) {
            Some(slot) => {
                slot.write(b);
                self.len += 1;
            }
            None => self.overflow = true,
        }
        self
    }

    /// Written in place, last digits first, two per division: no loop over
    /// a copy, no call to `memcpy` for a length known only at run time.
    fn int(&mut self, mut n: u64) -> &mut Self {
        // Most figures are a digit or two: a count, a time under 10 ms.
        if n < 10 {
            return self.byte(b'0' + n as u8);
        }
        let digits = n.checked_ilog10().unwrap_or(0) as usize + 1;
        let Some(slot) = self.buf.get_mut(self.len..self.len + digits) else {
            self.overflow = true;
            return self;
        };
        let mut end = slot.len();
        while end >= 2 {
            let pair = (n % 100) as usize * 2;
            n /= 100;
            slot[end - 2].write(PAIRS[pair]);
            slot[end - 1].write(PAIRS[pair + 1]);
            end -= 2;
        }
        if end == 1 {
            slot[0].write(b'0' + n as u8);
        }
        self.len += digits;
        self
    }

    /// Milliseconds with one decimal, rounded to nearest, from nanoseconds.
    fn ms(&mut self, nanos: u64) -> &mut Self {
        // In u64: a u128 division is a call, and the slowest part of the header.
        let tenths = nanos.saturating_add(50_000) / 100_000;
        self.int(tenths / 10).byte(b'.').byte(b'0' + (tenths % 10) as u8)
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

/// `503` with an RFC 9457 problem document naming the budget, with what
/// was used as the request's report and `Server-Timing` say it, and what
/// the request's writes did (`writes`: `none`, `committed`, `unknown`).
pub(super) fn exceeded<B>(scope: &Scope, budget: Budget, figures: &Figures) -> Response<ZenBody<B>> {
    let limit = scope.limit(budget).unwrap_or(0);
    let used = figures.used_in_unit(budget).unwrap_or(0);
    let mut body = String::with_capacity(320);
    body.push_str("{\"type\":");
    json_string(&mut body, BUDGET_EXCEEDED);
    body.push_str(",\"title\":\"Budget exceeded\",\"status\":503,\"detail\":");
    json_string(&mut body, &format!("{} used {used} {} of its {budget} = {limit}", scope.name, budget.unit()));
    body.push_str(",\"route\":");
    json_string(&mut body, &scope.name);
    let _ = write!(
        body,
        ",\"budget\":\"{budget}\",\"limit\":{limit},\"used\":{used},\"unit\":\"{}\",\"writes\":\"{}\"}}",
        budget.unit(),
        figures.writes()
    );
    problem(StatusCode::SERVICE_UNAVAILABLE, body)
}

/// `500` for a handler that panicked; what it said stays in the logs.
pub(super) fn panicked<B>(route: &str, figures: &Figures) -> Response<ZenBody<B>> {
    let mut body = String::from(
        "{\"type\":\"about:blank\",\"title\":\"Internal Server Error\",\"status\":500,\"detail\":\"the handler panicked\",\"route\":",
    );
    json_string(&mut body, route);
    let _ = write!(body, ",\"writes\":\"{}\"}}", figures.writes());
    problem(StatusCode::INTERNAL_SERVER_ERROR, body)
}

/// gRPC's statuses zen answers with.
const DEADLINE_EXCEEDED: &str = "4";
const RESOURCE_EXHAUSTED: &str = "8";
const INTERNAL: &str = "13";

/// What a request's writes did, for a gRPC client: `none`, `committed` or
/// `unknown`, as the problem document's `writes`.
const WRITES: HeaderName = HeaderName::from_static("zen-writes");

/// A gRPC request stopped by its budget: HTTP `200` with no message and
/// `grpc-status` `DEADLINE_EXCEEDED` for the deadline (`timeout_ms`),
/// `RESOURCE_EXHAUSTED` for any other budget, and a `grpc-message` naming
/// it, as gRPC's "trailers-only" answer; `zen-writes` says what the
/// request's writes did.
pub(super) fn grpc_exceeded<B>(scope: &Scope, budget: Budget, figures: &Figures) -> Response<ZenBody<B>> {
    let limit = scope.limit(budget).unwrap_or(0);
    let used = figures.used_in_unit(budget).unwrap_or(0);
    let code = if budget == Budget::Timeout { DEADLINE_EXCEEDED } else { RESOURCE_EXHAUSTED };
    let message = format!("{} used {used} {} of its {budget} = {limit}", scope.name, budget.unit());
    grpc_status(code, &message, figures)
}

/// A gRPC request whose handler panicked: `INTERNAL`.
pub(super) fn grpc_panicked<B>(figures: &Figures) -> Response<ZenBody<B>> {
    grpc_status(INTERNAL, "the handler panicked", figures)
}

fn grpc_status<B>(code: &'static str, message: &str, figures: &Figures) -> Response<ZenBody<B>> {
    // No body: the headers end the stream, as gRPC's trailers-only answer.
    let mut response = Response::new(ZenBody::empty());
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    grpc_status_into(headers, code, message, figures.writes());
    response
}

/// The trailers that end a gRPC response stream cut at `max_response_kb`:
/// `RESOURCE_EXHAUSTED`, naming the budget.
pub(super) fn grpc_cut(message: &str, writes: Writes) -> http::HeaderMap {
    let mut trailers = http::HeaderMap::new();
    grpc_status_into(&mut trailers, RESOURCE_EXHAUSTED, message, writes);
    trailers
}

fn grpc_status_into(headers: &mut http::HeaderMap, code: &'static str, message: &str, writes: Writes) {
    headers.insert(HeaderName::from_static("grpc-status"), HeaderValue::from_static(code));
    // gRPC's percent-encoding: every byte outside printable ASCII, and `%`.
    let mut encoded = String::with_capacity(message.len());
    for b in message.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            encoded.push(char::from(b));
        } else {
            let _ = write!(encoded, "%{b:02X}");
        }
    }
    if let Ok(value) = HeaderValue::from_str(&encoded) {
        headers.insert(HeaderName::from_static("grpc-message"), value);
    }
    headers.insert(WRITES, HeaderValue::from_static(writes.as_str()));
}

fn problem<B>(status: StatusCode, body: String) -> Response<ZenBody<B>> {
    let mut response = Response::new(ZenBody::full(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::json_string;

    #[test]
    fn milliseconds_have_one_decimal_rounded_to_nearest() {
        let ms = |nanos: u64| {
            let mut h = super::Header::<{ super::SHORT }>::new();
            h.ms(nanos);
            String::from_utf8(h.as_bytes().to_vec()).unwrap()
        };
        assert_eq!(ms(0), "0.0");
        assert_eq!(ms(49_999), "0.0");
        assert_eq!(ms(50_000), "0.1");
        assert_eq!(ms(12_449_999), "12.4");
        assert_eq!(ms(12_450_000), "12.5");
        assert_eq!(ms(1_999_950_000), "2000.0");
        let int = |n: u64| {
            let mut h = super::Header::<24>::new();
            h.int(n);
            String::from_utf8(h.as_bytes().to_vec()).unwrap()
        };
        for n in [0, 7, 9, 10, 11, 99, 100, 101, 1_001, 12_345, 1_000_000, 10_000_001, u64::MAX - 1, u64::MAX] {
            assert_eq!(int(n), n.to_string());
        }
        let mut full = super::Header::<4>::new();
        full.text("ab").int(123);
        assert!(full.overflow && full.len == 2, "a number that does not fit is not cut");
    }

    #[test]
    fn the_largest_figures_still_make_a_valid_header() {
        use crate::tracker::budget::{Budget, Limits};
        use crate::tracker::report::{Figures, Memory};
        let max = u64::MAX;
        let limits = Budget::ALL.iter().fold(Limits::NONE, |l, b| match b.key() {
            "max_queries" => l.max_queries(max),
            "max_db_ms" => l.max_db_ms(max),
            "max_mem_kb" => l.max_mem_kb(max),
            "timeout_ms" => l.timeout_ms(max),
            "max_http_calls" => l.max_http_calls(max),
            "max_http_ms" => l.max_http_ms(max),
            "max_poll_ms" => l.max_poll_ms(max),
            "max_rows" => l.max_rows(max),
            "max_response_kb" => l.max_response_kb(max),
            other => panic!("a budget this test does not know: {other}"),
        });
        let figures = Figures {
            elapsed_ns: max,
            queries: max,
            refused_queries: max / 2,
            db_ns: max,
            wait_ns: max,
            rows: max,
            http_calls: max,
            http_ns: max,
            memory: Some(Memory { allocated: max, peak: max, retained: max }),
            longest_poll_ns: max,
            response_bytes: Some(max),
            ..Figures::default()
        };
        let header = super::server_timing(&figures, &limits).expect("fits in the buffer");
        let text = header.to_str().unwrap();
        assert_eq!(text.matches('"').count() % 2, 0, "{text}");
        assert!(text.ends_with(&format!("budget {max}ms\"")), "{text}");
        for budget in Budget::ALL {
            assert!(text.contains(budget.timing_name()), "{budget} missing from {text}");
        }
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut out = String::new();
        json_string(&mut out, "GET /a\"b\\c\n{d}");
        assert_eq!(out, r#""GET /a\"b\\c\u000a{d}""#);
    }
}
