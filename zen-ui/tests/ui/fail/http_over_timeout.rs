use zen_runtime::zen;

#[zen(max_http_ms = 300, timeout_ms = 200)]
async fn handler() {}

fn main() {}
