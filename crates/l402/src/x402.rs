//! x402 version 2, scheme `exact` on the Lightning Network: the three headers, their JSON, the
//! checks a client runs before paying, and the stateless check that a presented payload names an
//! invoice this server issued for this route and price.
//!
//! ```text
//! 402  PAYMENT-REQUIRED: base64({"x402Version":2,"resource":{…},"accepts":[{"scheme":"exact",
//!        "network":"bip122:000000000019d6689c085ae165831e93","amount":"21000","asset":"BTC",
//!        "payTo":"anonymous","maxTimeoutSeconds":600,
//!        "extra":{"paymentMethod":"lightning","invoice":"lnbc…","paymentHash":"<hex>",
//!                 "plannt":{"route":"demo","validUntil":1800004200,"tag":"<base64url HMAC>"}}}]})
//! pay the invoice (out of band)
//!      PAYMENT-SIGNATURE: base64({"x402Version":2,"accepted":{…as offered…},
//!                                 "payload":{"invoice":"lnbc…"}})
//! 200  PAYMENT-RESPONSE: base64({"success":true,"transaction":"<payment hash>","network":…,
//!                                "payer":"anonymous","extra":{"invoice":"lnbc…","settledAt":…}})
//! ```
//!
//! Amounts are millisatoshis, as decimal strings; networks are CAIP-2 `bip122:` ids
//! ([`Network::caip2`]). Unlike L402 and MPP the client presents no preimage: the payload names
//! the invoice it paid, and the server must ask its own node whether that invoice settled. This
//! crate does what needs no node: [`TagKeys::verify_exact`] checks that the invoice is one this
//! server issued (an HMAC tag in `extra.plannt` binds the network, payment hash, amount, route,
//! expiry and the invoice itself), for this route, at least this price, not expired. Whether it
//! was paid, and spending its payment hash once, are the caller's.

use std::fmt;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::dialect::{self, InvoiceFacts, Network, PayCheckError};
use crate::encoding::{base64_decode, base64_encode, base64url_encode};
use crate::header::MAX_HEADER_LEN;
use crate::key::{KeyRing, RootKey};
use crate::{PaymentHash, Reason, caveat};

/// The header of a 402: what the server accepts.
pub const PAYMENT_REQUIRED: &str = "payment-required";
/// The header of the paid retry: the payment.
pub const PAYMENT_SIGNATURE: &str = "payment-signature";
/// The header of the paid answer: the settlement.
pub const PAYMENT_RESPONSE: &str = "payment-response";
/// The protocol version these types are.
pub const X402_VERSION: u32 = 2;
/// The scheme: pay exactly the amount.
pub const SCHEME_EXACT: &str = "exact";
/// The asset of Lightning offers.
pub const ASSET_BTC: &str = "BTC";
/// The `payTo` of a Lightning offer whose payee is only in its invoice.
pub const PAY_TO_ANONYMOUS: &str = "anonymous";
/// `extra.paymentMethod` of a Lightning offer.
pub const PAYMENT_METHOD_LIGHTNING: &str = "lightning";

/// The resource a payment is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceInfo {
    /// Its URL.
    pub url: String,
    /// What it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The MIME type of the answer.
    #[serde(default, rename = "mimeType", skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
}

/// One way to pay, of the `accepts` list. The core fields are those of every scheme; `extra` is
/// the scheme's (for Lightning: `paymentMethod`, `invoice`, and Plannt's `paymentHash` and
/// `plannt`). Read leniently: a field the specification requires but a client does not need may
/// be absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRequirements {
    /// The scheme, `exact`.
    pub scheme: String,
    /// The CAIP-2 network id.
    pub network: String,
    /// The amount in the asset's atomic unit: millisatoshis for Lightning.
    pub amount: String,
    /// The asset, `BTC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<String>,
    /// The payee: `anonymous`, or the invoice's node id.
    #[serde(default, rename = "payTo", skip_serializing_if = "Option::is_none")]
    pub pay_to: Option<String>,
    /// How long the payment may take, in seconds.
    #[serde(
        default,
        rename = "maxTimeoutSeconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_timeout_seconds: Option<u64>,
    /// The scheme's own fields.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

