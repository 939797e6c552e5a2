//! Control-plane cost: denying source prefixes one by one with
//! `XdpFilter::deny_source` and allowing them again with `allow_source`,
//! next to inserting and removing the same prefixes in a bare LPM trie map
//! in the same run (one `bpf()` call each: what a loader that keeps its
//! list in a trie alone pays, and the least any loader that writes the
//! kernel once per change can).
//!
//! Cases: the packet benchmark's random lists (10,000 IPv4 /16-/32 and
//! 1,000 IPv6 /32-/64); 65,536 random IPv6 /40-/64
//! (`RAUTA_XDP_CONTROL_LARGE` sets the count); and crowded IPv6 blocks,
//! whose changes move them between one leaf, parts, the split and range
//! slots, and wait for the program's runs to end (an RCU grace period)
//! where leaves or slots go: forty /56s in each of 64 /48s, ten /60s in
//! one /54 of each of 256 /48s, forty hosts (every third address) in one
//! /76 of each of 64 /64s. A round denies a case's prefixes in order,
//! checks sampled verdicts with BPF_PROG_TEST_RUN, allows them in the same
//! order and checks again; then does the same with the whole list in one
//! `deny_sources` and one `allow_sources` call; then denies the whole list
//! in one call and allows every other prefix in one call (blocks shrink
//! without emptying: one wait for the program's runs serves them all) and
//! checks both halves; the trie inserts, checks, removes and checks.
//! `RAUTA_XDP_CONTROL_ROUNDS` rounds (default 5), the four taking turns to
//! go first; the tables give the median per prefix.
//!
//!     sudo cargo bench -p rauta-xdp --features ebpf --bench control
//!
//! Needs root and the `ebpf` feature.

#[path = "../tests/common/frames.rs"]
mod frames;
mod support;

use std::{net::IpAddr, time::Instant};

use aya::maps::{
    lpm_trie::{Key, LpmTrie},
    MapData,
};
use frames::{udp, v4_frame, v6_frame, UDP};
use rauta_xdp::{IpPrefix, Verdict, XdpFilter};
use support::{env_u32, median, random_v4, random_v6, Rng};

/// `BPF_F_NO_PREALLOC`: LPM tries must be created with it.
const NO_PREALLOC: u32 = 1;

struct Case {
    name: String,
    prefixes: Vec<IpPrefix>,
}

/// A bare LPM trie map holding one family's prefixes.
enum Trie {
    V4(LpmTrie<MapData, [u8; 4], u8>),
    V6(LpmTrie<MapData, [u8; 16], u8>),
}

impl Trie {
    fn for_case(c: &Case) -> Trie {
        let n = c.prefixes.len() as u32;
        match c.prefixes[0].addr() {
            IpAddr::V4(_) => Trie::V4(LpmTrie::create(n, NO_PREALLOC).expect("create a trie")),
            IpAddr::V6(_) => Trie::V6(LpmTrie::create(n, NO_PREALLOC).expect("create a trie")),
        }
    }

    fn insert(&mut self, p: IpPrefix) {
        let len = u32::from(p.len());
        match (self, p.addr()) {
            (Trie::V4(t), IpAddr::V4(a)) => t.insert(&Key::new(len, a.octets()), 1, 0),
            (Trie::V6(t), IpAddr::V6(a)) => t.insert(&Key::new(len, a.octets()), 1, 0),
            _ => panic!("{p}: one family per case"),
        }
        .expect("insert into the trie");
    }

    fn remove(&mut self, p: IpPrefix) {
        let len = u32::from(p.len());
        match (self, p.addr()) {
            (Trie::V4(t), IpAddr::V4(a)) => t.remove(&Key::new(len, a.octets())),
            (Trie::V6(t), IpAddr::V6(a)) => t.remove(&Key::new(len, a.octets())),
            _ => panic!("{p}: one family per case"),
        }
        .expect("remove from the trie");
    }

    /// Whether the trie holds `p` itself.
    fn holds(&self, p: IpPrefix) -> bool {
        let len = u32::from(p.len());
        match (self, p.addr()) {
            (Trie::V4(t), IpAddr::V4(a)) => t.get(&Key::new(len, a.octets()), 0).is_ok(),
            (Trie::V6(t), IpAddr::V6(a)) => t.get(&Key::new(len, a.octets()), 0).is_ok(),
            _ => false,
        }
    }
}

