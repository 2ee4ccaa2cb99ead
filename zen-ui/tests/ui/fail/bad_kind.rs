use zen_runtime::zen;

#[zen(kind = "worker")]
async fn handler() {}

fn main() {}
