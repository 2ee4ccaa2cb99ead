//! The timelines a dashboard keeps per name (the worst scopes and a sample
//! of the others), and how they are shown: a waterfall of one request,
//! server-side SVG, and its JSON.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, SystemTime};

use super::page::{esc, number};
use crate::tracker::budget::Budget;
use crate::tracker::observe::ScopeEnd;
use crate::tracker::report::{NPlusOne, Outcome, Violation};
use crate::tracker::timeline::{Entry, Timeline};

/// Sampled timelines kept per name, newest first.
pub(super) const SAMPLED: usize = 2;
/// Gaps shorter than this are not drawn or listed.
const MIN_GAP: Duration = Duration::from_micros(500);

/// One scope's timeline, kept.
pub(super) struct Kept {
    pub(super) id: u64,
    pub(super) route: usize,
    pub(super) at: SystemTime,
    pub(super) outcome: Outcome,
    pub(super) status: Option<u16>,
    pub(super) violations: Vec<Violation>,
    /// The scope's `timeout_ms`, drawn as a line.
    pub(super) limit_ms: Option<u64>,
    pub(super) n_plus_one: Vec<NPlusOne>,
    /// Among the name's worst now (else kept as a sample).
    worst: AtomicBool,
    pub(super) timeline: Arc<Timeline>,
}

/// What makes one scope worse than another: panicked, then over budget,
/// then slower.
pub(super) type Rank = (u8, Duration);

pub(super) fn rank(end: &ScopeEnd<'_>) -> Rank {
    let bad = match end.outcome() {
        Outcome::Panicked => 2,
        Outcome::Exceeded => 1,
        Outcome::Ok | Outcome::Cancelled => 0,
    };
    (bad, end.figures().elapsed())
}

/// A name's kept timelines.
#[derive(Default)]
pub(super) struct Timelines {
    /// The worst, at most the dashboard's `timelines`, worst first.
    pub(super) worst: Vec<(Rank, Arc<Kept>)>,
    pub(super) sampled: VecDeque<Arc<Kept>>,
    seen: u64,
}

impl Timelines {
    /// Counts a scope and says whether its timeline is wanted: as one of
    /// the `max` worst, and as the one in `one_in` sampled.
    pub(super) fn wants(&mut self, rank: Rank, max: usize, one_in: u64) -> (bool, bool) {
        let sampled = one_in > 0 && self.seen.is_multiple_of(one_in);
        self.seen += 1;
        (self.among_worst(rank, max), sampled)
    }

    /// Whether a scope of `rank` belongs among the `max` worst now.
    fn among_worst(&self, rank: Rank, max: usize) -> bool {
        max > 0 && (self.worst.len() < max || self.worst.last().is_some_and(|(r, _)| rank > *r))
    }

    pub(super) fn keep(&mut self, rank: Rank, kept: &Arc<Kept>, max: usize, sampled: bool) {
        if kept.worst() && self.among_worst(rank, max) {
            let at = self.worst.partition_point(|(r, _)| *r >= rank);
            self.worst.insert(at, (rank, Arc::clone(kept)));
            for (_, displaced) in self.worst.split_off(max.min(self.worst.len())) {
                displaced.worst.store(false, Relaxed);
            }
        } else {
            kept.worst.store(false, Relaxed);
        }
        if sampled {
            super::push_bounded(&mut self.sampled, Arc::clone(kept), SAMPLED);
        }
    }

    /// Every one kept: the worst first, then the sampled ones not among them.
    pub(super) fn all(&self) -> Vec<Arc<Kept>> {
        let mut all: Vec<Arc<Kept>> = self.worst.iter().map(|(_, k)| Arc::clone(k)).collect();
        for k in &self.sampled {
            if !all.iter().any(|a| a.id == k.id) {
                all.push(Arc::clone(k));
            }
        }
        all
    }

    pub(super) fn find(&self, id: u64) -> Option<Arc<Kept>> {
        self.all().into_iter().find(|k| k.id == id)
    }
}

