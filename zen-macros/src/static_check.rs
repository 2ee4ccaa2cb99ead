//! A budget that is broken on every call is a compile error.
//!
//! Counts the sqlx-style query executions in the body's straight-line code,
//! the code that runs on every call: conditions of `if`/`match`/`while` and
//! the iterator of `for` are evaluated, but branches, loop bodies, closures,
//! async blocks, nested items, the right side of `&&`/`||` and macro
//! arguments are not, since they may not run. The method names are the ones
//! sqlx executes queries with; a non-database method with the same name is
//! what `static_check = false` is for.

use proc_macro2::Span;
use syn::visit::{self, Visit};

const QUERY_METHODS: &[&str] = &["fetch_one", "fetch_all", "fetch_optional", "fetch", "fetch_many", "execute"];

/// Returns an error on the first call that takes the count past `max`.
pub(crate) fn check(block: &syn::Block, max: u32) -> syn::Result<()> {
    let mut counter = Counter { max, count: 0, over: None };
    counter.visit_block(block);
    match counter.over {
        None => Ok(()),
        Some(span) => Err(syn::Error::new(
            span,
            format!(
                "query {} in straight-line code exceeds `max_queries = {max}`, so every call of this fn breaks its budget; \
                 raise `max_queries`, or add `static_check = false` if this call is not a database query",
                max + 1
            ),
        )),
    }
}

struct Counter {
    max: u32,
    count: u32,
    over: Option<Span>,
}

impl<'ast> Visit<'ast> for Counter {
    fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
        // Evaluation order: receiver, then arguments, then the call itself.
        self.visit_expr(&call.receiver);
        for arg in &call.args {
            self.visit_expr(arg);
        }
        if self.over.is_none() && QUERY_METHODS.contains(&call.method.to_string().as_str()) {
            self.count += 1;
            if self.count > self.max {
                self.over = Some(call.method.span());
            }
        }
    }

    fn visit_expr_if(&mut self, e: &'ast syn::ExprIf) {
        self.visit_expr(&e.cond);
    }

    fn visit_expr_match(&mut self, e: &'ast syn::ExprMatch) {
        self.visit_expr(&e.expr);
    }

    fn visit_expr_while(&mut self, e: &'ast syn::ExprWhile) {
        self.visit_expr(&e.cond);
    }

    fn visit_expr_for_loop(&mut self, e: &'ast syn::ExprForLoop) {
        self.visit_expr(&e.expr);
    }

    fn visit_expr_loop(&mut self, _: &'ast syn::ExprLoop) {}

    fn visit_expr_closure(&mut self, _: &'ast syn::ExprClosure) {}

    fn visit_expr_async(&mut self, _: &'ast syn::ExprAsync) {}

    fn visit_item(&mut self, _: &'ast syn::Item) {}

    fn visit_macro(&mut self, _: &'ast syn::Macro) {}

    fn visit_local(&mut self, local: &'ast syn::Local) {
        if let Some(init) = &local.init {
            // The `else` of a `let ... else` runs only when the pattern fails.
            self.visit_expr(&init.expr);
        }
    }

    fn visit_expr_binary(&mut self, e: &'ast syn::ExprBinary) {
        self.visit_expr(&e.left);
        if !matches!(e.op, syn::BinOp::And(_) | syn::BinOp::Or(_)) {
            self.visit_expr(&e.right);
        }
    }

    fn visit_expr(&mut self, e: &'ast syn::Expr) {
        if self.over.is_none() {
            visit::visit_expr(self, e);
        }
    }
}
