//! Kept answers: the same credential presented again for the same request gets the answer it
//! paid for again, byte for byte, with `x-l402: replayed` and no upstream call; anything else
//! with a spent credential is refused as spent. A retry while the first request is in flight
//! gets 409. A kept answer opens only for its credential and request: a changed store entry, an
//! expired one, another request are all refused as spent.

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method as AxumMethod, Request, Response, StatusCode as AxumStatus};
use axum::response::IntoResponse;
use axum::routing::any;
use plannt_gateway::l402::mpp::{PaymentChallenge, PaymentCredential};
use plannt_gateway::l402::x402::{PaymentPayload, PaymentRequired};
use plannt_gateway::l402::{KeyRing, RootKey};
use plannt_gateway::lightning::dev::DevNetwork;
use plannt_gateway::store::MemoryStore;
use plannt_gateway::{Clock, Paywall, PaywallOptions, Route, RouteTable, Target};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sha2::{Digest, Sha256};
use tower::{Layer, ServiceExt};

use crate::support::{
    Answer, RedisServer, TestGateway, authorization, keeping_config, now, serve_upstream, start,
    start_in, upstream_route,
};

/// An upstream under `/api/` that counts its calls. `/api/big` answers 100 kB, `/api/slow`
/// takes a second; anything else answers 201 with headers that must come back, and a body that
/// names the call, so that a second call could not pass for a replay.
async fn upstream() -> (String, Arc<AtomicU32>) {
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let router = Router::new().fallback(any(
        move |method: AxumMethod, uri: axum::http::Uri, body: Bytes| {
            let counted = counted.clone();
            async move {
                let call = counted.fetch_add(1, Ordering::SeqCst) + 1;
                match uri.path() {
                    "/api/big" => return vec![b'x'; 100_000].into_response(),
                    "/api/slow" => tokio::time::sleep(Duration::from_secs(1)).await,
                    _ => {}
                }
                let mut headers = HeaderMap::new();
                headers.insert("etag", "\"v1\"".parse().unwrap());
                headers.insert("x-upstream", "kept".parse().unwrap());
                headers.append("set-cookie", "a=1".parse().unwrap());
                headers.append("set-cookie", "b=2".parse().unwrap());
                let body = json!({
                    "call": call,
                    "method": method.as_str(),
                    "uri": uri.to_string(),
                    "body_sha256": hex::encode(Sha256::digest(&body)),
                });
                (AxumStatus::CREATED, headers, axum::Json(body)).into_response()
            }
        },
    ));
    (format!("http://{}", serve_upstream(router).await), calls)
}

fn api(config: &mut plannt_serve::Config, upstream: &str) {
    config.routes = vec![upstream_route("api", "/api/", 21, upstream)];
}

async fn gateway(store: &str, upstream: &str) -> TestGateway {
    let mut config = keeping_config(store);
    api(&mut config, upstream);
    start(config).await
}

async fn post(gateway: &TestGateway, path: &str, credential: &str, body: &str) -> Answer {
    let request = gateway
        .http
        .post(gateway.url(path))
        .header("authorization", credential)
        .header("content-type", "application/json")
        .body(body.to_string());
    Answer::read(request.send().await.unwrap()).await
}

/// A paid L402 credential for the `/api/` route.
async fn credential(gateway: &TestGateway) -> String {
    let (macaroon, preimage) = gateway.token("/api/items").await;
    authorization(&macaroon, &preimage)
}

fn assert_spent_refusal(answer: &Answer, what: &str) {
    assert_eq!(
        answer.status,
        StatusCode::PAYMENT_REQUIRED,
        "{what}: {answer:?}"
    );
    assert_eq!(answer.reason(), Some("spent"), "{what}: {answer:?}");
}

