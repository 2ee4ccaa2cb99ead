//! The error a blown budget produces in `enforce` mode.

use std::borrow::Cow;
use std::fmt;

use crate::tracker::budget::Budget;

/// A budget was exceeded in `enforce` mode: the operation was refused, or the
/// scope was cut short.
///
/// Wrappers return it inside their client's own error type, reachable through
/// `std::error::Error::source`, so `?` carries it out of a handler. A fn under
/// `#[zen(mode = "enforce")]` that returns `Result<T, E>` needs
/// `impl From<BudgetExceeded> for E`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetExceeded {
    scope: Cow<'static, str>,
    budget: Budget,
    limit: u64,
    used: u64,
}

impl BudgetExceeded {
    pub(crate) fn new(scope: Cow<'static, str>, budget: Budget, limit: u64, used: u64) -> Self {
        BudgetExceeded { scope, budget, limit, used }
    }

    /// The name of the scope whose budget was exceeded.
    #[must_use]
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// Which budget.
    #[must_use]
    pub fn budget(&self) -> Budget {
        self.budget
    }

    /// The limit, in the budget's unit.
    #[must_use]
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// What was used or attempted, in the budget's unit (rounded up).
    #[must_use]
    pub fn used(&self) -> u64 {
        self.used
    }
}

impl fmt::Display for BudgetExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "budget exceeded in `{}`: `{} = {}`, used {} {}",
            self.scope,
            self.budget.key(),
            self.limit,
            self.used,
            self.budget.unit()
        )
    }
}

impl std::error::Error for BudgetExceeded {}
