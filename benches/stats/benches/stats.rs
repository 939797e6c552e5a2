// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

//! rauta-stats against `prometheus` (tikv, 0.14) and `metrics` 0.24 with
//! `metrics-exporter-prometheus` 0.18, in the same run.
//!
//! - `counter_inc/{1,2}_threads`: one increment of one shared counter; with 2
//!   threads, the time per iteration is the wall time while each of the two
//!   threads does one increment.
//! - `histogram_record/{1,2}_threads`: one latency observation (log-uniform
//!   10 µs .. 1 s), same two shapes.
//! - `render_10k_routes`: exposition text of 10,000 routes' stats.

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use metrics::{Key, Label, Metadata, Recorder};
use metrics_exporter_prometheus::PrometheusBuilder;

const VALUES: usize = 1024;

/// Latencies in ns, log-uniform over 10 µs .. 1 s, from a fixed LCG.
fn latencies() -> Vec<u64> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    (0..VALUES)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = (x >> 11) as f64 / (1u64 << 53) as f64;
            (1e4 * (1e5f64).powf(u)) as u64
        })
        .collect()
}

/// Runs `op(i)` `iters` times on each of two threads started together;
/// returns the wall time.
fn two_threads<F: Fn(usize) + Sync>(iters: u64, op: F) -> Duration {
    let barrier = Barrier::new(3);
    std::thread::scope(|s| {
        for t in 0..2usize {
            let (barrier, op) = (&barrier, &op);
            s.spawn(move || {
                barrier.wait();
                for i in 0..iters as usize {
                    op(i.wrapping_add(t * 512));
                }
            });
        }
        barrier.wait();
        let start = Instant::now();
        // Scope end joins both threads.
        start
    })
    .elapsed()
}

fn metadata() -> Metadata<'static> {
    Metadata::new("bench", metrics::Level::INFO, Some("bench"))
}

fn counters(c: &mut Criterion) {
    let rauta = rauta_stats::Counter::new();
    let prom = prometheus::IntCounter::new("c_total", "help").unwrap();
    let recorder = PrometheusBuilder::new().build_recorder();
    let met = recorder.register_counter(&Key::from_name("c_total"), &metadata());

    let mut g = c.benchmark_group("counter_inc");
    g.bench_function(BenchmarkId::new("rauta", "1_thread"), |b| {
        b.iter(|| black_box(&rauta).inc())
    });
    g.bench_function(BenchmarkId::new("prometheus", "1_thread"), |b| {
        b.iter(|| black_box(&prom).inc())
    });
    g.bench_function(BenchmarkId::new("metrics", "1_thread"), |b| {
        b.iter(|| black_box(&met).increment(1))
    });
    g.bench_function(BenchmarkId::new("rauta", "2_threads"), |b| {
        b.iter_custom(|n| two_threads(n, |_| black_box(&rauta).inc()))
    });
    g.bench_function(BenchmarkId::new("prometheus", "2_threads"), |b| {
        b.iter_custom(|n| two_threads(n, |_| black_box(&prom).inc()))
    });
    g.bench_function(BenchmarkId::new("metrics", "2_threads"), |b| {
        b.iter_custom(|n| two_threads(n, |_| black_box(&met).increment(1)))
    });
    g.finish();
    // Keep the counters observable (a filtered run may not have touched them).
    black_box((rauta.get(), prom.get()));
}

