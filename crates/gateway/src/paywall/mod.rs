//! The paywall as a tower layer: price the request, challenge, verify, spend, forward.
//!
//! ```text
//! every request                     -> drop x-l402-* and method-override headers; the path in
//!                                      its canonical form (crate::path), or 400
//! over the route's rate_limit       -> 429 Retry-After, paid or not (quota.rs)
//! metered route                     -> the body read and priced by the route's rule
//!                                      (paywall/metered.rs): a 4xx before any invoice for what
//!                                      cannot be priced; the price of this request is the
//!                                      402's, and what a credential must have paid
//! no credential, free tier left     -> forwarded without a payment, `x-l402: free`
//! no credential                     -> rate limit, invoice, 402 with a challenge for it in each
//!                                      dialect the route offers, in its order (by default
//!                                      WWW-Authenticate Payment (MPP) first, then
//!                                      WWW-Authenticate L402, and PAYMENT-REQUIRED (x402))
//! credential                        -> Authorization: L402, else Authorization: Payment (MPP),
//!                                      else PAYMENT-SIGNATURE (x402: then the backend is asked
//!                                      whether its invoice settled; open -> 402 not_paid)
//! credential not genuine            -> 401 {reason}, no invoice
//! genuine but cannot buy this       -> 402 fresh challenges {reason} (spent, expired, wrong_route, …)
//!                                      (MPP: both as RFC 9457 problem details)
//! genuine                           -> in work that goes on in a task of its own if the client
//!                                      hangs up (detach.rs: it cancels neither a claim half made
//!                                      nor what the upstream may already be doing): claim the
//!                                      payment hash (one key for every dialect) until the
//!                                      latest expiry of the three minted for it, and forward
//!   already spent or in flight      -> the kept answer to the same credential and request
//!                                      (`x-l402: replayed`), 409 while in flight, else 402 spent
//!   never delivered / not served    -> release: the token works again, `x-l402: released`
//!   5xx or no answer in time        -> release for safe and idempotent methods, spend for the
//!                                      others (a POST may have taken effect); per route
//!   otherwise                       -> commit: `x-l402: spent`, and MPP's `Payment-Receipt`
//!                                      or x402's `PAYMENT-RESPONSE`; the answer is kept with
//!                                      the commit when it fits (`x-l402-kept`)
//! spent, the same credential again  -> first request still in flight: 409, `x-l402: pending`
//!                                      same request, answer kept: that answer, `x-l402: replayed`
//!                                      anything else: 402 fresh challenges, reason `spent`
//! ```
//! A browser's navigation (`GET`, `Accept` preferring `text/html`) gets the same 402 with the
//! payment page as its body (`page.rs`); the page asks `/_plannt/pay/<hash>` (`poll.rs`) until
//! the invoice is paid, gets the credential in a cookie `plannt-<route>`, which is read like an
//! `Authorization: L402` value (after every header credential), and never passed upstream.
//!
//! The rate limit applies before any invoice is created; a backend that cannot issue an invoice
//! gives 503, never a 402 with an invoice that cannot be paid; a store that cannot answer gives
//! 503 to paid requests (fail closed). A released answer never carries the upstream's body.

use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use plannt_l402::mpp::{ChallengeKeys, Problem};
use plannt_l402::x402::TagKeys;
use plannt_l402::{
    Conditions, Credential, Dialect, KeyRing, NoConditions, PaymentHash, Reason,
    Request as L402Request, wire,
};
use plannt_lightning::Receiver;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio_util::task::TaskTracker;
use tower::{Layer, Service, ServiceExt};
use zeroize::Zeroizing;

use crate::clock::Clock;
use crate::detach::Detachable;
use crate::forwarded::TrustedProxies;
use crate::keep;
use crate::ledger::{Ledger, LedgerOptions};
use crate::limiter::Limiter;
use crate::metrics::Metrics;
use crate::path;
use crate::quota::Counters;
use crate::routes::{Route, RouteTable};
use crate::store::{Claim, Lookup, SpentStore, StoreError, Ticket};
use arc_swap::ArcSwap;

mod answers;
mod dialects;
mod headers;
mod kept;
mod metered;
mod page;
mod poll;
mod quotas;
mod session;
mod settle;

pub(crate) use answers::gateway_error;
use answers::{Challenged, unavailable, with_problem};
pub(crate) use headers::peer_ip;
use headers::{IDEMPOTENCY_KEY, PAYMENT_HASH, scrub, set_path, strip_credentials};
use metered::PriceBinding;
pub use session::SessionBackend;
pub use settle::Unanswered;
use settle::{Paid, SettleOnUnwind};

/// The dialects a paid route offers unless configured otherwise, in the order of its 402: MPP's
/// `WWW-Authenticate: Payment` first, then L402's, then x402's `PAYMENT-REQUIRED`. Clients that
/// read one challenge from the start of the joined `WWW-Authenticate` value (lightning-tools'
/// `fetchWithMpp`) find MPP's; every L402 client of the interop suite finds L402's anywhere in
/// it (docs/protocol.md, section 9, has the table).
pub const DEFAULT_DIALECTS: [Dialect; 3] = [Dialect::Mpp, Dialect::L402, Dialect::X402];

