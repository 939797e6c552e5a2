//! The registry: stats by name, surviving route table reloads.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use crate::config::{Layout, StatsConfig};
use crate::error::{StatsError, StatsErrorKind};
use crate::expo::{self, Format};
use crate::request::{RequestStats, StatsKind};

/// Request stats by kind and name.
///
/// Stats are keyed by name, not by position in a route table: after a reload
/// a route that keeps its name keeps its counters. Names that disappear are
/// *retired*: still exported for [`StatsConfig::retention_reloads`] more
/// reloads (so a scrape sees their final values and a quickly re-added route
/// continues its counters), then dropped. Retention is counted in reloads, not
/// wall-clock time, and [`StatsConfig::max_retired`] and
/// [`StatsConfig::max_stats`] bound the memory however names churn.
///
/// Looking up or creating stats takes a short lock; recording into them never
/// does. Resolve the `Arc`s once per reload and keep them beside the route
/// table.
///
/// ```
/// use rauta_stats::{Format, Registry, StatsConfig};
///
/// let registry = Registry::new(StatsConfig::new().retention_reloads(1))?;
///
/// // Reload 1: routes "a" and "b".
/// let mut reload = registry.reload();
/// let a = reload.route("a")?;
/// let _b = reload.route("b")?;
/// reload.commit();
/// a.start().finish(200);
///
/// // Reload 2: "a" stays (same counters), "b" is retired.
/// let mut reload = registry.reload();
/// let a2 = reload.route("a")?;
/// let report = reload.commit();
/// assert!(std::sync::Arc::ptr_eq(&a, &a2));
/// assert_eq!((report.live, report.retired, report.dropped), (1, 1, 0));
///
/// // Reload 3: "b" has been gone for more than one reload and is dropped.
/// let mut reload = registry.reload();
/// reload.route("a")?;
/// assert_eq!(reload.commit().dropped, 1);
///
/// let text = registry.render(Format::Prometheus);
/// assert!(text.contains("rauta_route_requests_total{route=\"a\"} 1\n"));
/// assert!(!text.contains("route=\"b\""));
/// # Ok::<(), rauta_stats::StatsError>(())
/// ```
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    layout: Arc<Layout>,
    retention_reloads: u64,
    max_retired: usize,
    max_stats: usize,
    state: Mutex<State>,
    /// Buffers reused by renders; a render that finds them busy uses its own.
    scratch: Mutex<expo::Scratch>,
}

#[derive(Default)]
struct State {
    /// Number of committed reloads.
    generation: u64,
    maps: [BTreeMap<Box<str>, Entry>; 3],
}

struct Entry {
    stats: Arc<RequestStats>,
    /// Generation in which the name was last configured or looked up.
    last_seen: u64,
}

impl State {
    fn total(&self) -> usize {
        self.maps.iter().map(BTreeMap::len).sum()
    }
}

