//! The route configuration model: an Envoy-shaped `RouteConfiguration` that
//! deserializes from YAML or JSON and can be built in Rust.
//!
//! Field names follow Envoy's v3 API (`virtual_hosts`, `domains`, `routes`,
//! `match`, `prefix`, `headers`, `request_headers_to_add`, ...), with a few
//! flattenings that make hand-written files shorter:
//!
//! * `match.regex` is Envoy's `safe_regex` (RE2 syntax, full match);
//!   `match.path_template` is the `envoy.path.match.uri_template` extension and
//!   `action.path_template_rewrite` its rewrite counterpart;
//! * `action` holds Envoy's `route`, `redirect` and `direct_response` oneof:
//!   a cluster specifier (`cluster`, `cluster_header`, `weighted_clusters`) with
//!   its route options, or `redirect`, or `direct_response`;
//! * durations are integers in milliseconds with a `_ms` suffix;
//! * a `string_match.safe_regex` is the pattern string itself.
//!
//! Unknown fields are errors. Every type here is plain data; nothing is checked
//! until [`RouteTable::build`](crate::RouteTable::build), which reports every
//! problem at once.
//!
//! ```
//! use rauta_router::config::RouteConfig;
//!
//! let yaml = r#"
//! virtual_hosts:
//!   - name: api
//!     domains: ["api.example.com"]
//!     routes:
//!       - name: users
//!         match: { prefix: "/users" }
//!         action: { cluster: users }
//! "#;
//! let config = RouteConfig::from_yaml(yaml)?;
//! assert_eq!(config.virtual_hosts[0].routes[0].name.as_deref(), Some("users"));
//! # Ok::<(), rauta_router::ConfigErrors>(())
//! ```

use serde::Deserialize;

use crate::error::{ConfigError, ConfigErrors, ErrorKind};

/// Per-filter configuration values by filter name (Envoy's
/// `typed_per_filter_config`).
pub type FilterConfigs = std::collections::BTreeMap<String, serde_json::Value>;

/// A whole route configuration: Envoy's `RouteConfiguration`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RouteConfig {
    /// Name of the configuration, used in error messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The virtual hosts, each owning a set of domains and an ordered route list.
    #[serde(default)]
    pub virtual_hosts: Vec<VirtualHost>,
    /// Cut the port off the request host before virtual host selection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_port_in_host_matching: Option<bool>,
    /// Cut the path at the first `;` before path matching.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_path_parameters_in_path_matching: Option<bool>,
    /// Apply header mutations most specific last (route wins) instead of
    /// Envoy's default order (route, virtual host, configuration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub most_specific_header_mutations_wins: Option<bool>,
    /// Select the virtual host by this request header instead of `:authority`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alternate_header_for_host_matching: Option<String>,
    /// Headers only internal requests may carry (Envoy's
    /// `internal_only_headers`): on an external request (one without
    /// `x-envoy-internal: true`) routing does not see them and
    /// [`RouteMatch::apply_request`](crate::RouteMatch::apply_request)
    /// removes them before the header mutations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub internal_only_headers: Vec<String>,
    /// Request mirrors (Envoy's `request_mirror_policies`): the nearest
    /// level that has any wins (route, else virtual host, else
    /// configuration). See [`RouteMatch::mirrors`](crate::RouteMatch::mirrors).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_mirror_policies: Vec<RequestMirrorPolicy>,
    /// Metadata (Envoy's `metadata`: `filter_metadata` and
    /// `typed_filter_metadata`), kept as given for the proxy's own use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
    /// Per-filter configuration (Envoy's `typed_per_filter_config`): filter
    /// name to any value, kept as given for the proxy's own filters. The
    /// most specific level wins (see
    /// [`RouteMatch::per_filter_config`](crate::RouteMatch::per_filter_config)).
    #[serde(default, skip_serializing_if = "FilterConfigs::is_empty")]
    pub typed_per_filter_config: FilterConfigs,
    /// Reject clusters that are not known at build time (see
    /// [`BuildOptions::known_clusters`](crate::BuildOptions::known_clusters)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validate_clusters: Option<bool>,
    /// Largest direct-response body in bytes (default 4096).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_direct_response_body_size_bytes: Option<u32>,
    /// Request headers added to every request routed by this configuration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_headers_to_add: Vec<HeaderValueOption>,
    /// Request headers removed from every routed request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_headers_to_remove: Vec<String>,
    /// Response headers added to every response.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_headers_to_add: Vec<HeaderValueOption>,
    /// Response headers removed from every response.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_headers_to_remove: Vec<String>,
    /// Request path handling before matching (normalization, escaped slashes,
    /// rejects). Unset fields take RAUTA's safe defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_normalization: Option<crate::path::PathPolicy>,
    /// Host handling before virtual host selection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_normalization: Option<HostNormalization>,
    /// Load-time limits; unset fields take the defaults of [`Limits`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
}

/// How the request host is rewritten before virtual host selection, as an
/// Envoy HTTP connection manager would (`strip_any_host_port`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct HostNormalization {
    /// Remove any numeric `:port` from the host.
    #[serde(default)]
    pub strip_any_host_port: bool,
    /// Remove `:port` only when it equals this listener port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strip_matching_host_port: Option<u16>,
    /// Remove one trailing dot from the host name (`a.com.:80` becomes `a.com:80`).
    #[serde(default)]
    pub strip_trailing_host_dot: bool,
}

/// Bounds checked when a configuration is built. A configuration over a bound
/// is rejected with an error naming the bound; nothing is truncated.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct Limits {
    /// Most virtual hosts in one configuration.
    pub max_virtual_hosts: usize,
    /// Most domains over all virtual hosts.
    pub max_domains: usize,
    /// Most routes in one virtual host.
    pub max_routes_per_virtual_host: usize,
    /// Most header and query matchers in one route.
    pub max_matchers_per_route: usize,
    /// Most regular expressions in the whole configuration.
    pub max_regexes: usize,
    /// Longest regular expression pattern, in bytes.
    pub max_regex_pattern_bytes: usize,
    /// Largest compiled program of one regular expression, in bytes (the
    /// `regex` crate's `size_limit`).
    pub max_regex_compiled_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_virtual_hosts: 10_000,
            max_domains: 100_000,
            max_routes_per_virtual_host: 100_000,
            max_matchers_per_route: 64,
            max_regexes: 10_000,
            max_regex_pattern_bytes: 1024,
            max_regex_compiled_bytes: 256 * 1024,
        }
    }
}

/// A virtual host: a set of domains and the ordered routes that serve them.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct VirtualHost {
    /// Name, used in errors, stats and decisions.
    pub name: String,
    /// Host names served: exact (`a.com`), suffix wildcard (`*.a.com`),
    /// prefix wildcard (`a.*`) or the default `*`.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Routes, tried in order; the first that matches wins.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Redirect plain-HTTP requests to HTTPS before any route is looked at.
    /// The path policy runs first: its rejects and redirects win, and the
    /// redirect carries the path it normalized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_tls: Option<RequireTls>,
    /// Request headers added to requests routed through this virtual host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_headers_to_add: Vec<HeaderValueOption>,
    /// Request headers removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_headers_to_remove: Vec<String>,
    /// Response headers added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_headers_to_add: Vec<HeaderValueOption>,
    /// Response headers removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_headers_to_remove: Vec<String>,
    /// Retry policy for routes that set none of their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<RetryPolicy>,
    /// Hedge policy for routes that set none of their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hedge_policy: Option<HedgePolicy>,
    /// Rate limit descriptors for this virtual host's routes (see
    /// [`RouteMatch::rate_limit_descriptors`](crate::RouteMatch::rate_limit_descriptors)).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rate_limits: Vec<RateLimit>,
    /// CORS policy (Envoy's `VirtualHost.cors`) for this virtual host's
    /// forwarding routes; see [`RouteMatch::cors`](crate::RouteMatch::cors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsPolicy>,
    /// Envoy's generic matcher tree. Not supported: accepted by the parser so
    /// that the error can say so (and that it conflicts with `routes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matcher: Option<serde_json::Value>,
    /// Virtual clusters (request classes for stats), as data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub virtual_clusters: Vec<VirtualCluster>,
    /// Request mirrors (Envoy's `request_mirror_policies`): the nearest
    /// level that has any wins (route, else virtual host, else
    /// configuration). See [`RouteMatch::mirrors`](crate::RouteMatch::mirrors).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_mirror_policies: Vec<RequestMirrorPolicy>,
    /// Metadata (Envoy's `metadata`: `filter_metadata` and
    /// `typed_filter_metadata`), kept as given for the proxy's own use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
    /// Per-filter configuration (Envoy's `typed_per_filter_config`): filter
    /// name to any value, kept as given for the proxy's own filters. The
    /// most specific level wins (see
    /// [`RouteMatch::per_filter_config`](crate::RouteMatch::per_filter_config)).
    #[serde(default, skip_serializing_if = "FilterConfigs::is_empty")]
    pub typed_per_filter_config: FilterConfigs,
    /// The most request body a proxy keeps to send again (for an internal
    /// redirect, or a retry), in bytes, for this virtual host's routes that
    /// do not set their own (Envoy's `per_request_buffer_limit_bytes`; it
    /// only lowers the proxy's own limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_request_buffer_limit_bytes: Option<u32>,
    /// Path handling for this virtual host; overlays the configuration's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_normalization: Option<crate::path::PathPolicy>,
}

