#![deny(warnings)]
use zen_runtime::zen;

#[tracing::instrument]
#[zen(max_queries = 3)]
async fn instrument_first(id: u32) -> Result<u32, std::io::Error> {
    Ok(id)
}

#[zen(max_queries = 3)]
#[tracing::instrument(err, ret)]
async fn zen_first(id: u32) -> Result<u32, std::io::Error> {
    Ok(id)
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        assert_eq!(instrument_first(1).await.unwrap(), 1);
        assert_eq!(zen_first(2).await.unwrap(), 2);
    });
}
