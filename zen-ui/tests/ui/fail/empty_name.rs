use zen_runtime::zen;

#[zen(name = "")]
async fn handler() {}

fn main() {}