fn slot(kind: StatsKind) -> usize {
    match kind {
        StatsKind::Route => 0,
        StatsKind::VirtualHost => 1,
        StatsKind::Cluster => 2,
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.lock();
        f.debug_struct("Registry")
            .field("generation", &st.generation)
            .field("routes", &st.maps[0].len())
            .field("virtual_hosts", &st.maps[1].len())
            .field("clusters", &st.maps[2].len())
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// A registry with the given settings.
    ///
    /// # Errors
    ///
    /// When the configuration is invalid (see [`StatsErrorKind`]).
    pub fn new(config: StatsConfig) -> Result<Registry, StatsError> {
        let c = config.compile()?;
        Ok(Registry {
            inner: Arc::new(Inner {
                layout: Arc::new(c.layout),
                retention_reloads: c.retention_reloads,
                max_retired: c.max_retired,
                max_stats: c.max_stats,
                state: Mutex::new(State::default()),
                scratch: Mutex::new(expo::Scratch::default()),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-changed
        // in a way that matters to readers, so poisoning is ignored.
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The stats of `kind` named `name`, created on first use. Marks the name
    /// as in use in the current generation.
    ///
    /// # Errors
    ///
    /// [`StatsErrorKind::TooManyStats`] when creating it would exceed
    /// [`StatsConfig::max_stats`].
    pub fn get(&self, kind: StatsKind, name: &str) -> Result<Arc<RequestStats>, StatsError> {
        let mut st = self.lock();
        let generation = st.generation;
        if let Some(e) = st.maps[slot(kind)].get_mut(name) {
            e.last_seen = generation;
            return Ok(Arc::clone(&e.stats));
        }
        if st.total() >= self.inner.max_stats {
            return Err(StatsError::new(StatsErrorKind::TooManyStats(
                self.inner.max_stats,
            )));
        }
        let stats = Arc::new(RequestStats::new(
            kind,
            name,
            Arc::clone(&self.inner.layout),
        ));
        st.maps[slot(kind)].insert(
            name.into(),
            Entry {
                stats: Arc::clone(&stats),
                last_seen: generation,
            },
        );
        Ok(stats)
    }

    /// Route stats by name; see [`get`](Self::get).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn route(&self, name: &str) -> Result<Arc<RequestStats>, StatsError> {
        self.get(StatsKind::Route, name)
    }

    /// Virtual host stats by name; see [`get`](Self::get).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn virtual_host(&self, name: &str) -> Result<Arc<RequestStats>, StatsError> {
        self.get(StatsKind::VirtualHost, name)
    }

    /// Cluster stats by name; see [`get`](Self::get).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn cluster(&self, name: &str) -> Result<Arc<RequestStats>, StatsError> {
        self.get(StatsKind::Cluster, name)
    }

    /// Starts a reload: ask it for the stats of every name in the new
    /// configuration, then [`commit`](Reload::commit).
    pub fn reload(&self) -> Reload<'_> {
        Reload {
            registry: self,
            seen: Vec::new(),
        }
    }

    /// Number of committed reloads.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Number of stats held, live and retired, of all kinds.
    pub fn len(&self) -> usize {
        self.lock().total()
    }

    /// True when no stats are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Names held for `kind`, sorted.
    pub fn names(&self, kind: StatsKind) -> Vec<String> {
        self.lock().maps[slot(kind)]
            .keys()
            .map(|k| k.to_string())
            .collect()
    }

    /// All stats of `kind` held now (live and retired), sorted by name.
    pub fn stats(&self, kind: StatsKind) -> Vec<Arc<RequestStats>> {
        self.lock().maps[slot(kind)]
            .values()
            .map(|e| Arc::clone(&e.stats))
            .collect()
    }

    /// The exposition text of every stat in `format`.
    pub fn render(&self, format: Format) -> String {
        let mut out = String::new();
        self.render_into(format, &mut out);
        out
    }

    /// Appends the exposition text to `out` (reuse the buffer across scrapes
    /// to avoid regrowing it).
    ///
    /// The registry keeps the working buffers of the last render (under 1 KB
    /// per stat) for the next one, so that scraping many routes does not
    /// fault in fresh memory every time; a render that runs while another is
    /// in progress uses buffers of its own.
    pub fn render_into(&self, format: Format, out: &mut String) {
        // Taken out of the lock, so that reloads never wait for a render.
        let sets = StatsKind::ALL.map(|k| self.stats(k));
        let layout = &self.inner.layout;
        match self.inner.scratch.try_lock() {
            Ok(mut scratch) => expo::render(layout, &sets, format, out, &mut scratch),
            // Every buffer is cleared before use, so a render that panicked
            // half-way left nothing that matters behind.
            Err(TryLockError::Poisoned(p)) => {
                expo::render(layout, &sets, format, out, &mut p.into_inner())
            }
            Err(TryLockError::WouldBlock) => {
                expo::render(layout, &sets, format, out, &mut expo::Scratch::default())
            }
        }
    }
}

/// One reload in progress; see [`Registry::reload`].
///
/// Stats handed out by a reload are usable at once. Dropping a `Reload`
/// without committing changes nothing: names it created simply age like any
/// name not named by the next committed reload.
pub struct Reload<'r> {
    registry: &'r Registry,
    seen: Vec<Arc<RequestStats>>,
}

impl fmt::Debug for Reload<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reload")
            .field("names", &self.seen.len())
            .finish_non_exhaustive()
    }
}

