//! LNbits, both sides, through its REST API (`/api/v1/payments`, `/api/v1/wallet`).
//!
//! Follows LNbits v1.x (`lnbits/core/views/payment_api.py`): `X-Api-Key` auth (the invoice key
//! issues and reads, the admin key also pays); `out` must always be sent (it defaults to true);
//! amounts in answers are millisatoshis; creating answers 201. LNbits takes no fee limit, so
//! the fee is checked after the fact and reported.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use crate::http::{PAY_TIMEOUT, client, transport_error};
use crate::invoice::decode_invoice;
use crate::{
    Balance, InvoiceRequest, IssuedInvoice, LightningError, Network, Payer, Payment, PaymentLookup,
    Receiver, Secret,
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

#[derive(Deserialize)]
struct PaymentStatus {
    paid: bool,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    preimage: Option<String>,
    #[serde(default)]
    details: Option<Value>,
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
        Err(map_failure(status, &detail))
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
        let hash = plannt_l402::hex32(hash).ok_or_else(|| bad("the payment hash"))?;
        let preimage = preimage
            .and_then(plannt_l402::hex32)
            .ok_or_else(|| bad("the preimage"))?;
        Payment::checked("lnbits", hash, preimage, amount_msat, fee_msat)
    }
}

/// Maps an LNbits error answer to what a caller can act on. LNbits has no error codes, only
/// messages, so the message is read for the few failures that matter.
fn map_failure(status: u16, detail: &str) -> LightningError {
    let lower = detail.to_ascii_lowercase();
    match status {
        401 | 403 => LightningError::Unauthorized(format!("lnbits: {detail}")),
        _ if lower.contains("insufficient balance") => {
            LightningError::InsufficientBalance(format!("lnbits: {detail}"))
        }
        _ if lower.contains("already paid") => LightningError::AlreadyPaid,
        _ if lower.contains("expired") => LightningError::InvoiceExpired,
        _ if lower.contains("no route") => LightningError::NoRoute(format!("lnbits: {detail}")),
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
        let decoded = decode_invoice(&bolt11).map_err(|e| {
            LightningError::Backend(format!("lnbits: issued an invalid invoice: {e}"))
        })?;
        if hex::encode(decoded.payment_hash) != created.payment_hash.to_ascii_lowercase() {
            return Err(LightningError::Backend(
                "lnbits: the invoice's payment hash differs from the one reported".into(),
            ));
        }
        Ok(IssuedInvoice {
            bolt11,
            payment_hash: decoded.payment_hash,
            expires_at: decoded.expires_at(),
        })
    }

    async fn health(&self) -> Result<(), LightningError> {
        self.call(self.http.get(self.url("/api/v1/wallet")))
            .await
            .map(drop)
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
        if payment.fee_msat > max_fee_msat {
            tracing::warn!(
                fee_msat = payment.fee_msat,
                max_fee_msat,
                "lnbits charged more routing fee than allowed (LNbits takes no fee limit)"
            );
        }
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
        payment_hash: &[u8; 32],
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
        if status.paid {
            let details = status.details.unwrap_or(Value::Null);
            let amount = details
                .get("amount")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                .unsigned_abs();
            let fee = details
                .get("fee")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                .unsigned_abs();
            return Ok(PaymentLookup::Succeeded(self.payment_from(
                &hash,
                status.preimage.as_deref(),
                amount,
                fee,
            )?));
        }
        Ok(match status.status.as_deref() {
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
