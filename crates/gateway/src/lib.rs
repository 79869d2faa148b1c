//! The gateway: the route table and prices, the L402 tower layer, the spent-token stores, the
//! reverse proxy, the built-in demo routes, the catalog, status and metrics.
//!
//! Use [`Paywall::layer`] in front of any axum service, or run the whole server with `plannt serve`.

mod builtin;
mod catalog;
mod clock;
pub mod config;
mod conn;
mod forwarded;
mod limiter;
pub mod metrics;
pub mod path;
mod paywall;
mod proxy;
pub mod routes;
mod server;
pub mod store;

pub use clock::Clock;
pub use config::{Config, ConfigError};
pub use conn::{ConnectionLimits, default_max_connections};
pub use forwarded::TrustedProxies;
pub use paywall::{L402Layer, L402Service, Paywall, PaywallOptions};
pub use routes::{OnUpstreamFailure, Route, RouteError, RouteTable, Target};
pub use server::{Gateway, StartError};

pub use plannt_l402 as l402;
pub use plannt_lightning as lightning;
