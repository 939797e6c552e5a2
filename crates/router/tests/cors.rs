//! CORS policies (Envoy's CORS filter) and hedge policies.

use rauta_router::{Cors, CorsCheck, Request, RouteTable};

fn table(yaml: &str) -> RouteTable {
    RouteTable::from_yaml(yaml).unwrap_or_else(|e| panic!("{e}"))
}

fn load_error(yaml: &str) -> String {
    RouteTable::from_yaml(yaml)
        .expect_err("the configuration must not load")
        .to_string()
}

fn cors<'t>(t: &'t RouteTable, req: &'t Request) -> Option<Cors<'t>> {
    t.route(req, 0).into_route().expect("a route").cors()
}

fn preflight(path: &str, origin: &str, method: &str) -> Request {
    Request::new("OPTIONS", "h", path)
        .header("origin", origin)
        .header("access-control-request-method", method)
}

fn headers(check: &CorsCheck<'_>) -> Vec<(String, String)> {
    match check {
        CorsCheck::Preflight(p) => p
            .headers()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect(),
        CorsCheck::Forward(r) => {
            let mut h: Vec<(String, String)> = vec![("server".into(), "up".into())];
            r.apply(&mut h);
            h.retain(|(n, _)| n != "server");
            h
        }
        other => panic!("no headers in {other:?}"),
    }
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

const BASIC: &str = r#"
virtual_hosts:
  - name: api
    domains: ["*"]
    cors:
      allow_origin_string_match:
        - {exact: "https://app.example"}
        - {suffix: ".trusted.example"}
      allow_methods: "GET, POST"
      allow_headers: "content-type, x-token"
      expose_headers: "x-request-id"
      max_age: "600"
      allow_credentials: true
    routes:
      - {name: plain, match: {prefix: /plain}, action: {cluster: api}}
      - {name: redirect, match: {prefix: /old}, action: {redirect: {path_redirect: /new}}}
      - {name: direct, match: {prefix: /ping}, action: {direct_response: {status: 200, body: pong}}}
      - name: strict
        match: {prefix: /strict}
        action:
          cluster: api
          cors:
            forward_not_matching_preflights: false
            allow_methods: "*"
            allow_headers: "*"
            allow_credentials: false
      - name: everyone
        match: {prefix: /open}
        action:
          cluster: api
          cors:
            allow_origin_string_match: [{prefix: ""}]
"#;

#[test]
fn preflight_from_an_allowed_origin_is_answered_here() {
    let t = table(BASIC);
    let req = preflight("/plain", "https://app.example", "POST");
    let check = cors(&t, &req).unwrap().check(&req, 0);
    let CorsCheck::Preflight(answer) = &check else {
        panic!("{check:?}")
    };
    assert_eq!(answer.status(), 200);
    assert!(answer.origin_allowed());
    assert_eq!(
        headers(&check),
        pairs(&[
            ("access-control-allow-origin", "https://app.example"),
            ("access-control-allow-credentials", "true"),
            ("access-control-allow-methods", "GET, POST"),
            ("access-control-allow-headers", "content-type, x-token"),
            ("access-control-max-age", "600"),
            // Envoy's own answer passes the filter's response side too.
            ("access-control-expose-headers", "x-request-id"),
        ])
    );
    assert_eq!(check.origin_allowed(), Some(true));
    // A suffix matcher.
    let req = preflight("/plain", "https://a.trusted.example", "GET");
    assert!(matches!(
        cors(&t, &req).unwrap().check(&req, 0),
        CorsCheck::Preflight(p) if p.origin_allowed()
    ));
}

#[test]
fn simple_requests_are_forwarded_and_the_response_gets_the_origin() {
    let t = table(BASIC);
    let req = Request::get("h", "/plain/x").header("origin", "https://app.example");
    let check = cors(&t, &req).unwrap().check(&req, 0);
    let CorsCheck::Forward(resp) = &check else {
        panic!("{check:?}")
    };
    assert_eq!(resp.allowed_origin(), Some("https://app.example"));
    assert_eq!(
        headers(&check),
        pairs(&[
            ("access-control-allow-origin", "https://app.example"),
            ("access-control-allow-credentials", "true"),
            ("access-control-expose-headers", "x-request-id"),
        ])
    );
    // The origin replaces whatever the upstream sent.
    let mut h = vec![("access-control-allow-origin".to_string(), "*".to_string())];
    resp.apply(&mut h);
    assert_eq!(
        h[0],
        (
            "access-control-allow-origin".into(),
            "https://app.example".into()
        )
    );

    // OPTIONS without access-control-request-method is not a preflight.
    let req = Request::new("OPTIONS", "h", "/plain").header("origin", "https://app.example");
    assert!(matches!(
        cors(&t, &req).unwrap().check(&req, 0),
        CorsCheck::Forward(r) if r.allowed_origin().is_some()
    ));
    let req = preflight("/plain", "https://app.example", "");
    assert!(matches!(
        cors(&t, &req).unwrap().check(&req, 0),
        CorsCheck::Forward(_)
    ));
}

#[test]
fn a_disallowed_origin_gets_no_cors_headers() {
    let t = table(BASIC);
    let req = Request::get("h", "/plain").header("origin", "https://evil.example");
    let check = cors(&t, &req).unwrap().check(&req, 0);
    assert_eq!(check.origin_allowed(), Some(false));
    assert_eq!(headers(&check), pairs(&[]));

    // A preflight from it is forwarded (forward_not_matching_preflights
    // defaults to true) and its answer left alone...
    let req = preflight("/plain", "https://evil.example", "DELETE");
    let check = cors(&t, &req).unwrap().check(&req, 0);
    assert!(matches!(&check, CorsCheck::Forward(r) if r.allowed_origin().is_none()));
    assert_eq!(headers(&check), pairs(&[]));

    // ...or answered without an allowed origin when the route says not to
    // forward it. Methods and headers are echoed under "*" (an absent
    // access-control-request-headers echoes as empty, as in Envoy), and
    // the route's allow_credentials: false wins over the virtual host's.
    let req = preflight("/strict", "https://evil.example", "DELETE");
    let check = cors(&t, &req).unwrap().check(&req, 0);
    assert!(matches!(&check, CorsCheck::Preflight(p) if !p.origin_allowed()));
    assert_eq!(
        headers(&check),
        pairs(&[
            ("access-control-allow-methods", "DELETE"),
            ("access-control-allow-headers", ""),
            ("access-control-max-age", "600"),
        ])
    );
    let req = preflight("/strict", "https://app.example", "PUT")
        .header("access-control-request-headers", "x-a, x-b");
    let check = cors(&t, &req).unwrap().check(&req, 0);
    assert_eq!(
        headers(&check),
        pairs(&[
            ("access-control-allow-origin", "https://app.example"),
            ("access-control-allow-methods", "PUT"),
            ("access-control-allow-headers", "x-a, x-b"),
            ("access-control-max-age", "600"),
            ("access-control-expose-headers", "x-request-id"),
        ])
    );
}

#[test]
fn requests_without_an_origin_are_not_cors() {
    let t = table(BASIC);
    let req = Request::get("h", "/plain");
    assert_eq!(cors(&t, &req).unwrap().check(&req, 0), CorsCheck::NotCors);
    let req = Request::get("h", "/plain").header("origin", "");
    assert_eq!(cors(&t, &req).unwrap().check(&req, 0), CorsCheck::NotCors);
    assert_eq!(CorsCheck::NotCors.origin_allowed(), None);
}

#[test]
fn a_matcher_that_matches_star_allows_every_origin() {
    let t = table(BASIC);
    for origin in ["https://anything.example", "null", "http://127.0.0.1:9"] {
        let req = Request::get("h", "/open").header("origin", origin);
        let check = cors(&t, &req).unwrap().check(&req, 0);
        assert!(
            matches!(&check, CorsCheck::Forward(r) if r.allowed_origin() == Some(origin)),
            "{origin}: {check:?}"
        );
    }
    for star in [
        r#"{exact: "*"}"#,
        r#"{safe_regex: ".*"}"#,
        r#"{contains: "*"}"#,
    ] {
        let t = table(&format!(
            r#"
virtual_hosts:
  - name: api
    domains: ["*"]
    cors: {{allow_origin_string_match: [{star}]}}
    routes: [{{match: {{prefix: /}}, action: {{cluster: api}}}}]
"#
        ));
        let req = Request::get("h", "/").header("origin", "https://x.example");
        assert_eq!(
            cors(&t, &req).unwrap().check(&req, 0).origin_allowed(),
            Some(true),
            "{star}"
        );
    }
    // No matchers at all: nothing is allowed.
    let t = table(
        r#"
virtual_hosts:
  - name: api
    domains: ["*"]
    cors: {allow_methods: GET}
    routes: [{match: {prefix: /}, action: {cluster: api}}]
"#,
    );
    let req = Request::get("h", "/").header("origin", "https://x.example");
    assert_eq!(
        cors(&t, &req).unwrap().check(&req, 0).origin_allowed(),
        Some(false)
    );
}

#[test]
fn several_origin_fields_are_joined_and_non_utf8_is_refused() {
    let t = table(BASIC);
    let req = Request::get("h", "/open")
        .header("origin", "https://a.example")
        .header("origin", "https://b.example");
    let check = cors(&t, &req).unwrap().check(&req, 0);
    assert!(matches!(
        &check,
        CorsCheck::Forward(r) if r.allowed_origin() == Some("https://a.example,https://b.example")
    ));
    let req = http::Request::builder()
        .uri("/open")
        .header("host", "h")
        .header(
            "origin",
            http::HeaderValue::from_bytes(b"https://\xff").unwrap(),
        )
        .body(())
        .unwrap();
    let m = t.route(&req, 0).into_route().unwrap();
    assert_eq!(
        m.cors().unwrap().check(&req, 0).origin_allowed(),
        Some(false)
    );
}

#[test]
fn redirects_and_direct_responses_have_no_cors() {
    let t = table(BASIC);
    for path in ["/old", "/ping"] {
        let req = preflight(path, "https://app.example", "GET");
        assert!(cors(&t, &req).is_none(), "{path}");
    }
    let req = Request::get("h", "/plain");
    assert!(cors(&t, &req).is_some());
    let err = load_error(
        r#"
virtual_hosts:
  - name: api
    domains: ["*"]
    routes:
      - match: {prefix: /}
        action: {redirect: {path_redirect: /x}, cors: {allow_methods: GET}}
"#,
    );
    assert!(err.contains("action.cors"), "{err}");
    assert!(err.contains("only applies to routes that forward"), "{err}");
}

#[test]
fn private_network_access_preflights() {
    let t = table(
        r#"
virtual_hosts:
  - name: api
    domains: ["*"]
    cors:
      allow_origin_string_match: [{exact: "https://app.example"}]
      allow_private_network_access: true
    routes: [{match: {prefix: /}, action: {cluster: api}}]
"#,
    );
    let req = preflight("/", "https://app.example", "GET")
        .header("access-control-request-private-network", "true");
    let check = cors(&t, &req).unwrap().check(&req, 0);
    assert_eq!(
        headers(&check),
        pairs(&[
            ("access-control-allow-origin", "https://app.example"),
            ("access-control-allow-private-network", "true"),
        ])
    );
    let req = preflight("/", "https://app.example", "GET");
    let check = cors(&t, &req).unwrap().check(&req, 0);
    assert_eq!(
        headers(&check),
        pairs(&[("access-control-allow-origin", "https://app.example")])
    );
}

#[test]
fn filter_enabled_and_shadow_enabled_take_the_random_value() {
    let t = table(
        r#"
virtual_hosts:
  - name: api
    domains: ["*"]
    cors:
      allow_origin_string_match: [{exact: "https://app.example"}]
      filter_enabled: {default_value: {numerator: 25}}
      shadow_enabled: {default_value: {numerator: 50}}
    routes: [{match: {prefix: /}, action: {cluster: api}}]
"#,
    );
    let good = Request::get("h", "/").header("origin", "https://app.example");
    let bad = Request::get("h", "/").header("origin", "https://evil.example");
    let c = cors(&t, &good).unwrap();
    // filter_enabled takes random % 100 < 25; shadow_enabled, as in Envoy,
    // a draw of its own: over 10,000 values, 2,500 are enabled, and about
    // half of the other 7,500 are shadowed (50% of the 75%).
    let (mut enabled, mut shadowed, mut off) = (0, 0, 0);
    for r in 0..10_000u64 {
        match c.check(&good, r) {
            CorsCheck::Forward(f) => {
                assert!(r % 100 < 25 && f.allowed_origin().is_some());
                enabled += 1;
            }
            CorsCheck::Shadow { origin_allowed } => {
                assert!(origin_allowed && r % 100 >= 25 && c.shadow_enabled(r));
                assert_eq!(
                    c.check(&bad, r),
                    CorsCheck::Shadow {
                        origin_allowed: false
                    }
                );
                shadowed += 1;
            }
            CorsCheck::NotCors => {
                assert!(!c.enabled(r) && !c.shadow_enabled(r));
                off += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(enabled, 2_500);
    assert!((3_500..=4_000).contains(&shadowed), "{shadowed} shadowed");
    assert_eq!(enabled + shadowed + off, 10_000);
    // Shadowing is not tied to the enabled draw: some enabled values would
    // also be shadowed, some not.
    let both = (0..100u64)
        .filter(|r| c.enabled(*r) && c.shadow_enabled(*r))
        .count();
    assert!(both > 0 && both < 25, "{both}");
}

#[test]
fn settings_come_from_the_most_specific_policy_that_sets_them() {
    let t = table(
        r#"
virtual_hosts:
  - name: api
    domains: ["*"]
    cors:
      allow_origin_string_match: [{exact: "https://vhost.example"}]
      allow_methods: GET
      max_age: "60"
      filter_enabled: {default_value: {numerator: 0}}
    routes:
      - name: r
        match: {prefix: /}
        action:
          cluster: api
          cors: {allow_methods: "POST", expose_headers: "x-r"}
"#,
    );
    let req = preflight("/", "https://vhost.example", "POST");
    let c = cors(&t, &req).unwrap();
    assert_eq!(c.allow_methods(), "POST");
    assert_eq!(c.max_age(), "60");
    assert_eq!(c.expose_headers(), "x-r");
    assert!(!c.allow_credentials());
    assert!(c.forward_not_matching_preflights());
    // Origins come from the virtual host; filter_enabled only from the
    // most specific policy (the route's, which leaves it on).
    assert!(c.enabled(99));
    assert!(c.origin_allowed(b"https://vhost.example"));
    assert!(matches!(c.check(&req, 0), CorsCheck::Preflight(_)));

    // A route that turns the policy off turns it off, whatever the
    // virtual host says.
    let t = table(
        r#"
virtual_hosts:
  - name: api
    domains: ["*"]
    cors: {allow_origin_string_match: [{prefix: ""}]}
    routes:
      - match: {prefix: /}
        action:
          cluster: api
          cors: {filter_enabled: {default_value: {numerator: 0}}}
"#,
    );
    let req = Request::get("h", "/").header("origin", "https://x.example");
    assert_eq!(cors(&t, &req).unwrap().check(&req, 0), CorsCheck::NotCors);
}

const FILTERS: &str = r#"
typed_per_filter_config:
  envoy.filters.http.cors:
    "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
    allow_origin_string_match: [{exact: "https://global.example"}]
    max_age: "1"
virtual_hosts:
  - name: api
    domains: ["*"]
    cors:
      allow_origin_string_match: [{exact: "https://legacy.example"}]
      allow_methods: LEGACY
    routes:
      - name: route
        match: {prefix: /route}
        action: {cluster: api}
        typed_per_filter_config:
          envoy.filters.http.cors: {max_age: "2", allow_methods: ROUTE}
      - name: split
        match: {prefix: /split}
        typed_per_filter_config:
          envoy.filters.http.cors: {allow_methods: SPLIT, max_age: "R"}
        action:
          weighted_clusters:
            clusters:
              - name: a
                weight: 1
                typed_per_filter_config:
                  envoy.filters.http.cors: {max_age: "3"}
              - {name: b, weight: 1}
      - name: plain
        match: {prefix: /}
        action: {cluster: api}
"#;

#[test]
fn typed_per_filter_config_policies_replace_the_cors_fields() {
    let t = table(FILTERS);
    let at = |path: &str, random: u64| {
        let req = preflight(path, "https://global.example", "GET");
        let m = t.route(&req, random).into_route().unwrap();
        let c = m.cors().unwrap();
        (
            c.max_age().to_owned(),
            c.allow_methods().to_owned(),
            c.origin_allowed(b"https://global.example"),
            c.origin_allowed(b"https://legacy.example"),
        )
    };
    // The configuration's filter policy is there, so the virtual host's
    // `cors` field is not looked at, on any route.
    assert_eq!(at("/plain", 0), ("1".into(), "".into(), true, false));
    assert_eq!(at("/route", 0), ("2".into(), "ROUTE".into(), true, false));
    // The weighted entry's level is the most specific.
    let random_a = (0..10)
        .find(|r| {
            let req = Request::get("h", "/split");
            t.route(&req, *r).route().unwrap().cluster() == Some("a")
        })
        .unwrap();
    let random_b = (0..10)
        .find(|r| {
            let req = Request::get("h", "/split");
            t.route(&req, *r).route().unwrap().cluster() == Some("b")
        })
        .unwrap();
    assert_eq!(at("/split", random_a).0, "3");
    assert_eq!(at("/split", random_a).1, "SPLIT");
    assert_eq!(at("/split", random_b).0, "R");

    // Without any filter policy, the `cors` fields apply.
    let legacy = FILTERS
        .split_once("virtual_hosts:")
        .map(|(_, rest)| format!("virtual_hosts:{rest}"))
        .unwrap()
        .replace(
            "typed_per_filter_config:\n          envoy.filters.http.cors: {max_age: \"2\", allow_methods: ROUTE}",
            "",
        )
        .replace(
            "typed_per_filter_config:\n                  envoy.filters.http.cors: {max_age: \"3\"}",
            "",
        )
        .replace(
            "typed_per_filter_config:\n          envoy.filters.http.cors: {allow_methods: SPLIT, max_age: \"R\"}",
            "",
        );
    let t = table(&legacy);
    for path in ["/plain", "/route", "/split"] {
        let req = Request::get("h", path);
        let c = cors(&t, &req).unwrap();
        assert_eq!(c.allow_methods(), "LEGACY", "{path}");
        assert!(c.origin_allowed(b"https://legacy.example"));
    }
}

#[test]
fn routes_without_any_policy_have_no_cors() {
    let t = table(
        r#"
virtual_hosts:
  - name: api
    domains: ["*"]
    typed_per_filter_config: {other.filter: {x: 1}}
    routes: [{match: {prefix: /}, action: {cluster: api}}]
"#,
    );
    assert!(cors(&t, &Request::get("h", "/")).is_none());
}

#[test]
fn bad_policies_are_load_errors_naming_the_field() {
    let cases = [
        (
            r#"cors: {allow_origin_string_match: [{safe_regex: "("}]}"#,
            "cors.allow_origin_string_match[0].safe_regex",
        ),
        (
            r#"cors: {allow_origin_string_match: [{}]}"#,
            "exactly one of exact",
        ),
        ("cors: {allow_methods: \"GET\\nX\"}", "cors.allow_methods"),
        ("cors: {max_age: \"1\\r\"}", "is not a valid header value"),
        ("cors: {allow_origin: [a]}", "unknown field `allow_origin`"),
        (
            r#"typed_per_filter_config: {envoy.filters.http.cors: {"@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors}}"#,
            r#"typed_per_filter_config["envoy.filters.http.cors"].@type"#,
        ),
        (
            r#"typed_per_filter_config: {envoy.filters.http.cors: {allow_methodz: GET}}"#,
            "not a CorsPolicy: unknown field `allow_methodz`",
        ),
        (
            r#"typed_per_filter_config: {envoy.filters.http.cors: [1]}"#,
            "not a CorsPolicy",
        ),
        (
            "cors: {filter_enabled: {}}",
            "missing field `default_value`",
        ),
    ];
    for (policy, expect) in cases {
        let yaml = format!(
            r#"
virtual_hosts:
  - name: api
    domains: ["*"]
    {policy}
    routes: [{{match: {{prefix: /}}, action: {{cluster: api}}}}]
"#
        );
        let err = load_error(&yaml);
        assert!(err.contains(expect), "{policy}: {err}");
    }
}

#[test]
fn hedge_policy_defaults_and_inheritance() {
    let t = table(
        r#"
virtual_hosts:
  - name: api
    domains: ["*"]
    hedge_policy: {hedge_on_per_try_timeout: true}
    routes:
      - name: own
        match: {prefix: /own}
        action:
          cluster: api
          hedge_policy:
            initial_requests: 2
            additional_request_chance: {numerator: 5, denominator: TEN_THOUSAND}
      - {name: inherit, match: {prefix: /}, action: {cluster: api}}
  - name: none
    domains: ["none"]
    routes: [{match: {prefix: /}, action: {cluster: api}}]
"#,
    );
    let policy = |host: &str, path: &str| {
        let req = Request::get(host, path);
        t.route(&req, 0)
            .into_route()
            .unwrap()
            .route()
            .hedge_policy()
            .cloned()
    };
    // The route's policy replaces the virtual host's, with no field merge.
    let own = policy("h", "/own").unwrap();
    assert_eq!(own.initial_requests, 2);
    assert_eq!(own.additional_request_chance, (5, 10_000));
    assert!(!own.hedge_on_per_try_timeout);
    let inherited = policy("h", "/x").unwrap();
    assert_eq!(inherited.initial_requests, 1);
    assert_eq!(inherited.additional_request_chance, (0, 100));
    assert!(inherited.hedge_on_per_try_timeout);
    assert!(policy("none", "/").is_none());

    let err = load_error(
        r#"
virtual_hosts:
  - name: api
    domains: ["*"]
    routes:
      - match: {prefix: /}
        action: {cluster: api, hedge_policy: {initial_requests: 0}}
"#,
    );
    assert!(
        err.contains("action.hedge_policy.initial_requests"),
        "{err}"
    );
    let err = load_error(
        r#"
virtual_hosts:
  - name: api
    domains: ["*"]
    routes:
      - match: {prefix: /}
        action: {direct_response: {status: 200}, hedge_policy: {}}
"#,
    );
    assert!(err.contains("action.hedge_policy"), "{err}");
}
