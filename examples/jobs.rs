//! A request that answers at once and leaves the slow part to a durable
//! background job, both under budgets: an axum handler records a sign-up
//! and enqueues a welcome mail on apalis's SQLite storage; a worker sends it
//! through a (local, slow) mail service and marks the sign-up welcomed.
//! Every request's and every job's report is printed.
//!
//! ```text
//! cargo run --example jobs
//! ```
#![allow(clippy::print_stdout)]

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use apalis::prelude::*;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde::{Deserialize, Serialize};
use zen_runtime::db::SqlitePool;
use zen_runtime::jobs::apalis::ZenJobLayer;
use zen_runtime::layer::ZenLayer;
use zen_runtime::{Budget, Kind, Limits, Report, zen};

#[global_allocator]
static ALLOC: zen_runtime::alloc::ZenAlloc = zen_runtime::alloc::ZenAlloc::system();

/// The job: everything the worker needs, serialised into the queue.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Welcome {
    signup: i64,
    email: String,
}

#[derive(Clone)]
struct App {
    db: SqlitePool,
    queue: apalis_sqlite::SqliteStorage<Welcome>,
}

/// Answers at once: one insert, one enqueue. The mail is not sent here: the
/// rule is to call external systems from the background.
#[zen(max_queries = 2, timeout_ms = 200)]
async fn signup(State(mut app): State<App>, email: String) -> Result<(StatusCode, String), (StatusCode, String)> {
    let fail = |e: &dyn std::fmt::Display| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    let id: i64 = sqlx::query_scalar("INSERT INTO signups (email) VALUES (?) RETURNING id")
        .bind(&email)
        .fetch_one(&app.db)
        .await
        .map_err(|e| fail(&e))?;
    // Counted as the request's second query, and refused in `enforce` when the budget is blown.
    zen_runtime::jobs::apalis::push(&mut app.queue, Welcome { signup: id, email }).await.map_err(|e| fail(&e))?;
    Ok((StatusCode::ACCEPTED, format!("sign-up {id} recorded; welcome mail queued\n")))
}

/// What the worker's jobs share.
#[derive(Clone)]
struct Deps {
    db: SqlitePool,
    mail: zen_runtime::http::Client,
    mail_url: String,
}

/// The job: one call to the mail service, one update, within 2 s.
#[zen(max_queries = 2, max_http_calls = 1, timeout_ms = 2_000)]
async fn send_welcome(job: Welcome, deps: Data<Deps>) -> Result<(), BoxDynError> {
    let response = deps.mail.post(format!("{}/send", deps.mail_url)).body(job.email.clone()).send().await?;
    if !response.status().is_success() {
        return Err(format!("the mail service answered {}", response.status()).into());
    }
    sqlx::query("UPDATE signups SET welcomed_at = CURRENT_TIMESTAMP WHERE id = ?")
        .bind(job.signup)
        .execute(&deps.db)
        .await?;
    Ok(())
}

/// The external mail service: 300 ms per mail.
async fn start_mail_service() -> std::io::Result<String> {
    let service = Router::new().route(
        "/send",
        post(|_: String| async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            StatusCode::ACCEPTED
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, service).await });
    Ok(url)
}

fn row(r: &Report) -> String {
    let limit = |b: Budget| r.limits.get(b).map_or_else(|| "-".to_owned(), |l| l.to_string());
    format!(
        "{:<20} {:>8} {:>8} {:>9} {:>9} {:>11}  {}",
        r.name,
        r.kind.as_str(),
        r.attempt.map_or_else(|| "-".to_owned(), |a| a.to_string()),
        format!("{}/{}", r.figures.queries(), limit(Budget::Queries)),
        format!("{}/{}", r.figures.http_calls(), limit(Budget::HttpCalls)),
        format!("{:.0}/{}", r.figures.elapsed().as_secs_f64() * 1e3, limit(Budget::Timeout)),
        if r.violations.is_empty() {
            r.outcome.as_str().to_owned()
        } else {
            format!("{}: {:?}", r.outcome, r.violations)
        }
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Err(e) = zen_runtime::init() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
    let reports = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&reports);
    zen_runtime::sinks::add_sink(move |r| sink.lock().unwrap_or_else(PoisonError::into_inner).push(r.clone()));

    // The application's database, in memory; kept alive by one connection.
    let url = "sqlite:file:jobs-example?mode=memory&cache=shared";
    let _keeper = <sqlx::SqliteConnection as sqlx::Connection>::connect(url).await?;
    let db = SqlitePool::connect(url).await?;
    sqlx::query("CREATE TABLE signups (id INTEGER PRIMARY KEY, email TEXT NOT NULL, welcomed_at TEXT)")
        .execute(&db)
        .await?;
    // The queue, in a file: jobs outlive the process.
    let path = std::env::temp_dir().join(format!("zen-jobs-example-{}.db", std::process::id()));
    let queue_db = sqlx::SqlitePool::connect_with(
        sqlx::sqlite::SqliteConnectOptions::new().filename(&path).create_if_missing(true),
    )
    .await?;
    apalis_sqlite::SqliteStorage::setup(&queue_db).await?;
    let storage = || {
        apalis_sqlite::SqliteStorage::<Welcome>::new(&queue_db)
            .with_config(apalis_sqlite::Config::default().queue("welcome"))
    };

    let deps = Deps {
        db: db.clone(),
        mail: zen_runtime::http::Client::builder().timeout(Duration::from_secs(1)).build()?,
        mail_url: start_mail_service().await?,
    };
    let worker = WorkerBuilder::new("mailer")
        .backend(storage().poll_with_interval(Duration::from_millis(50)))
        .data(deps)
        .layer(ZenJobLayer::new().limits(Limits::NONE.timeout_ms(10_000)))
        .build(send_welcome);
    let worker = tokio::spawn(async move { worker.run().await });

    let app = Router::new()
        .route("/signup", post(signup))
        .layer(ZenLayer::new())
        .with_state(App { db: db.clone(), queue: storage() });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
    for email in ["ada@example.com", "grace@example.com"] {
        let start = Instant::now();
        let response = client.post(format!("{base}/signup")).body(email).send().await?;
        let status = response.status();
        print!(
            "POST /signup {email:<18} -> {status} in {:>4.1} ms: {}",
            start.elapsed().as_secs_f64() * 1e3,
            response.text().await?
        );
    }

    // Wait for the worker to send both mails, and for both jobs' reports
    // (a job's report comes once its fn has returned, after its last query).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let welcomed: i64 = sqlx::query_scalar("SELECT count(*) FROM signups WHERE welcomed_at IS NOT NULL")
            .fetch_one(db.as_sqlx())
            .await?;
        let jobs_reported =
            reports.lock().unwrap_or_else(PoisonError::into_inner).iter().filter(|r| r.kind == Kind::Job).count();
        if welcomed == 2 && jobs_reported == 2 {
            break;
        }
        if Instant::now() > deadline {
            return Err("the worker did not send the mails within 15 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.abort();
    println!("\nboth sign-ups welcomed by the worker\n");
    println!(
        "{:<20} {:>8} {:>8} {:>9} {:>9} {:>11}  outcome",
        "scope", "kind", "attempt", "queries", "http", "elapsed ms"
    );
    for report in reports.lock().unwrap_or_else(PoisonError::into_inner).iter() {
        println!("{}", row(report));
    }
    let _ = std::fs::remove_file(&path);
    Ok(())
}