fn cases(large: usize) -> Vec<Case> {
    let pre = |s: String| s.parse::<IpPrefix>().unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let v4 = random_v4(&mut rng, 10_000);
    let v6 = random_v6(&mut rng, 1_000, 32..=64);
    let v6_large = random_v6(&mut Rng(0x2545_f491_4f6c_dd1d), large, 40..=64);
    let split = (0..64)
        .flat_map(|b| (1..=40).map(move |i| (b, i)))
        .map(|(b, i)| pre(format!("2001:db8:{b:x}:{i:x}00::/56")))
        .collect();
    let ranged = (0..256)
        .flat_map(|b| (0..10).map(move |i| (b, i)))
        .map(|(b, i)| pre(format!("2001:dbf:{b:x}:{i:x}0::/60")))
        .collect();
    let hosts = (0..64)
        .flat_map(|b| (0..40).map(move |i| (b, i)))
        .map(|(b, i)| pre(format!("2001:dbe:{b:x}:1::{:x}/128", 3 * i + 1)))
        .collect();
    vec![
        Case {
            name: "IPv4, 10,000 random /16-/32".into(),
            prefixes: v4,
        },
        Case {
            name: "IPv6, 1,000 random /32-/64".into(),
            prefixes: v6,
        },
        Case {
            name: format!("IPv6, {} random /40-/64", thousands(large)),
            prefixes: v6_large,
        },
        Case {
            name: "IPv6, 40 /56s in each of 64 /48s (split by 64ths)".into(),
            prefixes: split,
        },
        Case {
            name: "IPv6, 10 /60s in one /54 of each of 256 /48s (range slots)".into(),
            prefixes: ranged,
        },
        Case {
            name: "IPv6, 40 hosts in one /76 of each of 64 /64s (range slots)".into(),
            prefixes: hosts,
        },
    ]
}

/// `n` with a comma between thousands.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// A frame from the first address of `p`.
fn frame_from(p: IpPrefix) -> Vec<u8> {
    match p.addr() {
        IpAddr::V4(a) => v4_frame(a, UDP, &udp(1, 2, b"")),
        IpAddr::V6(a) => v6_frame(a, UDP, &udp(1, 2, b"")),
    }
}

/// About 64 of `c`'s prefixes, spread over the list.
fn sample(c: &Case) -> impl Iterator<Item = IpPrefix> + '_ {
    let step = (c.prefixes.len() / 64).max(1);
    c.prefixes.iter().copied().step_by(step)
}

/// Denies and allows `c`'s prefixes; the seconds per prefix of each.
fn filter_round(f: &mut XdpFilter, c: &Case) -> (f64, f64) {
    let n = c.prefixes.len() as f64;
    let t = Instant::now();
    for &p in &c.prefixes {
        f.deny_source(p).unwrap();
    }
    let deny = t.elapsed().as_secs_f64() / n;
    assert_eq!(f.denied_sources().unwrap().len(), c.prefixes.len());
    for p in sample(c) {
        let out = f.test_run(&frame_from(p), 1).unwrap();
        assert_eq!(out.verdict, Verdict::Drop, "{}: {p} denied", c.name);
    }
    let t = Instant::now();
    for &p in &c.prefixes {
        assert!(f.allow_source(p).unwrap(), "{}: {p} was denied", c.name);
    }
    let allow = t.elapsed().as_secs_f64() / n;
    assert!(f.denied_sources().unwrap().is_empty());
    for p in sample(c) {
        let out = f.test_run(&frame_from(p), 1).unwrap();
        assert_eq!(out.verdict, Verdict::Pass, "{}: {p} allowed", c.name);
    }
    (deny, allow)
}

/// Denies `c`'s prefixes in one `deny_sources` call and allows them in one
/// `allow_sources` call; the seconds per prefix of each.
fn batch_round(f: &mut XdpFilter, c: &Case) -> (f64, f64) {
    let n = c.prefixes.len() as f64;
    let t = Instant::now();
    f.deny_sources(c.prefixes.iter().copied()).unwrap();
    let deny = t.elapsed().as_secs_f64() / n;
    assert_eq!(f.denied_sources().unwrap().len(), c.prefixes.len());
    for p in sample(c) {
        let out = f.test_run(&frame_from(p), 1).unwrap();
        assert_eq!(
            out.verdict,
            Verdict::Drop,
            "{}: {p} denied in a batch",
            c.name
        );
    }
    let t = Instant::now();
    let allowed = f.allow_sources(c.prefixes.iter().copied()).unwrap();
    let allow = t.elapsed().as_secs_f64() / n;
    assert_eq!(allowed, c.prefixes.len(), "{}", c.name);
    assert!(f.denied_sources().unwrap().is_empty());
    for p in sample(c) {
        let out = f.test_run(&frame_from(p), 1).unwrap();
        assert_eq!(
            out.verdict,
            Verdict::Pass,
            "{}: {p} allowed in a batch",
            c.name
        );
    }
    (deny, allow)
}

/// Denies `c`'s prefixes in one call, then allows every other one in one
/// `allow_sources` call; the seconds per prefix allowed (the first value;
/// the second is 0). The rest are allowed after.
fn half_round(f: &mut XdpFilter, c: &Case) -> (f64, f64) {
    f.deny_sources(c.prefixes.iter().copied()).unwrap();
    let half: Vec<IpPrefix> = c.prefixes.iter().copied().step_by(2).collect();
    let t = Instant::now();
    let allowed = f.allow_sources(half.iter().copied()).unwrap();
    let allow = t.elapsed().as_secs_f64() / half.len() as f64;
    assert_eq!(allowed, half.len(), "{}", c.name);
    assert_eq!(
        f.denied_sources().unwrap().len(),
        c.prefixes.len() - half.len()
    );
    // An odd step: both halves are sampled.
    for (i, p) in c
        .prefixes
        .iter()
        .enumerate()
        .step_by((c.prefixes.len() / 64) | 1)
    {
        let out = f.test_run(&frame_from(*p), 1).unwrap();
        // A prefix left may cover one allowed (the random lists).
        let want = if i % 2 == 1 || covered(f, *p) {
            Verdict::Drop
        } else {
            Verdict::Pass
        };
        assert_eq!(out.verdict, want, "{}: {p} after half", c.name);
    }
    f.allow_sources(c.prefixes.iter().copied()).unwrap();
    assert!(f.denied_sources().unwrap().is_empty());
    (allow, 0.0)
}

