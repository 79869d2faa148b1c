//! Settling a paid request: the upstream's outcome decides whether its claim is committed
//! (`x-l402: spent`) or released (`x-l402: released`), and what the answer says.
//!
//! A committed answer that fits is kept with the commit ([`super::kept`]): its body is read (up
//! to `keep_answer_bytes`, within a short wait), sealed, and written in the same durable write
//! as the commit, and only then is the answer sent. A crash between the commit and the status
//! line thus leaves the answer kept for the client's retry.

use std::sync::Arc;

use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use plannt_l402::{Dialect, PaymentHash, TokenState};

use super::Paywall;
use super::answers::gateway_error;
use super::headers::{PAYMENT_RECEIPT, PAYMENT_RESPONSE, X_L402, X_L402_KEPT, drop_l402_headers};
use super::kept::{KeepPlan, NotKept, buffer, kept_headers};
use crate::keep::{self, KeptAnswer};
use crate::store::{Keep, Ticket};

/// Marks a response (in its extensions) that the service behind the paywall made because its
/// upstream gave no answer of its own, with what happened; the paywall words the body with what
/// became of the token. A response without it is the upstream's answer: a 5xx is an upstream
/// failure, anything else buys what the token paid for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unanswered {
    /// The upstream never received the request, or refused it before doing any work (it could
    /// not be reached; the request body failed on its way in): the token is always given back.
    NotServed(String),
    /// The upstream received the request and gave no answer (too slow, or the connection
    /// broke): the route's failure policy decides.
    NoAnswer(String),
}

/// What settling a paid request needs.
pub(super) struct Paid {
    pub(super) hash: PaymentHash,
    pub(super) ticket: Ticket,
    pub(super) keep_until: u64,
    pub(super) releases: bool,
    pub(super) method: Method,
    pub(super) route: String,
    pub(super) price: u64,
    /// The dialect it was paid in, for the ledger.
    pub(super) dialect: Dialect,
    /// The header a paid answer carries in the dialect it was paid in (MPP's `Payment-Receipt`,
    /// x402's `PAYMENT-RESPONSE`): only when the payment is spent on it.
    pub(super) receipt: Option<(HeaderName, HeaderValue)>,
    /// What keeping its answer needs; `None` when keeping is off.
    pub(super) keep: Option<KeepPlan>,
}

/// Settles a claim as a failure if the task forwarding its request unwinds (a handler
/// panicked), so it is neither stranded nor, for a POST, given back.
pub(super) struct SettleOnUnwind {
    pub(super) paywall: Arc<Paywall>,
    pub(super) paid: Option<Paid>,
}

impl SettleOnUnwind {
    pub(super) fn disarm(mut self) -> Paid {
        self.paid.take().expect("armed until disarmed")
    }
}

impl Drop for SettleOnUnwind {
    fn drop(&mut self) {
        let Some(paid) = self.paid.take() else {
            return;
        };
        let paywall = self.paywall.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let failed = gateway_error(StatusCode::INTERNAL_SERVER_ERROR, "the handler failed");
                paywall.settle(&paid, failed).await;
            });
        }
    }
}

impl Paywall {
    /// Commits or releases a paid request's claim by what the upstream did, and says which.
    pub(super) async fn settle(&self, paid: &Paid, response: Response) -> Response {
        let failure = response.extensions().get::<Unanswered>().cloned();
        let status = response.status();
        let release = match &failure {
            Some(Unanswered::NotServed(_)) => true,
            Some(Unanswered::NoAnswer(_)) => paid.releases,
            None => status.is_server_error() && paid.releases,
        };
        if release {
            if let Err(e) = self.store.release(&paid.hash, &paid.ticket).await {
                tracing::error!(error = %e, "could not release a claim after an upstream failure");
            }
            self.metrics.released();
            let why = match &failure {
                Some(Unanswered::NotServed(why) | Unanswered::NoAnswer(why)) => why.clone(),
                None => format!("the upstream failed ({status})"),
            };
            // Never the upstream's body: a failure that carries data must not be served again
            // with every retry of one token.
            let mut released = gateway_error(
                status,
                &format!("{why}; your token was not used: send the same credential again"),
            );
            if let Some(retry) = response.headers().get(header::RETRY_AFTER) {
                released
                    .headers_mut()
                    .insert(header::RETRY_AFTER, retry.clone());
            }
            let headers = released.headers_mut();
            headers.insert(
                X_L402,
                HeaderValue::from_static(TokenState::Released.as_str()),
            );
            return released;
        }

        let mut response = match failure {
            Some(Unanswered::NoAnswer(why)) => gateway_error(
                status,
                &format!(
                    "{why}; your token is spent: the upstream received this {} and may have acted on it",
                    paid.method
                ),
            ),
            _ => response,
        };
        let headers = response.headers_mut();
        drop_l402_headers(headers);
        // Receipts are the gateway's word, never the upstream's.
        headers.remove(PAYMENT_RECEIPT);
        headers.remove(PAYMENT_RESPONSE);
        if let Some((name, value)) = &paid.receipt {
            headers.insert(name.clone(), value.clone());
        }
        // The answer, as it will be sent, sealed for the same credential and request.
        let now = self.options.clock.now();
        let keep_until = paid
            .keep_until
            .min(now.saturating_add(self.options.keep.answer_secs));
        let kept = match &paid.keep {
            None => Err(NotKept::Disabled),
            Some(plan) => match plan.digest() {
                None => Err(NotKept::BodyUnread),
                Some(digest) => {
                    let options = &self.options.keep;
                    match buffer(&mut response, options.answer_bytes, options.wait).await {
                        Ok(body) => {
                            let answer = KeptAnswer {
                                status: response.status().as_u16(),
                                headers: kept_headers(response.headers()),
                                body: body.to_vec(),
                                until: keep_until,
                            };
                            Ok(Keep {
                                sealed: keep::seal(&plan.secret, &paid.hash, &digest, &answer),
                                until: keep_until,
                            })
                        }
                        Err(why) => Err(why),
                    }
                }
            },
        };
        let (keep, mut kept_header) = match kept {
            Ok(keep) => {
                let secs = keep_until.saturating_sub(now);
                (Some(keep), HeaderValue::from(secs))
            }
            Err(why) => (None, why.header()),
        };
        let keeping = keep.is_some();
        if let Err(e) = self
            .store
            .commit(&paid.hash, &paid.ticket, paid.keep_until, keep)
            .await
        {
            // The upstream has answered: the client gets what it paid for. The pending claim
            // still refuses the token until it lapses.
            tracing::error!(error = %e, "could not commit a spent token");
            if keeping {
                kept_header = NotKept::NotStored.header();
            }
        }
        self.metrics.accepted(&paid.route, paid.price);
        self.ledger
            .paid(now, &paid.route, paid.dialect, paid.price, &paid.hash);
        let headers = response.headers_mut();
        headers.insert(X_L402, HeaderValue::from_static(TokenState::Spent.as_str()));
        headers.insert(X_L402_KEPT, kept_header);
        response
    }
}
