//! The paying client: send, and on a 402 check, reserve, pay, record and retry.
//!
//! ```text
//! stored token for this place?  -> present it in its dialect; a 402 drops it (pay again)
//! 402 offers                    -> the first dialect of the preference order offered (L402 also
//!                                  from the JSON body) -> check -> reserve
//!                                  against the budgets (pending, before paying) -> pay -> check
//!                                  the preimage -> record paid -> retry with the credential
//!                                  (x402: again on a 402 with `Retry-After`, never paying again)
//! ```
//! A paid credential is recorded with its request before it is presented. When its answer is
//! lost after it left (the connection broke or was reset, the server said `409` with
//! `x-l402: pending` because the first try is still in flight), the same credential is presented
//! again for the same request, waiting 250 ms and doubling, at most five more times after a
//! network failure (a `409` waited out by its `Retry-After`, up to 5 s), never past the max time: a Plannt gateway answers it with the answer it
//! kept (`x-l402: replayed`). A 402 to it means the server kept none: [`ClientError::AnswerLost`],
//! and nothing is paid again. An answer still lost is left `unanswered` in the ledger; the same
//! request sent again (or [`Client::retry_unanswered`]) presents the same credential.
//!
//! One challenge is paid at most once: its payment hash is the ledger's key, so a second attempt
//! (another process, a retry after a crash) finds it pending or paid and looks it up instead.
//!
//! Every request, paid or not, first passes the checks of where it may go (`guard`): never the
//! wallet's own API, only `allowed_hosts`, and no loopback, private or link-local address unless
//! the policy allows them; on each redirect hop and on each address a name resolves to as well.
//!
//! A call runs within its timeouts ([`Timeouts`]): the connect timeout for each connection, the
//! max time for the whole call. The payment runs in a task of its own that records its outcome
//! in the ledger: when the max time runs out while it is in flight, the call returns and the
//! payment stays pending (finished by this task if the process lives on, else looked up by the
//! next run), never abandoned and never paid twice. A wallet that could not be reached was sent
//! nothing: its payment is failed and its reservation released at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use plannt_l402::mpp::{self, PaymentChallenge, PaymentCredential};
use plannt_l402::x402::{self, SettlementResponse};
use plannt_l402::{
    Challenge, Credential, Dialect, Macaroon, Offer, Offers, PaymentHash, Preimage, TokenState,
    wire,
};
use plannt_lightning::invoice::unix_now;
use plannt_lightning::{LightningError, Payer, Payment, PaymentLookup, Receiver};
use reqwest::StatusCode;
use reqwest::header::{
    AUTHORIZATION, COOKIE, HeaderMap, HeaderName, HeaderValue, PROXY_AUTHORIZATION, RETRY_AFTER,
    WWW_AUTHENTICATE,
};
use sha2::{Digest, Sha256};
use url::Url;

use crate::call::{
    Answering, ClientError, Event, Limits, NetworkError, Options, Outcome, Presented, Receipt,
    Request, Response, Step,
};
use crate::checks::{Quote, Refusal, check_offer};
use crate::guard::{Blocked, Guard, Resolver, blocked_in, shown};
use crate::ledger::{
    Ledger, MAX_RECORDED_BODY, PresentedRequest, Reservation, Reserved, SessionRefused, StoredToken,
};
use crate::policy::Policy;
use crate::session::session_challenges;
use crate::settings::Timeouts;
use crate::wallet_api::WalletApi;

/// The paying client.
pub struct Client {
    http: reqwest::Client,
    /// For a host name that may resolve to the wallet's address: its resolver refuses it.
    strict_http: reqwest::Client,
    guard: Arc<Guard>,
    wallet: Arc<dyn Payer>,
    ledger: Ledger,
    policy: Policy,
    timeouts: Timeouts,
    /// The wallet's receiving side, for the return invoice of a prepaid session; without it no
    /// session is opened.
    pub(crate) receiver: Option<Arc<dyn Receiver>>,
}

/// Every offer of a 402's headers, and the dialects they are in, each once, in their order.
fn offers_of(response: &reqwest::Response) -> (Offers, Vec<Dialect>) {
    let values = |name| {
        response
            .headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
    };
    let offers = Offers::from_headers(
        values(WWW_AUTHENTICATE.as_str()),
        values(x402::PAYMENT_REQUIRED),
    );
    let mut dialects = Vec::new();
    for offer in &offers.offers {
        if !dialects.contains(&offer.dialect()) {
            dialects.push(offer.dialect());
        }
    }
    (offers, dialects)
}

/// How long an x402 server that has not yet seen the payment settle asks us to wait before
/// presenting it again: its `Retry-After` seconds (at least a quarter of a second), `None`
/// when the 402 is not that answer.
fn not_settled_yet(response: &reqwest::Response) -> Option<Duration> {
    if response.status() != StatusCode::PAYMENT_REQUIRED {
        return None;
    }
    let secs: u64 = response
        .headers()
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs).max(Duration::from_millis(250)))
}

/// The first wait before a paid request whose answer was lost is presented again; each next
/// wait doubles.
const RETRY_FIRST_WAIT: Duration = Duration::from_millis(250);
/// How many more times a paid request whose answer was lost to a network failure is presented
/// (a `409` pending is waited out within the max time).
const RETRY_ATTEMPTS: u32 = 5;
/// The longest `Retry-After` of a `409` (`x-l402: pending`) honoured.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(5);

/// Headers that carry a credential: never recorded with a paid request.
const NOT_RECORDED: [&str; 4] = [
    "payment-signature",
    "x-api-key",
    "x-l402-token",
    "x-auth-token",
];