/// Whether a prefix denied now holds `p`'s first address.
fn covered(f: &XdpFilter, p: IpPrefix) -> bool {
    f.denied_sources()
        .unwrap()
        .iter()
        .any(|q| q.contains(p.addr()))
}

/// Inserts and removes `c`'s prefixes; the seconds per prefix of each.
fn trie_round(t: &mut Trie, c: &Case) -> (f64, f64) {
    let n = c.prefixes.len() as f64;
    let start = Instant::now();
    for &p in &c.prefixes {
        t.insert(p);
    }
    let insert = start.elapsed().as_secs_f64() / n;
    assert!(sample(c).all(|p| t.holds(p)), "{}: inserted", c.name);
    let start = Instant::now();
    for &p in &c.prefixes {
        t.remove(p);
    }
    let remove = start.elapsed().as_secs_f64() / n;
    assert!(!sample(c).any(|p| t.holds(p)), "{}: removed", c.name);
    (insert, remove)
}

fn main() {
    let rounds = env_u32("RAUTA_XDP_CONTROL_ROUNDS", 5).max(1) as usize;
    let large = env_u32("RAUTA_XDP_CONTROL_LARGE", 65_536).max(1) as usize;
    let cases = cases(large);
    let capacity = cases.iter().map(|c| c.prefixes.len()).max().unwrap() as u32;
    let mut f = match XdpFilter::builder()
        .deny_v6_capacity(capacity.max(16_384))
        .load()
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!("xdp control bench: cannot load the program ({e}); needs root");
            std::process::exit(1);
        }
    };
    println!(
        "deny_source / allow_source one prefix at a time, and deny_sources / allow_sources \
         with the whole list, against a bare LPM trie's insert / remove of the same prefixes; \
         {rounds} rounds, median µs per prefix"
    );
    let mut rows = Vec::new();
    for c in &cases {
        let mut trie = Trie::for_case(c);
        // (deny, allow) samples: one by one, in one batch, the trie, half
        // in one batch.
        let mut samples = [(); 4].map(|_| (Vec::new(), Vec::new()));
        for round in 0..rounds {
            // Each goes first in turn.
            for k in 0..4 {
                let which = (round + k) % 4;
                let (d, a) = match which {
                    0 => filter_round(&mut f, c),
                    1 => batch_round(&mut f, c),
                    2 => trie_round(&mut trie, c),
                    _ => half_round(&mut f, c),
                };
                samples[which].0.push(d);
                samples[which].1.push(a);
            }
        }
        let us = |v: &mut Vec<f64>| median(v) * 1e6;
        let m = samples.map(|(mut d, mut a)| (us(&mut d), us(&mut a)));
        rows.push((c, m));
    }
    println!();
    println!("One prefix at a time:");
    println!();
    println!("| case | deny µs | trie insert µs | x trie | allow µs | trie remove µs | x trie | deny + allow, s |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (c, [(deny, allow), _, (insert, remove), _]) in &rows {
        let total = (deny + allow) * c.prefixes.len() as f64 / 1e6;
        println!(
            "| {} | {deny:.1} | {insert:.1} | {:.1} | {allow:.1} | {remove:.1} | {:.1} | {total:.2} |",
            c.name,
            deny / insert,
            allow / remove
        );
    }
    println!();
    println!("The whole list in one call:");
    println!();
    println!("| case | deny_sources µs | x one by one | x trie | allow_sources µs | x one by one | x trie | deny + allow, s |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (c, [(deny, allow), (bdeny, ballow), (insert, remove), _]) in &rows {
        let total = (bdeny + ballow) * c.prefixes.len() as f64 / 1e6;
        println!(
            "| {} | {bdeny:.1} | {:.2} | {:.1} | {ballow:.1} | {:.3} | {:.1} | {total:.2} |",
            c.name,
            bdeny / deny,
            bdeny / insert,
            ballow / allow,
            ballow / remove
        );
    }
    println!();
    println!("Every other prefix of the list allowed in one call (the whole list denied before):");
    println!();
    println!("| case | allow_sources µs | x one by one | x trie | total, s |");
    println!("|---|---:|---:|---:|---:|");
    for (c, [(_, allow), _, (_, remove), (half, _)]) in &rows {
        let total = half * c.prefixes.len().div_ceil(2) as f64 / 1e6;
        println!(
            "| {} | {half:.1} | {:.3} | {:.1} | {total:.3} |",
            c.name,
            half / allow,
            half / remove
        );
    }
}
