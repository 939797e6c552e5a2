//! Local rate limits: Envoy's `envoy.filters.http.local_ratelimit`
//! per-route configurations, their token buckets and the filter's
//! decisions. Time is given, never read: every figure here is exact.

use std::time::{Duration, Instant};

use rauta_router::config::RouteConfig;
use rauta_router::{
    FormatContext, LocalRateLimitVerdict as V, RateLimitContext, Request, RouteTable,
};

fn table(yaml: &str) -> RouteTable {
    RouteTable::from_yaml(yaml).unwrap_or_else(|e| panic!("{e}"))
}

/// The verdict for `req` at `at`, with the random value `random`.
fn verdict(t: &RouteTable, req: &Request, at: Instant, random: u64) -> Option<V> {
    let d = t.route(req, random);
    let m = d.route().expect("a route");
    m.local_rate_limit(req, &RateLimitContext::new(), at, random)
        .map(|o| o.verdict())
}

/// Settings that limit every request they see.
const ON: &str = "filter_enabled: {default_value: {numerator: 100}}, filter_enforced: {default_value: {numerator: 100}}";

fn limit(prefix: &str, tokens: u32, interval: &str, extra: &str) -> String {
    format!(
        "{{stat_prefix: {prefix}, token_bucket: {{max_tokens: {tokens}, fill_interval: {interval}}}, {ON}{extra}}}"
    )
}

/// A table of one route (`action`) with the local rate limit `limit`.
fn one_route(action: &str, limit: &str) -> String {
    format!(
        "virtual_hosts: [{{name: v, domains: ['*'], routes: [{{name: r, match: {{prefix: /}}, action: {action}, typed_per_filter_config: {{envoy.filters.http.local_ratelimit: {limit}}}}}]}}]"
    )
}

#[test]
fn the_most_specific_level_decides_and_each_level_has_its_own_buckets() {
    let yaml = format!(
        r#"
typed_per_filter_config:
  envoy.filters.http.local_ratelimit: {global}
virtual_hosts:
  - name: api
    domains: [api]
    typed_per_filter_config:
      envoy.filters.http.local_ratelimit: {vhost}
    routes:
      - match: {{prefix: /route}}
        action: {{cluster: c}}
        typed_per_filter_config:
          envoy.filters.http.local_ratelimit: {route}
      - match: {{prefix: /split}}
        action:
          weighted_clusters:
            clusters:
              - name: a
                weight: 1
                typed_per_filter_config:
                  envoy.filters.http.local_ratelimit: {entry}
      - match: {{prefix: /off}}
        action: {{cluster: c}}
        typed_per_filter_config:
          envoy.filters.http.local_ratelimit:
            "@type": type.googleapis.com/envoy.config.route.v3.FilterConfig
            disabled: true
      - match: {{prefix: /wrapped}}
        action: {{cluster: c}}
        typed_per_filter_config:
          envoy.filters.http.local_ratelimit:
            "@type": type.googleapis.com/envoy.config.route.v3.FilterConfig
            config: {wrapped}
      - match: {{prefix: /}}
        action: {{cluster: c}}
  - name: other
    domains: ["*"]
    routes:
      - {{match: {{prefix: /}}, action: {{cluster: c}}}}
"#,
        global = limit("global", 1, "1s", ""),
        vhost = limit("vhost", 2, "1s", ""),
        route = limit("route", 3, "1s", ""),
        entry = limit("entry", 4, "1s", ""),
        wrapped = limit("wrapped", 5, "1s", ""),
    );
    let t = table(&yaml);
    let t0 = Instant::now();
    let prefix = |host: &str, path: &str| {
        let req = Request::get(host, path);
        let d = t.route(&req, 0);
        let m = d.route().unwrap();
        m.local_rate_limiter().map(|l| l.stat_prefix().to_owned())
    };
    assert_eq!(prefix("api", "/route").as_deref(), Some("route"));
    assert_eq!(prefix("api", "/split").as_deref(), Some("entry"));
    assert_eq!(prefix("api", "/wrapped").as_deref(), Some("wrapped"));
    assert_eq!(prefix("api", "/x").as_deref(), Some("vhost"));
    assert_eq!(prefix("other", "/x").as_deref(), Some("global"));
    assert_eq!(prefix("api", "/off"), None);
    // A level's bucket is shared by every request that reaches it, and
    // by no other level.
    let allowed = |host: &str, path: &str| {
        let req = Request::get(host, path);
        (0..10)
            .filter(|_| verdict(&t, &req, t0, 0) == Some(V::Allowed))
            .count()
    };
    assert_eq!(allowed("api", "/route"), 3);
    assert_eq!(allowed("api", "/split"), 4);
    assert_eq!(allowed("api", "/wrapped"), 5);
    assert_eq!(allowed("api", "/x") + allowed("api", "/y"), 2);
    assert_eq!(allowed("other", "/x"), 1);
    assert_eq!(
        verdict(&t, &Request::get("api", "/off"), t0, 0),
        None,
        "a disabled filter does not limit"
    );
    // Every level's limiter, with its counters.
    let counts: Vec<(String, u64, u64, u64)> = t
        .local_rate_limiters()
        .map(|l| {
            let c = l.counts();
            (l.stat_prefix().to_owned(), c.enabled, c.ok, c.enforced)
        })
        .collect();
    let want = [
        ("global", 10, 1, 9),
        ("vhost", 20, 2, 18),
        ("route", 10, 3, 7),
        ("entry", 10, 4, 6),
        ("wrapped", 10, 5, 5),
    ];
    let want: Vec<_> = want
        .iter()
        .map(|(p, e, o, f)| (p.to_string(), *e, *o, *f))
        .collect();
    assert_eq!(counts, want);
}

