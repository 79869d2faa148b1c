//! `plannt serve`: the gateway built from its configuration and served.
//!
//! The route table feeds the paywall (prices), the dispatcher (built-in handler or upstream) and
//! the catalog. The dev network, when it is the backend, is mounted under `/_plannt/dev` on
//! loopback so a `dev+http://` wallet in another process can pay.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use plannt_l402::{KeyRing, RootKey};
use plannt_lightning::dev::{DevNetwork, RECEIVER_ACCOUNT};
use plannt_lightning::{BackendUri, Receiver};
use serde_json::json;
use tower::Layer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;

use crate::builtin::{self, HANDLERS, OpenAi};
use crate::catalog::catalog;
use crate::config::{Config, RouteConfig};
use crate::conn::ConnectionLimits;
use crate::proxy::Proxy;
use crate::routes::{OnUpstreamFailure, Route, RouteTable, Target};
use crate::store::{MemoryStore, RedisStore, SpentStore, SqliteStore};
use crate::{Paywall, PaywallOptions};

/// Why the gateway cannot start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

fn fail(message: impl Into<String>) -> StartError {
    StartError(message.into())
}

/// What the handlers share.
pub struct Shared {
    pub(crate) paywall: Arc<Paywall>,
    pub(crate) proxy: Proxy,
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

/// A gateway ready to serve.
pub struct Gateway {
    router: Router,
    shared: Arc<Shared>,
    limits: ConnectionLimits,
    /// The dev network, when it is the backend.
    pub dev_network: Option<DevNetwork>,
}

/// The demo service of the product page.
fn demo_routes(openai: bool) -> Vec<Route> {
    let route = |id: &str,
                 method: Method,
                 path: &str,
                 price: Option<u64>,
                 handler: &str,
                 description: &str| Route {
        id: id.into(),
        method: Some(method),
        path: path.into(),
        prefix: false,
        price_sats: price,
        description: description.into(),
        target: Target::Builtin(handler.into()),
        unavailable: None,
        on_upstream_failure: None,
    };
    let mut generate = route(
        "generate",
        Method::POST,
        "/v1/generate",
        Some(250),
        "generate",
        "Submits a prompt, returns an inference from an OpenAI-compatible model",
    );
    if !openai {
        generate.unavailable =
            Some("no inference upstream is configured (set PLANNT_OPENAI_BASE_URL)".into());
    }
    vec![
        route(
            "demo",
            Method::GET,
            "/v1/demo",
            Some(21),
            "demo",
            "Issues a 402 with an invoice and an L402 token; answers {\"result\":\"verified\"} once paid",
        ),
        route(
            "data",
            Method::GET,
            "/v1/data",
            Some(100),
            "data",
            "Returns a protected payload on a valid token",
        ),
        generate,
        route(
            "status",
            Method::GET,
            "/status",
            None,
            "status",
            "Health check",
        ),
    ]
}

fn route_from_config(i: usize, rc: &RouteConfig, openai: bool) -> Result<Route, StartError> {
    let at = |m: String| fail(format!("routes[{i}] ({}): {m}", rc.path));
    let id = rc.id.clone().unwrap_or_else(|| {
        let id: String = rc.path.trim_matches('/').replace('/', "-");
        if id.is_empty() { "root".into() } else { id }
    });
    let method = rc
        .method
        .as_deref()
        .map(|m| {
            Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                .map_err(|_| at(format!("method {m:?} is not an HTTP method")))
        })
        .transpose()?;
    let target = match (&rc.upstream, &rc.handler) {
        (Some(url), _) => {
            let url: url::Url = url
                .parse()
                .map_err(|e| at(format!("upstream {url:?} is not a URL: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(at("upstream must be an http:// or https:// URL".into()));
            }
            Target::Upstream(url)
        }
        (None, Some(handler)) if HANDLERS.contains(&handler.as_str()) => {
            Target::Builtin(handler.clone())
        }
        (None, Some(handler)) => {
            return Err(at(format!(
                "handler {handler:?} is not one of {}",
                HANDLERS.join(", ")
            )));
        }
        (None, None) => return Err(at("needs an upstream or a handler".into())),
    };
    let unavailable = (target == Target::Builtin("generate".into()) && !openai)
        .then(|| "no inference upstream is configured (set PLANNT_OPENAI_BASE_URL)".to_string());
    Ok(Route {
        id,
        method,
        path: rc.path.clone(),
        prefix: rc.match_.as_deref() == Some("prefix"),
        price_sats: rc.price_sats,
        description: rc.description.clone(),
        target,
        unavailable,
        on_upstream_failure: match rc.on_upstream_failure.as_deref() {
            None => None,
            Some("release") => Some(OnUpstreamFailure::Release),
            Some("spend") => Some(OnUpstreamFailure::Spend),
            Some(other) => {
                return Err(at(format!(
                    "on_upstream_failure must be release or spend, not {other:?}"
                )));
            }
        },
    })
}

/// Loads the root keys: configured ones, else the key file under the data directory (created
/// with mode 0600 on first start).
fn load_keys(config: &Config, data_dir: &Path) -> Result<KeyRing, StartError> {
    if !config.root_keys.is_empty() {
        let mut ring = KeyRing::new();
        for k in &config.root_keys {
            let key = RootKey::from_hex(&k.key)
                .map_err(|e| fail(format!("root_keys ({}): {e}", k.id)))?;
            ring.add(&k.id, key)
                .map_err(|e| fail(format!("root_keys: {e}")))?;
        }
        return Ok(ring);
    }
    if let Some(hex) = &config.root_key {
        return KeyRing::from_hex(hex)
            .map_err(|e| fail(format!("root_key (PLANNT_ROOT_KEY): {e}")));
    }
    let path = data_dir.join("root.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => KeyRing::from_hex(&text).map_err(|e| fail(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir)
                .map_err(|e| fail(format!("cannot create {}: {e}", data_dir.display())))?;
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).map_err(|e| fail(format!("no randomness: {e}")))?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options
                .open(&path)
                .map_err(|e| fail(format!("cannot create {}: {e}", path.display())))?;
            std::io::Write::write_all(&mut file, hex::encode(bytes).as_bytes())
                .map_err(|e| fail(format!("cannot write {}: {e}", path.display())))?;
            tracing::info!(path = %path.display(), "generated a root key");
            Ok(KeyRing::single(RootKey::new(bytes)))
        }
        Err(e) => Err(fail(format!("cannot read {}: {e}", path.display()))),
    }
}

async fn open_store(config: &Config, data_dir: &Path) -> Result<Arc<dyn SpentStore>, StartError> {
    let store = config.store.trim();
    Ok(if store == "memory" {
        Arc::new(MemoryStore::new())
    } else if store == "sqlite" || store.starts_with("sqlite:") {
        let path = match store.strip_prefix("sqlite:") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => data_dir.join("spent.sqlite"),
        };
        Arc::new(
            SqliteStore::open(&path).map_err(|e| fail(format!("store {}: {e}", path.display())))?,
        )
    } else if store.starts_with("redis://") || store.starts_with("rediss://") {
        Arc::new(
            RedisStore::connect(store)
                .await
                .map_err(|e| fail(format!("store (redis): {e}")))?,
        )
    } else {
        return Err(fail(format!(
            "store: expected memory, sqlite, sqlite:PATH or redis://HOST:PORT, got {store:?}"
        )));
    })
}

