//! The `routes` suite: Envoy route-matching vectors run against
//! `rauta_router::RouteTable`.
//!
//! A vector's `config:` goes through `RouteConfig`, the same model a user's
//! file does, after the harness keys (`hcm`, `known_clusters`, `runtime`)
//! are taken out and applied through the router's own API.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;

use rauta_router::config::{HostNormalization, RouteConfig};
use rauta_router::path::PathPolicy;
use rauta_router::{ActionKind, BuildOptions, Decision, HeaderMapMut, Request, RouteTable};
use serde::Deserialize;
use serde_json::Value;

use crate::Report;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Vector {
    id: String,
    #[serde(default)]
    #[allow(dead_code)]
    source: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    basis: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    note: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    inferred: Option<bool>,
    #[serde(default)]
    #[allow(dead_code)]
    legacy: Option<bool>,
    config: Value,
    #[serde(default)]
    requests: Vec<Value>,
    #[serde(default)]
    expect: Option<LoadExpect>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoadExpect {
    error: bool,
    #[serde(default)]
    message_contains: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    legacy_error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Req {
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    authority: Option<String>,
    path: Option<String>,
    #[serde(default)]
    scheme: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, OneOrMany>,
    #[serde(default)]
    random_value: u64,
    #[serde(default)]
    upstream_response_headers: BTreeMap<String, OneOrMany>,
    #[serde(default)]
    #[allow(dead_code)]
    inferred: Option<bool>,
    #[serde(default)]
    #[allow(dead_code)]
    note: Option<String>,
    expect: Expect,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(Scalar),
    Many(Vec<Scalar>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Scalar {
    S(String),
    I(i64),
    U(u64),
    B(bool),
}

impl Scalar {
    fn text(&self) -> String {
        match self {
            Scalar::S(s) => s.clone(),
            Scalar::I(i) => i.to_string(),
            Scalar::U(u) => u.to_string(),
            Scalar::B(b) => b.to_string(),
        }
    }
}

impl OneOrMany {
    fn values(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.text()],
            OneOrMany::Many(v) => v.iter().map(Scalar::text).collect(),
        }
    }
}

/// `Some(None)` when the key is present with `null`.
fn double<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    #[serde(default, deserialize_with = "double")]
    route: Option<Option<String>>,
    #[serde(default)]
    cluster: Option<String>,
    #[serde(default)]
    rewritten_path: Option<String>,
    #[serde(default)]
    original_path: Option<String>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    request_headers: Option<BTreeMap<String, Option<String>>>,
    #[serde(default)]
    response_headers: Option<BTreeMap<String, Option<String>>>,
    #[serde(default)]
    redirect: Option<String>,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    tls_redirect: Option<bool>,
    #[serde(default)]
    status_if_forwarded: Option<u16>,
    #[serde(default)]
    computed_new_uri: Option<String>,
    #[serde(default)]
    retry: Option<RetryExpect>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryExpect {
    #[serde(default)]
    num_retries: Option<u32>,
    #[serde(default)]
    per_try_timeout_ms: Option<u64>,
    #[serde(default)]
    retry_on: Option<Vec<String>>,
}

/// HCM keys that act on the host; the rest are path options.
const HOST_KEYS: &[&str] = &[
    "strip_any_host_port",
    "strip_matching_host_port",
    "strip_trailing_host_dot",
];

/// Runtime flags the harness understands.
const RUNTIME_FLAGS: &[&str] = &["enable_new_query_param_present_match_behavior"];

pub(crate) fn run(files: &[PathBuf], report: &mut Report) {
    for f in files {
        let Some(text) = crate::read_file(f, report) else {
            continue;
        };
        let vectors: Vec<Vector> = match serde_saphyr::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                report.fail(&f.display().to_string(), format_args!("cannot parse: {e}"));
                continue;
            }
        };
        let mut seen = HashSet::new();
        for v in &vectors {
            if !seen.insert(v.id.clone()) {
                report.fail(&v.id, format_args!("duplicate id in {}", f.display()));
                continue;
            }
            run_vector(v, report);
        }
    }
}

