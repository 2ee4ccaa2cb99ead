//! The dashboard: its pages and JSON against a real axum server, and the
//! same pages in a real browser.

#![allow(clippy::duplicate_mod)]

#[path = "dashboard.rs"]
mod dashboard;
#[path = "dashboard_browser.rs"]
mod dashboard_browser;
#[path = "timeline.rs"]
mod timeline;
