//! The decision API on real `http` types.

use rauta_router::config::{HeaderMatcher, Route, RouteConfig, VirtualHost};
use rauta_router::path::RejectReason;
use rauta_router::{ActionKind, BuildOptions, Decision, RouteTable};

fn table() -> RouteTable {
    RouteTable::from_yaml(
        r#"
name: t
request_headers_to_add: [{key: x-global, value: g, append_action: OVERWRITE_IF_EXISTS_OR_ADD}]
virtual_hosts:
  - name: api
    domains: ["api.example.com", "*.api.example.com"]
    request_headers_to_remove: [x-internal]
    routes:
      - name: beta
        match: {prefix: /v1, headers: [{name: x-beta, present_match: true}]}
        action: {cluster: beta, prefix_rewrite: /v2, host_rewrite_literal: beta.internal}
      - name: split
        match: {prefix: /v1}
        action:
          weighted_clusters:
            header_name: x-bucket
            clusters: [{name: a, weight: 1}, {name: b, weight: 1}]
      - name: tpl
        match: {path_template: "/u/{id}/**"}
        action: {cluster: users}
  - name: secure
    domains: [secure.example.com]
    require_tls: ALL
    routes: [{name: s, match: {prefix: /}, action: {cluster: s}}]
"#,
    )
    .unwrap()
}

#[test]
fn http_request_beta_route_with_mutations() {
    let t = table();
    let req = http::Request::builder()
        .uri("/v1/items?x=1")
        .header("host", "API.example.com")
        .header("x-beta", "yes")
        .header("x-internal", "secret")
        .body(())
        .unwrap();
    let Decision::Route(m) = t.route(&req, 0) else {
        panic!("no route")
    };
    assert_eq!(m.route_name(), "beta");
    assert_eq!(m.virtual_host().name(), "api");
    let mut headers = req.headers().clone();
    let up = m.apply_request(&mut headers);
    assert_eq!(up.path, "/v2/items?x=1");
    assert_eq!(up.host, "beta.internal");
    assert!(headers.get("x-internal").is_none());
    assert_eq!(headers.get("x-global").unwrap(), "g");
    assert_eq!(
        headers.get("x-envoy-original-path").unwrap(),
        "/v1/items?x=1"
    );
    assert_eq!(
        headers.get("x-envoy-original-host").unwrap(),
        "API.example.com"
    );
}

#[test]
fn weighted_cluster_from_header_or_random() {
    let t = table();
    let pick = |bucket: Option<&str>, random: u64| {
        let mut b = http::Request::builder().uri("http://x.api.example.com/v1");
        if let Some(v) = bucket {
            b = b.header("x-bucket", v);
        }
        let req = b.body(()).unwrap();
        t.route(&req, random)
            .route()
            .unwrap()
            .cluster()
            .unwrap()
            .to_string()
    };
    assert_eq!(pick(None, 0), "a");
    assert_eq!(pick(None, 1), "b");
    assert_eq!(pick(Some("3"), 0), "b");
    assert_eq!(pick(Some("not a number"), 0), "a");
}

