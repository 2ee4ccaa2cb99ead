//! Budgets across services (features `tower` or `http`): the time a caller
//! will still wait comes in with a request and shortens its budget, and the
//! time left goes out with every call the request makes.
//!
//! A front door with `timeout_ms = 300` calls a service that calls a third.
//! Without this, each starts its own budget (2 s, say) and keeps working
//! for a caller that gave up long ago. With it:
//!
//! 1. the front's call carries what it has left, less a margin for the
//!    network (`x-request-timeout-ms: 290`);
//! 2. the second service's layer reads it: its request's deadline becomes
//!    the earlier of its own `timeout_ms` and 290 ms from arrival (a caller
//!    can shorten a budget, never lengthen it), and its report says so
//!    ([`Report::caller_time_left`](crate::Report::caller_time_left));
//! 3. its own call to the third, a gRPC service, carries what is left then
//!    in `grpc-timeout`, which the third's layer (or tonic itself) honours.
//!
//! Only durations travel, never instants: two machines' clocks differ.
//!
//! ```
//! # #[cfg(all(feature = "axum", feature = "http"))] {
//! use std::time::Duration;
//! use zen_runtime::deadline::Deadline;
//! use zen_runtime::layer::ZenLayer;
//!
//! // In: trust this header from the callers in front (and `grpc-timeout`
//! // on gRPC requests, always).
//! let layer = ZenLayer::new().deadline(Deadline::header("x-request-timeout-ms"));
//! // Out: send the time left, less 10 ms, and start no call with less than 5 ms left.
//! let client = zen_runtime::http::Client::builder()
//!     .timeout(Duration::from_secs(2))
//!     .deadline(Deadline::header("x-request-timeout-ms").margin(Duration::from_millis(10)).floor(Duration::from_millis(5)))
//!     .build();
//! # let _ = (layer, client); }
//! ```
//!
//! # In
//!
//! [`ZenLayer::deadline`](crate::layer::ZenLayer::deadline) names the
//! header the layer trusts, in whole milliseconds (`x-request-timeout-ms`,
//! or Envoy's `x-envoy-expected-rq-timeout-ms`); a gRPC request's
//! `grpc-timeout` is always read, and a caller that sends both is held to
//! the shorter. A value that is absent, malformed, zero
//! or longer than the request's own budget changes nothing (a malformed
//! one is a `DEBUG` event, never an error): the deadline is the earlier of
//! the two.
//!
//! # Out
//!
//! [`ClientBuilder::deadline`](crate::http::ClientBuilder::deadline),
//! [`Middleware::deadline`](crate::http::Middleware::deadline) (feature
//! `reqwest-middleware`) and [`DeadlineLayer`] (feature `tower`: any tower
//! HTTP client, such as a tonic `Channel`) write the time left in the
//! request's enforced budget ([`instrument::time_limit`](crate::instrument::time_limit)
//! for calls; for zen's client, no more than the call's own timeout), less
//! the [margin](Deadline::margin), never more than a value the request
//! already carries (tonic's `Request::set_timeout`, a header of yours), and
//! do not start a call when less than the [floor](Deadline::floor) is left:
//! it is refused as a spent `max_http_ms` or `timeout_ms` refuses it, and
//! counted in `refused_http_calls`. Outside an enforced budget nothing is written: in
//! `observe` zen cuts nothing, and a peer need not hurry for it.
//!
//! Each database query is already bounded by the time left (see
//! [`db`](crate::db) and [`instrument`](crate::instrument)): a deadline
//! that came from the caller bounds them too.

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};

/// How the time left travels: which header, and how much to keep back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deadline {
    carrier: Carrier,
    margin: Duration,
    floor: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Carrier {
    /// Whole milliseconds in a header of the application's.
    Millis(HeaderName),
    /// gRPC's `grpc-timeout`.
    Grpc,
}

/// The header gRPC carries the time left in.
static GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

impl Deadline {
    /// The time left in whole milliseconds, in the header `name`
    /// (lowercase, such as `x-request-timeout-ms`); margin and floor 5 ms.
    ///
    /// # Panics
    /// When `name` is not a valid lowercase header name: a mistake in the
    /// program, found the first time it runs.
    #[must_use]
    pub fn header(name: &'static str) -> Deadline {
        Deadline::with(Carrier::Millis(HeaderName::from_static(name)))
    }

    /// The time left in gRPC's `grpc-timeout`; margin and floor 5 ms.
    #[must_use]
    pub fn grpc() -> Deadline {
        Deadline::with(Carrier::Grpc)
    }

