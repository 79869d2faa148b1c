//! A fake phoenixd, field by field.
//!
//! Follows phoenixd's `src/commonMain/kotlin/fr/acinq/phoenixd/Api.kt` and
//! `json/JsonSerializers.kt` (`GeneratedInvoice`, `IncomingPayment`, `OutgoingPayment`,
//! `PaymentSent`, `PaymentFailed`, `Balance`, `NodeInfo`), and lightning-kmp's `FinalFailure`
//! texts:
//!
//! - HTTP basic auth, any user name: the full-access password can do everything, the
//!   limited-access one everything but paying. Anything else is 401 with the text `Invalid
//!   authentication (use basic auth with the http password set in phoenix.conf)`.
//! - Request bodies are read as forms; a body of another type has no parameters (a missing
//!   one is 400 `Missing parameter <name>`). Answers are JSON without `null` fields
//!   (`explicitNulls = false`); errors are plain text.
//! - `POST /createinvoice` (`amountSat`, optional: without it the invoice names no amount, `description` ≤ 128 characters or `descriptionHash`,
//!   `expirySeconds`, `externalId`): `{amountSat, paymentHash, serialized}`; phoenixd chooses
//!   the preimage.
//! - `GET /payments/incoming/{paymentHash}`: `IncomingPayment` (`isPaid`, `preimage`,
//!   `receivedSat`, `fees` in msat, `isExpired`, …), or 404 `Not found`.
//! - `POST /payinvoice` (`invoice`, `amountSat`: the amount of an invoice without one; over an
//!   invoice's own amount phoenixd would send `amountSat`, which the fake, paying through a dev
//!   network that takes no other amount, does not model: it pays the invoice's amount): 200
//!   `{recipientAmountSat, routingFeeSat, paymentId, paymentHash, paymentPreimage}` on success,
//!   and 200 `{paymentHash, reason}` on failure (no route, not enough funds, `this invoice has
//!   already been paid`, `another payment is in progress for that invoice`); an invoice that
//!   does not parse is 400. phoenixd takes no fee limit: the fee is the trampoline node's.
//! - `GET /payments/outgoingbyhash/{paymentHash}`: the attempt that got furthest (succeeded,
//!   else pending, else failed) as `OutgoingPayment` (`isPaid`, `preimage` only once paid,
//!   `sent` in sat including fees, `fees` in msat, `completedAt` only once over), or 404.
//! - Unsure, and said so: how phoenixd words an expired invoice's failure (modelled as a
//!   `PaymentFailed` whose reason says `expired`).
//! - `GET /getbalance`: `{balanceSat, feeCreditSat}`; `GET /getinfo`: `NodeInfo` with
//!   `chain: "regtest"`.
//! - Test switches: `hold` keeps payments pending until [`Phoenixd::release`]; `broken` paths
//!   answer 200 with a body that is not JSON (after doing their work).

use plannt_l402::PaymentHash;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use plannt_lightning::LightningError;
use plannt_lightning::dev::DevNetwork;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::{self as fake, NODE_ACCOUNT, NodeKey, Server};

/// The balance the node starts with, in sats.
pub const BALANCE_SAT: u64 = 500_000;

/// An invoice the node issued.
pub struct Incoming {
    preimage: [u8; 32],
    description: String,
    invoice: String,
    amount_sat: Option<u64>,
    /// What it was paid (for an invoice without an amount, what the payer chose).
    received_sat: Option<u64>,
    external_id: Option<String>,
    paid: bool,
    expires_at_ms: u64,
    created_at_ms: u64,
    completed_at_ms: Option<u64>,
}

/// A payment the node made.
pub struct Outgoing {
    id: String,
    hash: [u8; 32],
    invoice: String,
    /// Whether the invoice names no amount: `amount_msat` is the `amountSat` sent.
    amountless: bool,
    amount_msat: u64,
    fee_msat: u64,
    status: &'static str,
    preimage: Option<[u8; 32]>,
    reason: Option<String>,
    created_at_ms: u64,
    completed_at_ms: Option<u64>,
}

