//! Cross-origin resource sharing: the decisions of Envoy's CORS filter.
//!
//! A policy is written as the `cors` field of a virtual host or route
//! action (Envoy's deprecated fields), or as the `typed_per_filter_config`
//! value of `envoy.filters.http.cors` at any level. [`RouteMatch::cors`]
//! gathers the levels that apply to a request; [`Cors::check`] then says
//! what to do with it: nothing, answer a preflight here, or forward it and
//! add headers to the response.
//!
//! [`RouteMatch::cors`]: crate::RouteMatch::cors

use crate::matchers::StringMatch;
use crate::mutate::HeaderMapMut;
use crate::request::{joined_value_of, Joined, RequestView};

/// The filter name whose `typed_per_filter_config` holds a CORS policy.
pub const CORS_FILTER: &str = "envoy.filters.http.cors";

/// A compiled policy of one level.
#[derive(Debug, Clone)]
pub(crate) struct CorsSpec {
    pub(crate) origins: Box<[StringMatch]>,
    pub(crate) allow_methods: Box<str>,
    pub(crate) allow_headers: Box<str>,
    pub(crate) expose_headers: Box<str>,
    pub(crate) max_age: Box<str>,
    pub(crate) allow_credentials: Option<bool>,
    pub(crate) allow_private_network_access: Option<bool>,
    pub(crate) forward_not_matching_preflights: Option<bool>,
    /// `filter_enabled`: on when `random % d < n`; `None` is always on.
    pub(crate) enabled: Option<(u32, u64)>,
    /// `shadow_enabled`: `None` is never.
    pub(crate) shadow: Option<(u32, u64)>,
}

/// The policies one level holds (out of line: most levels hold none).
#[derive(Debug, Clone, Default)]
pub(crate) struct CorsAt {
    /// The level's `cors` field (virtual host and route only).
    pub(crate) legacy: Option<CorsSpec>,
    /// The level's `typed_per_filter_config` for [`CORS_FILTER`].
    pub(crate) filter: Option<CorsSpec>,
}

pub(crate) type CorsLevel = Option<Box<CorsAt>>;

