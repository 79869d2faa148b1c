//! Nostr Wallet Connect (NIP-47), both sides, over Nostr relays.
//!
//! Follows `nips/47.md`:
//!
//! - The URI `nostr+walletconnect://<wallet pubkey>?relay=…&secret=…` names the wallet
//!   service's key, its relays and the client's secret key. Requests are kind 23194 events
//!   signed with that secret, `p`-tagged to the wallet, their content `{"method","params"}`
//!   encrypted to the wallet; replies are kind 23195 events whose content decrypts to
//!   `{"result_type","error":{code,message}|null,"result"}`.
//! - Encryption: the wallet's info event (kind 13194, replaceable) lists what it accepts in an
//!   `encryption` tag. When that tag names `nip44_v2`, every request is NIP-44 v2 encrypted and
//!   tagged `["encryption","nip44_v2"]`; otherwise (no tag, no info event, or `nip04` alone)
//!   requests are NIP-04 encrypted, as the spec says for legacy wallets. The info event is read
//!   once per connection. A reply is decrypted with the scheme its content shows (NIP-04
//!   content carries `?iv=`). The event's content lists the methods the wallet serves: one
//!   that leaves out `lookup_invoice` cannot confirm an x402 payment, so the gateway offers no
//!   x402 through it.
//! - A request is sent without waiting for the relay's `OK` (some relays send none for
//!   ephemeral events). The reply is awaited, with a timeout, on a subscription for
//!   `authors=[wallet]`, `kinds=[23195]`, `#e=[request id]`: `@getalby/sdk` 7 replies with no
//!   `p` tag. A reply by anyone but the wallet, or for another request, is ignored.
//! - Amounts are millisatoshis. `make_invoice` takes `amount` (required: a wallet connection
//!   cannot issue an invoice without an amount), `description`, `expiry`;
//!   `pay_invoice` takes `invoice`, and `amount` only for an invoice that names none (a refund
//!   to a return invoice: [`Payer::pay_amount`]), and answers `preimage` and `fees_paid`; `lookup_invoice` takes `payment_hash`
//!   and answers a transaction whose `state` is `pending | settled | accepted | expired |
//!   failed` (wallets from before `state` are read from `settled_at` and `preimage`);
//!   `get_balance` answers `balance`.
//! - Fee limit: NIP-47's `pay_invoice` has no fee-limit field. The limit a wallet enforces is
//!   the connection's budget, set in the wallet when the connection is made. Plannt sends
//!   none, checks `fees_paid` after the fact, and logs a warning when it is above the limit
//!   asked for (as for phoenixd).
//! - Errors: `INSUFFICIENT_BALANCE` and `QUOTA_EXCEEDED` (the connection's budget) are an
//!   insufficient balance; `PAYMENT_FAILED` a failed payment (expired, already paid or no
//!   route when its message says so); `UNAUTHORIZED` and `RESTRICTED` refused credentials;
//!   `NOT_FOUND` an unknown payment or invoice to a lookup; `RATE_LIMITED`,
//!   `NOT_IMPLEMENTED` and `UNSUPPORTED_ENCRYPTION` refuse the request (a refused payment
//!   paid nothing); `INTERNAL`, `OTHER` and unknown codes leave a payment's outcome unknown.
//! - A payment whose reply never came, or came unreadable or as `INTERNAL`/`OTHER`, is looked
//!   up once by payment hash (`lookup_invoice`). Still unknown, it is reported as an error
//!   whose outcome is unknown ([`LightningError::outcome_unknown`]), never sent again.

use plannt_l402::PaymentHash;
use std::time::Duration;

use async_trait::async_trait;
use nostr_sdk::{Keys, PublicKey, SecretKey};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::OnceCell;
use url::Url;

use crate::backend::{
    PAY_TIMEOUT, REQUEST_TIMEOUT, amountless_to_pay, check_network, checked_preimage, hex_preimage,
    invoice_to_pay, issued, read_back, report_fee_over_limit,
};
use crate::invoice::{decode_invoice, unix_now};
use crate::{
    Balance, InvoiceRequest, InvoiceState, IssuedInvoice, LightningError, Network, Payer, Payment,
    PaymentLookup, Receiver, Secret,
};

mod relay;

pub use relay::NwcEncryption;
use relay::{Connection, Failure, wallet_error};

/// A Nostr Wallet Connect connection: the wallet service's key, its relays, our secret.
pub struct Nwc {
    wallet: PublicKey,
    keys: Keys,
    relays: Vec<Url>,
    network: Network,
    connection: OnceCell<Connection>,
    request_timeout: Duration,
    pay_timeout: Duration,
}

