//! BPF_PROG_TEST_RUN on crafted frames: every class and verdict, truncated
//! and VLAN-tagged frames. Needs root and the `ebpf` feature; run by
//! scripts/test.d/40-xdp.sh with `--ignored --test-threads=1`.
#![cfg(feature = "ebpf")]

mod common;

use std::{net::IpAddr, time::Duration};

use common::frames::*;
use common::require_root;
use rauta_xdp::{Count, ErrorKind, IpPrefix, Protocol, SynLimit, Verdict, XdpFilter};

fn filter() -> XdpFilter {
    require_root();
    XdpFilter::load().expect("load the XDP program")
}

/// Runs `frame` once and checks the verdict and that exactly the counters
/// named in `expect` grew, each by one frame of `frame.len()` bytes.
#[track_caller]
fn check(f: &XdpFilter, label: &str, frame: &[u8], verdict: Verdict, expect: &[&str]) {
    let before = f.counters().unwrap();
    let out = f.test_run(frame, 1).unwrap();
    assert_eq!(out.verdict, verdict, "{label}: verdict");
    let delta = f.counters().unwrap().since(&before);
    for (name, got) in delta.iter() {
        let want = if expect.contains(&name) {
            Count {
                packets: 1,
                bytes: frame.len() as u64,
            }
        } else {
            Count::default()
        };
        assert_eq!(got, want, "{label}: counter {name}");
    }
}

const SRC4: [u8; 4] = [198, 18, 5, 9];
const SRC6: &str = "2001:db8:5::9";

fn src4() -> std::net::Ipv4Addr {
    SRC4.into()
}

#[test]
#[ignore = "needs root"]
fn root_test_run_every_class_passes() {
    let f = filter();
    let opts = V4Opts::default();
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        (
            "ipv4 tcp",
            v4_frame(src4(), TCP, &tcp(40000, 80, ACK)),
            &["ipv4", "tcp", "passed"],
        ),
        (
            "ipv4 udp",
            v4_frame(src4(), UDP, &udp(40000, 53, b"q")),
            &["ipv4", "udp", "passed"],
        ),
        (
            "ipv4 icmp",
            v4_frame(src4(), ICMP, &icmp_echo(false, b"ping")),
            &["ipv4", "icmp", "passed"],
        ),
        (
            "ipv4 gre",
            v4_frame(src4(), GRE, &[0; 8]),
            &["ipv4", "other", "passed"],
        ),
        (
            "ipv4 options",
            eth(
                &[],
                ETH_P_IP,
                &ipv4(
                    src4(),
                    v4(198, 18, 0, 1),
                    UDP,
                    V4Opts {
                        options: 12,
                        ..opts
                    },
                    &udp(1, 2, b"x"),
                ),
            ),
            &["ipv4", "udp", "passed"],
        ),
        (
            "ipv4 max options",
            eth(
                &[],
                ETH_P_IP,
                &ipv4(
                    src4(),
                    v4(198, 18, 0, 1),
                    TCP,
                    V4Opts {
                        options: 40,
                        ..opts
                    },
                    &tcp(1, 2, ACK),
                ),
            ),
            &["ipv4", "tcp", "passed"],
        ),
        (
            "ipv4 first fragment",
            eth(
                &[],
                ETH_P_IP,
                &ipv4(
                    src4(),
                    v4(198, 18, 0, 1),
                    UDP,
                    V4Opts {
                        more_fragments: true,
                        ..opts
                    },
                    &udp(1, 2, &[7; 64]),
                ),
            ),
            &["ipv4", "udp", "passed"],
        ),
        (
            "ipv4 later fragment",
            eth(
                &[],
                ETH_P_IP,
                &ipv4(
                    src4(),
                    v4(198, 18, 0, 1),
                    UDP,
                    V4Opts {
                        frag_offset: 9,
                        ..opts
                    },
                    &[7; 64],
                ),
            ),
            &["ipv4", "fragment", "passed"],
        ),
        (
            "ipv6 tcp",
            v6_frame(v6(SRC6), TCP, &tcp(40000, 443, SYN | ACK)),
            &["ipv6", "tcp", "passed"],
        ),
        (
            "ipv6 udp",
            v6_frame(v6(SRC6), UDP, &udp(40000, 53, b"q")),
            &["ipv6", "udp", "passed"],
        ),
        (
            "ipv6 icmp",
            v6_frame(v6(SRC6), ICMPV6, &icmp_echo(true, b"ping")),
            &["ipv6", "icmp", "passed"],
        ),
        (
            "ipv6 hop-by-hop, routing, destination options, AH",
            eth(
                &[],
                ETH_P_IPV6,
                &ipv6(
                    v6(SRC6),
                    v6("2001:db8::1"),
                    &[(0, 8), (43, 24), (60, 16), (51, 12)],
                    0,
                    UDP,
                    &udp(1, 2, b"x"),
                ),
            ),
            &["ipv6", "udp", "passed"],
        ),
        (
            "ipv6 first fragment",
            eth(
                &[],
                ETH_P_IPV6,
                &ipv6(
                    v6(SRC6),
                    v6("2001:db8::1"),
                    &[(44, 8)],
                    0,
                    TCP,
                    &tcp(1, 2, ACK),
                ),
            ),
            &["ipv6", "tcp", "passed"],
        ),
        (
            "ipv6 later fragment",
            eth(
                &[],
                ETH_P_IPV6,
                &ipv6(
                    v6(SRC6),
                    v6("2001:db8::1"),
                    &[(0, 8), (44, 8)],
                    100,
                    TCP,
                    &[0; 32],
                ),
            ),
            &["ipv6", "fragment", "passed"],
        ),
        (
            "ipv6 six extension headers",
            eth(
                &[],
                ETH_P_IPV6,
                &ipv6(
                    v6(SRC6),
                    v6("2001:db8::1"),
                    &[(0, 8), (60, 8), (43, 8), (60, 8), (60, 8), (60, 8)],
                    0,
                    UDP,
                    &udp(1, 2, b"x"),
                ),
            ),
            &["ipv6", "udp", "passed"],
        ),
        (
            "ipv6 seven extension headers: beyond the bound",
            eth(
                &[],
                ETH_P_IPV6,
                &ipv6(
                    v6(SRC6),
                    v6("2001:db8::1"),
                    &[(0, 8), (60, 8), (43, 8), (60, 8), (60, 8), (60, 8), (60, 8)],
                    0,
                    UDP,
                    &udp(1, 2, b"x"),
                ),
            ),
            &["ipv6", "other", "passed"],
        ),
        (
            "ipv6 no next header",
            v6_frame(v6(SRC6), 59, &[]),
            &["ipv6", "other", "passed"],
        ),
        ("arp", eth(&[], ETH_P_ARP, &[0; 28]), &["other", "passed"]),
        (
            "802.1Q ipv4 udp",
            eth(
                &[(ETH_P_8021Q, 7)],
                ETH_P_IP,
                &ipv4(src4(), v4(198, 18, 0, 1), UDP, opts, &udp(1, 2, b"x")),
            ),
            &["ipv4", "udp", "vlan", "passed"],
        ),
        (
            "802.1ad + 802.1Q ipv6 tcp",
            eth(
                &[(ETH_P_8021AD, 100), (ETH_P_8021Q, 7)],
                ETH_P_IPV6,
                &ipv6(v6(SRC6), v6("2001:db8::1"), &[], 0, TCP, &tcp(1, 2, ACK)),
            ),
            &["ipv6", "tcp", "vlan", "passed"],
        ),
        (
            "three VLAN tags: not parsed further",
            eth(
                &[(ETH_P_8021AD, 1), (ETH_P_8021Q, 2), (ETH_P_8021Q, 3)],
                ETH_P_IP,
                &ipv4(src4(), v4(198, 18, 0, 1), UDP, opts, &udp(1, 2, b"x")),
            ),
            &["other", "vlan", "passed"],
        ),
    ];
    for (label, frame, expect) in &cases {
        check(&f, label, frame, Verdict::Pass, expect);
    }
}

