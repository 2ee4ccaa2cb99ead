//! Per-scope database statistics: statements grouped by fingerprint, figures
//! per backend, the slowest statement and N+1 suspects with their call site.
//! Bounded: a scope that runs 100 000 distinct statements keeps the first
//! `MAX_STATEMENTS` and counts the rest.

use std::sync::Arc;
use std::time::Duration;

use crate::tracker::call_site::CallSite;

use crate::tracker::report::{BackendSummary, HostSummary, NPlusOne, SlowQuery, StatementSummary};

/// Distinct fingerprints kept per scope.
pub(crate) const MAX_STATEMENTS: usize = 64;

#[derive(Default)]
pub(crate) struct DbStats {
    /// At most [`MAX_STATEMENTS`], in the order first seen. A list, not a
    /// map: fingerprints come from the shared cache, so the one asked for is
    /// almost always the same `Arc` as the one kept, found by address
    /// without hashing or comparing the text.
    statements: Vec<(Arc<str>, Stat)>,
    untracked: u64,
    backends: Vec<(&'static str, BackendStat)>,
    slowest: Option<(Arc<str>, &'static str, u64)>,
}

struct Stat {
    backend: &'static str,
    count: u64,
    failed: u64,
    total_ns: u64,
    max_ns: u64,
    call_site: Option<Arc<CallSite>>,
    /// Where it first ran, when an observer asked for every statement's
    /// ([`Hooks::CALL_SITES`](crate::observe::Hooks::CALL_SITES)).
    first_site: Option<Arc<CallSite>>,
    /// The pages of a result (a cursor's `getMore`): never an N+1 suspect.
    paging: bool,
}

#[derive(Default, Clone, Copy)]
struct BackendStat {
    queries: u64,
    failed: u64,
    nanos: u64,
}

/// `runs` of one statement in a scope are a suspected N+1 at the scope's
/// `threshold` (0: detection off).
pub(crate) fn reaches(runs: u64, threshold: u64) -> bool {
    threshold > 0 && runs >= threshold
}

impl DbStats {
    /// Where `fingerprint` is kept: by address, else by text.
    fn position(&self, fingerprint: &Arc<str>) -> Option<usize> {
        self.statements
            .iter()
            .position(|(kept, _)| Arc::ptr_eq(kept, fingerprint))
            .or_else(|| self.statements.iter().position(|(kept, _)| **kept == **fingerprint))
    }

    fn get_mut(&mut self, fingerprint: &Arc<str>) -> Option<&mut Stat> {
        let index = self.position(fingerprint)?;
        Some(&mut self.statements[index].1)
    }

    /// Records a statement that ended (`paging`: the next page of a
    /// result); returns how many times it ran in this scope, and whether
    /// its call site is kept.
    #[inline]
    pub(crate) fn record(
        &mut self,
        fingerprint: &Arc<str>,
        backend: &'static str,
        nanos: u64,
        ok: bool,
        paging: bool,
    ) -> (u64, bool) {
        let b = self.backend(backend);
        b.queries += 1;
        b.nanos += nanos;
        b.failed += u64::from(!ok);
        if self.slowest.as_ref().is_none_or(|(_, _, ns)| nanos > *ns) {
            self.slowest = Some((Arc::clone(fingerprint), backend, nanos));
        }
        if let Some(stat) = self.get_mut(fingerprint) {
            stat.count += 1;
            stat.total_ns += nanos;
            stat.max_ns = stat.max_ns.max(nanos);
            stat.failed += u64::from(!ok);
            return (stat.count, stat.call_site.is_some());
        }
        if self.statements.len() >= MAX_STATEMENTS {
            // Not kept: never a suspect, never a first run, no call site.
            self.untracked += 1;
            return (0, true);
        }
        let stat = Stat {
            backend,
            count: 1,
            failed: u64::from(!ok),
            total_ns: nanos,
            max_ns: nanos,
            call_site: None,
            first_site: None,
            paging,
        };
        // The table grows with zen's memory, not the scope's.
        crate::tracker::alloc::untracked(|| self.statements.push((Arc::clone(fingerprint), stat)));
        (1, false)
    }

    /// How many runs of `fingerprint` ended in this scope.
    pub(crate) fn count(&self, fingerprint: &Arc<str>) -> u64 {
        self.position(fingerprint).map_or(0, |i| self.statements[i].1.count)
    }

    /// Keeps where a suspected N+1 statement is issued from (first one wins).
    pub(crate) fn set_call_site(&mut self, fingerprint: &Arc<str>, call_site: &Arc<CallSite>) {
        if let Some(stat) = self.get_mut(fingerprint) {
            stat.call_site.get_or_insert_with(|| Arc::clone(call_site));
        }
    }

    /// Keeps where `fingerprint` first ran (first one wins).
    pub(crate) fn set_first_site(&mut self, fingerprint: &Arc<str>, site: &Arc<CallSite>) {
        if let Some(stat) = self.get_mut(fingerprint) {
            stat.first_site.get_or_insert_with(|| Arc::clone(site));
        }
    }

    /// Each statement kept: its fingerprint, backend, count, total time and
    /// where it first ran, if kept.
    pub(crate) fn each(&self, mut f: impl FnMut(&Arc<str>, &'static str, u64, u64, Option<&Arc<CallSite>>)) {
        for (fingerprint, s) in &self.statements {
            f(fingerprint, s.backend, s.count, s.total_ns, s.first_site.as_ref());
        }
    }

    pub(crate) fn has_call_site(&self, fingerprint: &Arc<str>) -> bool {
        self.position(fingerprint).is_some_and(|i| self.statements[i].1.call_site.is_some())
    }

    #[inline]
    fn backend(&mut self, backend: &'static str) -> &mut BackendStat {
        // The same `&'static str` each time (a driver's name): its address
        // finds it without comparing the text.
        let index = match self
            .backends
            .iter()
            .position(|(name, _)| std::ptr::eq(*name, backend))
            .or_else(|| self.backends.iter().position(|(name, _)| *name == backend))
        {
            Some(index) => index,
            None => {
                crate::tracker::alloc::untracked(|| self.backends.push((backend, BackendStat::default())));
                self.backends.len() - 1
            }
        };
        &mut self.backends[index].1
    }

    /// The report's view: statements by total time, suspects, backends.
    pub(crate) fn summary(&self, n_plus_one: u32) -> Summary {
        let mut statements: Vec<StatementSummary> = self
            .statements
            .iter()
            .map(|(fingerprint, s)| StatementSummary {
                fingerprint: fingerprint.to_string(),
                backend: s.backend,
                count: s.count,
                failed: s.failed,
                total: Duration::from_nanos(s.total_ns),
                max: Duration::from_nanos(s.max_ns),
            })
            .collect();
        statements.sort_by(|a, b| b.total.cmp(&a.total).then(b.count.cmp(&a.count)));
        let mut suspects: Vec<NPlusOne> = self
            .statements
            .iter()
            .filter(|(_, s)| !s.paging && reaches(s.count, u64::from(n_plus_one)))
            .map(|(fingerprint, s)| NPlusOne {
                fingerprint: fingerprint.to_string(),
                backend: s.backend,
                count: s.count,
                call_site: s.call_site.as_deref().map(CallSite::resolve),
            })
            .collect();
        suspects.sort_by_key(|s| std::cmp::Reverse(s.count));
        Summary {
            statements,
            untracked: self.untracked,
            n_plus_one: suspects,
            backends: self
                .backends
                .iter()
                .map(|(backend, b)| BackendSummary {
                    backend,
                    queries: b.queries,
                    failed: b.failed,
                    time: Duration::from_nanos(b.nanos),
                })
                .collect(),
            slowest: self.slowest.as_ref().map(|(fingerprint, backend, ns)| SlowQuery {
                backend,
                statement: fingerprint.to_string(),
                elapsed: Duration::from_nanos(*ns),
            }),
        }
    }
}

/// Distinct hosts kept per scope.
pub(crate) const MAX_HOSTS: usize = 32;

/// External calls per host, bounded like statements.
#[derive(Default)]
pub(crate) struct HttpStats {
    hosts: Vec<(Arc<str>, u64, u64, u64)>,
}

impl HttpStats {
    /// Each host kept, with its calls.
    pub(crate) fn each(&self, f: &mut dyn FnMut(&Arc<str>, u64)) {
        for (host, calls, ..) in &self.hosts {
            f(host, *calls);
        }
    }

    pub(crate) fn record(&mut self, host: &str, nanos: u64, ok: bool) {
        let index = match self.hosts.iter().position(|(h, ..)| &**h == host) {
            Some(index) => index,
            None if self.hosts.len() < MAX_HOSTS => {
                crate::tracker::alloc::untracked(|| self.hosts.push((Arc::from(host), 0, 0, 0)));
                self.hosts.len() - 1
            }
            None => return,
        };
        let (_, calls, failed, time) = &mut self.hosts[index];
        *calls += 1;
        *failed += u64::from(!ok);
        *time += nanos;
    }

    pub(crate) fn summary(&self) -> Vec<HostSummary> {
        self.hosts
            .iter()
            .map(|(host, calls, failed, nanos)| HostSummary {
                host: host.to_string(),
                calls: *calls,
                failed: *failed,
                time: Duration::from_nanos(*nanos),
            })
            .collect()
    }
}

#[derive(Default)]
pub(crate) struct Summary {
    pub(crate) statements: Vec<StatementSummary>,
    pub(crate) untracked: u64,
    pub(crate) n_plus_one: Vec<NPlusOne>,
    pub(crate) backends: Vec<BackendSummary>,
    pub(crate) slowest: Option<SlowQuery>,
}
