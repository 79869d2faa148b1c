//! `GET /_plannt/pay/<payment hash>`: the payment page asks whether its invoice is paid, and
//! once it is, gets the credential in a cookie.
//!
//! ```text
//! over the poll rate of the address      -> 429 Retry-After (before anything else)
//! not a GET, not 64 hex                  -> 405, 404
//! no macaroon (Plannt-Macaroon header)   -> 401: the payment hash alone, public in the
//!                                           invoice, buys nothing
//! a macaroon not ours, or of another hash -> 401, 403 (no lookup)
//! expired                                -> 410
//! too many lookups in flight             -> 503 Retry-After
//! the backend: open                      -> 202 {"paid": false}
//!              expired / unknown         -> 410 / 404
//!              settled                   -> the credential verified like any other, then
//!                                           200 {"paid": true} and Set-Cookie:
//!                                           plannt-<route>=<macaroon>:<preimage>; HttpOnly;
//!                                           SameSite=Strict; Path=/ (Secure behind TLS)
//! ```
//! The credential never appears in a body or a log; the cookie lives until the token's minted
//! expiry and is spent by the paywall like any credential.

use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use plannt_l402::{
    Caveat, Credential, Identifier, Macaroon, NoConditions, PaymentHash, Request as L402Request,
    check_caveats,
};
use plannt_lightning::InvoiceState;
use serde_json::json;

use super::Paywall;
use super::headers::peer_ip;
use super::page::{MACAROON_HEADER, PAY_PREFIX, cookie_name};

/// Polls per second per client address (IPv6 by /64): the page asks every 1.5 s and backs off.
pub(super) const POLLS_PER_SECOND: f64 = 2.0;
/// Polls a client address may make at once.
pub(super) const POLL_BURST: u32 = 10;
/// Backend lookups for polls in flight at once, from every client together.
pub(super) const MAX_POLL_LOOKUPS: usize = 32;
/// The longest macaroon header read (a minted macaroon is about 300 bytes).
const MAX_MACAROON_CHARS: usize = 4096;

