//! Counting any client into the current budget: the API zen's own wrappers
//! (sqlx, Redis, HTTP, apalis) are built on, public so that you can count a
//! system zen has no wrapper for.
//!
//! Outside any scope, every function here does nothing and never refuses.
//!
//! # Writing an adapter
//!
//! Each operation of the client goes through four steps:
//!
//! 1. **Ask** with [`query`] (a database or store operation) or [`call`]
//!    (an external call, reported per host) before anything leaves. The
//!    operation is counted now, toward `max_queries` or `max_http_calls`;
//!    in `enforce` a blown budget refuses it with [`BudgetExceeded`] (the
//!    refusal is counted, the operation is not). A client that must refuse
//!    before it takes a resource (a pooled connection) and issue later asks
//!    [`admit_query`] first.
//! 2. **Name** it: [`query`] takes the statement as text and keeps only its
//!    fingerprint, read in the dialect of the backend's name
//!    ([`Dialect::of_backend`](crate::fingerprint::Dialect::of_backend):
//!    `"PostgreSQL"`, `"SQLite"`, `"MySQL"`; any other name is read in the
//!    most careful dialect). Values in the text are dropped, but pass
//!    placeholders or a command name (`"GET ?"`, `"PIPELINE GET SET"`),
//!    never keys or values. The report groups operations by that
//!    fingerprint, and flags one repeated `n_plus_one` times as N+1.
//! 3. **Bound** it by [`Operation::time_limit`]: the least of the time left
//!    before each enforced deadline and in each enforced time budget
//!    (`None`: no enforced bound; your client's own timeout still should
//!    apply). Run the operation under `tokio::time::timeout`; when it runs
//!    out, [`Operation::expire`] records it as failed and returns the error
//!    that names the budget. A connection whose operation was cut may be
//!    mid-reply: close it, never reuse it (zen's sqlx pool does so).
//! 4. **Finish** it with how it ended: [`Operation::finish`]`(true)` for
//!    success, [`Operation::finish_rejected`] when the system answered with
//!    an error, [`Operation::finish`]`(false)` when there was no answer, or
//!    one that says nothing of what was done. Rows the operation returned
//!    count toward `max_rows`: [`Operation::add_rows`] records them, and
//!    past [`Operation::rows_left`], [`Operation::exceed_rows`] records them
//!    and returns the error to end the result with. An operation dropped
//!    unfinished (a stream dropped halfway, a future cancelled) is recorded
//!    as a success whose write is in doubt.
//!
//! The time of an operation runs from [`query`] or [`call`] to its end. An
//! adapter for an imaginary key-value store, whose client (`KvClient`) has
//! `get`, `put` and `range`:
//!
//! ```
//! # use std::collections::BTreeMap;
//! # use std::sync::Mutex;
//! # /// The imaginary store's client: a map in the process, with the
//! # /// shape of a network client.
//! # #[derive(Default)]
//! # struct KvClient(Mutex<BTreeMap<String, String>>);
//! # /// Its errors: the store said no, or the connection went away.
//! # #[derive(Debug)]
//! # enum KvError {
//! #     Rejected(String),
//! #     Disconnected,
//! # }
//! # impl KvClient {
//! #     async fn get(&self, key: &str) -> Result<Option<String>, KvError> {
//! #         Ok(self.0.lock().unwrap().get(key).cloned())
//! #     }
//! #     async fn put(&self, key: &str, value: &str) -> Result<(), KvError> {
//! #         if key.is_empty() {
//! #             return Err(KvError::Rejected("empty key".into()));
//! #         }
//! #         self.0.lock().unwrap().insert(key.into(), value.into());
//! #         Ok(())
//! #     }
//! #     async fn range(&self, prefix: &str) -> Result<Vec<String>, KvError> {
//! #         let map = self.0.lock().unwrap();
//! #         Ok(map.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(_, v)| v.clone()).collect())
//! #     }
//! # }
//! use std::future::Future;
//!
//! use zen_runtime::instrument::{self, Operation};
//! use zen_runtime::report::Writes;
//! use zen_runtime::{Budget, BudgetExceeded, testing, zen};
//!
//! /// The adapter's error: the store's, or the budget's.
//! #[derive(Debug)]
//! enum Error {
//!     Kv(KvError),
//!     Budget(BudgetExceeded),
//! }
//!
//! impl From<BudgetExceeded> for Error {
//!     fn from(e: BudgetExceeded) -> Self {
//!         Error::Budget(e)
//!     }
//! }
//!
//! /// The client, counted into the current budget.
//! struct Kv(KvClient);
//!
//! impl Kv {
//!     async fn get(&self, key: &str) -> Result<Option<String>, Error> {
//!         // Ask and name: counted now as `GET ?`, never the key. `GET` is
//!         // one of the reads zen knows by name: not a write.
//!         let op = instrument::query("kv", "GET ?")?;
//!         run(op, self.0.get(key), |value| u64::from(value.is_some())).await
//!     }
//!
//!     async fn put(&self, key: &str, value: &str) -> Result<(), Error> {
//!         // A command not known to read may write.
//!         let op = instrument::query("kv", "PUT ? ?")?;
//!         run(op, self.0.put(key, value), |_| 0).await
//!     }
//!
//!     async fn range(&self, prefix: &str) -> Result<Vec<String>, Error> {
//!         // `RANGE` is no read zen knows by name: say it writes nothing.
//!         let op = instrument::query("kv", "RANGE ?")?.writes(false);
//!         run(op, self.0.range(prefix), |values| values.len() as u64).await
//!     }
//! }
//!
//! /// Bound and finish one operation; `rows`: how many it returned.
//! async fn run<T>(
//!     op: Operation,
//!     command: impl Future<Output = Result<T, KvError>>,
//!     rows: impl Fn(&T) -> u64,
//! ) -> Result<T, Error> {
//!     let result = match op.time_limit() {
//!         Some(limit) => match tokio::time::timeout(limit, command).await {
//!             Ok(result) => result,
//!             // Cut: failed, its write in doubt; the error names the budget.
//!             Err(_) => return Err(op.expire().into()),
//!         },
//!         None => command.await,
//!     };
//!     match result {
//!         Ok(value) => {
//!             let n = rows(&value);
//!             if op.rows_left().is_some_and(|left| n > left) {
//!                 return Err(op.exceed_rows(n).into());
//!             }
//!             op.add_rows(n);
//!             op.finish(true);
//!             Ok(value)
//!         }
//!         Err(e) => {
//!             match e {
//!                 // The store answered no: a write took no effect.
//!                 KvError::Rejected(_) => op.finish_rejected(),
//!                 // No answer: a write may have taken effect.
//!                 KvError::Disconnected => op.finish(false),
//!             }
//!             Err(Error::Kv(e))
//!         }
//!     }
//! }
//!
//! #[zen(max_rows = 2, mode = "enforce")]
//! async fn users(kv: &Kv) -> Result<Vec<String>, Error> {
//!     kv.put("user:1", "ann").await?;
//!     kv.put("user:2", "bob").await?;
//!     kv.put("user:3", "cy").await?;
//!     assert_eq!(kv.get("user:1").await?.as_deref(), Some("ann"));
//!     // One row so far and three more: past `max_rows = 2`.
//!     kv.range("user:").await
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let kv = Kv(KvClient::default());
//! let (result, report) = testing::measure(users(&kv)).await;
//! assert!(matches!(&result, Err(Error::Budget(e)) if e.budget() == Budget::Rows));
//! assert_eq!(report.figures.queries(), 5);
//! assert_eq!(report.figures.rows(), 4);
//! // The `PUT`s took effect: a client must not blindly retry.
//! assert_eq!(report.figures.writes(), Writes::Committed);
//! assert!(!report.within_budget());
//! # }
//! ```
//!
//! Operations timed by the caller, after the fact, are recorded with
//! [`record_query`] and [`record_call`] (never refused), and time spent
//! waiting for a pooled connection with [`record_wait`] (reported as
//! `db_wait`, apart from the operations' time). [`in_scope`] says whether
//! any of it would be recorded.
//!
//! # A client that tells by events
//!
//! Some drivers cannot be wrapped, but tell of each operation by events
//! (MongoDB's command events: [`mongodb`](crate::mongodb) is built this way,
//! on this API alone). The started event comes once the operation is on its
//! way, inside the poll of the code that runs it, where the scope is
//! current: count it there with [`command_sent`], named by a shape the
//! adapter makes (no value in it), never refused, and keep the
//! [`Operation`] until the finished event, with
//! [`Operation::took`] for the driver's own duration and
//! [`Operation::paging`] for the next page of a cursor (never an N+1
//! suspect). Refusing and bounding then belong at the call site, before the
//! driver sends: [`admit_query`] before, and [`time_limit`] to bound what
//! it sends (asking again when the bound runs out before anything was
//! sent: waiting for a connection is no operation). [`client_crate`] says which
//! crate's frames are the client's, so that an N+1's call site is the
//! application's line above them.
//!
//! The other direction, exporting what zen measured (a log pipeline, a
//! metrics system of your own), goes through observers: see
//! [`observe`](crate::observe).
//!
//! # Writes
//!
//! A request that `enforce` refuses says whether anything it did was
//! committed ([`Writes`]), from the operations that may write: a database
//! statement that is not known to be a read (taken from its text: SQL
//! reads, transaction control and Redis's reads are known), and every
//! external call, unless [`Operation::writes`] says otherwise (zen's sqlx
//! wrapper says so for a statement inside a transaction, whose writes take
//! effect at its `COMMIT`; its HTTP client for `GET`, `HEAD`, `OPTIONS` and
//! `TRACE`). How a write ends decides what it did:
//!
//! | the write ended with | it |
//! |---|---|
//! | [`finish(true)`](Operation::finish) | took effect |
//! | [`finish_rejected()`](Operation::finish_rejected): the system answered with an error | took no effect, unless zen knows the statement may fail halfway (several statements in one text, a procedure `CALL`, DDL, a Redis script): then it may have |
//! | `finish(false)`: no answer, or one that says nothing of what was done | may have taken effect |
//! | cut by its time limit ([`expire`](Operation::expire)), past `max_rows`, or dropped unfinished | may have taken effect |
//!
//! [`Writes`]: crate::report::Writes
//! [`BudgetExceeded`]: crate::BudgetExceeded

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crate::tracker::error::BudgetExceeded;
use crate::tracker::fingerprint::{self, Dialect, Shared};
use crate::tracker::observe::{self, OnEnd, OperationEnd};
use crate::tracker::report::Writes;
use crate::tracker::scope::{self, Resource, Scope};
use crate::tracker::timeline::{self, Done, Settled};

