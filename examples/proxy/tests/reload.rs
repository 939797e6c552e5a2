//! Hot reload: 200 swaps (valid and invalid alternating) under a bounded
//! client load; in-flight requests keep their configuration; the file
//! watcher picks up changes and rejects bad files; unchanged local rate
//! limits keep their tokens.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use http::StatusCode;
use rauta_proxy::upstream::Upstream;
use rauta_proxy::Options;

/// A valid configuration: generation `gen` routes `/` to `a` or `b` and
/// tags responses with `x-gen`. Cluster `bad` exists but no valid
/// configuration routes to it.
fn valid(gen: u32, a: &str, b: &str, bad: &str, slow: &str) -> String {
    let target = if gen.is_multiple_of(2) { "a" } else { "b" };
    format!(
        r#"
clusters:
  - {{name: a, endpoints: ["{a}"]}}
  - {{name: b, endpoints: ["{b}"]}}
  - {{name: bad, endpoints: ["{bad}"]}}
  - {{name: slow, endpoints: ["{slow}"]}}
routes:
  response_headers_to_add: [{{header: {{key: x-gen, value: "{gen}"}}}}]
  virtual_hosts:
    - name: all
      domains: ["*"]
      routes:
        - {{name: slow, match: {{prefix: /slow}}, action: {{cluster: slow}}}}
        - {{name: main, match: {{prefix: /}}, action: {{cluster: {target}}}}}
"#
    )
}

