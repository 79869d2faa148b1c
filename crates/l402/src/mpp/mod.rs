//! MPP, the `Payment` HTTP authentication scheme (draft-httpauth-payment-00), with the Lightning
//! `charge` intent (draft-lightning-charge-00), written and read as Lightning Labs' Aperture does.
//!
//! ```text
//! 402  WWW-Authenticate: Payment id="<hmac>", realm="…", method="lightning", intent="charge",
//!                        request="<base64url of the JCS JSON below>", expires="<RFC 3339>"
//!      request: {"amount":"21","currency":"sat","externalId":"<route>",
//!                "methodDetails":{"invoice":"lnbc…","network":"mainnet","paymentHash":"<hex>"}}
//! pay the invoice, learn the preimage
//!      Authorization: Payment <base64url of {"challenge":{…every parameter echoed…},
//!                                            "payload":{"preimage":"<hex>"}}>
//! 200  Payment-Receipt: <base64url of {"status":"success","method":"lightning",…}>
//! ```
//!
//! The challenge id is `base64url(HMAC-SHA256(key, realm|method|intent|request|expires|digest|opaque))`
//! ([`PaymentChallenge::hmac_input`]): the server keeps nothing per challenge and recognises its
//! own by recomputing the id ([`ChallengeKeys`]). Plannt binds the route and the price in the
//! `request` JSON, which the id covers and every client echoes unchanged: `externalId` is the
//! route id and `amount` the price in sats, beside the invoice and its payment hash. (Not in
//! `opaque`: a client may echo only the parameters the charge draft lists, and `opaque` is not
//! among them.) The `expires` parameter, also covered, is when the credential stops buying.
//!
//! Verification ([`ChallengeKeys::verify_charge`]) needs only the keys, the request's route and
//! price and the time: id (constant time), `sha256(preimage)` against the payment hash, expiry,
//! route, amount. Whether the payment hash was spent is the caller's spent set, shared with L402
//! and x402.
//!
//! The prepaid `session` intent (draft-lightning-session-00) is in [`session`]: a deposit,
//! requests debited from it, top-ups and a refunding close.

mod answer;
mod credential;
pub mod session;

pub use answer::{Problem, Receipt, ReceiptError, problem_type};
pub use credential::{
    ChallengeKey, ChallengeKeys, ChargeExpect, ChargeOffer, ChargeVerified, CredentialError,
    MintError, PaymentCredential, VerifyError,
};
pub use session::{
    DEBIT_COMMENT, INTENT_SESSION, NEED_TOPUP_EVENT, NeedTopUp, RefundStatus, SessionAction,
    SessionDebit, SessionExpect, SessionOffer, SessionPayload, SessionReceipt, SessionRequest,
    SessionRequestError, SessionVerified,
};

use serde::{Deserialize, Serialize};

use crate::dialect::{self, InvoiceFacts, Network, PayCheckError};
use crate::encoding::{base64url_decode, base64url_encode};
use crate::header::{MAX_HEADER_LEN, RawChallenge, parse_auth_header};
use crate::{PaymentHash, jcs};

/// The authentication scheme name.
pub const SCHEME: &str = "Payment";
/// The payment method of Lightning.
pub const METHOD_LIGHTNING: &str = "lightning";
/// The one-time payment intent.
pub const INTENT_CHARGE: &str = "charge";
/// The one currency of the Lightning charge: satoshis.
pub const CURRENCY_SAT: &str = "sat";
/// The receipt header of a paid answer.
pub const PAYMENT_RECEIPT: &str = "payment-receipt";