/// The path template of an external call, as the calling code knows it
/// (`"/users/{name}"`): put in the request's extensions, it names the call
/// on the timeline and for repeated calls instead of the template zen makes
/// of the path, which keeps a segment of lowercase letters (a user's name
/// would stay). Its segments are kept as written (up to 16, each up to 32
/// bytes), and each `{...}` reads `{}` ([`Operation::template`]).
///
/// zen's `http::Middleware` reads it from `reqwest-middleware`'s
/// extensions (`.with_extension(CallTemplate("/users/{name}"))` before
/// `.send()`; `ClientWithMiddleware::execute` passes none), and
/// `deadline::DeadlineLayer` from the `http::Request`'s; zen's own client
/// takes the same as `RequestBuilder::template`. A gRPC call is named by
/// its method's path, which holds no value: a template is not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallTemplate(pub &'static str);

/// One database operation or external call in progress, started by [`query`],
/// [`command_sent`] or [`call`]. Its time runs until
/// [`finish`](Operation::finish), or until it is dropped (a stream dropped
/// halfway: recorded as a success).
#[must_use = "an operation's time runs until it is finished or dropped"]
pub struct Operation {
    scope: Option<Arc<Scope>>,
    resource: Resource,
    backend: &'static str,
    subject: Subject,
    start: Option<Instant>,
    /// It may change what the system keeps (see "Writes" above).
    writes: bool,
    /// A failure the system answers with leaves nothing of it behind.
    whole: bool,
    /// What observers asked to hear when it ends (an OpenTelemetry span
    /// with `otel::set_db_spans(true)`); none, usually.
    on_end: Option<OnEnd>,
    /// The next page of a cursor: never an N+1 suspect.
    paging: bool,
    /// Its time as the client measured it, in place of zen's clock.
    took: Option<Duration>,
    /// A write sent before zen heard of it, counted on its way until it ends.
    on_its_way: bool,
    /// What the timeline needs of it, while its scope records one: boxed,
    /// so that an operation of a scope that records none stays small.
    timeline: Option<Box<OnTimeline>>,
}

