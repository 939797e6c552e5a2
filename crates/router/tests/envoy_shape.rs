//! Envoy's own RouteConfiguration shape: an Envoy-written configuration
//! routes exactly as the same configuration in RAUTA's shape, and what does
//! not fit is a load error naming its place.

use rauta_router::config::RouteConfig;
use rauta_router::{ActionKind, Decision, Request, RouteTable};

/// An RDS-style configuration in Envoy's v3 shape.
const ENVOY: &str = r#"
"@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
name: edge
validate_clusters: false
internal_only_headers: [x-internal-token]
response_headers_to_add:
  - header: {key: x-edge, value: "1"}
    append_action: OVERWRITE_IF_EXISTS_OR_ADD
virtual_hosts:
  - name: api
    domains: ["api.example.com", "api.example.com:*"]
    retry_policy:
      retry_on: "5xx,reset"
      num_retries: 2
      per_try_timeout: 0.25s
      retry_back_off: {base_interval: 0.01s, max_interval: {seconds: 1}}
    typed_per_filter_config:
      envoy.filters.http.cors:
        "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
        allow_origin_string_match: [{exact: "https://app.example.com"}]
    routes:
      - name: users
        match:
          safe_regex: {google_re2: {}, regex: "/users/[0-9]+"}
          headers:
            - name: x-tenant
              string_match: {safe_regex: {regex: "[a-z]+"}}
        route:
          cluster: users
          timeout: 2.5s
          idle_timeout: 60s
          regex_rewrite:
            pattern: {regex: "^/users/"}
            substitution: "/v2/users/"
      - name: videos
        match:
          path_match_policy:
            name: envoy.path.match.uri_template
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig
              path_template: "/videos/{id}/{format}"
        route:
          cluster: media
          path_rewrite_policy:
            name: envoy.path.rewrite.uri_template
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.path.rewrite.uri_template.v3.UriTemplateRewriteConfig
              path_template_rewrite: "/media/{format}/{id}"
      - name: split
        match: {prefix: /shop, runtime_fraction: {default_value: {numerator: 100, denominator: HUNDRED}}}
        route:
          weighted_clusters:
            clusters:
              - {name: shop-v1, weight: 90}
              - {name: shop-v2, weight: 10, request_headers_to_add: [{header: {key: x-canary, value: "yes"}}]}
          hash_policy:
            - cookie: {name: session, ttl: 3600s, path: /}
          retry_policy: {retry_on: gateway-error, per_try_idle_timeout: 1.5s}
          hedge_policy: {hedge_on_per_try_timeout: true}
          request_mirror_policies:
            - cluster: shop-shadow
              runtime_fraction: {default_value: {numerator: 5}}
      - name: old
        match: {prefix: /old/}
        redirect: {prefix_rewrite: /new/, response_code: PERMANENT_REDIRECT, https_redirect: true}
      - name: health
        match: {path: /healthz}
        direct_response: {status: 200, body: {inline_string: "ok\n"}}
      - name: rest
        match: {prefix: /}
        route: {cluster: api, timeout: 0s, cluster_not_found_response_code: NOT_FOUND}
        request_headers_to_remove: [cookie]
"#;

/// The same configuration in RAUTA's shape.
const RAUTA: &str = r#"
name: edge
validate_clusters: false
internal_only_headers: [x-internal-token]
response_headers_to_add:
  - {key: x-edge, value: "1", append_action: OVERWRITE_IF_EXISTS_OR_ADD}
