//! Which calls certainly run an operation zen counts, read from syntax
//! alone: a sqlx query built and executed in one chain, `Executor::execute`
//! and its kin called by path, a statement passed as text to an executor
//! method, and the `BEGIN`/`COMMIT`/`ROLLBACK` of a transaction the body
//! runs queries on. A method that only shares a name (an HTTP client's
//! `execute`, a cache's `fetch`) is not one of these shapes.

use std::collections::HashSet;

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::visit::{self, Visit};

/// sqlx's query constructors: `sqlx::query(..)` and friends.
const CONSTRUCTORS: &[&str] =
    &["query", "query_as", "query_scalar", "query_with", "query_as_with", "query_scalar_with", "raw_sql"];
/// The methods that run a query as a future.
const RUNS: &[&str] = &["execute", "fetch_one", "fetch_all", "fetch_optional"];
/// The methods that run it as a stream, and what consumes a stream.
const STREAMS: &[&str] = &["fetch", "fetch_many"];
const CONSUMES: &[&str] = &["try_collect", "collect", "try_next", "next", "try_for_each", "for_each"];
/// Words that start SQL text passed straight to an executor.
const SQL: &[&str] = &["SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "CREATE", "DROP", "ALTER", "SET", "CALL"];

/// One counted operation: where, and what it is, for the message.
#[derive(Clone, Debug)]
pub(crate) struct Counted {
    pub(crate) span: Span,
    pub(crate) what: String,
}

/// Variables the body uses as a transaction: begun with `.begin().await`
/// and passed to a query as its executor.
#[derive(Default)]
pub(crate) struct Transactions(HashSet<String>);

impl Transactions {
    pub(crate) fn find(body: &syn::Block) -> Self {
        struct Finder(HashSet<String>);
        impl Visit<'_> for Finder {
            fn visit_expr_method_call(&mut self, call: &syn::ExprMethodCall) {
                let method = call.method.to_string();
                if (RUNS.contains(&method.as_str()) || STREAMS.contains(&method.as_str()))
                    && let Some(executor) = call.args.first().and_then(base_variable)
                {
                    self.0.insert(executor);
                }
                visit::visit_expr_method_call(self, call);
            }
        }
        let mut finder = Finder(HashSet::new());
        finder.visit_block(body);
        Transactions(finder.0)
    }

    fn contains(&self, name: &str) -> bool {
        self.0.contains(name)
    }
}

/// `&mut *tx`, `&mut tx`, `tx`, `&*tx`: the variable used as an executor.
fn base_variable(expr: &syn::Expr) -> Option<String> {
    match expr {
        syn::Expr::Reference(r) => base_variable(&r.expr),
        syn::Expr::Unary(u) => base_variable(&u.expr),
        syn::Expr::Paren(p) => base_variable(&p.expr),
        syn::Expr::Path(p) => p.path.get_ident().map(ToString::to_string),
        _ => None,
    }
}

/// The operation `expr` (a future about to be awaited) runs, if zen
/// certainly counts it. `bound` names the variable the awaited value is
/// bound to, for `let tx = pool.begin().await?`.
pub(crate) fn operation(expr: &syn::Expr, bound: Option<&str>, transactions: &Transactions) -> Option<Counted> {
    match expr {
        syn::Expr::MethodCall(call) => method_operation(call, bound, transactions),
        syn::Expr::Call(call) => executor_path_call(call),
        syn::Expr::Paren(p) => operation(&p.expr, bound, transactions),
        _ => None,
    }
}

