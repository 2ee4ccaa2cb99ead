//! What the dashboard keeps per scope name and kind, in fixed memory, and
//! the views the page and the JSON endpoints read.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use super::histogram::Histogram;
use crate::tracker::budget::{Budget, Kind, Limits, Measure};
use crate::tracker::observe::ScopeEnd;
use crate::tracker::report::{Outcome, Report, Violation};

/// Statements kept per name; the rest are added up as one.
pub(super) const MAX_STATEMENTS: usize = 16;
/// N+1 suspects kept per name.
pub(super) const MAX_SUSPECTS: usize = 8;
/// The series: 60 slots of 10 s, the last ten minutes.
pub(super) const SLOTS: usize = 60;
pub(super) const SLOT_SECONDS: u64 = 10;

/// What a figure's histogram keeps of what was used: µs for times, KiB
/// (rounded up) for bytes, counts as they are.
fn kept(budget: Budget, used: u64) -> u64 {
    match budget.measure() {
        Measure::Millis => used / 1000,
        Measure::KiB => used.div_ceil(1024),
        Measure::Count => used,
    }
}

/// A kept value as shown: ms for times.
pub(super) fn shown(budget: Budget, value: u64) -> f64 {
    match budget.measure() {
        Measure::Millis => value as f64 / 1000.0,
        Measure::KiB | Measure::Count => value as f64,
    }
}

/// The unit a figure is shown in.
pub(super) fn unit(budget: Budget) -> &'static str {
    match budget.measure() {
        Measure::Millis => "ms",
        Measure::KiB => "KiB",
        Measure::Count => "",
    }
}

/// The figures of the overview's columns: those every scope measures.
pub(super) fn columns() -> impl Iterator<Item = Budget> {
    Budget::ALL.iter().copied().filter(|b| b.every_scope())
}

/// One name's share of the ten-minute series.
#[derive(Clone, Copy, Default)]
pub(super) struct Slot {
    /// Which 10 s since the dashboard started; the slot is stale otherwise.
    pub(super) index: u64,
    pub(super) count: u32,
    pub(super) violated: u32,
    /// Per mille of the highest use of a limit.
    pub(super) max_use: u32,
    pub(super) sum_use: u64,
}

/// One statement's total over every scope of a name.
pub(super) struct Statement {
    pub(super) fingerprint: Arc<str>,
    pub(super) backend: &'static str,
    pub(super) count: u64,
    pub(super) total_ns: u64,
}

/// An N+1 suspect: a statement and where it was issued from.
pub(super) struct Suspect {
    pub(super) fingerprint: String,
    pub(super) call_site: Option<String>,
    /// Scopes it was flagged in.
    pub(super) scopes: u64,
    /// The most times it ran in one scope.
    pub(super) max_count: u64,
}

/// A scope that exceeded a budget, was cancelled or panicked, in full: kept
/// in the dashboard's one ring of the last ones.
pub(super) struct Recent {
    pub(super) at: SystemTime,
    pub(super) route: usize,
    pub(super) report: Report,
}

/// The same, in brief, kept per name; its full report while the ring
/// still holds it.
pub(super) struct Brief {
    pub(super) at: SystemTime,
    pub(super) outcome: Outcome,
    pub(super) status: Option<u16>,
    pub(super) violations: Vec<Violation>,
    pub(super) full: Weak<Recent>,
}

impl Brief {
    pub(super) fn of(recent: &Arc<Recent>) -> Brief {
        let r = &recent.report;
        Brief {
            at: recent.at,
            outcome: r.outcome,
            status: r.status,
            violations: r.violations.clone(),
            full: Arc::downgrade(recent),
        }
    }
}

/// Use of one budget: per mille of its limit.
#[derive(Clone, Copy, Default)]
pub(super) struct Use {
    pub(super) count: u64,
    pub(super) sum: u64,
    pub(super) max: u64,
}

/// Everything kept for one name and kind.
pub(super) struct Route {
    pub(super) id: usize,
    pub(super) name: Box<str>,
    pub(super) kind: Kind,
    pub(super) stats: std::sync::Mutex<Stats>,
}

#[derive(Default)]
pub(super) struct Stats {
    pub(super) count: u64,
    pub(super) outcomes: [u64; 4],
    /// Per budget, the histogram of its figure (in [`kept`] units).
    pub(super) figures: [Histogram; Budget::ALL.len()],
    /// Per mille of the highest use of any limit, per scope.
    pub(super) utilization: Histogram,
    /// The limits of the last scope.
    pub(super) limits: Limits,
    /// Scopes with at least one budget exceeded.
    pub(super) violated: u64,
    pub(super) violations: [u64; Budget::ALL.len()],
    pub(super) uses: [Use; Budget::ALL.len()],
    pub(super) statements: Vec<Statement>,
    /// Statements past `MAX_STATEMENTS`: (count, total ns).
    pub(super) other_statements: (u64, u64),
    pub(super) suspects: Vec<Suspect>,
    pub(super) recent: VecDeque<Brief>,
    pub(super) series: Vec<Slot>,
    /// The timelines kept of its worst scopes and of a sample.
    pub(super) timelines: super::waterfall::Timelines,
}

