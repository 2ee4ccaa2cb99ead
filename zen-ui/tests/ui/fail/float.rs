use zen_runtime::zen;

#[zen(timeout_ms = 1.5)]
async fn handler() {}

fn main() {}
