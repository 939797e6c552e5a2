//! The loader and control plane of the RAUTA XDP classifier.
//!
//! The XDP program (`ebpf/xdp-ebpf`) parses every received frame (Ethernet,
//! up to two VLAN tags, IPv4 with options and fragments, IPv6 with up to six
//! extension headers, TCP, UDP, ICMP), drops what the operator denied and
//! counts everything; L7 decisions stay in the proxy. This crate loads the
//! program, attaches it to an interface and changes its maps while it runs.
//!
//! ```no_run
//! use rauta_xdp::{IpPrefix, Protocol, SynLimit, XdpFilter};
//!
//! let mut filter = XdpFilter::builder().deny_v4_capacity(100_000).load()?;
//! let mode = filter.attach("eth0")?; // native if the driver can, skb otherwise
//! println!("attached in {mode:?} mode");
//!
//! filter.deny_source("198.18.7.0/24".parse::<IpPrefix>()?)?;
//! filter.deny_port(Protocol::Udp, 11211)?;
//! filter.set_syn_limit(Some(SynLimit::per_second(50, 20)?))?;
//!
//! let c = filter.counters()?;
//! println!("passed {} dropped {}", c.passed.packets, c.dropped().packets);
//! // Dropping `filter` detaches the program and frees its maps.
//! # Ok::<(), rauta_xdp::Error>(())
//! ```
//!
//! # Verdicts, in order
//!
//! 1. the source address is inside a denied prefix: drop (any frame whose
//!    IP header parsed, fragments and malformed transport headers included);
//! 2. TCP or UDP to a denied destination port: drop;
//! 3. a TCP SYN (without ACK) over its source's [`SynLimit`]: drop;
//! 4. everything else passes, malformed and truncated frames included.
//!
//! # Building
//!
//! Without the `ebpf` feature the crate builds on stable Rust with no eBPF
//! toolchain, but carries no program: [`XdpFilter::load`] reports
//! [`ErrorKind::NoEmbeddedObject`]. With it, `build.rs` compiles the program
//! with the nightly toolchain and `bpf-linker`; `scripts/setup.d/xdp.sh`
//! installs both. See `docs/xdp.md`.
//!
//! # Privileges
//!
//! Loading, attaching and [`XdpFilter::test_run`] need root (`CAP_BPF` and
//! `CAP_NET_ADMIN`), otherwise [`ErrorKind::NotRoot`]. Interfaces are looked
//! up in the calling thread's network namespace.
//!
//! # Minimum kernel version
//!
//! 5.9 (XDP links owned by a file descriptor, so a crashed process leaves
//! nothing attached); per-CPU array lookups inlined since 5.x make the
//! counters cheap.

mod buckets;
mod error;
mod filter;
mod prefix;
mod ranges;
/// Crafted frames, shared with the integration tests.
#[cfg(all(test, feature = "ebpf"))]
#[path = "../tests/common/frames.rs"]
mod test_frames;
mod wait;

pub(crate) use error::errno;
pub use error::{Error, ErrorKind};
pub use filter::{
    AttachMode, AttachPolicy, Builder, Protocol, SynLimit, TestRunOutcome, Verdict, XdpFilter,
};
pub use prefix::IpPrefix;
pub use rauta_xdp_common::CounterSlot as Count;

use rauta_xdp_common::{cell, slot, CounterTable};

/// Every counter of the program, summed over CPUs.
///
/// Each frame counts in exactly one of `tcp`, `udp`, `icmp`, `fragment`,
/// `other`, `malformed` and in exactly one of `passed`, `dropped_*`; `ipv4`,
/// `ipv6` and `vlan` count in addition where they apply. Bytes are frame
/// lengths from the Ethernet header on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// Frames whose IPv4 header parsed.
    pub ipv4: Count,
    /// Frames whose IPv6 header parsed.
    pub ipv6: Count,
    /// TCP segments.
    pub tcp: Count,
    /// UDP datagrams.
    pub udp: Count,
    /// ICMP and ICMPv6 messages.
    pub icmp: Count,
    /// Non-first IP fragments (no transport header to inspect).
    pub fragment: Count,
    /// Non-IP frames, other transport protocols, IPv6 with more extension
    /// headers than the program skips.
    pub other: Count,
    /// Truncated or invalid frames (passed).
    pub malformed: Count,
    /// Frames with at least one VLAN tag.
    pub vlan: Count,
    /// Frames passed to the kernel stack.
    pub passed: Count,
    /// Frames dropped for their source address.
    pub dropped_deny_source: Count,
    /// Frames dropped for their destination port.
    pub dropped_deny_port: Count,
    /// SYNs dropped by the rate limit.
    pub dropped_syn_rate: Count,
}

