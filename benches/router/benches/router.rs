//! rauta-router's compiled index beside its peers, in one run:
//!
//! - `github`: the 130 GitHub API routes as URI templates, every request once
//!   per iteration, against matchit 0.9 on the same paths;
//! - `scaling`: 10 to 10,000 routes (exact, prefix, template, regex in turn)
//!   in one virtual host, the index against the ordered scan, for the last
//!   route and for random routes;
//! - `vhost`: host to virtual host among 10,000 domains (exact, suffix and
//!   prefix wildcards), against the same precedence computed Envoy's way
//!   (lower-case copy of the host, then hash maps);
//! - `decision`: a full decision with header and query conditions and a
//!   weighted cluster, the index against the ordered scan;
//! - `path`: the safe default path policy on canonical and changed
//!   request-targets, `apply` (new strings) against `apply_in` (a reused
//!   scratch).
//!
//! `scripts/bench-router.sh` runs this and writes docs/benchmarks/router.md.

// criterion_group! defines an undocumented public function.
#![allow(missing_docs)]

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rauta_bench_router::{
    decision_request, decision_table, github_matchit, github_table, scaling_path, scaling_table,
    vhost_domain, vhost_host, vhost_table,
};
use rauta_router::path::{PathOutcome, PathPolicy, PathScratch};
use rauta_router::{BuildOptions, Decision, Request, RouteScratch, RouteTable};

fn routed(d: Decision<'_>) -> usize {
    match d {
        Decision::Route(m) => m.route_id().index(),
        _ => usize::MAX,
    }
}

fn github(c: &mut Criterion) {
    let (paths, matchit) = github_matchit();
    let raw = github_table(&BuildOptions::default().raw_paths(true));
    let safe = github_table(&BuildOptions::default());
    let reqs: Vec<Request> = paths
        .iter()
        .map(|p| Request::get("api.github.com", p.as_str()))
        .collect();

    let mut g = c.benchmark_group("github");
    g.bench_function("matchit", |b| {
        b.iter(|| {
            for p in &paths {
                black_box(matchit.at(black_box(p.as_str())).expect("hit"));
            }
        })
    });
    g.bench_function("rauta-raw", |b| {
        b.iter(|| {
            for r in &reqs {
                black_box(routed(raw.route(black_box(r), 0)));
            }
        })
    });
    let vh = &raw.virtual_hosts()[0];
    g.bench_function("rauta-path-index", |b| {
        b.iter(|| {
            for p in &paths {
                black_box(vh.first_path_match(black_box(p.as_str())).map(|r| r.id()));
            }
        })
    });
    g.bench_function("rauta-safe-default", |b| {
        b.iter(|| {
            for r in &reqs {
                black_box(routed(safe.route(black_box(r), 0)));
            }
        })
    });
    g.finish();
}

/// Per-lookup cost: each iteration routes the next request of a cycle.
fn cycle<'t>(
    table: &'t RouteTable,
    reqs: &'t [Request],
    linear: bool,
) -> impl FnMut() -> usize + 't {
    let mut k = 0usize;
    move || {
        k += 1;
        if k == reqs.len() {
            k = 0;
        }
        let r = black_box(&reqs[k]);
        if linear {
            routed(table.route_linear(r, 0))
        } else {
            routed(table.route(r, 0))
        }
    }
}

fn scaling(c: &mut Criterion) {
    let mut g = c.benchmark_group("scaling");
    for n in [10usize, 100, 1_000, 10_000] {
        let table = scaling_table(n);
        let last = vec![Request::get("h", scaling_path(n - 1))];
        // A fixed pseudo-random sample of routes (64 requests).
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let random: Vec<Request> = (0..64)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                Request::get("h", scaling_path((x % n as u64) as usize))
            })
            .collect();
        if n >= 1_000 {
            g.sample_size(20);
        }
        for (name, reqs) in [("last", &last), ("random", &random)] {
            let mut f = cycle(&table, reqs, false);
            g.bench_function(BenchmarkId::new(format!("index-{name}"), n), |b| {
                b.iter(&mut f)
            });
            let mut f = cycle(&table, reqs, true);
            g.bench_function(BenchmarkId::new(format!("scan-{name}"), n), |b| {
                b.iter(&mut f)
            });
        }
    }
    g.finish();
}

