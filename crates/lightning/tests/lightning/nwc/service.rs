//! What the NWC tests run against: a Nostr relay in the process (rust-nostr's
//! `nostr-relay-builder`), a NIP-47 wallet service written here with `nostr-sdk` and backed by
//! the dev network (real BOLT11, real preimages), and a proxy that drops the relay's `OK`s. The
//! service is small but speaks the protocol for real: it publishes its info event, decrypts
//! NIP-44 or NIP-04 requests as each one is tagged, and signs and encrypts its replies.

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
    BackendUri, InvoiceRequest, LightningError, Nwc, NwcEncryption, PaymentLookup,
};
use serde_json::{Value, json};
use url::Url;

/// The dev account the wallet service spends from.
pub(super) const ACCOUNT: &str = "nwc-wallet";
/// The dev account that pays the wallet's own invoices in these tests.
pub(super) const PAYER: &str = "someone";
/// Each dev account starts with this many sats.
pub(super) const STARTING_SATS: u64 = 1_000_000;

/// A relay on a free loopback port, with a rate limit no test reaches.
pub(super) async fn relay() -> (LocalRelay, Url) {
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
pub(super) enum Mode {
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

/// The methods a full wallet service lists in its info event.
pub(super) const METHODS: &str = "pay_invoice get_balance make_invoice lookup_invoice get_info";

/// A NIP-47 wallet service on the relay, spending from [`ACCOUNT`] of a dev network.
pub(super) struct WalletService {
    pub(super) keys: Keys,
    /// The client key it serves.
    pub(super) client: Keys,
    network: DevNetwork,
    mode: Arc<Mutex<Mode>>,
    seen: Arc<Mutex<Seen>>,
    _task: tokio::task::JoinHandle<()>,
}

impl WalletService {
    /// Starts a service whose info event carries `encryption` (None: no `encryption` tag).
    pub(super) async fn start(relay: &Url, network: &DevNetwork, encryption: Option<&str>) -> Self {
        Self::offering(relay, network, encryption, METHODS).await
    }

    /// Starts a service whose info event lists `methods` (space-separated).
    pub(super) async fn offering(
        relay: &Url,
        network: &DevNetwork,
        encryption: Option<&str>,
        methods: &str,
    ) -> Self {
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
        let mut info = EventBuilder::new(Kind::WalletConnectInfo, methods);
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

    pub(super) fn uri(&self, relay: &Url, secret: &str) -> String {
        format!(
            "nostr+walletconnect://{}?relay={}&secret={secret}&network=regtest",
            self.keys.public_key().to_hex(),
            relay.as_str().replace(':', "%3A").replace('/', "%2F"),
        )
    }

    /// A backend for this wallet with our client key, calls timing out after `timeout`.
    pub(super) fn nwc(&self, relay: &Url, timeout: Duration) -> Nwc {
        self.nwc_with_secret(relay, &self.client.secret_key().to_secret_hex(), timeout)
    }

    pub(super) fn nwc_with_secret(&self, relay: &Url, secret: &str, timeout: Duration) -> Nwc {
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

    pub(super) fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    pub(super) fn count(&self, method: &str) -> usize {
        self.seen.lock().unwrap().count(method)
    }

    pub(super) fn encryptions(&self) -> Vec<NwcEncryption> {
        let seen = self.seen.lock().unwrap();
        seen.requests.iter().map(|(_, e)| *e).collect()
    }

    /// A fresh invoice of the dev network, for the service to pay.
    pub(super) fn invoice(&self, sats: u64) -> String {
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
                // `amount` (msat) pays an invoice that names none.
                let paid = match params["amount"].as_u64() {
                    Some(amount) => self.network.pay_amount(ACCOUNT, invoice, amount),
                    None => self.network.pay(ACCOUNT, invoice),
                };
                match paid {
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

/// A WebSocket proxy in front of the relay that forwards everything except the relay's `OK`
/// messages, as `nostr-rs-relay` 0.8 behaves for ephemeral events. Counts what it dropped.
pub(super) async fn ok_dropping_proxy(relay: &Url) -> (Url, Arc<AtomicUsize>) {
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
