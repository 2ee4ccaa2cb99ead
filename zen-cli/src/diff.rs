//! `zen diff`: two runs side by side (the crate's documentation has the
//! command and its output).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::{Record, number, spread};

/// The figures compared, by `#[zen]` key.
const FIGURES: [&str; 4] = ["max_queries", "max_db_ms", "max_mem_kb", "timeout_ms"];

/// One figure of one scope, before and after.
#[derive(Debug, Clone, PartialEq)]
pub struct FigureChange {
    /// The `#[zen]` key.
    pub key: &'static str,
    /// p50, p99 and max before.
    pub before: [f64; 3],
    /// p50, p99 and max after.
    pub after: [f64; 3],
}

impl FigureChange {
    /// How much the p99 grew, in percent; `None` when it grew from 0 to at
    /// least one whole unit (a query, a millisecond, a KiB): growth from
    /// nothing. From 0 to less than a unit (a few microseconds of database
    /// time) is `Some(0.0)`, jitter rather than growth.
    #[must_use]
    pub fn p99_growth(&self) -> Option<f64> {
        let (b, a) = (self.before[1], self.after[1]);
        if b == 0.0 {
            return (a < 1.0).then_some(0.0);
        }
        Some((a - b) / b * 100.0)
    }
}

/// A statement of one scope, run more often per report after than before.
#[derive(Debug, Clone, PartialEq)]
pub struct StatementChange {
    /// Its fingerprint: never a value.
    pub fingerprint: String,
    /// Runs per report before (0: new) and after.
    pub per_report: [f64; 2],
}

/// What changed for one scope name and kind.
#[derive(Debug, Clone, PartialEq)]
pub struct ScopeDiff {
    /// The route, job or fn.
    pub name: String,
    /// `handler`, `job` or `other`.
    pub kind: String,
    /// Successful reports before and after.
    pub reports: [usize; 2],
    /// Each figure measured in both runs.
    pub figures: Vec<FigureChange>,
    /// Statements new or run more often per report.
    pub statements: Vec<StatementChange>,
}

/// Both runs, compared.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Scopes seen in both runs, by name.
    pub scopes: Vec<ScopeDiff>,
    /// Scope names seen only before, and only after.
    pub only: [Vec<String>; 2],
}

impl Change {
    /// Whether the after run is worse past `percent`: a p99 grew by more
    /// than that (and by a whole unit at least, so that the jitter of a
    /// short scope's microseconds is no growth) or from nothing, a
    /// statement is new, or a scope with successful reports before has none
    /// after.
    #[must_use]
    pub fn exceeds(&self, percent: f64) -> bool {
        let grew = |f: &FigureChange| f.after[1] - f.before[1] >= 1.0 && f.p99_growth().is_none_or(|g| g > percent);
        !self.only[0].is_empty()
            || self
                .scopes
                .iter()
                .any(|s| s.figures.iter().any(grew) || s.statements.iter().any(|st| st.per_report[0] == 0.0))
    }
}

/// `text` as one Markdown code span, whatever backticks, pipes or line
/// breaks it holds.
pub(crate) fn code(text: &str) -> String {
    let text = plain(text);
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') { " " } else { "" };
    format!("{fence}{pad}{}{pad}{fence}", text.replace('|', "\\|"))
}

/// `text` on one line: control characters as spaces.
fn plain(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

type Groups<'a> = BTreeMap<(&'a str, &'a str), Vec<&'a Record>>;

fn group(records: &[Record]) -> Groups<'_> {
    let mut groups: Groups<'_> = BTreeMap::new();
    for r in records.iter().filter(|r| r.successful()) {
        groups.entry((&r.name, &r.kind)).or_default().push(r);
    }
    groups
}

/// Each statement's runs per report.
fn per_report<'a>(reports: &[&'a Record]) -> BTreeMap<&'a str, f64> {
    let mut runs: BTreeMap<&str, f64> = BTreeMap::new();
    for r in reports {
        for (fingerprint, count) in &r.statements {
            *runs.entry(fingerprint).or_default() += *count as f64;
        }
    }
    let n = reports.len() as f64;
    runs.values_mut().for_each(|v| *v /= n);
    runs
}

/// Compares the successful reports of two runs, scope by scope.
#[must_use]
pub fn diff(before: &[Record], after: &[Record]) -> Change {
    let (before, after) = (group(before), group(after));
    let only_in = |a: &Groups<'_>, b: &Groups<'_>| {
        a.keys().filter(|k| !b.contains_key(k)).map(|(name, _)| (*name).to_owned()).collect()
    };
    let only = [only_in(&before, &after), only_in(&after, &before)];
    let scopes = before
        .iter()
        .filter_map(|(key, was)| {
            let now = after.get(key)?;
            let figures = FIGURES
                .iter()
                .filter_map(|&key| Some(FigureChange { key, before: spread(was, key)?, after: spread(now, key)? }))
                .collect();
            let old = per_report(was);
            let statements = per_report(now)
                .into_iter()
                .filter_map(|(fingerprint, runs)| {
                    let before = old.get(fingerprint).copied().unwrap_or(0.0);
                    (runs > before)
                        .then(|| StatementChange { fingerprint: fingerprint.to_owned(), per_report: [before, runs] })
                })
                .collect();
            Some(ScopeDiff {
                name: key.0.to_owned(),
                kind: key.1.to_owned(),
                reports: [was.len(), now.len()],
                figures,
                statements,
            })
        })
        .collect();
    Change { scopes, only }
}

