//! Internal redirects (Envoy's `InternalRedirectPolicy` and the router's
//! `convertRequestHeadersForInternalRedirect`): an upstream's 3xx that a
//! route's policy covers is followed by the proxy, which sends the request
//! on to the `Location` (routed afresh) instead of answering the redirect.
//!
//! [`RouteMatch::internal_redirect`] decides, given the upstream's status
//! and headers; the proxy owns the request's body and its second pass.

use std::fmt;

use http::{HeaderName, HeaderValue};

use crate::request::{HeaderValues, RequestView};
use crate::table::{Decision, RouteMatch};

/// The statuses a policy may follow (Envoy ignores any other).
pub(crate) const REDIRECT_CODES: [u16; 5] = [301, 302, 303, 307, 308];

/// A route's compiled internal redirect policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalRedirectPolicy {
    pub(crate) max: u32,
    /// Bit `i` set: `REDIRECT_CODES[i]` is followed.
    pub(crate) codes: u8,
    pub(crate) cross_scheme: bool,
    pub(crate) copy: Box<[HeaderName]>,
    pub(crate) predicates: Box<[Predicate]>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Predicate {
    AllowListed(Box<[Box<str>]>),
    PreviousRoutes,
    SafeCrossScheme,
}

impl Predicate {
    fn name(&self) -> &'static str {
        match self {
            Predicate::AllowListed(_) => "envoy.internal_redirect_predicates.allow_listed_routes",
            Predicate::PreviousRoutes => "envoy.internal_redirect_predicates.previous_routes",
            Predicate::SafeCrossScheme => "envoy.internal_redirect_predicates.safe_cross_scheme",
        }
    }
}

impl InternalRedirectPolicy {
    /// How many redirects one downstream request may follow (counted over
    /// all its passes, against the policy of the route it is on).
    pub fn max_internal_redirects(&self) -> u32 {
        self.max
    }

    /// Whether an upstream answer of `status` is one to follow.
    pub fn redirects_on(&self, status: u16) -> bool {
        REDIRECT_CODES
            .iter()
            .position(|&c| c == status)
            .is_some_and(|i| self.codes & (1 << i) != 0)
    }

    /// The statuses followed, in increasing order.
    pub fn redirect_response_codes(&self) -> impl Iterator<Item = u16> + '_ {
        REDIRECT_CODES
            .iter()
            .enumerate()
            .filter(|(i, _)| self.codes & (1 << i) != 0)
            .map(|(_, &c)| c)
    }

    /// Whether a redirect may change the scheme (`http` to `https` or back).
    pub fn allow_cross_scheme_redirect(&self) -> bool {
        self.cross_scheme
    }

    /// The response headers copied into the followed request.
    pub fn response_headers_to_copy(&self) -> &[HeaderName] {
        &self.copy
    }

    /// The predicates' Envoy extension names, in order.
    pub fn predicate_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.predicates.iter().map(Predicate::name)
    }
}

/// What one downstream request has done with internal redirects so far
/// (Envoy keeps it in the request's filter state): the redirects followed
/// and, for the `previous_routes` predicate, the routes they led to. Make
/// one per downstream request, and pass it to every
/// [`RouteMatch::internal_redirect`] of that request.
#[derive(Debug, Clone, Default)]
pub struct InternalRedirectState {
    followed: u32,
    /// (the route whose policy followed, the route it led to), by the
    /// routes' names as Envoy keys them.
    visited: Vec<(Box<str>, Box<str>)>,
}

impl InternalRedirectState {
    /// A request that has followed no redirect.
    pub fn new() -> InternalRedirectState {
        InternalRedirectState::default()
    }

    /// How many redirects the request has followed.
    pub fn followed(&self) -> u32 {
        self.followed
    }
}

