//! A malformed or invalid configuration never panics: random YAML-shaped
//! input goes through the loader and the builder and comes out as a value or
//! a typed error.

use proptest::prelude::*;
use rauta_router::config::RouteConfig;
use rauta_router::RouteTable;

/// Keys and scalars that the config model knows, so random documents get
/// deep into validation instead of failing at the first unknown field.
const KEYS: &[&str] = &[
    "name",
    "virtual_hosts",
    "domains",
    "routes",
    "match",
    "action",
    "prefix",
    "path",
    "path_separated_prefix",
    "regex",
    "path_template",
    "connect_matcher",
    "case_sensitive",
    "headers",
    "query_parameters",
    "grpc",
    "string_match",
    "exact",
    "safe_regex",
    "present_match",
    "invert_match",
    "range_match",
    "start",
    "end",
    "cluster",
    "cluster_header",
    "weighted_clusters",
    "weight",
    "redirect",
    "direct_response",
    "status",
    "body",
    "prefix_rewrite",
    "regex_rewrite",
    "pattern",
    "substitution",
    "path_template_rewrite",
    "host_rewrite_literal",
    "timeout_ms",
    "retry_policy",
    "num_retries",
    "request_headers_to_add",
    "key",
    "value",
    "append_action",
    "require_tls",
    "path_normalization",
    "normalize_path",
    "limits",
    "max_regexes",
];
const SCALARS: &[&str] = &[
    "\"*\"",
    "\"/\"",
    "\"\"",
    "/a",
    "\"*.x.com\"",
    "\"x.*\"",
    "0",
    "-1",
    "4294967296",
    "true",
    "null",
    "~",
    "\"(+\"",
    "\"/{a}/{b=**}\"",
    "\"/{a\"",
    "ALL",
    "OVERWRITE_IF_EXISTS",
    "\":path\"",
    "host",
    "'a\\u0000b'",
    "1e99",
    "[]",
    "{}",
    "\"\\\\1\"",
];

fn node(depth: u32) -> BoxedStrategy<String> {
    let leaf = prop::sample::select(SCALARS)
        .prop_map(str::to_string)
        .boxed();
    if depth == 0 {
        return leaf;
    }
    let map =
        prop::collection::vec((prop::sample::select(KEYS), node(depth - 1)), 0..5).prop_map(|kv| {
            let body: Vec<String> = kv.into_iter().map(|(k, v)| format!("{k}: {v}")).collect();
            format!("{{{}}}", body.join(", "))
        });
    let list =
        prop::collection::vec(node(depth - 1), 0..4).prop_map(|v| format!("[{}]", v.join(", ")));
    prop_oneof![2 => leaf, 3 => map.boxed(), 2 => list.boxed()].boxed()
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(2000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn structured_yaml_never_panics(doc in node(5)) {
        let text = format!("virtual_hosts: [{doc}]");
        if let Ok(cfg) = RouteConfig::from_yaml(&text) {
            let _ = RouteTable::build(cfg);
        }
        let _ = RouteTable::from_yaml(&doc);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = RouteTable::from_yaml(&text);
        let _ = RouteConfig::from_json(&text);
    }

    #[test]
    fn valid_skeleton_with_random_route(m in node(3), a in node(3)) {
        let text = format!(
            "virtual_hosts: [{{name: v, domains: [\"*\"], routes: [{{name: r, match: {m}, action: {a}}}]}}]"
        );
        match RouteTable::from_yaml(&text) {
            Ok(t) => prop_assert_eq!(t.route_count(), 1),
            Err(e) => {
                // Every error is displayable and names where it is.
                prop_assert!(!e.is_empty());
                for err in e.errors() {
                    prop_assert!(!err.to_string().is_empty());
                }
            }
        }
    }
}
