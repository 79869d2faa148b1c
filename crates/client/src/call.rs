//! What a call to the paying client takes and gives back: the request, the options of one call,
//! the steps it reports, the outcome (a response with its receipt, or a dry run's quote), and
//! why it failed: a network failure says its cause in plain words ([`NetworkError`]).

use std::time::Duration;

use bytes::Bytes;
use plannt_l402::Dialect;
use plannt_lightning::{LightningError, NetworkCause};
use reqwest::header::{HeaderMap, HeaderName};
use reqwest::{Method, StatusCode};
use url::Url;

use crate::checks::{Quote, Refusal};
use crate::ledger::{LedgerError, OverBudget};

/// A request to send. The body is kept so the request can be sent again after paying.
#[derive(Debug, Clone)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The URL.
    pub url: Url,
    /// Headers to send.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Request {
    /// A GET of `url`.
    pub fn get(url: Url) -> Self {
        Request {
            method: Method::GET,
            url,
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }
    }
}

/// A step of the exchange, for `-v` and logs.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    /// A request is sent; `credential` says whether it carries one.
    Request {
        /// Method.
        method: &'a Method,
        /// URL.
        url: &'a Url,
        /// Whether a credential is attached (in the dialect of the offer paid).
        credential: bool,
    },
    /// The server asked for a payment; this is the offer chosen.
    Challenge {
        /// Its dialect.
        dialect: Dialect,
        /// The invoice.
        invoice: &'a str,
        /// The macaroon, base64 (L402; empty for the other dialects).
        macaroon: &'a str,
        /// The price in sats.
        amount_sats: u64,
    },
    /// A payment is being made.
    Paying {
        /// The price in sats.
        amount_sats: u64,
    },
    /// The payment succeeded.
    Paid {
        /// The preimage, hex.
        preimage: String,
        /// The fee in msat.
        fee_msat: u64,
    },
    /// A response arrived.
    Response {
        /// The status.
        status: StatusCode,
        /// The `x-l402` header, if any.
        l402: Option<&'a str>,
    },
}

/// What a request paid.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Receipt {
    /// The dialect the payment was made and presented in (`l402`, `mpp` or `x402` in JSON).
    #[serde(serialize_with = "dialect_name")]
    pub dialect: Dialect,
    /// Sats paid to the server (0 when a stored token was presented).
    pub amount_sats: u64,
    /// Routing fee in msat.
    pub fee_msat: u64,
    /// Hex payment hash.
    pub payment_hash: String,
    /// Hex preimage: the proof of payment.
    pub preimage: String,
    /// True if no payment was made now: a token paid earlier was presented.
    pub reused_token: bool,
    /// The prepaid session the answer was paid from, when it was (MPP's `session` intent). Its
    /// `preimage` is then empty: the deposit's preimage spends what the session still holds,
    /// and stays in the ledger.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<Box<SessionUse>>,
    /// True if this answer was recovered: the first answer to the credential was lost (the
    /// connection broke, the time ran out, the process died), and the same credential presented
    /// again for the same request got it (`x-l402: replayed` from a Plannt gateway). Nothing more
    /// was paid for it.
    pub recovered: bool,
}

/// How an answer was paid from a prepaid session.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SessionUse {
    /// The session id (the deposit's payment hash), hex.
    pub id: String,
    /// What the request did: `open` (the deposit was paid now), `bearer` (spent from the
    /// balance), `topUp` (a top-up was paid now).
    pub action: String,
    /// The balance left as the client knows it, in sats.
    pub balance_sats: u64,
}

fn dialect_name<S: serde::Serializer>(dialect: &Dialect, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(dialect.as_str())
}

/// The answer to a request.
pub struct Response {
    /// The final status.
    pub status: StatusCode,
    /// The final headers.
    pub headers: HeaderMap,
    /// The receipt, when a token was paid for or presented.
    pub receipt: Option<Receipt>,
    /// The credential presented for this answer, as sent (with the receipt); for the probe's
    /// replay only.
    pub(crate) presented: Option<Presented>,
    pub(crate) body: reqwest::Response,
    /// What a failure to read the body reports.
    pub(crate) limits: Limits,
    /// For an answer to a paid credential: the ledger to tell when its body breaks off.
    pub(crate) answer: Option<Answering>,
    /// For an answer paid from a prepaid session: the stream is watched for the server's
    /// `payment-need-topup` event.
    pub(crate) session: Option<Box<SessionWatch>>,
    /// The server's `payment-need-topup` event, once the body read so far carried one: the
    /// stream stopped because the session could not pay for more. The ledger knows the session
    /// is short, and the next request to the place tops it up (within the policy).
    pub need_top_up: Option<Box<plannt_l402::mpp::NeedTopUp>>,
}