/// Why an upstream redirect a route's policy covers was not followed: the
/// 3xx then goes to the client as it is. The names are Envoy's
/// `passthrough_internal_redirect_*` counters where it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InternalRedirectRefusal {
    /// The request was not received in full when the answer came (the
    /// caller's test: Envoy follows only complete requests).
    RequestIncomplete,
    /// The request's body was too large to keep for a second pass (the
    /// caller's test).
    RequestBodyTooLarge,
    /// The answer has no `Location`.
    MissingLocation,
    /// The `Location` is empty or not an absolute URL (`bad_location`).
    BadLocation,
    /// The `Location` changes the scheme and the policy does not allow
    /// it (`unsafe_scheme`).
    UnsafeScheme,
    /// The request followed `max_internal_redirects` already
    /// (`too_many_redirects`).
    TooManyRedirects,
    /// The `Location` goes nowhere in the table (`no_route`).
    NoRoute,
    /// A predicate refused the target route (`predicate`); its name.
    Predicate(&'static str),
}

impl InternalRedirectRefusal {
    /// A short name: `request_incomplete`, `body_too_large`,
    /// `missing_location`, `bad_location`, `unsafe_scheme`,
    /// `too_many_redirects`, `no_route` or `predicate`.
    pub fn as_str(&self) -> &'static str {
        match self {
            InternalRedirectRefusal::RequestIncomplete => "request_incomplete",
            InternalRedirectRefusal::RequestBodyTooLarge => "body_too_large",
            InternalRedirectRefusal::MissingLocation => "missing_location",
            InternalRedirectRefusal::BadLocation => "bad_location",
            InternalRedirectRefusal::UnsafeScheme => "unsafe_scheme",
            InternalRedirectRefusal::TooManyRedirects => "too_many_redirects",
            InternalRedirectRefusal::NoRoute => "no_route",
            InternalRedirectRefusal::Predicate(_) => "predicate",
        }
    }
}

impl fmt::Display for InternalRedirectRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InternalRedirectRefusal::Predicate(name) => write!(f, "predicate ({name})"),
            other => f.write_str(other.as_str()),
        }
    }
}

impl std::error::Error for InternalRedirectRefusal {}

/// A redirect to follow: the request as it goes on, routed afresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalRedirect {
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    path: http::uri::PathAndQuery,
    to_get: bool,
    original_url: String,
    copied: Vec<(HeaderName, Vec<HeaderValue>)>,
    target_route: String,
}

impl InternalRedirect {
    /// The new scheme (the `Location`'s).
    pub fn scheme(&self) -> &str {
        self.scheme.as_str()
    }

    /// The new authority (the `Location`'s host and port; user
    /// information dropped).
    pub fn authority(&self) -> &str {
        self.authority.as_str()
    }

    /// The new path and query (the `Location`'s, fragment dropped; `/`
    /// when it has none).
    pub fn path_and_query(&self) -> &str {
        self.path.as_str()
    }

    /// A 303 to a request that is neither GET nor HEAD: it goes on as a
    /// GET without its body (RFC 9110 section 15.4.4).
    pub fn changes_method_to_get(&self) -> bool {
        self.to_get
    }

    /// The URL the request had before this redirect, which
    /// [`apply`](Self::apply) puts in `x-envoy-original-url`.
    pub fn original_url(&self) -> &str {
        &self.original_url
    }

    /// The copied response headers: each name with the values it takes
    /// (none: it is removed).
    pub fn copied_headers(&self) -> impl Iterator<Item = (&HeaderName, &[HeaderValue])> {
        self.copied.iter().map(|(n, v)| (n, v.as_slice()))
    }

    /// The name of the route the redirect leads to (as Envoy names it:
    /// empty for an unnamed route), as the predicates saw it.
    pub fn target_route(&self) -> &str {
        &self.target_route
    }

