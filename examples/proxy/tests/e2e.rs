//! End to end: real upstream servers and the proxy on loopback ephemeral
//! ports, real HTTP/1.1 and h2c clients.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use http::{StatusCode, Version};
use rauta_proxy::upstream::Upstream;

fn routes_to(cluster: &str, extra: &str) -> String {
    format!(
        r#"
routes:
  virtual_hosts:
    - name: all
      domains: ["*"]
      routes:
        - name: r
          match: {{prefix: /}}
          action: {{cluster: {cluster}{extra}}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_host_and_path_and_answers_locally() {
    let blue = Upstream::new("blue").spawn().await.unwrap();
    let green = Upstream::new("green").spawn().await.unwrap();
    let yaml = format!(
        r#"
clusters:
  - {{name: blue, endpoints: ["{}"]}}
  - {{name: green, endpoints: ["{}"]}}
routes:
  virtual_hosts:
    - name: api
      domains: ["api.test"]
      routes:
        - name: v2
          match: {{prefix: /v2/}}
          action: {{cluster: green, prefix_rewrite: /}}
        - name: api
          match: {{prefix: /}}
          action: {{cluster: blue}}
    - name: www
      domains: ["www.test"]
      routes:
        - name: moved
          match: {{prefix: /old}}
          action: {{redirect: {{prefix_rewrite: /new, response_code: PERMANENT_REDIRECT}}}}
        - name: health
          match: {{path: /healthz}}
          action: {{direct_response: {{status: 200, body: "fine\n"}}}}
        - name: site
          match: {{prefix: /}}
          action: {{cluster: green}}
"#,
        blue.addr(),
        green.addr()
    );
    let proxy = start(&yaml).await;
    let c = http1();
    let a = proxy.addr();

    let r = get(&c, a, "api.test", "/users?id=7").await;
    assert_eq!((r.status, r.upstream().as_str()), (StatusCode::OK, "blue"));
    assert_eq!(r.json()["path"], "/users?id=7");

    let r = get(&c, a, "api.test", "/v2/users").await;
    assert_eq!(r.upstream(), "green");
    assert_eq!(r.json()["path"], "/users");
    assert_eq!(
        r.seen("x-envoy-original-path").as_deref(),
        Some("/v2/users")
    );

    let r = get(&c, a, "www.test", "/index.html").await;
    assert_eq!(r.upstream(), "green");

    let r = get(&c, a, "www.test", "/old/page").await;
    assert_eq!(r.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(r.headers["location"], "http://www.test/new/page");

    let r = get(&c, a, "www.test", "/healthz").await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "fine\n"));

    // No virtual host for this domain: 404, answered by the proxy.
    let r = get(&c, a, "nowhere.test", "/").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // A path the safe default policy rejects: 400, never forwarded.
    let before = blue.served();
    let r = get(&c, a, "api.test", "/a/%2e%2e/%2e%2e/etc").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(blue.served(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_split_follows_the_weights() {
    let a = Upstream::new("a").spawn().await.unwrap();
    let b = Upstream::new("b").spawn().await.unwrap();
    let yaml = format!(
        r#"
clusters:
  - {{name: a, endpoints: ["{}"]}}
  - {{name: b, endpoints: ["{}"]}}
routes:
  virtual_hosts:
    - name: all
      domains: ["*"]
      routes:
        - name: split
          match: {{prefix: /}}
          action: {{weighted_clusters: [{{name: a, weight: 80}}, {{name: b, weight: 20}}]}}
"#,
        a.addr(),
        b.addr()
    );
    let proxy = start(&yaml).await;
    let c = http1();
    let n = 1000;
    let mut count: HashMap<String, u32> = HashMap::new();
    for _ in 0..n {
        let r = get(&c, proxy.addr(), "x", "/").await;
        assert_eq!(r.status, StatusCode::OK);
        *count.entry(r.upstream()).or_default() += 1;
    }
    // Binomial(1000, 0.8): mean 800, sd 12.6; the bounds are 8 sd wide.
    let got_a = count.get("a").copied().unwrap_or(0);
    assert!((700..=900).contains(&got_a), "{count:?}");
    assert_eq!(got_a + count.get("b").copied().unwrap_or(0), n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maglev_keeps_a_user_on_one_endpoint() {
    let ups = [
        Upstream::new("u0").spawn().await.unwrap(),
        Upstream::new("u1").spawn().await.unwrap(),
        Upstream::new("u2").spawn().await.unwrap(),
    ];
    let eps: Vec<String> = ups.iter().map(|u| format!("\"{}\"", u.addr())).collect();
    let yaml = format!(
        r#"
clusters:
  - {{name: users, lb_policy: maglev, endpoints: [{}]}}
{}"#,
        eps.join(", "),
        routes_to("users", ", hash_policy: [{header: {header_name: x-user}}]")
    );
    let proxy = start(&yaml).await;
    let c = http1();
    let mut owners = HashMap::new();
    for round in 0..5 {
        for user in 0..30 {
            let user = format!("user-{user}");
            let r = send(&c, proxy.addr(), "x", "/", &[("x-user", &user)])
                .await
                .unwrap();
            let owner = owners.entry(user.clone()).or_insert_with(|| r.upstream());
            assert_eq!(*owner, r.upstream(), "{user} moved in round {round}");
        }
    }
    let distinct: std::collections::HashSet<_> = owners.values().collect();
    assert!(
        distinct.len() >= 2,
        "30 users all on one endpoint: {owners:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_hide_a_failing_upstream() {
    let bad = Upstream::new("bad").status(503).spawn().await.unwrap();
    let good = Upstream::new("good").spawn().await.unwrap();
    let cluster = format!(
        "clusters:\n  - {{name: c, endpoints: [\"{}\", \"{}\"]}}\n",
        bad.addr(),
        good.addr()
    );
    // Without a retry policy, round robin sends some requests to the 503.
    let plain = start(&format!("{cluster}{}", routes_to("c", ""))).await;
    let c = http1();
    let mut failed = 0;
    for _ in 0..20 {
        if get(&c, plain.addr(), "x", "/").await.status == StatusCode::SERVICE_UNAVAILABLE {
            failed += 1;
        }
    }
    assert!(failed > 0, "round robin never reached the failing upstream");

    let retry = ", retry_policy: {retry_on: \"5xx\", num_retries: 2, retry_back_off: {base_interval_ms: 1}}";
    let proxy = start(&format!("{cluster}{}", routes_to("c", retry))).await;
    let before = bad.served();
    for _ in 0..40 {
        let r = get(&c, proxy.addr(), "x", "/").await;
        assert_eq!((r.status, r.upstream().as_str()), (StatusCode::OK, "good"));
    }
    assert!(
        bad.served() > before,
        "the failing upstream was never tried"
    );
    let metrics = admin(&proxy, "/metrics").await;
    assert!(
        metrics.contains("rauta_cluster_responses_total{cluster=\"c\",class=\"5xx\"}"),
        "{metrics}"
    );

    // retriable-headers on the response's :status, and only for requests
    // that carry x-retry (retriable_request_headers).
    let retry = ", retry_policy: {retry_on: retriable-headers, num_retries: 2, \
                 retry_back_off: {base_interval_ms: 1}, \
                 retriable_headers: [{name: \":status\", string_match: {exact: \"503\"}}], \
                 retriable_request_headers: [{name: x-retry}]}";
    let proxy = start(&format!("{cluster}{}", routes_to("c", retry))).await;
    for _ in 0..20 {
        let r = send(&c, proxy.addr(), "x", "/", &[("x-retry", "1")])
            .await
            .unwrap();
        assert_eq!((r.status, r.upstream().as_str()), (StatusCode::OK, "good"));
    }
    let mut failed = 0;
    for _ in 0..20 {
        if get(&c, proxy.addr(), "x", "/").await.status == StatusCode::SERVICE_UNAVAILABLE {
            failed += 1;
        }
    }
    assert!(failed > 0, "a request without x-retry was retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_eject_the_endpoint() {
    let good = Upstream::new("good").spawn().await.unwrap();
    let dead = closed_port();
    let yaml = format!(
        "clusters:\n  - {{name: c, outlier_ejection_ms: 60000, endpoints: [\"{dead}\", \"{}\"]}}\n{}",
        good.addr(),
        routes_to("c", ", retry_policy: {retry_on: \"connect-failure\", num_retries: 1}")
    );
    let proxy = start(&yaml).await;
    let c = http1();
    for _ in 0..10 {
        let r = get(&c, proxy.addr(), "x", "/").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let routes: serde_json::Value = serde_json::from_str(&admin(&proxy, "/routes").await).unwrap();
    let eps = routes["clusters"][0]["endpoints"].as_array().unwrap();
    let health: HashMap<String, String> = eps
        .iter()
        .map(|e| {
            (
                e["address"].as_str().unwrap().to_owned(),
                e["health"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(health[&dead.to_string()], "Unhealthy", "{routes}");
    assert_eq!(health[&good.addr().to_string()], "Healthy", "{routes}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_endpoint_is_503_and_slow_upstream_is_504() {
    let dead = closed_port();
    let slow = Upstream::new("slow")
        .delay(Duration::from_secs(5))
        .spawn()
        .await
        .unwrap();
    let yaml = format!(
        r#"
clusters:
  - {{name: dead, endpoints: ["{dead}"]}}
  - {{name: slow, endpoints: ["{}"]}}
routes:
  virtual_hosts:
    - name: all
      domains: ["*"]
      routes:
        - {{name: dead, match: {{prefix: /dead}}, action: {{cluster: dead}}}}
        - {{name: slow, match: {{prefix: /slow}}, action: {{cluster: slow, timeout_ms: 200}}}}
"#,
        slow.addr()
    );
    let proxy = start(&yaml).await;
    let c = http1();
    // Refused: 503; the endpoint is then ejected, and still 503.
    for _ in 0..3 {
        let r = get(&c, proxy.addr(), "x", "/dead").await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    }
    let r = get(&c, proxy.addr(), "x", "/slow").await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{}", r.body);
    assert_eq!(r.body, "upstream request timeout\n");
    let r = get(&c, proxy.addr(), "x", "/nothing").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let m = admin(&proxy, "/metrics").await;
    assert!(
        m.contains("rauta_route_responses_by_code_total{route=\"slow\",code=\"504\"} 1\n"),
        "{m}"
    );
    assert!(
        m.contains("rauta_cluster_timeouts_total{cluster=\"slow\"} 1\n"),
        "{m}"
    );
    assert!(
        m.contains("rauta_route_requests_total{route=\"dead\"} 3\n"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_mutations_and_forwarding_headers() {
    let up = Upstream::new("up").spawn().await.unwrap();
    let yaml = format!(
        r#"
clusters:
  - {{name: up, endpoints: ["{}"]}}
routes:
  request_headers_to_add: [{{header: {{key: x-config, value: "1"}}}}]
  response_headers_to_remove: [x-upstream]
  virtual_hosts:
    - name: all
      domains: ["*"]
      routes:
        - name: r
          match: {{prefix: /}}
          action: {{cluster: up, host_rewrite_literal: backend.internal}}
          request_headers_to_add:
            - {{header: {{key: x-route, value: r}}}}
            - {{header: {{key: x-keep, value: new}}, append_action: ADD_IF_ABSENT}}
          request_headers_to_remove: [x-secret]
          response_headers_to_add: [{{header: {{key: x-resp, value: "yes"}}}}]
"#,
        up.addr()
    );
    let proxy = start(&yaml).await;
    let c = http1();
    let r = send(
        &c,
        proxy.addr(),
        "front.test",
        "/p",
        &[
            ("x-secret", "s"),
            ("x-keep", "old"),
            ("x-forwarded-for", "192.0.2.1"),
            ("x-request-id", "given-id"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.seen("x-route").as_deref(), Some("r"));
    assert_eq!(r.seen("x-config").as_deref(), Some("1"));
    assert_eq!(r.seen("x-keep").as_deref(), Some("old"));
    assert_eq!(r.seen("x-secret"), None);
    assert_eq!(r.seen("host").as_deref(), Some("backend.internal"));
    assert_eq!(
        r.seen("x-envoy-original-host").as_deref(),
        Some("front.test")
    );
    assert_eq!(
        r.seen("x-forwarded-for").as_deref(),
        Some("192.0.2.1, 127.0.0.1")
    );
    assert_eq!(r.seen("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(r.seen("x-request-id").as_deref(), Some("given-id"));
    assert_eq!(r.headers["x-resp"], "yes");
    assert!(!r.headers.contains_key("x-upstream"));

    // Without one, the proxy makes a request id.
    let r = get(&c, proxy.addr(), "front.test", "/p").await;
    let id = r.seen("x-request-id").unwrap();
    assert_eq!(id.len(), 32, "{id}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_requests_are_proxied() {
    let up = Upstream::new("up").spawn().await.unwrap();
    let yaml = format!(
        "clusters:\n  - {{name: up, endpoints: [\"{}\"]}}\n{}",
        up.addr(),
        routes_to("up", "")
    );
    let proxy = start(&yaml).await;
    let c = h2c();
    for i in 0..20 {
        let r = get(&c, proxy.addr(), "", &format!("/h2/{i}")).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.version, Version::HTTP_2);
        assert_eq!(r.upstream(), "up");
        assert_eq!(r.json()["path"], format!("/h2/{i}"));
    }
}

/// HTTP/2 sends each cookie in a field of its own: the route's matcher
/// sees them joined with "; " (as Envoy does), and the HTTP/1.1 upstream
/// gets them in one field (RFC 9113 section 8.2.3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_cookie_fields_are_matched_and_forwarded_as_one() {
    let up = Upstream::new("up").spawn().await.unwrap();
    let other = Upstream::new("other").spawn().await.unwrap();
    let yaml = format!(
        r#"
clusters:
  - {{name: up, endpoints: ["{}"]}}
  - {{name: other, endpoints: ["{}"]}}
routes:
  virtual_hosts:
    - name: all
      domains: ["*"]
      routes:
        - name: session
          match:
            prefix: /
            headers: [{{name: cookie, string_match: {{safe_regex: {{regex: "(.*; )?session=abc(;.*)?"}}}}}}]
          action: {{cluster: up}}
        - name: rest
          match: {{prefix: /}}
          action: {{cluster: other}}
"#,
        up.addr(),
        other.addr()
    );
    let proxy = start(&yaml).await;
    for c in [h2c(), http1()] {
        let crumbs = [
            ("cookie", "a=1"),
            ("cookie", "session=abc"),
            ("cookie", "b=2"),
        ];
        let r = send(&c, proxy.addr(), "", "/x", &crumbs)
            .await
            .expect("request");
        assert_eq!(r.upstream(), "up", "{:?}", r.version);
        assert_eq!(r.seen("cookie").as_deref(), Some("a=1; session=abc; b=2"));
        let r = send(&c, proxy.addr(), "", "/x", &[("cookie", "session=abcd")])
            .await
            .expect("request");
        assert_eq!(r.upstream(), "other");
        assert_eq!(r.seen("cookie").as_deref(), Some("session=abcd"));
    }
}

/// A client's `x-envoy-` headers never reach routing or the upstream (a
/// spoofed `x-envoy-internal` must not lift `require_tls: EXTERNAL_ONLY`),
/// and header names with `_` go as `headers_with_underscores_action` says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_and_underscore_headers_from_clients() {
    let up = Upstream::new("up").spawn().await.unwrap();
    let config = |action: &str| {
        format!(
            r#"
clusters:
  - {{name: up, endpoints: ["{}"]}}
{action}
routes:
  virtual_hosts:
    - name: secure
      domains: ["secure.test"]
      require_tls: EXTERNAL_ONLY
      routes: [{{name: s, match: {{prefix: /}}, action: {{cluster: up}}}}]
    - name: all
      domains: ["*"]
      routes: [{{name: r, match: {{prefix: /}}, action: {{cluster: up}}}}]
"#,
            up.addr()
        )
    };
    // (A client's `x-forwarded-proto: https` does not lift `require_tls`
    // either: the scheme is the connection's.)
    let spoofed = [
        ("x-envoy-internal", "true"),
        ("x-envoy-original-path", "/admin"),
        ("x_user", "root"),
        ("x-user", "alice"),
        ("x-forwarded-proto", "https"),
    ];
    let c = http1();
    for (action, underscore_seen) in [
        ("", None),
        ("headers_with_underscores_action: DROP_HEADER", None),
        ("headers_with_underscores_action: ALLOW", Some("root")),
    ] {
        let proxy = start(&config(action)).await;
        let r = send(&c, proxy.addr(), "", "/x", &spoofed)
            .await
            .expect("request");
        assert_eq!(r.status, StatusCode::OK, "{action}");
        assert_eq!(r.seen("x_user").as_deref(), underscore_seen, "{action}");
        assert_eq!(r.seen("x-user").as_deref(), Some("alice"));
        assert_eq!(r.seen("x-envoy-internal"), None);
        assert_eq!(r.seen("x-envoy-original-path"), None);
        assert_eq!(r.seen("x-forwarded-proto").as_deref(), Some("http"));
        let r = send(&c, proxy.addr(), "secure.test", "/x", &spoofed)
            .await
            .expect("request");
        assert_eq!(r.status, StatusCode::MOVED_PERMANENTLY, "{action}");
    }
    let proxy = start(&config("headers_with_underscores_action: REJECT_REQUEST")).await;
    let r = send(&c, proxy.addr(), "", "/x", &spoofed)
        .await
        .expect("request");
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body, "bad request: header name with underscore\n");
    let r = send(&c, proxy.addr(), "", "/x", &spoofed[..2])
        .await
        .expect("request");
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.seen("x-envoy-internal"), None);
    let err = rauta_proxy::config::ProxyConfig::from_yaml(&config(
        "headers_with_underscores_action: MAYBE",
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("MAYBE"), "{err}");
}

/// `request_mirror_policies`: a bodiless request is also sent to the mirror
/// cluster (whose answer is dropped); the client gets the main upstream's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_mirrors_get_a_copy() {
    let up = Upstream::new("up").spawn().await.unwrap();
    let shadow = Upstream::new("shadow").status(500).spawn().await.unwrap();
    let yaml = format!(
        r#"
clusters:
  - {{name: up, endpoints: ["{}"]}}
  - {{name: shadow, endpoints: ["{}"]}}
routes:
  virtual_hosts:
    - name: all
      domains: ["*"]
      routes:
        - name: m
          match: {{prefix: /m}}
          action: {{cluster: up, request_mirror_policies: [{{cluster: shadow}}]}}
        - {{name: r, match: {{prefix: /}}, action: {{cluster: up}}}}
"#,
        up.addr(),
        shadow.addr()
    );
    let proxy = start(&yaml).await;
    let c = http1();
    for _ in 0..3 {
        let r = get(&c, proxy.addr(), "", "/m").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.upstream(), "up");
    }
    let got_three = eventually(Duration::from_secs(10), || async { shadow.served() >= 3 }).await;
    assert!(got_three, "the mirror saw {} copies", shadow.served());
    // Another route: no copy.
    let r = get(&c, proxy.addr(), "", "/other").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(up.served(), 4);
    assert_eq!(shadow.served(), 3);

    // A body goes to the mirror too, whole: with a length and chunked.
    let client = http1_with::<http_body_util::Full<bytes::Bytes>>();
    let body = vec![b'x'; 40_000];
    let req = http::Request::post(format!("http://{}/m/upload", proxy.addr()))
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let resp = tokio::time::timeout(REQUEST_BOUND, client.request(req))
        .await
        .expect("in time")
        .expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    let copied = eventually(Duration::from_secs(10), || async {
        shadow.body_bytes() >= 40_000
    })
    .await;
    assert!(copied, "the mirror got {} body bytes", shadow.body_bytes());
    assert_eq!(shadow.body_bytes(), 40_000);
    assert_eq!(up.body_bytes(), 40_000);
    // Ten frames and no length: the client sends it chunked.
    let chunked_client = http1_with::<Chunks>();
    let req = http::Request::post(format!("http://{}/m/stream", proxy.addr()))
        .body(Chunks(10))
        .unwrap();
    let resp = tokio::time::timeout(REQUEST_BOUND, chunked_client.request(req))
        .await
        .expect("in time")
        .expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    let copied = eventually(Duration::from_secs(10), || async {
        shadow.body_bytes() >= 50_000
    })
    .await;
    assert!(copied, "the mirror got {} body bytes", shadow.body_bytes());
    assert_eq!(up.body_bytes(), 50_000);
}

/// `internal_only_headers` never come from a client: the proxy marks no
/// request internal (a client's `x-envoy-internal` is removed), so routing
/// does not see them and the upstream does not get them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_only_headers_from_clients_are_dropped() {
    let up = Upstream::new("up").spawn().await.unwrap();
    let yaml = format!(
        r#"
clusters:
  - {{name: up, endpoints: ["{}"]}}
routes:
  internal_only_headers: [x-secret]
  virtual_hosts:
    - name: all
      domains: ["*"]
      routes:
        - name: trusted
          match: {{prefix: /, headers: [{{name: x-secret, present_match: true}}]}}
          action: {{direct_response: {{status: 403}}}}
        - {{name: r, match: {{prefix: /}}, action: {{cluster: up}}}}
"#,
        up.addr()
    );
    let proxy = start(&yaml).await;
    let c = http1();
    let r = send(
        &c,
        proxy.addr(),
        "",
        "/x",
        &[
            ("x-secret", "1"),
            ("x-envoy-internal", "true"),
            ("x-other", "2"),
        ],
    )
    .await
    .expect("request");
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.seen("x-secret"), None);
    assert_eq!(r.seen("x-other").as_deref(), Some("2"));
}

/// Header values with Envoy's `%COMMAND%`s are formatted per request with
/// what the proxy knows of the connection; an unknown command is a load
/// error that names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_values_format_envoy_commands() {
    let up = Upstream::new("up").spawn().await.unwrap();
    let config = |value: &str| {
        format!(
            r#"
clusters:
  - {{name: up, endpoints: ["{}"]}}
routes:
  virtual_hosts:
    - name: all
      domains: ["*"]
      routes:
        - name: sent
          match: {{prefix: /sent/}}
          action: {{cluster: up, prefix_rewrite: /up/}}
          request_headers_to_add:
            - {{header: {{key: x-added, value: "by-route"}}}}
          request_headers_to_remove: [x-secret]
          response_headers_to_add:
            - {{header: {{key: x-sent, value: "%REQ(x-added)% %REQ(:PATH)% %REQ(x-secret?x-id)%"}}}}
        - name: fmt
          match: {{prefix: /f}}
          action: {{cluster: up}}
          request_headers_to_add:
            - {{header: {{key: x-real-ip, value: "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"}}}}
            - {{header: {{key: x-local-port, value: "%DOWNSTREAM_LOCAL_PORT%"}}}}
            - {{header: {{key: x-proto, value: "%PROTOCOL%"}}}}
            - {{header: {{key: x-route, value: "%ROUTE_NAME%@%UPSTREAM_CLUSTER% %REQ(:PATH)%"}}}}
            - {{header: {{key: x-copy, value: "%REQ(x-id):3%"}}}}
            - {{header: {{key: x-pct, value: "100%%"}}}}
            - {{header: {{key: x-xff, value: "%REQ(x-forwarded-for)% %REQ(x-forwarded-proto)%"}}}}
            - {{header: {{key: x-gone, value: "%REQ(x-absent)%"}}}}
          response_headers_to_add:
            - {{header: {{key: x-upstream-host, value: "%UPSTREAM_HOST%"}}}}
            - {{header: {{key: x-echo, value: "%REQ(x-id)%"}}}}
            - {{header: {{key: x-start, value: "%START_TIME(%s)%"}}}}
            - {{header: {{key: x-type, value: "%RESP(content-type)%"}}}}
            - {{header: {{key: x-status, value: "%RESP(:status)%"}}}}
        - name: plain
          match: {{prefix: /}}
          action: {{cluster: up}}
          request_headers_to_add: [{{header: {{key: x-plain, value: "{value}"}}}}]
"#,
            up.addr()
        )
    };
    let proxy = start(&config("as is")).await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for c in [http1(), h2c()] {
        let r = send(
            &c,
            proxy.addr(),
            "",
            "/f?q=1",
            &[("x-id", "abcdef"), ("x-forwarded-for", "198.18.0.1")],
        )
        .await
        .expect("request");
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.seen("x-real-ip").as_deref(), Some("127.0.0.1"));
        let port = proxy.addr().port().to_string();
        assert_eq!(r.seen("x-local-port").as_deref(), Some(port.as_str()));
        let proto = if r.version == http::Version::HTTP_2 {
            "HTTP/2"
        } else {
            "HTTP/1.1"
        };
        assert_eq!(r.seen("x-proto").as_deref(), Some(proto));
        assert_eq!(r.seen("x-route").as_deref(), Some("fmt@up /f?q=1"));
        assert_eq!(r.seen("x-copy").as_deref(), Some("abc"));
        assert_eq!(r.seen("x-pct").as_deref(), Some("100%"));
        // The forwarding fields are set before the route's mutations.
        assert_eq!(
            r.seen("x-xff").as_deref(),
            Some("198.18.0.1, 127.0.0.1 http")
        );
        assert_eq!(r.seen("x-gone"), None, "an empty value adds no header");
        let resp = |n: &str| {
            r.headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        assert_eq!(resp("x-upstream-host"), Some(up.addr().to_string()));
        assert_eq!(resp("x-echo").as_deref(), Some("abcdef"));
        assert_eq!(resp("x-type"), resp("content-type"));
        assert_eq!(resp("x-status").as_deref(), Some("200"));
        let start: u64 = resp("x-start")
            .and_then(|s| s.parse().ok())
            .expect("x-start");
        let after = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(
            (before..=after).contains(&start),
            "{before} <= {start} <= {after}"
        );
        // A response value's %REQ(...)% reads the request as it went
        // upstream: the route's additions and removals and the rewritten
        // path, as in Envoy.
        let r = send(
            &c,
            proxy.addr(),
            "",
            "/sent/a?b",
            &[("x-secret", "s"), ("x-id", "i")],
        )
        .await
        .expect("request");
        assert_eq!(r.seen("x-added").as_deref(), Some("by-route"));
        assert_eq!(r.seen("x-secret"), None);
        assert_eq!(
            r.headers.get("x-sent").and_then(|v| v.to_str().ok()),
            Some("by-route /up/a?b i")
        );
        // A route without commands is untouched.
        let r = send(&c, proxy.addr(), "", "/p", &[])
            .await
            .expect("request");
        assert_eq!(r.seen("x-plain").as_deref(), Some("as is"));
        assert_eq!(r.headers.get("x-upstream-host"), None);
    }
    let err = rauta_proxy::config::ProxyConfig::from_yaml(&config("%DOWNSTREAM_PEER_SUBJECT%"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("%DOWNSTREAM_PEER_SUBJECT% is not a supported command")
            && err.contains("x-plain"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_and_promtool() {
    let up = Upstream::new("up").spawn().await.unwrap();
    let yaml = format!(
        "clusters:\n  - {{name: up, endpoints: [\"{}\"]}}\n{}",
        up.addr(),
        routes_to("up", "")
    );
    let proxy = start(&yaml).await;
    let c = http1();
    for _ in 0..5 {
        get(&c, proxy.addr(), "x", "/").await;
    }
    get(&c, proxy.addr(), "x", "/%zz").await;
    assert_eq!(admin(&proxy, "/ready").await, "ready\n");
    let config: serde_json::Value = serde_json::from_str(&admin(&proxy, "/config").await).unwrap();
    assert_eq!(config["version"], 1);
    assert_eq!(
        config["hash"],
        format!("{:016x}", rauta_proxy::config::text_hash(&yaml))
    );
    let routes: serde_json::Value = serde_json::from_str(&admin(&proxy, "/routes").await).unwrap();
    assert_eq!(routes["virtual_hosts"][0]["routes"][0]["name"], "r");
    assert_eq!(
        routes["virtual_hosts"][0]["routes"][0]["action"],
        "cluster up"
    );

    let metrics = admin(&proxy, "/metrics").await;
    assert!(
        metrics.contains("rauta_route_requests_total{route=\"r\"} 5\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("rauta_proxy_config_version 1\n"),
        "{metrics}"
    );

    if std::env::var_os("RAUTA_SKIP_PROMTOOL").is_some() {
        return;
    }
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; RAUTA_SKIP_PROMTOOL=1 skips)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_are_streamed_upstream_and_not_retried() {
    let bad = Upstream::new("bad").status(503).spawn().await.unwrap();
    let yaml = format!(
        "clusters:\n  - {{name: c, endpoints: [\"{}\"]}}\n{}",
        bad.addr(),
        routes_to("c", ", retry_policy: {retry_on: \"5xx\", num_retries: 3}")
    );
    let proxy = start(&yaml).await;
    let client = http1_with::<http_body_util::Full<bytes::Bytes>>();
    let body = vec![b'x'; 300_000];
    let req = http::Request::post(format!("http://{}/upload", proxy.addr()))
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let resp = tokio::time::timeout(REQUEST_BOUND, client.request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    use http_body_util::BodyExt;
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        (v["method"].as_str(), v["body_len"].as_u64()),
        (Some("POST"), Some(300_000))
    );
    // POST is not idempotent: one attempt only, despite the retry policy.
    assert_eq!(bad.served(), 1);

    // A GET is retried 3 times.
    get(&http1(), proxy.addr(), "x", "/").await;
    assert_eq!(bad.served(), 5);
}

/// CORS: a preflight is answered by the proxy (the upstream never sees
/// it, and the route's response edits do not apply); a request from an
/// allowed origin is forwarded and its answer gets the origin's headers,
/// over the route's own; one from another origin gets none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflights_are_answered_and_responses_get_the_origin() {
    let up = Upstream::new("up").spawn().await.unwrap();
    let yaml = format!(
        r#"
clusters:
  - {{name: up, endpoints: ["{}"]}}
routes:
  virtual_hosts:
    - name: all
      domains: ["*"]
      cors:
        allow_origin_string_match: [{{exact: "https://app.example"}}]
        allow_methods: "GET, PUT"
        allow_headers: "x-token"
        expose_headers: "x-request-id"
        max_age: "600"
        allow_credentials: true
      response_headers_to_add:
        - {{header: {{key: access-control-allow-origin, value: "*"}}}}
        - {{header: {{key: x-route, value: "yes"}}}}
      routes:
        - name: r
          match: {{prefix: /}}
          action: {{cluster: up}}
"#,
        up.addr()
    );
    let proxy = start(&yaml).await;
    let header = |r: &Reply, n: &str| {
        r.headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    for c in [http1(), h2c()] {
        let served = up.served();
        let r = send_method(
            &c,
            proxy.addr(),
            "OPTIONS",
            "",
            "/items",
            &[
                ("origin", "https://app.example"),
                ("access-control-request-method", "PUT"),
            ],
        )
        .await
        .expect("preflight");
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body, "");
        assert_eq!(up.served(), served, "a preflight is not forwarded");
        for (n, v) in [
            ("access-control-allow-origin", "https://app.example"),
            ("access-control-allow-credentials", "true"),
            ("access-control-allow-methods", "GET, PUT"),
            ("access-control-allow-headers", "x-token"),
            ("access-control-max-age", "600"),
            ("access-control-expose-headers", "x-request-id"),
        ] {
            assert_eq!(header(&r, n).as_deref(), Some(v), "{n}");
        }
        assert_eq!(header(&r, "x-route"), None);

        let r = send(
            &c,
            proxy.addr(),
            "",
            "/items",
            &[("origin", "https://app.example")],
        )
        .await
        .expect("request");
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.upstream(), "up");
        assert_eq!(r.seen("origin").as_deref(), Some("https://app.example"));
        assert_eq!(
            header(&r, "access-control-allow-origin").as_deref(),
            Some("https://app.example")
        );
        assert_eq!(
            header(&r, "access-control-allow-credentials").as_deref(),
            Some("true")
        );
        assert_eq!(
            header(&r, "access-control-expose-headers").as_deref(),
            Some("x-request-id")
        );
        assert_eq!(header(&r, "x-route").as_deref(), Some("yes"));

        // Another origin: its preflight goes upstream, and nothing is
        // added to the answers but the route's own edits.
        let served = up.served();
        let r = send_method(
            &c,
            proxy.addr(),
            "OPTIONS",
            "",
            "/items",
            &[
                ("origin", "https://evil.example"),
                ("access-control-request-method", "PUT"),
            ],
        )
        .await
        .expect("preflight");
        assert_eq!(r.upstream(), "up");
        assert_eq!(up.served(), served + 1);
        assert_eq!(
            header(&r, "access-control-allow-origin").as_deref(),
            Some("*")
        );
        assert_eq!(header(&r, "access-control-allow-credentials"), None);
        let r = send(&c, proxy.addr(), "", "/items", &[]).await.unwrap();
        assert_eq!(header(&r, "access-control-expose-headers"), None);
    }
    let metrics = admin(&proxy, "/metrics").await;
    for line in [
        "rauta_proxy_cors_origins_total{result=\"valid\"} 4",
        "rauta_proxy_cors_origins_total{result=\"invalid\"} 2",
        "rauta_proxy_cors_preflights_total 2",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line}:\n{metrics}");
    }
}

/// Local rate limits: a refused request is answered here with the
/// limiter's status, body and headers (gRPC gets its status), one the
/// limiter only counts goes upstream marked, answers carry
/// `x-ratelimit-*`, and /metrics counts by `stat_prefix`. The buckets do
/// not refill within the test (one token an hour).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_rate_limits_refuse_or_mark_requests_over_the_limit() {
    let up = Upstream::new("up").spawn().await.unwrap();
    let yaml = format!(
        r#"
clusters:
  - {{name: up, endpoints: ["{}"]}}
routes:
  virtual_hosts:
    - name: all
      domains: ["*"]
      response_headers_to_add:
        - {{header: {{key: x-vhost, value: "yes"}}}}
      response_headers_to_remove: [x-ratelimit-limit]
      routes:
        - name: strict
          match: {{prefix: /strict}}
          action: {{cluster: up}}
          typed_per_filter_config:
            envoy.filters.http.local_ratelimit:
              stat_prefix: strict
              token_bucket: {{max_tokens: 2, fill_interval: 3600s}}
              filter_enabled: {{default_value: {{numerator: 100}}}}
              filter_enforced: {{default_value: {{numerator: 100}}}}
              enable_x_ratelimit_headers: DRAFT_VERSION_03
              response_headers_to_add:
                - {{header: {{key: x-limited-path, value: "%REQ(:path)%"}}}}
        - name: counted
          match: {{prefix: /counted}}
          action: {{cluster: up}}
          typed_per_filter_config:
            envoy.filters.http.local_ratelimit:
              stat_prefix: counted
              token_bucket: {{max_tokens: 1, fill_interval: 3600s}}
              filter_enabled: {{default_value: {{numerator: 100}}}}
              request_headers_to_add_when_not_enforced:
                - {{header: {{key: x-over-limit, value: "true"}}}}
"#,
        up.addr()
    );
    let proxy = start(&yaml).await;
    let header = |r: &Reply, n: &str| {
        r.headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let c = http1();
    for left in ["1", "0"] {
        let r = send(&c, proxy.addr(), "", "/strict/a", &[]).await.unwrap();
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.upstream(), "up");
        assert_eq!(header(&r, "x-ratelimit-limit").as_deref(), Some("2"));
        assert_eq!(header(&r, "x-ratelimit-remaining").as_deref(), Some(left));
    }
    let served = up.served();
    let r = send(&c, proxy.addr(), "", "/strict/b", &[]).await.unwrap();
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.body, "local_rate_limited");
    assert_eq!(header(&r, "x-limited-path").as_deref(), Some("/strict/b"));
    assert_eq!(header(&r, "x-ratelimit-remaining").as_deref(), Some("0"));
    // The route's edits reach the refusal too, before the filter's
    // headers (its removal does not touch them).
    assert_eq!(header(&r, "x-vhost").as_deref(), Some("yes"));
    assert_eq!(header(&r, "x-ratelimit-limit").as_deref(), Some("2"));
    // gRPC-Web is not gRPC.
    let r = send(
        &c,
        proxy.addr(),
        "",
        "/strict/d",
        &[("content-type", "application/grpc-web+proto")],
    )
    .await
    .unwrap();
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&r, "grpc-status"), None);
    let r = send(
        &h2c(),
        proxy.addr(),
        "",
        "/strict/c",
        &[("content-type", "application/grpc")],
    )
    .await
    .unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(header(&r, "grpc-status").as_deref(), Some("14"));
    assert_eq!(up.served(), served, "refused requests are not forwarded");

    // Counted, not enforced: the second request still goes, marked.
    let r = send(&c, proxy.addr(), "", "/counted", &[]).await.unwrap();
    assert_eq!(r.seen("x-over-limit"), None);
    let r = send(&c, proxy.addr(), "", "/counted", &[]).await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.seen("x-over-limit").as_deref(), Some("true"));
    assert_eq!(header(&r, "x-ratelimit-limit"), None);

    let metrics = admin(&proxy, "/metrics").await;
    for line in [
        "rauta_proxy_local_rate_limit_total{stat_prefix=\"strict\",result=\"enabled\"} 5",
        "rauta_proxy_local_rate_limit_total{stat_prefix=\"strict\",result=\"ok\"} 2",
        "rauta_proxy_local_rate_limit_total{stat_prefix=\"strict\",result=\"enforced\"} 3",
        "rauta_proxy_local_rate_limit_total{stat_prefix=\"counted\",result=\"rate_limited\"} 1",
        "rauta_proxy_local_rate_limit_total{stat_prefix=\"counted\",result=\"enforced\"} 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line}:\n{metrics}");
    }
}

/// An `envoy_routes:` file (Envoy's own shape) serves as its RAUTA twin
/// would: durations, a `safe_regex` route, a direct response from a
/// DataSource, and a CORS policy in `typed_per_filter_config`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_shaped_routes_are_served() {
    let up = Upstream::new("up").spawn().await.unwrap();
    let yaml = format!(
        r#"
clusters:
  - {{name: up, endpoints: ["{}"]}}
envoy_routes:
  "@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
  virtual_hosts:
    - name: all
      domains: ["*"]
      typed_per_filter_config:
        envoy.filters.http.cors:
          "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
          allow_origin_string_match: [{{exact: "https://app.example"}}]
      routes:
        - name: users
          match: {{safe_regex: {{regex: "/users/[0-9]+"}}}}
          route: {{cluster: up, timeout: 2s, regex_rewrite: {{pattern: {{regex: "^/users/"}}, substitution: /v2/}}}}
        - name: health
          match: {{path: /healthz}}
          direct_response: {{status: 200, body: {{inline_string: "fine\n"}}}}
"#,
        up.addr()
    );
    let proxy = start(&yaml).await;
    for c in [http1(), h2c()] {
        let r = send(
            &c,
            proxy.addr(),
            "",
            "/users/7",
            &[("origin", "https://app.example")],
        )
        .await
        .expect("request");
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.upstream(), "up");
        assert_eq!(r.json()["path"].as_str(), Some("/v2/7"));
        assert_eq!(
            r.headers
                .get("access-control-allow-origin")
                .and_then(|v| v.to_str().ok()),
            Some("https://app.example")
        );
        let r = get(&c, proxy.addr(), "", "/healthz").await;
        assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "fine\n"));
        let r = get(&c, proxy.addr(), "", "/users/x").await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    }
}

/// `max_stream_duration` (a route's, and the listener's) bounds a request
/// from its head to its response's last byte: 504 once the request was
/// received, 408 before, `grpc-status` 4 for gRPC, and a response cut when
/// the time runs out mid-body. A route's gRPC rules set the upstream's
/// `grpc-timeout`. The limits (1 s a route, 2 s the listener) leave a
/// loaded machine time for every exchange that must finish within them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_stream_duration_bounds_requests_and_sets_grpc_timeouts() {
    let slow = Upstream::new("slow")
        .delay(Duration::from_secs(5))
        .spawn()
        .await
        .unwrap();
    let fast = Upstream::new("fast").spawn().await.unwrap();
    let medium = Upstream::new("medium")
        .delay(Duration::from_millis(3000))
        .spawn()
        .await
        .unwrap();
    // An upstream that sends its head and part of its body, then stalls:
    // 3 of 10 bytes for `/small`, 20,000 of 100,000 for anything else (a
    // head the proxy sends on before the body is whole).
    let stall = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stall_addr = stall.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = stall.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let small = buf[..n].starts_with(b"GET /cut/small");
                let (len, part) = if small { (10, 3) } else { (100_000, 20_000) };
                let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {len}\r\n\r\n");
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&vec![b'a'; part]).await;
                // Longer than the test's bound: only the proxy ends it.
                tokio::time::sleep(Duration::from_secs(60)).await;
            });
        }
    });
    let yaml = format!(
        r#"
max_stream_duration_ms: 2000
clusters:
  - {{name: slow, endpoints: ["{}"]}}
  - {{name: fast, endpoints: ["{}"]}}
  - {{name: stall, endpoints: ["{stall_addr}"]}}
  - {{name: medium, endpoints: ["{}"]}}
routes:
  virtual_hosts:
    - name: all
      domains: ["*"]
      routes:
        - name: life
          match: {{prefix: /life}}
          action: {{cluster: slow, max_stream_duration: {{max_stream_duration_ms: 1000}}}}
        - name: cut
          match: {{prefix: /cut}}
          action: {{cluster: stall, max_stream_duration: {{max_stream_duration_ms: 1000}}}}
        - name: unlimited
          match: {{prefix: /unlimited}}
          action: {{cluster: medium, max_stream_duration: {{max_stream_duration_ms: 0}}}}
        - name: grpc
          match: {{prefix: /grpc}}
          action:
            cluster: fast
            max_stream_duration: {{grpc_timeout_header_max_ms: 3000, grpc_timeout_header_offset_ms: 100}}
        - name: old
          match: {{prefix: /old}}
          action: {{cluster: fast, max_grpc_timeout_ms: 0, grpc_timeout_offset_ms: 50}}
        - {{name: listener, match: {{prefix: /}}, action: {{cluster: slow}}}}
"#,
        slow.addr(),
        fast.addr(),
        medium.addr()
    );
    let proxy = start(&yaml).await;
    let c = http1();
    // The route's lifetime, not its (default 15 s) timeout.
    let r = get(&c, proxy.addr(), "x", "/life").await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{}", r.body);
    assert_eq!(r.body, "downstream duration timeout\n");
    // The listener's, for a route without one.
    let r = get(&c, proxy.addr(), "x", "/").await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{}", r.body);
    assert_eq!(r.body, "downstream duration timeout\n");
    // gRPC: DEADLINE_EXCEEDED, trailers-only.
    let grpc = [("content-type", "application/grpc")];
    let r = send_method(&c, proxy.addr(), "POST", "x", "/life", &grpc)
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["grpc-status"], "4");
    assert_eq!(r.headers["grpc-message"], "downstream duration timeout");

    // A gRPC call with a deadline.
    let addr = proxy.addr();
    let call = |path: &'static str, deadline: &'static str| {
        let c = &c;
        async move {
            let h = [
                ("content-type", "application/grpc"),
                ("grpc-timeout", deadline),
            ];
            send_method(c, addr, "POST", "x", path, &h).await.unwrap()
        }
    };
    // The client's deadline, capped and less the offset, goes upstream.
    let r = call("/grpc/pkg.Svc/Call", "10S").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.seen("grpc-timeout").as_deref(), Some("2900m"));
    // The old scheme: the header less its offset, uncapped.
    let r = call("/old/pkg.Svc/Call", "1S").await;
    assert_eq!(r.seen("grpc-timeout").as_deref(), Some("950m"));
    // A deadline the offset uses up: answered at once, never sent.
    let served = fast.served();
    let r = call("/grpc/pkg.Svc/Call", "100m").await;
    assert_eq!(r.headers["grpc-status"], "4");
    assert_eq!(fast.served(), served);
    // Not gRPC: the header is left as it came.
    let r = send(&c, proxy.addr(), "x", "/grpc/x", &[("grpc-timeout", "10S")])
        .await
        .unwrap();
    assert_eq!(r.seen("grpc-timeout").as_deref(), Some("10S"));

    // /routes shows each route's rules.
    let routes: serde_json::Value = serde_json::from_str(&admin(&proxy, "/routes").await).unwrap();
    let by_name = |n: &str| {
        routes["virtual_hosts"][0]["routes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == n)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        by_name("life")["max_stream_duration"]["max_stream_duration_ms"],
        1000
    );
    assert_eq!(by_name("old")["max_grpc_timeout_ms"], 0);
    assert!(by_name("listener")["max_stream_duration"].is_null());

    // A route's 0 turns the listener's limit off: an answer that takes
    // longer than the listener's 2 s arrives.
    let r = get(&c, proxy.addr(), "x", "/unlimited").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.upstream(), "medium");

    // A response still coming when the time is up is cut: before its
    // head went out (a small body the fast path holds to send with it),
    // the connection closes with nothing; after, the body stops short,
    // over HTTP/1.1 and h2c.
    let cut = send(&c, proxy.addr(), "x", "/cut/small", &[]).await;
    assert!(cut.is_err(), "{cut:?}");
    for client in [http1(), h2c()] {
        let req = http::Request::get(format!("http://{}/cut/large", proxy.addr()))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = tokio::time::timeout(REQUEST_BOUND, client.request(req))
            .await
            .expect("in time")
            .expect("a head");
        assert_eq!(resp.status(), StatusCode::OK);
        use http_body_util::BodyExt;
        let body = tokio::time::timeout(REQUEST_BOUND, resp.into_body().collect())
            .await
            .expect("in time");
        assert!(body.is_err(), "the body came whole");
    }

    // A request whose whole body was received: 504.
    let full = http1_with::<http_body_util::Full<bytes::Bytes>>();
    let req = http::Request::post(format!("http://{}/life", proxy.addr()))
        .body(http_body_util::Full::new(bytes::Bytes::from_static(b"all")))
        .unwrap();
    let resp = tokio::time::timeout(REQUEST_BOUND, full.request(req))
        .await
        .expect("in time")
        .expect("response");
    assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);

    // A request whose body has not ended: 408.
    struct Stuck(bool);
    impl hyper::body::Body for Stuck {
        type Data = bytes::Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>>
        {
            if self.0 {
                // Never more, and never woken: the body does not end.
                return std::task::Poll::Pending;
            }
            self.0 = true;
            let data = bytes::Bytes::from_static(b"part");
            std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(data))))
        }
    }
    let stuck = http1_with::<Stuck>();
    let req = http::Request::post(format!("http://{}/life", proxy.addr()))
        .body(Stuck(false))
        .unwrap();
    let resp = tokio::time::timeout(REQUEST_BOUND, stuck.request(req))
        .await
        .expect("in time")
        .expect("response");
    assert_eq!(resp.status(), StatusCode::REQUEST_TIMEOUT);
}

