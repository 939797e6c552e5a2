//! The RAUTA XDP classifier.
//!
//! Parses Ethernet (up to two VLAN tags), IPv4 (options, fragments), IPv6
//! (up to `MAX_IPV6_EXT_HEADERS` extension headers), TCP, UDP and ICMP; drops
//! frames whose source is in a deny list, whose destination port is denied,
//! or TCP SYNs over a per-source rate; passes everything else, malformed
//! frames included, and counts every frame per class and per verdict.
//!
//! Every read is bounds-checked against the packet end first; the maps and
//! their layouts are described in `rauta-xdp-common`.
#![no_std]
#![no_main]

use core::mem::size_of;

use aya_ebpf::{
    bindings::{xdp_action, BPF_F_NO_PREALLOC},
    helpers::bpf_ktime_get_ns,
    macros::{map, xdp},
    maps::{lpm_trie::Key, Array, HashMap, LpmTrie, LruHashMap, PerCpuArray},
    programs::XdpContext,
};
use rauta_xdp_common::{
    buckets_for, cell, port_bit, ranges_for, slot, spill_for, v4_24_slot, v4_bucket, v6_bucket,
    v6_chunk, v6_chunk_leaf_code, v6_chunk_part_code, v6_filter_slot, v6_fine_slot, v6_leaf_code,
    v6_leaf_key, v6_ranges_slot, v6_sub_leaf_code, Config, CounterTable, SourceKey, V4Bucket,
    V4HostBits, V6Bucket, V6FilterEntry, V6Leaf, V6Ranges, V6SpillKey, V6_16Entry, BUCKET_SLOTS,
    DEFAULT_DENY_V4_ENTRIES, DEFAULT_DENY_V6_ENTRIES, DEFAULT_SYN_STATE_ENTRIES,
    MAX_IPV6_EXT_HEADERS, PORT_BITMAP_WORDS, SLOT_USED_V4, V4_24_DENIED, V4_24_HOSTS,
    V4_MAP24_WORDS, V6_16_DENIED, V6_16_ENTRIES, V6_16_LEAVES, V6_FILTER_SHORT, V6_FILTER_WORDS,
    V6_LEAF_PREFIXES, V6_MAX_PARTS, V6_OVERFLOW, V6_RANGES, V6_SPLIT,
};

#[map]
static DENY_V4: Array<V4Bucket> = Array::with_max_entries(buckets_for(DEFAULT_DENY_V4_ENTRIES), 0);

/// The spill maps are not preallocated: an entry replaced or removed is
/// freed after an RCU grace period, so a program run holding it never sees
/// it reused for another key (a preallocated map hands it to the next
/// update at once).
#[map]
static DENY_V4_SPILL: HashMap<[u8; 4], V4HostBits> =
    HashMap::with_max_entries(spill_for(DEFAULT_DENY_V4_ENTRIES), BPF_F_NO_PREALLOC);

#[map]
static DENY_V4_24: Array<u64> = Array::with_max_entries(V4_MAP24_WORDS, 0);

#[map]
static DENY_V6: LpmTrie<[u8; 16], u8> = LpmTrie::with_max_entries(DEFAULT_DENY_V6_ENTRIES, 0);

#[map]
static DENY_V6_32: Array<V6FilterEntry> = Array::with_max_entries(2 * V6_FILTER_WORDS, 0);

#[map]
static DENY_V6_LEAF: Array<V6Bucket> =
    Array::with_max_entries(buckets_for(DEFAULT_DENY_V6_ENTRIES), 0);

#[map]
static DENY_V6_SPILL: HashMap<V6SpillKey, V6Leaf> =
    HashMap::with_max_entries(spill_for(DEFAULT_DENY_V6_ENTRIES), BPF_F_NO_PREALLOC);

#[map]
static DENY_V6_RANGES: Array<V6Ranges> =
    Array::with_max_entries(ranges_for(DEFAULT_DENY_V6_ENTRIES), 0);

#[map]
static DENY_V6_16: Array<V6_16Entry> = Array::with_max_entries(V6_16_ENTRIES, 0);

#[map]
static DENY_PORTS: Array<u64> = Array::with_max_entries(PORT_BITMAP_WORDS, 0);