/// A stream paid from a prepaid session, watched for the server's `payment-need-topup` event
/// and for the debit it reports as it ends (`: plannt-session-debit …`, before `data: [DONE]`).
pub(crate) struct SessionWatch {
    pub(crate) ledger: crate::ledger::Ledger,
    pub(crate) session_id: plannt_l402::PaymentHash,
    /// The end of the body read so far (the event may straddle chunks).
    pub(crate) tail: Vec<u8>,
    /// The debit still to record for this stream, until the server reports it; recorded as an
    /// estimate when the stream ends (or is dropped) without it.
    pub(crate) debit: Option<PendingDebit>,
    /// The line being read, for the debit comment (capped at [`MAX_DEBIT_LINE`]).
    pub(crate) line: Vec<u8>,
    /// The line being read is longer than any debit comment: skipped to its end.
    pub(crate) long_line: bool,
}

/// A stream's debit not recorded yet.
pub(crate) struct PendingDebit {
    /// The path requested.
    pub(crate) path: String,
    /// The estimate recorded if the server reports no debit: one unit, in msat.
    pub(crate) estimate_msat: u64,
}

/// The most of a stream's end kept to find the event in.
const WATCHED_TAIL: usize = 8 * 1024;

/// The longest line read as a debit comment.
const MAX_DEBIT_LINE: usize = 1024;

impl SessionWatch {
    /// A watch over a stream from `session_id`; `debit`: the stream's debit, to record when
    /// the server reports it (`None`: recorded already).
    pub(crate) fn new(
        ledger: crate::ledger::Ledger,
        session_id: plannt_l402::PaymentHash,
        debit: Option<PendingDebit>,
    ) -> Self {
        SessionWatch {
            ledger,
            session_id,
            tail: Vec::new(),
            debit,
            line: Vec::new(),
            long_line: false,
        }
    }

    /// Reads `chunk` for the debit comment; records it once it has arrived whole.
    fn read_debit(&mut self, chunk: &[u8]) -> Result<(), ClientError> {
        if self.debit.is_none() {
            return Ok(());
        }
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            let (piece, after) = rest.split_at(end);
            rest = &after[1..];
            let whole = !self.long_line && self.line.len() + piece.len() <= MAX_DEBIT_LINE;
            if whole {
                self.line.extend_from_slice(piece);
                let line = std::mem::take(&mut self.line);
                if line.first() == Some(&b':')
                    && let Some(read) = std::str::from_utf8(&line)
                        .ok()
                        .and_then(plannt_l402::mpp::SessionDebit::parse_line)
                {
                    self.reported(read.ok())?;
                    if self.debit.is_none() {
                        return Ok(());
                    }
                }
            }
            self.line.clear();
            self.long_line = false;
        }
        if !self.long_line && self.line.len() + rest.len() <= MAX_DEBIT_LINE {
            self.line.extend_from_slice(rest);
        } else {
            self.line.clear();
            self.long_line = true;
        }
        Ok(())
    }

    /// The server's debit comment, read (`None`: garbled): recorded as it says when it names
    /// this session and can be true, else as the estimate.
    fn reported(
        &mut self,
        debit: Option<plannt_l402::mpp::SessionDebit>,
    ) -> Result<(), ClientError> {
        let Some(pending) = self.debit.take() else {
            return Ok(());
        };
        let ours = debit.filter(|d| d.session_id == hex::encode(self.session_id));
        let Some(debit) = ours else {
            tracing::warn!(
                "the stream's debit is unreadable or names another session: one unit recorded, an estimate"
            );
            self.ledger.session_debit(
                &self.session_id,
                &pending.path,
                pending.estimate_msat,
                None,
                plannt_lightning::invoice::unix_now(),
            )?;
            return Ok(());
        };
        let credible = self.ledger.session_debit_reported(
            &self.session_id,
            &pending.path,
            (
                debit.debit_sats.saturating_mul(1000),
                debit.balance_sats.map(|b| b.saturating_mul(1000)),
            ),
            pending.estimate_msat,
            plannt_lightning::invoice::unix_now(),
        )?;
        if !credible {
            tracing::warn!(
                debit_sats = debit.debit_sats,
                balance_sats = debit.balance_sats,
                "the server reported a debit or a balance more than was paid into the session: one unit recorded, an estimate"
            );
        }
        Ok(())
    }

    /// The stream ended (or was dropped) without a debit: the estimate is recorded.
    fn ended(&mut self) -> Result<(), ClientError> {
        if let Some(pending) = self.debit.take() {
            tracing::info!(
                "the stream ended without the server's debit: one unit recorded, an estimate"
            );
            self.ledger.session_debit(
                &self.session_id,
                &pending.path,
                pending.estimate_msat,
                None,
                plannt_lightning::invoice::unix_now(),
            )?;
        }
        Ok(())
    }

    /// Reads `chunk`; the event's data once it has arrived whole.
    fn read(&mut self, chunk: &[u8]) -> Option<plannt_l402::mpp::NeedTopUp> {
        self.tail.extend_from_slice(chunk);
        if self.tail.len() > WATCHED_TAIL {
            let cut = self.tail.len() - WATCHED_TAIL;
            self.tail.drain(..cut);
        }
        let text = String::from_utf8_lossy(&self.tail);
        let marker = format!("event: {}", plannt_l402::mpp::NEED_TOPUP_EVENT);
        let after = &text[text.find(&marker)? + marker.len()..];
        let data = after.lines().find_map(|l| l.strip_prefix("data:"))?;
        // The data line must have ended: its newline is in the text.
        let ended = [format!("data:{data}\n"), format!("data:{data}\r\n")];
        if !ended.iter().any(|line| after.contains(line.as_str())) {
            return None;
        }
        plannt_l402::mpp::NeedTopUp::parse_data(data.trim()).ok()
    }
}

