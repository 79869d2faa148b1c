//! The gateway: the route table and prices, the L402 tower layer, the spent-token stores, the
//! reverse proxy, the built-in demo routes, the catalog, status and metrics.

pub mod store;

pub use plannt_l402 as l402;
pub use plannt_lightning as lightning;
