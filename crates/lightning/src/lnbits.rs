//! LNbits, both sides, through its REST API (`/api/v1/payments`, `/api/v1/wallet`).
//!
//! Follows LNbits v1.x (`lnbits/core/views/payment_api.py`, checked against a live 1.6.2):
//! `X-Api-Key` auth (the invoice key issues and reads, the admin key also pays); `out` must
//! always be sent (it defaults to true); amounts in answers are millisatoshis, negative for an
//! outgoing payment, and so is its fee; creating answers 201. A key that matches no wallet is
//! answered 404 `Wallet not found.`; payment failures 520 `{detail, status}`. LNbits takes no
//! fee limit, so the fee is checked after the fact and reported. LNbits neither issues nor pays
//! an invoice without an amount (`Amountless invoices not supported.`), so an LNbits wallet can
//! neither open a prepaid session (no return invoice) nor refund one.

use async_trait::async_trait;
use plannt_l402::{PaymentHash, Preimage};
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use crate::backend::{PAY_TIMEOUT, issued, read_back, report_fee_over_limit};
use crate::http::{client, transport_error};
use crate::invoice::decode_invoice;
use crate::types::check_preimage;
use crate::{
    Balance, InvoiceRequest, InvoiceState, IssuedInvoice, LightningError, Network, Payer, Payment,
    PaymentLookup, Receiver, Secret,
};

/// An LNbits wallet.
pub struct LnBits {
    base: Url,
    key: Secret,
    network: Network,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct CreatedPayment {
    payment_hash: String,
    #[serde(default)]
    payment_request: Option<String>,
    #[serde(default)]
    bolt11: Option<String>,
}

#[derive(Deserialize)]
struct PaidPayment {
    payment_hash: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    preimage: Option<String>,
    #[serde(default)]
    fee: Option<i64>,
    #[serde(default)]
    amount: Option<i64>,
}

/// `GET /api/v1/payments/{hash}`. With the key of the wallet that holds the payment it carries
/// `details` (the payment: `status`, `amount`, `fee`, `preimage`); with any other key, or none,
/// LNbits still answers `paid` and the preimage, from any wallet, but no `details`. The
/// top-level `status` is there only for a failed or a rechecked pending payment.
#[derive(Deserialize)]
struct PaymentStatus {
    paid: bool,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    preimage: Option<String>,
    #[serde(default)]
    details: Option<PaymentDetails>,
}

#[derive(Deserialize)]
struct PaymentDetails {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    preimage: Option<String>,
    #[serde(default)]
    amount: i64,
    #[serde(default)]
    fee: i64,
}

#[derive(Deserialize)]
struct WalletBody {
    balance: i64,
}

impl LnBits {
    /// A wallet at `base` (e.g. `http://127.0.0.1:5000`) with an invoice or admin key.
    pub fn new(base: Url, key: Secret, network: Network) -> Self {
        LnBits {
            base,
            key,
            network,
            http: client(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base.as_str().trim_end_matches('/'))
    }

    async fn call(&self, request: reqwest::RequestBuilder) -> Result<Value, LightningError> {
        let response = request
            .header("X-Api-Key", self.key.expose())
            .send()
            .await
            .map_err(|e| transport_error("lnbits", e))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_error("lnbits", e))?;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return Ok(body);
        }
        let detail = body
            .get("detail")
            .map(|d| d.as_str().map_or_else(|| d.to_string(), str::to_string))
            .unwrap_or_else(|| format!("HTTP {status}"));
        let outcome = body.get("status").and_then(Value::as_str);
        Err(map_failure(status, &detail, outcome))
    }

    fn payment_from(
        &self,
        hash: &str,
        preimage: Option<&str>,
        amount_msat: u64,
        fee_msat: u64,
    ) -> Result<Payment, LightningError> {
        let bad = |what: &str| {
            LightningError::Backend(format!("lnbits: {what} is not 64 hex characters"))
        };
        let hash = PaymentHash::from_hex(hash).map_err(|_| bad("the payment hash"))?;
        let preimage = preimage
            .and_then(|p| Preimage::from_hex(p).ok())
            .ok_or_else(|| bad("the preimage"))?;
        Payment::checked("lnbits", hash, preimage, amount_msat, fee_msat)
    }
}

