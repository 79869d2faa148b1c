//! The reverse proxy: forwards a paid request to its upstream, bodies streaming both ways.
//!
//! Hop-by-hop headers are dropped (RFC 9110 §7.6.1), `X-Forwarded-For`, `-Proto` and `-Host`
//! are set, upstream TLS is verified against the system's roots, redirects are passed back to
//! the client rather than followed, and an upstream that cannot be reached or is too slow gives
//! 502 or 504, marked with what happened ([`Unanswered`]) so that the paywall knows whether the
//! upstream received the request before deciding what becomes of the token.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use serde_json::json;
use url::Url;

use crate::forwarded::TrustedProxies;
use crate::paywall::Unanswered;

/// Forwards requests to upstreams.
#[derive(Clone)]
pub struct Proxy {
    client: reqwest::Client,
    trusted: TrustedProxies,
    timeout: Duration,
}

const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

fn drop_hop_by_hop(headers: &mut HeaderMap) {
    // Headers named in Connection are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

fn error(status: StatusCode, title: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": title, "message": message })),
    )
        .into_response()
}

impl Proxy {
    /// A proxy whose upstreams must start answering within `timeout`, and then not fall silent
    /// for longer than `timeout` while their body streams.
    pub fn new(timeout: Duration, trusted: TrustedProxies) -> Self {
        plannt_lightning::install_tls_provider();
        // Not reqwest's total `timeout`: it would cut a long stream (a model's answer) that
        // keeps flowing, and it costs a boxed timer per request and per body, a fifth of the
        // proxy's throughput. The wait for the answer is bounded in `forward`; an answer whose
        // body stalls is cut by the read timeout.
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(plannt_lightning::tls_config())
            .read_timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(64)
            .build()
            .expect("the proxy client's static configuration is valid");
        Proxy {
            client,
            trusted,
            timeout,
        }
    }

    /// Forwards `request` to `upstream` (its path is prefixed to the request's).
    pub async fn forward(&self, upstream: &Url, request: Request<Body>) -> Response {
        let (parts, body) = request.into_parts();
        let mut url = upstream.clone();
        let path = format!(
            "{}{}",
            upstream.path().trim_end_matches('/'),
            parts.uri.path()
        );
        url.set_path(&path);
        url.set_query(parts.uri.query());

        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let proto = match peer {
            Some(peer) => self.trusted.proto(peer, &parts.headers),
            None => "http",
        };
        let mut headers = parts.headers;
        drop_hop_by_hop(&mut headers);
        let host = headers.remove(header::HOST);
        if let Some(peer) = peer {
            let forwarded = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
                Some(earlier) => format!("{earlier}, {peer}"),
                None => peer.to_string(),
            };
            if let Ok(value) = HeaderValue::from_str(&forwarded) {
                headers.insert("x-forwarded-for", value);
            }
        }
        headers.insert("x-forwarded-proto", HeaderValue::from_static(proto));
        if let Some(host) = host {
            headers.insert("x-forwarded-host", host);
        }

        // A request body that fails while it streams out (over `max_body_bytes`, or cut short by
        // the client) is the client's doing: it must not pass for an upstream failure.
        let body_failed = Arc::new(OnceLock::<bool>::new());
        let mut outgoing = self.client.request(parts.method, url).headers(headers);
        // A request without a body (most GETs) goes without one, rather than as an empty
        // chunked stream the upstream would have to read.
        if !axum::body::HttpBody::is_end_stream(&body) {
            let watch = body_failed.clone();
            let stream = body.into_data_stream().inspect_err(move |e| {
                let _ = watch.set(e.to_string().contains("length limit exceeded"));
            });
            outgoing = outgoing.body(reqwest::Body::wrap_stream(stream));
        }
        let no_answer = |status: StatusCode, title: &str, why: &str| {
            let mut response = error(status, title, why);
            response
                .extensions_mut()
                .insert(Unanswered::NoAnswer(why.to_string()));
            response
        };
        let sent = match tokio::time::timeout(self.timeout, outgoing.send()).await {
            Ok(sent) => sent,
            Err(_) => {
                return no_answer(
                    StatusCode::GATEWAY_TIMEOUT,
                    "Gateway Timeout",
                    "the upstream did not answer in time",
                );
            }
        };
        let mut upstream_response = match sent {
            Ok(r) => r,
            Err(_) if body_failed.get().is_some() => {
                let (status, title, why) = if body_failed.get() == Some(&true) {
                    (
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "Payload Too Large",
                        "the request body is larger than this gateway accepts",
                    )
                } else {
                    (
                        StatusCode::BAD_REQUEST,
                        "Bad Request",
                        "the request body could not be read",
                    )
                };
                let mut response = error(status, title, why);
                response
                    .extensions_mut()
                    .insert(Unanswered::NotServed(why.to_string()));
                return response;
            }
            // No connection, so nothing was sent.
            Err(e) if e.is_connect() => {
                tracing::warn!(error = %e.without_url(), "cannot reach the upstream");
                let why = "the upstream cannot be reached";
                let mut response = error(StatusCode::BAD_GATEWAY, "Bad Gateway", why);
                response
                    .extensions_mut()
                    .insert(Unanswered::NotServed(why.to_string()));
                return response;
            }
            Err(e) if e.is_timeout() => {
                return no_answer(
                    StatusCode::GATEWAY_TIMEOUT,
                    "Gateway Timeout",
                    "the upstream did not answer in time",
                );
            }
            Err(e) => {
                tracing::warn!(error = %e.without_url(), "upstream request failed");
                return no_answer(
                    StatusCode::BAD_GATEWAY,
                    "Bad Gateway",
                    "the upstream's connection broke before it answered",
                );
            }
        };
        let status = upstream_response.status();
        let mut headers = std::mem::take(upstream_response.headers_mut());
        drop_hop_by_hop(&mut headers);
        let stream = upstream_response
            .bytes_stream()
            .map_err(std::io::Error::other);
        let mut response = Response::new(Body::from_stream(stream));
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        response
    }
}
