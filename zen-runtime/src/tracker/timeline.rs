//! The timeline of one scope: every operation's start, duration, backend,
//! fingerprint, rows and how it ended, the polls of the scope's future,
//! and the patterns found in them: the same statement run again with the
//! same values (a *duplicate*), and the same external call repeated (an
//! N+1 of calls).
//!
//! A scope records its timeline only while an observer asks for one
//! ([`Hooks::TIMELINES`](crate::observe::Hooks::TIMELINES); a dashboard
//! does, and the budget lock while it is on): otherwise nothing is
//! recorded and an operation pays one comparison. An observer reads it at
//! the scope's end with [`ScopeEnd::timeline`](crate::observe::ScopeEnd::timeline),
//! and may keep it. It holds no value: statements are fingerprints, calls
//! are a method, a host and a path template.
//!
//! # Bounds
//!
//! At most [`MAX_ENTRIES`] operations and as many polls per timeline (the
//! first ones; the rest are counted in
//! [`Timeline::omitted_entries`] and [`Timeline::omitted_polls`]),
//! [`MAX_STATEMENT_BYTES`] of distinct statements (shared with zen's
//! fingerprint cache while it holds them), [`MAX_KEYS`] distinct statement
//! values and call templates watched for repeats, and [`MAX_FINDINGS`]
//! duplicates and as many repeated calls (each a statement of at most 512
//! bytes and a call site): at most some 45 KiB a timeline.
//!
//! # Cost
//!
//! Recording one operation costs about 1,400 instructions (its values
//! hashed through `Debug` are a good part of it); a scope that records
//! none pays some 25 to 35 instructions an operation for the possibility
//! (BENCHMARKS.md, "A request's timeline").
//!
//! # Duplicates
//!
//! A duplicate is a statement run more than once in one scope with the same
//! values: the values are hashed (their `Debug` form fed to a hasher, never
//! kept) together with the statement's own text, by
//! [`Operation::values`](crate::instrument::Operation::values). zen's sqlx
//! wrapper gives the bound arguments of PostgreSQL, SQLite and MySQL and
//! the literal text; its Redis wrapper the command's arguments. An
//! operation whose adapter gives no values (MongoDB's command events carry
//! the document only to the driver's own listener, and
//! [`record_query`](crate::instrument::record_query) has none) is never a
//! duplicate, nor is a statement that may write (zen reads it from the
//! statement: an `UPDATE`, a Redis `INCR`), since running it again does it
//! again. A read whose answer changes by itself (`SELECT nextval(...)`,
//! `SELECT now()`) run twice with the same values is reported too: by its
//! text and values, it is the same run.
//!
//! # Repeated calls
//!
//! External calls are grouped by method, host and path template, the path
//! with every segment that may be a value replaced by `{}` (any segment
//! with a character other than a lowercase ASCII letter, `-` or `_`, or
//! longer than 32 bytes) and the query dropped: `GET api.example.com/users/{}/orders`.
//! A template run at least the scope's N+1 threshold of times is a
//! repeated call. (A segment of lowercase letters alone, such as a user
//! name in the path, stays in the template: give zen's client the template
//! your code knows, `http::RequestBuilder::template("/users/{name}")`, its
//! middleware and `DeadlineLayer` a
//! [`CallTemplate`](crate::instrument::CallTemplate) in the request's
//! extensions, or name the host alone with
//! [`instrument::call`](crate::instrument::call), where that matters. A
//! template's segments are kept as written, up to 32 bytes each, and each
//! `{...}` reads `{}`.)

use std::hash::Hasher as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::tracker::call_site::CallSite;
use crate::tracker::hash::{FxHashMap, FxHasher};
use crate::tracker::report::{Duplicate, RepeatedCall};

/// Operations kept per timeline, and polls.
pub const MAX_ENTRIES: usize = 128;
/// Distinct statement values and call templates watched per timeline.
pub const MAX_KEYS: usize = 128;
/// Bytes of distinct statements (and call templates) a timeline keeps; an
/// operation past them keeps its place, time and figures with
/// [`OMITTED_STATEMENT`] for its statement.
pub const MAX_STATEMENT_BYTES: usize = 16 * 1024;
/// Duplicates kept per timeline, and repeated calls: those run most.
pub const MAX_FINDINGS: usize = 16;
/// The statement of an operation past [`MAX_STATEMENT_BYTES`].
pub const OMITTED_STATEMENT: &str = "(statement not kept: the timeline's statements are full)";

