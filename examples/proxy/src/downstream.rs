//! Downstream connections: an HTTP/1.1 fast path for requests without a
//! body, hyper for everything else.
//!
//! Most requests a proxy sees are `GET`s with a handful of headers and no
//! body. For those, this loop parses the head with `httparse`, runs
//! [`proxy::handle`] and writes the response itself, with one read and one
//! write per request. The first request it does not take — one with a body
//! or `Expect`, an upgrade, `CONNECT`, HTTP/1.0, an absolute-form or
//! malformed target, too many headers, or the HTTP/2 preface — hands the
//! whole connection, bytes already read included, to hyper's server, which
//! serves it from then on. Both paths run the same handler, so routing,
//! retries, timeouts, header mutations and stats do not depend on which one
//! served a request. (The status line is always `HTTP/1.1` here; hyper
//! mirrors an HTTP/1.0 upstream's.)
//!
//! Responses on the fast path: `content-length` when the body's size is
//! known, else `transfer-encoding: chunked`; no body for `HEAD`, 1xx, 204 and
//! 304 (a `HEAD` answered locally gets the length its `GET` would have); a
//! `date` header when the handler set none; `connection: close`, and the
//! connection closed, after a request that asked for it or a response a
//! route marked so. A body that yields more or fewer bytes than its length
//! closes the connection. Response trailers are dropped.

use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, EXPECT, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, Method, Request, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Empty};
use hyper::body::Body as _;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::h1::{ends_head, push_decimal, Field};
use crate::proxy::{self, UpstreamClient};
use crate::state::State;

/// The most header fields the fast path parses; a request with more goes to
/// hyper (which allows 100).
const MAX_HEADERS: usize = 64;

/// Past this many bytes without a complete head, hyper takes over (and
/// answers 431 when its own limit is hit).
const MAX_HEAD: usize = 16 * 1024;

/// Response bodies up to this size are copied behind the head and written
/// with it in one call.
const COALESCE: usize = 16 * 1024;

/// Serves one downstream connection until it closes.
pub async fn serve(
    mut stream: TcpStream,
    remote: SocketAddr,
    state: Arc<State>,
    client: UpstreamClient,
) {
    let peer = proxy::Peer {
        remote,
        local: stream.local_addr().ok(),
        client: None,
    };
    let mut buf = BytesMut::with_capacity(4096);
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    // Made on the first request this loop serves (not for connections
    // handed to hyper at once).
    let mut timer: Option<proxy::ConnTimer> = None;
    loop {
        // The buffer's length at the last incomplete parse (see `ends_head`).
        let mut partial_at: Option<usize> = None;
        let (req, close) = loop {
            if !buf.is_empty() {
                let parsed = if partial_at.is_none_or(|at| ends_head(&buf, at)) {
                    parse_request(&mut buf)
                } else {
                    Parse::Partial
                };
                match parsed {
                    Parse::Fast(req, close) => break (req, close),
                    Parse::Partial if buf.len() <= MAX_HEAD => partial_at = Some(buf.len()),
                    Parse::Partial | Parse::HandOver => {
                        return hyper_serve(Rewind::new(buf.freeze(), stream), peer, state, client)
                            .await;
                    }
                }
            }
            buf.reserve(4096);
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        };
        let head_request = req.method() == Method::HEAD;
        let timer = Some(timer.get_or_insert_with(proxy::ConnTimer::default));
        let resp = match proxy::handle(&state, &client, peer, req, timer).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        match write_response(&mut stream, &mut out, resp, head_request, close).await {
            Ok(true) => {}
            Ok(false) | Err(_) => {
                let _ = stream.shutdown().await;
                return;
            }
        }
    }
}

/// Serves `io` with hyper: HTTP/1.1, or HTTP/2 with prior knowledge.
pub async fn hyper_serve<I>(io: I, peer: proxy::Peer, state: Arc<State>, client: UpstreamClient)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| {
        let (state, client) = (Arc::clone(&state), client.clone());
        async move {
            proxy::handle(&state, &client, peer, req, None)
                .await
                .map(proxy::Reply::into_response)
        }
    });
    let conn = auto::Builder::new(TokioExecutor::new());
    if let Err(e) = conn.serve_connection(TokioIo::new(io), svc).await {
        tracing::debug!(error = %e, remote = %peer.remote, "connection ended with an error");
    }
}

// Returned once per request and matched at once: a box would only add an
// allocation.
#[allow(clippy::large_enum_variant)]
enum Parse {
    /// A complete head the fast path serves, and whether to close after it.
    Fast(Request<Empty<Bytes>>, bool),
    Partial,
    HandOver,
}

