//! Report sinks: where every report of the process goes, whole. A function
//! of yours ([`add_sink`]), for an exporter of your own (a log pipeline, a
//! metrics system) or a test, and a file of JSON lines ([`JsonLines`]),
//! which `zen suggest` reads to propose budgets. A sink of yours asks for
//! the full report of every scope on the thread that ends it (so, while one
//! is registered, every scope builds one there); one that needs only
//! figures is cheaper as an [`Observer`], and [`JsonLines`] builds each
//! report and its line on a thread of its own
//! ([`ScopeEnd::keep`](crate::observe::ScopeEnd::keep)).
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//!
//! static EXCEEDED: AtomicU64 = AtomicU64::new(0);
//!
//! let sink = zen_runtime::sinks::add_sink(|report| {
//!     if !report.violations.is_empty() {
//!         EXCEEDED.fetch_add(1, Ordering::Relaxed);
//!     }
//! });
//! // ...
//! assert!(zen_runtime::sinks::remove_sink(sink));
//! ```

mod jsonl;

pub use jsonl::{JsonLines, JsonLinesBuilder, MIN_BYTES};

use std::sync::Arc;

use crate::tracker::observe::{self, Hooks, Observer, ObserverId, ScopeEnd};
use crate::tracker::report::Report;

/// A receiver of every report, registered with [`add_sink`].
pub type Sink = Arc<dyn Fn(&Report) + Send + Sync>;

/// Identifies a registered sink, to remove it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SinkId(ObserverId);

/// A sink, as an observer.
struct Sinked(Sink);

impl Observer for Sinked {
    fn hooks(&self) -> Hooks {
        Hooks::SCOPE_ENDED
    }

    fn scope_ended(&self, end: &ScopeEnd<'_>) {
        // `testing::measure` hands its report to the test alone.
        if !end.is_measurement() {
            (self.0)(end.report());
        }
    }
}

/// Registers a function that receives every report of the process, for an
/// exporter (metrics, a log pipeline) or a test. It runs on the thread that
/// ends the scope, so keep it short; a sink that panics is logged and skipped.
pub fn add_sink(sink: impl Fn(&Report) + Send + Sync + 'static) -> SinkId {
    SinkId(observe::register(Sinked(Arc::new(sink))))
}

/// Unregisters a sink; `false` if it was not registered.
pub fn remove_sink(id: SinkId) -> bool {
    observe::unregister(id.0)
}
