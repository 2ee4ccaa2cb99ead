//! The verdict of a run as JSON lines (`ZEN_LOCK_REPORT`): one line per
//! scope each test process judged, appended under a lock on the file, so
//! the many processes of one `cargo test` write one file that `zen lock
//! report` turns into SARIF, GitHub annotations, JUnit or Markdown. Paths
//! are relative to the repository (the nearest directory above the lock
//! that holds `.git`).
//!
//! ```json
//! {"zen_lock_verdict":1,"lock":"zen.lock","line":12,"test":"app::lists","scope":"GET /articles",
//!  "verdict":"regressed","over":[{"about":"n_plus_one","phrase":"new N+1 at ...","subject":"SELECT ...",
//!  "locked":null,"seen":6,"site":{"function":"app::list","file":"src/articles.rs","line":42}}],"under":[]}
//! ```

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::check::{Finding, Outcome, Verdict};

/// The version of the line's shape, its first key.
const VERSION: u64 = 1;

/// Appends a line per scope of `outcome` to `to`.
pub(crate) fn append(to: &Path, lock: &Path, outcome: &Outcome) -> std::io::Result<()> {
    if outcome.scopes.is_empty() {
        return Ok(());
    }
    let places = Places::new(lock);
    let to = places.resolve(to);
    let text = std::fs::read_to_string(lock).unwrap_or_default();
    let mut out = String::new();
    for judged in &outcome.scopes {
        let verdict = match judged.verdict {
            Verdict::Passed => "passed",
            Verdict::Regressed => "regressed",
            Verdict::New => "new",
        };
        let line = super::file::entry_line(&text, &judged.test, &judged.scope);
        let findings = |all: &[Finding]| -> Vec<Value> { all.iter().map(|f| places.finding(f)).collect() };
        let record = json!({
            "zen_lock_verdict": VERSION,
            "lock": places.lock,
            "line": line,
            "test": judged.test,
            "scope": judged.scope,
            "verdict": verdict,
            "over": findings(&judged.over),
            "under": findings(&judged.under),
        });
        out.push_str(&record.to_string());
        out.push('\n');
    }
    if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&to)?;
    file.lock()?;
    file.write_all(out.as_bytes())?;
    file.sync_data()
}

/// Where the repository is, and the lock and the workspace in it.
struct Places {
    /// The repository's directory, if one holds the lock.
    root: Option<PathBuf>,
    /// The directory a call site's path is relative to: the workspace's
    /// (the nearest above the lock whose `Cargo.toml` says `[workspace]`),
    /// else the lock's.
    workspace: PathBuf,
    /// The lock's directory, where a relative `ZEN_LOCK_REPORT` starts
    /// without a repository.
    dir: PathBuf,
    /// The lock's path, relative to the repository.
    lock: String,
}

impl Places {
    fn new(lock: &Path) -> Places {
        let lock = std::fs::canonicalize(lock).unwrap_or_else(|_| lock.to_owned());
        let dir = lock.parent().map(Path::to_owned).unwrap_or_default();
        let mut root = None;
        let mut workspace = None;
        for dir in lock.ancestors().skip(1) {
            let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap_or_default();
            if workspace.is_none() && manifest.lines().any(|l| l.trim() == "[workspace]") {
                workspace = Some(dir.to_owned());
            }
            if dir.join(".git").exists() {
                root = Some(dir.to_owned());
                break;
            }
        }
        let name = lock.file_name().map(PathBuf::from).unwrap_or_default();
        let relative = root.as_deref().and_then(|r| lock.strip_prefix(r).ok()).unwrap_or(&name);
        Places { lock: slashes(relative), root, workspace: workspace.unwrap_or_else(|| dir.clone()), dir }
    }

    /// `ZEN_LOCK_REPORT` as a path: a relative one from the repository's
    /// root (cargo runs each package's tests in its own directory), else
    /// from the lock's directory.
    fn resolve(&self, to: &Path) -> PathBuf {
        if to.is_absolute() { to.to_owned() } else { self.root.as_ref().unwrap_or(&self.dir).join(to) }
    }

    /// A call site's path, relative to the workspace, as relative to the
    /// repository.
    fn file(&self, file: &str) -> String {
        let (Some(root), false) = (&self.root, file.starts_with('/')) else { return file.to_owned() };
        let path = self.workspace.join(file);
        match path.strip_prefix(root) {
            Ok(relative) if path.is_file() => slashes(relative),
            _ => file.to_owned(),
        }
    }

    fn finding(&self, f: &Finding) -> Value {
        // A site with no place ("an unknown call site", a program without
        // debug information) says nothing a reviewer can open.
        let site = f.site.as_deref().and_then(|site| match split(site) {
            (function, Some((file, line))) => {
                Some(json!({ "function": function, "file": self.file(file), "line": line }))
            }
            (_, None) => None,
        });
        json!({
            "about": f.about.key(),
            "phrase": f.phrase,
            "subject": f.subject,
            "locked": f.locked,
            "seen": f.seen,
            "site": site,
        })
    }
}

fn slashes(path: &Path) -> String {
    path.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

/// `function (path:line)` as its function and place.
fn split(site: &str) -> (&str, Option<(&str, u32)>) {
    let place = site.strip_suffix(')').and_then(|s| s.rsplit_once(" (")).and_then(|(function, place)| {
        let (file, line) = place.rsplit_once(':')?;
        // Debug information without a line says 0.
        Some((function, (file, line.parse().ok().filter(|l: &u32| *l > 0)?)))
    });
    match place {
        Some((function, place)) => (function, Some(place)),
        None => (site, None),
    }
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn a_call_site_splits_into_function_file_and_line() {
        assert_eq!(split("app::list (src/articles.rs:42)"), ("app::list", Some(("src/articles.rs", 42))));
        assert_eq!(
            split("<app::Repo as app::Store>::get (src/repo.rs:7)"),
            ("<app::Repo as app::Store>::get", Some(("src/repo.rs", 7)))
        );
        assert_eq!(split("app::list"), ("app::list", None));
        assert_eq!(split("app::list (src/articles.rs:0)"), ("app::list (src/articles.rs:0)", None));
        assert_eq!(split("unknown (no symbols)"), ("unknown (no symbols)", None));
    }
}
