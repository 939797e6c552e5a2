//! Histogram quantiles against exact quantiles of the sorted samples.

use proptest::prelude::*;
use rauta_stats::Histogram;

/// Nearest-rank quantile of sorted samples: the sample at 1-based rank
/// `ceil(q * n)`, clamped to `1..=n`.
fn exact(sorted: &[u64], q: f64) -> u64 {
    let n = sorted.len() as u64;
    let r = if q <= 0.0 {
        1
    } else {
        ((q * n as f64).ceil() as u64).clamp(1, n)
    };
    sorted[(r - 1) as usize]
}

const QS: [f64; 13] = [
    0.0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 0.9999, 1.0,
];

fn check(samples: &[u64], extra_q: &[f64]) -> Result<(), TestCaseError> {
    let h = Histogram::new();
    for &v in samples {
        h.record(v);
    }
    let snap = h.snapshot();
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    prop_assert_eq!(snap.count(), samples.len() as u64);
    prop_assert_eq!(snap.sum(), samples.iter().map(|&v| v as u128).sum::<u128>());
    prop_assert_eq!(snap.min(), sorted.first().copied());
    prop_assert_eq!(snap.max(), sorted.last().copied());
    for &q in QS.iter().chain(extra_q) {
        let want = exact(&sorted, q);
        let got = snap.quantile(q).unwrap();
        // |got - want| <= want / 64, in integers.
        prop_assert!(
            u128::from(got.abs_diff(want)) * 64 <= u128::from(want),
            "q={} exact={} estimate={} n={}",
            q,
            want,
            got,
            samples.len()
        );
    }
    Ok(())
}

fn any_value() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        0u64..64,
        0u64..10_000,
        Just(0u64),
        Just(u64::MAX),
        // Log-uniform over the whole range.
        (0u32..64, any::<u64>()).prop_map(|(bits, r)| if bits == 0 { 0 } else { r >> (64 - bits) }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_values(samples in prop::collection::vec(any_value(), 1..2000), q in 0.0f64..=1.0) {
        check(&samples, &[q])?;
    }

    #[test]
    fn constant(v in any_value(), n in 1usize..3000) {
        check(&vec![v; n], &[])?;
    }

    #[test]
    fn bimodal(a in any_value(), b in any_value(), na in 1usize..2000, nb in 1usize..2000, q in 0.0f64..=1.0) {
        let mut s = vec![a; na];
        s.extend(std::iter::repeat_n(b, nb));
        check(&s, &[q])?;
    }

    #[test]
    fn heavy_tail(us in prop::collection::vec(1u64..=1_000_000, 1..3000), scale in 1u64..1_000_000) {
        // Pareto with shape 1: value = scale / u, u uniform in (0, 1].
        let s: Vec<u64> = us.iter().map(|&u| scale.saturating_mul(1_000_000) / u).collect();
        check(&s, &[])?;
    }

    #[test]
    fn zero_and_max(n0 in 0usize..500, nmax in 0usize..500, mids in prop::collection::vec(any::<u64>(), 0..50)) {
        let mut s = vec![0u64; n0];
        s.extend(std::iter::repeat_n(u64::MAX, nmax));
        s.extend(mids);
        prop_assume!(!s.is_empty());
        check(&s, &[])?;
    }
}

#[test]
fn adversarial_bucket_edges() {
    // Samples sitting on the low and high edges of many buckets.
    let mut s = Vec::new();
    for shift in 0..58u32 {
        for m in [32u64, 33, 47, 63] {
            let lo = m << shift;
            s.push(lo);
            s.push(lo + ((1u64 << shift) - 1));
        }
    }
    s.push(u64::MAX);
    s.push(0);
    let qs: Vec<f64> = (0..=1000).map(|i| f64::from(i) / 1000.0).collect();
    check(&s, &qs).unwrap();
}
