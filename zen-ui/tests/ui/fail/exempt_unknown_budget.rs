use zen_runtime::zen;

#[zen(exempt(budget = "max_db", statement = "SELECT 1", reason = "known"))]
async fn handler() {}

fn main() {}
