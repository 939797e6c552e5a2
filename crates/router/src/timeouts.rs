//! A request's timeouts on its route, as Envoy works them out: the router
//! filter's upstream and per-try timeouts (`FilterUtility::finalTimeout`),
//! with the `x-envoy-upstream-rq-*` headers and the gRPC rules of
//! `max_grpc_timeout`, and the connection manager's stream lifetime
//! (`max_stream_duration`, which a `grpc-timeout` header may set).

use std::fmt;
use std::time::Duration;

use crate::config;
use crate::mutate::HeaderMapMut;
use crate::request::{first_header_value, RequestView};

/// The header naming the upstream timeout a trusted client asks for.
const UPSTREAM_RQ_TIMEOUT: &str = "x-envoy-upstream-rq-timeout-ms";
/// The header naming the per-try timeout a trusted client asks for.
const UPSTREAM_RQ_PER_TRY_TIMEOUT: &str = "x-envoy-upstream-rq-per-try-timeout-ms";
/// The header telling the upstream how long it has.
const EXPECTED_RQ_TIMEOUT: &str = "x-envoy-expected-rq-timeout-ms";
/// The header turning hedging on a per-try timeout on or off.
const HEDGE_ON_PER_TRY_TIMEOUT: &str = "x-envoy-hedge-on-per-try-timeout";
/// The header limiting each upstream attempt's stream.
const UPSTREAM_STREAM_DURATION: &str = "x-envoy-upstream-stream-duration-ms";
/// The header asking for 204 instead of 504 on an upstream timeout.
const TIMEOUT_ALT_RESPONSE: &str = "x-envoy-upstream-rq-timeout-alt-response";
/// gRPC's deadline header.
const GRPC_TIMEOUT: &str = "grpc-timeout";

/// The largest value a `grpc-timeout` header carries (eight digits).
const MAX_GRPC_TIMEOUT_VALUE: u64 = 99_999_999;

/// A route's timeout settings beyond `timeout` and `idle_timeout`, kept
/// only by routes that set one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TimeoutRules {
    /// `max_stream_duration`, when set (Envoy's "new timeouts": the
    /// route's `timeout` and the gRPC fields below no longer apply).
    pub(crate) stream: Option<StreamRules>,
    pub(crate) max_grpc_timeout: Option<Duration>,
    pub(crate) grpc_timeout_offset: Option<Duration>,
}

/// The fields of `max_stream_duration`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StreamRules {
    pub(crate) max: Option<Duration>,
    pub(crate) header_max: Option<Duration>,
    pub(crate) header_offset: Option<Duration>,
}

impl TimeoutRules {
    /// The rules an action sets, or `None` when it sets none of them.
    pub(crate) fn from_action(a: &config::Action) -> Option<TimeoutRules> {
        let ms = |v: Option<u64>| v.map(Duration::from_millis);
        let rules = TimeoutRules {
            stream: a.max_stream_duration.as_ref().map(|d| StreamRules {
                max: ms(d.max_stream_duration_ms),
                header_max: ms(d.grpc_timeout_header_max_ms),
                header_offset: ms(d.grpc_timeout_header_offset_ms),
            }),
            max_grpc_timeout: ms(a.max_grpc_timeout_ms),
            grpc_timeout_offset: ms(a.grpc_timeout_offset_ms),
        };
        (rules != TimeoutRules::default()).then_some(rules)
    }
}

