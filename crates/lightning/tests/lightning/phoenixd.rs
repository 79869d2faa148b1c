//! The Phoenixd backend against the test kit's fake phoenixd HTTP API ([`fake_phoenixd`]): its
//! subject for the conformance suite, and what is phoenixd's own (forms, the two passwords,
//! failures answered 200, a fee it takes no limit for).

use plannt_l402::PaymentHash;
use std::sync::Arc;
use std::time::Duration;

use lightning_invoice::Currency;
use plannt_lightning::{
    Context, InvoiceState, LightningError, Network, Payer, PaymentLookup, Phoenixd, Receiver,
    Secret, Wallet, decode_invoice,
};
use plannt_testkit::fakes::phoenixd as fake_phoenixd;
use plannt_testkit::fakes::{self as fake, request, sha};

use crate::conformance::{Payee, Subject};
use crate::support::{amountless_invoice, open_uri};
use fake_phoenixd::BALANCE_SAT;

struct Setup {
    fake: fake_phoenixd::Phoenixd,
    server: fake::Server,
    network: plannt_lightning::dev::DevNetwork,
}

impl Setup {
    async fn new() -> Setup {
        let network = fake::network();
        let fake = fake_phoenixd::Phoenixd::new(network.clone());
        let server = fake.serve().await;
        Setup {
            fake,
            server,
            network,
        }
    }

    fn password(&self) -> String {
        self.fake.state().full_password.clone()
    }

    fn wallet(&self) -> Phoenixd {
        Phoenixd::new(
            self.server.url.clone(),
            Secret::new(self.password()),
            Network::Regtest,
        )
    }

    fn limited(&self) -> Phoenixd {
        let password = self.fake.state().limited_password.clone();
        Phoenixd::new(
            self.server.url.clone(),
            Secret::new(password),
            Network::Regtest,
        )
    }

    fn posted(&self, path: &str) -> std::collections::HashMap<String, String> {
        let state = self.fake.state();
        state
            .posted
            .iter()
            .rev()
            .find(|(p, _)| *p == path)
            .map(|(_, form)| form.clone())
            .expect("a post to the path")
    }
}

/// A `phoenixd+http://` URI of the node at `port`, with a password.
fn uri(port: u16, password: &str) -> String {
    format!("phoenixd+http://127.0.0.1:{port}?password={password}&network=regtest")
}

/// phoenixd in the conformance suite: the limited password issues, the full one pays into the
/// rest of the network.
pub async fn subject() -> Option<Subject> {
    let setup = Setup::new().await;
    let port = setup.server.url.port().unwrap();
    let (full, limited) = {
        let state = setup.fake.state();
        (state.full_password.clone(), state.limited_password.clone())
    };
    let context = Context::new(std::env::temp_dir());
    Some(Subject {
        name: "phoenixd",
        network: Network::Regtest,
        receiver: open_uri(&uri(port, &limited), &context),
        payer: open_uri(&uri(port, &full), &context),
        stranger: open_uri(&uri(port, "hunter2-but-longer"), &context),
        payee: Payee::Network(setup.network.clone()),
        amountless: amountless_invoice(Currency::Regtest, None),
        issues_amountless: true,
        pays_amountless: true,
        balance_moves: true,
        settle: Some({
            let fake = setup.fake.clone();
            Box::new(move |issued| fake.settle(&issued.payment_hash))
        }),
        _alive: vec![Box::new(setup)],
    })
}

/// phoenixd at `127.0.0.1:port` (where nothing answers, or the answer breaks off), and its
/// password.
pub fn unreachable(port: u16) -> (Arc<dyn Wallet>, String) {
    let password = "conformance-password-secret";
    let wallet = open_uri(&uri(port, password), &Context::new(std::env::temp_dir()));
    (wallet, password.to_string())
}

#[tokio::test]
async fn issues_invoices_with_a_form_and_reads_them_back() {
    let setup = Setup::new().await;
    // The limited password may issue and read invoices.
    let phoenixd = setup.limited();
    let issued = phoenixd
        .create_invoice(&request(21, "a coffee"))
        .await
        .unwrap();
    let decoded = decode_invoice(&issued.bolt11).unwrap();
    assert_eq!(decoded.payment_hash, issued.payment_hash);
    assert_eq!(decoded.amount_msat, Some(21_000));
    assert_eq!(decoded.description.as_deref(), Some("a coffee"));
    let form = setup.posted("/createinvoice");
    assert_eq!(form["amountSat"], "21");
    assert_eq!(form["description"], "a coffee");
    assert_eq!(form["expirySeconds"], "600");

    assert_eq!(
        phoenixd.lookup_invoice(&issued.payment_hash).await.unwrap(),
        InvoiceState::Open
    );
    setup.fake.settle(&issued.payment_hash);
    let InvoiceState::Settled {
        preimage,
        amount_received_msat,
    } = phoenixd.lookup_invoice(&issued.payment_hash).await.unwrap()
    else {
        panic!("settled")
    };
    assert_eq!(sha(preimage.as_bytes()), issued.payment_hash);
    assert_eq!(amount_received_msat, 21_000);
    assert_eq!(
        phoenixd
            .lookup_invoice(&PaymentHash([5; 32]))
            .await
            .unwrap(),
        InvoiceState::NotFound
    );
    // phoenixd takes at most 128 characters of description: refused before asking.
    let long = phoenixd
        .create_invoice(&request(1, &"é".repeat(129)))
        .await
        .unwrap_err();
    assert_eq!(long.code(), "invalid_invoice");
    assert_eq!(setup.fake.state().posted.len(), 1);
    let fits = phoenixd.create_invoice(&request(1, &"é".repeat(128))).await;
    assert!(fits.is_ok(), "{fits:?}");
}

