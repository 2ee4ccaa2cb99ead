use zen_runtime::zen;

#[zen(exempt(n_plus_one, statement = "SELECT 1", reason = "known", until = "2027-02-30"))]
async fn handler() {}

fn main() {}
