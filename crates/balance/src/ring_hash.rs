//! Ring hash ("ketama"), bit-compatible with Envoy's rings.
use crate::endpoint::{Endpoint, EndpointId, EndpointSet};
use crate::error::{BuildError, BuildErrorKind};
use crate::hash::{murmur2_64, xxh64};
use crate::health::{HealthPolicy, Rng, Tiers};
use crate::round_robin::check_set;
use crate::{Balancer, Pick};
use std::sync::Arc;

/// Envoy's default `minimum_ring_size`.
pub const DEFAULT_MIN_RING_SIZE: u64 = 1024;
/// Envoy's default `maximum_ring_size`, also the largest allowed bound.
pub const MAX_RING_SIZE: u64 = 8_388_608;

/// The hash of ring entries (Envoy's `hash_function`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RingHashFunction {
    /// xxHash64, seed 0 (Envoy's default `XX_HASH`).
    #[default]
    XxHash,
    /// libstdc++'s 64-bit MurmurHash2 (`MURMUR_HASH_2`).
    MurmurHash2,
}

impl RingHashFunction {
    /// Hashes `bytes`.
    #[inline]
    pub fn hash(self, bytes: &[u8]) -> u64 {
        match self {
            RingHashFunction::XxHash => xxh64(bytes, 0),
            RingHashFunction::MurmurHash2 => murmur2_64(bytes),
        }
    }
}

/// Consistent hashing on a ring, as Envoy builds it.
///
/// The ring has `ceil(min(ceil(min_w · min_ring) / min_w, max_ring))`
/// entries (`min_w` the smallest normalised weight). Endpoints are walked in
/// host-vector order with Envoy's running `f64` sums, and entry `n` of an
/// endpoint hashes `"<key>_<n>"`. A pick is a binary search for the first
/// entry whose hash is at least the request hash (wrapping to the first);
/// retry attempt `a` takes the entry `a` places further.
///
/// ```
/// use rauta_balance::{Balancer, Endpoint, EndpointSet, Pick, RingHash};
///
/// let set = EndpointSet::new(
///     (90..96).map(|p| Endpoint::new(([127, 0, 0, 1], p).into())).collect(),
/// )?;
/// let ring = RingHash::builder().min_ring_size(12).build(set)?;
/// assert_eq!(ring.len(), 12);
/// // Envoy's RingHashLoadBalancerTest.Basic.
/// assert_eq!(ring.pick(Pick::with_hash(0)).unwrap().address().port(), 94);
/// assert_eq!(ring.pick(Pick::with_hash(3551244743356806948)).unwrap().address().port(), 93);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct RingHash<T = ()> {
    set: Arc<EndpointSet<T>>,
    tiers: Tiers<Ring>,
    rng: Rng,
}

/// A built ring: `(hash, endpoint index)` sorted by hash.
#[derive(Debug, Clone)]
struct Ring {
    hashes: Box<[u64]>,
    hosts: Box<[u32]>,
}

impl Ring {
    #[inline]
    fn lookup(&self, hash: u64, attempt: u32) -> u32 {
        let n = self.hashes.len();
        let mut i = self.hashes.partition_point(|&h| h < hash);
        if i == n {
            i = 0;
        }
        if attempt != 0 {
            i = ((i as u64 + u64::from(attempt)) % n as u64) as usize;
        }
        self.hosts[i]
    }
}

/// Options of [`RingHash`].
#[derive(Debug, Clone)]
pub struct RingHashBuilder {
    health: HealthPolicy,
    min: u64,
    max: u64,
    function: RingHashFunction,
    seed: Option<u64>,
    allow_empty: bool,
}

impl Default for RingHashBuilder {
    fn default() -> Self {
        RingHashBuilder {
            health: HealthPolicy::default(),
            min: DEFAULT_MIN_RING_SIZE,
            max: MAX_RING_SIZE,
            function: RingHashFunction::XxHash,
            seed: None,
            allow_empty: false,
        }
    }
}

impl RingHashBuilder {
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

    /// Sets `minimum_ring_size` (default 1024).
    pub fn min_ring_size(mut self, n: u64) -> Self {
        self.min = n;
        self
    }