#[test]
#[ignore = "needs root"]
fn root_test_run_truncated_and_malformed_frames_pass() {
    let f = filter();
    let good4 = ipv4(
        src4(),
        v4(198, 18, 0, 1),
        TCP,
        V4Opts::default(),
        &tcp(1, 2, ACK),
    );
    let good6 = ipv6(v6(SRC6), v6("2001:db8::1"), &[], 0, UDP, &udp(1, 2, b""));
    let mut bad_version = good4.clone();
    bad_version[0] = 0x65;
    let mut short_ihl = good4.clone();
    short_ihl[0] = 0x44;
    let mut long_ihl = good4.clone();
    long_ihl[0] = 0x4f; // 60-byte header in a 40-byte packet
    let mut bad_total = good4.clone();
    bad_total[2..4].copy_from_slice(&10u16.to_be_bytes());
    let mut v6_in_v4 = good6.clone();
    v6_in_v4[0] = 0x40;
    let v6_ext_cut = ipv6(
        v6(SRC6),
        v6("2001:db8::1"),
        &[(0, 16)],
        0,
        UDP,
        &udp(1, 2, b""),
    );
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        (
            "bare ethernet header, IPv4 type",
            eth(&[], ETH_P_IP, &[]),
            &["malformed", "passed"],
        ),
        (
            "ipv4 header cut at 19 bytes",
            eth(&[], ETH_P_IP, &good4[..19]),
            &["malformed", "passed"],
        ),
        (
            "ipv4 version 6",
            eth(&[], ETH_P_IP, &bad_version),
            &["malformed", "passed"],
        ),
        (
            "ipv4 IHL 4",
            eth(&[], ETH_P_IP, &short_ihl),
            &["malformed", "passed"],
        ),
        (
            "ipv4 IHL past the end",
            eth(&[], ETH_P_IP, &long_ihl),
            &["malformed", "passed"],
        ),
        (
            "ipv4 total length below header",
            eth(&[], ETH_P_IP, &bad_total),
            &["malformed", "passed"],
        ),
        (
            "ipv4 tcp header cut",
            eth(&[], ETH_P_IP, &good4[..30]),
            &["ipv4", "malformed", "passed"],
        ),
        (
            "ipv4 udp header cut",
            eth(
                &[],
                ETH_P_IP,
                &ipv4(src4(), v4(198, 18, 0, 1), UDP, V4Opts::default(), &[0; 7]),
            ),
            &["ipv4", "malformed", "passed"],
        ),
        (
            "ipv4 icmp header cut",
            eth(
                &[],
                ETH_P_IP,
                &ipv4(src4(), v4(198, 18, 0, 1), ICMP, V4Opts::default(), &[8, 0]),
            ),
            &["ipv4", "malformed", "passed"],
        ),
        (
            "ipv6 header cut at 39 bytes",
            eth(&[], ETH_P_IPV6, &good6[..39]),
            &["malformed", "passed"],
        ),
        (
            "ipv6 version 4",
            eth(&[], ETH_P_IPV6, &v6_in_v4),
            &["malformed", "passed"],
        ),
        (
            "ipv6 udp header cut",
            eth(&[], ETH_P_IPV6, &good6[..44]),
            &["ipv6", "malformed", "passed"],
        ),
        (
            "ipv6 extension header cut",
            eth(&[], ETH_P_IPV6, &v6_ext_cut[..41]),
            &["ipv6", "malformed", "passed"],
        ),
        (
            "ipv6 extension header longer than the packet",
            eth(&[], ETH_P_IPV6, &v6_ext_cut[..50]),
            &["ipv6", "malformed", "passed"],
        ),
        (
            "VLAN tag cut",
            {
                let mut f = eth(&[], ETH_P_8021Q, &[0, 7]);
                f.truncate(15);
                f
            },
            &["malformed", "vlan", "passed"],
        ),
        (
            "second VLAN tag cut",
            eth(&[(ETH_P_8021AD, 1)], ETH_P_8021Q, &[0, 2, 0x08]),
            &["malformed", "vlan", "passed"],
        ),
    ];
    for (label, frame, expect) in &cases {
        check(&f, label, frame, Verdict::Pass, expect);
    }
    // Shorter than an Ethernet header: refused before the kernel.
    let e = f.test_run(&[0u8; 13], 1).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::InvalidSetting { .. }), "{e}");
}

