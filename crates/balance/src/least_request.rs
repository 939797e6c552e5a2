//! Least request (power of two choices) and random.
use crate::endpoint::{Endpoint, EndpointSet};
use crate::error::{BuildError, BuildErrorKind};
use crate::health::{HealthPolicy, Rng, Tiers};
use crate::round_robin::{check_set, Members};
use crate::{Balancer, Pick};
use std::sync::Arc;

/// Candidates of one tier: members and, when weights differ, cumulative
/// weights for weighted sampling.
#[derive(Debug)]
struct Candidates {
    members: Members,
    cumulative: Option<Box<[u64]>>,
}

impl Candidates {
    fn new<T>(set: &EndpointSet<T>, members: Vec<u32>) -> Self {
        let w0 = set.endpoint_at(members[0]).weight_value();
        let equal = members
            .iter()
            .all(|&i| set.endpoint_at(i).weight_value() == w0);
        let cumulative = (!equal).then(|| {
            let mut acc = 0u64;
            members
                .iter()
                .map(|&i| {
                    acc += u64::from(set.endpoint_at(i).weight_value());
                    acc
                })
                .collect()
        });
        Candidates {
            members: Members::new(members),
            cumulative,
        }
    }

    /// One sample: uniform with equal weights, else proportional to weight.
    #[inline]
    fn sample(&self, r: u64) -> u32 {
        match &self.cumulative {
            None => self.members.at(r),
            Some(c) => {
                let total = c[c.len() - 1];
                let x = r % total;
                self.members.list[c.partition_point(|&acc| acc <= x)]
            }
        }
    }
}

/// Least request with N random choices (power of two choices by default).
///
/// Each pick samples `choice_count` endpoints and keeps the best. With equal
/// weights the best has the fewest active requests (ties keep the earlier
/// sample), as in Envoy. With unequal weights the samples are drawn in
/// proportion to weight and the best has the largest
/// `weight / (active + 1)^active_request_bias` — Envoy's effective weight
/// (bias 1.0 by default). Bias 0 turns it into weighted random, where
/// Envoy uses weighted round robin.
///
/// Active requests are counted by [`Endpoint::start_request`] guards.
///
/// ```
/// use rauta_balance::{Balancer, Endpoint, EndpointSet, LeastRequest, Pick};
///
/// let set = EndpointSet::new(vec![
///     Endpoint::new(([10, 0, 0, 1], 80).into()),
///     Endpoint::new(([10, 0, 0, 2], 80).into()),
/// ])?;
/// let lr = LeastRequest::builder().choice_count(8).seed(1).build(set)?;
/// let busy = lr.endpoints().endpoints()[0].start_request();
/// // With eight samples of two endpoints, the idle one is all but certain.
/// let picked = lr.pick(Pick::new()).unwrap();
/// assert_eq!(picked.id().index(), 1);
/// drop(busy);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct LeastRequest<T = ()> {
    set: Arc<EndpointSet<T>>,
    tiers: Tiers<Candidates>,
    rng: Rng,
    choice_count: u32,
    bias: f64,
}

/// Options of [`LeastRequest`].
#[derive(Debug, Clone)]
pub struct LeastRequestBuilder {
    health: HealthPolicy,
    seed: Option<u64>,
    choice_count: u32,
    bias: f64,
    allow_empty: bool,
}

impl Default for LeastRequestBuilder {
    fn default() -> Self {
        LeastRequestBuilder {
            health: HealthPolicy::default(),
            seed: None,
            choice_count: 2,
            bias: 1.0,
            allow_empty: false,
        }
    }
}

impl LeastRequestBuilder {
    /// Accepts an empty endpoint set, every pick then being `None`,
    /// instead of failing with [`BuildErrorKind::NoEndpoints`]. For updates
    /// from service discovery, where an empty set is a legitimate state.
    ///
    /// [`BuildErrorKind::NoEndpoints`]: crate::BuildErrorKind::NoEndpoints
    pub fn allow_empty(mut self, yes: bool) -> Self {
        self.allow_empty = yes;
        self
    }

    /// Sets the health policy.
    pub fn health(mut self, health: HealthPolicy) -> Self {
        self.health = health;
        self
    }

    /// Seeds the random samples (default: random).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Number of samples per pick (Envoy's `choice_count`, default 2).
    pub fn choice_count(mut self, n: u32) -> Self {
        self.choice_count = n;
        self
    }

    /// Envoy's `active_request_bias` (default 1.0).
    pub fn active_request_bias(mut self, bias: f64) -> Self {
        self.bias = bias;
        self
    }

