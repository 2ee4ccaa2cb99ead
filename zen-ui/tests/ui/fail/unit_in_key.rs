use zen_runtime::zen;

#[zen(timeout_s = 2)]
async fn seconds() {}

#[zen(max_mem_mb = 4)]
async fn megabytes() {}

fn main() {}