#[map]
static CONFIG: Array<Config> = Array::with_max_entries(1, 0);

/// `GLOBAL_V4_BUCKET_MASK`: read-only, set by the loader at load time, in
/// the section `MAP_RODATA` names.
#[no_mangle]
#[link_section = ".rodata.rauta"]
static RAUTA_V4_BUCKET_MASK: u32 = buckets_for(DEFAULT_DENY_V4_ENTRIES) - 1;

/// `GLOBAL_V6_BUCKET_MASK`: read-only, set by the loader at load time, in
/// the section `MAP_RODATA` names.
#[no_mangle]
#[link_section = ".rodata.rauta"]
static RAUTA_V6_BUCKET_MASK: u32 = buckets_for(DEFAULT_DENY_V6_ENTRIES) - 1;

/// A read-only global as the loader set it. A volatile read: the compiler
/// must not fold in the built-in value. (A global costs one load from a
/// known address; `CONFIG`'s array lookup, 1-2 ns more on every bucket
/// path, measured.)
#[inline(always)]
fn global(value: &'static u32) -> u32 {
    // SAFETY: a reference to a static is valid and aligned for the whole
    // run; the loader writes it before the program is loaded, and nothing
    // writes it after (the section's map is read-only to the program and
    // frozen against user space), so the read races with no write.
    unsafe { core::ptr::read_volatile(value) }
}

#[map]
static SYN_STATE: LruHashMap<SourceKey, u64> =
    LruHashMap::with_max_entries(DEFAULT_SYN_STATE_ENTRIES, 0);

#[map]
static COUNTERS: PerCpuArray<CounterTable> = PerCpuArray::with_max_entries(1, 0);

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;

const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_AH: u8 = 51;
const IPPROTO_ICMPV6: u8 = 58;
const IPPROTO_DSTOPTS: u8 = 60;

const TCP_FLAG_SYN: u8 = 0x02;
const TCP_FLAG_ACK: u8 = 0x10;

/// The empty program: the cost floor of `BPF_PROG_TEST_RUN` on this kernel.
#[xdp]
pub fn rauta_xdp_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

/// The classifier.
#[xdp]
pub fn rauta_xdp(ctx: XdpContext) -> u32 {
    let start = ctx.data();
    let end = ctx.data_end();
    let frame = Frame { start, end };
    let out = classify(&frame);
    count(&out, (end - start) as u64);
    if out.verdict == slot::PASSED {
        xdp_action::XDP_PASS
    } else {
        xdp_action::XDP_DROP
    }
}

/// The packet bounds.
struct Frame {
    start: usize,
    end: usize,
}

impl Frame {
    /// Reads `N` bytes at `off`, or `None` if they run past the end.
    #[inline(always)]
    fn bytes<const N: usize>(&self, off: usize) -> Option<[u8; N]> {
        let at = self.start + off;
        if at + N > self.end {
            return None;
        }
        // SAFETY: `at .. at + N` lies inside the packet, checked just above;
        // a byte array has alignment 1.
        Some(unsafe { core::ptr::read_unaligned(at as *const [u8; N]) })
    }

    #[inline(always)]
    fn u8_at(&self, off: usize) -> Option<u8> {
        self.bytes::<1>(off).map(|b| b[0])
    }

    #[inline(always)]
    fn be16_at(&self, off: usize) -> Option<u16> {
        self.bytes::<2>(off).map(u16::from_be_bytes)
    }
}

/// What the program decided about one frame.
struct Outcome {
    /// Exactly one of TCP, UDP, ICMP, FRAGMENT, OTHER, MALFORMED.
    kind: u32,
    /// A family code of `cell`.
    family: u32,
    vlan: bool,
    /// PASSED or one of the DROP_* slots.
    verdict: u32,
}

const NO_FAMILY: u32 = cell::NO_FAMILY;

/// A source address in network order.
enum Source {
    V4([u8; 4]),
    V6([u8; 16]),
}

/// Source address and transport facts gathered by the parser.
struct Parsed {
    kind: u32,
    /// Destination port, for TCP and UDP.
    dport: u16,
    /// TCP flags, 0 otherwise.
    tcp_flags: u8,
}

