//! A route's free tier and rate limit at the paywall: the request counted (by the store when it
//! counts for every replica, else in this process), a free answer forwarded without a payment
//! (`x-l402: free`), a 429 beyond the limit, and the `RateLimit-Policy` / `RateLimit` headers
//! (draft-ietf-httpapi-ratelimit-headers) that say what is left.

use std::convert::Infallible;
use std::net::IpAddr;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tower::{Service, ServiceExt};

use super::Paywall;
use super::answers::Challenged;
use super::headers::X_L402;
use crate::quota::{self, Hit, Kind, Quota};
use crate::routes::Route;

const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Adds `RateLimit-Policy: "<kind>";q=N;w=SECS` and `RateLimit: "<kind>";r=LEFT;t=RESET`.
pub(super) fn rate_limit_headers(response: &mut Response, kind: Kind, hit: &Hit) {
    let name = kind.name();
    let policy = format!(
        "\"{name}\";q={};w={}",
        hit.quota.requests,
        hit.quota.per_secs()
    );
    let state = format!("\"{name}\";r={};t={}", hit.remaining(), hit.reset_secs);
    let headers = response.headers_mut();
    for (header, value) in [(RATELIMIT_POLICY, policy), (RATELIMIT, state)] {
        if let Ok(value) = HeaderValue::try_from(value) {
            headers.append(header, value);
        }
    }
}

impl Paywall {
    /// Counts one request of `client` to `route` against `quota`.
    pub(super) async fn count(
        &self,
        kind: Kind,
        route: &Route,
        quota: &Quota,
        client: IpAddr,
    ) -> Hit {
        let now = self.options.clock.now();
        let (window, reset_secs) = quota::window(quota, now);
        let key = quota::key(kind, &route.id, client, window);
        match self.store.count_request(&key, reset_secs).await {
            Ok(Some(count)) => Hit {
                count,
                quota: *quota,
                reset_secs,
            },
            Ok(None) => self.counters.hit(kind, &route.id, quota, client, now),
            Err(e) => {
                tracing::warn!(error = %e, route = %route.id, "the store could not count a request; counting it in this process");
                self.counters.hit(kind, &route.id, quota, client, now)
            }
        }
    }

    /// The route's rate limit for `client`: `Some` 429 beyond it.
    pub(super) async fn over_rate_limit(&self, route: &Route, client: IpAddr) -> Option<Response> {
        let limit = route.rate_limit.as_ref()?;
        let hit = self.count(Kind::Limit, route, limit, client).await;
        if !hit.over() {
            return None;
        }
        self.metrics.rate_limited();
        let secs = hit.reset_secs.max(1);
        let body = json!({
            "error": "Too Many Requests",
            "reason": "rate_limited",
            "message": format!(
                "this route allows {} requests per {} s from your address; retry in {secs} s",
                limit.requests,
                limit.per_secs()
            ),
            "retry_after": secs,
        });
        let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        rate_limit_headers(&mut response, Kind::Limit, &hit);
        Some(response)
    }

    /// A request without a credential: free while the route's free tier lasts for this client
    /// (forwarded without a payment, `x-l402: free`), else the 402 (saying no free request is
    /// left).
    pub(super) async fn unpaid<S>(
        &self,
        at: &Challenged<'_>,
        mut request: Request<Body>,
        inner: S,
    ) -> Response
    where
        S: Service<Request<Body>, Response = Response, Error = Infallible> + Send + 'static,
        S::Future: Send,
    {
        let Some(free) = &at.route.free else {
            return self.challenge(at, None).await;
        };
        let hit = self.count(Kind::Free, at.route, free, at.client).await;
        if hit.over() {
            let mut response = self.challenge(at, None).await;
            if response.status() == StatusCode::PAYMENT_REQUIRED {
                rate_limit_headers(&mut response, Kind::Free, &hit);
            }
            return response;
        }
        super::page::strip_cookies(request.headers_mut());
        let mut response = inner.oneshot(request).await.unwrap_or_else(|e| match e {});
        response
            .headers_mut()
            .insert(X_L402, HeaderValue::from_static("free"));
        rate_limit_headers(&mut response, Kind::Free, &hit);
        self.metrics.free_answer(&at.route.id);
        response
    }
}