virtual_hosts:
  - name: api
    domains: ["api.example.com", "api.example.com:*"]
    retry_policy:
      retry_on: "5xx,reset"
      num_retries: 2
      per_try_timeout_ms: 250
      retry_back_off: {base_interval_ms: 10, max_interval_ms: 1000}
    typed_per_filter_config:
      envoy.filters.http.cors:
        "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
        allow_origin_string_match: [{exact: "https://app.example.com"}]
    routes:
      - name: users
        match:
          regex: "/users/[0-9]+"
          headers: [{name: x-tenant, string_match: {safe_regex: "[a-z]+"}}]
        action:
          cluster: users
          timeout_ms: 2500
          idle_timeout_ms: 60000
          regex_rewrite: {pattern: "^/users/", substitution: "/v2/users/"}
      - name: videos
        match: {path_template: "/videos/{id}/{format}"}
        action: {cluster: media, path_template_rewrite: "/media/{format}/{id}"}
      - name: split
        match: {prefix: /shop, runtime_fraction: {default_value: {numerator: 100}}}
        action:
          weighted_clusters:
            - {name: shop-v1, weight: 90}
            - {name: shop-v2, weight: 10, request_headers_to_add: [{key: x-canary, value: "yes"}]}
          hash_policy: [{cookie: {name: session, ttl_ms: 3600000, path: /}}]
          retry_policy: {retry_on: gateway-error, per_try_idle_timeout_ms: 1500}
          hedge_policy: {hedge_on_per_try_timeout: true}
          request_mirror_policies:
            - {cluster: shop-shadow, runtime_fraction: {default_value: {numerator: 5}}}
      - name: old
        match: {prefix: /old/}
        action: {redirect: {prefix_rewrite: /new/, response_code: PERMANENT_REDIRECT, https_redirect: true}}
      - name: health
        match: {path: /healthz}
        action: {direct_response: {status: 200, body: "ok\n"}}
      - name: rest
        match: {prefix: /}
        action: {cluster: api, timeout_ms: 0, cluster_not_found_response_code: NOT_FOUND}
        request_headers_to_remove: [cookie]
"#;

/// Everything a decision tells a proxy, as text.
fn outcome(table: &RouteTable, req: &Request, random: u64) -> String {
    let d = table.route(req, random);
    let Decision::Route(m) = d else {
        return format!("{d:?}");
    };
    let r = m.route();
    let mut headers: Vec<(String, String)> = req.headers.clone();
    let up = m.apply_request(&mut headers);
    let mut resp: Vec<(String, String)> = Vec::new();
    m.apply_response(&mut resp);
    let action = match m.action() {
        ActionKind::Forward { cluster } => format!("forward {cluster}"),
        ActionKind::Redirect { status } => {
            format!("redirect {status} {:?}", m.redirect_location())
        }
        ActionKind::DirectResponse { status, body } => format!("direct {status} {body:?}"),
        other => format!("{other:?}"),
    };
    let mirrors: Vec<_> = m
        .mirrors(req, random)
        .map(|x| x.cluster.to_owned())
        .collect();
    format!(
        "{} | {action} | {} {} | timeout {} idle {:?} | retry {:?} | hedge {:?} | hash {:?} | \
         cors {} | mirrors {mirrors:?} | req {headers:?} | resp {resp:?} | not found {}",
        r.name(),
        up.path,
        up.host,
        r.timeout_ms(),
        r.idle_timeout_ms(),
        r.retry_policy(),
        r.hedge_policy(),
        r.hash_policy(),
        m.cors().is_some(),
        r.cluster_not_found_status(),
    )
}

#[test]
fn an_envoy_configuration_routes_as_its_rauta_twin() {
    let envoy = RouteTable::build(RouteConfig::from_envoy_yaml(ENVOY).unwrap()).unwrap();
    let rauta = RouteTable::from_yaml(RAUTA).unwrap();
    let host = "api.example.com";
    let requests = [
        Request::get(host, "/users/42").header("x-tenant", "acme"),
        Request::get(host, "/users/42").header("x-tenant", "ACME"),
        Request::get(host, "/videos/7/hls"),
        Request::get(host, "/shop/cart").header("cookie", "session=1"),
        Request::get(host, "/old/page?x=1"),
        Request::get(host, "/healthz"),
        Request::get(host, "/other").header("x-internal-token", "t"),
        Request::get("api.example.com:8443", "/users/1").header("x-tenant", "z"),
        Request::get("elsewhere", "/"),
    ];
    let mut seen = std::collections::BTreeSet::new();
    for req in &requests {
        for random in [0, 5, 89, 95] {
            let a = outcome(&envoy, req, random);
            assert_eq!(a, outcome(&rauta, req, random), "{req:?}");
            seen.insert(a.split(" | ").next().unwrap_or("").to_owned());
        }
    }
    // Every route was taken, so the comparison covered each conversion.
    for name in ["users", "videos", "split", "old", "health", "rest"] {
        assert!(seen.contains(name), "{name} not taken: {seen:?}");
    }
    // Spot checks that the twin is not wrong in the same way.
    let req = Request::get(host, "/users/42").header("x-tenant", "acme");
    let d = envoy.route(&req, 0);
    let m = d.route().unwrap();
    assert_eq!(m.route().timeout_ms(), 2500);
    assert_eq!(m.route().retry_policy().unwrap().per_try_timeout_ms, 250);
    assert_eq!(m.route().retry_policy().unwrap().max_interval_ms, 1000);
    assert_eq!(m.rewritten_path().as_deref(), Some("/v2/users/42"));
}