#[test]
fn tokens_come_back_over_the_fill_interval() {
    let t = table(&one_route(
        "{cluster: c}",
        &format!("{{stat_prefix: p, token_bucket: {{max_tokens: 4, tokens_per_fill: 2, fill_interval: 1s}}, {ON}}}"),
    ));
    let req = Request::get("h", "/");
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let run = |ms: u64, n: usize| -> Vec<V> {
        (0..n)
            .map(|_| verdict(&t, &req, at(ms), 0).unwrap())
            .collect()
    };
    assert_eq!(
        run(0, 5),
        [V::Allowed, V::Allowed, V::Allowed, V::Allowed, V::Limited]
    );
    // Two per second: one every 500 ms.
    assert_eq!(run(499, 1), [V::Limited]);
    assert_eq!(run(500, 2), [V::Allowed, V::Limited]);
    assert_eq!(run(1500, 3), [V::Allowed, V::Allowed, V::Limited]);
    // A long idle time fills the bucket to its capacity only.
    assert_eq!(
        run(60_000, 5).iter().filter(|v| **v == V::Allowed).count(),
        4
    );
}

#[test]
fn filter_enabled_and_filter_enforced_default_to_none() {
    let yaml = |extra: &str| {
        format!(
            r#"
virtual_hosts:
  - name: v
    domains: ["*"]
    routes:
      - match: {{prefix: /}}
        action: {{cluster: c}}
        typed_per_filter_config:
          envoy.filters.http.local_ratelimit:
            stat_prefix: p
            token_bucket: {{max_tokens: 1, fill_interval: 60s}}
            request_headers_to_add_when_not_enforced:
              - {{key: x-limited, value: "%REQ(:path)%"}}
            {extra}
"#
        )
    };
    let req = Request::get("h", "/orders");
    let t0 = Instant::now();
    // No filter_enabled: the filter looks at nothing.
    let t = table(&yaml(""));
    for _ in 0..3 {
        assert_eq!(verdict(&t, &req, t0, 0), Some(V::NotEnabled));
    }
    // Enabled, not enforced: a limited request goes on, marked.
    let t = table(&yaml("filter_enabled: {default_value: {numerator: 100}}"));
    assert_eq!(verdict(&t, &req, t0, 0), Some(V::Allowed));
    let d = t.route(&req, 0);
    let m = d.route().unwrap();
    let o = m
        .local_rate_limit(&req, &RateLimitContext::new(), t0, 0)
        .unwrap();
    assert_eq!(o.verdict(), V::LimitedNotEnforced);
    let c = o.limiter().counts();
    assert_eq!((c.enabled, c.ok, c.rate_limited, c.enforced), (2, 1, 1, 0));
    let mut headers = http::HeaderMap::new();
    o.apply_request_headers(&mut headers, &FormatContext::new());
    assert_eq!(headers["x-limited"], "/orders");
    // Half enabled: the draw decides, and a request it skips takes no
    // token.
    let t = table(&yaml(
        "filter_enabled: {default_value: {numerator: 50}}\n            filter_enforced: {default_value: {numerator: 100}}",
    ));
    assert_eq!(verdict(&t, &req, t0, 50), Some(V::NotEnabled));
    assert_eq!(verdict(&t, &req, t0, 199), Some(V::NotEnabled));
    assert_eq!(verdict(&t, &req, t0, 49), Some(V::Allowed));
    assert_eq!(verdict(&t, &req, t0, 100), Some(V::Limited));
}

#[test]
fn enforcement_is_drawn_apart_from_enabling() {
    // filter_enabled takes values below 50 of 100; filter_enforced half of
    // what it takes, by an independent draw.
    let t = table(
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
            token_bucket: {max_tokens: 1, fill_interval: 3600s}
            filter_enabled: {default_value: {numerator: 50}}
            filter_enforced: {default_value: {numerator: 50}}
"#,
    );
    let req = Request::get("h", "/");
    let t0 = Instant::now();
    assert_eq!(verdict(&t, &req, t0, 0), Some(V::Allowed));
    let (mut limited, mut not_enforced) = (0, 0);
    for r in 0..10_000u64 {
        match verdict(&t, &req, t0, r * 100) {
            Some(V::Limited) => limited += 1,
            Some(V::LimitedNotEnforced) => not_enforced += 1,
            other => panic!("{other:?}"),
        }
    }
    // Every value is below 50 of 100 (r * 100): all enabled; the
    // enforcement draw splits them.
    assert!((4500..5500).contains(&limited), "{limited}");
    assert_eq!(limited + not_enforced, 10_000);
}