/// How [`RouteMatch::timeouts`](crate::RouteMatch::timeouts) treats what
/// lies outside the route: the request's `x-envoy-*` timeout headers, and
/// the listener's stream limit.
///
/// The default reads no `x-envoy-*` header, sets no
/// `x-envoy-expected-rq-timeout-ms` upstream, and knows no listener limit.
///
/// A client must not choose its own timeouts unless the proxy trusts it:
/// Envoy's connection manager strips these `x-envoy-*` headers (all but
/// `x-envoy-upstream-stream-duration-ms`) from external requests before
/// its router reads them. Headers that are not read are
/// not touched either: a proxy that does not trust the client removes them
/// itself (rauta-proxy removes every `x-envoy-*` header a client sends),
/// or an upstream Envoy would read them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TimeoutOptions {
    /// Read `x-envoy-upstream-rq-timeout-ms`,
    /// `x-envoy-upstream-rq-per-try-timeout-ms`,
    /// `x-envoy-hedge-on-per-try-timeout`,
    /// `x-envoy-upstream-stream-duration-ms` and
    /// `x-envoy-upstream-rq-timeout-alt-response` (for requests the proxy
    /// trusts); each is removed once read.
    pub envoy_headers: bool,
    /// Read `x-envoy-expected-rq-timeout-ms` first, as the upstream timeout
    /// an egress Envoy already settled (the router's
    /// `respect_expected_rq_timeout`); only with
    /// [`envoy_headers`](Self::envoy_headers).
    pub respect_expected_rq_timeout: bool,
    /// Tell the upstream its time in `x-envoy-expected-rq-timeout-ms`
    /// (Envoy's default; its router's `suppress_envoy_headers` turns it off).
    pub expected_rq_timeout_header: bool,
    /// The listener's stream limit (the connection manager's
    /// `max_stream_duration`), which applies where a route sets none.
    pub listener_max_stream_duration: Option<Duration>,
}

impl TimeoutOptions {
    /// The defaults: no `x-envoy-*` header read or written, no listener
    /// limit.
    pub fn new() -> TimeoutOptions {
        TimeoutOptions::default()
    }

    /// Sets [`envoy_headers`](Self::envoy_headers).
    pub fn envoy_headers(mut self, read: bool) -> Self {
        self.envoy_headers = read;
        self
    }

    /// Sets [`respect_expected_rq_timeout`](Self::respect_expected_rq_timeout).
    pub fn respect_expected_rq_timeout(mut self, respect: bool) -> Self {
        self.respect_expected_rq_timeout = respect;
        self
    }

    /// Sets [`expected_rq_timeout_header`](Self::expected_rq_timeout_header).
    pub fn expected_rq_timeout_header(mut self, write: bool) -> Self {
        self.expected_rq_timeout_header = write;
        self
    }

    /// Sets [`listener_max_stream_duration`](Self::listener_max_stream_duration).
    pub fn listener_max_stream_duration(mut self, limit: Option<Duration>) -> Self {
        self.listener_max_stream_duration = limit;
        self
    }
}

/// What a request's timeouts come to on its route; from
/// [`RouteMatch::timeouts`](crate::RouteMatch::timeouts).
///
/// `None` means no limit (Envoy's 0). Apply the header changes with
/// [`apply_request_headers`](Self::apply_request_headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timeouts {
    /// The upstream exchange as a whole, retries included (the router's
    /// global timeout; Envoy starts it once the request has been received
    /// in full).
    pub global: Option<Duration>,
    /// Each attempt (never as long as `global`: such a per-try timeout is
    /// dropped).
    pub per_try: Option<Duration>,
    /// How long an attempt may go without sending or receiving.
    pub per_try_idle: Option<Duration>,
    /// Whether a per-try timeout starts another attempt beside the one
    /// still waiting (hedging) rather than ending it.
    pub hedge_on_per_try_timeout: bool,
    /// The stream's whole lifetime, from the start of the request (the
    /// connection manager's stream duration): the route's
    /// `max_stream_duration`, a `grpc-timeout` header it lets set the
    /// limit (whatever the request's content type, as in Envoy), or the
    /// listener's. When it runs out Envoy answers 504 if the request was
    /// received in full, 408 if not (gRPC: `grpc-status` 4), or resets the
    /// stream once the response has begun. `Some(Duration::ZERO)` when a
    /// `grpc-timeout` left no time (0, or the route's offset used it up).
    pub stream: Option<Duration>,
    /// The limit on each upstream attempt's stream a trusted client set
    /// (`x-envoy-upstream-stream-duration-ms`; Envoy's router applies it in
    /// place of the cluster's `max_stream_duration`). Unlike the fields
    /// above, `Some(Duration::ZERO)` is the header's 0: no limit at all,
    /// not even the cluster's; `None` (no header, or one that does not
    /// parse) leaves the cluster's.
    pub upstream_stream_duration: Option<Duration>,
    /// The status to answer when the global or per-try timeout runs out:
    /// 504, or 204 when a trusted client sent
    /// `x-envoy-upstream-rq-timeout-alt-response`.
    pub timeout_status: u16,
    /// The time the upstream is told it has: the per-try timeout (the
    /// global one when there is none, or with hedging), at most the global
    /// timeout.
    pub expected: Option<Duration>,
    /// The `grpc-timeout` a gRPC request goes upstream with, when the
    /// route's gRPC rules replace the client's.
    pub grpc_timeout: Option<Duration>,
    /// Whether a gRPC request's `grpc-timeout` is removed instead: the
    /// route's `max_stream_duration_ms: 0` turned the listener's limit off
    /// (Envoy removes the header when it disarms the listener's timer).
    pub grpc_timeout_removed: bool,
    /// The `x-envoy-*` headers read, which go no further.
    read: ReadHeaders,
    write_expected: bool,
    /// What `expected` is before the global timeout bounds it (the
    /// per-try timeout, or the global one).
    expected_base: Option<Duration>,
    /// `grpc_timeout` follows `expected` (`max_grpc_timeout_ms`).
    grpc_follows_expected: bool,
}

