//! A minimal MPP session server, on a loopback port, for the tests of the paying client: it
//! follows draft-lightning-session-00 to the field with the wire types of `plannt-l402`, beside
//! a Lightning charge for the same route, both paid on a dev network it serves too
//! (`/_plannt/dev/*`).
//!
//! ```text
//! no credential      -> 402 with two challenges: a charge of `unit` sats and a session whose
//!                       deposit is `deposit` sats
//! charge credential  -> 200 (each payment hash once)
//! open               -> the deposit invoice settled and unspent: a session holding it, less one
//!                       unit for this request; 200
//! bearer             -> one unit debited; a balance short of it: 402 with a session challenge
//!                       whose invoice tops the session up, and the `payment-insufficient`
//!                       problem
//! topUp              -> the top-up invoice settled and unspent: added; 200 with the balance,
//!                       the request not served (as Plannt's gateway does: send it again)
//! bearer on /v1/stream -> a stream that spends the whole balance and ends with the
//!                       `payment-need-topup` event
//! close              -> the balance paid to the return invoice (amountless, from the "gateway"
//!                       account of the dev network); 200 with `refundSats`, `refundStatus`
//! ```
//!
//! Every answer to a session credential carries a `Payment-Receipt` naming the session; an
//! answer served from one says what it debited and the balance after (`debitSats`,
//! `balanceSats`), as Plannt's gateway does, and the stream says it in a
//! `: plannt-session-debit` comment before it ends. The hostile [`SessionScenario`]s: a close
//! that says it refunded and never pays, a server that asks for a top-up again and again,
//! whatever the balance, one that forgets every session, one that reports debits larger than
//! the deposit, and one whose reported balance grows with every request.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use plannt_l402::mpp::{
    ChallengeKey, ChallengeKeys, ChargeExpect, ChargeOffer, NeedTopUp, PAYMENT_RECEIPT,
    PaymentChallenge, PaymentCredential, RefundStatus, SessionDebit, SessionExpect, SessionOffer,
    SessionReceipt, SessionVerified, problem_type,
};
use plannt_l402::{Network, PaymentHash};
use plannt_lightning::dev::{DevNetwork, RECEIVER_ACCOUNT};
use plannt_lightning::{InvoiceRequest, InvoiceState};

use crate::fakes::{now, random32};

/// The route id every challenge names.
pub const ROUTE: &str = "sessions";
/// The path whose answer to a bearer request is a stream that spends the whole balance and
/// ends with the `payment-need-topup` event.
pub const STREAM_PATH: &str = "/v1/stream";
/// The idle timeout every session challenge names, in seconds.
pub const IDLE_SECS: u64 = 300;

/// How the server behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionScenario {
    /// As the draft says.
    Honest,
    /// A close answers `refundStatus: succeeded` with the balance, and pays nothing.
    NoRefund,
    /// Every bearer request is answered as if the session were unknown: a fresh 402.
    Forgetful,
    /// Every bearer request is answered with a top-up challenge, whatever the balance; a
    /// top-up is taken, and the request sent again is refused again.
    TopUpForever,
    /// Debits one unit, and reports a debit of a thousand times the deposit.
    Overdebit,
    /// Debits one unit, reports it, and reports a balance a deposit larger with each request.
    GrowingBalance,
}

/// One session as the server keeps it.
#[derive(Debug, Clone)]
struct Session {
    balance_msat: u64,
    return_invoice: String,
    open: bool,
}

/// What the server shares with the test.
pub struct SessionShared {
    /// The dev network its invoices come from and its refunds are paid on.
    pub network: DevNetwork,
    keys: ChallengeKeys,
    scenario: SessionScenario,
    unit_sats: u64,
    deposit_sats: u64,
    sessions: Mutex<HashMap<PaymentHash, Session>>,
    spent: Mutex<HashSet<PaymentHash>>,
    /// Requests served from a session (open, bearer).
    pub served_in_session: AtomicU64,
    /// Requests served by a charge.
    pub served_by_charge: AtomicU64,
    /// Sessions opened.
    pub opened: AtomicU64,
    /// Top-up challenges sent.
    pub top_up_challenges: AtomicU64,
    /// Refunds paid, in msat.
    pub refunded_msat: AtomicU64,
}

