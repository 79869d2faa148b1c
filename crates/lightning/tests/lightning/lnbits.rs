//! The LnBits backend against a real LNbits (FakeWallet funding source: real signed invoices,
//! instant settlement between its wallets): its wallets for the conformance suite, and what is
//! LNbits' own (its two keys, its answers to a failed payment, FakeWallet's invoices).
//!
//! `scripts/test` starts one (interop/lnbits/service.py) with a payee wallet and a funded payer
//! wallet, and exports where it listens and their keys:
//!
//! ```text
//! PLANNT_TEST_LNBITS_URL  PLANNT_TEST_LNBITS_PAYEE_INKEY  PLANNT_TEST_LNBITS_PAYEE_ADMINKEY
//! PLANNT_TEST_LNBITS_PAYER_ADMINKEY  PLANNT_TEST_LNBITS_PAYER_INKEY
//! ```
//!
//! Without them each test fails under `CI=true` and is skipped, loudly, elsewhere. Only the
//! conformance suite's `pays_once_and_finds_the_payment_again` makes payments that succeed, so
//! the balances it checks move by its own payment alone while the other tests run beside it.

use std::sync::Arc;

use lightning_invoice::Currency;
use plannt_lightning::dev::DevNetwork;
use plannt_lightning::{
    Context, LightningError, LnBits, Network, Payer, PaymentLookup, Receiver, Secret, Wallet,
    decode_invoice,
};
use url::Url;

use crate::conformance::{Payee, Subject};
use crate::support::{amountless_invoice, open_uri, request};

const VARS: [&str; 5] = [
    "PLANNT_TEST_LNBITS_URL",
    "PLANNT_TEST_LNBITS_PAYEE_INKEY",
    "PLANNT_TEST_LNBITS_PAYEE_ADMINKEY",
    "PLANNT_TEST_LNBITS_PAYER_ADMINKEY",
    "PLANNT_TEST_LNBITS_PAYER_INKEY",
];

/// Where the test LNbits listens, and its wallets' keys.
struct Service {
    url: Url,
    payee_inkey: String,
    payee_adminkey: String,
    payer_adminkey: String,
    payer_inkey: String,
}

impl Service {
    /// The LNbits `scripts/test` started, or `None` (after a loud notice) outside CI.
    fn get(test: &str) -> Option<Service> {
        let values: Vec<Option<String>> = VARS
            .iter()
            .map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
            .collect();
        let missing: Vec<&str> = VARS
            .iter()
            .zip(&values)
            .filter(|(_, v)| v.is_none())
            .map(|(name, _)| *name)
            .collect();
        if !missing.is_empty() {
            plannt_testkit::skip(&format!(
                "{test}: the LNbits tests need a running LNbits: {} not set. scripts/test starts \
                 one (interop/lnbits/service.py) and sets them",
                missing.join(", ")
            ));
            return None;
        }
        let mut values = values.into_iter().map(Option::unwrap_or_default);
        let mut next = || values.next().unwrap_or_default();
        let url = next();
        Some(Service {
            url: Url::parse(&url).unwrap_or_else(|e| panic!("PLANNT_TEST_LNBITS_URL {url:?}: {e}")),
            payee_inkey: next(),
            payee_adminkey: next(),
            payer_adminkey: next(),
            payer_inkey: next(),
        })
    }

    fn wallet(&self, key: &str) -> LnBits {
        // FakeWallet invoices are mainnet (`lnbc`), which is the URI's default network too.
        LnBits::new(self.url.clone(), Secret::new(key), Network::Bitcoin)
    }

    fn payee(&self) -> LnBits {
        self.wallet(&self.payee_inkey)
    }

    fn payer(&self) -> LnBits {
        self.wallet(&self.payer_adminkey)
    }
}

macro_rules! service {
    ($test:literal) => {
        match Service::get($test) {
            Some(service) => service,
            None => return,
        }
    };
}

/// A key no LNbits wallet has: 32 hex digits, like LNbits' own.
const WRONG_KEY: &str = "0123456789abcdef0123456789abcdef";

/// An `lnbits+http://` URI of the wallet `key` at `url` (FakeWallet invoices are mainnet, the
/// URI's default network).
fn uri(url: &Url, key: &str) -> String {
    let base = url.as_str().trim_end_matches('/');
    format!("lnbits+{base}?key={key}")
}