fn growth(f: &FigureChange) -> String {
    match f.p99_growth() {
        None => "new".to_owned(),
        Some(g) => format!("{g:+.1}%"),
    }
}

/// The comparison as `zen diff` prints it: text, or Markdown for a pull
/// request's comment.
#[must_use]
pub fn render_diff(change: &Change, markdown: bool) -> String {
    let mut out = String::new();
    let [before, after]: [usize; 2] =
        change.scopes.iter().fold([0, 0], |[b, a], s| [b + s.reports[0], a + s.reports[1]]);
    let _ = writeln!(
        out,
        "zen diff: {} scopes in both runs ({before} successful reports before, {after} after)",
        change.scopes.len()
    );
    for s in &change.scopes {
        let title = format!("{} ({}, {} reports before, {} after)", plain(&s.name), s.kind, s.reports[0], s.reports[1]);
        if markdown {
            let _ =
                writeln!(out, "\n#### {} ({}, {} → {} reports)\n", code(&s.name), s.kind, s.reports[0], s.reports[1]);
            let _ = writeln!(out, "| figure | p50 | p99 | max | p99 change |\n|---|---|---|---|---|");
        } else {
            let _ = writeln!(out, "\n{title}");
            let _ = writeln!(out, "  {:<12} {:>21} {:>21} {:>21} {:>10}", "figure", "p50", "p99", "max", "p99");
        }
        for f in &s.figures {
            let pair = |i: usize| format!("{} → {}", number(f.before[i]), number(f.after[i]));
            if markdown {
                let _ = writeln!(out, "| `{}` | {} | {} | {} | {} |", f.key, pair(0), pair(1), pair(2), growth(f));
            } else {
                let _ =
                    writeln!(out, "  {:<12} {:>21} {:>21} {:>21} {:>10}", f.key, pair(0), pair(1), pair(2), growth(f));
            }
        }
        for st in &s.statements {
            let what = if st.per_report[0] == 0.0 { "new" } else { "grew" };
            let runs = format!("{} → {} per report", number(st.per_report[0]), number(st.per_report[1]));
            if markdown {
                let _ = writeln!(out, "\n- {what}: {} ({runs})", code(&st.fingerprint));
            } else {
                let _ = writeln!(out, "  {what}: {} ({runs})", plain(&st.fingerprint));
            }
        }
    }
    for (which, names) in ["only before (no successful report after)", "only after"].iter().zip(&change.only) {
        if !names.is_empty() {
            let names: Vec<String> = names.iter().map(|n| if markdown { code(n) } else { plain(n) }).collect();
            let _ = writeln!(out, "\n{which}: {}", names.join(", "));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::parse;

    fn line(queries: u32, statement: &str) -> String {
        format!(
            r#"{{"name":"GET /a","kind":"handler","outcome":"ok","mode":"observe","status":200,"used":{{"max_queries":{queries},"timeout_ms":2.0}},"statements":[{{"statement":"{statement}","count":{queries},"ms":1.0}}]}}"#
        ) + "\n"
    }

    #[test]
    fn figures_and_statements_that_grew_are_shown_and_can_fail_the_run() {
        let before = parse("b", &line(2, "SELECT a FROM t WHERE id = ?").repeat(10)).unwrap();
        let mut after_text = line(4, "SELECT a FROM t WHERE id = ?").repeat(10);
        after_text.push_str(&line(1, "SELECT b FROM u"));
        let after = parse("a", &after_text).unwrap();
        let change = super::diff(&before, &after);
        let scope = &change.scopes[0];
        assert_eq!(scope.reports, [10, 11]);
        let queries = &scope.figures[0];
        assert_eq!((queries.key, queries.before, queries.after), ("max_queries", [2.0; 3], [4.0, 4.0, 4.0]));
        assert_eq!(queries.p99_growth(), Some(100.0));
        assert_eq!(scope.statements.len(), 2, "{:?}", scope.statements);
        assert!(change.exceeds(50.0) && change.exceeds(1000.0), "a new statement fails any threshold");
        let same = super::diff(&before, &before);
        assert!(same.scopes[0].statements.is_empty() && !same.exceeds(0.0));
        let text = super::render_diff(&change, false);
        assert!(text.contains("max_queries") && text.contains("2 → 4") && text.contains("+100.0%"), "{text}");
        assert!(text.contains("new: SELECT b FROM u (0 → 0.091 per report)"), "{text}");
        let markdown = super::render_diff(&change, true);
        assert!(markdown.contains("| `max_queries` | 2 → 4 | 2 → 4 | 2 → 4 | +100.0% |"), "{markdown}");

        // Growth under the threshold passes; a route gone from the after run fails.
        let grown = parse("a", &line(3, "SELECT a FROM t WHERE id = ?").repeat(10)).unwrap();
        let change = super::diff(&before, &grown);
        assert!(!change.exceeds(60.0) && change.exceeds(40.0), "+50%");
        let gone = super::diff(&before, &[]);
        assert!(gone.exceeds(1000.0) && gone.only[0] == ["GET /a"]);
    }

    #[test]
    fn markdown_holds_any_fingerprint_in_one_code_span() {
        assert_eq!(super::code("SELECT `a` FROM t"), "``SELECT `a` FROM t``");
        assert_eq!(super::code("`x`|y\nz"), "`` `x`\\|y z ``");
        assert_eq!(super::plain("a\nb\tc"), "a b c");
    }
}
