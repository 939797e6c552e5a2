//! A local rate limit check against governor's direct rate limiter, both
//! on the path that admits the request (a bucket that never runs out)
//! and on the one that refuses it (an empty bucket), on one thread and
//! with two threads sharing the bucket.
//!
//! RAUTA's check is `RouteMatch::local_rate_limit` on a routed request:
//! it finds the route's limiter (and whether a `FilterConfig` disables
//! the filter there), draws `filter_enabled` (and, on a refusal,
//! `filter_enforced`; both are 100% here, which needs no division), takes
//! a token and counts the outcome. The `x-ratelimit-*` figures are worked
//! out only in the variant that enables them. governor's is
//! `RateLimiter::check` on a direct (unkeyed) limiter: a token and nothing
//! else. Both read the clock once per check. The two-thread variants
//! report the wall time for each of two threads to make one check, both
//! at once (criterion's slope over samples of growing size, so the cost
//! of starting the threads for a sample drops out).
//!
//!     cargo bench -p rauta-bench-router --bench local_rate_limit

// criterion_group! defines an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use governor::{Quota, RateLimiter};
use rauta_router::{Decision, LocalRateLimitVerdict, RateLimitContext, Request, RouteTable};

/// A table whose one route has a local rate limit of `max_tokens`
/// refilled by `per_fill` every `interval`.
fn table(max_tokens: u32, per_fill: u32, interval: &str, extra: &str) -> RouteTable {
    RouteTable::from_yaml(&format!(
        r#"
virtual_hosts:
  - name: v
    domains: ["*"]
    routes:
      - match: {{prefix: /}}
        action: {{cluster: c}}
        typed_per_filter_config:
          envoy.filters.http.local_ratelimit:
            stat_prefix: bench
            token_bucket: {{max_tokens: {max_tokens}, tokens_per_fill: {per_fill}, fill_interval: {interval}}}
            filter_enabled: {{default_value: {{numerator: 100}}}}
            filter_enforced: {{default_value: {{numerator: 100}}}}
            {extra}
"#
    ))
    .expect("valid table")
}

fn checks(c: &mut Criterion) {
    let req = Request::get("h", "/orders");
    let ctx = RateLimitContext::new();
    // Admits: four billion tokens, four billion a second.
    let open = table(u32::MAX, u32::MAX, "1s", "");
    let open_headers = table(
        u32::MAX,
        u32::MAX,
        "1s",
        "enable_x_ratelimit_headers: DRAFT_VERSION_03",
    );
    // Refuses: one token an hour, taken below.
    let shut = table(1, 1, "3600s", "");
    let max = NonZeroU32::MAX;
    let g_open = RateLimiter::direct(Quota::per_second(max).allow_burst(max));
    let g_shut = RateLimiter::direct(
        Quota::with_period(std::time::Duration::from_secs(3600))
            .expect("a period")
            .allow_burst(NonZeroU32::MIN),
    );
    let _ = g_shut.check();

    let mut group = c.benchmark_group("local_rate_limit");
    // The floor both sides stand on: one clock read per check.
    group.bench_function("Instant::now alone", |b| {
        b.iter(|| black_box(Instant::now()))
    });
    for (name, t, want) in [
        ("admit", &open, LocalRateLimitVerdict::Allowed),
        (
            "admit, x-ratelimit headers",
            &open_headers,
            LocalRateLimitVerdict::Allowed,
        ),
        ("refuse", &shut, LocalRateLimitVerdict::Limited),
    ] {
        let d = t.route(&req, 0);
        let Decision::Route(m) = d else {
            panic!("no route")
        };
        let first = m
            .local_rate_limit(&req, &ctx, Instant::now(), 0)
            .map(|o| o.verdict());
        assert!(first.is_some());
        assert_eq!(
            m.local_rate_limit(&req, &ctx, Instant::now(), 0)
                .map(|o| o.verdict()),
            Some(want)
        );
        group.bench_function(format!("rauta {name}"), |b| {
            b.iter(|| {
                let o = m.local_rate_limit(black_box(&req), &ctx, Instant::now(), 0);
                black_box(o.map(|o| (o.verdict(), o.rate_limit_headers())))
            })
        });
        if name.contains("headers") {
            continue;
        }
        let g = if name == "admit" { &g_open } else { &g_shut };
        assert_eq!(g.check().is_ok(), name == "admit");
        group.bench_function(format!("governor {name}"), |b| {
            b.iter(|| black_box(g.check().is_ok()))
        });
    }
    // Two threads on one bucket: the time for both to make `n` checks each.
    let d = open.route(&req, 0);
    let m = d.route().expect("a route");
    group.bench_function("rauta admit, 2 threads", |b| {
        b.iter_custom(|n| {
            two_threads(n, || {
                black_box(m.local_rate_limit(&req, &ctx, Instant::now(), 0).is_some());
            })
        })
    });
    group.bench_function("governor admit, 2 threads", |b| {
        b.iter_custom(|n| {
            two_threads(n, || {
                black_box(g_open.check().is_ok());
            })
        })
    });
    group.finish();
}

/// The time two threads take to run `check` `n` times each.
fn two_threads(n: u64, check: impl Fn() + Sync) -> std::time::Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| (0..n).for_each(|_| check()));
        }
    });
    start.elapsed()
}

criterion_group!(benches, checks);
criterion_main!(benches);
