//! Trust in writes, on the PostgreSQL running on this machine: a write the
//! client was told succeeded is never lost, whatever a deadline cuts, and a
//! refused request says whether anything it did was committed.
//!
//! A latency relay (a TCP proxy that holds every chunk for a fixed time in
//! each direction) makes "the deadline lands while `BEGIN` or `COMMIT` is
//! on the wire" happen on every run, not by luck.

#[path = "common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::post;
use futures::StreamExt;
use http_body_util::BodyExt;
use sqlx::postgres::PgConnectOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;
use zen_runtime::db::{PgPool, PgPoolOptions};
use zen_runtime::layer::ZenLayer;
use zen_runtime::{Mode, zen};

use common::AppError;

/// A TCP relay to the PostgreSQL at `server` that delivers every chunk
/// `latency` after it was read, in each direction: a link with that one-way
/// latency.
async fn relay(server: String, latency: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(&server).await else { continue };
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::spawn(delayed(client_read, server_write, latency));
            tokio::spawn(delayed(server_read, client_write, latency));
        }
    });
    address
}

/// Copies `from` to `to`, each chunk sent `latency` after it arrived.
async fn delayed(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf, latency: Duration) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((at, chunk)) = rx.recv().await {
            tokio::time::sleep_until((at + latency).into()).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    });
    let mut buf = vec![0; 64 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if tx.send((Instant::now(), buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}

/// A pool of one connection through a relay of `latency`, and a direct
/// pool to check what the server holds. Never tests a connection before
/// handing it out, so that a request's first round trip is its own.
async fn pools(table: &str, latency: Duration) -> Option<(PgPool, sqlx::PgPool)> {
    let url = common::postgres_url().await?;
    let direct = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::raw_sql(&*format!("DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id BIGINT PRIMARY KEY)").leak())
        .execute(&direct)
        .await
        .unwrap();
    let options: PgConnectOptions = url.parse().unwrap();
    let server = format!("{}:{}", options.get_host(), options.get_port());
    let relayed = options.host("127.0.0.1").port(relay(server, latency).await.port());
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .test_before_acquire(false)
        .connect_with(relayed.application_name("zen_writes"))
        .await
        .unwrap();
    Some((pool, direct))
}

async fn visible(direct: &sqlx::PgPool, table: &str) -> Vec<i64> {
    let mut ids: Vec<i64> =
        sqlx::query_scalar(&*format!("SELECT id FROM {table}").leak()).fetch_all(direct).await.unwrap();
    ids.sort_unstable();
    ids
}

/// A transfer whose deadline (40 ms) lands while `BEGIN` is on the wire
/// (a round trip of 60 ms).
#[zen(timeout_ms = 40, mode = "enforce", static_check = false)]
async fn transfer(pool: &PgPool, id: i64) -> Result<(), AppError> {
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO zen_writes_begin (id) VALUES ($1)").bind(id).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

/// The same without a budget of its own: cut from outside, by a timeout
/// that drops it.
#[zen(static_check = false)]
async fn transfer_unbounded(pool: &PgPool, id: i64) -> Result<(), AppError> {
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO zen_writes_begin (id) VALUES ($1)").bind(id).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

/// An autocommit write: once it returns `Ok`, the row is the server's.
#[zen]
async fn record(pool: &PgPool, id: i64) -> Result<(), AppError> {
    sqlx::query("INSERT INTO zen_writes_begin (id) VALUES ($1)").bind(id).execute(pool).await?;
    Ok(())
}

#[tokio::test]
async fn a_deadline_during_begin_never_loses_a_later_acknowledged_write() {
    let Some((pool, direct)) = pools("zen_writes_begin", Duration::from_millis(30)).await else { return };
    let mut acknowledged = Vec::new();
    for round in 0..5_i64 {
        // Each transfer starts on a connection already open (the write
        // before it left it in the pool), so that what the deadline lands on
        // is its `BEGIN`, never the connecting: cut by its own deadline, then
        // dropped from outside.
        for (i, id) in [round * 2, round * 2 + 1].into_iter().enumerate() {
            if record(&pool, id).await.is_ok() {
                acknowledged.push(id);
            }
            // sqlx returns it to the pool in a task of its own, after a ping.
            let back = Instant::now();
            while pool.num_idle() == 0 {
                assert!(back.elapsed() < Duration::from_secs(5), "the write's connection went back to the pool");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if i == 0 {
                assert!(transfer(&pool, 1_000 + round).await.is_err(), "the deadline cuts the transfer");
            } else {
                let dropped = tokio::time::timeout(Duration::from_millis(40), transfer_unbounded(&pool, 2_000 + round));
                assert!(dropped.await.is_err(), "the timeout drops the transfer");
            }
        }
    }
    assert_eq!(acknowledged.len(), 10, "every autocommit write succeeds");
    // Each cut left its connection unsettled: closed, never handed on.
    assert!(record(&pool, 100).await.is_ok());
    acknowledged.push(100);
    // What the server holds, from another connection, now and once the
    // relayed pool is gone (which rolls back anything it left open).
    assert_eq!(visible(&direct, "zen_writes_begin").await, acknowledged, "acknowledged writes are visible");
    pool.close().await;
    assert_eq!(visible(&direct, "zen_writes_begin").await, acknowledged, "and stay");
}

impl axum::response::IntoResponse for AppError {
    fn into_response(self) -> axum::response::Response {
        (axum::http::StatusCode::INTERNAL_SERVER_ERROR, format!("{self:?}")).into_response()
    }
}

const SLEEP: Duration = Duration::from_secs(3);

/// Rows of `zen_writes_doc` at or above 100 make their `COMMIT` take a
/// second: a deferred trigger sleeps when the transaction commits.
const SLOW_COMMIT: &str = "
    DROP TABLE IF EXISTS zen_writes_doc;
    CREATE TABLE zen_writes_doc (id BIGINT PRIMARY KEY);
    CREATE OR REPLACE FUNCTION zen_writes_slow_commit() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN PERFORM pg_sleep(1); RETURN NULL; END $$;
    CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON zen_writes_doc
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.id >= 100)
        EXECUTE FUNCTION zen_writes_slow_commit();";

/// Inserted in a transaction, cut before its `COMMIT`: nothing committed.
#[zen(timeout_ms = 300, static_check = false)]
async fn uncommitted(State(pool): State<PgPool>) -> Result<&'static str, AppError> {
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO zen_writes_doc (id) VALUES (1)").execute(&mut *tx).await?;
    tokio::time::sleep(SLEEP).await;
    tx.commit().await?;
    Ok("done")
}

/// Reads, then runs out of time: nothing committed.
#[zen(timeout_ms = 300)]
async fn reads_only(State(pool): State<PgPool>) -> Result<&'static str, AppError> {
    let _: i64 = sqlx::query_scalar("SELECT count(*) FROM zen_writes_doc").fetch_one(&pool).await?;
    tokio::time::sleep(SLEEP).await;
    Ok("done")
}

/// A transaction committed, then cut: committed.
#[zen(timeout_ms = 300, static_check = false)]
async fn committed(State(pool): State<PgPool>) -> Result<&'static str, AppError> {
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO zen_writes_doc (id) VALUES (2)").execute(&mut *tx).await?;
    tx.commit().await?;
    tokio::time::sleep(SLEEP).await;
    Ok("done")
}

/// An autocommit write, then cut: committed.
#[zen(timeout_ms = 300)]
async fn autocommitted(State(pool): State<PgPool>) -> Result<&'static str, AppError> {
    sqlx::query("INSERT INTO zen_writes_doc (id) VALUES (3)").execute(&pool).await?;
    tokio::time::sleep(SLEEP).await;
    Ok("done")
}

