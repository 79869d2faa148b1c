//! The built-in handlers of the demo service: `demo`, `data`, `generate` and `status`.

use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use plannt_gateway::Unanswered;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::handler::Handler;
use crate::state::Shared;

/// Answers `request` with `handler`.
pub async fn handle(handler: Handler, shared: &Shared, request: Request<Body>) -> Response {
    match handler {
        // The answer is always the same bytes: no JSON built per request.
        Handler::Demo => (
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"result":"verified"}"#,
        )
            .into_response(),
        Handler::Data => axum::Json(json!({
            "result": "verified",
            "data": {
                "series": "lightning-network-capacity-btc",
                "unit": "BTC",
                "points": [[2024, 5210], [2025, 4980], [2026, 5170]],
            },
            "note": "a protected payload: you paid for exactly this one response",
        }))
        .into_response(),
        Handler::Generate => generate(shared, request).await,
        Handler::Status => status(shared).await,
    }
}

/// How long `/status` answers from its last check: a flood of status requests costs the
/// backend and the store one check per interval, not one each.
pub const STATUS_EVERY: Duration = Duration::from_secs(2);

/// `GET /status`: version, Lightning reachable, store healthy, uptime. 503 when a part is down,
/// so a load balancer can take the replica out. Checked at most once per [`STATUS_EVERY`].
/// The answer is kept as the JSON text it is sent as: between two checks an answer is that text
/// shared, not the document copied and written out again.
pub async fn status(shared: &Shared) -> Response {
    let mut cached = shared.status.lock().await;
    let (status, body) = match &*cached {
        Some((at, status, body)) if at.elapsed() < STATUS_EVERY => (*status, body.clone()),
        _ => {
            let (status, body) = check_status(shared).await;
            let body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
            *cached = Some((Instant::now(), status, body.clone()));
            (status, body)
        }
    };
    drop(cached);
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

async fn check_status(shared: &Shared) -> (StatusCode, Value) {
    let lightning = shared.paywall.receiver().health().await;
    let store = shared.paywall.store().health().await;
    let entries = shared.paywall.store().len().await.ok();
    let healthy = lightning.is_ok() && store.is_ok();
    let mut body = json!({
        "name": "plannt",
        "version": env!("CARGO_PKG_VERSION"),
        "status": if healthy { "ok" } else { "degraded" },
        "lightning": {
            "backend": shared.lightning_name,
            "reachable": lightning.is_ok(),
            "error": lightning.err().map(|e| e.to_string()),
        },
        "store": {
            "backend": shared.paywall.store().name(),
            "healthy": store.is_ok(),
            "entries": entries,
            "error": store.err().map(|e| e.to_string()),
        },
        "uptime_secs": shared.started.elapsed().as_secs(),
    });
    if shared.dev {
        body["warning"] = json!(plannt_lightning::dev::WARNING);
    }
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body)
}

#[derive(Deserialize)]
struct GenerateBody {
    prompt: Option<String>,
    messages: Option<Vec<Value>>,
    #[serde(default)]
    stream: bool,
    max_tokens: Option<u32>,
}

fn bad_request(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": "Bad Request", "message": message })),
    )
        .into_response()
}

/// A 502 marked with what happened, for the paywall to word with the token's fate.
fn bad_gateway(what: Unanswered) -> Response {
    let (Unanswered::NotServed(why) | Unanswered::NoAnswer(why)) = &what;
    let mut response = (
        StatusCode::BAD_GATEWAY,
        axum::Json(json!({ "error": "Bad Gateway", "message": why })),
    )
        .into_response();
    response.extensions_mut().insert(what);
    response
}

/// `POST /v1/generate`: `{"prompt": …}` or `{"messages": […]}`, optionally `"stream": true`.
async fn generate(shared: &Shared, request: Request<Body>) -> Response {
    let Some(openai) = &shared.openai else {
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"error": "Service Unavailable", "message": "no inference upstream is configured"}))).into_response();
    };
    let bytes = match axum::body::to_bytes(request.into_body(), shared.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => {
            // Nothing was served: the paywall releases the token for a retry with a smaller body.
            let why = format!(
                "the body is unreadable or over {} bytes",
                shared.max_body_bytes
            );
            let mut response = (
                StatusCode::PAYLOAD_TOO_LARGE,
                axum::Json(json!({ "error": "Payload Too Large", "message": why })),
            )
                .into_response();
            response.extensions_mut().insert(Unanswered::NotServed(why));
            return response;
        }
    };
    let body: GenerateBody = match serde_json::from_slice(&bytes) {
        Ok(b) => b,
        Err(e) => return bad_request(&format!("expected JSON {{\"prompt\": \"…\"}}: {e}")),
    };
    let messages = match (body.prompt, body.messages) {
        (Some(prompt), None) if !prompt.trim().is_empty() => {
            vec![json!({"role": "user", "content": prompt})]
        }
        (None, Some(messages)) if !messages.is_empty() => messages,
        _ => return bad_request("give a non-empty \"prompt\" or \"messages\", not both"),
    };
    let mut upstream =
        json!({ "model": openai.model, "messages": messages, "stream": body.stream });
    if let Some(max) = body.max_tokens {
        upstream["max_tokens"] = json!(max);
    }
    let url = format!("{}/chat/completions", openai.base_url.trim_end_matches('/'));
    let mut call = shared.http.post(url).json(&upstream);
    if let Some(key) = &openai.api_key {
        call = call.bearer_auth(key);
    }
    let started = Instant::now();
    let response = match call.send().await {
        Ok(r) => r,
        Err(e) if e.is_connect() => {
            return bad_gateway(Unanswered::NotServed(
                "the inference upstream cannot be reached".into(),
            ));
        }
        Err(e) if e.is_timeout() => {
            // The model may be generating for whoever asked: the route's failure policy decides.
            return bad_gateway(Unanswered::NoAnswer(
                "the inference upstream did not answer in time".into(),
            ));
        }
        Err(_) => {
            return bad_gateway(Unanswered::NoAnswer(
                "the inference upstream's connection broke before it answered".into(),
            ));
        }
    };
    let status = response.status();
    if !status.is_success() {
        // An OpenAI-compatible API answers an error instead of a completion: nothing was
        // generated, so the token goes back.
        tracing::warn!(%status, "inference upstream failed");
        return bad_gateway(Unanswered::NotServed(format!(
            "the inference upstream answered {status}"
        )));
    }
    if body.stream {
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .cloned()
            .unwrap_or(header::HeaderValue::from_static("text/event-stream"));
        let stream = response.bytes_stream().map_err(std::io::Error::other);
        let mut out = Response::new(Body::from_stream(stream));
        out.headers_mut().insert(header::CONTENT_TYPE, content_type);
        return out;
    }
    let value: Value = match response.json().await {
        Ok(v) => v,
        Err(_) => {
            return bad_gateway(Unanswered::NoAnswer(
                "the inference upstream answered something unreadable".into(),
            ));
        }
    };
    let text = value["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default();
    axum::Json(json!({
        "result": text,
        "model": value["model"],
        "usage": value["usage"],
        "latency_ms": started.elapsed().as_millis() as u64,
    }))
    .into_response()
}
