//! CIDR prefixes for the source deny lists.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    str::FromStr,
};

use crate::{Error, ErrorKind};

/// An IPv4 or IPv6 network prefix such as `198.18.0.0/15` or `2001:db8::/32`.
///
/// Host bits must be zero: `198.18.0.1/15` is refused rather than silently
/// widened, so a typo cannot deny more than was meant.
///
/// ```
/// use rauta_xdp::IpPrefix;
///
/// let p: IpPrefix = "198.18.0.0/15".parse()?;
/// assert_eq!(p.len(), 15);
/// assert!("198.18.0.1/15".parse::<IpPrefix>().is_err());
/// // A bare address is a host prefix.
/// assert_eq!("2001:db8::1".parse::<IpPrefix>()?.len(), 128);
/// # Ok::<(), rauta_xdp::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpPrefix {
    addr: IpAddr,
    len: u8,
}

impl IpPrefix {
    /// A prefix of `len` bits of `addr`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidPrefix`] if `len` exceeds the address width (32
    /// or 128) or `addr` has bits set past `len`.
    pub fn new(addr: IpAddr, len: u8) -> Result<Self, Error> {
        let width = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let fail = |reason: String| {
            Error::new(ErrorKind::InvalidPrefix {
                input: format!("{addr}/{len}"),
                reason,
            })
        };
        if len > width {
            return Err(fail(format!("length {len} exceeds {width}")));
        }
        let masked = mask(addr, len);
        if masked != addr {
            return Err(fail(format!("host bits set; did you mean {masked}/{len}?")));
        }
        Ok(Self { addr, len })
    }

    /// The single-address prefix of `addr` (`/32` or `/128`).
    pub fn host(addr: IpAddr) -> Self {
        let len = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        Self { addr, len }
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u8 {
        self.len
    }

    /// Whether `ip` lies inside this prefix.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                mask(ip, self.len) == self.addr
            }
            _ => false,
        }
    }
}

fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len.min(32)))
            };
            IpAddr::V4(Ipv4Addr::from(bits & m))
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len.min(128)))
            };
            IpAddr::V6(Ipv6Addr::from(bits & m))
        }
    }
}

impl FromStr for IpPrefix {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let fail = |reason: &str| {
            Error::new(ErrorKind::InvalidPrefix {
                input: s.to_owned(),
                reason: reason.to_owned(),
            })
        };
        match s.split_once('/') {
            None => {
                let addr: IpAddr = s.parse().map_err(|_| fail("not an IP address"))?;
                Ok(Self::host(addr))
            }
            Some((a, l)) => {
                let addr: IpAddr = a.parse().map_err(|_| fail("not an IP address"))?;
                if l.is_empty() || !l.bytes().all(|b| b.is_ascii_digit()) || l.len() > 3 {
                    return Err(fail("prefix length is not a number"));
                }
                let len: u8 = l
                    .parse()
                    .map_err(|_| fail("prefix length is not a number"))?;
                Self::new(addr, len)
            }
        }
    }
}

impl From<IpAddr> for IpPrefix {
    fn from(addr: IpAddr) -> Self {
        Self::host(addr)
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> String {
        s.parse::<IpPrefix>().unwrap_err().to_string()
    }

    #[test]
    fn parses_and_prints() {
        for s in [
            "198.18.0.0/15",
            "0.0.0.0/0",
            "2001:db8::/32",
            "::/0",
            "198.18.0.7/32",
        ] {
            assert_eq!(s.parse::<IpPrefix>().unwrap().to_string(), s);
        }
        assert_eq!(
            "198.18.3.4".parse::<IpPrefix>().unwrap().to_string(),
            "198.18.3.4/32"
        );
    }

    #[test]
    fn refuses_bad_input_with_reasons() {
        assert_eq!(
            err("198.18.0.1/15"),
            "invalid prefix \"198.18.0.1/15\": host bits set; did you mean 198.18.0.0/15?"
        );
        assert_eq!(
            err("198.18.0.0/33"),
            "invalid prefix \"198.18.0.0/33\": length 33 exceeds 32"
        );
        assert_eq!(
            err("2001:db8::/129"),
            "invalid prefix \"2001:db8::/129\": length 129 exceeds 128"
        );
        assert_eq!(
            err("nope/8"),
            "invalid prefix \"nope/8\": not an IP address"
        );
        assert_eq!(
            err("198.18.0.0/"),
            "invalid prefix \"198.18.0.0/\": prefix length is not a number"
        );
        assert_eq!(
            err("198.18.0.0/+8"),
            "invalid prefix \"198.18.0.0/+8\": prefix length is not a number"
        );
        assert_eq!(
            err("198.18.0.0/0008"),
            "invalid prefix \"198.18.0.0/0008\": prefix length is not a number"
        );
    }

    #[test]
    fn contains_respects_family_and_length() {
        let p: IpPrefix = "198.18.0.0/15".parse().unwrap();
        assert!(p.contains("198.19.255.255".parse().unwrap()));
        assert!(!p.contains("198.20.0.0".parse().unwrap()));
        assert!(!p.contains("::ffff:198.18.0.1".parse().unwrap()));
        let all: IpPrefix = "::/0".parse().unwrap();
        assert!(all.contains("2001:db8::1".parse().unwrap()));
        assert!(!all.contains("198.18.0.1".parse().unwrap()));
    }
}
