//! The dashboard's HTML, rendered on the server: every text escaped, no
//! inline script or style (the Content-Security-Policy allows neither), the
//! charts as SVG.

use std::fmt::Write as _;
use std::sync::Arc;

use super::Inner;
use super::histogram::Histogram;
use super::route::{self, Recent, Route, Stats, shown, unit};
use crate::tracker::budget::Budget;

/// `text` safe in HTML text and in quoted attribute values.
pub(super) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// How the overview is sorted.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Sort {
    Utilization,
    Violations,
    Scopes,
    Name,
}

impl Sort {
    pub(super) fn parse(query: Option<&str>) -> Sort {
        let value =
            query.into_iter().flat_map(|q| q.split('&')).find_map(|pair| pair.strip_prefix("sort=")).unwrap_or("");
        match value {
            "violations" => Sort::Violations,
            "scopes" => Sort::Scopes,
            "name" => Sort::Name,
            _ => Sort::Utilization,
        }
    }
}

pub(super) fn layout(base: &str, title: &str, main: &str) -> String {
    let base = esc(base);
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>zen · {title}</title><link rel=\"stylesheet\" href=\"{base}/assets/style.css\">\
         <script src=\"{base}/assets/app.js\" defer></script></head>\
         <body><header><a class=\"home\" href=\"{home}\">zen</a><span>budgets per route and job</span>\
         <span id=\"live\" class=\"live\">live</span></header>\
         <main data-events=\"{base}/events\">{main}</main></body></html>\n",
        title = esc(title),
        home = if base.is_empty() { "/".to_owned() } else { base.clone() },
    )
}

/// A number for display: times in ms with sensible decimals.
pub(super) fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else if value < 0.1 {
        format!("{value:.3}")
    } else if value < 10.0 {
        format!("{value:.2}")
    } else if value < 100.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.0}")
    }
}

fn percent(per_mille: u64) -> String {
    format!("{}%", number(per_mille as f64 / 10.0))
}

/// A figure's histogram value as shown, with its limit if one is set.
fn against(budget: Budget, value: u64, stats: &Stats) -> String {
    let shown = number(shown(budget, value));
    match stats.limits.get(budget) {
        Some(limit) => format!("{shown} <span class=\"limit\">/ {limit}</span>"),
        None => shown,
    }
}

fn measured(stats: &Stats, budget: Budget) -> Option<&Histogram> {
    Some(&stats.figures[budget as usize]).filter(|h| h.count() > 0)
}

/// Bars of the highest use of a limit per 10 s over the last ten minutes.
fn sparkline(stats: &Stats, now: u64, width: u32, height: u32) -> String {
    let series = stats.series(now);
    let bar = width / series.len() as u32;
    let mut svg = format!(
        "<svg class=\"spark\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\">\
         <title>highest use of a limit per 10 s, last 10 minutes</title>"
    );
    let full = f64::from(height) / 1.5;
    let _ = write!(
        svg,
        "<line class=\"budget\" x1=\"0\" x2=\"{width}\" y1=\"{y}\" y2=\"{y}\"/>",
        y = f64::from(height) - full
    );
    for (i, slot) in series.iter().enumerate() {
        let Some(slot) = slot else { continue };
        let h = (slot.max_use as f64 / 1000.0 * full).clamp(1.0, f64::from(height));
        let class = if slot.violated > 0 { "over" } else { "ok" };
        let _ = write!(
            svg,
            "<rect class=\"{class}\" x=\"{x}\" y=\"{y:.1}\" width=\"{w}\" height=\"{h:.1}\"/>",
            x = i as u32 * bar,
            y = f64::from(height) - h,
            w = bar.saturating_sub(1).max(1),
        );
    }
    svg.push_str("</svg>");
    svg
}

fn utilization_p99(stats: &Stats) -> Option<u64> {
    (stats.utilization.count() > 0).then(|| stats.utilization.quantile(0.99))
}

/// One row of the overview, rendered under its route's lock alone, with
/// what it sorts by.
struct Row {
    name: String,
    count: u64,
    violation_rate: f64,
    utilization: Option<u64>,
    html: String,
}

