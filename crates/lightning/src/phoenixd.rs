//! phoenixd, both sides, through its HTTP API.
//!
//! Follows phoenixd v0.8 (`src/commonMain/kotlin/fr/acinq/phoenixd/Api.kt`,
//! `json/JsonSerializers.kt`):
//!
//! - HTTP basic auth: any user name, the password is `http-password` from
//!   `~/.phoenix/phoenix.conf` (`http-password-limited-access` cannot pay). A wrong one is
//!   answered 401 in plain text.
//! - Request bodies are form-encoded; answers are JSON whose `null` fields are left out
//!   (`explicitNulls = false`). Errors are plain text: 400 for a bad or missing parameter,
//!   404 `Not found` for an unknown payment, 500 otherwise.
//! - Receiving: `POST /createinvoice` (`description` at most 128 characters; phoenixd chooses
//!   the preimage; without `amountSat` the invoice names no amount) and `GET /payments/incoming/{hash}` (settled ⇔ `isPaid`).
//! - Paying: `POST /payinvoice` answers 200 both when the payment succeeded (`paymentPreimage`,
//!   `routingFeeSat`) and when it failed (`reason`), so the preimage decides. phoenixd takes no
//!   fee limit (its fees are the trampoline node's): the fee is checked after the fact. A
//!   payment whose call breaks off is looked up with `GET /payments/outgoingbyhash/{hash}`
//!   (`isPaid`, `preimage`; a failed one has `completedAt` and no preimage, a pending one
//!   neither), never sent again. An invoice without an amount is paid with `amountSat` (whole
//!   satoshis); phoenixd would also pay it over an invoice's own amount, so Plannt sends it
//!   only for an invoice that names none.
//! - Balance: `GET /getbalance` → `balanceSat` (the fee credit is not spendable).

use plannt_l402::PaymentHash;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::backend::{
    PAY_TIMEOUT, REQUEST_TIMEOUT, amountless_to_pay, check_network, checked_preimage, hex_preimage,
    invoice_to_pay, issued, read_back, read_back_amountless, report_fee_over_limit,
};
use crate::http::{Unanswered, client, excerpt, exchange};
use crate::invoice::decode_invoice;
use crate::{
    Balance, InvoiceRequest, InvoiceState, IssuedInvoice, LightningError, Network, Payer, Payment,
    PaymentLookup, Receiver, Secret,
};

/// The user name sent with the password; phoenixd ignores it.
const USER: &str = "plannt";
/// The longest description `createinvoice` takes, in (UTF-16) characters.
const MAX_DESCRIPTION: usize = 128;

/// A phoenixd node.
pub struct Phoenixd {
    base: Url,
    password: Secret,
    network: Network,
    http: reqwest::Client,
    request_timeout: Duration,
    pay_timeout: Duration,
}

impl std::fmt::Debug for Phoenixd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Phoenixd")
            .field("base", &self.base.as_str())
            .field("password", &"<redacted>")
            .field("network", &self.network)
            .finish()
    }
}

/// `GeneratedInvoice`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeneratedInvoice {
    payment_hash: String,
    serialized: String,
}

/// `IncomingPayment`, the fields we read.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IncomingPayment {
    #[serde(default)]
    preimage: Option<String>,
    is_paid: bool,
    #[serde(default)]
    is_expired: bool,
    #[serde(default)]
    received_sat: u64,
}

/// `OutgoingPayment`, the fields we read.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OutgoingPayment {
    #[serde(default)]
    preimage: Option<String>,
    is_paid: bool,
    #[serde(default)]
    sent: u64,
    #[serde(default)]
    fees: u64,
    #[serde(default)]
    invoice: Option<String>,
    #[serde(default)]
    completed_at: Option<u64>,
}

/// `PaymentSent` or `PaymentFailed`, both answered 200.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PayAnswer {
    #[serde(default)]
    payment_hash: Option<String>,
    #[serde(default)]
    payment_preimage: Option<String>,
    #[serde(default)]
    routing_fee_sat: u64,
    #[serde(default)]
    reason: Option<String>,
}

/// `Balance`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BalanceBody {
    balance_sat: u64,
}

/// `NodeInfo`, the field we read.
#[derive(Deserialize)]
struct InfoBody {
    #[serde(default)]
    chain: String,
}

/// Why a call did not answer 2xx.
enum Failure {
    NotSent(LightningError),
    Transport(LightningError),
    Http { status: u16, text: String },
}

impl From<Unanswered> for Failure {
    fn from(unanswered: Unanswered) -> Self {
        match unanswered {
            Unanswered::NotSent(e) => Failure::NotSent(e),
            Unanswered::Broken(e) => Failure::Transport(e),
        }
    }
}

