//! The `Authorization: Payment` credential, the server key that binds challenge ids, minting a
//! Lightning charge challenge and verifying a credential against it, with no state.

use std::borrow::Cow;
use std::fmt;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{
    CURRENCY_SAT, ChargeRequest, INTENT_CHARGE, METHOD_LIGHTNING, MethodDetails, PaymentChallenge,
    SCHEME,
};
use crate::dialect::{Network, parse_amount};
use crate::encoding::{base64url_decode, base64url_encode};
use crate::header::MAX_HEADER_LEN;
use crate::key::{KeyRing, RootKey};
use crate::time::{MAX_UNIX, format_rfc3339, parse_rfc3339};
use crate::{PaymentHash, Preimage, Reason, caveat};

/// An `Authorization: Payment` credential: the challenge echoed, an optional payer id, and the
/// method's proof (for a Lightning charge, `{"preimage": "<hex>"}`). `Debug` hides the payload.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentCredential {
    /// Every parameter of the challenge, unchanged.
    pub challenge: PaymentChallenge,
    /// The payer, e.g. a DID; Plannt neither sends nor needs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The proof of payment, an object.
    pub payload: serde_json::Map<String, serde_json::Value>,
}

/// Why an `Authorization` value is not a usable `Payment` credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// The value does not use the `Payment` scheme.
    #[error("the Authorization scheme is not Payment")]
    NotPayment,
    /// The value is longer than [`MAX_HEADER_LEN`].
    #[error("the Authorization value is {0} bytes, more than the {MAX_HEADER_LEN} we read")]
    TooLong(usize),
    /// The value is not valid UTF-8.
    #[error("the Authorization value is not valid text")]
    NotText,
    /// `Payment` and nothing after it.
    #[error("the Payment credential is empty")]
    Empty,
    /// The token is not strict base64url.
    #[error("the Payment credential is not base64url (URL-safe alphabet, canonical padding)")]
    NotBase64url,
    /// The token is not the JSON of a credential.
    #[error("the Payment credential is not a credential: {0}")]
    NotJson(String),
    /// A required field is empty.
    #[error("the Payment credential has no {0}")]
    Missing(&'static str),
    /// Several different `Payment` credentials in one request.
    #[error("several different Payment credentials in one request; send one")]
    Conflicting,
}

fn split_scheme(value: &str) -> Result<&str, CredentialError> {
    let value = value.trim_matches([' ', '\t']);
    let (scheme, rest) = match value.split_once([' ', '\t']) {
        Some((scheme, rest)) => (scheme, rest),
        None => (value, ""),
    };
    if !scheme.eq_ignore_ascii_case(SCHEME) {
        return Err(CredentialError::NotPayment);
    }
    Ok(rest.trim_matches([' ', '\t']))
}

/// The base64url token of a `Payment` `Authorization` value.
fn credential_token(value: &str) -> Result<&str, CredentialError> {
    if value.len() > MAX_HEADER_LEN {
        return Err(CredentialError::TooLong(value.len()));
    }
    let token = split_scheme(value)?;
    if token.is_empty() {
        return Err(CredentialError::Empty);
    }
    Ok(token)
}

/// The decoded token as text. Checked whole, before reading: serde_json checks the UTF-8 of a
/// string only where it keeps it, so a field one reader skips and another keeps would otherwise
/// be refused by one and not the other.
fn utf8(json: &[u8]) -> Result<&str, CredentialError> {
    std::str::from_utf8(json).map_err(|e| CredentialError::NotJson(e.to_string()))
}

fn check_required(challenge: &Echo<'_>) -> Result<(), CredentialError> {
    for (name, value) in [
        ("challenge.id", challenge.id),
        ("challenge.realm", challenge.realm),
        ("challenge.method", challenge.method),
        ("challenge.intent", challenge.intent),
        ("challenge.request", challenge.request),
    ] {
        if value.is_empty() {
            return Err(CredentialError::Missing(name));
        }
    }
    Ok(())
}

impl PaymentCredential {
    /// The credential for a paid Lightning charge: every parameter of `challenge` echoed, the
    /// preimage as lowercase hex.
    pub fn charge(challenge: &PaymentChallenge, preimage: &Preimage) -> Self {
        let mut payload = serde_json::Map::new();
        payload.insert("preimage".into(), preimage.to_hex().into());
        PaymentCredential {
            challenge: challenge.clone(),
            source: None,
            payload,
        }
    }

