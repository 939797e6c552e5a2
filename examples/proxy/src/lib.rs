//! rauta-proxy: the reference proxy built on the RAUTA crates.
//!
//! HTTP/1.1 and h2c in (a fast path for body-less HTTP/1.1 requests, hyper 1
//! for the rest: [`downstream`]), routed by [`rauta_router`], balanced by
//! [`rauta_balance`], counted by [`rauta_stats`], forwarded over a pooled
//! HTTP/1.1 client ([`h1`]). It is meant to be read and copied: each module
//! is one concern.
//!
//! | module | what it does |
//! |---|---|
//! | [`config`] | the YAML file: listeners, clusters, and a rauta-router route config |
//! | [`cluster`] | a balancer per cluster; passive outlier ejection |
//! | [`state`] | table + clusters + route stats, swapped as one piece on reload |
//! | [`proxy`] | one request: route, answer locally or forward with retries and timeouts |
//! | [`downstream`] | downstream connections: an HTTP/1.1 fast path, hyper for the rest |
//! | [`h1`] | the upstream HTTP/1.1 client and its connection pool |
//! | [`admin`] | `/metrics`, `/ready`, `/config`, `/routes` |
//! | [`upstream`] | a small HTTP server for the demo and the tests |
//! | [`demo`] | `rauta-proxy --demo` |
//! | `xdp` | `--xdp IFACE`: rauta-xdp in front (cargo feature `xdp`) |
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = rauta_proxy::config::ProxyConfig::from_yaml(&std::fs::read_to_string("proxy.yaml")?)?;
//! let proxy = rauta_proxy::Proxy::start(config, rauta_proxy::Options::default()).await?;
//! println!("serving on {}", proxy.addr());
//! # Ok(()) }
//! ```
//!
//! See `docs/proxy.md` for the configuration, the behaviour on errors, and
//! hot reload.
#![forbid(unsafe_code)]

pub mod admin;
pub mod cluster;
pub mod config;
pub mod deadline;
pub mod demo;
pub mod downstream;
pub mod h1;
pub mod mirror;
pub mod proxy;
pub mod redirect;
pub mod state;
pub mod upstream;
#[cfg(feature = "xdp")]
pub mod xdp;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::{ConfigError, ProxyConfig};
use crate::state::{FileWatch, State};

/// Where to listen and what to watch.
#[derive(Debug, Clone)]
pub struct Options {
    /// Data listener (default 127.0.0.1:8080; port 0 picks one).
    pub listen: SocketAddr,
    /// Admin listener (default 127.0.0.1:9901), or none.
    pub admin: Option<SocketAddr>,
    /// A configuration file to reload when it changes.
    pub watch: Option<PathBuf>,
    /// How often to look at the watched file.
    pub watch_interval: Duration,
    /// Reload the watched file on SIGHUP (installs a process-wide handler).
    pub sighup: bool,
    /// Attach the XDP classifier to this interface (cargo feature `xdp`).
    pub xdp: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin: Some(SocketAddr::from(([127, 0, 0, 1], 9901))),
            watch: None,
            watch_interval: Duration::from_secs(1),
            sighup: false,
            xdp: None,
        }
    }
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `--xdp` failed, or the binary was built without the `xdp` feature.
    #[error("xdp: {0}")]
    Xdp(String),
    /// A listener could not be bound.
    #[error("bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

