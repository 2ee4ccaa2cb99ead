//! The one way a scope ends, whoever owns it (`#[zen]`'s future, a
//! boundary, `testing`): [`Scope::seal`] fixes how and when it ended, once;
//! [`Scope::deliver`] builds its report, only when someone receives it or
//! it must warn, and sends it where it goes. [`Scope::end`] is the two in
//! a row.

use std::sync::atomic::{AtomicU8, AtomicU16, AtomicU64, Ordering::Relaxed, Ordering::Release};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use super::Scope;
use super::usage::nanos;
use crate::tracker::alloc::untracked;
use crate::tracker::budget::Mode;
use crate::tracker::observe::{self, ScopeEnd, Statement};
use crate::tracker::report::{self, Exemption, Figures, Outcome, Report};

/// How a scope ended. Plain atomics, not a `OnceLock`, whose slow path every
/// request would take.
#[derive(Default)]
pub(super) struct Ended {
    /// Nanoseconds from the start to the end, plus one; 0 until sealed.
    nanos: AtomicU64,
    outcome: AtomicU8,
    /// The response status, for a request under the layer; 0 if none.
    status: AtomicU16,
    report: OnceLock<Box<Report>>,
}

/// Where a scope's report goes.
pub(crate) enum Receiver {
    /// The `zen` event, every sink and every enclosing collector.
    Everyone,
    /// Only this slot (and enclosing collectors): `testing::measure`.
    Slot(Arc<Mutex<Option<Report>>>),
}

/// When a scope ended, as its owner knows it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum EndAt {
    /// Now: read the clock.
    Now,
    /// At a clock reading the owner already made.
    At(Instant),
    /// This long after its start, a time the owner measured.
    After(Duration),
}

impl Scope {
    /// Ends the scope: [`seal`](Self::seal), then
    /// [`deliver`](Self::deliver). Returns its time.
    pub(crate) fn end(self: &Arc<Self>, at: EndAt, outcome: Outcome, receiver: Receiver, may_panic: bool) -> Duration {
        let elapsed = self.seal(at, outcome);
        self.deliver(receiver, may_panic, None);
        elapsed
    }

    /// Records how and when the scope ended (a panic, seen by its future,
    /// wins over the outcome given), once: a later call returns the first
    /// time.
    pub(crate) fn seal(&self, at: EndAt, outcome: Outcome) -> Duration {
        if let Some((_, elapsed)) = self.sealed() {
            return elapsed;
        }
        let elapsed = match at {
            EndAt::Now => self.start.elapsed(),
            EndAt::At(now) => now.saturating_duration_since(self.start),
            EndAt::After(elapsed) => elapsed,
        };
        // An ended request or job adopts nothing more.
        self.stop_adopting();
        let outcome = if self.panicked() { Outcome::Panicked } else { outcome };
        self.ended.outcome.store(outcome as u8, Relaxed);
        self.ended.nanos.store(nanos(elapsed).saturating_add(1).max(1), Release);
        elapsed
    }

    /// Whether the scope has ended.
    pub(crate) fn has_ended(&self) -> bool {
        self.sealed().is_some()
    }

    fn sealed(&self) -> Option<(Outcome, Duration)> {
        let nanos = self.ended.nanos.load(std::sync::atomic::Ordering::Acquire).checked_sub(1)?;
        Some((
            Outcome::ALL[usize::from(self.ended.outcome.load(Relaxed)) % Outcome::ALL.len()],
            Duration::from_nanos(nanos),
        ))
    }

    /// The response status of a request (before it is sealed).
    #[cfg(feature = "tower")]
    pub(crate) fn set_status(&self, status: u16) {
        self.ended.status.store(status, Relaxed);
    }

    /// Sends the report of a sealed scope to `receiver`, when someone
    /// receives it: the common case (within budget, no N+1, nobody
    /// listening below WARN) builds no report at all. `strict` panics here
    /// only where `may_panic` (never from a drop). zen's own allocations
    /// here are not charged to any scope.
    ///
    /// `figures`: what the caller read after sealing the scope, if it did.
    /// The report is built here only when the scope must hand it on (a
    /// budget exceeded, an N+1, a collector or a slot waiting); otherwise an
    /// observer builds it by asking.
    pub(crate) fn deliver(self: &Arc<Self>, receiver: Receiver, may_panic: bool, figures: Option<&Figures>) {
        let Some((outcome, elapsed)) = self.sealed() else { return };
        let read;
        let figures = match figures {
            Some(figures) => figures,
            None => {
                read = self.figures(elapsed);
                &read
            }
        };
        let limits = &self.terms().limits;
        let exceeded = figures.exceed(limits);
        let measuring = matches!(receiver, Receiver::Slot(_));
        let needed = exceeded || self.usage.suspected.load(Relaxed) || measuring || self.collected();
        let report = needed.then(|| {
            untracked(|| {
                let report = self.report()?;
                if !report.violations.is_empty()
                    && let Some(parent) = &self.parent
                {
                    parent.add_nested(&self.name, &report.violations);
                }
                self.collect(report);
                if let Receiver::Slot(slot) = receiver {
                    *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(report.clone());
                }
                Some(report)
            })
        });
        observe::scope_ended(&ScopeEnd {
            name: &self.name,
            route: self.route(),
            kind: self.kind,
            mode: self.mode(),
            outcome: if exceeded && outcome == Outcome::Ok { Outcome::Exceeded } else { outcome },
            ended_at: self.start + elapsed,
            figures,
            limits,
            measuring,
            status: Some(self.ended.status.load(Relaxed)).filter(|&status| status != 0),
            source: self,
        });
        if let Some(Some(report)) = report
            && may_panic
            && self.mode() == Mode::Strict
            && (!report.violations.is_empty() || !report.expired_exemptions.is_empty())
        {
            panic!("zen: budget exceeded in strict mode\n{report}");
        }
    }

