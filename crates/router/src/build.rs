//! Validation and compilation of a [`RouteConfig`] into a [`RouteTable`].
//! Every problem is collected; nothing is checked at request time.

use crate::config::{self, Limits, RouteConfig};
use crate::cors::{CorsAt, CorsLevel, CorsSpec, CORS_FILTER};
use crate::error::{ConfigError, ConfigErrors, ErrorKind};
use crate::local_ratelimit::{
    Bucket, DescriptorBucket, LocalRateLimiter, VhRateLimits, LOCAL_RATE_LIMIT_FILTER,
    LOCAL_RATE_LIMIT_TYPE,
};
use crate::matchers::{HeaderCond, HeaderTest, QueryCond, QueryTest, StringMatch, StringTest};
use crate::mutate::{self, Mutations};
use crate::path::PathPolicy;
use crate::ratelimit::{RateLimitActionSpec, RateLimitSpec, RouteRateLimits, RATE_LIMIT_FILTER};
use crate::re::RegexLimits;
use crate::table::{
    self, ActionSpec, BuildOptions, ClusterName, ClusterSpec, DomainIndex, HedgePolicy,
    HostRewrite, PathRewrite, PathSpec, RegexSub, RetryPolicy, RouteTable, Weighted, WeightedEntry,
};
use crate::template::{MatchTemplate, RewriteTemplate};

/// How many of a oneof's fields are set.
fn set_count(flags: &[bool]) -> usize {
    flags.iter().filter(|b| **b).count()
}

/// Collects errors for one place (configuration, virtual host or route).
struct Ctx<'e> {
    errors: &'e mut Vec<ConfigError>,
    vhost: Option<(usize, String)>,
    route: Option<(usize, String)>,
    regexes: &'e mut usize,
    limits: &'e Limits,
}

impl Ctx<'_> {
    fn err(&mut self, kind: ErrorKind, field: &str, msg: impl Into<String>) {
        let e = ConfigError::located(kind, msg, self.vhost.as_ref(), self.route.as_ref(), field);
        self.errors.push(e);
    }

    fn regex_limits(&self) -> RegexLimits {
        RegexLimits {
            max_pattern_bytes: self.limits.max_regex_pattern_bytes,
            max_compiled_bytes: self.limits.max_regex_compiled_bytes,
        }
    }

    fn count_regex(&mut self, field: &str) -> bool {
        *self.regexes += 1;
        if *self.regexes == self.limits.max_regexes + 1 {
            self.err(
                ErrorKind::Limit,
                field,
                format!(
                    "more than {} regular expressions in the configuration (limits.max_regexes)",
                    self.limits.max_regexes
                ),
            );
        }
        *self.regexes <= self.limits.max_regexes
    }

    fn full_regex(&mut self, field: &str, pattern: &str) -> Option<crate::local::Matcher> {
        if !self.count_regex(field) {
            return None;
        }
        match crate::re::full_match(pattern, self.regex_limits()) {
            Ok(r) => Some(r),
            Err(e) => {
                self.err(regex_error_kind(&e), field, e);
                None
            }
        }
    }

    fn regex_sub(&mut self, field: &str, r: &config::RegexRewrite) -> Option<RegexSub> {
        if !self.count_regex(field) {
            return None;
        }
        if has_ctl(&r.substitution) {
            self.err(
                ErrorKind::Invalid,
                field,
                "substitution contains control characters",
            );
            return None;
        }
        match RegexSub::compile(r, self.regex_limits()) {
            Ok(r) => Some(r),
            Err(e) => {
                self.err(regex_error_kind(&e), field, e);
                None
            }
        }
    }

    fn mutations(
        &mut self,
        add_field: &str,
        add: &[config::HeaderValueOption],
        remove_field: &str,
        remove: &[String],
    ) -> Mutations {
        let mut rm = Vec::with_capacity(remove.len());
        for (i, name) in remove.iter().enumerate() {
            match mutate::check_name(name, "removed") {
                Ok(n) => rm.push(n),
                Err(e) => self.err(ErrorKind::Invalid, &format!("{remove_field}[{i}]"), e),
            }
        }
        let mut ad = Vec::with_capacity(add.len());
        for (i, h) in add.iter().enumerate() {
            match mutate::compile_add(h) {
                Ok(a) => ad.push(a),
                Err(e) => self.err(ErrorKind::Invalid, &format!("{add_field}[{i}]"), e),
            }
        }
        Mutations::new(rm, ad)
    }

    fn string_match(&mut self, field: &str, m: &config::StringMatcher) -> Option<StringMatch> {
        let set = set_count(&[
            m.exact.is_some(),
            m.prefix.is_some(),
            m.suffix.is_some(),
            m.contains.is_some(),
            m.safe_regex.is_some(),
        ]);
        if set != 1 {
            self.err(
                ErrorKind::Invalid,
                field,
                "exactly one of exact, prefix, suffix, contains or safe_regex must be set",
            );
            return None;
        }
        let bytes = |s: &String| -> Box<[u8]> { s.as_bytes().into() };
        let test = if let Some(s) = &m.exact {
            StringTest::Exact(bytes(s))
        } else if let Some(s) = &m.prefix {
            StringTest::Prefix(bytes(s))
        } else if let Some(s) = &m.suffix {
            StringTest::Suffix(bytes(s))
        } else if let Some(s) = &m.contains {
            StringTest::Contains(bytes(s))
        } else {
            let p = m.safe_regex.as_ref()?.pattern();
            StringTest::Regex(self.full_regex(&format!("{field}.safe_regex"), p)?)
        };
        Some(StringMatch {
            test,
            ignore_case: m.ignore_case,
        })
    }

    fn header(&mut self, field: &str, h: &config::HeaderMatcher) -> Option<HeaderCond> {
        if h.name.is_empty() {
            self.err(
                ErrorKind::Missing,
                &format!("{field}.name"),
                "header name is empty",
            );
            return None;
        }
        let kinds = set_count(&[
            h.string_match.is_some(),
            h.exact_match.is_some(),
            h.safe_regex_match.is_some(),
            h.prefix_match.is_some(),
            h.suffix_match.is_some(),
            h.contains_match.is_some(),
            h.range_match.is_some(),
            h.present_match.is_some(),
        ]);
        if kinds > 1 {
            self.err(
                ErrorKind::Conflict,
                field,
                "set at most one header match specifier",
            );
            return None;
        }
        let plain = |test: StringTest| StringMatch {
            test,
            ignore_case: false,
        };
        let test = if let Some(m) = &h.string_match {
            HeaderTest::Value(self.string_match(&format!("{field}.string_match"), m)?)
        } else if let Some(e) = &h.exact_match {
            if e.is_empty() {
                HeaderTest::Present(true)
            } else {
                HeaderTest::Value(plain(StringTest::Exact(e.as_bytes().into())))
            }
        } else if let Some(r) = &h.safe_regex_match {
            let re = self.full_regex(&format!("{field}.safe_regex_match"), &r.regex)?;
            HeaderTest::Value(plain(StringTest::Regex(re)))
        } else if let Some(p) = &h.prefix_match {
            HeaderTest::Value(plain(StringTest::Prefix(p.as_bytes().into())))
        } else if let Some(s) = &h.suffix_match {
            HeaderTest::Value(plain(StringTest::Suffix(s.as_bytes().into())))
        } else if let Some(c) = &h.contains_match {
            HeaderTest::Value(plain(StringTest::Contains(c.as_bytes().into())))
        } else if let Some(r) = &h.range_match {
            if r.start >= r.end {
                self.err(
                    ErrorKind::Invalid,
                    &format!("{field}.range_match"),
                    format!("start ({}) must be less than end ({})", r.start, r.end),
                );
                return None;
            }
            HeaderTest::Range(r.start, r.end)
        } else if let Some(p) = h.present_match {
            HeaderTest::Present(p)
        } else {
            HeaderTest::Present(true)
        };
        Some(HeaderCond {
            name: h.name.to_ascii_lowercase().into(),
            test,
            invert: h.invert_match,
            treat_missing_as_empty: h.treat_missing_header_as_empty,
        })
    }

    fn query(
        &mut self,
        field: &str,
        q: &config::QueryParameterMatcher,
        legacy: bool,
    ) -> Option<QueryCond> {
        if q.name.is_empty() {
            self.err(
                ErrorKind::Missing,
                &format!("{field}.name"),
                "parameter name is empty",
            );
            return None;
        }
        let test = match (&q.string_match, q.present_match) {
            (Some(_), Some(_)) => {
                self.err(
                    ErrorKind::Conflict,
                    field,
                    "set string_match or present_match, not both",
                );
                return None;
            }
            (Some(m), None) => {
                QueryTest::Value(self.string_match(&format!("{field}.string_match"), m)?)
            }
            (None, Some(false)) => QueryTest::Absent { legacy },
            (None, _) => QueryTest::Present,
        };
        Some(QueryCond {
            name: q.name.as_str().into(),
            test,
        })
    }
}

/// A regex over a configured bound is a limit error, not a syntax error.
fn regex_error_kind(message: &str) -> ErrorKind {
    if message.contains("(limits.") {
        ErrorKind::Limit
    } else {
        ErrorKind::Regex
    }
}

fn has_ctl(s: &str) -> bool {
    s.bytes().any(|b| b < 0x20 || b == 0x7f)
}

