//! Per-thread shard slots and cache-line-padded cells.
//!
//! Every thread that records a stat claims, on its first write, a *slot*: a
//! small integer that no other live thread holds. A stat keeps one group of
//! cache lines per slot plus one shared group. A thread that holds a slot is
//! the only writer of that slot's cells, so its writes are a plain load and
//! store (no locked read-modify-write, no cache-line ping-pong). Threads that
//! could not get a slot (more live recording threads than slots) write the
//! shared group with `fetch_add`. Readers sum all groups.
//!
//! Slots are handed out lock-free from a bitmap and given back when the thread
//! exits, so the number of slots bounds memory while thread churn is free.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Upper bound on exclusive slots (one bit each in [`SLOT_BITS`]).
const MAX_SLOTS: usize = 64;
/// The thread has not asked for a slot yet.
const UNASSIGNED: usize = usize::MAX;
/// The thread writes the shared group (no slot free, or slot already given back).
const SHARED: usize = usize::MAX - 1;

/// Bit `i` set: slot `i` is held by a live thread.
static SLOT_BITS: AtomicU64 = AtomicU64::new(0);
static SLOT_COUNT: OnceLock<usize> = OnceLock::new();

thread_local! {
    static SLOT: Cell<usize> = const { Cell::new(UNASSIGNED) };
    static RELEASE: SlotRelease = const { SlotRelease };
}

/// Gives the thread's slot back when the thread's locals are destroyed.
struct SlotRelease;

impl Drop for SlotRelease {
    fn drop(&mut self) {
        let _ = SLOT.try_with(|s| {
            let slot = s.get();
            // From now on this thread writes the shared group: the slot may be
            // handed to another thread as soon as its bit is cleared.
            s.set(SHARED);
            if slot < MAX_SLOTS {
                SLOT_BITS.fetch_and(!(1u64 << slot), Ordering::AcqRel);
            }
        });
    }
}

/// Number of exclusive slots every stat is laid out for: twice the available
/// parallelism (room for helper threads), between 4 and 63 (the shared group
/// takes the 64th bit of [`ShardedCells`]' in-use mask).
pub(crate) fn slot_count() -> usize {
    *SLOT_COUNT.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(4, |n| n.get());
        cpus.saturating_mul(2).clamp(4, MAX_SLOTS - 1)
    })
}

/// Where the current thread writes: `Some(slot)` for an exclusive slot, `None`
/// for the shared group.
#[inline]
pub(crate) fn current_slot() -> Option<usize> {
    let slot = SLOT.try_with(Cell::get).unwrap_or(SHARED);
    if slot < MAX_SLOTS {
        Some(slot)
    } else if slot == UNASSIGNED {
        assign_slot()
    } else {
        None
    }
}

#[cold]
#[inline(never)]
fn assign_slot() -> Option<usize> {
    // Register the release first; if the thread is already tearing down its
    // locals this fails and the thread stays on the shared group.
    if RELEASE.try_with(|_| ()).is_err() {
        let _ = SLOT.try_with(|s| s.set(SHARED));
        return None;
    }
    let limit = slot_count();
    let mut bits = SLOT_BITS.load(Ordering::Acquire);
    let slot = loop {
        let free = (!bits).trailing_zeros() as usize;
        if free >= limit {
            break SHARED;
        }
        match SLOT_BITS.compare_exchange_weak(
            bits,
            bits | (1u64 << free),
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => break free,
            Err(now) => bits = now,
        }
    };
    let _ = SLOT.try_with(|s| s.set(slot));
    (slot < MAX_SLOTS).then_some(slot)
}

/// Eight 64-bit cells on one 64-byte cache line.
#[repr(C, align(64))]
#[derive(Debug, Default)]
pub(crate) struct Line(pub(crate) [AtomicU64; 8]);

/// `width` 64-bit cells, repeated once per slot plus once for the shared
/// group, each repetition starting on its own cache line.
#[derive(Debug)]
pub(crate) struct ShardedCells {
    /// Bit `g` set: group `g` has been written; readers skip the others.
    used: AtomicU64,
    lines: Box<[Line]>,
    /// Cache lines per slot.
    stride: usize,
    width: usize,
    slots: usize,
}

impl ShardedCells {
    pub(crate) fn new(width: usize) -> ShardedCells {
        let slots = slot_count();
        let stride = width.div_ceil(8).max(1);
        let lines = (0..(slots + 1) * stride).map(|_| Line::default()).collect();
        ShardedCells {
            used: AtomicU64::new(0),
            lines,
            stride,
            width,
            slots,
        }
    }

    /// Bytes of cell memory.
    pub(crate) fn bytes(&self) -> usize {
        self.lines.len() * std::mem::size_of::<Line>()
    }

    #[inline]
    fn cell(&self, group: usize, i: usize) -> &AtomicU64 {
        &self.lines[group * self.stride + i / 8].0[i % 8]
    }

