//! Errors of the loader.

use std::{error::Error as StdError, fmt, io};

/// An error from loading, attaching or controlling the XDP program.
///
/// What went wrong is in [`Error::kind`]; the underlying system error, when
/// there is one, is the [`source`](std::error::Error::source).
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The kernel refused a BPF or netlink operation for lack of privilege:
    /// loading and attaching need root (or `CAP_BPF` + `CAP_NET_ADMIN`).
    #[error(
        "not permitted: loading and attaching XDP programs needs root (CAP_BPF and CAP_NET_ADMIN)"
    )]
    NotRoot,
    /// The network interface does not exist (in the calling thread's network
    /// namespace).
    #[error("no such network interface {name:?}")]
    NoSuchInterface {
        /// The name asked for.
        name: String,
    },
    /// The kernel verifier rejected the program.
    #[error("the kernel verifier rejected program {program}: {log}")]
    VerifierRejected {
        /// Program name.
        program: String,
        /// The verifier's log, as the kernel wrote it.
        log: String,
    },
    /// An XDP program is already attached: this filter to some interface, or
    /// another program to the requested interface.
    #[error("an XDP program is already attached to {interface:?}")]
    AlreadyAttached {
        /// The interface concerned.
        interface: String,
    },
    /// `detach` was called on a filter that is not attached.
    #[error("the filter is not attached")]
    NotAttached,
    /// This build carries no XDP object (the `ebpf` feature is off).
    #[error(
        "no embedded XDP object: build rauta-xdp with the `ebpf` feature, or load an object with \
         XdpFilter::builder().load_from(bytes)"
    )]
    NoEmbeddedObject,
    /// The object could not be parsed or lacks a program or map.
    #[error("invalid XDP object: {reason}")]
    InvalidObject {
        /// What is wrong with it.
        reason: String,
    },
    /// A CIDR prefix could not be parsed or has host bits set.
    #[error("invalid prefix {input:?}: {reason}")]
    InvalidPrefix {
        /// The text given.
        input: String,
        /// Why it was refused.
        reason: String,
    },
    /// A setting is out of range.
    #[error("invalid setting: {reason}")]
    InvalidSetting {
        /// Which setting and why.
        reason: String,
    },
    /// A deny list is at its capacity (set at load time).
    #[error("map {map} is full ({capacity} entries); raise its capacity at load time")]
    MapFull {
        /// The map's name.
        map: &'static str,
        /// Its capacity.
        capacity: u32,
    },
    /// Any other failure of a kernel operation.
    #[error("{operation} failed")]
    Kernel {
        /// What was being done.
        operation: &'static str,
    },
}

impl Error {
    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The verifier log, when the verifier rejected the program.
    pub fn verifier_log(&self) -> Option<&str> {
        match &self.kind {
            ErrorKind::VerifierRejected { log, .. } => Some(log),
            _ => None,
        }
    }

    pub(crate) fn new(kind: ErrorKind) -> Self {
        Self { kind, source: None }
    }

    pub(crate) fn with_source(
        kind: ErrorKind,
        source: impl StdError + Send + Sync + 'static,
    ) -> Self {
        Self {
            kind,
            source: Some(Box::new(source)),
        }
    }

    /// Classifies a kernel-side failure: lack of privilege becomes
    /// [`ErrorKind::NotRoot`], anything else [`ErrorKind::Kernel`].
    pub(crate) fn kernel(
        operation: &'static str,
        source: impl StdError + Send + Sync + 'static,
    ) -> Self {
        let kind = match errno(&source) {
            Some(libc::EPERM) => ErrorKind::NotRoot,
            _ => ErrorKind::Kernel { operation },
        };
        Self::with_source(kind, source)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.kind, f)
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

/// The first OS error number found along an error's source chain.
pub(crate) fn errno(e: &(dyn StdError + 'static)) -> Option<i32> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            if let Some(n) = io.raw_os_error() {
                return Some(n);
            }
        }
        cur = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("wrapper")]
    struct Wrapper(#[source] io::Error);

    #[test]
    fn eperm_anywhere_in_the_chain_means_not_root() {
        let e = Error::kernel(
            "bpf_map_create",
            Wrapper(io::Error::from_raw_os_error(libc::EPERM)),
        );
        assert_eq!(e.kind(), &ErrorKind::NotRoot);
        assert!(e.source().is_some());
        let e = Error::kernel(
            "bpf_map_create",
            Wrapper(io::Error::from_raw_os_error(libc::ENOMEM)),
        );
        assert_eq!(
            e.kind(),
            &ErrorKind::Kernel {
                operation: "bpf_map_create"
            }
        );
        assert_eq!(e.to_string(), "bpf_map_create failed");
    }

    #[test]
    fn messages_name_the_thing() {
        let e = Error::new(ErrorKind::NoSuchInterface {
            name: "rauta-nope0".into(),
        });
        assert_eq!(e.to_string(), "no such network interface \"rauta-nope0\"");
        let e = Error::new(ErrorKind::VerifierRejected {
            program: "rauta_xdp".into(),
            log: "R1 invalid mem access".into(),
        });
        assert_eq!(e.verifier_log(), Some("R1 invalid mem access"));
        assert!(e.to_string().contains("R1 invalid mem access"));
        let e = Error::new(ErrorKind::MapFull {
            map: "DENY_V4",
            capacity: 8,
        });
        assert_eq!(
            e.to_string(),
            "map DENY_V4 is full (8 entries); raise its capacity at load time"
        );
    }
}
