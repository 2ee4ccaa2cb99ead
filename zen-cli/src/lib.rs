//! The `zen` command: budgets suggested from traffic (`zen suggest`), two
//! runs compared (`zen diff`, below), Prometheus alert rules from the
//! budgets (`zen rules`, [`render_rules`]), and the budget lock's verdict
//! in the formats CI tools read (`zen lock report`, below).
//!
//! `zen suggest` reads the JSON lines
//! that `zen_runtime::sinks::JsonLines` writes (in staging, or under a load
//! test) and proposes, for each route and job, a `#[zen(...)]` line from
//! what it used.
//!
//! ```sh
//! cargo install --path zen-cli       # the `zen` command
//! zen suggest zen-reports.jsonl.2 zen-reports.jsonl.1 zen-reports.jsonl [--margin 50] [--min-samples 20]
//! ```
//!
//! What it printed for the reports `tests/suggest.rs` writes (a real axum
//! app on SQLite; the files kept the newest reports of 187):
//!
//! ```text
//! zen suggest: 92 successful reports (4 left out: errors, cancelled, panicked, cut by enforce), 5 scopes; proposed = p99 + 50%, rounded up to two significant digits, from at least 20 successful reports
//!
//! DELETE /articles/{id} (handler, fn suggest::delete_article, 0 successful reports, 1 left out)
//!   not enough data: 0 successful reports, at least 20 needed (--min-samples); no budget proposed
//!
//! GET /articles/{id} (handler, fn suggest::articles, 59 successful reports)
//!   budget                    p50          p99          max   proposed
//!   max_queries                 3            4            4          6
//!   max_db_ms               0.248        0.369        0.369          1
//!   timeout_ms              0.561        0.887        0.887          2
//!   max_http_calls              0            0            0          0
//!   max_poll_ms             0.048        0.160        0.160          1
//!   max_rows                    3            4            4          6
//!   only 59 reports: the p99 is close to the max; collect more traffic
//!   #[zen(max_queries = 6, max_db_ms = 1, timeout_ms = 2, max_http_calls = 0, max_poll_ms = 1, max_rows = 6)]
//!
//! GET /health (handler, 30 successful reports)
//!   no #[zen] fn and no layer budget covers this scope (its handler has no #[zen] and the layer no limits, or no handler ran, as for axum's 405): a line below applies only once it is on a #[zen] handler or in ZenLayer::limits
//!   budget                    p50          p99          max   proposed
//!   ...
//!   #[zen(max_queries = 0, timeout_ms = 1, max_http_calls = 0, max_poll_ms = 1)]
//!
//! GET /rare (handler, fn suggest::rare, 3 successful reports)
//!   not enough data: 3 successful reports, at least 20 needed (--min-samples); no budget proposed
//!
//! POST /health (handler, 0 successful reports, 3 left out)
//!   no #[zen] fn and no layer budget covers this scope (its handler has no #[zen] and the layer no limits, or no handler ran, as for axum's 405): a line below applies only once it is on a #[zen] handler or in ZenLayer::limits
//!   not enough data: 0 successful reports, at least 20 needed (--min-samples); no budget proposed
//! ```
//!
//! Per route and job (and the `#[zen]` fn whose limits applied): the p50,
//! p99 and max of each figure, and a proposed limit: the p99 plus the
//! margin (default 50%), rounded up to two significant digits (times and
//! sizes at least 1; a count that was always 0 proposes 0, which allows
//! none), a timeout at least the database and external time it contains,
//! and how many reports used more than it.
//!
//! A budget that breaks production is worse than none, so it proposes only
//! from what says what the work needs:
//!
//! - **successful reports alone**: cancelled and panicked scopes stop
//!   short, so do scopes `enforce` cut, and a response with an error status
//!   (a `400` that stopped at validation, axum's `405` that ran no handler)
//!   is left out and counted;
//! - **enough of them**: fewer than `--min-samples` (default 20) successful
//!   reports, and the scope gets a "not enough data" line instead of a
//!   budget, since one fast sample would become a limit the next slow
//!   request breaks;
//! - **scopes something covers**: a request (or a job under a runner) that
//!   no `#[zen]` fn and no layer (or runner) limit applied to is said to be
//!   so, since a line for it applies nowhere until it is written on a
//!   `#[zen]` fn.
//!
//! [`parse`], [`suggest`] and [`render`] do the same from code:
//!
//! ```
//! let line = r#"{"v":1,"name":"GET /a","kind":"handler","mode":"observe","outcome":"ok","used":{"max_queries":2,"timeout_ms":3.5}}"#;
//! let reports = zen_cli::parse("reports.jsonl", &format!("{line}\n").repeat(20)).unwrap();
//! let suggestions = zen_cli::suggest(&reports, zen_cli::Settings::default());
//! assert_eq!(suggestions[0].attribute().unwrap(), "#[zen(max_queries = 3, timeout_ms = 6)]");
//! ```
//!
//! # `zen diff`
//!
//! Given the JSON-lines reports of a run before a change and of one after
//! it (two deploys, or two branches under the same load test), [`diff`]
//! and `zen diff` give, per route and job seen in both, the p50, p99 and
//! max of its queries, database time, peak memory and time, and the
//! statements that are new or run more often per report, as text or as
//! Markdown for a pull request's comment. With `--fail-above PERCENT` the
//! command exits with 1 when a p99 grew by more than that (or from nothing
//! to a whole unit: a query, a millisecond, a KiB) or a statement is new,
//! so that CI can stop the change; a time or a size must also have grown by
//! a whole unit (a millisecond, a KiB), so that the jitter of short scopes
//! fails nothing. A route or job that has successful reports before and
//! none after fails it too, and so does an after run with none at all.
//! Successful reports alone count, as for `zen suggest`. A scope keeps its
//! first 64 distinct statements: past that, which are kept depends on the
//! order they ran, and one may show as new.
//!
//! ```sh
//! zen diff --before base.jsonl --after head.jsonl [--markdown] [--fail-above 10]
//! ```
//!
//! ```text
//! job export (job, 30 reports before, 30 after)
//!   figure                         p50                   p99                   max        p99
//!   max_queries                  2 → 6                 2 → 6                 2 → 6    +200.0%
//!   timeout_ms           0.003 → 0.011         0.095 → 0.096         0.095 → 0.096      +1.1%
//!   new: INSERT INTO audit (what) VALUES (...) (0 → 1 per report)
//!   grew: SELECT line FROM orders WHERE id = ? (2 → 5 per report)
//! ```

