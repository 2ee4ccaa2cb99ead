use zen_runtime::zen;

#[zen(max_queries = LIMIT)]
async fn handler() {}

fn main() {}