impl Gateway {
    /// Builds the gateway: keys, backend, store, routes, handlers.
    pub async fn build(config: Config, data_dir: PathBuf) -> Result<Gateway, StartError> {
        let uri: BackendUri = config
            .lightning
            .parse()
            .map_err(|e| fail(format!("lightning: {e}")))?;
        let keys = load_keys(&config, &data_dir)?;
        let openai = config.openai_base_url.clone().map(|base_url| OpenAi {
            base_url,
            api_key: config.openai_api_key.clone(),
            model: config.openai_model.clone(),
        });
        let routes = if config.routes.is_empty() {
            demo_routes(openai.is_some())
        } else {
            config
                .routes
                .iter()
                .enumerate()
                .map(|(i, rc)| route_from_config(i, rc, openai.is_some()))
                .collect::<Result<_, _>>()?
        };
        let routes = RouteTable::new(routes).map_err(|e| fail(format!("routes: {e}")))?;

        let (receiver, dev_network, network): (Arc<dyn Receiver>, _, String) = match &uri {
            BackendUri::Dev { .. } => {
                let network = DevNetwork::open(&data_dir, config.dev_starting_balance_sats)
                    .map_err(|e| fail(format!("dev network under {}: {e}", data_dir.display())))?;
                (
                    Arc::new(network.wallet(RECEIVER_ACCOUNT)),
                    Some(network),
                    "regtest".into(),
                )
            }
            other => {
                let wallet = plannt_lightning::open(
                    other,
                    &plannt_lightning::Context::new(data_dir.clone()),
                )
                .map_err(|e| fail(format!("lightning: {e}")))?;
                let network = wallet.network().to_string();
                (wallet, None, network)
            }
        };
        let store = open_store(&config, &data_dir).await?;
        let trusted = crate::TrustedProxies::parse(&config.trusted_proxies)
            .map_err(|e| fail(format!("trusted_proxies: {e}")))?;
        let options = PaywallOptions {
            invoice_expiry_secs: config.invoice_expiry_secs,
            token_lifetime_secs: config.token_lifetime_secs,
            invoice_timeout: Duration::from_secs(10),
            challenges_per_second: config.challenges_per_second,
            challenge_burst: config.challenge_burst,
            trusted_proxies: trusted.clone(),
            clock: crate::Clock::system(),
        };
        let limits = ConnectionLimits {
            header_read_timeout: Duration::from_secs(config.header_read_timeout_secs),
            max_connections: config
                .max_connections
                .unwrap_or_else(crate::default_max_connections),
            max_per_address: config.max_connections_per_address,
            trusted_proxies: trusted.clone(),
        };
        let paywall = Arc::new(Paywall::new(keys, receiver, store, routes, options));
        let timeout = Duration::from_secs(config.upstream_timeout_secs);
        plannt_lightning::install_tls_provider();
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(plannt_lightning::tls_config())
            .timeout(timeout)
            .build()
            .map_err(|e| fail(format!("HTTP client: {e}")))?;
        let shared = Arc::new(Shared {
            paywall: paywall.clone(),
            proxy: Proxy::new(timeout, trusted),
            openai,
            http,
            lightning_name: uri.backend().to_string(),
            network,
            dev: dev_network.is_some(),
            started: Instant::now(),
            max_body_bytes: config.max_body_bytes,
            status: tokio::sync::Mutex::new(None),
        });

        let dispatch = axum::routing::any(dispatch).with_state(shared.clone());
        let mut router = Router::new()
            .route(plannt_l402::CATALOG_PATH, get(catalog_handler))
            .route("/metrics", get(metrics_handler))
            .with_state(shared.clone())
            .fallback_service(paywall.layer().layer(dispatch));
        if let Some(network) = &dev_network {
            if config.listen.ip().is_loopback() || config.dev_allow_remote {
                router = router.merge(network.router());
            } else {
                return Err(fail(format!(
                    "the dev network would be served on {}, which is not loopback: anyone reaching it could move test sats (set dev_allow_remote = true to do it anyway, or listen on 127.0.0.1)",
                    config.listen
                )));
            }
        }
        let router = router
            .layer(cors(&config.cors_origins)?)
            .layer(RequestBodyLimitLayer::new(config.max_body_bytes));
        Ok(Gateway {
            router,
            shared,
            limits,
            dev_network,
        })
    }

