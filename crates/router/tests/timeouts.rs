//! A request's timeouts on its route (`RouteMatch::timeouts`), checked
//! against Envoy's router (`FilterUtility::finalTimeout`,
//! `setTimeoutHeaders`) and connection manager (`refreshDurationTimeout`)
//! case by case, and the `grpc-timeout` reader and writer against the
//! values Envoy's tests use.

use std::time::Duration;

use rauta_router::config::{MaxStreamDuration, Route, RouteConfig, VirtualHost};
use rauta_router::{GrpcTimeout, Request, RouteTable, TimeoutOptions, Timeouts};

fn ms(n: u64) -> Option<Duration> {
    Some(Duration::from_millis(n))
}

/// One route, `/`, with these action fields (YAML flow mapping entries).
fn table(action: &str) -> RouteTable {
    RouteTable::from_yaml(&format!(
        "virtual_hosts:\n  - name: v\n    domains: [\"*\"]\n    routes:\n      - match: {{prefix: /}}\n        action: {{cluster: c, {action}}}\n"
    ))
    .unwrap_or_else(|e| panic!("{action}: {e}"))
}

fn grpc(headers: &[(&str, &str)]) -> Request {
    headers.iter().fold(
        Request::new("POST", "h", "/pkg.Svc/Call").header("content-type", "application/grpc"),
        |r, (k, v)| r.header(*k, *v),
    )
}

fn plain(headers: &[(&str, &str)]) -> Request {
    headers
        .iter()
        .fold(Request::get("h", "/x"), |r, (k, v)| r.header(*k, *v))
}

fn timeouts(t: &RouteTable, req: &Request, opts: &TimeoutOptions) -> Timeouts {
    let d = t.route(req, 0);
    d.route().expect("a route").timeouts(req, opts)
}

/// The upstream request's headers after `apply_request_headers`.
fn applied(t: &Timeouts, req: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut h: Vec<(String, String)> = req
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    t.apply_request_headers(&mut h);
    h.sort();
    h
}

fn trusted() -> TimeoutOptions {
    TimeoutOptions::new().envoy_headers(true)
}

#[test]
fn the_route_timeout_and_per_try_timeout() {
    let t = table("timeout_ms: 10");
    let got = timeouts(&t, &plain(&[]), &TimeoutOptions::new());
    assert_eq!((got.global, got.per_try, got.stream), (ms(10), None, None));
    assert_eq!(got.expected, ms(10));

    // Default 15 s; 0 is no limit.
    let got = timeouts(
        &table("prefix_rewrite: /"),
        &plain(&[]),
        &TimeoutOptions::new(),
    );
    assert_eq!(got.global, ms(15_000));
    let got = timeouts(&table("timeout_ms: 0"), &plain(&[]), &TimeoutOptions::new());
    assert_eq!((got.global, got.expected), (None, None));

    // A per-try timeout shorter than the global one is kept, and is what
    // the upstream is told; one as long is dropped.
    let t = table("timeout_ms: 100, retry_policy: {retry_on: 5xx, per_try_timeout_ms: 30, per_try_idle_timeout_ms: 7}");
    let got = timeouts(&t, &plain(&[]), &TimeoutOptions::new());
    assert_eq!(
        (got.global, got.per_try, got.expected),
        (ms(100), ms(30), ms(30))
    );
    assert_eq!(got.per_try_idle, ms(7));
    let t = table("timeout_ms: 100, retry_policy: {retry_on: 5xx, per_try_timeout_ms: 100}");
    let got = timeouts(&t, &plain(&[]), &TimeoutOptions::new());
    assert_eq!((got.per_try, got.expected), (None, ms(100)));
    // Without a global timeout any per-try timeout stays.
    let t = table("timeout_ms: 0, retry_policy: {retry_on: 5xx, per_try_timeout_ms: 100}");
    let got = timeouts(&t, &plain(&[]), &TimeoutOptions::new());
    assert_eq!(
        (got.global, got.per_try, got.expected),
        (None, ms(100), ms(100))
    );
    // With hedging on a per-try timeout, the upstream may use all of it.
    let t = table("timeout_ms: 100, retry_policy: {retry_on: 5xx, per_try_timeout_ms: 30}, hedge_policy: {hedge_on_per_try_timeout: true}");
    let got = timeouts(&t, &plain(&[]), &TimeoutOptions::new());
    assert!(got.hedge_on_per_try_timeout);
    assert_eq!((got.per_try, got.expected), (ms(30), ms(100)));
}

