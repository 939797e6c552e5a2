//! Configuration of a [`Registry`](crate::Registry).

use std::time::Duration;

use crate::error::{StatsError, StatsErrorKind};
use crate::expo::write_seconds;
use crate::histogram::bucket_of;

/// Prometheus' default latency buckets, in seconds: 5 ms .. 10 s.
const DEFAULT_BUCKETS_NS: [u64; 11] = [
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Quantiles exported in the summary view (`1` is the maximum).
pub(crate) const QUANTILES: [(f64, &str); 5] = [
    (0.5, "0.5"),
    (0.9, "0.9"),
    (0.99, "0.99"),
    (0.999, "0.999"),
    (1.0, "1"),
];

/// Settings of a [`Registry`](crate::Registry). Every field is optional;
/// unset fields take the defaults listed on each setter.
///
/// ```
/// use std::time::Duration;
/// use rauta_stats::{Registry, StatsConfig};
///
/// let config = StatsConfig::new()
///     .status_codes([404, 429, 503])
///     .latency_buckets([Duration::from_millis(1), Duration::from_millis(10)])
///     .retention_reloads(3);
/// let registry = Registry::new(config)?;
///
/// // Bad input is an error, not a panic.
/// let bad = StatsConfig::new().status_codes([42]);
/// assert!(Registry::new(bad).is_err());
/// # Ok::<(), rauta_stats::StatsError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatsConfig {
    status_codes: Option<Vec<u16>>,
    latency_buckets: Option<Vec<Duration>>,
    retention_reloads: Option<u64>,
    max_retired: Option<usize>,
    max_stats: Option<usize>,
    quantiles: Option<bool>,
}

impl StatsConfig {
    /// All fields unset.
    pub fn new() -> StatsConfig {
        StatsConfig::default()
    }

    /// Status codes counted one by one in `*_responses_by_code_total`
    /// (100..=999, at most 64). Default: none.
    pub fn status_codes(self, codes: impl IntoIterator<Item = u16>) -> StatsConfig {
        StatsConfig {
            status_codes: Some(codes.into_iter().collect()),
            ..self
        }
    }

    /// Upper bounds (`le`) of the exported latency histogram buckets,
    /// strictly ascending, 1 to 64 of them, each at least 1 µs. The recorded
    /// data is finer; these only shape the export. Default: Prometheus'
    /// 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 seconds.
    pub fn latency_buckets(self, bounds: impl IntoIterator<Item = Duration>) -> StatsConfig {
        StatsConfig {
            latency_buckets: Some(bounds.into_iter().collect()),
            ..self
        }
    }

    /// How many reloads the stats of a name that is no longer in the
    /// configuration are kept (and exported) before being dropped. `0` drops
    /// them at the reload that removes the name. Default: 2.
    pub fn retention_reloads(self, reloads: u64) -> StatsConfig {
        StatsConfig {
            retention_reloads: Some(reloads),
            ..self
        }
    }

    /// Most retired (no longer configured) stats kept at once; beyond it the
    /// longest-retired are dropped first. Default: 10,000.
    pub fn max_retired(self, n: usize) -> StatsConfig {
        StatsConfig {
            max_retired: Some(n),
            ..self
        }
    }

    /// Most stats (all kinds, live and retired) the registry holds; asking
    /// for one more is [`StatsErrorKind::TooManyStats`]. Default: 1,000,000.
    pub fn max_stats(self, n: usize) -> StatsConfig {
        StatsConfig {
            max_stats: Some(n),
            ..self
        }
    }

    /// Whether the summary-style quantile view (p50, p90, p99, p99.9, max) is
    /// exported next to each latency histogram. Default: true.
    pub fn quantiles(self, on: bool) -> StatsConfig {
        StatsConfig {
            quantiles: Some(on),
            ..self
        }
    }

    pub(crate) fn compile(&self) -> Result<Compiled, StatsError> {
        let mut codes = self.status_codes.clone().unwrap_or_default();
        codes.sort_unstable();
        codes.dedup();
        if let Some(&bad) = codes.iter().find(|c| !(100..=999).contains(*c)) {
            return Err(StatsError::new(StatsErrorKind::InvalidStatusCode(bad)));
        }
        if codes.len() > 64 {
            return Err(StatsError::new(StatsErrorKind::TooManyStatusCodes(
                codes.len(),
            )));
        }
        let bounds: Vec<u64> = match &self.latency_buckets {
            None => DEFAULT_BUCKETS_NS.to_vec(),
            Some(b) => b
                .iter()
                .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
                .collect(),
        };
        if bounds.is_empty() || bounds.len() > 64 {
            return Err(StatsError::new(StatsErrorKind::InvalidLatencyBuckets(
                "need 1 to 64 bounds",
            )));
        }
        if bounds[0] < 1_000 {
            return Err(StatsError::new(StatsErrorKind::InvalidLatencyBuckets(
                "bounds must be at least 1 microsecond",
            )));
        }
        if bounds.windows(2).any(|w| w[0] >= w[1]) {
            return Err(StatsError::new(StatsErrorKind::InvalidLatencyBuckets(
                "bounds must be strictly ascending",
            )));
        }
        let mut code_cells = vec![NO_CODE; 1000].into_boxed_slice();
        for (i, &c) in codes.iter().enumerate() {
            code_cells[usize::from(c)] = i as u8;
        }
        let le = bounds
            .iter()
            .map(|&ns| {
                let mut s = String::new();
                write_seconds(u128::from(ns), &mut s);
                s.into_boxed_str()
            })
            .collect();
        Ok(Compiled {
            layout: Layout {
                code_labels: codes.iter().map(|c| c.to_string().into()).collect(),
                codes,
                code_cells,
                bound_buckets: bounds.iter().map(|&b| bucket_of(b)).collect(),
                bounds,
                le,
                quantiles: self.quantiles.unwrap_or(true),
            },
            retention_reloads: self.retention_reloads.unwrap_or(2),
            max_retired: self.max_retired.unwrap_or(10_000),
            max_stats: self.max_stats.unwrap_or(1_000_000),
        })
    }
}

const NO_CODE: u8 = u8::MAX;

pub(crate) struct Compiled {
    pub(crate) layout: Layout,
    pub(crate) retention_reloads: u64,
    pub(crate) max_retired: usize,
    pub(crate) max_stats: usize,
}

/// The compiled, shared shape of every [`RequestStats`](crate::RequestStats).
#[derive(Debug)]
pub(crate) struct Layout {
    pub(crate) codes: Vec<u16>,
    pub(crate) code_labels: Vec<Box<str>>,
    /// Status code -> index into `codes`, `NO_CODE` when not tracked.
    code_cells: Box<[u8]>,
    /// Export bucket bounds in nanoseconds, and their `le` texts in seconds.
    pub(crate) bounds: Vec<u64>,
    /// Recorded bucket holding each bound.
    pub(crate) bound_buckets: Vec<usize>,
    pub(crate) le: Vec<Box<str>>,
    pub(crate) quantiles: bool,
}

impl Layout {
    #[inline]
    pub(crate) fn code_cell(&self, code: u16) -> Option<usize> {
        match self.code_cells.get(usize::from(code)) {
            Some(&i) if i != NO_CODE => Some(usize::from(i)),
            _ => None,
        }
    }
}
