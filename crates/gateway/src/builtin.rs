//! The built-in handlers of the demo service: `demo`, `data`, `generate` and `status`.

use std::time::Instant;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::paywall::Unserved;
use crate::server::Shared;

/// The names a route's `handler` may take.
pub const HANDLERS: [&str; 4] = ["demo", "data", "generate", "status"];

/// The OpenAI-compatible upstream of `/v1/generate`.
#[derive(Clone)]
pub struct OpenAi {
    /// Base URL, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// API key, if the upstream needs one.
    pub api_key: Option<String>,
    /// The model to ask.
    pub model: String,
}

pub async fn handle(name: &str, shared: &Shared, request: Request<Body>) -> Response {
    match name {
        "demo" => axum::Json(json!({ "result": "verified" })).into_response(),
        "data" => axum::Json(json!({
            "result": "verified",
            "data": {
                "series": "lightning-network-capacity-btc",
                "unit": "BTC",
                "points": [[2024, 5210], [2025, 4980], [2026, 5170]],
            },
            "note": "a protected payload: you paid for exactly this one response",
        }))
        .into_response(),
        "generate" => generate(shared, request).await,
        "status" => status(shared).await,
        other => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({ "error": "Internal Server Error", "message": format!("no built-in handler {other:?}") })),
        )
            .into_response(),
    }
}

/// `GET /status`: version, Lightning reachable, store healthy, uptime. 503 when a part is down,
/// so a load balancer can take the replica out.
pub async fn status(shared: &Shared) -> Response {
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
    (status, axum::Json(body)).into_response()
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

fn bad_gateway(message: &str) -> Response {
    (
        StatusCode::BAD_GATEWAY,
        axum::Json(json!({ "error": "Bad Gateway", "message": message })),
    )
        .into_response()
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
            let mut response = (
                StatusCode::PAYLOAD_TOO_LARGE,
                axum::Json(json!({ "error": "Payload Too Large", "message": format!("the body is unreadable or over {} bytes; your token was not used", shared.max_body_bytes) })),
            )
                .into_response();
            response.extensions_mut().insert(Unserved);
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
        Err(e) if e.is_timeout() => {
            return bad_gateway(
                "the inference upstream did not answer in time; your token was not used",
            );
        }
        Err(_) => {
            return bad_gateway(
                "the inference upstream cannot be reached; your token was not used",
            );
        }
    };
    let status = response.status();
    if !status.is_success() {
        tracing::warn!(%status, "inference upstream failed");
        return bad_gateway(&format!(
            "the inference upstream answered {status}; your token was not used"
        ));
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
        Err(_) => return bad_gateway("the inference upstream answered something unreadable"),
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