    /// The header value: `Payment <base64url of the JSON>`.
    pub fn to_header_value(&self) -> String {
        let json = serde_json::to_vec(self).expect("strings and JSON serialize");
        format!("{SCHEME} {}", base64url_encode(&json))
    }

    /// Parses one `Authorization` value. The scheme is read in any case.
    pub fn parse(value: &str) -> Result<Self, CredentialError> {
        let token = credential_token(value)?;
        let json = base64url_decode(token).ok_or(CredentialError::NotBase64url)?;
        let credential: PaymentCredential = serde_json::from_str(utf8(&json)?)
            .map_err(|e| CredentialError::NotJson(e.to_string()))?;
        check_required(&Echo::from(&credential.challenge))?;
        Ok(credential)
    }

    /// Finds the `Payment` credential among every `Authorization` value of a request. Values of
    /// other schemes are left alone; `Ok(None)` means there is none. The same credential twice
    /// counts once; two different ones are refused.
    pub fn from_headers<'a>(
        values: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Option<Self>, CredentialError> {
        let ours = |value: &[u8]| {
            let value = value.trim_ascii_start();
            value.len() >= SCHEME.len()
                && value[..SCHEME.len()].eq_ignore_ascii_case(SCHEME.as_bytes())
                && value
                    .get(SCHEME.len())
                    .is_none_or(|b| matches!(b, b' ' | b'\t'))
        };
        let mut found: Option<&str> = None;
        for value in values {
            if !ours(value) {
                continue;
            }
            if value.len() > MAX_HEADER_LEN {
                return Err(CredentialError::TooLong(value.len()));
            }
            let text = std::str::from_utf8(value).map_err(|_| CredentialError::NotText)?;
            let token = split_scheme(text)?;
            match found {
                Some(earlier) if split_scheme(earlier)? != token => {
                    return Err(CredentialError::Conflicting);
                }
                Some(_) => {}
                None => found = Some(text),
            }
        }
        found.map(Self::parse).transpose()
    }

    /// The preimage of a Lightning charge payload: `payload.preimage`, 64 hex characters.
    pub fn preimage(&self) -> Option<Preimage> {
        let hex = self.payload.get("preimage")?.as_str()?;
        Preimage::from_hex(hex).ok()
    }
}

impl fmt::Debug for PaymentCredential {
    // The payload is the proof of payment: show only which fields it has.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PaymentCredential")
            .field("challenge", &self.challenge)
            .field("source", &self.source)
            .field("payload", &self.payload.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The secret challenge ids are HMACs under. `Debug` prints `<redacted>`.
///
/// It is kept as HMAC-SHA256's keyed state (the key already hashed into the inner and outer
/// pads), which verification clones instead of hashing the key again: as secret as the key, and
/// like the derived macaroon key it lives as long as the process.
#[derive(Clone)]
pub struct ChallengeKey {
    keyed: Hmac<Sha256>,
}

impl ChallengeKey {
    /// A key of these bytes, of any length.
    pub fn from_secret(secret: &[u8]) -> Self {
        ChallengeKey {
            keyed: Hmac::<Sha256>::new_from_slice(secret).expect("any key length"),
        }
    }

    /// The key Plannt derives from a macaroon root key: `HMAC-SHA256(k, "plannt mpp challenge id
    /// v1")`, `k` the root key's derived macaroon key. A gateway needs no second secret, and a
    /// challenge id is never a macaroon signature.
    pub fn derive(root: &RootKey) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(root.derived()).expect("any key length");
        mac.update(b"plannt mpp challenge id v1");
        let secret = Zeroizing::new(<[u8; 32]>::from(mac.finalize().into_bytes()));
        ChallengeKey::from_secret(&secret[..])
    }

    fn mac(&self, challenge: &Echo<'_>) -> [u8; 32] {
        let mut mac = self.keyed.clone();
        fn slot(v: Option<&str>) -> &[u8] {
            v.unwrap_or("").as_bytes()
        }
        let slots: [&[u8]; 7] = [
            challenge.realm.as_bytes(),
            challenge.method.as_bytes(),
            challenge.intent.as_bytes(),
            challenge.request.as_bytes(),
            slot(challenge.expires),
            slot(challenge.digest),
            slot(challenge.opaque),
        ];
        for (i, part) in slots.iter().enumerate() {
            if i > 0 {
                mac.update(b"|");
            }
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// The id of a challenge: base64url, unpadded, of the HMAC of
    /// [`PaymentChallenge::hmac_input`].
    pub fn challenge_id(&self, challenge: &PaymentChallenge) -> String {
        base64url_encode(&self.mac(&Echo::from(challenge)))
    }

    /// Whether the challenge's id is its HMAC under this key, compared in constant time.
    pub fn verifies(&self, challenge: &PaymentChallenge) -> bool {
        self.verifies_echo(&Echo::from(challenge))
    }

    fn verifies_echo(&self, challenge: &Echo<'_>) -> bool {
        // The id is ours only in its unpadded base64url spelling: 43 characters.
        let mut given = [0u8; 32];
        let decoded = challenge.id.len() == 43
            && base64url_decode(challenge.id).is_some_and(|bytes| {
                given.copy_from_slice(&bytes);
                true
            });
        decoded & bool::from(given.ct_eq(&self.mac(challenge)))
    }
}

impl fmt::Debug for ChallengeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChallengeKey(<redacted>)")
    }
}

/// The challenge keys of a gateway: the last one mints, every one verifies, as in a [`KeyRing`].
#[derive(Clone, Debug, Default)]
pub struct ChallengeKeys {
    keys: Vec<ChallengeKey>,
}

/// What one Lightning charge challenge offers: the invoice the backend issued for this request.
#[derive(Debug, Clone, Copy)]
pub struct ChargeOffer<'a> {
    /// The protection space, e.g. the gateway's host name.
    pub realm: &'a str,
    /// The route id the payment buys: the request's `externalId`.
    pub route: &'a str,
    /// The price in sats: the request's `amount`, the invoice's amount.
    pub amount_sats: u64,
    /// The BOLT11 invoice.
    pub invoice: &'a str,
    /// Its payment hash.
    pub payment_hash: PaymentHash,
    /// Its network.
    pub network: Network,
    /// Unix seconds from which a credential for it is refused: the `expires` parameter. At most
    /// the invoice's expiry plus the time a client may take to present it, as an L402 token's.
    pub expires_at: u64,
    /// What is paid for, in the request's `description` (not covered if absent).
    pub description: Option<&'a str>,
}

