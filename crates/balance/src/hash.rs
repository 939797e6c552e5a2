//! The hash functions Envoy uses, bit for bit.

/// xxHash64 of `bytes` with `seed` (canonical XXH64, as Envoy's `HashUtil::xxHash64`).
///
/// ```
/// assert_eq!(rauta_balance::hash::xxh64(b"foo", 0), 3728699739546630719);
/// ```
#[inline]
pub fn xxh64(bytes: &[u8], seed: u64) -> u64 {
    xxhash_rust::xxh64::xxh64(bytes, seed)
}

/// xxHash64 over a list of byte strings by seed chaining, as Envoy hashes
/// several values of one header: `h = seed; for s in items { h = xxh64(s, h) }`.
/// This is not the hash of the concatenation.
///
/// ```
/// use rauta_balance::hash::{xxh64, xxh64_chain};
/// assert_eq!(xxh64_chain(["foo", "bar"], 0), 17745830980996999794);
/// assert_ne!(xxh64_chain(["foo", "bar"], 0), xxh64(b"foobar", 0));
/// ```
pub fn xxh64_chain<I>(items: I, seed: u64) -> u64
where
    I: IntoIterator,
    I::Item: AsRef<[u8]>,
{
    items.into_iter().fold(seed, |h, s| xxh64(s.as_ref(), h))
}

/// The seed Envoy passes to MurmurHash2 (libstdc++'s `std::hash` seed).
pub const MURMUR2_SEED: u64 = 0xc70f_6907;

/// 64-bit MurmurHash2 as in libstdc++ `_Hash_bytes` with seed
/// [`MURMUR2_SEED`] (Envoy's `MurmurHash::murmurHash2`, ring hash option
/// `MURMUR_HASH_2`).
///
/// ```
/// assert_eq!(rauta_balance::hash::murmur2_64(b"foo"), 9631199822919835226);
/// ```
pub fn murmur2_64(bytes: &[u8]) -> u64 {
    const MUL: u64 = 0xc6a4_a793_5bd1_e995;
    #[inline(always)]
    fn shift_mix(v: u64) -> u64 {
        v ^ (v >> 47)
    }
    let mut h = MURMUR2_SEED ^ (bytes.len() as u64).wrapping_mul(MUL);
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(c);
        let k = shift_mix(u64::from_le_bytes(word).wrapping_mul(MUL)).wrapping_mul(MUL);
        h ^= k;
        h = h.wrapping_mul(MUL);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        let k = tail
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        h ^= k;
        h = h.wrapping_mul(MUL);
    }
    h = shift_mix(h).wrapping_mul(MUL);
    shift_mix(h)
}

/// The hash key Envoy derives from an address: `a.b.c.d:port` or
/// `[v6]:port`, the IPv6 text as glibc's `inet_ntop` prints it, without a
/// scope id. (An explicit key or a hostname can replace it; see
/// [`crate::EndpointSet::hash_key`].)
///
/// ```
/// use rauta_balance::hash::address_key;
/// assert_eq!(address_key("[2001:db8::5]:443".parse()?), "[2001:db8::5]:443");
/// assert_eq!(address_key("[::1.2.3.4]:80".parse()?), "[::1.2.3.4]:80");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn address_key(addr: std::net::SocketAddr) -> String {
    crate::endpoint::address_text(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_values() {
        assert_eq!(xxh64(b"bar", 0), 5234164152756840025);
        assert_eq!(xxh64(b"", 0), 17241709254077376921);
        assert_eq!(murmur2_64(b"bar"), 11474628671133349555);
        assert_eq!(murmur2_64(b""), 6142509188972423790);
        assert_eq!(murmur2_64(b"foo\nbar"), 16306510975912980159);
    }
}
