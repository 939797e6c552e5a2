//! Why a request went where it went: per-route reasons for tools such as
//! `rauta route` (in the spirit of Envoy's router check tool).

use std::borrow::Cow;
use std::fmt;

use crate::matchers::{self, HeaderTest};
use crate::path::PathOutcome;
use crate::request::RequestView;
use crate::table::{Decision, PathSpec, RouteEntry, RouteTable, VirtualHostEntry};

/// How a host matched a virtual host's domain.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DomainMatch {
    /// An exact domain.
    Exact(String),
    /// A suffix wildcard such as `*.example.com`.
    Suffix(String),
    /// A prefix wildcard such as `example.*`.
    Prefix(String),
    /// The default `*`.
    Default,
}

impl fmt::Display for DomainMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainMatch::Exact(d) => write!(f, "exact domain {d:?}"),
            DomainMatch::Suffix(d) => write!(f, "suffix wildcard {d:?}"),
            DomainMatch::Prefix(d) => write!(f, "prefix wildcard {d:?}"),
            DomainMatch::Default => f.write_str("the default domain \"*\""),
        }
    }
}

/// The verdict on one route for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouteVerdict<'a> {
    /// The route.
    pub route: &'a RouteEntry,
    /// `None` when every condition holds, else the first that does not.
    pub failed: Option<String>,
}

/// An explanation of a routing decision.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Explanation<'a> {
    /// The selected virtual host and how its domain matched.
    pub vhost: Option<(&'a VirtualHostEntry, DomainMatch)>,
    /// The path the route conditions compare, after the path policy.
    pub match_path: Option<String>,
    /// Each route of the virtual host up to and including the one taken.
    pub routes: Vec<RouteVerdict<'a>>,
}

fn domain_match(vhost: &VirtualHostEntry, host: &str) -> DomainMatch {
    let host = host.to_ascii_lowercase();
    let mut best: Option<DomainMatch> = None;
    let rank = |d: &DomainMatch| match d {
        DomainMatch::Exact(_) => (3, 0),
        DomainMatch::Suffix(s) => (2, s.len()),
        DomainMatch::Prefix(s) => (1, s.len()),
        DomainMatch::Default => (0, 0),
    };
    for d in vhost.domains() {
        let m = if **d == *"*" {
            Some(DomainMatch::Default)
        } else if let Some(s) = d.strip_prefix('*') {
            (s.len() < host.len() && host.ends_with(s)).then(|| DomainMatch::Suffix(d.to_string()))
        } else if let Some(p) = d.strip_suffix('*') {
            (p.len() < host.len() && host.starts_with(p))
                .then(|| DomainMatch::Prefix(d.to_string()))
        } else {
            (**d == *host || host.split(':').next() == Some(&**d))
                .then(|| DomainMatch::Exact(d.to_string()))
        };
        if let Some(m) = m {
            if best.as_ref().is_none_or(|b| rank(&m) > rank(b)) {
                best = Some(m);
            }
        }
    }
    best.unwrap_or(DomainMatch::Default)
}

fn path_reason(r: &RouteEntry) -> String {
    let cs = if r.case_sensitive {
        ""
    } else {
        " (case-insensitive)"
    };
    match &r.path {
        PathSpec::Prefix(p) => format!("path does not start with {p:?}{cs}"),
        PathSpec::Exact(p) => format!("path is not {p:?}{cs}"),
        PathSpec::Separated(p) => format!("path is not {p:?} or under {p:?}/{cs}"),
        PathSpec::Regex(_) => format!("path does not fully match regex {:?}", r.path_text()),
        PathSpec::Template(_) => format!("path does not fit template {:?}{cs}", r.path_text()),
        PathSpec::Connect => "method is not CONNECT".into(),
    }
}

