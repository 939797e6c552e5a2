//! Helpers for the privileged tests: network namespaces and frames.
#![allow(dead_code, unreachable_pub)]

pub mod frames;

use std::{
    fs::File,
    os::fd::AsRawFd,
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

/// Runs `ip` with `args`; panics with its stderr if it fails.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("run ip (package iproute2)");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two network namespaces `rauta-test-<pid>-<n>-srv` and `-cli` joined by a
/// veth pair: `rt-srv0` (198.18.0.1/24, MAC 02:00:00:00:00:01) in the
/// server namespace, `rt-cli0` (198.18.0.2/24, 02:00:00:00:00:02) in the
/// client one. IPv6 is off and the neighbours are static, so the only frames
/// on the link are the ones a test sends. Both namespaces (and so the pair)
/// are removed on drop, also when the test fails.
pub struct NetnsPair {
    pub srv: String,
    pub cli: String,
}

pub const SRV_IF: &str = "rt-srv0";
pub const CLI_IF: &str = "rt-cli0";
pub const SRV_ADDR: &str = "198.18.0.1";
pub const CLI_ADDR: &str = "198.18.0.2";
const SRV_MAC: &str = "02:00:00:00:00:01";
const CLI_MAC: &str = "02:00:00:00:00:02";

static NEXT: AtomicU32 = AtomicU32::new(0);

impl NetnsPair {
    pub fn new() -> Self {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let base = format!("rauta-test-{}-{n}", std::process::id());
        let pair = Self {
            srv: format!("{base}-srv"),
            cli: format!("{base}-cli"),
        };
        // From here on, Drop removes whatever was made.
        for ns in [&pair.srv, &pair.cli] {
            ip(&["netns", "add", ns]);
            sysctl(ns, "net.ipv6.conf.all.disable_ipv6=1");
            sysctl(ns, "net.ipv6.conf.default.disable_ipv6=1");
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        ip(&[
            "-n", &pair.srv, "link", "add", SRV_IF, "address", SRV_MAC, "type", "veth", "peer",
            "name", CLI_IF, "address", CLI_MAC, "netns", &pair.cli,
        ]);
        for (ns, dev, addr, peer, peer_mac) in [
            (&pair.srv, SRV_IF, SRV_ADDR, CLI_ADDR, CLI_MAC),
            (&pair.cli, CLI_IF, CLI_ADDR, SRV_ADDR, SRV_MAC),
        ] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev]);
            ip(&[
                "-n",
                ns,
                "neigh",
                "add",
                peer,
                "lladdr",
                peer_mac,
                "dev",
                dev,
                "nud",
                "permanent",
            ]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        pair
    }

    /// Runs `f` on a thread that has entered namespace `ns`; sockets made
    /// there stay in `ns` wherever they are used afterwards.
    pub fn run_in<R: Send>(ns: &str, f: impl FnOnce() -> R + Send) -> R {
        let file = File::open(format!("/var/run/netns/{ns}")).expect("open netns");
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: setns with a valid namespace fd only changes the
                // network namespace of this (scoped, short-lived) thread.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .expect("namespace thread panicked")
        })
    }

    pub fn in_srv<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        Self::run_in(&self.srv, f)
    }

    pub fn in_cli<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        Self::run_in(&self.cli, f)
    }
}

fn sysctl(ns: &str, kv: &str) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "sysctl", "-q", "-w", kv])
        .output()
        .expect("run sysctl");
    assert!(
        out.status.success(),
        "sysctl {kv}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        for ns in [&self.srv, &self.cli] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// Panics with a clear message unless the tests run as root.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test needs root (CAP_BPF, CAP_NET_ADMIN); run scripts/test.d/40-xdp.sh as root"
    );
}
