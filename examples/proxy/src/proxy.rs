//! One request: route, answer locally or pick an endpoint and forward, with
//! retries and timeouts; then stats and an access log line.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, HOST, LOCATION};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::BodyExt;
use rauta_balance::{HashInput, Pick};
use rauta_router::{
    ActionKind, CorsCheck, Decision, FormatContext, InternalRedirectState, LocalRateLimitOutcome,
    LocalRateLimitVerdict, RateLimitContext, RequestView, RetryPolicy, RouteMatch,
};

use crate::cluster::Cluster;
use crate::config::UnderscoreAction;
use crate::state::{Runtime, State};

/// A body's error, on either side of the proxy.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type on both sides of the proxy: nothing, one buffer, a
/// response streaming from an upstream connection, or any other body, boxed.
/// The common cases cost no allocation and no dynamic call.
#[derive(Debug)]
pub struct Body(Kind);

#[derive(Debug)]
enum Kind {
    Empty,
    Full(Option<Bytes>),
    // Boxed: small responses arrive whole (`Full`), and a body type this
    // large would be copied with every future that holds one.
    Upstream(Box<crate::h1::UpstreamBody>),
    Boxed(BoxBody<Bytes, BoxError>),
}

impl Body {
    /// Any body whose errors convert to [`BoxError`].
    pub fn new<B>(body: B) -> Body
    where
        B: hyper::body::Body<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<BoxError>,
    {
        Body(Kind::Boxed(body.map_err(Into::into).boxed()))
    }

    pub(crate) fn upstream(body: crate::h1::UpstreamBody) -> Body {
        Body(Kind::Upstream(Box::new(body)))
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, BoxError>>> {
        use std::task::Poll;
        match &mut self.0 {
            Kind::Empty => Poll::Ready(None),
            Kind::Full(data) => Poll::Ready(data.take().map(|d| Ok(hyper::body::Frame::data(d)))),
            Kind::Upstream(b) => std::pin::Pin::new(&mut **b).poll_frame(cx),
            Kind::Boxed(b) => std::pin::Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Empty => true,
            Kind::Full(data) => data.is_none(),
            Kind::Upstream(b) => b.is_end_stream(),
            Kind::Boxed(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match &self.0 {
            Kind::Empty => hyper::body::SizeHint::with_exact(0),
            Kind::Full(data) => {
                hyper::body::SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Kind::Upstream(b) => b.size_hint(),
            Kind::Boxed(b) => b.size_hint(),
        }
    }
}

/// The pooled upstream client ([`crate::h1`]).
pub type UpstreamClient = crate::h1::Pool;

/// Connect timeout for every upstream connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Upper bound on retries, whatever a route asks for.
pub const MAX_RETRIES: u32 = 5;

/// Headers that describe one hop, never forwarded (RFC 9110 section 7.6.1).
/// Names, not strings: removing by `&str` parses the name every time.
static HOP_BY_HOP: [HeaderName; 9] = [
    http::header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    http::header::PROXY_AUTHENTICATE,
    http::header::PROXY_AUTHORIZATION,
    http::header::TE,
    http::header::TRAILER,
    http::header::TRANSFER_ENCODING,
    // Upgrades are not proxied.
    http::header::UPGRADE,
];

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// A fresh `x-request-id`: 128 random bits in hex.
fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = [0u8; 32];
    for (half, word) in id.chunks_exact_mut(16).zip([random_u64(), random_u64()]) {
        for (i, d) in half.iter_mut().enumerate() {
            *d = HEX[((word >> (60 - 4 * i)) & 0xf) as usize];
        }
    }
    HeaderValue::from_bytes(&id).unwrap_or(HeaderValue::from_static("0"))
}

/// `ip` as a header value. Every request on a connection comes from the
/// same address, so the last one formatted is kept per thread.
fn ip_value(ip: std::net::IpAddr) -> HeaderValue {
    use std::cell::RefCell;
    thread_local! {
        static LAST: RefCell<Option<(std::net::IpAddr, HeaderValue)>> = const { RefCell::new(None) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some((a, v)) if *a == ip => v.clone(),
            _ => {
                let v = HeaderValue::from_str(&ip.to_string())
                    .unwrap_or(HeaderValue::from_static("unknown"));
                *last = Some((ip, v.clone()));
                v
            }
        }
    })
}

/// Whether `name` is one of the hop-by-hop fields (RFC 9110 section 7.6.1).
pub(crate) fn is_hop_by_hop(name: &HeaderName) -> bool {
    // Only names of these lengths can be one: most fields are ruled out
    // without a comparison.
    matches!(name.as_str().len(), 2 | 7 | 10 | 16..=19) && HOP_BY_HOP.iter().any(|h| h == name)
}

/// [`is_hop_by_hop`] for a name as bytes, in any case.
pub(crate) fn is_hop_by_hop_bytes(name: &[u8]) -> bool {
    matches!(name.len(), 2 | 7 | 10 | 16..=19)
        && HOP_BY_HOP
            .iter()
            .any(|h| h.as_str().as_bytes().eq_ignore_ascii_case(name))
}

/// What the handler answers: a response, and for an upstream's HTTP/1.1
/// response whose fields nothing has edited, those fields as they came (the
/// response's own header map is empty then). A writer that can use the raw
/// fields writes them as they are; anything else takes
/// [`into_response`](Reply::into_response), which moves them into the map.
#[derive(Debug)]
pub struct Reply {
    response: Response<Body>,
    raw: Option<crate::h1::RawFields>,
}

impl Reply {
    /// A response whose fields are `raw` (its header map is empty).
    pub(crate) fn raw(response: Response<Body>, raw: crate::h1::RawFields) -> Reply {
        debug_assert!(response.headers().is_empty());
        Reply {
            response,
            raw: Some(raw),
        }
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.response.status()
    }

    /// The response and its raw fields, if they are still raw.
    pub fn into_parts(self) -> (Response<Body>, Option<crate::h1::RawFields>) {
        (self.response, self.raw)
    }

    /// The response with every field in its header map.
    pub fn into_response(mut self) -> Response<Body> {
        self.materialize();
        self.response
    }

    /// The header map, holding every field.
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        self.materialize();
        self.response.headers_mut()
    }

    /// Whether the body is already whole in memory (none, or one buffer).
    pub(crate) fn body_is_whole(&self) -> bool {
        matches!(self.response.body().0, Kind::Empty | Kind::Full(_))
    }

    /// The same answer with its body replaced by `f(body)`.
    pub(crate) fn map_body(self, f: impl FnOnce(Body) -> Body) -> Reply {
        Reply {
            response: self.response.map(f),
            raw: self.raw,
        }
    }

    fn materialize(&mut self) {
        if let Some(raw) = self.raw.take() {
            *self.response.headers_mut() = raw.to_map();
        }
    }
}

impl From<Response<Body>> for Reply {
    fn from(response: Response<Body>) -> Reply {
        Reply {
            response,
            raw: None,
        }
    }
}

/// How long an idle upstream connection is kept.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The upstream request's header fields: the downstream request's, minus
/// the hop-by-hop ones, with the route's edits and the forwarding headers on
/// top. It borrows the downstream header map instead of copying it: the
/// upstream client writes the downstream fields that were not dropped, then
/// the added ones.
#[derive(Debug)]
pub struct UpstreamHeaders<'a> {
    base: &'a HeaderMap,
    /// Names whose downstream values are not forwarded.
    dropped: Vec<HeaderName>,
    /// Fields added or replaced, in order.
    added: Vec<(HeaderName, HeaderValue)>,
}

impl<'a> UpstreamHeaders<'a> {
    /// `base` minus its hop-by-hop fields and the ones its `connection`
    /// field names (RFC 9110 section 7.6.1).
    pub fn new(base: &'a HeaderMap) -> Self {
        let mut dropped = Vec::new();
        if base.keys().any(is_hop_by_hop) {
            for v in base.get_all(http::header::CONNECTION) {
                for token in v.to_str().unwrap_or("").split(',') {
                    if let Ok(name) = HeaderName::from_bytes(token.trim().as_bytes()) {
                        dropped.push(name);
                    }
                }
            }
            dropped.extend(HOP_BY_HOP.iter().filter(|h| base.contains_key(*h)).cloned());
        }
        UpstreamHeaders {
            base,
            dropped,
            added: Vec::with_capacity(4),
        }
    }

    fn is_dropped(&self, name: &HeaderName) -> bool {
        self.dropped.iter().any(|d| d == name)
    }

