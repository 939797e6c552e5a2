//! Request validation a proxy runs before routing: the request-target form,
//! one canonical authority, header names and values, and request-time limits.
//!
//! Everything here borrows from the request and allocates only when it must
//! change something (upper-case host bytes, a trailing dot). Errors are typed
//! and carry the HTTP status to answer with.
//!
//! ```
//! use rauta_router::authority::{canonical_authority, AuthoritySource, AuthorityError};
//!
//! // HTTP/1.1 origin-form: the Host header names the authority.
//! let a = canonical_authority(AuthoritySource::Origin, ["API.Example.com.:8443"])?;
//! assert_eq!((a.host(), a.port()), ("api.example.com", Some(8443)));
//!
//! // Absolute-form: the URI's authority wins and Host is ignored.
//! let a = canonical_authority(AuthoritySource::AbsoluteForm("internal"), ["public"])?;
//! assert_eq!(a.host(), "internal");
//!
//! // Two Host headers, userinfo, non-ASCII: rejected.
//! assert_eq!(
//!     canonical_authority(AuthoritySource::Origin, ["a", "b"]).unwrap_err(),
//!     AuthorityError::RepeatedHost
//! );
//! assert!(canonical_authority(AuthoritySource::Origin, ["admin@public"]).is_err());
//! assert!(canonical_authority(AuthoritySource::Origin, ["b\u{fc}cher.example"]).is_err());
//! # Ok::<(), AuthorityError>(())
//! ```
use std::borrow::Cow;
use std::fmt;

/// Why an authority (a `Host` header, `:authority` or the authority of an
/// absolute-form URI) was refused. Every variant answers 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum AuthorityError {
    /// No authority at all: no `Host`, no `:authority`, no absolute URI.
    #[error("request has no authority (no Host header)")]
    Missing,
    /// The authority is empty.
    #[error("authority is empty")]
    Empty,
    /// More than one `Host` header (RFC 9112 section 3.2).
    #[error("request has more than one Host header")]
    RepeatedHost,
    /// `:authority` and `Host` differ (RFC 9113 section 8.3.1).
    #[error(":authority and Host name different authorities")]
    ConflictingHost,
    /// Userinfo (`user@host`) in the authority (RFC 9110 section 4.2.4).
    #[error("authority contains userinfo ('@')")]
    UserInfo,
    /// A byte outside ASCII: hosts must be A-labels (`xn--...`).
    #[error("authority contains a non-ASCII byte")]
    NonAscii,
    /// A byte that may not appear in a host name.
    #[error("authority contains the invalid byte 0x{0:02x}")]
    InvalidByte(u8),
    /// An empty label (`a..b`, `.a`, or only dots).
    #[error("host has an empty label")]
    EmptyLabel,
    /// A bracketed IP literal that is not an IPv6 address.
    #[error("host has an invalid IP literal")]
    InvalidIpLiteral,
    /// A port that is not 1 to 5 digits in 1-65535.
    #[error("authority has an invalid port")]
    InvalidPort,
    /// A port is required here (authority-form of CONNECT) but absent.
    #[error("authority has no port")]
    MissingPort,
}

impl AuthorityError {
    /// The HTTP status to answer with (400).
    pub fn status(&self) -> u16 {
        400
    }
}

/// A validated, canonical authority: lower-case host without its trailing
/// dot, and an optional port. IPv6 literals keep their brackets (`[::1]`),
/// as virtual host domains write them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Authority<'a> {
    host: Cow<'a, str>,
    port: Option<u16>,
}

