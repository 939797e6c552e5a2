//! Internal redirects (`RouteMatch::internal_redirect`), checked against
//! Envoy's router (`setupRedirect`, `convertRequestHeadersForInternalRedirect`),
//! its `InternalRedirectPolicyImpl` and the three predicates it ships, case
//! by case; and the policy's load errors in both shapes.

use rauta_router::config::{InternalRedirectPolicy, InternalRedirectPredicate, Route, RouteConfig};
use rauta_router::{
    Decision, InternalRedirect, InternalRedirectRefusal as No, InternalRedirectState, Request,
    RouteTable,
};

/// `shop` (`/old` with the policy given as YAML flow entries, `/` to
/// `new`), `secure` (`/`, `secure-root`), and an unnamed route in
/// `other` that matches `x-flag: on` only.
fn table(policy: &str) -> RouteTable {
    RouteTable::from_yaml(&format!(
        r#"
virtual_hosts:
  - name: shop
    domains: ["shop.example"]
    routes:
      - name: old
        match: {{ prefix: "/old" }}
        action: {{ cluster: legacy, internal_redirect_policy: {{ {policy} }} }}
      - name: again
        match: {{ prefix: "/again" }}
        action: {{ cluster: legacy, internal_redirect_policy: {{ {policy} }} }}
      - name: new
        match: {{ prefix: "/" }}
        action: {{ cluster: shop }}
  - name: secure
    domains: ["secure.example", "secure.example:8443"]
    routes:
      - name: secure-root
        match: {{ prefix: "/" }}
        action: {{ cluster: secure }}
  - name: other
    domains: ["other.example"]
    routes:
      - match: {{ prefix: "/", headers: [{{ name: x-flag, string_match: {{ exact: "on" }} }}] }}
        action: {{ cluster: other }}
"#
    ))
    .unwrap_or_else(|e| panic!("{policy}: {e}"))
}

fn answer(location: Option<&str>, more: &[(&str, &str)]) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    if let Some(l) = location {
        h.insert("location", l.parse().unwrap());
    }
    for (k, v) in more {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    h
}

type Outcome = Option<Result<InternalRedirect, No>>;

fn follow(
    t: &RouteTable,
    req: &Request,
    status: u16,
    resp: &http::HeaderMap,
    state: &mut InternalRedirectState,
) -> Outcome {
    let Decision::Route(m) = t.route(req, 0) else {
        panic!("no route for {req:?}")
    };
    m.internal_redirect(req, status, resp, state, 0)
}

fn once(t: &RouteTable, req: &Request, status: u16, resp: &http::HeaderMap) -> Outcome {
    follow(t, req, status, resp, &mut InternalRedirectState::new())
}

fn old() -> Request {
    Request::get("shop.example", "/old/cart?id=7")
}

#[test]
fn by_default_a_302_with_an_absolute_location_is_followed_once() {
    let t = table("");
    let r = once(
        &t,
        &old(),
        302,
        &answer(Some("http://shop.example/cart?id=7#top"), &[]),
    )
    .expect("a 302 is covered")
    .expect("followed");
    assert_eq!(r.scheme(), "http");
    assert_eq!(r.authority(), "shop.example");
    assert_eq!(r.path_and_query(), "/cart?id=7");
    assert_eq!(r.target_route(), "new");
    assert_eq!(r.original_url(), "http://shop.example/old/cart?id=7");
    assert!(!r.changes_method_to_get());
    // Other statuses pass by default, 3xx or not.
    for status in [200, 301, 303, 307, 308, 404] {
        assert!(
            once(
                &t,
                &old(),
                status,
                &answer(Some("http://shop.example/"), &[])
            )
            .is_none(),
            "{status}"
        );
    }
    // Routes without a policy never redirect internally.
    let plain = Request::get("shop.example", "/cart");
    assert!(once(&t, &plain, 302, &answer(Some("http://shop.example/"), &[])).is_none());
}

