//! The compiled route index against the ordered scan.
//!
//! Random route tables (every path matcher kind, overlapping prefixes, case
//! flags, header and query conditions, several virtual hosts with wildcard
//! domains) and random requests built from the same alphabet, so that most
//! requests hit some route and many hit several. `RouteTable::route` (the
//! index) and `RouteTable::route_linear` (the scan) must make the same
//! decision for every request, with raw paths and with the default path
//! policy.
//!
//! CI runs 10,000 cases. A million:
//!
//! ```text
//! PROPTEST_CASES=1000000 cargo test --release -p rauta-router --test index_oracle
//! ```

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use rauta_router::config::{
    Empty, HeaderMatcher, QueryParameterMatcher, Route, RouteConfig, RouteMatch, VirtualHost,
};
use rauta_router::{BuildOptions, Decision, Request, RouteTable};

/// Path segments; upper-case twins exercise `case_sensitive: false`;
/// those with bytes outside RFC 3986's `pchar` match no template operator;
/// those with `;` carry path parameters (cut off from the first `;` when
/// the table ignores them).
const SEGS: &[&str] = &[
    "a", "b", "ab", "ba", "A", "B", "aB", "x1", "x2", "", "a^b", "[", "a;v", ";b",
];

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000)
}

fn seg() -> impl Strategy<Value = &'static str> {
    prop::sample::select(SEGS)
}

/// A path: 0..4 segments, maybe a trailing slash.
fn path() -> impl Strategy<Value = String> {
    (prop::collection::vec(seg(), 0..4), any::<bool>()).prop_map(|(segs, slash)| {
        let mut p = String::new();
        for s in segs {
            p.push('/');
            p.push_str(s);
        }
        if slash || p.is_empty() {
            p.push('/');
        }
        p
    })
}

#[derive(Debug, Clone)]
enum PathKind {
    Exact(String),
    Prefix(String),
    Separated(String),
    Regex(String),
    Template(String),
    Connect,
}

/// Regex tokens: literal pieces, classes and alternations over the alphabet.
const RX: &[&str] = &[
    "/a",
    "/b",
    "/ab",
    "/[ab]+",
    "/[a-z0-9]*",
    "/.*",
    "(/a|/b)",
    "/x[0-9]",
    "/(?i:a)",
    ".*",
    "b",
    "/[A-Z]",
    "(/ab)?",
];

/// Template segments; `V` becomes a variable, `R` a rest operator.
const TPL: &[&str] = &["a", "b", "ab", "A", "x1", "*", "V", "V"];

fn template() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop::sample::select(TPL), 0..4),
        prop::sample::select(&["", "", "/**", "/R", "/R.b", "/**b", "/"][..]),
    )
        .prop_map(|(segs, tail)| {
            let mut t = String::new();
            let mut v = 0;
            for s in segs {
                t.push('/');
                if s == "V" {
                    t.push_str(&format!("{{v{v}}}"));
                    v += 1;
                } else {
                    t.push_str(s);
                }
            }
            match tail {
                "/R" => t.push_str("/{rest=**}"),
                "/R.b" => t.push_str("/{rest=**}.b"),
                other => t.push_str(other),
            }
            if t.is_empty() {
                t.push('/');
            }
            t
        })
}

fn path_kind() -> impl Strategy<Value = PathKind> {
    prop_oneof![
        3 => path().prop_map(PathKind::Exact),
        3 => (path(), any::<prop::sample::Index>()).prop_map(|(p, i)| {
            // Any cut, mid-segment too, the empty prefix included.
            let n = i.index(p.len() + 1);
            PathKind::Prefix(p[..n].to_owned())
        }),
        2 => path().prop_map(|p| {
            let t = p.trim_end_matches('/');
            PathKind::Separated(if t.is_empty() { "/a".into() } else { t.to_owned() })
        }),
        2 => prop::collection::vec(prop::sample::select(RX), 1..4)
            .prop_map(|v| PathKind::Regex(v.concat())),
        3 => template().prop_map(PathKind::Template),
        1 => Just(PathKind::Connect),
    ]
}

