//! The upstream side: a pooled HTTP/1.1 client that runs in the calling task.
//!
//! A request is written to an idle pooled connection (or a new one) and its
//! response head is read and parsed with `httparse`, all inside the task that
//! serves the downstream request: no connection task, no channel, no wake-up
//! between tasks. The response body streams from the connection; once it has
//! been read to its end, the connection goes back to the pool.
//!
//! # Framing
//!
//! - Requests: a body of known size is sent with `content-length`, any other
//!   body with `transfer-encoding: chunked`; a request without a body carries
//!   a `content-length` only if the downstream request had one.
//! - Responses: no body for `HEAD`, 1xx, 204 and 304; else chunked if the last
//!   transfer coding is `chunked` (the connection is then not reused if a
//!   `content-length` came too), else `content-length` (several differing
//!   values are an error), else the body runs to the end of the connection.
//!   Interim 1xx responses are skipped; `101 Switching Protocols` is an error
//!   (the proxy does not forward upgrades). Trailers are read and dropped.
//! - Hop-by-hop response fields (RFC 9110 section 7.6.1: `connection`,
//!   `keep-alive`, `transfer-encoding` and the rest, and any field
//!   `connection` names) are read for framing and reuse, and not kept.
//!
//! # Reuse
//!
//! A connection is reused when its response said nothing against it
//! (`connection: close`, or HTTP/1.0 without `keep-alive`) and its body was
//! read to the end with no byte beyond it. Idle connections are kept last in,
//! first out, at most [`Pool::MAX_IDLE_PER_ENDPOINT`] per endpoint, for at
//! most the pool's idle timeout (expired ones are closed when the endpoint is
//! next used, and by [`Pool::spawn_reaper`]). A connection the upstream
//! closed while idle is usually noticed when it is taken (a read that does
//! not block sees the close once the runtime has), and an idempotent request
//! without a body whose reused connection fails before the first response
//! byte is sent again once, on a new connection.

