//! `zen lock report`: the budget lock's verdict (the JSON lines test
//! processes append under `ZEN_LOCK_REPORT`) as SARIF 2.1.0, GitHub
//! Actions annotations, JUnit XML or Markdown (the crate's documentation
//! has the commands).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::ParseError;
use crate::diff::code;

/// How a locked scope stood.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// Within its entry.
    Passed,
    /// Not in the lock (a check fails on it).
    New,
    /// It used more than its entry.
    Regressed,
}

/// Where user code runs a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// The function, as `app::handlers::list`.
    pub function: String,
    /// Its file relative to the repository, and line, when known.
    pub place: Option<(String, u32)>,
}

/// One figure that moved against its entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `queries`, `memory_kib`, `statement`, `n_plus_one`, `duplicates`,
    /// `repeated_calls` or `http_calls`.
    pub about: String,
    /// The phrase of the lock's diff: `3 → 4 queries`.
    pub phrase: String,
    /// The statement's fingerprint (never a value), or the host.
    pub subject: Option<String>,
    /// The entry's figure (`None`: not in it) and the run's (`None`: gone).
    pub locked: Option<u64>,
    /// The run's figure.
    pub seen: Option<u64>,
    /// Where user code runs the statement, when the run kept it.
    pub site: Option<Site>,
}

impl Finding {
    /// The SARIF rule of a regression of this kind.
    fn rule(&self) -> &'static str {
        match (self.about.as_str(), self.locked) {
            ("statement", None) => "zen/new-statement",
            ("statement", Some(_)) => "zen/grown-statement",
            ("n_plus_one", _) => "zen/new-n-plus-one",
            ("duplicates", _) => "zen/new-duplicate",
            ("repeated_calls", _) => "zen/new-repeated-call",
            ("memory_kib", _) => "zen/memory",
            ("http_calls", _) => "zen/http-calls",
            _ => "zen/queries",
        }
    }

    /// Its file and line in the repository: the call site's, when the
    /// site is a file of the repository.
    fn place(&self) -> Option<(&str, u32)> {
        let (file, line) = self.site.as_ref()?.place.as_ref()?;
        // A dependency's (`crate@1.2.3/src/lib.rs`) or a path outside the
        // workspace (`…/dir/file.rs`) is no file of the repository.
        let foreign = file.starts_with('…') || file.split('/').next().is_some_and(|c| c.contains('@'));
        (!foreign).then_some((file.as_str(), *line))
    }
}

/// One scope of one test, as a test process judged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The lock file, relative to the repository.
    pub lock: String,
    /// The line of the scope's entry in it, if it has one.
    pub line: Option<u32>,
    /// `<test binary>::<test>`, or the binary alone for scopes off a test's thread.
    pub test: String,
    /// The route, job or fn.
    pub scope: String,
    /// How it stood.
    pub status: Status,
    /// What grew (a regression).
    pub over: Vec<Finding>,
    /// What shrank: room to tighten.
    pub under: Vec<Finding>,
}

/// Reads the verdict lines of each `(file, text)`. A scope judged by
/// several processes (one off a test's thread) is one verdict, the worst,
/// with every finding. Sorted by test and scope. A last line cut short (a
/// file still being written) is skipped.
///
/// # Errors
/// The first line that is not a verdict, naming the file and line.
pub fn parse_verdicts<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Vec<Verdict>, ParseError> {
    let mut all: BTreeMap<Key, Verdict> = BTreeMap::new();
    for (file, text) in files {
        read_verdicts(file, text, &mut all)?;
    }
    Ok(all.into_values().collect())
}

/// A verdict's lock, test and scope: two packages' tests of one name have
/// locks of their own.
type Key = (String, String, String);

