//! A fake Core Lightning node behind `clnrest`, field by field.
//!
//! Follows `plugins/rest-plugin/src/handlers.rs` and `shared.rs` (CLN v24.11+) and the RPC
//! schemas `doc/schemas/getinfo.json`, `invoice.json`, `listinvoices.json`, `xpay.json`,
//! `pay.json`, `listpays.json`, `listfunds.json`:
//!
//! - `POST /v1/<method>` with a JSON object of named parameters. Success is **201** with the
//!   method's result. An RPC error is 500 `{code, message}`; an unknown method 404
//!   `{code: -32601, message: "Unknown command '<m>'"}`.
//! - The rune (header `Rune`) is checked before the method runs: none is 403 `{1501, "Not
//!   authorized: Missing rune"}`, a wrong one 401 `{1501, "Not authorized: Not derived from
//!   master"}` (checkrune's error).
//! - Millisatoshi fields are integers; hashes and preimages hex.
//! - `invoice {amount_msat, label, description, expiry}`: `label` and `description` required
//!   (-32602), a label used before is 900 `Duplicate label`; answers `{bolt11, payment_hash,
//!   payment_secret, expires_at, created_index}`.
//! - `listinvoices {payment_hash}`: `invoices[]` with `status` `unpaid | paid | expired`, and
//!   for `paid` `amount_received_msat`, `paid_at`, `payment_preimage`.
//! - `xpay {invstring, amount_msat, maxfee, retry_for}` (switchable off: the node then has no
//!   `xpay`); `amount_msat` is required for an invoice without an amount and refused for one
//!   with (-32602 `amount_msat required` / `amount_msat unnecessary`; `pay` says `amount_msat
//!   parameter required` / `… unnecessary`):
//!   answers `{payment_preimage, failed_parts, successful_parts, amount_msat,
//!   amount_sent_msat}`; 207 expired, 219 already paid, 205 no route (also: a fee above
//!   `maxfee`, not enough balance), -32602 an unparsable invoice.
//! - `pay {bolt11, amount_msat, maxfee, retry_for}`: answers `{payment_preimage, destination, payment_hash,
//!   created_at, parts, amount_msat, amount_sent_msat, status: "complete"}`; a second `pay` of
//!   a paid invoice answers its success again without paying (pay.json); 206 when the fee is
//!   above `maxfee`, 205 no route, 207 expired.
//! - Unsure, and modelled conservatively: `xpay` or `pay` of an invoice whose payment is still
//!   pending answers -1 (catchall) without paying.
//! - `listpays {payment_hash}`: `pays[]` with `status` `pending | failed | complete`, and for
//!   `complete` `preimage`, `amount_msat`, `amount_sent_msat`, `completed_at`.
//! - `listfunds`: `outputs[]`, `channels[]` with `our_amount_msat`, `amount_msat`, `state`
//!   (one in `CHANNELD_NORMAL`, one closed `ONCHAIN`).
//! - Routes cost `route_fee_msat`; the rest of the network decides the rest.
//! - Test switches: `hold` keeps payments pending until [`Cln::release`] (the call answers
//!   then); `broken` methods answer 201 with a body that is not JSON (after doing their work).

use plannt_l402::PaymentHash;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use plannt_lightning::LightningError;
use plannt_lightning::dev::DevNetwork;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::{self as fake, NODE_ACCOUNT, NodeKey, Server};

/// An invoice the node issued (`invoice`, `listinvoices`).
pub struct Invoice {
    label: String,
    description: String,
    preimage: [u8; 32],
    bolt11: String,
    amount_msat: Option<u64>,
    /// What it was paid (for an invoice without an amount, what the payer chose).
    received_msat: Option<u64>,
    expires_at: u64,
    status: &'static str,
    paid_at: u64,
    created_index: u64,
}

