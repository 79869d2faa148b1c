//! A fake LND: lnd v0.21's REST proxy (grpc-gateway), field by field.
//!
//! Follows `lnrpc/lightning.proto` (`AddInvoice`: `Invoice` in, `AddInvoiceResponse` out;
//! `LookupInvoice` `GET /v1/invoice/{r_hash_str}` with the hash in hex; `GetInfoResponse`;
//! `ChannelBalanceResponse`; `Payment`, `PaymentFailureReason`), `routerrpc/router.proto`
//! (`SendPaymentV2` `POST /v2/router/send`: `SendPaymentRequest` in, a stream of `Payment`;
//! `TrackPaymentV2` `GET /v2/router/track/{payment_hash}`), `routerrpc/router_server.go` and
//! `lnrpc/rpc_utils.go`:
//!
//! - JSON as protojson writes it: every field present, int64/uint64 as strings, `bytes` as
//!   standard base64, enums by name. A hash in a path is base64 (standard, else URL-safe, both
//!   padded, as grpc-gateway's `runtime.Bytes` decodes), except `r_hash_str`, which is hex.
//! - The macaroon (`Grpc-Metadata-macaroon`, hex): none is `expected 1 macaroon, got 0`, a wrong
//!   one `verification failed: signature mismatch after caveat verification`, both gRPC
//!   `Unknown` (HTTP 500). The invoice macaroon (`invoices`, `address`, `onchain` permissions)
//!   gets `permission denied` on `getinfo`, balances and payments.
//! - Unary errors are `{"code","message","details":[]}`; a stream's error before its first
//!   message is `{"error":{…}}` with the HTTP status of the gRPC code (AlreadyExists 409,
//!   NotFound 404, Unknown 500).
//! - `SendPaymentV2`: an expired invoice is refused (`invoice expired. Valid until …`), so is
//!   one of another network or without an amount. A hash already paid is refused with
//!   `invoice is already paid`, one in flight with `payment is in transition` (AlreadyExists);
//!   a failed one may be retried. No fee limit means zero (zero-fee routes only). The stream
//!   sends `IN_FLIGHT` (unless `no_inflight_updates`) with `payment_preimage` all zeros, then
//!   `SUCCEEDED` with the preimage or `FAILED` with a `failure_reason`, then ends. Closing the
//!   stream does not cancel the payment (`cancelable` is not set).
//! - `TrackPaymentV2`: the current state first, then updates to the end; an unknown hash is
//!   NotFound `payment isn't initiated`.
//! - Routes: every payment costs `route_fee_msat` in fees; one whose fee limit is lower fails
//!   `FAILURE_REASON_NO_ROUTE`; the rest of the network decides the others (no route, not
//!   enough balance, paid already).
//! - Test switches: `hold` keeps new payments in flight until [`Lnd::release`]; `broken` paths
//!   answer 200 with a body that is not JSON (a `send` still makes its payment first).

use plannt_l402::PaymentHash;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use plannt_lightning::LightningError;
use plannt_lightning::dev::DevNetwork;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::{self as fake, NODE_ACCOUNT, NodeKey, Server};

/// The balance the node's channels start with, in msat.
pub const CHANNEL_BALANCE_MSAT: u64 = 800_000_123;

pub struct Invoice {
    memo: String,
    preimage: [u8; 32],
    bolt11: String,
    value_msat: u64,
    creation_date: u64,
    expiry: u64,
    state: &'static str,
    amt_paid_msat: u64,
    settle_date: u64,
    add_index: u64,
    settle_index: u64,
    payment_addr: [u8; 32],
}

pub struct Outgoing {
    bolt11: String,
    value_msat: u64,
    fee_limit_msat: u64,
    fee_msat: u64,
    status: &'static str,
    preimage: Option<[u8; 32]>,
    failure_reason: &'static str,
    creation_time_ns: u128,
    payment_index: u64,
}

