//! The NWC (NIP-47) backend against a real Nostr relay (rust-nostr's `nostr-relay-builder`,
//! in-process) and a NIP-47 wallet service written here with `nostr-sdk`, backed by the dev
//! network (real BOLT11, real preimages). The service is small but speaks the protocol for
//! real: it publishes its info event, decrypts NIP-44 or NIP-04 requests as each one is
//! tagged, and signs and encrypts its replies.

use plannt_l402::PaymentHash;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nostr_relay_builder::prelude::RateLimit;
use nostr_relay_builder::{LocalRelay, RelayBuilder};
use nostr_sdk::nips::{nip04, nip44};
use nostr_sdk::{
    Client, Event, EventBuilder, Filter, Keys, Kind, PublicKey, RelayPoolNotification, Tag, TagKind,
};
use plannt_lightning::dev::DevNetwork;
use plannt_lightning::{
    BackendUri, Context, InvoiceRequest, InvoiceState, LightningError, Network, Nwc, NwcEncryption,
    Payer, PaymentLookup, Receiver, decode_invoice, open,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use url::Url;

/// The dev account the wallet service spends from.
const ACCOUNT: &str = "nwc-wallet";
/// The dev account that pays the wallet's own invoices in these tests.
const PAYER: &str = "someone";
/// Each dev account starts with this many sats.
const STARTING_SATS: u64 = 1_000_000;

/// A relay on a free loopback port, with a rate limit no test reaches.
async fn relay() -> (LocalRelay, Url) {
    let builder = RelayBuilder::default().rate_limit(RateLimit {
        max_reqs: 10_000,
        notes_per_minute: 100_000,
    });
    let relay = LocalRelay::new(builder);
    relay.run().await.expect("the relay starts");
    let url = Url::parse(&relay.url().await.to_string()).unwrap();
    (relay, url)
}

/// How the wallet service answers.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// Does what is asked.
    Answer,
    /// Answers every request with this NIP-47 error code.
    Fail(&'static str),
    /// Never answers.
    Silent,
    /// Pays what it is asked to pay, never says so; answers everything else.
    PayThenSilent,
    /// Does what is asked, after a pause.
    Slow(Duration),
}

/// What the service saw: each request's method and the encryption it came in.
#[derive(Default)]
struct Seen {
    requests: Vec<(String, NwcEncryption)>,
    /// Invoices it issued: payment hash → amount in msat.
    issued: HashMap<PaymentHash, u64>,
}

impl Seen {
    fn count(&self, method: &str) -> usize {
        self.requests.iter().filter(|(m, _)| m == method).count()
    }
}

/// A NIP-47 wallet service on the relay, spending from [`ACCOUNT`] of a dev network.
struct WalletService {
    keys: Keys,
    /// The client key it serves.
    client: Keys,
    network: DevNetwork,
    mode: Arc<Mutex<Mode>>,
    seen: Arc<Mutex<Seen>>,
    _task: tokio::task::JoinHandle<()>,
}

impl WalletService {
    /// Starts a service whose info event carries `encryption` (None: no `encryption` tag).
    async fn start(relay: &Url, network: &DevNetwork, encryption: Option<&str>) -> Self {
        let keys = Keys::generate();
        let client_keys = Keys::generate();
        let mode = Arc::new(Mutex::new(Mode::Answer));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let nostr = Client::new(keys.clone());
        nostr.add_relay(relay.as_str()).await.unwrap();
        nostr.connect().await;
        let requests = Filter::new()
            .kind(Kind::WalletConnectRequest)
            .pubkey(keys.public_key());
        let mut notifications = nostr.notifications();
        nostr.subscribe(requests, None).await.unwrap();
        // Sent after the subscription on the same socket: its OK means the relay has both.
        let mut info = EventBuilder::new(
            Kind::WalletConnectInfo,
            "pay_invoice get_balance make_invoice lookup_invoice get_info",
        );
        if let Some(encryption) = encryption {
            info = info.tag(Tag::custom(TagKind::custom("encryption"), [encryption]));
        }
        let sent = nostr.send_event_builder(info).await.unwrap();
        assert!(!sent.success.is_empty(), "the relay took the info event");

        let service = Handler {
            nostr: nostr.clone(),
            keys: keys.clone(),
            client: client_keys.public_key(),
            network: network.clone(),
            mode: mode.clone(),
            seen: seen.clone(),
        };
        let task = tokio::spawn(async move {
            while let Ok(notification) = notifications.recv().await {
                if let RelayPoolNotification::Event { event, .. } = notification
                    && event.kind == Kind::WalletConnectRequest
                {
                    let service = service.clone();
                    tokio::spawn(async move { service.handle(*event).await });
                }
            }
        });
        WalletService {
            keys,
            client: client_keys,
            network: network.clone(),
            mode,
            seen,
            _task: task,
        }
    }

    fn uri(&self, relay: &Url, secret: &str) -> String {
        format!(
            "nostr+walletconnect://{}?relay={}&secret={secret}&network=regtest",
            self.keys.public_key().to_hex(),
            relay.as_str().replace(':', "%3A").replace('/', "%2F"),
        )
    }

    /// A backend for this wallet with our client key, calls timing out after `timeout`.
    fn nwc(&self, relay: &Url, timeout: Duration) -> Nwc {
        self.nwc_with_secret(relay, &self.client.secret_key().to_secret_hex(), timeout)
    }

    fn nwc_with_secret(&self, relay: &Url, secret: &str, timeout: Duration) -> Nwc {
        let uri: BackendUri = self.uri(relay, secret).parse().expect("a valid NWC URI");
        let BackendUri::Nwc {
            wallet_pubkey,
            relays,
            secret,
            network,
            ..
        } = uri
        else {
            panic!("not an NWC URI")
        };
        Nwc::new(&wallet_pubkey, relays, &secret, network)
            .unwrap()
            .with_timeouts(timeout, timeout)
    }

    fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn count(&self, method: &str) -> usize {
        self.seen.lock().unwrap().count(method)
    }

    fn encryptions(&self) -> Vec<NwcEncryption> {
        let seen = self.seen.lock().unwrap();
        seen.requests.iter().map(|(_, e)| *e).collect()
    }

    /// A fresh invoice of the dev network, for the service to pay.
    fn invoice(&self, sats: u64) -> String {
        self.network
            .create_invoice(&InvoiceRequest {
                amount_sats: sats,
                memo: "nwc test".into(),
                expiry_secs: 600,
            })
            .unwrap()
            .bolt11
    }
}

#[derive(Clone)]
struct Handler {
    nostr: Client,
    keys: Keys,
    client: PublicKey,
    network: DevNetwork,
    mode: Arc<Mutex<Mode>>,
    seen: Arc<Mutex<Seen>>,
}

impl Handler {
    async fn handle(&self, request: Event) {
        let nip44 = request.tags.iter().any(|tag| {
            let parts = tag.as_slice();
            parts.first().map(String::as_str) == Some("encryption")
                && parts.get(1).map(String::as_str) == Some("nip44_v2")
        });
        let encryption = if nip44 {
            NwcEncryption::Nip44V2
        } else {
            NwcEncryption::Nip04
        };
        let secret = self.keys.secret_key();
        let text = match encryption {
            NwcEncryption::Nip44V2 => {
                nip44::decrypt(secret, &request.pubkey, &request.content).ok()
            }
            NwcEncryption::Nip04 => nip04::decrypt(secret, &request.pubkey, &request.content).ok(),
        };
        let Some(body) = text.and_then(|t| serde_json::from_str::<Value>(&t).ok()) else {
            return;
        };
        let method = body["method"].as_str().unwrap_or_default().to_string();
        let params = body["params"].clone();
        self.seen
            .lock()
            .unwrap()
            .requests
            .push((method.clone(), encryption));
        let mode = *self.mode.lock().unwrap();
        let reply = if request.pubkey != self.client {
            error("UNAUTHORIZED", "no wallet is connected to this key")
        } else {
            match mode {
                Mode::Silent => return,
                Mode::Fail(code) => error(code, "the test wallet fails this on purpose"),
                Mode::PayThenSilent if method == "pay_invoice" => {
                    let _ = self.answer(&method, &params);
                    return;
                }
                Mode::Slow(pause) => {
                    tokio::time::sleep(pause).await;
                    self.answer(&method, &params)
                }
                Mode::Answer | Mode::PayThenSilent => self.answer(&method, &params),
            }
        };
        let mut reply = reply;
        reply["result_type"] = json!(method);
        let content = reply.to_string();
        let encrypted = match encryption {
            NwcEncryption::Nip44V2 => {
                nip44::encrypt(secret, &request.pubkey, content, nip44::Version::V2).unwrap()
            }
            NwcEncryption::Nip04 => nip04::encrypt(secret, &request.pubkey, content).unwrap(),
        };
        let event = EventBuilder::new(Kind::WalletConnectResponse, encrypted)
            .tags([Tag::public_key(request.pubkey), Tag::event(request.id)]);
        self.nostr.send_event_builder(event).await.unwrap();
    }

    fn answer(&self, method: &str, params: &Value) -> Value {
        match method {
            "get_info" => ok(json!({
                "alias": "test wallet",
                "network": "regtest",
                "methods": ["pay_invoice", "get_balance", "make_invoice", "lookup_invoice"],
            })),
            "get_balance" => ok(json!({ "balance": self.network.balance(ACCOUNT) })),
            "pay_invoice" => {
                let invoice = params["invoice"].as_str().unwrap_or_default();
                match self.network.pay(ACCOUNT, invoice) {
                    Ok(payment) => ok(json!({
                        "preimage": payment.preimage.to_hex(),
                        "fees_paid": payment.fee_msat,
                    })),
                    Err(LightningError::InsufficientBalance(why)) => {
                        error("INSUFFICIENT_BALANCE", &why)
                    }
                    Err(other) => error("PAYMENT_FAILED", &other.to_string()),
                }
            }
            "make_invoice" => {
                let amount = params["amount"].as_u64().unwrap_or(0);
                let issued = self.network.create_invoice(&InvoiceRequest {
                    amount_sats: amount / 1000,
                    memo: params["description"].as_str().unwrap_or_default().into(),
                    expiry_secs: params["expiry"].as_u64().unwrap_or(3600),
                });
                match issued {
                    Ok(issued) => {
                        self.seen
                            .lock()
                            .unwrap()
                            .issued
                            .insert(issued.payment_hash, amount);
                        ok(json!({
                            "type": "incoming",
                            "state": "pending",
                            "invoice": issued.bolt11,
                            "payment_hash": hex::encode(issued.payment_hash),
                            "amount": amount,
                            "fees_paid": 0,
                            "expires_at": issued.expires_at,
                        }))
                    }
                    Err(e) => error("OTHER", &e.to_string()),
                }
            }
            "lookup_invoice" => {
                let Some(hash) = params["payment_hash"]
                    .as_str()
                    .and_then(|h| PaymentHash::from_hex(h).ok())
                else {
                    return error("OTHER", "no payment_hash");
                };
                let issued = self.seen.lock().unwrap().issued.get(&hash).copied();
                if let Some(amount) = issued {
                    return match self.network.lookup(PAYER, &hash) {
                        PaymentLookup::Succeeded(p) => ok(json!({
                            "type": "incoming", "state": "settled", "payment_hash": hex::encode(hash),
                            "preimage": p.preimage.to_hex(), "amount": amount, "settled_at": 1,
                        })),
                        _ => ok(json!({
                            "type": "incoming", "state": "pending", "payment_hash": hex::encode(hash),
                            "amount": amount,
                        })),
                    };
                }
                match self.network.lookup(ACCOUNT, &hash) {
                    PaymentLookup::Succeeded(p) => ok(json!({
                        "type": "outgoing", "state": "settled", "payment_hash": hex::encode(hash),
                        "preimage": p.preimage.to_hex(), "amount": p.amount_msat,
                        "fees_paid": 0, "settled_at": 1,
                    })),
                    _ => error("NOT_FOUND", "no such payment"),
                }
            }
            _ => error("NOT_IMPLEMENTED", method),
        }
    }
}

fn ok(result: Value) -> Value {
    json!({ "error": null, "result": result })
}

fn error(code: &str, message: &str) -> Value {
    json!({ "error": { "code": code, "message": message }, "result": null })
}

fn sha256(bytes: &[u8]) -> PaymentHash {
    PaymentHash(Sha256::digest(bytes).into())
}

const LONG: Duration = Duration::from_secs(10);

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
    let opened = open(&uri, &context).expect("open() takes an NWC URI");
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

#[tokio::test]
async fn an_unreachable_relay_is_unreachable() {
    let wallet = Keys::generate().public_key().to_hex();
    let secret = plannt_lightning::Secret::new(Keys::generate().secret_key().to_secret_hex());
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = Url::parse(&format!("ws://127.0.0.1:{port}")).unwrap();
    let nwc = Nwc::new(&wallet, vec![url], &secret, Network::Regtest).unwrap();
    let error = nwc.balance().await.unwrap_err();
    assert_eq!(error.code(), "unreachable", "{error}");
    let error = nwc
        .pay(
            &DevNetwork::ephemeral(1)
                .wallet("x")
                .create_invoice(&InvoiceRequest {
                    amount_sats: 1,
                    memo: String::new(),
                    expiry_secs: 60,
                })
                .await
                .unwrap()
                .bolt11,
            0,
        )
        .await
        .unwrap_err();
    assert_eq!(error.code(), "unreachable", "nothing was sent: {error}");
    assert!(Nwc::new("zz", vec![], &secret, Network::Regtest).is_err());
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

/// A WebSocket proxy in front of the relay that forwards everything except the relay's `OK`
/// messages, as `nostr-rs-relay` 0.8 behaves for ephemeral events. Counts what it dropped.
async fn ok_dropping_proxy(relay: &Url) -> (Url, Arc<AtomicUsize>) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = Url::parse(&format!("ws://{}", listener.local_addr().unwrap())).unwrap();
    let upstream_addr = format!(
        "{}:{}",
        relay.host_str().unwrap(),
        relay.port_or_known_default().unwrap()
    );
    let dropped = Arc::new(AtomicUsize::new(0));
    let counter = dropped.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let upstream = tokio::net::TcpStream::connect(&upstream_addr)
                .await
                .unwrap();
            let counter = counter.clone();
            tokio::spawn(async move {
                let (mut client_read, mut client_write) = client.into_split();
                let (upstream_read, mut upstream_write) = upstream.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut client_read, &mut upstream_write).await;
                });
                let mut upstream_read = BufReader::new(upstream_read);
                // The HTTP upgrade answer, as it is.
                loop {
                    let mut line = String::new();
                    if upstream_read.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    client_write.write_all(line.as_bytes()).await.unwrap();
                    if line == "\r\n" {
                        break;
                    }
                }
                // Then server frames (unmasked): drop the text frames that are `OK` messages.
                loop {
                    let mut header = vec![0u8; 2];
                    if upstream_read.read_exact(&mut header).await.is_err() {
                        return;
                    }
                    let opcode = header[0] & 0x0f;
                    let masked = header[1] & 0x80 != 0;
                    let len = match header[1] & 0x7f {
                        126 => {
                            let mut extra = [0u8; 2];
                            upstream_read.read_exact(&mut extra).await.unwrap();
                            header.extend_from_slice(&extra);
                            u64::from(u16::from_be_bytes(extra))
                        }
                        127 => {
                            let mut extra = [0u8; 8];
                            upstream_read.read_exact(&mut extra).await.unwrap();
                            header.extend_from_slice(&extra);
                            u64::from_be_bytes(extra)
                        }
                        short => u64::from(short),
                    };
                    assert!(!masked, "a relay does not mask its frames");
                    let mut payload = vec![0u8; len as usize];
                    upstream_read.read_exact(&mut payload).await.unwrap();
                    if opcode == 1 && payload.starts_with(b"[\"OK\"") {
                        counter.fetch_add(1, Ordering::SeqCst);
                        continue;
                    }
                    header.extend_from_slice(&payload);
                    if client_write.write_all(&header).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, dropped)
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