/// A payment the node made (`xpay`, `pay`, `listpays`).
pub struct Pay {
    hash: [u8; 32],
    bolt11: String,
    /// Whether the invoice names no amount: `amount_msat` is the one the call chose.
    amountless: bool,
    destination: String,
    status: &'static str,
    preimage: Option<[u8; 32]>,
    amount_msat: u64,
    amount_sent_msat: u64,
    created_at: u64,
    completed_at: u64,
    created_index: u64,
    maxfee_msat: u64,
    /// Why it failed: the RPC error its call answers.
    error: Option<(i64, String)>,
}

/// What the fake node knows and how it behaves: tests read and set it through [`Cln::state`].
pub struct Node {
    /// A rune that may call every method.
    pub rune: String,
    /// A rune restricted to `[["method=invoice","method=listinvoices"]]`.
    pub invoice_rune: String,
    node: NodeKey,
    /// The dev network whose invoices the node pays.
    pub network: DevNetwork,
    invoices: Vec<Invoice>,
    pays: Vec<Pay>,
    /// Payments started (`xpay`/`pay` calls that reached the network).
    pub payments_started: usize,
    /// Whether the node has `xpay` (CLN 24.11 and later); without it, `pay` is used.
    pub xpay: bool,
    /// Keep new payments pending until released.
    pub hold: bool,
    /// The routing fee each payment costs.
    pub route_fee_msat: u64,
    /// Methods that answer a body that is not JSON.
    pub broken: HashSet<&'static str>,
    /// Every call: method and parameters.
    pub calls: Vec<(String, Value)>,
}

struct Inner {
    state: Mutex<Node>,
    changed: watch::Sender<u64>,
}

/// A fake Core Lightning node's `clnrest`.
#[derive(Clone)]
pub struct Cln {
    inner: Arc<Inner>,
}

/// An RPC error.
struct RpcError(StatusCode, i64, String);

impl RpcError {
    fn rpc(code: i64, message: impl Into<String>) -> Self {
        RpcError(StatusCode::INTERNAL_SERVER_ERROR, code, message.into())
    }
}

impl IntoResponse for RpcError {
    fn into_response(self) -> Response {
        let body = json!({ "code": self.1, "message": self.2 });
        (self.0, axum::Json(body)).into_response()
    }
}

impl Cln {
    /// A node paying on `network`, with fresh runes.
    pub fn new(network: DevNetwork) -> Self {
        let state = Node {
            rune: format!("{}==", hex::encode(fake::random32())),
            invoice_rune: format!("{}==", hex::encode(fake::random32())),
            node: NodeKey::default(),
            network,
            invoices: Vec::new(),
            pays: Vec::new(),
            payments_started: 0,
            xpay: true,
            hold: false,
            route_fee_msat: 1_500,
            broken: HashSet::new(),
            calls: Vec::new(),
        };
        Cln {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                changed: watch::channel(0).0,
            }),
        }
    }

    /// Its state, to read or change.
    pub fn state(&self) -> MutexGuard<'_, Node> {
        self.inner.state.lock().expect("fake cln state")
    }

    /// Serves `clnrest` on a free loopback port.
    pub async fn serve(&self) -> Server {
        let router = Router::new()
            .route("/v1/{method}", post(rpc))
            .with_state(self.clone());
        fake::serve(router).await
    }

    /// A payer paid the invoice with this hash its amount.
    pub fn settle(&self, hash: &PaymentHash) {
        self.settle_paying(hash, None);
    }

    /// A payer paid the invoice with this hash, which names no amount, `amount_msat`.
    pub fn settle_with(&self, hash: &PaymentHash, amount_msat: u64) {
        self.settle_paying(hash, Some(amount_msat));
    }

    fn settle_paying(&self, hash: &PaymentHash, chosen_msat: Option<u64>) {
        let hash = &hash.0;
        let mut state = self.state();
        let invoice = state
            .invoices
            .iter_mut()
            .find(|i| &fake::sha(&i.preimage).0 == hash)
            .expect("an invoice we issued");
        invoice.status = "paid";
        invoice.paid_at = fake::now();
        invoice.received_msat = chosen_msat.or(invoice.amount_msat);
    }

    /// The invoice with this hash expired unpaid.
    pub fn expire(&self, hash: &PaymentHash) {
        let hash = &hash.0;
        let mut state = self.state();
        let invoice = state
            .invoices
            .iter_mut()
            .find(|i| &fake::sha(&i.preimage).0 == hash)
            .expect("an invoice we issued");
        invoice.status = "expired";
    }

    /// Completes every pending payment.
    pub fn release(&self) {
        {
            let mut state = self.state();
            state.hold = false;
            let pending: Vec<usize> = (0..state.pays.len())
                .filter(|i| state.pays[*i].status == "pending")
                .collect();
            for index in pending {
                if let Err(error) = complete(&mut state, index) {
                    state.pays[index].error = Some(error);
                }
            }
        }
        self.inner.changed.send_modify(|n| *n += 1);
    }
}