    /// The group the calling thread writes, marked as in use.
    #[inline]
    fn group(&self) -> (usize, bool) {
        let (g, own) = match current_slot() {
            Some(slot) if slot < self.slots => (slot, true),
            _ => (self.slots, false),
        };
        let bit = 1u64 << g;
        if self.used.load(Ordering::Relaxed) & bit == 0 {
            self.used.fetch_or(bit, Ordering::Relaxed);
        }
        (g, own)
    }

    /// Adds `n` (wrapping) to cell `i`.
    #[inline]
    pub(crate) fn add(&self, i: usize, n: u64) {
        debug_assert!(i < self.width);
        let (g, own) = self.group();
        let c = self.cell(g, i);
        if own {
            // Only this thread writes this slot's cells: load + store is
            // race-free and avoids a locked instruction.
            c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
        } else {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Adds `n` to cell `lo` and carries into cell `lo + 1`, treating the pair
    /// as one 128-bit number.
    #[inline]
    pub(crate) fn add_wide(&self, lo: usize, n: u64) {
        debug_assert!(lo + 1 < self.width);
        let (g, own) = self.group();
        let c = self.cell(g, lo);
        let carry = if own {
            let (sum, carry) = c.load(Ordering::Relaxed).overflowing_add(n);
            c.store(sum, Ordering::Relaxed);
            carry
        } else {
            c.fetch_add(n, Ordering::Relaxed).checked_add(n).is_none()
        };
        if carry {
            let h = self.cell(g, lo + 1);
            if own {
                h.store(h.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
            } else {
                h.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The groups written so far.
    fn groups(&self) -> impl Iterator<Item = usize> {
        let mut used = self.used.load(Ordering::Relaxed);
        std::iter::from_fn(move || {
            (used != 0).then(|| {
                let g = used.trailing_zeros() as usize;
                used &= used - 1;
                g
            })
        })
    }

    /// Loads for warming the cache (see `RequestStats::warm`): the in-use mask
    /// and the first word of every group in use.
    pub(crate) fn warm(&self) -> u64 {
        self.groups().fold(0, |acc, g| {
            acc ^ self.lines[g * self.stride].0[0].load(Ordering::Relaxed)
        })
    }

    /// Sum of cell `i` over all groups (wrapping).
    pub(crate) fn sum(&self, i: usize) -> u64 {
        self.groups().fold(0u64, |acc, g| {
            acc.wrapping_add(self.cell(g, i).load(Ordering::Relaxed))
        })
    }

    /// Sum of the 128-bit pair starting at `lo` over all groups (wrapping).
    pub(crate) fn sum_wide(&self, lo: usize) -> u128 {
        self.groups().fold(0u128, |acc, g| {
            let l = self.cell(g, lo).load(Ordering::Relaxed) as u128;
            let h = self.cell(g, lo + 1).load(Ordering::Relaxed) as u128;
            acc.wrapping_add((h << 64) | l)
        })
    }

    /// Sums of cells `0..out.len()` into `out`, one pass over memory.
    pub(crate) fn sum_all(&self, out: &mut [u64]) {
        out.fill(0);
        for g in self.groups() {
            let group = &self.lines[g * self.stride..(g + 1) * self.stride];
            let cells = group.iter().flat_map(|line| line.0.iter());
            for (o, c) in out.iter_mut().zip(cells) {
                *o = o.wrapping_add(c.load(Ordering::Relaxed));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_exclusive_per_live_thread() {
        let _serial = crate::test_threads_lock();
        let barrier = std::sync::Barrier::new(3);
        let seen: Vec<Option<usize>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..3)
                .map(|_| {
                    s.spawn(|| {
                        let slot = current_slot();
                        barrier.wait();
                        slot
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut got: Vec<usize> = seen.iter().flatten().copied().collect();
        let n = got.len();
        got.sort_unstable();
        got.dedup();
        assert_eq!(got.len(), n, "two live threads shared a slot: {seen:?}");
    }

    #[test]
    fn slot_is_given_back_on_thread_exit() {
        let _serial = crate::test_threads_lock();
        // More threads than slots, one after the other: each finds a free
        // slot only if the previous ones gave theirs back.
        for _ in 0..slot_count() + 3 {
            assert!(std::thread::spawn(current_slot).join().unwrap().is_some());
        }
    }

    #[test]
    fn cells_sum_over_threads_and_carry() {
        let _serial = crate::test_threads_lock();
        let c = ShardedCells::new(10);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        c.add(9, 1);
                    }
                    c.add_wide(2, u64::MAX);
                    c.add_wide(2, 2);
                });
            }
        });
        assert_eq!(c.sum(9), 4000);
        assert_eq!(c.sum_wide(2), 4 * (u64::MAX as u128 + 2));
        let mut all = [0u64; 10];
        c.sum_all(&mut all);
        assert_eq!(all[9], 4000);
        assert_eq!(all[0], 0);
    }
}
