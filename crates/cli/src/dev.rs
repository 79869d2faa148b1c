//! `plannt dev`: the simulated Lightning network on its own, on loopback.
//!
//! `plannt serve` embeds the same network; this runs it alone, for wallets and tests in other
//! processes (`dev+http://127.0.0.1:PORT`).

use std::net::SocketAddr;

use plannt_lightning::dev::{DEFAULT_STARTING_BALANCE_SATS, DevNetwork, WARNING};

use crate::error::Error;
use crate::out::errln;
use crate::setup;

#[derive(clap::Args)]
pub struct Args {
    /// The address to listen on.
    #[arg(long, env = "PLANNT_LISTEN", default_value = "127.0.0.1:8402")]
    listen: SocketAddr,
    /// Test sats each new account starts with.
    #[arg(long, default_value_t = DEFAULT_STARTING_BALANCE_SATS)]
    starting_balance: u64,
    /// Listen on a non-loopback address too. Anyone who reaches it can move test sats.
    #[arg(long)]
    allow_remote: bool,
}

pub async fn run(args: &Args) -> Result<(), Error> {
    if !args.listen.ip().is_loopback() && !args.allow_remote {
        return Err(Error::Usage(format!(
            "refusing to serve the dev network on {}: it is not a loopback address (pass --allow-remote to do it anyway)",
            args.listen
        )));
    }
    let data_dir = setup::data_dir();
    let network = DevNetwork::open(&data_dir, args.starting_balance).map_err(|e| {
        Error::failed(
            format!("cannot open the dev network under {}", data_dir.display()),
            e,
        )
    })?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| Error::failed(format!("cannot listen on {}", args.listen), e))?;
    let addr = listener.local_addr().map_err(Error::other)?;
    errln!("{WARNING}");
    errln!("node {}", network.node_id());
    errln!("listening on http://{addr}  (wallet URI: dev+http://{addr})");
    axum::serve(listener, network.router())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(Error::other)
}
