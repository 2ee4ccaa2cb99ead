use zen_runtime::zen;

#[derive(Debug)]
struct AppError;

#[zen(timeout_ms = 200, mode = "enforce")]
async fn handler() -> Result<String, AppError> {
    Ok(String::new())
}

fn main() {}
