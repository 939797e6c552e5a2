//! The `rauta-proxy` binary: `--config` with reload on SIGHUP, and `--demo`.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use http::StatusCode;
use rauta_proxy::upstream::Upstream;

/// Starts the binary and reads the listener address from its first line.
fn spawn(args: &[&str]) -> (Proc, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rauta-proxy"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("rauta-proxy binary");
    let stdout = child.stdout.take().unwrap();
    let proc = Proc(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http://"))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    (proc, addr)
}

fn config(cluster: &str, a: SocketAddr, b: SocketAddr) -> String {
    format!(
        r#"
clusters: [{{name: a, endpoints: ["{a}"]}}, {{name: b, endpoints: ["{b}"]}}]
routes:
  virtual_hosts:
    - name: all
      domains: ["*"]
      routes: [{{name: r, match: {{prefix: /}}, action: {{cluster: {cluster}}}}}]
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_serves_a_file_and_reloads_on_sighup() {
    let ua = Upstream::new("a").spawn().await.unwrap();
    let ub = Upstream::new("b").spawn().await.unwrap();
    let dir = TempDir::new("bin");
    let path = dir.path().join("proxy.yaml");
    std::fs::write(&path, config("a", ua.addr(), ub.addr())).unwrap();
    let p = path.to_str().unwrap();
    let (proc, addr) = spawn(&["--config", p, "--listen", "127.0.0.1:0", "--admin", "none"]);
    let c = http1();
    assert_eq!(get(&c, addr, "x", "/").await.upstream(), "a");

    std::fs::write(&path, config("b", ua.addr(), ub.addr())).unwrap();
    let pid = proc.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    let switched = eventually(Duration::from_secs(20), || {
        let c = c.clone();
        async move { get(&c, addr, "x", "/").await.upstream() == "b" }
    })
    .await;
    assert!(switched, "no reload after SIGHUP");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_its_routes() {
    let (_proc, addr) = spawn(&["--demo", "--listen", "127.0.0.1:0", "--admin", "none"]);
    let c = http1();
    let r = get(&c, addr, "", "/hello").await;
    assert_eq!((r.status, r.upstream().as_str()), (StatusCode::OK, "blue"));
    assert_eq!(get(&c, addr, "", "/docs/intro").await.upstream(), "green");
    let r = get(&c, addr, "", "/healthz").await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "ok\n"));
    let r = get(&c, addr, "", "/old-docs/intro").await;
    assert_eq!(r.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(r.headers["location"], format!("http://{addr}/docs/intro"));
    // legacy's 302 is followed inside the proxy, to the docs route.
    let r = get(&c, addr, "", "/legacy/page").await;
    assert_eq!((r.status, r.upstream().as_str()), (StatusCode::OK, "green"));
    assert_eq!(r.json()["path"], "/docs/moved");
    assert_eq!(r.seen("x-section").as_deref(), Some("docs"));
    let r = send(
        &c,
        addr,
        "api.localhost",
        "/users/1",
        &[("x-user", "alice")],
    )
    .await
    .unwrap();
    let owner = r.upstream();
    for _ in 0..10 {
        let r = send(
            &c,
            addr,
            "api.localhost",
            "/users/1",
            &[("x-user", "alice")],
        )
        .await
        .unwrap();
        assert_eq!(r.upstream(), owner);
    }
    let r = get(&c, addr, "api.localhost", "/v2/items").await;
    assert_eq!(
        (r.upstream().as_str(), &r.json()["path"]),
        ("green", &serde_json::json!("/items"))
    );
    let r = get(&h2c(), addr, "", "/hello").await;
    assert_eq!(r.version, http::Version::HTTP_2);
    // The local rate limit on /login: three tokens, then 429 (the next
    // token is a minute away).
    for left in ["2", "1", "0"] {
        let r = get(&c, addr, "api.localhost", "/login").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.headers["x-ratelimit-remaining"], left);
    }
    let r = get(&c, addr, "api.localhost", "/login").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (StatusCode::TOO_MANY_REQUESTS, "local_rate_limited")
    );
    // CORS on the api virtual host.
    let r = send_method(
        &c,
        addr,
        "OPTIONS",
        "api.localhost",
        "/search",
        &[
            ("origin", "https://app.localhost"),
            ("access-control-request-method", "POST"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["access-control-allow-methods"], "GET, POST");
    let r = send(
        &c,
        addr,
        "api.localhost",
        "/users/1",
        &[("origin", "https://app.localhost")],
    )
    .await
    .unwrap();
    assert_eq!(
        r.headers["access-control-allow-origin"],
        "https://app.localhost"
    );
}