/// Maps an LNbits error answer to what a caller can act on. LNbits has no error codes, only
/// messages, so the message is read for the few failures that matter. Its payment errors
/// (HTTP 520) also carry the payment's `status`: `pending` means it may still complete.
fn map_failure(status: u16, detail: &str, outcome: Option<&str>) -> LightningError {
    let lower = detail.to_ascii_lowercase();
    match status {
        401 | 403 => LightningError::Unauthorized(format!("lnbits: {detail}")),
        // A key that matches no wallet.
        404 if lower.contains("wallet not found") => {
            LightningError::Unauthorized(format!("lnbits: {detail} (is the key right?)"))
        }
        // "Insufficient balance.", or for a payment leaving LNbits "You must reserve at least
        // (N sat) to cover potential routing fees."
        _ if lower.contains("insufficient balance") || lower.contains("reserve at least") => {
            LightningError::InsufficientBalance(format!("lnbits: {detail}"))
        }
        // "Internal invoice already paid." (paid inside LNbits), "Payment already paid."
        _ if lower.contains("already paid") => LightningError::AlreadyPaid,
        _ if lower.contains("expired") => LightningError::InvoiceExpired,
        _ if lower.contains("no route") => LightningError::NoRoute(format!("lnbits: {detail}")),
        // "Bolt11 decoding failed.", "Amountless invoices not supported.", "Missing BOLT11 invoice".
        _ if lower.contains("bolt11") || lower.contains("amountless") => {
            LightningError::InvalidInvoice(format!("lnbits: {detail}"))
        }
        // "Payment is still pending.": the outcome is unknown, so it must be looked up.
        _ if outcome == Some("pending") => LightningError::Backend(format!(
            "lnbits: {detail} (the payment may still complete: look it up before paying again)"
        )),
        400 | 404 | 422 => LightningError::InvalidInvoice(format!("lnbits: {detail}")),
        _ => LightningError::PaymentFailed(format!("lnbits: {detail}")),
    }
}

#[async_trait]
impl Receiver for LnBits {
    async fn create_invoice(
        &self,
        request: &InvoiceRequest,
    ) -> Result<IssuedInvoice, LightningError> {
        let body = json!({
            "out": false,
            "amount": request.amount_sats,
            "unit": "sat",
            "memo": request.memo,
            "expiry": request.expiry_secs,
        });
        let value = self
            .call(self.http.post(self.url("/api/v1/payments")).json(&body))
            .await?;
        let created: CreatedPayment = serde_json::from_value(value)
            .map_err(|e| LightningError::Backend(format!("lnbits: unreadable invoice: {e}")))?;
        let bolt11 = created.payment_request.or(created.bolt11).ok_or_else(|| {
            LightningError::Backend("lnbits: no payment_request in the answer".into())
        })?;
        // Read back what we will hand out: it must be a valid signed invoice for this hash.
        let decoded = read_back("lnbits", &bolt11, Some(&created.payment_hash))?;
        Ok(IssuedInvoice {
            bolt11,
            ..issued(&decoded)
        })
    }

    async fn health(&self) -> Result<(), LightningError> {
        self.call(self.http.get(self.url("/api/v1/wallet")))
            .await
            .map(drop)
    }

