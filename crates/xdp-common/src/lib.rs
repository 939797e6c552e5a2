//! Plain data shared by the RAUTA XDP program (`ebpf/xdp-ebpf`) and its
//! loader (`rauta-xdp`).
//!
//! Everything here is `#[repr(C)]`, has no padding and no pointers, so the
//! kernel, the eBPF program and user space read the same bytes. The crate is
//! `no_std` so the eBPF program can use it; the `user` feature implements
//! `aya::Pod` for the map types so user space can read and write the maps.
//!
//! # Maps
//!
//! | name | kind | key | value |
//! |---|---|---|---|
//! | [`MAP_DENY_V4_24`] | array, [`V4_MAP24_WORDS`] entries | word index | `u64`: a 2-bit state per IPv4 /24 |
//! | [`MAP_DENY_V4`] | array, a power of two of entries | [`v4_bucket`] | [`V4Bucket`] |
//! | [`MAP_DENY_V4_SPILL`] | hash | `[u8; 4]`: a /24's network address | [`V4HostBits`] |
//! | [`MAP_DENY_V6`] | LPM trie | `prefix_len: u32` + `[u8; 16]` | `u8` (1) |
//! | [`MAP_DENY_V6_32`] | array, 2 x [`V6_FILTER_WORDS`] entries | entry index ([`v6_filter_slot`]) | [`V6FilterEntry`]: a word of 16 bits of hashed /32s, [`V6_FILTER_SHORT`], 15 bits of /48s, 32 of /64s, then 7 words of hashed 64ths of blocks |
//! | [`MAP_DENY_V6_LEAF`] | array, a power of two of entries | [`v6_bucket`] | [`V6Bucket`] |
//! | [`MAP_DENY_V6_SPILL`] | hash | [`V6SpillKey`] | [`V6Leaf`] |
//! | [`MAP_DENY_V6_RANGES`] | array, [`ranges_for`] entries | the slot a part 0 or chunk leaf names | [`V6Ranges`] |
//! | [`MAP_DENY_V6_16`] | array, [`V6_16_ENTRIES`] entries | the /16 (first 16 bits) | [`V6_16Entry`]: the /16's state and the 64ths its prefixes reach |
//! | [`MAP_DENY_PORTS`] | array, [`PORT_BITMAP_WORDS`] entries | word index | `u64` bitmap |
//! | [`MAP_CONFIG`] | array, 1 entry | `0` | [`Config`] |
//! | [`MAP_SYN_STATE`] | LRU hash | [`SourceKey`] | `u64` theoretical arrival time |
//! | [`MAP_COUNTERS`] | per-CPU array, 1 entry | `0` | [`CounterTable`] |
//! | [`MAP_RODATA`] | array, 1 entry (read-only data, frozen) | `0` | the globals [`GLOBAL_V4_BUCKET_MASK`] and [`GLOBAL_V6_BUCKET_MASK`] (`u32` each) |
#![cfg_attr(not(test), no_std)]

/// Name of the classifier program in the object.
pub const PROGRAM_NAME: &str = "rauta_xdp";
/// Name of the empty program (returns `XDP_PASS` and nothing else) kept in
/// the same object as the cost floor for benchmarks.
pub const PASS_PROGRAM_NAME: &str = "rauta_xdp_pass";

/// Section of the program's read-only globals ([`GLOBAL_V4_BUCKET_MASK`],
/// [`GLOBAL_V6_BUCKET_MASK`]): the loader makes it a one-entry array map of
/// this name, frozen after it writes the globals.
pub const MAP_RODATA: &str = ".rodata.rauta";
/// Read-only global of the program (`u32`): the number of buckets of
/// [`MAP_DENY_V4`] minus one, set by the loader when it loads the object
/// (a constant for the run, read without a map lookup). Built in: the mask
/// for [`DEFAULT_DENY_V4_ENTRIES`].
pub const GLOBAL_V4_BUCKET_MASK: &str = "RAUTA_V4_BUCKET_MASK";
/// Read-only global of the program (`u32`): the number of buckets of
/// [`MAP_DENY_V6_LEAF`] minus one, as [`GLOBAL_V4_BUCKET_MASK`]. Built in:
/// the mask for [`DEFAULT_DENY_V6_ENTRIES`].
pub const GLOBAL_V6_BUCKET_MASK: &str = "RAUTA_V6_BUCKET_MASK";

/// The denied addresses of each /24 that holds a denied prefix longer than
/// /24 (/25 to /32), one bit per address, in a bucket of
/// [`BUCKET_SLOTS`] slots chosen by a hash of the /24: the /24s in state
/// [`V4_24_HOSTS`] of [`MAP_DENY_V4_24`] are looked up here. An array, so
/// the lookup is inlined by the verifier (no hash helper call).
pub const MAP_DENY_V4: &str = "DENY_V4";
/// The /24s whose bucket in [`MAP_DENY_V4`] was full (that bucket's
/// `spilled` is set).
pub const MAP_DENY_V4_SPILL: &str = "DENY_V4_SPILL";
/// A 2-bit state per IPv4 /24: nothing denied in it (0), [`V4_24_DENIED`]
/// or [`V4_24_HOSTS`].
pub const MAP_DENY_V4_24: &str = "DENY_V4_24";
/// LPM trie of every denied IPv6 source prefix: the program walks it only
/// where a block or one 64th of it says [`V6_OVERFLOW`]: more prefixes reach
/// the 64th than its parts hold (or than the block's budget of leaves
/// allows) and neither its own split nor [`V6_RANGES`] can hold them, the
/// block's prefixes fit neither the split nor ranges (nor, without a free
/// range slot, its parts), or the leaf table had no room.
pub const MAP_DENY_V6: &str = "DENY_V6";
/// Hashed bitmaps in front of [`MAP_DENY_V6_LEAF`], one
/// [`V6FilterEntry`] per hashed /32. In its first word, bits 0-15 mark /32s
/// holding a denied prefix of length 32 to 47, bits 17-31 /48s holding one
/// of length 48 to 63, bits 32-63 /64s holding one of length 64 or more,
/// and bit 16 ([`V6_FILTER_SHORT`]) is set in every entry while a prefix
/// shorter than /32 is denied. A source whose three bits and that one are
/// clear is not denied, with no further lookup (see [`v6_filter_slot`]).
/// The next seven words mark hashed 64ths of blocks at levels 32, 48 and
/// 64 that a denied prefix reaches ([`v6_fine_slot`]): a source
/// whose block bit is set but whose 64th's bit is clear is not denied at
/// that level either, with no leaf read.
pub const MAP_DENY_V6_32: &str = "DENY_V6_32";
/// The denied prefixes of each /16 (lengths 17 to 31), /32 (32 to 47), /48
/// (48 to 63) and /64 (64 to 128) that holds any: up to [`V6_LEAF_PREFIXES`] per leaf and
/// up to [`V6_MAX_PARTS`] leaves per block. A block of more than a leaf
/// holds is held as address ranges ([`V6_RANGES`]; without a free slot, in
/// parts) when its split would take more leaves than it has prefixes, and
/// otherwise split by chunk ([`V6_SPLIT`]: one leaf per 64th of it that a
/// prefix reaches; a
/// chunk with more prefixes than a leaf holds keeps them as address ranges
/// ([`V6_RANGES`]) or, without a free slot, in continuations
/// ([`v6_chunk_part_code`]); one with more than its parts hold is split in
/// turn into a leaf per 64th of it ([`v6_sub_leaf_code`]) or else held as
/// ranges; past those the trie [`MAP_DENY_V6`]). In buckets of [`BUCKET_SLOTS`] leaves chosen by a
/// hash of the block and code ([`v6_bucket`]).
pub const MAP_DENY_V6_LEAF: &str = "DENY_V6_LEAF";
/// The leaves whose bucket in [`MAP_DENY_V6_LEAF`] was full.
pub const MAP_DENY_V6_SPILL: &str = "DENY_V6_SPILL";
/// The address ranges of the blocks and chunks that say [`V6_RANGES`]: a
/// slot per such block or chunk, named by its part 0 or chunk leaf.
pub const MAP_DENY_V6_RANGES: &str = "DENY_V6_RANGES";
/// A [`V6_16Entry`] per IPv6 /16, read for every IPv6 source while a prefix
/// shorter than /32 is denied ([`V6_FILTER_SHORT`]): its state says that
/// nothing shorter than /32 reaches the /16 (0), a prefix of length 16 or
/// less covers it ([`V6_16_DENIED`]), or prefixes of length 17 to 31 lie in
/// it ([`V6_16_LEAVES`]: look in its /16 block in [`MAP_DENY_V6_LEAF`],
/// when they reach the source's 64th of it).
pub const MAP_DENY_V6_16: &str = "DENY_V6_16";
/// Bitmap of denied destination ports, one bit per (protocol, port).
pub const MAP_DENY_PORTS: &str = "DENY_PORTS";
/// One [`Config`] value at index 0.
pub const MAP_CONFIG: &str = "CONFIG";
/// LRU hash of per-source SYN rate-limit state.
pub const MAP_SYN_STATE: &str = "SYN_STATE";
/// Per-CPU [`CounterTable`] at index 0.
pub const MAP_COUNTERS: &str = "COUNTERS";
/// A one-slot array of maps the loader makes (not in the object) to wait
/// for the program's runs: updating it returns once every running BPF
/// program has ended.
pub const MAP_WAIT: &str = "rauta_wait";
/// The one-entry array [`MAP_WAIT`] holds.
pub const MAP_WAIT_INNER: &str = "rauta_wait_in";

