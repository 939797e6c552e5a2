//! Routing allocates nothing: a counting global allocator watches a loop of
//! a few thousand varied decisions (every path matcher kind, misses, header
//! and query conditions, repeated headers, weighted clusters, wildcard
//! virtual hosts) and must see zero allocations, on the thread that built
//! the table and on two more routing at the same time; and, through
//! `RouteTable::route_in` and a reused scratch, for requests whose path or
//! host normalization changes or that need a copy past 256 bytes; and a
//! local rate limit check (without descriptors) and the timeouts after
//! the decision.
//! This file is its own test binary so that no other test shares the
//! allocator; each measuring thread counts only its own allocations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use rauta_router::config::{
    Empty, HeaderMatcher, HostNormalization, QueryParameterMatcher, Route, RouteConfig, RouteMatch,
    VirtualHost,
};
use rauta_router::{BuildOptions, Decision, Request, RouteScratch, RouteTable};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    // Per thread: tests run side by side in this binary.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn note() {
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counter only touches const-initialised thread-local `Cell`s, which
// never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as ours, passed through.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours, passed through.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as ours, passed through.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: same contract as ours, passed through.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `f` on this thread.
fn allocations<T>(f: impl FnOnce() -> T) -> (usize, T) {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    let out = f();
    COUNTING.with(|c| c.set(false));
    (ALLOCATIONS.with(Cell::get), out)
}

fn connect_route() -> Route {
    let mut m = RouteMatch::default();
    m.connect_matcher = Some(Empty::default());
    let mut r = Route::default();
    r.match_ = Some(m);
    r.name("connect").cluster("tunnel")
}

fn config() -> RouteConfig {
    let mut api = VirtualHost::new("api", ["api.example.com", "api.example.org"])
        .route(connect_route())
        .route(Route::path("/healthz").name("health").cluster("health"))
        .route(
            Route::path("/Login")
                .case_insensitive()
                .name("login")
                .cluster("auth"),
        )
        .route(
            Route::prefix("/admin")
                .header(HeaderMatcher::exact("x-role", "admin"))
                .name("admin")
                .cluster("admin"),
        )
        .route(
            Route::path_separated_prefix("/v1/users")
                .query(QueryParameterMatcher::exact("beta", "1"))
                .name("users-beta")
                .cluster("users-beta"),
        )
        .route(
            Route::path_separated_prefix("/v1/users")
                .name("users")
                .cluster("users"),
        )
        .route(
            Route::template("/repos/{owner}/{repo}/issues/{number}")
                .name("issue")
                .cluster("issues"),
        )
        .route(
            Route::template("/Static/**")
                .case_insensitive()
                .name("static")
                .cluster("cdn"),
        )
        .route(
            Route::regex("/orders/[0-9]+")
                .name("order")
                .cluster("orders"),
        )
        .route(Route::regex(".*\\.(png|jpg)").name("images").cluster("cdn"))
        .route(
            Route::prefix("/canary")
                .header(HeaderMatcher::regex("x-user", "[0-9,]+[02468]"))
                .name("canary")
                .weighted([("canary-a", 90), ("canary-b", 10)]),
        )
        .route(
            Route::prefix("/split")
                .name("split")
                .weighted([("a", 1), ("b", 1), ("c", 2)]),
        );
    for i in 0..200 {
        api = api.route(Route::path(format!("/filler/{i}")).cluster("filler"));
    }
    RouteConfig::new()
        .virtual_host(api)
        .virtual_host(
            VirtualHost::new("wild", ["*.example.com", "www.*"])
                .route(Route::prefix("/").name("wild").cluster("wild")),
        )
        .virtual_host(
            VirtualHost::new("default", ["*"]).route(Route::path("/").name("root").cluster("root")),
        )
}

fn requests() -> Vec<Request> {
    let mut connect = Request::new("CONNECT", "api.example.com", "");
    connect.path = None;
    let host = "api.example.com";
    vec![
        connect,
        Request::get(host, "/healthz"),
        Request::get("API.Example.ORG", "/LOGIN"),
        Request::get(host, "/admin/panel").header("x-role", "admin"),
        Request::get(host, "/admin/panel"),
        Request::get(host, "/v1/users/7?beta=1"),
        Request::get(host, "/v1/users?beta=2"),
        Request::get(host, "/v1/usersx"),
        Request::get(host, "/repos/rauta/router/issues/3"),
        Request::get(host, "/repos/rauta/router/pulls/3"),
        Request::get(host, "/Static/css/site.css"),
        Request::get(host, "/orders/12345"),
        Request::get(host, "/orders/abc"),
        Request::get(host, "/gallery/cat.png"),
        Request::get(host, "/canary/x").header("x-user", "1234"),
        Request::get(host, "/canary/x").header("x-user", "1233"),
        Request::get(host, "/split/x"),
        Request::get(host, "/filler/150"),
        Request::get(host, "/nothing/here"),
        Request::get("shop.example.com", "/cart"),
        Request::get("www.example.net", "/"),
        Request::get("elsewhere.test", "/"),
        Request::get("elsewhere.test", "/missing"),
        // Repeated headers: matchers join them on the stack.
        Request::get(host, "/admin/panel")
            .header("x-role", "user")
            .header("x-role", "admin")
            .header("x-role", "root"),
        Request::get(host, "/canary/x")
            .header("x-user", "12")
            .header("x-user", "34")
            .header("x-user", "56")
            .header("x-user", "78"),
    ]
}

