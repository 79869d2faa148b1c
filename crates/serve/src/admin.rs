//! The operator's side of the gateway under `/_plannt/admin/`: a JSON API (routes and prices,
//! the earnings ledger's stats, backend and store health, revoking a token, reloading the
//! configuration) and the dashboard that reads it.
//!
//! ```text
//! GET  /_plannt/admin/                  the dashboard (an HTML shell that carries no data)
//! GET  /_plannt/admin/dashboard.js|css  its script and style, embedded in the binary
//! GET  /_plannt/admin/routes            routes and prices                       (bearer token)
//! GET  /_plannt/admin/stats?since=&until=  the ledger's figures, live minutes    (bearer token)
//! GET  /_plannt/admin/health            backend and store                       (bearer token)
//! POST /_plannt/admin/revoke            {"payment_hash": "<hex>"}: refused from now on
//! POST /_plannt/admin/reload            re-reads the configuration (also on SIGHUP)
//! ```
//!
//! **Who may ask.** The admin API is off (every path answers 404) unless a token is configured
//! (`admin_token_file` or `PLANNT_ADMIN_TOKEN`). It answers only clients on loopback (the
//! client as `trusted_proxies` name it) unless `admin_allow_remote = true`: others get 403. The
//! JSON endpoints want `Authorization: Bearer <token>`, compared in constant time (the SHA-256
//! of each, with `subtle`); anything else gets 401. Every admin answer carries a strict
//! `Content-Security-Policy` and `Cache-Control: no-store`, and none carries CORS headers.
//!
//! **Reload.** [`Reloader::reload`] reads the configuration again from where it came from (the
//! file and `PLANNT_*` variables, with the command line's flags) and swaps the route table and
//! its handlers at once: requests in flight finish with the table they started with. A
//! configuration that does not load, or whose routes do not build, is refused and the running
//! one kept. Only routes (prices, paths, upstreams, dialects, per-route settings) change on a
//! reload; the settings that need a restart are listed in the answer (`restart_needed`).

use std::net::IpAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use plannt_gateway::l402::PaymentHash;
use plannt_gateway::ledger::Stats;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::config::{Config, ConfigError};
use crate::error::StartError;
use crate::routes;
use crate::state::Shared;

/// Where the admin API lives.
pub const ADMIN_PATH: &str = "/_plannt/admin";

/// The dashboard's page, script and style, embedded in the binary.
const DASHBOARD_HTML: &str = include_str!("admin/dashboard.html");
const DASHBOARD_JS: &str = include_str!("admin/dashboard.js");
const DASHBOARD_CSS: &str = include_str!("admin/dashboard.css");

/// The policy of every admin answer: only this origin's script and style, no inline code, no
/// frames, no forms posted elsewhere; fetches only to this origin.
pub const ADMIN_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; \
     base-uri 'none'";

/// The shortest token accepted.
pub const MIN_TOKEN_CHARS: usize = 16;

/// How many recent payments the stats carry.
const RECENT: usize = 20;

/// Reads the configuration again, as the gateway was first given it.
pub type ConfigSource = Arc<dyn Fn() -> Result<Config, ConfigError> + Send + Sync>;

/// The admin API's settings, fixed at start.
pub(crate) struct Admin {
    /// The SHA-256 of the token; `None`: the admin API is off.
    token: Option<Zeroizing<[u8; 32]>>,
    allow_remote: bool,
}

impl Admin {
    /// The settings of `config`: its token from `PLANNT_ADMIN_TOKEN` or `admin_token_file`.
    pub(crate) fn from_config(config: &Config) -> Result<Admin, StartError> {
        let token: Option<Zeroizing<String>> = match (&config.admin_token, &config.admin_token_file)
        {
            (Some(token), _) => Some(token.0.clone()),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| StartError::Setting {
                    key: "admin_token_file",
                    why: format!("cannot read {}: {e}", path.display()),
                })?;
                Some(Zeroizing::new(text.trim().to_owned()))
            }
            (None, None) => None,
        };
        if let Some(token) = &token
            && token.chars().count() < MIN_TOKEN_CHARS
        {
            return Err(StartError::Setting {
                key: "admin_token_file",
                why: format!(
                    "the admin token is shorter than {MIN_TOKEN_CHARS} characters: make a long random one, e.g. `openssl rand -hex 32`"
                ),
            });
        }
        Ok(Admin {
            token: token.map(|t| Zeroizing::new(Sha256::digest(t.as_bytes()).into())),
            allow_remote: config.admin_allow_remote,
        })
    }

    /// Whether `presented` (an `Authorization` value) carries the token: the SHA-256 of both
    /// compared in constant time, so neither the token's length nor its bytes show in timing.
    fn authorized(&self, presented: Option<&HeaderValue>) -> bool {
        let Some(expected) = &self.token else {
            return false;
        };
        let bearer = presented
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .unwrap_or("");
        let digest: [u8; 32] = Sha256::digest(bearer.as_bytes()).into();
        bool::from(digest.ct_eq(&**expected)) && !bearer.is_empty()
    }
}

