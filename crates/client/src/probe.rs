//! A conformance probe of a 402 server, whatever it speaks of L402, MPP and x402: what its 402
//! offers, whether each challenge reads and agrees with its own invoice, whether the catalog at
//! `/.well-known/l402.json` agrees with the 402, and, when asked to pay, what the paid answer and
//! a replay of the same credential get. `plannt check` prints what it finds.
//!
//! ```text
//! probe(client, request)   the request, unpaid (the client's address rules and timeouts)
//!   -> 402?  each challenge parsed (Offers::from_headers); each invoice decoded and its
//!            signature checked; what each challenge claims (payment hash, amount, network,
//!            expiry, payTo, maxTimeoutSeconds) against the invoice; one invoice for all offers;
//!            the JSON body's fields
//!   -> GET /.well-known/l402.json on the same origin: the route listed, its price, its dialects
//! pay(client, request, report)   Client::send: budgets, policy, ledger, as `plannt get`
//!   -> the paid answer's status and receipts (x-l402, Payment-Receipt, PAYMENT-RESPONSE) against
//!      the payment; the same credential once more: refused (single use) or served (reusable)
//! ```
//!
//! Each [`Finding`] is [`Verdict::Pass`], [`Verdict::Warn`] (allowed, but a client may trip on
//! it, or other servers do it differently) or [`Verdict::Fail`] (a client following the
//! protocol cannot pay, or would pay for something other than what is claimed). Nothing is paid
//! by [`probe`]: it sends the request once, without a credential, and never follows a redirect.
//! What a server sends is read within bounds: [`MAX_BODY`] of a 402 body, [`MAX_CATALOG`] of a
//! catalog, the protocol core's header limits; secrets (macaroons, preimages) are never in a
//! report.

use std::collections::BTreeSet;

use plannt_l402::catalog::{MeteredRule, QuotaTerms, SessionTerms};
use plannt_l402::mpp::{self, PaymentChallenge};
use plannt_l402::x402::{self, SettlementResponse};
use plannt_l402::{
    Catalog, Challenge, Dialect, Identifier, Macaroon, Network, Offer, Offers, PaymentHash,
    TokenState, catalog, wire,
};
use plannt_lightning::invoice::unix_now;
use plannt_lightning::{
    Balance, DecodedInvoice, LightningError, Payer, Payment, PaymentLookup, decode_invoice,
};
use reqwest::header::{HeaderMap, HeaderValue, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::call::{ClientError, Options, Outcome, Request, Response};
use crate::client::Client;

/// The wallet of a client that must never pay: every payment is refused, and nothing is sent
/// anywhere. [`probe`] needs none, since it never pays; a client built on this one cannot.
pub struct NeverPays;

#[async_trait::async_trait]
impl Payer for NeverPays {
    async fn pay(&self, _bolt11: &str, _max_fee_msat: u64) -> Result<Payment, LightningError> {
        Err(LightningError::PaymentFailed(
            "this client never pays (no wallet: a check without --pay)".into(),
        ))
    }

    async fn balance(&self) -> Result<Balance, LightningError> {
        Ok(Balance { msat: 0 })
    }

    async fn lookup_payment(
        &self,
        _payment_hash: &PaymentHash,
    ) -> Result<PaymentLookup, LightningError> {
        Ok(PaymentLookup::NotFound)
    }

    /// Regtest, arbitrarily: no invoice is ever paid.
    fn network(&self) -> plannt_lightning::Network {
        plannt_lightning::Network::Regtest
    }

    fn name(&self) -> &'static str {
        "none"
    }
}

/// How much of a 402 body is read.
pub const MAX_BODY: usize = 64 * 1024;
/// How much of a catalog is read.
pub const MAX_CATALOG: usize = 1024 * 1024;

/// How a check came out; the worst of a report's is its verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// As the protocol asks.
    Pass,
    /// Allowed, or another server's way, but worth knowing: a client may trip on it.
    Warn,
    /// A client following the protocol cannot pay, or would pay for other than what is claimed.
    Fail,
}

impl Verdict {
    /// `pass`, `warn` or `fail`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
        }
    }
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What was checked: `status`, `parse`, `invoice`, `payment_hash`, … (docs/check.md).
    pub check: &'static str,
    /// The dialect it is about, if one.
    #[serde(serialize_with = "some_dialect")]
    pub dialect: Option<Dialect>,
    /// How it came out.
    pub result: Verdict,
    /// Why, in a short sentence.
    pub detail: String,
}

/// What one challenge offers, as it reads (its invoice decoded where it decodes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OfferSummary {
    /// The dialect.
    #[serde(serialize_with = "dialect_name")]
    pub dialect: Dialect,
    /// The BOLT11 invoice.
    pub invoice: String,
    /// The invoice's payment hash, hex; `None` when it does not decode.
    pub payment_hash: Option<String>,
    /// The invoice's amount in msat.
    pub amount_msat: Option<u64>,
    /// The invoice's network (`mainnet`, `regtest`, …).
    pub network: Option<String>,
    /// When the invoice expires, unix seconds.
    pub expires_at: Option<u64>,
}

/// What paying, and presenting the same credential again, got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Paid {
    /// The dialect paid through.
    #[serde(serialize_with = "dialect_name")]
    pub dialect: Dialect,
    /// The status of the paid answer.
    pub status: u16,
    /// Sats paid (0 when a token paid earlier was presented).
    pub amount_sats: u64,
    /// The routing fee, msat.
    pub fee_msat: u64,
    /// The payment hash, hex.
    pub payment_hash: String,
    /// True when no payment was made now: a token paid earlier was presented.
    pub reused_token: bool,
    /// The status the same credential got a second time; `None` when not tried.
    pub replay_status: Option<u16>,
    /// `refused` (single use), `served` (reusable) or `other`; `None` when not tried. When the
    /// same request got its answer kept (`x-l402: replayed`), this is what another request
    /// (the same one with `plannt-check=replay` added to its query) got with the credential.
    pub replay: Option<&'static str>,
}

fn dialect_name<S: serde::Serializer>(dialect: &Dialect, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(dialect.as_str())
}

fn some_dialect<S: serde::Serializer>(dialect: &Option<Dialect>, s: S) -> Result<S::Ok, S::Error> {
    match dialect {
        Some(d) => s.serialize_str(d.as_str()),
        None => s.serialize_none(),
    }
}

/// Everything a probe found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The URL probed (its query included: the caller's own).
    pub url: String,
    /// The status of the unpaid request.
    pub status: u16,
    /// The offers of the 402, in header order.
    pub offers: Vec<OfferSummary>,
    /// Every check, in the order made.
    pub findings: Vec<Finding>,
    /// The worst result of the findings.
    pub verdict: Verdict,
    /// How the route is priced, as the 402 and the catalog say.
    pub pricing: RoutePricing,
    /// The payment, with `--pay`.
    pub paid: Option<Paid>,
}

