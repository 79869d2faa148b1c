//! What the handlers behind the paywall share: the paywall itself, the proxy, which handler
//! answers which route, the inference upstream, and the last `/status` check.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::http::StatusCode;
use plannt_gateway::{Paywall, Proxy};

use crate::handler::Handler;

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

/// What the handlers share.
pub struct Shared {
    pub(crate) paywall: Arc<Paywall>,
    pub(crate) proxy: Proxy,
    pub(crate) handlers: HashMap<String, Handler>,
    pub(crate) openai: Option<OpenAi>,
    pub(crate) http: reqwest::Client,
    pub(crate) lightning_name: String,
    pub(crate) network: String,
    pub(crate) dev: bool,
    pub(crate) started: Instant,
    pub(crate) max_body_bytes: usize,
    /// The last `/status` check: when, and what it found.
    pub(crate) status: tokio::sync::Mutex<Option<(Instant, StatusCode, serde_json::Value)>>,
}
