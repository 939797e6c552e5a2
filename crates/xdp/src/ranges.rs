//! The IPv6 leaf table with the address-range slots of its crowded chunks
//! (`rauta_xdp_common::MAP_DENY_V6_RANGES`).

use std::ops::{Deref, DerefMut};

use ahash::AHashMap as HashMap;

use aya::maps::{Array, MapData};
use rauta_xdp_common::{v6_ranges_name, v6_ranges_slot, V6Bucket, V6Prefix, V6Ranges, V6SpillKey};

use crate::buckets::Table;
use crate::filter::{wait_for_readers, waits_begun, waits_ended};
use crate::wait::Waiter;
use crate::Error;

/// The leaves (the table it derefs to) and the range slots that part 0s
/// and chunk leaves saying `V6_RANGES` name.
pub(crate) struct V6Leaves {
    pub(crate) leaves: Table<V6Bucket, V6SpillKey>,
    pub(crate) ranges: RangeSlots,
    /// What waits for the program's runs.
    pub(crate) waiter: Waiter,
    /// How many leaves of its chunks (chunk leaves, their continuations,
    /// leaves of their 64ths) each block has in the table, by block key
    /// and level; blocks with none are absent. Looking for them costs some
    /// 4,000 probes of the mirror in a block that has none.
    chunk_leaves: HashMap<(u64, u32), u32>,
}

impl V6Leaves {
    pub(crate) fn new(
        leaves: Table<V6Bucket, V6SpillKey>,
        ranges: RangeSlots,
        waiter: Waiter,
    ) -> V6Leaves {
        V6Leaves {
            leaves,
            ranges,
            waiter,
            chunk_leaves: HashMap::default(),
        }
    }

    /// How many leaves of its chunks the block (`key`, `level`) has.
    pub(crate) fn chunk_leaves(&self, key: u64, level: u32) -> u32 {
        self.chunk_leaves.get(&(key, level)).copied().unwrap_or(0)
    }

    /// Counts a leaf of a chunk of the block (`key`, `level`) that came
    /// (`added`) or went.
    pub(crate) fn count_chunk_leaf(&mut self, key: u64, level: u32, added: bool) {
        if added {
            *self.chunk_leaves.entry((key, level)).or_insert(0) += 1;
        } else if let Some(n) = self.chunk_leaves.get_mut(&(key, level)) {
            *n -= 1;
            if *n == 0 {
                self.chunk_leaves.remove(&(key, level));
            }
        }
    }

    /// Every block's count of leaves of its chunks.
    #[cfg(all(test, feature = "ebpf"))]
    pub(crate) fn chunk_leaf_counts(&self) -> &HashMap<(u64, u32), u32> {
        &self.chunk_leaves
    }
}

impl Deref for V6Leaves {
    type Target = Table<V6Bucket, V6SpillKey>;
    fn deref(&self) -> &Self::Target {
        &self.leaves
    }
}

impl DerefMut for V6Leaves {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.leaves
    }
}

/// The slots of the ranges map. A slot is written only while no leaf names
/// it and no program run can still be reading it: a slot a leaf stops
/// naming waits in quarantine until a wait for the program's runs that
/// began after that has ended (any of the loader's waits; when only
/// quarantined slots are left and none has, [`RangeSlots::take`] waits).
pub(crate) struct RangeSlots {
    map: Array<MapData, V6Ranges>,
    /// What each slot holds while it is taken (named, or about to be).
    taken: Vec<Option<V6Ranges>>,
    free: Vec<u32>,
    quarantine: Quarantine,
    /// How many slots came back out of quarantine.
    #[cfg(test)]
    pub(crate) reuses: usize,
}

/// Released slots, each with the number of waits for readers begun when it
/// was released ([`waits_begun`]): a wait numbered higher began after the
/// release, so once one has ended ([`waits_ended`]) no program run can
/// still read the slot.
#[derive(Default)]
struct Quarantine(Vec<(u32, u64)>);

impl Quarantine {
    fn push(&mut self, slot: u32, begun: u64) {
        self.0.push((slot, begun));
    }

