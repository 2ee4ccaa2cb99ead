use zen_runtime::zen;

#[zen(max_queries = 18446744073709551616)]
async fn handler() {}

fn main() {}