fn retry_policy(ctx: &mut Ctx<'_>, field: &str, p: &config::RetryPolicy) -> Option<RetryPolicy> {
    let base = p
        .retry_back_off
        .as_ref()
        .and_then(|b| b.base_interval_ms)
        .unwrap_or(25)
        .max(1);
    let max = p
        .retry_back_off
        .as_ref()
        .and_then(|b| b.max_interval_ms)
        .map(|m| m.max(1))
        .unwrap_or(base.saturating_mul(10));
    if max < base {
        ctx.err(
            ErrorKind::Invalid,
            &format!("{field}.retry_back_off"),
            "retry_policy.max_interval must greater than or equal to the base_interval",
        );
        return None;
    }
    let mut conds = |name: &str, list: &[config::HeaderMatcher]| -> Option<Vec<HeaderCond>> {
        let compiled: Vec<HeaderCond> = list
            .iter()
            .enumerate()
            .filter_map(|(i, h)| ctx.header(&format!("{field}.{name}[{i}]"), h))
            .collect();
        (compiled.len() == list.len()).then_some(compiled)
    };
    let retriable_headers = conds("retriable_headers", &p.retriable_headers);
    let retriable_request_headers =
        conds("retriable_request_headers", &p.retriable_request_headers);
    Some(RetryPolicy {
        retry_on: p
            .retry_on
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        num_retries: p.num_retries.unwrap_or(1),
        per_try_timeout_ms: p.per_try_timeout_ms.unwrap_or(0),
        base_interval_ms: base,
        max_interval_ms: max,
        retriable_status_codes: p.retriable_status_codes.clone(),
        per_try_idle_timeout_ms: p.per_try_idle_timeout_ms,
        host_selection_retry_max_attempts: p.host_selection_retry_max_attempts.unwrap_or(1),
        header_conds: table::RetryHeaderConds {
            response: retriable_headers?.into(),
            request: retriable_request_headers?.into(),
            source: Box::new((
                p.retriable_headers.clone(),
                p.retriable_request_headers.clone(),
            )),
        },
    })
}

fn hedge_policy(ctx: &mut Ctx<'_>, field: &str, p: &config::HedgePolicy) -> Option<HedgePolicy> {
    let initial_requests = p.initial_requests.unwrap_or(1);
    if initial_requests == 0 {
        ctx.err(
            ErrorKind::Invalid,
            &format!("{field}.initial_requests"),
            "value must be greater than or equal to 1 (HedgePolicyValidationError.InitialRequests)",
        );
        return None;
    }
    Some(HedgePolicy {
        initial_requests,
        additional_request_chance: p
            .additional_request_chance
            .as_ref()
            .map_or((0, 100), |f| (f.numerator, f.denominator.value())),
        hedge_on_per_try_timeout: p.hedge_on_per_try_timeout,
    })
}

/// Compiles a level's `rate_limits`, with Envoy's validation.
fn rate_limits(
    ctx: &mut Ctx<'_>,
    field: &str,
    list: &[config::RateLimit],
    legacy_query: bool,
) -> Box<[RateLimitSpec]> {
    let mut out = Vec::with_capacity(list.len());
    for (i, r) in list.iter().enumerate() {
        let at = format!("{field}[{i}]");
        let before = ctx.errors.len();
        let stage = r.stage.unwrap_or(0);
        if stage > 10 {
            ctx.err(
                ErrorKind::Invalid,
                &format!("{at}.stage"),
                "value must be less than or equal to 10 (RateLimitValidationError.Stage)",
            );
        }
        if r.actions.is_empty() {
            ctx.err(
                ErrorKind::Missing,
                &format!("{at}.actions"),
                "value must contain at least 1 item(s) (RateLimitValidationError.Actions)",
            );
        }
        let mut actions = Vec::with_capacity(r.actions.len());
        for (j, a) in r.actions.iter().enumerate() {
            if let Some(a) = rate_limit_action(ctx, &format!("{at}.actions[{j}]"), a, legacy_query)
            {
                actions.push(a);
            }
        }
        if ctx.errors.len() == before {
            out.push(RateLimitSpec {
                stage,
                disable_key: r.disable_key.as_str().into(),
                actions: actions.into(),
            });
        }
    }
    out.into()
}

fn rate_limit_action(
    ctx: &mut Ctx<'_>,
    at: &str,
    a: &config::RateLimitAction,
    legacy_query: bool,
) -> Option<RateLimitActionSpec> {
    let set = set_count(&[
        a.source_cluster.is_some(),
        a.destination_cluster.is_some(),
        a.request_headers.is_some(),
        a.remote_address.is_some(),
        a.masked_remote_address.is_some(),
        a.generic_key.is_some(),
        a.header_value_match.is_some(),
        a.query_parameter_value_match.is_some(),
        a.metadata.is_some(),
    ]);
    if set != 1 {
        ctx.err(
            if set == 0 {
                ErrorKind::Missing
            } else {
                ErrorKind::Conflict
            },
            at,
            "set exactly one of source_cluster, destination_cluster, request_headers, \
             remote_address, masked_remote_address, generic_key, header_value_match, \
             query_parameter_value_match or metadata",
        );
        return None;
    }
    let required = |ctx: &mut Ctx<'_>, field: &str, value: &str| {
        if value.is_empty() {
            ctx.err(
                ErrorKind::Missing,
                &format!("{at}.{field}"),
                "value length must be at least 1 characters",
            );
        }
        !value.is_empty()
    };
    let key_or =
        |k: &str, default: &str| -> Box<str> { if k.is_empty() { default } else { k }.into() };
    if a.source_cluster.is_some() {
        return Some(RateLimitActionSpec::SourceCluster);
    }
    if a.destination_cluster.is_some() {
        return Some(RateLimitActionSpec::DestinationCluster);
    }
    if a.remote_address.is_some() {
        return Some(RateLimitActionSpec::RemoteAddress);
    }
    if let Some(h) = &a.request_headers {
        let ok = required(ctx, "request_headers.header_name", &h.header_name)
            & required(ctx, "request_headers.descriptor_key", &h.descriptor_key);
        if ok
            && !h.header_name.starts_with(':')
            && http::HeaderName::try_from(h.header_name.as_str()).is_err()
        {
            ctx.err(
                ErrorKind::Invalid,
                &format!("{at}.request_headers.header_name"),
                format!("{:?} is not a valid header name", h.header_name),
            );
            return None;
        }
        return ok.then(|| RateLimitActionSpec::RequestHeader {
            name: h.header_name.to_ascii_lowercase().into(),
            key: h.descriptor_key.as_str().into(),
            skip_if_absent: h.skip_if_absent,
        });
    }
    if let Some(m) = &a.masked_remote_address {
        let v4 = m.v4_prefix_mask_len.unwrap_or(32);
        let v6 = m.v6_prefix_mask_len.unwrap_or(128);
        for (name, v, max) in [
            ("v4_prefix_mask_len", v4, 32),
            ("v6_prefix_mask_len", v6, 128),
        ] {
            if v > max {
                ctx.err(
                    ErrorKind::Invalid,
                    &format!("{at}.masked_remote_address.{name}"),
                    format!("value must be less than or equal to {max}"),
                );
                return None;
            }
        }
        return Some(RateLimitActionSpec::MaskedRemoteAddress {
            v4: v4 as u8,
            v6: v6 as u8,
        });
    }
    if let Some(g) = &a.generic_key {
        return required(ctx, "generic_key.descriptor_value", &g.descriptor_value).then(|| {
            RateLimitActionSpec::Generic {
                key: key_or(&g.descriptor_key, "generic_key"),
                value: g.descriptor_value.as_str().into(),
            }
        });
    }
    if let Some(h) = &a.header_value_match {
        let headers = value_match(
            ctx,
            &format!("{at}.header_value_match"),
            &h.descriptor_value,
            "headers",
            &h.headers,
            |ctx, f, m| ctx.header(f, m),
        )?;
        return Some(RateLimitActionSpec::HeaderMatch {
            key: key_or(&h.descriptor_key, "header_match"),
            value: h.descriptor_value.as_str().into(),
            expect: h.expect_match.unwrap_or(true),
            headers: headers.into(),
        });
    }
    if let Some(q) = &a.query_parameter_value_match {
        let query = value_match(
            ctx,
            &format!("{at}.query_parameter_value_match"),
            &q.descriptor_value,
            "query_parameters",
            &q.query_parameters,
            |ctx, f, m| ctx.query(f, m, legacy_query),
        )?;
        return Some(RateLimitActionSpec::QueryMatch {
            key: key_or(&q.descriptor_key, "query_match"),
            value: q.descriptor_value.as_str().into(),
            expect: q.expect_match.unwrap_or(true),
            query: query.into(),
        });
    }
    let m = a.metadata.as_ref()?;
    let ok = required(ctx, "metadata.descriptor_key", &m.descriptor_key)
        & required(ctx, "metadata.metadata_key.key", &m.metadata_key.key);
    if m.source.as_deref() != Some("ROUTE_ENTRY") {
        ctx.err(
            ErrorKind::Unsupported,
            &format!("{at}.metadata.source"),
            "only source: ROUTE_ENTRY is supported (there is no dynamic metadata here)",
        );
        return None;
    }
    ok.then(|| RateLimitActionSpec::RouteMetadata {
        key: m.descriptor_key.as_str().into(),
        filter: m.metadata_key.key.as_str().into(),
        path: m
            .metadata_key
            .path
            .iter()
            .map(|p| p.key.as_str().into())
            .collect(),
        default: m.default_value.as_str().into(),
        skip_if_absent: m.skip_if_absent,
    })
}

