//! The NWC (NIP-47) backend against a real Nostr relay and a NIP-47 wallet service
//! ([`service`]): its subject for the conformance suite, and what is NWC's own (the encryption
//! the wallet's info event asks for, the wallet's error codes, replies that never come or come
//! from someone else, relays that send no `OK`, concurrent requests).

mod service;

use plannt_l402::PaymentHash;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lightning_invoice::Currency;
use nostr_sdk::nips::nip44;
use nostr_sdk::{Client, EventBuilder, Filter, Keys, Kind, RelayPoolNotification, Tag};
use plannt_lightning::dev::DevNetwork;
use plannt_lightning::{
    BackendUri, Context, InvoiceRequest, InvoiceState, LightningError, Network, Nwc, NwcEncryption,
    Payer, PaymentLookup, Receiver, Wallet, decode_invoice,
};
use serde_json::json;
use url::Url;

use crate::conformance::{Payee, Subject};
use crate::support::{amountless_invoice, open_uri, open_wallet, sha256};
use service::{ACCOUNT, Mode, PAYER, STARTING_SATS, WalletService, ok_dropping_proxy, relay};

const LONG: Duration = Duration::from_secs(10);

/// NWC in the conformance suite: one connection issues and pays, into the rest of the network.
pub async fn subject() -> Option<Subject> {
    let (relay, url) = relay().await;
    let network = DevNetwork::ephemeral(STARTING_SATS);
    let wallet = WalletService::start(&url, &network, Some("nip44_v2 nip04")).await;
    let context = Context::new(std::env::temp_dir());
    let client = wallet.uri(&url, &wallet.client.secret_key().to_secret_hex());
    let stranger = wallet.uri(&url, &Keys::generate().secret_key().to_secret_hex());
    Some(Subject {
        name: "nwc",
        network: Network::Regtest,
        receiver: open_uri(&client, &context),
        payer: open_uri(&client, &context),
        stranger: open_uri(&stranger, &context),
        payee: Payee::Network(network.clone()),
        amountless: amountless_invoice(Currency::Regtest, None),
        issues_amountless: false,
        pays_amountless: true,
        balance_moves: true,
        settle: Some(Box::new(move |issued| {
            network
                .pay(PAYER, &issued.bolt11)
                .expect("the network pays the wallet's invoice");
        })),
        _alive: vec![Box::new(relay), Box::new(wallet)],
    })
}

/// NWC through a relay at `127.0.0.1:port` (where nothing answers), and its secret.
pub fn unreachable(port: u16) -> (Arc<dyn Wallet>, String) {
    let secret = Keys::generate().secret_key().to_secret_hex();
    let uri = format!(
        "nostr+walletconnect://{}?relay=ws%3A%2F%2F127.0.0.1%3A{port}&secret={secret}&network=regtest",
        Keys::generate().public_key().to_hex(),
    );
    (open_uri(&uri, &Context::new(std::env::temp_dir())), secret)
}

#[tokio::test]
async fn nip44_when_offered_pays_and_reads_the_balance_through_open() {
    let (_relay, url) = relay().await;
    let network = DevNetwork::ephemeral(STARTING_SATS);
    let wallet = WalletService::start(&url, &network, Some("nip44_v2 nip04")).await;

    let uri: BackendUri = wallet
        .uri(&url, &wallet.client.secret_key().to_secret_hex())
        .parse()
        .unwrap();
    let context = Context::new(tempfile::tempdir().unwrap().path().to_path_buf());
    let opened = open_wallet(&uri, &context).expect("open() takes an NWC URI");
    assert_eq!(opened.name(), "nwc");
    assert_eq!(Payer::network(&*opened), Network::Regtest);

    let before = opened.balance().await.unwrap();
    assert_eq!(before.msat, STARTING_SATS * 1000);

    let bolt11 = wallet.invoice(2_100);
    let payment = opened.pay(&bolt11, 0).await.unwrap();
    let decoded = decode_invoice(&bolt11).unwrap();
    assert_eq!(payment.payment_hash, decoded.payment_hash);
    assert_eq!(sha256(payment.preimage.as_bytes()), decoded.payment_hash);
    assert_eq!(payment.amount_msat, 2_100_000);
    assert_eq!(network.balance(ACCOUNT), (STARTING_SATS - 2_100) * 1000);
    assert_eq!(
        opened.balance().await.unwrap().msat,
        network.balance(ACCOUNT)
    );

    match opened.lookup_payment(&decoded.payment_hash).await.unwrap() {
        PaymentLookup::Succeeded(found) => assert_eq!(found.preimage, payment.preimage),
        other => panic!("expected the payment, got {other:?}"),
    }
    assert_eq!(
        opened.lookup_payment(&PaymentHash([7; 32])).await.unwrap(),
        PaymentLookup::NotFound
    );
    opened.health().await.unwrap();

    let encryptions = wallet.encryptions();
    assert!(encryptions.len() >= 5, "{encryptions:?}");
    assert!(
        encryptions.iter().all(|e| *e == NwcEncryption::Nip44V2),
        "{encryptions:?}"
    );
}

