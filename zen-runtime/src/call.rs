//! An external call in progress, and the response body that carries it:
//! a call lasts until its response body is read (zen's HTTP client, its
//! middleware, and the deadline module's `DeadlineLayer`).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::tracker::instrument::{CallTemplate, Operation};
use crate::tracker::report::Writes;

/// The error of a body zen ended, or of a call zen refused or cut.
#[allow(unreachable_pub, reason = "public as `layer::BoxError` and `deadline::BoxError` (feature `tower`)")]
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// `op` named by the template its caller gave, else by its path.
pub(crate) fn named(op: Operation, method: &str, path: &str, template: Option<&CallTemplate>) -> Operation {
    match template {
        Some(&template) => op.template(method, template),
        None => op.request(method, path),
    }
}

/// A call in progress: dropped before it ends, it records `ok` (a body
/// left unread after a good status is a call that went well; a call whose
/// response never came, one that failed).
pub(crate) struct Call {
    op: Option<Operation>,
    pub(crate) ok: bool,
    /// What a write did, by the response's status: unknown until it came.
    pub(crate) written: Writes,
}

impl Call {
    /// A call with `method`: every method but the safe ones (`GET`,
    /// `HEAD`, `OPTIONS`, `TRACE`) may write.
    pub(crate) fn new(op: Operation, method: &http::Method) -> Self {
        Call { op: Some(op.writes(!method.is_safe())), ok: false, written: Writes::Unknown }
    }

    pub(crate) fn time_limit(&self) -> Option<std::time::Duration> {
        self.op.as_ref().and_then(Operation::time_limit)
    }

    /// Takes the call back before it starts: too little time is left for
    /// it ([`Operation::refuse`]).
    pub(crate) fn refuse(&mut self) -> crate::BudgetExceeded {
        self.op.take().expect("a call not started").refuse()
    }

    /// What the response's status says of the call: a server error failed
    /// and may have done part; a refusal (4xx) did nothing, unless a
    /// redirect was followed: the status is then another request's, and
    /// the first one, answered with the redirect, may have done its work.
    pub(crate) fn answered(&mut self, status: http::StatusCode, redirected: bool) {
        self.ok = !status.is_server_error();
        self.written = if status.is_server_error() || (redirected && status.is_client_error()) {
            Writes::Unknown
        } else if status.is_client_error() {
            Writes::None
        } else {
            Writes::Committed
        };
    }

    /// Ends the call now: its budget ran out. `None` if it ended already.
    pub(crate) fn expire(&mut self) -> Option<crate::BudgetExceeded> {
        self.op.take().map(Operation::expire)
    }

    pub(crate) fn finish(&mut self, ok: bool) {
        if let Some(op) = self.op.take() {
            op.finish_with(ok, self.written);
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        let ok = self.ok;
        self.finish(ok);
    }
}

pin_project_lite::pin_project! {
    /// A response body that carries its call: the call ends when the body
    /// does (or fails, or is dropped), and in `enforce` the body stops at
    /// the budget's deadline.
    pub(crate) struct Timed<B> {
        #[pin]
        inner: B,
        call: Call,
        // The budget's deadline, in `enforce`.
        #[pin]
        deadline: Option<tokio::time::Sleep>,
        // A gRPC response: its trailers say how the call went.
        grpc: bool,
    }
}

impl<B> Timed<B> {
    pub(crate) fn new(inner: B, call: Call, deadline: Option<tokio::time::Instant>, grpc: bool) -> Self {
        Timed { inner, call, deadline: deadline.map(tokio::time::sleep_until), grpc }
    }
}

impl<B> Body for Timed<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        // The deadline first: a body that always has a frame ready is cut too.
        if this.call.op.is_some()
            && this.deadline.as_pin_mut().is_some_and(|d| d.poll(cx).is_ready())
            && let Some(exceeded) = this.call.expire()
        {
            return Poll::Ready(Some(Err(Box::new(exceeded))));
        }
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                // gRPC's status comes last, in the trailers.
                if *this.grpc
                    && let Some(trailers) = frame.trailers_ref()
                    && let Some((ok, written)) = grpc_answer(trailers)
                {
                    (this.call.ok, this.call.written) = (ok, written);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.call.finish(false);
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                let ok = this.call.ok;
                this.call.finish(ok);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What a gRPC status says of a call, if `headers` (a trailers-only
/// answer's, or the trailers) carry one: `0` went well, any other failed;
/// it did what `zen-writes` says (a peer under zen's layer sends it), else
/// it may have written (went well) or may have done part (failed).
pub(crate) fn grpc_answer(headers: &http::HeaderMap) -> Option<(bool, Writes)> {
    let ok = headers.get("grpc-status")?.as_bytes() == b"0";
    let written = match headers.get("zen-writes").map(http::HeaderValue::as_bytes) {
        Some(b"none") => Writes::None,
        Some(b"committed") => Writes::Committed,
        _ if ok => Writes::Committed,
        _ => Writes::Unknown,
    };
    Some((ok, written))
}

/// A gRPC request or response, by its content type: `application/grpc`,
/// alone or with `+proto`, `;...`.
#[cfg_attr(not(feature = "tower"), allow(dead_code, reason = "the layer and DeadlineLayer ask"))]
pub(crate) fn is_grpc(headers: &http::HeaderMap) -> bool {
    let content_type = headers.get(http::header::CONTENT_TYPE).map_or(&b""[..], http::HeaderValue::as_bytes);
    content_type
        .strip_prefix(b"application/grpc")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(b"+") || rest.starts_with(b";"))
}