/// Parses one request head from the front of `buf`; consumes it only when
/// the fast path takes it.
fn parse_request(buf: &mut BytesMut) -> Parse {
    let mut slots = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parse::Partial,
        Err(_) => return Parse::HandOver,
    };
    if req.version != Some(1) {
        return Parse::HandOver;
    }
    let (Some(method), Some(path)) = (req.method, req.path) else {
        return Parse::HandOver;
    };
    if !path.starts_with('/') {
        return Parse::HandOver;
    }
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Parse::HandOver;
    };
    if method == Method::CONNECT {
        return Parse::HandOver;
    }
    // One copy of the head, which the URI and the values share; the read
    // buffer stays unshared, and is consumed only once the fast path takes
    // the request (hyper gets it untouched otherwise).
    let head = Bytes::copy_from_slice(&buf[..len]);
    let base = buf.as_ptr() as usize;
    let at = |s: &[u8]| s.as_ptr() as usize - base;
    let Ok(uri) =
        Uri::from_maybe_shared(head.slice(at(path.as_bytes())..at(path.as_bytes()) + path.len()))
    else {
        return Parse::HandOver; // hyper answers a bad target with 400
    };
    // One spare slot: the handler adds `x-request-id` when it is missing.
    let mut headers = HeaderMap::with_capacity(req.headers.len() + 1);
    let mut close = false;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            if h.value.trim_ascii() != b"0" {
                return Parse::HandOver;
            }
        } else if name.eq_ignore_ascii_case(TRANSFER_ENCODING.as_str().as_bytes())
            || name.eq_ignore_ascii_case(EXPECT.as_str().as_bytes())
            || name.eq_ignore_ascii_case(UPGRADE.as_str().as_bytes())
        {
            return Parse::HandOver;
        } else if name.eq_ignore_ascii_case(CONNECTION.as_str().as_bytes()) {
            close |= h
                .value
                .split(|b| *b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
        }
        let Some((name, value)) = Field::locate(base, h).take(&head) else {
            return Parse::HandOver;
        };
        headers.append(name, value);
    }
    buf.advance(len);
    let mut r = Request::new(Empty::new());
    *r.method_mut() = method;
    *r.uri_mut() = uri;
    *r.version_mut() = Version::HTTP_11;
    *r.headers_mut() = headers;
    Parse::Fast(r, close)
}

/// Encodes and writes one response; answers whether the connection stays
/// open (not when the client or the response asked to close it).
async fn write_response(
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
    reply: proxy::Reply,
    head_request: bool,
    mut close: bool,
) -> io::Result<bool> {
    let (resp, raw) = reply.into_parts();
    let (parts, mut body) = resp.into_parts();
    let status = parts.status;
    let bodyless = head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let no_body = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    // RFC 9110 section 8.6: never a length on a 1xx or 204.
    let no_length = status.is_informational() || status == StatusCode::NO_CONTENT;
    let length = if body.is_end_stream() {
        Some(0)
    } else {
        body.size_hint().exact()
    };
    // A `connection: close` a route added to the response is honoured
    // (raw fields have no `connection`: it is hop-by-hop).
    let says_close = parts.headers.get_all(CONNECTION).iter().any(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
    });
    close |= says_close;
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    // The framing is this hop's: written below from the body. A HEAD
    // response keeps the length the upstream gave.
    let (has_date, has_length) = match &raw {
        Some(raw) => {
            out.extend_from_slice(raw.lines());
            let kept = raw.content_length().filter(|_| head_request && !no_length);
            if let Some(n) = kept {
                out.extend_from_slice(b"content-length: ");
                push_decimal(out, n);
                out.extend_from_slice(b"\r\n");
            }
            (raw.has_date(), kept.is_some())
        }
        None => {
            for (name, value) in &parts.headers {
                if (name == CONTENT_LENGTH && (!head_request || no_length))
                    || name == TRANSFER_ENCODING
                {
                    continue;
                }
                out.extend_from_slice(name.as_str().as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(value.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            (
                parts.headers.contains_key(DATE),
                parts.headers.contains_key(CONTENT_LENGTH),
            )
        }
    };
    if !has_date {
        out.extend_from_slice(b"date: ");
        push_date(out);
        out.extend_from_slice(b"\r\n");
    }
    if close && !says_close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    // A HEAD answered here gets the length its GET would have: its body is
    // the GET's. (An upstream's HEAD response has an empty body and keeps
    // whatever length it gave, above; no length is made up for it.)
    if head_request && !no_body && !has_length {
        if let Some(n) = length.filter(|n| *n > 0) {
            out.extend_from_slice(b"content-length: ");
            push_decimal(out, n);
            out.extend_from_slice(b"\r\n");
        }
    }
    let chunked = !bodyless && length.is_none();
    if !bodyless {
        match length {
            Some(n) => {
                out.extend_from_slice(b"content-length: ");
                push_decimal(out, n);
                out.extend_from_slice(b"\r\n");
            }
            None => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        }
    }
    out.extend_from_slice(b"\r\n");
    if bodyless {
        // Dropping the body drops its upstream connection unless it was
        // complete already.
        stream.write_all(out).await?;
        return Ok(!close);
    }
    let coalesce = length.is_some_and(|n| n <= COALESCE as u64);
    let mut sent = 0u64;
    if !coalesce {
        stream.write_all(out).await?;
        out.clear();
    }
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            // The upstream failed mid-body: all the client can be told is a
            // closed connection.
            return Err(io::Error::other("response body failed"));
        };
        let Ok(mut data) = frame.into_data() else {
            continue; // trailers are not forwarded
        };
        if data.is_empty() {
            continue;
        }
        sent += data.len() as u64;
        if length.is_some_and(|n| sent > n) {
            return Err(io::Error::other("response body longer than its length"));
        }
        if coalesce {
            out.extend_from_slice(&data);
        } else if chunked {
            stream
                .write_all(format!("{:x}\r\n", data.len()).as_bytes())
                .await?;
            stream.write_all_buf(&mut data).await?;
            stream.write_all(b"\r\n").await?;
        } else {
            stream.write_all_buf(&mut data).await?;
        }
    }
    if length.is_some_and(|n| sent != n) {
        return Err(io::Error::other("response body shorter than its length"));
    }
    if coalesce {
        stream.write_all(out).await?;
    } else if chunked {
        stream.write_all(b"0\r\n\r\n").await?;
    }
    Ok(!close)
}

