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

/// The calls [`Xdp::apply`] makes on the classifier, apart so that a test
/// can make any one of them fail.
trait Lists {
    type Error;
    fn denied_sources(&self) -> Result<Vec<IpPrefix>, Self::Error>;
    fn replace_denied_sources(&mut self, sources: Vec<IpPrefix>) -> Result<(), Self::Error>;
    fn deny_port(&mut self, protocol: Protocol, port: u16) -> Result<(), Self::Error>;
    fn allow_port(&mut self, protocol: Protocol, port: u16) -> Result<(), Self::Error>;
}

impl Lists for XdpFilter {
    type Error = rauta_xdp::Error;
    fn denied_sources(&self) -> Result<Vec<IpPrefix>, Self::Error> {
        XdpFilter::denied_sources(self)
    }
    fn replace_denied_sources(&mut self, sources: Vec<IpPrefix>) -> Result<(), Self::Error> {
        XdpFilter::replace_denied_sources(self, sources)
    }
    fn deny_port(&mut self, protocol: Protocol, port: u16) -> Result<(), Self::Error> {
        XdpFilter::deny_port(self, protocol, port)
    }
    fn allow_port(&mut self, protocol: Protocol, port: u16) -> Result<(), Self::Error> {
        XdpFilter::allow_port(self, protocol, port).map(|_| ())
    }
}

/// Denies or allows the ports that differ between `now` (TCP, then UDP;
/// kept as written, port by port) and `want`.
fn set_ports<F: Lists>(
    filter: &mut F,
    now: &mut [BTreeSet<u16>; 2],
    want: &[BTreeSet<u16>; 2],
) -> Result<(), F::Error> {
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

/// [`Xdp::apply`] on any [`Lists`]: the sources, then the ports; on an
/// error, the ports changed so far and then the sources are put back
/// (the put-back's own error is logged) and the first error returned.
fn apply_lists<F: Lists>(
    filter: &mut F,
    ports: &mut [BTreeSet<u16>; 2],
    lists: XdpLists,
) -> Result<(), F::Error>
where
    F::Error: std::fmt::Display,
{
    let before = filter.denied_sources()?;
    filter.replace_denied_sources(lists.sources)?;
    let old = ports.clone();
    if let Err(e) = set_ports(filter, ports, &lists.ports) {
        let back =
            set_ports(filter, ports, &old).and_then(|()| filter.replace_denied_sources(before));
        if let Err(undo) = back {
            tracing::error!(error = %undo, "XDP lists not put back after a failed change");
        }
        return Err(e);
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
        Ok(apply_lists(filter, ports, lists)?)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A classifier in memory that fails its `fail_at`-th call (counting
    /// every call, reads included) once.
    #[derive(Debug, Default)]
    struct Fake {
        sources: Vec<IpPrefix>,
        ports: [BTreeSet<u16>; 2],
        calls: usize,
        fail_at: Option<usize>,
    }

    impl Fake {
        fn call(&mut self) -> Result<(), String> {
            self.calls += 1;
            if self.fail_at == Some(self.calls) {
                return Err(format!("call {} failed", self.calls));
            }
            Ok(())
        }
    }

    fn index(protocol: Protocol) -> usize {
        usize::from(protocol == Protocol::Udp)
    }

    impl Lists for Fake {
        type Error = String;
        fn denied_sources(&self) -> Result<Vec<IpPrefix>, String> {
            Ok(self.sources.clone())
        }
        fn replace_denied_sources(&mut self, sources: Vec<IpPrefix>) -> Result<(), String> {
            self.call()?;
            self.sources = sources;
            Ok(())
        }
        fn deny_port(&mut self, protocol: Protocol, port: u16) -> Result<(), String> {
            self.call()?;
            self.ports[index(protocol)].insert(port);
            Ok(())
        }
        fn allow_port(&mut self, protocol: Protocol, port: u16) -> Result<(), String> {
            self.call()?;
            self.ports[index(protocol)].remove(&port);
            Ok(())
        }
    }

    fn lists(sources: &[&str], tcp: &[u16], udp: &[u16]) -> XdpLists {
        XdpLists {
            sources: sources.iter().map(|s| s.parse().unwrap()).collect(),
            ports: [tcp.iter().copied().collect(), udp.iter().copied().collect()],
        }
    }

    /// A failure at any one call of a change leaves the classifier, and
    /// the record of its ports, exactly as before the change; without a
    /// failure the change is made in full.
    #[test]
    fn a_failure_at_any_call_puts_everything_back() {
        let first = lists(&["198.18.0.0/24", "2001:db8::/48"], &[23, 25], &[11211]);
        let second = lists(&["198.18.1.0/24", "2001:db8::/48"], &[25, 80], &[53, 11211]);
        // The second change makes 1 source replacement and 3 port writes
        // (deny TCP 80, allow TCP 23, deny UDP 53).
        for fail_at in 1..=5 {
            let mut fake = Fake::default();
            let mut record: [BTreeSet<u16>; 2] = Default::default();
            apply_lists(&mut fake, &mut record, first.clone()).unwrap();
            fake.calls = 0;
            fake.fail_at = Some(fail_at);
            let result = apply_lists(&mut fake, &mut record, second.clone());
            let (sources, ports) = if fail_at <= 4 {
                assert_eq!(result, Err(format!("call {fail_at} failed")));
                (&first.sources, &first.ports)
            } else {
                assert_eq!(result, Ok(()));
                (&second.sources, &second.ports)
            };
            assert_eq!(&fake.sources, sources, "failing call {fail_at}");
            assert_eq!(&fake.ports, ports, "failing call {fail_at}");
            assert_eq!(&record, ports, "failing call {fail_at}");
        }
    }
}
