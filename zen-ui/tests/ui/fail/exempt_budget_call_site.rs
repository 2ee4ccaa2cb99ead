use zen_runtime::zen;

#[zen(max_db_ms = 50, exempt(budget = "max_db_ms", call_site = "src/feed.rs:42", reason = "known"))]
async fn handler() {}

fn main() {}
