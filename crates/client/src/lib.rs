//! The paying HTTP client: safety checks before every payment, budgets, the ledger, and the
//! recovery of payments a crash left pending.
//!
//! ```text
//! Client::send(request)
//!   -> where it goes: not the wallet's own API, an allowed host, no private address unless
//!      allowed (checked again on each redirect hop and each resolved address)
//!   -> 402 with offers: the first dialect of the preference order (L402, MPP, x402 by default;
//!      the `pay_dialects` setting, narrowed per call by `Options::dialects`) that it offers
//!   -> checks: host allowed, https (or loopback), invoice signature, payment hash =
//!      macaroon's (L402) or the offer's amount, payment hash, network, payee and expiry = the
//!      invoice's (MPP, x402), an amount within the cap, the wallet's network, not expired
//!   -> reserve against the hourly, daily and total budgets, recorded pending (SQLite, shared
//!      by every process of the user)
//!   -> pay, check sha256(preimage), record paid (a wallet that could not be reached: failed,
//!      the reservation released)
//!   -> retry with Authorization: L402 <macaroon>:<preimage>, Authorization: Payment
//!      <credential> (MPP) or PAYMENT-SIGNATURE: <payload> (x402)
//! ```
//!
//! All within the connect timeout and the max time ([`Timeouts`]); a request that gets no
//! answer fails with a [`NetworkError`] that names its cause.

mod address;
mod call;
mod checks;
mod client;
mod guard;
mod ledger;
mod policy;
pub mod probe;
mod session;
mod settings;
mod wallet_api;

pub use call::{
    ClientError, Event, NetworkError, Options, Outcome, Receipt, Request, Response, SessionUse,
    Step,
};
pub use checks::{CHECKS, Quote, Refusal, check, check_offer};
pub use client::{Client, ClientBuilder};
pub use ledger::{
    Ledger, LedgerError, MAX_RECORDED_BODY, NewSession, OverBudget, PresentedRequest, QUOTE_SECS,
    Record, RefusalRecord, Reservation, Reserved, SessionDebit, SessionRecord, SessionRefused,
    SessionState, SessionToken, StoredToken, Totals, Unanswered, WindowUse,
};
pub use policy::{Budget, Policy, Window};
pub use session::{RETURN_INVOICE_SECS, SessionClosed};
pub use settings::{DEFAULT_WALLET, Settings, SettingsError, Timeouts, default_path, timeout_secs};
pub use wallet_api::WalletApi;

pub use plannt_l402 as l402;
pub use plannt_l402::Dialect;
pub use plannt_lightning as lightning;
pub use plannt_lightning::NetworkCause;
