//! The Redis wrapper against the Redis on this machine: commands count into
//! the same budget as SQL, as their own backend.

#[path = "common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use redis::AsyncCommands;
use zen_runtime::db::SqlitePool;
use zen_runtime::redis::{self as zredis, Connection};
use zen_runtime::{Budget, BudgetExceeded, testing, zen};

type Redis = Connection<redis::aio::MultiplexedConnection>;

#[derive(Debug)]
enum AppError {
    Redis(redis::RedisError),
    Budget(#[allow(dead_code)] BudgetExceeded),
}

impl From<redis::RedisError> for AppError {
    fn from(e: redis::RedisError) -> Self {
        AppError::Redis(e)
    }
}

impl From<BudgetExceeded> for AppError {
    fn from(e: BudgetExceeded) -> Self {
        AppError::Budget(e)
    }
}

fn redis_error(e: AppError) -> redis::RedisError {
    match e {
        AppError::Redis(e) => e,
        AppError::Budget(b) => panic!("expected the client's refusal, got a cut of the whole fn: {b}"),
    }
}

async fn redis() -> Option<(Redis, redis::aio::MultiplexedConnection)> {
    let url = common::redis_url().await?;
    let client = redis::Client::open(url).unwrap();
    let raw = client.get_multiplexed_async_connection().await.unwrap();
    Some((Connection::new(raw.clone()), raw))
}

fn key(name: &str) -> String {
    format!("zen:test:{}:{name}", std::process::id())
}

#[zen(max_queries = 10)]
async fn cache_and_db(redis: &mut Redis, pool: &SqlitePool) -> Result<String, redis::RedisError> {
    let _: () = redis.set(key("a"), "1").await?;
    let _: () = redis.set(key("b"), "2").await?;
    let a: String = redis.get(key("a")).await?;
    let b: String = redis.get(key("b")).await?;
    let c: Option<String> = redis.get(key("missing")).await?;
    let (x, y): (String, String) = redis::pipe().get(key("a")).get(key("b")).query_async(redis).await?;
    let n: i64 = sqlx::query_scalar("SELECT 1").fetch_one(pool).await.unwrap();
    Ok(format!("{a}{b}{c:?}{x}{y}{n}"))
}

#[tokio::test]
async fn commands_count_into_the_same_budget_as_their_own_backend() {
    let Some((mut redis, _)) = redis().await else { return };
    let pool = SqlitePool::connect("sqlite::memory:").await.unwrap();
    let (result, report) = testing::measure(cache_and_db(&mut redis, &pool)).await;
    assert_eq!(result.unwrap(), "12None121");
    assert_eq!(report.figures.queries(), 7, "{report}");
    let backend = |name: &str| report.backends.iter().find(|b| b.backend == name).map(|b| b.queries);
    assert_eq!((backend("redis"), backend("SQLite")), (Some(6), Some(1)), "{:?}", report.backends);
    let get = report.statements.iter().find(|s| s.fingerprint == "GET").expect("GET grouped");
    assert_eq!(get.count, 3);
    assert!(report.statements.iter().any(|s| s.fingerprint == "PIPELINE GET GET"));
    assert!(report.statements.iter().all(|s| !s.fingerprint.contains("zen:test")), "keys never reach a report");
}

#[zen(max_queries = 2, mode = "enforce")]
async fn three_writes(redis: &mut Redis) -> Result<(), AppError> {
    for name in ["w1", "w2", "w3"] {
        let _: () = redis.set(key(name), "x").await?;
    }
    Ok(())
}

#[tokio::test]
async fn enforce_refuses_the_command_past_the_budget_before_it_reaches_redis() {
    let Some((mut redis, mut raw)) = redis().await else { return };
    let _: () = raw.del(&[key("w1"), key("w2"), key("w3")]).await.unwrap();
    let error = redis_error(three_writes(&mut redis).await.unwrap_err());
    let exceeded = zredis::as_budget_exceeded(&error).expect("a budget error");
    assert_eq!(exceeded.budget(), Budget::Queries);
    let third: Option<String> = raw.get(key("w3")).await.unwrap();
    assert_eq!(third, None, "the third SET never reached Redis");
    let second: Option<String> = raw.get(key("w2")).await.unwrap();
    assert_eq!(second.as_deref(), Some("x"));
}

#[zen(max_db_ms = 200, mode = "enforce")]
async fn blocking_pop(redis: &mut Redis) -> Result<Option<(String, String)>, AppError> {
    Ok(redis.blpop(key("empty-list"), 5.0).await?)
}

#[tokio::test]
async fn a_slow_command_is_cut_at_the_time_left() {
    let Some((mut redis, _)) = redis().await else { return };
    let start = Instant::now();
    let (result, report) = testing::measure(blocking_pop(&mut redis)).await;
    let error = redis_error(result.unwrap_err());
    assert_eq!(zredis::as_budget_exceeded(&error).map(BudgetExceeded::budget), Some(Budget::DbTime));
    assert!(start.elapsed() < Duration::from_secs(2), "cut at ~200 ms: {:?}", start.elapsed());
    assert_eq!(report.figures.failed_queries(), 1);
}

/// Reads leave nothing committed; a write that Redis answered did commit,
/// and one that failed with Redis's answer did not.
#[tokio::test]
async fn redis_writes_say_what_they_did() {
    let Some((mut redis, _)) = redis().await else { return };
    let ((), reads) = testing::measure(async {
        let _: Option<String> = redis.get(key("w")).await.unwrap();
        let _: (Option<String>, i64) = redis::pipe().get(key("w")).ttl(key("w")).query_async(&mut redis).await.unwrap();
    })
    .await;
    assert_eq!(reads.figures.writes(), zen_runtime::report::Writes::None, "{reads}");
    let ((), set) = testing::measure(async {
        let _: () = redis.set(key("list"), "not a number").await.unwrap();
    })
    .await;
    assert_eq!(set.figures.writes(), zen_runtime::report::Writes::Committed);
    let ((), failed) = testing::measure(async {
        let error = redis.incr::<_, _, i64>(key("list"), 1).await.unwrap_err();
        assert!(!error.is_io_error(), "Redis answered: {error}");
    })
    .await;
    assert_eq!(failed.figures.writes(), zen_runtime::report::Writes::None);
}

/// Reads a user's profile once per item: the same key twice (a duplicate)
/// and one `GET` per item (an N+1 of one command shape).
#[zen(max_queries = 20)]
async fn profiles(redis: &mut Redis) -> Result<(), redis::RedisError> {
    for user in [1, 2, 1, 3, 4] {
        let _: Option<String> = redis.get(key(&format!("user:{user}"))).await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_key_read_twice_is_a_duplicate_and_a_read_per_item_an_n_plus_one() {
    let Some((mut redis, _)) = redis().await else { return };
    let asking = common::Timelines::asked();
    let (result, report) = testing::measure(profiles(&mut redis)).await;
    drop(asking);
    result.unwrap();
    let duplicates: Vec<(&str, u64)> = report.duplicates().iter().map(|d| (d.fingerprint.as_str(), d.count)).collect();
    assert_eq!(duplicates, [("GET", 2)], "the key of user 1, read twice: {report}");
    assert!(report.duplicates()[0].call_site.as_deref().unwrap().contains("tests/redis.rs"), "{report}");
    let n_plus_one: Vec<(&str, u64)> = report.n_plus_one.iter().map(|n| (n.fingerprint.as_str(), n.count)).collect();
    assert_eq!(n_plus_one, [("GET", 5)], "{report}");
    assert!(!report.to_json().contains("zen:test"), "keys never reach a report");
}
