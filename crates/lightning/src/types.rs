//! The two sides of the boundary, as traits, and the values that cross it.

use async_trait::async_trait;
use plannt_l402::{PaymentHash, Preimage};

use crate::{LightningError, Network};

/// An invoice to issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceRequest {
    /// The amount in satoshis.
    pub amount_sats: u64,
    /// The description shown to the payer.
    pub memo: String,
    /// Seconds until the invoice expires.
    pub expiry_secs: u64,
}

impl InvoiceRequest {
    /// The amount in millisatoshis: at least 1 sat (an invoice without an amount would let the
    /// payer choose), and not beyond what a u64 of msat holds.
    pub fn amount_msat(&self) -> Result<u64, LightningError> {
        if self.amount_sats == 0 {
            return Err(LightningError::InvalidInvoice(
                "the amount must be at least 1 sat".into(),
            ));
        }
        self.amount_sats.checked_mul(1000).ok_or_else(|| {
            LightningError::InvalidInvoice("the amount is more bitcoin than exists".into())
        })
    }
}

/// An invoice the backend issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedInvoice {
    /// The BOLT11 string.
    pub bolt11: String,
    /// Its payment hash: what the macaroon is bound to.
    pub payment_hash: PaymentHash,
    /// Unix seconds at which it expires.
    pub expires_at: u64,
}

/// A payment that succeeded. Its preimage hashes to its payment hash: every backend checks.
#[derive(Clone, PartialEq, Eq)]
pub struct Payment {
    /// The payment hash.
    pub payment_hash: PaymentHash,
    /// The preimage: the proof of payment.
    pub preimage: Preimage,
    /// The amount paid to the payee, in millisatoshis.
    pub amount_msat: u64,
    /// The routing fee, in millisatoshis.
    pub fee_msat: u64,
}

impl Payment {
    /// A payment, if the preimage hashes to the payment hash; the error names the backend.
    pub fn checked(
        backend: &str,
        payment_hash: PaymentHash,
        preimage: Preimage,
        amount_msat: u64,
        fee_msat: u64,
    ) -> Result<Self, LightningError> {
        check_preimage(backend, &preimage, &payment_hash)?;
        Ok(Payment {
            payment_hash,
            preimage,
            amount_msat,
            fee_msat,
        })
    }
}

/// Fails unless `preimage` hashes to `payment_hash`; the error names the backend.
fn check_preimage(
    backend: &str,
    preimage: &Preimage,
    payment_hash: &PaymentHash,
) -> Result<(), LightningError> {
    if !preimage.pays(payment_hash) {
        return Err(LightningError::Backend(format!(
            "{backend} returned a preimage that does not hash to the payment hash"
        )));
    }
    Ok(())
}

/// A preimage a backend sent as hex (not yet checked against its hash).
pub(crate) fn hex_preimage(backend: &str, text: Option<&str>) -> Result<Preimage, LightningError> {
    text.and_then(|t| Preimage::from_hex(t).ok())
        .ok_or_else(|| {
            LightningError::Backend(format!("{backend}: the preimage is not 64 hex characters"))
        })
}

/// A preimage a backend sent as hex, checked against the payment hash: for what an invoice or
/// payment lookup reports. (A [`Payment`] is checked by [`Payment::checked`].)
pub(crate) fn checked_preimage(
    backend: &str,
    text: Option<&str>,
    payment_hash: &PaymentHash,
) -> Result<Preimage, LightningError> {
    let preimage = hex_preimage(backend, text)?;
    check_preimage(backend, &preimage, payment_hash)?;
    Ok(preimage)
}

/// For a backend that takes no fee limit (LNbits, phoenixd, NWC): a fee above the limit can
/// only be reported, after the payment.
pub(crate) fn report_fee_over_limit(backend: &str, fee_msat: u64, max_fee_msat: u64) {
    if fee_msat > max_fee_msat {
        tracing::warn!(
            backend,
            fee_msat,
            max_fee_msat,
            "the backend charged more routing fee than allowed: it takes no fee limit"
        );
    }
}

impl std::fmt::Debug for Payment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payment")
            .field("payment_hash", &self.payment_hash)
            .field("preimage", &"<redacted>")
            .field("amount_msat", &self.amount_msat)
            .field("fee_msat", &self.fee_msat)
            .finish()
    }
}

/// What a backend knows of an outgoing payment, looked up by payment hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentLookup {
    /// It succeeded: here is the preimage.
    Succeeded(Payment),
    /// It is still in flight: wait and look again; do not pay again.
    Pending,
    /// It failed: nothing was paid; it may be paid again.
    Failed(String),
    /// The backend has no record of it.
    NotFound,
}

/// A wallet's spendable balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Balance {
    /// Millisatoshis that can be spent.
    pub msat: u64,
}

/// The gateway side: issue invoices.
#[async_trait]
pub trait Receiver: Send + Sync {
    /// Issues an invoice. Bind the macaroon to the payment hash this returns.
    async fn create_invoice(
        &self,
        request: &InvoiceRequest,
    ) -> Result<IssuedInvoice, LightningError>;
    /// Checks that the backend answers and accepts our credentials.
    async fn health(&self) -> Result<(), LightningError>;
}

/// The client side: pay invoices.
#[async_trait]
pub trait Payer: Send + Sync {
    /// Pays an invoice, spending at most `max_fee_msat` on fees.
    async fn pay(&self, bolt11: &str, max_fee_msat: u64) -> Result<Payment, LightningError>;
    /// The spendable balance.
    async fn balance(&self) -> Result<Balance, LightningError>;
    /// Looks an outgoing payment up, so an interrupted one is finished instead of paid twice.
    async fn lookup_payment(
        &self,
        payment_hash: &PaymentHash,
    ) -> Result<PaymentLookup, LightningError>;
    /// The network whose invoices this wallet pays.
    fn network(&self) -> Network;
    /// A short name for messages: `dev`, `lnbits`, …
    fn name(&self) -> &'static str;
}

/// A backend that does both; every backend URI opens one.
pub trait Wallet: Receiver + Payer {}

impl<T: Receiver + Payer> Wallet for T {}

/// After a payment call broke off, or answered something unreadable: what the backend's own
/// record says decides. If it has no final word yet, the outcome stays unknown (`error`, or
/// `Timeout`), so the caller looks the payment up later instead of paying again.
pub(crate) async fn after_interruption<P: Payer + ?Sized>(
    payer: &P,
    payment_hash: &PaymentHash,
    error: LightningError,
) -> Result<Payment, LightningError> {
    let unknown = if error.outcome_unknown() {
        error
    } else {
        LightningError::Timeout
    };
    match payer.lookup_payment(payment_hash).await {
        Ok(PaymentLookup::Succeeded(payment)) => Ok(payment),
        Ok(PaymentLookup::Failed(why)) => Err(LightningError::PaymentFailed(why)),
        Ok(PaymentLookup::Pending | PaymentLookup::NotFound) | Err(_) => Err(unknown),
    }
}
