//! The checks made before any payment, each refusing with its own error and paying nothing; and
//! the refusals of where a request may go, made before anything is sent (see `guard`).

use plannt_l402::dialect::{MppOffer, X402Offer};
use plannt_l402::x402::PaymentPayload;
use plannt_l402::{
    Challenge, Dialect, Identifier, IdentifierError, InvoiceFacts, Macaroon, Offer, PayCheckError,
};
use plannt_lightning::{DecodedInvoice, InvoiceError, Network, decode_invoice};
use url::Url;

use crate::address::is_loopback_host;
use crate::policy::Policy;

/// A challenge that passed every check: what paying it would cost.
#[derive(Debug, Clone)]
pub struct Quote {
    /// The dialect of the offer that would be paid.
    pub dialect: Dialect,
    /// The decoded invoice.
    pub invoice: DecodedInvoice,
    /// The macaroon to present once paid (L402 only).
    pub macaroon: Option<Macaroon>,
    /// The amount in millisatoshis.
    pub amount_msat: u64,
}

impl Quote {
    /// The amount in sats, rounded up.
    pub fn amount_sats(&self) -> u64 {
        self.amount_msat.div_ceil(1000)
    }
}

/// Why a challenge, or a request, is refused. Nothing was paid; for the refusals of where a
/// request may go ([`Refusal::before_sending`]), nothing was sent either.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
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
    #[error("the invoice names no amount; a paying client never pays amountless invoices")]
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
    /// The request would go to a loopback, private, link-local or otherwise non-public address.
    #[error(
        "{}: Plannt sends nothing to loopback, private or link-local addresses unless allow_private_networks is set (PLANNT_ALLOW_PRIVATE_NETWORKS=true)",
        private_address(host, address, kind)
    )]
    PrivateNetwork {
        /// The host asked for.
        host: String,
        /// The address it is, or resolved to.
        address: String,
        /// `loopback`, `private`, `link-local`, …
        kind: String,
    },
    /// The request would reach the wallet's own API.
    #[error(
        "{target} leads to the wallet's own API ({place}){how}: Plannt never sends a request there, whatever the settings"
    )]
    WalletApi {
        /// What was asked for: a URL without its query, or a host name.
        target: String,
        /// Where the wallet's API lives.
        place: String,
        /// How it leads there, when it is not the place itself.
        how: String,
    },
    /// An MPP or x402 offer disagrees with its invoice, or is not one Plannt pays: another
    /// amount, payment hash, network or payee, an expired challenge, another currency or asset.
    #[error("the {dialect} offer does not match its invoice: {error}")]
    Offer {
        /// The dialect of the offer.
        dialect: Dialect,
        /// The check that failed.
        error: PayCheckError,
    },
    /// A prepaid session's deposit is above what the policy lets a session with this host hold.
    #[error(
        "the session's deposit is {deposit_sats} sats, more than the {limit_sats} sats a session with this host may hold (session_deposit_sats)"
    )]
    OverSessionDeposit {
        /// The deposit asked.
        deposit_sats: u64,
        /// The most a session with this host may hold.
        limit_sats: u64,
    },
    /// The challenge came over plain `http` from a host that is not loopback.
    #[error(
        "the challenge came over plain http from {0}, which is not a loopback host, so anyone on the path could have written it; use https, or allow it with allow_insecure_http (PLANNT_ALLOW_INSECURE_HTTP=true, or plannt get --allow-insecure-http)"
    )]
    InsecureHttp(String),
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
            Refusal::PrivateNetwork { .. } => "private_network",
            Refusal::WalletApi { .. } => "wallet_api",
            Refusal::InsecureHttp(_) => "insecure_http",
            Refusal::OverSessionDeposit { .. } => "over_session_deposit",
            Refusal::Offer { error, .. } => error.code(),
        }
    }

    /// Whether this refuses where a request may go, before anything is sent; the others refuse
    /// a challenge, before anything is paid.
    pub fn before_sending(&self) -> bool {
        matches!(
            self,
            Refusal::HostNotAllowed(_) | Refusal::PrivateNetwork { .. } | Refusal::WalletApi { .. }
        )
    }
}

/// "10.0.0.1 is a private address", "metadata.example is 169.254.169.254, a link-local address".
fn private_address(host: &str, address: &str, kind: &str) -> String {
    let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host == address {
        format!("{host} is {article} {kind} address")
    } else {
        format!("{host} is {address}, {article} {kind} address")
    }
}

/// What a payment must pass before anything is paid, in order, for people: what [`check`]
/// verifies of a challenge, then the budgets (every window must take the price plus the fee
/// reserve, as the ledger's reservation decides). A dry run runs them all, reserving nothing;
/// one that passed says it passed each of these.
pub const CHECKS: [&str; 8] = [
    "host allowed",
    "https or a loopback host",
    "invoice signature",
    "payment hash matches the macaroon (L402), or the offer's amount, payment hash, network and payee match the invoice (MPP, x402)",
    "amount within the per-request cap",
    "network matches the wallet",
    "not expired",
    "price plus fee reserve within the hourly, daily and total budgets",
];

