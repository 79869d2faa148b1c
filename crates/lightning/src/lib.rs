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

mod backend;
mod cln;
pub mod dev;
mod error;
mod http;
pub mod invoice;
mod lnbits;
mod lnd;
mod nwc;
mod open;
mod phoenixd;
mod secret;
mod tls;
mod types;
pub mod uri;

pub use cln::Cln;
pub use error::LightningError;
pub use invoice::{DecodedInvoice, InvoiceError, Network, decode_invoice};
pub use lnbits::LnBits;
pub use lnd::Lnd;
pub use nwc::{Nwc, NwcEncryption};
pub use open::{Context, OpenError, open};
pub use phoenixd::Phoenixd;
pub use secret::Secret;
pub use tls::{install_tls_provider, tls_config};
pub use types::{
    Balance, InvoiceRequest, InvoiceState, IssuedInvoice, Payer, Payment, PaymentLookup, Receiver,
    Wallet,
};
pub use uri::{BackendUri, UriError};