impl std::fmt::Debug for Nwc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nwc")
            .field("wallet", &self.wallet.to_hex())
            .field(
                "relays",
                &self.relays.iter().map(Url::as_str).collect::<Vec<_>>(),
            )
            .field("secret", &"<redacted>")
            .field("network", &self.network)
            .finish()
    }
}

/// A NIP-47 transaction, the fields we read (`make_invoice`, `lookup_invoice`).
#[derive(Deserialize)]
struct Transaction {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    invoice: Option<String>,
    #[serde(default)]
    payment_hash: Option<String>,
    #[serde(default)]
    preimage: Option<String>,
    #[serde(default)]
    amount: Option<u64>,
    #[serde(default)]
    fees_paid: Option<u64>,
    #[serde(default)]
    settled_at: Option<u64>,
    #[serde(default)]
    expires_at: Option<u64>,
}

/// `pay_invoice`'s result.
#[derive(Deserialize)]
struct PayResult {
    #[serde(default)]
    preimage: Option<String>,
    #[serde(default)]
    fees_paid: Option<u64>,
}

/// `get_balance`'s result.
#[derive(Deserialize)]
struct BalanceResult {
    balance: u64,
}

/// `get_info`'s result, the field we read.
#[derive(Deserialize)]
struct InfoResult {
    #[serde(default)]
    network: Option<String>,
}

impl Nwc {
    /// A connection to the wallet service `wallet_pubkey` (hex) through `relays`, signing with
    /// `secret` (hex). Nothing is contacted until the first call.
    pub fn new(
        wallet_pubkey: &str,
        relays: Vec<Url>,
        secret: &Secret,
        network: Network,
    ) -> Result<Self, LightningError> {
        let wallet = PublicKey::from_hex(wallet_pubkey).map_err(|_| {
            LightningError::Unauthorized("nwc: the wallet pubkey is not a valid key".into())
        })?;
        let secret = SecretKey::from_hex(secret.expose()).map_err(|_| {
            LightningError::Unauthorized("nwc: the secret is not a valid secret key".into())
        })?;
        if relays.is_empty() {
            return Err(LightningError::Unreachable(
                "nwc: the URI names no relay".into(),
            ));
        }
        Ok(Nwc {
            wallet,
            keys: Keys::new(secret),
            relays,
            network,
            connection: OnceCell::new(),
            request_timeout: REQUEST_TIMEOUT,
            pay_timeout: PAY_TIMEOUT,
        })
    }

    /// Sets how long a call may take, and how long a payment may before it is looked up.
    pub fn with_timeouts(mut self, request: Duration, pay: Duration) -> Self {
        self.request_timeout = request;
        self.pay_timeout = pay;
        self
    }

    /// The client's public key, hex: the key the wallet knows this connection by.
    pub fn client_pubkey(&self) -> String {
        self.keys.public_key().to_hex()
    }

    /// The encryption requests use, read from the wallet's info event (connecting first).
    pub async fn encryption(&self) -> Result<NwcEncryption, LightningError> {
        Ok(self.connection().await?.encryption)
    }

    /// The wallet's transaction for `payment_hash`, or `None` when it answers `NOT_FOUND`.
    async fn lookup(
        &self,
        payment_hash: &PaymentHash,
    ) -> Result<Option<Transaction>, LightningError> {
        let params = json!({ "payment_hash": hex::encode(payment_hash) });
        match self
            .call("lookup_invoice", params, self.request_timeout)
            .await
        {
            Ok(result) => serde_json::from_value(result)
                .map(Some)
                .map_err(|e| LightningError::Backend(format!("nwc: unreadable transaction: {e}"))),
            Err(Failure::Wallet { code, .. }) if code == "NOT_FOUND" => Ok(None),
            Err(failure) => Err(failure.into_error()),
        }
    }

    /// Reads an invoice this wallet issued, by payment hash (`lookup_invoice`).
    pub async fn lookup_invoice(
        &self,
        payment_hash: &PaymentHash,
    ) -> Result<InvoiceState, LightningError> {
        let Some(tx) = self.lookup(payment_hash).await? else {
            return Ok(InvoiceState::NotFound);
        };
        if tx.kind.as_deref() == Some("outgoing") {
            return Ok(InvoiceState::NotFound);
        }
        let settled = match tx.state.as_deref() {
            Some("settled") => true,
            Some("expired" | "failed") => return Ok(InvoiceState::Expired),
            Some(_) => false,
            None => tx.settled_at.is_some_and(|at| at > 0),
        };
        if settled {
            return Ok(InvoiceState::Settled {
                preimage: checked_preimage("nwc", tx.preimage.as_deref(), payment_hash)?,
                amount_received_msat: tx.amount.unwrap_or(0),
            });
        }
        if tx.state.is_none() && tx.expires_at.is_some_and(|at| at <= unix_now()) {
            return Ok(InvoiceState::Expired);
        }
        Ok(InvoiceState::Open)
    }
}