/// Per mille of `used` (in base units) over `limit` (in its budget's unit).
fn per_mille(budget: Budget, used: u64, limit: u64) -> Option<u64> {
    budget.ratio(used, limit).map(|r| (r * 1000.0).round() as u64)
}

impl Stats {
    pub(super) fn record(&mut self, end: &ScopeEnd<'_>, slot: u64) {
        let f = end.figures();
        self.count += 1;
        self.outcomes[end.outcome() as usize] += 1;
        for &budget in Budget::ALL {
            let Some(used) = f.used(budget) else { continue };
            if budget.every_scope() || end.limits().get(budget).is_some() {
                self.figures[budget as usize].record(kept(budget, used));
            }
        }
        self.limits = *end.limits();
        let mut max_use = None;
        let mut violated = false;
        for (budget, limit) in end.limits().iter() {
            let Some(used) = f.used(budget) else { continue };
            if let Some(pm) = per_mille(budget, used, limit) {
                let u = &mut self.uses[budget as usize];
                u.count += 1;
                u.sum += pm;
                u.max = u.max.max(pm);
                max_use = Some(max_use.unwrap_or(0).max(pm));
            }
            if budget.measure().over(used, limit) {
                self.violations[budget as usize] += 1;
                violated = true;
            }
        }
        if let Some(pm) = max_use {
            self.utilization.record(pm);
        }
        self.violated += u64::from(violated);
        self.add_to_series(slot, violated, max_use);
        end.statements(|s| self.add_statement(s.fingerprint, s.backend, s.count, s.total_ns()));
        if end.n_plus_one() > 0 {
            for s in &end.report().n_plus_one {
                self.add_suspect(&s.fingerprint, s.call_site.as_deref(), s.count);
            }
        }
    }

    fn add_to_series(&mut self, index: u64, violated: bool, max_use: Option<u64>) {
        if self.series.is_empty() {
            self.series = vec![Slot::default(); SLOTS];
        }
        let slot = &mut self.series[(index % SLOTS as u64) as usize];
        if slot.index != index || slot.count == 0 {
            *slot = Slot { index, ..Slot::default() };
        }
        slot.count = slot.count.saturating_add(1);
        slot.violated = slot.violated.saturating_add(u32::from(violated));
        if let Some(pm) = max_use {
            let pm = u32::try_from(pm).unwrap_or(u32::MAX);
            slot.max_use = slot.max_use.max(pm);
            slot.sum_use += u64::from(pm);
        }
    }

    fn add_statement(&mut self, fingerprint: &Arc<str>, backend: &'static str, count: u64, ns: u64) {
        let same = |s: &Statement| Arc::ptr_eq(&s.fingerprint, fingerprint) || s.fingerprint == *fingerprint;
        if let Some(s) = self.statements.iter_mut().find(|s| same(s)) {
            s.count += count;
            s.total_ns += ns;
        } else if self.statements.len() < MAX_STATEMENTS {
            self.statements.push(Statement { fingerprint: Arc::clone(fingerprint), backend, count, total_ns: ns });
        } else {
            self.other_statements.0 += count;
            self.other_statements.1 += ns;
        }
    }

    fn add_suspect(&mut self, fingerprint: &str, call_site: Option<&str>, count: u64) {
        let same = |s: &Suspect| s.fingerprint == fingerprint && s.call_site.as_deref() == call_site;
        if let Some(s) = self.suspects.iter_mut().find(|s| same(s)) {
            s.scopes += 1;
            s.max_count = s.max_count.max(count);
        } else if self.suspects.len() < MAX_SUSPECTS {
            self.suspects.push(Suspect {
                fingerprint: fingerprint.to_owned(),
                call_site: call_site.map(str::to_owned),
                scopes: 1,
                max_count: count,
            });
        }
    }

    /// Share of scopes that exceeded a budget.
    pub(super) fn violation_rate(&self) -> f64 {
        if self.count == 0 { 0.0 } else { self.violated as f64 / self.count as f64 }
    }

    /// The last `SLOTS` slots up to `now`, oldest first; `None` where
    /// nothing ended.
    pub(super) fn series(&self, now: u64) -> Vec<Option<Slot>> {
        (0..SLOTS as u64)
            .map(|back| now.checked_sub(SLOTS as u64 - 1 - back))
            .map(|index| {
                let index = index?;
                self.series.get((index % SLOTS as u64) as usize).filter(|s| s.index == index && s.count > 0).copied()
            })
            .collect()
    }

    /// Statements by total time, most first.
    pub(super) fn statements_by_time(&self) -> Vec<&Statement> {
        let mut all: Vec<&Statement> = self.statements.iter().collect();
        all.sort_by(|a, b| b.total_ns.cmp(&a.total_ns).then(b.count.cmp(&a.count)));
        all
    }
}

/// Whether a report belongs in the ring of bad ones.
pub(super) fn is_bad(report: &Report) -> bool {
    report.outcome != Outcome::Ok
}

/// How long ago `at` was, for display.
pub(super) fn age(at: SystemTime) -> Duration {
    SystemTime::now().duration_since(at).unwrap_or_default()
}