pub struct Node {
    pub admin_macaroon: String,
    pub invoice_macaroon: String,
    node: NodeKey,
    pub network: DevNetwork,
    invoices: HashMap<[u8; 32], Invoice>,
    add_index: u64,
    settle_index: u64,
    payments: HashMap<[u8; 32], Outgoing>,
    payment_index: u64,
    spent_msat: u64,
    /// Payments started (`SendPaymentV2` calls that reached the network).
    pub payments_started: usize,
    /// Keep new payments in flight until released.
    pub hold: bool,
    pub route_fee_msat: u64,
    /// Paths that answer a body that is not JSON.
    pub broken: HashSet<&'static str>,
    /// The JSON bodies of the POSTs received, by path.
    pub posted: Vec<(&'static str, Value)>,
    /// The hashes `/v2/router/track` was asked for, decoded.
    pub tracked: Vec<[u8; 32]>,
}

struct Inner {
    state: Mutex<Node>,
    changed: watch::Sender<u64>,
}

/// A fake LND node.
#[derive(Clone)]
pub struct Lnd {
    inner: Arc<Inner>,
}

#[derive(PartialEq, Clone, Copy)]
enum Macaroon {
    Admin,
    Invoice,
}

impl Lnd {
    pub fn new(network: DevNetwork) -> Self {
        let state = Node {
            admin_macaroon: hex::encode(fake::random32()),
            invoice_macaroon: hex::encode(fake::random32()),
            node: NodeKey::default(),
            network,
            invoices: HashMap::new(),
            add_index: 0,
            settle_index: 0,
            payments: HashMap::new(),
            payment_index: 0,
            spent_msat: 0,
            payments_started: 0,
            hold: false,
            route_fee_msat: 1_000,
            broken: HashSet::new(),
            posted: Vec::new(),
            tracked: Vec::new(),
        };
        Lnd {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                changed: watch::channel(0).0,
            }),
        }
    }

    pub fn state(&self) -> MutexGuard<'_, Node> {
        self.inner.state.lock().expect("fake lnd state")
    }

    fn bump(&self) {
        self.inner.changed.send_modify(|n| *n += 1);
    }

    pub async fn serve(&self) -> Server {
        fake::serve(self.router()).await
    }

    pub async fn serve_tls(&self) -> Server {
        fake::serve_tls(self.router()).await
    }

    fn router(&self) -> Router {
        Router::new()
            .route("/v1/getinfo", get(getinfo))
            .route("/v1/balance/channels", get(channel_balance))
            .route("/v1/invoices", post(add_invoice))
            .route("/v1/invoice/{r_hash_str}", get(lookup_invoice))
            .route("/v2/router/send", post(send_payment))
            .route("/v2/router/track/{payment_hash}", get(track_payment))
            .fallback(|| async { error(StatusCode::NOT_FOUND, 5, "Not Found") })
            .with_state(self.clone())
    }

    /// A payer paid the invoice with this hash.
    pub fn settle(&self, hash: &PaymentHash) {
        let hash = &hash.0;
        let mut state = self.state();
        state.settle_index += 1;
        let index = state.settle_index;
        let invoice = state.invoices.get_mut(hash).expect("an invoice we issued");
        invoice.state = "SETTLED";
        invoice.amt_paid_msat = invoice.value_msat;
        invoice.settle_date = fake::now();
        invoice.settle_index = index;
    }

    /// The invoice with this hash was canceled (LND cancels expired invoices).
    pub fn cancel(&self, hash: &PaymentHash) {
        let hash = &hash.0;
        let mut state = self.state();
        state
            .invoices
            .get_mut(hash)
            .expect("an invoice we issued")
            .state = "CANCELED";
    }

    /// Completes every payment held in flight.
    pub fn release(&self) {
        {
            let mut state = self.state();
            state.hold = false;
            let held: Vec<[u8; 32]> = state
                .payments
                .iter()
                .filter(|(_, p)| p.status == "IN_FLIGHT")
                .map(|(hash, _)| *hash)
                .collect();
            for hash in held {
                complete(&mut state, &hash);
            }
        }
        self.bump();
    }
}

/// Routes a payment through the rest of the network: it succeeds or fails, once.
fn complete(state: &mut Node, hash: &[u8; 32]) {
    let fee = state.route_fee_msat;
    let network = state.network.clone();
    let payment = state.payments.get_mut(hash).expect("a payment we track");
    if payment.fee_limit_msat < fee {
        payment.status = "FAILED";
        payment.failure_reason = "FAILURE_REASON_NO_ROUTE";
        return;
    }
    match network.pay(NODE_ACCOUNT, &payment.bolt11) {
        Ok(paid) => {
            payment.status = "SUCCEEDED";
            payment.preimage = Some(*paid.preimage.as_bytes());
            payment.value_msat = paid.amount_msat;
            payment.fee_msat = fee;
            state.spent_msat += paid.amount_msat + fee;
        }
        Err(error) => {
            payment.status = "FAILED";
            payment.failure_reason = match error {
                LightningError::NoRoute(_) => "FAILURE_REASON_NO_ROUTE",
                LightningError::InsufficientBalance(_) => "FAILURE_REASON_INSUFFICIENT_BALANCE",
                LightningError::AlreadyPaid => "FAILURE_REASON_INCORRECT_PAYMENT_DETAILS",
                _ => "FAILURE_REASON_ERROR",
            };
        }
    }
}