#[test]
fn trusted_envoy_headers_replace_the_route_values_and_are_consumed() {
    let t = table("timeout_ms: 10, retry_policy: {retry_on: 5xx, per_try_timeout_ms: 5}");
    let h = [
        ("x-envoy-upstream-rq-timeout-ms", "15"),
        ("x-envoy-upstream-rq-per-try-timeout-ms", "7"),
        ("x-envoy-hedge-on-per-try-timeout", "true"),
        ("other", "1"),
    ];
    let got = timeouts(&t, &plain(&h), &trusted());
    assert_eq!(
        (got.global, got.per_try, got.expected),
        (ms(15), ms(7), ms(15))
    );
    assert!(got.hedge_on_per_try_timeout);
    assert_eq!(applied(&got, &h), [("other".to_owned(), "1".to_owned())]);

    // Untrusted (the default): neither read nor removed.
    let got = timeouts(&t, &plain(&h), &TimeoutOptions::new());
    assert_eq!((got.global, got.per_try), (ms(10), ms(5)));
    assert!(!got.hedge_on_per_try_timeout);
    assert_eq!(applied(&got, &h).len(), 4);

    // Values that do not parse are ignored, and still removed; an empty
    // per-try value is skipped and left in place.
    let bad = [
        ("x-envoy-upstream-rq-timeout-ms", "bad"),
        ("x-envoy-upstream-rq-per-try-timeout-ms", ""),
        ("x-envoy-hedge-on-per-try-timeout", "yes"),
    ];
    let got = timeouts(&t, &plain(&bad), &trusted());
    assert_eq!((got.global, got.per_try), (ms(10), ms(5)));
    assert_eq!(
        applied(&got, &bad),
        [(
            "x-envoy-upstream-rq-per-try-timeout-ms".to_owned(),
            String::new()
        )]
    );
    // absl::SimpleAtoi into an unsigned number: blanks around, a `+`;
    // never a fraction or a minus sign (not even `-0`).
    for (v, want) in [
        (" 20 ", ms(20)),
        ("+20", ms(20)),
        ("-0", ms(10)),
        ("-5", ms(10)),
        ("1.5", ms(10)),
    ] {
        let got = timeouts(
            &t,
            &plain(&[("x-envoy-upstream-rq-timeout-ms", v)]),
            &trusted(),
        );
        assert_eq!(got.global, want, "{v:?}");
    }
    // Sent twice, the values join with ',' in Envoy, which does not parse.
    let twice = plain(&[
        ("x-envoy-upstream-rq-timeout-ms", "20"),
        ("x-envoy-upstream-rq-timeout-ms", "30"),
    ]);
    assert_eq!(timeouts(&t, &twice, &trusted()).global, ms(10));

    // A per-try header as long as the header's global timeout is dropped;
    // the hedge header turns route hedging off too.
    let t = table("timeout_ms: 10, hedge_policy: {hedge_on_per_try_timeout: true}");
    let h = [
        ("x-envoy-upstream-rq-timeout-ms", "50"),
        ("x-envoy-upstream-rq-per-try-timeout-ms", "50"),
        ("x-envoy-hedge-on-per-try-timeout", "false"),
    ];
    let got = timeouts(&t, &plain(&h), &trusted());
    assert_eq!((got.global, got.per_try), (ms(50), None));
    assert!(!got.hedge_on_per_try_timeout);
}

#[test]
fn an_egress_envoys_expected_timeout_is_respected_when_asked() {
    let t = table("timeout_ms: 10");
    let h = [
        ("x-envoy-expected-rq-timeout-ms", "8"),
        ("x-envoy-upstream-rq-timeout-ms", "15"),
    ];
    let respect = trusted().respect_expected_rq_timeout(true);
    let got = timeouts(&t, &plain(&h), &respect);
    assert_eq!(got.global, ms(8));
    // The upstream timeout header was not read, so it stays.
    assert_eq!(applied(&got, &h).len(), 2);
    // Without the option the upstream header wins and is consumed.
    let got = timeouts(&t, &plain(&h), &trusted());
    assert_eq!(got.global, ms(15));
    assert_eq!(applied(&got, &h).len(), 1);
    // Without an expected header, the upstream header as usual.
    let got = timeouts(&t, &plain(&h[1..]), &respect);
    assert_eq!(got.global, ms(15));
    // Only for trusted requests.
    let untrusted = TimeoutOptions::new().respect_expected_rq_timeout(true);
    assert_eq!(timeouts(&t, &plain(&h), &untrusted).global, ms(10));
}