#[test]
#[ignore = "needs root"]
fn root_test_run_deny_list_v4_v6() {
    let mut f = filter();
    let p4: IpPrefix = "198.18.5.0/24".parse().unwrap();
    let p6: IpPrefix = "2001:db8:5::/48".parse().unwrap();
    f.deny_source(p4).unwrap();
    f.deny_source(p6).unwrap();
    f.deny_source(p6).unwrap(); // twice is fine
    let mut listed = f.denied_sources().unwrap();
    listed.sort_by_key(|p| p.to_string());
    assert_eq!(listed, vec![p4, p6]);

    let drop_src = ["dropped_deny_source"];
    let denied_tcp = v4_frame(src4(), TCP, &tcp(40000, 80, SYN));
    check(
        &f,
        "denied v4 tcp",
        &denied_tcp,
        Verdict::Drop,
        &["ipv4", "tcp", drop_src[0]],
    );
    check(
        &f,
        "denied v4 udp",
        &v4_frame(src4(), UDP, &udp(1, 2, b"")),
        Verdict::Drop,
        &["ipv4", "udp", drop_src[0]],
    );
    check(
        &f,
        "denied v4 later fragment",
        &eth(
            &[],
            ETH_P_IP,
            &ipv4(
                src4(),
                v4(198, 18, 0, 1),
                UDP,
                V4Opts {
                    frag_offset: 3,
                    ..V4Opts::default()
                },
                &[0; 16],
            ),
        ),
        Verdict::Drop,
        &["ipv4", "fragment", drop_src[0]],
    );
    check(
        &f,
        "denied v4 cut tcp",
        &eth(
            &[],
            ETH_P_IP,
            &ipv4(src4(), v4(198, 18, 0, 1), TCP, V4Opts::default(), &[0; 10]),
        ),
        Verdict::Drop,
        &["ipv4", "malformed", drop_src[0]],
    );
    check(
        &f,
        "denied v4 behind two VLAN tags",
        &eth(
            &[(ETH_P_8021AD, 5), (ETH_P_8021Q, 6)],
            ETH_P_IP,
            &ipv4(
                src4(),
                v4(198, 18, 0, 1),
                ICMP,
                V4Opts::default(),
                &icmp_echo(false, b""),
            ),
        ),
        Verdict::Drop,
        &["ipv4", "icmp", "vlan", drop_src[0]],
    );
    check(
        &f,
        "v4 next to the prefix",
        &v4_frame(v4(198, 18, 6, 9), TCP, &tcp(1, 80, SYN)),
        Verdict::Pass,
        &["ipv4", "tcp", "passed"],
    );
    check(
        &f,
        "denied v6 tcp",
        &v6_frame(v6(SRC6), TCP, &tcp(1, 443, SYN)),
        Verdict::Drop,
        &["ipv6", "tcp", drop_src[0]],
    );
    check(
        &f,
        "denied v6 behind extension headers",
        &eth(
            &[],
            ETH_P_IPV6,
            &ipv6(
                v6("2001:db8:5:ffff::1"),
                v6("2001:db8::1"),
                &[(0, 8), (60, 8)],
                0,
                ICMPV6,
                &icmp_echo(true, b""),
            ),
        ),
        Verdict::Drop,
        &["ipv6", "icmp", drop_src[0]],
    );
    check(
        &f,
        "v6 next to the prefix",
        &v6_frame(v6("2001:db8:6::9"), UDP, &udp(1, 2, b"")),
        Verdict::Pass,
        &["ipv6", "udp", "passed"],
    );

    // A wider prefix and a narrower one: removing one keeps the other.
    let wide: IpPrefix = "198.18.0.0/15".parse().unwrap();
    f.deny_source(wide).unwrap();
    assert!(f.allow_source(p4).unwrap());
    assert!(!f.allow_source(p4).unwrap());
    check(
        &f,
        "still inside /15",
        &denied_tcp,
        Verdict::Drop,
        &["ipv4", "tcp", drop_src[0]],
    );
    assert!(f.allow_source(wide).unwrap());
    check(
        &f,
        "v4 allowed again",
        &denied_tcp,
        Verdict::Pass,
        &["ipv4", "tcp", "passed"],
    );
    assert!(f.allow_source(p6).unwrap());
    check(
        &f,
        "v6 allowed again",
        &v6_frame(v6(SRC6), TCP, &tcp(1, 443, SYN)),
        Verdict::Pass,
        &["ipv6", "tcp", "passed"],
    );
    assert!(f.denied_sources().unwrap().is_empty());
}

#[test]
#[ignore = "needs root"]
fn root_test_run_deny_ports() {
    let mut f = filter();
    f.deny_port(Protocol::Tcp, 23).unwrap();
    f.deny_port(Protocol::Udp, 11211).unwrap();
    f.deny_port(Protocol::Tcp, 65535).unwrap();
    let drop = "dropped_deny_port";
    check(
        &f,
        "tcp 23",
        &v4_frame(src4(), TCP, &tcp(1, 23, SYN)),
        Verdict::Drop,
        &["ipv4", "tcp", drop],
    );
    check(
        &f,
        "udp 23 is not tcp 23",
        &v4_frame(src4(), UDP, &udp(1, 23, b"")),
        Verdict::Pass,
        &["ipv4", "udp", "passed"],
    );
    check(
        &f,
        "udp 11211",
        &v6_frame(v6(SRC6), UDP, &udp(1, 11211, b"stats")),
        Verdict::Drop,
        &["ipv6", "udp", drop],
    );
    check(
        &f,
        "tcp 11211 is open",
        &v6_frame(v6(SRC6), TCP, &tcp(1, 11211, ACK)),
        Verdict::Pass,
        &["ipv6", "tcp", "passed"],
    );
    check(
        &f,
        "tcp 65535",
        &v4_frame(src4(), TCP, &tcp(1, 65535, ACK)),
        Verdict::Drop,
        &["ipv4", "tcp", drop],
    );
    check(
        &f,
        "source port 23 is open",
        &v4_frame(src4(), TCP, &tcp(23, 80, ACK)),
        Verdict::Pass,
        &["ipv4", "tcp", "passed"],
    );
    check(
        &f,
        "tcp 23 in a VLAN",
        &eth(
            &[(ETH_P_8021Q, 9)],
            ETH_P_IP,
            &ipv4(
                src4(),
                v4(198, 18, 0, 1),
                TCP,
                V4Opts::default(),
                &tcp(1, 23, ACK),
            ),
        ),
        Verdict::Drop,
        &["ipv4", "tcp", "vlan", drop],
    );
    // The source deny list comes first.
    f.deny_source(IpPrefix::host(src4().into())).unwrap();
    check(
        &f,
        "denied source to denied port",
        &v4_frame(src4(), TCP, &tcp(1, 23, SYN)),
        Verdict::Drop,
        &["ipv4", "tcp", "dropped_deny_source"],
    );
    f.allow_source(IpPrefix::host(src4().into())).unwrap();
    assert!(f.allow_port(Protocol::Tcp, 23).unwrap());
    assert!(!f.allow_port(Protocol::Tcp, 23).unwrap());
    check(
        &f,
        "tcp 23 allowed again",
        &v4_frame(src4(), TCP, &tcp(1, 23, SYN)),
        Verdict::Pass,
        &["ipv4", "tcp", "passed"],
    );
}