/// A unary error: `{"code","message","details":[]}`.
fn error(status: StatusCode, code: u32, message: &str) -> Response {
    let body = json!({ "code": code, "message": message, "details": [] });
    (status, axum::Json(body)).into_response()
}

/// A stream's error before its first message: `{"error":{…}}`.
fn stream_error(status: StatusCode, code: u32, message: &str) -> Response {
    let body = json!({ "error": { "code": code, "message": message, "details": [] } });
    (status, axum::Json(body)).into_response()
}

/// The macaroon check every call goes through: `Err` is the gRPC error (code, message).
fn authorize(
    fake: &Lnd,
    headers: &HeaderMap,
    allowed: &[Macaroon],
) -> Result<(), (u32, &'static str)> {
    let Some(value) = headers
        .get("grpc-metadata-macaroon")
        .and_then(|v| v.to_str().ok())
    else {
        return Err((2, "expected 1 macaroon, got 0"));
    };
    let state = fake.state();
    let which = if value.eq_ignore_ascii_case(&state.admin_macaroon) {
        Macaroon::Admin
    } else if value.eq_ignore_ascii_case(&state.invoice_macaroon) {
        Macaroon::Invoice
    } else if hex::decode(value).is_err() {
        return Err((2, "encoding/hex: invalid byte"));
    } else {
        return Err((
            2,
            "verification failed: signature mismatch after caveat verification",
        ));
    };
    if allowed.contains(&which) {
        Ok(())
    } else {
        Err((2, "permission denied"))
    }
}

fn broken(fake: &Lnd, path: &'static str) -> bool {
    fake.state().broken.contains(path)
}

fn not_json() -> Response {
    (StatusCode::OK, "{\"this is not\": json").into_response()
}

/// An int64 field of a request: protojson takes a string or a number.
fn int64(body: &Value, field: &str) -> Result<u64, String> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::String(text)) => text
            .parse()
            .map_err(|_| format!("bad value for field {field}: {text}")),
        Some(Value::Number(n)) => n
            .as_u64()
            .ok_or_else(|| format!("bad value for field {field}")),
        Some(other) => Err(format!("bad value for field {field}: {other}")),
    }
}

async fn getinfo(State(fake): State<Lnd>, headers: HeaderMap) -> Response {
    if let Err((code, message)) = authorize(&fake, &headers, &[Macaroon::Admin]) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, code, message);
    }
    if broken(&fake, "/v1/getinfo") {
        return not_json();
    }
    let state = fake.state();
    let body = json!({
        "version": "0.21.0-beta commit=v0.21.0-beta",
        "commit_hash": "0000000000000000000000000000000000000000",
        "identity_pubkey": state.node.id.to_string(),
        "alias": "plannt-fake-lnd",
        "color": "#3399ff",
        "num_pending_channels": 0,
        "num_active_channels": 1,
        "num_inactive_channels": 0,
        "num_peers": 1,
        "block_height": 800_000,
        "block_hash": "0000000000000000000000000000000000000000000000000000000000000000",
        "best_header_timestamp": fake::now().to_string(),
        "synced_to_chain": true,
        "synced_to_graph": true,
        "testnet": false,
        "chains": [{ "chain": "bitcoin", "network": "regtest" }],
        "uris": [],
        "features": {},
        "require_htlc_interceptor": false,
        "store_final_htlc_resolutions": false,
    });
    axum::Json(body).into_response()
}

