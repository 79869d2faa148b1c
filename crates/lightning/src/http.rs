//! The HTTP client every REST backend shares, and the mapping of transport failures to
//! [`LightningError`]s.

use std::sync::Once;
use std::time::Duration;

use crate::LightningError;

/// How long to wait for a TCP connection.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one call may take; payments get longer through their own timeout.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a payment call may take before its outcome must be looked up.
pub(crate) const PAY_TIMEOUT: Duration = Duration::from_secs(90);

/// Installs the `ring` TLS provider once per process (we build rustls without aws-lc).
pub fn install_tls_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Another part of the process may have installed one already; either is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A client with our timeouts, TLS verified against the system's roots.
pub(crate) fn client() -> reqwest::Client {
    builder()
        .build()
        .expect("the HTTP client's static configuration is valid")
}

/// The builder behind [`client`]: our timeouts and user agent, for a backend that needs its own
/// TLS configuration (LND's pinned `tls.cert`).
pub(crate) fn builder() -> reqwest::ClientBuilder {
    install_tls_provider();
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("plannt/", env!("CARGO_PKG_VERSION")))
}

/// Maps a transport error. The URL is dropped: it may carry a key.
pub(crate) fn transport_error(backend: &str, error: reqwest::Error) -> LightningError {
    if error.is_timeout() {
        LightningError::Timeout
    } else if error.is_connect() {
        LightningError::Unreachable(format!("{backend}: cannot connect"))
    } else if error.is_decode() {
        LightningError::Backend(format!("{backend}: unreadable response body"))
    } else {
        LightningError::Unreachable(format!("{backend}: {}", error.without_url()))
    }
}