impl Drop for SessionWatch {
    /// A stream dropped before its debit: the estimate is recorded.
    fn drop(&mut self) {
        if let Err(e) = self.ended() {
            tracing::warn!(error = %e, "the estimate of a session debit could not be recorded");
        }
    }
}

/// A paid request's answer being read: the ledger recorded it answered when its status and
/// headers arrived; a body that breaks off puts it back among the unanswered, to be sent again.
pub(crate) struct Answering {
    pub(crate) ledger: crate::ledger::Ledger,
    pub(crate) payment_hash: plannt_l402::PaymentHash,
}

/// A paid token as presented: the header that carries it in its dialect (`Authorization` for
/// L402 and MPP, `PAYMENT-SIGNATURE` for x402) and its value. The value is a secret (it holds the
/// preimage, and for L402 the macaroon): it has no `Debug`, and is never logged or reported.
pub(crate) struct Presented {
    pub(crate) name: HeaderName,
    pub(crate) value: String,
}

/// The timeouts a request ran under, for what its failures say.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) connect: Duration,
    pub(crate) max_time: Duration,
}

impl Response {
    /// The next piece of the body; `None` at the end. For a paid request, a body that breaks
    /// off puts it back among the unanswered in the ledger (the error names its payment hash):
    /// the same request sent again presents the same credential instead of paying.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, ClientError> {
        let limits = self.limits;
        match self.body.chunk().await {
            Ok(Some(chunk)) => {
                if self.need_top_up.is_none()
                    && let Some(watch) = &mut self.session
                    && let Some(event) = watch.read(&chunk)
                {
                    tracing::info!(
                        spent_sats = event.balance_spent,
                        required_sats = event.balance_required,
                        "the server stopped the stream: the session needs a top-up"
                    );
                    watch.ledger.session_short(&watch.session_id)?;
                    self.need_top_up = Some(Box::new(event));
                }
                if let Some(watch) = &mut self.session {
                    watch.read_debit(&chunk)?;
                }
                Ok(Some(chunk))
            }
            Ok(None) => {
                if let Some(watch) = &mut self.session {
                    watch.ended()?;
                }
                Ok(None)
            }
            Err(e) => {
                let mut error = NetworkError::new(e, Step::Body, limits);
                if let Some(a) = &self.answer {
                    a.ledger.answer_broke_off(&a.payment_hash)?;
                    error.token_kept = Some(hex::encode(a.payment_hash));
                }
                Err(ClientError::Network(error))
            }
        }
    }

    /// The whole body, up to `limit` bytes; `Err` past it.
    pub async fn bytes(&mut self, limit: usize) -> Result<Bytes, ClientError> {
        let mut out = Vec::new();
        while let Some(chunk) = self.chunk().await? {
            if out.len() + chunk.len() > limit {
                return Err(ClientError::TooLarge(limit));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(out))
    }
}

