//! A call lasts until its response body is read: the body of a response
//! from [`Client`](super::Client) or [`Middleware`](super::Middleware)
//! carries the call, which counts into `http_time` until the body ends,
//! fails or is dropped, and in `enforce` stops at the budget's deadline
//! with [`BudgetExceeded`](crate::BudgetExceeded) (found in the read's
//! error with [`as_budget_exceeded`](super::as_budget_exceeded)).

use reqwest::ResponseBuilderExt;

pub(crate) use crate::call::Call;
use crate::call::Timed;

/// The response with the call moved into its body: it ends when the body
/// does. `deadline`: when an enforced budget runs out.
pub(crate) fn carry(
    response: reqwest::Response,
    mut call: Call,
    deadline: Option<tokio::time::Instant>,
    requested: &reqwest::Url,
) -> reqwest::Response {
    call.answered(response.status(), response.url() != requested);
    let url = response.url().clone();
    let (parts, body) = http::Response::<reqwest::Body>::from(response).into_parts();
    let timed = Timed::new(body, call, deadline, false);
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