/// Routes a pending payment: it completes or fails, once. `Err` is the RPC error.
fn complete(state: &mut Node, index: usize) -> Result<(), (i64, String)> {
    let fee = state.route_fee_msat;
    let network = state.network.clone();
    let pay = &mut state.pays[index];
    if pay.maxfee_msat < fee {
        pay.status = "failed";
        return Err((
            205,
            format!(
                "Failed: could not find a route within maxfee {}msat",
                pay.maxfee_msat
            ),
        ));
    }
    let paid = if pay.amountless {
        network.pay_amount(NODE_ACCOUNT, &pay.bolt11, pay.amount_msat)
    } else {
        network.pay(NODE_ACCOUNT, &pay.bolt11)
    };
    match paid {
        Ok(paid) => {
            pay.status = "complete";
            pay.preimage = Some(*paid.preimage.as_bytes());
            pay.amount_msat = paid.amount_msat;
            pay.amount_sent_msat = paid.amount_msat + fee;
            pay.completed_at = fake::now();
            Ok(())
        }
        Err(error) => {
            pay.status = "failed";
            Err(match error {
                LightningError::NoRoute(why) | LightningError::InsufficientBalance(why) => {
                    (205, format!("Failed: {why}"))
                }
                LightningError::AlreadyPaid => (
                    203,
                    "Destination said it doesn't know invoice: incorrect_or_unknown_payment_details"
                        .to_string(),
                ),
                other => (209, format!("Failed: {other}")),
            })
        }
    }
}

fn pay_json(pay: &Pay) -> Value {
    let mut value = json!({
        "created_index": pay.created_index,
        "payment_hash": hex::encode(pay.hash),
        "status": pay.status,
        "destination": pay.destination,
        "created_at": pay.created_at,
        "bolt11": pay.bolt11,
        "amount_sent_msat": pay.amount_sent_msat,
    });
    if pay.status == "complete" {
        value["completed_at"] = json!(pay.completed_at);
        value["amount_msat"] = json!(pay.amount_msat);
        value["preimage"] = json!(pay.preimage.map(hex::encode));
    }
    value
}

fn invoice_json(invoice: &Invoice) -> Value {
    let hash = fake::sha(&invoice.preimage).0;
    let mut value = json!({
        "label": invoice.label,
        "bolt11": invoice.bolt11,
        "payment_hash": hex::encode(hash),
        "status": invoice.status,
        "description": invoice.description,
        "expires_at": invoice.expires_at,
        "created_index": invoice.created_index,
    });
    if let Some(msat) = invoice.amount_msat {
        value["amount_msat"] = json!(msat);
    }
    if invoice.status == "paid" {
        value["pay_index"] = json!(1);
        value["amount_received_msat"] = json!(invoice.received_msat.unwrap_or(0));
        value["paid_at"] = json!(invoice.paid_at);
        value["payment_preimage"] = json!(hex::encode(invoice.preimage));
        value["updated_index"] = json!(invoice.created_index + 1);
    }
    value
}