#[derive(Debug, Clone)]
struct RouteSpec {
    kind: PathKind,
    case_insensitive: bool,
    headers: Vec<u8>,
    query: Vec<u8>,
    weighted: bool,
}

fn route_spec() -> impl Strategy<Value = RouteSpec> {
    (
        path_kind(),
        prop::bool::weighted(0.3),
        prop::collection::vec(0u8..5, 0..2),
        prop::collection::vec(0u8..3, 0..2),
        prop::bool::weighted(0.2),
    )
        .prop_map(
            |(kind, case_insensitive, headers, query, weighted)| RouteSpec {
                kind,
                case_insensitive,
                headers,
                query,
                weighted,
            },
        )
}

fn header(i: u8) -> HeaderMatcher {
    match i {
        0 => HeaderMatcher::exact("x-a", "1"),
        1 => HeaderMatcher::present("x-b"),
        2 => HeaderMatcher::regex("x-a", "[0-9]"),
        3 => HeaderMatcher::present("x-b").inverted(),
        _ => HeaderMatcher::exact(":method", "POST"),
    }
}

fn query(i: u8) -> QueryParameterMatcher {
    match i {
        0 => QueryParameterMatcher::exact("k", "v"),
        1 => QueryParameterMatcher::present("k"),
        _ => QueryParameterMatcher::present("q"),
    }
}

fn route(i: usize, s: &RouteSpec) -> Route {
    let mut r = match &s.kind {
        PathKind::Exact(p) => Route::path(p),
        PathKind::Prefix(p) => Route::prefix(p),
        PathKind::Separated(p) => Route::path_separated_prefix(p),
        PathKind::Regex(p) => Route::regex(p),
        PathKind::Template(t) => Route::template(t),
        PathKind::Connect => {
            let mut m = RouteMatch::default();
            m.connect_matcher = Some(Empty::default());
            let mut r = Route::default();
            r.match_ = Some(m);
            r
        }
    };
    if s.case_insensitive {
        r = r.case_insensitive();
    }
    for h in &s.headers {
        r = r.header(header(*h));
    }
    for q in &s.query {
        r = r.query(query(*q));
    }
    r = r.name(format!("r{i}"));
    if s.weighted {
        r.weighted([(format!("w{i}a"), 3), (format!("w{i}b"), 1)])
    } else {
        r.cluster(format!("c{i}"))
    }
}

/// Domains shared out among the virtual hosts (each used once).
const DOMAINS: &[&str] = &[
    "*",
    "a.com",
    "*.a.com",
    "*.b.a.com",
    "b.*",
    "b.c.*",
    "c.com",
    "*-x.com",
];

fn config(vhosts: &[Vec<RouteSpec>], domain_of: &[usize]) -> RouteConfig {
    let mut cfg = RouteConfig::new().name("oracle");
    let mut next = 0;
    for (vi, routes) in vhosts.iter().enumerate() {
        let domains: Vec<&str> = DOMAINS
            .iter()
            .zip(domain_of)
            .filter(|(_, v)| **v % vhosts.len() == vi)
            .map(|(d, _)| *d)
            .collect();
        let domains = if domains.is_empty() {
            vec![format!("only-{vi}.com")]
        } else {
            domains.iter().map(|d| d.to_string()).collect()
        };
        let mut vh = VirtualHost::new(format!("vh{vi}"), domains);
        for s in routes {
            vh = vh.route(route(next, s));
            next += 1;
        }
        cfg = cfg.virtual_host(vh);
    }
    cfg
}

const HOSTS: &[&str] = &[
    "a.com",
    "A.COM",
    "x.a.com",
    "y.b.a.com",
    "b.org",
    "b.c.d",
    "c.com",
    "q-x.com",
    "other.net",
    "a.com:80",
];

#[derive(Debug, Clone)]
struct ReqSpec {
    method: u8,
    host: usize,
    path: String,
    query: u8,
    xa: u8,
    xb: bool,
    random: u64,
}

