//! In-process background jobs: each in a scope of its own, a bounded queue,
//! a concurrency limit, a graceful shutdown that says what it abandoned.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use zen_runtime::db::SqlitePool;
use zen_runtime::jobs::{JobError, Jobs};
use zen_runtime::layer::ZenLayer;
use zen_runtime::{Budget, Kind, Limits, Mode, Outcome, zen};

use common::{report_named, reports_named};

#[zen(max_queries = 5, timeout_ms = 5_000)]
async fn welcome(pool: SqlitePool, user: i64) -> Result<(), sqlx::Error> {
    for _ in 0..3 {
        sqlx::query("SELECT name FROM users WHERE id = ?").bind(user).fetch_one(&pool).await?;
    }
    Ok(())
}

#[derive(Clone)]
struct App {
    pool: SqlitePool,
    jobs: Jobs,
}

async fn signup(State(app): State<App>) -> Result<&'static str, String> {
    sqlx::query("SELECT count(*) FROM users").fetch_one(&app.pool).await.map_err(|e| e.to_string())?;
    let pool = app.pool.clone();
    app.jobs.spawn("jobs-test welcome", move || welcome(pool, 3)).map_err(|e| e.to_string())?;
    Ok("welcome mail on its way")
}

#[tokio::test]
async fn a_job_started_by_a_request_runs_in_its_own_scope() {
    common::collect_reports();
    let pool = common::sqlite_pool_at(&common::sqlite_url(), 2).await;
    let jobs = Jobs::builder().limits(Limits::NONE.max_queries(50)).start().unwrap();
    let app = Router::new()
        .route("/jobs-test/signup", post(signup))
        .layer(ZenLayer::new())
        .with_state(App { pool, jobs: jobs.clone() });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jobs-test/signup", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let response = reqwest::Client::new().post(url).send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), "welcome mail on its way");
    let request = report_named("POST /jobs-test/signup").await;
    assert_eq!(request.figures.queries(), 1, "the job's queries are not the request's");
    let job = report_named("jobs-test welcome").await;
    assert_eq!((job.kind, job.attempt, job.figures.queries(), job.outcome), (Kind::Job, Some(1), 3, Outcome::Ok));
    assert!(job.handler.is_some_and(|h| h.ends_with("welcome")), "{:?}", job.handler);
    assert_eq!(job.limits.get(Budget::Queries), Some(5), "the job fn's #[zen] tightened the runner's default");
    assert!(jobs.shutdown(Duration::from_secs(1)).await.abandoned.is_empty());
}

/// A job that holds its slot until told to go.
fn gate() -> (Arc<tokio::sync::Notify>, impl Fn() -> Arc<tokio::sync::Notify>) {
    let gate = Arc::new(tokio::sync::Notify::new());
    let handle = Arc::clone(&gate);
    (gate, move || Arc::clone(&handle))
}