/// What an operation keeps for its scope's timeline.
#[derive(Debug, Default)]
struct OnTimeline {
    /// Rows it returned.
    rows: AtomicU64,
    /// The hash of the statement's own text, and of its values once given
    /// ([`Operation::values`]).
    text: u64,
    values: Option<u64>,
    /// A call's method, host and path template ([`Operation::request`], [`Operation::template`]).
    call: Option<Arc<str>>,
    /// Cut by its time limit or `max_rows`.
    cut: bool,
}

impl OnTimeline {
    /// For an operation of `scope`, if it records its timeline: zen's
    /// memory, charged to no scope.
    fn of(scope: &Scope, text: impl FnOnce() -> u64) -> Option<Box<OnTimeline>> {
        scope.records().then(|| {
            crate::tracker::alloc::untracked(|| Box::new(OnTimeline { text: text(), ..OnTimeline::default() }))
        })
    }
}

impl std::fmt::Debug for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operation")
            .field("backend", &self.backend)
            .field("subject", &self.subject)
            .field("writes", &self.writes)
            .finish_non_exhaustive()
    }
}

/// Issues a database operation on `backend` (`"PostgreSQL"`, `"redis"`,
/// ...): counts it now, and when it ends records it under the fingerprint
/// of `statement` (a SQL text or a command name), read in the dialect of
/// `backend` (see
/// [`Dialect::of_backend`]; any other backend is read in the most careful
/// dialect). Values in it are dropped, but prefer placeholders.
///
/// # Errors
/// In `enforce` mode, when the current scope or an enclosing enforced one has
/// used its `max_queries` or `max_db_ms`, or is past its deadline. The refusal
/// is counted in the report and the operation is not.
pub fn query(backend: &'static str, statement: &str) -> Result<Operation, BudgetExceeded> {
    let Some(scope) = scope::current() else {
        return Ok(Operation::outside(Resource::Db, backend));
    };
    if let Err(refused) = scope.admit(Resource::Db) {
        if scope.records() {
            let fingerprint = fingerprint::shared(statement, Dialect::of_backend(backend));
            ended_on_timeline(&scope, backend, &fingerprint.text, Duration::ZERO, Settled::Refused, false);
        }
        return Err(refused);
    }
    let fingerprint = fingerprint::shared(statement, Dialect::of_backend(backend));
    scope.issue_query(&fingerprint.text);
    Ok(Operation {
        timeline: OnTimeline::of(&scope, || timeline::text_hash(statement)),
        scope: Some(scope),
        resource: Resource::Db,
        backend,
        on_end: observe::operation_started(|| OperationEnd {
            backend,
            operation: fingerprint.operation,
            fingerprint: &fingerprint.text,
            elapsed: Duration::ZERO,
            ok: true,
        }),
        writes: fingerprint.effect.writes,
        whole: fingerprint.effect.whole,
        subject: Subject::Statement(fingerprint),
        start: Some(Instant::now()),
        paging: false,
        took: None,
        on_its_way: false,
    })
}