    /// Moves the slots that the waits numbered up to `ended` free into
    /// `free`; how many.
    fn release_into(&mut self, ended: u64, free: &mut Vec<u32>) -> usize {
        let before = free.len();
        self.0.retain(|&(slot, begun)| {
            let out = begun < ended;
            if out {
                free.push(slot);
            }
            !out
        });
        free.len() - before
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl RangeSlots {
    pub(crate) fn new(map: Array<MapData, V6Ranges>) -> RangeSlots {
        let n = map.len();
        RangeSlots {
            map,
            taken: vec![None; n as usize],
            // Slot 0 first.
            free: (0..n).rev().collect(),
            quarantine: Quarantine::default(),
            #[cfg(test)]
            reuses: 0,
        }
    }

    /// A free slot, written with `ranges`: its name
    /// (`rauta_xdp_common::v6_ranges_name`); `None` when every slot is
    /// taken.
    pub(crate) fn take(
        &mut self,
        ranges: &V6Ranges,
        waiter: &Waiter,
    ) -> Result<Option<u64>, Error> {
        if self.free.is_empty() && !self.quarantine.is_empty() {
            // Those a wait of the loader's has freed since; else a wait of
            // its own, begun after every release, frees them all.
            if self.quarantine.release_into(waits_ended(), &mut self.free) == 0 {
                wait_for_readers(waiter);
                self.quarantine.release_into(waits_ended(), &mut self.free);
            }
            #[cfg(test)]
            {
                self.reuses += self.free.len();
            }
        }
        let Some(slot) = self.free.pop() else {
            return Ok(None);
        };
        #[cfg(test)]
        if tests::FAIL_RANGES.with(|f| f.replace(false)) {
            self.free.push(slot);
            return Err(Error::new(crate::ErrorKind::Kernel {
                operation: "a write the test made fail",
            }));
        }
        if let Err(e) = self.map.set(slot, ranges, 0) {
            self.free.push(slot);
            return Err(Error::kernel("writing IPv6 address ranges", e));
        }
        self.taken[slot as usize] = Some(*ranges);
        Ok(Some(v6_ranges_name(slot)))
    }

    /// What the taken slot `name` names holds.
    pub(crate) fn get(&self, name: u64) -> Option<&V6Ranges> {
        let slot = v6_ranges_slot(name)?;
        self.taken.get(slot as usize)?.as_ref()
    }

    /// Gives the slot `name` names back once no leaf names it: free once a
    /// wait for readers begun after this call has ended.
    pub(crate) fn release(&mut self, name: u64) {
        let Some(slot) = v6_ranges_slot(name) else {
            return;
        };
        if let Some(t) = self.taken.get_mut(slot as usize) {
            if t.take().is_some() {
                self.quarantine.push(slot, waits_begun());
            }
        }
    }

    /// Slots taken now.
    pub(crate) fn in_use(&self) -> usize {
        self.taken.iter().filter(|t| t.is_some()).count()
    }

    /// What the kernel holds in the slot `name` names.
    #[cfg(all(test, feature = "ebpf"))]
    pub(crate) fn kernel(&self, name: u64) -> V6Ranges {
        self.map.get(&v6_ranges_slot(name).unwrap(), 0).unwrap()
    }

    /// Slots waiting for a wait.
    #[cfg(all(test, feature = "ebpf"))]
    pub(crate) fn quarantined(&self) -> usize {
        self.quarantine.len()
    }
}

/// The disjoint ranges of address halves that `prefixes` cover, ascending,
/// overlapping and adjacent ones merged.
pub(crate) fn merged_ranges(prefixes: &[V6Prefix]) -> Vec<(u64, u64)> {
    let mut all: Vec<(u64, u64)> = prefixes
        .iter()
        .map(|p| (p.addr & p.mask, p.addr | !p.mask))
        .collect();
    all.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(all.len());
    for (lo, hi) in all {
        match out.last_mut() {
            Some(last) if last.1 == u64::MAX || lo <= last.1 + 1 => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rauta_xdp_common::V6_RANGE_SLOTS;

    thread_local! {
        /// The next range slot write fails, once.
        pub(crate) static FAIL_RANGES: std::cell::Cell<bool> =
            const { std::cell::Cell::new(false) };
        /// No chunk is written as ranges (they go to the trie, as when no
        /// slot is free).
        pub(crate) static NO_RANGES: std::cell::Cell<bool> =
            const { std::cell::Cell::new(false) };
    }

    fn prefix(addr: u64, len: u32) -> V6Prefix {
        let mask = if len == 0 { 0 } else { u64::MAX << (64 - len) };
        V6Prefix {
            addr: addr & mask,
            mask,
        }
    }

    fn holds_by_prefixes(prefixes: &[V6Prefix], h: u64) -> bool {
        prefixes.iter().any(|p| h & p.mask == p.addr)
    }

    #[test]
    fn ranges_merge_and_search_as_the_prefixes_match() {
        // xorshift64, fixed seed.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..2_000 {
            // A handful of prefixes in a small space, so that they nest,
            // overlap and touch; sometimes at the top and bottom ends.
            let n = 1 + (next() % 70) as usize;
            let base = match round % 3 {
                0 => 0,
                1 => u64::MAX << 12,
                _ => next() & (u64::MAX << 12),
            };
            let prefixes: Vec<V6Prefix> = (0..n)
                .map(|_| prefix(base | (next() & 0xfff), 52 + (next() % 13) as u32))
                .collect();
            let merged = merged_ranges(&prefixes);
            for w in merged.windows(2) {
                assert!(w[0].1 < w[1].0 && w[0].1 + 1 < w[1].0, "{merged:x?}");
            }
            let Some(r) = V6Ranges::new(&merged) else {
                assert!(merged.len() > V6_RANGE_SLOTS);
                continue;
            };
            let mut probes: Vec<u64> = merged
                .iter()
                .flat_map(|&(lo, hi)| [lo, hi, lo.wrapping_sub(1), hi.wrapping_add(1)])
                .collect();
            probes.extend([0, u64::MAX, base, base | 0xfff]);
            probes.extend((0..64).map(|_| base | (next() & 0x1fff)));
            for h in probes {
                assert_eq!(
                    r.holds(h),
                    holds_by_prefixes(&prefixes, h),
                    "{h:#x} in {merged:x?}"
                );
            }
        }
    }

    #[test]
    fn quarantined_slots_wait_for_a_wait_begun_after_their_release() {
        let mut q = Quarantine::default();
        let mut free = Vec::new();
        // Released with no wait begun, then 2 and 2 begun.
        q.push(4, 0);
        q.push(9, 2);
        q.push(6, 2);
        assert_eq!(q.release_into(0, &mut free), 0);
        // Wait 2 began before the last two releases: it frees slot 4 only.
        assert_eq!(q.release_into(2, &mut free), 1);
        assert_eq!(free, [4]);
        assert_eq!(q.len(), 2);
        assert_eq!(q.release_into(3, &mut free), 2);
        assert_eq!(free, [4, 9, 6]);
        assert!(q.is_empty());
    }

    #[test]
    fn ranges_fill_every_slot_and_refuse_more() {
        // 64 ranges of two addresses each, two apart: the first, last and
        // every one between found; 65 refused.
        let ranges: Vec<(u64, u64)> = (0..64u64).map(|i| (i * 4, i * 4 + 1)).collect();
        let r = V6Ranges::new(&ranges).unwrap();
        for h in 0..260 {
            assert_eq!(r.holds(h), h % 4 < 2 && h < 256, "{h}");
        }
        let one = V6Ranges::new(&[(u64::MAX - 3, u64::MAX)]).unwrap();
        assert!(one.holds(u64::MAX) && !one.holds(u64::MAX - 4) && !one.holds(0));
        let mut more = ranges.clone();
        more.push((1000, 1000));
        assert!(V6Ranges::new(&more).is_none());
        assert!(V6Ranges::new(&[]).is_none());
    }
}