    /// The first value of `name` the upstream will see.
    pub fn get(&self, name: &HeaderName) -> Option<&HeaderValue> {
        let base = if self.is_dropped(name) {
            None
        } else {
            self.base.get(name)
        };
        base.or_else(|| self.added.iter().find(|(n, _)| n == name).map(|(_, v)| v))
    }

    /// Every value of `name` the upstream will see, in order.
    pub fn all<'s>(&'s self, name: &HeaderName) -> impl Iterator<Item = &'s HeaderValue> + 's {
        let base = (!self.is_dropped(name))
            .then(|| self.base.get_all(name).iter())
            .into_iter()
            .flatten();
        let name = name.clone();
        let added = self
            .added
            .iter()
            .filter(move |(n, _)| *n == name)
            .map(|(_, v)| v);
        base.chain(added)
    }

    /// The value of `name` if the upstream will see exactly one.
    pub fn only(&self, name: &HeaderName) -> Option<&HeaderValue> {
        let mut all = self.all(name);
        match (all.next(), all.next()) {
            (Some(v), None) => Some(v),
            _ => None,
        }
    }

    /// Replaces every value of `name` with `value`.
    pub fn insert(&mut self, name: HeaderName, value: HeaderValue) {
        self.remove_name(&name);
        self.added.push((name, value));
    }

    /// Adds one more value of `name`.
    pub fn append(&mut self, name: HeaderName, value: HeaderValue) {
        self.added.push((name, value));
    }

    fn remove_name(&mut self, name: &HeaderName) {
        if self.base.contains_key(name) && !self.is_dropped(name) {
            self.dropped.push(name.clone());
        }
        self.added.retain(|(n, _)| n != name);
    }

    /// Calls `f` with every field the upstream will see, in order.
    pub fn each(&self, mut f: impl FnMut(&HeaderName, &HeaderValue)) {
        for (n, v) in self.base {
            if !self.is_dropped(n) {
                f(n, v);
            }
        }
        for (n, v) in &self.added {
            f(n, v);
        }
    }
}

/// Lookups by `&str` name without building a `HeaderName` (which allocates
/// for names that are not standard ones).
impl UpstreamHeaders<'_> {
    fn is_dropped_str(&self, name: &str) -> bool {
        self.dropped
            .iter()
            .any(|d| d.as_str().eq_ignore_ascii_case(name))
    }

    fn get_str(&self, name: &str) -> Option<&HeaderValue> {
        let base = if self.is_dropped_str(name) {
            None
        } else {
            self.base.get(name)
        };
        base.or_else(|| {
            self.added
                .iter()
                .find(|(n, _)| n.as_str().eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        })
    }
}

impl rauta_router::HeaderMapMut for UpstreamHeaders<'_> {
    fn first(&self, name: &str) -> Option<&str> {
        self.get_str(name).and_then(|v| v.to_str().ok())
    }
    fn contains(&self, name: &str) -> bool {
        self.get_str(name).is_some()
    }
    fn append(&mut self, name: &str, value: &str) {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            UpstreamHeaders::append(self, n, v);
        }
    }
    fn set(&mut self, name: &str, value: &str) {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            self.insert(n, v);
        }
    }
    fn remove(&mut self, name: &str) {
        if self.base.contains_key(name) && !self.is_dropped_str(name) {
            if let Ok(n) = HeaderName::from_bytes(name.as_bytes()) {
                self.dropped.push(n);
            }
        }
        self.added
            .retain(|(n, _)| !n.as_str().eq_ignore_ascii_case(name));
    }
}

impl crate::h1::Fields for UpstreamHeaders<'_> {
    fn each_field(&self, f: &mut dyn FnMut(&HeaderName, &HeaderValue)) {
        self.each(f);
    }
    fn has(&self, name: &HeaderName) -> bool {
        self.get(name).is_some()
    }
}

/// A pooled HTTP/1.1 client with TCP_NODELAY, [`IDLE_TIMEOUT`] and
/// [`CONNECT_TIMEOUT`].
pub fn client() -> UpstreamClient {
    crate::h1::Pool::new(IDLE_TIMEOUT, CONNECT_TIMEOUT)
}

/// A response with a small text body.
pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// A complete body.
pub fn full(body: impl Into<Bytes>) -> Body {
    let body = body.into();
    Body(if body.is_empty() {
        Kind::Empty
    } else {
        Kind::Full(Some(body))
    })
}

/// An empty body.
pub fn empty() -> Body {
    Body(Kind::Empty)
}

/// A downstream connection's upstream timer, reused by its requests. Create
/// it inside a tokio runtime with the time driver on.
///
/// A fresh `tokio::time::timeout` per request registers an entry in the
/// timer wheel and removes it again, every time. Requests on one connection
/// come one after another with deadlines that only move later, so this
/// timer is left armed at an earlier deadline and re-armed only when it
/// fires before the request's own deadline (or when a request's deadline
/// is earlier than the armed one). Timeouts still fire on time.
#[derive(Debug)]
pub struct ConnTimer {
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl Default for ConnTimer {
    fn default() -> Self {
        // Not registered until first polled.
        let far = tokio::time::Instant::now() + Duration::from_secs(86_400 * 365);
        ConnTimer {
            sleep: Box::pin(tokio::time::sleep_until(far)),
        }
    }
}

impl ConnTimer {
    /// Runs `fut` until it finishes (`Some`) or `end` passes (`None`).
    ///
    /// The future is borrowed pinned, not moved in: a request's future is
    /// large, and a wrapper owning it would copy it once more per request.
    pub fn within<'a, F: std::future::Future + ?Sized>(
        &'a mut self,
        end: tokio::time::Instant,
        fut: std::pin::Pin<&'a mut F>,
    ) -> Within<'a, F> {
        if self.sleep.deadline() > end {
            self.sleep.as_mut().reset(end);
        }
        Within {
            timer: self,
            end,
            fut,
        }
    }
}

/// The future of [`ConnTimer::within`] (the timer is re-armed when
/// `within` is called).
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Within<'a, F: ?Sized> {
    timer: &'a mut ConnTimer,
    end: tokio::time::Instant,
    fut: std::pin::Pin<&'a mut F>,
}

impl<F: std::future::Future + ?Sized> std::future::Future for Within<'_, F> {
    type Output = Option<F::Output>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        use std::task::Poll;
        let this = &mut *self;
        if let Poll::Ready(v) = this.fut.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        while this.timer.sleep.as_mut().poll(cx).is_ready() {
            if this.timer.sleep.deadline() >= this.end {
                return Poll::Ready(None);
            }
            // Fired at an earlier request's deadline: wait for ours.
            this.timer.sleep.as_mut().reset(this.end);
        }
        Poll::Pending
    }
}

/// A per-request random number (splitmix64 over a per-thread seed).
pub fn random_u64() -> u64 {
    use std::cell::Cell;
    use std::hash::{BuildHasher, RandomState};
    thread_local! {
        static STATE: Cell<u64> = Cell::new(RandomState::new().hash_one(std::thread::current().id()));
    }
    STATE.with(|s| {
        let mut z = s.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        s.set(z);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

/// What rauta-balance's hash policies read from a request.
struct HashView<'a> {
    headers: &'a HeaderMap,
    uri: &'a Uri,
    remote: SocketAddr,
}

impl HashInput for HashView<'_> {
    fn for_each_header<'a>(&'a self, name: &str, f: &mut dyn FnMut(&'a [u8])) {
        for v in self.headers.get_all(name) {
            f(v.as_bytes());
        }
    }
    fn query(&self) -> Option<&str> {
        self.uri.query()
    }
    fn remote_address(&self) -> Option<SocketAddr> {
        Some(self.remote)
    }
}

/// How an attempt ended, when it did not produce a response to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    NoHealthy,
    Connect,
    Reset,
    Timeout,
    /// The stream's lifetime (`max_stream_duration`) ran out; whether the
    /// request had been received in full by then.
    Duration {
        request_complete: bool,
    },
}

