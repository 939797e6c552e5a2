//! Per-route, per-virtual-host and per-cluster request stats.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Layout;
use crate::expo::escape_label_value;
use crate::histogram::{duration_ns, Core, HistogramSnapshot};
use crate::shard::ShardedCells;

/// Cell positions inside a [`RequestStats`] block.
pub(crate) const REQUESTS: usize = 0;
pub(crate) const ACTIVE: usize = 1;
pub(crate) const CLASS0: usize = 2;
pub(crate) const TIMEOUTS: usize = CLASS0 + StatusClass::ALL.len();
pub(crate) const CONNECT_FAILURES: usize = TIMEOUTS + 1;
/// The two latency sums, 128 bits each, live in the same per-slot lines as
/// the counters.
pub(crate) const REQUEST_SUM: usize = CONNECT_FAILURES + 1;
pub(crate) const UPSTREAM_SUM: usize = REQUEST_SUM + 2;
pub(crate) const CODE0: usize = UPSTREAM_SUM + 2;

/// What a set of request stats belongs to; it picks the metric name prefix
/// and the label name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum StatsKind {
    /// A route: metrics `rauta_route_*`, label `route`.
    Route,
    /// A virtual host: metrics `rauta_vhost_*`, label `virtual_host`.
    VirtualHost,
    /// An upstream cluster: metrics `rauta_cluster_*`, label `cluster`.
    Cluster,
}

impl StatsKind {
    /// All kinds, in exposition order.
    pub const ALL: [StatsKind; 3] = [StatsKind::Route, StatsKind::VirtualHost, StatsKind::Cluster];

    /// Metric name prefix, e.g. `rauta_route_`.
    pub fn prefix(self) -> &'static str {
        match self {
            StatsKind::Route => "rauta_route_",
            StatsKind::VirtualHost => "rauta_vhost_",
            StatsKind::Cluster => "rauta_cluster_",
        }
    }

    /// Label that carries the name, e.g. `route`.
    pub fn label(self) -> &'static str {
        match self {
            StatsKind::Route => "route",
            StatsKind::VirtualHost => "virtual_host",
            StatsKind::Cluster => "cluster",
        }
    }

    /// Human name used in help texts.
    pub(crate) fn noun(self) -> &'static str {
        match self {
            StatsKind::Route => "route",
            StatsKind::VirtualHost => "virtual host",
            StatsKind::Cluster => "cluster",
        }
    }
}

/// The class of an HTTP status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum StatusClass {
    /// 100-199.
    Informational,
    /// 200-299.
    Success,
    /// 300-399.
    Redirection,
    /// 400-499.
    ClientError,
    /// 500-599.
    ServerError,
    /// Anything else (exported only when non-zero).
    Other,
}

impl StatusClass {
    /// All classes, in exposition order.
    pub const ALL: [StatusClass; 6] = [
        StatusClass::Informational,
        StatusClass::Success,
        StatusClass::Redirection,
        StatusClass::ClientError,
        StatusClass::ServerError,
        StatusClass::Other,
    ];

    /// The class of `code`.
    #[inline]
    pub fn of(code: u16) -> StatusClass {
        match code {
            100..=199 => StatusClass::Informational,
            200..=299 => StatusClass::Success,
            300..=399 => StatusClass::Redirection,
            400..=499 => StatusClass::ClientError,
            500..=599 => StatusClass::ServerError,
            _ => StatusClass::Other,
        }
    }

    /// The `class` label value: `1xx` .. `5xx`, or `other`.
    pub fn label(self) -> &'static str {
        match self {
            StatusClass::Informational => "1xx",
            StatusClass::Success => "2xx",
            StatusClass::Redirection => "3xx",
            StatusClass::ClientError => "4xx",
            StatusClass::ServerError => "5xx",
            StatusClass::Other => "other",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Request stats of one route, virtual host or cluster.
///
/// Get one from [`Registry`](crate::Registry) (or [`Reload`](crate::Reload))
/// by name, keep the `Arc` next to the route table, and record through it.
/// Every recording method is lock-free and allocation-free.
///
/// ```
/// use std::time::Duration;
/// use rauta_stats::{Registry, StatsConfig, StatusClass};
///
/// let registry = Registry::new(StatsConfig::new().status_codes([503]))?;
/// let stats = registry.route("checkout")?;
/// {
///     let req = stats.start();
///     req.upstream_latency(Duration::from_millis(3));
///     req.finish_with_latency(503, Duration::from_millis(4));
/// }
/// let s = stats.snapshot();
/// assert_eq!(s.requests_total(), 1);
/// assert_eq!(s.requests_active(), 0);
/// assert_eq!(s.responses(StatusClass::ServerError), 1);
/// assert_eq!(s.responses_by_code(503), Some(1));
/// assert_eq!(s.request_latency().max(), Some(4_000_000));
/// # Ok::<(), rauta_stats::StatsError>(())
/// ```
pub struct RequestStats {
    kind: StatsKind,
    name: Box<str>,
    /// `label="escaped name"`, ready to paste into an exposition line.
    pub(crate) label: Box<str>,
    pub(crate) layout: Arc<Layout>,
    pub(crate) cells: ShardedCells,
    request: Core,
    upstream: Core,
}

impl fmt::Debug for RequestStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestStats")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("requests_total", &self.cells.sum(REQUESTS))
            .field("requests_active", &(self.cells.sum(ACTIVE) as i64))
            .finish_non_exhaustive()
    }
}