/// The common part of the `*_value_match` rate limit actions: a value, and
/// a non-empty list of conditions that all compile.
fn value_match<T, C>(
    ctx: &mut Ctx<'_>,
    at: &str,
    value: &str,
    list_name: &str,
    list: &[T],
    mut compile: impl FnMut(&mut Ctx<'_>, &str, &T) -> Option<C>,
) -> Option<Vec<C>> {
    let mut ok = true;
    if value.is_empty() {
        ctx.err(
            ErrorKind::Missing,
            &format!("{at}.descriptor_value"),
            "value length must be at least 1 characters",
        );
        ok = false;
    }
    if list.is_empty() {
        ctx.err(
            ErrorKind::Missing,
            &format!("{at}.{list_name}"),
            "value must contain at least 1 item(s)",
        );
        ok = false;
    }
    let compiled: Vec<C> = list
        .iter()
        .enumerate()
        .filter_map(|(k, m)| compile(ctx, &format!("{at}.{list_name}[{k}]"), m))
        .collect();
    (ok && compiled.len() == list.len()).then_some(compiled)
}

/// The type URLs a CORS policy may name.
const CORS_TYPES: [&str; 2] = [
    "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy",
    "type.googleapis.com/envoy.config.route.v3.CorsPolicy",
];

fn cors_policy(ctx: &mut Ctx<'_>, field: &str, p: &config::CorsPolicy) -> Option<CorsSpec> {
    let before = ctx.errors.len();
    if let Some(t) = &p.type_url {
        if !CORS_TYPES.contains(&t.as_str()) {
            ctx.err(
                ErrorKind::Invalid,
                &format!("{field}.@type"),
                format!("expected {} (a CorsPolicy), got {t:?}", CORS_TYPES[0]),
            );
        }
    }
    let origins: Vec<_> = p
        .allow_origin_string_match
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            ctx.string_match(&format!("{field}.allow_origin_string_match[{i}]"), m)
        })
        .collect();
    for (name, value) in [
        ("allow_methods", &p.allow_methods),
        ("allow_headers", &p.allow_headers),
        ("expose_headers", &p.expose_headers),
        ("max_age", &p.max_age),
    ] {
        if http::HeaderValue::from_str(value).is_err() {
            ctx.err(
                ErrorKind::Invalid,
                &format!("{field}.{name}"),
                format!("{value:?} is not a valid header value"),
            );
        }
    }
    let fraction = |f: &config::RuntimeFraction| {
        (
            f.default_value.numerator,
            f.default_value.denominator.value(),
        )
    };
    if ctx.errors.len() != before {
        return None;
    }
    Some(CorsSpec {
        origins: origins.into(),
        allow_methods: p.allow_methods.as_str().into(),
        allow_headers: p.allow_headers.as_str().into(),
        expose_headers: p.expose_headers.as_str().into(),
        max_age: p.max_age.as_str().into(),
        allow_credentials: p.allow_credentials,
        allow_private_network_access: p.allow_private_network_access,
        forward_not_matching_preflights: p.forward_not_matching_preflights,
        enabled: p.filter_enabled.as_ref().map(fraction),
        shadow: p.shadow_enabled.as_ref().map(fraction),
    })
}

/// Checks a level's `FilterConfig` wrappers: known fields only, and a
/// `config` unless the filter is disabled (Envoy's message).
fn check_filter_configs(ctx: &mut Ctx<'_>, field: &str, filters: &config::FilterConfigs) {
    for (name, v) in filters {
        if !table::is_filter_config(v) {
            continue;
        }
        let at = format!("{field}[\"{name}\"]");
        let obj = v.as_object().expect("a value with @type is a mapping");
        for (k, x) in obj {
            let ok = match k.as_str() {
                "@type" => true,
                "config" => x.is_object(),
                "is_optional" | "disabled" => x.is_boolean(),
                _ => {
                    ctx.err(
                        ErrorKind::Invalid,
                        &format!("{at}.{k}"),
                        "unknown field of a FilterConfig (config, is_optional, disabled)",
                    );
                    continue;
                }
            };
            if !ok {
                ctx.err(
                    ErrorKind::Invalid,
                    &format!("{at}.{k}"),
                    "wrong type (config is a mapping; is_optional and disabled are booleans)",
                );
            }
        }
        let disabled = obj.get("disabled").and_then(serde_json::Value::as_bool) == Some(true);
        if !disabled && !obj.contains_key("config") {
            ctx.err(
                ErrorKind::Invalid,
                &at,
                format!("Empty route/virtual host per filter configuration for {name} filter"),
            );
        }
    }
}

/// A level's CORS policies: its `cors` field (`legacy`, with the field's
/// name) and its `typed_per_filter_config` for the CORS filter.
fn cors_level(
    ctx: &mut Ctx<'_>,
    legacy: Option<(&str, &config::CorsPolicy)>,
    filters_field: &str,
    filters: &config::FilterConfigs,
) -> CorsLevel {
    let legacy = legacy.and_then(|(field, p)| cors_policy(ctx, field, p));
    check_filter_configs(ctx, filters_field, filters);
    let configured = match table::filter_at(filters.get(CORS_FILTER)) {
        table::FilterAt::Enabled(c) => c,
        table::FilterAt::Absent | table::FilterAt::Disabled => None,
    };
    let filter = configured.and_then(|v| {
        let field = filter_field(filters_field, CORS_FILTER, filters);
        match typed_config::<config::CorsPolicy>(&field, v) {
            Ok(p) => cors_policy(ctx, &field, &p),
            Err((at, e)) => {
                ctx.err(ErrorKind::Invalid, &at, format!("not a CorsPolicy: {e}"));
                None
            }
        }
    });
    (legacy.is_some() || filter.is_some()).then(|| Box::new(CorsAt { legacy, filter }))
}

/// A level's local rate limit: its `typed_per_filter_config` entry for
/// [`LOCAL_RATE_LIMIT_FILTER`], compiled with fresh buckets.
fn local_rate_limit_level(
    ctx: &mut Ctx<'_>,
    filters_field: &str,
    filters: &config::FilterConfigs,
) -> table::LocalLimitLevel {
    let v = match table::filter_at(filters.get(LOCAL_RATE_LIMIT_FILTER)) {
        table::FilterAt::Absent => return table::LocalLimitLevel::Absent,
        table::FilterAt::Disabled => return table::LocalLimitLevel::Disabled,
        table::FilterAt::Enabled(None) => return table::LocalLimitLevel::Enabled(None),
        table::FilterAt::Enabled(Some(v)) => v,
    };
    let field = filter_field(filters_field, LOCAL_RATE_LIMIT_FILTER, filters);
    // Where it is, by names (an unnamed route's is `routes[N]`), so that
    // an edit elsewhere in the file leaves it in its place. Names need not
    // be unique: a place found twice is carried nowhere
    // (`RouteTable::carry_local_rate_limits`).
    let name = |at: &Option<(usize, String)>| match at {
        Some((_, n)) => n.clone(),
        None => String::new(),
    };
    let place = format!("{}\u{0}{}\u{0}{field}", name(&ctx.vhost), name(&ctx.route));
    let limiter = match typed_config::<config::LocalRateLimit>(&field, v) {
        Ok(c) => local_rate_limit(ctx, &field, &c).map(|mut l| {
            l.place = place.into();
            l.source = v.clone();
            std::sync::Arc::new(l)
        }),
        Err((at, e)) => {
            ctx.err(
                ErrorKind::Invalid,
                &at,
                format!("not a LocalRateLimit: {e}"),
            );
            None
        }
    };
    table::LocalLimitLevel::Enabled(limiter)
}

/// Checks what RAUTA reads of a level's `envoy.filters.http.ratelimit`
/// per-route configuration: `vh_rate_limits` must be one of its values
/// (the rest is the rate limit filter's own business).
fn check_rate_limit_per_route(
    ctx: &mut Ctx<'_>,
    filters_field: &str,
    filters: &config::FilterConfigs,
) {
    if let table::FilterAt::Enabled(Some(v)) = table::filter_at(filters.get(RATE_LIMIT_FILTER)) {
        let field = filter_field(filters_field, RATE_LIMIT_FILTER, filters);
        proto_enum(
            ctx,
            &format!("{field}.vh_rate_limits"),
            v.get("vh_rate_limits"),
            &VhRateLimits::NAMES,
        );
    }
}

/// Where a level's configuration for `filter` is: the entry, or its
/// `config` inside a `FilterConfig` wrapper.
fn filter_field(filters_field: &str, filter: &str, filters: &config::FilterConfigs) -> String {
    let wrapped = filters.get(filter).is_some_and(table::is_filter_config);
    format!(
        "{filters_field}[\"{filter}\"]{}",
        if wrapped { ".config" } else { "" }
    )
}

/// Reads a filter's typed configuration. On failure, names the field that
/// fails: each top-level field of the value is read alone (every field of
/// these types has a default), and the first that fails on its own is
/// the one named.
fn typed_config<T: serde::de::DeserializeOwned>(
    field: &str,
    v: &serde_json::Value,
) -> Result<T, (String, String)> {
    T::deserialize(v).map_err(|e| {
        let culprit = v.as_object().and_then(|m| {
            m.iter().find_map(|(k, x)| {
                let alone =
                    serde_json::Value::Object([(k.clone(), x.clone())].into_iter().collect());
                T::deserialize(&alone)
                    .err()
                    .map(|e| (format!("{field}.{k}"), e.to_string()))
            })
        });
        culprit.unwrap_or_else(|| (field.to_owned(), e.to_string()))
    })
}

/// Whether type URL `t` names `want` (compared after the last `/`, as
/// Envoy reads type URLs).
fn names_type(t: &str, want: &str) -> bool {
    t.rsplit('/').next() == want.rsplit('/').next()
}

