#![deny(warnings)]
use std::fmt::Display;

use zen_runtime::zen;

#[zen(max_queries = 5, max_db_ms = 50, max_mem_kb = 512, timeout_ms = 200, max_http_calls = 0, max_http_ms = 100)]
async fn free() -> u32 {
    1
}

#[zen(name = "custom", kind = "job", mode = "observe")]
async fn generic<T: Display + Send>(value: T) -> String {
    value.to_string()
}

#[zen(timeout_ms = 30_000)]
async fn impl_trait_arg(value: impl Display) -> impl Display {
    format!("<{value}>")
}

#[zen]
async fn early_return(flag: bool) -> Result<u8, std::num::ParseIntError> {
    if flag {
        return Ok(0);
    }
    let n: u8 = "7".parse()?;
    Ok(n)
}

#[zen]
async fn borrowed<'a>(s: &'a str, _other: &str) -> &'a str {
    s
}

struct Service {
    calls: u32,
}

impl Service {
    #[zen(max_queries = 1)]
    async fn by_ref(&self) -> u32 {
        self.calls
    }

    #[zen(max_queries = 1)]
    async fn by_mut(&mut self) {
        self.calls += 1;
    }

    #[zen(max_queries = 1)]
    async fn by_value(self) -> u32 {
        self.calls
    }

    #[zen]
    async fn returns_self() -> Self {
        Service { calls: 0 }
    }
}

trait Repository {
    async fn load(&self, id: u32) -> Option<u32>;
}

impl Repository for Service {
    #[zen(max_queries = 1)]
    async fn load(&self, id: u32) -> Option<u32> {
        (id == self.calls).then_some(id)
    }
}

#[zen]
async fn recursive(n: u32) -> u32 {
    if n == 0 { 0 } else { Box::pin(recursive(n - 1)).await + 1 }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        assert_eq!(free().await, 1);
        assert_eq!(generic(5).await, "5");
        assert_eq!(impl_trait_arg(3).await.to_string(), "<3>");
        assert_eq!(early_return(false).await, Ok(7));
        assert_eq!(borrowed("a", "b").await, "a");
        let mut s = Service::returns_self().await;
        s.by_mut().await;
        assert_eq!(s.by_ref().await, 1);
        assert_eq!(s.load(1).await, Some(1));
        assert_eq!(s.by_value().await, 1);
        assert_eq!(recursive(3).await, 3);
    });
}