fn values(answer: &Answer, name: &str) -> Vec<String> {
    answer
        .headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

async fn replayed_byte_for_byte(store: &str) {
    let (url, calls) = upstream().await;
    let gateway = gateway(store, &url).await;
    let credential = credential(&gateway).await;
    let body = r#"{"question":42}"#;

    let first = post(&gateway, "/api/items?x=1", &credential, body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    assert_eq!(first.header("x-l402"), Some("spent"));
    let kept: u64 = first.header("x-l402-kept").unwrap().parse().unwrap();
    assert!(kept > 590 && kept <= 600, "kept for {kept} s");

    let again = post(&gateway, "/api/items?x=1", &credential, body).await;
    assert_eq!(again.status, StatusCode::CREATED, "{again:?}");
    assert_eq!(again.header("x-l402"), Some("replayed"));
    assert_eq!(again.text, first.text, "the same body bytes");
    for name in [
        "content-type",
        "etag",
        "x-upstream",
        "set-cookie",
        "content-length",
    ] {
        assert_eq!(values(&again, name), values(&first, name), "{name}");
    }
    assert_eq!(again.header("x-l402-kept"), None);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the upstream was called once"
    );
    assert!(
        gateway
            .paywall
            .metrics()
            .render()
            .contains("plannt_answers_replayed_total 1")
    );

    // Any other request with the spent credential is refused as spent, and not forwarded.
    let other_query = post(&gateway, "/api/items?x=2", &credential, body).await;
    assert_spent_refusal(&other_query, "another query");
    let other_path = post(&gateway, "/api/other?x=1", &credential, body).await;
    assert_spent_refusal(&other_path, "another path");
    let other_body = post(
        &gateway,
        "/api/items?x=1",
        &credential,
        r#"{"question":43}"#,
    )
    .await;
    assert_spent_refusal(&other_body, "another body");
    let other_method = gateway
        .send(Method::PUT, "/api/items?x=1", Some(&credential), None)
        .await;
    assert_spent_refusal(&other_method, "another method");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // The same request still gets its answer.
    let third = post(&gateway, "/api/items?x=1", &credential, body).await;
    assert_eq!(third.header("x-l402"), Some("replayed"));
    assert_eq!(third.text, first.text);
}

#[tokio::test]
async fn a_kept_answer_is_replayed_byte_for_byte_without_an_upstream_call_memory() {
    replayed_byte_for_byte("memory").await;
}

#[tokio::test]
async fn a_kept_answer_is_replayed_byte_for_byte_without_an_upstream_call_sqlite() {
    replayed_byte_for_byte("sqlite").await;
}

#[tokio::test]
async fn a_kept_answer_is_replayed_byte_for_byte_without_an_upstream_call_redis() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    replayed_byte_for_byte(&redis.url()).await;
}

#[tokio::test]
async fn a_too_large_answer_is_not_kept_and_says_so() {
    let (url, calls) = upstream().await;
    let gateway = gateway("memory", &url).await;
    let credential = credential(&gateway).await;
    let first = gateway.get("/api/big", Some(&credential)).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.text.len(), 100_000, "streamed on whole");
    assert_eq!(
        first.header("x-l402-kept"),
        Some("none; reason=\"too-large\"")
    );
    let again = gateway.get("/api/big", Some(&credential)).await;
    assert_spent_refusal(&again, "an answer that was not kept");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_same_credential_while_its_first_request_is_in_flight_gets_409() {
    let (url, calls) = upstream().await;
    let gateway = Arc::new(gateway("memory", &url).await);
    let credential = credential(&gateway).await;
    let first = {
        let (gateway, credential) = (gateway.clone(), credential.clone());
        tokio::spawn(async move { gateway.get("/api/slow", Some(&credential)).await })
    };
    // The upstream takes a second; ask again while it works.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pending = gateway.get("/api/slow", Some(&credential)).await;
    assert_eq!(pending.status, StatusCode::CONFLICT, "{pending:?}");
    assert_eq!(pending.header("x-l402"), Some("pending"));
    assert_eq!(pending.header("retry-after"), Some("1"));
    assert_eq!(pending.json["error"], "Conflict");
    assert_eq!(pending.reason(), Some("in_progress"));
    assert!(pending.json["message"].is_string());

    let first = first.await.unwrap();
    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    let after = gateway.get("/api/slow", Some(&credential)).await;
    assert_eq!(after.header("x-l402"), Some("replayed"));
    assert_eq!(after.text, first.text);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the 409 spent nothing, called nothing"
    );
}