/// A running proxy. Dropping it stops the listeners and background tasks.
#[derive(Debug)]
pub struct Proxy {
    state: Arc<State>,
    addr: SocketAddr,
    admin: Option<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

impl Proxy {
    /// Binds the listeners and starts serving `config` on the current tokio
    /// runtime.
    ///
    /// # Errors
    ///
    /// An invalid configuration or a listener that cannot be bound.
    pub async fn start(config: ProxyConfig, options: Options) -> Result<Proxy, StartError> {
        #[cfg(feature = "xdp")]
        let xdp = match &options.xdp {
            Some(iface) => Some(
                xdp::Xdp::attach(iface, &config.xdp.clone().unwrap_or_default())
                    .map_err(|e| StartError::Xdp(e.to_string()))?,
            ),
            None => None,
        };
        #[cfg(not(feature = "xdp"))]
        if options.xdp.is_some() {
            return Err(StartError::Xdp(
                "this binary was built without the `xdp` feature".into(),
            ));
        }
        #[allow(unused_mut)]
        let mut state = State::new(config)?;
        #[cfg(feature = "xdp")]
        state.set_xdp(xdp);
        let state = Arc::new(state);
        let listener = bind(options.listen).await?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: options.listen,
            source,
        })?;
        let mut tasks = vec![tokio::spawn(serve(listener, Arc::clone(&state)))];
        let mut admin = None;
        if let Some(a) = options.admin {
            let l = bind(a).await?;
            admin = l.local_addr().ok();
            tasks.push(tokio::spawn(serve_admin(l, Arc::clone(&state))));
        }
        // Re-admit ejected endpoints when their time is up.
        let s = Arc::clone(&state);
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                s.expire_ejections();
            }
        }));
        if let Some(path) = options.watch.clone() {
            let s = Arc::clone(&state);
            let every = options.watch_interval;
            tasks.push(tokio::spawn(watch(s, path, every)));
        }
        if options.sighup {
            if let Some(path) = options.watch.clone() {
                // Registered before `start` returns, so a SIGHUP sent once the
                // listener is up never meets the default action (exit).
                use tokio::signal::unix::{signal, SignalKind};
                match signal(SignalKind::hangup()) {
                    Ok(hup) => tasks.push(tokio::spawn(sighup(Arc::clone(&state), path, hup))),
                    Err(e) => tracing::error!(error = %e, "cannot install the SIGHUP handler"),
                }
            }
        }
        tracing::info!(%addr, admin = ?admin, version = %state.version(), "rauta-proxy serving");
        Ok(Proxy {
            state,
            addr,
            admin,
            tasks,
        })
    }

    /// The data listener's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin listener's address, if any.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
    }

    /// The shared state (reload, version, stats).
    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// Waits until the listener task ends (it ends only on an accept error
    /// or when the proxy is dropped).
    pub async fn wait(mut self) {
        if !self.tasks.is_empty() {
            let t = self.tasks.remove(0);
            let _ = t.await;
        }
    }
}

async fn serve(listener: TcpListener, state: Arc<State>) {
    let client = proxy::client();
    // Closes upstream connections idle past their timeout; stops with this
    // task.
    struct AbortOnDrop(JoinHandle<()>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let _reaper = AbortOnDrop(client.spawn_reaper(Duration::from_secs(5)));
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: back off, keep going.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(downstream::serve(
            stream,
            remote,
            Arc::clone(&state),
            client.clone(),
        ));
    }
}

async fn serve_admin(listener: TcpListener, state: Arc<State>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let svc = service_fn(move |req| admin::handle(Arc::clone(&state), req));
            let conn = auto::Builder::new(TokioExecutor::new());
            let _ = conn.serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

async fn watch(state: Arc<State>, path: PathBuf, every: Duration) {
    let mut w = FileWatch::new(path);
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        if w.changed() {
            // Already serving this text (a SIGHUP got there first): nothing to do.
            let same = std::fs::read_to_string(w.path())
                .is_ok_and(|t| config::text_hash(&t) == state.runtime().text_hash);
            if !same {
                tracing::info!(path = %w.path().display(), "configuration file changed");
                let _ = state.reload_file(w.path());
            }
        }
    }
}

async fn sighup(state: Arc<State>, path: PathBuf, mut hup: tokio::signal::unix::Signal) {
    while hup.recv().await.is_some() {
        tracing::info!(path = %path.display(), "SIGHUP: reloading");
        let _ = state.reload_file(&path);
    }
}