/// How the paywall keeps the answers of paid requests for a retry with the same credential.
#[derive(Debug, Clone)]
pub struct KeepOptions {
    /// The largest answer body kept, in bytes (0: no answer is kept).
    pub answer_bytes: usize,
    /// How long an answer is kept, in seconds (never past its token's expiry).
    pub answer_secs: u64,
    /// The largest request body read when a spent credential is presented again, to check that
    /// it is the same request (it is never forwarded).
    pub request_body_bytes: usize,
    /// How long the gateway waits for an answer's body to be complete before it sends the
    /// answer on unkept (`x-l402-kept: none; reason="streamed"`).
    pub wait: Duration,
}

impl Default for KeepOptions {
    fn default() -> Self {
        KeepOptions {
            answer_bytes: 64 * 1024,
            answer_secs: 600,
            request_body_bytes: 10 * 1024 * 1024,
            wait: Duration::from_secs(2),
        }
    }
}

/// How the paywall prices time.
#[derive(Debug, Clone)]
pub struct PaywallOptions {
    /// Seconds an invoice stays payable.
    pub invoice_expiry_secs: u64,
    /// Seconds a token stays usable after its invoice expires.
    pub token_lifetime_secs: u64,
    /// How long to wait for the backend to issue an invoice.
    pub invoice_timeout: Duration,
    /// Challenges per second per client address (0: no limit).
    pub challenges_per_second: f64,
    /// Challenges a client may ask for at once.
    pub challenge_burst: u32,
    /// Reverse proxies whose `X-Forwarded-For` names the client (for the rate limit).
    pub trusted_proxies: TrustedProxies,
    /// The time tokens are minted, verified and purged at.
    pub clock: Clock,
    /// The payment dialects a paid route offers unless it names its own, in the order its 402
    /// carries them. x402 is left out when the backend cannot look up invoices.
    pub dialects: Vec<Dialect>,
    /// The `realm` of MPP challenges.
    pub mpp_realm: String,
    /// Keeping answers for retries.
    pub keep: KeepOptions,
    /// The earnings ledger's retention and flushes.
    pub ledger: LedgerOptions,
}

impl Default for PaywallOptions {
    fn default() -> Self {
        PaywallOptions {
            invoice_expiry_secs: 600,
            token_lifetime_secs: 3600,
            invoice_timeout: Duration::from_secs(10),
            challenges_per_second: 5.0,
            challenge_burst: 20,
            trusted_proxies: TrustedProxies::default(),
            clock: Clock::system(),
            dialects: DEFAULT_DIALECTS.to_vec(),
            mpp_realm: "plannt".to_string(),
            keep: KeepOptions::default(),
            ledger: LedgerOptions::default(),
        }
    }
}

fn purge_interval(options: &PaywallOptions) -> Duration {
    let validity = options
        .invoice_expiry_secs
        .saturating_add(options.token_lifetime_secs);
    Duration::from_secs(validity.clamp(1, 60))
}

/// Everything the layer needs; shared by every request.
pub struct Paywall {
    keys: KeyRing,
    /// MPP challenge ids, derived from the root keys.
    mpp_keys: ChallengeKeys,
    /// x402 offer tags, derived from the root keys.
    x402_keys: TagKeys,
    /// The gateway secrets a bearer credential's kept answer is sealed under (with its invoice):
    /// an x402 payload, or an MPP credential without its preimage, carries no secret of its own.
    /// One a root key, the minting key's first: it seals; the others open what was sealed
    /// before a rotation.
    bearer_keep: Vec<Zeroizing<[u8; 32]>>,
    receiver: Arc<dyn Receiver>,
    store: Arc<dyn SpentStore>,
    /// The route table, swapped whole by [`Paywall::set_routes`]: a request prices, claims and
    /// is dispatched with the table it started with.
    routes: ArcSwap<RouteTable>,
    ledger: Ledger,
    limiter: Limiter,
    /// The payment page's polls, per client address.
    poll_limiter: Limiter,
    /// Backend lookups for polls in flight, from every client together.
    poll_lookups: tokio::sync::Semaphore,
    /// Free tiers and rate limits counted in this process (when the store does not count).
    counters: Counters,
    options: PaywallOptions,
    metrics: Arc<Metrics>,
    /// Paid requests in flight, in place or, once their client hung up, in a task of their own:
    /// shutdown waits for them.
    in_flight: TaskTracker,
    /// Prepaid sessions, when offered ([`Paywall::with_sessions`]).
    sessions: Option<SessionBackend>,
}