/// Builds the table of a vector, applying the harness keys.
fn build(v: &Vector) -> Result<Result<RouteTable, rauta_router::ConfigErrors>, String> {
    let Value::Object(mut map) = v.config.clone() else {
        return Err("config is not a mapping".into());
    };
    let mut opts = BuildOptions::default().raw_paths(true);
    if let Some(known) = map.remove("known_clusters") {
        let list: Vec<String> =
            serde_json::from_value(known).map_err(|e| format!("known_clusters: {e}"))?;
        opts = opts.known_clusters(list);
    }
    if let Some(rt) = map.remove("runtime") {
        let Value::Object(flags) = rt else {
            return Err("runtime is not a mapping".into());
        };
        for (k, val) in flags {
            if !RUNTIME_FLAGS.contains(&k.as_str()) {
                return Err(format!("unsupported runtime flag {k:?}"));
            }
            if k == "enable_new_query_param_present_match_behavior" {
                opts.legacy_query_present_match = val != Value::Bool(true);
            }
        }
    } else {
        // Envoy's default for this runtime flag is off (legacy behaviour).
        opts.legacy_query_present_match = true;
    }
    let mut host = None;
    let mut path_policy = None;
    if let Some(hcm) = map.remove("hcm") {
        let Value::Object(hcm) = hcm else {
            return Err("hcm is not a mapping".into());
        };
        let (h, p): (
            serde_json::Map<String, Value>,
            serde_json::Map<String, Value>,
        ) = hcm
            .into_iter()
            .partition(|(k, _)| HOST_KEYS.contains(&k.as_str()));
        if !h.is_empty() {
            let hn: HostNormalization =
                serde_json::from_value(Value::Object(h)).map_err(|e| format!("hcm: {e}"))?;
            host = Some(hn);
        }
        if !p.is_empty() {
            let pp: PathPolicy =
                serde_json::from_value(Value::Object(p)).map_err(|e| format!("hcm: {e}"))?;
            path_policy = Some(PathPolicy::envoy().overlay(&pp));
        }
    }
    let mut config = match RouteConfig::from_json_value(Value::Object(map)) {
        Ok(c) => c,
        Err(e) => return Ok(Err(e)),
    };
    if let Some(h) = host {
        config.host_normalization = Some(h);
    }
    if let Some(p) = path_policy {
        opts = opts.raw_paths(false).default_path_policy(p);
    }
    Ok(RouteTable::build_with(config, &opts))
}

fn run_vector(v: &Vector, report: &mut Report) {
    let built = match build(v) {
        Ok(b) => b,
        Err(e) => {
            report.fail(&v.id, format_args!("cannot run: {e}"));
            return;
        }
    };
    if let Some(exp) = &v.expect {
        match (&built, exp.error) {
            (Err(errs), true) => {
                let text = errs.to_string();
                match &exp.message_contains {
                    Some(m) if !text.contains(m.as_str()) => report.fail(
                        &v.id,
                        format_args!("error does not contain {m:?}; got: {text}"),
                    ),
                    _ => report.pass(),
                }
            }
            (Ok(_), true) => report.fail(&v.id, "config loaded, expected a load error"),
            (Err(errs), false) => report.fail(&v.id, format_args!("config rejected: {errs}")),
            (Ok(_), false) => report.pass(),
        }
        if !v.requests.is_empty() && exp.error {
            report.fail(&v.id, "a vector expecting a load error has requests");
        }
        if exp.error || v.requests.is_empty() {
            return;
        }
    }
    let table = match built {
        Ok(t) => t,
        Err(errs) => {
            report.fail(&v.id, format_args!("config rejected: {errs}"));
            return;
        }
    };
    let known: Option<HashSet<String>> = v
        .config
        .get("known_clusters")
        .and_then(|k| serde_json::from_value(k.clone()).ok());
    if v.requests.is_empty() {
        report.fail(&v.id, "vector has neither requests nor expect");
    }
    for (i, rv) in v.requests.iter().enumerate() {
        let id = format!("{}#{i}", v.id);
        let req: Req = match serde_json::from_value(rv.clone()) {
            Ok(r) => r,
            Err(e) => {
                report.fail(&id, format_args!("cannot run request: {e}"));
                continue;
            }
        };
        match check(&table, &req, known.as_ref()) {
            Ok(()) => report.pass(),
            Err(what) => report.fail(&id, what),
        }
    }
}

