//! The body of a response that passed through the layer: the handler's, or
//! the layer's own problem document.
//!
//! A handler's body whose size is known when its headers leave (a `Json`,
//! a `String`, `Bytes`) is counted then, with the rest of the request. A
//! streamed one is counted as it goes, with the request's scope current
//! while it is polled (its queries are the request's), and the request's
//! report is delivered when it ends or is dropped. In `enforce`, a streamed
//! body that passes `max_response_kb` ends there with an error, which makes
//! the server abort the response: the client sees it cut short rather than
//! an unbounded one, or one that looks complete.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::tracker::budget::{Budget, Mode};
use crate::tracker::scope::{Receiver, Role, Scope, enter};

/// The error of a body that zen ended: `max_response_kb` in `enforce`.
pub use crate::call::BoxError;

pin_project_lite::pin_project! {
    /// The body of a response that passed through the layer.
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
        Inner { #[pin] body: B, stream: Option<Box<Streamed>> },
        Full { data: Option<Bytes> },
    }
}

/// A streamed body's request: counted as the body goes, reported at its end.
#[derive(Debug)]
pub(super) struct Streamed {
    scope: Arc<Scope>,
    bytes: u64,
    /// `max_response_kb` in bytes, in `enforce`.
    cut_at: Option<u64>,
    ended: bool,
    cut: bool,
    /// A gRPC response: a cut ends it with `grpc-status` trailers.
    grpc: bool,
}

impl Streamed {
    pub(super) fn new(scope: Arc<Scope>, grpc: bool) -> Box<Self> {
        let enforced = scope.mode() == Mode::Enforce;
        let cut_at = scope.limit(Budget::ResponseSize).filter(|_| enforced).map(|kib| kib.saturating_mul(1024));
        Box::new(Streamed { scope, bytes: 0, cut_at, ended: false, cut: false, grpc })
    }

    /// Counts the body's bytes into the request and delivers its report.
    fn end(&mut self) {
        if !std::mem::replace(&mut self.ended, true) {
            self.scope.set_response_bytes(self.bytes);
            // Never panics (`strict`): the server is sending the body.
            self.scope.deliver(Receiver::Everyone, false, None);
        }
    }
}

impl Drop for Streamed {
    fn drop(&mut self) {
        self.end();
    }
}

impl<B> ZenBody<B> {
    /// The handler's body; `stream` when it is streamed under a scope.
    pub(super) fn inner(body: B, stream: Option<Box<Streamed>>) -> Self {
        ZenBody { kind: Kind::Inner { body, stream } }
    }

    /// No body at all: its headers end the response (gRPC's trailers-only
    /// answer).
    pub(super) fn empty() -> Self {
        ZenBody { kind: Kind::Full { data: None } }
    }

    pub(super) fn full(data: String) -> Self {
        ZenBody { kind: Kind::Full { data: Some(Bytes::from(data)) } }
    }
}

impl<B> Body for ZenBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let (body, stream) = match self.project().kind.project() {
            KindProj::Full { data } => return Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            KindProj::Inner { body, stream } => (body, stream),
        };
        let Some(stream) = stream.as_deref_mut().filter(|s| !s.ended) else {
            if stream.as_ref().is_some_and(|s| s.cut) {
                return Poll::Ready(None);
            }
            return body.poll_frame(cx).map_err(Into::into);
        };
        let frame = enter(Some(&stream.scope), Role::Carried, || body.poll_frame(cx));
        match frame {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    stream.bytes += data.len() as u64;
                    if stream.cut_at.is_some_and(|max| stream.bytes > max) {
                        stream.cut = true;
                        stream.end();
                        let exceeded = stream.scope.blown();
                        if stream.grpc {
                            // The message that went over is not sent; gRPC's
                            // client reads the status from the trailers.
                            let message = exceeded.map_or_else(|| "over max_response_kb".into(), |e| e.to_string());
                            let writes = stream.scope.figures(stream.scope.elapsed()).writes();
                            let trailers = super::response::grpc_cut(&message, writes);
                            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                        }
                        let exceeded = exceeded
                            .map_or_else(|| "response body over max_response_kb".into(), |e| Box::new(e) as BoxError);
                        return Poll::Ready(Some(Err(exceeded)));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                stream.end();
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                stream.end();
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body, .. } => body.is_end_stream(),
            Kind::Full { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body, .. } => body.size_hint(),
            Kind::Full { data } => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
        }
    }
}
