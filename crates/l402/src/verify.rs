//! Minting tokens and verifying credentials, with one reason code per way a credential fails.
//!
//! Verification is stateless: the macaroon's signature under one of our keys, its caveats for the
//! route requested, and `sha256(preimage) == payment_hash`. Whether the token was already spent
//! is the store's business, outside this crate; [`Reason::Spent`] is here so all codes live together.

use crate::PaymentHash;
use crate::caveat::{self, CaveatFailure, Conditions};
use crate::header::{Credential, CredentialError};
use crate::identifier::{Identifier, IdentifierError};
use crate::key::{self, KeyError, KeyRing};
use crate::macaroon::Macaroon;

/// Why a credential cannot buy a request: the `reason` of a 401 or 402 answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The credential does not parse. 401.
    Malformed,
    /// The macaroon's signature does not verify under the key it names. 401.
    BadSignature,
    /// The preimage does not hash to the payment hash. 401.
    BadPreimage,
    /// The token expired. 402: pay again.
    Expired,
    /// The token is for another route. 402: pay again.
    WrongRoute,
    /// The token names a key this server no longer (or never) held. 402: pay again.
    UnknownKey,
    /// A caveat is unknown, widens an earlier one, or is not satisfied by this request. 402.
    CaveatFailed,
    /// The token was already used. 402: pay again.
    Spent,
}

impl Reason {
    /// Every reason, for tables and tests.
    pub const ALL: [Reason; 8] = [
        Reason::Malformed,
        Reason::BadSignature,
        Reason::BadPreimage,
        Reason::Expired,
        Reason::WrongRoute,
        Reason::UnknownKey,
        Reason::CaveatFailed,
        Reason::Spent,
    ];

    /// The code sent in the body and in `x-l402-reason`.
    pub fn code(&self) -> &'static str {
        match self {
            Reason::Malformed => "malformed",
            Reason::BadSignature => "bad_signature",
            Reason::BadPreimage => "bad_preimage",
            Reason::Expired => "expired",
            Reason::WrongRoute => "wrong_route",
            Reason::UnknownKey => "unknown_key",
            Reason::CaveatFailed => "caveat_failed",
            Reason::Spent => "spent",
        }
    }

    /// Reads a code back.
    pub fn from_code(code: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.code() == code)
    }

    /// True when the credential is genuine but cannot buy this request: answer 402 with a fresh
    /// challenge, so clients that pay only on a 402 pay again. False: not genuine, answer 401.
    pub fn pay_again(&self) -> bool {
        !matches!(
            self,
            Reason::Malformed | Reason::BadSignature | Reason::BadPreimage
        )
    }

    /// The HTTP status to answer with: 402 or 401.
    pub fn status(&self) -> u16 {
        if self.pay_again() { 402 } else { 401 }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// Why verification failed, with the detail for a human. [`VerifyError::reason`] gives the code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The header does not parse.
    #[error("malformed credential: {0}")]
    Malformed(#[from] CredentialError),
    /// The identifier is not Aperture's 66-byte layout.
    #[error("malformed macaroon identifier: {0}")]
    Identifier(#[from] IdentifierError),
    /// The signature does not verify.
    #[error("the macaroon's signature does not verify")]
    BadSignature,
    /// The preimage does not hash to the payment hash.
    #[error("the preimage does not hash to the payment hash in the macaroon")]
    BadPreimage,
    /// The macaroon names a key we do not hold.
    #[error("the macaroon was minted with key {0:?}, which this server does not hold")]
    UnknownKey(String),
    /// The caveats refuse this request.
    #[error("{0}")]
    Caveat(#[from] CaveatFailure),
}

impl VerifyError {
    /// The reason code.
    pub fn reason(&self) -> Reason {
        match self {
            VerifyError::Malformed(_) | VerifyError::Identifier(_) => Reason::Malformed,
            VerifyError::BadSignature => Reason::BadSignature,
            VerifyError::BadPreimage => Reason::BadPreimage,
            VerifyError::UnknownKey(_) => Reason::UnknownKey,
            VerifyError::Caveat(CaveatFailure::WrongRoute { .. }) => Reason::WrongRoute,
            VerifyError::Caveat(CaveatFailure::Expired { .. }) => Reason::Expired,
            VerifyError::Caveat(CaveatFailure::Refused { .. }) => Reason::CaveatFailed,
        }
    }
}

/// What a token to mint is for.
#[derive(Debug, Clone, Copy)]
pub struct MintRequest<'a> {
    /// The payment hash of the invoice the backend issued.
    pub payment_hash: PaymentHash,
    /// The route id the token buys.
    pub route: &'a str,
    /// Unix seconds from which the token is refused.
    pub valid_until: u64,
    /// The route's own conditions, minted as `<route>_<name>=<value>`.
    pub conditions: &'a [(&'a str, &'a str)],
}

/// Why a token could not be minted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MintError {
    /// No key, or no randomness.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The route id has characters a caveat cannot carry.
    #[error("route id {0:?} must be 1 to 64 characters of A-Z a-z 0-9 . -")]
    BadRoute(String),
    /// A condition name or value cannot be carried in a caveat.
    #[error(
        "condition {0:?} needs a name of a-z 0-9 _ (not valid_until or capabilities) and a value without control characters"
    )]
    BadCondition(String),
}

