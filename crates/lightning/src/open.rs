//! Opening the backend a URI names.

use std::path::PathBuf;
use std::sync::Arc;

#[cfg(feature = "cln")]
use crate::Cln;
#[cfg(feature = "lnbits")]
use crate::LnBits;
#[cfg(feature = "lnd")]
use crate::Lnd;
#[cfg(feature = "nwc")]
use crate::Nwc;
#[cfg(feature = "phoenixd")]
use crate::Phoenixd;
#[cfg(feature = "dev-http")]
use crate::dev::http::DevHttp;
use crate::dev::{DEFAULT_STARTING_BALANCE_SATS, DevNetwork};
use crate::{BackendUri, Wallet};

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
    /// The backend is not part of this build: plannt-lightning was built without its feature.
    #[error(
        "the {backend} backend is not part of this build of Plannt: build plannt-lightning with its `{feature}` feature"
    )]
    Unsupported {
        /// The backend the URI names (`lnd`, `dev+http`, …).
        backend: &'static str,
        /// The cargo feature of plannt-lightning that builds it.
        feature: &'static str,
    },
    /// The URI names something unusable (an NWC key that is not a valid key).
    #[error("{0}")]
    Invalid(String),
    /// A file it needs could not be read or written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A backend opened from its URI.
pub struct Opened {
    /// The wallet: issues invoices and pays them.
    pub wallet: Arc<dyn Wallet>,
    /// The embedded dev network, when the URI named it (`dev`): a gateway serves it to wallets
    /// in other processes (`dev+http://`).
    pub dev: Option<DevNetwork>,
}

/// Opens the backend a URI names, as a wallet that can issue and pay.
pub fn open(uri: &BackendUri, context: &Context) -> Result<Opened, OpenError> {
    if let BackendUri::Dev { account } = uri {
        let network = DevNetwork::open(&context.data_dir, context.dev_starting_balance_sats)?;
        return Ok(Opened {
            wallet: Arc::new(network.wallet(account)),
            dev: Some(network),
        });
    }
    let wallet: Result<Arc<dyn Wallet>, OpenError> = match uri {
        BackendUri::Dev { .. } => unreachable!("opened above"),
        #[cfg(feature = "dev-http")]
        BackendUri::DevHttp { url, account } => Ok(Arc::new(DevHttp::new(url.clone(), account))),
        #[cfg(feature = "lnbits")]
        BackendUri::LnBits { url, key, network } => {
            Ok(Arc::new(LnBits::new(url.clone(), key.clone(), *network)))
        }
        #[cfg(feature = "lnd")]
        BackendUri::Lnd {
            url,
            macaroon,
            cert,
            network,
        } => Ok(Arc::new(Lnd::open(
            url,
            macaroon,
            cert.as_deref(),
            *network,
        )?)),
        #[cfg(feature = "cln")]
        BackendUri::Cln { url, rune, network } => {
            Ok(Arc::new(Cln::new(url.clone(), rune.clone(), *network)))
        }
        #[cfg(feature = "phoenixd")]
        BackendUri::Phoenixd {
            url,
            password,
            network,
        } => Ok(Arc::new(Phoenixd::new(
            url.clone(),
            password.clone(),
            *network,
        ))),
        #[cfg(feature = "nwc")]
        BackendUri::Nwc {
            wallet_pubkey,
            relays,
            secret,
            network,
            ..
        } => Ok(Arc::new(
            Nwc::new(wallet_pubkey, relays.clone(), secret, *network)
                .map_err(|e| OpenError::Invalid(e.to_string()))?,
        )),
        // A backend this build leaves out: its URI parses, and says which feature builds it.
        #[allow(unreachable_patterns)]
        other => {
            let (backend, feature) = feature_of(other);
            Err(OpenError::Unsupported { backend, feature })
        }
    };
    Ok(Opened {
        wallet: wallet?,
        dev: None,
    })
}

/// The backend a URI names, and the cargo feature that builds it.
fn feature_of(uri: &BackendUri) -> (&'static str, &'static str) {
    match uri {
        BackendUri::Dev { .. } => unreachable!("the embedded dev network is always built"),
        BackendUri::DevHttp { .. } => ("dev+http", "dev-http"),
        BackendUri::LnBits { .. } => ("lnbits", "lnbits"),
        BackendUri::Lnd { .. } => ("lnd", "lnd"),
        BackendUri::Cln { .. } => ("cln", "cln"),
        BackendUri::Phoenixd { .. } => ("phoenixd", "phoenixd"),
        BackendUri::Nwc { .. } => ("nwc", "nwc"),
    }
}
