//! `enforce`: refusing an operation the budget has no room for, bounding
//! one by the time left, and telling a boundary which budget stops its work.
//!
//! One meaning of "used" everywhere: what the scope asked for. A refused
//! query counts in `queries` (it was asked for), and in `refused_queries`;
//! the error of a refusal, `Server-Timing`, the problem document, the report
//! and the event all read the same figures.

use std::time::{Duration, Instant};

use super::Scope;
use crate::tracker::budget::{Budget, Mode};
use crate::tracker::error::BudgetExceeded;
use crate::tracker::report::Figures;

/// Database operations or external calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resource {
    Db,
    Http,
}

impl Resource {
    /// The budget of this resource's time.
    fn time(self) -> Budget {
        match self {
            Resource::Db => Budget::DbTime,
            Resource::Http => Budget::HttpTime,
        }
    }

    /// Budgets that refuse the next operation of this resource as soon as
    /// they are spent (a count at its limit, no time left), not only once
    /// they are exceeded.
    fn spends(self, budget: Budget) -> bool {
        match self {
            Resource::Db => matches!(budget, Budget::Queries | Budget::DbTime | Budget::Timeout),
            Resource::Http => matches!(budget, Budget::HttpCalls | Budget::HttpTime | Budget::Timeout),
        }
    }
}

impl Scope {
    fn enforced(&self) -> impl Iterator<Item = &Scope> {
        self.chain().filter(|s| s.mode() == Mode::Enforce)
    }

    fn figures_now(&self, now: Instant) -> Figures {
        self.figures(now.saturating_duration_since(self.start))
    }

    /// In `enforce`, refuses an operation that this scope or an enclosing
    /// enforced one has no budget left for, and counts the refusal there.
    pub(crate) fn admit(&self, resource: Resource) -> Result<(), BudgetExceeded> {
        let mut enforced = self.enforced().peekable();
        if enforced.peek().is_none() {
            return Ok(());
        }
        let now = Instant::now();
        for scope in enforced {
            let figures = scope.figures_now(now);
            let stop = scope.terms().limits.iter().find_map(|(budget, limit)| {
                let used = figures.used(budget)?;
                let stops = budget.measure().over(used, limit)
                    || (resource.spends(budget) && budget.measure().spent(used, limit));
                stops.then_some(budget)
            });
            if let Some(budget) = stop {
                self.count_refusal(resource, false);
                // Read again: the refusal counts toward what was asked for.
                return Err(scope.exceeded(budget, &scope.figures_now(now)));
            }
        }
        Ok(())
    }

    fn exceeded(&self, budget: Budget, figures: &Figures) -> BudgetExceeded {
        let limit = self.limit(budget).unwrap_or(0);
        let used = figures.used(budget).map_or(0, |u| budget.measure().rounded(u));
        BudgetExceeded::new(self.name.clone(), budget, limit, used)
    }

    /// The most an operation may take: the smallest of the time left before
    /// each enforced deadline and in each enforced time budget.
    pub(crate) fn time_left(&self, resource: Resource) -> Option<Duration> {
        let mut enforced = self.enforced().peekable();
        enforced.peek()?;
        let now = Instant::now();
        let mut left: Option<Duration> = None;
        for scope in enforced {
            let budget = resource.time();
            let spent = scope.figures_now(now).used(budget).map_or(Duration::ZERO, Duration::from_nanos);
            let budget_left = scope.terms().limits.duration(budget).map(|max| max.saturating_sub(spent));
            let deadline_left = scope.deadline().map(|d| d.saturating_duration_since(now));
            for candidate in [budget_left, deadline_left].into_iter().flatten() {
                left = Some(left.map_or(candidate, |l| l.min(candidate)));
            }
        }
        left
    }

    /// The first budget this scope has exceeded, if any: in `enforce`, what
    /// stops its work.
    pub(crate) fn blown(&self) -> Option<BudgetExceeded> {
        let figures = self.figures(self.elapsed());
        let violation = *figures.violations(&self.terms().limits).first()?;
        Some(self.exceeded(violation.budget, &figures))
    }

    /// The enforced budget an operation of `resource` ran out of when its
    /// time limit expired: the first exceeded or spent in the chain, else
    /// (the timer fired a hair before the clock says the budget is spent)
    /// the time budget with the least left, which set the limit.
    pub(crate) fn expired(&self, resource: Resource) -> BudgetExceeded {
        let now = Instant::now();
        for scope in self.enforced() {
            let figures = scope.figures_now(now);
            let limits = scope.terms().limits;
            let ran_out = [resource.time(), Budget::Timeout].into_iter().find(|&budget| {
                let (Some(limit), Some(used)) = (limits.get(budget), figures.used(budget)) else { return false };
                budget.measure().spent(used, limit)
            });
            if let Some(exceeded) = scope.blown() {
                return exceeded;
            }
            if let Some(budget) = ran_out {
                return scope.exceeded(budget, &figures);
            }
        }
        self.least_left(resource, now, true)
    }

    /// An operation of `resource` not started because too little time is
    /// left for it: counted as refused; the error names the enforced time
    /// budget (the resource's, or the deadline) with the least left.
    pub(crate) fn refuse_short(&self, resource: Resource) -> BudgetExceeded {
        // A query was counted when issued; a call is counted when it ends.
        self.count_refusal(resource, resource == Resource::Db);
        self.least_left(resource, Instant::now(), false)
    }

    /// The error of the enforced time budget of `resource` (or deadline)
    /// with the least left; `expired`: its time is up (the deadline's error
    /// then says at least its limit, as the timer saw it).
    fn least_left(&self, resource: Resource, now: Instant, expired: bool) -> BudgetExceeded {
        let mut least: Option<(Duration, &Scope, Budget)> = None;
        for scope in self.enforced() {
            let figures = scope.figures_now(now);
            for budget in [resource.time(), Budget::Timeout] {
                let Some(max) = scope.terms().limits.duration(budget) else { continue };
                let left = max.saturating_sub(figures.used(budget).map_or(Duration::ZERO, Duration::from_nanos));
                if least.is_none_or(|(l, ..)| left < l) {
                    least = Some((left, scope, budget));
                }
            }
        }
        match least {
            Some((_, scope, Budget::Timeout)) if expired => scope.timed_out(),
            Some((_, scope, budget)) => scope.exceeded(budget, &scope.figures_now(now)),
            None => self.enforced().next().unwrap_or(self).timed_out(),
        }
    }

    /// The deadline has passed: the `timeout_ms` error, as the timer saw it
    /// (never less than the limit, though the clock may read a hair early).
    pub(crate) fn timed_out(&self) -> BudgetExceeded {
        let limit = self.limit(Budget::Timeout).unwrap_or(0);
        let used = Budget::Timeout.measure().rounded(super::usage::nanos(self.elapsed())).max(limit);
        BudgetExceeded::new(self.name.clone(), Budget::Timeout, limit, used)
    }
}

impl Scope {
    /// Rows the scope may still receive before an enforced `max_rows` is
    /// exceeded, the least over the enforced chain.
    pub(crate) fn rows_left(&self) -> Option<u64> {
        self.enforced().filter_map(|s| Some(s.limit(Budget::Rows)?.saturating_sub(s.usage.rows()))).min()
    }
}
