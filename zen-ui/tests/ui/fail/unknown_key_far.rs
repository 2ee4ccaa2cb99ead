use zen_runtime::zen;

#[zen(budget = 5)]
async fn handler() {}

fn main() {}