/// A second random value drawn from the first (SplitMix64's finalizer):
/// Envoy draws `filter_enabled` and `shadow_enabled` independently.
fn redraw(random_value: u64) -> u64 {
    let mut z = random_value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn takes(fraction: Option<(u32, u64)>, random_value: u64, unset: bool) -> bool {
    match fraction {
        None => unset,
        Some((n, d)) => random_value % d < u64::from(n),
    }
}

/// The CORS policies that apply to one routed request, most specific
/// first, as Envoy's CORS filter sees them.
///
/// When any level (weighted-cluster entry, route, virtual host,
/// configuration) has a `typed_per_filter_config` for
/// `envoy.filters.http.cors`, those are the policies; otherwise the
/// route's and the virtual host's `cors` fields are. Each setting comes
/// from the most specific policy that sets it (an empty string or an empty
/// origin list sets nothing); `filter_enabled` and `shadow_enabled` come
/// from the most specific policy alone.
#[derive(Debug, Clone, Copy)]
pub struct Cors<'a> {
    levels: [Option<&'a CorsSpec>; 4],
}

impl<'a> Cors<'a> {
    /// The policies given, most specific first; `None` when there are none.
    pub(crate) fn new(levels: [Option<&'a CorsSpec>; 4]) -> Option<Cors<'a>> {
        let mut packed = [None; 4];
        let mut n = 0;
        for l in levels.into_iter().flatten() {
            packed[n] = Some(l);
            n += 1;
        }
        (n > 0).then_some(Cors { levels: packed })
    }

    fn iter(&self) -> impl Iterator<Item = &'a CorsSpec> + '_ {
        self.levels.iter().map_while(|l| *l)
    }

    fn first(&self) -> &'a CorsSpec {
        self.levels[0].expect("a Cors has at least one level")
    }

    fn text(&self, f: impl Fn(&'a CorsSpec) -> &'a str) -> &'a str {
        self.iter().map(f).find(|s| !s.is_empty()).unwrap_or("")
    }

    fn flag(&self, f: impl Fn(&'a CorsSpec) -> Option<bool>, unset: bool) -> bool {
        self.iter().find_map(f).unwrap_or(unset)
    }

    /// Whether the policy applies to a request drawn with `random_value`
    /// (`filter_enabled`; always when unset).
    pub fn enabled(&self, random_value: u64) -> bool {
        takes(self.first().enabled, random_value, true)
    }

    /// Whether origins are checked for stats only (`shadow_enabled`; never
    /// when unset). It draws its own value from `random_value`, so that,
    /// as in Envoy, it is independent of [`Cors::enabled`].
    pub fn shadow_enabled(&self, random_value: u64) -> bool {
        takes(self.first().shadow, redraw(random_value), false)
    }

    /// Whether `origin` is allowed: some matcher of the most specific
    /// non-empty `allow_origin_string_match` matches it, or matches `*`.
    pub fn origin_allowed(&self, origin: &[u8]) -> bool {
        let origins = self
            .iter()
            .map(|l| &*l.origins)
            .find(|o| !o.is_empty())
            .unwrap_or(&[]);
        origins.iter().any(|m| m.matches(b"*") || m.matches(origin))
    }

    /// `allow_methods` (empty when unset).
    pub fn allow_methods(&self) -> &'a str {
        self.text(|l| &l.allow_methods)
    }

    /// `allow_headers` (empty when unset).
    pub fn allow_headers(&self) -> &'a str {
        self.text(|l| &l.allow_headers)
    }

    /// `expose_headers` (empty when unset).
    pub fn expose_headers(&self) -> &'a str {
        self.text(|l| &l.expose_headers)
    }

    /// `max_age` (empty when unset).
    pub fn max_age(&self) -> &'a str {
        self.text(|l| &l.max_age)
    }

    /// `allow_credentials` (false when unset).
    pub fn allow_credentials(&self) -> bool {
        self.flag(|l| l.allow_credentials, false)
    }

    /// `allow_private_network_access` (false when unset).
    pub fn allow_private_network_access(&self) -> bool {
        self.flag(|l| l.allow_private_network_access, false)
    }

    /// `forward_not_matching_preflights` (true when unset).
    pub fn forward_not_matching_preflights(&self) -> bool {
        self.flag(|l| l.forward_not_matching_preflights, true)
    }

    /// What to do with `req`, drawn with `random_value` (for
    /// `filter_enabled` and `shadow_enabled`), as Envoy's CORS filter
    /// decides it:
    ///
    /// - no `origin` header, an empty one, or a policy that is neither
    ///   enabled nor shadowed: [`CorsCheck::NotCors`];
    /// - shadowed but not enabled: [`CorsCheck::Shadow`];
    /// - `OPTIONS` with a non-empty `access-control-request-method` (a
    ///   preflight), unless the origin is not allowed and
    ///   `forward_not_matching_preflights` holds: [`CorsCheck::Preflight`],
    ///   to be answered here;
    /// - anything else: [`CorsCheck::Forward`], whose
    ///   [`CorsResponse::apply`] adds the allowed origin (and credentials
    ///   and exposed headers) to whatever response the request gets.
    ///
    /// Several `origin` fields are joined with `,`, as Envoy does; an
    /// origin that is not UTF-8 is never allowed.
    pub fn check<R: RequestView + ?Sized>(&self, req: &R, random_value: u64) -> CorsCheck<'a> {
        let enabled = self.enabled(random_value);
        let shadow = self.shadow_enabled(random_value);
        if !enabled && !shadow {
            return CorsCheck::NotCors;
        }
        let mut buf = Joined::new();
        let origin = match joined_value_of(req, "origin", None, &mut buf) {
            Some(o) if !o.is_empty() => o,
            _ => return CorsCheck::NotCors,
        };
        let origin = std::str::from_utf8(origin)
            .ok()
            .filter(|o| self.origin_allowed(o.as_bytes()));
        let allowed = origin.is_some();
        if !enabled {
            return CorsCheck::Shadow {
                origin_allowed: allowed,
            };
        }
        let mut value_buf = Joined::new();
        let request_method = if req.method() == "OPTIONS" {
            joined_value_of(req, "access-control-request-method", None, &mut value_buf)
                .filter(|m| !m.is_empty())
                .map(|m| String::from_utf8_lossy(m).into_owned())
        } else {
            None
        };
        let Some(request_method) = request_method else {
            return CorsCheck::Forward(CorsResponse {
                origin: origin.map(Into::into),
                credentials: self.allow_credentials(),
                expose: self.expose_headers(),
            });
        };
        if !allowed && self.forward_not_matching_preflights() {
            return CorsCheck::Forward(CorsResponse {
                origin: None,
                credentials: false,
                expose: "",
            });
        }
        let mut headers: Vec<(&'static str, String)> = Vec::with_capacity(6);
        if let Some(o) = origin {
            headers.push(("access-control-allow-origin", o.to_owned()));
        }
        if self.allow_credentials() {
            headers.push(("access-control-allow-credentials", "true".to_owned()));
        }
        let request_value = |name: &str| {
            let mut b = Joined::new();
            joined_value_of(req, name, None, &mut b)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        match self.allow_methods() {
            "" => {}
            "*" => headers.push(("access-control-allow-methods", request_method)),
            m => headers.push(("access-control-allow-methods", m.to_owned())),
        }
        match self.allow_headers() {
            "" => {}
            "*" => headers.push((
                "access-control-allow-headers",
                request_value("access-control-request-headers"),
            )),
            h => headers.push(("access-control-allow-headers", h.to_owned())),
        }
        if !self.max_age().is_empty() {
            headers.push(("access-control-max-age", self.max_age().to_owned()));
        }
        if self.allow_private_network_access()
            && request_value("access-control-request-private-network") == "true"
        {
            headers.push(("access-control-allow-private-network", "true".to_owned()));
        }
        // Envoy's answer passes its own filter's encodeHeaders too, which
        // adds the exposed headers for an allowed origin.
        if allowed && !self.expose_headers().is_empty() {
            headers.push((
                "access-control-expose-headers",
                self.expose_headers().to_owned(),
            ));
        }
        CorsCheck::Preflight(CorsPreflight {
            origin_allowed: allowed,
            headers,
        })
    }
}

