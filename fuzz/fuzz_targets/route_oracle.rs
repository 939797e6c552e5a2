//! The compiled route table against the ordered scan: the input builds a
//! table of every matcher kind over a small alphabet (so routes overlap) and
//! a set of requests; `route` and `route_linear` must agree on every one,
//! and `route_in` with one scratch reused for all of them too. Requests may
//! repeat a header (`x-k`, `cookie`), which matchers see joined.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use rauta_router::config::{HeaderMatcher, QueryParameterMatcher, Route, RouteConfig, VirtualHost};
use rauta_router::{BuildOptions, Decision, Request, RouteScratch, RouteTable};

const SEGMENTS: [&str; 6] = ["a", "b", "ab", "A", "x1", ""];
/// Header values a matcher may ask for: single ones, and the joins of
/// repeated `x-k` (commas) and `cookie` (semicolons) fields.
const HEADER_VALUES: [&str; 9] = ["a", "b", "ab", "A", "", "a,b", "a; b", "ab,a,x1", "a; ab; b"];

#[derive(Debug, Arbitrary)]
struct Spec {
    routes: Vec<RouteSpec>,
    requests: Vec<ReqSpec>,
    raw: bool,
}

#[derive(Debug, Arbitrary)]
struct RouteSpec {
    kind: u8,
    segs: Vec<u8>,
    case_insensitive: bool,
    header: Option<(bool, u8)>,
    query: Option<u8>,
    trailing: bool,
}

#[derive(Debug, Arbitrary)]
struct ReqSpec {
    segs: Vec<u8>,
    /// `(cookie?, value)` fields, in order.
    headers: Vec<(bool, u8)>,
    query: Option<u8>,
    connect: bool,
    trailing: bool,
}

fn path(segs: &[u8], trailing: bool) -> String {
    let mut p = String::new();
    for s in segs.iter().take(5) {
        p.push('/');
        p.push_str(SEGMENTS[usize::from(*s) % SEGMENTS.len()]);
    }
    if p.is_empty() || trailing {
        p.push('/');
    }
    p
}

fn route(i: usize, r: &RouteSpec) -> Route {
    let p = path(&r.segs, r.trailing);
    let base = match r.kind % 7 {
        0 => Route::prefix(p),
        1 => Route::path(p),
        2 => Route::path_separated_prefix(p.trim_end_matches('/').to_string().replace("//", "/")),
        3 => Route::regex(format!("{}[a-z0-9/]*", regex_escape(&p))),
        4 => Route::template(template(&r.segs)),
        5 => Route::prefix(""),
        _ => Route::regex(format!("(?i){}.*", regex_escape(&p))),
    };
    let mut route = base.name(format!("r{i}")).cluster(format!("c{i}"));
    if r.case_insensitive {
        route = route.case_insensitive();
    }
    if let Some((cookie, h)) = r.header {
        let name = if cookie { "cookie" } else { "x-k" };
        route = route.header(HeaderMatcher::exact(name, HEADER_VALUES[usize::from(h) % HEADER_VALUES.len()]));
    }
    if let Some(q) = r.query {
        route = route.query(QueryParameterMatcher::exact("q", SEGMENTS[usize::from(q) % SEGMENTS.len()]));
    }
    route
}

fn template(segs: &[u8]) -> String {
    let mut t = String::new();
    for (i, s) in segs.iter().take(4).enumerate() {
        t.push('/');
        match s % 6 {
            0 => t.push('*'),
            1 => t.push_str(&format!("{{v{i}}}")),
            // A variable over two segments, or over one literal one.
            2 => t.push_str(&format!("{{v{i}={}/*}}", SEGMENTS[usize::from(*s / 6) % 5])),
            3 => t.push_str(&format!("{{v{i}={}}}", SEGMENTS[usize::from(*s / 6) % 5])),
            _ => t.push_str(SEGMENTS[usize::from(*s) % 5]),
        }
    }
    if t.is_empty() {
        t.push_str("/**");
    }
    t
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '/' { c.to_string() } else { format!("\\{c}") })
        .collect()
}

fn key(d: &Decision<'_>) -> (u8, Option<usize>, Option<String>) {
    match d {
        Decision::Route(m) => (0, Some(m.route_id().index()), m.cluster().map(str::to_owned)),
        Decision::NotFound { .. } => (1, None, None),
        Decision::Reject { status, .. } => (2, Some(usize::from(*status)), None),
        Decision::PathRedirect { location, .. } => (3, None, Some(location.clone())),
        _ => (4, None, None),
    }
}

fuzz_target!(|spec: Spec| {
    let mut vhost = VirtualHost::new("v", ["*"]);
    for (i, r) in spec.routes.iter().take(40).enumerate() {
        vhost = vhost.route(route(i, r));
    }
    let Ok(table) = RouteTable::build_with(
        RouteConfig::new().virtual_host(vhost),
        &BuildOptions::default().raw_paths(spec.raw),
    ) else {
        return;
    };
    let mut scratch = RouteScratch::new();
    for (i, r) in spec.requests.iter().take(16).enumerate() {
        let mut p = path(&r.segs, r.trailing);
        if let Some(q) = r.query {
            p.push_str("?q=");
            p.push_str(SEGMENTS[usize::from(q) % SEGMENTS.len()]);
        }
        let mut req = Request::get("h", p);
        if r.connect {
            req.method = "CONNECT".into();
        }
        for &(cookie, h) in r.headers.iter().take(4) {
            let name = if cookie { "cookie" } else { "x-k" };
            req = req.header(name, SEGMENTS[usize::from(h) % SEGMENTS.len()]);
        }
        let fast = key(&table.route(&req, i as u64));
        let slow = key(&table.route_linear(&req, i as u64));
        assert_eq!(fast, slow, "index and scan disagree on {req:?}");
        let decision = table.route_in(&req, i as u64, &mut scratch);
        let reused = (
            key(&decision),
            decision.route().map(|m| (m.path().to_owned(), m.host().to_owned())),
        );
        let fresh = table.route(&req, i as u64);
        let fresh_paths = fresh
            .route()
            .map(|m| (m.path().to_owned(), m.host().to_owned()));
        assert_eq!(reused, (fast, fresh_paths), "route_in disagrees on {req:?}");
    }
});
