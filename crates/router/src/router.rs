//! The hot-reloadable [`Router`] handle.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::{ArcSwap, Cache};

use crate::config::RouteConfig;
use crate::error::ConfigErrors;
use crate::table::{BuildOptions, RouteTable};

/// A version number given to each table a [`Router`] serves, from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version(pub u64);

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "v{}", self.0)
    }
}

/// One table and the version it was installed as.
#[derive(Debug)]
pub struct Snapshot {
    version: Version,
    table: RouteTable,
}

impl Snapshot {
    /// The version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The table.
    pub fn table(&self) -> &RouteTable {
        &self.table
    }
}

impl std::ops::Deref for Snapshot {
    type Target = RouteTable;
    fn deref(&self) -> &RouteTable {
        &self.table
    }
}

/// A route table that can be replaced while requests are being routed.
///
/// A reload compiles and validates the new configuration off to the side and
/// swaps it in atomically only if it is valid; a bad configuration never
/// replaces a good one. Requests keep the [`Snapshot`] they started with for
/// as long as they hold its `Arc`.
///
/// ```
/// use rauta_router::{Request, Router};
///
/// let router = Router::from_yaml(r#"
/// virtual_hosts:
///   - name: all
///     domains: ["*"]
///     routes: [{name: a, match: {prefix: /}, action: {cluster: a}}]
/// "#)?;
/// let snap = router.load();
/// let req = Request::get("x.com", "/");
/// assert_eq!(snap.route(&req, 0).route().unwrap().cluster(), Some("a"));
///
/// // A bad config is rejected and the old table keeps serving.
/// assert!(router.reload_yaml("virtual_hosts: [{name: bad}]").is_err());
/// assert_eq!(router.load().version(), snap.version());
/// # Ok::<(), rauta_router::ConfigErrors>(())
/// ```
#[derive(Debug)]
pub struct Router {
    current: ArcSwap<Snapshot>,
    next_version: AtomicU64,
    /// Used by reloads only, never by lookups.
    options: Mutex<BuildOptions>,
}

impl Router {
    /// A router serving `table` as version 1.
    pub fn new(table: RouteTable) -> Router {
        Router::with_options(table, BuildOptions::default())
    }

    /// A router that builds reloaded configurations with `options`.
    pub fn with_options(table: RouteTable, options: BuildOptions) -> Router {
        Router {
            current: ArcSwap::from_pointee(Snapshot {
                version: Version(1),
                table,
            }),
            next_version: AtomicU64::new(2),
            options: Mutex::new(options),
        }
    }

    /// Parses and builds YAML, then serves it as version 1.
    ///
    /// # Errors
    ///
    /// Every problem in the configuration.
    pub fn from_yaml(text: &str) -> Result<Router, ConfigErrors> {
        Ok(Router::new(RouteTable::from_yaml(text)?))
    }

    /// The current snapshot. Hold the `Arc` for the whole request.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// A per-thread cache: [`RouterCache::load`] costs one pointer compare
    /// while the table is unchanged.
    pub fn cache(&self) -> RouterCache<'_> {
        RouterCache {
            cache: Cache::new(&self.current),
        }
    }

    /// Builds `config` and, if it is valid, installs it.
    ///
    /// # Errors
    ///
    /// Every problem in the configuration; the current table is unchanged.
    pub fn reload(&self, config: RouteConfig) -> Result<Version, ConfigErrors> {
        let options = self.options.lock().unwrap_or_else(|p| p.into_inner());
        let table = RouteTable::build_with(config, &options)?;
        Ok(self.install(table))
    }

    /// Builds `config` with other options (say, a cluster set that changed
    /// along with the routes) and, if it is valid, installs it. Later
    /// [`Router::reload`] calls use these options.
    ///
    /// # Errors
    ///
    /// Every problem in the configuration; the current table and options are
    /// unchanged.
    pub fn reload_with(
        &self,
        config: RouteConfig,
        options: BuildOptions,
    ) -> Result<Version, ConfigErrors> {
        let mut current = self.options.lock().unwrap_or_else(|p| p.into_inner());
        let table = RouteTable::build_with(config, &options)?;
        *current = options;
        Ok(self.install(table))
    }

    /// Parses YAML and reloads it.
    ///
    /// # Errors
    ///
    /// A parse error or every problem in the configuration; the current
    /// table is unchanged.
    pub fn reload_yaml(&self, text: &str) -> Result<Version, ConfigErrors> {
        self.reload(RouteConfig::from_yaml(text)?)
    }

    /// Installs an already-built table. Its local rate limits take over
    /// the state of the table being served where their place and
    /// configuration are unchanged
    /// ([`RouteTable::carry_local_rate_limits`]), as on every reload.
    pub fn install(&self, table: RouteTable) -> Version {
        table.carry_local_rate_limits(&self.current.load().table);
        let version = Version(self.next_version.fetch_add(1, Ordering::Relaxed));
        self.current.store(Arc::new(Snapshot { version, table }));
        version
    }

    /// The version being served.
    pub fn version(&self) -> Version {
        self.current.load().version
    }
}

/// A per-thread view of a [`Router`]; see [`Router::cache`].
#[derive(Debug)]
pub struct RouterCache<'r> {
    cache: Cache<&'r ArcSwap<Snapshot>, Arc<Snapshot>>,
}

impl RouterCache<'_> {
    /// The current snapshot (one pointer compare when unchanged).
    pub fn load(&mut self) -> &Arc<Snapshot> {
        self.cache.load()
    }
}
