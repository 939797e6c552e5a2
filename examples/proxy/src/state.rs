//! What a request needs, swapped as one piece on reload.
//!
//! The route table lives in a [`rauta_router::Router`] (versioned snapshots
//! in arc-swap). The proxy pairs each snapshot with the clusters and per-route
//! state built from the same file in a [`Runtime`], and swaps that pair with
//! one pointer store, so a request never sees a table from one file and
//! clusters from another. A request loads the `Runtime` once and keeps it to
//! the end: in-flight requests finish on the configuration they started with.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rauta_router::config::HashPolicy as RouteHashPolicy;
use rauta_router::{Router, Snapshot, Version};
use rauta_stats::{Counter, Registry, Reload, RequestStats, StatsConfig};

use crate::cluster::{Cluster, Outliers};
use crate::config::{build_options, ConfigError, ProxyConfig};

/// Per-route state, indexed by [`rauta_router::RouteId::index`].
#[derive(Debug)]
pub struct RouteState {
    /// Stats keyed by route name (they survive reloads).
    pub stats: Arc<RequestStats>,
    /// The route's hash policy, compiled for rauta-balance.
    pub hash: Option<rauta_balance::HashPolicy>,
}

/// One configuration as served: table, clusters and route state.
#[derive(Debug)]
pub struct Runtime {
    /// The table and its version.
    pub snapshot: Arc<Snapshot>,
    /// Clusters by name.
    pub clusters: HashMap<String, Arc<Cluster>>,
    /// Route state by route index.
    pub routes: Vec<RouteState>,
    /// Hash of the configuration text.
    pub text_hash: u64,
    /// Request headers whose name holds `_`.
    pub underscores: crate::config::UnderscoreAction,
    /// How requests' timeouts are worked out: the listener's stream limit;
    /// no `x-envoy-*` header is read (clients' are removed).
    pub timeouts: rauta_router::TimeoutOptions,
    /// Proxies in front of this one that are trusted (see
    /// [`ProxyConfig::xff_num_trusted_hops`](crate::config::ProxyConfig::xff_num_trusted_hops)).
    pub xff_num_trusted_hops: u32,
}

impl Runtime {
    /// The state of route `id`.
    pub fn route(&self, id: rauta_router::RouteId) -> Option<&RouteState> {
        self.routes.get(id.index())
    }
}

/// The proxy's shared state.
#[derive(Debug)]
pub struct State {
    router: Router,
    runtime: ArcSwap<Runtime>,
    registry: Registry,
    outliers: Arc<Outliers>,
    reload_lock: Mutex<()>,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
    last_error: Mutex<Option<String>>,
    cors: CorsCounts,
    redirects: crate::redirect::RedirectCounts,
    #[cfg(feature = "xdp")]
    xdp: Option<crate::xdp::Xdp>,
}

/// CORS outcomes (Envoy's `cors.origin_valid` and `cors.origin_invalid`,
/// and the preflights answered here).
#[derive(Debug, Default)]
pub struct CorsCounts {
    /// Requests whose origin a policy allows.
    pub origin_valid: Counter,
    /// Requests whose origin no policy allows.
    pub origin_invalid: Counter,
    /// Preflights answered by the proxy.
    pub preflights: Counter,
}

/// Translates a route's Envoy hash policy into rauta-balance's.
fn hash_policy(rules: &[RouteHashPolicy]) -> Option<rauta_balance::HashPolicy> {
    if rules.is_empty() {
        return None;
    }
    let mut b = rauta_balance::HashPolicy::builder();
    for r in rules {
        if let Some(h) = &r.header {
            b = b.header(&h.header_name.to_ascii_lowercase());
        } else if let Some(c) = &r.cookie {
            b = b.cookie(&c.name);
        } else if r
            .connection_properties
            .as_ref()
            .is_some_and(|c| c.source_ip)
        {
            b = b.source_ip();
        } else if let Some(q) = &r.query_parameter {
            b = b.query_parameter(&q.name);
        } else {
            continue;
        }
        if r.terminal {
            b = b.terminal();
        }
    }
    Some(b.build())
}