#[test]
fn refusals_come_in_envoys_order() {
    let t = table("");
    let go = |loc: Option<&str>| {
        once(&t, &old(), 302, &answer(loc, &[]))
            .unwrap()
            .map(|_| ())
    };
    assert_eq!(go(None), Err(No::MissingLocation));
    for bad in [
        "",
        "/cart",
        "cart",
        "//shop.example/cart",
        "http://",
        "http:///x",
    ] {
        assert_eq!(go(Some(bad)), Err(No::BadLocation), "{bad:?}");
    }
    // http to https, without allow_cross_scheme_redirect.
    assert_eq!(go(Some("https://shop.example/")), Err(No::UnsafeScheme));
    // Nothing serves that host.
    assert_eq!(go(Some("http://nowhere.example/")), Err(No::NoRoute));
    // A route that does not match the request as it would go.
    assert_eq!(go(Some("http://other.example/")), Err(No::NoRoute));
    // The scheme is tested before the count.
    let mut state = InternalRedirectState::new();
    let resp = answer(Some("http://shop.example/cart"), &[]);
    assert!(follow(&t, &old(), 302, &resp, &mut state).unwrap().is_ok());
    let https = answer(Some("https://shop.example/cart"), &[]);
    assert_eq!(
        follow(&t, &old(), 302, &https, &mut state).unwrap(),
        Err(No::UnsafeScheme)
    );
    assert_eq!(
        follow(&t, &old(), 302, &resp, &mut state).unwrap(),
        Err(No::TooManyRedirects)
    );
    // A refusal counts nothing.
    assert_eq!(state.followed(), 1);
}

#[test]
fn the_count_is_the_requests_and_the_limit_the_current_routes() {
    let t = table("max_internal_redirects: 3");
    let resp = answer(Some("http://shop.example/again"), &[]);
    let mut state = InternalRedirectState::new();
    for n in 1..=3 {
        assert!(follow(&t, &old(), 302, &resp, &mut state).unwrap().is_ok());
        assert_eq!(state.followed(), n);
    }
    assert_eq!(
        follow(&t, &old(), 302, &resp, &mut state)
            .unwrap()
            .map(|_| ()),
        Err(No::TooManyRedirects)
    );
    // A route that allows fewer refuses a request that followed more.
    let strict = table("max_internal_redirects: 2");
    assert_eq!(
        follow(&strict, &old(), 302, &resp, &mut state)
            .unwrap()
            .map(|_| ()),
        Err(No::TooManyRedirects)
    );
    // 0 follows none.
    let none = table("max_internal_redirects: 0");
    assert_eq!(
        once(&none, &old(), 302, &resp).unwrap().map(|_| ()),
        Err(No::TooManyRedirects)
    );
}

#[test]
fn listed_codes_and_a_303_that_makes_a_get() {
    let t = table("redirect_response_codes: [301, 303, 307]");
    let resp = answer(Some("http://shop.example/done"), &[]);
    assert!(once(&t, &old(), 302, &resp).is_none());
    let post = Request::new("POST", "shop.example", "/old/form").header("content-length", "5");
    let r = once(&t, &post, 303, &resp).unwrap().unwrap();
    assert!(r.changes_method_to_get());
    // A 307 keeps the method; a 303 to a GET or HEAD keeps it too.
    assert!(!once(&t, &post, 307, &resp)
        .unwrap()
        .unwrap()
        .changes_method_to_get());
    assert!(!once(&t, &old(), 303, &resp)
        .unwrap()
        .unwrap()
        .changes_method_to_get());
    let head = Request::new("HEAD", "shop.example", "/old");
    assert!(!once(&t, &head, 303, &resp)
        .unwrap()
        .unwrap()
        .changes_method_to_get());
    assert!(once(&t, &old(), 301, &resp).unwrap().is_ok());

    let mut parts = http::Request::post("/old/form")
        .header("host", "shop.example")
        .header("content-length", "5")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    r.apply(&mut parts);
    assert_eq!(parts.method, http::Method::GET);
    assert!(parts.headers.get("content-length").is_none());
    assert_eq!(parts.uri, "/done");
}

