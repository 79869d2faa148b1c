//! CORS in front of the gateway's answers: tower-http's [`CorsLayer`] for every request that
//! carries an `Origin` (and every preflight), and for a request without one the headers that
//! layer adds to it, worked out once at start.
//!
//! A request with no `Origin` is no cross-origin request: what the CORS layer adds to its answer
//! does not depend on it (the `Vary` list, the exposed headers, and `Access-Control-Allow-Origin:
//! *` when any origin is allowed; a list of origins allows none of them without an `Origin`). The
//! layer still built those headers anew for every such answer, a header map and two joined
//! values each time; [`Cors`] asks the layer once, on a request without an `Origin`, and adds
//! the same headers, the same way (`Vary` appended, the others set), to every answer of such a
//! request. Caches see the same `Vary` as before; a browser's request always carries its
//! `Origin` and goes through the layer itself.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, Response, header};
use pin_project_lite::pin_project;
use tower::{Layer, Service};
use tower_http::cors::{self, CorsLayer};

/// The headers [`CorsLayer`] adds to the answer of a request without an `Origin`.
#[derive(Debug, Default)]
pub(crate) struct Plain {
    /// Appended to the answer's own `Vary`.
    vary: Vec<HeaderValue>,
    /// Set, replacing any of the same name.
    set: Vec<(HeaderName, HeaderValue)>,
}

impl Plain {
    /// Asks `layer` what it adds to the answer of a `GET` without an `Origin`; `None` if its
    /// answer is not ready at once (an origin check that awaits), and then every request goes
    /// through the layer.
    fn of(layer: &CorsLayer) -> Option<Plain> {
        let inner = tower::service_fn(|_: Request<Body>| async {
            Ok::<_, Infallible>(Response::new(Body::empty()))
        });
        let mut service = layer.layer(inner);
        let future = std::pin::pin!(service.call(Request::new(Body::empty())));
        // The inner service answers at once, and so does the layer's origin check of a request
        // without an `Origin` (a list, or any origin).
        let answer = match future.poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Ok(answer)) => answer,
            Poll::Ready(Err(never)) => match never {},
            Poll::Pending => return None,
        };
        let mut plain = Plain::default();
        for (name, value) in answer.headers() {
            if name == header::VARY {
                plain.vary.push(value.clone());
            } else {
                plain.set.push((name.clone(), value.clone()));
            }
        }
        Some(plain)
    }

    fn apply<B>(&self, answer: &mut Response<B>) {
        let headers = answer.headers_mut();
        for value in &self.vary {
            headers.append(header::VARY, value.clone());
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
    }
}

/// The CORS layer of `plannt serve` (see the module's documentation).
#[derive(Clone)]
pub(crate) struct Cors {
    layer: CorsLayer,
    plain: Option<Arc<Plain>>,
}

impl Cors {
    /// CORS by `layer`, its headers for requests without an `Origin` worked out now.
    pub(crate) fn new(layer: CorsLayer) -> Cors {
        let plain = Plain::of(&layer).map(Arc::new);
        Cors { layer, plain }
    }
}

impl<S> Layer<S> for Cors {
    type Service = CorsService<S>;

    fn layer(&self, inner: S) -> CorsService<S> {
        CorsService {
            cors: self.layer.layer(inner),
            plain: self.plain.clone(),
        }
    }
}

/// The service [`Cors`] makes.
#[derive(Clone)]
pub(crate) struct CorsService<S> {
    cors: cors::Cors<S>,
    plain: Option<Arc<Plain>>,
}

impl<S, B> Service<Request<B>> for CorsService<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = CorsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.cors.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if let Some(plain) = &self.plain
            && request.method() != Method::OPTIONS
            && !request.headers().contains_key(header::ORIGIN)
        {
            return CorsFuture::Plain {
                future: self.cors.get_mut().call(request),
                plain: plain.clone(),
            };
        }
        CorsFuture::Cors {
            future: self.cors.call(request),
        }
    }
}

pin_project! {
    /// The answer of a [`CorsService`].
    #[project = CorsProjection]
    pub(crate) enum CorsFuture<F> {
        /// Through tower-http's layer.
        Cors { #[pin] future: cors::ResponseFuture<F> },
        /// A request without an `Origin`: the inner answer, with [`Plain`]'s headers.
        Plain { #[pin] future: F, plain: Arc<Plain> },
    }
}

impl<F, E> Future for CorsFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            CorsProjection::Cors { future } => future.poll(cx),
            CorsProjection::Plain { future, plain } => {
                let mut answer = std::task::ready!(future.poll(cx))?;
                plain.apply(&mut answer);
                Poll::Ready(Ok(answer))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    /// An answer that already varies by something, as an upstream's may.
    async fn answer(_: Request<Body>) -> Result<Response<Body>, Infallible> {
        let mut answer = Response::new(Body::from("hello"));
        answer
            .headers_mut()
            .insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        answer.headers_mut().insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("x-upstream"),
        );
        Ok(answer)
    }

    fn request(method: Method, origin: Option<&'static str>) -> Request<Body> {
        let mut request = Request::new(Body::empty());
        *request.method_mut() = method;
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert(header::ORIGIN, HeaderValue::from_static(origin));
        }
        request
    }

    /// Every header of an answer, in order, as text.
    fn headers(answer: &Response<Body>) -> Vec<(String, String)> {
        answer
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect()
    }

    #[tokio::test]
    async fn every_request_gets_the_headers_tower_https_layer_gives_it() {
        for origins in [vec!["*".to_owned()], vec!["https://app.example".to_owned()]] {
            let layer = crate::server::cors(&origins).unwrap();
            let ours = Cors::new(layer.clone());
            assert!(ours.plain.is_some(), "{origins:?}: worked out at start");
            for (method, origin) in [
                (Method::GET, None),
                (Method::POST, None),
                (Method::GET, Some("https://app.example")),
                (Method::GET, Some("https://other.example")),
                (Method::OPTIONS, Some("https://app.example")),
                (Method::OPTIONS, None),
            ] {
                let theirs = layer
                    .layer(tower::service_fn(answer))
                    .oneshot(request(method.clone(), origin))
                    .await
                    .unwrap();
                let mine = ours
                    .layer(tower::service_fn(answer))
                    .oneshot(request(method.clone(), origin))
                    .await
                    .unwrap();
                assert_eq!(
                    headers(&mine),
                    headers(&theirs),
                    "{origins:?}, {method} from {origin:?}"
                );
            }
            // Without an Origin the answer still says it varies by one, for caches.
            let plain = ours
                .layer(tower::service_fn(answer))
                .oneshot(request(Method::GET, None))
                .await
                .unwrap();
            let vary: Vec<_> = plain.headers().get_all(header::VARY).iter().collect();
            assert_eq!(vary.len(), 2, "{vary:?}");
            assert!(vary[1].to_str().unwrap().contains("origin"), "{vary:?}");
            let allowed = plain.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN);
            if origins == ["*"] {
                assert_eq!(allowed.unwrap(), "*");
            } else {
                assert!(
                    allowed.is_none(),
                    "no origin is allowed without one: {allowed:?}"
                );
            }
        }
    }
}
