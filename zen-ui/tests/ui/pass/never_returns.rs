//! A fn that never returns (`-> !`) compiles with the attribute as without.
#![deny(warnings)]
use zen_runtime::zen;

#[zen]
async fn forever() -> ! {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    }
}

#[zen(timeout_ms = 100)]
async fn fails() -> ! {
    panic!("gave up")
}

fn main() {
    let _ = forever;
    let _ = fails;
}