/// Every admin route, behind the checks.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let at = |path: &str| format!("{ADMIN_PATH}{path}");
    let api = Router::new()
        .route(&at("/routes"), get(routes_handler))
        .route(&at("/stats"), get(stats_handler))
        .route(&at("/health"), get(health_handler))
        .route(&at("/revoke"), post(revoke_handler))
        .route(&at("/reload"), post(reload_handler))
        .route_layer(middleware::from_fn_with_state(shared.clone(), bearer));
    let pages = Router::new()
        .route(
            &at("/"),
            get(|| async { page("text/html; charset=utf-8", DASHBOARD_HTML) }),
        )
        .route(
            &at("/dashboard.js"),
            get(|| async { page("text/javascript; charset=utf-8", DASHBOARD_JS) }),
        )
        .route(
            &at("/dashboard.css"),
            get(|| async { page("text/css; charset=utf-8", DASHBOARD_CSS) }),
        )
        .route(
            ADMIN_PATH,
            get(|| async {
                (
                    StatusCode::PERMANENT_REDIRECT,
                    [(header::LOCATION, "/_plannt/admin/")],
                )
            }),
        )
        .route(&at("/{*rest}"), any(|| async { not_found() }));
    api.merge(pages)
        .route_layer(middleware::from_fn_with_state(shared.clone(), gate))
        .with_state(shared)
}

fn page(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

fn problem(status: StatusCode, error: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": error, "message": message })),
    )
        .into_response()
}

fn not_found() -> Response {
    problem(StatusCode::NOT_FOUND, "Not Found", "no route here")
}

/// Off without a token (404), loopback only unless allowed (403); the headers of every admin
/// answer.
async fn gate(State(shared): State<Arc<Shared>>, request: Request<Body>, next: Next) -> Response {
    let admin = &shared.admin;
    let mut answer = if admin.token.is_none() {
        // Indistinguishable from a gateway without an admin API.
        problem(
            StatusCode::NOT_FOUND,
            "Not Found",
            "no route here; see /.well-known/l402.json",
        )
    } else if !admin.allow_remote && !is_loopback(client_of(&shared, &request)) {
        problem(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "the admin API answers loopback clients only (set admin_allow_remote = true to serve it further)",
        )
    } else {
        next.run(request).await
    };
    let headers = answer.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(ADMIN_CSP),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    answer
}

/// The client's address: the connecting one, or the one a trusted proxy names.
fn client_of(shared: &Shared, request: &Request<Body>) -> IpAddr {
    let peer = request
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    shared.trusted.client(peer, request.headers())
}

fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// The JSON endpoints want the bearer token.
async fn bearer(State(shared): State<Arc<Shared>>, request: Request<Body>, next: Next) -> Response {
    if shared
        .admin
        .authorized(request.headers().get(header::AUTHORIZATION))
    {
        return next.run(request).await;
    }
    let mut refused = problem(
        StatusCode::UNAUTHORIZED,
        "Unauthorized",
        "send the admin token: Authorization: Bearer <token>",
    );
    refused.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"plannt-admin\""),
    );
    refused
}

async fn routes_handler(State(shared): State<Arc<Shared>>) -> Response {
    let paywall = &shared.paywall;
    let table = paywall.routes();
    let routes: Vec<Value> = table
        .routes()
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "method": r.method.as_ref().map(|m| m.as_str()),
                "path": r.path,
                "prefix": r.prefix,
                "price_sats": r.price_sats,
                "description": r.description,
                "dialects": paywall.dialects_of(r).iter().map(|d| d.as_str()).collect::<Vec<_>>(),
                "unavailable": r.unavailable,
                "metered": r.meter.is_some(),
                "free": r.free.as_ref().map(|q| json!({ "requests": q.requests, "per_secs": q.per_secs() })),
                "rate_limit": r.rate_limit.as_ref().map(|q| json!({ "requests": q.requests, "per_secs": q.per_secs() })),
                "upstream": match &r.target {
                    plannt_gateway::Target::Upstream(url) => Some(url.as_str()),
                    plannt_gateway::Target::Service => None,
                },
            })
        })
        .collect();
    axum::Json(json!({ "routes": routes })).into_response()
}

/// `since` and `until` of the stats: a unix time, a date or RFC 3339 time, or a duration back
/// from now (`24h`, `7d`).
#[derive(Deserialize)]
struct Span {
    since: Option<String>,
    until: Option<String>,
}