async fn channel_balance(State(fake): State<Lnd>, headers: HeaderMap) -> Response {
    if let Err((code, message)) = authorize(&fake, &headers, &[Macaroon::Admin]) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, code, message);
    }
    if broken(&fake, "/v1/balance/channels") {
        return not_json();
    }
    let local = CHANNEL_BALANCE_MSAT - fake.state().spent_msat;
    let amount = |msat: u64| json!({ "sat": (msat / 1000).to_string(), "msat": msat.to_string() });
    let body = json!({
        "balance": (local / 1000).to_string(),
        "pending_open_balance": "0",
        "local_balance": amount(local),
        "remote_balance": amount(200_000_000),
        "unsettled_local_balance": amount(0),
        "unsettled_remote_balance": amount(0),
        "pending_open_local_balance": amount(0),
        "pending_open_remote_balance": amount(0),
    });
    axum::Json(body).into_response()
}

async fn add_invoice(State(fake): State<Lnd>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err((code, message)) = authorize(&fake, &headers, &[Macaroon::Admin, Macaroon::Invoice])
    {
        return error(StatusCode::INTERNAL_SERVER_ERROR, code, message);
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            3,
            "invalid character looking for beginning of value",
        );
    };
    fake.state().posted.push(("/v1/invoices", body.clone()));
    let (value, value_msat, expiry) = match (
        int64(&body, "value"),
        int64(&body, "value_msat"),
        int64(&body, "expiry"),
    ) {
        (Ok(v), Ok(m), Ok(e)) => (v, m, e),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            return error(StatusCode::BAD_REQUEST, 3, &e);
        }
    };
    if value != 0 && value_msat != 0 {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            2,
            "value and value_msat are mutually exclusive",
        );
    }
    let value_msat = if value != 0 { value * 1000 } else { value_msat };
    let expiry = if expiry == 0 { 86_400 } else { expiry };
    let memo = body
        .get("memo")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let preimage = match body.get("r_preimage").and_then(Value::as_str) {
        Some(text) if !text.is_empty() => match STANDARD.decode(text) {
            Ok(bytes) if bytes.len() == 32 => bytes.try_into().expect("32 bytes"),
            _ => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    2,
                    "payment preimage must be exactly 32 bytes",
                );
            }
        },
        _ => fake::random32(),
    };
    let hash = fake::sha(&preimage).0;
    let mut state = fake.state();
    if state.invoices.contains_key(&hash) {
        return error(
            StatusCode::CONFLICT,
            6,
            "invoice with payment hash already exists",
        );
    }
    let bolt11 = state.node.invoice(
        &preimage,
        (value_msat > 0).then_some(value_msat),
        &memo,
        expiry,
        SystemTime::now(),
    );
    state.add_index += 1;
    let add_index = state.add_index;
    let payment_addr = fake::random32();
    state.invoices.insert(
        hash,
        Invoice {
            memo,
            preimage,
            bolt11: bolt11.clone(),
            value_msat,
            creation_date: fake::now(),
            expiry,
            state: "OPEN",
            amt_paid_msat: 0,
            settle_date: 0,
            add_index,
            settle_index: 0,
            payment_addr,
        },
    );
    axum::Json(json!({
        "r_hash": STANDARD.encode(hash),
        "payment_request": bolt11,
        "add_index": add_index.to_string(),
        "payment_addr": STANDARD.encode(payment_addr),
    }))
    .into_response()
}

async fn lookup_invoice(
    State(fake): State<Lnd>,
    headers: HeaderMap,
    Path(r_hash_str): Path<String>,
) -> Response {
    if let Err((code, message)) = authorize(&fake, &headers, &[Macaroon::Admin, Macaroon::Invoice])
    {
        return error(StatusCode::INTERNAL_SERVER_ERROR, code, message);
    }
    let hash: [u8; 32] = match hex::decode(&r_hash_str) {
        Ok(bytes) if bytes.len() == 32 => bytes.try_into().expect("32 bytes"),
        Ok(bytes) => {
            let message = format!("payment hash must be exactly 32 bytes, is {}", bytes.len());
            return error(StatusCode::INTERNAL_SERVER_ERROR, 2, &message);
        }
        Err(_) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                2,
                "unable to decode payment hash",
            );
        }
    };
    let state = fake.state();
    let Some(invoice) = state.invoices.get(&hash) else {
        return error(StatusCode::NOT_FOUND, 5, "unable to locate invoice");
    };
    let sat = |msat: u64| (msat / 1000).to_string();
    axum::Json(json!({
        "memo": invoice.memo,
        "r_preimage": STANDARD.encode(invoice.preimage),
        "r_hash": STANDARD.encode(hash),
        "value": sat(invoice.value_msat),
        "value_msat": invoice.value_msat.to_string(),
        "settled": invoice.state == "SETTLED",
        "creation_date": invoice.creation_date.to_string(),
        "settle_date": invoice.settle_date.to_string(),
        "payment_request": invoice.bolt11,
        "description_hash": "",
        "expiry": invoice.expiry.to_string(),
        "fallback_addr": "",
        "cltv_expiry": "144",
        "route_hints": [],
        "private": false,
        "add_index": invoice.add_index.to_string(),
        "settle_index": invoice.settle_index.to_string(),
        "amt_paid": invoice.amt_paid_msat.to_string(),
        "amt_paid_sat": sat(invoice.amt_paid_msat),
        "amt_paid_msat": invoice.amt_paid_msat.to_string(),
        "state": invoice.state,
        "htlcs": [],
        "features": {},
        "is_keysend": false,
        "payment_addr": STANDARD.encode(invoice.payment_addr),
        "is_amp": false,
        "amp_invoice_state": {},
        "is_blinded": false,
        "blinded_path_config": null,
    }))
    .into_response()
}

