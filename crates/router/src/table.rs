//! The compiled, immutable route table and the routing decision.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use ahash::AHashMap;

use crate::config::{self, RequireTls, RouteConfig};
use crate::cors::{Cors, CorsAt, CorsLevel};
use crate::error::ConfigErrors;
use crate::format::{FormatContext, RouteFacts, Side};
use crate::local_ratelimit::{LocalRateLimitOutcome, LocalRateLimiter, VhRateLimits};
use crate::matchers::{self, HeaderCond, QueryCond};
use crate::mutate::{HeaderMapMut, Mutations};
use crate::path::{PathOutcome, PathPolicy};
use crate::ratelimit::{
    Inputs, RateLimitContext, RateLimitDescriptor, RateLimitSpec, RouteRateLimits,
    RATE_LIMIT_FILTER,
};
use crate::request::{first_header_value, for_each_value_of, Joined, RequestView};
use crate::template::{Captures, MatchTemplate, RewriteTemplate};

/// Identifies a route within one [`RouteTable`]: routes are numbered in
/// configuration order across all virtual hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(transparent)]
pub struct RouteId(u32);

impl RouteId {
    /// The number, from 0.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for RouteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Settings for [`RouteTable::build_with`] that are not part of a
/// configuration file.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct BuildOptions {
    /// The clusters that exist. When set, and the configuration does not turn
    /// `validate_clusters` off, a route naming another cluster is an error.
    pub known_clusters: Option<HashSet<String>>,
    /// Envoy's legacy query `present_match: false` behaviour (it then only
    /// tests presence). Off by default: `false` means "absent".
    pub legacy_query_present_match: bool,
    /// The path policy used when the configuration sets none, instead of
    /// [`PathPolicy::safe_default`].
    pub default_path_policy: Option<PathPolicy>,
    /// Route on the request-target exactly as received, with no path policy
    /// at all (Envoy's route table, behind a connection manager that has
    /// already handled the path). Off by default; never turn it on for
    /// requests that have not been validated elsewhere.
    pub raw_paths: bool,
    /// Refuse direct-response bodies read from files or environment
    /// variables (`filename`, `environment_variable`): for tables built
    /// from configurations the proxy's operator did not write.
    pub forbid_local_data_sources: bool,
}

impl BuildOptions {
    /// Sets the known clusters.
    pub fn known_clusters<I, S>(mut self, clusters: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.known_clusters = Some(clusters.into_iter().map(Into::into).collect());
        self
    }

    /// Routes on raw request-targets; see [`BuildOptions::raw_paths`].
    pub fn raw_paths(mut self, raw: bool) -> Self {
        self.raw_paths = raw;
        self
    }

    /// Whether direct-response bodies may be read from files and
    /// environment variables (`true` by default; see
    /// [`BuildOptions::forbid_local_data_sources`]).
    pub fn local_data_sources(mut self, allow: bool) -> Self {
        self.forbid_local_data_sources = !allow;
        self
    }

    /// Sets the base path policy.
    pub fn default_path_policy(mut self, policy: PathPolicy) -> Self {
        self.default_path_policy = Some(policy);
        self
    }
}

// ------------------------------------------------------------ compiled parts

#[derive(Debug, Clone)]
pub(crate) enum PathSpec {
    Prefix(Box<str>),
    Exact(Box<str>),
    Separated(Box<str>),
    Regex(crate::local::Matcher),
    Template(MatchTemplate),
    Connect,
}

/// What kind of path condition a route has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathKind {
    /// `prefix`.
    Prefix,
    /// `path`.
    Exact,
    /// `path_separated_prefix`.
    SeparatedPrefix,
    /// `regex`.
    Regex,
    /// `path_template`.
    Template,
    /// `connect_matcher`.
    Connect,
}

#[derive(Debug, Clone)]
pub(crate) enum ClusterSpec {
    Named(Box<str>),
    Header(Box<str>),
    Weighted(Weighted),
}

#[derive(Debug, Clone)]
pub(crate) struct Weighted {
    pub(crate) entries: Box<[WeightedEntry]>,
    pub(crate) total: u64,
    pub(crate) header_name: Option<Box<str>>,
}

#[derive(Debug, Clone)]
pub(crate) struct WeightedEntry {
    pub(crate) cluster: ClusterName,
    pub(crate) weight: u32,
    pub(crate) request: Mutations,
    pub(crate) response: Mutations,
    pub(crate) host_rewrite: Option<Box<str>>,
    pub(crate) filters: Filters,
    pub(crate) cors: CorsLevel,
    pub(crate) local_rate_limit: LocalLimitLevel,
}

/// A compiled request mirror policy.
#[derive(Debug, Clone)]
pub(crate) struct MirrorSpec {
    pub(crate) cluster: ClusterName,
    /// `runtime_fraction`: mirrors when `random % denominator < numerator`.
    pub(crate) fraction: Option<(u32, u64)>,
    pub(crate) shadow_suffix: bool,
}

/// A copy of a routed request to send to another cluster, whose answer is
/// dropped (see [`RouteMatch::mirrors`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Mirror<'a> {
    /// The cluster the copy goes to.
    pub cluster: &'a str,
    /// Whether the copy's Host gets `-shadow` appended (see
    /// [`shadow_host`]); `disable_shadow_host_suffix_append` clears it.
    pub shadow_suffix: bool,
}

/// Envoy's Host for a mirrored copy: `-shadow` appended to the host name,
/// before any port (`api.example.com:8080` → `api.example.com-shadow:8080`).
pub fn shadow_host(host: &str) -> String {
    let (name, port) = match host.rfind(':') {
        Some(i) if !host.starts_with('[') || host[..i].ends_with(']') => host.split_at(i),
        _ => (host, ""),
    };
    format!("{name}-shadow{port}")
}

/// What a level's `typed_per_filter_config` says of the local rate limit
/// filter, compiled: nothing, a `FilterConfig` that disables it, or an
/// entry that enables it (with its limiter, shared by clones of the
/// table, unless the entry is a wrapper without `config`).
#[derive(Debug, Clone, Default)]
pub(crate) enum LocalLimitLevel {
    #[default]
    Absent,
    Disabled,
    Enabled(Option<std::sync::Arc<LocalRateLimiter>>),
}

impl LocalLimitLevel {
    pub(crate) fn limiter(&self) -> Option<&LocalRateLimiter> {
        match self {
            LocalLimitLevel::Enabled(l) => l.as_deref(),
            _ => None,
        }
    }

    /// `filter_disabled` at this level.
    fn disabled(&self) -> Option<bool> {
        match self {
            LocalLimitLevel::Absent => None,
            LocalLimitLevel::Disabled => Some(true),
            LocalLimitLevel::Enabled(_) => Some(false),
        }
    }
}

/// A level's `typed_per_filter_config`, out of line (most routes have none).
pub(crate) type Filters = Option<Box<config::FilterConfigs>>;

/// The type URL of Envoy's `FilterConfig` wrapper (`config`,
/// `is_optional`, `disabled`) around a per-filter configuration.
pub(crate) const FILTER_CONFIG_TYPE: &str =
    "type.googleapis.com/envoy.config.route.v3.FilterConfig";

/// What one level's `typed_per_filter_config` says about a filter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum FilterAt<'f> {
    /// Nothing.
    Absent,
    /// A `FilterConfig` with `disabled: true`.
    Disabled,
    /// Configured: its configuration, unwrapped from a `FilterConfig`
    /// (`None` for a `FilterConfig` whose `config` is empty, which only
    /// enables the filter).
    Enabled(Option<&'f serde_json::Value>),
}

/// Whether `v` is a `FilterConfig` wrapper: its type URL names
/// `envoy.config.route.v3.FilterConfig` after the last `/`, whatever comes
/// before (as Envoy reads type URLs).
pub(crate) fn is_filter_config(v: &serde_json::Value) -> bool {
    let full = FILTER_CONFIG_TYPE
        .rsplit('/')
        .next()
        .unwrap_or(FILTER_CONFIG_TYPE);
    v.get("@type")
        .and_then(serde_json::Value::as_str)
        .is_some_and(|t| t.rsplit('/').next() == Some(full))
}

/// What `value`, a level's entry for a filter, says.
pub(crate) fn filter_at(value: Option<&serde_json::Value>) -> FilterAt<'_> {
    let Some(v) = value else {
        return FilterAt::Absent;
    };
    if !is_filter_config(v) {
        return FilterAt::Enabled(Some(v));
    }
    if v.get("disabled").and_then(serde_json::Value::as_bool) == Some(true) {
        return FilterAt::Disabled;
    }
    let config = v
        .get("config")
        .filter(|c| !c.as_object().is_some_and(serde_json::Map::is_empty));
    FilterAt::Enabled(config)
}

/// A level's configuration for `filter`, unwrapped from a `FilterConfig`.
fn filter_config<'f>(filters: &'f Filters, filter: &str) -> Option<&'f serde_json::Value> {
    match filter_at(filters.as_ref()?.get(filter)) {
        FilterAt::Enabled(c) => c,
        FilterAt::Absent | FilterAt::Disabled => None,
    }
}

/// Whether a level disables `filter` (`Some(true)`), enables it
/// (`Some(false)`: any other entry for it), or says nothing.
fn filter_disabled_at(filters: &Filters, filter: &str) -> Option<bool> {
    match filter_at(filters.as_ref()?.get(filter)) {
        FilterAt::Absent => None,
        FilterAt::Disabled => Some(true),
        FilterAt::Enabled(_) => Some(false),
    }
}

/// What a level's `typed_per_filter_config` compiles to.
pub(crate) fn filters(c: &config::FilterConfigs) -> Filters {
    (!c.is_empty()).then(|| Box::new(c.clone()))
}

#[derive(Debug, Clone)]
pub(crate) enum ClusterName {
    Named(Box<str>),
    Header(Box<str>),
}

#[derive(Debug, Clone)]
pub(crate) struct RegexSub {
    pub(crate) re: regex::bytes::Regex,
    pub(crate) sub: String,
}

impl RegexSub {
    pub(crate) fn compile(
        r: &config::RegexRewrite,
        limits: crate::re::RegexLimits,
    ) -> Result<Self, String> {
        let re = crate::re::search(r.pattern.pattern(), limits)?;
        crate::re::check_groups(&re, &r.substitution)?;
        let sub = crate::re::substitution(&r.substitution)?;
        Ok(RegexSub { re, sub })
    }

    fn replace_all<'p>(&self, s: &'p str) -> Cow<'p, str> {
        match self.re.replace_all(s.as_bytes(), self.sub.as_bytes()) {
            Cow::Borrowed(_) => Cow::Borrowed(s),
            Cow::Owned(v) => Cow::Owned(String::from_utf8_lossy(&v).into_owned()),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum PathRewrite {
    Prefix(Box<str>),
    Regex(RegexSub),
    Template(RewriteTemplate),
}

#[derive(Debug, Clone)]
pub(crate) enum HostRewrite {
    Literal(Box<str>),
    Header(Box<str>),
    PathRegex(RegexSub),
    Auto,
}

#[derive(Debug, Clone)]
pub(crate) struct RedirectSpec {
    scheme: Option<Box<str>>,
    host: Option<Box<str>>,
    port: Option<u16>,
    path: Option<Box<str>>,
    rewrite: Option<PathRewrite>,
    strip_query: bool,
    status: u16,
}

#[derive(Debug, Clone)]
pub(crate) enum ActionSpec {
    Forward(ClusterSpec),
    Redirect(RedirectSpec),
    Direct { status: u16, body: Box<str> },
}

/// A route's effective retry policy, with Envoy's defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Retry conditions, in configuration order.
    pub retry_on: Vec<String>,
    /// Attempts after the first.
    pub num_retries: u32,
    /// Timeout of each attempt in milliseconds; 0 means the route timeout.
    pub per_try_timeout_ms: u64,
    /// Back-off base interval in milliseconds.
    pub base_interval_ms: u64,
    /// Back-off maximum interval in milliseconds.
    pub max_interval_ms: u64,
    /// Status codes retried under `retriable-status-codes`.
    pub retriable_status_codes: Vec<u16>,
    /// Idle timeout of each attempt in milliseconds, if set.
    pub per_try_idle_timeout_ms: Option<u64>,
    /// Most host selections per attempt (default 1).
    pub host_selection_retry_max_attempts: u32,
    /// `retriable_headers` and `retriable_request_headers`, compiled.
    pub(crate) header_conds: RetryHeaderConds,
}

/// The compiled header conditions of a retry policy. Equal when the
/// policies are: they are compiled from the same configuration.
#[derive(Debug, Clone, Default)]
pub(crate) struct RetryHeaderConds {
    pub(crate) response: Box<[HeaderCond]>,
    pub(crate) request: Box<[HeaderCond]>,
    /// What they were compiled from, for equality.
    pub(crate) source: Box<(Vec<config::HeaderMatcher>, Vec<config::HeaderMatcher>)>,
}