#[tokio::test]
async fn nip04_when_the_info_event_names_no_encryption() {
    let (_relay, url) = relay().await;
    let network = DevNetwork::ephemeral(STARTING_SATS);
    let wallet = WalletService::start(&url, &network, None).await;
    let nwc = wallet.nwc(&url, LONG);
    assert_eq!(nwc.encryption().await.unwrap(), NwcEncryption::Nip04);

    let bolt11 = wallet.invoice(500);
    let payment = nwc.pay(&bolt11, 0).await.unwrap();
    assert_eq!(
        sha256(payment.preimage.as_bytes()),
        decode_invoice(&bolt11).unwrap().payment_hash
    );
    assert_eq!(
        nwc.balance().await.unwrap().msat,
        (STARTING_SATS - 500) * 1000
    );
    assert_eq!(
        wallet.encryptions(),
        vec![NwcEncryption::Nip04, NwcEncryption::Nip04]
    );
}

#[tokio::test]
async fn nip04_when_the_wallet_offers_only_nip04() {
    let (_relay, url) = relay().await;
    let network = DevNetwork::ephemeral(STARTING_SATS);
    let wallet = WalletService::start(&url, &network, Some("nip04")).await;
    let nwc = wallet.nwc(&url, LONG);
    assert_eq!(nwc.balance().await.unwrap().msat, STARTING_SATS * 1000);
    assert_eq!(wallet.encryptions(), vec![NwcEncryption::Nip04]);
    assert_eq!(nwc.encryption().await.unwrap(), NwcEncryption::Nip04);
}

#[tokio::test]
async fn lookups_follow_the_methods_the_info_event_lists() {
    let (_relay, url) = relay().await;
    let network = DevNetwork::ephemeral(STARTING_SATS);

    let full = WalletService::start(&url, &network, Some("nip44_v2")).await;
    let nwc = full.nwc(&url, LONG);
    nwc.health().await.unwrap();
    assert!(nwc.can_lookup_invoices(), "lookup_invoice is listed");

    let pay_only = WalletService::offering(
        &url,
        &network,
        Some("nip44_v2"),
        "pay_invoice get_balance make_invoice get_info",
    )
    .await;
    let nwc = pay_only.nwc(&url, LONG);
    nwc.health().await.unwrap();
    assert!(
        !nwc.can_lookup_invoices(),
        "a wallet that does not list lookup_invoice leaves x402 off"
    );
}

#[tokio::test]
async fn makes_and_looks_up_invoices() {
    let (_relay, url) = relay().await;
    let network = DevNetwork::ephemeral(STARTING_SATS);
    let wallet = WalletService::start(&url, &network, Some("nip44_v2")).await;
    let nwc = wallet.nwc(&url, LONG);
    nwc.health().await.unwrap();

    let issued = nwc
        .create_invoice(&InvoiceRequest {
            amount_sats: 1_234,
            memo: "a paid request".into(),
            expiry_secs: 300,
        })
        .await
        .unwrap();
    let decoded = decode_invoice(&issued.bolt11).unwrap();
    assert_eq!(decoded.payment_hash, issued.payment_hash);
    assert_eq!(decoded.amount_msat, Some(1_234_000));
    assert_eq!(decoded.network, Network::Regtest);
    assert_eq!(decoded.description.as_deref(), Some("a paid request"));
    assert_eq!(decoded.expiry_secs, 300);

    assert_eq!(
        nwc.lookup_invoice(&issued.payment_hash).await.unwrap(),
        InvoiceState::Open
    );
    let paid = network.pay(PAYER, &issued.bolt11).unwrap();
    match nwc.lookup_invoice(&issued.payment_hash).await.unwrap() {
        InvoiceState::Settled {
            preimage,
            amount_received_msat,
        } => {
            assert_eq!(preimage, paid.preimage);
            assert_eq!(amount_received_msat, 1_234_000);
        }
        other => panic!("expected a settled invoice, got {other:?}"),
    }
    assert_eq!(
        nwc.lookup_invoice(&PaymentHash([9; 32])).await.unwrap(),
        InvoiceState::NotFound
    );
    assert_eq!(wallet.count("make_invoice"), 1);
    assert_eq!(wallet.count("lookup_invoice"), 3);

    // A URI that names another network refuses the wallet's regtest invoices.
    let secret = wallet.client.secret_key().to_secret_hex();
    let mainnet = Nwc::new(
        &wallet.keys.public_key().to_hex(),
        vec![url.clone()],
        &plannt_lightning::Secret::new(secret),
        Network::Bitcoin,
    )
    .unwrap()
    .with_timeouts(LONG, LONG);
    let error = mainnet
        .create_invoice(&InvoiceRequest {
            amount_sats: 1,
            memo: String::new(),
            expiry_secs: 60,
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), "backend", "{error}");
    assert!(mainnet.health().await.is_err());
}