/// Routes every request `rounds` times; returns how many found a route.
fn route_all(table: &RouteTable, reqs: &[Request], rounds: u64) -> usize {
    let mut routed = 0;
    for round in 0..rounds {
        for r in reqs {
            if let Decision::Route(m) = table.route(r, round.wrapping_mul(0x9e37_79b9_7f4a_7c15)) {
                routed += usize::from(m.cluster().is_some());
            }
        }
    }
    routed
}

#[test]
fn routing_allocates_nothing() {
    // The counter works: this must be seen.
    let (seen, v) = allocations(|| vec![1u8; 16]);
    assert!(seen >= 1, "the counting allocator saw no allocation");
    drop(v);

    let reqs = requests();
    for opts in [
        BuildOptions::default(),
        BuildOptions::default().raw_paths(true),
    ] {
        let table = RouteTable::build_with(config(), &opts).expect("valid config");
        // The decisions are the expected ones (and agree with the scan).
        let names: Vec<String> = reqs
            .iter()
            .map(|r| match table.route(r, 0) {
                Decision::Route(m) => {
                    let slow = table.route_linear(r, 0);
                    assert_eq!(slow.route().map(|s| s.route_id()), Some(m.route_id()));
                    m.route_name().to_owned()
                }
                other => {
                    assert!(table.route_linear(r, 0).route().is_none());
                    format!("{:?}", std::mem::discriminant(&other))
                }
            })
            .collect();
        assert_eq!(names[0], "connect");
        assert_eq!(names[2], "login");
        assert_eq!(names[8], "issue");
        assert_eq!(names[10], "static");
        assert_eq!(names[13], "images");
        assert_eq!(names[14], "canary");
        assert_eq!(names[17], "routes[162]");
        assert_eq!(names[19], "wild");
        assert_eq!(names[21], "root");
        assert_eq!(names[24], "canary", "four values joined");

        // Warm up: the regex engines create their per-thread scratch space
        // on first use.
        route_all(&table, &reqs, 2);
        let rounds = 200;
        let (allocs, routed) = allocations(|| route_all(&table, &reqs, rounds));
        assert!(routed > 0);
        assert_eq!(
            allocs,
            0,
            "{allocs} allocations in {} decisions",
            rounds as usize * reqs.len()
        );

        // Other threads routing on the same table at the same time: each
        // searches the regexes with a copy of its own (the first thread
        // owns the originals), so none allocates once warm, however their
        // searches overlap.
        let start = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        route_all(&table, &reqs, 2);
                        start.wait();
                        allocations(|| route_all(&table, &reqs, rounds))
                    })
                })
                .collect();
            for w in workers {
                let (allocs, routed) = w.join().unwrap();
                assert!(routed > 0);
                assert_eq!(allocs, 0, "{allocs} allocations on another thread");
            }
        });
    }
}

/// Requests that the safe path policy or host normalization changes.
fn changed_requests() -> Vec<Request> {
    let host = "api.example.com";
    let deep = format!("{}{}/healthz", "/x".repeat(40), "/..".repeat(40));
    vec![
        Request::get(host, "/v1//users/7"),
        Request::get(host, "/public/../healthz"),
        Request::get(host, "/Static/%63ss/./site.css"),
        Request::get(host, "/repos/rauta/router/issues/3;v=1"),
        Request::get(host, "/v1/users/./7?beta=1"),
        Request::get(host, "/orders/%31%32"),
        Request::get(host, &deep),
        // A dot before a kept port, before a stripped one, at the end.
        Request::get("api.example.com.:443", "/healthz"),
        Request::get("API.example.com.:8080", "/v1/users"),
        Request::get("shop.example.com.", "/cart"),
        Request::get("api.example.com.:443", "/a/../v1//users"),
        // Copies longer than the stack buffers: a repeated header that a
        // matcher joins, a mixed-case host.
        Request::get(host, "/canary/x")
            .header("x-user", "1".repeat(200))
            .header("x-user", "2".repeat(200)),
        Request::get(format!("{}.Example.com", "W".repeat(300)), "/cart"),
    ]
}

/// Routes every request `rounds` times through one scratch; returns how
/// many found a route.
fn route_all_in(
    table: &RouteTable,
    reqs: &[Request],
    rounds: u64,
    scratch: &mut RouteScratch,
) -> usize {
    let mut routed = 0;
    for round in 0..rounds {
        for r in reqs {
            let random = round.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            if let Decision::Route(m) = table.route_in(r, random, scratch) {
                routed += usize::from(m.cluster().is_some());
            }
        }
    }
    routed
}

