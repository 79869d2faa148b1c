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
//!   one of another network. `amt` or `amt_msat` (mutually exclusive) is the amount of an
//!   invoice without one, which is refused without it (`amount must be specified when paying a
//!   zero amount invoice`); an invoice with an amount is refused with it (`amount must not be
//!   specified when paying a non-zero  amount invoice`, lnd's double space included).
//!   `AddInvoice` without `value` or `value_msat` issues an invoice without an amount. A hash already paid is refused with
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

mod pay;

use pay::{complete, send_payment, track_payment};

/// The balance the node's channels start with, in msat.
pub const CHANNEL_BALANCE_MSAT: u64 = 800_000_123;

/// An invoice the node issued.
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

/// A payment the node made.
pub struct Outgoing {
    bolt11: String,
    /// Whether the invoice names no amount: `value_msat` is the `amt`/`amt_msat` sent.
    amountless: bool,
    value_msat: u64,
    fee_limit_msat: u64,
    fee_msat: u64,
    status: &'static str,
    preimage: Option<[u8; 32]>,
    failure_reason: &'static str,
    creation_time_ns: u128,
    payment_index: u64,
}

/// What the fake node knows and how it behaves: tests read and set it through [`Lnd::state`].
pub struct Node {
    /// The admin macaroon, hex: may do everything.
    pub admin_macaroon: String,
    /// The invoice macaroon, hex: issues and reads invoices only.
    pub invoice_macaroon: String,
    node: NodeKey,
    /// The dev network whose invoices the node pays.
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
    /// The routing fee each payment costs.
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
    /// A node paying on `network`, with fresh macaroons.
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

    /// Its state, to read or change.
    pub fn state(&self) -> MutexGuard<'_, Node> {
        self.inner.state.lock().expect("fake lnd state")
    }

    fn bump(&self) {
        self.inner.changed.send_modify(|n| *n += 1);
    }

    /// Serves the REST API on a free loopback port, over plain HTTP.
    pub async fn serve(&self) -> Server {
        fake::serve(self.router()).await
    }

    /// Serves the REST API over TLS, with a self-signed certificate to pin.
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

    /// A payer paid the invoice with this hash its amount.
    pub fn settle(&self, hash: &PaymentHash) {
        let amount = self.state().invoices.get(&hash.0).map(|i| i.value_msat);
        self.settle_with(hash, amount.expect("an invoice we issued"));
    }

    /// A payer paid the invoice with this hash `amt_paid_msat` (an invoice without an amount
    /// is paid what its payer chose).
    pub fn settle_with(&self, hash: &PaymentHash, amt_paid_msat: u64) {
        let hash = &hash.0;
        let mut state = self.state();
        state.settle_index += 1;
        let index = state.settle_index;
        let invoice = state.invoices.get_mut(hash).expect("an invoice we issued");
        invoice.state = "SETTLED";
        invoice.amt_paid_msat = amt_paid_msat;
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