/// A request as the ledger records it until its answer arrives: every header the caller set
/// but its credentials (`Authorization`, `Proxy-Authorization`, `Cookie`, `PAYMENT-SIGNATURE`,
/// API-key headers), and the body up to [`MAX_RECORDED_BODY`] (over it, its digest only).
fn recorded(request: &Request) -> PresentedRequest {
    let headers = request
        .headers
        .iter()
        .filter(|(name, _)| {
            ![AUTHORIZATION, PROXY_AUTHORIZATION, COOKIE].contains(name)
                && !NOT_RECORDED.contains(&name.as_str())
        })
        .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_string())))
        .collect();
    PresentedRequest {
        method: request.method.to_string(),
        url: request.url.to_string(),
        headers,
        body: (request.body.len() <= MAX_RECORDED_BODY).then(|| request.body.to_vec()),
        body_sha256: hex::encode(Sha256::digest(&request.body)),
        body_len: request.body.len() as u64,
    }
}

/// The request a ledger recorded, to send again.
fn from_record(hash: &str, recorded: &PresentedRequest) -> Result<Request, ClientError> {
    let unusable = |why: String| ClientError::NotRetryable {
        payment_hash: hash.to_string(),
        why,
    };
    let Some(body) = &recorded.body else {
        return Err(unusable(format!(
            "its body of {} bytes was over the {} KiB the ledger records (it keeps only its digest)",
            recorded.body_len,
            MAX_RECORDED_BODY / 1024
        )));
    };
    let method = reqwest::Method::from_bytes(recorded.method.as_bytes())
        .map_err(|_| unusable("the ledger's record of its method is unreadable".into()))?;
    let url = Url::parse(&recorded.url)
        .map_err(|_| unusable("the ledger's record of its URL is unreadable".into()))?;
    let mut headers = HeaderMap::new();
    for (name, value) in &recorded.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(name, value);
        }
    }
    Ok(Request {
        method,
        url,
        headers,
        body: body.clone().into(),
    })
}