/// How a route is priced, as its 402 and the catalog say: the price (fixed, or the rule of a
/// metered route and this request's price by it), the free tier, the rate limit and the prepaid
/// sessions offered. Each `None` when neither says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RoutePricing {
    /// The catalog's price model: `fixed`, `metered` or `free`.
    pub model: Option<String>,
    /// A fixed price, in sats.
    pub amount_sats: Option<u64>,
    /// What the price buys (`request`) or, metered, what is counted (`openai-tokens`).
    pub per: Option<String>,
    /// A metered route's rule: its models' prices per 1k input and output tokens, the output
    /// caps, the minimum.
    pub rule: Option<MeteredRule>,
    /// This request's price by the rule, from the 402's JSON body (`price`).
    pub quote: Option<Quote>,
    /// Requests a client address may make without paying, per window.
    pub free: Option<QuotaTerms>,
    /// Requests a client address may make at all, per window.
    pub rate_limit: Option<QuotaTerms>,
    /// The prepaid sessions offered: the 402's session challenge, else the catalog's terms.
    pub session: Option<SessionTerms>,
}

/// One request's price by a metered rule, as a 402's JSON body gives it (`price`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    /// The model asked for.
    pub model: String,
    /// The prompt's tokens.
    pub input_tokens: u64,
    /// The output tokens priced: the request's cap.
    pub output_tokens: u64,
    /// The price, in sats.
    pub sats: u64,
}

impl Report {
    /// A report of `url`, answered `status`, with no findings yet (its verdict: pass).
    pub fn new(url: impl Into<String>, status: u16) -> Report {
        Report {
            url: url.into(),
            status,
            offers: Vec::new(),
            findings: Vec::new(),
            verdict: Verdict::Pass,
            pricing: RoutePricing::default(),
            paid: None,
        }
    }

    fn push(
        &mut self,
        check: &'static str,
        dialect: Option<Dialect>,
        result: Verdict,
        detail: impl Into<String>,
    ) {
        self.findings.push(Finding {
            check,
            dialect,
            result,
            detail: detail.into(),
        });
        self.verdict = self.verdict.max(result);
    }

    fn pass(&mut self, check: &'static str, dialect: Option<Dialect>, detail: impl Into<String>) {
        self.push(check, dialect, Verdict::Pass, detail);
    }

    fn warn(&mut self, check: &'static str, dialect: Option<Dialect>, detail: impl Into<String>) {
        self.push(check, dialect, Verdict::Warn, detail);
    }

    fn fail(&mut self, check: &'static str, dialect: Option<Dialect>, detail: impl Into<String>) {
        self.push(check, dialect, Verdict::Fail, detail);
    }

    /// The dialects the 402 offers, each once, in header order.
    pub fn dialects(&self) -> Vec<Dialect> {
        let mut seen = Vec::new();
        for offer in &self.offers {
            if !seen.contains(&offer.dialect) {
                seen.push(offer.dialect);
            }
        }
        seen
    }
}

/// Requests `request` once, unpaid, and checks its 402 and the origin's catalog. `want`: the
/// dialects the 402 must offer (empty: any); the others are checked all the same. An error is
/// one of the request itself (refused by the address rules, no answer); the catalog's failures
/// are findings.
pub async fn probe(
    client: &Client,
    request: &Request,
    want: &[Dialect],
) -> Result<Report, ClientError> {
    let mut response = client.send_unpaid(request).await?;
    let now = unix_now();
    let mut report = Report::new(request.url.as_str(), response.status.as_u16());
    if response.status != StatusCode::PAYMENT_REQUIRED {
        let why = if response.status.is_redirection() {
            " (a redirect: the probe follows none; check the URL it points to)"
        } else {
            ""
        };
        report.fail(
            "status",
            None,
            format!(
                "the server answered {}, not 402 Payment Required{why}: nothing to check",
                response.status
            ),
        );
        return Ok(report);
    }
    report.pass("status", None, "402 Payment Required");
    let (body, cut) = read_some(&mut response, MAX_BODY).await?;
    inspect(&mut report, &response.headers, &body, cut, want, now);
    report.pricing.quote = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|body| serde_json::from_value(body.get("price")?.clone()).ok());
    report.pricing.session = session_offered(&response.headers);
    let route = (request.method.clone(), request.url.path().to_string());
    compare_catalog(client, request, &route, &mut report).await;
    Ok(report)
}

/// The terms of the first Lightning session challenge (MPP `intent="session"`) of a 402, if it
/// offers one with a deposit.
fn session_offered(headers: &HeaderMap) -> Option<SessionTerms> {
    let values = headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    PaymentChallenge::parse_all(values)
        .unwrap_or_default()
        .iter()
        .filter(|c| c.is_lightning_session())
        .find_map(|c| {
            let request = c.session_request().ok()?;
            Some(SessionTerms {
                deposit_sats: request.deposit_sats()?,
                idle_secs: request.idle_secs().unwrap_or(0),
            })
        })
}

/// Reads at most `limit` bytes of a body; `true` when there was more.
async fn read_some(response: &mut Response, limit: usize) -> Result<(Vec<u8>, bool), ClientError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}

fn to_l402_network(network: plannt_lightning::Network) -> Option<Network> {
    match network {
        plannt_lightning::Network::Bitcoin => Some(Network::Mainnet),
        plannt_lightning::Network::Testnet => Some(Network::Testnet),
        plannt_lightning::Network::Signet => Some(Network::Signet),
        plannt_lightning::Network::Regtest => Some(Network::Regtest),
        _ => None,
    }
}

fn network_name(network: plannt_lightning::Network) -> &'static str {
    to_l402_network(network).map_or(network.as_str(), |n| n.name())
}

/// `21 sats`, `21.5 sats` (msat shown when not whole).
fn msat_words(msat: u64) -> String {
    if msat.is_multiple_of(1000) {
        let sats = msat / 1000;
        format!("{sats} {}", if sats == 1 { "sat" } else { "sats" })
    } else {
        format!("{msat} msat")
    }
}

