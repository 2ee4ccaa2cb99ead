//! The same rules for clients built with `reqwest-middleware`.

use std::time::Duration;

use reqwest_middleware::{Error, Next};

use crate::deadline::Deadline;
use crate::tracker::instrument::{self, CallTemplate};

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
/// A call is named on the timeline by the template of its path; give the
/// one your code knows as a [`CallTemplate`] extension, so that no word of
/// the path (a user's name) names it (`.with_extension` before `.send()`:
/// `ClientWithMiddleware::execute` passes no extensions):
///
/// ```no_run
/// use std::time::Duration;
/// use zen_runtime::instrument::CallTemplate;
///
/// # async fn run(name: &str) -> reqwest_middleware::Result<()> {
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(zen_runtime::http::Middleware::new(Duration::from_secs(2)))
///     .build();
/// let url = format!("https://api.example.com/users/{name}");
/// client.get(url).with_extension(CallTemplate("/users/{name}")).send().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Middleware {
    timeout: Duration,
    deadline: Option<Deadline>,
}

impl Middleware {
    /// The middleware; `timeout` is the longest any call may take.
    #[must_use]
    pub fn new(timeout: Duration) -> Self {
        Middleware { timeout, deadline: None }
    }

    /// Sends the time left in the request's enforced budget with every
    /// call, in `deadline`'s header, and starts no call with less than its
    /// floor left (see [`deadline`](crate::deadline)).
    #[must_use]
    pub fn deadline(mut self, deadline: Deadline) -> Self {
        self.deadline = Some(deadline);
        self
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
        let requested = request.url().clone();
        let mut call = super::body::Call::new(
            crate::call::named(
                instrument::call(&host).map_err(Error::middleware)?,
                request.method().as_str(),
                request.url().path(),
                extensions.get::<CallTemplate>(),
            ),
            request.method(),
        );
        let own = request.timeout().map_or(self.timeout, |t| self.timeout.min(*t));
        let left = call.time_limit();
        super::send_deadline(self.deadline.as_ref(), &mut call, left, own, request.headers_mut())
            .map_err(Error::middleware)?;
        *request.timeout_mut() = Some(own);
        let deadline = super::budget_deadline(left, own);
        let result = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, next.run(request, extensions)).await {
                Ok(result) => result,
                // The call began just above and has not ended.
                Err(_elapsed) => return Err(Error::middleware(call.expire().expect("a call in flight"))),
            },
            None => next.run(request, extensions).await,
        };
        Ok(super::body::carry(result?, call, deadline, &requested))
    }
}
