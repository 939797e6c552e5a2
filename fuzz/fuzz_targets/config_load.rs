//! Configuration loading: any bytes go through the YAML and JSON front ends
//! and, when they parse, through validation and compilation. Checked: nothing
//! panics; every error is displayable and names a place; a table that builds
//! routes a few requests derived from the input without panicking, and the
//! compiled index agrees with the ordered scan on them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rauta_router::config::RouteConfig;
use rauta_router::{BuildOptions, Decision, Request, RouteTable};

fn key(d: &Decision<'_>) -> (u8, Option<usize>, Option<String>) {
    match d {
        Decision::Route(m) => (0, Some(m.route_id().index()), m.cluster().map(str::to_owned)),
        Decision::TlsRedirect { .. } => (1, None, None),
        Decision::Reject { status, .. } => (2, Some(usize::from(*status)), None),
        Decision::PathRedirect { location, .. } => (3, None, Some(location.clone())),
        Decision::NotFound { vhost } => (4, vhost.map(|v| v.index()), None),
        _ => (5, None, None),
    }
}

fn exercise(table: &RouteTable, text: &str) {
    // Requests built from the input's own words, so they hit its routes.
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | '{' | '}' | '[' | ']' | '"' | '\''))
        .filter(|w| !w.is_empty())
        .take(16)
        .collect();
    for (i, w) in words.iter().enumerate() {
        let host = words.get(i + 1).copied().unwrap_or("a.com");
        let path = if w.starts_with('/') { (*w).to_string() } else { format!("/{w}") };
        // Every other request is a gRPC call whose deadline is a word of
        // the input (for the routes' timeout rules).
        let mut req = Request::get(host, path).header("x-a", *w);
        if i % 2 == 1 {
            req = req
                .header("content-type", "application/grpc")
                .header("grpc-timeout", *w)
                .header("x-envoy-upstream-rq-timeout-ms", *w);
        }
        let fast = key(&table.route(&req, i as u64));
        let slow = key(&table.route_linear(&req, i as u64));
        assert_eq!(fast, slow, "index and scan disagree on {req:?}");
        if let Decision::Route(m) = table.route(&req, i as u64) {
            let mut headers = req.headers.clone();
            let _ = m.apply_request(&mut headers);
            let _ = m.redirect_location();
            let _ = m.direct_response_location();
            // Rate limits: descriptors, and a local rate limit check at a
            // moment from the input (never panics, whatever the buckets).
            let ctx = rauta_router::RateLimitContext::new();
            let _ = m.rate_limit_descriptors(&req, &ctx);
            let at = std::time::Instant::now() + std::time::Duration::from_millis(i as u64 * 997);
            if let Some(o) = m.local_rate_limit(&req, &ctx, at, i as u64) {
                let mut h: Vec<(String, String)> = Vec::new();
                o.apply_request_headers(&mut h, &rauta_router::FormatContext::new());
                o.apply_response_headers(&mut h, &rauta_router::FormatContext::new());
            }
            // Timeouts, trusting the `x-envoy-*` headers or not; their
            // header edits.
            for trusted in [false, true] {
                let opts = rauta_router::TimeoutOptions::new()
                    .envoy_headers(trusted)
                    .expected_rq_timeout_header(trusted)
                    .listener_max_stream_duration(Some(std::time::Duration::from_millis(i as u64)));
                let t = m.timeouts(&req, &opts);
                let mut h = req.headers.clone();
                t.apply_request_headers(&mut h);
                if let Some(g) = t.grpc_timeout {
                    let text = rauta_router::GrpcTimeout(g).to_string();
                    assert!(rauta_router::GrpcTimeout::parse(text.as_bytes()).is_some(), "{text}");
                }
            }
        }
        // Internal redirects: an answer of each followable status whose
        // Location is built from the input's words; a redirect followed
        // applies, and the request it makes routes like any other.
        if let Decision::Route(m) = table.route(&req, i as u64) {
            let mut state = rauta_router::InternalRedirectState::new();
            for (j, status) in [301u16, 302, 303, 307, 308].into_iter().enumerate() {
                let mut answer = http::HeaderMap::new();
                let to = words.get(i + j).copied().unwrap_or("/");
                for loc in [format!("http://{host}{to}"), (*w).to_string()] {
                    if let Ok(v) = http::HeaderValue::from_str(&loc) {
                        answer.insert(http::header::LOCATION, v);
                    }
                    if let Ok(v) = http::HeaderValue::from_str(to) {
                        answer.insert("x-a", v);
                    }
                    if let Some(Ok(r)) = m.internal_redirect(&req, status, &answer, &mut state, i as u64) {
                        let mut parts = http::Request::get("/").body(()).unwrap().into_parts().0;
                        r.apply(&mut parts);
                        assert_eq!(parts.uri.path_and_query().map(|p| p.as_str()), Some(r.path_and_query()));
                        let _ = table.route(&parts, i as u64);
                    }
                }
            }
        }
        let _ = table.explain(&req, 0);
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for raw in [false, true] {
        // Alternately with files and environment variables readable: a
        // fuzzed `filename` must not hang or take the whole file.
        let opts = BuildOptions::default()
            .raw_paths(raw)
            .local_data_sources(raw);
        match RouteConfig::from_yaml(&text) {
            Ok(cfg) => match RouteTable::build_with(cfg, &opts) {
                Ok(table) => exercise(&table, &text),
                Err(errs) => {
                    assert!(!errs.is_empty());
                    for e in errs.errors() {
                        assert!(!e.to_string().is_empty());
                    }
                }
            },
            Err(errs) => assert!(!errs.to_string().is_empty()),
        }
    }
    // Envoy's shape: the conversion never panics, and what it gives builds
    // or fails like any configuration.
    if let Ok(cfg) = RouteConfig::from_envoy_yaml(&text) {
        let opts = BuildOptions::default().local_data_sources(false);
        if let Ok(table) = RouteTable::build_with(cfg, &opts) {
            exercise(&table, &text);
        }
    }
    if let Ok(cfg) = RouteConfig::from_json(&text) {
        if let Ok(table) = RouteTable::build(cfg) {
            exercise(&table, &text);
        }
    }
});