fn histograms(c: &mut Criterion) {
    let ns = latencies();
    let secs: Vec<f64> = ns.iter().map(|&v| v as f64 / 1e9).collect();
    let rauta = rauta_stats::Histogram::new();
    let prom =
        prometheus::Histogram::with_opts(prometheus::HistogramOpts::new("h_seconds", "help"))
            .unwrap();
    let recorder = PrometheusBuilder::new().build_recorder();
    let met = recorder.register_histogram(&Key::from_name("h_seconds"), &metadata());

    let mut g = c.benchmark_group("histogram_record");
    let mut i = 0usize;
    g.bench_function(BenchmarkId::new("rauta", "1_thread"), |b| {
        b.iter(|| {
            i = (i + 1) % VALUES;
            black_box(&rauta).record(ns[i]);
        })
    });
    g.bench_function(BenchmarkId::new("prometheus", "1_thread"), |b| {
        b.iter(|| {
            i = (i + 1) % VALUES;
            black_box(&prom).observe(secs[i]);
        })
    });
    g.bench_function(BenchmarkId::new("metrics", "1_thread"), |b| {
        b.iter(|| {
            i = (i + 1) % VALUES;
            black_box(&met).record(secs[i]);
        })
    });
    g.bench_function(BenchmarkId::new("rauta", "2_threads"), |b| {
        b.iter_custom(|n| two_threads(n, |k| black_box(&rauta).record(ns[k % VALUES])))
    });
    g.bench_function(BenchmarkId::new("prometheus", "2_threads"), |b| {
        b.iter_custom(|n| two_threads(n, |k| black_box(&prom).observe(secs[k % VALUES])))
    });
    g.bench_function(BenchmarkId::new("metrics", "2_threads"), |b| {
        // The exporter buffers raw samples until a render; they are drained
        // after the group (draining inside the timing loop would starve
        // criterion's warm-up and leave it with tiny iteration counts).
        b.iter_custom(|n| two_threads(n, |k| black_box(&met).record(secs[k % VALUES])))
    });
    g.finish();
    let _ = recorder.handle().render();
}

const ROUTES: usize = 10_000;

/// 10,000 routes, 8 requests each, recorded by two threads (4 each), as a
/// proxy on a 2-CPU machine would.
fn rauta_stats_registry(names: &[String], ns: &[u64], quantiles: bool) -> rauta_stats::Registry {
    let registry =
        rauta_stats::Registry::new(rauta_stats::StatsConfig::new().quantiles(quantiles)).unwrap();
    let mut rl = registry.reload();
    let stats: Vec<_> = names.iter().map(|n| rl.route(n).unwrap()).collect();
    rl.commit();
    std::thread::scope(|sc| {
        for t in 0..2 {
            let stats = &stats;
            sc.spawn(move || {
                for (i, s) in stats.iter().enumerate() {
                    for k in 4 * t..4 * t + 4 {
                        let req = s.start();
                        req.upstream_latency(Duration::from_nanos(ns[(i + k) % VALUES] / 2));
                        req.finish_with_latency(200, Duration::from_nanos(ns[(i + k) % VALUES]));
                    }
                }
            });
        }
    });
    registry
}
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