use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, COOKIE, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, Version};
use hyper::body::{Body as _, Frame, SizeHint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::proxy::{full, Body, BoxError, Reply};

/// The most bytes a response head (status line and headers) may take.
pub const MAX_HEAD: usize = 64 * 1024;

/// The most header fields a response head may carry.
pub const MAX_HEADERS: usize = 128;

/// The most bytes of trailer fields after a chunked body.
const MAX_TRAILERS: usize = 16 * 1024;

/// Why an exchange with an upstream failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The connection could not be opened (refused, unreachable, timed out).
    #[error("connect to {addr}: {source}")]
    Connect {
        /// The endpoint.
        addr: SocketAddr,
        /// What the socket said.
        source: io::Error,
    },
    /// Reading or writing failed, or the upstream closed the connection early.
    #[error("upstream i/o: {0}")]
    Io(#[from] io::Error),
    /// The upstream's response is not HTTP/1.x as this client reads it.
    #[error("upstream response: {0}")]
    Protocol(&'static str),
    /// The downstream request body failed while it was being sent.
    #[error("request body: {0}")]
    Body(BoxError),
}

impl Error {
    /// Whether the connection could not be opened at all.
    pub fn is_connect(&self) -> bool {
        matches!(self, Error::Connect { .. })
    }
}

/// The header fields of a request to send.
pub trait Fields {
    /// Calls `f` with every field, in order.
    fn each_field(&self, f: &mut dyn FnMut(&HeaderName, &HeaderValue));
    /// Whether `name` has a value.
    fn has(&self, name: &HeaderName) -> bool;
}

impl Fields for HeaderMap {
    fn each_field(&self, f: &mut dyn FnMut(&HeaderName, &HeaderValue)) {
        for (n, v) in self {
            f(n, v);
        }
    }
    fn has(&self, name: &HeaderName) -> bool {
        self.contains_key(name)
    }
}

/// One upstream connection and its read buffer.
#[derive(Debug)]
struct Conn {
    io: TcpStream,
    /// Bytes read and not yet consumed.
    buf: BytesMut,
    /// The last request head written (kept for its allocation).
    head: Vec<u8>,
}

#[derive(Debug)]
struct Idle {
    conn: Conn,
    since: Instant,
}

/// Idle connections per endpoint, in the order they were put back (which
/// is oldest first, give or take one response time).
type IdleMap = HashMap<SocketAddr, VecDeque<Idle>, ahash::RandomState>;

#[derive(Debug)]
struct Inner {
    idle: Mutex<IdleMap>,
    idle_timeout: Duration,
    connect_timeout: Duration,
}

/// Pooled HTTP/1.1 connections to upstream endpoints, keyed by address.
/// Cheap to clone (one reference count).
#[derive(Debug, Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

impl Pool {
    /// The most idle connections kept per endpoint.
    pub const MAX_IDLE_PER_ENDPOINT: usize = 512;

    /// A pool that closes connections idle longer than `idle_timeout` and
    /// gives up connecting after `connect_timeout`.
    pub fn new(idle_timeout: Duration, connect_timeout: Duration) -> Pool {
        Pool {
            inner: Arc::new(Inner {
                idle: Mutex::new(HashMap::default()),
                idle_timeout,
                connect_timeout,
            }),
        }
    }

    /// How many idle connections the pool holds to `addr`.
    pub fn idle(&self, addr: SocketAddr) -> usize {
        self.inner.lock().get(&addr).map_or(0, VecDeque::len)
    }

    /// Closes every connection idle longer than the idle timeout and forgets
    /// endpoints with none left.
    pub fn reap(&self) {
        self.inner.reap();
    }

    /// Runs [`reap`](Self::reap) every `period` on the current runtime, until
    /// the pool is dropped.
    pub fn spawn_reaper(&self, period: Duration) -> tokio::task::JoinHandle<()> {
        let pool = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                match pool.upgrade() {
                    Some(inner) => inner.reap(),
                    None => return,
                }
            }
        })
    }

    /// Sends one request to `addr` and reads the response head. The
    /// response body streams from the connection.
    ///
    /// `headers` are written as they are, except `content-length` and
    /// `transfer-encoding`, which follow from `body`. `now` is about when the
    /// request is sent: the pool's idle bookkeeping uses it instead of
    /// reading the clock again (a connection whose response arrives whole
    /// with its head counts as idle from then; one whose body streams, from
    /// the body's end).
    pub async fn send(
        &self,
        addr: SocketAddr,
        method: &Method,
        path: &str,
        headers: &(dyn Fields + Sync),
        body: Body,
        now: Instant,
    ) -> Result<Reply, Error> {
        let had_length = headers.has(&CONTENT_LENGTH);
        let framing = if body.is_end_stream() {
            ReqFraming::None { had_length }
        } else {
            match body.size_hint().exact() {
                Some(n) => ReqFraming::Length(n),
                None => ReqFraming::Chunked,
            }
        };
        let mut body = Some(body);
        // A request without a body can be sent again if a reused
        // connection turns out to be closed.
        // Only for idempotent methods (RFC 9110 section 9.2.2): the
        // upstream may have acted on the request before the connection died.
        let replayable =
            matches!(framing, ReqFraming::None { .. }) && crate::proxy::idempotent(method);
        let mut conn = self.checkout(addr, now);
        loop {
            let reused = conn.is_some();
            let mut c = match conn.take() {
                Some(c) => c,
                // Boxed: a connect is rare next to a pooled exchange, and
                // its large future inline would be copied on every request.
                None => Box::pin(self.connect(addr)).await?,
            };
            let mut head = std::mem::take(&mut c.head);
            head.clear();
            encode_head(&mut head, method, path, headers, framing);
            let sent = exchange(&mut c, &head, framing, body.take(), method).await;
            c.head = head;
            match sent {
                Ok(parsed) => return Ok(self.respond(addr, c, parsed, now)),
                Err(Exchange::Stale(_)) if reused && replayable => continue,
                Err(Exchange::Stale(e)) => {
                    return Err(Error::Io(e.unwrap_or_else(|| {
                        io::Error::new(io::ErrorKind::UnexpectedEof, "closed before a response")
                    })))
                }
                Err(Exchange::Failed(e)) => return Err(e),
            }
        }
    }

    async fn connect(&self, addr: SocketAddr) -> Result<Conn, Error> {
        let io = match tokio::time::timeout(self.inner.connect_timeout, TcpStream::connect(addr))
            .await
        {
            Ok(Ok(io)) => io,
            Ok(Err(source)) => return Err(Error::Connect { addr, source }),
            Err(_) => {
                return Err(Error::Connect {
                    addr,
                    source: io::Error::new(io::ErrorKind::TimedOut, "connect timed out"),
                })
            }
        };
        let _ = io.set_nodelay(true);
        Ok(Conn {
            io,
            buf: BytesMut::with_capacity(8 * 1024),
            head: Vec::with_capacity(512),
        })
    }

    /// An idle connection to `addr` that still looks open, if any.
    fn checkout(&self, addr: SocketAddr, now: Instant) -> Option<Conn> {
        loop {
            let mut expired = Vec::new();
            let candidate = {
                let mut idle = self.inner.lock();
                let list = idle.get_mut(&addr)?;
                self.inner.expire(list, now, &mut expired);
                list.pop_back()
            };
            // Sockets close, and the probe reads, outside the lock.
            drop(expired);
            let Idle { conn, .. } = candidate?;
            // An open, quiet connection has nothing to read. This costs no
            // system call unless the socket was marked readable; a close
            // the runtime has not seen yet is caught by the replay in `send`
            // instead.
            let mut probe = [0u8; 1];
            match conn.io.try_read(&mut probe) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Some(conn),
                _ => continue,
            }
        }
    }

    fn checkin(&self, addr: SocketAddr, conn: Conn, now: Instant) {
        if !conn.buf.is_empty() {
            return;
        }
        let mut expired = Vec::new();
        {
            let mut idle = self.inner.lock();
            let list = idle.entry(addr).or_default();
            self.inner.expire(list, now, &mut expired);
            if list.len() < Self::MAX_IDLE_PER_ENDPOINT {
                list.push_back(Idle { conn, since: now });
            } else {
                expired.push(conn);
            }
        }
        drop(expired);
    }

    /// Turns a parsed head into a reply whose body reads from `conn`; its
    /// fields stay raw (see [`Reply`]).
    fn respond(&self, addr: SocketAddr, mut conn: Conn, head: Parsed, now: Instant) -> Reply {
        let mut resp = Response::new(crate::proxy::empty());
        *resp.status_mut() = head.status;
        *resp.version_mut() = head.version;
        match head.body {
            RespFraming::None => {
                if head.reuse {
                    self.checkin(addr, conn, now);
                }
            }
            RespFraming::Length(n) if (conn.buf.len() as u64) >= n => {
                // The whole body is here already (the common case for small
                // responses): answer from memory, reuse the connection now.
                let body = conn.buf.split_to(n as usize).freeze();
                *resp.body_mut() = full(body);
                if head.reuse {
                    self.checkin(addr, conn, now);
                }
            }
            framing => {
                *resp.body_mut() = Body::upstream(UpstreamBody {
                    conn: Some(conn),
                    framing,
                    reuse: head.reuse,
                    pool: self.clone(),
                    addr,
                });
            }
        }
        Reply::raw(resp, head.fields)
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, IdleMap> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Moves the connections of `list` idle past the timeout to `out`.
    fn expire(&self, list: &mut VecDeque<Idle>, now: Instant, out: &mut Vec<Conn>) {
        while list
            .front()
            .is_some_and(|i| now.saturating_duration_since(i.since) >= self.idle_timeout)
        {
            if let Some(i) = list.pop_front() {
                out.push(i.conn);
            }
        }
    }

    fn reap(&self) {
        let now = Instant::now();
        let mut expired = Vec::new();
        self.lock().retain(|_, list| {
            self.expire(list, now, &mut expired);
            !list.is_empty()
        });
        drop(expired);
    }
}