/// A virtual cluster: a named class of requests for stats.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct VirtualCluster {
    /// Name of the class.
    pub name: String,
    /// Header matchers selecting the requests of the class (required).
    #[serde(default)]
    pub headers: Vec<HeaderMatcher>,
}

/// TLS requirement of a virtual host (Envoy's `require_tls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum RequireTls {
    /// No requirement.
    None,
    /// Redirect plain requests unless marked internal (`x-envoy-internal:
    /// true`). The proxy must remove that header from the requests it did
    /// not mark itself, or any client can skip the redirect.
    ExternalOnly,
    /// Redirect every plain request.
    All,
}

/// One route: conditions, an action and header mutations.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Route {
    /// Name, used in errors, stats and decisions. Unnamed routes are called
    /// by their position (`routes[3]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Conditions; all must hold.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_: Option<RouteMatch>,
    /// What to do with a matching request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// Request headers added when this route is taken.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_headers_to_add: Vec<HeaderValueOption>,
    /// Request headers removed when this route is taken.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_headers_to_remove: Vec<String>,
    /// Response headers added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_headers_to_add: Vec<HeaderValueOption>,
    /// Response headers removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_headers_to_remove: Vec<String>,
    /// Metadata (Envoy's `metadata`: `filter_metadata` and
    /// `typed_filter_metadata`), kept as given for the proxy's own use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
    /// Per-filter configuration (Envoy's `typed_per_filter_config`): filter
    /// name to any value, kept as given for the proxy's own filters. The
    /// most specific level wins (see
    /// [`RouteMatch::per_filter_config`](crate::RouteMatch::per_filter_config)).
    #[serde(default, skip_serializing_if = "FilterConfigs::is_empty")]
    pub typed_per_filter_config: FilterConfigs,
    /// The most request body a proxy keeps to send again (for an internal
    /// redirect, or a retry), in bytes; replaces the virtual host's (Envoy's
    /// `per_request_buffer_limit_bytes`; it only lowers the proxy's own
    /// limit). See
    /// [`RouteEntry::per_request_buffer_limit_bytes`](crate::RouteEntry::per_request_buffer_limit_bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_request_buffer_limit_bytes: Option<u32>,
}

/// The conditions of a route. Exactly one path specifier must be set.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RouteMatch {
    /// Byte-wise prefix of the path (without query).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The whole path (without query).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A prefix that must end the path or be followed by `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_separated_prefix: Option<String>,
    /// A regular expression (RE2 syntax) that must match the whole path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// A URI template such as `/repos/{owner}/{repo}/**`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_template: Option<String>,
    /// Matches CONNECT requests, with or without a path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_matcher: Option<Empty>,
    /// Whether `prefix`, `path` and `path_separated_prefix` compare
    /// case-sensitively (default true). `regex` and `path_template` ignore
    /// it, as in Envoy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_sensitive: Option<bool>,
    /// Header conditions, all of which must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderMatcher>,
    /// Query parameter conditions, all of which must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query_parameters: Vec<QueryParameterMatcher>,
    /// Only gRPC requests (content-type `application/grpc[+...]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<Empty>,
    /// Match only this fraction of requests, decided by the random value
    /// passed to [`RouteTable::route`](crate::RouteTable::route).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_fraction: Option<RuntimeFraction>,
}

/// A request mirror (Envoy's `RequestMirrorPolicy`): a copy of a routed
/// request goes to another cluster too, and its answer is dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RequestMirrorPolicy {
    /// The cluster the copies go to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Or: the request header whose first value names it (no copy when
    /// absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_header: Option<String>,
    /// Mirror only this fraction of requests, decided by the random value
    /// passed to `route` (`runtime_key` is accepted and ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_fraction: Option<RuntimeFraction>,
    /// Accepted for compatibility; there is no tracing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_sampled: Option<bool>,
    /// Keep the copy's Host as it is instead of appending `-shadow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_shadow_host_suffix_append: Option<bool>,
}

/// Envoy's `RuntimeFractionalPercent`: a route matches when
/// `random_value % denominator < numerator`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RuntimeFraction {
    /// The fraction.
    pub default_value: FractionalPercent,
    /// Accepted for compatibility; runtime overrides are not supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_key: Option<String>,
}

/// A fraction `numerator / denominator`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct FractionalPercent {
    /// The numerator.
    #[serde(default)]
    pub numerator: u32,
    /// The denominator (default `HUNDRED`).
    #[serde(default)]
    pub denominator: Denominator,
}

/// Denominators of [`FractionalPercent`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum Denominator {
    /// 100.
    #[default]
    Hundred,
    /// 10,000.
    TenThousand,
    /// 1,000,000.
    Million,
}

impl Denominator {
    /// The value.
    pub fn value(self) -> u64 {
        match self {
            Denominator::Hundred => 100,
            Denominator::TenThousand => 10_000,
            Denominator::Million => 1_000_000,
        }
    }
}

/// An empty mapping (`{}`), for Envoy's marker messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// A condition on a request header (Envoy's `HeaderMatcher`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct HeaderMatcher {
    /// Header name, compared case-insensitively. `:authority`, `:path`,
    /// `:method` and `:scheme` name the pseudo-headers.
    pub name: String,
    /// Value test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string_match: Option<StringMatcher>,
    /// Deprecated exact test; an empty string means "present with any value".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact_match: Option<String>,
    /// Deprecated regex test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safe_regex_match: Option<RegexMatcher>,
    /// Deprecated prefix test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_match: Option<String>,
    /// Deprecated suffix test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix_match: Option<String>,
    /// Deprecated contains test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains_match: Option<String>,
    /// The whole value parsed as a signed 64-bit integer in `[start, end)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range_match: Option<Int64Range>,
    /// Presence (`true`) or absence (`false`) test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub present_match: Option<bool>,
    /// Flip the result of the test.
    #[serde(default)]
    pub invert_match: bool,
    /// Test an absent header as if it were present and empty.
    #[serde(default)]
    pub treat_missing_header_as_empty: bool,
}

/// A half-open signed range `[start, end)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Int64Range {
    /// Inclusive start (a number, or a string of one as protobuf's JSON
    /// writes int64).
    #[serde(deserialize_with = "int64::signed")]
    pub start: i64,
    /// Exclusive end.
    #[serde(deserialize_with = "int64::signed")]
    pub end: i64,
}

/// Integers that protobuf's JSON mapping writes as strings (`int64`,
/// `uint64`): either form is read.
mod int64 {
    use serde::de::{Deserializer, Error, Visitor};
    use std::fmt;

    struct Int;

