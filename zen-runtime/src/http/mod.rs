//! An outgoing HTTP client that cannot be built without a timeout.
//!
//! Every call to an external system needs a timeout: better to amputate an
//! arm than to die of gangrene. [`Client::builder`] (over reqwest) has no
//! `build` until `timeout` is called, so forgetting it is a compile error,
//! not a runtime default:
//!
//! ```
//! # async fn demo() -> Result<(), zen_runtime::http::Error> {
//! use std::time::Duration;
//!
//! let client = zen_runtime::http::Client::builder().timeout(Duration::from_secs(2)).build()?;
//! let response = client.get("http://127.0.0.1:9/health").send().await;
//! # let _ = response; Ok(()) }
//! ```
//!
//! ```compile_fail,E0277
//! let client = zen_runtime::http::Client::builder().build();
//! // error[E0277]: an HTTP client needs a timeout: call `.timeout(Duration)`
//! //               before `.build()`
//! ```
//!
//! Each call's timeout is the least of the client's, the request's own
//! (`.timeout(..)` on the request) and, in `enforce` mode, the time left in
//! the budget (`max_http_ms`, the deadline). A call lasts until its
//! response body is read, fails or is dropped: a body trickled over a
//! second counts a second. Calls are counted into the current scope
//! (`http_calls`, `http_time`, per host), bodies included; `max_http_calls`
//! and `max_http_ms` apply. In `enforce`, a blown budget refuses the next
//! call with [`Error::Budget`] (whose `source()` is
//! [`BudgetExceeded`]), and a body still arriving
//! when the budget runs out stops there: `response.bytes().await` fails,
//! the violation is in the report, and [`as_budget_exceeded`] finds the
//! budget in the read's error. Calls other than `GET`, `HEAD`, `OPTIONS`
//! and `TRACE` may write: they count in what a refused request says of its
//! writes ([`Writes`](crate::report::Writes)).
//!
//! A report of kind `handler` that made external calls says so
//! ([`Report::http_in_handler`](crate::Report::http_in_handler), and the
//! `http_in_handler` event field): the rule is to push them to the
//! background ([`jobs`](crate::jobs)).
//!
//! Clients built with `reqwest-middleware` get the same rules from
//! [`Middleware`] (feature `reqwest-middleware`), which cannot be made
//! without a timeout either. Add it last, after retries: each attempt that
//! reaches it is counted and bounded like a [`Client`] call, body included.
//!
//! [`ClientBuilder::deadline`] sends the time left with every call, so
//! that the service called stops when this request's caller stops waiting
//! ([`deadline`](crate::deadline)).
//!
//! TLS is whatever your own `reqwest` dependency enables (zen's asks for
//! none).

mod body;
#[cfg(feature = "reqwest-middleware")]
mod middleware;

use std::fmt;
use std::time::Duration;

use crate::deadline::Deadline;
use crate::tracker::error::BudgetExceeded;
use crate::tracker::instrument::{self, CallTemplate};

#[cfg(feature = "reqwest-middleware")]
pub use middleware::Middleware;

/// A reqwest client with a mandatory timeout, whose calls report into the
/// current budget.
#[derive(Debug, Clone)]
pub struct Client {
    inner: reqwest::Client,
    timeout: Duration,
    deadline: Option<Deadline>,
}

/// Builds a [`Client`]; `build` exists once [`timeout`](Self::timeout) is set.
#[derive(Debug)]
#[must_use]
pub struct ClientBuilder<T> {
    inner: reqwest::ClientBuilder,
    timeout: T,
    deadline: Option<Deadline>,
}

/// A builder state: no timeout yet.
#[derive(Debug, Clone, Copy)]
pub struct NoTimeout;

/// A builder state: the timeout is set.
#[derive(Debug, Clone, Copy)]
pub struct Timeout(Duration);

/// What `build` needs: a builder whose timeout is set.
#[diagnostic::on_unimplemented(
    message = "an HTTP client needs a timeout: call `.timeout(Duration)` before `.build()`",
    label = "this builder has no timeout yet",
    note = "every call to an external system has a timeout in zen; there is no default to fall back on"
)]
pub trait HasTimeout {
    /// The timeout.
    fn duration(&self) -> Duration;
}

impl HasTimeout for Timeout {
    fn duration(&self) -> Duration {
        self.0
    }
}

impl Client {
    /// A builder; call [`timeout`](ClientBuilder::timeout), then `build`.
    pub fn builder() -> ClientBuilder<NoTimeout> {
        ClientBuilder { inner: reqwest::Client::builder(), timeout: NoTimeout, deadline: None }
    }

    /// The timeout every call gets at most.
    #[must_use]
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A GET request.
    pub fn get(&self, url: impl reqwest::IntoUrl) -> RequestBuilder {
        self.request(reqwest::Method::GET, url)
    }

    /// A POST request.
    pub fn post(&self, url: impl reqwest::IntoUrl) -> RequestBuilder {
        self.request(reqwest::Method::POST, url)
    }

    /// A request with any method.
    pub fn request(&self, method: reqwest::Method, url: impl reqwest::IntoUrl) -> RequestBuilder {
        RequestBuilder {
            inner: self.inner.request(method, url),
            timeout: self.timeout,
            deadline: self.deadline.clone(),
            template: None,
        }
    }
}

impl<T> ClientBuilder<T> {
    /// The longest any call may take, connection included.
    pub fn timeout(self, timeout: Duration) -> ClientBuilder<Timeout> {
        ClientBuilder { inner: self.inner, timeout: Timeout(timeout), deadline: self.deadline }
    }

