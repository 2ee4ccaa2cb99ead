//! What a budget is: the table of budgets, their limits, the mode and the
//! kind of work a scope covers.
//!
//! Every budget, and the figure it limits, is one row of the table below:
//! its `Budget` variant, the `#[zen]` key that sets it (also the name of its
//! `Limits` setter), its unit, the `tracing` field that carries what was
//! used (also its JSON key and OpenTelemetry attribute), its
//! `Server-Timing` entry, its metric, its label for people, the range of its
//! values, and whether every scope measures it. `Limits`, `Budget::ALL`,
//! keys, units, `tighter`, violations, `Display`, the report event, the
//! header, the metrics, the dashboard, OpenTelemetry and JSON lines all
//! come from the table; what a budget measures is the one `match` in
//! [`Figures::used`](crate::report::Figures::used).

use std::fmt;
use std::time::Duration;

/// How a budget's limit and use are counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Measure {
    /// A count of things; used and limit in the same unit.
    Count,
    /// Time: limits in whole milliseconds, use measured in nanoseconds.
    Millis,
    /// Memory or bytes: limits in KiB, use measured in bytes.
    KiB,
}

impl Measure {
    /// `used` (nanoseconds, bytes or a count) is over a limit in the
    /// budget's unit. Exact and without overflow: 200.4 ms breaks 200 ms.
    pub(crate) fn over(self, used: u64, limit: u64) -> bool {
        u128::from(used) > self.base(limit)
    }

    /// No room is left: a count at its limit, a time budget spent.
    pub(crate) fn spent(self, used: u64, limit: u64) -> bool {
        match self {
            Measure::Count | Measure::Millis => u128::from(used) >= self.base(limit),
            Measure::KiB => self.over(used, limit),
        }
    }

    /// A limit in base units (nanoseconds, bytes), wide enough for any.
    pub(crate) fn base(self, limit: u64) -> u128 {
        u128::from(limit)
            * match self {
                Measure::Count => 1,
                Measure::Millis => 1_000_000,
                Measure::KiB => 1024,
            }
    }

    /// `used` in the budget's unit, rounded up.
    pub(crate) fn rounded(self, used: u64) -> u64 {
        match self {
            Measure::Count => used,
            Measure::Millis => used.div_ceil(1_000_000),
            Measure::KiB => used.div_ceil(1024),
        }
    }
}

/// Turns a figure in its base unit into the value of its event field:
/// milliseconds with decimals for time, whole numbers otherwise.
macro_rules! event_value {
    (Millis, $v:expr) => {
        $v.map(|ns: u64| ns as f64 / 1e6)
    };
    (KiB, $v:expr) => {
        $v.map(|bytes: u64| bytes.div_ceil(1024))
    };
    (Count, $v:expr) => {
        $v
    };
}
pub(crate) use event_value;

/// The range of values a figure takes, for the buckets of its histogram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// A few to a few hundred: queries, calls.
    Counts,
    /// None to a hundred thousand: rows.
    Rows,
    /// A millisecond to ten seconds.
    Seconds,
    /// A KiB to 256 MiB.
    Bytes,
}

