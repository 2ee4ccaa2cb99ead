use zen_runtime::zen;

#[zen(exempt(n_plus_one, statment = "SELECT 1", reason = "known"))]
async fn handler() {}

fn main() {}