fn method_operation(call: &syn::ExprMethodCall, bound: Option<&str>, transactions: &Transactions) -> Option<Counted> {
    let method = call.method.to_string();
    let span = call.method.span();
    if RUNS.contains(&method.as_str()) {
        if built_by_sqlx(&call.receiver) {
            return Some(Counted { span, what: format!("`{}(..).{method}(..)`", constructor_name(&call.receiver)) });
        }
        // `pool.execute("DELETE ...")`: SQL text straight to an executor.
        if call.args.first().is_some_and(is_sql_text) {
            return Some(Counted { span, what: format!("`.{method}(\"..\")`") });
        }
        return None;
    }
    // `query(..).fetch(&pool).try_collect().await`: the stream is consumed.
    if CONSUMES.contains(&method.as_str())
        && let syn::Expr::MethodCall(inner) = &*call.receiver
        && STREAMS.contains(&inner.method.to_string().as_str())
        && built_by_sqlx(&inner.receiver)
    {
        let what = format!("`{}(..).{}(..).{method}()`", constructor_name(&inner.receiver), inner.method);
        return Some(Counted { span: inner.method.span(), what });
    }
    if call.args.is_empty() {
        let on = base_variable(&call.receiver);
        match method.as_str() {
            // A transaction the body then runs queries on.
            "begin" if bound.is_some_and(|b| transactions.contains(b)) => {
                return Some(Counted { span, what: "`.begin()` (BEGIN)".to_owned() });
            }
            "commit" | "rollback" if on.as_deref().is_some_and(|v| transactions.contains(v)) => {
                let statement = if method == "commit" { "COMMIT" } else { "ROLLBACK" };
                return Some(Counted { span, what: format!("`.{method}()` ({statement})") });
            }
            _ => {}
        }
    }
    None
}

/// `Executor::execute(&pool, q)`, `sqlx::Executor::fetch_one(..)`.
fn executor_path_call(call: &syn::ExprCall) -> Option<Counted> {
    let syn::Expr::Path(path) = &*call.func else { return None };
    let segments: Vec<String> = path.path.segments.iter().map(|s| s.ident.to_string()).collect();
    let [.., trait_name, method] = segments.as_slice() else { return None };
    (trait_name == "Executor" && RUNS.contains(&method.as_str()))
        .then(|| Counted { span: call.span(), what: format!("`Executor::{method}(..)`") })
}

/// The receiver chain starts with a sqlx query constructor or macro.
fn built_by_sqlx(expr: &syn::Expr) -> bool {
    match expr {
        syn::Expr::MethodCall(call) => {
            let method = call.method.to_string();
            !RUNS.contains(&method.as_str()) && !STREAMS.contains(&method.as_str()) && built_by_sqlx(&call.receiver)
        }
        syn::Expr::Call(call) => match &*call.func {
            syn::Expr::Path(path) => {
                path.path.segments.last().is_some_and(|s| CONSTRUCTORS.contains(&s.ident.to_string().as_str()))
            }
            _ => false,
        },
        syn::Expr::Macro(m) => {
            let name = m.mac.path.segments.last().map(|s| s.ident.to_string()).unwrap_or_default();
            name.starts_with("query")
        }
        syn::Expr::Paren(p) => built_by_sqlx(&p.expr),
        _ => false,
    }
}

/// `query_as`, `query!`: from identifiers only (rendering tokens as text
/// is a round trip to the compiler for each).
fn constructor_name(expr: &syn::Expr) -> String {
    let last = |path: &syn::Path| path.segments.last().map(|s| s.ident.to_string()).unwrap_or_default();
    match expr {
        syn::Expr::MethodCall(call) => constructor_name(&call.receiver),
        syn::Expr::Call(call) => match &*call.func {
            syn::Expr::Path(p) => last(&p.path),
            _ => "query".to_owned(),
        },
        syn::Expr::Macro(m) => format!("{}!", last(&m.mac.path)),
        syn::Expr::Paren(p) => constructor_name(&p.expr),
        _ => "query".to_owned(),
    }
}

fn is_sql_text(expr: &syn::Expr) -> bool {
    match expr {
        syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) => {
            let text = s.value();
            let first = text.trim_start().split(|c: char| !c.is_ascii_alphabetic()).next().unwrap_or("");
            SQL.iter().any(|w| first.eq_ignore_ascii_case(w))
        }
        syn::Expr::Reference(r) => is_sql_text(&r.expr),
        _ => built_by_sqlx(expr),
    }
}

/// A query future not awaited here (an argument of `join!`, a value in a
/// closure mapped over items): the same shapes, without the `.await`.
pub(crate) fn future(expr: &syn::Expr, transactions: &Transactions) -> Option<Counted> {
    operation(expr, None, transactions)
}
