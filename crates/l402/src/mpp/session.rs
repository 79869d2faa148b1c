//! The Lightning `session` intent (draft-lightning-session-00): a prepaid deposit, requests
//! authenticated by the deposit's preimage and debited by what they use, top-ups, and a close
//! that refunds the unspent balance to an invoice the client gave at open. No I/O: the wire
//! types, minting a session challenge and verifying a session credential against it.
//!
//! ```text
//! 402  WWW-Authenticate: Payment id="<hmac>", realm="…", method="lightning", intent="session",
//!                        request="<base64url of the JCS JSON below>", expires="<RFC 3339>"
//!      request: {"amount":"2","currency":"sat","depositAmount":"2000","depositInvoice":"lnbc…",
//!                "externalId":"<route>","idleTimeout":"300","paymentHash":"<hex>",
//!                "unitType":"token"}
//! pay the deposit invoice, learn the preimage, then on each request:
//!      Authorization: Payment <base64url of {"challenge":{…echoed…},"payload":{…}}>
//!      payload  open:   {"action":"open","preimage":"<hex>","returnInvoice":"lnbc…"}
//!               bearer: {"action":"bearer","sessionId":"<paymentHash>","preimage":"<hex>"}
//!               topUp:  {"action":"topUp","sessionId":"<paymentHash>","topUpPreimage":"<hex>"}
//!               close:  {"action":"close","sessionId":"<paymentHash>","preimage":"<hex>"}
//! 200  Payment-Receipt: <base64url of {"method":"lightning","reference":"<sessionId>",
//!                        "status":"success","timestamp":"…","refundSats":140,
//!                        "refundStatus":"succeeded"}>            (refund fields on close)
//!      a bearer's JSON answer:  {…,"debitSats":17,"balanceSats":1983}
//!      a bearer's stream:       {…,"heldSats":33,"balanceSats":1967} (the hold, when the
//!                               headers go), and before its `data: [DONE]`:
//! SSE  : plannt-session-debit {"sessionId":"<hex>","debitSats":17,"balanceSats":1983}
//! SSE  event: payment-need-topup
//!      data: {"sessionId":"<hex>","balanceSpent":300,"balanceRequired":2}
//! ```
//!
//! The debit fields are Plannt's, added to the draft's receipt (section 15): a reader that does
//! not know them skips them, as a JSON object's unknown members are (Aperture's receipt type
//! does). A stream's headers go before its usage is known, so its receipt gives what was held
//! and the debit follows as an SSE comment line, which every SSE reader skips (an OpenAI SDK
//! among them): [`SessionDebit`].
//!
//! The session id is the payment hash of the deposit invoice; its preimage is the bearer
//! secret. `amount` is the price of one unit (`unitType`, e.g. a token) in sats. As in the
//! charge, Plannt binds the route in the request's `externalId` (covered by the challenge id),
//! so a session opened on one route is not spent on another.
//!
//! Verification ([`ChallengeKeys::verify_session`]) checks what needs no state: the echoed
//! challenge is ours (its id), a Lightning session for this route, and the payload's proof
//! hashes to what it must (the deposit's or the top-up's payment hash, or the session id).
//! Whether the session exists, is open and holds enough is the caller's store; so is spending a
//! deposit's or a top-up's payment hash once.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::credential::{MintCheck, check_mint};
use super::{
    CURRENCY_SAT, ChallengeKeys, METHOD_LIGHTNING, MintError, PaymentChallenge, PaymentCredential,
    ReceiptError, VerifyError, decode_request,
};
use crate::dialect::{self, InvoiceFacts, Network, PayCheckError};
use crate::encoding::{base64url_decode, base64url_encode};
use crate::header::MAX_HEADER_LEN;
use crate::time::{format_rfc3339, parse_rfc3339};
use crate::{PaymentHash, Preimage, jcs};

/// The prepaid session intent.
pub const INTENT_SESSION: &str = "session";
/// The SSE event name a stream sends when the session's balance cannot pay for more
/// (draft-lightning-session-00, section 13.1), as Aperture names it.
pub const NEED_TOPUP_EVENT: &str = "payment-need-topup";
/// The name of the SSE comment that carries a stream's final debit ([`SessionDebit`]).
pub const DEBIT_COMMENT: &str = "plannt-session-debit";

/// The `request` of a Lightning session challenge (draft-lightning-session-00, section 7).
/// Amounts are decimal strings of sats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRequest {
    /// The price of one unit of service in sats.
    pub amount: String,
    /// `sat`.
    pub currency: String,
    /// What the session buys, for humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The unit priced, e.g. `token`.
    #[serde(default, rename = "unitType", skip_serializing_if = "Option::is_none")]
    pub unit_type: Option<String>,
    /// The BOLT11 invoice to pay to open the session, or to top it up.
    #[serde(
        default,
        rename = "depositInvoice",
        skip_serializing_if = "Option::is_none"
    )]
    pub deposit_invoice: Option<String>,
    /// The deposit invoice's payment hash, lowercase hex: the session id of an open.
    #[serde(rename = "paymentHash")]
    pub payment_hash: String,
    /// The deposit in sats: the deposit invoice's amount.
    #[serde(
        default,
        rename = "depositAmount",
        skip_serializing_if = "Option::is_none"
    )]
    pub deposit_amount: Option<String>,
    /// Seconds without a request after which the server closes the session and refunds it.
    #[serde(
        default,
        rename = "idleTimeout",
        skip_serializing_if = "Option::is_none"
    )]
    pub idle_timeout: Option<String>,
    /// Plannt's binding of the route, as in the charge request: the route id.
    #[serde(
        default,
        rename = "externalId",
        skip_serializing_if = "Option::is_none"
    )]
    pub external_id: Option<String>,
}

