//! The L402 paywall as a tower layer: price the request, challenge, verify, spend, forward.
//!
//! ```text
//! every request                     -> drop x-l402-* and method-override headers; the path in
//!                                      its canonical form (crate::path), or 400
//! no credential                     -> rate limit, invoice, 402 challenge
//! credential not genuine            -> 401 {reason}, no invoice
//! genuine but cannot buy this       -> 402 fresh challenge {reason} (spent, expired, wrong_route, …)
//! genuine                           -> claim the payment hash until the token's minted expiry,
//!                                      forward in a task of its own (a client that hangs up does
//!                                      not cancel what the upstream may already be doing)
//!   never delivered / not served    -> release: the token works again, `x-l402: released`
//!   5xx or no answer in time        -> release for safe and idempotent methods, spend for the
//!                                      others (a POST may have taken effect); per route
//!   otherwise                       -> commit: `x-l402: spent`
//! ```
//! The rate limit applies before any invoice is created; a backend that cannot issue an invoice
//! gives 503, never a 402 with an invoice that cannot be paid; a store that cannot answer gives
//! 503 to paid requests (fail closed). A released answer never carries the upstream's body.

use std::borrow::Cow;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::uri::PathAndQuery;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use plannt_l402::{
    Challenge, Credential, KeyRing, MintRequest, NoConditions, PaymentHash, Reason,
    Request as L402Request, TokenState, wire,
};
use plannt_lightning::{InvoiceRequest, Receiver};
use serde_json::json;
use tokio_util::task::TaskTracker;
use tower::{Layer, Service, ServiceExt};