/// What the client may do for one call.
#[derive(Default)]
pub struct Options<'a> {
    /// Lower the per-request cap for this call (never raises it).
    pub max_sats: Option<u64>,
    /// Check the challenge and report the price, but pay nothing.
    pub dry_run: bool,
    /// Called at each step.
    pub on_event: Option<&'a (dyn Fn(&Event<'_>) + Send + Sync)>,
    /// The dialects this call may pay, in the order it prefers them: it narrows (and may
    /// reorder) the policy's `dialects`, never widens them. `None`: the policy's.
    pub dialects: Option<&'a [Dialect]>,
    /// Lower the most a prepaid session may hold for this call (never raises the policy's
    /// `session_deposit_sats`): a session whose deposit, or a top-up that would make it hold
    /// more, is not paid, and a charge is paid instead. `Some(0)`: no session is used.
    pub max_session_sats: Option<u64>,
}

/// The outcome of a call.
pub enum Outcome {
    /// The server answered (after paying, if it asked and the checks passed).
    Response(Response),
    /// A dry run: what paying would cost; nothing was paid.
    DryRun(Quote),
}

/// What the client was doing with the server when a network failure stopped it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// Sending the request and waiting for the answer's status and headers.
    Request,
    /// Reading the answer's body.
    Body,
    /// About to pay: the max time ran out before the payment began, so nothing was paid.
    Pay,
}

/// A request that got no whole answer: why ([`NetworkCause`]), from which server, at which
/// step, and whether a paid token is kept for it. It shows the server's origin, never the path
/// or query (which may carry a key).
#[derive(Debug)]
pub struct NetworkError {
    /// Why.
    pub cause: NetworkCause,
    /// The server's origin: scheme, host and port.
    pub origin: String,
    /// The step it broke at.
    pub step: Step,
    /// For a timeout, the limit that ran out.
    pub limit: Option<Duration>,
    /// What the system, the resolver or the TLS library said underneath (no URL); may be empty.
    pub detail: String,
    /// The payment hash (hex) of a token paid for this request and kept unused, when the failure
    /// came after paying (or while presenting a token paid earlier): the next request to the
    /// same place presents it, and nothing more is paid.
    pub token_kept: Option<String>,
    source: Option<reqwest::Error>,
}

impl NetworkError {
    pub(crate) fn new(error: reqwest::Error, step: Step, limits: Limits) -> Self {
        let cause = NetworkCause::of(&error);
        let origin = error
            .url()
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_else(|| "the server".into());
        let limit = match cause {
            NetworkCause::ConnectTimeout => Some(limits.connect),
            NetworkCause::Timeout => Some(limits.max_time),
            _ => None,
        };
        NetworkError {
            cause,
            origin,
            step,
            limit,
            detail: plannt_lightning::network_detail(&error),
            token_kept: None,
            source: Some(error),
        }
    }

    /// The max time ran out before `step` could start, at `origin`.
    pub(crate) fn out_of_time(origin: String, max_time: Duration, step: Step) -> Self {
        NetworkError {
            cause: NetworkCause::Timeout,
            origin,
            step,
            limit: Some(max_time),
            detail: String::new(),
            token_kept: None,
            source: None,
        }
    }

    /// Whether the server may have received the request: `false` when no connection was made.
    pub fn may_have_been_sent(&self) -> bool {
        self.cause.may_have_been_sent()
    }

    fn detail(&self) -> String {
        if self.detail.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.detail)
        }
    }
}

/// Seconds as a person reads them: `10 s`, `0.5 s`.
pub(crate) fn secs(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} s", (d.as_secs_f64() * 1000.0).round() / 1000.0)
    }
}

