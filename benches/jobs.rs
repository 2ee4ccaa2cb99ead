//! What running a job through zen's in-process runner costs, against a
//! plain `tokio::spawn` of the same work.
//!
//! `cargo bench --bench jobs`
//!
//! Each batch queues 1,000 jobs that each bump a counter, then waits for the
//! last; interleaved rounds, rotating the order, medians per job. The
//! runner's cost is the bounded queue, the dispatcher, a scope per job (and
//! its report when someone listens: nobody does here, as in production
//! without a DEBUG subscriber).
#![allow(clippy::print_stdout)]

#[path = "support/mod.rs"]
mod support;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use zen_runtime::jobs::Jobs;
use zen_runtime::zen;

const BATCH: usize = 1_000;
const ROUNDS: usize = 41;

struct Done {
    count: AtomicUsize,
    all: Notify,
}

impl Done {
    fn bump(&self) {
        if self.count.fetch_add(1, Ordering::Relaxed) + 1 == BATCH {
            self.all.notify_one();
        }
    }
}

async fn plain_job(done: Arc<Done>) {
    done.bump();
}

#[zen(max_queries = 5, timeout_ms = 1_000)]
async fn zen_job(done: Arc<Done>) {
    done.bump();
}

type Variant = Box<dyn Fn(Arc<Done>) -> Pin<Box<dyn Future<Output = ()>>>>;

/// A batch through the runner, each job made by `job`.
fn through<Fut>(jobs: &Jobs, job: fn(Arc<Done>) -> Fut) -> Variant
where
    Fut: Future<Output = ()> + Send + 'static,
{
    let jobs = jobs.clone();
    Box::new(move |done| {
        let jobs = jobs.clone();
        Box::pin(async move {
            for _ in 0..BATCH {
                let done = Arc::clone(&done);
                jobs.spawn("bench", move || job(done)).unwrap();
            }
            done.all.notified().await;
        })
    })
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let jobs = Jobs::builder().capacity(BATCH).concurrency(64).start().unwrap();
        let variants: Vec<(&str, Variant)> = vec![
            (
                "`tokio::spawn` of the job",
                Box::new(|done| {
                    Box::pin(async move {
                        for _ in 0..BATCH {
                            tokio::spawn(plain_job(Arc::clone(&done)));
                        }
                        done.all.notified().await;
                    })
                }),
            ),
            ("`Jobs::spawn`, unannotated job", through(&jobs, plain_job)),
            ("`Jobs::spawn`, `#[zen]` job", through(&jobs, zen_job)),
        ];
        let mut times: Vec<Vec<Duration>> = vec![Vec::new(); variants.len()];
        for round in 0..=ROUNDS {
            for i in 0..variants.len() {
                let v = (round + i) % variants.len();
                let done = Arc::new(Done { count: AtomicUsize::new(0), all: Notify::new() });
                let start = Instant::now();
                variants[v].1(done).await;
                if round > 0 {
                    times[v].push(start.elapsed() / u32::try_from(BATCH).unwrap());
                }
            }
        }
        println!("| variant | per job (median) | added |");
        println!("|---|---|---|");
        let medians: Vec<Duration> = times.into_iter().map(support::median).collect();
        for ((label, _), median) in variants.iter().zip(&medians) {
            let ns = median.as_secs_f64() * 1e9;
            println!("| {label} | {ns:.0} ns | {:+.0} ns |", ns - medians[0].as_secs_f64() * 1e9);
        }
        let _ = jobs.shutdown(Duration::from_secs(5)).await;
    });
}