async fn stats_handler(State(shared): State<Arc<Shared>>, Query(span): Query<Span>) -> Response {
    let paywall = &shared.paywall;
    let now = paywall.now();
    let parse = |text: &Option<String>, default: u64| match text.as_deref() {
        None | Some("") => Ok(default),
        Some(text) => plannt_gateway::ledger::parse_when(text, now),
    };
    let (since, until) = match (
        parse(
            &span.since,
            now.saturating_sub(30 * plannt_gateway::ledger::DAY),
        ),
        parse(&span.until, now + 1),
    ) {
        (Ok(since), Ok(until)) if since < until => (since, until),
        (Ok(_), Ok(_)) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "Bad Request",
                "since must come before until",
            );
        }
        (Err(why), _) | (_, Err(why)) => {
            return problem(StatusCode::BAD_REQUEST, "Bad Request", &why);
        }
    };
    // What gathered in memory first, so the figures include the last few seconds.
    if let Err(e) = paywall.flush_ledger().await {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
            &format!("the store cannot take the ledger: {e}"),
        );
    }
    let read = match paywall.store().ledger(since, until, RECENT).await {
        Ok(read) => read,
        Err(e) => {
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable",
                &format!("the store cannot read the ledger: {e}"),
            );
        }
    };
    let stats = Stats::of(&read, since, until);
    let mut body = serde_json::to_value(&stats).unwrap_or(Value::Null);
    body["live"] = json!(paywall.ledger().live(now));
    body["store"] = json!(paywall.store().name());
    body["retention_days"] = json!(paywall.ledger_options().retention.as_secs() / 86_400);
    axum::Json(body).into_response()
}

