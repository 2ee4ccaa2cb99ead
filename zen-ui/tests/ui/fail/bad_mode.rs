use zen_runtime::zen;

#[zen(mode = "enforced")]
async fn handler() {}

fn main() {}
