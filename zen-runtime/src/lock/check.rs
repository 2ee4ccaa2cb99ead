//! What a run used against what the lock holds: regressions (a check
//! fails), room to tighten, and the lock `update` and `reset` write.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::file::{Entry, LockFile, Pattern};

/// A statement, shortened for one line of a diff.
fn short(statement: &str) -> String {
    const MAX: usize = 100;
    if statement.chars().count() <= MAX {
        return statement.to_owned();
    }
    let cut: String = statement.chars().take(MAX).collect();
    format!("{cut}…")
}

/// What a finding is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum About {
    /// The scope's queries.
    Queries,
    /// Its peak memory band.
    Memory,
    /// The runs of one statement.
    Statement,
    /// An N+1 suspect, a duplicate or a repeated call.
    Found(Pattern),
    /// Calls to one host.
    Host,
}

impl About {
    /// Its name in a verdict file.
    pub(crate) fn key(self) -> &'static str {
        match self {
            About::Queries => "queries",
            About::Memory => "memory_kib",
            About::Statement => "statement",
            About::Found(pattern) => pattern.key(),
            About::Host => "http_calls",
        }
    }
}

/// One figure of a scope that moved against its entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Finding {
    /// The phrase of a diff: `3 → 4 queries`, `new: SELECT ...`.
    pub(crate) phrase: String,
    pub(crate) about: About,
    /// The statement's fingerprint, or the host.
    pub(crate) subject: Option<String>,
    /// The entry's figure (`None`: not in it) and the run's (`None`: gone).
    pub(crate) locked: Option<u64>,
    pub(crate) seen: Option<u64>,
    /// Where user code runs it, `function (path:line)`, when known.
    pub(crate) site: Option<String>,
}

impl Finding {
    fn figure(about: About, locked: Option<u64>, seen: Option<u64>, phrase: String) -> Finding {
        Finding { phrase, about, subject: None, locked, seen, site: None }
    }

    fn of(about: About, subject: &str, locked: Option<u64>, seen: Option<u64>, phrase: String) -> Finding {
        Finding { phrase, about, subject: Some(subject.to_owned()), locked, seen, site: None }
    }
}

/// What exceeds the locked entry, and what is below it. A statement that
/// grew or is new carries where it first ran, if the run kept it.
pub(crate) fn compare(locked: &Entry, seen: &Entry) -> (Vec<Finding>, Vec<Finding>) {
    let (mut over, mut under) = (Vec::new(), Vec::new());
    let (l, s) = (locked.queries, seen.queries);
    if s != l {
        let f = Finding::figure(About::Queries, Some(l), Some(s), format!("{l} → {s} queries"));
        if s > l { over.push(f) } else { under.push(f) }
    }
    // Peak memory moves a band from run to run (a cache filled first, a
    // buffer grown once): more than one band up is a regression.
    match (locked.memory_kib, seen.memory_kib) {
        (Some(l), Some(s)) if s > l.saturating_mul(2) => over.push(Finding::figure(
            About::Memory,
            Some(l),
            Some(s),
            format!("{l} → {s} KiB of memory (band, more than one up)"),
        )),
        (Some(l), Some(s)) if s < l => {
            under.push(Finding::figure(About::Memory, Some(l), Some(s), format!("{l} → {s} KiB of memory (band)")));
        }
        _ => {}
    }
    for (statement, &n) in &seen.statements {
        let site = seen.sites.get(statement).cloned();
        let mut f = match locked.statements.get(statement) {
            None => Finding::of(About::Statement, statement, None, Some(n), format!("new: {}", short(statement))),
            Some(&l) if n != l => {
                Finding::of(About::Statement, statement, Some(l), Some(n), format!("{l} → {n} of {}", short(statement)))
            }
            Some(_) => continue,
        };
        if f.locked.is_none_or(|l| n > l) {
            f.site = site;
            over.push(f);
        } else {
            under.push(f);
        }
    }
    for statement in locked.statements.keys().filter(|s| !seen.statements.contains_key(*s)) {
        let l = locked.statements[statement];
        under.push(Finding::of(About::Statement, statement, Some(l), None, format!("gone: {}", short(statement))));
    }
    for ((pattern, statement), site) in &seen.found {
        if !locked.found.contains_key(&(*pattern, Arc::clone(statement))) {
            let phrase = format!("new {} at {site}: {}", pattern.phrase(), short(statement));
            let n = seen.statements.get(statement).copied();
            let found = Finding::of(About::Found(*pattern), statement, None, n, phrase);
            over.push(Finding { site: Some(site.clone()), ..found });
        }
    }
    for (pattern, statement) in locked.found.keys().filter(|k| !seen.found.contains_key(*k)) {
        let phrase = format!("{} gone: {}", pattern.phrase(), short(statement));
        under.push(Finding::of(About::Found(*pattern), statement, None, None, phrase));
    }
    for (host, &n) in &seen.http_calls {
        match locked.http_calls.get(host) {
            None => over.push(Finding::of(About::Host, host, None, Some(n), format!("new: {n} calls to {host}"))),
            Some(&l) if n > l => {
                over.push(Finding::of(About::Host, host, Some(l), Some(n), format!("{l} → {n} calls to {host}")));
            }
            Some(&l) if n < l => {
                under.push(Finding::of(About::Host, host, Some(l), Some(n), format!("{l} → {n} calls to {host}")));
            }
            Some(_) => {}
        }
    }
    (over, under)
}

