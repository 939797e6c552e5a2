//! `--xdp IFACE` end to end: the binary runs in a network namespace with a
//! config whose `xdp:` section denies a source and a UDP port, attaches the
//! classifier natively to the namespace's veth end, and `/metrics` counts
//! exactly the frames the other namespace sent. Needs root, the `xdp`
//! feature and the embedded program:
//!
//! ```text
//! cargo test -p rauta-proxy --features xdp,rauta-xdp/ebpf --test xdp -- --ignored
//! ```
#![cfg(feature = "xdp")]

mod common;

// The namespace helpers of rauta-xdp's own privileged tests.
#[path = "../../../crates/xdp/tests/common/mod.rs"]
mod netns;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Proc;
use netns::{ip, require_root, NetnsPair, CLI_ADDR, CLI_IF, SRV_ADDR, SRV_IF};

const DENIED_SOURCE: &str = "198.18.0.200";

/// `GET /metrics` on the admin listener, from the client namespace.
fn metrics(net: &NetnsPair, admin: &str) -> String {
    net.in_cli(|| {
        let mut s = TcpStream::connect(admin).expect("connect to the admin listener");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        out
    })
}

/// The value of `rauta_xdp_packets_total{verdict="<verdict>"}`.
fn packets(text: &str, verdict: &str) -> u64 {
    let key = format!("rauta_xdp_packets_total{{verdict=\"{verdict}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .unwrap_or_else(|| panic!("no {key} in /metrics:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

/// Sends `n` UDP datagrams from `from` (an address of the client end) to
/// the server's `port`.
fn send_udp(net: &NetnsPair, from: &str, port: u16, n: usize) {
    net.in_cli(|| {
        let s = UdpSocket::bind(format!("{from}:0")).unwrap();
        for _ in 0..n {
            s.send_to(b"x", format!("{SRV_ADDR}:{port}")).unwrap();
        }
    });
}

#[test]
#[ignore = "needs root"]
fn root_proxy_xdp_flag_attaches_the_config_deny_lists_and_counts_in_metrics() {
    require_root();
    let net = NetnsPair::new();
    // A second client address, the denied one; the server needs no route
    // back: its frames die in XDP.
    ip(&[
        "-n",
        &net.cli,
        "addr",
        "add",
        &format!("{DENIED_SOURCE}/24"),
        "dev",
        CLI_IF,
    ]);
    let dir = std::env::temp_dir().join(format!("rauta-test-xdp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("proxy.yaml");
    std::fs::write(
        &file,
        format!(
            r#"
clusters: [{{name: c, endpoints: ["127.0.0.1:9"]}}]
routes:
  virtual_hosts:
    - name: all
      domains: ["*"]
      routes: [{{name: r, match: {{prefix: /}}, action: {{cluster: c}}}}]
xdp:
  deny_sources: ["{DENIED_SOURCE}/32", "2001:db8::/32"]
  deny_udp_ports: [9]
"#
        ),
    )
    .unwrap();
    let admin = format!("{SRV_ADDR}:19901");
    let mut child = Command::new("ip")
        .args(["netns", "exec", &net.srv])
        .arg(env!("CARGO_BIN_EXE_rauta-proxy"))
        .arg("--config")
        .arg(&file)
        .args(["--xdp", SRV_IF, "--threads", "1", "--admin", &admin])
        .args(["--listen", &format!("{SRV_ADDR}:18080")])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start rauta-proxy");
    let stdout = child.stdout.take().unwrap();
    // Killed before the namespaces go (declared after them).
    let proc = Proc(child);
    // The first line announces the listener: attach and deny lists are done.
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    assert!(
        line.contains("http://"),
        "rauta-proxy did not start: {line:?}"
    );
    // The admin listener may come up just after the announcement.
    let started = Instant::now();
    while net.in_cli(|| TcpStream::connect(&admin)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "admin listener not up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let before = metrics(&net, &admin);
    assert!(
        packets(&before, "passed") > 0,
        "the admin connection's frames passed"
    );
    assert_eq!(packets(&before, "dropped_deny_source"), 0);
    assert_eq!(packets(&before, "dropped_deny_port"), 0);

    send_udp(&net, CLI_ADDR, 9, 3);
    send_udp(&net, DENIED_SOURCE, 7, 2);
    let after = metrics(&net, &admin);
    assert_eq!(packets(&after, "dropped_deny_port"), 3, "{after}");
    assert_eq!(packets(&after, "dropped_deny_source"), 2, "{after}");
    assert!(after.contains("# TYPE rauta_xdp_bytes_total counter"));

    drop(proc);
    let _ = std::fs::remove_dir_all(&dir);
}