impl Counters {
    /// Adds the cells up into the named counters.
    fn from_table(t: &CounterTable) -> Self {
        let mut slots = [Count::default(); slot::COUNT];
        for (i, c) in t.cells.iter().enumerate() {
            if c.packets == 0 && c.bytes == 0 {
                continue;
            }
            let (kind, family, verdict, vlan) = cell::decode(i as u32);
            let family = match family {
                cell::FAMILY_V4 => Some(slot::IPV4),
                cell::FAMILY_V6 => Some(slot::IPV6),
                _ => None,
            };
            let vlan = vlan.then_some(slot::VLAN);
            for s in [Some(kind), Some(verdict), family, vlan]
                .into_iter()
                .flatten()
            {
                slots[s as usize] = add(slots[s as usize], *c);
            }
        }
        Self::from_slots(&slots)
    }

    fn from_slots(t: &[Count; slot::COUNT]) -> Self {
        let s = |i: u32| t[i as usize];
        Self {
            ipv4: s(slot::IPV4),
            ipv6: s(slot::IPV6),
            tcp: s(slot::TCP),
            udp: s(slot::UDP),
            icmp: s(slot::ICMP),
            fragment: s(slot::FRAGMENT),
            other: s(slot::OTHER),
            malformed: s(slot::MALFORMED),
            vlan: s(slot::VLAN),
            passed: s(slot::PASSED),
            dropped_deny_source: s(slot::DROP_DENY_SOURCE),
            dropped_deny_port: s(slot::DROP_DENY_PORT),
            dropped_syn_rate: s(slot::DROP_SYN_RATE),
        }
    }

    /// All dropped frames.
    pub fn dropped(&self) -> Count {
        add(
            add(self.dropped_deny_source, self.dropped_deny_port),
            self.dropped_syn_rate,
        )
    }

    /// All frames seen.
    pub fn total(&self) -> Count {
        add(self.passed, self.dropped())
    }

    /// The counters as `(name, count)` pairs, for exporting (names are
    /// snake_case, stable).
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, Count)> {
        [
            ("ipv4", self.ipv4),
            ("ipv6", self.ipv6),
            ("tcp", self.tcp),
            ("udp", self.udp),
            ("icmp", self.icmp),
            ("fragment", self.fragment),
            ("other", self.other),
            ("malformed", self.malformed),
            ("vlan", self.vlan),
            ("passed", self.passed),
            ("dropped_deny_source", self.dropped_deny_source),
            ("dropped_deny_port", self.dropped_deny_port),
            ("dropped_syn_rate", self.dropped_syn_rate),
        ]
        .into_iter()
    }

    /// The change from `earlier` to `self` (counters only grow).
    pub fn since(&self, earlier: &Counters) -> Counters {
        // `iter` yields the counters in slot order.
        let mut t = [Count::default(); slot::COUNT];
        for (i, ((_, now), (_, then))) in self.iter().zip(earlier.iter()).enumerate() {
            t[i] = Count {
                packets: now.packets.wrapping_sub(then.packets),
                bytes: now.bytes.wrapping_sub(then.bytes),
            };
        }
        Self::from_slots(&t)
    }
}