/// The checks of one 402's headers and body. Public for tests and for callers that fetched the
/// 402 themselves.
pub fn inspect(
    report: &mut Report,
    headers: &HeaderMap,
    body: &[u8],
    body_cut: bool,
    want: &[Dialect],
    now: u64,
) {
    let mut www = Vec::new();
    for value in headers.get_all(WWW_AUTHENTICATE) {
        match value.to_str() {
            Ok(text) => www.push(text),
            Err(_) => report.fail(
                "parse",
                None,
                "a WWW-Authenticate value is not visible ASCII: no client reads it",
            ),
        }
    }
    let mut required = Vec::new();
    for value in headers.get_all(x402::PAYMENT_REQUIRED) {
        match value.to_str() {
            Ok(text) => required.push(text),
            Err(_) => report.fail(
                "parse",
                Some(Dialect::X402),
                "the PAYMENT-REQUIRED value is not visible ASCII: no client reads it",
            ),
        }
    }
    if required.len() > 1 {
        report.warn(
            "parse",
            Some(Dialect::X402),
            format!(
                "{} PAYMENT-REQUIRED headers; x402 sends one",
                required.len()
            ),
        );
    }
    let offers = Offers::from_headers(www.iter().copied(), required.iter().copied());
    // A Lightning session challenge (MPP `intent="session"`) is no charge, so the offers skip
    // it; it is a prepaid session, read on its own (`RoutePricing::session`), not a fault.
    let mut sessions = PaymentChallenge::parse_all(www.iter().copied())
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.is_lightning_session() && c.session_request().is_ok())
        .count();
    for skipped in &offers.skipped {
        if skipped.dialect == Dialect::Mpp
            && sessions > 0
            && skipped.why.contains("intent \"session\"")
        {
            sessions -= 1;
            report.pass(
                "parse",
                Some(Dialect::Mpp),
                "Payment method=\"lightning\", intent=\"session\": a prepaid session, not a charge",
            );
            continue;
        }
        report.fail(
            "parse",
            Some(skipped.dialect),
            format!("a challenge does not parse: {}", skipped.why),
        );
    }
    let mut invoices = Vec::new();
    for offer in &offers.offers {
        let dialect = offer.dialect();
        let decoded = decode_invoice(offer.invoice());
        report.offers.push(OfferSummary {
            dialect,
            invoice: offer.invoice().to_string(),
            payment_hash: decoded.as_ref().ok().map(|i| i.payment_hash.to_hex()),
            amount_msat: decoded.as_ref().ok().and_then(|i| i.amount_msat),
            network: decoded
                .as_ref()
                .ok()
                .map(|i| network_name(i.network).to_string()),
            expires_at: decoded.as_ref().ok().map(DecodedInvoice::expires_at),
        });
        report.pass("parse", Some(dialect), parsed_words(offer));
        let invoice = match decoded {
            Ok(invoice) => invoice,
            Err(e) => {
                report.fail(
                    "invoice",
                    Some(dialect),
                    format!("the invoice is unusable: {e}"),
                );
                continue;
            }
        };
        report.pass(
            "invoice",
            Some(dialect),
            format!(
                "decodes, signature verifies ({})",
                network_name(invoice.network)
            ),
        );
        match offer {
            Offer::L402(challenge) => check_l402(report, challenge, &invoice),
            Offer::Mpp(mpp) => check_mpp(report, &mpp.challenge, &mpp.request, &invoice, now),
            Offer::X402(x) => check_x402(report, &x.requirements, &invoice),
        }
        check_amount_and_expiry(report, dialect, &invoice, now);
        invoices.push(invoice);
    }
    if offers.offers.is_empty() {
        report.fail(
            "offers",
            None,
            "the 402 offers no challenge a client can pay (no L402, MPP Lightning charge or x402 exact Lightning offer)",
        );
    } else {
        let names: Vec<&str> = report.dialects().iter().map(Dialect::as_str).collect();
        report.pass("offers", None, format!("offers {}", names.join(", ")));
    }
    for dialect in want {
        if !report.offers.iter().any(|o| o.dialect == *dialect) {
            report.fail(
                "dialects",
                Some(*dialect),
                format!("the 402 offers no {dialect} challenge"),
            );
        }
    }
    same_invoice(report, &invoices);
    check_body(report, headers, body, body_cut, &offers, invoices.first());
}

fn parsed_words(offer: &Offer) -> String {
    match offer {
        Offer::L402(c) => match c.version.as_deref() {
            None => format!("{} macaroon=\"…\", invoice=\"…\"", c.scheme.as_str()),
            Some(v) => format!(
                "{} version=\"{v}\", token=\"…\", invoice=\"…\"",
                c.scheme.as_str()
            ),
        },
        Offer::Mpp(_) => "Payment method=\"lightning\", intent=\"charge\"".into(),
        Offer::X402(_) => format!(
            "PAYMENT-REQUIRED x402Version {}, scheme exact on Lightning",
            x402::X402_VERSION
        ),
    }
}

fn check_l402(report: &mut Report, challenge: &Challenge, invoice: &DecodedInvoice) {
    let l402 = Some(Dialect::L402);
    match challenge.version.as_deref() {
        None => report.pass(
            "form",
            l402,
            "the classic form, which every L402 client reads",
        ),
        Some("0") => report.warn(
            "form",
            l402,
            "the version=\"0\", token= form: clients that only know macaroon= cannot read it",
        ),
        Some(other) => report.warn(
            "form",
            l402,
            format!("version={other:?}: a version no client knows (\"0\" is the one defined)"),
        ),
    }
    if challenge.scheme == plannt_l402::Scheme::Lsat {
        report.warn(
            "form",
            l402,
            "the old LSAT scheme name; clients look for L402 first",
        );
    }
    match Identifier::decode(challenge.macaroon.identifier()) {
        Ok(id) if id.payment_hash == invoice.payment_hash => {
            report.pass("payment_hash", l402, "the macaroon's payment hash is the invoice's")
        }
        Ok(id) => report.fail(
            "payment_hash",
            l402,
            format!(
                "the macaroon is bound to payment hash {}, the invoice's is {}: paying it buys no token",
                id.payment_hash.to_hex(),
                invoice.payment_hash.to_hex()
            ),
        ),
        Err(e) => report.fail(
            "payment_hash",
            l402,
            format!("the macaroon's identifier names no payment hash: {e}"),
        ),
    }
}

