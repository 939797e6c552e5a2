//! Rate limit descriptors, as Envoy's rate limit filter builds them.

use rauta_router::config::RouteConfig;
use rauta_router::{RateLimitContext, Request, RouteTable};

type Entries = Vec<Vec<(String, String)>>;

fn table(yaml: &str) -> RouteTable {
    RouteTable::from_yaml(yaml).unwrap_or_else(|e| panic!("{e}"))
}

fn descriptors(t: &RouteTable, req: &Request, random: u64, ctx: &RateLimitContext<'_>) -> Entries {
    let d = t.route(req, random);
    let m = d.route().expect("a route");
    m.rate_limit_descriptors(req, ctx)
        .into_iter()
        .map(|d| d.entries)
        .collect()
}

fn e(list: &[&[(&str, &str)]]) -> Entries {
    list.iter()
        .map(|d| {
            d.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

const ACTIONS: &str = r#"
internal_only_headers: [x-secret]
virtual_hosts:
  - name: api
    domains: ["*"]
    routes:
      - name: all
        match: {prefix: /all}
        metadata: {filter_metadata: {limits: {tier: {name: gold}}}}
        action:
          weighted_clusters: [{name: blue, weight: 1}, {name: green, weight: 1}]
          rate_limits:
            - disable_key: everything
              actions:
                - {source_cluster: {}}
                - {destination_cluster: {}}
                - {request_headers: {header_name: X-User, descriptor_key: user}}
                - {request_headers: {header_name: ":authority", descriptor_key: host}}
                - {remote_address: {}}
                - {masked_remote_address: {v4_prefix_mask_len: 16, v6_prefix_mask_len: 64}}
                - {generic_key: {descriptor_value: v1}}
                - {generic_key: {descriptor_value: v2, descriptor_key: custom}}
                - {header_value_match: {descriptor_value: mobile, headers: [{name: x-client, string_match: {prefix: app-}}]}}
                - {query_parameter_value_match: {descriptor_value: debug, descriptor_key: q, query_parameters: [{name: debug, present_match: true}]}}
                - metadata:
                    descriptor_key: tier
                    metadata_key: {key: limits, path: [{key: tier}, {key: name}]}
                    source: ROUTE_ENTRY
      - name: dropping
        match: {prefix: /drop}
        action:
          cluster: c
          rate_limits:
            - actions: [{generic_key: {descriptor_value: a}}, {request_headers: {header_name: x-user, descriptor_key: user}}]
            - actions: [{generic_key: {descriptor_value: b}}, {request_headers: {header_name: x-user, descriptor_key: user, skip_if_absent: true}}]
            - actions: [{header_value_match: {descriptor_value: not-app, expect_match: false, headers: [{name: x-client, string_match: {prefix: app-}}]}}]
            - actions: [{remote_address: {}}]
            - actions: [{request_headers: {header_name: x-secret, descriptor_key: s}}]
            - actions:
                - metadata: {descriptor_key: m, metadata_key: {key: nothing}, default_value: dflt, source: ROUTE_ENTRY}
            - actions:
                - {generic_key: {descriptor_value: c}}
                - metadata: {descriptor_key: m, metadata_key: {key: nothing}, source: ROUTE_ENTRY, skip_if_absent: true}
            - actions:
                - metadata: {descriptor_key: m, metadata_key: {key: nothing}, source: ROUTE_ENTRY}
"#;

#[test]
fn every_action_adds_its_entry() {
    let t = table(ACTIONS);
    let ctx = RateLimitContext::new()
        .local_service_cluster("edge")
        .remote_address("198.18.77.201".parse().unwrap());
    let req = Request::get("api.example", "/all?debug")
        .header("x-user", "alice")
        .header("x-user", "bob")
        .header("x-client", "app-ios");
    let blue = (0..10)
        .find(|r| t.route(&req, *r).route().unwrap().cluster() == Some("blue"))
        .unwrap();
    let green = (0..10)
        .find(|r| t.route(&req, *r).route().unwrap().cluster() == Some("green"))
        .unwrap();
    let full = |cluster: &str| -> Entries {
        e(&[&[
            ("source_cluster", "edge"),
            ("destination_cluster", cluster),
            ("user", "alice"),
            ("host", "api.example"),
            ("remote_address", "198.18.77.201"),
            ("masked_remote_address", "198.18.0.0/16"),
            ("generic_key", "v1"),
            ("custom", "v2"),
            ("header_match", "mobile"),
            ("q", "debug"),
            ("tier", "gold"),
        ]])
    };
    assert_eq!(descriptors(&t, &req, blue, &ctx), full("blue"));
    assert_eq!(descriptors(&t, &req, green, &ctx), full("green"));
    let d = t.route(&req, blue);
    let list = d.route().unwrap().rate_limit_descriptors(&req, &ctx);
    assert_eq!(list[0].disable_key, "everything");

    // IPv6, masked to /64.
    let ctx6 = ctx.remote_address("2001:db8:1:2:3:4:5:6".parse().unwrap());
    let got = descriptors(&t, &req, blue, &ctx6);
    assert!(got[0].contains(&("remote_address".into(), "2001:db8:1:2:3:4:5:6".into())));
    assert!(got[0].contains(&("masked_remote_address".into(), "2001:db8:1:2::/64".into())));
}

#[test]
fn actions_that_cannot_produce_an_entry_drop_their_descriptor() {
    let t = table(ACTIONS);
    let ctx = RateLimitContext::new();
    // No x-user, no client address, an internal-only header on an external
    // request: only the skip_if_absent descriptor, the expect_match: false
    // one, and the metadata default and skip survive.
    let req = Request::get("h", "/drop").header("x-secret", "s");
    assert_eq!(
        descriptors(&t, &req, 0, &ctx),
        e(&[
            &[("generic_key", "b")],
            &[("header_match", "not-app")],
            &[("m", "dflt")],
            &[("generic_key", "c")],
        ])
    );
    let req = Request::get("h", "/drop")
        .header("x-user", "u")
        .header("x-client", "app-web")
        .header("x-secret", "s")
        .header("x-envoy-internal", "true");
    let ctx = ctx.remote_address("198.18.0.1".parse().unwrap());
    assert_eq!(
        descriptors(&t, &req, 0, &ctx),
        e(&[
            &[("generic_key", "a"), ("user", "u")],
            &[("generic_key", "b"), ("user", "u")],
            &[("remote_address", "198.18.0.1")],
            &[("s", "s")],
            &[("m", "dflt")],
            &[("generic_key", "c")],
        ])
    );
}

fn levels(route_extra: &str) -> RouteTable {
    table(&format!(
        r#"
virtual_hosts:
  - name: api
    domains: ["*"]
    rate_limits:
      - actions: [{{generic_key: {{descriptor_value: vhost}}}}]
      - stage: 1
        actions: [{{generic_key: {{descriptor_value: vhost-1}}}}]
    routes:
      - name: r
        match: {{prefix: /}}
        action: {{cluster: c{route_extra}}}
"#
    ))
}

#[test]
fn the_virtual_host_s_limits_combine_as_envoy_s_filter_combines_them() {
    let req = Request::get("h", "/");
    let at = |t: &RouteTable, stage: u32| {
        descriptors(t, &req, 0, &RateLimitContext::new().stage(stage))
            .into_iter()
            .map(|d| d[0].1.clone())
            .collect::<Vec<_>>()
    };
    // No route limits: the virtual host's, by stage.
    let t = levels("");
    assert_eq!(at(&t, 0), ["vhost"]);
    assert_eq!(at(&t, 1), ["vhost-1"]);
    assert!(at(&t, 2).is_empty());
    // Route limits override the virtual host's, at every stage (Envoy
    // tests the whole policy for emptiness, not the stage's share).
    let own = ", rate_limits: [{actions: [{generic_key: {descriptor_value: route}}]}]";
    let t = levels(own);
    assert_eq!(at(&t, 0), ["route"]);
    assert!(at(&t, 1).is_empty());
    // include_vh_rate_limits: both, the route's first.
    let t = levels(&format!("{own}, include_vh_rate_limits: true"));
    assert_eq!(at(&t, 0), ["route", "vhost"]);
    // The rate limit filter's per-route config.
    for (mode, expect) in [
        ("INCLUDE", vec!["route", "vhost"]),
        ("IGNORE", vec!["route"]),
        ("OVERRIDE", vec!["route"]),
    ] {
        let t = table(&format!(
            r#"
virtual_hosts:
  - name: api
    domains: ["*"]
    rate_limits: [{{actions: [{{generic_key: {{descriptor_value: vhost}}}}]}}]
    routes:
      - match: {{prefix: /}}
        action: {{cluster: c{own}}}
        typed_per_filter_config:
          envoy.filters.http.ratelimit: {{vh_rate_limits: {mode}}}
"#
        ));
        assert_eq!(at(&t, 0), expect, "{mode}");
    }
    let t = table(
        r#"
virtual_hosts:
  - name: api
    domains: ["*"]
    rate_limits: [{actions: [{generic_key: {descriptor_value: vhost}}]}]
    typed_per_filter_config:
      envoy.filters.http.ratelimit: {vh_rate_limits: IGNORE}
    routes: [{match: {prefix: /}, action: {cluster: c}}]
"#,
    );
    assert!(at(&t, 0).is_empty());
}

#[test]
fn local_answers_have_no_descriptors() {
    let t = table(
        r#"
virtual_hosts:
  - name: api
    domains: ["*"]
    rate_limits: [{actions: [{generic_key: {descriptor_value: vhost}}]}]
    routes:
      - {match: {prefix: /old}, action: {redirect: {path_redirect: /new}}}
      - {match: {prefix: /}, action: {direct_response: {status: 200}}}
"#,
    );
    for path in ["/old", "/x"] {
        let req = Request::get("h", path);
        assert!(descriptors(&t, &req, 0, &RateLimitContext::new()).is_empty());
    }
}

#[test]
fn bad_rate_limits_are_load_errors_naming_the_field() {
    let cases = [
        ("{actions: []}", "rate_limits[0].actions: value must contain at least 1 item"),
        ("{stage: 11, actions: [{remote_address: {}}]}", "rate_limits[0].stage: value must be less than or equal to 10"),
        ("{actions: [{}]}", "rate_limits[0].actions[0]: set exactly one of source_cluster"),
        ("{actions: [{remote_address: {}, source_cluster: {}}]}", "set exactly one of"),
        ("{actions: [{request_headers: {header_name: \"\", descriptor_key: k}}]}", "actions[0].request_headers.header_name: value length must be at least 1"),
        ("{actions: [{request_headers: {header_name: \"bad name\", descriptor_key: k}}]}", "is not a valid header name"),
        ("{actions: [{generic_key: {descriptor_value: \"\"}}]}", "generic_key.descriptor_value"),
        ("{actions: [{header_value_match: {descriptor_value: v, headers: []}}]}", "header_value_match.headers: value must contain at least 1 item"),
        ("{actions: [{header_value_match: {descriptor_value: v, headers: [{name: x, string_match: {safe_regex: \"(\"}}]}}]}", "header_value_match.headers[0].string_match.safe_regex"),
        ("{actions: [{query_parameter_value_match: {descriptor_value: v, query_parameters: []}}]}", "query_parameters: value must contain"),
        ("{actions: [{masked_remote_address: {v4_prefix_mask_len: 33}}]}", "v4_prefix_mask_len: value must be less than or equal to 32"),
        ("{actions: [{masked_remote_address: {v6_prefix_mask_len: 129}}]}", "v6_prefix_mask_len: value must be less than or equal to 128"),
        ("{actions: [{metadata: {descriptor_key: k, metadata_key: {key: f}}}]}", "metadata.source: only source: ROUTE_ENTRY"),
        ("{actions: [{dynamic_metadata: {}}]}", "unknown field `dynamic_metadata`"),
        ("{actions: [{remote_address: {}}], limit: {}}", "unknown field `limit`"),
    ];
    for (limit, expect) in cases {
        for at_route in [false, true] {
            let yaml = if at_route {
                format!("virtual_hosts: [{{name: v, domains: [\"*\"], routes: [{{match: {{prefix: /}}, action: {{cluster: c, rate_limits: [{limit}]}}}}]}}]")
            } else {
                format!("virtual_hosts: [{{name: v, domains: [\"*\"], rate_limits: [{limit}], routes: [{{match: {{prefix: /}}, action: {{cluster: c}}}}]}}]")
            };
            let err = RouteTable::from_yaml(&yaml).expect_err(&yaml).to_string();
            assert!(err.contains(expect), "{yaml}\n{err}");
        }
    }
    let err = RouteTable::from_yaml(
        "virtual_hosts: [{name: v, domains: [\"*\"], routes: [{match: {prefix: /}, action: {redirect: {path_redirect: /x}, rate_limits: [{actions: [{remote_address: {}}]}]}}]}]",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("action.rate_limits: only applies to routes that forward"),
        "{err}"
    );
}

#[test]
fn envoy_shaped_rate_limits_load() {
    let c = RouteConfig::from_envoy_yaml(
        r#"
virtual_hosts:
  - name: v
    domains: ["*"]
    routes:
      - match: {prefix: /}
        route:
          cluster: c
          rate_limits: [{actions: [{destination_cluster: {}}]}]
"#,
    )
    .unwrap();
    let t = RouteTable::build(c).unwrap();
    let req = Request::get("h", "/");
    assert_eq!(
        descriptors(&t, &req, 0, &RateLimitContext::new()),
        e(&[&[("destination_cluster", "c")]])
    );
}

#[test]
fn a_disabled_rate_limit_filter_and_numeric_options() {
    let fc = "type.googleapis.com/envoy.config.route.v3.FilterConfig";
    let t = table(&format!(
        r#"
virtual_hosts:
  - name: api
    domains: ["*"]
    rate_limits: [{{actions: [{{generic_key: {{descriptor_value: vhost}}}}]}}]
    routes:
      - match: {{prefix: /off}}
        action: {{cluster: c}}
        typed_per_filter_config:
          envoy.filters.http.ratelimit: {{"@type": "{fc}", disabled: true}}
      - match: {{prefix: /both}}
        action: {{cluster: c, rate_limits: [{{actions: [{{generic_key: {{descriptor_value: route}}}}]}}]}}
        typed_per_filter_config:
          envoy.filters.http.ratelimit: {{vh_rate_limits: 1}}
      - {{match: {{prefix: /}}, action: {{cluster: c}}}}
"#
    ));
    let ctx = RateLimitContext::new();
    assert!(descriptors(&t, &Request::get("h", "/off"), 0, &ctx).is_empty());
    assert_eq!(
        descriptors(&t, &Request::get("h", "/both"), 0, &ctx),
        e(&[&[("generic_key", "route")], &[("generic_key", "vhost")]])
    );
    assert_eq!(
        descriptors(&t, &Request::get("h", "/x"), 0, &ctx),
        e(&[&[("generic_key", "vhost")]])
    );
}

#[test]
fn camel_case_envoy_json_with_route_metadata() {
    let json = r#"{"virtualHosts": [{"name": "v", "domains": ["*"], "routes": [{
        "match": {"prefix": "/"},
        "metadata": {"filterMetadata": {"limits": {"tierName": "gold"}}},
        "route": {"cluster": "c", "rateLimits": [{"actions": [{"metadata": {
            "descriptorKey": "tier", "metadataKey": {"key": "limits", "path": [{"key": "tierName"}]},
            "source": "ROUTE_ENTRY"}}]}]}}]}]}"#;
    let t = RouteTable::build(RouteConfig::from_envoy_json(json).unwrap()).unwrap();
    assert_eq!(
        descriptors(&t, &Request::get("h", "/"), 0, &RateLimitContext::new()),
        e(&[&[("tier", "gold")]])
    );
    // A field given in both spellings is an error.
    let twice = r#"{"virtual_hosts": [], "virtualHosts": []}"#;
    let err = RouteConfig::from_envoy_json(twice).unwrap_err().to_string();
    assert!(
        err.contains("virtual_hosts: the field is given twice"),
        "{err}"
    );
}