/// The `x-l402` value of an answer.
fn l402_state(response: &reqwest::Response) -> Option<&str> {
    response
        .headers()
        .get(wire::X_L402)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// How long to wait when the server says the first try of this credential is still in flight
/// (`409`, `x-l402: pending`): its `Retry-After` (1 s if none, at most [`RETRY_AFTER_MAX`]);
/// `None` for any other answer.
fn in_progress(response: &reqwest::Response) -> Option<Duration> {
    if response.status() != StatusCode::CONFLICT || l402_state(response) != Some("pending") {
        return None;
    }
    let secs = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(1);
    Some(Duration::from_secs(secs).clamp(RETRY_FIRST_WAIT, RETRY_AFTER_MAX))
}

/// How a paid token is presented: `Authorization: L402 <macaroon>:<preimage>`,
/// `Authorization: Payment <credential echoing the challenge, with the preimage>`, or
/// `PAYMENT-SIGNATURE: <payload>`.
fn presentation(token: &StoredToken) -> Result<Presented, ClientError> {
    let unreadable =
        |what: &str| ClientError::BadChallenge(format!("a stored {what} is unreadable"));
    Ok(match token.dialect {
        Dialect::L402 => Presented {
            name: AUTHORIZATION,
            value: credential_header(&token.macaroon, &token.preimage)?,
        },
        Dialect::Mpp => {
            let challenge: PaymentChallenge =
                serde_json::from_str(&token.macaroon).map_err(|_| unreadable("MPP challenge"))?;
            Presented {
                name: AUTHORIZATION,
                value: PaymentCredential::charge(&challenge, &token.preimage).to_header_value(),
            }
        }
        Dialect::X402 => Presented {
            name: HeaderName::from_static(x402::PAYMENT_SIGNATURE),
            value: token.macaroon.clone(),
        },
    })
}

/// Reads the receipt a paid answer carries in the token's dialect (`Payment-Receipt`,
/// `PAYMENT-RESPONSE`) and says in the log whether it names the payment made.
fn read_server_receipt(response: &reqwest::Response, token: &StoredToken) {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let named = match token.dialect {
        Dialect::L402 => return,
        Dialect::Mpp => header(mpp::PAYMENT_RECEIPT)
            .map(|v| mpp::Receipt::parse(&v).ok().and_then(|r| r.payment_hash())),
        Dialect::X402 => header(x402::PAYMENT_RESPONSE).map(|v| {
            SettlementResponse::decode(&v)
                .ok()
                .filter(|r| r.success)
                .and_then(|r| r.payment_hash())
        }),
    };
    match named {
        None => tracing::debug!(dialect = %token.dialect, "the answer carries no receipt"),
        Some(Some(hash)) if hash == token.payment_hash => {
            tracing::debug!(dialect = %token.dialect, "the server's receipt names this payment")
        }
        Some(_) => tracing::warn!(
            dialect = %token.dialect,
            "the server's receipt does not name this payment's hash"
        ),
    }
}

/// How long no new session is opened for a place whose last one was lost (the server refused
/// its open, forgot it, or never answered its close): a day.
const LOST_SESSION_SECS: u64 = 86_400;

/// How much of a 402 body we read looking for a challenge.
const MAX_CHALLENGE_BODY: usize = 64 * 1024;

/// How to build a [`Client`]: [`Client::builder`].
pub struct ClientBuilder {
    wallet: Arc<dyn Payer>,
    ledger: Ledger,
    policy: Policy,
    redirects: usize,
    wallet_api: WalletApi,
    pins: HashMap<String, Vec<IpAddr>>,
    timeouts: Timeouts,
    receiver: Option<Arc<dyn Receiver>>,
}

impl ClientBuilder {
    /// The wallet's receiving side: it issues the amountless invoice a prepaid session's refund
    /// is paid to. Without it (or with a backend that cannot issue one) no session is opened,
    /// whatever `session_deposit_sats` says.
    pub fn return_invoices(mut self, receiver: Arc<dyn Receiver>) -> Self {
        self.receiver = Some(receiver);
        self
    }

    /// How long a connection and a whole call may take ([`Timeouts::default`] unless set).
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Follow up to `max` redirects (none by default). Each hop is checked as the first request
    /// is: wallet API, allowed hosts, private addresses.
    pub fn follow_redirects(mut self, max: usize) -> Self {
        self.redirects = max;
        self
    }

    /// Where the wallet's own API lives ([`WalletApi::of`] its backend URI): no request is ever
    /// sent there.
    pub fn wallet_api(mut self, api: WalletApi) -> Self {
        self.wallet_api = api;
        self
    }

    /// Resolves `host` to `addresses` instead of asking DNS, as curl's `--resolve` does. The
    /// addresses are checked as resolved ones are.
    pub fn resolve(mut self, host: &str, addresses: &[IpAddr]) -> Self {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.pins.insert(host, addresses.to_vec());
        self
    }

    /// The client.
    pub fn build(self) -> Client {
        plannt_lightning::install_tls_provider();
        let guard = Arc::new(Guard {
            policy: self.policy.clone(),
            wallet: self.wallet_api,
            pins: self.pins,
        });
        let connect = self.timeouts.connect;
        Client {
            http: http_client(&guard, false, self.redirects, connect),
            strict_http: http_client(&guard, true, self.redirects, connect),
            guard,
            wallet: self.wallet,
            ledger: self.ledger,
            policy: self.policy,
            timeouts: self.timeouts,
            receiver: self.receiver,
        }
    }
}

/// Too many redirects.
#[derive(Debug, thiserror::Error)]
#[error("more than {0} redirects")]
struct TooManyRedirects(usize);

fn http_client(
    guard: &Arc<Guard>,
    strict: bool,
    redirects: usize,
    connect_timeout: Duration,
) -> reqwest::Client {
    let redirect = if redirects == 0 {
        reqwest::redirect::Policy::none()
    } else {
        let guard = guard.clone();
        reqwest::redirect::Policy::custom(move |attempt| {
            // `previous` starts with the URL first asked for.
            if attempt.previous().len() > redirects {
                return attempt.error(TooManyRedirects(redirects));
            }
            match guard.check(attempt.url(), strict) {
                Ok(()) => attempt.follow(),
                Err(refusal) => {
                    let url = Some(attempt.url().clone());
                    attempt.error(Blocked { refusal, url })
                }
            }
        })
    };
    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(plannt_lightning::tls_config())
        .redirect(redirect)
        .dns_resolver(Resolver {
            guard: guard.clone(),
            strict,
        })
        .connect_timeout(connect_timeout)
        .user_agent(concat!("plannt/", env!("CARGO_PKG_VERSION")));
    // A proxy resolves names where the resolver cannot check them: connect directly whenever
    // an address could be refused.
    if strict || !guard.policy.allow_private_networks {
        builder = builder.no_proxy();
    }
    builder
        .build()
        .expect("the HTTP client's static configuration is valid")
}

impl Client {
    /// A client paying with `wallet`, recording in `ledger`, under `policy`; no redirects, and
    /// no wallet API known (see [`Client::builder`]).
    pub fn new(wallet: Arc<dyn Payer>, ledger: Ledger, policy: Policy) -> Self {
        Self::builder(wallet, ledger, policy).build()
    }

    /// A client to configure: redirects, the wallet's API, pinned addresses.
    pub fn builder(wallet: Arc<dyn Payer>, ledger: Ledger, policy: Policy) -> ClientBuilder {
        ClientBuilder {
            wallet,
            ledger,
            policy,
            redirects: 0,
            wallet_api: WalletApi::none(),
            pins: HashMap::new(),
            timeouts: Timeouts::default(),
            receiver: None,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The wallet.
    pub fn wallet(&self) -> &Arc<dyn Payer> {
        &self.wallet
    }

    /// The timeouts every call runs under.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    fn limits(&self) -> Limits {
        Limits {
            connect: self.timeouts.connect,
            max_time: self.timeouts.max_time,
        }
    }

    /// Finishes payments a crash left pending: each is looked up, never paid again. Payments
    /// another process is making right now are left to it. A payment the wallet does not know
    /// (never sent) is failed, its reservation released. It takes at most the max time: what
    /// is not looked up by then stays pending for the next run. Then it closes the prepaid
    /// sessions idle past their server's timeout ([`Client::close_idle_sessions`]), so that what
    /// they hold comes back; one that cannot be closed now stays for the next run.
    pub async fn recover(&self) -> Result<usize, ClientError> {
        let deadline = Deadline::start(self.timeouts.max_time);
        let mut finished = 0;
        for hash in self.ledger.pending_to_recover()? {
            let Some(remaining) = deadline.remaining() else {
                break;
            };
            match tokio::time::timeout(remaining, self.settle_pending(&hash)).await {
                Ok(settled) => finished += usize::from(settled?.is_some()),
                Err(_) => break,
            }
        }
        self.close_idle_sessions().await?;
        Ok(finished)
    }

    /// Looks a pending payment up. `Some` when it is now paid; `None` when it failed (its
    /// reservation released) or is still in flight.
    async fn settle_pending(&self, hash: &PaymentHash) -> Result<Option<Payment>, ClientError> {
        settle(&*self.wallet, &self.ledger, hash).await
    }

    /// Sends a request once, after checking where it goes; never pays and never presents a
    /// stored token. A 402 is an answer like any other.
    pub async fn send_unpaid(&self, request: &Request) -> Result<Response, ClientError> {
        let deadline = Deadline::start(self.timeouts.max_time);
        let response = self
            .send_once(request, None, &Options::default(), &deadline)
            .await?;
        Ok(self.response(response, None))
    }

    /// Wraps an answer; `paid`: the receipt of the token presented for it, and how it was
    /// presented.
    pub(crate) fn response(
        &self,
        response: reqwest::Response,
        paid: Option<(Receipt, Presented)>,
    ) -> Response {
        let (receipt, presented) = paid.unzip();
        Response {
            status: response.status(),
            headers: response.headers().clone(),
            receipt,
            presented,
            body: response,
            limits: self.limits(),
            answer: None,
            session: None,
            need_top_up: None,
        }
    }

    pub(crate) async fn send_once(
        &self,
        request: &Request,
        credential: Option<&Presented>,
        options: &Options<'_>,
        deadline: &Deadline,
    ) -> Result<reqwest::Response, ClientError> {
        let strict = self.guard.needs_strict(&request.url);
        if let Err(refusal) = self.guard.check(&request.url, strict) {
            return Err(self.refused_at(&request.url, refusal)?);
        }
        let Some(remaining) = deadline.remaining() else {
            return Err(ClientError::Network(NetworkError::out_of_time(
                request.url.origin().ascii_serialization(),
                self.timeouts.max_time,
                Step::Request,
            )));
        };
        let http = if strict {
            &self.strict_http
        } else {
            &self.http
        };
        if let Some(on) = options.on_event {
            on(&Event::Request {
                method: &request.method,
                url: &request.url,
                credential: credential.is_some(),
            });
        }
        let mut headers = request.headers.clone();
        if let Some(credential) = credential {
            let value = HeaderValue::from_str(&credential.value).map_err(|_| {
                ClientError::BadChallenge("the credential cannot travel in a header".into())
            })?;
            headers.insert(credential.name.clone(), value);
        }
        let sent = http
            .request(request.method.clone(), request.url.clone())
            .headers(headers)
            .body(request.body.clone())
            .timeout(remaining)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            // A redirect hop or a resolved address was refused: nothing went there.
            Err(e) => match blocked_in(&e) {
                Some(blocked) => {
                    let at = blocked.url.as_ref().unwrap_or(&request.url);
                    return Err(self.refused_at(at, blocked.refusal.clone())?);
                }
                None => {
                    return Err(ClientError::Network(NetworkError::new(
                        e,
                        Step::Request,
                        self.limits(),
                    )));
                }
            },
        };
        if let Some(on) = options.on_event {
            on(&Event::Response {
                status: response.status(),
                l402: response
                    .headers()
                    .get(wire::X_L402)
                    .and_then(|v| v.to_str().ok()),
            });
        }
        Ok(response)
    }

    /// Presents a paid token for `request`, recorded in the ledger first. While its answer is
    /// lost after it left, presents it again within the max time: after a network failure
    /// (the connection broke; once it left, a failure to connect too) with backoff, at most
    /// [`RETRY_ATTEMPTS`] times; after a `409` with `x-l402: pending`, when its `Retry-After` says. The answer, and whether an answer to this
    /// credential was lost (`lost`: already before this call).
    async fn present(
        &self,
        request: &Request,
        token: &StoredToken,
        credential: &Presented,
        options: &Options<'_>,
        deadline: &Deadline,
        mut lost: bool,
    ) -> Result<(reqwest::Response, bool), ClientError> {
        let hash = &token.payment_hash;
        self.ledger
            .presenting(hash, &recorded(request), unix_now())?;
        let mut backoff = RETRY_FIRST_WAIT;
        let mut sent = lost;
        // Network failures after the credential left, each presented again after a pause; a
        // 409 (still in flight) is waited out for as long as the max time allows.
        let mut failures = 0;
        loop {
            let (pause, failure) = match self
                .send_once(request, Some(credential), options, deadline)
                .await
            {
                Ok(response) => match in_progress(&response) {
                    Some(after) => (after, None),
                    None => return Ok((response, lost)),
                },
                Err(ClientError::Network(e)) if sent || e.may_have_been_sent() => {
                    failures += 1;
                    let pause = backoff;
                    backoff = backoff.saturating_mul(2);
                    (pause, Some(ClientError::Network(e)))
                }
                Err(e) => {
                    if !sent {
                        // No connection was made: the credential never left.
                        self.ledger.not_presented(hash)?;
                    }
                    return Err(kept(e, hash));
                }
            };
            lost = true;
            sent = true;
            let time_left = deadline.remaining().is_some_and(|left| left > pause);
            if failures > RETRY_ATTEMPTS || !time_left {
                tracing::debug!(failures, "the answer to the paid request is still lost");
                let failure = failure.unwrap_or_else(|| {
                    ClientError::Network(NetworkError::out_of_time(
                        request.url.origin().ascii_serialization(),
                        self.timeouts.max_time,
                        Step::Request,
                    ))
                });
                return Err(kept(failure, hash));
            }
            tracing::debug!(
                failures,
                ?pause,
                "the answer to a paid request was lost: presenting the same credential again"
            );
            tokio::time::sleep(pause).await;
        }
    }

    /// The server answered a 402 to a credential whose answer was lost: it kept none. The token
    /// is dropped and the request recorded as lost; nothing is paid again.
    fn answer_lost(&self, token: &StoredToken, url: &Url) -> Result<ClientError, ClientError> {
        self.ledger.drop_token(&token.payment_hash)?;
        self.ledger.answer_lost(&token.payment_hash, unix_now())?;
        Ok(ClientError::AnswerLost {
            payment_hash: hex::encode(token.payment_hash),
            origin: url.origin().ascii_serialization(),
        })
    }

    /// Sends again a paid request whose answer was lost, as the ledger recorded it, with the
    /// credential it was paid for (its payment hash names it: [`Ledger::unanswered`]). Nothing
    /// is paid: a 402 is [`ClientError::AnswerLost`]. A request whose body was over the bound the
    /// ledger records cannot be sent again ([`ClientError::NotRetryable`]).
    pub async fn retry_unanswered(
        &self,
        payment_hash: &PaymentHash,
        options: &Options<'_>,
    ) -> Result<Response, ClientError> {
        let deadline = Deadline::start(self.timeouts.max_time);
        let hash = hex::encode(payment_hash);
        let Some((unanswered, token)) = self.ledger.unanswered_token(payment_hash)? else {
            return Err(ClientError::NotRetryable {
                payment_hash: hash,
                why: "the ledger holds no paid request without an answer by that payment hash (plannt ledger lists them)".into(),
            });
        };
        let request = from_record(&hash, &unanswered.request)?;
        let credential = presentation(&token)?;
        let (response, _) = self
            .present(&request, &token, &credential, options, &deadline, true)
            .await?;
        let unsettled = token.dialect == Dialect::X402 && not_settled_yet(&response).is_some();
        if response.status() == StatusCode::PAYMENT_REQUIRED && !unsettled {
            return Err(self.answer_lost(&token, &request.url)?);
        }
        let Outcome::Response(out) = self
            .finish(response, &token, credential, true, true)
            .await?
        else {
            unreachable!("finish always answers a response")
        };
        Ok(out)
    }

    /// A token to present for `request`: first one presented for this very request whose answer
    /// was lost (`true`), then one paid earlier for this place (a crash left it unused, or the
    /// server lets it be reused).
    fn stored_token(
        &self,
        request: &Request,
        origin: &str,
        path: &str,
    ) -> Result<Option<(StoredToken, bool)>, ClientError> {
        if let Some(token) = self.ledger.unanswered_for(&recorded(request))? {
            return Ok(Some((token, true)));
        }
        Ok(self.ledger.token_for(origin, path)?.map(|t| (t, false)))
    }

    /// Sends a request; pays the challenge of a 402 if every check passes.
    pub async fn send(
        &self,
        request: &Request,
        options: &Options<'_>,
    ) -> Result<Outcome, ClientError> {
        let deadline = Deadline::start(self.timeouts.max_time);
        let origin = request.url.origin().ascii_serialization();
        let path = request.url.path().to_string();

        // A prepaid session for this place: present it (`bearer`), topped up when the server
        // asks and the policy lets it. One the policy cannot top up leaves a charge to pay.
        let mut stuck = None;
        let limit = self.session_limit(&request.url, options);
        if limit > 0
            && let Some(session) = self.ledger.session_for(&origin, &path)?
        {
            match self
                .bearer(request, &session, limit, options, &deadline)
                .await?
            {
                Ok(outcome) => return Ok(outcome),
                Err(why) => stuck = why,
            }
        }

        // A token paid earlier: for this very request, its answer lost; or for this place, one
        // a crash left unused, or a reusable one.
        let mut response = None;
        if !options.dry_run
            && let Some((token, lost)) = self.stored_token(request, &origin, &path)?
        {
            let credential = presentation(&token)?;
            let (first, lost) = self
                .present(request, &token, &credential, options, &deadline, lost)
                .await?;
            // (An x402 payment the server has not seen settle yet is not refused: it is kept.)
            let unsettled = token.dialect == Dialect::X402 && not_settled_yet(&first).is_some();
            if first.status() == StatusCode::PAYMENT_REQUIRED && !unsettled {
                if lost {
                    // The answer paid for is gone: say so, and pay nothing again.
                    return Err(self.answer_lost(&token, &request.url)?);
                }
                // Spent, expired, or refused: forget it and treat this 402 as the challenge (it
                // is the answer to that token).
                self.ledger.drop_token(&token.payment_hash)?;
                self.ledger
                    .answered(&token.payment_hash, false, unix_now())?;
                response = Some(first);
            } else {
                return self.finish(first, &token, credential, true, lost).await;
            }
        }
        let response = match response {
            Some(r) => r,
            None => self.send_once(request, None, options, &deadline).await?,
        };
        if response.status() != StatusCode::PAYMENT_REQUIRED {
            return Ok(Outcome::Response(self.response(response, None)));
        }

        // With redirects followed, the challenge comes from where they led: that host is the one
        // checked and paid, and the retry goes straight there (a client drops `Authorization`
        // on a redirect to another host).
        let challenged = response.url().clone();
        let retry_request;
        let request = if challenged != request.url {
            retry_request = Request {
                url: challenged.clone(),
                ..request.clone()
            };
            &retry_request
        } else {
            request
        };
        let origin = challenged.origin().ascii_serialization();
        let path = challenged.path().to_string();
        let allowed = self.policy.dialects_for(options.dialects);
        let (offers, offered) = offers_of(&response);
        // A prepaid session offered, which the policy lets this host have, and none open for
        // this place already: open it. One the policy refuses leaves the charge offered beside it.
        let limit = self.session_limit(&challenged, options);
        if limit > 0
            && self.ledger.session_for(&origin, &path)?.is_none()
            && !self.ledger.session_lost_since(
                &origin,
                &path,
                unix_now().saturating_sub(LOST_SESSION_SECS),
            )?
            && let Some(challenge) = session_challenges(&response).into_iter().next()
        {
            let policy = self.policy.capped(options.max_sats);
            match self
                .open_session(
                    request,
                    &challenge,
                    &challenged,
                    limit,
                    &policy,
                    options,
                    &deadline,
                )
                .await?
            {
                Ok(outcome) => return Ok(outcome),
                Err(declined) => stuck = stuck.or(Some(declined)),
            }
        }
        let chosen = allowed.iter().find_map(|d| offers.first(*d)).cloned();
        if chosen.is_none()
            && let Some(why) = stuck
        {
            return Err(why);
        }
        let offer = match chosen {
            Some(offer) => offer,
            // No offer in the headers: an L402 challenge may still be in the JSON body.
            None if offers.offers.is_empty() && allowed.contains(&Dialect::L402) => {
                Offer::L402(read_challenge(response, self.limits()).await?)
            }
            None if offers.offers.is_empty() => {
                let why = offers
                    .skipped
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                return Err(ClientError::BadChallenge(if why.is_empty() {
                    "no challenge in the 402".into()
                } else {
                    why
                }));
            }
            None => return Err(ClientError::NoDialect { offered, allowed }),
        };
        let policy = self.policy.capped(options.max_sats);
        let macaroon = match &offer {
            Offer::L402(challenge) => challenge.macaroon.to_base64(),
            _ => String::new(),
        };
        if let Some(on) = options.on_event {
            let amount = plannt_lightning::decode_invoice(offer.invoice())
                .ok()
                .and_then(|i| i.amount_sats())
                .unwrap_or(0);
            on(&Event::Challenge {
                dialect: offer.dialect(),
                invoice: offer.invoice(),
                macaroon: &macaroon,
                amount_sats: amount,
            });
        }
        let now = unix_now();
        let (quote, presented) =
            match check_offer(&offer, &challenged, &policy, self.wallet.network(), now) {
                Ok(checked) => checked,
                Err(refusal) => return Err(self.refused(&origin, &path, refusal)?),
            };
        if options.dry_run {
            // Every check the payment would run, the budgets included; nothing is reserved.
            let cost = quote
                .amount_msat
                .saturating_add(policy.max_fee_sats.saturating_mul(1000));
            let hash = quote.invoice.payment_hash;
            if let Err(over) = self.ledger.fits(&hash, cost, &policy.budget, now)? {
                return Err(self.over_budget(&origin, &path, over)?);
            }
            self.ledger
                .record_quote(&origin, &path, quote.amount_msat, now)?;
            return Ok(Outcome::DryRun(quote));
        }
        if let Some(quoted) = self.ledger.quote_for(&origin, &path, now)?
            && quote.amount_msat > quoted
        {
            let refusal = Refusal::PriceChanged {
                quoted_sats: quoted.div_ceil(1000),
                amount_sats: quote.amount_sats(),
            };
            return Err(self.refused(&origin, &path, refusal)?);
        }
        let payment = self
            .pay(
                &quote, &origin, &path, &presented, &policy, options, &deadline, None,
            )
            .await?;
        let token = StoredToken {
            dialect: quote.dialect,
            payment_hash: payment.payment_hash,
            macaroon: presented,
            preimage: payment.preimage,
            used: false,
        };
        let credential = presentation(&token)?;
        // Paid: presented again while its answer is lost; one that gets no answer leaves the
        // token (and the request) for the next run.
        let (mut retried, lost) = self
            .present(request, &token, &credential, options, &deadline, false)
            .await?;
        // An x402 server may not have seen the payment settle yet: it answers 402 with
        // `Retry-After`. Present the same payload again within the max time; never pay again.
        while token.dialect == Dialect::X402
            && let Some(wait) = not_settled_yet(&retried)
            && let Some(remaining) = deadline.remaining()
            && wait < remaining
        {
            tokio::time::sleep(wait).await;
            retried = self
                .send_once(request, Some(&credential), options, &deadline)
                .await
                .map_err(|e| kept(e, &token.payment_hash))?;
        }
        if lost
            && retried.status() == StatusCode::PAYMENT_REQUIRED
            && not_settled_yet(&retried).is_none()
        {
            return Err(self.answer_lost(&token, &request.url)?);
        }
        let Outcome::Response(mut out) = self
            .finish(retried, &token, credential, false, lost)
            .await?
        else {
            unreachable!("finish always answers a response")
        };
        if let Some(receipt) = &mut out.receipt {
            receipt.amount_sats = quote.amount_sats();
            receipt.fee_msat = payment.fee_msat;
        }
        Ok(Outcome::Response(out))
    }

    /// Records a refusal of a request to `url` and turns it into the error to return.
    fn refused_at(&self, url: &Url, refusal: Refusal) -> Result<ClientError, ClientError> {
        tracing::debug!(url = %shown(url), check = refusal.check(), "refused");
        self.refused(&url.origin().ascii_serialization(), url.path(), refusal)
    }

    /// Records an over-budget refusal in the ledger and turns it into the error to return.
    pub(crate) fn over_budget(
        &self,
        origin: &str,
        path: &str,
        over: crate::ledger::OverBudget,
    ) -> Result<ClientError, ClientError> {
        let error = ClientError::OverBudget(over);
        self.ledger
            .record_refusal(origin, path, "over_budget", &error.to_string(), unix_now())?;
        Ok(error)
    }

    /// Records a refusal in the ledger and turns it into the error to return.
    pub(crate) fn refused(
        &self,
        origin: &str,
        path: &str,
        refusal: Refusal,
    ) -> Result<ClientError, ClientError> {
        self.ledger.record_refusal(
            origin,
            path,
            refusal.check(),
            &refusal.to_string(),
            unix_now(),
        )?;
        Ok(ClientError::Refused(refusal))
    }

    /// Reserves, pays and records one challenge; never pays a payment hash twice. The payment
    /// runs in a task of its own, which records its outcome however long it takes; when the max
    /// time runs out first, the payment stays pending and the call returns.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn pay(
        &self,
        quote: &Quote,
        origin: &str,
        path: &str,
        macaroon: &str,
        policy: &Policy,
        options: &Options<'_>,
        deadline: &Deadline,
        session: Option<(&PaymentHash, u64)>,
    ) -> Result<Payment, ClientError> {
        let hash = quote.invoice.payment_hash;
        let timed_out = || ClientError::PaymentTimedOut {
            payment_hash: hex::encode(hash),
            limit: self.timeouts.max_time,
        };
        let reservation = Reservation {
            dialect: quote.dialect,
            payment_hash: &hash,
            origin,
            path,
            bolt11: &quote.invoice.bolt11,
            macaroon,
            amount_msat: quote.amount_msat,
            max_fee_msat: policy.max_fee_sats.saturating_mul(1000),
        };
        loop {
            // Nothing is reserved once the time is up: a payment that cannot run is not begun.
            let Some(remaining) = deadline.remaining() else {
                return Err(ClientError::Network(NetworkError::out_of_time(
                    origin.to_string(),
                    self.timeouts.max_time,
                    Step::Pay,
                )));
            };
            let reserved = match session {
                None => self
                    .ledger
                    .reserve(&reservation, &policy.budget, unix_now())?
                    .map_err(SessionRefused::OverBudget),
                Some((id, limit)) => self.ledger.reserve_for_session(
                    &reservation,
                    id,
                    limit,
                    &policy.budget,
                    unix_now(),
                )?,
            };
            match reserved {
                Err(SessionRefused::OverBudget(over)) => {
                    return Err(self.over_budget(origin, path, over)?);
                }
                Err(SessionRefused::OverDeposit {
                    limit_sats,
                    paid_in_sats,
                    cost_sats,
                }) => {
                    let refusal = Refusal::OverSessionDeposit {
                        deposit_sats: paid_in_sats.saturating_add(cost_sats),
                        limit_sats,
                    };
                    return Err(self.refused(origin, path, refusal)?);
                }
                Ok(Reserved::AlreadyPaid(preimage)) => {
                    return Ok(Payment {
                        payment_hash: hash,
                        preimage,
                        amount_msat: quote.amount_msat,
                        fee_msat: 0,
                    });
                }
                Ok(Reserved::AlreadyPending) => {
                    let settled = tokio::time::timeout(remaining, self.settle_pending(&hash))
                        .await
                        .map_err(|_| timed_out())?;
                    match settled? {
                        Some(payment) => return Ok(payment),
                        None if self.ledger.pending()?.iter().any(|(_, h)| *h == hash) => {
                            return Err(ClientError::PaymentPending(hex::encode(hash)));
                        }
                        // It failed: reserve it again and pay.
                        None => continue,
                    }
                }
                Ok(Reserved::New) => break,
            }
        }
        if let Some(on) = options.on_event {
            on(&Event::Paying {
                amount_sats: quote.amount_sats(),
            });
        }
        let started = Instant::now();
        let task = tokio::spawn(pay_and_record(
            self.wallet.clone(),
            self.ledger.clone(),
            hash,
            quote.invoice.bolt11.clone(),
            reservation.max_fee_msat,
        ));
        let remaining = deadline.remaining().unwrap_or_default();
        let result = match tokio::time::timeout(remaining, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            // The runtime is shutting down: the payment stays pending for the next run.
            Ok(Err(_)) => Err(ClientError::PaymentPending(hex::encode(hash))),
            Err(_) => {
                tracing::debug!(elapsed = ?started.elapsed(), "the max time ran out while paying");
                Err(timed_out())
            }
        };
        tracing::debug!(elapsed = ?started.elapsed(), "payment attempt finished");
        let payment = result?;
        if let Some(on) = options.on_event {
            on(&Event::Paid {
                preimage: payment.preimage.to_hex(),
                fee_msat: payment.fee_msat,
            });
        }
        Ok(payment)
    }

    /// Records what the server did with a presented token, and wraps the response (with the
    /// token's receipt, and the credential as `presented`). `lost`: an earlier answer to this
    /// credential was lost, so this one is recovered.
    async fn finish(
        &self,
        response: reqwest::Response,
        token: &StoredToken,
        presented: Presented,
        reused: bool,
        lost: bool,
    ) -> Result<Outcome, ClientError> {
        let state = response
            .headers()
            .get(wire::X_L402)
            .and_then(|v| TokenState::parse(v.as_bytes()));
        // A Plannt gateway's kept answer to a credential it spent before.
        let replayed = l402_state(&response) == Some("replayed");
        let spent = state == Some(TokenState::Spent) || replayed;
        let released = state == Some(TokenState::Released);
        read_server_receipt(&response, token);
        // A 401 that names an L402 reason refuses the token itself; a plain 401 may be the API's
        // own authentication failing, and the paid token is kept for the next try.
        let refused = response.status() == StatusCode::UNAUTHORIZED
            && response.headers().contains_key(wire::X_L402_REASON);
        let status = response.status();
        if token.dialect != Dialect::L402 {
            // An MPP or x402 charge buys one answer. It is kept only when the server released
            // it, failed on its side, or has not seen the payment settle yet (x402).
            let keep = !spent
                && (released
                    || status.is_server_error()
                    || (token.dialect == Dialect::X402 && not_settled_yet(&response).is_some()));
            if !keep {
                self.ledger.drop_token(&token.payment_hash)?;
            }
        } else if status == StatusCode::PAYMENT_REQUIRED || spent || refused {
            // A Plannt gateway spent it, or the server refused it: it cannot be used again.
            self.ledger.drop_token(&token.payment_hash)?;
        } else if !released {
            // The server took it without spending it: it lets tokens be reused.
            self.ledger.token_used(&token.payment_hash)?;
        }
        let receipt = Receipt {
            dialect: token.dialect,
            amount_sats: 0,
            fee_msat: 0,
            payment_hash: hex::encode(token.payment_hash),
            preimage: token.preimage.to_hex(),
            reused_token: reused,
            recovered: lost || replayed,
            session: None,
        };
        self.ledger
            .answered(&token.payment_hash, lost || replayed, unix_now())?;
        let mut out = self.response(response, Some((receipt, presented)));
        out.answer = Some(Answering {
            ledger: self.ledger.clone(),
            payment_hash: token.payment_hash,
        });
        Ok(Outcome::Response(out))
    }
}

