//! The Lnd backend against the test kit's fake LND REST API ([`fake_lnd`]), over plain HTTP and
//! over TLS with a pinned `tls.cert`: its subject for the conformance suite, and what is LND's
//! own (protojson, the macaroons, the fee limit, the payment stream, the pinned certificate).

use plannt_l402::PaymentHash;
use std::sync::Arc;
use std::time::Duration;

use lightning_invoice::Currency;
use plannt_lightning::{
    BackendUri, Context, InvoiceState, LightningError, Lnd, Network, OpenError, Payer,
    PaymentLookup, Receiver, Secret, Wallet, decode_invoice,
};
use plannt_testkit::fakes::lnd as fake_lnd;
use plannt_testkit::fakes::{self as fake, LND_TLS_CERT, OTHER_TLS_CERT, request, sha};
use serde_json::Value;

use crate::conformance::{Payee, Subject};
use crate::support::{amountless_invoice, open_uri, open_wallet};
use fake_lnd::CHANNEL_BALANCE_MSAT;

struct Setup {
    fake: fake_lnd::Lnd,
    server: fake::Server,
    network: plannt_lightning::dev::DevNetwork,
}

impl Setup {
    async fn new() -> Setup {
        let network = fake::network();
        let fake = fake_lnd::Lnd::new(network.clone());
        let server = fake.serve().await;
        Setup {
            fake,
            server,
            network,
        }
    }

    fn macaroon(&self) -> String {
        self.fake.state().admin_macaroon.clone()
    }

    fn wallet(&self) -> Lnd {
        Lnd::new(
            self.server.url.clone(),
            Secret::new(self.macaroon()),
            Network::Regtest,
        )
    }

    fn invoice_wallet(&self) -> Lnd {
        let macaroon = self.fake.state().invoice_macaroon.clone();
        Lnd::new(
            self.server.url.clone(),
            Secret::new(macaroon),
            Network::Regtest,
        )
    }

    fn posted(&self, path: &str) -> Value {
        let state = self.fake.state();
        let (_, body) = state
            .posted
            .iter()
            .rev()
            .find(|(p, _)| *p == path)
            .expect("a request to the path");
        body.clone()
    }
}

/// An `lnd+http://` URI of the node at `port`, with a macaroon.
fn uri(port: u16, macaroon: &str) -> String {
    format!("lnd+http://127.0.0.1:{port}?macaroon={macaroon}&network=regtest")
}