/// The body of `PAYMENT-REQUIRED`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRequired {
    /// 2.
    #[serde(rename = "x402Version")]
    pub x402_version: u32,
    /// Why payment is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceInfo>,
    /// The ways to pay. Reading keeps those that have the core fields, and drops the others.
    pub accepts: Vec<PaymentRequirements>,
    /// Protocol extensions, kept as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Map<String, Value>>,
}

/// The payload of an `exact` Lightning payment: the invoice paid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LightningPayload {
    /// The BOLT11 invoice, as offered.
    pub invoice: String,
}

/// The body of `PAYMENT-SIGNATURE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentPayload {
    /// 2.
    #[serde(rename = "x402Version")]
    pub x402_version: u32,
    /// The resource, echoed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceInfo>,
    /// The requirements paid, exactly as offered.
    pub accepted: PaymentRequirements,
    /// The proof.
    pub payload: LightningPayload,
    /// Extensions, echoed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Map<String, Value>>,
}

/// The Lightning part of a settlement response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettlementExtra {
    /// The invoice paid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice: Option<String>,
    /// When the payment was accepted, unix seconds.
    #[serde(default, rename = "settledAt", skip_serializing_if = "Option::is_none")]
    pub settled_at: Option<u64>,
}

/// The body of `PAYMENT-RESPONSE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettlementResponse {
    /// Whether the payment was accepted.
    pub success: bool,
    /// Why not.
    #[serde(
        default,
        rename = "errorReason",
        skip_serializing_if = "Option::is_none"
    )]
    pub error_reason: Option<String>,
    /// The payment hash, hex (empty on failure).
    pub transaction: String,
    /// The CAIP-2 network id.
    pub network: String,
    /// Who paid: `anonymous` on Lightning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<String>,
    /// The Lightning details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<SettlementExtra>,
}

/// Why a header value is not the x402 JSON it should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Longer than [`MAX_HEADER_LEN`].
    #[error("the x402 header is {0} bytes, more than the {MAX_HEADER_LEN} we read")]
    TooLong(usize),
    /// Not base64.
    #[error("the x402 header is not base64")]
    NotBase64,
    /// Not the JSON of the message.
    #[error("the x402 header is not the expected JSON: {0}")]
    NotJson(String),
    /// Another protocol version.
    #[error("x402 version {0}; Plannt speaks version {X402_VERSION}")]
    Version(u32),
}

fn decode_json<T: serde::de::DeserializeOwned>(value: &str) -> Result<T, DecodeError> {
    if value.len() > MAX_HEADER_LEN {
        return Err(DecodeError::TooLong(value.len()));
    }
    let bytes = base64_decode(value.trim()).ok_or(DecodeError::NotBase64)?;
    serde_json::from_slice(&bytes).map_err(|e| DecodeError::NotJson(e.to_string()))
}

fn encode_json<T: Serialize>(message: &T) -> String {
    base64_encode(&serde_json::to_vec(message).expect("strings, numbers and JSON serialize"))
}

fn check_version(version: u32) -> Result<(), DecodeError> {
    if version == X402_VERSION {
        Ok(())
    } else {
        Err(DecodeError::Version(version))
    }
}

impl PaymentRequired {
    /// A `PAYMENT-REQUIRED` body for a resource.
    pub fn new(resource: ResourceInfo, accepts: Vec<PaymentRequirements>) -> Self {
        PaymentRequired {
            x402_version: X402_VERSION,
            error: Some("PAYMENT-SIGNATURE header is required".to_string()),
            resource: Some(resource),
            accepts,
            extensions: None,
        }
    }

    /// The header value: standard base64 of the JSON, padded.
    pub fn encode(&self) -> String {
        encode_json(self)
    }

