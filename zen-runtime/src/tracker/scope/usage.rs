//! What a scope used: relaxed atomics recorded on the scope and each
//! enclosing one (so nested scopes count toward their parents, and tasks
//! carrying the scope can record from any thread), and the statement and
//! host tables behind a lock. Tables grow with zen's own allocations, which
//! are never charged to the scope.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::Scope;
use crate::tracker::alloc::{Counted, untracked};
use crate::tracker::budget::Budget;
use crate::tracker::fingerprint::Shared;
use crate::tracker::report::{Figures, Memory, NestedViolation, Violation, Writes};
use crate::tracker::stats::{DbStats, HttpStats, reaches};

/// Violations of nested scopes kept per scope; the rest are counted.
const MAX_NESTED: usize = 16;

#[derive(Default)]
pub(crate) struct Usage {
    queries: AtomicU64,
    failed_queries: AtomicU64,
    refused_queries: AtomicU64,
    db_nanos: AtomicU64,
    wait_nanos: AtomicU64,
    rows: AtomicU64,
    http_calls: AtomicU64,
    failed_http: AtomicU64,
    refused_http: AtomicU64,
    http_nanos: AtomicU64,
    mem_allocated: AtomicU64,
    mem_live: AtomicI64,
    mem_peak: AtomicI64,
    longest_poll: AtomicU64,
    slow_polls: AtomicU64,
    /// The response body's bytes plus one; 0 while not known.
    response_bytes: AtomicU64,
    /// What the scope's writes did: [`Writes::bit`]s in the low two bits;
    /// above them, how many writes are on their way (sent, not yet ended:
    /// while one is, what it did is unknown).
    writes: AtomicU64,
    /// A statement reached the N+1 threshold: the report must be built and
    /// warned about even within budget.
    pub(crate) suspected: AtomicBool,
    /// The address of the fingerprint of a statement one run from the N+1
    /// threshold without a call site, set when a run of it ends; 0 for
    /// none. Its next issue takes the site, while user code is on the stack.
    armed: AtomicUsize,
    pub(crate) db: Mutex<DbStats>,
    pub(crate) hosts: Mutex<HttpStats>,
    pub(crate) nested: Mutex<(Vec<NestedViolation>, u64)>,
}

/// Where a fingerprint's text is: the same cached statement, the same
/// address (a reused address is only a needless look under the lock).
fn address(fingerprint: &Arc<str>) -> usize {
    Arc::as_ptr(fingerprint).cast::<u8>() as usize
}

pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Usage {
    pub(crate) fn rows(&self) -> u64 {
        self.rows.load(Relaxed)
    }
}

impl Scope {
    /// Counts an issued database operation on this scope and its parents;
    /// its statement is recorded when it ends ([`Self::finish_query`]). A
    /// statement that this run takes to its N+1 threshold (armed when its
    /// previous run ended) gets its call site now, while user code is on
    /// the stack: one comparison per scope otherwise.
    pub(crate) fn issue_query(&self, fingerprint: &Arc<str>) {
        let address = address(fingerprint);
        let mut armed = false;
        for scope in self.chain() {
            scope.usage.queries.fetch_add(1, Relaxed);
            armed |= scope.usage.armed.load(Relaxed) == address;
        }
        if armed {
            self.note_repeat(fingerprint);
        }
    }

    /// Takes the call site of an armed statement that reaches a scope's N+1
    /// threshold with this run, and disarms it.
    #[cold]
    #[inline(never)]
    fn note_repeat(&self, fingerprint: &Arc<str>) {
        let address = address(fingerprint);
        let mut suspect = false;
        for scope in self.chain() {
            let u = &scope.usage;
            if u.armed.compare_exchange(address, 0, Relaxed, Relaxed).is_err() {
                continue;
            }
            let threshold = u64::from(scope.terms().n_plus_one);
            let db = u.db.lock().unwrap_or_else(PoisonError::into_inner);
            suspect |= reaches(db.count(fingerprint) + 1, threshold) && !db.has_call_site(fingerprint);
        }
        if suspect {
            self.note_call_site(fingerprint, false);
        }
    }

