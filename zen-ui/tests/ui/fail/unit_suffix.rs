use zen_runtime::zen;

#[zen(timeout_ms = 200ms)]
async fn handler() {}

fn main() {}