/// A token bucket; `what` is how Envoy's messages name it.
fn token_bucket(
    ctx: &mut Ctx<'_>,
    field: &str,
    what: &str,
    b: &config::TokenBucket,
) -> Option<Bucket> {
    let before = ctx.errors.len();
    if b.max_tokens == 0 {
        ctx.err(
            ErrorKind::Invalid,
            &format!("{field}.max_tokens"),
            "must be greater than 0",
        );
    }
    if b.tokens_per_fill == Some(0) {
        ctx.err(
            ErrorKind::Invalid,
            &format!("{field}.tokens_per_fill"),
            "must be greater than 0",
        );
    }
    let interval = match &b.fill_interval {
        None => {
            ctx.err(
                ErrorKind::Invalid,
                &format!("{field}.fill_interval"),
                "is required",
            );
            0
        }
        Some(d) => match crate::envoy_shape::duration_ms(d) {
            Ok(ms) if ms < 50 => {
                ctx.err(
                    ErrorKind::Invalid,
                    &format!("{field}.fill_interval"),
                    format!("{what} fill timer must be >= 50ms"),
                );
                0
            }
            Ok(ms) => ms,
            Err(e) => {
                ctx.err(ErrorKind::Invalid, &format!("{field}.fill_interval"), e);
                0
            }
        },
    };
    (ctx.errors.len() == before).then(|| {
        Bucket::new(
            b.max_tokens,
            b.tokens_per_fill.unwrap_or(1),
            std::time::Duration::from_millis(interval),
        )
    })
}

/// An enum of Envoy's given by name or, as protobuf JSON allows, by number:
/// the position of the name in `names` (0, the default, when absent or
/// null); see [`crate::local_ratelimit::enum_index`].
fn proto_enum(
    ctx: &mut Ctx<'_>,
    field: &str,
    v: Option<&serde_json::Value>,
    names: &[&str],
) -> usize {
    let Some(v) = v else { return 0 };
    crate::local_ratelimit::enum_index(v, names).unwrap_or_else(|| {
        ctx.err(
            ErrorKind::Invalid,
            field,
            format!("{v} is not one of {}", names.join(", ")),
        );
        0
    })
}

fn local_rate_limit(
    ctx: &mut Ctx<'_>,
    field: &str,
    c: &config::LocalRateLimit,
) -> Option<LocalRateLimiter> {
    let before = ctx.errors.len();
    if let Some(t) = &c.type_url {
        if !names_type(t, LOCAL_RATE_LIMIT_TYPE) {
            ctx.err(
                ErrorKind::Invalid,
                &format!("{field}.@type"),
                format!("expected {LOCAL_RATE_LIMIT_TYPE}, got {t:?}"),
            );
        }
    }
    if c.stat_prefix.is_empty() {
        ctx.err(
            ErrorKind::Invalid,
            &format!("{field}.stat_prefix"),
            "is required",
        );
    }
    let status = match &c.status {
        None => 429,
        Some(s) if !(100..=599).contains(&s.code) => {
            ctx.err(
                ErrorKind::Invalid,
                &format!("{field}.status.code"),
                format!("{} is not an HTTP status code", s.code),
            );
            429
        }
        // Envoy answers 429 for a code that is not an error.
        Some(s) if s.code < 400 => 429,
        Some(s) => s.code as u16,
    };
    let default = match &c.token_bucket {
        Some(b) => token_bucket(
            ctx,
            &format!("{field}.token_bucket"),
            "local rate limit token bucket",
            b,
        ),
        None => {
            ctx.err(
                ErrorKind::Invalid,
                &format!("{field}.token_bucket"),
                "local rate limit token bucket must be set for per filter configs",
            );
            None
        }
    };
    let mut descriptors: Vec<DescriptorBucket> = Vec::with_capacity(c.descriptors.len());
    for (i, d) in c.descriptors.iter().enumerate() {
        let at = format!("{field}.descriptors[{i}]");
        if d.entries.is_empty() {
            ctx.err(ErrorKind::Invalid, &format!("{at}.entries"), "is empty");
        }
        for (j, e) in d.entries.iter().enumerate() {
            if e.key.is_empty() {
                ctx.err(
                    ErrorKind::Invalid,
                    &format!("{at}.entries[{j}].key"),
                    "is empty",
                );
            }
            if e.value.is_empty() {
                ctx.err(
                    ErrorKind::Invalid,
                    &format!("{at}.entries[{j}].value"),
                    "is empty (descriptors that match any value are not supported)",
                );
            }
        }
        let bucket = match &d.token_bucket {
            Some(b) => token_bucket(
                ctx,
                &format!("{at}.token_bucket"),
                "local rate limit descriptor token bucket",
                b,
            ),
            None => {
                ctx.err(
                    ErrorKind::Invalid,
                    &format!("{at}.token_bucket"),
                    "is required",
                );
                None
            }
        };
        let entries: Box<[(Box<str>, Box<str>)]> = d
            .entries
            .iter()
            .map(|e| (e.key.as_str().into(), e.value.as_str().into()))
            .collect();
        if descriptors.iter().any(|x| x.entries == entries) {
            let shown: Vec<String> = entries.iter().map(|(k, v)| format!("{k}={v}")).collect();
            ctx.err(
                ErrorKind::Invalid,
                &at,
                format!(
                    "duplicate descriptor in the local rate descriptor: {}",
                    shown.join(", ")
                ),
            );
        }
        if let Some(bucket) = bucket {
            descriptors.push(DescriptorBucket { entries, bucket });
        }
    }
    if c.stage > 10 {
        ctx.err(
            ErrorKind::Invalid,
            &format!("{field}.stage"),
            format!("{} is above 10", c.stage),
        );
    }
    if c.local_rate_limit_per_downstream_connection {
        ctx.err(
            ErrorKind::Unsupported,
            &format!("{field}.local_rate_limit_per_downstream_connection"),
            "buckets per downstream connection are not supported",
        );
    }
    let x_headers = proto_enum(
        ctx,
        &format!("{field}.enable_x_ratelimit_headers"),
        c.enable_x_ratelimit_headers.as_ref(),
        &["OFF", "DRAFT_VERSION_03"],
    ) == 1;
    let vh_rate_limits = VhRateLimits::from_index(proto_enum(
        ctx,
        &format!("{field}.vh_rate_limits"),
        c.vh_rate_limits.as_ref(),
        &VhRateLimits::NAMES,
    ));
    for (name, list) in [
        (
            "request_headers_to_add_when_not_enforced",
            &c.request_headers_to_add_when_not_enforced,
        ),
        ("response_headers_to_add", &c.response_headers_to_add),
    ] {
        if list.len() > 10 {
            ctx.err(
                ErrorKind::Invalid,
                &format!("{field}.{name}"),
                format!("{} headers; at most 10", list.len()),
            );
        }
    }
    let request_headers = ctx.mutations(
        &format!("{field}.request_headers_to_add_when_not_enforced"),
        &c.request_headers_to_add_when_not_enforced,
        "",
        &[],
    );
    let response_headers = ctx.mutations(
        &format!("{field}.response_headers_to_add"),
        &c.response_headers_to_add,
        "",
        &[],
    );
    let fraction = |f: &config::RuntimeFraction| {
        (
            f.default_value.numerator,
            f.default_value.denominator.value(),
        )
    };
    if ctx.errors.len() != before {
        return None;
    }
    let by_hash = ahash::RandomState::new();
    Some(LocalRateLimiter {
        stat_prefix: c.stat_prefix.as_str().into(),
        status,
        default: default?,
        enabled: c.filter_enabled.as_ref().map(fraction),
        enforced: c.filter_enforced.as_ref().map(fraction),
        request_headers,
        response_headers,
        stage: c.stage,
        x_headers,
        vh_rate_limits,
        always_consume_default: c.always_consume_default_token_bucket.unwrap_or(true),
        resource_exhausted: c.rate_limited_as_resource_exhausted,
        origin: std::time::Instant::now(),
        place: Box::default(),
        source: serde_json::Value::Null,
        carried: Default::default(),
        counts: Default::default(),
        by_hash_index: crate::local_ratelimit::descriptor_index(&by_hash, &descriptors),
        by_hash,
        descriptors: descriptors.into(),
    })
}

fn limit(errors: &mut Vec<ConfigError>, what: &str, n: usize, max: usize, field: &str) -> bool {
    if n > max {
        errors.push(
            ConfigError::new(
                ErrorKind::Limit,
                format!("{n} {what}; the limit is {max} (limits.{field})"),
            )
            .field(field),
        );
        false
    } else {
        true
    }
}