/// Cut while its `COMMIT` (a second long) is on the wire: unknown.
#[zen(timeout_ms = 300, static_check = false)]
async fn in_doubt(State(pool): State<PgPool>) -> Result<&'static str, AppError> {
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO zen_writes_doc (id) VALUES (100)").execute(&mut *tx).await?;
    tx.commit().await?;
    Ok("done")
}

/// A `COMMIT` that takes effect, then one cut on the wire: committed,
/// since one write is known to have taken effect.
#[zen(timeout_ms = 300, static_check = false)]
async fn committed_then_in_doubt(State(pool): State<PgPool>) -> Result<&'static str, AppError> {
    sqlx::query("INSERT INTO zen_writes_doc (id) VALUES (4)").execute(&pool).await?;
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO zen_writes_doc (id) VALUES (101)").execute(&mut *tx).await?;
    tx.commit().await?;
    Ok("done")
}

/// A handler that panics after its write took effect.
#[zen(static_check = false)]
async fn panics_after_writing(State(pool): State<PgPool>) -> &'static str {
    sqlx::query("INSERT INTO zen_writes_doc (id) VALUES (5)").execute(&pool).await.unwrap();
    panic!("after the write");
}

async fn problem(app: &Router, path: &str) -> (u16, serde_json::Value) {
    let request = axum::http::Request::post(path).body(axum::body::Body::empty()).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or_else(|_| serde_json::Value::String(format!("{body:?}"))))
}