    fn with(carrier: Carrier) -> Deadline {
        Deadline { carrier, margin: Duration::from_millis(5), floor: Duration::from_millis(5) }
    }

    /// Kept back from the time left that goes out: the network's share,
    /// and the caller's own work on the answer.
    #[must_use]
    pub fn margin(mut self, margin: Duration) -> Deadline {
        self.margin = margin;
        self
    }

    /// A call is not started with less than this left (after the margin).
    #[must_use]
    pub fn floor(mut self, floor: Duration) -> Deadline {
        self.floor = floor;
        self
    }

    /// The header it travels in.
    #[must_use]
    pub fn header_name(&self) -> &HeaderName {
        match &self.carrier {
            Carrier::Millis(name) => name,
            Carrier::Grpc => &GRPC_TIMEOUT,
        }
    }

    /// What a caller sent in `headers`: `None` when absent, malformed or
    /// zero (a malformed value is a `DEBUG` event).
    #[cfg_attr(not(feature = "tower"), allow(dead_code, reason = "the layer reads it"))]
    pub(crate) fn read(&self, headers: &HeaderMap) -> Option<Duration> {
        let value = headers.get(self.header_name())?;
        let left = self.parse(value.as_bytes());
        if left.is_none() {
            tracing::debug!(header = %self.header_name(), "zen: a deadline header that is not a duration; ignored");
        }
        left.filter(|left| !left.is_zero())
    }

    /// Sends `left`, the time left for `call` (less the margin), in the
    /// call's `headers`, or refuses the call ([`Deadline::floor`]).
    pub(crate) fn send(
        &self,
        call: &mut crate::call::Call,
        left: Duration,
        headers: &mut HeaderMap,
    ) -> Result<(), crate::BudgetExceeded> {
        self.write(headers, left).map_err(|()| call.refuse())
    }

    /// Writes the time left in `headers`: `left` less the margin, or the
    /// value already there if that is less (the application's own, such as
    /// tonic's `Request::set_timeout`: never lengthened); `Err`, writing
    /// nothing, when that is below the floor (or rounds to nothing).
    pub(crate) fn write(&self, headers: &mut HeaderMap, left: Duration) -> Result<(), ()> {
        let sent = left.saturating_sub(self.margin);
        // The application's own shorter value stays, whatever the floor:
        // the budget has more than enough for it.
        if headers.get(self.header_name()).and_then(|v| self.parse(v.as_bytes())).is_some_and(|own| own <= sent) {
            return Ok(());
        }
        let nothing = match self.carrier {
            Carrier::Millis(_) => sent.as_millis() == 0,
            Carrier::Grpc => sent.is_zero(),
        };
        if sent < self.floor || nothing {
            return Err(());
        }
        let value = match self.carrier {
            Carrier::Millis(_) => HeaderValue::from(u64::try_from(sent.as_millis()).unwrap_or(u64::MAX)),
            Carrier::Grpc => grpc_timeout(sent),
        };
        headers.insert(self.header_name().clone(), value);
        Ok(())
    }

    fn parse(&self, value: &[u8]) -> Option<Duration> {
        match self.carrier {
            Carrier::Millis(_) => parse_millis(value),
            Carrier::Grpc => parse_grpc_timeout(value),
        }
    }
}

/// Whole milliseconds: ASCII digits only, at most 12 of them (31 years).
fn parse_millis(value: &[u8]) -> Option<Duration> {
    if value.is_empty() || value.len() > 12 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok().map(Duration::from_millis)
}

/// gRPC's `TimeoutValue TimeoutUnit`: at most 8 ASCII digits, then one of
/// `H M S m u n`.
fn parse_grpc_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// `left` as `grpc-timeout`: the finest unit whose count fits in 8 digits,
/// rounded down (the peer must never be given more than is left).
fn grpc_timeout(left: Duration) -> HeaderValue {
    const MAX: u128 = 99_999_999;
    let nanos = left.as_nanos();
    let (count, unit) = [(1, 'n'), (1_000, 'u'), (1_000_000, 'm'), (1_000_000_000, 'S'), (60_000_000_000, 'M')]
        .into_iter()
        .map(|(per, unit)| (nanos / per, unit))
        .find(|(count, _)| *count <= MAX)
        .unwrap_or((MAX.min(nanos / 3_600_000_000_000), 'H'));
    HeaderValue::from_str(&format!("{count}{unit}")).unwrap_or_else(|_| HeaderValue::from_static("99999999H"))
}