    /// The router, for tests or embedding.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// The paywall.
    pub fn paywall(&self) -> &Arc<Paywall> {
        &self.shared.paywall
    }

    /// Serves on `listener`, within the configured connection limits, until `shutdown`
    /// resolves, then lets in-flight requests finish: each claim ends committed or released,
    /// including those of clients that hung up. Expired spent entries are purged meanwhile
    /// ([`Paywall::spawn_purger`]).
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let purger = self.shared.paywall.spawn_purger();
        // Ask the backend once at start: an operator learns at once that it does not answer, and
        // a backend with a connection to set up (an NWC relay) has it ready for the first 402.
        let receiver = self.shared.paywall.receiver().clone();
        let backend = self.shared.lightning_name.clone();
        let warm_up = tokio::spawn(async move {
            match receiver.health().await {
                Ok(()) => {
                    tracing::info!(backend, "the Lightning backend answers")
                }
                Err(e) => tracing::warn!(
                    backend,
                    error = %e,
                    "the Lightning backend does not answer; challenges get 503 until it does"
                ),
            }
        });
        let result = crate::conn::serve(listener, self.router, self.limits, shutdown).await;
        self.shared.paywall.drain().await;
        purger.abort();
        warm_up.abort();
        // The purge task holds the store: let it go before returning, so the file is free.
        let _ = purger.await;
        result
    }
}

fn cors(origins: &[String]) -> Result<CorsLayer, StartError> {
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let values = origins
            .iter()
            .map(|o| {
                HeaderValue::from_str(o)
                    .map_err(|_| fail(format!("cors_origins: {o:?} is not a valid origin")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        AllowOrigin::list(values)
    };
    Ok(CorsLayer::new()
        .allow_origin(allow)
        .allow_methods(tower_http::cors::Any)
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT])
        .expose_headers([
            header::WWW_AUTHENTICATE,
            HeaderName::from_static(plannt_l402::wire::X_L402),
            HeaderName::from_static(plannt_l402::wire::X_L402_REASON),
            header::RETRY_AFTER,
        ])
        .max_age(Duration::from_secs(600)))
}

async fn dispatch(State(shared): State<Arc<Shared>>, request: Request<Body>) -> Response {
    let route = shared
        .paywall
        .routes()
        .find(request.method(), request.uri().path())
        .cloned();
    match route.map(|r| r.target) {
        Some(Target::Builtin(name)) => builtin::handle(&name, &shared, request).await,
        Some(Target::Upstream(url)) => shared.proxy.forward(&url, request).await,
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({ "error": "Not Found", "message": "no route here; see /.well-known/l402.json" })),
        )
            .into_response(),
    }
}

async fn catalog_handler(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(catalog(shared.paywall.routes(), &shared.network)).into_response()
}

async fn metrics_handler(State(shared): State<Arc<Shared>>) -> Response {
    let store = shared.paywall.store();
    shared
        .paywall
        .metrics()
        .refresh_spent_tokens(false, || store.len())
        .await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        shared.paywall.metrics().render(),
    )
        .into_response()
}
