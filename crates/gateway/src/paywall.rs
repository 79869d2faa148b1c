//! The L402 paywall as a tower layer: price the request, challenge, verify, spend, forward.
//!
//! ```text
//! no credential                     -> rate limit, invoice, 402 challenge
//! credential not genuine            -> 401 {reason}, no invoice
//! genuine but cannot buy this       -> 402 fresh challenge {reason} (spent, expired, wrong_route, …)
//! genuine                           -> claim the payment hash, forward
//!   upstream 5xx / gone             -> release the claim (the token works again), `x-l402: released`
//!   otherwise                       -> commit the claim, `x-l402: spent`
//! ```
//! The rate limit applies before any invoice is created; a backend that cannot issue an invoice
//! gives 503, never a 402 with an invoice that cannot be paid; a store that cannot answer gives
//! 503 to paid requests (fail closed).

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use plannt_l402::{
    Challenge, Credential, KeyRing, MintRequest, NoConditions, Reason, Request as L402Request,
};
use plannt_lightning::invoice::unix_now;
use plannt_lightning::{InvoiceRequest, Receiver};
use serde_json::json;
use tower::{Layer, Service, ServiceExt};

use crate::forwarded::TrustedProxies;
use crate::limiter::Limiter;
use crate::metrics::Metrics;
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
                match store.purge(unix_now()).await {
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

    /// The layer to put in front of a service.
    pub fn layer(self: &Arc<Self>) -> L402Layer {
        L402Layer {
            paywall: self.clone(),
        }
    }

    async fn handle<S>(&self, mut request: Request<Body>, inner: S) -> Response
    where
        S: Service<Request<Body>, Response = Response, Error = Infallible> + Send,
        S::Future: Send,
    {
        // A route is chosen by the path as sent; an upstream may resolve `..` or an encoded
        // separator into another path, so such paths are refused before any route is chosen.
        if !is_plain_path(request.uri().path()) {
            let body = json!({
                "error": "Bad Request",
                "message": "the path has a dot segment or an encoded separator; send it in its plain form",
            });
            return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
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
                now: unix_now(),
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
        let Some(until) = verified.valid_until else {
            self.metrics.rejected(Reason::CaveatFailed);
            let why = "the token has no expiry caveat".to_string();
            return self
                .challenge(route, client, Some((Reason::CaveatFailed, why)))
                .await;
        };
        let hash = verified.payment_hash;
        let ticket = match self.store.claim(&hash, until).await {
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

        // The credential has done its job: the upstream sees the payment hash, not the preimage.
        strip_l402_authorization(request.headers_mut());
        if let Ok(value) = HeaderValue::from_str(&hex::encode(hash)) {
            request.headers_mut().insert("x-l402-payment-hash", value);
        }
        let mut guard = ClaimGuard {
            store: self.store.clone(),
            hash,
            ticket,
            armed: true,
        };
        let started = Instant::now();
        let mut response = inner.oneshot(request).await.unwrap_or_else(|e| match e {});
        self.metrics.upstream_latency(started.elapsed());
        guard.armed = false;
        if response.status().is_server_error() || response.extensions().get::<Unserved>().is_some()
        {
            if let Err(e) = self.store.release(&hash, &ticket).await {
                tracing::error!(error = %e, "could not release a claim after an upstream failure");
            }
            self.metrics.released();
            response
                .headers_mut()
                .insert("x-l402", HeaderValue::from_static("released"));
        } else {
            if let Err(e) = self.store.commit(&hash, &ticket, until).await {
                // The upstream has answered: the client gets what it paid for. The pending claim
                // still refuses the token until it lapses.
                tracing::error!(error = %e, "could not commit a spent token");
            }
            self.metrics
                .accepted(&route.id, route.price_sats.unwrap_or(0));
            response
                .headers_mut()
                .insert("x-l402", HeaderValue::from_static("spent"));
        }
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
        let valid_until =
            unix_now() + self.options.invoice_expiry_secs + self.options.token_lifetime_secs;
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
            headers.insert("x-l402-reason", HeaderValue::from_static(reason.code()));
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
            .insert("x-l402-reason", HeaderValue::from_static(reason.code()));
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// True when no segment of `path` is `.` or `..` (percent-encoded or not) and no separator is
/// hidden as `%2F`, `%5C` or a backslash: the path the route matched is the path served.
fn is_plain_path(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") || lower.contains('\\') {
        return false;
    }
    lower.split('/').all(|segment| {
        let decoded = segment.replace("%2e", ".");
        decoded != "." && decoded != ".."
    })
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

/// Marks a response that the upstream never produced although its status is not a 5xx (the
/// request body failed on its way in): the claim is released, as for an upstream failure.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Unserved;

/// Releases a claim if the request is dropped before the upstream answers (the client went away
/// or the server is shutting down): its response never reached anyone.
struct ClaimGuard {
    store: Arc<dyn SpentStore>,
    hash: [u8; 32],
    ticket: Ticket,
    armed: bool,
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (store, hash, ticket) = (self.store.clone(), self.hash, self.ticket);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = store.release(&hash, &ticket).await {
                    tracing::error!(error = %e, "could not release the claim of a dropped request");
                }
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
        for (hash, until) in [([1; 32], unix_now() - 1), ([2; 32], unix_now() + 3_600)] {
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

    #[test]
    fn dot_segments_and_hidden_separators_are_not_plain() {
        for path in [
            "/",
            "/v1/demo",
            "/docs/a.b/c",
            "/x/...",
            "/a/.hidden",
            "/%41",
        ] {
            assert!(is_plain_path(path), "{path}");
        }
        for path in [
            "/docs/../api/secret",
            "/docs/%2e%2e/api/secret",
            "/docs/%2E%2e/api",
            "/docs/.%2e/api",
            "/./v1/demo",
            "/docs/%2e/x",
            "/docs/..",
            "/docs/..%2fapi",
            "/docs/%2Fapi",
            "/docs/%5c..%5capi",
            "/docs\\..\\api",
        ] {
            assert!(!is_plain_path(path), "{path}");
        }
    }
}
