//! Log-linear histogram of `u64` values with a bounded relative error.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::shard::ShardedCells;

/// Sub-buckets per power of two (2^5).
const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
/// Values below this are counted exactly, one bucket per value.
const EXACT: u64 = 2 * SUB as u64;
/// Number of buckets covering `0..=u64::MAX`.
pub(crate) const BUCKETS: usize = (65 - SUB_BITS as usize) * SUB;
/// One bit per bucket marks the buckets in use, 64 to a word.
const WORDS: usize = BUCKETS / 64;
const _: () = assert!(
    BUCKETS.is_multiple_of(64) && WORDS <= 64,
    "one summary bit per word"
);

/// Cells of the per-slot part: the 128-bit sum as two words.
const SUM_LO: usize = 0;
const SUM_WIDTH: usize = 2;

/// Bucket index of `v`.
///
/// Values below 64 get a bucket each. Above, the bucket keeps the six most
/// significant bits of `v`: 32 equal-width buckets per power of two.
#[inline]
pub(crate) fn bucket_of(v: u64) -> usize {
    if v < EXACT {
        v as usize
    } else {
        let shift = 63 - v.leading_zeros() - SUB_BITS;
        (shift as usize) * SUB + (v >> shift) as usize
    }
}

/// Smallest and largest value of bucket `i` (both inclusive).
pub(crate) fn bucket_bounds(i: usize) -> (u64, u64) {
    if i < EXACT as usize {
        (i as u64, i as u64)
    } else {
        let shift = (i / SUB - 1) as u32;
        let lo = ((i % SUB + SUB) as u64) << shift;
        (lo, lo + ((1u64 << shift) - 1))
    }
}

/// The value reported for a bucket: the harmonic mean of its bounds, which
/// makes the worst relative error at either end the same.
fn bucket_estimate(i: usize) -> u64 {
    let (lo, hi) = bucket_bounds(i);
    if lo == hi {
        return lo;
    }
    let num = lo as u128 * hi as u128;
    let den = lo as u128 + hi as u128;
    (2 * (num / den) + u128::from(2 * (num % den) >= den)) as u64
}

/// Nearest-rank position (1-based) of quantile `q` among `n` samples.
pub(crate) fn rank(q: f64, n: u64) -> u64 {
    if q.is_nan() || q <= 0.0 {
        return 1;
    }
    let r = (q * n as f64).ceil();
    if r >= n as f64 {
        n
    } else {
        (r as u64).max(1)
    }
}

/// A histogram of `u64` values that never locks and never allocates when
/// recording.
///
/// # Accuracy
///
/// Values below 64 are counted exactly. Larger values land in one of 32
/// equal-width buckets per power of two, so a bucket's width is at most 1/32
/// of its smallest value. A quantile is reported as a value inside the bucket
/// that holds the sample of that rank (the harmonic mean of the bucket's
/// bounds, clamped to the observed minimum and maximum), so it differs from
/// the exact sample by at most [`Histogram::RELATIVE_ERROR`] (1/64, about
/// 1.56%) of the sample's value. The minimum, maximum, count and sum are
/// exact.
///
/// # Memory
///
/// 1,920 buckets of 8 bytes cover `0..=u64::MAX` (15,360 bytes), plus a
/// 320-byte header (min, max, a bit per bucket in use) and one 64-byte line
/// per shard slot for the sum:
/// [`Histogram::memory_bytes`] gives the figure for this machine.
///
/// # Cost
///
/// `record` is one `fetch_add` on the bucket, a plain store on the calling
/// thread's own sum cell, and loads of the minimum, maximum and the bucket's
/// in-use bit (each written only when it changes). Reading visits only the
/// buckets in use.
///
/// ```
/// use rauta_stats::Histogram;
///
/// let h = Histogram::new();
/// for v in 1..=1000u64 {
///     h.record(v);
/// }
/// let s = h.snapshot();
/// assert_eq!(s.count(), 1000);
/// assert_eq!(s.sum(), 500_500);
/// let p99 = s.quantile(0.99).unwrap();
/// assert!(p99.abs_diff(990) * 64 <= 990);
/// assert_eq!(s.quantile(1.0), Some(1000));
/// ```
pub struct Histogram {
    core: Core,
    sums: ShardedCells,
}

/// Everything of a histogram but its sum, which owners may keep elsewhere
/// (request stats keep it in their own per-slot cache lines).
pub(crate) struct Core {
    head: Head,
    buckets: Box<[AtomicU64]>,
}