/// The running server.
pub struct SessionServer {
    addr: SocketAddr,
    /// What it shares with the test.
    pub shared: Arc<SessionShared>,
}

impl SessionServer {
    /// Starts a server on `network`: `unit_sats` a request, sessions of `deposit_sats`.
    pub async fn start(
        network: DevNetwork,
        scenario: SessionScenario,
        unit_sats: u64,
        deposit_sats: u64,
    ) -> SessionServer {
        let shared = Arc::new(SessionShared {
            network: network.clone(),
            keys: ChallengeKeys::new(vec![ChallengeKey::from_secret(&random32())]),
            scenario,
            unit_sats,
            deposit_sats,
            sessions: Mutex::new(HashMap::new()),
            spent: Mutex::new(HashSet::new()),
            served_in_session: AtomicU64::new(0),
            served_by_charge: AtomicU64::new(0),
            opened: AtomicU64::new(0),
            top_up_challenges: AtomicU64::new(0),
            refunded_msat: AtomicU64::new(0),
        });
        let router = Router::new()
            .fallback(handle)
            .with_state(shared.clone())
            .merge(network.router());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        SessionServer { addr, shared }
    }

    /// A URL on this server.
    pub fn url(&self, path: &str) -> url::Url {
        format!("http://{}{path}", self.addr).parse().unwrap()
    }

    /// The balance the server holds for a session, in msat (`None`: unknown or closed).
    pub fn balance_msat(&self, session_id: &PaymentHash) -> Option<u64> {
        let sessions = self.shared.sessions.lock().unwrap();
        sessions
            .get(session_id)
            .filter(|s| s.open)
            .map(|s| s.balance_msat)
    }
}

fn realm() -> &'static str {
    "sessions.test"
}

fn invoice(shared: &SessionShared, sats: u64) -> plannt_lightning::IssuedInvoice {
    shared
        .network
        .create_invoice(&InvoiceRequest {
            amount_sats: sats,
            memo: "session test".into(),
            expiry_secs: 600,
        })
        .expect("dev invoice")
}

fn session_challenge(shared: &SessionShared) -> PaymentChallenge {
    let deposit = invoice(shared, shared.deposit_sats);
    shared
        .keys
        .mint_session(&SessionOffer {
            realm: realm(),
            route: ROUTE,
            unit_sats: shared.unit_sats,
            unit_type: Some("request"),
            description: None,
            deposit_invoice: &deposit.bolt11,
            deposit_sats: shared.deposit_sats,
            payment_hash: deposit.payment_hash,
            idle_secs: IDLE_SECS,
            expires_at: now() + 600,
        })
        .expect("session challenge")
}

fn charge_challenge(shared: &SessionShared) -> PaymentChallenge {
    let charge = invoice(shared, shared.unit_sats);
    shared
        .keys
        .mint_charge(&ChargeOffer {
            realm: realm(),
            route: ROUTE,
            amount_sats: shared.unit_sats,
            invoice: &charge.bolt11,
            payment_hash: charge.payment_hash,
            network: Network::Regtest,
            expires_at: now() + 600,
            description: None,
        })
        .expect("charge challenge")
}

/// A 402 with a fresh session challenge, and a charge beside it unless `top_up`.
fn payment_required(shared: &SessionShared, top_up: bool) -> Response {
    let mut headers = HeaderMap::new();
    headers.append(
        header::WWW_AUTHENTICATE,
        session_challenge(shared).to_header_value().parse().unwrap(),
    );
    if top_up {
        // The balance is short: the base scheme's payment-insufficient problem.
        shared.top_up_challenges.fetch_add(1, Ordering::SeqCst);
        headers.insert(
            header::CONTENT_TYPE,
            problem_type::CONTENT_TYPE.parse().unwrap(),
        );
        let body = serde_json::json!({
            "type": problem_type::PAYMENT_INSUFFICIENT,
            "title": "Payment Insufficient",
            "status": 402,
            "detail": "the session's balance cannot pay for this request: top it up",
        });
        return (StatusCode::PAYMENT_REQUIRED, headers, body.to_string()).into_response();
    }
    headers.append(
        header::WWW_AUTHENTICATE,
        charge_challenge(shared).to_header_value().parse().unwrap(),
    );
    (StatusCode::PAYMENT_REQUIRED, headers, "payment required").into_response()
}

