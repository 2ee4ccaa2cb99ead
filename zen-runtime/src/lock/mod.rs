//! The budget lock (feature `lock`): budgets catch a regression in
//! production; the lock catches it in the pull request. `zen.lock`, checked
//! in beside `Cargo.toml`, holds what each test's scopes used, and CI runs
//! the tests with `ZEN_LOCK=check`: a scope that uses more than its entry,
//! or that the lock does not know, fails the run with a readable diff when
//! the test binary ends. A project adds three lines:
//!
//! ```toml
//! [dev-dependencies]   # or the app's own features
//! zen-runtime = { version = "0.1", features = ["lock"] }
//! ```
//! ```sh
//! ZEN_LOCK=update cargo test    # once, and whenever a change is meant; commit zen.lock
//! ZEN_LOCK=check cargo test     # the CI step
//! ```
//!
//! | `ZEN_LOCK` | when each test process ends |
//! |---|---|
//! | unset | nothing is recorded |
//! | `check` | exit code 1 on a scope that used more than its entry, or that the lock does not know; "can tighten" lines for those that used less |
//! | `update` | adds new scopes and tightens entries that used less; never loosens (a scope that used more fails the run and keeps its entry) |
//! | `reset` | writes what the run used, more included |
//!
//! A failed check reads like this, on stderr at the end of the test
//! binary's output:
//!
//! ```text
//! zen: /app/zen.lock: these scopes used more than their entry:
//!   articles::show › GET /articles/{slug}: 3 → 4 queries, new: SELECT * FROM tags WHERE article_id = ?
//!   feed::page › GET /feed: new N+1 at app::feed (src/feed.rs:42): SELECT * FROM users WHERE id = ?
//! zen: make them use less, or accept it with ZEN_LOCK=reset (or an exemption)
//! ```
//!
//! # What an entry holds
//!
//! For each test (`<test binary>::<test name>`, from the test's thread) and
//! each scope that ended in it (route, job or fn): the queries, the
//! statements by fingerprint with their counts, N+1 suspects, duplicates
//! and repeated calls (see [`timeline`](crate::timeline): while the lock
//! is on, every scope records its timeline) with their call site, external
//! calls per host and, under `ZenAlloc`, peak memory as
//! a band (rounded up to a power of two KiB, at least 64 KiB; a check fails
//! when it moves more than one band up, that is more than doubles, since a
//! peak moves a band from run to run). No wall-clock time: it is too noisy
//! for CI. The file is sorted, one value per line, so diffs are small and
//! merges easy; entries sit under `[tests."<test>"."<scope>"]`.
//!
//! Scopes that end off a test's thread (a multi-threaded runtime's
//! workers, an example a test runs) are kept under the binary's name and
//! only ever widened: several processes may each see part of them. Not
//! recorded: the scopes that `testing::measure` and `testing::collect` open
//! around the code they measure, and doctests (their scope names carry
//! rustdoc's numbering of the examples).
//!
//! # The file
//!
//! `zen.lock` in the package's directory (`CARGO_MANIFEST_DIR`, which cargo
//! sets for tests), or `ZEN_LOCK_FILE`. Test binaries and processes
//! (`cargo test`, `cargo nextest`'s process per test) write it at once
//! without losing an entry: each writer takes an exclusive lock on the file
//! and merges. A new lock is written beside the old one and renamed over
//! it, so a writer killed halfway leaves the old one whole; one of many
//! megabytes is checked in about three times its size. A malformed or
//! hand-broken lock is an error naming the file and the line
//! (``zen.lock:12: `queries` must be a whole number of 0 or more``; a byte
//! that is not UTF-8 too), never a silent reset, and is never rewritten. A bad `ZEN_LOCK`
//! names the variable, and [`init`](crate::init) rejects it at start-up.
//!
//! # Exemptions
//!
//! Besides the attribute's `exempt(...)` (see
//! [Exemptions](macro@crate::zen#exemptions) for what an exemption does),
//! the lock takes `[[exempt]]` entries, for every scope or for one
//! (`scope = "GET /feed"`):
//!
//! ```toml
//! [[exempt]]
//! scope = "GET /feed"
//! n_plus_one = true
//! call_site = "src/feed.rs:42"
//! reason = "paged in #412"
//! until = "2027-03-31"
//! ```
//!
//! They apply while `ZEN_LOCK` is set, that is in tests; for production,
//! write them in the attribute.
//!
//! zen's own suite runs this way: `.ci/run` sets `ZEN_LOCK=check`, against
//! the `zen.lock` files in the repository (trybuild's pass cases are
//! programs of their own and are not recorded).
//!
//! # The verdict in CI
//!
//! With `ZEN_LOCK_REPORT=<file>` as well, each test process appends its
//! verdict to the file, one JSON line per scope it judged (passed,
//! regressed or new, with what grew and what can tighten). One `cargo
//! test` is many processes, and SARIF or JUnit is one document: the `zen`
//! command (crate `zen-cli`) makes it from the lines, in the format a CI
//! tool reads:
//!
//! ```sh
//! rm -f target/zen-verdict.jsonl
//! ZEN_LOCK=check ZEN_LOCK_REPORT=target/zen-verdict.jsonl cargo test
//! zen lock report --format sarif target/zen-verdict.jsonl > zen.sarif      # code scanning
//! zen lock report --format github target/zen-verdict.jsonl                # ::error file=...,line=...:: annotations
//! zen lock report --format junit target/zen-verdict.jsonl > zen-junit.xml # a test case per locked scope
//! zen lock report --format markdown target/zen-verdict.jsonl              # a pull-request comment
//! ```
//!
//! With `ZEN_LOCK_REPORT` set, zen keeps where user code first ran each
//! statement (a stack per scope name and statement in the process, named
//! only for the statements that grew), so a new or grown statement, or a
//! new N+1, is reported at its line; a figure without a statement
//! (queries, memory, calls to a host) at its entry in `zen.lock`. Paths
//! are relative to the repository: the nearest directory above the lock
//! that holds `.git`. A relative `ZEN_LOCK_REPORT` is taken from there too
//! (cargo runs each package's tests in the package's own directory), and
//! its directory is made if missing. `update` writes a verdict as well,
//! where a scope it adds passes.