fn add(a: Count, b: Count) -> Count {
    Count {
        packets: a.packets.wrapping_add(b.packets),
        bytes: a.bytes.wrapping_add(b.bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_and_error_are_send() {
        // The filter moves between threads: attach from a thread inside a
        // network namespace, control it from another.
        fn send<T: Send>() {}
        send::<XdpFilter>();
        send::<Error>();
    }

    #[test]
    fn cells_add_up_into_counters() {
        let mut t = CounterTable::default();
        let frame = |kind, family, verdict, vlan, len| {
            let i = cell::index(kind, family, verdict, vlan) as usize;
            (i, len)
        };
        for (i, len) in [
            frame(slot::TCP, cell::FAMILY_V4, slot::PASSED, false, 60),
            frame(slot::TCP, cell::FAMILY_V4, slot::PASSED, false, 60),
            frame(
                slot::UDP,
                cell::FAMILY_V6,
                slot::DROP_DENY_SOURCE,
                true,
                100,
            ),
            frame(slot::MALFORMED, cell::NO_FAMILY, slot::PASSED, true, 15),
            frame(
                slot::FRAGMENT,
                cell::FAMILY_V4,
                slot::DROP_DENY_SOURCE,
                false,
                1000,
            ),
        ] {
            t.cells[i].packets += 1;
            t.cells[i].bytes += len;
        }
        let c = Counters::from_table(&t);
        let n = |packets, bytes| Count { packets, bytes };
        assert_eq!(c.tcp, n(2, 120));
        assert_eq!(c.ipv4, n(3, 1120));
        assert_eq!(c.ipv6, n(1, 100));
        assert_eq!(c.udp, n(1, 100));
        assert_eq!(c.malformed, n(1, 15));
        assert_eq!(c.fragment, n(1, 1000));
        assert_eq!(c.vlan, n(2, 115));
        assert_eq!(c.passed, n(3, 135));
        assert_eq!(c.dropped_deny_source, n(2, 1100));
        assert_eq!(c.total(), n(5, 1235));
        assert_eq!(c.icmp, Count::default());
    }

    #[test]
    fn counters_map_every_slot_once() {
        let mut t = [Count::default(); slot::COUNT];
        for (i, s) in t.iter_mut().enumerate() {
            s.packets = i as u64 + 1;
            s.bytes = 100 * (i as u64 + 1);
        }
        let c = Counters::from_slots(&t);
        let seen: Vec<u64> = c.iter().map(|(_, v)| v.packets).collect();
        assert_eq!(seen, (1..=slot::COUNT as u64).collect::<Vec<_>>());
        assert_eq!(c.ipv4.packets, u64::from(slot::IPV4) + 1);
        assert_eq!(
            c.dropped_syn_rate.bytes,
            100 * (u64::from(slot::DROP_SYN_RATE) + 1)
        );
        assert_eq!(c.dropped().packets, 11 + 12 + 13);
        assert_eq!(c.total().packets, 10 + 11 + 12 + 13);
        let z = c.since(&c);
        assert_eq!(z, Counters::default());
    }

    #[test]
    fn plain_build_has_no_object_unless_featured() {
        assert_eq!(XdpFilter::has_embedded_object(), cfg!(feature = "ebpf"));
        if !cfg!(feature = "ebpf") {
            let e = XdpFilter::load().unwrap_err();
            assert_eq!(e.kind(), &ErrorKind::NoEmbeddedObject);
        }
    }

    #[test]
    fn bad_settings_are_refused_before_the_kernel() {
        let e = XdpFilter::builder()
            .deny_v4_capacity(0)
            .load_from(b"not an object")
            .unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::InvalidSetting { .. }), "{e}");
        let e = XdpFilter::builder()
            .deny_v6_range_slots(0)
            .load_from(b"not an object")
            .unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::InvalidSetting { .. }), "{e}");
        assert!(e.to_string().contains("deny_v6_range_slots"), "{e}");
        assert!(SynLimit::per_second(0, 5).is_err());
        assert!(SynLimit::per_second(10, 0).is_err());
        assert!(SynLimit::every(std::time::Duration::ZERO, 1).is_err());
        let l = SynLimit::every(std::time::Duration::from_secs(3600), 3).unwrap();
        assert_eq!((l.interval().as_secs(), l.burst()), (3600, 3));
    }

    #[test]
    fn garbage_object_is_invalid_not_a_panic() {
        let e = XdpFilter::builder()
            .load_from(b"not an object")
            .unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::InvalidObject { .. }), "{e}");
    }
}