#[tokio::test]
async fn pays_and_decides_on_the_preimage() {
    let setup = Setup::new().await;
    let phoenixd = setup.wallet();
    let bolt11 = fake::payable(&setup.network, 1_000);
    let hash = decode_invoice(&bolt11).unwrap().payment_hash;
    let payment = phoenixd.pay(&bolt11, 10_000).await.unwrap();
    assert_eq!(sha(payment.preimage.as_bytes()), hash);
    assert_eq!(payment.amount_msat, 1_000_000);
    assert_eq!(payment.fee_msat, 4_000);
    assert_eq!(setup.posted("/payinvoice")["invoice"], bolt11);
    assert!(!setup.fake.state().users.is_empty());
    assert_eq!(
        phoenixd.lookup_payment(&hash).await.unwrap(),
        PaymentLookup::Succeeded(payment)
    );
    assert_eq!(
        phoenixd.balance().await.unwrap().msat,
        (BALANCE_SAT - 1_004) * 1000
    );
    // A second payment is answered 200 with a reason, and nothing moves.
    assert_eq!(
        phoenixd.pay(&bolt11, 10_000).await.unwrap_err(),
        LightningError::AlreadyPaid
    );
    assert_eq!(setup.fake.state().payments_started, 1);
    assert_eq!(setup.network.paid_count(), 1);
}

#[tokio::test]
async fn failures_answered_200_are_typed() {
    let setup = Setup::new().await;
    let phoenixd = setup.wallet();
    let cases = [
        (fake::unroutable(10), "no_route"),
        (
            fake::payable(&setup.network, fake::NODE_FUNDS_SATS + 1),
            "insufficient_balance",
        ),
        (fake::expired(10), "invoice_expired"),
    ];
    for (bolt11, code) in cases {
        let error = phoenixd.pay(&bolt11, 10_000).await.unwrap_err();
        assert_eq!(error.code(), code, "{error}");
        assert!(!error.outcome_unknown(), "{error}");
    }
    assert_eq!(setup.network.paid_count(), 0);
    let never_sent = decode_invoice(&fake::unroutable(1)).unwrap().payment_hash;
    assert_eq!(
        phoenixd.lookup_payment(&never_sent).await.unwrap(),
        PaymentLookup::NotFound
    );
    let first_failed = {
        let state = setup.fake.state();
        let (_, form) = state
            .posted
            .iter()
            .find(|(p, _)| *p == "/payinvoice")
            .unwrap();
        decode_invoice(&form["invoice"]).unwrap().payment_hash
    };
    assert!(matches!(
        phoenixd.lookup_payment(&first_failed).await.unwrap(),
        PaymentLookup::Failed(_)
    ));
}

#[tokio::test]
async fn a_wrong_password_is_unauthorized_and_the_limited_one_cannot_pay() {
    let setup = Setup::new().await;
    let secret = "hunter2-but-longer".to_string();
    let phoenixd = Phoenixd::new(
        setup.server.url.clone(),
        Secret::new(&secret),
        Network::Regtest,
    );
    let bolt11 = fake::payable(&setup.network, 10);
    for error in [
        phoenixd.health().await.unwrap_err(),
        phoenixd.create_invoice(&request(1, "x")).await.unwrap_err(),
        phoenixd.pay(&bolt11, 5_000).await.unwrap_err(),
        phoenixd.balance().await.unwrap_err(),
    ] {
        assert_eq!(error.code(), "unauthorized", "{error}");
        assert!(
            error.to_string().contains("Invalid authentication"),
            "{error}"
        );
        assert!(!format!("{error} {error:?}").contains(&secret));
    }
    assert!(!format!("{phoenixd:?}").contains(&secret));
    let limited = setup.limited();
    limited.health().await.unwrap();
    assert_eq!(
        limited.pay(&bolt11, 5_000).await.unwrap_err().code(),
        "unauthorized"
    );
    assert_eq!(setup.fake.state().payments_started, 0);
}

