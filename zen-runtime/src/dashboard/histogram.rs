//! A fixed-size histogram: HDR's bucket layout at one significant digit.
//!
//! Values below 16 have a bucket each, so small counts (queries, calls) are
//! exact; above, each power of two is split into 8 buckets, so a quantile is
//! at most 12.5% above the true value (it is reported as its bucket's upper
//! bound, never above the largest value seen). Values are clamped below
//! 2^32 (in the unit the caller chose: µs, KiB, counts, per mille), which
//! makes 240 buckets of `u32`: 960 bytes, whatever the traffic, allocated
//! only once a value above zero is seen.
//!
//! Why not HDR histograms from the `hdrhistogram` crate: at two significant
//! digits over the same range one takes some 30 KB, times six figures and a
//! thousand routes; a dashboard wants p50, p95 and p99 to a few percent, not
//! to 1%.

/// Buckets below which values are exact.
const EXACT: u64 = 16;
/// Sub-buckets per power of two above `EXACT`: 2^3.
const SUB_BITS: u32 = 3;
/// Buckets in all: 16 exact, then 8 for each power of two from 2^4 to 2^31.
pub(super) const BUCKETS: usize = 16 + (32 - 4) * 8;
/// The largest value kept as itself.
const MAX: u64 = u32::MAX as u64;

/// Zeros are counted apart, and the buckets allocated at the first value
/// above zero: a figure that stays at zero (no external calls, no queries)
/// costs no buckets.
#[derive(Clone, Default)]
pub(super) struct Histogram {
    counts: Option<Box<[u32; BUCKETS]>>,
    zeros: u64,
    count: u64,
    max: u64,
}

/// The bucket of `value`.
fn index(value: u64) -> usize {
    let v = value.min(MAX);
    if v < EXACT {
        return v as usize;
    }
    let octave = 63 - v.leading_zeros();
    let sub = (v >> (octave - SUB_BITS)) & ((1 << SUB_BITS) - 1);
    (EXACT + u64::from(octave - 4) * (1 << SUB_BITS) + sub) as usize
}

/// The largest value that falls in bucket `i`.
fn upper(i: usize) -> u64 {
    let i = i as u64;
    if i < EXACT {
        return i;
    }
    let octave = (i - EXACT) / (1 << SUB_BITS) + 4;
    let sub = (i - EXACT) % (1 << SUB_BITS);
    let width = 1u64 << (octave - u64::from(SUB_BITS));
    (1 << octave) + (sub + 1) * width - 1
}

impl Histogram {
    pub(super) fn record(&mut self, value: u64) {
        if value == 0 {
            self.zeros += 1;
        } else {
            let c = &mut self.counts.get_or_insert_with(|| Box::new([0; BUCKETS]))[index(value)];
            *c = c.saturating_add(1);
        }
        self.count += 1;
        self.max = self.max.max(value);
    }

    pub(super) fn count(&self) -> u64 {
        self.count
    }

    pub(super) fn max(&self) -> u64 {
        self.max
    }

    /// Each bucket's count, zeros first.
    fn buckets(&self) -> impl Iterator<Item = u64> + '_ {
        let above = self.counts.iter().flat_map(|c| c[1..].iter().map(|&n| u64::from(n)));
        std::iter::once(self.zeros).chain(above)
    }

    /// The value at quantile `q` (0.5, 0.99): the upper bound of the bucket
    /// that holds it, at most the largest value seen; 0 when empty.
    pub(super) fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0u64;
        for (i, c) in self.buckets().enumerate() {
            seen += c;
            if seen >= rank {
                return upper(i).min(self.max);
            }
        }
        self.max
    }

    /// Counts per power of two, as `(bound, count)`: the values from
    /// `bound / 2` to `bound - 1`, and `(0, n)` for the zeros. A coarse
    /// shape for a small chart.
    pub(super) fn octaves(&self) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = Vec::new();
        for (i, c) in self.buckets().enumerate() {
            let top = upper(i);
            let bound = if top == 0 { 0 } else { (top + 1).next_power_of_two() };
            match out.last_mut() {
                Some((b, n)) if *b == bound => *n += c,
                _ => out.push((bound, c)),
            }
        }
        while out.last().is_some_and(|(_, n)| *n == 0) {
            out.pop();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::{BUCKETS, Histogram, index, upper};

    #[test]
    fn buckets_cover_every_value_once_in_order() {
        assert_eq!(index(0), 0);
        assert_eq!(index(15), 15);
        assert_eq!(index(u64::MAX), BUCKETS - 1);
        for i in 0..BUCKETS - 1 {
            assert_eq!(index(upper(i)), i, "bucket {i}");
            assert_eq!(index(upper(i) + 1), i + 1, "bucket {i}");
        }
        // At most 12.5% wide above the exact range.
        for i in 16..BUCKETS {
            let low = upper(i - 1) + 1;
            assert!((upper(i) - low + 1) * 8 <= low, "bucket {i}: {low}..={}", upper(i));
        }
    }

    #[test]
    fn quantiles_are_exact_for_small_counts_and_close_above() {
        let mut h = Histogram::default();
        for _ in 0..97 {
            h.record(3);
        }
        for _ in 0..3 {
            h.record(9);
        }
        assert_eq!((h.quantile(0.5), h.quantile(0.97), h.quantile(0.99), h.max()), (3, 3, 9, 9));
        let mut h = Histogram::default();
        for v in 1..=10_000u64 {
            h.record(v * 1000);
        }
        let p99 = h.quantile(0.99);
        assert!((9_900_000..=9_900_000 * 9 / 8).contains(&p99), "{p99}");
        assert_eq!(h.quantile(1.0), 10_000_000);
        assert_eq!(Histogram::default().quantile(0.99), 0);
    }

    #[test]
    fn octaves_sum_to_the_count() {
        let mut h = Histogram::default();
        for v in [0, 1, 2, 3, 100, 5000, 5000] {
            h.record(v);
        }
        let octaves = h.octaves();
        assert_eq!(octaves.iter().map(|(_, n)| n).sum::<u64>(), 7);
        assert_eq!(octaves.first(), Some(&(0, 1)));
        assert_eq!(octaves.last(), Some(&(8192, 2)));
    }
}
