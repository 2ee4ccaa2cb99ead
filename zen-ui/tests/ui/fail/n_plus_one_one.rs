use zen_runtime::zen;

#[zen(n_plus_one = 1)]
async fn handler() {}

fn main() {}