mod check;
mod file;
mod verdict;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

pub use file::LockError;

use crate::tracker::config::ConfigError;
use crate::tracker::observe::{Hooks, Observer, ScopeEnd};
use crate::tracker::report::{Exemption, Outcome};
use file::{Entry, LockFile, Pattern};

/// The variable that turns the lock on: `check`, `update` or `reset`.
pub const LOCK_VAR: &str = "ZEN_LOCK";
/// The variable that names the lock file, if not `zen.lock` beside `Cargo.toml`.
pub const LOCK_FILE_VAR: &str = "ZEN_LOCK_FILE";
/// The variable that names a file each test process appends its verdict
/// to, as JSON lines, for `zen lock report` (see [the verdict](self#the-verdict-in-ci)).
pub const REPORT_VAR: &str = "ZEN_LOCK_REPORT";

/// What `ZEN_LOCK` asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    /// Nothing is recorded.
    Off,
    /// A run that uses more than the lock fails.
    Check,
    /// New scopes are added and entries tightened; a regression fails.
    Update,
    /// The lock is rewritten with what the run used.
    Reset,
}

/// Parses `ZEN_LOCK` (`None`: unset).
///
/// # Errors
/// A value other than `check`, `update` or `reset`.
pub fn parse_mode(value: Option<&str>) -> Result<LockMode, ConfigError> {
    match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("" | "off") => Ok(LockMode::Off),
        Some("check") => Ok(LockMode::Check),
        Some("update") => Ok(LockMode::Update),
        Some("reset") => Ok(LockMode::Reset),
        Some(_) => Err(ConfigError {
            variable: LOCK_VAR,
            value: value.unwrap_or_default().to_owned(),
            expected: r#"one of "check", "update", "reset" (unset: off)"#,
        }),
    }
}

/// The lock of this process, read on first use.
struct State {
    mode: Result<LockMode, ConfigError>,
    path: PathBuf,
    /// The file as it was at start; `Err` when it cannot be used.
    locked: Result<LockFile, LockError>,
    /// What each test's scopes used so far, by test, then scope.
    seen: Mutex<BTreeMap<String, BTreeMap<String, Entry>>>,
}