#[inline(always)]
fn passed(kind: u32, family: u32, vlan: bool) -> Outcome {
    Outcome {
        kind,
        family,
        vlan,
        verdict: slot::PASSED,
    }
}

#[inline(always)]
fn classify(f: &Frame) -> Outcome {
    let Some(mut ethertype) = f.be16_at(12) else {
        return passed(slot::MALFORMED, NO_FAMILY, false);
    };
    let mut off = ETH_HLEN;
    let mut vlan = false;
    // Up to two tags (802.1ad outer, 802.1Q inner); a third is "other".
    if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
        vlan = true;
        let Some(next) = f.be16_at(off + 2) else {
            return passed(slot::MALFORMED, NO_FAMILY, vlan);
        };
        ethertype = next;
        off += 4;
        if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
            let Some(next) = f.be16_at(off + 2) else {
                return passed(slot::MALFORMED, NO_FAMILY, vlan);
            };
            ethertype = next;
            off += 4;
        }
    }
    match ethertype {
        ETH_P_IP => classify_v4(f, off, vlan),
        ETH_P_IPV6 => classify_v6(f, off, vlan),
        _ => passed(slot::OTHER, NO_FAMILY, vlan),
    }
}

#[inline(always)]
fn classify_v4(f: &Frame, off: usize, vlan: bool) -> Outcome {
    // The fixed 20 bytes: version/IHL, ..., flags/fragment offset, protocol,
    // source address.
    let Some(h) = f.bytes::<20>(off) else {
        return passed(slot::MALFORMED, NO_FAMILY, vlan);
    };
    let ihl = ((h[0] & 0x0f) as usize) * 4;
    if h[0] >> 4 != 4 || ihl < 20 {
        return passed(slot::MALFORMED, NO_FAMILY, vlan);
    }
    // Options: the whole header must be there.
    if f.bytes::<1>(off + ihl - 1).is_none() {
        return passed(slot::MALFORMED, NO_FAMILY, vlan);
    }
    let total_len = u16::from_be_bytes([h[2], h[3]]) as usize;
    if total_len < ihl {
        return passed(slot::MALFORMED, NO_FAMILY, vlan);
    }
    let src = [h[12], h[13], h[14], h[15]];
    let frag_off = u16::from_be_bytes([h[6], h[7]]) & 0x1fff;
    let parsed = if frag_off != 0 {
        Parsed {
            kind: slot::FRAGMENT,
            dport: 0,
            tcp_flags: 0,
        }
    } else {
        parse_l4(f, off + ihl, h[9], IPPROTO_ICMP)
    };
    decide(
        parsed,
        cell::FAMILY_V4,
        vlan,
        v4_denied(src),
        Source::V4(src),
    )
}

/// Prefixes up to /24 are answered by the /24 state alone; in a /24 holding
/// longer prefixes, the address's bit in the /24's bitmap.
#[inline(always)]
fn v4_denied(src: [u8; 4]) -> bool {
    let net24 = u32::from_be_bytes(src) >> 8;
    let (word, shift) = v4_24_slot(net24);
    let bits = match DENY_V4_24.get(word) {
        Some(w) => (*w >> shift) & 3,
        None => 0,
    };
    match bits {
        V4_24_DENIED => true,
        V4_24_HOSTS => v4_host_denied(net24, src),
        _ => false,
    }
}

#[inline(always)]
fn host_bit(bits: &V4HostBits, host: u8) -> bool {
    (bits.words[usize::from(host >> 6)] >> (host & 63)) & 1 != 0
}

/// The address's bit in its /24's bitmap: a slot of the /24's bucket (an
/// array read), or the spill hash when the bucket overflowed.
#[inline(always)]
fn v4_host_denied(net24: u32, src: [u8; 4]) -> bool {
    let mask = global(&RAUTA_V4_BUCKET_MASK);
    let Some(bucket) = DENY_V4.get(v4_bucket(net24, mask)) else {
        return false;
    };
    let tag = net24 | SLOT_USED_V4;
    let mut i = 0;
    while i < BUCKET_SLOTS {
        let s = &bucket.slots[i];
        if s.tag == tag {
            return host_bit(&s.bits, src[3]);
        }
        i += 1;
    }
    if bucket.spilled == 0 {
        return false;
    }
    match DENY_V4_SPILL.get_ptr([src[0], src[1], src[2], 0]) {
        // SAFETY: the map returned a valid pointer to a value of this type,
        // which lives as long as the program runs.
        Some(p) => host_bit(unsafe { &*p }, src[3]),
        None => false,
    }
}