impl PartialEq for RetryHeaderConds {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}
impl Eq for RetryHeaderConds {}

impl RetryPolicy {
    /// Whether `req` may be retried at all: it matches one of the
    /// `retriable_request_headers`, or there are none (Envoy's rule).
    /// Envoy tests the request as it goes upstream (after the route's
    /// header edits and rewrites): pass that one.
    pub fn request_retriable<R: RequestView + ?Sized>(&self, req: &R) -> bool {
        let conds = &self.header_conds.request;
        let mut buf = Joined::new();
        let path = req.path_and_query();
        conds.is_empty() || conds.iter().any(|c| c.matches(req, path, &mut buf, &[]))
    }

    /// Whether it has `retriable_request_headers`.
    pub fn has_retriable_request_headers(&self) -> bool {
        !self.header_conds.request.is_empty()
    }

    /// Whether a response is retried under `retriable-headers`: one of the
    /// `retriable_headers` matches it (`:status` is `status`; several
    /// fields of a name are joined with `,`). False when there are none.
    pub fn response_retriable(&self, status: u16, headers: &http::HeaderMap) -> bool {
        let status = status.to_string();
        self.header_conds.response.iter().any(|c| {
            let mut joined: Vec<u8> = Vec::new();
            let value: Option<&[u8]> = if &*c.name == ":status" {
                Some(status.as_bytes())
            } else if c.name.starts_with(':') {
                None
            } else {
                for (i, v) in headers.get_all(&*c.name).iter().enumerate() {
                    if i > 0 {
                        joined.push(b',');
                    }
                    joined.extend_from_slice(v.as_bytes());
                }
                headers.contains_key(&*c.name).then_some(joined.as_slice())
            };
            let value = match value {
                None if c.treat_missing_as_empty => Some(&b""[..]),
                v => v,
            };
            c.eval(value)
        })
    }

    /// Whether it has `retriable_headers` to test responses against.
    pub fn has_retriable_headers(&self) -> bool {
        !self.header_conds.response.is_empty()
    }
}

/// A route's effective hedge policy, with Envoy's defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HedgePolicy {
    /// Requests sent at once (at least 1).
    pub initial_requests: u32,
    /// Chance of one more request, as `(numerator, denominator)`.
    pub additional_request_chance: (u32, u64),
    /// On a per-try timeout, keep the attempt and send another.
    pub hedge_on_per_try_timeout: bool,
}

/// A compiled route: conditions, action and policies.
#[derive(Debug, Clone)]
pub struct RouteEntry {
    id: RouteId,
    index: u32,
    name: Box<str>,
    pub(crate) path: PathSpec,
    pub(crate) case_sensitive: bool,
    /// The route index decides the path condition: a route it lists as a
    /// candidate for a path matches that path (exact paths, prefixes, and
    /// templates of literal and whole-segment operators: the template trie
    /// compares their literals and checks their segments).
    pub(crate) path_in_index: bool,
    pub(crate) headers: Box<[HeaderCond]>,
    pub(crate) query: Box<[QueryCond]>,
    pub(crate) grpc: bool,
    /// `runtime_fraction`: matches when `random % denominator < numerator`.
    pub(crate) runtime_fraction: Option<(u32, u64)>,
    pub(crate) action: ActionSpec,
    rewrite: Option<PathRewrite>,
    host_rewrite: Option<HostRewrite>,
    append_x_forwarded_host: bool,
    cluster_not_found_status: u16,
    request: Mutations,
    response: Mutations,
    timeout_ms: u64,
    idle_timeout_ms: Option<u64>,
    /// `max_stream_duration` and the gRPC timeout fields, when set.
    pub(crate) timeout_rules: Option<Box<crate::timeouts::TimeoutRules>>,
    retry: Option<RetryPolicy>,
    pub(crate) hedge: Option<Box<HedgePolicy>>,
    pub(crate) rate_limits: Option<Box<RouteRateLimits>>,
    pub(crate) cors: CorsLevel,
    pub(crate) local_rate_limit: LocalLimitLevel,
    upgrades: Box<[(Box<str>, bool)]>,
    hash_policy: Box<[config::HashPolicy]>,
    pub(crate) filters: Filters,
    pub(crate) mirrors: Box<[MirrorSpec]>,
    pub(crate) metadata: Option<Box<serde_json::Value>>,
    /// Whether the configuration names the route (`name` is then the
    /// configured one, not `routes[N]`): `%ROUTE_NAME%` of an unnamed
    /// route is empty, as in Envoy.
    pub(crate) named: bool,
    pub(crate) internal_redirect: Option<Box<crate::internal_redirect::InternalRedirectPolicy>>,
    pub(crate) buffer_limit: Option<u32>,
}

impl RouteEntry {
    /// The route's id in its table.
    pub fn id(&self) -> RouteId {
        self.id
    }

    /// The route's position in its virtual host.
    pub fn index(&self) -> usize {
        self.index as usize
    }

    /// The route's name (`routes[N]` for unnamed routes).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The route's name as Envoy has it: empty for an unnamed route.
    pub(crate) fn envoy_name(&self) -> &str {
        if self.named {
            &self.name
        } else {
            ""
        }
    }

    /// The most request body a proxy should keep to send again (for an
    /// internal redirect, or a retry): the route's
    /// `per_request_buffer_limit_bytes`, else its virtual host's, if either
    /// is set. Envoy keeps the lesser of this and the connection's buffer
    /// limit (1 MiB by default).
    pub fn per_request_buffer_limit_bytes(&self) -> Option<u32> {
        self.buffer_limit
    }

    /// The route's internal redirect policy (Envoy's
    /// `internal_redirect_policy`), if it has one. See
    /// [`RouteMatch::internal_redirect`].
    pub fn internal_redirect_policy(
        &self,
    ) -> Option<&crate::internal_redirect::InternalRedirectPolicy> {
        self.internal_redirect.as_deref()
    }

    /// The kind of path condition.
    pub fn path_kind(&self) -> PathKind {
        match self.path {
            PathSpec::Prefix(_) => PathKind::Prefix,
            PathSpec::Exact(_) => PathKind::Exact,
            PathSpec::Separated(_) => PathKind::SeparatedPrefix,
            PathSpec::Regex(_) => PathKind::Regex,
            PathSpec::Template(_) => PathKind::Template,
            PathSpec::Connect => PathKind::Connect,
        }
    }

    /// The path condition as written (prefix, path, pattern or template).
    pub fn path_text(&self) -> &str {
        match &self.path {
            PathSpec::Prefix(s) | PathSpec::Exact(s) | PathSpec::Separated(s) => s,
            PathSpec::Regex(r) => {
                let s = r.as_str();
                s.strip_prefix("^(?:")
                    .and_then(|s| s.strip_suffix(")$"))
                    .unwrap_or(s)
            }
            PathSpec::Template(t) => t.source(),
            PathSpec::Connect => "CONNECT",
        }
    }

    /// Whether the path comparison is case-sensitive.
    pub fn case_sensitive(&self) -> bool {
        self.case_sensitive
    }

    /// Number of header and query conditions.
    pub fn condition_count(&self) -> usize {
        self.headers.len() + self.query.len() + usize::from(self.grpc)
    }

    /// This route's `metadata`, as given (Envoy's `filter_metadata` and
    /// `typed_filter_metadata` for the proxy's own filters and logs).
    pub fn metadata(&self) -> Option<&serde_json::Value> {
        self.metadata.as_deref()
    }

    /// This route's own `typed_per_filter_config` value for `filter`
    /// (see [`RouteMatch::per_filter_config`] for the one that applies).
    pub fn filter_config(&self, filter: &str) -> Option<&serde_json::Value> {
        filter_config(&self.filters, filter)
    }

    /// Upstream timeout in milliseconds (0 disables).
    pub fn timeout_ms(&self) -> u64 {
        self.timeout_ms
    }

    /// Stream idle timeout in milliseconds, if set.
    pub fn idle_timeout_ms(&self) -> Option<u64> {
        self.idle_timeout_ms
    }

    /// The route's `max_stream_duration` (Envoy's
    /// `RouteAction.max_stream_duration`), as configured: when set, the
    /// stream's lifetime and a gRPC request's `grpc-timeout` follow it and
    /// [`timeout_ms`](Self::timeout_ms) no longer applies. See
    /// [`RouteMatch::timeouts`].
    pub fn max_stream_duration(&self) -> Option<config::MaxStreamDuration> {
        let rules = self.timeout_rules.as_deref()?;
        let ms = |d: Option<std::time::Duration>| {
            d.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        };
        rules.stream.map(|s| config::MaxStreamDuration {
            max_stream_duration_ms: ms(s.max),
            grpc_timeout_header_max_ms: ms(s.header_max),
            grpc_timeout_header_offset_ms: ms(s.header_offset),
        })
    }

    /// The cap on a gRPC request's `grpc-timeout` as its upstream timeout,
    /// in milliseconds (Envoy's `max_grpc_timeout`; 0: no cap), if set.
    pub fn max_grpc_timeout_ms(&self) -> Option<u64> {
        let d = self.timeout_rules.as_deref()?.max_grpc_timeout?;
        Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    /// What is taken off a gRPC request's `grpc-timeout` before
    /// [`max_grpc_timeout_ms`](Self::max_grpc_timeout_ms) applies, in
    /// milliseconds (Envoy's `grpc_timeout_offset`), if set.
    pub fn grpc_timeout_offset_ms(&self) -> Option<u64> {
        let d = self.timeout_rules.as_deref()?.grpc_timeout_offset?;
        Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    /// The effective hedge policy (the route's, else its virtual host's;
    /// no field merge).
    pub fn hedge_policy(&self) -> Option<&HedgePolicy> {
        self.hedge.as_deref()
    }

    /// The effective retry policy (the route's, else its virtual host's).
    pub fn retry_policy(&self) -> Option<&RetryPolicy> {
        self.retry.as_ref()
    }

    /// Whether the protocol upgrade `kind` (case-insensitive) is enabled.
    pub fn upgrade_enabled(&self, kind: &str) -> Option<bool> {
        self.upgrades
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(kind))
            .map(|(_, e)| *e)
    }

    /// The hash policy, as configured.
    pub fn hash_policy(&self) -> &[config::HashPolicy] {
        &self.hash_policy
    }

    /// The status sent when the chosen cluster does not exist.
    pub fn cluster_not_found_status(&self) -> u16 {
        self.cluster_not_found_status
    }

    /// A one-line description of the action, for tools.
    pub fn action_summary(&self) -> String {
        match &self.action {
            ActionSpec::Forward(ClusterSpec::Named(c)) => format!("cluster {c}"),
            ActionSpec::Forward(ClusterSpec::Header(h)) => format!("cluster from header {h}"),
            ActionSpec::Forward(ClusterSpec::Weighted(w)) => {
                let parts: Vec<String> = w
                    .entries
                    .iter()
                    .map(|e| match &e.cluster {
                        ClusterName::Named(n) => format!("{n}:{}", e.weight),
                        ClusterName::Header(h) => format!("<header {h}>:{}", e.weight),
                    })
                    .collect();
                format!("weighted clusters {}", parts.join(" "))
            }
            ActionSpec::Redirect(r) => format!("redirect {}", r.status),
            ActionSpec::Direct { status, .. } => format!("direct response {status}"),
        }
    }

    /// Whether the path and conditions hold for a request. `indexed`: the
    /// route is a candidate of the route index, which has compared the
    /// path already when [`Self::path_in_index`] says it decides it.
    fn matches<R: RequestView + ?Sized>(
        &self,
        req: &R,
        ctx: &MatchCtx<'_>,
        caps: &mut Captures,
        joined: &mut Joined,
        indexed: bool,
    ) -> bool {
        // Conditions first, as Envoy does; all are pure, so order only
        // affects cost.
        if let PathSpec::Connect = self.path {
            if !ctx.is_connect {
                return false;
            }
        } else if ctx.match_path.is_none() {
            return false;
        }
        if let Some((numerator, denominator)) = self.runtime_fraction {
            if ctx.random % denominator >= u64::from(numerator) {
                return false;
            }
        }
        if self.grpc && !matchers::is_grpc(req, ctx.hidden) {
            return false;
        }
        if !self
            .headers
            .iter()
            .all(|h| h.matches(req, ctx.full_path, joined, ctx.hidden))
        {
            return false;
        }
        if !self.query.is_empty() {
            let query = ctx.query();
            if !self.query.iter().all(|q| q.matches(query)) {
                return false;
            }
        }
        (indexed && self.path_in_index) || self.path_matches(ctx.match_path.unwrap_or(""), caps)
    }

    /// Whether the route's path condition holds for `p` (a match path);
    /// a template's variables go into `caps`.
    pub(crate) fn path_matches(&self, p: &str, caps: &mut Captures) -> bool {
        let cs = self.case_sensitive;
        let pb = p.as_bytes();
        match &self.path {
            PathSpec::Prefix(pre) => starts_with(pb, pre.as_bytes(), cs),
            PathSpec::Exact(e) => eq_case(pb, e.as_bytes(), cs),
            PathSpec::Separated(pre) => {
                starts_with(pb, pre.as_bytes(), cs)
                    && (pb.len() == pre.len() || pb[pre.len()] == b'/')
            }
            PathSpec::Regex(re) => re.is_match(pb),
            PathSpec::Template(t) => t.matches(p, cs, caps),
            PathSpec::Connect => true,
        }
    }
}

#[inline]
fn eq_case(a: &[u8], b: &[u8], cs: bool) -> bool {
    if cs {
        a == b
    } else {
        a.eq_ignore_ascii_case(b)
    }
}

#[inline]
fn starts_with(p: &[u8], pre: &[u8], cs: bool) -> bool {
    p.len() >= pre.len() && eq_case(&p[..pre.len()], pre, cs)
}

/// A compiled virtual host.
#[derive(Debug, Clone)]
pub struct VirtualHostEntry {
    index: u32,
    name: Box<str>,
    domains: Box<[Box<str>]>,
    pub(crate) routes: Box<[RouteEntry]>,
    require_tls: Option<RequireTls>,
    request: Mutations,
    response: Mutations,
    path_policy: Option<PathPolicy>,
    pub(crate) route_index: crate::index::RouteIndex,
    pub(crate) filters: Filters,
    pub(crate) cors: CorsLevel,
    pub(crate) local_rate_limit: LocalLimitLevel,
    pub(crate) rate_limits: Box<[RateLimitSpec]>,
    pub(crate) mirrors: Box<[MirrorSpec]>,
    pub(crate) metadata: Option<Box<serde_json::Value>>,
}

impl VirtualHostEntry {
    /// The virtual host's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This virtual host's `metadata`, as given.
    pub fn metadata(&self) -> Option<&serde_json::Value> {
        self.metadata.as_deref()
    }

