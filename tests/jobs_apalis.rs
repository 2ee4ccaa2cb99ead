//! Durable jobs on apalis 1.0 with zen's layer: SQLite storage (a file, as
//! in production) and PostgreSQL storage; the job's own queries go to the
//! application's database through zen's pool.

mod common;

use std::time::{Duration, Instant};

use apalis::prelude::*;
use serde::{Deserialize, Serialize};
use zen_runtime::db::SqlitePool;
use zen_runtime::jobs::apalis::ZenJobLayer;
use zen_runtime::{Budget, Kind, Limits, Mode, Outcome, zen};

use common::{nth_report_named, reports_named};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Welcome {
    user: i64,
    /// Sleep past the deadline on the first attempt.
    slow_first: bool,
    panics: bool,
}

#[zen(max_queries = 5, timeout_ms = 300)]
async fn send_welcome(job: Welcome, attempt: Attempt, db: Data<SqlitePool>) -> Result<(), BoxDynError> {
    for _ in 0..2 {
        sqlx::query("SELECT name FROM users WHERE id = ?").bind(job.user).fetch_one(&*db).await?;
    }
    assert!(!job.panics, "the welcome template is missing");
    if job.slow_first && attempt.current() == 1 {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    Ok(())
}

/// A queue database in a file, set up by apalis, and the application's.
async fn databases() -> (sqlx::SqlitePool, SqlitePool, std::path::PathBuf) {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("zen-jobs-{}-{n}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&path).create_if_missing(true);
    let queue = sqlx::SqlitePool::connect_with(options).await.unwrap();
    apalis_sqlite::SqliteStorage::setup(&queue).await.unwrap();
    let app = common::sqlite_pool_at(&common::sqlite_url(), 2).await;
    (queue, app, path)
}

fn sqlite_storage(queue: &sqlx::SqlitePool, name: &str) -> apalis_sqlite::SqliteStorage<Welcome> {
    apalis_sqlite::SqliteStorage::new(queue).with_config(apalis_sqlite::Config::default().queue(name))
}

/// The state and attempts of every job of a queue, in push order.
async fn sqlite_jobs(queue: &sqlx::SqlitePool, name: &str) -> Vec<(String, i64)> {
    sqlx::query_as("SELECT status, attempts FROM Jobs WHERE job_type = ? ORDER BY rowid")
        .bind(name)
        .fetch_all(queue)
        .await
        .unwrap()
}

async fn wait_until<F: Future<Output = bool>>(what: &str, mut done: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn welcome(user: i64) -> Welcome {
    Welcome { user, slow_first: false, panics: false }
}

/// Runs a worker of the queue `name` with zen's layer until the test ends.
fn run_sqlite_worker(queue: &sqlx::SqlitePool, app: &SqlitePool, name: &str) -> tokio::task::JoinHandle<()> {
    let worker = WorkerBuilder::new(format!("{name}-worker"))
        .backend(sqlite_storage(queue, name).poll_with_interval(Duration::from_millis(20)))
        .data(app.clone())
        .layer(ZenJobLayer::new().mode(Mode::Enforce).limits(Limits::NONE.max_queries(50)))
        .build(send_welcome);
    tokio::spawn(async move {
        let _ = worker.run().await;
    })
}

#[tokio::test]
async fn a_job_reports_like_a_request_with_its_name_and_attempt() {
    common::collect_reports();
    let (queue, app, path) = databases().await;
    let name = "apalis-welcome";
    sqlite_storage(&queue, name).push(welcome(4)).await.unwrap();
    let worker = run_sqlite_worker(&queue, &app, name);

    let report = nth_report_named(name, 1).await;
    assert_eq!((report.kind, report.attempt, report.outcome), (Kind::Job, Some(1), Outcome::Ok));
    assert_eq!(report.figures.queries(), 2, "the job's own queries, not the queue's");
    assert!(report.handler.is_some_and(|h| h.ends_with("send_welcome")), "{:?}", report.handler);
    assert_eq!(report.limits.get(Budget::Queries), Some(5), "the job fn's #[zen] tightened the layer's 50");
    assert_eq!(report.limits.get(Budget::Timeout), Some(300));
    wait_until("the job to be done", || async { sqlite_jobs(&queue, name).await == [("Done".to_owned(), 1)] }).await;
    worker.abort();
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn a_job_cut_by_its_budget_fails_its_attempt_and_the_retry_succeeds() {
    common::collect_reports();
    let (queue, app, path) = databases().await;
    let name = "apalis-cut";
    sqlite_storage(&queue, name).push(Welcome { slow_first: true, ..welcome(5) }).await.unwrap();
    let start = Instant::now();
    let worker = run_sqlite_worker(&queue, &app, name);

    let first = nth_report_named(name, 1).await;
    assert_eq!((first.attempt, first.outcome), (Some(1), Outcome::Exceeded));
    assert_eq!(first.violation(Budget::Timeout).map(|v| v.limit), Some(300));
    let second = nth_report_named(name, 2).await;
    assert_eq!((second.attempt, second.outcome), (Some(2), Outcome::Ok));
    assert!(start.elapsed() < Duration::from_secs(10), "cut at 300 ms, not after 30 s: {:?}", start.elapsed());
    wait_until("the retry to be done", || async { sqlite_jobs(&queue, name).await == [("Done".to_owned(), 2)] }).await;
    worker.abort();
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn a_panic_fails_the_attempt_not_the_worker() {
    common::collect_reports();
    let (queue, app, path) = databases().await;
    let name = "apalis-panic";
    let mut storage = sqlite_storage(&queue, name);
    storage.push_task(TaskBuilder::new(Welcome { panics: true, ..welcome(6) }).max_attempts(2).build()).await.unwrap();
    let worker = run_sqlite_worker(&queue, &app, name);

    for attempt in 1..=2 {
        let report = nth_report_named(name, attempt).await;
        assert_eq!((report.attempt, report.outcome), (Some(u32::try_from(attempt).unwrap()), Outcome::Panicked));
    }
    wait_until("the job to fail for good", || async { sqlite_jobs(&queue, name).await == [("Failed".to_owned(), 2)] })
        .await;
    // The same worker takes the next job.
    storage.push(welcome(7)).await.unwrap();
    wait_until("the next job", || async { sqlite_jobs(&queue, name).await.get(1).is_some_and(|j| j.0 == "Done") })
        .await;
    assert_eq!(reports_named(name).len(), 3, "two failed attempts and the next job, one report each");
    worker.abort();
    let _ = std::fs::remove_file(path);
}

#[zen(max_queries = 5, timeout_ms = 300)]
async fn send_welcome_pg(job: Welcome, attempt: Attempt) -> Result<(), BoxDynError> {
    if job.slow_first && attempt.current() == 1 {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    Ok(())
}

#[tokio::test]
async fn on_postgres_a_cut_attempt_is_retried_by_another_fetch() {
    let Some(url) = common::postgres_url().await else { return };
    common::collect_reports();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    apalis_postgres::PostgresStorage::<()>::setup(&pool).await.unwrap();
    // The queue of this test alone, emptied of what an earlier run left; its
    // name is the job's scope name, so it stays the same from run to run
    // (the budget lock knows it).
    let name = "zen-test-pg-retry".to_owned();
    sqlx::query("DELETE FROM apalis.jobs WHERE job_type = $1").bind(&name).execute(&pool).await.unwrap();
    let storage = || {
        apalis_postgres::PostgresStorage::<Welcome>::new(&pool)
            .with_config(apalis_postgres::Config::default().queue(&name))
    };
    storage().push(Welcome { slow_first: true, ..welcome(1) }).await.unwrap();
    let worker = WorkerBuilder::new(format!("{name}-worker-{}", std::process::id()))
        .backend(storage().poll_with_interval(Duration::from_millis(50)))
        .layer(ZenJobLayer::new().mode(Mode::Enforce))
        .build(send_welcome_pg);
    let worker = tokio::spawn(async move {
        let _ = worker.run().await;
    });

    let first = nth_report_named(&name, 1).await;
    assert_eq!((first.kind, first.attempt, first.outcome), (Kind::Job, Some(1), Outcome::Exceeded));
    let second = nth_report_named(&name, 2).await;
    assert_eq!((second.attempt, second.outcome), (Some(2), Outcome::Ok));
    wait_until("the job to be done in PostgreSQL", || async {
        let row: Option<(String, i32)> = sqlx::query_as("SELECT status, attempts FROM apalis.jobs WHERE job_type = $1")
            .bind(&name)
            .fetch_optional(&pool)
            .await
            .unwrap();
        row == Some(("Done".to_owned(), 2))
    })
    .await;
    worker.abort();
}

#[zen(timeout_ms = 60_000)]
async fn hang_on_first_attempt(job: Welcome, attempt: Attempt) -> Result<(), BoxDynError> {
    if attempt.current() == 1 {
        tokio::time::sleep(Duration::from_secs(120)).await;
    }
    let _ = job;
    Ok(())
}

const KILLED_QUEUE: &str = "apalis-killed";

/// Short heartbeats, so that a dead worker's job is taken back within seconds.
fn killed_storage(queue: &sqlx::SqlitePool) -> apalis_sqlite::SqliteStorage<Welcome> {
    apalis_sqlite::SqliteStorage::new(queue).with_config(
        apalis_sqlite::Config::default()
            .queue(KILLED_QUEUE)
            .heartbeat_interval(Duration::from_secs(1))
            .missed_heartbeats(2),
    )
}

/// Not a test of its own: the worker process that
/// `a_job_whose_worker_process_is_killed_runs_again` starts and kills.
#[tokio::test]
#[ignore = "a child process of a_job_whose_worker_process_is_killed_runs_again"]
async fn worker_process_to_kill() {
    let Ok(path) = std::env::var("ZEN_TEST_KILLED_WORKER_QUEUE") else { return };
    let queue = sqlx::SqlitePool::connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(path)).await.unwrap();
    let worker = WorkerBuilder::new("worker-to-kill")
        .backend(killed_storage(&queue).poll_with_interval(Duration::from_millis(20)))
        .layer(ZenJobLayer::new())
        .build(hang_on_first_attempt);
    let _ = worker.run().await;
}

#[tokio::test]
async fn a_job_whose_worker_process_is_killed_runs_again() {
    common::collect_reports();
    let (queue, _, path) = databases().await;
    killed_storage(&queue).push(welcome(8)).await.unwrap();
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "worker_process_to_kill", "--quiet"])
        .env("ZEN_TEST_KILLED_WORKER_QUEUE", &path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    wait_until("the other process to take the job", || async {
        let taken: Option<(String,)> =
            sqlx::query_as("SELECT status FROM Jobs WHERE job_type = ? AND lock_by = 'worker-to-kill'")
                .bind(KILLED_QUEUE)
                .fetch_optional(&queue)
                .await
                .unwrap();
        taken.is_some_and(|(status,)| status == "Running")
    })
    .await;
    // SIGKILL: no shutdown, no acknowledgement.
    child.0.kill().unwrap();
    child.0.wait().unwrap();

    let worker = WorkerBuilder::new("worker-that-stays")
        .backend(killed_storage(&queue).poll_with_interval(Duration::from_millis(20)))
        .layer(ZenJobLayer::new())
        .build(hang_on_first_attempt);
    let worker = tokio::spawn(async move {
        let _ = worker.run().await;
    });
    // apalis gives the dead worker's job back after two missed heartbeats.
    let report = nth_report_named(KILLED_QUEUE, 1).await;
    assert_eq!((report.attempt, report.outcome), (Some(2), Outcome::Ok), "{report}");
    wait_until("the job to be done", || async { sqlite_jobs(&queue, KILLED_QUEUE).await == [("Done".to_owned(), 2)] })
        .await;
    worker.abort();
    let _ = std::fs::remove_file(path);
}

/// Kills the worker process when the test ends, passed or not.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[zen(max_queries = 1, mode = "enforce")]
async fn enqueue_twice(storage: &mut apalis_sqlite::SqliteStorage<Welcome>) -> Result<(), BoxDynError> {
    zen_runtime::jobs::apalis::push(storage, welcome(1)).await?;
    zen_runtime::jobs::apalis::push(storage, welcome(2)).await?;
    Ok(())
}

#[tokio::test]
async fn a_push_from_a_handler_is_one_of_its_operations_and_enforce_can_refuse_it() {
    let (queue, _, path) = databases().await;
    let name = "apalis-push";
    let mut storage = sqlite_storage(&queue, name);
    let (result, reports) = zen_runtime::testing::collect(enqueue_twice(&mut storage)).await;
    let report = &reports[0];
    let error = result.unwrap_err();
    assert!(error.downcast_ref::<zen_runtime::BudgetExceeded>().is_some(), "{error}");
    assert_eq!((report.figures.queries(), report.figures.refused_queries()), (2, 1), "asked for twice, refused once");
    assert_eq!(report.backends[0].backend, "apalis");
    assert_eq!(sqlite_jobs(&queue, name).await.len(), 1, "the refused push never reached the queue");
    let _ = std::fs::remove_file(path);
}
