//! Endpoints and immutable endpoint sets.
use crate::error::{BuildError, BuildErrorKind};
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The position of an endpoint in its [`EndpointSet`], in the order given to
/// [`EndpointSet::new`].
///
/// Ids are only meaningful within one set: a rebuilt set numbers its
/// endpoints afresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct EndpointId(u32);

impl EndpointId {
    /// The id of the endpoint at `index`.
    #[inline]
    pub const fn new(index: u32) -> Self {
        EndpointId(index)
    }

    /// The position of the endpoint in its set.
    #[inline]
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for EndpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "endpoints[{}]", self.0)
    }
}

/// Health of an endpoint, as reported by the caller's health checking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Health {
    /// Takes traffic.
    #[default]
    Healthy,
    /// Takes traffic only when too few endpoints are healthy (non-hash
    /// balancers); never in a hash table unless the set is in panic.
    Degraded,
    /// Takes traffic only when the set is in panic.
    Unhealthy,
}

/// Requests in flight to one endpoint, shared by every clone of the
/// endpoint (so it survives rebuilding a set from clones).
#[derive(Debug, Default)]
pub struct Load {
    active: AtomicU64,
}

impl Load {
    /// Requests started and not yet finished.
    #[inline]
    pub fn active(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }
}

/// Counts one request to an endpoint as active until dropped.
///
/// Returned by [`Endpoint::start_request`]; least request reads the count.
#[derive(Debug)]
#[must_use = "the request counts as active only while the guard lives"]
pub struct RequestGuard {
    load: Arc<Load>,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.load.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One upstream endpoint: an address, optional hostname and hash key, a
/// weight, a health state, an optional locality, and opaque user data `T`
/// that this crate never looks at.
///
/// ```
/// use rauta_balance::{Endpoint, Health};
///
/// let e = Endpoint::new("[2001:db8::5]:443".parse()?)
///     .hostname("api-7.internal")
///     .weight(3)
///     .health(Health::Degraded)
///     .data("pool-a");
/// assert_eq!(e.weight_value(), 3);
/// assert_eq!(*e.user_data(), "pool-a");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Endpoint<T = ()> {
    id: EndpointId,
    address: SocketAddr,
    hostname: Option<Box<str>>,
    hash_key: Option<Box<str>>,
    weight: u32,
    health: Health,
    locality: Option<Box<str>>,
    load: Arc<Load>,
    data: T,
}

impl Endpoint<()> {
    /// An endpoint at `address` with weight 1, healthy, no user data.
    pub fn new(address: SocketAddr) -> Self {
        Endpoint {
            id: EndpointId(0),
            address,
            hostname: None,
            hash_key: None,
            weight: 1,
            health: Health::Healthy,
            locality: None,
            load: Arc::default(),
            data: (),
        }
    }
}

impl<T> Endpoint<T> {
    /// Attaches user data, replacing the current data.
    pub fn data<U>(self, data: U) -> Endpoint<U> {
        Endpoint {
            id: self.id,
            address: self.address,
            hostname: self.hostname,
            hash_key: self.hash_key,
            weight: self.weight,
            health: self.health,
            locality: self.locality,
            load: self.load,
            data,
        }
    }

    /// Sets the hostname (used as hash key with
    /// [`EndpointSetBuilder::use_hostname_for_hashing`]).
    pub fn hostname(mut self, hostname: impl Into<String>) -> Self {
        self.hostname = Some(hostname.into().into_boxed_str());
        self
    }

    /// Sets an explicit hash key (Envoy's `envoy.lb` `hash_key` metadata).
    /// An empty key is ignored, as in Envoy.
    pub fn hash_key(mut self, key: impl Into<String>) -> Self {
        let key = key.into();
        self.hash_key = (!key.is_empty()).then(|| key.into_boxed_str());
        self
    }

    /// Sets the weight (must be at least 1; checked when the set is built).
    pub fn weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    /// Sets the health.
    pub fn health(mut self, health: Health) -> Self {
        self.health = health;
        self
    }

    /// Sets the locality name (used with [`EndpointSetBuilder::locality`]).
    pub fn locality(mut self, name: impl Into<String>) -> Self {
        self.locality = Some(name.into().into_boxed_str());
        self
    }

