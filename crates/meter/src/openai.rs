//! The parts of OpenAI's Chat Completions API a price is made from: the request
//! (`POST /v1/chat/completions`: model, messages, `max_tokens` / `max_completion_tokens`, `n`,
//! `stream`), the `usage` an answer reports (a JSON answer, or the last chunk of a stream asked
//! with `stream_options.include_usage`), and the API's error body.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The most choices one request may ask for (`n`), as OpenAI allows.
pub const MAX_CHOICES: u64 = 128;

/// A chat completion request, read for what prices it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatRequest {
    /// The model asked for.
    pub model: String,
    /// The messages, in order.
    pub messages: Vec<Message>,
    /// The output cap the client set: `max_completion_tokens`, else `max_tokens`.
    pub max_tokens: Option<u64>,
    /// The choices asked for (`n`, 1 when absent).
    pub n: u64,
    /// Whether the answer is streamed.
    pub stream: bool,
    /// Whether a stream ends with a usage chunk (`stream_options.include_usage`).
    pub include_usage: bool,
    /// The tool (or legacy function) definitions, as their JSON text.
    pub tools_text: Option<String>,
}

/// One message of a chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// `system`, `developer`, `user`, `assistant` or `tool`.
    pub role: String,
    /// Its text: the content string, or its text parts joined.
    pub content: String,
    /// The author's `name`, if given.
    pub name: Option<String>,
    /// An assistant's tool calls: each function's name and arguments.
    pub tool_calls: Vec<(String, String)>,
}

/// Why a body is not a chat completion request this rule can price.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The body is not JSON.
    #[error("the body is not JSON ({0}); send a chat completion request as a JSON object")]
    NotJson(String),
    /// The body is JSON but not an object.
    #[error("the body must be a JSON object")]
    NotObject,
    /// A required field is missing.
    #[error("'{0}' is a required property")]
    Missing(&'static str),
    /// A field has the wrong type or value.
    #[error("invalid value for '{param}': {why}")]
    Invalid {
        /// The field, as OpenAI names it (`messages[0].content`).
        param: String,
        /// What is wrong.
        why: String,
    },
    /// Content this gateway cannot count (an image, audio or a file).
    #[error("'{param}' is a {kind} part; this route prices text only: send text content parts")]
    Unpriced {
        /// The field.
        param: String,
        /// The part's type.
        kind: String,
    },
    /// Both output caps, with different values.
    #[error(
        "max_tokens and max_completion_tokens differ; send one of them (max_completion_tokens is the current name)"
    )]
    TwoCaps,
}

impl RequestError {
    /// The field the error is about, as OpenAI's error names it.
    pub fn param(&self) -> Option<String> {
        match self {
            RequestError::NotJson(_) | RequestError::NotObject => None,
            RequestError::Missing(name) => Some((*name).to_string()),
            RequestError::Invalid { param, .. } | RequestError::Unpriced { param, .. } => {
                Some(param.clone())
            }
            RequestError::TwoCaps => Some("max_tokens".to_string()),
        }
    }
}

fn invalid(param: impl Into<String>, why: impl Into<String>) -> RequestError {
    RequestError::Invalid {
        param: param.into(),
        why: why.into(),
    }
}

fn count_field(
    object: &serde_json::Map<String, Value>,
    name: &str,
) -> Result<Option<u64>, RequestError> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_u64()
            .map(Some)
            .ok_or_else(|| invalid(name, "expected a whole number of at least 0")),
    }
}

/// The text of a message's content: a string, or an array of `{"type":"text","text":…}` parts.
fn content_text(value: Option<&Value>, param: &str) -> Result<String, RequestError> {
    match value {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(text)) => Ok(text.clone()),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for (i, part) in parts.iter().enumerate() {
                let param = format!("{param}[{i}]");
                let kind = part.get("type").and_then(Value::as_str).unwrap_or("");
                match kind {
                    "text" | "input_text" => {
                        let t = part
                            .get("text")
                            .and_then(Value::as_str)
                            .ok_or_else(|| invalid(format!("{param}.text"), "expected a string"))?;
                        text.push_str(t);
                    }
                    "" => return Err(invalid(param, "a content part needs a type")),
                    other => {
                        return Err(RequestError::Unpriced {
                            param,
                            kind: other.to_string(),
                        });
                    }
                }
            }
            Ok(text)
        }
        Some(_) => Err(invalid(
            param,
            "expected a string or an array of content parts",
        )),
    }
}