#[test]
fn int64_fields_may_be_strings_as_protobuf_json_writes_them() {
    let json = r#"{"virtual_hosts": [{"name": "v", "domains": ["*"], "routes": [
        {"match": {"prefix": "/", "headers": [{"name": "x-n", "range_match": {"start": "1", "end": "10"}}]},
         "route": {"cluster": "c", "timeout": {"seconds": "2", "nanos": 500000000},
                   "retry_policy": {"host_selection_retry_max_attempts": "3"}}}]}]}"#;
    let t = RouteTable::build(RouteConfig::from_envoy_json(json).unwrap()).unwrap();
    let req = Request::get("h", "/").header("x-n", "5");
    let d = t.route(&req, 0);
    let r = d.route().expect("the range matches").route();
    assert_eq!(r.timeout_ms(), 2500);
    assert_eq!(
        r.retry_policy().unwrap().host_selection_retry_max_attempts,
        3
    );
    assert!(t
        .route(&Request::get("h", "/").header("x-n", "10"), 0)
        .route()
        .is_none());
    for bad in [r#""start": "x""#, r#""start": "99999999999999999999""#] {
        let json = json.replace(r#""start": "1""#, bad);
        let err = RouteConfig::from_envoy_json(&json).unwrap_err().to_string();
        assert!(
            err.contains("not an integer") || err.contains("out of range"),
            "{err}"
        );
    }
}

#[test]
fn lower_camel_case_json_reads_as_snake_case() {
    let camel = r#"{"virtualHosts": [{"name": "v", "domains": ["*"],
        "retryPolicy": {"retryOn": "5xx", "numRetries": 2, "perTryTimeout": "0.2s"},
        "routes": [{"name": "r", "match": {"safeRegex": {"regex": "/u/[0-9]+"}, "caseSensitive": false},
            "route": {"cluster": "c", "idleTimeout": "3s", "prefixRewrite": "/x",
                      "hashPolicy": [{"header": {"headerName": "x-user"}}]},
            "requestHeadersToAdd": [{"header": {"key": "x-a", "value": "1"}, "appendAction": "OVERWRITE_IF_EXISTS_OR_ADD"}]}]}]}"#;
    let snake = r#"{"virtual_hosts": [{"name": "v", "domains": ["*"],
        "retry_policy": {"retry_on": "5xx", "num_retries": 2, "per_try_timeout": "0.2s"},
        "routes": [{"name": "r", "match": {"safe_regex": {"regex": "/u/[0-9]+"}, "case_sensitive": false},
            "route": {"cluster": "c", "idle_timeout": "3s", "prefix_rewrite": "/x",
                      "hash_policy": [{"header": {"header_name": "x-user"}}]},
            "request_headers_to_add": [{"header": {"key": "x-a", "value": "1"}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}]}]}]}"#;
    let a = RouteTable::build(RouteConfig::from_envoy_json(camel).unwrap()).unwrap();
    let b = RouteTable::build(RouteConfig::from_envoy_json(snake).unwrap()).unwrap();
    for path in ["/u/1", "/U/2", "/x"] {
        let req = Request::get("h", path).header("x-user", "u");
        assert_eq!(outcome(&a, &req, 0), outcome(&b, &req, 0), "{path}");
    }
    let req = Request::get("h", "/u/2");
    assert_eq!(
        a.route(&req, 0).route().unwrap().route().idle_timeout_ms(),
        Some(3000)
    );
}