impl Failure {
    fn into_error(self) -> LightningError {
        match self {
            Failure::NotSent(e) | Failure::Transport(e) => e,
            Failure::Http { status, text } => match status {
                401 | 403 => LightningError::Unauthorized(format!(
                    "phoenixd: {text} (paying needs the full-access http-password)"
                )),
                400 => LightningError::InvalidInvoice(format!("phoenixd: {text}")),
                404 => LightningError::Backend(format!(
                    "phoenixd: {text} (HTTP 404: is this phoenixd's HTTP port?)"
                )),
                _ => LightningError::Backend(format!("phoenixd: {text} (HTTP {status})")),
            },
        }
    }
}

/// A `PaymentFailed` reason (lightning-kmp's `FinalFailure` texts). A failed payment paid
/// nothing.
fn failed(reason: &str) -> LightningError {
    let lower = reason.to_ascii_lowercase();
    if lower.contains("already been paid") || lower.contains("already paid") {
        LightningError::AlreadyPaid
    } else if lower.contains("another payment is in progress") {
        // This call paid nothing, but an earlier one is in flight: look it up.
        LightningError::Backend(format!(
            "phoenixd: {reason}: a payment of this invoice is in flight; look it up, do not pay \
             again"
        ))
    } else if lower.contains("not enough funds") || lower.contains("insufficient") {
        LightningError::InsufficientBalance(format!("phoenixd: {reason}"))
    } else if lower.contains("expired") {
        LightningError::InvoiceExpired
    } else if lower.contains("unable to route")
        || lower.contains("recipient was offline")
        || lower.contains("no channels available")
        || lower.contains("not connected")
        || lower.contains("please retry")
    {
        LightningError::NoRoute(format!("phoenixd: {reason}"))
    } else {
        LightningError::PaymentFailed(format!("phoenixd: {reason}"))
    }
}

impl Phoenixd {
    /// A node at `base` (e.g. `http://127.0.0.1:9740`) with its HTTP password.
    pub fn new(base: Url, password: Secret, network: Network) -> Self {
        Phoenixd {
            base,
            password,
            network,
            http: client(),
            request_timeout: REQUEST_TIMEOUT,
            pay_timeout: PAY_TIMEOUT,
        }
    }

    /// Sets how long a call may take, and how long a payment may before it is looked up.
    pub fn with_timeouts(mut self, request: Duration, pay: Duration) -> Self {
        self.request_timeout = request;
        self.pay_timeout = pay;
        self
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base.as_str().trim_end_matches('/'))
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<Value, Failure> {
        let request = request
            .basic_auth(USER, Some(self.password.expose()))
            .timeout(timeout);
        let (status, bytes) = exchange("phoenixd", request).await.map_err(Failure::from)?;
        if (200..300).contains(&status) {
            return serde_json::from_slice(&bytes).map_err(|_| {
                Failure::Transport(LightningError::Backend(
                    "phoenixd: the answer is not JSON".into(),
                ))
            });
        }
        Err(Failure::Http {
            status,
            text: excerpt(status, &bytes),
        })
    }

    async fn get(&self, path: &str) -> Result<Value, Failure> {
        self.send(self.http.get(self.url(path)), self.request_timeout)
            .await
    }

    /// `POST /createinvoice`; without `amount_sats`, an invoice without an amount.
    async fn create(
        &self,
        amount_sats: Option<u64>,
        memo: &str,
        expiry_secs: u64,
    ) -> Result<GeneratedInvoice, LightningError> {
        let length = memo.encode_utf16().count();
        if length > MAX_DESCRIPTION {
            return Err(LightningError::InvalidInvoice(format!(
                "the memo is {length} characters; phoenixd takes at most {MAX_DESCRIPTION}"
            )));
        }
        let mut form = vec![
            ("description", memo.to_string()),
            ("expirySeconds", expiry_secs.to_string()),
        ];
        if let Some(sats) = amount_sats {
            form.insert(0, ("amountSat", sats.to_string()));
        }
        let value = self
            .send(
                self.http.post(self.url("/createinvoice")).form(&form),
                self.request_timeout,
            )
            .await
            .map_err(Failure::into_error)?;
        serde_json::from_value(value)
            .map_err(|e| LightningError::Backend(format!("phoenixd: unreadable invoice: {e}")))
    }