#[derive(Debug, Clone, Copy)]
enum ReqFraming {
    None { had_length: bool },
    Length(u64),
    Chunked,
}

/// Writes the request line and headers. Several `cookie` fields (HTTP/2
/// sends one per cookie) go out as one, joined with `; ` where the first
/// was, as RFC 9113 section 8.2.3 asks before HTTP/1.1.
fn encode_head(
    out: &mut Vec<u8>,
    method: &Method,
    path: &str,
    headers: &(dyn Fields + Sync),
    framing: ReqFraming,
) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(if path.is_empty() { "/" } else { path }.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut cookies_written = false;
    headers.each_field(&mut |name, value| {
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
            return;
        }
        if name == COOKIE {
            if cookies_written {
                return;
            }
            cookies_written = true;
            out.extend_from_slice(b"cookie: ");
            let mut first = true;
            headers.each_field(&mut |name, value| {
                if name == COOKIE {
                    if !first {
                        out.extend_from_slice(b"; ");
                    }
                    first = false;
                    out.extend_from_slice(value.as_bytes());
                }
            });
            out.extend_from_slice(b"\r\n");
            return;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    });
    match framing {
        ReqFraming::None { had_length: true } => out.extend_from_slice(b"content-length: 0\r\n"),
        ReqFraming::None { had_length: false } => {}
        ReqFraming::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            push_decimal(out, n);
            out.extend_from_slice(b"\r\n");
        }
        ReqFraming::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

/// How an exchange failed: `Stale` before any response byte arrived (the
/// request may be sent again on another connection), `Failed` otherwise.
enum Exchange {
    Stale(Option<io::Error>),
    Failed(Error),
}

/// A response head, parsed.
struct Parsed {
    status: StatusCode,
    version: Version,
    fields: RawFields,
    body: RespFraming,
    reuse: bool,
}

/// Writes the request and reads the final response head.
async fn exchange(
    c: &mut Conn,
    head: &[u8],
    framing: ReqFraming,
    body: Option<Body>,
    method: &Method,
) -> Result<Parsed, Exchange> {
    if let Err(e) = c.io.write_all(head).await {
        return Err(Exchange::Stale(Some(e)));
    }
    let length = match framing {
        ReqFraming::None { .. } => Some(0),
        ReqFraming::Length(n) => Some(n),
        ReqFraming::Chunked => None,
    };
    if let (Some(mut body), false) = (body, length == Some(0)) {
        // Boxed for the same reason: most requests have no body.
        Box::pin(send_body(c, &mut body, length))
            .await
            .map_err(Exchange::Failed)?;
    }
    let mut received = false;
    // The buffer's length at the last incomplete parse (see `ends_head`).
    let mut partial_at: Option<usize> = None;
    loop {
        if !c.buf.is_empty() {
            received = true;
            if partial_at.is_none_or(|at| ends_head(&c.buf, at)) {
                match parse_head(&mut c.buf, method).map_err(Exchange::Failed)? {
                    Some(Some(parsed)) => return Ok(parsed),
                    Some(None) => {
                        // An interim 1xx, skipped; the next head starts now.
                        partial_at = None;
                        continue;
                    }
                    None => {}
                }
            }
            partial_at = Some(c.buf.len());
            if c.buf.len() > MAX_HEAD {
                return Err(Exchange::Failed(Error::Protocol("response head too large")));
            }
        }
        c.buf.reserve(4096);
        match c.io.read_buf(&mut c.buf).await {
            Ok(0) if received => {
                return Err(Exchange::Failed(Error::Protocol(
                    "closed inside the response head",
                )))
            }
            Ok(0) => return Err(Exchange::Stale(None)),
            Ok(_) => {}
            Err(e) if received => return Err(Exchange::Failed(Error::Io(e))),
            Err(e) => return Err(Exchange::Stale(Some(e))),
        }
    }
}

/// Sends the request body: `length` bytes exactly (a body that yields more
/// or fewer is an error: extra bytes would be read as another request), or
/// chunked when `length` is `None`.
async fn send_body(c: &mut Conn, body: &mut Body, length: Option<u64>) -> Result<(), Error> {
    let chunked = length.is_none();
    let mut sent = 0u64;
    let mut line = Vec::with_capacity(32);
    while let Some(frame) = poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await {
        let frame = frame.map_err(Error::Body)?;
        if let Ok(mut data) = frame.into_data() {
            if data.is_empty() {
                continue;
            }
            sent += data.len() as u64;
            if length.is_some_and(|n| sent > n) {
                return Err(Error::Body("request body longer than its length".into()));
            }
            if chunked {
                line.clear();
                line.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                c.io.write_all(&line).await?;
                c.io.write_all_buf(&mut data).await?;
                c.io.write_all(b"\r\n").await?;
            } else {
                c.io.write_all_buf(&mut data).await?;
            }
        }
        // Request trailers are not forwarded.
    }
    match length {
        None => c.io.write_all(b"0\r\n\r\n").await?,
        Some(n) if sent != n => {
            return Err(Error::Body("request body shorter than its length".into()))
        }
        Some(_) => {}
    }
    Ok(())
}

/// Parses a response head from the front of `buf`. `None`: incomplete;
/// `Some(None)`: an interim response, consumed; `Some(Some(_))`: the final
/// head, consumed.
fn parse_head(buf: &mut BytesMut, method: &Method) -> Result<Option<Option<Parsed>>, Error> {
    let mut slots = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut slots)
    {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Error::Protocol("too many response header fields"))
        }
        Err(_) => return Err(Error::Protocol("malformed response head")),
    };
    if len > MAX_HEAD {
        return Err(Error::Protocol("response head too large"));
    }
    let code = resp.code.unwrap_or(0);
    if *method == Method::CONNECT && (200..300).contains(&code) {
        // The connection would become a tunnel (RFC 9112 section 6.3).
        return Err(Error::Protocol("CONNECT tunnels are not proxied"));
    }
    if code == 101 {
        return Err(Error::Protocol(
            "101 switching protocols (upgrades are not proxied)",
        ));
    }
    if (100..200).contains(&code) {
        buf.advance(len);
        return Ok(Some(None));
    }
    let status = StatusCode::from_u16(code).map_err(|_| Error::Protocol("bad status code"))?;
    let version = if resp.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut transfer_encoded = false;
    let mut close = version == Version::HTTP_10;
    // Fields the `connection` field names as hop-by-hop (rare).
    let mut connection_named: Vec<&[u8]> = Vec::new();
    for h in resp.headers.iter() {
        let (name, value) = (h.name.as_bytes(), h.value);
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = parse_length(value).ok_or(Error::Protocol("bad content-length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(Error::Protocol("conflicting content-length values"));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            transfer_encoded = true;
            // Only the last coding counts: chunked must be last.
            chunked = value
                .rsplit(|b| *b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in value.split(|b| *b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    if version == Version::HTTP_10 {
                        close = false;
                    }
                } else if !token.is_empty() {
                    connection_named.push(token);
                }
            }
        }
    }
    // The fields passed on, as lines ready to write: hop-by-hop fields
    // describe this connection, not the response (they are read above), and
    // the length is kept apart (each hop frames the body its own way).
    let mut lines = BytesMut::with_capacity(len);
    let mut count = 0;
    let mut has_date = false;
    for h in resp.headers.iter() {
        let name = h.name.as_bytes();
        if crate::proxy::is_hop_by_hop_bytes(name)
            || name.eq_ignore_ascii_case(b"content-length")
            || connection_named
                .iter()
                .any(|n| n.eq_ignore_ascii_case(name))
        {
            continue;
        }
        has_date |= name.eq_ignore_ascii_case(b"date");
        lines.extend_from_slice(name);
        lines.extend_from_slice(b": ");
        lines.extend_from_slice(h.value);
        lines.extend_from_slice(b"\r\n");
        count += 1;
    }
    let fields = RawFields {
        lines: lines.freeze(),
        count,
        // A length beside a transfer coding is wrong for every later hop
        // (RFC 9112 section 6.3).
        length: if transfer_encoded { None } else { length },
        has_date,
    };
    let bodyless = *method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let body = if bodyless {
        RespFraming::None
    } else if chunked {
        if length.is_some() {
            // Both: chunked wins, and the connection is not trusted after.
            close = true;
        }
        RespFraming::Chunked(Chunk::Size)
    } else if transfer_encoded {
        // A coding other than chunked last: the body ends with the connection.
        close = true;
        RespFraming::Close
    } else if let Some(n) = length {
        if n == 0 {
            RespFraming::None
        } else {
            RespFraming::Length(n)
        }
    } else {
        close = true;
        RespFraming::Close
    };
    buf.advance(len);
    Ok(Some(Some(Parsed {
        status,
        version,
        fields,
        body,
        reuse: !close,
    })))
}

