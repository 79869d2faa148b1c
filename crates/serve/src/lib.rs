//! `plannt serve`: the gateway library ([`plannt_gateway`]) assembled from a configuration, with
//! a Lightning backend, a spent store, the demo service's built-in handlers, the catalog, the
//! OpenAPI document, `/status`, `/metrics`, and the admin API with its dashboard
//! (`/_plannt/admin/`).
//!
//! ```text
//! Config::load (file, then PLANNT_* variables)      typed once, at parse time
//!   -> Gateway::build: root keys, backend, store, routes, handlers
//!   -> Gateway::serve: connections within bounds, until shutdown; paid requests drained
//! ```

pub mod admin;
mod builtin;
mod catalog;
pub mod config;
mod cors;
mod error;
mod handler;
mod keys;
mod openapi;
mod routes;
mod server;
mod state;

pub use admin::{ConfigSource, ReloadError, Reloaded, Reloader};
pub use config::{Config, ConfigError};
pub use error::StartError;
pub use handler::Handler;
pub use server::Gateway;

pub use plannt_gateway as gateway;