fn request_of(r: &Req) -> Request {
    let mut req = Request {
        method: r.method.clone().unwrap_or_else(|| "GET".into()),
        scheme: match r.scheme.as_deref() {
            None => Some("http".into()),
            Some("") => None,
            Some(s) => Some(s.into()),
        },
        authority: r.authority.clone(),
        path: r.path.clone(),
        headers: Vec::new(),
    };
    for (name, vals) in &r.headers {
        for v in vals.values() {
            req.headers.push((name.clone(), v));
        }
    }
    if let Some(s) = &req.scheme {
        if !req
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("x-forwarded-proto"))
        {
            req.headers.push(("x-forwarded-proto".into(), s.clone()));
        }
    }
    req
}

fn joined(h: &[(String, String)], name: &str) -> Option<String> {
    let vals: Vec<&str> = h
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect();
    if vals.is_empty() {
        None
    } else {
        Some(vals.join(","))
    }
}

fn cmp<T: PartialEq + std::fmt::Debug>(diffs: &mut String, what: &str, want: &T, got: &T) {
    if want != got {
        let _ = write!(diffs, "{what}: want {want:?}, got {got:?}; ");
    }
}

fn check_headers(
    diffs: &mut String,
    what: &str,
    want: &BTreeMap<String, Option<String>>,
    got: &[(String, String)],
) {
    for (name, value) in want {
        cmp(diffs, &format!("{what} {name}"), value, &joined(got, name));
    }
}

