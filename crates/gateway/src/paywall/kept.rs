//! Keeping the answer of a paid request and giving it again: the request body hashed as it
//! streams to the upstream, the answer buffered up to `keep_answer_bytes` and sealed with the
//! commit, and the answers to a spent credential presented again — the kept answer
//! (`x-l402: replayed`) or, while the first request is still in flight, a 409.
//!
//! A replay is not a second use of the payment: it is the same payment, for the same request
//! (method, path and query, body), answered with the same bytes, and the upstream is not called.
//! It only gives a client whose connection broke after the commit the answer it paid for.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::{Body, BodyDataStream, Bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use http_body_util::{BodyExt, BodyStream, StreamBody};
use hyper::body::Frame;
use serde_json::json;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::headers::{X_L402, X_L402_KEPT};
use crate::keep::{KeptAnswer, RequestDigest, request_digest};

/// The `x-l402` value of a kept answer given again.
pub(super) const REPLAYED: &str = "replayed";
/// The `x-l402` value of the 409 while the first request is in flight.
pub(super) const PENDING: &str = "pending";

/// The SHA-256 of a request body, as it streams to the upstream.
pub(super) struct BodyDigest {
    state: Mutex<Hashing>,
}

struct Hashing {
    sha: Sha256,
    seen: u64,
    /// The `Content-Length` announced, if any: the body is whole once that much went by.
    expected: Option<u64>,
    done: bool,
}

impl BodyDigest {
    /// The digest, once the whole body went by; `None` while it has not.
    pub(super) fn finished(&self) -> Option<[u8; 32]> {
        let state = self.state.lock().expect("digest lock");
        let whole = state.done || state.expected.is_some_and(|n| n == state.seen);
        whole.then(|| state.sha.clone().finalize().into())
    }
}

/// Wraps a request body so that its SHA-256 is computed as it streams on; the body is never
/// held. A body that is empty from the start goes on untouched.
pub(super) fn hash_body(body: Body, headers: &HeaderMap) -> (Body, Arc<BodyDigest>) {
    let empty = axum::body::HttpBody::is_end_stream(&body);
    let expected = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let digest = Arc::new(BodyDigest {
        state: Mutex::new(Hashing {
            sha: Sha256::new(),
            seen: 0,
            expected,
            done: empty,
        }),
    });
    if empty {
        return (body, digest);
    }
    let stream = HashingStream {
        inner: body.into_data_stream(),
        digest: digest.clone(),
    };
    (Body::from_stream(stream), digest)
}

struct HashingStream {
    inner: BodyDataStream,
    digest: Arc<BodyDigest>,
}

impl Stream for HashingStream {
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = ready!(self.inner.poll_next_unpin(cx));
        let mut state = self.digest.state.lock().expect("digest lock");
        match &next {
            Some(Ok(chunk)) => {
                state.sha.update(chunk);
                state.seen += chunk.len() as u64;
            }
            None => state.done = true,
            Some(Err(_)) => {}
        }
        Poll::Ready(next)
    }
}

/// What a settled request keeps: for whom, and what it asked.
pub(super) struct KeepPlan {
    /// The credential's secret (the preimage, or the x402 bearer secret).
    pub(super) secret: Zeroizing<[u8; 32]>,
    pub(super) method: String,
    /// The canonical path and query.
    pub(super) target: String,
    pub(super) body: Arc<BodyDigest>,
}

impl KeepPlan {
    /// The request's digest, once its body went by whole.
    pub(super) fn digest(&self) -> Option<RequestDigest> {
        let body = self.body.finished()?;
        Some(request_digest(&self.method, &self.target, &body))
    }
}

/// Why an answer was not kept: the `reason` of `x-l402-kept: none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NotKept {
    /// Keeping is off (`keep_answer_bytes = 0`).
    Disabled,
    /// The body is larger than `keep_answer_bytes`.
    TooLarge,
    /// The body was still streaming when the wait for it ran out (or it is an event stream).
    Streamed,
    /// The upstream answered before it read the whole request body.
    BodyUnread,
    /// The answer's body failed while it was read.
    Failed,
    /// The store did not take the commit.
    NotStored,
    /// The answer ends with trailers (gRPC's status, say), which a kept answer does not hold.
    Trailers,
}