/// Why a challenge's `request` is not a Lightning session request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionRequestError {
    /// Not strict base64url.
    #[error("the session request is not base64url")]
    NotBase64url,
    /// Not the JSON of a session request.
    #[error("the request is not a session request: {0}")]
    NotJson(String),
}

impl SessionRequest {
    /// The `request` parameter: base64url of the JCS form of this JSON.
    pub fn encode(&self) -> String {
        base64url_encode(self.canonical_json().as_bytes())
    }

    /// The JCS form of this JSON (RFC 8785).
    pub fn canonical_json(&self) -> String {
        let value = serde_json::to_value(self).expect("strings serialize");
        jcs::to_canonical_string(&value)
    }

    /// Reads a `request` parameter.
    pub fn decode(request: &str) -> Result<SessionRequest, SessionRequestError> {
        decode_request(
            request,
            SessionRequestError::NotBase64url,
            SessionRequestError::NotJson,
        )
    }

    /// The price of one unit in sats, if a positive whole number.
    pub fn amount_sats(&self) -> Option<u64> {
        dialect::parse_amount(&self.amount)
    }

    /// The deposit in sats, if present and a positive whole number.
    pub fn deposit_sats(&self) -> Option<u64> {
        self.deposit_amount
            .as_deref()
            .and_then(dialect::parse_amount)
    }

    /// The idle timeout in seconds, if present and a positive whole number.
    pub fn idle_secs(&self) -> Option<u64> {
        self.idle_timeout.as_deref().and_then(dialect::parse_amount)
    }

    /// The deposit's payment hash, if 64 hex characters.
    pub fn payment_hash(&self) -> Option<PaymentHash> {
        PaymentHash::from_hex(&self.payment_hash).ok()
    }

    /// The checks a client runs before paying the deposit (or top-up) invoice, over the invoice
    /// it decoded: currency `sat`, a positive unit price, a deposit invoice whose amount is
    /// `depositAmount` and whose payment hash is `paymentHash`, on the wallet's network, and
    /// neither the invoice nor the challenge (`challenge_expires_at`) expired.
    pub fn check_before_paying(
        &self,
        invoice: &InvoiceFacts,
        wallet: Network,
        challenge_expires_at: Option<u64>,
        now: u64,
    ) -> Result<(), PayCheckError> {
        if self.currency != CURRENCY_SAT {
            return Err(PayCheckError::Unsupported(format!(
                "currency {:?}",
                self.currency
            )));
        }
        if self.amount_sats().is_none() {
            return Err(PayCheckError::BadAmount(self.amount.clone()));
        }
        if self.deposit_invoice.is_none() {
            return Err(PayCheckError::Unsupported(
                "a session challenge without a deposit invoice".into(),
            ));
        }
        let deposit = self.deposit_amount.clone().unwrap_or_default();
        let msat = self
            .deposit_sats()
            .and_then(|sats| sats.checked_mul(1000))
            .ok_or(PayCheckError::BadAmount(deposit))?;
        if self.payment_hash() != Some(invoice.payment_hash) {
            return Err(PayCheckError::HashMismatch);
        }
        // The session request names no network: the invoice's prefix is the offer's.
        let named = invoice.network.name();
        dialect::check_invoice(msat, (named, Some(invoice.network)), invoice, wallet, now)?;
        if let Some(at) = challenge_expires_at.filter(|at| now >= *at) {
            return Err(PayCheckError::Expired { expired_at: at });
        }
        Ok(())
    }
}

impl PaymentChallenge {
    /// Whether this is a Lightning session (`method="lightning"`, `intent="session"`).
    pub fn is_lightning_session(&self) -> bool {
        self.method == METHOD_LIGHTNING && self.intent == INTENT_SESSION
    }

    /// The `request`, decoded as a Lightning session request.
    pub fn session_request(&self) -> Result<SessionRequest, SessionRequestError> {
        SessionRequest::decode(&self.request)
    }
}

/// What a session credential does (draft-lightning-session-00, section 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SessionAction {
    /// Opens a session with a paid deposit and a return invoice.
    #[serde(rename = "open")]
    Open,
    /// Spends from an open session: the request is debited by what it uses.
    #[serde(rename = "bearer")]
    Bearer,
    /// Adds a paid top-up invoice's amount to the session.
    #[serde(rename = "topUp")]
    TopUp,
    /// Closes the session; the unspent balance is paid to the return invoice.
    #[serde(rename = "close")]
    Close,
}

impl SessionAction {
    /// The name on the wire.
    pub fn as_str(&self) -> &'static str {
        match self {
            SessionAction::Open => "open",
            SessionAction::Bearer => "bearer",
            SessionAction::TopUp => "topUp",
            SessionAction::Close => "close",
        }
    }
}

