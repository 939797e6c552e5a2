//! Health-aware host selection with Envoy's panic threshold.
use crate::endpoint::{EndpointSet, Health};
use crate::error::{BuildError, BuildErrorKind};

/// How health decides which endpoints take traffic (Envoy's
/// `healthy_panic_threshold` and `overprovisioning_factor`, one priority).
///
/// - Healthy endpoints take the traffic. The healthy share is
///   `min(100, factor/100 · healthy / total)` percent (factor 140 by default);
///   non-hash balancers send the rest to degraded endpoints.
/// - When healthy plus degraded endpoints are fewer than `panic_threshold`
///   percent of all (and the overprovisioned availability is below 100%),
///   the set is in *panic*: every endpoint takes traffic, unhealthy ones too.
/// - A threshold of 0 disables panic: with nothing available, picks are `None`.
///
/// ```
/// use rauta_balance::{BuildErrorKind, HealthPolicy};
///
/// let p = HealthPolicy::new().panic_threshold(30.0).overprovisioning_factor(100);
/// assert!(p.validate().is_ok());
/// let err = HealthPolicy::new().panic_threshold(120.0).validate().unwrap_err();
/// assert!(matches!(err.kind(), BuildErrorKind::PanicThreshold { .. }));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthPolicy {
    panic_threshold: f64,
    overprovisioning_factor: u32,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        HealthPolicy {
            panic_threshold: 50.0,
            overprovisioning_factor: 140,
        }
    }
}

impl HealthPolicy {
    /// Envoy's defaults: panic below 50%, overprovisioning factor 140.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the panic threshold in percent (0 disables panic).
    pub fn panic_threshold(self, percent: f64) -> Self {
        HealthPolicy {
            panic_threshold: percent,
            ..self
        }
    }

    /// Sets the overprovisioning factor (percent; 140 means 1.4).
    pub fn overprovisioning_factor(self, factor: u32) -> Self {
        HealthPolicy {
            overprovisioning_factor: factor,
            ..self
        }
    }

    /// Checks the values.
    ///
    /// # Errors
    ///
    /// A threshold outside 0..=100 or a factor of 0.
    pub fn validate(&self) -> Result<(), BuildError> {
        if !(0.0..=100.0).contains(&self.panic_threshold) {
            return Err(BuildError::new(BuildErrorKind::PanicThreshold {
                value: self.panic_threshold,
            }));
        }
        if self.overprovisioning_factor == 0 {
            return Err(BuildError::new(BuildErrorKind::OverprovisioningFactor));
        }
        Ok(())
    }

    /// Splits `set` into the endpoints that take traffic. `with_degraded`
    /// gives degraded endpoints a tier of their own (non-hash balancers);
    /// hash balancers never table degraded endpoints, as in Envoy.
    pub(crate) fn partition<T>(&self, set: &EndpointSet<T>, with_degraded: bool) -> Partition {
        let total = set.len() as u64;
        let mut healthy = Vec::new();
        let mut degraded = Vec::new();
        for &i in set.order() {
            match set.endpoint_at(i).health_state() {
                Health::Healthy => healthy.push(i),
                Health::Degraded => degraded.push(i),
                Health::Unhealthy => {}
            }
        }
        if total == 0 {
            return Partition::default();
        }
        let factor = u64::from(self.overprovisioning_factor);
        let h_avail = (factor * healthy.len() as u64 / total).min(100);
        let d_avail = (factor * degraded.len() as u64 / total).min(100);
        let avail = (h_avail + d_avail).min(100);
        let raw = 100.0 * (healthy.len() + degraded.len()) as f64 / total as f64;
        if self.panic_threshold == 0.0 && avail == 0 {
            // Envoy gives the healthy hosts all the load here: a few
            // healthy ones among many (availability rounds down to 0)
            // still take traffic; none at all leaves nothing to pick.
            return Partition {
                primary_load: if healthy.is_empty() { 0 } else { 100 },
                primary: healthy,
                secondary: Vec::new(),
                panic: false,
            };
        }
        if avail != 100 && raw < self.panic_threshold {
            return Partition {
                primary: set.order().to_vec(),
                secondary: Vec::new(),
                primary_load: 100,
                panic: true,
            };
        }
        if !with_degraded {
            return Partition {
                primary: healthy,
                secondary: Vec::new(),
                primary_load: 100,
                panic: false,
            };
        }
        // Envoy's distributeLoad: each tier its share rounded down, and
        // what rounding leaves to the healthy tier when it has any.
        let (h_load, d_load) = match avail {
            0 => (0, 0),
            _ => {
                let h = (h_avail * 100 / avail).min(100);
                (h, (d_avail * 100 / avail).min(100 - h))
            }
        };
        let primary_load = if h_avail > 0 { 100 - d_load } else { h_load } as u32;
        Partition {
            primary: healthy,
            secondary: degraded,
            primary_load,
            panic: false,
        }
    }
}

