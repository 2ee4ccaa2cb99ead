//! Exemptions: a known N+1 or a known overrun a team has accepted, with a
//! reason and, if it should not last, a date. Written in the attribute
//! (`exempt(...)`) or in the lock file; an exemption changes how a finished
//! scope is judged (its report, its warning, `strict`, the lock check), not
//! what `enforce` stops, and not the metrics, which show what happened.

use std::borrow::Cow;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{NPlusOne, StatementSummary, Violation};
use crate::tracker::budget::Budget;
use crate::tracker::fingerprint::{self, Dialect};

/// What an exemption accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exempted {
    /// A statement flagged as N+1.
    NPlusOne,
    /// An overrun of this budget, in a scope that ran the statement.
    Budget(Budget),
}

/// Which statement or call site an exemption is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Matches {
    /// A statement, as its fingerprint reads (spacing, case of keywords and
    /// values do not matter).
    Statement(Cow<'static, str>),
    /// Where the statement is issued: matches a call site that contains it,
    /// such as `src/articles.rs:42` or `articles::list`. For N+1 only.
    CallSite(Cow<'static, str>),
}

/// A day, `YYYY-MM-DD`, in UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date {
    /// The year.
    pub year: u16,
    /// 1 to 12.
    pub month: u8,
    /// 1 to 31.
    pub day: u8,
}

impl Date {
    /// Today, in UTC.
    #[must_use]
    pub fn today() -> Date {
        let days = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() / 86_400);
        Date::from_days(i64::try_from(days).unwrap_or(0))
    }

    /// The civil date `days` after 1970-01-01 (Howard Hinnant's algorithm).
    fn from_days(days: i64) -> Date {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        Date { year: u16::try_from(year).unwrap_or(0), month: month as u8, day: day as u8 }
    }

    /// Reads `YYYY-MM-DD`; `None` for anything else or a day that does not
    /// exist.
    #[must_use]
    pub fn parse(text: &str) -> Option<Date> {
        let b = text.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let year = text[..4].parse().ok()?;
        let month = text[5..7].parse().ok()?;
        let day = text[8..].parse().ok()?;
        let date = Date { year, month, day };
        ((1..=12).contains(&month) && day >= 1 && day <= date.days_in_month() && year >= 1970).then_some(date)
    }

    fn days_in_month(self) -> u8 {
        let leap = self.year.is_multiple_of(4) && (!self.year.is_multiple_of(100) || self.year.is_multiple_of(400));
        match self.month {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        }
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// An accepted N+1 or overrun.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exemption {
    /// What it accepts.
    pub what: Exempted,
    /// The statement or call site it is about.
    pub matches: Matches,
    /// Why the team accepted it.
    pub reason: Cow<'static, str>,
    /// The last day it holds; `None` for no end.
    pub until: Option<Date>,
}

impl fmt::Display for Exemption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.what {
            Exempted::NPlusOne => f.write_str("N+1")?,
            Exempted::Budget(b) => write!(f, "`{}` overrun", b.key())?,
        }
        match &self.matches {
            Matches::Statement(s) => write!(f, " of `{s}`")?,
            Matches::CallSite(s) => write!(f, " at {s}")?,
        }
        write!(f, ": {}", self.reason)?;
        if let Some(until) = self.until {
            write!(f, " (until {until})")?;
        }
        Ok(())
    }
}

/// A statement read the one way exemptions compare them (then without
/// regard to ASCII case): spacing, values and placeholders do not matter.
fn normal(statement: &str) -> String {
    fingerprint::fingerprint(statement, Dialect::Generic)
}

impl Exemption {
    /// `true` until the end of its `until` day.
    #[must_use]
    pub fn in_force(&self, today: Date) -> bool {
        self.until.is_none_or(|until| today <= until)
    }

    fn matches_suspect(&self, suspect: &NPlusOne) -> bool {
        self.what == Exempted::NPlusOne
            && match &self.matches {
                Matches::Statement(s) => normal(s).eq_ignore_ascii_case(&normal(&suspect.fingerprint)),
                Matches::CallSite(site) => suspect.call_site.as_deref().is_some_and(|c| c.contains(&**site)),
            }
    }

