use zen_runtime::zen;

#[zen(max_queries = 5, timeout_ms = 200, max_queries = 6)]
async fn handler() {}

fn main() {}
