//! Reports as JSON lines in a file of bounded size, rotated: what `zen
//! suggest` reads to propose budgets from real traffic. Each line is
//! [`Report::to_json`], built and written on the sink's own thread: the
//! thread that ends a scope only hands the scope over.

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use crate::tracker::observe::{self, EndedScope, Hooks, Observer, ObserverId, ScopeEnd};

/// The smallest file [`JsonLinesBuilder::max_bytes`] accepts: a report
/// with a few statements takes a few hundred bytes.
pub const MIN_BYTES: u64 = 4096;

/// After a rotation failed, how long lines are dropped before it is tried
/// again: a directory removed and made again is written to soon after,
/// while a failure that lasts (no file descriptors left) is tried four
/// times a second rather than for every line. A rotation that failed after
/// moving the current file is not moved further on a retry; one that failed
/// halfway through shifting the kept files (a rename refused) may drop the
/// oldest kept file again on each retry, at most `keep` of them.
const RETRY_ROTATION: std::time::Duration = std::time::Duration::from_millis(250);

/// Scopes waiting for the writer thread; past it, their reports are dropped
/// and counted rather than slowing the scopes that end. Each keeps its
/// scope's tables until written: at most 64 statements (fingerprints are
/// shared with zen's cache, but for statements past its size) and 32 hosts,
/// so the queue holds about 1 MiB in the common case and under 50 MiB at
/// the very worst.
const QUEUE: usize = 1024;

/// Writes every report of the process to a file, one JSON object per line
/// ([`Report::to_json`](crate::Report::to_json): figures keyed by `#[zen]`
/// key, limits, violations, N+1 suspects and statements as fingerprints,
/// never values), from a thread of its own: the thread that ends a scope
/// hands the scope over and formats nothing. Made with
/// [`JsonLines::builder`]; dropping it stops the sink and writes what is
/// queued. Run it in staging or under a load test, then let `zen suggest`
/// (crate `zen-cli`) propose budgets from the files.
///
/// ```no_run
/// let reports = zen_runtime::sinks::JsonLines::builder("zen-reports.jsonl")
///     .max_bytes(64 << 20)
///     .keep(3)
///     .open()?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// The file never grows past `max_bytes` (default 64 MiB, at least
/// [`MIN_BYTES`], 4 KiB: [`open`](JsonLinesBuilder::open) refuses less):
/// the line that would pass it first moves the file to `<path>.1` (`.1` to
/// `.2`, and so on), and `keep` rotated files are kept (default 3), the
/// oldest removed. When the queue (1,024 scopes) is full, or a rotation
/// failed (tried again a quarter of a second later), lines are dropped and
/// counted ([`dropped`](Self::dropped)), never waited for.
///
/// Keep the handle for as long as reports should be written: dropped, it
/// stops the sink (`let _ = ...open()?` writes nothing), and one dropped
/// before any scope ended says so in a WARN event of target `zen`.
#[derive(Debug)]
#[must_use = "dropping a `JsonLines` stops it: keep it for as long as reports should be written"]
pub struct JsonLines {
    observer: ObserverId,
    queue: Option<SyncSender<Message>>,
    /// Gives back how many scopes came after it was told to stop.
    writer: Option<JoinHandle<u64>>,
    counts: Arc<Counts>,
}

/// Where the file goes and how large it may grow.
#[derive(Debug, Clone)]
pub struct JsonLinesBuilder {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
}

#[derive(Debug, Default)]
struct Counts {
    /// Reports handed to the sink, written or not.
    offered: AtomicU64,
    written: AtomicU64,
    dropped: AtomicU64,
}

enum Message {
    /// A scope, and when it ended (the line's `ts_ms`).
    Ended(EndedScope, std::time::SystemTime),
    Flush(SyncSender<()>),
    /// Written what came before: stop. (Another thread may still hold the
    /// observer, and with it a sender, until its next scope.)
    Stop,
}

/// The sink, as an observer: hands each scope to the writer.
struct Handing {
    queue: SyncSender<Message>,
    counts: Arc<Counts>,
}