#[test]
fn cross_scheme_redirects_and_the_safe_cross_scheme_predicate() {
    let https = answer(Some("https://secure.example/pay"), &[]);
    let http_ = answer(Some("http://secure.example/pay"), &[]);
    let from_https = old().scheme("https");

    let t = table("");
    assert_eq!(
        once(&t, &old(), 302, &https).unwrap().map(|_| ()),
        Err(No::UnsafeScheme)
    );
    assert_eq!(
        once(&t, &from_https, 302, &http_).unwrap().map(|_| ()),
        Err(No::UnsafeScheme)
    );
    let r = once(&t, &from_https, 302, &https).unwrap().unwrap();
    assert_eq!(r.original_url(), "https://shop.example/old/cart?id=7");

    let t = table("allow_cross_scheme_redirect: true");
    assert_eq!(
        once(&t, &old(), 302, &https)
            .unwrap()
            .unwrap()
            .target_route(),
        "secure-root"
    );
    assert!(once(&t, &from_https, 302, &http_).unwrap().is_ok());

    // safe_cross_scheme: https may go to http, http may not go to https.
    let t = table("allow_cross_scheme_redirect: true, predicates: [{ safe_cross_scheme: {} }]");
    assert_eq!(
        once(&t, &old(), 302, &https).unwrap().map(|_| ()),
        Err(No::Predicate(
            "envoy.internal_redirect_predicates.safe_cross_scheme"
        ))
    );
    assert!(once(&t, &from_https, 302, &http_).unwrap().is_ok());
    assert!(once(&t, &from_https, 302, &https).unwrap().is_ok());
    assert!(once(&t, &old(), 302, &http_).unwrap().is_ok());
}

#[test]
fn allow_listed_routes_names_the_targets_and_an_unnamed_route_is_never_one() {
    let t = table("predicates: [{ allow_listed_routes: { allowed_route_names: [secure-root] } }]");
    assert!(once(
        &t,
        &old(),
        302,
        &answer(Some("http://secure.example/x"), &[])
    )
    .unwrap()
    .is_ok());
    let refused = Err(No::Predicate(
        "envoy.internal_redirect_predicates.allow_listed_routes",
    ));
    assert_eq!(
        once(&t, &old(), 302, &answer(Some("http://shop.example/x"), &[]))
            .unwrap()
            .map(|_| ()),
        refused
    );
    // The unnamed route in `other` (reached with the copied flag below)
    // has Envoy's empty name, not `routes[0]`.
    let t = table(
        "response_headers_to_copy: [x-flag], \
         predicates: [{ allow_listed_routes: { allowed_route_names: [\"routes[0]\"] } }]",
    );
    let resp = answer(Some("http://other.example/"), &[("x-flag", "on")]);
    assert_eq!(once(&t, &old(), 302, &resp).unwrap().map(|_| ()), refused);
    let t = table("response_headers_to_copy: [x-flag]");
    assert_eq!(
        once(&t, &old(), 302, &resp)
            .unwrap()
            .unwrap()
            .target_route(),
        ""
    );
}

#[test]
fn an_empty_allow_list_refuses_every_target() {
    let t = table("predicates: [{ allow_listed_routes: { allowed_route_names: [] } }]");
    for to in ["http://shop.example/x", "http://secure.example/"] {
        assert_eq!(
            once(&t, &old(), 302, &answer(Some(to), &[]))
                .unwrap()
                .map(|_| ()),
            Err(No::Predicate(
                "envoy.internal_redirect_predicates.allow_listed_routes"
            )),
            "{to}"
        );
    }
}

