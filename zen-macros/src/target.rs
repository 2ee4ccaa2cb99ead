//! Where the body to wrap is: the fn's own, or the async block that
//! `#[tokio::test]` or `#[tokio::main]` already moved it into when written
//! above `#[zen]` (they expand first).

use syn::spanned::Spanned;

pub(crate) enum Target {
    Async,
    /// `let body = async { .. };`, statement `stmt` of the fn's block.
    TokioBody {
        stmt: usize,
    },
}

impl Target {
    pub(crate) fn body<'a>(&self, function: &'a syn::ItemFn) -> &'a syn::Block {
        match self {
            Target::Async => &function.block,
            Target::TokioBody { stmt } => match tokio_body(&function.block.stmts[*stmt]) {
                Some(block) => &block.block,
                None => &function.block,
            },
        }
    }
}

pub(crate) fn target(function: &syn::ItemFn) -> syn::Result<Target> {
    let sig = &function.sig;
    if let Some(constness) = &sig.constness {
        return Err(syn::Error::new(
            constness.span,
            "`#[zen]` cannot measure a `const fn`: budgets are checked at run time; remove `const` and make it an `async fn`",
        ));
    }
    if sig.asyncness.is_some() {
        return Ok(Target::Async);
    }
    if let Some(stmt) = function.block.stmts.iter().position(|s| tokio_body(s).is_some()) {
        let is_test = function.attrs.iter().any(|a| a.path().segments.last().is_some_and(|s| s.ident == "test"));
        let blocks_on = function.block.stmts.last().is_some_and(|s| mentions(s, "block_on"));
        if is_test || blocks_on {
            return Ok(Target::TokioBody { stmt });
        }
    }
    Err(syn::Error::new(
        sig.fn_token.span,
        "`#[zen]` applies to an `async fn` only; make this fn `async fn`, or call it from one that carries the attribute",
    ))
}

/// `let body = async { ... };`, the statement tokio's attributes write.
pub(crate) fn tokio_body(stmt: &syn::Stmt) -> Option<&syn::ExprAsync> {
    match stmt {
        syn::Stmt::Local(syn::Local { pat: syn::Pat::Ident(p), init: Some(init), .. }) if p.ident == "body" => {
            match &*init.expr {
                syn::Expr::Async(block) if init.diverge.is_none() => Some(block),
                _ => None,
            }
        }
        _ => None,
    }
}

fn mentions(stmt: &syn::Stmt, word: &str) -> bool {
    fn walk(tokens: proc_macro2::TokenStream, word: &str) -> bool {
        tokens.into_iter().any(|t| match t {
            proc_macro2::TokenTree::Ident(i) => i == word,
            proc_macro2::TokenTree::Group(g) => walk(g.stream(), word),
            _ => false,
        })
    }
    walk(quote::ToTokens::to_token_stream(stmt), word)
}

/// Explains why something that is not an `async fn` with a body cannot carry
/// the attribute, on the keyword that shows it.
pub(crate) fn not_a_function(item: proc_macro2::TokenStream, parse_error: syn::Error) -> syn::Error {
    if let Ok(f) = syn::parse2::<syn::TraitItemFn>(item.clone())
        && f.default.is_none()
    {
        return syn::Error::new(
            f.sig.fn_token.span,
            "`#[zen]` needs a function body to measure; put it on the `async fn` in each impl of the trait",
        );
    }
    let (span, what, fix) = match syn::parse2::<syn::Item>(item.clone()) {
        Ok(syn::Item::Struct(s)) => (s.struct_token.span, "a struct", "put it on an `async fn` handler or job"),
        Ok(syn::Item::Enum(e)) => (e.enum_token.span, "an enum", "put it on an `async fn` handler or job"),
        Ok(syn::Item::Impl(i)) => (i.impl_token.span, "an impl block", "put it on each `async fn` inside the impl"),
        Ok(syn::Item::Trait(t)) => (t.trait_token.span, "a trait", "put it on the `async fn` in each impl"),
        Ok(syn::Item::Mod(m)) => (m.mod_token.span, "a module", "put it on each `async fn` inside the module"),
        Ok(other) => (other.span(), "this item", "put it on an `async fn`"),
        Err(_) => match syn::parse2::<syn::Expr>(item) {
            // A closure, or an async block: rustc refuses attributes there
            // before zen sees them, unless in a statement position.
            Ok(expr @ (syn::Expr::Closure(_) | syn::Expr::Async(_))) => (
                expr.span(),
                "a closure or an async block",
                "move the code into an `async fn` with the attribute, and call it",
            ),
            _ => return parse_error,
        },
    };
    syn::Error::new(span, format!("`#[zen]` applies to an `async fn`, not to {what}; {fix}"))
}
