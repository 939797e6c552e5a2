//! The proxy's configuration file: listeners, clusters and a rauta-router
//! route configuration, in one YAML document.
//!
//! ```yaml
//! listen: 127.0.0.1:8080          # optional; the command line wins
//! admin: 127.0.0.1:9901           # optional
//! clusters:
//!   - name: web
//!     lb_policy: round_robin      # round_robin | least_request | random | maglev | ring_hash
//!     endpoints: ["127.0.0.1:9001", {address: "127.0.0.1:9002", weight: 2}]
//!     outlier_ejection_ms: 5000   # optional, default 5000; 0 disables ejection
//! xdp:                            # optional, with --xdp IFACE (cargo feature `xdp`)
//!   deny_sources: ["198.18.7.0/24"]
//!   deny_tcp_ports: [23]
//! routes:                         # a rauta-router RouteConfig (docs/config.md)
//!   virtual_hosts: [...]
//! # or, instead of routes, Envoy's own v3 RouteConfiguration:
//! # envoy_routes: {virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: web}}]}]}
//! ```

use std::collections::HashSet;
use std::net::SocketAddr;

use rauta_router::config::RouteConfig;
use rauta_router::{BuildOptions, ConfigErrors, RouteTable};
use serde::Deserialize;

/// Why a proxy configuration was rejected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file is not valid YAML or has unknown fields.
    #[error("parse error: {0}")]
    Parse(String),
    /// A cluster is invalid.
    #[error("clusters[{index}] {name:?}: {message}")]
    Cluster {
        /// Position in `clusters`.
        index: usize,
        /// The cluster's name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The route configuration is invalid (every error it has).
    #[error("routes: {0}")]
    Routes(#[from] ConfigErrors),
    /// The `xdp:` lists could not be applied to the attached classifier.
    #[error("xdp: {0}")]
    Xdp(String),
}

/// Load-balancing policy of a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LbPolicy {
    /// Round robin (weighted when endpoint weights differ).
    #[default]
    RoundRobin,
    /// Power of two choices on active requests.
    LeastRequest,
    /// Uniformly random.
    Random,
    /// Maglev consistent hashing on the route's hash policy.
    Maglev,
    /// Ring (Ketama) consistent hashing on the route's hash policy.
    RingHash,
}

/// One endpoint: `"ip:port"` or `{address, weight}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum EndpointConfig {
    /// Just an address, weight 1.
    Address(SocketAddr),
    /// An address with a weight.
    Weighted {
        /// The address.
        address: SocketAddr,
        /// The weight (>= 1).
        #[serde(default = "one")]
        weight: u32,
    },
}

fn one() -> u32 {
    1
}

impl EndpointConfig {
    /// The address.
    pub fn address(&self) -> SocketAddr {
        match self {
            EndpointConfig::Address(a) | EndpointConfig::Weighted { address: a, .. } => *a,
        }
    }

    /// The weight.
    pub fn weight(&self) -> u32 {
        match self {
            EndpointConfig::Address(_) => 1,
            EndpointConfig::Weighted { weight, .. } => *weight,
        }
    }
}

/// One upstream cluster.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// The name routes refer to.
    pub name: String,
    /// The balancing policy.
    #[serde(default)]
    pub lb_policy: LbPolicy,
    /// Static endpoints.
    pub endpoints: Vec<EndpointConfig>,
    /// How long an endpoint that refused a connection is taken out of
    /// rotation, in milliseconds (0: never).
    #[serde(default = "default_ejection")]
    pub outlier_ejection_ms: u64,
}

fn default_ejection() -> u64 {
    5000
}

/// What the XDP classifier drops before packets reach the proxy (used only
/// with `--xdp IFACE` and the `xdp` cargo feature; applied at start and at
/// every reload).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XdpConfig {
    /// Source prefixes to drop, e.g. `198.18.7.0/24`, `2001:db8::/32`.
    #[serde(default)]
    pub deny_sources: Vec<String>,
    /// TCP destination ports to drop.
    #[serde(default)]
    pub deny_tcp_ports: Vec<u16>,
    /// UDP destination ports to drop.
    #[serde(default)]
    pub deny_udp_ports: Vec<u16>,
}