/// `lnrpc.Payment` as protojson writes it; `as_started` shows it as it was when it had just
/// started: in flight, no fee yet, the preimage all zeros.
fn payment_json(hash: &[u8; 32], payment: &Outgoing, as_started: bool) -> Value {
    let status = if as_started {
        "IN_FLIGHT"
    } else {
        payment.status
    };
    let preimage = payment
        .preimage
        .filter(|_| status == "SUCCEEDED")
        .map_or_else(|| "0".repeat(64), hex::encode);
    let fee_msat = if as_started { 0 } else { payment.fee_msat };
    let failure_reason = if as_started {
        "FAILURE_REASON_NONE"
    } else {
        payment.failure_reason
    };
    let sat = |msat: u64| (msat / 1000).to_string();
    json!({
        "payment_hash": hex::encode(hash),
        "value": sat(payment.value_msat),
        "creation_date": (payment.creation_time_ns / 1_000_000_000).to_string(),
        "fee": sat(fee_msat),
        "payment_preimage": preimage,
        "value_sat": sat(payment.value_msat),
        "value_msat": payment.value_msat.to_string(),
        "payment_request": payment.bolt11,
        "status": status,
        "fee_sat": sat(fee_msat),
        "fee_msat": fee_msat.to_string(),
        "creation_time_ns": payment.creation_time_ns.to_string(),
        "htlcs": [],
        "payment_index": payment.payment_index.to_string(),
        "failure_reason": failure_reason,
        "first_hop_custom_records": {},
    })
}

/// The stream of a payment's updates: its current state (an in-flight one unless
/// `no_inflight`), then each change, until it succeeds or fails. A payment just sent
/// (`just_sent`) is first reported as it started: in flight.
fn payment_stream(fake: Lnd, hash: [u8; 32], no_inflight: bool, just_sent: bool) -> Body {
    let changes = fake.inner.changed.subscribe();
    // The phase: 0 nothing sent yet, 1 an in-flight update sent, 2 the outcome sent.
    let stream = futures_util::stream::unfold(
        (fake, changes, 0u8),
        move |(fake, mut changes, phase)| async move {
            if phase == 2 {
                return None;
            }
            loop {
                changes.borrow_and_update();
                let as_started = phase == 0 && just_sent && !no_inflight;
                let (line, terminal) = {
                    let state = fake.state();
                    let payment = state.payments.get(&hash)?;
                    let terminal = !as_started && matches!(payment.status, "SUCCEEDED" | "FAILED");
                    let line = json!({ "result": payment_json(&hash, payment, as_started) });
                    (format!("{line}\n"), terminal)
                };
                if terminal {
                    let next = (fake, changes, 2);
                    return Some((Ok::<_, std::convert::Infallible>(line), next));
                }
                if phase == 0 && !no_inflight {
                    return Some((Ok(line), (fake, changes, 1)));
                }
                if changes.changed().await.is_err() {
                    return None;
                }
            }
        },
    );
    Body::from_stream(stream)
}

