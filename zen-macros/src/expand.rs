//! Code generation: the user's fn comes back with its attributes, visibility,
//! signature and body tokens untouched, the body moved into a budget scope.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit::Visit;

use crate::config::{self, Config, Errors};
use crate::static_check;

pub(crate) fn zen(args: TokenStream, item: TokenStream) -> TokenStream {
    let config = config::parse(args);
    let function = match syn::parse2::<syn::ItemFn>(item.clone()) {
        Ok(function) => function,
        Err(parse_error) => return with_error(item.clone(), not_a_function(item, parse_error)),
    };
    let mut errors = Errors::default();
    let config = match config {
        Ok(config) => Some(config),
        Err(e) => {
            errors.push(Some(e));
            None
        }
    };
    let target = match target(&function) {
        Ok(target) => Some(target),
        Err(e) => {
            errors.push(Some(e));
            None
        }
    };
    if let (Some(config), Some(target)) = (&config, &target)
        && let Some(max) = &config.max_queries
        && config.static_check.as_ref().is_none_or(|s| s.value)
    {
        errors.push(static_check::check(target.body(&function), max.value).err());
    }
    match (errors.finish(), config, target) {
        (Ok(()), Some(config), Some(target)) => rewrite(function, &config, &target),
        (Err(e), ..) => with_error(item, e),
        _ => unreachable!("an invalid configuration or target always carries an error"),
    }
}

/// Never swallow the user's function: IDEs and the rest of the crate keep
/// working while the attribute is wrong.
fn with_error(item: TokenStream, error: syn::Error) -> TokenStream {
    let error = error.into_compile_error();
    quote! { #item #error }
}

/// Explains why something that is not an `async fn` with a body cannot carry
/// the attribute, on the keyword that shows it.
fn not_a_function(item: TokenStream, parse_error: syn::Error) -> syn::Error {
    if let Ok(f) = syn::parse2::<syn::TraitItemFn>(item.clone())
        && f.default.is_none()
    {
        return syn::Error::new(
            f.sig.fn_token.span,
            "`#[zen]` needs a function body to measure; put it on the `async fn` in each impl of the trait",
        );
    }
    let (span, what, fix) = match syn::parse2::<syn::Item>(item) {
        Ok(syn::Item::Struct(s)) => (s.struct_token.span, "a struct", "put it on an `async fn` handler or job"),
        Ok(syn::Item::Enum(e)) => (e.enum_token.span, "an enum", "put it on an `async fn` handler or job"),
        Ok(syn::Item::Impl(i)) => (i.impl_token.span, "an impl block", "put it on each `async fn` inside the impl"),
        Ok(syn::Item::Trait(t)) => (t.trait_token.span, "a trait", "put it on the `async fn` in each impl"),
        Ok(syn::Item::Mod(m)) => (m.mod_token.span, "a module", "put it on each `async fn` inside the module"),
        Ok(other) => (other.span(), "this item", "put it on an `async fn`"),
        Err(_) => return parse_error,
    };
    syn::Error::new(span, format!("`#[zen]` applies to an `async fn`, not to {what}; {fix}"))
}

/// Where the body to wrap lives: the fn's own body, or the async block that
/// `#[tokio::test]` already moved it into when it expanded first.
enum Target {
    Async,
    TokioTest { stmt: usize },
}

impl Target {
    fn body<'a>(&self, function: &'a syn::ItemFn) -> &'a syn::Block {
        match self {
            Target::Async => &function.block,
            Target::TokioTest { stmt } => match tokio_test_body(&function.block.stmts[*stmt]) {
                Some(block) => &block.block,
                None => &function.block,
            },
        }
    }
}

fn target(function: &syn::ItemFn) -> syn::Result<Target> {
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
    let is_test = function.attrs.iter().any(|a| a.path().segments.last().is_some_and(|s| s.ident == "test"));
    if is_test && let Some(stmt) = function.block.stmts.iter().position(|s| tokio_test_body(s).is_some()) {
        return Ok(Target::TokioTest { stmt });
    }
    Err(syn::Error::new(
        sig.fn_token.span,
        "`#[zen]` applies to an `async fn` only; make this fn `async fn`, or call it from one that carries the attribute",
    ))
}

/// `let body = async { ... };`, the statement `#[tokio::test]` writes.
fn tokio_test_body(stmt: &syn::Stmt) -> Option<&syn::ExprAsync> {
    match stmt {
        syn::Stmt::Local(syn::Local { init: Some(init), .. }) => match &*init.expr {
            syn::Expr::Async(block) if init.diverge.is_none() => Some(block),
            _ => None,
        },
        _ => None,
    }
}