/// A tower layer for outgoing HTTP requests (feature `tower`), such as a
/// tonic client's `Channel`: each request is an external call of the
/// current scope (counted and timed per host until its response body ends,
/// as zen's own client does; refused by a spent budget in `enforce`, and
/// cut at the time left, body included), and carries the time left in
/// `deadline`'s header; with less than its floor left it is not sent. A
/// gRPC status (in a trailers-only answer, or in the trailers) says
/// whether the call failed, and `zen-writes`, from a peer under zen's
/// layer, what it wrote. A call other than gRPC is named on the timeline
/// by the template of its path: put the one your code knows in the
/// request's extensions as a
/// [`CallTemplate`](crate::instrument::CallTemplate), so that no word of
/// the path names it.
///
/// ```
/// # #[cfg(feature = "tower")] {
/// use zen_runtime::deadline::{Deadline, DeadlineLayer};
///
/// // let channel = tonic::transport::Channel::from_static("http://[::1]:50051").connect_lazy();
/// // let channel = tower::ServiceBuilder::new().layer(DeadlineLayer::new(Deadline::grpc())).service(channel);
/// // let client = MyServiceClient::new(channel);
/// let layer = DeadlineLayer::new(Deadline::grpc());
/// # let _ = layer; }
/// ```
#[cfg(feature = "tower")]
#[derive(Clone, Debug)]
pub struct DeadlineLayer {
    deadline: Deadline,
    host: std::sync::Arc<str>,
}

#[cfg(feature = "tower")]
impl DeadlineLayer {
    /// Sends the time left as `deadline` says.
    #[must_use]
    pub fn new(deadline: Deadline) -> DeadlineLayer {
        DeadlineLayer { deadline, host: std::sync::Arc::from("(unnamed peer)") }
    }

    /// The host its calls are counted under when a request's URI has none
    /// (a tonic client made with `new(channel)` sends the path alone):
    /// the peer's name, such as `billing`.
    #[must_use]
    pub fn host(mut self, host: &str) -> DeadlineLayer {
        self.host = std::sync::Arc::from(host);
        self
    }
}

#[cfg(feature = "tower")]
impl<S> tower_layer::Layer<S> for DeadlineLayer {
    type Service = DeadlineService<S>;

    fn layer(&self, inner: S) -> DeadlineService<S> {
        DeadlineService { inner, deadline: self.deadline.clone(), host: std::sync::Arc::clone(&self.host) }
    }
}

/// The service [`DeadlineLayer`] wraps around a client.
#[cfg(feature = "tower")]
#[derive(Clone, Debug)]
pub struct DeadlineService<S> {
    inner: S,
    deadline: Deadline,
    host: std::sync::Arc<str>,
}

/// What [`DeadlineService`] fails with: the client's error, or a
/// [`BudgetExceeded`](crate::BudgetExceeded) that refused or cut the call.
#[cfg(feature = "tower")]
pub use crate::call::BoxError;

#[cfg(feature = "tower")]
impl<S, B, R> tower_service::Service<http::Request<B>> for DeadlineService<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<R>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    R: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    R::Error: Into<BoxError>,
{
    type Response = http::Response<CallBody<R>>;
    type Error = BoxError;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let op = match crate::instrument::call(request.uri().host().unwrap_or(&self.host)) {
            Ok(op) if crate::call::is_grpc(request.headers()) => op.grpc(request.uri().path()),
            Ok(op) => crate::call::named(
                op,
                request.method().as_str(),
                request.uri().path(),
                request.extensions().get::<crate::instrument::CallTemplate>(),
            ),
            Err(refused) => return Box::pin(std::future::ready(Err(refused.into()))),
        };
        let mut call = crate::call::Call::new(op, request.method());
        let now = tokio::time::Instant::now();
        let left = call.time_limit();
        if let Some(left) = left
            && let Err(refused) = self.deadline.send(&mut call, left, request.headers_mut())
        {
            return Box::pin(std::future::ready(Err(refused.into())));
        }
        let deadline = left.map(|left| now + left);
        let response = self.inner.call(request);
        Box::pin(async move {
            let result = match deadline {
                Some(deadline) => match tokio::time::timeout_at(deadline, response).await {
                    Ok(result) => result,
                    Err(_elapsed) => return Err(call.expire().expect("a call in flight").into()),
                },
                None => response.await,
            };
            let response = match result {
                Ok(response) => response,
                Err(e) => return Err(e.into()),
            };
            // A trailers-only gRPC answer says how it went in its head; a
            // gRPC stream, in its trailers (unknown until they come); any
            // other, by its status: a 4xx did nothing, a 5xx may have done
            // part.
            let headers = response.headers();
            let grpc = crate::call::is_grpc(headers);
            match crate::call::grpc_answer(headers) {
                Some(answer) => (call.ok, call.written) = answer,
                None if grpc => (call.ok, call.written) = (response.status().is_success(), Writes::Unknown),
                None => call.answered(response.status(), false),
            }
            Ok(response.map(|body| CallBody { inner: crate::call::Timed::new(body, call, deadline, grpc) }))
        })
    }
}

