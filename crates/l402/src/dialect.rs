//! What the three 402 dialects share: their names, the Bitcoin networks they name in their own
//! ways, the facts of a decoded invoice a client checks an offer against, and reading every offer
//! of a 402 at once.
//!
//! A Plannt gateway answers one 402 with up to three challenges for the same invoice and payment
//! hash: `WWW-Authenticate: L402 …` ([`crate::Challenge`]), `WWW-Authenticate: Payment …`
//! ([`crate::mpp`]) and `PAYMENT-REQUIRED` ([`crate::x402`]). [`Offers::from_headers`] reads them
//! all, in the order they came, into [`Offer`]s; a client pays one, and whichever it answers with,
//! the gateway spends the same payment hash.

use std::fmt;
use std::str::FromStr;

use crate::PaymentHash;
use crate::header::{Challenge, ChallengeError, MAX_HEADER_LEN, Scheme, parse_auth_header};
use crate::mpp::{self, ChargeRequest, PaymentChallenge};
use crate::x402::{self, PaymentRequired, PaymentRequirements, ResourceInfo};

/// A way of asking for a payment in a 402 and presenting it afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dialect {
    /// `WWW-Authenticate: L402 macaroon="…", invoice="…"`, then `Authorization: L402 <macaroon>:<preimage>`.
    L402,
    /// `WWW-Authenticate: Payment … method="lightning", intent="charge"`, then
    /// `Authorization: Payment <base64url JSON>` carrying the preimage.
    Mpp,
    /// `PAYMENT-REQUIRED: <base64 JSON>` with an `exact` Lightning offer, then
    /// `PAYMENT-SIGNATURE: <base64 JSON>` naming the paid invoice.
    X402,
}

impl Dialect {
    /// Every dialect, in the order Plannt prefers them.
    pub const ALL: [Dialect; 3] = [Dialect::L402, Dialect::Mpp, Dialect::X402];

    /// The lowercase name: `l402`, `mpp` or `x402`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Dialect::L402 => "l402",
            Dialect::Mpp => "mpp",
            Dialect::X402 => "x402",
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is no dialect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown payment dialect {0:?}: use l402, mpp or x402")]
pub struct UnknownDialect(pub String);

impl FromStr for Dialect {
    type Err = UnknownDialect;

    /// Reads `l402`, `mpp` or `x402` in any case; `lsat` is L402's old name.
    fn from_str(text: &str) -> Result<Self, UnknownDialect> {
        let text = text.trim();
        Dialect::ALL
            .into_iter()
            .find(|d| d.as_str().eq_ignore_ascii_case(text))
            .or_else(|| text.eq_ignore_ascii_case("lsat").then_some(Dialect::L402))
            .ok_or_else(|| UnknownDialect(text.to_string()))
    }
}

/// A Bitcoin network, as the dialects name it: MPP by a word, x402 by a CAIP-2 `bip122:` id
/// (the first 32 hex characters of the genesis block hash).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Network {
    /// Bitcoin mainnet, BOLT11 prefix `lnbc`.
    Mainnet,
    /// Testnet (3), BOLT11 prefix `lntb`.
    Testnet,
    /// Signet, BOLT11 prefix `lntbs`.
    Signet,
    /// Regtest, BOLT11 prefix `lnbcrt`.
    Regtest,
}

impl Network {
    /// Every network.
    pub const ALL: [Network; 4] = [
        Network::Mainnet,
        Network::Testnet,
        Network::Signet,
        Network::Regtest,
    ];

    /// The word: `mainnet`, `testnet`, `signet` or `regtest` (MPP's `methodDetails.network`).
    pub fn name(&self) -> &'static str {
        match self {
            Network::Mainnet => "mainnet",
            Network::Testnet => "testnet",
            Network::Signet => "signet",
            Network::Regtest => "regtest",
        }
    }

    /// Reads a word of [`Network::name`], in any case.
    pub fn from_name(text: &str) -> Option<Network> {
        Network::ALL
            .into_iter()
            .find(|n| n.name().eq_ignore_ascii_case(text))
    }

    /// The CAIP-2 id: `bip122:` and the first 32 hex characters of the genesis block hash.
    pub fn caip2(&self) -> &'static str {
        match self {
            Network::Mainnet => "bip122:000000000019d6689c085ae165831e93",
            Network::Testnet => "bip122:000000000933ea01ad0ee984209779ba",
            Network::Signet => "bip122:00000008819873e925422c1ff0f99f7c",
            Network::Regtest => "bip122:0f9188f13cb7b2c71f2a335e3a4fc328",
        }
    }

    /// Reads a CAIP-2 id of [`Network::caip2`] (hex in either case).
    pub fn from_caip2(text: &str) -> Option<Network> {
        Network::ALL
            .into_iter()
            .find(|n| n.caip2().eq_ignore_ascii_case(text))
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a client learnt by decoding and checking the signature of an offer's BOLT11 invoice
/// (this crate decodes none: `plannt-lightning` does). The checks before paying compare an offer
/// with these facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceFacts {
    /// The invoice's payment hash.
    pub payment_hash: PaymentHash,
    /// Its amount in millisatoshis; `None` for an invoice without one, which is never paid.
    pub amount_msat: Option<u64>,
    /// The network of its prefix.
    pub network: Network,
    /// Unix seconds from which it can no longer be paid.
    pub expires_at: u64,
    /// The payee's node id, 66 lowercase hex characters.
    pub payee: String,
}

