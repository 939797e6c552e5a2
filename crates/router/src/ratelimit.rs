//! Rate limit descriptors: what Envoy's rate limit filters send to a rate
//! limit service (or count locally) for a routed request.
//!
//! Each `rate_limits` entry of a route or virtual host is a list of
//! actions; each action adds one `(key, value)` entry, and the entries
//! together are one descriptor. An action that cannot produce its entry
//! (an absent header, a header condition that fails) drops the whole
//! descriptor, unless it says `skip_if_absent`. RAUTA computes the
//! descriptors; the proxy sends them to its limiter.

use std::net::IpAddr;

use crate::matchers::{HeaderCond, QueryCond};
use crate::request::{for_each_value_of, Joined, RequestView};

/// The first value of `name`, pseudo-headers included.
fn first_value<'a, R: RequestView + ?Sized>(
    req: &'a R,
    name: &str,
    path: Option<&'a str>,
) -> Option<&'a [u8]> {
    let mut first = None;
    for_each_value_of(req, name, path, &mut |v| {
        first.get_or_insert(v);
    });
    first
}

/// A compiled `RateLimit`.
#[derive(Debug, Clone)]
pub(crate) struct RateLimitSpec {
    pub(crate) stage: u32,
    pub(crate) disable_key: Box<str>,
    pub(crate) actions: Box<[RateLimitActionSpec]>,
}

/// A compiled action.
#[derive(Debug, Clone)]
pub(crate) enum RateLimitActionSpec {
    SourceCluster,
    DestinationCluster,
    RequestHeader {
        name: Box<str>,
        key: Box<str>,
        skip_if_absent: bool,
    },
    RemoteAddress,
    MaskedRemoteAddress {
        v4: u8,
        v6: u8,
    },
    Generic {
        key: Box<str>,
        value: Box<str>,
    },
    HeaderMatch {
        key: Box<str>,
        value: Box<str>,
        expect: bool,
        headers: Box<[HeaderCond]>,
    },
    QueryMatch {
        key: Box<str>,
        value: Box<str>,
        expect: bool,
        query: Box<[QueryCond]>,
    },
    RouteMetadata {
        key: Box<str>,
        filter: Box<str>,
        path: Box<[Box<str>]>,
        default: Box<str>,
        skip_if_absent: bool,
    },
}

/// A route's rate limits (out of line: most routes have none).
#[derive(Debug, Clone, Default)]
pub(crate) struct RouteRateLimits {
    pub(crate) list: Box<[RateLimitSpec]>,
    /// `include_vh_rate_limits`.
    pub(crate) include_vh: bool,
}

/// The filter whose per-route `vh_rate_limits` says how a virtual host's
/// rate limits combine with a route's.
pub(crate) const RATE_LIMIT_FILTER: &str = "envoy.filters.http.ratelimit";

/// What a rate limit filter knows beyond the request: the stage it runs
/// at, the proxy's own cluster and the client's address.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct RateLimitContext<'c> {
    /// The stage asked for (Envoy's rate limit filter `stage`, default 0).
    pub stage: u32,
    /// The proxy's own cluster, for `source_cluster` (Envoy's
    /// `--service-cluster`).
    pub local_service_cluster: &'c str,
    /// The client's address, for `remote_address` and
    /// `masked_remote_address` (without it those actions drop their
    /// descriptor).
    pub remote_address: Option<IpAddr>,
}

impl<'c> RateLimitContext<'c> {
    /// Stage 0, no local cluster, no client address.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the stage.
    #[must_use]
    pub fn stage(mut self, stage: u32) -> Self {
        self.stage = stage;
        self
    }

    /// Sets the proxy's own cluster.
    #[must_use]
    pub fn local_service_cluster(mut self, cluster: &'c str) -> Self {
        self.local_service_cluster = cluster;
        self
    }

    /// Sets the client's address.
    #[must_use]
    pub fn remote_address(mut self, addr: IpAddr) -> Self {
        self.remote_address = Some(addr);
        self
    }
}

/// One descriptor: the entries of one `rate_limits` element, in action
/// order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimitDescriptor {
    /// `(key, value)` entries.
    pub entries: Vec<(String, String)>,
    /// The `disable_key` of its rate limit (empty when none).
    pub disable_key: String,
}

/// The inputs of one evaluation.
pub(crate) struct Inputs<'a, R: ?Sized> {
    pub(crate) req: &'a R,
    pub(crate) path: Option<&'a str>,
    /// Headers treated as absent (internal-only ones on an external
    /// request).
    pub(crate) hidden: &'a [Box<str>],
    pub(crate) cluster: &'a str,
    pub(crate) metadata: Option<&'a serde_json::Value>,
    pub(crate) ctx: &'a RateLimitContext<'a>,
}