impl NotKept {
    fn code(self) -> &'static str {
        match self {
            NotKept::Disabled => "disabled",
            NotKept::TooLarge => "too-large",
            NotKept::Streamed => "streamed",
            NotKept::BodyUnread => "request-body-unread",
            NotKept::Failed => "body-failed",
            NotKept::NotStored => "not-stored",
            NotKept::Trailers => "trailers",
        }
    }

    /// The `x-l402-kept` value.
    pub(super) fn header(self) -> HeaderValue {
        HeaderValue::from_str(&format!("none; reason=\"{}\"", self.code()))
            .expect("the reasons are plain text")
    }
}

/// Reads the answer's body up to `limit` bytes within `wait`: `Ok(body)` with the whole body
/// (the response's body is then that copy), or why not (the response then streams on what was
/// read and the rest, unchanged).
pub(super) async fn buffer(
    response: &mut Response,
    limit: usize,
    wait: Duration,
) -> Result<Bytes, NotKept> {
    let announced = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(NotKept::TooLarge);
    }
    let event_stream = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
    if event_stream {
        return Err(NotKept::Streamed);
    }
    // Read frame by frame: the data, and trailers if it ends with them.
    let mut body = std::mem::take(response.body_mut());
    let deadline = tokio::time::Instant::now() + wait;
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut trailers = None;
    let mut size = 0usize;
    let why = loop {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => match frame.into_data() {
                Ok(chunk) => {
                    size += chunk.len();
                    chunks.push(chunk);
                    if size > limit {
                        break NotKept::TooLarge;
                    }
                }
                Err(frame) => {
                    // Passed on as they came, and the answer is not kept.
                    if let Ok(map) = frame.into_trailers() {
                        trailers = Some(map);
                        break NotKept::Trailers;
                    }
                }
            },
            Ok(None) => {
                let whole = if chunks.len() == 1 {
                    chunks.pop().unwrap_or_default()
                } else {
                    Bytes::from(chunks.concat())
                };
                *response.body_mut() = Body::from(whole.clone());
                return Ok(whole);
            }
            Ok(Some(Err(e))) => {
                // Pass the failure on after what was read, as the client would have seen it.
                let failed = futures_util::stream::iter(
                    chunks.into_iter().map(Ok).chain(std::iter::once(Err(e))),
                );
                *response.body_mut() = Body::from_stream(failed);
                return Err(NotKept::Failed);
            }
            Err(_) => break NotKept::Streamed,
        }
    };
    let read = chunks
        .into_iter()
        .map(Frame::data)
        .chain(trailers.map(Frame::trailers))
        .map(Ok::<_, axum::Error>);
    let rest = futures_util::stream::iter(read).chain(BodyStream::new(body));
    *response.body_mut() = Body::new(StreamBody::new(rest));
    Err(why)
}

/// The headers kept with an answer: every one the answer carries, except `Content-Length`
/// (the replay has the same body, and its length is set again) and the gateway's `x-l402*`
/// (the proxy already dropped hop-by-hop headers).
pub(super) fn kept_headers(headers: &HeaderMap) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .filter(|(name, _)| {
            *name != header::CONTENT_LENGTH && !name.as_str().starts_with(plannt_l402::wire::X_L402)
        })
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect()
}

/// The kept answer given again: its status, headers and body, with `x-l402: replayed`.
pub(super) fn replay(answer: KeptAnswer) -> Response {
    let mut response = Response::new(Body::from(answer.body));
    *response.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let headers = response.headers_mut();
    for (name, value) in answer.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(&value),
        ) {
            headers.append(name, value);
        }
    }
    headers.insert(X_L402, HeaderValue::from_static(REPLAYED));
    headers.remove(X_L402_KEPT);
    response
}