    impl Visitor<'_> for Int {
        type Value = i128;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an integer, or a string holding one")
        }
        fn visit_i64<E: Error>(self, v: i64) -> Result<i128, E> {
            Ok(v.into())
        }
        fn visit_u64<E: Error>(self, v: u64) -> Result<i128, E> {
            Ok(v.into())
        }
        fn visit_str<E: Error>(self, v: &str) -> Result<i128, E> {
            v.parse()
                .map_err(|_| E::custom(format!("{v:?} is not an integer")))
        }
    }

    fn int<'de, D: Deserializer<'de>, T: TryFrom<i128>>(d: D) -> Result<T, D::Error> {
        let v = d.deserialize_any(Int)?;
        T::try_from(v).map_err(|_| D::Error::custom(format!("{v} is out of range")))
    }

    pub(super) fn signed<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        int(d)
    }

    pub(super) fn optional_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        int(d).map(Some)
    }
}

/// A regular expression in Envoy's `RegexMatcher` form (`{regex: ...}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegexMatcher {
    /// The pattern (RE2 syntax).
    pub regex: String,
    /// Ignored (Envoy's `google_re2` engine settings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub google_re2: Option<serde_json::Value>,
}

/// A regular expression given either as a plain pattern string or as
/// `{regex: ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum RegexSpec {
    /// `safe_regex: "pattern"`.
    Pattern(String),
    /// `safe_regex: {regex: "pattern"}`.
    Matcher(RegexMatcher),
}

impl RegexSpec {
    /// The pattern text.
    pub fn pattern(&self) -> &str {
        match self {
            RegexSpec::Pattern(p) => p,
            RegexSpec::Matcher(m) => &m.regex,
        }
    }
}

/// A string test (Envoy's `StringMatcher`). Exactly one of the tests is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct StringMatcher {
    /// Equal to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    /// Starts with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Ends with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    /// Contains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<String>,
    /// Fully matched by a regular expression (RE2 syntax).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safe_regex: Option<RegexSpec>,
    /// Compare ASCII case-insensitively (not for `safe_regex`).
    #[serde(default)]
    pub ignore_case: bool,
}

/// A condition on a query parameter (Envoy's `QueryParameterMatcher`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct QueryParameterMatcher {
    /// Parameter name (case-sensitive). Only its first occurrence counts.
    pub name: String,
    /// Value test on the raw (not percent-decoded) value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string_match: Option<StringMatcher>,
    /// Presence test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub present_match: Option<bool>,
}

/// What a route does: forward to a cluster (with route options), redirect,
/// or answer directly.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Action {
    /// Forward to this cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Forward to the cluster named by the first value of this header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_header: Option<String>,
    /// Split between clusters by weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weighted_clusters: Option<WeightedClusters>,
    /// Answer with a redirect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<Redirect>,
    /// Answer directly with a status and body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_response: Option<DirectResponse>,

    /// Status when the chosen cluster does not exist (default 503).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_not_found_response_code: Option<ClusterNotFoundResponseCode>,
    /// Replace the matched prefix (or the whole path for regex routes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_rewrite: Option<String>,
    /// Replace every match of a regex in the path (query kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex_rewrite: Option<RegexRewrite>,
    /// Rewrite through the variables of the route's `path_template`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_template_rewrite: Option<String>,
    /// Upstream Host becomes this literal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_rewrite_literal: Option<String>,
    /// Upstream Host becomes the chosen endpoint's host name (done by the proxy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_host_rewrite: Option<bool>,
    /// Upstream Host becomes the first value of this header, if non-empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_rewrite_header: Option<String>,
    /// Upstream Host becomes a regex substitution of the path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_rewrite_path_regex: Option<RegexRewrite>,
    /// Put the old Host in `x-forwarded-host` when it is rewritten.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub append_x_forwarded_host: Option<bool>,
    /// Upstream timeout in milliseconds (default 15000; 0 disables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Stream idle timeout in milliseconds (0 disables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_ms: Option<u64>,
    /// The stream's lifetime on this route and the `grpc-timeout` header's
    /// part in it (Envoy's `max_stream_duration`). Setting it replaces
    /// [`timeout_ms`](Self::timeout_ms) and the gRPC fields below, as in
    /// Envoy. See [`RouteMatch::timeouts`](crate::RouteMatch::timeouts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_stream_duration: Option<MaxStreamDuration>,
    /// For gRPC requests, the upstream timeout comes from their
    /// `grpc-timeout` header, capped at this many milliseconds (0: not
    /// capped); Envoy's deprecated `max_grpc_timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_grpc_timeout_ms: Option<u64>,
    /// Milliseconds taken off a gRPC request's `grpc-timeout` (when it is
    /// longer) before [`max_grpc_timeout_ms`](Self::max_grpc_timeout_ms)
    /// applies; Envoy's deprecated `grpc_timeout_offset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_timeout_offset_ms: Option<u64>,
    /// Retry policy; replaces the virtual host's entirely.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<RetryPolicy>,
    /// Hedge policy; replaces the virtual host's entirely.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hedge_policy: Option<HedgePolicy>,
    /// Rate limit descriptors for this route.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rate_limits: Vec<RateLimit>,
    /// Also produce the virtual host's descriptors (Envoy's deprecated
    /// `include_vh_rate_limits`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_vh_rate_limits: Option<bool>,
    /// CORS policy (Envoy's `RouteAction.cors`); its fields take precedence
    /// over the virtual host's. See [`RouteMatch::cors`](crate::RouteMatch::cors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsPolicy>,
    /// Protocol upgrades allowed on this route.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upgrade_configs: Vec<UpgradeConfig>,
    /// How to turn the request into a hash key for consistent-hash balancers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hash_policy: Vec<HashPolicy>,
    /// Request mirrors for this route; they replace the virtual host's
    /// and the configuration's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_mirror_policies: Vec<RequestMirrorPolicy>,
    /// Follow the upstream's redirects inside the proxy (Envoy's
    /// `internal_redirect_policy`). See
    /// [`RouteMatch::internal_redirect`](crate::RouteMatch::internal_redirect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_redirect_policy: Option<InternalRedirectPolicy>,
}

/// Which upstream redirects the proxy follows itself, sending the request
/// on to the `Location` instead of answering the 3xx (Envoy's
/// `RouteAction.InternalRedirectPolicy`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct InternalRedirectPolicy {
    /// How many redirects one downstream request may follow, over all its
    /// passes (default 1; 0 follows none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_internal_redirects: Option<u32>,
    /// The statuses followed: up to five of 301, 302, 303, 307 and 308
    /// (default: 302 alone).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirect_response_codes: Vec<u32>,
    /// Tests of the redirect's target route, in order; any one refuses it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub predicates: Vec<InternalRedirectPredicate>,
    /// Follow a redirect from `http` to `https` or back (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_cross_scheme_redirect: Option<bool>,
    /// Headers of the redirect response copied into the followed request
    /// (all their values); one the response lacks is removed from it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_headers_to_copy: Vec<String>,
}

impl InternalRedirectPolicy {
    /// Envoy's defaults: one redirect, on 302, same scheme.
    pub fn new() -> InternalRedirectPolicy {
        InternalRedirectPolicy::default()
    }

    /// Sets [`max_internal_redirects`](Self::max_internal_redirects).
    pub fn max_internal_redirects(mut self, n: u32) -> Self {
        self.max_internal_redirects = Some(n);
        self
    }

    /// Sets [`redirect_response_codes`](Self::redirect_response_codes).
    pub fn redirect_response_codes(mut self, codes: impl IntoIterator<Item = u32>) -> Self {
        self.redirect_response_codes = codes.into_iter().collect();
        self
    }

    /// Adds a predicate.
    pub fn predicate(mut self, p: InternalRedirectPredicate) -> Self {
        self.predicates.push(p);
        self
    }

    /// Sets [`allow_cross_scheme_redirect`](Self::allow_cross_scheme_redirect).
    pub fn allow_cross_scheme_redirect(mut self, allow: bool) -> Self {
        self.allow_cross_scheme_redirect = Some(allow);
        self
    }

    /// Adds a header to [`response_headers_to_copy`](Self::response_headers_to_copy).
    pub fn copy_response_header(mut self, name: impl Into<String>) -> Self {
        self.response_headers_to_copy.push(name.into());
        self
    }
}