/// Which `x-envoy-*` request headers a computation read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct ReadHeaders {
    upstream_rq_timeout: bool,
    per_try_timeout: bool,
    hedge: bool,
    stream_duration: bool,
    alt_response: bool,
}

impl Timeouts {
    /// Edits the upstream request's headers as Envoy's router does: the
    /// `x-envoy-*` headers that were read are removed,
    /// `x-envoy-expected-rq-timeout-ms` is set (when the options asked for
    /// it and there is a limit), and `grpc-timeout` is replaced (or
    /// removed) when the route's gRPC rules say so. These are the first
    /// attempt's values: Envoy takes the time gone by off them for a retry.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rauta_router::{Request, RouteTable, TimeoutOptions};
    ///
    /// let table = RouteTable::from_yaml(r#"
    /// virtual_hosts:
    ///   - name: grpc
    ///     domains: ["*"]
    ///     routes:
    ///       - match: {prefix: /}
    ///         action: {cluster: backend, max_grpc_timeout_ms: 5000}
    /// "#).unwrap();
    /// let req = Request::new("POST", "h", "/pkg.Svc/Call")
    ///     .header("content-type", "application/grpc")
    ///     .header("grpc-timeout", "20S");
    /// let d = table.route(&req, 0);
    /// let t = d.route().unwrap().timeouts(&req, &TimeoutOptions::new());
    /// // The client's 20 s are capped at the route's 5 s.
    /// assert_eq!(t.global, Some(Duration::from_secs(5)));
    /// let mut headers = vec![("grpc-timeout".to_owned(), "20S".to_owned())];
    /// t.apply_request_headers(&mut headers);
    /// assert_eq!(headers, [("grpc-timeout".to_owned(), "5000m".to_owned())]);
    /// ```
    pub fn apply_request_headers<H: HeaderMapMut + ?Sized>(&self, headers: &mut H) {
        if self.read.upstream_rq_timeout {
            headers.remove(UPSTREAM_RQ_TIMEOUT);
        }
        if self.read.per_try_timeout {
            headers.remove(UPSTREAM_RQ_PER_TRY_TIMEOUT);
        }
        if self.read.hedge {
            headers.remove(HEDGE_ON_PER_TRY_TIMEOUT);
        }
        if self.read.stream_duration {
            headers.remove(UPSTREAM_STREAM_DURATION);
        }
        if self.read.alt_response {
            headers.remove(TIMEOUT_ALT_RESPONSE);
        }
        if self.write_expected {
            if let Some(e) = self.expected {
                headers.set(EXPECTED_RQ_TIMEOUT, &e.as_millis().to_string());
            }
        }
        if let Some(g) = self.grpc_timeout {
            headers.set(GRPC_TIMEOUT, &GrpcTimeout(g).to_string());
        } else if self.grpc_timeout_removed {
            headers.remove(GRPC_TIMEOUT);
        }
    }