    /// `GET /api/v1/payments/{hash}` with the wallet's key: an invoice it issued is the payment
    /// whose `details.amount` is positive. `paid` (or status `success`) is settled, with the
    /// preimage checked; `failed` (LNbits' word for an invoice that expired unpaid) is expired;
    /// `pending` is open. No such payment (404), one without `details` (another wallet's) or an
    /// outgoing one is not an invoice of ours.
    async fn lookup_invoice(
        &self,
        payment_hash: &PaymentHash,
    ) -> Result<InvoiceState, LightningError> {
        let hash = hex::encode(payment_hash);
        let value = match self
            .call(self.http.get(self.url(&format!("/api/v1/payments/{hash}"))))
            .await
        {
            Ok(v) => v,
            Err(LightningError::InvalidInvoice(_)) => return Ok(InvoiceState::NotFound),
            Err(e) => return Err(e),
        };
        let status: PaymentStatus = serde_json::from_value(value)
            .map_err(|e| LightningError::Backend(format!("lnbits: unreadable status: {e}")))?;
        let Some(details) = status.details else {
            return Ok(InvoiceState::NotFound);
        };
        if details.amount <= 0 {
            return Ok(InvoiceState::NotFound);
        }
        let state = status.status.or(details.status);
        if status.paid || state.as_deref() == Some("success") {
            let preimage = status
                .preimage
                .or(details.preimage)
                .and_then(|p| Preimage::from_hex(&p).ok())
                .ok_or_else(|| {
                    LightningError::Backend(
                        "lnbits: a paid invoice without a preimage of 64 hex characters".into(),
                    )
                })?;
            check_preimage("lnbits", &preimage, payment_hash)?;
            return Ok(InvoiceState::Settled {
                preimage,
                amount_received_msat: details.amount.unsigned_abs(),
            });
        }
        Ok(match state.as_deref() {
            Some("failed") => InvoiceState::Expired,
            _ => InvoiceState::Open,
        })
    }

    fn can_lookup_invoices(&self) -> bool {
        true
    }

    /// LNbits refuses to issue an invoice without an amount (`POST /api/v1/payments` with
    /// `out: false` and `amount: 0` is answered 520 `Amountless invoices not supported.`, and
    /// it pays none either), so nothing is asked of it.
    async fn create_amountless_invoice(
        &self,
        memo: &str,
        expiry_secs: u64,
    ) -> Result<IssuedInvoice, LightningError> {
        let _ = (memo, expiry_secs);
        Err(LightningError::Backend(
            "lnbits cannot issue an invoice without an amount (LNbits answers \"Amountless \
             invoices not supported.\"); open a session with a wallet that can (lnd, cln, \
             phoenixd)"
                .into(),
        ))
    }
}

#[async_trait]
impl Payer for LnBits {
    async fn pay(&self, bolt11: &str, max_fee_msat: u64) -> Result<Payment, LightningError> {
        let decoded =
            decode_invoice(bolt11).map_err(|e| LightningError::InvalidInvoice(e.to_string()))?;
        let body = json!({ "out": true, "bolt11": bolt11.trim() });
        let value = self
            .call(
                self.http
                    .post(self.url("/api/v1/payments"))
                    .timeout(PAY_TIMEOUT)
                    .json(&body),
            )
            .await?;
        let paid: PaidPayment = serde_json::from_value(value)
            .map_err(|e| LightningError::Backend(format!("lnbits: unreadable payment: {e}")))?;
        let fee_msat = paid.fee.unwrap_or(0).unsigned_abs();
        let amount_msat = paid
            .amount
            .map(i64::unsigned_abs)
            .or(decoded.amount_msat)
            .unwrap_or(0);
        let payment = match paid.status.as_deref() {
            Some("failed") => {
                return Err(LightningError::PaymentFailed(
                    "lnbits: the payment failed".into(),
                ));
            }
            Some("success") => self.payment_from(
                &paid.payment_hash,
                paid.preimage.as_deref(),
                amount_msat,
                fee_msat,
            )?,
            // Pending, or an old server that reports no status: ask for the outcome.
            _ => match self.lookup_payment(&decoded.payment_hash).await? {
                PaymentLookup::Succeeded(p) => p,
                PaymentLookup::Failed(why) => return Err(LightningError::PaymentFailed(why)),
                PaymentLookup::Pending | PaymentLookup::NotFound => {
                    return Err(LightningError::Timeout);
                }
            },
        };
        report_fee_over_limit("lnbits", payment.fee_msat, max_fee_msat);
        Ok(payment)
    }

