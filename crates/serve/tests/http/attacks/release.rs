//! A token is given back only when the upstream never acted on its request: a request it
//! received is spent by a client that hangs up, and by a timeout or a 5xx unless its method can
//! run again harmlessly (or the route says so). A released answer never carries the upstream's
//! body.
//!
//! The attacks: one 50-sat token made a side-effecting POST run six times (five hang-ups, then
//! a normal request); one token bought five calls to the inference upstream; an upstream's 500
//! with data in it was served three times for one token.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{Method as AxumMethod, StatusCode as AxumStatus};
use axum::response::IntoResponse;
use axum::routing::{any, post};
use plannt_gateway::OnUpstreamFailure;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{
    Answer, TestGateway, authorization, config, dead_port, serve_upstream, start, upstream_route,
};

/// An upstream whose every request counts, then takes `delay` and answers `status` with `body`.
async fn upstream(
    delay: Duration,
    status: AxumStatus,
    body: &'static str,
) -> (String, Arc<AtomicU32>) {
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let router = Router::new().fallback(any(move || {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            (status, body).into_response()
        }
    }));
    (format!("http://{}", serve_upstream(router).await), calls)
}

/// A gateway whose route `/jobs/` (50 sats) forwards to `upstream`; upstreams get 1 s.
async fn gateway(
    store: &str,
    upstream: &str,
    on_failure: Option<OnUpstreamFailure>,
) -> TestGateway {
    let mut config = config(store);
    config.upstream_timeout_secs = 1;
    let mut route = upstream_route("jobs", "/jobs/", 50, upstream);
    route.on_upstream_failure = on_failure;
    config.routes = vec![route];
    start(config).await
}

async fn send(gateway: &TestGateway, method: Method, credential: &str) -> Answer {
    gateway
        .send(
            method,
            "/jobs/run",
            Some(credential),
            Some(json!({"job": 1})),
        )
        .await
}

async fn paid(gateway: &TestGateway, method: Method) -> String {
    let (macaroon, preimage) = gateway
        .token_for(method, "/jobs/run", Some(json!({"job": 1})))
        .await;
    authorization(&macaroon, &preimage)
}

