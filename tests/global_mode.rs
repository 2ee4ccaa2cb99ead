//! `ZEN_MODE`: the global mode, and the error a bad value gives. Alone in its
//! binary because the environment and the global mode are process-wide.

use std::time::{Duration, Instant};

use zen_runtime::{BudgetExceeded, Mode, Outcome, config, instrument, testing, zen};

#[derive(Debug)]
struct AppError(#[allow(dead_code)] BudgetExceeded);

impl From<BudgetExceeded> for AppError {
    fn from(e: BudgetExceeded) -> Self {
        AppError(e)
    }
}

// No mode written: the global mode decides.
#[zen(timeout_ms = 40)]
async fn slow_result() -> Result<(), AppError> {
    tokio::time::sleep(Duration::from_secs(10)).await;
    Ok(())
}

#[zen(max_queries = 1)]
async fn two_queries_unit() -> (bool, bool) {
    let first = instrument::query("test", "SELECT 1").map(|op| op.finish(true)).is_ok();
    let second = instrument::query("test", "SELECT 1").map(|op| op.finish(true)).is_ok();
    (first, second)
}

#[zen(max_queries = 1, mode = "observe")]
async fn observed_despite_global() -> bool {
    instrument::query("test", "SELECT 1").map(|op| op.finish(true)).is_ok()
        && instrument::query("test", "SELECT 1").map(|op| op.finish(true)).is_ok()
}

#[tokio::test]
async fn zen_mode_sets_the_global_mode_and_rejects_bad_values() {
    // SAFETY: this binary has one test, so no other thread reads the environment.
    unsafe { std::env::set_var("ZEN_MODE", "enforced") };
    let err = zen_runtime::init().unwrap_err();
    assert_eq!(err.variable, "ZEN_MODE");
    assert!(err.to_string().contains("\"observe\", \"enforce\", \"strict\""), "{err}");

    // SAFETY: as above.
    unsafe { std::env::set_var("ZEN_MODE", "enforce") };
    assert_eq!(zen_runtime::init().unwrap(), Mode::Enforce);
    assert_eq!(config::global_mode(), Mode::Enforce);

    // A Result fn with no mode written is cut at its deadline under the global mode.
    let start = Instant::now();
    let (result, reports) = testing::collect(slow_result()).await;
    assert!(result.is_err());
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!((reports[0].mode, reports[0].outcome), (Mode::Enforce, Outcome::Exceeded));

    // A fn that cannot return the error is not cut, but its second query is refused.
    let ((first, second), reports) = testing::collect(two_queries_unit()).await;
    assert!(first && !second);
    assert_eq!(reports[0].figures.refused_queries(), 1);

    // The attribute's mode wins over the global one.
    assert!(observed_despite_global().await);
}