pub(crate) fn build(config: RouteConfig, opts: &BuildOptions) -> Result<RouteTable, ConfigErrors> {
    let mut errors = Vec::new();
    let limits = config.limits.clone().unwrap_or_default();
    let name: Box<str> = config.name.clone().unwrap_or_default().into();
    // Envoy's messages end with "in route <config name>".
    let shown_name: &str = if name.is_empty() { "(unnamed)" } else { &name };

    // Limits on sizes come first: a config over them is not compiled at all.
    let domain_total: usize = config.virtual_hosts.iter().map(|v| v.domains.len()).sum();
    let mut ok = limit(
        &mut errors,
        "virtual hosts",
        config.virtual_hosts.len(),
        limits.max_virtual_hosts,
        "max_virtual_hosts",
    );
    ok &= limit(
        &mut errors,
        "domains",
        domain_total,
        limits.max_domains,
        "max_domains",
    );
    for (vi, v) in config.virtual_hosts.iter().enumerate() {
        if v.routes.len() > limits.max_routes_per_virtual_host {
            errors.push(
                ConfigError::new(
                    ErrorKind::Limit,
                    format!(
                        "{} routes; the limit is {} (limits.max_routes_per_virtual_host)",
                        v.routes.len(),
                        limits.max_routes_per_virtual_host
                    ),
                )
                .at_vhost(vi, &v.name)
                .field("routes"),
            );
            ok = false;
        }
    }
    if !ok {
        return Err(ConfigErrors::from_vec(errors).expect("limit errors"));
    }

    let mut regexes = 0usize;
    let base_policy = opts
        .default_path_policy
        .clone()
        .unwrap_or_else(PathPolicy::safe_default);
    let config_policy = match &config.path_normalization {
        Some(p) => base_policy.overlay(p),
        None => base_policy,
    };
    let validate_clusters = config.validate_clusters.unwrap_or(true);
    let known = if validate_clusters {
        opts.known_clusters.as_ref()
    } else {
        None
    };
    let max_body = BodyRules {
        max: config.max_direct_response_body_size_bytes.unwrap_or(4096) as usize,
        local: !opts.forbid_local_data_sources,
    };

    let mut root = Ctx {
        errors: &mut errors,
        vhost: None,
        route: None,
        regexes: &mut regexes,
        limits: &limits,
    };
    let global_req = root.mutations(
        "request_headers_to_add",
        &config.request_headers_to_add,
        "request_headers_to_remove",
        &config.request_headers_to_remove,
    );
    let global_resp = root.mutations(
        "response_headers_to_add",
        &config.response_headers_to_add,
        "response_headers_to_remove",
        &config.response_headers_to_remove,
    );
    let global_mirrors = mirror_policies(
        &mut root,
        "request_mirror_policies",
        &config.request_mirror_policies,
        known,
    );
    let global_cors = cors_level(
        &mut root,
        None,
        "typed_per_filter_config",
        &config.typed_per_filter_config,
    );
    let global_local_limit = local_rate_limit_level(
        &mut root,
        "typed_per_filter_config",
        &config.typed_per_filter_config,
    );
    check_rate_limit_per_route(
        &mut root,
        "typed_per_filter_config",
        &config.typed_per_filter_config,
    );
    let mut internal_only = Vec::with_capacity(config.internal_only_headers.len());
    for (i, name) in config.internal_only_headers.iter().enumerate() {
        match mutate::check_name(name, "internal-only") {
            Ok(n) => internal_only.push(n),
            Err(e) => root.err(
                ErrorKind::Invalid,
                &format!("internal_only_headers[{i}]"),
                e,
            ),
        }
    }

    let mut domains = DomainIndex::default();
    let mut vhosts = Vec::with_capacity(config.virtual_hosts.len());
    let mut next_id = 0u32;
    for (vi, v) in config.virtual_hosts.iter().enumerate() {
        let mut ctx = Ctx {
            errors: &mut errors,
            vhost: Some((vi, v.name.clone())),
            route: None,
            regexes: &mut regexes,
            limits: &limits,
        };
        if v.name.is_empty() {
            ctx.err(ErrorKind::Missing, "name", "virtual host name is empty");
        }
        if v.domains.is_empty() {
            ctx.err(
                ErrorKind::Missing,
                "domains",
                "at least one domain is required",
            );
        }
        let mut vdomains = Vec::with_capacity(v.domains.len());
        for (di, d) in v.domains.iter().enumerate() {
            let lower = d.to_ascii_lowercase();
            if lower.is_empty() {
                ctx.err(
                    ErrorKind::Invalid,
                    &format!("domains[{di}]"),
                    "domain is empty",
                );
                continue;
            }
            if !domains.add(&lower, vi as u32) {
                if lower == "*" {
                    ctx.err(
                        ErrorKind::DuplicateDomain,
                        &format!("domains[{di}]"),
                        format!("Only a single wildcard domain is permitted in route {shown_name}"),
                    );
                } else {
                    ctx.err(
                        ErrorKind::DuplicateDomain,
                        &format!("domains[{di}]"),
                        format!(
                            "Only unique values for domains are permitted. Duplicate entry of domain {lower} in route {shown_name}"
                        ),
                    );
                }
            }
            vdomains.push(lower.into_boxed_str());
        }
        if v.matcher.is_some() {
            if v.routes.is_empty() {
                ctx.err(
                    ErrorKind::Unsupported,
                    "matcher",
                    "generic matcher trees are not supported; use routes (the index makes them fast)",
                );
            } else {
                ctx.err(
                    ErrorKind::Conflict,
                    "matcher",
                    "cannot set both matcher and routes on virtual host",
                );
            }
        }
        for (ci, vc) in v.virtual_clusters.iter().enumerate() {
            if vc.headers.is_empty() {
                ctx.err(
                    ErrorKind::Missing,
                    &format!("virtual_clusters[{ci}].headers"),
                    "virtual clusters must define 'headers'",
                );
            }
            // Checked like route matchers, so a bad regex is found at load.
            for (hi, h) in vc.headers.iter().enumerate() {
                let _ = ctx.header(&format!("virtual_clusters[{ci}].headers[{hi}]"), h);
            }
        }
        let vreq = ctx.mutations(
            "request_headers_to_add",
            &v.request_headers_to_add,
            "request_headers_to_remove",
            &v.request_headers_to_remove,
        );
        let vresp = ctx.mutations(
            "response_headers_to_add",
            &v.response_headers_to_add,
            "response_headers_to_remove",
            &v.response_headers_to_remove,
        );
        let vretry = v
            .retry_policy
            .as_ref()
            .and_then(|p| retry_policy(&mut ctx, "retry_policy", p));
        let vhedge = v
            .hedge_policy
            .as_ref()
            .and_then(|p| hedge_policy(&mut ctx, "hedge_policy", p));
        let vlimits = rate_limits(
            &mut ctx,
            "rate_limits",
            &v.rate_limits,
            opts.legacy_query_present_match,
        );
        let vcors = cors_level(
            &mut ctx,
            v.cors.as_ref().map(|p| ("cors", p)),
            "typed_per_filter_config",
            &v.typed_per_filter_config,
        );
        let vlocal_limit = local_rate_limit_level(
            &mut ctx,
            "typed_per_filter_config",
            &v.typed_per_filter_config,
        );
        check_rate_limit_per_route(
            &mut ctx,
            "typed_per_filter_config",
            &v.typed_per_filter_config,
        );
        let vpolicy = match &v.path_normalization {
            Some(p) => config_policy.overlay(p),
            None => config_policy.clone(),
        };
        let mut routes = Vec::with_capacity(v.routes.len());
        for (ri, r) in v.routes.iter().enumerate() {
            let rname = r.name.clone().unwrap_or_else(|| format!("routes[{ri}]"));
            let mut rctx = Ctx {
                errors: ctx.errors,
                vhost: ctx.vhost.clone(),
                route: Some((ri, rname.clone())),
                regexes: ctx.regexes,
                limits: &limits,
            };
            if let Some(entry) = compile_route(
                &mut rctx,
                r,
                next_id,
                ri as u32,
                rname,
                vretry.as_ref(),
                vhedge.as_ref(),
                known,
                max_body,
                opts.legacy_query_present_match,
            ) {
                let mut entry = entry;
                entry.buffer_limit = r
                    .per_request_buffer_limit_bytes
                    .or(v.per_request_buffer_limit_bytes);
                routes.push(entry);
            }
            next_id += 1;
        }
        let mut vhost = table::make_vhost(
            vi as u32,
            v.name.as_str().into(),
            vdomains,
            routes,
            v.require_tls,
            vreq,
            vresp,
            if opts.raw_paths { None } else { Some(vpolicy) },
        );
        vhost.filters = table::filters(&v.typed_per_filter_config);
        vhost.cors = vcors;
        vhost.local_rate_limit = vlocal_limit;
        vhost.rate_limits = vlimits;
        vhost.metadata = v.metadata.clone().map(Box::new);
        vhost.mirrors = mirror_policies(
            &mut ctx,
            "request_mirror_policies",
            &v.request_mirror_policies,
            known,
        );
        vhosts.push(vhost);
    }

    if let Some(errs) = ConfigErrors::from_vec(errors) {
        return Err(errs);
    }
    let mut table = RouteTable::assemble(
        name,
        vhosts.into(),
        domains,
        &config,
        global_req,
        global_resp,
        internal_only.into(),
        global_mirrors,
    );
    table.cors = global_cors;
    table.local_rate_limit = global_local_limit;
    Ok(table)
}