impl std::fmt::Display for NetworkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let origin = &self.origin;
        let limit = self.limit.map(secs).unwrap_or_default();
        match self.cause {
            NetworkCause::UnknownHost if self.detail.is_empty() => write!(
                f,
                "the host name of {origin} does not resolve (DNS): check its spelling"
            ),
            NetworkCause::UnknownHost => write!(
                f,
                "the host name of {origin} does not resolve (DNS: {}): check its spelling",
                self.detail
            ),
            NetworkCause::Refused => write!(
                f,
                "{origin} refused the connection: nothing listens on that port (is the server running, and is the port right?)"
            ),
            NetworkCause::Tls => write!(
                f,
                "the TLS handshake with {origin} failed{}: is it an https server, with a certificate that verifies?",
                self.detail()
            ),
            NetworkCause::ConnectTimeout => write!(
                f,
                "timeout: no connection to {origin} within {limit} (the connect timeout: --connect-timeout, connect_timeout_secs)"
            ),
            NetworkCause::Connect => {
                write!(
                    f,
                    "no connection could be made to {origin}{}",
                    self.detail()
                )
            }
            NetworkCause::Timeout if self.step == Step::Pay => write!(
                f,
                "timeout: the max time for the whole request ({limit}: --max-time, max_time_secs) ran out before paying {origin}; nothing was paid"
            ),
            NetworkCause::Timeout => {
                let what = match self.step {
                    Step::Body => "did not send the whole body",
                    _ => "did not answer",
                };
                write!(
                    f,
                    "timeout: {origin} {what} within {limit}, the max time for the whole request (--max-time, max_time_secs)"
                )
            }
            NetworkCause::Closed => write!(
                f,
                "the connection to {origin} was reset or closed before the answer was complete{}",
                self.detail()
            ),
            _ => write!(f, "the request to {origin} failed{}", self.detail()),
        }?;
        if let Some(hash) = &self.token_kept {
            write!(
                f,
                "; a token paid for this request is kept (payment hash {hash}): run the request again to present it, and nothing more is paid"
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for NetworkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server cannot be reached, did not answer in time, or the connection broke: the cause
    /// in plain words, and the server's origin.
    #[error("network error: {0}")]
    Network(#[source] NetworkError),
    /// A check refused the invoice, or where the request would go. Nothing was paid (nor sent,
    /// for a refusal of where it would go).
    #[error("{}{}", if .0.before_sending() { "refused to send the request: " } else { "refused to pay: " }, .0)]
    Refused(#[from] Refusal),
    /// Paying would exceed a budget. Nothing was paid.
    #[error("over budget: the {window} budget of {limit} sats has {left} sats left, and this payment needs {cost} (its price plus the fee reserve){renew}", window = .0.window, limit = .0.limit_sats, left = .0.left_sats, cost = .0.cost_sats, renew = .0.renews_in_secs.map(|s| format!("; more frees up in {s} s")).unwrap_or_default())]
    OverBudget(OverBudget),
    /// The payment failed. Nothing was paid, and its reservation is released. A wallet that
    /// could not be reached ([`LightningError::Unreachable`]) was sent nothing.
    #[error("payment failed: {0}{hint}", hint = payment_failed_hint(.0))]
    PaymentFailed(#[source] LightningError),
    /// The payment's outcome is unknown; it is recorded as pending and will be looked up, never
    /// paid again.
    #[error(
        "the payment {0} is still in flight; run the request again to finish it (it will not be paid twice)"
    )]
    PaymentPending(String),
    /// The max time ran out while the payment was in flight: it stays pending in the ledger (and
    /// the wallet's answer, if it comes while this process lives, is recorded), and is looked up
    /// by the next run, never paid twice.
    #[error(
        "timeout: the max time of {} ran out while the payment {payment_hash} was in flight (--max-time, max_time_secs); it stays pending in the ledger: run the request again to finish it (it will not be paid twice)",
        secs(*limit)
    )]
    PaymentTimedOut {
        /// The payment hash, hex.
        payment_hash: String,
        /// The max time that ran out.
        limit: Duration,
    },
    /// The 402 carries no challenge we can read.
    #[error("the server asked for payment without a usable challenge: {0}")]
    BadChallenge(String),
    /// The 402 offers no dialect this call may pay. Nothing was paid.
    #[error(
        "the server offers {} but this call may pay only {}: nothing was paid (allow another dialect with --dialect or the pay_dialects setting, PLANNT_PAY_DIALECTS)",
        names(offered),
        names(allowed)
    )]
    NoDialect {
        /// What the 402 offered, in its order.
        offered: Vec<Dialect>,
        /// What the call may pay, in the order it prefers them.
        allowed: Vec<Dialect>,
    },
    /// A paid request's answer was lost (the connection broke, the time ran out, the process
    /// died), and the server answered the same credential, presented again for the same request,
    /// with a 402: it kept no answer. Nothing more was paid; sending the request again pays again.
    #[error(
        "paid; the answer was lost and the server kept none: {origin} took the payment (payment hash {payment_hash}) but answered a 402 when the same credential was presented again for the same request. Nothing more was paid, and nothing will be paid again on its own: send the request again to pay for a new answer, or ask the operator of {origin} about this payment"
    )]
    AnswerLost {
        /// The payment hash, hex.
        payment_hash: String,
        /// The server's origin.
        origin: String,
    },
    /// A paid request without an answer cannot be sent again from the ledger.
    #[error(
        "the request paid by {payment_hash} cannot be sent again: {why}. Nothing was sent and nothing was paid"
    )]
    NotRetryable {
        /// The payment hash, hex.
        payment_hash: String,
        /// Why (its body was over the bound the ledger records, or no such request).
        why: String,
    },
    /// A prepaid session was topped up and the server still asked for more: no more is paid
    /// into it by this call.
    #[error(
        "the session {session_id} with {origin} was topped up and the server still asks for payment: nothing more is paid into it now. Close it (plannt session close {session_id}) to have its balance refunded, or lower session_deposit_sats for this host"
    )]
    SessionStillUnpaid {
        /// The session id, hex.
        session_id: String,
        /// The server's origin.
        origin: String,
    },
    /// The server asked a prepaid session for a top-up, and the policy does not let it be paid
    /// (the session would hold more than `session_deposit_sats`, or a budget is spent), and the
    /// server offered no charge to pay instead.
    #[error(
        "the session {session_id} with {origin} needs a top-up, and it cannot be paid: {why}. Nothing was paid; close the session (plannt session close {session_id}) to have its balance refunded"
    )]
    TopUpRefused {
        /// The session id, hex.
        session_id: String,
        /// The server's origin.
        origin: String,
        /// Why: the refusal or the budget that stopped it.
        why: String,
    },
    /// Closing a session failed: the server did not take the close.
    #[error(
        "the session {session_id} with {origin} could not be closed: {why}. It stays in the ledger, to be closed again (plannt session close {session_id})"
    )]
    SessionNotClosed {
        /// The session id, hex.
        session_id: String,
        /// The server's origin.
        origin: String,
        /// What the server answered.
        why: String,
    },
    /// No wallet to make the return invoice a session's refund is paid to.
    #[error(
        "no session with {0} can be opened: the wallet cannot issue an invoice without an amount, to be refunded to"
    )]
    NoReturnInvoice(String),
    /// The ledger cannot be used.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// A body is larger than allowed.
    #[error("the body is larger than {0} bytes")]
    TooLarge(usize),
}

