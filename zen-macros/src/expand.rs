//! Code generation: the user's fn comes back with its attributes, visibility,
//! signature and body tokens untouched, the body moved into a budget scope.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit::Visit;

use crate::args::{self, Args, Mode};
use crate::budgets::BUDGETS;
use crate::manifest::{self, Runtime};
use crate::static_check;
use crate::target::{self, Target};
use crate::words::Errors;

pub(crate) fn zen(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = args::parse(args);
    let mut function = match syn::parse2::<syn::ItemFn>(item.clone()) {
        Ok(function) => function,
        // On an expression, the output must stay one expression: the error,
        // then the expression, in a block (rustc has its own error for the
        // attribute there, too).
        Err(parse_error) if syn::parse2::<syn::Expr>(item.clone()).is_ok() => {
            let error = target::not_a_function(item.clone(), parse_error).into_compile_error();
            return quote! { { #error; #item } };
        }
        Err(parse_error) => return with_error(item.clone(), target::not_a_function(item, parse_error)),
    };
    let mut errors = Errors::default();
    // A second `#[zen]` has not expanded yet: it would open a second scope
    // holding part of the limits. It goes, with an error on it.
    if let Some(second) = function.attrs.iter().position(is_zen) {
        let attr = function.attrs.remove(second);
        errors.push(Some(syn::Error::new_spanned(
            attr,
            "`#[zen]` is already on this fn; write all its keys in one `#[zen(...)]`",
        )));
    }
    let args = args.map_err(|e| errors.push(Some(e))).ok();
    let target = target::target(&function).map_err(|e| errors.push(Some(e))).ok();
    let krate = args.as_ref().and_then(|a| runtime_path(a).map_err(|e| errors.push(Some(e))).ok());
    if let (Some(args), Some(target)) = (&args, &target) {
        errors.push(static_check::check(target.body(&function), &function.sig.ident, args).err());
    }
    match (errors.finish(), args, target, krate) {
        (Ok(()), Some(args), Some(target), Some(krate)) => rewrite(function, &args, &target, &krate),
        (Err(e), ..) => with_error(function.into_token_stream(), e),
        _ => unreachable!("invalid arguments or targets always carry an error"),
    }
}

/// `#[zen]`, `#[zen(..)]` or `#[any::path::zen(..)]`.
fn is_zen(attr: &syn::Attribute) -> bool {
    attr.path().segments.last().is_some_and(|s| s.ident == "zen")
}

/// Never swallow the user's function: IDEs and the rest of the crate keep
/// working while the attribute is wrong.
fn with_error(item: TokenStream, error: syn::Error) -> TokenStream {
    let error = error.into_compile_error();
    quote! { #item #error }
}

/// The runtime's path: `crate = "..."`, else the name Cargo.toml gives it.
fn runtime_path(args: &Args) -> syn::Result<TokenStream> {
    if let Some(path) = &args.krate {
        return Ok(path.value.to_token_stream());
    }
    match manifest::runtime() {
        Runtime::Default => Ok(quote!(::zen_runtime)),
        Runtime::Renamed(name) => {
            let ident = syn::Ident::new(&name, Span::call_site());
            Ok(quote!(::#ident))
        }
        Runtime::Missing => Err(syn::Error::new(
            Span::call_site(),
            "`#[zen]` expands to code that calls `zen-runtime`, and this crate's Cargo.toml does not depend on it: \
             add `zen-runtime = \"0.1\"` under `[dependencies]`, or, if another crate re-exports it, write \
             `#[zen(crate = \"that_crate::zen_runtime\")]`",
        )),
    }
}

fn rewrite(mut function: syn::ItemFn, args: &Args, target: &Target, krate: &TokenStream) -> TokenStream {
    let mixed = Span::mixed_site();
    let private = quote_spanned!(mixed=> #krate::__private);
    let site = site(&function, args, &private);
    let output = match &function.sig.output {
        syn::ReturnType::Default => None,
        syn::ReturnType::Type(_, ty) => Some(&**ty),
    };
    // `-> !` cannot be named in a `let`, nor a probe's type (it is unstable
    // there), and such a fn never returns a value to cut with.
    let never = matches!(output, Some(syn::Type::Never(_)));
    let nameable = !never && output.is_none_or(|ty| !contains_impl_trait(ty));
    let cut = cut(args, output, nameable, &private);
    match target {
        Target::Async => {
            // The body's statements, not its block: a one-line body spliced
            // as a block would be `{ expr }`, which `unused_braces` flags.
            let statements = &function.block.stmts;
            let fake_return = nameable.then(|| fake_return(output));
            let body = quote_spanned! {mixed=>
                {
                    let __zen_site = #site;
                    #private::run(__zen_site, #cut, async move { #fake_return #(#statements)* }).await
                }
            };
            function.block = Box::new(syn::parse_quote!(#body));
        }
        Target::TokioBody { stmt } => {
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
fn site(function: &syn::ItemFn, args: &Args, private: &TokenStream) -> TokenStream {
    let mixed = Span::mixed_site();
    let name = match &args.name {
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
    for (index, setting) in &args.budgets {
        // The setter is named by the key, in the runtime's budget table.
        let setter = syn::Ident::new(BUDGETS[*index].0, mixed);
        let value = proc_macro2::Literal::u64_unsuffixed(setting.value);
        limits = quote!(#limits.#setter(#value));
    }
    let some = |variant: Option<&str>, ty: TokenStream| match variant {
        Some(variant) => {
            let ident = syn::Ident::new(variant, mixed);
            quote!(::core::option::Option::Some(#ty::#ident))
        }
        None => quote!(::core::option::Option::None),
    };
    let mode = some(args.mode.as_ref().map(|m| m.value.variant()), quote!(#private::Mode));
    let kind = some(args.kind.as_ref().map(|k| k.value.variant()), quote!(#private::Kind));
    let n_plus_one = args.n_plus_one.as_ref().map(|s| {
        let n = proc_macro2::Literal::u32_unsuffixed(s.value);
        quote!(.n_plus_one(#n))
    });
    if args.exempt.is_empty() {
        return quote_spanned! {mixed=>
            {
                static __ZEN_SITE: #private::Site = #private::Site::new(#name, #limits, #mode, #kind)#n_plus_one;
                &__ZEN_SITE
            }
        };
    }
    let count = args.exempt.len();
    let exempt = crate::exempt::expand(&args.exempt, private);
    quote_spanned! {mixed=>
        {
            static __ZEN_EXEMPT: [#private::Exemption; #count] = #exempt;
            static __ZEN_SITE: #private::Site =
                #private::Site::new(#name, #limits, #mode, #kind)#n_plus_one.exempt(&__ZEN_EXEMPT);
            &__ZEN_SITE
        }
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
fn cut(args: &Args, output: Option<&syn::Type>, nameable: bool, private: &TokenStream) -> TokenStream {
    let mixed = Span::mixed_site();
    match args.mode.as_ref().map(|m| m.value) {
        Some(Mode::Enforce) => {
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