#[allow(clippy::too_many_arguments)]
fn compile_route(
    ctx: &mut Ctx<'_>,
    r: &config::Route,
    id: u32,
    index: u32,
    name: String,
    vhost_retry: Option<&RetryPolicy>,
    vhost_hedge: Option<&HedgePolicy>,
    known: Option<&std::collections::HashSet<String>>,
    max_body: BodyRules,
    legacy_query: bool,
) -> Option<table::RouteEntry> {
    let before = ctx.errors.len();
    let Some(m) = &r.match_ else {
        ctx.err(
            ErrorKind::Missing,
            "match",
            "value is required (RouteValidationError.Match)",
        );
        return None;
    };
    let Some(a) = &r.action else {
        ctx.err(
            ErrorKind::Missing,
            "action",
            "a route needs an action: cluster, cluster_header, weighted_clusters, redirect or direct_response",
        );
        return None;
    };

    // ---- path specifier
    let specs = set_count(&[
        m.prefix.is_some(),
        m.path.is_some(),
        m.path_separated_prefix.is_some(),
        m.regex.is_some(),
        m.path_template.is_some(),
        m.connect_matcher.is_some(),
    ]);
    let path = match specs {
        0 => {
            ctx.err(
                ErrorKind::Missing,
                "match",
                "one of prefix, path, path_separated_prefix, regex, path_template or connect_matcher is required (RouteMatchValidationError.PathSpecifier)",
            );
            None
        }
        1 => {
            if let Some(p) = &m.prefix {
                Some(PathSpec::Prefix(p.as_str().into()))
            } else if let Some(p) = &m.path {
                Some(PathSpec::Exact(p.as_str().into()))
            } else if let Some(p) = &m.path_separated_prefix {
                if p.ends_with('/') || p.contains('?') || p.contains('#') {
                    ctx.err(
                        ErrorKind::Invalid,
                        "match.path_separated_prefix",
                        format!("must not end with '/' or contain '?' or '#', got {p:?}"),
                    );
                    None
                } else if !p.starts_with('/') {
                    ctx.err(
                        ErrorKind::Invalid,
                        "match.path_separated_prefix",
                        format!("must start with '/', got {p:?}"),
                    );
                    None
                } else {
                    Some(PathSpec::Separated(p.as_str().into()))
                }
            } else if let Some(p) = &m.regex {
                ctx.full_regex("match.regex", p).map(PathSpec::Regex)
            } else if let Some(t) = &m.path_template {
                match MatchTemplate::parse(t) {
                    Ok(t) => Some(PathSpec::Template(t)),
                    Err(e) => {
                        ctx.err(ErrorKind::Invalid, "match.path_template", e);
                        None
                    }
                }
            } else {
                Some(PathSpec::Connect)
            }
        }
        _ => {
            ctx.err(
                ErrorKind::Conflict,
                "match",
                "set only one of prefix, path, path_separated_prefix, regex, path_template or connect_matcher",
            );
            None
        }
    };
    for (field, s) in [("match.prefix", &m.prefix), ("match.path", &m.path)] {
        if let Some(s) = s {
            if has_ctl(s) {
                ctx.err(ErrorKind::Invalid, field, "contains control characters");
            }
        }
    }

    // ---- conditions
    let matchers = m.headers.len() + m.query_parameters.len();
    if matchers > ctx.limits.max_matchers_per_route {
        ctx.err(
            ErrorKind::Limit,
            "match",
            format!(
                "{matchers} header and query matchers; the limit is {} (limits.max_matchers_per_route)",
                ctx.limits.max_matchers_per_route
            ),
        );
    }
    let headers: Vec<HeaderCond> = m
        .headers
        .iter()
        .enumerate()
        .filter_map(|(i, h)| ctx.header(&format!("match.headers[{i}]"), h))
        .collect();
    let query: Vec<QueryCond> = m
        .query_parameters
        .iter()
        .enumerate()
        .filter_map(|(i, q)| ctx.query(&format!("match.query_parameters[{i}]"), q, legacy_query))
        .collect();

    // ---- action
    let kinds = set_count(&[
        a.cluster.is_some(),
        a.cluster_header.is_some(),
        a.weighted_clusters.is_some(),
        a.redirect.is_some(),
        a.direct_response.is_some(),
    ]);
    if kinds != 1 {
        ctx.err(
            if kinds == 0 { ErrorKind::Missing } else { ErrorKind::Conflict },
            "action",
            "set exactly one of cluster, cluster_header, weighted_clusters, redirect or direct_response",
        );
        return None;
    }
    let is_forward = a.redirect.is_none() && a.direct_response.is_none();
    if !is_forward {
        let route_only = [
            ("prefix_rewrite", a.prefix_rewrite.is_some()),
            ("regex_rewrite", a.regex_rewrite.is_some()),
            ("path_template_rewrite", a.path_template_rewrite.is_some()),
            ("host_rewrite_literal", a.host_rewrite_literal.is_some()),
            ("host_rewrite_header", a.host_rewrite_header.is_some()),
            (
                "host_rewrite_path_regex",
                a.host_rewrite_path_regex.is_some(),
            ),
            ("auto_host_rewrite", a.auto_host_rewrite.is_some()),
            ("retry_policy", a.retry_policy.is_some()),
            ("hedge_policy", a.hedge_policy.is_some()),
            ("rate_limits", !a.rate_limits.is_empty()),
            ("include_vh_rate_limits", a.include_vh_rate_limits.is_some()),
            ("cors", a.cors.is_some()),
            ("timeout_ms", a.timeout_ms.is_some()),
            ("max_stream_duration", a.max_stream_duration.is_some()),
            ("max_grpc_timeout_ms", a.max_grpc_timeout_ms.is_some()),
            ("grpc_timeout_offset_ms", a.grpc_timeout_offset_ms.is_some()),
            (
                "internal_redirect_policy",
                a.internal_redirect_policy.is_some(),
            ),
            (
                "request_mirror_policies",
                !a.request_mirror_policies.is_empty(),
            ),
        ];
        for (field, set) in route_only {
            if set {
                ctx.err(
                    ErrorKind::Conflict,
                    &format!("action.{field}"),
                    "only applies to routes that forward to a cluster",
                );
            }
        }
    }
    let check_cluster = |ctx: &mut Ctx<'_>, field: &str, c: &str| {
        if let Some(known) = known {
            if !known.contains(c) {
                ctx.err(
                    ErrorKind::UnknownCluster,
                    field,
                    format!("route: unknown cluster '{c}'"),
                );
            }
        }
    };
    let template = match &path {
        Some(PathSpec::Template(t)) => Some(t),
        _ => None,
    };
    let rewrite = rewrite_spec(
        ctx,
        "action",
        a.prefix_rewrite.as_deref(),
        a.regex_rewrite.as_ref(),
        a.path_template_rewrite.as_deref(),
        template,
    );
    let action = if let Some(c) = &a.cluster {
        if c.is_empty() {
            ctx.err(
                ErrorKind::Invalid,
                "action.cluster",
                "cluster name is empty",
            );
        }
        check_cluster(ctx, "action.cluster", c);
        Some(ActionSpec::Forward(ClusterSpec::Named(c.as_str().into())))
    } else if let Some(h) = &a.cluster_header {
        Some(ActionSpec::Forward(ClusterSpec::Header(
            h.to_ascii_lowercase().into(),
        )))
    } else if let Some(w) = &a.weighted_clusters {
        weighted(ctx, w, &check_cluster).map(|w| ActionSpec::Forward(ClusterSpec::Weighted(w)))
    } else if let Some(rd) = &a.redirect {
        redirect(ctx, rd)
    } else if let Some(d) = &a.direct_response {
        direct(ctx, d, max_body)
    } else {
        None
    };
    let host_rewrite = {
        let set = set_count(&[
            a.host_rewrite_literal.is_some(),
            a.host_rewrite_header.is_some(),
            a.host_rewrite_path_regex.is_some(),
            a.auto_host_rewrite == Some(true),
        ]);
        if set > 1 {
            ctx.err(
                ErrorKind::Conflict,
                "action",
                "set only one of host_rewrite_literal, auto_host_rewrite, host_rewrite_header or host_rewrite_path_regex",
            );
            None
        } else if let Some(h) = &a.host_rewrite_literal {
            if has_ctl(h) {
                ctx.err(
                    ErrorKind::Invalid,
                    "action.host_rewrite_literal",
                    "contains control characters",
                );
            }
            Some(HostRewrite::Literal(h.as_str().into()))
        } else if let Some(h) = &a.host_rewrite_header {
            Some(HostRewrite::Header(h.to_ascii_lowercase().into()))
        } else if let Some(r) = &a.host_rewrite_path_regex {
            ctx.regex_sub("action.host_rewrite_path_regex", r)
                .map(HostRewrite::PathRegex)
        } else if a.auto_host_rewrite == Some(true) {
            Some(HostRewrite::Auto)
        } else {
            None
        }
    };
    let retry = match &a.retry_policy {
        Some(p) => retry_policy(ctx, "action.retry_policy", p),
        None => vhost_retry.cloned(),
    };
    let hedge = match &a.hedge_policy {
        Some(p) => hedge_policy(ctx, "action.hedge_policy", p),
        None => vhost_hedge.cloned(),
    };
    let internal_redirect = a
        .internal_redirect_policy
        .as_ref()
        .filter(|_| is_forward)
        .and_then(|p| internal_redirect_policy(ctx, "action.internal_redirect_policy", p));
    let limits = rate_limits(ctx, "action.rate_limits", &a.rate_limits, legacy_query);
    let route_limits = (!limits.is_empty() || a.include_vh_rate_limits == Some(true)).then(|| {
        Box::new(RouteRateLimits {
            list: limits,
            include_vh: a.include_vh_rate_limits == Some(true),
        })
    });
    let cors = cors_level(
        ctx,
        a.cors.as_ref().map(|p| ("action.cors", p)),
        "typed_per_filter_config",
        &r.typed_per_filter_config,
    );
    let local_limit =
        local_rate_limit_level(ctx, "typed_per_filter_config", &r.typed_per_filter_config);
    check_rate_limit_per_route(ctx, "typed_per_filter_config", &r.typed_per_filter_config);
    let mut upgrades: Vec<(Box<str>, bool)> = Vec::new();
    for (i, u) in a.upgrade_configs.iter().enumerate() {
        if upgrades
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(&u.upgrade_type))
        {
            ctx.err(
                ErrorKind::Invalid,
                &format!("action.upgrade_configs[{i}]"),
                format!("Duplicate upgrade {}", u.upgrade_type),
            );
        }
        upgrades.push((u.upgrade_type.as_str().into(), u.enabled.unwrap_or(true)));
    }
    let req = ctx.mutations(
        "request_headers_to_add",
        &r.request_headers_to_add,
        "request_headers_to_remove",
        &r.request_headers_to_remove,
    );
    let resp = ctx.mutations(
        "response_headers_to_add",
        &r.response_headers_to_add,
        "response_headers_to_remove",
        &r.response_headers_to_remove,
    );
    let mirrors = mirror_policies(
        ctx,
        "action.request_mirror_policies",
        &a.request_mirror_policies,
        known,
    );
    let grpc = m.grpc.is_some();
    let runtime_fraction = m.runtime_fraction.as_ref().map(|f| {
        (
            f.default_value.numerator,
            f.default_value.denominator.value(),
        )
    });
    if ctx.errors.len() != before {
        return None;
    }
    let (path, action) = (path?, action?);
    Some(
        table::make_route(
            id,
            index,
            name.into(),
            path,
            // Envoy's URI-template matcher ignores case_sensitive.
            m.case_sensitive.unwrap_or(true) || m.path_template.is_some(),
            headers,
            query,
            grpc,
            runtime_fraction,
            action,
            rewrite.flatten(),
            host_rewrite,
            a.append_x_forwarded_host.unwrap_or(false),
            a.cluster_not_found_response_code
                .map_or(503, |c| c.status()),
            req,
            resp,
            a.timeout_ms.unwrap_or(15_000),
            a.idle_timeout_ms,
            retry,
            upgrades,
            a.hash_policy.clone(),
        )
        .entry,
    )
    .map(|mut e| {
        e.filters = table::filters(&r.typed_per_filter_config);
        e.hedge = hedge.map(Box::new);
        e.timeout_rules = crate::timeouts::TimeoutRules::from_action(a).map(Box::new);
        e.rate_limits = route_limits;
        e.cors = cors;
        e.local_rate_limit = local_limit;
        e.mirrors = mirrors;
        e.metadata = r.metadata.clone().map(Box::new);
        e.named = r.name.is_some();
        e.internal_redirect = internal_redirect.map(Box::new);
        e
    })
}