/// Runs every check on an offer of any dialect that came from `url`, for a wallet on `network`,
/// at unix time `now`: where it came from, then the dialect's own checks (for MPP and x402:
/// the invoice's signature, its amount, payment hash, network, payee and expiry against the
/// offer's, [`plannt_l402::mpp::ChargeRequest::check_before_paying`] and
/// [`plannt_l402::x402::PaymentRequirements::check_before_paying`]), then the cap. Answers the
/// quote and what the dialect presents once paid besides the preimage (see
/// [`crate::StoredToken::macaroon`]).
pub fn check_offer(
    offer: &Offer,
    url: &Url,
    policy: &Policy,
    network: Network,
    now: u64,
) -> Result<(Quote, String), Refusal> {
    match offer {
        Offer::L402(challenge) => {
            let quote = check(challenge, url, policy, network, now)?;
            Ok((quote, challenge.macaroon.to_base64()))
        }
        Offer::Mpp(o) => check_mpp(o, url, policy, network, now),
        Offer::X402(o) => check_x402(o, url, policy, network, now),
    }
}

fn check_origin(url: &Url, policy: &Policy) -> Result<(), Refusal> {
    let host = url.host_str().unwrap_or_default();
    if !policy.host_allowed(host) {
        return Err(Refusal::HostNotAllowed(host.to_string()));
    }
    if url.scheme() == "http" && !policy.allow_insecure_http && !is_loopback_host(url) {
        return Err(Refusal::InsecureHttp(host.to_string()));
    }
    Ok(())
}

/// The network of the dialects for a network of an invoice; `None` for simnet, which none names.
fn dialect_network(network: Network) -> Option<plannt_l402::Network> {
    match network {
        Network::Bitcoin => Some(plannt_l402::Network::Mainnet),
        Network::Testnet => Some(plannt_l402::Network::Testnet),
        Network::Signet => Some(plannt_l402::Network::Signet),
        Network::Regtest => Some(plannt_l402::Network::Regtest),
        Network::Simnet => None,
    }
}

/// Decodes and verifies the invoice of an MPP or x402 offer, and the facts its checks compare.
fn invoice_facts(
    bolt11: &str,
    network: Network,
) -> Result<(DecodedInvoice, InvoiceFacts, plannt_l402::Network), Refusal> {
    let invoice = decode_invoice(bolt11)?;
    let wrong = || Refusal::WrongNetwork {
        invoice: invoice.network,
        wallet: network,
    };
    let (Some(invoice_network), Some(wallet)) =
        (dialect_network(invoice.network), dialect_network(network))
    else {
        return Err(wrong());
    };
    let facts = InvoiceFacts {
        payment_hash: invoice.payment_hash,
        amount_msat: invoice.amount_msat,
        network: invoice_network,
        expires_at: invoice.expires_at(),
        payee: hex::encode(invoice.payee),
    };
    Ok((invoice, facts, wallet))
}

/// The invoice's amount in msat, if it names one within the per-request cap.
fn capped_amount(invoice: &DecodedInvoice, policy: &Policy) -> Result<u64, Refusal> {
    let amount_msat = invoice.amount_msat.ok_or(Refusal::NoAmount)?;
    let amount_sats = amount_msat.div_ceil(1000);
    if amount_sats > policy.budget.per_request_sats {
        return Err(Refusal::OverCap {
            amount_sats,
            cap_sats: policy.budget.per_request_sats,
        });
    }
    Ok(amount_msat)
}

/// The cap, and the quote of an invoice whose amount the dialect's checks matched to its offer.
fn within_cap(
    dialect: Dialect,
    invoice: DecodedInvoice,
    policy: &Policy,
) -> Result<Quote, Refusal> {
    let amount_msat = capped_amount(&invoice, policy)?;
    Ok(Quote {
        dialect,
        invoice,
        macaroon: None,
        amount_msat,
    })
}

fn check_mpp(
    offer: &MppOffer,
    url: &Url,
    policy: &Policy,
    network: Network,
    now: u64,
) -> Result<(Quote, String), Refusal> {
    check_origin(url, policy)?;
    let (invoice, facts, wallet) = invoice_facts(&offer.request.method_details.invoice, network)?;
    let refuse = |error| Refusal::Offer {
        dialect: Dialect::Mpp,
        error,
    };
    // An `expires` that does not read is not taken for "never": such a challenge is not paid.
    let expires_at = match (&offer.challenge.expires, offer.challenge.expires_at()) {
        (Some(text), None) => {
            return Err(refuse(PayCheckError::Unsupported(format!(
                "its expires {text:?} is not an RFC 3339 time"
            ))));
        }
        (_, at) => at,
    };
    offer
        .request
        .check_before_paying(&facts, wallet, expires_at, now)
        .map_err(refuse)?;
    let quote = within_cap(Dialect::Mpp, invoice, policy)?;
    let echo = serde_json::to_string(&offer.challenge).expect("strings serialize");
    Ok((quote, echo))
}

