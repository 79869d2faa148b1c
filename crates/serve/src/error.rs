//! Why `plannt serve` cannot start: each part that failed, with its cause.

use std::path::PathBuf;

use plannt_gateway::RouteError;
use plannt_gateway::store::StoreError;

/// Why the gateway cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A configured root key is unusable.
    #[error("{key}: {source}")]
    Key {
        /// `root_key (PLANNT_ROOT_KEY)`, or `root_keys (<id>)`.
        key: String,
        /// What is wrong with it.
        #[source]
        source: plannt_l402::KeyError,
    },
    /// The generated root key file cannot be read or written.
    #[error("{doing} {}: {source}", path.display())]
    KeyFile {
        /// What was being done: `cannot read`, `cannot create`, …
        doing: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The Lightning backend cannot be opened.
    #[error("lightning: {0}")]
    Lightning(#[source] plannt_lightning::OpenError),
    /// The spent store cannot be opened.
    #[error("store {store}: {source}")]
    Store {
        /// The store, without secrets.
        store: String,
        /// Why.
        #[source]
        source: StoreError,
    },
    /// One route cannot be served.
    #[error("routes[{index}] ({path}): {why}")]
    Route {
        /// Its place in `[[routes]]`.
        index: usize,
        /// Its path.
        path: String,
        /// Why.
        why: String,
    },
    /// The routes together are not a table (ambiguous, duplicate ids, …).
    #[error("routes: {0}")]
    Routes(#[from] RouteError),
    /// A setting is unusable in a way only building the gateway shows.
    #[error("{key}: {why}")]
    Setting {
        /// The key.
        key: &'static str,
        /// What is wrong.
        why: String,
    },
    /// The HTTP client for upstreams cannot be built.
    #[error("the HTTP client: {0}")]
    Http(#[source] reqwest::Error),
}