fn msat(params: &Value, field: &str) -> Option<u64> {
    match params.get(field)? {
        Value::Number(n) => n.as_u64(),
        Value::String(text) => text.strip_suffix("msat").unwrap_or(text).parse().ok(),
        _ => None,
    }
}

async fn rpc(
    State(fake): State<Cln>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // clnrest checks the rune before it knows whether the method exists.
    let rune = headers.get("rune").and_then(|v| v.to_str().ok());
    match rune {
        None => {
            return RpcError(
                StatusCode::FORBIDDEN,
                1501,
                "Not authorized: Missing rune".into(),
            )
            .into_response();
        }
        // checkrune (lightningd/runes.c): a rune whose restrictions refuse the call is
        // RUNE_NOT_PERMITTED, "Not permitted: <the failed test>".
        Some(rune)
            if rune == fake.state().invoice_rune
                && !matches!(method.as_str(), "invoice" | "listinvoices") =>
        {
            return RpcError(
                StatusCode::UNAUTHORIZED,
                1502,
                format!(
                    "Not permitted: method is not equal to invoice AND method is not equal to listinvoices (method={method})"
                ),
            )
            .into_response();
        }
        Some(rune) if rune != fake.state().rune && rune != fake.state().invoice_rune => {
            return RpcError(
                StatusCode::UNAUTHORIZED,
                1501,
                "Not authorized: Not derived from master".into(),
            )
            .into_response();
        }
        Some(_) => {}
    }
    let params: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(value @ Value::Object(_)) => value,
            _ => {
                return RpcError::rpc(-32602, "params must be an object").into_response();
            }
        }
    };
    fake.state().calls.push((method.clone(), params.clone()));
    let result = match method.as_str() {
        "getinfo" => Ok(getinfo(&fake)),
        "invoice" => invoice(&fake, &params),
        "listinvoices" => Ok(listinvoices(&fake, &params)),
        "listpays" => Ok(listpays(&fake, &params)),
        "listfunds" => Ok(listfunds()),
        "xpay" if fake.state().xpay => pay(&fake, &params, "invstring", true).await,
        "pay" => pay(&fake, &params, "bolt11", false).await,
        other => Err(RpcError(
            StatusCode::NOT_FOUND,
            -32601,
            format!("Unknown command '{other}'"),
        )),
    };
    match result {
        Ok(_) if fake.state().broken.contains(method.as_str()) => {
            (StatusCode::CREATED, "{\"payment_preimage\": ").into_response()
        }
        Ok(value) => (StatusCode::CREATED, axum::Json(value)).into_response(),
        Err(error) => error.into_response(),
    }
}

fn getinfo(fake: &Cln) -> Value {
    let state = fake.state();
    json!({
        "id": state.node.id.to_string(),
        "alias": "PLANNTFAKECLN",
        "color": "0266e4",
        "num_peers": 1,
        "num_pending_channels": 0,
        "num_active_channels": 1,
        "num_inactive_channels": 0,
        "address": [],
        "binding": [{ "type": "ipv4", "address": "127.0.0.1", "port": 9735 }],
        "version": "v25.09",
        "blockheight": 800_000,
        "network": "regtest",
        "fees_collected_msat": 0,
        "lightning-dir": "/home/cln/.lightning/regtest",
        "our_features": { "init": "08a0000a8a5961", "node": "88a0000a8a5961", "channel": "", "invoice": "02000002024100" },
    })
}

