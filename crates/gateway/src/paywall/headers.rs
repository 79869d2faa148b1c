//! The headers the paywall reads, writes and removes, and the request path it rewrites.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::uri::PathAndQuery;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, Uri, header};
use plannt_l402::{mpp, wire, x402};

pub(super) const X_L402: HeaderName = HeaderName::from_static(wire::X_L402);
/// How long the answer of a paid request is kept for a retry (`x-l402-kept: <seconds>`), or why
/// it is not (`none; reason="…"`).
pub(super) const X_L402_KEPT: HeaderName = HeaderName::from_static("x-l402-kept");
pub(super) const X_L402_REASON: HeaderName = HeaderName::from_static(wire::X_L402_REASON);
pub(super) const PAYMENT_HASH: HeaderName = HeaderName::from_static(wire::X_L402_PAYMENT_HASH);
pub(super) const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static(wire::IDEMPOTENCY_KEY);
pub(super) const PAYMENT_SIGNATURE: HeaderName = HeaderName::from_static(x402::PAYMENT_SIGNATURE);
pub(super) const PAYMENT_REQUIRED: HeaderName = HeaderName::from_static(x402::PAYMENT_REQUIRED);
pub(super) const PAYMENT_RESPONSE: HeaderName = HeaderName::from_static(x402::PAYMENT_RESPONSE);
pub(super) const PAYMENT_RECEIPT: HeaderName = HeaderName::from_static(mpp::PAYMENT_RECEIPT);

/// Headers that let a request be priced as one method and served as another.
const METHOD_OVERRIDES: [HeaderName; 3] = [
    HeaderName::from_static("x-http-method-override"),
    HeaderName::from_static("x-http-method"),
    HeaderName::from_static("x-method-override"),
];

/// Removes what a client must not say to the upstream: `x-l402-*` headers (only the gateway
/// sets them, and an upstream may trust `x-l402-payment-hash`) and method overrides.
pub(super) fn scrub(headers: &mut HeaderMap) {
    drop_l402_headers(headers);
    for name in &METHOD_OVERRIDES {
        headers.remove(name);
    }
}

pub(super) fn drop_l402_headers(headers: &mut HeaderMap) {
    let ours = |name: &HeaderName| name.as_str().starts_with(wire::X_L402);
    if !headers.keys().any(ours) {
        return;
    }
    let names: Vec<HeaderName> = headers.keys().filter(|n| ours(n)).cloned().collect();
    for name in names {
        headers.remove(name);
    }
}

/// Puts `path` in place of the request's path, keeping its query.
/// False if the result is not a URI (it always is for a path [`crate::path::canonical`] made).
pub(super) fn set_path(request: &mut Request<Body>, path: &str) -> bool {
    let with_query = match request.uri().query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_string(),
    };
    let mut parts = request.uri().clone().into_parts();
    parts.path_and_query = PathAndQuery::try_from(with_query).ok();
    match Uri::from_parts(parts) {
        Ok(uri) => {
            *request.uri_mut() = uri;
            true
        }
        Err(_) => false,
    }
}

/// The address the connection comes from.
pub(crate) fn peer_ip(request: &Request<Body>) -> IpAddr {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

/// Removes every payment credential before the request goes upstream: `Authorization` values
/// of the `L402`, `LSAT` and `Payment` schemes (they carry the preimage) and `PAYMENT-SIGNATURE`.
/// Other `Authorization` values are the upstream's. The payment page's cookies (`plannt-*`)
/// go too; other cookies stay.
pub(super) fn strip_credentials(headers: &mut HeaderMap) {
    super::page::strip_cookies(headers);
    headers.remove(PAYMENT_SIGNATURE);
    let scheme_is = |b: &[u8], scheme: &[u8]| {
        b.len() >= scheme.len()
            && b[..scheme.len()].eq_ignore_ascii_case(scheme)
            && b.get(scheme.len())
                .is_none_or(|c| matches!(c, b' ' | b'\t'))
    };
    let keep: Vec<HeaderValue> = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter(|v| {
            let b = v.as_bytes().trim_ascii_start();
            !(b.len() >= 4
                && (b[..4].eq_ignore_ascii_case(b"L402") || b[..4].eq_ignore_ascii_case(b"LSAT")))
                && !scheme_is(b, b"Payment")
        })
        .cloned()
        .collect();
    headers.remove(header::AUTHORIZATION);
    for value in keep {
        headers.append(header::AUTHORIZATION, value);
    }
}