#[test]
fn previous_routes_refuses_a_target_this_policy_already_led_to() {
    let t = table("max_internal_redirects: 10, predicates: [{ previous_routes: {} }]");
    let mut state = InternalRedirectState::new();
    let to_secure = answer(Some("http://secure.example/"), &[]);
    let to_again = answer(Some("http://shop.example/again"), &[]);
    let to_new = answer(Some("http://shop.example/new"), &[]);
    // From `old`: to secure-root, to again, to new; then secure-root again.
    for resp in [&to_secure, &to_again, &to_new] {
        assert!(follow(&t, &old(), 302, resp, &mut state).unwrap().is_ok());
    }
    assert_eq!(
        follow(&t, &old(), 302, &to_secure, &mut state)
            .unwrap()
            .map(|_| ()),
        Err(No::Predicate(
            "envoy.internal_redirect_predicates.previous_routes"
        ))
    );
    // `again`'s policy keeps its own list (Envoy keys it by the route with
    // the policy): it may still lead to secure-root, once.
    let from_again = Request::get("shop.example", "/again");
    assert!(follow(&t, &from_again, 302, &to_secure, &mut state)
        .unwrap()
        .is_ok());
    assert!(follow(&t, &from_again, 302, &to_secure, &mut state)
        .unwrap()
        .is_err());
    assert_eq!(state.followed(), 4);
}

#[test]
fn copied_headers_replace_remove_and_route_the_target() {
    let t = table("response_headers_to_copy: [x-flag, x-multi, x-gone, x-untouched]");
    let req = old()
        .header("x-gone", "1")
        .header("x-flag", "off")
        .header("x-multi", "old");
    let resp = answer(
        Some("http://other.example/"),
        &[
            ("x-flag", "on"),
            ("x-multi", "1"),
            ("x-multi", "2"),
            ("x-extra", "no"),
        ],
    );
    // The copied `x-flag: on` is what makes the unnamed route match.
    let r = once(&t, &req, 302, &resp).unwrap().unwrap();
    let copied: Vec<(String, Vec<String>)> = r
        .copied_headers()
        .map(|(n, v)| {
            (
                n.to_string(),
                v.iter().map(|v| v.to_str().unwrap().to_owned()).collect(),
            )
        })
        .collect();
    assert_eq!(
        copied,
        [
            ("x-flag".to_owned(), vec!["on".to_owned()]),
            ("x-multi".to_owned(), vec!["1".to_owned(), "2".to_owned()]),
            ("x-gone".to_owned(), vec![]),
        ]
    );
    let mut parts = http::Request::get("/old/cart?id=7")
        .header("host", "shop.example")
        .header("x-gone", "1")
        .header("x-flag", "off")
        .header("x-multi", "old")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    r.apply(&mut parts);
    let all = |n: &str| -> Vec<&str> {
        parts
            .headers
            .get_all(n)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    };
    assert_eq!(all("x-flag"), ["on"]);
    assert_eq!(all("x-multi"), ["1", "2"]);
    assert!(all("x-gone").is_empty());
    assert!(all("x-extra").is_empty());
    assert_eq!(all("host"), ["other.example"]);
    assert_eq!(
        all("x-envoy-original-url"),
        ["http://shop.example/old/cart?id=7"]
    );
    assert_eq!(parts.uri, "/");
    assert_eq!(parts.method, http::Method::GET);
    // Without the copy, the target goes nowhere.
    assert_eq!(
        once(&table(""), &req, 302, &resp).unwrap().map(|_| ()),
        Err(No::NoRoute)
    );
}

#[test]
fn apply_keeps_the_form_and_the_scheme_the_request_is_routed_with() {
    let t = table("allow_cross_scheme_redirect: true");
    let r = once(
        &t,
        &old(),
        302,
        &answer(Some("https://secure.example:8443/pay?x"), &[]),
    )
    .unwrap()
    .unwrap();
    assert_eq!(r.scheme(), "https");
    // An HTTP/2 request: the target is in the URI (its scheme stays).
    let mut h2 = http::Request::get("http://shop.example/old/cart")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    r.apply(&mut h2);
    assert_eq!(h2.uri, "http://secure.example:8443/pay?x");
    assert!(h2.headers.get("host").is_none());
    // An HTTP/1.1 request: origin-form and Host; `x-forwarded-proto` is
    // left as it was, as Envoy leaves it.
    let mut h1 = http::Request::get("/old/cart")
        .header("host", "shop.example")
        .header("x-forwarded-proto", "http")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    r.apply(&mut h1);
    assert_eq!(h1.uri, "/pay?x");
    assert_eq!(h1.headers["host"], "secure.example:8443");
    assert_eq!(h1.headers["x-forwarded-proto"], "http");
    // The redirected request routes where the predicates saw it go.
    let Decision::Route(m) = t.route(&h1, 0) else {
        panic!("the target routes")
    };
    assert_eq!(m.route_name(), "secure-root");
}