/// What the proxy does with a request header whose name holds `_`
/// (Envoy's `headers_with_underscores_action`). Servers that fold `_`
/// into `-` (CGI, some frameworks) would read `x_user` as `x-user`, a
/// header the route matchers never saw under that name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UnderscoreAction {
    /// Forward such headers.
    Allow,
    /// Remove them before routing (the default).
    #[default]
    DropHeader,
    /// Answer 400.
    RejectRequest,
}

/// The whole file, as parsed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    listen: Option<SocketAddr>,
    #[serde(default)]
    admin: Option<SocketAddr>,
    #[serde(default)]
    clusters: Vec<ClusterConfig>,
    #[serde(default)]
    xdp: Option<XdpConfig>,
    #[serde(default)]
    headers_with_underscores_action: UnderscoreAction,
    #[serde(default)]
    max_stream_duration_ms: Option<u64>,
    #[serde(default)]
    xff_num_trusted_hops: u32,
    #[serde(default)]
    routes: Option<serde_json::Value>,
    #[serde(default)]
    envoy_routes: Option<serde_json::Value>,
}

/// A validated proxy configuration: the clusters and the compiled table.
#[derive(Debug)]
pub struct ProxyConfig {
    /// Data listener from the file, if any.
    pub listen: Option<SocketAddr>,
    /// Admin listener from the file, if any.
    pub admin: Option<SocketAddr>,
    /// The clusters.
    pub clusters: Vec<ClusterConfig>,
    /// The XDP deny lists, if any.
    pub xdp: Option<XdpConfig>,
    /// Request headers whose name holds `_`.
    pub headers_with_underscores_action: UnderscoreAction,
    /// The longest a request may last, from the moment its head has been
    /// read to its response's last byte, in milliseconds (Envoy's connection manager
    /// `common_http_protocol_options.max_stream_duration`; unset or 0: no
    /// limit). A route's `max_stream_duration` replaces it.
    pub max_stream_duration_ms: Option<u64>,
    /// How many proxies in front of this one are trusted (Envoy's
    /// `xff_num_trusted_hops`; default 0). With `n > 0`, a request's
    /// `x-forwarded-proto` is kept when it has one (otherwise it is
    /// replaced with the connection's `http`), and the client's address
    /// (for rate limits, hashing, `%DOWNSTREAM_REMOTE_ADDRESS%` and the
    /// access log) is the `n`-th address from the right of
    /// `x-forwarded-for`, as it came, or the connection's when that is not
    /// an address.
    pub xff_num_trusted_hops: u32,
    /// The compiled route table.
    pub table: RouteTable,
    /// The text it was read from.
    pub text: String,
}

impl ProxyConfig {
    /// Parses and validates a configuration: clusters, then routes (built
    /// with the cluster names as `known_clusters`, so a route to an unknown
    /// cluster is an error at load time).
    ///
    /// # Errors
    ///
    /// The first cluster problem, or every route problem.
    pub fn from_yaml(text: &str) -> Result<ProxyConfig, ConfigError> {
        // YAML 1.2 booleans: the route configuration is read through a JSON
        // value, where a YAML 1.1 `yes` would become `true` and no longer
        // fit a string field (`value: yes`).
        let options = serde_saphyr::options! { strict_booleans: true };
        let raw: RawConfig = serde_saphyr::from_str_with_options(text, options)
            .map_err(|e| ConfigError::Parse(first_line(&e)))?;
        let mut names = HashSet::new();
        for (index, c) in raw.clusters.iter().enumerate() {
            let err = |message: String| ConfigError::Cluster {
                index,
                name: c.name.clone(),
                message,
            };
            if c.name.is_empty() {
                return Err(err("name must not be empty".into()));
            }
            if !names.insert(c.name.clone()) {
                return Err(err("duplicate cluster name".into()));
            }
            if c.endpoints.is_empty() {
                return Err(err("endpoints must not be empty".into()));
            }
            // Build the balancer once to surface its errors now.
            crate::cluster::build_balancer(c, &|_| false).map_err(|e| err(e.to_string()))?;
        }
        let routes = match (raw.routes, raw.envoy_routes) {
            (Some(r), None) => RouteConfig::from_json_value(r)?,
            (None, Some(r)) => RouteConfig::from_envoy_value(r)?,
            _ => {
                return Err(ConfigError::Parse(
                    "set exactly one of routes (RAUTA's shape) or envoy_routes (Envoy's RouteConfiguration)".into(),
                ))
            }
        };
        let table = RouteTable::build_with(routes, &build_options(&raw.clusters))?;
        Ok(ProxyConfig {
            listen: raw.listen,
            admin: raw.admin,
            clusters: raw.clusters,
            xdp: raw.xdp,
            headers_with_underscores_action: raw.headers_with_underscores_action,
            max_stream_duration_ms: raw.max_stream_duration_ms,
            xff_num_trusted_hops: raw.xff_num_trusted_hops,
            table,
            text: text.to_owned(),
        })
    }

