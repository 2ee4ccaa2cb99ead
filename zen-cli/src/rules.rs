//! `zen rules`: a Prometheus rule file from the metrics every zen scope
//! exports (`zen_runtime::metrics`): one set of rules for every route and
//! job, with no line per route, since the routes, their budgets and their
//! limits are labels and series of the metrics themselves.
//!
//! - Recording rules, for each window (`--short`, `--long`):
//!   `zen:scope_exceeded_ratio:rate<window>`, the share of a route's scopes
//!   that ended over a budget; `zen:budget_violation_ratio:rate<window>`,
//!   the share of its scopes that exceeded each budget; and, for the short
//!   window, `zen:budget_utilization_ratio:p99_rate<window>`, the p99 of
//!   used / limit per budget (exact at the limit: `1.0` is one of the
//!   ratio histogram's bounds, whatever each route's limit), and
//!   `zen:budget_use:mean_rate<window>`, the mean use in the figure's unit
//!   (from `zen_budget_limit`). The p99 needs zen's buckets
//!   (`zen_runtime::metrics::BUCKETS`): without them the exporter writes
//!   summaries, and that rule has nothing to read.
//! - One alerting rule, `ZenBudgetExceeded`, in the manner of the SRE
//!   workbook's multi-window alerts: a route's share of requests over a
//!   budget above `--threshold` percent over the long window *and* the
//!   short one (the long one says it matters, the short one that it is
//!   still happening), held for `--for`. Its labels carry the scrape's
//!   `job`, `route`, `method`, `kind` and `budget`, and `severity`
//!   (`--severity`).
//!
//! ```sh
//! zen rules --threshold 2 --short 5m --long 1h --for 2m > zen-rules.yml
//! promtool check rules zen-rules.yml
//! ```

/// What `zen rules` writes.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSettings {
    /// The share of a route's requests over a budget that pages, in percent.
    pub threshold_percent: f64,
    /// The short window, a Prometheus duration (`5m`).
    pub short: String,
    /// The long window (`1h`).
    pub long: String,
    /// How long the condition must hold before the alert fires (`2m`).
    pub hold: String,
    /// The alert's `severity` label.
    pub severity: String,
}

impl Default for RuleSettings {
    fn default() -> Self {
        RuleSettings {
            threshold_percent: 2.0,
            short: "5m".into(),
            long: "1h".into(),
            hold: "2m".into(),
            severity: "page".into(),
        }
    }
}

/// `text` as a Prometheus duration, in milliseconds: units from `ms` to
/// `y`, largest first, each once (`1h30m`, `90s`, `500ms`), or a bare `0`;
/// `None` for anything Prometheus would not read (or past its range).
#[must_use]
pub fn duration_ms(text: &str) -> Option<u64> {
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    if text == "0" {
        return Some(0);
    }
    let (mut rest, mut next_unit, mut total) = (text, 0, 0u64);
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let number: u64 = rest.get(..digits).filter(|d| !d.is_empty())?.parse().ok()?;
        rest = &rest[digits..];
        // `ms` before `m`: the longest unit that matches.
        let at =
            (next_unit..UNITS.len()).filter(|&i| rest.starts_with(UNITS[i].0)).max_by_key(|&i| UNITS[i].0.len())?;
        rest = &rest[UNITS[at].0.len()..];
        next_unit = at + 1;
        total = total.checked_add(number.checked_mul(UNITS[at].1)?)?;
    }
    // Prometheus keeps durations in nanoseconds, as an `i64`.
    (!text.is_empty() && total <= i64::MAX as u64 / 1_000_000).then_some(total)
}