#[test]
fn the_expected_timeout_header_is_written_when_asked() {
    let t = table("timeout_ms: 100, retry_policy: {retry_on: 5xx, per_try_timeout_ms: 30}");
    let write = TimeoutOptions::new().expected_rq_timeout_header(true);
    let got = timeouts(&t, &plain(&[]), &write);
    assert_eq!(
        applied(&got, &[("x-envoy-expected-rq-timeout-ms", "1")]),
        [("x-envoy-expected-rq-timeout-ms".to_owned(), "30".to_owned())]
    );
    // Not by default; never without a limit.
    let got = timeouts(&t, &plain(&[]), &TimeoutOptions::new());
    assert!(applied(&got, &[]).is_empty());
    let got = timeouts(&table("timeout_ms: 0"), &plain(&[]), &write);
    assert!(applied(&got, &[]).is_empty());
}

#[test]
fn max_grpc_timeout_takes_the_grpc_timeout_header() {
    let none = TimeoutOptions::new();
    // Uncapped: the header's value; no header means no limit.
    let t = table("timeout_ms: 10, max_grpc_timeout_ms: 0");
    let got = timeouts(&t, &grpc(&[("grpc-timeout", "1000m")]), &none);
    assert_eq!((got.global, got.grpc_timeout), (ms(1000), ms(1000)));
    let got = timeouts(&t, &grpc(&[]), &none);
    assert_eq!((got.global, got.grpc_timeout), (None, None));
    // Capped, and the cap stands in for a missing header.
    let t = table("timeout_ms: 10, max_grpc_timeout_ms: 500");
    let got = timeouts(&t, &grpc(&[("grpc-timeout", "1S")]), &none);
    assert_eq!(got.global, ms(500));
    let got = timeouts(&t, &grpc(&[]), &none);
    assert_eq!(got.global, ms(500));
    let got = timeouts(&t, &grpc(&[("grpc-timeout", "100m")]), &none);
    assert_eq!(got.global, ms(100));
    // The offset comes off only when time is left.
    let t = table("max_grpc_timeout_ms: 0, grpc_timeout_offset_ms: 10");
    let got = timeouts(&t, &grpc(&[("grpc-timeout", "1S")]), &none);
    assert_eq!(got.global, ms(990));
    let got = timeouts(&t, &grpc(&[("grpc-timeout", "10m")]), &none);
    assert_eq!(got.global, ms(10));
    // The header goes upstream as the expected time: the per-try timeout
    // when there is one.
    let t = table("max_grpc_timeout_ms: 0, retry_policy: {retry_on: 5xx, per_try_timeout_ms: 100}");
    let h = [("content-type", "application/grpc"), ("grpc-timeout", "1S")];
    let got = timeouts(&t, &grpc(&h[1..]), &none);
    assert_eq!(
        (got.global, got.per_try, got.grpc_timeout),
        (ms(1000), ms(100), ms(100))
    );
    assert!(applied(&got, &h).contains(&("grpc-timeout".to_owned(), "100m".to_owned())));
    // A trusted header still replaces it.
    let got = timeouts(
        &t,
        &grpc(&[
            ("grpc-timeout", "1S"),
            ("x-envoy-upstream-rq-timeout-ms", "300"),
        ]),
        &trusted(),
    );
    assert_eq!(got.global, ms(300));

    // Requests that are not gRPC keep the route timeout and their header.
    let t = table("timeout_ms: 10, max_grpc_timeout_ms: 0");
    let got = timeouts(&t, &plain(&[("grpc-timeout", "1S")]), &none);
    assert_eq!((got.global, got.grpc_timeout), (ms(10), None));
    for ct in ["application/grpc-web", "application/grpc;x=1", "text/plain"] {
        let req = Request::new("POST", "h", "/x")
            .header("content-type", ct)
            .header("grpc-timeout", "1S");
        assert_eq!(timeouts(&t, &req, &none).global, ms(10), "{ct}");
    }
    let req = Request::new("POST", "h", "/x")
        .header("content-type", "application/grpc+proto")
        .header("grpc-timeout", "1S");
    assert_eq!(timeouts(&t, &req, &none).global, ms(1000));
    // A header that does not parse counts as none.
    for v in ["1s", "S", "", "100000000m", "-1S", "1.5S"] {
        let got = timeouts(&t, &grpc(&[("grpc-timeout", v)]), &none);
        assert_eq!(got.global, None, "{v:?}");
    }
}

