//! Hostile requests: each gets a 4xx (never a 5xx, never a dropped connection), spends no
//! token, and the gateway goes on serving.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};

use crate::support::{
    Answer, Challenge, TestGateway, authorization, config, serve_upstream, start, upstream_route,
};

/// The gateway still answers a plain request with a challenge.
async fn still_serving(gateway: &TestGateway) {
    Challenge::of(&gateway.get("/v1/demo", None).await);
}

/// Sends raw bytes on a fresh connection and reads the status code of the answer. A write the
/// server cut short is fine as long as it answered first.
fn raw_status(addr: SocketAddr, request: &[u8]) -> u16 {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(e) => panic!(
                "the connection was dropped ({e}) after {} bytes of answer: {:?}",
                answer.len(),
                String::from_utf8_lossy(&answer)
            ),
        }
    }
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    status.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_megabyte_header_is_refused_with_431() {
    let gateway = start(config("memory")).await;
    let filler = "a".repeat(1024 * 1024);
    let request = format!(
        "GET /v1/demo HTTP/1.1\r\nHost: x\r\nX-Filler: {filler}\r\nConnection: close\r\n\r\n"
    );
    let addr = gateway.addr;
    let status = tokio::task::spawn_blocking(move || raw_status(addr, request.as_bytes()))
        .await
        .unwrap();
    assert_eq!(status, 431);

    // The same through an ordinary client.
    let response = gateway
        .http
        .get(gateway.url("/v1/demo"))
        .header("x-filler", "a".repeat(1024 * 1024))
        .send()
        .await;
    match response {
        Ok(r) => assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
        Err(e) => panic!("the connection was dropped instead of answered: {e:?}"),
    }
    still_serving(&gateway).await;
}

#[tokio::test]
async fn an_authorization_value_that_is_not_text_is_malformed() {
    let gateway = start(config("memory")).await;
    let (macaroon, preimage) = gateway.token("/v1/demo").await;
    let mut value = authorization(&macaroon, &preimage).into_bytes();
    value[10] = 0xff;
    value[11] = 0xfe;
    let response = gateway
        .http
        .get(gateway.url("/v1/demo"))
        .header("authorization", HeaderValue::from_bytes(&value).unwrap())
        .send()
        .await
        .unwrap();
    let answer = Answer::read(response).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{answer:?}");
    assert_eq!(answer.reason(), Some("malformed"));

    // Another scheme's binary value is the upstream's business: we ask for payment.
    let response = gateway
        .http
        .get(gateway.url("/v1/demo"))
        .header(
            "authorization",
            HeaderValue::from_bytes(b"Basic \xff\xfe\xfd").unwrap(),
        )
        .send()
        .await
        .unwrap();
    Challenge::of(&Answer::read(response).await);

    // The genuine credential was not spent by any of that.
    let paid = gateway
        .get("/v1/demo", Some(&authorization(&macaroon, &preimage)))
        .await;
    assert_eq!(paid.status, StatusCode::OK, "{paid:?}");
}