/// A test of an internal redirect's target route (Envoy's
/// `envoy.internal_redirect_predicates.*` extensions).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum InternalRedirectPredicate {
    /// Only these routes (by name) may be redirected to.
    AllowListedRoutes {
        /// The route names (none empty; an empty list refuses every
        /// target).
        allowed_route_names: Vec<String>,
    },
    /// A route this policy's redirects already led to, in the same
    /// request, may not be redirected to again (loops end at once).
    PreviousRoutes {},
    /// An `https` request may be redirected to `http` or `https`, an
    /// `http` one only to `http`.
    SafeCrossScheme {},
}

/// How long a stream may last on a route (Envoy's
/// `RouteAction.MaxStreamDuration`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MaxStreamDuration {
    /// The stream's whole lifetime, in milliseconds (0: no limit, not even
    /// the listener's). Unset: the listener's limit applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_stream_duration_ms: Option<u64>,
    /// When set, a request's `grpc-timeout` header sets the stream's
    /// lifetime instead, capped at this many milliseconds (0: not capped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_timeout_header_max_ms: Option<u64>,
    /// Milliseconds taken off the `grpc-timeout` header's value (a value
    /// not longer than this leaves no time at all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_timeout_header_offset_ms: Option<u64>,
}

impl MaxStreamDuration {
    /// No field set (the listener's limit applies).
    pub fn new() -> MaxStreamDuration {
        MaxStreamDuration::default()
    }

    /// Sets [`max_stream_duration_ms`](Self::max_stream_duration_ms).
    pub fn max_stream_duration_ms(mut self, ms: u64) -> Self {
        self.max_stream_duration_ms = Some(ms);
        self
    }

    /// Sets [`grpc_timeout_header_max_ms`](Self::grpc_timeout_header_max_ms).
    pub fn grpc_timeout_header_max_ms(mut self, ms: u64) -> Self {
        self.grpc_timeout_header_max_ms = Some(ms);
        self
    }

    /// Sets [`grpc_timeout_header_offset_ms`](Self::grpc_timeout_header_offset_ms).
    pub fn grpc_timeout_header_offset_ms(mut self, ms: u64) -> Self {
        self.grpc_timeout_header_offset_ms = Some(ms);
        self
    }
}

/// The status sent when a route's cluster does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum ClusterNotFoundResponseCode {
    /// 503 (the default).
    ServiceUnavailable,
    /// 404.
    NotFound,
    /// 500.
    InternalServerError,
}

impl ClusterNotFoundResponseCode {
    /// The HTTP status code.
    pub fn status(self) -> u16 {
        match self {
            ClusterNotFoundResponseCode::ServiceUnavailable => 503,
            ClusterNotFoundResponseCode::NotFound => 404,
            ClusterNotFoundResponseCode::InternalServerError => 500,
        }
    }
}

/// A regex substitution (Envoy's `RegexMatchAndSubstitute`). `\1`..`\9` in the
/// substitution stand for capture groups.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegexRewrite {
    /// The pattern (RE2 syntax), matched anywhere.
    pub pattern: RegexSpec,
    /// The replacement.
    pub substitution: String,
}

impl Default for RegexSpec {
    fn default() -> Self {
        RegexSpec::Pattern(String::new())
    }
}

/// Weighted clusters, either as a plain list of entries or in Envoy's form
/// with `clusters` and an optional `header_name` that supplies the random value.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum WeightedClusters {
    /// `weighted_clusters: [{name, weight}, ...]`.
    List(Vec<WeightedCluster>),
    /// `weighted_clusters: {clusters: [...], header_name: ...}`.
    Spec(WeightedClustersSpec),
}

impl WeightedClusters {
    /// The entries.
    pub fn clusters(&self) -> &[WeightedCluster] {
        match self {
            WeightedClusters::List(l) => l,
            WeightedClusters::Spec(s) => &s.clusters,
        }
    }

    /// The header whose integer value replaces the random value, if any.
    pub fn header_name(&self) -> Option<&str> {
        match self {
            WeightedClusters::List(_) => None,
            WeightedClusters::Spec(s) => s.header_name.as_deref(),
        }
    }
}

/// Envoy's `WeightedCluster` message.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct WeightedClustersSpec {
    /// The entries.
    pub clusters: Vec<WeightedCluster>,
    /// Take the random value from this header when it holds one integer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_name: Option<String>,
    /// Ignored; older Envoy releases required the weights to add up to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_weight: Option<u32>,
}

/// One weighted-cluster entry.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct WeightedCluster {
    /// Cluster name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Or: the header whose first value names the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_header: Option<String>,
    /// Weight (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// Request headers added when this entry is chosen (applied first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_headers_to_add: Vec<HeaderValueOption>,
    /// Request headers removed when this entry is chosen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_headers_to_remove: Vec<String>,
    /// Response headers added when this entry is chosen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_headers_to_add: Vec<HeaderValueOption>,
    /// Response headers removed when this entry is chosen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_headers_to_remove: Vec<String>,
    /// Upstream Host for this entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_rewrite_literal: Option<String>,
    /// Per-filter configuration (Envoy's `typed_per_filter_config`): filter
    /// name to any value, kept as given for the proxy's own filters. The
    /// most specific level wins (see
    /// [`RouteMatch::per_filter_config`](crate::RouteMatch::per_filter_config)).
    #[serde(default, skip_serializing_if = "FilterConfigs::is_empty")]
    pub typed_per_filter_config: FilterConfigs,
}

/// A redirect answer (Envoy's `RedirectAction`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Redirect {
    /// New scheme.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme_redirect: Option<String>,
    /// Scheme becomes `https`.
    #[serde(default)]
    pub https_redirect: bool,
    /// New host (may carry a port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_redirect: Option<String>,
    /// New port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_redirect: Option<u16>,
    /// New path (its own query, if any, replaces the request's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_redirect: Option<String>,
    /// Replace the matched prefix of the path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_rewrite: Option<String>,
    /// Regex substitution on the path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex_rewrite: Option<RegexRewrite>,
    /// Drop the request's query.
    #[serde(default)]
    pub strip_query: bool,
    /// Status (default `MOVED_PERMANENTLY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_code: Option<RedirectResponseCode>,
}

/// The status of a redirect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum RedirectResponseCode {
    /// 301.
    MovedPermanently,
    /// 302.
    Found,
    /// 303.
    SeeOther,
    /// 307.
    TemporaryRedirect,
    /// 308.
    PermanentRedirect,
}

impl RedirectResponseCode {
    /// The HTTP status code.
    pub fn status(self) -> u16 {
        match self {
            RedirectResponseCode::MovedPermanently => 301,
            RedirectResponseCode::Found => 302,
            RedirectResponseCode::SeeOther => 303,
            RedirectResponseCode::TemporaryRedirect => 307,
            RedirectResponseCode::PermanentRedirect => 308,
        }
    }
}

/// A direct answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DirectResponse {
    /// HTTP status.
    pub status: u16,
    /// The body: text, or Envoy's `DataSource` (`inline_string`,
    /// `inline_bytes`, `filename`, `environment_variable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<DataSource>,
    /// A body of `count` copies of `char` (for generated test bodies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_repeat: Option<BodyRepeat>,
}

/// Where a direct response's body comes from: the text itself
/// (`body: "ok"`), or Envoy's `DataSource` with exactly one field set
/// (`body: {filename: /etc/app/maintenance.html}`). Files and environment
/// variables are read when the table is built.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DataSource {
    /// The text itself.
    Text(String),
    /// Envoy's `DataSource` fields.
    Source(DataSourceSpec),
}

impl From<String> for DataSource {
    fn from(text: String) -> DataSource {
        DataSource::Text(text)
    }
}

impl From<&str> for DataSource {
    fn from(text: &str) -> DataSource {
        DataSource::Text(text.to_owned())
    }
}

/// Envoy's `config.core.v3.DataSource`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DataSourceSpec {
    /// The text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline_string: Option<String>,
    /// Bytes in base64 (standard or URL-safe alphabet, padding optional),
    /// as protobuf's JSON mapping writes them; they must be UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline_bytes: Option<String>,
    /// A file read at build time (see
    /// [`BuildOptions::local_data_sources`](crate::BuildOptions::local_data_sources)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// An environment variable read at build time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_variable: Option<String>,
    /// Accepted for compatibility; files are read once per build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watched_directory: Option<serde_json::Value>,
}

