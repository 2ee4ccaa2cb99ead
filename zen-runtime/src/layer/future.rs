//! The future of one request under the layer: the handler's future in the
//! request's boundary, and the response the layer makes of how it ended.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{HeaderName, Response};

use super::response::{self, ZenBody};
use crate::boundary::{Boundary, Ended};
use crate::budget::Mode;
use crate::report::{Outcome, Report};
use crate::scope::Scope;

const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

pin_project_lite::pin_project! {
    /// The response future of [`ZenService`](super::ZenService).
    pub struct ResponseFuture<F> {
        #[pin]
        work: Boundary<F>,
        server_timing: bool,
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").field("name", &self.work.scope().name).finish_non_exhaustive()
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(work: Boundary<F>, server_timing: bool) -> Self {
        ResponseFuture { work, server_timing }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ZenBody<B>>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let ended = ready!(self.as_mut().project().work.poll_work(cx));
        let this = self.project();
        let work = this.work.as_ref().get_ref();
        let scope = work.scope();
        let (outcome, result) = match ended {
            // In `enforce`, a blown budget is a 503 even when the handler got
            // to the end (a refused query turned into its own error, a
            // response built past `max_mem_kb`): the client always learns
            // the same way that the request was stopped.
            Ended::Done(Ok(response)) if scope.mode() == Mode::Enforce => match scope.blown() {
                Some(exceeded) => {
                    work.drop_in_scope(response);
                    (Outcome::Exceeded, Ok(response::exceeded(&exceeded)))
                }
                None => (Outcome::Ok, Ok(response.map(ZenBody::inner))),
            },
            Ended::Done(result) => (Outcome::Ok, result.map(|r| r.map(ZenBody::inner))),
            Ended::Cut(exceeded) => (Outcome::Exceeded, Ok(response::exceeded(&exceeded))),
            Ended::Panicked(_) => (Outcome::Panicked, Ok(response::panicked(&scope.name))),
        };
        let elapsed = work.finish(outcome);
        Poll::Ready(result.map(|mut response| {
            if *this.server_timing
                && let Some(value) = response::server_timing(&scope.figures(), elapsed)
            {
                response.headers_mut().append(SERVER_TIMING, value);
            }
            response.extensions_mut().insert(RequestReport(Arc::clone(scope)));
            response
        }))
    }
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
        self.0.sealed_report().expect("a request's scope is sealed before its response leaves the layer")
    }
}

impl std::fmt::Debug for RequestReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RequestReport").field(&self.0.name).finish()
    }
}