/// Checks, without issuing anything, that a database operation would be
/// admitted now: for clients that must refuse before taking a resource (a
/// pooled connection) and issue the operation later.
///
/// # Errors
/// As [`query`]; the refusal is counted.
pub fn admit_query() -> Result<(), BudgetExceeded> {
    scope::current::with(|s| s.map_or(Ok(()), |s| s.admit(Resource::Db)))
}

/// Starts a call to an external system on `host` (reported per host).
///
/// # Errors
/// In `enforce` mode, when the current scope or an enclosing enforced one has
/// used its `max_http_calls` or `max_http_ms`, or is past its deadline.
pub fn call(host: &str) -> Result<Operation, BudgetExceeded> {
    let Some(scope) = scope::current() else {
        return Ok(Operation::outside(Resource::Http, "http"));
    };
    if let Err(refused) = scope.admit(Resource::Http) {
        if scope.records() {
            let host = crate::tracker::alloc::untracked(|| Arc::from(host));
            ended_on_timeline(&scope, "http", &host, Duration::ZERO, Settled::Refused, false);
        }
        return Err(refused);
    }
    Ok(Operation {
        timeline: OnTimeline::of(&scope, || 0),
        scope: Some(scope),
        resource: Resource::Http,
        backend: "http",
        subject: Subject::Host(Arc::from(host)),
        start: Some(Instant::now()),
        writes: true,
        whole: true,
        on_end: None,
        paging: false,
        took: None,
        on_its_way: false,
    })
}

/// Counts a database operation that the client has sent already and tells
/// zen of only now, from an event of its own (a driver's command-started
/// event): never refused, since it cannot be taken back. `shape` names it:
/// a text the adapter made with no value in it (a document store's command,
/// collection and the keys of its filter), kept as given (never read as
/// SQL) up to [`MAX_LEN`](crate::fingerprint::MAX_LEN) bytes. `operation`
/// is the adapter's name for its kind (`"find"`, `"insert"`), a label of
/// the exporters. `writes`: it may change what the system keeps; until it
/// ends (or is dropped), what the scope's writes did is at least unknown,
/// so a request cut meanwhile never says that nothing was committed.
///
/// Refusal belongs before the client sends: [`admit_query`] and
/// [`time_limit`] at the call site.
pub fn command_sent(backend: &'static str, operation: &'static str, shape: &str, writes: bool) -> Operation {
    let Some(scope) = scope::current() else {
        return Operation::outside(Resource::Db, backend);
    };
    let fingerprint = fingerprint::shaped(shape, operation);
    scope.issue_query(&fingerprint.text);
    if writes {
        scope.write_on_its_way(true);
    }
    Operation {
        timeline: OnTimeline::of(&scope, || 0),
        scope: Some(scope),
        resource: Resource::Db,
        backend,
        on_end: observe::operation_started(|| OperationEnd {
            backend,
            operation,
            fingerprint: &fingerprint.text,
            elapsed: Duration::ZERO,
            ok: true,
        }),
        writes,
        whole: true,
        subject: Subject::Statement(fingerprint),
        start: Some(Instant::now()),
        paging: false,
        took: None,
        on_its_way: writes,
    }
}