/// How an operation on a timeline ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Settled {
    /// It succeeded.
    Ok,
    /// The system answered with an error, or did not answer.
    Failed,
    /// `enforce` refused it before it left.
    Refused,
    /// Cut by its time limit or by `max_rows`.
    Cut,
    /// Dropped before it ended (a future cancelled, a stream dropped).
    Dropped,
}

impl Settled {
    /// Lowercase name: `ok`, `failed`, `refused`, `cut`, `dropped`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Settled::Ok => "ok",
            Settled::Failed => "failed",
            Settled::Refused => "refused",
            Settled::Cut => "cut",
            Settled::Dropped => "dropped",
        }
    }
}

/// One operation on a timeline.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Entry {
    /// When it started, from the scope's start.
    pub start: Duration,
    /// How long it took.
    pub duration: Duration,
    /// The backend (`PostgreSQL`, `redis`, ...), or `http` for a call.
    pub backend: &'static str,
    /// The statement's fingerprint, or the call's method, host and path
    /// template (`GET api.example.com/users/{}`). Never a value.
    pub subject: Arc<str>,
    /// Rows it returned.
    pub rows: u64,
    /// How it ended.
    pub settled: Settled,
}

/// A span of time on a timeline: a poll of the scope's future.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// When it started, from the scope's start.
    pub start: Duration,
    /// How long it lasted.
    pub duration: Duration,
}

/// A scope's timeline, as it ended. See the [module](self).
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    elapsed: Duration,
    entries: Vec<Entry>,
    polls: Vec<Span>,
    omitted_entries: u64,
    omitted_polls: u64,
    duplicates: Vec<Duplicate>,
    repeated_calls: Vec<RepeatedCall>,
}

impl Timeline {
    /// The scope's whole time.
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// Its operations, in the order they ended (at most [`MAX_ENTRIES`]).
    #[must_use]
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Each poll of the scope's future: the scope's own time on a thread,
    /// the handler's code between its operations (at most [`MAX_ENTRIES`]).
    #[must_use]
    pub fn polls(&self) -> &[Span] {
        &self.polls
    }

    /// Operations past [`MAX_ENTRIES`], counted and not kept.
    #[must_use]
    pub fn omitted_entries(&self) -> u64 {
        self.omitted_entries
    }

    /// Polls past [`MAX_ENTRIES`], counted and not kept.
    #[must_use]
    pub fn omitted_polls(&self) -> u64 {
        self.omitted_polls
    }

    /// Statements run more than once with the same values.
    #[must_use]
    pub fn duplicates(&self) -> &[Duplicate] {
        &self.duplicates
    }

    /// External calls of one template run at least the N+1 threshold of
    /// times.
    #[must_use]
    pub fn repeated_calls(&self) -> &[RepeatedCall] {
        &self.repeated_calls
    }

    /// The time in which no operation ran and the scope's future was not
    /// polled: waiting on something zen does not see (a lock, a channel, a
    /// timer, a task it spawned, the runtime), each span at least `min`
    /// long. Computed from what was kept: with operations or polls
    /// omitted, an upper bound.
    #[must_use]
    pub fn gaps(&self, min: Duration) -> Vec<Span> {
        let mut busy: Vec<(Duration, Duration)> = self
            .entries
            .iter()
            .map(|e| (e.start, e.start.saturating_add(e.duration)))
            .chain(self.polls.iter().map(|p| (p.start, p.start.saturating_add(p.duration))))
            .collect();
        busy.sort_unstable();
        let mut gaps = Vec::new();
        let mut at = Duration::ZERO;
        for (start, end) in busy.into_iter().chain([(self.elapsed, self.elapsed)]) {
            if start > at && start - at >= min {
                gaps.push(Span { start: at, duration: start - at });
            }
            at = at.max(end);
        }
        gaps
    }
}