    /// Makes the request the redirected one: the copied headers, the new
    /// authority and path (absolute-form when the request was, origin-form
    /// otherwise) and `Host`, GET without `content-length` for a 303, and
    /// `x-envoy-original-url`. The scheme the request is routed with is
    /// left alone: Envoy changes `:scheme` but routes on
    /// `x-forwarded-proto`, which stays; [`scheme`](Self::scheme) gives
    /// the `Location`'s for a proxy that uses it upstream. The caller
    /// sends the body again (none after a 303 that made the request a GET:
    /// [`changes_method_to_get`](Self::changes_method_to_get)) and routes
    /// the request afresh.
    pub fn apply(&self, parts: &mut http::request::Parts) {
        for (name, values) in &self.copied {
            parts.headers.remove(name);
            for v in values {
                parts.headers.append(name.clone(), v.clone());
            }
        }
        match parts.uri.scheme().cloned() {
            Some(scheme) => {
                let uri = http::Uri::builder()
                    .scheme(scheme)
                    .authority(self.authority.clone())
                    .path_and_query(self.path.clone())
                    .build();
                if let Ok(uri) = uri {
                    parts.uri = uri;
                }
            }
            None => parts.uri = http::Uri::from(self.path.clone()),
        }
        if parts.uri.authority().is_none() || parts.headers.contains_key(http::header::HOST) {
            if let Ok(v) = HeaderValue::from_str(self.authority.as_str()) {
                parts.headers.insert(http::header::HOST, v);
            }
        }
        if self.to_get {
            parts.method = http::Method::GET;
            parts.headers.remove(http::header::CONTENT_LENGTH);
        }
        if let Ok(v) = HeaderValue::from_str(&self.original_url) {
            parts.headers.insert("x-envoy-original-url", v);
        }
    }
}

/// A parsed absolute `Location` (Envoy's `Utility::Url`).
struct Target {
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    path: http::uri::PathAndQuery,
}

/// Reads an absolute URL as Envoy's router does: a scheme, `://`, an
/// authority (user information dropped) and the rest as path and query,
/// `/` when empty, the fragment dropped.
fn parse_location(url: &str) -> Option<Target> {
    let (scheme, rest) = url.split_once("://")?;
    let mut chars = scheme.chars();
    if !chars.next()?.is_ascii_alphabetic()
        || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    // A host, not just a port.
    if authority.is_empty() || authority.starts_with(':') {
        return None;
    }
    let authority = http::uri::Authority::try_from(authority).ok()?;
    let tail = tail.split_once('#').map_or(tail, |(t, _)| t);
    let path = match tail.as_bytes().first() {
        None => http::uri::PathAndQuery::from_static("/"),
        Some(b'/') => http::uri::PathAndQuery::try_from(tail).ok()?,
        Some(_) => http::uri::PathAndQuery::try_from(format!("/{tail}")).ok()?,
    };
    Some(Target {
        scheme: http::uri::Scheme::try_from(scheme).ok()?,
        authority,
        path,
    })
}

/// The request as the redirect makes it, for routing the target: the
/// original's method and headers, the new scheme, authority and path, the
/// copied headers.
struct Redirected<'r, R: ?Sized> {
    base: &'r R,
    target: &'r Target,
    copied: &'r [(HeaderName, Vec<HeaderValue>)],
}

impl<R: RequestView + ?Sized> RequestView for Redirected<'_, R> {
    fn method(&self) -> &str {
        self.base.method()
    }
    fn scheme(&self) -> Option<&str> {
        // Envoy sets `:scheme`, but routes (`require_tls`) on
        // `x-forwarded-proto`, which a redirect leaves as it was.
        self.base.scheme()
    }
    fn authority(&self) -> Option<&str> {
        Some(self.target.authority.as_str())
    }
    fn path_and_query(&self) -> Option<&str> {
        Some(self.target.path.as_str())
    }
    fn header_values<'a>(&'a self, name: &str, out: &mut HeaderValues<'a>) {
        self.for_each_header_value(name, &mut |v| out.push(v));
    }
    fn for_each_header_value<'a>(&'a self, name: &str, f: &mut dyn FnMut(&'a [u8])) {
        match self.copied.iter().find(|(n, _)| n.as_str() == name) {
            Some((_, values)) => values.iter().for_each(|v| f(v.as_bytes())),
            None => self.base.for_each_header_value(name, f),
        }
    }
}

fn is_http(scheme: &str) -> bool {
    scheme.eq_ignore_ascii_case("http")
}

