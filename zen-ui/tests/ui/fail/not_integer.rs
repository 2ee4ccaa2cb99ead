use zen_runtime::zen;

#[zen(max_queries = "5")]
async fn handler() {}

fn main() {}
