//! The `balance` suite: hash functions, Maglev tables and ring hash rings
//! against `../shared/conformance/balance/*.yaml` (format in SCHEMA.md, rules
//! in SPEC.md there).
//!
//! Files are loaded strictly: unknown fields, duplicate keys, integers that
//! are not u64, a field that does not belong to the case's kind, and ids
//! that repeat (across all files of a run) are all failures. A case the
//! runner cannot run counts as failed.
use crate::Report;
use rauta_balance::hash::{address_key, murmur2_64, xxh64, xxh64_chain};
use rauta_balance::{
    Balancer, BuildError, Endpoint, EndpointId, EndpointSet, HealthPolicy, Maglev, Pick, RingHash,
    RingHashFunction,
};
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

/// An integer with its source position, so the loader can check that it
/// was written as a plain decimal (not quoted, hex or signed).
type Num<T> = Spanned<T>;

fn num<T: Copy>(n: &Num<T>) -> T {
    n.value
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    id: String,
    source: String,
    status: Status,
    kind: Kind,
    #[allow(dead_code)]
    note: Option<String>,
    input: Option<String>,
    seed: Option<Num<u64>>,
    output: Option<Num<u64>>,
    inputs: Option<Vec<String>>,
    hosts: Option<Vec<Host>>,
    localities: Option<Vec<LocalityWeight>>,
    table_size: Option<Num<u64>>,
    use_unsorted_order: Option<bool>,
    min_ring_size: Option<Num<u64>>,
    max_ring_size: Option<Num<u64>>,
    hash_function: Option<HashFunction>,
    expect: Option<Expect>,
}