    /// The report of a sealed scope, built once.
    pub(crate) fn report(&self) -> Option<&Report> {
        let (outcome, elapsed) = self.sealed()?;
        // Untracked, box included: any thread may build it, inside a scope of its own.
        Some(self.ended.report.get_or_init(|| untracked(|| Box::new(self.build_report(outcome, elapsed)))))
    }

    fn build_report(&self, outcome: Outcome, elapsed: Duration) -> Report {
        let terms = *self.terms();
        let figures = self.figures(elapsed);
        let mut violations = figures.violations(&terms.limits);
        let mut db = if figures.queries == 0 && figures.refused_queries == 0 {
            crate::tracker::stats::Summary::default()
        } else {
            self.usage.db.lock().unwrap_or_else(PoisonError::into_inner).summary(terms.n_plus_one)
        };
        let judged = if terms.exemptions.is_empty() && !observe::has_exemptions() {
            report::Judged::default()
        } else {
            // The fn's own, then those observers hold (the budget lock's).
            let mut exemptions: Vec<Exemption> = terms.exemptions.to_vec();
            observe::exemptions(&self.name, &mut |e| exemptions.push(e.clone()));
            report::judge(exemptions.iter(), &mut db.n_plus_one, &mut violations, &db.statements, report::Date::today())
        };
        let (nested_violations, untracked_nested) =
            self.usage.nested.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let outcome = match outcome {
            Outcome::Ok if !violations.is_empty() => Outcome::Exceeded,
            other => other,
        };
        let status = self.ended.status.load(Relaxed);
        let timeline = self.timeline(elapsed);
        Report {
            name: self.name.clone(),
            kind: self.kind,
            handler: terms.handler,
            attempt: self.attempt,
            caller_time_left: self.caller_time_left,
            mode: terms.mode,
            outcome,
            status: (status != 0).then_some(status),
            slowest_query: db.slowest,
            statements: db.statements,
            untracked_statements: db.untracked,
            n_plus_one: db.n_plus_one,
            backends: db.backends,
            http_hosts: if figures.http_calls == 0 {
                Vec::new()
            } else {
                self.usage.hosts.lock().unwrap_or_else(PoisonError::into_inner).summary()
            },
            figures,
            limits: terms.limits,
            violations,
            nested_violations,
            untracked_nested,
            exemptions: judged.applied,
            expired_exemptions: judged.expired,
            timeline,
        }
    }

    /// `true` when an enclosing scope collects reports.
    fn collected(&self) -> bool {
        self.chain().skip(1).any(|s| s.collector.is_some())
    }

    /// Hands a finished report to every enclosing collector.
    fn collect(&self, report: &Report) {
        for scope in self.chain().skip(1) {
            if let Some(collector) = &scope.collector {
                collector.lock().unwrap_or_else(PoisonError::into_inner).push(report.clone());
            }
        }
    }
}

impl observe::Kept for Scope {
    fn report(&self) -> &Report {
        Scope::report(self).expect("a scope is sealed before observers see it")
    }
}

/// What observers read of a scope that ended, when they ask.
impl observe::Source for Arc<Scope> {
    fn report(&self) -> &Report {
        observe::Kept::report(&**self)
    }

    fn keep(&self) -> Arc<dyn observe::Kept> {
        Arc::<Scope>::clone(self)
    }

    // Both copy the table out and call `each` after the lock is let go: an
    // observer may ask for the report from inside, which takes it again.
    fn each_statement(&self, each: &mut dyn FnMut(Statement<'_>)) {
        let mut statements = Vec::new();
        self.usage.db.lock().unwrap_or_else(PoisonError::into_inner).each(
            |fingerprint, backend, count, total_ns, site| {
                statements.push((Arc::clone(fingerprint), backend, count, total_ns, site.cloned()));
            },
        );
        for (fingerprint, backend, count, total_ns, site) in &statements {
            each(Statement {
                fingerprint,
                backend,
                count: *count,
                total: Duration::from_nanos(*total_ns),
                first_site: site.as_ref(),
            });
        }
    }

    fn each_host(&self, each: &mut dyn FnMut(&str, u64)) {
        let mut hosts: Vec<(Arc<str>, u64)> = Vec::new();
        self.usage.hosts.lock().unwrap_or_else(PoisonError::into_inner).each(&mut |host, calls| {
            hosts.push((Arc::clone(host), calls));
        });
        for (host, calls) in &hosts {
            each(host, *calls);
        }
    }

    fn timeline(&self) -> Option<Arc<crate::tracker::timeline::Timeline>> {
        let (_, elapsed) = self.sealed()?;
        Scope::timeline(self, elapsed)
    }

    fn n_plus_one(&self) -> usize {
        if !self.usage.suspected.load(Relaxed) {
            return 0;
        }
        Scope::report(self).map_or(0, |r| r.n_plus_one.len())
    }
}
