//! The `#[zen]` attribute.
//!
//! Do not depend on this crate: depend on `zen-runtime`, which re-exports the
//! attribute as `zen_runtime::zen` and documents it there. The expansion only
//! reaches the runtime through `zen_runtime::__private`.

mod args;
mod budgets;
mod exempt;
mod expand;
mod manifest;
mod static_check;
mod target;
mod words;

use proc_macro::TokenStream;

/// Puts an `async fn` under a budget. Documented at `zen_runtime::zen`.
#[proc_macro_attribute]
pub fn zen(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::zen(args.into(), item.into()).into()
}

/// The budget keys `#[zen]` accepts, as an array of strings: for the test
/// that they are the runtime's budget table. Not public API.
#[doc(hidden)]
#[proc_macro]
pub fn __budget_keys(_: TokenStream) -> TokenStream {
    let keys = budgets::BUDGETS.iter().map(|(key, _)| *key);
    quote::quote!([#(#keys),*]).into()
}

/// The other keys `#[zen]` accepts, as an array of strings: for the test
/// that its documentation lists every key. Not public API.
#[doc(hidden)]
#[proc_macro]
pub fn __other_keys(_: TokenStream) -> TokenStream {
    let keys = args::OTHER_KEYS;
    quote::quote!([#(#keys),*]).into()
}
