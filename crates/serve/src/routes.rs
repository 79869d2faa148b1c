//! The route table `plannt serve` runs: the configured `[[routes]]`, or the demo service of the
//! product page, each with the built-in handler that answers it (if not an upstream).

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::Method;
use plannt_gateway::routes::SessionPolicy;
use plannt_gateway::{Route, RouteTable, Target};

use crate::config::{Config, MatchKind, QuotaConfig, RouteConfig};
use crate::error::StartError;
use crate::handler::Handler;

/// Why `/v1/generate` cannot be offered.
const NO_INFERENCE: &str = "no inference upstream is configured (set PLANNT_OPENAI_BASE_URL)";

/// The routes, and which built-in handler answers each route (by id) that has one.
pub struct Routes {
    /// The table the paywall prices with.
    pub table: RouteTable,
    /// Route id to handler.
    pub handlers: HashMap<String, Handler>,
}

/// The routes of `config`: its `[[routes]]`, or the demo service when there are none. A real
/// backend (not `dev`) sells the demo service only when `demo_routes` says so: else the gateway
/// does not start, rather than sell `/v1/demo` for real sats that nobody priced.
pub fn from_config(config: &Config) -> Result<Routes, StartError> {
    let openai = config.openai_base_url.is_some();
    let routes: Vec<(Route, Option<Handler>)> = if config.routes.is_empty() {
        let backend = config.lightning.backend();
        if backend != "dev" {
            if !config.demo_routes {
                return Err(StartError::Setting {
                    key: "routes",
                    why: format!(
                        "none are configured, and without them the gateway sells its demo service (/v1/demo, /v1/data, /v1/generate) for real sats through {backend}. Give your own [[routes]] in a configuration file (--config plannt.toml; see docs/gateway.md), or set demo_routes = true (PLANNT_DEMO_ROUTES=true, --demo-routes) to sell the demo service anyway"
                    ),
                });
            }
            tracing::warn!(
                backend,
                "selling the demo service (/v1/demo, /v1/data, /v1/generate) through a real backend, as demo_routes asks"
            );
        }
        demo(openai)
    } else {
        config
            .routes
            .iter()
            .enumerate()
            .map(|(i, rc)| configured(i, rc, openai))
            .collect::<Result<_, _>>()?
    };
    let handlers = routes
        .iter()
        .filter_map(|(route, handler)| handler.map(|h| (route.id.clone(), h)))
        .collect();
    let table = RouteTable::new(routes.into_iter().map(|(route, _)| route).collect())?;
    Ok(Routes { table, handlers })
}

/// The demo service of the product page.
fn demo(openai: bool) -> Vec<(Route, Option<Handler>)> {
    let route = |id: &str, method, path: &str, price, handler, description: &str| {
        let route = Route {
            id: id.into(),
            method: Some(method),
            path: path.into(),
            prefix: false,
            price_sats: price,
            description: description.into(),
            target: Target::Service,
            unavailable: None,
            on_upstream_failure: None,
            dialects: None,
            free: None,
            rate_limit: None,
            meter: None,
            session: None,
        };
        (route, Some(handler))
    };
    let mut generate = route(
        "generate",
        Method::POST,
        "/v1/generate",
        Some(250),
        Handler::Generate,
        "Submits a prompt, returns an inference from an OpenAI-compatible model",
    );
    if !openai {
        generate.0.unavailable = Some(NO_INFERENCE.into());
    }
    vec![
        route(
            "demo",
            Method::GET,
            "/v1/demo",
            Some(21),
            Handler::Demo,
            "Issues a 402 with an invoice and an L402 token; answers {\"result\":\"verified\"} once paid",
        ),
        route(
            "data",
            Method::GET,
            "/v1/data",
            Some(100),
            Handler::Data,
            "Returns a protected payload on a valid token",
        ),
        generate,
        route(
            "status",
            Method::GET,
            "/status",
            None,
            Handler::Status,
            "Health check",
        ),
    ]
}

/// One `[[routes]]` entry (its values were typed and checked when the configuration was read).
fn configured(
    index: usize,
    rc: &RouteConfig,
    openai: bool,
) -> Result<(Route, Option<Handler>), StartError> {
    let id = rc.id.clone().unwrap_or_else(|| {
        let id: String = rc.path.trim_matches('/').replace('/', "-");
        if id.is_empty() { "root".into() } else { id }
    });
    let target = match &rc.upstream {
        Some(url) => Target::Upstream(url.clone()),
        None if rc.handler.is_some() => Target::Service,
        None => {
            return Err(StartError::Route {
                index,
                path: rc.path.clone(),
                why: "needs an upstream or a handler".into(),
            });
        }
    };
    if let Some(rule) = &rc.price {
        let why = if rc.price_sats.is_some() {
            Some("give price_sats (a fixed price) or price (a rule), not both".to_string())
        } else {
            rule.check().err().map(|e| e.to_string())
        };
        if let Some(why) = why {
            return Err(StartError::Route {
                index,
                path: rc.path.clone(),
                why,
            });
        }
        // Loaded now, once: no request waits for a tokenizer's table.
        rule.load_tokenizers();
    }
    let handler = rc.upstream.is_none().then_some(rc.handler).flatten();
    let unavailable =
        (handler == Some(Handler::Generate) && !openai).then(|| NO_INFERENCE.to_string());
    let route = Route {
        id,
        method: rc.method.clone(),
        path: rc.path.clone(),
        prefix: rc.matching == MatchKind::Prefix,
        price_sats: rc.price_sats,
        description: rc.description.clone(),
        target,
        unavailable,
        on_upstream_failure: rc.on_upstream_failure,
        dialects: rc.dialects.clone(),
        free: rc.free.map(QuotaConfig::quota),
        rate_limit: rc.rate_limit.map(QuotaConfig::quota),
        meter: rc.price.clone().map(Arc::new),
        session: rc.session.map(|s| SessionPolicy {
            deposit_sats: s.deposit_sats,
            idle_secs: s.idle_secs,
        }),
    };
    Ok((route, handler))
}
