//! Registry reload and retention model, guards, and per-kind stats.

use std::sync::Arc;
use std::time::Duration;

use rauta_stats::{Format, Registry, StatsConfig, StatsErrorKind, StatsKind, StatusClass};

fn reload(r: &Registry, routes: &[&str]) -> rauta_stats::ReloadReport {
    let mut rl = r.reload();
    for name in routes {
        rl.route(name).unwrap();
    }
    rl.commit()
}

#[test]
fn same_name_keeps_counters_across_reloads() {
    let r = Registry::new(StatsConfig::new()).unwrap();
    let mut rl = r.reload();
    let a = rl.route("a").unwrap();
    rl.commit();
    for _ in 0..5 {
        a.start().finish(200);
    }
    let mut rl = r.reload();
    let a2 = rl.route("a").unwrap();
    rl.commit();
    assert!(Arc::ptr_eq(&a, &a2));
    assert_eq!(a2.snapshot().requests_total(), 5);
    assert_eq!(a2.snapshot().responses(StatusClass::Success), 5);
}

#[test]
fn retention_counts_reloads() {
    let r = Registry::new(StatsConfig::new().retention_reloads(2)).unwrap();
    let rep = reload(&r, &["a", "b", "c"]);
    assert_eq!(
        (rep.generation, rep.live, rep.retired, rep.dropped),
        (1, 3, 0, 0)
    );
    let b = r.route("b").unwrap();
    b.start().finish(500);

    // b gone: retired for two reloads, still exported.
    let rep = reload(&r, &["a", "c"]);
    assert_eq!((rep.live, rep.retired, rep.dropped), (2, 1, 0));
    let rep = reload(&r, &["a", "c"]);
    assert_eq!((rep.live, rep.retired, rep.dropped), (2, 1, 0));
    assert!(r
        .render(Format::Prometheus)
        .contains("rauta_route_requests_total{route=\"b\"} 1\n"));
    // Third reload without b: dropped.
    let rep = reload(&r, &["a", "c"]);
    assert_eq!((rep.live, rep.retired, rep.dropped), (2, 0, 1));
    assert_eq!(r.names(StatsKind::Route), vec!["a", "c"]);
    assert!(!r.render(Format::Prometheus).contains("route=\"b\""));
    // Back again: fresh counters.
    reload(&r, &["a", "b", "c"]);
    assert_eq!(r.route("b").unwrap().snapshot().requests_total(), 0);
}

#[test]
fn retired_name_that_returns_within_retention_keeps_counters() {
    let r = Registry::new(StatsConfig::new().retention_reloads(1)).unwrap();
    reload(&r, &["a"]);
    r.route("a").unwrap().start().finish(200);
    reload(&r, &[]);
    reload(&r, &["a"]);
    assert_eq!(r.route("a").unwrap().snapshot().requests_total(), 1);
}

#[test]
fn zero_retention_drops_at_once() {
    let r = Registry::new(StatsConfig::new().retention_reloads(0)).unwrap();
    reload(&r, &["a", "b"]);
    let rep = reload(&r, &["a"]);
    assert_eq!((rep.live, rep.retired, rep.dropped), (1, 0, 1));
    let a = r.route("a").unwrap();
    let rep = reload(&r, &[]);
    assert_eq!(rep.dropped, 1);
    assert!(r.is_empty());
    // A handle kept by an in-flight request still works, detached.
    a.start().finish(200);
    assert_eq!(a.snapshot().requests_total(), 1);
    assert!(!r.render(Format::Prometheus).contains("route=\"a\""));
}

