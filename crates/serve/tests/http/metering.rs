//! Routes priced by the request: the OpenAI-compatible upstream the tests price against
//! (plannt_testkit::openai), answering as OpenAI's API does.

use plannt_meter::{Encoding, Usage};
use plannt_testkit::openai::OpenAi;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::client;

async fn post(url: &str, body: &Value) -> (StatusCode, String, String) {
    let response = client().post(url).json(body).send().await.unwrap();
    let status = response.status();
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, kind, response.text().await.unwrap())
}

#[tokio::test]
async fn the_test_upstream_answers_chat_completions_as_openai_does() {
    let upstream = OpenAi::start().await;
    let url = format!("{}/v1/chat/completions", upstream.base_url());
    let body = json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "the quick brown fox jumps over the lazy dog"}
        ],
        "max_tokens": 5,
    });
    let (status, kind, text) = post(&url, &body).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(kind.starts_with("application/json"));
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert!(answer["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(answer["object"], "chat.completion");
    assert!(answer["created"].is_u64());
    assert_eq!(answer["model"], "gpt-4o-mini");
    let choice = &answer["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["finish_reason"], "length", "cut at max_tokens");
    let content = choice["message"]["content"].as_str().unwrap();
    assert!(content.starts_with("echo: the quick"), "{content}");
    // Honest usage: the completion counted with the model's tokenizer, within the cap; the
    // prompt as OpenAI counts a chat.
    let e = Encoding::O200kBase;
    let usage = Usage::from_answer(text.as_bytes()).unwrap();
    assert_eq!(usage.completion_tokens, e.count(content));
    assert!(usage.completion_tokens <= 5);
    let prompt = 3
        + (3 + e.count("system") + e.count("Be brief."))
        + (3 + e.count("user") + e.count("the quick brown fox jumps over the lazy dog"));
    assert_eq!(usage.prompt_tokens, prompt);
    assert_eq!(
        usage.total_tokens,
        usage.prompt_tokens + usage.completion_tokens
    );

    // Without a cap the whole echo, finished with "stop"; the same request, the same answer.
    let uncapped =
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi there"}]});
    let (_, _, first) = post(&url, &uncapped).await;
    let (_, _, again) = post(&url, &uncapped).await;
    assert_eq!(first, again, "deterministic");
    let first: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["choices"][0]["message"]["content"], "echo: hi there");
    assert_eq!(first["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        upstream
            .seen
            .completions
            .load(std::sync::atomic::Ordering::SeqCst),
        3
    );
}

#[tokio::test]
async fn the_test_upstream_streams_chunks_and_a_last_usage_chunk() {
    let upstream = OpenAi::start().await;
    let url = format!("{}/v1/chat/completions", upstream.base_url());
    let body = json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "one two three"}],
        "max_completion_tokens": 50,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    let (status, kind, text) = post(&url, &body).await;
    assert_eq!(status, StatusCode::OK);
    assert!(kind.starts_with("text/event-stream"), "{kind}");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let chunks: Vec<Value> = text
        .split("\n\n")
        .filter_map(|frame| frame.strip_prefix("data: "))
        .filter(|data| *data != "[DONE]")
        .map(|data| serde_json::from_str(data).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(streamed, "echo: one two three");
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]), "the usage chunk has no choices");
    let finished = &chunks[chunks.len() - 2];
    assert_eq!(finished["choices"][0]["finish_reason"], "stop");
    assert!(
        finished["usage"].is_null(),
        "every other chunk says usage: null"
    );
    let usage = Usage::from_stream(text.as_bytes()).unwrap();
    assert_eq!(
        usage.completion_tokens,
        Encoding::O200kBase.count(&streamed)
    );

    // Without include_usage: no usage chunk, no usage field.
    let plain = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "stream": true});
    let (_, _, text) = post(&url, &plain).await;
    assert_eq!(Usage::from_stream(text.as_bytes()), None);
    assert!(!text.contains("\"usage\""));
}

#[tokio::test]
async fn the_test_upstream_lists_models_and_refuses_as_openai_does() {
    let upstream = OpenAi::start().await;
    let models: Value = client()
        .get(format!("{}/v1/models", upstream.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["object"], "list");
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["gpt-4o-mini", "gpt-4o"]);
    assert_eq!(models["data"][0]["object"], "model");

    let url = format!("{}/v1/chat/completions", upstream.base_url());
    for (body, status, param, code) in [
        (
            json!({"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]}),
            404,
            json!("model"),
            "model_not_found",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}]}),
            400,
            json!("model"),
            "missing_required_parameter",
        ),
        (
            json!({"model": "gpt-4o", "messages": "x"}),
            400,
            json!("messages"),
            "invalid_value",
        ),
    ] {
        let (got, _, text) = post(&url, &body).await;
        assert_eq!(got.as_u16(), status, "{text}");
        let error: Value = serde_json::from_str(&text).unwrap();
        let error = &error["error"];
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(error["type"], "invalid_request_error");
        assert_eq!(
            (&error["param"], error["code"].as_str().unwrap()),
            (&param, code)
        );
    }
    let not_json = client().post(&url).body("{").send().await.unwrap();
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);
    let elsewhere = client()
        .get(format!("{}/v1/nothing", upstream.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        upstream
            .seen
            .completions
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}