    /// Reads a header value (standard or URL-safe base64, padded or not). An entry of `accepts`
    /// without the core fields is dropped, so one odd offer does not hide the others.
    pub fn decode(value: &str) -> Result<Self, DecodeError> {
        #[derive(Deserialize)]
        struct Wire {
            #[serde(rename = "x402Version")]
            x402_version: u32,
            #[serde(default)]
            error: Option<String>,
            #[serde(default)]
            resource: Option<ResourceInfo>,
            accepts: Vec<Value>,
            #[serde(default)]
            extensions: Option<Map<String, Value>>,
        }
        let wire: Wire = decode_json(value)?;
        check_version(wire.x402_version)?;
        Ok(PaymentRequired {
            x402_version: wire.x402_version,
            error: wire.error,
            resource: wire.resource,
            accepts: wire
                .accepts
                .into_iter()
                .filter_map(|v| serde_json::from_value(v).ok())
                .collect(),
            extensions: wire.extensions,
        })
    }
}

impl PaymentPayload {
    /// The payload for an offer whose invoice was paid: the requirements echoed as offered.
    pub fn exact(resource: Option<ResourceInfo>, accepted: &PaymentRequirements) -> Self {
        PaymentPayload {
            x402_version: X402_VERSION,
            resource,
            accepted: accepted.clone(),
            payload: LightningPayload {
                invoice: accepted.invoice().unwrap_or_default().to_string(),
            },
            extensions: None,
        }
    }

    /// The header value: standard base64 of the JSON, padded.
    pub fn encode(&self) -> String {
        encode_json(self)
    }

    /// Reads a header value.
    pub fn decode(value: &str) -> Result<Self, DecodeError> {
        let payload: PaymentPayload = decode_json(value)?;
        check_version(payload.x402_version)?;
        Ok(payload)
    }
}

impl SettlementResponse {
    /// The response to a Lightning payment accepted at `settled_at` (unix seconds).
    pub fn lightning(verified: &ExactVerified, settled_at: u64) -> Self {
        SettlementResponse {
            success: true,
            error_reason: None,
            transaction: verified.payment_hash.to_hex(),
            network: verified.network.caip2().to_string(),
            payer: Some(PAY_TO_ANONYMOUS.to_string()),
            extra: Some(SettlementExtra {
                invoice: Some(verified.invoice.clone()),
                settled_at: Some(settled_at),
            }),
        }
    }

    /// The header value: standard base64 of the JSON, padded.
    pub fn encode(&self) -> String {
        encode_json(self)
    }

    /// Reads a header value.
    pub fn decode(value: &str) -> Result<Self, DecodeError> {
        decode_json(value)
    }

    /// The payment hash in `transaction`, if it is one.
    pub fn payment_hash(&self) -> Option<PaymentHash> {
        PaymentHash::from_hex(&self.transaction).ok()
    }
}

impl PaymentRequirements {
    fn extra_str(&self, name: &str) -> Option<&str> {
        self.extra.get(name).and_then(Value::as_str)
    }

    /// Whether this is an `exact` offer on Lightning with an invoice: one Plannt can pay.
    pub fn is_exact_lightning(&self) -> bool {
        self.scheme == SCHEME_EXACT
            && self.extra_str("paymentMethod") == Some(PAYMENT_METHOD_LIGHTNING)
            && self.invoice().is_some_and(|i| !i.is_empty())
    }

    /// `extra.invoice`.
    pub fn invoice(&self) -> Option<&str> {
        self.extra_str("invoice")
    }

    /// `extra.paymentHash`, Plannt's convenience field, if present and 64 hex characters.
    pub fn payment_hash(&self) -> Option<PaymentHash> {
        self.extra_str("paymentHash")
            .and_then(|h| PaymentHash::from_hex(h).ok())
    }

    /// The amount in millisatoshis, if it is a positive whole number.
    pub fn amount_msat(&self) -> Option<u64> {
        dialect::parse_amount(&self.amount)
    }

    /// The network, if it is a `bip122:` id Plannt knows.
    pub fn network(&self) -> Option<Network> {
        Network::from_caip2(&self.network)
    }

