use zen_runtime::zen;

#[zen(timeout_ms = 0)]
async fn handler() {}

fn main() {}