/// How a scope of the run stands against the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Within its entry (it may have room to tighten).
    Passed,
    /// It used more than its entry.
    Regressed,
    /// The lock has no entry for it.
    New,
}

/// One scope of one test, judged.
#[derive(Clone, Debug)]
pub(crate) struct Judged {
    pub(crate) test: String,
    pub(crate) scope: String,
    pub(crate) verdict: Verdict,
    /// What grew (a regression) and what shrank (room to tighten).
    pub(crate) over: Vec<Finding>,
    pub(crate) under: Vec<Finding>,
}

impl Judged {
    /// `test › scope: phrase, phrase`.
    pub(crate) fn line(&self, findings: &[Finding]) -> String {
        let at = format!("{} › {}", self.test, self.scope);
        if findings.is_empty() {
            return at;
        }
        let phrases: Vec<&str> = findings.iter().map(|f| f.phrase.as_str()).collect();
        format!("{at}: {}", phrases.join(", "))
    }
}

/// The outcome of comparing a run with the lock: every scope seen, sorted
/// by test and scope.
#[derive(Default, Debug)]
pub(crate) struct Outcome {
    pub(crate) scopes: Vec<Judged>,
}

impl Outcome {
    /// `test › scope: what grew`, one per scope that used more.
    pub(crate) fn regressions(&self) -> Vec<String> {
        self.scopes.iter().filter(|j| j.verdict == Verdict::Regressed).map(|j| j.line(&j.over)).collect()
    }

    /// Scopes the lock does not know.
    pub(crate) fn unknown(&self) -> Vec<String> {
        self.scopes.iter().filter(|j| j.verdict == Verdict::New).map(|j| j.line(&[])).collect()
    }

    /// `test › scope: what shrank`.
    pub(crate) fn can_tighten(&self) -> Vec<String> {
        self.scopes.iter().filter(|j| !j.under.is_empty()).map(|j| j.line(&j.under)).collect()
    }
}

/// A test key with a test's name; without one, the scopes ended off a
/// test's thread, or in a program that is not a test (an example run by a
/// test), and several processes may each see part of it.
fn named(test: &str) -> bool {
    test.contains("::")
}

/// `true` when a thread's name is a test's: libtest names each test's
/// thread after the test, a path of identifiers; runtimes' and pools'
/// threads (`tokio-rt-worker`, `sqlx-sqlite-worker-0`) and `main` are not.
pub(crate) fn is_test_name(thread: &str) -> bool {
    thread != "main" && !thread.is_empty() && thread.chars().all(|c| c.is_alphanumeric() || c == '_' || c == ':')
}

/// Compares every scope seen in the run with the lock. With `widening`
/// (`update`), a scope without a test's name that used more is not a
/// regression: the lock takes the most of each run.
pub(crate) fn check(lock: &LockFile, seen: &BTreeMap<String, BTreeMap<String, Entry>>, widening: bool) -> Outcome {
    let mut outcome = Outcome::default();
    for (test, scopes) in seen {
        for (scope, entry) in scopes {
            let (verdict, over, under) = match lock.entries.get(test).and_then(|s| s.get(scope)) {
                // `update` adds it.
                None if widening => (Verdict::Passed, Vec::new(), Vec::new()),
                None => (Verdict::New, Vec::new(), Vec::new()),
                Some(locked) => {
                    let (over, under) = compare(locked, entry);
                    if !over.is_empty() && (!widening || named(test)) {
                        (Verdict::Regressed, over, under)
                    } else {
                        (Verdict::Passed, Vec::new(), under)
                    }
                }
            };
            outcome.scopes.push(Judged { test: test.clone(), scope: scope.clone(), verdict, over, under });
        }
    }
    outcome
}