fn overview_row(r: &Route, s: &Stats, base: &str, now: u64) -> Row {
    let mut html = String::new();
    let _ = write!(
        html,
        "<tr data-route=\"{id}\"><td class=\"name\"><a href=\"{base}/routes/{id}\">{name}</a></td>\
         <td class=\"kind\">{kind}</td><td class=\"scopes\">{count}</td><td class=\"outcomes\">{outcomes}</td>\
         <td class=\"violations\">{violations}</td><td class=\"use\">{use_}</td>",
        id = r.id,
        base = esc(base),
        name = esc(&r.name),
        kind = r.kind,
        count = s.count,
        outcomes = outcomes(s),
        violations = format_args!(
            "{} <span class=\"limit\">({})</span>",
            percent((s.violation_rate() * 1000.0).round() as u64),
            s.violated
        ),
        use_ = utilization_p99(s).map_or_else(|| "-".to_owned(), percent),
    );
    for budget in route::columns() {
        let cell = match measured(s, budget) {
            None => "-".to_owned(),
            Some(h) if budget == Budget::Queries => format!(
                "{} / <b class=\"p99\">{}</b> / {}",
                number(shown(budget, h.quantile(0.5))),
                number(shown(budget, h.quantile(0.99))),
                against(budget, h.max(), s)
            ),
            Some(h) => format!("{} / {}", number(shown(budget, h.quantile(0.99))), against(budget, h.max(), s)),
        };
        let _ = write!(html, "<td class=\"{}\">{cell}</td>", budget.event_field());
    }
    let _ = write!(html, "<td>{}</td></tr>", sparkline(s, now, 120, 24));
    Row {
        name: r.name.to_string(),
        count: s.count,
        violation_rate: s.violation_rate(),
        utilization: utilization_p99(s),
        html,
    }
}

pub(super) fn overview(inner: &Inner, base: &str, sort: Sort) -> String {
    let now = inner.now_slot();
    // Each route's lock is held while its own row is written, never two at
    // once: scopes ending meanwhile wait for one row at most.
    let mut rows: Vec<Row> = inner
        .all_routes()
        .iter()
        .map(|r| overview_row(r, &r.stats.lock().unwrap_or_else(std::sync::PoisonError::into_inner), base, now))
        .collect();
    match sort {
        Sort::Utilization => rows.sort_by_key(|r| std::cmp::Reverse(r.utilization)),
        Sort::Violations => rows.sort_by(|a, b| b.violation_rate.total_cmp(&a.violation_rate)),
        Sort::Scopes => rows.sort_by_key(|r| std::cmp::Reverse(r.count)),
        Sort::Name => rows.sort_by(|a, b| a.name.cmp(&b.name)),
    }
    let mut main = format!(
        "<h1>Routes and jobs</h1><p class=\"summary\">{} names, {} scopes since the dashboard started. \
         Queries are p50 / p99 / max, other figures p99 / max, against the limit where one is set; \
         use is the highest share of a limit a scope used.</p>",
        rows.len(),
        inner.generation.load(std::sync::atomic::Ordering::Relaxed),
    );
    let head = |key: &str, label: &str| {
        let mut class = if Sort::parse(Some(&format!("sort={key}"))) == sort { "sorted" } else { "" }.to_owned();
        if key == "name" {
            class.push_str(" text");
        }
        format!("<th class=\"{}\"><a href=\"?sort={key}\">{label}</a></th>", class.trim())
    };
    let figures: String = route::columns()
        .map(|budget| match unit(budget) {
            "" => format!("<th>{}</th>", budget.label()),
            unit => format!("<th>{} {unit}</th>", budget.label()),
        })
        .collect();
    let _ = write!(
        main,
        "<table class=\"overview\"><thead><tr>{}<th class=\"text\">kind</th>{}<th class=\"text\">outcomes</th>{}{}\
         {figures}<th>last 10 min</th></tr></thead><tbody>",
        head("name", "name"),
        head("scopes", "scopes"),
        head("violations", "violation rate"),
        head("utilization", "use p99"),
    );
    for row in &rows {
        main.push_str(&row.html);
    }
    main.push_str("</tbody></table>");
    main.push_str(&recent_table(&inner.recent(), inner, base, "Recent exceeded, cancelled and panicked scopes"));
    layout(base, "routes and jobs", &main)
}

fn outcomes(s: &Stats) -> String {
    let [ok, exceeded, cancelled, panicked] = s.outcomes;
    let mut out = format!("<span class=\"ok\">{ok} ok</span>");
    for (n, label) in [(exceeded, "exceeded"), (cancelled, "cancelled"), (panicked, "panicked")] {
        if n > 0 {
            let _ = write!(out, " <span class=\"{label}\">{n} {label}</span>");
        }
    }
    out
}

