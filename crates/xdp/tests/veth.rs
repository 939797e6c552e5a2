//! End to end: the program attached natively to a veth in a network
//! namespace, real UDP and TCP sent from a second namespace. Needs root and
//! the `ebpf` feature; run by scripts/test.d/40-xdp.sh with
//! `--ignored --test-threads=1`.
#![cfg(feature = "ebpf")]

mod common;

use std::{
    collections::BTreeSet,
    io::{ErrorKind as IoErrorKind, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    process::Command,
    time::{Duration, Instant},
};

use common::{require_root, NetnsPair, CLI_ADDR, SRV_ADDR, SRV_IF};
use rauta_xdp::{AttachMode, AttachPolicy, ErrorKind, IpPrefix, SynLimit, XdpFilter};

/// Bounds every wait: a connect that should fail is given this long (less
/// than TCP's 1 s initial retransmission timeout, so exactly one SYN goes
/// out), and a datagram that should not arrive is waited for this long.
const SHORT: Duration = Duration::from_millis(400);
const LONG: Duration = Duration::from_secs(3);

fn srv(port: u16) -> SocketAddr {
    format!("{SRV_ADDR}:{port}").parse().unwrap()
}

fn client_ip() -> IpPrefix {
    IpPrefix::host(CLI_ADDR.parse().unwrap())
}

/// Loads a filter and attaches it natively to the server end.
fn attached(net: &NetnsPair) -> XdpFilter {
    require_root();
    let mut f = XdpFilter::load().expect("load");
    let mode = net.in_srv(|| f.attach(SRV_IF)).expect("attach");
    assert_eq!(mode, AttachMode::Native, "veth supports native XDP");
    assert_eq!(f.attachment(), Some((SRV_IF, AttachMode::Native)));
    f
}

/// Receives datagrams until `want` arrived or nothing came for `quiet`.
fn drain(sock: &UdpSocket, want: usize, quiet: Duration) -> usize {
    sock.set_read_timeout(Some(quiet)).unwrap();
    let mut buf = [0u8; 2048];
    let mut n = 0;
    while n < want {
        match sock.recv(&mut buf) {
            Ok(_) => n += 1,
            Err(e) if matches!(e.kind(), IoErrorKind::WouldBlock | IoErrorKind::TimedOut) => break,
            Err(e) => panic!("recv: {e}"),
        }
    }
    n
}

#[test]
#[ignore = "needs root"]
fn root_veth_udp_counters_exact_and_deny_list() {
    let net = NetnsPair::new();
    let mut f = attached(&net);
    let server = net.in_srv(|| UdpSocket::bind(srv(9000))).unwrap();
    let client = net
        .in_cli(|| UdpSocket::bind(format!("{CLI_ADDR}:0")))
        .unwrap();
    client.connect(srv(9000)).unwrap();
    let payload = [0x5au8; 100];
    let frame_len = (14 + 20 + 8 + payload.len()) as u64;

    const N: u64 = 64;
    for _ in 0..N {
        client.send(&payload).unwrap();
    }
    assert_eq!(
        drain(&server, N as usize, LONG),
        N as usize,
        "every datagram arrives"
    );
    let c = f.counters().unwrap();
    for (name, want) in [("udp", N), ("ipv4", N), ("passed", N)] {
        let got = c.iter().find(|(n, _)| *n == name).unwrap().1;
        assert_eq!(got.packets, want, "{name} packets");
        assert_eq!(got.bytes, want * frame_len, "{name} bytes");
    }
    assert_eq!(c.total(), c.passed, "nothing else crossed the link: {c:?}");

    // Denied: nothing arrives, every datagram is counted as dropped.
    f.deny_source(client_ip()).unwrap();
    for _ in 0..10 {
        client.send(&payload).unwrap();
    }
    assert_eq!(drain(&server, 10, SHORT), 0, "denied datagrams are dropped");
    let d = f.counters().unwrap().since(&c);
    assert_eq!(d.dropped_deny_source.packets, 10);
    assert_eq!(d.dropped_deny_source.bytes, 10 * frame_len);
    assert_eq!(d.passed.packets, 0);

    // Allowed again.
    assert!(f.allow_source(client_ip()).unwrap());
    for _ in 0..5 {
        client.send(&payload).unwrap();
    }
    assert_eq!(drain(&server, 5, LONG), 5);
    let d = f.counters().unwrap().since(&c);
    assert_eq!((d.passed.packets, d.udp.packets), (5, 15));
}

#[test]
#[ignore = "needs root"]
fn root_veth_tcp_denied_source_cannot_connect() {
    let net = NetnsPair::new();
    let mut f = attached(&net);
    let listener = net.in_srv(|| TcpListener::bind(srv(9001))).unwrap();
    let connect = |timeout| net.in_cli(|| TcpStream::connect_timeout(&srv(9001), timeout));

    // Before: a real exchange.
    let mut s = connect(LONG).expect("connect before the deny entry");
    s.write_all(b"hello").unwrap();
    let (mut accepted, peer) = listener.accept().unwrap();
    assert_eq!(peer.ip().to_string(), CLI_ADDR);
    let mut buf = [0u8; 5];
    accepted.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hello");
    drop((s, accepted));

    let before = f.counters().unwrap();
    f.deny_source("198.18.0.0/30".parse().unwrap()).unwrap();
    let e = connect(SHORT).expect_err("a denied source cannot connect");
    assert!(
        matches!(e.kind(), IoErrorKind::TimedOut | IoErrorKind::WouldBlock),
        "{e:?}"
    );
    let d = f.counters().unwrap().since(&before);
    assert_eq!(d.dropped_deny_source.packets, 1, "one SYN, dropped: {d:?}");
    assert_eq!(
        d.dropped_deny_source.bytes,
        d.dropped_deny_source.packets * (14 + 60),
        "SYN with options"
    );

    assert!(f.allow_source("198.18.0.0/30".parse().unwrap()).unwrap());
    let mut s = connect(LONG).expect("connect after removing the entry");
    s.write_all(b"again").unwrap();
    let (mut accepted, _) = listener.accept().unwrap();
    accepted.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"again");
}

