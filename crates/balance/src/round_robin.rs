//! Round robin and weighted round robin (Envoy's EDF schedule).
use crate::endpoint::{Endpoint, EndpointSet};
use crate::error::{BuildError, BuildErrorKind};
use crate::fastmod::FastMod;
use crate::health::{HealthPolicy, Rng, Tiers};
use crate::{Balancer, Pick};
use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Round robin over the endpoints that take traffic, ignoring weights.
/// Lock-free: a pick is one atomic increment and one array read.
///
/// Like Envoy, the rotation starts at a random position (fixed by
/// [`RoundRobinBuilder::seed`]). For weights use [`WeightedRoundRobin`],
/// which is what Envoy's `ROUND_ROBIN` does when weights differ.
///
/// ```
/// use rauta_balance::{Balancer, Endpoint, EndpointSet, Pick, RoundRobin};
///
/// let set = EndpointSet::new((1..=3).map(|i| Endpoint::new(([10, 0, 0, i], 80).into())).collect())?;
/// let rr = RoundRobin::builder().seed(7).build(set)?;
/// let ids: Vec<usize> = (0..6).map(|_| rr.pick(Pick::new()).unwrap().id().index()).collect();
/// // A rotation: each endpoint once per three picks.
/// assert_eq!(ids[..3], ids[3..]);
/// assert_eq!(ids.iter().filter(|&&i| i == 2).count(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct RoundRobin<T = ()> {
    set: Arc<EndpointSet<T>>,
    tiers: Tiers<Members>,
    next: AtomicU64,
    rng: Rng,
}

/// Endpoint indices with a divide-free modulo by their count.
#[derive(Debug)]
pub(crate) struct Members {
    pub(crate) list: Box<[u32]>,
    modulo: FastMod,
}

impl Members {
    pub(crate) fn new(list: Vec<u32>) -> Self {
        Members {
            modulo: FastMod::new(list.len() as u64),
            list: list.into_boxed_slice(),
        }
    }

    /// The member at `i` modulo the count.
    #[inline]
    pub(crate) fn at(&self, i: u64) -> u32 {
        self.list[self.modulo.rem(i) as usize]
    }
}

/// Options of [`RoundRobin`].
#[derive(Debug, Clone, Default)]
pub struct RoundRobinBuilder {
    health: HealthPolicy,
    seed: Option<u64>,
    allow_empty: bool,
}

impl RoundRobinBuilder {
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

    /// Seeds the start position and tier draws (default: random).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Builds the balancer.
    ///
    /// # Errors
    ///
    /// An empty set or an invalid health policy.
    pub fn build<T>(
        self,
        set: impl Into<Arc<EndpointSet<T>>>,
    ) -> Result<RoundRobin<T>, BuildError> {
        let set = set.into();
        check_set(&set, &self.health, self.allow_empty)?;
        let tiers = Tiers::build(self.health.partition(&set, true), |m| {
            Ok::<_, BuildError>(Some(Members::new(m)))
        })?;
        let rng = Rng::new(self.seed);
        let start = rng.next();
        Ok(RoundRobin {
            set,
            tiers,
            next: AtomicU64::new(start),
            rng,
        })
    }
}

pub(crate) fn check_set<T>(
    set: &EndpointSet<T>,
    health: &HealthPolicy,
    allow_empty: bool,
) -> Result<(), BuildError> {
    health.validate()?;
    if set.is_empty() && !allow_empty {
        return Err(BuildError::new(BuildErrorKind::NoEndpoints));
    }
    Ok(())
}

impl RoundRobin {
    /// Options.
    pub fn builder() -> RoundRobinBuilder {
        RoundRobinBuilder::default()
    }
}

impl<T> RoundRobin<T> {
    /// Builds with the default options.
    ///
    /// # Errors
    ///
    /// An empty set.
    pub fn new(set: impl Into<Arc<EndpointSet<T>>>) -> Result<Self, BuildError> {
        RoundRobinBuilder::default().build(set)
    }
}

impl<T: Send + Sync + std::fmt::Debug> Balancer for RoundRobin<T> {
    type Data = T;

    #[inline]
    fn pick(&self, _pick: Pick) -> Option<&Endpoint<T>> {
        let tier = self.tiers.select(|| self.rng.next())?;
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        Some(self.set.endpoint_at(tier.at(i)))
    }

    fn endpoints(&self) -> &Arc<EndpointSet<T>> {
        &self.set
    }
}

