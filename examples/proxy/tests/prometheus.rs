//! A real Prometheus server (Debian package `prometheus`), started on
//! loopback with a temporary configuration and data directory, scrapes the
//! admin `/metrics` and reports the target up. `RAUTA_SKIP_PROMETHEUS=1`
//! skips the test where the package cannot be installed.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use rauta_proxy::upstream::Upstream;

/// Kills and reaps the server however the test ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_admin_endpoint() {
    if std::env::var_os("RAUTA_SKIP_PROMETHEUS").is_some() {
        return;
    }
    let up = Upstream::new("up").spawn().await.unwrap();
    let yaml = format!(
        r#"
clusters: [{{name: up, endpoints: ["{}"]}}]
routes:
  virtual_hosts:
    - name: all
      domains: ["*"]
      routes: [{{name: r, match: {{prefix: /}}, action: {{cluster: up}}}}]
"#,
        up.addr()
    );
    let proxy = start(&yaml).await;
    get(&http1(), proxy.addr(), "x", "/").await;
    let admin = proxy.admin_addr().unwrap();

    let dir = TempDir::new("prometheus");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 1s}}\n\
             scrape_configs:\n  - job_name: rauta\n    static_configs: [{{targets: [\"{admin}\"]}}]\n"
        ),
    )
    .unwrap();
    let web = closed_port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={web}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus (Debian package prometheus; RAUTA_SKIP_PROMETHEUS=1 skips)");
    let _server = Server(child);

    let client = http1();
    let mut last = String::new();
    let end = tokio::time::Instant::now() + Duration::from_secs(90);
    let mut up = false;
    while !up && tokio::time::Instant::now() < end {
        if let Ok(r) = send(&client, web, "", "/api/v1/targets", &[]).await {
            let v: serde_json::Value =
                serde_json::from_str(&r.body).unwrap_or(serde_json::Value::Null);
            up = v["data"]["activeTargets"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t["health"] == "up"));
            last = r.body;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(up, "target never up; last answer: {last}");
}
