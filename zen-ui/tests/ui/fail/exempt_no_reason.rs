use zen_runtime::zen;

#[zen(exempt(n_plus_one, statement = "SELECT 1"))]
async fn handler() {}

fn main() {}
