//! The answers the paywall makes itself: a 402 with a fresh invoice and a challenge for it in
//! each dialect offered (MPP, L402, x402 by default), a 401 for a credential that is not genuine, a 429 over the rate limit, a 503 when the backend,
//! the store or the keys cannot do their part, and the gateway's own error bodies.

use std::net::IpAddr;
use std::time::{Duration, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use plannt_l402::mpp::{ChargeOffer, Problem, problem_type};
use plannt_l402::x402::{ExactOffer, PaymentRequired, ResourceInfo};
use plannt_l402::{Challenge, Dialect, MintRequest, Network, Reason};
use plannt_lightning::InvoiceRequest;
use plannt_meter::Quote;
use serde_json::json;

use super::Paywall;
use super::headers::{PAYMENT_REQUIRED, X_L402_REASON};
use super::metered::PRICE_CONDITION;
use super::page::PageFacts;
use crate::routes::Route;

/// The request a challenge answers: its route, price, client, resource path and the dialects
/// offered.
pub(super) struct Challenged<'a> {
    pub(super) route: &'a Route,
    /// The price of this request, in sats: the route's, or its rule's for this body.
    pub(super) price: u64,
    /// What the rule counted, for a metered route.
    pub(super) quote: Option<&'a Quote>,
    pub(super) client: IpAddr,
    /// The request's path, named as the x402 resource.
    pub(super) resource: &'a str,
    /// The dialects to offer, in order.
    pub(super) offered: &'a [Dialect],
    /// Whether the 402 becomes the payment page (a browser's navigation): it then carries what
    /// the page shows.
    pub(super) page: bool,
}

/// The network of a BOLT11 invoice, by its prefix; `None` for one the dialects do not name.
pub(super) fn invoice_network(bolt11: &str) -> Option<Network> {
    let prefix = bolt11.get(..6)?.to_ascii_lowercase();
    if prefix == "lnbcrt" {
        Some(Network::Regtest)
    } else if prefix.starts_with("lntbs") {
        Some(Network::Signet)
    } else if prefix.starts_with("lntb") {
        Some(Network::Testnet)
    } else if prefix.starts_with("lnbc") {
        Some(Network::Mainnet)
    } else {
        None
    }
}

impl Paywall {
    /// The dialects `route` offers, in order: its own or the paywall's, x402 only when the
    /// backend can look up invoices.
    pub fn dialects_of(&self, route: &Route) -> Vec<Dialect> {
        let lookup = self.receiver.can_lookup_invoices();
        route
            .dialects
            .as_deref()
            .unwrap_or(&self.options.dialects)
            .iter()
            .copied()
            .filter(|d| *d != Dialect::X402 || lookup)
            .collect()
    }

    /// Whether the backend can look up invoices, which x402 needs: without it no route offers
    /// x402.
    pub fn can_lookup_invoices(&self) -> bool {
        self.receiver.can_lookup_invoices()
    }

    /// Counts one request that costs the backend a call (an invoice, or an x402 lookup) against
    /// the client's challenge rate: `Some` 429 once it is over.
    pub(super) fn rate_limit(&self, client: IpAddr) -> Option<Response> {
        let Err(wait) = self.limiter.check(client) else {
            return None;
        };
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
        Some(response)
    }

