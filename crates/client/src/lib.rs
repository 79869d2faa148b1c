//! The paying HTTP client: safety checks before every payment, budgets, the ledger, and the
//! recovery of payments a crash left pending.
//!
//! The client lands here as it is built; the protocol it speaks is `plannt-l402`.

pub use plannt_l402 as l402;
pub use plannt_lightning as lightning;
