use zen_runtime::zen;

#[zen(max_queries)]
async fn handler() {}

fn main() {}