/// Default number of IPv4 prefixes; [`MAP_DENY_V4`] gets
/// [`buckets_for`] that many buckets, [`MAP_DENY_V4_SPILL`] [`spill_for`]
/// entries.
pub const DEFAULT_DENY_V4_ENTRIES: u32 = 65_536;
/// Default number of IPv6 prefixes: the capacity of [`MAP_DENY_V6`];
/// [`MAP_DENY_V6_LEAF`] gets [`buckets_for`] that many buckets,
/// [`MAP_DENY_V6_SPILL`] [`spill_for`] entries.
pub const DEFAULT_DENY_V6_ENTRIES: u32 = 16_384;
/// Default capacity of [`MAP_SYN_STATE`] (least recently used sources are
/// evicted first).
pub const DEFAULT_SYN_STATE_ENTRIES: u32 = 65_536;

/// Number of `u64` words of [`MAP_DENY_V4_24`]: 2^24 /24s, 32 per word.
pub const V4_MAP24_WORDS: u32 = 1 << 19;
/// State of a /24 in [`MAP_DENY_V4_24`]: a prefix of length <= 24 covers it.
pub const V4_24_DENIED: u64 = 1;
/// State of a /24: prefixes /25 to /32 lie in it: test the address's bit in
/// its [`V4HostBits`] in [`MAP_DENY_V4`].
pub const V4_24_HOSTS: u64 = 2;

/// The address bitmap of one /24: bit `a % 64` of word `a / 64` set when
/// address `a` (the last byte) is denied.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct V4HostBits {
    /// 256 bits, one per address.
    pub words: [u64; 4],
}

/// Prefixes one [`V6Leaf`] holds.
pub const V6_LEAF_PREFIXES: usize = 8;

/// Leaves one block kept in parts may use (part 0 and its continuations).
/// Parts hold a block of more than `V6_LEAF_PREFIXES` prefixes of its level
/// only when its split would take more leaves than it has prefixes and no
/// range slot is free ([`V6_RANGES`]); past `V6_LEAF_PREFIXES *
/// V6_MAX_PARTS` such a block is looked up in the trie ([`V6_OVERFLOW`]).
pub const V6_MAX_PARTS: u32 = 4;

/// [`V6Leaf::parts`] of a block (or of a chunk leaf) that holds more
/// prefixes than its leaves can: look the source up in the trie.
pub const V6_OVERFLOW: u32 = u32::MAX;

/// [`V6Leaf::parts`] of a block split by chunk: it holds more prefixes than
/// its parts do, so each 64th of it ([`v6_chunk`]) that a prefix reaches has
/// a leaf of its own ([`v6_chunk_leaf_code`]) holding the prefixes that
/// reach it. Part 0 then holds only the block's [`V6Leaf::chunks`].
///
/// In a chunk leaf: the chunk is split the same way, one level down. It is
/// reached by more prefixes than its parts hold (or its continuations found
/// no room in the table), none of which covers it whole; each 64th of
/// the chunk (a /28 of a /16's /22, a /44 of a /32's /38, a /60 of a /48's
/// /54, a /76 of a /64's /70: [`v6_chunk`] at `level + 6`) that one of them
/// reaches has a leaf ([`v6_sub_leaf_code`]) holding those that reach it,
/// and the chunk leaf's [`V6Leaf::chunks`] marks those 64ths; its slots are
/// not read. (A chunk whose continuations do not fit the block's budget of
/// leaves is never split so: that takes more leaves still.)
pub const V6_SPLIT: u32 = u32::MAX - 1;

/// [`V6Leaf::parts`] of a chunk leaf reached by more prefixes than a leaf
/// holds (up to what its parts hold; past that, those its own split cannot
/// hold either), or of a block's part 0 whose prefixes, more than a leaf
/// holds, reach more 64ths of it than there are of them (the split would
/// take more leaves than its budget), that make at most
/// [`V6_RANGE_SLOTS`] disjoint address ranges: they are in the slot of
/// [`MAP_DENY_V6_RANGES`] that its [`V6Leaf::chunks`] names
/// ([`v6_ranges_name`]), searched by halving; its prefix slots (and a
/// part 0's 64th bits) are not read. A slot is written before a leaf names
/// it and never changed while one does; a leaf changes the slot it names
/// only under another mode (a part 0 goes into and out of the ranges
/// through [`V6_OVERFLOW`]: its 64th bits are read under its parts and
/// split).
pub const V6_RANGES: u32 = u32::MAX - 2;

/// High half of a [`V6Leaf::chunks`] that names a range slot: a value
/// without it (a leaf read as it was being freed, or one of 64th bits)
/// names none, and the program asks the trie.
pub const V6_RANGES_TAG: u32 = 0x5241_4e47;

