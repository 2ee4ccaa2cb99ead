use zen_runtime::zen;

#[zen(max_query = 5)]
async fn handler() {}

fn main() {}