#[test]
#[ignore = "needs root"]
fn root_test_run_syn_limit() {
    let mut f = filter();
    assert_eq!(f.syn_limit(), None);
    // One SYN an hour after a burst of 3: no test is long enough to refill.
    let limit = SynLimit::every(Duration::from_secs(3600), 3).unwrap();
    f.set_syn_limit(Some(limit)).unwrap();
    assert_eq!(f.syn_limit(), Some(limit));
    let syn4 = v4_frame(src4(), TCP, &tcp(40000, 80, SYN));
    for i in 0..3 {
        check(
            &f,
            &format!("v4 syn {i} within burst"),
            &syn4,
            Verdict::Pass,
            &["ipv4", "tcp", "passed"],
        );
    }
    for i in 3..6 {
        check(
            &f,
            &format!("v4 syn {i} over the limit"),
            &syn4,
            Verdict::Drop,
            &["ipv4", "tcp", "dropped_syn_rate"],
        );
    }
    check(
        &f,
        "syn-ack is not limited",
        &v4_frame(src4(), TCP, &tcp(40000, 80, SYN | ACK)),
        Verdict::Pass,
        &["ipv4", "tcp", "passed"],
    );
    check(
        &f,
        "ack is not limited",
        &v4_frame(src4(), TCP, &tcp(40000, 80, ACK)),
        Verdict::Pass,
        &["ipv4", "tcp", "passed"],
    );
    check(
        &f,
        "another source has its own bucket",
        &v4_frame(v4(198, 18, 5, 10), TCP, &tcp(1, 80, SYN)),
        Verdict::Pass,
        &["ipv4", "tcp", "passed"],
    );
    let syn6 = v6_frame(v6(SRC6), TCP, &tcp(40000, 80, SYN));
    for i in 0..3 {
        check(
            &f,
            &format!("v6 syn {i}"),
            &syn6,
            Verdict::Pass,
            &["ipv6", "tcp", "passed"],
        );
    }
    check(
        &f,
        "v6 syn over the limit",
        &syn6,
        Verdict::Drop,
        &["ipv6", "tcp", "dropped_syn_rate"],
    );
    // A denied port is counted as such, before the rate limit.
    f.deny_port(Protocol::Tcp, 80).unwrap();
    check(
        &f,
        "port before rate",
        &syn4,
        Verdict::Drop,
        &["ipv4", "tcp", "dropped_deny_port"],
    );
    f.allow_port(Protocol::Tcp, 80).unwrap();
    // Switching the limit off lets SYNs through and forgets the sources.
    f.set_syn_limit(None).unwrap();
    check(
        &f,
        "limit off",
        &syn4,
        Verdict::Pass,
        &["ipv4", "tcp", "passed"],
    );
    f.set_syn_limit(Some(limit)).unwrap();
    for i in 0..3 {
        check(
            &f,
            &format!("fresh burst {i}"),
            &syn4,
            Verdict::Pass,
            &["ipv4", "tcp", "passed"],
        );
    }
    check(
        &f,
        "fresh burst spent",
        &syn4,
        Verdict::Drop,
        &["ipv4", "tcp", "dropped_syn_rate"],
    );
}

#[test]
#[ignore = "needs root"]
fn root_test_run_repeat_counts_every_run() {
    let f = filter();
    let frame = v4_frame(src4(), UDP, &udp(1, 2, &[0; 100]));
    let out = f.test_run(&frame, 1000).unwrap();
    assert_eq!(out.verdict, Verdict::Pass);
    let c = f.counters().unwrap();
    assert_eq!(c.udp.packets, 1000);
    assert_eq!(c.udp.bytes, 1000 * frame.len() as u64);
    assert_eq!(c.total(), c.passed);
    let empty = f.test_run_empty(&frame, 10).unwrap();
    assert_eq!(empty.verdict, Verdict::Pass);
    assert_eq!(f.counters().unwrap(), c, "the empty program counts nothing");
}

#[test]
#[ignore = "needs root"]
fn root_load_errors_and_capacities() {
    require_root();
    let mut f = XdpFilter::builder()
        .deny_v4_capacity(2)
        .deny_v6_capacity(1)
        .syn_sources_capacity(4)
        .load()
        .unwrap();
    f.deny_source("198.18.1.0/24".parse().unwrap()).unwrap();
    f.deny_source("198.18.2.0/24".parse().unwrap()).unwrap();
    let e = f.deny_source("198.18.3.0/24".parse().unwrap()).unwrap_err();
    assert_eq!(
        e.kind(),
        &ErrorKind::MapFull {
            map: "DENY_V4",
            capacity: 2
        }
    );
    f.deny_source("2001:db8::/32".parse().unwrap()).unwrap();
    let e = f.deny_source("2001:db9::/32".parse().unwrap()).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::MapFull { map: "DENY_V6", .. }),
        "{e}"
    );

    let e = f.attach("rauta-nope0").unwrap_err();
    assert_eq!(
        e.kind(),
        &ErrorKind::NoSuchInterface {
            name: "rauta-nope0".into()
        }
    );
    assert_eq!(f.detach().unwrap_err().kind(), &ErrorKind::NotAttached);
    assert_eq!(f.attachment(), None);

    // The SYN state map evicts instead of filling up: 10 sources, capacity 4.
    f.set_syn_limit(Some(SynLimit::every(Duration::from_secs(3600), 1).unwrap()))
        .unwrap();
    for i in 0..10 {
        let frame = v4_frame(v4(198, 18, 9, i), TCP, &tcp(1, 80, SYN));
        assert_eq!(f.test_run(&frame, 1).unwrap().verdict, Verdict::Pass);
    }
}

/// The IPv4 deny list (a /24 bitmap in front of a trie for longer prefixes)
/// against a plain list of prefixes, through random adds and removes.
#[test]
#[ignore = "needs root"]
fn root_test_run_deny_list_v4_matches_an_oracle() {
    let mut f = filter();
    let mut next = xorshift64(0x2545_f491_4f6c_dd1d);
    let mut oracle: Vec<IpPrefix> = Vec::new();
    let base = u32::from(v4(198, 18, 0, 0));
    let random_addr = |r: u64| std::net::Ipv4Addr::from(base | (r as u32 & 0x1_ffff));
    for round in 0..30 {
        for _ in 0..12 {
            let r = next();
            if r.is_multiple_of(3) && !oracle.is_empty() {
                let p = oracle.swap_remove((r >> 8) as usize % oracle.len());
                assert!(f.allow_source(p).unwrap(), "{p} was denied");
            } else {
                let len = 15 + ((r >> 8) % 18) as u8; // /15 ../32
                let a = u32::from(random_addr(r >> 20)) & (u32::MAX << (32 - u32::from(len)));
                let p = IpPrefix::new(std::net::Ipv4Addr::from(a).into(), len).unwrap();
                f.deny_source(p).unwrap();
                if !oracle.contains(&p) {
                    oracle.push(p);
                }
            }
        }
        let mut listed = f.denied_sources().unwrap();
        let mut want = oracle.clone();
        listed.sort_by_key(|p| (p.addr(), p.len()));
        want.sort_by_key(|p| (p.addr(), p.len()));
        assert_eq!(listed, want, "round {round}: listed prefixes");
        // Random sources, and the edges of every prefix.
        let mut probes: Vec<std::net::Ipv4Addr> = (0..32).map(|_| random_addr(next())).collect();
        for p in &oracle {
            let IpAddr::V4(a) = p.addr() else {
                unreachable!()
            };
            let last = u32::from(a) | u32::MAX.checked_shr(u32::from(p.len())).unwrap_or(0);
            probes.extend([
                a,
                last.into(),
                last.wrapping_add(1).into(),
                u32::from(a).wrapping_sub(1).into(),
            ]);
        }
        for src in probes {
            let denied = oracle.iter().any(|p| p.contains(src.into()));
            let frame = v4_frame(src, UDP, &udp(1, 2, b""));
            let want = if denied { Verdict::Drop } else { Verdict::Pass };
            assert_eq!(
                f.test_run(&frame, 1).unwrap().verdict,
                want,
                "round {round}: {src} in {oracle:?}"
            );
        }
    }
}