/// Envoy's `InternalRedirectPolicyImpl`, with RAUTA's checks: a status
/// Envoy would ignore (not 301, 302, 303, 307 or 308) is an error here.
fn internal_redirect_policy(
    ctx: &mut Ctx<'_>,
    field: &str,
    p: &config::InternalRedirectPolicy,
) -> Option<crate::internal_redirect::InternalRedirectPolicy> {
    use crate::internal_redirect::{Predicate, REDIRECT_CODES};
    let errors_before = ctx.errors.len();
    if p.redirect_response_codes.len() > 5 {
        ctx.err(
            ErrorKind::Invalid,
            &format!("{field}.redirect_response_codes"),
            format!(
                "at most 5 codes may be listed (got {})",
                p.redirect_response_codes.len()
            ),
        );
    }
    let mut codes = 0u8;
    for (i, &c) in p.redirect_response_codes.iter().enumerate() {
        match REDIRECT_CODES.iter().position(|&r| u32::from(r) == c) {
            Some(bit) => codes |= 1 << bit,
            None => ctx.err(
                ErrorKind::Invalid,
                &format!("{field}.redirect_response_codes[{i}]"),
                format!("{c} is not a redirect that can be followed (301, 302, 303, 307 or 308)"),
            ),
        }
    }
    if p.redirect_response_codes.is_empty() {
        codes = 1 << 1; // 302
    }
    let mut copy = Vec::with_capacity(p.response_headers_to_copy.len());
    for (i, name) in p.response_headers_to_copy.iter().enumerate() {
        match mutate::check_name(name, "copied") {
            Ok(n) => copy.push(http::HeaderName::from_bytes(n.as_bytes()).ok()?),
            Err(e) => ctx.err(
                ErrorKind::Invalid,
                &format!("{field}.response_headers_to_copy[{i}]"),
                e,
            ),
        }
    }
    let mut predicates = Vec::with_capacity(p.predicates.len());
    for (i, pred) in p.predicates.iter().enumerate() {
        let at = format!("{field}.predicates[{i}]");
        predicates.push(match pred {
            config::InternalRedirectPredicate::AllowListedRoutes {
                allowed_route_names,
            } => {
                if let Some(j) = allowed_route_names.iter().position(String::is_empty) {
                    ctx.err(
                        ErrorKind::Invalid,
                        &format!("{at}.allow_listed_routes.allowed_route_names[{j}]"),
                        "a route name may not be empty",
                    );
                }
                Predicate::AllowListed(
                    allowed_route_names
                        .iter()
                        .map(|n| n.as_str().into())
                        .collect(),
                )
            }
            config::InternalRedirectPredicate::PreviousRoutes {} => Predicate::PreviousRoutes,
            config::InternalRedirectPredicate::SafeCrossScheme {} => Predicate::SafeCrossScheme,
        });
    }
    (ctx.errors.len() == errors_before).then(|| crate::internal_redirect::InternalRedirectPolicy {
        max: p.max_internal_redirects.unwrap_or(1),
        codes,
        cross_scheme: p.allow_cross_scheme_redirect.unwrap_or(false),
        copy: copy.into(),
        predicates: predicates.into(),
    })
}

/// `Some(None)`: no rewrite; `None`: an error was reported.
fn rewrite_spec(
    ctx: &mut Ctx<'_>,
    field: &str,
    prefix: Option<&str>,
    regex: Option<&config::RegexRewrite>,
    template_rw: Option<&str>,
    template: Option<&MatchTemplate>,
) -> Option<Option<PathRewrite>> {
    let n = set_count(&[prefix.is_some(), regex.is_some(), template_rw.is_some()]);
    if n > 1 {
        ctx.err(
            ErrorKind::Conflict,
            field,
            "Specify only one of prefix_rewrite, regex_rewrite or path_rewrite_policy",
        );
        return None;
    }
    if let Some(p) = prefix {
        if template.is_some() {
            ctx.err(
                ErrorKind::Conflict,
                &format!("{field}.prefix_rewrite"),
                "Cannot use prefix_rewrite with matcher extension (path_template)",
            );
            return None;
        }
        if has_ctl(p) {
            ctx.err(
                ErrorKind::Invalid,
                &format!("{field}.prefix_rewrite"),
                "contains control characters",
            );
            return None;
        }
        return Some(Some(PathRewrite::Prefix(p.into())));
    }
    if let Some(r) = regex {
        return ctx
            .regex_sub(&format!("{field}.regex_rewrite"), r)
            .map(|r| Some(PathRewrite::Regex(r)));
    }
    if let Some(t) = template_rw {
        let Some(m) = template else {
            ctx.err(
                ErrorKind::Invalid,
                &format!("{field}.path_template_rewrite"),
                "needs a match.path_template to take variables from",
            );
            return None;
        };
        return match RewriteTemplate::parse(t, m) {
            Ok(rw) => Some(Some(PathRewrite::Template(rw))),
            Err(e) => {
                ctx.err(
                    ErrorKind::Invalid,
                    &format!("{field}.path_template_rewrite"),
                    e,
                );
                None
            }
        };
    }
    Some(None)
}

/// Compiles a level's `request_mirror_policies` (`field` names the list).
fn mirror_policies(
    ctx: &mut Ctx<'_>,
    field: &str,
    list: &[config::RequestMirrorPolicy],
    known: Option<&std::collections::HashSet<String>>,
) -> Box<[table::MirrorSpec]> {
    let mut out = Vec::with_capacity(list.len());
    for (i, p) in list.iter().enumerate() {
        let at = format!("{field}[{i}]");
        let cluster = match (&p.cluster, &p.cluster_header) {
            (Some(c), None) if !c.is_empty() => {
                if known.is_some_and(|k| !k.contains(c)) {
                    ctx.err(
                        ErrorKind::UnknownCluster,
                        &format!("{at}.cluster"),
                        format!("route: unknown cluster '{c}'"),
                    );
                    continue;
                }
                ClusterName::Named(c.as_str().into())
            }
            (None, Some(h)) if http::HeaderName::from_bytes(h.as_bytes()).is_ok() => {
                ClusterName::Header(h.to_ascii_lowercase().into())
            }
            (None, Some(h)) => {
                ctx.err(
                    ErrorKind::Invalid,
                    &format!("{at}.cluster_header"),
                    format!("{h:?} is not a valid header name"),
                );
                continue;
            }
            (Some(c), Some(h)) => {
                ctx.err(
                    ErrorKind::Conflict,
                    &at,
                    format!(
                        "Only one of cluster '{c}' or cluster_header '{h}' in request mirror policy can be specified"
                    ),
                );
                continue;
            }
            _ => {
                ctx.err(
                    ErrorKind::Missing,
                    &at,
                    "Exactly one of cluster or cluster_header in request mirror policy need to be specified",
                );
                continue;
            }
        };
        out.push(table::MirrorSpec {
            cluster,
            fraction: p.runtime_fraction.as_ref().map(|f| {
                (
                    f.default_value.numerator,
                    f.default_value.denominator.value(),
                )
            }),
            shadow_suffix: !p.disable_shadow_host_suffix_append.unwrap_or(false),
        });
    }
    out.into()
}

