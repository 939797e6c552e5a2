//! Envoy's own `RouteConfiguration` shape (v3 API, as YAML or JSON), read
//! into RAUTA's [`RouteConfig`].
//!
//! RAUTA's model is Envoy's with a few flattenings (docs/config.md,
//! "Conventions"). This module undoes them on the way in, so that a route
//! configuration written for Envoy (with snake_case field names, as
//! Envoy's YAML is written) loads as it is:
//!
//! - a route's `route` (`RouteAction`), `redirect` or `direct_response`
//!   becomes its `action`;
//! - `safe_regex: {regex: ...}` in a route match becomes `regex`;
//! - the `envoy.path.match.uri_template` and `envoy.path.rewrite.uri_template`
//!   extensions become `path_template` and `path_template_rewrite`;
//! - durations (`"1.5s"`, or `{seconds, nanos}`) become the `_ms` fields,
//!   truncated to whole milliseconds as Envoy reads them.
//!
//! Everything else is the same field in both shapes. Fields RAUTA does not
//! support stay unknown fields, so they fail the load rather than being
//! dropped, and RAUTA's own names for the converted fields are refused. Errors name the virtual host and route they are in, and the
//! Envoy field where the shape was wrong.

use serde_json::{Map, Value};

use crate::config::{Route, RouteConfig, VirtualHost};
use crate::error::{ConfigError, ConfigErrors, ErrorKind};

/// The type URLs a whole configuration may carry.
const ROUTE_CONFIGURATION: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
const URI_TEMPLATE_MATCH: &str = "envoy.path.match.uri_template";
const URI_TEMPLATE_REWRITE: &str = "envoy.path.rewrite.uri_template";

/// Where a conversion error is: the virtual host, the route and the field.
#[derive(Default, Clone)]
struct At {
    vhost: Option<(usize, String)>,
    route: Option<(usize, String)>,
}

impl At {
    fn error(&self, kind: ErrorKind, field: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::located(
            kind,
            message,
            self.vhost.as_ref(),
            self.route.as_ref(),
            field,
        )
    }

    /// The error for a part that is not a mapping.
    fn not_a_mapping(&self, value: &Value) -> ConfigError {
        self.error(
            ErrorKind::Parse,
            "",
            format!("expected a mapping, got {}", kind_of(value)),
        )
    }
}

type Errors = Vec<ConfigError>;

/// Reads Envoy's `RouteConfiguration` from an already-parsed value.
pub(crate) fn from_value(mut value: Value) -> Result<RouteConfig, ConfigErrors> {
    let mut twice = Vec::new();
    snake_case_keys(&mut value, &mut twice);
    let mut errors = Errors::new();
    for key in twice {
        errors.push(At::default().error(
            ErrorKind::Parse,
            &key,
            "the field is given twice (in snake_case and lowerCamelCase)",
        ));
    }
    let top = At::default();
    let Some(obj) = value.as_object_mut() else {
        return Err(top
            .error(
                ErrorKind::Parse,
                "",
                "an Envoy RouteConfiguration must be a mapping",
            )
            .into());
    };
    if let Some(t) = obj.remove("@type") {
        if t.as_str() != Some(ROUTE_CONFIGURATION) {
            errors.push(top.error(
                ErrorKind::Invalid,
                "@type",
                format!("expected {ROUTE_CONFIGURATION}, got {t}"),
            ));
        }
    }
    let vhosts = take_list(obj, "virtual_hosts", &top, &mut errors);
    let mut config: Option<RouteConfig> = parse(value, &top, "", &mut errors);
    let mut out = Vec::with_capacity(vhosts.len());
    for (vi, v) in vhosts.into_iter().enumerate() {
        if let Some(v) = virtual_host(vi, v, &mut errors) {
            out.push(v);
        }
    }
    if let Some(c) = config.as_mut() {
        c.virtual_hosts = out;
    }
    match ConfigErrors::from_vec(errors) {
        Some(e) => Err(e),
        None => Ok(config.expect("no errors means the configuration parsed")),
    }
}

