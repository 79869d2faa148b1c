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
pub(crate) fn check_preimage(
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

/// What a node says of an invoice it issued, looked up by payment hash.
#[derive(Clone, PartialEq, Eq)]
pub enum InvoiceState {
    /// Issued and not paid yet (LND: also `ACCEPTED`, held but not settled).
    Open,
    /// Paid. The preimage hashes to the payment hash: checked.
    Settled {
        /// The preimage.
        preimage: Preimage,
        /// What the node received, in millisatoshis.
        amount_received_msat: u64,
    },
    /// Expired or canceled without being paid: it can no longer be paid.
    Expired,
    /// The node has no invoice with this payment hash.
    NotFound,
}

impl std::fmt::Debug for InvoiceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InvoiceState::Open => f.write_str("Open"),
            InvoiceState::Settled {
                amount_received_msat,
                ..
            } => f
                .debug_struct("Settled")
                .field("preimage", &"<redacted>")
                .field("amount_received_msat", amount_received_msat)
                .finish(),
            InvoiceState::Expired => f.write_str("Expired"),
            InvoiceState::NotFound => f.write_str("NotFound"),
        }
    }
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
    /// Looks up an invoice this backend issued, by payment hash: open, settled (with the
    /// preimage, checked against the hash), expired or canceled, or unknown. A backend that
    /// cannot ([`can_lookup_invoices`](Self::can_lookup_invoices) is false) answers
    /// [`LightningError::Backend`].
    async fn lookup_invoice(
        &self,
        payment_hash: &PaymentHash,
    ) -> Result<InvoiceState, LightningError> {
        let _ = payment_hash;
        Err(LightningError::Backend(
            "this Lightning backend cannot look up the invoices it issued".into(),
        ))
    }
    /// Whether [`lookup_invoice`](Self::lookup_invoice) works: a gateway offers only payments
    /// it can check this way (x402, whose client presents no preimage) when it does.
    fn can_lookup_invoices(&self) -> bool {
        false
    }
    /// Issues an invoice that names no amount, which the payer chooses: what a client hands a
    /// server to be paid a refund to. A backend that cannot answers [`LightningError::Backend`].
    async fn create_amountless_invoice(
        &self,
        memo: &str,
        expiry_secs: u64,
    ) -> Result<IssuedInvoice, LightningError> {
        let _ = (memo, expiry_secs);
        Err(LightningError::Backend(
            "this Lightning backend cannot issue an invoice without an amount".into(),
        ))
    }
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
    /// Pays `amount_msat` to an invoice that names no amount (a refund to the return invoice a
    /// client gave), spending at most `max_fee_msat` on fees. A backend that cannot
    /// ([`can_pay_amountless`](Self::can_pay_amountless) is false) answers
    /// [`LightningError::Backend`] and pays nothing.
    async fn pay_amount(
        &self,
        bolt11: &str,
        amount_msat: u64,
        max_fee_msat: u64,
    ) -> Result<Payment, LightningError> {
        let _ = (bolt11, amount_msat, max_fee_msat);
        Err(LightningError::Backend(
            "this Lightning backend cannot pay an invoice without an amount".into(),
        ))
    }
    /// Whether [`pay_amount`](Self::pay_amount) works: a gateway offers prepaid sessions, whose
    /// close pays a refund, only when it does.
    fn can_pay_amountless(&self) -> bool {
        false
    }
    /// The network whose invoices this wallet pays.
    fn network(&self) -> Network;
    /// A short name for messages: `dev`, `lnbits`, …
    fn name(&self) -> &'static str;
}

/// A backend that does both; every backend URI opens one.
pub trait Wallet: Receiver + Payer {}

impl<T: Receiver + Payer> Wallet for T {}