    /// Records how an issued database operation ended, under its statement:
    /// one lock per operation and scope. A statement at the N+1 threshold
    /// without a call site (its runs were issued together, or dropped) gets
    /// one here if user code is on the stack, `in_poll` (not when the
    /// operation is dropped with a future someone else cancelled), and is
    /// armed for its next issue otherwise. A `paging` operation (the next
    /// page of a cursor) is never an N+1 suspect.
    pub(crate) fn finish_query(
        &self,
        backend: &'static str,
        fingerprint: &Shared,
        elapsed: Duration,
        ok: bool,
        in_poll: bool,
        paging: bool,
    ) {
        let ns = nanos(elapsed);
        crate::tracker::observe::operation_ended(|| crate::tracker::observe::OperationEnd {
            backend,
            operation: fingerprint.operation,
            fingerprint: &fingerprint.text,
            elapsed,
            ok,
        });
        let fingerprint = &fingerprint.text;
        let (mut suspect, mut first) = (false, false);
        for scope in self.chain() {
            let u = &scope.usage;
            u.db_nanos.fetch_add(ns, Relaxed);
            if !ok {
                u.failed_queries.fetch_add(1, Relaxed);
            }
            let mut db = u.db.lock().unwrap_or_else(PoisonError::into_inner);
            let (count, has_call_site) = db.record(fingerprint, backend, ns, ok, paging);
            first |= count == 1;
            let threshold = u64::from(scope.terms().n_plus_one);
            if paging || !reaches(count + 1, threshold) {
                continue;
            }
            let reached = count >= threshold;
            if reached {
                u.suspected.store(true, Relaxed);
            }
            if !has_call_site {
                if reached && in_poll {
                    suspect = true;
                } else {
                    u.armed.store(address(fingerprint), Relaxed);
                }
            }
        }
        if suspect {
            self.note_call_site(fingerprint, false);
        }
        if first && in_poll && crate::tracker::observe::call_sites_wanted() {
            self.note_call_site(fingerprint, true);
        }
    }

    /// Keeps where user code runs a statement, on this scope and each
    /// enclosing one: where it became an N+1 suspect, or (`first`, when an
    /// observer asked with `Hooks::CALL_SITES`) where it first ran.
    #[cold]
    #[inline(never)]
    fn note_call_site(&self, fingerprint: &Arc<str>, first: bool) {
        let site = untracked(|| crate::tracker::call_site::CallSite::of(&self.name, fingerprint, first));
        for scope in self.chain() {
            let mut db = scope.usage.db.lock().unwrap_or_else(PoisonError::into_inner);
            if first { db.set_first_site(fingerprint, &site) } else { db.set_call_site(fingerprint, &site) }
        }
    }

    /// Rows returned to the scope by its queries.
    pub(crate) fn add_rows(&self, rows: u64) {
        if rows > 0 {
            for scope in self.chain() {
                scope.usage.rows.fetch_add(rows, Relaxed);
            }
        }
    }

    /// A write of this scope ended: it took effect, or may have.
    pub(crate) fn note_write(&self, written: Writes) {
        if written != Writes::None {
            for scope in self.chain() {
                scope.usage.writes.fetch_or(u64::from(written.bit()), Relaxed);
            }
        }
    }

    /// A write is on its way (`true`) or no longer (`false`): until it
    /// ends, the scope's writes are at least unknown.
    pub(crate) fn write_on_its_way(&self, on: bool) {
        const ONE: u64 = 1 << 2;
        for scope in self.chain() {
            if on {
                scope.usage.writes.fetch_add(ONE, Relaxed);
            } else {
                scope.usage.writes.fetch_sub(ONE, Relaxed);
            }
        }
    }

    /// Records time spent waiting for a pooled connection.
    pub(crate) fn record_wait(&self, elapsed: Duration) {
        let ns = nanos(elapsed);
        for scope in self.chain() {
            scope.usage.wait_nanos.fetch_add(ns, Relaxed);
        }
    }

    /// Records a finished external call on this scope and its parents.
    pub(crate) fn record_call(&self, host: &str, elapsed: Duration, ok: bool) {
        let ns = nanos(elapsed);
        for scope in self.chain() {
            let u = &scope.usage;
            u.http_calls.fetch_add(1, Relaxed);
            u.http_nanos.fetch_add(ns, Relaxed);
            if !ok {
                u.failed_http.fetch_add(1, Relaxed);
            }
            u.hosts.lock().unwrap_or_else(PoisonError::into_inner).record(host, ns, ok);
        }
    }