impl Failure {
    fn status(self) -> StatusCode {
        match self {
            Failure::Timeout => StatusCode::GATEWAY_TIMEOUT,
            // Envoy's `maybeRequestTimeoutCode`.
            Failure::Duration {
                request_complete: true,
            } => StatusCode::GATEWAY_TIMEOUT,
            Failure::Duration {
                request_complete: false,
            } => StatusCode::REQUEST_TIMEOUT,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
    fn label(self) -> &'static str {
        match self {
            Failure::NoHealthy => "no healthy upstream",
            Failure::Connect => "upstream connect error",
            Failure::Reset => "upstream reset",
            Failure::Timeout => "upstream request timeout",
            Failure::Duration { .. } => "downstream duration timeout",
        }
    }
}

/// Whether `path` can go into a request line: starts with `/`, and has no
/// byte that ends or splits it (controls, space, DEL) and no fragment.
fn valid_target(path: &str) -> bool {
    path.starts_with('/') && path.bytes().all(|b| b > b' ' && b != 0x7f && b != b'#')
}

/// Whether `retry_on` allows retrying after `failure` or `status`.
fn retriable(p: &RetryPolicy, failure: Option<Failure>, status: Option<u16>) -> bool {
    p.retry_on
        .iter()
        .any(|cond| match (cond.as_str(), failure, status) {
            ("5xx", Some(_), _) => true,
            ("5xx", None, Some(s)) => s >= 500,
            ("gateway-error", Some(Failure::Connect | Failure::Timeout), _) => true,
            ("gateway-error", None, Some(s)) => matches!(s, 502..=504),
            ("connect-failure", Some(Failure::Connect), _) => true,
            ("reset", Some(Failure::Reset), _) => true,
            ("retriable-status-codes", None, Some(s)) => p.retriable_status_codes.contains(&s),
            ("retriable-4xx", None, Some(s)) => s == 409,
            _ => false,
        })
}

pub(crate) fn idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// Jittered exponential back-off: random in `[0, min(max, base * 2^n)]`.
fn backoff(p: &RetryPolicy, retry: u32) -> Duration {
    let cap = p
        .base_interval_ms
        .saturating_mul(1u64 << retry.min(20))
        .min(p.max_interval_ms);
    Duration::from_millis(random_u64() % (cap + 1))
}

/// The connection a request came in on.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// The connection's remote address.
    pub remote: SocketAddr,
    /// The proxy's own address on that connection, when known.
    pub local: Option<SocketAddr>,
    /// The client's address as trusted proxies in front reported it in
    /// `x-forwarded-for` (with `xff_num_trusted_hops`); the handler sets
    /// it. `None`: the connection's.
    pub client: Option<std::net::IpAddr>,
}

impl Peer {
    /// The client's address (Envoy's downstream remote address): the one
    /// trusted proxies reported, with port 0, else the connection's.
    pub fn client_address(&self) -> SocketAddr {
        self.client.map_or(self.remote, |ip| SocketAddr::new(ip, 0))
    }
}

/// Envoy's `getLastAddressFromXFF`: the address `skip` places from the
/// right of `x-forwarded-for` (every line of it, in order), when that
/// entry is an IP address.
fn xff_address(headers: &HeaderMap, skip: u32) -> Option<std::net::IpAddr> {
    // (Empty lines are no entries: Envoy drops them when it joins the
    // lines.)
    let entry = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .rev()
        .filter(|line| !line.is_empty())
        .flat_map(|line| line.as_bytes().rsplit(|b| *b == b','))
        .nth(skip as usize)?;
    std::str::from_utf8(entry.trim_ascii()).ok()?.parse().ok()
}

/// This machine's host name (`%HOSTNAME%`), read once.
fn hostname() -> Option<&'static str> {
    static NAME: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
        Some(name.trim().to_owned()).filter(|n| !n.is_empty())
    })
    .as_deref()
}

/// What a route's `%COMMAND%` header values read about the request and
/// its connection (`%DOWNSTREAM_REMOTE_ADDRESS%`, `%PROTOCOL%`,
/// `%START_TIME%`, ...). Made where it is used and dropped before the next
/// `await`, so the request's future does not carry it.
fn format_context(parts: &http::request::Parts, peer: Peer, started: Instant) -> FormatContext<'_> {
    let mut ctx = FormatContext::new()
        .downstream_remote_address(peer.client_address())
        .downstream_direct_remote_address(peer.remote)
        .request(parts)
        .protocol(match parts.version {
            http::Version::HTTP_09 => "HTTP/0.9",
            http::Version::HTTP_10 => "HTTP/1.0",
            http::Version::HTTP_2 => "HTTP/2",
            http::Version::HTTP_3 => "HTTP/3",
            _ => "HTTP/1.1",
        });
    if let Some(local) = peer.local {
        ctx = ctx.downstream_local_address(local);
    }
    if let Some(name) = hostname() {
        ctx = ctx.hostname(name);
    }
    if let Some(at) = SystemTime::now().checked_sub(started.elapsed()) {
        ctx = ctx.start_time(at);
    }
    ctx
}

/// A copy of the request as it goes upstream: the downstream method and
/// version, the upstream path and fields (Host included). `None` if the
/// path is not a valid URI (the request is then not sent).
fn sent_request(
    parts: &http::request::Parts,
    path: &str,
    headers: &UpstreamHeaders<'_>,
) -> Option<http::request::Parts> {
    let (mut sent, ()) = Request::builder()
        .method(parts.method.clone())
        .version(parts.version)
        .uri(path)
        .body(())
        .ok()?
        .into_parts();
    headers.each(|n, v| {
        sent.headers.append(n.clone(), v.clone());
    });
    Some(sent)
}

/// What the access log says about a request.
#[derive(Debug, Default)]
struct Log<'a> {
    route: &'a str,
    cluster: &'a str,
    upstream: Option<SocketAddr>,
    attempts: u32,
    /// Time to the upstream's response headers, last attempt.
    upstream_time: Option<Duration>,
    detail: &'static str,
    /// The request as sent upstream (after the route's mutations and
    /// rewrites), kept only for a route whose response header values
    /// format something (their `%REQ(...)%` reads it, as Envoy's do) or
    /// for an answer the route's internal redirect policy may follow (the
    /// next pass starts from it).
    /// Boxed: the log lives in the request's future.
    sent: Option<Box<http::request::Parts>>,
}

impl Log<'_> {
    fn new() -> Self {
        Log {
            detail: "-",
            ..Log::default()
        }
    }
}

/// Handles one downstream request, whatever its body type (hyper's
/// `Incoming`, or an empty body on the HTTP/1.1 fast path).
///
/// `timer` is the connection's reusable upstream timer, if it has one;
/// without it each attempt uses a `tokio::time::timeout` of its own.
pub fn handle<'a, B>(
    state: &'a State,
    client: &'a UpstreamClient,
    peer: Peer,
    req: Request<B>,
    timer: Option<&'a mut ConnTimer>,
) -> impl std::future::Future<Output = Result<Reply, std::convert::Infallible>> + Send + 'a
where
    B: hyper::body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    let started = Instant::now();
    // Taken apart and given its id before the future is made: what an async
    // function changes of its arguments it keeps twice, and the future is
    // copied whole when it is made and awaited.
    let (mut parts, body) = req.into_parts();
    let request_id = match parts.headers.get(X_REQUEST_ID) {
        Some(v) => v.clone(),
        None => {
            let v = new_request_id();
            parts.headers.insert(X_REQUEST_ID, v.clone());
            v
        }
    };
    handle_pass(
        state,
        client,
        peer,
        parts,
        body,
        request_id,
        started,
        timer,
        InternalRedirectState::new(),
        None,
    )
}

/// A request an internal redirect made, for its next pass.
struct Again {
    parts: http::request::Parts,
    body: Body,
    redirects: InternalRedirectState,
}

/// The passes after the first, in turn: each hands the request back
/// when it follows a redirect, so passes do not nest (boxed, so that the
/// first pass's future does not hold them).
fn next_passes<'a>(
    state: &'a State,
    client: &'a UpstreamClient,
    peer: Peer,
    first: Box<Again>,
    request_id: HeaderValue,
    started: Instant,
    mut timer: Option<&'a mut ConnTimer>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Reply> + Send + 'a>> {
    Box::pin(async move {
        let mut next = first;
        loop {
            let Again {
                parts,
                body,
                redirects,
            } = *next;
            let mut handed = None;
            let reply = handle_pass(
                state,
                client,
                peer,
                parts,
                body,
                request_id.clone(),
                started,
                timer.as_deref_mut(),
                redirects,
                Some(&mut handed),
            )
            .await;
            match (handed, reply) {
                (Some(again), _) => next = again,
                (None, Ok(reply)) => return reply,
                (None, Err(never)) => match never {},
            }
        }
    })
}

/// The request as it went upstream, with the scheme the connection gave
/// it before any route's edits: what an internal redirect decides on.
struct AsSent<'a> {
    sent: &'a http::request::Parts,
    scheme: Option<&'a str>,
}