#[test]
fn json_and_values_load_too() {
    let json = r#"{"virtual_hosts": [{"name": "v", "domains": ["*"], "routes": [
        {"match": {"prefix": "/"}, "route": {"cluster": "c", "timeout": "3s"}}]}]}"#;
    let c = RouteConfig::from_envoy_json(json).unwrap();
    let t = RouteTable::build(c).unwrap();
    let req = Request::get("h", "/");
    assert_eq!(t.route(&req, 0).route().unwrap().route().timeout_ms(), 3000);
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    assert!(RouteConfig::from_envoy_value(v).is_ok());

    // YAML 1.1's `yes` and `y` are text, as in a RAUTA-shaped file.
    let c = RouteConfig::from_envoy_yaml(&one_route(
        "match: {prefix: /}\nroute: {cluster: c}\nrequest_headers_to_add: [{header: {key: x-a, value: yes}}, {header: {key: x-b, value: y}}]",
    ))
    .unwrap();
    let t = RouteTable::build(c).unwrap();
    let mut h: Vec<(String, String)> = Vec::new();
    t.route(&req, 0).route().unwrap().apply_request(&mut h);
    assert_eq!(
        h,
        [
            ("x-a".to_string(), "yes".to_string()),
            ("x-b".into(), "y".into())
        ]
    );
}

fn load_error(yaml: &str) -> String {
    RouteConfig::from_envoy_yaml(yaml)
        .and_then(RouteTable::build)
        .expect_err("must not load")
        .to_string()
}

fn one_route(route: &str) -> String {
    format!(
        r#"
virtual_hosts:
  - name: v
    domains: ["*"]
    routes:
      - name: r
{}
"#,
        route
            .lines()
            .map(|l| format!("        {l}\n"))
            .collect::<String>()
    )
}

