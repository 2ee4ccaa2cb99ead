//! A report as one line of JSON, as `JsonLines` writes it and `zen
//! suggest` reads it, and the one escaper of zen's hand-written JSON.
//!
//! ```json
//! {"v":1,"ts_ms":1795000000000,"name":"GET /articles/{slug}","kind":"handler",
//!  "handler":"app::show","mode":"observe","outcome":"ok","status":200,
//!  "used":{"max_queries":3,"max_db_ms":1.204,"timeout_ms":4.512,...},
//!  "limits":{"max_queries":5,"timeout_ms":200},"violations":[],
//!  "n_plus_one":[{"statement":"SELECT ...","count":6,"call_site":"..."}],
//!  "statements":[{"statement":"SELECT ...","count":3,"ms":1.1}]}
//! ```
//!
//! `used` is keyed by the `#[zen]` key of each budget, in that key's unit
//! (time in ms, memory in KiB, with decimals); a figure that was not
//! measured (memory without `ZenAlloc`) is absent. Statements are
//! fingerprints, never values, cut at 2 KiB.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use super::Report;
use crate::tracker::budget::{Budget, Measure};

/// The longest statement text written; longer ones are cut.
const MAX_STATEMENT: usize = 2048;

/// `s` as a JSON string: the one escaper of zen's hand-written JSON (these
/// lines, the layer's problem documents). Control characters, and the two
/// separators JavaScript does not allow in strings, as `\uXXXX`.
pub(crate) fn json_string(out: &mut String, s: &str) {
    out.push('"');
    // Runs of characters that need no escape are copied whole.
    let mut run = 0;
    for (i, c) in s.char_indices() {
        let escaped = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            c if u32::from(c) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => "",
            _ => continue,
        };
        out.push_str(&s[run..i]);
        if escaped.is_empty() {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push_str(escaped);
        }
        run = i + c.len_utf8();
    }
    out.push_str(&s[run..]);
    out.push('"');
}

/// A statement, cut at [`MAX_STATEMENT`] bytes on a character boundary.
fn statement(out: &mut String, s: &str) {
    if s.len() <= MAX_STATEMENT {
        return json_string(out, s);
    }
    let mut end = MAX_STATEMENT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    json_string(out, &format!("{}…", &s[..end]));
}

/// A figure in its budget's unit: counts whole, ms and KiB with decimals.
fn figure(out: &mut String, budget: Budget, base: u64) {
    let _ = match budget.measure() {
        Measure::Count => write!(out, "{base}"),
        Measure::Millis => write!(out, "{:.3}", base as f64 / 1e6),
        Measure::KiB => write!(out, "{:.1}", base as f64 / 1024.0),
    };
}

impl Report {
    /// The report as one line of JSON, as
    /// [`JsonLines`](crate::sinks::JsonLines) writes it and `zen suggest`
    /// reads it. No value of a query or a request is in it: statements are
    /// fingerprints, cut at 2 KiB.
    ///
    /// ```json
    /// {"v":1,"ts_ms":1795000000000,"name":"GET /articles/{slug}","kind":"handler",
    ///  "handler":"app::show","mode":"observe","outcome":"ok","status":200,
    ///  "used":{"max_queries":3,"max_db_ms":1.204,"timeout_ms":4.512,...},
    ///  "limits":{"max_queries":5,"timeout_ms":200},"violations":[],
    ///  "n_plus_one":[{"statement":"SELECT ...","count":6,"call_site":"..."}],
    ///  "statements":[{"statement":"SELECT ...","backend":"PostgreSQL","count":3,"ms":1.1}]}
    /// ```
    ///
    /// `used` and `limits` are keyed by each budget's `#[zen]` key, in that
    /// key's unit (`used` with decimals: time in ms, sizes in KiB); a figure
    /// that was not measured (memory without `ZenAlloc`) is absent from
    /// `used`, and `violations` lists the keys of the budgets exceeded.
    #[must_use]
    pub fn to_json(&self) -> String {
        self.to_json_at(SystemTime::now())
    }