/// A gRPC request the proxy answers itself gets a gRPC answer, as Envoy's
/// local replies are: 200, no body, `grpc-status` mapped from the HTTP
/// status and `grpc-message`; others get the text answer as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_answers_to_grpc_requests_are_grpc() {
    let dead = closed_port();
    let yaml = format!(
        r#"
clusters:
  - {{name: dead, endpoints: ["{dead}"]}}
routes:
  virtual_hosts:
    - name: all
      domains: ["*"]
      routes:
        - {{name: dead, match: {{prefix: /dead}}, action: {{cluster: dead}}}}
        - {{name: by-header, match: {{prefix: /pick}}, action: {{cluster_header: x-cluster}}}}
"#
    );
    let proxy = start(&yaml).await;
    let c = http1();
    let call = |path: &'static str| {
        let c = &c;
        let addr = proxy.addr();
        async move {
            let h = [("content-type", "application/grpc+proto")];
            send_method(c, addr, "POST", "x", path, &h).await.unwrap()
        }
    };
    for (path, status, message) in [
        ("/dead/pkg.Svc/Call", "14", "upstream connect error"),
        ("/none/pkg.Svc/Call", "12", "no route"),
        ("/pick/pkg.Svc/Call", "14", "cluster not found"),
    ] {
        let r = call(path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(r.headers["grpc-status"], status, "{path}");
        assert_eq!(r.headers["grpc-message"], message, "{path}");
        assert_eq!(r.headers["content-type"], "application/grpc", "{path}");
        assert!(r.body.is_empty(), "{path}");
    }
    // gRPC-Web and plain requests: text.
    let r = send_method(
        &c,
        proxy.addr(),
        "POST",
        "x",
        "/none",
        &[("content-type", "application/grpc-web")],
    )
    .await
    .unwrap();
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body, "no route\n");
}

