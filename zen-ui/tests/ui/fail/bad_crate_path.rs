use zen_runtime::zen;

#[zen(crate = "my app")]
async fn handler() {}

fn main() {}