    /// [`to_json`](Self::to_json), its `ts_ms` the time given: when the
    /// scope ended, for a line written later.
    pub(crate) fn to_json_at(&self, at: SystemTime) -> String {
        let mut out = String::with_capacity(512);
        let ts = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let _ = write!(out, "{{\"v\":1,\"ts_ms\":{ts},\"name\":");
        json_string(&mut out, &self.name);
        let _ = write!(out, ",\"kind\":\"{}\"", self.kind.as_str());
        if let Some(handler) = self.handler {
            out.push_str(",\"handler\":");
            json_string(&mut out, handler);
        }
        let _ = write!(out, ",\"mode\":\"{}\",\"outcome\":\"{}\"", self.mode.as_str(), self.outcome.as_str());
        if let Some(status) = self.status {
            let _ = write!(out, ",\"status\":{status}");
        }
        if let Some(attempt) = self.attempt {
            let _ = write!(out, ",\"attempt\":{attempt}");
        }
        if let Some(left) = self.caller_time_left {
            let _ = write!(out, ",\"caller_time_left_ms\":{:.3}", left.as_secs_f64() * 1000.0);
        }
        out.push_str(",\"used\":{");
        let mut first = true;
        for &budget in Budget::ALL {
            if let Some(used) = self.used_base(budget) {
                let _ = write!(out, "{}\"{}\":", if first { "" } else { "," }, budget.key());
                figure(&mut out, budget, used);
                first = false;
            }
        }
        out.push_str("},\"limits\":{");
        for (i, (budget, limit)) in self.limits.iter().enumerate() {
            let _ = write!(out, "{}\"{}\":{limit}", if i == 0 { "" } else { "," }, budget.key());
        }
        out.push_str("},\"violations\":[");
        for (i, v) in self.violations.iter().enumerate() {
            let _ = write!(out, "{}\"{}\"", if i == 0 { "" } else { "," }, v.budget.key());
        }
        out.push_str("],\"n_plus_one\":[");
        for (i, n) in self.n_plus_one.iter().enumerate() {
            finding(&mut out, i, "statement", |out| statement(out, &n.fingerprint), n.count, n.call_site.as_deref());
        }
        out.push_str("],\"duplicates\":[");
        for (i, d) in self.duplicates().iter().enumerate() {
            finding(&mut out, i, "statement", |out| statement(out, &d.fingerprint), d.count, d.call_site.as_deref());
        }
        out.push_str("],\"repeated_calls\":[");
        for (i, c) in self.repeated_calls().iter().enumerate() {
            finding(&mut out, i, "call", |out| json_string(out, &c.call), c.count, c.call_site.as_deref());
        }
        out.push_str("],\"statements\":[");
        for (i, s) in self.statements.iter().enumerate() {
            out.push_str(if i == 0 { "{\"statement\":" } else { ",{\"statement\":" });
            statement(&mut out, &s.fingerprint);
            out.push_str(",\"backend\":");
            json_string(&mut out, s.backend);
            let _ = write!(out, ",\"count\":{},\"ms\":{:.3}}}", s.count, s.total.as_secs_f64() * 1e3);
        }
        out.push_str("]}");
        out
    }
}

/// The `i`th pattern found in a list: `{"<key>":...,"count":N}`, with its
/// `call_site` when known; `subject` writes the statement or call.
fn finding(out: &mut String, i: usize, key: &str, subject: impl FnOnce(&mut String), count: u64, site: Option<&str>) {
    let _ = write!(out, "{}{{\"{key}\":", if i == 0 { "" } else { "," });
    subject(out);
    let _ = write!(out, ",\"count\":{count}");
    if let Some(site) = site {
        out.push_str(",\"call_site\":");
        json_string(out, site);
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    #[test]
    fn strings_are_escaped_and_everything_else_copied() {
        let mut out = String::new();
        super::json_string(&mut out, "é \"q\" \\ \n\u{1}\u{2028}ok ✓");
        assert_eq!(out, r#""é \"q\" \\ \u000a\u0001\u2028ok ✓""#);
        out.clear();
        super::json_string(&mut out, "");
        assert_eq!(out, "\"\"");
    }
}
