//! Maglev, bit-compatible with Envoy's tables.
use crate::endpoint::{Endpoint, EndpointId, EndpointSet};
use crate::error::{BuildError, BuildErrorKind};
use crate::fastmod::FastMod;
use crate::hash::xxh64;
use crate::health::{HealthPolicy, Rng, Tiers};
use crate::round_robin::check_set;
use crate::{Balancer, Pick};
use std::sync::Arc;

/// Envoy's default Maglev table size.
pub const DEFAULT_TABLE_SIZE: u64 = 65537;
/// Envoy's largest Maglev table size (proto limit).
pub const MAX_TABLE_SIZE: u64 = 5_000_011;

/// Maglev consistent hashing (Eisenbud et al., NSDI '16) as Envoy builds it.
///
/// The table is filled exactly as Envoy ≥ 1.27 fills it: entries sorted by
/// hash key bytes, `offset = xxh64(key, 0) % M`, `skip = xxh64(key, 1) %
/// (M − 1) + 1`, and weights applied through Envoy's floating-point
/// `target` bookkeeping, so a fleet can move between Envoy and RAUTA
/// without remapping a session. A pick is one modulo and one array read:
/// `table[hash % M]`; retry attempt `a` uses `hash XOR (2^64 − a)`.
///
/// The table holds healthy endpoints (all of them in panic), with
/// normalised weights per locality when localities are declared.
///
/// ```
/// use rauta_balance::{Balancer, Endpoint, EndpointSet, Maglev, Pick};
///
/// let set = EndpointSet::new(
///     (90..96).map(|p| Endpoint::new(([127, 0, 0, 1], p).into())).collect(),
/// )?;
/// let maglev = Maglev::builder().table_size(7).build(set)?;
/// let table: Vec<u16> = maglev
///     .table()
///     .unwrap()
///     .iter()
///     .map(|id| maglev.endpoints().get(id).unwrap().address().port())
///     .collect();
/// // Envoy's MaglevLoadBalancerTest.Basic.
/// assert_eq!(table, [92, 94, 90, 91, 95, 90, 93]);
/// assert_eq!(maglev.pick(Pick::with_hash(10)).unwrap().address().port(), 91);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Maglev<T = ()> {
    set: Arc<EndpointSet<T>>,
    tiers: Tiers<MaglevTable>,
    rng: Rng,
}

/// A filled Maglev lookup table.
#[derive(Debug, Clone)]
pub struct MaglevTable {
    slots: Box<[u32]>,
    counts: Box<[u32]>,
    modulo: FastMod,
}

impl MaglevTable {
    /// Table size M.
    #[inline]
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Always false: a table has at least 2 slots.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The endpoint in slot `i`.
    #[inline]
    pub fn slot(&self, i: usize) -> Option<EndpointId> {
        self.slots.get(i).map(|&s| EndpointId::new(s))
    }

    /// The slots in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = EndpointId> + '_ {
        self.slots.iter().map(|&s| EndpointId::new(s))
    }

    /// Number of slots held by endpoint `id` (0 for endpoints not in the table).
    pub fn entries(&self, id: EndpointId) -> u32 {
        self.counts.get(id.index()).copied().unwrap_or(0)
    }

    /// Slot for `hash` on retry attempt `attempt`.
    #[inline]
    fn lookup(&self, hash: u64, attempt: u32) -> u32 {
        let h = if attempt == 0 {
            hash
        } else {
            hash ^ 0u64.wrapping_sub(u64::from(attempt))
        };
        self.slots[self.modulo.rem(h) as usize]
    }
}

/// Options of [`Maglev`].
#[derive(Debug, Clone)]
pub struct MaglevBuilder {
    health: HealthPolicy,
    table_size: u64,
    unsorted: bool,
    seed: Option<u64>,
    allow_empty: bool,
}

impl Default for MaglevBuilder {
    fn default() -> Self {
        MaglevBuilder {
            health: HealthPolicy::default(),
            table_size: DEFAULT_TABLE_SIZE,
            unsorted: false,
            seed: None,
            allow_empty: false,
        }
    }
}