#[inline(always)]
fn classify_v6(f: &Frame, off: usize, vlan: bool) -> Outcome {
    // The whole fixed header must be there; only the version, the next
    // header and the source address are read.
    if f.bytes::<1>(off + 39).is_none() {
        return passed(slot::MALFORMED, NO_FAMILY, vlan);
    }
    let (Some(h), Some(src)) = (f.bytes::<8>(off), f.bytes::<16>(off + 8)) else {
        return passed(slot::MALFORMED, NO_FAMILY, vlan);
    };
    if h[0] >> 4 != 6 {
        return passed(slot::MALFORMED, NO_FAMILY, vlan);
    }
    let mut next = h[6];
    let mut l4 = off + 40;
    let mut parsed = None;
    let mut i = 0;
    while i < MAX_IPV6_EXT_HEADERS {
        i += 1;
        let len = match next {
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => {
                let Some(e) = f.bytes::<2>(l4) else {
                    parsed = Some(malformed());
                    break;
                };
                next = e[0];
                (e[1] as usize + 1) * 8
            }
            IPPROTO_FRAGMENT => {
                let Some(e) = f.bytes::<8>(l4) else {
                    parsed = Some(malformed());
                    break;
                };
                next = e[0];
                if u16::from_be_bytes([e[2], e[3]]) >> 3 != 0 {
                    parsed = Some(Parsed {
                        kind: slot::FRAGMENT,
                        dport: 0,
                        tcp_flags: 0,
                    });
                    break;
                }
                8
            }
            IPPROTO_AH => {
                let Some(e) = f.bytes::<2>(l4) else {
                    parsed = Some(malformed());
                    break;
                };
                next = e[0];
                (e[1] as usize + 2) * 4
            }
            _ => break,
        };
        l4 += len;
    }
    let parsed = match parsed {
        Some(p) => p,
        None => match next {
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS | IPPROTO_FRAGMENT | IPPROTO_AH => {
                Parsed {
                    // More extension headers than the bound: not inspected.
                    kind: slot::OTHER,
                    dport: 0,
                    tcp_flags: 0,
                }
            }
            _ => parse_l4(f, l4, next, IPPROTO_ICMPV6),
        },
    };
    decide(
        parsed,
        cell::FAMILY_V6,
        vlan,
        v6_denied(src),
        Source::V6(src),
    )
}

/// What a block's leaves say about a source: inside one of its prefixes,
/// outside all, or "ask the trie" (the block overflowed).
#[derive(PartialEq, Eq)]
enum LeafAnswer {
    Denied,
    Clear,
    Walk,
}

/// The leaf of block `key` with `code` (level and part): a slot of its
/// bucket (an array read; the tags share a cache line), or the spill hash
/// when the bucket overflowed.
#[inline(always)]
fn v6_leaf(key: u64, code: u32, mask: u32) -> Option<&'static V6Leaf> {
    let bucket = DENY_V6_LEAF.get(v6_bucket(key, code, mask))?;
    let mut i = 0;
    while i < BUCKET_SLOTS {
        if bucket.keys[i] == key && bucket.codes[i] == code {
            return Some(&bucket.leaves[i]);
        }
        i += 1;
    }
    if bucket.spilled == 0 {
        // Another block hashed onto the same filter bit.
        return None;
    }
    let spill = V6SpillKey {
        key,
        code: u64::from(code),
    };
    // SAFETY: the map returned a valid pointer to a value of this type,
    // which lives as long as the program runs.
    DENY_V6_SPILL.get_ptr(spill).map(|p| unsafe { &*p })
}

/// A leaf's `parts`, read once: the loader may rewrite the leaf while the
/// program reads it, and every decision about the leaf must come from the
/// same value (a reference to map memory would let the compiler read it
/// again at each use).
#[inline(always)]
fn mode(leaf: &V6Leaf) -> u32 {
    // SAFETY: `leaf` refers to a live, aligned map value (see `v6_leaf`);
    // a volatile read of one of its fields reads only that field.
    unsafe { core::ptr::read_volatile(&leaf.parts) }
}