/// The longest a database operation started now may take before a budget in
/// `enforce` mode is blown (see [`Operation::time_limit`]); `None` outside a
/// scope or with no enforced bound. For a client that bounds its operations
/// at the call site and learns of them later ([`command_sent`]).
#[must_use]
pub fn time_limit() -> Option<Duration> {
    scope::current::with(|s| s.and_then(|s| s.time_left(Resource::Db)))
}

/// What an operation is on: a database statement or a host; nothing
/// outside a scope, where nothing is recorded.
#[derive(Debug)]
enum Subject {
    Statement(Shared),
    Host(Arc<str>),
    Nothing,
}

impl Operation {
    // Outside a scope nothing is recorded, so nothing needs the clock.
    fn outside(resource: Resource, backend: &'static str) -> Self {
        Operation {
            timeline: None,
            scope: None,
            resource,
            backend,
            subject: Subject::Nothing,
            start: None,
            writes: false,
            whole: true,
            on_end: None,
            paging: false,
            took: None,
            on_its_way: false,
        }
    }

    /// Gives the operation's bound values, to find the same statement run
    /// again with the same values in one scope (a *duplicate*, see
    /// [`timeline`](crate::timeline)). Only while the scope records its
    /// timeline are they read: their `Debug` form is fed to a hasher with
    /// the statement's text, and never kept. An operation given no values
    /// is never a duplicate.
    #[inline]
    pub fn values(mut self, values: &dyn std::fmt::Debug) -> Self {
        if self.timeline.is_some() {
            self.hash_values(values);
        }
        self
    }

    /// [`values`](Self::values) while the scope records its timeline.
    #[cold]
    #[inline(never)]
    fn hash_values(&mut self, values: &dyn std::fmt::Debug) {
        let Some(t) = &mut self.timeline else { return };
        let hash = timeline::values_hash(t.text, values);
        t.values = Some(hash);
        // Where it is issued, if these values ran before: the caller's
        // code is on the stack now, maybe not when the run ends.
        if let (false, Some(scope), Subject::Statement(fingerprint)) = (self.writes, &self.scope, &self.subject) {
            scope.issued_with_values(&fingerprint.text, hash);
        }
    }

    /// Names a call by its method and path (from [`call`], which knows the
    /// host alone): on the timeline and for repeated calls, the path's
    /// template stands for it, never a value (see
    /// [`timeline`](crate::timeline)). Read only while the scope records
    /// its timeline. When the caller gave a [`CallTemplate`], name it by
    /// [`template`](Self::template) instead.
    pub fn request(self, method: &str, path: &str) -> Self {
        self.named(method, path, false)
    }

    /// Names a call by its method and the path template its caller gave:
    /// the template's segments as written, each `{...}` read `{}`.
    pub fn template(self, method: &str, template: CallTemplate) -> Self {
        self.named(method, template.0, true)
    }

    fn named(mut self, method: &str, path: &str, template: bool) -> Self {
        if let (Some(t), Subject::Host(host)) = (&mut self.timeline, &self.subject) {
            // zen's memory, as the timeline's is: charged to no scope.
            let subject = || Arc::from(timeline::call_subject(method, host, path, template));
            t.call = Some(crate::tracker::alloc::untracked(subject));
        }
        self
    }

    /// Names a gRPC call by its path (`/package.Service/Method`, which names
    /// a method and holds no value), kept whole up to 128 bytes.
    #[cfg(feature = "tower")]
    pub(crate) fn grpc(mut self, path: &str) -> Self {
        if let (Some(t), Subject::Host(host)) = (&mut self.timeline, &self.subject) {
            let call = if path.len() <= 128 {
                format!("POST {host}{path}")
            } else {
                timeline::call_subject("POST", host, path, false)
            };
            t.call = Some(crate::tracker::alloc::untracked(|| Arc::from(call)));
        }
        self
    }

