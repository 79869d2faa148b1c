//! The checks made before any payment, each refusing with its own error and paying nothing.

use plannt_l402::{Challenge, Identifier, IdentifierError, Macaroon};
use plannt_lightning::{DecodedInvoice, InvoiceError, Network, decode_invoice};

use crate::policy::Policy;

/// A challenge that passed every check: what paying it would cost.
#[derive(Debug, Clone)]
pub struct Quote {
    /// The decoded invoice.
    pub invoice: DecodedInvoice,
    /// The macaroon to present once paid.
    pub macaroon: Macaroon,
    /// The amount in millisatoshis.
    pub amount_msat: u64,
}

impl Quote {
    /// The amount in sats, rounded up.
    pub fn amount_sats(&self) -> u64 {
        self.amount_msat.div_ceil(1000)
    }
}

/// Why a challenge is refused. Nothing was paid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The invoice does not decode or its signature does not verify.
    #[error("the invoice is invalid: {0}")]
    Invoice(#[from] InvoiceError),
    /// The macaroon's identifier is not the 66-byte L402 layout.
    #[error("the macaroon's identifier is unusable: {0}")]
    Identifier(#[from] IdentifierError),
    /// The invoice pays for something other than this macaroon.
    #[error(
        "the invoice's payment hash {invoice} differs from the macaroon's {macaroon}: paying it would not buy this token"
    )]
    HashMismatch {
        /// The invoice's hash, hex.
        invoice: String,
        /// The macaroon's hash, hex.
        macaroon: String,
    },
    /// No amount in the invoice: the server could take anything.
    #[error("the invoice names no amount; Plannt never pays amountless invoices")]
    NoAmount,
    /// The amount is above the per-request cap.
    #[error(
        "the invoice asks {amount_sats} sats, more than the {cap_sats} sats allowed per request"
    )]
    OverCap {
        /// What it asks.
        amount_sats: u64,
        /// The cap.
        cap_sats: u64,
    },
    /// The invoice is for another network than the wallet's.
    #[error("the invoice is for {invoice}, and the wallet pays on {wallet}")]
    WrongNetwork {
        /// The invoice's network.
        invoice: Network,
        /// The wallet's.
        wallet: Network,
    },
    /// The invoice has expired.
    #[error("the invoice expired at unix time {expires_at}")]
    Expired {
        /// When it expired.
        expires_at: u64,
    },
    /// The price is higher than a dry run of the same place showed.
    #[error(
        "the price changed: a dry run showed {quoted_sats} sats, the server now asks {amount_sats}"
    )]
    PriceChanged {
        /// What the dry run saw.
        quoted_sats: u64,
        /// What is asked now.
        amount_sats: u64,
    },
    /// The host is not in the allowed list.
    #[error("{0} is not an allowed host (see allowed_hosts)")]
    HostNotAllowed(String),
}

impl Refusal {
    /// A short code for the check that failed.
    pub fn check(&self) -> &'static str {
        match self {
            Refusal::Invoice(_) => "invoice_invalid",
            Refusal::Identifier(_) => "macaroon_invalid",
            Refusal::HashMismatch { .. } => "hash_mismatch",
            Refusal::NoAmount => "no_amount",
            Refusal::OverCap { .. } => "over_cap",
            Refusal::WrongNetwork { .. } => "wrong_network",
            Refusal::Expired { .. } => "expired",
            Refusal::PriceChanged { .. } => "price_changed",
            Refusal::HostNotAllowed(_) => "host_not_allowed",
        }
    }
}

/// Runs every check on a challenge from `host`, for a wallet on `network`, at unix time `now`.
pub fn check(
    challenge: &Challenge,
    host: &str,
    policy: &Policy,
    network: Network,
    now: u64,
) -> Result<Quote, Refusal> {
    if !policy.host_allowed(host) {
        return Err(Refusal::HostNotAllowed(host.to_string()));
    }
    let invoice = decode_invoice(&challenge.invoice)?;
    let identifier = Identifier::decode(challenge.macaroon.identifier())?;
    if identifier.payment_hash != invoice.payment_hash {
        return Err(Refusal::HashMismatch {
            invoice: hex::encode(invoice.payment_hash),
            macaroon: hex::encode(identifier.payment_hash),
        });
    }
    let amount_msat = invoice.amount_msat.ok_or(Refusal::NoAmount)?;
    let amount_sats = amount_msat.div_ceil(1000);
    if amount_sats > policy.budget.per_request_sats {
        return Err(Refusal::OverCap {
            amount_sats,
            cap_sats: policy.budget.per_request_sats,
        });
    }
    if invoice.network != network {
        return Err(Refusal::WrongNetwork {
            invoice: invoice.network,
            wallet: network,
        });
    }
    if invoice.is_expired_at(now) {
        return Err(Refusal::Expired {
            expires_at: invoice.expires_at(),
        });
    }
    Ok(Quote {
        invoice,
        macaroon: challenge.macaroon.clone(),
        amount_msat,
    })
}