#[test]
fn what_does_not_fit_is_an_error_naming_its_place() {
    let cases = [
        (
            "match: {prefix: /}\nroute: {cluster: c, timeout: 5}",
            r#"virtual_hosts[0] "v": routes[0] "r": route.timeout: 5 is not a duration"#,
        ),
        (
            "match: {prefix: /}\nroute: {cluster: c, retry_policy: {per_try_timeout: 1m}}",
            "route.retry_policy.per_try_timeout: \"1m\" is not a duration",
        ),
        (
            "match: {prefix: /}\nroute: {cluster: c, retry_policy: {retry_back_off: {base_interval: x}}}",
            "route.retry_policy.retry_back_off.base_interval",
        ),
        (
            "match: {prefix: /}\naction: {cluster: c}",
            "`action` is RAUTA's shape",
        ),
        (
            "match: {prefix: /}\nroute: {cluster: c}\ndecorator: {operation: x}",
            "unknown field `decorator`",
        ),
        (
            "match: {prefix: /}\nroute: {cluster: c, max_stream_duration: {grpc_timeout_header_max: 1}}",
            r#"routes[0] "r": route.max_stream_duration.grpc_timeout_header_max: 1 is not a duration"#,
        ),
        (
            "match: {prefix: /}\nroute: {cluster: c, max_stream_duration: {max_stream_duration_ms: 1}}",
            "`max_stream_duration_ms` is RAUTA's shape; Envoy's field is `max_stream_duration`",
        ),
        (
            "match: {prefix: /}\nroute: {cluster: c, max_grpc_timeout: 2m}",
            r#"route.max_grpc_timeout: "2m" is not a duration"#,
        ),
        (
            "match: {safe_regex: \"/x\"}\nroute: {cluster: c}",
            "match.safe_regex: expected {regex: <pattern>}",
        ),
        (
            "match: {path_match_policy: {name: other}}\nroute: {cluster: c}",
            "match.path_match_policy: only the envoy.path.match.uri_template extension is supported",
        ),
        (
            "match: {prefix: /}\nroute: {cluster: c, path_rewrite_policy: {name: envoy.path.rewrite.uri_template}}",
            "route.path_rewrite_policy: only the envoy.path.rewrite.uri_template extension",
        ),
        (
            "match: {prefix: /}\nroute: [c]",
            "route: expected a mapping, got a list",
        ),
        (
            "match: {prefix: /}\nroute: {cluster: c, hash_policy: [{cookie: {name: s, ttl: forever}}]}",
            "route.hash_policy[0].cookie.ttl",
        ),
        // RAUTA-only names are not read from Envoy-shaped input.
        (
            "match: {prefix: /}\nroute: {cluster: c, timeout_ms: 5}",
            "route.timeout_ms: `timeout_ms` is RAUTA's shape; Envoy's field is `timeout`",
        ),
        (
            "match: {prefix: /}\nroute: {cluster: c, timeout: 1s, timeout_ms: 5}",
            "route.timeout_ms: `timeout_ms` is RAUTA's shape",
        ),
        (
            "match: {prefix: /}\nroute: {cluster: c, retry_policy: {per_try_timeout_ms: 5}}",
            "route.retry_policy.per_try_timeout_ms",
        ),
        (
            "match: {regex: \"/x\"}\nroute: {cluster: c}",
            "match.regex: `regex` is RAUTA's shape; Envoy's is `safe_regex: {regex: ...}`",
        ),
        (
            "match: {path_template: \"/{x}\"}\nroute: {cluster: c}",
            "match.path_template: `path_template` is RAUTA's shape",
        ),
        (
            "match: {prefix: /}\nroute: {cluster: c, path_template_rewrite: /x}",
            "route.path_template_rewrite: `path_template_rewrite` is RAUTA's shape",
        ),
        (
            "match: {prefix: /}\ndirect_response: {status: 200, body_repeat: {char: x, count: 2}}",
            "direct_response.body_repeat: `body_repeat` is RAUTA's shape",
        ),
        // RAUTA's own validation still runs, with RAUTA's field names.
        (
            "match: {prefix: /}\nroute: {cluster: c, prefix_rewrite: /a, regex_rewrite: {pattern: {regex: x}, substitution: y}}",
            "Specify only one of prefix_rewrite, regex_rewrite or path_rewrite_policy",
        ),
    ];
    for (route, expect) in cases {
        let err = load_error(&one_route(route));
        assert!(err.contains(expect), "{route}\n{err}");
    }
    let err = load_error("\"@type\": type.googleapis.com/envoy.config.route.v3.VirtualHost\n");
    assert!(err.contains("@type: expected"), "{err}");
    let err = load_error("virtual_hosts: {name: v}\n");
    assert!(err.contains("virtual_hosts: expected a list"), "{err}");
    let err = load_error(
        "virtual_hosts: [{name: v, domains: [\"*\"], include_request_attempt_count: true}]\n",
    );
    assert!(
        err.contains(r#"virtual_hosts[0] "v": unknown field `include_request_attempt_count`"#),
        "{err}"
    );
    let err = load_error("vhds: {}\n");
    assert!(err.contains("unknown field `vhds`"), "{err}");
    let err = load_error("[1]\n");
    assert!(err.contains("must be a mapping"), "{err}");
    // Several problems are all reported.
    let err = load_error(&one_route(
        "match: {prefix: /}\nroute: {cluster: c, timeout: x, idle_timeout: y}",
    ));
    assert!(
        err.contains("route.timeout") && err.contains("route.idle_timeout"),
        "{err}"
    );
}

#[test]
fn an_envoy_file_read_as_rauta_s_shape_says_how_to_read_it() {
    for err in [
        RouteConfig::from_yaml(ENVOY).unwrap_err().to_string(),
        RouteConfig::from_yaml(&one_route("match: {prefix: /}\nroute: {cluster: c}"))
            .unwrap_err()
            .to_string(),
        RouteConfig::from_json(
            r#"{"virtual_hosts": [{"name": "v", "routes": [{"redirect": {}}]}]}"#,
        )
        .unwrap_err()
        .to_string(),
    ] {
        assert!(err.contains("RouteConfig::from_envoy_yaml"), "{err}");
    }
    // Other errors get no such hint.
    let err = RouteConfig::from_yaml("virtual_hosts: [{name: v, domainz: []}]")
        .unwrap_err()
        .to_string();
    assert!(!err.contains("Envoy"), "{err}");
}