impl ChatRequest {
    /// Reads a request body.
    pub fn parse(body: &[u8]) -> Result<ChatRequest, RequestError> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| RequestError::NotJson(e.to_string()))?;
        let Value::Object(object) = value else {
            return Err(RequestError::NotObject);
        };
        let model = match object.get("model") {
            None | Some(Value::Null) => return Err(RequestError::Missing("model")),
            Some(Value::String(model)) if !model.is_empty() => model.clone(),
            Some(_) => return Err(invalid("model", "expected a model name")),
        };
        let list = match object.get("messages") {
            None | Some(Value::Null) => return Err(RequestError::Missing("messages")),
            Some(Value::Array(list)) if !list.is_empty() => list,
            Some(Value::Array(_)) => {
                return Err(invalid("messages", "expected at least one message"));
            }
            Some(_) => return Err(invalid("messages", "expected an array of messages")),
        };
        let mut messages = Vec::with_capacity(list.len());
        for (i, message) in list.iter().enumerate() {
            let param = format!("messages[{i}]");
            let role = message
                .get("role")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(format!("{param}.role"), "expected a role"))?
                .to_string();
            let content = content_text(message.get("content"), &format!("{param}.content"))?;
            let name = match message.get("name") {
                None | Some(Value::Null) => None,
                Some(Value::String(name)) => Some(name.clone()),
                Some(_) => return Err(invalid(format!("{param}.name"), "expected a string")),
            };
            let mut tool_calls = Vec::new();
            if let Some(calls) = message.get("tool_calls").and_then(Value::as_array) {
                for call in calls {
                    let function = call.get("function").unwrap_or(&Value::Null);
                    let text = |key: &str| {
                        function
                            .get(key)
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string()
                    };
                    tool_calls.push((text("name"), text("arguments")));
                }
            }
            messages.push(Message {
                role,
                content,
                name,
                tool_calls,
            });
        }
        let max_tokens = match (
            count_field(&object, "max_completion_tokens")?,
            count_field(&object, "max_tokens")?,
        ) {
            (Some(a), Some(b)) if a != b => return Err(RequestError::TwoCaps),
            (a, b) => a.or(b),
        };
        let n = count_field(&object, "n")?.unwrap_or(1);
        if !(1..=MAX_CHOICES).contains(&n) {
            return Err(invalid("n", format!("expected 1 to {MAX_CHOICES} choices")));
        }
        let stream = match object.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(invalid("stream", "expected true or false")),
        };
        let include_usage = object
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let tools: Vec<&Value> = ["tools", "functions"]
            .iter()
            .filter_map(|key| object.get(*key).filter(|v| !v.is_null()))
            .collect();
        let tools_text = (!tools.is_empty()).then(|| {
            tools
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        });
        Ok(ChatRequest {
            model,
            messages,
            max_tokens,
            n,
            stream,
            include_usage,
            tools_text,
        })
    }
}

/// The token counts an answer reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// The prompt's tokens.
    pub prompt_tokens: u64,
    /// The tokens generated, over every choice.
    pub completion_tokens: u64,
    /// Their sum.
    pub total_tokens: u64,
}

impl Usage {
    /// Prompt and completion counts, with their total.
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Usage {
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        }
    }

    /// The `usage` of a JSON answer (`chat.completion`), if it has one.
    pub fn from_answer(body: &[u8]) -> Option<Usage> {
        let value: Value = serde_json::from_slice(body).ok()?;
        serde_json::from_value(value.get("usage")?.clone()).ok()
    }

    /// The `usage` of a streamed answer (`text/event-stream` of `chat.completion.chunk`s): the
    /// last chunk's that carries one, as a stream asked with `stream_options.include_usage`
    /// ends. `None` for a stream without one, or cut before it.
    pub fn from_stream(body: &[u8]) -> Option<Usage> {
        let text = std::str::from_utf8(body).ok()?;
        text.lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .map(str::trim)
            .filter(|data| *data != "[DONE]")
            .filter_map(|data| serde_json::from_str::<Value>(data).ok())
            .filter_map(|chunk| serde_json::from_value(chunk.get("usage")?.clone()).ok())
            .next_back()
    }
}

