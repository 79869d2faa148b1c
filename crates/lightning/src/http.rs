//! The HTTP client every REST backend shares, and the mapping of transport failures to
//! [`LightningError`]s.

use std::sync::{Arc, Once, OnceLock};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

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

/// Verifies server certificates against the platform's roots, read at the first TLS handshake
/// rather than when a client is built: a process that speaks only plain HTTP (a CLI paying a
/// loopback gateway) never reads the few hundred root certificates.
#[derive(Debug)]
struct LazyPlatformVerifier {
    provider: Arc<CryptoProvider>,
    inner: OnceLock<Result<Arc<rustls_platform_verifier::Verifier>, rustls::Error>>,
}

impl LazyPlatformVerifier {
    fn inner(&self) -> Result<&rustls_platform_verifier::Verifier, rustls::Error> {
        self.inner
            .get_or_init(|| {
                rustls_platform_verifier::Verifier::new(self.provider.clone()).map(Arc::new)
            })
            .as_deref()
            .map_err(Clone::clone)
    }
}

impl ServerCertVerifier for LazyPlatformVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner()?
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner()?.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner()?.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The TLS configuration of every HTTP client of Plannt but LND's pinned one: the platform's
/// roots (read lazily), HTTP/2 and HTTP/1.1 by ALPN. Built once per process.
pub fn tls_config() -> rustls::ClientConfig {
    static CONFIG: OnceLock<rustls::ClientConfig> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let verifier = Arc::new(LazyPlatformVerifier {
                provider: provider.clone(),
                inner: OnceLock::new(),
            });
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            config
        })
        .clone()
}

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
pub(crate) enum Unanswered {
    /// No connection was made: nothing was sent, so nothing happened.
    NotSent(LightningError),
    /// Sent, and the answer did not arrive whole: what happened at the other end is unknown.
    Broken(LightningError),
}

/// Sends `request` and reads its whole answer: the status and the body.
pub(crate) async fn exchange(
    backend: &str,
    request: reqwest::RequestBuilder,
) -> Result<(u16, axum::body::Bytes), Unanswered> {
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
    Ok((status, body))
}

/// The start of an error answer's text, for a message, or `HTTP <status>` when it has none.
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