const DESCRIPTORS: &str = r#"
virtual_hosts:
  - name: v
    domains: ["*"]
    rate_limits:
      - actions: [{generic_key: {descriptor_value: vhost}}]
    routes:
      - match: {prefix: /login}
        action:
          cluster: auth
          rate_limits:
            - actions: [{request_headers: {header_name: x-user, descriptor_key: user}}]
            - actions: [{generic_key: {descriptor_value: login}}]
            - actions: [{generic_key: {descriptor_value: "off"}}]
              disable_key: login-off
            - stage: 1
              actions: [{generic_key: {descriptor_value: late}}]
        typed_per_filter_config:
          envoy.filters.http.local_ratelimit:
            stat_prefix: login
            token_bucket: {max_tokens: 100, fill_interval: 1s}
            filter_enabled: {default_value: {numerator: 100}}
            filter_enforced: {default_value: {numerator: 100}}
            enable_x_ratelimit_headers: DRAFT_VERSION_03
            always_consume_default_token_bucket: ALWAYS
            descriptors:
              - entries: [{key: user, value: alice}]
                token_bucket: {max_tokens: 2, tokens_per_fill: 2, fill_interval: 1s}
              - entries: [{key: generic_key, value: login}]
                token_bucket: {max_tokens: 3, tokens_per_fill: 1, fill_interval: 1s}
              - entries: [{key: generic_key, value: "off"}]
                token_bucket: {max_tokens: 1, fill_interval: 60s}
              - entries: [{key: generic_key, value: late}]
                token_bucket: {max_tokens: 1, fill_interval: 60s}
              - entries: [{key: generic_key, value: vhost}]
                token_bucket: {max_tokens: 1, fill_interval: 60s}
"#;

fn descriptors_table(always: &str, vh: &str) -> RouteTable {
    let yaml = DESCRIPTORS.replace("ALWAYS", always).replace(
        "            descriptors:\n",
        &format!("            {vh}\n            descriptors:\n"),
    );
    table(&yaml)
}

#[test]
fn descriptors_draw_from_their_own_buckets_slowest_first() {
    let t = descriptors_table("false", "");
    let t0 = Instant::now();
    let outcome = |req: &Request| {
        let d = t.route(req, 0);
        let m = d.route().unwrap();
        let o = m
            .local_rate_limit(req, &RateLimitContext::new(), t0, 0)
            .unwrap();
        let h = o.rate_limit_headers().unwrap();
        (o.verdict(), h.limit, h.remaining)
    };
    let alice = Request::get("h", "/login").header("x-user", "alice");
    let bob = Request::get("h", "/login").header("x-user", "bob");
    // Alice matches `user=alice` (2 a second) and `generic_key=login`
    // (1 a second, so drawn from first and reported); the disabled and
    // stage-1 rate limits give no descriptor, and the route's rate limits
    // override the virtual host's.
    assert_eq!(outcome(&alice), (V::Allowed, 3, 2));
    assert_eq!(outcome(&alice), (V::Allowed, 3, 1));
    // `user=alice` runs out first.
    assert_eq!(outcome(&alice), (V::Limited, 2, 0));
    // Its refusal came after `login` gave its token, as in Envoy.
    assert_eq!(outcome(&bob), (V::Limited, 3, 0));
    // The default bucket was never drawn from: every request matched.
    let d = t.route(&bob, 0);
    let (max, left) = d
        .route()
        .unwrap()
        .local_rate_limiter()
        .unwrap()
        .default_bucket(t0);
    assert_eq!((max, left), (100, 100));
}

#[test]
fn the_default_bucket_is_drawn_from_too_unless_told_otherwise() {
    let t = descriptors_table("true", "");
    let t0 = Instant::now();
    let bob = Request::get("h", "/login").header("x-user", "bob");
    for _ in 0..3 {
        assert_eq!(verdict(&t, &bob, t0, 0), Some(V::Allowed));
    }
    let d = t.route(&bob, 0);
    let l = d.route().unwrap().local_rate_limiter().unwrap();
    assert_eq!(l.default_bucket(t0), (100, 97));
}