impl RequestView for AsSent<'_> {
    fn method(&self) -> &str {
        self.sent.method()
    }
    fn scheme(&self) -> Option<&str> {
        self.scheme
    }
    fn authority(&self) -> Option<&str> {
        self.sent.authority()
    }
    fn path_and_query(&self) -> Option<&str> {
        self.sent.path_and_query()
    }
    fn header_values<'a>(&'a self, name: &str, out: &mut rauta_router::HeaderValues<'a>) {
        self.sent.header_values(name, out)
    }
    fn for_each_header_value<'a>(&'a self, name: &str, f: &mut dyn FnMut(&'a [u8])) {
        self.sent.for_each_header_value(name, f)
    }
}

/// The request's scheme is the connection's, `http` (the proxy does not
/// terminate TLS), unless a trusted proxy in front said otherwise
/// (`trusted`: `xff_num_trusted_hops` > 0 and the request has an
/// `x-forwarded-proto`), as Envoy's connection manager decides at the
/// edge. The router reads the scheme from `x-forwarded-proto`
/// (`require_tls`, internal redirects) or, for HTTP/2, from `:scheme`,
/// which is made to agree. Otherwise a client could lift `require_tls` by
/// claiming `https`.
fn plain_http(parts: &mut http::request::Parts, trusted: bool) {
    let mut values = parts.headers.get_all(X_FORWARDED_PROTO).iter();
    let https = match values.next() {
        // None is `http` to the router: nothing is added then.
        None => false,
        // Several lines are one value, joined with `,` (empty ones
        // dropped), as Envoy's header map joins them: `https,http` is not
        // `https`. (The router reads the first line: it gets the joined
        // value.)
        Some(first) if trusted => match values.next() {
            None => first.as_bytes() == b"https",
            Some(_) => {
                let lines: Vec<&str> = parts
                    .headers
                    .get_all(X_FORWARDED_PROTO)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .filter(|v| !v.is_empty())
                    .collect();
                let joined = lines.join(",");
                let https = joined == "https";
                match HeaderValue::from_str(&joined) {
                    Ok(v) => parts.headers.insert(X_FORWARDED_PROTO, v),
                    Err(_) => parts
                        .headers
                        .insert(X_FORWARDED_PROTO, HeaderValue::from_static("http")),
                };
                https
            }
        },
        Some(first) => {
            if first.as_bytes() != b"http" || values.next().is_some() {
                parts
                    .headers
                    .insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
            }
            false
        }
    };
    let scheme = if https {
        http::uri::Scheme::HTTPS
    } else {
        http::uri::Scheme::HTTP
    };
    if parts.uri.scheme().is_some_and(|s| *s != scheme) {
        let mut p = parts.uri.clone().into_parts();
        p.scheme = Some(scheme);
        if let Ok(uri) = http::Uri::from_parts(p) {
            parts.uri = uri;
        }
    }
}

/// Header names a client may not send: the `x-envoy-` headers are the
/// proxy's and the router's own (`x-envoy-internal` is what
/// `require_tls: EXTERNAL_ONLY` reads, `x-envoy-original-path` what a
/// rewrite leaves for the upstream), so a client's are removed before
/// routing, as Envoy removes them from an external request. Names with `_`
/// go as `action` says. `Err` when the request must be refused.
fn scrub_headers(headers: &mut HeaderMap, action: UnderscoreAction) -> Result<(), &'static str> {
    let reserved = |n: &HeaderName| n.as_str().starts_with("x-envoy-");
    let underscore =
        |n: &HeaderName| action != UnderscoreAction::Allow && n.as_str().as_bytes().contains(&b'_');
    if !headers.keys().any(|n| reserved(n) || underscore(n)) {
        return Ok(());
    }
    if action == UnderscoreAction::RejectRequest && headers.keys().any(underscore) {
        return Err("header name with underscore");
    }
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|n| reserved(n) || underscore(n))
        .cloned()
        .collect();
    for n in &doomed {
        headers.remove(n);
    }
    Ok(())
}