fn read_verdicts(file: &str, text: &str, all: &mut BTreeMap<Key, Verdict>) -> Result<(), ParseError> {
    let lines = text.lines().count();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let error = |message: &str| ParseError { file: file.to_owned(), line: i + 1, message: message.to_owned() };
        let value: Value = match serde_json::from_str(line) {
            Ok(value) => value,
            Err(e) if e.is_eof() && i + 1 == lines && !text.ends_with('\n') => break,
            Err(e) => return Err(error(&format!("not JSON: {e}"))),
        };
        if value.get("zen_lock_verdict").and_then(Value::as_u64) != Some(1) {
            return Err(error(
                "not a verdict of zen's lock (no `\"zen_lock_verdict\":1`): write it with ZEN_LOCK_REPORT",
            ));
        }
        let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
        let status = match value.get("verdict").and_then(Value::as_str) {
            Some("passed") => Status::Passed,
            Some("new") => Status::New,
            Some("regressed") => Status::Regressed,
            _ => return Err(error("`verdict` must be \"passed\", \"new\" or \"regressed\"")),
        };
        let findings = |key: &str| -> Result<Vec<Finding>, ParseError> {
            let list = value.get(key).and_then(Value::as_array).ok_or_else(|| error(&format!("no `{key}` list")))?;
            list.iter()
                .map(|f| finding(f).ok_or_else(|| error(&format!("a finding of `{key}` is malformed"))))
                .collect()
        };
        let verdict = Verdict {
            lock: text("lock").ok_or_else(|| error("no `lock` string"))?,
            line: value.get("line").and_then(Value::as_u64).and_then(|l| u32::try_from(l).ok()).filter(|l| *l > 0),
            test: text("test").ok_or_else(|| error("no `test` string"))?,
            scope: text("scope").ok_or_else(|| error("no `scope` string"))?,
            status,
            over: findings("over")?,
            under: findings("under")?,
        };
        match all.entry((verdict.lock.clone(), verdict.test.clone(), verdict.scope.clone())) {
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(verdict);
            }
            std::collections::btree_map::Entry::Occupied(mut slot) => {
                let kept = slot.get_mut();
                kept.status = kept.status.max(verdict.status);
                for f in verdict.over {
                    if !kept.over.iter().any(|k| k.phrase == f.phrase) {
                        kept.over.push(f);
                    }
                }
                for f in verdict.under {
                    if !kept.under.iter().any(|k| k.phrase == f.phrase) {
                        kept.under.push(f);
                    }
                }
            }
        }
    }
    Ok(())
}

fn finding(f: &Value) -> Option<Finding> {
    let site = match f.get("site") {
        None | Some(Value::Null) => None,
        Some(site) => Some(Site {
            function: site.get("function")?.as_str()?.to_owned(),
            place: match (site.get("file").and_then(Value::as_str), site.get("line").and_then(Value::as_u64)) {
                // No line (debug information says 0): no place.
                (Some(file), Some(line)) if line > 0 => Some((file.to_owned(), u32::try_from(line).ok()?)),
                _ => None,
            },
        }),
    };
    Some(Finding {
        about: f.get("about")?.as_str()?.to_owned(),
        phrase: f.get("phrase")?.as_str()?.to_owned(),
        subject: f.get("subject").and_then(Value::as_str).map(str::to_owned),
        locked: f.get("locked").and_then(Value::as_u64),
        seen: f.get("seen").and_then(Value::as_u64),
        site,
    })
}

/// The formats of `zen lock report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    /// SARIF 2.1.0, for code scanning: a result per regression.
    Sarif,
    /// GitHub Actions workflow commands: an `::error` line per regression.
    Github,
    /// JUnit XML: a test case per locked scope.
    Junit,
    /// A Markdown summary for a pull request's comment.
    Markdown,
}

impl ReportFormat {
    /// The format named `name`.
    ///
    /// # Errors
    /// A name other than `sarif`, `github`, `junit` or `markdown`.
    pub fn parse(name: &str) -> Result<ReportFormat, String> {
        match name {
            "sarif" => Ok(ReportFormat::Sarif),
            "github" => Ok(ReportFormat::Github),
            "junit" => Ok(ReportFormat::Junit),
            "markdown" => Ok(ReportFormat::Markdown),
            other => Err(format!("--format takes sarif, github, junit or markdown; found `{other}`")),
        }
    }
}

/// The verdicts in `format`.
#[must_use]
pub fn render_verdicts(verdicts: &[Verdict], format: ReportFormat) -> String {
    match format {
        ReportFormat::Sarif => sarif(verdicts),
        ReportFormat::Github => github(verdicts),
        ReportFormat::Junit => junit(verdicts),
        ReportFormat::Markdown => markdown(verdicts),
    }
}

/// A regression as one result: a finding that grew, or a scope the lock
/// does not know (`None`).
fn regressions(verdicts: &[Verdict]) -> impl Iterator<Item = (&Verdict, Option<&Finding>)> {
    verdicts.iter().flat_map(|v| {
        let new = (v.status == Status::New).then_some((v, None));
        let grew = v.over.iter().filter(move |_| v.status == Status::Regressed).map(move |f| (v, Some(f)));
        new.into_iter().chain(grew)
    })
}

/// The file and line a regression is shown at: the statement's call site,
/// else the scope's entry in the lock, else the lock.
fn place<'a>(v: &'a Verdict, f: Option<&'a Finding>) -> (&'a str, Option<u32>) {
    match f.and_then(Finding::place) {
        Some((file, line)) => (file, Some(line)),
        None => (v.lock.as_str(), v.line),
    }
}

/// What a regression says, in one line.
fn message(v: &Verdict, f: Option<&Finding>) -> String {
    match f {
        Some(f) => format!("{} (test {}): {}", v.scope, v.test, f.phrase),
        None => format!("{} (test {}) is not in the lock: add it with ZEN_LOCK=update", v.scope, v.test),
    }
}