impl State {
    /// State serving `config` as version 1.
    ///
    /// # Errors
    ///
    /// A cluster that fails to build.
    pub fn new(config: ProxyConfig) -> Result<State, ConfigError> {
        let registry = Registry::new(StatsConfig::new().status_codes([404, 503, 504]))
            .map_err(|e| ConfigError::Parse(e.to_string()))?;
        let outliers = Arc::new(Outliers::default());
        let ProxyConfig {
            clusters,
            table,
            text,
            headers_with_underscores_action: underscores,
            max_stream_duration_ms,
            xff_num_trusted_hops,
            ..
        } = config;
        let options = build_options(&clusters);
        let (parts, stats) = build_parts(&table, &clusters, &registry, &outliers)?;
        stats.commit();
        let router = Router::with_options(table, options);
        let runtime = parts.into_runtime(
            router.load(),
            &text,
            underscores,
            max_stream_duration_ms,
            xff_num_trusted_hops,
        );
        Ok(State {
            router,
            runtime: ArcSwap::from_pointee(runtime),
            registry,
            outliers,
            reload_lock: Mutex::new(()),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            last_error: Mutex::new(None),
            cors: CorsCounts::default(),
            redirects: Default::default(),
            #[cfg(feature = "xdp")]
            xdp: None,
        })
    }

    /// The current runtime. Keep the `Arc` for the whole request.
    #[inline]
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    /// Sets the attached XDP classifier (its counters go to `/metrics`).
    #[cfg(feature = "xdp")]
    pub fn set_xdp(&mut self, xdp: Option<crate::xdp::Xdp>) {
        self.xdp = xdp;
    }

    /// The attached XDP classifier, if any.
    #[cfg(feature = "xdp")]
    pub fn xdp(&self) -> Option<&crate::xdp::Xdp> {
        self.xdp.as_ref()
    }

    /// The stats registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The version being served.
    pub fn version(&self) -> Version {
        self.runtime.load().snapshot.version()
    }

    /// CORS outcomes so far.
    pub fn cors_counts(&self) -> &CorsCounts {
        &self.cors
    }

    /// Internal redirect outcomes so far.
    pub fn redirect_counts(&self) -> &crate::redirect::RedirectCounts {
        &self.redirects
    }

    /// (successful, failed) reloads so far.
    pub fn reload_counts(&self) -> (u64, u64) {
        (
            self.reloads_ok.load(Ordering::Relaxed),
            self.reloads_failed.load(Ordering::Relaxed),
        )
    }

    /// The error of the last failed reload, cleared by a successful one.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Re-admits endpoints whose ejection has expired.
    pub fn expire_ejections(&self) {
        let back = self.outliers.expire();
        if back.is_empty() {
            return;
        }
        let rt = self.runtime();
        for c in rt.clusters.values() {
            if back.iter().any(|a| c.has_endpoint(*a)) {
                tracing::info!(cluster = %c.config().name, "ejection expired, endpoint re-admitted");
                c.rebuild();
            }
        }
    }

    /// Validates `text` and, if it is valid, serves it. An invalid text is
    /// logged and the current configuration keeps serving.
    ///
    /// # Errors
    ///
    /// Why the text was rejected.
    pub fn reload_text(&self, text: &str) -> Result<Version, ConfigError> {
        let _serial = self
            .reload_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let result = ProxyConfig::from_yaml(text).and_then(|config| {
            // The classifier's lists are parsed before anything changes (a
            // bad prefix rejects the file), and installed before the table
            // and the stats' new generation: a kernel error rejects the
            // file before any of it serves, the stats as they were.
            #[cfg(feature = "xdp")]
            let xdp_lists = match &self.xdp {
                Some(_) => Some(
                    crate::xdp::XdpLists::parse(&config.xdp.clone().unwrap_or_default())
                        .map_err(|e| ConfigError::Xdp(e.to_string()))?,
                ),
                None => None,
            };
            let (parts, stats) = build_parts(
                &config.table,
                &config.clusters,
                &self.registry,
                &self.outliers,
            )?;
            #[cfg(feature = "xdp")]
            if let (Some(xdp), Some(lists)) = (&self.xdp, xdp_lists) {
                xdp.apply(lists)
                    .map_err(|e| ConfigError::Xdp(e.to_string()))?;
            }
            stats.commit();
            // The table is already built and validated against this file's
            // clusters; the router versions and installs it. Reloads are
            // serialized, so the snapshot loaded next is the one installed.
            let version = self.router.install(config.table);
            let runtime = parts.into_runtime(
                self.router.load(),
                text,
                config.headers_with_underscores_action,
                config.max_stream_duration_ms,
                config.xff_num_trusted_hops,
            );
            self.runtime.store(Arc::new(runtime));
            Ok(version)
        });
        let mut last = self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &result {
            Ok(v) => {
                self.reloads_ok.fetch_add(1, Ordering::Relaxed);
                *last = None;
                tracing::info!(version = %v, "configuration reloaded");
            }
            Err(e) => {
                self.reloads_failed.fetch_add(1, Ordering::Relaxed);
                *last = Some(e.to_string());
                tracing::error!(error = %e, version = %self.version(), "configuration rejected; the current one keeps serving");
            }
        }
        result
    }

