use zen_runtime::zen;

#[zen(max_mem_kb = 0)]
async fn handler() {}

fn main() {}