    /// Marks the operation as the next page of a result already counted (a
    /// cursor's `getMore`): counted and timed, never an N+1 suspect.
    pub fn paging(mut self) -> Self {
        self.paging = true;
        self
    }

    /// Its time as the client measured it (a driver's own duration), in
    /// place of the time from [`query`] or [`command_sent`] to its end.
    pub fn took(mut self, elapsed: Duration) -> Self {
        self.took = Some(elapsed);
        self
    }

    /// Says that a failure the system answers with may still leave part of
    /// it done (a write of many documents interrupted halfway, a commit
    /// whose answer was an error): such a failure counts as a write that
    /// may have taken effect (see "Writes" above).
    pub fn may_fail_halfway(mut self) -> Self {
        self.whole = false;
        self
    }

    /// Whether the scope it counts in has ended: an adapter that keeps
    /// operations until its client tells how they ended (an event that
    /// never comes for a future dropped halfway) lets such ones go with
    /// [`abandon`](Self::abandon).
    #[must_use]
    pub fn scope_ended(&self) -> bool {
        self.scope.as_ref().is_none_or(|scope| scope.has_ended())
    }

    /// Lets go of an operation whose end zen will not hear of: recorded as
    /// dropped unfinished, with no time of its own (it is not known), its
    /// write in doubt; in a scope that has ended, only the write is (in
    /// the enclosing scopes: the report is made).
    pub fn abandon(mut self) {
        self.took = Some(Duration::ZERO);
        match self.scope.take() {
            // Ended: its report is made, but an enclosing scope may still
            // run, and a write may have taken effect there.
            Some(scope) if scope.has_ended() => {
                if let Some(on_end) = self.on_end.take() {
                    observe::operation_ends(on_end, self.backend, false);
                }
                if self.writes {
                    scope.note_write(Writes::Unknown);
                }
                if self.on_its_way {
                    scope.write_on_its_way(false);
                }
            }
            scope => {
                self.scope = scope;
                self.record(true, false, Writes::Unknown);
            }
        }
    }

    /// The longest this operation may take before a budget in `enforce` mode
    /// is blown: the least of the time left before each enforced deadline and
    /// in each enforced time budget. `None`: no enforced bound applies (your
    /// client's own timeout still should).
    #[must_use]
    pub fn time_limit(&self) -> Option<Duration> {
        self.scope.as_ref().and_then(|s| s.time_left(self.resource))
    }

    /// Says whether the operation may change what the system keeps, in
    /// place of what [`query`] read from its statement (anything not known
    /// to be a read) or [`call`] assumed (every call).
    pub fn writes(mut self, writes: bool) -> Self {
        if self.on_its_way && !writes {
            self.on_its_way = false;
            if let Some(scope) = &self.scope {
                scope.write_on_its_way(false);
            }
        }
        self.writes = writes;
        self
    }

    /// Records how the operation ended: `ok`, or failed. A write that
    /// failed may have taken effect: when the system answered that it did
    /// nothing, say so with [`finish_rejected`](Self::finish_rejected).
    pub fn finish(mut self, ok: bool) {
        self.record(ok, true, if ok { Writes::Committed } else { Writes::Unknown });
    }

    /// Records the operation as failed with the system's answer (a SQL
    /// error, a Redis error reply): a write took no effect, unless its
    /// statement is one zen knows may fail halfway (see "Writes" above).
    pub fn finish_rejected(mut self) {
        let written = if self.whole { Writes::None } else { Writes::Unknown };
        self.record(false, true, written);
    }

    /// Whether a failure the system answers with leaves nothing of the
    /// statement behind (see "Writes" above): `false` for several
    /// statements in one text, a procedure, DDL or a script. A client that
    /// runs the statement inside a transaction it does not commit can use
    /// it to say that the operation commits nothing itself.
    #[must_use]
    pub fn fails_whole(&self) -> bool {
        self.whole
    }

    /// [`finish`](Self::finish), with what a write did given apart: for a
    /// client whose answer says it, such as an HTTP status (a `4xx` to a
    /// `POST` took no effect, unless it came after a redirect).
    pub fn finish_with(mut self, ok: bool, writes: Writes) {
        self.record(ok, true, writes);
    }

    /// How many more rows the scope may receive before an enforced
    /// `max_rows` is exceeded; `None`: no enforced limit applies.
    #[must_use]
    pub fn rows_left(&self) -> Option<u64> {
        self.scope.as_ref().and_then(|s| s.rows_left())
    }

