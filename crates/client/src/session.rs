//! Prepaid sessions on the paying side (MPP's Lightning `session` intent,
//! draft-lightning-session-00).
//!
//! ```text
//! 402 offers intent="session"  -> policy: session_deposit_sats for this host > 0, the deposit
//!                                 within it, the unit price within the per-request cap, the
//!                                 deposit invoice checked as a charge's, the budgets
//!                              -> the return invoice (amountless, from the wallet)
//!                              -> reserve the deposit (budgets + the session's limit), pay it
//!                              -> record the session, send `open`
//! next call to the place       -> `bearer` with the deposit's preimage; the debit the server
//!                                 reports recorded (a JSON answer's receipt, `debitSats` and
//!                                 `balanceSats`; a stream's `: plannt-session-debit` comment
//!                                 as it ends), or one unit, an estimate, when it reports none
//!                                 or one more than was paid in; never counted by the budgets
//! 402 to a bearer, balance short (as the ledger knows it, or the server says
//!     payment-insufficient)    -> `topUp`: the new invoice checked, reserved within the
//!                                 session's limit and the budgets, paid; once per call; its
//!                                 answer's `balance` recorded, then `bearer` again, once
//! 402 to a bearer, otherwise   -> the server no longer knows the session: recorded closed
//! a stream ends with the payment-need-topup event
//!                              -> reported (`Response::need_top_up`); the ledger's balance is 0,
//!                                 so the next call tops up
//! close (plannt session close, or idle past the server's timeout on the next run)
//!                              -> `close`; the refund is what the wallet says the return
//!                                 invoice received, not what the server claims
//! ```
//!
//! A session refused by the policy is not an error when the 402 offers a charge beside it: the
//! charge is paid, as when no session is offered. A place with an open session that cannot be
//! topped up gets a charge too, never a second session.

use plannt_l402::mpp::{
    PAYMENT_RECEIPT, PaymentChallenge, PaymentCredential, SessionPayload, SessionReceipt,
    problem_type,
};
use plannt_l402::{Dialect, PaymentHash};
use plannt_lightning::InvoiceState;
use plannt_lightning::invoice::unix_now;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use url::Url;

use crate::call::{
    ClientError, Options, Outcome, PendingDebit, Presented, Receipt, Request, SessionUse,
    SessionWatch,
};
use crate::checks::check_session;
use crate::client::{Client, Deadline};
use crate::ledger::{MAX_RECORDED_BODY, NewSession, SessionToken};
use crate::policy::Policy;

/// How long the return invoice stays payable: the server pays it when the session closes,
/// however long the session lives (30 days).
pub const RETURN_INVOICE_SECS: u64 = 30 * 86_400;

/// How much of a 402's body is read for its problem type.
const MAX_PROBLEM_BODY: usize = 16 * 1024;

/// The Lightning session challenges of a 402, in order.
pub(crate) fn session_challenges(response: &reqwest::Response) -> Vec<PaymentChallenge> {
    response
        .headers()
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| PaymentChallenge::parse_list(v).unwrap_or_default())
        .filter(PaymentChallenge::is_lightning_session)
        .collect()
}

/// The RFC 9457 problem type of a 402's body, if it has one.
async fn problem_kind(mut response: reqwest::Response) -> Option<String> {
    let problem = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(problem_type::CONTENT_TYPE));
    if !problem {
        return None;
    }
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_PROBLEM_BODY {
            return None;
        }
    }
    let json: serde_json::Value = serde_json::from_slice(&body).ok()?;
    json["type"].as_str().map(str::to_string)
}

/// The balance in sats a top-up's answer says the session holds (`{"balance": N}`), if it says.
async fn top_up_balance(mut response: reqwest::Response) -> Option<u64> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_PROBLEM_BODY {
            return None;
        }
    }
    let json: serde_json::Value = serde_json::from_slice(&body).ok()?;
    json["balance"].as_u64()
}

/// What closing a session gave back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SessionClosed {
    /// The session id, hex.
    pub session_id: String,
    /// The server's origin.
    pub origin: String,
    /// What the server said it refunded, in sats.
    pub refund_claimed_sats: u64,
    /// What the wallet says the return invoice received, in sats: the refund recorded.
    pub refund_received_sats: u64,
    /// What the server said of the refund (`succeeded`, `failed`, `skipped`), or, when it did
    /// not answer the close, `unknown`.
    pub refund_status: String,
}