/// Envoy's `findVirtualHost`: a lower-case copy of the host, the exact map,
/// then suffix and prefix wildcard maps by length, longest first, then `*`.
struct EnvoyDomains {
    exact: HashMap<String, usize>,
    suffix: BTreeMap<usize, HashMap<String, usize>>,
    prefix: BTreeMap<usize, HashMap<String, usize>>,
    default: Option<usize>,
}

impl EnvoyDomains {
    fn new<'a>(domains: impl Iterator<Item = (&'a str, usize)>) -> Self {
        let mut d = EnvoyDomains {
            exact: HashMap::new(),
            suffix: BTreeMap::new(),
            prefix: BTreeMap::new(),
            default: None,
        };
        for (dom, v) in domains {
            let dom = dom.to_ascii_lowercase();
            if dom == "*" {
                d.default = Some(v);
            } else if let Some(k) = dom.strip_prefix('*') {
                d.suffix.entry(k.len()).or_default().insert(k.to_owned(), v);
            } else if let Some(k) = dom.strip_suffix('*') {
                d.prefix.entry(k.len()).or_default().insert(k.to_owned(), v);
            } else {
                d.exact.insert(dom, v);
            }
        }
        d
    }

    fn find(&self, host: &str) -> Option<usize> {
        let host = host.to_ascii_lowercase();
        if let Some(&v) = self.exact.get(&host) {
            return Some(v);
        }
        for (len, m) in self.suffix.iter().rev() {
            if *len < host.len() {
                if let Some(&v) = m.get(&host[host.len() - len..]) {
                    return Some(v);
                }
            }
        }
        for (len, m) in self.prefix.iter().rev() {
            if *len < host.len() {
                if let Some(&v) = m.get(&host[..*len]) {
                    return Some(v);
                }
            }
        }
        self.default
    }
}

fn vhost(c: &mut Criterion) {
    // 9,999 virtual hosts with one domain each, plus `*`: 10,000 domains.
    let n = 9_999;
    let table = vhost_table(n);
    let envoy = EnvoyDomains::new(
        table
            .virtual_hosts()
            .iter()
            .flat_map(|v| v.domains().iter().map(move |d| (&**d, v.index()))),
    );
    let mut g = c.benchmark_group("vhost");
    let kinds: [(&str, Vec<String>); 4] = [
        (
            "exact",
            (0..n).step_by(3).take(64).map(vhost_host).collect(),
        ),
        (
            "suffix",
            (1..n).step_by(3).take(64).map(vhost_host).collect(),
        ),
        (
            "prefix",
            (2..n).step_by(3).take(64).map(vhost_host).collect(),
        ),
        (
            "miss",
            (0..64).map(|i| format!("host{i}.unknown.test")).collect(),
        ),
    ];
    for (kind, hosts) in &kinds {
        for h in hosts {
            assert_eq!(
                table.find_virtual_host(h).map(|v| v.index()),
                envoy.find(h),
                "{h}"
            );
        }
        let mut k = 0usize;
        g.bench_function(BenchmarkId::new("rauta", kind), |b| {
            b.iter(|| {
                k = (k + 1) % hosts.len();
                black_box(
                    table
                        .find_virtual_host(black_box(&hosts[k]))
                        .map(|v| v.index()),
                )
            })
        });
        let mut k = 0usize;
        g.bench_function(BenchmarkId::new("envoy-style", kind), |b| {
            b.iter(|| {
                k = (k + 1) % hosts.len();
                black_box(envoy.find(black_box(&hosts[k])))
            })
        });
    }
    // A whole decision for a wildcard host among the 10,000 domains.
    let req = Request::get(vhost_host(4_000), "/x");
    g.bench_function("rauta-route-suffix", |b| {
        b.iter(|| black_box(routed(table.route(black_box(&req), 0))))
    });
    let _ = vhost_domain(0);
    g.finish();
}