/// Protobuf's JSON mapping may name fields in lowerCamelCase
/// (`virtualHosts`, `perTryTimeout`), as protojson prints them; Envoy reads
/// both. Rewrites such keys to snake_case, everywhere but in opaque values:
/// a `Metadata` message's two maps are left as they are (its own field
/// names are rewritten), and of `typed_per_filter_config` only the values
/// of Envoy's own types (`@type: type.googleapis.com/envoy.*`) are
/// rewritten, never the filter names. A field given in both spellings goes
/// to `twice`.
fn snake_case_keys(v: &mut Value, twice: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (key, mut value) in std::mem::take(m) {
                let key = camel_to_snake(&key).unwrap_or(key);
                if m.contains_key(&key) {
                    twice.push(key);
                    continue;
                }
                match key.as_str() {
                    // Route, virtual host and configuration metadata (a
                    // rate limit action's `metadata` is an ordinary
                    // message).
                    "metadata" if is_metadata_message(&value) => {
                        if let Value::Object(meta) = &mut value {
                            for (k, x) in std::mem::take(meta) {
                                meta.insert(camel_to_snake(&k).unwrap_or(k), x);
                            }
                        }
                    }
                    "typed_per_filter_config" => {
                        if let Value::Object(filters) = &mut value {
                            for f in filters.values_mut() {
                                snake_case_envoy_any(f, twice);
                            }
                        }
                    }
                    // A FilterConfig's wrapped configuration.
                    "config" => snake_case_envoy_any(&mut value, twice),
                    _ => snake_case_keys(&mut value, twice),
                }
                m.insert(key, value);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| snake_case_keys(x, twice)),
        _ => {}
    }
}

/// Whether `v` is Envoy's `Metadata` message (only its two map fields).
fn is_metadata_message(v: &Value) -> bool {
    v.as_object().is_some_and(|m| {
        m.keys().all(|k| {
            matches!(
                k.as_str(),
                "filter_metadata"
                    | "filterMetadata"
                    | "typed_filter_metadata"
                    | "typedFilterMetadata"
            )
        })
    })
}