static STATE: OnceLock<State> = OnceLock::new();

fn path() -> PathBuf {
    if let Some(file) = std::env::var_os(LOCK_FILE_VAR) {
        return PathBuf::from(file);
    }
    let dir = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from("."), PathBuf::from);
    dir.join("zen.lock")
}

fn read(path: &std::path::Path) -> Result<LockFile, LockError> {
    match std::fs::File::open(path) {
        Ok(mut f) => {
            let mut bytes = Vec::new();
            f.lock_shared().and_then(|()| f.read_to_end(&mut bytes)).map_err(|e| LockError {
                path: path.to_owned(),
                line: 0,
                message: format!("cannot read it: {e}"),
            })?;
            file::parse(path, &file::text(path, bytes)?)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LockFile::default()),
        Err(e) => Err(LockError { path: path.to_owned(), line: 0, message: format!("cannot open it: {e}") }),
    }
}

fn state() -> &'static State {
    STATE.get_or_init(|| {
        let mode = parse_mode(std::env::var(LOCK_VAR).ok().as_deref());
        let path = path();
        let on = !matches!(mode, Ok(LockMode::Off));
        let locked = if on { read(&path) } else { Ok(LockFile::default()) };
        if on {
            at_exit::register();
            if let Err(e) = &mode {
                eprintln!("zen: {e}");
            }
            if let Err(e) = &locked {
                eprintln!("zen: {e}");
            }
        }
        State { mode, path, locked, seen: Mutex::default() }
    })
}

fn mode() -> LockMode {
    state().mode.clone().unwrap_or(LockMode::Check)
}

/// Where the verdict goes, when `ZEN_LOCK_REPORT` names a file and the
/// lock checks or updates.
fn report_file() -> Option<PathBuf> {
    static FILE: OnceLock<Option<PathBuf>> = OnceLock::new();
    FILE.get_or_init(|| {
        let file = std::env::var_os(REPORT_VAR).filter(|v| !v.is_empty())?;
        matches!(mode(), LockMode::Check | LockMode::Update).then(|| PathBuf::from(file))
    })
    .clone()
}

fn reporting() -> bool {
    report_file().is_some()
}

/// The lock as an observer: with `ZEN_LOCK` set, it records every scope
/// that ends, and its `[[exempt]]` entries judge the reports; unset, it
/// takes no hook and costs nothing.
#[derive(Debug, Default)]
pub(crate) struct Lock;

impl Observer for Lock {
    fn hooks(&self) -> Hooks {
        if mode() == LockMode::Off {
            return Hooks::NONE;
        }
        let exempting = state().locked.as_ref().is_ok_and(|l| !l.exemptions.is_empty());
        // Where each statement first ran, to put a regression at its line
        // in the verdict.
        // Each scope's timeline, for its duplicates and repeated calls.
        let hooks = Hooks::SCOPE_ENDED.and(Hooks::TIMELINES);
        let hooks = if reporting() { hooks.and(Hooks::CALL_SITES) } else { hooks };
        if exempting { hooks.and(Hooks::EXEMPTIONS) } else { hooks }
    }

    fn scope_ended(&self, end: &ScopeEnd<'_>) {
        record(end);
    }

    fn exemptions(&self, scope: &str, each: &mut dyn FnMut(&Exemption)) {
        let Some(lock) = state().locked.as_ref().ok() else { return };
        for (_, exemption) in lock.exemptions.iter().filter(|(only, _)| only.as_deref().is_none_or(|s| s == scope)) {
            each(exemption);
        }
    }
}