fn check(table: &RouteTable, r: &Req, known: Option<&HashSet<String>>) -> Result<(), String> {
    let req = request_of(r);
    let e = &r.expect;
    let decision = table.route(&req, r.random_value);
    let mut d = String::new();
    match &decision {
        Decision::TlsRedirect { location, .. } => {
            cmp(
                &mut d,
                "tls_redirect",
                &e.tls_redirect.unwrap_or(false),
                &true,
            );
            if let Some(Some(route)) = &e.route {
                let _ = write!(d, "route: want {route:?}, got a TLS redirect; ");
            }
            if let Some(s) = e.status {
                cmp(&mut d, "status", &s, &301);
            }
            if let Some(want) = &e.redirect {
                cmp(&mut d, "redirect", want, location);
            }
        }
        Decision::Route(m) => {
            cmp(
                &mut d,
                "tls_redirect",
                &e.tls_redirect.unwrap_or(false),
                &false,
            );
            if let Some(want) = &e.route {
                cmp(&mut d, "route", &want.as_deref(), &Some(m.route_name()));
            }
            if let Some(c) = &e.cluster {
                cmp(&mut d, "cluster", &Some(c.as_str()), &m.cluster());
            }
            let status = match m.action() {
                ActionKind::Forward { cluster } => {
                    let missing = cluster.is_empty() || known.is_some_and(|k| !k.contains(cluster));
                    if missing {
                        Some(m.cluster_not_found_status())
                    } else {
                        None
                    }
                }
                ActionKind::Redirect { status } => Some(status),
                ActionKind::DirectResponse { status, .. } => Some(status),
                _ => None,
            };
            if let Some(s) = e.status {
                cmp(&mut d, "status", &Some(s), &status);
            }
            if let Some(s) = e.status_if_forwarded {
                cmp(
                    &mut d,
                    "status_if_forwarded",
                    &s,
                    &m.cluster_not_found_status(),
                );
            }
            if let Some(b) = &e.body {
                let got = match m.action() {
                    ActionKind::DirectResponse { body, .. } => Some(body),
                    _ => None,
                };
                cmp(&mut d, "body", &Some(b.as_str()), &got);
            }
            if let Some(t) = e.timeout_ms {
                cmp(&mut d, "timeout_ms", &t, &m.route().timeout_ms());
            }
            if let Some(rt) = &e.retry {
                match m.route().retry_policy() {
                    None => d.push_str("retry: route has no retry policy; "),
                    Some(p) => {
                        if let Some(n) = rt.num_retries {
                            cmp(&mut d, "retry.num_retries", &n, &p.num_retries);
                        }
                        if let Some(t) = rt.per_try_timeout_ms {
                            cmp(
                                &mut d,
                                "retry.per_try_timeout_ms",
                                &t,
                                &p.per_try_timeout_ms,
                            );
                        }
                        if let Some(on) = &rt.retry_on {
                            cmp(&mut d, "retry.retry_on", on, &p.retry_on);
                        }
                    }
                }
            }
            if let Some(u) = &e.computed_new_uri {
                cmp(
                    &mut d,
                    "computed_new_uri",
                    &Some(u.clone()),
                    &m.computed_redirect_uri(),
                );
            }
            let location = m.redirect_location();
            if let Some(want) = &e.redirect {
                cmp(&mut d, "redirect", &Some(want.clone()), &location);
            }
            // Request side.
            let mut headers = req.headers.clone();
            let up = m.apply_request(&mut headers);
            if let Some(p) = &e.rewritten_path {
                cmp(&mut d, "rewritten_path", &p.as_str(), &&*up.path);
            }
            if let Some(p) = &e.original_path {
                cmp(
                    &mut d,
                    "original_path",
                    &Some(p.clone()),
                    &joined(&headers, "x-envoy-original-path"),
                );
            }
            if let Some(h) = &e.host {
                cmp(&mut d, "host", &h.as_str(), &&*up.host);
            }
            if let Some(want) = &e.request_headers {
                check_headers(&mut d, "request header", want, &headers);
            }
            // Response side.
            if let Some(want) = &e.response_headers {
                let mut resp: Vec<(String, String)> = Vec::new();
                for (n, vals) in &r.upstream_response_headers {
                    for v in vals.values() {
                        resp.push((n.clone(), v));
                    }
                }
                if let Some(loc) = &location {
                    resp.set("location", loc);
                }
                m.apply_response(&mut resp);
                check_headers(&mut d, "response header", want, &resp);
            }
        }
        other => {
            let what = match other {
                Decision::NotFound { .. } => "no route".to_string(),
                Decision::Reject { status, reason, .. } => format!("reject {status} ({reason})"),
                Decision::PathRedirect { location, .. } => format!("path redirect to {location}"),
                _ => "another decision".to_string(),
            };
            if e.tls_redirect == Some(true) {
                let _ = write!(d, "tls_redirect: want a TLS redirect, got {what}; ");
            }
            if let Some(Some(route)) = &e.route {
                let _ = write!(d, "route: want {route:?}, got {what}; ");
            }
            if let Some(s) = e.status {
                let got = match other {
                    Decision::NotFound { .. } => 404,
                    Decision::Reject { status, .. } | Decision::PathRedirect { status, .. } => {
                        *status
                    }
                    _ => 0,
                };
                cmp(&mut d, "status", &s, &got);
            }
            if e.cluster.is_some() || e.redirect.is_some() || e.rewritten_path.is_some() {
                let _ = write!(d, "expected a routed request, got {what}; ");
            }
        }
    }
    if d.is_empty() {
        Ok(())
    } else {
        Err(d.trim_end_matches("; ").to_string())
    }
}