impl<'a> Authority<'a> {
    /// Parses and canonicalizes `host[:port]`.
    ///
    /// Accepted hosts are DNS names and IPv4 addresses made of ASCII
    /// letters, digits, `-`, `.` and `_`, and bracketed IPv6 addresses. A port
    /// is 1 to 5 digits with a value in 1-65535. One trailing dot is removed
    /// (`example.com.` is `example.com`), and the host is lower-cased.
    ///
    /// ```
    /// use rauta_router::authority::{Authority, AuthorityError};
    ///
    /// let a = Authority::parse("[2001:DB8::1]:443")?;
    /// assert_eq!((a.host(), a.port()), ("[2001:db8::1]", Some(443)));
    /// assert_eq!(Authority::parse("example.com:0"), Err(AuthorityError::InvalidPort));
    /// assert_eq!(Authority::parse("a..b"), Err(AuthorityError::EmptyLabel));
    /// # Ok::<(), AuthorityError>(())
    /// ```
    pub fn parse(s: &'a str) -> Result<Self, AuthorityError> {
        if s.is_empty() {
            return Err(AuthorityError::Empty);
        }
        if !s.is_ascii() {
            return Err(AuthorityError::NonAscii);
        }
        if s.contains('@') {
            return Err(AuthorityError::UserInfo);
        }
        let (host, port) = if s.starts_with('[') {
            let close = s.find(']').ok_or(AuthorityError::InvalidIpLiteral)?;
            let inner = &s[1..close];
            if inner.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(AuthorityError::InvalidIpLiteral);
            }
            let rest = &s[close + 1..];
            let port = match rest.strip_prefix(':') {
                Some(p) => Some(parse_port(p)?),
                None if rest.is_empty() => None,
                None => return Err(AuthorityError::InvalidIpLiteral),
            };
            (&s[..=close], port)
        } else {
            let (host, port) = match s.split_once(':') {
                Some((h, p)) => (h, Some(parse_port(p)?)),
                None => (s, None),
            };
            validate_reg_name(host)?;
            (host, port)
        };
        let host = host.strip_suffix('.').unwrap_or(host);
        if host.is_empty() {
            return Err(AuthorityError::EmptyLabel);
        }
        let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(host.to_ascii_lowercase())
        } else {
            Cow::Borrowed(host)
        };
        Ok(Authority { host, port })
    }

    /// Parses an authority that must carry a port (the authority-form of a
    /// `CONNECT` request-target).
    pub fn parse_with_port(s: &'a str) -> Result<Self, AuthorityError> {
        let a = Self::parse(s)?;
        if a.port.is_none() {
            return Err(AuthorityError::MissingPort);
        }
        Ok(a)
    }

    /// The canonical host (lower-case, no trailing dot, IPv6 in brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, if the authority had one.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The same authority without its port (Envoy's `strip_any_host_port`).
    pub fn without_port(self) -> Self {
        Authority {
            host: self.host,
            port: None,
        }
    }

    /// Drops the port when it equals `listener_port` (Envoy's
    /// `strip_matching_host_port`).
    pub fn without_matching_port(self, listener_port: u16) -> Self {
        if self.port == Some(listener_port) {
            self.without_port()
        } else {
            self
        }
    }

    /// Copies the borrowed parts so the authority outlives the request.
    pub fn into_owned(self) -> Authority<'static> {
        Authority {
            host: Cow::Owned(self.host.into_owned()),
            port: self.port,
        }
    }
}

impl fmt::Display for Authority<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(p) => write!(f, "{}:{p}", self.host),
            None => f.write_str(&self.host),
        }
    }
}

fn parse_port(p: &str) -> Result<u16, AuthorityError> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AuthorityError::InvalidPort);
    }
    match p.parse::<u32>() {
        Ok(n @ 1..=65535) => u16::try_from(n).map_err(|_| AuthorityError::InvalidPort),
        _ => Err(AuthorityError::InvalidPort),
    }
}

/// A DNS name or IPv4 address, with at most one trailing dot and no empty
/// label.
fn validate_reg_name(host: &str) -> Result<(), AuthorityError> {
    if let Some(&b) = host
        .as_bytes()
        .iter()
        .find(|&&b| !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')))
    {
        return Err(AuthorityError::InvalidByte(b));
    }
    let body = host.strip_suffix('.').unwrap_or(host);
    if body.is_empty() || body.split('.').any(str::is_empty) {
        return Err(AuthorityError::EmptyLabel);
    }
    Ok(())
}

/// Where the request named its authority, besides `Host` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthoritySource<'a> {
    /// HTTP/1 origin-form (`GET /path`): the `Host` header is the authority.
    Origin,
    /// HTTP/1 absolute-form (`GET http://h/path`): the URI's authority wins
    /// and `Host` is ignored (RFC 9112 section 3.2.2).
    AbsoluteForm(&'a str),
    /// HTTP/2 or HTTP/3 `:authority`: a `Host` header, if present, must name
    /// the same authority (RFC 9113 section 8.3.1).
    Pseudo(&'a str),
}

/// Resolves the one authority a request is routed on.
///
/// `host_headers` are the values of every `Host` header of the request, in
/// order. More than one is always refused, even when the absolute-form URI
/// makes them irrelevant.
pub fn canonical_authority<'a, I>(
    source: AuthoritySource<'a>,
    host_headers: I,
) -> Result<Authority<'a>, AuthorityError>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut hosts = host_headers.into_iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(AuthorityError::RepeatedHost);
    }
    match source {
        AuthoritySource::AbsoluteForm(a) => Authority::parse(a),
        AuthoritySource::Pseudo(a) => {
            let authority = Authority::parse(a)?;
            if let Some(h) = host {
                if Authority::parse(h)? != authority {
                    return Err(AuthorityError::ConflictingHost);
                }
            }
            Ok(authority)
        }
        AuthoritySource::Origin => Authority::parse(host.ok_or(AuthorityError::Missing)?),
    }
}