    /// A 402 with a fresh invoice and, for it, a challenge in every dialect offered: L402's and
    /// MPP's as `WWW-Authenticate` values in the order the route lists them (MPP first by
    /// default), and x402's `PAYMENT-REQUIRED`.
    pub(super) async fn challenge(
        &self,
        at: &Challenged<'_>,
        reason: Option<(Reason, String)>,
    ) -> Response {
        let route = at.route;
        if let Some(too_many) = self.rate_limit(at.client) {
            return too_many;
        }
        let price = at.price;
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
        let now = self.options.clock.now();
        let valid_until = now + self.options.invoice_expiry_secs + self.options.token_lifetime_secs;
        // MPP's challenge and x402's offer expire with the invoice, and never after the
        // macaroon minted for it: whichever dialect redeems the payment, its spent entry lives
        // until the macaroon's expiry, the latest of the three.
        let dialect_until = invoice
            .expires_at
            .min(now + self.options.invoice_expiry_secs);
        let macaroon = if at.offered.contains(&Dialect::L402) {
            // A metered route's token carries what it paid for: it buys a request that costs
            // at most that (paywall/metered.rs).
            let paid = price.to_string();
            let bound = [(PRICE_CONDITION, paid.as_str())];
            let conditions: &[(&str, &str)] = match route.meter {
                Some(_) => &bound,
                None => &[],
            };
            let minted = self.keys.mint(&MintRequest {
                payment_hash: invoice.payment_hash,
                route: &route.id,
                valid_until,
                conditions,
            });
            match minted {
                Ok(m) => Some(m),
                Err(e) => {
                    tracing::error!(error = %e, "cannot mint a token");
                    return unavailable(
                        "mint_failed",
                        "the gateway cannot mint tokens; its operator must check the root keys",
                    );
                }
            }
        } else {
            None
        };
        let network = invoice_network(&invoice.bolt11);
        let mpp = match network.filter(|_| at.offered.contains(&Dialect::Mpp)) {
            Some(network) => {
                let minted = self.mpp_keys.mint_charge(&ChargeOffer {
                    realm: &self.options.mpp_realm,
                    route: &route.id,
                    amount_sats: price,
                    invoice: &invoice.bolt11,
                    payment_hash: invoice.payment_hash,
                    network,
                    expires_at: dialect_until,
                    description: None,
                });
                match minted {
                    Ok(challenge) => Some(challenge.to_header_value()),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot mint an MPP challenge");
                        None
                    }
                }
            }
            None => None,
        };
        // A route that sells sessions offers one beside the single-use charge, with a deposit
        // invoice of its own (paywall/session.rs).
        let session = match self.session_policy(at) {
            Some(policy) if network.is_some() => {
                self.session_challenge(at, policy, policy.deposit_sats.max(price))
                    .await
            }
            _ => None,
        };
        let x402 = match network.filter(|_| at.offered.contains(&Dialect::X402)) {
            Some(network) => {
                let offer = self.x402_keys.requirements(&ExactOffer {
                    route: &route.id,
                    amount_msat: price.saturating_mul(1000),
                    invoice: &invoice.bolt11,
                    payment_hash: invoice.payment_hash,
                    network,
                    max_timeout_seconds: self.options.invoice_expiry_secs,
                    valid_until: dialect_until,
                });
                match offer {
                    Ok(offer) => {
                        let resource = ResourceInfo {
                            url: at.resource.to_string(),
                            description: (!route.description.is_empty())
                                .then(|| route.description.clone()),
                            mime_type: None,
                        };
                        Some(PaymentRequired::new(resource, vec![offer]).encode())
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot make an x402 offer");
                        None
                    }
                }
            }
            None => None,
        };
        self.metrics.challenge(&route.id);
        self.ledger.challenged(self.options.clock.now());
        let expires_at = UNIX_EPOCH + Duration::from_secs(invoice.expires_at.min(253_402_300_799));
        let mut body = json!({
            "error": "Payment Required",
            "invoice": invoice.bolt11,
            "payment_hash": hex::encode(invoice.payment_hash),
            "amount_sats": price,
            "expires_at": humantime::format_rfc3339_seconds(expires_at).to_string(),
        });
        let macaroon_base64 = macaroon.as_ref().map(|m| m.to_base64());
        if let Some(macaroon) = &macaroon_base64 {
            body["macaroon"] = json!(macaroon);
            body["format"] = json!("L402 <macaroon>:<preimage>");
        }
        if let Some(quote) = at.quote {
            body["price"] = json!({
                "per": "openai-tokens",
                "model": quote.model,
                "input_tokens": quote.input_tokens,
                "output_tokens": quote.output_tokens,
                "sats": quote.sats,
            });
        }
        if let Some((reason, message)) = &reason {
            body["reason"] = json!(reason.code());
            body["message"] = json!(message);
        }
        let mut response = (StatusCode::PAYMENT_REQUIRED, axum::Json(body)).into_response();
        if let Some(macaroon) = macaroon_base64.filter(|_| at.page) {
            response.extensions_mut().insert(PageFacts {
                description: route.description.clone(),
                resource: format!("GET {}", at.resource),
                amount_sats: price,
                invoice: invoice.bolt11.clone(),
                payment_hash: hex::encode(invoice.payment_hash),
                expires_at: invoice.expires_at,
                macaroon,
                reason: reason.as_ref().map(|(_, message)| message.clone()),
            });
        }
        let headers = response.headers_mut();
        let mut l402 = macaroon.map(|m| Challenge::new(m, invoice.bolt11).to_header_value());
        let mut mpp = mpp;
        let mut session = session;
        // The `WWW-Authenticate` values in the order the route lists its dialects: clients that
        // read one challenge from the start of the joined value pay the first.
        for dialect in at.offered {
            let value = match dialect {
                Dialect::L402 => l402.take(),
                Dialect::Mpp => mpp.take(),
                Dialect::X402 => None,
            };
            // From the String itself: its bytes become the header's, not a copy of them.
            if let Some(value) = value.and_then(|v| HeaderValue::try_from(v).ok()) {
                headers.append(header::WWW_AUTHENTICATE, value);
            }
            // The session challenge right after the MPP charge.
            if *dialect == Dialect::Mpp
                && let Some(value) = session.take().and_then(|v| HeaderValue::try_from(v).ok())
            {
                headers.append(header::WWW_AUTHENTICATE, value);
            }
        }
        if let Some(value) = x402.and_then(|v| HeaderValue::try_from(v).ok()) {
            headers.insert(PAYMENT_REQUIRED, value);
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

/// The same answer with an RFC 9457 problem body (`application/problem+json`), as MPP refusals
/// are worded; its status and headers (a fresh challenge set on a 402) are kept. A 429 or 503
/// the paywall gave instead of a 402 keeps its own body.
pub(super) fn with_problem(response: Response, problem: Problem) -> Response {
    let status = response.status();
    if status != StatusCode::PAYMENT_REQUIRED && status != StatusCode::UNAUTHORIZED {
        return response;
    }
    let problem = Problem {
        status: status.as_u16(),
        ..problem
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(problem_type::CONTENT_TYPE),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(problem.to_json()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invoice_names_its_network_by_its_prefix() {
        for (invoice, network) in [
            ("lnbcrt210n1p4s0abc", Some(Network::Regtest)),
            ("LNBCRT210N1P4S0ABC", Some(Network::Regtest)),
            ("lntbs210n1p4s0abc", Some(Network::Signet)),
            ("lntb210n1p4s0abc", Some(Network::Testnet)),
            ("lnbc210n1p4s0abc", Some(Network::Mainnet)),
            ("lnsb210n1p4s0abc", None),
            ("lnbc", None),
            ("", None),
        ] {
            assert_eq!(invoice_network(invoice), network, "{invoice}");
        }
    }
}