    /// Shares the in-flight request counter of `other`, so that counts carry
    /// over into a rebuilt set.
    pub fn share_load<U>(mut self, other: &Endpoint<U>) -> Self {
        self.load = Arc::clone(&other.load);
        self
    }

    /// The id of this endpoint in its set (0 before it joins a set).
    #[inline]
    pub fn id(&self) -> EndpointId {
        self.id
    }

    /// The address.
    #[inline]
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The hostname, if set.
    pub fn hostname_str(&self) -> Option<&str> {
        self.hostname.as_deref()
    }

    /// The weight.
    #[inline]
    pub fn weight_value(&self) -> u32 {
        self.weight
    }

    /// The health.
    #[inline]
    pub fn health_state(&self) -> Health {
        self.health
    }

    /// The locality name, if set.
    pub fn locality_name(&self) -> Option<&str> {
        self.locality.as_deref()
    }

    /// The user data.
    #[inline]
    pub fn user_data(&self) -> &T {
        &self.data
    }

    /// The in-flight request counter.
    #[inline]
    pub fn load(&self) -> &Load {
        &self.load
    }

    /// Counts a request as active until the returned guard is dropped.
    /// Does not allocate.
    #[inline]
    pub fn start_request(&self) -> RequestGuard {
        self.load.active.fetch_add(1, Ordering::Relaxed);
        RequestGuard {
            load: Arc::clone(&self.load),
        }
    }
}

/// A locality and its weight, as declared on an [`EndpointSetBuilder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locality {
    name: Box<str>,
    weight: u32,
}

impl Locality {
    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The weight.
    pub fn weight(&self) -> u32 {
        self.weight
    }
}

/// An immutable, validated set of endpoints.
///
/// Updates build a new set (and new balancers over it) and swap them in
/// with [`crate::Shared`]; pickers never block.
#[derive(Debug)]
pub struct EndpointSet<T = ()> {
    endpoints: Box<[Endpoint<T>]>,
    keys: Box<[Box<str>]>,
    localities: Box<[Locality]>,
    /// Locality index per endpoint; `u32::MAX` when localities are not used.
    locality_of: Box<[u32]>,
    /// The host vector: endpoint indices, localities in declaration order,
    /// endpoints in given order within each.
    order: Box<[u32]>,
}

impl EndpointSet {
    /// A builder for localities and hash-key options.
    pub fn builder() -> EndpointSetBuilder {
        EndpointSetBuilder::default()
    }
}

impl<T> EndpointSet<T> {
    /// Builds a set with the default options.
    ///
    /// # Errors
    ///
    /// A weight of 0, weights adding up to more than `u32::MAX`, two
    /// endpoints with the same hash key, or more than `u32::MAX - 1` endpoints.
    /// An empty list is allowed (balancers over it refuse to build).
    pub fn new(endpoints: Vec<Endpoint<T>>) -> Result<Self, BuildError> {
        EndpointSetBuilder::default().build(endpoints)
    }

    /// Number of endpoints.
    #[inline]
    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    /// Whether the set has no endpoints.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// The endpoints, in the order given.
    #[inline]
    pub fn endpoints(&self) -> &[Endpoint<T>] {
        &self.endpoints
    }

    /// The endpoint with id `id`.
    #[inline]
    pub fn get(&self, id: EndpointId) -> Option<&Endpoint<T>> {
        self.endpoints.get(id.index())
    }

    /// The hash key of endpoint `id`: its explicit hash key, else (with
    /// hostname hashing) its hostname, else its address as Envoy prints it
    /// (`10.0.0.1:80`, `[2001:db8::5]:443`).
    pub fn hash_key(&self, id: EndpointId) -> Option<&str> {
        self.keys.get(id.index()).map(|k| &**k)
    }

    /// The declared localities.
    pub fn localities(&self) -> &[Locality] {
        &self.localities
    }

    /// Endpoint indices in host-vector order (Envoy's order: localities in
    /// declaration order, then endpoints in given order).
    pub(crate) fn order(&self) -> &[u32] {
        &self.order
    }

