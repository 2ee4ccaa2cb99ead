//! Every key the attribute accepts, at once: each budget key is a setter of
//! the runtime's budget table.
#![deny(warnings)]
use zen_runtime::zen;

#[zen(
    max_queries = 5,
    max_db_ms = 50,
    max_mem_kb = 512,
    timeout_ms = 200,
    max_http_calls = 2,
    max_http_ms = 100,
    max_poll_ms = 20,
    max_rows = 1000,
    max_response_kb = 64,
    n_plus_one = 3,
    name = "every::key",
    mode = "observe",
    kind = "handler",
    crate = "zen_runtime",
    static_check = true,
    deny_query_in_loop = true,
    exempt(n_plus_one, statement = "SELECT 1", reason = "every key")
)]
async fn every_key() -> u32 {
    7
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (n, report) = rt.block_on(zen_runtime::testing::measure(every_key()));
    assert_eq!(n, 7);
    assert!(report.within_budget());
}
