//! Prepaid sessions on a metered route (the MPP `session` intent, draft-lightning-session-00):
//! the 402's session challenge, and what each action of a session credential does.
//!
//! ```text
//! 402               -> beside the single-use challenges, `intent="session"` with a deposit
//!                      invoice of max(deposit_sats, this request's price)
//! open              -> the deposit's preimage and an amountless return invoice on the gateway's
//!                      network that outlives the idle timeout: a balance of the deposit,
//!                      durable before anything else; then served as a bearer request
//! bearer            -> hold this request's price (the rule's quote, its most) or 402 with a
//!                      top-up challenge; forward; settle to the usage the answer reports
//!                      (`usage`, or the stream's last usage chunk; counted with the tokenizer
//!                      when there is none); a stream that outgrows its hold holds more, and
//!                      when the balance cannot, gets `payment-need-topup` and `data: [DONE]`;
//!                      the answer says what it cost: a JSON answer's `Payment-Receipt` has
//!                      `debitSats` and `balanceSats`, a stream's has `heldSats` and
//!                      `balanceSats`, and the stream a `: plannt-session-debit` comment with
//!                      the debit and the balance just before its `data: [DONE]`
//! topUp             -> a fresh deposit invoice's amount added (each deposit counts once);
//!                      answered 200 with the balance, not forwarded
//! close             -> `closing` with the balance owed, durably; the refund paid to the return
//!                      invoice; `closed`; the receipt with `refundSats` and `refundStatus`
//! idle              -> a task closes and refunds sessions with no request for `idle_secs`
//! ```
//!
//! Sessions are offered only when the paywall has a session store and its Lightning backend can
//! pay an amountless invoice ([`plannt_lightning::Payer::can_pay_amountless`]): a backend that
//! can only receive could never refund, so its routes offer single-use payments only.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use plannt_l402::mpp::{
    self, NeedTopUp, PaymentCredential, Problem, RefundStatus, SessionDebit, SessionExpect,
    SessionOffer, SessionReceipt, SessionVerified, problem_type,
};
use plannt_l402::{Dialect, PaymentHash, Reason};
use plannt_lightning::{InvoiceRequest, Payer, PaymentLookup};
use plannt_meter::{PriceRule, Quote, Usage};
use serde_json::{Value, json};
use tower::{Service, ServiceExt};

use super::Paywall;
use super::answers::{Challenged, invoice_network, unavailable, with_problem};
use super::headers::{PAYMENT_RECEIPT, strip_credentials};
use crate::detach::Detachable;
use crate::routes::SessionPolicy;
use crate::store::StoreError;
use crate::store::sessions::{
    BeginClose, Hold, NewSession, Open, REFUND_ATTEMPTS, Session, SessionState, SessionStore,
    TopUp, refund_backoff,
};

/// The largest JSON answer read to find its usage.
const MAX_JSON_ANSWER: usize = 16 * 1024 * 1024;

/// What sessions need: where balances live and the wallet that pays refunds.
#[derive(Clone)]
pub struct SessionBackend {
    /// The balances.
    pub store: Arc<dyn SessionStore>,
    /// Pays refunds to return invoices; it must pay amountless invoices.
    pub payer: Arc<dyn Payer>,
}

impl Paywall {
    /// Sessions for the routes that configure them, if `backend`'s payer can pay a refund: a
    /// payer that cannot pay an amountless invoice leaves every route single-use (and says so
    /// in the log).
    pub fn with_sessions(mut self, backend: SessionBackend) -> Self {
        if backend.payer.can_pay_amountless() {
            self.sessions = Some(backend);
        } else if self
            .routes
            .load()
            .routes()
            .iter()
            .any(|r| r.session.is_some())
        {
            tracing::warn!(
                backend = backend.payer.name(),
                "the Lightning backend cannot pay an amountless invoice, so it could not refund a session: sessions are not offered"
            );
        }
        self
    }

    /// The session store, when sessions are offered.
    pub fn session_store(&self) -> Option<&Arc<dyn SessionStore>> {
        self.sessions.as_ref().map(|s| &s.store)
    }

    /// The session policy of a request's route, when sessions are offered on it.
    pub(super) fn session_policy(&self, at: &Challenged<'_>) -> Option<SessionPolicy> {
        let policy = at.route.session?;
        (self.sessions.is_some() && at.route.meter.is_some() && at.offered.contains(&Dialect::Mpp))
            .then_some(policy)
    }