/// Why a challenge could not be minted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MintError {
    /// No key to mint with.
    #[error("no challenge key is configured")]
    NoKey,
    /// The route id has characters a route id cannot have.
    #[error("route id {0:?} must be 1 to 64 characters of A-Z a-z 0-9 . -")]
    BadRoute(String),
    /// The realm is empty, too long, or holds a control character or `|`.
    #[error("realm {0:?} must be 1 to 256 characters, none a control character or |")]
    BadRealm(String),
    /// The description holds a control character.
    #[error("the description must have no control characters")]
    BadDescription,
    /// The invoice has characters no BOLT11 invoice has.
    #[error("the invoice is not a BOLT11 string (letters and digits only)")]
    BadInvoice,
    /// A price of zero.
    #[error("a charge of 0 sats cannot be paid with an invoice")]
    ZeroAmount,
    /// An expiry past the year 9999.
    #[error("the expiry {0} is past what RFC 3339 can write")]
    BadExpiry(u64),
}

/// What a credential is checked against: the request it is presented for.
#[derive(Debug, Clone, Copy)]
pub struct ChargeExpect<'a> {
    /// The route id requested.
    pub route: &'a str,
    /// The route's price in sats now. A credential for at least this much buys it.
    pub price_sats: u64,
    /// Unix seconds now.
    pub now: u64,
}

/// A credential that buys the request. The caller must still spend its payment hash once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeVerified {
    /// The payment hash: the key of the spent set, the same for every dialect.
    pub payment_hash: PaymentHash,
    /// The challenge id, for the receipt.
    pub challenge_id: String,
    /// The challenge's `expires`: keep the payment hash spent at least until then.
    pub valid_until: u64,
    /// What was paid, in sats.
    pub amount_sats: u64,
}