    /// `POST /payinvoice` of a decoded invoice: `amount_msat` is its amount, or with `chosen`
    /// the amount chosen for an invoice without one (sent as `amountSat`).
    async fn pay_decoded(
        &self,
        decoded: &crate::DecodedInvoice,
        amount_msat: u64,
        chosen: bool,
        max_fee_msat: u64,
    ) -> Result<Payment, LightningError> {
        let hash = decoded.payment_hash;
        let mut form = vec![("invoice", decoded.bolt11.clone())];
        if chosen {
            form.push(("amountSat", (amount_msat / 1000).to_string()));
        }
        let answer = match self
            .send(
                self.http.post(self.url("/payinvoice")).form(&form),
                self.pay_timeout,
            )
            .await
        {
            Ok(answer) => answer,
            Err(Failure::NotSent(error)) => return Err(error),
            Err(Failure::Transport(error)) => {
                return crate::backend::after_interruption(self, &hash, error).await;
            }
            Err(failure @ Failure::Http { status: 500.., .. }) => {
                return crate::backend::after_interruption(self, &hash, failure.into_error()).await;
            }
            Err(failure) => return Err(failure.into_error()),
        };
        let answer: PayAnswer = match serde_json::from_value(answer) {
            Ok(answer) => answer,
            Err(_) => {
                let error = LightningError::Backend("phoenixd: unreadable payment answer".into());
                return crate::backend::after_interruption(self, &hash, error).await;
            }
        };
        if let Some(reported) = &answer.payment_hash
            && !reported.eq_ignore_ascii_case(&hex::encode(hash))
        {
            return Err(LightningError::Backend(
                "phoenixd: answered for another payment hash".into(),
            ));
        }
        let Some(preimage) = answer.payment_preimage.as_deref() else {
            let error = match answer.reason.as_deref() {
                Some(reason) => failed(reason),
                None => LightningError::Backend("phoenixd: neither a preimage nor a reason".into()),
            };
            if error.outcome_unknown() {
                return crate::backend::after_interruption(self, &hash, error).await;
            }
            return Err(error);
        };
        let preimage = hex_preimage("phoenixd", Some(preimage))?;
        let fee_msat = answer.routing_fee_sat.saturating_mul(1000);
        report_fee_over_limit("phoenixd", fee_msat, max_fee_msat);
        Payment::checked("phoenixd", hash, preimage, amount_msat, fee_msat)
    }

    /// Reads an invoice this node issued, by payment hash.
    pub async fn lookup_invoice(
        &self,
        payment_hash: &PaymentHash,
    ) -> Result<InvoiceState, LightningError> {
        let path = format!("/payments/incoming/{}", hex::encode(payment_hash));
        let value = match self.get(&path).await {
            Ok(value) => value,
            Err(Failure::Http { status: 404, .. }) => return Ok(InvoiceState::NotFound),
            Err(failure) => return Err(failure.into_error()),
        };
        let incoming: IncomingPayment = serde_json::from_value(value).map_err(|e| {
            LightningError::Backend(format!("phoenixd: unreadable incoming payment: {e}"))
        })?;
        if incoming.is_paid {
            return Ok(InvoiceState::Settled {
                preimage: checked_preimage("phoenixd", incoming.preimage.as_deref(), payment_hash)?,
                amount_received_msat: incoming.received_sat.saturating_mul(1000),
            });
        }
        Ok(if incoming.is_expired {
            InvoiceState::Expired
        } else {
            InvoiceState::Open
        })
    }
}

#[async_trait]
impl Receiver for Phoenixd {
    async fn create_invoice(
        &self,
        request: &InvoiceRequest,
    ) -> Result<IssuedInvoice, LightningError> {
        request.amount_msat()?;
        let created = self
            .create(
                Some(request.amount_sats),
                &request.memo,
                request.expiry_secs,
            )
            .await?;
        let decoded = read_back("phoenixd", &created.serialized, Some(&created.payment_hash))?;
        Ok(issued(&decoded))
    }

    /// `POST /createinvoice` without `amountSat`, which phoenixd then issues without an amount.
    async fn create_amountless_invoice(
        &self,
        memo: &str,
        expiry_secs: u64,
    ) -> Result<IssuedInvoice, LightningError> {
        let created = self.create(None, memo, expiry_secs).await?;
        read_back_amountless("phoenixd", &created.serialized, Some(&created.payment_hash))
    }

    async fn health(&self) -> Result<(), LightningError> {
        let value = self.get("/getinfo").await.map_err(Failure::into_error)?;
        let info: InfoBody = serde_json::from_value(value)
            .map_err(|e| LightningError::Backend(format!("phoenixd: unreadable getinfo: {e}")))?;
        check_network("phoenixd", &info.chain, self.network)
    }