fn decision(c: &mut Criterion) {
    let table = decision_table(&BuildOptions::default());
    let req = decision_request();
    let http_req = http::Request::builder()
        .uri("/api/checkout/confirm?cart=8812&step=2")
        .header("host", "eu.shop.example.com")
        .header("x-env", "prod")
        .header("x-user-id", "420042")
        .header("authorization", "Bearer abc")
        .header("x-tenant", "t99")
        .header("accept", "application/json")
        .body(())
        .expect("valid request");
    assert_eq!(
        routed(table.route(&req, 7)),
        routed(table.route(&http_req, 7))
    );
    let mut g = c.benchmark_group("decision");
    let mut v = 0u64;
    g.bench_function("index", |b| {
        b.iter(|| {
            v = v.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let d = table.route(black_box(&req), v);
            black_box(d.route().and_then(|m| m.cluster()).map(str::len))
        })
    });
    g.bench_function("scan", |b| {
        b.iter(|| {
            v = v.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let d = table.route_linear(black_box(&req), v);
            black_box(d.route().and_then(|m| m.cluster()).map(str::len))
        })
    });
    g.bench_function("index-http-request", |b| {
        b.iter(|| {
            v = v.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let d = table.route(black_box(&http_req), v);
            black_box(d.route().and_then(|m| m.cluster()).map(str::len))
        })
    });
    // The same route for a path the policy changes (a dot segment, a
    // doubled slash, a parameter): new strings, or a reused scratch.
    let mut changed = req.clone();
    changed.path = Some("/api/./checkout//confirm;v=2?cart=8812&step=2".into());
    let mut scratch = RouteScratch::new();
    assert_eq!(
        routed(table.route(&changed, 7)),
        routed(table.route_in(&changed, 7, &mut scratch))
    );
    assert_eq!(
        routed(table.route(&changed, 7)),
        routed(table.route(&req, 7))
    );
    g.bench_function("index-changed-path", |b| {
        b.iter(|| {
            v = v.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let d = table.route(black_box(&changed), v);
            black_box(d.route().and_then(|m| m.cluster()).map(str::len))
        })
    });
    g.bench_function("index-changed-path-scratch", |b| {
        b.iter(|| {
            v = v.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let d = table.route_in(black_box(&changed), v, &mut scratch);
            black_box(d.route().and_then(|m| m.cluster()).map(str::len))
        })
    });
    g.finish();
}

/// Request-targets for the `path` group: (name, target).
const PATHS: [(&str, &str); 5] = [
    ("canonical", "/api/checkout/confirm?cart=8812&step=2"),
    ("dot-segments", "/public/../admin/users?x=1"),
    ("escapes", "/static/%63ss/site.css"),
    ("parameters", "/v1/users;v=1/7;x=2"),
    ("mixed", "/api/./checkout//confirm;v=2?cart=8812&step=2"),
];

fn path(c: &mut Criterion) {
    let policy = PathPolicy::safe_default();
    let mut scratch = PathScratch::default();
    let mut g = c.benchmark_group("path");
    for (name, target) in PATHS {
        assert_eq!(
            policy.apply(target),
            policy.apply_in(target, &mut scratch),
            "{target}"
        );
        // Both read what a caller reads (and `apply` frees its strings).
        let lens = |o: PathOutcome<'_>| match o {
            PathOutcome::Forward { path, match_path } => path.len() + match_path.len(),
            _ => 0,
        };
        g.bench_function(BenchmarkId::new("apply", name), |b| {
            b.iter(|| black_box(lens(policy.apply(black_box(target)))))
        });
        g.bench_function(BenchmarkId::new("apply_in", name), |b| {
            b.iter(|| black_box(lens(policy.apply_in(black_box(target), &mut scratch))))
        });
    }
    g.finish();
}

criterion_group!(benches, github, scaling, vhost, decision, path);
criterion_main!(benches);