#[test]
fn vh_rate_limits_of_the_local_filter_bring_in_the_virtual_hosts() {
    let t0 = Instant::now();
    let carol = Request::get("h", "/login").header("x-user", "carol");
    // INCLUDE: the virtual host's `generic_key=vhost` (1 token) is
    // matched too, and is the slowest.
    let t = descriptors_table("false", "vh_rate_limits: INCLUDE");
    assert_eq!(verdict(&t, &carol, t0, 0), Some(V::Allowed));
    assert_eq!(verdict(&t, &carol, t0, 0), Some(V::Limited));
    // By number, as protobuf JSON allows: 1 is INCLUDE.
    let t = descriptors_table("false", "vh_rate_limits: 1");
    assert_eq!(verdict(&t, &carol, t0, 0), Some(V::Allowed));
    assert_eq!(verdict(&t, &carol, t0, 0), Some(V::Limited));
    // OVERRIDE: the route has rate limits, so the virtual host's are not
    // used; only `generic_key=login` (3 tokens) matches.
    let t = descriptors_table("false", "vh_rate_limits: OVERRIDE");
    for _ in 0..3 {
        assert_eq!(verdict(&t, &carol, t0, 0), Some(V::Allowed));
    }
    assert_eq!(verdict(&t, &carol, t0, 0), Some(V::Limited));
    // The route's `include_vh_rate_limits` brings them in whatever the
    // filter says, but IGNORE keeps them out otherwise.
    let with_include = DESCRIPTORS.replace(
        "          cluster: auth\n",
        "          cluster: auth\n          include_vh_rate_limits: true\n",
    );
    let t = table(&with_include.replace("ALWAYS", "false").replace(
        "            descriptors:\n",
        "            vh_rate_limits: IGNORE\n            descriptors:\n",
    ));
    assert_eq!(verdict(&t, &carol, t0, 0), Some(V::Allowed));
    assert_eq!(verdict(&t, &carol, t0, 0), Some(V::Limited));
    let t = descriptors_table("false", "vh_rate_limits: 2");
    for _ in 0..3 {
        assert_eq!(verdict(&t, &carol, t0, 0), Some(V::Allowed));
    }
}

#[test]
fn descriptors_are_not_built_for_requests_the_filter_skips() {
    // With a 0% filter_enabled nothing is counted or drawn from, whatever
    // the descriptors.
    let t = table(&DESCRIPTORS.replace("ALWAYS", "true").replace(
        "filter_enabled: {default_value: {numerator: 100}}",
        "filter_enabled: {default_value: {numerator: 0}}",
    ));
    let t0 = Instant::now();
    let alice = Request::get("h", "/login").header("x-user", "alice");
    for _ in 0..5 {
        assert_eq!(verdict(&t, &alice, t0, 0), Some(V::NotEnabled));
    }
    let d = t.route(&alice, 0);
    let l = d.route().unwrap().local_rate_limiter().unwrap();
    assert_eq!(l.counts().enabled, 0);
    assert_eq!(l.default_bucket(t0), (100, 100));
}

#[test]
fn refusals_carry_the_status_and_headers() {
    let t = table(
        r#"
virtual_hosts:
  - name: v
    domains: ["*"]
    routes:
      - match: {prefix: /}
        action: {cluster: c}
        typed_per_filter_config:
          envoy.filters.http.local_ratelimit:
            "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
            stat_prefix: p
            status: {code: 503}
            token_bucket: {max_tokens: 1, fill_interval: 90s}
            filter_enabled: {default_value: {numerator: 100}}
            filter_enforced: {default_value: {numerator: 100}}
            enable_x_ratelimit_headers: 1
            rate_limited_as_resource_exhausted: true
            response_headers_to_add:
              - {header: {key: x-local-rate-limit, value: "%REQ(:authority)%"}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}
"#,
    );
    let req = Request::get("api.example", "/");
    let t0 = Instant::now();
    let d = t.route(&req, 0);
    let m = d.route().unwrap();
    let first = m
        .local_rate_limit(&req, &RateLimitContext::new(), t0, 0)
        .unwrap();
    assert_eq!(first.verdict(), V::Allowed);
    let h = first.rate_limit_headers().unwrap();
    // The last token is gone: the next comes in 90 s.
    assert_eq!((h.limit, h.remaining, h.reset), (1, 0, 90));
    let mut headers = http::HeaderMap::new();
    first.apply_response_headers(&mut headers, &FormatContext::new());
    assert!(
        headers.is_empty(),
        "only refusals get the configured headers"
    );

    let later = t0 + Duration::from_secs(30);
    let second = m
        .local_rate_limit(&req, &RateLimitContext::new(), later, 0)
        .unwrap();
    assert_eq!(second.verdict(), V::Limited);
    assert_eq!(second.status(), 503);
    assert_eq!(second.limiter().grpc_status(), 8);
    let mut headers = http::HeaderMap::new();
    second.apply_response_headers(&mut headers, &FormatContext::new());
    assert_eq!(headers["x-local-rate-limit"], "api.example");
    assert_eq!(headers["x-ratelimit-limit"], "1");
    assert_eq!(headers["x-ratelimit-remaining"], "0");
    // 60 s of 90 to go.
    assert_eq!(headers["x-ratelimit-reset"], "60");
}

#[test]
fn a_status_below_400_means_429() {
    let t = table(&one_route(
        "{cluster: c}",
        &limit("p", 1, "1s", ", status: {code: 200}"),
    ));
    let req = Request::get("h", "/");
    let d = t.route(&req, 0);
    let l = d.route().unwrap().local_rate_limiter().unwrap();
    assert_eq!(l.status(), 429);
    assert_eq!(l.grpc_status(), 14);
}

