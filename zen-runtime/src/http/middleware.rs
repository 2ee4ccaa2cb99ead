//! The same rules for clients built with `reqwest-middleware`.

use std::time::Duration;

use reqwest_middleware::{Error, Next};

use crate::instrument;

/// A `reqwest-middleware` middleware that holds each call to the current
/// budget, as [`Client`](super::Client) does: it cannot be made without a
/// timeout, which every call gets at most (the least of it, the request's
/// own and the time left in an enforced budget); calls are counted per
/// host; `enforce` refuses a call the budget has no room for.
///
/// Add it last, after retry middleware, so that each attempt is counted and
/// timed. A budget error is `Error::Middleware` wrapping
/// [`BudgetExceeded`](crate::BudgetExceeded): find it with
/// `err.downcast_ref::<BudgetExceeded>()` on the inner `anyhow::Error`.
///
/// ```
/// use std::time::Duration;
///
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(zen_runtime::http::Middleware::new(Duration::from_secs(2)))
///     .build();
/// # let _ = client;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Middleware {
    timeout: Duration,
}

impl Middleware {
    /// The middleware; `timeout` is the longest any call may take.
    #[must_use]
    pub fn new(timeout: Duration) -> Self {
        Middleware { timeout }
    }
}

#[async_trait::async_trait]
impl reqwest_middleware::Middleware for Middleware {
    async fn handle(
        &self,
        mut request: reqwest::Request,
        extensions: &mut http::Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let host = request.url().host_str().unwrap_or("").to_owned();
        let mut call = super::InFlight(Some(instrument::call(&host).map_err(Error::middleware)?));
        let own = request.timeout().map_or(self.timeout, |t| self.timeout.min(*t));
        let budget_left = call.time_limit();
        *request.timeout_mut() = Some(budget_left.map_or(own, |left| left.min(own)));
        let result = next.run(request, extensions).await;
        let Some(op) = call.0.take() else { unreachable!("taken only here") };
        match result {
            Err(Error::Reqwest(e)) if e.is_timeout() && budget_left.is_some_and(|left| left < own) => {
                Err(Error::middleware(op.expire()))
            }
            result => {
                op.finish(result.as_ref().is_ok_and(|r| !r.status().is_server_error()));
                result
            }
        }
    }
}
