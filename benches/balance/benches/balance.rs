//! rauta-balance beside pingora-load-balancing, in one run.
//!
//! - `pick/*`: one pick from 100 equal-weight endpoints. `rauta/maglev` and
//!   `rauta/ring_hash` get a ready 64-bit hash; `*_key` variants hash a
//!   request key first (xxHash64), like pingora's Ketama, which hashes the
//!   key bytes itself.
//! - `maglev_build/*`: Maglev table for 10, 100 and 1,000 endpoints at M = 65537.
//! - `ring_build/*`: rauta ring hash (Envoy defaults: min 1024 entries) and
//!   pingora's Ketama (160 points per endpoint) for 10, 100 and 1,000 endpoints.
// criterion_group! defines an undocumented public function.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use pingora_load_balancing::selection::{
    BackendIter, BackendSelection, Consistent, RoundRobin as PRoundRobin,
};
use pingora_load_balancing::Backend;
use rauta_balance::hash::xxh64;
use rauta_balance::{
    Balancer, Endpoint, EndpointSet, LeastRequest, Maglev, Pick, Random, RingHash, RoundRobin,
    WeightedRoundRobin,
};
use std::cell::Cell;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 8080))
}

fn rauta_set(n: usize) -> Arc<EndpointSet> {
    Arc::new(EndpointSet::new((0..n).map(|i| Endpoint::new(addr(i))).collect()).unwrap())
}

fn pingora_set(n: usize) -> BTreeSet<Backend> {
    (0..n)
        .map(|i| Backend::new(&addr(i).to_string()).unwrap())
        .collect()
}

/// 1024 request keys, cycled through by every keyed benchmark.
fn keys() -> Vec<String> {
    (0..1024).map(|i| format!("user-{i:05}")).collect()
}

fn pick(c: &mut Criterion) {
    let set = rauta_set(100);
    let keys = keys();
    let hashes: Vec<u64> = keys.iter().map(|k| xxh64(k.as_bytes(), 0)).collect();
    let mut g = c.benchmark_group("pick");

    // The floor of any shared lock-free rotation: one atomic increment.
    let counter = std::sync::atomic::AtomicU64::new(0);
    g.bench_function("baseline/atomic_fetch_add", |b| {
        b.iter(|| black_box(counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed)))
    });
    let rr = RoundRobin::new(Arc::clone(&set)).unwrap();
    g.bench_function("rauta/round_robin", |b| {
        b.iter(|| black_box(rr.pick(Pick::new())))
    });
    let wrr = WeightedRoundRobin::new(Arc::clone(&set)).unwrap();
    g.bench_function("rauta/weighted_round_robin", |b| {
        b.iter(|| black_box(wrr.pick(Pick::new())))
    });
    let lr = LeastRequest::new(Arc::clone(&set)).unwrap();
    g.bench_function("rauta/least_request_p2c", |b| {
        b.iter(|| black_box(lr.pick(Pick::new())))
    });
    let rnd = Random::new(Arc::clone(&set)).unwrap();
    g.bench_function("rauta/random", |b| {
        b.iter(|| black_box(rnd.pick(Pick::new())))
    });

    let maglev = Maglev::new(Arc::clone(&set)).unwrap();
    // Cycles through the 1024 keys; a plain counter, no atomics.
    let i = Cell::new(0usize);
    let next = || {
        let k = i.get();
        i.set((k + 1) & 1023);
        k
    };
    g.bench_function("rauta/maglev", |b| {
        b.iter(|| black_box(maglev.pick(Pick::with_hash(hashes[next()]))))
    });
    g.bench_function("rauta/maglev_key", |b| {
        b.iter(|| black_box(maglev.pick(Pick::with_hash(xxh64(keys[next()].as_bytes(), 0)))))
    });
    let ring = RingHash::new(Arc::clone(&set)).unwrap();
    g.bench_function("rauta/ring_hash", |b| {
        b.iter(|| black_box(ring.pick(Pick::with_hash(hashes[next()]))))
    });
    g.bench_function("rauta/ring_hash_key", |b| {
        b.iter(|| black_box(ring.pick(Pick::with_hash(xxh64(keys[next()].as_bytes(), 0)))))
    });

    let backends = pingora_set(100);
    let prr = Arc::new(PRoundRobin::build(&backends));
    g.bench_function("pingora/round_robin", |b| {
        b.iter(|| {
            let mut it = prr.iter(b"");
            black_box(it.next().map(|b| b.weight));
        })
    });
    let ketama = Arc::new(Consistent::build(&backends));
    g.bench_function("pingora/ketama_key", |b| {
        b.iter(|| {
            let mut it = ketama.iter(keys[next()].as_bytes());
            black_box(it.next().map(|b| b.weight));
        })
    });
    g.finish();
}

fn build(c: &mut Criterion) {
    let mut g = c.benchmark_group("maglev_build");
    for n in [10usize, 100, 1000] {
        let set = rauta_set(n);
        g.bench_with_input(BenchmarkId::new("rauta/65537", n), &set, |b, set| {
            b.iter(|| black_box(Maglev::new(Arc::clone(set)).unwrap()))
        });
    }
    g.finish();
    let mut g = c.benchmark_group("ring_build");
    for n in [10usize, 100, 1000] {
        let set = rauta_set(n);
        g.bench_with_input(BenchmarkId::new("rauta/ring_hash", n), &set, |b, set| {
            b.iter(|| black_box(RingHash::new(Arc::clone(set)).unwrap()))
        });
        let backends = pingora_set(n);
        g.bench_with_input(
            BenchmarkId::new("pingora/ketama", n),
            &backends,
            |b, backends| b.iter(|| black_box(Consistent::build(backends))),
        );
    }
    g.finish();
}

criterion_group!(benches, pick, build);
criterion_main!(benches);