#[test]
#[ignore = "needs root"]
fn root_veth_syn_limit_drops_the_excess() {
    let net = NetnsPair::new();
    let mut f = attached(&net);
    let listener = net.in_srv(|| TcpListener::bind(srv(9002))).unwrap();
    let connect = |timeout| net.in_cli(|| TcpStream::connect_timeout(&srv(9002), timeout));
    // Burst of 3, then one an hour: the 4th and 5th connects fail.
    f.set_syn_limit(Some(SynLimit::every(Duration::from_secs(3600), 3).unwrap()))
        .unwrap();
    let before = f.counters().unwrap();
    let mut open = Vec::new();
    for i in 0..3 {
        open.push(connect(LONG).unwrap_or_else(|e| panic!("connect {i} within the burst: {e}")));
    }
    for i in 3..5 {
        let e = connect(SHORT).expect_err("over the limit");
        assert!(
            matches!(e.kind(), IoErrorKind::TimedOut | IoErrorKind::WouldBlock),
            "connect {i}: {e:?}"
        );
    }
    let d = f.counters().unwrap().since(&before);
    assert_eq!(d.dropped_syn_rate.packets, 2, "{d:?}");
    assert_eq!(d.dropped().packets, 2);

    // Established connections are not limited.
    for (i, s) in open.iter_mut().enumerate() {
        s.write_all(&[i as u8; 3]).unwrap();
    }
    for _ in 0..3 {
        let (mut a, _) = listener.accept().unwrap();
        let mut buf = [0u8; 3];
        a.read_exact(&mut buf).unwrap();
    }

    f.set_syn_limit(None).unwrap();
    connect(LONG).expect("no limit, no drop");
}

#[test]
#[ignore = "needs root"]
fn root_veth_already_attached_and_reattach() {
    let net = NetnsPair::new();
    let mut f = attached(&net);
    let e = net.in_srv(|| f.attach(SRV_IF)).unwrap_err();
    assert_eq!(
        e.kind(),
        &ErrorKind::AlreadyAttached {
            interface: SRV_IF.into()
        }
    );
    let mut g = XdpFilter::load().unwrap();
    for policy in [AttachPolicy::NativeOrSkb, AttachPolicy::Skb] {
        let e = net.in_srv(|| g.attach_with(SRV_IF, policy)).unwrap_err();
        assert_eq!(
            e.kind(),
            &ErrorKind::AlreadyAttached {
                interface: SRV_IF.into()
            },
            "{policy:?}: {e}"
        );
    }
    assert_eq!(g.attachment(), None);
    f.detach().unwrap();
    assert_eq!(f.attachment(), None);
    assert_eq!(
        net.in_srv(|| g.attach_with(SRV_IF, AttachPolicy::Skb))
            .unwrap(),
        AttachMode::Skb
    );
    assert_eq!(g.attachment(), Some((SRV_IF, AttachMode::Skb)));
    drop(g);
    assert_eq!(xdp_prog_on(&net), None, "drop detaches");
    assert_eq!(net.in_srv(|| f.attach(SRV_IF)).unwrap(), AttachMode::Native);
    assert!(xdp_prog_on(&net).is_some());
}