/// Five hang-ups while the upstream works, then a patient request: the POST ran once.
async fn hang_ups_spend_a_delivered_post(store: &str) {
    let (url, calls) = upstream(Duration::from_millis(700), AxumStatus::OK, "done").await;
    let gateway = gateway(store, &url, None).await;
    let credential = paid(&gateway, Method::POST).await;
    let impatient = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    for _ in 0..5 {
        let cut = impatient
            .post(gateway.url("/jobs/run"))
            .header("authorization", &credential)
            .json(&json!({"job": 1}))
            .send()
            .await;
        if let Ok(answer) = cut {
            // Refused at once as held or spent: also fine, never served.
            assert_eq!(answer.status(), StatusCode::PAYMENT_REQUIRED, "{store}");
        }
    }
    // Let the first request finish upstream.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let patient = send(&gateway, Method::POST, &credential).await;
    assert_eq!(
        patient.status,
        StatusCode::PAYMENT_REQUIRED,
        "{store}: {patient:?}"
    );
    assert_eq!(patient.reason(), Some("spent"), "{store}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "{store}: the POST ran once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_once_its_post_is_delivered_has_spent_its_token_memory() {
    hang_ups_spend_a_delivered_post("memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_once_its_post_is_delivered_has_spent_its_token_sqlite() {
    hang_ups_spend_a_delivered_post("sqlite").await;
}

#[tokio::test]
async fn a_slow_upstream_spends_a_post_and_gives_a_get_back() {
    let (url, calls) = upstream(Duration::from_secs(3), AxumStatus::OK, "late").await;
    let gateway = gateway("memory", &url, None).await;

    let post = paid(&gateway, Method::POST).await;
    let late = send(&gateway, Method::POST, &post).await;
    assert_eq!(late.status, StatusCode::GATEWAY_TIMEOUT, "{late:?}");
    assert_eq!(late.header("x-l402"), Some("spent"));
    assert!(
        late.json["message"]
            .as_str()
            .unwrap()
            .contains("your token is spent"),
        "{late:?}"
    );
    let again = send(&gateway, Method::POST, &post).await;
    assert_eq!(again.reason(), Some("spent"), "{again:?}");

    let get = paid(&gateway, Method::GET).await;
    let late = send(&gateway, Method::GET, &get).await;
    assert_eq!(late.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(late.header("x-l402"), Some("released"), "{late:?}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "one POST, one GET reached it"
    );
}

#[tokio::test]
async fn a_5xx_spends_a_post_unless_its_route_gives_tokens_back() {
    let (url, calls) = upstream(
        Duration::ZERO,
        AxumStatus::INTERNAL_SERVER_ERROR,
        "half done",
    )
    .await;
    let spending = gateway("memory", &url, None).await;
    let credential = paid(&spending, Method::POST).await;
    let failed = send(&spending, Method::POST, &credential).await;
    assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(failed.header("x-l402"), Some("spent"));
    assert_eq!(
        failed.text, "half done",
        "a spent answer is what the token bought"
    );
    assert_eq!(
        send(&spending, Method::POST, &credential).await.reason(),
        Some("spent")
    );

    // An upstream that recognises retries by their Idempotency-Key can take them.
    let releasing = gateway("memory", &url, Some(OnUpstreamFailure::Release)).await;
    let credential = paid(&releasing, Method::POST).await;
    for _ in 0..2 {
        let failed = send(&releasing, Method::POST, &credential).await;
        assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(failed.header("x-l402"), Some("released"), "{failed:?}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_released_answer_never_carries_the_upstreams_body() {
    let (url, calls) = upstream(
        Duration::ZERO,
        AxumStatus::INTERNAL_SERVER_ERROR,
        "{\"secret\":\"the paid data\"}",
    )
    .await;
    let gateway = gateway("memory", &url, None).await;
    let credential = paid(&gateway, Method::GET).await;
    for _ in 0..3 {
        let failed = send(&gateway, Method::GET, &credential).await;
        assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(failed.header("x-l402"), Some("released"));
        assert!(!failed.text.contains("paid data"), "{failed:?}");
        assert_eq!(failed.json["error"], "Internal Server Error", "{failed:?}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_post_the_upstream_never_received_gives_the_token_back() {
    let port = dead_port();
    let gateway = gateway("memory", &format!("http://127.0.0.1:{port}"), None).await;
    let credential = paid(&gateway, Method::POST).await;
    let down = send(&gateway, Method::POST, &credential).await;
    assert_eq!(down.status, StatusCode::BAD_GATEWAY, "{down:?}");
    assert_eq!(down.header("x-l402"), Some("released"));
    assert!(
        down.json["message"]
            .as_str()
            .unwrap()
            .contains("your token was not used"),
        "{down:?}"
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let router = Router::new().fallback(any(|| async { "done" }));
    tokio::spawn(async move { axum::serve(listener, router).await });
    let up = send(&gateway, Method::POST, &credential).await;
    assert_eq!(up.status, StatusCode::OK, "{up:?}");
    assert_eq!(up.header("x-l402"), Some("spent"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_ups_do_not_buy_the_inference_route_five_times() {
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let model = Router::new().route(
        "/v1/chat/completions",
        post(move |_: AxumMethod| {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(700)).await;
                axum::Json(json!({
                    "model": "slow",
                    "choices": [{"message": {"content": "an expensive answer"}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1},
                }))
            }
        }),
    );
    let mut config = config("memory");
    config.openai_base_url = Some(format!("http://{}/v1", serve_upstream(model).await));
    let gateway = start(config).await;
    let body = json!({"prompt": "think hard"});
    let (macaroon, preimage) = gateway
        .token_for(Method::POST, "/v1/generate", Some(body.clone()))
        .await;
    let credential = authorization(&macaroon, &preimage);
    let impatient = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    for _ in 0..5 {
        let _ = impatient
            .post(gateway.url("/v1/generate"))
            .header("authorization", &credential)
            .json(&body)
            .send()
            .await;
    }
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let patient = gateway
        .send(Method::POST, "/v1/generate", Some(&credential), Some(body))
        .await;
    assert_eq!(patient.reason(), Some("spent"), "{patient:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the model was asked once");
}