/// What the fake node knows and how it behaves: tests read and set it through
/// [`Phoenixd::state`].
pub struct Node {
    /// The password that may do everything.
    pub full_password: String,
    /// The password limited to issuing and reading invoices.
    pub limited_password: String,
    node: NodeKey,
    /// The dev network whose invoices the node pays.
    pub network: DevNetwork,
    incoming: HashMap<[u8; 32], Incoming>,
    outgoing: Vec<Outgoing>,
    spent_sat: u64,
    /// Payments started (`payinvoice` calls that reached the network).
    pub payments_started: usize,
    /// Keep new payments pending until released.
    pub hold: bool,
    /// The routing fee each payment costs.
    pub routing_fee_sat: u64,
    /// Paths that answer a body that is not JSON.
    pub broken: HashSet<&'static str>,
    /// The form fields of every POST, by path.
    pub posted: Vec<(&'static str, HashMap<String, String>)>,
    /// The user names basic auth carried.
    pub users: Vec<String>,
}

struct Inner {
    state: Mutex<Node>,
    changed: watch::Sender<u64>,
}

/// A fake phoenixd's HTTP API.
#[derive(Clone)]
pub struct Phoenixd {
    inner: Arc<Inner>,
}

#[derive(PartialEq)]
enum Access {
    Full,
    Limited,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

fn text(status: StatusCode, body: &str) -> Response {
    (status, body.to_string()).into_response()
}

fn unauthorized() -> Response {
    text(
        StatusCode::UNAUTHORIZED,
        "Invalid authentication (use basic auth with the http password set in phoenix.conf)",
    )
}

fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, "Not found")
}

fn not_json() -> Response {
    (StatusCode::OK, "{\"paymentPreimage\": ").into_response()
}

impl Phoenixd {
    /// A node paying on `network`, with fresh passwords.
    pub fn new(network: DevNetwork) -> Self {
        let state = Node {
            full_password: hex::encode(fake::random32()),
            limited_password: hex::encode(fake::random32()),
            node: NodeKey::default(),
            network,
            incoming: HashMap::new(),
            outgoing: Vec::new(),
            spent_sat: 0,
            payments_started: 0,
            hold: false,
            routing_fee_sat: 4,
            broken: HashSet::new(),
            posted: Vec::new(),
            users: Vec::new(),
        };
        Phoenixd {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                changed: watch::channel(0).0,
            }),
        }
    }

    /// Its state, to read or change.
    pub fn state(&self) -> MutexGuard<'_, Node> {
        self.inner.state.lock().expect("fake phoenixd state")
    }

    /// Serves the HTTP API on a free loopback port.
    pub async fn serve(&self) -> Server {
        let router = Router::new()
            .route("/getinfo", get(getinfo))
            .route("/getbalance", get(getbalance))
            .route("/createinvoice", post(createinvoice))
            .route("/payments/incoming/{hash}", get(incoming))
            .route("/payinvoice", post(payinvoice))
            .route("/payments/outgoingbyhash/{hash}", get(outgoing_by_hash))
            .with_state(self.clone());
        fake::serve(router).await
    }

    /// A payer paid the invoice with this hash its amount.
    pub fn settle(&self, hash: &PaymentHash) {
        self.settle_paying(hash, None);
    }

    /// A payer paid the invoice with this hash, which names no amount, `amount_sat`.
    pub fn settle_with(&self, hash: &PaymentHash, amount_sat: u64) {
        self.settle_paying(hash, Some(amount_sat));
    }

    fn settle_paying(&self, hash: &PaymentHash, chosen_sat: Option<u64>) {
        let hash = &hash.0;
        let mut state = self.state();
        let incoming = state.incoming.get_mut(hash).expect("an invoice we issued");
        incoming.paid = true;
        incoming.received_sat = chosen_sat.or(incoming.amount_sat);
        incoming.completed_at_ms = Some(now_ms());
    }

    /// Completes every pending payment.
    pub fn release(&self) {
        {
            let mut state = self.state();
            state.hold = false;
            let pending: Vec<usize> = (0..state.outgoing.len())
                .filter(|i| state.outgoing[*i].status == "pending")
                .collect();
            for index in pending {
                complete(&mut state, index);
            }
        }
        self.inner.changed.send_modify(|n| *n += 1);
    }
}