/// A `WWW-Authenticate: Payment` challenge: its auth-params, as sent, and what a credential
/// echoes back in `challenge`. The optional ones are `None` when absent (an empty value reads as
/// absent, as it hashes the same).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PaymentChallenge {
    /// The challenge id: the HMAC of the other parameters under the server's key.
    pub id: String,
    /// The protection space.
    pub realm: String,
    /// The payment method, `lightning` for Plannt.
    pub method: String,
    /// The intent, `charge` for Plannt.
    pub intent: String,
    /// base64url of the JCS JSON of the request ([`ChargeRequest`] for a Lightning charge).
    pub request: String,
    /// When the challenge expires, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// A description for humans; not covered by the id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Server correlation data, base64url of JCS JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opaque: Option<String>,
    /// A content digest of the request body (RFC 9530).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// Why a `WWW-Authenticate` value holds no usable `Payment` challenge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChallengeListError {
    /// No `Payment` challenge at all.
    #[error("no Payment challenge in WWW-Authenticate")]
    Missing,
    /// A `Payment` challenge lacks a required parameter.
    #[error("the Payment challenge has no {0} parameter")]
    Incomplete(&'static str),
    /// The value is longer than [`MAX_HEADER_LEN`].
    #[error("a WWW-Authenticate value is {0} bytes, more than the {MAX_HEADER_LEN} we read")]
    TooLong(usize),
    /// A quoted string never ends.
    #[error("a quoted value in WWW-Authenticate never ends")]
    UnterminatedQuote,
}

/// Why a challenge's `request` is not a Lightning charge request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// Not strict base64url.
    #[error("the request parameter is not base64url")]
    NotBase64url,
    /// Not the JSON of a charge request.
    #[error("the request is not a charge request: {0}")]
    NotJson(String),
}

/// Reads a challenge's `request` parameter, base64url of a JSON object, as a `T`; the intent's
/// own error when it is not strict base64url (`not_base64url`) or not `T`'s JSON (`not_json`,
/// with the parser's message).
fn decode_request<T: serde::de::DeserializeOwned, E>(
    request: &str,
    not_base64url: E,
    not_json: impl FnOnce(String) -> E,
) -> Result<T, E> {
    let bytes = base64url_decode(request).ok_or(not_base64url)?;
    serde_json::from_slice(&bytes).map_err(|e| not_json(e.to_string()))
}

