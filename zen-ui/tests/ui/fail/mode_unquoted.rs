use zen_runtime::zen;

#[zen(mode = enforce)]
async fn handler() {}

fn main() {}