/// The `payload` of a session credential. Which fields are set depends on the action; the
/// constructors set exactly those. `Debug` hides both preimages.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionPayload {
    /// What the credential does.
    pub action: SessionAction,
    /// The deposit's preimage, lowercase hex: for `open`, `bearer` and `close`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preimage: Option<String>,
    /// The session id (the deposit's payment hash, hex): for `bearer`, `topUp` and `close`.
    #[serde(default, rename = "sessionId", skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// An amountless BOLT11 invoice the refund is paid to: for `open`.
    #[serde(
        default,
        rename = "returnInvoice",
        skip_serializing_if = "Option::is_none"
    )]
    pub return_invoice: Option<String>,
    /// The top-up invoice's preimage, lowercase hex: for `topUp`.
    #[serde(
        default,
        rename = "topUpPreimage",
        skip_serializing_if = "Option::is_none"
    )]
    pub top_up_preimage: Option<String>,
}

impl fmt::Debug for SessionPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("SessionPayload")
            .field("action", &self.action)
            .field("preimage", &hidden(&self.preimage))
            .field("session_id", &self.session_id)
            .field("return_invoice", &self.return_invoice)
            .field("top_up_preimage", &hidden(&self.top_up_preimage))
            .finish()
    }
}

impl SessionPayload {
    fn empty(action: SessionAction) -> Self {
        SessionPayload {
            action,
            preimage: None,
            session_id: None,
            return_invoice: None,
            top_up_preimage: None,
        }
    }

    /// Opens a session: the deposit's preimage and the amountless invoice refunds go to.
    pub fn open(deposit_preimage: &Preimage, return_invoice: &str) -> Self {
        SessionPayload {
            preimage: Some(deposit_preimage.to_hex()),
            return_invoice: Some(return_invoice.to_string()),
            ..Self::empty(SessionAction::Open)
        }
    }

    /// Spends from the session whose deposit this preimage paid.
    pub fn bearer(deposit_preimage: &Preimage) -> Self {
        SessionPayload {
            preimage: Some(deposit_preimage.to_hex()),
            session_id: Some(deposit_preimage.hash().to_hex()),
            ..Self::empty(SessionAction::Bearer)
        }
    }

    /// Tops the session `session_id` up with a paid top-up invoice.
    pub fn top_up(session_id: &PaymentHash, top_up_preimage: &Preimage) -> Self {
        SessionPayload {
            session_id: Some(session_id.to_hex()),
            top_up_preimage: Some(top_up_preimage.to_hex()),
            ..Self::empty(SessionAction::TopUp)
        }
    }

    /// Closes the session whose deposit this preimage paid.
    pub fn close(deposit_preimage: &Preimage) -> Self {
        SessionPayload {
            preimage: Some(deposit_preimage.to_hex()),
            session_id: Some(deposit_preimage.hash().to_hex()),
            ..Self::empty(SessionAction::Close)
        }
    }

    /// Reads the payload of a credential.
    pub fn from_credential(credential: &PaymentCredential) -> Result<Self, VerifyError> {
        if credential
            .payload
            .get("action")
            .and_then(|a| a.as_str())
            .is_none()
        {
            return Err(VerifyError::SessionField("action"));
        }
        serde_json::from_value(serde_json::Value::Object(credential.payload.clone()))
            .map_err(|_| VerifyError::SessionField("action"))
    }

    /// `preimage`, if 64 hex characters.
    pub fn preimage(&self) -> Option<Preimage> {
        self.preimage
            .as_deref()
            .and_then(|h| Preimage::from_hex(h).ok())
    }

    /// `sessionId`, if 64 hex characters.
    pub fn session_id(&self) -> Option<PaymentHash> {
        self.session_id
            .as_deref()
            .and_then(|h| PaymentHash::from_hex(h).ok())
    }

    /// `topUpPreimage`, if 64 hex characters.
    pub fn top_up_preimage(&self) -> Option<Preimage> {
        self.top_up_preimage
            .as_deref()
            .and_then(|h| Preimage::from_hex(h).ok())
    }
}

impl PaymentCredential {
    /// A session credential: every parameter of `challenge` echoed, the payload as given.
    pub fn session(challenge: &PaymentChallenge, payload: &SessionPayload) -> Self {
        let payload = match serde_json::to_value(payload).expect("strings serialize") {
            serde_json::Value::Object(map) => map,
            _ => unreachable!("a struct serializes as an object"),
        };
        PaymentCredential {
            challenge: challenge.clone(),
            source: None,
            payload,
        }
    }
}

/// How the refund of a close went (draft-lightning-session-00, section 15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RefundStatus {
    /// The unspent balance was paid to the return invoice.
    Succeeded,
    /// The payment was tried and did not go through: the server still holds the balance.
    Failed,
    /// Nothing was left to refund.
    Skipped,
}

impl RefundStatus {
    /// The name on the wire.
    pub fn as_str(&self) -> &'static str {
        match self {
            RefundStatus::Succeeded => "succeeded",
            RefundStatus::Failed => "failed",
            RefundStatus::Skipped => "skipped",
        }
    }
}

