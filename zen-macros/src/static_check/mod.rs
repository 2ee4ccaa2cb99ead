//! A budget that is broken on every call is a compile error.
//!
//! The check fires only when it is certain: every way through the body
//! (paths that end in an error propagated by `?` or in a panic aside) runs
//! more operations that zen counts than `max_queries`. It counts what
//! certainly runs: a sqlx query built and run in one chain and awaited,
//! `Executor::execute(..)` called by path, SQL text passed to an executor,
//! the futures given to `join!`/`try_join!`, `async {}` blocks awaited in
//! place, arguments of `format!` and kin, and `BEGIN`, `COMMIT` and
//! `ROLLBACK` of a transaction the body runs queries on. A query future
//! built and dropped, a stream never consumed, or code that may be skipped
//! (a branch, a loop body, after a `return` or a `break` out of a labeled
//! block, the `else` of a `let ... else`) is not counted on every path.
//!
//! `deny_query_in_loop = true` also rejects a query inside a loop body or
//! a closure run per item (`.map(|id| ..)`): the N+1 pattern, caught before
//! it runs.

mod flow;
mod query;

use crate::args::Args;
use crate::words::Errors;

/// Checks the body against `max_queries`, and against
/// `deny_query_in_loop`.
pub(crate) fn check(body: &syn::Block, function: &syn::Ident, args: &Args) -> syn::Result<()> {
    if args.static_check.as_ref().is_some_and(|s| !s.value) {
        return Ok(());
    }
    let max = args.budget("max_queries").map(|s| s.value);
    let deny_loops = args.deny_query_in_loop.as_ref().is_some_and(|s| s.value);
    if max.is_none() && !deny_loops {
        return Ok(());
    }
    let transactions = query::Transactions::find(body);
    let mut walk = flow::Walk::new(&transactions);
    let fewest = walk.block(body).out();
    let mut errors = Errors::default();
    if let (Some(max), Some(path)) = (max, fewest) {
        let within = usize::try_from(max).unwrap_or(usize::MAX);
        if let Some(crossing) = path.get(within) {
            let counted: Vec<&str> = path.iter().map(|c| c.what.as_str()).collect();
            errors.push(Some(syn::Error::new(
                crossing.span,
                format!(
                    "every way through `{function}` runs at least {} that zen counts, over `max_queries = {max}`, \
                     and this is number {}; counted in order: {}. (Paths that end in an error from `?` or in a panic \
                     are set aside.) Raise `max_queries`, do this work elsewhere, or add `static_check = false` if \
                     one of these is not a query",
                    if path.len() == 1 { "1 operation".to_owned() } else { format!("{} operations", path.len()) },
                    within + 1,
                    counted.join(", ")
                ),
            )));
        }
    }
    if deny_loops {
        for counted in &walk.in_loops {
            errors.push(Some(syn::Error::new(
                counted.span,
                format!(
                    "{} runs once per item of a loop: the N+1 pattern (`deny_query_in_loop`); fetch the rows in one \
                     query, such as `WHERE id = ANY($1)` or `IN (...)`, or write `deny_query_in_loop = false`",
                    counted.what
                ),
            )));
        }
    }
    errors.finish()
}