impl MaglevBuilder {
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

    /// Sets the table size M: a prime, at most [`MAX_TABLE_SIZE`]; default
    /// [`DEFAULT_TABLE_SIZE`]. Keep M above 100 × endpoints for balance
    /// within 1%.
    ///
    /// ```
    /// use rauta_balance::{BuildErrorKind, Endpoint, EndpointSet, Maglev};
    ///
    /// let set = EndpointSet::new(vec![Endpoint::new(([10, 0, 0, 1], 80).into())])?;
    /// let err = Maglev::builder().table_size(8).build(set).unwrap_err();
    /// assert_eq!(err.to_string(), "maglev table size 8 is not a prime number");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn table_size(mut self, m: u64) -> Self {
        self.table_size = m;
        self
    }

    /// Fills in host-vector order instead of sorting by key, as Envoy before
    /// 1.27 did (tables then depend on endpoint order). For migrations only.
    pub fn legacy_unsorted(mut self, yes: bool) -> Self {
        self.unsorted = yes;
        self
    }

    /// Seeds the random hash used by picks without a hash (default: random).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Builds the table.
    ///
    /// # Errors
    ///
    /// An empty set, an invalid health policy, or a table size that is not
    /// prime or above [`MAX_TABLE_SIZE`]. No usable endpoint (for example
    /// every locality weight 0) is not an error: picks return `None`.
    pub fn build<T>(self, set: impl Into<Arc<EndpointSet<T>>>) -> Result<Maglev<T>, BuildError> {
        let set = set.into();
        check_set(&set, &self.health, self.allow_empty)?;
        let m = self.table_size;
        if m > MAX_TABLE_SIZE {
            return Err(BuildError::new(BuildErrorKind::TableSizeTooLarge {
                size: m,
                max: MAX_TABLE_SIZE,
            }));
        }
        if !is_prime(m) {
            return Err(BuildError::new(BuildErrorKind::TableSizeNotPrime {
                size: m,
            }));
        }
        let unsorted = self.unsorted;
        let tiers = Tiers::build(self.health.partition(&set, false), |members| {
            Ok::<_, BuildError>(build_table(&set, &members, m, unsorted))
        })?;
        Ok(Maglev {
            set,
            tiers,
            rng: Rng::new(self.seed),
        })
    }
}

/// Whether `n` is prime (trial division; n ≤ 5,000,011 here).
fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    if n.is_multiple_of(2) {
        return n == 2;
    }
    let mut d = 3;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 2;
    }
    true
}

struct BuildEntry<'a> {
    key: &'a str,
    idx: u32,
    weight: f64,
    skip: u64,
    target: f64,
    /// Current probe `(offset + skip * next) % M`, advanced by adding `skip`.
    pos: u64,
}

fn build_table<T>(
    set: &EndpointSet<T>,
    members: &[u32],
    m: u64,
    unsorted: bool,
) -> Option<MaglevTable> {
    let (weights, _min, max_w) = set.normalized(members);
    if weights.is_empty() {
        return None;
    }
    let mut entries: Vec<BuildEntry<'_>> = weights
        .iter()
        .map(|&(idx, weight)| {
            let key = set.key_at(idx);
            BuildEntry {
                key,
                idx,
                weight,
                skip: xxh64(key.as_bytes(), 1) % (m - 1) + 1,
                target: 0.0,
                pos: xxh64(key.as_bytes(), 0) % m,
            }
        })
        .collect();
    if !unsorted {
        entries.sort_by(|a, b| a.key.as_bytes().cmp(b.key.as_bytes()));
    }
    const EMPTY: u32 = u32::MAX;
    let mut slots = vec![EMPTY; m as usize];
    // Occupancy as a bitset: M = 65537 needs 8 KiB, which stays in L1
    // while the probes skip around the table.
    let mut taken = vec![0u64; (m as usize).div_ceil(64)];
    let mut counts = vec![0u32; set.len()];
    let mut filled = 0u64;
    let mut round: u32 = 1;
    'fill: loop {
        for e in entries.iter_mut() {
            if f64::from(round) * e.weight < e.target {
                continue;
            }
            e.target += max_w;
            // Probe (offset + skip * next) % M for next = 0, 1, ...; offset
            // and skip are below M, so adding skip and subtracting M once
            // keeps the position exact without a division.
            while taken[(e.pos >> 6) as usize] & (1 << (e.pos & 63)) != 0 {
                e.pos = advance(e.pos, e.skip, m);
            }
            taken[(e.pos >> 6) as usize] |= 1 << (e.pos & 63);
            slots[e.pos as usize] = e.idx;
            e.pos = advance(e.pos, e.skip, m);
            counts[e.idx as usize] += 1;
            filled += 1;
            if filled == m {
                break 'fill;
            }
        }
        round += 1;
    }
    Some(MaglevTable {
        slots: slots.into_boxed_slice(),
        counts: counts.into_boxed_slice(),
        modulo: FastMod::new(m),
    })
}