fn weighted(
    ctx: &mut Ctx<'_>,
    w: &config::WeightedClusters,
    check_cluster: &dyn Fn(&mut Ctx<'_>, &str, &str),
) -> Option<Weighted> {
    let list = w.clusters();
    if list.is_empty() {
        ctx.err(
            ErrorKind::Missing,
            "action.weighted_clusters",
            "at least one cluster is required",
        );
        return None;
    }
    let mut entries = Vec::with_capacity(list.len());
    let mut total = 0u64;
    let mut ok = true;
    for (i, e) in list.iter().enumerate() {
        let field = format!("action.weighted_clusters[{i}]");
        let cluster = match (&e.name, &e.cluster_header) {
            (Some(_), Some(_)) => {
                ctx.err(
                    ErrorKind::Conflict,
                    &field,
                    "Only one of name or cluster_header can be specified",
                );
                ok = false;
                continue;
            }
            (None, None) => {
                ctx.err(
                    ErrorKind::Missing,
                    &field,
                    "At least one of name or cluster_header need to be specified",
                );
                ok = false;
                continue;
            }
            (Some(n), None) => {
                check_cluster(ctx, &format!("{field}.name"), n);
                ClusterName::Named(n.as_str().into())
            }
            (None, Some(h)) => ClusterName::Header(h.to_ascii_lowercase().into()),
        };
        let Some(weight) = e.weight else {
            ctx.err(
                ErrorKind::Missing,
                &format!("{field}.weight"),
                "Field 'weight' is missing",
            );
            ok = false;
            continue;
        };
        total += u64::from(weight);
        let request = ctx.mutations(
            &format!("{field}.request_headers_to_add"),
            &e.request_headers_to_add,
            &format!("{field}.request_headers_to_remove"),
            &e.request_headers_to_remove,
        );
        let response = ctx.mutations(
            &format!("{field}.response_headers_to_add"),
            &e.response_headers_to_add,
            &format!("{field}.response_headers_to_remove"),
            &e.response_headers_to_remove,
        );
        if e.host_rewrite_literal.as_deref().is_some_and(has_ctl) {
            ctx.err(
                ErrorKind::Invalid,
                &format!("{field}.host_rewrite_literal"),
                "contains control characters",
            );
            ok = false;
        }
        entries.push(WeightedEntry {
            cluster,
            weight,
            request,
            response,
            host_rewrite: e.host_rewrite_literal.as_deref().map(Into::into),
            filters: table::filters(&e.typed_per_filter_config),
            cors: cors_level(
                ctx,
                None,
                &format!("{field}.typed_per_filter_config"),
                &e.typed_per_filter_config,
            ),
            local_rate_limit: local_rate_limit_level(
                ctx,
                &format!("{field}.typed_per_filter_config"),
                &e.typed_per_filter_config,
            ),
        });
        check_rate_limit_per_route(
            ctx,
            &format!("{field}.typed_per_filter_config"),
            &e.typed_per_filter_config,
        );
    }
    if !ok {
        return None;
    }
    if total == 0 {
        ctx.err(
            ErrorKind::Invalid,
            "action.weighted_clusters",
            "Sum of weights in the weighted_cluster must be greater than 0.",
        );
        return None;
    }
    if total > u64::from(u32::MAX) {
        let route = ctx.route.as_ref().map(|r| r.1.clone()).unwrap_or_default();
        ctx.err(
            ErrorKind::Invalid,
            "action.weighted_clusters",
            format!(
                "The sum of weights of all weighted clusters of route {route} exceeds {}",
                u32::MAX
            ),
        );
        return None;
    }
    if entries.len() > usize::from(u16::MAX) {
        ctx.err(
            ErrorKind::Limit,
            "action.weighted_clusters",
            "more than 65535 entries",
        );
        return None;
    }
    Some(Weighted {
        entries: entries.into(),
        total,
        header_name: w.header_name().map(|h| h.to_ascii_lowercase().into()),
    })
}

fn redirect(ctx: &mut Ctx<'_>, rd: &config::Redirect) -> Option<ActionSpec> {
    let mut fine = true;
    for (field, v) in [
        ("action.redirect.scheme_redirect", &rd.scheme_redirect),
        ("action.redirect.host_redirect", &rd.host_redirect),
        ("action.redirect.path_redirect", &rd.path_redirect),
        ("action.redirect.prefix_rewrite", &rd.prefix_rewrite),
    ] {
        if let Some(v) = v {
            if has_ctl(v) || v.contains(' ') && !field.ends_with("path_redirect") {
                ctx.err(
                    ErrorKind::Invalid,
                    field,
                    "contains control characters or spaces",
                );
                fine = false;
            }
        }
    }
    if rd.scheme_redirect.is_some() && rd.https_redirect {
        ctx.err(
            ErrorKind::Conflict,
            "action.redirect",
            "set either scheme_redirect or https_redirect, not both",
        );
        fine = false;
    }
    if rd.path_redirect.is_some() && (rd.prefix_rewrite.is_some() || rd.regex_rewrite.is_some()) {
        ctx.err(
            ErrorKind::Conflict,
            "action.redirect",
            "set only one of path_redirect, prefix_rewrite or regex_rewrite",
        );
        fine = false;
    }
    let rewrite = rewrite_spec(
        ctx,
        "action.redirect",
        rd.prefix_rewrite.as_deref(),
        rd.regex_rewrite.as_ref(),
        None,
        None,
    )?;
    if !fine {
        return None;
    }
    let scheme = match (&rd.scheme_redirect, rd.https_redirect) {
        (Some(s), _) => Some(s.to_ascii_lowercase().into()),
        (None, true) => Some("https".into()),
        (None, false) => None,
    };
    Some(ActionSpec::Redirect(table::make_redirect(
        scheme,
        rd.host_redirect.as_deref().map(Into::into),
        rd.port_redirect,
        rd.path_redirect.as_deref().map(Into::into),
        rewrite,
        rd.strip_query,
        rd.response_code.map_or(301, |c| c.status()),
    )))
}

/// How direct-response bodies are read: the size limit and whether files
/// and environment variables may be read.
#[derive(Debug, Clone, Copy)]
struct BodyRules {
    max: usize,
    local: bool,
}

fn direct(ctx: &mut Ctx<'_>, d: &config::DirectResponse, rules: BodyRules) -> Option<ActionSpec> {
    const FIELD: &str = "action.direct_response.body";
    let max_body = rules.max;
    if !(100..=599).contains(&d.status) {
        ctx.err(
            ErrorKind::Invalid,
            "action.direct_response.status",
            format!("status must be in 100..=599, got {}", d.status),
        );
        return None;
    }
    let too_big = |ctx: &mut Ctx<'_>, len: usize| {
        ctx.err(
            ErrorKind::Limit,
            FIELD,
            format!("response body size is {len} bytes; maximum is {max_body}"),
        );
    };
    let body: String = match (&d.body, &d.body_repeat) {
        (Some(_), Some(_)) => {
            ctx.err(
                ErrorKind::Conflict,
                "action.direct_response",
                "set body or body_repeat, not both",
            );
            return None;
        }
        (Some(config::DataSource::Text(b)), None) => b.clone(),
        (Some(config::DataSource::Source(src)), None) => data_source(ctx, FIELD, src, rules)?,
        (None, Some(r)) => {
            let len = r.ch.len_utf8().saturating_mul(r.count);
            if len > max_body {
                too_big(ctx, len);
                return None;
            }
            std::iter::repeat_n(r.ch, r.count).collect()
        }
        (None, None) => String::new(),
    };
    if body.len() > max_body {
        too_big(ctx, body.len());
        return None;
    }
    Some(ActionSpec::Direct {
        status: d.status,
        body: body.into(),
    })
}

/// Reads an Envoy `DataSource` as text. A file is read up to one byte past
/// the limit, so a huge file is neither read whole nor accepted.
fn data_source(
    ctx: &mut Ctx<'_>,
    field: &str,
    src: &config::DataSourceSpec,
    rules: BodyRules,
) -> Option<String> {
    let set = set_count(&[
        src.inline_string.is_some(),
        src.inline_bytes.is_some(),
        src.filename.is_some(),
        src.environment_variable.is_some(),
    ]);
    if set != 1 {
        ctx.err(
            if set == 0 {
                ErrorKind::Missing
            } else {
                ErrorKind::Conflict
            },
            field,
            "set exactly one of inline_string, inline_bytes, filename or environment_variable",
        );
        return None;
    }
    let local = |ctx: &mut Ctx<'_>, what: &str| {
        if !rules.local {
            ctx.err(
                ErrorKind::Unsupported,
                &format!("{field}.{what}"),
                "reading files and environment variables is turned off (BuildOptions::local_data_sources)",
            );
        }
        rules.local
    };
    let utf8 = |ctx: &mut Ctx<'_>, what: &str, bytes: Vec<u8>| match String::from_utf8(bytes) {
        Ok(s) => Some(s),
        Err(_) => {
            ctx.err(
                ErrorKind::Invalid,
                &format!("{field}.{what}"),
                "the body is not UTF-8",
            );
            None
        }
    };
    if let Some(s) = &src.inline_string {
        return Some(s.clone());
    }
    if let Some(b) = &src.inline_bytes {
        let Some(bytes) = base64_decode(b) else {
            ctx.err(
                ErrorKind::Invalid,
                &format!("{field}.inline_bytes"),
                "not valid base64",
            );
            return None;
        };
        return utf8(ctx, "inline_bytes", bytes);
    }
    if let Some(path) = &src.filename {
        if !local(ctx, "filename") {
            return None;
        }
        use std::io::Read;
        let mut bytes = Vec::new();
        // Only regular files: opening a FIFO would wait for a writer, and a
        // device may never end.
        let read = std::fs::metadata(path).and_then(|m| {
            if !m.is_file() {
                return Err(std::io::Error::other("not a regular file"));
            }
            std::fs::File::open(path)?
                .take(rules.max as u64 + 1)
                .read_to_end(&mut bytes)
        });
        if let Err(e) = read {
            ctx.err(
                ErrorKind::Invalid,
                &format!("{field}.filename"),
                format!("cannot read {path:?}: {e}"),
            );
            return None;
        }
        if bytes.len() > rules.max {
            ctx.err(
                ErrorKind::Limit,
                &format!("{field}.filename"),
                format!(
                    "file {path} is larger than {} bytes, the body limit",
                    rules.max
                ),
            );
            return None;
        }
        return utf8(ctx, "filename", bytes);
    }
    let name = src.environment_variable.as_deref()?;
    if !local(ctx, "environment_variable") {
        return None;
    }
    match std::env::var_os(name) {
        Some(v) => utf8(ctx, "environment_variable", v.into_encoded_bytes()),
        None => {
            ctx.err(
                ErrorKind::Invalid,
                &format!("{field}.environment_variable"),
                format!("Environment variable doesn't exist: {name}"),
            );
            None
        }
    }
}

/// Decodes base64 in either alphabet (`+/` or `-_`), with or without `=`
/// padding, as protobuf's JSON parsers accept `bytes` fields.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let digits = text.trim_end_matches('=');
    if text.len() - digits.len() > 2 || digits.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in digits.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}
