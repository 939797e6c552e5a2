//! Bucketed tables in array maps, with a hash map for what does not fit.
//!
//! The program finds an entry by reading one array element (a bucket of
//! [`BUCKET_SLOTS`] slots, chosen by a hash of the key) and comparing tags:
//! the verifier inlines array lookups, where a hash map lookup is a helper
//! call that costs several times as much. A key whose bucket is full goes to
//! the spill hash map, and the bucket's `spilled` flag sends the program
//! there when no slot matches. Keys never move between slots or between a
//! slot and the spill map, so an update is one bucket write or one spill
//! write (plus the flag).

use ahash::AHashMap as SpillMap;
use std::hash::Hash;

use aya::maps::{Array, HashMap, MapData, MapError};
use aya::Pod;
use rauta_xdp_common::{
    V4Bucket, V4HostBits, V4Slot, V6Bucket, V6Leaf, BUCKET_SLOTS, SLOT_USED_V4,
};

use crate::{errno, Error, ErrorKind};

/// A bucket value of one of the tables.
pub(crate) trait Bucket: Pod + Default {
    /// What names an entry.
    type Tag: Copy + Eq + Hash;
    /// What a slot holds besides its tag.
    type Value: Pod;
    /// The tag of slot `i`, `None` when free.
    fn tag(&self, i: usize) -> Option<Self::Tag>;
    /// What slot `i` holds.
    fn value(&self, i: usize) -> Self::Value;
    /// Whether the `spilled` flag is set.
    fn is_spilled(&self) -> bool;
    /// Fills slot `i`.
    fn fill(&mut self, i: usize, tag: Self::Tag, value: Self::Value);
    /// Frees slot `i`.
    fn free(&mut self, i: usize);
    /// Sets or clears the `spilled` flag.
    fn set_spilled(&mut self, on: bool);
}

/// An IPv4 entry: the /24 number (address >> 8).
impl Bucket for V4Bucket {
    type Tag = u32;
    type Value = V4HostBits;
    fn tag(&self, i: usize) -> Option<u32> {
        let t = self.slots[i].tag;
        (t & SLOT_USED_V4 != 0).then_some(t & !SLOT_USED_V4)
    }
    fn value(&self, i: usize) -> V4HostBits {
        self.slots[i].bits
    }
    fn is_spilled(&self) -> bool {
        self.spilled != 0
    }
    fn fill(&mut self, i: usize, net24: u32, bits: V4HostBits) {
        self.slots[i] = V4Slot {
            tag: net24 | SLOT_USED_V4,
            reserved: 0,
            bits,
        };
    }
    fn free(&mut self, i: usize) {
        self.slots[i] = V4Slot::default();
    }
    fn set_spilled(&mut self, on: bool) {
        self.spilled = u64::from(on);
    }
}

/// An IPv6 entry: the block's leaf key and the leaf's code (level and
/// part).
impl Bucket for V6Bucket {
    type Tag = (u64, u32);
    type Value = V6Leaf;
    fn tag(&self, i: usize) -> Option<(u64, u32)> {
        (self.codes[i] != 0).then_some((self.keys[i], self.codes[i]))
    }
    fn value(&self, i: usize) -> V6Leaf {
        self.leaves[i]
    }
    fn is_spilled(&self) -> bool {
        self.spilled != 0
    }
    fn fill(&mut self, i: usize, (key, code): (u64, u32), leaf: V6Leaf) {
        self.keys[i] = key;
        self.codes[i] = code;
        self.leaves[i] = leaf;
    }
    fn free(&mut self, i: usize) {
        self.keys[i] = 0;
        self.codes[i] = 0;
        self.leaves[i] = V6Leaf::EMPTY;
    }
    fn set_spilled(&mut self, on: bool) {
        self.spilled = u64::from(on);
    }
}

/// One bucketed table, its spill map and their user-space mirror.
pub(crate) struct Table<B: Bucket, K: Pod> {
    buckets: Array<MapData, B>,
    spill: HashMap<MapData, K, B::Value>,
    spill_name: &'static str,
    spill_capacity: u32,
    /// The kernel's buckets, as last written.
    mirror: Vec<B>,
    /// Keys (tags) living in the spill map with their values, and how many
    /// per bucket.
    spilled: SpillMap<B::Tag, B::Value>,
    spilled_per_bucket: Vec<u32>,
}

impl<B: Bucket, K: Pod> Table<B, K> {
    pub(crate) fn new(
        buckets: Array<MapData, B>,
        spill: HashMap<MapData, K, B::Value>,
        spill_name: &'static str,
        spill_capacity: u32,
    ) -> Self {
        let n = buckets.len() as usize;
        Table {
            buckets,
            spill,
            spill_name,
            spill_capacity,
            mirror: vec![B::default(); n],
            spilled: SpillMap::new(),
            spilled_per_bucket: vec![0; n],
        }
    }

    /// Writes every bucket of the kernel's array as the mirror holds it
    /// (empty, for a table just made): the kernel's array starts zeroed,
    /// and a leaf slot of zeros, read half-written as a key comes into it,
    /// would pair the new tag with a prefix that matches everything.
    pub(crate) fn write_every_bucket(&mut self) -> Result<(), Error> {
        for b in 0..self.mirror.len() as u32 {
            let bucket = self.mirror[b as usize];
            self.write(b, bucket)?;
        }
        Ok(())
    }