/// The [`V6Leaf::chunks`] of a part 0 or chunk leaf whose ranges are in
/// slot `slot`.
#[inline(always)]
pub const fn v6_ranges_name(slot: u32) -> u64 {
    (V6_RANGES_TAG as u64) << 32 | slot as u64
}

/// 64th bits as a leaf stores them, under any mode (a part 0's, a chunk
/// leaf's under its split or on the way to it): bits that carry
/// [`V6_RANGES_TAG`] get bit 31 too, so that they name slot 2^31 or
/// higher, which no ranges map has. The program takes a tagged value for
/// a name (read across a change of the leaf) and asks the trie for such
/// a one; a block or chunk whose 64ths make that pattern is answered by
/// the trie.
#[inline(always)]
pub const fn v6_bits_stored(bits: u64) -> u64 {
    if v6_ranges_slot(bits).is_some() {
        bits | 1 << 31
    } else {
        bits
    }
}

/// The slot a [`V6Leaf::chunks`] names ([`v6_ranges_name`]), if any.
#[inline(always)]
pub const fn v6_ranges_slot(chunks: u64) -> Option<u32> {
    if (chunks >> 32) as u32 == V6_RANGES_TAG {
        Some(chunks as u32)
    } else {
        None
    }
}

/// Ranges a [`V6Ranges`] holds.
pub const V6_RANGE_SLOTS: usize = 64;

/// Value of [`MAP_DENY_V6_RANGES`]: disjoint ranges of address halves (as
/// in [`V6Prefix`]: the first 64 bits below level 64, the last 64 at it),
/// `lo` ascending; the slots past the last range repeat it, so that a
/// search by halving over all [`V6_RANGE_SLOTS`] needs no count: a half
/// `h` is denied when the last `lo[i] <= h` has `h <= hi[i]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct V6Ranges {
    /// First half of each range.
    pub lo: [u64; V6_RANGE_SLOTS],
    /// Last half of each range (inclusive).
    pub hi: [u64; V6_RANGE_SLOTS],
}

impl V6Ranges {
    /// `ranges` (disjoint, ascending, 1 to [`V6_RANGE_SLOTS`]) with the
    /// slots after them repeating the last; `None` for none or too many.
    pub fn new(ranges: &[(u64, u64)]) -> Option<V6Ranges> {
        let last = *ranges.last()?;
        if ranges.len() > V6_RANGE_SLOTS {
            return None;
        }
        let mut r = V6Ranges {
            lo: [last.0; V6_RANGE_SLOTS],
            hi: [last.1; V6_RANGE_SLOTS],
        };
        for (i, &(lo, hi)) in ranges.iter().enumerate() {
            r.lo[i] = lo;
            r.hi[i] = hi;
        }
        Some(r)
    }

    /// Whether `half` lies in a range: the program's search.
    #[inline(always)]
    pub fn holds(&self, half: u64) -> bool {
        let mut i = 0;
        let mut step = V6_RANGE_SLOTS / 2;
        while step > 0 {
            if self.lo[(i + step) & (V6_RANGE_SLOTS - 1)] <= half {
                i += step;
            }
            step /= 2;
        }
        let i = i & (V6_RANGE_SLOTS - 1);
        self.lo[i] <= half && half <= self.hi[i]
    }
}

/// Default number of [`MAP_DENY_V6_RANGES`] slots for `entries` IPv6
/// prefixes: one per 8, at least 64. A slot holds the prefixes of a block
/// or 64th reached by more than 8, so this many run out only when the
/// crowded blocks share prefixes (a short prefix reaching several crowded
/// 64ths).
pub const fn ranges_for(entries: u32) -> u32 {
    let n = entries / 8;
    if n < 64 {
        64
    } else {
        n
    }
}

/// One denied IPv6 prefix, on the half of the address its leaf leaves open:
/// the first 64 bits in a /16, /32 or /48 leaf (prefixes shorter than /64), the
/// last 64 bits in a /64 leaf (the first 64 are the leaf's block, matched by
/// its tag). An address half `h` is inside when `h & mask == addr`. An
/// unused slot ([`V6Prefix::UNUSED`]) matches nothing.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct V6Prefix {
    /// The prefix's bits on this half (the others zero).
    pub addr: u64,
    /// The mask on this half.
    pub mask: u64,
}

impl V6Prefix {
    /// The slot that matches nothing: `addr` all ones, `mask` all ones but
    /// the lowest bit (a masked half's lowest bit is 0, the address's 1).
    /// A program run that reads a slot while the loader writes it (the
    /// kernel copies map values without atomicity) may pair one field of
    /// a prefix with the other of this; such a pair matches at most the
    /// prefix's first address, the one after it, and the half of all
    /// ones, where a mask of 0 would have paired a prefix at address 0
    /// with every address.
    pub const UNUSED: V6Prefix = V6Prefix {
        addr: u64::MAX,
        mask: u64::MAX ^ 1,
    };

    /// The prefix `len` bits long (`len <= 64`) of the address half `bits`.
    #[inline(always)]
    pub const fn of(bits: u64, len: u32) -> V6Prefix {
        let mask = if len == 0 {
            0
        } else if len >= 64 {
            u64::MAX
        } else {
            u64::MAX << (64 - len)
        };
        V6Prefix {
            addr: bits & mask,
            mask,
        }
    }

    /// Whether the address half `h` lies inside.
    #[inline(always)]
    pub const fn contains(&self, h: u64) -> bool {
        h & self.mask == self.addr
    }
}

/// The denied prefixes of one level's block, or one part of them: the
/// prefixes of length 17 to 31 inside one /16, of length 32 to 47 inside one
/// /32, of length 48 to 63 inside one /48, or of length 64 and more inside
/// one /64 (see [`v6_level`]).
///
/// A block's part 0 says how many parts it has; parts 1 and on are
/// continuation leaves in the same table under their own [`v6_leaf_code`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct V6Leaf {
    /// In part 0: the block's number of parts (1 to [`V6_MAX_PARTS`]),
    /// [`V6_SPLIT`] (look in the leaf of the source's chunk),
    /// [`V6_RANGES`] (look in the range slot it names) or [`V6_OVERFLOW`]
    /// (look the source up in the trie). 0 in continuations;
    /// in a chunk leaf its number of parts (0 or 1: itself alone; up to
    /// [`V6_MAX_PARTS`]: continuations [`v6_chunk_part_code`]),
    /// [`V6_SPLIT`] when more prefixes reach the chunk than its parts hold
    /// and each 64th of it has a leaf of its own ([`v6_sub_leaf_code`]),
    /// [`V6_RANGES`] when its prefixes are held as address ranges instead,
    /// or [`V6_OVERFLOW`] when none of those holds them (look in the trie).
    pub parts: u32,
    /// Slots to compare: the last used slot's index plus one.
    pub used: u32,
    /// In part 0: one bit per 64th of the block ([`v6_chunk`]), set when a
    /// prefix of the block reaches into it; a source in a chunk whose bit
    /// is clear is outside every prefix of the block (while it says
    /// [`V6_RANGES`]: the name of its slot instead; under [`V6_OVERFLOW`],
    /// not read, either, as they were). Bits are stored as
    /// [`v6_bits_stored`] gives them. 0 in continuations;
    /// in a chunk leaf, one bit per 64th of the chunk with a leaf of its
    /// own, read only while it says [`V6_SPLIT`] (left as they were when it
    /// stops saying so); while it says [`V6_RANGES`], the name of the slot
    /// of [`MAP_DENY_V6_RANGES`] holding its ranges ([`v6_ranges_name`]).
    pub chunks: u64,
    /// The prefixes, unused slots [`V6Prefix::UNUSED`].
    pub prefixes: [V6Prefix; V6_LEAF_PREFIXES],
}