/// One pass of a request through routing and forwarding: the first
/// (`handed` is `None`: it runs the passes after it, if any), or one after
/// an internal redirect (a redirect it follows goes into `handed`, and
/// what it returns then is not an answer).
#[allow(clippy::too_many_arguments)]
async fn handle_pass<B>(
    state: &State,
    client: &UpstreamClient,
    mut peer: Peer,
    mut parts: http::request::Parts,
    body: B,
    request_id: HeaderValue,
    started: Instant,
    mut timer: Option<&mut ConnTimer>,
    mut redirects: InternalRedirectState,
    handed: Option<&mut Option<Box<Again>>>,
) -> Result<Reply, std::convert::Infallible>
where
    B: hyper::body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    // The client's address: the connection's, or (on a pass after an
    // internal redirect) what the first pass read from trusted proxies.
    let mut remote = peer.client_address();
    let rt = state.runtime();
    let mut log = Log::new();
    // RFC 9112 section 3.2: more than one Host is a 400 (which one would be
    // routed and which one would an upstream believe?).
    if parts.headers.get_all(HOST).iter().nth(1).is_some() {
        log.detail = "multiple host headers";
        let resp: Reply = text(
            StatusCode::BAD_REQUEST,
            "bad request: multiple host headers\n",
        )
        .into();
        access_log(&parts, &resp, &log, started, &request_id, remote);
        return Ok(resp);
    }
    // (A redirected request's fields are the proxy's own by now: its
    // `x-envoy-original-url` stays.)
    let scrubbed = match redirects.followed() {
        0 => {
            // What trusted proxies in front say: the client's address (a
            // later pass keeps it), and the scheme.
            let hops = rt.xff_num_trusted_hops;
            if hops > 0 {
                peer.client = xff_address(&parts.headers, hops - 1);
                remote = peer.client_address();
            }
            plain_http(&mut parts, hops > 0);
            scrub_headers(&mut parts.headers, rt.underscores)
        }
        _ => Ok(()),
    };
    if let Err(why) = scrubbed {
        log.detail = why;
        let resp: Reply = text(StatusCode::BAD_REQUEST, format!("bad request: {why}\n")).into();
        access_log(&parts, &resp, &log, started, &request_id, remote);
        return Ok(resp);
    }
    // Only the match lives on across the await below (the decision it
    // came in is not kept in the future).
    let m = match rt.snapshot.route(&parts, random_u64()) {
        Decision::Route(m) => m,
        other => {
            let resp = not_routed(other, &parts, &mut log);
            access_log(&parts, &resp, &log, started, &request_id, remote);
            return Ok(resp);
        }
    };
    let active = rt.route(m.route_id()).map(|r| r.stats.start_at(started));
    log.route = m.route_name();
    // CORS (Envoy's CORS filter): a preflight is answered here, before the
    // route's header edits; a request from an allowed origin gets the
    // origin's headers on whatever answer it gets.
    let check = m.cors().map(|c| c.check(&parts, random_u64()));
    if let Some(allowed) = check.as_ref().and_then(|c| c.origin_allowed()) {
        let counts = state.cors_counts();
        if allowed {
            &counts.origin_valid
        } else {
            &counts.origin_invalid
        }
        .inc();
    }
    let cors = match check {
        Some(CorsCheck::Preflight(p)) => {
            state.cors_counts().preflights.inc();
            log.detail = "cors preflight";
            let mut resp = Response::new(empty());
            p.apply(resp.headers_mut());
            let resp: Reply = resp.into();
            if let Some(a) = active {
                a.finish_with_latency(resp.status().as_u16(), started.elapsed());
            }
            access_log(&parts, &resp, &log, started, &request_id, remote);
            return Ok(resp);
        }
        Some(CorsCheck::Forward(r)) => Some(r),
        _ => None,
    };
    // The local rate limit (Envoy's `envoy.filters.http.local_ratelimit`,
    // after CORS as in the usual filter order): a refusal is answered here.
    // (The clock and a random value only for a route that has one.)
    let limit = m.local_rate_limiter().and_then(|_| {
        m.local_rate_limit(
            &parts,
            &RateLimitContext::new().remote_address(remote.ip()),
            Instant::now(),
            random_u64(),
        )
    });
    if let Some(o) = limit
        .as_ref()
        .filter(|o| o.verdict() == LocalRateLimitVerdict::Limited)
    {
        log.detail = "local_rate_limited";
        let mut resp: Reply = rate_limited(&m, o, &parts, peer, started).into();
        if let Some(c) = cors.as_ref().filter(|c| c.allowed_origin().is_some()) {
            c.apply(resp.headers_mut());
        }
        if let Some(a) = active {
            a.finish_with_latency(resp.status().as_u16(), started.elapsed());
        }
        access_log(&parts, &resp, &log, started, &request_id, remote);
        return Ok(resp);
    }
    let not_enforced = limit
        .as_ref()
        .filter(|o| o.verdict() == LocalRateLimitVerdict::LimitedNotEnforced);
    let ratelimit_headers = limit.as_ref().and_then(|o| o.rate_limit_headers());
    // A format context is gathered only for a route whose header values
    // format something.
    let formats = m.formats_header_values();
    let mut resp: Reply = match forwards_to(&rt, &m, &mut log) {
        // A route that follows its upstream's redirects keeps the request's
        // body for a second pass.
        Some(c) if m.route().internal_redirect_policy().is_some() => {
            let limit = crate::redirect::limit_for(m.route());
            let (body, kept) = crate::redirect::Keep::new(Body::new(body), limit);
            let mut resp = forward(
                &rt,
                client,
                c,
                &parts,
                Body::new(body),
                peer,
                &m,
                started,
                formats,
                redirects.followed() == 0,
                not_enforced,
                &mut log,
                timer.as_deref_mut(),
            )
            .await;
            let status = resp.status().as_u16();
            // The decision reads the request as it went upstream (the
            // route's edits made; `forward` keeps a copy when the status
            // is one to follow), and the next pass starts from it, as
            // Envoy's router edits the request in place. Its scheme is
            // the connection's, which no edit changes (Envoy reads
            // `:scheme`, or the connection's TLS).
            let sent = log.sent.take();
            let covered = sent.is_some()
                && m.route()
                    .internal_redirect_policy()
                    .is_some_and(|p| p.redirects_on(status));
            // Envoy's order: the request received in full, its body kept,
            // then the answer's Location and the policy.
            let next = match covered.then(|| kept.body()) {
                None => None,
                Some(Err(why)) => Some(Err(why)),
                Some(Ok(body)) => m
                    .internal_redirect(
                        &AsSent {
                            sent: sent.as_deref().unwrap_or(&parts),
                            scheme: parts.scheme(),
                        },
                        status,
                        resp.headers_mut(),
                        &mut redirects,
                        random_u64(),
                    )
                    .map(|r| r.map(|r| (r, body))),
            };
            match next {
                Some(Ok((r, body))) => {
                    state.redirect_counts().followed.inc();
                    // This pass ends here, counted on its route with the
                    // upstream's status; the next one is routed afresh.
                    if let Some(a) = active {
                        if let Some(d) = log.upstream_time {
                            a.upstream_latency(d);
                        }
                        a.finish_with_latency(status, started.elapsed());
                    }
                    drop((resp, cors, limit, log));
                    let mut parts = sent.map_or(parts, |s| *s);
                    r.apply(&mut parts);
                    let body = if r.changes_method_to_get() {
                        empty()
                    } else {
                        body
                    };
                    let again = Box::new(Again {
                        parts,
                        body,
                        redirects,
                    });
                    return Ok(match handed {
                        Some(slot) => {
                            *slot = Some(again);
                            Response::new(empty()).into()
                        }
                        None => {
                            next_passes(state, client, peer, again, request_id, started, timer)
                                .await
                        }
                    });
                }
                Some(Err(why)) => {
                    state.redirect_counts().refused(why);
                    tracing::debug!(%why, status, "internal redirect not followed");
                    log.sent = sent;
                    resp
                }
                None => {
                    log.sent = sent;
                    resp
                }
            }
        }
        Some(c) => {
            forward(
                &rt,
                client,
                c,
                &parts,
                body,
                peer,
                &m,
                started,
                formats,
                redirects.followed() == 0,
                not_enforced,
                &mut log,
                timer,
            )
            .await
        }
        None => local_answer(&m, &parts, &mut log).into(),
    };
    // An upstream's fields stay raw unless the route edits them.
    if m.edits_response() {
        if formats {
            let mut ctx = format_context(log.sent.as_deref().unwrap_or(&parts), peer, started)
                .response_status(resp.status().as_u16());
            if let Some(up) = log.upstream {
                ctx = ctx.upstream_remote_address(up);
            }
            m.apply_response_with(resp.headers_mut(), &ctx)
        } else {
            m.apply_response(resp.headers_mut())
        }
    }
    // The rate limit filter's headers go on after the router's edits, as
    // its encoder runs after the router finished the response.
    if let Some(h) = ratelimit_headers {
        h.apply(resp.headers_mut());
    }
    // (Only an allowed origin adds fields: the upstream's stay raw
    // otherwise.)
    if let Some(c) = cors.as_ref().filter(|c| c.allowed_origin().is_some()) {
        c.apply(resp.headers_mut());
    }
    if let Some(a) = active {
        if let Some(d) = log.upstream_time {
            a.upstream_latency(d);
        }
        a.finish_with_latency(resp.status().as_u16(), started.elapsed());
    }
    access_log(&parts, &resp, &log, started, &request_id, remote);
    Ok(resp)
}

/// The answer to a request the local rate limit refuses: its status and
/// `local_rate_limited`, or for gRPC a trailers-only answer with the
/// limiter's gRPC status, as Envoy's local replies are; then the route's
/// response edits and the limiter's response headers.
fn rate_limited(
    m: &RouteMatch<'_>,
    o: &LocalRateLimitOutcome<'_>,
    parts: &http::request::Parts,
    peer: Peer,
    started: Instant,
) -> Response<Body> {
    let mut resp = if is_grpc(parts) {
        grpc_reply(o.limiter().grpc_status().into(), "local_rate_limited")
    } else {
        text(
            StatusCode::from_u16(o.status()).unwrap_or(StatusCode::TOO_MANY_REQUESTS),
            "local_rate_limited",
        )
    };
    // As Envoy's local replies on a forwarding route: the route's
    // response edits, then the limiter's headers.
    let ctx = format_context(parts, peer, started).response_status(resp.status().as_u16());
    if m.cluster().is_some() {
        m.apply_response_with(resp.headers_mut(), &ctx);
    }
    o.apply_response_headers(resp.headers_mut(), &ctx);
    resp
}

/// Whether a request is gRPC, as Envoy's `hasGrpcContentType` decides
/// (`rauta_router::is_grpc_content_type`).
fn is_grpc(parts: &http::request::Parts) -> bool {
    parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| rauta_router::is_grpc_content_type(v.as_bytes()))
}

/// Envoy's `httpToGrpcStatus`: the gRPC status a local answer of `status`
/// carries to a gRPC client.
fn grpc_status_for(status: StatusCode) -> u16 {
    match status.as_u16() {
        400 => 13,             // INTERNAL
        401 => 16,             // UNAUTHENTICATED
        403 => 7,              // PERMISSION_DENIED
        404 => 12,             // UNIMPLEMENTED
        429 | 502..=504 => 14, // UNAVAILABLE
        _ => 2,                // UNKNOWN
    }
}

/// A local error answer, as Envoy's `sendLocalReply` gives one: `status`
/// and `message` as text, or for a gRPC request trailers-only with the
/// gRPC status that `status` maps to and `message` as `grpc-message`.
fn local_error(parts: &http::request::Parts, status: StatusCode, message: &str) -> Response<Body> {
    if is_grpc(parts) {
        grpc_reply(grpc_status_for(status), message)
    } else {
        text(status, format!("{message}\n"))
    }
}

/// A local answer to a gRPC request, as Envoy sends one: trailers-only
/// (status 200, no body) with `grpc-status` and `grpc-message`.
fn grpc_reply(grpc_status: u16, message: &str) -> Response<Body> {
    let mut r = Response::new(empty());
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert(
        HeaderName::from_static("grpc-status"),
        HeaderValue::from(grpc_status),
    );
    // (The messages are the proxy's own printable ASCII.)
    if let Ok(v) = HeaderValue::from_str(message) {
        h.insert(HeaderName::from_static("grpc-message"), v);
    }
    r
}

/// The answer to a request no route takes: a redirect, a rejection or 404.
fn not_routed(decision: Decision<'_>, parts: &http::request::Parts, log: &mut Log<'_>) -> Reply {
    match decision {
        Decision::TlsRedirect { location, .. } => {
            redirect(StatusCode::MOVED_PERMANENTLY, &location)
        }
        Decision::PathRedirect {
            status, location, ..
        } => redirect(
            StatusCode::from_u16(status).unwrap_or(StatusCode::TEMPORARY_REDIRECT),
            &location,
        ),
        Decision::Reject { status, reason, .. } => {
            log.detail = "rejected by path policy";
            local_error(
                parts,
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
                &format!("bad request: {reason}"),
            )
        }
        _ => {
            log.detail = "no route";
            local_error(parts, StatusCode::NOT_FOUND, "no route")
        }
    }
    .into()
}