    /// Sets `maximum_ring_size` (default and limit 8,388,608).
    ///
    /// ```
    /// use rauta_balance::{Endpoint, EndpointSet, RingHash};
    ///
    /// let set = EndpointSet::new(vec![Endpoint::new(([10, 0, 0, 1], 80).into())])?;
    /// let err = RingHash::builder().min_ring_size(20).max_ring_size(10).build(set).unwrap_err();
    /// assert_eq!(err.to_string(), "ring hash: minimum_ring_size (20) > maximum_ring_size (10)");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_ring_size(mut self, n: u64) -> Self {
        self.max = n;
        self
    }

    /// Sets the entry hash (default xxHash64).
    pub fn hash_function(mut self, f: RingHashFunction) -> Self {
        self.function = f;
        self
    }

    /// Seeds the random hash used by picks without a hash (default: random).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Builds the ring.
    ///
    /// # Errors
    ///
    /// An empty set, an invalid health policy, `min > max`, or a bound above
    /// [`MAX_RING_SIZE`]. No usable endpoint is not an error: picks return `None`.
    pub fn build<T>(self, set: impl Into<Arc<EndpointSet<T>>>) -> Result<RingHash<T>, BuildError> {
        let set = set.into();
        check_set(&set, &self.health, self.allow_empty)?;
        for size in [self.min, self.max] {
            if size > MAX_RING_SIZE {
                return Err(BuildError::new(BuildErrorKind::RingSizeTooLarge {
                    size,
                    max: MAX_RING_SIZE,
                }));
            }
        }
        if self.min > self.max {
            return Err(BuildError::new(BuildErrorKind::RingSizeBounds {
                min: self.min,
                max: self.max,
            }));
        }
        let tiers = Tiers::build(self.health.partition(&set, false), |members| {
            Ok::<_, BuildError>(build_ring(
                &set,
                &members,
                self.min,
                self.max,
                self.function,
            ))
        })?;
        Ok(RingHash {
            set,
            tiers,
            rng: Rng::new(self.seed),
        })
    }
}

fn build_ring<T>(
    set: &EndpointSet<T>,
    members: &[u32],
    min_ring: u64,
    max_ring: u64,
    function: RingHashFunction,
) -> Option<Ring> {
    let (weights, min_w, _max) = set.normalized(members);
    if weights.is_empty() {
        return None;
    }
    let scale = ((min_w * min_ring as f64).ceil() / min_w).min(max_ring as f64);
    let mut entries: Vec<(u64, u32)> = Vec::with_capacity(scale.ceil() as usize);
    let mut buf: Vec<u8> = Vec::with_capacity(64);
    let (mut current, mut target) = (0.0f64, 0.0f64);
    for &(idx, w) in &weights {
        buf.clear();
        buf.extend_from_slice(set.key_at(idx).as_bytes());
        buf.push(b'_');
        let prefix = buf.len();
        // Separate multiply and add: no fused multiply-add, as on x86-64 Envoy.
        let add = scale * w;
        target += add;
        let mut n = 0u64;
        while current < target {
            buf.truncate(prefix);
            push_decimal(&mut buf, n);
            entries.push((function.hash(&buf), idx));
            n += 1;
            current += 1.0;
        }
    }
    if entries.is_empty() {
        return None;
    }
    // Equal hashes (Envoy leaves their order unspecified) go by endpoint index.
    entries.sort_unstable();
    Some(Ring {
        hashes: entries.iter().map(|&(h, _)| h).collect(),
        hosts: entries.iter().map(|&(_, i)| i).collect(),
    })
}

impl RingHash {
    /// Options.
    pub fn builder() -> RingHashBuilder {
        RingHashBuilder::default()
    }
}

/// Appends the decimal digits of `n`.
fn push_decimal(buf: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

impl<T> RingHash<T> {
    /// Builds with the default options.
    ///
    /// # Errors
    ///
    /// An empty set.
    pub fn new(set: impl Into<Arc<EndpointSet<T>>>) -> Result<Self, BuildError> {
        RingHashBuilder::default().build(set)
    }

    /// Number of ring entries (0 when no endpoint is usable).
    pub fn len(&self) -> usize {
        self.tiers.primary().map_or(0, |r| r.hashes.len())
    }

    /// Whether the ring is empty (every pick is `None`).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ring entries `(hash, endpoint)`, sorted by hash.
    pub fn entries(&self) -> impl Iterator<Item = (u64, EndpointId)> + '_ {
        self.tiers
            .primary()
            .into_iter()
            .flat_map(|r| r.hashes.iter().zip(r.hosts.iter()))
            .map(|(&h, &i)| (h, EndpointId::new(i)))
    }

    /// Whether the ring was built in panic (from every endpoint).
    pub fn in_panic(&self) -> bool {
        self.tiers.panic()
    }
}

impl<T: Send + Sync + std::fmt::Debug> Balancer for RingHash<T> {
    type Data = T;

    #[inline]
    fn pick(&self, pick: Pick) -> Option<&Endpoint<T>> {
        let ring = self.tiers.primary()?;
        let h = match pick.hash_value() {
            Some(h) => h,
            None => self.rng.next(),
        };
        Some(self.set.endpoint_at(ring.lookup(h, pick.attempt_value())))
    }

    fn endpoints(&self) -> &Arc<EndpointSet<T>> {
        &self.set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal() {
        for n in [0u64, 7, 10, 99, 1024, u64::MAX] {
            let mut b = b"k_".to_vec();
            push_decimal(&mut b, n);
            assert_eq!(b, format!("k_{n}").into_bytes());
        }
    }
}
