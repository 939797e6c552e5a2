//! `--xdp IFACE`: the rauta-xdp classifier in front of the proxy (cargo
//! feature `xdp`; the program itself is embedded with `rauta-xdp/ebpf`).
//! The deny lists come from the file's `xdp:` section at start; the
//! classifier's counters are appended to `/metrics`.

use std::fmt::Write as _;
use std::sync::Mutex;

use rauta_xdp::{IpPrefix, Protocol, XdpFilter};

use crate::config::XdpConfig;

/// A loaded and attached classifier. Dropping it detaches the program.
#[derive(Debug)]
pub struct Xdp {
    filter: Mutex<XdpFilter>,
}

impl Xdp {
    /// Loads the program, attaches it to `interface` and installs the deny
    /// lists.
    ///
    /// # Errors
    ///
    /// What rauta-xdp reports (no embedded program, not root, no such
    /// interface, bad prefix, full map).
    pub fn attach(interface: &str, config: &XdpConfig) -> Result<Xdp, rauta_xdp::Error> {
        let mut filter = XdpFilter::load()?;
        let mode = filter.attach(interface)?;
        let denied = config
            .deny_sources
            .iter()
            .map(|p| p.parse::<IpPrefix>())
            .collect::<Result<Vec<_>, _>>()?;
        filter.deny_sources(denied)?;
        for port in &config.deny_tcp_ports {
            filter.deny_port(Protocol::Tcp, *port)?;
        }
        for port in &config.deny_udp_ports {
            filter.deny_port(Protocol::Udp, *port)?;
        }
        tracing::info!(interface, ?mode, "XDP classifier attached");
        Ok(Xdp {
            filter: Mutex::new(filter),
        })
    }

    /// Appends the classifier's counters in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let filter = self
            .filter
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Ok(c) = filter.counters() else {
            return;
        };
        let rows = [
            ("passed", c.passed),
            ("dropped_deny_source", c.dropped_deny_source),
            ("dropped_deny_port", c.dropped_deny_port),
            ("dropped_syn_rate", c.dropped_syn_rate),
        ];
        for (unit, help, get) in [
            (
                "packets",
                "Frames",
                (|x: rauta_xdp::Count| x.packets) as fn(_) -> u64,
            ),
            ("bytes", "Bytes of frames", |x: rauta_xdp::Count| x.bytes),
        ] {
            let _ = writeln!(
                out,
                "# HELP rauta_xdp_{unit}_total {help} seen by the XDP classifier, by verdict.\n\
                 # TYPE rauta_xdp_{unit}_total counter"
            );
            for (verdict, count) in rows {
                let _ = writeln!(
                    out,
                    "rauta_xdp_{unit}_total{{verdict=\"{verdict}\"}} {}",
                    get(count)
                );
            }
        }
    }
}