#[test]
fn tls_redirect_and_path_rejects() {
    let t = table();
    let req = http::Request::builder()
        .uri("http://secure.example.com/a?b")
        .body(())
        .unwrap();
    match t.route(&req, 0) {
        Decision::TlsRedirect { location, .. } => {
            assert_eq!(location, "https://secure.example.com/a?b")
        }
        other => panic!("{other:?}"),
    }
    let req = http::Request::builder()
        .uri("https://api.example.com/u/%2e%2e/%2e%2e/etc")
        .body(())
        .unwrap();
    match t.route(&req, 0) {
        Decision::Reject { status, reason, .. } => {
            assert_eq!(status, 400);
            assert_eq!(reason, RejectReason::AboveRoot);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_path_policy_runs_before_the_tls_redirect() {
    let t = table();
    let plain = |target: &str| {
        http::Request::builder()
            .uri(format!("http://secure.example.com{target}"))
            .body(())
            .unwrap()
    };
    // A path the policy rejects is rejected over plain HTTP too, not sent
    // to https:// as it came.
    match t.route(&plain("/u/%2e%2e/%2e%2e/etc"), 0) {
        Decision::Reject { status, reason, .. } => {
            assert_eq!(status, 400);
            assert_eq!(reason, RejectReason::AboveRoot);
        }
        other => panic!("{other:?}"),
    }
    // The redirect carries the path as the policy left it, as Envoy's
    // carries the :path its connection manager normalized.
    match t.route(&plain("/a/./b/../c;v=1?q=%2e"), 0) {
        Decision::TlsRedirect { location, .. } => {
            assert_eq!(location, "https://secure.example.com/a/c;v=1?q=%2e")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn template_route_and_not_found() {
    let t = table();
    let req = rauta_router::Request::get("api.example.com", "/u/7/a/b");
    let m = t.route(&req, 0).into_route().unwrap();
    assert_eq!(m.action(), ActionKind::Forward { cluster: "users" });
    let req = rauta_router::Request::get("api.example.com", "/nothing");
    assert!(matches!(t.route(&req, 0), Decision::NotFound { vhost: Some(v) } if v.name() == "api"));
    let req = rauta_router::Request::get("other.example.com", "/");
    assert!(matches!(
        t.route(&req, 0),
        Decision::NotFound { vhost: None }
    ));
}

#[test]
fn builder_api_and_known_clusters() {
    let cfg = RouteConfig::new().name("built").virtual_host(
        VirtualHost::new("v", ["*"])
            .route(
                Route::prefix("/a")
                    .name("a")
                    .header(HeaderMatcher::exact("x-k", "1"))
                    .cluster("ca"),
            )
            .route(Route::prefix("/").name("rest").cluster("missing")),
    );
    let errs = RouteTable::build_with(cfg.clone(), &BuildOptions::default().known_clusters(["ca"]))
        .unwrap_err();
    assert_eq!(
        errs.to_string(),
        "virtual_hosts[0] \"v\": routes[1] \"rest\": action.cluster: route: unknown cluster 'missing'"
    );
    assert_eq!(errs.errors()[0].route(), Some((1, "rest")));
    assert_eq!(errs.errors()[0].field_path(), Some("action.cluster"));
    let t = RouteTable::build(cfg).unwrap();
    assert_eq!(t.route_count(), 2);
}

#[test]
fn every_error_is_reported_at_once() {
    let errs = RouteTable::from_yaml(
        r#"
virtual_hosts:
  - name: a
    domains: ["*", "*"]
    routes:
      - {name: r1, match: {regex: "(+"}, action: {cluster: c}}
      - {name: r2, match: {prefix: /}, action: {cluster: c, prefix_rewrite: /x, regex_rewrite: {pattern: x, substitution: y}}}
      - {name: r3, match: {prefix: /}, action: {direct_response: {status: 200, body_repeat: {char: A, count: 5000}}}}
"#,
    )
    .unwrap_err();
    let text = errs.to_string();
    assert_eq!(errs.len(), 4, "{text}");
    assert!(text.contains("Only a single wildcard domain is permitted"));
    assert!(text.contains("no argument for repetition operator"));
    assert!(
        text.contains("Specify only one of prefix_rewrite, regex_rewrite or path_rewrite_policy")
    );
    assert!(text.contains("response body size is 5000 bytes; maximum is 4096"));
}

#[test]
fn runtime_fraction_uses_the_random_value() {
    let t = RouteTable::from_yaml(
        r#"
virtual_hosts:
  - name: v
    domains: ["*"]
    routes:
      - name: canary
        match: {prefix: /, runtime_fraction: {default_value: {numerator: 5, denominator: HUNDRED}}}
        action: {cluster: canary}
      - {name: main, match: {prefix: /}, action: {cluster: main}}
"#,
    )
    .unwrap();
    let req = rauta_router::Request::get("a", "/");
    let pick = |r: u64| t.route(&req, r).route().unwrap().route_name().to_string();
    assert_eq!(pick(4), "canary");
    assert_eq!(pick(104), "canary");
    assert_eq!(pick(5), "main");
    assert_eq!(pick(99), "main");
}

#[test]
fn prefix_rewrite_skips_stripped_path_parameters() {
    let t = RouteTable::from_yaml(
        r#"
virtual_hosts:
  - name: v
    domains: ["*"]
    routes:
      - {name: api, match: {prefix: /api/}, action: {cluster: c, prefix_rewrite: /}}
"#,
    )
    .unwrap();
    let req = rauta_router::Request::get("a", "/api;v=1/users?x=1");
    let m = t.route(&req, 0).into_route().unwrap();
    assert_eq!(m.match_path(), "/api/users");
    assert_eq!(m.rewritten_path().as_deref(), Some("/users?x=1"));
}

#[test]
fn prefix_rewrite_replaces_what_matched_around_stripped_segments() {
    let yaml = r#"
virtual_hosts:
  - name: v
    domains: ["*"]
    routes:
      - {name: admin, match: {prefix: /admin}, action: {cluster: c, prefix_rewrite: /internal}}
      - {name: ab, match: {prefix: /a/b}, action: {cluster: c, prefix_rewrite: /z}}
      - {name: params, match: {prefix: "/p;v=1/"}, action: {cluster: c, prefix_rewrite: /x/}}
"#;
    let t = RouteTable::from_yaml(yaml).unwrap();
    // A segment left empty by the cut is dropped from the match path.
    for (path, want) in [
        ("/;x/admin", "/internal"),
        ("/;x/admin/7?q=1", "/internal/7?q=1"),
        ("/admin;v=2/7", "/internal/7"),
        ("/a/;x/b", "/z"),
        ("/a;k/;x/b;j/c", "/z/c"),
    ] {
        let req = rauta_router::Request::get("h", path);
        let m = t.route(&req, 0).into_route().unwrap();
        assert_eq!(m.rewritten_path().as_deref(), Some(want), "{path}");
    }
    // Raw paths keep the parameters: the first len(prefix) bytes go.
    let raw = RouteTable::build_with(
        rauta_router::config::RouteConfig::from_yaml(yaml).unwrap(),
        &BuildOptions::default().raw_paths(true),
    )
    .unwrap();
    let req = rauta_router::Request::get("h", "/p;v=1/b?q=1");
    let m = raw.route(&req, 0).into_route().unwrap();
    assert_eq!(m.rewritten_path().as_deref(), Some("/x/b?q=1"));
}

#[test]
fn direct_response_location_for_201_and_3xx() {
    let t = RouteTable::from_yaml(
        r#"
virtual_hosts:
  - name: v
    domains: ["*"]
    routes:
      - {name: created, match: {path: /new}, action: {direct_response: {status: 201}}}
      - {name: ok, match: {prefix: /}, action: {direct_response: {status: 200, body: hi}}}
"#,
    )
    .unwrap();
    let req = rauta_router::Request::get("a.com", "/new?x").scheme("https");
    let m = t.route(&req, 0).into_route().unwrap();
    assert_eq!(
        m.direct_response_location().as_deref(),
        Some("https://a.com/new?x")
    );
    let req = rauta_router::Request::get("a.com", "/other");
    assert_eq!(
        t.route(&req, 0)
            .into_route()
            .unwrap()
            .direct_response_location(),
        None
    );
}

#[test]
fn virtual_cluster_matchers_are_checked_at_load() {
    let e = RouteTable::from_yaml(
        r#"
virtual_hosts:
  - name: v
    domains: ["*"]
    routes: [{name: r, match: {prefix: /}, action: {cluster: c}}]
    virtual_clusters: [{name: vc, headers: [{name: ":path", string_match: {safe_regex: "(+"}}]}]
"#,
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("virtual_clusters[0].headers[0].string_match.safe_regex"),
        "{e}"
    );
}

#[test]
fn host_normalization_before_vhost_selection() {
    let mut cfg = RouteConfig::from_yaml(
        r#"
host_normalization: {strip_matching_host_port: 8443, strip_trailing_host_dot: true}
virtual_hosts:
  - {name: a, domains: [a.com], routes: [{name: a, match: {prefix: /}, action: {cluster: a}}]}
  - {name: other, domains: ["*"], routes: [{name: o, match: {prefix: /}, action: {cluster: o}}]}
"#,
    )
    .unwrap();
    let t = RouteTable::build(cfg.clone()).unwrap();
    let route = |t: &RouteTable, host: &str| {
        let req = rauta_router::Request::get(host, "/");
        let m = t.route(&req, 0).into_route().unwrap();
        (m.route_name().to_string(), m.host().to_string())
    };
    assert_eq!(route(&t, "a.com.:8443"), ("a".into(), "a.com".into()));
    assert_eq!(route(&t, "a.com:9000"), ("o".into(), "a.com:9000".into()));
    cfg.host_normalization = None;
    let t = RouteTable::build(cfg).unwrap();
    assert_eq!(route(&t, "a.com.:8443"), ("o".into(), "a.com.:8443".into()));
}

#[test]
fn connect_routes_without_the_port_and_puts_it_back_upstream() {
    let t = RouteTable::from_yaml(
        r#"
virtual_hosts:
  - name: tunnel
    domains: ["bat3.com", "[::1]"]
    routes: [{name: c, match: {connect_matcher: {}}, action: {cluster: tunnels}}]
"#,
    )
    .unwrap();
    for (target, upstream_host) in [
        ("bat3.com:443", "bat3.com:443"),
        ("[::1]:8443", "[::1]:8443"),
        ("bat3.com", "bat3.com"),
    ] {
        let req = http::Request::builder()
            .method("CONNECT")
            .uri(target)
            .body(())
            .unwrap();
        let Decision::Route(m) = t.route(&req, 0) else {
            panic!("{target}: no route")
        };
        assert_eq!(m.route_name(), "c", "{target}");
        let up = m.apply_request(&mut http::HeaderMap::new());
        assert_eq!(up.host, upstream_host, "{target}");
    }
    // Only CONNECT: a GET keeps its port for virtual host selection.
    let req = http::Request::builder()
        .uri("/")
        .header("host", "bat3.com:443")
        .body(())
        .unwrap();
    assert!(!matches!(t.route(&req, 0), Decision::Route(_)));
}

/// `edits_response` is true exactly when some level that applies to the
/// match (weighted entry, route, virtual host, table) has response edits.
#[test]
fn edits_response_follows_every_level() {
    let t = RouteTable::from_yaml(
        r#"
virtual_hosts:
  - name: plain
    domains: [plain]
    routes:
      - {name: none, match: {prefix: /none}, action: {cluster: a}}
      - name: route
        match: {prefix: /route}
        action: {cluster: a}
        response_headers_to_remove: [server]
      - name: split
        match: {prefix: /split}
        action:
          weighted_clusters:
            clusters:
              - {name: a, weight: 1}
              - {name: b, weight: 1, response_headers_to_add: [{header: {key: x-b, value: "1"}}]}
  - name: vhost
    domains: [vhost]
    response_headers_to_add: [{header: {key: x-v, value: "1"}}]
    routes: [{name: v, match: {prefix: /}, action: {cluster: a}}]
"#,
    )
    .unwrap();
    // `random` picks the weighted entry: 0 the first, 1 the second.
    let edits = |host: &str, path: &str, random: u64| {
        let req = http::Request::builder()
            .uri(path)
            .header("host", host)
            .body(())
            .unwrap();
        let Decision::Route(m) = t.route(&req, random) else {
            panic!("no route for {host}{path}")
        };
        m.edits_response()
    };
    assert!(!edits("plain", "/none", 0));
    assert!(edits("plain", "/route", 0));
    assert!(edits("vhost", "/", 0));
    assert!(!edits("plain", "/split", 0));
    assert!(edits("plain", "/split", 1));
    let top = RouteTable::from_yaml(
        r#"
response_headers_to_add: [{header: {key: x-t, value: "1"}}]
virtual_hosts: [{name: all, domains: ["*"], routes: [{name: r, match: {prefix: /}, action: {cluster: a}}]}]
"#,
    )
    .unwrap();
    let req = http::Request::builder()
        .uri("/")
        .header("host", "x")
        .body(())
        .unwrap();
    let Decision::Route(m) = top.route(&req, 0) else {
        panic!("no route")
    };
    assert!(m.edits_response());
}

/// A template rewrite reads the variables again from the path the route
/// matched (a decision does not keep them): with `;` path parameters,
/// ignored or not, and with a query or fragment after the path, the index
/// and the ordered scan must give the same upstream path.
#[test]
fn template_rewrite_reads_variables_past_parameters_and_fragments() {
    let yaml = |ignore: bool| {
        format!(
            r#"
ignore_path_parameters_in_path_matching: {ignore}
virtual_hosts:
  - name: v
    domains: ["*"]
    routes:
      - name: files
        match: {{path_template: "/u/{{id}}/{{file}}"}}
        action: {{cluster: c, path_template_rewrite: "/users/{{id}}/f/{{file}}"}}
      - name: deep
        match: {{path_template: "/d/{{id}}/**"}}
        action: {{cluster: c, path_template_rewrite: "/deep/{{id}}"}}
"#
        )
    };
    let raw = BuildOptions::default().raw_paths(true);
    let cases: &[(bool, &str, Option<&str>)] = &[
        // Parameters ignored: the route matches on the path cut at ';',
        // and the variables come from there.
        (true, "/u/42/a.txt;v=1?x=1", Some("/users/42/f/a.txt?x=1")),
        (true, "/u/42;v=1", None),
        (true, "/d/7/x;s=1/y#top", Some("/deep/7#top")),
        // Cut at the first ';', as Envoy cuts: `/d/7` has no `/` for `/**`.
        (true, "/d/7;s=1/x/y", None),
        // Parameters kept: ';' is a pchar, part of the variable.
        (
            false,
            "/u/4;2/a.txt;v=1?x=1",
            Some("/users/4;2/f/a.txt;v=1?x=1"),
        ),
        (false, "/u/42/a.txt#frag", Some("/users/42/f/a.txt#frag")),
        (
            false,
            "/u/42/a.txt?q=/u/1/2",
            Some("/users/42/f/a.txt?q=/u/1/2"),
        ),
        (false, "/d/7/x;y/z?k", Some("/deep/7?k")),
    ];
    for &(ignore, path, want) in cases {
        let cfg = RouteConfig::from_yaml(&yaml(ignore)).unwrap();
        let t = RouteTable::build_with(cfg, &raw).unwrap();
        let req = rauta_router::Request::get("a", path);
        let by_index = t.route(&req, 0).into_route().map(|m| m.rewritten_path());
        let by_scan = t
            .route_linear(&req, 0)
            .into_route()
            .map(|m| m.rewritten_path());
        assert_eq!(by_index, by_scan, "{path} (ignore parameters: {ignore})");
        assert_eq!(
            by_index.flatten().as_deref(),
            want,
            "{path} (ignore parameters: {ignore})"
        );
    }
}

/// A view that implements only `header_values`, so the router reads it
/// through the provided `for_each_header_value`.
struct Minimal(rauta_router::Request);

impl rauta_router::RequestView for Minimal {
    fn method(&self) -> &str {
        &self.0.method
    }
    fn scheme(&self) -> Option<&str> {
        self.0.scheme.as_deref()
    }
    fn authority(&self) -> Option<&str> {
        self.0.authority.as_deref()
    }
    fn path_and_query(&self) -> Option<&str> {
        self.0.path.as_deref()
    }
    fn header_values<'a>(&'a self, name: &str, out: &mut rauta_router::HeaderValues<'a>) {
        for (n, v) in &self.0.headers {
            if n.eq_ignore_ascii_case(name) {
                out.push(v.as_bytes());
            }
        }
    }
}

#[test]
fn repeated_headers_are_joined_with_commas_and_cookies_with_semicolons() {
    let long = "v".repeat(300);
    let t = RouteTable::build(
        RouteConfig::new().virtual_host(
            VirtualHost::new("v", ["*"])
                .route(
                    Route::prefix("/")
                        .name("roles")
                        .header(HeaderMatcher::exact("x-role", "user,admin,root"))
                        .cluster("c"),
                )
                .route(
                    Route::prefix("/")
                        .name("session")
                        .header(HeaderMatcher::regex("cookie", "(.*; )?session=abc(;.*)?"))
                        .cluster("c"),
                )
                .route(
                    Route::prefix("/")
                        .name("long")
                        .header(HeaderMatcher::exact(
                            "x-long",
                            format!("{long},{long},{long}"),
                        ))
                        .cluster("c"),
                )
                .route(Route::prefix("/").name("rest").cluster("c")),
        ),
    )
    .unwrap();
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![("x-role", "user"), ("x-role", "admin"), ("x-role", "root")],
            "roles",
        ),
        (vec![("x-role", "user,admin,root")], "roles"),
        (vec![("x-role", "user"), ("x-role", "admin")], "rest"),
        (
            vec![
                ("x-role", "user"),
                ("x-other", "admin"),
                ("X-Role", "admin"),
                ("x-role", "root"),
            ],
            "roles",
        ),
        // HTTP/2 sends each cookie in its own field (RFC 9113 8.2.3); Envoy
        // puts them back together with "; ".
        (
            vec![
                ("cookie", "a=1"),
                ("cookie", "session=abc"),
                ("cookie", "b=2"),
            ],
            "session",
        ),
        (vec![("cookie", "a=1; session=abc")], "session"),
        (vec![("cookie", "a=1,session=abc")], "rest"),
        (vec![("cookie", "session=abcd"), ("cookie", "a=1")], "rest"),
        (
            vec![("x-long", &long), ("x-long", &long), ("x-long", &long)],
            "long",
        ),
        (vec![("x-long", &long), ("x-long", &long)], "rest"),
    ];
    let mut scratch = rauta_router::RouteScratch::new();
    for (headers, want) in &cases {
        let mut plain = rauta_router::Request::get("a.example", "/x");
        let mut http = http::Request::builder()
            .uri("/x")
            .header("host", "a.example");
        for (n, v) in headers {
            plain = plain.header(*n, *v);
            http = http.header(*n, *v);
        }
        let http = http.body(()).unwrap();
        let minimal = Minimal(plain.clone());
        let names = [
            t.route(&plain, 0)
                .route()
                .map(|m| m.route_name().to_owned()),
            t.route(&http, 0).route().map(|m| m.route_name().to_owned()),
            t.route(&minimal, 0)
                .route()
                .map(|m| m.route_name().to_owned()),
            t.route_in(&plain, 0, &mut scratch)
                .route()
                .map(|m| m.route_name().to_owned()),
            t.route_linear(&http, 0)
                .route()
                .map(|m| m.route_name().to_owned()),
        ];
        for got in &names {
            assert_eq!(got.as_deref(), Some(*want), "{headers:?}");
        }
        // `explain` tests the headers the same way: only the route taken
        // passes.
        let explained = t.explain(&plain, 0);
        let passed: Vec<_> = explained
            .routes
            .iter()
            .filter(|v| v.failed.is_none())
            .map(|v| v.route.name())
            .collect();
        assert_eq!(passed, [*want], "{headers:?}");
    }
}

#[test]
fn an_alternate_host_header_picks_the_virtual_host_only() {
    let t = RouteTable::from_yaml(
        r#"
alternate_header_for_host_matching: x-original-host
virtual_hosts:
  - name: evil
    domains: ["evil.example"]
    require_tls: ALL
    routes:
      - {name: bounce, match: {prefix: /r}, action: {redirect: {https_redirect: true}}}
      - {name: fwd, match: {prefix: /}, action: {cluster: c}}
  - name: other
    domains: ["*"]
    routes: [{name: rest, match: {prefix: /}, action: {cluster: d}}]
"#,
    )
    .unwrap();
    let req = rauta_router::Request::get("good.example", "/r/x")
        .header("x-original-host", "evil.example")
        .scheme("https");
    let d = t.route(&req, 0);
    let m = d.route().expect("routed");
    assert_eq!(
        m.route_name(),
        "bounce",
        "the header picked the virtual host"
    );
    assert_eq!(m.host(), "good.example");
    assert_eq!(
        m.redirect_location().as_deref(),
        Some("https://good.example/r/x")
    );
    let req =
        rauta_router::Request::get("good.example", "/x").header("x-original-host", "evil.example");
    match t.route(&req, 0) {
        Decision::TlsRedirect { location, .. } => assert_eq!(location, "https://good.example/x"),
        other => panic!("{other:?}"),
    }
    // Without the header, the authority picks.
    let req = rauta_router::Request::get("evil.example", "/x").scheme("https");
    assert_eq!(
        t.route(&req, 0).route().map(|m| m.route_name()),
        Some("fwd")
    );
    let req = rauta_router::Request::get("good.example", "/x").scheme("https");
    assert_eq!(
        t.route(&req, 0).route().map(|m| m.route_name()),
        Some("rest")
    );
}

#[test]
fn control_characters_in_a_weighted_host_rewrite_are_a_load_error() {
    let yaml = r#"
virtual_hosts:
  - name: v
    domains: ["*"]
    routes:
      - name: split
        match: {prefix: /}
        action:
          weighted_clusters:
            clusters:
              - {name: a, weight: 1, host_rewrite_literal: "ok.example"}
              - {name: b, weight: 1, host_rewrite_literal: "b.example\r\nx-injected: 1"}
"#;
    let err = RouteTable::from_yaml(yaml).unwrap_err().to_string();
    assert!(err.contains("host_rewrite_literal"), "{err}");
    assert!(err.contains("clusters[1]"), "{err}");
    assert!(err.contains("control characters"), "{err}");
    assert!(RouteTable::from_yaml(&yaml.replace("\\r\\nx-injected: 1", "")).is_ok());
}

#[test]
fn the_index_reads_regexes_with_unicode_as_the_scan_does() {
    let yaml = r#"
virtual_hosts:
  - name: v
    domains: ["*"]
    routes:
      - {name: e, match: {regex: "(?i)/é"}, action: {cluster: c}}
      - {name: kelvin, match: {regex: "(?i)/k"}, action: {cluster: c}}
      - {name: not-x, match: {regex: "/[^x]z"}, action: {cluster: c}}
      - {name: two, match: {regex: "/.{2}"}, action: {cluster: c}}
"#;
    let t = RouteTable::build_with(
        rauta_router::config::RouteConfig::from_yaml(yaml).unwrap(),
        &BuildOptions::default().raw_paths(true),
    )
    .unwrap();
    for (path, want) in [
        ("/É", Some("e")),
        ("/é", Some("e")),
        ("/\u{212a}", Some("kelvin")),
        ("/K", Some("kelvin")),
        ("/éé", Some("two")),
        ("/éz", Some("not-x")),
        ("/xz", Some("two")),
        ("/ééé", None),
    ] {
        let req = rauta_router::Request::get("h", path);
        let fast = t.route(&req, 0).route().map(|m| m.route_name().to_owned());
        let slow = t
            .route_linear(&req, 0)
            .route()
            .map(|m| m.route_name().to_owned());
        assert_eq!(slow.as_deref(), want, "{path} (scan)");
        assert_eq!(fast, slow, "{path}");
    }
}

#[test]
fn header_values_format_commands_with_the_context_given() {
    use rauta_router::FormatContext;
    let t = RouteTable::from_yaml(
        r#"
response_headers_to_add:
  - {header: {key: x-served-by, value: "%HOSTNAME%/%UPSTREAM_HOST%"}}
  - {header: {key: x-was, value: "%RESP(x-a)%+%REQ(x-id)%"}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}
virtual_hosts:
  - name: v
    domains: ["*"]
    routes:
      - name: r
        match: {prefix: /}
        action: {cluster: c}
        request_headers_to_add:
          - {header: {key: x-real-ip, value: "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"}}
          - {header: {key: x-via, value: "%PROTOCOL% %REQ(:METHOD)% %REQ(:AUTHORITY)%%REQ(:PATH)%"}}
          - {header: {key: x-id-copy, value: "%REQ(x-id)%"}}
"#,
    )
    .unwrap();
    let req = rauta_router::Request::get("h.example", "/a/./b?x").header("x-id", "7");
    let d = t.route(&req, 0);
    let m = d.route().expect("routed");
    assert!(m.formats_header_values());
    let peer = "[2001:db8::1]:4000".parse().unwrap();
    let ctx = FormatContext::new()
        .downstream_remote_address(peer)
        .protocol("HTTP/2")
        .hostname("edge-1")
        .upstream_remote_address("198.18.0.9:80".parse().unwrap())
        .request(&req);
    let mut headers: Vec<(String, String)> = vec![("x-id".into(), "7".into())];
    m.apply_request_with(&mut headers, &ctx);
    let get =
        |h: &[(String, String)], n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    assert_eq!(get(&headers, "x-real-ip").as_deref(), Some("2001:db8::1"));
    // The path as the policy normalized it.
    assert_eq!(
        get(&headers, "x-via").as_deref(),
        Some("HTTP/2 GET h.example/a/b?x")
    );
    assert_eq!(get(&headers, "x-id-copy").as_deref(), Some("7"));
    let mut resp: Vec<(String, String)> = vec![("x-a".into(), "1".into())];
    m.apply_response_with(&mut resp, &ctx);
    assert_eq!(
        get(&resp, "x-served-by").as_deref(),
        Some("edge-1/198.18.0.9:80")
    );
    assert_eq!(get(&resp, "x-was").as_deref(), Some("1+7"));
    // Without a context the connection's commands format as empty, and a
    // value that comes out empty is not added.
    let mut headers = Vec::new();
    m.apply_request(&mut headers);
    assert_eq!(get(&headers, "x-real-ip"), None);
    assert_eq!(
        get(&headers, "x-via").as_deref(),
        Some(" GET h.example/a/b?x")
    );

    // %ROUTE_NAME% is the configured name; an unnamed route (called
    // `routes[N]` elsewhere) formats as empty, as in Envoy.
    let t = RouteTable::from_yaml(
        r#"
request_headers_to_add:
  - {header: {key: x-route, value: "%ROUTE_NAME%"}}
  - {header: {key: x-route-kept, value: "[%ROUTE_NAME%]"}}
virtual_hosts:
  - name: v
    domains: ["*"]
    routes:
      - {name: named, match: {path: /n}, action: {cluster: c}}
      - {match: {prefix: /}, action: {cluster: c}}
"#,
    )
    .unwrap();
    for (path, route, kept) in [("/n", Some("named"), "[named]"), ("/x", None, "[]")] {
        let req = rauta_router::Request::get("h", path);
        let d = t.route(&req, 0);
        let m = d.route().expect("routed");
        let mut headers = Vec::new();
        m.apply_request(&mut headers);
        assert_eq!(get(&headers, "x-route").as_deref(), route, "{path}");
        assert_eq!(get(&headers, "x-route-kept").as_deref(), Some(kept));
    }
    assert_eq!(t.virtual_hosts()[0].routes()[1].name(), "routes[1]");

    // An unknown command is a load error naming the field.
    let err = RouteTable::from_yaml(
        r#"
virtual_hosts:
  - name: v
    domains: ["*"]
    request_headers_to_add:
      - {header: {key: x-ok, value: "%ROUTE_NAME%"}}
      - {header: {key: x-bad, value: "id=%REQ_ID%"}}
    routes: [{name: r, match: {prefix: /}, action: {cluster: c}}]
"#,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("request_headers_to_add[1]")
            && err.contains("%REQ_ID% is not a supported command"),
        "{err}"
    );
}

#[test]
fn template_variables_over_several_segments_route_and_rewrite() {
    let t = RouteTable::from_yaml(
        r#"
virtual_hosts:
  - name: v
    domains: ["*"]
    routes:
      - name: book
        match: {path_template: "/v1/{name=shelves/*/books/*}"}
        action: {cluster: books, path_template_rewrite: "/books/{name}"}
      - name: shelf
        match: {path_template: "/v1/{parent=shelves/*}/books"}
        action: {cluster: books, path_template_rewrite: "/list/{parent}"}
      - name: media
        match: {path_template: "/m/{rest=videos/**}.m3u8"}
        action: {cluster: media, path_template_rewrite: "/{rest}"}
      - name: other
        match: {prefix: /}
        action: {cluster: other}
"#,
    )
    .unwrap();
    for (path, route, upstream) in [
        (
            "/v1/shelves/s1/books/b2",
            "book",
            "/books/shelves/s1/books/b2",
        ),
        (
            "/v1/shelves/s1/books/b2?x=1",
            "book",
            "/books/shelves/s1/books/b2?x=1",
        ),
        ("/v1/shelves/s1/books", "shelf", "/list/shelves/s1"),
        ("/m/videos/a/b.m3u8", "media", "/videos/a/b"),
        (
            "/v1/shelves/s1/papers/b2",
            "other",
            "/v1/shelves/s1/papers/b2",
        ),
        ("/v1/shelves//books/b2", "other", "/v1/shelves/books/b2"),
        ("/m/audio/a.m3u8", "other", "/m/audio/a.m3u8"),
    ] {
        let req = rauta_router::Request::get("h", path);
        for d in [t.route(&req, 0), t.route_linear(&req, 0)] {
            let m = d.route().unwrap_or_else(|| panic!("{path}: {d:?}"));
            assert_eq!(m.route_name(), route, "{path}");
            let up = m.apply_request(&mut Vec::<(String, String)>::new());
            assert_eq!(up.path, upstream, "{path}");
        }
    }
    let err = RouteTable::from_yaml(
        r#"
virtual_hosts:
  - name: v
    domains: ["*"]
    routes: [{name: r, match: {path_template: "/v1/{name=shelves//books}"}, action: {cluster: c}}]
"#,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("invalid variable match"), "{err}");
}

#[test]
fn internal_only_headers_are_unseen_and_removed_on_external_requests() {
    let t = RouteTable::from_yaml(
        r#"
internal_only_headers: [X-Tenant, x-pick]
virtual_hosts:
  - name: v
    domains: ["*"]
    routes:
      - name: admin
        match: {prefix: /, headers: [{name: x-tenant, string_match: {exact: root}}]}
        action: {cluster: admin}
      - name: picked
        match: {prefix: /p}
        action: {cluster_header: x-pick}
      - name: readd
        match: {prefix: /r}
        action: {cluster: web}
        request_headers_to_add: [{key: x-tenant, value: set-by-route}]
      - name: web
        match: {prefix: /}
        action: {cluster: web}
"#,
    )
    .unwrap();
    assert_eq!(
        t.internal_only_headers().collect::<Vec<_>>(),
        ["x-tenant", "x-pick"]
    );
    let routed = |req: &rauta_router::Request| {
        let d = t.route(req, 0);
        let m = d.route().expect("routed");
        let mut headers: Vec<(String, String)> = req.headers.clone();
        m.apply_request(&mut headers);
        let tenant: Vec<String> = headers
            .iter()
            .filter(|(n, _)| n == "x-tenant")
            .map(|(_, v)| v.clone())
            .collect();
        (
            m.route_name().to_owned(),
            m.cluster().unwrap_or("").to_owned(),
            tenant,
        )
    };
    // External: the header neither matches nor reaches the upstream.
    let ext = rauta_router::Request::get("h", "/x").header("x-tenant", "root");
    assert_eq!(routed(&ext), ("web".into(), "web".into(), vec![]));
    let ext = rauta_router::Request::get("h", "/p").header("x-pick", "admin");
    assert_eq!(routed(&ext).1, "", "cluster_header does not read it");
    // A route may add it back, as Envoy's mutations run after the removal.
    let ext = rauta_router::Request::get("h", "/r").header("x-tenant", "root");
    assert_eq!(
        routed(&ext),
        ("readd".into(), "web".into(), vec!["set-by-route".into()])
    );
    // Internal: seen and kept.
    let int = rauta_router::Request::get("h", "/x")
        .header("x-tenant", "root")
        .header("x-envoy-internal", "true");
    assert_eq!(
        routed(&int),
        ("admin".into(), "admin".into(), vec!["root".into()])
    );
    let int = rauta_router::Request::get("h", "/p")
        .header("x-pick", "c9")
        .header("x-envoy-internal", "true");
    assert_eq!(routed(&int).1, "c9");
    // explain agrees with route.
    let ext = rauta_router::Request::get("h", "/x").header("x-tenant", "root");
    let e = t.explain(&ext, 0);
    assert!(e.routes[0].failed.is_some(), "{e:?}");

    let err =
        RouteTable::from_yaml("internal_only_headers: [':path', 'bad name']\nvirtual_hosts: []\n")
            .unwrap_err()
            .to_string();
    assert!(
        err.contains("internal_only_headers[0]") && err.contains("internal_only_headers[1]"),
        "{err}"
    );
}

#[test]
fn typed_per_filter_config_most_specific_level_wins_and_metadata_is_kept() {
    let t = RouteTable::from_yaml(
        r#"
typed_per_filter_config:
  auth: {level: config}
  cors: {origins: ["*"]}
virtual_hosts:
  - name: v
    domains: ["*"]
    typed_per_filter_config:
      auth: {level: vhost}
    metadata: {filter_metadata: {team: {owner: payments}}}
    routes:
      - name: split
        metadata: {filter_metadata: {ns: {k: 1}}}
        match: {prefix: /split}
        action:
          weighted_clusters:
            clusters:
              - {name: a, weight: 1, typed_per_filter_config: {auth: {level: entry}}}
              - {name: b, weight: 1}
        typed_per_filter_config:
          auth: {level: route}
          ratelimit: [1, 2, 3]
      - name: plain
        match: {prefix: /}
        action: {cluster: c}
"#,
    )
    .unwrap();
    let cfg = |path: &str, random: u64, filter: &str| {
        let req = rauta_router::Request::get("h", path);
        let d = t.route(&req, random);
        d.route()
            .expect("routed")
            .per_filter_config(filter)
            .cloned()
    };
    let level = |path, random| cfg(path, random, "auth").map(|v| v["level"].clone());
    assert_eq!(level("/split", 0), Some("entry".into()));
    assert_eq!(level("/split", 1), Some("route".into()));
    assert_eq!(level("/x", 0), Some("vhost".into()));
    assert_eq!(
        cfg("/split", 1, "ratelimit"),
        Some(serde_json::json!([1, 2, 3]))
    );
    assert_eq!(cfg("/x", 0, "ratelimit"), None);
    assert_eq!(
        cfg("/x", 0, "cors"),
        Some(serde_json::json!({"origins": ["*"]}))
    );
    assert_eq!(cfg("/x", 0, "missing"), None);
    let vh = &t.virtual_hosts()[0];
    assert_eq!(vh.filter_config("auth").unwrap()["level"], "vhost");
    assert_eq!(
        vh.metadata().unwrap()["filter_metadata"]["team"]["owner"],
        "payments"
    );
    assert_eq!(
        vh.routes()[0].metadata().unwrap()["filter_metadata"]["ns"]["k"],
        1
    );
    assert_eq!(vh.routes()[1].metadata(), None);
    assert_eq!(t.metadata(), None);
    assert_eq!(vh.routes()[1].filter_config("auth"), None);
    assert_eq!(t.filter_config("cors").unwrap()["origins"][0], "*");
}

#[test]
fn request_mirror_policies_nearest_level_and_fraction() {
    use rauta_router::{shadow_host, Mirror};
    let t = RouteTable::build_with(
        RouteConfig::from_yaml(
            r#"
request_mirror_policies: [{cluster: global-shadow}]
virtual_hosts:
  - name: v
    domains: ["v.example"]
    request_mirror_policies:
      - {cluster: vh-shadow, runtime_fraction: {default_value: {numerator: 50, denominator: HUNDRED}}}
      - {cluster_header: x-mirror-to, disable_shadow_host_suffix_append: true}
    routes:
      - name: own
        match: {prefix: /own}
        action:
          cluster: main
          request_mirror_policies: [{cluster: route-shadow}]
      - {name: redirect, match: {prefix: /r}, action: {redirect: {path_redirect: /x}}}
      - {name: rest, match: {prefix: /}, action: {cluster: main}}
  - name: w
    domains: ["*"]
    routes: [{name: w, match: {prefix: /}, action: {cluster: main}}]
"#,
        )
        .unwrap(),
        &BuildOptions::default().known_clusters([
            "main",
            "global-shadow",
            "vh-shadow",
            "route-shadow",
        ]),
    )
    .unwrap();
    let mirrors = |host: &str, path: &str, random: u64, header: Option<&str>| {
        let mut req = rauta_router::Request::get(host, path);
        if let Some(h) = header {
            req = req.header("x-mirror-to", h);
        }
        let d = t.route(&req, random);
        let m = d.route().expect("routed");
        m.mirrors(&req, random)
            .map(
                |Mirror {
                     cluster,
                     shadow_suffix,
                     ..
                 }| (cluster.to_owned(), shadow_suffix),
            )
            .collect::<Vec<_>>()
    };
    let s = |c: &str, b: bool| (c.to_owned(), b);
    assert_eq!(
        mirrors("v.example", "/own", 99, None),
        [s("route-shadow", true)]
    );
    assert_eq!(
        mirrors("v.example", "/x", 49, Some("c7")),
        [s("vh-shadow", true), s("c7", false)]
    );
    assert_eq!(mirrors("v.example", "/x", 50, None), []);
    assert_eq!(
        mirrors("v.example", "/r", 0, None),
        [],
        "only forwarding routes mirror"
    );
    assert_eq!(
        mirrors("w.example", "/", 7, None),
        [s("global-shadow", true)]
    );

    assert_eq!(shadow_host("api.example.com"), "api.example.com-shadow");
    assert_eq!(
        shadow_host("api.example.com:8080"),
        "api.example.com-shadow:8080"
    );
    assert_eq!(shadow_host("[::1]:8080"), "[::1]-shadow:8080");

    for (policy, says) in [
        ("{cluster: nowhere}", "unknown cluster 'nowhere'"),
        ("{cluster: main, cluster_header: x}", "Only one of cluster"),
        (
            "{runtime_fraction: {default_value: {numerator: 1}}}",
            "Exactly one of cluster or cluster_header",
        ),
        ("{cluster_header: 'bad name'}", "not a valid header name"),
    ] {
        let yaml = format!(
            "virtual_hosts:\n  - name: v\n    domains: ['*']\n    routes: [{{name: r, match: {{prefix: /}}, action: {{cluster: main, request_mirror_policies: [{policy}]}}}}]\n"
        );
        let err = RouteTable::build_with(
            RouteConfig::from_yaml(&yaml).unwrap(),
            &BuildOptions::default().known_clusters(["main"]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(says) && err.contains("action.request_mirror_policies[0]"),
            "{policy}: {err}"
        );
    }
    let err = RouteTable::from_yaml(
        "virtual_hosts:\n  - name: v\n    domains: ['*']\n    routes: [{name: r, match: {prefix: /}, action: {redirect: {path_redirect: /x}, request_mirror_policies: [{cluster: c}]}}]\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("only applies to routes that forward"), "{err}");
}

#[test]
fn retry_policy_header_conditions() {
    let t = RouteTable::from_yaml(
        r#"
virtual_hosts:
  - name: v
    domains: ["*"]
    routes:
      - match: {prefix: /}
        action:
          cluster: c
          retry_policy:
            retry_on: retriable-headers
            retriable_headers:
              - {name: ":status", string_match: {prefix: "5"}}
              - {name: x-upstream-retry, string_match: {exact: "yes,now"}}
              - {name: x-missing, present_match: false, invert_match: true}
            retriable_request_headers:
              - {name: x-retry, present_match: true}
              - {name: ":method", string_match: {exact: GET}}
"#,
    )
    .unwrap();
    let p = t.virtual_hosts()[0].routes()[0].retry_policy().unwrap();
    assert!(p.has_retriable_headers());
    // Requests: one of the conditions must hold.
    assert!(p.request_retriable(&rauta_router::Request::get("h", "/")));
    let post = rauta_router::Request::new("POST", "h", "/");
    assert!(!p.request_retriable(&post));
    assert!(p.request_retriable(&post.clone().header("x-retry", "")));
    // Responses: any condition; :status is the status; fields joined.
    let mut h = http::HeaderMap::new();
    assert!(p.response_retriable(503, &h));
    assert!(!p.response_retriable(404, &h));
    h.append("x-upstream-retry", "yes".parse().unwrap());
    assert!(!p.response_retriable(404, &h));
    h.append("x-upstream-retry", "now".parse().unwrap());
    assert!(p.response_retriable(404, &h));
    let mut h = http::HeaderMap::new();
    h.insert("x-missing", "1".parse().unwrap());
    assert!(
        p.response_retriable(404, &h),
        "present_match: false, inverted"
    );
    // :path is the request's path.
    let t2 = RouteTable::from_yaml(
        r#"
virtual_hosts:
  - name: v
    domains: ["*"]
    routes:
      - match: {prefix: /}
        action:
          cluster: c
          retry_policy:
            retriable_request_headers: [{name: ":path", string_match: {prefix: /safe}}]
      - match: {prefix: /}
        action:
          cluster: c
          retry_policy:
            retriable_request_headers: [{name: ":path", string_match: {prefix: /other}}]
"#,
    )
    .unwrap();
    let p2 = t2.virtual_hosts()[0].routes()[0].retry_policy().unwrap();
    assert!(p2.request_retriable(&rauta_router::Request::get("h", "/safe/1")));
    assert!(!p2.request_retriable(&rauta_router::Request::get("h", "/x")));
    // Policies with different matchers differ.
    let p3 = t2.virtual_hosts()[0].routes()[1].retry_policy().unwrap();
    assert_ne!(p2, p3);
    assert_eq!(p2, &p2.clone());
    // Bad matchers are load errors naming the field.
    let err = RouteTable::from_yaml(
        "virtual_hosts: [{name: v, domains: [\"*\"], routes: [{match: {prefix: /}, action: {cluster: c, retry_policy: {retriable_headers: [{name: x, string_match: {safe_regex: \"(\"}}]}}}]}]",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("action.retry_policy.retriable_headers[0].string_match.safe_regex"),
        "{err}"
    );
}