/// When a call must end: its max time after it started.
pub(crate) struct Deadline {
    at: Instant,
}

impl Deadline {
    pub(crate) fn start(max_time: Duration) -> Self {
        Deadline {
            at: Instant::now() + max_time,
        }
    }

    /// The time left, `None` once it is up.
    pub(crate) fn remaining(&self) -> Option<Duration> {
        Some(self.at.saturating_duration_since(Instant::now())).filter(|d| !d.is_zero())
    }
}

/// A network failure while presenting a paid token: the token stays in the ledger, and the
/// error says so.
fn kept(error: ClientError, hash: &PaymentHash) -> ClientError {
    match error {
        ClientError::Network(mut e) => {
            e.token_kept = Some(hex::encode(hash));
            ClientError::Network(e)
        }
        other => other,
    }
}

/// Looks a pending payment up. `Some` when it is now paid; `None` when it failed (its
/// reservation released) or is still in flight.
async fn settle(
    wallet: &dyn Payer,
    ledger: &Ledger,
    hash: &PaymentHash,
) -> Result<Option<Payment>, ClientError> {
    match wallet.lookup_payment(hash).await {
        Ok(PaymentLookup::Succeeded(payment)) => {
            ledger.mark_paid(hash, &payment.preimage, payment.fee_msat, unix_now())?;
            Ok(Some(payment))
        }
        Ok(PaymentLookup::Failed(_) | PaymentLookup::NotFound) => {
            ledger.mark_failed(hash, unix_now())?;
            Ok(None)
        }
        Ok(PaymentLookup::Pending) | Err(_) => Ok(None),
    }
}

