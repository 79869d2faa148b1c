//! The Lightning boundary: a trait for issuing invoices (the gateway side), a trait for paying
//! them (the client side), and the backends behind one URI syntax (`dev`, `lnbits`, `lnd`, `cln`,
//! `phoenixd`, `nwc`).
//!
//! The backends land here as they are built; today the crate holds the shared vocabulary.

pub use plannt_l402 as l402;