#[test]
fn redirects_and_direct_responses_are_limited_without_descriptors() {
    let t = table(&format!(
        r#"
typed_per_filter_config:
  envoy.filters.http.local_ratelimit: {}
virtual_hosts:
  - name: v
    domains: ["*"]
    routes:
      - match: {{prefix: /old}}
        action: {{redirect: {{path_redirect: /new}}}}
      - match: {{prefix: /}}
        action: {{direct_response: {{status: 200, body: ok}}}}
"#,
        limit(
            "p",
            2,
            "1s",
            ", descriptors: [{entries: [{key: generic_key, value: x}], token_bucket: {max_tokens: 1, fill_interval: 1s}}]"
        )
    ));
    let t0 = Instant::now();
    let a = Request::get("h", "/old");
    let b = Request::get("h", "/page");
    assert_eq!(verdict(&t, &a, t0, 0), Some(V::Allowed));
    assert_eq!(verdict(&t, &b, t0, 0), Some(V::Allowed));
    assert_eq!(verdict(&t, &a, t0, 0), Some(V::Limited));
    // A direct-response route's own limiter.
    let t = table(&one_route(
        "{direct_response: {status: 200, body: ok}}",
        &limit("direct", 1, "1s", ""),
    ));
    assert_eq!(verdict(&t, &b, t0, 0), Some(V::Allowed));
    assert_eq!(verdict(&t, &b, t0, 0), Some(V::Limited));
}

#[test]
fn a_reload_keeps_the_buckets_of_unchanged_limiters() {
    // Two tokens an hour at /a and at /b, and a descriptor bucket at /a.
    let yaml = |b_tokens: u32, a_name: &str| {
        format!(
            r#"
virtual_hosts:
  - name: v
    domains: ["*"]
    rate_limits: [{{actions: [{{generic_key: {{descriptor_value: k}}}}]}}]
    routes:
      - name: {a_name}
        match: {{prefix: /a}}
        action: {{cluster: c}}
        typed_per_filter_config:
          envoy.filters.http.local_ratelimit:
            {{stat_prefix: a, token_bucket: {{max_tokens: 2, fill_interval: 3600s}}, {ON},
              always_consume_default_token_bucket: false, vh_rate_limits: INCLUDE,
              descriptors: [{{entries: [{{key: generic_key, value: k}}], token_bucket: {{max_tokens: 3, fill_interval: 3600s}}}}]}}
      - name: b
        match: {{prefix: /b}}
        action: {{cluster: c}}
        typed_per_filter_config:
          envoy.filters.http.local_ratelimit: {}
"#,
            limit("b", b_tokens, "3600s", "")
        )
    };
    let router = rauta_router::Router::from_yaml(&yaml(2, "a")).unwrap();
    let (a, b) = (Request::get("h", "/a"), Request::get("h", "/b"));
    let now = Instant::now;
    let spend = |req: &Request, n: usize| {
        for _ in 0..n {
            assert_eq!(
                verdict(router.load().table(), req, now(), 0),
                Some(V::Allowed)
            );
        }
    };
    // Two of the descriptor's three tokens, one of /b's two.
    spend(&a, 2);
    spend(&b, 1);
    let before = router
        .load()
        .table()
        .local_rate_limiters()
        .map(|l| l.counts().ok)
        .sum::<u64>();
    assert_eq!(before, 3);

    // The same file again: both keep what they had, and their counts.
    router.reload_yaml(&yaml(2, "a")).unwrap();
    let t = router.load();
    assert_eq!(verdict(t.table(), &a, now(), 0), Some(V::Allowed));
    assert_eq!(verdict(t.table(), &a, now(), 0), Some(V::Limited));
    assert_eq!(verdict(t.table(), &b, now(), 0), Some(V::Allowed));
    assert_eq!(verdict(t.table(), &b, now(), 0), Some(V::Limited));
    let counts: Vec<_> = t
        .table()
        .local_rate_limiters()
        .map(|l| l.counts())
        .collect();
    assert_eq!((counts[0].ok, counts[0].rate_limited), (3, 1));
    assert_eq!((counts[1].ok, counts[1].rate_limited), (2, 1));

    // /b's limit changed: it starts full; /a is unchanged and stays empty.
    router.reload_yaml(&yaml(5, "a")).unwrap();
    let t = router.load();
    assert_eq!(verdict(t.table(), &a, now(), 0), Some(V::Limited));
    for _ in 0..5 {
        assert_eq!(verdict(t.table(), &b, now(), 0), Some(V::Allowed));
    }
    // /a renamed: another place, a fresh bucket.
    router.reload_yaml(&yaml(5, "a2")).unwrap();
    assert_eq!(
        verdict(router.load().table(), &a, now(), 0),
        Some(V::Allowed)
    );

    // A table built and not installed shares nothing until told to.
    let fresh = table(&yaml(5, "a2"));
    assert_eq!(verdict(&fresh, &b, now(), 0), Some(V::Allowed));
    let fresh = table(&yaml(5, "a2"));
    assert_eq!(fresh.carry_local_rate_limits(router.load().table()), 2);
    assert_eq!(verdict(&fresh, &b, now(), 0), Some(V::Limited));
    // A clone shares the buckets.
    let clone = fresh.clone();
    assert_eq!(verdict(&clone, &b, now(), 0), Some(V::Limited));
    // /b's counts went on through the change (5 ok, 1 refused, 1 above).
    let counts =
        |t: &RouteTable| -> Vec<_> { t.local_rate_limiters().map(|l| l.counts()).collect() };
    let before = counts(router.load().table());
    // Installing the table being served again (a clone), or a table
    // already carried by hand, counts nothing twice.
    router.install(router.load().table().clone());
    assert_eq!(counts(router.load().table()), before);
    let again = table(&yaml(5, "a2"));
    assert_eq!(again.carry_local_rate_limits(router.load().table()), 2);
    router.install(again);
    assert_eq!(counts(router.load().table()), before);
}

