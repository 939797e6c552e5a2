//! `--xdp IFACE`: the rauta-xdp classifier in front of the proxy (cargo
//! feature `xdp`; the program itself is embedded with `rauta-xdp/ebpf`).
//! The deny lists come from the file's `xdp:` section, at start and at
//! every reload; the classifier's counters are appended to `/metrics`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Mutex;

use rauta_xdp::{IpPrefix, Protocol, XdpFilter};

use crate::config::XdpConfig;

/// A loaded and attached classifier. Dropping it detaches the program.
#[derive(Debug)]
pub struct Xdp {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    filter: XdpFilter,
    /// The TCP and UDP ports denied now.
    ports: [BTreeSet<u16>; 2],
}

/// Denies or allows the ports that differ between `now` (TCP, then UDP;
/// kept as written, port by port) and `want`.
fn set_ports(
    filter: &mut XdpFilter,
    now: &mut [BTreeSet<u16>; 2],
    want: &[BTreeSet<u16>; 2],
) -> Result<(), rauta_xdp::Error> {
    for ((protocol, now), want) in [Protocol::Tcp, Protocol::Udp]
        .into_iter()
        .zip(now)
        .zip(want)
    {
        for &port in want.difference(&now.clone()) {
            filter.deny_port(protocol, port)?;
            now.insert(port);
        }
        for &port in now.clone().difference(want) {
            filter.allow_port(protocol, port)?;
            now.remove(&port);
        }
    }
    Ok(())
}

/// The `xdp:` section, parsed: what [`Xdp::apply`] installs.
#[derive(Debug, Clone, Default)]
pub struct XdpLists {
    sources: Vec<IpPrefix>,
    /// TCP, then UDP.
    ports: [BTreeSet<u16>; 2],
}

impl XdpLists {
    /// Parses the section's prefixes; nothing touches the kernel.
    ///
    /// # Errors
    ///
    /// The first entry of `deny_sources` that is not a prefix.
    pub fn parse(config: &XdpConfig) -> Result<XdpLists, XdpError> {
        let sources = config
            .deny_sources
            .iter()
            .enumerate()
            .map(|(index, text)| {
                text.parse::<IpPrefix>().map_err(|source| XdpError::Prefix {
                    index,
                    text: text.clone(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(XdpLists {
            sources,
            ports: [
                config.deny_tcp_ports.iter().copied().collect(),
                config.deny_udp_ports.iter().copied().collect(),
            ],
        })
    }
}

/// Why the `xdp:` lists could not be applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum XdpError {
    /// An entry of `deny_sources` is not a prefix (nothing was changed).
    #[error("xdp.deny_sources[{index}] {text:?}: {source}")]
    Prefix {
        /// Its position in the list.
        index: usize,
        /// The entry.
        text: String,
        /// What rauta-xdp said.
        source: rauta_xdp::Error,
    },
    /// Loading, attaching or changing the classifier failed.
    #[error(transparent)]
    Filter(#[from] rauta_xdp::Error),
}

impl Xdp {
    /// Loads the program, attaches it to `interface` and installs the deny
    /// lists.
    ///
    /// # Errors
    ///
    /// What rauta-xdp reports (no embedded program, not root, no such
    /// interface, full map), or an entry that is not a prefix.
    pub fn attach(interface: &str, config: &XdpConfig) -> Result<Xdp, XdpError> {
        let lists = XdpLists::parse(config)?;
        let mut filter = XdpFilter::load()?;
        let mode = filter.attach(interface)?;
        let xdp = Xdp {
            inner: Mutex::new(Inner {
                filter,
                ports: Default::default(),
            }),
        };
        xdp.apply(lists)?;
        tracing::info!(interface, ?mode, "XDP classifier attached");
        Ok(xdp)
    }

    /// Makes the classifier's deny lists `lists`: the source list is
    /// replaced in one change that writes only the difference (a source in
    /// both the old and the new list is dropped throughout), then the
    /// ports that changed are denied or allowed.
    ///
    /// # Errors
    ///
    /// A full map or a kernel error. The lists are then put back as they
    /// were: the source list is as it was if replacing it failed, and a
    /// failure at a port puts back the ports changed before it and the
    /// source list (a kernel error during that, logged, leaves those of
    /// the new lists that were in).
    pub fn apply(&self, lists: XdpLists) -> Result<(), XdpError> {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Inner { filter, ports } = &mut *inner;
        let before = filter.denied_sources()?;
        filter.replace_denied_sources(lists.sources)?;
        let wanted = lists.ports;
        let old = ports.clone();
        if let Err(e) = set_ports(filter, ports, &wanted) {
            let back =
                set_ports(filter, ports, &old).and_then(|()| filter.replace_denied_sources(before));
            if let Err(undo) = back {
                tracing::error!(error = %undo, "XDP lists not put back after a failed change");
            }
            return Err(e.into());
        }
        Ok(())
    }

    /// Appends the classifier's counters in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Ok(c) = inner.filter.counters() else {
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
