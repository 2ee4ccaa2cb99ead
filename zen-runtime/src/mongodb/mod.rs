//! Every command of the official MongoDB driver (`mongodb` 3.x) counted
//! into the current budget, from the driver's own command events: as
//! database operations of the backend `"mongodb"` beside the SQL ones
//! (`max_queries`, `max_db_ms`, per-backend figures), timed by the driver's
//! own duration, fingerprinted by their shape, with the documents they
//! return as rows.
//!
//! One call at start-up installs it on the client's options; any command
//! event handler the application set is kept and still called:
//!
//! ```no_run
//! # async fn demo() -> mongodb::error::Result<()> {
//! use mongodb::bson::doc;
//! use mongodb::options::ClientOptions;
//! use zen_runtime::mongodb::WithinBudget as _;
//!
//! let mut options = ClientOptions::parse("mongodb://127.0.0.1:27017").await?;
//! zen_runtime::mongodb::install(&mut options);
//! let client = mongodb::Client::with_options(options)?;
//! let users = client.database("app").collection::<mongodb::bson::Document>("users");
//! // Counted: `find users filter {status: ?}`.
//! let active = users.find_one(doc! { "status": "active" }).await?;
//! // Counted, refused in `enforce` once the budget is spent, and cut at
//! // the time left.
//! let n = users.count_documents(doc! {}).within_budget().await?;
//! # Ok(()) }
//! ```
//!
//! # What a command is counted as
//!
//! Each command the driver sends inside a scope (`find`, `aggregate`,
//! `insert`, `update`, `delete`, `findAndModify`, `count`, `distinct`,
//! `getMore`, `commitTransaction`, ...) is one operation. Started and
//! finished events are paired by request id and connection. A command
//! outside any scope (the driver's monitoring, a `killCursors` of a cursor
//! dropped, which the driver sends from a task of its own) is not counted.
//!
//! - **Fingerprint**: the command, its collection and the shape of its
//!   `filter`, `pipeline`, `update`, sort and projection: keys and operators
//!   kept, every value `?`, an array of values `[?]` whatever its length,
//!   bounded like a SQL fingerprint: `find users filter {age: {$gt: ?}} sort
//!   {age: ?}`. The documents an `insert` sends are not read. A key that may
//!   be a value (an array index, a UUID or hexadecimal id used as a key) is
//!   `?` too; a key that is a plain word is kept, so a map keyed by names
//!   (`scores.ann`) shows its keys: keep such maps in arrays of documents.
//!   N+1 detection works on these shapes; the `getMore`s of one cursor are
//!   its pages, never an N+1 suspect.
//! - **Rows**: the documents of a cursor's batches (first and next), and
//!   the document a `findAndModify` returns.
//! - **Writes** (what a refused request says it committed): every command
//!   but the reads (`find`, an `aggregate` without `$out` or `$merge`,
//!   `count`, `distinct`, `getMore`, ...) may write; inside a transaction,
//!   only its `commitTransaction`. A write counts as unknown from the moment
//!   it is sent until its answer, so a request cut meanwhile never says that
//!   nothing was committed. A command the server answers with an error
//!   (`ok: 0`) took no effect, unless it may stop halfway (a write of
//!   several documents or statements, an `aggregate` with `$merge` or
//!   `$out`, `commitTransaction`, `dropDatabase`, `bulkWrite`): then, as
//!   one with no answer, it may have. One answered with `writeErrors`
//!   failed, and committed what it did (`n`); one with a
//!   `writeConcernError` failed, its write unknown.
//!
//! # Enforce
//!
//! The driver tells of a command once it is on its way, and has no hook to
//! stop one, so counting alone cannot refuse: a command past the budget is
//! counted, and `enforce` then cuts the scope at its next poll (the `503`
//! of [`layer`](crate::layer), with what was committed). To refuse before
//! sending, await an action [`within_budget`](WithinBudget::within_budget):
//! it asks the budget first (refused with an error that
//! [`as_budget_exceeded`] finds, counted in `refused_queries`), and cuts
//! the commands it sends at the time left in `max_db_ms` or before the
//! deadline, counted failed (waiting for a server or a connection before
//! any is sent is not database time: it ends at the deadline, refused). The client stays usable: the driver closes a
//! connection whose command was cut, and the next command takes another.
//! The server also stops at the time left when the action takes a
//! `max_time`:
//!
//! ```no_run
//! # async fn demo(users: mongodb::Collection<mongodb::bson::Document>) -> mongodb::error::Result<()> {
//! use mongodb::action::Action as _;
//! use mongodb::bson::doc;
//! use zen_runtime::mongodb::WithinBudget as _;
//!
//! let limit = zen_runtime::instrument::time_limit();
//! let cursor = users.find(doc! {}).optional(limit, |find, limit| find.max_time(limit)).within_budget().await?;
//! # Ok(()) }
//! ```
//!
//! A session dropped with its transaction open (its request cut) is
//! aborted by the driver: none of its writes is kept.
//!
//! # Cost
//!
//! zen's bookkeeping is about 2,600 instructions a command (BENCHMARKS.md).
//! But the driver makes its events only for a handler, turning the raw
//! BSON of every command and reply into `Document`s: a `find` by id then
//! costs the client about 38% more instructions, 80% of it the driver's
//! making of the events.