    async fn lookup_invoice(
        &self,
        payment_hash: &PaymentHash,
    ) -> Result<InvoiceState, LightningError> {
        Phoenixd::lookup_invoice(self, payment_hash).await
    }

    fn can_lookup_invoices(&self) -> bool {
        true
    }
}

#[async_trait]
impl Payer for Phoenixd {
    async fn pay(&self, bolt11: &str, max_fee_msat: u64) -> Result<Payment, LightningError> {
        let (decoded, amount_msat) = invoice_to_pay(bolt11)?;
        self.pay_decoded(&decoded, amount_msat, false, max_fee_msat)
            .await
    }

    /// `POST /payinvoice` with `amountSat`: phoenixd pays whole satoshis, so an amount that is
    /// not one is refused rather than rounded.
    async fn pay_amount(
        &self,
        bolt11: &str,
        amount_msat: u64,
        max_fee_msat: u64,
    ) -> Result<Payment, LightningError> {
        let decoded = amountless_to_pay(bolt11, amount_msat, self.network)?;
        if !amount_msat.is_multiple_of(1000) {
            return Err(LightningError::InvalidInvoice(format!(
                "phoenixd pays whole satoshis; {amount_msat} msat is not a whole number of them"
            )));
        }
        self.pay_decoded(&decoded, amount_msat, true, max_fee_msat)
            .await
    }

    fn can_pay_amountless(&self) -> bool {
        true
    }

    async fn balance(&self) -> Result<Balance, LightningError> {
        let value = self.get("/getbalance").await.map_err(Failure::into_error)?;
        let balance: BalanceBody = serde_json::from_value(value)
            .map_err(|e| LightningError::Backend(format!("phoenixd: unreadable balance: {e}")))?;
        Ok(Balance {
            msat: balance.balance_sat.saturating_mul(1000),
        })
    }

    async fn lookup_payment(
        &self,
        payment_hash: &PaymentHash,
    ) -> Result<PaymentLookup, LightningError> {
        let path = format!("/payments/outgoingbyhash/{}", hex::encode(payment_hash));
        let value = match self.get(&path).await {
            Ok(value) => value,
            Err(Failure::Http { status: 404, .. }) => return Ok(PaymentLookup::NotFound),
            Err(failure) => return Err(failure.into_error()),
        };
        let outgoing: OutgoingPayment = serde_json::from_value(value).map_err(|e| {
            LightningError::Backend(format!("phoenixd: unreadable outgoing payment: {e}"))
        })?;
        if outgoing.is_paid {
            let preimage = hex_preimage("phoenixd", outgoing.preimage.as_deref())?;
            // `sent` is whole satoshis including fees: the invoice's amount is exact.
            let amount_msat = outgoing
                .invoice
                .as_deref()
                .and_then(|text| decode_invoice(text).ok())
                .and_then(|invoice| invoice.amount_msat)
                .unwrap_or_else(|| {
                    outgoing
                        .sent
                        .saturating_mul(1000)
                        .saturating_sub(outgoing.fees)
                });
            return Ok(PaymentLookup::Succeeded(Payment::checked(
                "phoenixd",
                *payment_hash,
                preimage,
                amount_msat,
                outgoing.fees,
            )?));
        }
        Ok(if outgoing.completed_at.is_some() {
            PaymentLookup::Failed("phoenixd: the payment failed".into())
        } else {
            PaymentLookup::Pending
        })
    }

    fn network(&self) -> Network {
        self.network
    }

    fn name(&self) -> &'static str {
        "phoenixd"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// lightning-kmp's `FinalFailure` texts, as `PaymentFailed.reason` carries them.
    #[test]
    fn maps_the_failure_reasons() {
        let cases = [
            ("this invoice has already been paid", "already_paid"),
            (
                "not enough funds in wallet to afford payment (available = 1000 msat)",
                "insufficient_balance",
            ),
            ("unable to route payment to recipient", "no_route"),
            (
                "the recipient was offline or did not have enough liquidity to receive the payment",
                "no_route",
            ),
            (
                "channel is not connected yet, please retry when connected",
                "no_route",
            ),
            ("another payment is in progress for that invoice", "backend"),
            (
                "channel creation is in progress, please retry when ready",
                "no_route",
            ),
            (
                "payment attempts exhausted without success",
                "payment_failed",
            ),
            (
                "wallet restarted while a payment was ongoing",
                "payment_failed",
            ),
        ];
        for (reason, code) in cases {
            assert_eq!(failed(reason).code(), code, "{reason}");
        }
        assert!(failed("another payment is in progress for that invoice").outcome_unknown());
    }
}
