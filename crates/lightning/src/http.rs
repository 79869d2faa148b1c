//! The HTTP client every REST backend shares, what stopped an HTTP exchange
//! ([`NetworkCause`], which the paying client reads too), and the mapping of transport failures
//! to [`LightningError`]s: nothing sent (no connection) is [`LightningError::Unreachable`], sent
//! and no whole answer is [`LightningError::Timeout`] or [`LightningError::Interrupted`].

use std::error::Error as StdError;

use url::Url;

use crate::LightningError;
use crate::backend::{CONNECT_TIMEOUT, REQUEST_TIMEOUT};
use crate::tls::{install_tls_provider, tls_config};

/// What stopped an HTTP exchange, read from a `reqwest` error: the words a person needs, and
/// whether the request may have reached the other end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NetworkCause {
    /// The host name does not resolve (DNS).
    UnknownHost,
    /// The connection was refused: nothing listens on that port.
    Refused,
    /// The TLS handshake failed: a certificate that does not verify, or a server that does not
    /// speak TLS on that port.
    Tls,
    /// No connection within the connect timeout.
    ConnectTimeout,
    /// No connection, for another reason (no route to the host, network unreachable).
    Connect,
    /// Connected, and the exchange did not finish in the time allowed.
    Timeout,
    /// Connected, and the connection was reset or closed before the answer was whole.
    Closed,
    /// Anything else.
    Other,
}

impl NetworkCause {
    /// The cause of `error`.
    pub fn of(error: &reqwest::Error) -> NetworkCause {
        if error.is_timeout() {
            return if error.is_connect() {
                NetworkCause::ConnectTimeout
            } else {
                NetworkCause::Timeout
            };
        }
        let all = unwrapped(error);
        let io_kind = |kind: std::io::ErrorKind| {
            all.iter().any(|e| {
                e.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == kind)
            })
        };
        if error.is_connect() {
            // hyper-util's connector names a failed lookup "dns error" (its error type is private).
            if all.iter().any(|e| e.to_string() == "dns error") {
                return NetworkCause::UnknownHost;
            }
            // A server that closes the connection during the handshake: `tls handshake eof`.
            if all.iter().any(|e| e.is::<rustls::Error>())
                || io_kind(std::io::ErrorKind::UnexpectedEof)
            {
                return NetworkCause::Tls;
            }
            if io_kind(std::io::ErrorKind::ConnectionRefused) {
                return NetworkCause::Refused;
            }
            return NetworkCause::Connect;
        }
        if error.is_request() || error.is_body() || error.is_decode() {
            return NetworkCause::Closed;
        }
        NetworkCause::Other
    }

    /// Whether the request may have reached the other end. `false`: no connection was made, so
    /// nothing was sent.
    pub fn may_have_been_sent(self) -> bool {
        !matches!(
            self,
            NetworkCause::UnknownHost
                | NetworkCause::Refused
                | NetworkCause::Tls
                | NetworkCause::ConnectTimeout
                | NetworkCause::Connect
        )
    }

    /// A stable code: `unknown_host`, `refused`, `tls`, `connect_timeout`, `connect`, `timeout`,
    /// `closed` or `other`.
    pub fn code(self) -> &'static str {
        match self {
            NetworkCause::UnknownHost => "unknown_host",
            NetworkCause::Refused => "refused",
            NetworkCause::Tls => "tls",
            NetworkCause::ConnectTimeout => "connect_timeout",
            NetworkCause::Connect => "connect",
            NetworkCause::Timeout => "timeout",
            NetworkCause::Closed => "closed",
            NetworkCause::Other => "other",
        }
    }

    /// The cause in plain words.
    pub fn describe(self) -> &'static str {
        match self {
            NetworkCause::UnknownHost => "the host name does not resolve (DNS)",
            NetworkCause::Refused => "connection refused (nothing listens on that port)",
            NetworkCause::Tls => "the TLS handshake failed",
            NetworkCause::ConnectTimeout => "no connection within the connect timeout",
            NetworkCause::Connect => "no connection could be made",
            NetworkCause::Timeout => "no whole answer within the time allowed",
            NetworkCause::Closed => {
                "the connection was reset or closed before the answer was complete"
            }
            NetworkCause::Other => "the request failed",
        }
    }

    /// Whether what the system said underneath adds to [`NetworkCause::describe`].
    pub fn wants_detail(self) -> bool {
        !matches!(
            self,
            NetworkCause::Refused | NetworkCause::ConnectTimeout | NetworkCause::Timeout
        )
    }
}

impl std::fmt::Display for NetworkCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

/// `error` and its sources, outermost first.
fn sources<'a>(
    error: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(error), |e: &&'a (dyn StdError + 'static)| {
        (*e).source()
    })
}

/// `error`, its sources and what each `io::Error` among them wraps (its `source` skips the error
/// it wraps, and the TLS connector wraps rustls' error in two of them).
fn unwrapped(error: &reqwest::Error) -> Vec<&(dyn StdError + 'static)> {
    let mut out = Vec::new();
    let mut pending: Vec<&(dyn StdError + 'static)> = vec![error];
    while let Some(next) = pending.pop() {
        for e in sources(next) {
            out.push(e);
            if let Some(inner) = e
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
            {
                pending.push(inner);
            }
        }
    }
    out
}

/// What the operating system, the resolver or the TLS library said at the bottom of `error`:
/// the detail under reqwest's "error sending request for url (…)", without the URL (which may
/// carry a key). Empty when there is none.
pub fn network_detail(error: &reqwest::Error) -> String {
    sources(error)
        .skip(1)
        .last()
        .map(|e| e.to_string())
        .unwrap_or_default()
}

/// `host:port` of a URL, for messages: never its path, query or credentials.
pub fn host_and_port(url: &Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
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

/// Maps a transport error: nothing sent (no connection) is `Unreachable`, which names the
/// backend, its host and port, and why; sent and no whole answer is `Timeout` or `Interrupted`,
/// whose outcome is unknown. The URL's path and query are dropped: they may carry a key.
pub(crate) fn transport_error(backend: &str, error: reqwest::Error) -> LightningError {
    let cause = NetworkCause::of(&error);
    let place = error
        .url()
        .map_or_else(|| "its address".to_string(), host_and_port);
    let detail = network_detail(&error);
    let why = if cause.wants_detail() && !detail.is_empty() {
        format!("{cause} ({detail})")
    } else {
        cause.to_string()
    };
    match cause {
        _ if !cause.may_have_been_sent() => {
            LightningError::Unreachable(format!("{backend} at {place}: {why}; nothing was sent"))
        }
        NetworkCause::Timeout => LightningError::Timeout,
        _ if error.is_decode() => {
            LightningError::Backend(format!("{backend}: unreadable response body"))
        }
        _ => LightningError::Interrupted(format!("{backend} at {place}: {why}")),
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
        if !NetworkCause::of(&e).may_have_been_sent() {
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