impl<'de> Deserialize<'de> for DataSource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<DataSource, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = DataSource;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("the body text or a DataSource (inline_string, inline_bytes, filename, environment_variable)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<DataSource, E> {
                Ok(DataSource::Text(v.to_owned()))
            }
            // A plain scalar is text, as in a string field (`body: 404`).
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<DataSource, E> {
                Ok(DataSource::Text(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<DataSource, E> {
                Ok(DataSource::Text(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<DataSource, E> {
                Ok(DataSource::Text(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<DataSource, E> {
                Ok(DataSource::Text(v.to_string()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<DataSource, E> {
                Ok(DataSource::Text(v))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<DataSource, A::Error> {
                DataSourceSpec::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(DataSource::Source)
            }
        }
        d.deserialize_any(Visit)
    }
}

/// A generated body: `count` copies of one character.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BodyRepeat {
    /// The character.
    #[serde(rename = "char")]
    pub ch: char,
    /// How many.
    pub count: usize,
}

/// A header to add (Envoy's `HeaderValueOption`), either flat
/// (`{key, value, append_action}`) or Envoy-shaped (`{header: {key, value}}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct HeaderValueOption {
    /// Header name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Header value. May hold Envoy's `%COMMAND%`s (`%REQ(x-id)%`,
    /// `%DOWNSTREAM_REMOTE_ADDRESS%`, ...), formatted per request; `%%` is a
    /// literal `%` (see [`crate::FormatContext`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Envoy's nested form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<HeaderKeyValue>,
    /// How to combine with existing values (default `APPEND_IF_EXISTS_OR_ADD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub append_action: Option<AppendAction>,
    /// Deprecated: `true` appends, `false` overwrites.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub append: Option<bool>,
    /// Add the header even when the value is empty.
    #[serde(default)]
    pub keep_empty_value: bool,
}

impl HeaderValueOption {
    /// A header added with the given action.
    pub fn new(key: impl Into<String>, value: impl Into<String>, action: AppendAction) -> Self {
        HeaderValueOption {
            key: Some(key.into()),
            value: Some(value.into()),
            append_action: Some(action),
            ..Default::default()
        }
    }
}

/// Envoy's nested `HeaderValue`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderKeyValue {
    /// Header name.
    pub key: String,
    /// Header value.
    #[serde(default)]
    pub value: String,
}

/// How an added header combines with existing values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum AppendAction {
    /// Add one more value (the default).
    AppendIfExistsOrAdd,
    /// Add only if the header is absent.
    AddIfAbsent,
    /// Replace every value, or add.
    OverwriteIfExistsOrAdd,
    /// Replace every value, only if present.
    OverwriteIfExists,
}

/// A retry policy, kept as data for the proxy.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Comma-separated conditions (`5xx`, `gateway-error`, `connect-failure`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_on: Option<String>,
    /// Attempts after the first (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_retries: Option<u32>,
    /// Timeout of each attempt in milliseconds (0 = the route timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try_timeout_ms: Option<u64>,
    /// Idle timeout of each attempt in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try_idle_timeout_ms: Option<u64>,
    /// Back-off between attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_back_off: Option<RetryBackOff>,
    /// Status codes retried under `retriable-status-codes`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retriable_status_codes: Vec<u16>,
    /// Response header conditions retried under `retriable-headers` (any
    /// one matching; `:status` names the status).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retriable_headers: Vec<HeaderMatcher>,
    /// Request header conditions of which one must match for the request
    /// to be retried at all (none: every request may be).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retriable_request_headers: Vec<HeaderMatcher>,
    /// Maximum host selection attempts (a number, or a string of one).
    #[serde(
        default,
        deserialize_with = "int64::optional_u32",
        skip_serializing_if = "Option::is_none"
    )]
    pub host_selection_retry_max_attempts: Option<u32>,
}

/// A hedge policy (Envoy's `HedgePolicy`), kept as data for the proxy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct HedgePolicy {
    /// Requests sent at once (default 1, at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_requests: Option<u32>,
    /// Chance of one more request beyond `initial_requests` (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_request_chance: Option<FractionalPercent>,
    /// On a per-try timeout, keep the attempt and send another; the first
    /// good answer wins.
    #[serde(default)]
    pub hedge_on_per_try_timeout: bool,
}

/// One rate limit (Envoy's `RateLimit`): a list of actions that together
/// produce one descriptor for a rate limit service.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RateLimit {
    /// The stage (0 to 10, default 0); a rate limit filter asks for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<u32>,
    /// The runtime key a filter may use to turn this limit off.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub disable_key: String,
    /// The actions, each adding one entry (at least one).
    #[serde(default)]
    pub actions: Vec<RateLimitAction>,
}

/// One action of a [`RateLimit`]; exactly one field is set.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RateLimitAction {
    /// `("source_cluster", <the proxy's own cluster>)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_cluster: Option<Empty>,
    /// `("destination_cluster", <the routed cluster>)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_cluster: Option<Empty>,
    /// `(descriptor_key, <the header's first value>)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_headers: Option<RateLimitRequestHeaders>,
    /// `("remote_address", <the client's IP>)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_address: Option<Empty>,
    /// `("masked_remote_address", <the client's network, as a CIDR>)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masked_remote_address: Option<RateLimitMaskedRemoteAddress>,
    /// `(descriptor_key or "generic_key", descriptor_value)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generic_key: Option<RateLimitGenericKey>,
    /// `(descriptor_key or "header_match", descriptor_value)` when the
    /// headers match (or not, with `expect_match: false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_value_match: Option<RateLimitHeaderValueMatch>,
    /// `(descriptor_key or "query_match", descriptor_value)` when the
    /// query parameters match (or not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_parameter_value_match: Option<RateLimitQueryValueMatch>,
    /// `(descriptor_key, <a string in the route's metadata>)`; only
    /// `source: ROUTE_ENTRY` (there is no dynamic metadata here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<RateLimitMetadata>,
}

/// The `request_headers` action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RateLimitRequestHeaders {
    /// The header.
    pub header_name: String,
    /// The entry's key.
    pub descriptor_key: String,
    /// Without the header, leave this entry out instead of the whole
    /// descriptor.
    #[serde(default)]
    pub skip_if_absent: bool,
}

/// The `masked_remote_address` action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RateLimitMaskedRemoteAddress {
    /// IPv4 prefix length (default 32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v4_prefix_mask_len: Option<u32>,
    /// IPv6 prefix length (default 128).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v6_prefix_mask_len: Option<u32>,
}

/// The `generic_key` action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RateLimitGenericKey {
    /// The entry's value.
    pub descriptor_value: String,
    /// The entry's key (default `generic_key`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub descriptor_key: String,
}

/// The `header_value_match` action.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RateLimitHeaderValueMatch {
    /// The entry's value.
    pub descriptor_value: String,
    /// The entry's key (default `header_match`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub descriptor_key: String,
    /// Whether the headers must match (default) or must not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_match: Option<bool>,
    /// The conditions, all of which must hold (at least one).
    #[serde(default)]
    pub headers: Vec<HeaderMatcher>,
}

/// The `query_parameter_value_match` action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RateLimitQueryValueMatch {
    /// The entry's value.
    pub descriptor_value: String,
    /// The entry's key (default `query_match`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub descriptor_key: String,
    /// Whether the parameters must match (default) or must not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_match: Option<bool>,
    /// The conditions, all of which must hold (at least one).
    #[serde(default)]
    pub query_parameters: Vec<QueryParameterMatcher>,
}

/// The `metadata` action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RateLimitMetadata {
    /// The entry's key.
    pub descriptor_key: String,
    /// Where the value is: `filter_metadata[key]`, then each path key.
    pub metadata_key: MetadataKey,
    /// The value when the metadata has none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub default_value: String,
    /// `ROUTE_ENTRY` (`DYNAMIC`, the default in Envoy, is refused: there
    /// is no dynamic metadata here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Without a value, leave this entry out instead of the whole
    /// descriptor.
    #[serde(default)]
    pub skip_if_absent: bool,
}