impl Kept {
    pub(super) fn of(end: &ScopeEnd<'_>, id: u64, route: usize, worst: bool, timeline: Arc<Timeline>) -> Kept {
        let report = (end.outcome() != Outcome::Ok || end.n_plus_one() > 0).then(|| end.report());
        Kept {
            id,
            route,
            at: SystemTime::now(),
            outcome: end.outcome(),
            status: end.status(),
            violations: report.map(|r| r.violations.clone()).unwrap_or_default(),
            limit_ms: end.limits().get(Budget::Timeout),
            n_plus_one: report.map(|r| r.n_plus_one.clone()).unwrap_or_default(),
            worst: AtomicBool::new(worst),
            timeline,
        }
    }

    /// Whether it is among its name's worst now, or kept as a sample.
    pub(super) fn worst(&self) -> bool {
        self.worst.load(Relaxed)
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The CSS class of a backend: a fixed set, never the adapter's text.
fn backend_class(backend: &str) -> &'static str {
    match backend {
        "PostgreSQL" => "b-postgresql",
        "SQLite" => "b-sqlite",
        "MySQL" => "b-mysql",
        "redis" => "b-redis",
        "mongodb" | "MongoDB" => "b-mongodb",
        "http" => "b-http",
        _ => "b-other",
    }
}

/// A step of the axis, in ms, giving five to ten ticks over `span`.
fn tick_step(span: f64) -> f64 {
    let raw = (span / 8.0).max(0.001);
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * power).find(|s| *s >= raw).unwrap_or(10.0 * power)
}

/// The waterfall: a lane of the scope's own polls and of the gaps in which
/// nothing ran, then one bar per operation on a time axis, coloured by
/// backend and outcome, the scope's `timeout_ms` as a line; each bar's
/// title (hover) gives its statement and figures.
pub(super) fn svg(kept: &Kept) -> String {
    let t = &kept.timeline;
    let (label, width, row) = (70.0, 900.0, 16.0);
    // The axis reaches the limit when it is near; a far limit is named at
    // the right edge rather than squeezing every bar to a line.
    let elapsed = ms(t.elapsed()).max(0.001);
    let limit = kept.limit_ms.map(|l| l as f64);
    let span = match limit {
        Some(limit) if limit <= 3.0 * elapsed => elapsed.max(limit),
        _ => elapsed,
    };
    let x = |d: Duration| label + ms(d) / span * (width - label - 40.0);
    let mut entries: Vec<&Entry> = t.entries().iter().collect();
    entries.sort_by_key(|e| e.start);
    let height = 24.0 + row * (entries.len() as f64 + 1.0) + 18.0;
    let mut svg = format!(
        "<svg class=\"waterfall\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\">\
         <title>timeline: {} operations over {} ms</title>",
        entries.len(),
        number(ms(t.elapsed()))
    );
    // The axis.
    let step = tick_step(span);
    let mut tick = 0.0;
    while tick <= span + 1e-9 {
        let tx = x(Duration::from_secs_f64(tick / 1e3));
        let _ = write!(
            svg,
            "<line class=\"tick\" x1=\"{tx:.1}\" y1=\"18\" x2=\"{tx:.1}\" y2=\"{bottom:.1}\"></line>\
             <text class=\"tick\" x=\"{tx:.1}\" y=\"12\">{} ms</text>",
            number(tick),
            bottom = height - 18.0,
        );
        tick += step;
    }
    // The scope's own lane: its polls, and the gaps.
    let lane = 24.0;
    let _ = write!(svg, "<text class=\"lane\" x=\"2\" y=\"{:.1}\">polls</text>", lane + 11.0);
    for p in t.polls() {
        let _ = write!(
            svg,
            "<rect class=\"poll\" x=\"{:.1}\" y=\"{lane:.1}\" width=\"{:.1}\" height=\"12\"><title>poll at {} ms: {} ms of the scope's own code</title></rect>",
            x(p.start),
            (x(p.start.saturating_add(p.duration)) - x(p.start)).max(1.0),
            number(ms(p.start)),
            number(ms(p.duration)),
        );
    }
    for g in t.gaps(MIN_GAP) {
        let _ = write!(
            svg,
            "<rect class=\"gap\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"4\"><title>gap at {} ms: {} ms with no operation and no poll</title></rect>",
            x(g.start),
            lane + 12.0,
            (x(g.start.saturating_add(g.duration)) - x(g.start)).max(1.0),
            number(ms(g.start)),
            number(ms(g.duration)),
        );
    }
    for (i, e) in entries.iter().enumerate() {
        let y = lane + row * (i as f64 + 1.0);
        let _ = write!(
            svg,
            "<text class=\"lane\" x=\"2\" y=\"{:.1}\">{}</text>\
             <rect class=\"bar {} o-{}\" x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"12\"><title>{}: {} ms at {} ms, {}, {} rows, {}</title></rect>",
            y + 11.0,
            i + 1,
            backend_class(e.backend),
            e.settled.as_str(),
            x(e.start),
            (x(e.start.saturating_add(e.duration)) - x(e.start)).max(1.0),
            esc(&e.subject),
            number(ms(e.duration)),
            number(ms(e.start)),
            esc(e.backend),
            e.rows,
            e.settled.as_str(),
        );
    }
    match (kept.limit_ms, limit) {
        (Some(limit), Some(at)) if at <= span => {
            let lx = x(Duration::from_millis(limit));
            let _ = write!(
                svg,
                "<line class=\"budget\" x1=\"{lx:.1}\" y1=\"18\" x2=\"{lx:.1}\" y2=\"{:.1}\"><title>timeout_ms = {limit}</title></line>\
                 <text class=\"budget\" x=\"{lx:.1}\" y=\"{:.1}\">timeout_ms = {limit}</text>",
                height - 18.0,
                height - 4.0,
            );
        }
        (Some(limit), _) => {
            let _ = write!(
                svg,
                "<text class=\"budget\" x=\"{:.1}\" y=\"{:.1}\">timeout_ms = {limit}, beyond the end →</text>",
                width - 4.0,
                height - 4.0,
            );
        }
        (None, _) => {}
    }
    svg.push_str("</svg>");
    svg
}

