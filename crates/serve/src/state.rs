//! What the handlers behind the paywall share: the paywall itself, the proxy, which handler
//! answers which route, the inference upstream, the last `/status` check, and the admin API's
//! settings with the configuration a reload compares against.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use axum::http::StatusCode;
use plannt_gateway::{Paywall, Proxy, TrustedProxies};

use crate::admin::{Admin, ConfigSource};
use crate::config::Config;
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
    /// Route id to handler, swapped whole by a reload.
    pub(crate) handlers: ArcSwap<HashMap<String, Handler>>,
    pub(crate) openai: Option<OpenAi>,
    pub(crate) http: reqwest::Client,
    pub(crate) lightning_name: String,
    pub(crate) network: String,
    pub(crate) dev: bool,
    pub(crate) started: Instant,
    pub(crate) max_body_bytes: usize,
    /// The last `/status` check: when, and what it found (the JSON text as sent).
    pub(crate) status: tokio::sync::Mutex<Option<(Instant, StatusCode, axum::body::Bytes)>>,
    /// Who may use the admin API.
    pub(crate) admin: Admin,
    /// The proxies whose `X-Forwarded-For` names the client.
    pub(crate) trusted: TrustedProxies,
    /// The configuration running (its routes as last reloaded), which one reload at a time
    /// holds.
    pub(crate) config: tokio::sync::Mutex<Config>,
    /// Where a reload reads the configuration from.
    pub(crate) reload_source: std::sync::Mutex<Option<ConfigSource>>,
}
