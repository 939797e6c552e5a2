//! Remainder by a runtime constant without a divide instruction
//! (Lemire, Kaser, Kurz: "Faster remainder by direct computation", 2019).

/// `a % d` for any u64 `a`, with `d` fixed at build time (d ≥ 1).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FastMod {
    d: u64,
    m: u128,
}

impl FastMod {
    pub(crate) fn new(d: u64) -> Self {
        debug_assert!(d >= 1);
        // ceil(2^128 / d); wraps to 0 for d = 1, which still gives 0.
        FastMod {
            d,
            m: (u128::MAX / u128::from(d.max(1))).wrapping_add(1),
        }
    }

    #[inline(always)]
    pub(crate) fn rem(&self, a: u64) -> u64 {
        let low = self.m.wrapping_mul(u128::from(a));
        // High 64 bits of the 192-bit product low * d.
        let d = u128::from(self.d);
        let lo = (low as u64 as u128 * d) >> 64;
        let hi = (low >> 64) * d;
        ((hi + lo) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn edges() {
        for d in [
            1u64,
            2,
            3,
            7,
            17,
            65537,
            655373,
            5_000_011,
            u32::MAX as u64,
            u64::MAX,
        ] {
            let f = FastMod::new(d);
            for a in [
                0u64,
                1,
                d - 1,
                d,
                d.wrapping_add(1),
                u64::MAX,
                u64::MAX - 1,
                1 << 63,
            ] {
                assert_eq!(f.rem(a), a % d, "{a} % {d}");
            }
        }
    }

    proptest! {
        #[test]
        fn matches_remainder(a in any::<u64>(), d in 1u64..) {
            prop_assert_eq!(FastMod::new(d).rem(a), a % d);
        }
    }
}