/// An upstream response's header fields as they came, for passing on
/// without building a header map: the fields a proxy forwards as lines ready
/// to write (`name: value` and CRLF each, names as the upstream spelled
/// them), without the hop-by-hop fields and without `content-length`, which
/// is kept apart (each hop frames the body its own way).
#[derive(Debug, Clone, Default)]
pub struct RawFields {
    lines: Bytes,
    count: usize,
    length: Option<u64>,
    has_date: bool,
}

impl RawFields {
    /// The field lines, ready to write after a status line.
    pub fn lines(&self) -> &[u8] {
        &self.lines
    }

    /// The upstream's `content-length`, unless a transfer coding came with
    /// it.
    pub fn content_length(&self) -> Option<u64> {
        self.length
    }

    /// Whether the upstream sent a `date`.
    pub fn has_date(&self) -> bool {
        self.has_date
    }

    /// The fields as a header map, `content-length` included (the values
    /// share the lines' buffer).
    pub fn to_map(&self) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.count + 1);
        let b = &self.lines;
        let mut at = 0;
        while at < b.len() {
            let end = b[at..]
                .windows(2)
                .position(|w| w == b"\r\n")
                .map_or(b.len(), |i| at + i);
            let line = &b[at..end];
            // Written by `parse_head` as `name: value`: the first colon ends
            // the name (names have none).
            if let Some(colon) = line.iter().position(|c| *c == b':') {
                let value = (at + colon + 2).min(end);
                if let (Some(name), Ok(value)) = (
                    header_name(&line[..colon]),
                    HeaderValue::from_maybe_shared(b.slice(value..end)),
                ) {
                    map.append(name, value);
                }
            }
            at = end + 2;
        }
        if let Some(n) = self.length {
            map.append(CONTENT_LENGTH, HeaderValue::from(n));
        }
        map
    }
}

