use zen_runtime::zen;

#[zen(static_check = "no")]
async fn handler() {}

fn main() {}