#[tokio::test]
async fn a_refused_request_says_whether_its_writes_were_committed() {
    let Some(url) = common::postgres_url().await else { return };
    let pool = PgPool::connect(&url).await.unwrap();
    sqlx::raw_sql(SLOW_COMMIT).execute(pool.as_sqlx()).await.unwrap();
    let app = Router::new()
        .route("/uncommitted", post(uncommitted))
        .route("/reads", post(reads_only))
        .route("/committed", post(committed))
        .route("/autocommitted", post(autocommitted))
        .route("/in-doubt", post(in_doubt))
        .route("/committed-then-in-doubt", post(committed_then_in_doubt))
        .route("/panics", post(panics_after_writing))
        .layer(ZenLayer::new().mode(Mode::Enforce))
        .with_state(pool.clone());
    for (path, status, writes) in [
        ("/uncommitted", 503, "none"),
        ("/reads", 503, "none"),
        ("/committed", 503, "committed"),
        ("/autocommitted", 503, "committed"),
        ("/in-doubt", 503, "unknown"),
        ("/committed-then-in-doubt", 503, "committed"),
        ("/panics", 500, "committed"),
    ] {
        let (got, problem) = problem(&app, path).await;
        assert_eq!((got, problem["writes"].as_str()), (status, Some(writes)), "{path}: {problem}");
    }
    // What each said, against what the server holds once every cut
    // connection is gone: 1 was never committed; 2, 3, 4 and 5 were.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM zen_writes_doc WHERE id < 100 ORDER BY id")
        .fetch_all(pool.as_sqlx())
        .await
        .unwrap();
    assert_eq!(ids, [2, 3, 4, 5]);
}

/// Writes row `id`, in a transaction (even ids) or alone (odd ones).
async fn write_row(pool: &PgPool, id: i64) -> Result<&'static str, AppError> {
    if id % 2 == 0 {
        let mut tx = pool.begin().await?;
        sqlx::query("INSERT INTO zen_writes_storm (id) VALUES ($1)").bind(id).execute(&mut *tx).await?;
        sqlx::query("SELECT pg_sleep(0.001)").execute(&mut *tx).await?;
        tx.commit().await?;
    } else {
        sqlx::query("INSERT INTO zen_writes_storm (id) VALUES ($1)").bind(id).execute(pool).await?;
    }
    Ok("done")
}

// Deadlines that land anywhere in a write: before `BEGIN`, on it, between
// statements, on the `COMMIT`.
#[zen(timeout_ms = 6)]
async fn within_6(State(pool): State<PgPool>, Path(id): Path<i64>) -> Result<&'static str, AppError> {
    write_row(&pool, id).await
}
#[zen(timeout_ms = 12)]
async fn within_12(State(pool): State<PgPool>, Path(id): Path<i64>) -> Result<&'static str, AppError> {
    write_row(&pool, id).await
}
#[zen(timeout_ms = 20)]
async fn within_20(State(pool): State<PgPool>, Path(id): Path<i64>) -> Result<&'static str, AppError> {
    write_row(&pool, id).await
}
#[zen(timeout_ms = 30)]
async fn within_30(State(pool): State<PgPool>, Path(id): Path<i64>) -> Result<&'static str, AppError> {
    write_row(&pool, id).await
}
#[zen(timeout_ms = 60)]
async fn within_60(State(pool): State<PgPool>, Path(id): Path<i64>) -> Result<&'static str, AppError> {
    write_row(&pool, id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_every_answer_tells_the_truth_about_its_writes() {
    let Some((pool, direct)) = pools("zen_writes_storm", Duration::from_millis(1)).await else { return };
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .test_before_acquire(false)
        .connect_with(pool.as_sqlx().connect_options().as_ref().clone())
        .await
        .unwrap();
    let app = Router::new()
        .route("/6/{id}", post(within_6))
        .route("/12/{id}", post(within_12))
        .route("/20/{id}", post(within_20))
        .route("/30/{id}", post(within_30))
        .route("/60/{id}", post(within_60))
        .layer(ZenLayer::new().mode(Mode::Enforce))
        .with_state(pool.clone());
    let answers: Vec<(i64, u16, Option<String>)> = futures::stream::iter(0..400_i64)
        .map(|id| {
            let app = app.clone();
            async move {
                let path = format!("/{}/{id}", [6, 12, 20, 30, 60][usize::try_from(id).unwrap() % 5]);
                let (status, problem) = problem(&app, &path).await;
                (id, status, problem["writes"].as_str().map(str::to_owned))
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    pool.close().await;
    let rows = visible(&direct, "zen_writes_storm").await;
    let mut told = std::collections::BTreeMap::<String, usize>::new();
    for (id, status, writes) in answers {
        let kept = rows.binary_search(&id).is_ok();
        let said = match (status, writes.as_deref()) {
            (200, None) => "ok",
            (503, Some(writes)) => writes,
            other => panic!("request {id}: unexpected answer {other:?}"),
        };
        match said {
            "ok" | "committed" => assert!(kept, "request {id} said {said}, and its row is gone"),
            "none" => assert!(!kept, "request {id} said nothing was committed, and its row is there"),
            _ => {}
        }
        *told.entry(said.to_owned()).or_default() += 1;
    }
    eprintln!("answers: {told:?}");
    assert!(told.get("ok").is_some_and(|n| *n > 0) && told.get("none").is_some_and(|n| *n > 0), "{told:?}");
}