//!
//! # `zen lock report`
//!
//! A test run with `ZEN_LOCK=check` and `ZEN_LOCK_REPORT=<file>` (see
//! `zen_runtime::lock`) leaves a JSON line per locked scope that each test
//! process judged. [`parse_verdicts`] and [`render_verdicts`], and the
//! command, make one document of them:
//!
//! ```sh
//! zen lock report --format sarif  target/zen-verdict.jsonl > zen.sarif   # upload to code scanning
//! zen lock report --format github target/zen-verdict.jsonl             # in a GitHub Actions step
//! zen lock report --format junit  target/zen-verdict.jsonl > zen.xml     # a CI's test report
//! zen lock report target/zen-verdict.jsonl >> "$GITHUB_STEP_SUMMARY"     # Markdown, the default
//! ```
//!
//! | format | what it holds |
//! |---|---|
//! | `sarif` | SARIF 2.1.0: a result per regression, with a rule per kind (`zen/new-statement`, `zen/grown-statement`, `zen/new-n-plus-one`, `zen/new-duplicate`, `zen/new-repeated-call`, `zen/queries`, `zen/memory`, `zen/http-calls`, `zen/new-scope`), at the line that runs the statement (its function as a logical location), or else at the scope's entry in `zen.lock`; `partialFingerprints."zenLockFinding/v1"` hashes the rule, test, scope and statement (no line, no count), so a regression keeps its identity while code moves |
//! | `github` | an `::error file=...,line=...,title=...::` workflow command per regression, which GitHub Actions shows on the pull request's line |
//! | `junit` | JUnit XML: a suite per test binary, a test case per locked scope (class: the test, name: the scope), failed when it used more or is not in the lock, with what can tighten as its output |
//! | `markdown` | for a pull request's comment or a job summary: what grew (with where), what is new, what can tighten |
//!
//! Every path is relative to the repository; no value is in any of them
//! (statements are fingerprints).
//!
//! ```text
//! ::error file=src/feed.rs,line=42,title=zen lock%3A GET /feed::GET /feed (test app::feed_lists_articles): new N+1 at app::feed (src/feed.rs:42): SELECT * FROM users WHERE id = ?
//! ```