mod shape;
mod within;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{LazyLock, Mutex, PoisonError};

use mongodb::error::{Error, ErrorKind};
use mongodb::event::EventHandler;
use mongodb::event::command::{CommandEvent, CommandFailedEvent, CommandStartedEvent, CommandSucceededEvent};
use mongodb::options::ClientOptions;

use crate::BudgetExceeded;
use crate::alloc;
use crate::instrument::{self, Operation};
use crate::report::Writes;
pub use within::{Within, WithinBudget};

/// The backend name in reports.
pub const BACKEND: &str = "mongodb";

/// Installs zen on the client's options: every command a client made from
/// them sends inside a scope is counted (see the module's docs). A command
/// event handler already set is kept, and called after zen's with every
/// event. Call it once per options.
pub fn install(options: &mut ClientOptions) {
    instrument::client_crate("mongodb");
    instrument::client_crate("bson");
    let previous = options.command_event_handler.take();
    options.command_event_handler = Some(EventHandler::callback(move |event: CommandEvent| {
        match &event {
            CommandEvent::Started(started) => self::started(started),
            CommandEvent::Succeeded(succeeded) => self::succeeded(succeeded),
            CommandEvent::Failed(failed) => self::failed(failed),
            _ => {}
        }
        if let Some(previous) = &previous {
            forward(previous, event);
        }
    }));
}

/// Hands an event to the application's own handler, as the driver would.
fn forward(handler: &EventHandler<CommandEvent>, event: CommandEvent) {
    match handler {
        EventHandler::Callback(callback) => callback(event),
        EventHandler::AsyncCallback(callback) => {
            tokio::spawn(callback(event));
        }
        EventHandler::TokioMpsc(sender) => {
            let sender = sender.clone();
            tokio::spawn(async move {
                let _ = sender.send(event).await;
            });
        }
        // A kind of handler newer than this code: it cannot be called.
        _ => {}
    }
}

/// The error of a command refused or cut by a budget: a custom error of the
/// driver carrying the [`BudgetExceeded`], which [`as_budget_exceeded`]
/// finds. So `?` takes a budget's error into the driver's, and a
/// `#[zen(mode = "enforce")]` fn returning `mongodb::error::Result` can be
/// cut short.
impl From<BudgetExceeded> for Error {
    fn from(exceeded: BudgetExceeded) -> Self {
        Error::custom(exceeded)
    }
}

/// The [`BudgetExceeded`] inside a driver's error, if a budget caused it.
#[must_use]
pub fn as_budget_exceeded(error: &Error) -> Option<&BudgetExceeded> {
    error.get_custom::<BudgetExceeded>()
}

/// A command on its way: counted when it started, recorded when it ends.
struct Sent {
    connection: u32,
    op: Operation,
    /// The [`within_budget`](WithinBudget::within_budget) call it was sent
    /// in, 0 for none: what that call ends if it is cut.
    call: u64,
    /// Its place in the order of sending, to drop the oldest when full.
    order: u64,
}