fn invoice(fake: &Cln, params: &Value) -> Result<Value, RpcError> {
    let label = match params.get("label") {
        Some(Value::String(label)) => label.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(RpcError::rpc(-32602, "missing required parameter: label")),
    };
    let Some(description) = params.get("description").and_then(Value::as_str) else {
        return Err(RpcError::rpc(
            -32602,
            "missing required parameter: description",
        ));
    };
    let amount_msat = match params.get("amount_msat") {
        Some(Value::String(any)) if any == "any" => None,
        Some(_) => match msat(params, "amount_msat") {
            Some(msat) => Some(msat),
            None => {
                return Err(RpcError::rpc(
                    -32602,
                    "amount_msat: should be a millisatoshi amount",
                ));
            }
        },
        None => {
            return Err(RpcError::rpc(
                -32602,
                "missing required parameter: amount_msat",
            ));
        }
    };
    let expiry = params
        .get("expiry")
        .and_then(Value::as_u64)
        .unwrap_or(604_800);
    let mut state = fake.state();
    if state.invoices.iter().any(|i| i.label == label) {
        return Err(RpcError::rpc(900, format!("Duplicate label '{label}'")));
    }
    let preimage = fake::random32();
    let bolt11 = state.node.invoice(
        &preimage,
        amount_msat,
        description,
        expiry,
        SystemTime::now(),
    );
    let created_index = state.invoices.len() as u64 + 1;
    let expires_at = fake::now() + expiry;
    state.invoices.push(Invoice {
        label,
        description: description.to_string(),
        preimage,
        bolt11: bolt11.clone(),
        amount_msat,
        received_msat: None,
        expires_at,
        status: "unpaid",
        paid_at: 0,
        created_index,
    });
    Ok(json!({
        "bolt11": bolt11,
        "payment_hash": hex::encode(fake::sha(&preimage)),
        "payment_secret": hex::encode(fake::random32()),
        "expires_at": expires_at,
        "created_index": created_index,
    }))
}

fn hash_param(params: &Value) -> Option<[u8; 32]> {
    let text = params.get("payment_hash")?.as_str()?;
    hex::decode(text).ok()?.try_into().ok()
}

fn listinvoices(fake: &Cln, params: &Value) -> Value {
    let wanted = hash_param(params);
    let state = fake.state();
    let invoices: Vec<Value> = state
        .invoices
        .iter()
        .filter(|i| wanted.is_none_or(|h| fake::sha(&i.preimage).0 == h))
        .map(invoice_json)
        .collect();
    json!({ "invoices": invoices })
}

fn listpays(fake: &Cln, params: &Value) -> Value {
    let wanted = hash_param(params);
    let state = fake.state();
    let pays: Vec<Value> = state
        .pays
        .iter()
        .filter(|p| wanted.is_none_or(|h| p.hash == h))
        .map(pay_json)
        .collect();
    json!({ "pays": pays })
}

fn listfunds() -> Value {
    json!({
        "outputs": [{
            "txid": "11".repeat(32),
            "output": 0,
            "amount_msat": 50_000_000,
            "scriptpubkey": "0014".to_string() + &"22".repeat(20),
            "status": "confirmed",
            "blockheight": 799_000,
            "reserved": false,
        }],
        "channels": [
            {
                "peer_id": "02".to_string() + &"33".repeat(32),
                "connected": true,
                "state": "CHANNELD_NORMAL",
                "channel_id": "44".repeat(32),
                "short_channel_id": "799000x1x0",
                "our_amount_msat": 700_000_321,
                "amount_msat": 1_000_000_000,
                "funding_txid": "55".repeat(32),
                "funding_output": 0,
            },
            {
                "peer_id": "03".to_string() + &"66".repeat(32),
                "connected": false,
                "state": "ONCHAIN",
                "channel_id": "77".repeat(32),
                "short_channel_id": "790000x2x1",
                "our_amount_msat": 90_000_000,
                "amount_msat": 100_000_000,
                "funding_txid": "88".repeat(32),
                "funding_output": 1,
            },
        ],
    })
}