#[tokio::test]
async fn maps_the_wallets_error_codes() {
    let (_relay, url) = relay().await;
    let network = DevNetwork::ephemeral(STARTING_SATS);
    let wallet = WalletService::start(&url, &network, Some("nip44_v2 nip04")).await;
    let nwc = wallet.nwc(&url, LONG);

    // Real failures of the dev network, through the wallet.
    let too_big = wallet.invoice(STARTING_SATS + 1);
    let error = nwc.pay(&too_big, 0).await.unwrap_err();
    assert_eq!(error.code(), "insufficient_balance", "{error}");
    let paid = wallet.invoice(10);
    nwc.pay(&paid, 0).await.unwrap();
    let error = nwc.pay(&paid, 0).await.unwrap_err();
    assert_eq!(error.code(), "already_paid", "{error}");

    // Every code a wallet may answer to a payment.
    let cases = [
        ("INSUFFICIENT_BALANCE", "insufficient_balance", false),
        ("QUOTA_EXCEEDED", "insufficient_balance", false),
        ("PAYMENT_FAILED", "payment_failed", false),
        ("UNAUTHORIZED", "unauthorized", false),
        ("RESTRICTED", "unauthorized", false),
        ("RATE_LIMITED", "payment_failed", false),
        ("NOT_IMPLEMENTED", "payment_failed", false),
        ("UNSUPPORTED_ENCRYPTION", "payment_failed", false),
        ("INTERNAL", "backend", true),
        ("OTHER", "backend", true),
    ];
    for (code, expected, looked_up) in cases {
        wallet.set_mode(Mode::Fail(code));
        let pays = wallet.count("pay_invoice");
        let lookups = wallet.count("lookup_invoice");
        let error = nwc.pay(&wallet.invoice(10), 0).await.unwrap_err();
        assert_eq!(error.code(), expected, "{code}: {error}");
        assert_eq!(error.outcome_unknown(), looked_up, "{code}: {error}");
        assert_eq!(wallet.count("pay_invoice"), pays + 1, "{code}: paid once");
        let expected_lookups = lookups + usize::from(looked_up);
        assert_eq!(wallet.count("lookup_invoice"), expected_lookups, "{code}");
    }

    // The other methods.
    wallet.set_mode(Mode::Fail("UNAUTHORIZED"));
    assert_eq!(nwc.balance().await.unwrap_err().code(), "unauthorized");
    assert_eq!(nwc.health().await.unwrap_err().code(), "unauthorized");
    wallet.set_mode(Mode::Fail("RATE_LIMITED"));
    assert_eq!(nwc.balance().await.unwrap_err().code(), "unreachable");
    wallet.set_mode(Mode::Fail("NOT_IMPLEMENTED"));
    assert_eq!(nwc.balance().await.unwrap_err().code(), "backend");
    nwc.health()
        .await
        .expect("a wallet that answers NOT_IMPLEMENTED is up");
    wallet.set_mode(Mode::Fail("NOT_FOUND"));
    assert_eq!(
        nwc.lookup_payment(&PaymentHash([1; 32])).await.unwrap(),
        PaymentLookup::NotFound
    );
    assert_eq!(
        nwc.lookup_invoice(&PaymentHash([1; 32])).await.unwrap(),
        InvoiceState::NotFound
    );
    wallet.set_mode(Mode::Fail("QUOTA_EXCEEDED"));
    let error = nwc
        .create_invoice(&InvoiceRequest {
            amount_sats: 1,
            memo: String::new(),
            expiry_secs: 60,
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), "insufficient_balance");
}