fn check_mpp(
    report: &mut Report,
    challenge: &PaymentChallenge,
    request: &mpp::ChargeRequest,
    invoice: &DecodedInvoice,
    now: u64,
) {
    let d = Some(Dialect::Mpp);
    if request.currency != mpp::CURRENCY_SAT {
        report.fail(
            "amount",
            d,
            format!(
                "currency {:?}; a Lightning charge is in sat",
                request.currency
            ),
        );
    } else {
        match (
            request.amount_sats().and_then(|s| s.checked_mul(1000)),
            invoice.amount_msat,
        ) {
            (Some(claimed), Some(asked)) if claimed == asked => report.pass(
                "amount",
                d,
                format!(
                    "the request's amount {} is the invoice's",
                    msat_words(claimed)
                ),
            ),
            (Some(claimed), Some(asked)) => report.fail(
                "amount",
                d,
                format!(
                    "the request says {} but the invoice asks {}",
                    msat_words(claimed),
                    msat_words(asked)
                ),
            ),
            (None, _) => report.fail(
                "amount",
                d,
                format!(
                    "the request's amount {:?} is not a positive whole number of sats",
                    request.amount
                ),
            ),
            (Some(_), None) => {} // the invoice's own check says it names none
        }
    }
    match (&request.method_details.payment_hash, request.payment_hash()) {
        (None, _) => report.pass(
            "payment_hash",
            d,
            "the request names no payment hash beside its invoice (allowed)",
        ),
        (Some(_), Some(hash)) if hash == invoice.payment_hash => report.pass(
            "payment_hash",
            d,
            "the request's paymentHash is the invoice's",
        ),
        (Some(named), _) => report.fail(
            "payment_hash",
            d,
            format!(
                "the request names payment hash {named:?}, the invoice's is {}",
                invoice.payment_hash.to_hex()
            ),
        ),
    }
    let named = request
        .method_details
        .network
        .as_deref()
        .unwrap_or("mainnet (by default)");
    match request.network() {
        Some(n) if Some(n) == to_l402_network(invoice.network) => {
            report.pass("network", d, format!("{named}, the invoice's"))
        }
        _ => report.fail(
            "network",
            d,
            format!(
                "the request says {named}, the invoice is for {}",
                network_name(invoice.network)
            ),
        ),
    }
    match (&challenge.expires, challenge.expires_at()) {
        (None, _) => report.warn("expires", d, "the challenge has no expires parameter"),
        (Some(text), None) => report.fail("expires", d, format!("expires={text:?} is not an RFC 3339 time")),
        (Some(_), Some(at)) if now >= at => {
            report.fail("expires", d, format!("the challenge expired {} s ago", now - at))
        }
        (Some(_), Some(at)) if at > invoice.expires_at() => report.warn(
            "expires",
            d,
            format!(
                "the challenge outlives its invoice by {} s: a client paying late pays an expired invoice",
                at - invoice.expires_at()
            ),
        ),
        (Some(_), Some(at)) => report.pass("expires", d, format!("the challenge expires in {} s, with or before its invoice", at - now)),
    }
}

fn check_x402(report: &mut Report, offer: &x402::PaymentRequirements, invoice: &DecodedInvoice) {
    let d = Some(Dialect::X402);
    match offer.asset.as_deref() {
        Some(asset) if !asset.eq_ignore_ascii_case(x402::ASSET_BTC) => report.fail(
            "amount",
            d,
            format!("asset {asset:?}; a Lightning offer is in BTC"),
        ),
        _ => match (offer.amount_msat(), invoice.amount_msat) {
            (Some(claimed), Some(asked)) if claimed == asked => report.pass(
                "amount",
                d,
                format!("amount {claimed} msat is the invoice's"),
            ),
            (Some(claimed), Some(asked)) => report.fail(
                "amount",
                d,
                format!("the offer says {claimed} msat but the invoice asks {asked} msat"),
            ),
            (None, _) => report.fail(
                "amount",
                d,
                format!(
                    "the offer's amount {:?} is not a positive whole number of msat",
                    offer.amount
                ),
            ),
            (Some(_), None) => {}
        },
    }
    match (offer.extra.get("paymentHash"), offer.payment_hash()) {
        (None, _) => report.pass(
            "payment_hash",
            d,
            "the offer names no paymentHash beside its invoice (allowed)",
        ),
        (Some(_), Some(hash)) if hash == invoice.payment_hash => {
            report.pass("payment_hash", d, "extra.paymentHash is the invoice's")
        }
        (Some(named), _) => report.fail(
            "payment_hash",
            d,
            format!(
                "extra.paymentHash is {named}, the invoice's is {}",
                invoice.payment_hash.to_hex()
            ),
        ),
    }
    match offer.network() {
        Some(n) if Some(n) == to_l402_network(invoice.network) => report.pass(
            "network",
            d,
            format!("{} ({n}), the invoice's", offer.network),
        ),
        Some(n) => report.fail(
            "network",
            d,
            format!(
                "the offer is for {n} ({}), the invoice for {}",
                offer.network,
                network_name(invoice.network)
            ),
        ),
        None => report.fail(
            "network",
            d,
            format!("{:?} is no bip122 network id a client knows", offer.network),
        ),
    }
    let payee = hex::encode(invoice.payee);
    match offer.pay_to.as_deref() {
        None => report.warn(
            "pay_to",
            d,
            "no payTo (x402 asks for one; Lightning offers say anonymous)",
        ),
        Some(x402::PAY_TO_ANONYMOUS) => {
            report.pass("pay_to", d, "anonymous: the payee is the invoice's")
        }
        Some(p) if p.eq_ignore_ascii_case(&payee) => {
            report.pass("pay_to", d, "the invoice's payee")
        }
        Some(p) => report.fail(
            "pay_to",
            d,
            format!("payTo {p:?} is not the invoice's payee {payee}"),
        ),
    }
    match offer.max_timeout_seconds {
        None => report.warn("max_timeout", d, "no maxTimeoutSeconds"),
        Some(0) => report.fail("max_timeout", d, "maxTimeoutSeconds is 0: no time to pay"),
        Some(secs) if secs > invoice.expiry_secs => report.warn(
            "max_timeout",
            d,
            format!(
                "maxTimeoutSeconds {secs} is longer than the invoice lives ({} s)",
                invoice.expiry_secs
            ),
        ),
        Some(secs) => report.pass(
            "max_timeout",
            d,
            format!(
                "maxTimeoutSeconds {secs}, within the invoice's {} s",
                invoice.expiry_secs
            ),
        ),
    }
}

fn check_amount_and_expiry(
    report: &mut Report,
    dialect: Dialect,
    invoice: &DecodedInvoice,
    now: u64,
) {
    let d = Some(dialect);
    if invoice.amount_msat.is_none() {
        report.fail(
            "amount",
            d,
            "the invoice names no amount: a client never pays one",
        );
    } else if dialect == Dialect::L402 {
        let msat = invoice.amount_msat.unwrap_or_default();
        report.pass(
            "amount",
            d,
            format!("the invoice asks {}", msat_words(msat)),
        );
    }
    let at = invoice.expires_at();
    if now >= at {
        report.fail(
            "expiry",
            d,
            format!("the invoice expired {} s ago", now - at),
        );
    } else {
        report.pass(
            "expiry",
            d,
            format!("the invoice expires in {} s", at - now),
        );
    }
}