/// Writes `value` as an RFC 9110 quoted-string: `"` and `\` as quoted-pairs, every other octet
/// as is, except controls other than the tab, which a quoted-string cannot carry and are dropped
/// (values Plannt mints never hold one).
fn push_quoted(out: &mut String, value: &str) {
    out.push('"');
    // Ids, base64url requests and timestamps need no escaping: copied whole.
    if !value
        .bytes()
        .any(|b| b == b'"' || b == b'\\' || b.is_ascii_control())
    {
        out.push_str(value);
        out.push('"');
        return;
    }
    for ch in value.chars() {
        match ch {
            '"' | '\\' => {
                out.push('\\');
                out.push(ch);
            }
            '\t' => out.push(ch),
            c if c.is_ascii_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
}

impl PaymentChallenge {
    /// The header value, parameters in Aperture's order: `id`, `realm`, `method`, `intent`,
    /// `request`, then those present of `expires`, `digest`, `description`, `opaque`.
    pub fn to_header_value(&self) -> String {
        // The fixed names, the id, realm, method, intent and expires come to about 150 bytes.
        let mut out = String::with_capacity(256 + self.request.len());
        out.push_str(SCHEME);
        let required = [
            ("id", &self.id),
            ("realm", &self.realm),
            ("method", &self.method),
            ("intent", &self.intent),
            ("request", &self.request),
        ];
        let optional = [
            ("expires", &self.expires),
            ("digest", &self.digest),
            ("description", &self.description),
            ("opaque", &self.opaque),
        ];
        let params = required.into_iter().chain(
            optional
                .into_iter()
                .filter_map(|(name, value)| value.as_ref().map(|v| (name, v))),
        );
        for (i, (name, value)) in params.enumerate() {
            out.push_str(if i == 0 { " " } else { ", " });
            out.push_str(name);
            out.push('=');
            push_quoted(&mut out, value);
        }
        out
    }

    /// The `Payment` challenges of one `WWW-Authenticate` value, in order. A challenge that lacks
    /// a required parameter is skipped; the value is refused only if none is left.
    pub fn parse_list(value: &str) -> Result<Vec<PaymentChallenge>, ChallengeListError> {
        Self::parse_all([value])
    }

    /// The `Payment` challenges of every `WWW-Authenticate` value, in order. An unusable value
    /// or challenge is skipped; the error of the first is returned only if none is usable.
    pub fn parse_all<'a>(
        values: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<PaymentChallenge>, ChallengeListError> {
        let mut out = Vec::new();
        let mut first_error = None;
        for value in values {
            if value.len() > MAX_HEADER_LEN {
                first_error.get_or_insert(ChallengeListError::TooLong(value.len()));
                continue;
            }
            let raw = match parse_auth_header(value) {
                Ok(raw) => raw,
                Err(_) => {
                    first_error.get_or_insert(ChallengeListError::UnterminatedQuote);
                    continue;
                }
            };
            for raw in raw.iter().filter(|r| r.scheme.eq_ignore_ascii_case(SCHEME)) {
                match Self::from_raw(raw) {
                    Ok(c) => out.push(c),
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        if out.is_empty() {
            return Err(first_error.unwrap_or(ChallengeListError::Missing));
        }
        Ok(out)
    }

    pub(crate) fn from_raw(raw: &RawChallenge<'_>) -> Result<Self, ChallengeListError> {
        let required = |name: &'static str| {
            raw.param(name)
                .map(str::to_string)
                .ok_or(ChallengeListError::Incomplete(name))
        };
        let optional = |name: &str| {
            raw.param(name)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        Ok(PaymentChallenge {
            id: required("id")?,
            realm: required("realm")?,
            method: required("method")?,
            intent: required("intent")?,
            request: required("request")?,
            expires: optional("expires"),
            description: optional("description"),
            opaque: optional("opaque"),
            digest: optional("digest"),
        })
    }

    /// The string the id is the HMAC of: the seven slots `realm`, `method`, `intent`, `request`,
    /// `expires`, `digest`, `opaque` joined by `|`, an absent one as the empty string.
    pub fn hmac_input(&self) -> String {
        let slot = |v: &Option<String>| v.as_deref().unwrap_or("").to_string();
        [
            self.realm.clone(),
            self.method.clone(),
            self.intent.clone(),
            self.request.clone(),
            slot(&self.expires),
            slot(&self.digest),
            slot(&self.opaque),
        ]
        .join("|")
    }

    /// Whether this is a Lightning charge (`method="lightning"`, `intent="charge"`): the only
    /// kind Plannt pays and issues.
    pub fn is_lightning_charge(&self) -> bool {
        self.method == METHOD_LIGHTNING && self.intent == INTENT_CHARGE
    }

    /// The `request`, decoded as a Lightning charge request.
    pub fn charge_request(&self) -> Result<ChargeRequest, RequestError> {
        ChargeRequest::decode(&self.request)
    }

    /// The `expires` parameter as unix seconds, if present and RFC 3339.
    pub fn expires_at(&self) -> Option<u64> {
        self.expires.as_deref().and_then(crate::time::parse_rfc3339)
    }
}

/// The `request` of a Lightning charge (draft-lightning-charge-00, section 7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeRequest {
    /// The amount in sats, a decimal string.
    pub amount: String,
    /// `sat`.
    pub currency: String,
    /// What is paid for (the invoice's memo).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The payee, in the method's own form; unused on Lightning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    /// The merchant's reference: Plannt puts the route id here.
    #[serde(
        default,
        rename = "externalId",
        skip_serializing_if = "Option::is_none"
    )]
    pub external_id: Option<String>,
    /// The Lightning part.
    #[serde(rename = "methodDetails")]
    pub method_details: MethodDetails,
}

/// The Lightning part of a charge request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MethodDetails {
    /// The BOLT11 invoice: authoritative.
    pub invoice: String,
    /// Its payment hash, lowercase hex, for clients that do not decode it.
    #[serde(
        default,
        rename = "paymentHash",
        skip_serializing_if = "Option::is_none"
    )]
    pub payment_hash: Option<String>,
    /// Its network (`mainnet`, `regtest`, `signet`); mainnet when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
}

impl ChargeRequest {
    /// The `request` parameter: base64url of the JCS form of this JSON.
    pub fn encode(&self) -> String {
        base64url_encode(self.canonical_json().as_bytes())
    }

