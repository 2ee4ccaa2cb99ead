use zen_runtime::zen;

#[zen(max_queries = 5)]
const fn handler() {}

fn main() {}