#[test]
fn memory_stays_bounded_under_name_churn() {
    let r = Registry::new(StatsConfig::new().retention_reloads(1_000).max_retired(10)).unwrap();
    for g in 0..100 {
        let names: Vec<String> = (0..5).map(|i| format!("r{g}-{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let rep = reload(&r, &refs);
        assert!(rep.retired <= 10);
        assert!(r.len() <= 15, "len {} at reload {g}", r.len());
    }
    // The newest retired names are the ones kept.
    let names = r.names(StatsKind::Route);
    assert!(names.contains(&"r98-0".to_string()));
    assert!(!names.contains(&"r90-0".to_string()));
}

#[test]
fn max_stats_is_a_typed_error() {
    let r = Registry::new(StatsConfig::new().max_stats(3)).unwrap();
    r.route("a").unwrap();
    r.virtual_host("a").unwrap();
    r.cluster("a").unwrap();
    // Existing names are still found.
    r.route("a").unwrap();
    let err = r.route("b").unwrap_err();
    assert_eq!(err.kind(), &StatsErrorKind::TooManyStats(3));
    assert!(err.to_string().contains("max_stats"));
}

#[test]
fn abandoned_reload_changes_nothing_but_ages_its_names() {
    let r = Registry::new(StatsConfig::new().retention_reloads(1)).unwrap();
    reload(&r, &["a"]);
    {
        let mut rl = r.reload();
        rl.route("a").unwrap();
        rl.route("new").unwrap();
        // dropped without commit
    }
    assert_eq!(r.generation(), 1);
    let rep = reload(&r, &["a"]);
    assert_eq!((rep.live, rep.retired), (1, 1));
    let rep = reload(&r, &["a"]);
    assert_eq!((rep.live, rep.retired, rep.dropped), (1, 0, 1));
}

#[test]
fn config_errors() {
    let bad = [
        (
            StatsConfig::new().status_codes([99]),
            StatsErrorKind::InvalidStatusCode(99),
        ),
        (
            StatsConfig::new().status_codes([1000]),
            StatsErrorKind::InvalidStatusCode(1000),
        ),
        (
            StatsConfig::new().status_codes(100..200),
            StatsErrorKind::TooManyStatusCodes(100),
        ),
    ];
    for (cfg, want) in bad {
        assert_eq!(Registry::new(cfg).unwrap_err().kind(), &want);
    }
    for b in [
        vec![],
        vec![Duration::from_millis(2), Duration::from_millis(1)],
        vec![Duration::from_millis(1), Duration::from_millis(1)],
        vec![Duration::from_nanos(10)],
    ] {
        let e = Registry::new(StatsConfig::new().latency_buckets(b)).unwrap_err();
        assert!(
            matches!(e.kind(), StatsErrorKind::InvalidLatencyBuckets(_)),
            "{e}"
        );
    }
}

#[test]
fn guard_decrements_on_unwind_and_across_threads() {
    let r = Registry::new(StatsConfig::new()).unwrap();
    let s = r.route("r").unwrap();
    let s2 = Arc::clone(&s);
    let res = std::thread::spawn(move || {
        let _g = s2.start_owned();
        panic!("boom");
    })
    .join();
    assert!(res.is_err());
    let g = s.start_owned();
    assert_eq!(s.snapshot().requests_active(), 1);
    std::thread::spawn(move || drop(g)).join().unwrap();
    let snap = s.snapshot();
    assert_eq!(snap.requests_active(), 0);
    assert_eq!(snap.requests_total(), 2);
    assert_eq!(
        snap.request_latency().count(),
        0,
        "no latency for unfinished requests"
    );
}

#[test]
fn responses_timeouts_failures_and_latency() {
    let r = Registry::new(StatsConfig::new().status_codes([404, 200])).unwrap();
    let s = r.cluster("c").unwrap();
    for code in [101, 200, 200, 302, 404, 404, 418, 500, 503, 0, 600] {
        s.record_response(code);
    }
    s.record_timeout();
    s.record_upstream_connect_failure();
    s.record_upstream_connect_failure();
    s.record_upstream_latency(Duration::from_millis(12));
    let snap = s.snapshot();
    let classes: Vec<u64> = StatusClass::ALL
        .iter()
        .map(|&c| snap.responses(c))
        .collect();
    assert_eq!(classes, vec![1, 2, 1, 3, 2, 2]);
    assert_eq!(snap.responses_by_code(404), Some(2));
    assert_eq!(snap.responses_by_code(200), Some(2));
    assert_eq!(snap.responses_by_code(503), None);
    assert_eq!(snap.timeouts(), 1);
    assert_eq!(snap.upstream_connect_failures(), 2);
    assert_eq!(snap.upstream_latency().max(), Some(12_000_000));
    assert_eq!(s.kind(), StatsKind::Cluster);
    let text = r.render(Format::Prometheus);
    assert!(text.contains("rauta_cluster_responses_total{cluster=\"c\",class=\"other\"} 2\n"));
    assert!(text.contains("rauta_cluster_responses_by_code_total{cluster=\"c\",code=\"200\"} 2\n"));
    assert!(text.contains("rauta_cluster_upstream_connect_failures_total{cluster=\"c\"} 2\n"));
    assert!(text.contains(
        "rauta_cluster_upstream_duration_seconds_bucket{cluster=\"c\",le=\"0.025\"} 1\n"
    ));
    assert!(text.contains(
        "rauta_cluster_upstream_duration_quantile_seconds{cluster=\"c\",quantile=\"1\"} 0.012\n"
    ));
}

#[test]
fn a_request_started_at_a_given_time_measures_from_it() {
    let r = Registry::new(StatsConfig::new()).unwrap();
    let s = r.route("r").unwrap();
    let earlier = std::time::Instant::now()
        .checked_sub(Duration::from_secs(5))
        .unwrap();
    let active = s.start_at(earlier);
    assert_eq!(active.started(), earlier);
    assert_eq!(s.snapshot().requests_active(), 1);
    active.finish(200);
    let snap = s.snapshot();
    assert_eq!(snap.requests_active(), 0);
    assert_eq!(snap.requests_total(), 1);
    assert!(snap.request_latency().max().unwrap() >= 5_000_000_000);
}

#[test]
fn quantile_view_can_be_turned_off() {
    let r = Registry::new(StatsConfig::new().quantiles(false)).unwrap();
    r.virtual_host("v").unwrap();
    let text = r.render(Format::OpenMetrics);
    assert!(!text.contains("quantile"));
    assert!(text.contains("rauta_vhost_requests_total{virtual_host=\"v\"} 0\n"));
}

#[test]
fn memory_figures_are_reported() {
    let r = Registry::new(StatsConfig::new()).unwrap();
    let s = r.route("r").unwrap();
    let h = rauta_stats::Histogram::new().memory_bytes();
    assert!(h >= 1920 * 8, "{h}");
    assert!(s.memory_bytes() > 2 * 1920 * 8);
    assert!(s.memory_bytes() < 2 * h + 4096);
}

/// Seconds text of a nanosecond value, as the exposition writes it.
fn secs(ns: u128) -> String {
    let frac = format!("{:09}", ns % 1_000_000_000);
    let frac = frac.trim_end_matches('0');
    format!(
        "{}.{}",
        ns / 1_000_000_000,
        if frac.is_empty() { "0" } else { frac }
    )
}

#[test]
fn exposition_matches_snapshots() {
    let bounds = [
        Duration::from_micros(100),
        Duration::from_millis(1),
        Duration::from_millis(10),
        Duration::from_millis(100),
    ];
    let r = Registry::new(StatsConfig::new().latency_buckets(bounds)).unwrap();
    let mut x = 7u64;
    for route in 0..50u64 {
        let s = r.route(&format!("r{route}")).unwrap();
        for _ in 0..(route * 3) {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let ns = (x >> 40) % 200_000_000;
            s.record_request_latency(Duration::from_nanos(ns));
            s.record_upstream_latency(Duration::from_nanos(ns / 3));
        }
    }
    let text = r.render(Format::Prometheus);
    let value = |line_start: &str| -> String {
        let line = text
            .lines()
            .find(|l| l.starts_with(line_start))
            .unwrap_or_else(|| panic!("no line {line_start}"));
        line.rsplit(' ').next().unwrap().to_string()
    };
    for route in 0..50u64 {
        let s = r.route(&format!("r{route}")).unwrap().snapshot();
        for (base, h) in [
            ("request", s.request_latency()),
            ("upstream", s.upstream_latency()),
        ] {
            let name = format!("rauta_route_{base}_duration_seconds");
            let l = format!("route=\"r{route}\"");
            for b in bounds {
                let le = secs(b.as_nanos());
                let want = h.count_le(b.as_nanos() as u64).to_string();
                assert_eq!(value(&format!("{name}_bucket{{{l},le=\"{le}\"}} ")), want);
            }
            let count = h.count().to_string();
            assert_eq!(value(&format!("{name}_bucket{{{l},le=\"+Inf\"}} ")), count);
            assert_eq!(value(&format!("{name}_count{{{l}}} ")), count);
            assert_eq!(value(&format!("{name}_sum{{{l}}} ")), secs(h.sum()));
            let qname = format!("rauta_route_{base}_duration_quantile_seconds");
            for (q, qs) in [
                (0.5, "0.5"),
                (0.9, "0.9"),
                (0.99, "0.99"),
                (0.999, "0.999"),
                (1.0, "1"),
            ] {
                let want = h
                    .quantile(q)
                    .map_or("NaN".to_string(), |v| secs(u128::from(v)));
                assert_eq!(value(&format!("{qname}{{{l},quantile=\"{qs}\"}} ")), want);
            }
        }
    }
}

#[test]
fn a_committed_reload_exports_the_stats_it_handed_out() {
    // The reload's "x" is dropped by another reload and made again before
    // the first commits: the first reload's handle is the one its
    // configuration counts into, so it is the one exported.
    let r = Registry::new(StatsConfig::new().retention_reloads(0)).unwrap();
    let mut first = r.reload();
    let x1 = first.route("x").unwrap();
    reload(&r, &[]);
    let x2 = r.route("x").unwrap();
    assert!(!Arc::ptr_eq(&x1, &x2));
    first.commit();
    x1.start().finish(200);
    let text = r.render(Format::Prometheus);
    let line = text
        .lines()
        .find(|l| l.starts_with("rauta_route_requests_total{route=\"x\"}"))
        .expect("x is exported");
    assert!(line.ends_with(" 1"), "{line}");
}