async fn health_handler(State(shared): State<Arc<Shared>>) -> Response {
    let paywall = &shared.paywall;
    let (backend, store) = tokio::join!(paywall.receiver().health(), paywall.store().health());
    let report = |name: &str, result: Result<(), String>| match result {
        Ok(()) => json!({ "name": name, "ok": true }),
        Err(e) => json!({ "name": name, "ok": false, "error": e }),
    };
    let ok = backend.is_ok() && store.is_ok();
    let body = json!({
        "ok": ok,
        "backend": report(&shared.lightning_name, backend.map_err(|e| e.to_string())),
        "store": report(paywall.store().name(), store.map_err(|e| e.to_string())),
        "network": shared.network,
        "uptime_secs": shared.started.elapsed().as_secs(),
        "version": env!("CARGO_PKG_VERSION"),
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

#[derive(Deserialize)]
struct Revoke {
    payment_hash: String,
}

async fn revoke_handler(State(shared): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    let hash = serde_json::from_slice::<Revoke>(&body)
        .ok()
        .and_then(|r| PaymentHash::from_hex(r.payment_hash.trim()).ok());
    let Some(hash) = hash else {
        return problem(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            "send {\"payment_hash\": \"<64 hex characters>\"}",
        );
    };
    match shared.paywall.revoke(&hash).await {
        Ok(until) => {
            tracing::info!(payment_hash = %hash.to_hex(), "token revoked by the admin API");
            axum::Json(json!({ "revoked": hash.to_hex(), "until": until })).into_response()
        }
        Err(e) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
            &format!("the store could not record the revocation: {e}"),
        ),
    }
}

async fn reload_handler(State(shared): State<Arc<Shared>>) -> Response {
    match Reloader(shared).reload().await {
        Ok(done) => axum::Json(json!({
            "reloaded": true,
            "routes": done.routes,
            "restart_needed": done.restart_needed,
        }))
        .into_response(),
        Err(e) => {
            let status = match e {
                ReloadError::NoSource => StatusCode::CONFLICT,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            let mut body = json!({
                "reloaded": false,
                "error": "Reload refused",
                "message": e.to_string(),
            });
            body["kept"] = json!("the running configuration");
            (status, axum::Json(body)).into_response()
        }
    }
}

/// Why a reload was refused; the running configuration is kept.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The gateway was built without a source to read its configuration from again.
    #[error(
        "this gateway has no configuration source to reload from (it was built in code): restart it instead"
    )]
    NoSource,
    /// The new configuration does not load.
    #[error("the new configuration does not load, the running one is kept: {0}")]
    Config(#[from] ConfigError),
    /// Its routes do not build.
    #[error("the new routes do not build, the running ones are kept: {0}")]
    Routes(#[from] StartError),
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// How many routes the new table holds.
    pub routes: usize,
    /// The changed settings that a reload does not apply: they take effect at the next start.
    pub restart_needed: Vec<&'static str>,
}

/// Reloads a running gateway's configuration: from the admin API, on `SIGHUP`, or in code.
#[derive(Clone)]
pub struct Reloader(pub(crate) Arc<Shared>);

impl Reloader {
    /// Reads the configuration again and swaps the routes in; see the [module docs](self).
    pub async fn reload(&self) -> Result<Reloaded, ReloadError> {
        let shared = &self.0;
        let source = shared
            .reload_source
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(ReloadError::NoSource)?;
        // One reload at a time: each compares against what the one before left running.
        let mut running = shared.config.lock().await;
        let result = async {
            let new = source()?;
            let built = routes::from_config(&new)?;
            Ok::<_, ReloadError>((new, built))
        }
        .await;
        let (new, built) = match result {
            Ok(ok) => ok,
            Err(e) => {
                tracing::error!(error = %e, "reload refused; the running configuration is kept");
                return Err(e);
            }
        };
        let restart_needed = restart_needed(&running, &new);
        let count = built.table.routes().len();
        // Handlers first: a request priced by the old table still finds its handler (an id
        // whose handler changed is answered by the new one).
        let mut handlers = (**shared.handlers.load()).clone();
        handlers.extend(built.handlers);
        shared.handlers.store(Arc::new(handlers));
        shared.paywall.set_routes(built.table);
        running.routes = new.routes;
        if !restart_needed.is_empty() {
            tracing::warn!(
                settings = ?restart_needed,
                "reloaded the routes; these changed settings take effect at the next restart"
            );
        }
        tracing::info!(routes = count, "configuration reloaded");
        Ok(Reloaded {
            routes: count,
            restart_needed,
        })
    }
}

/// The settings other than routes that differ between `running` and `new`.
fn restart_needed(running: &Config, new: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    macro_rules! compare {
        ($($field:ident),* $(,)?) => {
            $(if running.$field != new.$field {
                changed.push(stringify!($field));
            })*
        };
    }
    compare!(
        listen,
        lightning,
        store,
        sqlite_sync,
        redis_wait_replicas,
        redis_wait_timeout_ms,
        root_key,
        root_keys,
        data_dir,
        invoice_expiry_secs,
        token_lifetime_secs,
        challenges_per_second,
        challenge_burst,
        trusted_proxies,
        upstream_timeout_secs,
        max_body_bytes,
        header_read_timeout_secs,
        max_connections,
        max_connections_per_address,
        cors_origins,
        dev_starting_balance_sats,
        dev_allow_remote,
        openai_base_url,
        openai_api_key,
        openai_model,
        dialects,
        mpp_realm,
        keep_answer_bytes,
        keep_answer_secs,
        keep_memory_bytes,
        ledger_retention_days,
        admin_token_file,
        admin_allow_remote,
        admin_token,
    );
    let mut rest = new.clone();
    rest.routes = running.routes.clone();
    if changed.is_empty() && rest != *running {
        changed.push("other settings");
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AdminToken;

    const TOKEN: &str = "a-long-admin-token-0123456789";

    fn config() -> Config {
        Config {
            admin_token: Some(AdminToken(Zeroizing::new(TOKEN.into()))),
            ..Config::default()
        }
    }

    #[test]
    fn the_admin_token_never_prints() {
        let shown = format!("{:?}", config());
        assert!(!shown.contains(TOKEN), "{shown}");
        assert!(shown.contains("AdminToken(…)"));
    }

    #[test]
    fn only_the_exact_bearer_token_is_authorized() {
        let admin = Admin::from_config(&config()).unwrap();
        let header = |v: &str| HeaderValue::from_str(v).unwrap();
        assert!(admin.authorized(Some(&header(&format!("Bearer {TOKEN}")))));
        assert!(admin.authorized(Some(&header(&format!("bearer  {TOKEN} ")))));
        for wrong in [
            String::new(),
            "Bearer".into(),
            "Bearer ".into(),
            format!("Basic {TOKEN}"),
            format!("Bearer {}", &TOKEN[1..]),
            format!("Bearer {TOKEN}x"),
        ] {
            assert!(!admin.authorized(Some(&header(&wrong))), "{wrong:?}");
        }
        assert!(!admin.authorized(None));
        let off = Admin::from_config(&Config::default()).unwrap();
        assert!(
            !off.authorized(Some(&header("Bearer "))),
            "no token: nothing matches"
        );
    }

    #[test]
    fn a_reload_names_the_settings_that_need_a_restart() {
        let running = Config::default();
        let mut new = running.clone();
        assert!(restart_needed(&running, &new).is_empty());
        new.listen = "127.0.0.1:9999".parse().unwrap();
        new.keep_answer_secs = 5;
        assert_eq!(
            restart_needed(&running, &new),
            ["listen", "keep_answer_secs"]
        );
        // Routes alone need none.
        let routes: Config = toml::from_str(
            "[[routes]]\npath = \"/x\"\nprice_sats = 1\nupstream = \"http://127.0.0.1:1\"\n",
        )
        .unwrap();
        assert_eq!(routes.routes.len(), 1);
        assert!(restart_needed(&running, &routes).is_empty());
    }
}
