//! A small upstream HTTP server for the demo and the tests: answers every
//! request with a JSON description of what it received.
//!
//! ```json
//! {"upstream": "blue", "method": "GET", "path": "/x?y=1", "headers": {"host": "a.example", ...}, "body_len": 0}
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::proxy::{full, Body};

/// How an upstream answers.
#[derive(Debug, Clone)]
pub struct Upstream {
    name: String,
    status: u16,
    delay: Duration,
    headers: Vec<(http::HeaderName, HeaderValue)>,
}

impl Upstream {
    /// An upstream that answers 200 at once.
    pub fn new(name: impl Into<String>) -> Upstream {
        Upstream {
            name: name.into(),
            status: 200,
            delay: Duration::ZERO,
            headers: Vec::new(),
        }
    }

    /// Answers with `status`.
    pub fn status(mut self, status: u16) -> Upstream {
        self.status = status;
        self
    }

    /// Adds a field to every answer (a `location` for a redirect, say).
    ///
    /// # Panics
    ///
    /// When `name` or `value` is not a valid field name or value.
    pub fn header(mut self, name: &str, value: &str) -> Upstream {
        let name = http::HeaderName::from_bytes(name.as_bytes()).expect("a valid field name");
        let value = HeaderValue::from_str(value).expect("a valid field value");
        self.headers.push((name, value));
        self
    }

    /// Waits `delay` before answering.
    pub fn delay(mut self, delay: Duration) -> Upstream {
        self.delay = delay;
        self
    }

    /// Binds 127.0.0.1 on an ephemeral port and serves.
    ///
    /// # Errors
    ///
    /// The bind error.
    pub async fn spawn(self) -> std::io::Result<RunningUpstream> {
        self.spawn_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Binds `addr` and serves.
    ///
    /// # Errors
    ///
    /// The bind error.
    pub async fn spawn_on(self, addr: SocketAddr) -> std::io::Result<RunningUpstream> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let served = Arc::new(AtomicU64::new(0));
        let body_bytes = Arc::new(AtomicU64::new(0));
        let me = Arc::new(self);
        let count = Arc::clone(&served);
        let bytes = Arc::clone(&body_bytes);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let me = Arc::clone(&me);
                let count = Arc::clone(&count);
                let bytes = Arc::clone(&bytes);
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let me = Arc::clone(&me);
                        let count = Arc::clone(&count);
                        let bytes = Arc::clone(&bytes);
                        async move {
                            Ok::<_, std::convert::Infallible>(me.answer(req, &count, &bytes).await)
                        }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(RunningUpstream {
            addr,
            served,
            body_bytes,
            task,
        })
    }

    async fn answer(
        &self,
        req: Request<Incoming>,
        count: &AtomicU64,
        bytes: &AtomicU64,
    ) -> Response<Body> {
        count.fetch_add(1, Ordering::Relaxed);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        for (n, v) in req.headers() {
            let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
            headers
                .entry(n.as_str().to_owned())
                .and_modify(|e| {
                    e.push_str(", ");
                    e.push_str(&v);
                })
                .or_insert(v);
        }
        let method = req.method().as_str().to_owned();
        let path = req
            .uri()
            .path_and_query()
            .map_or("/".to_owned(), |p| p.as_str().to_owned());
        let body_len = match req.into_body().collect().await {
            Ok(b) => b.to_bytes().len(),
            Err(_) => 0,
        };
        bytes.fetch_add(body_len as u64, Ordering::Relaxed);
        let body = serde_json::json!({
            "upstream": self.name,
            "method": method,
            "path": path,
            "headers": headers,
            "body_len": body_len,
        });
        let mut text = body.to_string();
        text.push('\n');
        let mut r = Response::new(full(text));
        *r.status_mut() = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Ok(v) = HeaderValue::from_str(&self.name) {
            r.headers_mut().insert("x-upstream", v);
        }
        for (n, v) in &self.headers {
            r.headers_mut().append(n.clone(), v.clone());
        }
        r
    }
}

/// A serving upstream; dropping it stops accepting.
#[derive(Debug)]
pub struct RunningUpstream {
    addr: SocketAddr,
    served: Arc<AtomicU64>,
    body_bytes: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl RunningUpstream {
    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests answered so far.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// Bytes of the request bodies received whole so far (a body that
    /// failed counts nothing).
    pub fn body_bytes(&self) -> u64 {
        self.body_bytes.load(Ordering::Relaxed)
    }
}

impl Drop for RunningUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}