/// Why an offer must not be paid. No sat moves when a check fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayCheckError {
    /// The offer is not one Plannt pays (another scheme, method, intent, currency or asset).
    #[error("the offer is not a Lightning payment Plannt can make: {0}")]
    Unsupported(String),
    /// The offer's amount is not a positive whole number of its unit.
    #[error("the offer's amount {0:?} is not a positive whole number")]
    BadAmount(String),
    /// The invoice names no amount.
    #[error("the invoice names no amount; an invoice without one is never paid")]
    NoAmount,
    /// The invoice's amount is not the offer's.
    #[error("the invoice asks {invoice_msat} msat but the offer says {offer_msat} msat")]
    AmountMismatch {
        /// What the offer says.
        offer_msat: u64,
        /// What the invoice asks.
        invoice_msat: u64,
    },
    /// The offer names a payment hash other than the invoice's.
    #[error("the offer names another payment hash than its invoice")]
    HashMismatch,
    /// The offer's network, the invoice's and the wallet's are not one.
    #[error("the offer is for {offer}, its invoice for {invoice}, the wallet on {wallet}")]
    WrongNetwork {
        /// The offer's network, as it names it.
        offer: String,
        /// The invoice's.
        invoice: Network,
        /// The wallet's.
        wallet: Network,
    },
    /// The offer names a payee other than the invoice's.
    #[error("the offer pays {offer} but its invoice pays {invoice}")]
    PayeeMismatch {
        /// The offer's `payTo`.
        offer: String,
        /// The invoice's payee.
        invoice: String,
    },
    /// The invoice, or the offer, expired.
    #[error("the offer expired at unix second {expired_at}")]
    Expired {
        /// When.
        expired_at: u64,
    },
}

impl PayCheckError {
    /// A short code for ledgers and logs.
    pub fn code(&self) -> &'static str {
        match self {
            PayCheckError::Unsupported(_) => "unsupported_offer",
            PayCheckError::BadAmount(_) => "bad_amount",
            PayCheckError::NoAmount => "no_amount",
            PayCheckError::AmountMismatch { .. } => "amount_mismatch",
            PayCheckError::HashMismatch => "hash_mismatch",
            PayCheckError::WrongNetwork { .. } => "wrong_network",
            PayCheckError::PayeeMismatch { .. } => "payee_mismatch",
            PayCheckError::Expired { .. } => "expired",
        }
    }
}

/// A positive decimal integer of ASCII digits, no sign, no leading zero.
pub(crate) fn parse_amount(text: &str) -> Option<u64> {
    if text.is_empty()
        || text.len() > 20
        || text.starts_with('0')
        || !text.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    text.parse().ok().filter(|n| *n > 0)
}

/// Checks the facts common to every dialect: an amount equal to the offer's, the network, expiry.
pub(crate) fn check_invoice(
    offer_msat: u64,
    offer_network: (&str, Option<Network>),
    invoice: &InvoiceFacts,
    wallet: Network,
    now: u64,
) -> Result<(), PayCheckError> {
    let invoice_msat = invoice.amount_msat.ok_or(PayCheckError::NoAmount)?;
    if invoice_msat != offer_msat {
        return Err(PayCheckError::AmountMismatch {
            offer_msat,
            invoice_msat,
        });
    }
    if offer_network.1 != Some(invoice.network) || invoice.network != wallet {
        return Err(PayCheckError::WrongNetwork {
            offer: offer_network.0.to_string(),
            invoice: invoice.network,
            wallet,
        });
    }
    if now >= invoice.expires_at {
        return Err(PayCheckError::Expired {
            expired_at: invoice.expires_at,
        });
    }
    Ok(())
}

/// One way to pay a 402, read from its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer {
    /// An L402 (or LSAT) challenge.
    L402(Challenge),
    /// An MPP `Payment` challenge for a Lightning charge, with its request decoded.
    Mpp(Box<MppOffer>),
    /// An x402 `exact` Lightning offer.
    X402(Box<X402Offer>),
}

/// An MPP Lightning charge: the challenge to echo and what it asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MppOffer {
    /// The challenge, as sent.
    pub challenge: PaymentChallenge,
    /// Its `request`, decoded.
    pub request: ChargeRequest,
}

/// An x402 `exact` Lightning offer: the requirements to accept and the resource they are for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct X402Offer {
    /// The resource of the `PAYMENT-REQUIRED` the offer came in, to echo in the payload.
    pub resource: Option<ResourceInfo>,
    /// The accepted requirements.
    pub requirements: PaymentRequirements,
}

impl Offer {
    /// The dialect.
    pub fn dialect(&self) -> Dialect {
        match self {
            Offer::L402(_) => Dialect::L402,
            Offer::Mpp(_) => Dialect::Mpp,
            Offer::X402(_) => Dialect::X402,
        }
    }