    /// Sends the time left in the request's enforced budget with every
    /// call, in `deadline`'s header, and starts no call with less than its
    /// floor left (see [`deadline`](crate::deadline)).
    pub fn deadline(mut self, deadline: Deadline) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Any other reqwest setting: `.with(|b| b.user_agent("app/1.0"))`.
    pub fn with(self, configure: impl FnOnce(reqwest::ClientBuilder) -> reqwest::ClientBuilder) -> Self {
        ClientBuilder { inner: configure(self.inner), timeout: self.timeout, deadline: self.deadline }
    }

    /// The client. Exists for every builder so that, without a timeout, the
    /// compiler says which call is missing rather than that `build` is.
    ///
    /// # Errors
    /// As reqwest's `build` (a TLS backend that cannot start, ...).
    pub fn build(self) -> Result<Client, Error>
    where
        T: HasTimeout,
    {
        let timeout = self.timeout.duration();
        let inner = self.inner.timeout(timeout).build().map_err(Error::Request)?;
        Ok(Client { inner, timeout, deadline: self.deadline })
    }
}

/// A request being built; [`send`](Self::send) makes the call.
#[derive(Debug)]
#[must_use = "a request does nothing until sent"]
pub struct RequestBuilder {
    inner: reqwest::RequestBuilder,
    timeout: Duration,
    deadline: Option<Deadline>,
    template: Option<CallTemplate>,
}

impl RequestBuilder {
    /// A shorter timeout for this call (never longer than the client's).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = self.timeout.min(timeout);
        self
    }

    /// Names the call on its scope's timeline and for repeated calls by the
    /// path template your code knows (`"/users/{name}"`), rather than by
    /// the template zen makes of the path, which keeps a segment of
    /// lowercase letters (a user's name in the path would stay): the
    /// [`CallTemplate`] that zen's middleware reads from a request's
    /// extensions.
    pub fn template(mut self, template: &'static str) -> Self {
        self.template = Some(CallTemplate(template));
        self
    }

    /// Adds a header.
    pub fn header(self, name: impl AsRef<str>, value: impl AsRef<str>) -> Self {
        self.with(|r| r.header(name.as_ref(), value.as_ref()))
    }

    /// Sets the body.
    pub fn body(self, body: impl Into<reqwest::Body>) -> Self {
        self.with(|r| r.body(body))
    }

    /// Any other reqwest setting: `.with(|r| r.bearer_auth(token))`.
    pub fn with(mut self, configure: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder) -> Self {
        self.inner = configure(self.inner);
        self
    }

    /// Makes the call under the current budget.
    ///
    /// # Errors
    /// [`Error::Budget`] when `enforce` refuses the call or its time limit
    /// runs out because of the budget; [`Error::Request`] for everything
    /// reqwest reports, the client's own timeout included.
    pub async fn send(self) -> Result<reqwest::Response, Error> {
        let (client, request) = self.inner.build_split();
        let mut request = request.map_err(Error::Request)?;
        let host = request.url().host_str().unwrap_or("").to_owned();
        let requested = request.url().clone();
        let mut call = body::Call::new(
            crate::call::named(
                instrument::call(&host).map_err(Error::Budget)?,
                request.method().as_str(),
                request.url().path(),
                self.template.as_ref(),
            ),
            request.method(),
        );
        let left = call.time_limit();
        send_deadline(self.deadline.as_ref(), &mut call, left, self.timeout, request.headers_mut())
            .map_err(Error::Budget)?;
        // reqwest bounds the whole call, body included, by the client's own
        // timeout; an enforced budget that runs out sooner is zen's to cut.
        *request.timeout_mut() = Some(self.timeout);
        let deadline = budget_deadline(left, self.timeout);
        let result = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, client.execute(request)).await {
                Ok(result) => result,
                // The call began just above and has not ended.
                Err(_elapsed) => return Err(Error::Budget(call.expire().expect("a call in flight"))),
            },
            None => client.execute(request).await,
        };
        Ok(body::carry(result.map_err(Error::Request)?, call, deadline, &requested))
    }
}

/// Sends the time `left` in an enforced budget, no more than `own` (the
/// call's own timeout), as `deadline` says; nothing outside an enforced
/// budget or without a deadline. `Err`: the call is refused.
fn send_deadline(
    deadline: Option<&Deadline>,
    call: &mut body::Call,
    left: Option<Duration>,
    own: Duration,
    headers: &mut http::HeaderMap,
) -> Result<(), BudgetExceeded> {
    match (deadline, left) {
        (Some(deadline), Some(left)) => deadline.send(call, left.min(own), headers),
        _ => Ok(()),
    }
}

/// When an enforced budget stops a call, if it does so before `own` does.
pub(crate) fn budget_deadline(budget_left: Option<Duration>, own: Duration) -> Option<tokio::time::Instant> {
    budget_left.filter(|left| *left < own).map(|left| tokio::time::Instant::now() + left)
}

/// The [`BudgetExceeded`] that stopped a call or the reading of its
/// response body (`response.bytes().await` fails with a reqwest error whose
/// source is it), if a budget did.
#[must_use]
pub fn as_budget_exceeded(error: &reqwest::Error) -> Option<&BudgetExceeded> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(e) = source {
        if let Some(exceeded) = e.downcast_ref::<BudgetExceeded>() {
            return Some(exceeded);
        }
        source = e.source();
    }
    None
}

/// Why a call failed.
#[derive(Debug)]
pub enum Error {
    /// A budget refused or cut it.
    Budget(BudgetExceeded),
    /// reqwest failed it (connection, timeout, invalid URL, ...).
    Request(reqwest::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Budget(e) => write!(f, "external call stopped: {e}"),
            Error::Request(e) => write!(f, "external call failed: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Budget(e) => Some(e),
            Error::Request(e) => Some(e),
        }
    }
}

impl From<BudgetExceeded> for Error {
    fn from(e: BudgetExceeded) -> Self {
        Error::Budget(e)
    }
}