impl V6Leaf {
    /// A leaf with no prefixes and no parts.
    pub const EMPTY: V6Leaf = V6Leaf {
        parts: 0,
        used: 0,
        chunks: 0,
        prefixes: [V6Prefix::UNUSED; V6_LEAF_PREFIXES],
    };
}

/// Which 64th of its block at `level` (16, 32, 48 or 64) an address lies in:
/// the 6 bits after the block's, taken from `half`, the 64 bits a leaf of
/// that level compares (the first 64 below /64, the last 64 at /64).
#[inline(always)]
pub const fn v6_chunk(half: u64, level: u32) -> u32 {
    let used = level % 64;
    ((half << used) >> 58) as u32
}

/// The [`V6Leaf::chunks`] bits a prefix `len` bits long (`level <= len`)
/// starting at address half `half` reaches into.
#[inline(always)]
pub const fn v6_chunk_bits(half: u64, len: u32, level: u32) -> u64 {
    let first = v6_chunk(half, level);
    if len >= level + 6 {
        1u64 << first
    } else {
        let n = 1u32 << (level + 6 - len);
        let run = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
        run << first
    }
}

/// The code that tells a block's leaves apart in [`MAP_DENY_V6_LEAF`]: the
/// level (16, 32, 48 or 64) and the part (0 to [`V6_MAX_PARTS`] - 1). Never 0.
#[inline(always)]
pub const fn v6_leaf_code(level: u32, part: u32) -> u32 {
    level | part << 8
}

/// The code of the leaf of chunk `chunk` (0 to 63) of a block at `level`
/// split by chunk ([`V6_SPLIT`]); no part's code is the same.
#[inline(always)]
pub const fn v6_chunk_leaf_code(level: u32, chunk: u32) -> u32 {
    v6_leaf_code(level, V6_MAX_PARTS + chunk)
}

/// The code of part `part` (1 to [`V6_MAX_PARTS`] - 1) of chunk `chunk` of
/// a split block: a continuation of its chunk leaf, which says how many
/// parts it has ([`V6Leaf::parts`]) when more prefixes reach the chunk
/// than a leaf holds. No other leaf's code is the same; part `p`'s code is
/// part 1's plus `(p - 1) << 8`.
#[inline(always)]
pub const fn v6_chunk_part_code(level: u32, chunk: u32, part: u32) -> u32 {
    debug_assert!(part >= 1 && part < V6_MAX_PARTS);
    v6_leaf_code(
        level,
        V6_MAX_PARTS + 64 + chunk * (V6_MAX_PARTS - 1) + (part - 1),
    )
}

/// The code of the leaf of 64th `sub` (0 to 63, [`v6_chunk`] at
/// `level + 6`) of chunk `chunk` of a block at `level` whose chunk leaf is
/// split in turn ([`V6_SPLIT`] in a chunk leaf). No other leaf's code is
/// the same.
#[inline(always)]
pub const fn v6_sub_leaf_code(level: u32, chunk: u32, sub: u32) -> u32 {
    v6_leaf_code(
        level,
        V6_MAX_PARTS + 64 + 64 * (V6_MAX_PARTS - 1) + chunk * 64 + sub,
    )
}

/// Number of entries of [`MAP_DENY_V6_16`]: one per /16.
pub const V6_16_ENTRIES: u32 = 1 << 16;

/// Value of [`MAP_DENY_V6_16`] for one /16: its state (0,
/// [`V6_16_DENIED`] or [`V6_16_LEAVES`]), then the 64ths of it (the /22s,
/// [`v6_chunk`] at level 16) that its prefixes of length 17 to 31 reach. A
/// source in a /16 with leaves whose /22's bit is clear reads no leaf.
pub type V6_16Entry = [u64; 2];

/// State of a /16 in [`MAP_DENY_V6_16`]: a prefix of length 16 or less
/// covers it.
pub const V6_16_DENIED: u64 = 1;
/// State of a /16: prefixes of length 17 to 31 lie in it: look the source up
/// in the leaves of its /16 block (level 16 of [`MAP_DENY_V6_LEAF`]).
pub const V6_16_LEAVES: u64 = 2;

/// Slots per bucket of [`MAP_DENY_V4`] and [`MAP_DENY_V6_LEAF`].
pub const BUCKET_SLOTS: usize = 4;

/// Marks a used slot in a bucket of [`MAP_DENY_V4`] (the top bit of its
/// tag; a slot of [`MAP_DENY_V6_LEAF`] is used when its leaf's level is not
/// 0).
pub const SLOT_USED_V4: u32 = 1 << 31;

/// One /24 in a [`V4Bucket`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct V4Slot {
    /// The /24 number (address >> 8) with [`SLOT_USED_V4`] set; 0 when free.
    pub tag: u32,
    /// Zero.
    pub reserved: u32,
    /// Its denied addresses.
    pub bits: V4HostBits,
}

/// Value of [`MAP_DENY_V4`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct V4Bucket {
    /// Non-zero: a /24 hashed here did not fit; look in [`MAP_DENY_V4_SPILL`]
    /// when no slot matches.
    pub spilled: u64,
    /// The slots.
    pub slots: [V4Slot; BUCKET_SLOTS],
}

/// Value of [`MAP_DENY_V6_LEAF`]: the tags of its slots come first, so
/// finding the slot reads one cache line.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct V6Bucket {
    /// Non-zero: a leaf hashed here did not fit; look in
    /// [`MAP_DENY_V6_SPILL`] when no slot matches.
    pub spilled: u64,
    /// The [`v6_leaf_key`] of each slot's block.
    pub keys: [u64; BUCKET_SLOTS],
    /// The [`v6_leaf_code`] of each slot; 0 when the slot is free.
    pub codes: [u32; BUCKET_SLOTS],
    /// The leaves.
    pub leaves: [V6Leaf; BUCKET_SLOTS],
}

impl Default for V6Bucket {
    fn default() -> Self {
        V6Bucket {
            spilled: 0,
            keys: [0; BUCKET_SLOTS],
            codes: [0; BUCKET_SLOTS],
            leaves: [V6Leaf::EMPTY; BUCKET_SLOTS],
        }
    }
}