/// The rules of the SARIF log, each with what it means.
const RULES: [(&str, &str); 9] = [
    ("zen/new-statement", "A statement this scope's entry in zen.lock has not seen"),
    ("zen/grown-statement", "A statement run more often than this scope's entry in zen.lock"),
    ("zen/new-n-plus-one", "A new N+1: a statement run in a loop, one query per item"),
    ("zen/new-duplicate", "A new duplicate: a statement run again with the same values in one scope"),
    ("zen/new-repeated-call", "A new repeated call: an external call run in a loop, one call per item"),
    ("zen/queries", "More queries than this scope's entry in zen.lock"),
    ("zen/memory", "Peak memory more than one band above this scope's entry in zen.lock"),
    ("zen/http-calls", "More external calls to a host than this scope's entry in zen.lock"),
    ("zen/new-scope", "A scope zen.lock has no entry for"),
];

/// FNV-1a, 64 bits: the same on every machine and release, for SARIF's
/// fingerprints.
fn stable_hash(parts: &[&str]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain([0]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

fn sarif(verdicts: &[Verdict]) -> String {
    let rules: Vec<Value> = RULES
        .iter()
        .map(|(id, text)| {
            json!({
                "id": id,
                "shortDescription": { "text": text },
                "defaultConfiguration": { "level": "error" },
                "helpUri": "https://docs.rs/zen-runtime/latest/zen_runtime/lock/",
            })
        })
        .collect();
    let results: Vec<Value> = regressions(verdicts)
        .map(|(v, f)| {
            let rule = f.map_or("zen/new-scope", Finding::rule);
            let index = RULES.iter().position(|(id, _)| *id == rule).unwrap_or(0);
            let (file, line) = place(v, f);
            // Code scanning wants a line: a scope the lock has no line for
            // is shown at the top of the lock.
            let physical = json!({
                "artifactLocation": { "uri": uri(file), "uriBaseId": "%SRCROOT%" },
                "region": { "startLine": line.unwrap_or(1) },
            });
            let mut location = json!({ "physicalLocation": physical });
            if let Some(site) = f.and_then(|f| f.site.as_ref()) {
                location["logicalLocations"] = json!([{ "fullyQualifiedName": site.function, "kind": "function" }]);
            }
            let subject = f.and_then(|f| f.subject.as_deref()).unwrap_or("");
            json!({
                "ruleId": rule,
                "ruleIndex": index,
                "level": "error",
                "message": { "text": message(v, f) },
                "locations": [location],
                "partialFingerprints": { "zenLockFinding/v1": stable_hash(&[rule, &v.test, &v.scope, subject]) },
                "properties": {
                    "test": v.test,
                    "scope": v.scope,
                    "locked": f.and_then(|f| f.locked),
                    "seen": f.and_then(|f| f.seen),
                },
            })
        })
        .collect();
    let log = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "zen",
                "informationUri": "https://github.com/zen-rs/zen",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            } },
            "originalUriBaseIds": { "%SRCROOT%": { "description": { "text": "The repository's root" } } },
            "results": results,
        }],
    });
    let mut out = serde_json::to_string_pretty(&log).unwrap_or_default();
    out.push('\n');
    out
}