use crate::clock::Clock;
use crate::forwarded::TrustedProxies;
use crate::limiter::Limiter;
use crate::metrics::Metrics;
use crate::path;
use crate::routes::{Route, RouteTable};
use crate::store::{Claim, SpentStore, Ticket};

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
    receiver: Arc<dyn Receiver>,
    store: Arc<dyn SpentStore>,
    routes: RouteTable,
    limiter: Limiter,
    options: PaywallOptions,
    metrics: Arc<Metrics>,
    /// Paid requests in flight, each in a task of its own: shutdown waits for them.
    in_flight: TaskTracker,
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
            keys,
            receiver,
            store,
            routes,
            options,
            metrics,
            in_flight: TaskTracker::new(),
        }
    }

    /// The route table.
    pub fn routes(&self) -> &RouteTable {
        &self.routes
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
    pub fn spawn_purger(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let every = self.purge_interval();
        let paywall = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(paywall) = paywall.upgrade() else {
                    return;
                };
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
    }

    /// The layer to put in front of a service.
    pub fn layer(self: &Arc<Self>) -> L402Layer {
        L402Layer {
            paywall: self.clone(),
        }
    }

    async fn handle<S>(self: Arc<Self>, mut request: Request<Body>, inner: S) -> Response
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
            && let Err(response) = set_path(&mut request, &canonical)
        {
            return *response;
        }
        let route = match self.routes.find(request.method(), request.uri().path()) {
            Some(route) if !route.is_public() => route,
            _ => return inner.oneshot(request).await.unwrap_or_else(|e| match e {}),
        };
        if let Some(why) = &route.unavailable {
            return unavailable("route_unavailable", why);
        }
        let client = self
            .options
            .trusted_proxies
            .client(peer_ip(&request), request.headers());
        let values = request.headers().get_all(header::AUTHORIZATION);
        let credential = match Credential::from_headers(values.iter().map(HeaderValue::as_bytes)) {
            Ok(Some(credential)) => credential,
            Ok(None) => return self.challenge(route, client, None).await,
            Err(e) => return self.refuse(Reason::Malformed, &e.to_string()),
        };
        let checked = self.keys.verify(
            &credential,
            &L402Request {
                route: &route.id,
                now: self.options.clock.now(),
                conditions: &NoConditions,
            },
        );
        let verified = match checked {
            Ok(v) => v,
            Err(e) if e.reason().pay_again() => {
                self.metrics.rejected(e.reason());
                return self
                    .challenge(route, client, Some((e.reason(), e.to_string())))
                    .await;
            }
            Err(e) => return self.refuse(e.reason(), &e.to_string()),
        };
        // Every token we mint expires; one that does not is not ours to honour forever.
        let Some(minted_until) = verified.minted_valid_until else {
            self.metrics.rejected(Reason::CaveatFailed);
            let why = "the token has no expiry caveat".to_string();
            return self
                .challenge(route, client, Some((Reason::CaveatFailed, why)))
                .await;
        };
        // The spent entry must outlive every macaroon of this payment hash: the holder may
        // append an earlier expiry to one copy and keep another, so the entry lives until the
        // expiry we minted, never the one presented.
        let keep_until = minted_until;
        let hash = verified.payment_hash;
        let ticket = match self.store.claim(&hash, keep_until).await {
            Ok(Claim::Won(ticket)) => ticket,
            Ok(Claim::Spent) => {
                self.metrics.rejected(Reason::Spent);
                let why = "this token was already used: pay the new invoice".to_string();
                return self
                    .challenge(route, client, Some((Reason::Spent, why)))
                    .await;
            }
            Err(e) => {
                self.metrics.store_failure();
                tracing::error!(error = %e, "spent store unavailable; refusing paid request");
                return unavailable(
                    "store_unavailable",
                    "the gateway cannot check tokens right now; your token was not used, retry it shortly",
                );
            }
        };

        // The credential has done its job: the upstream sees the payment hash, not the preimage,
        // and an idempotency key (draft-ietf-httpapi-idempotency-key-header) that is the same
        // for every retry of this payment.
        strip_l402_authorization(request.headers_mut());
        if let Ok(value) = HeaderValue::from_str(&hash.to_hex()) {
            request.headers_mut().insert(PAYMENT_HASH, value);
        }
        if let Ok(value) = HeaderValue::from_str(&wire::idempotency_key(&hash)) {
            request.headers_mut().insert(IDEMPOTENCY_KEY, value);
        }
        let paid = Paid {
            hash,
            ticket,
            keep_until,
            releases: route.releases_on_failure(request.method()),
            method: request.method().clone(),
            route: route.id.clone(),
            price: route.price_sats.unwrap_or(0),
        };
        // The upstream call and its settlement run in a task of their own: a client that hangs
        // up once the request is on its way has spent its token, and the upstream is not cut
        // off mid-request.
        let paywall = self.clone();
        let task = self.in_flight.spawn(async move {
            let guard = SettleOnUnwind {
                paywall: paywall.clone(),
                paid: Some(paid),
            };
            let started = Instant::now();
            let response = inner.oneshot(request).await.unwrap_or_else(|e| match e {});
            paywall.metrics.upstream_latency(started.elapsed());
            let paid = guard.disarm();
            paywall.settle(&paid, response).await
        });
        match task.await {
            Ok(response) => response,
            // The handler panicked; its guard settled the claim as a failure.
            Err(_) => gateway_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the request failed inside the gateway",
            ),
        }
    }

    /// Commits or releases a paid request's claim by what the upstream did, and says which.
    async fn settle(&self, paid: &Paid, response: Response) -> Response {
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
        let state = if release {
            TokenState::Released
        } else {
            TokenState::Spent
        };
        headers.insert(X_L402, HeaderValue::from_static(state.as_str()));
        response
    }

    /// A 402 with a fresh invoice and macaroon for `route`.
    async fn challenge(
        &self,
        route: &Route,
        client: IpAddr,
        reason: Option<(Reason, String)>,
    ) -> Response {
        if let Err(wait) = self.limiter.check(client) {
            self.metrics.rate_limited();
            let secs = wait.as_secs().max(1);
            let body = json!({
                "error": "Too Many Requests",
                "message": format!("too many payment challenges from your address; retry in {secs} s"),
                "retry_after": secs,
            });
            let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            return response;
        }
        let price = route.price_sats.unwrap_or(0);
        let memo = format!(
            "{} {} via Plannt",
            route.method.as_ref().map_or("ANY", |m| m.as_str()),
            route.path
        );
        let invoice_request = InvoiceRequest {
            amount_sats: price,
            memo: memo.chars().take(120).collect(),
            expiry_secs: self.options.invoice_expiry_secs,
        };
        let issue = self.receiver.create_invoice(&invoice_request);
        let invoice = match tokio::time::timeout(self.options.invoice_timeout, issue).await {
            Ok(Ok(invoice)) => invoice,
            Ok(Err(e)) => {
                self.metrics.invoice_failure();
                tracing::error!(error = %e, "the Lightning backend could not issue an invoice");
                return unavailable(
                    "lightning_unavailable",
                    "the gateway cannot issue an invoice right now; nothing was charged, retry shortly",
                );
            }
            Err(_) => {
                self.metrics.invoice_failure();
                tracing::error!("the Lightning backend did not issue an invoice in time");
                return unavailable(
                    "lightning_unavailable",
                    "the gateway cannot issue an invoice right now; nothing was charged, retry shortly",
                );
            }
        };
        let valid_until = self.options.clock.now()
            + self.options.invoice_expiry_secs
            + self.options.token_lifetime_secs;
        let minted = self.keys.mint(&MintRequest {
            payment_hash: invoice.payment_hash,
            route: &route.id,
            valid_until,
            conditions: &[],
        });
        let macaroon = match minted {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "cannot mint a token");
                return unavailable(
                    "mint_failed",
                    "the gateway cannot mint tokens; its operator must check the root keys",
                );
            }
        };
        self.metrics.challenge(&route.id);
        let expires_at = UNIX_EPOCH + Duration::from_secs(invoice.expires_at.min(253_402_300_799));
        let mut body = json!({
            "error": "Payment Required",
            "invoice": invoice.bolt11,
            "macaroon": macaroon.to_base64(),
            "payment_hash": hex::encode(invoice.payment_hash),
            "amount_sats": price,
            "expires_at": humantime::format_rfc3339_seconds(expires_at).to_string(),
            "format": "L402 <macaroon>:<preimage>",
        });
        if let Some((reason, message)) = &reason {
            body["reason"] = json!(reason.code());
            body["message"] = json!(message);
        }
        let header_value = Challenge::new(macaroon, invoice.bolt11).to_header_value();
        let mut response = (StatusCode::PAYMENT_REQUIRED, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&header_value) {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some((reason, _)) = reason {
            headers.insert(X_L402_REASON, HeaderValue::from_static(reason.code()));
        }
        response
    }

    /// A 401 for a credential that is not genuine: no invoice.
    fn refuse(&self, reason: Reason, message: &str) -> Response {
        self.metrics.rejected(reason);
        let body = json!({ "error": "Unauthorized", "reason": reason.code(), "message": message });
        let mut response = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
        response
            .headers_mut()
            .insert(X_L402_REASON, HeaderValue::from_static(reason.code()));
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

const X_L402: HeaderName = HeaderName::from_static(wire::X_L402);
const X_L402_REASON: HeaderName = HeaderName::from_static(wire::X_L402_REASON);
const PAYMENT_HASH: HeaderName = HeaderName::from_static(wire::X_L402_PAYMENT_HASH);
const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static(wire::IDEMPOTENCY_KEY);

/// Headers that let a request be priced as one method and served as another.
const METHOD_OVERRIDES: [HeaderName; 3] = [
    HeaderName::from_static("x-http-method-override"),
    HeaderName::from_static("x-http-method"),
    HeaderName::from_static("x-method-override"),
];

/// Removes what a client must not say to the upstream: `x-l402-*` headers (only the gateway
/// sets them, and an upstream may trust `x-l402-payment-hash`) and method overrides.
fn scrub(headers: &mut HeaderMap) {
    drop_l402_headers(headers);
    for name in &METHOD_OVERRIDES {
        headers.remove(name);
    }
}

fn drop_l402_headers(headers: &mut HeaderMap) {
    let ours = |name: &HeaderName| name.as_str().starts_with(wire::X_L402);
    if !headers.keys().any(ours) {
        return;
    }
    let names: Vec<HeaderName> = headers.keys().filter(|n| ours(n)).cloned().collect();
    for name in names {
        headers.remove(name);
    }
}

/// Puts `path` in place of the request's path, keeping its query.
fn set_path(request: &mut Request<Body>, path: &str) -> Result<(), Box<Response>> {
    let with_query = match request.uri().query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_string(),
    };
    let mut parts = request.uri().clone().into_parts();
    parts.path_and_query = PathAndQuery::try_from(with_query).ok();
    match Uri::from_parts(parts) {
        Ok(uri) => {
            *request.uri_mut() = uri;
            Ok(())
        }
        Err(_) => Err(Box::new(gateway_error(
            StatusCode::BAD_REQUEST,
            "the path cannot be read",
        ))),
    }
}