#[tokio::test]
async fn a_wallet_that_never_answers_is_looked_up_once_and_never_paid_twice() {
    let (_relay, url) = relay().await;
    let network = DevNetwork::ephemeral(STARTING_SATS);
    let wallet = WalletService::start(&url, &network, Some("nip44_v2")).await;
    let nwc = wallet.nwc(&url, Duration::from_millis(800));
    wallet.set_mode(Mode::Silent);

    let bolt11 = wallet.invoice(100);
    let error = nwc.pay(&bolt11, 0).await.unwrap_err();
    assert_eq!(error, LightningError::Timeout);
    assert!(error.outcome_unknown());
    assert_eq!(wallet.count("pay_invoice"), 1);
    assert_eq!(wallet.count("lookup_invoice"), 1);
    assert_eq!(network.balance(ACCOUNT), STARTING_SATS * 1000);
    assert_eq!(nwc.balance().await.unwrap_err(), LightningError::Timeout);
}

#[tokio::test]
async fn a_payment_whose_reply_never_came_is_found_by_lookup() {
    let (_relay, url) = relay().await;
    let network = DevNetwork::ephemeral(STARTING_SATS);
    let wallet = WalletService::start(&url, &network, Some("nip44_v2")).await;
    let nwc = wallet.nwc(&url, Duration::from_millis(800));
    wallet.set_mode(Mode::PayThenSilent);

    let bolt11 = wallet.invoice(300);
    let payment = nwc.pay(&bolt11, 0).await.unwrap();
    assert_eq!(
        sha256(payment.preimage.as_bytes()),
        decode_invoice(&bolt11).unwrap().payment_hash
    );
    assert_eq!(payment.amount_msat, 300_000);
    assert_eq!(wallet.count("pay_invoice"), 1, "sent once");
    assert_eq!(wallet.count("lookup_invoice"), 1);
    assert_eq!(network.balance(ACCOUNT), (STARTING_SATS - 300) * 1000);
}

#[tokio::test]
async fn a_wrong_secret_is_unauthorized_and_pays_nothing() {
    let (_relay, url) = relay().await;
    let network = DevNetwork::ephemeral(STARTING_SATS);
    let wallet = WalletService::start(&url, &network, Some("nip44_v2 nip04")).await;
    let stranger = Keys::generate().secret_key().to_secret_hex();
    let nwc = wallet.nwc_with_secret(&url, &stranger, LONG);

    let error = nwc.balance().await.unwrap_err();
    assert_eq!(error.code(), "unauthorized", "{error}");
    let error = nwc.pay(&wallet.invoice(10), 0).await.unwrap_err();
    assert_eq!(error.code(), "unauthorized", "{error}");
    assert_eq!(network.balance(ACCOUNT), STARTING_SATS * 1000);
    assert_eq!(network.paid_count(), 0);
}

#[tokio::test]
async fn replies_from_another_author_are_ignored() {
    let (_relay, url) = relay().await;
    let network = DevNetwork::ephemeral(STARTING_SATS);
    let wallet = WalletService::start(&url, &network, Some("nip44_v2")).await;
    wallet.set_mode(Mode::Slow(Duration::from_millis(500)));

    // An impostor answers every request to the wallet at once, tagged like a real reply.
    let impostor = Keys::generate();
    let nostr = Client::new(impostor.clone());
    nostr.add_relay(url.as_str()).await.unwrap();
    nostr.connect().await;
    let mut notifications = nostr.notifications();
    nostr
        .subscribe(
            Filter::new()
                .kind(Kind::WalletConnectRequest)
                .pubkey(wallet.keys.public_key()),
            None,
        )
        .await
        .unwrap();
    // Its OK means the relay holds the subscription above.
    nostr
        .send_event_builder(EventBuilder::text_note("ready"))
        .await
        .unwrap();
    let answered = Arc::new(Mutex::new(0usize));
    let counter = answered.clone();
    let impostor_task = tokio::spawn(async move {
        while let Ok(notification) = notifications.recv().await {
            let RelayPoolNotification::Event { event, .. } = notification else {
                continue;
            };
            if event.kind != Kind::WalletConnectRequest {
                continue;
            }
            let lie = json!({"result_type": "get_balance", "error": null,
                             "result": {"balance": 42}})
            .to_string();
            let content = nip44::encrypt(
                impostor.secret_key(),
                &event.pubkey,
                lie,
                nip44::Version::V2,
            )
            .unwrap();
            let reply = EventBuilder::new(Kind::WalletConnectResponse, content)
                .tags([Tag::public_key(event.pubkey), Tag::event(event.id)]);
            nostr.send_event_builder(reply).await.unwrap();
            *counter.lock().unwrap() += 1;
        }
    });

    let nwc = wallet.nwc(&url, LONG);
    let balance = nwc.balance().await.unwrap();
    assert_eq!(balance.msat, STARTING_SATS * 1000);
    assert_eq!(*answered.lock().unwrap(), 1, "the impostor did answer");
    impostor_task.abort();
}