/// The bucket of /24 `net24` among `mask + 1` buckets (a power of two).
#[inline(always)]
pub const fn v4_bucket(net24: u32, mask: u32) -> u32 {
    ((net24 as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as u32 & mask
}

/// The bucket of the leaf of block `key` ([`v6_leaf_key`]) with `code`
/// ([`v6_leaf_code`]) among `mask + 1` buckets.
#[inline(always)]
pub const fn v6_bucket(key: u64, code: u32, mask: u32) -> u32 {
    // The bucket comes from bits 32 and up of a product, and a product's
    // bit depends only on the factor's bits at or below it: the key's high
    // half is folded down and the code spread over every bit first, so
    // neither blocks that differ only in their high bits nor the leaves of
    // one block share buckets by construction.
    let x = key ^ (key >> 32) ^ (code as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    (x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as u32 & mask
}

/// Key of [`MAP_DENY_V6_SPILL`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct V6SpillKey {
    /// The [`v6_leaf_key`].
    pub key: u64,
    /// The [`v6_leaf_code`].
    pub code: u64,
}

/// Number of buckets for `entries` entries: a power of two with room for
/// twice as many (half the slots free on average when full).
pub const fn buckets_for(entries: u32) -> u32 {
    let want = (entries as u64 * 2).div_ceil(BUCKET_SLOTS as u64);
    let n = want.next_power_of_two();
    if n > 1 << 24 {
        1 << 24
    } else {
        n as u32
    }
}

/// Capacity of the spill hash of a table of `entries` entries: a quarter of
/// them, at least 64 (with half the slots free, few buckets ever fill).
pub const fn spill_for(entries: u32) -> u32 {
    let n = entries / 4;
    if n < 64 {
        64
    } else {
        n
    }
}

/// The level of the leaf that holds a prefix of length `len`: 16 for
/// lengths 17 to 31, 32 for 32 to 47, 48 for 48 to 63, 64 for 64 to 128;
/// `None` for 16 and less (the /16 states of [`MAP_DENY_V6_16`] alone
/// answer for those).
#[inline(always)]
pub const fn v6_level(len: u8) -> Option<u32> {
    match len {
        17..=31 => Some(16),
        32..=47 => Some(32),
        48..=63 => Some(48),
        64..=128 => Some(64),
        _ => None,
    }
}

/// The block number of an address (first 64 bits `top64`) at `level`: its
/// first `level` bits.
#[inline(always)]
pub const fn v6_leaf_key(top64: u64, level: u32) -> u64 {
    if level >= 64 {
        top64
    } else {
        top64 >> (64 - level)
    }
}

/// Word index in [`MAP_DENY_V4_24`] and bit shift of the two bits of the /24
/// numbered `net24` (the address shifted right by 8).
#[inline(always)]
pub const fn v4_24_slot(net24: u32) -> (u32, u32) {
    (net24 >> 5, (net24 & 31) * 2)
}

/// Half the number of entries of [`MAP_DENY_V6_32`].
pub const V6_FILTER_WORDS: u32 = 1 << 14;

/// Bit of word 0 of every entry of [`MAP_DENY_V6_32`], set while a prefix shorter than
/// /32 is denied: the source's /16 state in [`MAP_DENY_V6_16`] is read.
pub const V6_FILTER_SHORT: u64 = 1 << 16;

/// Value of [`MAP_DENY_V6_32`]: word 0 holds the block bits (and
/// [`V6_FILTER_SHORT`]), words 1-7 the 64th bits of the three levels
/// ([`v6_fine_slot`]): one word (64 bits) for level 32, two for level 48,
/// four for level 64. An entry is 64 bytes, a cache line: the program
/// reads any word of a source's entry after one lookup.
pub type V6FilterEntry = [u64; 8];

/// The word of a [`V6FilterEntry`] and the bit in it of the 64th `chunk`
/// ([`v6_chunk`]) of the block `key` ([`v6_leaf_key`]) at `level` (32, 48
/// or 64): a multiplicative hash of the block and the 64th (the /38, /54
/// or /70 the 64th is), spread over the level's words.
#[inline(always)]
pub const fn v6_fine_slot_of(key: u64, chunk: u32, level: u32) -> (usize, u64) {
    let x = if level >= 64 {
        key.rotate_left(6) ^ chunk as u64
    } else {
        key << 6 | chunk as u64
    };
    v6_fine_spread(x, level)
}

/// [`v6_fine_slot_of`] for a source address (its first and last 64 bits):
/// the same word and bit, computed as the program does.
#[inline(always)]
pub const fn v6_fine_slot(top64: u64, low64: u64, level: u32) -> (usize, u64) {
    let x = match level {
        32 => top64 >> 26,
        48 => top64 >> 10,
        _ => top64.rotate_left(6) ^ (low64 >> 58),
    };
    v6_fine_spread(x, level)
}

#[inline(always)]
const fn v6_fine_spread(x: u64, level: u32) -> (usize, u64) {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let h = x.wrapping_mul(K);
    // Level 32: 64 bits in word 1; 48: 128 in words 2-3; 64: 256 in 4-7.
    let (first, shift) = match level {
        32 => (1, 58),
        48 => (2, 57),
        _ => (4, 56),
    };
    let i = h >> shift;
    ((first + (i >> 6)) as usize & 7, 1u64 << (i & 63))
}

/// Entry index in [`MAP_DENY_V6_32`] and bit (in the entry's word 0) of an
/// IPv6 source's block at `level` (32, 48 or 64); `top64` is the first 64
/// bits of the address. The entry comes from a multiplicative hash of the
/// /32, so the three bits of one address lie in the same entry (one array
/// read answers every level): bits 0-15 mark /32s, bits 17-31 /48s, bits
/// 32-63 /64s (bit 16 is [`V6_FILTER_SHORT`]).
#[inline(always)]
pub const fn v6_filter_slot(top64: u64, level: u32) -> (u32, u64) {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let h32 = (top64 >> 32).wrapping_mul(K);
    // 2 * V6_FILTER_WORDS = 2^15 words.
    let word = (h32 >> 49) as u32;
    let bit = match level {
        32 => (h32 >> 44) & 15,
        // 15 bits: 32 hashed bits scaled to 0-14.
        48 => 17 + ((((top64 >> 16).wrapping_mul(K) >> 32) * 15) >> 32),
        _ => 32 + (top64.wrapping_mul(K) >> 59),
    };
    (word, 1u64 << bit)
}

/// Number of `u64` words of the port bitmap: 65,536 TCP ports then 65,536
/// UDP ports, 64 per word.
pub const PORT_BITMAP_WORDS: u32 = 2 * 65_536 / 64;

/// Index of the port bitmap word and the bit in it for `(protocol, port)`.
///
/// `tcp` selects the TCP half, otherwise the UDP half.
#[inline(always)]
pub const fn port_bit(tcp: bool, port: u16) -> (u32, u64) {
    let base: u32 = if tcp { 0 } else { 65_536 / 64 };
    (base + (port as u32) / 64, 1u64 << (port % 64))
}

/// Maximum number of IPv6 extension headers skipped before the packet is
/// classed as [`slot::OTHER`].
pub const MAX_IPV6_EXT_HEADERS: u32 = 6;

/// Named counters (the loader's view).
///
/// Every frame counts in exactly one *kind* slot (`TCP`, `UDP`, `ICMP`,
/// `FRAGMENT`, `OTHER`, `MALFORMED`) and exactly one *verdict* slot
/// (`PASSED`, `DROP_*`); `IPV4`, `IPV6` and `VLAN` are counted in addition
/// when they apply.
pub mod slot {
    /// Frames whose IPv4 header was parsed.
    pub const IPV4: u32 = 0;
    /// Frames whose IPv6 header was parsed.
    pub const IPV6: u32 = 1;
    /// TCP segments (header present).
    pub const TCP: u32 = 2;
    /// UDP datagrams (header present).
    pub const UDP: u32 = 3;
    /// ICMP and ICMPv6 messages.
    pub const ICMP: u32 = 4;
    /// IP fragments other than the first (no transport header).
    pub const FRAGMENT: u32 = 5;
    /// Non-IP frames, other transport protocols, IPv6 with too many or
    /// opaque extension headers.
    pub const OTHER: u32 = 6;
    /// Truncated or invalid frames (passed, never dropped for it).
    pub const MALFORMED: u32 = 7;
    /// Frames carrying at least one VLAN tag.
    pub const VLAN: u32 = 8;
    /// Frames passed to the kernel stack.
    pub const PASSED: u32 = 9;
    /// Frames dropped because the source address is in a deny list.
    pub const DROP_DENY_SOURCE: u32 = 10;
    /// Frames dropped because the destination port is denied.
    pub const DROP_DENY_PORT: u32 = 11;
    /// TCP SYNs dropped by the per-source rate limit.
    pub const DROP_SYN_RATE: u32 = 12;
    /// Number of slots.
    pub const COUNT: usize = 13;
}

/// Packets and bytes counted in one slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CounterSlot {
    /// Number of frames.
    pub packets: u64,
    /// Sum of the frames' lengths, from the Ethernet header on.
    pub bytes: u64,
}

/// Cells of the counter table: one per combination of kind, family,
/// verdict and VLAN presence, so the program bumps exactly one cell per
/// frame; the loader adds the cells up into the named [`slot`] counters.
pub mod cell {
    use super::slot;

    /// Number of cells: 6 kinds x 3 families x 4 verdicts x 2.
    pub const COUNT: usize = 6 * 3 * 4 * 2;
    /// Family code of a frame without a parsed IP header.
    pub const NO_FAMILY: u32 = 0;
    /// Family code of IPv4.
    pub const FAMILY_V4: u32 = 1;
    /// Family code of IPv6.
    pub const FAMILY_V6: u32 = 2;

    /// The cell of a frame: `kind` is one of [`slot::TCP`] ..=
    /// [`slot::MALFORMED`], `family` a family code, `verdict` one of
    /// [`slot::PASSED`] ..= [`slot::DROP_SYN_RATE`].
    #[inline(always)]
    pub const fn index(kind: u32, family: u32, verdict: u32, vlan: bool) -> u32 {
        let k = kind.wrapping_sub(slot::TCP);
        let v = verdict.wrapping_sub(slot::PASSED);
        ((k * 3 + family) * 4 + v) * 2 + vlan as u32
    }

    /// The inverse of [`index`]: (kind, family code, verdict, vlan).
    pub const fn decode(i: u32) -> (u32, u32, u32, bool) {
        let vlan = i & 1 == 1;
        let i = i >> 1;
        let verdict = slot::PASSED + i % 4;
        let i = i / 4;
        (slot::TCP + i / 3, i % 3, verdict, vlan)
    }
}

/// The per-CPU counter value: one [`CounterSlot`] per [`cell`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CounterTable {
    /// Cells, indexed by [`cell::index`].
    pub cells: [CounterSlot; cell::COUNT],
}

impl Default for CounterTable {
    fn default() -> Self {
        Self {
            cells: [CounterSlot {
                packets: 0,
                bytes: 0,
            }; cell::COUNT],
        }
    }
}

/// Run-time settings: the SYN limit's (read for TCP SYNs) and the bucket
/// counts (read before a bucket is).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Emission interval of the SYN rate limit in nanoseconds (one SYN per
    /// interval per source); 0 turns the limit off.
    pub syn_interval_ns: u64,
    /// Burst tolerance: a SYN passes while the source's theoretical arrival
    /// time is at most this far ahead of now (`(burst - 1) * interval`).
    pub syn_tolerance_ns: u64,
    /// Zero.
    pub reserved: [u32; 2],
    /// Number of buckets of [`MAP_DENY_V4`] minus one (the program reads
    /// [`GLOBAL_V4_BUCKET_MASK`], the same value).
    pub v4_bucket_mask: u32,
    /// Number of buckets of [`MAP_DENY_V6_LEAF`] minus one (the program
    /// reads [`GLOBAL_V6_BUCKET_MASK`], the same value).
    pub v6_bucket_mask: u32,
}

