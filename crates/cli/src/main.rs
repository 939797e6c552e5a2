//! `rauta`: a tool for people operating RAUTA route configurations.
//!
//! ```text
//! rauta validate CONFIG                      print every config error; exit 1 if any
//! rauta route CONFIG METHOD URL [-H 'name: value']... [--random N]
//!                                            explain where a request goes and why
//! rauta check CONFIG TESTS.yaml              run expectations; report failures and
//!                                            routes no test covers
//! ```
//!
//! A test file is `tests:`, a list of `{name, request, expect}`. `request`
//! has `url` (or `path` and `authority`), `method`, `scheme`, `headers` and
//! `random_value`. `expect` checks any of `virtual_host`, `route` (`null`:
//! none), `cluster`, `status`, `redirect`, `rewritten_path`, `host`,
//! `request_headers` (a `null` value: absent), `local_rate_limit` (the
//! limiter's `stat_prefix`; `null`: none), `rate_limits` (the
//! descriptors at stage 0 without a client address, each a list of
//! `key=value`), `timeout_ms` and `stream_ms` (the request's upstream
//! timeout and stream lifetime, `null`: none, as a proxy that trusts no
//! `x-envoy-*` header works them out; `request_headers` see their header
//! edits too). See examples/config/*-tests.yaml.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::process::ExitCode;

use rauta_router::config::RouteConfig;
use rauta_router::{
    ActionKind, CorsCheck, Decision, RateLimitContext, Request, RouteTable, TimeoutOptions,
};
use serde::Deserialize;

const USAGE: &str = "usage:
  rauta validate CONFIG [--envoy]
  rauta route CONFIG METHOD URL [-H 'name: value']... [--random N] [--envoy]
  rauta check CONFIG TESTS.yaml [--envoy]
CONFIG is a route configuration in YAML (or JSON when the file ends in .json),
in RAUTA's shape, or with --envoy in Envoy's (a v3 RouteConfiguration).";

/// The shape of configuration files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Rauta,
    Envoy,
}

/// A failure with the exit code to leave with.
struct Failure {
    message: String,
    code: u8,
}

