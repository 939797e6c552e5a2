//! The admin listener: `/metrics`, `/ready`, `/config`, `/routes`.

use std::fmt::Write as _;
use std::sync::Arc;

use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use rauta_stats::Format;

use crate::proxy::{full, text, Body};
use crate::state::State;

/// Answers one admin request.
pub async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    Ok(match req.uri().path() {
        "/metrics" => metrics(&state),
        "/ready" => text(StatusCode::OK, "ready\n"),
        "/config" => json(config(&state)),
        "/routes" => json(routes(&state)),
        _ => text(
            StatusCode::NOT_FOUND,
            "admin endpoints: /metrics /ready /config /routes\n",
        ),
    })
}

fn json(v: serde_json::Value) -> Response<Body> {
    let mut body = serde_json::to_string_pretty(&v).unwrap_or_default();
    body.push('\n');
    let mut r = Response::new(full(body));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// The local rate limits' counters, summed by `stat_prefix` over the
/// configuration being served (a reload carries them over for every
/// limiter that keeps its place and prefix).
fn local_rate_limits(state: &State, out: &mut String) {
    let rt = state.runtime();
    let mut by_prefix: std::collections::BTreeMap<&str, [u64; 4]> = Default::default();
    for l in rt.snapshot.table().local_rate_limiters() {
        let c = l.counts();
        let sum = by_prefix.entry(l.stat_prefix()).or_default();
        for (s, v) in sum
            .iter_mut()
            .zip([c.enabled, c.ok, c.rate_limited, c.enforced])
        {
            *s += v;
        }
    }
    if by_prefix.is_empty() {
        return;
    }
    out.push_str(
        "# HELP rauta_proxy_local_rate_limit_total Requests a local rate limit looked at, by stat_prefix and result (Envoy's <stat_prefix>.http_local_rate_limit counters: enabled, ok, rate_limited, enforced).\n\
         # TYPE rauta_proxy_local_rate_limit_total counter\n",
    );
    for (prefix, counts) in by_prefix {
        let mut label = String::new();
        rauta_stats::escape_label_value(prefix, &mut label);
        for (result, v) in ["enabled", "ok", "rate_limited", "enforced"]
            .iter()
            .zip(counts)
        {
            let _ = writeln!(
                out,
                "rauta_proxy_local_rate_limit_total{{stat_prefix=\"{label}\",result=\"{result}\"}} {v}"
            );
        }
    }
}

/// rauta-stats' Prometheus text plus the proxy's own reload metrics.
fn metrics(state: &State) -> Response<Body> {
    let mut out = state.registry().render(Format::Prometheus);
    let (ok, failed) = state.reload_counts();
    let _ = write!(
        out,
        "# HELP rauta_proxy_config_version Version of the configuration being served.\n\
         # TYPE rauta_proxy_config_version gauge\n\
         rauta_proxy_config_version {}\n\
         # HELP rauta_proxy_reloads_total Configuration reloads by result.\n\
         # TYPE rauta_proxy_reloads_total counter\n\
         rauta_proxy_reloads_total{{result=\"ok\"}} {ok}\n\
         rauta_proxy_reloads_total{{result=\"rejected\"}} {failed}\n",
        state.version().0
    );
    let cors = state.cors_counts();
    let _ = write!(
        out,
        "# HELP rauta_proxy_cors_origins_total Requests a CORS policy checked, by whether their origin is allowed.\n\
         # TYPE rauta_proxy_cors_origins_total counter\n\
         rauta_proxy_cors_origins_total{{result=\"valid\"}} {}\n\
         rauta_proxy_cors_origins_total{{result=\"invalid\"}} {}\n\
         # HELP rauta_proxy_cors_preflights_total CORS preflights answered by the proxy.\n\
         # TYPE rauta_proxy_cors_preflights_total counter\n\
         rauta_proxy_cors_preflights_total {}\n",
        cors.origin_valid.get(),
        cors.origin_invalid.get(),
        cors.preflights.get()
    );
    let redirects = state.redirect_counts();
    let _ = write!(
        out,
        "# HELP rauta_proxy_internal_redirects_total Upstream redirects a route's internal_redirect_policy covers, by outcome: followed, or why not.\n\
         # TYPE rauta_proxy_internal_redirects_total counter\n\
         rauta_proxy_internal_redirects_total{{result=\"followed\"}} {}\n",
        redirects.followed.get()
    );
    for (reason, n) in redirects.refusals() {
        let _ = writeln!(
            out,
            "rauta_proxy_internal_redirects_total{{result=\"{reason}\"}} {n}"
        );
    }
    local_rate_limits(state, &mut out);
    #[cfg(feature = "xdp")]
    if let Some(x) = state.xdp() {
        x.render(&mut out);
    }
    let mut r = Response::new(full(out));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(Format::Prometheus.content_type()),
    );
    r
}

fn config(state: &State) -> serde_json::Value {
    let rt = state.runtime();
    let (ok, failed) = state.reload_counts();
    serde_json::json!({
        "version": rt.snapshot.version().0,
        "hash": format!("{:016x}", rt.text_hash),
        "reloads": { "ok": ok, "rejected": failed },
        "last_error": state.last_error(),
    })
}

fn routes(state: &State) -> serde_json::Value {
    let rt = state.runtime();
    let table = rt.snapshot.table();
    let vhosts: Vec<_> = table
        .virtual_hosts()
        .iter()
        .map(|vh| {
            let routes: Vec<_> = vh
                .routes()
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "name": r.name(),
                        "match": format!("{:?} {}", r.path_kind(), r.path_text()),
                        "conditions": r.condition_count(),
                        "action": r.action_summary(),
                        "timeout_ms": r.timeout_ms(),
                        "max_stream_duration": r.max_stream_duration().map(|d| serde_json::json!({
                            "max_stream_duration_ms": d.max_stream_duration_ms,
                            "grpc_timeout_header_max_ms": d.grpc_timeout_header_max_ms,
                            "grpc_timeout_header_offset_ms": d.grpc_timeout_header_offset_ms,
                        })),
                        "max_grpc_timeout_ms": r.max_grpc_timeout_ms(),
                        "retries": r.retry_policy().map(|p| p.num_retries),
                        "internal_redirects": r.internal_redirect_policy().map(|p| serde_json::json!({
                            "max_internal_redirects": p.max_internal_redirects(),
                            "redirect_response_codes": p.redirect_response_codes().collect::<Vec<_>>(),
                        })),
                    })
                })
                .collect();
            serde_json::json!({ "name": vh.name(), "domains": vh.domains(), "routes": routes })
        })
        .collect();
    let mut clusters: Vec<_> = rt
        .clusters
        .values()
        .map(|c| {
            let lb = c.balancer();
            let endpoints: Vec<_> = lb
                .endpoints()
                .endpoints()
                .iter()
                .map(|e| {
                    serde_json::json!({
                        "address": e.address().to_string(),
                        "weight": e.weight_value(),
                        "health": format!("{:?}", e.health_state()),
                        "active": e.load().active(),
                    })
                })
                .collect();
            serde_json::json!({
                "name": c.config().name,
                "lb_policy": format!("{:?}", c.config().lb_policy),
                "endpoints": endpoints,
            })
        })
        .collect();
    clusters.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    serde_json::json!({
        "version": rt.snapshot.version().0,
        "virtual_hosts": vhosts,
        "clusters": clusters,
    })
}
