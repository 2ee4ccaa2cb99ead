use zen_runtime::zen;

#[zen(max_queries = 5)]
fn handler() {}

fn main() {}