/// Where one header field sits in a head buffer, so its value can share the
/// frozen buffer instead of being copied.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Field {
    name: (u32, u32),
    value: (u32, u32),
}

impl Field {
    /// The offsets of `h` in the buffer that starts at address `base`.
    pub(crate) fn locate(base: usize, h: &httparse::Header<'_>) -> Field {
        let at = |s: &[u8]| ((s.as_ptr() as usize - base) as u32, s.len() as u32);
        Field {
            name: at(h.name.as_bytes()),
            value: at(h.value),
        }
    }

    /// The field's name and value, validated, from the frozen buffer.
    pub(crate) fn take(&self, head: &Bytes) -> Option<(HeaderName, HeaderValue)> {
        let (na, nl) = (self.name.0 as usize, self.name.1 as usize);
        let (va, vl) = (self.value.0 as usize, self.value.1 as usize);
        let name = header_name(head.get(na..na + nl)?)?;
        let value = HeaderValue::from_maybe_shared(head.slice(va..va + vl)).ok()?;
        Some((name, value))
    }
}

/// `raw` as a header name. Peers send the same few names on every message,
/// so the names parsed last are kept per thread (64 slots, by length and
/// first and last byte); a hit costs a case-insensitive comparison instead
/// of a parse.
fn header_name(raw: &[u8]) -> Option<HeaderName> {
    use std::cell::RefCell;
    const SLOTS: usize = 64;
    thread_local! {
        static NAMES: RefCell<[Option<HeaderName>; SLOTS]> =
            const { RefCell::new([const { None }; SLOTS]) };
    }
    let (&first, &last) = (raw.first()?, raw.last()?);
    if raw.len() > 32 {
        // Long names are rare and would pin memory per thread.
        return HeaderName::from_bytes(raw).ok();
    }
    let slot = (raw.len() * 7 + usize::from(first | 0x20) * 3 + usize::from(last | 0x20)) % SLOTS;
    NAMES.with(|names| {
        let mut names = names.borrow_mut();
        if let Some(n) = &names[slot] {
            // A name equal to a valid one but for ASCII case is valid, and
            // names are case-insensitive.
            if n.as_str().as_bytes().eq_ignore_ascii_case(raw) {
                return Some(n.clone());
            }
        }
        let n = HeaderName::from_bytes(raw).ok()?;
        names[slot] = Some(n.clone());
        Some(n)
    })
}

/// Whether `buf[from..]` (and the two bytes before it, for a blank line
/// split across reads) holds the blank line that ends a message head.
/// httparse starts over on every call, so parsing a head that trickles in
/// after every read would cost O(n^2); after an incomplete parse, a parse is
/// only tried again once this is true.
pub(crate) fn ends_head(buf: &[u8], from: usize) -> bool {
    let s = &buf[from.saturating_sub(2).min(buf.len())..];
    s.iter().enumerate().any(|(i, &b)| {
        b == b'\n'
            && match s.get(i + 1) {
                Some(b'\n') => true,
                Some(b'\r') => s.get(i + 2) == Some(&b'\n'),
                _ => false,
            }
    })
}

/// Appends `n` in decimal.
pub(crate) fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// A `content-length` value: one number, or a list of equal ones (RFC 9110
/// section 8.6 lets a recipient accept `5, 5`).
fn parse_length(v: &[u8]) -> Option<u64> {
    let mut length = None;
    for part in v.split(|b| *b == b',') {
        let part = part.trim_ascii();
        if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = part.iter().try_fold(0u64, |n, d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })?;
        if length.is_some_and(|l| l != n) {
            return None;
        }
        length = Some(n);
    }
    length
}

/// How a response body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RespFraming {
    None,
    Length(u64),
    Chunked(Chunk),
    Close,
}

/// Where a chunked body's decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside chunk data: this many bytes left.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one; bytes so far.
    Trailers(usize),
    /// The body has ended.
    Done,
}

/// What one step of decoding produced.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Data(Bytes),
    NeedMore,
    Done,
}