impl Paywall {
    /// A paywall over `routes`.
    pub fn new(
        keys: KeyRing,
        receiver: Arc<dyn Receiver>,
        store: Arc<dyn SpentStore>,
        routes: RouteTable,
        options: PaywallOptions,
    ) -> Self {
        let metrics = Arc::new(Metrics::new(routes.routes().iter().map(|r| r.id.as_str())));
        Paywall {
            limiter: Limiter::new(options.challenges_per_second, options.challenge_burst),
            poll_limiter: Limiter::new(poll::POLLS_PER_SECOND, poll::POLL_BURST),
            poll_lookups: tokio::sync::Semaphore::new(poll::MAX_POLL_LOOKUPS),
            counters: Counters::default(),
            mpp_keys: ChallengeKeys::from_ring(&keys),
            x402_keys: TagKeys::from_ring(&keys),
            bearer_keep: {
                let ids: Vec<&str> = keys.ids().collect();
                ids.iter()
                    .rev()
                    .filter_map(|id| keys.get(id))
                    .map(|key| key.derive_secret("plannt x402 kept answer v1"))
                    .collect()
            },
            keys,
            receiver,
            store,
            routes: ArcSwap::from_pointee(routes),
            ledger: Ledger::new(),
            options,
            metrics,
            in_flight: TaskTracker::new(),
            sessions: None,
        }
    }

    /// The route table now (a later [`set_routes`](Self::set_routes) does not change it).
    pub fn routes(&self) -> Arc<RouteTable> {
        self.routes.load_full()
    }

    /// Replaces the route table, at once for every request that starts from now on; requests
    /// in flight finish with the table they started with (their claims, prices and routes
    /// unchanged). New route ids get their metrics.
    pub fn set_routes(&self, routes: RouteTable) {
        self.metrics
            .add_routes(routes.routes().iter().map(|r| r.id.as_str()));
        self.routes.store(Arc::new(routes));
    }

    /// The earnings ledger's side in memory: what gathered since the last flush, and the live
    /// counts of the last hour.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The ledger's options.
    pub fn ledger_options(&self) -> &LedgerOptions {
        &self.options.ledger
    }

    /// Writes what the ledger gathered to the store now (the background task does it every
    /// [`LedgerOptions::flush_every`]).
    pub async fn flush_ledger(&self) -> Result<(), StoreError> {
        self.ledger
            .flush(&*self.store, self.options.ledger.retention)
            .await
    }

    /// Refuses every credential of `hash` from now on, as spent, in the store (so every replica
    /// sharing it refuses it too), for as long as any token of it can live: a token minted now
    /// lives `invoice_expiry_secs + token_lifetime_secs`.
    pub async fn revoke(&self, hash: &PaymentHash) -> Result<u64, StoreError> {
        let until = self.options.clock.now().saturating_add(
            self.options
                .invoice_expiry_secs
                .saturating_add(self.options.token_lifetime_secs),
        );
        self.store.commit(hash, &Ticket::new(), until, None).await?;
        Ok(until)
    }

