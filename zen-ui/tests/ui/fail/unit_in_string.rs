use zen_runtime::zen;

#[zen(timeout_ms = "200ms")]
async fn milliseconds() {}

#[zen(timeout_ms = "2s")]
async fn seconds() {}

fn main() {}
