//! Standalone sharded counter and gauge.

use std::fmt;

use crate::shard::ShardedCells;

/// A monotonically increasing 64-bit counter, sharded per thread.
///
/// Each recording thread writes its own cache line (see the crate docs on
/// shard slots); [`get`](Counter::get) sums the lines. Increments never lock
/// and never allocate. The total wraps at `u64::MAX`.
///
/// ```
/// let c = rauta_stats::Counter::new();
/// c.inc();
/// c.add(41);
/// assert_eq!(c.get(), 42);
/// ```
pub struct Counter {
    cells: ShardedCells,
}

impl Counter {
    /// A counter at zero.
    pub fn new() -> Counter {
        Counter {
            cells: ShardedCells::new(1),
        }
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.cells.add(0, 1);
    }

    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        self.cells.add(0, n);
    }

    /// The current total.
    pub fn get(&self) -> u64 {
        self.cells.sum(0)
    }

    /// Bytes this counter occupies: one 64-byte line per shard slot plus one
    /// shared line.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.cells.bytes()
    }
}

impl Default for Counter {
    fn default() -> Self {
        Counter::new()
    }
}

impl fmt::Debug for Counter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Counter").field(&self.get()).finish()
    }
}

/// A signed 64-bit gauge, sharded per thread like [`Counter`].
///
/// `add`/`sub` from any thread never lock; a decrement may happen on another
/// thread than the increment it undoes. [`set`](Gauge::set) adjusts the
/// calling thread's share so that the sum becomes the value: it is exact when
/// no other thread changes the gauge at the same time.
///
/// ```
/// let g = rauta_stats::Gauge::new();
/// g.inc();
/// g.add(5);
/// g.dec();
/// assert_eq!(g.get(), 5);
/// g.set(-3);
/// assert_eq!(g.get(), -3);
/// ```
pub struct Gauge {
    cells: ShardedCells,
}

impl Gauge {
    /// A gauge at zero.
    pub fn new() -> Gauge {
        Gauge {
            cells: ShardedCells::new(1),
        }
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.cells.add(0, 1);
    }

    /// Subtracts one.
    #[inline]
    pub fn dec(&self) {
        self.cells.add(0, u64::MAX);
    }

    /// Adds `n` (which may be negative).
    #[inline]
    pub fn add(&self, n: i64) {
        self.cells.add(0, n as u64);
    }

    /// Subtracts `n`.
    #[inline]
    pub fn sub(&self, n: i64) {
        self.cells.add(0, n.wrapping_neg() as u64);
    }

    /// Makes the gauge read `v` (see the type docs for concurrent writers).
    pub fn set(&self, v: i64) {
        let now = self.get();
        self.cells.add(0, v.wrapping_sub(now) as u64);
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.cells.sum(0) as i64
    }

    /// Bytes this gauge occupies.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.cells.bytes()
    }
}

impl Default for Gauge {
    fn default() -> Self {
        Gauge::new()
    }
}

impl fmt::Debug for Gauge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Gauge").field(&self.get()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_sums_threads() {
        let _serial = crate::test_threads_lock();
        let c = Counter::new();
        std::thread::scope(|s| {
            for _ in 0..16 {
                s.spawn(|| {
                    for _ in 0..10_000 {
                        c.inc();
                    }
                });
            }
        });
        assert_eq!(c.get(), 160_000);
        assert!(c.memory_bytes() >= 64 * 5);
    }

    #[test]
    fn more_live_threads_than_slots_share_a_line() {
        let _serial = crate::test_threads_lock();
        let c = Counter::new();
        let n = crate::shard::slot_count() + 4;
        let barrier = std::sync::Barrier::new(n);
        std::thread::scope(|s| {
            for _ in 0..n {
                s.spawn(|| {
                    // All alive at once: at least 4 threads find no free slot
                    // and write the shared line with fetch_add.
                    barrier.wait();
                    for _ in 0..1000 {
                        c.inc();
                    }
                    barrier.wait();
                });
            }
        });
        assert_eq!(c.get(), 1000 * n as u64);
    }

    #[test]
    fn gauge_dec_on_other_thread() {
        let _serial = crate::test_threads_lock();
        let g = Gauge::new();
        std::thread::scope(|s| {
            s.spawn(|| g.add(10));
        });
        std::thread::scope(|s| {
            s.spawn(|| g.sub(3));
            s.spawn(|| g.dec());
        });
        assert_eq!(g.get(), 6);
        g.set(i64::MIN);
        assert_eq!(g.get(), i64::MIN);
        g.set(0);
        assert_eq!(g.get(), 0);
    }
}
