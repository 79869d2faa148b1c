//! What every subcommand sets up the same way: where Plannt keeps its files (the XDG
//! directories, overridable by environment), the user's settings, the wallet a backend URI
//! names, the ledger, and the paying client over them.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use plannt_client::{Client, Ledger, Policy, Settings, Timeouts, WalletApi, default_path};
use plannt_lightning::{BackendUri, Context, Wallet};

use crate::error::Error;

/// `PLANNT_DATA_DIR`, else `$XDG_DATA_HOME/plannt`, else `~/.local/share/plannt`.
pub fn data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PLANNT_DATA_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("plannt");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".local/share/plannt")
}

/// The ledger every command shares: `ledger.sqlite` under the data directory.
pub fn open_ledger() -> Result<Ledger, Error> {
    Ok(Ledger::open(&data_dir().join("ledger.sqlite"))?)
}

/// The user's settings: the config file, then the environment.
pub fn settings() -> Result<Settings, Error> {
    let env = |k: &str| std::env::var(k).ok();
    Ok(Settings::load(&default_path(&env), &env)?)
}

/// The backend URI of `--wallet`, else the settings'.
pub fn wallet_uri(wallet: Option<&str>, settings: &Settings) -> Result<BackendUri, Error> {
    wallet
        .unwrap_or(&settings.wallet)
        .parse()
        .map_err(Error::other)
}

/// Opens the wallet `uri` names, its files (a dev network's) under the data directory.
pub fn open_wallet(uri: &BackendUri) -> Result<Arc<dyn Wallet>, Error> {
    plannt_lightning::open(uri, &Context::new(data_dir()))
        .map(|opened| opened.wallet)
        .map_err(Error::other)
}

/// How to open the client: the wallet, the policy, and what a command adds.
pub struct Setup<'a> {
    /// The wallet URI given on the command line, if any.
    pub wallet: Option<&'a str>,
    /// The policy.
    pub policy: Policy,
    /// The most redirects to follow (0: none).
    pub redirects: usize,
    /// Host names pinned to addresses.
    pub pins: Vec<(String, Vec<IpAddr>)>,
    /// How long a connection and a whole request may take.
    pub timeouts: Timeouts,
}

/// Opens the wallet, the ledger and the client, finishes any payment a crash left pending, and
/// closes the prepaid sessions idle past their server's timeout.
/// The client never sends a request to the wallet's own API.
pub async fn open_client(settings: &Settings, setup: Setup<'_>) -> Result<Client, Error> {
    let uri = wallet_uri(setup.wallet, settings)?;
    let wallet = open_wallet(&uri)?;
    let ledger = open_ledger()?;
    let mut builder = Client::builder(wallet.clone(), ledger, setup.policy)
        .return_invoices(wallet)
        .wallet_api(WalletApi::of(&uri))
        .follow_redirects(setup.redirects)
        .timeouts(setup.timeouts);
    for (host, addresses) in &setup.pins {
        builder = builder.resolve(host, addresses);
    }
    let client = builder.build();
    client.recover().await?;
    Ok(client)
}
