#![deny(warnings)]
use zen_runtime::{BudgetExceeded, zen};

#[derive(Debug)]
enum AppError {
    Budget(#[allow(dead_code)] BudgetExceeded),
}

impl From<BudgetExceeded> for AppError {
    fn from(e: BudgetExceeded) -> Self {
        AppError::Budget(e)
    }
}

#[zen(timeout_ms = 200, mode = "enforce")]
async fn handler() -> Result<u8, AppError> {
    Ok(1)
}

// `anyhow`-style errors work too: anything with `From<BudgetExceeded>`.
#[zen(timeout_ms = 200, mode = "enforce")]
async fn boxed() -> Result<u8, Box<dyn std::error::Error + Send + Sync>> {
    Ok(2)
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    assert_eq!(rt.block_on(handler()).unwrap(), 1);
    assert_eq!(rt.block_on(boxed()).unwrap(), 2);
}