/// The `Payment-Receipt` of a session request (draft-lightning-session-00, section 15). The
/// refund fields are there on a close. Fields in Aperture's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionReceipt {
    /// `lightning`.
    pub method: String,
    /// The session id (the deposit's payment hash, hex).
    pub reference: String,
    /// Always `success`.
    pub status: String,
    /// When, RFC 3339.
    pub timestamp: String,
    /// The refunded sats, on a close; omitted when 0.
    #[serde(default, rename = "refundSats", skip_serializing_if = "is_zero")]
    pub refund_sats: u64,
    /// How the refund went, on a close.
    #[serde(
        default,
        rename = "refundStatus",
        skip_serializing_if = "Option::is_none"
    )]
    pub refund_status: Option<RefundStatus>,
    /// Plannt's: the sats this request was debited (a bearer's JSON answer).
    #[serde(default, rename = "debitSats", skip_serializing_if = "Option::is_none")]
    pub debit_sats: Option<u64>,
    /// Plannt's: the sats this request holds while its stream runs (a bearer's stream; the
    /// debit follows as [`SessionDebit`]).
    #[serde(default, rename = "heldSats", skip_serializing_if = "Option::is_none")]
    pub held_sats: Option<u64>,
    /// Plannt's: the session's balance after the debit (or the hold), in sats.
    #[serde(
        default,
        rename = "balanceSats",
        skip_serializing_if = "Option::is_none"
    )]
    pub balance_sats: Option<u64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl SessionReceipt {
    /// The receipt of a request served from session `session_id` at `at` (unix seconds).
    pub fn served(session_id: &PaymentHash, at: u64) -> Self {
        SessionReceipt {
            method: METHOD_LIGHTNING.to_string(),
            reference: session_id.to_hex(),
            status: "success".to_string(),
            timestamp: format_rfc3339(at).unwrap_or_else(|| "9999-12-31T23:59:59Z".into()),
            refund_sats: 0,
            refund_status: None,
            debit_sats: None,
            held_sats: None,
            balance_sats: None,
        }
    }

    /// The receipt of a request served from session `session_id` and debited `debit_sats`,
    /// leaving `balance_sats` (`None` when the balance could not be read).
    pub fn debited(
        session_id: &PaymentHash,
        debit_sats: u64,
        balance_sats: Option<u64>,
        at: u64,
    ) -> Self {
        SessionReceipt {
            debit_sats: Some(debit_sats),
            balance_sats,
            ..Self::served(session_id, at)
        }
    }

    /// The receipt of a stream served from session `session_id`, holding `held_sats` while it
    /// runs and leaving `balance_sats`.
    pub fn holding(session_id: &PaymentHash, held_sats: u64, balance_sats: u64, at: u64) -> Self {
        SessionReceipt {
            held_sats: Some(held_sats),
            balance_sats: Some(balance_sats),
            ..Self::served(session_id, at)
        }
    }

    /// The receipt of a close: `refund_sats` and how paying them went.
    pub fn closed(
        session_id: &PaymentHash,
        refund_sats: u64,
        status: RefundStatus,
        at: u64,
    ) -> Self {
        SessionReceipt {
            refund_sats,
            refund_status: Some(status),
            ..Self::served(session_id, at)
        }
    }

    /// The header value: base64url of the JSON, unpadded.
    pub fn to_header_value(&self) -> String {
        base64url_encode(&serde_json::to_vec(self).expect("strings and numbers serialize"))
    }

    /// Reads a header value.
    pub fn parse(value: &str) -> Result<Self, ReceiptError> {
        if value.len() > MAX_HEADER_LEN {
            return Err(ReceiptError::TooLong(value.len()));
        }
        let bytes = base64url_decode(value.trim()).ok_or(ReceiptError::NotBase64url)?;
        serde_json::from_slice(&bytes).map_err(|e| ReceiptError::NotJson(e.to_string()))
    }

    /// The session id in `reference`, if it is one.
    pub fn session_id(&self) -> Option<PaymentHash> {
        PaymentHash::from_hex(&self.reference).ok()
    }
}

/// The data of a [`NEED_TOPUP_EVENT`] (draft-lightning-session-00, section 13.1): the stream
/// stopped because the balance cannot pay for the next unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeedTopUp {
    /// The session id, hex.
    #[serde(rename = "sessionId")]
    pub session_id: String,
    /// Sats spent from the session when it ran out.
    #[serde(rename = "balanceSpent")]
    pub balance_spent: u64,
    /// Sats the next unit needs.
    #[serde(rename = "balanceRequired")]
    pub balance_required: u64,
}

impl NeedTopUp {
    /// The SSE event, `event:` and `data:` lines and the blank line that ends it.
    pub fn to_sse(&self) -> String {
        format!(
            "event: {NEED_TOPUP_EVENT}\ndata: {}\n\n",
            serde_json::to_string(self).expect("strings and numbers serialize")
        )
    }

    /// Reads the `data` of the event.
    pub fn parse_data(data: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(data)
    }
}