/// Internal redirects: an upstream's redirect that the route's
/// `internal_redirect_policy` covers is followed by the proxy (routed
/// afresh, with the body again, or as a GET after a 303), and one it
/// cannot follow goes to the client as it came; `/metrics` counts both.
#[tokio::test]
async fn internal_redirects_are_followed_and_counted() {
    let redirecting = |name: &str, status: u16, location: &str| {
        Upstream::new(name)
            .status(status)
            .header("location", location)
            .header("x-trace", "t1")
            .spawn()
    };
    let shop = Upstream::new("shop").spawn().await.unwrap();
    let found = redirecting("found", 302, "http://shop.example/new/cart#top")
        .await
        .unwrap();
    let see = redirecting("see", 303, "http://shop.example/new/done")
        .await
        .unwrap();
    let temp = redirecting("temp", 307, "http://shop.example/new/post")
        .await
        .unwrap();
    let looper = redirecting("looper", 307, "http://shop.example/loop/again")
        .await
        .unwrap();
    let secure = redirecting("secure", 302, "https://shop.example/new")
        .await
        .unwrap();
    let lost = redirecting("lost", 302, "http://nowhere.example/")
        .await
        .unwrap();
    let codes = "redirect_response_codes: [302, 303, 307]";
    let yaml = format!(
        r#"
clusters:
  - {{name: shop, endpoints: ["{}"]}}
  - {{name: found, endpoints: ["{}"]}}
  - {{name: see, endpoints: ["{}"]}}
  - {{name: temp, endpoints: ["{}"]}}
  - {{name: looper, endpoints: ["{}"]}}
  - {{name: secure, endpoints: ["{}"]}}
  - {{name: lost, endpoints: ["{}"]}}
routes:
  virtual_hosts:
    - name: shop
      domains: ["shop.example"]
      routes:
        - name: old
          match: {{prefix: /old}}
          request_headers_to_add: [{{header: {{key: x-from-old, value: "1"}}}}]
          action: {{cluster: found, prefix_rewrite: /legacy, internal_redirect_policy: {{response_headers_to_copy: [x-trace]}}}}
        - {{name: plain, match: {{prefix: /plain}}, action: {{cluster: found}}}}
        - {{name: see, match: {{prefix: /see}}, action: {{cluster: see, internal_redirect_policy: {{{codes}}}}}}}
        - {{name: temp, match: {{prefix: /temp}}, action: {{cluster: temp, internal_redirect_policy: {{{codes}}}}}}}
        - {{name: tiny, match: {{prefix: /tiny}}, per_request_buffer_limit_bytes: 4, action: {{cluster: temp, internal_redirect_policy: {{{codes}}}}}}}
        - {{name: loop, match: {{prefix: /loop}}, action: {{cluster: looper, internal_redirect_policy: {{{codes}, max_internal_redirects: 3}}}}}}
        - {{name: secure, match: {{prefix: /secure}}, action: {{cluster: secure, internal_redirect_policy: {{}}}}}}
        - {{name: lost, match: {{prefix: /lost}}, action: {{cluster: lost, internal_redirect_policy: {{}}}}}}
        - {{name: new, match: {{prefix: /}}, action: {{cluster: shop}}}}
"#,
        shop.addr(),
        found.addr(),
        see.addr(),
        temp.addr(),
        looper.addr(),
        secure.addr(),
        lost.addr()
    );
    let proxy = start(&yaml).await;
    let c = http1();

    // A 302 followed: the shop answers the request as it went on, which
    // is the request as it went to the first upstream (the first route's
    // rewrite and headers kept, as Envoy's router edits the request in
    // place), with the copied header. A client's own `x-envoy-*` fields
    // and scheme get through on neither pass.
    let spoofed = [
        ("x-trace", "mine"),
        ("x-envoy-original-url", "http://evil/"),
        ("x-envoy-internal", "true"),
        ("x-forwarded-proto", "https"),
    ];
    let r = send(&c, proxy.addr(), "shop.example", "/old/a?x=1", &spoofed)
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.upstream(), "shop");
    assert_eq!(r.json()["path"], "/new/cart");
    assert_eq!(r.seen("host").as_deref(), Some("shop.example"));
    assert_eq!(
        r.seen("x-envoy-original-url").as_deref(),
        Some("http://shop.example/legacy/a?x=1")
    );
    assert_eq!(
        r.seen("x-envoy-original-path").as_deref(),
        Some("/old/a?x=1")
    );
    assert_eq!(r.seen("x-from-old").as_deref(), Some("1"));
    assert_eq!(r.seen("x-trace").as_deref(), Some("t1"));
    assert_eq!(r.seen("x-envoy-internal"), None);
    assert_eq!(r.seen("x-forwarded-proto").as_deref(), Some("http"));
    // The client's address once, not once per pass.
    assert_eq!(r.seen("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert!(r.headers.get("location").is_none());
    assert_eq!(found.served(), 1);

    // A route without a policy passes the redirect on.
    let r = send(&c, proxy.addr(), "shop.example", "/plain", &[])
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::FOUND);
    assert_eq!(r.headers["location"], "http://shop.example/new/cart#top");
    assert_eq!(found.served(), 2);

    // A 303 makes a POST a GET without its body; a 307 sends the body
    // again.
    let post = http1_with::<http_body_util::Full<bytes::Bytes>>();
    let posted = |path: &str, body: Vec<u8>| {
        let req = http::Request::post(format!("http://{}{path}", proxy.addr()))
            .header("host", "shop.example")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap();
        let post = &post;
        async move {
            let resp = tokio::time::timeout(REQUEST_BOUND, post.request(req))
                .await
                .expect("in time")
                .expect("response");
            let status = resp.status();
            let location = resp.headers().get("location").cloned();
            let body = http_body_util::BodyExt::collect(resp.into_body())
                .await
                .unwrap()
                .to_bytes();
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            (status, location, json)
        }
    };
    let (status, _, json) = posted("/see", b"hello".to_vec()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (&json["upstream"], &json["method"], &json["path"]),
        (&"shop".into(), &"GET".into(), &"/new/done".into())
    );
    assert_eq!(json["body_len"], 0);
    assert_eq!(json["headers"]["content-length"], serde_json::Value::Null);
    let (status, _, json) = posted("/temp", b"hello".to_vec()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (&json["method"], &json["path"]),
        (&"POST".into(), &"/new/post".into())
    );
    assert_eq!(json["body_len"], 5);
    assert_eq!(temp.served(), 1);
    // A body sent chunked is kept as it goes, and sent again.
    let chunked = http1_with::<Chunks>();
    let req = http::Request::post(format!("http://{}/temp", proxy.addr()))
        .header("host", "shop.example")
        .body(Chunks(10))
        .unwrap();
    let resp = tokio::time::timeout(REQUEST_BOUND, chunked.request(req))
        .await
        .expect("in time")
        .expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (&json["upstream"], &json["body_len"]),
        (&"shop".into(), &10_000.into())
    );
    // A body larger than the route lets the proxy keep: the same.
    let (status, _, _) = posted("/tiny", b"hello".to_vec()).await;
    assert_eq!(status, StatusCode::TEMPORARY_REDIRECT);
    // A body larger than the proxy keeps: the 307 goes to the client.
    let big = vec![b'x'; rauta_proxy::redirect::BODY_LIMIT + 1];
    let (status, location, _) = posted("/temp", big).await;
    assert_eq!(status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(location.unwrap(), "http://shop.example/new/post");

    // A loop ends after max_internal_redirects (3): four upstream answers,
    // the last one passed on.
    let r = send(&c, proxy.addr(), "shop.example", "/loop", &[])
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(looper.served(), 4);
    // http to https is not followed by default, whatever the client
    // claims its scheme is.
    for claim in [&[][..], &[("x-forwarded-proto", "https")][..]] {
        let r = send(&c, proxy.addr(), "shop.example", "/secure", claim)
            .await
            .unwrap();
        assert_eq!(r.status, StatusCode::FOUND);
        assert_eq!(r.headers["location"], "https://shop.example/new");
    }
    // A Location no route serves.
    let r = send(&c, proxy.addr(), "shop.example", "/lost", &[])
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::FOUND);
    assert_eq!(r.headers["location"], "http://nowhere.example/");

    let metrics = admin(&proxy, "/metrics").await;
    for (result, n) in [
        ("followed", 7),
        ("too_many_redirects", 1),
        ("unsafe_scheme", 2),
        ("body_too_large", 2),
        ("no_route", 1),
        ("request_incomplete", 0),
    ] {
        let line = format!("rauta_proxy_internal_redirects_total{{result=\"{result}\"}} {n}\n");
        assert!(metrics.contains(&line), "{line}in\n{metrics}");
    }
}