    /// This virtual host's `typed_per_filter_config` value for `filter`.
    pub fn filter_config(&self, filter: &str) -> Option<&serde_json::Value> {
        filter_config(&self.filters, filter)
    }

    /// Its position in the configuration.
    pub fn index(&self) -> usize {
        self.index as usize
    }

    /// Its domains, lower-cased.
    pub fn domains(&self) -> &[Box<str>] {
        &self.domains
    }

    /// Its routes, in order.
    pub fn routes(&self) -> &[RouteEntry] {
        &self.routes
    }

    /// Its path policy (the configuration's overlaid with its own), or
    /// `None` when the table routes raw paths.
    pub fn path_policy(&self) -> Option<&PathPolicy> {
        self.path_policy.as_ref()
    }
}

/// Wildcard domains of one key length: (length, key -> virtual host).
type WildBucket = (usize, AHashMap<Box<[u8]>, u32>);

/// Host to virtual host: exact, then suffix wildcards by length, then prefix
/// wildcards by length, then `*` (Envoy's `RouteMatcher`).
#[derive(Debug, Clone, Default)]
pub(crate) struct DomainIndex {
    exact: AHashMap<Box<[u8]>, u32>,
    /// (key length, key -> vhost), longest first.
    suffix: Vec<WildBucket>,
    prefix: Vec<WildBucket>,
    default: Option<u32>,
}

impl DomainIndex {
    /// Adds a wildcard key; false when the key is already taken.
    fn insert_wild(list: &mut Vec<WildBucket>, key: &[u8], v: u32) -> bool {
        match list.iter_mut().find(|(l, _)| *l == key.len()) {
            Some((_, m)) => {
                if m.contains_key(key) {
                    return false;
                }
                m.insert(key.into(), v);
            }
            None => {
                let mut m = AHashMap::new();
                m.insert(key.into(), v);
                list.push((key.len(), m));
                list.sort_by_key(|b| std::cmp::Reverse(b.0));
            }
        }
        true
    }

    fn only_default(&self) -> bool {
        self.exact.is_empty() && self.suffix.is_empty() && self.prefix.is_empty()
    }

    /// `host` must be lower-case already.
    pub(crate) fn find(&self, host: &[u8]) -> Option<u32> {
        if let Some(&v) = self.exact.get(host) {
            return Some(v);
        }
        for (len, map) in &self.suffix {
            if *len < host.len() {
                if let Some(&v) = map.get(&host[host.len() - len..]) {
                    return Some(v);
                }
            }
        }
        for (len, map) in &self.prefix {
            if *len < host.len() {
                if let Some(&v) = map.get(&host[..*len]) {
                    return Some(v);
                }
            }
        }
        self.default
    }
}

/// An immutable, compiled route table: Envoy's `RouteConfiguration`.
///
/// Build one with [`RouteTable::build`] (or [`RouteTable::from_yaml`]), then
/// ask [`RouteTable::route`] where each request goes. The table is `Send +
/// Sync`; share it behind an `Arc` or a [`Router`](crate::Router).
#[derive(Debug, Clone)]
pub struct RouteTable {
    name: Box<str>,
    pub(crate) vhosts: Box<[VirtualHostEntry]>,
    pub(crate) domains: DomainIndex,
    ignore_port: bool,
    ignore_path_params: bool,
    most_specific_wins: bool,
    alternate_host_header: Option<Box<str>>,
    host_norm: config::HostNormalization,
    request: Mutations,
    response: Mutations,
    /// `internal_only_headers`, lower case.
    internal_only: Box<[Box<str>]>,
    filters: Filters,
    pub(crate) cors: CorsLevel,
    pub(crate) local_rate_limit: LocalLimitLevel,
    mirrors: Box<[MirrorSpec]>,
    metadata: Option<Box<serde_json::Value>>,
    route_count: usize,
}

/// Why no route was found, or why the request is answered before routing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision<'a> {
    /// A route was found.
    Route(RouteMatch<'a>),
    /// The virtual host requires TLS: answer 301 with this Location.
    TlsRedirect {
        /// The virtual host.
        vhost: &'a VirtualHostEntry,
        /// `https://` + host + path.
        location: String,
    },
    /// The path policy rejects the request.
    Reject {
        /// The virtual host whose path policy decided.
        vhost: &'a VirtualHostEntry,
        /// Status to answer with (400, 404, 414, 431).
        status: u16,
        /// Why.
        reason: crate::path::RejectReason,
    },
    /// The path policy asks for a redirect to the canonical path.
    PathRedirect {
        /// The virtual host whose path policy decided.
        vhost: &'a VirtualHostEntry,
        /// Status (307).
        status: u16,
        /// The Location path and query.
        location: String,
    },
    /// No virtual host, or no route in it: answer 404.
    NotFound {
        /// The virtual host, when one was selected.
        vhost: Option<&'a VirtualHostEntry>,
    },
}

impl<'a> Decision<'a> {
    /// The route match, if a route was found.
    pub fn route(&self) -> Option<&RouteMatch<'a>> {
        match self {
            Decision::Route(m) => Some(m),
            _ => None,
        }
    }

    /// Consumes the decision into the route match, if any.
    pub fn into_route(self) -> Option<RouteMatch<'a>> {
        match self {
            Decision::Route(m) => Some(m),
            _ => None,
        }
    }

    /// The selected virtual host, if any.
    pub fn virtual_host(&self) -> Option<&'a VirtualHostEntry> {
        match self {
            Decision::Route(m) => Some(m.vhost),
            Decision::TlsRedirect { vhost, .. }
            | Decision::Reject { vhost, .. }
            | Decision::PathRedirect { vhost, .. } => Some(vhost),
            Decision::NotFound { vhost } => *vhost,
        }
    }
}

/// What the proxy does with a matched request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ActionKind<'a> {
    /// Forward upstream to this cluster (possibly `""` when a cluster header
    /// was absent: answer [`RouteEntry::cluster_not_found_status`]).
    Forward {
        /// The cluster name.
        cluster: &'a str,
    },
    /// Answer with a redirect; see [`RouteMatch::redirect_location`].
    Redirect {
        /// The status (301, 302, 303, 307, 308).
        status: u16,
    },
    /// Answer directly.
    DirectResponse {
        /// The status.
        status: u16,
        /// The body.
        body: &'a str,
    },
}

/// A matched route and everything needed to act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch<'a> {
    table: &'a RouteTable,
    vhost: &'a VirtualHostEntry,
    route: &'a RouteEntry,
    scheme: &'a str,
    method: &'a str,
    /// Internal-only headers of an external request, which
    /// `apply_request` removes.
    hidden: &'a [Box<str>],
    host: Cow<'a, str>,
    path: Cow<'a, str>,
    match_path: Cow<'a, str>,
    has_path: bool,
    cluster: &'a str,
    entry: Option<u16>,
    /// The port a CONNECT request's host carried (routing ignored it).
    connect_port: Option<&'a str>,
}

impl PartialEq for RouteTable {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}
impl Eq for RouteTable {}
impl PartialEq for VirtualHostEntry {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}
impl Eq for VirtualHostEntry {}
impl PartialEq for RouteEntry {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}
impl Eq for RouteEntry {}

/// The request upstream after rewrites.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Upstream<'a> {
    /// Upstream `:path` (path and query).
    pub path: Cow<'a, str>,
    /// Upstream Host / `:authority`.
    pub host: Cow<'a, str>,
}

pub(crate) struct MatchCtx<'p> {
    /// The caller's random value, for `runtime_fraction`.
    pub(crate) random: u64,
    /// Headers conditions treat as absent (internal-only ones on an
    /// external request).
    pub(crate) hidden: &'p [Box<str>],
    pub(crate) is_connect: bool,
    /// The path as forwarded (with query); `None` without `:path`.
    pub(crate) full_path: Option<&'p str>,
    /// What path conditions compare.
    pub(crate) match_path: Option<&'p str>,
    /// The query once a query condition has asked for it.
    pub(crate) query: std::cell::Cell<Option<Option<&'p str>>>,
}

impl<'p> MatchCtx<'p> {
    /// The query (after the first `?` of the forwarded path), found when a
    /// query condition first asks (most routes have none) and kept for the
    /// next candidate route that asks.
    fn query(&self) -> Option<&'p str> {
        if let Some(q) = self.query.get() {
            return q;
        }
        let q = self
            .full_path
            .and_then(|p| crate::bytes::find(p.as_bytes(), b'?').map(|i| &p[i + 1..]));
        self.query.set(Some(q));
        q
    }
}

/// `name` followed by `port`, in lower case: in `stack` when it fits, else
/// in `buf`.
fn lower_pair_into<'b>(
    name: &str,
    port: &str,
    stack: &'b mut [u8; 256],
    buf: &'b mut Joined,
) -> &'b [u8] {
    let len = name.len() + port.len();
    let out: &mut [u8] = if len <= stack.len() {
        &mut stack[..len]
    } else {
        buf.clear();
        buf.resize(len, 0);
        buf
    };
    // Two plain loops: the compiler vectorizes them, not a chained one.
    let (a, b) = out.split_at_mut(name.len());
    for (o, c) in a.iter_mut().zip(name.as_bytes()) {
        *o = c.to_ascii_lowercase();
    }
    for (o, c) in b.iter_mut().zip(port.as_bytes()) {
        *o = c.to_ascii_lowercase();
    }
    out
}

/// Index of the port colon: the last ':' with no ']' after it.
pub(crate) fn port_colon(host: &str) -> Option<usize> {
    let i = host.rfind(':')?;
    if host[i..].contains(']') {
        None
    } else {
        Some(i)
    }
}

/// The host after host normalization (and, for CONNECT, without its
/// port), as two borrowed parts of `h` to be read joined: the second is
/// empty unless a dot before a kept port was taken out.
fn normalize_host<'h>(
    h: &'h str,
    n: &config::HostNormalization,
    connect: bool,
) -> (&'h str, &'h str) {
    use crate::authority::{split_trailing_host_dot, strip_host_port};
    let (mut name, mut port) = if n.strip_trailing_host_dot {
        split_trailing_host_dot(h)
    } else {
        (h, "")
    };
    // `None` strips any numeric port (strip_any_host_port); CONNECT routes
    // on the host without its port, whatever it is.
    let strip = if n.strip_any_host_port {
        Some(None)
    } else {
        n.strip_matching_host_port.map(Some)
    };
    for listener in [strip, connect.then_some(None)].into_iter().flatten() {
        // A port after a removed dot is the whole second part (it holds
        // the last ':'), and stripping it decides as it would joined.
        if port.is_empty() {
            name = strip_host_port(name, listener);
        } else {
            port = strip_host_port(port, listener);
        }
    }
    (name, port)
}