/// What a repeat is of.
enum Of {
    Statement { fingerprint: Arc<str>, backend: &'static str },
    Call(Arc<str>),
}

/// One statement's values, or one call template, run more than once.
struct Repeat {
    key: u64,
    of: Of,
    site: Option<Arc<CallSite>>,
}

/// A timeline being recorded, behind the scope's lock.
pub(crate) struct Recording {
    start: Instant,
    timeline: Timeline,
    repeats: Vec<Repeat>,
    /// How often each key ran, and where it is in `repeats` plus one (0:
    /// not there, having run once).
    keys: FxHashMap<u64, (u64, usize)>,
    /// Where a statement was issued again with values that ran before,
    /// taken then (its run may end dropped, with no user code on the
    /// stack), until its repeat is kept; at most [`MAX_FINDINGS`].
    issued_at: FxHashMap<u64, Arc<CallSite>>,
    /// The statements kept, and their bytes.
    statements: Vec<Arc<str>>,
    statement_bytes: usize,
    sealed: Option<Arc<Timeline>>,
}

/// The one [`OMITTED_STATEMENT`].
fn omitted() -> Arc<str> {
    static OMITTED: std::sync::OnceLock<Arc<str>> = std::sync::OnceLock::new();
    Arc::clone(OMITTED.get_or_init(|| Arc::from(OMITTED_STATEMENT)))
}

/// What [`Recording::operation`] records of one operation.
pub(crate) struct Done<'a> {
    pub(crate) started: Instant,
    pub(crate) elapsed: Duration,
    pub(crate) backend: &'static str,
    pub(crate) subject: &'a Arc<str>,
    pub(crate) rows: u64,
    pub(crate) settled: Settled,
    /// For a statement: the hash of its values, if its adapter gave them.
    pub(crate) values: Option<u64>,
    pub(crate) call: bool,
    /// It may change what the system keeps: run again, it does again (a
    /// statement that may write is never a duplicate).
    pub(crate) writes: bool,
}

impl Recording {
    pub(crate) fn new(start: Instant) -> Recording {
        Recording {
            start,
            timeline: Timeline::default(),
            repeats: Vec::new(),
            keys: FxHashMap::default(),
            issued_at: FxHashMap::default(),
            statements: Vec::new(),
            statement_bytes: 0,
            sealed: None,
        }
    }

    /// Records an operation; `threshold`: the scope's N+1 threshold, which
    /// a call template must reach to be a repeated call. Returns the index
    /// of a repeat that wants its call site ([`Recording::set_site`]).
    pub(crate) fn operation(&mut self, done: &Done<'_>, threshold: u64) -> Option<usize> {
        if self.timeline.entries.len() < MAX_ENTRIES {
            let subject = self.kept(done.subject);
            self.timeline.entries.push(Entry {
                start: done.started.saturating_duration_since(self.start),
                duration: done.elapsed,
                backend: done.backend,
                subject,
                rows: done.rows,
                settled: done.settled,
            });
        } else {
            self.timeline.omitted_entries += 1;
        }
        let key = match (done.call, done.values) {
            (true, _) => key(done.subject, 0),
            (false, Some(values)) if !done.writes => key(done.subject, values),
            (false, _) => return None,
        };
        let full = self.keys.len() >= MAX_KEYS;
        let (count, index) = match self.keys.get_mut(&key) {
            Some(seen) => {
                seen.0 += 1;
                *seen
            }
            None if !full => {
                self.keys.insert(key, (1, 0));
                return None;
            }
            None => return None,
        };
        // Kept apart from its second run on: most runs are of values seen once.
        let index = if index > 0 {
            index - 1
        } else {
            let of = if done.call {
                Of::Call(Arc::clone(done.subject))
            } else {
                Of::Statement { fingerprint: Arc::clone(done.subject), backend: done.backend }
            };
            let site = self.issued_at.remove(&key);
            self.repeats.push(Repeat { key, of, site });
            self.keys.insert(key, (count, self.repeats.len()));
            self.repeats.len() - 1
        };
        // From the run that makes it a finding on, until one of them ran
        // with user code on the stack (a run dropped, not polled, has none).
        let wanted = if done.call { threshold.max(2) } else { 2 };
        (count >= wanted && self.repeats[index].site.is_none()).then_some(index)
    }

    /// `subject` as the timeline keeps it: shared, within
    /// [`MAX_STATEMENT_BYTES`] of distinct statements.
    fn kept(&mut self, subject: &Arc<str>) -> Arc<str> {
        // The same statement is the same `Arc` (from the fingerprint
        // cache), almost always; a call's template is made per call.
        if let Some(kept) = self.statements.iter().find(|k| Arc::ptr_eq(k, subject) || ***k == **subject) {
            return Arc::clone(kept);
        }
        if self.statement_bytes + subject.len() > MAX_STATEMENT_BYTES {
            return omitted();
        }
        self.statements.push(Arc::clone(subject));
        self.statement_bytes += subject.len();
        Arc::clone(subject)
    }

    /// Whether a statement issued now with `values` repeats one that ran
    /// before and has no call site yet: then the caller, with user code on
    /// the stack, takes it ([`Recording::issued_from`]).
    pub(crate) fn wants_issue_site(&self, subject: &str, values: u64) -> Option<u64> {
        let key = key(subject, values);
        let &(count, index) = self.keys.get(&key)?;
        let kept = index > 0 && self.repeats[index - 1].site.is_some();
        (count >= 1 && !kept && !self.issued_at.contains_key(&key) && self.issued_at.len() < MAX_FINDINGS)
            .then_some(key)
    }