/// An invalid configuration that, were it ever served, would send traffic
/// to `bad` with `x-gen: invalid`. Three kinds of fault, in turn.
fn invalid(n: u32, a: &str, b: &str, bad: &str, slow: &str) -> String {
    let good = valid(0, a, b, bad, slow)
        .replace("cluster: a}", "cluster: bad}")
        .replace("value: \"0\"", "value: invalid");
    match n % 3 {
        // A regex that does not compile.
        0 => good.replace(
            "        - {name: slow,",
            "        - {name: broken, match: {regex: \"/(+\"}, action: {cluster: a}}\n        - {name: slow,",
        ),
        // A route to a cluster that does not exist.
        1 => good.replace("action: {cluster: slow}", "action: {cluster: nowhere}"),
        // Not even YAML.
        _ => format!("{good}\n  - [unclosed"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_reloads_under_load_fail_no_request() {
    let ua = Upstream::new("a").spawn().await.unwrap();
    let ub = Upstream::new("b").spawn().await.unwrap();
    let ubad = Upstream::new("bad").spawn().await.unwrap();
    let uslow = Upstream::new("slow").spawn().await.unwrap();
    let (a, b, bad, slow) = (
        ua.addr().to_string(),
        ub.addr().to_string(),
        ubad.addr().to_string(),
        uslow.addr().to_string(),
    );
    let proxy = start(&valid(0, &a, &b, &bad, &slow)).await;
    let addr = proxy.addr();
    let state = Arc::clone(proxy.state());

    // Clients: two HTTP/1.1, two h2c; each bounded by count and time.
    let done = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for client in [http1(), h2c(), http1(), h2c()] {
        let done = Arc::clone(&done);
        clients.push(tokio::spawn(async move {
            let end = tokio::time::Instant::now() + Duration::from_secs(120);
            let (mut ok, mut errors) = (0u64, Vec::new());
            while !done.load(Ordering::Relaxed) && ok < 200_000 && tokio::time::Instant::now() < end
            {
                match send(&client, addr, "x", "/", &[]).await {
                    Ok(r)
                        if r.status == StatusCode::OK
                            && matches!(r.upstream().as_str(), "a" | "b")
                            && r.headers.get("x-gen").is_some_and(|g| g != "invalid") =>
                    {
                        ok += 1
                    }
                    Ok(r) => errors.push(format!("{} {:?} {}", r.status, r.headers, r.body)),
                    Err(e) => errors.push(e),
                }
            }
            (ok, errors)
        }));
    }

    let checker = http1();
    let mut rejected = 0;
    for i in 0..200u32 {
        let gen = i / 2 + 1;
        if i.is_multiple_of(2) {
            let v = state
                .reload_text(&valid(gen, &a, &b, &bad, &slow))
                .expect("valid config");
            // The new configuration serves the very next request.
            let r = get(&checker, addr, "x", "/").await;
            assert_eq!(r.headers["x-gen"], gen.to_string().as_str(), "after {v}");
            let want = if gen.is_multiple_of(2) { "a" } else { "b" };
            assert_eq!(r.upstream(), want);
        } else {
            let before = state.version();
            let err = state.reload_text(&invalid(gen, &a, &b, &bad, &slow));
            assert!(err.is_err(), "invalid config {i} accepted");
            assert_eq!(state.version(), before);
            rejected += 1;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    done.store(true, Ordering::Relaxed);

    let mut total = 0;
    for c in clients {
        let (ok, errors) = c.await.unwrap();
        assert!(
            errors.is_empty(),
            "{} failed requests: {:?}",
            errors.len(),
            &errors[..errors.len().min(5)]
        );
        assert!(ok > 0);
        total += ok;
    }
    eprintln!("{total} requests answered during 200 reloads");
    assert_eq!(ubad.served(), 0, "an invalid configuration routed traffic");
    assert_eq!(state.reload_counts(), (100, rejected));
    assert_eq!(state.version().0, 101);
    // Stats by route name survived every reload.
    let m = admin(&proxy, "/metrics").await;
    let line = m
        .lines()
        .find(|l| l.starts_with("rauta_route_requests_total{route=\"main\"}"))
        .unwrap();
    let counted: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(counted >= total + 100, "{line} < {total} + 100");
    assert!(m.contains("rauta_proxy_reloads_total{result=\"rejected\"} 100\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_requests_finish_on_their_configuration() {
    let ua = Upstream::new("a").spawn().await.unwrap();
    let uslow = Upstream::new("slow")
        .delay(Duration::from_millis(300))
        .spawn()
        .await
        .unwrap();
    let (a, slow) = (ua.addr().to_string(), uslow.addr().to_string());
    let proxy = start(&valid(0, &a, &a, &a, &slow)).await;
    let addr = proxy.addr();
    let in_flight = tokio::spawn(async move { get(&http1(), addr, "x", "/slow").await });
    // Once the upstream has the request, the proxy has routed it.
    assert!(eventually(Duration::from_secs(20), || async { uslow.served() == 1 }).await);
    proxy
        .state()
        .reload_text(&valid(1, &a, &a, &a, &slow))
        .unwrap();
    let r = in_flight.await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["x-gen"], "0");
    let r = get(&http1(), addr, "x", "/slow").await;
    assert_eq!(r.headers["x-gen"], "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watched_file_is_reloaded_and_bad_files_are_rejected() {
    let ua = Upstream::new("a").spawn().await.unwrap();
    let ub = Upstream::new("b").spawn().await.unwrap();
    let (a, b) = (ua.addr().to_string(), ub.addr().to_string());
    let dir = TempDir::new("watch");
    let path = dir.path().join("proxy.yaml");
    std::fs::write(&path, valid(0, &a, &b, &a, &a)).unwrap();
    let options = Options {
        watch: Some(path.clone()),
        watch_interval: Duration::from_millis(50),
        ..options()
    };
    let proxy = start_with(&std::fs::read_to_string(&path).unwrap(), options).await;
    let c = http1();
    assert_eq!(get(&c, proxy.addr(), "x", "/").await.upstream(), "a");

    std::fs::write(&path, valid(1, &a, &b, &a, &a)).unwrap();
    let state = Arc::clone(proxy.state());
    assert!(
        eventually(Duration::from_secs(20), || async { state.version().0 == 2 }).await,
        "file change not picked up"
    );
    assert_eq!(get(&c, proxy.addr(), "x", "/").await.upstream(), "b");

    std::fs::write(&path, invalid(0, &a, &b, &a, &a)).unwrap();
    assert!(
        eventually(Duration::from_secs(20), || async {
            state.reload_counts().1 == 1
        })
        .await,
        "bad file not seen"
    );
    assert_eq!(state.version().0, 2);
    let r = get(&c, proxy.addr(), "x", "/").await;
    assert_eq!((r.status, r.upstream().as_str()), (StatusCode::OK, "b"));
    let config: serde_json::Value = serde_json::from_str(&admin(&proxy, "/config").await).unwrap();
    assert!(
        config["last_error"]
            .as_str()
            .unwrap()
            .contains("invalid regex"),
        "{config}"
    );
}

/// A reload keeps a local rate limit's spent tokens (and its counts) when
/// its place and configuration are unchanged; a changed limit starts full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_does_not_refill_unchanged_local_rate_limits() {
    let ua = Upstream::new("a").spawn().await.unwrap();
    let config = |tokens: u32, tag: &str| {
        format!(
            r#"
clusters:
  - {{name: a, endpoints: ["{}"]}}
routes:
  virtual_hosts:
    - name: all
      domains: ["*"]
      routes:
        - name: login
          match: {{prefix: /}}
          action: {{cluster: a}}
          response_headers_to_add: [{{header: {{key: x-tag, value: "{tag}"}}}}]
          typed_per_filter_config:
            envoy.filters.http.local_ratelimit:
              stat_prefix: login
              token_bucket: {{max_tokens: {tokens}, fill_interval: 3600s}}
              filter_enabled: {{default_value: {{numerator: 100}}}}
              filter_enforced: {{default_value: {{numerator: 100}}}}
"#,
            ua.addr()
        )
    };
    let proxy = start(&config(1, "one")).await;
    let (c, addr) = (http1(), proxy.addr());
    assert_eq!(get(&c, addr, "x", "/").await.status, StatusCode::OK);
    assert_eq!(
        get(&c, addr, "x", "/").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another route edit, the same limit: still spent.
    proxy.state().reload_text(&config(1, "two")).unwrap();
    let r = get(&c, addr, "x", "/").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers["x-tag"], "two");
    let m = admin(&proxy, "/metrics").await;
    assert!(
        m.contains("rauta_proxy_local_rate_limit_total{stat_prefix=\"login\",result=\"ok\"} 1\n")
            && m.contains(
                "rauta_proxy_local_rate_limit_total{stat_prefix=\"login\",result=\"enforced\"} 2\n"
            ),
        "{m}"
    );
    // The limit changed: a full bucket of two.
    proxy.state().reload_text(&config(2, "three")).unwrap();
    assert_eq!(get(&c, addr, "x", "/").await.status, StatusCode::OK);
    assert_eq!(get(&c, addr, "x", "/").await.status, StatusCode::OK);
    assert_eq!(
        get(&c, addr, "x", "/").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}