/// Envoy's port detection: the position of the `:` that starts a port, or
/// `None` (no colon, or the last colon is inside an IPv6 literal).
fn port_start(host: &str) -> Option<usize> {
    let colon = host.rfind(':')?;
    match host.rfind(']') {
        Some(close) if close > colon => None,
        _ => Some(colon),
    }
}

/// Envoy's host port stripping on a raw `Host` value: with
/// `Some(listener_port)` this is `strip_matching_host_port` (the port goes
/// only if it equals the listener's), with `None` it is
/// `strip_any_host_port`. A port that is not a number leaves the value as it
/// is (`:`, `host:abc`), as in Envoy.
///
/// ```
/// use rauta_router::authority::strip_host_port;
///
/// assert_eq!(strip_host_port("example.com:443", Some(443)), "example.com");
/// assert_eq!(strip_host_port("example.com:8443", Some(443)), "example.com:8443");
/// assert_eq!(strip_host_port("[::1]:80", None), "[::1]");
/// assert_eq!(strip_host_port("[::1]", None), "[::1]");
/// ```
pub fn strip_host_port(host: &str, listener_port: Option<u16>) -> &str {
    let Some(colon) = port_start(host) else {
        return host;
    };
    let digits = &host[colon + 1..];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return host;
    }
    let Ok(port) = digits.parse::<u32>() else {
        return host;
    };
    match listener_port {
        Some(l) if u32::from(l) != port => host,
        _ => &host[..colon],
    }
}

/// Envoy's `strip_trailing_host_dot` on a raw `Host` value: one dot right
/// before the port, or at the end when there is no port, is removed
/// (`abc.com.:443` becomes `abc.com:443`).
///
/// ```
/// use rauta_router::authority::strip_trailing_host_dot;
///
/// assert_eq!(strip_trailing_host_dot("abc.com.:443"), "abc.com:443");
/// assert_eq!(strip_trailing_host_dot("abc.com."), "abc.com");
/// assert_eq!(strip_trailing_host_dot("abc.com"), "abc.com");
/// ```
pub fn strip_trailing_host_dot(host: &str) -> Cow<'_, str> {
    match split_trailing_host_dot(host) {
        (name, "") => Cow::Borrowed(name),
        (name, port) => {
            let mut out = String::with_capacity(name.len() + port.len());
            out.push_str(name);
            out.push_str(port);
            Cow::Owned(out)
        }
    }
}

/// [`strip_trailing_host_dot`] without copying: the result is the two
/// parts joined. The second is empty, or the `:port` that followed a
/// removed dot (the only case where the dot is not at the end).
pub(crate) fn split_trailing_host_dot(host: &str) -> (&str, &str) {
    match port_start(host) {
        Some(colon) if colon > 0 && host.as_bytes()[colon - 1] == b'.' => {
            (&host[..colon - 1], &host[colon..])
        }
        Some(_) => (host, ""),
        None => (host.strip_suffix('.').unwrap_or(host), ""),
    }
}

