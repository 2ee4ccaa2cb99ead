use zen_runtime::zen;

#[zen(max_queries = 5000000000)]
async fn handler() {}

fn main() {}
