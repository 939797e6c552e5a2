//! Crafted Ethernet frames for BPF_PROG_TEST_RUN.
#![allow(dead_code, unreachable_pub)]

use std::net::{Ipv4Addr, Ipv6Addr};

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88a8;

pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const ICMP: u8 = 1;
pub const ICMPV6: u8 = 58;
pub const GRE: u8 = 47;

pub const SYN: u8 = 0x02;
pub const ACK: u8 = 0x10;

/// An Ethernet frame: destination and source MAC, then `tags` as
/// (TPID, VLAN id) pairs, then `ethertype` and `payload`.
pub fn eth(tags: &[(u16, u16)], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02];
    for &(tpid, vid) in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

pub fn checksum(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in data.chunks(2) {
        let w = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// IPv4 options and fragmentation of [`ipv4`].
#[derive(Clone, Copy, Default)]
pub struct V4Opts {
    /// Bytes of options (a multiple of 4, at most 40): NOPs.
    pub options: usize,
    /// More-fragments flag.
    pub more_fragments: bool,
    /// Fragment offset in 8-byte units.
    pub frag_offset: u16,
}

pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, o: V4Opts, l4: &[u8]) -> Vec<u8> {
    assert!(o.options.is_multiple_of(4) && o.options <= 40);
    let hlen = 20 + o.options;
    let total = (hlen + l4.len()) as u16;
    let mut h = vec![0u8; hlen];
    h[0] = 0x40 | (hlen / 4) as u8;
    h[2..4].copy_from_slice(&total.to_be_bytes());
    h[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    let flags = (u16::from(o.more_fragments) << 13) | (o.frag_offset & 0x1fff);
    h[6..8].copy_from_slice(&flags.to_be_bytes());
    h[8] = 64;
    h[9] = proto;
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    for b in &mut h[20..] {
        *b = 1; // NOP
    }
    let c = checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(l4);
    h
}

/// An IPv6 packet; `ext` is a chain of (header type, total length in bytes)
/// extension headers placed before the transport header `l4` of protocol
/// `proto`. Fragment headers (44) get offset `frag_offset`.
pub fn ipv6(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    ext: &[(u8, usize)],
    frag_offset: u16,
    proto: u8,
    l4: &[u8],
) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, &(kind, len)) in ext.iter().enumerate() {
        let next = ext.get(i + 1).map_or(proto, |e| e.0);
        let mut e = vec![0u8; len];
        e[0] = next;
        match kind {
            44 => {
                assert_eq!(len, 8);
                e[2..4].copy_from_slice(&(frag_offset << 3).to_be_bytes());
            }
            51 => {
                assert!(len >= 8 && len.is_multiple_of(4));
                e[1] = (len / 4 - 2) as u8;
            }
            _ => {
                assert!(len >= 8 && len.is_multiple_of(8));
                e[1] = (len / 8 - 1) as u8;
            }
        }
        body.extend_from_slice(&e);
    }
    body.extend_from_slice(l4);
    let mut h = vec![0u8; 40];
    h[0] = 0x60;
    h[4..6].copy_from_slice(&(body.len() as u16).to_be_bytes());
    h[6] = ext.first().map_or(proto, |e| e.0);
    h[7] = 64;
    h[8..24].copy_from_slice(&src.octets());
    h[24..40].copy_from_slice(&dst.octets());
    h.extend_from_slice(&body);
    h
}

pub fn tcp(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&65535u16.to_be_bytes());
    t
}

pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = vec![0u8; 8];
    u[0..2].copy_from_slice(&sport.to_be_bytes());
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    u[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(payload);
    u
}

/// An ICMP (or ICMPv6) echo request header with `payload`.
pub fn icmp_echo(v6: bool, payload: &[u8]) -> Vec<u8> {
    let mut m = vec![if v6 { 128 } else { 8 }, 0, 0, 0, 0, 1, 0, 1];
    m.extend_from_slice(payload);
    m
}

pub fn v4(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
    Ipv4Addr::new(a, b, c, d)
}

pub fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// Shorthands used by the tests and the benchmark.
pub fn v4_frame(src: Ipv4Addr, proto: u8, l4: &[u8]) -> Vec<u8> {
    eth(
        &[],
        ETH_P_IP,
        &ipv4(src, v4(198, 18, 0, 1), proto, V4Opts::default(), l4),
    )
}

pub fn v6_frame(src: Ipv6Addr, proto: u8, l4: &[u8]) -> Vec<u8> {
    eth(
        &[],
        ETH_P_IPV6,
        &ipv6(src, v6("2001:db8::1"), &[], 0, proto, l4),
    )
}

/// A xorshift64 generator from `seed` (not 0): the tests' fixed
/// pseudo-random sequences.
pub fn xorshift64(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}