/// Pays a reserved payment and records its outcome: paid; failed (nothing was paid, the
/// reservation is released: a wallet that could not be reached was sent nothing); or, when the
/// outcome is unknown, looked up, and left pending while the wallet cannot say.
async fn pay_and_record(
    wallet: Arc<dyn Payer>,
    ledger: Ledger,
    hash: PaymentHash,
    bolt11: String,
    max_fee_msat: u64,
) -> Result<Payment, ClientError> {
    match wallet.pay(&bolt11, max_fee_msat).await {
        Ok(payment) => {
            ledger.mark_paid(&hash, &payment.preimage, payment.fee_msat, unix_now())?;
            Ok(payment)
        }
        Err(e) if e == LightningError::AlreadyPaid || e.outcome_unknown() => {
            // Paid before (by us, in a run that died) or unknown: ask, never pay again.
            match settle(&*wallet, &ledger, &hash).await? {
                Some(payment) => Ok(payment),
                // The wallet cannot say yet: it may have been paid, so it stays pending.
                None if ledger.pending()?.iter().any(|(_, h)| *h == hash) => {
                    Err(ClientError::PaymentPending(hex::encode(hash)))
                }
                None => Err(ClientError::PaymentFailed(e)),
            }
        }
        Err(e) => {
            ledger.mark_failed(&hash, unix_now())?;
            Err(ClientError::PaymentFailed(e))
        }
    }
}