    pub(crate) fn key_at(&self, index: u32) -> &str {
        &self.keys[index as usize]
    }

    #[inline]
    pub(crate) fn endpoint_at(&self, index: u32) -> &Endpoint<T> {
        &self.endpoints[index as usize]
    }

    /// Envoy's normalised weights of `members` (indices in host-vector
    /// order): returns `(index, weight)` pairs, the minimum (folded from 1.0)
    /// and maximum (folded from 0.0).
    pub(crate) fn normalized(&self, members: &[u32]) -> (Vec<(u32, f64)>, f64, f64) {
        let mut out = Vec::with_capacity(members.len());
        if self.localities.is_empty() {
            let sum: u64 = members
                .iter()
                .map(|&i| u64::from(self.endpoints[i as usize].weight))
                .sum();
            push_normalized(&self.endpoints, members, 1.0, sum, &mut out);
        } else {
            let lw_sum: u64 = self.localities.iter().map(|l| u64::from(l.weight)).sum();
            if lw_sum != 0 {
                let mut start = 0;
                while start < members.len() {
                    let loc = self.locality_of[members[start] as usize];
                    let end = start
                        + members[start..]
                            .iter()
                            .take_while(|&&i| self.locality_of[i as usize] == loc)
                            .count();
                    let group = &members[start..end];
                    let lw = self.localities[loc as usize].weight;
                    if lw != 0 {
                        let sum: u64 = group
                            .iter()
                            .map(|&i| u64::from(self.endpoints[i as usize].weight))
                            .sum();
                        let share = f64::from(lw) / lw_sum as f64;
                        push_normalized(&self.endpoints, group, share, sum, &mut out);
                    }
                    start = end;
                }
            }
        }
        let (mut min, mut max) = (1.0f64, 0.0f64);
        for &(_, w) in &out {
            min = min.min(w);
            max = max.max(w);
        }
        (out, min, max)
    }
}

fn push_normalized<T>(
    endpoints: &[Endpoint<T>],
    members: &[u32],
    share: f64,
    sum: u64,
    out: &mut Vec<(u32, f64)>,
) {
    for &i in members {
        let w = f64::from(endpoints[i as usize].weight) * share / sum as f64;
        out.push((i, w));
    }
}

/// Options of an [`EndpointSet`]: localities with weights (Envoy's
/// `locality_weighted_lb_config`) and hostname hashing.
///
/// ```
/// use rauta_balance::{Endpoint, EndpointSet};
///
/// let set = EndpointSet::builder()
///     .locality("eu-west-1a", 3)
///     .locality("eu-west-1b", 1)
///     .build(vec![
///         Endpoint::new(([10, 0, 0, 1], 80).into()).locality("eu-west-1b"),
///         Endpoint::new(([10, 0, 0, 2], 80).into()).locality("eu-west-1a"),
///     ])?;
/// assert_eq!(set.localities().len(), 2);
///
/// // Every endpoint must name a declared locality.
/// let err = EndpointSet::builder()
///     .locality("eu-west-1a", 1)
///     .build(vec![Endpoint::new(([10, 0, 0, 1], 80).into()).locality("us-east-1a")])
///     .unwrap_err();
/// assert_eq!(err.to_string(), r#"endpoints[0] (10.0.0.1:80): locality "us-east-1a" is not declared"#);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct EndpointSetBuilder {
    localities: Vec<Locality>,
    use_hostname_for_hashing: bool,
}

impl EndpointSetBuilder {
    /// Declares a locality and its weight. Once any locality is declared,
    /// every endpoint must name one; hash balancers then weight each
    /// endpoint by its locality's share (a locality of weight 0 gets nothing).
    pub fn locality(mut self, name: impl Into<String>, weight: u32) -> Self {
        self.localities.push(Locality {
            name: name.into().into_boxed_str(),
            weight,
        });
        self
    }

    /// Uses the hostname instead of the address as hash key (Envoy's
    /// `use_hostname_for_hashing`); an explicit hash key still wins.
    pub fn use_hostname_for_hashing(mut self, yes: bool) -> Self {
        self.use_hostname_for_hashing = yes;
        self
    }