    fn matches_violation(&self, violation: &Violation, statements: &[StatementSummary]) -> bool {
        self.what == Exempted::Budget(violation.budget)
            && match &self.matches {
                Matches::Statement(s) => {
                    let s = normal(s);
                    statements.iter().any(|st| normal(&st.fingerprint).eq_ignore_ascii_case(&s))
                }
                Matches::CallSite(_) => false,
            }
    }
}

/// What exemptions did to a scope's suspects and violations.
#[derive(Default)]
pub(crate) struct Judged {
    /// Exemptions in force that matched: what they accepted is gone from
    /// the report's suspects and violations.
    pub(crate) applied: Vec<Exemption>,
    /// Exemptions past their date that matched: what they would have
    /// accepted stays, and `strict` fails on them.
    pub(crate) expired: Vec<Exemption>,
}

/// Removes from `suspects` and `violations` what an exemption in force
/// accepts; then lists the expired exemptions that would have covered what
/// is left (one renewed elsewhere, in force, is not expired).
pub(crate) fn judge<'a>(
    exemptions: impl Iterator<Item = &'a Exemption> + Clone,
    suspects: &mut Vec<NPlusOne>,
    violations: &mut Vec<Violation>,
    statements: &[StatementSummary],
    today: Date,
) -> Judged {
    let mut judged = Judged::default();
    let hits = |e: &Exemption, suspects: &[NPlusOne], violations: &[Violation]| {
        suspects.iter().any(|s| e.matches_suspect(s)) || violations.iter().any(|v| e.matches_violation(v, statements))
    };
    for e in exemptions.clone().filter(|e| e.in_force(today)) {
        if hits(e, suspects, violations) {
            suspects.retain(|s| !e.matches_suspect(s));
            violations.retain(|v| !e.matches_violation(v, statements));
            judged.applied.push(e.clone());
        }
    }
    for e in exemptions.filter(|e| !e.in_force(today)) {
        if hits(e, suspects, violations) {
            judged.expired.push(e.clone());
        }
    }
    judged
}

#[cfg(test)]
mod tests {
    use super::{Date, Exempted, Exemption, Matches, judge};
    use crate::tracker::report::NPlusOne;

    #[test]
    fn an_exemption_in_force_wins_over_an_expired_one_in_any_order() {
        let exemption = |until: &str| Exemption {
            what: Exempted::NPlusOne,
            matches: Matches::Statement("SELECT * FROM users WHERE id = ?".into()),
            reason: "known".into(),
            until: Date::parse(until),
        };
        let today = Date::parse("2026-06-01").unwrap();
        let suspect = NPlusOne {
            fingerprint: "SELECT * FROM users WHERE id = ?".into(),
            backend: "PostgreSQL",
            count: 6,
            call_site: None,
        };
        for list in
            [[exemption("2026-01-01"), exemption("2027-01-01")], [exemption("2027-01-01"), exemption("2026-01-01")]]
        {
            let mut suspects = vec![suspect.clone()];
            let judged = judge(list.iter(), &mut suspects, &mut Vec::new(), &[], today);
            assert!(suspects.is_empty());
            assert_eq!((judged.applied.len(), judged.expired.len()), (1, 0));
        }
        let mut suspects = vec![suspect];
        let judged = judge([exemption("2026-01-01")].iter(), &mut suspects, &mut Vec::new(), &[], today);
        assert_eq!((suspects.len(), judged.applied.len(), judged.expired.len()), (1, 0, 1));
    }

    #[test]
    fn dates_read_and_count_like_the_calendar() {
        assert_eq!(Date::from_days(0).to_string(), "1970-01-01");
        assert_eq!(Date::from_days(19_782).to_string(), "2024-02-29");
        assert_eq!(Date::from_days(20_819).to_string(), "2027-01-01");
        assert_eq!(Date::parse("2027-03-31"), Some(Date { year: 2027, month: 3, day: 31 }));
        assert_eq!(Date::parse("2024-02-29").map(|d| d.day), Some(29));
        for bad in ["2025-02-29", "2027-13-01", "2027-04-31", "27-03-31", "2027/03/31", "2027-3-31", ""] {
            assert_eq!(Date::parse(bad), None, "{bad}");
        }
        assert!(Date::today() > Date { year: 2025, month: 1, day: 1 });
    }
}