fn credential_header(macaroon: &str, preimage: &Preimage) -> Result<String, ClientError> {
    let macaroon = Macaroon::from_base64(macaroon)
        .map_err(|e| ClientError::BadChallenge(format!("a stored macaroon is unreadable: {e}")))?;
    Ok(Credential::new(macaroon, *preimage).to_header_value())
}

/// Finds the challenge in a 402: the `WWW-Authenticate` values, else the JSON body.
async fn read_challenge(
    response: reqwest::Response,
    limits: Limits,
) -> Result<Challenge, ClientError> {
    let values: Vec<String> = response
        .headers()
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect();
    let from_header = Challenge::parse(values.iter().map(String::as_str));
    let header_error = match from_header {
        Ok(challenge) => return Ok(challenge),
        Err(e) => e,
    };
    let mut response = response;
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| ClientError::Network(NetworkError::new(e, Step::Body, limits)))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_CHALLENGE_BODY {
            break;
        }
    }
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    match (
        json["macaroon"].as_str().or(json["token"].as_str()),
        json["invoice"].as_str(),
    ) {
        (Some(macaroon), Some(invoice)) => {
            let header = format!("L402 macaroon=\"{macaroon}\", invoice=\"{invoice}\"");
            Challenge::parse([header.as_str()])
                .map_err(|e| ClientError::BadChallenge(e.to_string()))
        }
        _ => Err(ClientError::BadChallenge(header_error.to_string())),
    }
}
