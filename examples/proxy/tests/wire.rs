//! HTTP/1.1 on the wire: the upstream client's framings against a scripted
//! upstream, and the downstream fast path (pipelining, hand-over to hyper,
//! closing) driven by a raw client. Loopback only; every read is bounded.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::*;
use http::StatusCode;
use rauta_proxy::upstream::Upstream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn one_cluster(addr: SocketAddr) -> String {
    format!(
        r#"
clusters: [{{name: c, endpoints: ["{addr}"]}}]
routes:
  virtual_hosts:
    - name: all
      domains: ["*"]
      routes: [{{name: r, match: {{prefix: /}}, action: {{cluster: c}}}}]
"#
    )
}

/// What the scripted upstream answers to a request for `path`, and whether
/// it closes the connection after.
fn scripted(method: &str, path: &str) -> (Vec<u8>, bool) {
    let text = |s: &str| (s.as_bytes().to_vec(), false);
    match (method, path) {
        (_, "/length") => text("HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-s: 1\r\n\r\nhello"),
        (_, "/chunked") => text(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n",
        ),
        (_, "/until-close") => (
            b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end".to_vec(),
            true,
        ),
        (_, "/big") => {
            let mut r = b"HTTP/1.1 200 OK\r\ncontent-length: 200000\r\n\r\n".to_vec();
            r.extend(std::iter::repeat_n(b'y', 200_000));
            (r, false)
        }
        ("HEAD", "/head") => text("HTTP/1.1 200 OK\r\ncontent-length: 1234\r\n\r\n"),
        ("HEAD", "/head-chunked") => text("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"),
        (_, "/interim") => text(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        ),
        (_, "/no-content") => text("HTTP/1.1 204 No Content\r\nx-s: 2\r\n\r\n"),
        (_, "/conflicting") => (
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello".to_vec(),
            true,
        ),
        (_, "/garbage") => (b"this is not http\r\n\r\n".to_vec(), true),
        (_, "/read-and-close") => (Vec::new(), true),
        (_, "/te-and-cl") => (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\na\r\n0123456789\r\n0\r\n\r\n"
                .to_vec(),
            false,
        ),
        (_, "/fields") => text(
            "HTTP/1.1 200 OK\r\nDate: Mon, 02 Jan 2006 15:04:05 GMT\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nX-Custom: A b\r\nSet-Cookie: a=1\r\nServer: scripted\r\nSet-Cookie: b=2\r\nContent-Length: 2\r\n\r\nok",
        ),
        (_, "/twice-the-length") => text(
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nok",
        ),
        ("HEAD", "/head-no-content") => {
            text("HTTP/1.1 204 No Content\r\ncontent-length: 0\r\nupgrade: h2c\r\n\r\n")
        }
        (_, "/answer-and-close") => (
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec(),
            true,
        ),
        _ => text("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"),
    }
}

/// What a scripted upstream counts.
#[derive(Default)]
struct Counts {
    connections: AtomicU64,
    /// Requests for `/read-and-close`.
    read_and_close: AtomicU64,
}