/// Fields read on every record but written only when they change.
#[repr(C, align(64))]
struct Head {
    min: AtomicU64,
    max: AtomicU64,
    /// Bit `w` set: `used[w]` is non-zero.
    words: AtomicU64,
    /// Bit `i % 64` of word `i / 64` set: bucket `i` is non-zero.
    used: [AtomicU64; WORDS],
}

impl Core {
    pub(crate) fn new() -> Core {
        Core {
            head: Head {
                min: AtomicU64::new(u64::MAX),
                max: AtomicU64::new(0),
                words: AtomicU64::new(0),
                used: std::array::from_fn(|_| AtomicU64::new(0)),
            },
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.buckets.len() * std::mem::size_of::<AtomicU64>()
    }

    #[inline]
    pub(crate) fn record(&self, v: u64) {
        let i = bucket_of(v);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        let (w, bit) = (i / 64, 1u64 << (i % 64));
        if self.head.used[w].load(Ordering::Relaxed) & bit == 0 {
            self.mark(w, bit);
        }
        if v > self.head.max.load(Ordering::Relaxed) {
            self.head.max.fetch_max(v, Ordering::Relaxed);
        }
        if v < self.head.min.load(Ordering::Relaxed) {
            self.head.min.fetch_min(v, Ordering::Relaxed);
        }
    }

    #[cold]
    fn mark(&self, w: usize, bit: u64) {
        self.head.used[w].fetch_or(bit, Ordering::Relaxed);
        self.head.words.fetch_or(1 << w, Ordering::Relaxed);
    }

    /// First half of a batched read: appends the index of every bucket in
    /// use. Reading many histograms this way, then loading all their counts
    /// in a second pass ([`load_buckets`](Self::load_buckets)), lets the cache
    /// misses overlap instead of waiting for each histogram's in turn.
    pub(crate) fn used_buckets(&self, idx: &mut Vec<u16>) {
        let mut words = self.head.words.load(Ordering::Relaxed);
        while words != 0 {
            let w = words.trailing_zeros() as usize;
            words &= words - 1;
            let mut used = self.head.used[w].load(Ordering::Relaxed);
            while used != 0 {
                let i = w * 64 + used.trailing_zeros() as usize;
                used &= used - 1;
                idx.push(i as u16);
            }
        }
    }

    /// Second half of a batched read: appends the counts of buckets `idx`.
    pub(crate) fn load_buckets(&self, idx: &[u16], counts: &mut Vec<u64>) {
        counts.extend(
            idx.iter()
                .map(|&i| self.buckets[usize::from(i)].load(Ordering::Relaxed)),
        );
    }

    /// The recorded minimum and maximum (`u64::MAX`, `0` when empty).
    pub(crate) fn extremes(&self) -> (u64, u64) {
        (
            self.head.min.load(Ordering::Relaxed),
            self.head.max.load(Ordering::Relaxed),
        )
    }

    /// Fills everything but `into.sum`.
    pub(crate) fn snapshot_into(&self, into: &mut HistogramSnapshot) {
        let mut idx = Vec::new();
        let mut counts = Vec::new();
        self.used_buckets(&mut idx);
        self.load_buckets(&idx, &mut counts);
        into.fill(&idx, &counts, self.extremes());
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.snapshot();
        f.debug_struct("Histogram")
            .field("count", &s.count())
            .field("sum", &s.sum())
            .field("min", &s.min())
            .field("max", &s.max())
            .finish()
    }
}

impl Histogram {
    /// Bound on `|estimate - exact| / exact` for any quantile (1/64).
    pub const RELATIVE_ERROR: f64 = 1.0 / 64.0;

    /// An empty histogram.
    pub fn new() -> Histogram {
        Histogram {
            core: Core::new(),
            sums: ShardedCells::new(SUM_WIDTH),
        }
    }

    /// Bytes this histogram occupies (buckets, per-slot sums and header).
    pub fn memory_bytes(&self) -> usize {
        self.core.memory_bytes() + std::mem::size_of::<ShardedCells>() + self.sums.bytes()
    }

    /// Records one value.
    #[inline]
    pub fn record(&self, v: u64) {
        self.core.record(v);
        self.sums.add_wide(SUM_LO, v);
    }

    /// Records a duration in nanoseconds (saturating at `u64::MAX` ns, about
    /// 584 years).
    #[inline]
    pub fn record_duration(&self, d: Duration) {
        self.record(duration_ns(d));
    }

