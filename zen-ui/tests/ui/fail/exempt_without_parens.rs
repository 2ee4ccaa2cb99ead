use zen_runtime::zen;

#[zen(exempt = "SELECT 1")]
async fn handler() {}

fn main() {}
