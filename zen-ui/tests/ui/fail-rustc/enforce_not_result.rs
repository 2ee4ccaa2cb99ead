use zen_runtime::zen;

#[zen(timeout_ms = 200, mode = "enforce")]
async fn handler() -> String {
    String::new()
}

fn main() {}