/// Why a credential does not buy the request. [`VerifyError::reason`] gives the code shared with
/// L402 (and so 401 or 402), [`VerifyError::problem`] the RFC 9457 body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The header does not parse.
    #[error("malformed Payment credential: {0}")]
    Malformed(#[from] CredentialError),
    /// Not the Lightning intent this check takes (a charge, or a session).
    #[error("method {method:?} intent {intent:?} is not the Lightning intent expected here")]
    Unsupported {
        /// The echoed method.
        method: String,
        /// The echoed intent.
        intent: String,
    },
    /// No `payload.preimage` of 64 hex characters.
    #[error("the payload has no preimage of 64 hex characters")]
    NoPreimage,
    /// The id is not ours for these parameters: forged, altered, or from a key we do not hold.
    #[error("the challenge was not issued by this server, or was altered")]
    UnknownChallenge,
    /// The request of a genuine challenge does not read as one we mint.
    #[error("the challenge's request is not one this server mints: {0}")]
    BadRequest(String),
    /// The preimage does not hash to the payment hash.
    #[error("the preimage does not hash to the challenge's payment hash")]
    BadPreimage,
    /// The challenge has no `expires`; Plannt honours no credential forever.
    #[error("the challenge has no expiry")]
    NoExpiry,
    /// The challenge expired.
    #[error("the challenge expired at unix second {expired_at}")]
    Expired {
        /// Its `expires`, in unix seconds.
        expired_at: u64,
    },
    /// The challenge was for another route.
    #[error("the challenge was issued for route {issued_for:?}, not this one")]
    WrongRoute {
        /// The route it names.
        issued_for: String,
    },
    /// The challenge's amount is below the route's price.
    #[error("{paid} sats paid, the route costs {price}")]
    Underpaid {
        /// What the challenge charged.
        paid: u64,
        /// The route's price now.
        price: u64,
    },
    /// A session credential's payload lacks a field its action needs, or holds one that is not
    /// of its form (`action`, `preimage`, `sessionId`, `returnInvoice`, `topUpPreimage`).
    #[error("the session payload has no valid {0}")]
    SessionField(&'static str),
}

impl VerifyError {
    /// The reason code shared with L402: 401 for a credential that is not genuine, 402 (pay
    /// again) for a genuine one that cannot buy this request.
    pub fn reason(&self) -> Reason {
        match self {
            VerifyError::Malformed(_)
            | VerifyError::Unsupported { .. }
            | VerifyError::NoPreimage
            | VerifyError::BadRequest(_)
            | VerifyError::SessionField(_) => Reason::Malformed,
            VerifyError::UnknownChallenge => Reason::BadSignature,
            VerifyError::BadPreimage => Reason::BadPreimage,
            VerifyError::Expired { .. } => Reason::Expired,
            VerifyError::WrongRoute { .. } => Reason::WrongRoute,
            VerifyError::NoExpiry | VerifyError::Underpaid { .. } => Reason::CaveatFailed,
        }
    }
}

/// What every minted challenge is checked for, whatever its intent.
pub(super) struct MintCheck<'a> {
    pub(super) realm: &'a str,
    pub(super) route: &'a str,
    pub(super) description: Option<&'a str>,
    pub(super) invoice: &'a str,
    pub(super) amount_sats: u64,
    pub(super) expires_at: u64,
}

/// Refuses what a challenge cannot bind: a bad route id, realm, description or invoice, a zero
/// amount, an expiry RFC 3339 cannot write.
pub(super) fn check_mint(offer: &MintCheck<'_>) -> Result<(), MintError> {
    if !caveat::is_route_id(offer.route) {
        return Err(MintError::BadRoute(offer.route.to_string()));
    }
    if offer.realm.is_empty()
        || offer.realm.len() > 256
        || offer.realm.chars().any(|c| c.is_control() || c == '|')
    {
        return Err(MintError::BadRealm(offer.realm.to_string()));
    }
    if offer
        .description
        .is_some_and(|d| d.chars().any(char::is_control))
    {
        return Err(MintError::BadDescription);
    }
    if offer.invoice.is_empty() || !offer.invoice.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(MintError::BadInvoice);
    }
    if offer.amount_sats == 0 {
        return Err(MintError::ZeroAmount);
    }
    if offer.expires_at > MAX_UNIX {
        return Err(MintError::BadExpiry(offer.expires_at));
    }
    Ok(())
}

impl ChallengeKeys {
    /// The key that mints: the newest.
    pub(super) fn minting_key(&self) -> Result<&ChallengeKey, MintError> {
        self.keys.last().ok_or(MintError::NoKey)
    }

    /// Whether one of the keys gave this challenge its id.
    pub(super) fn issued(&self, challenge: &PaymentChallenge) -> bool {
        let echo = Echo::from(challenge);
        self.keys.iter().any(|key| key.verifies_echo(&echo))
    }

    /// Keys of these secrets; the last one mints.
    pub fn new(keys: Vec<ChallengeKey>) -> Self {
        ChallengeKeys { keys }
    }

