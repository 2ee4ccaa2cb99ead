#![deny(warnings)]
use zen_runtime::zen;

struct Job;

impl Job {
    // Not a database query: a method that happens to share sqlx's name.
    async fn execute(&self) {}
}

#[zen(max_queries = 0, static_check = false)]
async fn run_jobs(job: &Job) {
    job.execute().await;
    job.execute().await;
}

// Queries in branches, loops and closures may not run: not counted.
#[zen(max_queries = 1)]
async fn branches(job: &Job, flag: bool) {
    job.execute().await;
    if flag {
        job.execute().await;
    }
    for _ in 0..3 {
        job.execute().await;
    }
    let later = async { job.execute().await };
    later.await;
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        run_jobs(&Job).await;
        branches(&Job, true).await;
    });
}