#[cfg(feature = "tower")]
use crate::report::Writes;

#[cfg(feature = "tower")]
pin_project_lite::pin_project! {
    /// The body of a response through [`DeadlineService`]: it carries the
    /// call, which lasts until the body ends (or fails, or is dropped), is
    /// cut at the time left in `enforce`, and takes a gRPC status from the
    /// trailers.
    pub struct CallBody<R> {
        #[pin]
        inner: crate::call::Timed<R>,
    }
}

#[cfg(feature = "tower")]
impl<R> std::fmt::Debug for CallBody<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallBody").finish_non_exhaustive()
    }
}

#[cfg(feature = "tower")]
impl<R> http_body::Body for CallBody<R>
where
    R: http_body::Body<Data = bytes::Bytes>,
    R::Error: Into<BoxError>,
{
    type Data = bytes::Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, BoxError>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::{HeaderMap, HeaderValue};

    use super::{Deadline, grpc_timeout, parse_grpc_timeout, parse_millis};

    #[test]
    fn grpc_timeouts_read_and_write_in_the_finest_unit_that_fits() {
        assert_eq!(parse_grpc_timeout(b"250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout(b"3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse_grpc_timeout(b"1H"), Some(Duration::from_secs(3600)));
        for bad in [&b""[..], b"m", b"12", b"123456789m", b"-1m", b"1.5S", b"10x", b" 1m"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
        assert_eq!(grpc_timeout(Duration::from_millis(295)), "295000u");
        assert_eq!(grpc_timeout(Duration::from_secs(2)), "2000000u");
        assert_eq!(grpc_timeout(Duration::from_micros(123_456_789)), "123456m", "rounded down, never up");
        assert_eq!(grpc_timeout(Duration::from_secs(200_000_000)), "3333333M");
        let back = parse_grpc_timeout(grpc_timeout(Duration::from_nanos(299_999_999_999)).as_bytes()).unwrap();
        assert!(back <= Duration::from_nanos(299_999_999_999));
    }

    #[test]
    fn milliseconds_are_whole_digits_and_the_floor_refuses() {
        assert_eq!(parse_millis(b"300"), Some(Duration::from_millis(300)));
        for bad in [&b""[..], b"3e2", b"-300", b"300ms", b"1.5", b"9999999999999"] {
            assert_eq!(parse_millis(bad), None, "{bad:?}");
        }
        let d = Deadline::header("x-request-timeout-ms").margin(Duration::from_millis(10));
        let written = |d: &Deadline, headers: &mut HeaderMap, left| d.write(headers, left).map(|()| headers.clone());
        let mut headers = HeaderMap::new();
        assert_eq!(written(&d, &mut headers, Duration::from_millis(295)).unwrap()["x-request-timeout-ms"], "285");
        assert_eq!(d.write(&mut HeaderMap::new(), Duration::from_millis(14)), Err(()), "4 ms is below the 5 ms floor");
        // A shorter value of the application's own stays; a longer one is replaced.
        headers.insert("x-request-timeout-ms", HeaderValue::from_static("50"));
        assert_eq!(written(&d, &mut headers, Duration::from_millis(295)).unwrap()["x-request-timeout-ms"], "50");
        headers.insert("x-request-timeout-ms", HeaderValue::from_static("3"));
        assert_eq!(
            written(&d, &mut headers, Duration::from_millis(295)).unwrap()["x-request-timeout-ms"],
            "3",
            "below the floor, but the application's own"
        );
        headers.insert("x-request-timeout-ms", HeaderValue::from_static("900"));
        assert_eq!(written(&d, &mut headers, Duration::from_millis(295)).unwrap()["x-request-timeout-ms"], "285");
        // Less than a millisecond is nothing to a header in milliseconds.
        let no_floor = d.clone().margin(Duration::ZERO).floor(Duration::ZERO);
        assert_eq!(no_floor.write(&mut HeaderMap::new(), Duration::from_micros(900)), Err(()));
        let grpc = Deadline::grpc().margin(Duration::ZERO);
        assert_eq!(
            written(&grpc, &mut HeaderMap::new(), Duration::from_millis(7)).unwrap()["grpc-timeout"],
            "7000000n"
        );
    }
}