mod diff;
mod rules;
mod verdict;

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

pub use diff::{Change, FigureChange, ScopeDiff, StatementChange, diff, render_diff};
pub use rules::{RuleSettings, duration_ms, render_rules};
pub use verdict::{Finding, ReportFormat, Site, Status, Verdict, parse_verdicts, render_verdicts};

use zen_runtime::Budget;

/// Time and size are measured, and a limit of them is at least 1; the
/// other budgets count whole things, and `0` allows none.
fn measured(budget: Budget) -> bool {
    matches!(budget.unit(), "ms" | "KiB")
}

/// One report, as far as suggesting goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The route, job or fn.
    pub name: String,
    /// `handler`, `job` or `other`.
    pub kind: String,
    /// The `#[zen]` fn whose limits applied, if one did.
    pub handler: Option<String>,
    /// How it ended.
    pub outcome: String,
    /// The mode it ran in: `observe`, `enforce` or `strict`.
    pub mode: String,
    /// Under the layer, the response's status: the scope is a request's.
    pub status: Option<u16>,
    /// Under a job runner, the attempt: the scope is a job's.
    pub attempt: Option<u32>,
    /// Whether any limit applied to it (a `#[zen]` fn's or the layer's).
    pub limited: bool,
    /// Each figure by its `#[zen]` key, in that key's unit.
    pub used: BTreeMap<String, f64>,
    /// Each statement's fingerprint and how many times it ran.
    pub statements: Vec<(String, u64)>,
}

impl Record {
    /// A sample to propose from: it ran to its end (not cancelled, not
    /// panicked, not cut short by `enforce`) and, under the layer, was not
    /// answered with an error status (a `400` stops early, a `405` runs no
    /// handler: neither says what the work needs).
    #[must_use]
    pub fn successful(&self) -> bool {
        self.outcome != "cancelled" && self.outcome != "panicked" && !self.cut() && self.status.is_none_or(|s| s < 400)
    }

    /// Stopped by `enforce` at a limit.
    fn cut(&self) -> bool {
        self.outcome == "exceeded" && self.mode == "enforce"
    }

    /// Opened by the layer (a request) or a job runner (a job): its limits
    /// come from a `#[zen]` handler or job fn it ran, or from the layer's or
    /// runner's own. Any other scope is a `#[zen]` fn's.
    fn boundary(&self) -> bool {
        self.status.is_some() || self.attempt.is_some()
    }
}

/// A line that cannot be read, with where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The file.
    pub file: String,
    /// The line, from 1.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Reads the reports in `text`, the contents of `file`; blank lines are
/// skipped, and so is a last line cut short (a file still being written).
///
/// # Errors
/// The first line that is not a report, naming the file and line.
pub fn parse(file: &str, text: &str) -> Result<Vec<Record>, ParseError> {
    let mut records = Vec::new();
    let lines = text.lines().count();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let error = |message: String| ParseError { file: file.to_owned(), line: i + 1, message };
        let value: serde_json::Value = match serde_json::from_str(line) {
            Ok(value) => value,
            Err(e) if e.is_eof() && i + 1 == lines && !text.ends_with('\n') => break,
            Err(e) => return Err(error(format!("not JSON: {e}"))),
        };
        let text_field = |key: &str| {
            value
                .get(key)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| error(format!("no `{key}` string: not a zen report")))
        };
        let (name, kind, outcome) = (text_field("name")?, text_field("kind")?, text_field("outcome")?);
        let used_value = value
            .get("used")
            .and_then(serde_json::Value::as_object)
            .ok_or_else(|| error("no `used` object: not a zen report".into()))?;
        let mut used = BTreeMap::new();
        for (key, figure) in used_value {
            let n = figure
                .as_f64()
                .filter(|n| n.is_finite() && *n >= 0.0)
                .ok_or_else(|| error(format!("`used.{key}` is not a number of 0 or more")))?;
            used.insert(key.clone(), n);
        }
        let handler = value.get("handler").and_then(serde_json::Value::as_str).map(str::to_owned);
        let mode = value.get("mode").and_then(serde_json::Value::as_str).unwrap_or("observe").to_owned();
        let status = value.get("status").and_then(serde_json::Value::as_u64).and_then(|s| u16::try_from(s).ok());
        let attempt = value.get("attempt").and_then(serde_json::Value::as_u64).and_then(|a| u32::try_from(a).ok());
        let limited = value.get("limits").and_then(serde_json::Value::as_object).is_some_and(|l| !l.is_empty());
        let statements = value
            .get("statements")
            .and_then(serde_json::Value::as_array)
            .map(|all| {
                all.iter()
                    .filter_map(|s| Some((s.get("statement")?.as_str()?.to_owned(), s.get("count")?.as_u64()?)))
                    .collect()
            })
            .unwrap_or_default();
        records.push(Record { name, kind, handler, outcome, mode, status, attempt, limited, used, statements });
    }
    Ok(records)
}

