//! One-line bodies stay warning-free: the attribute never turns them into
//! a block that `unused_braces` would flag.
#![deny(warnings)]
use zen_runtime::zen;

#[zen]
async fn health() -> &'static str { "ok" }

#[zen]
async fn owned() -> String { String::from("ok") }

#[zen]
async fn number() -> u32 { 42 }

#[zen]
async fn unit() {}

#[zen(max_queries = 1)]
async fn result() -> Result<u32, std::io::Error> { Ok(1) }

#[zen]
async fn list() -> Vec<u8> { vec![1, 2] }

#[zen]
async fn shown() -> impl std::fmt::Display { 5 }

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        assert_eq!(health().await, "ok");
        assert_eq!(owned().await, "ok");
        assert_eq!(number().await, 42);
        unit().await;
        assert_eq!(result().await.unwrap(), 1);
        assert_eq!(list().await, [1, 2]);
        assert_eq!(shown().await.to_string(), "5");
    });
}
