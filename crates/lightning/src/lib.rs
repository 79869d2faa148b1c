//! The Lightning boundary: a trait for issuing invoices (the gateway side), a trait for paying
//! them (the client side), and the backends behind one URI syntax.
//!
//! ```text
//! dev                                      the embedded simulated network (no real money)
//! dev+http://127.0.0.1:8402                a dev network served by another process
//! lnbits+http://host:5000?key=…            LNbits (invoice key receives, admin key also pays)
//! lnd+https://host:8080?macaroon=…&cert=…  LND REST
//! cln+https://host:3010?rune=…             Core Lightning's clnrest
//! phoenixd+http://host:9740?password=…     phoenixd
//! nostr+walletconnect://<pubkey>?relay=…&secret=…   Nostr Wallet Connect (NIP-47)
//! ```
//!
//! Every backend checks `sha256(preimage) == payment_hash` itself before it reports a payment
//! as made: a backend's word is never enough.
//!
//! Each backend is a cargo feature, all on by default (`backends` names them all): `lnd`, `cln`,
//! `phoenixd`, `lnbits`, `nwc` (the only one that needs nostr-sdk) and `dev-http` (the dev
//! network's HTTP router and the `dev+http://` wallet). The embedded dev network
//! ([`dev::DevNetwork`]) is always built. A service that embeds only the gateway's layer needs
//! none of them. Without its feature a backend's URI still parses, and [`open`] answers
//! [`OpenError::Unsupported`] naming the feature to enable.

#[cfg(any(
    feature = "lnd",
    feature = "cln",
    feature = "phoenixd",
    feature = "lnbits",
    feature = "nwc",
    feature = "dev-http"
))]
mod backend;
#[cfg(feature = "cln")]
mod cln;
pub mod dev;
mod error;
#[cfg(any(
    feature = "lnd",
    feature = "cln",
    feature = "phoenixd",
    feature = "lnbits",
    feature = "dev-http"
))]
mod http;
pub mod invoice;
#[cfg(feature = "lnbits")]
mod lnbits;
#[cfg(feature = "lnd")]
mod lnd;
#[cfg(feature = "nwc")]
mod nwc;
mod open;
#[cfg(feature = "phoenixd")]
mod phoenixd;
mod secret;
mod tls;
mod types;
pub mod uri;

#[cfg(feature = "cln")]
pub use cln::Cln;
pub use error::LightningError;
#[cfg(any(
    feature = "lnd",
    feature = "cln",
    feature = "phoenixd",
    feature = "lnbits",
    feature = "dev-http"
))]
pub use http::{NetworkCause, host_and_port, network_detail};
pub use invoice::{DecodedInvoice, InvoiceError, Network, decode_invoice};
#[cfg(feature = "lnbits")]
pub use lnbits::LnBits;
#[cfg(feature = "lnd")]
pub use lnd::Lnd;
#[cfg(feature = "nwc")]
pub use nwc::{Nwc, NwcEncryption};
pub use open::{Context, OpenError, Opened, open};
#[cfg(feature = "phoenixd")]
pub use phoenixd::Phoenixd;
pub use secret::Secret;
pub use tls::{install_tls_provider, tls_config};
pub use types::{
    Balance, InvoiceRequest, InvoiceState, IssuedInvoice, Payer, Payment, PaymentLookup, Receiver,
    Wallet,
};
pub use uri::{BackendUri, UriError};
