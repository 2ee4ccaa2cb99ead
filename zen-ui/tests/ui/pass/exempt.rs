//! `exempt(...)` for an N+1 (by statement or call site) and for an overrun
//! of every budget, with and without a date.
#![deny(warnings)]
use zen_runtime::report::Exempted;
use zen_runtime::zen;

#[zen(
    max_queries = 2,
    exempt(n_plus_one, statement = "SELECT * FROM users WHERE id = ?", reason = "rewritten in #412", until = "2999-12-31"),
    exempt(n_plus_one, call_site = "src/feed.rs:42", reason = "the feed is cached"),
    exempt(budget = "max_queries", statement = "SELECT 1", reason = "a"),
    exempt(budget = "max_db_ms", statement = "SELECT 1", reason = "b"),
    exempt(budget = "max_mem_kb", statement = "SELECT 1", reason = "c"),
    exempt(budget = "timeout_ms", statement = "SELECT 1", reason = "d"),
    exempt(budget = "max_http_calls", statement = "SELECT 1", reason = "e"),
    exempt(budget = "max_http_ms", statement = "SELECT 1", reason = "f"),
    exempt(budget = "max_poll_ms", statement = "SELECT 1", reason = "g"),
    exempt(budget = "max_rows", statement = "SELECT 1", reason = "h"),
    exempt(budget = "max_response_kb", statement = "SELECT 1", reason = "i", until = "2024-02-29")
)]
async fn exempted() -> u32 {
    7
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (n, report) = rt.block_on(zen_runtime::testing::measure(exempted()));
    assert_eq!(n, 7);
    // Nothing was exceeded, so nothing was exempted.
    assert!(report.exemptions.is_empty() && report.expired_exemptions.is_empty());
    let _ = Exempted::NPlusOne;
}