/// Key of [`MAP_SYN_STATE`]: a source address, IPv4 as IPv4-mapped IPv6
/// (`::ffff:a.b.c.d`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SourceKey {
    /// The address bytes in network order.
    pub addr: [u8; 16],
}

impl SourceKey {
    /// The key of an IPv4 source given as network-order bytes.
    #[inline(always)]
    pub const fn from_v4(a: [u8; 4]) -> Self {
        Self {
            addr: [
                0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a[0], a[1], a[2], a[3],
            ],
        }
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: `#[repr(C)]`, two `u64` fields, no padding, every bit pattern valid.
    unsafe impl aya::Pod for super::CounterSlot {}
    // SAFETY: `#[repr(C)]` array of `CounterSlot` (itself Pod), no padding.
    unsafe impl aya::Pod for super::CounterTable {}
    // SAFETY: `#[repr(C)]`, two `u64`, a `[u32; 2]` and two `u32`, no padding,
    // every bit pattern valid.
    unsafe impl aya::Pod for super::Config {}
    // SAFETY: `#[repr(C)]` byte array, no padding, every bit pattern valid.
    unsafe impl aya::Pod for super::SourceKey {}
    // SAFETY: `#[repr(C)]`, four `u64`, no padding, every bit pattern valid.
    unsafe impl aya::Pod for super::V4HostBits {}
    // SAFETY: `#[repr(C)]`, two `u32`, a `u64` and an array of `V6Prefix`
    // (two `u64` each), no padding, every bit pattern valid.
    unsafe impl aya::Pod for super::V6Leaf {}
    // SAFETY: `#[repr(C)]`, two `u64`, no padding, every bit pattern valid.
    unsafe impl aya::Pod for super::V6SpillKey {}
    // SAFETY: `#[repr(C)]`, a `u64` and an array of `V4Slot` (two `u32` and
    // four `u64`, 40 bytes, no padding), every bit pattern valid.
    unsafe impl aya::Pod for super::V4Bucket {}
    // SAFETY: `#[repr(C)]`: a `u64`, four `u64`, four `u32` (56 bytes, a
    // multiple of 8) and four `V6Leaf` (144 bytes each, alignment 8), no
    // padding, every bit pattern valid.
    unsafe impl aya::Pod for super::V6Bucket {}
    // SAFETY: `#[repr(C)]`, two arrays of `u64`, no padding, every bit
    // pattern valid.
    unsafe impl aya::Pod for super::V6Ranges {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_slot_names_are_told_from_other_values() {
        for slot in [0, 1, 255, 65_536, u32::MAX] {
            assert_eq!(v6_ranges_slot(v6_ranges_name(slot)), Some(slot));
        }
        for other in [0, 1, u64::MAX, 0x1ff, 1 << 63] {
            assert_eq!(v6_ranges_slot(other), None, "{other:#x}");
        }
    }

    #[test]
    fn fine_bits_of_an_address_and_of_its_block_agree() {
        let mut x: u64 = 0x0123_4567_89ab_cdef;
        for _ in 0..10_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let top = x;
            let low = x.rotate_left(29).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            for (level, words) in [(32, 1..2), (48, 2..4), (64, 4..8)] {
                let half = if level == 64 { low } else { top };
                let key = v6_leaf_key(top, level);
                let slot = v6_fine_slot(top, low, level);
                assert_eq!(
                    slot,
                    v6_fine_slot_of(key, v6_chunk(half, level), level),
                    "{top:#x} {low:#x} /{level}"
                );
                assert!(words.contains(&slot.0), "/{level}: word {}", slot.0);
                assert_eq!(slot.1.count_ones(), 1);
            }
        }
        // The 64ths of one block spread over the level's words.
        let mut words = [0u64; 8];
        for c in 0..64 {
            let (w, bit) = v6_fine_slot_of(0x2001_0db8_0001, c, 48);
            words[w] |= bit;
        }
        let set: u32 = words.iter().map(|w| w.count_ones()).sum();
        assert!(set > 48 && words[2] != 0 && words[3] != 0, "{words:x?}");
    }

    #[test]
    fn layouts_have_no_padding() {
        assert_eq!(core::mem::size_of::<CounterSlot>(), 16);
        assert_eq!(core::mem::size_of::<CounterTable>(), 16 * cell::COUNT);
        assert_eq!(core::mem::size_of::<Config>(), 32);
        assert_eq!(core::mem::size_of::<V4Slot>(), 40);
        assert_eq!(core::mem::size_of::<V4Bucket>(), 8 + 40 * BUCKET_SLOTS);
        assert_eq!(
            core::mem::size_of::<V6Bucket>(),
            8 + 12 * BUCKET_SLOTS + core::mem::size_of::<V6Leaf>() * BUCKET_SLOTS
        );
        assert_eq!(core::mem::size_of::<SourceKey>(), 16);
        assert_eq!(core::mem::size_of::<V4HostBits>(), 32);
        assert_eq!(core::mem::size_of::<V6Leaf>(), 16 + 16 * V6_LEAF_PREFIXES);
    }

    #[test]
    fn buckets_leave_half_the_slots_free() {
        assert_eq!(buckets_for(1), 1);
        assert_eq!(buckets_for(2), 1);
        assert_eq!(buckets_for(3), 2);
        assert_eq!(buckets_for(65_536), 32_768);
        assert_eq!(buckets_for(u32::MAX), 1 << 24);
        for n in [1u32, 7, 1000, 65_536, 100_000] {
            let b = buckets_for(n);
            assert!(b.is_power_of_two());
            assert!(u64::from(b) * BUCKET_SLOTS as u64 >= 2 * u64::from(n));
            assert!(v4_bucket(0xc6_12_04, b - 1) < b);
            assert!(v6_bucket(0x2001_0db8, v6_leaf_code(32, 3), b - 1) < b);
        }
    }

    #[test]
    fn v6_filter_levels_share_a_word() {
        let mut x = 0x2001_0db8_0000_0000u64;
        let mut seen = 0u64;
        for _ in 0..1000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let (w32, b32) = v6_filter_slot(x, 32);
            let (w48, b48) = v6_filter_slot(x, 48);
            let (w64, b64) = v6_filter_slot(x, 64);
            assert_eq!((w32, w32), (w48, w64));
            assert!(w32 < 2 * V6_FILTER_WORDS);
            for b in [b32, b48, b64] {
                assert_eq!(b.count_ones(), 1);
            }
            assert!(b32 < 1 << 16 && (1 << 17..1 << 32).contains(&b48) && b64 >= 1 << 32);
            assert_ne!(b48, V6_FILTER_SHORT);
            seen |= b32 | b48 | b64;
            // Only the /32 picks the word; the lower bits pick the others.
            assert_eq!(v6_filter_slot(x ^ 0xffff_ffff, 32), (w32, b32));
            assert_eq!(v6_filter_slot(x ^ 0xffff, 48), (w48, b48));
        }
        assert_eq!(
            seen, !V6_FILTER_SHORT,
            "every bit but the short one is reached"
        );
    }