/// Pays through the trampoline node and the rest of the network, once.
fn complete(state: &mut Node, index: usize) {
    let fee_sat = state.routing_fee_sat;
    let network = state.network.clone();
    let payment = &mut state.outgoing[index];
    let paid = if payment.amountless {
        network.pay_amount(NODE_ACCOUNT, &payment.invoice, payment.amount_msat)
    } else {
        network.pay(NODE_ACCOUNT, &payment.invoice)
    };
    match paid {
        Ok(paid) => {
            payment.status = "succeeded";
            payment.preimage = Some(*paid.preimage.as_bytes());
            payment.fee_msat = fee_sat * 1000;
            payment.completed_at_ms = Some(now_ms());
            state.spent_sat += paid.amount_msat / 1000 + fee_sat;
        }
        Err(error) => {
            payment.status = "failed";
            payment.completed_at_ms = Some(now_ms());
            payment.reason = Some(match error {
                LightningError::InsufficientBalance(_) => {
                    "not enough funds in wallet to afford payment (available = 1000000000 msat)"
                        .into()
                }
                LightningError::NoRoute(_) => "unable to route payment to recipient".into(),
                _ => "the recipient was offline or did not have enough liquidity to receive the payment".into(),
            });
        }
    }
}

fn authorize(fake: &Phoenixd, headers: &HeaderMap) -> Option<Access> {
    let password = fake::basic_password(headers)?;
    if let Some(user) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.decode(b).ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.split_once(':').map(|(u, _)| u.to_string()))
    {
        fake.state().users.push(user);
    }
    let state = fake.state();
    if password == state.full_password {
        Some(Access::Full)
    } else if password == state.limited_password {
        Some(Access::Limited)
    } else {
        None
    }
}

/// A `paymentHash` path parameter, or phoenixd's 400 text.
fn hash_param(text: &str) -> Result<[u8; 32], String> {
    hex::decode(text)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| format!("Invalid parameter paymentHash={text} (expected bytes32)"))
}

fn text_response_400(message: &str) -> Response {
    text(StatusCode::BAD_REQUEST, message)
}

async fn getinfo(State(fake): State<Phoenixd>, headers: HeaderMap) -> Response {
    if authorize(&fake, &headers).is_none() {
        return unauthorized();
    }
    let state = fake.state();
    axum::Json(json!({
        "nodeId": state.node.id.to_string(),
        "channels": [{
            "state": "Normal",
            "channelId": "ab".repeat(32),
            "balanceSat": BALANCE_SAT - state.spent_sat,
            "inboundLiquiditySat": 1_500_000,
            "capacitySat": 2_000_000,
            "fundingTxId": "cd".repeat(32),
        }],
        "chain": "regtest",
        "blockHeight": 800_000,
        "version": "0.8.0",
    }))
    .into_response()
}

async fn getbalance(State(fake): State<Phoenixd>, headers: HeaderMap) -> Response {
    if authorize(&fake, &headers).is_none() {
        return unauthorized();
    }
    if fake.state().broken.contains("/getbalance") {
        return not_json();
    }
    let spent = fake.state().spent_sat;
    axum::Json(json!({ "balanceSat": BALANCE_SAT - spent, "feeCreditSat": 7 })).into_response()
}