#[test]
fn query_parameter_actions_read_decoded_names_and_values() {
    // Envoy's action decodes the query (route matching does not).
    let t = table(
        r#"
virtual_hosts:
  - name: v
    domains: ["*"]
    routes:
      - match: {prefix: /}
        action:
          cluster: c
          rate_limits:
            - actions:
                - query_parameter_value_match:
                    descriptor_value: alice
                    query_parameters: [{name: user, string_match: {exact: "al ice"}}]
"#,
    );
    let ctx = RateLimitContext::new();
    let get = |path: &str| descriptors(&t, &Request::get("h", path), 0, &ctx);
    let hit = e(&[&[("query_match", "alice")]]);
    assert_eq!(get("/?user=al%20ice"), hit);
    assert_eq!(get("/?x=1&us%65r=al%20ice"), hit);
    assert_eq!(get("/?user=al+ice"), e(&[]), "a + is not a space here");
    assert_eq!(get("/?user=al%2"), e(&[]));
}

#[test]
fn invalid_escapes_stay_and_route_matching_still_reads_raw_values() {
    let t = table(
        r#"
virtual_hosts:
  - name: v
    domains: ["*"]
    routes:
      - name: raw
        match:
          prefix: /
          query_parameters: [{name: user, string_match: {exact: "a%zz%20b"}}]
        action:
          cluster: c
          rate_limits:
            - actions:
                - query_parameter_value_match:
                    descriptor_value: decoded
                    query_parameters: [{name: user, string_match: {exact: "a%zz b"}}]
"#,
    );
    let ctx = RateLimitContext::new();
    let req = Request::get("h", "/?user=a%zz%20b");
    // The route matched the raw value; the action, the decoded one with
    // the invalid escape kept.
    assert_eq!(
        descriptors(&t, &req, 0, &ctx),
        e(&[&[("query_match", "decoded")]])
    );
    // Decoded, this value is the route's; raw, it is not.
    let req = Request::get("h", "/?user=a%25zz%2520b");
    let d = t.route(&req, 0);
    assert!(
        matches!(d, rauta_router::Decision::NotFound { .. }),
        "{d:?}"
    );
}