#[test]
fn max_stream_duration_replaces_the_route_timeout() {
    let none = TimeoutOptions::new();
    let listener = TimeoutOptions::new().listener_max_stream_duration(ms(77));
    // Setting it at all: the router's global timeout is gone.
    let t = table("timeout_ms: 10, max_stream_duration: {max_stream_duration_ms: 2000}");
    let got = timeouts(&t, &plain(&[]), &listener);
    assert_eq!(
        (got.global, got.stream, got.expected),
        (None, ms(2000), None)
    );
    // 0 turns even the listener's limit off; unset leaves it.
    let t = table("max_stream_duration: {max_stream_duration_ms: 0}");
    assert_eq!(timeouts(&t, &plain(&[]), &listener).stream, None);
    let t = table("max_stream_duration: {}");
    assert_eq!(timeouts(&t, &plain(&[]), &listener).stream, ms(77));
    assert_eq!(timeouts(&t, &plain(&[]), &none).stream, None);
    let t = table("timeout_ms: 10");
    assert_eq!(timeouts(&t, &plain(&[]), &listener).stream, ms(77));
    // Trusted headers still set the router's timeout.
    let t = table("max_stream_duration: {max_stream_duration_ms: 2000}");
    let got = timeouts(
        &t,
        &plain(&[("x-envoy-upstream-rq-timeout-ms", "40")]),
        &trusted(),
    );
    assert_eq!((got.global, got.stream), (ms(40), ms(2000)));
    // The gRPC fields of the old scheme no longer apply.
    let t = table("max_grpc_timeout_ms: 0, max_stream_duration: {max_stream_duration_ms: 2000}");
    let got = timeouts(&t, &grpc(&[("grpc-timeout", "1S")]), &none);
    assert_eq!(
        (got.global, got.stream, got.grpc_timeout),
        (None, ms(2000), ms(2000))
    );
}

#[test]
fn grpc_timeout_header_max_lets_the_header_set_the_stream_lifetime() {
    let none = TimeoutOptions::new();
    let t = table(
        "max_stream_duration: {max_stream_duration_ms: 9000, grpc_timeout_header_max_ms: 5000}",
    );
    let h = [("grpc-timeout", "2S")];
    let got = timeouts(&t, &grpc(&h), &none);
    assert_eq!((got.stream, got.grpc_timeout), (ms(2000), ms(2000)));
    // Capped.
    let got = timeouts(&t, &grpc(&[("grpc-timeout", "20S")]), &none);
    assert_eq!((got.stream, got.grpc_timeout), (ms(5000), ms(5000)));
    assert!(applied(&got, &[("grpc-timeout", "20S")])
        .contains(&("grpc-timeout".to_owned(), "5000m".to_owned())));
    // Without a header the route's lifetime; a gRPC request's header is
    // then set to it.
    let got = timeouts(&t, &grpc(&[]), &none);
    assert_eq!((got.stream, got.grpc_timeout), (ms(9000), ms(9000)));
    // Envoy's connection manager reads the header whatever the content
    // type (gRPC-Web sends it too); only gRPC requests get it rewritten.
    let got = timeouts(&t, &plain(&h), &none);
    assert_eq!((got.stream, got.grpc_timeout), (ms(2000), None));
    let web = Request::new("POST", "h", "/x")
        .header("content-type", "application/grpc-web+proto")
        .header("grpc-timeout", "20S");
    let got = timeouts(&t, &web, &none);
    assert_eq!((got.stream, got.grpc_timeout), (ms(5000), None));
    // A cap of 0 caps nothing.
    let t = table("max_stream_duration: {grpc_timeout_header_max_ms: 0}");
    let got = timeouts(&t, &grpc(&[("grpc-timeout", "20S")]), &none);
    assert_eq!(got.stream, ms(20_000));
    // The offset; an offset that uses the time up leaves none at all.
    let t = table(
        "max_stream_duration: {grpc_timeout_header_max_ms: 0, grpc_timeout_header_offset_ms: 300}",
    );
    let got = timeouts(&t, &grpc(&h), &none);
    assert_eq!(got.stream, ms(1700));
    let got = timeouts(&t, &grpc(&[("grpc-timeout", "300m")]), &none);
    assert_eq!((got.stream, got.grpc_timeout), (ms(0), ms(0)));
    // A 0 header is 0 (the stream ends at once), not "no limit"; `-0` is
    // 0 too (read as a signed number that must not be negative).
    for zero in ["0m", "-0m", "+0S"] {
        let got = timeouts(&t, &grpc(&[("grpc-timeout", zero)]), &none);
        assert_eq!(got.stream, ms(0), "{zero}");
    }
    // No route lifetime and no header: the listener's, else none.
    let got = timeouts(&t, &grpc(&[]), &none);
    assert_eq!((got.stream, got.grpc_timeout), (None, None));
    let listener = TimeoutOptions::new().listener_max_stream_duration(ms(77));
    let got = timeouts(&t, &grpc(&[]), &listener);
    assert_eq!((got.stream, got.grpc_timeout), (ms(77), ms(77)));
}

