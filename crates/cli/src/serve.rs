//! `plannt serve`: the gateway. `SIGHUP` reloads its configuration (the routes and their
//! prices; see `plannt_serve::admin`), as `POST /_plannt/admin/reload` does.

use std::path::PathBuf;
use std::sync::Arc;

use plannt_serve::{Config, ConfigError, Gateway};

use crate::error::Error;
use crate::setup;

#[derive(clap::Args, Clone)]
pub struct Args {
    /// The configuration file (TOML). Every key can also be set by PLANNT_<KEY>.
    #[arg(long, short, env = "PLANNT_CONFIG")]
    config: Option<PathBuf>,
    /// The address to listen on [env: PLANNT_LISTEN] [default: 127.0.0.1:8402].
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// The Lightning backend URI [env: PLANNT_LIGHTNING] [default: dev].
    #[arg(long)]
    lightning: Option<plannt_lightning::BackendUri>,
    /// The spent-token store: sqlite, sqlite:PATH, memory, redis://…, redis+cluster://…,
    /// redis+sentinel://… [env: PLANNT_STORE] [default: sqlite].
    #[arg(long)]
    store: Option<plannt_serve::config::Store>,
    /// Sell the demo service (/v1/demo, /v1/data, /v1/generate) through a real backend when the
    /// configuration gives no [[routes]] [env: PLANNT_DEMO_ROUTES=true]. Without it such a
    /// gateway refuses to start.
    #[arg(long)]
    demo_routes: bool,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "PLANNT_LOG_JSON")]
    log_json: bool,
}

/// The configuration: the file, then `PLANNT_*` variables, then the flags. A reload reads it
/// again the same way.
fn load(args: &Args) -> Result<Config, ConfigError> {
    let mut config = Config::load(args.config.as_deref(), |k| std::env::var(k).ok())?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(lightning) = &args.lightning {
        config.lightning = lightning.clone();
    }
    if let Some(store) = &args.store {
        config.store = store.clone();
    }
    config.demo_routes |= args.demo_routes;
    config.check("the command line")?;
    Ok(config)
}

pub async fn run(args: &Args) -> Result<(), Error> {
    crate::logging::init(args.log_json);
    without_huge_pages();
    let config = load(args).map_err(Error::other)?;
    let data_dir = config.data_dir.clone().unwrap_or_else(setup::data_dir);
    let listen = config.listen;
    // Listen first: an address in use stops the start before anything (a root key) is written.
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| Error::failed(format!("cannot listen on {listen}"), e))?;
    let addr = listener.local_addr().map_err(Error::other)?;
    let gateway = Gateway::build(config, data_dir)
        .await
        .map_err(Error::other)?;
    let again = args.clone();
    gateway.set_config_source(Arc::new(move || load(&again)));
    reload_on_hangup(&gateway);
    if gateway.dev_network.is_some() {
        tracing::warn!("{}", plannt_lightning::dev::WARNING);
        let wallet = format!("dev+http://{addr}");
        match try_path(&gateway.paywall().routes()) {
            Some(path) => tracing::info!(
                %wallet,
                "pay with: plannt get --wallet {wallet} http://{addr}{path}"
            ),
            None => tracing::info!(%wallet, "pay with: plannt get --wallet {wallet} URL"),
        }
    }
    for route in gateway.paywall().routes().routes() {
        match (&route.unavailable, route.price_sats) {
            (Some(why), _) => {
                tracing::info!(route = %route.id, path = %route.path, "not offered: {why}")
            }
            (None, Some(sats)) => {
                tracing::info!(route = %route.id, path = %route.path, sats, "paid route")
            }
            (None, None) => tracing::info!(route = %route.id, path = %route.path, "public route"),
        }
    }
    tracing::info!(%addr, "plannt gateway listening");
    gateway
        .serve(listener, shutdown_signal())
        .await
        .map_err(Error::other)?;
    tracing::info!("stopped");
    Ok(())
}

/// A path to try `plannt get` on: the first paid route that is offered and answers a GET (a
/// prefix route by its prefix), or none.
fn try_path(routes: &plannt_serve::gateway::RouteTable) -> Option<String> {
    routes
        .routes()
        .iter()
        .find(|r| {
            r.price_sats.is_some()
                && r.unavailable.is_none()
                && r.method
                    .as_ref()
                    .is_none_or(|m| m == axum::http::Method::GET)
        })
        .map(|r| r.path.clone())
}

/// Reloads the configuration on each `SIGHUP`; a refused one is logged and the running one kept.
fn reload_on_hangup(gateway: &Gateway) {
    #[cfg(unix)]
    {
        let reloader = gateway.reloader();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let mut hangups = match signal(SignalKind::hangup()) {
                Ok(hangups) => hangups,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGHUP: reload with POST /_plannt/admin/reload");
                    return;
                }
            };
            while hangups.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading the configuration");
                // A refusal is logged by the reload itself.
                let _ = reloader.reload().await;
            }
        });
    }
    #[cfg(not(unix))]
    let _ = gateway;
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// Turns transparent huge pages off for this process. mimalloc asks the kernel for huge pages
/// and gives back memory it has not used for 10 ms; each use after that faults in and zeroes
/// 2 MiB where it needed a few KiB. That was 8 to 11 % of the gateway's CPU on the paid path;
/// without it the memory and Redis stores served about 6 % more paid requests (docs/benchmarks.md,
/// run J). A kernel without the setting changes nothing.
fn without_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::debug!(error = %e, "transparent huge pages stay as the system sets them");
    }
}