impl Client {
    /// The most a session with the host of `url` may hold, when one may be opened or used for
    /// this call (0: never): a real call that may pay MPP, a wallet that can make the return
    /// invoice, and `session_deposit_sats` for the host, lowered by the call's
    /// `max_session_sats`.
    pub(crate) fn session_limit(&self, url: &Url, options: &Options<'_>) -> u64 {
        if options.dry_run
            || self.receiver.is_none()
            || !self
                .policy()
                .dialects_for(options.dialects)
                .contains(&Dialect::Mpp)
        {
            return 0;
        }
        let limit = self
            .policy()
            .session_deposit_sats(url.host_str().unwrap_or_default());
        options.max_session_sats.map_or(limit, |max| limit.min(max))
    }

    fn credential(challenge: &PaymentChallenge, payload: &SessionPayload) -> Presented {
        Presented {
            name: AUTHORIZATION,
            value: PaymentCredential::session(challenge, payload).to_header_value(),
        }
    }

    fn stored_challenge(session: &SessionToken) -> Result<PaymentChallenge, ClientError> {
        serde_json::from_str(&session.challenge).map_err(|_| {
            ClientError::BadChallenge("a stored MPP session challenge is unreadable".into())
        })
    }

    /// The answer to a request paid from a session, its debit recorded: the one the server
    /// reports (a JSON answer's receipt says it; a stream says it as it ends), or, when it
    /// reports none, or one that cannot be true, an estimate of one unit for a request it
    /// served. The receipt names the session (no preimage).
    #[allow(clippy::too_many_arguments)]
    fn served(
        &self,
        response: reqwest::Response,
        session_id: &PaymentHash,
        path: &str,
        unit_msat: u64,
        balance_msat: u64,
        action: &str,
        paid: (u64, u64),
        presented: Presented,
    ) -> Result<Outcome, ClientError> {
        let said = match response
            .headers()
            .get(PAYMENT_RECEIPT)
            .and_then(|v| v.to_str().ok())
            .map(SessionReceipt::parse)
        {
            Some(Ok(r)) if r.session_id() == Some(*session_id) => Some(r),
            Some(_) => {
                tracing::warn!("the server's receipt does not name this session, or is unreadable");
                None
            }
            None => {
                tracing::debug!("the answer carries no session receipt");
                None
            }
        };
        let streaming = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let served = response.status().is_success();
        let estimate = balance_msat.saturating_sub(unit_msat);
        let mut balance = balance_msat;
        let mut pending = None;
        match said
            .as_ref()
            .and_then(|r| r.debit_sats.map(|d| (d, r.balance_sats)))
        {
            // The answer says what it debited.
            Some((debit, left)) if !streaming => {
                let reported = (
                    debit.saturating_mul(1000),
                    left.map(|b| b.saturating_mul(1000)),
                );
                if self.ledger().session_debit_reported(
                    session_id,
                    path,
                    reported,
                    unit_msat,
                    unix_now(),
                )? {
                    balance = reported
                        .1
                        .unwrap_or_else(|| balance.saturating_sub(reported.0));
                } else {
                    tracing::warn!(
                        debit_sats = debit,
                        balance_sats = left,
                        "the server reported a debit or a balance more than was paid into the session: one unit recorded, an estimate"
                    );
                    balance = estimate;
                }
            }
            // A stream says its debit as it ends: recorded then (or, without it, estimated).
            _ if served && streaming => {
                if let Some(left) = said.as_ref().and_then(|r| r.balance_sats) {
                    tracing::debug!(
                        held_sats = said.as_ref().and_then(|r| r.held_sats),
                        balance_sats = left,
                        "the stream holds part of the session while it runs"
                    );
                }
                balance = estimate;
                pending = Some(PendingDebit {
                    path: path.to_string(),
                    estimate_msat: unit_msat,
                });
            }
            _ if served => {
                tracing::info!(
                    "the server reported no debit for this request: one unit recorded, an estimate"
                );
                balance = estimate;
                self.ledger().session_debit(
                    session_id,
                    path,
                    unit_msat,
                    Some(balance),
                    unix_now(),
                )?;
            }
            _ => {}
        }
        let receipt = Receipt {
            dialect: Dialect::Mpp,
            amount_sats: paid.0,
            fee_msat: paid.1,
            payment_hash: hex::encode(session_id),
            preimage: String::new(),
            reused_token: action == "bearer",
            recovered: false,
            session: Some(Box::new(SessionUse {
                id: hex::encode(session_id),
                action: action.to_string(),
                balance_sats: balance / 1000,
            })),
        };
        let mut out = self.response(response, Some((receipt, presented)));
        out.session = Some(Box::new(SessionWatch::new(
            self.ledger().clone(),
            *session_id,
            pending,
        )));
        Ok(Outcome::Response(out))
    }