    /// One key derived ([`ChallengeKey::derive`]) from each root key of a ring, in its order.
    pub fn from_ring(ring: &KeyRing) -> Self {
        ChallengeKeys {
            keys: ring
                .ids()
                .filter_map(|id| ring.get(id))
                .map(ChallengeKey::derive)
                .collect(),
        }
    }

    /// Mints the challenge of a Lightning charge: the request JSON of `offer`, its id under the
    /// newest key.
    pub fn mint_charge(&self, offer: &ChargeOffer<'_>) -> Result<PaymentChallenge, MintError> {
        let key = self.minting_key()?;
        check_mint(&MintCheck {
            realm: offer.realm,
            route: offer.route,
            description: offer.description,
            invoice: offer.invoice,
            amount_sats: offer.amount_sats,
            expires_at: offer.expires_at,
        })?;
        let request = ChargeRequest {
            amount: offer.amount_sats.to_string(),
            currency: CURRENCY_SAT.to_string(),
            description: offer.description.map(str::to_string),
            recipient: None,
            external_id: Some(offer.route.to_string()),
            method_details: MethodDetails {
                invoice: offer.invoice.to_string(),
                payment_hash: Some(offer.payment_hash.to_hex()),
                network: Some(offer.network.name().to_string()),
            },
        };
        let mut challenge = PaymentChallenge {
            id: String::new(),
            realm: offer.realm.to_string(),
            method: METHOD_LIGHTNING.to_string(),
            intent: INTENT_CHARGE.to_string(),
            request: request.encode(),
            expires: format_rfc3339(offer.expires_at),
            description: None,
            opaque: None,
            digest: None,
        };
        challenge.id = key.challenge_id(&challenge);
        Ok(challenge)
    }

    /// Verifies a Lightning charge credential for a request: a Lightning charge, a preimage, an
    /// id one of our keys gave these parameters, `sha256(preimage)` the request's payment hash,
    /// not expired, this route, at least this price. Spending is the caller's.
    pub fn verify_charge(
        &self,
        credential: &PaymentCredential,
        expect: &ChargeExpect<'_>,
    ) -> Result<ChargeVerified, VerifyError> {
        self.verify_echo(
            &Echo::from(&credential.challenge),
            credential.preimage(),
            expect,
        )
    }

    /// Parses an `Authorization` value and verifies it: [`PaymentCredential::parse`] then
    /// [`ChallengeKeys::verify_charge`], the same refusals in the same order, without copying
    /// the credential's strings.
    pub fn verify_header(
        &self,
        value: &str,
        expect: &ChargeExpect<'_>,
    ) -> Result<ChargeVerified, VerifyError> {
        let token = credential_token(value)?;
        let json = base64url_decode(token).ok_or(CredentialError::NotBase64url)?;
        let wire: WireCredential<'_> = serde_json::from_str(utf8(&json)?)
            .map_err(|e| CredentialError::NotJson(e.to_string()))?;
        let c = &wire.challenge;
        let echo = Echo {
            id: &c.id,
            realm: &c.realm,
            method: &c.method,
            intent: &c.intent,
            request: &c.request,
            expires: c.expires.as_deref(),
            digest: c.digest.as_deref(),
            opaque: c.opaque.as_deref(),
        };
        check_required(&echo)?;
        let preimage = wire
            .payload
            .preimage
            .as_ref()
            .and_then(serde_json::Value::as_str)
            .and_then(|hex| Preimage::from_hex(hex).ok());
        self.verify_echo(&echo, preimage, expect)
    }