#[test]
fn every_level_is_carried_and_shared_names_are_not() {
    let yaml = format!(
        r#"
typed_per_filter_config:
  envoy.filters.http.local_ratelimit: {global}
virtual_hosts:
  - name: g
    domains: [g]
    routes: [{{match: {{prefix: /}}, action: {{cluster: c}}}}]
  - name: v
    domains: [v]
    typed_per_filter_config:
      envoy.filters.http.local_ratelimit: {vhost}
    routes:
      - match: {{prefix: /w}}
        action:
          weighted_clusters:
            - name: c
              weight: 1
              typed_per_filter_config:
                envoy.filters.http.local_ratelimit: {weighted}
      - {{match: {{prefix: /}}, action: {{cluster: c}}}}
  - name: dup
    domains: [d1]
    routes:
      - name: same
        match: {{prefix: /}}
        action: {{cluster: c}}
        typed_per_filter_config:
          envoy.filters.http.local_ratelimit: {dup}
  - name: dup
    domains: [d2]
    routes:
      - name: same
        match: {{prefix: /}}
        action: {{cluster: c}}
        typed_per_filter_config:
          envoy.filters.http.local_ratelimit: {dup}
"#,
        global = limit("global", 1, "3600s", ""),
        vhost = limit("vhost", 1, "3600s", ""),
        weighted = limit("weighted", 1, "3600s", ""),
        dup = limit("dup", 1, "3600s", ""),
    );
    let router = rauta_router::Router::from_yaml(&yaml).unwrap();
    let now = Instant::now;
    // One token each, spent: the configuration's (an unknown host), the
    // virtual host's, the weighted cluster's, and both `dup/same`s.
    let reqs = [
        Request::get("g", "/"),
        Request::get("v", "/"),
        Request::get("v", "/w"),
        Request::get("d1", "/"),
        Request::get("d2", "/"),
    ];
    for r in &reqs {
        assert_eq!(
            verdict(router.load().table(), r, now(), 0),
            Some(V::Allowed),
            "{r:?}"
        );
    }
    router.reload_yaml(&yaml).unwrap();
    let t = router.load();
    let got: Vec<_> = reqs
        .iter()
        .map(|r| verdict(t.table(), r, now(), 0))
        .collect();
    assert_eq!(
        got,
        [
            Some(V::Limited),
            Some(V::Limited),
            Some(V::Limited),
            // Two limiters in one place: neither is carried.
            Some(V::Allowed),
            Some(V::Allowed),
        ]
    );
}