/// The access log line (target `rauta_proxy::access`, level info).
fn access_log(
    parts: &http::request::Parts,
    resp: &Reply,
    log: &Log<'_>,
    started: Instant,
    request_id: &HeaderValue,
    remote: SocketAddr,
) {
    tracing::info!(
        target: "rauta_proxy::access",
        method = %parts.method,
        host = parts.headers.get(HOST).and_then(|h| h.to_str().ok()).or(parts.uri.host()).unwrap_or("-"),
        path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("-"),
        version = ?parts.version,
        status = resp.status().as_u16(),
        route = %log.route,
        cluster = %log.cluster,
        upstream = %log.upstream.map_or_else(|| "-".to_owned(), |a| a.to_string()),
        attempts = log.attempts,
        detail = log.detail,
        duration_us = started.elapsed().as_micros() as u64,
        request_id = request_id.to_str().unwrap_or("-"),
        remote = %remote,
    );
}

fn redirect(status: StatusCode, location: &str) -> Response<Body> {
    let mut r = text(status, "");
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

/// The cluster a matched route forwards to, when it forwards and the
/// cluster exists.
fn forwards_to<'r, 'a>(
    rt: &'r Runtime,
    m: &RouteMatch<'a>,
    log: &mut Log<'a>,
) -> Option<&'r Cluster> {
    match m.action() {
        ActionKind::Forward { cluster } => {
            log.cluster = cluster;
            rt.clusters.get(cluster).map(|c| &**c)
        }
        _ => None,
    }
}

/// The answer to a matched route that does not forward (a plain function:
/// an async one would nest, and copy, the forwarding future once more per
/// request).
fn local_answer(
    m: &RouteMatch<'_>,
    parts: &http::request::Parts,
    log: &mut Log<'_>,
) -> Response<Body> {
    match m.action() {
        ActionKind::Redirect { status } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::MOVED_PERMANENTLY);
            redirect(status, &m.redirect_location().unwrap_or_default())
        }
        ActionKind::DirectResponse { status, body } => text(
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            Bytes::copy_from_slice(body.as_bytes()),
        ),
        ActionKind::Forward { .. } => {
            log.detail = "cluster not found";
            let s = StatusCode::from_u16(m.cluster_not_found_status())
                .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            local_error(parts, s, "cluster not found")
        }
        _ => text(StatusCode::INTERNAL_SERVER_ERROR, "unsupported action\n"),
    }
}

/// Forwards to one cluster: pick, send, retry per the route's policy.
#[allow(clippy::too_many_arguments)]
async fn forward<B>(
    rt: &Runtime,
    client: &UpstreamClient,
    cluster: &Cluster,
    parts: &http::request::Parts,
    body: B,
    peer: Peer,
    m: &RouteMatch<'_>,
    started: Instant,
    formats: bool,
    first_pass: bool,
    not_enforced: Option<&LocalRateLimitOutcome<'_>>,
    log: &mut Log<'_>,
    mut timer: Option<&mut ConnTimer>,
) -> Reply
where
    B: hyper::body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    // Upstream headers: the downstream ones minus hop-by-hop, plus the
    // route's mutations and rewrites, plus forwarding headers.
    let mut headers = UpstreamHeaders::new(&parts.headers);
    // The forwarding fields first, as Envoy's connection manager sets them
    // before the router runs: a route's mutations (and a `%REQ(...)%` in
    // their values) see them, and may remove them.
    let remote = peer.remote;
    let ip = ip_value(remote.ip());
    // The client's address goes after every address already listed (all
    // lines of the field, in order).
    // (Once: a pass after an internal redirect starts from the request as
    // it went upstream, as Envoy's connection manager leaves a request it
    // made itself alone.)
    let xff = if !first_pass {
        None
    } else if headers.get(&X_FORWARDED_FOR).is_some() {
        let mut v = Vec::with_capacity(64);
        for prev in headers.all(&X_FORWARDED_FOR) {
            v.extend_from_slice(prev.as_bytes());
            v.extend_from_slice(b", ");
        }
        v.extend_from_slice(ip.as_bytes());
        HeaderValue::from_bytes(&v).ok()
    } else {
        Some(ip)
    };
    if let Some(v) = xff {
        headers.insert(X_FORWARDED_FOR, v);
    }
    // (On a first pass `plain_http` has left one only when it is `http`
    // or a trusted proxy's; on a later one it is what the first route's
    // edits made it. Either goes on as it is.)
    if headers.get(&X_FORWARDED_PROTO).is_none() {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    }
    // A limited request the limiter lets through is marked before the
    // route's edits, as the filter runs before the router.
    if let Some(o) = not_enforced {
        o.apply_request_headers(&mut headers, &format_context(parts, peer, started));
    }
    // The request's timeouts (Envoy's router and connection manager); a
    // `grpc-timeout` they replace is replaced before the route's edits, as
    // Envoy's router works its timeouts out before it finalizes the
    // request's headers.
    let timeouts = m.timeouts(parts, &rt.timeouts);
    timeouts.apply_request_headers(&mut headers);
    let upstream = if formats {
        m.apply_request_with(&mut headers, &format_context(parts, peer, started))
    } else {
        m.apply_request(&mut headers)
    };
    // The path goes into the request line as it is: it must be an
    // origin-form target (RFC 9112 section 3.2.1).
    let path = upstream.path;
    if !valid_target(&path) {
        log.detail = "bad upstream path";
        return text(StatusCode::BAD_REQUEST, "bad upstream path\n").into();
    }
    let host = upstream.host;
    // Exactly one Host, the routed one. The downstream field is reused
    // when it is already that.
    if headers
        .only(&HOST)
        .is_none_or(|h| h.as_bytes() != host.as_bytes())
    {
        match HeaderValue::from_str(&host) {
            Ok(v) => headers.insert(HOST, v),
            Err(_) => return text(StatusCode::BAD_REQUEST, "bad upstream host\n").into(),
        }
    }

    if formats && m.edits_response() {
        log.sent = sent_request(parts, &path, &headers).map(Box::new);
    }

    // Copies for the route's request mirrors, sent on their own; a body is
    // teed into every copy as it goes upstream (crate::mirror).
    use hyper::body::Body as _;
    let mut body = Body::new(body);
    let mirrors: Vec<rauta_router::Mirror<'_>> = m.mirrors(parts, random_u64()).collect();
    if !mirrors.is_empty() {
        let copies: Vec<Body> = if body.is_end_stream() {
            mirrors.iter().map(|_| empty()).collect()
        } else {
            let (tee, copies) = crate::mirror::Tee::new(body, mirrors.len());
            body = Body::new(tee);
            copies.into_iter().map(Body::new).collect()
        };
        for (mirror, copy) in mirrors.into_iter().zip(copies) {
            mirror_request(
                rt,
                client,
                mirror,
                timeouts.global,
                &parts.method,
                &path,
                &headers,
                &host,
                copy,
            );
        }
    }
    // The stream's lifetime counts from the request's first byte. With
    // one, the request's body notes its end: a stream that runs out of
    // time is a 504 once the request was received in full, a 408 before.
    let stream_end = timeouts
        .stream
        .map(|d| tokio::time::Instant::from_std(started) + d);
    let request_done = match stream_end {
        Some(_) if !body.is_end_stream() => {
            let (watched, done) = crate::deadline::Watched::new(body);
            body = Body::new(watched);
            Some(done)
        }
        _ => None,
    };
    let out_of_stream_time = || Failure::Duration {
        request_complete: request_done
            .as_ref()
            .is_none_or(|d| d.load(std::sync::atomic::Ordering::Relaxed)),
    };

    let hash = rt
        .route(m.route_id())
        .and_then(|r| r.hash.as_ref())
        .and_then(|p| {
            p.hash(&HashView {
                headers: &parts.headers,
                uri: &parts.uri,
                remote: peer.client_address(),
            })
        });
    let deadline = timeouts.global.map(|d| tokio::time::Instant::now() + d);
    // Retry only idempotent requests without a body, so every attempt can
    // send the same (empty) body.
    let policy = m.route().retry_policy();
    // A policy with retriable_request_headers retries only the requests
    // that match one of them, tested as the request goes upstream (after
    // the route's edits), as Envoy tests it.
    let request_ok = |p: &RetryPolicy| {
        !p.has_retriable_request_headers()
            || sent_request(parts, &path, &headers).is_some_and(|sent| p.request_retriable(&sent))
    };
    let max_retries = match policy {
        Some(p) if idempotent(&parts.method) && body.is_end_stream() && request_ok(p) => {
            p.num_retries.min(MAX_RETRIES)
        }
        _ => 0,
    };
    // The proxy does not hedge: under `hedge_on_per_try_timeout` a
    // per-try timeout would start another attempt beside the first, which
    // goes on (Envoy's soft per-try timeout), so here it ends nothing.
    let per_try = timeouts
        .per_try
        .filter(|_| !timeouts.hedge_on_per_try_timeout);

    let mut body = Some(body);
    let mut failure = Failure::NoHealthy;
    for attempt in 0..=max_retries {
        if attempt > 0 {
            if let Some(p) = policy {
                let pause = backoff(p, attempt - 1);
                let wake = tokio::time::Instant::now() + pause;
                // The upstream deadline first when it comes first: it ends
                // the exchange then, as Envoy's global timer does (504).
                if let Some(d) =
                    deadline.filter(|d| wake >= *d && stream_end.is_none_or(|e| *d <= e))
                {
                    tokio::time::sleep_until(d).await;
                    cluster.stats().record_timeout();
                    failure = Failure::Timeout;
                    break;
                }
                if let Some(end) = stream_end.filter(|e| wake >= *e) {
                    // The stream ends during the pause: it ends then.
                    tokio::time::sleep_until(end).await;
                    failure = out_of_stream_time();
                    break;
                }
                tokio::time::sleep(pause).await;
            }
        }
        if stream_end.is_some_and(|e| tokio::time::Instant::now() >= e) {
            // No time left (a gRPC deadline the route's offset used up).
            failure = out_of_stream_time();
            break;
        }
        log.attempts = attempt + 1;
        let lb = cluster.balancer();
        let Some(ep) = lb.pick(Pick::from_hash(hash).attempt(attempt)) else {
            failure = Failure::NoHealthy;
            break;
        };
        let addr = ep.address();
        log.upstream = Some(addr);
        let _load = ep.start_request();
        // One clock read serves the pool, the attempt's deadline and both
        // stats.
        let sent = Instant::now();
        // Pinned here once: the timeouts below borrow it instead of moving
        // it (it is the largest part of this future).
        let mut req = std::pin::pin!(client.send(
            addr,
            &parts.method,
            &path,
            &headers,
            body.take().unwrap_or_else(empty),
            sent,
        ));

        // This attempt ends at the per-try timeout, the route deadline or
        // the end of the stream's lifetime, whichever comes first.
        let now = tokio::time::Instant::from_std(sent);
        let try_end = [deadline, per_try.map(|t| now + t), stream_end]
            .into_iter()
            .flatten()
            .min();
        let up = cluster.stats().start_at(sent);
        let result = match (try_end, timer.as_deref_mut()) {
            (Some(end), Some(t)) => t.within(end, req.as_mut()).await.ok_or(()),
            (Some(end), None) => tokio::time::timeout_at(end, req.as_mut())
                .await
                .map_err(|_| ()),
            (None, _) => Ok(req.as_mut().await),
        };
        let outcome = match result {
            Err(_) if stream_end.is_some_and(|e| tokio::time::Instant::now() >= e) => {
                failure = out_of_stream_time();
                break;
            }
            Err(_) => {
                up.timeout();
                Failure::Timeout
            }
            Ok(Err(e)) if e.is_connect() => {
                up.upstream_connect_failure();
                cluster.connect_failed(addr);
                Failure::Connect
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, upstream = %addr, "upstream request failed");
                Failure::Reset
            }
            Ok(Ok(mut resp)) => {
                let status = resp.status().as_u16();
                let took = sent.elapsed();
                log.upstream_time = Some(took);
                up.finish_with_latency(status, took);
                let again = attempt < max_retries
                    && policy.is_some_and(|p| {
                        retriable(p, None, Some(status))
                            || (p.has_retriable_headers()
                                && p.retry_on.iter().any(|c| c == "retriable-headers")
                                && p.response_retriable(status, resp.headers_mut()))
                    });
                if !again {
                    // A redirect the route may follow: the next pass starts
                    // from the request as it went.
                    if log.sent.is_none()
                        && m.route()
                            .internal_redirect_policy()
                            .is_some_and(|p| p.redirects_on(status))
                    {
                        log.sent = sent_request(parts, &path, &headers).map(Box::new);
                    }
                    // The client has dropped the response's hop-by-hop
                    // fields already (see crate::h1). A stream with a
                    // lifetime is cut when it runs out mid-response.
                    // (A body already whole in memory is not cut: Envoy's
                    // timer stops once the response has been received.)
                    return match stream_end {
                        Some(end) if !resp.body_is_whole() => {
                            resp.map_body(|b| Body::new(crate::deadline::Limited::new(b, end)))
                        }
                        _ => resp,
                    };
                }
                tracing::debug!(status, upstream = %addr, attempt, "retrying on status");
                continue;
            }
        };
        failure = outcome;
        let out_of_time = deadline.is_some_and(|d| tokio::time::Instant::now() >= d);
        if out_of_time || !policy.is_some_and(|p| retriable(p, Some(outcome), None)) {
            break;
        }
    }
    log.detail = failure.label();
    if matches!(failure, Failure::Duration { .. }) && is_grpc(parts) {
        // DEADLINE_EXCEEDED, as Envoy's connection manager answers.
        return grpc_reply(4, "downstream duration timeout").into();
    }
    local_error(parts, failure.status(), failure.label()).into()
}