/// The name of this program: `axum_layer-0123456789abcdef` is the test
/// binary `axum_layer`.
fn binary() -> &'static str {
    static BINARY: OnceLock<String> = OnceLock::new();
    BINARY.get_or_init(|| {
        let exe = std::env::current_exe().ok();
        let stem =
            exe.as_ref().and_then(|p| p.file_stem()).map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        match stem.rsplit_once('-') {
            Some((name, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => name.to_owned(),
            _ => stem,
        }
    })
}

/// A doctest (rustdoc builds each as `rust_out`): not recorded, since its
/// scope names carry rustdoc's numbering of the examples, which changes
/// whenever one is added.
fn doctest() -> bool {
    binary() == "rust_out"
}

/// The test a scope belongs to: `<binary>::<test>` from the test's thread,
/// or the binary alone off a test's thread.
fn test_key() -> String {
    let binary = binary();
    match std::thread::current().name() {
        Some(test) if check::is_test_name(test) => format!("{binary}::{test}"),
        _ => binary.to_owned(),
    }
}

/// Records what a scope used.
fn record(end: &ScopeEnd<'_>) {
    if matches!(end.outcome(), Outcome::Cancelled | Outcome::Panicked) || end.is_measurement() || doctest() {
        return;
    }
    let f = end.figures();
    let mut entry =
        Entry { queries: f.queries(), memory_kib: f.memory().map(|m| file::band(m.peak)), ..Entry::default() };
    let test = test_key();
    let locked = state().locked.as_ref().ok().and_then(|l| l.entries.get(&test)).and_then(|s| s.get(end.name()));
    end.statements(|s| {
        entry.statements.insert(Arc::clone(s.fingerprint), s.count);
        // A statement new to its entry, or run more often: where it runs
        // (named now, for these only).
        if reporting()
            && let Some(locked) = locked
            && locked.statements.get(s.fingerprint).is_none_or(|&l| s.count > l)
            && let Some(site) = s.call_site()
        {
            entry.sites.insert(Arc::clone(s.fingerprint), site);
        }
    });
    end.hosts(|host, calls| {
        entry.http_calls.insert(host.to_owned(), calls);
    });
    // Call sites name no path of this machine (see `call_site`).
    let site = |site: &Option<String>| site.clone().unwrap_or_else(|| "an unknown call site".to_owned());
    if end.n_plus_one() > 0 {
        for s in &end.report().n_plus_one {
            entry.found.insert((Pattern::NPlusOne, s.fingerprint.as_str().into()), site(&s.call_site));
        }
    }
    if let Some(timeline) = end.timeline() {
        for d in timeline.duplicates() {
            entry.found.insert((Pattern::Duplicate, d.fingerprint.as_str().into()), site(&d.call_site));
        }
        for c in timeline.repeated_calls() {
            entry.found.insert((Pattern::RepeatedCall, c.call.as_str().into()), site(&c.call_site));
        }
    }
    let mut seen = state().seen.lock().unwrap_or_else(PoisonError::into_inner);
    let scopes = seen.entry(test).or_default();
    match scopes.get_mut(end.name()) {
        Some(most) => most.widen(entry),
        None => {
            scopes.insert(end.name().to_owned(), entry);
        }
    }
}

/// Writes the lock under an exclusive lock on the file, merged with what
/// other processes wrote meanwhile. On Unix the new text goes to a file
/// beside it, renamed over it once complete: a writer killed halfway
/// leaves the old lock whole, never a truncated one.
fn write(state: &State, seen: &BTreeMap<String, BTreeMap<String, Entry>>, accept: bool) -> Result<(), LockError> {
    let path = &state.path;
    let error = |e: std::io::Error| LockError { path: path.clone(), line: 0, message: format!("cannot write it: {e}") };
    loop {
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(error)?;
        f.lock().map_err(error)?;
        // A writer that held the lock meanwhile renamed a new file over the
        // one opened here: lock that one instead.
        if !is_at(&f, path) {
            continue;
        }
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).map_err(error)?;
        let text = file::text(path, bytes)?;
        let mut lock = file::parse(path, &text)?;
        check::merge(&mut lock, seen, accept);
        let rendered = file::render(&lock);
        drop(lock);
        if rendered != text {
            replace(path, &mut f, &rendered).map_err(error)?;
        }
        // The lock on `f` goes with it.
        return Ok(());
    }
}

