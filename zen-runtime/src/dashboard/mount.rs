//! The dashboard served from inside the application: a layer that answers
//! the requests under its path that its authorisation admits, and passes
//! every other one, refused ones included, on to the application, which
//! answers them as it answers any path it does not know. A stranger cannot
//! tell where the dashboard is: a refusal is the application's own answer.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::{OriginalUri, Request};
use axum::http::Uri;
use axum::http::uri::PathAndQuery;
use axum::response::{IntoResponse, Response};
use axum::routing::future::RouteFuture;

use super::Dashboard;
use super::router::Authorize;

/// A tower layer that serves a [`Dashboard`] at a path of the application
/// it wraps; made with [`Dashboard::layer`].
#[derive(Clone, Debug)]
pub struct DashboardLayer {
    mount: Arc<Mount>,
}

struct Mount {
    /// Where, such as `/_zen`: no trailing slash.
    path: Box<str>,
    authorize: Authorize,
    pages: Router,
}

impl std::fmt::Debug for Mount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mount").field("path", &self.path).field("authorize", &self.authorize).finish_non_exhaustive()
    }
}

impl Dashboard {
    /// Serves the dashboard at `path` (such as `"/_zen"`) from inside the
    /// application: `Router::layer` it after `ZenLayer`, so that its own
    /// requests are nobody's budget:
    ///
    /// ```no_run
    /// # fn demo(token: &str) -> Result<(), Box<dyn std::error::Error>> {
    /// use axum::Router;
    /// use zen_runtime::dashboard::{Authorize, Dashboard};
    /// use zen_runtime::layer::ZenLayer;
    ///
    /// let dashboard = Dashboard::new();
    /// let app: Router = Router::new()
    ///     // ... your routes ...
    ///     .layer(ZenLayer::new())
    ///     .layer(dashboard.layer("/_zen", Authorize::token(token)?));
    /// # Ok(()) }
    /// ```
    ///
    /// A request for `path` or below it that `authorize` admits gets the
    /// dashboard (`path` and `path/` its overview). Every other request,
    /// those it refuses included, goes on to the application, and gets what
    /// any path the application does not know gets: the same status,
    /// headers (`Server-Timing` included, when the layer sends it) and body.
    ///
    /// # Panics
    /// When `path` does not start with `/`, ends with one, or is `/`.
    #[must_use]
    pub fn layer(&self, path: &str, authorize: Authorize) -> DashboardLayer {
        assert!(
            path.starts_with('/') && !path.ends_with('/') && !path.contains(['?', '#']),
            "a dashboard's path starts with `/` and does not end with one, such as \"/_zen\"; got {path:?}"
        );
        let pages = self.router(authorize.clone());
        DashboardLayer { mount: Arc::new(Mount { path: path.into(), authorize, pages }) }
    }
}

impl<S> tower_layer::Layer<S> for DashboardLayer {
    type Service = DashboardService<S>;

    fn layer(&self, inner: S) -> DashboardService<S> {
        DashboardService { inner, mount: Arc::clone(&self.mount) }
    }
}

/// The service [`DashboardLayer`] wraps around the application's.
#[derive(Clone, Debug)]
pub struct DashboardService<S> {
    inner: S,
    mount: Arc<Mount>,
}

impl Mount {
    /// The dashboard's own path of a request for it (`/` for the mount
    /// itself), if the request is for it.
    fn inner_path<'a>(&self, path: &'a str) -> Option<&'a str> {
        match path.strip_prefix(&*self.path)? {
            "" => Some("/"),
            rest if rest.starts_with('/') => Some(rest),
            _ => None,
        }
    }
}

impl<S> tower_service::Service<Request> for DashboardService<S>
where
    S: tower_service::Service<Request>,
    S::Response: IntoResponse,
{
    type Response = Response;
    type Error = S::Error;
    type Future = DashboardFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let Some(inner) = self.mount.inner_path(request.uri().path()).map(str::to_owned) else {
            return DashboardFuture::App { future: self.inner.call(request) };
        };
        let (mut parts, body) = request.into_parts();
        if !self.mount.authorize.admits(&parts) {
            return DashboardFuture::App { future: self.inner.call(Request::from_parts(parts, body)) };
        }
        let path_and_query = match parts.uri.query() {
            Some(query) => format!("{inner}?{query}"),
            None => inner,
        };
        let original = parts.uri.clone();
        let mut uri = parts.uri.into_parts();
        uri.path_and_query = PathAndQuery::from_maybe_shared(path_and_query).ok();
        parts.uri = Uri::from_parts(uri).unwrap_or_else(|_| Uri::from_static("/"));
        parts.extensions.get_or_insert_with(|| OriginalUri(original));
        let mut pages = self.mount.pages.clone();
        let future = tower_service::Service::call(&mut pages, Request::from_parts(parts, body));
        DashboardFuture::Dashboard { future }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`DashboardService`]: the application's, or
    /// the dashboard's.
    #[project = Proj]
    #[allow(missing_docs)]
    pub enum DashboardFuture<F> {
        App { #[pin] future: F },
        Dashboard { #[pin] future: RouteFuture<Infallible> },
    }
}

impl<F> std::fmt::Debug for DashboardFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DashboardFuture::App { .. } => "DashboardFuture::App",
            DashboardFuture::Dashboard { .. } => "DashboardFuture::Dashboard",
        })
    }
}

impl<F, R, E> Future for DashboardFuture<F>
where
    F: Future<Output = Result<R, E>>,
    R: IntoResponse,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            Proj::App { future } => future.poll(cx).map(|result| result.map(IntoResponse::into_response)),
            Proj::Dashboard { future } => future.poll(cx).map(|result| match result {
                Ok(response) => Ok(response),
                Err(never) => match never {},
            }),
        }
    }
}
