// The expansion must stay quiet under the strictest settings a user may have.
#![deny(warnings, clippy::pedantic)]
use zen_runtime::zen;

/// A handler.
#[zen(max_queries = 5, max_db_ms = 50, timeout_ms = 200)]
pub async fn handler(id: u32) -> Result<u32, std::io::Error> {
    Ok(id)
}

/// A unit handler.
#[zen]
pub async fn unit() {}

/// A strict job.
#[zen(mode = "strict", kind = "job")]
pub async fn job() -> u64 {
    2
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        assert_eq!(handler(1).await.unwrap(), 1);
        unit().await;
        assert_eq!(job().await, 2);
    });
}