    /// Keeps where a repeat was issued, for when it is kept.
    pub(crate) fn issued_from(&mut self, key: u64, site: Arc<CallSite>) {
        match self.keys.get(&key) {
            Some(&(_, index)) if index > 0 => self.set_site(index - 1, site),
            _ => {
                self.issued_at.insert(key, site);
            }
        }
    }

    /// Keeps where a repeat was run from.
    pub(crate) fn set_site(&mut self, index: usize, site: Arc<CallSite>) {
        if let Some(repeat) = self.repeats.get_mut(index) {
            repeat.site.get_or_insert(site);
        }
    }

    pub(crate) fn poll(&mut self, started: Instant, elapsed: Duration) {
        let t = &mut self.timeline;
        if t.polls.len() < MAX_ENTRIES {
            t.polls.push(Span { start: started.saturating_duration_since(self.start), duration: elapsed });
        } else {
            t.omitted_polls += 1;
        }
    }

    /// The timeline as the scope ended `elapsed` after its start, made the
    /// first time it is asked for. `threshold`: the scope's N+1 threshold.
    pub(crate) fn seal(&mut self, elapsed: Duration, threshold: u64) -> Arc<Timeline> {
        if let Some(sealed) = &self.sealed {
            return Arc::clone(sealed);
        }
        let mut timeline = std::mem::take(&mut self.timeline);
        timeline.elapsed = elapsed;
        let keys = std::mem::take(&mut self.keys);
        for repeat in std::mem::take(&mut self.repeats) {
            let count = keys.get(&repeat.key).map_or(0, |k| k.0);
            let call_site = repeat.site.as_deref().map(CallSite::resolve);
            match repeat.of {
                Of::Statement { fingerprint, backend } if count >= 2 => {
                    timeline.duplicates.push(Duplicate {
                        fingerprint: fingerprint.to_string(),
                        backend,
                        count,
                        call_site,
                    });
                }
                Of::Call(call) if threshold > 0 && count >= threshold.max(2) => {
                    timeline.repeated_calls.push(RepeatedCall { call: call.to_string(), count, call_site });
                }
                _ => {}
            }
        }
        timeline.duplicates.sort_by_key(|d| std::cmp::Reverse(d.count));
        timeline.repeated_calls.sort_by_key(|c| std::cmp::Reverse(c.count));
        timeline.duplicates.truncate(MAX_FINDINGS);
        timeline.repeated_calls.truncate(MAX_FINDINGS);
        let sealed = Arc::new(timeline);
        self.sealed = Some(Arc::clone(&sealed));
        sealed
    }
}

fn key(subject: &str, values: u64) -> u64 {
    let mut h = FxHasher::default();
    h.write(subject.as_bytes());
    h.write_u64(values);
    h.finish()
}

/// A hasher that `Debug` output is written into, never kept. `Debug`
/// writes in pieces of a few bytes: each byte is folded in as it comes,
/// with no copy.
struct Hashing(FxHasher);

impl std::fmt::Write for Hashing {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        for &byte in s.as_bytes() {
            self.0.write_u8(byte);
        }
        Ok(())
    }
}

/// The hash of a statement's own text (its literals).
pub(crate) fn text_hash(text: &str) -> u64 {
    let mut h = FxHasher::default();
    h.write(text.as_bytes());
    h.finish()
}

/// The hash of `text` (from [`text_hash`]) and of the `Debug` form of
/// `values`: what makes two runs of one statement the same run.
pub(crate) fn values_hash(text: u64, values: &dyn std::fmt::Debug) -> u64 {
    let mut hashing = Hashing(FxHasher::default());
    hashing.0.write_u64(text);
    // A `Debug` impl that fails leaves what it wrote hashed.
    let _ = std::fmt::write(&mut hashing, format_args!("{values:?}"));
    hashing.0.finish()
}