/// A leaf's `chunks`, read after its mode ([`mode`]): volatile reads keep
/// their order, so the bits are never older than the mode they go with
/// (the loader writes bits that a mode needs before, or with, the mode).
/// They may be newer: a run that read the mode before a change of the leaf
/// and `chunks` after may find a range slot's name where it expected 64th
/// bits (it asks that slot: the name is written after the slot), or bits
/// where it expected a name (they lack the tag: it asks the trie).
#[inline(always)]
fn bits(leaf: &V6Leaf) -> u64 {
    // SAFETY: as in `mode`.
    unsafe { core::ptr::read_volatile(&leaf.chunks) }
}

/// Whether the address half `half` lies in one of the leaf's prefixes.
#[inline(always)]
fn leaf_holds(leaf: &V6Leaf, half: u64) -> bool {
    let used = leaf.used as usize;
    let mut i = 0;
    while i < V6_LEAF_PREFIXES && i < used {
        if leaf.prefixes[i].contains(half) {
            return true;
        }
        i += 1;
    }
    false
}

/// Looks the source up in the leaves of its block at `level`: part 0, then
/// the continuation parts part 0 announces, or the range slot part 0 names,
/// or the leaf of the source's chunk when the block is split by chunk (then
/// its continuations, its range slot, or the leaf of the source's 64th of
/// the chunk when the chunk is split too).
#[inline(always)]
fn v6_block(top: u64, low: u64, level: u32, mask: u32) -> LeafAnswer {
    let key = v6_leaf_key(top, level);
    // A /64 leaf's prefixes are on the last 64 bits (its key is the first
    // 64); the others' on the first 64.
    let half = if level == 64 { low } else { top };
    let Some(first) = v6_leaf(key, v6_leaf_code(level, 0), mask) else {
        return LeafAnswer::Clear;
    };
    let parts = mode(first);
    if parts == V6_OVERFLOW {
        return LeafAnswer::Walk;
    }
    // Its 64th bits, or the name of its range slot: a name under any other
    // mode (read before the loader moved part 0 into the ranges, its
    // `chunks` after) is answered by the slot it names too.
    let b = bits(first);
    if parts == V6_RANGES || names_slot(b) {
        // Prefixes reaching more 64ths than a split would take leaves for,
        // more than a leaf holds: held as address ranges.
        return ranges_answer(b, half);
    }
    // No prefix of the block reaches the source's 64th of it.
    let chunk = v6_chunk(half, level);
    if (b >> chunk) & 1 == 0 {
        return LeafAnswer::Clear;
    }
    if parts == V6_SPLIT {
        let Some(leaf) = v6_leaf(key, v6_chunk_leaf_code(level, chunk), mask) else {
            return LeafAnswer::Clear;
        };
        let parts = mode(leaf);
        if parts == V6_OVERFLOW {
            return LeafAnswer::Walk;
        }
        if parts == V6_RANGES {
            return ranges_answer(bits(leaf), half);
        }
        if parts == V6_SPLIT {
            // The chunk split in turn: the leaf of the source's 64th of it
            // (the chunk leaf's own slots are not read). A name instead of
            // its bits: read as the chunk went into the ranges.
            let b = bits(leaf);
            if names_slot(b) {
                return ranges_answer(b, half);
            }
            let sub = v6_chunk(half, level + 6);
            if (b >> sub) & 1 == 0 {
                return LeafAnswer::Clear;
            }
            return match v6_leaf(key, v6_sub_leaf_code(level, chunk, sub), mask) {
                Some(leaf) if leaf_holds(leaf, half) => LeafAnswer::Denied,
                _ => LeafAnswer::Clear,
            };
        }
        if leaf_holds(leaf, half) {
            return LeafAnswer::Denied;
        }
        if parts > 1 {
            let first = v6_chunk_part_code(level, chunk, 1);
            if rauta_v6_chunk_parts(key, first, half, mask, parts) != 0 {
                return LeafAnswer::Denied;
            }
        }
        return LeafAnswer::Clear;
    }
    if leaf_holds(first, half) {
        return LeafAnswer::Denied;
    }
    let mut part = 1;
    while part < V6_MAX_PARTS && part < parts {
        if let Some(leaf) = v6_leaf(key, v6_leaf_code(level, part), mask) {
            if leaf_holds(leaf, half) {
                return LeafAnswer::Denied;
            }
        }
        part += 1;
    }
    LeafAnswer::Clear
}