    fn verify_echo(
        &self,
        challenge: &Echo<'_>,
        preimage: Option<Preimage>,
        expect: &ChargeExpect<'_>,
    ) -> Result<ChargeVerified, VerifyError> {
        if challenge.method != METHOD_LIGHTNING || challenge.intent != INTENT_CHARGE {
            return Err(VerifyError::Unsupported {
                method: challenge.method.to_string(),
                intent: challenge.intent.to_string(),
            });
        }
        let preimage = preimage.ok_or(VerifyError::NoPreimage)?;
        if !self.keys.iter().any(|key| key.verifies_echo(challenge)) {
            return Err(VerifyError::UnknownChallenge);
        }
        let bytes = base64url_decode(challenge.request)
            .ok_or_else(|| VerifyError::BadRequest("not base64url".into()))?;
        let request: RequestView<'_> =
            serde_json::from_slice(&bytes).map_err(|e| VerifyError::BadRequest(e.to_string()))?;
        let payment_hash = request
            .method_details
            .payment_hash
            .and_then(|h| PaymentHash::from_hex(&h).ok())
            .ok_or_else(|| VerifyError::BadRequest("no paymentHash".into()))?;
        let amount_sats = match (&*request.currency, parse_amount(&request.amount)) {
            (CURRENCY_SAT, Some(sats)) => sats,
            _ => {
                return Err(VerifyError::BadRequest(
                    "the amount is not whole sats".into(),
                ));
            }
        };
        if !preimage.pays(&payment_hash) {
            return Err(VerifyError::BadPreimage);
        }
        let expired_at = challenge
            .expires
            .map(|e| parse_rfc3339(e).ok_or(VerifyError::NoExpiry))
            .transpose()?
            .ok_or(VerifyError::NoExpiry)?;
        if expect.now >= expired_at {
            return Err(VerifyError::Expired { expired_at });
        }
        let issued_for = request.external_id.unwrap_or_default();
        if issued_for != expect.route {
            return Err(VerifyError::WrongRoute {
                issued_for: issued_for.into_owned(),
            });
        }
        if amount_sats < expect.price_sats {
            return Err(VerifyError::Underpaid {
                paid: amount_sats,
                price: expect.price_sats,
            });
        }
        Ok(ChargeVerified {
            payment_hash,
            challenge_id: challenge.id.to_string(),
            valid_until: expired_at,
            amount_sats,
        })
    }
}

/// The fields of a charge request that verification reads, borrowed from the decoded bytes where
/// they need no unescaping. Other fields are skipped.
#[derive(Deserialize)]
struct RequestView<'a> {
    #[serde(borrow)]
    amount: Cow<'a, str>,
    #[serde(borrow)]
    currency: Cow<'a, str>,
    #[serde(borrow, default, rename = "externalId")]
    external_id: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "methodDetails")]
    method_details: DetailsView<'a>,
}

/// The Lightning part: an invoice must be there, the payment hash is what is read.
#[derive(Deserialize)]
struct DetailsView<'a> {
    #[serde(borrow, rename = "invoice")]
    _invoice: Cow<'a, str>,
    #[serde(borrow, default, rename = "paymentHash")]
    payment_hash: Option<Cow<'a, str>>,
}

/// A challenge's parameters, borrowed: from a [`PaymentChallenge`] or straight from the JSON.
struct Echo<'a> {
    id: &'a str,
    realm: &'a str,
    method: &'a str,
    intent: &'a str,
    request: &'a str,
    expires: Option<&'a str>,
    digest: Option<&'a str>,
    opaque: Option<&'a str>,
}

impl<'a> From<&'a PaymentChallenge> for Echo<'a> {
    fn from(c: &'a PaymentChallenge) -> Self {
        Echo {
            id: &c.id,
            realm: &c.realm,
            method: &c.method,
            intent: &c.intent,
            request: &c.request,
            expires: c.expires.as_deref(),
            digest: c.digest.as_deref(),
            opaque: c.opaque.as_deref(),
        }
    }
}

/// A credential as [`PaymentCredential`] reads it (the same fields, types and order, so the
/// same JSON is accepted), its strings borrowed where they need no unescaping.
#[derive(Deserialize)]
struct WireCredential<'a> {
    #[serde(borrow)]
    challenge: WireChallenge<'a>,
    #[serde(borrow, default, rename = "source")]
    _source: Option<Cow<'a, str>>,
    payload: WirePayload,
}

#[derive(Deserialize)]
struct WireChallenge<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    realm: Cow<'a, str>,
    #[serde(borrow)]
    method: Cow<'a, str>,
    #[serde(borrow)]
    intent: Cow<'a, str>,
    #[serde(borrow)]
    request: Cow<'a, str>,
    #[serde(borrow, default)]
    expires: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "description")]
    _description: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    opaque: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    digest: Option<Cow<'a, str>>,
}

/// A payload object, of which only `preimage` is kept (the last one, as a map keeps it).
struct WirePayload {
    preimage: Option<serde_json::Value>,
}

impl<'de> Deserialize<'de> for WirePayload {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = WirePayload;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<WirePayload, A::Error> {
                let mut preimage = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key == "preimage" {
                        preimage = Some(map.next_value()?);
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(WirePayload { preimage })
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}