/// What a committed reload did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReloadReport {
    /// Generation number of this reload (1 for the first).
    pub generation: u64,
    /// Stats named by this reload.
    pub live: usize,
    /// Stats kept although no longer named (within retention).
    pub retired: usize,
    /// Stats dropped by this reload.
    pub dropped: usize,
}

impl Reload<'_> {
    /// The stats of `kind` named `name` in the new configuration.
    ///
    /// # Errors
    ///
    /// As [`Registry::get`].
    pub fn get(&mut self, kind: StatsKind, name: &str) -> Result<Arc<RequestStats>, StatsError> {
        let s = self.registry.get(kind, name)?;
        self.seen.push(Arc::clone(&s));
        Ok(s)
    }

    /// Route stats by name.
    ///
    /// # Errors
    ///
    /// As [`Registry::get`].
    pub fn route(&mut self, name: &str) -> Result<Arc<RequestStats>, StatsError> {
        self.get(StatsKind::Route, name)
    }

    /// Virtual host stats by name.
    ///
    /// # Errors
    ///
    /// As [`Registry::get`].
    pub fn virtual_host(&mut self, name: &str) -> Result<Arc<RequestStats>, StatsError> {
        self.get(StatsKind::VirtualHost, name)
    }

    /// Cluster stats by name.
    ///
    /// # Errors
    ///
    /// As [`Registry::get`].
    pub fn cluster(&mut self, name: &str) -> Result<Arc<RequestStats>, StatsError> {
        self.get(StatsKind::Cluster, name)
    }

    /// Ends the reload: the names asked for are live in the new generation,
    /// every other name ages by one reload, and names older than the
    /// retention (or beyond `max_retired`) are dropped.
    pub fn commit(self) -> ReloadReport {
        let inner = &self.registry.inner;
        let mut st = self.registry.lock();
        st.generation += 1;
        let generation = st.generation;
        for s in &self.seen {
            let map = &mut st.maps[slot(s.kind())];
            match map.get_mut(s.name()) {
                Some(e) => {
                    // Dropped and made again meanwhile: the stats this
                    // reload handed out are the ones its configuration
                    // counts into, so they are the ones exported.
                    if !Arc::ptr_eq(&e.stats, s) {
                        e.stats = Arc::clone(s);
                    }
                    e.last_seen = generation;
                }
                // Dropped by a concurrent reload after we handed it out: it
                // is configured again, so put the same stats back.
                None => {
                    map.insert(
                        s.name().into(),
                        Entry {
                            stats: Arc::clone(s),
                            last_seen: generation,
                        },
                    );
                }
            }
        }
        let mut report = ReloadReport {
            generation,
            ..ReloadReport::default()
        };
        let retention = inner.retention_reloads;
        let mut retired: Vec<(u64, usize, Box<str>)> = Vec::new();
        for (k, map) in st.maps.iter_mut().enumerate() {
            let before = map.len();
            map.retain(|_, e| generation - e.last_seen <= retention);
            report.dropped += before - map.len();
            for (name, e) in map.iter() {
                if e.last_seen == generation {
                    report.live += 1;
                } else {
                    retired.push((e.last_seen, k, name.clone()));
                }
            }
        }
        if retired.len() > inner.max_retired {
            retired.sort_unstable();
            let excess = retired.len() - inner.max_retired;
            for (_, k, name) in retired.drain(..excess) {
                st.maps[k].remove(&name);
                report.dropped += 1;
            }
        }
        report.retired = retired.len();
        report
    }
}
