//! `POST /v1/generate` in front of a fake OpenAI-compatible API: JSON and streamed answers, and
//! an inference upstream that fails gives the token back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, StatusCode as AxumStatus, header};
use axum::response::IntoResponse;
use axum::routing::post;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Answer, TestGateway, authorization, config, serve_upstream, start};

/// A request the fake API received: its `Authorization` and its JSON body.
type Seen = (Option<String>, Value);

/// What the fake API saw, and a switch that makes it fail.
#[derive(Clone, Default)]
struct Fake {
    requests: Arc<Mutex<Vec<Seen>>>,
    failing: Arc<AtomicBool>,
}

const SSE: &str = "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n\
                   data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\n\
                   data: [DONE]\n\n";

async fn fake_openai(fake: Fake) -> String {
    let router = Router::new().route(
        "/v1/chat/completions",
        post(move |headers: HeaderMap, axum::Json(body): axum::Json<Value>| {
            let fake = fake.clone();
            async move {
                let auth = headers
                    .get(header::AUTHORIZATION)
                    .map(|v| v.to_str().unwrap().to_string());
                fake.requests.lock().unwrap().push((auth, body.clone()));
                if fake.failing.load(Ordering::SeqCst) {
                    return (AxumStatus::INTERNAL_SERVER_ERROR, "model overloaded").into_response();
                }
                if body["stream"] == true {
                    return ([(header::CONTENT_TYPE, "text/event-stream")], SSE).into_response();
                }
                axum::Json(json!({
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "model": "fake-model-2026",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from the fake"}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
                }))
                .into_response()
            }
        }),
    );
    format!("http://{}/v1", serve_upstream(router).await)
}

async fn gateway_with(fake: &Fake) -> TestGateway {
    let mut config = config("memory");
    config.openai_base_url = Some(fake_openai(fake.clone()).await);
    config.openai_api_key = Some("sk-test-key".into());
    config.openai_model = "fake-model".into();
    start(config).await
}

async fn generate(gateway: &TestGateway, credential: &str, body: Value) -> Answer {
    gateway
        .send(Method::POST, "/v1/generate", Some(credential), Some(body))
        .await
}

#[tokio::test]
async fn a_paid_prompt_gets_the_model_answer() {
    let fake = Fake::default();
    let gateway = gateway_with(&fake).await;
    let catalog = gateway.get("/.well-known/l402.json", None).await;
    let offered = catalog.json["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "generate")
        .cloned()
        .expect("offered once an upstream is configured");
    assert_eq!(offered["pricing"]["amount_sats"], 250);

    let body = json!({"prompt": "Say hello"});
    let (macaroon, preimage) = gateway
        .token_for(Method::POST, "/v1/generate", Some(body.clone()))
        .await;
    assert!(
        fake.requests.lock().unwrap().is_empty(),
        "nothing is asked of the model before payment"
    );
    let answer = generate(&gateway, &authorization(&macaroon, &preimage), body).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.header("x-l402"), Some("spent"));
    assert_eq!(answer.json["result"], "Hello from the fake");
    assert_eq!(answer.json["model"], "fake-model-2026");
    assert_eq!(answer.json["usage"]["total_tokens"], 7);

    let requests = fake.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    let (auth, sent) = &requests[0];
    assert_eq!(auth.as_deref(), Some("Bearer sk-test-key"));
    assert_eq!(sent["model"], "fake-model");
    assert_eq!(sent["stream"], false);
    assert_eq!(
        sent["messages"],
        json!([{"role": "user", "content": "Say hello"}])
    );
}

#[tokio::test]
async fn a_streamed_answer_is_passed_through_as_server_sent_events() {
    let fake = Fake::default();
    let gateway = gateway_with(&fake).await;
    let body = json!({"messages": [{"role": "user", "content": "Stream it"}], "stream": true});
    let (macaroon, preimage) = gateway
        .token_for(Method::POST, "/v1/generate", Some(body.clone()))
        .await;
    let answer = generate(&gateway, &authorization(&macaroon, &preimage), body).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.header("x-l402"), Some("spent"));
    assert!(
        answer
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/event-stream")),
        "{answer:?}"
    );
    assert_eq!(answer.text, SSE);
    let requests = fake.requests.lock().unwrap().clone();
    assert_eq!(requests[0].1["stream"], true);
    assert_eq!(requests[0].1["messages"][0]["content"], "Stream it");
}

#[tokio::test]
async fn a_failing_model_gives_502_and_the_token_back() {
    let fake = Fake::default();
    fake.failing.store(true, Ordering::SeqCst);
    let gateway = gateway_with(&fake).await;
    let body = json!({"prompt": "Fail, then work"});
    let (macaroon, preimage) = gateway
        .token_for(Method::POST, "/v1/generate", Some(body.clone()))
        .await;
    let credential = authorization(&macaroon, &preimage);

    let failed = generate(&gateway, &credential, body.clone()).await;
    assert_eq!(failed.status, StatusCode::BAD_GATEWAY, "{failed:?}");
    assert_eq!(failed.header("x-l402"), Some("released"));
    assert!(failed.json["message"].as_str().unwrap().contains("500"));

    fake.failing.store(false, Ordering::SeqCst);
    let answer = generate(&gateway, &credential, body.clone()).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.header("x-l402"), Some("spent"));
    let replay = generate(&gateway, &credential, body).await;
    assert_eq!(replay.reason(), Some("spent"), "{replay:?}");
    assert_eq!(fake.requests.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_prompt_over_the_body_limit_gives_413_and_the_token_back() {
    let fake = Fake::default();
    let mut config = config("memory");
    config.openai_base_url = Some(fake_openai(fake.clone()).await);
    config.max_body_bytes = 2048;
    let gateway = start(config).await;
    let small = json!({"prompt": "Say hello"});
    let (macaroon, preimage) = gateway
        .token_for(Method::POST, "/v1/generate", Some(small.clone()))
        .await;
    let credential = authorization(&macaroon, &preimage);

    // Streamed without a length, so only the handler finds it too large.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..8).map(|_| Ok(vec![b' '; 512])).collect();
    let response = gateway
        .http
        .post(gateway.url("/v1/generate"))
        .header("authorization", &credential)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .expect("the server answers rather than drops the connection");
    let answer = Answer::read(response).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE, "{answer:?}");
    assert_eq!(answer.header("x-l402"), Some("released"), "{answer:?}");
    assert!(fake.requests.lock().unwrap().is_empty());

    // The same token buys a prompt of the right size.
    let answer = generate(&gateway, &credential, small).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.header("x-l402"), Some("spent"));
}