/// A session offer that passed every check: what opening (or topping up) would pay.
#[derive(Debug, Clone)]
pub(crate) struct SessionQuote {
    /// The deposit (or top-up) invoice, its amount the deposit.
    pub(crate) quote: Quote,
    /// The challenge to echo, as JSON.
    pub(crate) echo: String,
    /// The price of one unit, in msat.
    pub(crate) unit_msat: u64,
    /// The server's idle timeout, if it named one.
    pub(crate) idle_secs: Option<u64>,
}

/// The checks of an MPP session challenge (draft-lightning-session-00) before its deposit or a
/// top-up is paid: the origin (allowed host, https or loopback), the deposit invoice against
/// the offer ([`plannt_l402::mpp::SessionRequest::check_before_paying`]: currency, amount,
/// payment hash, network, expiry), the price of one unit within the per-request cap (the same
/// check as a charge), and the deposit within `max_session_sats`, what the policy lets a
/// session with this host hold.
pub(crate) fn check_session(
    challenge: &plannt_l402::mpp::PaymentChallenge,
    url: &Url,
    policy: &Policy,
    network: Network,
    max_session_sats: u64,
    now: u64,
) -> Result<SessionQuote, Refusal> {
    check_origin(url, policy)?;
    let refuse = |error| Refusal::Offer {
        dialect: Dialect::Mpp,
        error,
    };
    let request = challenge
        .session_request()
        .map_err(|e| refuse(PayCheckError::Unsupported(e.to_string())))?;
    let bolt11 = request.deposit_invoice.clone().unwrap_or_default();
    let (invoice, facts, wallet) = invoice_facts(&bolt11, network)?;
    let expires_at = match (&challenge.expires, challenge.expires_at()) {
        (Some(text), None) => {
            return Err(refuse(PayCheckError::Unsupported(format!(
                "its expires {text:?} is not an RFC 3339 time"
            ))));
        }
        (_, at) => at,
    };
    request
        .check_before_paying(&facts, wallet, expires_at, now)
        .map_err(refuse)?;
    let unit_sats = request
        .amount_sats()
        .ok_or_else(|| refuse(PayCheckError::BadAmount(request.amount.clone())))?;
    if unit_sats > policy.budget.per_request_sats {
        return Err(Refusal::OverCap {
            amount_sats: unit_sats,
            cap_sats: policy.budget.per_request_sats,
        });
    }
    let amount_msat = invoice.amount_msat.ok_or(Refusal::NoAmount)?;
    let deposit_sats = amount_msat.div_ceil(1000);
    if deposit_sats > max_session_sats {
        return Err(Refusal::OverSessionDeposit {
            deposit_sats,
            limit_sats: max_session_sats,
        });
    }
    Ok(SessionQuote {
        quote: Quote {
            dialect: Dialect::Mpp,
            invoice,
            macaroon: None,
            amount_msat,
        },
        echo: serde_json::to_string(challenge).expect("strings serialize"),
        unit_msat: unit_sats.saturating_mul(1000),
        idle_secs: request.idle_secs(),
    })
}

fn check_x402(
    offer: &X402Offer,
    url: &Url,
    policy: &Policy,
    network: Network,
    now: u64,
) -> Result<(Quote, String), Refusal> {
    check_origin(url, policy)?;
    let bolt11 = offer.requirements.invoice().unwrap_or_default();
    let (invoice, facts, wallet) = invoice_facts(bolt11, network)?;
    offer
        .requirements
        .check_before_paying(&facts, wallet, now)
        .map_err(|error| Refusal::Offer {
            dialect: Dialect::X402,
            error,
        })?;
    let quote = within_cap(Dialect::X402, invoice, policy)?;
    let payload = PaymentPayload::exact(offer.resource.clone(), &offer.requirements).encode();
    Ok((quote, payload))
}

/// Runs every check on a challenge that came from `url`, for a wallet on `network`, at unix
/// time `now`.
pub fn check(
    challenge: &Challenge,
    url: &Url,
    policy: &Policy,
    network: Network,
    now: u64,
) -> Result<Quote, Refusal> {
    let host = url.host_str().unwrap_or_default();
    if !policy.host_allowed(host) {
        return Err(Refusal::HostNotAllowed(host.to_string()));
    }
    // Over plain http, anyone on the path can write the challenge (and read the credential).
    if url.scheme() == "http" && !policy.allow_insecure_http && !is_loopback_host(url) {
        return Err(Refusal::InsecureHttp(host.to_string()));
    }
    let invoice = decode_invoice(&challenge.invoice)?;
    let identifier = Identifier::decode(challenge.macaroon.identifier())?;
    if identifier.payment_hash != invoice.payment_hash {
        return Err(Refusal::HashMismatch {
            invoice: hex::encode(invoice.payment_hash),
            macaroon: hex::encode(identifier.payment_hash),
        });
    }
    let amount_msat = capped_amount(&invoice, policy)?;
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
        dialect: Dialect::L402,
        invoice,
        macaroon: Some(challenge.macaroon.clone()),
        amount_msat,
    })
}
