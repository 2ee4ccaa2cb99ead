use zen_runtime::zen;

#[zen(mode = Enforce)]
async fn unquoted() {}

#[zen(mode = "Enforce")]
async fn quoted() {}

fn main() {}