#[test]
fn an_unknown_vh_rate_limits_is_a_load_error() {
    let yaml = |v: &str| {
        format!(
            "virtual_hosts: [{{name: v, domains: ['*'], routes: [{{name: r, match: {{prefix: /}}, action: {{cluster: c}}, typed_per_filter_config: {{envoy.filters.http.ratelimit: {{vh_rate_limits: {v}}}}}}}]}}]"
        )
    };
    // As Envoy's JSON reader takes enums: any case, numbers, numbers in
    // strings, null for the default.
    for ok in [
        "INCLUDE", "IGNORE", "OVERRIDE", "2", "include", "'1'", "null",
    ] {
        RouteTable::from_yaml(&yaml(ok)).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for bad in ["SOMETIMES", "3", "'-1'", "true"] {
        let err = RouteTable::from_yaml(&yaml(bad))
            .expect_err(bad)
            .to_string();
        assert!(
            err.contains(
                "typed_per_filter_config[\"envoy.filters.http.ratelimit\"].vh_rate_limits: "
            ) && err.contains("is not one of OVERRIDE, INCLUDE, IGNORE"),
            "{bad}: {err}"
        );
    }
    // What loads is what the descriptors use: "include" in lower case
    // brings in the virtual host's.
    let t = table(
        r#"
virtual_hosts:
  - name: v
    domains: ["*"]
    rate_limits: [{actions: [{generic_key: {descriptor_value: vhost}}]}]
    routes:
      - match: {prefix: /}
        action: {cluster: c, rate_limits: [{actions: [{generic_key: {descriptor_value: route}}]}]}
        typed_per_filter_config:
          envoy.filters.http.ratelimit: {vh_rate_limits: include}
"#,
    );
    let ctx = RateLimitContext::new();
    assert_eq!(
        descriptors(&t, &Request::get("h", "/"), 0, &ctx),
        e(&[&[("generic_key", "route")], &[("generic_key", "vhost")]])
    );
    // Every level is checked, inside a FilterConfig wrapper too.
    let bad = "{envoy.filters.http.ratelimit: {vh_rate_limits: SOMETIMES}}";
    let wrapped = "{envoy.filters.http.ratelimit: {'@type': type.googleapis.com/envoy.config.route.v3.FilterConfig, config: {vh_rate_limits: SOMETIMES}}}";
    for (yaml, at) in [
        (format!("typed_per_filter_config: {bad}\nvirtual_hosts: []"), "typed_per_filter_config[\"envoy.filters.http.ratelimit\"].vh_rate_limits"),
        (format!("virtual_hosts: [{{name: v, domains: ['*'], typed_per_filter_config: {bad}, routes: []}}]"), "virtual_hosts[0] \"v\": typed_per_filter_config[\"envoy.filters.http.ratelimit\"].vh_rate_limits"),
        (format!("virtual_hosts: [{{name: v, domains: ['*'], routes: [{{name: r, match: {{prefix: /}}, action: {{weighted_clusters: [{{name: a, weight: 1, typed_per_filter_config: {bad}}}]}}}}]}}]"), "action.weighted_clusters[0].typed_per_filter_config[\"envoy.filters.http.ratelimit\"].vh_rate_limits"),
        (format!("virtual_hosts: [{{name: v, domains: ['*'], routes: [{{name: r, match: {{prefix: /}}, action: {{cluster: c}}, typed_per_filter_config: {wrapped}}}]}}]"), "typed_per_filter_config[\"envoy.filters.http.ratelimit\"].config.vh_rate_limits"),
    ] {
        let err = RouteTable::from_yaml(&yaml).expect_err(&yaml).to_string();
        assert!(err.contains(at), "{at}\n{err}");
    }
}