/// [`snake_case_keys`] for a value of Envoy's own type only: other
/// filters' configurations are the proxy's, kept as written.
fn snake_case_envoy_any(v: &mut Value, twice: &mut Vec<String>) {
    let envoy_type = v
        .get("@type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.starts_with("type.googleapis.com/envoy."));
    if envoy_type {
        snake_case_keys(v, twice);
    }
}

/// `perTryTimeout` → `per_try_timeout`; `None` for a key that is not
/// lowerCamelCase (snake_case, `@type`, filter names, header names).
fn camel_to_snake(key: &str) -> Option<String> {
    let b = key.as_bytes();
    if !b.first()?.is_ascii_lowercase()
        || !b.iter().any(u8::is_ascii_uppercase)
        || !b.iter().all(u8::is_ascii_alphanumeric)
    {
        return None;
    }
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// Takes the list `key` out of `obj` (none when absent or null).
fn take_list(obj: &mut Map<String, Value>, key: &str, at: &At, errors: &mut Errors) -> Vec<Value> {
    match obj.remove(key) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(v)) => v,
        Some(other) => {
            errors.push(at.error(
                ErrorKind::Parse,
                key,
                format!("expected a list, got {}", kind_of(&other)),
            ));
            Vec::new()
        }
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn name_of(v: &Value) -> Option<String> {
    v.get("name").and_then(Value::as_str).map(str::to_owned)
}

/// Deserializes a converted part; its error goes to `errors` at `at`.
fn parse<T: serde::de::DeserializeOwned>(
    value: Value,
    at: &At,
    field: &str,
    errors: &mut Errors,
) -> Option<T> {
    match serde_json::from_value(value) {
        Ok(t) => Some(t),
        Err(e) => {
            errors.push(at.error(ErrorKind::Parse, field, e.to_string()));
            None
        }
    }
}

fn virtual_host(index: usize, mut value: Value, errors: &mut Errors) -> Option<VirtualHost> {
    let name = name_of(&value).unwrap_or_else(|| format!("virtual_hosts[{index}]"));
    let at = At {
        vhost: Some((index, name)),
        route: None,
    };
    let Some(obj) = value.as_object_mut() else {
        errors.push(at.not_a_mapping(&value));
        return None;
    };
    let routes = take_list(obj, "routes", &at, errors);
    if let Some(p) = obj.get_mut("retry_policy") {
        retry_policy(p, &at, "retry_policy", errors);
    }
    let mut vhost: Option<VirtualHost> = parse(value, &at, "", errors);
    let mut out = Vec::with_capacity(routes.len());
    for (ri, r) in routes.into_iter().enumerate() {
        let name = name_of(&r).unwrap_or_else(|| format!("routes[{ri}]"));
        let at = At {
            vhost: at.vhost.clone(),
            route: Some((ri, name)),
        };
        if let Some(r) = route(r, &at, errors) {
            out.push(r);
        }
    }
    if let Some(v) = vhost.as_mut() {
        v.routes = out;
    }
    vhost
}

fn route(mut value: Value, at: &At, errors: &mut Errors) -> Option<Route> {
    let Some(obj) = value.as_object_mut() else {
        errors.push(at.not_a_mapping(&value));
        return None;
    };
    if obj.contains_key("action") {
        errors.push(at.error(
            ErrorKind::Parse,
            "action",
            "`action` is RAUTA's shape; an Envoy route has route, redirect or direct_response",
        ));
        return None;
    }
    if let Some(m) = obj.get_mut("match").and_then(Value::as_object_mut) {
        route_match(m, at, errors);
    }
    let mut action = Map::new();
    if let Some(mut r) = obj.remove("route") {
        if let Some(a) = r.as_object_mut() {
            route_action(a, at, errors);
        }
        match r {
            Value::Object(a) => action = a,
            other => errors.push(at.error(
                ErrorKind::Parse,
                "route",
                format!("expected a mapping, got {}", kind_of(&other)),
            )),
        }
    }
    if let Some(d) = obj.get("direct_response").and_then(Value::as_object) {
        rauta_only(
            d,
            &[("body_repeat", "`body: {inline_string: ...}`")],
            "direct_response",
            at,
            errors,
        );
    }
    for key in ["redirect", "direct_response"] {
        if let Some(v) = obj.remove(key) {
            action.insert(key.to_owned(), v);
        }
    }
    if !action.is_empty() {
        obj.insert("action".to_owned(), Value::Object(action));
    }
    parse(value, at, "", errors)
}

/// Refuses RAUTA-only field names in Envoy-shaped input (so that, say,
/// `match.regex`, once Envoy's v2 field with other semantics, is not read
/// as RAUTA's).
fn rauta_only(
    obj: &Map<String, Value>,
    keys: &[(&str, &str)],
    parent: &str,
    at: &At,
    errors: &mut Errors,
) {
    for (key, envoy) in keys {
        if obj.contains_key(*key) {
            errors.push(at.error(
                ErrorKind::Parse,
                &format!("{parent}.{key}"),
                format!("`{key}` is RAUTA's shape; Envoy's is {envoy}"),
            ));
        }
    }
}

fn route_match(m: &mut Map<String, Value>, at: &At, errors: &mut Errors) {
    rauta_only(
        m,
        &[
            ("regex", "`safe_regex: {regex: ...}`"),
            (
                "path_template",
                "`path_match_policy` with envoy.path.match.uri_template",
            ),
        ],
        "match",
        at,
        errors,
    );
    if let Some(r) = m.remove("safe_regex") {
        match r.get("regex").and_then(Value::as_str) {
            Some(p) => {
                m.insert("regex".to_owned(), Value::String(p.to_owned()));
            }
            None => errors.push(at.error(
                ErrorKind::Parse,
                "match.safe_regex",
                "expected {regex: <pattern>}",
            )),
        }
    }
    if let Some(p) = m.remove("path_match_policy") {
        if let Some(t) = extension(
            &p,
            at,
            "match.path_match_policy",
            URI_TEMPLATE_MATCH,
            "path_template",
            errors,
        ) {
            m.insert("path_template".to_owned(), t);
        }
    }
}

/// The one field of a typed extension config (`{name, typed_config: {...}}`).
fn extension(
    v: &Value,
    at: &At,
    field: &str,
    name: &str,
    key: &str,
    errors: &mut Errors,
) -> Option<Value> {
    let given = v.get("name").and_then(Value::as_str).unwrap_or("");
    let value = v.get("typed_config").and_then(|c| c.get(key));
    if given != name || value.is_none() {
        errors.push(at.error(
            ErrorKind::Unsupported,
            field,
            format!("only the {name} extension is supported (with typed_config.{key})"),
        ));
        return None;
    }
    value.cloned()
}

fn route_action(a: &mut Map<String, Value>, at: &At, errors: &mut Errors) {
    rauta_only(
        a,
        &[(
            "path_template_rewrite",
            "`path_rewrite_policy` with envoy.path.rewrite.uri_template",
        )],
        "route",
        at,
        errors,
    );
    if let Some(p) = a.remove("path_rewrite_policy") {
        if let Some(t) = extension(
            &p,
            at,
            "route.path_rewrite_policy",
            URI_TEMPLATE_REWRITE,
            "path_template_rewrite",
            errors,
        ) {
            a.insert("path_template_rewrite".to_owned(), t);
        }
    }
    duration_field(a, "timeout", "timeout_ms", at, "route", errors);
    duration_field(a, "idle_timeout", "idle_timeout_ms", at, "route", errors);
    duration_field(
        a,
        "max_grpc_timeout",
        "max_grpc_timeout_ms",
        at,
        "route",
        errors,
    );
    duration_field(
        a,
        "grpc_timeout_offset",
        "grpc_timeout_offset_ms",
        at,
        "route",
        errors,
    );
    if let Some(d) = a
        .get_mut("max_stream_duration")
        .and_then(Value::as_object_mut)
    {
        let field = "route.max_stream_duration";
        for name in [
            "max_stream_duration",
            "grpc_timeout_header_max",
            "grpc_timeout_header_offset",
        ] {
            duration_field(d, name, &format!("{name}_ms"), at, field, errors);
        }
    }
    if let Some(p) = a.get_mut("retry_policy") {
        retry_policy(p, at, "route.retry_policy", errors);
    }
    internal_redirect(a, at, errors);
    if let Some(Value::Array(list)) = a.get_mut("hash_policy") {
        for (i, h) in list.iter_mut().enumerate() {
            if let Some(c) = h.get_mut("cookie").and_then(Value::as_object_mut) {
                let field = format!("route.hash_policy[{i}].cookie");
                duration_field(c, "ttl", "ttl_ms", at, &field, errors);
            }
        }
    }
}

/// The internal redirect predicates Envoy ships: config type URL, RAUTA's
/// key.
const REDIRECT_PREDICATES: [(&str, &str); 3] = [
    (
        "type.googleapis.com/envoy.extensions.internal_redirect.allow_listed_routes.v3.AllowListedRoutesConfig",
        "allow_listed_routes",
    ),
    (
        "type.googleapis.com/envoy.extensions.internal_redirect.previous_routes.v3.PreviousRoutesConfig",
        "previous_routes",
    ),
    (
        "type.googleapis.com/envoy.extensions.internal_redirect.safe_cross_scheme.v3.SafeCrossSchemeConfig",
        "safe_cross_scheme",
    ),
];

/// `internal_redirect_policy`'s predicates are typed extensions (found by
/// their config's type URL, as Envoy finds them); the
/// deprecated `internal_redirect_action: HANDLE_INTERNAL_REDIRECT` (with
/// `max_internal_redirects`) is a policy, and is ignored beside one.
fn internal_redirect(a: &mut Map<String, Value>, at: &At, errors: &mut Errors) {
    let action = a.remove("internal_redirect_action");
    let max = a.remove("max_internal_redirects");
    if let Some(p) = a.get_mut("internal_redirect_policy") {
        let Some(Value::Array(list)) = p.get_mut("predicates") else {
            return;
        };
        for (i, pred) in list.iter_mut().enumerate() {
            let field = format!("route.internal_redirect_policy.predicates[{i}]");
            // `typed_config` is required (Envoy's `TypedExtensionConfig`).
            let type_url = pred
                .get("typed_config")
                .and_then(|c| c.get("@type"))
                .and_then(Value::as_str);
            let known = REDIRECT_PREDICATES
                .iter()
                .find(|(t, _)| type_url == Some(*t));
            let Some((_, key)) = known else {
                errors.push(at.error(
                    ErrorKind::Unsupported,
                    &field,
                    "expected a typed_config of an allow_listed_routes, previous_routes or \
                     safe_cross_scheme predicate (by its @type)",
                ));
                continue;
            };
            let mut config = match pred.get_mut("typed_config").map(Value::take) {
                Some(Value::Object(c)) => c,
                _ => Map::new(),
            };
            config.remove("@type");
            *pred = Value::Object(Map::from_iter([(key.to_string(), Value::Object(config))]));
        }
        return;
    }
    match action.as_ref().map(|v| v.as_str()) {
        None | Some(Some("PASS_THROUGH_INTERNAL_REDIRECT")) => {}
        Some(Some("HANDLE_INTERNAL_REDIRECT")) => {
            let mut p = Map::new();
            if let Some(m) = max {
                p.insert("max_internal_redirects".to_owned(), m);
            }
            a.insert("internal_redirect_policy".to_owned(), Value::Object(p));
        }
        Some(_) => errors.push(at.error(
            ErrorKind::Invalid,
            "route.internal_redirect_action",
            format!(
                "expected PASS_THROUGH_INTERNAL_REDIRECT or HANDLE_INTERNAL_REDIRECT, got {}",
                action.as_ref().map_or(Value::Null, Value::clone)
            ),
        )),
    }
}

fn retry_policy(p: &mut Value, at: &At, field: &str, errors: &mut Errors) {
    let Some(p) = p.as_object_mut() else { return };
    duration_field(
        p,
        "per_try_timeout",
        "per_try_timeout_ms",
        at,
        field,
        errors,
    );
    duration_field(
        p,
        "per_try_idle_timeout",
        "per_try_idle_timeout_ms",
        at,
        field,
        errors,
    );
    if let Some(b) = p.get_mut("retry_back_off").and_then(Value::as_object_mut) {
        let field = format!("{field}.retry_back_off");
        duration_field(b, "base_interval", "base_interval_ms", at, &field, errors);
        duration_field(b, "max_interval", "max_interval_ms", at, &field, errors);
    }
}

/// Moves the duration `from` to the milliseconds field `to`.
fn duration_field(
    obj: &mut Map<String, Value>,
    from: &str,
    to: &str,
    at: &At,
    parent: &str,
    errors: &mut Errors,
) {
    if obj.contains_key(to) {
        let field = if parent.is_empty() {
            to.to_owned()
        } else {
            format!("{parent}.{to}")
        };
        errors.push(at.error(
            ErrorKind::Parse,
            &field,
            format!("`{to}` is RAUTA's shape; Envoy's field is `{from}`"),
        ));
        return;
    }
    let Some(v) = obj.remove(from) else { return };
    if v.is_null() {
        return;
    }
    match duration_ms(&v) {
        Ok(ms) => {
            obj.insert(to.to_owned(), Value::from(ms));
        }
        Err(why) => {
            let field = if parent.is_empty() {
                from.to_owned()
            } else {
                format!("{parent}.{from}")
            };
            errors.push(at.error(ErrorKind::Invalid, &field, why));
        }
    }
}

/// A protobuf `Duration` in milliseconds, truncated: `"1.5s"`, `"2s"`,
/// `"0.010s"`, or `{seconds, nanos}`.
pub(crate) fn duration_ms(v: &Value) -> Result<u64, String> {
    let bad =
        || format!("{v} is not a duration (write \"1.5s\" or {{seconds: 1, nanos: 500000000}})");
    let (seconds, nanos): (u64, u64) = match v {
        Value::String(s) => {
            let digits = s.strip_suffix('s').ok_or_else(bad)?;
            let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
            if whole.is_empty() && frac.is_empty()
                || !whole.bytes().all(|b| b.is_ascii_digit())
                || !frac.bytes().all(|b| b.is_ascii_digit())
                || frac.len() > 9
            {
                return Err(bad());
            }
            let seconds = if whole.is_empty() {
                0
            } else {
                whole.parse().map_err(|_| bad())?
            };
            let nanos = if frac.is_empty() {
                0
            } else {
                format!("{frac:0<9}").parse().map_err(|_| bad())?
            };
            (seconds, nanos)
        }
        Value::Object(o) => {
            // int64 `seconds` may be written as a string.
            let field = |k: &str| match o.get(k) {
                None => Ok(0),
                Some(Value::String(n)) => n.parse::<u64>().map_err(|_| bad()),
                Some(n) => n.as_u64().ok_or_else(bad),
            };
            if o.keys().any(|k| k != "seconds" && k != "nanos") {
                return Err(bad());
            }
            let nanos = field("nanos")?;
            if nanos >= 1_000_000_000 {
                return Err(bad());
            }
            (field("seconds")?, nanos)
        }
        _ => return Err(bad()),
    };
    seconds
        .checked_mul(1000)
        .and_then(|ms| ms.checked_add(nanos / 1_000_000))
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel_case_names() {
        assert_eq!(
            camel_to_snake("virtualHosts").as_deref(),
            Some("virtual_hosts")
        );
        assert_eq!(
            camel_to_snake("v4PrefixMaskLen").as_deref(),
            Some("v4_prefix_mask_len")
        );
        assert_eq!(
            camel_to_snake("perTryIdleTimeout").as_deref(),
            Some("per_try_idle_timeout")
        );
        for same in [
            "virtual_hosts",
            "prefix",
            "@type",
            "envoy.filters.http.cors",
            "X-Up",
            "x-up",
            "",
        ] {
            assert_eq!(camel_to_snake(same), None, "{same}");
        }
        let mut v = serde_json::json!({
            "virtualHosts": [{"name": "v", "metadata": {"filterMetadata": {"aB": 1}},
                "typedPerFilterConfig": {
                    "myFilter": {"keepMe": 1},
                    "envoy.filters.http.cors": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy",
                        "allowMethods": "GET"}}}]});
        let mut twice = Vec::new();
        snake_case_keys(&mut v, &mut twice);
        assert!(twice.is_empty());
        assert_eq!(
            v,
            serde_json::json!({
                "virtual_hosts": [{"name": "v", "metadata": {"filter_metadata": {"aB": 1}},
                    "typed_per_filter_config": {
                        "myFilter": {"keepMe": 1},
                        "envoy.filters.http.cors": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy",
                            "allow_methods": "GET"}}}]})
        );
    }

    #[test]
    fn durations() {
        let ms = |v: Value| duration_ms(&v);
        assert_eq!(ms("2s".into()), Ok(2000));
        assert_eq!(ms("1.5s".into()), Ok(1500));
        assert_eq!(ms("0.010s".into()), Ok(10));
        assert_eq!(ms("0.0005s".into()), Ok(0), "truncated, as Envoy reads it");
        assert_eq!(ms(".25s".into()), Ok(250));
        assert_eq!(ms("3.s".into()), Ok(3000));
        assert_eq!(ms("0s".into()), Ok(0));
        assert_eq!(
            ms(serde_json::json!({"seconds": 1, "nanos": 999_999_999})),
            Ok(1999)
        );
        assert_eq!(ms(serde_json::json!({"nanos": 2_000_000})), Ok(2));
        assert_eq!(ms(serde_json::json!({"seconds": "3"})), Ok(3000));
        for bad in [
            Value::from("2"),
            Value::from("s"),
            Value::from(".s"),
            Value::from("-1s"),
            Value::from("1m"),
            Value::from("1.0000000001s"),
            Value::from("1e3s"),
            Value::from(5),
            serde_json::json!({"seconds": -1}),
            serde_json::json!({"nanos": 1_000_000_000}),
            serde_json::json!({"secs": 1}),
            Value::from("99999999999999999999s"),
        ] {
            assert!(ms(bad.clone()).is_err(), "{bad}");
        }
    }
}