/// The form of an HTTP/1 request-target (RFC 9112 section 3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestTarget<'a> {
    /// `/path?query`: hand it to [`crate::path::PathPolicy::apply`].
    Origin(&'a str),
    /// `http://authority/path?query`.
    Absolute {
        /// The scheme, lower-cased: `http` or `https`.
        scheme: &'static str,
        /// The authority, to pass as [`AuthoritySource::AbsoluteForm`].
        authority: &'a str,
        /// The path and query; `/` when the URI has no path.
        path_and_query: Cow<'a, str>,
    },
    /// `host:port` of a `CONNECT`.
    Authority(Authority<'a>),
    /// `*` of an `OPTIONS`.
    Asterisk,
}

/// Why a request was refused before routing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The authority is invalid (400).
    #[error(transparent)]
    Authority(#[from] AuthorityError),
    /// The request-target is empty (400).
    #[error("request-target is empty")]
    EmptyTarget,
    /// `*` with a method other than OPTIONS, or a form that does not fit
    /// the method (400).
    #[error("request-target form does not fit the method")]
    FormMismatch,
    /// An absolute-form scheme other than http or https (400).
    #[error("unsupported scheme in absolute-form request-target")]
    UnsupportedScheme,
    /// The absolute form is refused by configuration (400).
    #[error("absolute-form request-target is not allowed")]
    AbsoluteFormRefused,
    /// The request-target is longer than the limit (414).
    #[error("request-target is {len} bytes, longer than the limit of {max}")]
    TargetTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// More headers than the limit (431).
    #[error("request has more than {max} headers")]
    TooManyHeaders {
        /// The limit.
        max: usize,
    },
    /// More header bytes (names, values and the request-target) than the
    /// limit (431).
    #[error("request headers exceed {max} bytes")]
    HeadersTooLarge {
        /// The limit.
        max: usize,
    },
    /// A header name that is not an RFC 9110 token (400).
    #[error("header {index} has an invalid name")]
    InvalidHeaderName {
        /// Position of the header in the request.
        index: usize,
    },
    /// A header value with NUL, CR, LF or another control byte (400).
    #[error("header {index} has an invalid value (control byte 0x{byte:02x})")]
    InvalidHeaderValue {
        /// Position of the header in the request.
        index: usize,
        /// The offending byte.
        byte: u8,
    },
}

impl RequestError {
    /// The HTTP status to answer with: 414, 431 or 400.
    pub fn status(&self) -> u16 {
        match self {
            RequestError::TargetTooLong { .. } => 414,
            RequestError::TooManyHeaders { .. } | RequestError::HeadersTooLarge { .. } => 431,
            _ => 400,
        }
    }
}

/// Classifies an HTTP/1 request-target.
///
/// `*` only for `OPTIONS`; `CONNECT` takes only `host:port`; a target starting
/// with `/` is origin-form; anything else must be an absolute `http` or
/// `https` URI (scheme compared case-insensitively), refused unless
/// `allow_absolute_form`.
///
/// ```
/// use rauta_router::authority::{parse_request_target, RequestTarget};
///
/// assert_eq!(parse_request_target("GET", "/a?b", false), Ok(RequestTarget::Origin("/a?b")));
/// assert_eq!(parse_request_target("OPTIONS", "*", false), Ok(RequestTarget::Asterisk));
/// assert!(parse_request_target("GET", "*", false).is_err());
/// match parse_request_target("GET", "HTTP://Internal/admin", true) {
///     Ok(RequestTarget::Absolute { scheme, authority, path_and_query }) => {
///         assert_eq!((scheme, authority, &*path_and_query), ("http", "Internal", "/admin"));
///     }
///     other => panic!("{other:?}"),
/// }
/// ```
pub fn parse_request_target<'a>(
    method: &str,
    target: &'a str,
    allow_absolute_form: bool,
) -> Result<RequestTarget<'a>, RequestError> {
    if target.is_empty() {
        return Err(RequestError::EmptyTarget);
    }
    if method == "CONNECT" {
        return Ok(RequestTarget::Authority(Authority::parse_with_port(
            target,
        )?));
    }
    if target == "*" {
        return if method == "OPTIONS" {
            Ok(RequestTarget::Asterisk)
        } else {
            Err(RequestError::FormMismatch)
        };
    }
    if target.starts_with('/') {
        return Ok(RequestTarget::Origin(target));
    }
    let Some((scheme, rest)) = target.split_once("://") else {
        return Err(RequestError::FormMismatch);
    };
    let scheme = if scheme.eq_ignore_ascii_case("http") {
        "http"
    } else if scheme.eq_ignore_ascii_case("https") {
        "https"
    } else {
        return Err(RequestError::UnsupportedScheme);
    };
    if !allow_absolute_form {
        return Err(RequestError::AbsoluteFormRefused);
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    Authority::parse(authority)?;
    let path_and_query = if tail.starts_with('/') {
        Cow::Borrowed(tail)
    } else {
        Cow::Owned(format!("/{tail}"))
    };
    Ok(RequestTarget::Absolute {
        scheme,
        authority,
        path_and_query,
    })
}

