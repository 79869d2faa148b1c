//! An OpenAI-compatible upstream, on a loopback port, that answers as the real API does, field
//! for field: `POST /v1/chat/completions` (a `chat.completion`, or with `stream: true` a
//! `text/event-stream` of `chat.completion.chunk`s ending in `data: [DONE]`, with a last chunk of
//! usage and empty `choices` when `stream_options.include_usage` is true), `GET /v1/models`, and
//! OpenAI's error body (`{"error":{"message","type","param","code"}}`) for a bad body, an
//! unknown model or an unknown path.
//!
//! Its answer is deterministic: `echo:` and the words of the last user message, cut to the
//! request's `max_completion_tokens` / `max_tokens` (by whole words) when it sets one. The usage
//! is honest: the prompt counted as [`plannt_meter::Encoding::count_chat`] counts it (what a
//! metered route prices), the completion with the model's tokenizer, never above the cap.
//!
//! Tests start it with [`OpenAi::start`]; the interop suites run the `openai-upstream` binary of
//! this crate (`openai-upstream --listen 127.0.0.1:0` prints `listening on http://ADDR`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use plannt_meter::{ApiError, ChatRequest, Encoding, Usage};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The models it serves unless told otherwise.
pub const MODELS: [&str; 2] = ["gpt-4o-mini", "gpt-4o"];

/// The fixed `created` time of every answer, so answers are the same run to run.
const CREATED: u64 = 1_767_225_600;

/// What the upstream saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Chat completions answered (errors not counted).
    pub completions: AtomicU64,
    /// The `Authorization` header of the last request, if any.
    pub last_authorization: std::sync::Mutex<Option<String>>,
    /// The `x-l402-payment-hash` header the gateway added to the last request, if any.
    pub last_payment_hash: std::sync::Mutex<Option<String>>,
}

struct Upstream {
    models: Vec<String>,
    seen: Arc<Seen>,
}

/// A running upstream. It stops when dropped.
pub struct OpenAi {
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it saw.
    pub seen: Arc<Seen>,
    task: JoinHandle<()>,
}

impl Drop for OpenAi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl OpenAi {
    /// Starts one serving [`MODELS`] on a free loopback port.
    pub async fn start() -> OpenAi {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Self::serve(listener, MODELS.iter().map(|m| m.to_string()).collect())
    }

    /// Serves `models` on `listener`.
    pub fn serve(listener: TcpListener, models: Vec<String>) -> OpenAi {
        let addr = listener.local_addr().expect("local address");
        let seen = Arc::new(Seen::default());
        let app = router(models, seen.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        OpenAi { addr, seen, task }
    }

    /// Its base URL (`http://ADDR`), to which `/v1/chat/completions` is appended.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// The upstream's routes, for serving on a listener of the caller's.
pub fn router(models: Vec<String>, seen: Arc<Seen>) -> Router {
    let state = Arc::new(Upstream { models, seen });
    Router::new()
        .route("/v1/chat/completions", post(completions))
        .route("/v1/models", get(list_models))
        .fallback(not_found)
        .with_state(state)
}

fn error(e: ApiError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    (status, axum::Json(e.to_json())).into_response()
}

async fn not_found() -> Response {
    error(ApiError {
        status: 404,
        message: "Unknown request URL. Please check the URL for typos.".into(),
        kind: "invalid_request_error",
        param: None,
        code: Some("unknown_url"),
    })
}

async fn list_models(State(state): State<Arc<Upstream>>) -> Response {
    let data: Vec<Value> = state
        .models
        .iter()
        .map(|id| json!({ "id": id, "object": "model", "created": CREATED, "owned_by": "plannt-test" }))
        .collect();
    axum::Json(json!({ "object": "list", "data": data })).into_response()
}

/// The answer to `chat`: its text, the tokens it counts, and why it ended.
fn answer(chat: &ChatRequest, encoding: Encoding) -> (String, u64, &'static str) {
    let last = chat
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map_or("", |m| m.content.as_str());
    let full = format!("echo: {last}").trim_end().to_string();
    match chat.max_tokens {
        Some(cap) if encoding.count(&full) > cap => {
            let (cut, tokens) = encoding.truncate(&full, cap);
            (cut, tokens, "length")
        }
        _ => {
            let tokens = encoding.count(&full);
            (full, tokens, "stop")
        }
    }
}

/// An id that is the same for the same request, as the rest of the answer is.
fn completion_id(body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("chatcmpl-{}", &hex::encode(Sha256::digest(body))[..24])
}

async fn completions(
    State(state): State<Arc<Upstream>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let chat = match ChatRequest::parse(&body) {
        Ok(chat) => chat,
        Err(e) => return error(ApiError::from(&e)),
    };
    if !state.models.contains(&chat.model) {
        return error(ApiError {
            status: 404,
            message: format!(
                "The model `{}` does not exist or you do not have access to it.",
                chat.model
            ),
            kind: "invalid_request_error",
            param: Some("model".into()),
            code: Some("model_not_found"),
        });
    }
    let header_text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    *state.seen.last_authorization.lock().expect("lock") = header_text("authorization");
    *state.seen.last_payment_hash.lock().expect("lock") = header_text("x-l402-payment-hash");
    state.seen.completions.fetch_add(1, Ordering::SeqCst);

    let encoding = Encoding::for_model(&chat.model);
    let prompt_tokens = encoding.count_chat(&chat);
    let (text, tokens, finish) = answer(&chat, encoding);
    let usage = Usage::new(prompt_tokens, tokens * chat.n);
    let id = completion_id(&body);
    if !chat.stream {
        let choices: Vec<Value> = (0..chat.n)
            .map(|index| {
                json!({
                    "index": index,
                    "message": { "role": "assistant", "content": text, "refusal": null },
                    "logprobs": null,
                    "finish_reason": finish,
                })
            })
            .collect();
        return axum::Json(json!({
            "id": id,
            "object": "chat.completion",
            "created": CREATED,
            "model": chat.model,
            "choices": choices,
            "usage": usage,
            "system_fingerprint": "fp_plannt",
        }))
        .into_response();
    }
    let chunk = |choices: Value, usage: Option<Value>| {
        let mut chunk = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": chat.model,
            "system_fingerprint": "fp_plannt",
            "choices": choices,
        });
        if chat.include_usage {
            chunk["usage"] = usage.unwrap_or(Value::Null);
        }
        format!("data: {chunk}\n\n")
    };
    let per_choice = |delta: &dyn Fn() -> Value, finish: Option<&str>| -> Value {
        (0..chat.n)
            .map(|index| json!({ "index": index, "delta": delta(), "logprobs": null, "finish_reason": finish }))
            .collect()
    };
    let mut frames = vec![chunk(
        per_choice(
            &|| json!({ "role": "assistant", "content": "", "refusal": null }),
            None,
        ),
        None,
    )];
    for (i, word) in text.split(' ').enumerate() {
        let piece = if i == 0 {
            word.to_string()
        } else {
            format!(" {word}")
        };
        frames.push(chunk(
            per_choice(&|| json!({ "content": piece }), None),
            None,
        ));
    }
    frames.push(chunk(per_choice(&|| json!({}), Some(finish)), None));
    if chat.include_usage {
        frames.push(chunk(json!([]), Some(json!(usage))));
    }
    frames.push("data: [DONE]\n\n".to_string());
    let stream = futures_util::stream::iter(frames.into_iter().map(Ok::<_, Infallible>));
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .expect("a response")
}