fn req_spec() -> impl Strategy<Value = ReqSpec> {
    (
        0u8..10,
        0..HOSTS.len(),
        path(),
        0u8..5,
        0u8..3,
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(|(method, host, path, query, xa, xb, random)| ReqSpec {
            method,
            host,
            path,
            query,
            xa,
            xb,
            random,
        })
}

fn request(s: &ReqSpec) -> Request {
    let method = match s.method {
        0 => "CONNECT",
        1 | 2 => "POST",
        _ => "GET",
    };
    let q = ["", "?k=v", "?k=w", "?q", "?k=v&q=1#f"][usize::from(s.query)];
    let mut r = Request::new(method, HOSTS[s.host], format!("{}{q}", s.path));
    if s.method == 0 && s.query == 4 {
        r.path = None;
    }
    match s.xa {
        1 => r = r.header("x-a", "1"),
        2 => r = r.header("x-a", "2"),
        _ => {}
    }
    if s.xb {
        r = r.header("x-b", "")
    }
    r
}

/// Everything that a caller can observe of a decision.
fn summary(d: &Decision<'_>) -> String {
    match d {
        Decision::Route(m) => format!(
            "route {} {} cluster={:?} entry={:?} rewrite={:?} redirect={:?}",
            m.route_id(),
            m.route_name(),
            m.cluster(),
            m.weighted_entry(),
            m.rewritten_path(),
            m.redirect_location(),
        ),
        other => format!("{other:?}"),
    }
}

fn check(table: &RouteTable, reqs: &[ReqSpec]) -> Result<(), TestCaseError> {
    for s in reqs {
        let req = request(s);
        let fast = table.route(&req, s.random);
        let slow = table.route_linear(&req, s.random);
        prop_assert_eq!(summary(&fast), summary(&slow), "request {:?}", req);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn index_agrees_with_ordered_scan(
        vhosts in prop::collection::vec(prop::collection::vec(route_spec(), 0..14), 1..4),
        domain_of in prop::collection::vec(0usize..4, DOMAINS.len()),
        reqs in prop::collection::vec(req_spec(), 24),
        ignore_params in any::<bool>(),
    ) {
        let mut cfg = config(&vhosts, &domain_of);
        cfg.ignore_path_parameters_in_path_matching = Some(ignore_params);
        let raw = RouteTable::build_with(cfg.clone(), &BuildOptions::default().raw_paths(true));
        let raw = match raw {
            Ok(t) => t,
            Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
        };
        check(&raw, &reqs)?;
        let normalized = match RouteTable::build(cfg) {
            Ok(t) => t,
            Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
        };
        check(&normalized, &reqs)?;
    }
}

/// Hand-picked overlaps where the index must not reorder anything.
#[test]
fn first_match_wins_across_structures() {
    let vh = VirtualHost::new("v", ["*"])
        .route(
            Route::prefix("/a")
                .header(HeaderMatcher::present("x-b"))
                .name("p")
                .cluster("p"),
        )
        .route(Route::regex("/a/[0-9]+").name("re").cluster("re"))
        .route(Route::template("/a/{id}").name("t").cluster("t"))
        .route(
            Route::path("/A/1")
                .case_insensitive()
                .name("e")
                .cluster("e"),
        )
        .route(Route::prefix("").name("all").cluster("all"));
    let table = RouteTable::build(RouteConfig::new().virtual_host(vh)).unwrap();
    let name = |req: &Request| -> String {
        let fast = summary(&table.route(req, 0));
        assert_eq!(fast, summary(&table.route_linear(req, 0)));
        table.route(req, 0).route().unwrap().route_name().to_owned()
    };
    assert_eq!(name(&Request::get("h", "/a/1").header("x-b", "")), "p");
    assert_eq!(name(&Request::get("h", "/a/1")), "re");
    assert_eq!(name(&Request::get("h", "/a/x")), "t");
    assert_eq!(name(&Request::get("h", "/a/1/")), "all");
    assert_eq!(name(&Request::get("h", "/A/1")), "e");
    assert_eq!(name(&Request::get("h", "/zzz")), "all");
}