#[tokio::test]
async fn a_full_queue_is_an_error_the_caller_sees_and_nothing_queued_is_lost() {
    let jobs = Jobs::builder().capacity(2).concurrency(1).start().unwrap();
    let (open, waiter) = gate();
    let done = Arc::new(AtomicUsize::new(0));
    let blocker = waiter();
    let started = Arc::new(tokio::sync::Notify::new());
    let starting = Arc::clone(&started);
    jobs.spawn("blocker", move || async move {
        starting.notify_one();
        blocker.notified().await;
    })
    .unwrap();
    started.notified().await; // the blocker holds the only slot: the queue is empty
    for _ in 0..2 {
        let done = Arc::clone(&done);
        jobs.spawn("queued", move || async move {
            done.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    let refused = jobs.spawn("one too many", || async {});
    assert_eq!(refused, Err(JobError::QueueFull { capacity: 2 }));
    assert!(refused.unwrap_err().to_string().contains("queue is full"));
    open.notify_one();
    let shutdown = jobs.shutdown(Duration::from_secs(5)).await;
    assert_eq!(done.load(Ordering::SeqCst), 2, "both queued jobs ran");
    assert!(shutdown.abandoned.is_empty(), "{shutdown:?}");
}

#[tokio::test]
async fn no_more_than_the_concurrency_limit_run_at_once() {
    let jobs = Jobs::builder().concurrency(3).start().unwrap();
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    for _ in 0..12 {
        let (running, most, finished) = (Arc::clone(&running), Arc::clone(&most), Arc::clone(&finished));
        jobs.spawn("limited", move || async move {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            running.fetch_sub(1, Ordering::SeqCst);
            finished.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    let start = Instant::now();
    let shutdown = jobs.shutdown(Duration::from_secs(10)).await;
    assert!(start.elapsed() < Duration::from_secs(5), "it returned when the work was done, not at the end of grace");
    assert_eq!(finished.load(Ordering::SeqCst), 12);
    assert_eq!(shutdown.finished, 12, "all were still queued or running when the shutdown began");
    assert_eq!(most.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn shutdown_waits_for_running_jobs_within_the_grace_period_and_names_what_it_abandoned() {
    common::collect_reports();
    let jobs = Jobs::builder().concurrency(1).start().unwrap();
    let quick = Arc::new(AtomicUsize::new(0));
    let done = Arc::clone(&quick);
    jobs.spawn("shutdown quick", move || async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        done.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    jobs.spawn("shutdown slow", || tokio::time::sleep(Duration::from_secs(30))).unwrap();
    jobs.spawn("shutdown never started", || async {}).unwrap();
    let start = Instant::now();
    let shutdown = jobs.shutdown(Duration::from_millis(500)).await;
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(490) && took < Duration::from_secs(3), "{took:?}");
    assert_eq!(quick.load(Ordering::SeqCst), 1, "the running job finished within the grace period");
    assert_eq!(shutdown.finished, 1);
    assert_eq!(shutdown.abandoned, ["shutdown slow", "shutdown never started"]);
    assert_eq!(report_named("shutdown slow").await.outcome, Outcome::Cancelled);
    assert_eq!(jobs.spawn("late", || async {}), Err(JobError::ShuttingDown));
    assert_eq!(jobs.shutdown(Duration::from_secs(1)).await.abandoned.len(), 0, "a second shutdown is a no-op");
}

#[tokio::test]
async fn a_panicking_job_is_reported_and_the_runner_goes_on() {
    common::collect_reports();
    let jobs = Jobs::builder().concurrency(1).start().unwrap();
    jobs.spawn("panicking job", || async {
        if Instant::now().elapsed() < Duration::from_secs(3600) {
            panic!("boom");
        }
    })
    .unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let after = Arc::clone(&ran);
    jobs.spawn("job after the panic", move || async move {
        after.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    assert_eq!(report_named("panicking job").await.outcome, Outcome::Panicked);
    assert_eq!(report_named("job after the panic").await.outcome, Outcome::Ok);
    assert_eq!(ran.load(Ordering::SeqCst), 1);
}

#[zen(timeout_ms = 150)]
async fn overlong() {
    tokio::time::sleep(Duration::from_secs(30)).await;
}

#[tokio::test]
async fn enforce_cuts_a_job_at_its_deadline_and_the_next_one_runs() {
    common::collect_reports();
    let jobs = Jobs::builder().concurrency(1).mode(Mode::Enforce).start().unwrap();
    let start = Instant::now();
    jobs.spawn("enforced overlong", overlong).unwrap();
    jobs.spawn("enforced next", || async {}).unwrap();
    let cut = report_named("enforced overlong").await;
    assert_eq!(cut.outcome, Outcome::Exceeded);
    assert_eq!(cut.violation(Budget::Timeout).map(|v| v.limit), Some(150));
    assert_eq!(report_named("enforced next").await.outcome, Outcome::Ok);
    assert!(start.elapsed() < Duration::from_secs(3), "{:?}", start.elapsed());
    assert_eq!(reports_named("enforced overlong").len(), 1, "one report per run");
}

#[tokio::test]
async fn with_every_handle_dropped_the_queued_jobs_still_run() {
    let jobs = Jobs::builder().concurrency(1).start().unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..3 {
        let ran = Arc::clone(&ran);
        jobs.spawn("orphaned", move || async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            ran.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    drop(jobs);
    let deadline = Instant::now() + Duration::from_secs(5);
    while ran.load(Ordering::SeqCst) < 3 {
        assert!(Instant::now() < deadline, "{} of 3 ran", ran.load(Ordering::SeqCst));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// CPU time the calling thread has used, in 10 ms ticks: on a
/// current-thread runtime, the runner's and the test's, not other tests'.
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[tokio::test]
async fn a_shutdown_waiting_for_a_job_sleeps_rather_than_spins() {
    let jobs = Jobs::builder().concurrency(8).start().unwrap();
    jobs.spawn("sleeper", || tokio::time::sleep(Duration::from_millis(600))).unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (ticks, start) = (cpu_ticks(), Instant::now());
    let shutdown = jobs.shutdown(Duration::from_secs(5)).await;
    let (cpu, wall) = (cpu_ticks() - ticks, start.elapsed());
    assert_eq!(shutdown.finished, 1);
    assert!(wall >= Duration::from_millis(500), "{wall:?}");
    // A busy loop would use the whole wait: 50 ticks and more.
    assert!(cpu < 25, "the shutdown used {cpu}0 ms of CPU in {wall:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_blocks_its_thread_does_not_hold_the_shutdown() {
    let jobs = Jobs::builder().concurrency(2).start().unwrap();
    jobs.spawn("blocks its thread", || async { std::thread::sleep(Duration::from_millis(1_600)) }).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let start = Instant::now();
    let shutdown = jobs.shutdown(Duration::from_millis(200)).await;
    assert!(start.elapsed() < Duration::from_millis(1_500), "{:?}", start.elapsed());
    assert_eq!(shutdown.abandoned, ["blocks its thread"]);
}