#[tokio::test]
async fn a_stalled_payment_is_looked_up_and_paid_once() {
    let setup = Setup::new().await;
    setup.fake.state().hold = true;
    let phoenixd = setup
        .wallet()
        .with_timeouts(Duration::from_secs(10), Duration::from_secs(1));
    let bolt11 = fake::payable(&setup.network, 60);
    let hash = decode_invoice(&bolt11).unwrap().payment_hash;

    let error = phoenixd.pay(&bolt11, 10_000).await.unwrap_err();
    assert_eq!(error, LightningError::Timeout);
    assert_eq!(
        phoenixd.lookup_payment(&hash).await.unwrap(),
        PaymentLookup::Pending
    );
    // "another payment is in progress for that invoice": not a failure, look it up.
    let again = phoenixd.pay(&bolt11, 10_000).await.unwrap_err();
    assert!(again.outcome_unknown(), "{again}");
    assert_eq!(setup.fake.state().payments_started, 1);

    setup.fake.release();
    let PaymentLookup::Succeeded(payment) = phoenixd.lookup_payment(&hash).await.unwrap() else {
        panic!("the released payment succeeded")
    };
    assert_eq!(sha(payment.preimage.as_bytes()), hash);
    assert_eq!(payment.amount_msat, 60_000);
    assert_eq!(payment.fee_msat, 4_000);
    assert_eq!(setup.fake.state().payments_started, 1);
    assert_eq!(setup.network.paid_count(), 1);
}

#[tokio::test]
async fn a_malformed_answer_leaves_the_outcome_to_the_node() {
    let setup = Setup::new().await;
    let phoenixd = setup.wallet();
    setup.fake.state().broken.insert("/payinvoice");
    let bolt11 = fake::payable(&setup.network, 40);
    let hash = decode_invoice(&bolt11).unwrap().payment_hash;
    let payment = phoenixd.pay(&bolt11, 10_000).await.unwrap();
    assert_eq!(sha(payment.preimage.as_bytes()), hash);
    assert_eq!(setup.network.paid_count(), 1);

    setup.fake.state().broken.insert("/getbalance");
    assert_eq!(phoenixd.balance().await.unwrap_err().code(), "backend");
}

#[tokio::test]
async fn health_checks_the_network() {
    let setup = Setup::new().await;
    setup.wallet().health().await.unwrap();
    let mainnet = Phoenixd::new(
        setup.server.url.clone(),
        Secret::new(setup.password()),
        Network::Bitcoin,
    );
    let error = mainnet.health().await.unwrap_err();
    assert!(error.to_string().contains("regtest"), "{error}");
}

/// A return invoice is `/createinvoice` without `amountSat`, and reads as paid what its payer
/// chose; a refund is `/payinvoice` with `amountSat` (whole satoshis), and pays the payee
/// exactly that. An amount that is not whole satoshis is refused, not rounded.
#[tokio::test]
async fn an_amountless_invoice_is_issued_without_amount_sat_and_paid_with_one() {
    let setup = Setup::new().await;
    let phoenixd = setup.wallet();
    let issued = phoenixd
        .create_amountless_invoice("refund", 600)
        .await
        .unwrap();
    let form = setup.posted("/createinvoice");
    assert!(!form.contains_key("amountSat"));
    assert_eq!(form["expirySeconds"], "600");
    assert_eq!(decode_invoice(&issued.bolt11).unwrap().amount_msat, None);
    setup.fake.settle_with(&issued.payment_hash, 4_321);
    match phoenixd.lookup_invoice(&issued.payment_hash).await.unwrap() {
        InvoiceState::Settled {
            amount_received_msat,
            ..
        } => assert_eq!(amount_received_msat, 4_321_000),
        other => panic!("settled, not {other:?}"),
    }

    let returned = setup
        .network
        .create_amountless_invoice("client", "refund", 600)
        .unwrap();
    let error = phoenixd
        .pay_amount(&returned.bolt11, 12_500, 3_000)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "invalid_invoice", "{error}");
    assert_eq!(setup.fake.state().payments_started, 0);
    let before = setup.network.balance("client");
    let payment = phoenixd
        .pay_amount(&returned.bolt11, 12_000, 3_000)
        .await
        .unwrap();
    assert_eq!(setup.posted("/payinvoice")["amountSat"], "12");
    assert_eq!(payment.amount_msat, 12_000);
    assert_eq!(setup.network.balance("client") - before, 12_000);
}

/// phoenixd would pay `amountSat` over an invoice's own amount: Plannt refuses such an
/// invoice before anything reaches the node.
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
    assert_eq!(setup.fake.state().payments_started, 0);
    assert!(setup.fake.state().posted.is_empty());
}