    /// Number of keys in the spill map.
    pub(crate) fn spilled(&self) -> usize {
        self.spilled.len()
    }

    /// Number of keys stored, in slots and in the spill map.
    #[cfg(all(test, feature = "ebpf"))]
    pub(crate) fn len(&self) -> usize {
        let in_slots: usize = self
            .mirror
            .iter()
            .map(|b| (0..BUCKET_SLOTS).filter(|&s| b.tag(s).is_some()).count())
            .sum();
        in_slots + self.spilled.len()
    }

    /// Every value stored, in slots and in the spill map.
    #[cfg(all(test, feature = "ebpf"))]
    pub(crate) fn values(&self) -> Vec<B::Value> {
        let mut all: Vec<B::Value> = self
            .mirror
            .iter()
            .flat_map(|b| {
                (0..BUCKET_SLOTS)
                    .filter(|&s| b.tag(s).is_some())
                    .map(|s| b.value(s))
            })
            .collect();
        all.extend(self.spilled.values().copied());
        all
    }

    /// Every tag stored, in slots and in the spill map.
    #[cfg(all(test, feature = "ebpf"))]
    pub(crate) fn tags(&self) -> Vec<B::Tag> {
        let mut all: Vec<B::Tag> = self
            .mirror
            .iter()
            .flat_map(|b| (0..BUCKET_SLOTS).filter_map(|s| b.tag(s)))
            .collect();
        all.extend(self.spilled.keys().copied());
        all
    }

    /// The value stored for `tag` in bucket `b` (its slot or the spill
    /// map), as last written.
    pub(crate) fn get(&self, b: u32, tag: B::Tag) -> Option<B::Value> {
        let bucket = &self.mirror[b as usize];
        (0..BUCKET_SLOTS)
            .find(|&s| bucket.tag(s) == Some(tag))
            .map(|s| bucket.value(s))
            .or_else(|| self.spilled.get(&tag).copied())
    }

    /// Stores `value` for the key (`tag` in bucket `b`, `key` in the spill
    /// map), or removes it for `None`. On error the kernel maps and the
    /// mirror are as before, or the entry is stored and only the cleanup of
    /// a flag failed (which costs the program a lookup, never a miss).
    pub(crate) fn put(
        &mut self,
        b: u32,
        tag: B::Tag,
        key: K,
        value: Option<B::Value>,
    ) -> Result<(), Error> {
        let i = b as usize;
        let mut bucket = self.mirror[i];
        let slot = (0..BUCKET_SLOTS).find(|&s| bucket.tag(s) == Some(tag));
        let free = (0..BUCKET_SLOTS).find(|&s| bucket.tag(s).is_none());
        let spilled = self.spilled.contains_key(&tag);
        match (slot, value) {
            (Some(s), Some(v)) => {
                bucket.fill(s, tag, v);
                self.write(b, bucket)
            }
            (Some(s), None) => {
                bucket.free(s);
                self.write(b, bucket)
            }
            (None, None) if spilled => {
                match self.spill.remove(&key) {
                    Ok(()) | Err(MapError::KeyNotFound) => {}
                    Err(e) if errno(&e) == Some(libc::ENOENT) => {}
                    Err(e) => return Err(Error::kernel("removing a deny-list entry", e)),
                }
                self.spilled.remove(&tag);
                self.spilled_per_bucket[i] -= 1;
                if self.spilled_per_bucket[i] == 0 {
                    bucket.set_spilled(false);
                    // A flag left set only costs the program a lookup.
                    let _ = self.write(b, bucket);
                }
                Ok(())
            }
            (None, None) => Ok(()),
            (None, Some(v)) if !spilled && free.is_some() => {
                if let Some(s) = free {
                    bucket.fill(s, tag, v);
                }
                self.write(b, bucket)
            }
            (None, Some(v)) => {
                // The entry first, then the flag that sends the program to
                // it (set whenever it is not, so a failed write is repaired
                // by the next put).
                self.spill_insert(key, v)?;
                if !bucket.is_spilled() {
                    bucket.set_spilled(true);
                    if let Err(e) = self.write(b, bucket) {
                        if !spilled {
                            let _ = self.spill.remove(&key);
                        }
                        return Err(e);
                    }
                }
                if self.spilled.insert(tag, v).is_none() {
                    self.spilled_per_bucket[i] += 1;
                }
                Ok(())
            }
        }
    }

    fn spill_insert(&mut self, key: K, value: B::Value) -> Result<(), Error> {
        self.spill.insert(key, value, 0).map_err(|e| {
            if errno(&e) == Some(libc::E2BIG) {
                Error::new(ErrorKind::MapFull {
                    map: self.spill_name,
                    capacity: self.spill_capacity,
                })
            } else {
                Error::kernel("adding a deny-list entry", e)
            }
        })
    }

    /// Writes bucket `b` to the kernel, then to the mirror.
    fn write(&mut self, b: u32, bucket: B) -> Result<(), Error> {
        self.buckets
            .set(b, bucket, 0)
            .map_err(|e| Error::kernel("updating a deny-list bucket", e))?;
        self.mirror[b as usize] = bucket;
        Ok(())
    }
}