    /// An operation `enforce` refused before it was issued: asked for, by
    /// this scope and each enclosing one, and refused.
    /// `counted`: the operation was counted as asked for already (a query
    /// is, when issued), and only its refusal is counted now.
    pub(crate) fn count_refusal(&self, resource: super::Resource, counted: bool) {
        for scope in self.chain() {
            let u = &scope.usage;
            let (asked, refused) = match resource {
                super::Resource::Db => (&u.queries, &u.refused_queries),
                super::Resource::Http => (&u.http_calls, &u.refused_http),
            };
            if !counted {
                asked.fetch_add(1, Relaxed);
            }
            refused.fetch_add(1, Relaxed);
        }
    }

    /// Adds heap counted on one thread: bytes allocated, the net change, and
    /// the highest the net reached on that thread meanwhile.
    pub(crate) fn add_memory(&self, counted: Counted) {
        for scope in self.chain() {
            let u = &scope.usage;
            u.mem_allocated.fetch_add(counted.allocated, Relaxed);
            let before = u.mem_live.fetch_add(counted.live, Relaxed);
            u.mem_peak.fetch_max(before + counted.peak, Relaxed);
        }
    }

    /// One poll of the scope's own future took `elapsed`.
    pub(crate) fn record_poll(&self, elapsed: Duration) {
        let ns = nanos(elapsed);
        let u = &self.usage;
        if ns > u.longest_poll.load(Relaxed) {
            u.longest_poll.fetch_max(ns, Relaxed);
        }
        // Limits are whole milliseconds: a shorter poll is over none.
        if ns > 1_000_000
            && self.limit(Budget::PollTime).is_some_and(|limit| Budget::PollTime.measure().over(ns, limit))
        {
            u.slow_polls.fetch_add(1, Relaxed);
        }
    }

    /// Bytes of the response body so far (the layer's request scope only).
    #[cfg(feature = "tower")]
    pub(crate) fn set_response_bytes(&self, bytes: u64) {
        self.usage.response_bytes.store(bytes.saturating_add(1), Relaxed);
    }

    /// Keeps the violations of a scope that ended inside this one.
    pub(crate) fn add_nested(&self, scope: &str, violations: &[Violation]) {
        untracked(|| {
            for parent in self.chain() {
                let mut nested = parent.usage.nested.lock().unwrap_or_else(PoisonError::into_inner);
                for violation in violations {
                    if nested.0.len() < MAX_NESTED {
                        nested.0.push(NestedViolation { scope: scope.to_owned(), violation: *violation });
                    } else {
                        nested.1 += 1;
                    }
                }
            }
        });
    }

    fn memory(&self) -> Option<Memory> {
        let u = &self.usage;
        if !crate::tracker::alloc::installed() && self.limit(Budget::Memory).is_some() {
            crate::tracker::alloc::warn_if_not_installed();
        }
        crate::tracker::alloc::installed().then(|| Memory {
            allocated: u.mem_allocated.load(Relaxed),
            // Frees of memory allocated elsewhere never take a figure below zero.
            peak: u64::try_from(u.mem_peak.load(Relaxed)).unwrap_or(0),
            retained: u64::try_from(u.mem_live.load(Relaxed)).unwrap_or(0),
        })
    }

    /// What the scope used so far, `elapsed` after its start.
    pub(crate) fn figures(&self, elapsed: Duration) -> Figures {
        let u = &self.usage;
        let response = u.response_bytes.load(Relaxed);
        Figures {
            elapsed_ns: nanos(elapsed),
            queries: u.queries.load(Relaxed),
            failed_queries: u.failed_queries.load(Relaxed),
            refused_queries: u.refused_queries.load(Relaxed),
            db_ns: u.db_nanos.load(Relaxed),
            wait_ns: u.wait_nanos.load(Relaxed),
            rows: u.rows.load(Relaxed),
            http_calls: u.http_calls.load(Relaxed),
            failed_http_calls: u.failed_http.load(Relaxed),
            refused_http_calls: u.refused_http.load(Relaxed),
            http_ns: u.http_nanos.load(Relaxed),
            memory: self.memory(),
            longest_poll_ns: u.longest_poll.load(Relaxed),
            slow_polls: u.slow_polls.load(Relaxed),
            response_bytes: response.checked_sub(1),
            writes: {
                let bits = u.writes.load(Relaxed);
                let on_its_way = if bits >> 2 == 0 { 0 } else { Writes::Unknown.bit() };
                Writes::of_bits((bits & 3) as u8 | on_its_way)
            },
        }
    }
}