    /// Validates `endpoints` and builds the set.
    ///
    /// # Errors
    ///
    /// See [`EndpointSet::new`]; also duplicate, unknown or missing localities.
    pub fn build<T>(self, mut endpoints: Vec<Endpoint<T>>) -> Result<EndpointSet<T>, BuildError> {
        const MAX: usize = u32::MAX as usize - 1;
        if endpoints.len() > MAX {
            return Err(BuildError::new(BuildErrorKind::TooManyEndpoints {
                count: endpoints.len(),
                max: MAX,
            }));
        }
        let mut names: HashMap<&str, u32> = HashMap::new();
        for (i, l) in self.localities.iter().enumerate() {
            if names.insert(&l.name, i as u32).is_some() {
                return Err(BuildError::new(BuildErrorKind::DuplicateLocality {
                    name: l.name.to_string(),
                }));
            }
        }
        let mut keys = Vec::with_capacity(endpoints.len());
        let mut seen: HashMap<Box<str>, u32> = HashMap::with_capacity(endpoints.len());
        let mut locality_of = Vec::with_capacity(endpoints.len());
        let mut total = 0u64;
        for (i, e) in endpoints.iter().enumerate() {
            let id = EndpointId(i as u32);
            let key: Box<str> = match (&e.hash_key, &e.hostname) {
                (Some(k), _) => k.clone(),
                (None, Some(h)) if self.use_hostname_for_hashing => h.clone(),
                (None, None) if self.use_hostname_for_hashing => "".into(),
                _ => address_text(e.address).into_boxed_str(),
            };
            if e.weight == 0 {
                return Err(BuildError::at(BuildErrorKind::ZeroWeight, id, &key));
            }
            total += u64::from(e.weight);
            if self.localities.is_empty() {
                locality_of.push(u32::MAX);
            } else {
                match &e.locality {
                    None => return Err(BuildError::at(BuildErrorKind::MissingLocality, id, &key)),
                    Some(name) => match names.get(&**name) {
                        Some(&l) => locality_of.push(l),
                        None => {
                            return Err(BuildError::at(
                                BuildErrorKind::UnknownLocality {
                                    name: name.to_string(),
                                },
                                id,
                                &key,
                            ))
                        }
                    },
                }
            }
            if let Some(&other) = seen.get(&key) {
                return Err(BuildError::at(
                    BuildErrorKind::DuplicateHashKey {
                        key: key.to_string(),
                        other: EndpointId(other),
                    },
                    id,
                    &key,
                ));
            }
            seen.insert(key.clone(), i as u32);
            keys.push(key);
        }
        if total > u64::from(u32::MAX) {
            return Err(BuildError::new(BuildErrorKind::TotalWeightTooLarge {
                total,
            }));
        }
        for (i, e) in endpoints.iter_mut().enumerate() {
            e.id = EndpointId(i as u32);
        }
        let mut order: Vec<u32> = (0..endpoints.len() as u32).collect();
        if !self.localities.is_empty() {
            order.sort_by_key(|&i| locality_of[i as usize]);
        }
        Ok(EndpointSet {
            endpoints: endpoints.into_boxed_slice(),
            keys: keys.into_boxed_slice(),
            localities: self.localities.into_boxed_slice(),
            locality_of: locality_of.into_boxed_slice(),
            order: order.into_boxed_slice(),
        })
    }
}

/// The text Envoy uses for an address: `a.b.c.d:port` or `[v6]:port`, the
/// IPv6 part as glibc's `inet_ntop` prints it (no scope id).
pub(crate) fn address_text(addr: SocketAddr) -> String {
    let mut s = String::with_capacity(48);
    match addr {
        SocketAddr::V4(a) => {
            use fmt::Write;
            let _ = write!(s, "{}:{}", a.ip(), a.port());
        }
        SocketAddr::V6(a) => {
            use fmt::Write;
            s.push('[');
            let _ = write_ipv6(&mut s, a.ip());
            let _ = write!(s, "]:{}", a.port());
        }
    }
    s
}