/// Envoy's `MetadataKey`: a filter name and a path of keys under it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MetadataKey {
    /// The filter's name in `filter_metadata`.
    pub key: String,
    /// The keys below it.
    #[serde(default)]
    pub path: Vec<MetadataPathSegment>,
}

/// One key of a [`MetadataKey`] path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MetadataPathSegment {
    /// The key.
    pub key: String,
}

/// A CORS policy: Envoy's `CorsPolicy`, written as the `cors` field of a
/// virtual host or route action, or as the `typed_per_filter_config` value
/// of `envoy.filters.http.cors` at any level.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct CorsPolicy {
    /// Envoy's type URL. Optional; when given it must name
    /// `envoy.extensions.filters.http.cors.v3.CorsPolicy` (or
    /// `envoy.config.route.v3.CorsPolicy`).
    #[serde(default, rename = "@type", skip_serializing_if = "Option::is_none")]
    pub type_url: Option<String>,
    /// Origins allowed; a matcher that matches `*` allows every origin.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_origin_string_match: Vec<StringMatcher>,
    /// `access-control-allow-methods` on preflights (`*` echoes the
    /// requested method).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub allow_methods: String,
    /// `access-control-allow-headers` on preflights (`*` echoes the
    /// requested headers).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub allow_headers: String,
    /// `access-control-expose-headers` on responses.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub expose_headers: String,
    /// `access-control-max-age` on preflights.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub max_age: String,
    /// Send `access-control-allow-credentials: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_credentials: Option<bool>,
    /// Answer Chrome's private network access preflights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_private_network_access: Option<bool>,
    /// Forward preflights whose origin is not allowed instead of answering
    /// them (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_not_matching_preflights: Option<bool>,
    /// The share of requests the policy applies to (default all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_enabled: Option<RuntimeFraction>,
    /// The share of requests whose origin is checked for stats (default
    /// none), drawn independently of `filter_enabled` as in Envoy; it
    /// matters for those the policy does not apply to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow_enabled: Option<RuntimeFraction>,
}

/// Envoy's local rate limit filter configuration
/// (`envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit`), as
/// given in a `typed_per_filter_config` entry for
/// `envoy.filters.http.local_ratelimit`. Field names and forms are
/// Envoy's (durations as `"1s"` or `{seconds, nanos}`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct LocalRateLimit {
    /// Envoy's type URL. Optional; when given it must name
    /// `envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit`.
    #[serde(default, rename = "@type", skip_serializing_if = "Option::is_none")]
    pub type_url: Option<String>,
    /// The name the filter's statistics carry (required).
    #[serde(default)]
    pub stat_prefix: String,
    /// The status of the answer to a limited request (default 429; a code
    /// below 400 means 429, as in Envoy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<HttpStatus>,
    /// The bucket every request draws from (required here, as Envoy
    /// requires it of per-route configurations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_bucket: Option<TokenBucket>,
    /// The share of requests the filter looks at (default none, as in
    /// Envoy: set it to limit anything).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_enabled: Option<RuntimeFraction>,
    /// The share of limited requests that are refused (default none: they
    /// are only counted, and get `request_headers_to_add_when_not_enforced`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_enforced: Option<RuntimeFraction>,
    /// Headers added to a limited request that is not refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_headers_to_add_when_not_enforced: Vec<HeaderValueOption>,
    /// Headers added to the answer to a refused request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_headers_to_add: Vec<HeaderValueOption>,
    /// Buckets of their own for requests whose rate limit descriptors (the
    /// route's `rate_limits` at [`stage`](Self::stage)) match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub descriptors: Vec<LocalRateLimitDescriptor>,
    /// The stage of the route's `rate_limits` whose descriptors are used
    /// (0 to 10, default 0).
    #[serde(default)]
    pub stage: u32,
    /// Must be `false` when given: one set of buckets per downstream
    /// connection is not supported.
    #[serde(default)]
    pub local_rate_limit_per_downstream_connection: bool,
    /// `DRAFT_VERSION_03` adds `x-ratelimit-limit`, `x-ratelimit-remaining`
    /// and `x-ratelimit-reset` to answers (default `OFF`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_x_ratelimit_headers: Option<serde_json::Value>,
    /// How a virtual host's `rate_limits` combine with the route's:
    /// `OVERRIDE` (the default: only when the route has none), `INCLUDE`,
    /// `IGNORE`; by name or number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vh_rate_limits: Option<serde_json::Value>,
    /// Whether a request that matched a descriptor also draws from the
    /// default bucket (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub always_consume_default_token_bucket: Option<bool>,
    /// Refused gRPC requests get `RESOURCE_EXHAUSTED` instead of
    /// `UNAVAILABLE`.
    #[serde(default)]
    pub rate_limited_as_resource_exhausted: bool,
}

/// Envoy's `HttpStatus`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct HttpStatus {
    /// The status code: a number, or the name Envoy's `StatusCode` enum
    /// gives it (`TooManyRequests`, `ServiceUnavailable`, ...).
    #[serde(deserialize_with = "status_code")]
    pub code: u32,
}

/// Envoy's `StatusCode` enum: names and numbers.
const STATUS_CODES: &[(&str, u32)] = &[
    ("Continue", 100),
    ("OK", 200),
    ("Created", 201),
    ("Accepted", 202),
    ("NonAuthoritativeInformation", 203),
    ("NoContent", 204),
    ("ResetContent", 205),
    ("PartialContent", 206),
    ("MultiStatus", 207),
    ("AlreadyReported", 208),
    ("IMUsed", 226),
    ("MultipleChoices", 300),
    ("MovedPermanently", 301),
    ("Found", 302),
    ("SeeOther", 303),
    ("NotModified", 304),
    ("UseProxy", 305),
    ("TemporaryRedirect", 307),
    ("PermanentRedirect", 308),
    ("BadRequest", 400),
    ("Unauthorized", 401),
    ("PaymentRequired", 402),
    ("Forbidden", 403),
    ("NotFound", 404),
    ("MethodNotAllowed", 405),
    ("NotAcceptable", 406),
    ("ProxyAuthenticationRequired", 407),
    ("RequestTimeout", 408),
    ("Conflict", 409),
    ("Gone", 410),
    ("LengthRequired", 411),
    ("PreconditionFailed", 412),
    ("PayloadTooLarge", 413),
    ("URITooLong", 414),
    ("UnsupportedMediaType", 415),
    ("RangeNotSatisfiable", 416),
    ("ExpectationFailed", 417),
    ("MisdirectedRequest", 421),
    ("UnprocessableEntity", 422),
    ("Locked", 423),
    ("FailedDependency", 424),
    ("UpgradeRequired", 426),
    ("PreconditionRequired", 428),
    ("TooManyRequests", 429),
    ("RequestHeaderFieldsTooLarge", 431),
    ("InternalServerError", 500),
    ("NotImplemented", 501),
    ("BadGateway", 502),
    ("ServiceUnavailable", 503),
    ("GatewayTimeout", 504),
    ("HTTPVersionNotSupported", 505),
    ("VariantAlsoNegotiates", 506),
    ("InsufficientStorage", 507),
    ("LoopDetected", 508),
    ("NotExtended", 510),
    ("NetworkAuthenticationRequired", 511),
];

/// A status code given as a number or by its `StatusCode` name.
fn status_code<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    use serde::de::Error;
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| D::Error::custom(format!("{n} is not a status code"))),
        serde_json::Value::String(name) => STATUS_CODES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, c)| c)
            .ok_or_else(|| {
                D::Error::custom(format!(
                    "{name:?} is not one of Envoy's StatusCode names (e.g. TooManyRequests) or a number"
                ))
            }),
        other => Err(D::Error::custom(format!(
            "{other} is not a status code (a number or a name such as TooManyRequests)"
        ))),
    }
}

