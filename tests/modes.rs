//! What a blown budget does in each mode.

use std::time::{Duration, Instant};

use futures::FutureExt;
use zen_runtime::{Budget, BudgetExceeded, Outcome, instrument, testing, zen};

#[derive(Debug)]
enum AppError {
    Budget(BudgetExceeded),
}

impl From<BudgetExceeded> for AppError {
    fn from(e: BudgetExceeded) -> Self {
        AppError::Budget(e)
    }
}

fn query() -> Result<(), BudgetExceeded> {
    instrument::query("test", "SELECT 1")?.finish(true);
    Ok(())
}

#[zen(max_queries = 2, mode = "observe")]
async fn observed() -> Result<u32, AppError> {
    for _ in 0..4 {
        query()?;
    }
    Ok(4)
}

#[tokio::test]
async fn observe_changes_nothing() {
    let (result, reports) = testing::collect(observed()).await;
    assert_eq!(result.unwrap(), 4, "every query ran");
    assert_eq!(reports[0].figures.queries(), 4);
    assert_eq!(reports[0].outcome, Outcome::Exceeded);
}

#[zen(max_queries = 2, mode = "enforce")]
async fn enforced_queries() -> Result<u32, AppError> {
    let mut done = 0;
    for _ in 0..4 {
        query()?;
        done += 1;
    }
    Ok(done)
}

#[tokio::test]
async fn enforce_refuses_the_query_past_the_limit() {
    let (result, reports) = testing::collect(enforced_queries()).await;
    let AppError::Budget(e) = result.unwrap_err();
    assert_eq!((e.budget(), e.limit(), e.used()), (Budget::Queries, 2, 3));
    assert_eq!(e.scope(), concat!(module_path!(), "::enforced_queries"));
    let r = &reports[0];
    assert_eq!((r.figures.queries(), r.figures.refused_queries()), (3, 1), "the third was asked for and never ran");
    assert_eq!(r.outcome, Outcome::Exceeded);
}

#[zen(timeout_ms = 50, mode = "enforce")]
async fn slow() -> Result<(), AppError> {
    tokio::time::sleep(Duration::from_secs(10)).await;
    Ok(())
}

#[tokio::test]
async fn enforce_cuts_a_result_fn_at_its_deadline() {
    let start = Instant::now();
    let (result, reports) = testing::collect(slow()).await;
    let waited = start.elapsed();
    let AppError::Budget(e) = result.unwrap_err();
    assert_eq!(e.budget(), Budget::Timeout);
    assert!(waited >= Duration::from_millis(50), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "cut near the deadline, not after the sleep: {waited:?}");
    assert_eq!(reports[0].outcome, Outcome::Exceeded);
}

/// Operations of 50 ms each under `max_db_ms = 100`: the time limit each
/// is given, in `limits`.
#[zen(max_db_ms = 100, timeout_ms = 5000, mode = "enforce")]
async fn db_heavy(limits: &std::sync::Mutex<Vec<Duration>>) -> Result<u32, AppError> {
    let mut done = 0;
    loop {
        let op = instrument::query("test", "SELECT pg_sleep(0.05)")?;
        let limit = op.time_limit().expect("an enforced bound");
        limits.lock().unwrap().push(limit);
        tokio::time::sleep(Duration::from_millis(50).min(limit)).await;
        op.finish(true);
        done += 1;
        if done > 100 {
            return Ok(done);
        }
    }
}

#[tokio::test]
async fn enforce_bounds_each_operation_by_the_db_time_left_and_then_refuses() {
    let limits = std::sync::Mutex::default();
    let (result, reports) = testing::collect(db_heavy(&limits)).await;
    let AppError::Budget(e) = result.unwrap_err();
    assert_eq!(e.budget(), Budget::DbTime);
    let limits = limits.into_inner().unwrap();
    // The first gets the whole budget; the second what the first left
    // (100 - 50 ms, or less), not a fixed bound per operation; then none
    // is left.
    assert_eq!(limits.len(), 2, "{limits:?}");
    assert!(limits[0] > Duration::from_millis(90) && limits[0] <= Duration::from_millis(100), "{limits:?}");
    assert!(limits[1] <= Duration::from_millis(50), "{limits:?}");
    let r = &reports[0];
    assert_eq!((r.figures.queries(), r.figures.refused_queries()), (3, 1), "{r}");
    assert!(r.figures.db_time() <= Duration::from_millis(130), "{r}");
}

#[tokio::test]
async fn enforce_on_a_fn_that_ends_in_time_changes_nothing() {
    assert_eq!(slow_but_fine().await.unwrap(), 1);
}

#[zen(timeout_ms = 1000, max_queries = 3, mode = "enforce")]
async fn slow_but_fine() -> Result<u32, AppError> {
    query()?;
    tokio::time::sleep(Duration::from_millis(5)).await;
    Ok(1)
}

#[zen(max_queries = 1, mode = "strict")]
async fn strict_over() -> u32 {
    let _ = query();
    let _ = query();
    2
}

#[zen(max_queries = 1, mode = "strict")]
async fn strict_within() -> u32 {
    let _ = query();
    1
}

#[tokio::test]
async fn strict_panics_with_the_whole_report() {
    assert_eq!(strict_within().await, 1);
    let panic = std::panic::AssertUnwindSafe(strict_over()).catch_unwind().await.unwrap_err();
    let message = panic.downcast_ref::<String>().expect("a formatted message");
    assert!(message.contains("budget exceeded in strict mode"), "{message}");
    assert!(message.contains(concat!("`", module_path!(), "::strict_over`")), "{message}");
    assert!(message.contains("max_queries = 1: used 2 queries"), "{message}");
}

/// Two queries under an enforced budget of one: the second is refused.
#[zen(max_queries = 1, mode = "enforce")]
async fn enforced_inner() -> Result<(), AppError> {
    query()?;
    query()?;
    Ok(())
}

/// Runs the enforced inner fn, then two queries past its own observed
/// budget of one; says whether the inner fn was refused.
#[zen(max_queries = 1, mode = "observe")]
async fn observed_outer() -> Result<bool, AppError> {
    let refused = enforced_inner().await.is_err();
    query()?;
    query()?;
    Ok(refused)
}

#[tokio::test]
async fn each_scope_applies_its_own_mode() {
    let (result, reports) = testing::collect(observed_outer()).await;
    assert_eq!(result.ok(), Some(true), "the enforcing inner scope refused; the observing outer one nothing");
    let inner = reports.iter().find(|r| r.name.ends_with("::enforced_inner")).unwrap();
    let outer = reports.iter().find(|r| r.name.ends_with("::observed_outer")).unwrap();
    assert_eq!((inner.figures.queries(), inner.figures.refused_queries()), (2, 1), "{inner}");
    assert_eq!(inner.outcome, Outcome::Exceeded);
    // The outer scope's own two ran past its limit: only the inner's refusal counts.
    assert_eq!((outer.figures.queries(), outer.figures.refused_queries()), (4, 1), "{outer}");
    assert_eq!(outer.outcome, Outcome::Exceeded);
}
