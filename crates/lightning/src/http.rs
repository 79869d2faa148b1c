//! The HTTP client every REST backend shares, and the mapping of transport failures to
//! [`LightningError`]s.

use crate::LightningError;
use crate::backend::{CONNECT_TIMEOUT, REQUEST_TIMEOUT};
use crate::tls::{install_tls_provider, tls_config};

/// A client with our timeouts, TLS verified against the system's roots.
pub(crate) fn client() -> reqwest::Client {
    builder()
        .tls_backend_preconfigured(tls_config())
        .build()
        .expect("the HTTP client's static configuration is valid")
}

/// The builder behind [`client`]: our timeouts and user agent, without a TLS configuration, for a
/// backend that needs its own (LND's pinned `tls.cert`).
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

/// Why an exchange has no whole answer.
#[cfg(any(feature = "cln", feature = "phoenixd"))]
pub(crate) enum Unanswered {
    /// No connection was made: nothing was sent, so nothing happened.
    NotSent(LightningError),
    /// Sent, and the answer did not arrive whole: what happened at the other end is unknown.
    Broken(LightningError),
}

/// Sends `request` and reads its whole answer: the status and the body.
#[cfg(any(feature = "cln", feature = "phoenixd"))]
pub(crate) async fn exchange(
    backend: &str,
    request: reqwest::RequestBuilder,
) -> Result<(u16, Vec<u8>), Unanswered> {
    let response = request.send().await.map_err(|e| {
        if e.is_connect() {
            Unanswered::NotSent(transport_error(backend, e))
        } else {
            Unanswered::Broken(transport_error(backend, e))
        }
    })?;
    let status = response.status().as_u16();
    let body = response
        .bytes()
        .await
        .map_err(|e| Unanswered::Broken(transport_error(backend, e)))?;
    Ok((status, body.to_vec()))
}

/// The start of an error answer's text, for a message, or `HTTP <status>` when it has none.
#[cfg(any(feature = "cln", feature = "phoenixd"))]
pub(crate) fn excerpt(status: u16, body: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(body)
        .trim()
        .chars()
        .take(200)
        .collect();
    if text.is_empty() {
        format!("HTTP {status}")
    } else {
        text
    }
}