/// Reusable buffers for [`RouteTable::route_in`]: keep one per thread (or
/// per connection) and pass it to every call. They grow to the longest
/// path and host that needed a change and the longest repeated header a
/// matcher joined, and then routing allocates nothing even for requests
/// that the path policy or host normalization changes.
#[derive(Debug, Clone, Default)]
pub struct RouteScratch {
    path: crate::path::PathScratch,
    host: String,
    header: Joined,
}

impl RouteScratch {
    /// Empty buffers; they grow on first use.
    pub fn new() -> RouteScratch {
        RouteScratch::default()
    }
}

impl RouteTable {
    /// Compiles a configuration with default [`BuildOptions`].
    ///
    /// # Errors
    ///
    /// Every problem in the configuration, each naming its virtual host,
    /// route and field.
    pub fn build(config: RouteConfig) -> Result<RouteTable, ConfigErrors> {
        RouteTable::build_with(config, &BuildOptions::default())
    }

    /// Parses YAML and compiles it.
    ///
    /// # Errors
    ///
    /// A parse error, or every problem in the configuration.
    pub fn from_yaml(text: &str) -> Result<RouteTable, ConfigErrors> {
        RouteTable::build(RouteConfig::from_yaml(text)?)
    }

    /// Compiles a configuration.
    ///
    /// # Errors
    ///
    /// Every problem in the configuration, each naming its virtual host,
    /// route and field.
    pub fn build_with(
        config: RouteConfig,
        opts: &BuildOptions,
    ) -> Result<RouteTable, ConfigErrors> {
        crate::build::build(config, opts)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn assemble(
        name: Box<str>,
        vhosts: Box<[VirtualHostEntry]>,
        domains: DomainIndex,
        config: &RouteConfig,
        request: Mutations,
        response: Mutations,
        internal_only: Box<[Box<str>]>,
        mirrors: Box<[MirrorSpec]>,
    ) -> RouteTable {
        let route_count = vhosts.iter().map(|v| v.routes.len()).sum();
        RouteTable {
            name,
            vhosts,
            domains,
            ignore_port: config.ignore_port_in_host_matching.unwrap_or(false),
            ignore_path_params: config
                .ignore_path_parameters_in_path_matching
                .unwrap_or(false),
            most_specific_wins: config.most_specific_header_mutations_wins.unwrap_or(false),
            alternate_host_header: config
                .alternate_header_for_host_matching
                .as_deref()
                .map(|h| h.to_ascii_lowercase().into()),
            host_norm: config.host_normalization.clone().unwrap_or_default(),
            request,
            response,
            internal_only,
            filters: filters(&config.typed_per_filter_config),
            cors: None,
            local_rate_limit: LocalLimitLevel::Absent,
            mirrors,
            metadata: config.metadata.clone().map(Box::new),
            route_count,
        }
    }

    /// The configuration's `metadata`, as given.
    pub fn metadata(&self) -> Option<&serde_json::Value> {
        self.metadata.as_deref()
    }

    /// The configuration-level `typed_per_filter_config` value for
    /// `filter`.
    pub fn filter_config(&self, filter: &str) -> Option<&serde_json::Value> {
        filter_config(&self.filters, filter)
    }

    /// The headers only internal requests may carry
    /// (`internal_only_headers`), lower case.
    pub fn internal_only_headers(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.internal_only.iter().map(|h| &**h)
    }

    /// The headers routing must not see on this request: the internal-only
    /// ones when the request is external (no `x-envoy-internal: true`).
    pub(crate) fn hidden_headers<R: RequestView + ?Sized>(&self, req: &R) -> &[Box<str>] {
        if self.internal_only.is_empty()
            || first_header_value(req, "x-envoy-internal").0 == Some(b"true")
        {
            &[]
        } else {
            &self.internal_only
        }
    }

    pub(crate) fn ignores_path_parameters(&self) -> bool {
        self.ignore_path_params
    }

    /// The configuration's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The virtual hosts, in configuration order.
    pub fn virtual_hosts(&self) -> &[VirtualHostEntry] {
        &self.vhosts
    }

    /// Every local rate limit of the table (configuration, virtual host,
    /// route and weighted cluster levels, in that order within each
    /// virtual host), for statistics: sum [`LocalRateLimiter::counts`] by
    /// [`LocalRateLimiter::stat_prefix`] to get Envoy's counters.
    pub fn local_rate_limiters(&self) -> impl Iterator<Item = &LocalRateLimiter> + '_ {
        let routes = self.vhosts.iter().flat_map(|v| {
            let entries = v.routes.iter().flat_map(|r| {
                let weighted: &[WeightedEntry] = match &r.action {
                    ActionSpec::Forward(ClusterSpec::Weighted(w)) => &w.entries,
                    _ => &[],
                };
                r.local_rate_limit
                    .limiter()
                    .into_iter()
                    .chain(weighted.iter().filter_map(|e| e.local_rate_limit.limiter()))
            });
            v.local_rate_limit.limiter().into_iter().chain(entries)
        });
        self.local_rate_limit.limiter().into_iter().chain(routes)
    }

    /// Carries `previous`'s local rate limit state into this table: each
    /// limiter configured in the same place (virtual host and route names,
    /// an unnamed route's being `routes[N]`, and the level and field) with
    /// the same configuration takes over the old one's tokens and counts,
    /// so that a reload does not hand every client a full bucket. A
    /// changed limiter starts full, as in Envoy, and keeps the counts of
    /// its place and `stat_prefix` (summed metrics do not drop); a new one
    /// starts full and from zero. A place that two limiters share in
    /// either table (names need not be unique) is carried nowhere. Each
    /// limiter takes over at most once, so carrying by hand and then
    /// installing, or installing a clone, counts nothing twice. Returns how
    /// many took over. [`Router`](crate::Router) does it on every reload
    /// and install; call it when swapping tables yourself. Tokens the old
    /// table hands out after this call are not seen by the new one.
    ///
    /// ```
    /// use std::time::Instant;
    /// use rauta_router::{LocalRateLimitVerdict, RateLimitContext, Request, RouteTable};
    ///
    /// let yaml = r#"
    /// virtual_hosts:
    ///   - name: api
    ///     domains: ["*"]
    ///     routes:
    ///       - name: login
    ///         match: {prefix: /login}
    ///         action: {cluster: api}
    ///         typed_per_filter_config:
    ///           envoy.filters.http.local_ratelimit:
    ///             stat_prefix: login
    ///             token_bucket: {max_tokens: 1, fill_interval: 3600s}
    ///             filter_enabled: {default_value: {numerator: 100}}
    ///             filter_enforced: {default_value: {numerator: 100}}
    /// "#;
    /// let req = Request::get("h", "/login");
    /// let check = |t: &RouteTable| {
    ///     let d = t.route(&req, 0);
    ///     let m = d.route().unwrap();
    ///     m.local_rate_limit(&req, &RateLimitContext::new(), Instant::now(), 0)
    ///         .unwrap()
    ///         .verdict()
    /// };
    /// let old = RouteTable::from_yaml(yaml).unwrap();
    /// assert_eq!(check(&old), LocalRateLimitVerdict::Allowed);
    /// let new = RouteTable::from_yaml(yaml).unwrap();
    /// assert_eq!(new.carry_local_rate_limits(&old), 1);
    /// // The one token was spent before the reload.
    /// assert_eq!(check(&new), LocalRateLimitVerdict::Limited);
    /// ```
    pub fn carry_local_rate_limits(&self, previous: &RouteTable) -> usize {
        // Each place with its limiter, or `None` when two share it (names
        // need not be unique): those are carried nowhere.
        fn places(t: &RouteTable) -> ahash::AHashMap<&str, Option<&LocalRateLimiter>> {
            let mut map = ahash::AHashMap::new();
            for l in t.local_rate_limiters() {
                map.entry(&*l.place)
                    .and_modify(|e| *e = None)
                    .or_insert(Some(l));
            }
            map
        }
        let old = places(previous);
        let now = std::time::Instant::now();
        let mut carried = 0;
        for (place, l) in places(self) {
            let (Some(l), Some(Some(o))) = (l, old.get(place)) else {
                continue;
            };
            // Counts follow the place (so that summed metrics do not drop
            // when a limit is edited); tokens only an unchanged limit.
            if l.stat_prefix == o.stat_prefix && l.carry_from(o, l.source == o.source, now) {
                carried += 1;
            }
        }
        carried
    }

    /// Number of routes over all virtual hosts.
    pub fn route_count(&self) -> usize {
        self.route_count
    }

    /// The route with this id.
    pub fn route_by_id(&self, id: RouteId) -> Option<(&VirtualHostEntry, &RouteEntry)> {
        self.vhosts.iter().find_map(|v| {
            let first = v.routes.first()?.id.0;
            let i = id.0.checked_sub(first)? as usize;
            v.routes.get(i).map(|r| (v, r))
        })
    }

    /// Selects the virtual host for a host name (as received, any case,
    /// with or without port). Allocates nothing for hosts up to 256 bytes.
    pub fn find_virtual_host(&self, host: &str) -> Option<&VirtualHostEntry> {
        self.find_virtual_host_parts(host, "", &mut Joined::new())
    }

    /// [`Self::find_virtual_host`] for the host `name` followed by `port`
    /// (empty, or a `:port` that holds the last ':'), lowering a copy in
    /// `buf` when it is not in lower case already.
    fn find_virtual_host_parts(
        &self,
        name: &str,
        port: &str,
        buf: &mut Joined,
    ) -> Option<&VirtualHostEntry> {
        let (name, port) = match (self.ignore_port, port) {
            (false, port) => (name, port),
            (true, "") => match port_colon(name) {
                Some(i) => (&name[..i], ""),
                None => (name, ""),
            },
            (true, _) => (name, ""),
        };
        // Most hosts arrive in lower case: looked up as they are.
        if port.is_empty() && !name.bytes().any(|b| b.is_ascii_uppercase()) {
            return self
                .domains
                .find(name.as_bytes())
                .map(|i| &self.vhosts[i as usize]);
        }
        let mut stack = [0u8; 256];
        let lower = lower_pair_into(name, port, &mut stack, buf);
        self.domains.find(lower).map(|i| &self.vhosts[i as usize])
    }