async fn createinvoice(State(fake): State<Phoenixd>, headers: HeaderMap, body: Bytes) -> Response {
    if authorize(&fake, &headers).is_none() {
        return unauthorized();
    }
    let form = fake::form_fields(&headers, &body);
    fake.state().posted.push(("/createinvoice", form.clone()));
    let amount_sat = match form.get("amountSat").map(|v| v.parse::<u64>()) {
        None => None,
        Some(Ok(sat)) => Some(sat),
        Some(Err(_)) => {
            return text_response_400("Invalid parameter amountSat (expected long)");
        }
    };
    let description = match (form.get("description"), form.get("descriptionHash")) {
        (Some(d), None) => {
            if d.encode_utf16().count() > 128 {
                return text_response_400(
                    "Request parameter description is too long (max 128 characters)",
                );
            }
            d.clone()
        }
        (None, Some(_)) => String::new(),
        _ => return text_response_400("Must provide either a description or descriptionHash"),
    };
    let expiry = match form.get("expirySeconds").map(|v| v.parse::<u64>()) {
        None => 3600,
        Some(Ok(secs)) => secs,
        Some(Err(_)) => {
            return text_response_400("Invalid parameter expirySeconds (expected long)");
        }
    };
    let preimage = fake::random32();
    let hash = fake::sha(&preimage).0;
    let mut state = fake.state();
    let invoice = state.node.invoice(
        &preimage,
        amount_sat.map(|s| s * 1000),
        &description,
        expiry,
        SystemTime::now(),
    );
    let created = now_ms();
    state.incoming.insert(
        hash,
        Incoming {
            preimage,
            description,
            invoice: invoice.clone(),
            amount_sat,
            received_sat: None,
            external_id: form.get("externalId").cloned(),
            paid: false,
            expires_at_ms: created + expiry * 1000,
            created_at_ms: created,
            completed_at_ms: None,
        },
    );
    let mut answer = json!({ "paymentHash": hex::encode(hash), "serialized": invoice });
    if let Some(sat) = amount_sat {
        answer["amountSat"] = json!(sat);
    }
    axum::Json(answer).into_response()
}

async fn incoming(
    State(fake): State<Phoenixd>,
    headers: HeaderMap,
    Path(hash): Path<String>,
) -> Response {
    if authorize(&fake, &headers).is_none() {
        return unauthorized();
    }
    let hash = match hash_param(&hash) {
        Ok(hash) => hash,
        Err(message) => return text_response_400(&message),
    };
    let state = fake.state();
    let Some(payment) = state.incoming.get(&hash) else {
        return not_found();
    };
    let received_sat = if payment.paid {
        payment.received_sat.unwrap_or(0)
    } else {
        0
    };
    let mut answer = json!({
        "subType": "lightning",
        "paymentHash": hex::encode(hash),
        "preimage": hex::encode(payment.preimage),
        "description": payment.description,
        "invoice": payment.invoice,
        "isPaid": payment.paid,
        "isExpired": now_ms() > payment.expires_at_ms,
        "receivedSat": received_sat,
        "fees": 0,
        "expiresAt": payment.expires_at_ms,
        "createdAt": payment.created_at_ms,
    });
    if let Some(sat) = payment.amount_sat {
        answer["requestedSat"] = json!(sat);
    }
    if let Some(id) = &payment.external_id {
        answer["externalId"] = json!(id);
    }
    if let Some(at) = payment.completed_at_ms {
        answer["completedAt"] = json!(at);
    }
    axum::Json(answer).into_response()
}

fn payment_sent(payment: &Outgoing) -> Value {
    json!({
        "recipientAmountSat": payment.amount_msat / 1000,
        "routingFeeSat": payment.fee_msat / 1000,
        "paymentId": payment.id,
        "paymentHash": hex::encode(payment.hash),
        "paymentPreimage": payment.preimage.map(hex::encode),
    })
}

fn payment_failed(hash: &[u8; 32], reason: &str) -> Value {
    json!({ "paymentHash": hex::encode(hash), "reason": reason })
}