#[async_trait]
impl Receiver for Nwc {
    async fn create_invoice(
        &self,
        request: &InvoiceRequest,
    ) -> Result<IssuedInvoice, LightningError> {
        let amount_msat = request.amount_msat()?;
        let params = json!({
            "amount": amount_msat,
            "description": request.memo,
            "expiry": request.expiry_secs,
        });
        let result = self
            .call("make_invoice", params, self.request_timeout)
            .await
            .map_err(Failure::into_error)?;
        let tx: Transaction = serde_json::from_value(result)
            .map_err(|e| LightningError::Backend(format!("nwc: unreadable invoice: {e}")))?;
        let text = tx.invoice.ok_or_else(|| {
            LightningError::Backend("nwc: make_invoice returned no invoice".into())
        })?;
        let decoded = read_back("nwc", &text, tx.payment_hash.as_deref())?;
        if decoded.amount_msat != Some(amount_msat) {
            return Err(LightningError::Backend(format!(
                "nwc: asked for an invoice of {amount_msat} msat, got one of {:?}",
                decoded.amount_msat
            )));
        }
        if decoded.network != self.network {
            return Err(LightningError::Backend(format!(
                "nwc: the wallet issued a {} invoice, but the URI names {} (add ?network={})",
                decoded.network, self.network, decoded.network
            )));
        }
        Ok(issued(&decoded))
    }

    /// The relays answer, the wallet published its info event, and it answers `get_info`
    /// (`NOT_IMPLEMENTED` or `RESTRICTED` also prove it knows us) on our network.
    async fn health(&self) -> Result<(), LightningError> {
        match self.call("get_info", json!({}), self.request_timeout).await {
            Ok(result) => {
                let info: InfoResult = serde_json::from_value(result).map_err(|e| {
                    LightningError::Backend(format!("nwc: unreadable get_info: {e}"))
                })?;
                match info.network {
                    Some(network) => check_network("nwc", &network, self.network),
                    None => Ok(()),
                }
            }
            Err(Failure::Wallet { code, .. })
                if code == "NOT_IMPLEMENTED" || code == "RESTRICTED" =>
            {
                Ok(())
            }
            Err(failure) => Err(failure.into_error()),
        }
    }

    async fn lookup_invoice(
        &self,
        payment_hash: &PaymentHash,
    ) -> Result<InvoiceState, LightningError> {
        Nwc::lookup_invoice(self, payment_hash).await
    }

    /// Unless the wallet's info event, once read, leaves `lookup_invoice` out of its methods. A
    /// wallet that published no info event, or one not yet connected to, is given the benefit of
    /// the doubt: a lookup it refuses fails the one x402 redemption that asked, and pays nothing.
    fn can_lookup_invoices(&self) -> bool {
        let methods = self.connection.get().and_then(|c| c.methods.as_ref());
        methods.is_none_or(|methods| methods.iter().any(|m| m == "lookup_invoice"))
    }

    /// NIP-47's `make_invoice` requires `amount`: a wallet connection cannot issue an invoice
    /// without one, so nothing is asked of the wallet.
    async fn create_amountless_invoice(
        &self,
        memo: &str,
        expiry_secs: u64,
    ) -> Result<IssuedInvoice, LightningError> {
        let _ = (memo, expiry_secs);
        Err(LightningError::Backend(
            "nwc cannot issue an invoice without an amount: NIP-47's make_invoice requires \
             `amount`; open a session with a wallet that can (lnd, cln, phoenixd)"
                .into(),
        ))
    }
}

