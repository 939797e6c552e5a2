//! Envoy-grade load balancing for any proxy: endpoints in, a pick out, in
//! nanoseconds, without locks and without a runtime.
//!
//! ```
//! use rauta_balance::{Balancer, Endpoint, EndpointSet, HashPolicy, Maglev, Pick, Shared};
//! # use rauta_balance::HashInput;
//! # struct Req(&'static str);
//! # impl HashInput for Req {
//! #     fn for_each_header<'a>(&'a self, name: &str, f: &mut dyn FnMut(&'a [u8])) {
//! #         if name == "x-user" { f(self.0.as_bytes()) }
//! #     }
//! # }
//!
//! // An immutable, validated endpoint set.
//! let set = EndpointSet::new(vec![
//!     Endpoint::new("10.0.0.1:8080".parse()?),
//!     Endpoint::new("10.0.0.2:8080".parse()?).weight(2),
//!     Endpoint::new("10.0.0.3:8080".parse()?),
//! ])?;
//!
//! // A Maglev table, bit-identical to Envoy's, behind a lock-free handle.
//! let balancer = Shared::new(Maglev::new(set)?);
//!
//! // Per request: hash what the route's policy names, then pick.
//! let policy = HashPolicy::builder().header("x-user").build();
//! let hash = policy.hash(&Req("alice"));
//! let lb = balancer.load();
//! let first = lb.pick(Pick::from_hash(hash)).unwrap().address();
//! // The same user always lands on the same endpoint.
//! assert_eq!(lb.pick(Pick::from_hash(hash)).unwrap().address(), first);
//!
//! // An update builds a new set and swaps it in; pickers never block.
//! let set = EndpointSet::new(vec![Endpoint::new("10.0.0.4:8080".parse()?)])?;
//! balancer.store(Maglev::new(set)?);
//! assert_eq!(balancer.load().pick(Pick::from_hash(hash)).unwrap().address().port(), 8080);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Balancers
//!
//! | Type | Envoy policy | Pick |
//! |---|---|---|
//! | [`RoundRobin`] | `ROUND_ROBIN`, equal weights | one atomic increment, one array read |
//! | [`WeightedRoundRobin`] | `ROUND_ROBIN` with weights (EDF) | the same, over a precomputed EDF period |
//! | [`LeastRequest`] | `LEAST_REQUEST` (P2C, `active_request_bias`) | N random samples, fewest active requests |
//! | [`Random`] | `RANDOM` | one random draw |
//! | [`RingHash`] | `RING_HASH` (xxHash, MurmurHash2) | binary search on the ring |
//! | [`Maglev`] | `MAGLEV` | one modulo, one array read |
//!
//! All of them implement the one small trait [`Balancer`]. Maglev and ring
//! hash build exactly Envoy's tables (checked against Envoy's own test
//! vectors by `rauta-conformance`), so traffic can move between Envoy and a
//! RAUTA proxy, or split across both, without remapping a session.
//!
//! # Health
//!
//! Endpoints carry a [`Health`]. Balancers send traffic to healthy
//! endpoints, apply Envoy's panic threshold (too few healthy: use all) and,
//! except for the hash balancers, give degraded endpoints the share the
//! healthy ones cannot carry. See [`HealthPolicy`].
//!
//! # Errors, never panics
//!
//! Bad input is a typed [`BuildError`] when building: an empty set (unless
//! the builder's `allow_empty(true)` accepts it), a weight
//! of 0, a Maglev table size that is not prime or too large, ring bounds the
//! wrong way round, duplicate hash keys. Picking never fails with an error;
//! when nothing is usable (every locality weight 0, every endpoint
//! unhealthy with panic disabled), a pick is `None`.
//!
//! # Crate features
//!
//! - `http` (off): `HttpInput`, a [`HashInput`] over `http::Request`.
//!
//! # Hot path
//!
//! Picks allocate nothing (a test with a counting global allocator checks
//! every balancer) and take no lock, except weighted round robin with a
//! period above [`WeightedRoundRobinBuilder::max_table_len`].
#![forbid(unsafe_code)]
#![deny(rustdoc::broken_intra_doc_links)]

mod endpoint;
mod error;
mod fastmod;
pub mod hash;
mod health;
mod least_request;
mod maglev;
mod policy;
mod ring_hash;
mod round_robin;

pub use endpoint::{
    Endpoint, EndpointId, EndpointSet, EndpointSetBuilder, Health, Load, Locality, RequestGuard,
};
pub use error::{BuildError, BuildErrorKind};
pub use health::HealthPolicy;
pub use least_request::{LeastRequest, LeastRequestBuilder, Random, RandomBuilder};
pub use maglev::{Maglev, MaglevBuilder, MaglevTable, DEFAULT_TABLE_SIZE, MAX_TABLE_SIZE};
#[cfg(feature = "http")]
pub use policy::HttpInput;
pub use policy::{HashInput, HashPolicy, HashPolicyBuilder};
pub use ring_hash::{
    RingHash, RingHashBuilder, RingHashFunction, DEFAULT_MIN_RING_SIZE, MAX_RING_SIZE,
};
pub use round_robin::{
    RoundRobin, RoundRobinBuilder, WeightedRoundRobin, WeightedRoundRobinBuilder,
};