/// Envoy's `TokenBucket`: `max_tokens` at most, refilled by
/// `tokens_per_fill` every `fill_interval`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TokenBucket {
    /// Capacity, and the tokens it starts with (more than 0).
    #[serde(default)]
    pub max_tokens: u32,
    /// Tokens added per interval (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_fill: Option<u32>,
    /// The interval, a protobuf `Duration` (`"1s"`, at least 50 ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fill_interval: Option<serde_json::Value>,
}

/// A local rate limit descriptor with its own bucket.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct LocalRateLimitDescriptor {
    /// The entries a request descriptor must have, in order.
    #[serde(default)]
    pub entries: Vec<DescriptorEntry>,
    /// Its bucket (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_bucket: Option<TokenBucket>,
}

/// One `(key, value)` entry of a descriptor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DescriptorEntry {
    /// The key.
    #[serde(default)]
    pub key: String,
    /// The value.
    #[serde(default)]
    pub value: String,
}

/// Retry back-off intervals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RetryBackOff {
    /// Base interval in milliseconds (default 25).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_interval_ms: Option<u64>,
    /// Largest interval in milliseconds (default 10 x base).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_interval_ms: Option<u64>,
}

/// A protocol upgrade allowed on a route.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct UpgradeConfig {
    /// Upgrade type, compared case-insensitively (`websocket`, `CONNECT`).
    pub upgrade_type: String,
    /// Whether it is allowed (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// One element of a route's hash policy (Envoy's `RouteAction.HashPolicy`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct HashPolicy {
    /// Hash the values of a header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<HashHeader>,
    /// Hash a cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie: Option<HashCookie>,
    /// Hash the downstream source IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_properties: Option<HashConnectionProperties>,
    /// Hash a query parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_parameter: Option<HashQueryParameter>,
    /// Stop at this element if it produced a hash.
    #[serde(default)]
    pub terminal: bool,
}

/// Hash a header.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashHeader {
    /// Header name.
    pub header_name: String,
}

/// Hash a cookie.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashCookie {
    /// Cookie name.
    pub name: String,
    /// Lifetime of a generated cookie, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
    /// Path of a generated cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// Hash a connection property.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashConnectionProperties {
    /// Hash the source IP.
    #[serde(default)]
    pub source_ip: bool,
}

/// Hash a query parameter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashQueryParameter {
    /// Parameter name.
    pub name: String,
}

// ----------------------------------------------------------------- loading

/// A parse error, with a pointer to the Envoy-shape reader when the field
/// it trips on is one Envoy's shape has and RAUTA's does not.
fn envoy_hint(message: &str) -> String {
    const ENVOY_ONLY: [&str; 6] = [
        "unknown field `@type`",
        "unknown field `route`",
        "unknown field `redirect`",
        "unknown field `direct_response`",
        "unknown field `safe_regex`",
        "unknown field `path_match_policy`",
    ];
    if ENVOY_ONLY.iter().any(|f| message.contains(f)) {
        format!(
            "{message} (this looks like Envoy's own shape: read it with \
             RouteConfig::from_envoy_yaml, `rauta --envoy`, or rauta-proxy's envoy_routes)"
        )
    } else {
        message.to_owned()
    }
}

impl RouteConfig {
    /// Parses a configuration from YAML. Unknown fields are errors.
    ///
    /// # Errors
    ///
    /// The YAML is malformed or does not fit the model; the error names the
    /// line and column.
    pub fn from_yaml(text: &str) -> Result<RouteConfig, ConfigErrors> {
        serde_saphyr::from_str(text).map_err(|e| {
            // The first line says where and why; the rest is a source excerpt.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid YAML");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            ConfigErrors::from(ConfigError::new(
                ErrorKind::Parse,
                envoy_hint(first.trim_end()),
            ))
        })
    }

    /// Parses a configuration from JSON. Unknown fields are errors.
    ///
    /// # Errors
    ///
    /// The JSON is malformed or does not fit the model.
    pub fn from_json(text: &str) -> Result<RouteConfig, ConfigErrors> {
        serde_json::from_str(text).map_err(|e| {
            ConfigErrors::from(ConfigError::new(
                ErrorKind::Parse,
                envoy_hint(&e.to_string()),
            ))
        })
    }

    /// Parses Envoy's own `RouteConfiguration` (v3 API) from YAML, as
    /// written for Envoy or served by its RDS: a route's `route`,
    /// `redirect` or `direct_response`, `safe_regex` matches, durations
    /// such as `timeout: 1.5s`, and the URI template extensions. See
    /// docs/envoy-compatibility.md for what RAUTA supports; a field it does
    /// not is a load error, never ignored.
    ///
    /// ```
    /// use rauta_router::config::RouteConfig;
    /// use rauta_router::{Request, RouteTable};
    ///
    /// let config = RouteConfig::from_envoy_yaml(r#"
    /// name: local_route
    /// virtual_hosts:
    ///   - name: backend
    ///     domains: ["*"]
    ///     routes:
    ///       - match: {safe_regex: {regex: "/users/[0-9]+"}}
    ///         route: {cluster: users, timeout: 2.5s, retry_policy: {retry_on: 5xx, per_try_timeout: 0.5s}}
    ///       - match: {prefix: /old}
    ///         redirect: {path_redirect: /new}
    ///       - match: {prefix: /}
    ///         direct_response: {status: 404, body: {inline_string: "not here"}}
    /// "#)?;
    /// let table = RouteTable::build(config)?;
    /// let req = Request::get("h", "/users/7");
    /// let d = table.route(&req, 0);
    /// let m = d.route().unwrap();
    /// assert_eq!(m.cluster(), Some("users"));
    /// assert_eq!(m.route().timeout_ms(), 2500);
    /// assert_eq!(m.route().retry_policy().unwrap().per_try_timeout_ms, 500);
    /// # Ok::<(), rauta_router::ConfigErrors>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The YAML is malformed, or does not fit Envoy's shape and RAUTA's
    /// model; each error names its virtual host, route and field.
    pub fn from_envoy_yaml(text: &str) -> Result<RouteConfig, ConfigErrors> {
        // YAML 1.2 booleans only: `value: y` is the text "y", as a typed
        // field would read it, not `true`.
        let options = serde_saphyr::options! { strict_booleans: true };
        let value: serde_json::Value =
            serde_saphyr::from_str_with_options(text, options).map_err(|e| {
                let text = e.to_string();
                let first = text.lines().next().unwrap_or("invalid YAML");
                let first = first.strip_prefix("error: ").unwrap_or(first);
                ConfigErrors::from(ConfigError::new(ErrorKind::Parse, first.trim_end()))
            })?;
        crate::envoy_shape::from_value(value)
    }

    /// [`RouteConfig::from_envoy_yaml`] for JSON.
    ///
    /// # Errors
    ///
    /// As for [`RouteConfig::from_envoy_yaml`].
    pub fn from_envoy_json(text: &str) -> Result<RouteConfig, ConfigErrors> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| ConfigErrors::from(ConfigError::new(ErrorKind::Parse, e.to_string())))?;
        crate::envoy_shape::from_value(value)
    }

    /// [`RouteConfig::from_envoy_yaml`] for an already-parsed value (an
    /// RDS response's resource, say).
    ///
    /// # Errors
    ///
    /// As for [`RouteConfig::from_envoy_yaml`].
    pub fn from_envoy_value(value: serde_json::Value) -> Result<RouteConfig, ConfigErrors> {
        crate::envoy_shape::from_value(value)
    }

    /// Reads a configuration from an already-parsed JSON value (for
    /// configurations embedded in larger documents).
    ///
    /// # Errors
    ///
    /// The value does not fit the model.
    pub fn from_json_value(value: serde_json::Value) -> Result<RouteConfig, ConfigErrors> {
        serde_json::from_value(value).map_err(|e| {
            ConfigErrors::from(ConfigError::new(
                ErrorKind::Parse,
                envoy_hint(&e.to_string()),
            ))
        })
    }

    /// An empty configuration, to be filled with the builder methods.
    ///
    /// ```
    /// use rauta_router::config::{Route, RouteConfig, VirtualHost};
    /// use rauta_router::RouteTable;
    ///
    /// let config = RouteConfig::new().virtual_host(
    ///     VirtualHost::new("default", ["*"])
    ///         .route(Route::prefix("/api").name("api").cluster("api"))
    ///         .route(Route::prefix("/").name("web").cluster("web")),
    /// );
    /// let table = RouteTable::build(config)?;
    /// # Ok::<(), rauta_router::ConfigErrors>(())
    /// ```
    pub fn new() -> Self {
        RouteConfig::default()
    }

    /// Sets the name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Appends a virtual host.
    pub fn virtual_host(mut self, vhost: VirtualHost) -> Self {
        self.virtual_hosts.push(vhost);
        self
    }

    /// Sets the path policy of the whole configuration.
    pub fn path_normalization(mut self, policy: crate::path::PathPolicy) -> Self {
        self.path_normalization = Some(policy);
        self
    }
}

