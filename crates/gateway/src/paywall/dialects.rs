//! Redeeming the two dialects beside L402: an MPP credential (`Authorization: Payment …`,
//! verified statelessly, the preimage in it) and an x402 payload (`PAYMENT-SIGNATURE`, verified
//! statelessly, then the backend asked whether its invoice settled). Each yields the payment
//! hash the paywall claims, as for L402: one payment buys one answer, whichever dialect
//! presents it.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use plannt_l402::mpp::{self, ChargeExpect, PaymentCredential, Receipt};
use plannt_l402::x402::{self, ExactExpect, ExactVerified, PaymentPayload, SettlementResponse};
use plannt_l402::{Dialect, Reason};
use plannt_lightning::InvoiceState;
use serde_json::json;
use zeroize::Zeroizing;

use super::answers::{Challenged, invoice_network, unavailable, with_problem};
use super::headers::{PAYMENT_RECEIPT, PAYMENT_RESPONSE, PAYMENT_SIGNATURE, X_L402_REASON};
use super::{Lapsed, Paywall, Redeem};

impl Paywall {
    /// Until when the spent entry of a payment redeemed through MPP or x402 must live: past the
    /// expiry of the macaroon minted for the same invoice, which is at most `invoice_expiry_secs
    /// + token_lifetime_secs` after the challenge, and so after any moment since.
    fn dialect_keep_until(&self, valid_until: u64, now: u64) -> u64 {
        let macaroon_at_most = now
            .saturating_add(self.options.invoice_expiry_secs)
            .saturating_add(self.options.token_lifetime_secs);
        valid_until.max(macaroon_at_most)
    }

    /// Whether an answer bought with a credential that expired at `expired_at` may still be
    /// kept: it was committed before then, and is kept `keep.answer_secs` at most.
    fn may_be_kept(&self, expired_at: u64, now: u64) -> bool {
        self.options.keep.answer_bytes > 0
            && expired_at > 0
            && now < expired_at.saturating_add(self.options.keep.answer_secs)
    }

    /// Checks an MPP credential or an x402 payload, whichever the request carries and the route
    /// offers (MPP first): `None` if it carries neither.
    pub(super) async fn verify_other(
        &self,
        headers: &HeaderMap,
        at: &Challenged<'_>,
    ) -> Option<Result<Redeem, Response>> {
        if at.offered.contains(&Dialect::Mpp) {
            let values = headers.get_all(header::AUTHORIZATION);
            match PaymentCredential::from_headers(values.iter().map(HeaderValue::as_bytes)) {
                Ok(Some(credential)) => return Some(self.verify_mpp(&credential, at).await),
                Ok(None) => {}
                Err(e) => {
                    let e = mpp::VerifyError::Malformed(e);
                    return Some(Err(with_problem(
                        self.refuse(e.reason(), &e.to_string()),
                        e.problem(),
                    )));
                }
            }
        }
        if at.offered.contains(&Dialect::X402)
            && let Some(value) = headers.get(PAYMENT_SIGNATURE)
        {
            return Some(self.verify_x402(value, at).await);
        }
        None
    }

    /// An MPP credential: verified with the challenge keys for this route and price, then its
    /// payment hash is claimed like an L402 token's. Refusals are problem details.
    async fn verify_mpp(
        &self,
        credential: &PaymentCredential,
        at: &Challenged<'_>,
    ) -> Result<Redeem, Response> {
        let now = self.options.clock.now();
        let expect = ChargeExpect {
            route: &at.route.id,
            price_sats: at.price,
            now,
        };
        let mut lapsed = None;
        let checked = match self.mpp_keys.verify_charge(credential, &expect) {
            // Expired, but it may have bought an answer that is still kept: genuine in every
            // other respect (checked as of its last second), it may fetch that answer, nothing
            // else.
            Err(e @ mpp::VerifyError::Expired { expired_at })
                if self.may_be_kept(expired_at, now) =>
            {
                let before = ChargeExpect {
                    now: expired_at - 1,
                    ..expect
                };
                match self.mpp_keys.verify_charge(credential, &before) {
                    Ok(verified) => {
                        lapsed = Some(Lapsed {
                            why: e.to_string(),
                            problem: Some(e.problem()),
                        });
                        Ok(verified)
                    }
                    Err(_) => Err(e),
                }
            }
            checked => checked,
        };
        match checked {
            Ok(verified) => {
                let receipt = Receipt::charge(&verified.payment_hash, &verified.challenge_id, now);
                let receipt = HeaderValue::from_str(&receipt.to_header_value()).ok();
                let (secret, bearer) = match credential.preimage() {
                    Some(preimage) => (Zeroizing::new(*preimage.as_bytes()), None),
                    None => {
                        let hex = verified.payment_hash.to_hex();
                        (self.bearer_secret(&hex), Some(hex))
                    }
                };
                Ok(Redeem {
                    hash: verified.payment_hash,
                    keep_until: self.dialect_keep_until(verified.valid_until, now),
                    dialect: Dialect::Mpp,
                    secret,
                    bearer,
                    lapsed,
                    receipt: receipt.map(|value| (PAYMENT_RECEIPT, value)),
                })
            }
            Err(e) if e.reason().pay_again() => {
                self.metrics.rejected(e.reason());
                let answer = self.challenge(at, Some((e.reason(), e.to_string()))).await;
                Err(with_problem(answer, e.problem()))
            }
            Err(e) => Err(with_problem(
                self.refuse(e.reason(), &e.to_string()),
                e.problem(),
            )),
        }
    }