/// Decodes as much of a chunked body from `buf` as one step allows.
fn decode_chunked(state: &mut Chunk, buf: &mut BytesMut) -> Result<Step, Error> {
    loop {
        match *state {
            Chunk::Size => {
                let Some(eol) = buf.iter().position(|b| *b == b'\n') else {
                    if buf.len() > 1024 {
                        return Err(Error::Protocol("chunk size line too long"));
                    }
                    return Ok(Step::NeedMore);
                };
                let line = &buf[..eol];
                let line = line
                    .strip_suffix(b"\r")
                    .ok_or(Error::Protocol("bad chunk size line"))?;
                // The size in hex, then optional whitespace and extensions
                // after ';' (RFC 9112 section 7.1.1). Nothing else.
                let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
                if digits == 0 || digits > 15 {
                    return Err(Error::Protocol("bad chunk size"));
                }
                let rest = &line[digits..];
                let ws = rest
                    .iter()
                    .take_while(|b| matches!(b, b' ' | b'\t'))
                    .count();
                let rest = &rest[ws..];
                if !(rest.is_empty() || rest[0] == b';') || rest.contains(&b'\r') {
                    return Err(Error::Protocol("bad chunk size line"));
                }
                let mut size = 0u64;
                for d in &line[..digits] {
                    let v = (*d as char)
                        .to_digit(16)
                        .ok_or(Error::Protocol("bad chunk size"))?;
                    size = size * 16 + u64::from(v);
                }
                buf.advance(eol + 1);
                *state = if size == 0 {
                    Chunk::Trailers(0)
                } else {
                    Chunk::Data(size)
                };
            }
            Chunk::Data(left) => {
                if buf.is_empty() {
                    return Ok(Step::NeedMore);
                }
                let take = (buf.len() as u64).min(left) as usize;
                let data = buf.split_to(take).freeze();
                *state = if take as u64 == left {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(left - take as u64)
                };
                return Ok(Step::Data(data));
            }
            Chunk::DataEnd => {
                if buf.len() < 2 {
                    return Ok(Step::NeedMore);
                }
                if &buf[..2] != b"\r\n" {
                    return Err(Error::Protocol("chunk data not followed by CRLF"));
                }
                buf.advance(2);
                *state = Chunk::Size;
            }
            Chunk::Trailers(seen) => {
                let Some(eol) = buf.iter().position(|b| *b == b'\n') else {
                    if seen + buf.len() > MAX_TRAILERS {
                        return Err(Error::Protocol("trailers too large"));
                    }
                    return Ok(Step::NeedMore);
                };
                if eol == 0 || buf[eol - 1] != b'\r' {
                    return Err(Error::Protocol("trailer line without CRLF"));
                }
                let empty = eol == 1;
                buf.advance(eol + 1);
                if empty {
                    *state = Chunk::Done;
                    return Ok(Step::Done);
                }
                if seen + eol + 1 > MAX_TRAILERS {
                    return Err(Error::Protocol("trailers too large"));
                }
                *state = Chunk::Trailers(seen + eol + 1);
            }
            Chunk::Done => return Ok(Step::Done),
        }
    }
}

/// A response body read from an upstream connection.
#[derive(Debug)]
pub struct UpstreamBody {
    /// `None` once the body has ended (or failed).
    conn: Option<Conn>,
    framing: RespFraming,
    reuse: bool,
    pool: Pool,
    addr: SocketAddr,
}

impl UpstreamBody {
    /// One step of decoding from what is buffered.
    fn step(&mut self) -> Result<Step, Error> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(Step::Done);
        };
        let buf = &mut conn.buf;
        match &mut self.framing {
            RespFraming::None => Ok(Step::Done),
            RespFraming::Length(0) => Ok(Step::Done),
            RespFraming::Length(left) => {
                if buf.is_empty() {
                    return Ok(Step::NeedMore);
                }
                let take = (buf.len() as u64).min(*left) as usize;
                *left -= take as u64;
                Ok(Step::Data(buf.split_to(take).freeze()))
            }
            RespFraming::Chunked(state) => decode_chunked(state, buf),
            RespFraming::Close => {
                if buf.is_empty() {
                    Ok(Step::NeedMore)
                } else {
                    Ok(Step::Data(buf.split().freeze()))
                }
            }
        }
    }

    fn finish(&mut self) {
        if let Some(conn) = self.conn.take() {
            if self.reuse {
                // The connection goes idle now, not when the request was
                // sent (a long body would otherwise come back expired).
                self.pool.checkin(self.addr, conn, Instant::now());
            }
        }
    }
}