    /// Builds the balancer.
    ///
    /// # Errors
    ///
    /// An empty set, an invalid health policy, a choice count below 2, or a
    /// negative or non-finite bias.
    ///
    /// ```
    /// use rauta_balance::{BuildErrorKind, Endpoint, EndpointSet, LeastRequest};
    ///
    /// let set = EndpointSet::new(vec![Endpoint::new(([10, 0, 0, 1], 80).into())])?;
    /// let err = LeastRequest::builder().choice_count(1).build(set).unwrap_err();
    /// assert!(matches!(err.kind(), BuildErrorKind::ChoiceCount { value: 1 }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn build<T>(
        self,
        set: impl Into<Arc<EndpointSet<T>>>,
    ) -> Result<LeastRequest<T>, BuildError> {
        let set = set.into();
        check_set(&set, &self.health, self.allow_empty)?;
        if self.choice_count < 2 {
            return Err(BuildError::new(BuildErrorKind::ChoiceCount {
                value: self.choice_count,
            }));
        }
        if !self.bias.is_finite() || self.bias < 0.0 {
            return Err(BuildError::new(BuildErrorKind::ActiveRequestBias {
                value: self.bias,
            }));
        }
        let tiers = Tiers::build(self.health.partition(&set, true), |m| {
            Ok::<_, BuildError>(Some(Candidates::new(&set, m)))
        })?;
        Ok(LeastRequest {
            set,
            tiers,
            rng: Rng::new(self.seed),
            choice_count: self.choice_count,
            bias: self.bias,
        })
    }
}

impl LeastRequest {
    /// Options.
    pub fn builder() -> LeastRequestBuilder {
        LeastRequestBuilder::default()
    }
}

impl<T> LeastRequest<T> {
    /// Builds with the default options.
    ///
    /// # Errors
    ///
    /// An empty set.
    pub fn new(set: impl Into<Arc<EndpointSet<T>>>) -> Result<Self, BuildError> {
        LeastRequestBuilder::default().build(set)
    }

    #[inline]
    fn effective(&self, idx: u32) -> f64 {
        let e = self.set.endpoint_at(idx);
        let active = e.load().active() as f64 + 1.0;
        let w = f64::from(e.weight_value());
        if self.bias == 1.0 {
            w / active
        } else {
            w / active.powf(self.bias)
        }
    }
}

impl<T: Send + Sync + std::fmt::Debug> Balancer for LeastRequest<T> {
    type Data = T;

    #[inline]
    fn pick(&self, _pick: Pick) -> Option<&Endpoint<T>> {
        let c = self.tiers.select(|| self.rng.next())?;
        let mut best = c.sample(self.rng.next());
        if c.cumulative.is_none() {
            let mut best_active = self.set.endpoint_at(best).load().active();
            for _ in 1..self.choice_count {
                let x = c.sample(self.rng.next());
                let a = self.set.endpoint_at(x).load().active();
                if a < best_active {
                    (best, best_active) = (x, a);
                }
            }
        } else if self.bias != 0.0 {
            let mut best_w = self.effective(best);
            for _ in 1..self.choice_count {
                let x = c.sample(self.rng.next());
                let w = self.effective(x);
                if w > best_w {
                    (best, best_w) = (x, w);
                }
            }
        }
        Some(self.set.endpoint_at(best))
    }

    fn endpoints(&self) -> &Arc<EndpointSet<T>> {
        &self.set
    }
}

/// Uniformly random choice among the endpoints that take traffic (Envoy's
/// `RANDOM`, which ignores weights). Lock-free.
///
/// ```
/// use rauta_balance::{Balancer, Endpoint, EndpointSet, Pick, Random};
///
/// let set = EndpointSet::new(vec![Endpoint::new(([10, 0, 0, 1], 80).into())])?;
/// let r = Random::new(set)?;
/// assert_eq!(r.pick(Pick::new()).unwrap().address().port(), 80);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Random<T = ()> {
    set: Arc<EndpointSet<T>>,
    tiers: Tiers<Members>,
    rng: Rng,
}

/// Options of [`Random`].
#[derive(Debug, Clone, Default)]
pub struct RandomBuilder {
    health: HealthPolicy,
    seed: Option<u64>,
    allow_empty: bool,
}

impl RandomBuilder {
    /// Accepts an empty endpoint set, every pick then being `None`,
    /// instead of failing with [`BuildErrorKind::NoEndpoints`]. For updates
    /// from service discovery, where an empty set is a legitimate state.
    ///
    /// [`BuildErrorKind::NoEndpoints`]: crate::BuildErrorKind::NoEndpoints
    pub fn allow_empty(mut self, yes: bool) -> Self {
        self.allow_empty = yes;
        self
    }