/// An `http` request redirected to `https` into a virtual host that
/// requires TLS: the target is Envoy's TLS-redirect route (no name), and
/// the next pass answers the client with the redirect to `https`.
#[test]
fn a_redirect_into_a_tls_only_host_meets_its_tls_redirect() {
    let t = RouteTable::from_yaml(
        r#"
virtual_hosts:
  - name: shop
    domains: ["shop.example"]
    routes:
      - name: old
        match: { prefix: "/" }
        action: { cluster: legacy, internal_redirect_policy: { allow_cross_scheme_redirect: true } }
  - name: pay
    domains: ["pay.example"]
    require_tls: ALL
    routes:
      - name: pay
        match: { prefix: "/" }
        action: { cluster: pay }
"#,
    )
    .unwrap();
    let req = Request::get("shop.example", "/old");
    let r = once(&t, &req, 302, &answer(Some("https://pay.example/x"), &[]))
        .unwrap()
        .unwrap();
    assert_eq!(r.target_route(), "");
    let mut next = http::Request::get("/old")
        .header("host", "shop.example")
        .header("x-forwarded-proto", "http")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    r.apply(&mut next);
    assert!(matches!(t.route(&next, 0), Decision::TlsRedirect { .. }));
}

#[test]
fn the_policy_reads_back_and_builds_in_rust() {
    let t = table(
        "max_internal_redirects: 4, redirect_response_codes: [308, 301], \
         allow_cross_scheme_redirect: true, response_headers_to_copy: [X-Trace], \
         predicates: [{ previous_routes: {} }, { safe_cross_scheme: {} }]",
    );
    let req = old();
    let Decision::Route(m) = t.route(&req, 0) else {
        panic!()
    };
    let p = m.route().internal_redirect_policy().unwrap();
    assert_eq!(p.max_internal_redirects(), 4);
    assert_eq!(p.redirect_response_codes().collect::<Vec<_>>(), [301, 308]);
    assert!(p.redirects_on(308) && !p.redirects_on(302));
    assert!(p.allow_cross_scheme_redirect());
    assert_eq!(p.response_headers_to_copy(), ["x-trace"]);
    assert_eq!(
        p.predicate_names().collect::<Vec<_>>(),
        [
            "envoy.internal_redirect_predicates.previous_routes",
            "envoy.internal_redirect_predicates.safe_cross_scheme"
        ]
    );

    let built = RouteConfig::new().virtual_host(
        rauta_router::config::VirtualHost::new("v", ["*"]).route(
            Route::prefix("/").cluster("c").internal_redirect_policy(
                InternalRedirectPolicy::new()
                    .max_internal_redirects(2)
                    .redirect_response_codes([302, 307])
                    .predicate(InternalRedirectPredicate::PreviousRoutes {})
                    .copy_response_header("x-a"),
            ),
        ),
    );
    let t = RouteTable::build(built).unwrap();
    let root = Request::get("h", "/");
    let Decision::Route(m) = t.route(&root, 0) else {
        panic!()
    };
    let p = m.route().internal_redirect_policy().unwrap();
    assert_eq!(p.redirect_response_codes().collect::<Vec<_>>(), [302, 307]);
    assert_eq!(p.max_internal_redirects(), 2);
}