    /// The checks a client runs before paying, over the invoice it decoded and checked: an
    /// `exact` Lightning offer in `BTC`, the invoice's amount equal to `amount` (msat), its
    /// payment hash the one named beside it (if any), `payTo` `anonymous` or the invoice's payee,
    /// the offer's network the invoice's and the wallet's, and the invoice not expired.
    pub fn check_before_paying(
        &self,
        invoice: &InvoiceFacts,
        wallet: Network,
        now: u64,
    ) -> Result<(), PayCheckError> {
        if !self.is_exact_lightning() {
            return Err(PayCheckError::Unsupported(format!(
                "scheme {:?} with paymentMethod {:?}",
                self.scheme,
                self.extra_str("paymentMethod")
            )));
        }
        if let Some(asset) = self
            .asset
            .as_deref()
            .filter(|a| !a.eq_ignore_ascii_case(ASSET_BTC))
        {
            return Err(PayCheckError::Unsupported(format!("asset {asset:?}")));
        }
        let msat = self
            .amount_msat()
            .ok_or_else(|| PayCheckError::BadAmount(self.amount.clone()))?;
        if self.extra.contains_key("paymentHash")
            && self.payment_hash() != Some(invoice.payment_hash)
        {
            return Err(PayCheckError::HashMismatch);
        }
        if let Some(pay_to) = self.pay_to.as_deref()
            && pay_to != PAY_TO_ANONYMOUS
            && !pay_to.eq_ignore_ascii_case(&invoice.payee)
        {
            return Err(PayCheckError::PayeeMismatch {
                offer: pay_to.to_string(),
                invoice: invoice.payee.clone(),
            });
        }
        dialect::check_invoice(msat, (&self.network, self.network()), invoice, wallet, now)
    }
}

/// The secret of the tags in `extra.plannt`. `Debug` prints `<redacted>`.
#[derive(Clone)]
pub struct TagKey {
    secret: Zeroizing<[u8; 32]>,
}

impl TagKey {
    /// A key of these bytes.
    pub fn new(secret: [u8; 32]) -> Self {
        TagKey {
            secret: Zeroizing::new(secret),
        }
    }

    /// The key Plannt derives from a macaroon root key: `HMAC-SHA256(k, "plannt x402 invoice tag
    /// v1")`, `k` the root key's derived macaroon key.
    pub fn derive(root: &RootKey) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(root.derived()).expect("any key length");
        mac.update(b"plannt x402 invoice tag v1");
        TagKey::new(mac.finalize().into_bytes().into())
    }

    fn tag(&self, fields: &TagFields<'_>) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret[..]).expect("any key length");
        // NUL never occurs in any of these (checked before minting), so the fields cannot shift.
        for part in [
            "plannt x402 exact lightning v1",
            fields.network,
            &fields.payment_hash,
            fields.amount,
            fields.route,
            &fields.valid_until.to_string(),
            fields.invoice,
        ] {
            mac.update(part.as_bytes());
            mac.update(b"\0");
        }
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for TagKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TagKey(<redacted>)")
    }
}

struct TagFields<'a> {
    network: &'a str,
    payment_hash: String,
    amount: &'a str,
    route: &'a str,
    valid_until: u64,
    invoice: &'a str,
}

/// The tag keys of a gateway: the last one tags, every one verifies, as in a [`KeyRing`].
#[derive(Clone, Debug, Default)]
pub struct TagKeys {
    keys: Vec<TagKey>,
}

/// What one `exact` Lightning offer is: the invoice the backend issued for this request.
#[derive(Debug, Clone, Copy)]
pub struct ExactOffer<'a> {
    /// The route id the payment buys.
    pub route: &'a str,
    /// The price in millisatoshis: `amount`, the invoice's amount.
    pub amount_msat: u64,
    /// The BOLT11 invoice.
    pub invoice: &'a str,
    /// Its payment hash.
    pub payment_hash: PaymentHash,
    /// Its network.
    pub network: Network,
    /// `maxTimeoutSeconds`: at most the invoice's expiry.
    pub max_timeout_seconds: u64,
    /// Unix seconds from which a payload for it is refused.
    pub valid_until: u64,
}

/// Why an offer could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MintError {
    /// No key to tag with.
    #[error("no x402 tag key is configured")]
    NoKey,
    /// The route id has characters a route id cannot have.
    #[error("route id {0:?} must be 1 to 64 characters of A-Z a-z 0-9 . -")]
    BadRoute(String),
    /// The invoice has characters no BOLT11 invoice has.
    #[error("the invoice is not a BOLT11 string (letters and digits only)")]
    BadInvoice,
    /// A price of zero.
    #[error("an amount of 0 msat cannot be paid with an invoice")]
    ZeroAmount,
}