/// The lock after this run: new scopes added; with `accept`, every scope
/// seen replaced by what it used (`reset`); without, only scopes that used
/// no more than their entry replaced, which tightens them (`update`).
/// Scopes not seen are kept. A test key without a test's name is only ever
/// widened, by `reset` too: other processes of the run may see more of it
/// (delete its entries to shrink them).
pub(crate) fn merge(lock: &mut LockFile, seen: &BTreeMap<String, BTreeMap<String, Entry>>, accept: bool) {
    for (test, scopes) in seen {
        let locked_scopes = lock.entries.entry(test.clone()).or_default();
        for (scope, entry) in scopes {
            match locked_scopes.get_mut(scope) {
                None => {
                    locked_scopes.insert(scope.clone(), entry.clone());
                }
                Some(locked) if !named(test) => locked.widen(entry.clone()),
                Some(locked) if accept => *locked = entry.clone(),
                Some(locked) if compare(locked, entry).0.is_empty() => {
                    // Tightened, but never a band up: memory is allowed one
                    // band of noise above its entry, not a ratchet.
                    let memory_kib = match (locked.memory_kib, entry.memory_kib) {
                        (Some(l), Some(e)) => Some(l.min(e)),
                        (l, e) => l.or(e),
                    };
                    *locked = Entry { memory_kib, ..entry.clone() };
                }
                Some(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::{check, compare, merge};
    use crate::lock::file::{Entry, LockFile, Pattern};

    fn entry(queries: u64, statements: &[(&str, u64)]) -> Entry {
        Entry { queries, statements: statements.iter().map(|(s, n)| ((*s).into(), *n)).collect(), ..Entry::default() }
    }

    #[test]
    fn a_diff_says_what_grew_and_what_is_new() {
        let locked = entry(3, &[("SELECT * FROM articles WHERE slug = ?", 1), ("SELECT * FROM users", 2)]);
        let mut seen = entry(4, &[("SELECT * FROM articles WHERE slug = ?", 1), ("SELECT * FROM users", 2)]);
        seen.statements.insert("SELECT * FROM tags WHERE article_id = ?".into(), 1);
        seen.found.insert((Pattern::NPlusOne, "SELECT * FROM users".into()), "app::list (src/articles.rs:42)".into());
        let (over, under) = compare(&locked, &seen);
        let over: Vec<&str> = over.iter().map(|f| f.phrase.as_str()).collect();
        assert_eq!(
            over,
            [
                "3 → 4 queries",
                "new: SELECT * FROM tags WHERE article_id = ?",
                "new N+1 at app::list (src/articles.rs:42): SELECT * FROM users"
            ]
        );
        assert!(under.is_empty());
        let (over, under) = compare(&seen, &locked);
        assert!(over.is_empty(), "{over:?}");
        assert_eq!(under.len(), 3, "{under:?}");
    }

    #[test]
    fn memory_may_move_one_band_up_and_is_never_raised_by_update() {
        let with = |kib| Entry { memory_kib: Some(kib), ..entry(1, &[]) };
        assert!(compare(&with(64), &with(128)).0.is_empty(), "one band up is noise");
        assert_eq!(compare(&with(64), &with(256)).0[0].phrase, "64 → 256 KiB of memory (band, more than one up)");
        assert_eq!(compare(&with(128), &with(64)).1[0].phrase, "128 → 64 KiB of memory (band)");
        let mut lock = LockFile::default();
        lock.entries.entry("app::t".into()).or_default().insert("GET /a".into(), with(64));
        let mut seen: BTreeMap<String, BTreeMap<String, Entry>> = BTreeMap::new();
        seen.entry("app::t".into()).or_default().insert("GET /a".into(), Entry { queries: 0, ..with(128) });
        merge(&mut lock, &seen, false);
        let e = &lock.entries["app::t"]["GET /a"];
        assert_eq!((e.queries, e.memory_kib), (0, Some(64)), "tightened, memory kept at its band");
    }

    #[test]
    fn only_a_tests_own_thread_names_a_test() {
        assert!(super::is_test_name("db_sqlite::counts_every_query"));
        assert!(super::is_test_name("counts_every_query"));
        for other in ["main", "tokio-rt-worker", "tokio-runtime-worker", "sqlx-sqlite-worker-0", "zen-jsonl", ""] {
            assert!(!super::is_test_name(other), "{other}");
        }
    }

    #[test]
    fn update_adds_and_tightens_but_never_loosens_and_reset_accepts() {
        let mut lock = LockFile::default();
        let test = "app::lists".to_owned();
        lock.entries.entry(test.clone()).or_default().insert("GET /a".into(), entry(3, &[]));
        lock.entries.entry(test.clone()).or_default().insert("GET /b".into(), entry(3, &[]));
        lock.entries.entry(test.clone()).or_default().insert("GET /unseen".into(), entry(9, &[]));
        let mut seen: BTreeMap<String, BTreeMap<String, Entry>> = BTreeMap::new();
        seen.entry(test.clone()).or_default().insert("GET /a".into(), entry(2, &[]));
        seen.entry(test.clone()).or_default().insert("GET /b".into(), entry(4, &[]));
        seen.entry(test.clone()).or_default().insert("GET /c".into(), entry(1, &[]));
        let outcome = check(&lock, &seen, false);
        assert_eq!(outcome.regressions(), ["app::lists › GET /b: 3 → 4 queries"]);
        assert_eq!(outcome.unknown(), ["app::lists › GET /c"]);
        assert_eq!(outcome.can_tighten(), ["app::lists › GET /a: 3 → 2 queries"]);

        let mut updated = lock.clone();
        merge(&mut updated, &seen, false);
        let scopes = &updated.entries[&test];
        assert_eq!(
            [
                scopes["GET /a"].queries,
                scopes["GET /b"].queries,
                scopes["GET /c"].queries,
                scopes["GET /unseen"].queries
            ],
            [2, 3, 1, 9]
        );
        merge(&mut lock, &seen, true);
        assert_eq!(lock.entries[&test]["GET /b"].queries, 4);
    }
}