    /// A copy for reading. Recording may go on meanwhile; the snapshot then
    /// holds some of the concurrent records and not others.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut s = HistogramSnapshot::default();
        self.snapshot_into(&mut s);
        s
    }

    /// Like [`snapshot`](Self::snapshot), reusing `into`'s storage.
    pub fn snapshot_into(&self, into: &mut HistogramSnapshot) {
        self.core.snapshot_into(into);
        into.sum = self.sums.sum_wide(SUM_LO);
    }
}

/// A duration in nanoseconds, saturating.
#[inline]
pub(crate) fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A read-only copy of a [`Histogram`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Non-empty buckets, ascending: (index, count).
    buckets: Vec<(u16, u64)>,
    count: u64,
    pub(crate) sum: u128,
    min: u64,
    max: u64,
}

impl HistogramSnapshot {
    /// Second half of a batched read: sets buckets, count, min and max from
    /// the bucket indices, their loaded counts and the extremes. Leaves `sum`.
    pub(crate) fn fill(&mut self, idx: &[u16], counts: &[u64], (min, max): (u64, u64)) {
        self.buckets.clear();
        self.count = 0;
        for (&i, &n) in idx.iter().zip(counts) {
            if n != 0 {
                self.buckets.push((i, n));
                self.count += n;
            }
        }
        self.min = min;
        self.max = max;
        if self.count > 0 && self.min > self.max {
            // A record is half-way through: widen to what the buckets show.
            self.min = self
                .min
                .min(bucket_bounds(usize::from(self.buckets[0].0)).0);
            self.max = self.max.max(self.min);
        }
    }

    /// Number of recorded values.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Exact sum of recorded values.
    pub fn sum(&self) -> u128 {
        self.sum
    }

    /// Smallest recorded value, `None` when empty.
    pub fn min(&self) -> Option<u64> {
        (self.count > 0).then_some(self.min)
    }

    /// Largest recorded value, `None` when empty.
    pub fn max(&self) -> Option<u64> {
        (self.count > 0).then_some(self.max)
    }

