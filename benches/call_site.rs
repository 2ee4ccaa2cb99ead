//! What naming the call site of an N+1 suspect costs in memory: the
//! process's resident set before the first suspect of the process, right
//! after its report names the call site, and after nine more distinct ones.
//! Built like every benchmark here (release, `debug = 1`: line tables), so
//! the symbols zen reads are what a production build with line numbers has.
//!
//! `cargo bench --bench call_site`
#![allow(clippy::print_stdout)]

use zen_runtime::db::SqlitePool;
use zen_runtime::{testing, zen};

/// A figure of this process's `/proc/self/status`, in KiB (Linux).
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The resident set now.
fn rss_kib() -> u64 {
    status_kib("VmRSS:")
}

macro_rules! suspects {
    ($($name:ident = $table:literal),*) => {$(
        #[zen(n_plus_one = 3)]
        async fn $name(pool: &SqlitePool) {
            for i in 0..4 {
                sqlx::query(concat!("SELECT ", $table, " + ?")).bind(i).execute(pool).await.unwrap();
            }
        }
    )*};
}

suspects!(s0 = "0", s1 = "1", s2 = "2", s3 = "3", s4 = "4", s5 = "5", s6 = "6", s7 = "7", s8 = "8", s9 = "9");

/// The call site the report of `run`'s own scope names.
async fn call_site(run: impl Future<Output = ()>) -> String {
    let ((), reports) = testing::collect(run).await;
    let site = reports.iter().find_map(|r| r.n_plus_one.first()?.call_site.clone());
    site.expect("the suspect's report names its call site")
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let pool = SqlitePool::connect("sqlite::memory:").await.unwrap();
        // Everything but the call site warmed up: a scope with a query.
        let _ = testing::measure(async { sqlx::query("SELECT 1").execute(&pool).await.unwrap() }).await;
        let before = rss_kib();
        let site = call_site(s0(&pool)).await;
        let first = rss_kib();
        let futures: [std::pin::Pin<Box<dyn Future<Output = ()> + '_>>; 9] = [
            Box::pin(s1(&pool)),
            Box::pin(s2(&pool)),
            Box::pin(s3(&pool)),
            Box::pin(s4(&pool)),
            Box::pin(s5(&pool)),
            Box::pin(s6(&pool)),
            Box::pin(s7(&pool)),
            Box::pin(s8(&pool)),
            Box::pin(s9(&pool)),
        ];
        for future in futures {
            call_site(future).await;
        }
        let ten = rss_kib();
        println!("first suspect's call site: {site}");
        println!("resident set before:             {:>8} KiB", before);
        println!("after the first call site:       {:>8} KiB (+{} KiB)", first, first.saturating_sub(before));
        println!("after ten distinct call sites:   {:>8} KiB (+{} KiB)", ten, ten.saturating_sub(before));
        let peak = status_kib("VmHWM:");
        println!("highest resident set:            {:>8} KiB (+{} KiB)", peak, peak.saturating_sub(before));
    });
}
