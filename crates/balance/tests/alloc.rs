//! Picks allocate nothing: a counting global allocator (this test binary
//! only) counts the allocations of the picking thread.
use rauta_balance::{
    Balancer, Endpoint, EndpointSet, HashInput, HashPolicy, Health, LeastRequest, Maglev, Pick,
    Random, RingHash, RingHashFunction, RoundRobin, Shared, WeightedRoundRobin,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::Arc;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    // `try_with` so that allocations during thread teardown are not an error.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees carry over; counting touches only a
// const-initialised thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged; the caller upholds `alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged; the caller upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged; `ptr` came from `System` via this allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// Runs `f` `n` times and returns the allocations made meanwhile.
fn allocations_in(n: usize, mut f: impl FnMut(usize)) -> u64 {
    let before = allocations();
    for i in 0..n {
        f(i);
    }
    allocations() - before
}

struct Req {
    headers: Vec<(&'static str, &'static str)>,
}

impl HashInput for Req {
    fn for_each_header<'a>(&'a self, name: &str, f: &mut dyn FnMut(&'a [u8])) {
        for (n, v) in &self.headers {
            if n.eq_ignore_ascii_case(name) {
                f(v.as_bytes());
            }
        }
    }
    fn query(&self) -> Option<&str> {
        Some("user=42&x=1")
    }
    fn remote_address(&self) -> Option<SocketAddr> {
        Some("[2001:db8::7]:5555".parse().unwrap())
    }
    fn local_address(&self) -> Option<SocketAddr> {
        Some("[2001:db8::1]:443".parse().unwrap())
    }
}

#[test]
fn picks_do_not_allocate() {
    let set = Arc::new(
        EndpointSet::new(
            (0..100u16)
                .map(|i| {
                    let e = Endpoint::new(SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 80)))
                        .weight(1 + u32::from(i % 5));
                    if i % 5 < 2 {
                        e.health(Health::Degraded)
                    } else {
                        e
                    }
                })
                .collect(),
        )
        .unwrap(),
    );
    let n = 10_000;
    let picks = |name: &str, lb: &dyn Balancer<Data = ()>| {
        // Warm up once (nothing is lazily allocated, but be fair to the check).
        assert!(lb.pick(Pick::with_hash(1)).is_some(), "{name}");
        let a = allocations_in(n, |i| {
            let h = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            std::hint::black_box(lb.pick(Pick::with_hash(h).attempt((i % 3) as u32)));
        });
        assert_eq!(a, 0, "{name}: {a} allocations in {n} picks");
    };
    picks("round robin", &RoundRobin::new(Arc::clone(&set)).unwrap());
    picks(
        "weighted round robin",
        &WeightedRoundRobin::new(Arc::clone(&set)).unwrap(),
    );
    picks(
        "least request",
        &LeastRequest::new(Arc::clone(&set)).unwrap(),
    );
    picks("random", &Random::new(Arc::clone(&set)).unwrap());
    picks("maglev", &Maglev::new(Arc::clone(&set)).unwrap());
    picks("ring hash", &RingHash::new(Arc::clone(&set)).unwrap());
    picks(
        "ring hash murmur2",
        &RingHash::builder()
            .hash_function(RingHashFunction::MurmurHash2)
            .build(Arc::clone(&set))
            .unwrap(),
    );

    // Through the swap handle, with a request guard.
    let shared = Shared::new(Maglev::new(Arc::clone(&set)).unwrap());
    drop(shared.load());
    let a = allocations_in(n, |i| {
        let lb = shared.load();
        let e = lb.pick(Pick::with_hash(i as u64)).unwrap();
        let guard = e.start_request();
        std::hint::black_box(&guard);
    });
    assert_eq!(a, 0, "shared handle: {a} allocations");

    // Hashing the request allocates nothing either.
    let req = Req {
        headers: vec![
            ("x-user", "bob"),
            ("x-tag", "b"),
            ("x-tag", "a"),
            ("cookie", "a=1; session=\"abc\""),
        ],
    };
    let policy = HashPolicy::builder()
        .header("x-user")
        .header("x-tag")
        .cookie("session")
        .cookie_or_mint("absent")
        .source_ip()
        .query_parameter("user")
        .build();
    assert!(policy.hash(&req).is_some());
    let a = allocations_in(n, |_| {
        std::hint::black_box(policy.hash(&req));
    });
    assert_eq!(a, 0, "hash policy: {a} allocations");

    // The counter does count.
    let a = allocations_in(1, |_| {
        std::hint::black_box(Vec::<u8>::with_capacity(8));
    });
    assert_eq!(a, 1);
}
