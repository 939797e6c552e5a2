//! Build errors.
use crate::EndpointId;

/// Why a balancer or an endpoint set could not be built.
///
/// Every bad input is reported here, at build time; picking never fails
/// with an error (an unusable table picks `None`).
///
/// ```
/// use rauta_balance::{BuildErrorKind, Endpoint, EndpointSet};
///
/// let err = EndpointSet::new(vec![Endpoint::new(([10, 0, 0, 1], 80).into()).weight(0)])
///     .unwrap_err();
/// assert!(matches!(err.kind(), BuildErrorKind::ZeroWeight));
/// assert_eq!(err.endpoint().map(|id| id.index()), Some(0));
/// assert_eq!(err.to_string(), "endpoints[0] (10.0.0.1:80): weight must be at least 1");
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{kind}", context(.endpoint, .key))]
pub struct BuildError {
    kind: BuildErrorKind,
    endpoint: Option<EndpointId>,
    key: Option<Box<str>>,
}

fn context(endpoint: &Option<EndpointId>, key: &Option<Box<str>>) -> String {
    match (endpoint, key) {
        (Some(id), Some(key)) => format!("{id} ({key}): "),
        (Some(id), None) => format!("{id}: "),
        _ => String::new(),
    }
}

impl BuildError {
    pub(crate) fn new(kind: BuildErrorKind) -> Self {
        BuildError {
            kind,
            endpoint: None,
            key: None,
        }
    }

    pub(crate) fn at(kind: BuildErrorKind, endpoint: EndpointId, key: &str) -> Self {
        BuildError {
            kind,
            endpoint: Some(endpoint),
            key: Some(key.into()),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> &BuildErrorKind {
        &self.kind
    }

    /// The endpoint at fault, when one is.
    pub fn endpoint(&self) -> Option<EndpointId> {
        self.endpoint
    }
}

/// The kinds of [`BuildError`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildErrorKind {
    /// A balancer was asked to build over an empty endpoint set.
    #[error("no endpoints")]
    NoEndpoints,
    /// More endpoints than an [`EndpointId`] can number.
    #[error("too many endpoints ({count}); at most {max}")]
    TooManyEndpoints {
        /// Endpoints given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// An endpoint weight of 0 (Envoy requires at least 1).
    #[error("weight must be at least 1")]
    ZeroWeight,
    /// The weights add up to more than `u32::MAX` (Envoy's limit).
    #[error("the endpoint weights add up to {total}, more than {max}", max = u32::MAX)]
    TotalWeightTooLarge {
        /// Sum of the weights.
        total: u64,
    },
    /// Two endpoints share a hash key, so hash tables would depend on their order.
    #[error("hash key {key:?} is also the key of {other}")]
    DuplicateHashKey {
        /// The shared key.
        key: String,
        /// The earlier endpoint with that key.
        other: EndpointId,
    },
    /// A locality name is declared twice.
    #[error("locality {name:?} is declared twice")]
    DuplicateLocality {
        /// The name.
        name: String,
    },
    /// An endpoint names a locality that is not declared.
    #[error("locality {name:?} is not declared")]
    UnknownLocality {
        /// The name.
        name: String,
    },
    /// Localities are declared but this endpoint has none.
    #[error("localities are declared but this endpoint has no locality")]
    MissingLocality,
    /// The Maglev table size is not a prime number.
    #[error("maglev table size {size} is not a prime number")]
    TableSizeNotPrime {
        /// The size given.
        size: u64,
    },
    /// The Maglev table size is above Envoy's limit.
    #[error("maglev table size {size} is larger than {max}")]
    TableSizeTooLarge {
        /// The size given.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// `min_ring_size` is larger than `max_ring_size`.
    #[error("ring hash: minimum_ring_size ({min}) > maximum_ring_size ({max})")]
    RingSizeBounds {
        /// The minimum given.
        min: u64,
        /// The maximum given.
        max: u64,
    },
    /// A ring size bound is above Envoy's limit.
    #[error("ring hash: ring size bound {size} is larger than {max}")]
    RingSizeTooLarge {
        /// The bound given.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The panic threshold is not a percentage.
    #[error("panic threshold {value} is not within 0..=100")]
    PanicThreshold {
        /// The value given.
        value: f64,
    },
    /// The overprovisioning factor is 0.
    #[error("overprovisioning factor must be at least 1")]
    OverprovisioningFactor,
    /// Least request needs at least two choices.
    #[error("least request choice count {value} must be at least 2")]
    ChoiceCount {
        /// The value given.
        value: u32,
    },
    /// The active request bias is negative, infinite or NaN.
    #[error("active request bias {value} must be finite and at least 0")]
    ActiveRequestBias {
        /// The value given.
        value: f64,
    },
}
