//! What the XDP benchmarks share: settings from the environment, a
//! deterministic generator and the random deny lists they load.

use std::{
    collections::HashSet,
    net::{Ipv4Addr, Ipv6Addr},
    ops::RangeInclusive,
};

use rauta_xdp::IpPrefix;

/// The value of the environment variable `name`, or `default`.
pub(crate) fn env_u32(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small deterministic generator (xorshift64*), so every run loads the
/// same deny lists.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    /// The next value.
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// `n` distinct random IPv4 prefixes of /16 to /32, none in 198.0.0.0/8
/// (the benchmarks' own sources), in the order drawn.
pub(crate) fn random_v4(rng: &mut Rng, n: usize) -> Vec<IpPrefix> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let r = rng.next();
        let len = 16 + (r % 17) as u8; // /16 ../32
        let addr = (r >> 32) as u32 & !(u32::MAX.checked_shr(u32::from(len)).unwrap_or(0));
        let ip = Ipv4Addr::from(addr);
        if ip.octets()[0] == 198 {
            continue;
        }
        let p = IpPrefix::new(ip.into(), len).unwrap();
        if seen.insert(p) {
            out.push(p);
        }
    }
    out
}

/// `n` distinct random IPv6 prefixes with lengths in `lens` (inside /32 to
/// /64), inside 2000::/3, in the order drawn.
pub(crate) fn random_v6(rng: &mut Rng, n: usize, lens: RangeInclusive<u8>) -> Vec<IpPrefix> {
    let (lo, span) = (*lens.start(), u64::from(lens.end() - lens.start()) + 1);
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let hi = u128::from(rng.next()) << 64 | u128::from(rng.next());
        let len = lo + (rng.next() % span) as u8;
        let addr = ((hi >> 3) | (1u128 << 125)) & !(u128::MAX >> len);
        let p = IpPrefix::new(Ipv6Addr::from(addr).into(), len).unwrap();
        if seen.insert(p) {
            out.push(p);
        }
    }
    out
}

/// The median of `s`, which it sorts.
pub(crate) fn median(s: &mut [f64]) -> f64 {
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}