    /// Routes a request. `random_value` picks among weighted clusters (Envoy
    /// passes the stream id); pass a fresh random number per request.
    ///
    /// Allocates nothing unless the path policy changes the path, host
    /// normalization takes out a dot before a kept port, or a copy longer
    /// than 256 bytes is needed (a repeated header that a matcher joins, a
    /// mixed-case host); [`Self::route_in`] avoids all of these. Redirects
    /// and rejections build their answer.
    pub fn route<'a, R: RequestView + ?Sized>(
        &'a self,
        req: &'a R,
        random_value: u64,
    ) -> Decision<'a> {
        self.route_impl(req, random_value, false, None)
    }

    /// [`Self::route`], writing a changed path or host into `scratch`
    /// instead of new strings: with one scratch reused across requests,
    /// routing a request allocates nothing once the buffers have grown,
    /// whatever the path policy and host normalization change and however
    /// long the repeated headers that matchers join. The decision borrows
    /// `scratch` until it is dropped.
    ///
    /// ```
    /// use rauta_router::{Request, RouteScratch, RouteTable};
    ///
    /// let table = RouteTable::from_yaml(r#"
    /// virtual_hosts:
    ///   - name: v
    ///     domains: ["*"]
    ///     routes: [{name: admin, match: {path: /admin}, action: {cluster: c}}]
    /// "#).unwrap();
    /// let mut scratch = RouteScratch::new();
    /// for _ in 0..3 {
    ///     let req = Request::get("a.example", "/public/../admin");
    ///     let m = table.route_in(&req, 0, &mut scratch).into_route().unwrap();
    ///     assert_eq!((m.route_name(), m.path()), ("admin", "/admin"));
    /// }
    /// ```
    pub fn route_in<'a, R: RequestView + ?Sized>(
        &'a self,
        req: &'a R,
        random_value: u64,
        scratch: &'a mut RouteScratch,
    ) -> Decision<'a> {
        self.route_impl(req, random_value, false, Some(scratch))
    }

    /// The plain ordered scan over every route, kept as the oracle that
    /// any faster index must agree with.
    #[doc(hidden)]
    pub fn route_linear<'a, R: RequestView + ?Sized>(
        &'a self,
        req: &'a R,
        random_value: u64,
    ) -> Decision<'a> {
        self.route_impl(req, random_value, true, None)
    }

    fn route_impl<'a, R: RequestView + ?Sized>(
        &'a self,
        req: &'a R,
        random_value: u64,
        linear: bool,
        scratch: Option<&'a mut RouteScratch>,
    ) -> Decision<'a> {
        let mut own_joined = Joined::new();
        let (host_buf, path_buf, joined) = match scratch {
            Some(s) => (Some(&mut s.host), Some(&mut s.path), &mut s.header),
            None => (None, None, &mut own_joined),
        };
        let scheme = match req.scheme() {
            Some(s) if !s.is_empty() => s,
            _ => return Decision::NotFound { vhost: None },
        };
        // The host, after HCM-style normalization: what the route and its
        // redirects and rewrites see.
        let raw_host: Option<&'a str> = req.authority();
        let is_connect = req.method().eq_ignore_ascii_case("CONNECT");
        // CONNECT routes on the host without its port, which goes back on
        // the upstream Host (Envoy's strip_port_from_connect).
        let connect_port: Option<&'a str> = if is_connect {
            raw_host.and_then(|h| {
                let stripped = crate::authority::strip_host_port(h, None);
                (stripped.len() < h.len()).then(|| &h[stripped.len() + 1..])
            })
        } else {
            None
        };
        let host = raw_host.map(|h| normalize_host(h, &self.host_norm, connect_port.is_some()));
        let hidden = self.hidden_headers(req);
        let vhost = if self.domains.only_default() {
            self.domains.default.map(|i| &self.vhosts[i as usize])
        } else {
            // An alternate header only picks the virtual host (Envoy's
            // findVirtualHost); the request keeps its own host.
            let alternate = self.alternate_host_header.as_deref().and_then(|h| {
                if hidden.iter().any(|x| **x == *h) {
                    return None;
                }
                let v = first_header_value(req, h).0?;
                let v = std::str::from_utf8(v).ok()?;
                Some(normalize_host(v, &self.host_norm, is_connect))
            });
            match alternate.or(host) {
                Some((name, port)) => self.find_virtual_host_parts(name, port, joined),
                None => None,
            }
        };
        let Some(vhost) = vhost else {
            return Decision::NotFound { vhost: None };
        };
        let host: Cow<'a, str> = match (host, host_buf) {
            (None, _) => Cow::Borrowed(""),
            (Some((name, "")), _) => Cow::Borrowed(name),
            (Some((name, port)), Some(buf)) => {
                buf.clear();
                buf.push_str(name);
                buf.push_str(port);
                Cow::Borrowed(buf)
            }
            (Some((name, port)), None) => Cow::Owned([name, port].concat()),
        };
        let raw_path = req.path_and_query();
        // CONNECT targets carry no origin-form path to normalize.
        let policy = vhost.path_policy.as_ref().filter(|_| !is_connect);
        let (path, match_path) = match (raw_path, policy) {
            (None, _) => (Cow::Borrowed(""), None),
            (Some(p), None) => (Cow::Borrowed(p), Some(Cow::Borrowed(p))),
            (Some(p), Some(policy)) => match match path_buf {
                Some(buf) => policy.apply_in(p, buf),
                None => policy.apply(p),
            } {
                PathOutcome::Forward { path, match_path } => (path, Some(match_path)),
                PathOutcome::Redirect { location, status } => {
                    return Decision::PathRedirect {
                        vhost,
                        status,
                        location,
                    }
                }
                PathOutcome::Reject { status, reason } => {
                    return Decision::Reject {
                        vhost,
                        status,
                        reason,
                    }
                }
            },
        };
        // The path policy runs first, as the HCM normalizes :path before
        // any route config is read: a path it rejects or redirects never
        // gets the TLS redirect, and the redirect carries the normalized path.
        if let Some(tls) = vhost.require_tls {
            let external = || {
                first_header_value(req, "x-envoy-internal")
                    .0
                    .is_none_or(|v| v != b"true")
            };
            let needs = match tls {
                RequireTls::All => true,
                RequireTls::ExternalOnly => external(),
                _ => false,
            };
            if needs && !scheme.eq_ignore_ascii_case("https") {
                return Decision::TlsRedirect {
                    vhost,
                    location: format!("https://{host}{path}"),
                };
            }
        }
        let has_path = raw_path.is_some();
        let mut caps: Captures = [(0, 0); crate::template::MAX_VARIABLES];
        let found = {
            let mp = match_path.as_deref().map(|m| {
                // A path policy's match path has no query or fragment.
                let end = match policy {
                    Some(_) => m.len(),
                    None => crate::bytes::find_either(m.as_bytes(), b'?', b'#').unwrap_or(m.len()),
                };
                let m = &m[..end];
                if self.ignore_path_params {
                    crate::bytes::find(m.as_bytes(), b';').map_or(m, |i| &m[..i])
                } else {
                    m
                }
            });
            let full = if has_path { Some(&*path) } else { None };
            let ctx = MatchCtx {
                random: random_value,
                hidden,
                is_connect,
                full_path: full,
                match_path: mp,
                query: std::cell::Cell::new(None),
            };
            if linear {
                vhost
                    .routes
                    .iter()
                    .position(|r| r.matches(req, &ctx, &mut caps, joined, false))
            } else {
                let routes = &vhost.routes;
                vhost.route_index.find(mp, is_connect, |i| {
                    routes[i].matches(req, &ctx, &mut caps, joined, true)
                })
            }
        };
        let Some(ri) = found else {
            return Decision::NotFound { vhost: Some(vhost) };
        };
        let route = &vhost.routes[ri];
        let (cluster, entry) = pick_cluster(route, req, random_value, hidden);
        Decision::Route(RouteMatch {
            table: self,
            vhost,
            route,
            scheme,
            method: req.method(),
            hidden,
            host,
            path,
            match_path: match_path.unwrap_or(Cow::Borrowed("")),
            has_path,
            cluster,
            entry,
            connect_port,
        })
    }
}

fn first_value<'a, R: RequestView + ?Sized>(
    req: &'a R,
    name: &str,
    path: Option<&'a str>,
) -> &'a str {
    let mut first = None;
    for_each_value_of(req, name, path, &mut |v| {
        first.get_or_insert(v);
    });
    first
        .and_then(|b| std::str::from_utf8(b).ok())
        .unwrap_or("")
}

fn pick_cluster<'a, R: RequestView + ?Sized>(
    route: &'a RouteEntry,
    req: &'a R,
    random_value: u64,
    hidden: &[Box<str>],
) -> (&'a str, Option<u16>) {
    let seen = |h: &str| !hidden.iter().any(|x| **x == *h);
    match &route.action {
        ActionSpec::Forward(ClusterSpec::Named(c)) => (c, None),
        ActionSpec::Forward(ClusterSpec::Header(h)) if seen(h) => {
            (first_value(req, h, req.path_and_query()), None)
        }
        ActionSpec::Forward(ClusterSpec::Header(_)) => ("", None),
        ActionSpec::Forward(ClusterSpec::Weighted(w)) => {
            let mut value = random_value;
            if let Some(h) = w.header_name.as_deref().filter(|h| seen(h)) {
                if let (Some(v), 1) = first_header_value(req, h) {
                    if let Some(n) = std::str::from_utf8(v)
                        .ok()
                        .and_then(|s| s.parse::<u64>().ok())
                    {
                        value = n;
                    }
                }
            }
            let target = value % w.total;
            let mut acc = 0u64;
            for (i, e) in w.entries.iter().enumerate() {
                acc += u64::from(e.weight);
                if target < acc {
                    let name = match &e.cluster {
                        ClusterName::Named(n) => &**n,
                        ClusterName::Header(h) => first_value(req, h, req.path_and_query()),
                    };
                    return (name, Some(i as u16));
                }
            }
            ("", None)
        }
        _ => ("", None),
    }
}