/// The final debit of a streamed answer, sent as an SSE comment before its `data: [DONE]`:
/// `: plannt-session-debit {"sessionId":"<hex>","debitSats":17,"balanceSats":1983}` and a
/// blank line. A comment is no event: an SSE reader that does not know it skips it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionDebit {
    /// The session id, hex.
    #[serde(rename = "sessionId")]
    pub session_id: String,
    /// The sats the stream was debited.
    #[serde(rename = "debitSats")]
    pub debit_sats: u64,
    /// The session's balance after it, in sats, when the server could read it.
    #[serde(
        default,
        rename = "balanceSats",
        skip_serializing_if = "Option::is_none"
    )]
    pub balance_sats: Option<u64>,
}

impl SessionDebit {
    /// The SSE comment line and the blank line after it.
    pub fn to_sse(&self) -> String {
        format!(
            ": {DEBIT_COMMENT} {}\n\n",
            serde_json::to_string(self).expect("strings and numbers serialize")
        )
    }

    /// Reads one line of a stream: the debit, if the line is its comment (`: plannt-session-debit
    /// {…}`, with or without its line ending). `None` for any other line; `Some(Err)` for the
    /// comment with data that is not a debit.
    pub fn parse_line(line: &str) -> Option<Result<Self, serde_json::Error>> {
        let line = line.trim_end_matches(['\r', '\n']);
        let rest = line.strip_prefix(':')?.trim_start();
        let data = rest.strip_prefix(DEBIT_COMMENT)?;
        if !data.is_empty() && !data.starts_with(' ') {
            return None;
        }
        Some(serde_json::from_str(data.trim()))
    }
}

/// What one session challenge offers: a deposit (or top-up) invoice the backend issued.
#[derive(Debug, Clone, Copy)]
pub struct SessionOffer<'a> {
    /// The protection space.
    pub realm: &'a str,
    /// The route the session spends on: the request's `externalId`.
    pub route: &'a str,
    /// The price of one unit in sats: `amount`.
    pub unit_sats: u64,
    /// The unit, e.g. `token`.
    pub unit_type: Option<&'a str>,
    /// What is paid for.
    pub description: Option<&'a str>,
    /// The deposit invoice.
    pub deposit_invoice: &'a str,
    /// Its amount in sats.
    pub deposit_sats: u64,
    /// Its payment hash: the session id of an open.
    pub payment_hash: PaymentHash,
    /// The idle timeout in seconds.
    pub idle_secs: u64,
    /// Unix seconds from which an `open` or `topUp` with this challenge's invoice is refused.
    pub expires_at: u64,
}

/// What a session credential is checked against.
#[derive(Debug, Clone, Copy)]
pub struct SessionExpect<'a> {
    /// The route requested.
    pub route: &'a str,
    /// Unix seconds now.
    pub now: u64,
}

/// A session credential whose proof holds. The store decides the rest: the session exists and
/// is open, a deposit or top-up payment hash is spent once.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionVerified {
    /// Open a session of `deposit_sats` with id `session_id`.
    Open {
        /// The deposit's payment hash.
        session_id: PaymentHash,
        /// The deposit paid.
        deposit_sats: u64,
        /// The price of one unit the challenge named.
        unit_sats: u64,
        /// The idle timeout the challenge named (0 when it named none).
        idle_secs: u64,
        /// The invoice the refund is paid to, as given (not yet decoded or checked).
        return_invoice: String,
        /// Keep the deposit's payment hash spent at least until then.
        valid_until: u64,
    },
    /// Spend from `session_id`; the preimage proved it.
    Bearer {
        /// The session.
        session_id: PaymentHash,
    },
    /// Add `amount_sats` to `session_id`; spend `top_up_hash` once.
    TopUp {
        /// The session.
        session_id: PaymentHash,
        /// The top-up invoice's payment hash.
        top_up_hash: PaymentHash,
        /// Its amount.
        amount_sats: u64,
        /// Keep `top_up_hash` spent at least until then.
        valid_until: u64,
    },
    /// Close `session_id`; the preimage proved it.
    Close {
        /// The session.
        session_id: PaymentHash,
    },
}

impl SessionVerified {
    /// The session the credential concerns.
    pub fn session_id(&self) -> PaymentHash {
        match self {
            SessionVerified::Open { session_id, .. }
            | SessionVerified::Bearer { session_id }
            | SessionVerified::TopUp { session_id, .. }
            | SessionVerified::Close { session_id } => *session_id,
        }
    }

    /// The action.
    pub fn action(&self) -> SessionAction {
        match self {
            SessionVerified::Open { .. } => SessionAction::Open,
            SessionVerified::Bearer { .. } => SessionAction::Bearer,
            SessionVerified::TopUp { .. } => SessionAction::TopUp,
            SessionVerified::Close { .. } => SessionAction::Close,
        }
    }
}

