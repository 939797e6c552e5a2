//! Errors.

/// An error from building or using a [`Registry`](crate::Registry).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct StatsError {
    kind: StatsErrorKind,
}

impl StatsError {
    pub(crate) fn new(kind: StatsErrorKind) -> StatsError {
        StatsError { kind }
    }

    /// What went wrong.
    pub fn kind(&self) -> &StatsErrorKind {
        &self.kind
    }
}

/// The kinds of [`StatsError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StatsErrorKind {
    /// A configured status code is outside 100..=999.
    #[error("invalid status code {0} in status_codes: must be 100..=999")]
    InvalidStatusCode(u16),
    /// More than 64 status codes were configured.
    #[error("status_codes lists {0} codes, at most 64 are allowed")]
    TooManyStatusCodes(usize),
    /// The latency bucket bounds are unusable.
    #[error("invalid latency_buckets: {0}")]
    InvalidLatencyBuckets(&'static str),
    /// The registry already holds `max_stats` stats.
    #[error("registry holds its maximum of {0} stats (see StatsConfig::max_stats)")]
    TooManyStats(usize),
}
