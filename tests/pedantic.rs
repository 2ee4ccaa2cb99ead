//! The expansion is lint-clean in a crate that denies warnings and
//! `clippy::pedantic`: `cargo clippy --all-targets` checks this file, and the
//! test checks the fns still run.
#![deny(warnings, clippy::pedantic)]

use zen_runtime::{BudgetExceeded, zen};

/// An error that can carry a blown budget.
#[derive(Debug)]
pub struct AppError(pub BudgetExceeded);

impl From<BudgetExceeded> for AppError {
    fn from(e: BudgetExceeded) -> Self {
        AppError(e)
    }
}

/// A handler with every limit.
///
/// # Errors
/// When a budget is exceeded.
#[zen(max_queries = 5, max_db_ms = 50, max_mem_kb = 512, timeout_ms = 200, max_http_calls = 1, max_http_ms = 100)]
pub async fn handler(id: u32) -> Result<u32, AppError> {
    Ok(id)
}

/// Enforced.
///
/// # Errors
/// When a budget is exceeded.
#[zen(mode = "enforce", timeout_ms = 100)]
pub async fn enforced(id: &str) -> Result<&str, AppError> {
    Ok(id)
}

/// Unit.
#[zen]
pub async fn unit() {}

/// A method.
#[derive(Debug)]
pub struct Service;

impl Service {
    /// By reference.
    #[zen(kind = "job", mode = "strict")]
    pub async fn run(&self) -> u64 {
        2
    }
}

#[tokio::test]
async fn pedantic_expansions_run() {
    assert_eq!(handler(1).await.unwrap(), 1);
    assert_eq!(enforced("a").await.unwrap(), "a");
    unit().await;
    assert_eq!(Service.run().await, 2);
}
