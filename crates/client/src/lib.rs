//! The paying HTTP client: safety checks before every payment, budgets, the ledger, and the
//! recovery of payments a crash left pending.
//!
//! ```text
//! Client::send(request)
//!   -> 402 with a challenge
//!   -> checks: invoice signature, payment hash = macaroon's, an amount within the cap,
//!      the wallet's network, not expired, host allowed
//!   -> reserve against the hourly, daily and total budgets, recorded pending (SQLite, shared
//!      by every process of the user)
//!   -> pay, check sha256(preimage), record paid
//!   -> retry with Authorization: L402 <macaroon>:<preimage>
//! ```

mod checks;
mod client;
mod ledger;
mod policy;
mod settings;

pub use checks::{Quote, Refusal, check};
pub use client::{Client, ClientError, Event, Options, Outcome, Receipt, Request, Response};
pub use ledger::{
    Ledger, LedgerError, OverBudget, QUOTE_SECS, Record, RefusalRecord, Reservation, Reserved,
    StoredToken, Totals, WindowUse,
};
pub use policy::{Budget, Policy};
pub use settings::{DEFAULT_WALLET, Settings, SettingsError, default_path};

pub use plannt_l402 as l402;
pub use plannt_lightning as lightning;