/// Mirror copies in flight, across the process: past this many, new copies
/// are not sent (a slow mirror cluster must not pile up tasks).
const MAX_MIRRORS_IN_FLIGHT: usize = 1024;
static MIRRORS_IN_FLIGHT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Sends a copy of a request to `mirror`'s cluster on a task of its own,
/// bounded by the request's upstream timeout (15 s when it has none), and drops the
/// answer: the request's own path, method, fields and `body` (a copy teed
/// from the request's, or empty), with `-shadow` appended to the Host unless
/// the policy says not to.
#[allow(clippy::too_many_arguments)]
fn mirror_request(
    rt: &Runtime,
    client: &UpstreamClient,
    mirror: rauta_router::Mirror<'_>,
    global_timeout: Option<Duration>,
    method: &Method,
    path: &str,
    headers: &UpstreamHeaders<'_>,
    host: &str,
    body: Body,
) {
    use std::sync::atomic::Ordering;
    let Some(cluster) = rt.clusters.get(mirror.cluster) else {
        tracing::debug!(cluster = mirror.cluster, "mirror cluster not found");
        return;
    };
    let lb = cluster.balancer();
    let Some(ep) = lb.pick(Pick::from_hash(None)) else {
        return;
    };
    if MIRRORS_IN_FLIGHT.fetch_add(1, Ordering::Relaxed) >= MAX_MIRRORS_IN_FLIGHT {
        MIRRORS_IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
        tracing::debug!(
            cluster = mirror.cluster,
            "mirror skipped: too many in flight"
        );
        return;
    }
    let addr = ep.address();
    let mut fields = HeaderMap::with_capacity(16);
    crate::h1::Fields::each_field(headers, &mut |n, v| {
        if n != HOST {
            fields.append(n.clone(), v.clone());
        }
    });
    let shadow = if mirror.shadow_suffix {
        rauta_router::shadow_host(host)
    } else {
        host.to_owned()
    };
    if let Ok(v) = HeaderValue::from_str(&shadow) {
        fields.insert(HOST, v);
    }
    // The request's own upstream timeout, as Envoy gives its shadows.
    let bound = global_timeout.unwrap_or(Duration::from_secs(15));
    let (client, method, path) = (client.clone(), method.clone(), path.to_owned());
    tokio::spawn(async move {
        let send = client.send(addr, &method, &path, &fields, body, Instant::now());
        match tokio::time::timeout(bound, send).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, upstream = %addr, "mirror request failed"),
            Err(_) => tracing::debug!(upstream = %addr, "mirror request timed out"),
        }
        MIRRORS_IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(on: &str) -> RetryPolicy {
        let table = rauta_router::RouteTable::from_yaml(&format!(
            r#"
virtual_hosts:
  - name: a
    domains: ["*"]
    routes:
      - name: r
        match: {{prefix: /}}
        action: {{cluster: c, retry_policy: {{retry_on: "{on}", retriable_status_codes: [409]}}}}
"#
        ))
        .unwrap();
        table.virtual_hosts()[0].routes()[0]
            .retry_policy()
            .unwrap()
            .clone()
    }

    #[test]
    fn retry_conditions() {
        let p = policy("5xx");
        assert!(retriable(&p, Some(Failure::Reset), None));
        assert!(retriable(&p, None, Some(500)));
        assert!(!retriable(&p, None, Some(404)));
        let p = policy("gateway-error");
        assert!(retriable(&p, None, Some(503)));
        assert!(!retriable(&p, None, Some(500)));
        assert!(!retriable(&p, Some(Failure::Reset), None));
        let p = policy("connect-failure,retriable-status-codes");
        assert!(retriable(&p, Some(Failure::Connect), None));
        assert!(retriable(&p, None, Some(409)));
        assert!(!retriable(&p, None, Some(503)));
        let p = policy("retriable-4xx");
        assert!(retriable(&p, None, Some(409)));
        assert!(!retriable(&p, None, Some(404)));
        assert!(!retriable(&p, Some(Failure::Reset), None));
    }

    #[test]
    fn hop_by_hop_headers_and_the_ones_connection_names_go() {
        let mut h = HeaderMap::new();
        for (n, v) in [
            ("connection", "keep-alive, X-Secret , bogus name"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("x-kept", "2"),
            ("host", "a"),
        ] {
            h.append(HeaderName::from_static(n), HeaderValue::from_static(v));
        }
        let mut left = Vec::new();
        UpstreamHeaders::new(&h).each(|n, _| left.push(n.as_str().to_owned()));
        left.sort_unstable();
        assert_eq!(left, ["host", "x-kept"]);
    }

    #[test]
    fn upstream_headers_drop_hop_by_hop_and_apply_edits_over_the_downstream_map() {
        use rauta_router::HeaderMapMut;
        let mut h = HeaderMap::new();
        for (n, v) in [
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("x-kept", "2"),
            ("x-replaced", "old"),
            ("x-removed", "gone"),
            ("host", "a"),
        ] {
            h.append(HeaderName::from_static(n), HeaderValue::from_static(v));
        }
        let mut u = UpstreamHeaders::new(&h);
        HeaderMapMut::set(&mut u, "x-replaced", "new");
        HeaderMapMut::remove(&mut u, "x-removed");
        HeaderMapMut::append(&mut u, "x-kept", "3");
        HeaderMapMut::append(&mut u, "x-added", "4");
        HeaderMapMut::remove(&mut u, "x-added");
        HeaderMapMut::append(&mut u, "bad name", "5");
        assert_eq!(u.first("x-replaced"), Some("new"));
        assert_eq!(u.first("x-kept"), Some("2"));
        assert!(!u.contains("x-secret") && !u.contains("x-removed") && !u.contains("x-added"));
        let mut seen = Vec::new();
        u.each(|n, v| seen.push(format!("{}: {}", n, v.to_str().unwrap())));
        assert_eq!(
            seen,
            ["x-kept: 2", "host: a", "x-replaced: new", "x-kept: 3"],
            "downstream fields first, in their order, then the added ones"
        );
        // Nothing to drop: nothing is allocated for it.
        let plain = HeaderMap::new();
        assert_eq!(UpstreamHeaders::new(&plain).dropped.capacity(), 0);
    }

    #[tokio::test]
    async fn a_reused_connection_timer_fires_at_each_requests_deadline_not_before() {
        use std::pin::pin;
        use tokio::time::Instant;
        let mut t = ConnTimer::default();
        let never = std::future::pending::<()>;
        // Done in time: the value.
        let far = Instant::now() + Duration::from_secs(60);
        assert_eq!(t.within(far, pin!(async { 7 })).await, Some(7));
        // A deadline already past: at once.
        assert_eq!(t.within(Instant::now(), pin!(never())).await, None);
        // Armed at an earlier request's deadline, which passes first: the
        // timer re-arms and waits for this request's own deadline.
        let early = Instant::now() + Duration::from_millis(5);
        assert_eq!(t.within(early, pin!(async { 1 })).await, Some(1));
        let start = Instant::now();
        let end = start + Duration::from_millis(30);
        assert_eq!(t.within(end, pin!(never())).await, None);
        assert!(Instant::now() >= end, "fired before the deadline");
        // A later request with an earlier deadline than the armed one.
        let _ = t
            .within(Instant::now() + Duration::from_secs(60), pin!(async {}))
            .await;
        let soon = Instant::now() + Duration::from_millis(10);
        assert_eq!(t.within(soon, pin!(never())).await, None);
        assert!(Instant::now() >= soon);
    }

    #[test]
    fn the_trusted_client_address_is_read_from_the_right_of_x_forwarded_for() {
        let mut h = HeaderMap::new();
        assert_eq!(xff_address(&h, 0), None);
        h.append(
            X_FORWARDED_FOR,
            HeaderValue::from_static("198.51.100.1, 203.0.113.7"),
        );
        h.append(X_FORWARDED_FOR, HeaderValue::from_static(" 2001:db8::1 "));
        let at = |skip| xff_address(&h, skip).map(|ip| ip.to_string());
        assert_eq!(at(0).as_deref(), Some("2001:db8::1"));
        assert_eq!(at(1).as_deref(), Some("203.0.113.7"));
        assert_eq!(at(2).as_deref(), Some("198.51.100.1"));
        assert_eq!(at(3), None);
        let mut h = HeaderMap::new();
        h.insert(
            X_FORWARDED_FOR,
            HeaderValue::from_static("unknown, 10.0.0.1:80"),
        );
        assert_eq!(xff_address(&h, 0), None);
        assert_eq!(xff_address(&h, 1), None);
        // An empty line is no entry; an empty entry inside a line is one.
        let mut h = HeaderMap::new();
        h.append(X_FORWARDED_FOR, HeaderValue::from_static("192.0.2.1"));
        h.append(X_FORWARDED_FOR, HeaderValue::from_static("192.0.2.2,"));
        h.append(X_FORWARDED_FOR, HeaderValue::from_static(""));
        let at = |skip| xff_address(&h, skip).map(|ip| ip.to_string());
        assert_eq!(at(0), None);
        assert_eq!(at(1).as_deref(), Some("192.0.2.2"));
        assert_eq!(at(2).as_deref(), Some("192.0.2.1"));
    }

    #[test]
    fn the_scheme_is_the_connections_unless_a_trusted_proxy_says() {
        let parts = |xfp: &[&'static str], uri: &str| {
            let mut b = Request::get(uri);
            for v in xfp {
                b = b.header("x-forwarded-proto", *v);
            }
            b.body(()).unwrap().into_parts().0
        };
        fn seen(p: &http::request::Parts) -> (Vec<&str>, Option<String>) {
            let v = p
                .headers
                .get_all(X_FORWARDED_PROTO)
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect();
            (v, p.uri.scheme_str().map(str::to_owned))
        }
        for trusted in [false, true] {
            let mut p = parts(&[], "https://a.example/x");
            plain_http(&mut p, trusted);
            assert_eq!(seen(&p), (Vec::<&str>::new(), Some("http".to_owned())));
        }
        let mut p = parts(&["https"], "https://a.example/x");
        plain_http(&mut p, false);
        assert_eq!(seen(&p), (vec!["http"], Some("http".to_owned())));
        let mut p = parts(&["http", "https"], "/x");
        plain_http(&mut p, false);
        assert_eq!(seen(&p), (vec!["http"], None));
        let mut p = parts(&["https"], "http://a.example/x");
        plain_http(&mut p, true);
        assert_eq!(seen(&p), (vec!["https"], Some("https".to_owned())));
        // Trusted, an h2 `:scheme` follows the header either way.
        let mut p = parts(&["http"], "https://a.example/x");
        plain_http(&mut p, true);
        assert_eq!(seen(&p), (vec!["http"], Some("http".to_owned())));
        // Several lines are one value, as Envoy joins them: not `https`.
        let mut p = parts(&["https", "", "http"], "https://a.example/x");
        plain_http(&mut p, true);
        assert_eq!(seen(&p), (vec!["https,http"], Some("http".to_owned())));
    }

    #[test]
    fn backoff_is_bounded() {
        let p = policy("5xx");
        for n in 0..40 {
            assert!(backoff(&p, n) <= Duration::from_millis(p.max_interval_ms));
        }
    }
}