/// The network of `addr` with `len` bits, as `address/len`.
fn masked(addr: IpAddr, v4: u8, v6: u8) -> String {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let mask = if v4 == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(v4))
            };
            format!("{}/{v4}", std::net::Ipv4Addr::from(bits & mask))
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let mask = if v6 == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(v6))
            };
            format!("{}/{v6}", std::net::Ipv6Addr::from(bits & mask))
        }
    }
}

impl RateLimitSpec {
    /// The descriptor, or `None` when an action drops it.
    pub(crate) fn descriptor<R: RequestView + ?Sized>(
        &self,
        inp: &Inputs<'_, R>,
    ) -> Option<RateLimitDescriptor> {
        let mut entries = Vec::with_capacity(self.actions.len());
        for a in self.actions.iter() {
            let mut put = |k: &str, v: String| entries.push((k.to_owned(), v));
            match a {
                RateLimitActionSpec::SourceCluster => {
                    put("source_cluster", inp.ctx.local_service_cluster.to_owned())
                }
                RateLimitActionSpec::DestinationCluster => {
                    put("destination_cluster", inp.cluster.to_owned())
                }
                RateLimitActionSpec::RequestHeader {
                    name,
                    key,
                    skip_if_absent,
                } => match Some(name)
                    .filter(|n| !inp.hidden.contains(n))
                    .and_then(|n| first_value(inp.req, n, inp.path))
                {
                    Some(v) => put(key, String::from_utf8_lossy(v).into_owned()),
                    None if *skip_if_absent => {}
                    None => return None,
                },
                RateLimitActionSpec::RemoteAddress => {
                    put("remote_address", inp.ctx.remote_address?.to_string())
                }
                RateLimitActionSpec::MaskedRemoteAddress { v4, v6 } => put(
                    "masked_remote_address",
                    masked(inp.ctx.remote_address?, *v4, *v6),
                ),
                RateLimitActionSpec::Generic { key, value } => put(key, value.to_string()),
                RateLimitActionSpec::HeaderMatch {
                    key,
                    value,
                    expect,
                    headers,
                } => {
                    let mut buf = Joined::new();
                    let all = headers
                        .iter()
                        .all(|h| h.matches(inp.req, inp.path, &mut buf, inp.hidden));
                    if all != *expect {
                        return None;
                    }
                    put(key, value.to_string());
                }
                RateLimitActionSpec::QueryMatch {
                    key,
                    value,
                    expect,
                    query,
                } => {
                    let q = inp
                        .path
                        .and_then(|p| p.split_once('?'))
                        .map(|(_, q)| q.split_once('#').map_or(q, |(q, _)| q));
                    // Decoded, as Envoy's action reads the query (route
                    // matching compares raw values).
                    if query.iter().all(|c| c.matches_decoded(q)) != *expect {
                        return None;
                    }
                    put(key, value.to_string());
                }
                RateLimitActionSpec::RouteMetadata {
                    key,
                    filter,
                    path,
                    default,
                    skip_if_absent,
                } => {
                    let mut v = inp
                        .metadata
                        .and_then(|m| m.get("filter_metadata"))
                        .and_then(|m| m.get(&**filter));
                    for k in path.iter() {
                        v = v.and_then(|x| x.get(&**k));
                    }
                    match v
                        .and_then(serde_json::Value::as_str)
                        .filter(|s| !s.is_empty())
                    {
                        Some(s) => put(key, s.to_owned()),
                        None if !default.is_empty() => put(key, default.to_string()),
                        None if *skip_if_absent => {}
                        None => return None,
                    }
                }
            }
        }
        Some(RateLimitDescriptor {
            entries,
            disable_key: self.disable_key.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        let a: IpAddr = "198.18.77.201".parse().unwrap();
        assert_eq!(masked(a, 32, 128), "198.18.77.201/32");
        assert_eq!(masked(a, 24, 128), "198.18.77.0/24");
        assert_eq!(masked(a, 15, 128), "198.18.0.0/15");
        assert_eq!(masked(a, 0, 128), "0.0.0.0/0");
        let b: IpAddr = "2001:db8:abcd:12::7".parse().unwrap();
        assert_eq!(masked(b, 32, 128), "2001:db8:abcd:12::7/128");
        assert_eq!(masked(b, 32, 48), "2001:db8:abcd::/48");
        assert_eq!(masked(b, 32, 0), "::/0");
        assert_eq!(masked(b, 32, 127), "2001:db8:abcd:12::6/127");
    }
}
