//! `rauta-proxy`: run the reference proxy on a configuration file, or on
//! the built-in demo.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use rauta_proxy::config::ProxyConfig;
use rauta_proxy::{demo, Options, Proxy};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "\
usage: rauta-proxy --config FILE [options]
       rauta-proxy --demo [options]

options:
  --config FILE     proxy configuration (YAML, see docs/proxy.md); reloaded on
                    SIGHUP and when the file changes
  --demo            start four upstreams in-process and a demo configuration
  --listen ADDR     data listener (default: the file's `listen`, else 127.0.0.1:8080)
  --admin ADDR      admin listener (default: the file's `admin`, else 127.0.0.1:9901);
                    `none` disables it
  --threads N       worker threads (default 2)
  --check           validate the configuration and exit
  --xdp IFACE       attach the rauta-xdp classifier to IFACE with the file's `xdp:`
                    deny lists (needs root and a build with `--features xdp`)

Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=warn to silence the access log).
";

#[derive(Debug, Default)]
struct Args {
    config: Option<PathBuf>,
    demo: bool,
    listen: Option<SocketAddr>,
    admin: Option<Option<SocketAddr>>,
    threads: usize,
    check: bool,
    xdp: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        threads: 2,
        ..Args::default()
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--config" | "-c" => args.config = Some(PathBuf::from(value("--config")?)),
            "--demo" => args.demo = true,
            "--xdp" => args.xdp = Some(value("--xdp")?),
            "--check" => args.check = true,
            "--listen" => {
                let v = value("--listen")?;
                args.listen = Some(v.parse().map_err(|e| format!("--listen {v}: {e}"))?);
            }
            "--admin" => {
                let v = value("--admin")?;
                args.admin = Some(if v == "none" {
                    None
                } else {
                    Some(v.parse().map_err(|e| format!("--admin {v}: {e}"))?)
                });
            }
            "--threads" => {
                let v = value("--threads")?;
                args.threads = v
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or(format!("--threads {v}: expected a positive number"))?;
            }
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.demo == args.config.is_some() {
        return Err("give exactly one of --config FILE and --demo".into());
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("rauta-proxy: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // One worker: a current-thread runtime (no work stealing, no cross-thread
    // wake-ups). More: the multi-thread scheduler.
    let mut builder = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(args.threads);
        b
    };
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rauta-proxy: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rauta-proxy: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut demo_upstreams = None;
    let (text, watch) = match &args.config {
        Some(path) => (
            std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?,
            Some(path.clone()),
        ),
        None => {
            let ups = demo::Upstreams::start().await?;
            let text = ups.config();
            demo_upstreams = Some(ups);
            (text, None)
        }
    };
    let config = ProxyConfig::from_yaml(&text)?;
    if args.check {
        println!(
            "ok: {} clusters, {} routes",
            config.clusters.len(),
            config.table.route_count()
        );
        return Ok(());
    }
    let defaults = Options::default();
    let options = Options {
        listen: args.listen.or(config.listen).unwrap_or(defaults.listen),
        admin: args.admin.unwrap_or(config.admin.or(defaults.admin)),
        sighup: watch.is_some(),
        watch,
        xdp: args.xdp.clone(),
        ..defaults
    };
    let proxy = Proxy::start(config, options).await?;
    let admin = proxy
        .admin_addr()
        .map_or("off".to_string(), |a| format!("http://{a}"));
    // The first line of stdout names the listeners (scripts and tests read it).
    println!(
        "rauta-proxy listening on http://{} (admin {admin})",
        proxy.addr()
    );
    if demo_upstreams.is_some() {
        println!(
            "demo: four upstreams on loopback, routes in rauta_proxy::demo. Try:\n\n{}",
            demo::curl_commands(proxy.addr(), proxy.admin_addr())
        );
    }
    tokio::select! {
        _ = proxy.wait() => {}
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted, exiting"),
    }
    drop(demo_upstreams);
    Ok(())
}