/// `l402, mpp`, or `nothing` for none.
fn names(dialects: &[Dialect]) -> String {
    if dialects.is_empty() {
        return "nothing".into();
    }
    dialects
        .iter()
        .map(Dialect::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a failed payment's message adds: nothing was paid; for a wallet that could not be
/// reached, what to check.
fn payment_failed_hint(error: &LightningError) -> &'static str {
    match error {
        LightningError::Unreachable(_) => {
            ". Nothing was paid and the budget reservation is released: check that the wallet is running and that its URI (--wallet or PLANNT_WALLET) names the right host and port"
        }
        _ => ". Nothing was paid and the budget reservation is released",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_timeout_says_it_was_one_and_its_phase() {
        let origin = "http://api.example:8080".to_string();
        let mut e =
            NetworkError::out_of_time(origin.clone(), Duration::from_secs(2), Step::Request);
        assert_eq!(
            e.to_string(),
            "timeout: http://api.example:8080 did not answer within 2 s, the max time for the whole request (--max-time, max_time_secs)"
        );
        e.step = Step::Body;
        assert!(
            e.to_string()
                .contains("did not send the whole body within 2 s"),
            "{e}"
        );
        e.step = Step::Pay;
        assert!(
            e.to_string()
                .contains("ran out before paying http://api.example:8080; nothing was paid"),
            "{e}"
        );
        e.step = Step::Request;
        e.cause = NetworkCause::ConnectTimeout;
        e.limit = Some(Duration::from_millis(1_500));
        assert!(
            e.to_string()
                .starts_with("timeout: no connection to http://api.example:8080 within 1.5 s (the connect timeout"),
            "{e}"
        );
        e.token_kept = Some("ab".repeat(32));
        assert!(
            e.to_string()
                .contains("a token paid for this request is kept"),
            "{e}"
        );
    }
}
