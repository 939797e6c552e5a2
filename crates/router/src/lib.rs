//! Envoy's HTTP routing semantics as an embeddable library.
//!
//! Load an Envoy-shaped route configuration (YAML, JSON or Rust), compile it
//! once into an immutable [`RouteTable`], and ask it where each request goes.
//! The answer is the one Envoy's `RouteConfiguration` would give: virtual
//! hosts chosen by exact, suffix-wildcard, prefix-wildcard and `*` domains;
//! routes tried in configuration order, first match wins; prefix, exact,
//! path-separated-prefix, regex (RE2 syntax, full match) and URI-template
//! paths; header, query-parameter and gRPC conditions; cluster, weighted
//! clusters, cluster-from-header, redirect and direct-response actions; path
//! and host rewrites; header mutations in Envoy's order, with `%COMMAND%`
//! value formatting.
//!
//! ```
//! use rauta_router::{Decision, Request, RouteTable};
//!
//! let table = RouteTable::from_yaml(r#"
//! virtual_hosts:
//!   - name: api
//!     domains: ["api.example.com"]
//!     routes:
//!       - name: users
//!         match: { prefix: "/users", headers: [{ name: x-beta, present_match: true }] }
//!         action: { cluster: users-beta, prefix_rewrite: "/v2/users" }
//!       - name: users-stable
//!         match: { prefix: "/users" }
//!         action: { cluster: users }
//! "#)?;
//!
//! let req = Request::get("api.example.com", "/users/42?full=1").header("x-beta", "1");
//! let Decision::Route(m) = table.route(&req, 0) else { panic!("no route") };
//! assert_eq!(m.route_name(), "users");
//! assert_eq!(m.cluster(), Some("users-beta"));
//! assert_eq!(m.rewritten_path().as_deref(), Some("/v2/users/42?full=1"));
//! # Ok::<(), rauta_router::ConfigErrors>(())
//! ```
//!
//! # Requests from any transport
//!
//! The table reads requests through [`RequestView`], implemented for
//! [`http::Request<B>`](http::Request) (any body), [`http::request::Parts`]
//! and the plain [`Request`]. It borrows; it never copies the request.
//!
//! A decision allocates nothing and takes no lock, on any number of threads
//! sharing one table: the first thread to search with a regex owns its
//! search cache, and every other thread keeps a copy of its own (made on
//! its first search with that regex, dropped with the table). A request
//! whose path the path policy changes (`/a/../b`, `//`, `;params`), or whose
//! host loses a dot before its port, needs new strings for what is
//! forwarded: [`RouteTable::route`] allocates them, while
//! [`RouteTable::route_in`] writes them into a [`RouteScratch`] the caller
//! reuses, so that once its buffers have grown nothing is allocated at all.
//! The same scratch holds the values of a repeated header that a matcher
//! joins; `route` joins them on the stack, up to 256 bytes.
//!
//! # Acting on a decision
//!
//! [`RouteTable::route`] returns a [`Decision`]: a [`RouteMatch`], a TLS
//! redirect, a path-policy reject or redirect, or not-found (404). A
//! [`RouteMatch`] names the virtual host and route, the [`ActionKind`], and
//! applies the rest to the proxy's own header maps:
//! [`RouteMatch::apply_request`] runs the request header mutations and
//! returns the upstream path and host after rewrites;
//! [`RouteMatch::apply_response`] runs the response mutations;
//! [`RouteMatch::redirect_location`] computes a redirect's Location. Header
//! values may hold Envoy's `%COMMAND%`s (`%DOWNSTREAM_REMOTE_ADDRESS%`,
//! `%REQ(x-id)%`, `%START_TIME%`, ...): the `_with` forms of the two apply
//! methods take a [`FormatContext`] with what the proxy knows of the
//! connection. [`RouteMatch::timeouts`] gives the request's upstream,
//! per-try and stream timeouts as Envoy works them out (`grpc-timeout`,
//! `max_stream_duration`, trusted `x-envoy-*` headers);
//! [`RouteMatch::local_rate_limit`] and [`RouteMatch::cors`] run Envoy's
//! local rate limit and CORS filters; [`RouteMatch::internal_redirect`]
//! decides whether an upstream's redirect is followed inside the proxy
//! (Envoy's `internal_redirect_policy`).
//!
//! # Errors at load time, never at request time
//!
//! [`RouteTable::build`] validates everything (regexes, duplicate domains,
//! weights, rewrites, header names, limits) and reports every problem at
//! once, each naming its virtual host, route and field:
//!
//! ```
//! let errs = rauta_router::RouteTable::from_yaml(r#"
//! virtual_hosts:
//!   - name: api
//!     domains: ["*"]
//!     routes:
//!       - name: bad
//!         match: { regex: "/(+" }
//!         action: { cluster: c }
//! "#).unwrap_err();
//! assert_eq!(
//!     errs.to_string(),
//!     "virtual_hosts[0] \"api\": routes[0] \"bad\": match.regex: invalid regex \"/(+\": \
//!      no argument for repetition operator (repetition operator missing expression)"
//! );
//! ```
//!
//! # Paths are made safe before matching
//!
//! Unless a configuration says otherwise, every path goes through
//! [`path::PathPolicy::safe_default`]: dot segments resolved (and rejected
//! when they climb above the root), slashes merged, escaped slashes, control
//! bytes, backslashes, malformed escapes and fragments rejected. The upstream
//! receives exactly the path that was matched. See `docs/security.md`.
//!
//! # Hot reload
//!
//! A [`Router`] holds the current table behind `arc-swap`: a reload builds the
//! new table off to the side and swaps it in only if it is valid.
//!
//! # Differences from Envoy
//!
//! `docs/envoy-compatibility.md` lists every Envoy routing feature and whether
//! RAUTA supports it, differs (how and why) or does not yet.
#![forbid(unsafe_code)]
#![deny(missing_docs, rustdoc::broken_intra_doc_links)]

pub mod authority;
pub mod config;
pub mod path;

mod build;
mod bytes;
mod cors;
mod envoy_shape;
mod error;
mod explain;
mod format;
mod index;
mod internal_redirect;
mod local;
mod local_ratelimit;
mod matchers;
mod mutate;
mod ratelimit;
mod re;
mod request;
mod router;
mod table;
mod template;
mod timeouts;

pub use cors::{Cors, CorsCheck, CorsPreflight, CorsResponse, CORS_FILTER};
pub use error::{ConfigError, ConfigErrors, ErrorKind};
pub use explain::{DomainMatch, Explanation, RouteVerdict};
pub use format::FormatContext;
pub use internal_redirect::{
    InternalRedirect, InternalRedirectPolicy, InternalRedirectRefusal, InternalRedirectState,
};
pub use local_ratelimit::{
    LocalRateLimitCounts, LocalRateLimitOutcome, LocalRateLimitVerdict, LocalRateLimiter,
    RateLimitHeaders, LOCAL_RATE_LIMIT_FILTER,
};
pub use matchers::is_grpc_content_type;
pub use mutate::HeaderMapMut;
pub use ratelimit::{RateLimitContext, RateLimitDescriptor};
pub use request::{HeaderValues, Request, RequestView};
pub use router::{Router, RouterCache, Snapshot, Version};
pub use table::{
    shadow_host, ActionKind, BuildOptions, Decision, HedgePolicy, Mirror, PathKind, RetryPolicy,
    RouteEntry, RouteId, RouteMatch, RouteScratch, RouteTable, Upstream, VirtualHostEntry,
};
pub use timeouts::{GrpcTimeout, TimeoutOptions, Timeouts};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme {}

#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
mod workspace_readme {}