/// The answer to a credential whose first request is still in flight: nothing is spent by it,
/// and the same credential sent again shortly gets the kept answer.
pub(super) fn in_progress() -> Response {
    let body = json!({
        "error": "Conflict",
        "reason": "in_progress",
        "message": "a request with this payment is still in progress: send the same credential again shortly",
    });
    let mut response = (StatusCode::CONFLICT, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(X_L402, HeaderValue::from_static(PENDING));
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(body: Body, headers: &[(&str, &str)]) -> Response {
        let mut response = Response::new(body);
        for (name, value) in headers {
            response.headers_mut().insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        response
    }

    async fn body_of(response: Response) -> Bytes {
        axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_small_answer_is_read_whole_and_still_sent() {
        let mut response = answer(Body::from("hello"), &[]);
        let kept = buffer(&mut response, 10, Duration::from_secs(1)).await;
        assert_eq!(kept, Ok(Bytes::from("hello")));
        assert_eq!(body_of(response).await, "hello");
    }

    #[tokio::test]
    async fn a_larger_answer_streams_on_unchanged_and_is_not_kept() {
        let chunks = (0..10).map(|i| Ok::<_, std::io::Error>(Bytes::from(vec![i as u8; 7])));
        let mut response = answer(Body::from_stream(futures_util::stream::iter(chunks)), &[]);
        let kept = buffer(&mut response, 20, Duration::from_secs(1)).await;
        assert_eq!(kept, Err(NotKept::TooLarge));
        let expected: Vec<u8> = (0..10).flat_map(|i| vec![i as u8; 7]).collect();
        assert_eq!(body_of(response).await, expected);

        // Announced larger: not even read.
        let mut response = answer(Body::from("x".repeat(30)), &[("content-length", "30")]);
        let kept = buffer(&mut response, 20, Duration::from_secs(1)).await;
        assert_eq!(kept, Err(NotKept::TooLarge));
        assert_eq!(body_of(response).await, "x".repeat(30));
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_still_streaming_after_the_wait_streams_on_and_is_not_kept() {
        let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
        sender.send(Ok(Bytes::from("first "))).await.unwrap();
        let stream = tokio_stream_from(receiver);
        let mut response = answer(Body::from_stream(stream), &[]);
        let kept = buffer(&mut response, 1000, Duration::from_secs(2)).await;
        assert_eq!(kept, Err(NotKept::Streamed));
        sender.send(Ok(Bytes::from("second"))).await.unwrap();
        drop(sender);
        assert_eq!(body_of(response).await, "first second");

        let mut response = answer(
            Body::from("data: 1\n\n"),
            &[("content-type", "text/event-stream")],
        );
        assert_eq!(
            buffer(&mut response, 1000, Duration::from_secs(2)).await,
            Err(NotKept::Streamed)
        );
    }

    /// A body of `data` frames that ends with trailers `grpc-status: 0`.
    fn with_trailers(data: &[&'static str]) -> Body {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        let frames: Vec<_> = data
            .iter()
            .map(|d| Frame::data(Bytes::from_static(d.as_bytes())))
            .chain(std::iter::once(Frame::trailers(trailers)))
            .map(Ok::<_, std::io::Error>)
            .collect();
        Body::new(StreamBody::new(futures_util::stream::iter(frames)))
    }

    /// Every frame of `response`'s body: its data, and its trailers if any.
    async fn frames_of(response: Response) -> (Vec<u8>, Option<HeaderMap>) {
        let mut body = response.into_body();
        let (mut data, mut trailers) = (Vec::new(), None);
        while let Some(frame) = body.frame().await {
            match frame.unwrap().into_data() {
                Ok(chunk) => data.extend_from_slice(&chunk),
                Err(frame) => trailers = frame.into_trailers().ok(),
            }
        }
        (data, trailers)
    }

    #[tokio::test]
    async fn an_answer_with_trailers_is_sent_with_them_and_not_kept() {
        let mut response = answer(with_trailers(&["an ", "answer"]), &[]);
        let kept = buffer(&mut response, 1000, Duration::from_secs(1)).await;
        assert_eq!(kept, Err(NotKept::Trailers));
        let (data, trailers) = frames_of(response).await;
        assert_eq!(data, b"an answer");
        assert_eq!(trailers.expect("the trailers")["grpc-status"], "0");

        // Over the limit before its trailers: streamed on with them.
        let mut response = answer(with_trailers(&["0123456789", "0123456789"]), &[]);
        let kept = buffer(&mut response, 15, Duration::from_secs(1)).await;
        assert_eq!(kept, Err(NotKept::TooLarge));
        let (data, trailers) = frames_of(response).await;
        assert_eq!(data, b"01234567890123456789");
        assert_eq!(trailers.expect("the trailers")["grpc-status"], "0");
    }

    fn tokio_stream_from(
        mut receiver: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
    ) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
        futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
    }

    #[tokio::test]
    async fn a_request_body_is_hashed_as_it_streams() {
        let (body, digest) = hash_body(Body::from("question"), &HeaderMap::new());
        assert_eq!(digest.finished(), None, "nothing went by yet");
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        assert_eq!(bytes, "question");
        let expected: [u8; 32] = Sha256::digest(b"question").into();
        assert_eq!(digest.finished(), Some(expected));

        let (_, digest) = hash_body(Body::empty(), &HeaderMap::new());
        let empty: [u8; 32] = Sha256::digest(b"").into();
        assert_eq!(digest.finished(), Some(empty));
    }
}