    /// The value at quantile `q` (0.0 to 1.0, nearest rank), within
    /// [`Histogram::RELATIVE_ERROR`] of the exact sample; `quantile(0.0)` is
    /// the minimum and `quantile(1.0)` the maximum, both exact. `None` when
    /// empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        if q >= 1.0 {
            return Some(self.max);
        }
        if q.is_nan() || q <= 0.0 {
            return Some(self.min);
        }
        let want = rank(q, self.count);
        let mut seen = 0u64;
        for &(i, n) in &self.buckets {
            seen += n;
            if seen >= want {
                return Some(bucket_estimate(usize::from(i)).clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }

    /// Several quantiles in one pass; `qs` must be ascending. Same results
    /// as [`quantile`](Self::quantile) for each.
    pub(crate) fn quantiles_into(&self, qs: &[f64], out: &mut [Option<u64>]) {
        let mut it = self.buckets.iter();
        let mut seen = 0u64;
        let mut current: Option<usize> = None;
        for (&q, o) in qs.iter().zip(out.iter_mut()) {
            *o = if self.count == 0 {
                None
            } else if q >= 1.0 {
                Some(self.max)
            } else if q.is_nan() || q <= 0.0 {
                Some(self.min)
            } else {
                let want = rank(q, self.count);
                while seen < want {
                    match it.next() {
                        Some(&(i, n)) => {
                            seen += n;
                            current = Some(usize::from(i));
                        }
                        None => break,
                    }
                }
                Some(match current {
                    Some(i) if seen >= want => bucket_estimate(i).clamp(self.min, self.max),
                    _ => self.max,
                })
            };
        }
    }

    /// Number of recorded values `<= v`, counting whole buckets: values in the
    /// bucket that holds `v` are all counted, so the result may include values
    /// up to 1/32 above `v`. Exact for `v < 64`.
    pub fn count_le(&self, v: u64) -> u64 {
        let last = bucket_of(v);
        self.buckets
            .iter()
            .take_while(|&&(i, _)| usize::from(i) <= last)
            .map(|&(_, n)| n)
            .sum()
    }

    /// Cumulative counts at ascending bucket indices (of the bounds), one
    /// pass: `out[k] = count_le(bound k)`.
    pub(crate) fn cumulative(&self, bound_buckets: &[usize], out: &mut Vec<u64>) {
        let mut it = self.buckets.iter().peekable();
        let mut acc = 0u64;
        for &last in bound_buckets {
            while let Some(&&(i, n)) = it.peek() {
                if usize::from(i) > last {
                    break;
                }
                acc += n;
                it.next();
            }
            out.push(acc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_tile_the_whole_range() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        let mut prev_hi: Option<u64> = None;
        for i in 0..BUCKETS {
            let (lo, hi) = bucket_bounds(i);
            assert!(lo <= hi);
            if let Some(p) = prev_hi {
                assert_eq!(lo, p + 1, "gap before bucket {i}");
            }
            assert_eq!(bucket_of(lo), i);
            assert_eq!(bucket_of(hi), i);
            // Width at most 1/32 of the low end.
            assert!((hi - lo) as u128 * 32 <= lo as u128);
            let e = bucket_estimate(i);
            assert!(lo <= e && e <= hi);
            assert!((e - lo) as u128 * 64 <= lo as u128, "bucket {i}");
            assert!((hi - e) as u128 * 64 <= hi as u128, "bucket {i}");
            prev_hi = Some(hi);
        }
        assert_eq!(prev_hi, Some(u64::MAX));
        assert_eq!(WORDS, 30);
    }

    #[test]
    fn extremes_and_empty() {
        let h = Histogram::new();
        let s = h.snapshot();
        assert_eq!(s.count(), 0);
        assert_eq!(s.quantile(0.5), None);
        assert_eq!(s.min(), None);
        h.record(0);
        h.record(u64::MAX);
        h.record(u64::MAX);
        let s = h.snapshot();
        assert_eq!(s.count(), 3);
        assert_eq!(s.sum(), 2 * u64::MAX as u128);
        assert_eq!(s.quantile(0.0), Some(0));
        assert_eq!(s.quantile(0.33), Some(0));
        let p50 = s.quantile(0.5).unwrap();
        assert!(u64::MAX - p50 <= u64::MAX / 64);
        assert_eq!(s.quantile(1.0), Some(u64::MAX));
        assert_eq!(s.count_le(0), 1);
        assert_eq!(s.count_le(u64::MAX - 1), 3);
    }

    #[test]
    fn concurrent_records_all_land() {
        let _serial = crate::test_threads_lock();
        let h = Histogram::new();
        std::thread::scope(|s| {
            for t in 0..8u64 {
                let h = &h;
                s.spawn(move || {
                    for v in 0..5000u64 {
                        h.record(v * (t + 1));
                    }
                });
            }
        });
        let s = h.snapshot();
        assert_eq!(s.count(), 40_000);
        let want: u128 = (1..=8u128).map(|t| t * (0..5000u128).sum::<u128>()).sum();
        assert_eq!(s.sum(), want);
        assert_eq!(s.max(), Some(4999 * 8));
        assert_eq!(s.min(), Some(0));
    }

    #[test]
    fn cumulative_matches_count_le() {
        let h = Histogram::new();
        for v in [0u64, 1, 5, 63, 64, 100, 1000, 1_000_000, u64::MAX] {
            h.record(v);
        }
        let s = h.snapshot();
        let bounds = [0u64, 1, 64, 99, 1_000, 999_999, 10_000_000];
        let idx: Vec<usize> = bounds.iter().map(|&b| bucket_of(b)).collect();
        let mut out = Vec::new();
        s.cumulative(&idx, &mut out);
        let want: Vec<u64> = bounds.iter().map(|&b| s.count_le(b)).collect();
        assert_eq!(out, want);
        assert_eq!(out, vec![1, 2, 5, 5, 7, 8, 8]);
    }

    #[test]
    fn batched_quantiles_match_single() {
        let h = Histogram::new();
        let mut x = 3u64;
        for _ in 0..5000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            h.record(x >> (x % 64));
        }
        let s = h.snapshot();
        let qs = [0.0, 0.1, 0.5, 0.5, 0.9, 0.99, 0.999, 0.99999, 1.0];
        let mut out = [None; 9];
        s.quantiles_into(&qs, &mut out);
        let want: Vec<Option<u64>> = qs.iter().map(|&q| s.quantile(q)).collect();
        assert_eq!(out.to_vec(), want);
        let empty = HistogramSnapshot::default();
        empty.quantiles_into(&qs, &mut out);
        assert_eq!(out, [None; 9]);
    }

    #[test]
    fn rank_is_nearest_rank() {
        assert_eq!(rank(0.0, 10), 1);
        assert_eq!(rank(0.5, 10), 5);
        assert_eq!(rank(0.51, 10), 6);
        assert_eq!(rank(1.0, 10), 10);
        assert_eq!(rank(0.999, 1), 1);
        assert_eq!(rank(f64::NAN, 3), 1);
    }
}