fn fail<T>(message: impl Into<String>) -> Result<T, Failure> {
    Err(Failure {
        message: message.into(),
        code: 2,
    })
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    // `--envoy` may come anywhere among the arguments.
    let shape = if args.iter().any(|a| a == "--envoy") {
        args.retain(|a| a != "--envoy");
        Shape::Envoy
    } else {
        Shape::Rauta
    };
    let result = match args.first().map(String::as_str) {
        Some("validate") => validate(&args[1..], shape),
        Some("route") => route(&args[1..], shape),
        Some("check") => check(&args[1..], shape),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => fail(format!("unknown command {other:?}\n{USAGE}")),
        None => fail(USAGE),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("rauta: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn read(path: &str) -> Result<String, Failure> {
    std::fs::read_to_string(path).or_else(|e| fail(format!("cannot read {path}: {e}")))
}

fn load_config(path: &str, shape: Shape) -> Result<RouteConfig, Failure> {
    let text = read(path)?;
    let parsed = match (shape, path.ends_with(".json")) {
        (Shape::Rauta, true) => RouteConfig::from_json(&text),
        (Shape::Rauta, false) => RouteConfig::from_yaml(&text),
        (Shape::Envoy, true) => RouteConfig::from_envoy_json(&text),
        (Shape::Envoy, false) => RouteConfig::from_envoy_yaml(&text),
    };
    parsed.or_else(|e| {
        fail(format!(
            "{path}: {}",
            e.to_string().lines().collect::<Vec<_>>().join("; ")
        ))
    })
}

fn load_table(path: &str, shape: Shape) -> Result<RouteTable, Failure> {
    let config = load_config(path, shape)?;
    RouteTable::build(config).map_err(|errs| Failure {
        message: format!(
            "{path}: {} configuration error(s):\n{}",
            errs.len(),
            errs.errors()
                .iter()
                .map(|e| format!("  {e}"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
        code: 1,
    })
}

fn validate(args: &[String], shape: Shape) -> Result<(), Failure> {
    let [path] = args else {
        return fail(format!("validate takes one CONFIG\n{USAGE}"));
    };
    let table = load_table(path, shape)?;
    println!(
        "{path}: ok ({} virtual hosts, {} routes)",
        table.virtual_hosts().len(),
        table.route_count()
    );
    Ok(())
}

/// Splits `scheme://authority/path?query` (or a bare `/path`).
fn parse_url(url: &str) -> Result<(Option<String>, Option<String>, String), Failure> {
    if url.starts_with('/') {
        return Ok((None, None, url.to_string()));
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return fail(format!(
            "URL {url:?} must look like http://host/path (or be a path starting with '/')"
        ));
    };
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.')
    {
        return fail(format!("URL {url:?} has an invalid scheme {scheme:?}"));
    }
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.is_empty() {
        return fail(format!("URL {url:?} has no host"));
    }
    let path = if path.is_empty() {
        "/".to_string()
    } else if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    Ok((
        Some(scheme.to_ascii_lowercase()),
        Some(authority.to_string()),
        path,
    ))
}

fn route(args: &[String], shape: Shape) -> Result<(), Failure> {
    let (Some(config), Some(method), Some(url)) = (args.first(), args.get(1), args.get(2)) else {
        return fail(format!("route takes CONFIG METHOD URL\n{USAGE}"));
    };
    let table = load_table(config, shape)?;
    let (scheme, authority, path) = parse_url(url)?;
    let mut req = Request {
        method: method.to_ascii_uppercase(),
        scheme: Some(scheme.unwrap_or_else(|| "http".into())),
        authority,
        path: Some(path),
        headers: Vec::new(),
    };
    let mut random = 0u64;
    let mut rest = args[3..].iter();
    while let Some(a) = rest.next() {
        match a.as_str() {
            "-H" | "--header" => {
                let Some(h) = rest.next() else {
                    return fail("-H needs a value like 'name: value'");
                };
                let Some((n, v)) = h.split_once(':') else {
                    return fail(format!("header {h:?} must look like 'name: value'"));
                };
                let (n, v) = (n.trim(), v.trim());
                if n.is_empty() {
                    return fail(format!("header {h:?} has an empty name"));
                }
                if n.eq_ignore_ascii_case("host") || n.eq_ignore_ascii_case(":authority") {
                    req.authority = Some(v.to_string());
                } else {
                    req.headers.push((n.to_ascii_lowercase(), v.to_string()));
                }
            }
            "--random" => {
                let Some(n) = rest.next().and_then(|n| n.parse().ok()) else {
                    return fail("--random needs an unsigned integer");
                };
                random = n;
            }
            other => return fail(format!("unexpected argument {other:?}\n{USAGE}")),
        }
    }
    print!("{}", describe(&table, &req, random));
    Ok(())
}

/// What the CORS policy does with a request, in one line.
fn cors_summary(check: CorsCheck<'_>) -> String {
    let allowed = |a: bool| if a { "allowed" } else { "not allowed" };
    match check {
        CorsCheck::NotCors => "not a CORS request (or the policy is off for it)".to_owned(),
        CorsCheck::Shadow { origin_allowed } => {
            format!("shadow only: origin {}", allowed(origin_allowed))
        }
        CorsCheck::Preflight(p) => {
            let headers: Vec<String> = p.headers().map(|(n, v)| format!("{n}: {v}")).collect();
            format!(
                "preflight answered here, 200, origin {}; {}",
                allowed(p.origin_allowed()),
                headers.join("; ")
            )
        }
        CorsCheck::Forward(r) => match r.allowed_origin() {
            Some(o) => {
                format!("origin allowed; the response gets access-control-allow-origin: {o}")
            }
            None => "origin not allowed; the response is left alone".to_owned(),
        },
        _ => "unknown".to_owned(),
    }
}

fn describe(table: &RouteTable, req: &Request, random: u64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {}://{}{}",
        req.method,
        req.scheme.as_deref().unwrap_or("http"),
        req.authority.as_deref().unwrap_or("<no host>"),
        req.path.as_deref().unwrap_or("")
    );
    let why = table.explain(req, random);
    match &why.vhost {
        Some((v, how)) => {
            let _ = writeln!(
                out,
                "  virtual host  {} (virtual_hosts[{}]) via {how}",
                v.name(),
                v.index()
            );
        }
        None => {
            let _ = writeln!(
                out,
                "  virtual host  none matches {:?}",
                req.authority.as_deref().unwrap_or("")
            );
        }
    }
    if let Some(p) = &why.match_path {
        let _ = writeln!(out, "  match path    {p}");
    }
    for v in &why.routes {
        let r = v.route;
        let label = format!("routes[{}] {}", r.index(), r.name());
        match &v.failed {
            Some(reason) => {
                let _ = writeln!(out, "  {label:<28} skipped: {reason}");
            }
            None => {
                let _ = writeln!(
                    out,
                    "  {label:<28} MATCH ({:?} {:?})",
                    r.path_kind(),
                    r.path_text()
                );
            }
        }
    }
    match table.route(req, random) {
        Decision::Route(m) => {
            let r = m.route();
            match m.action() {
                ActionKind::Forward { cluster } => {
                    // As a proxy that trusts no `x-envoy-*` header works
                    // them out; their header edits come before the route's.
                    let t = m.timeouts(req, &TimeoutOptions::new());
                    let mut headers = req.headers.clone();
                    t.apply_request_headers(&mut headers);
                    let up = m.apply_request(&mut headers);
                    let _ = writeln!(out, "  action        forward to cluster {cluster:?}");
                    let _ = writeln!(out, "  upstream      path {}  host {}", up.path, up.host);
                    let ms = |d: Option<std::time::Duration>| {
                        d.map_or("none".to_owned(), |d| format!("{} ms", d.as_millis()))
                    };
                    let _ = writeln!(out, "  timeout       {}", ms(t.global));
                    if t.per_try.is_some() {
                        let _ = writeln!(out, "  per try       {}", ms(t.per_try));
                    }
                    if t.stream.is_some() {
                        let _ = writeln!(out, "  stream        {}", ms(t.stream));
                    }
                    if let Some(p) = r.internal_redirect_policy() {
                        let codes: Vec<String> =
                            p.redirect_response_codes().map(|c| c.to_string()).collect();
                        let _ = writeln!(
                            out,
                            "  redirects     follows {} (at most {}{})",
                            codes.join(","),
                            p.max_internal_redirects(),
                            if p.allow_cross_scheme_redirect() {
                                ", across schemes"
                            } else {
                                ""
                            }
                        );
                    }
                    if let Some(p) = r.retry_policy() {
                        let _ = writeln!(
                            out,
                            "  retries       {} on {}",
                            p.num_retries,
                            if p.retry_on.is_empty() {
                                "-".to_string()
                            } else {
                                p.retry_on.join(",")
                            }
                        );
                    }
                    // Stage 0, no client address: what the request alone gives.
                    for d in m.rate_limit_descriptors(req, &RateLimitContext::new()) {
                        let entries: Vec<String> =
                            d.entries.iter().map(|(k, v)| format!("{k}={v}")).collect();
                        let _ = writeln!(out, "  rate limit    [{}]", entries.join(", "));
                    }
                    if let Some(c) = m.cors() {
                        let _ = writeln!(
                            out,
                            "  cors          {}",
                            cors_summary(c.check(req, random))
                        );
                    }
                    let added: Vec<String> = headers
                        .iter()
                        .filter(|h| !req.headers.contains(h))
                        .map(|(n, v)| format!("{n}: {v}"))
                        .collect();
                    let removed: Vec<String> = req
                        .headers
                        .iter()
                        .filter(|h| !headers.contains(h))
                        .map(|(n, v)| format!("{n}: {v}"))
                        .collect();
                    for h in added {
                        let _ = writeln!(out, "  + header      {h}");
                    }
                    for h in removed {
                        let _ = writeln!(out, "  - header      {h}");
                    }
                }
                ActionKind::Redirect { status } => {
                    let _ = writeln!(
                        out,
                        "  action        redirect {status} to {}",
                        m.redirect_location().unwrap_or_default()
                    );
                }
                ActionKind::DirectResponse { status, body } => {
                    let _ = writeln!(out, "  action        direct response {status} {body:?}");
                }
                _ => {
                    let _ = writeln!(out, "  action        {}", r.action_summary());
                }
            }
            // Every kind of route may have one (redirects and direct
            // responses draw from the default bucket).
            if let Some(l) = m.local_rate_limiter() {
                let (max, _) = l.default_bucket(std::time::Instant::now());
                let _ = writeln!(
                    out,
                    "  local limit   {}: {max} tokens, over it {}{}",
                    l.stat_prefix(),
                    l.status(),
                    if l.enabled(random) {
                        ""
                    } else {
                        " (filter_enabled does not take this request)"
                    }
                );
            }
        }
        Decision::TlsRedirect { location, .. } => {
            let _ = writeln!(
                out,
                "  action        TLS required: redirect 301 to {location}"
            );
        }
        Decision::Reject { status, reason, .. } => {
            let _ = writeln!(out, "  action        reject {status}: {reason}");
        }
        Decision::PathRedirect {
            status, location, ..
        } => {
            let _ = writeln!(
                out,
                "  action        redirect {status} to canonical path {location}"
            );
        }
        Decision::NotFound { .. } => {
            let _ = writeln!(out, "  action        404: no route matches");
        }
        _ => {
            let _ = writeln!(out, "  action        (unknown decision)");
        }
    }
    out
}

// ------------------------------------------------------------------- check

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    tests: Vec<TestCase>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestCase {
    name: String,
    request: TestRequest,
    expect: TestExpect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestRequest {
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    authority: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    scheme: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    random_value: u64,
}

fn double<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestExpect {
    #[serde(default)]
    virtual_host: Option<String>,
    /// `null` expects no route.
    #[serde(default, deserialize_with = "double")]
    route: Option<Option<String>>,
    #[serde(default)]
    cluster: Option<String>,
    #[serde(default)]
    rewritten_path: Option<String>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    redirect: Option<String>,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    request_headers: BTreeMap<String, Option<String>>,
    /// The `stat_prefix` of the local rate limit that applies; `null`
    /// expects none.
    #[serde(default, deserialize_with = "double")]
    local_rate_limit: Option<Option<String>>,
    /// The rate limit descriptors (stage 0, no client address), each as
    /// `key=value` entries.
    #[serde(default)]
    rate_limits: Option<Vec<Vec<String>>>,
    /// The upstream (global) timeout in milliseconds; `null` expects none.
    #[serde(default, deserialize_with = "double")]
    timeout_ms: Option<Option<u64>>,
    /// The stream's lifetime in milliseconds; `null` expects none.
    #[serde(default, deserialize_with = "double")]
    stream_ms: Option<Option<u64>>,
}

fn test_request(t: &TestRequest) -> Result<Request, String> {
    let (scheme, authority, path) = match (&t.url, &t.path) {
        (Some(_), Some(_)) => return Err("set url or path, not both".into()),
        (Some(u), None) => parse_url(u).map_err(|f| f.message)?,
        (None, Some(p)) => (None, None, p.clone()),
        (None, None) => return Err("request needs url or path".into()),
    };
    Ok(Request {
        method: t
            .method
            .clone()
            .unwrap_or_else(|| "GET".into())
            .to_ascii_uppercase(),
        scheme: Some(t.scheme.clone().or(scheme).unwrap_or_else(|| "http".into())),
        authority: t.authority.clone().or(authority),
        path: Some(path),
        headers: t
            .headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .collect(),
    })
}

fn run_case(table: &RouteTable, t: &TestCase, covered: &mut BTreeSet<usize>) -> Vec<String> {
    let mut d = Vec::new();
    let req = match test_request(&t.request) {
        Ok(r) => r,
        Err(e) => return vec![e],
    };
    let decision = table.route(&req, t.request.random_value);
    let e = &t.expect;
    let vhost = decision.virtual_host().map(|v| v.name().to_string());
    if let Some(want) = &e.virtual_host {
        if vhost.as_deref() != Some(want.as_str()) {
            d.push(format!("virtual host: want {want:?}, got {vhost:?}"));
        }
    }
    let (route, status, cluster, location) = match &decision {
        Decision::Route(m) => {
            covered.insert(m.route_id().index());
            let status = match m.action() {
                ActionKind::Redirect { status } | ActionKind::DirectResponse { status, .. } => {
                    Some(status)
                }
                _ => None,
            };
            (
                Some(m.route_name().to_string()),
                status,
                m.cluster().map(str::to_string),
                m.redirect_location(),
            )
        }
        Decision::TlsRedirect { location, .. } => (None, Some(301), None, Some(location.clone())),
        Decision::Reject { status, .. } => (None, Some(*status), None, None),
        Decision::PathRedirect {
            status, location, ..
        } => (None, Some(*status), None, Some(location.clone())),
        _ => (None, Some(404), None, None),
    };
    if let Some(want) = &e.route {
        if want != &route {
            d.push(format!("route: want {want:?}, got {route:?}"));
        }
    }
    if let Some(want) = &e.cluster {
        if Some(want) != cluster.as_ref() {
            d.push(format!("cluster: want {want:?}, got {cluster:?}"));
        }
    }
    if let Some(want) = e.status {
        if Some(want) != status {
            d.push(format!("status: want {want}, got {status:?}"));
        }
    }
    if let Some(want) = &e.redirect {
        if Some(want) != location.as_ref() {
            d.push(format!("redirect: want {want:?}, got {location:?}"));
        }
    }
    if e.local_rate_limit.is_some() || e.rate_limits.is_some() {
        match decision.route() {
            None => d.push("expected a routed request, got no route".into()),
            Some(m) => {
                if let Some(want) = &e.local_rate_limit {
                    let got = m.local_rate_limiter().map(|l| l.stat_prefix().to_owned());
                    if want != &got {
                        d.push(format!("local rate limit: want {want:?}, got {got:?}"));
                    }
                }
                if let Some(want) = &e.rate_limits {
                    let got: Vec<Vec<String>> = m
                        .rate_limit_descriptors(&req, &RateLimitContext::new())
                        .iter()
                        .map(|d| d.entries.iter().map(|(k, v)| format!("{k}={v}")).collect())
                        .collect();
                    if want != &got {
                        d.push(format!("rate limits: want {want:?}, got {got:?}"));
                    }
                }
            }
        }
    }
    let timeouts = decision
        .route()
        .map(|m| m.timeouts(&req, &TimeoutOptions::new()));
    if e.timeout_ms.is_some() || e.stream_ms.is_some() {
        match &timeouts {
            None => d.push("expected a routed request, got no route".into()),
            Some(t) => {
                let ms = |d: Option<std::time::Duration>| {
                    d.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                };
                if let Some(want) = e.timeout_ms {
                    if want != ms(t.global) {
                        d.push(format!("timeout_ms: want {want:?}, got {:?}", ms(t.global)));
                    }
                }
                if let Some(want) = e.stream_ms {
                    if want != ms(t.stream) {
                        d.push(format!("stream_ms: want {want:?}, got {:?}", ms(t.stream)));
                    }
                }
            }
        }
    }
    if e.rewritten_path.is_some() || e.host.is_some() || !e.request_headers.is_empty() {
        match decision.route().zip(timeouts) {
            None => d.push("expected a forwarded request, got no route".into()),
            Some((m, t)) => {
                let mut headers = req.headers.clone();
                t.apply_request_headers(&mut headers);
                let up = m.apply_request(&mut headers);
                if let Some(want) = &e.rewritten_path {
                    if want != &*up.path {
                        d.push(format!("rewritten path: want {want:?}, got {:?}", up.path));
                    }
                }
                if let Some(want) = &e.host {
                    if want != &*up.host {
                        d.push(format!("host: want {want:?}, got {:?}", up.host));
                    }
                }
                for (name, want) in &e.request_headers {
                    let got: Vec<&str> = headers
                        .iter()
                        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v.as_str())
                        .collect();
                    let got = if got.is_empty() {
                        None
                    } else {
                        Some(got.join(","))
                    };
                    if &got != want {
                        d.push(format!("request header {name}: want {want:?}, got {got:?}"));
                    }
                }
            }
        }
    }
    d
}

fn check(args: &[String], shape: Shape) -> Result<(), Failure> {
    let [config, tests] = args else {
        return fail(format!("check takes CONFIG TESTS.yaml\n{USAGE}"));
    };
    let table = load_table(config, shape)?;
    let text = read(tests)?;
    let file: TestFile = serde_saphyr::from_str(&text).or_else(|e| {
        fail(format!(
            "{tests}: {}",
            e.to_string().lines().collect::<Vec<_>>().join("; ")
        ))
    })?;
    let mut covered = BTreeSet::new();
    let mut failed = 0usize;
    for t in &file.tests {
        let diffs = run_case(&table, t, &mut covered);
        if diffs.is_empty() {
            println!("ok    {}", t.name);
        } else {
            failed += 1;
            println!("FAIL  {}: {}", t.name, diffs.join("; "));
        }
    }
    let mut uncovered = Vec::new();
    for v in table.virtual_hosts() {
        for r in v.routes() {
            if !covered.contains(&r.id().index()) {
                uncovered.push(format!("{}/{}", v.name(), r.name()));
            }
        }
    }
    let total = table.route_count();
    println!(
        "coverage: {} of {total} routes taken by a test{}",
        total - uncovered.len(),
        if uncovered.is_empty() {
            String::new()
        } else {
            format!("; not covered: {}", uncovered.join(", "))
        }
    );
    println!("{} passed, {failed} failed", file.tests.len() - failed);
    if failed > 0 {
        Err(Failure {
            message: format!("{failed} test(s) failed"),
            code: 1,
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let (s, a, p) = parse_url("https://a.com/x?y=1").ok().unwrap();
        assert_eq!(
            (s.as_deref(), a.as_deref(), p.as_str()),
            (Some("https"), Some("a.com"), "/x?y=1")
        );
        let (_, a, p) = parse_url("http://a.com:8080").ok().unwrap();
        assert_eq!((a.as_deref(), p.as_str()), (Some("a.com:8080"), "/"));
        let (_, _, p) = parse_url("http://a.com?q").ok().unwrap();
        assert_eq!(p, "/?q");
        assert!(parse_url("a.com/x").is_err());
        assert!(parse_url("http:///x").is_err());
    }

    #[test]
    fn describe_lists_rate_limit_descriptors() {
        let table = RouteTable::from_yaml(
            r#"
virtual_hosts:
  - name: api
    domains: ["*"]
    rate_limits:
      - actions: [{generic_key: {descriptor_value: api}}, {request_headers: {header_name: x-user, descriptor_key: user}}]
    routes: [{name: r, match: {prefix: /}, action: {cluster: api}}]
"#,
        )
        .unwrap();
        let out = describe(&table, &Request::get("h", "/").header("x-user", "ann"), 0);
        assert!(
            out.contains("  rate limit    [generic_key=api, user=ann]\n"),
            "{out}"
        );
        let out = describe(&table, &Request::get("h", "/"), 0);
        assert!(!out.contains("rate limit"), "{out}");
    }

    #[test]
    fn expectations_check_rate_limits() {
        let table = RouteTable::from_yaml(
            r#"
virtual_hosts:
  - name: api
    domains: ["*"]
    typed_per_filter_config:
      envoy.filters.http.local_ratelimit:
        stat_prefix: api
        token_bucket: {max_tokens: 50, fill_interval: 1s}
    routes:
      - name: r
        match: {prefix: /}
        action: {cluster: api, rate_limits: [{actions: [{generic_key: {descriptor_value: x}}]}]}
"#,
        )
        .unwrap();
        let case = |expect: &str| -> Vec<String> {
            let t: TestCase = serde_saphyr::from_str(&format!(
                "{{name: t, request: {{url: 'http://h/'}}, expect: {expect}}}"
            ))
            .unwrap();
            run_case(&table, &t, &mut BTreeSet::new())
        };
        assert!(case("{local_rate_limit: api, rate_limits: [[generic_key=x]]}").is_empty());
        assert_eq!(
            case("{local_rate_limit: login}"),
            ["local rate limit: want Some(\"login\"), got Some(\"api\")"]
        );
        assert_eq!(case("{local_rate_limit: null}").len(), 1);
        assert_eq!(
            case("{rate_limits: []}"),
            ["rate limits: want [], got [[\"generic_key=x\"]]"]
        );
    }

    #[test]
    fn describe_names_the_local_rate_limit() {
        let table = RouteTable::from_yaml(
            r#"
virtual_hosts:
  - name: api
    domains: ["*"]
    typed_per_filter_config:
      envoy.filters.http.local_ratelimit:
        stat_prefix: api
        token_bucket: {max_tokens: 50, fill_interval: 1s}
        filter_enabled: {default_value: {numerator: 100}}
    routes:
      - {name: health, match: {path: /healthz}, action: {direct_response: {status: 200, body: ok}}}
      - {name: r, match: {prefix: /}, action: {cluster: api}}
"#,
        )
        .unwrap();
        let out = describe(&table, &Request::get("h", "/"), 0);
        assert!(
            out.contains("  local limit   api: 50 tokens, over it 429\n"),
            "{out}"
        );
        let out = describe(&table, &Request::get("h", "/healthz"), 0);
        assert!(
            out.contains("direct response 200") && out.contains("  local limit   api: 50 tokens"),
            "{out}"
        );
    }

    #[test]
    fn timeout_expectations() {
        let table = RouteTable::from_yaml(
            r#"
virtual_hosts:
  - name: api
    domains: ["*"]
    routes:
      - {name: s, match: {prefix: /s}, action: {cluster: api, max_stream_duration: {max_stream_duration_ms: 900}}}
      - {name: r, match: {prefix: /}, action: {cluster: api, timeout_ms: 3000}}
"#,
        )
        .unwrap();
        let case = |path: &str, expect: &str| -> Vec<String> {
            let t: TestCase = serde_saphyr::from_str(&format!(
                "{{name: t, request: {{url: 'http://h{path}'}}, expect: {expect}}}"
            ))
            .unwrap();
            run_case(&table, &t, &mut BTreeSet::new())
        };
        assert!(case("/", "{timeout_ms: 3000, stream_ms: null}").is_empty());
        assert!(case("/s", "{timeout_ms: null, stream_ms: 900}").is_empty());
        assert_eq!(
            case("/", "{timeout_ms: 15000}"),
            ["timeout_ms: want Some(15000), got Some(3000)"]
        );
        assert_eq!(
            case("/s", "{stream_ms: null}"),
            ["stream_ms: want None, got Some(900)"]
        );
    }

    #[test]
    fn describe_gives_the_request_timeouts() {
        let table = RouteTable::from_yaml(
            r#"
virtual_hosts:
  - name: api
    domains: ["*"]
    routes:
      - name: grpc
        match: {prefix: /grpc/}
        action: {cluster: g, max_stream_duration: {max_stream_duration_ms: 60000, grpc_timeout_header_max_ms: 5000}}
      - name: r
        match: {prefix: /}
        action: {cluster: api, timeout_ms: 3000, retry_policy: {retry_on: 5xx, per_try_timeout_ms: 1000}}
"#,
        )
        .unwrap();
        let out = describe(&table, &Request::get("h", "/"), 0);
        assert!(
            out.contains("  timeout       3000 ms\n  per try       1000 ms\n")
                && !out.contains("  stream "),
            "{out}"
        );
        let req = Request::new("POST", "h", "/grpc/pkg.Svc/Call")
            .header("content-type", "application/grpc")
            .header("grpc-timeout", "20S");
        let out = describe(&table, &req, 0);
        assert!(
            out.contains("  + header      grpc-timeout: 5000m\n")
                && out.contains("  - header      grpc-timeout: 20S\n"),
            "{out}"
        );
        assert!(
            out.contains("  timeout       none\n  stream        5000 ms\n"),
            "{out}"
        );
    }

    #[test]
    fn describe_says_which_redirects_a_route_follows() {
        let table = RouteTable::from_yaml(
            r#"
virtual_hosts:
  - name: api
    domains: ["*"]
    routes:
      - name: old
        match: {prefix: /old}
        action: {cluster: legacy, internal_redirect_policy: {redirect_response_codes: [307, 301], max_internal_redirects: 2, allow_cross_scheme_redirect: true}}
      - name: r
        match: {prefix: /}
        action: {cluster: api, internal_redirect_policy: {}}
"#,
        )
        .unwrap();
        let out = describe(&table, &Request::get("h", "/old"), 0);
        assert!(
            out.contains("  redirects     follows 301,307 (at most 2, across schemes)\n"),
            "{out}"
        );
        let out = describe(&table, &Request::get("h", "/"), 0);
        assert!(
            out.contains("  redirects     follows 302 (at most 1)\n"),
            "{out}"
        );
    }

    #[test]
    fn describe_says_what_cors_does() {
        let table = RouteTable::from_yaml(
            r#"
virtual_hosts:
  - name: api
    domains: ["*"]
    cors:
      allow_origin_string_match: [{exact: "https://app.example"}]
      allow_methods: "GET, PUT"
    routes: [{name: r, match: {prefix: /}, action: {cluster: api}}]
"#,
        )
        .unwrap();
        let line = |req: Request| {
            describe(&table, &req, 0)
                .lines()
                .find(|l| l.trim_start().starts_with("cors"))
                .map(|l| l.trim_start()["cors".len()..].trim().to_owned())
        };
        assert_eq!(
            line(Request::get("h", "/").header("origin", "https://app.example")).as_deref(),
            Some("origin allowed; the response gets access-control-allow-origin: https://app.example")
        );
        assert_eq!(
            line(
                Request::new("OPTIONS", "h", "/")
                    .header("origin", "https://app.example")
                    .header("access-control-request-method", "PUT")
            )
            .as_deref(),
            Some("preflight answered here, 200, origin allowed; access-control-allow-origin: https://app.example; access-control-allow-methods: GET, PUT")
        );
        assert_eq!(
            line(Request::get("h", "/").header("origin", "https://x.example")).as_deref(),
            Some("origin not allowed; the response is left alone")
        );
    }
}