    async fn balance(&self) -> Result<Balance, LightningError> {
        let value = self.call(self.http.get(self.url("/api/v1/wallet"))).await?;
        let wallet: WalletBody = serde_json::from_value(value)
            .map_err(|e| LightningError::Backend(format!("lnbits: unreadable wallet: {e}")))?;
        Ok(Balance {
            msat: u64::try_from(wallet.balance).unwrap_or(0),
        })
    }

    async fn lookup_payment(
        &self,
        payment_hash: &PaymentHash,
    ) -> Result<PaymentLookup, LightningError> {
        let hash = hex::encode(payment_hash);
        let value = match self
            .call(self.http.get(self.url(&format!("/api/v1/payments/{hash}"))))
            .await
        {
            Ok(v) => v,
            Err(LightningError::InvalidInvoice(_)) => return Ok(PaymentLookup::NotFound),
            Err(e) => return Err(e),
        };
        let status: PaymentStatus = serde_json::from_value(value)
            .map_err(|e| LightningError::Backend(format!("lnbits: unreadable status: {e}")))?;
        // Without details LNbits did not take our key for the owner: the payment, if any, is
        // another wallet's, and its preimage proves nothing about ours.
        let Some(details) = status.details else {
            return Err(LightningError::Unauthorized(
                "lnbits: the key does not own a payment with this hash (LNbits answered without \
                 its details)"
                    .into(),
            ));
        };
        // LNbits answers the wallet's outgoing payment first; a positive amount is an invoice
        // it issued, not a payment it made.
        if details.amount > 0 {
            return Ok(PaymentLookup::NotFound);
        }
        let state = status.status.or(details.status);
        if status.paid || state.as_deref() == Some("success") {
            let preimage = status.preimage.or(details.preimage);
            return Ok(PaymentLookup::Succeeded(self.payment_from(
                &hash,
                preimage.as_deref(),
                details.amount.unsigned_abs(),
                details.fee.unsigned_abs(),
            )?));
        }
        Ok(match state.as_deref() {
            Some("failed") => PaymentLookup::Failed("lnbits: the payment failed".into()),
            _ => PaymentLookup::Pending,
        })
    }

    fn network(&self) -> Network {
        self.network
    }

    fn name(&self) -> &'static str {
        "lnbits"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The answers a live LNbits 1.6.2 gave, status, `detail` and `status` field.
    #[test]
    fn maps_the_answers_lnbits_gives() {
        let cases: [(u16, &str, Option<&str>, &str); 11] = [
            (401, "No Api Key provided.", None, "unauthorized"),
            (
                403,
                "Invoice (or Admin) key required.",
                None,
                "unauthorized",
            ),
            (404, "Wallet not found.", None, "unauthorized"),
            (
                520,
                "Insufficient balance.",
                Some("failed"),
                "insufficient_balance",
            ),
            (
                520,
                "You must reserve at least (2  sat) to cover potential routing fees.",
                Some("failed"),
                "insufficient_balance",
            ),
            (
                520,
                "Internal invoice already paid.",
                Some("failed"),
                "already_paid",
            ),
            (
                520,
                "Payment already paid.",
                Some("success"),
                "already_paid",
            ),
            (
                520,
                "Bolt11 decoding failed.",
                Some("failed"),
                "invalid_invoice",
            ),
            (
                520,
                "Payment failed: Only internal invoices can be used!",
                Some("failed"),
                "payment_failed",
            ),
            (520, "Payment is still pending.", Some("pending"), "backend"),
            (404, "Payment does not exist.", None, "invalid_invoice"),
        ];
        for (status, detail, outcome, code) in cases {
            let error = map_failure(status, detail, outcome);
            assert_eq!(error.code(), code, "{status} {detail}");
        }
        assert!(map_failure(520, "Payment is still pending.", Some("pending")).outcome_unknown());
    }
}