/// A client that sends its paid request and hangs up at once, while the claim is being made,
/// strands nothing: the request goes on, its answer is kept, and the same credential gets it.
async fn hung_up_at_once(store: &str) {
    use tokio::io::AsyncWriteExt;
    let (url, calls) = upstream().await;
    let gateway = gateway(store, &url).await;
    for round in 1..=6 {
        let credential = credential(&gateway).await;
        let mut socket = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
        let request = format!(
            "GET /api/items?round={round} HTTP/1.1\r\nhost: {}\r\nauthorization: {credential}\r\n\r\n",
            gateway.addr
        );
        socket.write_all(request.as_bytes()).await.unwrap();
        drop(socket);
        // Never stuck on 409: the kept answer comes within a few tries.
        let mut answer = None;
        for _ in 0..50 {
            let again = gateway
                .get(&format!("/api/items?round={round}"), Some(&credential))
                .await;
            if again.status != StatusCode::CONFLICT {
                answer = Some(again);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let answer = answer.expect("the first request was settled");
        assert_eq!(
            answer.status,
            StatusCode::CREATED,
            "{store} {round}: {answer:?}"
        );
        assert_eq!(answer.header("x-l402"), Some("replayed"), "{store} {round}");
        assert_eq!(
            calls.load(Ordering::SeqCst),
            round,
            "{store}: one call per payment"
        );
    }
}

#[tokio::test]
async fn a_client_that_hangs_up_at_once_strands_no_claim_memory() {
    hung_up_at_once("memory").await;
}

#[tokio::test]
async fn a_client_that_hangs_up_at_once_strands_no_claim_sqlite() {
    hung_up_at_once("sqlite").await;
}

/// Flips one byte in the middle of a kept answer in the SQLite file.
fn tamper_sqlite(path: &Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let mut kept: Vec<u8> = conn
        .query_row("SELECT kept FROM spent WHERE kept IS NOT NULL", [], |row| {
            row.get(0)
        })
        .unwrap();
    let middle = kept.len() / 2;
    kept[middle] ^= 0x01;
    let changed = conn
        .execute(
            "UPDATE spent SET kept = ?1 WHERE kept IS NOT NULL",
            rusqlite::params![kept],
        )
        .unwrap();
    assert_eq!(changed, 1);
}

#[tokio::test]
async fn a_tampered_kept_answer_is_refused_as_spent_sqlite() {
    let (url, calls) = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = keeping_config("sqlite");
    api(&mut config, &url);
    let gateway = start_in(config, dir.path()).await;
    let credential = credential(&gateway).await;
    let first = gateway.get("/api/items", Some(&credential)).await;
    assert_eq!(first.header("x-l402"), Some("spent"));
    let again = gateway.get("/api/items", Some(&credential)).await;
    assert_eq!(again.header("x-l402"), Some("replayed"));

    // The file holds no answer in the clear.
    let file = std::fs::read(dir.path().join("spent.sqlite")).unwrap_or_default();
    let wal = std::fs::read(dir.path().join("spent.sqlite-wal")).unwrap_or_default();
    for bytes in [&file, &wal] {
        assert!(!bytes.windows(11).any(|w| w == b"body_sha256"));
    }

    tamper_sqlite(&dir.path().join("spent.sqlite"));
    let tampered = gateway.get("/api/items", Some(&credential)).await;
    assert_spent_refusal(&tampered, "a tampered kept answer");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_tampered_kept_answer_is_refused_as_spent_redis() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (url, calls) = upstream().await;
    let gateway = gateway(&redis.url(), &url).await;
    let (macaroon, preimage) = gateway.token("/api/items").await;
    let credential = authorization(&macaroon, &preimage);
    let first = gateway.get("/api/items", Some(&credential)).await;
    assert_eq!(first.header("x-l402"), Some("spent"));

    let hash = crate::support::payment_hash(&macaroon);
    let key = format!("plannt:spent:{}:kept", hex::encode(hash));
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let kept: Vec<u8> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!kept.windows(11).any(|w| w == b"body_sha256"), "sealed");
    let middle = kept.len() / 2;
    let _: i64 = redis::cmd("SETRANGE")
        .arg(&key)
        .arg(middle)
        .arg(&[kept[middle] ^ 0x01][..])
        .query_async(&mut conn)
        .await
        .unwrap();
    let tampered = gateway.get("/api/items", Some(&credential)).await;
    assert_spent_refusal(&tampered, "a tampered kept answer");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn replicas_sharing_redis_replay_each_others_answers() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (url, calls) = upstream().await;
    let a = gateway(&redis.url(), &url).await;
    let b = gateway(&redis.url(), &url).await;
    let credential = credential(&a).await;
    let first = b.get("/api/items", Some(&credential)).await;
    assert_eq!(first.header("x-l402"), Some("spent"), "{first:?}");
    let again = a.get("/api/items", Some(&credential)).await;
    assert_eq!(again.header("x-l402"), Some("replayed"), "{again:?}");
    assert_eq!(again.text, first.text);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn mpp_and_x402_credentials_replay_with_their_receipts() {
    let (url, calls) = upstream().await;
    let gateway = gateway("memory", &url).await;

    // MPP: the preimage seals the answer; the receipt comes back as it was.
    let offer = gateway.get("/api/items", None).await;
    let values: Vec<&str> = offer
        .headers
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    let challenge = PaymentChallenge::parse_all(values.iter().copied())
        .unwrap()
        .remove(0);
    let preimage = gateway.pay(offer.json["invoice"].as_str().unwrap());
    let mpp = PaymentCredential::charge(&challenge, &preimage).to_header_value();
    let first = gateway.get("/api/items", Some(&mpp)).await;
    assert_eq!(first.header("x-l402"), Some("spent"), "{first:?}");
    assert!(first.header("payment-receipt").is_some());
    let again = gateway.get("/api/items", Some(&mpp)).await;
    assert_eq!(again.header("x-l402"), Some("replayed"), "{again:?}");
    assert_eq!(again.text, first.text);
    assert_eq!(
        again.header("payment-receipt"),
        first.header("payment-receipt")
    );

    // x402: no preimage; the gateway's secret and the invoice seal it.
    let offer = gateway.get("/api/items", None).await;
    let required = PaymentRequired::decode(offer.header("payment-required").unwrap()).unwrap();
    let payload = PaymentPayload::exact(required.resource.clone(), &required.accepts[0]).encode();
    gateway.pay(offer.json["invoice"].as_str().unwrap());
    let x402 = |gateway: &TestGateway| {
        gateway
            .http
            .get(gateway.url("/api/items"))
            .header("payment-signature", &payload)
            .send()
    };
    let first = Answer::read(x402(&gateway).await.unwrap()).await;
    assert_eq!(first.header("x-l402"), Some("spent"), "{first:?}");
    assert!(first.header("payment-response").is_some());
    let again = Answer::read(x402(&gateway).await.unwrap()).await;
    assert_eq!(again.header("x-l402"), Some("replayed"), "{again:?}");
    assert_eq!(again.text, first.text);
    assert_eq!(
        again.header("payment-response"),
        first.header("payment-response")
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2, "one call per payment");
}

/// A paywall in this process over `store`, with one paid route, `GET /v1/demo` for 21 sats,
/// whose invoices the dev network's `gateway` account issues.
fn demo_paywall(
    network: &DevNetwork,
    keys: KeyRing,
    store: Arc<MemoryStore>,
    options: PaywallOptions,
) -> Arc<Paywall> {
    let route = Route::paid(
        "demo",
        axum::http::Method::GET,
        "/v1/demo",
        21,
        Target::Service,
    );
    Arc::new(Paywall::new(
        keys,
        Arc::new(network.wallet("gateway")),
        store,
        RouteTable::new(vec![route]).unwrap(),
        options,
    ))
}

/// `GET path` through `paywall`, with the header `name: value` if given, to an upstream that
/// answers `call <n>` and counts its calls in `calls`: the answer's status, headers and body.
async fn demo_get(
    paywall: &Arc<Paywall>,
    calls: &Arc<AtomicU32>,
    path: &str,
    header: Option<(&str, &str)>,
) -> (AxumStatus, HeaderMap, Bytes) {
    let counted = calls.clone();
    let inner = tower::service_fn(move |_: Request<Body>| {
        let call = counted.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<_, Infallible>(Response::new(Body::from(format!("call {call}")))) }
    });
    let mut request = Request::get(path);
    if let Some((name, value)) = header {
        request = request.header(name, value);
    }
    let answer = paywall
        .layer()
        .layer(inner)
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (status, headers) = (answer.status(), answer.headers().clone());
    let body = axum::body::to_bytes(answer.into_body(), 1 << 16)
        .await
        .unwrap();
    (status, headers, body)
}

/// Options for an in-process paywall: no challenge rate limit, time read from `clock`.
fn clocked(clock: &Arc<AtomicU64>) -> PaywallOptions {
    let read = clock.clone();
    PaywallOptions {
        challenges_per_second: 0.0,
        clock: Clock::from_fn(move || read.load(Ordering::SeqCst)),
        ..PaywallOptions::default()
    }
}

#[tokio::test]
async fn an_expired_keep_is_refused_as_spent() {
    let network = DevNetwork::ephemeral(1_000_000);
    let clock = Arc::new(AtomicU64::new(now()));
    let paywall = demo_paywall(
        &network,
        KeyRing::single(RootKey::new([9; 32])),
        Arc::new(MemoryStore::new()),
        clocked(&clock),
    );
    let calls = Arc::new(AtomicU32::new(0));
    let (_, _, body) = demo_get(&paywall, &calls, "/v1/demo", None).await;
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let preimage = network
        .pay("tester", body["invoice"].as_str().unwrap())
        .unwrap()
        .preimage;
    let credential = authorization(body["macaroon"].as_str().unwrap(), &preimage);
    let bought = Some(("authorization", credential.as_str()));

    let (_, first, _) = demo_get(&paywall, &calls, "/v1/demo", bought).await;
    assert_eq!(first["x-l402"], "spent");
    assert_eq!(first["x-l402-kept"], "600");
    clock.fetch_add(600, Ordering::SeqCst);
    let (_, within, _) = demo_get(&paywall, &calls, "/v1/demo", bought).await;
    assert_eq!(within["x-l402"], "replayed", "kept for 600 s");
    clock.fetch_add(1, Ordering::SeqCst);
    let (status, after, _) = demo_get(&paywall, &calls, "/v1/demo", bought).await;
    assert_eq!(status, AxumStatus::PAYMENT_REQUIRED);
    assert_eq!(after["x-l402-reason"], "spent");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// An MPP credential and an x402 payload expire with their invoice, which may be before their
/// answer's keep ends. Past that expiry they still fetch the answer they bought, for the same
/// request, until the keep ends; they buy nothing else: another request, a credential never
/// used, or the same after the keep are refused as expired, and the upstream is called once a
/// payment.
#[tokio::test]
async fn mpp_and_x402_credentials_past_their_expiry_still_fetch_their_kept_answer() {
    let network = DevNetwork::ephemeral(1_000_000);
    let clock = Arc::new(AtomicU64::new(now()));
    let paywall = demo_paywall(
        &network,
        KeyRing::single(RootKey::new([9; 32])),
        Arc::new(MemoryStore::new()),
        PaywallOptions {
            invoice_expiry_secs: 60,
            ..clocked(&clock)
        },
    );
    let calls = Arc::new(AtomicU32::new(0));
    // A challenge, paid: the MPP credential and the x402 payload of its invoice.
    let paid = || async {
        let (_, headers, body) = demo_get(&paywall, &calls, "/v1/demo", None).await;
        let values: Vec<&str> = headers
            .get_all("www-authenticate")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        let challenge = PaymentChallenge::parse_all(values.iter().copied())
            .unwrap()
            .remove(0);
        let required =
            PaymentRequired::decode(headers["payment-required"].to_str().unwrap()).unwrap();
        let payload =
            PaymentPayload::exact(required.resource.clone(), &required.accepts[0]).encode();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let preimage = network
            .pay("tester", body["invoice"].as_str().unwrap())
            .unwrap()
            .preimage;
        let mpp = PaymentCredential::charge(&challenge, &preimage).to_header_value();
        (mpp, payload)
    };

    for dialect in ["mpp", "x402"] {
        // The dev network dates its invoices by the wall clock.
        let start = now();
        clock.store(start, Ordering::SeqCst);
        let calls_before = calls.load(Ordering::SeqCst);
        let (mpp, payload) = paid().await;
        let (unused_mpp, unused_payload) = paid().await;
        let credential = match dialect {
            "mpp" => ("authorization", mpp.as_str()),
            _ => ("payment-signature", payload.as_str()),
        };
        let (_, first_headers, first) =
            demo_get(&paywall, &calls, "/v1/demo", Some(credential)).await;
        assert_eq!(
            first_headers.get("x-l402").map(|v| v.to_str().unwrap()),
            Some("spent"),
            "{dialect}: {first_headers:?} {first:?}"
        );
        assert_eq!(first_headers["x-l402-kept"], "600", "{dialect}");

        // Past the invoice's expiry (60 s), within the keep (600 s).
        clock.store(start + 61, Ordering::SeqCst);
        let (status, headers, again) =
            demo_get(&paywall, &calls, "/v1/demo", Some(credential)).await;
        assert_eq!(status, AxumStatus::OK, "{dialect}: {headers:?}");
        assert_eq!(headers["x-l402"], "replayed", "{dialect}");
        assert_eq!(again, first, "{dialect}");
        let (status, headers, _) =
            demo_get(&paywall, &calls, "/v1/demo?page=2", Some(credential)).await;
        assert_eq!(
            status,
            AxumStatus::PAYMENT_REQUIRED,
            "{dialect}: another request"
        );
        assert_eq!(headers["x-l402-reason"], "expired", "{dialect}");
        // A credential paid but never used: nothing to fetch, nothing bought.
        let unused = match dialect {
            "mpp" => ("authorization", unused_mpp.as_str()),
            _ => ("payment-signature", unused_payload.as_str()),
        };
        let (status, headers, _) = demo_get(&paywall, &calls, "/v1/demo", Some(unused)).await;
        assert_eq!(
            status,
            AxumStatus::PAYMENT_REQUIRED,
            "{dialect}: never used"
        );
        assert_eq!(headers["x-l402-reason"], "expired", "{dialect}");

        // Past the keep.
        clock.store(start + 60 + 600, Ordering::SeqCst);
        let (status, headers, _) = demo_get(&paywall, &calls, "/v1/demo", Some(credential)).await;
        assert_eq!(
            status,
            AxumStatus::PAYMENT_REQUIRED,
            "{dialect}: after the keep"
        );
        assert_eq!(headers["x-l402-reason"], "expired", "{dialect}");

        assert_eq!(
            calls.load(Ordering::SeqCst),
            calls_before + 1,
            "{dialect}: one upstream call for the one request bought"
        );
    }
}

/// An x402 payload carries no secret of its own: its answer is sealed under a secret of the key
/// that mints. After a rotation (a new key mints, the old one still verifies) the answer kept
/// before it still opens for the same payload and request, and for nothing else.
#[tokio::test]
async fn an_x402_answer_kept_before_a_root_key_rotation_is_replayed_after_it() {
    let network = DevNetwork::ephemeral(1_000_000);
    let store = Arc::new(MemoryStore::new());
    let old = RootKey::new([9; 32]);
    let mut rotated = KeyRing::single(old.clone());
    rotated.add("new", RootKey::new([10; 32])).unwrap();
    let options = || PaywallOptions {
        challenges_per_second: 0.0,
        ..PaywallOptions::default()
    };
    let before = demo_paywall(&network, KeyRing::single(old), store.clone(), options());
    let after = demo_paywall(&network, rotated, store, options());
    let calls = Arc::new(AtomicU32::new(0));

    let (_, offer, body) = demo_get(&before, &calls, "/v1/demo", None).await;
    let required = PaymentRequired::decode(offer["payment-required"].to_str().unwrap()).unwrap();
    let payload = PaymentPayload::exact(required.resource.clone(), &required.accepts[0]).encode();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    network
        .pay("tester", body["invoice"].as_str().unwrap())
        .unwrap();

    let paid = Some(("payment-signature", payload.as_str()));
    let (_, first_headers, first) = demo_get(&before, &calls, "/v1/demo", paid).await;
    assert_eq!(first_headers["x-l402"], "spent", "{first_headers:?}");
    assert_eq!(first_headers["x-l402-kept"], "600");
    let (_, again_headers, again) = demo_get(&after, &calls, "/v1/demo", paid).await;
    assert_eq!(again_headers["x-l402"], "replayed", "{again_headers:?}");
    assert_eq!(again, first);
    assert_eq!(
        again_headers["payment-response"],
        first_headers["payment-response"]
    );

    // Another request with the same payload is still refused as spent.
    let (status, other, _) = demo_get(&after, &calls, "/v1/demo?page=2", paid).await;
    assert_eq!(status, AxumStatus::PAYMENT_REQUIRED);
    assert_eq!(other["x-l402-reason"], "spent");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one upstream call");
}

#[tokio::test]
async fn a_hundred_concurrent_uses_of_one_credential_call_the_upstream_once() {
    let (url, calls) = upstream().await;
    let gateway = Arc::new(gateway("sqlite", &url).await);
    let credential = credential(&gateway).await;
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (gateway, credential) = (gateway.clone(), credential.clone());
            tokio::spawn(async move { gateway.get("/api/items", Some(&credential)).await })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    let spent: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.header("x-l402") == Some("spent"))
        .collect();
    assert_eq!(spent.len(), 1, "one answer bought");
    for answer in &answers {
        match answer.header("x-l402") {
            Some("spent") => {}
            Some("replayed") => assert_eq!(answer.text, spent[0].text),
            Some("pending") => assert_eq!(answer.status, StatusCode::CONFLICT),
            other => panic!("unexpected {other:?}: {answer:?}"),
        }
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
