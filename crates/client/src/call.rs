//! What a call to the paying client takes and gives back: the request, the options of one call,
//! the steps it reports, the outcome (a response with its receipt, or a dry run's quote), and
//! why it failed.

use bytes::Bytes;
use plannt_lightning::LightningError;
use reqwest::header::HeaderMap;
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
        /// Whether an L402 credential is attached.
        credential: bool,
    },
    /// The server asked for a payment.
    Challenge {
        /// The invoice.
        invoice: &'a str,
        /// The macaroon, base64.
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
}

/// The answer to a request.
pub struct Response {
    /// The final status.
    pub status: StatusCode,
    /// The final headers.
    pub headers: HeaderMap,
    /// The receipt, when a token was paid for or presented.
    pub receipt: Option<Receipt>,
    pub(crate) body: reqwest::Response,
}

impl Response {
    /// The next piece of the body; `None` at the end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, ClientError> {
        self.body.chunk().await.map_err(ClientError::Network)
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
}

/// The outcome of a call.
pub enum Outcome {
    /// The server answered (after paying, if it asked and the checks passed).
    Response(Response),
    /// A dry run: what paying would cost; nothing was paid.
    DryRun(Quote),
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server cannot be reached or the connection broke.
    #[error("network error: {0}")]
    Network(#[source] reqwest::Error),
    /// A check refused the invoice, or where the request would go. Nothing was paid (nor sent,
    /// for a refusal of where it would go).
    #[error("{}{}", if .0.before_sending() { "refused to send the request: " } else { "refused to pay: " }, .0)]
    Refused(#[from] Refusal),
    /// Paying would exceed a budget. Nothing was paid.
    #[error("over budget: the {window} budget of {limit} sats has {left} sats left{renew}", window = .0.window, limit = .0.limit_sats, left = .0.left_sats, renew = .0.renews_in_secs.map(|s| format!(", more frees up in {s} s")).unwrap_or_default())]
    OverBudget(OverBudget),
    /// The payment failed. Nothing was paid.
    #[error("payment failed: {0}")]
    PaymentFailed(#[source] LightningError),
    /// The payment's outcome is unknown; it is recorded as pending and will be looked up, never
    /// paid again.
    #[error(
        "the payment {0} is still in flight; run the request again to finish it (it will not be paid twice)"
    )]
    PaymentPending(String),
    /// The 402 carries no L402 challenge we can read.
    #[error("the server asked for payment without a usable L402 challenge: {0}")]
    BadChallenge(String),
    /// The ledger cannot be used.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// A body is larger than allowed.
    #[error("the body is larger than {0} bytes")]
    TooLarge(usize),
}