/// An error answer of the gateway's own: `{"error": <reason phrase>, "message": …}`.
fn gateway_error(status: StatusCode, message: &str) -> Response {
    let body = json!({
        "error": status.canonical_reason().unwrap_or("Error"),
        "message": message,
    });
    (status, axum::Json(body)).into_response()
}

fn unavailable(reason: &'static str, message: &str) -> Response {
    let body = json!({ "error": "Service Unavailable", "reason": reason, "message": message });
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}

/// The address the connection comes from.
pub(crate) fn peer_ip(request: &Request<Body>) -> IpAddr {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

fn strip_l402_authorization(headers: &mut HeaderMap) {
    let keep: Vec<HeaderValue> = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter(|v| {
            let b = v.as_bytes();
            !(b.len() >= 4
                && (b[..4].eq_ignore_ascii_case(b"L402") || b[..4].eq_ignore_ascii_case(b"LSAT")))
        })
        .cloned()
        .collect();
    headers.remove(header::AUTHORIZATION);
    for value in keep {
        headers.append(header::AUTHORIZATION, value);
    }
}

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
struct Paid {
    hash: PaymentHash,
    ticket: Ticket,
    keep_until: u64,
    releases: bool,
    method: Method,
    route: String,
    price: u64,
}

/// Settles a claim as a failure if the task forwarding its request unwinds (a handler
/// panicked), so it is neither stranded nor, for a POST, given back.
struct SettleOnUnwind {
    paywall: Arc<Paywall>,
    paid: Option<Paid>,
}

impl SettleOnUnwind {
    fn disarm(mut self) -> Paid {
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
    use plannt_l402::RootKey;
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
            store.commit(&hash, &ticket, until).await.unwrap();
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
