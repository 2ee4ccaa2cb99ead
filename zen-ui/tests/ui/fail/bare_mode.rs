use zen_runtime::zen;

#[zen(enforce)]
async fn handler() {}

fn main() {}
