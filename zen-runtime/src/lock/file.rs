//! `zen.lock` as text: read (every mistake an error naming the file and
//! line) and written (sorted, one value per line, so diffs are small and
//! merges easy).
//!
//! ```toml
//! version = 1
//!
//! [tests."articles::lists_every_article"."GET /articles"]
//! queries = 2
//! memory_kib = 64
//!
//! [tests."articles::lists_every_article"."GET /articles".statements]
//! "SELECT * FROM articles" = 1
//! "SELECT * FROM tags WHERE article_id IN (?)" = 1
//!
//! [[exempt]]
//! scope = "GET /feed"
//! n_plus_one = true
//! statement = "SELECT * FROM users WHERE id = ?"
//! reason = "the feed is rewritten in #412"
//! until = "2027-03-31"
//! ```

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::collections::HashSet;
use std::fmt::{self, Write as _};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::tracker::budget::Budget;
use crate::tracker::report::{Date, Exempted, Exemption, Matches};

/// What one scope of one test used: the most of each over the run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) queries: u64,
    /// Peak memory rounded up to its band, in KiB (see [`band`]).
    pub(crate) memory_kib: Option<u64>,
    /// Times each statement ran, by fingerprint (shared: the same
    /// statements recur across a lock's tests).
    pub(crate) statements: BTreeMap<Arc<str>, u64>,
    /// The patterns found (by [`Pattern`]): N+1 suspects, duplicates and
    /// repeated calls, each by its statement (or call), with where it was
    /// issued from.
    /// (One map for the three: an entry is small, and a lock holds many.)
    pub(crate) found: BTreeMap<(Pattern, Arc<str>), String>,
    /// External calls per host.
    pub(crate) http_calls: BTreeMap<String, u64>,
    /// Where user code first ran each statement that used more than its
    /// entry, `function (path:line)`: for the verdict, never written to
    /// the file.
    pub(crate) sites: BTreeMap<Arc<str>, String>,
}

impl Entry {
    /// Becomes the most of each figure of the two.
    pub(crate) fn widen(&mut self, e: Entry) {
        self.queries = self.queries.max(e.queries);
        self.memory_kib = self.memory_kib.max(e.memory_kib);
        for (k, v) in e.statements {
            let n = self.statements.entry(k).or_default();
            *n = (*n).max(v);
        }
        for (k, v) in e.http_calls {
            let n = self.http_calls.entry(k).or_default();
            *n = (*n).max(v);
        }
        for (k, v) in e.found {
            self.found.entry(k).or_insert(v);
        }
        for (k, v) in e.sites {
            self.sites.entry(k).or_insert(v);
        }
    }
}

/// A pattern found in a scope, kept in its entry by statement or call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Pattern {
    /// A statement run past the N+1 threshold.
    NPlusOne,
    /// A statement run again with the same values.
    Duplicate,
    /// An external call run past the N+1 threshold.
    RepeatedCall,
}

impl Pattern {
    pub(crate) const ALL: [Pattern; 3] = [Pattern::NPlusOne, Pattern::Duplicate, Pattern::RepeatedCall];

    /// Its key in an entry, and in a verdict.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Pattern::NPlusOne => "n_plus_one",
            Pattern::Duplicate => "duplicates",
            Pattern::RepeatedCall => "repeated_calls",
        }
    }

    /// How a diff names it.
    pub(crate) fn phrase(self) -> &'static str {
        match self {
            Pattern::NPlusOne => "N+1",
            Pattern::Duplicate => "duplicate",
            Pattern::RepeatedCall => "repeated call",
        }
    }
}

/// A whole lock file.
#[derive(Clone, Debug, Default)]
pub(crate) struct LockFile {
    /// By test, then by scope name.
    pub(crate) entries: BTreeMap<String, BTreeMap<String, Entry>>,
    /// With the scope they apply to (`None`: every scope).
    pub(crate) exemptions: Vec<(Option<String>, Exemption)>,
}

/// The smallest memory band, in KiB: below it, peaks vary from run to run.
const MIN_BAND_KIB: u64 = 64;

/// Peak memory rounded up to a power of two KiB, at least 64 KiB: a band,
/// so that small changes from run to run do not fail a check.
pub(crate) fn band(peak_bytes: u64) -> u64 {
    peak_bytes.div_ceil(1024).max(MIN_BAND_KIB).next_power_of_two()
}

