//! Servers the tests talk to. PostgreSQL and Redis tests skip, saying why,
//! when the server does not answer, unless `ZEN_TEST_REQUIRE_SERVICES=1`
//! (CI) makes them mandatory.
#![allow(dead_code, unreachable_pub)]

fn required() -> bool {
    std::env::var("ZEN_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

fn unavailable(what: &str, url: &str, error: &dyn std::fmt::Display) -> Option<String> {
    assert!(!required(), "{what} at {url} is required (ZEN_TEST_REQUIRE_SERVICES=1) but does not answer: {error}");
    eprintln!("skipped: {what} at {url} does not answer ({error}); set ZEN_TEST_REQUIRE_SERVICES=1 to fail instead");
    None
}

/// The PostgreSQL URL, if the server answers.
pub async fn postgres_url() -> Option<String> {
    let url =
        std::env::var("ZEN_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let options: sqlx::postgres::PgConnectOptions = url.parse().expect("a valid PostgreSQL URL");
    match sqlx::ConnectOptions::connect(&options).await {
        Ok(conn) => {
            drop(conn);
            Some(url)
        }
        Err(e) => unavailable("PostgreSQL", &url, &e),
    }
}

/// The Redis URL, if the server answers.
pub async fn redis_url() -> Option<String> {
    let url = std::env::var("ZEN_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let client = redis::Client::open(url.as_str()).expect("a valid Redis URL");
    match client.get_multiplexed_async_connection().await {
        Ok(_) => Some(url),
        Err(e) => unavailable("Redis", &url, &e),
    }
}