impl RequestStats {
    pub(crate) fn new(kind: StatsKind, name: &str, layout: Arc<Layout>) -> RequestStats {
        // The large bucket arrays first: the small parts read on every scrape
        // (label, counter lines and, when the caller puts these stats in an
        // `Arc`, the struct itself) then come out of the allocator next to
        // each other, on one or two pages instead of one page each.
        let request = Core::new();
        let upstream = Core::new();
        let mut label = String::with_capacity(kind.label().len() + name.len() + 4);
        label.push_str(kind.label());
        label.push_str("=\"");
        escape_label_value(name, &mut label);
        label.push('"');
        RequestStats {
            kind,
            name: name.into(),
            label: label.into(),
            cells: ShardedCells::new(CODE0 + layout.codes.len()),
            layout,
            request,
            upstream,
        }
    }

    /// The route, virtual host or cluster name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What these stats belong to.
    pub fn kind(&self) -> StatsKind {
        self.kind
    }

    /// Counts a request as started and active; the returned guard makes it
    /// inactive when dropped, also when a panic unwinds through it.
    #[inline]
    pub fn start(&self) -> ActiveRequest<&RequestStats> {
        ActiveRequest::begin(self, Instant::now())
    }

    /// Like [`start`](Self::start), for a request that started at `started`
    /// (a time the caller has read already: saves reading the clock again).
    #[inline]
    pub fn start_at(&self, started: Instant) -> ActiveRequest<&RequestStats> {
        ActiveRequest::begin(self, started)
    }

    /// Like [`start`](Self::start), with a guard that owns an `Arc` and so can
    /// move into a spawned task.
    #[inline]
    pub fn start_owned(self: &Arc<Self>) -> ActiveRequest<Arc<RequestStats>> {
        ActiveRequest::begin(Arc::clone(self), Instant::now())
    }

    /// Counts a response with status `code` (by class, and by code when the
    /// code is in the configured set).
    #[inline]
    pub fn record_response(&self, code: u16) {
        self.cells.add(CLASS0 + StatusClass::of(code).index(), 1);
        if let Some(i) = self.layout.code_cell(code) {
            self.cells.add(CODE0 + i, 1);
        }
    }

    /// Counts a request that timed out.
    #[inline]
    pub fn record_timeout(&self) {
        self.cells.add(TIMEOUTS, 1);
    }

    /// Counts a failed connection attempt to an upstream.
    #[inline]
    pub fn record_upstream_connect_failure(&self) {
        self.cells.add(CONNECT_FAILURES, 1);
    }

    /// Records the whole request's latency (a histogram in nanoseconds,
    /// with the accuracy of [`Histogram`](crate::Histogram)).
    #[inline]
    pub fn record_request_latency(&self, d: Duration) {
        let v = duration_ns(d);
        self.request.record(v);
        self.cells.add_wide(REQUEST_SUM, v);
    }

    /// Records the upstream's latency (request sent to response headers).
    #[inline]
    pub fn record_upstream_latency(&self, d: Duration) {
        let v = duration_ns(d);
        self.upstream.record(v);
        self.cells.add_wide(UPSTREAM_SUM, v);
    }

    /// The request (`upstream == false`) or upstream latency histogram.
    pub(crate) fn core(&self, upstream: bool) -> &Core {
        if upstream {
            &self.upstream
        } else {
            &self.request
        }
    }

    /// Loads one word from each part a render reads first (the label, the
    /// counter lines' in-use mask, both histograms' headers) and returns
    /// them mixed. A tight loop of these over many stats has its cache misses
    /// in flight together, so the passes of a render that follow find those
    /// lines in cache.
    pub(crate) fn warm(&self) -> u64 {
        let label = self.label.as_bytes().first().copied().unwrap_or(0);
        u64::from(label)
            ^ self.cells.warm()
            ^ self.request.extremes().0
            ^ self.upstream.extremes().0
    }

    /// The request or upstream latency sum.
    pub(crate) fn latency_sum(&self, upstream: bool) -> u128 {
        self.cells
            .sum_wide(if upstream { UPSTREAM_SUM } else { REQUEST_SUM })
    }

    /// Copies request (`upstream == false`) or upstream latency into `into`.
    pub(crate) fn latency_into(&self, upstream: bool, into: &mut HistogramSnapshot) {
        if upstream {
            self.upstream.snapshot_into(into);
            into.sum = self.cells.sum_wide(UPSTREAM_SUM);
        } else {
            self.request.snapshot_into(into);
            into.sum = self.cells.sum_wide(REQUEST_SUM);
        }
    }