    /// The time the upstream is told it has on an attempt sent `elapsed`
    /// after the request was received (Envoy's `setTimeoutHeaders`): the
    /// per-try timeout (or the global one), at most what is left of the
    /// global timeout, and 1 ms once that is gone (0 would mean no limit).
    /// At `Duration::ZERO` it is [`expected`](Self::expected).
    pub fn expected_after(&self, elapsed: Duration) -> Option<Duration> {
        let base = self.expected_base?;
        let Some(global) = self.global else {
            return Some(base);
        };
        // Whole milliseconds, as Envoy counts them.
        let elapsed = Duration::from_millis(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
        Some(if elapsed >= global {
            Duration::from_millis(1)
        } else {
            base.min(global - elapsed)
        })
    }

    /// The header edits for a retry sent `elapsed` after the request was
    /// received, as Envoy's router makes them before each retry:
    /// `x-envoy-expected-rq-timeout-ms` (when the options asked for it)
    /// and, under `max_grpc_timeout_ms`, a gRPC request's `grpc-timeout`
    /// become [`expected_after(elapsed)`](Self::expected_after). The first
    /// attempt's other edits ([`apply_request_headers`](Self::apply_request_headers))
    /// are already made.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rauta_router::{Request, RouteTable, TimeoutOptions};
    ///
    /// let table = RouteTable::from_yaml(r#"
    /// virtual_hosts:
    ///   - name: grpc
    ///     domains: ["*"]
    ///     routes:
    ///       - match: {prefix: /}
    ///         action:
    ///           cluster: backend
    ///           max_grpc_timeout_ms: 0
    ///           retry_policy: {retry_on: unavailable, per_try_timeout_ms: 400}
    /// "#).unwrap();
    /// let req = Request::new("POST", "h", "/pkg.Svc/Call")
    ///     .header("content-type", "application/grpc")
    ///     .header("grpc-timeout", "1S");
    /// let d = table.route(&req, 0);
    /// let t = d.route().unwrap().timeouts(&req, &TimeoutOptions::new());
    /// let mut headers = vec![("grpc-timeout".to_owned(), "1S".to_owned())];
    /// t.apply_request_headers(&mut headers);
    /// assert_eq!(headers[0].1, "400m");
    /// // A retry 700 ms in has 300 ms of the call's second left.
    /// t.apply_retry_headers(&mut headers, Duration::from_millis(700));
    /// assert_eq!(headers[0].1, "300m");
    /// ```
    pub fn apply_retry_headers<H: HeaderMapMut + ?Sized>(
        &self,
        headers: &mut H,
        elapsed: Duration,
    ) {
        let Some(e) = self.expected_after(elapsed) else {
            return;
        };
        if self.write_expected {
            headers.set(EXPECTED_RQ_TIMEOUT, &e.as_millis().to_string());
        }
        if self.grpc_follows_expected {
            headers.set(GRPC_TIMEOUT, &GrpcTimeout(e).to_string());
        }
    }
}

/// A duration written as a `grpc-timeout` header value, as Envoy writes
/// it: whole milliseconds (`m`), or seconds, minutes or hours once the
/// value needs more than eight digits (hours are capped at 99999999).
///
/// ```
/// use std::time::Duration;
/// use rauta_router::GrpcTimeout;
///
/// assert_eq!(GrpcTimeout(Duration::from_millis(1500)).to_string(), "1500m");
/// assert_eq!(GrpcTimeout(Duration::from_secs(200_000)).to_string(), "200000S");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcTimeout(pub Duration);

impl fmt::Display for GrpcTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut value = u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX);
        let mut units = "mSMH".chars();
        let mut unit = units.next().unwrap_or('m');
        if value > MAX_GRPC_TIMEOUT_VALUE {
            value /= 1000;
            unit = units.next().unwrap_or('S');
        }
        while value > MAX_GRPC_TIMEOUT_VALUE {
            if unit == 'H' {
                value = MAX_GRPC_TIMEOUT_VALUE;
            } else {
                value /= 60;
                unit = units.next().unwrap_or('H');
            }
        }
        write!(f, "{value}{unit}")
    }
}

impl GrpcTimeout {
    /// Reads a `grpc-timeout` header value as Envoy does: a whole number of
    /// at most 99999999 and one unit, `H`, `M`, `S`, `m`, `u` or `n`
    /// (micro- and nanoseconds round up to the next millisecond). `None`
    /// for anything else.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rauta_router::GrpcTimeout;
    ///
    /// assert_eq!(GrpcTimeout::parse(b"2S"), Some(GrpcTimeout(Duration::from_secs(2))));
    /// assert_eq!(GrpcTimeout::parse(b"1500u"), Some(GrpcTimeout(Duration::from_millis(2))));
    /// assert_eq!(GrpcTimeout::parse(b"2s"), None);
    /// ```
    pub fn parse(value: &[u8]) -> Option<GrpcTimeout> {
        let (&unit, number) = value.split_last()?;
        // Read as an int64 that must not be negative: `-0` is 0.
        let n = simple_atoi(number, true).filter(|n| *n <= MAX_GRPC_TIMEOUT_VALUE)?;
        let d = match unit {
            b'H' => Duration::from_secs(n * 3600),
            b'M' => Duration::from_secs(n * 60),
            b'S' => Duration::from_secs(n),
            b'm' => Duration::from_millis(n),
            b'u' => Duration::from_millis(n.div_ceil(1000)),
            b'n' => Duration::from_millis(n.div_ceil(1_000_000)),
            _ => return None,
        };
        Some(GrpcTimeout(d))
    }
}

