//! Per-route request stats that cost nanoseconds, with Prometheus and
//! OpenMetrics exposition.
//!
//! ```
//! use std::time::Duration;
//! use rauta_stats::{Format, Registry, StatsConfig};
//!
//! let registry = Registry::new(StatsConfig::new().status_codes([404, 503]))?;
//!
//! // At (re)load time: resolve the stats of every route once.
//! let mut reload = registry.reload();
//! let route = reload.route("api \"v2\"")?;
//! let cluster = reload.cluster("backend")?;
//! reload.commit();
//!
//! // Per request: lock-free, allocation-free.
//! let req = route.start();
//! let upstream = cluster.start();
//! upstream.finish_with_latency(200, Duration::from_micros(850));
//! req.upstream_latency(Duration::from_micros(850));
//! req.finish_with_latency(200, Duration::from_millis(1));
//!
//! // Per scrape.
//! let text = registry.render(Format::Prometheus);
//! assert!(text.contains("rauta_route_requests_total{route=\"api \\\"v2\\\"\"} 1\n"));
//! assert!(text.contains("rauta_cluster_responses_total{cluster=\"backend\",class=\"2xx\"} 1\n"));
//! # Ok::<(), rauta_stats::StatsError>(())
//! ```
//!
//! # What is in the box
//!
//! - [`Counter`], [`Gauge`]: 64-bit cells sharded per thread on 64-byte cache
//!   lines and summed on read.
//! - [`Histogram`]: log-linear buckets of atomics over all of `u64`, quantiles
//!   within 1/64 (1.56%) of the exact sample, exact min, max, count and sum;
//!   15,360 bytes of buckets.
//! - [`RequestStats`]: the stats of one route, virtual host or cluster
//!   (requests, active requests through a drop guard, responses by class and
//!   by configured code, timeouts, upstream connect failures, request and
//!   upstream latency).
//! - [`Registry`]: stats by name that survive route table reloads, with
//!   retention counted in reloads and bounded memory; renders
//!   [`Format::Prometheus`] (text 0.0.4) and [`Format::OpenMetrics`].
//!
//! # Why recording is cheap
//!
//! Each thread that records claims a *shard slot* on its first write: an
//! index no other live thread holds, taken lock-free from a bitmap and given
//! back when the thread exits. Every sharded stat keeps one cache line per
//! slot, so a thread only ever writes its own line, with a plain load and
//! store instead of a locked read-modify-write; two threads never contend on
//! the same line. Threads beyond the number of slots (twice the CPU count,
//! 4 to 63) share one extra line and use `fetch_add`. Readers sum the lines
//! that have been written.
//!
//! Histograms are not sharded (that would multiply their memory): a record
//! is one `fetch_add` on its bucket, a plain store on the thread's own sum
//! line and loads of the min, max and bucket in-use words, written only when
//! they change.
//!
//! See `docs/stats.md` in the repository for the metric names, labels, error
//! bound, memory figures and the reload model.

#![forbid(unsafe_code)]

mod config;
mod error;
mod expo;
mod histogram;
mod metric;
mod registry;
mod request;
mod shard;

pub use config::StatsConfig;
pub use error::{StatsError, StatsErrorKind};
pub use expo::{escape_label_value, Format};
pub use histogram::{Histogram, HistogramSnapshot};
pub use metric::{Counter, Gauge};
pub use registry::{Registry, Reload, ReloadReport};
pub use request::{ActiveRequest, RequestStats, RequestStatsSnapshot, StatsKind, StatusClass};

/// Serializes unit tests that count on shard slots being free.
#[cfg(test)]
pub(crate) fn test_threads_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