impl<'a> RouteMatch<'a> {
    /// The virtual host.
    pub fn virtual_host(&self) -> &'a VirtualHostEntry {
        self.vhost
    }

    /// The route.
    pub fn route(&self) -> &'a RouteEntry {
        self.route
    }

    /// The route's id.
    pub fn route_id(&self) -> RouteId {
        self.route.id
    }

    /// The route's name.
    pub fn route_name(&self) -> &'a str {
        &self.route.name
    }

    /// The table the route is in.
    pub(crate) fn table(&self) -> &'a RouteTable {
        self.table
    }

    /// The `typed_per_filter_config` value for `filter` that applies to
    /// this request: the chosen weighted-cluster entry's, else the
    /// route's, else the virtual host's, else the configuration's (the
    /// most specific level wins, as in Envoy).
    ///
    /// ```
    /// use rauta_router::{Request, RouteTable};
    ///
    /// let table = RouteTable::from_yaml(r#"
    /// typed_per_filter_config: {auth: {mode: strict}}
    /// virtual_hosts:
    ///   - name: api
    ///     domains: ["*"]
    ///     routes:
    ///       - name: public
    ///         match: {prefix: /public}
    ///         action: {cluster: web}
    ///         typed_per_filter_config: {auth: {mode: anonymous}}
    ///       - {name: rest, match: {prefix: /}, action: {cluster: web}}
    /// "#).unwrap();
    /// let mode = |path| {
    ///     let req = Request::get("h", path);
    ///     let d = table.route(&req, 0);
    ///     d.route().unwrap().per_filter_config("auth").unwrap()["mode"].clone()
    /// };
    /// assert_eq!(mode("/public/x"), "anonymous");
    /// assert_eq!(mode("/orders"), "strict");
    /// ```
    pub fn per_filter_config(&self, filter: &str) -> Option<&'a serde_json::Value> {
        self.per_filter_config_inner(filter)
    }

    /// The request mirrors that apply to this request (Envoy's
    /// `request_mirror_policies`): the route's list, else the virtual
    /// host's, else the configuration's; of it, the policies whose
    /// `runtime_fraction` takes `random_value` (the one given to `route`,
    /// or a fresh one)
    /// and, for `cluster_header` ones, whose header names a cluster in
    /// `req`. Only forwarding routes mirror. A proxy sends each copy with
    /// the upstream path and headers, the Host from [`shadow_host`] when
    /// [`Mirror::shadow_suffix`] is set, and drops the answer.
    pub fn mirrors<'s, R: RequestView + ?Sized>(
        &'s self,
        req: &'s R,
        random_value: u64,
    ) -> impl Iterator<Item = Mirror<'s>> + 's {
        let list: &'a [MirrorSpec] = if !matches!(self.route.action, ActionSpec::Forward(_)) {
            &[]
        } else if !self.route.mirrors.is_empty() {
            &self.route.mirrors
        } else if !self.vhost.mirrors.is_empty() {
            &self.vhost.mirrors
        } else {
            &self.table.mirrors
        };
        let hidden = self.hidden;
        list.iter().filter_map(move |m| {
            if let Some((n, d)) = m.fraction {
                if random_value % d >= u64::from(n) {
                    return None;
                }
            }
            let cluster: &'s str = match &m.cluster {
                ClusterName::Named(c) => c,
                ClusterName::Header(h) if !hidden.iter().any(|x| **x == **h) => {
                    let v = first_header_value(req, h).0?;
                    std::str::from_utf8(v).ok().filter(|c| !c.is_empty())?
                }
                ClusterName::Header(_) => return None,
            };
            Some(Mirror {
                cluster,
                shadow_suffix: m.shadow_suffix,
            })
        })
    }

    /// The CORS policies that apply to this request (Envoy's CORS filter),
    /// most specific first; `None` when there are none or the route does
    /// not forward (redirects and direct responses get no CORS headers, as
    /// in Envoy). See [`Cors`] for how the levels combine and
    /// [`Cors::check`] for what to do with the request.
    ///
    /// ```
    /// use rauta_router::{CorsCheck, Request, RouteTable};
    ///
    /// let table = RouteTable::from_yaml(r#"
    /// virtual_hosts:
    ///   - name: api
    ///     domains: ["*"]
    ///     cors:
    ///       allow_origin_string_match: [{exact: "https://app.example"}]
    ///       allow_methods: "GET, POST"
    ///       max_age: "600"
    ///     routes:
    ///       - {match: {prefix: /}, action: {cluster: api}}
    /// "#).unwrap();
    /// let preflight = Request::new("OPTIONS", "api.example", "/orders")
    ///     .header("origin", "https://app.example")
    ///     .header("access-control-request-method", "POST");
    /// let d = table.route(&preflight, 0);
    /// let cors = d.route().unwrap().cors().unwrap();
    /// let CorsCheck::Preflight(answer) = cors.check(&preflight, 0) else { panic!() };
    /// let headers: Vec<_> = answer.headers().collect();
    /// assert_eq!(headers, [
    ///     ("access-control-allow-origin", "https://app.example"),
    ///     ("access-control-allow-methods", "GET, POST"),
    ///     ("access-control-max-age", "600"),
    /// ]);
    /// ```
    pub fn cors(&self) -> Option<Cors<'a>> {
        if !matches!(self.route.action, ActionSpec::Forward(_))
            || self.filter_disabled(crate::cors::CORS_FILTER) == Some(true)
        {
            return None;
        }
        let at = |l: &'a CorsLevel| l.as_deref();
        let weighted = self.weighted().and_then(|e| at(&e.cors));
        let route = at(&self.route.cors);
        let vhost = at(&self.vhost.cors);
        let table = at(&self.table.cors);
        let filter = |l: Option<&'a CorsAt>| l.and_then(|c| c.filter.as_ref());
        Cors::new([
            filter(weighted),
            filter(route),
            filter(vhost),
            filter(table),
        ])
        .or_else(|| {
            let legacy = |l: Option<&'a CorsAt>| l.and_then(|c| c.legacy.as_ref());
            Cors::new([legacy(route), legacy(vhost), None, None])
        })
    }

    /// The rate limit descriptors for this request at `ctx.stage`, as
    /// Envoy's rate limit filter builds them: the route's `rate_limits`,
    /// then the virtual host's when the route has none (or, with the
    /// route's `include_vh_rate_limits` or the
    /// `envoy.filters.http.ratelimit` per-filter config's `vh_rate_limits:
    /// INCLUDE`, always; `IGNORE`: never). Each `rate_limits` element gives
    /// one descriptor unless one of its actions drops it. Redirects and
    /// direct responses have none.
    ///
    /// ```
    /// use rauta_router::{RateLimitContext, Request, RouteTable};
    ///
    /// let table = RouteTable::from_yaml(r#"
    /// virtual_hosts:
    ///   - name: api
    ///     domains: ["*"]
    ///     rate_limits:
    ///       - actions: [{remote_address: {}}]
    ///     routes:
    ///       - match: {prefix: /login}
    ///         action:
    ///           cluster: auth
    ///           rate_limits:
    ///             - actions:
    ///                 - {generic_key: {descriptor_value: login}}
    ///                 - {request_headers: {header_name: x-tenant, descriptor_key: tenant}}
    ///       - {match: {prefix: /}, action: {cluster: api}}
    /// "#).unwrap();
    /// let ctx = RateLimitContext::new().remote_address("198.18.0.9".parse().unwrap());
    /// let entries = |req: &Request| {
    ///     let d = table.route(req, 0);
    ///     let m = d.route().unwrap();
    ///     m.rate_limit_descriptors(req, &ctx).into_iter().map(|d| d.entries).collect::<Vec<_>>()
    /// };
    /// let login = Request::get("h", "/login").header("x-tenant", "acme");
    /// assert_eq!(entries(&login), [[
    ///     ("generic_key".to_string(), "login".to_string()),
    ///     ("tenant".into(), "acme".into()),
    /// ]]);
    /// // Without the header the descriptor is dropped, and the route's
    /// // rate limits still override the virtual host's.
    /// assert!(entries(&Request::get("h", "/login")).is_empty());
    /// assert_eq!(entries(&Request::get("h", "/x")), [[
    ///     ("remote_address".to_string(), "198.18.0.9".to_string()),
    /// ]]);
    /// ```
    pub fn rate_limit_descriptors<R: RequestView + ?Sized>(
        &self,
        req: &R,
        ctx: &RateLimitContext<'_>,
    ) -> Vec<RateLimitDescriptor> {
        if self.filter_disabled(RATE_LIMIT_FILTER) == Some(true) {
            return Vec::new();
        }
        // Read as the load checked it (crate::local_ratelimit::enum_index).
        let option = self
            .per_filter_config(RATE_LIMIT_FILTER)
            .and_then(|c| c.get("vh_rate_limits"))
            .and_then(|o| crate::local_ratelimit::enum_index(o, &VhRateLimits::NAMES));
        let vh = VhRateLimits::from_index(option.unwrap_or(0));
        self.descriptors_for(req, ctx, vh, false)
    }

    /// The descriptors of the route's (and, as `vh` says, the virtual
    /// host's) `rate_limits` at `ctx.stage`; without those that have a
    /// `disable_key` when `skip_disable_keys` (as the local filter does).
    fn descriptors_for<R: RequestView + ?Sized>(
        &self,
        req: &R,
        ctx: &RateLimitContext<'_>,
        vh: VhRateLimits,
        skip_disable_keys: bool,
    ) -> Vec<RateLimitDescriptor> {
        let mut out = Vec::new();
        if !matches!(self.route.action, ActionSpec::Forward(_)) {
            return out;
        }
        let own = self.route.rate_limits.as_deref();
        let own_list: &[RateLimitSpec] = own.map_or(&[], |r| &r.list);
        let vhost = if own.is_some_and(|r| r.include_vh) {
            true
        } else {
            match vh {
                VhRateLimits::Include => true,
                VhRateLimits::Ignore => false,
                VhRateLimits::Override => own_list.is_empty(),
            }
        };
        let inputs = Inputs {
            req,
            path: self.has_path.then_some(&*self.path),
            hidden: self.hidden,
            cluster: self.cluster,
            metadata: self.route.metadata.as_deref(),
            ctx,
        };
        let vlist: &[RateLimitSpec] = if vhost { &self.vhost.rate_limits } else { &[] };
        for spec in own_list.iter().chain(vlist) {
            if spec.stage == ctx.stage && (!skip_disable_keys || spec.disable_key.is_empty()) {
                out.extend(spec.descriptor(&inputs));
            }
        }
        out
    }

    /// The local rate limit that applies to this request (Envoy's
    /// `envoy.filters.http.local_ratelimit` per-route configuration: the
    /// weighted cluster entry's, else the route's, the virtual host's or the
    /// configuration's `typed_per_filter_config`), or `None` when no level
    /// has one or a `FilterConfig` disables the filter here.
    pub fn local_rate_limiter(&self) -> Option<&'a LocalRateLimiter> {
        // `filter_disabled` for this filter, from the compiled levels.
        let disabled = self
            .route
            .local_rate_limit
            .disabled()
            .or_else(|| self.vhost.local_rate_limit.disabled())
            .or_else(|| self.table.local_rate_limit.disabled());
        if disabled == Some(true) {
            return None;
        }
        self.weighted()
            .and_then(|e| e.local_rate_limit.limiter())
            .or_else(|| self.route.local_rate_limit.limiter())
            .or_else(|| self.vhost.local_rate_limit.limiter())
            .or_else(|| self.table.local_rate_limit.limiter())
    }

    /// Runs the local rate limit filter on this request at `now`, as
    /// Envoy's does: `filter_enabled` draws with `random_value` (a request
    /// it does not take is [`NotEnabled`](crate::LocalRateLimitVerdict::NotEnabled)),
    /// the request's descriptors (the route's `rate_limits` at the
    /// limiter's `stage`, rate limits with a `disable_key` left out) are
    /// computed when the limiter has descriptors of its own, the matching
    /// buckets and the default bucket give a token or refuse, and a refused
    /// request is enforced when `filter_enforced` takes it (an independent
    /// draw from `random_value`). `None` when no local rate limit applies.
    ///
    /// Buckets are shared by every request that reaches the same
    /// configuration level, across threads, without locks.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use rauta_router::{LocalRateLimitVerdict, RateLimitContext, Request, RouteTable};
    ///
    /// let table = RouteTable::from_yaml(r#"
    /// virtual_hosts:
    ///   - name: api
    ///     domains: ["*"]
    ///     routes:
    ///       - match: {prefix: /login}
    ///         action: {cluster: auth}
    ///         typed_per_filter_config:
    ///           envoy.filters.http.local_ratelimit:
    ///             stat_prefix: login
    ///             token_bucket: {max_tokens: 2, tokens_per_fill: 1, fill_interval: 1s}
    ///             filter_enabled: {default_value: {numerator: 100}}
    ///             filter_enforced: {default_value: {numerator: 100}}
    ///       - {match: {prefix: /}, action: {cluster: api}}
    /// "#).unwrap();
    /// let req = Request::get("h", "/login");
    /// let t0 = Instant::now();
    /// let verdict = |at: Instant| {
    ///     let d = table.route(&req, 0);
    ///     let m = d.route().unwrap();
    ///     m.local_rate_limit(&req, &RateLimitContext::new(), at, 0).unwrap().verdict()
    /// };
    /// assert_eq!(verdict(t0), LocalRateLimitVerdict::Allowed);
    /// assert_eq!(verdict(t0), LocalRateLimitVerdict::Allowed);
    /// assert_eq!(verdict(t0), LocalRateLimitVerdict::Limited);
    /// // One token a second comes back.
    /// assert_eq!(verdict(t0 + Duration::from_secs(1)), LocalRateLimitVerdict::Allowed);
    /// ```
    pub fn local_rate_limit<R: RequestView + ?Sized>(
        &self,
        req: &R,
        ctx: &RateLimitContext<'_>,
        now: std::time::Instant,
        random_value: u64,
    ) -> Option<LocalRateLimitOutcome<'_>> {
        let limiter = self.local_rate_limiter()?;
        if !limiter.enabled(random_value) {
            return Some(LocalRateLimitOutcome {
                limiter,
                verdict: crate::LocalRateLimitVerdict::NotEnabled,
                headers: None,
                route: self,
            });
        }
        let descriptors = if limiter.has_descriptors() {
            let ctx = RateLimitContext {
                stage: limiter.stage,
                ..*ctx
            };
            self.descriptors_for(req, &ctx, limiter.vh_rate_limits, true)
        } else {
            Vec::new()
        };
        let (verdict, headers) =
            crate::local_ratelimit::decide(limiter, &descriptors, now, random_value);
        Some(LocalRateLimitOutcome {
            limiter,
            verdict,
            headers,
            route: self,
        })
    }

    /// The request's timeouts on this route, as Envoy works them out:
    ///
    /// - the upstream (global) timeout is the route's `timeout_ms`; for a
    ///   gRPC request on a route with `max_grpc_timeout_ms`, its
    ///   `grpc-timeout` less `grpc_timeout_offset_ms`, capped at
    ///   `max_grpc_timeout_ms`; on a route with `max_stream_duration`, none
    ///   (the stream's lifetime bounds the exchange instead);
    /// - with [`TimeoutOptions::envoy_headers`](crate::TimeoutOptions::envoy_headers), a trusted client's
    ///   `x-envoy-upstream-rq-timeout-ms`,
    ///   `x-envoy-upstream-rq-per-try-timeout-ms` and
    ///   `x-envoy-hedge-on-per-try-timeout` replace the route's values
    ///   (`x-envoy-expected-rq-timeout-ms` first, with
    ///   [`TimeoutOptions::respect_expected_rq_timeout`](crate::TimeoutOptions::respect_expected_rq_timeout));
    /// - the per-try timeout comes from the retry policy and is dropped
    ///   when it is not shorter than the global one;
    /// - the stream's lifetime is the route's `max_stream_duration`, or the
    ///   request's `grpc-timeout` when the route sets
    ///   `grpc_timeout_header_max_ms` (capped, less the offset), else the
    ///   listener's ([`TimeoutOptions::listener_max_stream_duration`](crate::TimeoutOptions::listener_max_stream_duration)).
    ///
    /// [`Timeouts::apply_request_headers`](crate::Timeouts::apply_request_headers) then edits the upstream request
    /// as Envoy's router does. Nothing is allocated.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rauta_router::{Request, RouteTable, TimeoutOptions};
    ///
    /// let table = RouteTable::from_yaml(r#"
    /// virtual_hosts:
    ///   - name: api
    ///     domains: ["*"]
    ///     routes:
    ///       - match: {prefix: /grpc/}
    ///         action:
    ///           cluster: backend
    ///           max_stream_duration:
    ///             max_stream_duration_ms: 60000
    ///             grpc_timeout_header_max_ms: 10000
    ///       - match: {prefix: /}
    ///         action:
    ///           cluster: backend
    ///           timeout_ms: 3000
    ///           retry_policy: {retry_on: 5xx, per_try_timeout_ms: 1000}
    /// "#).unwrap();
    /// let opts = TimeoutOptions::new();
    ///
    /// let req = Request::get("h", "/orders");
    /// let t = table.route(&req, 0).route().unwrap().timeouts(&req, &opts);
    /// assert_eq!(t.global, Some(Duration::from_secs(3)));
    /// assert_eq!(t.per_try, Some(Duration::from_secs(1)));
    /// assert_eq!(t.stream, None);
    ///
    /// let grpc = Request::new("POST", "h", "/grpc/pkg.Svc/Call")
    ///     .header("content-type", "application/grpc")
    ///     .header("grpc-timeout", "30S");
    /// let t = table.route(&grpc, 0).route().unwrap().timeouts(&grpc, &opts);
    /// assert_eq!(t.global, None);
    /// // The client's 30 s deadline, capped at 10 s, sets the stream's lifetime.
    /// assert_eq!(t.stream, Some(Duration::from_secs(10)));
    /// assert_eq!(t.grpc_timeout, Some(Duration::from_secs(10)));
    /// ```
    pub fn timeouts<R: RequestView + ?Sized>(
        &self,
        req: &R,
        opts: &crate::TimeoutOptions,
    ) -> crate::Timeouts {
        let r = self.route;
        let retry = r.retry.as_ref();
        crate::timeouts::RouteTimeouts {
            timeout: std::time::Duration::from_millis(r.timeout_ms),
            per_try: std::time::Duration::from_millis(retry.map_or(0, |p| p.per_try_timeout_ms)),
            per_try_idle: retry
                .and_then(|p| p.per_try_idle_timeout_ms)
                .map(std::time::Duration::from_millis),
            hedge_on_per_try_timeout: r.hedge.as_ref().is_some_and(|h| h.hedge_on_per_try_timeout),
            rules: r.timeout_rules.as_deref(),
            grpc: self.has_path && crate::matchers::is_grpc(req, self.hidden),
            hidden: self.hidden,
        }
        .compute(req, opts)
    }

    /// Whether `filter` is turned off for this request (Envoy's
    /// `filterDisabled`): the route's, else the virtual host's, else the
    /// configuration's `typed_per_filter_config` entry for it decides.
    /// `Some(true)` for an `envoy.config.route.v3.FilterConfig` with
    /// `disabled: true`, `Some(false)` for any other entry (a filter that
    /// is configured is on), `None` when no level names it (the proxy's
    /// own default applies).
    ///
    /// ```
    /// use rauta_router::{Request, RouteTable};
    ///
    /// let table = RouteTable::from_yaml(r#"
    /// typed_per_filter_config: {authz: {policy: strict}}
    /// virtual_hosts:
    ///   - name: api
    ///     domains: ["*"]
    ///     routes:
    ///       - match: {path: /healthz}
    ///         action: {cluster: api}
    ///         typed_per_filter_config:
    ///           authz:
    ///             "@type": type.googleapis.com/envoy.config.route.v3.FilterConfig
    ///             disabled: true
    ///       - {match: {prefix: /}, action: {cluster: api}}
    /// "#).unwrap();
    /// let disabled = |path| {
    ///     let req = Request::get("h", path);
    ///     let d = table.route(&req, 0);
    ///     d.route().unwrap().filter_disabled("authz")
    /// };
    /// assert_eq!(disabled("/healthz"), Some(true));
    /// assert_eq!(disabled("/orders"), Some(false));
    /// ```
    pub fn filter_disabled(&self, filter: &str) -> Option<bool> {
        filter_disabled_at(&self.route.filters, filter)
            .or_else(|| filter_disabled_at(&self.vhost.filters, filter))
            .or_else(|| filter_disabled_at(&self.table.filters, filter))
    }

    fn per_filter_config_inner(&self, filter: &str) -> Option<&'a serde_json::Value> {
        self.weighted()
            .and_then(|e| filter_config(&e.filters, filter))
            .or_else(|| filter_config(&self.route.filters, filter))
            .or_else(|| filter_config(&self.vhost.filters, filter))
            .or_else(|| filter_config(&self.table.filters, filter))
    }

    /// What to do.
    pub fn action(&self) -> ActionKind<'a> {
        match &self.route.action {
            ActionSpec::Forward(_) => ActionKind::Forward {
                cluster: self.cluster,
            },
            ActionSpec::Redirect(r) => ActionKind::Redirect { status: r.status },
            ActionSpec::Direct { status, body } => ActionKind::DirectResponse {
                status: *status,
                body,
            },
        }
    }

    /// The chosen cluster, for forwarding routes.
    pub fn cluster(&self) -> Option<&'a str> {
        match self.route.action {
            ActionSpec::Forward(_) => Some(self.cluster),
            _ => None,
        }
    }

    /// Index of the chosen weighted-cluster entry, if any.
    pub fn weighted_entry(&self) -> Option<usize> {
        self.entry.map(usize::from)
    }

    /// The request host after host normalization (before host rewrites).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The path and query that were matched, after the path policy.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The path the route conditions compared against.
    pub fn match_path(&self) -> &str {
        &self.match_path
    }

    /// The upstream path after the route's rewrite, or `None` when the route
    /// does not rewrite. The query (and anything after it) is kept.
    pub fn rewritten_path(&self) -> Option<String> {
        let rw = self.route.rewrite.as_ref()?;
        if !self.has_path {
            return None;
        }
        Some(self.apply_rewrite(rw))
    }

    fn matched_len(&self) -> usize {
        match &self.route.path {
            PathSpec::Prefix(s) | PathSpec::Exact(s) | PathSpec::Separated(s) => s.len(),
            _ => split_query(&self.path).0.len(),
        }
    }

    fn apply_rewrite(&self, rw: &PathRewrite) -> String {
        let path = &*self.path;
        match rw {
            PathRewrite::Prefix(to) => {
                let n = forward_offset(path, &self.match_path, self.matched_len());
                let rest = path.get(n..).unwrap_or("");
                let mut out = String::with_capacity(to.len() + rest.len());
                out.push_str(to);
                out.push_str(rest);
                out
            }
            PathRewrite::Regex(rs) => {
                let (p, q) = split_query(path);
                let mut out = rs.replace_all(p).into_owned();
                out.push_str(q);
                out
            }
            PathRewrite::Template(t) => {
                let (_, q) = split_query(path);
                let mut out = String::with_capacity(path.len());
                let mp = split_query(&self.match_path).0;
                // The variables, from the path the route matched (a route
                // decision does not keep them: most routes never use them).
                let mut caps: Captures = [(0, 0); crate::template::MAX_VARIABLES];
                let matched = if self.table.ignore_path_params {
                    mp.find(';').map_or(mp, |i| &mp[..i])
                } else {
                    mp
                };
                self.route.path_matches(matched, &mut caps);
                t.expand(mp, &caps, &mut out);
                out.push_str(q);
                out
            }
        }
    }

    /// The Location of a redirect route (`None` for other actions, and when
    /// the request has no `:path`, as Envoy sends none then).
    pub fn redirect_location(&self) -> Option<String> {
        if !self.has_path {
            return None;
        }
        self.computed_redirect_uri()
    }

    /// The redirect URI as Envoy's `newUri()` computes it, even for requests
    /// without a path.
    pub fn computed_redirect_uri(&self) -> Option<String> {
        let ActionSpec::Redirect(r) = &self.route.action else {
            return None;
        };
        let scheme: &str = match (&r.scheme, false) {
            (Some(s), _) => s,
            (None, _) => self.scheme,
        };
        let scheme_changed = !scheme.eq_ignore_ascii_case(self.scheme);
        let mut host: String = match &r.host {
            Some(h) => h.to_string(),
            None => self.host.to_string(),
        };
        if let Some(port) = r.port {
            if let Some(i) = port_colon(&host) {
                host.truncate(i);
            }
            host.push(':');
            host.push_str(&port.to_string());
        } else if r.host.is_none() && scheme_changed {
            let default = if self.scheme.eq_ignore_ascii_case("http") {
                Some(":80")
            } else if self.scheme.eq_ignore_ascii_case("https") {
                Some(":443")
            } else {
                None
            };
            if let (Some(d), Some(i)) = (default, port_colon(&host)) {
                if &host[i..] == d {
                    host.truncate(i);
                }
            }
        }
        let (req_path, req_query) = split_query_only(&self.path);
        let mut path = match (&r.path, &r.rewrite) {
            (Some(p), _) => {
                if p.contains('?') || r.strip_query {
                    p.to_string()
                } else {
                    format!("{p}{req_query}")
                }
            }
            (None, Some(rw)) => {
                let out = self.apply_rewrite(rw);
                if r.strip_query {
                    split_query_only(&out).0.to_string()
                } else {
                    out
                }
            }
            (None, None) => {
                if r.strip_query {
                    req_path.to_string()
                } else {
                    self.path.to_string()
                }
            }
        };
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        Some(format!("{scheme}://{host}{path}"))
    }

    /// The status to send when the chosen cluster does not exist.
    pub fn cluster_not_found_status(&self) -> u16 {
        self.route.cluster_not_found_status
    }

    /// The Location Envoy adds to a direct response with status 201 or 3xx:
    /// the request's own URI (scheme, host and path after rewrites).
    pub fn direct_response_location(&self) -> Option<String> {
        let ActionSpec::Direct { status, .. } = &self.route.action else {
            return None;
        };
        if !(*status == 201 || (300..400).contains(status)) || !self.has_path {
            return None;
        }
        let path = self
            .rewritten_path()
            .unwrap_or_else(|| self.path.to_string());
        Some(format!("{}://{}{}", self.scheme, self.host, path))
    }

    /// Applies the request header mutations (weighted entry, then route,
    /// virtual host and configuration in Envoy's order), the path rewrite
    /// (setting `x-envoy-original-path`) and the host rewrite (setting
    /// `x-envoy-original-host`, and `x-forwarded-host` when configured), and
    /// returns the upstream path and host.
    ///
    /// Header values with `%COMMAND%`s about the connection (addresses,
    /// protocol, start time) format as empty here: pass what the proxy
    /// knows through [`apply_request_with`](Self::apply_request_with).
    pub fn apply_request<H: HeaderMapMut + ?Sized>(&self, headers: &mut H) -> Upstream<'_> {
        self.apply_request_with(headers, &FormatContext::new())
    }

    /// [`apply_request`](Self::apply_request), formatting header values'
    /// `%COMMAND%`s with `ctx` (see [`FormatContext`]): say,
    /// `%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%` in an `x-real-ip` the
    /// route adds.
    pub fn apply_request_with<H: HeaderMapMut + ?Sized>(
        &self,
        headers: &mut H,
        ctx: &FormatContext<'_>,
    ) -> Upstream<'_> {
        // Envoy's connection manager removes them before any filter runs,
        // so a route's own mutations may add them back.
        for h in self.hidden {
            headers.remove(h);
        }
        self.apply_levels(
            headers,
            Side::Request,
            ctx,
            self.weighted().map(|e| &e.request),
            [
                &self.route.request,
                &self.vhost.request,
                &self.table.request,
            ],
        );
        let path = match self.rewritten_path() {
            Some(p) => {
                headers.set("x-envoy-original-path", &self.path);
                Cow::Owned(p)
            }
            None => Cow::Borrowed(&*self.path),
        };
        let new_host: Option<String> = match (
            self.weighted().and_then(|e| e.host_rewrite.as_deref()),
            &self.route.host_rewrite,
        ) {
            (Some(h), _) => Some(h.to_owned()),
            (None, Some(HostRewrite::Literal(h))) => Some(h.to_string()),
            (None, Some(HostRewrite::Header(name))) => headers
                .first(name)
                .filter(|v| !v.is_empty())
                .map(str::to_owned),
            (None, Some(HostRewrite::PathRegex(rs))) => {
                let (p, _) = split_query(&self.path);
                Some(rs.replace_all(p).into_owned())
            }
            (None, Some(HostRewrite::Auto)) | (None, None) => None,
        };
        let host = match new_host {
            Some(h) => {
                headers.set("x-envoy-original-host", &self.host);
                if self.route.append_x_forwarded_host {
                    headers.append("x-forwarded-host", &self.host);
                }
                Cow::Owned(h)
            }
            // A CONNECT target's port goes back on, as Envoy does.
            None => match self.connect_port {
                Some(port) => Cow::Owned(format!("{}:{port}", self.host)),
                None => Cow::Borrowed(&*self.host),
            },
        };
        Upstream { path, host }
    }

    /// Whether the route asks the proxy to set Host to the chosen endpoint's
    /// host name (`auto_host_rewrite`).
    pub fn auto_host_rewrite(&self) -> bool {
        matches!(self.route.host_rewrite, Some(HostRewrite::Auto))
    }

    /// Whether a header value the route's mutations add (request or
    /// response side, any level) has `%COMMAND%`s to format: when none
    /// has, [`apply_request`](Self::apply_request) and
    /// [`apply_response`](Self::apply_response) do what the `_with` forms
    /// do, and a proxy need not gather a [`FormatContext`] (a clock read
    /// for `%START_TIME%`, say).
    pub fn formats_header_values(&self) -> bool {
        let level = |m: &Mutations| m.formats;
        self.weighted()
            .is_some_and(|e| level(&e.request) || level(&e.response))
            || [
                &self.route.request,
                &self.route.response,
                &self.vhost.request,
                &self.vhost.response,
                &self.table.request,
                &self.table.response,
            ]
            .into_iter()
            .any(level)
    }

    /// Whether [`apply_response`](Self::apply_response) changes anything:
    /// when it does not, a proxy can pass an upstream's response fields on
    /// as they came, without building a header map for them.
    pub fn edits_response(&self) -> bool {
        self.weighted().is_some_and(|e| !e.response.is_empty())
            || !self.route.response.is_empty()
            || !self.vhost.response.is_empty()
            || !self.table.response.is_empty()
    }

    /// Applies the response header mutations (weighted entry, then route,
    /// virtual host and configuration in Envoy's order). Call it for
    /// upstream responses, redirects and direct responses alike.
    pub fn apply_response<H: HeaderMapMut + ?Sized>(&self, headers: &mut H) {
        self.apply_response_with(headers, &FormatContext::new())
    }

    /// [`apply_response`](Self::apply_response), formatting header values'
    /// `%COMMAND%`s with `ctx`: `%RESP(...)%` reads the response being
    /// edited, `%REQ(...)%` the request given by
    /// [`FormatContext::request`] (its pseudo-headers and `host` come from
    /// the route decision), `%UPSTREAM_HOST%` the endpoint given by
    /// [`FormatContext::upstream_remote_address`].
    pub fn apply_response_with<H: HeaderMapMut + ?Sized>(
        &self,
        headers: &mut H,
        ctx: &FormatContext<'_>,
    ) {
        self.apply_levels(
            headers,
            Side::Response,
            ctx,
            self.weighted().map(|e| &e.response),
            [
                &self.route.response,
                &self.vhost.response,
                &self.table.response,
            ],
        );
    }

    /// The weighted entry's mutations first, then route, virtual host and
    /// configuration (or the reverse with `most_specific_header_mutations_wins`).
    fn apply_levels<H: HeaderMapMut + ?Sized>(
        &self,
        headers: &mut H,
        side: Side,
        ctx: &FormatContext<'_>,
        entry: Option<&Mutations>,
        levels: [&Mutations; 3],
    ) {
        let facts = self.facts();
        if let Some(e) = entry {
            e.apply(headers, side, &facts, ctx);
        }
        if self.table.most_specific_wins {
            levels
                .iter()
                .rev()
                .for_each(|m| m.apply(headers, side, &facts, ctx));
        } else {
            levels
                .iter()
                .for_each(|m| m.apply(headers, side, &facts, ctx));
        }
    }

    /// What header value formatting knows of the decision.
    pub(crate) fn facts(&self) -> RouteFacts<'_> {
        RouteFacts {
            route_name: if self.route.named {
                &self.route.name
            } else {
                ""
            },
            cluster: self.cluster(),
            method: self.method,
            path: self.has_path.then_some(&*self.path),
            authority: &self.host,
            scheme: self.scheme,
        }
    }

    fn weighted(&self) -> Option<&'a WeightedEntry> {
        match (&self.route.action, self.entry) {
            (ActionSpec::Forward(ClusterSpec::Weighted(w)), Some(i)) => {
                w.entries.get(usize::from(i))
            }
            _ => None,
        }
    }
}

