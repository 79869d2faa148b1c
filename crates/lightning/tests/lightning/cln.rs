//! The Cln backend against the test kit's fake Core Lightning `clnrest` ([`fake_cln`]): its
//! subject for the conformance suite, and what is CLN's own (labels, runes, xpay and pay, the
//! error codes, listfunds).

use plannt_l402::PaymentHash;
use std::sync::Arc;
use std::time::Duration;

use lightning_invoice::Currency;
use plannt_lightning::{
    Cln, Context, InvoiceState, LightningError, Network, Payer, PaymentLookup, Receiver, Secret,
    Wallet, decode_invoice,
};
use plannt_testkit::fakes::cln as fake_cln;
use plannt_testkit::fakes::{self as fake, request, sha};
use serde_json::Value;

use crate::conformance::{Payee, Subject};
use crate::support::{amountless_invoice, open_uri};

struct Setup {
    fake: fake_cln::Cln,
    server: fake::Server,
    network: plannt_lightning::dev::DevNetwork,
}

impl Setup {
    async fn new() -> Setup {
        let network = fake::network();
        let fake = fake_cln::Cln::new(network.clone());
        let server = fake.serve().await;
        Setup {
            fake,
            server,
            network,
        }
    }

    fn rune(&self) -> String {
        self.fake.state().rune.clone()
    }

    fn wallet(&self) -> Cln {
        Cln::new(
            self.server.url.clone(),
            Secret::new(self.rune()),
            Network::Regtest,
        )
    }

    fn calls(&self, method: &str) -> Vec<Value> {
        let state = self.fake.state();
        state
            .calls
            .iter()
            .filter(|(m, _)| m == method)
            .map(|(_, params)| params.clone())
            .collect()
    }
}

/// A `cln+http://` URI of the node at `port`, with a rune.
fn uri(port: u16, rune: &str) -> String {
    format!("cln+http://127.0.0.1:{port}?rune={rune}&network=regtest")
}

/// Core Lightning in the conformance suite: a rune limited to invoices issues, the node's full
/// rune pays into the rest of the network. The fake's listfunds is fixed: its balance does not
/// move.
pub async fn subject() -> Option<Subject> {
    let setup = Setup::new().await;
    let port = setup.server.url.port().unwrap();
    let (rune, invoice_rune) = {
        let state = setup.fake.state();
        (state.rune.clone(), state.invoice_rune.clone())
    };
    let context = Context::new(std::env::temp_dir());
    Some(Subject {
        name: "cln",
        network: Network::Regtest,
        receiver: open_uri(&uri(port, &invoice_rune), &context),
        payer: open_uri(&uri(port, &rune), &context),
        stranger: open_uri(&uri(port, &"SeCrEtRuNe-".repeat(5)), &context),
        payee: Payee::Network(setup.network.clone()),
        amountless: amountless_invoice(Currency::Regtest, None),
        issues_amountless: true,
        pays_amountless: true,
        balance_moves: false,
        settle: Some({
            let fake = setup.fake.clone();
            Box::new(move |issued| fake.settle(&issued.payment_hash))
        }),
        _alive: vec![Box::new(setup)],
    })
}

/// Core Lightning at `127.0.0.1:port` (where nothing answers, or the answer breaks off), and
/// its rune.
pub fn unreachable(port: u16) -> (Arc<dyn Wallet>, String) {
    let rune = "conformance-rune-secret";
    let wallet = open_uri(&uri(port, rune), &Context::new(std::env::temp_dir()));
    (wallet, rune.to_string())
}