    /// Records rows this operation returned to the scope (call it once per
    /// batch, or once at the end).
    pub fn add_rows(&self, rows: u64) {
        if let Some(scope) = &self.scope {
            if let Some(t) = &self.timeline {
                t.rows.fetch_add(rows, Relaxed);
            }
            scope.add_rows(rows);
        }
    }

    /// Records `rows` returned past [`rows_left`](Self::rows_left) and the
    /// operation as failed, and returns the `max_rows` error: the caller
    /// ends the result there.
    pub fn exceed_rows(mut self, rows: u64) -> BudgetExceeded {
        self.add_rows(rows);
        let scope = self.scope.clone();
        // It ran, and is cut mid-reply.
        self.cut();
        self.record(false, true, Writes::Unknown);
        match scope.and_then(|s| s.blown()) {
            Some(exceeded) => exceeded,
            None => BudgetExceeded::new("(outside any scope)".into(), crate::Budget::Rows, 0, rows),
        }
    }

    /// Records the operation as failed because [`time_limit`](Self::time_limit)
    /// ran out, and returns the error that says which budget it hit.
    /// (Outside a scope there is no time limit to run out; called there
    /// anyway, it says so rather than panic.)
    pub fn expire(mut self) -> BudgetExceeded {
        let scope = self.scope.clone();
        self.cut();
        self.record(false, true, Writes::Unknown);
        match scope {
            Some(scope) => scope.expired(self.resource),
            None => BudgetExceeded::new("(outside any scope)".into(), crate::Budget::Timeout, 0, 0),
        }
    }

    /// Takes back an operation the caller will not start after all,
    /// because [`time_limit`](Self::time_limit) leaves too little for it
    /// (below a floor of the caller's, such as [`Deadline::floor`]):
    /// counted as refused, as a spent budget refuses, and not as run.
    /// Returns the error of the enforced time budget that has the least
    /// left. (Outside a scope nothing is counted, and it says so.)
    ///
    /// [`Deadline::floor`]: crate::deadline::Deadline::floor
    pub fn refuse(mut self) -> BudgetExceeded {
        if let Some(on_end) = self.on_end.take() {
            observe::operation_ends(on_end, self.backend, false);
        }
        let Some(scope) = self.scope.take() else {
            return BudgetExceeded::new("(outside any scope)".into(), crate::Budget::Timeout, 0, 0);
        };
        if self.on_its_way {
            scope.write_on_its_way(false);
        }
        if scope.records() {
            match &self.subject {
                Subject::Statement(fingerprint) => {
                    ended_on_timeline(&scope, self.backend, &fingerprint.text, Duration::ZERO, Settled::Refused, false);
                }
                Subject::Host(host) => {
                    let call = self.timeline.as_ref().and_then(|t| t.call.as_ref());
                    let subject = call.unwrap_or(host);
                    ended_on_timeline(&scope, "http", subject, Duration::ZERO, Settled::Refused, false);
                }
                Subject::Nothing => {}
            }
        }
        scope.refuse_short(self.resource)
    }

    /// Marks it cut (by its time limit or `max_rows`), for the timeline.
    fn cut(&mut self) {
        if let Some(t) = &mut self.timeline {
            t.cut = true;
        }
    }

    /// `in_poll`: ended by the code that runs it, not dropped (maybe with
    /// a future cancelled from outside it). `written`: what a write did.
    fn record(&mut self, ok: bool, in_poll: bool, written: Writes) {
        if let Some(on_end) = self.on_end.take() {
            observe::operation_ends(on_end, self.backend, ok);
        }
        if let (Some(scope), Some(start)) = (self.scope.take(), self.start) {
            let elapsed = self.took.unwrap_or_else(|| start.elapsed());
            match &self.subject {
                Subject::Statement(fingerprint) => {
                    scope.finish_query(self.backend, fingerprint, elapsed, ok, in_poll, self.paging);
                }
                Subject::Host(host) => scope.record_call(host, elapsed, ok),
                Subject::Nothing => {}
            }
            if let Some(t) = &self.timeline {
                self.put_on_timeline(t, &scope, start, elapsed, ok, in_poll);
            }
            if self.writes {
                scope.note_write(written);
            }
            if self.on_its_way {
                scope.write_on_its_way(false);
            }
        }
    }