#[test]
fn turning_the_listener_limit_off_removes_a_grpc_timeout() {
    // Envoy arms a timer for the listener's limit when the stream starts;
    // a route's `max_stream_duration_ms: 0` disarms it and removes the
    // gRPC request's header.
    let t = table("max_stream_duration: {max_stream_duration_ms: 0}");
    let listener = TimeoutOptions::new().listener_max_stream_duration(ms(77));
    let h = [("content-type", "application/grpc"), ("grpc-timeout", "5S")];
    let got = timeouts(&t, &grpc(&h[1..]), &listener);
    assert_eq!((got.stream, got.grpc_timeout), (None, None));
    assert!(got.grpc_timeout_removed);
    assert_eq!(
        applied(&got, &h),
        [("content-type".to_owned(), "application/grpc".to_owned())]
    );
    // No listener limit: no timer to disarm, the header stays.
    let got = timeouts(&t, &grpc(&h[1..]), &TimeoutOptions::new());
    assert!(!got.grpc_timeout_removed);
    assert_eq!(applied(&got, &h).len(), 2);
    // Nor for a request that is not gRPC.
    let got = timeouts(&t, &plain(&h[1..]), &listener);
    assert!(!got.grpc_timeout_removed);
}

#[test]
fn trusted_stream_duration_and_alternate_timeout_status() {
    let t = table("timeout_ms: 10");
    let h = [
        ("x-envoy-upstream-stream-duration-ms", "250"),
        ("x-envoy-upstream-rq-timeout-alt-response", ""),
    ];
    let got = timeouts(&t, &plain(&h), &trusted());
    assert_eq!(
        (got.upstream_stream_duration, got.timeout_status),
        (ms(250), 204)
    );
    assert!(applied(&got, &h).is_empty());
    let got = timeouts(&t, &plain(&h), &TimeoutOptions::new());
    assert_eq!(
        (got.upstream_stream_duration, got.timeout_status),
        (None, 504)
    );
    assert_eq!(applied(&got, &h).len(), 2);
    // A value that does not parse: none, and still removed.
    let bad = [("x-envoy-upstream-stream-duration-ms", "-1")];
    let got = timeouts(&t, &plain(&bad), &trusted());
    assert_eq!(got.upstream_stream_duration, None);
    assert!(applied(&got, &bad).is_empty());
}

#[test]
fn a_per_try_header_sent_twice_is_consumed_even_if_its_first_value_is_empty() {
    // Envoy joins the values (",5"): not empty, does not parse, removed.
    let t = table("timeout_ms: 100, retry_policy: {retry_on: 5xx, per_try_timeout_ms: 30}");
    let h = [
        ("x-envoy-upstream-rq-per-try-timeout-ms", ""),
        ("x-envoy-upstream-rq-per-try-timeout-ms", "5"),
    ];
    let got = timeouts(&t, &plain(&h), &trusted());
    assert_eq!(got.per_try, ms(30));
    assert!(applied(&got, &h).is_empty());
}

