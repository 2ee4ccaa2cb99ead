//! The sqlx wrapper against the raw sqlx pool: `SELECT 1` through
//! `fetch_one(&pool)`, on SQLite in memory and on the PostgreSQL at
//! `ZEN_TEST_POSTGRES_URL` (default 127.0.0.1:5432, database `test`; skipped,
//! with a message, when it does not answer).
//!
//! `cargo bench --bench db`
//!
//! Interleaved rounds, not one benchmark after another: on a 2-core machine
//! the drift between consecutive benchmarks (±10%) is larger than the 1-3%
//! this measures. Each round times a batch of `BATCH` queries for each
//! variant in turn, rotating which goes first; the table gives the median
//! per query and its ratio of raw sqlx's throughput. "in scope" runs each
//! batch inside one budget scope, where every query is counted,
//! fingerprinted and timed.
#![allow(clippy::print_stdout)]

#[path = "support/mod.rs"]
mod support;

use std::pin::Pin;
use std::time::{Duration, Instant};

use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::SqlitePoolOptions;
use zen_runtime::testing;

const BATCH: u32 = 200;
const ROUNDS: usize = 61;

type Run<'a> = Box<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + 'a>> + 'a>;

macro_rules! select_1 {
    ($executor:expr) => {
        async move {
            for _ in 0..BATCH {
                let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one($executor).await.unwrap();
                assert_eq!(one, 1);
            }
        }
    };
}

/// Medians of interleaved rounds, per query.
async fn compare(name: &str, variants: [Run<'_>; 3]) {
    let mut times: [Vec<Duration>; 3] = Default::default();
    for round in 0..=ROUNDS {
        for i in 0..3 {
            let variant = (round + i) % 3;
            let start = Instant::now();
            variants[variant]().await;
            // The first round warms caches and connections up.
            if round > 0 {
                times[variant].push(start.elapsed() / BATCH);
            }
        }
    }
    let medians = times.map(support::median);
    for (label, median) in
        ["raw sqlx pool", "zen pool, outside a scope", "zen pool, inside a scope"].iter().zip(medians)
    {
        let throughput = medians[0].as_secs_f64() / median.as_secs_f64();
        println!("| {name} | {label} | {:.2} µs | {throughput:.3} |", median.as_secs_f64() * 1e6);
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        println!("| database | variant | per query (median) | throughput vs raw |");
        println!("|---|---|---|---|");
        let options = || SqlitePoolOptions::new().max_connections(1).min_connections(1);
        let raw = options().connect("sqlite::memory:").await.unwrap();
        let zen = zen_runtime::db::SqlitePool::connect_with_pool_options(options(), "sqlite::memory:".parse().unwrap())
            .await
            .unwrap();
        let (raw, zen) = (&raw, &zen);
        compare(
            "SQLite in memory",
            [
                Box::new(move || Box::pin(select_1!(raw))),
                Box::new(move || Box::pin(select_1!(zen))),
                Box::new(move || Box::pin(async move { drop(testing::measure(select_1!(zen)).await) })),
            ],
        )
        .await;

        let url =
            std::env::var("ZEN_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let options = || PgPoolOptions::new().max_connections(1).min_connections(1);
        match options().connect(&url).await {
            Ok(raw) => {
                let zen =
                    zen_runtime::db::PgPool::connect_with_pool_options(options(), url.parse().unwrap()).await.unwrap();
                let (raw, zen) = (&raw, &zen);
                compare(
                    "PostgreSQL (loopback)",
                    [
                        Box::new(move || Box::pin(select_1!(raw))),
                        Box::new(move || Box::pin(select_1!(zen))),
                        Box::new(move || Box::pin(async move { drop(testing::measure(select_1!(zen)).await) })),
                    ],
                )
                .await;
            }
            Err(e) => println!("PostgreSQL at {url} does not answer ({e}): not measured"),
        }
    });
}