/// True for the bytes of an RFC 9110 token (`tchar`).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// Checks that a header name is a non-empty RFC 9110 token (no `:`, space,
/// control byte or non-ASCII byte).
pub fn is_valid_header_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&b| is_tchar(b))
}

/// The first byte of a header value that is not allowed: NUL, CR, LF, any
/// other control byte except horizontal tab, or DEL. Bytes from 0x80 up
/// (obs-text) are allowed, as RFC 9110 does.
pub fn invalid_header_value_byte(value: &[u8]) -> Option<u8> {
    value
        .iter()
        .copied()
        .find(|&b| (b < b' ' && b != b'\t') || b == 0x7f)
}

/// Removes optional whitespace (spaces and tabs) around a header value.
pub fn trim_ows(value: &str) -> &str {
    value.trim_matches([' ', '\t'])
}

/// The value header matchers compare when a header appears several times:
/// Envoy joins the values with `,` (CVE-2020-25017); `Cookie` values are
/// joined with `; `. One value is returned borrowed.
///
/// ```
/// use rauta_router::authority::join_header_values;
///
/// assert_eq!(join_header_values("x-role", &["user", "admin"]), "user,admin");
/// assert_eq!(join_header_values("Cookie", &["a=1", "b=2"]), "a=1; b=2");
/// assert_eq!(join_header_values("x-one", &["v"]), "v");
/// ```
pub fn join_header_values<'a>(name: &str, values: &[&'a str]) -> Cow<'a, str> {
    match values {
        [] => Cow::Borrowed(""),
        [one] => Cow::Borrowed(one),
        _ => {
            let sep = if name.eq_ignore_ascii_case("cookie") {
                "; "
            } else {
                ","
            };
            Cow::Owned(values.join(sep))
        }
    }
}

/// Request-time limits on what the router inspects. Every field is an
/// `Option`; unset fields take the defaults of [`RequestLimits::safe_default`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RequestLimits {
    /// Most headers a request may carry (default 100, Envoy's
    /// `max_headers_count`); more get 431.
    pub max_headers: Option<usize>,
    /// Most bytes of header names, values and request-target together
    /// (default 60 KiB, Envoy's `max_request_headers_kb`); more get 431.
    pub max_header_bytes: Option<usize>,
    /// Longest request-target (default 8 KiB); longer gets 414.
    pub max_request_target_bytes: Option<usize>,
}

/// Default of [`RequestLimits::max_headers`].
pub const DEFAULT_MAX_HEADERS: usize = 100;
/// Default of [`RequestLimits::max_header_bytes`].
pub const DEFAULT_MAX_HEADER_BYTES: usize = 60 * 1024;
/// Default of [`RequestLimits::max_request_target_bytes`].
pub const DEFAULT_MAX_REQUEST_TARGET_BYTES: usize = 8 * 1024;

impl RequestLimits {
    /// 100 headers, 60 KiB of headers, 8 KiB of request-target.
    pub fn safe_default() -> Self {
        RequestLimits {
            max_headers: Some(DEFAULT_MAX_HEADERS),
            max_header_bytes: Some(DEFAULT_MAX_HEADER_BYTES),
            max_request_target_bytes: Some(DEFAULT_MAX_REQUEST_TARGET_BYTES),
        }
    }

    /// Lays `more_specific` over `self`: fields set there win.
    pub fn overlay(&self, more_specific: &RequestLimits) -> RequestLimits {
        RequestLimits {
            max_headers: more_specific.max_headers.or(self.max_headers),
            max_header_bytes: more_specific.max_header_bytes.or(self.max_header_bytes),
            max_request_target_bytes: more_specific
                .max_request_target_bytes
                .or(self.max_request_target_bytes),
        }
    }