/// Whether a leaf's `chunks` is the name of a range slot (its tag), not
/// 64th bits: 64th bits that carry the tag are stored naming no slot a map
/// has ([`rauta_xdp_common::v6_bits_stored`]), so the program asks the
/// trie for them.
#[inline(always)]
fn names_slot(chunks: u64) -> bool {
    v6_ranges_slot(chunks).is_some()
}

/// What the ranges slot `name` names says about `half`
/// ([`rauta_v6_ranges`]).
#[inline(always)]
fn ranges_answer(name: u64, half: u64) -> LeafAnswer {
    match rauta_v6_ranges(name, half) {
        0 => LeafAnswer::Clear,
        1 => LeafAnswer::Denied,
        _ => LeafAnswer::Walk,
    }
}

/// Whether `half` lies in a prefix of parts 1 to `parts - 1` of a chunk of
/// block `key` (a 64th reached by more prefixes than a leaf holds), part 1's
/// code being `first` ([`v6_chunk_part_code`]; the next parts' follow it):
/// 1 if so, else 0. (BPF functions take at most five arguments.)
///
/// A global function: the verifier checks it once, not at each of the four
/// levels' call sites (inlined there, this loop alone took the verifier
/// from about 372,000 to 609,000 instructions). The call costs a few
/// nanoseconds on this rare path only.
#[no_mangle]
#[inline(never)]
pub extern "C" fn rauta_v6_chunk_parts(
    key: u64,
    first: u32,
    half: u64,
    mask: u32,
    parts: u32,
) -> u32 {
    let mut part = 1;
    while part < V6_MAX_PARTS && part < parts {
        if let Some(leaf) = v6_leaf(key, first + ((part - 1) << 8), mask) {
            if leaf_holds(leaf, half) {
                return 1;
            }
        }
        part += 1;
    }
    0
}

/// Whether `half` lies in a range of the slot of the ranges map that
/// `name` names (a part 0's or chunk leaf's `chunks` while it says
/// [`V6_RANGES`]): 1 if
/// so, 0 if not, 2 when it names no slot there (the trie answers). A
/// global function, checked once by the verifier for the four levels.
#[no_mangle]
#[inline(never)]
pub extern "C" fn rauta_v6_ranges(name: u64, half: u64) -> u32 {
    let Some(slot) = v6_ranges_slot(name) else {
        return 2;
    };
    match DENY_V6_RANGES.get(slot) {
        Some(r) => u32::from(r.holds(half)),
        None => 2,
    }
}

/// The state of the source's /16 ([`V6_16_DENIED`], [`V6_16_LEAVES`] or 0):
/// 0 too when the /16 holds leaves but none of its prefixes reaches the
/// source's 64th of it (its /22).
#[inline(always)]
fn v6_16_state(top: u64) -> u64 {
    let Some(entry) = DENY_V6_16.get((top >> 48) as u32) else {
        return 0;
    };
    let state = entry[0];
    if state == V6_16_LEAVES && (entry[1] >> v6_chunk(top, 16)) & 1 == 0 {
        return 0;
    }
    state
}