/// The IPv6 deny list (hashed /32, /48 and /64 filters in front of the
/// leaves, the /16 states and /16 leaves for prefixes shorter than /32)
/// against a plain list.
#[test]
#[ignore = "needs root"]
fn root_test_run_deny_list_v6_matches_an_oracle() {
    v6_oracle(
        0x9e37_79b9_7f4a_7c15,
        &[16, 24, 31, 32, 40, 48, 56, 64, 96, 127, 128],
        0,
        30,
    );
}

/// Many prefixes shorter than /32: those of 17 to 31 packed into one /16
/// (its block goes past what its parts hold: split by chunk or sent to the
/// trie), those of 16 and less anywhere or, one in four, over that /16 (it
/// is covered, then its leaves answer again once the cover goes), and back
/// to none as the list is drained (the program stops reading the /16
/// states).
#[test]
#[ignore = "needs root"]
fn root_test_run_deny_list_v6_short_prefixes_fill_a_16_and_recover() {
    let seen = v6_oracle(
        0x5851_f42d_4c95_7f2d,
        &[8, 15, 16, 18, 20, 24, 26, 28, 29, 30, 31],
        1,
        60,
    );
    let cap = rauta_xdp_common::V6_LEAF_PREFIXES * rauta_xdp_common::V6_MAX_PARTS as usize;
    assert!(
        seen.block16_max > cap,
        "the /16 block outgrew its parts: {seen:?}"
    );
    assert!(
        seen.covered > 0,
        "a shorter prefix covered the /16 block: {seen:?}"
    );
    assert!(
        seen.uncovered > 0,
        "the block's leaves answered after a cover: {seen:?}"
    );
}

/// Prefixes of /32 and longer only (no short prefixes), packed into four
/// blocks per leaf level so that blocks fill past `V6_LEAF_PREFIXES` (and
/// take continuation leaves) and empty again as prefixes are removed.
#[test]
#[ignore = "needs root"]
fn root_test_run_deny_list_v6_leaves_continue_and_recover() {
    let seen = v6_oracle(
        0x2545_f491_4f6c_dd1d,
        &[32, 33, 40, 47, 48, 49, 56, 63, 64, 96, 127, 128],
        4,
        60,
    );
    assert!(
        seen.block_max > rauta_xdp_common::V6_LEAF_PREFIXES,
        "a block took a continuation leaf: {seen:?}"
    );
}

/// One block per leaf level: blocks fill past what their parts hold
/// (`V6_LEAF_PREFIXES * V6_MAX_PARTS`: they are split by chunk) and come
/// back as the list is drained.
#[test]
#[ignore = "needs root"]
fn root_test_run_deny_list_v6_blocks_split_and_recover() {
    let seen = v6_oracle(0x2545_f491_4f6c_dd1d, &[40, 47, 56, 63, 96, 128], 1, 60);
    let cap = rauta_xdp_common::V6_LEAF_PREFIXES * rauta_xdp_common::V6_MAX_PARTS as usize;
    assert!(seen.block_max > cap, "a block was split: {seen:?}");
}

/// The most prefixes one block (and one /16 block) held during a run of
/// [`v6_oracle`]; the rounds in which a prefix of 16 or less covered
/// prefixes of 17 to 31 in 2001::/16, and those in which such prefixes
/// were uncovered after an earlier cover.
#[derive(Debug, Default)]
struct Fullest {
    block_max: usize,
    block16_max: usize,
    covered: usize,
    uncovered: usize,
}

/// Random denies and allows, checked after each batch against `oracle`;
/// `blocks` (1 to 4) packs the prefixes of /17 and longer into that many
/// blocks per leaf level (and puts one in four of /16 and shorter over the
/// first /16 block), 0 spreads them.
fn v6_oracle(seed: u64, lens: &[u8], blocks: u128, rounds: usize) -> Fullest {
    let mut f = filter();
    let mut next = xorshift64(seed);
    let tops: [u128; 4] = [0x2001_0db8, 0x2001_0db9, 0x2001_0dba, 0x2a00_1450];
    let mut random_addr = move || {
        let r = next();
        let low = u128::from(next()) << 32 | u128::from(r >> 32);
        (tops[(r % 4) as usize] << 96) | (low & ((1u128 << 96) - 1) & !0xffff_0000u128 << 60)
    };
    // Packed: the prefix lies in one of `blocks` blocks of its leaf level
    // (2001::/16 to 2004::/16, 2001:db8::/32 to 2001:dbb::/32,
    // 2001:db8:0::/48 to 2001:db8:3::/48, 2001:db8::/64 to
    // 2001:db8:0:3::/64), with random bits below the block.
    let place = |r: u128, x: u128, len: u8| -> u128 {
        match rauta_xdp_common::v6_level(len) {
            Some(level) if blocks > 0 => {
                let block = x % blocks;
                let base =
                    ((0x2001_0db8u128 << 96) & !(u128::MAX >> level)) + (block << (128 - level));
                // `x` has its top bits clear: a /16 block takes its
                // prefixes' bits from lower ones.
                let bits = if level == 16 { x << 40 } else { x >> 2 };
                base | (bits & (u128::MAX >> level))
            }
            // 16 and shorter: over the packed /16, or anywhere (the four
            // tops would give few).
            None if blocks > 0 && x.is_multiple_of(4) => 0x2001u128 << 112,
            None => r ^ (x << 64),
            _ => r,
        }
    };
    let mut oracle: Vec<IpPrefix> = Vec::new();
    let mut fullest = Fullest::default();
    // `rounds` rounds of denies and allows, then as many of allows only
    // (which empty the list: fewer than 10 prefixes per round stay).
    for round in 0..2 * rounds {
        let draining = round >= rounds;
        for _ in 0..10 {
            let r = random_addr();
            // The address's low bits are zero: decide from all of its bits.
            let mut x = (r >> 60).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
            x ^= x >> 67;
            x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9_94d0_49bb_1331_11eb);
            x ^= x >> 61;
            if (draining || x % 3 == 0) && !oracle.is_empty() {
                let p = oracle.swap_remove((x >> 8) as usize % oracle.len());
                assert!(f.allow_source(p).unwrap(), "{p} was denied");
            } else if !draining {
                let len = lens[(x >> 16) as usize % lens.len()];
                let a =
                    place(r, x >> 24, len) & !(u128::MAX.checked_shr(u32::from(len)).unwrap_or(0));
                let p = IpPrefix::new(std::net::Ipv6Addr::from(a).into(), len).unwrap();
                f.deny_source(p).unwrap();
                if !oracle.contains(&p) {
                    oracle.push(p);
                }
            }
        }
        let mut listed = f.denied_sources().unwrap();
        let mut want = oracle.clone();
        listed.sort_by_key(|p| (p.addr(), p.len()));
        want.sort_by_key(|p| (p.addr(), p.len()));
        // The most prefixes one leaf has had to hold so far.
        let block = |p: &IpPrefix| {
            let IpAddr::V6(a) = p.addr() else {
                unreachable!()
            };
            rauta_xdp_common::v6_level(p.len()).map(|l| (l, u128::from(a) >> (128 - l)))
        };
        for p in &oracle {
            if let Some(b) = block(p) {
                let n = oracle.iter().filter(|q| block(q) == Some(b)).count();
                fullest.block_max = fullest.block_max.max(n);
                if b.0 == 16 {
                    fullest.block16_max = fullest.block16_max.max(n);
                }
            }
        }
        let in_2001 = |p: &IpPrefix| {
            let IpAddr::V6(a) = p.addr() else {
                unreachable!()
            };
            u128::from(a) >> 112 == 0x2001
        };
        let leaves16 = oracle
            .iter()
            .any(|p| (17..32).contains(&p.len()) && in_2001(p));
        let cover = oracle.iter().any(|p| {
            p.len() <= 16 && p.contains(std::net::Ipv6Addr::from(0x2001u128 << 112).into())
        });
        if leaves16 && cover {
            fullest.covered += 1;
        } else if leaves16 && fullest.covered > 0 {
            fullest.uncovered += 1;
        }
        assert_eq!(listed, want, "round {round}: listed prefixes");
        let mut probes: Vec<u128> = (0..32).map(|_| random_addr()).collect();
        for p in &oracle {
            let IpAddr::V6(a) = p.addr() else {
                unreachable!()
            };
            let a = u128::from(a);
            let last = a | u128::MAX.checked_shr(u32::from(p.len())).unwrap_or(0);
            probes.extend([a, last, last.wrapping_add(1), a.wrapping_sub(1)]);
        }
        for src in probes {
            let src = std::net::Ipv6Addr::from(src);
            let denied = oracle.iter().any(|p| p.contains(src.into()));
            let frame = v6_frame(src, UDP, &udp(1, 2, b""));
            let want = if denied { Verdict::Drop } else { Verdict::Pass };
            assert_eq!(
                f.test_run(&frame, 1).unwrap().verdict,
                want,
                "round {round}: {src} in {oracle:?}"
            );
        }
    }
    assert!(oracle.is_empty(), "drained: {oracle:?}");
    fullest
}

