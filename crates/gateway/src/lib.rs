//! The gateway library a Rust service embeds: the L402 paywall as a tower layer, the route table
//! and its prices, the spent-token stores, the challenge rate limiter, the reverse proxy, the
//! metrics, the earnings ledger, and connection serving within bounds.
//!
//! Put [`Paywall::layer`] in front of any axum service (and start [`Paywall::spawn_purger`]);
//! `plannt serve` (the `plannt-serve` crate) is this library assembled with a configuration, a
//! Lightning backend and the demo handlers.
//!
//! ```text
//! request -> paywall (path, price, challenge | verify -> claim) -> your service | Proxy
//!                                          commit or release <- the answer
//! ```

mod clock;
mod conn;
mod detach;
mod forwarded;
pub mod keep;
pub mod ledger;
mod limiter;
pub mod metrics;
pub mod path;
mod paywall;
mod proxy;
pub mod quota;
pub mod routes;
pub mod store;
mod unique;

pub use clock::Clock;
pub use conn::{ConnectionLimits, default_max_connections, serve};
pub use forwarded::TrustedProxies;
pub use paywall::{
    DEFAULT_DIALECTS, KeepOptions, L402Layer, L402Service, Paywall, PaywallOptions, RoutesOf,
    SessionBackend, Unanswered,
};
pub use proxy::Proxy;
pub use quota::Quota;
pub use routes::{OnUpstreamFailure, Route, RouteError, RouteTable, Target};

pub use plannt_l402 as l402;
pub use plannt_lightning as lightning;