fn recent_table(recent: &[Arc<Recent>], inner: &Inner, base: &str, title: &str) -> String {
    if recent.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "<h2>{}</h2><table class=\"recent\"><thead><tr><th>ago</th><th>name</th><th>outcome</th><th>status</th><th>exceeded</th></tr></thead><tbody>",
        esc(title)
    );
    for r in recent {
        let name = inner.route_by_id(r.route).map_or_else(
            || esc(&r.report.name),
            |route| format!("<a href=\"{}/routes/{}\">{}</a>", esc(base), route.id, esc(&route.name)),
        );
        let violations: Vec<String> = r.report.violations.iter().map(|v| esc(&v.to_string())).collect();
        let _ = write!(
            out,
            "<tr><td>{} s</td><td class=\"name\">{name}</td><td class=\"{outcome}\">{outcome}</td><td>{status}</td><td>{violations}</td></tr>",
            route::age(r.at).as_secs(),
            outcome = r.report.outcome,
            status = r.report.status.map_or_else(|| "-".to_owned(), |s| s.to_string()),
            violations = if violations.is_empty() { "-".to_owned() } else { violations.join("; ") },
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// The bars of a figure's histogram, one per power of two.
fn histogram_chart(budget: Budget, h: &Histogram) -> String {
    let mut octaves = h.octaves();
    let first = octaves.iter().position(|(_, n)| *n > 0).unwrap_or(0);
    octaves.drain(..first);
    let (width, height) = (240u32, 60u32);
    let most = octaves.iter().map(|(_, n)| *n).max().unwrap_or(1).max(1);
    let bar = (width / octaves.len().max(1) as u32).clamp(2, 24);
    let mut svg = format!(
        "<figure><svg class=\"histogram\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\">\
         <title>{} per scope</title>",
        esc(budget.label())
    );
    for (i, (bound, n)) in octaves.iter().enumerate() {
        let h = (*n as f64 / most as f64 * f64::from(height)).max(if *n > 0 { 1.0 } else { 0.0 });
        let below = if *bound == 0 { "0".to_owned() } else { format!("under {}", number(shown(budget, *bound))) };
        let unit = if unit(budget).is_empty() { String::new() } else { format!(" {}", unit(budget)) };
        let _ = write!(
            svg,
            "<rect x=\"{x}\" y=\"{y:.1}\" width=\"{w}\" height=\"{h:.1}\"><title>{below}{unit}: {n} scopes</title></rect>",
            x = i as u32 * bar,
            y = f64::from(height) - h,
            w = bar - 1,
        );
    }
    let range = match (octaves.first(), octaves.last()) {
        (Some((low, _)), Some((high, _))) => {
            let low = if *low == 0 { "0".to_owned() } else { number(shown(budget, low / 2)) };
            format!(": {low} to under {} {}", number(shown(budget, (*high).max(1))), unit(budget))
        }
        _ => String::new(),
    };
    let _ = write!(svg, "</svg><figcaption>{}{}</figcaption></figure>", esc(budget.label()), esc(range.trim_end()));
    svg
}

pub(super) fn route_page(inner: &Inner, base: &str, route: &Route) -> String {
    let s = route.stats.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut main = format!(
        "<h1 class=\"route-name\">{}</h1><p class=\"summary\">{}, {} scopes: {}</p>",
        esc(&route.name),
        route.kind,
        s.count,
        outcomes(&s)
    );
    main.push_str("<h2>Figures</h2><table class=\"figures\"><thead><tr><th>figure</th><th>p50</th><th>p95</th><th>p99</th><th>max</th><th>limit</th><th>exceeded</th></tr></thead><tbody>");
    for &budget in Budget::ALL {
        let Some(h) = measured(&s, budget) else { continue };
        let _ = write!(
            main,
            "<tr class=\"{key}\"><td>{label}{unit}</td><td>{}</td><td>{}</td><td class=\"p99\">{}</td><td>{}</td><td>{limit}</td><td>{exceeded}</td></tr>",
            number(shown(budget, h.quantile(0.5))),
            number(shown(budget, h.quantile(0.95))),
            number(shown(budget, h.quantile(0.99))),
            number(shown(budget, h.max())),
            key = budget.event_field(),
            label = budget.label(),
            unit = if unit(budget).is_empty() { String::new() } else { format!(" ({})", unit(budget)) },
            limit = s.limits.get(budget).map_or_else(|| "-".to_owned(), |l| l.to_string()),
            exceeded = s.violations[budget as usize],
        );
    }
    main.push_str("</tbody></table>");
    main.push_str("<h2>Budgets</h2><table class=\"budgets\"><thead><tr><th>budget</th><th>limit</th><th>mean use</th><th>max use</th><th>exceeded</th></tr></thead><tbody>");
    for &budget in Budget::ALL {
        let u = s.uses[budget as usize];
        let exceeded = s.violations[budget as usize];
        if u.count == 0 && exceeded == 0 {
            continue;
        }
        let limit = s.limits.get(budget).map_or_else(|| "-".to_owned(), |l| format!("{l} {}", budget.unit()));
        let _ = write!(
            main,
            "<tr class=\"{key}\"><td>{key}</td><td>{limit}</td><td>{}</td><td>{}</td><td class=\"{class}\">{exceeded}</td></tr>",
            percent(u.sum / u.count.max(1)),
            percent(u.max),
            key = budget.key(),
            class = if exceeded > 0 { "exceeded" } else { "none" },
        );
    }
    main.push_str("</tbody></table>");
    let _ = write!(
        main,
        "<h2>Use over the last 10 minutes</h2><p class=\"summary\">Highest share of a limit per 10 s; the line is the budget.</p>{}",
        sparkline(&s, inner.now_slot(), 600, 90)
    );
    main.push_str("<h2>Distributions</h2><div class=\"charts\">");
    for &budget in Budget::ALL {
        if let Some(h) = measured(&s, budget) {
            main.push_str(&histogram_chart(budget, h));
        }
    }
    main.push_str("</div>");
    main.push_str("<h2>Statements by total time</h2><table class=\"statements\"><thead><tr><th>statement</th><th>backend</th><th>count</th><th>total ms</th><th>mean ms</th></tr></thead><tbody>");
    for st in s.statements_by_time() {
        let total = st.total_ns as f64 / 1e6;
        let _ = write!(
            main,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&st.fingerprint),
            esc(st.backend),
            st.count,
            number(total),
            number(total / st.count.max(1) as f64),
        );
    }
    let (other, other_ns) = s.other_statements;
    if other > 0 {
        let _ = write!(
            main,
            "<tr><td>other statements</td><td></td><td>{other}</td><td>{}</td><td></td></tr>",
            number(other_ns as f64 / 1e6)
        );
    }
    main.push_str("</tbody></table>");
    if !s.suspects.is_empty() {
        main.push_str("<h2>N+1 suspects</h2><table class=\"suspects\"><thead><tr><th>statement</th><th>call site</th><th>scopes</th><th>most in one scope</th></tr></thead><tbody>");
        for sus in &s.suspects {
            let _ = write!(
                main,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&sus.fingerprint),
                esc(sus.call_site.as_deref().unwrap_or("unknown")),
                sus.scopes,
                sus.max_count
            );
        }
        main.push_str("</tbody></table>");
    }
    let kept = s.timelines.all();
    if let Some(worst) = kept.first() {
        let _ = write!(
            main,
            "<h2>{title}</h2><p class=\"summary\"><a href=\"{base}/requests/{id}\">{}</a></p>{}{}",
            esc(&super::waterfall::summary(worst)),
            super::waterfall::svg(worst),
            super::waterfall::findings(worst),
            base = esc(base),
            id = worst.id,
            title = if worst.worst() { "The worst request's timeline" } else { "A sampled request's timeline" },
        );
        main.push_str("<h2>Timelines kept</h2><ul class=\"timelines\">");
        for k in &kept {
            let _ = write!(
                main,
                "<li><a href=\"{}/requests/{}\">{} s ago: {}</a></li>",
                esc(base),
                k.id,
                route::age(k.at).as_secs(),
                esc(&super::waterfall::summary(k))
            );
        }
        main.push_str("</ul>");
    }
    if !s.recent.is_empty() {
        main.push_str("<h2>Recent exceeded, cancelled and panicked scopes</h2>");
        for b in &s.recent {
            let violations: Vec<String> = b.violations.iter().map(ToString::to_string).collect();
            let summary = format!(
                "{} s ago: {}{}{}",
                route::age(b.at).as_secs(),
                b.outcome,
                b.status.map_or_else(String::new, |st| format!(", status {st}")),
                if violations.is_empty() { String::new() } else { format!(", {}", violations.join("; ")) },
            );
            let body = match b.full.upgrade() {
                Some(full) => esc(&full.report.to_string()),
                None => {
                    format!("(no longer kept in full: the dashboard keeps the last {} reports)", inner.options.recent)
                }
            };
            let _ = write!(
                main,
                "<details class=\"report\"><summary>{}</summary><pre>{body}</pre></details>",
                esc(&summary)
            );
        }
    }
    drop(s);
    layout(base, &route.name, &main)
}

#[cfg(test)]
mod tests {
    use super::{Sort, esc};

    #[test]
    fn every_markup_character_is_escaped() {
        assert_eq!(
            esc(r#"<script>alert("x") & 'y'</script>"#),
            "&lt;script&gt;alert(&quot;x&quot;) &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }

    #[test]
    fn an_unknown_sort_is_by_use() {
        assert!(Sort::parse(Some("sort=violations&x=1")) == Sort::Violations);
        assert!(Sort::parse(Some("sort=<script>")) == Sort::Utilization);
        assert!(Sort::parse(None) == Sort::Utilization);
    }
}