    /// A 64-bit hash of the configuration text (xxHash64), as `/config` shows it.
    pub fn hash(&self) -> u64 {
        text_hash(&self.text)
    }
}

/// The hash `/config` reports for a configuration text.
pub fn text_hash(text: &str) -> u64 {
    rauta_balance::hash::xxh64(text.as_bytes(), 0)
}

/// Build options naming the configured clusters.
pub(crate) fn build_options(clusters: &[ClusterConfig]) -> BuildOptions {
    BuildOptions::default().known_clusters(clusters.iter().map(|c| c.name.clone()))
}

fn first_line(e: &dyn std::fmt::Display) -> String {
    let text = e.to_string();
    text.lines().next().unwrap_or("invalid YAML").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"
clusters:
  - name: a
    endpoints: ["127.0.0.1:1", {address: "127.0.0.1:2", weight: 3}]
routes:
  virtual_hosts:
    - name: all
      domains: ["*"]
      routes: [{name: r, match: {prefix: /}, action: {cluster: a}}]
"#;

    #[test]
    fn parses_clusters_and_routes() {
        let c = ProxyConfig::from_yaml(OK).unwrap();
        assert_eq!(c.clusters[0].endpoints[1].weight(), 3);
        assert_eq!(c.clusters[0].lb_policy, LbPolicy::RoundRobin);
        assert_eq!(c.table.route_count(), 1);
    }

    #[test]
    fn envoy_routes_are_read_in_envoy_shape() {
        let text = r#"
clusters:
  - {name: a, endpoints: ["127.0.0.1:1"]}
envoy_routes:
  virtual_hosts:
    - name: all
      domains: ["*"]
      routes:
        - match: {prefix: /}
          route: {cluster: a, timeout: 2s}
          request_headers_to_add: [{header: {key: x-on, value: yes}}]
"#;
        let c = ProxyConfig::from_yaml(text).unwrap();
        assert_eq!(c.table.virtual_hosts()[0].routes()[0].timeout_ms(), 2000);
        // Unknown clusters are still load errors.
        let err = ProxyConfig::from_yaml(&text.replace("cluster: a,", "cluster: b,")).unwrap_err();
        assert!(matches!(err, ConfigError::Routes(_)), "{err}");
        // Both keys, or neither, are refused.
        let both = format!("{text}routes: {{virtual_hosts: []}}\n");
        let err = ProxyConfig::from_yaml(&both).unwrap_err();
        assert!(err.to_string().contains("exactly one of routes"), "{err}");
        let err = ProxyConfig::from_yaml("clusters: []\n").unwrap_err();
        assert!(err.to_string().contains("exactly one of routes"), "{err}");
    }

    #[test]
    fn yaml_1_1_booleans_are_text_in_routes() {
        let text = OK.replace(
            "action: {cluster: a}}",
            "action: {cluster: a}, request_headers_to_add: [{key: x-on, value: yes}]}",
        );
        ProxyConfig::from_yaml(&text).unwrap();
    }

    #[test]
    fn unknown_cluster_is_rejected() {
        let text = OK.replace("cluster: a", "cluster: nope");
        let err = ProxyConfig::from_yaml(&text).unwrap_err();
        assert!(matches!(err, ConfigError::Routes(_)), "{err}");
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn cluster_errors_name_the_cluster() {
        let text = OK.replace("weight: 3", "weight: 0");
        let err = ProxyConfig::from_yaml(&text).unwrap_err();
        assert!(err.to_string().starts_with("clusters[0] \"a\": "), "{err}");
        let text = OK
            .replace("lb_policy", "x")
            .replace("name: a\n", "name: a\n    bogus: 1\n");
        assert!(matches!(
            ProxyConfig::from_yaml(&text),
            Err(ConfigError::Parse(_))
        ));
    }
}