#[test]
fn bad_policies_are_load_errors_naming_the_field() {
    let err = |policy: &str| {
        RouteTable::from_yaml(&format!(
            "virtual_hosts:\n  - name: v\n    domains: [\"*\"]\n    routes:\n      - name: r\n        match: {{prefix: /}}\n        action: {{cluster: c, internal_redirect_policy: {{{policy}}}}}\n"
        ))
        .expect_err(policy)
        .to_string()
    };
    let at = "virtual_hosts[0] \"v\": routes[0] \"r\": action.internal_redirect_policy";
    assert_eq!(
        err("redirect_response_codes: [302, 304]"),
        format!("{at}.redirect_response_codes[1]: 304 is not a redirect that can be followed (301, 302, 303, 307 or 308)")
    );
    assert!(
        err("redirect_response_codes: [301, 302, 303, 307, 308, 302]")
            .contains("redirect_response_codes: at most 5 codes may be listed (got 6)")
    );
    assert_eq!(
        err("response_headers_to_copy: [Host]"),
        format!("{at}.response_headers_to_copy[0]: :-prefixed or host headers may not be copied (got \"Host\")")
    );
    assert!(err("response_headers_to_copy: [\":status\"]").contains("may not be copied"));
    assert!(err("response_headers_to_copy: [\"a b\"]").contains("is not a valid header name"));
    assert!(
        err("predicates: [{allow_listed_routes: {allowed_route_names: [a, \"\"]}}]")
            .contains("allowed_route_names[1]: a route name may not be empty")
    );
    assert!(err("predicates: [{loop_detector: {}}]").contains("unknown variant `loop_detector`"));
    assert!(err("max_internal_redirects: -1").contains("invalid u32"));
    // Only forwarding routes follow redirects.
    let e = RouteTable::from_yaml(
        "virtual_hosts:\n  - name: v\n    domains: [\"*\"]\n    routes:\n      - name: r\n        match: {prefix: /}\n        action: {direct_response: {status: 200}, internal_redirect_policy: {}}\n",
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        "virtual_hosts[0] \"v\": routes[0] \"r\": action.internal_redirect_policy: only applies to routes that forward to a cluster"
    );
}

