//! The gateway assembled and served: the paywall over the dispatcher (a built-in handler or the
//! proxy, by route), the catalog and `/metrics` beside it, the admin API under `/_plannt/admin`
//! (outside CORS), and the dev network mounted under `/_plannt/dev` on loopback so a
//! `dev+http://` wallet in another process can pay.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use plannt_gateway::store::sessions::{
    MemorySessions, RedisSessions, SessionStore, SqliteSessions,
};
use plannt_gateway::store::{
    MemoryStore, RedisOptions, RedisStore, SpentStore, SqliteStore, WaitReplicas,
};
use plannt_gateway::{
    Clock, ConnectionLimits, KeepOptions, Paywall, PaywallOptions, Proxy, RoutesOf, SessionBackend,
    Target, TrustedProxies,
};
use plannt_lightning::dev::DevNetwork;
use serde_json::json;
use tower::Layer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;

use crate::admin::{self, Admin, ConfigSource, Reloader};
use crate::builtin;
use crate::catalog::{PaymentFacts, catalog};
use crate::config::{Config, Store};
use crate::cors::Cors;
use crate::error::StartError;
use crate::openapi::{OPENAPI_PATH, openapi};
use crate::state::{OpenAi, Shared};
use crate::{keys, routes};

/// A gateway ready to serve.
pub struct Gateway {
    router: Router,
    shared: Arc<Shared>,
    limits: ConnectionLimits,
    /// The dev network, when it is the backend.
    pub dev_network: Option<DevNetwork>,
    /// How often idle sessions are looked for: the shortest idle timeout, 1 to 5 seconds.
    session_tick_secs: u64,
    /// How old a session's hold may grow before it is taken for one a crash left behind: the
    /// upstream timeout (an upstream starts answering within it, a flowing stream renews its
    /// hold well within it) and [`HOLD_MARGIN_SECS`].
    hold_secs: u64,
}

/// What a hold may outlive the upstream timeout by before it is given back: time for the answer
/// to be read and settled after the upstream's last byte.
pub const HOLD_MARGIN_SECS: u64 = 60;

/// Opens the configured spent store.
async fn open_store(config: &Config, data_dir: &Path) -> Result<Arc<dyn SpentStore>, StartError> {
    let store = &config.store;
    let failed = |source| StartError::Store {
        store: store.to_string(),
        source,
    };
    Ok(match store {
        Store::Memory => Arc::new(MemoryStore::with_keep_limit(config.keep_memory_bytes)),
        Store::Sqlite(path) => {
            let path = path
                .clone()
                .unwrap_or_else(|| data_dir.join("spent.sqlite"));
            Arc::new(SqliteStore::open_with(&path, config.sqlite_sync).map_err(failed)?)
        }
        Store::Redis(url) => Arc::new(
            RedisStore::connect_with(url, redis_options(config))
                .await
                .map_err(failed)?,
        ),
    })
}

/// How the Redis spent set (and the session balances beside it) are reached: the replica wait
/// applies to both.
fn redis_options(config: &Config) -> RedisOptions {
    let wait = (config.redis_wait_replicas > 0).then(|| WaitReplicas {
        replicas: config.redis_wait_replicas,
        timeout: Duration::from_millis(config.redis_wait_timeout_ms),
    });
    RedisOptions {
        wait,
        ..RedisOptions::default()
    }
}

/// Opens the session store when a route sells sessions: in memory with the memory store, else
/// a SQLite file beside the spent set (`sessions.sqlite` under the data directory, or
/// `<spent file>.sessions`), or in the Redis of the spent set, beside its keys, shared by every
/// replica on it.
async fn open_sessions(
    config: &Config,
    data_dir: &Path,
) -> Result<Option<Arc<dyn SessionStore>>, StartError> {
    if !config.routes.iter().any(|r| r.session.is_some()) {
        return Ok(None);
    }
    let failed = |source| StartError::Store {
        store: config.store.to_string(),
        source,
    };
    Ok(Some(match &config.store {
        Store::Memory => Arc::new(MemorySessions::new()),
        Store::Sqlite(path) => {
            let path = match path {
                Some(spent) => {
                    let mut name = spent.clone().into_os_string();
                    name.push(".sessions");
                    PathBuf::from(name)
                }
                None => data_dir.join("sessions.sqlite"),
            };
            Arc::new(SqliteSessions::open(&path).map_err(failed)?)
        }
        Store::Redis(url) => Arc::new(
            RedisSessions::connect_with(url, redis_options(config))
                .await
                .map_err(failed)?,
        ),
    }))
}