impl<'a> RouteMatch<'a> {
    /// Envoy's router on an upstream answer of `status` with
    /// `response_headers`, for a route with an
    /// [`internal_redirect_policy`](crate::config::Action::internal_redirect_policy):
    ///
    /// - `None`: the route has no policy, it does not cover `status`, or
    ///   the request has no path (CONNECT); the answer goes to the client.
    /// - `Some(Err(why))`: a redirect the policy covers, not followed (the
    ///   answer goes to the client as it is). In Envoy's order: no
    ///   `Location`; a `Location` that is not an absolute URL; a scheme
    ///   change the policy does not allow (`request`'s scheme, which is
    ///   `https` only when [`RequestView::scheme`] says so, against the
    ///   `Location`'s); `max_internal_redirects` reached; a target that no
    ///   route matches; a predicate's refusal.
    /// - `Some(Ok(redirect))`: follow it. The copied headers, the new
    ///   target and `state` are updated; the caller sends the request on
    ///   with [`InternalRedirect::apply`] and routes it afresh, as Envoy
    ///   recreates the stream.
    ///
    /// The target is routed (for the predicates, with `random` for
    /// weights and runtime fractions) on the request as it will go: the
    /// `Location`'s authority and path and the copied headers (the scheme
    /// it is routed with stays `request`'s, as in Envoy). Pass the request
    /// as it went upstream, after the route's edits: Envoy's router edits
    /// the request in place, so the next pass starts from that, and
    /// `x-envoy-original-url` names the rewritten host and path. The
    /// request's scheme must be the connection's (a proxy that reads
    /// `x-forwarded-proto` sets it from the connection first, as Envoy's
    /// connection manager does at the edge), or a client could choose it.
    /// Envoy follows only a request received in full whose body it could
    /// keep: the caller tests that first, and may report it with
    /// [`InternalRedirectRefusal::RequestIncomplete`] and
    /// [`InternalRedirectRefusal::RequestBodyTooLarge`].
    ///
    /// ```
    /// use rauta_router::{Decision, Request, RouteTable};
    ///
    /// let table = RouteTable::from_yaml(r#"
    /// virtual_hosts:
    ///   - name: shop
    ///     domains: ["*"]
    ///     routes:
    ///       - name: old
    ///         match: { prefix: "/old" }
    ///         action: { cluster: legacy, internal_redirect_policy: {} }
    ///       - name: new
    ///         match: { prefix: "/" }
    ///         action: { cluster: shop }
    /// "#)?;
    /// let req = Request::get("shop.example", "/old/cart");
    /// let Decision::Route(m) = table.route(&req, 0) else { panic!() };
    /// let mut answer = http::HeaderMap::new();
    /// answer.insert("location", "http://shop.example/cart".parse()?);
    /// let mut state = rauta_router::InternalRedirectState::new();
    /// let r = m.internal_redirect(&req, 302, &answer, &mut state, 0).unwrap()?;
    /// assert_eq!((r.path_and_query(), r.target_route()), ("/cart", "new"));
    /// assert_eq!(r.original_url(), "http://shop.example/old/cart");
    /// // One redirect per request by default.
    /// let again = m.internal_redirect(&req, 302, &answer, &mut state, 0).unwrap();
    /// assert_eq!(again, Err(rauta_router::InternalRedirectRefusal::TooManyRedirects));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn internal_redirect<R: RequestView + ?Sized>(
        &self,
        request: &R,
        status: u16,
        response_headers: &http::HeaderMap,
        state: &mut InternalRedirectState,
        random: u64,
    ) -> Option<Result<InternalRedirect, InternalRedirectRefusal>> {
        let policy = self.route().internal_redirect_policy()?;
        if !policy.redirects_on(status) {
            return None;
        }
        let original_path = request.path_and_query()?;
        Some(self.follow(
            policy,
            request,
            original_path,
            status,
            response_headers,
            state,
            random,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn follow<R: RequestView + ?Sized>(
        &self,
        policy: &InternalRedirectPolicy,
        request: &R,
        original_path: &str,
        status: u16,
        response_headers: &http::HeaderMap,
        state: &mut InternalRedirectState,
        random: u64,
    ) -> Result<InternalRedirect, InternalRedirectRefusal> {
        use InternalRedirectRefusal as No;
        let location = response_headers
            .get(http::header::LOCATION)
            .ok_or(No::MissingLocation)?;
        let target = location
            .to_str()
            .ok()
            .and_then(parse_location)
            .ok_or(No::BadLocation)?;
        let from_http = request.scheme().is_none_or(is_http);
        let to_http = is_http(target.scheme.as_str());
        if !policy.cross_scheme && from_http != to_http {
            return Err(No::UnsafeScheme);
        }
        if state.followed >= policy.max {
            return Err(No::TooManyRedirects);
        }
        let copied: Vec<(HeaderName, Vec<HeaderValue>)> = policy
            .copy
            .iter()
            .filter(|n| response_headers.contains_key(*n) || has_header(request, n.as_str()))
            .map(|n| {
                (
                    n.clone(),
                    response_headers.get_all(n).iter().cloned().collect(),
                )
            })
            .collect();
        let view = Redirected {
            base: request,
            target: &target,
            copied: &copied,
        };
        let target_route = match self.table().route(&view, random) {
            Decision::NotFound { .. } => return Err(No::NoRoute),
            Decision::Route(m) => m.route().envoy_name().to_owned(),
            // A TLS or path-policy answer comes on the second pass, from
            // a route-less decision (Envoy's, too, has no name).
            _ => String::new(),
        };
        let current = self.route().envoy_name();
        for p in policy.predicates.iter() {
            let accepted = match p {
                Predicate::AllowListed(names) => names.iter().any(|n| **n == *target_route),
                Predicate::PreviousRoutes => {
                    let seen = state
                        .visited
                        .iter()
                        .any(|(from, to)| **from == *current && **to == *target_route);
                    if !seen {
                        state
                            .visited
                            .push((current.into(), target_route.as_str().into()));
                    }
                    !seen
                }
                Predicate::SafeCrossScheme => !from_http || to_http,
            };
            if !accepted {
                return Err(No::Predicate(p.name()));
            }
        }
        let method = request.method();
        let to_get = status == 303 && method != "GET" && method != "HEAD";
        state.followed += 1;
        let original_url = format!(
            "{}://{}{}",
            if from_http { "http" } else { "https" },
            request.authority().unwrap_or(""),
            original_path
        );
        Ok(InternalRedirect {
            scheme: target.scheme,
            authority: target.authority,
            path: target.path,
            to_get,
            original_url,
            copied,
            target_route,
        })
    }
}

fn has_header<R: RequestView + ?Sized>(request: &R, name: &str) -> bool {
    let mut any = false;
    request.for_each_header_value(name, &mut |_| any = true);
    any
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(url: &str) -> Option<(String, String, String)> {
        parse_location(url).map(|t| {
            (
                t.scheme.as_str().to_owned(),
                t.authority.as_str().to_owned(),
                t.path.as_str().to_owned(),
            )
        })
    }

    #[test]
    fn locations_are_read_as_envoy_reads_them() {
        let t = |s: &str, a: &str, p: &str| Some((s.to_owned(), a.to_owned(), p.to_owned()));
        assert_eq!(
            parsed("http://a.example/x?y=1"),
            t("http", "a.example", "/x?y=1")
        );
        assert_eq!(
            parsed("https://a.example:8443"),
            t("https", "a.example:8443", "/")
        );
        assert_eq!(
            parsed("http://a.example/x#frag"),
            t("http", "a.example", "/x")
        );
        assert_eq!(
            parsed("http://u:p@a.example/x"),
            t("http", "a.example", "/x")
        );
        assert_eq!(parsed("http://[::1]:80/x"), t("http", "[::1]:80", "/x"));
        assert_eq!(parsed("http://a.example?q"), t("http", "a.example", "/?q"));
        for bad in [
            "",
            "/relative",
            "//a.example/x",
            "a.example/x",
            "http://",
            "http:///x",
            "http://:80/x",
            "1http://a/x",
            "http://a b/x",
            "http://a.example/x y",
        ] {
            assert_eq!(parsed(bad), None, "{bad:?}");
        }
    }
}