impl RouteTable {
    /// Explains how `req` is routed: the virtual host and why, and for each
    /// route up to the one taken, the first condition that failed. Meant for
    /// tools; it allocates freely.
    pub fn explain<'a, R: RequestView + ?Sized>(
        &'a self,
        req: &'a R,
        random_value: u64,
    ) -> Explanation<'a> {
        let decision = self.route(req, random_value);
        let Some(vhost) = decision.virtual_host() else {
            return Explanation {
                vhost: None,
                match_path: None,
                routes: Vec::new(),
            };
        };
        let host = req.authority().unwrap_or("");
        let dm = domain_match(vhost, host);
        let is_connect = req.method().eq_ignore_ascii_case("CONNECT");
        let raw = req.path_and_query();
        let (full, mp): (Option<Cow<'_, str>>, Option<Cow<'_, str>>) = match raw {
            None => (None, None),
            Some(p) => match vhost.path_policy() {
                Some(policy) if !is_connect => match policy.apply(p) {
                    PathOutcome::Forward { path, match_path } => (Some(path), Some(match_path)),
                    _ => (None, None),
                },
                _ => (Some(Cow::Borrowed(p)), Some(Cow::Borrowed(p))),
            },
        };
        let match_path = mp.as_deref().map(|m| {
            let end = m.find(['?', '#']).unwrap_or(m.len());
            m[..end].to_string()
        });
        let query = full
            .as_deref()
            .and_then(|p| p.find('?').map(|i| p[i + 1..].to_string()));
        let mut routes = Vec::new();
        let taken = decision.route().map(|m| m.route_id());
        let scanned = matches!(decision, Decision::Route(_) | Decision::NotFound { .. });
        for r in vhost.routes().iter().filter(|_| scanned) {
            let failed = self.first_failure(
                r,
                req,
                (full.as_deref(), match_path.as_deref(), query.as_deref()),
                is_connect,
                random_value,
            );
            let done = Some(r.id()) == taken;
            routes.push(RouteVerdict { route: r, failed });
            if done {
                break;
            }
        }
        Explanation {
            vhost: Some((vhost, dm)),
            match_path,
            routes,
        }
    }

    fn first_failure<R: RequestView + ?Sized>(
        &self,
        r: &RouteEntry,
        req: &R,
        (full, match_path, query): (Option<&str>, Option<&str>, Option<&str>),
        is_connect: bool,
        random_value: u64,
    ) -> Option<String> {
        if let PathSpec::Connect = r.path {
            if !is_connect {
                return Some("method is not CONNECT".into());
            }
        } else if match_path.is_none() {
            return Some("request has no path".into());
        }
        if let Some((n, d)) = r.runtime_fraction {
            if random_value % d >= u64::from(n) {
                return Some(format!(
                    "runtime_fraction {n}/{d} excludes random value {random_value}"
                ));
            }
        }
        let hidden = self.hidden_headers(req);
        if r.grpc && !matchers::is_grpc(req, hidden) {
            return Some("not a gRPC request (content-type)".into());
        }
        for h in r.headers.iter() {
            if !h.matches(req, full, &mut crate::request::Joined::new(), hidden) {
                let what = match &h.test {
                    HeaderTest::Present(true) => "is absent",
                    HeaderTest::Present(false) => "is present",
                    HeaderTest::Value(_) => "value does not match",
                    HeaderTest::Range(..) => "value is not in range",
                };
                let inv = if h.invert { " (inverted)" } else { "" };
                return Some(format!("header {:?} {what}{inv}", h.name));
            }
        }
        for q in r.query.iter() {
            if !q.matches(query) {
                return Some(format!("query parameter {:?} does not match", q.name));
            }
        }
        let mut caps = [(0, 0); crate::template::MAX_VARIABLES];
        let ignore = self.ignores_path_parameters();
        let p = match_path.unwrap_or("");
        let p = if ignore {
            p.find(';').map_or(p, |i| &p[..i])
        } else {
            p
        };
        if !r.path_matches(p, &mut caps) {
            return Some(path_reason(r));
        }
        None
    }
}