#[test]
fn routing_in_a_scratch_allocates_nothing_when_the_path_or_host_changes() {
    let reqs: Vec<Request> = changed_requests().into_iter().chain(requests()).collect();
    for ignore_port in [false, true] {
        let mut cfg = config();
        let mut norm = HostNormalization::default();
        norm.strip_trailing_host_dot = true;
        norm.strip_matching_host_port = Some(8080);
        cfg.host_normalization = Some(norm);
        cfg.ignore_port_in_host_matching = Some(ignore_port);
        let table = RouteTable::build(cfg).expect("valid config");
        let mut scratch = RouteScratch::new();
        // The same decisions as `route`, which allocates for these.
        for r in &reqs {
            let fresh = table.route(r, 7);
            let fresh = fresh.route().map(|m| {
                (
                    m.route_name().to_owned(),
                    m.host().to_owned(),
                    m.path().to_owned(),
                )
            });
            let decision = table.route_in(r, 7, &mut scratch);
            let reused = decision
                .route()
                .map(|m| (m.route_name(), m.host(), m.path()));
            assert_eq!(
                reused,
                fresh
                    .as_ref()
                    .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str())),
                "{r:?}"
            );
        }
        let name = |i: usize| {
            let d = table.route(&reqs[i], 0);
            d.route().map(|m| m.route_name().to_owned())
        };
        assert_eq!(name(1).as_deref(), Some("health"), "dot segments resolved");
        assert_eq!(
            name(3).as_deref(),
            Some("issue"),
            "parameters cut for matching"
        );
        assert_eq!(name(6).as_deref(), Some("health"), "40 segments and back");
        assert_eq!(name(11).as_deref(), Some("canary"), "joined past 256 bytes");
        assert_eq!(name(12).as_deref(), Some("wild"), "a long host, lowered");
        for one in [&reqs[..11], &reqs[11..12], &reqs[12..13]] {
            let (allocs, _) = allocations(|| route_all(&table, one, 1));
            assert!(allocs > 0, "these requests allocate without a scratch");
        }

        route_all_in(&table, &reqs, 2, &mut scratch);
        let rounds = 200;
        let (allocs, routed) = allocations(|| route_all_in(&table, &reqs, rounds, &mut scratch));
        assert!(routed > 0);
        assert_eq!(
            allocs,
            0,
            "{allocs} allocations in {} decisions (ignore port: {ignore_port})",
            rounds as usize * reqs.len()
        );
    }
}

#[test]
fn local_rate_limits_without_descriptors_allocate_nothing() {
    let table = RouteTable::from_yaml(
        r#"
virtual_hosts:
  - name: v
    domains: ["*"]
    routes:
      - match: {prefix: /}
        action: {cluster: c}
        typed_per_filter_config:
          envoy.filters.http.local_ratelimit:
            stat_prefix: p
            token_bucket: {max_tokens: 100, fill_interval: 3600s}
            filter_enabled: {default_value: {numerator: 100}}
            filter_enforced: {default_value: {numerator: 100}}
            enable_x_ratelimit_headers: DRAFT_VERSION_03
"#,
    )
    .expect("valid config");
    let req = Request::get("h", "/orders");
    let now = std::time::Instant::now();
    let check = || {
        let d = table.route(&req, 0);
        let m = d.route().expect("a route");
        let o = m
            .local_rate_limit(&req, &rauta_router::RateLimitContext::new(), now, 0)
            .expect("a limiter");
        o.verdict()
    };
    check();
    let (allocs, verdicts) = allocations(|| {
        (0..200).map(|_| check()).fold(0, |n, v| {
            n + (v == rauta_router::LocalRateLimitVerdict::Allowed) as usize
        })
    });
    assert_eq!(verdicts, 99, "100 tokens, one taken before");
    assert_eq!(allocs, 0, "{allocs} allocations in 200 checks");
}

#[test]
fn timeouts_allocate_nothing() {
    let table = RouteTable::from_yaml(
        r#"
virtual_hosts:
  - name: v
    domains: ["*"]
    routes:
      - match: {prefix: /new/}
        action:
          cluster: c
          max_stream_duration: {max_stream_duration_ms: 9000, grpc_timeout_header_max_ms: 5000}
      - match: {prefix: /}
        action:
          cluster: c
          max_grpc_timeout_ms: 0
          retry_policy: {retry_on: 5xx, per_try_timeout_ms: 100}
"#,
    )
    .expect("valid config");
    let grpc = |path: &str| {
        Request::new("POST", "h", path)
            .header("content-type", "application/grpc")
            .header("grpc-timeout", "2S")
            .header("x-envoy-upstream-rq-timeout-ms", "700")
    };
    let reqs = [grpc("/new/a"), grpc("/old"), Request::get("h", "/old")];
    let opts = rauta_router::TimeoutOptions::new().envoy_headers(true);
    let check = |req: &Request| {
        let d = table.route(req, 0);
        d.route().expect("a route").timeouts(req, &opts)
    };
    reqs.iter().for_each(|r| {
        check(r);
    });
    let (allocs, limited) = allocations(|| {
        (0..200)
            .flat_map(|_| reqs.iter().map(check))
            .filter(|t| t.global.is_some() || t.stream.is_some())
            .count()
    });
    assert_eq!(limited, 600);
    assert_eq!(allocs, 0, "{allocs} allocations in 600 computations");
}
