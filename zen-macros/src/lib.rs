//! The `#[zen]` attribute.
//!
//! Do not depend on this crate: depend on `zen-runtime`, which re-exports the
//! attribute as `zen_runtime::zen` and documents it there. The expansion only
//! reaches the runtime through `zen_runtime::__private`.

mod config;
mod expand;
mod static_check;

use proc_macro::TokenStream;

/// Puts an `async fn` under a budget. Documented at `zen_runtime::zen`.
#[proc_macro_attribute]
pub fn zen(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::zen(args.into(), item.into()).into()
}