macro_rules! budgets {
    (
        $d:tt
        $(
            $(#[$doc:meta])*
            $variant:ident: $key:ident, $measure:ident, $unit:literal, event $field:ident, timing $timing:literal,
                metric $metric:literal, label $label:literal, scale $scale:ident, every $every:literal;
        )*
    ) => {
        /// One of the budgets a scope can hold, named after its `#[zen]` key.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Budget {
            $( $(#[$doc])* $variant, )*
        }

        impl Budget {
            /// Every budget, in report order.
            pub const ALL: &'static [Budget] = &[ $( Budget::$variant, )* ];

            /// The `#[zen]` key that sets this budget, also the name of its
            /// [`Limits`] setter.
            #[must_use]
            pub const fn key(self) -> &'static str {
                match self { $( Budget::$variant => stringify!($key), )* }
            }

            /// The unit of the limit and of what was used.
            #[must_use]
            pub const fn unit(self) -> &'static str {
                match self { $( Budget::$variant => $unit, )* }
            }

            pub(crate) const fn measure(self) -> Measure {
                match self { $( Budget::$variant => Measure::$measure, )* }
            }

            /// The name of this budget's entry in the layer's `Server-Timing` header.
            #[must_use]
            pub const fn timing_name(self) -> &'static str {
                match self { $( Budget::$variant => $timing, )* }
            }

            /// The `tracing` field of the report event that carries what was
            /// used, also its key in the dashboard's JSON and, after `zen.`,
            /// its OpenTelemetry attribute.
            #[must_use]
            pub const fn event_field(self) -> &'static str {
                match self { $( Budget::$variant => stringify!($field), )* }
            }

            /// The name of the histogram of what was used per scope, in the
            /// `metrics` facade (feature `metrics`): in base units, seconds
            /// or bytes.
            #[must_use]
            pub const fn metric(self) -> &'static str {
                match self { $( Budget::$variant => $metric, )* }
            }

            /// What the figure is, for people: the dashboard's column.
            #[must_use]
            pub const fn label(self) -> &'static str {
                match self { $( Budget::$variant => $label, )* }
            }

            /// The range its values take, for buckets.
            #[must_use]
            pub const fn scale(self) -> Scale {
                match self { $( Budget::$variant => Scale::$scale, )* }
            }

            /// Whether every scope measures it: a figure that applies only to
            /// some (rows, the longest poll, a response) has series only
            /// where a limit is set.
            #[must_use]
            pub const fn every_scope(self) -> bool {
                match self { $( Budget::$variant => $every, )* }
            }

            /// The OpenTelemetry attribute of what was used: `zen.` and the event field.
            #[must_use]
            pub const fn attribute(self) -> &'static str {
                match self { $( Budget::$variant => concat!("zen.", stringify!($field)), )* }
            }

            /// The OpenTelemetry attribute of the limit: `zen.limit.` and the key.
            #[must_use]
            pub const fn limit_attribute(self) -> &'static str {
                match self { $( Budget::$variant => concat!("zen.limit.", stringify!($key)), )* }
            }
        }

        /// The limits of one budget. `Limits::NONE` limits nothing; each setter
        /// adds one limit, in the unit its name says (time in whole
        /// milliseconds, compared as `Duration`s, memory in KiB). Built at
        /// compile time by `#[zen]`, and by hand for layers and job runners.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct Limits {
            /// Each limit, in its budget's unit, at its budget's place in the table.
            values: [u64; Budget::ALL.len()],
            /// Which are set: bit `budget as u32`.
            set: u32,
        }

        impl Limits {
            /// No limit at all: every figure is measured and reported, none is checked.
            pub const NONE: Limits = Limits { values: [0; Budget::ALL.len()], set: 0 };

            $(
                $(#[$doc])*
                #[must_use]
                pub const fn $key(self, value: u64) -> Self {
                    self.with(Budget::$variant, value)
                }
            )*
        }
        /// Each budget under its `#[zen]` key, for the attribute's
        /// `exempt(budget = "...")`: a key missing here fails to compile.
        #[doc(hidden)]
        #[allow(non_upper_case_globals)]
        pub mod by_key {
            $( pub const $key: super::Budget = super::Budget::$variant; )*
        }

        /// The report event, one field per budget with what was used
        /// ([`Budget::event_field`]), beside the fields written at the call.
        macro_rules! report_event {
            ($d level:expr, $d report:expr, $d message:literal, $d($d rest:tt)*) => {
                tracing::event!(
                    target: "zen",
                    $d level,
                    $( $field = $crate::tracker::budget::event_value!($measure, $d report.used_base($crate::tracker::budget::Budget::$variant)), )*
                    $d($d rest)*
                    $d message
                )
            };
        }
        pub(crate) use report_event;
    };
}

budgets! {
    $
    /// `max_queries`: database operations asked for (issued or refused); `0`: none at all.
    Queries: max_queries, Count, "queries", event queries, timing "queries",
        metric "zen_scope_queries", label "queries", scale Counts, every true;
    /// `max_db_ms`: time in database operations, in ms.
    DbTime: max_db_ms, Millis, "ms", event db_ms, timing "db",
        metric "zen_scope_db_duration_seconds", label "db time", scale Seconds, every true;
    /// `max_mem_kb`: peak live heap, in KiB (needs `ZenAlloc`).
    Memory: max_mem_kb, KiB, "KiB", event mem_peak_kib, timing "mem",
        metric "zen_scope_peak_memory_bytes", label "peak memory", scale Bytes, every true;
    /// `timeout_ms`: wall-clock time from start to end, in ms.
    Timeout: timeout_ms, Millis, "ms", event elapsed_ms, timing "total",
        metric "zen_scope_duration_seconds", label "elapsed", scale Seconds, every true;
    /// `max_http_calls`: calls to external systems asked for (made or refused); `0`: none.
    HttpCalls: max_http_calls, Count, "calls", event http_calls, timing "http-calls",
        metric "zen_scope_http_calls", label "external calls", scale Counts, every true;
    /// `max_http_ms`: time in calls to external systems, bodies included, in ms.
    HttpTime: max_http_ms, Millis, "ms", event http_ms, timing "http",
        metric "zen_scope_http_duration_seconds", label "external time", scale Seconds, every true;
    /// `max_poll_ms`: the longest single poll of the scope's future, in ms:
    /// how long it held its thread without yielding.
    PollTime: max_poll_ms, Millis, "ms", event longest_poll_ms, timing "poll",
        metric "zen_scope_longest_poll_seconds", label "longest poll", scale Seconds, every false;
    /// `max_rows`: rows the scope's queries returned to it.
    Rows: max_rows, Count, "rows", event rows, timing "rows",
        metric "zen_scope_rows", label "rows", scale Rows, every false;
    /// `max_response_kb`: the bytes of the response body, in KiB (under the layer).
    ResponseSize: max_response_kb, KiB, "KiB", event response_kib, timing "resp",
        metric "zen_scope_response_bytes", label "response size", scale Bytes, every false;
}