/// Prefixes of length 32 and more are found in the leaves of the source's
/// /32, /48 or /64 (by the prefix's length), looked up only when the hashed
/// filter entry (one array read for every level) marks both that level's
/// block and the source's 64th of it. While a prefix shorter than /32 is
/// denied (the entry's `V6_FILTER_SHORT` bit),
/// the source's /16 state is read too: a
/// prefix of 16 or less covers the /16, or the leaves of the /16 block hold
/// those of 17 to 31. The trie is walked only where a block, or the
/// source's 64th of it, says overflow: its prefixes fit neither its parts,
/// its split (a chunk's split in turn) nor a range slot (more than a slot's
/// ranges, or no slot free), or the leaf table was full.
#[inline(always)]
fn v6_denied(src: [u8; 16]) -> bool {
    let top = u64::from_be_bytes([
        src[0], src[1], src[2], src[3], src[4], src[5], src[6], src[7],
    ]);
    let (word, bit32) = v6_filter_slot(top, 32);
    let Some(entry) = DENY_V6_32.get(word) else {
        return false;
    };
    let w = entry[0];
    // Most sources stop here while no prefix shorter than /32 is denied
    // (that sets a bit in every entry): nothing hashes to their /32's entry.
    if w == 0 {
        return false;
    }
    let (_, bit48) = v6_filter_slot(top, 48);
    let (_, bit64) = v6_filter_slot(top, 64);
    let mut marks = w & (bit32 | bit48 | bit64 | V6_FILTER_SHORT);
    if marks == 0 {
        return false;
    }
    let low = || {
        u64::from_be_bytes([
            src[8], src[9], src[10], src[11], src[12], src[13], src[14], src[15],
        ])
    };
    // A level whose block bit is set is read only if the bit of the
    // source's 64th of that block is set too (same entry, no lookup; the
    // last 64 bits of the address matter at level 64 only).
    if marks & bit32 != 0 {
        let (i, fine) = v6_fine_slot(top, 0, 32);
        if entry[i & 7] & fine == 0 {
            marks &= !bit32;
        }
    }
    if marks & bit48 != 0 {
        let (i, fine) = v6_fine_slot(top, 0, 48);
        if entry[i & 7] & fine == 0 {
            marks &= !bit48;
        }
    }
    if marks & bit64 != 0 {
        let (i, fine) = v6_fine_slot(top, low(), 64);
        if entry[i & 7] & fine == 0 {
            marks &= !bit64;
        }
    }
    let state = if marks & V6_FILTER_SHORT != 0 {
        v6_16_state(top)
    } else {
        0
    };
    if state == V6_16_DENIED {
        return true;
    }
    if marks & !V6_FILTER_SHORT == 0 && state != V6_16_LEAVES {
        return false;
    }
    // A leaf is to be read.
    let mask = global(&RAUTA_V6_BUCKET_MASK);
    let low = low();
    if state == V6_16_LEAVES {
        match v6_block(top, low, 16, mask) {
            LeafAnswer::Denied => return true,
            LeafAnswer::Walk => return v6_trie_denied(src),
            LeafAnswer::Clear => {}
        }
    }
    for (level, bit) in [(32, bit32), (48, bit48), (64, bit64)] {
        if marks & bit != 0 {
            match v6_block(top, low, level, mask) {
                LeafAnswer::Denied => return true,
                // The trie holds every prefix: its answer is the whole one.
                LeafAnswer::Walk => return v6_trie_denied(src),
                LeafAnswer::Clear => {}
            }
        }
    }
    false
}

/// The longest-prefix-match trie of every denied IPv6 prefix.
#[inline(always)]
fn v6_trie_denied(src: [u8; 16]) -> bool {
    DENY_V6.get(v6_trie_key(&TrieKeyBuf::new(src))).is_some()
}

/// An LPM trie key laid out so that its address starts 8-byte aligned: the
/// program is built to merge byte copies into 8-byte loads and stores, and
/// the verifier refuses misaligned stack access (aya's `Key` is packed, its
/// data at offset 4).
#[repr(C, align(8))]
struct TrieKeyBuf {
    _pad: u32,
    prefix_len: u32,
    data: [u8; 16],
}

impl TrieKeyBuf {
    #[inline(always)]
    fn new(src: [u8; 16]) -> TrieKeyBuf {
        TrieKeyBuf {
            _pad: 0,
            prefix_len: 128,
            data: src,
        }
    }
}

/// The trie key inside `buf`: `prefix_len` and `data` are contiguous, as in
/// `Key`.
#[inline(always)]
fn v6_trie_key(buf: &TrieKeyBuf) -> &Key<[u8; 16]> {
    // SAFETY: `Key<[u8; 16]>` is `repr(C, packed)` (alignment 1): a u32
    // then 16 bytes, which is exactly `buf.prefix_len` followed by
    // `buf.data` (`repr(C)`, offsets 4 and 8, no padding between them); the
    // reference lives no longer than `buf`.
    unsafe { &*(core::ptr::addr_of!(buf.prefix_len) as *const Key<[u8; 16]>) }
}

