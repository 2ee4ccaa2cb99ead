//! `testing::assert_constant_queries` and `assert_linear_queries` on a real
//! SQLite database: the N+1 is caught, its fix passes.

mod common;

use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use zen_runtime::db::SqlitePool;
use zen_runtime::testing;

/// `scale` articles, by the ten users in turn.
async fn populate(pool: &SqlitePool, scale: u32) {
    sqlx::query("DELETE FROM articles").execute(pool).await.unwrap();
    for i in 0..scale {
        sqlx::query("INSERT INTO articles (title, author_id) VALUES (?, ?)")
            .bind(format!("a{i}"))
            .bind(i64::from(i % 10) + 1)
            .execute(pool)
            .await
            .unwrap();
    }
}

/// Each article's author looked up in a loop: an N+1.
async fn feed_n_plus_one(pool: &SqlitePool) -> Vec<(String, String)> {
    let articles: Vec<(String, i64)> =
        sqlx::query_as("SELECT title, author_id FROM articles").fetch_all(pool).await.unwrap();
    let mut feed = Vec::new();
    for (title, author) in articles {
        let (name,): (String,) =
            sqlx::query_as("SELECT name FROM users WHERE id = ?").bind(author).fetch_one(pool).await.unwrap();
        feed.push((title, name));
    }
    feed
}

/// The same feed in one query.
async fn feed_joined(pool: &SqlitePool) -> Vec<(String, String)> {
    sqlx::query_as("SELECT a.title, u.name FROM articles a JOIN users u ON u.id = a.author_id")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// What the assertion said when it failed; it must fail.
async fn panic_message<T>(assertion: impl std::future::Future<Output = T>) -> String {
    let failed = AssertUnwindSafe(assertion).catch_unwind().await.err().expect("the assertion fails");
    failed.downcast_ref::<String>().expect("a formatted message").clone()
}

#[tokio::test]
async fn a_constant_number_of_queries_passes_and_an_n_plus_one_fails_with_the_counts() {
    let pool = common::sqlite_pool_at(&common::sqlite_url(), 1).await;
    let counts = testing::assert_constant_queries(&[1, 5, 20], |s| populate(&pool, s), || feed_joined(&pool)).await;
    assert_eq!(counts, [1, 1, 1]);

    let message =
        panic_message(testing::assert_constant_queries(&[1, 5, 20], |s| populate(&pool, s), || feed_n_plus_one(&pool)))
            .await;
    assert!(message.contains("the number of queries grows with the data"), "{message}");
    assert!(message.contains("scale      1: 2 queries\n"), "{message}");
    assert!(message.contains("scale      5: 6 queries  (allowed 2)"), "{message}");
    assert!(message.contains("scale     20: 21 queries  (allowed 2)"), "{message}");
    assert!(message.contains("  1 → 5 → 20  SELECT name FROM users WHERE id = ?"), "{message}");
    assert!(!message.contains("SELECT title, author_id FROM articles"), "only what grew is listed: {message}");
}

#[tokio::test]
async fn the_linear_variant_allows_its_slope_and_no_more() {
    let pool = common::sqlite_pool_at(&common::sqlite_url(), 1).await;
    let counts =
        testing::assert_linear_queries(&[1, 5, 20], 1, |s| populate(&pool, s), || feed_n_plus_one(&pool)).await;
    assert_eq!(counts, [2, 6, 21]);

    // Two queries per article is more than a slope of one.
    let twice = || async {
        feed_n_plus_one(&pool).await;
        feed_n_plus_one(&pool).await
    };
    let message = panic_message(testing::assert_linear_queries(&[1, 5], 1, |s| populate(&pool, s), twice)).await;
    assert!(message.contains("grows faster than 1 per unit of scale"), "{message}");
    assert!(message.contains("scale      5: 12 queries  (allowed 8)"), "{message}");

    let message =
        panic_message(testing::assert_constant_queries(&[5, 1], |s| populate(&pool, s), || feed_joined(&pool))).await;
    assert!(message.contains("at least two increasing scale factors"), "{message}");
}