    /// Sets the health policy.
    pub fn health(mut self, health: HealthPolicy) -> Self {
        self.health = health;
        self
    }

    /// Seeds the draws (default: random).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Builds the balancer.
    ///
    /// # Errors
    ///
    /// An empty set or an invalid health policy.
    pub fn build<T>(self, set: impl Into<Arc<EndpointSet<T>>>) -> Result<Random<T>, BuildError> {
        let set = set.into();
        check_set(&set, &self.health, self.allow_empty)?;
        let tiers = Tiers::build(self.health.partition(&set, true), |m| {
            Ok::<_, BuildError>(Some(Members::new(m)))
        })?;
        Ok(Random {
            set,
            tiers,
            rng: Rng::new(self.seed),
        })
    }
}

impl Random {
    /// Options.
    pub fn builder() -> RandomBuilder {
        RandomBuilder::default()
    }
}

impl<T> Random<T> {
    /// Builds with the default options.
    ///
    /// # Errors
    ///
    /// An empty set.
    pub fn new(set: impl Into<Arc<EndpointSet<T>>>) -> Result<Self, BuildError> {
        RandomBuilder::default().build(set)
    }
}

impl<T: Send + Sync + std::fmt::Debug> Balancer for Random<T> {
    type Data = T;

    #[inline]
    fn pick(&self, _pick: Pick) -> Option<&Endpoint<T>> {
        let r = self.rng.next();
        let tier = self.tiers.select(|| r.rotate_left(32))?;
        Some(self.set.endpoint_at(tier.at(r)))
    }

    fn endpoints(&self) -> &Arc<EndpointSet<T>> {
        &self.set
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Health;

    fn set(weights: &[u32]) -> Arc<EndpointSet> {
        Arc::new(
            EndpointSet::new(
                weights
                    .iter()
                    .enumerate()
                    .map(|(i, &w)| Endpoint::new(([10, 0, 0, 1], i as u16 + 1).into()).weight(w))
                    .collect(),
            )
            .unwrap(),
        )
    }

    #[test]
    fn p2c_avoids_the_busiest() {
        let s = set(&[1, 1, 1, 1]);
        let lr = LeastRequest::builder()
            .seed(3)
            .build(Arc::clone(&s))
            .unwrap();
        let _busy: Vec<_> = (0..5).map(|_| s.endpoints()[2].start_request()).collect();
        // With two choices the busiest is picked only when sampled twice.
        let hits = (0..4000)
            .filter(|_| lr.pick(Pick::new()).unwrap().id().index() == 2)
            .count();
        assert!(hits < 500, "{hits}");
        assert!(hits > 100, "{hits}");
    }

    #[test]
    fn weighted_samples_follow_weights_and_bias() {
        let s = set(&[1, 9]);
        let lr = LeastRequest::builder()
            .seed(9)
            .active_request_bias(0.0)
            .build(Arc::clone(&s))
            .unwrap();
        let heavy = (0..10_000)
            .filter(|_| lr.pick(Pick::new()).unwrap().id().index() == 1)
            .count();
        assert!((8_700..=9_300).contains(&heavy), "{heavy}");
        // Bias 1: the heavy endpoint with 20 active requests has effective
        // weight 9/21 < 1, so the light one wins whenever both are sampled.
        let lr = LeastRequest::builder()
            .seed(9)
            .build(Arc::clone(&s))
            .unwrap();
        let _busy: Vec<_> = (0..20).map(|_| s.endpoints()[1].start_request()).collect();
        let heavy = (0..10_000)
            .filter(|_| lr.pick(Pick::new()).unwrap().id().index() == 1)
            .count();
        // P(both samples heavy) = 0.81.
        assert!((7_800..=8_400).contains(&heavy), "{heavy}");
    }

    #[test]
    fn random_skips_unhealthy() {
        let s = EndpointSet::new(vec![
            Endpoint::new(([10, 0, 0, 1], 80).into()),
            Endpoint::new(([10, 0, 0, 2], 80).into()),
            Endpoint::new(([10, 0, 0, 3], 80).into()).health(Health::Unhealthy),
        ])
        .unwrap();
        let r = Random::builder().seed(5).build(s).unwrap();
        let mut seen = [0usize; 3];
        for _ in 0..3000 {
            seen[r.pick(Pick::new()).unwrap().id().index()] += 1;
        }
        assert_eq!(seen[2], 0);
        assert!(seen[0] > 1300 && seen[1] > 1300, "{seen:?}");
    }
}