/// Where the first `n` bytes of the match path end in the forwarded path.
/// They differ only when `;params` were stripped for matching (each
/// segment cut at its first `;`, and, when merging slashes, segments the
/// cut leaves empty dropped with their '/'); then the offset walks the
/// segments as the stripping did, so a prefix rewrite replaces exactly
/// what the route matched, a matched segment's parameters included.
fn forward_offset(path: &str, match_path: &str, n: usize) -> usize {
    let (p, _) = split_query(path);
    let (m, _) = split_query(match_path);
    if p.len() == m.len() || !p.starts_with('/') {
        return n.min(path.len());
    }
    let merge = param_segments(p, true)
        .map(|(_, _, kept, shown)| shown * (1 + kept))
        .sum::<usize>()
        == m.len();
    let mut out = 0usize;
    for (slash, end, kept, _) in param_segments(p, merge).filter(|s| s.3 == 1) {
        if n <= out + 1 + kept {
            let k = n - out;
            return if k == 1 + kept { end } else { slash + k };
        }
        out += 1 + kept;
    }
    p.len()
}

/// The segments of `p` (which starts with '/') as the `;params` stripping
/// sees them: (index of the '/' before it, its end, length before its
/// first `;`, 1 if the stripped path shows it and 0 if merging drops it).
fn param_segments(p: &str, merge: bool) -> impl Iterator<Item = (usize, usize, usize, usize)> + '_ {
    let b = p.as_bytes();
    let mut slash = Some(0usize);
    std::iter::from_fn(move || {
        let at = slash?;
        let start = at + 1;
        let end = memchr::memchr(b'/', &b[start..]).map_or(b.len(), |i| start + i);
        let kept = memchr::memchr(b';', &b[start..end]).unwrap_or(end - start);
        let last = end == b.len();
        slash = (!last).then_some(end);
        Some((at, end, kept, usize::from(!(merge && kept == 0 && !last))))
    })
}