/// LNbits in the conformance suite: the payee's invoice key issues, the payer's admin key pays
/// the payee's invoices; both are LNbits wallets, so one payment moves both balances. The
/// stranger is a key no wallet has: LNbits tells anyone the preimage of a paid hash (it answers
/// `/api/v1/payments/<hash>` even with no key), but only the owning wallet gets the payment's
/// details, so a wrong key must not pass for the payer.
pub async fn subject() -> Option<Subject> {
    let service = Service::get("the LNbits conformance suite")?;
    let context = Context::new(std::env::temp_dir());
    Some(Subject {
        name: "lnbits",
        network: Network::Bitcoin,
        receiver: open_uri(&uri(&service.url, &service.payee_inkey), &context),
        payer: open_uri(&uri(&service.url, &service.payer_adminkey), &context),
        stranger: open_uri(&uri(&service.url, WRONG_KEY), &context),
        payee: Payee::Receiver,
        amountless: amountless_invoice(Currency::Bitcoin, None),
        issues_amountless: false,
        pays_amountless: false,
        balance_moves: true,
        settle: None,
        _alive: Vec::new(),
    })
}

/// LNbits at `127.0.0.1:port` (where nothing answers, or the answer breaks off), and its key:
/// no LNbits needed.
pub fn unreachable(port: u16) -> (Arc<dyn Wallet>, String) {
    let url = Url::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    let wallet = open_uri(&uri(&url, WRONG_KEY), &Context::new(std::env::temp_dir()));
    (wallet, WRONG_KEY.to_string())
}

#[tokio::test]
async fn issues_an_invoice_that_decodes_and_verifies() {
    let service = service!("issues_an_invoice_that_decodes_and_verifies");
    let issued = service
        .payee()
        .create_invoice(&request(21, "plannt: lnbits issues"))
        .await
        .expect("the payee's invoice key issues invoices");
    // decode_invoice checks the signature against the payee key the invoice carries.
    let decoded = decode_invoice(&issued.bolt11).expect("LNbits' invoice decodes and verifies");
    assert_eq!(decoded.network, Network::Bitcoin);
    assert_eq!(decoded.amount_msat, Some(21_000));
    assert_eq!(decoded.payment_hash, issued.payment_hash);
    assert_eq!(
        decoded.description.as_deref(),
        Some("plannt: lnbits issues")
    );
    assert_eq!(decoded.expiry_secs, 600);
    assert_eq!(decoded.expires_at(), issued.expires_at);

    // The admin key issues too.
    let by_admin = service
        .wallet(&service.payee_adminkey)
        .create_invoice(&request(1, "plannt: admin key"))
        .await
        .expect("the admin key issues invoices too");
    assert_ne!(by_admin.payment_hash, issued.payment_hash);
}

#[tokio::test]
async fn the_invoice_key_cannot_pay() {
    let service = service!("the_invoice_key_cannot_pay");
    let issued = service
        .payee()
        .create_invoice(&request(3, "plannt: invoice key pays"))
        .await
        .unwrap();
    let err = service
        .wallet(&service.payer_inkey)
        .pay(&issued.bolt11, 1000)
        .await
        .unwrap_err();
    assert!(matches!(err, LightningError::Unauthorized(_)), "{err:?}");
}

#[tokio::test]
async fn a_wrong_key_is_unauthorized() {
    let service = service!("a_wrong_key_is_unauthorized");
    let issued = service
        .payee()
        .create_invoice(&request(3, "plannt: wrong key"))
        .await
        .unwrap();
    let wrong = service.wallet(WRONG_KEY);
    let err = wrong.pay(&issued.bolt11, 1000).await.unwrap_err();
    assert!(matches!(err, LightningError::Unauthorized(_)), "{err:?}");
    let err = wrong.balance().await.unwrap_err();
    assert!(matches!(err, LightningError::Unauthorized(_)), "{err:?}");
    let err = wrong
        .create_invoice(&request(3, "plannt"))
        .await
        .unwrap_err();
    assert!(matches!(err, LightningError::Unauthorized(_)), "{err:?}");
    // No key at all: LNbits answers 401.
    let err = service.wallet("").balance().await.unwrap_err();
    assert!(matches!(err, LightningError::Unauthorized(_)), "{err:?}");
}

#[tokio::test]
async fn paying_more_than_the_balance_is_insufficient_balance() {
    let service = service!("paying_more_than_the_balance_is_insufficient_balance");
    let payer = service.payer();
    let held_sats = payer.balance().await.unwrap().msat / 1000;
    let issued = service
        .payee()
        .create_invoice(&request(held_sats + 1000, "plannt: too much"))
        .await
        .unwrap();
    let err = payer.pay(&issued.bolt11, 10_000).await.unwrap_err();
    assert!(
        matches!(err, LightningError::InsufficientBalance(_)),
        "{err:?}"
    );
    assert_eq!(
        payer.lookup_payment(&issued.payment_hash).await.unwrap(),
        PaymentLookup::NotFound,
        "nothing was recorded"
    );
}