impl Observer for Handing {
    fn hooks(&self) -> Hooks {
        Hooks::SCOPE_ENDED
    }

    fn scope_ended(&self, end: &ScopeEnd<'_>) {
        // `testing::measure` hands its report to the test alone.
        if end.is_measurement() {
            return;
        }
        self.counts.offered.fetch_add(1, Ordering::Relaxed);
        // Full or disconnected: dropped, never waited for.
        if self.queue.try_send(Message::Ended(end.keep(), std::time::SystemTime::now())).is_err() {
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl JsonLines {
    /// Reports to `path`, at most 64 MiB per file, three rotated files kept.
    pub fn builder(path: impl Into<PathBuf>) -> JsonLinesBuilder {
        JsonLinesBuilder { path: path.into(), max_bytes: 64 << 20, keep: 3 }
    }

    /// Waits until every line queued so far is written.
    pub fn flush(&self) {
        let (done, wait) = sync_channel(1);
        if let Some(queue) = &self.queue
            && queue.send(Message::Flush(done)).is_ok()
        {
            let _ = wait.recv();
        }
    }

    /// Lines written so far.
    #[must_use]
    pub fn written(&self) -> u64 {
        self.counts.written.load(Ordering::Relaxed)
    }

    /// Reports not written: the queue was full, a line was larger than a
    /// whole file, or the file could not be written (logged once).
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.counts.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for JsonLines {
    fn drop(&mut self) {
        observe::unregister(self.observer);
        if self.counts.offered.load(Ordering::Relaxed) == 0 {
            tracing::warn!(
                target: "zen",
                "zen's JsonLines was dropped before any scope ended, and wrote nothing: keep the handle `open` returned for as long as reports should be written"
            );
        }
        if let Some(queue) = self.queue.take() {
            let _ = queue.send(Message::Stop);
        }
        if let Some(writer) = self.writer.take()
            && let Ok(late) = writer.join()
            && late > 0
        {
            tracing::warn!(
                target: "zen",
                reports = late,
                "zen's JsonLines stopped while scopes were still ending: their reports were not written"
            );
        }
    }
}

impl JsonLinesBuilder {
    /// The largest a file may grow, in bytes: at least [`MIN_BYTES`]
    /// (4 KiB), or [`open`](Self::open) refuses it.
    #[must_use]
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// How many rotated files to keep beside the current one (`0`: none).
    #[must_use]
    pub fn keep(mut self, files: u32) -> Self {
        self.keep = files;
        self
    }

    /// Opens (appends to) the file, starts the writer and registers the sink.
    ///
    /// # Errors
    /// `max_bytes` is under [`MIN_BYTES`] (most reports would not fit), or
    /// the file cannot be opened for appending.
    pub fn open(self) -> io::Result<JsonLines> {
        if self.max_bytes < MIN_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "JsonLines::max_bytes({}) is too small for {}: a file must hold at least {MIN_BYTES} bytes",
                    self.max_bytes,
                    self.path.display()
                ),
            ));
        }
        let file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        let size = file.metadata()?.len();
        let (queue, lines) = sync_channel(QUEUE);
        let counts = Arc::new(Counts::default());
        let mut out = Output {
            path: self.path,
            max_bytes: self.max_bytes,
            keep: self.keep,
            file,
            size,
            failed: false,
            rotation_failed: None,
        };
        let writer_counts = Arc::clone(&counts);
        let writer =
            std::thread::Builder::new().name("zen-jsonl".into()).spawn(move || out.run(&lines, &writer_counts))?;
        let observer = observe::register(Handing { queue: queue.clone(), counts: Arc::clone(&counts) });
        Ok(JsonLines { observer, queue: Some(queue), writer: Some(writer), counts })
    }
}

/// The writer thread's file.
struct Output {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    file: File,
    size: u64,
    failed: bool,
    /// When a rotation last failed: tried again [`RETRY_ROTATION`] later.
    /// Lines are dropped meanwhile.
    rotation_failed: Option<std::time::Instant>,
}