/// LND in the conformance suite: a gateway's invoice macaroon issues, the admin macaroon pays
/// into the rest of the network.
pub async fn subject() -> Option<Subject> {
    let setup = Setup::new().await;
    let port = setup.server.url.port().unwrap();
    let (admin, invoice) = {
        let state = setup.fake.state();
        (state.admin_macaroon.clone(), state.invoice_macaroon.clone())
    };
    let context = Context::new(std::env::temp_dir());
    Some(Subject {
        name: "lnd",
        network: Network::Regtest,
        receiver: open_uri(&uri(port, &invoice), &context),
        payer: open_uri(&uri(port, &admin), &context),
        stranger: open_uri(&uri(port, &"0123456789abcdef".repeat(4)), &context),
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

/// LND at `127.0.0.1:port` (where nothing answers, or the answer breaks off), and its macaroon.
pub fn unreachable(port: u16) -> (Arc<dyn Wallet>, String) {
    let macaroon = "0a1b2c3d".repeat(5);
    let wallet = open_uri(&uri(port, &macaroon), &Context::new(std::env::temp_dir()));
    (wallet, macaroon)
}

#[tokio::test]
async fn issues_invoices_and_reads_them_back() {
    let setup = Setup::new().await;
    let lnd = setup.invoice_wallet();
    let issued = lnd.create_invoice(&request(21, "a coffee")).await.unwrap();
    let decoded = decode_invoice(&issued.bolt11).unwrap();
    assert_eq!(decoded.payment_hash, issued.payment_hash);
    assert_eq!(decoded.amount_msat, Some(21_000));
    assert_eq!(decoded.network, Network::Regtest);
    assert_eq!(decoded.description.as_deref(), Some("a coffee"));
    assert_eq!(issued.expires_at, decoded.created_at + 600);
    // int64 fields go as strings, as protojson writes them.
    let sent = setup.posted("/v1/invoices");
    assert_eq!(sent["value"], "21");
    assert_eq!(sent["expiry"], "600");
    assert_eq!(sent["memo"], "a coffee");

    assert_eq!(
        lnd.lookup_invoice(&issued.payment_hash).await.unwrap(),
        InvoiceState::Open
    );
    setup.fake.settle(&issued.payment_hash);
    let InvoiceState::Settled {
        preimage,
        amount_received_msat,
    } = lnd.lookup_invoice(&issued.payment_hash).await.unwrap()
    else {
        panic!("settled")
    };
    assert_eq!(sha(preimage.as_bytes()), issued.payment_hash);
    assert_eq!(amount_received_msat, 21_000);

    let other = lnd.create_invoice(&request(5, "")).await.unwrap();
    setup.fake.cancel(&other.payment_hash);
    assert_eq!(
        lnd.lookup_invoice(&other.payment_hash).await.unwrap(),
        InvoiceState::Expired
    );
    assert_eq!(
        lnd.lookup_invoice(&PaymentHash([7; 32])).await.unwrap(),
        InvoiceState::NotFound
    );
    // LND would issue an invoice without an amount for 0.
    let zero = lnd.create_invoice(&request(0, "free")).await.unwrap_err();
    assert_eq!(zero.code(), "invalid_invoice");
    assert_eq!(setup.fake.state().posted.len(), 2);
}

#[tokio::test]
async fn the_invoice_macaroon_issues_but_cannot_pay() {
    let setup = Setup::new().await;
    let lnd = setup.invoice_wallet();
    // getinfo needs info:read, which the invoice macaroon lacks: it verified, so it is healthy.
    lnd.health().await.unwrap();
    let bolt11 = fake::payable(&setup.network, 10);
    let error = lnd.pay(&bolt11, 5_000).await.unwrap_err();
    assert_eq!(error.code(), "unauthorized", "{error}");
    assert!(error.to_string().contains("permission denied"), "{error}");
    assert_eq!(setup.fake.state().payments_started, 0);
    assert_eq!(lnd.balance().await.unwrap_err().code(), "unauthorized");
}

#[tokio::test]
async fn pays_with_a_fee_limit_and_checks_the_preimage() {
    let setup = Setup::new().await;
    let lnd = setup.wallet();
    let bolt11 = fake::payable(&setup.network, 1_000);
    let hash = decode_invoice(&bolt11).unwrap().payment_hash;
    let payment = lnd.pay(&bolt11, 5_000).await.unwrap();
    assert_eq!(payment.payment_hash, hash);
    assert_eq!(sha(payment.preimage.as_bytes()), hash);
    assert_eq!(payment.amount_msat, 1_000_000);
    assert_eq!(payment.fee_msat, 1_000);
    let sent = setup.posted("/v2/router/send");
    assert_eq!(sent["fee_limit_msat"], "5000");
    assert_eq!(sent["payment_request"], bolt11.as_str());
    assert!(sent["timeout_seconds"].as_u64().unwrap() > 0);
    assert_eq!(setup.network.paid_count(), 1);

    assert_eq!(
        lnd.lookup_payment(&hash).await.unwrap(),
        PaymentLookup::Succeeded(payment.clone())
    );
    let balance = lnd.balance().await.unwrap();
    assert_eq!(balance.msat, CHANNEL_BALANCE_MSAT - 1_001_000);

    // LND refuses a second payment of the hash; nothing more moves.
    let again = lnd.pay(&bolt11, 5_000).await.unwrap_err();
    assert_eq!(again, LightningError::AlreadyPaid);
    assert_eq!(setup.fake.state().payments_started, 1);
    assert_eq!(setup.network.paid_count(), 1);
}

#[tokio::test]
async fn a_fee_limit_below_the_route_fee_finds_no_route() {
    let setup = Setup::new().await;
    let lnd = setup.wallet();
    let bolt11 = fake::payable(&setup.network, 100);
    let error = lnd.pay(&bolt11, 999).await.unwrap_err();
    assert_eq!(error.code(), "no_route", "{error}");
    assert!(!error.outcome_unknown());
    assert_eq!(setup.network.paid_count(), 0);
    assert_eq!(setup.posted("/v2/router/send")["fee_limit_msat"], "999");
    // A failed payment may be paid again, with a higher limit.
    lnd.pay(&bolt11, 1_000).await.unwrap();
    assert_eq!(setup.network.paid_count(), 1);
}

#[tokio::test]
async fn failures_are_typed() {
    let setup = Setup::new().await;
    let lnd = setup.wallet();
    let cases = [
        (fake::unroutable(10), "no_route"),
        (
            fake::payable(&setup.network, fake::NODE_FUNDS_SATS + 1),
            "insufficient_balance",
        ),
        (fake::expired(10), "invoice_expired"),
        ("lnbcrt1notaninvoice".to_string(), "invalid_invoice"),
    ];
    for (bolt11, code) in cases {
        let error = lnd.pay(&bolt11, 10_000).await.unwrap_err();
        assert_eq!(error.code(), code, "{error}");
        assert!(!error.outcome_unknown(), "{error}");
    }
    assert_eq!(setup.network.paid_count(), 0);
    let lookup = lnd.lookup_payment(&PaymentHash([9; 32])).await.unwrap();
    assert_eq!(lookup, PaymentLookup::NotFound);
}

#[tokio::test]
async fn tracks_a_payment_by_its_base64url_hash() {
    let setup = Setup::new().await;
    let lnd = setup.wallet();
    // In standard base64 this hash is full of '/' and '+', which break a URL path.
    let hash = PaymentHash([0xfb; 32]);
    assert_eq!(
        lnd.lookup_payment(&hash).await.unwrap(),
        PaymentLookup::NotFound
    );
    assert_eq!(setup.fake.state().tracked, vec![hash.0]);
}

#[tokio::test]
async fn a_wrong_or_missing_macaroon_is_unauthorized_and_never_shown() {
    let setup = Setup::new().await;
    let secret = "0123456789abcdef".repeat(4);
    let lnd = Lnd::new(
        setup.server.url.clone(),
        Secret::new(&secret),
        Network::Regtest,
    );
    let bolt11 = fake::payable(&setup.network, 10);
    let errors = [
        lnd.health().await.unwrap_err(),
        lnd.create_invoice(&request(1, "x")).await.unwrap_err(),
        lnd.pay(&bolt11, 1_000).await.unwrap_err(),
        lnd.balance().await.unwrap_err(),
        lnd.lookup_payment(&PaymentHash([1; 32])).await.unwrap_err(),
    ];
    for error in errors {
        assert_eq!(error.code(), "unauthorized", "{error}");
        assert!(error.to_string().contains("signature mismatch"), "{error}");
        for shown in [error.to_string(), format!("{error:?}")] {
            assert!(!shown.contains(&secret), "{shown}");
        }
    }
    assert!(!format!("{lnd:?}").contains(&secret));
    let none = Lnd::new(setup.server.url.clone(), Secret::new(""), Network::Regtest);
    let error = none.health().await.unwrap_err();
    assert_eq!(error.code(), "unauthorized");
    assert!(error.to_string().contains("expected 1 macaroon"), "{error}");
    assert_eq!(setup.network.paid_count(), 0);
}

#[tokio::test]
async fn a_stalled_payment_is_looked_up_and_paid_once() {
    let setup = Setup::new().await;
    setup.fake.state().hold = true;
    let lnd = setup
        .wallet()
        .with_timeouts(Duration::from_secs(10), Duration::from_secs(1));
    let bolt11 = fake::payable(&setup.network, 50);
    let hash = decode_invoice(&bolt11).unwrap().payment_hash;

    // The stream sends IN_FLIGHT (preimage all zeros), then nothing: the call times out, the
    // track lookup says in flight, and the caller is told to look it up.
    let error = lnd.pay(&bolt11, 5_000).await.unwrap_err();
    assert_eq!(error, LightningError::Timeout);
    assert!(error.outcome_unknown());
    assert_eq!(
        lnd.lookup_payment(&hash).await.unwrap(),
        PaymentLookup::Pending
    );
    // Paying again while it is in flight is refused by the node, and is not a failure.
    let again = lnd.pay(&bolt11, 5_000).await.unwrap_err();
    assert!(again.outcome_unknown(), "{again}");
    assert_eq!(setup.fake.state().payments_started, 1);
    assert_eq!(setup.network.paid_count(), 0);

    setup.fake.release();
    let PaymentLookup::Succeeded(payment) = lnd.lookup_payment(&hash).await.unwrap() else {
        panic!("the released payment succeeded")
    };
    assert_eq!(sha(payment.preimage.as_bytes()), hash);
    assert_eq!(payment.amount_msat, 50_000);
    assert_eq!(
        lnd.pay(&bolt11, 5_000).await.unwrap_err(),
        LightningError::AlreadyPaid
    );
    assert_eq!(setup.fake.state().payments_started, 1);
    assert_eq!(setup.network.paid_count(), 1);
}

#[tokio::test]
async fn a_malformed_answer_leaves_the_outcome_to_the_node() {
    let setup = Setup::new().await;
    let lnd = setup.wallet();
    // The payment is made, and its answer is not JSON: the track lookup finds it succeeded.
    setup.fake.state().broken.insert("/v2/router/send");
    let bolt11 = fake::payable(&setup.network, 30);
    let hash = decode_invoice(&bolt11).unwrap().payment_hash;
    let payment = lnd.pay(&bolt11, 5_000).await.unwrap();
    assert_eq!(sha(payment.preimage.as_bytes()), hash);
    assert_eq!(setup.fake.state().payments_started, 1);
    assert_eq!(setup.network.paid_count(), 1);

    setup.fake.state().broken.insert("/v1/balance/channels");
    setup.fake.state().broken.insert("/v1/getinfo");
    assert_eq!(lnd.balance().await.unwrap_err().code(), "backend");
    assert_eq!(lnd.health().await.unwrap_err().code(), "backend");
}

#[tokio::test]
async fn health_checks_the_network() {
    let setup = Setup::new().await;
    setup.wallet().health().await.unwrap();
    let mainnet = Lnd::new(
        setup.server.url.clone(),
        Secret::new(setup.macaroon()),
        Network::Bitcoin,
    );
    let error = mainnet.health().await.unwrap_err();
    assert!(error.to_string().contains("regtest"), "{error}");
}

#[tokio::test]
async fn pins_the_nodes_tls_cert_whatever_the_host() {
    let network = fake::network();
    let fake = fake_lnd::Lnd::new(network.clone());
    let server = fake.serve_tls().await;
    let macaroon = fake.state().admin_macaroon.clone();
    let port = server.url.port().unwrap();
    for host in ["127.0.0.1", "localhost"] {
        let url = url::Url::parse(&format!("https://{host}:{port}")).unwrap();
        let lnd = Lnd::new(url, Secret::new(&macaroon), Network::Regtest)
            .pin_tls_cert(LND_TLS_CERT.as_bytes())
            .unwrap();
        lnd.health().await.unwrap();
        let payment = lnd.pay(&fake::payable(&network, 3), 2_000).await.unwrap();
        assert_eq!(payment.amount_msat, 3_000);
    }
    // Another certificate, or none (the system's roots), is a TLS failure: nothing is sent.
    let pinned_other = Lnd::new(server.url.clone(), Secret::new(&macaroon), Network::Regtest)
        .pin_tls_cert(OTHER_TLS_CERT.as_bytes())
        .unwrap();
    let unpinned = Lnd::new(server.url.clone(), Secret::new(&macaroon), Network::Regtest);
    let bolt11 = fake::payable(&network, 4);
    for lnd in [pinned_other, unpinned] {
        assert_eq!(lnd.health().await.unwrap_err().code(), "unreachable");
        assert_eq!(
            lnd.pay(&bolt11, 2_000).await.unwrap_err().code(),
            "unreachable"
        );
    }
    assert_eq!(fake.state().payments_started, 2);
    assert!(
        Lnd::new(server.url.clone(), Secret::new(&macaroon), Network::Regtest)
            .pin_tls_cert(b"not a certificate")
            .is_err()
    );
}

/// Why the certificate is pinned rather than trusted as a root: LND's is a CA certificate, and
/// rustls (webpki) refuses a CA certificate as the server's own.
#[tokio::test]
async fn rustls_refuses_lnds_cert_as_a_root() {
    let fake = fake_lnd::Lnd::new(fake::network());
    let server = fake.serve_tls().await;
    plannt_lightning::install_tls_provider();
    let root = reqwest::Certificate::from_pem(LND_TLS_CERT.as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([root])
        .build()
        .unwrap();
    let error = client
        .get(format!("{}v1/getinfo", server.url))
        .send()
        .await
        .unwrap_err();
    let mut chain = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(&error);
    while let Some(e) = source {
        chain += &format!("{e} / ");
        source = e.source();
    }
    assert!(chain.contains("CaUsedAsEndEntity"), "{chain}");
}

#[tokio::test]
async fn opens_from_a_uri_with_a_macaroon_file_and_a_cert_file() {
    let network = fake::network();
    let fake = fake_lnd::Lnd::new(network.clone());
    let server = fake.serve_tls().await;
    let dir = tempfile::tempdir().unwrap();
    // LND writes the macaroon binary; the header carries its hex.
    let binary = fake::random32();
    fake.state().admin_macaroon = hex::encode(binary);
    let macaroon_path = dir.path().join("admin.macaroon");
    std::fs::write(&macaroon_path, binary).unwrap();
    let cert_path = dir.path().join("tls.cert");
    std::fs::write(&cert_path, LND_TLS_CERT).unwrap();
    let text = format!(
        "lnd+https://127.0.0.1:{}?macaroon={}&cert={}&network=regtest",
        server.url.port().unwrap(),
        macaroon_path.display(),
        cert_path.display()
    );
    let uri: BackendUri = text.parse().unwrap();
    let context = Context::new(dir.path().to_path_buf());
    let wallet = open_wallet(&uri, &context).unwrap();
    assert_eq!(wallet.name(), "lnd");
    assert_eq!(wallet.network(), Network::Regtest);
    wallet.health().await.unwrap();
    let payment = wallet
        .pay(&fake::payable(&network, 8), 2_000)
        .await
        .unwrap();
    assert_eq!(payment.amount_msat, 8_000);

    // A pinned certificate over plain HTTP protects nothing: refused.
    let plain: BackendUri = format!(
        "lnd+http://127.0.0.1:1?macaroon={}&cert={}",
        macaroon_path.display(),
        cert_path.display()
    )
    .parse()
    .unwrap();
    assert!(matches!(
        open_wallet(&plain, &context),
        Err(OpenError::Io(_))
    ));
    let missing: BackendUri = format!(
        "lnd+https://127.0.0.1:1?macaroon={}",
        dir.path().join("nope.macaroon").display()
    )
    .parse()
    .unwrap();
    assert!(matches!(
        open_wallet(&missing, &context),
        Err(OpenError::Io(_))
    ));
}

/// A return invoice is `AddInvoice` with neither `value` nor `value_msat`, and reads as paid
/// what its payer chose; a refund is `SendPaymentV2` with `amt_msat` and the fee limit, and pays
/// the payee exactly that.
#[tokio::test]
async fn an_amountless_invoice_is_issued_without_a_value_and_paid_with_amt_msat() {
    let setup = Setup::new().await;
    let lnd = setup.invoice_wallet();
    let issued = lnd.create_amountless_invoice("refund", 600).await.unwrap();
    let body = setup.posted("/v1/invoices");
    assert!(body.get("value").is_none() && body.get("value_msat").is_none());
    assert_eq!(body["expiry"], "600");
    assert_eq!(decode_invoice(&issued.bolt11).unwrap().amount_msat, None);
    setup.fake.settle_with(&issued.payment_hash, 4_321_000);
    match lnd.lookup_invoice(&issued.payment_hash).await.unwrap() {
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
    let before = setup.network.balance("client");
    let payment = setup
        .wallet()
        .pay_amount(&returned.bolt11, 12_000, 3_000)
        .await
        .unwrap();
    let body = setup.posted("/v2/router/send");
    assert_eq!(body["amt_msat"], "12000");
    assert_eq!(body["fee_limit_msat"], "3000");
    assert_eq!(payment.amount_msat, 12_000);
    assert_eq!(setup.network.balance("client") - before, 12_000);
}

/// LND refuses `amt_msat` for an invoice with an amount, and Plannt never sends it one: it is
/// refused before anything reaches the node.
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