#[derive(Debug, Deserialize)]
enum Status {
    #[serde(rename = "asserted")]
    Asserted,
    #[serde(rename = "derived")]
    Derived,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
enum Kind {
    #[serde(rename = "xxhash64")]
    Xxhash64,
    #[serde(rename = "xxhash64_chain")]
    Xxhash64Chain,
    #[serde(rename = "murmur2_64")]
    Murmur2,
    #[serde(rename = "maglev")]
    Maglev,
    #[serde(rename = "ring_hash")]
    RingHash,
}

#[derive(Debug, Clone, Copy, Deserialize)]
enum HashFunction {
    #[serde(rename = "xx_hash")]
    XxHash,
    #[serde(rename = "murmur_hash_2")]
    MurmurHash2,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Host {
    key: String,
    weight: Option<Num<u32>>,
    locality: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LocalityWeight {
    name: String,
    weight: Num<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    table: Option<Vec<String>>,
    counts: Option<BTreeMap<String, Num<u64>>>,
    picks: Option<Vec<PickCase>>,
    error: Option<bool>,
    size: Option<Num<u64>>,
    ring: Option<Vec<(Num<u64>, String)>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PickCase {
    hash: Num<u64>,
    key: String,
    attempt: Option<Num<u32>>,
}

/// Runs the `balance` vectors of `files`.
pub(crate) fn run(files: &[PathBuf], report: &mut Report) {
    let mut ids: HashSet<String> = HashSet::new();
    for f in files {
        let Some(text) = crate::read_file(f, report) else {
            continue;
        };
        let cases: Vec<Case> = match serde_saphyr::from_str(&text) {
            Ok(c) => c,
            Err(e) => {
                report.fail(&f.display().to_string(), format_args!("cannot load: {e}"));
                continue;
            }
        };
        if cases.is_empty() {
            report.fail(
                &f.display().to_string(),
                "no cases (the list must not be empty)",
            );
        }
        for case in &cases {
            if !ids.insert(case.id.clone()) {
                report.fail(&case.id, "duplicate id");
                continue;
            }
            let mut out = Outcome::default();
            match check_shape(case).and_then(|()| check_numbers(case, &text)) {
                Err(e) => out.fail(None, e),
                Ok(()) => run_case(case, &mut out),
            }
            if out.failures.is_empty() {
                report.pass();
            }
            for (index, what) in out.failures {
                match index {
                    Some(i) => report.fail(&format!("{}#{i}", case.id), what),
                    None => report.fail(&case.id, what),
                }
            }
        }
    }
}

#[derive(Default)]
struct Outcome {
    failures: Vec<(Option<usize>, String)>,
}

impl Outcome {
    fn fail(&mut self, index: Option<usize>, what: impl Into<String>) {
        self.failures.push((index, what.into()));
    }
}

fn is_kebab(id: &str) -> bool {
    !id.is_empty()
        && id.split('-').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// Checks that the case has exactly the fields its kind allows.
fn check_shape(c: &Case) -> Result<(), String> {
    if !is_kebab(&c.id) {
        return Err(format!("id {:?} is not kebab-case", c.id));
    }
    if c.source.is_empty() {
        return Err("empty source".into());
    }
    let _ = &c.status;
    let present: [(&str, bool); 13] = [
        ("input", c.input.is_some()),
        ("seed", c.seed.is_some()),
        ("output", c.output.is_some()),
        ("inputs", c.inputs.is_some()),
        ("hosts", c.hosts.is_some()),
        ("localities", c.localities.is_some()),
        ("table_size", c.table_size.is_some()),
        ("use_unsorted_order", c.use_unsorted_order.is_some()),
        ("min_ring_size", c.min_ring_size.is_some()),
        ("max_ring_size", c.max_ring_size.is_some()),
        ("hash_function", c.hash_function.is_some()),
        ("expect", c.expect.is_some()),
        ("", false),
    ];
    let (required, optional): (&[&str], &[&str]) = match c.kind {
        Kind::Xxhash64 => (&["input", "seed", "output"], &[]),
        Kind::Xxhash64Chain => (&["inputs", "output"], &[]),
        Kind::Murmur2 => (&["input", "output"], &[]),
        Kind::Maglev => (
            &["hosts", "table_size", "expect"],
            &["localities", "use_unsorted_order"],
        ),
        Kind::RingHash => (
            &["hosts", "expect"],
            &[
                "localities",
                "min_ring_size",
                "max_ring_size",
                "hash_function",
            ],
        ),
    };
    for (name, is) in present {
        if name.is_empty() {
            continue;
        }
        let allowed = required.contains(&name) || optional.contains(&name);
        if is && !allowed {
            return Err(format!(
                "field `{name}` does not belong to kind {:?}",
                c.kind
            ));
        }
        if !is && required.contains(&name) {
            return Err(format!("missing field `{name}` for kind {:?}", c.kind));
        }
    }
    if c.kind == Kind::Xxhash64Chain && c.inputs.as_ref().is_some_and(Vec::is_empty) {
        return Err("`inputs` must not be empty".into());
    }
    if let Some(e) = &c.expect {
        let fields: [(&str, bool); 6] = [
            ("table", e.table.is_some()),
            ("counts", e.counts.is_some()),
            ("picks", e.picks.is_some()),
            ("error", e.error.is_some()),
            ("size", e.size.is_some()),
            ("ring", e.ring.is_some()),
        ];
        let allowed: &[&str] = match c.kind {
            Kind::Maglev => &["table", "counts", "picks", "error"],
            _ => &["size", "picks", "ring", "error"],
        };
        let mut any = false;
        for (name, is) in fields {
            if is && !allowed.contains(&name) {
                return Err(format!(
                    "expect.{name} does not belong to kind {:?}",
                    c.kind
                ));
            }
            any |= is;
        }
        if !any {
            return Err("`expect` is empty".into());
        }
        match e.error {
            Some(false) => return Err("expect.error may only be `true`".into()),
            Some(true) if fields.iter().filter(|f| f.1).count() > 1 => {
                return Err("expect.error: true must stand alone".into())
            }
            None if c.kind == Kind::RingHash && e.size.is_none() => {
                return Err("missing expect.size".into())
            }
            _ => {}
        }
    }
    if let Some(locs) = &c.localities {
        let mut seen = HashSet::new();
        for l in locs {
            if !seen.insert(&l.name) {
                return Err(format!("locality {:?} listed twice", l.name));
            }
        }
    }
    Ok(())
}

/// Every integer of the case must be written as plain decimal digits.
fn check_numbers(c: &Case, text: &str) -> Result<(), String> {
    fn check<T>(text: &str, n: &Num<T>, what: &str) -> Result<(), String> {
        let span = n.referenced.span();
        let raw = match (span.byte_offset(), span.byte_len()) {
            (Some(off), Some(len)) => text.get(off as usize..(off + len) as usize),
            _ => None,
        };
        match raw {
            Some(raw) if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
            Some(raw) => Err(format!("{what}: {raw:?} is not a plain decimal integer")),
            None => Err(format!(
                "{what}: no source position to check the integer against"
            )),
        }
    }
    for (n, what) in [
        (&c.seed, "seed"),
        (&c.output, "output"),
        (&c.table_size, "table_size"),
        (&c.min_ring_size, "min_ring_size"),
        (&c.max_ring_size, "max_ring_size"),
    ] {
        if let Some(n) = n {
            check(text, n, what)?;
        }
    }
    for h in c.hosts.iter().flatten() {
        if let Some(w) = &h.weight {
            check(text, w, "hosts[].weight")?;
        }
    }
    for l in c.localities.iter().flatten() {
        check(text, &l.weight, "localities[].weight")?;
    }
    if let Some(e) = &c.expect {
        for n in e.counts.iter().flat_map(|m| m.values()) {
            check(text, n, "expect.counts")?;
        }
        if let Some(n) = &e.size {
            check(text, n, "expect.size")?;
        }
        for (n, _) in e.ring.iter().flatten() {
            check(text, n, "expect.ring[][0]")?;
        }
        for p in e.picks.iter().flatten() {
            check(text, &p.hash, "expect.picks[].hash")?;
            if let Some(a) = &p.attempt {
                check(text, a, "expect.picks[].attempt")?;
            }
        }
    }
    Ok(())
}

fn run_case(c: &Case, out: &mut Outcome) {
    match c.kind {
        Kind::Xxhash64 => {
            let (input, seed, want) = (
                c.input.as_deref().unwrap_or(""),
                c.seed.as_ref().map_or(0, num),
                c.output.as_ref().map_or(0, num),
            );
            let got = xxh64(input.as_bytes(), seed);
            if got != want {
                out.fail(
                    None,
                    format!("xxh64({input:?}, {seed}) = {got}, want {want}"),
                );
            }
        }
        Kind::Xxhash64Chain => {
            let inputs = c.inputs.as_deref().unwrap_or(&[]);
            let want = c.output.as_ref().map_or(0, num);
            let got = xxh64_chain(inputs, 0);
            if got != want {
                out.fail(
                    None,
                    format!("xxh64 chain of {inputs:?} = {got}, want {want}"),
                );
            }
        }
        Kind::Murmur2 => {
            let (input, want) = (
                c.input.as_deref().unwrap_or(""),
                c.output.as_ref().map_or(0, num),
            );
            let got = murmur2_64(input.as_bytes());
            if got != want {
                out.fail(None, format!("murmur2_64({input:?}) = {got}, want {want}"));
            }
        }
        Kind::Maglev => run_maglev(c, out),
        Kind::RingHash => run_ring(c, out),
    }
}

/// The endpoint set of a case. Keys that are canonical addresses become
/// endpoint addresses (exercising the address key); otherwise every key
/// becomes a hostname hashed with `use_hostname_for_hashing`.
fn endpoint_set(c: &Case) -> Result<EndpointSet, BuildError> {
    let hosts = c.hosts.as_deref().unwrap_or(&[]);
    let addrs: Vec<Option<SocketAddr>> = hosts
        .iter()
        .map(|h| {
            h.key
                .parse::<SocketAddr>()
                .ok()
                .filter(|a| address_key(*a) == h.key)
        })
        .collect();
    let by_address = addrs.iter().all(Option::is_some);
    let mut builder = EndpointSet::builder().use_hostname_for_hashing(!by_address);
    for l in c.localities.as_deref().unwrap_or(&[]) {
        builder = builder.locality(l.name.clone(), num(&l.weight));
    }
    let endpoints = hosts
        .iter()
        .zip(&addrs)
        .map(|(h, a)| {
            let mut e = Endpoint::new(a.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))))
                .weight(h.weight.as_ref().map_or(1, num));
            if !by_address {
                e = e.hostname(h.key.clone());
            }
            if let Some(l) = &h.locality {
                e = e.locality(l.clone());
            }
            e
        })
        .collect();
    builder.build(endpoints)
}

fn key_of(set: &EndpointSet, id: EndpointId) -> &str {
    set.hash_key(id).unwrap_or("<none>")
}

fn check_picks<B: Balancer<Data = ()>>(lb: &B, picks: &[PickCase], out: &mut Outcome) {
    for (i, p) in picks.iter().enumerate() {
        let attempt = p.attempt.as_ref().map_or(0, num);
        let got = lb.pick(Pick::with_hash(num(&p.hash)).attempt(attempt));
        let got = got.map(|e| key_of(lb.endpoints(), e.id()));
        if got != Some(p.key.as_str()) {
            out.fail(
                Some(i),
                format!(
                    "pick(hash {}, attempt {attempt}) = {got:?}, want {:?}",
                    num(&p.hash),
                    p.key
                ),
            );
        }
    }
}

fn run_maglev(c: &Case, out: &mut Outcome) {
    let Some(expect) = &c.expect else { return };
    let m = c.table_size.as_ref().map_or(0, num);
    let built = endpoint_set(c).and_then(|set| {
        Maglev::builder()
            .table_size(m)
            .legacy_unsorted(c.use_unsorted_order.unwrap_or(false))
            .health(HealthPolicy::new())
            .seed(0)
            .build(set)
    });
    if expect.error == Some(true) {
        if let Ok(lb) = built {
            if lb.table().is_some() || lb.pick(Pick::with_hash(0)).is_some() {
                out.fail(None, "expected no usable table, but a table was built");
            }
        }
        return;
    }
    let lb = match built {
        Ok(lb) => lb,
        Err(e) => return out.fail(None, format!("build failed: {e}")),
    };
    let Some(table) = lb.table() else {
        return out.fail(None, "no table was built");
    };
    let set = lb.endpoints();
    if table.len() as u64 != m {
        out.fail(None, format!("table has {} slots, want {m}", table.len()));
    }
    if let Some(want) = &expect.table {
        if want.len() as u64 != m {
            out.fail(
                None,
                format!("expect.table has {} entries for table_size {m}", want.len()),
            );
        }
        let mut diffs = Vec::new();
        for (i, (got, want)) in table.iter().zip(want).enumerate() {
            let got = key_of(set, got);
            if got != want {
                diffs.push(format!("slot {i}: {got} (want {want})"));
            }
        }
        if !diffs.is_empty() {
            let n = diffs.len();
            diffs.truncate(5);
            out.fail(
                None,
                format!("{n} table slots differ: {}", diffs.join(", ")),
            );
        }
    }
    if let Some(want) = &expect.counts {
        let by_key: HashMap<&str, EndpointId> = set
            .endpoints()
            .iter()
            .map(|e| (key_of(set, e.id()), e.id()))
            .collect();
        let mut msg = String::new();
        for (key, n) in want {
            let n = num(n);
            match by_key.get(key.as_str()) {
                None => {
                    let _ = write!(msg, "{key}: not a host; ");
                }
                Some(&id) => {
                    let got = u64::from(table.entries(id));
                    if got != n {
                        let _ = write!(msg, "{key}: {got} (want {n}); ");
                    }
                }
            }
        }
        if want.len() != by_key.len() {
            let _ = write!(
                msg,
                "counts list {} of {} hosts; ",
                want.len(),
                by_key.len()
            );
        }
        if !msg.is_empty() {
            out.fail(
                None,
                format!("counts differ: {}", msg.trim_end_matches("; ")),
            );
        }
    }
    if let Some(picks) = &expect.picks {
        check_picks(&lb, picks, out);
    }
}

fn run_ring(c: &Case, out: &mut Outcome) {
    let Some(expect) = &c.expect else { return };
    let function = match c.hash_function {
        None | Some(HashFunction::XxHash) => RingHashFunction::XxHash,
        Some(HashFunction::MurmurHash2) => RingHashFunction::MurmurHash2,
    };
    let built = endpoint_set(c).and_then(|set| {
        let mut b = RingHash::builder().hash_function(function).seed(0);
        if let Some(n) = c.min_ring_size.as_ref().map(num) {
            b = b.min_ring_size(n);
        }
        if let Some(n) = c.max_ring_size.as_ref().map(num) {
            b = b.max_ring_size(n);
        }
        b.build(set)
    });
    if expect.error == Some(true) {
        if let Ok(lb) = built {
            if !lb.is_empty() || lb.pick(Pick::with_hash(0)).is_some() {
                out.fail(
                    None,
                    format!(
                        "expected no usable ring, but one of {} entries was built",
                        lb.len()
                    ),
                );
            }
        }
        return;
    }
    let lb = match built {
        Ok(lb) => lb,
        Err(e) => return out.fail(None, format!("build failed: {e}")),
    };
    let set = lb.endpoints();
    if let Some(size) = expect.size.as_ref().map(num) {
        if lb.len() as u64 != size {
            out.fail(None, format!("ring has {} entries, want {size}", lb.len()));
        }
    }
    if let Some(ring) = &expect.ring {
        let got: Vec<(u64, &str)> = lb.entries().map(|(h, id)| (h, key_of(set, id))).collect();
        if got.len() != ring.len() {
            out.fail(
                None,
                format!(
                    "ring has {} entries, expect.ring lists {}",
                    got.len(),
                    ring.len()
                ),
            );
        }
        let diffs: Vec<String> = got
            .iter()
            .zip(ring)
            .enumerate()
            .filter(|(_, (g, w))| g.0 != w.0.value || g.1 != w.1)
            .map(|(i, (g, w))| {
                format!(
                    "entry {i}: [{}, {}] (want [{}, {}])",
                    g.0, g.1, w.0.value, w.1
                )
            })
            .collect();
        if !diffs.is_empty() {
            out.fail(
                None,
                format!(
                    "{} ring entries differ: {}",
                    diffs.len(),
                    diffs[..diffs.len().min(5)].join(", ")
                ),
            );
        }
    }
    if let Some(picks) = &expect.picks {
        check_picks(&lb, picks, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_text(text: &str) -> Report {
        let dir = std::env::temp_dir().join(format!("rauta-balance-suite-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{:x}.yaml", xxh64(text.as_bytes(), 0)));
        std::fs::write(&path, text).unwrap();
        let mut report = Report::default();
        run(std::slice::from_ref(&path), &mut report);
        let _ = std::fs::remove_file(path);
        report
    }

    #[test]
    fn strict_loading() {
        // Unknown field.
        let r = run_text("- id: \"a\"\n  source: \"s\"\n  status: \"derived\"\n  kind: \"xxhash64\"\n  input: \"foo\"\n  seed: 0\n  output: 3728699739546630719\n  extra: 1\n");
        assert_eq!((r.passed(), r.failed()), (0, 1), "{}", r.summary());
        // A u64 above i64::MAX; a wrong expected value is caught.
        let r = run_text("- id: \"a\"\n  source: \"s\"\n  status: \"derived\"\n  kind: \"xxhash64\"\n  input: \"foo\"\n  seed: 18446744073709551615\n  output: 1\n");
        assert_eq!((r.passed(), r.failed()), (0, 1), "{}", r.summary());
        assert!(
            r.failures()[0].starts_with("FAIL a: xxh64(\"foo\", 18446744073709551615) = "),
            "{}",
            r.summary()
        );
        // Negative integers are not u64.
        let r = run_text("- id: \"a\"\n  source: \"s\"\n  status: \"derived\"\n  kind: \"xxhash64\"\n  input: \"foo\"\n  seed: -1\n  output: 1\n");
        assert_eq!(r.failed(), 1, "{}", r.summary());
        // Integers must be plain decimal: not quoted, hex or signed.
        for seed in ["\"5\"", "0x10", "+5", "1.0"] {
            let r = run_text(&format!("- id: \"a\"\n  source: \"s\"\n  status: \"derived\"\n  kind: \"xxhash64\"\n  input: \"foo\"\n  seed: {seed}\n  output: 3728699739546630719\n"));
            assert_eq!((r.passed(), r.failed()), (0, 1), "{seed}: {}", r.summary());
        }
        // Field of another kind; duplicate ids.
        let case = "- id: \"b\"\n  source: \"s\"\n  status: \"derived\"\n  kind: \"murmur2_64\"\n  input: \"foo\"\n  output: 9631199822919835226\n";
        let r = run_text(&format!("{case}{case}"));
        assert_eq!((r.passed(), r.failed()), (1, 1), "{}", r.summary());
        let r = run_text("- id: \"b\"\n  source: \"s\"\n  status: \"derived\"\n  kind: \"murmur2_64\"\n  input: \"foo\"\n  seed: 0\n  output: 9631199822919835226\n");
        assert_eq!(r.failed(), 1, "{}", r.summary());
        // Duplicate keys in a mapping.
        let r = run_text("- id: \"c\"\n  source: \"s\"\n  status: \"derived\"\n  kind: \"maglev\"\n  table_size: 7\n  hosts: [{key: \"a\"}]\n  expect:\n    counts: {\"a\": 7, \"a\": 7}\n");
        assert_eq!(r.failed(), 1, "{}", r.summary());
    }

    #[test]
    fn pick_failures_name_the_index() {
        let r = run_text("- id: \"m\"\n  source: \"s\"\n  status: \"derived\"\n  kind: \"maglev\"\n  table_size: 7\n  hosts: [{key: \"127.0.0.1:90\"}, {key: \"127.0.0.1:91\"}]\n  expect:\n    picks:\n      - {hash: 0, key: \"127.0.0.1:90\"}\n      - {hash: 0, key: \"127.0.0.1:91\"}\n");
        assert_eq!(r.failed(), 1, "{}", r.summary());
        assert!(r.failures()[0].starts_with("FAIL m#"), "{}", r.summary());
    }
}
