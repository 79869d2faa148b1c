//! BOLT11 invoices: decoded and signature-checked with `lightning-invoice`, in a form the
//! client's checks, `plannt decode` and the backends share.

use plannt_l402::PaymentHash;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lightning_invoice::{
    Bolt11Invoice, Bolt11InvoiceDescriptionRef, Bolt11ParseError, Bolt11SemanticError, Currency,
    DEFAULT_EXPIRY_TIME, ParseOrSemanticError, SignedRawBolt11Invoice, TaggedField,
};

/// The longest invoice we read: `lightning-invoice` refuses more than 7089 bytes anyway.
pub const MAX_INVOICE_LEN: usize = 7089;

/// A Bitcoin network, as an invoice's prefix names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Network {
    /// Mainnet: `lnbc`.
    Bitcoin,
    /// Testnet: `lntb`.
    Testnet,
    /// Signet: `lntbs`.
    Signet,
    /// Regtest: `lnbcrt`. The dev network's.
    Regtest,
    /// Simnet: `lnsb`.
    Simnet,
}

impl Network {
    /// The name used in URIs and output.
    pub fn as_str(&self) -> &'static str {
        match self {
            Network::Bitcoin => "bitcoin",
            Network::Testnet => "testnet",
            Network::Signet => "signet",
            Network::Regtest => "regtest",
            Network::Simnet => "simnet",
        }
    }
}

impl FromStr for Network {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "bitcoin" | "mainnet" => Ok(Network::Bitcoin),
            "testnet" => Ok(Network::Testnet),
            "signet" => Ok(Network::Signet),
            "regtest" => Ok(Network::Regtest),
            "simnet" => Ok(Network::Simnet),
            _ => Err(format!(
                "unknown network {text:?}: expected bitcoin, testnet, signet or regtest"
            )),
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<Currency> for Network {
    fn from(currency: Currency) -> Self {
        match currency {
            Currency::Bitcoin => Network::Bitcoin,
            Currency::BitcoinTestnet => Network::Testnet,
            Currency::Signet => Network::Signet,
            Currency::Regtest => Network::Regtest,
            Currency::Simnet => Network::Simnet,
        }
    }
}

/// Why a string is not a valid invoice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvoiceError {
    /// Empty input.
    #[error("the invoice is empty")]
    Empty,
    /// Longer than [`MAX_INVOICE_LEN`].
    #[error("the invoice is {0} characters, more than the {MAX_INVOICE_LEN} BOLT11 allows")]
    TooLong(usize),
    /// Not bech32, or a bad checksum.
    #[error("not a BOLT11 invoice: bad bech32 encoding or checksum")]
    Encoding,
    /// The prefix names no known network.
    #[error("not a BOLT11 invoice: unknown prefix (expected lnbc, lntb, lntbs or lnbcrt)")]
    Prefix,
    /// The signature does not verify.
    #[error("the invoice signature does not verify: it was altered or not signed by its payee")]
    Signature,
    /// A field is missing, duplicated or malformed.
    #[error("malformed invoice: {0}")]
    Malformed(String),
}

impl From<ParseOrSemanticError> for InvoiceError {
    fn from(error: ParseOrSemanticError) -> Self {
        match error {
            ParseOrSemanticError::ParseError(Bolt11ParseError::Bech32Error(_)) => {
                InvoiceError::Encoding
            }
            ParseOrSemanticError::ParseError(
                Bolt11ParseError::BadPrefix
                | Bolt11ParseError::UnknownCurrency
                | Bolt11ParseError::MalformedHRP,
            ) => InvoiceError::Prefix,
            ParseOrSemanticError::ParseError(Bolt11ParseError::MalformedSignature(_))
            | ParseOrSemanticError::SemanticError(Bolt11SemanticError::InvalidSignature) => {
                InvoiceError::Signature
            }
            ParseOrSemanticError::ParseError(e) => InvoiceError::Malformed(format!("{e:?}")),
            ParseOrSemanticError::SemanticError(e) => InvoiceError::Malformed(e.to_string()),
        }
    }
}

/// A decoded invoice whose signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedInvoice {
    /// The invoice as given (trimmed, lowercased).
    pub bolt11: String,
    /// Its network.
    pub network: Network,
    /// The amount in millisatoshis; `None` for an amountless invoice.
    pub amount_msat: Option<u64>,
    /// The payment hash.
    pub payment_hash: PaymentHash,
    /// The payee's node id (33-byte compressed public key).
    pub payee: [u8; 33],
    /// Unix seconds when it was created.
    pub created_at: u64,
    /// Seconds it is valid for.
    pub expiry_secs: u64,
    /// The description, if it carries one rather than a hash.
    pub description: Option<String>,
}

impl DecodedInvoice {
    /// Unix seconds from which it can no longer be paid.
    pub fn expires_at(&self) -> u64 {
        self.created_at.saturating_add(self.expiry_secs)
    }

    /// True if it has expired at unix time `now`.
    pub fn is_expired_at(&self, now: u64) -> bool {
        now >= self.expires_at()
    }

    /// The amount in whole satoshis, rounded up.
    pub fn amount_sats(&self) -> Option<u64> {
        self.amount_msat.map(|m| m.div_ceil(1000))
    }
}