/// What a payload is checked against: the request it is presented for.
#[derive(Debug, Clone, Copy)]
pub struct ExactExpect<'a> {
    /// The route id requested.
    pub route: &'a str,
    /// The route's price in millisatoshis now. An offer of at least this much buys it.
    pub price_msat: u64,
    /// The network this server's invoices are on.
    pub network: Network,
    /// Unix seconds now.
    pub now: u64,
}

/// A payload naming an invoice this server issued for this request. Not yet proof of payment:
/// the caller asks its node whether [`ExactVerified::payment_hash`] settled, then spends it once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExactVerified {
    /// The payment hash: the key of the spent set, the same for every dialect.
    pub payment_hash: PaymentHash,
    /// The invoice.
    pub invoice: String,
    /// Keep the payment hash spent at least until then.
    pub valid_until: u64,
    /// The amount offered, in millisatoshis.
    pub amount_msat: u64,
    /// The network.
    pub network: Network,
}

/// Why a payload does not buy the request. [`VerifyError::reason`] gives the code shared with
/// L402.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The header does not decode.
    #[error("malformed PAYMENT-SIGNATURE: {0}")]
    Malformed(#[from] DecodeError),
    /// Not an `exact` Lightning payment.
    #[error("the payment is not `exact` on Lightning: {0}")]
    Unsupported(String),
    /// `payload.invoice` is not `accepted.extra.invoice`.
    #[error("the invoice paid is not the invoice of the accepted offer")]
    InvoiceMismatch,
    /// The offer carries no tag of ours, or a tag that does not match: not issued here, or altered.
    #[error("the offer was not issued by this server, or was altered")]
    UnknownInvoice,
    /// Issued by us, on another network than this server's now.
    #[error("the offer is for network {0}, not this server's")]
    WrongNetwork(String),
    /// The offer expired.
    #[error("the offer expired at unix second {expired_at}")]
    Expired {
        /// Its `validUntil`.
        expired_at: u64,
    },
    /// The offer was for another route.
    #[error("the offer was issued for route {issued_for:?}, not this one")]
    WrongRoute {
        /// The route it names.
        issued_for: String,
    },
    /// The offer's amount is below the route's price.
    #[error("{paid} msat offered, the route costs {price}")]
    Underpaid {
        /// The offer's amount.
        paid: u64,
        /// The route's price now.
        price: u64,
    },
}

impl VerifyError {
    /// The reason code shared with L402: 401 for a payload that is not genuine, 402 (pay again)
    /// for a genuine one that cannot buy this request.
    pub fn reason(&self) -> Reason {
        match self {
            VerifyError::Malformed(_)
            | VerifyError::Unsupported(_)
            | VerifyError::InvoiceMismatch => Reason::Malformed,
            VerifyError::UnknownInvoice => Reason::BadSignature,
            VerifyError::Expired { .. } => Reason::Expired,
            VerifyError::WrongRoute { .. } => Reason::WrongRoute,
            VerifyError::WrongNetwork(_) | VerifyError::Underpaid { .. } => Reason::CaveatFailed,
        }
    }
}

impl TagKeys {
    /// Keys of these secrets; the last one tags.
    pub fn new(keys: Vec<TagKey>) -> Self {
        TagKeys { keys }
    }

    /// One key derived ([`TagKey::derive`]) from each root key of a ring, in its order.
    pub fn from_ring(ring: &KeyRing) -> Self {
        TagKeys {
            keys: ring
                .ids()
                .filter_map(|id| ring.get(id))
                .map(TagKey::derive)
                .collect(),
        }
    }

