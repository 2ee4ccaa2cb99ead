//! The future of one request under the layer: the handler's future in the
//! request's boundary, and the response the layer makes of how it ended.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{HeaderName, HeaderValue, Response, StatusCode};

use super::body::{Streamed, ZenBody};
use super::response;
use crate::tracker::boundary::{Boundary, Ended};
use crate::tracker::budget::Mode;
use crate::tracker::report::{Figures, Outcome, Report};
use crate::tracker::scope::Scope;

const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

pin_project_lite::pin_project! {
    /// The response future of [`ZenService`](super::ZenService).
    pub struct ResponseFuture<F> {
        #[pin]
        work: Boundary<F>,
        server_timing: Shown,
        // A gRPC request: refused with a gRPC status, never a 503.
        grpc: bool,
    }
}

/// Whether the response carries `Server-Timing`, and why.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Shown {
    No,
    /// To every request.
    Always,
    /// To this request, which a check admitted: the response varies by its
    /// credentials.
    Admitted,
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").field("name", &self.work.scope().name).finish_non_exhaustive()
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(work: Boundary<F>, server_timing: Shown, grpc: bool) -> Self {
        ResponseFuture { work, server_timing, grpc }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body,
{
    type Output = Result<Response<ZenBody<B>>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let ended = ready!(self.as_mut().project().work.poll_work(cx));
        let this = self.project();
        let work = this.work.as_ref().get_ref();
        let scope = work.scope();
        let enforce = scope.mode() == Mode::Enforce;
        // A body whose size is known counts now, with the rest of the
        // request (and is refused in `enforce` if it is over its budget); a
        // streamed one counts as it goes, and the report waits for its end.
        let mut streamed = false;
        if let Ended::Done(Ok(response)) = &ended {
            match response.body().size_hint().exact() {
                Some(bytes) => scope.set_response_bytes(bytes),
                None => streamed = true,
            }
        }
        // What the client gets instead of the handler's response, if anything.
        let (outcome, stop, result) = match ended {
            // In `enforce`, a blown budget is a 503 even when the handler got
            // to the end (a refused query turned into its own error, a
            // response built past `max_mem_kb`): the client always learns
            // the same way that the request was stopped.
            Ended::Done(Ok(response)) if enforce => match scope.blown() {
                Some(exceeded) => {
                    work.drop_in_scope(response);
                    (Outcome::Exceeded, Some(Stop::Exceeded(exceeded.budget())), None)
                }
                None => (Outcome::Ok, None, Some(Ok(response))),
            },
            Ended::Done(result) => (Outcome::Ok, None, Some(result)),
            Ended::Cut(exceeded) => (Outcome::Exceeded, Some(Stop::Exceeded(exceeded.budget())), None),
            Ended::Panicked(_) => (Outcome::Panicked, Some(Stop::Panicked), None),
        };
        let status = match (&stop, &result) {
            // gRPC says it in `grpc-status`, under HTTP's 200.
            (Some(_), _) if *this.grpc => StatusCode::OK,
            (Some(Stop::Exceeded(_)), _) => StatusCode::SERVICE_UNAVAILABLE,
            (Some(Stop::Panicked), _) => StatusCode::INTERNAL_SERVER_ERROR,
            (None, Some(Ok(response))) => response.status(),
            (None, _) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        scope.set_status(status.as_u16());
        // Everything the client sees below reads these figures, as the report will.
        let elapsed = work.seal(outcome);
        let figures = scope.figures(elapsed);
        let (result, deliver_now) = match (stop, result) {
            (Some(stop), _) => (Ok(stopped(scope, stop, &figures, *this.grpc)), true),
            (None, Some(Ok(response))) if streamed => {
                let stream = Streamed::new(Arc::clone(scope), *this.grpc);
                (Ok(response.map(|body| ZenBody::inner(body, Some(stream)))), false)
            }
            (None, Some(result)) => (result.map(|r| r.map(|body| ZenBody::inner(body, None))), true),
            (None, None) => unreachable!("a handler's result or a stop, always"),
        };
        if deliver_now {
            work.deliver(&figures);
        }
        Poll::Ready(result.map(|mut response| {
            if *this.server_timing != Shown::No
                && let Some(value) = response::server_timing(&figures, &scope.terms().limits)
            {
                response.headers_mut().append(SERVER_TIMING, value);
                if *this.server_timing == Shown::Admitted {
                    // A shared cache must not hand an operator's figures to anyone else.
                    let headers = response.headers_mut();
                    headers.append(http::header::VARY, HeaderValue::from_static("authorization, cookie"));
                    if !headers.contains_key(http::header::CACHE_CONTROL) {
                        headers.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("private"));
                    }
                }
            }
            response.extensions_mut().insert(RequestReport(Arc::clone(scope)));
            response
        }))
    }
}

/// The layer's answer instead of the handler's: a problem document, or
/// for a gRPC call its status. Out of the way of requests that end well.
#[cold]
#[inline(never)]
fn stopped<B>(scope: &Scope, stop: Stop, figures: &Figures, grpc: bool) -> Response<ZenBody<B>> {
    match stop {
        Stop::Exceeded(budget) if grpc => response::grpc_exceeded(scope, budget, figures),
        Stop::Panicked if grpc => response::grpc_panicked(figures),
        Stop::Exceeded(budget) => response::exceeded(scope, budget, figures),
        Stop::Panicked => response::panicked(&scope.name, figures),
    }
}

/// Why the layer answers instead of the handler.
enum Stop {
    Exceeded(crate::tracker::budget::Budget),
    Panicked,
}

/// The report of a request, in the extensions of its response, for
/// middleware further out (metrics, access logs):
/// `response.extensions().get::<RequestReport>().map(RequestReport::report)`.
/// Built when first asked for, so that requests nobody asks about cost no
/// report: its outcome and time are the request's end, its counters as they
/// are then (work that tasks the request spawned record later shows).
#[derive(Clone)]
pub struct RequestReport(Arc<Scope>);

impl RequestReport {
    /// The request's report.
    #[must_use]
    pub fn report(&self) -> &Report {
        self.0.report().expect("a request's scope is sealed before its response leaves the layer")
    }
}

impl std::fmt::Debug for RequestReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RequestReport").field(&self.0.name).finish()
    }
}