fn same_invoice(report: &mut Report, invoices: &[DecodedInvoice]) {
    if invoices.len() < 2 {
        return;
    }
    let hashes: BTreeSet<String> = invoices.iter().map(|i| i.payment_hash.to_hex()).collect();
    let bolt11: BTreeSet<&str> = invoices.iter().map(|i| i.bolt11.as_str()).collect();
    if hashes.len() == 1 && bolt11.len() == 1 {
        report.pass(
            "same_invoice",
            None,
            format!(
                "all {} offers name one invoice and payment hash",
                invoices.len()
            ),
        );
    } else {
        report.warn(
            "same_invoice",
            None,
            format!(
                "the offers name {} invoices and {} payment hashes: paying one may not settle the others (Plannt offers one)",
                bolt11.len(),
                hashes.len()
            ),
        );
    }
}

fn check_body(
    report: &mut Report,
    headers: &HeaderMap,
    body: &[u8],
    cut: bool,
    offers: &Offers,
    invoice: Option<&DecodedInvoice>,
) {
    if cut {
        report.warn(
            "body",
            None,
            format!("the 402 body is longer than the {MAX_BODY} bytes read"),
        );
        return;
    }
    if body.is_empty() {
        report.pass("body", None, "empty (the challenges are in the headers)");
        return;
    }
    let json: Value = match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Value::Object(map),
        _ => {
            let kind = headers
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("no content type");
            report.warn(
                "body",
                None,
                format!("the 402 body is not a JSON object ({kind}): a client reading the challenge from the body finds none"),
            );
            return;
        }
    };
    let mut fields: Vec<&str> = json
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    fields.sort_unstable();
    let mut wrong = Vec::new();
    if let (Some(text), Some(invoice)) = (json["invoice"].as_str(), invoice)
        && !text.eq_ignore_ascii_case(&invoice.bolt11)
    {
        wrong.push("invoice is not the challenge's invoice".to_string());
    }
    if let (Some(text), Some(invoice)) = (json["payment_hash"].as_str(), invoice)
        && !text.eq_ignore_ascii_case(&invoice.payment_hash.to_hex())
    {
        wrong.push(format!("payment_hash {text} is not the invoice's"));
    }
    if let (Some(sats), Some(asked)) = (
        json["amount_sats"].as_u64(),
        invoice.and_then(DecodedInvoice::amount_sats),
    ) && sats != asked
    {
        wrong.push(format!("amount_sats {sats} but the invoice asks {asked}"));
    }
    let token = json["macaroon"].as_str().or(json["token"].as_str());
    if let Some(token) = token
        && let Some(Offer::L402(challenge)) = offers.first(Dialect::L402)
        && Macaroon::from_base64(token).ok().as_ref() != Some(&challenge.macaroon)
    {
        wrong.push("macaroon is not the challenge's".into());
    }
    if wrong.is_empty() {
        report.pass("body", None, format!("JSON with {}", fields.join(", ")));
    } else {
        report.fail(
            "body",
            None,
            format!(
                "the JSON body disagrees with the challenge: {}",
                wrong.join("; ")
            ),
        );
    }
}

/// Fetches the catalog of the request's origin and compares the route with the 402.
async fn compare_catalog(
    client: &Client,
    request: &Request,
    route: &(Method, String),
    report: &mut Report,
) {
    let mut url = request.url.clone();
    url.set_path(catalog::CATALOG_PATH);
    url.set_query(None);
    url.set_fragment(None);
    let mut response = match client.send_unpaid(&Request::get(url)).await {
        Ok(r) => r,
        Err(e) => {
            return report.warn(
                "catalog",
                None,
                format!("{} could not be read: {e}", catalog::CATALOG_PATH),
            );
        }
    };
    if response.status == StatusCode::NOT_FOUND {
        return report.warn(
            "catalog",
            None,
            format!(
                "no catalog at {} (404): nothing to compare",
                catalog::CATALOG_PATH
            ),
        );
    }
    if !response.status.is_success() {
        return report.warn(
            "catalog",
            None,
            format!(
                "{} answered {}: nothing to compare",
                catalog::CATALOG_PATH,
                response.status
            ),
        );
    }
    let body = match read_some(&mut response, MAX_CATALOG).await {
        Ok((_, true)) => {
            return report.fail(
                "catalog",
                None,
                format!("the catalog is larger than the {MAX_CATALOG} bytes read"),
            );
        }
        Ok((body, false)) => body,
        Err(e) => {
            return report.warn(
                "catalog",
                None,
                format!("the catalog could not be read: {e}"),
            );
        }
    };
    let catalog: Catalog = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            return report.fail(
                "catalog",
                None,
                format!("the catalog is not the catalog's JSON: {e}"),
            );
        }
    };
    let (method, path) = route;
    let service = catalog.services.iter().find(|s| {
        s.endpoints.iter().any(|e| {
            let method_ok = e.method == "*" || e.method.eq_ignore_ascii_case(method.as_str());
            let path_ok = match e.matching {
                catalog::Match::Exact => !e.path.is_empty() && e.path == *path,
                catalog::Match::Prefix => !e.path.is_empty() && path.starts_with(&e.path),
            };
            method_ok && path_ok
        })
    });
    let Some(service) = service else {
        return report.warn(
            "catalog",
            None,
            format!("the catalog lists no service for {method} {path}"),
        );
    };
    report.pass(
        "catalog",
        None,
        format!("lists {method} {path} as service {:?}", service.name),
    );
    let pricing = &mut report.pricing;
    if let Some(price) = &service.pricing {
        pricing.model = Some(price.model.clone());
        pricing.amount_sats = price.amount_sats;
        pricing.per = price.per.clone();
        pricing.rule = price.metered_rule();
    }
    pricing.amount_sats = pricing
        .amount_sats
        .or(service.tiers.first().map(|t| t.amount_sats));
    pricing.free = service.free;
    pricing.rate_limit = service.rate_limit;
    pricing.session = pricing.session.or(service.session);
    let asked = report
        .offers
        .iter()
        .find_map(|o| o.amount_msat)
        .map(|m| m.div_ceil(1000));
    match (service.price_sats(), asked) {
        _ if report.pricing.rule.is_some() => metered_price(report, asked),
        (Some(0), _) => report.fail(
            "catalog_price",
            None,
            "the catalog says the service is free, but it answers 402",
        ),
        (Some(listed), Some(asked)) if listed == asked => report.pass(
            "catalog_price",
            None,
            format!("{listed} sats, as the invoice asks"),
        ),
        (Some(listed), Some(asked)) => report.fail(
            "catalog_price",
            None,
            format!("the catalog says {listed} sats, the invoice asks {asked}"),
        ),
        (None, _) => report.warn("catalog_price", None, "the catalog gives no price"),
        (Some(_), None) => {}
    }
    let offered: BTreeSet<Dialect> = report.dialects().into_iter().collect();
    let listed: Result<BTreeSet<Dialect>, _> = service
        .dialects
        .iter()
        .map(|d| d.parse::<Dialect>())
        .collect();
    match listed {
        Err(e) => report.fail(
            "catalog_dialects",
            None,
            format!("the catalog's dialects: {e}"),
        ),
        Ok(listed) if listed.is_empty() && offered.iter().all(|d| *d == Dialect::L402) => report
            .pass(
                "catalog_dialects",
                None,
                "no dialects listed, which means L402, as offered",
            ),
        Ok(listed) if listed.is_empty() => report.warn(
            "catalog_dialects",
            None,
            format!(
                "the catalog lists no dialects (L402 alone, by default) and the 402 offers {}",
                names(&offered)
            ),
        ),
        Ok(listed) if listed == offered => report.pass(
            "catalog_dialects",
            None,
            format!("{}, as offered", names(&listed)),
        ),
        Ok(listed) => report.fail(
            "catalog_dialects",
            None,
            format!(
                "the catalog lists {}, the 402 offers {}",
                names(&listed),
                names(&offered)
            ),
        ),
    }
}