/// One line of a kept timeline, for the lists.
pub(super) fn summary(k: &Kept) -> String {
    format!(
        "{} ms, {}{}, {} operations{}",
        number((ms(k.timeline.elapsed()) * 1000.0).round() / 1000.0),
        k.outcome,
        k.status.map_or_else(String::new, |s| format!(" {s}")),
        k.timeline.entries().len() as u64 + k.timeline.omitted_entries(),
        if k.worst() { "" } else { ", sampled" },
    )
}

/// The table of the findings of one timeline: duplicates, repeated calls
/// and N+1 suspects, each with its call site.
pub(super) fn findings(k: &Kept) -> String {
    let t = &k.timeline;
    let mut rows = String::new();
    let mut row = |kind: &str, what: &str, count: u64, site: Option<&str>| {
        let _ = write!(
            rows,
            "<tr class=\"{kind}\"><td>{kind}</td><td><code>{}</code></td><td>{count}</td><td>{}</td></tr>",
            esc(what),
            esc(site.unwrap_or("unknown"))
        );
    };
    for d in t.duplicates() {
        row("duplicate", &d.fingerprint, d.count, d.call_site.as_deref());
    }
    for c in t.repeated_calls() {
        row("repeated-call", &c.call, c.count, c.call_site.as_deref());
    }
    for n in &k.n_plus_one {
        row("n-plus-one", &n.fingerprint, n.count, n.call_site.as_deref());
    }
    if rows.is_empty() {
        return "<p class=\"summary\">No duplicate, repeated call or N+1 in this request.</p>".to_owned();
    }
    format!(
        "<table class=\"findings\"><thead><tr><th>pattern</th><th>statement or call</th><th>times</th><th>call site</th></tr></thead><tbody>{rows}</tbody></table>"
    )
}