async fn send_payment(State(fake): State<Lnd>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err((code, message)) = authorize(&fake, &headers, &[Macaroon::Admin]) {
        return stream_error(StatusCode::INTERNAL_SERVER_ERROR, code, message);
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            3,
            "invalid character looking for beginning of value",
        );
    };
    fake.state().posted.push(("/v2/router/send", body.clone()));
    let bolt11 = body
        .get("payment_request")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let Some(invoice) = fake::parse_bolt11(&bolt11) else {
        return stream_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            2,
            "invalid bech32 string length 0",
        );
    };
    if !invoice.currency_regtest {
        return stream_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            2,
            "invoice not for current active network 'regtest'",
        );
    }
    if invoice.amount_msat.is_none() && int64(&body, "amt").unwrap_or(0) == 0 {
        return stream_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            2,
            "amount must be specified when paying a zero amount invoice",
        );
    }
    if invoice.expired {
        let message = format!("invoice expired. Valid until {} (unix)", invoice.expires_at);
        return stream_error(StatusCode::INTERNAL_SERVER_ERROR, 2, &message);
    }
    let (fee_sat, fee_msat) = match (
        int64(&body, "fee_limit_sat"),
        int64(&body, "fee_limit_msat"),
    ) {
        (Ok(s), Ok(m)) => (s, m),
        _ => return error(StatusCode::BAD_REQUEST, 3, "bad fee limit"),
    };
    if fee_sat != 0 && fee_msat != 0 {
        return stream_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            2,
            "sat and msat arguments are mutually exclusive",
        );
    }
    // No fee limit is a limit of zero.
    let fee_limit_msat = if fee_sat != 0 {
        fee_sat * 1000
    } else {
        fee_msat
    };
    let no_inflight = body
        .get("no_inflight_updates")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let hash = invoice.payment_hash;
    let broken = broken(&fake, "/v2/router/send");
    {
        let mut state = fake.state();
        match state.payments.get(&hash).map(|p| p.status) {
            Some("SUCCEEDED") => {
                return stream_error(StatusCode::CONFLICT, 6, "invoice is already paid");
            }
            Some("IN_FLIGHT") => {
                return stream_error(StatusCode::CONFLICT, 6, "payment is in transition");
            }
            _ => {}
        }
        state.payment_index += 1;
        let payment_index = state.payment_index;
        state.payments.insert(
            hash,
            Outgoing {
                bolt11,
                value_msat: invoice.amount_msat.unwrap_or(0),
                fee_limit_msat,
                fee_msat: 0,
                status: "IN_FLIGHT",
                preimage: None,
                failure_reason: "FAILURE_REASON_NONE",
                creation_time_ns: SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .expect("clock")
                    .as_nanos(),
                payment_index,
            },
        );
        state.payments_started += 1;
        if !state.hold || broken {
            complete(&mut state, &hash);
        }
    }
    fake.bump();
    if broken {
        return not_json();
    }
    let mut response = Response::new(payment_stream(fake, hash, no_inflight, true));
    response.headers_mut().insert(
        "content-type",
        axum::http::HeaderValue::from_static("application/json"),
    );
    response
}

#[derive(serde::Deserialize)]
pub struct TrackQuery {
    #[serde(default)]
    no_inflight_updates: bool,
}

async fn track_payment(
    State(fake): State<Lnd>,
    headers: HeaderMap,
    Path(payment_hash): Path<String>,
    Query(query): Query<TrackQuery>,
) -> Response {
    if let Err((code, message)) = authorize(&fake, &headers, &[Macaroon::Admin]) {
        return stream_error(StatusCode::INTERNAL_SERVER_ERROR, code, message);
    }
    // grpc-gateway's runtime.Bytes: standard base64, else URL-safe, both padded.
    let Ok(bytes) = STANDARD
        .decode(&payment_hash)
        .or_else(|_| URL_SAFE.decode(&payment_hash))
    else {
        let message = format!(
            "type mismatch, parameter: payment_hash, error: illegal base64 data in {payment_hash:?}"
        );
        return error(StatusCode::BAD_REQUEST, 3, &message);
    };
    let Ok(hash) = <[u8; 32]>::try_from(bytes.as_slice()) else {
        let message = format!("invalid hash length of {}, want 32", bytes.len());
        return stream_error(StatusCode::INTERNAL_SERVER_ERROR, 2, &message);
    };
    fake.state().tracked.push(hash);
    if !fake.state().payments.contains_key(&hash) {
        return stream_error(StatusCode::NOT_FOUND, 5, "payment isn't initiated");
    }
    let mut response = Response::new(payment_stream(fake, hash, query.no_inflight_updates, false));
    response.headers_mut().insert(
        "content-type",
        axum::http::HeaderValue::from_static("application/json"),
    );
    response
}