    /// A copy of all values.
    pub fn snapshot(&self) -> RequestStatsSnapshot {
        let mut cells = vec![0u64; CODE0 + self.layout.codes.len()];
        self.cells.sum_all(&mut cells);
        let mut request = HistogramSnapshot::default();
        let mut upstream = HistogramSnapshot::default();
        self.latency_into(false, &mut request);
        self.latency_into(true, &mut upstream);
        RequestStatsSnapshot {
            cells,
            layout: Arc::clone(&self.layout),
            request,
            upstream,
        }
    }

    /// Bytes these stats occupy, the two histograms included.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.name.len()
            + self.label.len()
            + self.cells.bytes()
            + 2 * (self.request.memory_bytes() - std::mem::size_of::<Core>())
    }
}

/// A copy of a [`RequestStats`].
#[derive(Clone, Debug)]
pub struct RequestStatsSnapshot {
    cells: Vec<u64>,
    layout: Arc<Layout>,
    request: HistogramSnapshot,
    upstream: HistogramSnapshot,
}

impl RequestStatsSnapshot {
    /// Requests started.
    pub fn requests_total(&self) -> u64 {
        self.cells[REQUESTS]
    }

    /// Requests started and not yet finished.
    pub fn requests_active(&self) -> i64 {
        self.cells[ACTIVE] as i64
    }

    /// Responses of a status class.
    pub fn responses(&self, class: StatusClass) -> u64 {
        self.cells[CLASS0 + class.index()]
    }

    /// Responses with status `code`, `None` when the code is not in the
    /// configured set.
    pub fn responses_by_code(&self, code: u16) -> Option<u64> {
        self.layout.code_cell(code).map(|i| self.cells[CODE0 + i])
    }

    /// Timed-out requests.
    pub fn timeouts(&self) -> u64 {
        self.cells[TIMEOUTS]
    }

    /// Failed upstream connection attempts.
    pub fn upstream_connect_failures(&self) -> u64 {
        self.cells[CONNECT_FAILURES]
    }

    /// Request latency in nanoseconds.
    pub fn request_latency(&self) -> &HistogramSnapshot {
        &self.request
    }

    /// Upstream latency in nanoseconds.
    pub fn upstream_latency(&self) -> &HistogramSnapshot {
        &self.upstream
    }
}

/// A started request: counted as active until dropped.
///
/// `S` is `&RequestStats` ([`RequestStats::start`]) or `Arc<RequestStats>`
/// ([`RequestStats::start_owned`]). Dropping the guard, by
/// [`finish`](Self::finish), by going out of scope or by a panic unwinding
/// through it, decrements the active count exactly once.
///
/// ```
/// use std::sync::Arc;
/// use rauta_stats::{Registry, StatsConfig};
///
/// let registry = Registry::new(StatsConfig::new())?;
/// let stats = registry.route("r")?;
/// let result = std::panic::catch_unwind(|| {
///     let _req = stats.start();
///     panic!("handler failed");
/// });
/// assert!(result.is_err());
/// assert_eq!(stats.snapshot().requests_active(), 0);
/// assert_eq!(stats.snapshot().requests_total(), 1);
/// # Ok::<(), rauta_stats::StatsError>(())
/// ```
pub struct ActiveRequest<S: Borrow<RequestStats>> {
    stats: S,
    started: Instant,
}

impl<S: Borrow<RequestStats>> fmt::Debug for ActiveRequest<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActiveRequest")
            .field("name", &self.stats.borrow().name())
            .field("started", &self.started)
            .finish()
    }
}

impl<S: Borrow<RequestStats>> ActiveRequest<S> {
    #[inline]
    fn begin(stats: S, started: Instant) -> Self {
        let s = stats.borrow();
        s.cells.add(REQUESTS, 1);
        s.cells.add(ACTIVE, 1);
        ActiveRequest { stats, started }
    }

    /// The stats this request is counted in.
    pub fn stats(&self) -> &RequestStats {
        self.stats.borrow()
    }

    /// When the request started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Counts a timeout for this request.
    #[inline]
    pub fn timeout(&self) {
        self.stats().record_timeout();
    }

    /// Counts a failed upstream connection attempt for this request.
    #[inline]
    pub fn upstream_connect_failure(&self) {
        self.stats().record_upstream_connect_failure();
    }

    /// Records the upstream's latency for this request.
    #[inline]
    pub fn upstream_latency(&self, d: Duration) {
        self.stats().record_upstream_latency(d);
    }

    /// Ends the request: counts the response status and records the time
    /// since [`start`](RequestStats::start) as the request latency.
    #[inline]
    pub fn finish(self, status: u16) {
        let d = self.started.elapsed();
        self.finish_with_latency(status, d);
    }

    /// Ends the request with a latency the caller measured.
    #[inline]
    pub fn finish_with_latency(self, status: u16, latency: Duration) {
        let s = self.stats();
        s.record_response(status);
        s.record_request_latency(latency);
    }
}

impl<S: Borrow<RequestStats>> Drop for ActiveRequest<S> {
    #[inline]
    fn drop(&mut self) {
        self.stats.borrow().cells.add(ACTIVE, u64::MAX);
    }
}