    /// The requirements of an `exact` Lightning offer, tagged with the newest key.
    pub fn requirements(&self, offer: &ExactOffer<'_>) -> Result<PaymentRequirements, MintError> {
        let key = self.keys.last().ok_or(MintError::NoKey)?;
        if !caveat::is_route_id(offer.route) {
            return Err(MintError::BadRoute(offer.route.to_string()));
        }
        if offer.invoice.is_empty() || !offer.invoice.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(MintError::BadInvoice);
        }
        if offer.amount_msat == 0 {
            return Err(MintError::ZeroAmount);
        }
        let amount = offer.amount_msat.to_string();
        let tag = key.tag(&TagFields {
            network: offer.network.caip2(),
            payment_hash: offer.payment_hash.to_hex(),
            amount: &amount,
            route: offer.route,
            valid_until: offer.valid_until,
            invoice: offer.invoice,
        });
        let extra = serde_json::json!({
            "paymentMethod": PAYMENT_METHOD_LIGHTNING,
            "invoice": offer.invoice,
            "paymentHash": offer.payment_hash.to_hex(),
            "plannt": {
                "route": offer.route,
                "validUntil": offer.valid_until,
                "tag": base64url_encode(&tag),
            },
        });
        let Value::Object(extra) = extra else {
            unreachable!("json! of an object")
        };
        Ok(PaymentRequirements {
            scheme: SCHEME_EXACT.to_string(),
            network: offer.network.caip2().to_string(),
            amount,
            asset: Some(ASSET_BTC.to_string()),
            pay_to: Some(PAY_TO_ANONYMOUS.to_string()),
            max_timeout_seconds: Some(offer.max_timeout_seconds),
            extra,
        })
    }

    /// Checks a payload for a request: version 2, `exact` on Lightning, the invoice paid the one
    /// offered, the offer tagged by one of our keys, on our network, not expired, for this route,
    /// at least this price. Whether the invoice was paid is the caller's to ask its node.
    pub fn verify_exact(
        &self,
        payload: &PaymentPayload,
        expect: &ExactExpect<'_>,
    ) -> Result<ExactVerified, VerifyError> {
        check_version(payload.x402_version)?;
        let accepted = &payload.accepted;
        if !accepted.is_exact_lightning() {
            return Err(VerifyError::Unsupported(format!(
                "scheme {:?} with paymentMethod {:?}",
                accepted.scheme,
                accepted.extra_str("paymentMethod")
            )));
        }
        let invoice = accepted.invoice().unwrap_or_default();
        if payload.payload.invoice != invoice {
            return Err(VerifyError::InvoiceMismatch);
        }
        let plannt = accepted.extra.get("plannt").and_then(Value::as_object);
        let field = |name: &str| plannt.and_then(|p| p.get(name));
        let (Some(route), Some(valid_until), Some(tag), Some(payment_hash)) = (
            field("route").and_then(Value::as_str),
            field("validUntil").and_then(Value::as_u64),
            field("tag").and_then(Value::as_str),
            accepted.payment_hash(),
        ) else {
            return Err(VerifyError::UnknownInvoice);
        };
        let fields = TagFields {
            network: &accepted.network,
            payment_hash: payment_hash.to_hex(),
            amount: &accepted.amount,
            route,
            valid_until,
            invoice,
        };
        let genuine = self.keys.iter().any(|key| {
            let expected = base64url_encode(&key.tag(&fields));
            bool::from(expected.as_bytes().ct_eq(tag.as_bytes()))
        });
        if !genuine {
            return Err(VerifyError::UnknownInvoice);
        }
        if accepted.network() != Some(expect.network) {
            return Err(VerifyError::WrongNetwork(accepted.network.clone()));
        }
        if expect.now >= valid_until {
            return Err(VerifyError::Expired {
                expired_at: valid_until,
            });
        }
        if route != expect.route {
            return Err(VerifyError::WrongRoute {
                issued_for: route.to_string(),
            });
        }
        // We tagged this amount, so it is a positive whole number.
        let amount_msat = accepted.amount_msat().ok_or(VerifyError::UnknownInvoice)?;
        if amount_msat < expect.price_msat {
            return Err(VerifyError::Underpaid {
                paid: amount_msat,
                price: expect.price_msat,
            });
        }
        Ok(ExactVerified {
            payment_hash,
            invoice: invoice.to_string(),
            valid_until,
            amount_msat,
            network: expect.network,
        })
    }

    /// Decodes a `PAYMENT-SIGNATURE` value and checks it.
    pub fn verify_header(
        &self,
        value: &str,
        expect: &ExactExpect<'_>,
    ) -> Result<ExactVerified, VerifyError> {
        self.verify_exact(&PaymentPayload::decode(value)?, expect)
    }
}