use std::sync::Arc;

/// What a pick knows about the request: an optional 64-bit hash (from a
/// [`HashPolicy`]) and the retry attempt (0 for the first try).
///
/// Hash balancers use the hash (a random one when absent); retry attempt
/// `a > 0` moves Maglev to slot `(hash XOR (2^64 − a)) % M` and ring hash
/// `a` entries further, as Envoy's retry host predicates do. Other
/// balancers ignore both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pick {
    hash: Option<u64>,
    attempt: u32,
}

impl Pick {
    /// No hash, first attempt.
    #[inline]
    pub const fn new() -> Self {
        Pick {
            hash: None,
            attempt: 0,
        }
    }

    /// With hash `hash`.
    #[inline]
    pub const fn with_hash(hash: u64) -> Self {
        Pick {
            hash: Some(hash),
            attempt: 0,
        }
    }

    /// With the hash a [`HashPolicy`] returned, if any.
    #[inline]
    pub const fn from_hash(hash: Option<u64>) -> Self {
        Pick { hash, attempt: 0 }
    }

    /// Sets the retry attempt.
    #[inline]
    pub const fn attempt(self, attempt: u32) -> Self {
        Pick { attempt, ..self }
    }

    /// The hash, if any.
    #[inline]
    pub const fn hash_value(&self) -> Option<u64> {
        self.hash
    }

    /// The retry attempt.
    #[inline]
    pub const fn attempt_value(&self) -> u32 {
        self.attempt
    }
}

/// A load balancer: picks one endpoint of its set per request.
///
/// Built once from an [`EndpointSet`], then shared by every worker; `pick`
/// takes `&self`, allocates nothing and returns `None` only when no
/// endpoint is usable.
pub trait Balancer: std::fmt::Debug + Send + Sync {
    /// The user data of the endpoints.
    type Data;

    /// Picks an endpoint.
    fn pick(&self, pick: Pick) -> Option<&Endpoint<Self::Data>>;

    /// The endpoint set this balancer was built from.
    fn endpoints(&self) -> &Arc<EndpointSet<Self::Data>>;
}

/// A balancer behind an [`arc_swap::ArcSwap`]: pickers load the current
/// one without locking, updates store a new one; in-flight picks keep the
/// one they loaded.
#[derive(Debug)]
pub struct Shared<B> {
    current: arc_swap::ArcSwap<B>,
}

impl<B> Shared<B> {
    /// Wraps `balancer`.
    pub fn new(balancer: B) -> Self {
        Shared {
            current: arc_swap::ArcSwap::from_pointee(balancer),
        }
    }

    /// The current balancer (no lock, no allocation).
    #[inline]
    pub fn load(&self) -> arc_swap::Guard<Arc<B>> {
        self.current.load()
    }

    /// The current balancer as an owned `Arc`.
    pub fn load_full(&self) -> Arc<B> {
        self.current.load_full()
    }

    /// Replaces the balancer.
    pub fn store(&self, balancer: B) {
        self.current.store(Arc::new(balancer));
    }

    /// Replaces the balancer, returning the previous one.
    pub fn swap(&self, balancer: B) -> Arc<B> {
        self.current.swap(Arc::new(balancer))
    }
}

pub use arc_swap;

#[cfg(test)]
mod tests {
    use super::*;

    fn all(set: &Arc<EndpointSet>, health: HealthPolicy) -> Vec<Box<dyn Balancer<Data = ()>>> {
        let s = || Arc::clone(set);
        vec![
            Box::new(
                RoundRobin::builder()
                    .allow_empty(true)
                    .health(health)
                    .build(s())
                    .unwrap(),
            ),
            Box::new(
                WeightedRoundRobin::builder()
                    .allow_empty(true)
                    .health(health)
                    .build(s())
                    .unwrap(),
            ),
            Box::new(
                LeastRequest::builder()
                    .allow_empty(true)
                    .health(health)
                    .build(s())
                    .unwrap(),
            ),
            Box::new(
                Random::builder()
                    .allow_empty(true)
                    .health(health)
                    .build(s())
                    .unwrap(),
            ),
            Box::new(
                Maglev::builder()
                    .allow_empty(true)
                    .health(health)
                    .build(s())
                    .unwrap(),
            ),
            Box::new(
                RingHash::builder()
                    .allow_empty(true)
                    .health(health)
                    .build(s())
                    .unwrap(),
            ),
        ]
    }