/// Appends the current time as an HTTP date, formatted once a second.
fn push_date(out: &mut Vec<u8>) {
    use std::cell::RefCell;
    thread_local! {
        static CACHE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs {
            *c = (secs, httpdate::fmt_http_date(now));
        }
        out.extend_from_slice(c.1.as_bytes());
    });
}

/// A stream with bytes already read from it put back in front.
#[derive(Debug)]
pub struct Rewind {
    prefix: Bytes,
    io: TcpStream,
}

impl Rewind {
    /// `prefix` is read before anything more from `io`.
    pub fn new(prefix: Bytes, io: TcpStream) -> Rewind {
        Rewind { prefix, io }
    }
}

impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(wire: &str) -> (Parse, BytesMut) {
        let mut buf = BytesMut::from(wire);
        (parse_request(&mut buf), buf)
    }

    #[test]
    fn plain_gets_take_the_fast_path() {
        let (p, rest) =
            parse("GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nx-a: 2\r\n\r\nGET /next");
        let Parse::Fast(req, close) = p else {
            panic!("not fast")
        };
        assert!(!close);
        assert_eq!(req.uri().path(), "/a");
        assert_eq!(req.uri().query(), Some("b=1"));
        assert_eq!(req.headers()["host"], "x");
        assert_eq!(req.headers().get_all("x-a").iter().count(), 2);
        assert_eq!(&rest[..], b"GET /next");
        let (p, _) =
            parse("HEAD / HTTP/1.1\r\nconnection: keep-alive, Close\r\ncontent-length: 0\r\n\r\n");
        assert!(matches!(p, Parse::Fast(_, true)));
    }

    #[test]
    fn everything_else_goes_to_hyper_untouched() {
        for wire in [
            "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello",
            "POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n",
            "PUT / HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 0\r\n\r\n",
            "GET / HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n",
            "CONNECT x:443 HTTP/1.1\r\nhost: x:443\r\n\r\n",
            "GET / HTTP/1.0\r\n\r\n",
            "GET http://x/ HTTP/1.1\r\nhost: x\r\n\r\n",
            "OPTIONS * HTTP/1.1\r\nhost: x\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "GET / HTTP/1.1\r\nhost: x\r\nbad\x01value: 1\r\n\r\n",
            "GET /a\x7fb HTTP/1.1\r\nhost: x\r\n\r\n",
        ] {
            let (p, rest) = parse(wire);
            assert!(matches!(p, Parse::HandOver), "{wire:?}");
            assert_eq!(&rest[..], wire.as_bytes(), "{wire:?}: bytes must stay");
        }
        let many = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            "x-h: 1\r\n".repeat(MAX_HEADERS + 1)
        );
        assert!(matches!(parse(&many).0, Parse::HandOver));
        assert!(matches!(
            parse("GET / HTTP/1.1\r\nhost: x\r\n").0,
            Parse::Partial
        ));
    }

    #[test]
    fn dates_are_http_dates() {
        let mut out = Vec::new();
        push_date(&mut out);
        let s = String::from_utf8(out).unwrap();
        assert!(httpdate::parse_http_date(&s).is_ok(), "{s}");
    }
}
