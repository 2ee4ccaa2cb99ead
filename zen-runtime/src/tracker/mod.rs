//! The core: the tracker of scopes, what they are held to, what they used,
//! and the one interface through which the rest of zen and anything else
//! watch them. Nothing here names an integration: the database, HTTP,
//! Redis and job wrappers report through [`instrument`], the exporters
//! observe through [`observe`], and the crate root puts them together.

pub mod alloc;
pub(crate) mod boundary;
pub(crate) mod budget;
pub(crate) mod call_site;
pub mod config;
pub(crate) mod error;
pub mod fingerprint;
pub(crate) mod future;
pub(crate) mod hash;
pub mod instrument;
pub mod observe;
pub mod report;
pub(crate) mod scope;
pub(crate) mod spawn;
pub(crate) mod stats;
pub mod testing;
pub mod timeline;