    /// The time the paywall goes by, unix seconds.
    pub fn now(&self) -> u64 {
        self.options.clock.now()
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The spent store.
    pub fn store(&self) -> &Arc<dyn SpentStore> {
        &self.store
    }

    /// The Lightning backend.
    pub fn receiver(&self) -> &Arc<dyn Receiver> {
        &self.receiver
    }

    /// How often expired spent entries are purged: every minute, or as often as tokens expire
    /// when they live less than a minute (`invoice_expiry_secs + token_lifetime_secs`), so an
    /// entry outlives its token by at most one interval and the set stays within rate × twice the
    /// token validity.
    pub fn purge_interval(&self) -> Duration {
        purge_interval(&self.options)
    }

    /// Starts the task that purges expired entries from the spent store every
    /// [`purge_interval`](Self::purge_interval) and counts the set for the `plannt_spent_tokens`
    /// gauge. It stops by itself once the paywall is dropped. Without it the spent set only
    /// grows: a service that embeds [`layer`](Self::layer) should start it once, inside its
    /// tokio runtime (`plannt serve` does).
    ///
    /// The same task writes the earnings ledger to the store every
    /// [`LedgerOptions::flush_every`], and prunes it past its retention.
    pub fn spawn_purger(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let every = self.purge_interval();
        let flush_every = self
            .options
            .ledger
            .flush_every
            .max(Duration::from_millis(10));
        let paywall = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut flush = tokio::time::interval(flush_every);
            flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let flushing = tokio::select! {
                    _ = tick.tick() => false,
                    _ = flush.tick() => true,
                };
                let Some(paywall) = paywall.upgrade() else {
                    return;
                };
                if flushing {
                    if let Err(e) = paywall.flush_ledger().await {
                        tracing::warn!(error = %e, "could not write the earnings ledger; kept for the next try");
                    }
                    continue;
                }
                let retention = paywall.options.ledger.retention.as_secs();
                let before = paywall.options.clock.now().saturating_sub(retention);
                if let Err(e) = paywall.store.prune_ledger(before).await {
                    tracing::warn!(error = %e, "could not prune the earnings ledger");
                }
                let store = paywall.store.clone();
                match store.purge(paywall.options.clock.now()).await {
                    Ok(n) if n > 0 => tracing::debug!(purged = n, "purged expired spent entries"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "could not purge the spent set"),
                }
                paywall
                    .metrics
                    .refresh_spent_tokens(true, || store.len())
                    .await;
            }
        })
    }

    /// Waits until every paid request in flight has been settled, its token spent or given
    /// back, including those whose client hung up. Call it after the server stopped accepting.
    pub async fn drain(&self) {
        self.in_flight.close();
        self.in_flight.wait().await;
        self.in_flight.reopen();
        if let Err(e) = self.flush_ledger().await {
            tracing::warn!(error = %e, "could not write the earnings ledger at shutdown");
        }
    }

    /// The layer to put in front of a service.
    pub fn layer(self: &Arc<Self>) -> L402Layer {
        L402Layer {
            paywall: self.clone(),
        }
    }

    /// Answers a request; a browser's navigation gets the payment page for the paywall's 402.
    async fn handle<S>(self: Arc<Self>, request: Request<Body>, inner: S) -> Response
    where
        S: Service<Request<Body>, Response = Response, Error = Infallible> + Send + 'static,
        S::Future: Send,
    {
        let html = page::prefers_html(request.method(), request.headers())
            && self.receiver.can_lookup_invoices();
        let response = self.answer(request, inner, html).await;
        if html {
            page::render(response)
        } else {
            response
        }
    }

    /// The answer to a request, as an agent gets it; `html` marks the paywall's 402 with what
    /// the payment page shows.
    async fn answer<S>(
        self: Arc<Self>,
        mut request: Request<Body>,
        inner: S,
        html: bool,
    ) -> Response
    where
        S: Service<Request<Body>, Response = Response, Error = Infallible> + Send + 'static,
        S::Future: Send,
    {
        scrub(request.headers_mut());
        // Routes are matched against, and upstreams sent, one spelling of the path: the price
        // is the price of what the upstream serves (crate::path).
        let rewritten = match path::canonical(request.uri().path()) {
            Ok(Cow::Borrowed(_)) => None,
            Ok(Cow::Owned(canonical)) => Some(canonical),
            Err(e) => {
                let body = json!({
                    "error": "Bad Request",
                    "message": format!("{e}; send the path in its plain form"),
                });
                return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
            }
        };
        if let Some(canonical) = rewritten
            && !set_path(&mut request, &canonical)
        {
            return gateway_error(StatusCode::BAD_REQUEST, "the path cannot be read");
        }
        if request.uri().path().starts_with(page::PAY_PREFIX) {
            return Box::pin(self.poll(request)).await;
        }
        let routes = self.routes.load_full();
        // The service behind finds the route in the same table (a reload meanwhile changes
        // nothing for this request).
        request.extensions_mut().insert(RoutesOf(routes.clone()));
        let found = routes.find(request.method(), request.uri().path());
        let client = self
            .options
            .trusted_proxies
            .client(peer_ip(&request), request.headers());
        // A route's rate limit counts every request to it, public, free or paid.
        if let Some(route) = found.filter(|r| r.rate_limit.is_some())
            && let Some(too_many) = self.over_rate_limit(route, client).await
        {
            self.ledger
                .refused(self.options.clock.now(), &route.id, "rate_limited");
            return too_many;
        }
        let route = match found {
            Some(route) if !route.is_public() => route,
            _ => {
                page::strip_cookies(request.headers_mut());
                return inner.oneshot(request).await.unwrap_or_else(|e| match e {});
            }
        };
        let answer = self
            .clone()
            .priced(route, client, request, inner, html)
            .await;
        self.tally(route, &answer);
        answer
    }

    /// Records in the ledger a refusal the paywall answered for a paid route: a 429 (rate
    /// limited), or a 401 or 402 with a reason. An answer that carries `x-l402` (spent,
    /// released, replayed, pending, free) went through to the upstream or its kept answer and
    /// is no refusal.
    fn tally(&self, route: &Route, answer: &Response) {
        if answer.headers().contains_key(headers::X_L402) {
            return;
        }
        let reason = match answer.status() {
            StatusCode::TOO_MANY_REQUESTS => Some("rate_limited"),
            StatusCode::UNAUTHORIZED | StatusCode::PAYMENT_REQUIRED => answer
                .headers()
                .get(headers::X_L402_REASON)
                .and_then(|v| v.to_str().ok()),
            _ => None,
        };
        if let Some(reason) = reason {
            self.ledger
                .refused(self.options.clock.now(), &route.id, reason);
        }
    }

    /// A request for a paid route: challenge (or the free tier), or verify, claim, forward and
    /// settle.
    ///
    /// The branches a paid request with a valid token does not take (pricing a metered body,
    /// sessions, the other dialects, the challenge, the kept answer of a retry) are awaited in
    /// boxes of their own: an `async fn`'s future is as large as the largest state it can be in,
    /// and every request's future is moved into its box whole, so the common path stays small.
    async fn priced<S>(
        self: Arc<Self>,
        route: &Route,
        client: std::net::IpAddr,
        request: Request<Body>,
        inner: S,
        html: bool,
    ) -> Response
    where
        S: Service<Request<Body>, Response = Response, Error = Infallible> + Send + 'static,
        S::Future: Send,
    {
        if let Some(why) = &route.unavailable {
            return unavailable("route_unavailable", why);
        }
        // A metered route prices this request from its body before anything else: what cannot
        // be priced is a client error, answered before any invoice (paywall/metered.rs).
        let (request, quote) = match &route.meter {
            Some(rule) => match Box::pin(metered::price(rule, request)).await {
                Ok((request, quote)) => (request, Some(quote)),
                Err(refusal) => return refusal,
            },
            None => (request, None),
        };
        let price = quote
            .as_ref()
            .map_or(route.price_sats.unwrap_or(0), |q| q.sats);
        let offered = self.dialects_of(route);
        let resource = request.uri().path().to_owned();
        let target = request
            .uri()
            .path_and_query()
            .map_or_else(|| resource.clone(), |p| p.as_str().to_owned());
        let at = Challenged {
            route,
            price,
            quote: quote.as_ref(),
            client,
            resource: &resource,
            offered: &offered,
            page: html,
        };
        // A session credential on a route that sells sessions: a balance, not a single-use
        // payment (paywall/session.rs).
        if let Some(quote) = quote.as_ref()
            && at.route.session.is_some()
            && let Some(credential) = session::session_credential(request.headers())
        {
            return Box::pin(self.session_answer(&at, quote, credential, request, inner)).await;
        }
        let values = request.headers().get_all(header::AUTHORIZATION);
        let l402 = match Credential::from_headers(values.iter().map(HeaderValue::as_bytes)) {
            Ok(found) => found,
            Err(e) => return self.refuse(Reason::Malformed, &e.to_string()),
        };
        let mut redeem = match l402 {
            Some(credential) if offered.contains(&Dialect::L402) => {
                match self.verify_l402(&credential, &at).await {
                    Ok(redeem) => redeem,
                    Err(answer) => return answer,
                }
            }
            _ => match Box::pin(self.verify_other(request.headers(), &at)).await {
                Some(Ok(redeem)) => redeem,
                Some(Err(answer)) => return answer,
                None => match page::cookie_credential(request.headers(), &route.id)
                    .filter(|_| offered.contains(&Dialect::L402))
                {
                    Some(credential) => match self.verify_l402(&credential, &at).await {
                        Ok(redeem) => redeem,
                        // A cookie that is not genuine (a rotated key, say) is no credential:
                        // the browser gets the page with a fresh invoice, not a dead end.
                        Err(answer) if answer.status() == StatusCode::UNAUTHORIZED => {
                            return Box::pin(self.unpaid(&at, request, inner)).await;
                        }
                        Err(answer) => return answer,
                    },
                    None => return Box::pin(self.unpaid(&at, request, inner)).await,
                },
            },
        };
        // An expired credential claims nothing: it gets the answer it bought, if still kept.
        if let Some(lapsed) = redeem.lapsed.take() {
            let (parts, body) = request.into_parts();
            if let Some(answer) = Box::pin(self.retry(&redeem, &parts.method, &target, body)).await
            {
                return answer;
            }
            self.metrics.rejected(Reason::Expired);
            let answer = Box::pin(self.challenge(&at, Some((Reason::Expired, lapsed.why)))).await;
            return match lapsed.problem {
                Some(problem) => with_problem(answer, problem),
                None => answer,
            };
        }
        // The claim, the upstream call and the settlement go on in a task of their own if the
        // client hangs up (detach.rs): it neither strands a claim its request won (a claim is
        // neither committed nor released if its future is dropped) nor cuts the upstream off
        // mid-request; once the request is on its way its token is spent.
        let (hash, keep_until) = (redeem.hash, redeem.keep_until);
        let releases = route.releases_on_failure(request.method());
        let method = request.method().clone();
        let route_id = route.id.clone();
        let dialect = redeem.dialect;
        let receipt = redeem.receipt.clone();
        let secret = redeem.secret.clone();
        let paywall = self.clone();
        let keep_target = target.clone();
        let task = Detachable::new(self.in_flight.track_future(async move {
            let ticket = match paywall.store.claim(&hash, keep_until).await {
                Ok(Claim::Won(ticket)) => ticket,
                Ok(Claim::Spent) => return Claimed::Spent(request),
                Err(e) => return Claimed::Failed(e),
            };
            let paid = Paid {
                hash,
                ticket,
                keep_until,
                releases,
                method,
                route: route_id,
                price,
                dialect,
                receipt,
                keep: None,
            };
            Claimed::Answered(
                paywall
                    .forward(paid, secret, keep_target, request, inner)
                    .await,
            )
        }));
        let request = match task.await {
            Ok(Claimed::Answered(response)) => return response,
            Ok(Claimed::Spent(request)) => request,
            Ok(Claimed::Failed(e)) => {
                self.metrics.store_failure();
                tracing::error!(error = %e, "spent store unavailable; refusing paid request");
                return unavailable(
                    "store_unavailable",
                    "the gateway cannot check tokens right now; your token was not used, retry it shortly",
                );
            }
            // The handler panicked; its guard settled the claim as a failure.
            Err(_) => {
                return gateway_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the request failed inside the gateway",
                );
            }
        };
        let (parts, body) = request.into_parts();
        if let Some(answer) = Box::pin(self.retry(&redeem, &parts.method, &target, body)).await {
            return answer;
        }
        self.metrics.rejected(Reason::Spent);
        let why = "this payment was already used: pay the new invoice".to_string();
        let answer = Box::pin(self.challenge(&at, Some((Reason::Spent, why.clone())))).await;
        match redeem.dialect {
            Dialect::Mpp => with_problem(answer, Problem::for_reason(Reason::Spent, why)),
            _ => answer,
        }
    }

    /// Forwards a request whose claim was won, and settles the claim by what the upstream did.
    async fn forward<S>(
        self: Arc<Self>,
        mut paid: Paid,
        secret: Zeroizing<[u8; 32]>,
        target: String,
        mut request: Request<Body>,
        inner: S,
    ) -> Response
    where
        S: Service<Request<Body>, Response = Response, Error = Infallible> + Send + 'static,
        S::Future: Send,
    {
        // The credential has done its job: the upstream sees the payment hash, not the preimage,
        // and an idempotency key (draft-ietf-httpapi-idempotency-key-header) that is the same
        // for every retry of this payment.
        strip_credentials(request.headers_mut());
        // The key is the hash's hex in quotes: one hex encoding serves both headers.
        let key = wire::idempotency_key(&paid.hash);
        if let Ok(value) = HeaderValue::from_str(&key[1..key.len() - 1]) {
            request.headers_mut().insert(PAYMENT_HASH, value);
        }
        if let Ok(value) = HeaderValue::try_from(key) {
            request.headers_mut().insert(IDEMPOTENCY_KEY, value);
        }
        paid.keep = (self.options.keep.answer_bytes > 0).then(|| {
            let body = std::mem::take(request.body_mut());
            let (body, digest) = kept::hash_body(body, request.headers());
            *request.body_mut() = body;
            kept::KeepPlan {
                secret,
                method: request.method().as_str().to_owned(),
                target,
                body: digest,
            }
        });
        let guard = SettleOnUnwind {
            paywall: self.clone(),
            paid: Some(paid),
        };
        let started = Instant::now();
        let response = inner.oneshot(request).await.unwrap_or_else(|e| match e {});
        self.metrics.upstream_latency(started.elapsed());
        let paid = guard.disarm();
        self.settle(&paid, response).await
    }

    /// Checks an L402 credential: what to claim, or the answer that refuses it.
    async fn verify_l402(
        &self,
        credential: &Credential,
        at: &Challenged<'_>,
    ) -> Result<Redeem, Response> {
        let metered = at.route.meter.is_some();
        // The binding is judged and dropped before any await: its cells stay in this thread.
        let (checked, priced, shortfall) = {
            let binding = PriceBinding::new(at.price);
            let judge = |name: &str, value: &str| binding.check(name, value);
            let conditions: &dyn Conditions = if metered { &judge } else { &NoConditions };
            let checked = self.keys.verify(
                credential,
                &L402Request {
                    route: &at.route.id,
                    now: self.options.clock.now(),
                    conditions,
                },
            );
            (checked, binding.seen(), binding.shortfall())
        };
        let verified = match checked {
            Ok(v) => v,
            Err(e) if e.reason().pay_again() => {
                self.metrics.rejected(e.reason());
                let why = match shortfall {
                    Some(why) if e.reason() == Reason::CaveatFailed => why,
                    _ => e.to_string(),
                };
                return Err(Box::pin(self.challenge(at, Some((e.reason(), why)))).await);
            }
            Err(e) => return Err(self.refuse(e.reason(), &e.to_string())),
        };
        // A metered route's token must say what it paid for.
        if metered && !priced {
            self.metrics.rejected(Reason::CaveatFailed);
            let why = "the token carries no price_sats caveat, so it cannot buy a metered request: pay the new invoice".to_string();
            return Err(Box::pin(self.challenge(at, Some((Reason::CaveatFailed, why)))).await);
        }
        // Every token we mint expires; one that does not is not ours to honour forever.
        let Some(minted_until) = verified.minted_valid_until else {
            self.metrics.rejected(Reason::CaveatFailed);
            let why = "the token has no expiry caveat".to_string();
            return Err(Box::pin(self.challenge(at, Some((Reason::CaveatFailed, why)))).await);
        };
        // The spent entry must outlive every credential of this payment hash: the holder may
        // append an earlier expiry to one copy of the macaroon and keep another, so the entry
        // lives until the expiry we minted, never the one presented. The MPP challenge and the
        // x402 offer of the same invoice expire no later than that (see `challenge`).
        Ok(Redeem {
            hash: verified.payment_hash,
            keep_until: minted_until,
            dialect: Dialect::L402,
            receipt: None,
            secret: Zeroizing::new(*credential.preimage.as_bytes()),
            bearer: None,
            lapsed: None,
        })
    }

    /// The secret an x402 answer is sealed under: the gateway's, bound to the paid invoice. An
    /// x402 payload is a bearer credential anyway (it names a paid invoice; no preimage).
    fn bearer_secret(&self, invoice: &str) -> Zeroizing<[u8; 32]> {
        // Without a root key nothing verifies, so nothing is sealed under the zero key.
        let gateway = self.bearer_keep.first().map_or(&[0u8; 32], |key| &**key);
        keep::bearer_secret(gateway, invoice)
    }

    /// What a spent credential presented again gets, if not the 402: the 409 while its first
    /// request is in flight, or the kept answer of the same request. The presented body is read
    /// (bounded) to check that, and never forwarded.
    async fn retry(
        &self,
        redeem: &Redeem,
        method: &Method,
        target: &str,
        body: Body,
    ) -> Option<Response> {
        if self.options.keep.answer_bytes == 0 {
            // Nothing is kept, so a retry can get nothing: refused as spent, in flight or not.
            return None;
        }
        let now = self.options.clock.now();
        let sealed = match self.store.lookup(&redeem.hash, now).await {
            Ok(Lookup::Pending) => return Some(kept::in_progress()),
            Ok(Lookup::Kept(sealed)) => sealed,
            Ok(Lookup::Committed | Lookup::Unknown) => return None,
            Err(e) => {
                tracing::warn!(error = %e, "could not look up a kept answer; refusing as spent");
                return None;
            }
        };
        let bytes = axum::body::to_bytes(body, self.options.keep.request_body_bytes)
            .await
            .ok()?;
        let body: [u8; 32] = Sha256::digest(&bytes).into();
        let digest = keep::request_digest(method.as_str(), target, &body);
        let opened = keep::open(&redeem.secret, &redeem.hash, &digest, &sealed).or_else(|e| {
            // A bearer credential's answer kept before a root key rotation is sealed under the
            // secret of the key that minted then.
            let Some(invoice) = redeem.bearer.as_deref() else {
                return Err(e);
            };
            self.bearer_keep
                .iter()
                .skip(1)
                .find_map(|gateway| {
                    let secret = keep::bearer_secret(gateway, invoice);
                    keep::open(&secret, &redeem.hash, &digest, &sealed).ok()
                })
                .ok_or(e)
        });
        match opened {
            Ok(answer) if answer.until >= now => {
                self.metrics.replayed();
                Some(kept::replay(answer))
            }
            Ok(_) => None,
            Err(e) => {
                // Another request with the same credential, or a damaged entry: refused as
                // spent either way. Nothing secret is logged.
                tracing::info!(payment_hash = %redeem.hash.to_hex(), "{e}");
                None
            }
        }
    }
}