impl Gateway {
    /// Builds the gateway: routes, backend, store, handlers, and the root keys last, so that a
    /// configuration that cannot start never leaves a generated `root.key` behind.
    pub async fn build(config: Config, data_dir: PathBuf) -> Result<Gateway, StartError> {
        let openai = config.openai_base_url.clone().map(|base_url| OpenAi {
            base_url,
            api_key: config.openai_api_key.clone(),
            model: config.openai_model.clone(),
        });
        let routes = routes::from_config(&config)?;
        let mut context = plannt_lightning::Context::new(data_dir.clone());
        context.dev_starting_balance_sats = config.dev_starting_balance_sats;
        let opened =
            plannt_lightning::open(&config.lightning, &context).map_err(StartError::Lightning)?;
        let network = opened.wallet.network().to_string();
        let dev_network = opened.dev;
        if dev_network.is_some() && !config.listen.ip().is_loopback() && !config.dev_allow_remote {
            return Err(StartError::Setting {
                key: "dev_allow_remote",
                why: format!(
                    "the dev network would be served on {}, which is not loopback: anyone reaching it could move test sats (set dev_allow_remote = true to do it anyway, or listen on 127.0.0.1)",
                    config.listen
                ),
            });
        }
        let store = open_store(&config, &data_dir).await?;
        let trusted =
            TrustedProxies::parse(&config.trusted_proxies).map_err(|why| StartError::Setting {
                key: "trusted_proxies",
                why,
            })?;
        let options = PaywallOptions {
            invoice_expiry_secs: config.invoice_expiry_secs,
            token_lifetime_secs: config.token_lifetime_secs,
            invoice_timeout: Duration::from_secs(10),
            challenges_per_second: config.challenges_per_second,
            challenge_burst: config.challenge_burst,
            trusted_proxies: trusted.clone(),
            clock: Clock::system(),
            dialects: config
                .dialects
                .clone()
                .unwrap_or_else(|| plannt_gateway::DEFAULT_DIALECTS.to_vec()),
            mpp_realm: config.mpp_realm.clone(),
            keep: KeepOptions {
                answer_bytes: config.keep_answer_bytes,
                answer_secs: config.keep_answer_secs,
                request_body_bytes: config.max_body_bytes,
                ..KeepOptions::default()
            },
            ledger: plannt_gateway::ledger::LedgerOptions {
                retention: Duration::from_secs(
                    config
                        .ledger_retention_days
                        .saturating_mul(plannt_gateway::ledger::DAY),
                ),
                ..Default::default()
            },
        };
        let admin = Admin::from_config(&config)?;
        let limits = ConnectionLimits {
            header_read_timeout: Duration::from_secs(config.header_read_timeout_secs),
            max_connections: config
                .max_connections
                .unwrap_or_else(plannt_gateway::default_max_connections),
            max_per_address: config.max_connections_per_address,
            trusted_proxies: trusted.clone(),
        };
        let cors = cors(&config.cors_origins)?;
        let timeout = Duration::from_secs(config.upstream_timeout_secs);
        plannt_lightning::install_tls_provider();
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(plannt_lightning::tls_config())
            .timeout(timeout)
            .build()
            .map_err(StartError::Http)?;
        let keys = keys::load(&config, &data_dir)?;
        let sessions = open_sessions(&config, &data_dir).await?;
        let payer: Arc<dyn plannt_lightning::Payer> = opened.wallet.clone();
        let mut paywall = Paywall::new(keys, opened.wallet, store, routes.table, options);
        if let Some(store) = sessions
            && refunds_can_be_paid(payer.as_ref()).await
        {
            paywall = paywall.with_sessions(SessionBackend { store, payer });
        }
        let paywall = Arc::new(paywall);
        let shared = Arc::new(Shared {
            paywall: paywall.clone(),
            proxy: Proxy::new(timeout, trusted.clone()),
            handlers: arc_swap::ArcSwap::from_pointee(routes.handlers),
            openai,
            http,
            lightning_name: config.lightning.backend().to_string(),
            network,
            dev: dev_network.is_some(),
            started: Instant::now(),
            max_body_bytes: config.max_body_bytes,
            status: tokio::sync::Mutex::new(None),
            admin,
            trusted,
            config: tokio::sync::Mutex::new(config.clone()),
            reload_source: std::sync::Mutex::new(None),
        });

        // Behind the paywall, one service for every method: a request clones it (an `Arc`), where
        // a method router would clone a boxed handler for each method.
        let to = shared.clone();
        let dispatch = tower::service_fn(move |request: Request<Body>| {
            let shared = to.clone();
            async move { Ok::<_, std::convert::Infallible>(dispatch(shared, request).await) }
        });
        let mut router = Router::new()
            .route(plannt_l402::CATALOG_PATH, get(catalog_handler))
            .route(OPENAPI_PATH, get(openapi_handler))
            .route("/metrics", get(metrics_handler))
            .with_state(shared.clone())
            .fallback_service(paywall.layer().layer(dispatch));
        if let Some(network) = &dev_network {
            router = router.merge(network.router());
        }
        // The admin API is merged after the CORS layer: no other origin may read its answers.
        let router = router
            .layer(Cors::new(cors))
            .merge(admin::router(shared.clone()))
            .layer(RequestBodyLimitLayer::new(config.max_body_bytes));
        let session_tick_secs = config
            .routes
            .iter()
            .filter_map(|r| r.session.map(|s| s.idle_secs))
            .min()
            .unwrap_or(5)
            .clamp(1, 5);
        Ok(Gateway {
            router,
            shared,
            limits,
            dev_network,
            session_tick_secs,
            hold_secs: config
                .upstream_timeout_secs
                .saturating_add(HOLD_MARGIN_SECS),
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

    /// Where a reload (the admin API's, or [`Reloader::reload`] on `SIGHUP`) reads the
    /// configuration again; without one a reload is refused.
    pub fn set_config_source(&self, source: ConfigSource) {
        *self
            .shared
            .reload_source
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(source);
    }

    /// What reloads this gateway's configuration while it serves.
    pub fn reloader(&self) -> Reloader {
        Reloader(self.shared.clone())
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
        // Every few seconds: holds a crash left behind are given back, owed refunds (a close a
        // crash cut short, a payment that failed) are tried again, idle sessions are closed.
        let closer = self.shared.paywall.spawn_session_closer(
            Duration::from_secs(self.session_tick_secs),
            Duration::from_secs(self.hold_secs),
        );
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
        let result = plannt_gateway::serve(listener, self.router, self.limits, shutdown).await;
        self.shared.paywall.drain().await;
        purger.abort();
        warm_up.abort();
        if let Some(closer) = closer {
            closer.abort();
            let _ = closer.await;
        }
        // The purge task holds the store: let it go before returning, so the file is free.
        let _ = purger.await;
        result
    }
}

/// Whether the backend's credential may pay a session's refund: one that can pay an amountless
/// invoice, and is not refused reading the balance (LND's `invoice.macaroon`, a CLN rune limited
/// to invoices: credentials a gateway is rightly given, which could take deposits but never
/// refund them). Anything else the balance call answers leaves sessions on (a node down at
/// start may be up by the first close). phoenixd's limited password reads the balance and
/// cannot pay: docs/backends.md says to give a gateway that sells sessions the full one.
async fn refunds_can_be_paid(payer: &dyn plannt_lightning::Payer) -> bool {
    if !payer.can_pay_amountless() {
        // `Paywall::with_sessions` says so.
        return true;
    }
    match payer.balance().await {
        Err(plannt_lightning::LightningError::Unauthorized(why)) => {
            tracing::warn!(
                backend = payer.name(),
                error = %why,
                "the Lightning credential cannot pay, so it could not refund a session: sessions are not offered (give the gateway a credential that can pay)"
            );
            false
        }
        _ => true,
    }
}

pub(crate) fn cors(origins: &[String]) -> Result<CorsLayer, StartError> {
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let values = origins
            .iter()
            .map(|o| {
                HeaderValue::from_str(o).map_err(|_| StartError::Setting {
                    key: "cors_origins",
                    why: format!("{o:?} is not a valid origin"),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        AllowOrigin::list(values)
    };
    Ok(CorsLayer::new()
        .allow_origin(allow)
        .allow_methods(tower_http::cors::Any)
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            HeaderName::from_static(plannt_l402::x402::PAYMENT_SIGNATURE),
        ])
        .expose_headers([
            header::WWW_AUTHENTICATE,
            HeaderName::from_static(plannt_l402::wire::X_L402),
            HeaderName::from_static(plannt_l402::wire::X_L402_REASON),
            HeaderName::from_static("x-l402-kept"),
            header::RETRY_AFTER,
            HeaderName::from_static(plannt_l402::mpp::PAYMENT_RECEIPT),
            HeaderName::from_static(plannt_l402::x402::PAYMENT_REQUIRED),
            HeaderName::from_static(plannt_l402::x402::PAYMENT_RESPONSE),
        ])
        .max_age(Duration::from_secs(600)))
}

/// Answers a request behind the paywall: the route's built-in handler, or its upstream.
async fn dispatch(shared: Arc<Shared>, request: Request<Body>) -> Response {
    // The table the paywall priced this request with, so a reload meanwhile changes nothing
    // for it.
    let table = match request.extensions().get::<RoutesOf>() {
        Some(RoutesOf(table)) => table.clone(),
        None => shared.paywall.routes(),
    };
    let route = table.find(request.method(), request.uri().path());
    let handlers = shared.handlers.load();
    match route.map(|r| (&r.target, handlers.get(&r.id).copied())) {
        Some((Target::Upstream(url), _)) => {
            let url = url.clone();
            shared.proxy.forward(&url, request).await
        }
        Some((Target::Service, Some(handler))) => builtin::handle(handler, &shared, request).await,
        _ => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({ "error": "Not Found", "message": "no route here; see /.well-known/l402.json" })),
        )
            .into_response(),
    }
}

async fn catalog_handler(State(shared): State<Arc<Shared>>) -> Response {
    let paywall = &shared.paywall;
    let facts = PaymentFacts {
        network: &shared.network,
        can_lookup_invoices: paywall.can_lookup_invoices(),
        openapi: Some(OPENAPI_PATH),
        sessions: paywall.session_store().is_some(),
    };
    axum::Json(catalog(&paywall.routes(), &facts, |route| {
        paywall.dialects_of(route)
    }))
    .into_response()
}

async fn openapi_handler(State(shared): State<Arc<Shared>>) -> Response {
    let paywall = &shared.paywall;
    axum::Json(openapi(&paywall.routes(), &shared.network, |route| {
        paywall.dialects_of(route)
    }))
    .into_response()
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
