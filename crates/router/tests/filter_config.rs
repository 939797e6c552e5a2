//! Envoy's `FilterConfig` wrapper in `typed_per_filter_config`: `config`
//! is unwrapped, `disabled` turns a filter off for a route.

use rauta_router::{Request, RouteTable};

const FC: &str = "type.googleapis.com/envoy.config.route.v3.FilterConfig";

fn table() -> RouteTable {
    RouteTable::from_yaml(&format!(
        r#"
typed_per_filter_config:
  authz: {{policy: strict}}
  envoy.filters.http.cors: {{allow_origin_string_match: [{{prefix: ""}}]}}
virtual_hosts:
  - name: api
    domains: ["*"]
    typed_per_filter_config:
      tracing: {{"@type": "{FC}", disabled: true}}
    routes:
      - name: health
        match: {{path: /healthz}}
        action: {{cluster: api}}
        typed_per_filter_config:
          authz: {{"@type": "{FC}", disabled: true}}
          envoy.filters.http.cors: {{"@type": "{FC}", disabled: true}}
      - name: wrapped
        match: {{prefix: /wrapped}}
        action: {{cluster: api}}
        typed_per_filter_config:
          authz: {{"@type": "{FC}", config: {{policy: lenient}}, is_optional: true}}
          tracing: {{"@type": "{FC}", config: {{}}}}
          envoy.filters.http.cors:
            "@type": "{FC}"
            config: {{allow_origin_string_match: [{{exact: "https://a.example"}}], max_age: "5"}}
      - name: rest
        match: {{prefix: /}}
        action: {{cluster: api}}
"#
    ))
    .unwrap()
}

#[test]
fn disabled_turns_a_filter_off_and_the_most_specific_level_decides() {
    let t = table();
    let ask = |path: &str, filter: &str| {
        let req = Request::get("h", path);
        let d = t.route(&req, 0);
        let m = d.route().unwrap();
        (
            m.filter_disabled(filter),
            m.per_filter_config(filter).map(|v| v.to_string()),
        )
    };
    // The route disables authz; its config then comes from the next level
    // that has one (Envoy's mostSpecificPerFilterConfig), though the filter
    // is off.
    assert_eq!(
        ask("/healthz", "authz"),
        (Some(true), Some(r#"{"policy":"strict"}"#.into()))
    );
    // A wrapped config is unwrapped.
    assert_eq!(
        ask("/wrapped", "authz"),
        (Some(false), Some(r#"{"policy":"lenient"}"#.into()))
    );
    // An empty config enables the filter the virtual host disabled.
    assert_eq!(ask("/wrapped", "tracing"), (Some(false), None));
    assert_eq!(ask("/x", "tracing"), (Some(true), None));
    // A plain entry at the configuration level enables.
    assert_eq!(ask("/x", "authz").0, Some(false));
    assert_eq!(ask("/x", "other"), (None, None));
    // The per-level getters unwrap too.
    let vh = &t.virtual_hosts()[0];
    assert_eq!(vh.filter_config("tracing"), None);
    assert_eq!(
        vh.routes()[1].filter_config("authz").map(|v| v.to_string()),
        Some(r#"{"policy":"lenient"}"#.into())
    );
}

#[test]
fn cors_follows_the_wrapper() {
    let t = table();
    let cors = |path: &str| {
        let req = Request::get("h", path);
        let d = t.route(&req, 0);
        d.route().unwrap().cors().map(|c| {
            (
                c.max_age().to_owned(),
                c.origin_allowed(b"https://b.example"),
            )
        })
    };
    assert_eq!(cors("/healthz"), None, "disabled on the route");
    // The wrapped policy is the most specific; origins still come from
    // the first policy that lists any (the route's).
    assert_eq!(cors("/wrapped"), Some(("5".into(), false)));
    assert_eq!(cors("/x"), Some(("".into(), true)));
}

#[test]
fn malformed_wrappers_are_load_errors() {
    let cases = [
        (
            format!(r#"{{"@type": "{FC}"}}"#),
            "Empty route/virtual host per filter configuration for f filter",
        ),
        (
            format!(r#"{{"@type": "{FC}", is_optional: true}}"#),
            "Empty route/virtual host per filter",
        ),
        (
            format!(r#"{{"@type": "{FC}", disabled: true, typo: 1}}"#),
            r#"typed_per_filter_config["f"].typo: unknown field of a FilterConfig"#,
        ),
        (
            format!(r#"{{"@type": "{FC}", disabled: "yes"}}"#),
            r#"typed_per_filter_config["f"].disabled: wrong type"#,
        ),
        (
            format!(r#"{{"@type": "{FC}", config: 1}}"#),
            "config: wrong type",
        ),
    ];
    for (value, expect) in cases {
        for level in ["", "    "] {
            let yaml = if level.is_empty() {
                format!(
                    "typed_per_filter_config: {{f: {value}}}\nvirtual_hosts: [{{name: v, domains: [\"*\"], routes: [{{match: {{prefix: /}}, action: {{cluster: c}}}}]}}]\n"
                )
            } else {
                format!(
                    "virtual_hosts: [{{name: v, domains: [\"*\"], routes: [{{match: {{prefix: /}}, action: {{cluster: c}}, typed_per_filter_config: {{f: {value}}}}}]}}]\n"
                )
            };
            let err = RouteTable::from_yaml(&yaml).expect_err(&yaml).to_string();
            assert!(err.contains(expect), "{yaml}\n{err}");
        }
    }
}