#[tokio::test]
async fn issues_invoices_with_unique_labels_and_reads_them_back() {
    let setup = Setup::new().await;
    let cln = setup.wallet();
    let first = cln.create_invoice(&request(21, "a coffee")).await.unwrap();
    let second = cln.create_invoice(&request(21, "a coffee")).await.unwrap();
    let decoded = decode_invoice(&first.bolt11).unwrap();
    assert_eq!(decoded.payment_hash, first.payment_hash);
    assert_eq!(decoded.amount_msat, Some(21_000));
    assert_eq!(decoded.description.as_deref(), Some("a coffee"));
    assert_ne!(first.payment_hash, second.payment_hash);
    let calls = setup.calls("invoice");
    assert_eq!(calls[0]["amount_msat"], 21_000);
    assert_eq!(calls[0]["description"], "a coffee");
    assert_eq!(calls[0]["expiry"], 600);
    let labels: Vec<&str> = calls.iter().map(|c| c["label"].as_str().unwrap()).collect();
    assert_ne!(labels[0], labels[1]);
    for label in labels {
        let suffix = label.strip_prefix("plannt-").unwrap();
        assert!(suffix.len() >= 16 && suffix.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    assert_eq!(
        cln.lookup_invoice(&first.payment_hash).await.unwrap(),
        InvoiceState::Open
    );
    setup.fake.settle(&first.payment_hash);
    let InvoiceState::Settled {
        preimage,
        amount_received_msat,
    } = cln.lookup_invoice(&first.payment_hash).await.unwrap()
    else {
        panic!("settled")
    };
    assert_eq!(sha(preimage.as_bytes()), first.payment_hash);
    assert_eq!(amount_received_msat, 21_000);
    setup.fake.expire(&second.payment_hash);
    assert_eq!(
        cln.lookup_invoice(&second.payment_hash).await.unwrap(),
        InvoiceState::Expired
    );
    assert_eq!(
        cln.lookup_invoice(&PaymentHash([3; 32])).await.unwrap(),
        InvoiceState::NotFound
    );
}

#[tokio::test]
async fn a_rune_limited_to_invoices_serves_a_gateway_and_cannot_pay() {
    let setup = Setup::new().await;
    let rune = setup.fake.state().invoice_rune.clone();
    let cln = Cln::new(
        setup.server.url.clone(),
        Secret::new(&rune),
        Network::Regtest,
    );
    // `getinfo` is refused as "Not permitted" (1502): the rune works, so the node is healthy.
    cln.health().await.unwrap();
    assert_eq!(
        setup.calls("getinfo").len(),
        0,
        "the refused call never ran"
    );
    let invoice = cln.create_invoice(&request(21, "a coffee")).await.unwrap();
    assert_eq!(
        cln.lookup_invoice(&invoice.payment_hash).await.unwrap(),
        InvoiceState::Open
    );
    let bolt11 = fake::payable(&setup.network, 10);
    for error in [
        cln.pay(&bolt11, 5_000).await.unwrap_err(),
        cln.balance().await.unwrap_err(),
    ] {
        assert_eq!(error.code(), "unauthorized", "{error}");
        assert!(error.to_string().contains("Not permitted"), "{error}");
        assert!(!format!("{error} {error:?}").contains(&rune));
    }
    assert_eq!(setup.network.paid_count(), 0);
}

#[tokio::test]
async fn pays_with_xpay_and_checks_the_preimage() {
    let setup = Setup::new().await;
    let cln = setup.wallet();
    let bolt11 = fake::payable(&setup.network, 1_000);
    let hash = decode_invoice(&bolt11).unwrap().payment_hash;
    let payment = cln.pay(&bolt11, 5_000).await.unwrap();
    assert_eq!(sha(payment.preimage.as_bytes()), hash);
    assert_eq!(payment.amount_msat, 1_000_000);
    assert_eq!(payment.fee_msat, 1_500);
    let xpay = setup.calls("xpay");
    assert_eq!(xpay.len(), 1);
    assert_eq!(xpay[0]["invstring"], bolt11.as_str());
    assert_eq!(xpay[0]["maxfee"], 5_000);
    assert!(setup.calls("pay").is_empty());
    assert_eq!(
        cln.lookup_payment(&hash).await.unwrap(),
        PaymentLookup::Succeeded(payment)
    );
    // xpay: 219, already paid. Nothing moves twice.
    assert_eq!(
        cln.pay(&bolt11, 5_000).await.unwrap_err(),
        LightningError::AlreadyPaid
    );
    assert_eq!(setup.fake.state().payments_started, 1);
    assert_eq!(setup.network.paid_count(), 1);
}

#[tokio::test]
async fn falls_back_to_pay_when_the_node_has_no_xpay() {
    let setup = Setup::new().await;
    setup.fake.state().xpay = false;
    let cln = setup.wallet();
    let bolt11 = fake::payable(&setup.network, 300);
    let hash = decode_invoice(&bolt11).unwrap().payment_hash;
    let payment = cln.pay(&bolt11, 4_000).await.unwrap();
    assert_eq!(sha(payment.preimage.as_bytes()), hash);
    assert_eq!(payment.fee_msat, 1_500);
    let pays = setup.calls("pay");
    assert_eq!(pays[0]["bolt11"], bolt11.as_str());
    assert_eq!(pays[0]["maxfee"], 4_000);
    // The second payment goes straight to pay. pay answers a paid invoice's success again
    // (pay.json) without paying it again.
    let again = cln.pay(&bolt11, 4_000).await.unwrap();
    assert_eq!(again.preimage, payment.preimage);
    assert_eq!(setup.calls("xpay").len(), 1);
    assert_eq!(setup.calls("pay").len(), 2);
    assert_eq!(setup.fake.state().payments_started, 1);
    assert_eq!(setup.network.paid_count(), 1);
    // pay's own code for a fee above maxfee is 206.
    let other = fake::payable(&setup.network, 10);
    let error = cln.pay(&other, 1_000).await.unwrap_err();
    assert_eq!(error.code(), "no_route", "{error}");
}

#[tokio::test]
async fn failures_are_typed() {
    let setup = Setup::new().await;
    let cln = setup.wallet();
    let cases = [
        (fake::payable(&setup.network, 10), 1_000, "no_route"),
        (fake::unroutable(10), 10_000, "no_route"),
        (fake::expired(10), 10_000, "invoice_expired"),
        ("lnbcrt1garbage".to_string(), 10_000, "invalid_invoice"),
    ];
    for (bolt11, max_fee, code) in cases {
        let error = cln.pay(&bolt11, max_fee).await.unwrap_err();
        assert_eq!(error.code(), code, "{error}");
        assert!(!error.outcome_unknown(), "{error}");
    }
    assert_eq!(setup.network.paid_count(), 0);
    assert_eq!(
        cln.lookup_payment(&PaymentHash([4; 32])).await.unwrap(),
        PaymentLookup::NotFound
    );
    // A failed attempt is listed as failed.
    let failed_hash = {
        let state = setup.fake.state();
        let (_, params) = state.calls.iter().find(|(m, _)| m == "xpay").unwrap();
        decode_invoice(params["invstring"].as_str().unwrap())
            .unwrap()
            .payment_hash
    };
    assert!(matches!(
        cln.lookup_payment(&failed_hash).await.unwrap(),
        PaymentLookup::Failed(_)
    ));
}

#[tokio::test]
async fn a_missing_or_wrong_rune_is_unauthorized_and_never_shown() {
    let setup = Setup::new().await;
    let secret = "SeCrEtRuNe-".repeat(5);
    let cln = Cln::new(
        setup.server.url.clone(),
        Secret::new(&secret),
        Network::Regtest,
    );
    let bolt11 = fake::payable(&setup.network, 10);
    for error in [
        cln.health().await.unwrap_err(),
        cln.create_invoice(&request(1, "x")).await.unwrap_err(),
        cln.pay(&bolt11, 5_000).await.unwrap_err(),
        cln.balance().await.unwrap_err(),
    ] {
        assert_eq!(error.code(), "unauthorized", "{error}");
        assert!(
            error.to_string().contains("Not derived from master"),
            "{error}"
        );
        assert!(!format!("{error} {error:?}").contains(&secret));
    }
    assert!(!format!("{cln:?}").contains(&secret));
    let none = Cln::new(setup.server.url.clone(), Secret::new(""), Network::Regtest);
    let error = none.health().await.unwrap_err();
    assert_eq!(error.code(), "unauthorized");
    assert!(error.to_string().contains("Missing rune"), "{error}");
    assert_eq!(setup.network.paid_count(), 0);
}

#[tokio::test]
async fn a_stalled_payment_is_looked_up_and_paid_once() {
    let setup = Setup::new().await;
    setup.fake.state().hold = true;
    let cln = setup
        .wallet()
        .with_timeouts(Duration::from_secs(10), Duration::from_secs(1));
    let bolt11 = fake::payable(&setup.network, 70);
    let hash = decode_invoice(&bolt11).unwrap().payment_hash;

    let error = cln.pay(&bolt11, 5_000).await.unwrap_err();
    assert_eq!(error, LightningError::Timeout);
    assert_eq!(
        cln.lookup_payment(&hash).await.unwrap(),
        PaymentLookup::Pending
    );
    let again = cln.pay(&bolt11, 5_000).await.unwrap_err();
    assert!(again.outcome_unknown(), "{again}");
    assert_eq!(setup.fake.state().payments_started, 1);

    setup.fake.release();
    let PaymentLookup::Succeeded(payment) = cln.lookup_payment(&hash).await.unwrap() else {
        panic!("the released payment succeeded")
    };
    assert_eq!(sha(payment.preimage.as_bytes()), hash);
    assert_eq!(payment.amount_msat, 70_000);
    assert_eq!(payment.fee_msat, 1_500);
    assert_eq!(setup.fake.state().payments_started, 1);
    assert_eq!(setup.network.paid_count(), 1);
}

#[tokio::test]
async fn a_malformed_answer_leaves_the_outcome_to_the_node() {
    let setup = Setup::new().await;
    let cln = setup.wallet();
    setup.fake.state().broken.insert("xpay");
    let bolt11 = fake::payable(&setup.network, 40);
    let hash = decode_invoice(&bolt11).unwrap().payment_hash;
    // Paid, then an unreadable answer: listpays finds it complete.
    let payment = cln.pay(&bolt11, 5_000).await.unwrap();
    assert_eq!(sha(payment.preimage.as_bytes()), hash);
    assert_eq!(setup.calls("listpays").len(), 1);
    assert_eq!(setup.network.paid_count(), 1);

    setup.fake.state().broken.insert("listfunds");
    assert_eq!(cln.balance().await.unwrap_err().code(), "backend");
}

#[tokio::test]
async fn the_balance_counts_open_channels_only() {
    let setup = Setup::new().await;
    let balance = setup.wallet().balance().await.unwrap();
    assert_eq!(balance.msat, 700_000_321);
}

#[tokio::test]
async fn health_checks_the_network() {
    let setup = Setup::new().await;
    setup.wallet().health().await.unwrap();
    let mainnet = Cln::new(
        setup.server.url.clone(),
        Secret::new(setup.rune()),
        Network::Bitcoin,
    );
    let error = mainnet.health().await.unwrap_err();
    assert!(error.to_string().contains("regtest"), "{error}");
}

/// A return invoice is `invoice` with `amount_msat: "any"`, and reads as paid what its payer
/// chose; a refund is `xpay` (or `pay`, on a node without it) with `amount_msat` and `maxfee`,
/// and pays the payee exactly that.
#[tokio::test]
async fn an_amountless_invoice_is_issued_for_any_amount_and_paid_with_amount_msat() {
    let setup = Setup::new().await;
    let cln = setup.wallet();
    let issued = cln.create_amountless_invoice("refund", 600).await.unwrap();
    assert_eq!(setup.calls("invoice")[0]["amount_msat"], "any");
    assert_eq!(decode_invoice(&issued.bolt11).unwrap().amount_msat, None);
    setup.fake.settle_with(&issued.payment_hash, 4_321_000);
    match cln.lookup_invoice(&issued.payment_hash).await.unwrap() {
        InvoiceState::Settled {
            amount_received_msat,
            ..
        } => assert_eq!(amount_received_msat, 4_321_000),
        other => panic!("settled, not {other:?}"),
    }

    for xpay in [true, false] {
        setup.fake.state().xpay = xpay;
        let cln = setup.wallet();
        let returned = setup
            .network
            .create_amountless_invoice("client", "refund", 600)
            .unwrap();
        let before = setup.network.balance("client");
        let payment = cln
            .pay_amount(&returned.bolt11, 12_000, 3_000)
            .await
            .unwrap();
        let method = if xpay { "xpay" } else { "pay" };
        let params = setup.calls(method).pop().expect("a payment call");
        assert_eq!(params["amount_msat"], 12_000, "{method}");
        assert_eq!(params["maxfee"], 3_000, "{method}");
        assert_eq!(payment.amount_msat, 12_000, "{method}");
        assert_eq!(setup.network.balance("client") - before, 12_000, "{method}");
    }
}

/// CLN refuses `amount_msat` for an invoice with an amount (`amount_msat unnecessary`), and
/// Plannt never sends it one: it is refused before anything reaches the node.
#[tokio::test]
async fn an_invoice_with_an_amount_is_not_paid_another_amount() {
    let setup = Setup::new().await;
    let invoice = fake::payable(&setup.network, 5);
    let error = setup
        .wallet()
        .pay_amount(&invoice, 12_000, 3_000)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "invalid_invoice", "{error}");
    assert!(setup.calls("xpay").is_empty() && setup.calls("pay").is_empty());
}