    #[test]
    fn empty_sets_pick_none_when_allowed() {
        let empty: Arc<EndpointSet> = Arc::new(EndpointSet::new(vec![]).unwrap());
        for lb in all(&empty, HealthPolicy::new()) {
            assert!(lb.pick(Pick::with_hash(7)).is_none(), "{lb:?}");
        }
        let err = RoundRobin::new(Arc::clone(&empty)).unwrap_err();
        assert!(matches!(err.kind(), BuildErrorKind::NoEndpoints));
    }

    #[test]
    fn unhealthy_sets_panic_or_pick_none() {
        let set = Arc::new(
            EndpointSet::new(
                (1..=4u8)
                    .map(|i| Endpoint::new(([10, 0, 0, i], 80).into()).health(Health::Unhealthy))
                    .collect(),
            )
            .unwrap(),
        );
        // Default threshold 50%: panic, so unhealthy endpoints take traffic.
        for lb in all(&set, HealthPolicy::new()) {
            assert!(lb.pick(Pick::with_hash(7)).is_some(), "{lb:?}");
        }
        // Panic disabled: nothing is usable.
        for lb in all(&set, HealthPolicy::new().panic_threshold(0.0)) {
            assert!(lb.pick(Pick::with_hash(7)).is_none(), "{lb:?}");
        }
    }

    #[test]
    fn a_few_healthy_among_many_take_traffic_with_panic_disabled() {
        // 1 healthy of 141: availability rounds down to 0 (100 * 1 / 141),
        // yet, as in Envoy, the healthy endpoint takes all the load.
        let set = Arc::new(
            EndpointSet::new(
                (0..141u32)
                    .map(|i| {
                        let e =
                            Endpoint::new(([10, 0, (i / 256) as u8, (i % 256) as u8], 80).into());
                        if i == 70 {
                            e
                        } else {
                            e.health(Health::Unhealthy)
                        }
                    })
                    .collect(),
            )
            .unwrap(),
        );
        let healthy: std::net::SocketAddr = ([10, 0, 0, 70], 80).into();
        for lb in all(&set, HealthPolicy::new().panic_threshold(0.0)) {
            for h in 0..50u64 {
                let got = lb.pick(Pick::with_hash(h.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
                assert_eq!(got.map(|e| e.address()), Some(healthy), "{lb:?}");
            }
        }
    }

    #[test]
    fn healthy_endpoints_only_outside_panic() {
        let set = Arc::new(
            EndpointSet::new(
                (1..=4u8)
                    .map(|i| {
                        let e = Endpoint::new(([10, 0, 0, i], 80).into());
                        if i == 4 {
                            e.health(Health::Unhealthy)
                        } else {
                            e
                        }
                    })
                    .collect(),
            )
            .unwrap(),
        );
        for lb in all(&set, HealthPolicy::new()) {
            for h in 0..500u64 {
                let e = lb
                    .pick(Pick::with_hash(h.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
                    .unwrap();
                assert_ne!(e.id().index(), 3, "{lb:?}");
            }
        }
        let m = Maglev::new(Arc::clone(&set)).unwrap();
        assert!(!m.in_panic());
        assert_eq!(m.table().unwrap().entries(EndpointId::new(3)), 0);
    }

    #[test]
    fn degraded_endpoints_take_the_remaining_share() {
        // 3 healthy, 3 degraded, 4 unhealthy: healthy availability 42%,
        // degraded 42% -> half the picks each for non-hash balancers.
        let set = Arc::new(
            EndpointSet::new(
                (0..10u8)
                    .map(|i| {
                        let h = match i {
                            0..=2 => Health::Healthy,
                            3..=5 => Health::Degraded,
                            _ => Health::Unhealthy,
                        };
                        Endpoint::new(([10, 0, 0, i], 80).into()).health(h)
                    })
                    .collect(),
            )
            .unwrap(),
        );
        let rr = RoundRobin::builder()
            .seed(11)
            .build(Arc::clone(&set))
            .unwrap();
        let mut seen = [0u32; 10];
        for _ in 0..6000 {
            seen[rr.pick(Pick::new()).unwrap().id().index()] += 1;
        }
        let healthy: u32 = seen[..3].iter().sum();
        let degraded: u32 = seen[3..6].iter().sum();
        assert_eq!(seen[6..].iter().sum::<u32>(), 0);
        assert!((2700..=3300).contains(&healthy), "{seen:?}");
        assert!((2700..=3300).contains(&degraded), "{seen:?}");
        // Hash balancers table the healthy endpoints only.
        let m = Maglev::new(Arc::clone(&set)).unwrap();
        let t = m.table().unwrap();
        assert_eq!(
            (3..10).map(|i| t.entries(EndpointId::new(i))).sum::<u32>(),
            0
        );
    }
}