fn served(session_id: &PaymentHash, body: String) -> Response {
    let receipt = SessionReceipt::served(session_id, now()).to_header_value();
    (StatusCode::OK, [(PAYMENT_RECEIPT, receipt)], body).into_response()
}

/// What the server reports a request debited and the balance after, in sats, by its scenario.
fn reported(shared: &SessionShared, debit_msat: u64, balance_msat: u64) -> (u64, u64) {
    let served = shared.served_in_session.load(Ordering::SeqCst);
    match shared.scenario {
        SessionScenario::Overdebit => (shared.deposit_sats * 1000, balance_msat / 1000),
        SessionScenario::GrowingBalance => (
            debit_msat / 1000,
            balance_msat / 1000 + shared.deposit_sats * served,
        ),
        _ => (debit_msat / 1000, balance_msat / 1000),
    }
}

/// A request served from a session, its receipt saying what it debited and what is left.
fn debited(
    shared: &SessionShared,
    session_id: &PaymentHash,
    (debit_msat, balance_msat): (u64, u64),
    body: String,
) -> Response {
    let (debit, balance) = reported(shared, debit_msat, balance_msat);
    let receipt =
        SessionReceipt::debited(session_id, debit, Some(balance), now()).to_header_value();
    (StatusCode::OK, [(PAYMENT_RECEIPT, receipt)], body).into_response()
}

/// Whether `hash` is an invoice of ours that was paid, and was not spent before (it is now).
fn spend_paid(shared: &SessionShared, hash: &PaymentHash) -> Option<u64> {
    let amount = match shared.network.invoice_state(hash) {
        InvoiceState::Settled {
            amount_received_msat,
            ..
        } => amount_received_msat,
        _ => return None,
    };
    shared.spent.lock().unwrap().insert(*hash).then_some(amount)
}

