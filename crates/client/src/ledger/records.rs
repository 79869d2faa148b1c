//! What the ledger records and answers: payments, paid tokens, refusals, totals, and the use of
//! each budget window.

use plannt_l402::{Dialect, PaymentHash, Preimage};

use crate::policy::Window;

/// Why a reservation was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverBudget {
    /// The window that would be exceeded.
    pub window: Window,
    /// Its limit in sats.
    pub limit_sats: u64,
    /// What it has left in sats.
    pub left_sats: u64,
    /// Seconds until enough of it renews (none for `total`).
    pub renews_in_secs: Option<u64>,
    /// What the payment needed: its price plus its fee reserve, in sats (rounded up).
    pub cost_sats: u64,
}

/// What a window has used and has left.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WindowUse {
    /// The window (`hour`, `day` or `total` in JSON).
    pub window: Window,
    /// Its limit in sats, if any.
    pub limit_sats: Option<u64>,
    /// Sats spent or reserved in it (fees included).
    pub used_sats: u64,
    /// Sats left, if limited.
    pub left_sats: Option<u64>,
}

/// One payment as recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Record {
    /// Hex payment hash.
    pub payment_hash: String,
    /// Scheme, host and port of the server.
    pub origin: String,
    /// The path requested.
    pub path: String,
    /// Sats paid to the server.
    pub amount_sats: u64,
    /// Routing fee in millisatoshis.
    pub fee_msat: u64,
    /// `pending`, `paid` or `failed`.
    pub status: String,
    /// Hex preimage once paid.
    pub preimage: Option<String>,
    /// Unix seconds when it was first reserved.
    pub created_at: u64,
    /// The dialect it was paid in: `l402`, `mpp` or `x402`.
    pub dialect: String,
    /// What became of the answer to the request its credential was presented for: `None` (not
    /// presented, or recorded by an older Plannt), `unanswered` (presented, no whole answer
    /// yet), `answered`, `recovered` (answered when the same credential was presented again
    /// after the first answer was lost), or `lost` (the server kept no answer).
    pub answer: Option<String>,
}

/// The bound on a request body the ledger records: a body over it is recorded by its digest
/// only, and the request cannot be sent again from the ledger.
pub const MAX_RECORDED_BODY: usize = 64 * 1024;

/// The request a paid credential is presented for, as the ledger records it until its answer
/// arrives. The headers leave out every credential ([`PresentedRequest::headers`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentedRequest {
    /// The method.
    pub method: String,
    /// The whole URL.
    pub url: String,
    /// The headers the caller set, in order, without `Authorization`, `Proxy-Authorization`,
    /// `Cookie` and the payment dialects' own headers.
    pub headers: Vec<(String, String)>,
    /// The body, when at most [`MAX_RECORDED_BODY`] bytes.
    pub body: Option<Vec<u8>>,
    /// The SHA-256 of the body, hex.
    pub body_sha256: String,
    /// The body's length in bytes.
    pub body_len: u64,
}

/// A paid request whose credential was presented and whose answer never arrived whole (the
/// connection broke, the time ran out, the process died): the same credential, presented again
/// for the same request, may get the answer the server kept.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Unanswered {
    /// Hex payment hash.
    pub payment_hash: String,
    /// The dialect it was paid in.
    pub dialect: String,
    /// Sats paid.
    pub amount_sats: u64,
    /// Scheme, host and port of the server.
    pub origin: String,
    /// The path (the query is left out of what is shown: it may hold a key).
    pub path: String,
    /// The method.
    pub method: String,
    /// Unix seconds when the credential was last presented for it.
    pub presented_at: u64,
    /// Whether the ledger holds the whole request, so that it can be sent again (`false`: the
    /// body was over the bound the ledger records).
    pub retryable: bool,
    /// The request as recorded.
    #[serde(skip)]
    pub request: PresentedRequest,
}

/// A paid token waiting to be presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    /// The dialect it is presented in.
    pub dialect: Dialect,
    /// The payment hash it is bound to.
    pub payment_hash: PaymentHash,
    /// What the dialect presents besides the preimage: the macaroon, base64 (L402); the
    /// challenge to echo, as JSON (MPP); the `PAYMENT-SIGNATURE` value (x402).
    pub macaroon: String,
    /// The preimage.
    pub preimage: Preimage,
    /// Whether it was presented before (the server let it be reused).
    pub used: bool,
}

/// `(key, payments, sats)` rows, per host and per UTC day.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    /// Per origin.
    pub hosts: Vec<(String, u64, u64)>,
    /// Per `YYYY-MM-DD`.
    pub days: Vec<(String, u64, u64)>,
}

/// A refused challenge, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RefusalRecord {
    /// Scheme, host and port.
    pub origin: String,
    /// The path.
    pub path: String,
    /// The check that refused: `hash_mismatch`, `over_cap`, `over_budget`, …
    pub check: String,
    /// What it said.
    pub detail: String,
    /// Unix seconds.
    pub at: u64,
}

/// A payment to reserve.
pub struct Reservation<'a> {
    /// The dialect it is paid in.
    pub dialect: Dialect,
    /// Its payment hash.
    pub payment_hash: &'a PaymentHash,
    /// Where it is for.
    pub origin: &'a str,
    /// The path.
    pub path: &'a str,
    /// The invoice.
    pub bolt11: &'a str,
    /// What the dialect presents once paid, besides the preimage: the macaroon (L402), the
    /// challenge as JSON (MPP), the `PAYMENT-SIGNATURE` value (x402). Kept so a payment a crash
    /// interrupted can still be presented.
    pub macaroon: &'a str,
    /// The invoice amount.
    pub amount_msat: u64,
    /// The most it may cost in fees (reserved too).
    pub max_fee_msat: u64,
}

/// The outcome of a reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reserved {
    /// Recorded as pending: pay it now.
    New,
    /// This payment hash is already pending: look it up, never pay it again.
    AlreadyPending,
    /// This payment hash was already paid: here is its preimage.
    AlreadyPaid(Preimage),
}