fn rewrite(mut function: syn::ItemFn, config: &Config, target: &Target) -> TokenStream {
    let mixed = Span::mixed_site();
    let krate = config.krate.as_ref().map_or_else(|| quote!(::zen_runtime), |k| k.value.to_token_stream());
    let private = quote_spanned!(mixed=> #krate::__private);
    let site = site(&function, config, &private);
    let output = match &function.sig.output {
        syn::ReturnType::Default => None,
        syn::ReturnType::Type(_, ty) => Some(&**ty),
    };
    let nameable = output.is_none_or(|ty| !contains_impl_trait(ty));
    let cut = cut(config, output, nameable, &private);
    match target {
        Target::Async => {
            let block = &function.block;
            let fake_return = nameable.then(|| fake_return(output));
            let body = quote_spanned! {mixed=>
                {
                    let __zen_site = #site;
                    #private::run(__zen_site, #cut, async move { #fake_return #block }).await
                }
            };
            function.block = Box::new(syn::parse_quote!(#body));
        }
        Target::TokioTest { stmt } => {
            if let syn::Stmt::Local(syn::Local { init: Some(init), .. }) = &mut function.block.stmts[*stmt] {
                let inner = &init.expr;
                *init.expr = syn::parse_quote_spanned! {mixed=>
                    #private::run(#site, #cut, #inner)
                };
            }
        }
    }
    function.into_token_stream()
}

/// `&'static Site`: the fn's name, limits, mode and kind, built at compile
/// time in a static the user's code cannot name.
fn site(function: &syn::ItemFn, config: &Config, private: &TokenStream) -> TokenStream {
    let mixed = Span::mixed_site();
    let name = match &config.name {
        Some(name) => {
            let name = &name.value;
            quote!(#name)
        }
        None => {
            let ident = function.sig.ident.to_string();
            quote!(::core::concat!(::core::module_path!(), "::", #ident))
        }
    };
    let mut limits = quote!(#private::Limits::NONE);
    let ints = [
        ("max_queries", config.max_queries.as_ref().map(|s| u64::from(s.value))),
        ("max_http_calls", config.max_http_calls.as_ref().map(|s| u64::from(s.value))),
        ("max_db_ms", config.max_db_ms.as_ref().map(|s| s.value)),
        ("max_mem_kb", config.max_mem_kb.as_ref().map(|s| s.value)),
        ("timeout_ms", config.timeout_ms.as_ref().map(|s| s.value)),
        ("max_http_ms", config.max_http_ms.as_ref().map(|s| s.value)),
        ("max_poll_ms", config.max_poll_ms.as_ref().map(|s| s.value)),
        ("max_rows", config.max_rows.as_ref().map(|s| s.value)),
        ("max_response_kb", config.max_response_kb.as_ref().map(|s| s.value)),
    ];
    for (key, value) in ints {
        if let Some(value) = value {
            let setter = syn::Ident::new(key, mixed);
            let value = proc_macro2::Literal::u64_unsuffixed(value);
            limits = quote!(#limits.#setter(#value));
        }
    }
    let mode = variant(config.mode.as_ref().map(|s| s.value.as_str()), &quote!(#private::Mode));
    let kind = variant(config.kind.as_ref().map(|s| s.value.as_str()), &quote!(#private::Kind));
    let n_plus_one = config.n_plus_one.as_ref().map(|s| {
        let n = proc_macro2::Literal::u32_unsuffixed(s.value);
        quote!(.n_plus_one(#n))
    });
    quote_spanned! {mixed=>
        {
            static __ZEN_SITE: #private::Site = #private::Site::new(#name, #limits, #mode, #kind)#n_plus_one;
            &__ZEN_SITE
        }
    }
}

fn variant(value: Option<&str>, ty: &TokenStream) -> TokenStream {
    match value {
        Some(value) => {
            let mut name = value.to_string();
            name[..1].make_ascii_uppercase();
            let ident = syn::Ident::new(&name, Span::mixed_site());
            quote!(::core::option::Option::Some(#ty::#ident))
        }
        None => quote!(::core::option::Option::None),
    }
}

/// How the scope turns a blown budget into the fn's own return value.
///
/// - `mode = "enforce"` written on the fn: the return type must implement the
///   runtime's `Cut` (a `Result` whose error converts from `BudgetExceeded`);
///   otherwise the compiler says which impl to add, on the return type.
/// - no mode written: the global mode may be `enforce`, so probe at compile
///   time whether the return type can carry `BudgetExceeded`, and cut only if
///   it can.
/// - `observe` or `strict`: never cut.
fn cut(config: &Config, output: Option<&syn::Type>, nameable: bool, private: &TokenStream) -> TokenStream {
    let mixed = Span::mixed_site();
    match config.mode.as_ref().map(|m| m.value.as_str()) {
        Some("enforce") => {
            // Every token on the return type, so the error for a type that
            // cannot carry `BudgetExceeded` points at it.
            let span = output.map_or(Span::call_site(), Spanned::span);
            respan(quote!(#private::cut_required()), span)
        }
        Some(_) => quote_spanned!(mixed=> ::core::option::Option::None),
        None if nameable => {
            let ty = output.map_or_else(|| quote!(()), ToTokens::to_token_stream);
            quote_spanned! {mixed=>
                {
                    #[allow(unused_imports)]
                    use #private::{CutProbe as _, NoCut as _};
                    (&#private::Probe::<#ty>::new()).cut()
                }
            }
        }
        None => quote_spanned!(mixed=> ::core::option::Option::None),
    }
}

/// An unreachable `return` of the declared type, so type inference and errors
/// about the return type point at the user's signature (as tracing does).
fn fake_return(output: Option<&syn::Type>) -> TokenStream {
    let ty = output.map_or_else(|| quote!(()), ToTokens::to_token_stream);
    quote_spanned! {Span::mixed_site()=>
        #[allow(
            unknown_lints,
            unreachable_code,
            clippy::diverging_sub_expression,
            clippy::empty_loop,
            clippy::let_unit_value,
            clippy::let_with_type_underscore,
            clippy::needless_return,
            clippy::unreachable
        )]
        if false {
            let __zen_fake_return: #ty = loop {};
            return __zen_fake_return;
        }
    }
}

fn contains_impl_trait(ty: &syn::Type) -> bool {
    struct Finder(bool);
    impl Visit<'_> for Finder {
        fn visit_type_impl_trait(&mut self, _: &syn::TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut finder = Finder(false);
    finder.visit_type(ty);
    finder.0
}

fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut token| {
            if let proc_macro2::TokenTree::Group(group) = &token {
                let mut inner = proc_macro2::Group::new(group.delimiter(), respan(group.stream(), span));
                inner.set_span(span);
                token = inner.into();
            }
            token.set_span(span);
            token
        })
        .collect()
}
