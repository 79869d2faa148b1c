//! What a server answers in MPP besides the challenge: the `Payment-Receipt` of a paid request
//! and the RFC 9457 problem details of a refusal, with the `type` URIs of the drafts.

use serde::{Deserialize, Serialize};

use super::{METHOD_LIGHTNING, VerifyError};
use crate::encoding::{base64url_decode, base64url_encode};
use crate::header::MAX_HEADER_LEN;
use crate::time::format_rfc3339;
use crate::{PaymentHash, Reason};

/// The `type` URIs of RFC 9457 problem details: the base scheme's (draft-httpauth-payment-00,
/// section 8.2) and the Lightning charge's (draft-lightning-charge-00, section 11).
pub mod problem_type {
    /// The content type of a problem details body.
    pub const CONTENT_TYPE: &str = "application/problem+json";
    /// A 402: payment is required.
    pub const PAYMENT_REQUIRED: &str = "https://paymentauth.org/problems/payment-required";
    /// The payment was for less than the resource costs.
    pub const PAYMENT_INSUFFICIENT: &str = "https://paymentauth.org/problems/payment-insufficient";
    /// The payment's validity window passed.
    pub const PAYMENT_EXPIRED: &str = "https://paymentauth.org/problems/payment-expired";
    /// The proof did not verify.
    pub const VERIFICATION_FAILED: &str = "https://paymentauth.org/problems/verification-failed";
    /// The method is not accepted here.
    pub const METHOD_UNSUPPORTED: &str = "https://paymentauth.org/problems/method-unsupported";
    /// The credential does not parse.
    pub const MALFORMED_CREDENTIAL: &str = "https://paymentauth.org/problems/malformed-credential";
    /// The challenge is not valid for this request.
    pub const INVALID_CHALLENGE: &str = "https://paymentauth.org/problems/invalid-challenge";
    /// Lightning: the credential does not decode, or lacks `challenge`, `payload` or `preimage`.
    pub const LIGHTNING_MALFORMED_CREDENTIAL: &str =
        "https://paymentauth.org/problems/lightning/malformed-credential";
    /// Lightning: the challenge was not issued here, or was already consumed.
    pub const LIGHTNING_UNKNOWN_CHALLENGE: &str =
        "https://paymentauth.org/problems/lightning/unknown-challenge";
    /// Lightning: `sha256(preimage)` is not the payment hash.
    pub const LIGHTNING_INVALID_PREIMAGE: &str =
        "https://paymentauth.org/problems/lightning/invalid-preimage";
    /// Lightning: the invoice or the challenge expired.
    pub const LIGHTNING_EXPIRED_INVOICE: &str =
        "https://paymentauth.org/problems/lightning/expired-invoice";
}

/// An RFC 9457 problem details body (`application/problem+json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// The problem type, one of [`problem_type`].
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the type.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What happened this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The challenge concerned.
    #[serde(
        default,
        rename = "challengeId",
        skip_serializing_if = "Option::is_none"
    )]
    pub challenge_id: Option<String>,
}

impl Problem {
    fn new(kind: &str, title: &str, status: u16, detail: impl Into<String>) -> Self {
        Problem {
            kind: kind.to_string(),
            title: title.to_string(),
            status,
            detail: Some(detail.into()),
            challenge_id: None,
        }
    }

    /// The body of a 402 that carries a challenge.
    pub fn payment_required() -> Self {
        Problem::new(
            problem_type::PAYMENT_REQUIRED,
            "Payment Required",
            402,
            "Payment required for access.",
        )
    }