#[test]
fn refuses_a_wallet_key_that_is_not_a_key() {
    let secret = plannt_lightning::Secret::new(Keys::generate().secret_key().to_secret_hex());
    let relay = Url::parse("ws://127.0.0.1:1").unwrap();
    assert!(Nwc::new("zz", vec![relay], &secret, Network::Regtest).is_err());
    let wallet = Keys::generate().public_key().to_hex();
    assert!(Nwc::new(&wallet, vec![], &secret, Network::Regtest).is_err());
}

#[tokio::test]
async fn no_info_event_means_nip04() {
    let (_relay, url) = relay().await;
    // A key that never published anything: the connection still opens, on NIP-04.
    let wallet = Keys::generate().public_key().to_hex();
    let secret = plannt_lightning::Secret::new(Keys::generate().secret_key().to_secret_hex());
    let nwc = Nwc::new(&wallet, vec![url], &secret, Network::Regtest)
        .unwrap()
        .with_timeouts(Duration::from_millis(500), Duration::from_millis(500));
    assert_eq!(nwc.encryption().await.unwrap(), NwcEncryption::Nip04);
    assert_eq!(nwc.balance().await.unwrap_err(), LightningError::Timeout);
}

#[tokio::test]
async fn works_through_a_relay_that_sends_no_ok() {
    let (_relay, url) = relay().await;
    let network = DevNetwork::ephemeral(STARTING_SATS);
    let wallet = WalletService::start(&url, &network, Some("nip44_v2")).await;
    let (proxy, dropped) = ok_dropping_proxy(&url).await;
    let nwc = wallet.nwc(&proxy, LONG);

    assert_eq!(nwc.balance().await.unwrap().msat, STARTING_SATS * 1000);
    let bolt11 = wallet.invoice(42);
    let payment = nwc.pay(&bolt11, 0).await.unwrap();
    assert_eq!(
        sha256(payment.preimage.as_bytes()),
        decode_invoice(&bolt11).unwrap().payment_hash
    );
    assert_eq!(wallet.count("pay_invoice"), 1);
    assert_eq!(
        wallet.count("lookup_invoice"),
        0,
        "the reply came: no lookup"
    );
    // The relay did answer OK to both requests; neither reached the client.
    assert_eq!(dropped.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn concurrent_requests_each_get_their_own_reply() {
    let (_relay, url) = relay().await;
    let network = DevNetwork::ephemeral(STARTING_SATS);
    let wallet = WalletService::start(&url, &network, Some("nip44_v2")).await;
    wallet.set_mode(Mode::Slow(Duration::from_millis(300)));
    let nwc = wallet.nwc(&url, LONG);
    nwc.encryption().await.unwrap();

    let bolt11 = wallet.invoice(5);
    let hash = decode_invoice(&bolt11).unwrap().payment_hash;
    let (balance, payment, info, missing) = tokio::join!(
        nwc.balance(),
        nwc.pay(&bolt11, 0),
        nwc.health(),
        nwc.lookup_invoice(&PaymentHash([3; 32])),
    );
    // The balance was read before or after the payment, never mixed with another reply.
    let balance = balance.unwrap().msat;
    assert!(
        balance == STARTING_SATS * 1000 || balance == (STARTING_SATS - 5) * 1000,
        "{balance}"
    );
    assert_eq!(sha256(payment.unwrap().preimage.as_bytes()), hash);
    info.unwrap();
    assert_eq!(missing.unwrap(), InvoiceState::NotFound);
}
