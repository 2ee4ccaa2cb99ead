//! What `#[zen]` expands to. Not public API: nothing here is covered by
//! semver, and code outside the expansion must not use it.

use std::future::Future;
use std::marker::PhantomData;

pub use crate::tracker::budget::{Budget, Kind, Limits, Mode, by_key};
use crate::tracker::error::BudgetExceeded;
use crate::tracker::future::Scoped;
pub use crate::tracker::report::{Date, Exempted, Exemption, Matches};
pub use crate::tracker::scope::Site;
pub use std::borrow::Cow;
/// The budget keys the attribute accepts, for the test that they are the
/// budget table's.
pub use zen_macros::__budget_keys as budget_keys;
/// The other keys it accepts, for the test that its documentation lists
/// every key.
pub use zen_macros::__other_keys as other_keys;

/// The body of an annotated fn, inside a new scope opened at its first poll.
///
/// Run directly inside a boundary's scope (the layer's request, a job), the
/// fn is its handler: it tightens that scope rather than opening one, and
/// the boundary reports and cuts (a `kind` other than the boundary's opts a
/// helper out).
pub fn run<F: Future>(site: &'static Site, cut: Option<fn(BudgetExceeded) -> F::Output>, fut: F) -> Scoped<F> {
    Scoped::site(site, cut, fut)
}

/// A return value that can stand for a blown budget.
#[diagnostic::on_unimplemented(
    message = "`#[zen(mode = \"enforce\")]` cannot cut this fn short: `{Self}` cannot carry `zen_runtime::BudgetExceeded`",
    label = "this return type cannot carry `zen_runtime::BudgetExceeded`",
    note = "return `Result<T, E>` whose `E` has `impl From<zen_runtime::BudgetExceeded> for E` (add that impl to your error type), or remove `mode = \"enforce\"` (wrappers still refuse work when the global mode is `enforce`)"
)]
pub trait Cut {
    fn cut(exceeded: BudgetExceeded) -> Self;
}

// Not recommended: a `Result` whose error lacks the `From` is reported in
// `Cut`'s words above, not as std's `From` bound naming this module.
#[diagnostic::do_not_recommend]
impl<T, E: From<BudgetExceeded>> Cut for Result<T, E> {
    fn cut(exceeded: BudgetExceeded) -> Self {
        Err(E::from(exceeded))
    }
}

/// `mode = "enforce"` written on the fn: its return type must be `Cut`.
#[must_use]
pub fn cut_required<R: Cut>() -> Option<fn(BudgetExceeded) -> R> {
    Some(R::cut)
}

/// No mode written: cut when the return type allows it, found at compile
/// time by method resolution (`CutProbe` applies by value, `NoCut` only
/// through one more reference).
#[derive(Debug)]
pub struct Probe<R>(PhantomData<fn() -> R>);

impl<R> Probe<R> {
    #[must_use]
    pub const fn new() -> Self {
        Probe(PhantomData)
    }
}

impl<R> Default for Probe<R> {
    fn default() -> Self {
        Self::new()
    }
}

pub trait CutProbe<R> {
    fn cut(&self) -> Option<fn(BudgetExceeded) -> R>;
}

impl<T, E: From<BudgetExceeded>> CutProbe<Result<T, E>> for Probe<Result<T, E>> {
    fn cut(&self) -> Option<fn(BudgetExceeded) -> Result<T, E>> {
        Some(<Result<T, E> as Cut>::cut)
    }
}

pub trait NoCut<R> {
    fn cut(&self) -> Option<fn(BudgetExceeded) -> R>;
}

impl<R> NoCut<R> for &Probe<R> {
    fn cut(&self) -> Option<fn(BudgetExceeded) -> R> {
        None
    }
}
