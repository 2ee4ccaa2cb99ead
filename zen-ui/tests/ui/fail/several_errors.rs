use zen_runtime::zen;

#[zen(max_queries = -1, timeout_ms = 0, mode = "fast")]
async fn handler() {}

fn main() {}