/// A request a credential is offered for.
pub struct Request<'a> {
    /// The route id requested.
    pub route: &'a str,
    /// Unix seconds now.
    pub now: u64,
    /// The route's judge of its own conditions.
    pub conditions: &'a dyn Conditions,
}

/// A credential that buys the request. The caller must still spend it exactly once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The payment hash: the key of the spent set.
    pub payment_hash: PaymentHash,
    /// The token id.
    pub token_id: [u8; 32],
    /// The id of the key that minted the token.
    pub key_id: String,
    /// The token's expiry for this route, if it has one: the narrowest of its expiries, after
    /// which this macaroon is refused.
    pub valid_until: Option<u64>,
    /// The first expiry for this route: the one [`KeyRing::mint`] writes as the second caveat,
    /// before a holder can append anything. Every macaroon of this payment hash is refused from
    /// then on, so a spent set must keep the hash at least until this time, never only until
    /// `valid_until`, which the holder chooses.
    pub minted_valid_until: Option<u64>,
    /// Aperture-style capabilities, for the backend to enforce.
    pub capabilities: Option<Vec<String>>,
}

impl KeyRing {
    /// Mints a token with the current key: `services=<route>:0`, `<route>_valid_until=<t>`, then
    /// the route's conditions. The key id travels in the macaroon's location.
    pub fn mint(&self, request: &MintRequest<'_>) -> Result<Macaroon, MintError> {
        if !caveat::is_route_id(request.route) {
            return Err(MintError::BadRoute(request.route.to_string()));
        }
        for (name, value) in request.conditions {
            if !caveat::is_condition_name(name) || value.chars().any(char::is_control) {
                return Err(MintError::BadCondition((*name).to_string()));
            }
        }
        let (key_id, key) = self.current()?;
        let identifier = Identifier {
            payment_hash: request.payment_hash,
            token_id: key::random32()?,
        };
        let mut macaroon = Macaroon::new(key, Some(key_id.as_bytes()), &identifier.encode());
        let route = request.route;
        macaroon.add_first_party_caveat(format!("services={route}:0").as_bytes());
        macaroon.add_first_party_caveat(
            format!("{route}_valid_until={}", request.valid_until).as_bytes(),
        );
        for (name, value) in request.conditions {
            macaroon.add_first_party_caveat(format!("{route}_{name}={value}").as_bytes());
        }
        Ok(macaroon)
    }

    /// Verifies a credential for a request.
    ///
    /// With several macaroons, the ones whose payment hash the preimage pays are tried in order
    /// and the first that verifies wins; the others are ignored. If none verifies, the error of
    /// the first is returned.
    pub fn verify(
        &self,
        credential: &Credential,
        request: &Request<'_>,
    ) -> Result<Verified, VerifyError> {
        let paid_hash = credential.preimage.hash();
        let mut paid_error = None;
        let mut identifier_error = None;
        let mut any_identifier = false;
        for macaroon in &credential.macaroons {
            let identifier = match Identifier::decode(macaroon.identifier()) {
                Ok(id) => id,
                Err(e) => {
                    identifier_error.get_or_insert(e);
                    continue;
                }
            };
            any_identifier = true;
            // The hash is public, so a plain comparison leaks nothing.
            if identifier.payment_hash != paid_hash {
                continue;
            }
            match self.verify_macaroon(macaroon, &identifier, request) {
                Ok(v) => return Ok(v),
                Err(e) => {
                    paid_error.get_or_insert(e);
                }
            }
        }
        match (paid_error, identifier_error) {
            (Some(e), _) => Err(e),
            (None, Some(e)) if !any_identifier => Err(VerifyError::Identifier(e)),
            _ => Err(VerifyError::BadPreimage),
        }
    }

    /// Parses an `Authorization` value and verifies it.
    pub fn verify_header(
        &self,
        value: &str,
        request: &Request<'_>,
    ) -> Result<Verified, VerifyError> {
        self.verify(&Credential::parse(value)?, request)
    }

    fn verify_macaroon(
        &self,
        macaroon: &Macaroon,
        identifier: &Identifier,
        request: &Request<'_>,
    ) -> Result<Verified, VerifyError> {
        let key_id = macaroon
            .location()
            .and_then(|l| std::str::from_utf8(l).ok())
            .unwrap_or("");
        let key = self
            .get(key_id)
            .ok_or_else(|| VerifyError::UnknownKey(key_id.to_string()))?;
        if !macaroon.verify_signature(key) {
            return Err(VerifyError::BadSignature);
        }
        let grant = caveat::check_caveats(
            macaroon.caveats().iter().map(|c| &c.id[..]),
            request.route,
            request.now,
            request.conditions,
        )?;
        Ok(Verified {
            payment_hash: identifier.payment_hash,
            token_id: identifier.token_id,
            key_id: key_id.to_string(),
            valid_until: grant.valid_until,
            minted_valid_until: grant.minted_valid_until,
            capabilities: grant.capabilities,
        })
    }
}