#[inline(always)]
fn malformed() -> Parsed {
    Parsed {
        kind: slot::MALFORMED,
        dport: 0,
        tcp_flags: 0,
    }
}

#[inline(always)]
fn parse_l4(f: &Frame, off: usize, proto: u8, icmp: u8) -> Parsed {
    match proto {
        IPPROTO_TCP => match f.bytes::<20>(off) {
            Some(t) => Parsed {
                kind: slot::TCP,
                dport: u16::from_be_bytes([t[2], t[3]]),
                tcp_flags: t[13],
            },
            None => malformed(),
        },
        IPPROTO_UDP => match f.bytes::<8>(off) {
            Some(u) => Parsed {
                kind: slot::UDP,
                dport: u16::from_be_bytes([u[2], u[3]]),
                tcp_flags: 0,
            },
            None => malformed(),
        },
        p if p == icmp => match f.u8_at(off + 3) {
            Some(_) => Parsed {
                kind: slot::ICMP,
                dport: 0,
                tcp_flags: 0,
            },
            None => malformed(),
        },
        _ => Parsed {
            kind: slot::OTHER,
            dport: 0,
            tcp_flags: 0,
        },
    }
}

/// Applies the rules in order: source deny list, destination port, SYN rate.
#[inline(always)]
fn decide(p: Parsed, family: u32, vlan: bool, denied: bool, source: Source) -> Outcome {
    let mut out = passed(p.kind, family, vlan);
    if denied {
        out.verdict = slot::DROP_DENY_SOURCE;
        return out;
    }
    let tcp = p.kind == slot::TCP;
    if tcp || p.kind == slot::UDP {
        let (word, bit) = port_bit(tcp, p.dport);
        if let Some(w) = DENY_PORTS.get(word) {
            if *w & bit != 0 {
                out.verdict = slot::DROP_DENY_PORT;
                return out;
            }
        }
    }
    if tcp && p.tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK) == TCP_FLAG_SYN && syn_over_limit(&source)
    {
        out.verdict = slot::DROP_SYN_RATE;
    }
    out
}

/// Generic cell rate algorithm: one u64 per source, the theoretical arrival
/// time (TAT) of its next SYN. A SYN passes while the TAT is at most
/// `tolerance` ahead of now, and pushes the TAT one interval further.
#[inline(always)]
fn syn_over_limit(source: &Source) -> bool {
    let Some(cfg) = CONFIG.get(0) else {
        return false;
    };
    let interval = cfg.syn_interval_ns;
    if interval == 0 {
        return false;
    }
    let source = match *source {
        Source::V4(a) => SourceKey::from_v4(a),
        Source::V6(addr) => SourceKey { addr },
    };
    // SAFETY: a helper without arguments or side effects.
    let now = unsafe { bpf_ktime_get_ns() };
    match SYN_STATE.get_ptr_mut(source) {
        Some(tat) => {
            // SAFETY: the pointer comes from a successful lookup and stays
            // valid for this program run (RCU); a racing update from another
            // CPU can only make the limit slightly looser, never unsafe.
            let t = unsafe { *tat };
            let base = if t > now { t } else { now };
            if base - now > cfg.syn_tolerance_ns {
                return true;
            }
            // SAFETY: as above.
            unsafe { *tat = base + interval };
            false
        }
        None => {
            // A full map evicts its least recently used source; a failed
            // insert lets the SYN through.
            let _ = SYN_STATE.insert(source, now + interval, 0);
            false
        }
    }
}

#[inline(always)]
fn count(out: &Outcome, len: u64) {
    let Some(table) = COUNTERS.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: the per-CPU value of this CPU, valid for the whole run; XDP
    // programs do not migrate between CPUs while they run.
    let cells = unsafe { &mut (*table).cells };
    // One cell per frame: the loader adds the cells up per counter.
    let i = cell::index(out.kind, out.family, out.verdict, out.vlan);
    if let Some(c) = cells.get_mut(i as usize) {
        c.packets += 1;
        c.bytes += len;
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

const _: () = assert!(size_of::<CounterTable>() == 16 * cell::COUNT);

#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
