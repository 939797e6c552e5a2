//! Routing allocates nothing: a counting global allocator watches a loop of
//! a few thousand varied decisions (every path matcher kind, misses, header
//! and query conditions, weighted clusters, wildcard virtual hosts) and must
//! see zero allocations, on the thread that built the table and on two more
//! routing at the same time. This file is its own test binary so that no
//! other test shares the allocator, and only the measuring threads are
//! counted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use rauta_router::config::{
    Empty, HeaderMatcher, QueryParameterMatcher, Route, RouteConfig, RouteMatch, VirtualHost,
};
use rauta_router::{BuildOptions, Decision, Request, RouteTable};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn note() {
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counter only reads a const-initialised thread-local `Cell<bool>`, which
// never allocates.
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
    ALLOCATIONS.store(0, Ordering::SeqCst);
    COUNTING.with(|c| c.set(true));
    let out = f();
    COUNTING.with(|c| c.set(false));
    (ALLOCATIONS.load(Ordering::SeqCst), out)
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
                .header(HeaderMatcher::regex("x-user", "[0-9]+[02468]"))
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