/// The `catalog_price` finding of a metered route: the catalog gives its rule, and the 402's
/// body this request's price by it, which must be what the invoice asks, for a model the rule
/// sells, at least the rule's minimum.
fn metered_price(report: &mut Report, asked: Option<u64>) {
    let (Some(rule), quote) = (&report.pricing.rule, &report.pricing.quote) else {
        return;
    };
    let min = rule.min_sats.unwrap_or(0);
    let verdict = match (quote, asked) {
        (Some(q), _) if !rule.models.contains_key(&q.model) => Err(format!(
            "the 402 prices the request for {}, a model the catalog's rule does not sell",
            q.model
        )),
        (Some(q), Some(asked)) if q.sats != asked => Err(format!(
            "the 402's body prices the request at {} sats, the invoice asks {asked}",
            q.sats
        )),
        (_, Some(asked)) if asked < min => Err(format!(
            "the invoice asks {asked} sats, below the rule's minimum of {min}"
        )),
        (Some(q), Some(asked)) => Ok(format!(
            "metered by {}: {asked} sats for {} input tokens and {} output tokens at most of {}, as the invoice asks",
            rule.per, q.input_tokens, q.output_tokens, q.model
        )),
        (None, _) => Ok(format!(
            "metered by {}: the amount is the 402's ({}), the 402's body gives no price of its own",
            rule.per,
            asked.map_or("none".into(), |a| format!("{a} sats"))
        )),
        (Some(_), None) => return,
    };
    match verdict {
        Ok(detail) => report.pass("catalog_price", None, detail),
        Err(detail) => report.fail("catalog_price", None, detail),
    }
}