#[tokio::test]
async fn five_thousand_authorization_values_are_refused_with_a_4xx() {
    let gateway = start(config("memory")).await;
    let (macaroon, preimage) = gateway.token("/v1/demo").await;
    let credential = authorization(&macaroon, &preimage);

    let mut headers = HeaderMap::new();
    for _ in 0..5000 {
        headers.append("authorization", HeaderValue::from_str(&credential).unwrap());
    }
    let response = gateway
        .http
        .get(gateway.url("/v1/demo"))
        .headers(headers)
        .send()
        .await
        .expect("the server answers rather than drops the connection");
    // More header fields than the server parses (hyper's limit is 100).
    assert_eq!(
        response.status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );

    // Within the header limit: the same credential many times counts once...
    let mut headers = HeaderMap::new();
    for _ in 0..40 {
        headers.append("authorization", HeaderValue::from_str(&credential).unwrap());
    }
    let (other, other_preimage) = gateway.token("/v1/demo").await;
    // ...while two different ones are refused, and spend neither.
    let mut conflicting = headers.clone();
    conflicting.append(
        "authorization",
        HeaderValue::from_str(&authorization(&other, &other_preimage)).unwrap(),
    );
    let answer = Answer::read(
        gateway
            .http
            .get(gateway.url("/v1/demo"))
            .headers(conflicting)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{answer:?}");
    assert_eq!(answer.reason(), Some("malformed"));

    let answer = Answer::read(
        gateway
            .http
            .get(gateway.url("/v1/demo"))
            .headers(headers)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let answer = gateway
        .get("/v1/demo", Some(&authorization(&other, &other_preimage)))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    still_serving(&gateway).await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_and_spends_no_token() {
    let upstream =
        axum::Router::new().fallback(axum::routing::any(|body: axum::body::Bytes| async move {
            format!("{} bytes", body.len())
        }));
    let addr = serve_upstream(upstream).await;
    let mut config = config("memory");
    config.max_body_bytes = 1024;
    config.routes = vec![upstream_route("api", "/api/", 5, &format!("http://{addr}"))];
    let gateway = start(config).await;
    let (macaroon, preimage) = gateway.token("/api/upload").await;
    let credential = authorization(&macaroon, &preimage);

    // Announced by Content-Length.
    let response = gateway
        .http
        .post(gateway.url("/api/upload"))
        .header("authorization", &credential)
        .body(vec![b'x'; 4096])
        .send()
        .await
        .expect("the server answers rather than drops the connection");
    let answer = Answer::read(response).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE, "{answer:?}");
    assert!(answer.header("x-l402").is_none(), "{answer:?}");

    // Streamed without a length: found out only while it is forwarded.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..8).map(|_| Ok(vec![b'y'; 512])).collect();
    let response = gateway
        .http
        .post(gateway.url("/api/upload"))
        .header("authorization", &credential)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .expect("the server answers rather than drops the connection");
    let answer = Answer::read(response).await;
    assert_eq!(
        answer.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "a body over the limit is the client's fault, not the upstream's: {answer:?}"
    );
    assert_eq!(answer.header("x-l402"), Some("released"), "{answer:?}");

    // The token still buys a request of the right size.
    let response = gateway
        .http
        .post(gateway.url("/api/upload"))
        .header("authorization", &credential)
        .body(vec![b'z'; 1000])
        .send()
        .await
        .unwrap();
    let answer = Answer::read(response).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.text, "1000 bytes");
    Challenge::of(&gateway.get("/api/anything", None).await);
}

#[tokio::test]
async fn a_dot_segment_cannot_reach_a_paid_route_through_a_free_one() {
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = calls.clone();
    let upstream = serve_upstream(axum::Router::new().fallback(move || {
        seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async { "upstream answer" }
    }))
    .await;
    let upstream = format!("http://{upstream}");
    let mut free = upstream_route("docs", "/docs/", 1, &upstream);
    free.price_sats = None;
    let mut config = config("memory");
    config.routes = vec![free, upstream_route("api", "/api/", 100, &upstream)];
    let gateway = start(config).await;
    let addr = gateway.addr;
    // Sent raw: an HTTP client would resolve the dot segments itself before sending.
    for path in [
        "/docs/../api/secret",
        "/docs/%2e%2e/api/secret",
        "/docs/%2E%2E/api/secret",
        "/docs/..%2fapi/secret",
        "/docs/%2e%2e%2fapi%2fsecret",
    ] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        let status = tokio::task::spawn_blocking(move || raw_status(addr, request.as_bytes()))
            .await
            .unwrap();
        assert_eq!(status, 400, "{path}");
    }
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "nothing reached the upstream"
    );
    // The free route itself still works, and the paid one still asks for payment.
    assert_eq!(
        gateway.get("/docs/readme", None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        gateway.get("/api/secret", None).await.status,
        StatusCode::PAYMENT_REQUIRED
    );
}