    /// What a verified x402 payload claims, and how its answer is sealed and receipted.
    fn x402_redeem(&self, verified: &ExactVerified, now: u64, lapsed: Option<Lapsed>) -> Redeem {
        let settled = SettlementResponse::lightning(verified, now).encode();
        Redeem {
            hash: verified.payment_hash,
            keep_until: self.dialect_keep_until(verified.valid_until, now),
            dialect: Dialect::X402,
            secret: self.bearer_secret(&verified.invoice),
            bearer: Some(verified.invoice.clone()),
            receipt: HeaderValue::from_str(&settled)
                .ok()
                .map(|value| (PAYMENT_RESPONSE, value)),
            lapsed,
        }
    }

    /// An x402 payload: checked to name an invoice we offered for this route and price, then
    /// the backend is asked whether it settled; a settled one is claimed like an L402 token.
    async fn verify_x402(
        &self,
        value: &HeaderValue,
        at: &Challenged<'_>,
    ) -> Result<Redeem, Response> {
        let refuse = |why: String| self.refuse(Reason::Malformed, &why);
        let text = value
            .to_str()
            .map_err(|_| refuse("PAYMENT-SIGNATURE is not text".into()))?;
        let payload = PaymentPayload::decode(text).map_err(|e| refuse(e.to_string()))?;
        let network = invoice_network(&payload.payload.invoice).ok_or_else(|| {
            refuse("the paid invoice is not a BOLT11 invoice of a network this gateway uses".into())
        })?;
        let now = self.options.clock.now();
        let expect = ExactExpect {
            route: &at.route.id,
            price_msat: at.price.saturating_mul(1000),
            network,
            now,
        };
        let checked = self.x402_keys.verify_exact(&payload, &expect);
        // Expired, but it may have bought an answer that is still kept: genuine in every other
        // respect (checked as of its last second), it may fetch that answer, nothing else. No
        // lookup: only a paid and committed payload has a kept answer.
        if let Err(e @ x402::VerifyError::Expired { expired_at }) = &checked
            && self.may_be_kept(*expired_at, now)
        {
            let before = ExactExpect {
                now: expired_at - 1,
                ..expect
            };
            if let Ok(verified) = self.x402_keys.verify_exact(&payload, &before) {
                let lapsed = Lapsed {
                    why: e.to_string(),
                    problem: None,
                };
                return Ok(self.x402_redeem(&verified, now, Some(lapsed)));
            }
        }
        let verified = match checked {
            Ok(verified) => verified,
            Err(e) if e.reason().pay_again() => {
                self.metrics.rejected(e.reason());
                return Err(self.challenge(at, Some((e.reason(), e.to_string()))).await);
            }
            Err(e) => return Err(self.refuse(e.reason(), &e.to_string())),
        };
        // Each lookup is a call to the backend: it counts against the client's challenge rate,
        // so one 402 cannot be turned into a flood of lookups.
        if let Some(too_many) = self.rate_limit(at.client) {
            return Err(too_many);
        }
        let lookup = self.receiver.lookup_invoice(&verified.payment_hash);
        let state = match tokio::time::timeout(self.options.invoice_timeout, lookup).await {
            Ok(Ok(state)) => state,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "the Lightning backend could not look up an invoice");
                return Err(lookup_unavailable());
            }
            Err(_) => {
                tracing::error!("the Lightning backend did not look up an invoice in time");
                return Err(lookup_unavailable());
            }
        };
        match state {
            // A fixed-amount invoice cannot settle for less, but the backend's word is checked
            // anyway: a backend that reports less than the price buys nothing (0: not reported).
            InvoiceState::Settled {
                amount_received_msat,
                ..
            } if amount_received_msat != 0 && amount_received_msat < expect.price_msat => {
                tracing::error!(
                    received_msat = amount_received_msat,
                    price_msat = expect.price_msat,
                    "the Lightning backend reports an x402 invoice settled for less than its price"
                );
                let why = format!(
                    "the invoice settled for {amount_received_msat} msat, less than the price of {} msat",
                    expect.price_msat
                );
                Err(self.refuse(Reason::CaveatFailed, &why))
            }
            InvoiceState::Settled { .. } => Ok(self.x402_redeem(&verified, now, None)),
            InvoiceState::Open => Err(not_paid_yet()),
            InvoiceState::Expired => {
                self.metrics.rejected(Reason::Expired);
                let why = "the invoice expired without being paid: pay the new one".to_string();
                Err(self.challenge(at, Some((Reason::Expired, why))).await)
            }
            InvoiceState::NotFound => {
                self.metrics.rejected(Reason::Expired);
                let why = "the Lightning backend no longer knows this invoice: pay the new one"
                    .to_string();
                Err(self.challenge(at, Some((Reason::Expired, why))).await)
            }
        }
    }
}