/// A program the verifier rejects: the embedded object with `r0 = 2`
/// before an `exit` turned into `r1 = 2`, so R0 is read uninitialised.
#[test]
#[ignore = "needs root"]
fn root_verifier_rejection_is_typed_with_its_log() {
    require_root();
    let mut obj = XdpFilter::embedded_object().unwrap().to_vec();
    let pattern = [0xb7, 0, 0, 0, 2, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
    let mut patched = 0;
    for i in (0..obj.len() - pattern.len()).step_by(8) {
        if obj[i..i + pattern.len()] == pattern {
            obj[i + 1] = 0x01; // destination register r1 instead of r0
            patched += 1;
        }
    }
    assert!(patched >= 1, "no `r0 = XDP_PASS; exit` found in the object");
    let e = XdpFilter::builder().load_from(&obj).unwrap_err();
    match e.kind() {
        ErrorKind::VerifierRejected { program, log } => {
            assert!(program.starts_with("rauta_xdp"), "{program}");
            assert!(log.contains("R0"), "the verifier's log: {log}");
            assert_eq!(e.verifier_log(), Some(log.as_str()));
        }
        other => panic!("expected a verifier rejection, got {other:?}: {e}"),
    }
}

/// Without privileges the kernel refuses to create the maps: `NotRoot`.
/// The thread drops root for itself only (a raw setresuid, not glibc's
/// process-wide one) and ends right after.
#[test]
#[ignore = "needs root"]
fn root_unprivileged_thread_gets_not_root() {
    require_root();
    let e = std::thread::spawn(|| {
        // SAFETY: setresuid through the raw syscall changes the credentials
        // of this thread only; it is never given back, and the thread ends
        // when the closure returns.
        let rc = unsafe { libc::syscall(libc::SYS_setresuid, 65534, 65534, 65534) };
        assert_eq!(rc, 0, "setresuid: {}", std::io::Error::last_os_error());
        XdpFilter::load().unwrap_err()
    })
    .join()
    .unwrap();
    assert_eq!(e.kind(), &ErrorKind::NotRoot, "{e}");
    assert!(std::error::Error::source(&e).is_some());
}

/// Bitmaps and leaves whose buckets are full spill into the hash maps and
/// are still found; removing them empties the spill maps again.
#[test]
#[ignore = "needs root"]
fn root_test_run_deny_list_buckets_spill_and_recover() {
    use rauta_xdp_common::{buckets_for, v4_bucket, v6_bucket, v6_leaf_key, BUCKET_SLOTS};
    require_root();
    let mut f = XdpFilter::builder()
        .deny_v4_capacity(16)
        .deny_v6_capacity(16)
        .load()
        .unwrap();
    let mask = buckets_for(16) - 1;
    let n = BUCKET_SLOTS + 3;
    // IPv4: hosts in /24s that all hash to one bucket.
    let first = u32::from(v4(198, 18, 0, 0)) >> 8;
    let nets: Vec<u32> = (first..first + 512)
        .filter(|&net| v4_bucket(net, mask) == v4_bucket(first, mask))
        .take(n)
        .collect();
    assert_eq!(nets.len(), n);
    let host = |net: u32, last: u32| std::net::Ipv4Addr::from(net << 8 | last);
    // IPv6: /64s in /48s whose leaves all hash to one bucket.
    let top = |i: u64| 0x2001_0db8_0000_0000u64 | i << 16;
    let leaf_bucket = |i: u64| v6_bucket(v6_leaf_key(top(i) | 1, 64), 64, mask);
    let tops: Vec<u64> = (0..4096u64)
        .filter(|&i| leaf_bucket(i) == leaf_bucket(0))
        .take(n)
        .map(top)
        .collect();
    assert_eq!(tops.len(), n);
    let addr6 = |t: u64, sub: u64, low: u64| {
        std::net::Ipv6Addr::from(u128::from(t | sub) << 64 | u128::from(low))
    };
    let verdicts = |f: &XdpFilter, denied: usize| {
        for (k, (&net, &t)) in nets.iter().zip(&tops).enumerate() {
            let want = if k < denied {
                Verdict::Drop
            } else {
                Verdict::Pass
            };
            let frame = v4_frame(host(net, 5), UDP, &udp(1, 2, b""));
            assert_eq!(f.test_run(&frame, 1).unwrap().verdict, want, "v4 {k}");
            let frame = v4_frame(host(net, 6), UDP, &udp(1, 2, b""));
            assert_eq!(f.test_run(&frame, 1).unwrap().verdict, Verdict::Pass);
            let frame = v6_frame(addr6(t, 1, 7), UDP, &udp(1, 2, b""));
            assert_eq!(f.test_run(&frame, 1).unwrap().verdict, want, "v6 {k}");
            let frame = v6_frame(addr6(t, 2, 7), UDP, &udp(1, 2, b""));
            assert_eq!(f.test_run(&frame, 1).unwrap().verdict, Verdict::Pass);
        }
    };
    let p4 = |net: u32| IpPrefix::new(host(net, 5).into(), 32).unwrap();
    let p6 = |t: u64| IpPrefix::new(addr6(t, 1, 0).into(), 64).unwrap();
    for k in 0..n {
        f.deny_source(p4(nets[k])).unwrap();
        f.deny_source(p6(tops[k])).unwrap();
        verdicts(&f, k + 1);
        assert_eq!(
            f.spilled_entries(),
            2 * (k + 1).saturating_sub(BUCKET_SLOTS),
            "after {} entries per family",
            k + 1
        );
    }
    // Remove the ones in the bucket first, then the spilled ones.
    for k in 0..n {
        assert!(f.allow_source(p4(nets[k])).unwrap());
        assert!(f.allow_source(p6(tops[k])).unwrap());
        for (j, (&net, &t)) in nets.iter().zip(&tops).enumerate() {
            let want = if j > k { Verdict::Drop } else { Verdict::Pass };
            let frame = v4_frame(host(net, 5), UDP, &udp(1, 2, b""));
            assert_eq!(
                f.test_run(&frame, 1).unwrap().verdict,
                want,
                "v4 {j} after {k}"
            );
            let frame = v6_frame(addr6(t, 1, 7), UDP, &udp(1, 2, b""));
            assert_eq!(
                f.test_run(&frame, 1).unwrap().verdict,
                want,
                "v6 {j} after {k}"
            );
        }
    }
    assert_eq!(f.spilled_entries(), 0);
    assert!(f.denied_sources().unwrap().is_empty());
}

/// `deny_v6_range_slots` sizes the range slots: with 2, the crowded 64ths of
/// two blocks (nine /60s in one /54 each) take them and a third's keeps its
/// prefixes in continuation leaves; every verdict holds either way, and a
/// slot given back goes to the next crowded 64th that changes.
#[test]
#[ignore = "needs root"]
fn root_test_run_range_slots_follow_the_setting() {
    require_root();
    let mut f = XdpFilter::builder().deny_v6_range_slots(2).load().unwrap();
    // The /60 number `i` of the /48 number `block` under 2001:db8::/32.
    let net = |block: u128, i: u128| (0x2001_0db8u128 << 96) | (block << 80) | (i << 68);
    let probe = |f: &XdpFilter, a: u128| {
        let frame = v6_frame((a | 1).into(), UDP, &udp(1, 2, b""));
        f.test_run(&frame, 1).unwrap().verdict
    };
    let check = |f: &XdpFilter, denied: &[(u128, u128)], label: &str| {
        for block in 0..3 {
            // /60s 0-9 of the block's first /54, and one of its second.
            for i in (0..10).chain([64]) {
                let want = if denied.contains(&(block, i)) {
                    Verdict::Drop
                } else {
                    Verdict::Pass
                };
                assert_eq!(
                    probe(f, net(block, i)),
                    want,
                    "{label}: /48 {block}, /60 {i}"
                );
            }
        }
    };
    let mut denied = Vec::new();
    for block in 0..3 {
        for i in 0..9 {
            f.deny_source(v6_prefix(net(block, i), 60)).unwrap();
            denied.push((block, i));
        }
        assert_eq!(f.v6_range_slots_in_use(), (block as usize + 1).min(2));
        check(&f, &denied, "denying");
    }
    // The first block's /60s go: its slot comes back (after a wait for
    // the program's runs), and the third block's 64th takes it when it
    // next changes.
    for i in 0..9 {
        assert!(f.allow_source(v6_prefix(net(0, i), 60)).unwrap());
        denied.retain(|&d| d != (0, i));
    }
    assert_eq!(f.v6_range_slots_in_use(), 1);
    check(&f, &denied, "first block allowed");
    f.deny_source(v6_prefix(net(2, 9), 60)).unwrap();
    denied.push((2, 9));
    assert_eq!(f.v6_range_slots_in_use(), 2);
    check(&f, &denied, "third block in ranges");
    for &(block, i) in &denied.clone() {
        assert!(f.allow_source(v6_prefix(net(block, i), 60)).unwrap());
    }
    assert_eq!(f.v6_range_slots_in_use(), 0);
    check(&f, &[], "all allowed");
}

/// `deny_sources`, `allow_sources` and `replace_denied_sources` with IPv4
/// and IPv6 prefixes mixed: the verdicts follow the list, duplicates and
/// prefixes already in their state change nothing, and a replace keeps
/// what both lists hold.
#[test]
#[ignore = "needs root"]
fn root_test_run_sources_change_in_batches() {
    let mut f = filter();
    let pre = |s: &str| s.parse::<IpPrefix>().unwrap();
    let probe = |f: &XdpFilter, a: &str| {
        let frame = match a.parse::<IpAddr>().unwrap() {
            IpAddr::V4(a) => v4_frame(a, UDP, &udp(1, 2, b"")),
            IpAddr::V6(a) => v6_frame(a, UDP, &udp(1, 2, b"")),
        };
        f.test_run(&frame, 1).unwrap().verdict
    };
    let first = [
        "198.18.5.0/24",
        "198.18.6.7/32",
        "2001:db8:a::/48",
        "2001:db8:b:1::/64",
    ];
    // Duplicates in the list, of both families.
    f.deny_sources(first.iter().chain(&[first[0], first[2]]).map(|s| pre(s)))
        .unwrap();
    // Crowded: forty /60s in one /54.
    let crowded: Vec<IpPrefix> = (0..40)
        .map(|i| pre(&format!("2001:db8:c:{:x}::/60", 0x10 * i)))
        .collect();
    f.deny_sources(crowded.iter().copied()).unwrap();
    assert_eq!(f.denied_sources().unwrap().len(), 44);
    for a in [
        "198.18.5.9",
        "198.18.6.7",
        "2001:db8:a::1",
        "2001:db8:b:1::1",
        "2001:db8:c:270::1",
    ] {
        assert_eq!(probe(&f, a), Verdict::Drop, "{a}");
    }
    for a in ["198.18.6.8", "2001:db8:b:2::1", "2001:db8:c:280::1"] {
        assert_eq!(probe(&f, a), Verdict::Pass, "{a}");
    }
    // Allowed in one call: how many were denied.
    let n = f
        .allow_sources(crowded.iter().copied().chain([pre("198.18.9.0/24")]))
        .unwrap();
    assert_eq!(n, 40);
    assert_eq!(probe(&f, "2001:db8:c:270::1"), Verdict::Pass);
    // Replaced: the /24 and the /48 stay, the rest goes, a /16 comes.
    f.replace_denied_sources(["198.18.5.0/24", "2001:db8:a::/48", "2400::/16"].map(pre))
        .unwrap();
    let mut now = f.denied_sources().unwrap();
    now.sort_by_key(|p| (p.addr(), p.len()));
    assert_eq!(
        now,
        ["198.18.5.0/24", "2001:db8:a::/48", "2400::/16"].map(pre)
    );
    for (a, v) in [
        ("198.18.5.9", Verdict::Drop),
        ("198.18.6.7", Verdict::Pass),
        ("2001:db8:a::1", Verdict::Drop),
        ("2001:db8:b:1::1", Verdict::Pass),
        ("2400:1::1", Verdict::Drop),
    ] {
        assert_eq!(probe(&f, a), v, "{a}");
    }
    // The last prefix shorter than /32 goes with the rest.
    f.replace_denied_sources([]).unwrap();
    assert!(f.denied_sources().unwrap().is_empty());
    for a in ["198.18.5.9", "2001:db8:a::1", "2400:1::1"] {
        assert_eq!(probe(&f, a), Verdict::Pass, "{a}");
    }
}

fn v6_prefix(addr: u128, len: u8) -> IpPrefix {
    IpPrefix::new(std::net::Ipv6Addr::from(addr).into(), len).unwrap()
}

/// The /56 number `k` of the /48 number `block` under 2001:db8::/32.
fn slash56(block: u128, k: u128) -> u128 {
    (0x2001_0db8u128 << 96) | (block << 80) | (k << 72)
}

/// A block that once needed four leaves and keeps one prefix goes back to
/// one leaf: with a small table, a hundred such blocks fit (without
/// compaction the leaves of the 80th no longer would), and the prefix that
/// moved from the last part to the first is found all along. The blocks
/// hold a /49, /50, /51 and /52 (reaching 60 of its 64ths, so a split would
/// take more than two leaves a prefix and the block keeps parts), 20 /56s
/// inside the /49 and, 25th, the last /56 of the block.
#[test]
#[ignore = "needs root"]
fn root_test_run_deny_list_v6_blocks_compact_as_they_empty() {
    require_root();
    let mut f = XdpFilter::builder().deny_v6_capacity(128).load().unwrap();
    let probe = |f: &XdpFilter, a: u128| {
        let frame = v6_frame((a | 1).into(), UDP, &udp(1, 2, b""));
        f.test_run(&frame, 1).unwrap().verdict
    };
    for block in 0..100u128 {
        let nested: Vec<IpPrefix> = (1..=20).map(|k| v6_prefix(slash56(block, k), 56)).collect();
        let spanning: Vec<IpPrefix> = [(0, 49), (128, 50), (192, 51), (224, 52)]
            .into_iter()
            .map(|(k, len)| v6_prefix(slash56(block, k), len))
            .collect();
        for &p in spanning.iter().chain(&nested) {
            f.deny_source(p).unwrap();
        }
        f.deny_source(v6_prefix(slash56(block, 255), 56)).unwrap();
        // The 25th sits alone in the block's fourth leaf.
        for &p in nested.iter().chain(&spanning) {
            assert!(f.allow_source(p).unwrap());
        }
        assert_eq!(
            probe(&f, slash56(block, 255)),
            Verdict::Drop,
            "block {block}"
        );
        assert_eq!(probe(&f, slash56(block, 3)), Verdict::Pass, "block {block}");
    }
    for block in 0..100u128 {
        assert_eq!(
            probe(&f, slash56(block, 255)),
            Verdict::Drop,
            "block {block}"
        );
        assert_eq!(probe(&f, slash56(block, 0)), Verdict::Pass, "block {block}");
    }
    assert_eq!(f.denied_sources().unwrap().len(), 100);
}

/// A block holding more prefixes than its parts is split by chunk: every
/// 64th of it that a prefix reaches gets a leaf; a 64th reached by more
/// prefixes than a leaf holds takes continuations (or, past what they or
/// the budget allow, the trie answers for it), a prefix reaching
/// many 64ths is in each of their leaves, and the block comes back to parts
/// as it empties. Every /56 of the block (and the /60s of a crowded 64th)
/// is probed after each step.
#[test]
#[ignore = "needs root"]
fn root_test_run_deny_list_v6_blocks_split_by_chunk() {
    let mut f = filter();
    // /56 number k of 2001:db8::/48 (its 64ths are /54s: four /56s each),
    // and /60 number j of /56 number k.
    let s56 = |k: u128| slash56(0, k);
    let s60 = |k: u128, j: u128| slash56(0, k) | (j << 68);
    let mut denied: Vec<IpPrefix> = Vec::new();
    let check_all = |f: &XdpFilter, denied: &[IpPrefix], step: &str| {
        let mut probes: Vec<u128> = (0..256).map(|k| s56(k) | 0x42).collect();
        probes.extend((0..16).map(|j| s60(50, j) | 7));
        probes.extend([s56(0) - 1, s56(255) | u128::from(u64::MAX)]);
        for a in probes {
            let src = std::net::Ipv6Addr::from(a);
            let want = if denied.iter().any(|p| p.contains(src.into())) {
                Verdict::Drop
            } else {
                Verdict::Pass
            };
            let frame = v6_frame(src, UDP, &udp(1, 2, b""));
            assert_eq!(
                f.test_run(&frame, 1).unwrap().verdict,
                want,
                "{step}: {src}"
            );
        }
    };
    let deny = |f: &mut XdpFilter, denied: &mut Vec<IpPrefix>, p: IpPrefix| {
        f.deny_source(p).unwrap();
        denied.push(p);
    };
    for k in 0..40 {
        deny(&mut f, &mut denied, v6_prefix(s56(k), 56));
    }
    check_all(&f, &denied, "40 /56s");
    // Ten /60s in /56 number 50: its 64th (/56s 48 to 51) holds more than
    // a leaf (its chunk leaf takes a continuation).
    for j in 0..10 {
        deny(&mut f, &mut denied, v6_prefix(s60(50, j), 60));
    }
    check_all(&f, &denied, "and 10 /60s in one 64th");
    // A /49: the second half of the block, 32 of its 64ths.
    deny(&mut f, &mut denied, v6_prefix(s56(128), 49));
    check_all(&f, &denied, "and a /49");
    // Back to one chunk leaf (from the continuation, or out of overflow
    // when the /49 sent the block to the trie), then the /49 and the /56s
    // go.
    let allow = |f: &mut XdpFilter, denied: &mut Vec<IpPrefix>, p: IpPrefix| {
        assert!(f.allow_source(p).unwrap(), "{p} was denied");
        denied.retain(|q| *q != p);
    };
    for j in 0..3 {
        allow(&mut f, &mut denied, v6_prefix(s60(50, j), 60));
    }
    check_all(&f, &denied, "7 /60s left in the 64th");
    allow(&mut f, &mut denied, v6_prefix(s56(128), 49));
    check_all(&f, &denied, "the /49 gone");
    for k in (0..40).rev() {
        allow(&mut f, &mut denied, v6_prefix(s56(k), 56));
        if k % 4 == 0 {
            check_all(&f, &denied, &format!("/56s below {k} left"));
        }
    }
    for j in 3..10 {
        allow(&mut f, &mut denied, v6_prefix(s60(50, j), 60));
    }
    check_all(&f, &denied, "drained");
    assert!(f.denied_sources().unwrap().is_empty());
}