/// A number as `absl::SimpleAtoi` reads one: ASCII whitespace around it,
/// an optional sign, then at least one digit, without overflow. Read into
/// an unsigned type, any `-` fails; into a signed one checked for `>= 0`
/// (`signed`), `-0` is 0.
fn simple_atoi(s: &[u8], signed: bool) -> Option<u64> {
    let s = s.trim_ascii();
    let (negative, digits) = match s.split_first() {
        Some((b'+', rest)) => (false, rest),
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })?;
    (!negative || (signed && n == 0)).then_some(n)
}

/// The request's headers as the timeouts read them: internal-only headers
/// of an external request are absent.
struct Headers<'r, R: ?Sized> {
    req: &'r R,
    hidden: &'r [Box<str>],
}

impl<'r, R: RequestView + ?Sized> Headers<'r, R> {
    /// The first value and how many there are.
    fn get(&self, name: &str) -> (Option<&'r [u8]>, usize) {
        if self.hidden.iter().any(|h| &**h == name) {
            return (None, 0);
        }
        first_header_value(self.req, name)
    }

    /// The value of a header sent once (Envoy joins repeated values with
    /// `,`, which none of these headers then parses as).
    fn single(&self, name: &str) -> Option<&'r [u8]> {
        match self.get(name) {
            (Some(v), 1) => Some(v),
            _ => None,
        }
    }

    fn has(&self, name: &str) -> bool {
        self.get(name).1 > 0
    }

    /// A header of whole milliseconds (Envoy's `tryParseHeaderTimeout`).
    fn ms(&self, name: &str) -> Option<Duration> {
        self.single(name)
            .and_then(|v| simple_atoi(v, false))
            .map(Duration::from_millis)
    }
}

/// The router's and the connection manager's timeouts for a request.
pub(crate) struct RouteTimeouts<'a> {
    pub(crate) timeout: Duration,
    pub(crate) per_try: Duration,
    pub(crate) per_try_idle: Option<Duration>,
    pub(crate) hedge_on_per_try_timeout: bool,
    pub(crate) rules: Option<&'a TimeoutRules>,
    pub(crate) grpc: bool,
    /// Headers to treat as absent (internal-only ones, external request).
    pub(crate) hidden: &'a [Box<str>],
}

fn nonzero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