impl hyper::body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            match self.step() {
                Ok(Step::Data(d)) => {
                    if matches!(self.framing, RespFraming::Length(0)) {
                        self.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(d))));
                }
                Ok(Step::Done) => {
                    self.finish();
                    return Poll::Ready(None);
                }
                Ok(Step::NeedMore) => {}
                Err(e) => {
                    self.conn = None;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
            let close_delimited = self.framing == RespFraming::Close;
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            conn.buf.reserve(8 * 1024);
            match conn.io.try_read_buf(&mut conn.buf) {
                Ok(0) if close_delimited => {
                    self.conn = None;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    self.conn = None;
                    let e =
                        io::Error::new(io::ErrorKind::UnexpectedEof, "upstream closed mid-body");
                    return Poll::Ready(Some(Err(e.into())));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = ready!(conn.io.poll_read_ready(cx)) {
                        self.conn = None;
                        return Poll::Ready(Some(Err(e.into())));
                    }
                }
                Err(e) => {
                    self.conn = None;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.conn.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            RespFraming::Length(n) if self.conn.is_some() => SizeHint::with_exact(n),
            _ if self.conn.is_none() => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(bytes: &str, method: &Method) -> Result<Option<Option<Parsed>>, Error> {
        parse_head(&mut BytesMut::from(bytes), method)
    }

    fn final_head(bytes: &str) -> Parsed {
        head(bytes, &Method::GET).unwrap().unwrap().unwrap()
    }

    #[test]
    fn request_heads_carry_the_framing_the_body_needs() {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("a"));
        h.insert("content-length", HeaderValue::from_static("99"));
        let enc = |framing| {
            let mut out = Vec::new();
            encode_head(&mut out, &Method::POST, "/x?y", &h, framing);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            enc(ReqFraming::Length(5)),
            "POST /x?y HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\n\r\n"
        );
        assert_eq!(
            enc(ReqFraming::Chunked),
            "POST /x?y HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        assert_eq!(
            enc(ReqFraming::None { had_length: true }),
            "POST /x?y HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\n\r\n"
        );
        assert_eq!(
            enc(ReqFraming::None { had_length: false }),
            "POST /x?y HTTP/1.1\r\nhost: a\r\n\r\n"
        );
        let mut out = Vec::new();
        push_decimal(&mut out, u64::MAX);
        assert_eq!(out, u64::MAX.to_string().as_bytes());
    }

    #[test]
    fn cookie_fields_go_upstream_as_one() {
        let mut h = HeaderMap::new();
        h.append("x-a", HeaderValue::from_static("1"));
        h.append("cookie", HeaderValue::from_static("a=1"));
        h.append("x-b", HeaderValue::from_static("2"));
        h.append("cookie", HeaderValue::from_static("b=2"));
        h.append("cookie", HeaderValue::from_static("c=3"));
        let mut out = Vec::new();
        encode_head(
            &mut out,
            &Method::GET,
            "/",
            &h,
            ReqFraming::None { had_length: false },
        );
        let head = String::from_utf8(out).unwrap();
        // HeaderMap keeps a name's values together, after its first place.
        assert_eq!(
            head,
            "GET / HTTP/1.1\r\nx-a: 1\r\ncookie: a=1; b=2; c=3\r\nx-b: 2\r\n\r\n"
        );
        let mut one = HeaderMap::new();
        one.append("cookie", HeaderValue::from_static("a=1; b=2"));
        let mut out = Vec::new();
        encode_head(
            &mut out,
            &Method::GET,
            "/",
            &one,
            ReqFraming::None { had_length: false },
        );
        assert_eq!(out, b"GET / HTTP/1.1\r\ncookie: a=1; b=2\r\n\r\n");
    }

    #[test]
    fn response_framing() {
        let p = final_head("HTTP/1.1 200 OK\r\ncontent-length: 12\r\nx-a: b\r\n\r\n");
        assert_eq!(p.body, RespFraming::Length(12));
        assert!(p.reuse);
        assert_eq!(p.fields.to_map()["x-a"], "b");
        assert_eq!(p.fields.lines(), b"x-a: b\r\n");
        assert_eq!(p.fields.content_length(), Some(12));
        let p = final_head(
            "HTTP/1.1 200 OK\r\nconnection: keep-alive, x-hop\r\nx-hop: 1\r\nkeep-alive: timeout=5\r\nx-end: 2\r\ncontent-length: 1\r\n\r\n",
        );
        assert!(p.reuse);
        let map = p.fields.to_map();
        let mut kept: Vec<&str> = map.keys().map(|k| k.as_str()).collect();
        kept.sort_unstable();
        assert_eq!(kept, ["content-length", "x-end"]);
        assert_eq!(p.fields.lines(), b"x-end: 2\r\n");
        let p = final_head("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n");
        assert_eq!(p.body, RespFraming::Chunked(Chunk::Size));
        assert!(p.reuse);
        let p = final_head(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n",
        );
        assert_eq!(p.body, RespFraming::Chunked(Chunk::Size));
        assert!(!p.reuse);
        assert!(
            p.fields.to_map().get("content-length").is_none(),
            "a length beside a transfer coding is not passed on"
        );
        let p = final_head("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n");
        assert_eq!(p.body, RespFraming::Close);
        assert!(!p.reuse);
        let p = final_head("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(p.body, RespFraming::Close);
        assert!(!p.reuse);
        let p = final_head("HTTP/1.1 204 No Content\r\n\r\n");
        assert_eq!(p.body, RespFraming::None);
        assert!(p.reuse);
        let p = final_head("HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\n");
        assert!(!p.reuse);
        let p = final_head("HTTP/1.0 200 OK\r\ncontent-length: 5\r\n\r\n");
        assert!(!p.reuse);
        assert_eq!(p.version, Version::HTTP_10);
        let p =
            final_head("HTTP/1.0 200 OK\r\ncontent-length: 5\r\nconnection: keep-alive\r\n\r\n");
        assert!(p.reuse);
        let p = head(
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n",
            &Method::HEAD,
        )
        .unwrap()
        .unwrap()
        .unwrap();
        assert_eq!(p.body, RespFraming::None);
        let p = final_head("HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 5\r\n\r\n");
        assert_eq!(p.body, RespFraming::Length(5));
    }

    #[test]
    fn bad_response_heads_are_errors_not_guesses() {
        for bad in [
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 1 2\r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "SSH-2.0-OpenSSH\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 5, 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 5,\r\n\r\n",
        ] {
            assert!(head(bad, &Method::GET).is_err(), "{bad:?}");
        }
        // A tunnel is not proxied either.
        assert!(head("HTTP/1.1 200 OK\r\n\r\n", &Method::CONNECT).is_err());
        // The head limit holds however the bytes arrived.
        let huge = format!(
            "HTTP/1.1 200 OK\r\nx-big: {}\r\ncontent-length: 0\r\n\r\n",
            "a".repeat(MAX_HEAD)
        );
        assert!(head(&huge, &Method::GET).is_err());
        // Equal repeated lengths are one length (RFC 9110 section 8.6).
        let p = final_head("HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\n\r\n");
        assert_eq!(p.body, RespFraming::Length(5));
        assert!(head("HTTP/1.1 200 OK\r\ncontent-le", &Method::GET)
            .unwrap()
            .is_none());
    }

    #[test]
    fn cached_header_names_are_the_parsed_ones() {
        for raw in [
            "Content-Type",
            "content-type",
            "CONTENT-TYPE",
            "X-Custom-1",
            "x-custom-2",
            "Content-Length",
            "X-Custom-1",
        ] {
            let want = HeaderName::from_bytes(raw.as_bytes()).unwrap();
            assert_eq!(header_name(raw.as_bytes()), Some(want.clone()), "{raw}");
            assert_eq!(header_name(raw.as_bytes()), Some(want), "{raw} again");
        }
        let long = "x-".to_owned() + &"long".repeat(20);
        assert_eq!(
            header_name(long.to_uppercase().as_bytes()),
            Some(HeaderName::from_bytes(long.as_bytes()).unwrap())
        );
        for bad in ["", "bad name", "x\u{1}y", "caf\u{e9}"] {
            assert_eq!(header_name(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn a_head_end_is_found_wherever_the_reads_split_it() {
        for wire in [
            "GET / HTTP/1.1\r\nhost: a\r\n\r\n",
            "HTTP/1.1 200 OK\nx: 1\n\n",
        ] {
            let bytes = wire.as_bytes();
            // Fed in pieces of every size, scanning only what each read
            // added: the end is seen exactly when the last byte arrives.
            for step in 1..=bytes.len() {
                let mut seen_at = None;
                let mut at = 0;
                while at < bytes.len() {
                    let next = (at + step).min(bytes.len());
                    if seen_at.is_none() && ends_head(&bytes[..next], at) {
                        seen_at = Some(next);
                    }
                    at = next;
                }
                assert_eq!(seen_at, Some(bytes.len()), "{wire:?} in steps of {step}");
            }
        }
        assert!(!ends_head(b"GET / HTTP/1.1\r\nhost: a\r\n", 0));
        assert!(!ends_head(b"", 0));
        assert!(!ends_head(b"abc", 10));
    }

    #[test]
    fn interim_responses_are_skipped() {
        let mut buf = BytesMut::from(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi",
        );
        assert!(matches!(parse_head(&mut buf, &Method::GET), Ok(Some(None))));
        let p = parse_head(&mut buf, &Method::GET)
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(p.status, StatusCode::OK);
        assert_eq!(&buf[..], b"hi");
    }

    /// Feeds `wire` to the chunked decoder in pieces of `step` bytes.
    fn dechunk(wire: &[u8], step: usize) -> Result<(Vec<u8>, Vec<u8>), Error> {
        let mut state = Chunk::Size;
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut fed = 0;
        loop {
            match decode_chunked(&mut state, &mut buf)? {
                Step::Data(d) => out.extend_from_slice(&d),
                Step::Done => return Ok((out, buf.to_vec())),
                Step::NeedMore => {
                    if fed == wire.len() {
                        return Err(Error::Protocol("ran out"));
                    }
                    let end = (fed + step).min(wire.len());
                    buf.extend_from_slice(&wire[fed..end]);
                    fed = end;
                }
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_read_sizes() {
        let wire =
            b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nx-t: 1\r\n\r\nNEXT";
        for step in [1, 2, 3, 7, 100] {
            let (body, rest) = dechunk(wire, step).unwrap();
            assert_eq!(body, b"helloabcdefghijklmnopqrstuvwxyz", "step {step}");
            // Nothing past the end is consumed (it would poison reuse).
            assert!(b"NEXT".starts_with(&rest), "step {step}");
        }
        for bad in [
            &b"x\r\nhello\r\n0\r\n\r\n"[..],
            b"5\r\nhelloXX0\r\n\r\n",
            b"10000000000000000\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r;x\r\nhello\r\n0\r\n\r\n",
            b" 5\r\nhello\r\n0\r\n\r\n",
            b"5 x\r\nhello\r\n0\r\n\r\n",
            b"0\r\nx-t: 1\n\r\n",
        ] {
            assert!(
                dechunk(bad, 4).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    /// An upstream that answers every request on a connection with `ok`.
    async fn ok_upstream() -> SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while let Ok(n @ 1..) = s.read(&mut chunk).await {
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..i + 4);
                            let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                            if s.write_all(reply).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn idle_connections_go_after_the_idle_timeout() {
        let addr = ok_upstream().await;
        let get = |pool: Pool| async move {
            let r = pool
                .send(
                    addr,
                    &Method::GET,
                    "/",
                    &HeaderMap::new(),
                    crate::proxy::empty(),
                    Instant::now(),
                )
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
        };
        let keep = Pool::new(Duration::from_secs(3600), Duration::from_secs(1));
        get(keep.clone()).await;
        assert_eq!(keep.idle(addr), 1);
        keep.reap();
        assert_eq!(keep.idle(addr), 1, "not idle long enough to go");

        let expire = Pool::new(Duration::ZERO, Duration::from_secs(1));
        get(expire.clone()).await;
        assert_eq!(expire.idle(addr), 1);
        expire.reap();
        assert_eq!(expire.idle(addr), 0);
        assert!(expire.inner.lock().is_empty(), "the endpoint is forgotten");
        // Taking one expires the rest first.
        get(expire.clone()).await;
        get(expire.clone()).await;
        assert_eq!(expire.idle(addr), 1);
    }

    /// A body whose size hint promises `promised` bytes and yields `actual`.
    struct Lying {
        promised: u64,
        actual: Option<Bytes>,
    }

    impl hyper::body::Body for Lying {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Ready(self.actual.take().map(|d| Ok(Frame::data(d))))
        }
        fn size_hint(&self) -> SizeHint {
            SizeHint::with_exact(self.promised)
        }
    }

    #[tokio::test]
    async fn a_request_body_must_match_its_length() {
        let addr = ok_upstream().await;
        let pool = Pool::new(Duration::from_secs(60), Duration::from_secs(1));
        for (promised, actual) in [(3, "abcde"), (5, "abc")] {
            let body = Body::new(Lying {
                promised,
                actual: Some(Bytes::from(actual)),
            });
            let r = pool
                .send(
                    addr,
                    &Method::POST,
                    "/",
                    &HeaderMap::new(),
                    body,
                    Instant::now(),
                )
                .await;
            assert!(matches!(r, Err(Error::Body(_))), "{promised} vs {actual}");
        }
        assert_eq!(
            pool.idle(addr),
            0,
            "a connection left mid-request is not reused"
        );
    }
}
