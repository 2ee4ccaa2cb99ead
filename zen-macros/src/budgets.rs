//! The budget keys the attribute accepts, with their units: the runtime's
//! budget table has the same keys in the same order, and a test compares
//! the two.

/// How a budget's value is counted; each budget key ends with its unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unit {
    Count,
    Millis,
    KiB,
}

/// The budget keys and their units, in the runtime's table order.
pub(crate) const BUDGETS: &[(&str, Unit)] = &[
    ("max_queries", Unit::Count),
    ("max_db_ms", Unit::Millis),
    ("max_mem_kb", Unit::KiB),
    ("timeout_ms", Unit::Millis),
    ("max_http_calls", Unit::Count),
    ("max_http_ms", Unit::Millis),
    ("max_poll_ms", Unit::Millis),
    ("max_rows", Unit::Count),
    ("max_response_kb", Unit::KiB),
];