    /// A session challenge with a fresh deposit invoice of `deposit_sats`: the
    /// `WWW-Authenticate` value, or `None` (logged) when the backend or the keys fail.
    pub(super) async fn session_challenge(
        &self,
        at: &Challenged<'_>,
        policy: SessionPolicy,
        deposit_sats: u64,
    ) -> Option<String> {
        let rule = at.route.meter.as_ref()?;
        let request = InvoiceRequest {
            amount_sats: deposit_sats,
            memo: format!("Plannt session deposit: {}", at.route.id),
            expiry_secs: self.options.invoice_expiry_secs,
        };
        let issue = self.receiver.create_invoice(&request);
        let invoice = match tokio::time::timeout(self.options.invoice_timeout, issue).await {
            Ok(Ok(invoice)) => invoice,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "the Lightning backend could not issue a deposit invoice");
                return None;
            }
            Err(_) => {
                tracing::error!("the Lightning backend did not issue a deposit invoice in time");
                return None;
            }
        };
        invoice_network(&invoice.bolt11)?;
        let now = self.options.clock.now();
        let minted = self.mpp_keys.mint_session(&SessionOffer {
            realm: &self.options.mpp_realm,
            route: &at.route.id,
            unit_sats: unit_sats(rule),
            unit_type: Some("token"),
            description: None,
            deposit_invoice: &invoice.bolt11,
            deposit_sats,
            payment_hash: invoice.payment_hash,
            idle_secs: policy.idle_secs,
            expires_at: invoice
                .expires_at
                .min(now + self.options.invoice_expiry_secs),
        });
        match minted {
            Ok(challenge) => Some(challenge.to_header_value()),
            Err(e) => {
                tracing::error!(error = %e, "cannot mint a session challenge");
                None
            }
        }
    }

    /// Answers a request that carries a session credential.
    pub(super) async fn session_answer<S>(
        self: &Arc<Self>,
        at: &Challenged<'_>,
        quote: &Quote,
        credential: PaymentCredential,
        request: Request<Body>,
        inner: S,
    ) -> Response
    where
        S: Service<Request<Body>, Response = Response, Error = Infallible> + Send + 'static,
        S::Future: Send,
    {
        let (Some(policy), Some(backend)) = (self.session_policy(at), self.sessions.clone()) else {
            let e = mpp::VerifyError::Unsupported {
                method: credential.challenge.method.clone(),
                intent: credential.challenge.intent.clone(),
            };
            return with_problem(self.refuse(e.reason(), &e.to_string()), e.problem());
        };
        let now = self.options.clock.now();
        let expect = SessionExpect {
            route: &at.route.id,
            now,
        };
        let verified = match self.mpp_keys.verify_session(&credential, &expect) {
            Ok(verified) => verified,
            Err(e) if e.reason().pay_again() => {
                self.metrics.rejected(e.reason());
                let answer = self.challenge(at, Some((e.reason(), e.to_string()))).await;
                return with_problem(answer, e.problem());
            }
            Err(e) => {
                return with_problem(self.refuse(e.reason(), &e.to_string()), e.problem());
            }
        };
        let store = &backend.store;
        let session_id = verified.session_id();
        match verified {
            SessionVerified::Open {
                deposit_sats,
                return_invoice,
                ..
            } => {
                if let Err(why) = check_return_invoice(
                    &return_invoice,
                    backend.payer.as_ref(),
                    policy.idle_secs,
                    now,
                ) {
                    return with_problem(
                        self.refuse(Reason::Malformed, &why),
                        Problem::for_reason(Reason::Malformed, why.clone()),
                    );
                }
                let new = NewSession {
                    id: session_id,
                    route: at.route.id.clone(),
                    deposit: deposit_sats,
                    return_invoice,
                    idle_secs: policy.idle_secs,
                    now,
                };
                match store.open(&new).await {
                    Ok(Open::Opened(_)) => {
                        self.ledger
                            .deposited(now, &at.route.id, deposit_sats, &session_id);
                        tracing::info!(session = %session_id.to_hex(), deposit_sats, route = %at.route.id, "session opened");
                    }
                    Ok(Open::Exists(session)) if session.route == at.route.id => {}
                    Ok(Open::Exists(_)) | Ok(Open::DepositSpent) => {
                        let why = "this deposit was already counted: pay a new deposit invoice"
                            .to_string();
                        self.metrics.rejected(Reason::Spent);
                        let answer = self.challenge(at, Some((Reason::Spent, why.clone()))).await;
                        return with_problem(answer, Problem::for_reason(Reason::Spent, why));
                    }
                    Err(e) => return self.store_down(e),
                }
                self.bearer(at, quote, policy, &backend, session_id, request, inner)
                    .await
            }
            SessionVerified::Bearer { .. } => {
                self.bearer(at, quote, policy, &backend, session_id, request, inner)
                    .await
            }
            SessionVerified::TopUp {
                top_up_hash,
                amount_sats,
                ..
            } => match store
                .top_up(&session_id, &top_up_hash, amount_sats, now)
                .await
            {
                Ok(TopUp::Credited { balance }) => {
                    self.ledger
                        .deposited(now, &at.route.id, amount_sats, &top_up_hash);
                    let body = json!({
                        "sessionId": session_id.to_hex(),
                        "toppedUp": amount_sats,
                        "balance": balance,
                    });
                    with_receipt(
                        (StatusCode::OK, axum::Json(body)).into_response(),
                        &SessionReceipt::served(&session_id, now),
                    )
                }
                Ok(TopUp::DepositSpent) => {
                    let why = "this top-up was already counted: pay a new invoice".to_string();
                    self.metrics.rejected(Reason::Spent);
                    let answer = self.challenge(at, Some((Reason::Spent, why.clone()))).await;
                    with_problem(answer, Problem::for_reason(Reason::Spent, why))
                }
                Ok(TopUp::NotOpen) => self.session_gone(at, session_id).await,
                Ok(TopUp::Unknown) => self.unknown_session(),
                Err(e) => self.store_down(e),
            },
            SessionVerified::Close { .. } => {
                let closed =
                    close_session(store.as_ref(), backend.payer.as_ref(), &session_id, now).await;
                if let Ok(Closed::Done(session)) = &closed {
                    self.ledger_refund(session, now);
                }
                match closed {
                    Ok(Closed::Done(session) | Closed::Already(session)) => {
                        let status = session.refund_status.unwrap_or(RefundStatus::Failed);
                        let body = json!({
                            "sessionId": session_id.to_hex(),
                            "spent": session.spent,
                            "refundSats": session.refund,
                            "refundStatus": status.as_str(),
                        });
                        let receipt =
                            SessionReceipt::closed(&session_id, session.refund, status, now);
                        with_receipt((StatusCode::OK, axum::Json(body)).into_response(), &receipt)
                    }
                    Ok(Closed::Busy) => conflict(
                        "requests of this session are still being answered: close it after they finish",
                    ),
                    Ok(Closed::Paying) => conflict(
                        "this session is being closed and its refund paid: ask again shortly",
                    ),
                    Ok(Closed::Unknown) => self.unknown_session(),
                    Err(e) => self.store_down(e),
                }
            }
            _ => self.unknown_session(),
        }
    }

    /// Serves a request from a session: hold its price, forward, settle to its usage.
    #[allow(clippy::too_many_arguments)]
    async fn bearer<S>(
        self: &Arc<Self>,
        at: &Challenged<'_>,
        quote: &Quote,
        policy: SessionPolicy,
        backend: &SessionBackend,
        session_id: PaymentHash,
        mut request: Request<Body>,
        inner: S,
    ) -> Response
    where
        S: Service<Request<Body>, Response = Response, Error = Infallible> + Send + 'static,
        S::Future: Send,
    {
        let now = self.options.clock.now();
        let store = backend.store.clone();
        let balance_after_hold = match store.hold(&session_id, quote.sats, now).await {
            Ok(Hold::Held { balance }) => balance,
            Ok(Hold::Short { balance, .. }) => {
                return self
                    .top_up_required(at, policy, session_id, balance, quote.sats)
                    .await;
            }
            Ok(Hold::NotOpen) => return self.session_gone(at, session_id).await,
            Ok(Hold::Unknown) => return self.unknown_session(),
            Err(e) => return self.store_down(e),
        };
        let Some(rule) = at.route.meter.clone() else {
            return self.unknown_session();
        };
        strip_credentials(request.headers_mut());
        let meter = Meter {
            paywall: Arc::downgrade(self),
            route: at.route.id.clone(),
            store: store.clone(),
            session_id,
            rule,
            quote: quote.clone(),
            held: quote.sats,
            clock: self.options.clock.clone(),
        };
        // The upstream call goes on in a task of its own if the client hangs up (detach.rs):
        // the hold is settled whatever happens.
        let task = Detachable::new(self.in_flight.track_future(async move {
            let response = inner.oneshot(request).await.unwrap_or_else(|e| match e {});
            meter.answer(response).await
        }));
        let (mut response, debited) = match task.await {
            Ok(answer) => answer,
            Err(_) => {
                return super::gateway_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the request failed inside the gateway",
                );
            }
        };
        // Counted without sats: the debit is added to the route's earnings as the hold settles.
        self.metrics.accepted(&at.route.id, 0);
        let at_now = self.options.clock.now();
        // A JSON answer was settled before it is sent: its receipt gives the debit and the
        // balance after. A stream is settled as it ends: its receipt gives the hold, and the
        // debit follows in the stream, before its `data: [DONE]`.
        let receipt = match debited {
            Debited::Settled { debit, balance } => {
                SessionReceipt::debited(&session_id, debit, balance, at_now)
            }
            Debited::Streaming => {
                SessionReceipt::holding(&session_id, quote.sats, balance_after_hold, at_now)
            }
        };
        if let Ok(value) = HeaderValue::from_str(&receipt.to_header_value()) {
            response.headers_mut().insert(PAYMENT_RECEIPT, value);
        }
        response
    }

    /// Counts a refund a close just paid in the earnings ledger (one that failed or was not
    /// owed earns nothing back).
    fn ledger_refund(&self, session: &Session, now: u64) {
        if session.refund_status == Some(RefundStatus::Succeeded) && session.refund > 0 {
            self.ledger.refunded(now, &session.route, session.refund);
        }
    }

    /// A 402 for a session whose balance cannot cover this request: a top-up challenge only.
    async fn top_up_required(
        &self,
        at: &Challenged<'_>,
        policy: SessionPolicy,
        session_id: PaymentHash,
        balance: u64,
        price: u64,
    ) -> Response {
        if let Some(too_many) = self.rate_limit(at.client) {
            return too_many;
        }
        let deposit = policy.deposit_sats.max(price.saturating_sub(balance));
        let Some(challenge) = self.session_challenge(at, policy, deposit).await else {
            return unavailable(
                "lightning_unavailable",
                "the gateway cannot issue a top-up invoice right now; nothing was charged, retry shortly",
            );
        };
        let problem = Problem {
            kind: problem_type::PAYMENT_INSUFFICIENT.to_string(),
            title: "Payment Insufficient".to_string(),
            status: 402,
            detail: Some(format!(
                "session {} holds {balance} sats; this request may cost {price}: top it up with the invoice of this challenge (action topUp), then send the request again",
                session_id.to_hex()
            )),
            challenge_id: None,
        };
        let mut response = (
            StatusCode::PAYMENT_REQUIRED,
            [(header::CONTENT_TYPE, problem_type::CONTENT_TYPE)],
            problem.to_json(),
        )
            .into_response();
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::try_from(challenge) {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }

    /// A 402 for a session that is closing or closed: open a new one.
    async fn session_gone(&self, at: &Challenged<'_>, session_id: PaymentHash) -> Response {
        let why = format!(
            "session {} is closed: open a new one with the session challenge",
            session_id.to_hex()
        );
        self.metrics.rejected(Reason::Expired);
        let answer = self
            .challenge(at, Some((Reason::Expired, why.clone())))
            .await;
        with_problem(answer, Problem::for_reason(Reason::Expired, why))
    }

    /// A 401 for a session this gateway does not know.
    fn unknown_session(&self) -> Response {
        let why = "no session with this id is open here: open one with the session challenge";
        with_problem(
            self.refuse(Reason::BadSignature, why),
            Problem::for_reason(Reason::BadSignature, why),
        )
    }

    fn store_down(&self, e: StoreError) -> Response {
        self.metrics.store_failure();
        tracing::error!(error = %e, "session store unavailable");
        unavailable(
            "store_unavailable",
            "the gateway cannot read session balances right now; nothing was charged, retry shortly",
        )
    }

    /// Starts the task that, every `every` (the first time at once): gives back the holds of
    /// requests a crash left behind, older than `stale_after` (longer than an upstream may take
    /// to start answering, or a stream may go without renewing its hold); finishes the closes a crash left half done and retries the refunds that failed;
    /// and closes and refunds idle sessions. It stops with the paywall.
    pub fn spawn_session_closer(
        self: &Arc<Self>,
        every: Duration,
        stale_after: Duration,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let backend = self.sessions.clone()?;
        let weak = Arc::downgrade(self);
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(paywall) = weak.upgrade() else {
                    return;
                };
                let now = paywall.options.clock.now();
                drop(paywall);
                match backend
                    .store
                    .release_stale(now, stale_after.as_secs())
                    .await
                {
                    Ok(released) => {
                        for (id, sats) in released {
                            tracing::warn!(session = %id.to_hex(), sats, "gave back the holds of requests that never finished (a crash?)");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "could not look for stale holds"),
                }
                match recover_closing(backend.store.as_ref(), backend.payer.as_ref(), now).await {
                    Ok(finished) if finished.is_empty() => {}
                    Ok(finished) => {
                        tracing::info!(sessions = finished.len(), "finished owed refunds");
                        if let Some(paywall) = weak.upgrade() {
                            for session in &finished {
                                paywall.ledger_refund(session, now);
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "could not finish owed refunds"),
                }
                match close_idle(backend.store.as_ref(), backend.payer.as_ref(), now).await {
                    Ok(closed) if closed.is_empty() => {}
                    Ok(closed) => {
                        tracing::info!(sessions = closed.len(), "closed idle sessions");
                        if let Some(paywall) = weak.upgrade() {
                            for session in &closed {
                                paywall.ledger_refund(session, now);
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "could not close idle sessions"),
                }
            }
        }))
    }
}

/// The whole-sat price of one output token under `rule`, rounded up (at least 1): the session
/// challenge's `amount` per `unitType` `token`. Requests are debited by the rule, to the
/// millisat, not by this figure.
fn unit_sats(rule: &PriceRule) -> u64 {
    rule.models
        .values()
        .map(|p| p.output_per_1k.msat.div_ceil(1_000_000))
        .max()
        .unwrap_or(1)
        .max(1)
}

/// The checks a return invoice must pass at open: a BOLT11 invoice without an amount, on the
/// network the gateway pays on, payable until at least the idle timeout has passed.
fn check_return_invoice(
    bolt11: &str,
    payer: &dyn Payer,
    idle_secs: u64,
    now: u64,
) -> Result<(), String> {
    let decoded = plannt_lightning::decode_invoice(bolt11)
        .map_err(|e| format!("the return invoice is not a BOLT11 invoice: {e}"))?;
    if decoded.amount_msat.is_some() {
        return Err("the return invoice names an amount; give one without, so the gateway can refund any balance".into());
    }
    if decoded.network != payer.network() {
        return Err(format!(
            "the return invoice is for {}, the gateway pays on {}",
            decoded.network,
            payer.network()
        ));
    }
    if decoded.expires_at() < now.saturating_add(idle_secs) {
        return Err(format!(
            "the return invoice expires before the session's idle timeout of {idle_secs} s: give one that stays payable at least that long"
        ));
    }
    Ok(())
}

fn with_receipt(mut response: Response, receipt: &SessionReceipt) -> Response {
    if let Ok(value) = HeaderValue::from_str(&receipt.to_header_value()) {
        response.headers_mut().insert(PAYMENT_RECEIPT, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn conflict(message: &str) -> Response {
    let body = json!({ "error": "Conflict", "message": message });
    let mut response = (StatusCode::CONFLICT, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// The session credential of a request, if it carries one (`Authorization: Payment` with
/// `intent="session"`); other credentials are left to the single-use path.
pub(super) fn session_credential(headers: &HeaderMap) -> Option<PaymentCredential> {
    let values = headers.get_all(header::AUTHORIZATION);
    let credential = PaymentCredential::from_headers(values.iter().map(HeaderValue::as_bytes))
        .ok()
        .flatten()?;
    (credential.challenge.intent == mpp::INTENT_SESSION).then_some(credential)
}

/// What a close came to.
pub(crate) enum Closed {
    /// Closed now, with its refund's outcome.
    Done(Session),
    /// Closed before: as it was closed (nothing paid now).
    Already(Session),
    /// Requests in flight: not closed.
    Busy,
    /// Another close is paying the refund.
    Paying,
    /// No such session.
    Unknown,
}

/// The most a refund may spend on routing fees: 1 %, at least 10 sats.
fn refund_fee_msat(refund_sats: u64) -> u64 {
    (refund_sats / 100).max(10).saturating_mul(1000)
}

/// Closes a session: `closing` (durable), the refund paid, `closed`; a refund that fails is
/// left owed (`closing`), for [`recover_closing`] to try again.
pub(crate) async fn close_session(
    store: &dyn SessionStore,
    payer: &dyn Payer,
    id: &PaymentHash,
    now: u64,
) -> Result<Closed, StoreError> {
    match store.begin_close(id, now).await? {
        BeginClose::Closing(session) => Ok(Closed::Done(
            pay_refund(store, payer, &session, false).await?,
        )),
        BeginClose::Busy => Ok(Closed::Busy),
        BeginClose::AlreadyClosing(_) => Ok(Closed::Paying),
        BeginClose::Closed(session) => Ok(Closed::Already(session)),
        BeginClose::Unknown => Ok(Closed::Unknown),
    }
}

/// Pays a `closing` session's refund and records `closed` with how it went; a payment that
/// fails leaves it `closing`, owed, unless this was the `last` try (then `failed` for good).
/// Returns the session as stored after.
async fn pay_refund(
    store: &dyn SessionStore,
    payer: &dyn Payer,
    session: &Session,
    last: bool,
) -> Result<Session, StoreError> {
    let status = if session.refund == 0 {
        RefundStatus::Skipped
    } else {
        let msat = session.refund.saturating_mul(1000);
        match payer
            .pay_amount(
                &session.return_invoice,
                msat,
                refund_fee_msat(session.refund),
            )
            .await
        {
            Ok(_) => RefundStatus::Succeeded,
            Err(e) if last => {
                tracing::error!(session = %session.id.to_hex(), refund_sats = session.refund, attempts = session.refund_attempts, error = %e, "the refund of a session could not be paid, and is not tried again: it is recorded failed");
                RefundStatus::Failed
            }
            Err(e) => {
                tracing::warn!(session = %session.id.to_hex(), refund_sats = session.refund, attempts = session.refund_attempts, error = %e, "the refund of a session could not be paid; it stays owed and is tried again later");
                return Ok(session.clone());
            }
        }
    };
    tracing::info!(session = %session.id.to_hex(), refund_sats = session.refund, status = status.as_str(), "session closed");
    Ok(store
        .finish_close(&session.id, status)
        .await?
        .unwrap_or_else(|| session.clone()))
}

/// Finishes every refund owed at `now`: the closes a crash left `closing`, and the refunds that
/// failed, each once nobody holds its claim. Each try is claimed first (one replica at a time,
/// until the next try's time, backing off), and the backend is asked whether an earlier try
/// went out (then it is recorded, not paid again); one it never saw, or saw fail, is paid now;
/// one still in flight is left for a later look. After [`REFUND_ATTEMPTS`] tries, or once the
/// return invoice has expired, a refund that did not go out is recorded `failed` for good.
/// Returns the sessions it finished, as they are after.
pub(crate) async fn recover_closing(
    store: &dyn SessionStore,
    payer: &dyn Payer,
    now: u64,
) -> Result<Vec<Session>, StoreError> {
    let mut finished = Vec::new();
    for owed in store.closing().await? {
        if owed.refund_at > now {
            continue;
        }
        let next = now.saturating_add(refund_backoff(owed.refund_attempts + 1));
        let Some(session) = store.claim_refund(&owed.id, now, next).await? else {
            continue;
        };
        if session.refund == 0 {
            finished.extend(
                store
                    .finish_close(&session.id, RefundStatus::Skipped)
                    .await?,
            );
            continue;
        }
        let Ok(invoice) = plannt_lightning::decode_invoice(&session.return_invoice) else {
            finished.extend(
                store
                    .finish_close(&session.id, RefundStatus::Failed)
                    .await?,
            );
            continue;
        };
        match payer.lookup_payment(&invoice.payment_hash).await {
            Ok(PaymentLookup::Succeeded(_)) => {
                finished.extend(
                    store
                        .finish_close(&session.id, RefundStatus::Succeeded)
                        .await?,
                );
            }
            Ok(PaymentLookup::Pending) => {
                tracing::warn!(session = %session.id.to_hex(), "a refund is still in flight; looked at again later");
            }
            Ok(PaymentLookup::Failed(_) | PaymentLookup::NotFound)
                if invoice.expires_at() <= now =>
            {
                tracing::error!(session = %session.id.to_hex(), refund_sats = session.refund, "the return invoice expired before the refund could be paid: it is recorded failed");
                finished.extend(
                    store
                        .finish_close(&session.id, RefundStatus::Failed)
                        .await?,
                );
            }
            Ok(PaymentLookup::Failed(_) | PaymentLookup::NotFound) => {
                let last = session.refund_attempts >= REFUND_ATTEMPTS;
                let after = pay_refund(store, payer, &session, last).await?;
                if after.state == SessionState::Closed {
                    finished.push(after);
                }
            }
            Err(e) => {
                tracing::warn!(session = %session.id.to_hex(), error = %e, "cannot ask the backend whether a refund went out; left closing, never paid twice");
            }
        }
    }
    Ok(finished)
}

/// Closes and refunds every session idle at `now`. Returns those it closed.
pub(crate) async fn close_idle(
    store: &dyn SessionStore,
    payer: &dyn Payer,
    now: u64,
) -> Result<Vec<Session>, StoreError> {
    let mut closed = Vec::new();
    for id in store.idle(now).await? {
        if let Closed::Done(session) = close_session(store, payer, &id, now).await? {
            closed.push(session);
        }
    }
    Ok(closed)
}

/// Settles one request's hold by what its answer used.
struct Meter {
    /// Whose earnings ledger counts the debit (metered usage).
    paywall: std::sync::Weak<Paywall>,
    route: String,
    store: Arc<dyn SessionStore>,
    session_id: PaymentHash,
    rule: Arc<PriceRule>,
    quote: Quote,
    /// What the request holds now.
    held: u64,
    clock: crate::Clock,
}

impl Meter {
    /// What `usage` costs under the rule (at least its minimum); `None` for a model the rule
    /// does not sell (cannot happen for a priced request).
    fn cost(&self, prompt: u64, completion: u64) -> u64 {
        match self.rule.models.get(&self.quote.model) {
            Some(price) => self.rule.sats(price, prompt, completion),
            None => self.held,
        }
    }

    fn count(&self, text: &str) -> u64 {
        self.rule
            .encoding_of(&self.quote.model)
            .map_or(0, |e| e.count(text))
    }

    /// Settles the hold to `used` (at most what is held): what was debited, and the session's
    /// balance after it, as the settle's own step left it (`None` when it cannot say).
    async fn settle(&self, used: u64) -> Debited {
        let now = self.clock.now();
        let debit = used.min(self.held);
        let balance = match self
            .store
            .settle(&self.session_id, self.held, debit, now)
            .await
        {
            Ok(balance) => balance,
            Err(e) => {
                tracing::error!(error = %e, session = %self.session_id.to_hex(), "could not settle a session request; its hold stays until the store answers");
                return Debited::Settled {
                    debit,
                    balance: None,
                };
            }
        };
        if let Some(paywall) = self.paywall.upgrade() {
            paywall.ledger.used(now, &self.route, debit);
            paywall.metrics.earned(&self.route, debit);
        }
        Debited::Settled { debit, balance }
    }

    /// The answer as the client gets it, its hold settled (a JSON answer now; a stream as it
    /// ends or is dropped), and what it was debited when that is known now.
    async fn answer(self, response: Response) -> (Response, Debited) {
        if !response.status().is_success() {
            // The upstream failed or refused: nothing it did is charged.
            let debited = self.settle(0).await;
            return (response, debited);
        }
        let streaming = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if streaming {
            return (self.stream(response), Debited::Streaming);
        }
        let (parts, body) = response.into_parts();
        let bytes = match axum::body::to_bytes(body, MAX_JSON_ANSWER).await {
            Ok(bytes) => bytes,
            Err(_) => {
                // Cut or too large: what was held is what it may have cost.
                let held = self.held;
                let debited = self.settle(held).await;
                let answer = super::gateway_error(
                    StatusCode::BAD_GATEWAY,
                    "the upstream's answer could not be read; the session was charged at most this request's quote",
                );
                return (answer, debited);
            }
        };
        // The usage alone is read; the rest of the answer is skipped, not built into a value.
        let usage = serde_json::from_slice::<AnswerView>(&bytes)
            .ok()
            .and_then(|a| a.usage);
        let used = match usage {
            Some(usage) => self.cost(usage.prompt_tokens, usage.completion_tokens),
            None => {
                let completion = serde_json::from_slice::<Value>(&bytes)
                    .ok()
                    .map_or(0, |v| self.count(&answer_text(&v)));
                self.cost(self.quote.input_tokens, completion)
            }
        };
        let debited = self.settle(used).await;
        (Response::from_parts(parts, Body::from(bytes)), debited)
    }

    /// A streamed answer, metered event by event: content counted as it passes, the hold
    /// extended when the content outgrows it, the stream ended with `payment-need-topup` and
    /// `data: [DONE]` when the balance cannot extend it. Settled at the end to the last usage
    /// chunk (or the count), or, if the client goes, to what was delivered.
    fn stream(self, response: Response) -> Response {
        let (mut parts, body) = response.into_parts();
        parts.headers.remove(header::CONTENT_LENGTH);
        let state = StreamMeter {
            touched: self.clock.now(),
            meter: Some(self),
            upstream: body.into_data_stream(),
            pending: Vec::new(),
            text: String::new(),
            counted: 0,
            counted_upto: 0,
            usage: None,
            done: false,
        };
        let stream = futures_util::stream::unfold(state, |mut state| async move {
            let out = state.next_out().await?;
            Some((Ok::<Bytes, Infallible>(out), state))
        });
        Response::from_parts(parts, Body::from_stream(stream))
    }
}

/// What a request served from a session was debited, as its answer's receipt gives it.
enum Debited {
    /// Settled: the sats debited and the balance after (`None`: the store could not say).
    Settled {
        /// Sats debited.
        debit: u64,
        /// The balance after, in sats.
        balance: Option<u64>,
    },
    /// A stream, settled as it ends: its debit goes in the stream.
    Streaming,
}

/// The text of every choice of a JSON answer (`choices[].message.content`).
fn answer_text(answer: &Value) -> String {
    answer["choices"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["message"]["content"].as_str())
        .collect()
}

/// What the meter reads of a JSON answer: its usage.
#[derive(serde::Deserialize)]
struct AnswerView {
    #[serde(default)]
    usage: Option<Usage>,
}

/// What the meter reads of a stream chunk, borrowed where it needs no unescaping: the usage,
/// and each choice's `delta.content`.
#[derive(serde::Deserialize)]
struct ChunkView<'a> {
    #[serde(default, borrow)]
    choices: Vec<ChoiceView<'a>>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(serde::Deserialize)]
struct ChoiceView<'a> {
    #[serde(default, borrow)]
    delta: Option<DeltaView<'a>>,
}

#[derive(serde::Deserialize)]
struct DeltaView<'a> {
    #[serde(default, borrow)]
    content: Option<std::borrow::Cow<'a, str>>,
}

struct StreamMeter {
    /// `None` once settled.
    meter: Option<Meter>,
    upstream: axum::body::BodyDataStream,
    /// Bytes of an event not complete yet.
    pending: Vec<u8>,
    /// The content delivered (`choices[].delta.content`), counted with the tokenizer only when
    /// its length could cost more than is held, and at the end.
    text: String,
    /// Tokens of `text[..counted_upto]`, counted already: each stretch is counted once.
    counted: u64,
    counted_upto: usize,
    /// The last usage the stream reported.
    usage: Option<Usage>,
    done: bool,
    /// When the hold was last taken or renewed (Unix seconds).
    touched: u64,
}

/// How often a stream that keeps flowing renews its hold, so that the background task never
/// takes it for one a crash left behind ([`SessionStore::release_stale`]) however long it runs.
const RENEW_HOLD_SECS: u64 = 10;

impl StreamMeter {
    /// Renews the hold of a stream still flowing (a hold of nothing, which marks the session's
    /// holds as taken now), every [`RENEW_HOLD_SECS`].
    async fn renew_hold(&mut self) {
        let Some(meter) = &self.meter else { return };
        let now = meter.clock.now();
        if now >= self.touched.saturating_add(RENEW_HOLD_SECS) {
            self.touched = now;
            let _ = meter.store.hold(&meter.session_id, 0, now).await;
        }
    }

    /// What was delivered costs: the last usage chunk, else the content counted (the stretch
    /// not counted yet is counted now, and remembered).
    fn delivered_cost(&mut self) -> u64 {
        let Some(meter) = &self.meter else { return 0 };
        match self.usage {
            Some(usage) => meter.cost(usage.prompt_tokens, usage.completion_tokens),
            None => {
                let upto = self.text.len();
                if upto > self.counted_upto {
                    self.counted += meter.count(&self.text[self.counted_upto..]);
                    self.counted_upto = upto;
                }
                meter.cost(meter.quote.input_tokens, self.counted)
            }
        }
    }

    /// Never less than what was delivered costs, without the tokenizer: a token is at least one
    /// byte of text.
    fn cost_bound(&self) -> u64 {
        let Some(meter) = &self.meter else { return 0 };
        match self.usage {
            Some(usage) => meter.cost(usage.prompt_tokens, usage.completion_tokens),
            None => {
                let fresh = (self.text.len() - self.counted_upto) as u64;
                meter.cost(meter.quote.input_tokens, self.counted + fresh)
            }
        }
    }

    /// The next bytes for the client, or `None` at the end: every whole event the upstream
    /// has sent so far, at once.
    async fn next_out(&mut self) -> Option<Bytes> {
        loop {
            if self.done {
                return None;
            }
            match self.upstream.next().await {
                Some(Ok(bytes)) => {
                    self.renew_hold().await;
                    self.pending.extend_from_slice(&bytes);
                    let pending = std::mem::take(&mut self.pending);
                    let mut out = Vec::with_capacity(pending.len());
                    let mut start = 0;
                    // Whole events: `\n\n` ends one.
                    while let Some(len) = find_event_end(&pending[start..]) {
                        let event = &pending[start..start + len];
                        if let Some(tail) = self.pass(event).await {
                            out.extend_from_slice(tail.as_bytes());
                            return Some(Bytes::from(out));
                        }
                        out.extend_from_slice(event);
                        start += len;
                    }
                    self.pending = pending[start..].to_vec();
                    if !out.is_empty() {
                        return Some(Bytes::from(out));
                    }
                }
                Some(Err(_)) | None => {
                    // The upstream ended (or broke) without `data: [DONE]`: what is left passes
                    // as is; then settle, and say the debit after it when that starts a line.
                    self.done = true;
                    let mut rest = std::mem::take(&mut self.pending);
                    let debit = self.finish().await;
                    if let Some(debit) = debit
                        && (rest.is_empty() || rest.ends_with(b"\n"))
                    {
                        rest.extend_from_slice(debit.to_sse().as_bytes());
                    }
                    return (!rest.is_empty()).then(|| Bytes::from(rest));
                }
            }
        }
    }

    /// One whole event, counted: `None` to pass it on, or what is sent instead: at the
    /// upstream's `data: [DONE]`, the debit then the event; when the session cannot pay for
    /// the event, what ends the stream (`payment-need-topup`, the debit, `data: [DONE]`).
    async fn pass(&mut self, event: &[u8]) -> Option<String> {
        let (before_text, before_usage) = (self.text.len(), self.usage);
        if let Ok(text) = std::str::from_utf8(event)
            && self.meter.is_some()
            && text
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .any(|d| d.trim() == "[DONE]")
        {
            // The end: settled now, so that the debit goes before it.
            self.done = true;
            let mut out = self
                .finish()
                .await
                .map(|debit| debit.to_sse())
                .unwrap_or_default();
            out.push_str(text);
            return Some(out);
        }
        if let Ok(text) = std::str::from_utf8(event) {
            for data in text
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim)
                .filter(|d| d.starts_with('{'))
            {
                if let Ok(chunk) = serde_json::from_str::<ChunkView<'_>>(data) {
                    if let Some(usage) = chunk.usage {
                        self.usage = Some(usage);
                    }
                    for choice in &chunk.choices {
                        if let Some(content) =
                            choice.delta.as_ref().and_then(|d| d.content.as_ref())
                        {
                            self.text.push_str(content);
                        }
                    }
                }
            }
        }
        let held = self.meter.as_ref().map_or(0, |m| m.held);
        if self.cost_bound() <= held {
            return None;
        }
        let cost = self.delivered_cost();
        if cost <= held {
            return None;
        }
        let meter = self.meter.as_mut()?;
        let more = cost - held;
        let now = meter.clock.now();
        let refused = match meter.store.hold(&meter.session_id, more, now).await {
            Ok(Hold::Held { .. }) => {
                meter.held += more;
                return None;
            }
            Ok(Hold::Short { spent, .. }) => Some(NeedTopUp {
                session_id: meter.session_id.to_hex(),
                balance_spent: spent.saturating_add(held),
                balance_required: more,
            }),
            Ok(_) | Err(_) => None,
        };
        // The balance cannot pay for this event: it is not delivered, and the stream ends.
        self.text.truncate(before_text);
        if self.counted_upto > before_text {
            // The refused event was counted: count what was delivered afresh.
            self.counted = 0;
            self.counted_upto = 0;
        }
        self.usage = before_usage;
        self.done = true;
        let debit = self.finish().await;
        let mut out = refused.map(|need| need.to_sse()).unwrap_or_default();
        if let Some(debit) = debit {
            out.push_str(&debit.to_sse());
        }
        out.push_str("data: [DONE]\n\n");
        Some(out)
    }

    /// Settles what was delivered: the debit to send, once (`None` after).
    async fn finish(&mut self) -> Option<SessionDebit> {
        let cost = self.delivered_cost();
        let meter = self.meter.take()?;
        match meter.settle(cost).await {
            Debited::Settled { debit, balance } => Some(SessionDebit {
                session_id: meter.session_id.to_hex(),
                debit_sats: debit,
                balance_sats: balance,
            }),
            Debited::Streaming => None,
        }
    }
}

impl Drop for StreamMeter {
    /// A stream the client dropped is settled to what was delivered.
    fn drop(&mut self) {
        let cost = self.delivered_cost();
        let Some(meter) = self.meter.take() else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                meter.settle(cost).await;
            });
        }
    }
}