#[tokio::test]
async fn an_invoice_from_outside_lnbits_fails_and_looks_up_failed() {
    let service = service!("an_invoice_from_outside_lnbits_fails_and_looks_up_failed");
    // FakeWallet pays only invoices of its own wallets; a dev network invoice is real and
    // signed, but unreachable from there.
    let dev = DevNetwork::ephemeral(1000).wallet("payee");
    let issued = dev
        .create_invoice(&request(5, "plannt: elsewhere"))
        .await
        .unwrap();
    let payer = service.payer();
    let before = payer.balance().await.unwrap().msat;
    let err = payer.pay(&issued.bolt11, 10_000).await.unwrap_err();
    assert!(matches!(err, LightningError::PaymentFailed(_)), "{err:?}");
    assert!(!err.outcome_unknown());
    assert!(matches!(
        payer.lookup_payment(&issued.payment_hash).await.unwrap(),
        PaymentLookup::Failed(_)
    ));
    assert_eq!(payer.balance().await.unwrap().msat, before);
}

#[tokio::test]
async fn health_answers_and_refuses_a_bad_key() {
    let service = service!("health_answers_and_refuses_a_bad_key");
    service.payee().health().await.expect("invoice key");
    service.payer().health().await.expect("admin key");
    let err = service.wallet(WRONG_KEY).health().await.unwrap_err();
    assert!(matches!(err, LightningError::Unauthorized(_)), "{err:?}");
}

#[test]
fn decodes_a_fakewallet_invoice_without_features() {
    const INVOICE: &str = "lnbc210n1p4s088adqz0qxqzjcsp5v06ctkm27t6gmrjqdjur404ales2cu5ljf8at3tws3k90nt6ccqspp54p5582sd67f7tffkt8yrearng7q6aajsj6sx6d6u9p0ruxy4830sk5af564tyvmrpk8cv3yt4eu7g48gsh7x2ef9n5keqfd83kpyfhmprw9hn8pft5shef2y6q2uh22naqdt44jera2r69uhmnjj6kyvgecpr7kte4";
    let decoded = decode_invoice(INVOICE).expect("a FakeWallet invoice decodes");
    assert_eq!(decoded.bolt11, INVOICE);
    assert_eq!(decoded.network, Network::Bitcoin);
    assert_eq!(decoded.amount_msat, Some(21_000));
    assert_eq!(
        hex::encode(decoded.payment_hash),
        "a86943aa0dd793e5a53659c83cf4734781aef65096a06d375c285e3e18953c5f"
    );
    assert_eq!(
        hex::encode(decoded.payee),
        "02b3cfa77350f0b6c53a207c98d229983a2d9906bf75bd3ce5ec2c52d8dbc7a991"
    );
    assert_eq!(decoded.created_at, 1_795_661_053);
    assert_eq!(decoded.expiry_secs, 600);
    assert_eq!(decoded.description.as_deref(), Some("x"));
    // Another network's prefix with the same data breaks the checksum, not the signature.
    assert!(decode_invoice(&INVOICE.replacen("lnbc", "lntb", 1)).is_err());
}

/// LNbits neither issues nor pays an invoice without an amount (`Amountless invoices not
/// supported.`): Plannt's LNbits wallet says so, typed and naming what can, asks nothing of
/// LNbits, and offers no refunds.
#[tokio::test]
async fn an_amountless_invoice_is_refused_and_plannt_says_so() {
    let service = service!("an_amountless_invoice_is_refused_and_plannt_says_so");
    let http = reqwest::Client::new();
    let url = format!("{}api/v1/payments", service.url);
    // LNbits' own answer, which the refusal rests on: issuing one…
    let answer = http
        .post(&url)
        .header("X-Api-Key", &service.payer_inkey)
        .json(&serde_json::json!({"out": false, "amount": 0, "memo": "refund", "unit": "sat"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 520);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["detail"], "Amountless invoices not supported.");
    // … and paying one.
    let answer = http
        .post(&url)
        .header("X-Api-Key", &service.payee_adminkey)
        .json(&serde_json::json!({"out": true, "bolt11": amountless_invoice(Currency::Bitcoin, None)}))
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(
        body["detail"], "Amountless invoices not supported.",
        "HTTP {status}"
    );

    let error = service
        .wallet(&service.payer_inkey)
        .create_amountless_invoice("refund", 600)
        .await
        .unwrap_err();
    assert!(matches!(error, LightningError::Backend(_)), "{error}");
    let message = error.to_string();
    assert!(
        message.contains("lnbits cannot issue an invoice without an amount")
            && message.contains("open a session with a wallet that can"),
        "{message}"
    );
    let payer = service.wallet(&service.payee_adminkey);
    assert!(!payer.can_pay_amountless());
    let error = payer
        .pay_amount(&amountless_invoice(Currency::Bitcoin, None), 5_000, 10_000)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "backend", "{error}");
}
