//! Every load-time limit at its boundary: the limit passes, one more is a
//! typed error naming the limit.

use rauta_router::config::{Limits, Route, RouteConfig, VirtualHost};
use rauta_router::{ErrorKind, RouteTable};

fn limits(f: impl FnOnce(&mut Limits)) -> Limits {
    let mut l = Limits::default();
    f(&mut l);
    l
}

fn build(cfg: RouteConfig, l: Limits) -> Result<RouteTable, rauta_router::ConfigErrors> {
    let mut cfg = cfg;
    cfg.limits = Some(l);
    RouteTable::build(cfg)
}

fn assert_limit(result: Result<RouteTable, rauta_router::ConfigErrors>, name: &str) {
    let errs = result.expect_err("over the limit must fail");
    assert!(
        errs.errors()
            .iter()
            .any(|e| e.kind() == ErrorKind::Limit && e.to_string().contains(name)),
        "{errs}"
    );
}

fn vhosts(n: usize, domains_each: usize, routes_each: usize) -> RouteConfig {
    let mut cfg = RouteConfig::new();
    for v in 0..n {
        let domains: Vec<String> = (0..domains_each)
            .map(|d| format!("h{v}-{d}.example.com"))
            .collect();
        let mut vh = VirtualHost::new(format!("v{v}"), domains);
        for r in 0..routes_each {
            vh = vh.route(
                Route::prefix(format!("/r{r}"))
                    .name(format!("r{r}"))
                    .cluster("c"),
            );
        }
        cfg = cfg.virtual_host(vh);
    }
    cfg
}

#[test]
fn virtual_hosts() {
    let l = limits(|l| l.max_virtual_hosts = 3);
    assert!(build(vhosts(3, 1, 1), l.clone()).is_ok());
    assert_limit(build(vhosts(4, 1, 1), l), "limits.max_virtual_hosts");
}

#[test]
fn domains() {
    let l = limits(|l| l.max_domains = 6);
    assert!(build(vhosts(2, 3, 1), l.clone()).is_ok());
    assert_limit(build(vhosts(1, 7, 1), l), "limits.max_domains");
}

#[test]
fn routes_per_virtual_host() {
    let l = limits(|l| l.max_routes_per_virtual_host = 5);
    assert!(build(vhosts(1, 1, 5), l.clone()).is_ok());
    assert_limit(
        build(vhosts(1, 1, 6), l),
        "limits.max_routes_per_virtual_host",
    );
}

fn with_matchers(n: usize) -> RouteConfig {
    let mut route = Route::prefix("/").name("r").cluster("c");
    for i in 0..n {
        route = if i % 2 == 0 {
            route.header(rauta_router::config::HeaderMatcher::present(format!(
                "x-{i}"
            )))
        } else {
            route.query(rauta_router::config::QueryParameterMatcher::present(
                format!("q{i}"),
            ))
        };
    }
    RouteConfig::new().virtual_host(VirtualHost::new("v", ["*"]).route(route))
}

#[test]
fn matchers_per_route() {
    let l = limits(|l| l.max_matchers_per_route = 4);
    assert!(build(with_matchers(4), l.clone()).is_ok());
    assert_limit(build(with_matchers(5), l), "limits.max_matchers_per_route");
}

fn regex_routes(n: usize, pattern: &str) -> RouteConfig {
    let mut vh = VirtualHost::new("v", ["*"]);
    for i in 0..n {
        vh = vh.route(
            Route::regex(format!("/{i}{pattern}"))
                .name(format!("r{i}"))
                .cluster("c"),
        );
    }
    RouteConfig::new().virtual_host(vh)
}

#[test]
fn regex_count() {
    let l = limits(|l| l.max_regexes = 3);
    assert!(build(regex_routes(3, "x"), l.clone()).is_ok());
    assert_limit(build(regex_routes(4, "x"), l), "limits.max_regexes");
}

#[test]
fn regex_pattern_length() {
    let l = limits(|l| l.max_regex_pattern_bytes = 10);
    // "/0" + 8 bytes = 10 bytes.
    assert!(build(regex_routes(1, "abcdefgh"), l.clone()).is_ok());
    assert_limit(
        build(regex_routes(1, "abcdefghi"), l),
        "limits.max_regex_pattern_bytes",
    );
}

#[test]
fn regex_compiled_size() {
    // The compiled size of a pattern is not a simple function of its text,
    // so the boundary is found by search and then checked on both sides.
    let pattern = "[a-z]{40}";
    let fits = |bytes: usize| {
        build(
            regex_routes(1, pattern),
            limits(|l| l.max_regex_compiled_bytes = bytes),
        )
        .is_ok()
    };
    let (mut lo, mut hi) = (1usize, 1 << 20);
    assert!(!fits(lo) && fits(hi));
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if fits(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    assert!(fits(hi));
    assert_limit(
        build(
            regex_routes(1, pattern),
            limits(|l| l.max_regex_compiled_bytes = lo),
        ),
        "limits.max_regex_compiled_bytes",
    );
}

#[test]
fn direct_response_body() {
    let cfg = |n: usize| {
        let mut c = RouteConfig::new().virtual_host(
            VirtualHost::new("v", ["*"]).route(
                Route::prefix("/")
                    .name("r")
                    .direct_response(200, "x".repeat(n)),
            ),
        );
        c.max_direct_response_body_size_bytes = Some(16);
        c
    };
    assert!(RouteTable::build(cfg(16)).is_ok());
    let e = RouteTable::build(cfg(17)).unwrap_err();
    assert!(
        e.to_string()
            .contains("response body size is 17 bytes; maximum is 16"),
        "{e}"
    );
}