    #[test]
    fn v6_levels_and_keys() {
        assert_eq!(v6_level(0), None);
        assert_eq!(v6_level(16), None);
        assert_eq!(v6_level(17), Some(16));
        assert_eq!(v6_level(31), Some(16));
        assert_eq!(v6_level(32), Some(32));
        assert_eq!(v6_level(47), Some(32));
        assert_eq!(v6_level(48), Some(48));
        assert_eq!(v6_level(63), Some(48));
        assert_eq!(v6_level(64), Some(64));
        assert_eq!(v6_level(128), Some(64));
        let top = 0x2001_0db8_1234_5678u64;
        assert_eq!(v6_leaf_key(top, 16), 0x2001);
        assert_eq!(v6_leaf_key(top, 32), 0x2001_0db8);
        assert_eq!(v6_leaf_key(top, 48), 0x2001_0db8_1234);
        assert_eq!(v6_leaf_key(top, 64), top);
        assert_ne!(v6_bucket(7, 32, u32::MAX), v6_bucket(7, 48, u32::MAX));
        // The leaves of one block (its parts and chunk leaves) spread over
        // the buckets of a table of the default size: no bucket gets more
        // than its slots.
        let mask = buckets_for(DEFAULT_DENY_V6_ENTRIES) - 1;
        for level in [16, 32, 48, 64] {
            let key = v6_leaf_key(0x2001_0db8_1234_5678, level);
            let mut per_bucket = std::collections::HashMap::new();
            let codes =
                (0..V6_MAX_PARTS)
                    .map(|p| v6_leaf_code(level, p))
                    .chain((0..64).map(|c| v6_chunk_leaf_code(level, c)))
                    .chain((0..64).flat_map(|c| {
                        (1..V6_MAX_PARTS).map(move |p| v6_chunk_part_code(level, c, p))
                    }));
            for code in codes {
                *per_bucket.entry(v6_bucket(key, code, mask)).or_insert(0) += 1;
            }
            assert!(per_bucket.len() > 200, "{level}: {per_bucket:?}");
            assert!(per_bucket.values().all(|&n| n <= BUCKET_SLOTS), "{level}");
            // Every leaf a block can have, continuations of chunk leaves
            // too, has a code of its own.
            let mut all = std::collections::HashSet::new();
            for p in 0..V6_MAX_PARTS {
                assert!(all.insert(v6_leaf_code(level, p)));
            }
            for c in 0..64 {
                assert!(all.insert(v6_chunk_leaf_code(level, c)));
                for p in 1..V6_MAX_PARTS {
                    let code = v6_chunk_part_code(level, c, p);
                    assert!(all.insert(code));
                    assert_eq!(code, v6_chunk_part_code(level, c, 1) + ((p - 1) << 8));
                }
                for sub in 0..64 {
                    assert!(all.insert(v6_sub_leaf_code(level, c, sub)));
                }
            }
            // The leaves of one split chunk spread too.
            let mut per_bucket = std::collections::HashMap::new();
            for sub in 0..64 {
                *per_bucket
                    .entry(v6_bucket(key, v6_sub_leaf_code(level, 9, sub), mask))
                    .or_insert(0) += 1;
            }
            assert!(per_bucket.values().all(|&n| n <= BUCKET_SLOTS), "{level}");
            assert!(all.iter().all(|&code| code & 0xff == level));
        }
        // /64s that differ only in their first bits (2001:db8:1:x:: and
        // 2a01:db8:1:x::), and /32s whose part 0 and another's chunk leaf
        // differ by a code's bits, rarely share a bucket.
        let mut shared = 0;
        for x in 0..1000u64 {
            let a = 0x2001_0db8_0001_0000 | x;
            let b = 0x2a01_0db8_0001_0000 | x;
            shared += usize::from(
                v6_bucket(a, v6_leaf_code(64, 0), mask) == v6_bucket(b, v6_leaf_code(64, 0), mask),
            );
            let c = 0x2001_0db8 + (x << 12);
            shared += usize::from(
                v6_bucket(c, v6_chunk_leaf_code(32, 0), mask)
                    == v6_bucket(
                        c ^ (u64::from(v6_chunk_leaf_code(32, 0) ^ 32) << 16),
                        32,
                        mask,
                    ),
            );
        }
        assert!(shared < 10, "{shared} of 2,000 pairs share a bucket");
        for level in [16, 32, 48, 64] {
            for part in 0..V6_MAX_PARTS {
                let code = v6_leaf_code(level, part);
                assert_ne!(code, 0);
                assert_eq!((code & 0xff, code >> 8), (level, part));
            }
        }
        assert!(!V6Prefix::UNUSED.contains(0));
        assert!(!V6Prefix::UNUSED.contains(u64::MAX));
        let p = V6Prefix::of(0x2001_0db8_0000_0000, 29);
        assert_eq!(p.mask, 0xffff_fff8_0000_0000);
        assert!(p.contains(0x2001_0dbf_ffff_ffff));
        assert!(!p.contains(0x2001_0dc0_0000_0000));
        assert_eq!(
            V6Prefix::of(5, 64),
            V6Prefix {
                addr: 5,
                mask: u64::MAX
            }
        );
        assert!(V6Prefix::of(5, 0).contains(u64::MAX));
    }

