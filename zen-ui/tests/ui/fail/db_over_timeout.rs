use zen_runtime::zen;

#[zen(max_db_ms = 500, timeout_ms = 200)]
async fn handler() {}

fn main() {}