async fn handle(
    State(shared): State<Arc<SessionShared>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return payment_required(&shared, false);
    };
    let Ok(credential) = PaymentCredential::parse(value) else {
        return (StatusCode::BAD_REQUEST, "malformed credential").into_response();
    };
    let path = uri.path().to_string();
    if credential.challenge.is_lightning_charge() {
        let expect = ChargeExpect {
            route: ROUTE,
            price_sats: shared.unit_sats,
            now: now(),
        };
        return match shared.keys.verify_charge(&credential, &expect) {
            Ok(v) if spend_paid(&shared, &v.payment_hash).is_some() => {
                shared.served_by_charge.fetch_add(1, Ordering::SeqCst);
                (StatusCode::OK, format!("charged {path}")).into_response()
            }
            _ => payment_required(&shared, false),
        };
    }
    let expect = SessionExpect {
        route: ROUTE,
        now: now(),
    };
    let verified = match shared.keys.verify_session(&credential, &expect) {
        Ok(v) => v,
        Err(_) => return payment_required(&shared, false),
    };
    let unit_msat = shared.unit_sats * 1000;
    match verified {
        SessionVerified::Open {
            session_id,
            return_invoice,
            ..
        } => {
            let Some(paid) = spend_paid(&shared, &session_id) else {
                return payment_required(&shared, false);
            };
            shared.sessions.lock().unwrap().insert(
                session_id,
                Session {
                    balance_msat: paid.saturating_sub(unit_msat),
                    return_invoice,
                    open: true,
                },
            );
            shared.opened.fetch_add(1, Ordering::SeqCst);
            shared.served_in_session.fetch_add(1, Ordering::SeqCst);
            let left = paid.saturating_sub(unit_msat);
            debited(
                &shared,
                &session_id,
                (unit_msat, left),
                format!("opened {path}"),
            )
        }
        SessionVerified::Bearer { session_id } => {
            match shared.scenario {
                SessionScenario::TopUpForever => return payment_required(&shared, true),
                SessionScenario::Forgetful => return payment_required(&shared, false),
                _ => {}
            }
            let mut sessions = shared.sessions.lock().unwrap();
            let Some(session) = sessions.get_mut(&session_id).filter(|s| s.open) else {
                drop(sessions);
                return payment_required(&shared, false);
            };
            if session.balance_msat < unit_msat {
                drop(sessions);
                return payment_required(&shared, true);
            }
            session.balance_msat -= unit_msat;
            let left = session.balance_msat;
            if path == STREAM_PATH {
                // The stream spends what is left, then stops with the need-top-up event.
                let spent = session.balance_msat;
                session.balance_msat = 0;
                drop(sessions);
                shared.served_in_session.fetch_add(1, Ordering::SeqCst);
                let event = NeedTopUp {
                    session_id: session_id.to_hex(),
                    balance_spent: (spent + unit_msat) / 1000,
                    balance_required: shared.unit_sats,
                };
                let (debit, balance) = reported(&shared, spent + unit_msat, 0);
                let debit = SessionDebit {
                    session_id: session_id.to_hex(),
                    debit_sats: debit,
                    balance_sats: Some(balance),
                };
                let body = format!(
                    "data: {{\"n\":1}}\n\n{}{}data: [DONE]\n\n",
                    event.to_sse(),
                    debit.to_sse()
                );
                let receipt =
                    SessionReceipt::holding(&session_id, (spent + unit_msat) / 1000, 0, now())
                        .to_header_value();
                return (
                    StatusCode::OK,
                    [
                        (
                            header::CONTENT_TYPE.as_str(),
                            "text/event-stream".to_string(),
                        ),
                        (PAYMENT_RECEIPT, receipt),
                    ],
                    body,
                )
                    .into_response();
            }
            drop(sessions);
            shared.served_in_session.fetch_add(1, Ordering::SeqCst);
            debited(
                &shared,
                &session_id,
                (unit_msat, left),
                format!("bearer {path}"),
            )
        }
        SessionVerified::TopUp {
            session_id,
            top_up_hash,
            ..
        } => {
            let Some(paid) = spend_paid(&shared, &top_up_hash) else {
                return payment_required(&shared, true);
            };
            let mut sessions = shared.sessions.lock().unwrap();
            let Some(session) = sessions.get_mut(&session_id).filter(|s| s.open) else {
                drop(sessions);
                return payment_required(&shared, false);
            };
            session.balance_msat += paid;
            let body = serde_json::json!({
                "sessionId": session_id.to_hex(),
                "toppedUp": paid / 1000,
                "balance": session.balance_msat / 1000,
            });
            drop(sessions);
            served(&session_id, body.to_string())
        }
        SessionVerified::Close { session_id } => {
            let session = {
                let mut sessions = shared.sessions.lock().unwrap();
                match sessions.get_mut(&session_id).filter(|s| s.open) {
                    Some(s) => {
                        s.open = false;
                        s.clone()
                    }
                    None => {
                        drop(sessions);
                        return payment_required(&shared, false);
                    }
                }
            };
            let refund_sats = session.balance_msat / 1000;
            let status = if refund_sats == 0 {
                RefundStatus::Skipped
            } else if shared.scenario == SessionScenario::NoRefund {
                RefundStatus::Succeeded
            } else {
                match shared.network.pay_amount(
                    RECEIVER_ACCOUNT,
                    &session.return_invoice,
                    refund_sats * 1000,
                ) {
                    Ok(_) => {
                        shared
                            .refunded_msat
                            .fetch_add(refund_sats * 1000, Ordering::SeqCst);
                        RefundStatus::Succeeded
                    }
                    Err(_) => RefundStatus::Failed,
                }
            };
            let receipt =
                SessionReceipt::closed(&session_id, refund_sats, status, now()).to_header_value();
            (StatusCode::OK, [(PAYMENT_RECEIPT, receipt)], "closed").into_response()
        }
        _ => payment_required(&shared, false),
    }
}