/// Writes an IP address as Envoy prints it (glibc `inet_ntop`).
pub(crate) fn write_ip(w: &mut impl fmt::Write, ip: IpAddr) -> fmt::Result {
    match ip {
        IpAddr::V4(a) => write!(w, "{a}"),
        IpAddr::V6(a) => write_ipv6(w, &a),
    }
}

fn write_ipv6(w: &mut impl fmt::Write, a: &Ipv6Addr) -> fmt::Result {
    let s = a.segments();
    // glibc prints an IPv4-compatible address (`::a.b.c.d`, the longest run
    // of zeros being exactly the first six words) in dotted form; Rust does
    // not. IPv4-mapped addresses print alike in both.
    if s[..6] == [0; 6] && s[6] != 0 {
        let [.., a, b, c, d] = a.octets();
        return write!(w, "::{a}.{b}.{c}.{d}");
    }
    write!(w, "{a}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_text_matches_envoy() {
        let t = |s: &str| address_text(s.parse().unwrap());
        assert_eq!(t("127.0.0.1:90"), "127.0.0.1:90");
        assert_eq!(t("[2001:db8::5]:443"), "[2001:db8::5]:443");
        assert_eq!(t("[::1]:8080"), "[::1]:8080");
        assert_eq!(t("[::ffff:10.0.0.1]:80"), "[::ffff:10.0.0.1]:80");
        assert_eq!(t("[::1.2.3.4]:80"), "[::1.2.3.4]:80");
        assert_eq!(t("[::]:80"), "[::]:80");
        assert_eq!(t("[fe80::1%2]:80"), "[fe80::1]:80");
    }

    #[test]
    fn hash_key_precedence() {
        let set = EndpointSet::builder()
            .use_hostname_for_hashing(true)
            .build(vec![
                Endpoint::new(([10, 0, 0, 1], 80).into())
                    .hostname("a")
                    .hash_key("k"),
                Endpoint::new(([10, 0, 0, 2], 80).into()).hostname("b"),
                Endpoint::new(([10, 0, 0, 3], 80).into())
                    .hostname("c")
                    .hash_key(""),
            ])
            .unwrap();
        let keys: Vec<_> = (0..3)
            .map(|i| set.hash_key(EndpointId::new(i)).unwrap())
            .collect();
        assert_eq!(keys, ["k", "b", "c"]);
        let set = EndpointSet::new(vec![Endpoint::new(([10, 0, 0, 2], 80).into()).hostname("b")])
            .unwrap();
        assert_eq!(set.hash_key(EndpointId::new(0)), Some("10.0.0.2:80"));
    }

    #[test]
    fn duplicate_keys_and_weights_are_errors() {
        let a = || Endpoint::new(([10, 0, 0, 1], 80).into());
        let err = EndpointSet::new(vec![a(), a()]).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"endpoints[1] (10.0.0.1:80): hash key "10.0.0.1:80" is also the key of endpoints[0]"#
        );
        let err = EndpointSet::new(vec![
            a().weight(u32::MAX),
            Endpoint::new(([10, 0, 0, 2], 80).into()).weight(1),
        ])
        .unwrap_err();
        assert!(
            matches!(err.kind(), BuildErrorKind::TotalWeightTooLarge { total } if *total == 1 << 32)
        );
        let err = EndpointSet::builder()
            .locality("a", 1)
            .locality("a", 2)
            .build(vec![a()])
            .unwrap_err();
        assert_eq!(err.to_string(), r#"locality "a" is declared twice"#);
        let err = EndpointSet::builder()
            .locality("a", 1)
            .build(vec![a()])
            .unwrap_err();
        assert!(matches!(err.kind(), BuildErrorKind::MissingLocality));
    }

    #[test]
    fn request_guard_counts() {
        let e = Endpoint::new(([10, 0, 0, 1], 80).into());
        let copy = Endpoint::new(([10, 0, 0, 9], 80).into()).share_load(&e);
        let g1 = e.start_request();
        let g2 = copy.start_request();
        assert_eq!(e.load().active(), 2);
        drop(g1);
        assert_eq!(copy.load().active(), 1);
        drop(g2);
        assert_eq!(e.load().active(), 0);
    }
}