/// Splits at the first '?' or '#': (path, rest).
fn split_query(p: &str) -> (&str, &str) {
    let i = p.find(['?', '#']).unwrap_or(p.len());
    p.split_at(i)
}

/// Splits at the first '?': (path, "?query" or "").
fn split_query_only(p: &str) -> (&str, &str) {
    let i = p.find('?').unwrap_or(p.len());
    p.split_at(i)
}

// ----------------------------------------------------------------- building

pub(crate) struct Built {
    pub(crate) entry: RouteEntry,
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn make_route(
    id: u32,
    index: u32,
    name: Box<str>,
    path: PathSpec,
    case_sensitive: bool,
    headers: Vec<HeaderCond>,
    query: Vec<QueryCond>,
    grpc: bool,
    runtime_fraction: Option<(u32, u64)>,
    action: ActionSpec,
    rewrite: Option<PathRewrite>,
    host_rewrite: Option<HostRewrite>,
    append_x_forwarded_host: bool,
    cluster_not_found_status: u16,
    request: Mutations,
    response: Mutations,
    timeout_ms: u64,
    idle_timeout_ms: Option<u64>,
    retry: Option<RetryPolicy>,
    upgrades: Vec<(Box<str>, bool)>,
    hash_policy: Vec<config::HashPolicy>,
) -> Built {
    Built {
        entry: RouteEntry {
            id: RouteId(id),
            index,
            name,
            path_in_index: match &path {
                PathSpec::Exact(_)
                | PathSpec::Prefix(_)
                | PathSpec::Separated(_)
                | PathSpec::Connect => true,
                PathSpec::Template(t) => t.decided_by_trie(),
                PathSpec::Regex(_) => false,
            },
            path,
            case_sensitive,
            headers: headers.into(),
            query: query.into(),
            grpc,
            runtime_fraction,
            action,
            rewrite,
            host_rewrite,
            append_x_forwarded_host,
            cluster_not_found_status,
            request,
            response,
            timeout_ms,
            idle_timeout_ms,
            timeout_rules: None,
            retry,
            hedge: None,
            rate_limits: None,
            cors: None,
            local_rate_limit: LocalLimitLevel::Absent,
            upgrades: upgrades.into(),
            hash_policy: hash_policy.into(),
            filters: None,
            mirrors: Box::default(),
            metadata: None,
            named: true,
            internal_redirect: None,
            buffer_limit: None,
        },
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn make_vhost(
    index: u32,
    name: Box<str>,
    domains: Vec<Box<str>>,
    routes: Vec<RouteEntry>,
    require_tls: Option<RequireTls>,
    request: Mutations,
    response: Mutations,
    path_policy: Option<PathPolicy>,
) -> VirtualHostEntry {
    let route_index = crate::index::RouteIndex::build(&routes);
    VirtualHostEntry {
        index,
        name,
        domains: domains.into(),
        routes: routes.into(),
        require_tls,
        request,
        response,
        path_policy,
        route_index,
        filters: None,
        cors: None,
        local_rate_limit: LocalLimitLevel::Absent,
        rate_limits: Box::default(),
        mirrors: Box::default(),
        metadata: None,
    }
}

pub(crate) fn make_redirect(
    scheme: Option<Box<str>>,
    host: Option<Box<str>>,
    port: Option<u16>,
    path: Option<Box<str>>,
    rewrite: Option<PathRewrite>,
    strip_query: bool,
    status: u16,
) -> RedirectSpec {
    RedirectSpec {
        scheme,
        host,
        port,
        path,
        rewrite,
        strip_query,
        status,
    }
}

impl DomainIndex {
    /// Adds a lower-cased domain; returns false if it is already taken.
    pub(crate) fn add(&mut self, domain: &str, vhost: u32) -> bool {
        let d = domain.as_bytes();
        if domain == "*" {
            if self.default.is_some() {
                return false;
            }
            self.default = Some(vhost);
            return true;
        }
        if let Some(key) = d.strip_prefix(b"*") {
            return Self::insert_wild(&mut self.suffix, key, vhost);
        }
        if let Some(key) = d.strip_suffix(b"*") {
            return Self::insert_wild(&mut self.prefix, key, vhost);
        }
        self.exact.insert(d.into(), vhost).is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authority::{strip_host_port, strip_trailing_host_dot};

    /// Host normalization in borrowed parts gives what the options say
    /// step by step on whole strings: the dot (Envoy's
    /// strip_trailing_host_dot), then the port (strip_any_host_port or
    /// strip_matching_host_port), then, for CONNECT, any port.
    #[test]
    fn host_parts_join_to_the_step_by_step_result() {
        const PIECES: &[&str] = &["a", ".", ":", "80", "443", "[::1]", "]", "x."];
        let mut hosts = vec![String::new()];
        for _ in 0..4 {
            let longer: Vec<String> = hosts
                .iter()
                .flat_map(|h| PIECES.iter().map(move |p| format!("{h}{p}")))
                .collect();
            hosts.extend(longer);
        }
        hosts.sort();
        hosts.dedup();
        let mut checked = 0;
        for dot in [false, true] {
            for any in [false, true] {
                for matching in [None, Some(80), Some(443)] {
                    let n = config::HostNormalization {
                        strip_trailing_host_dot: dot,
                        strip_any_host_port: any,
                        strip_matching_host_port: matching,
                    };
                    for connect in [false, true] {
                        for h in &hosts {
                            let mut want: String = if dot {
                                strip_trailing_host_dot(h).into_owned()
                            } else {
                                h.clone()
                            };
                            if any {
                                want = strip_host_port(&want, None).to_owned();
                            } else if let Some(port) = matching {
                                want = strip_host_port(&want, Some(port)).to_owned();
                            }
                            if connect {
                                want = strip_host_port(&want, None).to_owned();
                            }
                            let (name, port) = normalize_host(h, &n, connect);
                            assert_eq!(
                                format!("{name}{port}"),
                                want,
                                "{h:?} dot={dot} any={any} matching={matching:?} connect={connect}"
                            );
                            assert!(port.is_empty() || port.starts_with(':'), "{h:?}");
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert!(checked > 10_000, "{checked}");
    }

    /// The virtual host lookup reads the two parts as one host: with and
    /// without `ignore_port_in_host_matching`, a dot before a kept port.
    #[test]
    fn a_host_in_two_parts_finds_its_virtual_host() {
        let yaml = |ignore: bool| {
            format!(
                r#"
ignore_port_in_host_matching: {ignore}
host_normalization: {{strip_trailing_host_dot: true}}
virtual_hosts:
  - {{name: bare, domains: [a.example], routes: [{{match: {{prefix: /}}, action: {{cluster: c}}}}]}}
  - {{name: port, domains: ["a.example:8443"], routes: [{{match: {{prefix: /}}, action: {{cluster: c}}}}]}}
  - {{name: any, domains: ["*"], routes: [{{match: {{prefix: /}}, action: {{cluster: c}}}}]}}
"#
            )
        };
        let cases = [
            (false, "A.Example.:8443", "port", "A.Example:8443"),
            (false, "a.example.", "bare", "a.example"),
            (false, "a.example.:9", "any", "a.example:9"),
            (true, "A.Example.:8443", "bare", "A.Example:8443"),
            (true, "a.example.:x", "bare", "a.example:x"),
        ];
        for (ignore, host, vhost, kept) in cases {
            let t = RouteTable::from_yaml(&yaml(ignore)).unwrap();
            let req = crate::Request::get(host, "/");
            let mut scratch = RouteScratch::new();
            for d in [t.route(&req, 0), t.route_in(&req, 0, &mut scratch)] {
                let m = d.into_route().unwrap();
                assert_eq!(m.virtual_host().name(), vhost, "{host} ignore={ignore}");
                assert_eq!(m.host(), kept, "{host} ignore={ignore}");
            }
        }
    }
}
