//! Shared helpers: a proxy in-process on loopback, a client, temp dirs.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode, Version};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rauta_proxy::config::ProxyConfig;
use rauta_proxy::{Options, Proxy};

/// A child process, killed and reaped however the test ends.
pub struct Proc(pub std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Every request in these tests is bounded by this.
pub const REQUEST_BOUND: Duration = Duration::from_secs(20);

pub type TestClient = Client<HttpConnector, Empty<Bytes>>;

pub fn http1() -> TestClient {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// An HTTP/1.1 client for requests whose bodies are `B`.
pub fn http1_with<B>() -> Client<HttpConnector, B>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// A request body of this many 1,000-byte frames and no length (an
/// HTTP/1.1 client sends it chunked).
pub struct Chunks(pub u32);

impl hyper::body::Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        if self.0 == 0 {
            return std::task::Poll::Ready(None);
        }
        self.0 -= 1;
        let data = Bytes::from_static(&[b'y'; 1000]);
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(data))))
    }
}

pub fn h2c() -> TestClient {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(HttpConnector::new())
}

/// Options for a test proxy: ephemeral data and admin ports on loopback.
pub fn options() -> Options {
    Options {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        admin: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        ..Options::default()
    }
}

pub async fn start(yaml: &str) -> Proxy {
    start_with(yaml, options()).await
}

pub async fn start_with(yaml: &str, options: Options) -> Proxy {
    let config = ProxyConfig::from_yaml(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    Proxy::start(config, options).await.expect("proxy starts")
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    /// The upstream that answered (from its JSON body).
    pub fn upstream(&self) -> String {
        self.json()["upstream"].as_str().unwrap_or("").to_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// A request header as the upstream saw it.
    pub fn seen(&self, name: &str) -> Option<String> {
        self.json()["headers"][name].as_str().map(str::to_owned)
    }
}

pub async fn send(
    client: &TestClient,
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Reply, String> {
    send_method(client, addr, "GET", host, path, headers).await
}

/// [`send`] with another method (and no body).
pub async fn send_method(
    client: &TestClient,
    addr: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Reply, String> {
    let mut b = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    if !host.is_empty() {
        b = b.header("host", host);
    }
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    let req = b.body(Empty::new()).map_err(|e| e.to_string())?;
    let fut = async {
        let resp = client.request(req).await.map_err(|e| format!("{e:?}"))?;
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(Reply {
            status: parts.status,
            version: parts.version,
            headers: parts.headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        })
    };
    tokio::time::timeout(REQUEST_BOUND, fut)
        .await
        .map_err(|_| "request took longer than the test bound".to_owned())?
}

pub async fn get(client: &TestClient, addr: SocketAddr, host: &str, path: &str) -> Reply {
    send(client, addr, host, path, &[]).await.expect("request")
}

/// Plain text of an admin endpoint.
pub async fn admin(proxy: &Proxy, path: &str) -> String {
    let addr = proxy.admin_addr().expect("admin listener");
    get(&http1(), addr, "", path).await.body
}

/// An address nothing listens on (bound, then closed).
pub fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A temporary directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "rauta-proxy-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls `f` every 50 ms until it is true or `bound` passes.
pub async fn eventually<F, Fut>(bound: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + bound;
    loop {
        if f().await {
            return true;
        }
        if tokio::time::Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
