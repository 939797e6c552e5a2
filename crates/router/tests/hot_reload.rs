//! The Router handle: a reader keeps its snapshot while reloads happen, a bad
//! config never replaces a good one, and readers never see a torn table.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rauta_router::{Decision, Request, Router};

fn config(n: usize) -> String {
    // Every route of version n answers cluster "c{n}"; the table is only
    // consistent if every route agrees.
    let routes: Vec<String> = (0..8)
        .map(|i| format!("{{name: r{i}, match: {{prefix: /p{i}}}, action: {{cluster: c{n}}}}}"))
        .collect();
    format!(
        "name: v{n}\nvirtual_hosts: [{{name: all, domains: [\"*\"], routes: [{}]}}]",
        routes.join(", ")
    )
}

fn cluster_of(table: &rauta_router::RouteTable, i: usize) -> String {
    let req = Request::get("h", format!("/p{i}/x"));
    match table.route(&req, 0) {
        Decision::Route(m) => m.cluster().unwrap_or("").to_string(),
        other => panic!("no route: {other:?}"),
    }
}

#[test]
fn reader_keeps_its_snapshot_across_10000_reloads() {
    let router = Arc::new(Router::from_yaml(&config(0)).unwrap());
    let held = router.load();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let router = Arc::clone(&router);
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut cache = router.cache();
            let mut checks = 0u64;
            // Bounded: stops when the writer is done, or after 10 million checks.
            while !stop.load(Ordering::Relaxed) && checks < 10_000_000 {
                let snap = cache.load();
                let first = cluster_of(snap, 0);
                for i in 1..8 {
                    assert_eq!(
                        cluster_of(snap, i),
                        first,
                        "torn table at {}",
                        snap.version()
                    );
                }
                assert_eq!(snap.name(), format!("v{}", &first[1..]));
                checks += 1;
            }
            checks
        })
    };
    let mut last = router.version();
    for n in 1..=10_000 {
        if n % 2 == 0 {
            // Invalid: rejected, the current table stays.
            let bad = config(n).replace("prefix: /p3", "regex: \"(+\"");
            assert!(router.reload_yaml(&bad).is_err());
            assert_eq!(router.version(), last);
        } else {
            let v = router.reload_yaml(&config(n)).unwrap();
            assert!(v > last);
            last = v;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let checks = reader.join().expect("reader panicked");
    assert!(checks > 0);
    // The snapshot taken before the reloads still routes as version 1 did.
    for i in 0..8 {
        assert_eq!(cluster_of(&held, i), "c0");
    }
    assert_eq!(cluster_of(&router.load(), 0), "c9999");
}
