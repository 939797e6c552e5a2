//! Configuration errors: every problem found in a configuration, each naming
//! the virtual host, the route and the field, and saying why.

use std::fmt;

/// What kind of problem a [`ConfigError`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The text is not valid YAML or JSON, or does not fit the model
    /// (unknown field, wrong type).
    Parse,
    /// A required field is missing.
    Missing,
    /// Two fields that exclude each other are both set.
    Conflict,
    /// A value is malformed or out of range.
    Invalid,
    /// A regular expression does not compile.
    Regex,
    /// A domain appears twice, or `*` appears twice.
    DuplicateDomain,
    /// A cluster is not known.
    UnknownCluster,
    /// A configured limit is exceeded.
    Limit,
    /// The feature exists in Envoy but not in RAUTA.
    Unsupported,
}

/// One problem in a configuration.
///
/// Displayed in the form
/// `virtual_hosts[0] "api": routes[3] "users": match.path_separated_prefix: must not end with '/'`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    kind: ErrorKind,
    vhost: Option<(usize, String)>,
    route: Option<(usize, String)>,
    field: Option<String>,
    message: String,
}

impl ConfigError {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ConfigError {
            kind,
            vhost: None,
            route: None,
            field: None,
            message: message.into(),
        }
    }

    /// An error at a place: the virtual host and route it is in (index and
    /// name), and the field (none when empty).
    pub(crate) fn located(
        kind: ErrorKind,
        message: impl Into<String>,
        vhost: Option<&(usize, String)>,
        route: Option<&(usize, String)>,
        field: &str,
    ) -> Self {
        let mut e = ConfigError::new(kind, message);
        e.vhost = vhost.cloned();
        e.route = route.cloned();
        if !field.is_empty() {
            e.field = Some(field.to_owned());
        }
        e
    }

    pub(crate) fn at_vhost(mut self, index: usize, name: &str) -> Self {
        self.vhost = Some((index, name.to_owned()));
        self
    }

    pub(crate) fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// What kind of problem this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Index and name of the virtual host, if the problem is inside one.
    pub fn virtual_host(&self) -> Option<(usize, &str)> {
        self.vhost.as_ref().map(|(i, n)| (*i, n.as_str()))
    }

    /// Index (within its virtual host) and name of the route, if the problem
    /// is inside one. Unnamed routes are named by position.
    pub fn route(&self) -> Option<(usize, &str)> {
        self.route.as_ref().map(|(i, n)| (*i, n.as_str()))
    }

    /// The field path inside the route (or virtual host, or configuration),
    /// such as `match.headers[1].string_match.safe_regex`.
    pub fn field_path(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// Why the value is wrong.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((i, name)) = &self.vhost {
            write!(f, "virtual_hosts[{i}] {name:?}: ")?;
        }
        if let Some((i, name)) = &self.route {
            write!(f, "routes[{i}] {name:?}: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a configuration. Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    errors: Vec<ConfigError>,
}

impl ConfigErrors {
    pub(crate) fn from_vec(errors: Vec<ConfigError>) -> Option<Self> {
        if errors.is_empty() {
            None
        } else {
            Some(ConfigErrors { errors })
        }
    }

    /// The problems, in configuration order.
    pub fn errors(&self) -> &[ConfigError] {
        &self.errors
    }

    /// How many problems there are.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// Always false: a `ConfigErrors` holds at least one error.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors { errors: vec![e] }
    }
}

impl fmt::Display for ConfigErrors {
    /// One line per problem.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.errors.iter()
    }
}