#[test]
fn envoy_shaped_configurations_load() {
    let c = RouteConfig::from_envoy_yaml(
        r#"
virtual_hosts:
  - name: v
    domains: ["*"]
    routes:
      - match: {prefix: /}
        route: {cluster: c}
        typed_per_filter_config:
          envoy.filters.http.local_ratelimit:
            "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
            statPrefix: http_local_rate_limiter
            tokenBucket: {maxTokens: 1, tokensPerFill: 1, fillInterval: {seconds: 60}}
            filterEnabled: {runtimeKey: local_rate_limit_enabled, defaultValue: {numerator: 100, denominator: HUNDRED}}
            filterEnforced: {runtimeKey: local_rate_limit_enforced, defaultValue: {numerator: 100, denominator: HUNDRED}}
            responseHeadersToAdd:
              - appendAction: OVERWRITE_IF_EXISTS_OR_ADD
                header: {key: x-local-rate-limit, value: "true"}
"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let t = RouteTable::build(c).unwrap_or_else(|e| panic!("{e}"));
    let req = Request::get("h", "/");
    let t0 = Instant::now();
    assert_eq!(verdict(&t, &req, t0, 0), Some(V::Allowed));
    assert_eq!(verdict(&t, &req, t0, 0), Some(V::Limited));
}

#[test]
fn bad_configurations_are_load_errors_naming_the_field() {
    let cases: &[(&str, &str)] = &[
        ("{stat_prefix: p}", "token_bucket: local rate limit token bucket must be set for per filter configs"),
        ("{token_bucket: {max_tokens: 1, fill_interval: 1s}}", "stat_prefix: is required"),
        ("{stat_prefix: p, token_bucket: {max_tokens: 0, fill_interval: 1s}}", "token_bucket.max_tokens: must be greater than 0"),
        ("{stat_prefix: p, token_bucket: {max_tokens: 1, tokens_per_fill: 0, fill_interval: 1s}}", "token_bucket.tokens_per_fill: must be greater than 0"),
        ("{stat_prefix: p, token_bucket: {max_tokens: 1}}", "token_bucket.fill_interval: is required"),
        ("{stat_prefix: p, token_bucket: {max_tokens: 1, fill_interval: 0.049s}}", "local rate limit token bucket fill timer must be >= 50ms"),
        ("{stat_prefix: p, token_bucket: {max_tokens: 1, fill_interval: soon}}", "fill_interval: \"soon\" is not a duration"),
        ("{stat_prefix: p, token_bucket: {max_tokens: 1, fill_interval: 1s}, descriptors: [{entries: [{key: k, value: v}], token_bucket: {max_tokens: 1, fill_interval: 0.01s}}]}", "descriptors[0].token_bucket.fill_interval: local rate limit descriptor token bucket fill timer must be >= 50ms"),
        ("{stat_prefix: p, token_bucket: {max_tokens: 1, fill_interval: 1s}, descriptors: [{entries: [{key: k, value: v}], token_bucket: {max_tokens: 1, fill_interval: 1s}}, {entries: [{key: k, value: v}], token_bucket: {max_tokens: 2, fill_interval: 1s}}]}", "descriptors[1]: duplicate descriptor in the local rate descriptor: k=v"),
        ("{stat_prefix: p, token_bucket: {max_tokens: 1, fill_interval: 1s}, descriptors: [{entries: [{key: k}], token_bucket: {max_tokens: 1, fill_interval: 1s}}]}", "descriptors[0].entries[0].value: is empty (descriptors that match any value are not supported)"),
        ("{stat_prefix: p, token_bucket: {max_tokens: 1, fill_interval: 1s}, descriptors: [{entries: [], token_bucket: {max_tokens: 1, fill_interval: 1s}}]}", "descriptors[0].entries: is empty"),
        ("{stat_prefix: p, token_bucket: {max_tokens: 1, fill_interval: 1s}, stage: 11}", "stage: 11 is above 10"),
        ("{stat_prefix: p, token_bucket: {max_tokens: 1, fill_interval: 1s}, local_rate_limit_per_downstream_connection: true}", "buckets per downstream connection are not supported"),
        ("{stat_prefix: p, token_bucket: {max_tokens: 1, fill_interval: 1s}, vh_rate_limits: SOMETIMES}", "vh_rate_limits: \"SOMETIMES\" is not one of OVERRIDE, INCLUDE, IGNORE"),
        ("{stat_prefix: p, token_bucket: {max_tokens: 1, fill_interval: 1s}, enable_x_ratelimit_headers: 2}", "enable_x_ratelimit_headers: 2 is not one of OFF, DRAFT_VERSION_03"),
        ("{stat_prefix: p, token_bucket: {max_tokens: 1, fill_interval: 1s}, status: {code: 1000}}", "status.code: 1000 is not an HTTP status code"),
        ("{stat_prefix: p, token_bucket: {max_tokens: 1, fill_interval: 1s}, response_headers_to_add: [{key: \"bad name\", value: v}]}", "response_headers_to_add[0]:"),
        ("{stat_prefix: p, token_bucket: {max_tokens: 1, fill_interval: 1s}, rate_limits: []}", "not a LocalRateLimit: unknown field `rate_limits`"),
        ("{stat_prefix: p, token_bucket: {max_tokens: -1, fill_interval: 1s}}", "local_ratelimit\"].token_bucket: not a LocalRateLimit: invalid value: integer `-1`"),
        ("{stat_prefix: p, token_bucket: {max_tokens: 1, fill_interval: 1s}, descriptors: [{entries: [{key: k, value: v}]}]}", "descriptors[0].token_bucket: is required"),
        ("{\"@type\": type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit, stat_prefix: p, token_bucket: {max_tokens: 1, fill_interval: 1s}}", "@type: expected type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"),
    ];
    for (config, expect) in cases {
        let yaml = one_route("{cluster: c}", config);
        let err = RouteTable::from_yaml(&yaml).expect_err(config).to_string();
        assert!(
            err.contains("typed_per_filter_config[\"envoy.filters.http.local_ratelimit\"]"),
            "{config}\n{err}"
        );
        assert!(err.contains(expect), "{config}\n{err}");
        assert!(err.contains("routes[0] \"r\""), "{err}");
    }
    // Inside a FilterConfig wrapper the path says so.
    let err = RouteTable::from_yaml(
        "typed_per_filter_config: {envoy.filters.http.local_ratelimit: {\"@type\": type.googleapis.com/envoy.config.route.v3.FilterConfig, config: {stat_prefix: p, token_bucket: {max_tokens: 0, fill_interval: 1s}}}}\nvirtual_hosts: []",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("typed_per_filter_config[\"envoy.filters.http.local_ratelimit\"].config.token_bucket.max_tokens: must be greater than 0"),
        "{err}"
    );
}

#[test]
fn status_codes_by_name_and_long_intervals_load() {
    let t = table(&one_route(
        "{cluster: c}",
        &limit(
            "p",
            100_000,
            "8640000s",
            ", status: {code: ServiceUnavailable}",
        ),
    ));
    let req = Request::get("h", "/");
    let d = t.route(&req, 0);
    let l = d.route().unwrap().local_rate_limiter().unwrap();
    assert_eq!(l.status(), 503);
    // 100,000 tokens refilled one per 100 days: a bucket that never
    // refills in practice still holds all of them.
    let t0 = Instant::now();
    assert_eq!(l.default_bucket(t0), (100_000, 100_000));
    let err = RouteTable::from_yaml(&one_route(
        "{cluster: c}",
        &limit("p", 1, "1s", ", status: {code: SlowDown}"),
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("local_ratelimit\"].status: not a LocalRateLimit: \"SlowDown\" is not one of Envoy's StatusCode names"),
        "{err}"
    );
}

#[test]
fn disabling_follows_filter_disabled_and_limiters_the_most_specific_level() {
    const OFF: &str =
        "{\"@type\": type.googleapis.com/envoy.config.route.v3.FilterConfig, disabled: true}";
    const BARE: &str =
        "{\"@type\": type.googleapis.com/envoy.config.route.v3.FilterConfig, config: {}}";
    let yaml = format!(
        r#"
typed_per_filter_config:
  envoy.filters.http.local_ratelimit: {global}
virtual_hosts:
  - name: a
    domains: [a]
    typed_per_filter_config:
      envoy.filters.http.local_ratelimit: {OFF}
    routes:
      - match: {{prefix: /own}}
        action: {{cluster: c}}
        typed_per_filter_config:
          envoy.filters.http.local_ratelimit: {route}
      - match: {{prefix: /bare}}
        action: {{cluster: c}}
        typed_per_filter_config:
          envoy.filters.http.local_ratelimit: {BARE}
      - match: {{prefix: /split}}
        action:
          weighted_clusters:
            - name: x
              weight: 1
              typed_per_filter_config:
                envoy.filters.http.local_ratelimit: {OFF}
        typed_per_filter_config:
          envoy.filters.http.local_ratelimit: {split}
      - match: {{prefix: /}}
        action: {{cluster: c}}
  - name: b
    domains: [b]
    typed_per_filter_config:
      envoy.filters.http.local_ratelimit: {vhost}
    routes:
      - {{match: {{prefix: /}}, action: {{cluster: c}}}}
"#,
        global = limit("global", 1, "1s", ""),
        route = limit("route", 1, "1s", ""),
        split = limit("split", 1, "1s", ""),
        vhost = limit("vhost", 1, "1s", ""),
    );
    let t = table(&yaml);
    let check = |host: &str, path: &str| {
        let req = Request::get(host, path);
        let d = t.route(&req, 0);
        let m = d.route().unwrap();
        let limiter = m.local_rate_limiter().map(|l| l.stat_prefix().to_owned());
        // The limiter is there exactly when the filter is not disabled.
        assert_eq!(
            limiter.is_none(),
            m.filter_disabled(rauta_router::LOCAL_RATE_LIMIT_FILTER) == Some(true),
            "{host}{path}"
        );
        limiter
    };
    // The route's own entry enables the filter under a disabled virtual host.
    assert_eq!(check("a", "/own").as_deref(), Some("route"));
    // A wrapper without settings enables it too; the limiter comes from the
    // next level that has one.
    assert_eq!(check("a", "/bare").as_deref(), Some("global"));
    // A weighted cluster entry's wrapper only supplies (or not) a limiter.
    assert_eq!(check("a", "/split").as_deref(), Some("split"));
    assert_eq!(check("a", "/other"), None);
    assert_eq!(check("b", "/").as_deref(), Some("vhost"));

    // The configuration disables it; a virtual host's entry enables it.
    let t = table(&format!(
        r#"
typed_per_filter_config:
  envoy.filters.http.local_ratelimit: {OFF}
virtual_hosts:
  - name: b
    domains: [b]
    typed_per_filter_config:
      envoy.filters.http.local_ratelimit: {vhost}
    routes:
      - {{match: {{prefix: /}}, action: {{cluster: c}}}}
  - name: c
    domains: ["*"]
    routes:
      - {{match: {{prefix: /}}, action: {{cluster: c}}}}
"#,
        vhost = limit("vhost", 1, "1s", ""),
    ));
    let limiter = |host: &str| {
        let req = Request::get(host, "/");
        let d = t.route(&req, 0);
        let m = d.route().unwrap();
        m.local_rate_limiter().map(|l| l.stat_prefix().to_owned())
    };
    assert_eq!(limiter("b").as_deref(), Some("vhost"));
    assert_eq!(limiter("c"), None);
}

#[test]
fn rate_limit_headers_only_when_asked_for() {
    let t = table(&one_route("{cluster: c}", &limit("p", 5, "1s", "")));
    let req = Request::get("h", "/");
    let d = t.route(&req, 0);
    let m = d.route().unwrap();
    let o = m
        .local_rate_limit(&req, &RateLimitContext::new(), Instant::now(), 0)
        .unwrap();
    assert_eq!(o.verdict(), V::Allowed);
    assert_eq!(o.rate_limit_headers(), None);
    let shown = format!("{o:?}");
    assert!(
        shown.contains("stat_prefix: \"p\"") && !shown.contains("RouteTable"),
        "{shown}"
    );
}
