//! Real exposition output, with hostile names, checked by Prometheus'
//! `promtool check metrics`, plus structural checks of both formats.
//!
//! promtool comes from the Debian package `prometheus`, which
//! `scripts/setup.sh` installs (scripts/setup.d/stats.apt). When it is missing
//! this test fails; set `RAUTA_SKIP_PROMTOOL=1` to skip only the promtool run.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use rauta_stats::{Format, Registry, StatsConfig};

const ODD_NAMES: [&str; 8] = [
    "plain",
    "with \"quotes\"",
    "back\\slash\\",
    "new\nline",
    "unicode ☃ ルート ü",
    "",
    "{braces},commas=and\"=\\\"",
    "trailing\\",
];

fn registry() -> Registry {
    let r = Registry::new(StatsConfig::new().status_codes([200, 404, 503])).unwrap();
    for (i, name) in ODD_NAMES.iter().enumerate() {
        let route = r.route(name).unwrap();
        let vhost = r.virtual_host(name).unwrap();
        let cluster = r.cluster(name).unwrap();
        for k in 0..(i as u64 * 7) {
            let req = route.start();
            let up = cluster.start();
            req.upstream_latency(Duration::from_micros(100 * k + 1));
            up.finish_with_latency(503, Duration::from_micros(100 * k + 1));
            vhost.record_response(200);
            if k % 3 == 0 {
                req.timeout();
                cluster.record_upstream_connect_failure();
            }
            req.finish_with_latency(
                [200, 404, 302, 101, 999][k as usize % 5],
                Duration::from_millis(k),
            );
        }
        // One request still in flight.
        std::mem::forget(route.start());
    }
    r
}

fn find_promtool() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin".into(), "/usr/local/bin".into()])
        .map(|d| d.join("promtool"))
        .find(|p| p.is_file())
}

#[test]
fn promtool_accepts_prometheus_text() {
    let text = registry().render(Format::Prometheus);
    let Some(promtool) = find_promtool() else {
        if std::env::var("RAUTA_SKIP_PROMTOOL").as_deref() == Ok("1") {
            eprintln!("promtool not found; skipped because RAUTA_SKIP_PROMTOOL=1");
            return;
        }
        panic!(
            "promtool not found on PATH: run scripts/setup.sh (installs the Debian package \
             `prometheus`) or set RAUTA_SKIP_PROMTOOL=1"
        );
    };
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool check metrics failed ({}):\n{report}\n--- input ---\n{text}",
        out.status
    );
}

#[test]
fn promtool_rejects_broken_input() {
    // The check above can fail: promtool does object to bad text.
    let Some(promtool) = find_promtool() else {
        return;
    };
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"# TYPE x counter\nx{route=\"a\"b\"} 1\n")
        .unwrap();
    assert!(!child.wait_with_output().unwrap().status.success());
}

/// Undoes label value escaping; `None` on a bad escape.
fn unescape(v: &str) -> Option<String> {
    let mut out = String::new();
    let mut it = v.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next()? {
                '\\' => out.push('\\'),
                '"' => out.push('"'),
                'n' => out.push('\n'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// Parses `name{k="v",...} value` into its parts.
fn parse_sample(line: &str) -> (String, Vec<(String, String)>, String) {
    let brace = line.find('{').expect("labels");
    let name = line[..brace].to_string();
    let mut labels = Vec::new();
    let mut rest = &line[brace + 1..];
    loop {
        let eq = rest.find("=\"").expect("label =");
        let key = rest[..eq].to_string();
        rest = &rest[eq + 2..];
        let mut end = 0;
        let bytes = rest.as_bytes();
        while bytes[end] != b'"' {
            end += if bytes[end] == b'\\' { 2 } else { 1 };
        }
        labels.push((key, unescape(&rest[..end]).expect("valid escapes")));
        rest = &rest[end + 1..];
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else {
            rest = rest.strip_prefix("} ").expect("end of labels");
            break;
        }
    }
    (name, labels, rest.to_string())
}

#[test]
fn both_formats_round_trip_names_and_agree() {
    let r = registry();
    let prom = r.render(Format::Prometheus);
    let om = r.render(Format::OpenMetrics);
    // scripts/test.d/30-stats.sh feeds these to independent parsers.
    if let Some(dir) = std::env::var_os("RAUTA_STATS_DUMP_DIR") {
        let dir = std::path::Path::new(&dir);
        std::fs::write(dir.join("metrics.prom"), &prom).unwrap();
        std::fs::write(dir.join("metrics.om"), &om).unwrap();
        std::fs::write(dir.join("names.bin"), ODD_NAMES.join("\0")).unwrap();
    }
    assert!(om.ends_with("# EOF\n"));
    assert_eq!(om.matches("# EOF").count(), 1);
    assert!(!prom.contains("# EOF"));
    // Same samples in both; only the metadata lines differ.
    let samples = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(samples(&prom), samples(&om));
    assert!(om.contains("# TYPE rauta_route_requests counter\n"));
    assert!(prom.contains("# TYPE rauta_route_requests_total counter\n"));

    let mut seen_routes = std::collections::BTreeSet::new();
    for line in samples(&prom) {
        assert!(!line.is_empty());
        let (name, labels, value) = parse_sample(&line);
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        assert!(
            value == "NaN" || value.parse::<f64>().is_ok(),
            "bad value in {line:?}"
        );
        if name.starts_with("rauta_route_") {
            seen_routes.insert(labels[0].1.clone());
        }
    }
    let want: std::collections::BTreeSet<String> =
        ODD_NAMES.iter().map(|s| s.to_string()).collect();
    assert_eq!(seen_routes, want);
    // Every label line in a histogram ends in a +Inf bucket equal to _count.
    assert!(prom.contains("rauta_route_requests_total{route=\"with \\\"quotes\\\"\"} 8\n"));
    assert!(prom.contains("rauta_route_requests_active{route=\"new\\nline\"} 1\n"));
}