impl RouteTimeouts<'_> {
    pub(crate) fn compute<R: RequestView + ?Sized>(
        &self,
        req: &R,
        opts: &TimeoutOptions,
    ) -> Timeouts {
        let h = Headers {
            req,
            hidden: self.hidden,
        };
        let rules = self.rules;
        let stream_rules = rules.and_then(|r| r.stream.as_ref());
        let header_grpc = || {
            h.single(GRPC_TIMEOUT)
                .and_then(GrpcTimeout::parse)
                .map(|g| g.0)
        };
        let mut read = ReadHeaders::default();
        // The router's global timeout (`finalTimeout`); none at all on a
        // route with `max_stream_duration` ("new timeouts").
        let mut global = Duration::ZERO;
        let mut old_grpc = false;
        if stream_rules.is_none() {
            match rules.and_then(|r| r.max_grpc_timeout) {
                Some(max) if self.grpc => {
                    old_grpc = true;
                    let mut t = header_grpc().unwrap_or(Duration::ZERO);
                    if let Some(offset) = rules.and_then(|r| r.grpc_timeout_offset) {
                        // Only when time is left: 0 would mean no limit.
                        if offset < t {
                            t -= offset;
                        }
                    }
                    if !max.is_zero() && (t.is_zero() || t > max) {
                        t = max;
                    }
                    global = t;
                }
                _ => global = self.timeout,
            }
        }
        let mut per_try = self.per_try;
        let mut hedge = self.hedge_on_per_try_timeout;
        let mut upstream_stream_duration = None;
        let mut timeout_status = 504;
        if opts.envoy_headers {
            // `finalHedgingParams` comes first.
            if h.has(HEDGE_ON_PER_TRY_TIMEOUT) {
                read.hedge = true;
                match h.single(HEDGE_ON_PER_TRY_TIMEOUT) {
                    Some(b"true") => hedge = true,
                    Some(b"false") => hedge = false,
                    _ => {}
                }
            }
            if opts.respect_expected_rq_timeout && h.has(EXPECTED_RQ_TIMEOUT) {
                // Settled by an egress Envoy: taken as it is, and the
                // upstream timeout header is left alone.
                if let Some(ms) = h.ms(EXPECTED_RQ_TIMEOUT) {
                    global = ms;
                }
            } else if h.has(UPSTREAM_RQ_TIMEOUT) {
                read.upstream_rq_timeout = true;
                if let Some(ms) = h.ms(UPSTREAM_RQ_TIMEOUT) {
                    global = ms;
                }
            }
            // Envoy skips an empty per-try value (and leaves it in place);
            // repeated values join into one that is not empty.
            if let (Some(first), n) = h.get(UPSTREAM_RQ_PER_TRY_TIMEOUT) {
                if n > 1 || !first.is_empty() {
                    read.per_try_timeout = true;
                    if let Some(ms) = h.ms(UPSTREAM_RQ_PER_TRY_TIMEOUT) {
                        per_try = ms;
                    }
                }
            }
            if h.has(UPSTREAM_STREAM_DURATION) {
                read.stream_duration = true;
                upstream_stream_duration = h.ms(UPSTREAM_STREAM_DURATION);
            }
            if h.has(TIMEOUT_ALT_RESPONSE) {
                read.alt_response = true;
                timeout_status = 204;
            }
        }
        if !global.is_zero() && per_try >= global {
            per_try = Duration::ZERO;
        }
        // `setTimeoutHeaders`, at the start of the first attempt.
        let expected_base = if hedge || per_try.is_zero() {
            global
        } else {
            per_try
        };
        let mut expected = expected_base;
        if !expected.is_zero() && !global.is_zero() {
            expected = expected.min(global);
        }
        let mut grpc_timeout = (old_grpc && !expected.is_zero()).then_some(expected);
        let mut grpc_timeout_removed = false;

        // The connection manager's stream duration
        // (`refreshDurationTimeout`). It reads `grpc-timeout` whatever the
        // content type; only the header's rewrite is for gRPC requests.
        let listener = opts.listener_max_stream_duration.and_then(nonzero);
        let header_max = stream_rules.and_then(|s| s.header_max);
        let stream = match header_max.and_then(|max| Some((header_grpc()?, max))) {
            Some((mut t, max)) => {
                if !max.is_zero() && t > max {
                    t = max;
                }
                if let Some(offset) = stream_rules.and_then(|s| s.header_offset) {
                    // An offset as long as the time leaves none: the
                    // stream ends at once (`Some(0)`), it is not unlimited.
                    if !t.is_zero() {
                        t = t.saturating_sub(offset);
                    }
                }
                Some(t)
            }
            None => match stream_rules.map(|s| s.max) {
                Some(Some(max)) => nonzero(max),
                _ => listener,
            },
        };
        if stream_rules.is_some() && self.grpc {
            match stream {
                Some(s) => grpc_timeout = Some(s),
                // The timer Envoy armed for the listener's limit is
                // disarmed, and the header goes with it.
                None => grpc_timeout_removed = listener.is_some(),
            }
        }
        Timeouts {
            global: nonzero(global),
            per_try: nonzero(per_try),
            per_try_idle: self.per_try_idle.and_then(nonzero),
            hedge_on_per_try_timeout: hedge,
            stream,
            upstream_stream_duration,
            timeout_status,
            expected: nonzero(expected),
            grpc_timeout,
            grpc_timeout_removed,
            read,
            write_expected: opts.expected_rq_timeout_header,
            expected_base: nonzero(expected_base),
            grpc_follows_expected: old_grpc,
        }
    }
}