/// A lock file that cannot be used, with where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockError {
    /// The file.
    pub path: PathBuf,
    /// The line, from 1; 0 when the file could not be read at all.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.path.display(), self.message)
        } else {
            write!(f, "{}:{}: {}", self.path.display(), self.line, self.message)
        }
    }
}

impl std::error::Error for LockError {}

/// A lock file's bytes as text; a byte that is not UTF-8 (a file cut
/// inside a character) is an error naming its line.
pub(crate) fn text(path: &Path, bytes: Vec<u8>) -> Result<String, LockError> {
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..valid].iter().filter(|&&b| b == b'\n').count() + 1;
        LockError {
            path: path.to_owned(),
            line,
            message: "a byte that is not UTF-8 (was the file cut short, or written by another program?)".into(),
        }
    })
}

/// Reads one section of the file: `text[base..]` holds it, and errors name
/// their line in the whole file.
struct Reader<'a> {
    path: &'a Path,
    text: &'a str,
    base: usize,
    /// Every fingerprint read so far, kept once.
    shared: &'a RefCell<HashSet<Arc<str>>>,
}

impl Reader<'_> {
    fn error(&self, at: usize, message: impl Into<String>) -> LockError {
        let at = (self.base + at).min(self.text.len());
        let line = self.text.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        LockError { path: self.path.to_owned(), line, message: message.into() }
    }

    fn count(&self, value: &Spanned<DeValue<'_>>, what: &str) -> Result<u64, LockError> {
        let bad = || self.error(value.span().start, format!("{what} must be a whole number of 0 or more"));
        let int = value.get_ref().as_integer().ok_or_else(bad)?;
        let digits = int.as_str().replace('_', "");
        let digits = digits.trim_start_matches("0x").trim_start_matches("0o").trim_start_matches("0b");
        u64::from_str_radix(digits, int.radix()).map_err(|_| bad())
    }

    fn string<'v>(&self, value: &'v Spanned<DeValue<'_>>, what: &str) -> Result<&'v str, LockError> {
        value.get_ref().as_str().ok_or_else(|| self.error(value.span().start, format!("{what} must be a string")))
    }

    /// A string that is not blank: an empty `call_site` would match every
    /// call site.
    fn text<'v>(&self, value: &'v Spanned<DeValue<'_>>, what: &str) -> Result<&'v str, LockError> {
        let text = self.string(value, what)?;
        if text.trim().is_empty() {
            return Err(self.error(value.span().start, format!("{what} cannot be empty")));
        }
        Ok(text)
    }

    fn table<'v, 'i>(&self, value: &'v Spanned<DeValue<'i>>, what: &str) -> Result<&'v DeTable<'i>, LockError> {
        value.get_ref().as_table().ok_or_else(|| self.error(value.span().start, format!("{what} must be a table")))
    }

    fn counts<K: Ord>(
        &self,
        value: &Spanned<DeValue<'_>>,
        what: &str,
        key: impl Fn(&str) -> K,
    ) -> Result<BTreeMap<K, u64>, LockError> {
        let mut out = BTreeMap::new();
        for (k, v) in self.table(value, what)? {
            out.insert(key(k.get_ref()), self.count(v, &format!("`{}` in {what}", k.get_ref()))?);
        }
        Ok(out)
    }

    /// `text`, shared with every other key of the same text.
    fn share(&self, text: &str) -> Arc<str> {
        let mut shared = self.shared.borrow_mut();
        if let Some(kept) = shared.get(text) {
            return Arc::clone(kept);
        }
        let kept: Arc<str> = Arc::from(text);
        shared.insert(Arc::clone(&kept));
        kept
    }

    /// Fills `entry` with the keys of `value` (a section may hold some of
    /// them: `[...."GET /a"]`, then `[...."GET /a".statements]`).
    fn entry(&self, value: &Spanned<DeValue<'_>>, entry: &mut Entry) -> Result<(), LockError> {
        for (k, v) in self.table(value, "a scope's entry")? {
            match &**k.get_ref() {
                "queries" => entry.queries = self.count(v, "`queries`")?,
                "memory_kib" => entry.memory_kib = Some(self.count(v, "`memory_kib`")?),
                "statements" => entry.statements.append(&mut self.counts(v, "`statements`", |k| self.share(k))?),
                "http_calls" => entry.http_calls.append(&mut self.counts(v, "`http_calls`", str::to_owned)?),
                key if let Some(pattern) = Pattern::ALL.into_iter().find(|p| p.key() == key) => {
                    for (fp, site) in self.table(v, &format!("`{key}`"))? {
                        let site = self.string(site, "a call site")?.to_owned();
                        entry.found.insert((pattern, self.share(fp.get_ref())), site);
                    }
                }
                other => {
                    return Err(self.error(
                        k.span().start,
                        format!(
                            "unknown key `{other}` in a scope's entry; expected `queries`, `memory_kib`, `statements`, `http_calls`, `n_plus_one`, `duplicates` or `repeated_calls`"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn exemption(&self, value: &Spanned<DeValue<'_>>) -> Result<(Option<String>, Exemption), LockError> {
        let at = value.span().start;
        let (mut scope, mut n_plus_one, mut budget, mut matches, mut reason, mut until) =
            (None, false, None, None, None, None);
        for (k, v) in self.table(value, "an `[[exempt]]` entry")? {
            match &**k.get_ref() {
                "scope" => scope = Some(self.string(v, "`scope`")?.to_owned()),
                "n_plus_one" => {
                    n_plus_one = v
                        .get_ref()
                        .as_bool()
                        .ok_or_else(|| self.error(v.span().start, "`n_plus_one` must be `true`"))?;
                }
                "budget" => {
                    let key = self.string(v, "`budget`")?;
                    let found = Budget::ALL.iter().find(|b| b.key() == key).ok_or_else(|| {
                        let keys: Vec<&str> = Budget::ALL.iter().map(|b| b.key()).collect();
                        self.error(
                            v.span().start,
                            format!("unknown budget `{key}`; expected one of {}", keys.join(", ")),
                        )
                    })?;
                    budget = Some(*found);
                }
                "statement" => matches = Some(Matches::Statement(Cow::Owned(self.text(v, "`statement`")?.to_owned()))),
                "call_site" => matches = Some(Matches::CallSite(Cow::Owned(self.text(v, "`call_site`")?.to_owned()))),
                "reason" => reason = Some(self.text(v, "`reason`")?.to_owned()),
                "until" => {
                    let text = match v.get_ref() {
                        DeValue::Datetime(d) => d.to_string(),
                        _ => self.string(v, "`until`")?.to_owned(),
                    };
                    until = Some(Date::parse(&text).ok_or_else(|| {
                        self.error(
                            v.span().start,
                            format!("`until` must be a date such as \"2027-03-31\", found `{text}`"),
                        )
                    })?);
                }
                other => {
                    return Err(self.error(
                        k.span().start,
                        format!("unknown key `{other}` in `[[exempt]]`; expected `scope`, `n_plus_one`, `budget`, `statement`, `call_site`, `reason` or `until`"),
                    ));
                }
            }
        }
        let what = match (n_plus_one, budget) {
            (true, None) => Exempted::NPlusOne,
            (false, Some(b)) => Exempted::Budget(b),
            _ => {
                return Err(
                    self.error(at, "an exemption needs exactly one of `n_plus_one = true` or `budget = \"...\"`")
                );
            }
        };
        let matches = matches
            .ok_or_else(|| self.error(at, "an exemption needs `statement = \"...\"` or `call_site = \"...\"`"))?;
        if matches!((what, &matches), (Exempted::Budget(_), Matches::CallSite(_))) {
            return Err(self.error(at, "an overrun is exempted by `statement`, not `call_site`"));
        }
        let reason =
            reason.filter(|r| !r.trim().is_empty()).ok_or_else(|| self.error(at, "an exemption needs a `reason`"))?;
        Ok((scope, Exemption { what, matches, reason: Cow::Owned(reason), until }))
    }
}

/// Reads a lock file, one section (a `[table]` header and its keys) at a
/// time: a lock of many megabytes never exists as a whole TOML document in
/// memory, only as what it holds. A section that does not read alone (a
/// multi-line string crossing a header, say), or keys before the first
/// header other than `version`, send the whole file to the TOML reader,
/// whose verdict stands. A key of a scope's entry defined twice, however
/// its tables were written, is an error, as TOML has it.
pub(crate) fn parse(path: &Path, text: &str) -> Result<LockFile, LockError> {
    let mut lock = LockFile::default();
    let mut defined = HashSet::new();
    let shared = RefCell::default();
    for (base, section) in sections(text) {
        let r = Reader { path, text, base, shared: &shared };
        let Ok(document) = DeTable::parse(section) else { return parse_whole(path, text) };
        let root = !section.trim_start().starts_with('[');
        if root && document.get_ref().keys().any(|k| &**k.get_ref() != "version") {
            return parse_whole(path, text);
        }
        read_document(&r, &document, &mut lock, &mut defined)?;
    }
    Ok(lock)
}

/// Each section of `text`, with where it starts: split before every line
/// that opens a table outside a multi-line string.
fn sections(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut starts = vec![0];
    let mut open: Option<&str> = None;
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        if open.is_none() && line.trim_start().starts_with('[') && at > 0 {
            starts.push(at);
        }
        for delimiter in ["\"\"\"", "\'\'\'"] {
            let n = line.matches(delimiter).count();
            if n % 2 == 1 && open.is_none_or(|o| o == delimiter) {
                open = if open.is_some() { None } else { Some(delimiter) };
            }
        }
        at += line.len();
    }
    starts.push(text.len());
    let windows: Vec<(usize, usize)> = starts.windows(2).map(|w| (w[0], w[1])).collect();
    windows.into_iter().filter(|(a, b)| a < b).map(move |(a, b)| (a, &text[a..b]))
}

/// The whole file as one TOML document: for what sections cannot say.
fn parse_whole(path: &Path, text: &str) -> Result<LockFile, LockError> {
    let shared = RefCell::default();
    let r = Reader { path, text, base: 0, shared: &shared };
    let document = DeTable::parse(text).map_err(|e| {
        let at = e.span().map_or(0, |s| s.start);
        r.error(at, e.message().trim().to_owned())
    })?;
    let mut lock = LockFile::default();
    read_document(&r, &document, &mut lock, &mut HashSet::new())?;
    Ok(lock)
}

/// Adds what a document (a whole file, or one section of it) holds;
/// `defined` holds a hash of each key of a scope's entry read so far.
fn read_document(
    r: &Reader<'_>,
    document: &Spanned<DeTable<'_>>,
    lock: &mut LockFile,
    defined: &mut HashSet<u64>,
) -> Result<(), LockError> {
    for (key, value) in document.get_ref() {
        match &**key.get_ref() {
            "version" => {
                if r.count(value, "`version`")? != 1 {
                    return Err(
                        r.error(value.span().start, "this zen.lock is of another version; expected `version = 1`")
                    );
                }
            }
            "exempt" => {
                let list = value
                    .get_ref()
                    .as_array()
                    .ok_or_else(|| r.error(value.span().start, "`exempt` must be `[[exempt]]` tables"))?;
                for item in list.iter() {
                    lock.exemptions.push(r.exemption(item)?);
                }
            }
            "tests" => {
                for (test, scopes) in r.table(value, "`tests`")? {
                    let test = test.get_ref();
                    let entries = lock.entries.entry(test.to_string()).or_default();
                    for (scope, entry) in r.table(scopes, &format!("`tests.\"{test}\"`"))? {
                        for (key, _) in r.table(entry, "a scope's entry")? {
                            let mut hash = std::hash::DefaultHasher::new();
                            (&**test, &**scope.get_ref(), &**key.get_ref()).hash(&mut hash);
                            if !defined.insert(hash.finish()) {
                                let (scope, key) = (scope.get_ref(), key.get_ref());
                                let what = format!("`{key}` of `tests.\"{test}\".\"{scope}\"` is defined twice");
                                return Err(r.error(entry.span().start, format!("{what} (a merge kept both sides?)")));
                            }
                        }
                        r.entry(entry, entries.entry(scope.get_ref().to_string()).or_default())?;
                    }
                }
            }
            other => {
                return Err(r.error(
                    key.span().start,
                    format!("unknown key `{other}`; a zen.lock holds `version`, `[tests.\"<test>\".\"<scope>\"]` entries and `[[exempt]]`"),
                ));
            }
        }
    }
    Ok(())
}

/// `text` as a TOML basic string.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The line (from 1) of the table of `test`'s `scope` in a lock `text`
/// as [`render`] writes it.
pub(crate) fn entry_line(text: &str, test: &str, scope: &str) -> Option<usize> {
    let head = format!("[tests.{}.{}]", quoted(test), quoted(scope));
    text.lines().position(|l| l.trim_end() == head).map(|i| i + 1)
}

/// A table of counts of a scope's entry, if it has any.
fn counts<K: AsRef<str>>(out: &mut String, head: &str, name: &str, counts: &BTreeMap<K, u64>) {
    if !counts.is_empty() {
        let _ = writeln!(out, "\n[{head}.{name}]");
        for (k, v) in counts {
            let _ = writeln!(out, "{} = {v}", quoted(k.as_ref()));
        }
    }
}

/// Writes a lock file: sorted by test, scope and key, one value per line.
pub(crate) fn render(lock: &LockFile) -> String {
    let mut out = String::from(
        "# zen.lock: what each test's scopes used. `ZEN_LOCK=check cargo test` fails when one uses more;\n\
         # `ZEN_LOCK=update` adds new scopes and tightens, `ZEN_LOCK=reset` accepts what the run used.\n\
         version = 1\n",
    );
    for (test, scopes) in &lock.entries {
        for (scope, e) in scopes {
            let head = format!("tests.{}.{}", quoted(test), quoted(scope));
            let _ = write!(out, "\n[{head}]\nqueries = {}\n", e.queries);
            if let Some(kib) = e.memory_kib {
                let _ = writeln!(out, "memory_kib = {kib}");
            }
            counts(&mut out, &head, "statements", &e.statements);
            counts(&mut out, &head, "http_calls", &e.http_calls);
            for pattern in Pattern::ALL {
                let mut found = e.found.iter().filter(|((p, _), _)| *p == pattern).peekable();
                if found.peek().is_some() {
                    let _ = writeln!(out, "\n[{head}.{}]", pattern.key());
                    for ((_, k), v) in found {
                        let _ = writeln!(out, "{} = {}", quoted(k), quoted(v));
                    }
                }
            }
        }
    }
    for (scope, e) in &lock.exemptions {
        out.push_str("\n[[exempt]]\n");
        if let Some(scope) = scope {
            let _ = writeln!(out, "scope = {}", quoted(scope));
        }
        match e.what {
            Exempted::NPlusOne => out.push_str("n_plus_one = true\n"),
            Exempted::Budget(b) => {
                let _ = writeln!(out, "budget = {}", quoted(b.key()));
            }
        }
        match &e.matches {
            Matches::Statement(s) => {
                let _ = writeln!(out, "statement = {}", quoted(s));
            }
            Matches::CallSite(s) => {
                let _ = writeln!(out, "call_site = {}", quoted(s));
            }
        }
        let _ = writeln!(out, "reason = {}", quoted(&e.reason));
        if let Some(until) = e.until {
            let _ = writeln!(out, "until = \"{until}\"");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{Entry, LockFile, Pattern, band, parse, render};
    use crate::tracker::report::{Date, Exempted, Exemption, Matches};

    fn sample() -> LockFile {
        let mut lock = LockFile::default();
        let mut e = Entry { queries: 3, memory_kib: Some(128), ..Entry::default() };
        e.statements.insert("SELECT \"a\" FROM t WHERE x = ?".into(), 2);
        e.statements.insert("SELECT 1".into(), 1);
        e.found
            .insert((Pattern::NPlusOne, "SELECT \"a\" FROM t WHERE x = ?".into()), "app::list (src/app.rs:42)".into());
        e.found.insert((Pattern::RepeatedCall, "GET api.test/users/{}".into()), "app::list (src/app.rs:50)".into());
        e.found.insert((Pattern::Duplicate, "SELECT 1".into()), "app::list (src/app.rs:51)".into());
        e.http_calls.insert("api.example.com".into(), 1);
        lock.entries.entry("app::lists".into()).or_default().insert("GET /items/{id}".into(), e);
        lock.entries.entry("app::other".into()).or_default().insert("job \\ with \"quotes\"".into(), Entry::default());
        lock.exemptions.push((
            Some("GET /feed".into()),
            Exemption {
                what: Exempted::NPlusOne,
                matches: Matches::Statement("SELECT * FROM users WHERE id = ?".into()),
                reason: "rewritten in #412".into(),
                until: Date::parse("2027-03-31"),
            },
        ));
        lock
    }

    #[test]
    fn what_is_written_reads_back_the_same_and_writes_the_same() {
        let text = render(&sample());
        let read = parse(Path::new("zen.lock"), &text).unwrap();
        assert_eq!(read.entries, sample().entries);
        assert_eq!(read.exemptions, sample().exemptions);
        assert_eq!(render(&read), text, "stable: writing what was read changes nothing");
    }

    #[test]
    fn a_broken_file_is_an_error_naming_the_file_and_line() {
        let text = render(&sample());
        let broken = text.replacen("queries = 3", "queries = three", 1);
        let line = broken.lines().position(|l| l.contains("three")).unwrap() + 1;
        let e = parse(Path::new("app/zen.lock"), &broken).unwrap_err();
        assert_eq!(e.line, line, "{e}");
        assert!(e.to_string().starts_with(&format!("app/zen.lock:{line}: ")), "{e}");
        let e = parse(Path::new("zen.lock"), &text.replacen("queries = 3", "queries = -3", 1)).unwrap_err();
        assert!(e.message.contains("`queries` must be a whole number"), "{e}");
        let e = parse(Path::new("zen.lock"), &text.replacen("queries = 3", "querys = 3", 1)).unwrap_err();
        assert!(e.message.contains("unknown key `querys`"), "{e}");
        let e = parse(Path::new("zen.lock"), &text.replacen("[tests.\"app::lists\"", "[tests.\"app::lists", 1))
            .unwrap_err();
        assert_eq!(e.line, line - 1, "a syntax error, on its line: {e}");
        let e = parse(Path::new("zen.lock"), &text.replacen("2027-03-31", "2027-02-30", 1)).unwrap_err();
        assert!(e.message.contains("`until` must be a date"), "{e}");
        let e = parse(Path::new("zen.lock"), &text.replacen("reason = ", "why = ", 1)).unwrap_err();
        assert!(e.message.contains("unknown key `why`"), "{e}");
        let e = parse(Path::new("zen.lock"), &text.replacen("version = 1", "version = 2", 1)).unwrap_err();
        assert_eq!(e.line, 3, "{e}");
    }

    #[test]
    fn sections_read_as_the_whole_document_does() {
        let text = render(&sample());
        // A table defined twice, as a merge that kept both sides leaves it.
        let twice = format!("{text}\n[tests.\"app::lists\".\"GET /items/{{id}}\"]\nqueries = 4\n");
        let e = parse(Path::new("zen.lock"), &twice).unwrap_err();
        assert_eq!(e.line, twice.lines().count() - 1, "{e}");
        assert!(e.message.contains("defined twice"), "{e}");
        // A multi-line string holding a line that looks like a table.
        let odd = text.replacen("reason = \"rewritten in #412\"", "reason = \"\"\"rewritten\n[in #412]\"\"\"", 1);
        let read = parse(Path::new("zen.lock"), &odd).unwrap();
        assert_eq!(read.entries, sample().entries);
        assert_eq!(&*read.exemptions[0].1.reason, "rewritten\n[in #412]");
        // However a duplicate is spelled, and wherever the sections split.
        for twice in [
            "[tests.\"a\".\"b\"]\nqueries = 1\n[tests.a.b]\nqueries = 2\n",
            "[tests.\"a\".\"b\"]\nqueries = 1\n[ tests . \"a\" . \"b\" ] # again\nqueries = 2\n",
            "[tests.a.b]\nqueries = 1 # '''\n[tests.a.b]\nqueries = 2\n",
            "[tests.a.b.statements]\n\"SELECT 1\" = 1\n[tests.a.b.statements]\n\"SELECT 2\" = 1\n",
            "exempt = []\n[[exempt]]\nn_plus_one = true\nstatement = \"x\"\nreason = \"y\"\n",
        ] {
            assert!(parse(Path::new("zen.lock"), twice).is_err(), "read as TOML would: {twice:?}");
        }
        // A syntax error in a section is named on its line, as before.
        let broken = text.replacen("queries = 3", "queries = = 3", 1);
        let line = broken.lines().position(|l| l.contains("= = 3")).unwrap() + 1;
        assert_eq!(parse(Path::new("zen.lock"), &broken).unwrap_err().line, line);
    }

    #[test]
    fn memory_is_kept_in_bands() {
        assert_eq!(band(0), 64);
        assert_eq!(band(65 * 1024), 128);
        assert_eq!(band(128 * 1024), 128);
        assert_eq!(band(128 * 1024 + 1), 256);
    }
}
