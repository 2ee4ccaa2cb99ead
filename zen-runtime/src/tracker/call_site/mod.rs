//! Where user code issued a statement: captured when the statement becomes
//! an N+1 suspect (once per statement and scope name in the process), as
//! the return addresses of the stack, and named when the report is built:
//! the first frame outside zen, the database clients, the async runtime and
//! the standard library, as `function (path:line)`.
//!
//! Naming reads the debug information of the program, and reads little of
//! it. On Linux zen reads it itself ([`dwarf`]): it maps the file, finds the
//! one compilation unit that holds each address, reads that unit alone and
//! lets go of everything when done, so the first N+1 of a process does not
//! cost the tens of megabytes a symboliser that indexes every unit keeps
//! (`benches/call_site.rs` measures it). Elsewhere the `backtrace` crate
//! names the frames, and its caches are emptied after.
//!
//! Paths are never the build machine's: a file of the workspace is named
//! relative to it (`src/handlers.rs`), a dependency's as
//! `crate@version/src/lib.rs`, the standard library's from `library/`.

#[cfg(target_os = "linux")]
mod dwarf;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// The most frames kept of a stack.
const MAX_FRAMES: usize = 96;

/// One frame's function and place, innermost first within a frame.
pub(crate) struct Symbol {
    pub(crate) function: String,
    pub(crate) place: Option<(String, u32)>,
}

/// Where user code issued a statement.
pub(crate) struct CallSite {
    /// Return addresses, innermost first, until named.
    frames: Mutex<Option<Vec<usize>>>,
    named: OnceLock<String>,
}

/// Call sites already found, by scope name, fingerprint, and whether it is
/// where the statement first ran (or where it became an N+1 suspect): a
/// handler with an N+1 pattern pays for the stack once per process, not per
/// request.
type SiteKey = (String, Arc<str>, bool);
static KNOWN_SITES: Mutex<Option<HashMap<SiteKey, Arc<CallSite>>>> = Mutex::new(None);
const MAX_KNOWN_SITES: usize = 4096;

impl CallSite {
    /// The call site of `fingerprint` in the scope named `scope` (`first`:
    /// its first run, else where it became an N+1 suspect), captured now
    /// unless a call of the same scope already found it.
    pub(crate) fn of(scope: &str, fingerprint: &Arc<str>, first: bool) -> Arc<CallSite> {
        let key = (scope.to_owned(), Arc::clone(fingerprint), first);
        if let Some(site) = KNOWN_SITES.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert_default().get(&key)
        {
            return Arc::clone(site);
        }
        let mut frames = Vec::with_capacity(MAX_FRAMES);
        backtrace::trace(|frame| {
            frames.push(frame.ip() as usize);
            frames.len() < MAX_FRAMES
        });
        let site = Arc::new(CallSite { frames: Mutex::new(Some(frames)), named: OnceLock::new() });
        let mut known = KNOWN_SITES.lock().unwrap_or_else(PoisonError::into_inner);
        let known = known.get_or_insert_default();
        if known.len() < MAX_KNOWN_SITES {
            known.insert(key, Arc::clone(&site));
        }
        site
    }

    /// The first frame of user code: function, and place when known.
    pub(crate) fn resolve(&self) -> String {
        self.named
            .get_or_init(|| {
                let Some(frames) = self.frames.lock().unwrap_or_else(PoisonError::into_inner).take() else {
                    return String::new();
                };
                // Whatever the debug information holds, a report is built.
                std::panic::catch_unwind(|| first_user_frame(&frames))
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| "unknown (no symbols)".to_owned())
            })
            .clone()
    }
}

impl std::fmt::Debug for CallSite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallSite").field("named", &self.named.get()).finish_non_exhaustive()
    }
}

/// Names frames until one is user code.
fn first_user_frame(frames: &[usize]) -> Option<String> {
    let mut found = None;
    symbols(frames, &mut |symbol| {
        if !is_user_code(&symbol.function) {
            return true;
        }
        let function = symbol.function.replace("::{{closure}}", "").replace("::{closure#0}", "");
        found = Some(match &symbol.place {
            Some((file, line)) => format!("{function} ({file}:{line})"),
            None => function,
        });
        false
    });
    found
}