/// `xpay` (`invstring`) or `pay` (`bolt11`).
async fn pay(
    fake: &Cln,
    params: &Value,
    invoice_field: &str,
    xpay: bool,
) -> Result<Value, RpcError> {
    let Some(text) = params.get(invoice_field).and_then(Value::as_str) else {
        return Err(RpcError::rpc(
            -32602,
            format!("missing required parameter: {invoice_field}"),
        ));
    };
    let Some(invoice) = fake::parse_bolt11(text) else {
        return Err(RpcError::rpc(
            -32602,
            format!("{invoice_field}: Unparsable invoice"),
        ));
    };
    if !invoice.currency_regtest {
        return Err(RpcError::rpc(-32602, "Invoice is for another network"));
    }
    // xpay says `amount_msat required` / `amount_msat unnecessary`, pay the same with
    // `parameter`.
    let parameter = if xpay { "" } else { " parameter" };
    let amount_msat = match (invoice.amount_msat, msat(params, "amount_msat")) {
        (Some(msat), None) | (None, Some(msat)) => msat,
        (None, None) => {
            return Err(RpcError::rpc(
                -32602,
                format!("amount_msat{parameter} required"),
            ));
        }
        (Some(_), Some(_)) => {
            return Err(RpcError::rpc(
                -32602,
                format!("amount_msat{parameter} unnecessary"),
            ));
        }
    };
    if invoice.expired {
        return Err(RpcError::rpc(207, "Invoice expired"));
    }
    // xpay's default: 5000msat or 1%, whichever is greater.
    let maxfee_msat = msat(params, "maxfee").unwrap_or((amount_msat / 100).max(5_000));
    let hash = invoice.payment_hash;
    let mut changes = fake.inner.changed.subscribe();
    let index = {
        let mut state = fake.state();
        let earlier = state
            .pays
            .iter()
            .position(|p| p.hash == hash && p.status != "failed");
        if let Some(index) = earlier {
            let earlier = &state.pays[index];
            if earlier.status == "pending" {
                return Err(RpcError::rpc(
                    -1,
                    "Payment of this invoice is already in progress",
                ));
            }
            // Complete already.
            if xpay {
                return Err(RpcError::rpc(219, "Already paid"));
            }
            return Ok(pay_answer(earlier, false));
        }
        let created_index = state.pays.len() as u64 + 1;
        state.pays.push(Pay {
            hash,
            bolt11: text.to_string(),
            amountless: invoice.amount_msat.is_none(),
            destination: invoice.payee.clone(),
            status: "pending",
            preimage: None,
            amount_msat,
            amount_sent_msat: 0,
            created_at: fake::now(),
            completed_at: 0,
            created_index,
            maxfee_msat,
            error: None,
        });
        state.payments_started += 1;
        let index = state.pays.len() - 1;
        if !state.hold {
            if let Err((code, message)) = complete(&mut state, index) {
                return Err(RpcError::rpc(code, message));
            }
            return Ok(pay_answer(&state.pays[index], xpay));
        }
        index
    };
    // Held: answer when released.
    loop {
        changes.borrow_and_update();
        {
            let state = fake.state();
            let pay = &state.pays[index];
            match pay.status {
                "complete" => return Ok(pay_answer(pay, xpay)),
                "failed" => {
                    let (code, message) = pay.error.clone().unwrap_or((209, "Failed".into()));
                    return Err(RpcError::rpc(code, message));
                }
                _ => {}
            }
        }
        if changes.changed().await.is_err() {
            return Err(RpcError::rpc(-1, "shutting down"));
        }
    }
}

fn pay_answer(pay: &Pay, xpay: bool) -> Value {
    let preimage = pay.preimage.map(hex::encode);
    if xpay {
        json!({
            "payment_preimage": preimage,
            "failed_parts": 0,
            "successful_parts": 1,
            "amount_msat": pay.amount_msat,
            "amount_sent_msat": pay.amount_sent_msat,
        })
    } else {
        json!({
            "payment_preimage": preimage,
            "destination": pay.destination,
            "payment_hash": hex::encode(pay.hash),
            "created_at": pay.created_at,
            "parts": 1,
            "amount_msat": pay.amount_msat,
            "amount_sent_msat": pay.amount_sent_msat,
            "status": "complete",
        })
    }
}
