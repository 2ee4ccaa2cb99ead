//! The behaviour suites of zen's capabilities, one module each, in one
//! test binary: built and linked once. A suite whose state is the whole
//! process's (the environment, `tracing`'s interest cache, the global
//! allocator, a metrics recorder, a process it starts again as a child)
//! has a binary of its own, declared in `Cargo.toml`.

// Each suite declares the shared helpers itself, so they load once per suite.
#![allow(clippy::duplicate_mod)]

#[path = "budget_keys.rs"]
mod budget_keys;
#[path = "budgets.rs"]
mod budgets;
#[path = "compose.rs"]
mod compose;
#[path = "constant_queries.rs"]
mod constant_queries;
#[path = "db_postgres.rs"]
mod db_postgres;
#[path = "db_sqlite.rs"]
mod db_sqlite;
#[path = "deadline.rs"]
mod deadline;
#[path = "fingerprint.rs"]
mod fingerprint;
#[path = "http_client.rs"]
mod http_client;
#[path = "instrument_sqlite.rs"]
mod instrument_sqlite;
#[path = "jobs.rs"]
mod jobs;
#[path = "modes.rs"]
mod modes;
#[path = "mongodb.rs"]
mod mongodb_suite;
#[path = "observe.rs"]
mod observe;
#[path = "redis.rs"]
mod redis_suite;
#[path = "report.rs"]
mod report;
#[path = "scope.rs"]
mod scope;
#[path = "writes.rs"]
mod writes;