impl Nwc {
    /// `pay_invoice` of a decoded invoice: `amount_msat` is its amount, or with `chosen` the
    /// amount chosen for an invoice without one (sent as `amount`).
    async fn pay_decoded(
        &self,
        decoded: &crate::DecodedInvoice,
        amount_msat: u64,
        chosen: bool,
        max_fee_msat: u64,
    ) -> Result<Payment, LightningError> {
        let hash = decoded.payment_hash;
        let mut params = json!({ "invoice": decoded.bolt11 });
        if chosen {
            params["amount"] = json!(amount_msat);
        }
        let result = match self.call("pay_invoice", params, self.pay_timeout).await {
            Ok(result) => result,
            Err(Failure::NotSent(error)) => return Err(error),
            Err(Failure::NoReply) => {
                return crate::backend::after_interruption(self, &hash, LightningError::Timeout)
                    .await;
            }
            Err(Failure::Unreadable(why)) => {
                let error = LightningError::Backend(format!("nwc: {why}"));
                return crate::backend::after_interruption(self, &hash, error).await;
            }
            Err(Failure::Wallet { code, message }) => {
                let error = wallet_error(&code, &message, true);
                if error.outcome_unknown() {
                    return crate::backend::after_interruption(self, &hash, error).await;
                }
                return Err(error);
            }
        };
        let answer: PayResult = match serde_json::from_value(result) {
            Ok(answer) => answer,
            Err(_) => {
                let error = LightningError::Backend("nwc: unreadable payment answer".into());
                return crate::backend::after_interruption(self, &hash, error).await;
            }
        };
        let preimage = hex_preimage("nwc", answer.preimage.as_deref())?;
        let fee_msat = answer.fees_paid.unwrap_or(0);
        report_fee_over_limit("nwc", fee_msat, max_fee_msat);
        Payment::checked("nwc", hash, preimage, amount_msat, fee_msat)
    }
}

#[async_trait]
impl Payer for Nwc {
    async fn pay(&self, bolt11: &str, max_fee_msat: u64) -> Result<Payment, LightningError> {
        let (decoded, amount_msat) = invoice_to_pay(bolt11)?;
        self.pay_decoded(&decoded, amount_msat, false, max_fee_msat)
            .await
    }

    /// `pay_invoice` with `amount` (msat), which NIP-47 takes for an invoice without one.
    async fn pay_amount(
        &self,
        bolt11: &str,
        amount_msat: u64,
        max_fee_msat: u64,
    ) -> Result<Payment, LightningError> {
        let decoded = amountless_to_pay(bolt11, amount_msat, self.network)?;
        self.pay_decoded(&decoded, amount_msat, true, max_fee_msat)
            .await
    }

    fn can_pay_amountless(&self) -> bool {
        true
    }

    async fn balance(&self) -> Result<Balance, LightningError> {
        let result = self
            .call("get_balance", json!({}), self.request_timeout)
            .await
            .map_err(Failure::into_error)?;
        let balance: BalanceResult = serde_json::from_value(result)
            .map_err(|e| LightningError::Backend(format!("nwc: unreadable balance: {e}")))?;
        Ok(Balance {
            msat: balance.balance,
        })
    }

    async fn lookup_payment(
        &self,
        payment_hash: &PaymentHash,
    ) -> Result<PaymentLookup, LightningError> {
        let Some(tx) = self.lookup(payment_hash).await? else {
            return Ok(PaymentLookup::NotFound);
        };
        if tx.kind.as_deref() == Some("incoming") {
            return Ok(PaymentLookup::NotFound);
        }
        let amount_msat = || {
            tx.invoice
                .as_deref()
                .and_then(|text| decode_invoice(text).ok())
                .and_then(|invoice| invoice.amount_msat)
                .or(tx.amount)
                .unwrap_or(0)
        };
        let settled = match tx.state.as_deref() {
            Some("settled") => true,
            Some("failed" | "expired") => {
                return Ok(PaymentLookup::Failed(format!(
                    "nwc: the payment {}",
                    tx.state.as_deref().unwrap_or("failed")
                )));
            }
            Some(_) => false,
            None => {
                tx.settled_at.is_some_and(|at| at > 0)
                    || tx
                        .preimage
                        .as_deref()
                        .and_then(plannt_l402::hex32)
                        .is_some()
            }
        };
        if !settled {
            return Ok(PaymentLookup::Pending);
        }
        let preimage = hex_preimage("nwc", tx.preimage.as_deref())?;
        Ok(PaymentLookup::Succeeded(Payment::checked(
            "nwc",
            *payment_hash,
            preimage,
            amount_msat(),
            tx.fees_paid.unwrap_or(0),
        )?))
    }

    fn network(&self) -> Network {
        self.network
    }

    fn name(&self) -> &'static str {
        "nwc"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_never_prints() {
        let secret = Secret::new("11".repeat(32));
        let nwc = Nwc::new(
            &Keys::generate().public_key().to_hex(),
            vec![Url::parse("ws://127.0.0.1:1").unwrap()],
            &secret,
            Network::Regtest,
        )
        .unwrap();
        let printed = format!("{nwc:?}");
        assert!(!printed.contains(&"11".repeat(32)), "{printed}");
        assert!(printed.contains("<redacted>"));
    }
}