impl ChallengeKeys {
    /// Mints a session challenge for `offer`, its id under the newest key.
    pub fn mint_session(&self, offer: &SessionOffer<'_>) -> Result<PaymentChallenge, MintError> {
        let key = self.minting_key()?;
        check_mint(&MintCheck {
            realm: offer.realm,
            route: offer.route,
            description: offer.description,
            invoice: offer.deposit_invoice,
            amount_sats: offer.deposit_sats.min(offer.unit_sats),
            expires_at: offer.expires_at,
        })?;
        if offer
            .unit_type
            .is_some_and(|u| u.is_empty() || u.chars().any(char::is_control))
        {
            return Err(MintError::BadDescription);
        }
        let request = SessionRequest {
            amount: offer.unit_sats.to_string(),
            currency: CURRENCY_SAT.to_string(),
            description: offer.description.map(str::to_string),
            unit_type: offer.unit_type.map(str::to_string),
            deposit_invoice: Some(offer.deposit_invoice.to_string()),
            payment_hash: offer.payment_hash.to_hex(),
            deposit_amount: Some(offer.deposit_sats.to_string()),
            idle_timeout: (offer.idle_secs > 0).then(|| offer.idle_secs.to_string()),
            external_id: Some(offer.route.to_string()),
        };
        let mut challenge = PaymentChallenge {
            id: String::new(),
            realm: offer.realm.to_string(),
            method: METHOD_LIGHTNING.to_string(),
            intent: INTENT_SESSION.to_string(),
            request: request.encode(),
            expires: format_rfc3339(offer.expires_at),
            description: None,
            opaque: None,
            digest: None,
        };
        challenge.id = key.challenge_id(&challenge);
        Ok(challenge)
    }