#[test]
fn internal_only_headers_of_an_external_request_are_not_read() {
    let t = RouteTable::from_yaml(
        "internal_only_headers: [grpc-timeout, x-envoy-upstream-rq-timeout-ms]\nvirtual_hosts:\n  - name: v\n    domains: [\"*\"]\n    routes:\n      - match: {prefix: /}\n        action: {cluster: c, timeout_ms: 10, max_grpc_timeout_ms: 0}\n",
    )
    .expect("valid");
    let req = grpc(&[
        ("grpc-timeout", "1S"),
        ("x-envoy-upstream-rq-timeout-ms", "40"),
    ]);
    let got = timeouts(&t, &req, &trusted());
    // Neither header is seen: no gRPC deadline (a cap of 0: no limit) and
    // no trusted timeout.
    assert_eq!(got.global, None);
    let internal = req.clone().header("x-envoy-internal", "true");
    let got = timeouts(&t, &internal, &trusted());
    assert_eq!(got.global, ms(40));
}

#[test]
fn grpc_timeout_values_read_and_written_as_envoy_does() {
    let p = |v: &str| GrpcTimeout::parse(v.as_bytes()).map(|g| g.0);
    assert_eq!(p("0m"), ms(0));
    assert_eq!(p("1H"), ms(3_600_000));
    assert_eq!(p("1M"), ms(60_000));
    assert_eq!(p("1S"), ms(1000));
    assert_eq!(p("1m"), ms(1));
    assert_eq!(p("1u"), ms(1));
    assert_eq!(p("1000u"), ms(1));
    assert_eq!(p("1001u"), ms(2));
    assert_eq!(p("1n"), ms(1));
    assert_eq!(p("1000001n"), ms(2));
    assert_eq!(p("99999999H"), Some(Duration::from_secs(99_999_999 * 3600)));
    for bad in [
        "",
        "H",
        "1",
        "1x",
        "1s",
        "100000000S",
        "-1S",
        "1.0S",
        "0x1S",
    ] {
        assert_eq!(p(bad), None, "{bad:?}");
    }
    let w = |n: u64| GrpcTimeout(Duration::from_millis(n)).to_string();
    assert_eq!(w(0), "0m");
    assert_eq!(w(1000), "1000m");
    assert_eq!(w(99_999_999), "99999999m");
    assert_eq!(w(100_000_000), "100000S");
    assert_eq!(w(100_000_000_000), "1666666M");
    assert_eq!(w(9_000_000_000_000), "2500000H");
    assert_eq!(w(360_000_000_000_000), "99999999H");
    assert_eq!(w(u64::MAX), "99999999H");
    assert_eq!(GrpcTimeout(Duration::MAX).to_string(), "99999999H");
}

#[test]
fn envoy_shaped_fields_load_and_are_reported() {
    let t = RouteConfig::from_envoy_yaml(
        r#"
virtual_hosts:
  - name: v
    domains: ["*"]
    routes:
      - match: {prefix: /a}
        route:
          cluster: c
          max_stream_duration: {max_stream_duration: 2s, grpc_timeout_header_max: 0s, grpcTimeoutHeaderOffset: 0.25s}
      - match: {prefix: /}
        route: {cluster: c, max_grpc_timeout: 1.5s, grpc_timeout_offset: {seconds: 0, nanos: 100000000}}
"#,
    )
    .expect("parses");
    let t = RouteTable::build(t).expect("valid");
    let routes = t.virtual_hosts()[0].routes();
    let d = routes[0].max_stream_duration().expect("set");
    assert_eq!(
        (
            d.max_stream_duration_ms,
            d.grpc_timeout_header_max_ms,
            d.grpc_timeout_header_offset_ms
        ),
        (Some(2000), Some(0), Some(250))
    );
    assert_eq!(routes[0].max_grpc_timeout_ms(), None);
    assert_eq!(routes[1].max_stream_duration(), None);
    assert_eq!(routes[1].max_grpc_timeout_ms(), Some(1500));
    assert_eq!(routes[1].grpc_timeout_offset_ms(), Some(100));
}

#[test]
fn the_builder_sets_max_stream_duration() {
    let cfg = RouteConfig::new().virtual_host(
        VirtualHost::new("v", ["*"]).route(
            Route::prefix("/").cluster("c").max_stream_duration(
                MaxStreamDuration::new()
                    .max_stream_duration_ms(500)
                    .grpc_timeout_header_max_ms(0),
            ),
        ),
    );
    let t = RouteTable::build(cfg).expect("valid");
    let got = timeouts(&t, &grpc(&[("grpc-timeout", "3S")]), &TimeoutOptions::new());
    assert_eq!(got.stream, ms(3000));
    let got = timeouts(&t, &plain(&[]), &TimeoutOptions::new());
    assert_eq!(got.stream, ms(500));
}