    /// The problem of a refusal, by its reason code. The status is Plannt's, as for L402: 402 (pay
    /// again) for a genuine credential that cannot buy this request, 401 for one that is not
    /// genuine; the drafts answer 401 for an expired or consumed challenge too.
    pub fn for_reason(reason: Reason, detail: impl Into<String>) -> Self {
        use problem_type as t;
        let (kind, title) = match reason {
            Reason::Malformed => (t::LIGHTNING_MALFORMED_CREDENTIAL, "Malformed Credential"),
            Reason::BadSignature | Reason::UnknownKey | Reason::Spent => {
                (t::LIGHTNING_UNKNOWN_CHALLENGE, "Unknown Challenge")
            }
            Reason::BadPreimage => (t::LIGHTNING_INVALID_PREIMAGE, "Invalid Preimage"),
            Reason::Expired => (t::LIGHTNING_EXPIRED_INVOICE, "Expired Invoice"),
            Reason::WrongRoute | Reason::CaveatFailed => {
                (t::INVALID_CHALLENGE, "Invalid Challenge")
            }
        };
        Problem::new(kind, title, reason.status(), detail)
    }

    /// With the challenge id concerned.
    pub fn with_challenge_id(mut self, id: impl Into<String>) -> Self {
        self.challenge_id = Some(id.into());
        self
    }

    /// The JSON body.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("strings and numbers serialize")
    }
}

impl VerifyError {
    /// The problem details of this refusal. Never holds the preimage.
    pub fn problem(&self) -> Problem {
        match self {
            VerifyError::Unsupported { .. } => Problem::new(
                problem_type::METHOD_UNSUPPORTED,
                "Method Unsupported",
                self.reason().status(),
                self.to_string(),
            ),
            VerifyError::Underpaid { .. } => Problem::new(
                problem_type::PAYMENT_INSUFFICIENT,
                "Payment Insufficient",
                self.reason().status(),
                self.to_string(),
            ),
            _ => Problem::for_reason(self.reason(), self.to_string()),
        }
    }
}

/// A `Payment-Receipt`: what a paid answer carries. Fields in Aperture's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// Always `success`.
    pub status: String,
    /// The payment method, `lightning`.
    pub method: String,
    /// When the payment was accepted, RFC 3339.
    pub timestamp: String,
    /// The payment hash, lowercase hex (never the preimage).
    pub reference: String,
    /// The challenge id.
    #[serde(
        default,
        rename = "challengeId",
        skip_serializing_if = "Option::is_none"
    )]
    pub challenge_id: Option<String>,
}

/// Why a `Payment-Receipt` value is not a receipt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// Longer than [`MAX_HEADER_LEN`].
    #[error("the Payment-Receipt value is {0} bytes, more than the {MAX_HEADER_LEN} we read")]
    TooLong(usize),
    /// Not strict base64url.
    #[error("the Payment-Receipt value is not base64url")]
    NotBase64url,
    /// Not the JSON of a receipt.
    #[error("the Payment-Receipt is not a receipt: {0}")]
    NotJson(String),
}

impl Receipt {
    /// The receipt of a Lightning charge accepted at `settled_at` (unix seconds).
    pub fn charge(payment_hash: &PaymentHash, challenge_id: &str, settled_at: u64) -> Self {
        Receipt {
            status: "success".to_string(),
            method: METHOD_LIGHTNING.to_string(),
            timestamp: format_rfc3339(settled_at).unwrap_or_else(|| "9999-12-31T23:59:59Z".into()),
            reference: payment_hash.to_hex(),
            challenge_id: Some(challenge_id.to_string()),
        }
    }

    /// The header value: base64url of the JSON, unpadded.
    pub fn to_header_value(&self) -> String {
        base64url_encode(&serde_json::to_vec(self).expect("strings serialize"))
    }

    /// Reads a header value.
    pub fn parse(value: &str) -> Result<Self, ReceiptError> {
        if value.len() > MAX_HEADER_LEN {
            return Err(ReceiptError::TooLong(value.len()));
        }
        let bytes = base64url_decode(value.trim()).ok_or(ReceiptError::NotBase64url)?;
        serde_json::from_slice(&bytes).map_err(|e| ReceiptError::NotJson(e.to_string()))
    }

    /// The payment hash in `reference`, if it is one.
    pub fn payment_hash(&self) -> Option<PaymentHash> {
        PaymentHash::from_hex(&self.reference).ok()
    }
}