/// A kept timeline's own page.
pub(super) fn page(k: &Kept, route_name: &str, base: &str) -> String {
    let t = &k.timeline;
    let mut main = format!(
        "<h1 class=\"route-name\">{}</h1><p class=\"summary\"><a href=\"{}/routes/{}\">the route's page</a> · {}{}</p>",
        esc(route_name),
        esc(base),
        k.route,
        esc(&summary(k)),
        if k.violations.is_empty() {
            String::new()
        } else {
            format!(
                " · exceeded: {}",
                esc(&k.violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
            )
        },
    );
    main.push_str("<h2>Waterfall</h2>");
    main.push_str(&svg(k));
    main.push_str("<h2>Found in this request</h2>");
    main.push_str(&findings(k));
    main.push_str("<h2>Operations</h2><table class=\"operations\"><thead><tr><th>#</th><th>start ms</th><th>ms</th><th>backend</th><th>statement or call</th><th>rows</th><th>outcome</th></tr></thead><tbody>");
    let mut entries: Vec<&Entry> = t.entries().iter().collect();
    entries.sort_by_key(|e| e.start);
    for (i, e) in entries.iter().enumerate() {
        let _ = write!(
            main,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td class=\"o-{s}\">{s}</td></tr>",
            i + 1,
            number(ms(e.start)),
            number(ms(e.duration)),
            esc(e.backend),
            esc(&e.subject),
            e.rows,
            s = e.settled.as_str(),
        );
    }
    main.push_str("</tbody></table>");
    if t.omitted_entries() + t.omitted_polls() > 0 {
        let _ = write!(
            main,
            "<p class=\"summary\">Not kept: {} operations and {} polls past the first {}.</p>",
            t.omitted_entries(),
            t.omitted_polls(),
            crate::tracker::timeline::MAX_ENTRIES
        );
    }
    let polled: Duration = t.polls().iter().map(|p| p.duration).sum();
    let gaps: Duration = t.gaps(MIN_GAP).iter().map(|g| g.duration).sum();
    let _ = write!(
        main,
        "<p class=\"summary\">The scope's own code (its polls): {} ms; time with no operation and no poll: {} ms.</p>",
        number(ms(polled)),
        number(ms(gaps))
    );
    super::page::layout(base, route_name, &main)
}

/// A kept timeline as JSON: every operation, poll and gap, and the findings.
pub(super) fn json(k: &Kept, route_name: &str) -> serde_json::Value {
    use serde_json::json;
    let t = &k.timeline;
    let mut entries: Vec<&Entry> = t.entries().iter().collect();
    entries.sort_by_key(|e| e.start);
    let span = |start: Duration, duration: Duration| json!({ "start_ms": ms(start), "ms": ms(duration) });
    json!({
        "id": k.id,
        "route": k.route,
        "name": route_name,
        "seconds_ago": super::route::age(k.at).as_secs(),
        "outcome": k.outcome.as_str(),
        "status": k.status,
        "kept_as": if k.worst() { "worst" } else { "sampled" },
        "elapsed_ms": ms(t.elapsed()),
        "timeout_ms": k.limit_ms,
        "violations": k.violations.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "operations": entries.iter().map(|e| json!({
            "start_ms": ms(e.start),
            "ms": ms(e.duration),
            "backend": e.backend,
            "statement": &*e.subject,
            "rows": e.rows,
            "outcome": e.settled.as_str(),
        })).collect::<Vec<_>>(),
        "omitted_operations": t.omitted_entries(),
        "polls": t.polls().iter().map(|p| span(p.start, p.duration)).collect::<Vec<_>>(),
        "omitted_polls": t.omitted_polls(),
        "gaps": t.gaps(MIN_GAP).iter().map(|g| span(g.start, g.duration)).collect::<Vec<_>>(),
        "duplicates": t.duplicates().iter().map(|d| json!({
            "statement": d.fingerprint, "backend": d.backend, "count": d.count, "call_site": d.call_site,
        })).collect::<Vec<_>>(),
        "repeated_calls": t.repeated_calls().iter().map(|c| json!({
            "call": c.call, "count": c.count, "call_site": c.call_site,
        })).collect::<Vec<_>>(),
        "n_plus_one": k.n_plus_one.iter().map(|n| json!({
            "statement": n.fingerprint, "count": n.count, "call_site": n.call_site,
        })).collect::<Vec<_>>(),
    })
}