impl Limits {
    const fn with(mut self, budget: Budget, value: u64) -> Self {
        self.values[budget as usize] = value;
        self.set |= 1 << budget as u32;
        self
    }

    /// The limit set for one budget, in that budget's unit.
    #[must_use]
    pub fn get(&self, budget: Budget) -> Option<u64> {
        (self.set & (1 << budget as u32) != 0).then(|| self.values[budget as usize])
    }

    /// A time limit, as a `Duration`.
    pub(crate) fn duration(&self, budget: Budget) -> Option<Duration> {
        debug_assert_eq!(budget.measure(), Measure::Millis);
        self.get(budget).map(Duration::from_millis)
    }

    /// Each budget that has a limit, with it, in table order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Budget, u64)> + '_ {
        let mut set = self.set;
        std::iter::from_fn(move || {
            let bit = set.trailing_zeros();
            let budget = *Budget::ALL.get(bit as usize)?;
            set &= set - 1;
            Some((budget, self.values[bit as usize]))
        })
    }

    /// Each limit the lower of the two; a limit set on one side only holds.
    #[must_use]
    pub fn tighter(self, other: Limits) -> Limits {
        let mut tighter = Limits { values: self.values, set: self.set | other.set };
        for (budget, limit) in other.iter() {
            let i = budget as usize;
            tighter.values[i] = if self.set & (1 << i) != 0 { self.values[i].min(limit) } else { limit };
        }
        tighter
    }

    /// `true` when no limit is set.
    #[must_use]
    pub fn is_none(&self) -> bool {
        self.set == 0
    }
}

impl Budget {
    /// What was used of a limit: `used` (in base units: nanoseconds, bytes
    /// or a count, as [`Figures::used`](crate::report::Figures::used) gives
    /// it) over `limit` (in the budget's unit); `None` for a limit of zero.
    #[must_use]
    pub fn ratio(self, used: u64, limit: u64) -> Option<f64> {
        let base = self.measure().base(limit) as f64;
        (base > 0.0).then(|| used as f64 / base)
    }

    /// What was used, in the base unit of its metric: seconds for time,
    /// bytes, or the count.
    #[must_use]
    pub fn in_metric_unit(self, used: u64) -> f64 {
        match self.measure() {
            Measure::Millis => used as f64 / 1e9,
            Measure::KiB | Measure::Count => used as f64,
        }
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// What happens when a budget is exceeded. The global mode is `ZEN_MODE`'s
/// (read by [`init`](crate::init)); a layer's or a job runner's `.mode(..)`
/// sets it for its requests or jobs instead, and `mode = "..."` on the
/// attribute wins over both. The detail: [Modes](macro@crate::zen#modes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Never change behaviour: report, and make the report a WARN event on
    /// a violation. The default.
    Observe,
    /// Stop the work: clients refuse new operations with `BudgetExceeded`,
    /// each operation gets at most the time left, the layer answers `503`,
    /// and a scope that can return the error is cut short at its deadline
    /// or at the first poll after a budget is blown.
    Enforce,
    /// Panic at the end of a scope that exceeded a budget, with its report:
    /// for tests and CI, never for production.
    Strict,
}

impl Mode {
    /// The name used by `mode = "..."` and `ZEN_MODE`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Mode::Observe => "observe",
            Mode::Enforce => "enforce",
            Mode::Strict => "strict",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of work a scope covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// An HTTP request handler.
    Handler,
    /// A background job.
    Job,
    /// Anything else: a helper fn, a test, a measured future.
    Other,
}

impl Kind {
    /// Lowercase name, as in reports.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Handler => "handler",
            Kind::Job => "job",
            Kind::Other => "other",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::{Budget, Limits, Measure};

    #[test]
    fn the_largest_limits_never_overflow() {
        let max = Limits::NONE.max_db_ms(u64::MAX).max_mem_kb(u64::MAX).timeout_ms(u64::MAX);
        assert_eq!(max.get(Budget::DbTime), Some(u64::MAX));
        assert!(!Measure::Millis.over(u64::MAX, u64::MAX));
        assert!(!Measure::KiB.over(u64::MAX, u64::MAX));
        assert!(Measure::Millis.over(200_400_000, 200));
        assert!(!Measure::Millis.over(200_000_000, 200));
        assert_eq!(Measure::Millis.rounded(u64::MAX), u64::MAX.div_ceil(1_000_000));
    }

    #[test]
    fn tighter_takes_each_lower_limit() {
        let a = Limits::NONE.max_queries(5).timeout_ms(100);
        let b = Limits::NONE.max_queries(3).max_rows(10);
        let t = a.tighter(b);
        assert_eq!(t.get(Budget::Queries), Some(3));
        assert_eq!(t.get(Budget::Timeout), Some(100));
        assert_eq!(t.get(Budget::Rows), Some(10));
        assert_eq!(t.get(Budget::DbTime), None);
    }
}