/// One figure of one scope over its reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// The `#[zen]` key.
    pub key: &'static str,
    /// The median.
    pub p50: f64,
    /// The 99th percentile (nearest rank).
    pub p99: f64,
    /// The largest.
    pub max: f64,
    /// The proposed limit.
    pub proposed: u64,
    /// Reports that used more than `proposed`.
    pub above: usize,
}

/// What one route or job used, and the budget proposed for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    /// The route, job or fn.
    pub name: String,
    /// `handler`, `job` or `other`.
    pub kind: String,
    /// The `#[zen]` fn (or fns) whose limits applied, as the reports name
    /// them; empty when none did.
    pub handlers: Vec<String>,
    /// Successful reports ([`Record::successful`]): what the figures are of.
    pub reports: usize,
    /// Reports left out: cancelled, panicked, cut short by `enforce`, or
    /// answered with an error status.
    pub left_out: usize,
    /// Of those, the ones `enforce` cut short at their limit: many of them
    /// say the limit is too tight, which figures of the others cannot show.
    pub cut: usize,
    /// For a request (or a job under a runner), whether a `#[zen]` handler
    /// (or job fn) or the layer's (or runner's) limits applied to it; any
    /// other scope is a `#[zen]` fn's own. A line for a scope that nothing
    /// covers applies nowhere until it is written on a `#[zen]` fn or
    /// given to the layer.
    pub covered: bool,
    /// Each figure measured, in `#[zen]` key order; empty when there are
    /// too few successful reports to propose from.
    pub figures: Vec<Figure>,
}

impl Suggestion {
    /// The proposed attribute, such as `#[zen(max_queries = 5, timeout_ms = 120)]`;
    /// `None` when there are too few successful reports to propose one.
    #[must_use]
    pub fn attribute(&self) -> Option<String> {
        if self.figures.is_empty() {
            return None;
        }
        let keys: Vec<String> = self.figures.iter().map(|f| format!("{} = {}", f.key, f.proposed)).collect();
        Some(format!("#[zen({})]", keys.join(", ")))
    }
}

/// The p50, p99 and max of the figure `key` over `reports`, if any
/// measured it.
pub(crate) fn spread(reports: &[&Record], key: &str) -> Option<[f64; 3]> {
    let mut values: Vec<f64> = reports.iter().filter_map(|r| r.used.get(key).copied()).collect();
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    Some([percentile(&values, 50.0), percentile(&values, 99.0), values[values.len() - 1]])
}

/// The nearest-rank percentile of sorted `values`.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `x` rounded up to two significant digits: 0.31 → 1 (limits are whole),
/// 123 → 130, 4,510 → 4,600.
fn round_up(x: f64) -> u64 {
    if x <= 0.0 {
        return 0;
    }
    let whole = x.ceil() as u64;
    let mut step = 1;
    while whole / step >= 100 {
        step *= 10;
    }
    whole.div_ceil(step).saturating_mul(step)
}

/// How [`suggest`] proposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Added to each figure's p99, in percent (default 50).
    pub margin_percent: u32,
    /// The fewest successful reports a scope needs for a proposal (default
    /// 20): fewer, and a single fast sample would become a limit that the
    /// next slow request breaks.
    pub min_samples: usize,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings { margin_percent: 50, min_samples: 20 }
    }
}