async fn payinvoice(State(fake): State<Phoenixd>, headers: HeaderMap, body: Bytes) -> Response {
    // authenticate("full-access", Required): the limited password is refused.
    if authorize(&fake, &headers) != Some(Access::Full) {
        return unauthorized();
    }
    let form = fake::form_fields(&headers, &body);
    fake.state().posted.push(("/payinvoice", form.clone()));
    let Some(bolt11) = form.get("invoice") else {
        return text_response_400("Missing parameter invoice");
    };
    let Some(invoice) = fake::parse_bolt11(bolt11) else {
        return text_response_400("Invalid parameter invoice (expected bolt11invoice)");
    };
    if !invoice.currency_regtest {
        return text_response_400("Invalid parameter invoice (expected bolt11invoice)");
    }
    // `(overrideAmount ?: invoice.amount) ?: missing("amountSat")`.
    let override_msat = match form.get("amountSat").map(|s| s.parse::<u64>()) {
        None => None,
        Some(Ok(sat)) => Some(sat * 1000),
        Some(Err(_)) => return text_response_400("Invalid parameter amountSat (expected long)"),
    };
    let Some(amount_msat) = override_msat.or(invoice.amount_msat) else {
        return text_response_400("Missing parameter amountSat");
    };
    let hash = invoice.payment_hash;
    let broken = fake.state().broken.contains("/payinvoice");
    let mut changes = fake.inner.changed.subscribe();
    let index = {
        let mut state = fake.state();
        let earlier = state.outgoing.iter().filter(|p| p.hash == hash);
        let mut succeeded = false;
        let mut pending = false;
        for payment in earlier {
            succeeded |= payment.status == "succeeded";
            pending |= payment.status == "pending";
        }
        if succeeded {
            let answer = payment_failed(&hash, "this invoice has already been paid");
            return axum::Json(answer).into_response();
        }
        if pending {
            let answer = payment_failed(&hash, "another payment is in progress for that invoice");
            return axum::Json(answer).into_response();
        }
        if invoice.expired {
            // Unsure of phoenixd's exact wording; lightning-kmp refuses expired invoices.
            let answer = payment_failed(&hash, "the invoice has expired");
            return axum::Json(answer).into_response();
        }
        let id = {
            let b = fake::random32();
            format!(
                "{}-{}-{}-{}-{}",
                hex::encode(&b[0..4]),
                hex::encode(&b[4..6]),
                hex::encode(&b[6..8]),
                hex::encode(&b[8..10]),
                hex::encode(&b[10..16])
            )
        };
        state.outgoing.push(Outgoing {
            id,
            hash,
            invoice: bolt11.clone(),
            amountless: invoice.amount_msat.is_none(),
            amount_msat,
            fee_msat: 0,
            status: "pending",
            preimage: None,
            reason: None,
            created_at_ms: now_ms(),
            completed_at_ms: None,
        });
        state.payments_started += 1;
        let index = state.outgoing.len() - 1;
        if !state.hold || broken {
            complete(&mut state, index);
        }
        index
    };
    if broken {
        return not_json();
    }
    loop {
        changes.borrow_and_update();
        {
            let state = fake.state();
            let payment = &state.outgoing[index];
            match payment.status {
                "succeeded" => return axum::Json(payment_sent(payment)).into_response(),
                "failed" => {
                    let reason = payment.reason.clone().unwrap_or_default();
                    return axum::Json(payment_failed(&hash, &reason)).into_response();
                }
                _ => {}
            }
        }
        if changes.changed().await.is_err() {
            return text(StatusCode::INTERNAL_SERVER_ERROR, "shutting down");
        }
    }
}

async fn outgoing_by_hash(
    State(fake): State<Phoenixd>,
    headers: HeaderMap,
    Path(hash): Path<String>,
) -> Response {
    if authorize(&fake, &headers).is_none() {
        return unauthorized();
    }
    let hash = match hash_param(&hash) {
        Ok(hash) => hash,
        Err(message) => return text_response_400(&message),
    };
    let state = fake.state();
    let rank = |status: &str| match status {
        "succeeded" => 3,
        "pending" => 2,
        _ => 1,
    };
    let Some(payment) = state
        .outgoing
        .iter()
        .filter(|p| p.hash == hash)
        .max_by_key(|p| rank(p.status))
    else {
        return not_found();
    };
    let mut answer = json!({
        "subType": "lightning",
        "paymentId": payment.id,
        "paymentHash": hex::encode(hash),
        "isPaid": payment.status == "succeeded",
        "sent": (payment.amount_msat + payment.fee_msat) / 1000,
        "fees": payment.fee_msat,
        "invoice": payment.invoice,
        "createdAt": payment.created_at_ms,
    });
    if let Some(preimage) = payment.preimage {
        answer["preimage"] = json!(hex::encode(preimage));
    }
    if let Some(at) = payment.completed_at_ms {
        answer["completedAt"] = json!(at);
    }
    axum::Json(answer).into_response()
}