/// Commands started and not yet ended, by request id (unique in the
/// process: the driver counts them globally).
#[derive(Default)]
struct InFlight {
    sent: HashMap<i32, Sent, BuildHasherDefault<IdHasher>>,
    order: u64,
}

/// At most this many commands are waited for (see [`InFlight::let_go`]).
const MAX_IN_FLIGHT: usize = 4096;

/// Every this many commands, those of ended scopes are let go.
const SWEEP: u64 = 256;

static IN_FLIGHT: LazyLock<Mutex<InFlight>> = LazyLock::new(Mutex::default);

/// Shapes kept per thread; past it they are dropped and written again.
/// Each is at most `fingerprint::MAX_LEN` bytes: 256 KiB at most.
const MAX_SHAPES: usize = 512;

thread_local! {
    /// The shape of each structure of command seen on this thread (see
    /// `shape::Command::structure`): written once, not per command.
    static SHAPES: std::cell::RefCell<HashMap<u64, Box<str>, BuildHasherDefault<IdHasher>>> =
        std::cell::RefCell::new(HashMap::default());
}

fn in_flight() -> std::sync::MutexGuard<'static, InFlight> {
    IN_FLIGHT.lock().unwrap_or_else(PoisonError::into_inner)
}

fn started(event: &CommandStartedEvent) {
    if !instrument::in_scope() {
        return;
    }
    let (replaced, let_go) = {
        let name = event.command_name.as_str();
        let command = shape::Command::read(name, &event.command);
        let structure = command.structure();
        let mut op = SHAPES.with_borrow_mut(|shapes| {
            if !shapes.contains_key(&structure) {
                // zen's memory, never charged to the scope (nor below).
                alloc::untracked(|| {
                    if shapes.len() >= MAX_SHAPES {
                        shapes.clear();
                    }
                    let mut shape = String::new();
                    command.shape(&mut shape);
                    shapes.insert(structure, shape.into_boxed_str());
                });
            }
            let shape = shapes.get(&structure).map_or("?", |shape| shape);
            instrument::command_sent(BACKEND, shape::operation(name), shape, command.writes())
        });
        if name == "getMore" {
            op = op.paging();
        }
        if !command.fails_whole() {
            op = op.may_fail_halfway();
        }
        let mut table = in_flight();
        table.order += 1;
        let order = table.order;
        let sent = Sent { connection: event.connection.id, op, call: within::current_call(), order };
        if table.sent.len() == table.sent.capacity() {
            alloc::untracked(|| table.sent.reserve(1));
        }
        let replaced = table.sent.insert(event.request_id, sent);
        (replaced, table.let_go(order))
    };
    // Outside the lock: recording takes the scope's.
    drop(replaced);
    for sent in let_go {
        sent.op.abandon();
    }
}

impl InFlight {
    /// Commands zen will not hear the end of: every [`SWEEP`]th command,
    /// those of scopes that have ended (their futures were dropped halfway:
    /// the driver tells nothing then); past [`MAX_IN_FLIGHT`], the older
    /// half.
    fn let_go(&mut self, order: u64) -> Vec<Sent> {
        if order.is_multiple_of(SWEEP) {
            return self.take_where(|sent| sent.op.scope_ended());
        }
        if self.sent.len() > MAX_IN_FLIGHT {
            let oldest = order - (MAX_IN_FLIGHT / 2) as u64;
            return self.take_where(|sent| sent.order <= oldest);
        }
        Vec::new()
    }

    /// Takes out the commands `which` picks.
    fn take_where(&mut self, mut which: impl FnMut(&Sent) -> bool) -> Vec<Sent> {
        self.sent.extract_if(|_, sent| which(sent)).map(|(_, sent)| sent).collect()
    }
}

/// The command `request_id` sent on `connection`, if zen counted it.
fn take(request_id: i32, connection: u32) -> Option<Operation> {
    let mut table = in_flight();
    let sent = table.sent.remove(&request_id)?;
    if sent.connection == connection {
        return Some(sent.op);
    }
    // Another connection's command (never, while request ids are unique).
    table.sent.insert(request_id, sent);
    None
}