/// Proposes a budget for each scope of `records`, from its successful
/// reports alone ([`Record::successful`]) and only when it has at least
/// `min_samples` of them: for each figure, its 99th percentile plus the
/// margin, rounded up to two significant digits (times and sizes at least
/// 1; counts may be 0, which allows none). A database or external-call time
/// above the proposed timeout raises it, as `#[zen]` requires. Scopes are
/// sorted by name.
#[must_use]
pub fn suggest(records: &[Record], settings: Settings) -> Vec<Suggestion> {
    let mut scopes: BTreeMap<(&str, &str), Vec<&Record>> = BTreeMap::new();
    for r in records {
        scopes.entry((&r.name, &r.kind)).or_default().push(r);
    }
    let factor = 1.0 + f64::from(settings.margin_percent) / 100.0;
    scopes
        .into_iter()
        .map(|((name, kind), all)| {
            let mut handlers: Vec<String> = all.iter().filter_map(|r| r.handler.clone()).collect();
            handlers.sort();
            handlers.dedup();
            // A request's or a job runner's scope is covered by a `#[zen]` fn
            // it ran or by its own limits; any other is a `#[zen]` fn's own.
            let covered = !all.iter().any(|r| r.boundary()) || all.iter().any(|r| r.limited || r.handler.is_some());
            let reports: Vec<&Record> = all.iter().copied().filter(|r| r.successful()).collect();
            let left_out = all.len() - reports.len();
            let cut = all.iter().filter(|r| r.cut()).count();
            let (name, kind) = (name.to_owned(), kind.to_owned());
            if reports.len() < settings.min_samples.max(1) {
                let figures = Vec::new();
                return Suggestion { name, kind, handlers, reports: reports.len(), left_out, cut, covered, figures };
            }
            let mut figures = Vec::new();
            for &budget in Budget::ALL {
                let key = budget.key();
                let Some([p50, p99, max]) = spread(&reports, key) else { continue };
                if max == 0.0 && (measured(budget) || budget == Budget::Rows) {
                    continue;
                }
                let mut proposed = round_up(p99 * factor);
                if measured(budget) {
                    proposed = proposed.max(1);
                }
                figures.push(Figure { key, p50, p99, max, proposed, above: 0 });
            }
            let most = |key: &str| figures.iter().filter(|f| f.key == key).map(|f| f.proposed).max();
            let inner = most("max_db_ms").max(most("max_http_ms"));
            if let (Some(inner), Some(t)) = (inner, figures.iter_mut().find(|f| f.key == "timeout_ms"))
                && t.proposed < inner
            {
                t.proposed = inner;
            }
            for f in &mut figures {
                f.above = reports.iter().filter(|r| r.used.get(f.key).is_some_and(|&v| v > f.proposed as f64)).count();
            }
            Suggestion { name, kind, handlers, reports: reports.len(), left_out, cut, covered, figures }
        })
        .collect()
}

pub(crate) fn number(x: f64) -> String {
    if x.fract() == 0.0 { format!("{x:.0}") } else { format!("{x:.3}") }
}