/// Envoy's shape: predicates as typed extensions, and the deprecated
/// `internal_redirect_action`.
#[test]
fn envoys_shape_loads_as_rauta_s() {
    let envoy = |action: &str| {
        RouteConfig::from_envoy_yaml(&format!(
            "virtual_hosts:\n  - name: v\n    domains: [\"*\"]\n    routes:\n      - name: r\n        match: {{prefix: /}}\n        route:\n          cluster: c\n{action}"
        ))
    };
    let policy = |c: Result<RouteConfig, _>| {
        let t = RouteTable::build(c.expect("loads")).unwrap();
        let root = Request::get("h", "/");
        let d = t.route(&root, 0);
        let m = d.route().unwrap();
        m.route()
            .internal_redirect_policy()
            .map(|p| (p.max_internal_redirects(), p.predicate_names().count()))
    };
    let typed = "          internal_redirect_policy:
            max_internal_redirects: 5
            redirect_response_codes: [303]
            predicates:
              - name: envoy.internal_redirect_predicates.allow_listed_routes
                typed_config:
                  \"@type\": type.googleapis.com/envoy.extensions.internal_redirect.allow_listed_routes.v3.AllowListedRoutesConfig
                  allowedRouteNames: [r]
              - name: any-name
                typed_config:
                  \"@type\": type.googleapis.com/envoy.extensions.internal_redirect.previous_routes.v3.PreviousRoutesConfig
              - name: envoy.internal_redirect_predicates.safe_cross_scheme
                typed_config:
                  \"@type\": type.googleapis.com/envoy.extensions.internal_redirect.safe_cross_scheme.v3.SafeCrossSchemeConfig
";
    assert_eq!(policy(envoy(typed)), Some((5, 3)));
    let rauta = RouteConfig::from_yaml(
        "virtual_hosts:\n  - name: v\n    domains: [\"*\"]\n    routes:\n      - name: r\n        match: {prefix: /}\n        action:\n          cluster: c\n          internal_redirect_policy:\n            max_internal_redirects: 5\n            redirect_response_codes: [303]\n            predicates: [{allow_listed_routes: {allowed_route_names: [r]}}, {previous_routes: {}}, {safe_cross_scheme: {}}]\n",
    )
    .unwrap();
    assert_eq!(envoy(typed).unwrap(), rauta);

    let deprecated = "          internal_redirect_action: HANDLE_INTERNAL_REDIRECT\n          max_internal_redirects: 3\n";
    assert_eq!(policy(envoy(deprecated)), Some((3, 0)));
    assert_eq!(
        policy(envoy(
            "          internal_redirect_action: HANDLE_INTERNAL_REDIRECT\n"
        )),
        Some((1, 0))
    );
    assert_eq!(
        policy(envoy("          internal_redirect_action: PASS_THROUGH_INTERNAL_REDIRECT\n          max_internal_redirects: 3\n")),
        None
    );
    // The policy wins over the deprecated fields.
    assert_eq!(
        policy(envoy(&format!(
            "          internal_redirect_action: PASS_THROUGH_INTERNAL_REDIRECT\n{typed}"
        ))),
        Some((5, 3))
    );
    let e = envoy("          internal_redirect_action: FOLLOW\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("route.internal_redirect_action: expected PASS_THROUGH_INTERNAL_REDIRECT or HANDLE_INTERNAL_REDIRECT, got \"FOLLOW\""), "{e}");
    let e = envoy("          internal_redirect_policy:\n            predicates:\n              - name: my.predicate\n                typed_config: {\"@type\": type.googleapis.com/my.Predicate}\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("route.internal_redirect_policy.predicates[0]: expected a typed_config of an allow_listed_routes, previous_routes or safe_cross_scheme predicate (by its @type)"),
        "{e}"
    );
    // The name alone does not say (Envoy requires typed_config).
    let e = envoy("          internal_redirect_policy:\n            predicates:\n              - name: envoy.internal_redirect_predicates.previous_routes\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("predicates[0]: expected a typed_config"), "{e}");
}

/// `per_request_buffer_limit_bytes`: the route's, else its virtual
/// host's, in both shapes.
#[test]
fn the_buffer_limit_is_the_routes_else_the_virtual_hosts() {
    let limits = |c: RouteConfig| {
        let t = RouteTable::build(c).unwrap();
        ["/own", "/other"].map(|p| {
            let req = Request::get("h", p);
            let d = t.route(&req, 0);
            d.route().unwrap().route().per_request_buffer_limit_bytes()
        })
    };
    let rauta = RouteConfig::from_yaml(
        "virtual_hosts:\n  - name: v\n    domains: [\"*\"]\n    per_request_buffer_limit_bytes: 65536\n    routes:\n      - {match: {prefix: /own}, action: {cluster: c}, per_request_buffer_limit_bytes: 4096}\n      - {match: {prefix: /}, action: {cluster: c}}\n",
    )
    .unwrap();
    assert_eq!(limits(rauta.clone()), [Some(4096), Some(65536)]);
    let envoy = RouteConfig::from_envoy_yaml(
        "virtual_hosts:\n  - name: v\n    domains: [\"*\"]\n    per_request_buffer_limit_bytes: 65536\n    routes:\n      - {match: {prefix: /own}, route: {cluster: c}, per_request_buffer_limit_bytes: 4096}\n      - {match: {prefix: /}, route: {cluster: c}}\n",
    )
    .unwrap();
    assert_eq!(envoy, rauta);
    let none = RouteConfig::new().virtual_host(
        rauta_router::config::VirtualHost::new("v", ["*"])
            .route(
                Route::prefix("/own")
                    .cluster("c")
                    .per_request_buffer_limit_bytes(1),
            )
            .route(Route::prefix("/").cluster("c")),
    );
    assert_eq!(limits(none), [Some(1), None]);
}