/// A relative path as a URI reference: every byte but unreserved ones and
/// `/` percent-encoded (RFC 3986).
fn uri(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A workflow command's property value, escaped as the runner reads it.
fn property(text: &str) -> String {
    data(text).replace(':', "%3A").replace(',', "%2C")
}

/// A workflow command's message, escaped as the runner reads it.
fn data(text: &str) -> String {
    text.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

fn github(verdicts: &[Verdict]) -> String {
    let mut out = String::new();
    for (v, f) in regressions(verdicts) {
        let (file, line) = place(v, f);
        let title = format!("zen lock: {}", v.scope);
        let _ = write!(out, "::error file={}", property(file));
        if let Some(line) = line {
            let _ = write!(out, ",line={line}");
        }
        let _ = writeln!(out, ",title={}::{}", property(&title), data(&message(v, f)));
    }
    out
}

/// `text` for an XML attribute or element.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Kept as they are in attributes too, where a parser would
            // make them spaces.
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            // Characters XML 1.0 cannot hold.
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

fn junit(verdicts: &[Verdict]) -> String {
    let mut suites: BTreeMap<&str, Vec<&Verdict>> = BTreeMap::new();
    for v in verdicts {
        let binary = v.test.split_once("::").map_or(v.test.as_str(), |(binary, _)| binary);
        suites.entry(binary).or_default().push(v);
    }
    let failed = |v: &Verdict| v.status != Status::Passed;
    let failures = verdicts.iter().filter(|v| failed(v)).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"zen lock\" tests=\"{}\" failures=\"{failures}\" errors=\"0\">",
        verdicts.len()
    );
    for (binary, scopes) in suites {
        let failures = scopes.iter().filter(|v| failed(v)).count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\">",
            xml(binary),
            scopes.len()
        );
        for v in scopes {
            let (file, line) =
                v.over.iter().find_map(Finding::place).map_or((v.lock.as_str(), v.line), |(f, l)| (f, Some(l)));
            let _ = write!(
                out,
                "    <testcase classname=\"{}\" name=\"{}\" file=\"{}\"",
                xml(&v.test),
                xml(&v.scope),
                xml(file)
            );
            if let Some(line) = line {
                let _ = write!(out, " line=\"{line}\"");
            }
            out.push('>');
            match v.status {
                Status::Regressed => {
                    let phrases: Vec<&str> = v.over.iter().map(|f| f.phrase.as_str()).collect();
                    let _ = write!(
                        out,
                        "\n      <failure type=\"regressed\" message=\"used more than its entry in {}\">{}</failure>",
                        xml(&v.lock),
                        xml(&phrases.join("\n"))
                    );
                }
                Status::New => {
                    let _ = write!(
                        out,
                        "\n      <failure type=\"new\" message=\"not in {}: add it with ZEN_LOCK=update\"/>",
                        xml(&v.lock)
                    );
                }
                Status::Passed => {}
            }
            if !v.under.is_empty() {
                let phrases: Vec<&str> = v.under.iter().map(|f| f.phrase.as_str()).collect();
                let _ = write!(out, "\n      <system-out>can tighten: {}</system-out>", xml(&phrases.join(", ")));
            }
            if v.status != Status::Passed || !v.under.is_empty() {
                out.push_str("\n    ");
            }
            out.push_str("</testcase>\n");
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

fn markdown(verdicts: &[Verdict]) -> String {
    let regressed: Vec<&Verdict> = verdicts.iter().filter(|v| v.status == Status::Regressed).collect();
    let new: Vec<&Verdict> = verdicts.iter().filter(|v| v.status == Status::New).collect();
    let tighten: Vec<&Verdict> = verdicts.iter().filter(|v| !v.under.is_empty()).collect();
    let mark = if regressed.is_empty() && new.is_empty() { "passed" } else { "failed" };
    let mut out = format!(
        "### zen lock: {mark}\n\n{} scopes judged: {} used more than their entry, {} new, {} can tighten.\n",
        verdicts.len(),
        regressed.len(),
        new.len(),
        tighten.len()
    );
    if !regressed.is_empty() {
        out.push_str("\n#### What grew\n\n| Scope | Test | What grew | Where |\n|---|---|---|---|\n");
        for v in &regressed {
            for f in &v.over {
                let (file, line) = place(v, Some(f));
                let at = line.map_or_else(|| file.to_owned(), |l| format!("{file}:{l}"));
                let _ =
                    writeln!(out, "| {} | {} | {} | {} |", code(&v.scope), code(&v.test), code(&f.phrase), code(&at));
            }
        }
    }
    if !new.is_empty() {
        out.push_str("\n#### New (not in the lock: `ZEN_LOCK=update` adds them)\n\n| Scope | Test |\n|---|---|\n");
        for v in &new {
            let _ = writeln!(out, "| {} | {} |", code(&v.scope), code(&v.test));
        }
    }
    if !tighten.is_empty() {
        out.push_str(
            "\n#### Can tighten (`ZEN_LOCK=update` writes it)\n\n| Scope | Test | What shrank |\n|---|---|---|\n",
        );
        for v in &tighten {
            let phrases: Vec<&str> = v.under.iter().map(|f| f.phrase.as_str()).collect();
            let _ = writeln!(out, "| {} | {} | {} |", code(&v.scope), code(&v.test), code(&phrases.join(", ")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{code, data, property, stable_hash, uri, xml};

    #[test]
    fn escapes_keep_each_format_whole() {
        assert_eq!(property("GET /a, b: c%"), "GET /a%2C b%3A c%25");
        assert_eq!(data("a\nb: c"), "a%0Ab: c");
        assert_eq!(code("SELECT a | b"), "`SELECT a \\| b`");
        assert_eq!(code("SELECT `a`"), "`` SELECT `a` ``");
        // FNV-1a of "a\0b\0": the same on every machine and release.
        assert_eq!(stable_hash(&["a", "b"]), "ab40d7820d408076");
        assert_ne!(stable_hash(&["ab", ""]), stable_hash(&["a", "b"]));
        assert_eq!(uri("src/my file#1.rs"), "src/my%20file%231.rs");
        assert_eq!(xml("a\r\tb<\u{1}\u{ffff}"), "a&#13;&#9;b&lt;\u{fffd}\u{fffd}");
    }
}