    /// Reads `path` and reloads it.
    ///
    /// # Errors
    ///
    /// An unreadable file or an invalid configuration.
    pub fn reload_file(&self, path: &Path) -> Result<Version, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            self.reloads_failed.fetch_add(1, Ordering::Relaxed);
            ConfigError::Parse(format!("{}: {e}", path.display()))
        })?;
        self.reload_text(&text)
    }
}

/// A runtime without its snapshot.
struct Parts {
    clusters: HashMap<String, Arc<Cluster>>,
    routes: Vec<RouteState>,
}

impl Parts {
    fn into_runtime(
        self,
        snapshot: Arc<Snapshot>,
        text: &str,
        underscores: crate::config::UnderscoreAction,
        max_stream_duration_ms: Option<u64>,
        xff_num_trusted_hops: u32,
    ) -> Runtime {
        Runtime {
            snapshot,
            clusters: self.clusters,
            routes: self.routes,
            text_hash: crate::config::text_hash(text),
            underscores,
            timeouts: rauta_router::TimeoutOptions::new().listener_max_stream_duration(
                max_stream_duration_ms
                    .filter(|ms| *ms > 0)
                    .map(std::time::Duration::from_millis),
            ),
            xff_num_trusted_hops,
        }
    }
}

/// The clusters and route states of a configuration, and the stats reload
/// that named them, for the caller to commit once nothing can reject the
/// configuration any more (dropped, it leaves the registry's generation as
/// it was: the serving routes' stats do not age).
fn build_parts<'r>(
    table: &rauta_router::RouteTable,
    clusters: &[crate::config::ClusterConfig],
    registry: &'r Registry,
    outliers: &Arc<Outliers>,
) -> Result<(Parts, Reload<'r>), ConfigError> {
    let stats_err = |e: rauta_stats::StatsError| ConfigError::Parse(format!("stats: {e}"));
    let mut reload = registry.reload();
    let mut built = HashMap::new();
    for (index, c) in clusters.iter().enumerate() {
        let stats = reload.cluster(&c.name).map_err(stats_err)?;
        let cluster = Cluster::new(c.clone(), Arc::clone(outliers), stats).map_err(|e| {
            ConfigError::Cluster {
                index,
                name: c.name.clone(),
                message: e.to_string(),
            }
        })?;
        built.insert(c.name.clone(), Arc::new(cluster));
    }
    let mut routes: Vec<Option<RouteState>> = (0..table.route_count()).map(|_| None).collect();
    for vh in table.virtual_hosts() {
        for r in vh.routes() {
            let state = RouteState {
                stats: reload.route(r.name()).map_err(stats_err)?,
                hash: hash_policy(r.hash_policy()),
            };
            if let Some(slot) = routes.get_mut(r.id().index()) {
                *slot = Some(state);
            }
        }
    }
    // Every route has an id below route_count(); a gap would be a table bug,
    // counted under the empty route name rather than dropped.
    let routes = routes
        .into_iter()
        .map(|r| match r {
            Some(r) => Ok(r),
            None => Ok(RouteState {
                stats: reload.route("").map_err(stats_err)?,
                hash: None,
            }),
        })
        .collect::<Result<_, ConfigError>>()?;
    Ok((
        Parts {
            clusters: built,
            routes,
        },
        reload,
    ))
}

/// Watches a configuration file: reloads when its modification time or
/// contents change (checked every `every`).
#[derive(Debug)]
pub struct FileWatch {
    path: PathBuf,
    seen: Option<(std::time::SystemTime, u64)>,
}

impl FileWatch {
    /// Starts watching `path` as it is now.
    pub fn new(path: PathBuf) -> FileWatch {
        let mut w = FileWatch { path, seen: None };
        w.seen = w.stamp();
        w
    }

    fn stamp(&self) -> Option<(std::time::SystemTime, u64)> {
        let mtime = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok()?;
        let text = std::fs::read(&self.path).ok()?;
        Some((mtime, rauta_balance::hash::xxh64(&text, 0)))
    }

    /// Whether the file changed since the last call.
    pub fn changed(&mut self) -> bool {
        let now = self.stamp();
        if now.is_some() && now != self.seen {
            self.seen = now;
            true
        } else {
            false
        }
    }

    /// The watched path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