fn names(set: &BTreeSet<Dialect>) -> String {
    if set.is_empty() {
        return "none".into();
    }
    set.iter()
        .map(Dialect::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Pays `request` through the client ([`Client::send`]: its checks, budgets and ledger, as
/// `plannt get`), checks the paid answer's status and receipts, and presents the same
/// credential once more, verbatim, in the header it was presented in (`Authorization` for L402
/// and MPP, `PAYMENT-SIGNATURE` for x402). `max_sats` lowers the per-request cap. An error is
/// the payment's (refused, over budget, failed, no answer) or the replay's (no answer): nothing
/// is added to the report then.
pub async fn pay(
    client: &Client,
    request: &Request,
    report: &mut Report,
    dialect: Option<Dialect>,
    max_sats: Option<u64>,
) -> Result<(), ClientError> {
    let only = dialect.map(|d| [d]);
    let options = Options {
        max_sats,
        dry_run: false,
        on_event: None,
        dialects: only.as_ref().map(|d| &d[..]),
        // A probe pays one charge, never a session's deposit.
        max_session_sats: Some(0),
    };
    let outcome = client.send(request, &options).await?;
    let Outcome::Response(mut response) = outcome else {
        unreachable!("not a dry run")
    };
    let status = response.status;
    let Some(receipt) = response.receipt.clone() else {
        report.fail(
            "paid",
            None,
            format!("the server answered {status} without asking for a payment: nothing was paid"),
        );
        return Ok(());
    };
    // The credential as presented: kept here to present it again, never reported.
    let presented = response.presented.take();
    let d = Some(receipt.dialect);
    let mut paid = Paid {
        dialect: receipt.dialect,
        status: status.as_u16(),
        amount_sats: receipt.amount_sats,
        fee_msat: receipt.fee_msat,
        payment_hash: receipt.payment_hash.clone(),
        reused_token: receipt.reused_token,
        replay_status: None,
        replay: None,
    };
    let how = if receipt.reused_token {
        "presented a token paid earlier".to_string()
    } else {
        format!("paid {} sats", receipt.amount_sats)
    };
    if status.is_success() {
        report.pass("paid", d, format!("{how}; the server answered {status}"));
    } else {
        report.fail(
            "paid",
            d,
            format!("{how}; the server answered {status}, not the resource"),
        );
    }
    let hash = PaymentHash::from_hex(&receipt.payment_hash).ok();
    check_receipts(report, &response.headers, receipt.dialect, hash.as_ref());
    // The body is not the probe's business; drop it unread.
    let _ = read_some(&mut response, 0).await;
    match presented {
        None => report.warn(
            "replay",
            d,
            "not tried: the credential presented is not at hand",
        ),
        Some(credential) => {
            let mut again = request.clone();
            let value = HeaderValue::from_str(&credential.value).map_err(|_| {
                ClientError::BadChallenge("the credential cannot travel in a header".into())
            })?;
            again.headers.insert(credential.name, value);
            let mut second = client.send_unpaid(&again).await?;
            let _ = read_some(&mut second, 0).await;
            let mut same = String::new();
            if second.headers.get(wire::X_L402).map(|v| v.as_bytes()) == Some(b"replayed") {
                // A gateway that keeps paid answers gives the same request its answer again
                // (a retry of a lost answer); single use is for another request.
                same = format!(
                    "the same request: {}, x-l402: replayed (its answer kept for a retry); another request with it: ",
                    second.status
                );
                let mut other = again.clone();
                other
                    .url
                    .query_pairs_mut()
                    .append_pair("plannt-check", "replay");
                second = client.send_unpaid(&other).await?;
                let _ = read_some(&mut second, 0).await;
            }
            let code = second.status;
            paid.replay_status = Some(code.as_u16());
            let state = second
                .headers
                .get(wire::X_L402)
                .and_then(|v| TokenState::parse(v.as_bytes()));
            if code == StatusCode::PAYMENT_REQUIRED || code == StatusCode::UNAUTHORIZED {
                paid.replay = Some("refused");
                report.pass(
                    "replay",
                    d,
                    format!("{same}the same credential again: {code}, refused (single use)"),
                );
            } else if code.is_success() {
                paid.replay = Some("served");
                let state = state.map_or(String::new(), |s| format!(", x-l402: {}", s.as_str()));
                report.pass(
                    "replay",
                    d,
                    format!(
                        "{same}the same credential again: {code}{state}, served again (reusable)"
                    ),
                );
            } else {
                paid.replay = Some("other");
                report.warn(
                    "replay",
                    d,
                    format!("{same}the same credential again: {code}"),
                );
            }
        }
    }
    report.paid = Some(paid);
    Ok(())
}

/// The receipts of a paid answer, against the payment hash paid.
fn check_receipts(
    report: &mut Report,
    headers: &HeaderMap,
    dialect: Dialect,
    paid: Option<&PaymentHash>,
) {
    let missing = match dialect {
        Dialect::Mpp => Some(mpp::PAYMENT_RECEIPT).filter(|h| !headers.contains_key(*h)),
        Dialect::X402 => Some(x402::PAYMENT_RESPONSE).filter(|h| !headers.contains_key(*h)),
        Dialect::L402 => None,
    };
    if let Some(name) = missing {
        report.warn(
            "receipt",
            Some(dialect),
            format!("paid through {dialect}, and the answer has no {name} header"),
        );
    }
    match headers
        .get(wire::X_L402)
        .map(|v| TokenState::parse(v.as_bytes()))
    {
        None if dialect != Dialect::L402 => {}
        None => report.warn(
            "receipt",
            Some(Dialect::L402),
            "no x-l402 header: whether the token was spent is not said",
        ),
        Some(None) => report.fail(
            "receipt",
            Some(Dialect::L402),
            "x-l402 is neither spent nor released",
        ),
        Some(Some(state)) => report.pass(
            "receipt",
            Some(Dialect::L402),
            format!("x-l402: {}", state.as_str()),
        ),
    }
    if let Some(value) = headers.get(wire::X_L402_PAYMENT_HASH) {
        let named = value
            .to_str()
            .ok()
            .and_then(|v| PaymentHash::from_hex(v.trim()).ok());
        if named.is_some() && named.as_ref() == paid {
            report.pass(
                "receipt",
                Some(Dialect::L402),
                "x-l402-payment-hash is the payment's",
            );
        } else {
            report.fail(
                "receipt",
                Some(Dialect::L402),
                "x-l402-payment-hash is not the payment's",
            );
        }
    }
    if let Some(value) = headers.get(mpp::PAYMENT_RECEIPT) {
        let d = Some(Dialect::Mpp);
        match value
            .to_str()
            .map_err(|_| "not visible ASCII".to_string())
            .and_then(|v| mpp::Receipt::parse(v).map_err(|e| e.to_string()))
        {
            Err(e) => report.fail("receipt", d, format!("Payment-Receipt does not parse: {e}")),
            Ok(r) if r.status != "success" => report.fail(
                "receipt",
                d,
                format!("Payment-Receipt status {:?}", r.status),
            ),
            Ok(r) if r.payment_hash().as_ref() != paid => report.fail(
                "receipt",
                d,
                format!(
                    "Payment-Receipt reference {:?} is not the payment hash paid",
                    r.reference
                ),
            ),
            Ok(_) => report.pass(
                "receipt",
                d,
                "Payment-Receipt: success, reference is the payment hash",
            ),
        }
    }
    if let Some(value) = headers.get(x402::PAYMENT_RESPONSE) {
        let d = Some(Dialect::X402);
        match value
            .to_str()
            .map_err(|_| "not visible ASCII".to_string())
            .and_then(|v| SettlementResponse::decode(v).map_err(|e| e.to_string()))
        {
            Err(e) => report.fail(
                "receipt",
                d,
                format!("PAYMENT-RESPONSE does not parse: {e}"),
            ),
            Ok(r) if !r.success => {
                report.fail("receipt", d, "PAYMENT-RESPONSE says success: false")
            }
            Ok(r) if r.payment_hash().as_ref() != paid => report.fail(
                "receipt",
                d,
                format!(
                    "PAYMENT-RESPONSE transaction {:?} is not the payment hash paid",
                    r.transaction
                ),
            ),
            Ok(r) => report.pass(
                "receipt",
                d,
                format!("PAYMENT-RESPONSE: success on {}", r.network),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use plannt_l402::mpp::{ChallengeKey, ChallengeKeys, ChargeOffer};
    use plannt_l402::x402::{ExactOffer, PaymentRequired, ResourceInfo, TagKey, TagKeys};
    use plannt_l402::{KeyRing, MintRequest, RootKey};
    use plannt_lightning::dev::DevNetwork;
    use plannt_lightning::{InvoiceRequest, IssuedInvoice};

    use super::*;

    fn invoice(network: &DevNetwork) -> IssuedInvoice {
        network
            .create_invoice(&InvoiceRequest {
                amount_sats: 21,
                memo: "probe".into(),
                expiry_secs: 600,
            })
            .unwrap()
    }

    fn l402(invoice: &IssuedInvoice) -> Challenge {
        let macaroon = KeyRing::single(RootKey::new([7; 32]))
            .mint(&MintRequest {
                payment_hash: invoice.payment_hash,
                route: "probe",
                valid_until: invoice.expires_at + 3600,
                conditions: &[],
            })
            .unwrap();
        Challenge::new(macaroon, invoice.bolt11.clone())
    }

    fn mpp(invoice: &IssuedInvoice, network: Network, expires_at: u64) -> String {
        ChallengeKeys::new(vec![ChallengeKey::from_secret(&[1; 32])])
            .mint_charge(&ChargeOffer {
                realm: "probe",
                route: "probe",
                amount_sats: 21,
                invoice: &invoice.bolt11,
                payment_hash: invoice.payment_hash,
                network,
                expires_at,
                description: None,
            })
            .unwrap()
            .to_header_value()
    }

    fn x402(invoice: &IssuedInvoice, edit: impl Fn(&mut x402::PaymentRequirements)) -> String {
        let mut offer = TagKeys::new(vec![TagKey::new([2; 32])])
            .requirements(&ExactOffer {
                route: "probe",
                amount_msat: 21_000,
                invoice: &invoice.bolt11,
                payment_hash: invoice.payment_hash,
                network: Network::Regtest,
                max_timeout_seconds: 600,
                valid_until: invoice.expires_at,
            })
            .unwrap();
        edit(&mut offer);
        let resource = ResourceInfo {
            url: "http://probe/".into(),
            description: None,
            mime_type: None,
        };
        PaymentRequired::new(resource, vec![offer]).encode()
    }

    fn inspected(www: &[String], required: &[String], body: &str) -> Report {
        let mut headers = HeaderMap::new();
        for value in www {
            headers.append(WWW_AUTHENTICATE, HeaderValue::from_str(value).unwrap());
        }
        for value in required {
            headers.append(
                x402::PAYMENT_REQUIRED,
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let mut report = Report::new("http://probe/", 402);
        inspect(
            &mut report,
            &headers,
            body.as_bytes(),
            false,
            &[],
            unix_now(),
        );
        report
    }

    fn results(report: &Report, check: &str, dialect: Option<Dialect>) -> Vec<Verdict> {
        report
            .findings
            .iter()
            .filter(|f| f.check == check && f.dialect == dialect)
            .map(|f| f.result)
            .collect()
    }

    #[test]
    fn the_token_form_and_the_old_scheme_name_are_read_and_said() {
        let network = DevNetwork::ephemeral(1_000);
        let paid = invoice(&network);
        let challenge = l402(&paid);
        let report = inspected(&[challenge.to_header_value_v2026()], &[], "");
        let l = Some(Dialect::L402);
        assert_eq!(results(&report, "parse", l), [Verdict::Pass]);
        assert_eq!(results(&report, "form", l), [Verdict::Warn]);
        assert_eq!(results(&report, "payment_hash", l), [Verdict::Pass]);
        assert_eq!(report.verdict, Verdict::Warn, "{report:#?}");

        let lsat = challenge.to_header_value().replacen("L402", "LSAT", 1);
        let report = inspected(&[lsat], &[], "");
        assert_eq!(
            results(&report, "form", l),
            [Verdict::Pass, Verdict::Warn],
            "{report:#?}"
        );
    }

    #[test]
    fn offers_naming_two_invoices_warn_and_do_not_fail() {
        let network = DevNetwork::ephemeral(1_000);
        let (one, other) = (invoice(&network), invoice(&network));
        let report = inspected(
            &[
                l402(&one).to_header_value(),
                mpp(&other, Network::Regtest, other.expires_at),
            ],
            &[],
            "",
        );
        assert_eq!(results(&report, "same_invoice", None), [Verdict::Warn]);
        assert_eq!(report.verdict, Verdict::Warn, "{report:#?}");
    }

    #[test]
    fn an_mpp_challenge_for_another_network_fails_and_one_outliving_its_invoice_warns() {
        let network = DevNetwork::ephemeral(1_000);
        let paid = invoice(&network);
        let m = Some(Dialect::Mpp);
        let report = inspected(&[mpp(&paid, Network::Mainnet, paid.expires_at)], &[], "");
        assert_eq!(results(&report, "network", m), [Verdict::Fail]);
        let report = inspected(
            &[mpp(&paid, Network::Regtest, paid.expires_at + 60)],
            &[],
            "",
        );
        assert_eq!(results(&report, "network", m), [Verdict::Pass]);
        assert_eq!(results(&report, "expires", m), [Verdict::Warn]);
        let report = inspected(&[mpp(&paid, Network::Regtest, paid.expires_at)], &[], "");
        assert_eq!(report.verdict, Verdict::Pass, "{report:#?}");
    }

    #[test]
    fn an_x402_offer_paying_someone_else_fails_and_one_allowing_too_long_warns() {
        let network = DevNetwork::ephemeral(1_000);
        let paid = invoice(&network);
        let x = Some(Dialect::X402);
        let someone = x402(&paid, |o| {
            o.pay_to = Some("02".to_string() + &"ab".repeat(32))
        });
        let report = inspected(&[], &[someone], "");
        assert_eq!(results(&report, "pay_to", x), [Verdict::Fail]);
        let long = x402(&paid, |o| o.max_timeout_seconds = Some(3_600));
        let report = inspected(&[], &[long], "");
        assert_eq!(results(&report, "max_timeout", x), [Verdict::Warn]);
        let other_hash = x402(&paid, |o| {
            o.extra
                .insert("paymentHash".into(), Value::String("00".repeat(32)));
        });
        let report = inspected(&[], &[other_hash], "");
        assert_eq!(results(&report, "payment_hash", x), [Verdict::Fail]);
        let report = inspected(&[], &[x402(&paid, |_| {})], "");
        assert_eq!(report.verdict, Verdict::Pass, "{report:#?}");
    }

    #[test]
    fn a_json_body_that_disagrees_with_the_challenge_fails() {
        let network = DevNetwork::ephemeral(1_000);
        let paid = invoice(&network);
        let www = [l402(&paid).to_header_value()];
        let right = serde_json::json!({
            "invoice": paid.bolt11,
            "payment_hash": paid.payment_hash.to_hex(),
            "amount_sats": 21,
        });
        let report = inspected(&www, &[], &right.to_string());
        assert_eq!(results(&report, "body", None), [Verdict::Pass]);
        for (field, wrong) in [
            ("payment_hash", serde_json::json!("00".repeat(32))),
            ("amount_sats", serde_json::json!(22)),
            (
                "macaroon",
                serde_json::json!(l402(&invoice(&network)).macaroon.to_base64()),
            ),
        ] {
            let mut body = right.clone();
            body[field] = wrong;
            let report = inspected(&www, &[], &body.to_string());
            assert_eq!(results(&report, "body", None), [Verdict::Fail], "{field}");
        }
    }

    #[test]
    fn a_metered_price_must_be_the_invoices_for_a_model_the_rule_sells() {
        let rule: MeteredRule = serde_json::from_value(serde_json::json!({
            "per": "openai-tokens", "min_sats": 2,
            "models": {"gpt-4o": {"input_per_1k": 10, "output_per_1k": 40}}
        }))
        .unwrap();
        let check = |model: &str, sats: u64, asked: Option<u64>| {
            let mut report = Report::new("http://probe/", 402);
            report.pricing.rule = Some(rule.clone());
            report.pricing.quote = Some(Quote {
                model: model.into(),
                input_tokens: 12,
                output_tokens: 40,
                sats,
            });
            metered_price(&mut report, asked);
            let finding = report.findings.pop().unwrap();
            assert_eq!(finding.check, "catalog_price");
            (finding.result, finding.detail)
        };
        let (result, detail) = check("gpt-4o", 3, Some(3));
        assert_eq!(result, Verdict::Pass, "{detail}");
        assert!(
            detail.contains("3 sats for 12 input tokens and 40 output tokens"),
            "{detail}"
        );
        let (result, detail) = check("gpt-4o", 3, Some(4));
        assert_eq!(result, Verdict::Fail);
        assert!(detail.contains("the invoice asks 4"), "{detail}");
        let (result, detail) = check("gpt-9", 3, Some(3));
        assert_eq!(result, Verdict::Fail);
        assert!(detail.contains("does not sell"), "{detail}");
        let (result, detail) = check("gpt-4o", 1, Some(1));
        assert_eq!(result, Verdict::Fail);
        assert!(detail.contains("below the rule's minimum of 2"), "{detail}");
    }
}