impl VirtualHost {
    /// A virtual host serving `domains`, with no routes yet.
    pub fn new<I, S>(name: impl Into<String>, domains: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        VirtualHost {
            name: name.into(),
            domains: domains.into_iter().map(Into::into).collect(),
            ..Default::default()
        }
    }

    /// Appends a route.
    pub fn route(mut self, route: Route) -> Self {
        self.routes.push(route);
        self
    }

    /// Sets [`per_request_buffer_limit_bytes`](Self::per_request_buffer_limit_bytes).
    pub fn per_request_buffer_limit_bytes(mut self, bytes: u32) -> Self {
        self.per_request_buffer_limit_bytes = Some(bytes);
        self
    }

    /// Sets the TLS requirement.
    pub fn require_tls(mut self, tls: RequireTls) -> Self {
        self.require_tls = Some(tls);
        self
    }

    /// Adds a request header to every request of this virtual host.
    pub fn request_header(mut self, header: HeaderValueOption) -> Self {
        self.request_headers_to_add.push(header);
        self
    }
}

impl Route {
    fn with_match(m: RouteMatch) -> Self {
        Route {
            match_: Some(m),
            ..Default::default()
        }
    }

    /// A route on a path prefix.
    pub fn prefix(prefix: impl Into<String>) -> Self {
        Route::with_match(RouteMatch {
            prefix: Some(prefix.into()),
            ..Default::default()
        })
    }

    /// A route on an exact path.
    pub fn path(path: impl Into<String>) -> Self {
        Route::with_match(RouteMatch {
            path: Some(path.into()),
            ..Default::default()
        })
    }

    /// A route on a path-separated prefix.
    pub fn path_separated_prefix(prefix: impl Into<String>) -> Self {
        Route::with_match(RouteMatch {
            path_separated_prefix: Some(prefix.into()),
            ..Default::default()
        })
    }

    /// A route on a full-match regular expression.
    pub fn regex(pattern: impl Into<String>) -> Self {
        Route::with_match(RouteMatch {
            regex: Some(pattern.into()),
            ..Default::default()
        })
    }

    /// A route on a URI template.
    pub fn template(template: impl Into<String>) -> Self {
        Route::with_match(RouteMatch {
            path_template: Some(template.into()),
            ..Default::default()
        })
    }

    /// Sets the name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Makes the path comparison case-insensitive.
    pub fn case_insensitive(mut self) -> Self {
        self.match_
            .get_or_insert_with(Default::default)
            .case_sensitive = Some(false);
        self
    }

    /// Adds a header condition.
    pub fn header(mut self, matcher: HeaderMatcher) -> Self {
        self.match_
            .get_or_insert_with(Default::default)
            .headers
            .push(matcher);
        self
    }

    /// Adds a query parameter condition.
    pub fn query(mut self, matcher: QueryParameterMatcher) -> Self {
        self.match_
            .get_or_insert_with(Default::default)
            .query_parameters
            .push(matcher);
        self
    }

    fn action_mut(&mut self) -> &mut Action {
        self.action.get_or_insert_with(Default::default)
    }

    /// Forwards to a cluster.
    pub fn cluster(mut self, cluster: impl Into<String>) -> Self {
        self.action_mut().cluster = Some(cluster.into());
        self
    }

    /// Splits between clusters by weight.
    pub fn weighted<I, S>(mut self, clusters: I) -> Self
    where
        I: IntoIterator<Item = (S, u32)>,
        S: Into<String>,
    {
        let list = clusters
            .into_iter()
            .map(|(name, weight)| WeightedCluster {
                name: Some(name.into()),
                weight: Some(weight),
                ..Default::default()
            })
            .collect();
        self.action_mut().weighted_clusters = Some(WeightedClusters::List(list));
        self
    }

    /// Answers with a redirect.
    pub fn redirect(mut self, redirect: Redirect) -> Self {
        self.action_mut().redirect = Some(redirect);
        self
    }

    /// Answers directly.
    pub fn direct_response(mut self, status: u16, body: impl Into<String>) -> Self {
        self.action_mut().direct_response = Some(DirectResponse {
            status,
            body: Some(DataSource::Text(body.into())),
            body_repeat: None,
        });
        self
    }

    /// Rewrites the matched prefix.
    pub fn prefix_rewrite(mut self, to: impl Into<String>) -> Self {
        self.action_mut().prefix_rewrite = Some(to.into());
        self
    }

    /// Sets the upstream timeout in milliseconds.
    pub fn timeout_ms(mut self, ms: u64) -> Self {
        self.action_mut().timeout_ms = Some(ms);
        self
    }

    /// Sets the route's stream lifetime rules (Envoy's
    /// `max_stream_duration`).
    pub fn max_stream_duration(mut self, d: MaxStreamDuration) -> Self {
        self.action_mut().max_stream_duration = Some(d);
        self
    }

    /// Sets the cap on a gRPC request's `grpc-timeout` as its upstream
    /// timeout, in milliseconds (Envoy's `max_grpc_timeout`; 0: no cap).
    pub fn max_grpc_timeout_ms(mut self, ms: u64) -> Self {
        self.action_mut().max_grpc_timeout_ms = Some(ms);
        self
    }

    /// Sets what is taken off a gRPC request's `grpc-timeout` before the
    /// cap, in milliseconds (Envoy's `grpc_timeout_offset`).
    pub fn grpc_timeout_offset_ms(mut self, ms: u64) -> Self {
        self.action_mut().grpc_timeout_offset_ms = Some(ms);
        self
    }

    /// Sets [`per_request_buffer_limit_bytes`](Self::per_request_buffer_limit_bytes).
    pub fn per_request_buffer_limit_bytes(mut self, bytes: u32) -> Self {
        self.per_request_buffer_limit_bytes = Some(bytes);
        self
    }

    /// Sets the route's internal redirect policy (Envoy's
    /// `internal_redirect_policy`).
    pub fn internal_redirect_policy(mut self, p: InternalRedirectPolicy) -> Self {
        self.action_mut().internal_redirect_policy = Some(p);
        self
    }
}

impl HeaderMatcher {
    /// The header must equal `value`.
    pub fn exact(name: impl Into<String>, value: impl Into<String>) -> Self {
        HeaderMatcher {
            name: name.into(),
            string_match: Some(StringMatcher {
                exact: Some(value.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The header must be fully matched by `pattern`.
    pub fn regex(name: impl Into<String>, pattern: impl Into<String>) -> Self {
        HeaderMatcher {
            name: name.into(),
            string_match: Some(StringMatcher {
                safe_regex: Some(RegexSpec::Pattern(pattern.into())),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The header must be present.
    pub fn present(name: impl Into<String>) -> Self {
        HeaderMatcher {
            name: name.into(),
            present_match: Some(true),
            ..Default::default()
        }
    }

    /// Flips the test.
    pub fn inverted(mut self) -> Self {
        self.invert_match = true;
        self
    }
}

impl QueryParameterMatcher {
    /// The parameter must equal `value`.
    pub fn exact(name: impl Into<String>, value: impl Into<String>) -> Self {
        QueryParameterMatcher {
            name: name.into(),
            string_match: Some(StringMatcher {
                exact: Some(value.into()),
                ..Default::default()
            }),
            present_match: None,
        }
    }

    /// The parameter must be present.
    pub fn present(name: impl Into<String>) -> Self {
        QueryParameterMatcher {
            name: name.into(),
            string_match: None,
            present_match: Some(true),
        }
    }
}