#[inline(always)]
fn advance(pos: u64, skip: u64, m: u64) -> u64 {
    let p = pos + skip;
    if p >= m {
        p - m
    } else {
        p
    }
}

impl Maglev {
    /// Options.
    pub fn builder() -> MaglevBuilder {
        MaglevBuilder::default()
    }
}

impl<T> Maglev<T> {
    /// Builds with the default options (M = 65537).
    ///
    /// # Errors
    ///
    /// An empty set.
    pub fn new(set: impl Into<Arc<EndpointSet<T>>>) -> Result<Self, BuildError> {
        MaglevBuilder::default().build(set)
    }

    /// The table, or `None` when no endpoint is usable.
    pub fn table(&self) -> Option<&MaglevTable> {
        self.tiers.primary()
    }

    /// Whether the table was built in panic (from every endpoint).
    pub fn in_panic(&self) -> bool {
        self.tiers.panic()
    }
}

impl<T: Send + Sync + std::fmt::Debug> Balancer for Maglev<T> {
    type Data = T;

    #[inline]
    fn pick(&self, pick: Pick) -> Option<&Endpoint<T>> {
        let table = self.tiers.primary()?;
        let h = match pick.hash_value() {
            Some(h) => h,
            None => self.rng.next(),
        };
        Some(self.set.endpoint_at(table.lookup(h, pick.attempt_value())))
    }

    fn endpoints(&self) -> &Arc<EndpointSet<T>> {
        &self.set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primes() {
        let p: Vec<u64> = (0..30).filter(|&n| is_prime(n)).collect();
        assert_eq!(p, [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
        assert!(is_prime(65537) && is_prime(655373) && is_prime(MAX_TABLE_SIZE));
        assert!(!is_prime(65535));
    }

    #[test]
    fn errors() {
        let set = || EndpointSet::new(vec![Endpoint::new(([10, 0, 0, 1], 80).into())]).unwrap();
        let err = Maglev::builder()
            .table_size(5_000_029)
            .build(set())
            .unwrap_err();
        assert!(matches!(
            err.kind(),
            BuildErrorKind::TableSizeTooLarge { .. }
        ));
        assert!(Maglev::builder().table_size(1).build(set()).is_err());
        let empty: EndpointSet = EndpointSet::new(vec![]).unwrap();
        let err = Maglev::new(empty).unwrap_err();
        assert_eq!(err.to_string(), "no endpoints");
    }

    #[test]
    fn weights_one_to_two() {
        let set = EndpointSet::new(vec![
            Endpoint::new(([127, 0, 0, 1], 90).into()),
            Endpoint::new(([127, 0, 0, 1], 91).into()).weight(2),
        ])
        .unwrap();
        let t = Maglev::new(set).unwrap();
        let table = t.table().unwrap();
        assert_eq!(table.entries(EndpointId::new(0)), 21846);
        assert_eq!(table.entries(EndpointId::new(1)), 43691);
    }
}