#[test]
fn timeout_fields_on_routes_that_do_not_forward_are_errors() {
    for field in [
        "max_stream_duration: {max_stream_duration_ms: 1}",
        "max_grpc_timeout_ms: 1",
        "grpc_timeout_offset_ms: 1",
    ] {
        let name = field.split(':').next().unwrap();
        let yaml = format!(
            "virtual_hosts:\n  - name: v\n    domains: [\"*\"]\n    routes:\n      - match: {{prefix: /}}\n        action: {{direct_response: {{status: 200}}, {field}}}\n"
        );
        let err = RouteTable::from_yaml(&yaml).expect_err(field).to_string();
        assert!(
            err.contains(&format!("action.{name}"))
                && err.contains("only applies to routes that forward"),
            "{err}"
        );
    }
    let err = RouteTable::from_yaml(
        "virtual_hosts:\n  - name: v\n    domains: [\"*\"]\n    routes:\n      - match: {prefix: /}\n        action: {cluster: c, max_stream_duration: {max_ms: 1}}\n",
    )
    .expect_err("unknown field")
    .to_string();
    assert!(err.contains("unknown field `max_ms`"), "{err}");
}

#[test]
fn a_retry_is_told_what_is_left_of_the_global_timeout() {
    let t = table(
        "timeout_ms: 1000, max_grpc_timeout_ms: 0, retry_policy: {retry_on: 5xx, per_try_timeout_ms: 400}",
    );
    let write = TimeoutOptions::new().expected_rq_timeout_header(true);
    // Not gRPC: the route's 1000 ms global timeout, 400 ms a try.
    let got = timeouts(&t, &plain(&[]), &write);
    assert_eq!(got.expected_after(Duration::ZERO), got.expected);
    assert_eq!(got.expected_after(Duration::from_millis(100)), ms(400));
    assert_eq!(got.expected_after(Duration::from_millis(700)), ms(300));
    // Gone: 1 ms, never 0 (no limit).
    assert_eq!(got.expected_after(Duration::from_millis(1000)), ms(1));
    assert_eq!(got.expected_after(Duration::from_secs(9)), ms(1));
    // Fractions of a millisecond gone do not count.
    assert_eq!(got.expected_after(Duration::from_micros(700_900)), ms(300));
    let mut h = Vec::new();
    got.apply_retry_headers(&mut h, Duration::from_millis(700));
    assert_eq!(
        h,
        [(
            "x-envoy-expected-rq-timeout-ms".to_owned(),
            "300".to_owned()
        )]
    );
    // gRPC under max_grpc_timeout_ms: grpc-timeout follows.
    let got = timeouts(&t, &grpc(&[("grpc-timeout", "2S")]), &TimeoutOptions::new());
    let mut h = vec![("grpc-timeout".to_owned(), "2S".to_owned())];
    got.apply_request_headers(&mut h);
    assert_eq!(h[0].1, "400m");
    got.apply_retry_headers(&mut h, Duration::from_millis(1900));
    assert_eq!(h[0].1, "100m");
    // Without a global timeout the per-try timeout stands.
    let t = table("timeout_ms: 0, retry_policy: {retry_on: 5xx, per_try_timeout_ms: 400}");
    let got = timeouts(&t, &plain(&[]), &write);
    assert_eq!(got.expected_after(Duration::from_secs(60)), ms(400));
    // No limit at all: nothing to tell.
    let got = timeouts(&table("timeout_ms: 0"), &plain(&[]), &write);
    assert_eq!(got.expected_after(Duration::from_secs(1)), None);
    let mut h: Vec<(String, String)> = Vec::new();
    got.apply_retry_headers(&mut h, Duration::from_secs(1));
    assert!(h.is_empty());
    // Under max_stream_duration the header is the stream's, not redone
    // (though there is an expected timeout: the per-try one).
    let t = table(
        "max_stream_duration: {grpc_timeout_header_max_ms: 0}, retry_policy: {retry_on: 5xx, per_try_timeout_ms: 100}",
    );
    let got = timeouts(&t, &grpc(&[("grpc-timeout", "2S")]), &TimeoutOptions::new());
    assert_eq!(got.expected_after(Duration::from_millis(500)), ms(100));
    let mut h = vec![("grpc-timeout".to_owned(), "2S".to_owned())];
    got.apply_retry_headers(&mut h, Duration::from_millis(500));
    assert_eq!(h[0].1, "2S");
}