/// The route table a request was priced with, in its extensions, for the service behind the
/// paywall to find its route in (the table may have been replaced since).
#[derive(Clone)]
pub struct RoutesOf(pub Arc<RouteTable>);

/// What became of a claim made in the request's task.
enum Claimed {
    /// Won, forwarded and settled: the answer.
    Answered(Response),
    /// Spent or in flight: the request comes back, for a retry's kept answer or a refusal.
    Spent(Request<Body>),
    /// The store could not answer.
    Failed(StoreError),
}

/// A verified payment, ready to be claimed.
struct Redeem {
    hash: PaymentHash,
    /// Until when the spent entry must live.
    keep_until: u64,
    dialect: Dialect,
    /// The header the paid answer carries in this dialect, if any.
    receipt: Option<(HeaderName, HeaderValue)>,
    /// The credential's secret, which seals and opens its kept answer.
    secret: Zeroizing<[u8; 32]>,
    /// For a bearer credential, what its secret was derived from with the gateway's
    /// ([`Paywall::bearer_secret`]), to open an answer kept before a root key rotation.
    bearer: Option<String>,
    /// An MPP or x402 credential past its expiry, within the keep time of an answer it may have
    /// bought: it can fetch that answer and buys nothing else.
    lapsed: Option<Lapsed>,
}