/// The suggestions as the `zen suggest` command prints them.
#[must_use]
pub fn render(suggestions: &[Suggestion], settings: Settings) -> String {
    let mut out = String::new();
    let reports: usize = suggestions.iter().map(|s| s.reports).sum();
    let left_out: usize = suggestions.iter().map(|s| s.left_out).sum();
    let _ = writeln!(
        out,
        "zen suggest: {reports} successful reports ({left_out} left out: errors, cancelled, panicked, cut by enforce), {} scopes; \
         proposed = p99 + {}%, rounded up to two significant digits, from at least {} successful reports",
        suggestions.len(),
        settings.margin_percent,
        settings.min_samples
    );
    for s in suggestions {
        let handler = match s.handlers.as_slice() {
            [] => String::new(),
            handlers => format!(", fn {}", handlers.join(", fn ")),
        };
        let left_out = if s.left_out > 0 { format!(", {} left out", s.left_out) } else { String::new() };
        let _ = writeln!(out, "\n{} ({}{handler}, {} successful reports{left_out})", s.name, s.kind, s.reports);
        if !s.covered {
            let _ = writeln!(
                out,
                "  no #[zen] fn and no layer budget covers this scope (its handler has no #[zen] and the layer no \
                 limits, or no handler ran, as for axum's 405): a line below applies only once it is on a #[zen] \
                 handler or in ZenLayer::limits"
            );
        }
        if s.cut > 0 {
            let _ = writeln!(
                out,
                "  {} cut short by enforce, left out: the limit in force may be too tight, which the figures below cannot show",
                s.cut
            );
        }
        let Some(attribute) = s.attribute() else {
            let _ = writeln!(
                out,
                "  not enough data: {} successful reports, at least {} needed (--min-samples); no budget proposed",
                s.reports, settings.min_samples
            );
            continue;
        };
        let _ = writeln!(out, "  {:<16} {:>12} {:>12} {:>12} {:>10}", "budget", "p50", "p99", "max", "proposed");
        for f in &s.figures {
            let above = if f.above > 0 { format!("  ({} above)", f.above) } else { String::new() };
            let _ = writeln!(
                out,
                "  {:<16} {:>12} {:>12} {:>12} {:>10}{above}",
                f.key,
                number(f.p50),
                number(f.p99),
                number(f.max),
                f.proposed
            );
        }
        if s.reports < 100 {
            let _ = writeln!(out, "  only {} reports: the p99 is close to the max; collect more traffic", s.reports);
        }
        let _ = writeln!(out, "  {attribute}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{Settings, parse, percentile, render, round_up, suggest};

    #[test]
    fn rounding_and_percentiles() {
        assert_eq!(
            [round_up(0.0), round_up(0.31), round_up(9.2), round_up(123.0), round_up(4510.0)],
            [0, 1, 10, 130, 4600]
        );
        assert_eq!(round_up(1e30), u64::MAX, "saturates");
        let v: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!((percentile(&v, 50.0), percentile(&v, 99.0)), (100.0, 198.0));
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
    }

    #[test]
    fn a_bad_line_names_the_file_and_line() {
        let text = "{\"name\":\"a\",\"kind\":\"job\",\"outcome\":\"ok\",\"used\":{}}\n\n{\"name\":\"a\"";
        assert_eq!(parse("r.jsonl", text).unwrap().len(), 1, "a last line still being written is left out");
        let e = parse("r.jsonl", &format!("{text}\n")).unwrap_err();
        assert_eq!((e.line, e.to_string().starts_with("r.jsonl:3: not JSON")), (3, true), "{e}");
        let e = parse("r.jsonl", "{\"name\":\"a\",\"kind\":\"job\",\"outcome\":\"ok\",\"used\":{\"max_queries\":-1}}")
            .unwrap_err();
        assert!(e.message.contains("`used.max_queries`"), "{e}");
    }

    #[test]
    fn what_a_sample_is_and_what_covers_a_scope() {
        let line = |name: &str, rest: &str| {
            format!("{{\"name\":\"{name}\",\"kind\":\"handler\",{rest},\"used\":{{\"max_queries\":1}}}}\n")
        };
        let text = [
            // Over budget in observe: it ran whole, a sample. Cut in enforce: not.
            line("GET /a", r#""outcome":"exceeded","mode":"observe","status":200,"limits":{"max_queries":1}"#),
            line("GET /a", r#""outcome":"exceeded","mode":"enforce","status":200,"limits":{"max_queries":1}"#),
            // A bare `#[zen]` helper inside a handler: its own scope, covered.
            line("app::helper", r#""outcome":"ok","mode":"observe","limits":{}"#),
            // A job under a runner with no `#[zen]` job fn and no runner limit.
            line("mail", r#""outcome":"ok","mode":"observe","attempt":1,"limits":{}"#).replace("handler", "job"),
        ]
        .concat();
        let s = suggest(&parse("f", &text).unwrap(), Settings { margin_percent: 50, min_samples: 1 });
        let find = |name: &str| s.iter().find(|s| s.name == name).unwrap();
        assert_eq!((find("GET /a").reports, find("GET /a").left_out, find("GET /a").cut), (1, 1, 1));
        assert!(render(&s, Settings::default()).contains("1 cut short by enforce"));
        assert!(find("GET /a").covered && find("app::helper").covered);
        assert!(!find("mail").covered, "a runner's job that nothing limits");
    }

    #[test]
    fn the_timeout_covers_the_database_time_it_contains() {
        let line = r#"{"name":"j","kind":"job","outcome":"ok","used":{"max_db_ms":90.0,"timeout_ms":40.0}}"#;
        let s = suggest(&parse("f", line).unwrap(), Settings { margin_percent: 50, min_samples: 1 });
        assert_eq!(s[0].attribute().unwrap(), "#[zen(max_db_ms = 140, timeout_ms = 140)]");
    }
}