/// A 402 for an x402 payment whose invoice is still open: no new invoice (the client must not
/// pay twice), a `Retry-After`.
fn not_paid_yet() -> Response {
    let body = json!({
        "error": "Payment Required",
        "reason": "not_paid",
        "message": "the invoice is not paid yet: pay it, then send the same PAYMENT-SIGNATURE again",
    });
    let mut response = (StatusCode::PAYMENT_REQUIRED, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(X_L402_REASON, HeaderValue::from_static("not_paid"));
    response
}

fn lookup_unavailable() -> Response {
    unavailable(
        "lightning_unavailable",
        "the gateway cannot ask its Lightning backend whether the invoice was paid; nothing was spent, retry shortly",
    )
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Arc;

    use async_trait::async_trait;
    use axum::body::Body;
    use axum::http::Request;
    use plannt_l402::x402::PaymentRequired;
    use plannt_l402::{PaymentHash, RootKey};
    use plannt_lightning::dev::{DevNetwork, DevWallet};
    use plannt_lightning::{InvoiceRequest, IssuedInvoice, LightningError, Receiver as LnReceiver};
    use tower::{Layer, Service, ServiceExt};

    use super::*;
    use crate::paywall::PaywallOptions;
    use crate::routes::{Route, RouteTable, Target};
    use crate::store::MemoryStore;
    use plannt_l402::KeyRing;

    /// A dev wallet whose lookups report every settled invoice as paid `short_msat` short.
    struct Shortchanging {
        wallet: DevWallet,
        short_msat: u64,
    }

    #[async_trait]
    impl LnReceiver for Shortchanging {
        async fn create_invoice(
            &self,
            request: &InvoiceRequest,
        ) -> Result<IssuedInvoice, LightningError> {
            self.wallet.create_invoice(request).await
        }
        async fn health(&self) -> Result<(), LightningError> {
            Ok(())
        }
        async fn lookup_invoice(&self, hash: &PaymentHash) -> Result<InvoiceState, LightningError> {
            Ok(match self.wallet.lookup_invoice(hash).await? {
                InvoiceState::Settled {
                    preimage,
                    amount_received_msat,
                } => InvoiceState::Settled {
                    preimage,
                    amount_received_msat: amount_received_msat - self.short_msat,
                },
                other => other,
            })
        }
        fn can_lookup_invoices(&self) -> bool {
            true
        }
    }

    async fn paid_x402(short_msat: u64) -> Response {
        let network = DevNetwork::ephemeral(1_000);
        let receiver = Shortchanging {
            wallet: network.wallet("gateway"),
            short_msat,
        };
        let route = Route {
            id: "demo".into(),
            method: None,
            path: "/demo".into(),
            prefix: false,
            price_sats: Some(10),
            description: "a demo".into(),
            target: Target::Service,
            unavailable: None,
            on_upstream_failure: None,
            dialects: None,
            free: None,
            rate_limit: None,
            meter: None,
            session: None,
        };
        let paywall = Arc::new(Paywall::new(
            KeyRing::single(RootKey::new([7; 32])),
            Arc::new(receiver),
            Arc::new(MemoryStore::new()),
            RouteTable::new(vec![route]).unwrap(),
            PaywallOptions::default(),
        ));
        let inner = tower::service_fn(|_: Request<Body>| async {
            Ok::<_, Infallible>(StatusCode::OK.into_response())
        });
        let mut service = paywall.layer().layer(inner);
        let get = || Request::get("/demo").body(Body::empty()).unwrap();

        let challenge = service.ready().await.unwrap().call(get()).await.unwrap();
        assert_eq!(challenge.status(), StatusCode::PAYMENT_REQUIRED);
        let required = challenge.headers()["payment-required"].to_str().unwrap();
        let required = PaymentRequired::decode(required).unwrap();
        let offer = &required.accepts[0];
        network
            .pay("payer", offer.extra["invoice"].as_str().unwrap())
            .unwrap();

        let payload = PaymentPayload::exact(required.resource.clone(), offer).encode();
        let mut paid = get();
        paid.headers_mut().insert(
            "payment-signature",
            HeaderValue::from_str(&payload).unwrap(),
        );
        service.ready().await.unwrap().call(paid).await.unwrap()
    }

    #[tokio::test]
    async fn an_x402_invoice_the_backend_reports_underpaid_buys_nothing() {
        assert_eq!(paid_x402(0).await.status(), StatusCode::OK);
        let short = paid_x402(1).await;
        assert_ne!(short.status(), StatusCode::OK);
        assert_eq!(short.headers()["x-l402-reason"], "caveat_failed");
    }
}
