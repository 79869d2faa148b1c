//! Settling a paid request: the upstream's outcome decides whether its claim is committed
//! (`x-l402: spent`) or released (`x-l402: released`), and what the answer says.

use std::sync::Arc;

use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use plannt_l402::{PaymentHash, TokenState};

use super::Paywall;
use super::answers::gateway_error;
use super::headers::{PAYMENT_RECEIPT, PAYMENT_RESPONSE, X_L402, drop_l402_headers};
use crate::store::Ticket;

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
    /// The header a paid answer carries in the dialect it was paid in (MPP's `Payment-Receipt`,
    /// x402's `PAYMENT-RESPONSE`): only when the payment is spent on it.
    pub(super) receipt: Option<(HeaderName, HeaderValue)>,
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
        let mut response = if release {
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
            released
        } else {
            if let Err(e) = self
                .store
                .commit(&paid.hash, &paid.ticket, paid.keep_until)
                .await
            {
                // The upstream has answered: the client gets what it paid for. The pending claim
                // still refuses the token until it lapses.
                tracing::error!(error = %e, "could not commit a spent token");
            }
            self.metrics.accepted(&paid.route, paid.price);
            match failure {
                Some(Unanswered::NoAnswer(why)) => gateway_error(
                    status,
                    &format!(
                        "{why}; your token is spent: the upstream received this {} and may have acted on it",
                        paid.method
                    ),
                ),
                _ => response,
            }
        };
        let headers = response.headers_mut();
        drop_l402_headers(headers);
        // Receipts are the gateway's word, never the upstream's.
        headers.remove(PAYMENT_RECEIPT);
        headers.remove(PAYMENT_RESPONSE);
        let state = if release {
            TokenState::Released
        } else {
            TokenState::Spent
        };
        headers.insert(X_L402, HeaderValue::from_static(state.as_str()));
        if !release && let Some((name, value)) = &paid.receipt {
            headers.insert(name.clone(), value.clone());
        }
        response
    }
}
