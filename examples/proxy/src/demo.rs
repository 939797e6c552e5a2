//! `rauta-proxy --demo`: four in-process upstreams and a route
//! configuration that shows host and path routing, a weighted split, Maglev
//! on a header, CORS, a local rate limit, a redirect, an upstream redirect
//! followed inside the proxy, and a direct response.

use std::net::SocketAddr;

use crate::upstream::{RunningUpstream, Upstream};

/// The demo's route and cluster configuration for upstreams `blue`,
/// `green` and `gray`, and `legacy` (which answers every request with a
/// redirect to `/docs/moved`).
pub fn config(blue: SocketAddr, green: SocketAddr, gray: SocketAddr, legacy: SocketAddr) -> String {
    format!(
        r#"# rauta-proxy demo configuration (see docs/proxy.md)
clusters:
  - {{name: blue, endpoints: ["{blue}"]}}
  - {{name: green, endpoints: ["{green}"]}}
  - {{name: legacy, endpoints: ["{legacy}"]}}
  - name: users
    lb_policy: maglev
    endpoints: ["{blue}", "{green}", "{gray}"]
routes:
  name: demo
  response_headers_to_add:
    - {{header: {{key: x-served-by, value: rauta-proxy}}}}
  virtual_hosts:
    - name: api
      domains: ["api.localhost", "api.localhost:*"]
      cors:
        allow_origin_string_match: [{{exact: "https://app.localhost"}}]
        allow_methods: "GET, POST"
        max_age: "600"
      routes:
        - name: users
          match: {{prefix: /users}}
          action:
            cluster: users
            hash_policy: [{{header: {{header_name: x-user}}}}]
        - name: search
          match: {{prefix: /search}}
          action:
            weighted_clusters:
              - {{name: blue, weight: 80}}
              - {{name: green, weight: 20, request_headers_to_add: [{{header: {{key: x-canary, value: "1"}}}}]}}
        - name: login
          match: {{path: /login}}
          action: {{cluster: blue}}
          typed_per_filter_config:
            envoy.filters.http.local_ratelimit:
              stat_prefix: login
              token_bucket: {{max_tokens: 3, tokens_per_fill: 1, fill_interval: 60s}}
              filter_enabled: {{default_value: {{numerator: 100}}}}
              filter_enforced: {{default_value: {{numerator: 100}}}}
              enable_x_ratelimit_headers: DRAFT_VERSION_03
        - name: api-v2
          match: {{prefix: /v2/}}
          action: {{cluster: green, prefix_rewrite: /, timeout_ms: 2000, retry_policy: {{retry_on: "5xx", num_retries: 2}}}}
    - name: www
      domains: ["*"]
      routes:
        - name: old-docs
          match: {{path_separated_prefix: /old-docs}}
          action: {{redirect: {{prefix_rewrite: /docs, response_code: MOVED_PERMANENTLY}}}}
        - name: legacy
          match: {{prefix: /legacy}}
          action: {{cluster: legacy, internal_redirect_policy: {{}}}}
        - name: health
          match: {{path: /healthz}}
          action: {{direct_response: {{status: 200, body: "ok\n"}}}}
        - name: docs
          match: {{prefix: /docs}}
          action: {{cluster: green}}
          request_headers_to_add: [{{header: {{key: x-section, value: docs}}}}]
        - name: site
          match: {{prefix: /}}
          action: {{cluster: blue}}
"#
    )
}

/// The three demo upstreams, serving on loopback.
#[derive(Debug)]
pub struct Upstreams {
    /// The `blue` upstream.
    pub blue: RunningUpstream,
    /// The `green` upstream.
    pub green: RunningUpstream,
    /// The `gray` upstream.
    pub gray: RunningUpstream,
    /// The `legacy` upstream: a 302 to `/docs/moved` for every request.
    pub legacy: RunningUpstream,
}

impl Upstreams {
    /// Starts them on ephemeral loopback ports.
    ///
    /// # Errors
    ///
    /// A bind error.
    pub async fn start() -> std::io::Result<Upstreams> {
        Ok(Upstreams {
            blue: Upstream::new("blue").spawn().await?,
            green: Upstream::new("green").spawn().await?,
            gray: Upstream::new("gray").spawn().await?,
            legacy: Upstream::new("legacy")
                .status(302)
                .header("location", "http://localhost/docs/moved")
                .spawn()
                .await?,
        })
    }

    /// The demo configuration over these upstreams.
    pub fn config(&self) -> String {
        config(
            self.blue.addr(),
            self.green.addr(),
            self.gray.addr(),
            self.legacy.addr(),
        )
    }
}

/// Commands to try against a demo proxy on `addr` with admin on `admin`.
pub fn curl_commands(addr: SocketAddr, admin: Option<SocketAddr>) -> String {
    let mut s = format!(
        "# host and path routing (virtual host \"www\", route \"site\" -> blue; \"docs\" -> green)\n\
         curl -s http://{addr}/hello\n\
         curl -s http://{addr}/docs/intro\n\
         # Maglev on x-user: the same user always reaches the same upstream\n\
         curl -s -H 'host: api.localhost' -H 'x-user: alice' http://{addr}/users/1\n\
         curl -s -H 'host: api.localhost' -H 'x-user: bob' http://{addr}/users/1\n\
         # weighted split 80/20 between blue and green\n\
         for i in $(seq 20); do curl -s -H 'host: api.localhost' http://{addr}/search | grep -o '\"upstream\":\"[a-z]*\"'; done | sort | uniq -c\n\
         # prefix rewrite /v2/x -> /x, with retries and a 2 s timeout\n\
         curl -s -H 'host: api.localhost' http://{addr}/v2/items\n\
         # CORS: a preflight answered by the proxy, and the allowed origin on an answer\n\
         curl -si -X OPTIONS -H 'host: api.localhost' -H 'origin: https://app.localhost' -H 'access-control-request-method: POST' http://{addr}/search | grep -i '^HTTP\\|^access-control'\n\
         curl -si -H 'host: api.localhost' -H 'origin: https://app.localhost' http://{addr}/users/1 | grep -i '^access-control'\n\
         # local rate limit on /login: 3 at once, then one a minute (429 in between)\n\
         for i in 1 2 3 4 5; do curl -s -o /dev/null -w '%{{http_code}} ' -H 'host: api.localhost' http://{addr}/login; done; echo\n\
         curl -si -H 'host: api.localhost' http://{addr}/login | grep -i '^HTTP\\|^x-ratelimit'\n\
         # a redirect and a direct response\n\
         curl -si http://{addr}/old-docs/intro | head -n 4\n\
         # legacy answers 302 to /docs/moved: the proxy follows it (internal_redirect_policy)\n\
         curl -s http://{addr}/legacy/page\n\
         curl -s http://{addr}/healthz\n\
         # HTTP/2 without TLS (h2c, prior knowledge)\n\
         curl -s --http2-prior-knowledge http://{addr}/hello\n"
    );
    if let Some(a) = admin {
        s.push_str(&format!(
            "# admin\n\
             curl -s http://{a}/metrics | grep rauta_route_requests_total\n\
             curl -s http://{a}/metrics | grep rauta_proxy_local_rate_limit_total\n\
             curl -s http://{a}/metrics | grep rauta_proxy_internal_redirects_total\n\
             curl -s http://{a}/routes\n\
             curl -s http://{a}/config\n"
        ));
    }
    s
}