/// One EDF entry: the endpoint's `k`-th deadline is `k / weight`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    k: u64,
    weight: u32,
    seq: u64,
    idx: u32,
}

impl Ord for Entry {
    fn cmp(&self, o: &Self) -> CmpOrdering {
        // k1/w1 vs k2/w2, exactly; ties first in, first out.
        (u128::from(self.k) * u128::from(o.weight))
            .cmp(&(u128::from(o.k) * u128::from(self.weight)))
            .then(self.seq.cmp(&o.seq))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(o))
    }
}

/// Envoy's earliest-deadline-first scheduler with exact rational deadlines:
/// an endpoint of weight `w` is due at `1/w, 2/w, ...`; equal deadlines go
/// in insertion order.
#[derive(Debug)]
pub(crate) struct Edf {
    heap: BinaryHeap<Reverse<Entry>>,
    seq: u64,
}

impl Edf {
    pub(crate) fn new(members: &[(u32, u32)]) -> Self {
        let mut heap = BinaryHeap::with_capacity(members.len());
        for (seq, &(idx, weight)) in members.iter().enumerate() {
            heap.push(Reverse(Entry {
                k: 1,
                weight,
                seq: seq as u64,
                idx,
            }));
        }
        Edf {
            heap,
            seq: members.len() as u64,
        }
    }

    pub(crate) fn pop_next(&mut self) -> Option<u32> {
        let mut top = self.heap.peek_mut()?;
        let idx = top.0.idx;
        top.0.k += 1;
        top.0.seq = self.seq;
        self.seq += 1;
        Some(idx)
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[derive(Debug)]
enum Schedule {
    /// One precomputed period of the EDF order.
    Table(Members),
    /// Periods longer than the table limit run the scheduler under a lock.
    Live(Mutex<Edf>),
}

/// Weighted round robin with Envoy's earliest-deadline-first order.
///
/// Over every period of `Σw / gcd(w)` picks each endpoint is picked exactly
/// `w / gcd(w)` times, interleaved smoothly. With equal weights the order is
/// plain rotation. The period is precomputed into a table (a pick is one
/// atomic increment and one array read); periods longer than
/// [`WeightedRoundRobinBuilder::max_table_len`] run the scheduler under a
/// mutex instead.
///
/// ```
/// use rauta_balance::{Balancer, Endpoint, EndpointSet, Pick, WeightedRoundRobin};
///
/// let set = EndpointSet::new(vec![
///     Endpoint::new(([10, 0, 0, 1], 80).into()).weight(1),
///     Endpoint::new(([10, 0, 0, 2], 80).into()).weight(3),
/// ])?;
/// let wrr = WeightedRoundRobin::new(set)?;
/// let heavy = (0..400).filter(|_| wrr.pick(Pick::new()).unwrap().weight_value() == 3).count();
/// assert_eq!(heavy, 300);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct WeightedRoundRobin<T = ()> {
    set: Arc<EndpointSet<T>>,
    tiers: Tiers<Schedule>,
    next: AtomicU64,
    rng: Rng,
}

/// Options of [`WeightedRoundRobin`].
#[derive(Debug, Clone)]
pub struct WeightedRoundRobinBuilder {
    health: HealthPolicy,
    seed: Option<u64>,
    max_table_len: u64,
    allow_empty: bool,
}

impl Default for WeightedRoundRobinBuilder {
    fn default() -> Self {
        WeightedRoundRobinBuilder {
            health: HealthPolicy::default(),
            seed: None,
            max_table_len: 1 << 20,
            allow_empty: false,
        }
    }
}

impl WeightedRoundRobinBuilder {
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

    /// Seeds the start position and tier draws (default: random).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Longest period kept as a lock-free table (default 2^20 entries, 4 MiB).
    pub fn max_table_len(mut self, len: u64) -> Self {
        self.max_table_len = len;
        self
    }