impl Output {
    /// Writes until told to stop; how many scopes were handed over after
    /// that (by a hook still running on another thread), not written.
    fn run(&mut self, lines: &Receiver<Message>, counts: &Counts) -> u64 {
        for message in lines {
            match message {
                Message::Ended(scope, at) => {
                    let line = scope.report().to_json_at(at);
                    drop(scope);
                    let written = self.write(&line);
                    match written {
                        Ok(true) => {
                            counts.written.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(false) => {
                            counts.dropped.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            counts.dropped.fetch_add(1, Ordering::Relaxed);
                            if !self.failed {
                                self.failed = true;
                                tracing::warn!(target: "zen", path = %self.path.display(), error = %e, "zen cannot write reports to the file");
                            }
                        }
                    }
                }
                Message::Flush(done) => {
                    let _ = self.file.flush();
                    let _ = done.send(());
                }
                Message::Stop => {
                    return lines.try_iter().filter(|late| matches!(late, Message::Ended(..))).count() as u64;
                }
            }
        }
        0
    }

    /// Writes one line, rotating first if it would pass `max_bytes`;
    /// `false` when the line is larger than a whole file.
    fn write(&mut self, line: &str) -> io::Result<bool> {
        let len = line.len() as u64 + 1;
        if len > self.max_bytes {
            return Ok(false);
        }
        if self.size + len > self.max_bytes {
            if self.rotation_failed.is_some_and(|at| at.elapsed() < RETRY_ROTATION) {
                return Ok(false);
            }
            if let Err(e) = self.rotate() {
                self.rotation_failed = Some(std::time::Instant::now());
                return Err(e);
            }
            self.rotation_failed = None;
        }
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        self.file.write_all(&bytes)?;
        self.size += len;
        Ok(true)
    }

    fn rotate(&mut self) -> io::Result<()> {
        let nth = |n: u32| -> PathBuf {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{n}"));
            p.into()
        };
        // A file moved or removed meanwhile (by logrotate, by hand, or by a
        // rotation that failed after moving it) is not an error: no file, no
        // rotation, so that retrying a failed rotation never moves the kept
        // files further along; a new file is opened.
        if self.path.exists() {
            if self.keep == 0 {
                remove_if_there(&self.path)?;
            } else {
                remove_if_there(&nth(self.keep))?;
                for n in (1..self.keep).rev() {
                    rename_if_there(&nth(n), &nth(n + 1))?;
                }
                rename_if_there(&self.path, &nth(1))?;
            }
        }
        self.file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        self.size = self.file.metadata()?.len();
        Ok(())
    }
}

fn remove_if_there(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn rename_if_there(from: &Path, to: &Path) -> io::Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;

    use super::Output;

    #[test]
    fn rotation_keeps_files_under_the_limit_and_survives_a_file_moved_away() {
        let dir = std::env::temp_dir().join(format!("zen-jsonl-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.jsonl");
        let _ = std::fs::remove_file(&path);
        let file = OpenOptions::new().create(true).append(true).open(&path).unwrap();
        let mut out = Output {
            path: path.clone(),
            max_bytes: 4096,
            keep: 1,
            file,
            size: 0,
            failed: false,
            rotation_failed: None,
        };
        let line = "x".repeat(999);
        for _ in 0..5 {
            assert!(out.write(&line).unwrap());
        }
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            1000,
            "four lines filled the file, the fifth began another"
        );
        assert_eq!(std::fs::metadata(dir.join("r.jsonl.1")).unwrap().len(), 4000);
        // Moved away by another program: the next rotation does not fail.
        std::fs::remove_file(&path).unwrap();
        std::fs::remove_file(dir.join("r.jsonl.1")).unwrap();
        for _ in 0..8 {
            assert!(out.write(&line).unwrap());
        }
        assert!(std::fs::metadata(&path).unwrap().len() <= 4096);
        assert!(!out.write(&"y".repeat(5000)).unwrap(), "a line larger than a whole file is dropped");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
