//! The exporters against real peers: the metrics facade under a Prometheus
//! recorder, and every figure in every exporter. `metrics.rs` owns the
//! process's metrics recorder and `figures.rs` its `tracing` subscriber;
//! `ZenAlloc` is the global allocator, so that memory is a figure too.

#![allow(clippy::duplicate_mod)]

#[global_allocator]
static ALLOC: zen_runtime::alloc::ZenAlloc = zen_runtime::alloc::ZenAlloc::system();

#[path = "figures.rs"]
mod figures;
#[path = "metrics.rs"]
mod metrics;