/// Decodes an invoice and checks its signature. A `lightning:` prefix is accepted.
pub fn decode_invoice(text: &str) -> Result<DecodedInvoice, InvoiceError> {
    let text = text.trim();
    let text = text
        .strip_prefix("lightning:")
        .or_else(|| text.strip_prefix("LIGHTNING:"))
        .unwrap_or(text);
    if text.is_empty() {
        return Err(InvoiceError::Empty);
    }
    if text.len() > MAX_INVOICE_LEN {
        return Err(InvoiceError::TooLong(text.len()));
    }
    match Bolt11Invoice::from_str(text) {
        Ok(invoice) => Ok(from_parsed(&invoice)),
        Err(ParseOrSemanticError::SemanticError(Bolt11SemanticError::InvalidFeatures)) => {
            decode_featureless(text)
        }
        Err(e) => Err(e.into()),
    }
}

/// An invoice with a payment secret (`s`) but no feature field (`9`) at all. LNbits' FakeWallet
/// writes these (through PyPI `bolt11`), and BOLT 11 readers such as LND, CLN and the Python and
/// JavaScript `bolt11` libraries read them; `lightning-invoice` refuses any invoice without the
/// payment-secret feature bit. Only that case is let through here, with every other check
/// `Bolt11Invoice::from_signed` makes: one payment hash, one description or description hash,
/// one payment secret, a valid signature, a whole number of millisatoshis.
fn decode_featureless(text: &str) -> Result<DecodedInvoice, InvoiceError> {
    let malformed = |e: Bolt11SemanticError| InvoiceError::Malformed(e.to_string());
    let signed = SignedRawBolt11Invoice::from_str(text)
        .map_err(|e| InvoiceError::from(ParseOrSemanticError::ParseError(e)))?;
    let raw = signed.raw_invoice();
    if raw.features().is_some() {
        return Err(malformed(Bolt11SemanticError::InvalidFeatures));
    }
    let count =
        |wanted: fn(&TaggedField) -> bool| raw.known_tagged_fields().filter(|f| wanted(f)).count();
    match count(|f| matches!(f, TaggedField::PaymentHash(_))) {
        0 => return Err(malformed(Bolt11SemanticError::NoPaymentHash)),
        1 => {}
        _ => return Err(malformed(Bolt11SemanticError::MultiplePaymentHashes)),
    }
    match count(|f| {
        matches!(
            f,
            TaggedField::Description(_) | TaggedField::DescriptionHash(_)
        )
    }) {
        0 => return Err(malformed(Bolt11SemanticError::NoDescription)),
        1 => {}
        _ => return Err(malformed(Bolt11SemanticError::MultipleDescriptions)),
    }
    match count(|f| matches!(f, TaggedField::PaymentSecret(_))) {
        0 => return Err(malformed(Bolt11SemanticError::NoPaymentSecret)),
        1 => {}
        _ => return Err(malformed(Bolt11SemanticError::MultiplePaymentSecrets)),
    }
    if !signed.check_signature() {
        return Err(InvoiceError::Signature);
    }
    let amount_msat = match raw.amount_pico_btc() {
        Some(pico) if pico % 10 != 0 => {
            return Err(malformed(Bolt11SemanticError::ImpreciseAmount));
        }
        other => other.map(|pico| pico / 10),
    };
    let payee = match raw.payee_pub_key() {
        Some(key) => key.0,
        None => {
            signed
                .recover_payee_pub_key()
                .map_err(|_| InvoiceError::Signature)?
                .0
        }
    };
    let payment_hash = raw
        .payment_hash()
        .map(|h| PaymentHash(*AsRef::<[u8; 32]>::as_ref(&h.0)))
        .ok_or_else(|| malformed(Bolt11SemanticError::NoPaymentHash))?;
    Ok(DecodedInvoice {
        bolt11: signed.to_string(),
        network: raw.currency().into(),
        amount_msat,
        payment_hash,
        payee: payee.serialize(),
        created_at: raw.data.timestamp.as_unix_timestamp(),
        expiry_secs: raw
            .expiry_time()
            .map_or(DEFAULT_EXPIRY_TIME, |e| e.as_seconds()),
        description: raw.description().map(|d| d.to_string()),
    })
}

/// The decoded form of an invoice `lightning-invoice` has already parsed and checked.
pub(crate) fn from_parsed(invoice: &Bolt11Invoice) -> DecodedInvoice {
    let description = match invoice.description() {
        Bolt11InvoiceDescriptionRef::Direct(d) => Some(d.to_string()),
        Bolt11InvoiceDescriptionRef::Hash(_) => None,
    };
    let created_at = invoice
        .timestamp()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    DecodedInvoice {
        bolt11: invoice.to_string(),
        network: invoice.currency().into(),
        amount_msat: invoice.amount_milli_satoshis(),
        payment_hash: PaymentHash(*AsRef::<[u8; 32]>::as_ref(invoice.payment_hash())),
        payee: invoice.get_payee_pub_key().serialize(),
        created_at,
        expiry_secs: invoice.expiry_time().as_secs(),
        description,
    }
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}
