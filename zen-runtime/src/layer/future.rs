//! The future of one request under the layer: it polls the handler inside
//! the request's scope, cuts it in `enforce`, survives its panic, and ends
//! the scope with exactly one report.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};

use http::{HeaderName, Response};

const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

use super::response::{self, ZenBody};
use crate::budget::Mode;
use crate::report::{Outcome, Report};
use crate::scope::{Enter, Scope};

pin_project_lite::pin_project! {
    /// The response future of [`ZenService`](super::ZenService).
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Option<F>,
        scope: Arc<Scope>,
        timer: Option<Pin<Box<tokio::time::Sleep>>>,
        server_timing: bool,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            // Still running when dropped: the client went away, or a timeout
            // further out gave up on it.
            if this.inner.is_some() {
                drop_inner(this.scope, this.inner.as_mut());
                let _ = crate::future::end_boundary(this.scope, Outcome::Cancelled);
            }
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").field("name", &self.scope.name).finish_non_exhaustive()
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(inner: F, scope: Arc<Scope>, server_timing: bool) -> Self {
        ResponseFuture { inner: Some(inner), scope, timer: None, server_timing }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ZenBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            panic!("a zen request future was polled after it completed");
        };
        let enter = Enter::new(this.scope);
        let poll = catch_unwind(AssertUnwindSafe(|| inner.poll(cx)));
        enter.exit();
        let (outcome, result) = match poll {
            // In `enforce`, a blown budget is a 503 even when the handler got
            // to the end (a refused query turned into its own error, a
            // response built past `max_mem_kb`): the client always learns
            // the same way that the request was stopped.
            Ok(Poll::Ready(Ok(response))) if this.scope.mode() == Mode::Enforce => match this.scope.blown() {
                Some(exceeded) => {
                    let enter = Enter::carry(Some(this.scope));
                    drop(response);
                    enter.exit();
                    (Outcome::Exceeded, Ok(response::exceeded(&exceeded)))
                }
                None => (Outcome::Ok, Ok(response.map(ZenBody::inner))),
            },
            Ok(Poll::Ready(result)) => (Outcome::Ok, result.map(|r| r.map(ZenBody::inner))),
            Ok(Poll::Pending) => match crate::future::poll_cut(this.scope, this.timer, cx) {
                None => return Poll::Pending,
                Some(exceeded) => (Outcome::Exceeded, Ok(response::exceeded(&exceeded))),
            },
            Err(_) => {
                this.scope.panicked.store(true, Relaxed);
                (Outcome::Panicked, Ok(response::panicked(&this.scope.name)))
            }
        };
        drop_inner(this.scope, this.inner.as_mut());
        let elapsed = crate::future::end_boundary(this.scope, outcome);
        Poll::Ready(result.map(|mut response| {
            if *this.server_timing
                && let Some(value) = response::server_timing(&this.scope.figures(), elapsed)
            {
                response.headers_mut().append(SERVER_TIMING, value);
            }
            response.extensions_mut().insert(RequestReport(Arc::clone(this.scope)));
            response
        }))
    }
}

/// Drops the handler's future inside the scope, so that what it frees is
/// the request's, and a panic in its destructor stays here.
fn drop_inner<F>(scope: &Arc<Scope>, mut inner: Pin<&mut Option<F>>) {
    let enter = Enter::carry(Some(scope));
    let _ = catch_unwind(AssertUnwindSafe(|| inner.set(None)));
    enter.exit();
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