    /// The BOLT11 invoice to pay.
    pub fn invoice(&self) -> &str {
        match self {
            Offer::L402(c) => &c.invoice,
            Offer::Mpp(o) => &o.request.method_details.invoice,
            Offer::X402(o) => o.requirements.invoice().unwrap_or_default(),
        }
    }

    /// The payment hash the offer names besides its invoice (the macaroon's for L402), if any:
    /// a client checks it equals the invoice's.
    pub fn payment_hash(&self) -> Option<PaymentHash> {
        match self {
            Offer::L402(c) => crate::Identifier::decode(c.macaroon.identifier())
                .ok()
                .map(|id| id.payment_hash),
            Offer::Mpp(o) => o.request.payment_hash(),
            Offer::X402(o) => o.requirements.payment_hash(),
        }
    }
}

/// Why one challenge of a 402 could not be read. The others still are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{dialect} offer skipped: {why}")]
pub struct OfferError {
    /// The dialect it claimed to be.
    pub dialect: Dialect,
    /// What is wrong with it.
    pub why: String,
}

/// Every offer of a 402, and why any other challenge it carried was skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Offers {
    /// The offers, in the order of the headers: `WWW-Authenticate` values first, then
    /// `PAYMENT-REQUIRED`.
    pub offers: Vec<Offer>,
    /// The challenges of a known dialect that are not offers Plannt can pay, with the reason.
    pub skipped: Vec<OfferError>,
}

impl Offers {
    /// Reads every `WWW-Authenticate` value (several challenges a value, as RFC 9110 and the
    /// Fetch standard's joining allow) and every `PAYMENT-REQUIRED` value of a 402.
    pub fn from_headers<'a, 'b>(
        www_authenticate: impl IntoIterator<Item = &'a str>,
        payment_required: impl IntoIterator<Item = &'b str>,
    ) -> Offers {
        let mut out = Offers::default();
        for value in www_authenticate {
            out.read_www_authenticate(value);
        }
        for value in payment_required {
            out.read_payment_required(value);
        }
        out
    }

    /// The first offer of a dialect.
    pub fn first(&self, dialect: Dialect) -> Option<&Offer> {
        self.offers.iter().find(|o| o.dialect() == dialect)
    }

    fn skip(&mut self, dialect: Dialect, why: impl fmt::Display) {
        self.skipped.push(OfferError {
            dialect,
            why: why.to_string(),
        });
    }

    fn read_www_authenticate(&mut self, value: &str) {
        let dialect_of = |scheme: &str| {
            if Scheme::parse(scheme).is_some() {
                Some(Dialect::L402)
            } else if scheme.eq_ignore_ascii_case(mpp::SCHEME) {
                Some(Dialect::Mpp)
            } else {
                None
            }
        };
        if value.len() > MAX_HEADER_LEN {
            self.skip(Dialect::L402, ChallengeError::TooLong(value.len()));
            return;
        }
        let raw = match parse_auth_header(value) {
            Ok(raw) => raw,
            Err(e) => {
                let dialect = value
                    .split_whitespace()
                    .next()
                    .and_then(dialect_of)
                    .unwrap_or(Dialect::L402);
                self.skip(dialect, e);
                return;
            }
        };
        for challenge in raw {
            match (
                dialect_of(challenge.scheme),
                Scheme::parse(challenge.scheme),
            ) {
                (Some(Dialect::L402), Some(scheme)) => {
                    match Challenge::from_params(scheme, &challenge.params) {
                        Ok(c) => self.offers.push(Offer::L402(c)),
                        Err(e) => self.skip(Dialect::L402, e),
                    }
                }
                (Some(Dialect::Mpp), _) => match PaymentChallenge::from_raw(&challenge) {
                    Ok(c) if c.is_lightning_charge() => match c.charge_request() {
                        Ok(request) => self.offers.push(Offer::Mpp(Box::new(MppOffer {
                            challenge: c,
                            request,
                        }))),
                        Err(e) => self.skip(Dialect::Mpp, e),
                    },
                    Ok(c) => self.skip(
                        Dialect::Mpp,
                        format!(
                            "method {:?} intent {:?} is not a Lightning charge",
                            c.method, c.intent
                        ),
                    ),
                    Err(e) => self.skip(Dialect::Mpp, e),
                },
                _ => {}
            }
        }
    }

    fn read_payment_required(&mut self, value: &str) {
        let required = match PaymentRequired::decode(value) {
            Ok(r) => r,
            Err(e) => return self.skip(Dialect::X402, e),
        };
        let mut any = false;
        for requirements in &required.accepts {
            if requirements.is_exact_lightning() {
                any = true;
                self.offers.push(Offer::X402(Box::new(X402Offer {
                    resource: required.resource.clone(),
                    requirements: requirements.clone(),
                })));
            }
        }
        if !any {
            self.skip(
                Dialect::X402,
                format!(
                    "none of its {} offers is `{}` on Lightning with an invoice",
                    required.accepts.len(),
                    x402::SCHEME_EXACT
                ),
            );
        }
    }
}