/// Whether `f` is still the file at `path`.
#[cfg(unix)]
fn is_at(f: &std::fs::File, path: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (f.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Puts `text` at `path` whole or not at all: written to `<name>.tmp`
/// beside it (one name: writers take turns under the lock, and a file a
/// killed writer left is written over), synced, given the lock's
/// permissions, renamed over it, and the directory synced. A symbolic link
/// at `path` is followed: the file it names is replaced.
#[cfg(unix)]
fn replace(path: &std::path::Path, f: &mut std::fs::File, text: &str) -> std::io::Result<()> {
    let path = std::fs::canonicalize(path)?;
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".tmp");
    let temporary = path.with_file_name(name);
    let written = std::fs::File::create(&temporary).and_then(|mut t| {
        t.write_all(text.as_bytes())?;
        t.set_permissions(f.metadata()?.permissions())?;
        t.sync_all()
    });
    let renamed = written.and_then(|()| std::fs::rename(&temporary, &path));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    renamed?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Where files cannot be renamed over while open, the lock is rewritten in
/// place, as it always was there.
#[cfg(not(unix))]
fn is_at(_: &std::fs::File, _: &std::path::Path) -> bool {
    true
}

#[cfg(not(unix))]
fn replace(_: &std::path::Path, f: &mut std::fs::File, text: &str) -> std::io::Result<()> {
    use std::io::Seek;
    f.set_len(0)?;
    f.rewind()?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// Checks or writes the lock at the end of the process; `false` when the
/// run must fail. Everything it says goes to stderr.
fn finish() -> bool {
    let Some(state) = STATE.get() else { return true };
    let mode = match &state.mode {
        Ok(LockMode::Off) => return true,
        Ok(mode) => *mode,
        Err(e) => {
            eprintln!("zen: {e}");
            return false;
        }
    };
    let seen = state.seen.lock().unwrap_or_else(PoisonError::into_inner).clone();
    if seen.is_empty() {
        return true;
    }
    let locked = match &state.locked {
        Ok(locked) => locked,
        Err(e) => {
            eprintln!("zen: {e}\nzen: fix the file (or delete it and run with ZEN_LOCK=update); nothing was written");
            return false;
        }
    };
    let outcome = check::check(locked, &seen, mode == LockMode::Update);
    let file = state.path.display();
    let can_tighten = outcome.can_tighten();
    if !can_tighten.is_empty() && mode == LockMode::Check {
        eprintln!("zen: {file}: can tighten (ZEN_LOCK=update writes it):");
        for line in &can_tighten {
            eprintln!("  {line}");
        }
    }
    let mut ok = true;
    let regressions = outcome.regressions();
    if mode != LockMode::Reset && !regressions.is_empty() {
        eprintln!("zen: {file}: these scopes used more than their entry:");
        for line in &regressions {
            eprintln!("  {line}");
        }
        eprintln!("zen: make them use less, or accept it with ZEN_LOCK=reset (or an exemption)");
        ok = false;
    }
    let unknown = outcome.unknown();
    if mode == LockMode::Check && !unknown.is_empty() {
        eprintln!("zen: {file}: these scopes are not in the lock (add them with ZEN_LOCK=update):");
        for line in &unknown {
            eprintln!("  {line}");
        }
        ok = false;
    }
    if let Some(to) = report_file()
        && let Err(e) = verdict::append(&to, &state.path, &outcome)
    {
        eprintln!("zen: {REPORT_VAR}={}: cannot write the verdict: {e}", to.display());
        ok = false;
    }
    if mode != LockMode::Check
        && let Err(e) = write(state, &seen, mode == LockMode::Reset)
    {
        eprintln!("zen: {e}");
        ok = false;
    }
    ok
}

/// Runs [`finish`] when the process exits, and makes the exit code say it.
mod at_exit {
    // SAFETY: both are libc functions with these C signatures, linked into
    // every Rust program on the platforms zen supports; `atexit` takes any
    // `extern "C" fn()`, and `_exit` ends the process without returning.
    unsafe extern "C" {
        safe fn atexit(callback: extern "C" fn()) -> std::ffi::c_int;
        safe fn _exit(status: std::ffi::c_int) -> !;
    }

    extern "C" fn on_exit() {
        let ok = std::panic::catch_unwind(super::finish).unwrap_or(false);
        if !ok {
            let _ = std::io::Write::flush(&mut std::io::stdout());
            // `exit` is already running: `_exit` is the one way to change
            // the status now.
            _exit(1);
        }
    }

    pub(super) fn register() {
        if atexit(on_exit) != 0 {
            eprintln!("zen: cannot register the lock check at exit; ZEN_LOCK has no effect");
        }
    }
}