/// The id of the XDP program on the server end, if any.
fn xdp_prog_on(net: &NetnsPair) -> Option<u64> {
    let out = Command::new("ip")
        .args(["-n", &net.srv, "-j", "link", "show", "dev", SRV_IF])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v[0]["xdp"]["prog"]["id"]
        .as_u64()
        .or_else(|| v[0]["xdp"]["attached"][0]["prog"]["id"].as_u64())
}

/// Kernel objects of ours (program names, map names) as `kind:id:name`.
fn our_objects() -> BTreeSet<String> {
    let names: [&str; 18] = [
        rauta_xdp_common::PROGRAM_NAME,
        rauta_xdp_common::PASS_PROGRAM_NAME,
        rauta_xdp_common::MAP_DENY_V4,
        rauta_xdp_common::MAP_DENY_V6,
        rauta_xdp_common::MAP_DENY_V4_24,
        rauta_xdp_common::MAP_DENY_V6_LEAF,
        rauta_xdp_common::MAP_RODATA,
        rauta_xdp_common::MAP_DENY_V4_SPILL,
        rauta_xdp_common::MAP_DENY_V6_SPILL,
        rauta_xdp_common::MAP_DENY_V6_RANGES,
        rauta_xdp_common::MAP_DENY_V6_32,
        rauta_xdp_common::MAP_DENY_V6_16,
        rauta_xdp_common::MAP_DENY_PORTS,
        rauta_xdp_common::MAP_CONFIG,
        rauta_xdp_common::MAP_SYN_STATE,
        rauta_xdp_common::MAP_COUNTERS,
        rauta_xdp_common::MAP_WAIT,
        rauta_xdp_common::MAP_WAIT_INNER,
    ];
    let mut set = BTreeSet::new();
    for kind in ["prog", "map"] {
        let out = Command::new("bpftool")
            .args(["-j", kind, "show"])
            .output()
            .expect("run bpftool (package bpftool)");
        assert!(out.status.success(), "bpftool {kind} show");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for o in v.as_array().unwrap() {
            let name = o["name"].as_str().unwrap_or("");
            if names.contains(&name) {
                set.insert(format!("{kind}:{}:{name}", o["id"]));
            }
        }
    }
    set
}

#[test]
#[ignore = "needs root"]
fn root_kernel_attach_detach_100_times_leaks_nothing() {
    require_root();
    let net = NetnsPair::new();
    let baseline = our_objects();
    for i in 0..100 {
        let mut f = XdpFilter::load().expect("load");
        f.deny_source("198.18.0.2/32".parse().unwrap()).unwrap();
        let mode = net.in_srv(|| f.attach(SRV_IF)).expect("attach");
        assert_eq!(mode, AttachMode::Native);
        if i == 0 {
            let live = our_objects();
            assert_eq!(
                live.len() - baseline.len(),
                18,
                "2 programs + 14 maps + 2 to wait with live: {live:?}"
            );
            assert!(xdp_prog_on(&net).is_some());
        }
        if i % 2 == 0 {
            f.detach().unwrap();
        }
        // Odd rounds: detached by drop.
        drop(f);
        assert_eq!(xdp_prog_on(&net), None, "round {i}: still attached");
    }
    // The kernel frees programs and maps after an RCU grace period: wait,
    // bounded, for them to go.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut left = our_objects();
    while left != baseline && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        left = our_objects();
    }
    assert_eq!(left, baseline, "leaked kernel objects");
}

/// The namespace's own loopback has no native XDP: `attach` falls back to
/// generic mode and says so; native-only attach fails.
#[test]
#[ignore = "needs root"]
fn root_skb_fallback_on_an_interface_without_native_xdp() {
    require_root();
    let net = NetnsPair::new();
    let mut f = XdpFilter::load().unwrap();
    let e = net
        .in_srv(|| f.attach_with("lo", AttachPolicy::Native))
        .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Kernel { .. }), "{e}");
    assert_eq!(f.attachment(), None);
    assert_eq!(net.in_srv(|| f.attach("lo")).unwrap(), AttachMode::Skb);
    assert_eq!(f.attachment(), Some(("lo", AttachMode::Skb)));
    // Generic mode runs the program too: loopback traffic is counted.
    let server = net.in_srv(|| UdpSocket::bind("127.0.0.1:9003")).unwrap();
    let client = net.in_srv(|| UdpSocket::bind("127.0.0.1:0")).unwrap();
    for _ in 0..3 {
        client.send_to(b"ping", "127.0.0.1:9003").unwrap();
    }
    assert_eq!(drain(&server, 3, LONG), 3);
    assert_eq!(f.counters().unwrap().udp.packets, 3);
    f.detach().unwrap();
}