    /// The JCS form of this JSON, written directly: every member is a string or an object of
    /// strings, and the names are fixed, so their canonical order is known (the order of UTF-16
    /// code units, which for these ASCII names is the order below). A 402 writes one per
    /// challenge; this spares it building a JSON value and sorting its members.
    fn canonical_json(&self) -> String {
        let details = &self.method_details;
        let mut out = String::with_capacity(160 + details.invoice.len());
        let member = |out: &mut String, name: &str, value: &str| {
            if !out.ends_with('{') {
                out.push(',');
            }
            jcs::write_string(out, name);
            out.push(':');
            jcs::write_string(out, value);
        };
        out.push('{');
        member(&mut out, "amount", &self.amount);
        member(&mut out, "currency", &self.currency);
        if let Some(description) = &self.description {
            member(&mut out, "description", description);
        }
        if let Some(external_id) = &self.external_id {
            member(&mut out, "externalId", external_id);
        }
        out.push_str(",\"methodDetails\":{");
        member(&mut out, "invoice", &details.invoice);
        if let Some(network) = &details.network {
            member(&mut out, "network", network);
        }
        if let Some(payment_hash) = &details.payment_hash {
            member(&mut out, "paymentHash", payment_hash);
        }
        out.push('}');
        if let Some(recipient) = &self.recipient {
            member(&mut out, "recipient", recipient);
        }
        out.push('}');
        out
    }

    /// Reads a `request` parameter.
    pub fn decode(request: &str) -> Result<ChargeRequest, RequestError> {
        decode_request(request, RequestError::NotBase64url, RequestError::NotJson)
    }

    /// The amount in sats, if it is a positive whole number.
    pub fn amount_sats(&self) -> Option<u64> {
        dialect::parse_amount(&self.amount)
    }

    /// The payment hash named beside the invoice, if present and 64 hex characters.
    pub fn payment_hash(&self) -> Option<PaymentHash> {
        self.method_details
            .payment_hash
            .as_deref()
            .and_then(|h| PaymentHash::from_hex(h).ok())
    }

    /// The network named beside the invoice: mainnet when absent, `None` when unknown.
    pub fn network(&self) -> Option<Network> {
        match self.method_details.network.as_deref() {
            None => Some(Network::Mainnet),
            Some(name) => Network::from_name(name),
        }
    }

    /// The checks a client runs before paying, over the invoice it decoded and checked: currency
    /// `sat`, the invoice's amount equal to `amount`, the payment hash and network (when named)
    /// the invoice's, the invoice on the wallet's network, and neither the invoice nor the
    /// challenge (`challenge_expires_at`, from [`PaymentChallenge::expires_at`]) expired.
    pub fn check_before_paying(
        &self,
        invoice: &InvoiceFacts,
        wallet: Network,
        challenge_expires_at: Option<u64>,
        now: u64,
    ) -> Result<(), PayCheckError> {
        if self.currency != CURRENCY_SAT {
            return Err(PayCheckError::Unsupported(format!(
                "currency {:?}",
                self.currency
            )));
        }
        let sats = self
            .amount_sats()
            .ok_or_else(|| PayCheckError::BadAmount(self.amount.clone()))?;
        let msat = sats
            .checked_mul(1000)
            .ok_or_else(|| PayCheckError::BadAmount(self.amount.clone()))?;
        if self.method_details.payment_hash.is_some()
            && self.payment_hash() != Some(invoice.payment_hash)
        {
            return Err(PayCheckError::HashMismatch);
        }
        let named = self.method_details.network.as_deref().unwrap_or("mainnet");
        dialect::check_invoice(msat, (named, self.network()), invoice, wallet, now)?;
        if let Some(at) = challenge_expires_at.filter(|at| now >= *at) {
            return Err(PayCheckError::Expired { expired_at: at });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_written_directly_is_its_jcs_form() {
        let full = ChargeRequest {
            amount: "21".into(),
            currency: "sat".into(),
            description: Some("a \"quoted\" \\ memo\nwith\ttabs, \u{1} and é ✓ 𝄞".into()),
            recipient: Some("someone".into()),
            external_id: Some("demo".into()),
            method_details: MethodDetails {
                invoice: "lnbcrt210n1pexample".into(),
                payment_hash: Some("ab".repeat(32)),
                network: Some("regtest".into()),
            },
        };
        let bare = ChargeRequest {
            description: None,
            recipient: None,
            external_id: None,
            method_details: MethodDetails {
                payment_hash: None,
                network: None,
                ..full.method_details.clone()
            },
            ..full.clone()
        };
        for request in [full, bare] {
            let value = serde_json::to_value(&request).unwrap();
            assert_eq!(
                request.canonical_json(),
                jcs::to_canonical_string(&value),
                "{request:?}"
            );
            assert_eq!(ChargeRequest::decode(&request.encode()).unwrap(), request);
        }
    }
}
