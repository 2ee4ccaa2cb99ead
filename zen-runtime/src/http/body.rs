//! A call lasts until its response body is read: the body of a response
//! from [`Client`](super::Client) or [`Middleware`](super::Middleware)
//! carries the call, which counts into `http_time` until the body ends,
//! fails or is dropped, and in `enforce` stops at the budget's deadline
//! with [`BudgetExceeded`](crate::BudgetExceeded) (found in the read's
//! error with [`as_budget_exceeded`](super::as_budget_exceeded)).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use reqwest::ResponseBuilderExt;

use crate::tracker::instrument::Operation;
use crate::tracker::report::Writes;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A call in progress: dropped before it ends, it records `ok` (a body
/// left unread after a good status is a call that went well; a call whose
/// response never came, one that failed).
pub(crate) struct Call {
    op: Option<Operation>,
    ok: bool,
    /// What a write did, by the response's status: unknown until it came.
    written: Writes,
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

    /// Writes the time left in `deadline`'s header, no more than `own`
    /// (the call's own timeout); refuses the call (it is not started) when
    /// less than its floor is left. Outside an enforced budget, nothing is
    /// written.
    pub(crate) fn send_deadline(
        &mut self,
        deadline: Option<&crate::deadline::Deadline>,
        own: std::time::Duration,
        headers: &mut http::HeaderMap,
    ) -> Result<(), crate::BudgetExceeded> {
        let (Some(deadline), Some(left)) = (deadline, self.time_limit()) else { return Ok(()) };
        match deadline.write(headers, left.min(own)) {
            Ok(()) => Ok(()),
            Err(()) => Err(self.op.take().expect("a call not started").refuse()),
        }
    }

    /// Ends the call now: its budget ran out. `None` if it ended already.
    pub(crate) fn expire(&mut self) -> Option<crate::BudgetExceeded> {
        self.op.take().map(Operation::expire)
    }

    fn finish(&mut self, ok: bool) {
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
    struct Timed {
        #[pin]
        inner: reqwest::Body,
        call: Call,
        // The budget's deadline, in `enforce`.
        #[pin]
        deadline: Option<tokio::time::Sleep>,
    }
}

impl Body for Timed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
            Poll::Ready(Some(Err(e))) => {
                this.call.finish(false);
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                let ok = this.call.ok;
                this.call.finish(ok);
                Poll::Ready(None)
            }
            Poll::Pending => {
                if this.call.op.is_some()
                    && this.deadline.as_pin_mut().is_some_and(|d| d.poll(cx).is_ready())
                    && let Some(exceeded) = this.call.expire()
                {
                    return Poll::Ready(Some(Err(Box::new(exceeded))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The response with the call moved into its body: it ends when the body
/// does. `deadline`: when an enforced budget runs out.
pub(crate) fn carry(
    response: reqwest::Response,
    mut call: Call,
    deadline: Option<tokio::time::Instant>,
    requested: &reqwest::Url,
) -> reqwest::Response {
    let status = response.status();
    call.ok = !status.is_server_error();
    // A refusal (4xx) did nothing; a server error may have done part. Once
    // a redirect was followed, the status is another request's: the first
    // one was answered (with the redirect), and may have done its work.
    let redirected = response.url() != requested;
    call.written = if status.is_server_error() || (redirected && status.is_client_error()) {
        Writes::Unknown
    } else if status.is_client_error() {
        Writes::None
    } else {
        Writes::Committed
    };
    let url = response.url().clone();
    let (parts, body) = http::Response::<reqwest::Body>::from(response).into_parts();
    let timed = Timed { inner: body, call, deadline: deadline.map(tokio::time::sleep_until) };
    let mut rebuilt = http::Response::builder().status(parts.status).version(parts.version);
    if let Some(headers) = rebuilt.headers_mut() {
        *headers = parts.headers;
    }
    if let Some(extensions) = rebuilt.extensions_mut() {
        *extensions = parts.extensions;
    }
    match rebuilt.url(url).body(reqwest::Body::wrap(timed)) {
        Ok(response) => reqwest::Response::from(response),
        Err(_) => unreachable!("status, version and headers come from a valid response"),
    }
}