    /// Builds the balancer.
    ///
    /// # Errors
    ///
    /// An empty set or an invalid health policy.
    pub fn build<T>(
        self,
        set: impl Into<Arc<EndpointSet<T>>>,
    ) -> Result<WeightedRoundRobin<T>, BuildError> {
        let set = set.into();
        check_set(&set, &self.health, self.allow_empty)?;
        let max = self.max_table_len;
        let tiers = Tiers::build(self.health.partition(&set, true), |m| {
            let g = m.iter().fold(0, |g, &i| {
                gcd(g, u64::from(set.endpoint_at(i).weight_value()))
            });
            let members: Vec<(u32, u32)> = m
                .iter()
                .map(|&i| (i, (u64::from(set.endpoint_at(i).weight_value()) / g) as u32))
                .collect();
            let period: u64 = members.iter().map(|&(_, w)| u64::from(w)).sum();
            let mut edf = Edf::new(&members);
            Ok::<_, BuildError>(Some(if period <= max {
                Schedule::Table(Members::new(
                    (0..period).filter_map(|_| edf.pop_next()).collect(),
                ))
            } else {
                Schedule::Live(Mutex::new(edf))
            }))
        })?;
        let rng = Rng::new(self.seed);
        let start = rng.next();
        Ok(WeightedRoundRobin {
            set,
            tiers,
            next: AtomicU64::new(start),
            rng,
        })
    }
}

impl WeightedRoundRobin {
    /// Options.
    pub fn builder() -> WeightedRoundRobinBuilder {
        WeightedRoundRobinBuilder::default()
    }
}

impl<T> WeightedRoundRobin<T> {
    /// Builds with the default options.
    ///
    /// # Errors
    ///
    /// An empty set.
    pub fn new(set: impl Into<Arc<EndpointSet<T>>>) -> Result<Self, BuildError> {
        WeightedRoundRobinBuilder::default().build(set)
    }

    /// Length of one period of the primary tier's schedule, if precomputed.
    pub fn period(&self) -> Option<usize> {
        match self.tiers.primary()? {
            Schedule::Table(t) => Some(t.list.len()),
            Schedule::Live(_) => None,
        }
    }
}

impl<T: Send + Sync + std::fmt::Debug> Balancer for WeightedRoundRobin<T> {
    type Data = T;

    #[inline]
    fn pick(&self, _pick: Pick) -> Option<&Endpoint<T>> {
        let idx = match self.tiers.select(|| self.rng.next())? {
            Schedule::Table(t) => t.at(self.next.fetch_add(1, Ordering::Relaxed)),
            Schedule::Live(edf) => live_next(edf)?,
        };
        Some(self.set.endpoint_at(idx))
    }

    fn endpoints(&self) -> &Arc<EndpointSet<T>> {
        &self.set
    }
}

#[cold]
#[inline(never)]
fn live_next(edf: &Mutex<Edf>) -> Option<u32> {
    // A poisoned lock only means another picker panicked mid-pick; the
    // heap is still a valid heap, so keep using it.
    let mut g = edf.lock().unwrap_or_else(|e| e.into_inner());
    g.pop_next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edf_order_matches_envoy() {
        // Weights 1, 2, 3: deadlines 1/3, 1/2, 2/3, 1(A), 1(B), 1(C) ...
        let mut edf = Edf::new(&[(0, 1), (1, 2), (2, 3)]);
        let order: Vec<u32> = (0..12).filter_map(|_| edf.pop_next()).collect();
        assert_eq!(order, [2, 1, 2, 0, 1, 2, 2, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn equal_weights_rotate() {
        let mut edf = Edf::new(&[(0, 5), (1, 5), (2, 5)]);
        let order: Vec<u32> = (0..6).filter_map(|_| edf.pop_next()).collect();
        assert_eq!(order, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn live_schedule_matches_table() {
        let set = Arc::new(
            EndpointSet::new(
                (1..=4u8)
                    .map(|i| Endpoint::new(([10, 0, 0, i], 80).into()).weight(u32::from(i) * 2))
                    .collect(),
            )
            .unwrap(),
        );
        let table = WeightedRoundRobin::builder()
            .seed(0)
            .build(Arc::clone(&set))
            .unwrap();
        let live = WeightedRoundRobin::builder()
            .seed(0)
            .max_table_len(3)
            .build(set)
            .unwrap();
        assert_eq!(table.period(), Some(10));
        assert_eq!(live.period(), None);
        let Schedule::Table(t) = table.tiers.primary().unwrap() else {
            unreachable!()
        };
        let t = t.list.clone();
        let start = table.next.load(Ordering::Relaxed);
        let want: Vec<u32> = (0..30).map(|i| t[((start + i) % 10) as usize]).collect();
        let got_table: Vec<u32> = (0..30)
            .map(|_| table.pick(Pick::new()).unwrap().id().index() as u32)
            .collect();
        assert_eq!(got_table, want);
        let got_live: Vec<u32> = (0..30)
            .map(|_| live.pick(Pick::new()).unwrap().id().index() as u32)
            .collect();
        assert_eq!(got_live, (0..30).map(|i| t[i % 10]).collect::<Vec<_>>());
    }
}