/// A call's subject: its method, host and path template, the query dropped
/// (see the [module](self)). `template`: the path is the caller's template
/// (a [`CallTemplate`](crate::instrument::CallTemplate)), whose segments
/// are code, each `{...}` read `{}`; else a segment that may be a value is.
pub(crate) fn call_subject(method: &str, host: &str, path: &str, template: bool) -> String {
    let path = path.split(['?', '#']).next().unwrap_or("");
    let mut subject = String::with_capacity(method.len() + host.len() + path.len() + 1);
    subject.push_str(method);
    subject.push(' ');
    subject.push_str(host);
    for segment in path.split('/').skip(1).take(16) {
        subject.push('/');
        let kept = segment.len() <= 32
            && if template {
                !segment.starts_with('{')
            } else {
                segment.bytes().all(|b| b.is_ascii_lowercase() || b == b'-' || b == b'_')
            };
        subject.push_str(if kept { segment } else { "{}" });
    }
    subject
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_keeps_its_words_and_hides_what_may_be_a_value() {
        assert_eq!(call_subject("GET", "api.test", "/users/42/orders?page=2", false), "GET api.test/users/{}/orders");
        assert_eq!(call_subject("GET", "api.test", "/items/Ab-3/x%20y/", false), "GET api.test/items/{}/{}/");
        assert_eq!(call_subject("POST", "h", "", false), "POST h");
        let long = format!("/{}", "a".repeat(33));
        assert_eq!(call_subject("GET", "h", &long, false), "GET h/{}");
        assert_eq!(call_subject("GET", "h", &long, true), "GET h/{}");
    }

    #[test]
    fn a_template_keeps_its_segments_and_reads_each_parameter_as_one() {
        let subject = |t| call_subject("GET", "h", t, true);
        assert_eq!(subject("/v1/Users/{id}/orders.json"), "GET h/v1/Users/{}/orders.json");
        assert_eq!(subject("/users/{name}/{*rest}?q={q}"), "GET h/users/{}/{}");
        assert_eq!(subject(&"/a".repeat(20)).matches('/').count(), 16, "at most 16 segments");
    }

    #[test]
    fn a_timeline_keeps_its_first_operations_and_statements_within_its_bounds() {
        let start = Instant::now();
        let mut recording = Recording::new(start);
        let long: Vec<Arc<str>> = (0..200).map(|i| Arc::from(format!("SELECT {i:0>500}"))).collect();
        for subject in &long {
            let done = Done {
                started: start,
                elapsed: Duration::from_micros(1),
                backend: "SQLite",
                subject,
                rows: 1,
                settled: Settled::Ok,
                values: Some(1),
                call: false,
                writes: false,
            };
            recording.operation(&done, 5);
        }
        let t = recording.seal(Duration::from_millis(1), 5);
        assert_eq!((t.entries().len(), t.omitted_entries()), (MAX_ENTRIES, 200 - MAX_ENTRIES as u64));
        let kept: Vec<&Entry> = t.entries().iter().filter(|e| &*e.subject != OMITTED_STATEMENT).collect();
        assert_eq!(kept.len(), MAX_STATEMENT_BYTES / 507, "{} statements of 507 bytes", kept.len());
        assert!(kept.iter().zip(&long).all(|(e, s)| Arc::ptr_eq(&e.subject, s)), "the first, shared");
        assert!(t.duplicates().is_empty());
    }

    #[test]
    fn values_hash_the_same_when_they_are_the_same() {
        let text = text_hash("SELECT ?");
        let long: Vec<u32> = (0..100).collect();
        assert_eq!(values_hash(text, &(1, "ann")), values_hash(text, &(1, "ann")));
        assert_ne!(values_hash(text, &(1, "ann")), values_hash(text, &(1, "bob")));
        assert_ne!(values_hash(text, &(1, "ann")), values_hash(text_hash("SELECT 1"), &(1, "ann")));
        assert_eq!(values_hash(text, &long), values_hash(text, &long.clone()));
        let mut other = long.clone();
        other[99] = 0;
        assert_ne!(values_hash(text, &long), values_hash(text, &other), "past the buffer too");
    }

    #[test]
    fn gaps_are_the_time_nothing_ran() {
        let ms = Duration::from_millis;
        let entry = |start, duration| Entry {
            start: ms(start),
            duration: ms(duration),
            backend: "SQLite",
            subject: Arc::from("SELECT ?"),
            rows: 0,
            settled: Settled::Ok,
        };
        let timeline = Timeline {
            elapsed: ms(100),
            entries: vec![entry(10, 20), entry(15, 10), entry(60, 10)],
            polls: vec![Span { start: ms(0), duration: ms(5) }, Span { start: ms(70), duration: ms(2) }],
            ..Timeline::default()
        };
        let gaps = timeline.gaps(ms(1));
        assert_eq!(
            gaps,
            vec![
                Span { start: ms(5), duration: ms(5) },
                Span { start: ms(30), duration: ms(30) },
                Span { start: ms(72), duration: ms(28) }
            ]
        );
        assert_eq!(timeline.gaps(ms(10)).len(), 2);
    }
}