    /// Checks the request-target length and every header (name, value,
    /// count, total bytes), stopping at the first problem, so the work is
    /// bounded by the limits and not by the request.
    ///
    /// ```
    /// use rauta_router::authority::{RequestError, RequestLimits};
    ///
    /// let limits = RequestLimits::safe_default();
    /// let headers = [(&b"host"[..], &b"example.com"[..]), (b"x-a", b"1")];
    /// assert_eq!(limits.check("/", headers), Ok(()));
    ///
    /// let bad = [(&b"x-a"[..], &b"v\r\nx-role: admin"[..])];
    /// let err = limits.check("/", bad).unwrap_err();
    /// assert_eq!(err.status(), 400);
    /// ```
    pub fn check<'h, I>(&self, target: &str, headers: I) -> Result<(), RequestError>
    where
        I: IntoIterator<Item = (&'h [u8], &'h [u8])>,
    {
        let max_target = self
            .max_request_target_bytes
            .unwrap_or(DEFAULT_MAX_REQUEST_TARGET_BYTES);
        if target.len() > max_target {
            return Err(RequestError::TargetTooLong {
                len: target.len(),
                max: max_target,
            });
        }
        let max_headers = self.max_headers.unwrap_or(DEFAULT_MAX_HEADERS);
        let max_bytes = self.max_header_bytes.unwrap_or(DEFAULT_MAX_HEADER_BYTES);
        let mut bytes = target.len();
        if bytes > max_bytes {
            return Err(RequestError::HeadersTooLarge { max: max_bytes });
        }
        for (index, (name, value)) in headers.into_iter().enumerate() {
            if index >= max_headers {
                return Err(RequestError::TooManyHeaders { max: max_headers });
            }
            bytes = bytes.saturating_add(name.len()).saturating_add(value.len());
            if bytes > max_bytes {
                return Err(RequestError::HeadersTooLarge { max: max_bytes });
            }
            if !is_valid_header_name(name) {
                return Err(RequestError::InvalidHeaderName { index });
            }
            if let Some(byte) = invalid_header_value_byte(value) {
                return Err(RequestError::InvalidHeaderValue { index, byte });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        assert_eq!(
            Authority::parse("h:65535").map(|a| a.port()),
            Ok(Some(65535))
        );
        assert_eq!(Authority::parse("h:1").map(|a| a.port()), Ok(Some(1)));
        for bad in ["h:65536", "h:0", "h:", "h:+80", "h:123456", "h:8a", "h:1:2"] {
            assert_eq!(
                Authority::parse(bad),
                Err(AuthorityError::InvalidPort),
                "{bad}"
            );
        }
    }

    #[test]
    fn hosts() {
        assert_eq!(
            Authority::parse("Example.COM.").unwrap().host(),
            "example.com"
        );
        assert!(matches!(
            Authority::parse("example.com").unwrap().host,
            Cow::Borrowed(_)
        ));
        assert_eq!(Authority::parse("."), Err(AuthorityError::EmptyLabel));
        assert_eq!(Authority::parse("a.."), Err(AuthorityError::EmptyLabel));
        assert_eq!(Authority::parse(".a"), Err(AuthorityError::EmptyLabel));
        assert_eq!(
            Authority::parse("a b"),
            Err(AuthorityError::InvalidByte(b' '))
        );
        assert_eq!(
            Authority::parse("[::1"),
            Err(AuthorityError::InvalidIpLiteral)
        );
        assert_eq!(
            Authority::parse("[zz]"),
            Err(AuthorityError::InvalidIpLiteral)
        );
        assert_eq!(
            Authority::parse("[::1]x"),
            Err(AuthorityError::InvalidIpLiteral)
        );
        assert_eq!(Authority::parse("u:p@h"), Err(AuthorityError::UserInfo));
    }

    #[test]
    fn pseudo_authority_must_agree_with_host() {
        let ok = canonical_authority(AuthoritySource::Pseudo("a.example"), ["A.example."]);
        assert_eq!(ok.map(|a| a.to_string()), Ok("a.example".to_string()));
        assert_eq!(
            canonical_authority(AuthoritySource::Pseudo("a"), ["b"]),
            Err(AuthorityError::ConflictingHost)
        );
        assert_eq!(
            canonical_authority(AuthoritySource::Origin, []),
            Err(AuthorityError::Missing)
        );
    }

    #[test]
    fn envoy_port_helpers_leave_malformed_hosts() {
        for h in [":", "]:", ":abc", "host:", "[::1]"] {
            assert_eq!(strip_host_port(h, None), h);
        }
        assert_eq!(strip_host_port("h:80", None), "h");
        assert_eq!(strip_trailing_host_dot("[::1]."), "[::1]");
    }

    #[test]
    fn header_limits_at_the_boundary() {
        let mut limits = RequestLimits::safe_default();
        limits.max_headers = Some(2);
        let two = [(&b"a"[..], &b"1"[..]), (b"b", b"2")];
        assert_eq!(limits.check("/", two), Ok(()));
        let three = [(&b"a"[..], &b"1"[..]), (b"b", b"2"), (b"c", b"3")];
        assert_eq!(limits.check("/", three).map_err(|e| e.status()), Err(431));

        let mut limits = RequestLimits::safe_default();
        limits.max_header_bytes = Some(5); // "/" + "ab" + "cd"
        assert_eq!(limits.check("/", [(&b"ab"[..], &b"cd"[..])]), Ok(()));
        assert_eq!(
            limits.check("/", [(&b"ab"[..], &b"cde"[..])]),
            Err(RequestError::HeadersTooLarge { max: 5 })
        );

        let mut limits = RequestLimits::safe_default();
        limits.max_request_target_bytes = Some(3);
        assert_eq!(limits.check("/ab", []), Ok(()));
        assert_eq!(limits.check("/abc", []).map_err(|e| e.status()), Err(414));
    }

    #[test]
    fn default_limits_at_the_boundary() {
        let limits = RequestLimits::default();
        let names: Vec<String> = (0..=DEFAULT_MAX_HEADERS).map(|i| format!("h{i}")).collect();
        let hundred = names[..DEFAULT_MAX_HEADERS]
            .iter()
            .map(|n| (n.as_bytes(), &b"v"[..]));
        assert_eq!(limits.check("/", hundred), Ok(()));
        let hundred_one = names.iter().map(|n| (n.as_bytes(), &b"v"[..]));
        assert_eq!(
            limits.check("/", hundred_one),
            Err(RequestError::TooManyHeaders {
                max: DEFAULT_MAX_HEADERS
            })
        );
        let value = vec![b'v'; DEFAULT_MAX_HEADER_BYTES - 2];
        assert_eq!(limits.check("/", [(&b"a"[..], &value[..])]), Ok(()));
        let value = vec![b'v'; DEFAULT_MAX_HEADER_BYTES - 1];
        assert_eq!(
            limits
                .check("/", [(&b"a"[..], &value[..])])
                .map_err(|e| e.status()),
            Err(431)
        );
        let target = "/".repeat(DEFAULT_MAX_REQUEST_TARGET_BYTES);
        assert_eq!(limits.check(&target, []), Ok(()));
        let target = target + "/";
        assert_eq!(limits.check(&target, []).map_err(|e| e.status()), Err(414));
    }

    #[test]
    fn header_names_and_values() {
        assert!(is_valid_header_name(b"x-user_id"));
        for bad in [&b""[..], b"x user", b"x:y", b"x\0", b"caf\xc3\xa9"] {
            assert!(!is_valid_header_name(bad), "{bad:?}");
        }
        assert_eq!(invalid_header_value_byte(b"a\tb \x80"), None);
        assert_eq!(invalid_header_value_byte(b"a\rb"), Some(b'\r'));
        assert_eq!(invalid_header_value_byte(b"a\nb"), Some(b'\n'));
        assert_eq!(invalid_header_value_byte(b"a\0b"), Some(0));
        assert_eq!(invalid_header_value_byte(b"a\x7f"), Some(0x7f));
        assert_eq!(trim_ows(" \tv v\t "), "v v");
    }

    #[test]
    fn request_targets() {
        assert_eq!(
            parse_request_target("CONNECT", "h:443", false),
            Ok(RequestTarget::Authority(Authority::parse("h:443").unwrap()))
        );
        assert_eq!(
            parse_request_target("CONNECT", "h", false),
            Err(RequestError::Authority(AuthorityError::MissingPort))
        );
        assert_eq!(
            parse_request_target("GET", "", false),
            Err(RequestError::EmptyTarget)
        );
        assert_eq!(
            parse_request_target("GET", "http://h/", false),
            Err(RequestError::AbsoluteFormRefused)
        );
        assert_eq!(
            parse_request_target("GET", "ftp://h/", true),
            Err(RequestError::UnsupportedScheme)
        );
        assert_eq!(
            parse_request_target("GET", "http://u@h/", true),
            Err(RequestError::Authority(AuthorityError::UserInfo))
        );
        match parse_request_target("GET", "https://h?x", true) {
            Ok(RequestTarget::Absolute { path_and_query, .. }) => assert_eq!(path_and_query, "/?x"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse_request_target("GET", "admin", true),
            Err(RequestError::FormMismatch)
        );
    }
}