/// Calls `each` with the symbols of `frames` in order, innermost first,
/// until it returns `false`.
#[cfg(target_os = "linux")]
fn symbols(frames: &[usize], each: &mut dyn FnMut(&Symbol) -> bool) {
    dwarf::symbols(frames, each);
}

#[cfg(not(target_os = "linux"))]
fn symbols(frames: &[usize], each: &mut dyn FnMut(&Symbol) -> bool) {
    let mut go_on = true;
    for &ip in frames {
        backtrace::resolve(ip as *mut std::ffi::c_void, |symbol| {
            if !go_on {
                return;
            }
            let Some(name) = symbol.name() else { return };
            let place = symbol.filename().zip(symbol.lineno()).map(|(f, l)| (relative(&f.to_string_lossy(), ""), l));
            go_on = each(&Symbol { function: format!("{name:#}"), place });
        });
        if !go_on {
            break;
        }
    }
    backtrace::clear_symbol_cache();
}

/// A source path as a report shows it, whatever machine built the program:
/// a dependency's as `crate@version/...` (cargo compiles one in its own
/// directory, `comp_dir`), the standard library's from `library/`, the
/// workspace's relative to it (its `comp_dir`), and any other by its last
/// two parts.
pub(crate) fn relative(path: &str, comp_dir: &str) -> String {
    let path = path.replace('\\', "/");
    let full = if path.starts_with('/') || comp_dir.is_empty() {
        path
    } else {
        format!("{}/{path}", comp_dir.trim_end_matches('/'))
    };
    // `~/.cargo/registry/src/<index>/<crate>-<version>/src/lib.rs`
    if let Some((_, rest)) = full.split_once("/registry/src/")
        && let Some((_index, rest)) = rest.split_once('/')
        && let Some((package, file)) = rest.split_once('/')
    {
        let versioned = package
            .char_indices()
            .rev()
            .find(|&(i, c)| c == '-' && package[i + 1..].starts_with(|d: char| d.is_ascii_digit()));
        return match versioned {
            Some((i, _)) => format!("{}@{}/{file}", &package[..i], &package[i + 1..]),
            None => format!("{package}/{file}"),
        };
    }
    // `~/.cargo/git/checkouts/<repository>-<hash>/<revision>/...`
    if let Some((_, rest)) = full.split_once("/git/checkouts/")
        && let Some((repository, rest)) = rest.split_once('/')
        && let Some((_revision, file)) = rest.split_once('/')
    {
        let name = repository.rsplit_once('-').map_or(repository, |(name, _hash)| name);
        return format!("{name}@git/{file}");
    }
    // `/rustc/<commit>/library/std/src/...`
    if full.starts_with("/rustc/")
        && let Some((_, rest)) = full.split_once("/library/")
    {
        return format!("library/{rest}");
    }
    if !full.starts_with('/') {
        return full;
    }
    if !comp_dir.is_empty()
        && let Some(rest) = full.strip_prefix(comp_dir.trim_end_matches('/')).and_then(|r| r.strip_prefix('/'))
    {
        return rest.to_owned();
    }
    let mut parts = full.rsplit('/');
    match (parts.next(), parts.next()) {
        (Some(file), Some(dir)) if !dir.is_empty() => format!("…/{dir}/{file}"),
        (Some(file), _) => file.to_owned(),
        _ => String::new(),
    }
}

/// Client crates an adapter named ([`add_library`]), beside [`is_user_code`]'s own.
static ADDED: std::sync::RwLock<Vec<&'static str>> = std::sync::RwLock::new(Vec::new());

/// Frames of the crate `name` (as in paths: `mongodb`, `bson`) are a
/// client's, never the call site of an N+1. Each name is kept once.
pub(crate) fn add_library(name: &'static str) {
    let mut added = ADDED.write().unwrap_or_else(std::sync::PoisonError::into_inner);
    if !added.contains(&name) {
        added.push(name);
    }
}

