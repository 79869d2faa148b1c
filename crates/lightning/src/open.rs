//! Opening the backend a URI names.

use std::path::PathBuf;
use std::sync::Arc;

use crate::dev::http::DevHttp;
use crate::dev::{DEFAULT_STARTING_BALANCE_SATS, DevNetwork};
use crate::{BackendUri, Cln, LnBits, Lnd, Nwc, Phoenixd, Wallet};

/// What opening a backend may need from the process.
#[derive(Debug, Clone)]
pub struct Context {
    /// Plannt's data directory (the dev node key lives there).
    pub data_dir: PathBuf,
    /// Test sats each new dev account starts with.
    pub dev_starting_balance_sats: u64,
}

impl Context {
    /// A context with the default dev balance.
    pub fn new(data_dir: PathBuf) -> Self {
        Context {
            data_dir,
            dev_starting_balance_sats: DEFAULT_STARTING_BALANCE_SATS,
        }
    }
}

/// Why a backend could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The backend is not part of this build.
    #[error(
        "the {0} backend is not available in this build of Plannt yet; use dev, lnbits, lnd, cln, phoenixd or nwc"
    )]
    Unsupported(&'static str),
    /// The URI names something unusable (an NWC key that is not a valid key).
    #[error("{0}")]
    Invalid(String),
    /// A file it needs could not be read or written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Opens the backend a URI names, as a wallet that can issue and pay.
pub fn open(uri: &BackendUri, context: &Context) -> Result<Arc<dyn Wallet>, OpenError> {
    Ok(match uri {
        BackendUri::Dev { account } => {
            let network = DevNetwork::open(&context.data_dir, context.dev_starting_balance_sats)?;
            Arc::new(network.wallet(account))
        }
        BackendUri::DevHttp { url, account } => Arc::new(DevHttp::new(url.clone(), account)),
        BackendUri::LnBits { url, key, network } => {
            Arc::new(LnBits::new(url.clone(), key.clone(), *network))
        }
        BackendUri::Lnd {
            url,
            macaroon,
            cert,
            network,
        } => Arc::new(Lnd::open(url, macaroon, cert.as_deref(), *network)?),
        BackendUri::Cln { url, rune, network } => {
            Arc::new(Cln::new(url.clone(), rune.clone(), *network))
        }
        BackendUri::Phoenixd {
            url,
            password,
            network,
        } => Arc::new(Phoenixd::new(url.clone(), password.clone(), *network)),
        BackendUri::Nwc {
            wallet_pubkey,
            relays,
            secret,
            network,
            ..
        } => Arc::new(
            Nwc::new(wallet_pubkey, relays.clone(), secret, *network)
                .map_err(|e| OpenError::Invalid(e.to_string()))?,
        ),
    })
}
