#![deny(warnings)]
// An application that re-exports the runtime under its own path.
mod platform {
    pub use zen_runtime as budgets;
}

use zen_runtime::zen;

#[zen(crate = "crate::platform::budgets", max_queries = 1)]
async fn handler() -> u8 {
    1
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    assert_eq!(rt.block_on(handler()), 1);
}