/// The endpoints that take traffic: a primary tier (healthy, or everything
/// in panic) and a secondary tier (degraded) with the primary's load share.
#[derive(Debug, Default)]
pub(crate) struct Partition {
    pub(crate) primary: Vec<u32>,
    pub(crate) secondary: Vec<u32>,
    pub(crate) primary_load: u32,
    pub(crate) panic: bool,
}

/// Two tiers of some per-tier structure and the share of the first.
#[derive(Debug)]
pub(crate) struct Tiers<S> {
    primary: Option<S>,
    secondary: Option<S>,
    primary_load: u32,
    panic: bool,
}

impl<S> Tiers<S> {
    /// Builds each non-empty tier of `p` with `f`.
    pub(crate) fn build<E>(
        p: Partition,
        mut f: impl FnMut(Vec<u32>) -> Result<Option<S>, E>,
    ) -> Result<Self, E> {
        let primary = if p.primary.is_empty() {
            None
        } else {
            f(p.primary)?
        };
        let secondary = if p.secondary.is_empty() {
            None
        } else {
            f(p.secondary)?
        };
        Ok(Tiers {
            primary,
            secondary,
            primary_load: p.primary_load,
            panic: p.panic,
        })
    }

    /// The tier for a request: the primary when `draw % 100 + 1` is within
    /// its load share, else the secondary; `draw` is only called when both
    /// tiers exist.
    #[inline]
    pub(crate) fn select(&self, draw: impl FnOnce() -> u64) -> Option<&S> {
        match (&self.primary, &self.secondary) {
            (Some(p), None) => Some(p),
            (None, s) => s.as_ref(),
            (Some(p), Some(s)) => {
                if (draw() % 100 + 1) as u32 <= self.primary_load {
                    Some(p)
                } else {
                    Some(s)
                }
            }
        }
    }

    /// The primary tier (healthy endpoints, or all of them in panic).
    pub(crate) fn primary(&self) -> Option<&S> {
        self.primary.as_ref()
    }

    /// Whether the set was in panic when built.
    pub(crate) fn panic(&self) -> bool {
        self.panic
    }
}

/// A lock-free pseudo-random source: splitmix64 over an atomic counter.
#[derive(Debug)]
pub(crate) struct Rng(std::sync::atomic::AtomicU64);

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

impl Rng {
    pub(crate) fn new(seed: Option<u64>) -> Self {
        let seed = seed.unwrap_or_else(|| {
            use std::hash::{BuildHasher, Hasher};
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        });
        Rng(std::sync::atomic::AtomicU64::new(seed))
    }

    #[inline]
    pub(crate) fn next(&self) -> u64 {
        let mut z = self
            .0
            .fetch_add(GOLDEN, std::sync::atomic::Ordering::Relaxed)
            .wrapping_add(GOLDEN);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::Endpoint;

    fn set(h: usize, d: usize, u: usize) -> EndpointSet {
        let mut v = Vec::new();
        let mut n = 0u16;
        for (count, health) in [
            (h, Health::Healthy),
            (d, Health::Degraded),
            (u, Health::Unhealthy),
        ] {
            for _ in 0..count {
                n += 1;
                v.push(Endpoint::new(([10, 0, 0, 1], n).into()).health(health));
            }
        }
        EndpointSet::new(v).unwrap()
    }

    #[test]
    fn panic_threshold() {
        let p = HealthPolicy::new();
        // 4 of 10 healthy: 40% < 50% -> panic, all 10.
        let part = p.partition(&set(4, 0, 6), true);
        assert!(part.panic);
        assert_eq!(part.primary.len(), 10);
        // 5 of 10: not in panic; healthy availability 70%, no degraded.
        let part = p.partition(&set(5, 0, 5), true);
        assert!(!part.panic);
        assert_eq!(part.primary.len(), 5);
        // 3 healthy + 3 degraded of 10: 60% raw, no panic; 42/42 -> load 50.
        let part = p.partition(&set(3, 3, 4), true);
        assert!(!part.panic);
        assert_eq!(
            (part.primary.len(), part.secondary.len(), part.primary_load),
            (3, 3, 50)
        );
        // 2 healthy + 3 degraded of 9: 31/46 of 77; Envoy's rounding leaves
        // the remainder to the healthy tier: 41/59, not 40/60.
        let part = p.partition(&set(2, 3, 4), true);
        assert!(!part.panic);
        assert_eq!(part.primary_load, 41);
        // Only degraded ones available: they take it all.
        assert_eq!(p.partition(&set(0, 6, 4), true).primary_load, 0);
        // Hash balancers ignore degraded endpoints.
        let part = p.partition(&set(3, 3, 4), false);
        assert_eq!((part.primary.len(), part.secondary.len()), (3, 0));
        // Threshold 0: never panic; nothing available -> nothing.
        let p0 = HealthPolicy::new().panic_threshold(0.0);
        let part = p0.partition(&set(0, 0, 3), true);
        assert!(part.primary.is_empty() && !part.panic);
        // Availability 100 never panics even under a high threshold.
        let p90 = HealthPolicy::new().panic_threshold(90.0);
        assert!(!p90.partition(&set(8, 0, 2), true).panic);
        assert!(p90.partition(&set(7, 0, 3), true).panic);
    }
}
