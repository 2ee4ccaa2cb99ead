use zen_runtime::zen;

#[zen(max_queries = 5)]
struct Handler;

fn main() {}