/// `false` for frames of zen, the clients, the runtime and the standard
/// library, including their trait impls (`<F as futures::Future>::poll`).
/// Crates are named exactly: an application's `axum_layer` or `tokio_app`
/// is the application's.
fn is_user_code(symbol: &str) -> bool {
    const LIBRARIES: &[&str] = &[
        "alloc",
        "apalis",
        "apalis_core",
        "async_stream",
        "async_trait",
        "axum",
        "axum_core",
        "backtrace",
        "core",
        "either",
        "futures",
        "futures_core",
        "futures_util",
        "h2",
        "http",
        "http_body",
        "http_body_util",
        "hyper",
        "hyper_util",
        "redis",
        "reqwest",
        "reqwest_middleware",
        "sqlx",
        "sqlx_core",
        "sqlx_mysql",
        "sqlx_postgres",
        "sqlx_sqlite",
        "std",
        "test",
        "tokio",
        "tokio_util",
        "tower",
        "tower_http",
        "tower_layer",
        "tower_service",
        "tracing",
        "tracing_core",
        "zen_macros",
        "zen_runtime",
    ];
    let added = ADDED.read().unwrap_or_else(std::sync::PoisonError::into_inner);
    let library = |path: &str| {
        let path = path.trim_start_matches(['<', '&']).trim_start_matches("mut ").trim_start_matches("dyn ");
        let root = path.split("::").next().unwrap_or("");
        root.is_empty()
            || root.starts_with("_Z")
            || root.starts_with("__rust")
            || LIBRARIES.contains(&root)
            || added.contains(&root)
    };
    match symbol.strip_prefix('<').and_then(|s| s.split_once(" as ")) {
        // `<Type as Trait>::method`: a generic `Type` is the library's own.
        Some((ty, tr)) => !(library(ty) || library(tr) || !ty.contains("::")),
        None => !library(symbol),
    }
}

#[cfg(test)]
mod tests {
    use super::{is_user_code, relative};

    #[test]
    fn library_frames_are_skipped() {
        assert!(is_user_code("my_app::handlers::list::{{closure}}"));
        assert!(is_user_code("<my_app::Repo as my_app::Store>::load::{{closure}}"));
        assert!(!is_user_code("<F as futures_core::future::TryFuture>::try_poll"));
        assert!(!is_user_code("<&zen_runtime::db::pool::Pool<DB> as sqlx_core::executor::Executor>::fetch_optional"));
        assert!(!is_user_code("sqlx_core::query_as::QueryAs<DB,O,A>::fetch_optional"));
        assert!(!is_user_code("tokio::runtime::task::harness::poll"));
        assert!(!is_user_code("<core::pin::Pin<P> as core::future::future::Future>::poll"));
        assert!(!is_user_code("test::__rust_begin_short_backtrace::<fn()>"));
        assert!(is_user_code("axum_layer::hostile::{{closure}}"), "a crate whose name starts like a library's");
        assert!(is_user_code("tokio_app::main::{{closure}}"));
    }

    #[test]
    fn paths_never_name_the_build_machine() {
        let ws = "/home/ci/build/app";
        assert_eq!(relative("src/handlers.rs", ws), "src/handlers.rs");
        assert_eq!(relative("/home/ci/build/app/crates/api/src/x.rs", ws), "crates/api/src/x.rs");
        assert_eq!(
            relative("/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tokio-1.54.1/src/lib.rs", ws),
            "tokio@1.54.1/src/lib.rs"
        );
        assert_eq!(
            relative("/u/.cargo/registry/src/index.crates.io-x/sqlx-core-0.9.0-alpha.1/src/pool.rs", ws),
            "sqlx-core@0.9.0-alpha.1/src/pool.rs"
        );
        assert_eq!(
            relative("/u/.cargo/git/checkouts/shop-9a8b7c/1a2b3c4/crates/db/src/lib.rs", ws),
            "shop@git/crates/db/src/lib.rs"
        );
        assert_eq!(relative("/rustc/59807616e1fa/library/std/src/panicking.rs", ws), "library/std/src/panicking.rs");
        // A dependency is compiled in its own directory, with paths relative to it.
        let tokio = "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tokio-1.54.1";
        assert_eq!(relative("src/runtime/mod.rs", tokio), "tokio@1.54.1/src/runtime/mod.rs");
        assert_eq!(relative("/opt/vendor/lib/src/gen.rs", ws), "…/src/gen.rs");
        assert!(!relative("/home/alice/secret-project/src/main.rs", "").contains("alice"));
    }
}