    /// Puts the operation on the timeline of its scope (and the enclosing
    /// ones that record one). Out of line: a scope that records no
    /// timeline pays one comparison.
    #[cold]
    #[inline(never)]
    fn put_on_timeline(
        &self,
        t: &OnTimeline,
        scope: &Scope,
        start: Instant,
        elapsed: Duration,
        ok: bool,
        in_poll: bool,
    ) {
        let settled = match (t.cut, in_poll) {
            (true, _) => Settled::Cut,
            (false, false) => Settled::Dropped,
            (false, true) => settled(ok),
        };
        let subject = match (&self.subject, &t.call) {
            (Subject::Statement(fingerprint), _) => &fingerprint.text,
            (Subject::Host(_), Some(call)) => call,
            (Subject::Host(host), None) => host,
            (Subject::Nothing, _) => return,
        };
        let done = Done {
            // The client's own time ends now, as zen's does.
            started: match self.took {
                None => start,
                Some(took) => Instant::now().checked_sub(took).unwrap_or(start),
            },
            elapsed,
            backend: self.backend,
            subject,
            rows: t.rows.load(Relaxed),
            settled,
            values: t.values,
            call: self.resource == Resource::Http,
            writes: self.writes,
        };
        scope.record_timeline(&done, in_poll);
    }
}

/// `Ok` or `Failed`.
fn settled(ok: bool) -> Settled {
    if ok { Settled::Ok } else { Settled::Failed }
}

impl Drop for Operation {
    // Inlined: after `finish`, `expire` or `exceed_rows` there is nothing
    // left to record, and finding that out costs one comparison. Dropped
    // unfinished (a stream dropped halfway, a future cancelled), it counts
    // as a success; a write may or may not have taken effect.
    #[inline]
    fn drop(&mut self) {
        if self.scope.is_some() {
            self.record(true, false, Writes::Unknown);
        }
        // zen's memory, freed as it was allocated: charged to no scope.
        if let Some(timeline) = self.timeline.take() {
            crate::tracker::alloc::untracked(|| drop(timeline));
        }
    }
}

/// Records a database operation that already happened and was timed by the
/// caller. Never refuses; use [`query`] to be refused in `enforce`.
pub fn record_query(backend: &'static str, statement: &str, elapsed: Duration, ok: bool) {
    if let Some(scope) = scope::current() {
        let fingerprint = fingerprint::shared(statement, Dialect::of_backend(backend));
        scope.issue_query(&fingerprint.text);
        scope.finish_query(backend, &fingerprint, elapsed, ok, true, false);
        if fingerprint.effect.writes {
            scope.note_write(if ok { Writes::Committed } else { Writes::Unknown });
        }
        if scope.records() {
            ended_on_timeline(&scope, backend, &fingerprint.text, elapsed, settled(ok), false);
        }
    }
}

/// Puts an operation that ends now on the scope's timeline: timed by its
/// caller (`settled` ok or failed), or refused (no time). With no values,
/// it is never a duplicate; a call counts toward repeated calls.
#[cold]
fn ended_on_timeline(
    scope: &Scope,
    backend: &'static str,
    subject: &Arc<str>,
    elapsed: Duration,
    settled: Settled,
    call: bool,
) {
    let now = Instant::now();
    let done = Done {
        started: now.checked_sub(elapsed).unwrap_or(now),
        elapsed,
        backend,
        subject,
        rows: 0,
        settled,
        values: None,
        call,
        writes: true,
    };
    scope.record_timeline(&done, true);
}

/// Records time spent waiting for a pooled connection: reported as
/// `db_wait`, apart from query time.
pub fn record_wait(elapsed: Duration) {
    scope::current::with(|s| {
        if let Some(s) = s {
            s.record_wait(elapsed);
        }
    });
}

/// Records an external call to `host` that already happened and was timed
/// by the caller; like every call, a write that took effect (`ok`) or may
/// have.
pub fn record_call(host: &str, elapsed: Duration, ok: bool) {
    scope::current::with(|s| {
        if let Some(s) = s {
            s.record_call(host, elapsed, ok);
            s.note_write(if ok { Writes::Committed } else { Writes::Unknown });
            if s.records() {
                let host = crate::tracker::alloc::untracked(|| Arc::from(host));
                ended_on_timeline(s, "http", &host, elapsed, settled(ok), true);
            }
        }
    });
}

/// Says that frames of the crate `name` (`"mongodb"`, as it appears in
/// paths) are the client's: the call site of an N+1 is the first frame of
/// the application above them. zen's own wrappers' clients (sqlx, Redis,
/// reqwest, apalis) are known already.
pub fn client_crate(name: &'static str) {
    crate::tracker::call_site::add_library(name);
}

/// `true` when the calling code runs inside a budget scope.
#[must_use]
pub fn in_scope() -> bool {
    scope::current::with(|s| s.is_some())
}