fn succeeded(event: &CommandSucceededEvent) {
    let Some(op) = take(event.request_id, event.connection.id) else { return };
    let reply = shape::Reply::read(&event.reply);
    let op = op.took(event.duration);
    op.add_rows(reply.documents);
    if reply.write_errors {
        // Some statements failed: the others may have been done.
        let written = if reply.n > 0 || !op.fails_whole() { Writes::Committed } else { Writes::None };
        op.finish_with(false, written);
    } else if reply.write_concern_error {
        // Done, but not kept as asked: it may be rolled back.
        op.finish_with(false, Writes::Unknown);
    } else {
        op.finish(true);
    }
}

fn failed(event: &CommandFailedEvent) {
    if let Some(op) = take(event.request_id, event.connection.id) {
        let op = op.took(event.duration);
        // `ok: 0`: the server answered, and a command that fails whole did
        // nothing. Anything else (no answer, a reply that could not be
        // read) says nothing of it.
        if matches!(*event.failure.kind, ErrorKind::Command(_)) {
            op.finish_rejected();
        } else {
            op.finish(false);
        }
    }
}

/// Ends the commands of a [`within_budget`](WithinBudget::within_budget)
/// call cut at its time limit, as expired; the error of the first.
fn expire_call(call: u64) -> Option<BudgetExceeded> {
    let cut = in_flight().take_where(|sent| sent.call == call);
    cut.into_iter().map(|sent| sent.op.expire()).reduce(|first, _| first)
}

/// Forgets the commands of a call dropped before they ended: each recorded
/// as an operation dropped unfinished (its write, if any, unknown).
fn drop_call(call: u64) {
    let dropped = in_flight().take_where(|sent| sent.call == call);
    drop(dropped);
}

/// Request ids are small consecutive integers, and structures hashes
/// already: each is its own hash.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn write_i32(&mut self, n: i32) {
        // Spread over the high bits too, where hashbrown takes its tags.
        self.0 = u64::from(n.cast_unsigned()).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::{InFlight, MAX_IN_FLIGHT, SWEEP, Sent};
    use crate::instrument;
    use crate::report::Writes;

    fn sent(order: u64) -> Sent {
        Sent { connection: 1, op: instrument::command_sent(super::BACKEND, "insert", "insert t", true), call: 0, order }
    }

    #[tokio::test]
    async fn the_commands_of_ended_scopes_are_let_go_at_a_sweep_their_writes_unknown() {
        let mut table = InFlight::default();
        let outer = crate::testing::measure(async {
            // Sent in a scope whose future is then dropped halfway.
            let ((), inner) = crate::testing::measure(async {
                table.sent.insert(1, sent(1));
            })
            .await;
            assert_eq!(inner.figures.writes(), Writes::Unknown, "on its way when the scope ended");
            // The enclosing scope still runs, and sends one of its own: a
            // sweep lets the ended scope's command go, and keeps this one.
            table.sent.insert(2, sent(2));
            let let_go = table.let_go(SWEEP);
            assert_eq!(let_go.iter().map(|sent| sent.order).collect::<Vec<_>>(), [1]);
            for sent in let_go {
                sent.op.abandon();
            }
            let kept = table.sent.remove(&2).expect("a live scope's command is kept");
            kept.op.finish(true);
        });
        let ((), outer) = outer.await;
        assert!(table.sent.is_empty());
        assert_eq!((outer.figures.queries(), outer.figures.writes()), (2, Writes::Committed));
        assert_eq!(outer.figures.failed_queries(), 0);
    }

    #[tokio::test]
    async fn past_its_bound_the_table_lets_the_older_half_go() {
        let mut table = InFlight::default();
        let ((), report) = crate::testing::measure(async {
            for order in 1..=(MAX_IN_FLIGHT as u64 + 1) {
                table.sent.insert(order as i32, sent(order));
            }
            let let_go = table.let_go(MAX_IN_FLIGHT as u64 + 1);
            assert_eq!(let_go.len(), MAX_IN_FLIGHT / 2 + 1);
            for sent in let_go {
                sent.op.abandon();
            }
            table.sent.clear();
        })
        .await;
        assert_eq!(report.figures.queries(), MAX_IN_FLIGHT as u64 + 1);
        // Each write let go or dropped may have taken effect.
        assert_eq!(report.figures.writes(), Writes::Unknown);
    }
}