/// What [`Cors::check`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CorsCheck<'a> {
    /// Not a CORS request, or the policy is off for it: nothing to do.
    NotCors,
    /// The policy is shadowed for this request: the origin was checked (for
    /// stats: Envoy's `cors.origin_valid` and `cors.origin_invalid`) and
    /// nothing else is done.
    Shadow {
        /// Whether the origin is allowed.
        origin_allowed: bool,
    },
    /// A preflight: answer it here, 200 with no body and
    /// [`CorsPreflight::headers`]. The route's header mutations do not
    /// apply (Envoy answers before its router filter).
    Preflight(CorsPreflight),
    /// Forward the request, then [`CorsResponse::apply`] to its response.
    Forward(CorsResponse<'a>),
}

impl CorsCheck<'_> {
    /// Whether the origin was checked and allowed; `None` when no origin
    /// was checked ([`CorsCheck::NotCors`]).
    pub fn origin_allowed(&self) -> Option<bool> {
        match self {
            CorsCheck::NotCors => None,
            CorsCheck::Shadow { origin_allowed } => Some(*origin_allowed),
            CorsCheck::Preflight(p) => Some(p.origin_allowed),
            CorsCheck::Forward(r) => Some(r.origin.is_some()),
        }
    }
}

/// The answer to a preflight request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsPreflight {
    origin_allowed: bool,
    headers: Vec<(&'static str, String)>,
}

impl CorsPreflight {
    /// The status of the answer: 200.
    pub fn status(&self) -> u16 {
        200
    }

    /// Whether the origin is allowed (when it is not, the answer carries
    /// no `access-control-allow-origin`, so the browser refuses).
    pub fn origin_allowed(&self) -> bool {
        self.origin_allowed
    }

    /// The answer's headers (lower-case names), in Envoy's order.
    pub fn headers(&self) -> impl ExactSizeIterator<Item = (&'static str, &str)> + '_ {
        self.headers.iter().map(|(n, v)| (*n, v.as_str()))
    }

    /// Sets the answer's headers on `headers`.
    pub fn apply<H: HeaderMapMut + ?Sized>(&self, headers: &mut H) {
        for (n, v) in &self.headers {
            headers.set(n, v);
        }
    }
}

/// The CORS headers a forwarded request's response gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsResponse<'a> {
    /// The allowed origin, echoed; `None` when it was not allowed.
    origin: Option<Box<str>>,
    credentials: bool,
    expose: &'a str,
}

impl CorsResponse<'_> {
    /// The origin the response allows, when the request's was allowed.
    pub fn allowed_origin(&self) -> Option<&str> {
        self.origin.as_deref()
    }

    /// Sets `access-control-allow-origin` to the request's origin, and
    /// `access-control-allow-credentials` and
    /// `access-control-expose-headers` when the policy has them; nothing
    /// when the origin was not allowed.
    pub fn apply<H: HeaderMapMut + ?Sized>(&self, headers: &mut H) {
        let Some(origin) = &self.origin else { return };
        headers.set("access-control-allow-origin", origin);
        if self.credentials {
            headers.set("access-control-allow-credentials", "true");
        }
        if !self.expose.is_empty() {
            headers.set("access-control-expose-headers", self.expose);
        }
    }
}
