//! The `tracing` event of a report. Alone in its binary: `tracing` caches
//! each callsite's interest process-wide, so a test with a scoped subscriber
//! must not race with tests that have none.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use zen_runtime::{instrument, zen};

#[zen(name = "report::over", max_queries = 1, timeout_ms = 5)]
async fn over_budget() {
    for _ in 0..3 {
        instrument::query("test", "SELECT 1").unwrap().finish(true);
    }
    tokio::time::sleep(Duration::from_millis(15)).await;
}

/// One event: its level and each field's name and value, as text.
type Recorded = (tracing::Level, Vec<(String, String)>);

/// Records the `zen` events.
#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<Recorded>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Events {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        struct Fields(Vec<(String, String)>);
        impl Visit for Fields {
            fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
                self.0.push((field.name().to_owned(), format!("{value:?}")));
            }
        }
        if event.metadata().target() == "zen" {
            let mut fields = Fields(Vec::new());
            event.record(&mut fields);
            self.0.lock().unwrap().push((*event.metadata().level(), fields.0));
        }
    }
}

#[zen(name = "report::fine", max_queries = 5)]
async fn fine() {
    instrument::query("test", "SELECT 1").unwrap().finish(true);
}

#[zen(name = "report::n_plus_one")]
async fn n_plus_one() {
    for id in 0..6 {
        let _ = id;
        instrument::query("test", "SELECT name FROM users WHERE id = $1").unwrap().finish(true);
    }
}

/// One scoped subscriber at a time: callsite interest is process-wide.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn an_n_plus_one_within_budget_is_a_warning_even_when_only_warnings_are_on() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let events = Events::default();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::Layer::with_filter(events.clone(), tracing::level_filters::LevelFilter::WARN));
    tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            fine().await;
            n_plus_one().await;
        });
    });
    let events = events.0.lock().unwrap();
    assert_eq!(events.len(), 1, "only the N+1 scope warns");
    let (level, fields) = &events[0];
    assert_eq!(*level, tracing::Level::WARN);
    let suspects = fields.iter().find(|(n, _)| n == "n_plus_one").map(|(_, v)| v.as_str()).unwrap();
    assert!(suspects.contains("6x `SELECT name FROM users WHERE id = ?`"), "{suspects}");
}

#[test]
fn tracing_events_carry_one_field_per_figure_at_the_right_level() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let events = Events::default();
    let subscriber = tracing_subscriber::registry().with(events.clone());
    tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            fine().await;
            over_budget().await;
        });
    });
    let events = events.0.lock().unwrap();
    let field = |i: usize, name: &str| {
        events[i].1.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap_or_else(|| panic!("no field {name}"))
    };
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].0, tracing::Level::DEBUG);
    assert_eq!(field(0, "name"), "\"report::fine\"", "text fields are strings, quoted by formatters");
    assert_eq!(field(0, "queries"), "1");
    assert_eq!(field(0, "outcome"), "\"ok\"");
    assert_eq!(events[1].0, tracing::Level::WARN);
    assert_eq!(field(1, "outcome"), "\"exceeded\"");
    assert_eq!(field(1, "queries"), "3");
    assert!(field(1, "violations").contains("max_queries = 1: used 3 queries"));
    for name in ["kind", "mode", "failed_queries", "refused_queries", "slow_polls"] {
        field(1, name);
    }
    // One field per budget, from the budget table, but those not measured
    // here (memory without `ZenAlloc`, a response body outside the layer):
    // absent, not zero.
    for budget in zen_runtime::Budget::ALL {
        let present = events[1].1.iter().any(|(n, _)| n == budget.event_field());
        let measured = !matches!(budget.key(), "max_mem_kb" | "max_response_kb");
        assert_eq!(present, measured, "{budget}: field `{}`", budget.event_field());
    }
}