/// The rule file, as YAML.
///
/// # Errors
/// A window or hold that is not a Prometheus duration, a short window not
/// shorter than the long one (or zero), a threshold outside (0, 100), or a
/// severity that is not a plain word: a message naming the flag.
pub fn render_rules(settings: &RuleSettings) -> Result<String, String> {
    let s = settings;
    let duration = |flag: &str, value: &str| {
        duration_ms(value).ok_or_else(|| format!("{flag} {value}: not a Prometheus duration (such as 30s, 5m, 1h)"))
    };
    let (short, long) = (duration("--short", &s.short)?, duration("--long", &s.long)?);
    duration("--for", &s.hold)?;
    if short == 0 || short >= long {
        return Err(format!("--short {} and --long {}: two windows, the short one shorter", s.short, s.long));
    }
    if !(s.threshold_percent > 0.0 && s.threshold_percent < 100.0) {
        return Err(format!("--threshold {}: a percentage above 0 and below 100", s.threshold_percent));
    }
    if s.severity.is_empty() || !s.severity.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err(format!("--severity {}: a word of letters, digits, `_` or `-`", s.severity));
    }
    let ratio = s.threshold_percent / 100.0;
    // `job`: two services behind one Prometheus may serve the same route.
    let by = "job, route, method, kind";
    let mut out = format!(
        "# Written by `zen rules --threshold {} --short {} --long {} --for {} --severity {}`, from the metrics\n\
         # of zen_runtime::metrics: one set of rules for every route and job.\n\
         groups:\n  - name: zen-budgets\n    rules:\n",
        s.threshold_percent, s.short, s.long, s.hold, s.severity
    );
    for window in [&s.short, &s.long] {
        out.push_str(&format!(
            "      - record: zen:scope_exceeded_ratio:rate{window}\n        \
             expr: sum by ({by}) (rate(zen_scopes_total{{outcome=\"exceeded\"}}[{window}])) / sum by ({by}) (rate(zen_scopes_total[{window}]))\n\
             \x20     - record: zen:budget_violation_ratio:rate{window}\n        \
             expr: sum by ({by}, budget) (rate(zen_budget_violations_total[{window}])) / ignoring (budget) group_left sum by ({by}) (rate(zen_scopes_total[{window}]))\n"
        ));
    }
    let window = &s.short;
    out.push_str(&format!(
        "      - record: zen:budget_utilization_ratio:p99_rate{window}\n        \
         expr: histogram_quantile(0.99, sum by ({by}, budget, le) (rate(zen_budget_utilization_ratio_bucket[{window}])))\n\
         \x20     - record: zen:budget_use:mean_rate{window}\n        \
         expr: sum by ({by}, budget) (rate(zen_budget_utilization_ratio_sum[{window}]) * zen_budget_limit) / sum by ({by}, budget) (rate(zen_budget_utilization_ratio_count[{window}]))\n"
    ));
    out.push_str(&format!(
        "  - name: zen-budget-alerts\n    rules:\n      - alert: ZenBudgetExceeded\n        \
         expr: zen:budget_violation_ratio:rate{short} > {ratio} and zen:budget_violation_ratio:rate{long} > {ratio}\n        \
         for: {hold}\n        labels:\n          severity: \"{severity}\"\n        annotations:\n          \
         summary: \"{{{{ with $labels.method }}}}{{{{ . }}}} {{{{ end }}}}{{{{ $labels.route }}}} exceeds {{{{ $labels.budget }}}}\"\n          \
         description: \"{{{{ $value | humanizePercentage }}}} of its {{{{ $labels.kind }}}} scopes exceeded {{{{ $labels.budget }}}} over the last {short} (more than {percent}% over {long} too).\"\n",
        long = s.long,
        short = s.short,
        hold = s.hold,
        severity = s.severity,
        percent = s.threshold_percent,
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{RuleSettings, duration_ms, render_rules};

    #[test]
    fn durations_as_prometheus_reads_them() {
        for (ok, ms) in [("5m", 300_000), ("1h", 3_600_000), ("500ms", 500), ("1h30m", 5_400_000), ("0", 0), ("0s", 0)]
        {
            assert_eq!(duration_ms(ok), Some(ms), "{ok}");
        }
        for bad in ["", "5", "m", "5 m", "1m1h", "5mm", "-5m", "1.5h", "5min", "99999999999y", "1ms5s"] {
            assert_eq!(duration_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_bad_flag_is_an_error_naming_it() {
        let bad = |f: fn(&mut RuleSettings)| {
            let mut s = RuleSettings::default();
            f(&mut s);
            render_rules(&s).unwrap_err()
        };
        assert!(bad(|s| s.short = "5min".into()).starts_with("--short 5min:"));
        assert!(bad(|s| s.long = "300s".into()).starts_with("--short 5m and --long 300s"));
        assert!(bad(|s| s.short = "0s".into()).starts_with("--short 0s and --long"));
        assert!(bad(|s| s.threshold_percent = 0.0).starts_with("--threshold 0:"));
        assert!(bad(|s| s.hold = "soon".into()).starts_with("--for soon:"));
        assert!(bad(|s| s.severity = "a b".into()).starts_with("--severity a b:"));
    }
}
