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
/// Denied by the reloaded file instead.
const NEW_DENIED_SOURCE: &str = "198.18.0.201";

/// `GET path` on the admin listener, from the client namespace.
fn admin_get(net: &NetnsPair, admin: &str, path: &str) -> String {
    net.in_cli(|| {
        let mut s = TcpStream::connect(admin).expect("connect to the admin listener");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        out
    })
}

/// `GET /metrics` on the admin listener, from the client namespace.
fn metrics(net: &NetnsPair, admin: &str) -> String {
    admin_get(net, admin, "/metrics")
}

/// Writes `text` to `file`, sends SIGHUP to the proxy and waits (20 s at
/// most) until `/config` counts one more reload with `result` ("ok" or
/// "rejected") than before the write (the file watcher may get there
/// first); the body of `/config`.
fn reload(
    net: &NetnsPair,
    admin: &str,
    (file, text): (&std::path::Path, &str),
    pid: u32,
    result: &str,
) -> String {
    let count = |net: &NetnsPair| {
        let body = admin_get(net, admin, "/config");
        let json = &body[body.find("\r\n\r\n").unwrap() + 4..];
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        (v["reloads"][result].as_u64().unwrap(), body)
    };
    let (before, _) = count(net);
    // Whole, so the file watcher never reads it half-written.
    let next = file.with_extension("next");
    std::fs::write(&next, text).unwrap();
    std::fs::rename(&next, file).unwrap();
    let status = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    loop {
        let (now, body) = count(net);
        if now > before {
            return body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no reload: {body}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
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
    let config = |sources: &str, port: u16| {
        format!(
            r#"
clusters: [{{name: c, endpoints: ["127.0.0.1:9"]}}]
routes:
  virtual_hosts:
    - name: all
      domains: ["*"]
      routes: [{{name: r, match: {{prefix: /}}, action: {{cluster: c}}}}]
xdp:
  deny_sources: [{sources}]
  deny_udp_ports: [{port}]
"#
        )
    };
    let text = config(&format!("\"{DENIED_SOURCE}/32\", \"2001:db8::/32\""), 9);
    std::fs::write(&file, text).unwrap();
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

    // A reload applies the file's new lists: another source and port
    // denied, the old ones let through, the /32 of 2001:db8:: kept.
    ip(&[
        "-n",
        &net.cli,
        "addr",
        "add",
        &format!("{NEW_DENIED_SOURCE}/24"),
        "dev",
        CLI_IF,
    ]);
    let text = config(
        &format!("\"{NEW_DENIED_SOURCE}/32\", \"2001:db8::/32\""),
        10,
    );
    reload(&net, &admin, (&file, &text), proc.0.id(), "ok");
    send_udp(&net, CLI_ADDR, 9, 2);
    send_udp(&net, CLI_ADDR, 10, 4);
    send_udp(&net, DENIED_SOURCE, 7, 2);
    send_udp(&net, NEW_DENIED_SOURCE, 7, 5);
    let reloaded = metrics(&net, &admin);
    assert_eq!(packets(&reloaded, "dropped_deny_port"), 3 + 4, "{reloaded}");
    assert_eq!(
        packets(&reloaded, "dropped_deny_source"),
        2 + 5,
        "{reloaded}"
    );
    // A list with an entry that is not a prefix rejects the whole file:
    // the classifier keeps the lists it has.
    let text = config("\"198.18.0.0/33\"", 9);
    let body = reload(&net, &admin, (&file, &text), proc.0.id(), "rejected");
    assert!(body.contains("xdp.deny_sources[0]"), "{body}");
    send_udp(&net, NEW_DENIED_SOURCE, 7, 1);
    send_udp(&net, CLI_ADDR, 9, 1);
    let rejected = metrics(&net, &admin);
    assert_eq!(
        packets(&rejected, "dropped_deny_source"),
        2 + 5 + 1,
        "{rejected}"
    );
    assert_eq!(packets(&rejected, "dropped_deny_port"), 3 + 4, "{rejected}");

    // A list the classifier cannot hold (one IPv6 prefix past its default
    // capacity, 16,384) rejects the file after the routes are built: the stats
    // keep their generation, so the serving route's stats do not age out
    // (retained for 2 reloads) however many such files come.
    let too_many: Vec<String> = (0..=16_384u32)
        .map(|i| format!("\"2001:db8:{:x}:{:x}::/64\"", i >> 16, i & 0xffff))
        .collect();
    let text = config(&too_many.join(", "), 9).replace("name: r,", "name: r2,");
    for _ in 0..3 {
        let body = reload(&net, &admin, (&file, &text), proc.0.id(), "rejected");
        assert!(body.contains("xdp:"), "{body}");
    }
    let served = metrics(&net, &admin);
    assert!(
        served.contains("rauta_route_requests_total{route=\"r\"}"),
        "{served}"
    );
    send_udp(&net, NEW_DENIED_SOURCE, 7, 1);
    assert_eq!(
        packets(&metrics(&net, &admin), "dropped_deny_source"),
        2 + 5 + 1 + 1
    );

    drop(proc);
    let _ = std::fs::remove_dir_all(&dir);
}