/// The refusal an expired credential gets when it has no kept answer to fetch.
struct Lapsed {
    why: String,
    /// MPP's problem details.
    problem: Option<Problem>,
}

/// The tower layer. Build it with [`Paywall::layer`].
#[derive(Clone)]
pub struct L402Layer {
    paywall: Arc<Paywall>,
}

impl<S> Layer<S> for L402Layer {
    type Service = L402Service<S>;

    fn layer(&self, inner: S) -> Self::Service {
        L402Service {
            paywall: self.paywall.clone(),
            inner,
        }
    }
}

/// The service the layer wraps around yours.
#[derive(Clone)]
pub struct L402Service<S> {
    paywall: Arc<Paywall>,
    inner: S,
}

impl<S> Service<Request<Body>> for L402Service<S>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // The ready service goes to this request; a fresh clone waits for the next one.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let paywall = self.paywall.clone();
        Box::pin(async move { Ok(paywall.handle(request, inner).await) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use plannt_l402::{PaymentHash, RootKey};
    use plannt_lightning::dev::DevNetwork;
    use plannt_lightning::invoice::unix_now;

    fn paywall(options: PaywallOptions) -> Arc<Paywall> {
        Arc::new(Paywall::new(
            KeyRing::single(RootKey::new([7; 32])),
            Arc::new(DevNetwork::ephemeral(0).wallet("gateway")),
            Arc::new(MemoryStore::new()),
            RouteTable::new(Vec::new()).unwrap(),
            options,
        ))
    }

    /// A handler that panics behind the layer: the client gets a 500, and the claim is settled
    /// as a failure (a GET's token is given back), not stranded.
    #[tokio::test]
    async fn a_handler_that_panics_gets_a_500_and_its_claim_is_settled() {
        use crate::routes::Target;
        use plannt_l402::{MintRequest, Preimage};
        use std::sync::atomic::{AtomicBool, Ordering};

        let keys = KeyRing::single(RootKey::new([7; 32]));
        let preimage = Preimage::new([9; 32]);
        let macaroon = keys
            .mint(&MintRequest {
                payment_hash: preimage.hash(),
                route: "hello",
                valid_until: unix_now() + 600,
                conditions: &[],
            })
            .unwrap();
        let credential = format!("L402 {}:{}", macaroon.to_base64(), preimage.to_hex());
        let paywall = Arc::new(Paywall::new(
            keys,
            Arc::new(DevNetwork::ephemeral(0).wallet("gateway")),
            Arc::new(MemoryStore::new()),
            RouteTable::new(vec![Route::paid(
                "hello",
                Method::GET,
                "/hello",
                10,
                Target::Service,
            )])
            .unwrap(),
            PaywallOptions::default(),
        ));
        let panicked = Arc::new(AtomicBool::new(false));
        let first = panicked.clone();
        let handler = tower::service_fn(move |_: Request<Body>| {
            let first = !first.swap(true, Ordering::SeqCst);
            async move {
                if first {
                    panic!("the handler failed");
                }
                Ok::<_, Infallible>(Response::new(Body::from("hello")))
            }
        });
        let service = paywall.layer().layer(handler);
        let request = || {
            Request::get("/hello")
                .header(header::AUTHORIZATION, &credential)
                .body(Body::empty())
                .unwrap()
        };

        let answer = service.clone().oneshot(request()).await.unwrap();
        assert_eq!(answer.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(panicked.load(Ordering::SeqCst));
        // The claim is released in a task of its own; the same token then buys the request.
        for _ in 0..100 {
            let answer = service.clone().oneshot(request()).await.unwrap();
            if answer.status() == StatusCode::OK {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the claim of the request whose handler panicked was never released");
    }

    #[test]
    fn purges_every_minute_or_as_often_as_tokens_expire() {
        let mut options = PaywallOptions::default();
        assert_eq!(purge_interval(&options), Duration::from_secs(60));
        options.invoice_expiry_secs = 10;
        options.token_lifetime_secs = 20;
        assert_eq!(purge_interval(&options), Duration::from_secs(30));
        options.invoice_expiry_secs = u64::MAX;
        assert_eq!(purge_interval(&options), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn the_purger_task_writes_the_ledger_every_flush_and_drain_writes_the_rest() {
        let options = PaywallOptions {
            ledger: LedgerOptions {
                flush_every: Duration::from_secs(5),
                ..LedgerOptions::default()
            },
            ..PaywallOptions::default()
        };
        let paywall = paywall(options);
        let store = paywall.store().clone();
        let now = unix_now();
        let stored = || async {
            store
                .ledger(now - 3_600, now + 3_600, 10)
                .await
                .unwrap()
                .payments
                .len()
        };
        let _purger = paywall.spawn_purger();
        tokio::time::sleep(Duration::from_millis(10)).await;
        let hash = PaymentHash([5; 32]);
        paywall.ledger().paid(now, "demo", Dialect::L402, 21, &hash);
        assert_eq!(stored().await, 0, "not written on the paid path");
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(stored().await, 1, "written by the next flush");
        paywall.ledger().paid(now, "demo", Dialect::Mpp, 21, &hash);
        paywall.drain().await;
        assert_eq!(stored().await, 2, "drain writes what is left");
    }

    #[tokio::test(start_paused = true)]
    async fn the_purger_empties_expired_entries_and_stops_with_the_paywall() {
        let options = PaywallOptions {
            invoice_expiry_secs: 1,
            token_lifetime_secs: 1,
            ..PaywallOptions::default()
        };
        let paywall = paywall(options);
        let store = paywall.store().clone();
        // One token spent until a moment already past, one still valid.
        for (hash, until) in [
            (PaymentHash([1; 32]), unix_now() - 1),
            (PaymentHash([2; 32]), unix_now() + 3_600),
        ] {
            let Claim::Won(ticket) = store.claim(&hash, until).await.unwrap() else {
                panic!("a fresh hash is won");
            };
            store.commit(&hash, &ticket, until, None).await.unwrap();
        }
        assert_eq!(store.len().await.unwrap(), 2);

        let purger = paywall.spawn_purger();
        for _ in 0..10 {
            tokio::time::sleep(paywall.purge_interval()).await;
            if store.len().await.unwrap() == 1 {
                break;
            }
        }
        assert_eq!(store.len().await.unwrap(), 1, "the expired entry is purged");
        assert!(paywall.metrics().render().contains("plannt_spent_tokens 1"));

        drop(paywall);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(purger.is_finished(), "the purger ends with its paywall");
    }
}
