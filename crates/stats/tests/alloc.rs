//! The record path allocates nothing: a counting global allocator watches
//! this thread while it records into every kind of stat.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use rauta_stats::{Counter, Gauge, Histogram, Registry, StatsConfig};

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn bump() {
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every method forwards to `System` with the caller's arguments;
// counting does not touch the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(Cell::get)
}

#[test]
fn record_path_does_not_allocate() {
    let registry = Registry::new(StatsConfig::new().status_codes([200, 404, 503])).unwrap();
    let route = registry.route("r").unwrap();
    let counter = Arc::new(Counter::new());
    let gauge = Arc::new(Gauge::new());
    let hist = Arc::new(Histogram::new());

    // A fresh thread, so that its very first record (which claims a shard
    // slot) is counted too.
    let handle = std::thread::spawn(move || {
        let before = allocs();
        for i in 0..10_000u64 {
            counter.inc();
            counter.add(i);
            gauge.inc();
            gauge.dec();
            gauge.add(-3);
            hist.record(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            hist.record(0);
            hist.record(u64::MAX);
            hist.record_duration(Duration::from_nanos(i));
            let req = route.start();
            req.upstream_latency(Duration::from_micros(i));
            req.upstream_connect_failure();
            req.timeout();
            req.finish(if i % 2 == 0 { 200 } else { 503 });
            let owned = route.start_owned();
            drop(owned);
            route.record_response(404);
            route.record_response(999);
            route.record_request_latency(Duration::MAX);
        }
        let after = allocs();
        (after - before, route)
    });
    let (n, route) = handle.join().unwrap();
    assert_eq!(n, 0, "record path allocated {n} times");
    let s = route.snapshot();
    assert_eq!(s.requests_total(), 20_000);
    assert_eq!(s.requests_active(), 0);
}

#[test]
fn counting_allocator_sees_allocations() {
    // The instrument works: a Vec push on this thread is counted.
    let before = allocs();
    let v: Vec<u64> = std::hint::black_box(Vec::with_capacity(10));
    drop(v);
    assert!(allocs() > before);
}