/// An error as OpenAI's API words it: `{"error":{"message","type","param","code"}}`, with the
/// HTTP status it goes with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: u16,
    /// What is wrong and what to do, for a human.
    pub message: String,
    /// The kind: `invalid_request_error` for anything the client can fix.
    pub kind: &'static str,
    /// The request field it is about.
    pub param: Option<String>,
    /// A code a program can match (`model_not_found`, `request_too_large`, …).
    pub code: Option<&'static str>,
}

impl ApiError {
    /// The JSON body.
    pub fn to_json(&self) -> Value {
        json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        })
    }
}

impl From<&RequestError> for ApiError {
    fn from(e: &RequestError) -> ApiError {
        ApiError {
            status: 400,
            message: e.to_string(),
            kind: "invalid_request_error",
            param: e.param(),
            code: Some(match e {
                RequestError::NotJson(_) | RequestError::NotObject => "invalid_json",
                RequestError::Missing(_) => "missing_required_parameter",
                RequestError::Unpriced { .. } => "unsupported_content",
                _ => "invalid_value",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_prices_a_request() {
        let chat = ChatRequest::parse(
            br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
                {"role":"assistant","content":null,"tool_calls":[{"id":"1","type":"function","function":{"name":"f","arguments":"{}"}}]}],
                "max_completion_tokens":7,"n":2,"stream":true,"stream_options":{"include_usage":true},
                "tools":[{"type":"function","function":{"name":"f"}}]}"#,
        )
        .unwrap();
        assert_eq!(chat.model, "gpt-4o-mini");
        assert_eq!(chat.messages[0].content, "ab");
        assert_eq!(chat.messages[1].tool_calls, vec![("f".into(), "{}".into())]);
        assert_eq!((chat.max_tokens, chat.n), (Some(7), 2));
        assert!(chat.stream && chat.include_usage);
        assert!(chat.tools_text.unwrap().contains("\"name\":\"f\""));
        let plain = ChatRequest::parse(
            br#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":5}"#,
        )
        .unwrap();
        assert_eq!(
            (plain.max_tokens, plain.n, plain.stream),
            (Some(5), 1, false)
        );
    }

    #[test]
    fn refuses_what_it_cannot_price_and_names_the_field() {
        for (body, param) in [
            (&b"not json"[..], None),
            (b"[1]", None),
            (br#"{"messages":[{"role":"user","content":"x"}]}"#, Some("model")),
            (br#"{"model":"m"}"#, Some("messages")),
            (br#"{"model":"m","messages":[]}"#, Some("messages")),
            (br#"{"model":"m","messages":[{"content":"x"}]}"#, Some("messages[0].role")),
            (br#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":-1}"#, Some("max_tokens")),
            (br#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":"9"}"#, Some("max_tokens")),
            (br#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":1,"max_completion_tokens":2}"#, Some("max_tokens")),
            (br#"{"model":"m","messages":[{"role":"user","content":"x"}],"n":0}"#, Some("n")),
            (br#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}"#, Some("messages[0].content[0]")),
        ] {
            let e = ChatRequest::parse(body).unwrap_err();
            assert_eq!(e.param().as_deref(), param, "{}", String::from_utf8_lossy(body));
            let api = ApiError::from(&e);
            assert_eq!(api.status, 400);
            assert_eq!(api.to_json()["error"]["type"], "invalid_request_error");
        }
    }

    #[test]
    fn reads_usage_from_an_answer_and_from_a_stream() {
        let answer =
            br#"{"id":"x","usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}}"#;
        assert_eq!(Usage::from_answer(answer), Some(Usage::new(9, 3)));
        assert_eq!(Usage::from_answer(b"{}"), None);
        let stream = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"usage\":null}\n\n\
                      data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":1,\"total_tokens\":10}}\n\n\
                      data: [DONE]\n\n";
        assert_eq!(
            Usage::from_stream(stream.as_bytes()),
            Some(Usage::new(9, 1))
        );
        let cut = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n";
        assert_eq!(Usage::from_stream(cut.as_bytes()), None);
    }
}