    /// Verifies a session credential for a request on `expect.route`: a Lightning session
    /// challenge one of our keys issued for this route, and the payload's proof:
    ///
    /// - `open`: `sha256(preimage)` is the challenge's `paymentHash`, the challenge has not
    ///   expired, a return invoice is given;
    /// - `bearer`, `close`: `sha256(preimage)` is `sessionId` (the challenge may be any session
    ///   challenge of ours for this route, expired or not: the session's idle timeout governs);
    /// - `topUp`: `sha256(topUpPreimage)` is the challenge's `paymentHash`, the challenge has not
    ///   expired, `sessionId` names the session.
    pub fn verify_session(
        &self,
        credential: &PaymentCredential,
        expect: &SessionExpect<'_>,
    ) -> Result<SessionVerified, VerifyError> {
        let challenge = &credential.challenge;
        if !challenge.is_lightning_session() {
            return Err(VerifyError::Unsupported {
                method: challenge.method.clone(),
                intent: challenge.intent.clone(),
            });
        }
        let payload = SessionPayload::from_credential(credential)?;
        if !self.issued(challenge) {
            return Err(VerifyError::UnknownChallenge);
        }
        let request = challenge
            .session_request()
            .map_err(|e| VerifyError::BadRequest(e.to_string()))?;
        let issued_for = request.external_id.clone().unwrap_or_default();
        if issued_for != expect.route {
            return Err(VerifyError::WrongRoute { issued_for });
        }
        let deposit_hash = request
            .payment_hash()
            .ok_or_else(|| VerifyError::BadRequest("no paymentHash".into()))?;
        let deposit_sats = request
            .deposit_sats()
            .ok_or_else(|| VerifyError::BadRequest("no depositAmount in whole sats".into()))?;
        let unit_sats = match (request.currency.as_str(), request.amount_sats()) {
            (CURRENCY_SAT, Some(sats)) => sats,
            _ => {
                return Err(VerifyError::BadRequest(
                    "the amount is not whole sats".into(),
                ));
            }
        };
        let unexpired = || {
            let expired_at = challenge
                .expires
                .as_deref()
                .and_then(parse_rfc3339)
                .ok_or(VerifyError::NoExpiry)?;
            if expect.now >= expired_at {
                return Err(VerifyError::Expired { expired_at });
            }
            Ok(expired_at)
        };
        let session_id = || {
            payload
                .session_id()
                .ok_or(VerifyError::SessionField("sessionId"))
        };
        match payload.action {
            SessionAction::Open => {
                let preimage = payload.preimage().ok_or(VerifyError::NoPreimage)?;
                let return_invoice = payload
                    .return_invoice
                    .clone()
                    .filter(|i| !i.is_empty())
                    .ok_or(VerifyError::SessionField("returnInvoice"))?;
                if !preimage.pays(&deposit_hash) {
                    return Err(VerifyError::BadPreimage);
                }
                let valid_until = unexpired()?;
                Ok(SessionVerified::Open {
                    session_id: deposit_hash,
                    deposit_sats,
                    unit_sats,
                    idle_secs: request.idle_secs().unwrap_or(0),
                    return_invoice,
                    valid_until,
                })
            }
            SessionAction::Bearer | SessionAction::Close => {
                let session_id = session_id()?;
                let preimage = payload.preimage().ok_or(VerifyError::NoPreimage)?;
                if !preimage.pays(&session_id) {
                    return Err(VerifyError::BadPreimage);
                }
                Ok(if payload.action == SessionAction::Bearer {
                    SessionVerified::Bearer { session_id }
                } else {
                    SessionVerified::Close { session_id }
                })
            }
            SessionAction::TopUp => {
                let session_id = session_id()?;
                let preimage = payload
                    .top_up_preimage()
                    .ok_or(VerifyError::SessionField("topUpPreimage"))?;
                if !preimage.pays(&deposit_hash) {
                    return Err(VerifyError::BadPreimage);
                }
                let valid_until = unexpired()?;
                Ok(SessionVerified::TopUp {
                    session_id,
                    top_up_hash: deposit_hash,
                    amount_sats: deposit_sats,
                    valid_until,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mpp::ChallengeKey;

    fn keys() -> ChallengeKeys {
        ChallengeKeys::new(vec![ChallengeKey::from_secret(b"session test key")])
    }

    fn offer(hash: PaymentHash) -> SessionOffer<'static> {
        SessionOffer {
            realm: "api.example.com",
            route: "chat",
            unit_sats: 2,
            unit_type: Some("token"),
            description: Some("Q&A \"chat\""),
            deposit_invoice: "lnbcrt20u1pexample",
            deposit_sats: 2000,
            payment_hash: hash,
            idle_secs: 300,
            expires_at: 1_800_000_000,
        }
    }

    fn expect(now: u64) -> SessionExpect<'static> {
        SessionExpect { route: "chat", now }
    }

    #[test]
    fn the_minted_request_is_jcs_and_reads_back() {
        let deposit = Preimage::new([7; 32]);
        let challenge = keys().mint_session(&offer(deposit.hash())).unwrap();
        assert!(challenge.is_lightning_session());
        let request = challenge.session_request().unwrap();
        assert_eq!(request.amount_sats(), Some(2));
        assert_eq!(request.deposit_sats(), Some(2000));
        assert_eq!(request.idle_secs(), Some(300));
        assert_eq!(request.payment_hash(), Some(deposit.hash()));
        assert_eq!(request.unit_type.as_deref(), Some("token"));
        let bytes = base64url_decode(&challenge.request).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(jcs::canonicalize(&text).unwrap(), text);
    }

    #[test]
    fn each_action_verifies_and_a_wrong_preimage_does_not() {
        let keys = keys();
        let deposit = Preimage::new([7; 32]);
        let challenge = keys.mint_session(&offer(deposit.hash())).unwrap();
        let open = PaymentCredential::session(
            &challenge,
            &SessionPayload::open(&deposit, "lnbcrt1preturn"),
        );
        match keys.verify_session(&open, &expect(1_700_000_000)).unwrap() {
            SessionVerified::Open {
                session_id,
                deposit_sats,
                unit_sats,
                idle_secs,
                return_invoice,
                ..
            } => {
                assert_eq!(session_id, deposit.hash());
                assert_eq!((deposit_sats, unit_sats, idle_secs), (2000, 2, 300));
                assert_eq!(return_invoice, "lnbcrt1preturn");
            }
            other => panic!("{other:?}"),
        }
        // A bearer with an expired challenge still verifies: the session's timeout governs.
        let bearer = PaymentCredential::session(&challenge, &SessionPayload::bearer(&deposit));
        assert_eq!(
            keys.verify_session(&bearer, &expect(1_900_000_000)),
            Ok(SessionVerified::Bearer {
                session_id: deposit.hash()
            })
        );
        let close = PaymentCredential::session(&challenge, &SessionPayload::close(&deposit));
        assert_eq!(
            keys.verify_session(&close, &expect(1_700_000_000))
                .map(|v| v.action()),
            Ok(SessionAction::Close)
        );
        // Another preimage, with the session id of this one: refused.
        let mut forged = SessionPayload::bearer(&deposit);
        forged.preimage = Some(Preimage::new([8; 32]).to_hex());
        let forged = PaymentCredential::session(&challenge, &forged);
        assert_eq!(
            keys.verify_session(&forged, &expect(1_700_000_000)),
            Err(VerifyError::BadPreimage)
        );
        // An open after the challenge expired: refused.
        assert!(matches!(
            keys.verify_session(&open, &expect(1_800_000_000)),
            Err(VerifyError::Expired { .. })
        ));
        // On another route: refused.
        assert!(matches!(
            keys.verify_session(
                &bearer,
                &SessionExpect {
                    route: "other",
                    now: 1
                }
            ),
            Err(VerifyError::WrongRoute { .. })
        ));
    }

    #[test]
    fn a_top_up_pays_the_challenges_invoice_and_names_the_session() {
        let keys = keys();
        let session = Preimage::new([7; 32]).hash();
        let top_up = Preimage::new([9; 32]);
        let challenge = keys.mint_session(&offer(top_up.hash())).unwrap();
        let credential =
            PaymentCredential::session(&challenge, &SessionPayload::top_up(&session, &top_up));
        assert_eq!(
            keys.verify_session(&credential, &expect(1_700_000_000)),
            Ok(SessionVerified::TopUp {
                session_id: session,
                top_up_hash: top_up.hash(),
                amount_sats: 2000,
                valid_until: 1_800_000_000,
            })
        );
        let wrong = PaymentCredential::session(
            &challenge,
            &SessionPayload::top_up(&session, &Preimage::new([1; 32])),
        );
        assert_eq!(
            keys.verify_session(&wrong, &expect(1_700_000_000)),
            Err(VerifyError::BadPreimage)
        );
    }

    #[test]
    fn an_altered_or_foreign_challenge_is_unknown() {
        let deposit = Preimage::new([7; 32]);
        let challenge = keys().mint_session(&offer(deposit.hash())).unwrap();
        let mut altered = challenge.clone();
        altered.expires = Some("2099-01-01T00:00:00Z".into());
        let credential = PaymentCredential::session(&altered, &SessionPayload::bearer(&deposit));
        assert_eq!(
            keys().verify_session(&credential, &expect(1)),
            Err(VerifyError::UnknownChallenge)
        );
        let other = ChallengeKeys::new(vec![ChallengeKey::from_secret(b"another")]);
        let credential = PaymentCredential::session(&challenge, &SessionPayload::bearer(&deposit));
        assert_eq!(
            other.verify_session(&credential, &expect(1)),
            Err(VerifyError::UnknownChallenge)
        );
    }

    #[test]
    fn payloads_missing_what_their_action_needs_are_malformed() {
        let deposit = Preimage::new([7; 32]);
        let challenge = keys().mint_session(&offer(deposit.hash())).unwrap();
        let mut no_id = SessionPayload::bearer(&deposit);
        no_id.session_id = None;
        let mut no_return = SessionPayload::open(&deposit, "x");
        no_return.return_invoice = None;
        let mut bad_action = PaymentCredential::session(&challenge, &no_id);
        bad_action.payload.insert("action".into(), "spend".into());
        for (credential, field) in [
            (PaymentCredential::session(&challenge, &no_id), "sessionId"),
            (
                PaymentCredential::session(&challenge, &no_return),
                "returnInvoice",
            ),
            (bad_action, "action"),
        ] {
            let error = keys().verify_session(&credential, &expect(1)).unwrap_err();
            assert_eq!(error, VerifyError::SessionField(field));
            assert_eq!(error.reason(), crate::Reason::Malformed);
        }
    }

    #[test]
    fn debug_hides_both_preimages() {
        let deposit = Preimage::new([0xab; 32]);
        let mut payload = SessionPayload::open(&deposit, "lnbcrt1p");
        payload.top_up_preimage = Some(Preimage::new([0xcd; 32]).to_hex());
        let shown = format!("{payload:?}");
        assert!(
            !shown.contains("abab") && !shown.contains("cdcd"),
            "{shown}"
        );
    }

    #[test]
    fn the_need_top_up_event_is_one_sse_event() {
        let event = NeedTopUp {
            session_id: "aa".repeat(32),
            balance_spent: 300,
            balance_required: 2,
        };
        let sse = event.to_sse();
        assert!(sse.starts_with("event: payment-need-topup\ndata: {"));
        assert!(sse.ends_with("}\n\n"));
        let data = sse.lines().nth(1).unwrap().strip_prefix("data: ").unwrap();
        assert_eq!(NeedTopUp::parse_data(data).unwrap(), event);
    }

    #[test]
    fn a_bearers_receipt_says_what_it_debited_or_holds_and_what_is_left() {
        let id = Preimage::new([7; 32]).hash();
        let json = SessionReceipt::debited(&id, 17, Some(1983), 1_700_000_000);
        let read = SessionReceipt::parse(&json.to_header_value()).unwrap();
        assert_eq!(read, json);
        assert_eq!(
            (read.debit_sats, read.held_sats, read.balance_sats),
            (Some(17), None, Some(1983))
        );
        let stream = SessionReceipt::holding(&id, 33, 1967, 1_700_000_000);
        let read = SessionReceipt::parse(&stream.to_header_value()).unwrap();
        assert_eq!(
            (read.debit_sats, read.held_sats, read.balance_sats),
            (None, Some(33), Some(1967))
        );
        // The draft's receipt, without Plannt's fields, still reads; and a receipt with a
        // member neither knows reads too (additive).
        let plain = SessionReceipt::served(&id, 1_700_000_000);
        let text = String::from_utf8(base64url_decode(&plain.to_header_value()).unwrap()).unwrap();
        assert!(!text.contains("Sats"), "{text}");
        let extra = text.replace('}', r#","somethingElse":1}"#);
        let read = SessionReceipt::parse(&base64url_encode(extra.as_bytes())).unwrap();
        assert_eq!(read.debit_sats, None);
        // A debit that is not a whole number of sats is not a receipt.
        let bad = text.replace('}', r#","debitSats":-3}"#);
        assert!(SessionReceipt::parse(&base64url_encode(bad.as_bytes())).is_err());
    }

    #[test]
    fn a_streams_debit_is_one_sse_comment_that_reads_back() {
        let debit = SessionDebit {
            session_id: "aa".repeat(32),
            debit_sats: 17,
            balance_sats: Some(1983),
        };
        let sse = debit.to_sse();
        assert!(sse.starts_with(": plannt-session-debit {"), "{sse}");
        assert!(sse.ends_with("}\n\n"));
        assert_eq!(sse.lines().count(), 2, "one comment line and the blank one");
        let line = sse.lines().next().unwrap();
        assert_eq!(SessionDebit::parse_line(line).unwrap().unwrap(), debit);
        assert_eq!(
            SessionDebit::parse_line(&format!("{line}\r\n"))
                .unwrap()
                .unwrap(),
            debit
        );
        // Other lines are not it; its name with garbage after is a broken debit.
        for other in [
            "data: [DONE]",
            ": keep-alive",
            ": plannt-session-debitx {}",
            "event: payment-need-topup",
        ] {
            assert!(SessionDebit::parse_line(other).is_none(), "{other}");
        }
        assert!(
            SessionDebit::parse_line(": plannt-session-debit {\"debitSats\":\"x\"}")
                .unwrap()
                .is_err()
        );
    }
}
