//! What the error messages suggest, written out: each compiles.
#![deny(warnings)]
use zen_runtime::zen;

// `mode = Enforce` and `mode = "Enforce"` suggest this.
#[zen(mode = "enforce")]
async fn enforced() -> Result<(), zen_runtime::BudgetExceeded> {
    Ok(())
}

// `timeout_ms = "200ms"` and `timeout_ms = 200ms` suggest `200`; `timeout_s = 2` suggests `timeout_ms = 2000`.
#[zen(timeout_ms = 200, max_db_ms = 200)]
async fn timed() {}

#[zen(timeout_ms = 2000)]
async fn seconds() {}

// `max_queries: 5` and `max_queries = +5` suggest this; `max_mem_mb = 4` suggests `max_mem_kb = 4096`.
#[zen(max_queries = 5, max_mem_kb = 4096)]
async fn counted() {}

// `n_plus_one = 1` suggests a value of 2 or more, or 0.
#[zen(n_plus_one = 2)]
async fn flagged() {}

#[zen(n_plus_one = 0)]
async fn unflagged() {}

fn main() {
    let _ = (enforced, timed, seconds, counted, flagged, unflagged);
}