fn answer(status: StatusCode, reason: &'static str, message: &str) -> Response {
    let body = json!({
        "error": status.canonical_reason().unwrap_or("Error"),
        "reason": reason,
        "message": message,
    });
    let mut response = (status, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn retry_later(status: StatusCode, reason: &'static str, message: &str, secs: u64) -> Response {
    let mut response = answer(status, reason, message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    response
}

impl Paywall {
    /// Answers `GET /_plannt/pay/<payment hash>` (see the module's map).
    pub(super) async fn poll(&self, request: Request<Body>) -> Response {
        let peer = peer_ip(&request);
        // The body is never read: only the parts, which can cross an await.
        let (request, _) = request.into_parts();
        let client = self.options.trusted_proxies.client(peer, &request.headers);
        if let Err(wait) = self.poll_limiter.check(client) {
            self.metrics.rate_limited();
            return retry_later(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many payment checks from your address; wait and ask again",
                wait.as_secs(),
            );
        }
        if request.method != Method::GET {
            return answer(StatusCode::METHOD_NOT_ALLOWED, "method", "ask with GET");
        }
        let path = request.uri.path();
        let Some(hash) = path
            .strip_prefix(PAY_PREFIX)
            .and_then(|hex| PaymentHash::from_hex(hex).ok())
        else {
            return answer(
                StatusCode::NOT_FOUND,
                "not_found",
                "ask /_plannt/pay/<payment hash, 64 hex characters>",
            );
        };
        let Some(text) = request
            .headers
            .get(MACAROON_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|t| t.len() <= MAX_MACAROON_CHARS)
        else {
            return answer(
                StatusCode::UNAUTHORIZED,
                "macaroon_missing",
                "present the macaroon of the 402 in the Plannt-Macaroon header",
            );
        };
        let not_ours = || {
            answer(
                StatusCode::UNAUTHORIZED,
                "bad_macaroon",
                "the macaroon is not one this gateway minted; reload the page",
            )
        };
        let Ok(macaroon) = Macaroon::from_base64(text.trim()) else {
            return not_ours();
        };
        let Ok(identifier) = Identifier::decode(macaroon.identifier()) else {
            return not_ours();
        };
        if identifier.payment_hash != hash {
            return answer(
                StatusCode::FORBIDDEN,
                "wrong_payment_hash",
                "the macaroon is for another payment",
            );
        }
        let key = macaroon
            .location()
            .and_then(|l| std::str::from_utf8(l).ok())
            .and_then(|id| self.keys.get(id));
        if !key.is_some_and(|key| macaroon.verify_signature(key)) {
            return not_ours();
        }
        // The route a macaroon we minted names first (`services=<route>:0`), and its expiry.
        let route = macaroon
            .caveats()
            .first()
            .and_then(|c| Caveat::parse(&c.id).ok())
            .and_then(|c| match c {
                Caveat::Services(list) => list.into_iter().next().map(|s| s.name),
                _ => None,
            })
            .filter(|id| self.routes.load().routes().iter().any(|r| &r.id == id));
        let Some(route) = route else {
            return not_ours();
        };
        let now = self.options.clock.now();
        let caveats = macaroon.caveats().iter().map(|c| &c.id[..]);
        if check_caveats(caveats, &route, now, &NoConditions).is_err() {
            return answer(
                StatusCode::GONE,
                "expired",
                "this payment can no longer buy the resource; reload the page for a new invoice",
            );
        }
        // Each lookup is a call to the backend: a few at once, whoever asks.
        let Ok(_permit) = self.poll_lookups.try_acquire() else {
            return retry_later(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "the gateway is checking many payments; ask again shortly",
                2,
            );
        };
        let lookup = self.receiver.lookup_invoice(&hash);
        let state = match tokio::time::timeout(self.options.invoice_timeout, lookup).await {
            Ok(Ok(state)) => state,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "the Lightning backend could not look up an invoice");
                return retry_later(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "lightning_unavailable",
                    "the gateway cannot check payments right now; ask again shortly",
                    5,
                );
            }
            Err(_) => {
                tracing::error!("the Lightning backend did not look up an invoice in time");
                return retry_later(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "lightning_unavailable",
                    "the gateway cannot check payments right now; ask again shortly",
                    5,
                );
            }
        };
        let preimage = match state {
            InvoiceState::Settled { preimage, .. } => preimage,
            InvoiceState::Open => {
                let mut response =
                    (StatusCode::ACCEPTED, axum::Json(json!({ "paid": false }))).into_response();
                response
                    .headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                return response;
            }
            InvoiceState::Expired => {
                return answer(
                    StatusCode::GONE,
                    "expired",
                    "the invoice expired unpaid; reload the page for a new one",
                );
            }
            InvoiceState::NotFound => {
                return answer(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "the Lightning backend knows no such invoice; reload the page",
                );
            }
        };
        // The credential is checked as the paywall will check it.
        let credential = Credential::new(macaroon, preimage);
        let verified = self.keys.verify(
            &credential,
            &L402Request {
                route: &route,
                now,
                conditions: &NoConditions,
            },
        );
        let until = match verified.map(|v| v.minted_valid_until) {
            Ok(Some(until)) if until > now => until,
            _ => {
                return answer(
                    StatusCode::GONE,
                    "expired",
                    "this payment can no longer buy the resource; reload the page for a new invoice",
                );
            }
        };
        let secure = self.options.trusted_proxies.proto(peer, &request.headers) == "https";
        let cookie = format!(
            "{}={}:{}; Max-Age={}; Path=/; HttpOnly; SameSite=Strict{}",
            cookie_name(&route),
            credential.macaroons[0].to_base64(),
            credential.preimage.to_hex(),
            until - now,
            if secure { "; Secure" } else { "" },
        );
        let mut response = (StatusCode::OK, axum::Json(json!({ "paid": true }))).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Ok(value) = HeaderValue::try_from(cookie) {
            headers.insert(header::SET_COOKIE, value);
        }
        response
    }
}