    /// The unused slot matches nothing, and paired half-written with a
    /// prefix's address or mask at most that prefix's first address, the
    /// one after it and the half of all ones.
    #[test]
    fn unused_slots_match_nothing_even_half_written() {
        let u = V6Prefix::UNUSED;
        for h in [0, 1, 2, u64::MAX - 1, u64::MAX, 0x8000_0000_0000_0000] {
            assert!(!u.contains(h), "{h:#x}");
        }
        for (bits, len) in [
            (0, 1),
            (0, 64),
            (0x2001_0db8_0000_0000, 32),
            (6, 64),
            (7, 64),
            (0, 0),
        ] {
            let p = V6Prefix::of(bits, len);
            for mix in [
                V6Prefix {
                    addr: p.addr,
                    mask: u.mask,
                },
                V6Prefix {
                    addr: u.addr,
                    mask: p.mask,
                },
            ] {
                for h in [
                    0,
                    1,
                    p.addr,
                    p.addr + 1,
                    p.addr.wrapping_sub(1),
                    p.addr | 0xff,
                    u64::MAX,
                    u64::MAX - 1,
                ] {
                    if mix.contains(h) {
                        assert!(
                            p.contains(h) || h == p.addr + 1 || h == u64::MAX,
                            "{p:?} mixed as {mix:?} matches {h:#x}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn v6_chunks_split_each_block_in_64() {
        let top = 0x2001_0db8_0a09_1234u64;
        // /32 block 2001:db8: the 6 bits after it are the top of 0x0a09.
        assert_eq!(v6_chunk(top, 32), 0x0a09 >> 10);
        assert_eq!(v6_chunk(top, 48), 0x1234 >> 10);
        let low = 0xfc00_0000_0000_0001u64;
        assert_eq!(v6_chunk(low, 64), 63);
        // A /56 in a /48: one chunk (a /54 holds four /56s).
        let p56 = 0x2001_0db8_000a_0900u64;
        assert_eq!(v6_chunk(p56, 48), 2);
        assert_eq!(v6_chunk_bits(p56, 56, 48), 1 << 2);
        assert_eq!(v6_chunk_bits(0x2001_0db8_000a_0c00, 54, 48), 1 << 3);
        // A /52 covers 4 chunks, a /48 (the block itself) all of them.
        assert_eq!(v6_chunk_bits(0x2001_0db8_000a_1000, 52, 48), 0b1111 << 4);
        assert_eq!(v6_chunk_bits(0x2001_0db8_000a_0000, 48, 48), u64::MAX);
        assert_eq!(v6_chunk_bits(0x2001_0db8_8000_0000, 33, 32), u64::MAX << 32);
        assert_eq!(v6_chunk_bits(0, 64, 64), u64::MAX);
        assert_eq!(v6_chunk_bits(0x0400_0000_0000_0000, 128, 64), 1 << 1);
        // Every address of a prefix lies in a chunk whose bit it sets.
        for (half, len, level) in [(p56, 56u32, 48u32), (0x2001_0db8_4000_0000, 35, 32)] {
            let bits = v6_chunk_bits(half, len, level);
            let span = 1u64 << (64 - len);
            for k in [0, span / 3, span - 1] {
                assert_ne!(bits & 1 << v6_chunk(half + k, level), 0);
            }
        }
    }

    #[test]
    fn cells_round_trip() {
        let mut seen = [false; cell::COUNT];
        for kind in slot::TCP..=slot::MALFORMED {
            for family in 0..3 {
                for verdict in slot::PASSED..=slot::DROP_SYN_RATE {
                    for vlan in [false, true] {
                        let i = cell::index(kind, family, verdict, vlan);
                        assert!(!seen[i as usize]);
                        seen[i as usize] = true;
                        assert_eq!(cell::decode(i), (kind, family, verdict, vlan));
                    }
                }
            }
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn port_bits_split_by_protocol() {
        assert_eq!(port_bit(true, 0), (0, 1));
        assert_eq!(port_bit(true, 65), (1, 2));
        assert_eq!(port_bit(true, 65_535), (1023, 1 << 63));
        assert_eq!(port_bit(false, 0), (1024, 1));
        assert_eq!(port_bit(false, 65_535), (PORT_BITMAP_WORDS - 1, 1 << 63));
    }

    #[test]
    fn v4_24_slots_cover_the_space() {
        assert_eq!(v4_24_slot(0), (0, 0));
        assert_eq!(v4_24_slot(31), (0, 62));
        assert_eq!(v4_24_slot(32), (1, 0));
        assert_eq!(v4_24_slot((1 << 24) - 1), (V4_MAP24_WORDS - 1, 62));
    }

    #[test]
    fn v4_source_key_is_mapped() {
        let k = SourceKey::from_v4([198, 18, 0, 2]);
        assert_eq!(
            k.addr,
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 0, 2]
        );
    }
}