    /// Opens a session for `request` with `challenge`. `Ok(Err(_))`: declined, nothing paid (a
    /// policy check or a budget refused it): the caller may pay a charge instead.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn open_session(
        &self,
        request: &Request,
        challenge: &PaymentChallenge,
        challenged: &Url,
        limit: u64,
        policy: &Policy,
        options: &Options<'_>,
        deadline: &Deadline,
    ) -> Result<Result<Outcome, ClientError>, ClientError> {
        let origin = challenged.origin().ascii_serialization();
        let path = challenged.path().to_string();
        let now = unix_now();
        let quote = match check_session(
            challenge,
            challenged,
            policy,
            self.wallet().network(),
            limit,
            now,
        ) {
            Ok(q) => q,
            Err(refusal) => return Ok(Err(self.refused(&origin, &path, refusal)?)),
        };
        if let Some(budget_over) = self
            .ledger()
            .fits(
                &quote.quote.invoice.payment_hash,
                quote
                    .quote
                    .amount_msat
                    .saturating_add(policy.max_fee_sats.saturating_mul(1000)),
                &policy.budget,
                now,
            )?
            .err()
        {
            return Ok(Err(self.over_budget(&origin, &path, budget_over)?));
        }
        // The return invoice first: a deposit is never paid without somewhere for its refund.
        let receiver = self
            .receiver
            .clone()
            .ok_or_else(|| ClientError::NoReturnInvoice(origin.clone()))?;
        let returned = match receiver
            .create_amountless_invoice("plannt session refund", RETURN_INVOICE_SECS)
            .await
        {
            Ok(invoice) => invoice,
            Err(e) => {
                tracing::warn!(error = %e, "no return invoice: the session is not opened");
                return Ok(Err(ClientError::NoReturnInvoice(origin)));
            }
        };
        let id = quote.quote.invoice.payment_hash;
        let payment = match self
            .pay(
                &quote.quote,
                &origin,
                &path,
                &quote.echo,
                policy,
                options,
                deadline,
                Some((&id, limit)),
            )
            .await
        {
            Ok(p) => p,
            Err(e @ (ClientError::Refused(_) | ClientError::OverBudget(_))) => return Ok(Err(e)),
            Err(e) => return Err(e),
        };
        let content_type = request
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let close_body = (request.body.len() <= MAX_RECORDED_BODY)
            .then(|| (request.body.as_ref(), content_type));
        self.ledger().open_session(
            &NewSession {
                session_id: &id,
                origin: &origin,
                path: &path,
                challenge: &quote.echo,
                return_invoice: &returned.bolt11,
                unit_msat: quote.unit_msat,
                idle_timeout_secs: quote.idle_secs,
                method: request.method.as_str(),
                close_body,
            },
            unix_now(),
        )?;
        let presented = Self::credential(
            challenge,
            &SessionPayload::open(&payment.preimage, &returned.bolt11),
        );
        let response = self
            .send_once(request, Some(&presented), options, deadline)
            .await?;
        if response.status() == StatusCode::PAYMENT_REQUIRED {
            // Paid and refused: the server does not hold the deposit for us. Say so in the
            // ledger (the session is closed, its refund unknown) and answer its 402.
            tracing::warn!("the server refused to open the session its deposit paid for");
            self.ledger()
                .session_closed(&id, 0, "refused", unix_now())?;
            return Ok(Ok(Outcome::Response(self.response(response, None))));
        }
        Ok(Ok(self.served(
            response,
            &id,
            &path,
            quote.unit_msat,
            quote.quote.amount_msat,
            "open",
            (quote.quote.amount_sats(), payment.fee_msat),
            presented,
        )?))
    }

    /// Presents an open session for `request`. `Ok(Ok(_))`: answered from the session.
    /// `Ok(Err(why))`: not answered from it; `why`, when the session needs a top-up the policy
    /// cannot pay, is the error to give if no charge can be paid instead.
    pub(crate) async fn bearer(
        &self,
        request: &Request,
        session: &SessionToken,
        limit: u64,
        options: &Options<'_>,
        deadline: &Deadline,
    ) -> Result<Result<Outcome, Option<ClientError>>, ClientError> {
        let challenge = Self::stored_challenge(session)?;
        let presented = Self::credential(&challenge, &SessionPayload::bearer(&session.preimage));
        let response = self
            .send_once(request, Some(&presented), options, deadline)
            .await?;
        if response.status() != StatusCode::PAYMENT_REQUIRED {
            return Ok(Ok(self.served(
                response,
                &session.session_id,
                &session.path,
                session.unit_msat,
                session.balance_msat,
                "bearer",
                (0, 0),
                presented,
            )?));
        }
        let offered = session_challenges(&response);
        let short = session.balance_msat < session.unit_msat;
        let insufficient =
            problem_kind(response).await.as_deref() == Some(problem_type::PAYMENT_INSUFFICIENT);
        let Some(top_up) = offered.into_iter().next().filter(|_| short || insufficient) else {
            // The server no longer knows the session (closed on its side, or idle past its
            // timeout): it is not presented again.
            tracing::info!("the server no longer knows the session: recorded closed");
            self.ledger()
                .session_closed(&session.session_id, 0, "unknown", unix_now())?;
            return Ok(Err(None));
        };
        self.top_up(request, session, &top_up, limit, options, deadline)
            .await
    }

    /// Tops `session` up with the top-up challenge `challenge` and presents the request with
    /// it, once.
    async fn top_up(
        &self,
        request: &Request,
        session: &SessionToken,
        challenge: &PaymentChallenge,
        limit: u64,
        options: &Options<'_>,
        deadline: &Deadline,
    ) -> Result<Result<Outcome, Option<ClientError>>, ClientError> {
        let url = &request.url;
        let origin = url.origin().ascii_serialization();
        let policy = self.policy().capped(options.max_sats);
        let refused = |why: String| ClientError::TopUpRefused {
            session_id: hex::encode(session.session_id),
            origin: origin.clone(),
            why,
        };
        let quote = match check_session(
            challenge,
            url,
            &policy,
            self.wallet().network(),
            limit,
            unix_now(),
        ) {
            Ok(q) => q,
            Err(refusal) => {
                let error = self.refused(&origin, &session.path, refusal)?;
                return Ok(Err(Some(refused(error.to_string()))));
            }
        };
        let payment = match self
            .pay(
                &quote.quote,
                &origin,
                &session.path,
                &quote.echo,
                &policy,
                options,
                deadline,
                Some((&session.session_id, limit)),
            )
            .await
        {
            Ok(p) => p,
            Err(e @ (ClientError::Refused(_) | ClientError::OverBudget(_))) => {
                return Ok(Err(Some(refused(e.to_string()))));
            }
            Err(e) => return Err(e),
        };
        self.ledger().session_topped_up(
            &session.session_id,
            quote.quote.amount_msat,
            unix_now(),
        )?;
        let presented = Self::credential(
            challenge,
            &SessionPayload::top_up(&session.session_id, &payment.preimage),
        );
        let response = self
            .send_once(request, Some(&presented), options, deadline)
            .await?;
        let still_unpaid = || ClientError::SessionStillUnpaid {
            session_id: hex::encode(session.session_id),
            origin: origin.clone(),
        };
        if !response.status().is_success() {
            return Err(still_unpaid());
        }
        // The top-up is answered with the balance and the request is not served (as Plannt's
        // gateway does): the request is sent again from the session, once.
        let mut balance = session.balance_msat.saturating_add(quote.quote.amount_msat);
        if let Some(sats) = top_up_balance(response).await {
            balance = sats.saturating_mul(1000);
        }
        self.ledger()
            .session_balance(&session.session_id, balance, unix_now())?;
        let bearer = Self::credential(
            &Self::stored_challenge(session)?,
            &SessionPayload::bearer(&session.preimage),
        );
        let response = self
            .send_once(request, Some(&bearer), options, deadline)
            .await?;
        if response.status() == StatusCode::PAYMENT_REQUIRED {
            return Err(still_unpaid());
        }
        Ok(Ok(self.served(
            response,
            &session.session_id,
            &session.path,
            session.unit_msat,
            balance,
            "topUp",
            (quote.quote.amount_sats(), payment.fee_msat),
            bearer,
        )?))
    }

    /// What the return invoice of `session` received, in msat, as the wallet says.
    async fn refund_received(&self, session: &SessionToken) -> u64 {
        let Some(receiver) = &self.receiver else {
            return 0;
        };
        let Ok(invoice) = plannt_lightning::decode_invoice(&session.return_invoice) else {
            return 0;
        };
        match receiver.lookup_invoice(&invoice.payment_hash).await {
            Ok(InvoiceState::Settled {
                amount_received_msat,
                ..
            }) => amount_received_msat,
            _ => 0,
        }
    }

    /// Closes a session: sends `close` to the place it was opened for, and records the refund
    /// the wallet received on the return invoice (never more than the session was paid, in the
    /// budgets). A session the server no longer knows is recorded closed with what its return
    /// invoice received.
    pub async fn close_session(
        &self,
        session_id: &PaymentHash,
    ) -> Result<SessionClosed, ClientError> {
        self.close_within(session_id, self.timeouts().max_time)
            .await
    }

    /// [`Client::close_session`] within `max_time`.
    async fn close_within(
        &self,
        session_id: &PaymentHash,
        max_time: std::time::Duration,
    ) -> Result<SessionClosed, ClientError> {
        let deadline = Deadline::start(max_time);
        let hex_id = hex::encode(session_id);
        let Some(session) = self.ledger().session(session_id)? else {
            return Err(ClientError::SessionNotClosed {
                session_id: hex_id,
                origin: String::new(),
                why: "the ledger knows no such session (plannt session list shows them)".into(),
            });
        };
        let not_closed = |why: String| ClientError::SessionNotClosed {
            session_id: hex_id.clone(),
            origin: session.origin.clone(),
            why,
        };
        let url: Url = format!("{}{}", session.origin, session.path)
            .parse()
            .map_err(|_| not_closed("its place is not a URL".into()))?;
        let challenge = Self::stored_challenge(&session)?;
        let presented = Self::credential(&challenge, &SessionPayload::close(&session.preimage));
        // Sent as the request that opened the session was (its method, and its body for a
        // server that prices each request from it): a route answers only its own method.
        let mut close = Request::get(url);
        close.method = session
            .method
            .parse()
            .map_err(|_| not_closed("its method is unreadable".into()))?;
        if let Some((body, content_type)) = &session.close_body {
            close.body = body.clone().into();
            if let Some(value) = content_type.as_deref().and_then(|t| t.parse().ok()) {
                close.headers.insert(CONTENT_TYPE, value);
            }
        }
        self.ledger().session_closing(session_id, unix_now())?;
        let response = self
            .send_once(&close, Some(&presented), &Options::default(), &deadline)
            .await?;
        let status = response.status();
        let receipt = response
            .headers()
            .get(PAYMENT_RECEIPT)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| SessionReceipt::parse(v).ok());
        if !status.is_success() && status != StatusCode::PAYMENT_REQUIRED {
            return Err(not_closed(format!("it answered {status}")));
        }
        let (claimed, said) = match &receipt {
            Some(r) if status.is_success() => (
                r.refund_sats,
                r.refund_status
                    .map_or("unknown".to_string(), |s| s.as_str().to_string()),
            ),
            _ => (0, "unknown".to_string()),
        };
        let received = self.refund_received(&session).await;
        if claimed.saturating_mul(1000) > received {
            tracing::warn!(
                claimed_sats = claimed,
                received_sats = received / 1000,
                "the server says it refunded more than the return invoice received"
            );
        }
        self.ledger()
            .session_closed(session_id, received, &said, unix_now())?;
        Ok(SessionClosed {
            session_id: hex_id,
            origin: session.origin,
            refund_claimed_sats: claimed,
            refund_received_sats: received / 1000,
            refund_status: said,
        })
    }

    /// Closes the sessions idle past the server's timeout (and those a close left `closing`):
    /// what a new run does first, so that their balance comes back. Each close takes at most
    /// the connect timeout, so a server that is down delays a run by no more; a session whose
    /// close fails stays for the next run.
    pub async fn close_idle_sessions(&self) -> Result<Vec<SessionClosed>, ClientError> {
        let mut closed = Vec::new();
        for session in self.ledger().idle_sessions(unix_now())? {
            match self
                .close_within(&session.session_id, self.timeouts().connect)
                .await
            {
                Ok(c) => closed.push(c),
                Err(e) => tracing::warn!(error = %e, "an idle session could not be closed"),
            }
        }
        Ok(closed)
    }
}