/// Where the first whole SSE event of `buf` ends (after its blank line), if one is complete.
fn find_event_end(buf: &[u8]) -> Option<usize> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sessions::{MemorySessions, REFUND_CLAIM_SECS, SqliteSessions};
    use async_trait::async_trait;
    use plannt_l402::Preimage;
    use plannt_lightning::dev::DevNetwork;
    use plannt_lightning::{Balance, LightningError, Network, Payment};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A wallet that counts the refunds it pays, fails as many as it is told to first, and
    /// answers lookups as told: what a backend says after a crash.
    struct Double {
        paid: AtomicUsize,
        /// Payments still to fail.
        fail: AtomicUsize,
        lookup: Mutex<PaymentLookup>,
        amountless: bool,
    }

    impl Double {
        fn new(fail: bool, lookup: PaymentLookup) -> Self {
            Self::failing(if fail { usize::MAX } else { 0 }, lookup)
        }

        fn failing(first: usize, lookup: PaymentLookup) -> Self {
            Double {
                paid: AtomicUsize::new(0),
                fail: AtomicUsize::new(first),
                lookup: Mutex::new(lookup),
                amountless: true,
            }
        }
    }

    #[async_trait]
    impl Payer for Double {
        async fn pay(&self, _: &str, _: u64) -> Result<Payment, LightningError> {
            Err(LightningError::Backend("not this way".into()))
        }
        async fn pay_amount(
            &self,
            bolt11: &str,
            msat: u64,
            _: u64,
        ) -> Result<Payment, LightningError> {
            if self
                .fail
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(LightningError::NoRoute(
                    "no route to the return invoice".into(),
                ));
            }
            self.paid.fetch_add(1, Ordering::SeqCst);
            let hash = plannt_lightning::decode_invoice(bolt11)
                .unwrap()
                .payment_hash;
            Ok(Payment {
                payment_hash: hash,
                preimage: Preimage::new([0; 32]),
                amount_msat: msat,
                fee_msat: 0,
            })
        }
        fn can_pay_amountless(&self) -> bool {
            self.amountless
        }
        async fn balance(&self) -> Result<Balance, LightningError> {
            Ok(Balance { msat: 0 })
        }
        async fn lookup_payment(&self, _: &PaymentHash) -> Result<PaymentLookup, LightningError> {
            Ok(self.lookup.lock().unwrap().clone())
        }
        fn network(&self) -> Network {
            Network::Regtest
        }
        fn name(&self) -> &'static str {
            "double"
        }
    }

    /// A session of 50 sats left `closing` as a crash would leave it: marked, not paid.
    async fn crashed_mid_close(store: &dyn SessionStore, id: u8) -> PaymentHash {
        let network = DevNetwork::ephemeral(1000);
        let id = PaymentHash([id; 32]);
        store
            .open(&NewSession {
                id,
                route: "chat".into(),
                deposit: 50,
                return_invoice: network
                    .create_amountless_invoice("client", "refund", 3600)
                    .unwrap()
                    .bolt11,
                idle_secs: 60,
                now: 1,
            })
            .await
            .unwrap();
        assert!(matches!(
            store.begin_close(&id, 1).await.unwrap(),
            BeginClose::Closing(_)
        ));
        id
    }

    #[test]
    fn a_backend_that_cannot_pay_a_refund_offers_no_sessions() {
        use crate::routes::{Route, RouteTable, Target};
        use crate::store::MemoryStore;
        use crate::store::sessions::MemorySessions;
        let mut route = Route::paid(
            "chat",
            axum::http::Method::POST,
            "/chat",
            1,
            Target::Service,
        );
        route.session = Some(SessionPolicy {
            deposit_sats: 100,
            idle_secs: 60,
        });
        let paywall = |amountless: bool| {
            let mut payer = Double::new(false, PaymentLookup::NotFound);
            payer.amountless = amountless;
            Paywall::new(
                plannt_l402::KeyRing::single(plannt_l402::RootKey::new([7; 32])),
                Arc::new(DevNetwork::ephemeral(0).wallet("gateway")),
                Arc::new(MemoryStore::new()),
                RouteTable::new(vec![route.clone()]).unwrap(),
                super::super::PaywallOptions::default(),
            )
            .with_sessions(SessionBackend {
                store: Arc::new(MemorySessions::new()),
                payer: Arc::new(payer),
            })
        };
        assert!(paywall(true).session_store().is_some());
        assert!(
            paywall(false).session_store().is_none(),
            "a receive-only backend could never refund"
        );
    }

    #[tokio::test]
    async fn a_crash_between_closing_and_the_refund_never_pays_twice() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteSessions::open(dir.path().join("s.sqlite")).unwrap();

        // The refund went out before the crash: recorded, not paid again. Not looked at while
        // the close that crashed still held its claim.
        let went_out = crashed_mid_close(&store, 1).await;
        let payer = Double::new(
            false,
            PaymentLookup::Succeeded(Payment {
                payment_hash: PaymentHash([0; 32]),
                preimage: Preimage::new([0; 32]),
                amount_msat: 50_000,
                fee_msat: 0,
            }),
        );
        assert_eq!(recover_closing(&store, &payer, 100).await.unwrap().len(), 0);
        assert_eq!(
            recover_closing(&store, &payer, 1000).await.unwrap().len(),
            1
        );
        assert_eq!(payer.paid.load(Ordering::SeqCst), 0);
        let s = store.get(&went_out).await.unwrap().unwrap();
        assert_eq!(
            (s.state, s.refund_status),
            (SessionState::Closed, Some(RefundStatus::Succeeded))
        );

        // Still in flight: left closing, nothing paid.
        let in_flight = crashed_mid_close(&store, 2).await;
        let payer = Double::new(false, PaymentLookup::Pending);
        assert_eq!(
            recover_closing(&store, &payer, 1000).await.unwrap().len(),
            0
        );
        assert_eq!(payer.paid.load(Ordering::SeqCst), 0);
        // The backend never saw it: paid at the next try, once; later looks pay nothing more.
        *payer.lookup.lock().unwrap() = PaymentLookup::NotFound;
        assert_eq!(
            recover_closing(&store, &payer, 1001).await.unwrap().len(),
            0,
            "claimed"
        );
        assert_eq!(
            recover_closing(&store, &payer, 2000).await.unwrap().len(),
            1
        );
        assert_eq!(
            recover_closing(&store, &payer, 9000).await.unwrap().len(),
            0
        );
        assert_eq!(payer.paid.load(Ordering::SeqCst), 1);
        let s = store.get(&in_flight).await.unwrap().unwrap();
        assert_eq!(s.refund_status, Some(RefundStatus::Succeeded));
    }

    /// A session of 20 sats, its return invoice payable until `expires` seconds from now.
    async fn open_for_refund(store: &dyn SessionStore, id: u8, expires: u64) -> PaymentHash {
        let network = DevNetwork::ephemeral(1000);
        let id = PaymentHash([id; 32]);
        store
            .open(&NewSession {
                id,
                route: "chat".into(),
                deposit: 20,
                return_invoice: network
                    .create_amountless_invoice("client", "refund", expires)
                    .unwrap()
                    .bolt11,
                idle_secs: 60,
                now: 1,
            })
            .await
            .unwrap();
        id
    }

    #[tokio::test]
    async fn a_failed_refund_stays_owed_and_is_paid_once_when_a_retry_succeeds() {
        let store = MemorySessions::new();
        let id = open_for_refund(&store, 3, 3600).await;
        let now = plannt_lightning::invoice::unix_now();
        // The first payment fails, the next succeeds.
        let payer = Double::failing(1, PaymentLookup::NotFound);
        let Closed::Done(s) = close_session(&store, &payer, &id, now).await.unwrap() else {
            panic!("closed");
        };
        assert_eq!((s.refund, s.state), (20, SessionState::Closing), "owed");
        assert_eq!(s.refund_status, None);
        assert_eq!(payer.paid.load(Ordering::SeqCst), 0);
        // Asked again meanwhile, the close pays nothing (its refund is being paid).
        assert!(matches!(
            close_session(&store, &payer, &id, now + 1).await.unwrap(),
            Closed::Paying
        ));
        // Not before the backoff; then once.
        assert_eq!(
            recover_closing(&store, &payer, now + 1)
                .await
                .unwrap()
                .len(),
            0
        );
        assert_eq!(payer.paid.load(Ordering::SeqCst), 0);
        let retry = now + REFUND_CLAIM_SECS;
        assert_eq!(
            recover_closing(&store, &payer, retry).await.unwrap().len(),
            1
        );
        assert_eq!(payer.paid.load(Ordering::SeqCst), 1, "exactly one refund");
        let s = store.get(&id).await.unwrap().unwrap();
        assert_eq!(
            (s.state, s.refund_status, s.refund_attempts),
            (SessionState::Closed, Some(RefundStatus::Succeeded), 2)
        );
        assert_eq!(
            recover_closing(&store, &payer, retry + 9999)
                .await
                .unwrap()
                .len(),
            0
        );
        assert_eq!(payer.paid.load(Ordering::SeqCst), 1);
        // A close asked again answers as it was closed, and pays nothing.
        let Closed::Already(s) = close_session(&store, &payer, &id, retry).await.unwrap() else {
            panic!("closed");
        };
        assert_eq!(s.refund_status, Some(RefundStatus::Succeeded));
        assert_eq!(payer.paid.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_refund_that_keeps_failing_is_recorded_failed_after_its_tries_or_its_invoice() {
        let store = MemorySessions::new();
        let payer = Double::new(true, PaymentLookup::NotFound);
        // Tried REFUND_ATTEMPTS times, backing off, then failed for good.
        let id = open_for_refund(&store, 4, 30 * 24 * 3600).await;
        let mut now = plannt_lightning::invoice::unix_now();
        close_session(&store, &payer, &id, now).await.unwrap();
        let mut waits = Vec::new();
        loop {
            let s = store.get(&id).await.unwrap().unwrap();
            if s.state == SessionState::Closed {
                assert_eq!(s.refund_status, Some(RefundStatus::Failed));
                assert_eq!(s.refund_attempts, REFUND_ATTEMPTS);
                break;
            }
            waits.push(s.refund_at - now);
            now = s.refund_at;
            recover_closing(&store, &payer, now).await.unwrap();
        }
        assert_eq!(waits.len() as u64, REFUND_ATTEMPTS - 1);
        assert!(
            waits.windows(2).all(|w| w[0] <= w[1]),
            "backing off: {waits:?}"
        );
        assert!(waits.iter().all(|w| *w <= 3600));
        // A return invoice that has expired ends it at the next try.
        let id = open_for_refund(&store, 5, 1000).await;
        let start = plannt_lightning::invoice::unix_now();
        close_session(&store, &payer, &id, start).await.unwrap();
        recover_closing(&store, &payer, start + 2000).await.unwrap();
        let s = store.get(&id).await.unwrap().unwrap();
        assert_eq!(
            (s.state, s.refund_status, s.refund_attempts),
            (SessionState::Closed, Some(RefundStatus::Failed), 2)
        );
        assert_eq!(payer.paid.load(Ordering::SeqCst), 0);
    }

    /// A paywall selling sessions from `store`, refunds paid by `payer`, on a clock the test
    /// moves (it starts at `start`).
    fn paywall_on_a_moved_clock(
        store: Arc<MemorySessions>,
        payer: Arc<dyn Payer>,
        network: &DevNetwork,
        start: u64,
    ) -> (Arc<Paywall>, Arc<std::sync::atomic::AtomicU64>) {
        use crate::routes::{Route, RouteTable, Target};
        use crate::store::MemoryStore;
        let clock = Arc::new(std::sync::atomic::AtomicU64::new(start));
        let options = super::super::PaywallOptions {
            clock: crate::Clock::from_fn({
                let clock = clock.clone();
                move || clock.load(Ordering::SeqCst)
            }),
            ..Default::default()
        };
        let paywall = Arc::new(
            Paywall::new(
                plannt_l402::KeyRing::single(plannt_l402::RootKey::new([7; 32])),
                Arc::new(network.wallet("gateway")),
                Arc::new(MemoryStore::new()),
                RouteTable::new(vec![Route::paid(
                    "chat",
                    axum::http::Method::POST,
                    "/chat",
                    1,
                    Target::Service,
                )])
                .unwrap(),
                options,
            )
            .with_sessions(SessionBackend { store, payer }),
        );
        (paywall, clock)
    }

    /// A refund the background task pays on a later try reaches the earnings ledger once it
    /// has gone out, and not before.
    #[tokio::test]
    async fn a_refund_paid_on_a_retry_is_counted_in_the_earnings_ledger() {
        use crate::ledger::Event;
        use crate::store::{MemoryStore, SpentStore};
        let start = plannt_lightning::invoice::unix_now();
        let store = Arc::new(MemorySessions::new());
        let payer = Arc::new(Double::failing(1, PaymentLookup::NotFound));
        let network = DevNetwork::ephemeral(1000);
        let (paywall, clock) =
            paywall_on_a_moved_clock(store.clone(), payer.clone(), &network, start);
        let id = open_for_refund(store.as_ref(), 6, 3600).await;
        // The close's payment fails: owed, nothing counted.
        let Closed::Done(s) = close_session(store.as_ref(), payer.as_ref(), &id, start)
            .await
            .unwrap()
        else {
            panic!("closed");
        };
        assert_eq!(s.state, SessionState::Closing);
        let refunded = |paywall: Arc<Paywall>| async move {
            let spent = MemoryStore::new();
            paywall
                .ledger
                .flush(&spent, Duration::from_secs(86_400))
                .await
                .unwrap();
            let read = spent.ledger(0, start + 86_400, 10).await.unwrap();
            read.tallies
                .iter()
                .filter(|t| t.event == Event::Refunded)
                .map(|t| (t.count, t.sats))
                .fold((0, 0), |(c, s), (tc, ts)| (c + tc, s + ts))
        };
        assert_eq!(refunded(paywall.clone()).await, (0, 0));
        // Once the close's claim has passed, the task pays it and counts it.
        clock.store(start + REFUND_CLAIM_SECS, Ordering::SeqCst);
        let closer = paywall
            .spawn_session_closer(Duration::from_millis(20), Duration::from_secs(90))
            .unwrap();
        for _ in 0..250 {
            if store.get(&id).await.unwrap().unwrap().state == SessionState::Closed {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        closer.abort();
        let s = store.get(&id).await.unwrap().unwrap();
        assert_eq!(s.refund_status, Some(RefundStatus::Succeeded));
        assert_eq!(payer.paid.load(Ordering::SeqCst), 1);
        assert_eq!(refunded(paywall).await, (1, s.refund));
    }

    /// The background task on a clock the test moves: a hold a "crashed" request left (held,
    /// never settled) is given back once older than the bound, and the idle close then refunds
    /// the whole deposit to the return invoice.
    #[tokio::test]
    async fn the_closer_gives_back_a_crashed_request_s_hold_then_refunds_it_all() {
        let network = DevNetwork::ephemeral(1000);
        let start = plannt_lightning::invoice::unix_now();
        let store = Arc::new(MemorySessions::new());
        let (paywall, clock) = paywall_on_a_moved_clock(
            store.clone(),
            Arc::new(network.wallet("gateway")),
            &network,
            start,
        );
        let id = PaymentHash([9; 32]);
        store
            .open(&NewSession {
                id,
                route: "chat".into(),
                deposit: 50,
                return_invoice: network
                    .create_amountless_invoice("client", "refund", 3600)
                    .unwrap()
                    .bolt11,
                idle_secs: 300,
                now: start,
            })
            .await
            .unwrap();
        store.hold(&id, 30, start).await.unwrap();
        let before = network.balance("client");
        let closer = paywall
            .spawn_session_closer(Duration::from_millis(20), Duration::from_secs(90))
            .unwrap();
        let until = |done: fn(&Session) -> bool| {
            let store = store.clone();
            async move {
                for _ in 0..250 {
                    let s = store.get(&id).await.unwrap().unwrap();
                    if done(&s) {
                        return s;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                panic!("{:?}", store.get(&id).await.unwrap());
            }
        };
        // Within the bound the hold stands (the request may still be running).
        clock.store(start + 89, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(store.get(&id).await.unwrap().unwrap().held, 30);
        clock.store(start + 90, Ordering::SeqCst);
        let s = until(|s| s.held == 0).await;
        assert_eq!((s.balance, s.spent, s.state), (50, 0, SessionState::Open));
        // Idle: closed, and the whole deposit refunded.
        clock.store(start + 300, Ordering::SeqCst);
        let s = until(|s| s.state == SessionState::Closed).await;
        assert_eq!(
            (s.refund, s.refund_status),
            (50, Some(RefundStatus::Succeeded))
        );
        assert_eq!(network.balance("client"), before + 50_000);
        closer.abort();
    }

    /// A stream that keeps flowing renews its hold, so the background task never takes a long
    /// answer for a crash's; its hold is settled when it ends.
    #[tokio::test]
    async fn a_flowing_stream_renews_its_hold_past_the_bound() {
        use std::sync::atomic::AtomicU64;
        let start = 1_000_000;
        let clock = Arc::new(AtomicU64::new(start));
        let store = Arc::new(MemorySessions::new());
        let id = PaymentHash([11; 32]);
        store
            .open(&NewSession {
                id,
                route: "chat".into(),
                deposit: 100,
                return_invoice: "lnbcrt1preturn".into(),
                idle_secs: 300,
                now: start,
            })
            .await
            .unwrap();
        store.hold(&id, 50, start).await.unwrap();
        let rule: PriceRule = serde_json::from_value(json!({
            "per": "openai-tokens",
            "models": {"a": {"input_per_1k": 2, "output_per_1k": 8}},
        }))
        .unwrap();
        let meter = Meter {
            paywall: std::sync::Weak::new(),
            route: "chat".into(),
            store: store.clone(),
            session_id: id,
            rule: Arc::new(rule),
            quote: Quote {
                model: "a".into(),
                input_tokens: 10,
                output_tokens: 100,
                sats: 50,
            },
            held: 50,
            clock: crate::Clock::from_fn({
                let clock = clock.clone();
                move || clock.load(Ordering::SeqCst)
            }),
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
        let upstream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|chunk| (chunk, rx))
        });
        let response = Response::builder()
            .header(header::CONTENT_TYPE, "text/event-stream")
            .body(Body::from_stream(upstream))
            .unwrap();
        let mut body = meter
            .answer(response)
            .await
            .0
            .into_body()
            .into_data_stream();
        let event = || {
            Ok(Bytes::from_static(
                b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n",
            ))
        };
        tx.send(event()).await.unwrap();
        body.next().await.unwrap().unwrap();
        // Eighty seconds on, the stream still flowing.
        clock.store(start + 80, Ordering::SeqCst);
        tx.send(event()).await.unwrap();
        body.next().await.unwrap().unwrap();
        // Past the bound of the hold's first taking, not of its renewal: it stands.
        assert!(
            store
                .release_stale(start + 100, 90)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(store.get(&id).await.unwrap().unwrap().held, 50);
        drop(tx);
        while body.next().await.is_some() {}
        let s = store.get(&id).await.unwrap().unwrap();
        assert_eq!(s.held, 0);
        assert_eq!(s.balance + s.spent, 100);
        assert!(s.spent >= 1, "{s:?}");
    }

    #[test]
    fn events_end_at_their_blank_line() {
        assert_eq!(find_event_end(b"data: 1\n\ndata: 2"), Some(9));
        assert_eq!(find_event_end(b"data: 1\r\n\r\n"), Some(11));
        assert_eq!(find_event_end(b"data: 1\n"), None);
    }

    #[test]
    fn the_unit_is_the_dearest_output_token_rounded_up() {
        let rule: PriceRule = serde_json::from_value(json!({
            "per": "openai-tokens",
            "models": {"a": {"input_per_1k": 2, "output_per_1k": 8},
                       "b": {"input_per_1k": 2, "output_per_1k": 1500}},
        }))
        .unwrap();
        assert_eq!(unit_sats(&rule), 2);
    }
}
