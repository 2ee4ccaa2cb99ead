use zen_runtime::zen;

#[zen(max_queries = 5)]
#[zen(timeout_ms = 200)]
async fn handler() {}

fn main() {}
