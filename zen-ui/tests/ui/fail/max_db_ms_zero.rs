use zen_runtime::zen;

#[zen(max_db_ms = 0)]
async fn handler() {}

fn main() {}