/// The request's scheme is the connection's (`http`: no TLS here): an
/// HTTP/2 request's `:scheme: https`, like an `x-forwarded-proto: https`,
/// does not lift `require_tls`.
#[tokio::test]
async fn a_client_cannot_claim_https() {
    let up = Upstream::new("up").spawn().await.unwrap();
    let yaml = format!(
        r#"
clusters:
  - {{name: up, endpoints: ["{}"]}}
routes:
  virtual_hosts:
    - name: secure
      domains: ["*"]
      require_tls: ALL
      routes: [{{name: s, match: {{prefix: /}}, action: {{cluster: up}}}}]
"#,
        up.addr()
    );
    let proxy = start(&yaml).await;
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.enforce_http(false);
    let h2: TestClient =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build(connector);
    let req = http::Request::get(format!("https://{}/x", proxy.addr()))
        .body(http_body_util::Empty::new())
        .unwrap();
    let resp = tokio::time::timeout(REQUEST_BOUND, h2.request(req))
        .await
        .expect("in time")
        .expect("response");
    assert_eq!(resp.version(), Version::HTTP_2);
    assert_eq!(resp.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(
        resp.headers()["location"],
        format!("https://{}/x", proxy.addr()).as_str()
    );
    let r = send(
        &http1(),
        proxy.addr(),
        "",
        "/x",
        &[
            ("x-forwarded-proto", "https"),
            ("x-forwarded-proto", "http"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(r.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(up.served(), 0);
}

/// `xff_num_trusted_hops`: behind a trusted proxy, its `x-forwarded-proto`
/// counts (for `require_tls`, and upstream) and the client's address is
/// the one it reported in `x-forwarded-for`; without it, neither.
#[tokio::test]
async fn trusted_proxies_in_front_report_the_scheme_and_the_client() {
    let up = Upstream::new("up").spawn().await.unwrap();
    let legacy = Upstream::new("legacy")
        .status(302)
        .header("location", "https://open.test/after")
        .spawn()
        .await
        .unwrap();
    let config = |hops: u32| {
        format!(
            r#"
xff_num_trusted_hops: {hops}
clusters:
  - {{name: up, endpoints: ["{}"]}}
  - {{name: legacy, endpoints: ["{}"]}}
routes:
  # (Overwritten: a pass after an internal redirect starts from the
  # request as it went, with the first pass's values, as in Envoy.)
  request_headers_to_add:
    - {{header: {{key: x-client, value: "%DOWNSTREAM_REMOTE_ADDRESS%"}}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}}
    - {{header: {{key: x-direct, value: "%DOWNSTREAM_DIRECT_REMOTE_ADDRESS%"}}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}}
  virtual_hosts:
    - name: open
      domains: ["open.test"]
      routes:
        - {{name: old, match: {{prefix: /old}}, action: {{cluster: legacy, internal_redirect_policy: {{}}}}}}
        - name: o
          match: {{prefix: /}}
          action: {{cluster: up, rate_limits: [{{actions: [{{remote_address: {{}}}}]}}]}}
          typed_per_filter_config:
            envoy.filters.http.local_ratelimit:
              stat_prefix: by_client
              token_bucket: {{max_tokens: 100, tokens_per_fill: 100, fill_interval: 3600s}}
              filter_enabled: {{default_value: {{numerator: 100}}}}
              filter_enforced: {{default_value: {{numerator: 100}}}}
              descriptors:
                - entries: [{{key: remote_address, value: 203.0.113.7}}]
                  token_bucket: {{max_tokens: 1, tokens_per_fill: 1, fill_interval: 3600s}}
    - name: secure
      domains: ["*"]
      require_tls: ALL
      routes: [{{name: s, match: {{prefix: /}}, action: {{cluster: up}}}}]
"#,
            up.addr(),
            legacy.addr()
        )
    };
    let c = http1();
    let lb = [
        ("x-forwarded-proto", "https"),
        ("x-forwarded-for", "198.51.100.1, 203.0.113.7"),
    ];
    let direct = |r: &Reply| {
        let d = r.seen("x-direct").unwrap();
        assert!(d.starts_with("127.0.0.1:") && !d.ends_with(":0"), "{d}");
    };
    let trusting = start(&config(1)).await;
    let r = send(&c, trusting.addr(), "", "/x", &lb).await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.seen("x-client").as_deref(), Some("203.0.113.7:0"));
    direct(&r);
    assert_eq!(r.seen("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(
        r.seen("x-forwarded-for").as_deref(),
        Some("198.51.100.1, 203.0.113.7, 127.0.0.1")
    );
    // No scheme said: the connection's. Two lines are one value, as
    // Envoy joins them, and `https,http` is not `https`.
    let r = send(&c, trusting.addr(), "", "/x", &lb[1..]).await.unwrap();
    assert_eq!(r.status, StatusCode::MOVED_PERMANENTLY);
    let two_lines = [
        ("x-forwarded-proto", "https"),
        ("x-forwarded-proto", "http"),
    ];
    let r = send(&c, trusting.addr(), "", "/x", &two_lines)
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::MOVED_PERMANENTLY);
    // A pass after an internal redirect keeps the client the first read
    // (the trusted `https` request may follow an `https` Location).
    let r = send(&c, trusting.addr(), "open.test", "/old", &lb)
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.json()["path"].as_str()),
        (StatusCode::OK, Some("/after"))
    );
    assert_eq!(r.seen("x-client").as_deref(), Some("203.0.113.7:0"));
    // That pass drew the trusted client's one token from the local rate
    // limit (its descriptor is the client's address): the next is refused.
    let r = send(&c, trusting.addr(), "open.test", "/x", &lb)
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    // Two hops trusted: the next address; one that is not an address
    // leaves the connection's.
    let two = start(&config(2)).await;
    let r = send(&c, two.addr(), "", "/x", &lb).await.unwrap();
    assert_eq!(r.seen("x-client").as_deref(), Some("198.51.100.1:0"));
    let r = send(
        &c,
        two.addr(),
        "",
        "/x",
        &[
            ("x-forwarded-proto", "https"),
            ("x-forwarded-for", "unknown, 203.0.113.7"),
        ],
    )
    .await
    .unwrap();
    assert!(r.seen("x-client").unwrap().starts_with("127.0.0.1:"));
    // No hop trusted (the default): neither counts.
    let wary = start(&config(0)).await;
    let r = send(&c, wary.addr(), "", "/x", &lb).await.unwrap();
    assert_eq!(r.status, StatusCode::MOVED_PERMANENTLY);
    let r = send(&c, wary.addr(), "open.test", "/x", &lb).await.unwrap();
    assert_eq!(r.seen("x-client"), r.seen("x-direct"));
    direct(&r);
    assert_eq!(r.seen("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(up.served(), 5);
}
