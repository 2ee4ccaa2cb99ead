use zen_runtime::zen;

#[zen(max_queries = -1)]
async fn handler() {}

fn main() {}