fn render(c: &mut Criterion) {
    let ns = latencies();
    let names: Vec<String> = (0..ROUTES).map(|i| format!("route-{i:05}")).collect();

    // rauta: every family of RequestStats, histograms and quantile view.
    let registry = rauta_stats_registry(&names, &ns, true);

    // prometheus: the same counters, gauge and two histograms (no quantiles).
    let preg = prometheus::Registry::new();
    let vec_c = |n: &str, labels: &[&str]| {
        let v = prometheus::IntCounterVec::new(prometheus::Opts::new(n, "help"), labels).unwrap();
        preg.register(Box::new(v.clone())).unwrap();
        v
    };
    let requests = vec_c("rauta_route_requests_total", &["route"]);
    let responses = vec_c("rauta_route_responses_total", &["route", "class"]);
    let timeouts = vec_c("rauta_route_timeouts_total", &["route"]);
    let failures = vec_c("rauta_route_upstream_connect_failures_total", &["route"]);
    let active = prometheus::IntGaugeVec::new(
        prometheus::Opts::new("rauta_route_requests_active", "help"),
        &["route"],
    )
    .unwrap();
    preg.register(Box::new(active.clone())).unwrap();
    let hist = |n: &str| {
        let h =
            prometheus::HistogramVec::new(prometheus::HistogramOpts::new(n, "help"), &["route"])
                .unwrap();
        preg.register(Box::new(h.clone())).unwrap();
        h
    };
    let req_h = hist("rauta_route_request_duration_seconds");
    let up_h = hist("rauta_route_upstream_duration_seconds");
    for (i, name) in names.iter().enumerate() {
        requests.with_label_values(&[name]).inc_by(8);
        for class in CLASSES {
            responses
                .with_label_values(&[name, class])
                .inc_by(u64::from(class == "2xx") * 8);
        }
        timeouts.with_label_values(&[name]);
        failures.with_label_values(&[name]);
        active.with_label_values(&[name]);
        for k in 0..8 {
            req_h
                .with_label_values(&[name])
                .observe(ns[(i + k) % VALUES] as f64 / 1e9);
            up_h.with_label_values(&[name])
                .observe(ns[(i + k) % VALUES] as f64 / 2e9);
        }
    }

    // metrics + metrics-exporter-prometheus, histograms as buckets.
    let recorder = PrometheusBuilder::new()
        .set_buckets(&[
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ])
        .unwrap()
        .build_recorder();
    let md = metadata();
    for (i, name) in names.iter().enumerate() {
        let key = |n: &'static str| Key::from_parts(n, vec![Label::new("route", name.clone())]);
        recorder
            .register_counter(&key("rauta_route_requests_total"), &md)
            .increment(8);
        for class in CLASSES {
            let k = Key::from_parts(
                "rauta_route_responses_total",
                vec![
                    Label::new("route", name.clone()),
                    Label::new("class", class),
                ],
            );
            recorder
                .register_counter(&k, &md)
                .increment(u64::from(class == "2xx") * 8);
        }
        recorder
            .register_counter(&key("rauta_route_timeouts_total"), &md)
            .increment(0);
        recorder
            .register_counter(&key("rauta_route_upstream_connect_failures_total"), &md)
            .increment(0);
        recorder
            .register_gauge(&key("rauta_route_requests_active"), &md)
            .set(0.0);
        let rh = recorder.register_histogram(&key("rauta_route_request_duration_seconds"), &md);
        let uh = recorder.register_histogram(&key("rauta_route_upstream_duration_seconds"), &md);
        for k in 0..8 {
            rh.record(ns[(i + k) % VALUES] as f64 / 1e9);
            uh.record(ns[(i + k) % VALUES] as f64 / 2e9);
        }
    }
    let handle = recorder.handle();

    let mut g = c.benchmark_group("render_10k_routes");
    g.sample_size(20);
    let mut buf = String::new();
    g.bench_function("rauta_prometheus_text", |b| {
        b.iter(|| {
            buf.clear();
            registry.render_into(rauta_stats::Format::Prometheus, &mut buf);
            black_box(buf.len())
        })
    });
    g.bench_function("rauta_prometheus_text_no_quantiles", |b| {
        let r2 = rauta_stats_registry(&names, &ns, false);
        b.iter(|| {
            buf.clear();
            r2.render_into(rauta_stats::Format::Prometheus, &mut buf);
            black_box(buf.len())
        })
    });
    g.bench_function("rauta_openmetrics", |b| {
        b.iter(|| {
            buf.clear();
            registry.render_into(rauta_stats::Format::OpenMetrics, &mut buf);
            black_box(buf.len())
        })
    });
    g.bench_function("prometheus_text", |b| {
        let enc = prometheus::TextEncoder::new();
        b.iter(|| {
            let mf = preg.gather();
            black_box(enc.encode_to_string(&mf).unwrap().len())
        })
    });
    g.bench_function("metrics_exporter_prometheus", |b| {
        b.iter(|| black_box(handle.render().len()))
    });
    g.finish();
}

criterion_group!(benches, counters, histograms, render);
criterion_main!(benches);
