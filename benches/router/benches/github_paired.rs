//! The GitHub API route set against matchit, in pairs: on a shared machine
//! whose speed drifts by tens of percent within seconds, criterion's
//! benches (each measured for seconds, one after the other) can land in
//! different phases of the drift. Here each sample times 20 passes over
//! the 130 request paths with matchit and the same with each RAUTA
//! variant, back to back (the two taking turns to go first), and keeps
//! the ratio of each to matchit's; the medians of those ratios hardly
//! move between runs. matchit also builds the matched parameters; RAUTA
//! reads a template's variables only when a rewrite needs them.
//! `RAUTA_BENCH_PAIRED_SECS` (default 20) bounds the run.
//!
//!     cargo bench -p rauta-bench-router --bench github_paired
//!
//! It prints a Markdown table (scripts/bench-router.sh appends it to
//! docs/benchmarks/router.md).

use std::hint::black_box;
use std::time::{Duration, Instant};

use rauta_bench_router::{github_matchit, github_table};
use rauta_router::{BuildOptions, Decision, Request};

/// Passes over the 130 paths per timed sample.
const PASSES: u32 = 20;

fn main() {
    let secs = match std::env::var("RAUTA_BENCH_PAIRED_SECS") {
        Err(_) => 20,
        Ok(s) => {
            match s.trim().parse::<u64>() {
                Ok(n) if n > 0 => n,
                _ => {
                    eprintln!("RAUTA_BENCH_PAIRED_SECS: expected a whole number of seconds > 0, got {s:?}");
                    std::process::exit(2);
                }
            }
        }
    };
    let (paths, matchit) = github_matchit();
    let raw = github_table(&BuildOptions::default().raw_paths(true));
    let safe = github_table(&BuildOptions::default());
    let reqs: Vec<Request> = paths
        .iter()
        .map(|p| Request::get("api.github.com", p.as_str()))
        .collect();
    let vh = &raw.virtual_hosts()[0];
    let lookups = f64::from(PASSES) * paths.len() as f64;
    // Nanoseconds per lookup of one sample.
    let time = |f: &dyn Fn()| {
        let t = Instant::now();
        for _ in 0..PASSES {
            f();
        }
        t.elapsed().as_nanos() as f64 / lookups
    };
    let peer = || {
        for p in &paths {
            black_box(matchit.at(black_box(p.as_str())).expect("hit"));
        }
    };
    let routed = |table: &rauta_router::RouteTable| {
        for r in &reqs {
            let d = table.route(black_box(r), 0);
            black_box(matches!(d, Decision::Route(_)));
        }
    };
    let variants: [(&str, &dyn Fn()); 3] = [
        ("rauta `route`, raw paths", &|| routed(&raw)),
        ("rauta `route`, safe default path policy", &|| routed(&safe)),
        ("rauta path index alone (`first_path_match`)", &|| {
            for p in &paths {
                black_box(vh.first_path_match(black_box(p.as_str())).map(|r| r.id()));
            }
        }),
    ];
    // Warm-up, then samples until the time is up.
    for _ in 0..50 {
        time(&peer);
        variants.iter().for_each(|(_, f)| {
            time(*f);
        });
    }
    let mut peer_ns = Vec::new();
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    let start = Instant::now();
    // Which side of a pair runs first alternates, so that neither always
    // finds the caches as the other left them.
    let mut peer_first = true;
    loop {
        for (i, (_, f)) in variants.iter().enumerate() {
            let (m, r) = if peer_first {
                let m = time(&peer);
                (m, time(*f))
            } else {
                let r = time(*f);
                (time(&peer), r)
            };
            ratios[i].push(r / m);
            peer_ns.push(m);
        }
        peer_first = !peer_first;
        if start.elapsed() >= Duration::from_secs(secs) {
            break;
        }
    }
    // Never empty: the loop above runs at least one round.
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!("## GitHub API route set, in pairs\n");
    println!(
        "Each sample times {PASSES} passes over the 130 paths with matchit and with one RAUTA \
         variant, back to back, the two taking turns to go first \
         (`cargo bench -p rauta-bench-router --bench github_paired`, {secs} s); the median of \
         the per-sample ratios. matchit's lookup includes building its parameters; RAUTA's \
         reads a template's variables only when a rewrite needs them. The machine's drift moves both sides \
         of a pair alike. The lookups run cooler here than in criterion's long loops (the \
         other router's data in between), so the ratios differ from the table above.\n"
    );
    println!("| router | samples | median ratio to matchit |");
    println!("|---|---|---|");
    for ((name, _), r) in variants.iter().zip(&mut ratios) {
        println!("| {name} | {} | {:.2}x |", r.len(), median(r));
    }
    println!(
        "\nmatchit's median in the pairs: {:.1} ns a lookup.",
        median(&mut peer_ns)
    );
}