/// A raw HTTP/1.1 upstream answering from [`scripted`].
async fn scripted_upstream() -> (SocketAddr, Arc<Counts>, tokio::task::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let counts = Arc::new(Counts::default());
    let counted = Arc::clone(&counts);
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            counted.connections.fetch_add(1, Ordering::Relaxed);
            let counted = Arc::clone(&counted);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    // One request head at a time (these requests have no body).
                    let end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        let mut chunk = [0u8; 4096];
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    buf.drain(..end);
                    let mut words = head.split(' ');
                    let method = words.next().unwrap_or("");
                    let path = words.next().unwrap_or("");
                    if path == "/read-and-close" {
                        counted.read_and_close.fetch_add(1, Ordering::Relaxed);
                    }
                    if path == "/trickle" {
                        // The same response as /length, a byte per write.
                        let (reply, _) = scripted(method, "/length");
                        let _ = s.set_nodelay(true);
                        for b in reply {
                            if s.write_all(&[b]).await.is_err() {
                                return;
                            }
                        }
                        continue;
                    }
                    let (reply, close) = scripted(method, path);
                    if s.write_all(&reply).await.is_err() || close {
                        return;
                    }
                }
            });
        }
    });
    (addr, counts, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_framings_reach_the_client_intact() {
    let (up, _, _task) = scripted_upstream().await;
    let proxy = start(&one_cluster(up)).await;
    let c = http1();
    let addr = proxy.addr();

    let r = get(&c, addr, "x", "/length").await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "hello"));
    assert_eq!(r.headers["x-s"], "1");
    // A response that arrives a byte at a time reads the same.
    let r = get(&c, addr, "x", "/trickle").await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "hello"));
    assert_eq!(r.headers["x-s"], "1");
    // And so does a request (on the fast path) written a byte at a time.
    let trickled = async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.set_nodelay(true).unwrap();
        for b in b"GET /length HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n" {
            s.write_all(&[*b]).await.unwrap();
        }
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        String::from_utf8_lossy(&out).into_owned()
    };
    let out = tokio::time::timeout(REQUEST_BOUND, trickled).await.unwrap();
    assert!(
        out.starts_with("HTTP/1.1 200 OK\r\n") && out.ends_with("hello"),
        "{out}"
    );
    let r = get(&c, addr, "x", "/chunked").await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "hello world"));
    assert!(r.headers.get("x-trailer").is_none());
    let r = get(&c, addr, "x", "/until-close").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (StatusCode::OK, "until the end")
    );
    let r = get(&c, addr, "x", "/big").await;
    assert_eq!(r.body.len(), 200_000);
    assert!(r.body.bytes().all(|b| b == b'y'));
    let r = get(&c, addr, "x", "/interim").await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "ok"));
    let r = get(&c, addr, "x", "/no-content").await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::NO_CONTENT, ""));
    assert_eq!(r.headers["x-s"], "2");

    // HEAD keeps the upstream's length and sends no body.
    let head = raw(
        addr,
        "HEAD /head HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("\r\ncontent-length: 1234\r\n"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "{head}");
    // An upstream HEAD answer without a length gets none made up for it.
    let head = raw(
        addr,
        "HEAD /head-chunked HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(!head.contains("content-length"), "{head}");

    // Responses that are not HTTP as the client reads it are not guessed at.
    for path in ["/conflicting", "/garbage"] {
        let r = get(&c, addr, "x", path).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(r.body, "upstream reset\n", "{path}");
    }
    // And the connections that served them are not reused.
    let r = get(&c, addr, "x", "/length").await;
    assert_eq!(r.body, "hello");

    // A transfer coding beside a length: the coding frames the body, and
    // the stale length is not passed on, on either downstream path.
    for client in [http1(), h2c()] {
        let r = get(&client, addr, "x", "/te-and-cl").await;
        assert_eq!(r.body, "0123456789", "{:?}", r.version);
        assert!(r.headers.get("content-length").is_none_or(|v| v == "10"));
    }
}

/// The upstream's fields pass on as they came (names as spelled, order and
/// repeats kept, its `date` the only one), minus the hop-by-hop ones and the
/// ones `connection` names; on the fast path as raw lines, through hyper
/// (h2c) as a header map, and as a map again when a route edits them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_fields_pass_through_minus_hop_by_hop() {
    let (up, _, _task) = scripted_upstream().await;
    let upstream_date = "Mon, 02 Jan 2006 15:04:05 GMT";
    let proxy = start(&one_cluster(up)).await;
    let out = raw(
        proxy.addr(),
        "GET /fields HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    assert_eq!(body, "ok");
    let lines: Vec<&str> = head.split("\r\n").collect();
    assert_eq!(lines[0], "HTTP/1.1 200 OK");
    let named = |n: &str| -> Vec<&str> {
        lines[1..]
            .iter()
            .filter_map(|l| l.split_once(": "))
            .filter(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v)
            .collect()
    };
    assert_eq!(named("x-custom"), ["A b"], "{head}");
    assert!(
        head.contains("\r\nX-Custom: A b\r\n"),
        "spelled as sent: {head}"
    );
    assert_eq!(named("set-cookie"), ["a=1", "b=2"], "{head}");
    assert_eq!(named("server"), ["scripted"], "{head}");
    assert_eq!(named("date"), [upstream_date], "{head}");
    assert_eq!(named("content-length"), ["2"], "{head}");
    for gone in ["x-hop", "keep-alive"] {
        assert!(named(gone).is_empty(), "{gone}: {head}");
    }
    assert_eq!(named("connection"), ["close"], "{head}");

    let r = get(&h2c(), proxy.addr(), "x", "/fields").await;
    assert_eq!(r.body, "ok");
    assert_eq!(r.headers["x-custom"], "A b");
    let cookies: Vec<_> = r.headers.get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    assert_eq!(r.headers["date"], upstream_date);
    assert!(r.headers.get("x-hop").is_none() && r.headers.get("keep-alive").is_none());

    // Equal repeated lengths are one length, sent once, on every path.
    for client in [http1(), h2c()] {
        let r = get(&client, proxy.addr(), "x", "/twice-the-length").await;
        assert_eq!(r.body, "ok", "{:?}", r.version);
        let lengths: Vec<_> = r.headers.get_all("content-length").iter().collect();
        assert!(lengths.is_empty() || lengths == ["2"], "{lengths:?}");
    }
    let out = raw(
        proxy.addr(),
        "HEAD /twice-the-length HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(
        out.to_ascii_lowercase()
            .matches("content-length: 2\r\n")
            .count(),
        1,
        "{out}"
    );
    // No length on a 204 (RFC 9110 section 8.6), even for HEAD; upgrade is
    // hop-by-hop.
    let out = raw(
        proxy.addr(),
        "HEAD /head-no-content HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 204 No Content\r\n"), "{out}");
    let lower = out.to_ascii_lowercase();
    assert!(
        !lower.contains("content-length") && !lower.contains("upgrade"),
        "{out}"
    );

    // A route that edits response fields gets them as a map, on both paths.
    let edited = format!(
        r#"
clusters: [{{name: c, endpoints: ["{up}"]}}]
routes:
  virtual_hosts:
    - name: all
      domains: ["*"]
      routes:
        - name: r
          match: {{prefix: /}}
          action: {{cluster: c}}
          response_headers_to_remove: [server]
          response_headers_to_add: [{{header: {{key: x-added, value: "1"}}}}]
"#
    );
    let proxy = start(&edited).await;
    for client in [http1(), h2c()] {
        let r = get(&client, proxy.addr(), "x", "/fields").await;
        assert_eq!(r.body, "ok");
        assert_eq!(r.headers["x-added"], "1");
        assert!(r.headers.get("server").is_none());
        assert_eq!(r.headers["x-custom"], "A b");
        assert_eq!(r.headers.get_all("set-cookie").iter().count(), 2);
        assert_eq!(r.headers["date"], upstream_date);
        assert_eq!(r.headers["content-length"], "2");
        assert!(r.headers.get("x-hop").is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_idempotent_requests_are_sent_twice_after_a_dead_connection() {
    let (up, counts, _task) = scripted_upstream().await;
    let proxy = start(&one_cluster(up)).await;
    let addr = proxy.addr();
    let warm = || async { get(&http1(), addr, "x", "/length").await };
    // A POST without a body on a pooled connection that the upstream reads
    // and closes: it may have acted on it, so it is not sent again.
    warm().await;
    let out = raw(
        addr,
        "POST /read-and-close HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 503 "), "{out}");
    assert_eq!(counts.read_and_close.load(Ordering::Relaxed), 1);
    // A GET is: once on the pooled connection, once on a new one.
    warm().await;
    let r = get(&http1(), addr, "x", "/read-and-close").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(counts.read_and_close.load(Ordering::Relaxed), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_connections_are_reused_and_dead_ones_are_not_trusted() {
    let (up, counts, _task) = scripted_upstream().await;
    let conns = &counts.connections;
    let proxy = start(&one_cluster(up)).await;
    let c = http1();
    for _ in 0..20 {
        assert_eq!(get(&c, proxy.addr(), "x", "/length").await.body, "hello");
    }
    // Sequential requests share one upstream connection.
    assert_eq!(conns.load(Ordering::Relaxed), 1);

    // An upstream that closes every connection after one answer (and says
    // nothing about it): each pooled connection is dead by the next
    // request, which must still succeed.
    for i in 0..20 {
        let r = get(&c, proxy.addr(), "x", "/answer-and-close").await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (StatusCode::OK, "ok"),
            "request {i}"
        );
    }
    // The first of them reused the live connection; every later one needed
    // a new connection.
    assert_eq!(conns.load(Ordering::Relaxed), 20);
}

/// Writes `wire` to the proxy and reads until it closes the connection.
async fn raw(addr: SocketAddr, wire: &str) -> String {
    let io = async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(wire.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        String::from_utf8_lossy(&out).into_owned()
    };
    tokio::time::timeout(REQUEST_BOUND, io)
        .await
        .expect("the proxy closes the connection")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_keep_their_order_across_the_hand_over() {
    let echo = Upstream::new("echo").spawn().await.unwrap();
    let proxy = start(&one_cluster(echo.addr())).await;
    // Two requests for the fast path, one with a body (hyper takes the
    // connection over), one more after it; all in one write.
    let out = raw(
        proxy.addr(),
        "GET /a HTTP/1.1\r\nhost: x\r\n\r\n\
         GET /b HTTP/1.1\r\nhost: x\r\n\r\n\
         POST /c HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc\
         GET /d HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(out.matches("HTTP/1.1 200 OK\r\n").count(), 4, "{out}");
    let at = |needle: &str| {
        out.find(needle)
            .unwrap_or_else(|| panic!("{needle} missing: {out}"))
    };
    assert!(at("\"path\":\"/a\"") < at("\"path\":\"/b\""));
    assert!(at("\"path\":\"/b\"") < at("\"path\":\"/c\""));
    assert!(at("\"path\":\"/c\"") < at("\"path\":\"/d\""));
    assert!(out.contains("\"body_len\":3"), "{out}");
    assert_eq!(echo.served(), 4);

    // Every line of x-forwarded-for is kept, in order, before the client.
    let out = raw(
        proxy.addr(),
        "GET /xff HTTP/1.1\r\nhost: x\r\nx-forwarded-for: 1.1.1.1\r\nx-forwarded-for: 2.2.2.2, 3.3.3.3\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(
        out.contains("\"x-forwarded-for\":\"1.1.1.1, 2.2.2.2, 3.3.3.3, 127.0.0.1\""),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_request_body_goes_upstream_chunked_and_whole() {
    let echo = Upstream::new("echo").spawn().await.unwrap();
    let proxy = start(&one_cluster(echo.addr())).await;
    // A body of unknown length (chunked downstream) is sent chunked
    // upstream; the echo counts every byte of it.
    let out = raw(
        proxy.addr(),
        "POST /up HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n\
         5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.contains("\"body_len\":8"), "{out}");
    assert!(out.contains("\"transfer-encoding\":\"chunked\""), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fast_path_closes_when_asked_and_hands_odd_requests_to_hyper() {
    let echo = Upstream::new("echo").spawn().await.unwrap();
    let proxy = start(&one_cluster(echo.addr())).await;
    let out = raw(
        proxy.addr(),
        "GET /a HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\nGET /never HTTP/1.1\r\nhost: x\r\n\r\n",
    )
    .await;
    assert_eq!(out.matches("HTTP/1.1 ").count(), 1, "{out}");
    assert!(out.contains("\r\ndate: "), "{out}");
    assert!(out.contains("\r\nconnection: close\r\n"), "{out}");
    assert!(out.contains("\"path\":\"/a\""), "{out}");

    // HTTP/1.0: hyper answers, and closes (no keep-alive asked for).
    let out = raw(proxy.addr(), "GET /old HTTP/1.0\r\nhost: x\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.0 200 OK\r\n"), "{out}");
    assert!(out.contains("\"path\":\"/old\""), "{out}");

    // A malformed request line gets hyper's 400.
    let out = raw(proxy.addr(), "GET /a b c\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out}");

    // Two Host fields: 400 on both paths, nothing reaches the upstream.
    for wire in [
        "GET /two HTTP/1.1\r\nhost: a\r\nhost: evil\r\nconnection: close\r\n\r\n",
        "POST /two HTTP/1.1\r\nhost: a\r\nhost: evil\r\ncontent-length: 1\r\nconnection: close\r\n\r\nx",
    ] {
        let out = raw(proxy.addr(), wire).await;
        assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out}");
        assert!(out.contains("multiple host headers"), "{out}");
    }
    assert_eq!(echo.served(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_requests_answered_locally_carry_their_length() {
    let proxy = start(
        r#"
routes:
  virtual_hosts:
    - name: all
      domains: ["*"]
      routes: [{name: r, match: {prefix: /}, action: {direct_response: {status: 200, body: "twelve bytes"}}}]
"#,
    )
    .await;
    let out = raw(
        proxy.addr(),
        "HEAD / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.contains("\r\ncontent-length: 12\r\n"), "{out}");
    assert!(out.ends_with("\r\n\r\n"), "no body: {out}");
}
