//! The answers the paywall makes itself: a 402 challenge with a fresh invoice and macaroon, a
//! 401 for a credential that is not genuine, a 429 over the rate limit, a 503 when the backend,
//! the store or the keys cannot do their part, and the gateway's own error bodies.

use std::net::IpAddr;
use std::time::{Duration, UNIX_EPOCH};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use plannt_l402::{Challenge, MintRequest, Reason};
use plannt_lightning::InvoiceRequest;
use serde_json::json;

use super::Paywall;
use super::headers::X_L402_REASON;
use crate::routes::Route;

impl Paywall {
    /// A 402 with a fresh invoice and macaroon for `route`.
    pub(super) async fn challenge(
        &self,
        route: &Route,
        client: IpAddr,
        reason: Option<(Reason, String)>,
    ) -> Response {
        if let Err(wait) = self.limiter.check(client) {
            self.metrics.rate_limited();
            let secs = wait.as_secs().max(1);
            let body = json!({
                "error": "Too Many Requests",
                "message": format!("too many payment challenges from your address; retry in {secs} s"),
                "retry_after": secs,
            });
            let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            return response;
        }
        let price = route.price_sats.unwrap_or(0);
        let memo = format!(
            "{} {} via Plannt",
            route.method.as_ref().map_or("ANY", |m| m.as_str()),
            route.path
        );
        let invoice_request = InvoiceRequest {
            amount_sats: price,
            memo: memo.chars().take(120).collect(),
            expiry_secs: self.options.invoice_expiry_secs,
        };
        let issue = self.receiver.create_invoice(&invoice_request);
        let invoice = match tokio::time::timeout(self.options.invoice_timeout, issue).await {
            Ok(Ok(invoice)) => invoice,
            Ok(Err(e)) => {
                self.metrics.invoice_failure();
                tracing::error!(error = %e, "the Lightning backend could not issue an invoice");
                return unavailable(
                    "lightning_unavailable",
                    "the gateway cannot issue an invoice right now; nothing was charged, retry shortly",
                );
            }
            Err(_) => {
                self.metrics.invoice_failure();
                tracing::error!("the Lightning backend did not issue an invoice in time");
                return unavailable(
                    "lightning_unavailable",
                    "the gateway cannot issue an invoice right now; nothing was charged, retry shortly",
                );
            }
        };
        let valid_until = self.options.clock.now()
            + self.options.invoice_expiry_secs
            + self.options.token_lifetime_secs;
        let minted = self.keys.mint(&MintRequest {
            payment_hash: invoice.payment_hash,
            route: &route.id,
            valid_until,
            conditions: &[],
        });
        let macaroon = match minted {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "cannot mint a token");
                return unavailable(
                    "mint_failed",
                    "the gateway cannot mint tokens; its operator must check the root keys",
                );
            }
        };
        self.metrics.challenge(&route.id);
        let expires_at = UNIX_EPOCH + Duration::from_secs(invoice.expires_at.min(253_402_300_799));
        let mut body = json!({
            "error": "Payment Required",
            "invoice": invoice.bolt11,
            "macaroon": macaroon.to_base64(),
            "payment_hash": hex::encode(invoice.payment_hash),
            "amount_sats": price,
            "expires_at": humantime::format_rfc3339_seconds(expires_at).to_string(),
            "format": "L402 <macaroon>:<preimage>",
        });
        if let Some((reason, message)) = &reason {
            body["reason"] = json!(reason.code());
            body["message"] = json!(message);
        }
        let header_value = Challenge::new(macaroon, invoice.bolt11).to_header_value();
        let mut response = (StatusCode::PAYMENT_REQUIRED, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&header_value) {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some((reason, _)) = reason {
            headers.insert(X_L402_REASON, HeaderValue::from_static(reason.code()));
        }
        response
    }

    /// A 401 for a credential that is not genuine: no invoice.
    pub(super) fn refuse(&self, reason: Reason, message: &str) -> Response {
        self.metrics.rejected(reason);
        let body = json!({ "error": "Unauthorized", "reason": reason.code(), "message": message });
        let mut response = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
        response
            .headers_mut()
            .insert(X_L402_REASON, HeaderValue::from_static(reason.code()));
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// An error answer of the gateway's own: `{"error": <reason phrase>, "message": …}`.
pub(crate) fn gateway_error(status: StatusCode, message: &str) -> Response {
    let body = json!({
        "error": status.canonical_reason().unwrap_or("Error"),
        "message": message,
    });
    (status, axum::Json(body)).into_response()
}

pub(super) fn unavailable(reason: &'static str, message: &str) -> Response {
    let body = json!({ "error": "Service Unavailable", "reason": reason, "message": message });
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}
