//! Clusters: a balancer over static endpoints, and passive outlier ejection.
//!
//! # Outlier ejection
//!
//! When a connection to an endpoint is refused (or its connect times out),
//! the endpoint is *ejected*: the cluster's balancer is rebuilt with that
//! endpoint marked [`Health::Unhealthy`] and it takes no traffic for
//! `outlier_ejection_ms`. The ejection clock lives in [`Outliers`], keyed by
//! address, so it survives configuration reloads. A background tick
//! re-admits endpoints whose time is up. Panic mode is off: when every
//! endpoint of a cluster is ejected, picks fail and the proxy answers 503.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rauta_balance::{
    Balancer, BuildError, Endpoint, EndpointSet, Health, HealthPolicy, LeastRequest, Maglev,
    Random, RingHash, RoundRobin, Shared, WeightedRoundRobin,
};

use http::uri::Authority;

use crate::config::{ClusterConfig, LbPolicy};

fn authority(addr: SocketAddr) -> Authority {
    // A socket address always prints as a valid authority.
    Authority::from_maybe_shared(bytes::Bytes::from(addr.to_string()))
        .unwrap_or_else(|_| Authority::from_static("invalid"))
}

/// Any of rauta-balance's balancers, behind one type. Each endpoint carries
/// its address as a ready-made URI authority.
pub type DynBalancer = Box<dyn Balancer<Data = Authority>>;

/// Ejection deadlines by endpoint address, shared by every configuration.
#[derive(Debug, Default)]
pub struct Outliers {
    until: Mutex<HashMap<SocketAddr, Instant>>,
}

impl Outliers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Instant>> {
        self.until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Ejects `addr` for `d`; returns false if it already was ejected.
    pub fn eject(&self, addr: SocketAddr, d: Duration) -> bool {
        let until = Instant::now() + d;
        let mut map = self.lock();
        let fresh = map.get(&addr).is_none_or(|t| *t <= Instant::now());
        map.insert(addr, until);
        fresh
    }

    /// Whether `addr` is ejected now.
    pub fn is_ejected(&self, addr: SocketAddr) -> bool {
        self.lock().get(&addr).is_some_and(|t| *t > Instant::now())
    }

    /// Forgets expired ejections; returns the addresses re-admitted.
    pub fn expire(&self) -> Vec<SocketAddr> {
        let now = Instant::now();
        let mut out = Vec::new();
        self.lock().retain(|a, t| {
            let keep = *t > now;
            if !keep {
                out.push(*a);
            }
            keep
        });
        out
    }
}

/// Builds the balancer `c.lb_policy` names over `c.endpoints`, with the
/// endpoints for which `ejected` answers true marked unhealthy.
///
/// # Errors
///
/// What rauta-balance rejects (weight 0, duplicate endpoints, ...).
pub fn build_balancer(
    c: &ClusterConfig,
    ejected: &dyn Fn(SocketAddr) -> bool,
) -> Result<DynBalancer, BuildError> {
    let endpoints: Vec<Endpoint<Authority>> = c
        .endpoints
        .iter()
        .map(|e| {
            let health = if ejected(e.address()) {
                Health::Unhealthy
            } else {
                Health::Healthy
            };
            Endpoint::new(e.address())
                .weight(e.weight())
                .health(health)
                .data(authority(e.address()))
        })
        .collect();
    let weighted = endpoints
        .iter()
        .any(|e| e.weight_value() != endpoints[0].weight_value());
    let set = EndpointSet::new(endpoints)?;
    // Panic mode off: ejected endpoints never take traffic.
    let health = HealthPolicy::new().panic_threshold(0.0);
    Ok(match c.lb_policy {
        LbPolicy::RoundRobin if weighted => {
            Box::new(WeightedRoundRobin::builder().health(health).build(set)?)
        }
        LbPolicy::RoundRobin => Box::new(RoundRobin::builder().health(health).build(set)?),
        LbPolicy::LeastRequest => Box::new(LeastRequest::builder().health(health).build(set)?),
        LbPolicy::Random => Box::new(Random::builder().health(health).build(set)?),
        LbPolicy::Maglev => Box::new(Maglev::builder().health(health).build(set)?),
        LbPolicy::RingHash => Box::new(RingHash::builder().health(health).build(set)?),
    })
}

/// A cluster as the proxy serves it.
#[derive(Debug)]
pub struct Cluster {
    config: ClusterConfig,
    lb: Shared<DynBalancer>,
    outliers: Arc<Outliers>,
    stats: Arc<rauta_stats::RequestStats>,
}

impl Cluster {
    /// Builds a cluster, honouring current ejections.
    ///
    /// # Errors
    ///
    /// What [`build_balancer`] rejects.
    pub fn new(
        config: ClusterConfig,
        outliers: Arc<Outliers>,
        stats: Arc<rauta_stats::RequestStats>,
    ) -> Result<Cluster, BuildError> {
        let lb = build_balancer(&config, &|a| outliers.is_ejected(a))?;
        Ok(Cluster {
            config,
            lb: Shared::new(lb),
            outliers,
            stats,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// The cluster's stats.
    pub fn stats(&self) -> &Arc<rauta_stats::RequestStats> {
        &self.stats
    }

    /// The current balancer.
    pub fn balancer(&self) -> Arc<DynBalancer> {
        self.lb.load_full()
    }

    /// Records that `addr` refused a connection: ejects it and rebuilds the
    /// balancer if it was not ejected yet.
    pub fn connect_failed(&self, addr: SocketAddr) {
        if self.config.outlier_ejection_ms == 0 {
            return;
        }
        let d = Duration::from_millis(self.config.outlier_ejection_ms);
        if self.outliers.eject(addr, d) {
            tracing::warn!(cluster = %self.config.name, endpoint = %addr, ejection_ms = d.as_millis() as u64, "endpoint ejected: connection refused");
            self.rebuild();
        }
    }

    /// Rebuilds the balancer from the current ejections.
    pub fn rebuild(&self) {
        // The config was validated, so a rebuild only fails if rauta-balance
        // changed its mind; keep the old balancer then.
        match build_balancer(&self.config, &|a| self.outliers.is_ejected(a)) {
            Ok(lb) => self.lb.store(lb),
            Err(e) => {
                tracing::error!(cluster = %self.config.name, error = %e, "balancer rebuild failed")
            }
        }
    }

    /// Whether any endpoint of this cluster has address `addr`.
    pub fn has_endpoint(&self, addr: SocketAddr) -> bool {
        self.config.endpoints.iter().any(|e| e.address() == addr)
    }
}
