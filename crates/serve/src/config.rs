//! `plannt serve` configuration: a TOML file, every key overridable by a `PLANNT_<KEY>`
//! environment variable (and some by flags), each with a documented default.
//!
//! A bad configuration names the file or variable, the key, and what was expected; the server
//! does not start. Every value is typed once, when it is read: the backend URI, the store, each
//! route's method, match, upstream, handler and failure policy.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use axum::http::Method;
use plannt_gateway::OnUpstreamFailure;
use plannt_gateway::l402::Dialect;
use plannt_gateway::store::{RedisStore, SqliteSync};
use plannt_lightning::BackendUri;
use serde::{Deserialize, Deserializer};
use url::Url;

use crate::handler::Handler;

/// Where a setting came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file or environment variable.
    pub source: String,
    /// The key, if one is at fault.
    pub key: Option<String>,
    /// What is wrong and what was expected.
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{}: {key}: {}", self.source, self.message),
            None => write!(f, "{}: {}", self.source, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

fn error(source: &str, key: Option<&str>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        source: source.to_string(),
        key: key.map(str::to_string),
        message: message.into(),
    }
}

/// A root key with its id.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// The id, minted into each token's location.
    pub id: String,
    /// 64 hex characters.
    pub key: String,
}

/// How a route's path matches a request's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchKind {
    /// The request path is the route's (or a spelling of it an upstream may resolve to it).
    #[default]
    Exact,
    /// The request path starts with the route's.
    Prefix,
}

/// One `[[routes]]` entry.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The id minted into tokens; defaults to the path with `/` turned into `-`.
    pub id: Option<String>,
    /// The method (any case); any when left out.
    #[serde(default, deserialize_with = "method")]
    pub method: Option<Method>,
    /// The path.
    pub path: String,
    /// `exact` (the default) or `prefix`.
    #[serde(rename = "match", default)]
    pub matching: MatchKind,
    /// The price in sats; a route without one (nor `price`) is public.
    pub price_sats: Option<u64>,
    /// A rule that prices each request from its body instead (`price = { per =
    /// "openai-tokens", models = { … } }`, docs/metering.md).
    pub price: Option<plannt_meter::PriceRule>,
    /// What it does, for the catalog.
    #[serde(default)]
    pub description: String,
    /// The upstream to forward to: an `http://` or `https://` URL.
    #[serde(default, deserialize_with = "upstream")]
    pub upstream: Option<Url>,
    /// A built-in handler: `demo`, `data`, `generate`, `status`.
    pub handler: Option<Handler>,
    /// What a 5xx, or no answer in time, from an upstream that received the request does to
    /// the token: `release` (given back) or `spend`. Default: `release` for GET, HEAD, OPTIONS,
    /// TRACE, PUT and DELETE, which can run again harmlessly; `spend` for the others.
    pub on_upstream_failure: Option<OnUpstreamFailure>,
    /// The payment dialects its 402 offers: any of `l402`, `mpp`, `x402`. Default: the
    /// top-level `dialects`.
    #[serde(default, deserialize_with = "dialects")]
    pub dialects: Option<Vec<Dialect>>,
    /// `free = { requests = N, per = "1h" }`: N requests per client address per window without
    /// paying, counted before any invoice. Default none.
    pub free: Option<QuotaConfig>,
    /// `rate_limit = { requests = N, per = "1s" }`: at most N requests per client address per
    /// window, paid or not (429 beyond). Default none.
    pub rate_limit: Option<QuotaConfig>,
    /// `session = { deposit_sats = 2000, idle_secs = 300 }`: prepaid sessions on a metered
    /// route (the MPP `session` intent, docs/metering.md). Default none.
    #[serde(default)]
    pub session: Option<SessionConfig>,
}

/// A metered route's prepaid sessions.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SessionConfig {
    /// The deposit that opens a session, and each top-up, in sats (at least 1).
    pub deposit_sats: u64,
    /// Seconds without a request after which the gateway closes a session and refunds its
    /// balance (at least 1). Default 300.
    #[serde(default = "default_idle_secs")]
    pub idle_secs: u64,
}

fn default_idle_secs() -> u64 {
    300
}

/// The longest window of a free tier or rate limit.
const MAX_QUOTA_WINDOW_SECS: u64 = 31 * 24 * 3600;

/// `{ requests = N, per = "1h" }`: N requests per window (whole seconds, 1 s to 31 days).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct QuotaConfig {
    /// Requests per window, at least 1.
    pub requests: u32,
    /// The window: `1s`, `1m`, `1h`, `1d`, …
    #[serde(deserialize_with = "window")]
    pub per: std::time::Duration,
}

impl QuotaConfig {
    /// The gateway's quota.
    pub fn quota(self) -> plannt_gateway::Quota {
        plannt_gateway::Quota {
            requests: self.requests,
            per: self.per,
        }
    }
}

fn window<'de, D: Deserializer<'de>>(deserializer: D) -> Result<std::time::Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    let per = humantime::parse_duration(text.trim()).map_err(|e| {
        serde::de::Error::custom(format!(
            "per {text:?} is not a duration such as \"1s\", \"1m\", \"1h\", \"1d\": {e}"
        ))
    })?;
    if per.subsec_nanos() != 0 || !(1..=MAX_QUOTA_WINDOW_SECS).contains(&per.as_secs()) {
        return Err(serde::de::Error::custom(format!(
            "per {text:?} must be whole seconds, from 1s to 31d"
        )));
    }
    Ok(per)
}

/// Reads a list of dialect names: at least one, each known, none twice, in the order given.
fn dialects<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<Dialect>>, D::Error> {
    let names = Vec::<String>::deserialize(deserializer)?;
    let mut out: Vec<Dialect> = Vec::new();
    for name in &names {
        let dialect: Dialect = name.parse().map_err(serde::de::Error::custom)?;
        if !out.contains(&dialect) {
            out.push(dialect);
        }
    }
    if out.is_empty() {
        return Err(serde::de::Error::custom(
            "dialects must name at least one of l402, mpp, x402",
        ));
    }
    Ok(Some(out))
}

fn method<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Method>, D::Error> {
    let text = String::deserialize(deserializer)?;
    Method::from_bytes(text.trim().to_ascii_uppercase().as_bytes())
        .map(Some)
        .map_err(|_| serde::de::Error::custom(format!("method {text:?} is not an HTTP method")))
}

fn upstream<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Url>, D::Error> {
    let text = String::deserialize(deserializer)?;
    let url: Url = text
        .parse()
        .map_err(|e| serde::de::Error::custom(format!("upstream {text:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(serde::de::Error::custom(format!(
            "upstream {text:?} must be an http:// or https:// URL"
        )));
    }
    Ok(Some(url))
}

/// Where spent tokens are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Store {
    /// In memory: forgotten on restart (tests and benchmarks).
    Memory,
    /// A SQLite file: the given one, or `spent.sqlite` under the data directory.
    Sqlite(Option<PathBuf>),
    /// A Redis shared by replicas, by its URL: `redis://` (one Redis), `redis+cluster://` (a
    /// cluster, by its seed nodes) or `redis+sentinel://` (the primary Sentinels name).
    Redis(String),
}

impl FromStr for Store {
    type Err = String;

    fn from_str(text: &str) -> Result<Store, String> {
        let text = text.trim();
        match text {
            "memory" => Ok(Store::Memory),
            "sqlite" | "sqlite:" => Ok(Store::Sqlite(None)),
            _ if text.starts_with("sqlite:") => Ok(Store::Sqlite(Some(PathBuf::from(&text[7..])))),
            _ if text.starts_with("redis") && text.contains("://") => {
                // Checked here, so that a bad URL fails at load with its key.
                RedisStore::topology(text).map_err(|e| e.to_string())?;
                Ok(Store::Redis(text.to_string()))
            }
            _ => Err(format!(
                "expected memory, sqlite, sqlite:PATH, redis://HOST:PORT, \
                 redis+cluster://HOST:PORT,HOST:PORT,… or \
                 redis+sentinel://HOST:PORT,HOST:PORT,…/PRIMARY, got {text:?}"
            )),
        }
    }
}

impl fmt::Display for Store {
    // A Redis URL may hold a password: only its scheme is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Store::Memory => f.write_str("memory"),
            Store::Sqlite(None) => f.write_str("sqlite"),
            Store::Sqlite(Some(path)) => write!(f, "sqlite:{}", path.display()),
            Store::Redis(url) => f.write_str(url.split("://").next().unwrap_or("redis")),
        }
    }
}

impl<'de> Deserialize<'de> for Store {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

fn sqlite_sync<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SqliteSync, D::Error> {
    match String::deserialize(deserializer)?.as_str() {
        "full" => Ok(SqliteSync::Full),
        "normal" => Ok(SqliteSync::Normal),
        other => Err(serde::de::Error::custom(format!(
            "sqlite_sync: expected full or normal, got {other:?}"
        ))),
    }
}

fn backend<'de, D: Deserializer<'de>>(deserializer: D) -> Result<BackendUri, D::Error> {
    String::deserialize(deserializer)?
        .parse()
        .map_err(|e: plannt_lightning::UriError| serde::de::Error::custom(e.to_string()))
}

/// The whole configuration. Field docs give each key's default.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `listen`, `PLANNT_LISTEN`: the address to serve on. Default `127.0.0.1:8402`.
    pub listen: SocketAddr,
    /// `lightning`, `PLANNT_LIGHTNING`: the backend URI. Default `dev`.
    #[serde(deserialize_with = "backend")]
    pub lightning: BackendUri,
    /// `store`, `PLANNT_STORE`: `sqlite:PATH`, `sqlite` (under the data directory), `memory`,
    /// `redis://HOST:PORT`, `redis+cluster://HOST:PORT,HOST:PORT,…` or
    /// `redis+sentinel://HOST:PORT,HOST:PORT,…/PRIMARY`. Default `sqlite`.
    pub store: Store,
    /// `sqlite_sync`, `PLANNT_SQLITE_SYNC`: with a SQLite store, how a commit is made durable
    /// before the answer goes: `full` (fsync every commit: a power cut loses nothing answered)
    /// or `normal` (written, fsynced at checkpoints: the gateway's own crash loses nothing, a
    /// power cut may lose the last commits). Default `full`.
    #[serde(deserialize_with = "sqlite_sync")]
    pub sqlite_sync: SqliteSync,
    /// `redis_wait_replicas`, `PLANNT_REDIS_WAIT_REPLICAS`: with a Redis store, how many
    /// replicas must hold each claim and commit (`WAIT`) before it counts; fewer in time make
    /// the gateway fail closed. Default 0: the primary's word is enough, and a failover may
    /// forget the last spent tokens.
    pub redis_wait_replicas: u32,
    /// `redis_wait_timeout_ms`, `PLANNT_REDIS_WAIT_TIMEOUT_MS`: how long Redis waits for those
    /// replicas, 1 to 1500 (under the store's 2 s bound on a command). Default 500.
    pub redis_wait_timeout_ms: u64,
    /// `root_key`, `PLANNT_ROOT_KEY`: one root key, 64 hex characters. Default: a key generated
    /// once into `root.key` (mode 0600) under the data directory.
    pub root_key: Option<String>,
    /// `root_keys`: several keys `{id, key}`, oldest first; the last mints.
    pub root_keys: Vec<KeyConfig>,
    /// `data_dir`, `PLANNT_DATA_DIR`: default `~/.local/share/plannt`.
    pub data_dir: Option<PathBuf>,
    /// `invoice_expiry_secs`: how long an invoice stays payable. Default 600.
    pub invoice_expiry_secs: u64,
    /// `token_lifetime_secs`: how long a token stays usable after its invoice expires. Default 3600.
    pub token_lifetime_secs: u64,
    /// `challenges_per_second`: per client address; 0 turns the limit off. Default 5.
    pub challenges_per_second: f64,
    /// `challenge_burst`: challenges a client may ask for at once. Default 20.
    pub challenge_burst: u32,
    /// `trusted_proxies`: reverse proxies (addresses or networks such as `10.0.0.0/8`) whose
    /// `X-Forwarded-For` names the client and whose `X-Forwarded-Proto` is passed on. Default none:
    /// the connecting address is the client.
    pub trusted_proxies: Vec<String>,
    /// `upstream_timeout_secs`: the longest an upstream may take to answer. Default 30.
    pub upstream_timeout_secs: u64,
    /// `max_body_bytes`: the largest request body accepted. Default 10 MiB.
    pub max_body_bytes: usize,
    /// `header_read_timeout_secs`: the longest a connection may take to send a request's
    /// headers, from when it opens or its previous answer ends (so also the longest it may sit
    /// idle between requests). Default 10.
    pub header_read_timeout_secs: u64,
    /// `max_connections`: connections open at once. Default: what the process's file-descriptor
    /// limit allows (two per connection), at most 10,000.
    pub max_connections: Option<usize>,
    /// `max_connections_per_address`: connections open at once from one client address (an
    /// IPv6 client by its /64); `trusted_proxies` are not limited. Default 256.
    pub max_connections_per_address: usize,
    /// `cors_origins`: origins allowed to read answers (`*` for any). Default `["*"]`.
    pub cors_origins: Vec<String>,
    /// `dev_starting_balance_sats`: test sats each new dev account starts with. Default 1,000,000.
    pub dev_starting_balance_sats: u64,
    /// `dev_allow_remote`: serve the dev network on a non-loopback address. Default false.
    pub dev_allow_remote: bool,
    /// `openai_base_url`: an OpenAI-compatible API for `/v1/generate`. Default none: not offered.
    pub openai_base_url: Option<String>,
    /// `openai_api_key`: its key. Default none.
    pub openai_api_key: Option<String>,
    /// `openai_model`: the model. Default `gpt-4o-mini`.
    pub openai_model: String,
    /// `routes`: the priced routes; when empty, the demo service.
    pub routes: Vec<RouteConfig>,
    /// `demo_routes`, `PLANNT_DEMO_ROUTES`: sell the demo service (`/v1/demo`, `/v1/data`,
    /// `/v1/generate`) through a real backend, one that is not `dev`, when no `routes` are
    /// given. Default false: such a gateway refuses to start rather than sell them unasked.
    pub demo_routes: bool,
    /// `dialects`, `PLANNT_DIALECTS`: the payment dialects every paid route's 402 offers, any
    /// of `l402`, `mpp`, `x402` (a route's own `dialects` overrides it), in the order its
    /// `WWW-Authenticate` values come. Default: `mpp`, `l402`, `x402`, those the backend
    /// supports (x402 needs a backend that looks up invoices; every built-in one does).
    #[serde(deserialize_with = "dialects")]
    pub dialects: Option<Vec<Dialect>>,
    /// `mpp_realm`, `PLANNT_MPP_REALM`: the `realm` of MPP challenges. Default `plannt`.
    pub mpp_realm: String,
    /// `keep_answer_bytes`, `PLANNT_KEEP_ANSWER_BYTES`: the largest answer body kept with its
    /// commit, sealed, for a retry with the same credential and request; 0 keeps none. At most
    /// 16 MiB. Default 65536.
    pub keep_answer_bytes: usize,
    /// `keep_answer_secs`, `PLANNT_KEEP_ANSWER_SECS`: how long a kept answer is given again
    /// (never past its token's expiry). Default 600.
    pub keep_answer_secs: u64,
    /// `keep_memory_bytes`, `PLANNT_KEEP_MEMORY_BYTES`: with the `memory` store, the most bytes
    /// of kept answers held; the oldest go first. Default 64 MiB.
    pub keep_memory_bytes: usize,
    /// `ledger_retention_days`, `PLANNT_LEDGER_RETENTION_DAYS`: how long the earnings ledger
    /// keeps its counts and payments, at least 1. Default 90.
    pub ledger_retention_days: u64,
    /// `admin_token_file`, `PLANNT_ADMIN_TOKEN_FILE`: a file holding the admin API's bearer
    /// token (at least 16 characters; surrounding whitespace ignored). Default none; with
    /// neither it nor `PLANNT_ADMIN_TOKEN` the admin API is off (404).
    pub admin_token_file: Option<PathBuf>,
    /// `admin_allow_remote`, `PLANNT_ADMIN_ALLOW_REMOTE`: serve the admin API and dashboard to
    /// clients that are not on loopback. Default false.
    pub admin_allow_remote: bool,
    /// The admin token from `PLANNT_ADMIN_TOKEN` (never from the file: a token belongs in its
    /// own file or in the environment).
    #[serde(skip)]
    pub admin_token: Option<AdminToken>,
}

/// The admin API's bearer token, never shown in a `Debug` or log line.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(pub zeroize::Zeroizing<String>);

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(…)")
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8402".parse().expect("a valid address"),
            lightning: "dev".parse().expect("`dev` is a backend URI"),
            store: Store::Sqlite(None),
            redis_wait_replicas: 0,
            redis_wait_timeout_ms: 500,
            sqlite_sync: SqliteSync::Full,
            root_key: None,
            root_keys: Vec::new(),
            data_dir: None,
            invoice_expiry_secs: 600,
            token_lifetime_secs: 3600,
            challenges_per_second: 5.0,
            challenge_burst: 20,
            trusted_proxies: Vec::new(),
            upstream_timeout_secs: 30,
            max_body_bytes: 10 * 1024 * 1024,
            header_read_timeout_secs: 10,
            max_connections: None,
            max_connections_per_address: 256,
            cors_origins: vec!["*".into()],
            dev_starting_balance_sats: plannt_lightning::dev::DEFAULT_STARTING_BALANCE_SATS,
            dev_allow_remote: false,
            openai_base_url: None,
            openai_api_key: None,
            openai_model: "gpt-4o-mini".into(),
            routes: Vec::new(),
            demo_routes: false,
            dialects: None,
            mpp_realm: "plannt".into(),
            keep_answer_bytes: 64 * 1024,
            keep_answer_secs: 600,
            keep_memory_bytes: 64 * 1024 * 1024,
            ledger_retention_days: 90,
            admin_token_file: None,
            admin_allow_remote: false,
            admin_token: None,
        }
    }
}

/// The largest `keep_answer_bytes`: 16 MiB.
pub const MAX_KEEP_ANSWER_BYTES: usize = 16 * 1024 * 1024;

#[derive(Clone, Copy)]
enum Kind {
    Text,
    /// Text that must parse as a backend URI.
    Backend,
    /// Text that must parse as a [`Store`].
    Store,
    Integer,
    Float,
    Bool,
    List,
}

/// Every key an environment variable can set, and its type.
const ENV_KEYS: &[(&str, Kind)] = &[
    ("listen", Kind::Text),
    ("lightning", Kind::Backend),
    ("store", Kind::Store),
    ("redis_wait_replicas", Kind::Integer),
    ("redis_wait_timeout_ms", Kind::Integer),
    ("sqlite_sync", Kind::Text),
    ("root_key", Kind::Text),
    ("data_dir", Kind::Text),
    ("invoice_expiry_secs", Kind::Integer),
    ("token_lifetime_secs", Kind::Integer),
    ("challenges_per_second", Kind::Float),
    ("challenge_burst", Kind::Integer),
    ("trusted_proxies", Kind::List),
    ("upstream_timeout_secs", Kind::Integer),
    ("max_body_bytes", Kind::Integer),
    ("header_read_timeout_secs", Kind::Integer),
    ("max_connections", Kind::Integer),
    ("max_connections_per_address", Kind::Integer),
    ("cors_origins", Kind::List),
    ("dev_starting_balance_sats", Kind::Integer),
    ("dev_allow_remote", Kind::Bool),
    ("openai_base_url", Kind::Text),
    ("openai_api_key", Kind::Text),
    ("openai_model", Kind::Text),
    ("demo_routes", Kind::Bool),
    ("dialects", Kind::List),
    ("mpp_realm", Kind::Text),
    ("keep_answer_bytes", Kind::Integer),
    ("keep_answer_secs", Kind::Integer),
    ("keep_memory_bytes", Kind::Integer),
    ("ledger_retention_days", Kind::Integer),
    ("admin_token_file", Kind::Text),
    ("admin_allow_remote", Kind::Bool),
];

impl Config {
    /// Reads `file` (if any), then the `PLANNT_*` variables of `env`, over the defaults.
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let (source, mut table) = match file {
            Some(path) => {
                let source = path.display().to_string();
                let text = std::fs::read_to_string(path)
                    .map_err(|e| error(&source, None, format!("cannot read it: {e}")))?;
                let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
                    error(&source, None, e.to_string().trim().to_string())
                })?;
                (source, table)
            }
            None => ("configuration".to_string(), toml::Table::new()),
        };
        for (key, kind) in ENV_KEYS {
            let var = format!("PLANNT_{}", key.to_ascii_uppercase());
            let Some(text) = env(&var) else { continue };
            let bad = |what: &str| error(&var, Some(key), format!("expected {what}, got {text:?}"));
            let value = match kind {
                Kind::Text => toml::Value::String(text.clone()),
                // Checked here, so that an error names the variable.
                Kind::Backend => {
                    let uri: Result<BackendUri, _> = text.parse();
                    uri.map_err(|e| error(&var, Some(key), e.to_string()))?;
                    toml::Value::String(text.clone())
                }
                Kind::Store => {
                    let store: Result<Store, _> = text.parse();
                    store.map_err(|e| error(&var, Some(key), e))?;
                    toml::Value::String(text.clone())
                }
                Kind::Integer => {
                    toml::Value::Integer(text.trim().parse().map_err(|_| bad("a whole number"))?)
                }
                Kind::Float => {
                    toml::Value::Float(text.trim().parse().map_err(|_| bad("a number"))?)
                }
                Kind::Bool => toml::Value::Boolean(match text.trim() {
                    "1" | "true" | "yes" => true,
                    "0" | "false" | "no" => false,
                    _ => return Err(bad("true or false")),
                }),
                Kind::List => toml::Value::Array(
                    text.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| toml::Value::String(s.to_string()))
                        .collect(),
                ),
            };
            table.insert((*key).to_string(), value);
        }
        let mut config: Config = Config::deserialize(table)
            .map_err(|e| error(&source, None, e.to_string().trim().to_string()))?;
        config.admin_token = env("PLANNT_ADMIN_TOKEN")
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .map(|t| AdminToken(zeroize::Zeroizing::new(t)));
        config.check(&source)?;
        Ok(config)
    }

    /// Checks what the types alone do not: ranges, and settings that must agree. `source`
    /// names where the settings came from, for the error. [`Config::load`] calls it; call it
    /// again after changing a loaded configuration (from command-line flags, say).
    pub fn check(&self, source: &str) -> Result<(), ConfigError> {
        if self.invoice_expiry_secs == 0 {
            return Err(error(
                source,
                Some("invoice_expiry_secs"),
                "must be at least 1",
            ));
        }
        if self.ledger_retention_days == 0 {
            return Err(error(
                source,
                Some("ledger_retention_days"),
                "must be at least 1",
            ));
        }
        if self.token_lifetime_secs == 0 {
            return Err(error(
                source,
                Some("token_lifetime_secs"),
                "must be at least 1",
            ));
        }
        if !(self.challenges_per_second >= 0.0 && self.challenges_per_second.is_finite()) {
            return Err(error(
                source,
                Some("challenges_per_second"),
                "must be 0 or more",
            ));
        }
        if let Err(e) = plannt_gateway::TrustedProxies::parse(&self.trusted_proxies) {
            return Err(error(source, Some("trusted_proxies"), e));
        }
        // A Redis claim lapses after PENDING_TTL: a request still in flight then must not lose it.
        let lapse = plannt_gateway::store::PENDING_TTL.as_secs();
        if matches!(self.store, Store::Redis(_)) && self.upstream_timeout_secs + 30 > lapse {
            return Err(error(
                source,
                Some("upstream_timeout_secs"),
                format!(
                    "with a Redis store it must be at most {} (a claim lapses after {lapse} s)",
                    lapse - 30
                ),
            ));
        }
        if self.sqlite_sync != SqliteSync::Full && !matches!(self.store, Store::Sqlite(_)) {
            return Err(error(
                source,
                Some("sqlite_sync"),
                format!("only the SQLite store has it; the store is {}", self.store),
            ));
        }
        if self.redis_wait_replicas > 0 && !matches!(self.store, Store::Redis(_)) {
            return Err(error(
                source,
                Some("redis_wait_replicas"),
                format!(
                    "only a Redis store has replicas to wait for; the store is {}",
                    self.store
                ),
            ));
        }
        if !(1..=1500).contains(&self.redis_wait_timeout_ms) {
            return Err(error(
                source,
                Some("redis_wait_timeout_ms"),
                "must be 1 to 1500 (a Redis command may take at most 2 s, the wait included)",
            ));
        }
        if self.mpp_realm.is_empty()
            || self.mpp_realm.len() > 256
            || self.mpp_realm.chars().any(|c| c.is_control() || c == '|')
        {
            return Err(error(
                source,
                Some("mpp_realm"),
                "must be 1 to 256 characters, none a control character or |",
            ));
        }
        if self.upstream_timeout_secs == 0 {
            return Err(error(
                source,
                Some("upstream_timeout_secs"),
                "must be at least 1",
            ));
        }
        for (key, value) in [
            ("header_read_timeout_secs", self.header_read_timeout_secs),
            (
                "max_connections_per_address",
                self.max_connections_per_address as u64,
            ),
            (
                "max_connections",
                self.max_connections.map_or(1, |n| n as u64),
            ),
        ] {
            if value == 0 {
                return Err(error(source, Some(key), "must be at least 1"));
            }
        }
        if self.keep_answer_bytes > MAX_KEEP_ANSWER_BYTES {
            return Err(error(
                source,
                Some("keep_answer_bytes"),
                format!(
                    "must be at most {MAX_KEEP_ANSWER_BYTES} (each answer up to it is held in memory until it is complete)"
                ),
            ));
        }
        if self.keep_answer_bytes > 0 && self.keep_answer_secs == 0 {
            return Err(error(
                source,
                Some("keep_answer_secs"),
                "must be at least 1 (or set keep_answer_bytes = 0 to keep no answers)",
            ));
        }
        if self.root_key.is_some() && !self.root_keys.is_empty() {
            return Err(error(
                source,
                Some("root_key"),
                "give root_key or root_keys, not both",
            ));
        }
        for (i, route) in self.routes.iter().enumerate() {
            let key = format!("routes[{i}]");
            match (&route.upstream, &route.handler) {
                (Some(_), Some(_)) => {
                    return Err(error(
                        source,
                        Some(&key),
                        "give upstream or handler, not both",
                    ));
                }
                (None, None) => {
                    return Err(error(
                        source,
                        Some(&key),
                        "needs an upstream URL or a handler",
                    ));
                }
                _ => {}
            }
            for (name, quota) in [("free", route.free), ("rate_limit", route.rate_limit)] {
                if quota.is_some_and(|q| q.requests == 0) {
                    return Err(error(
                        source,
                        Some(&format!("{key}.{name}.requests")),
                        "must be at least 1 (leave the setting out for none)",
                    ));
                }
            }
            if route.free.is_some() && route.price_sats.is_none() {
                return Err(error(
                    source,
                    Some(&format!("{key}.free")),
                    "a route without a price is free already; give it a price_sats or drop free",
                ));
            }
            if let Some(session) = route.session {
                let why = if route.price.is_none() {
                    Some(
                        "sessions are debited by metered usage: give the route a price rule (price = { per = \"openai-tokens\", … }) or drop session",
                    )
                } else if session.deposit_sats == 0 {
                    Some("deposit_sats must be at least 1")
                } else if session.idle_secs == 0 {
                    Some("idle_secs must be at least 1")
                } else {
                    None
                };
                if let Some(why) = why {
                    return Err(error(source, Some(&format!("{key}.session")), why));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| {
            pairs
                .iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.clone())
        }
    }

    fn file(text: &str) -> tempfile_path::Path {
        tempfile_path::Path::new(text)
    }

    mod tempfile_path {
        pub struct Path(pub std::path::PathBuf);
        impl Path {
            pub fn new(text: &str) -> Self {
                let path = std::env::temp_dir().join(format!(
                    "plannt-config-{}-{}.toml",
                    std::process::id(),
                    text.len() ^ text.bytes().map(usize::from).sum::<usize>()
                ));
                std::fs::write(&path, text).unwrap();
                Path(path)
            }
        }
        impl Drop for Path {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    #[test]
    fn defaults_without_a_file() {
        let config = Config::load(None, env(&[])).unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.listen.to_string(), "127.0.0.1:8402");
    }

    #[test]
    fn dialects_are_read_once_globally_and_per_route() {
        let f = file(
            "dialects = [\"L402\", \"mpp\", \"l402\"]\n[[routes]]\npath = \"/x\"\nhandler = \"demo\"\ndialects = [\"x402\"]\n",
        );
        let config = Config::load(Some(&f.0), env(&[])).unwrap();
        assert_eq!(config.dialects, Some(vec![Dialect::L402, Dialect::Mpp]));
        assert_eq!(config.routes[0].dialects, Some(vec![Dialect::X402]));
        let from_env = Config::load(None, env(&[("PLANNT_DIALECTS", "mpp, x402")])).unwrap();
        assert_eq!(from_env.dialects, Some(vec![Dialect::Mpp, Dialect::X402]));
        assert_eq!(
            Config::default().dialects,
            None,
            "default: all the backend supports"
        );
        for (text, says) in [
            (
                "dialects = [\"bolt12\"]\n",
                "unknown payment dialect \"bolt12\"",
            ),
            ("dialects = []\n", "at least one"),
            ("mpp_realm = \"a|b\"\n", "mpp_realm"),
        ] {
            let f = file(text);
            let error = Config::load(Some(&f.0), env(&[])).unwrap_err().to_string();
            assert!(error.contains(says), "{text}: {error}");
        }
    }

    #[test]
    fn free_tiers_and_rate_limits_are_read_and_checked() {
        let f = file(
            "[[routes]]\npath = \"/x\"\nprice_sats = 5\nhandler = \"demo\"\nfree = { requests = 10, per = \"1h\" }\nrate_limit = { requests = 2, per = \"1s\" }\n",
        );
        let config = Config::load(Some(&f.0), env(&[])).unwrap();
        let route = &config.routes[0];
        let free = route.free.unwrap().quota();
        assert_eq!((free.requests, free.per_secs()), (10, 3600));
        let limit = route.rate_limit.unwrap().quota();
        assert_eq!((limit.requests, limit.per_secs()), (2, 1));
        for (text, key, says) in [
            (
                "free = { requests = 0, per = \"1h\" }",
                "routes[0].free.requests",
                "at least 1",
            ),
            (
                "rate_limit = { requests = 0, per = \"1s\" }",
                "routes[0].rate_limit.requests",
                "at least 1",
            ),
            (
                "free = { requests = 1, per = \"soon\" }",
                "routes.free",
                "not a duration",
            ),
            (
                "free = { requests = 1, per = \"500ms\" }",
                "routes.free",
                "whole seconds",
            ),
            (
                "free = { requests = 1, per = \"40d\" }",
                "routes.free",
                "31d",
            ),
            ("free = { requests = 1 }", "routes.free", "per"),
        ] {
            let f = file(&format!(
                "[[routes]]\npath = \"/x\"\nprice_sats = 5\nhandler = \"demo\"\n{text}\n"
            ));
            let e = Config::load(Some(&f.0), env(&[])).unwrap_err();
            assert!(e.to_string().contains(says), "{text}: {e}");
            assert!(e.to_string().contains(key), "{text}: {e}");
        }
        let f = file(
            "[[routes]]\npath = \"/x\"\nhandler = \"demo\"\nfree = { requests = 1, per = \"1h\" }\n",
        );
        let e = Config::load(Some(&f.0), env(&[])).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("routes[0].free"), "{e}");
    }

    #[test]
    fn environment_overrides_the_file() {
        let f = file("listen = \"127.0.0.1:9000\"\nchallenge_burst = 3\n");
        let config = Config::load(
            Some(&f.0),
            env(&[
                ("PLANNT_LISTEN", "127.0.0.1:9001"),
                ("PLANNT_CORS_ORIGINS", "https://a, https://b"),
            ]),
        )
        .unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:9001");
        assert_eq!(config.challenge_burst, 3);
        assert_eq!(config.cors_origins, ["https://a", "https://b"]);
    }

    #[test]
    fn values_are_typed_when_read_and_bad_ones_say_what() {
        let f = file(
            "store = \"sqlite:/tmp/x.sqlite\"\nlightning = \"dev?account=a\"\n[[routes]]\npath = \"/x\"\nmethod = \"post\"\nmatch = \"prefix\"\nprice_sats = 5\nupstream = \"http://127.0.0.1:9000/base\"\non_upstream_failure = \"release\"\n[[routes]]\npath = \"/d\"\nhandler = \"demo\"\n",
        );
        let config = Config::load(Some(&f.0), env(&[])).unwrap();
        assert_eq!(config.store, Store::Sqlite(Some("/tmp/x.sqlite".into())));
        assert_eq!(config.lightning.backend(), "dev");
        let [x, d] = &config.routes[..] else {
            panic!("two routes")
        };
        assert_eq!(x.method, Some(Method::POST));
        assert_eq!(x.matching, MatchKind::Prefix);
        assert_eq!(x.upstream.as_ref().unwrap().path(), "/base");
        assert_eq!(x.on_upstream_failure, Some(OnUpstreamFailure::Release));
        assert_eq!(
            (d.handler, d.matching),
            (Some(Handler::Demo), MatchKind::Exact)
        );
        let env_store = Config::load(None, env(&[("PLANNT_STORE", "redis://127.0.0.1:1")]));
        assert_eq!(
            env_store.unwrap().store,
            Store::Redis("redis://127.0.0.1:1".into())
        );

        for (text, says) in [
            ("store = \"mongo\"\n", "expected memory, sqlite"),
            ("lightning = \"lnd+http://x\"\n", "lightning"),
            (
                "[[routes]]\npath = \"/x\"\nmethod = \"G T\"\nhandler = \"demo\"\n",
                "not an HTTP method",
            ),
            ("[[routes]]\npath = \"/x\"\nhandler = \"dmeo\"\n", "dmeo"),
            (
                "[[routes]]\npath = \"/x\"\nmatch = \"regex\"\nhandler = \"demo\"\n",
                "regex",
            ),
            (
                "[[routes]]\npath = \"/x\"\nupstream = \"ftp://h\"\n",
                "http:// or https://",
            ),
            (
                "[[routes]]\npath = \"/x\"\nhandler = \"demo\"\non_upstream_failure = \"maybe\"\n",
                "maybe",
            ),
        ] {
            let f = file(text);
            let e = Config::load(Some(&f.0), env(&[])).unwrap_err().to_string();
            assert!(e.contains(says), "{text:?}: {e}");
        }
        let e = Config::load(None, env(&[("PLANNT_STORE", "mongo")])).unwrap_err();
        assert_eq!(e.source, "PLANNT_STORE");
    }

    #[test]
    fn sqlite_sync_is_full_unless_set_and_only_for_sqlite() {
        assert_eq!(Config::default().sqlite_sync, SqliteSync::Full);
        let normal = Config::load(None, env(&[("PLANNT_SQLITE_SYNC", "normal")])).unwrap();
        assert_eq!(normal.sqlite_sync, SqliteSync::Normal);
        let e = Config::load(None, env(&[("PLANNT_SQLITE_SYNC", "off")])).unwrap_err();
        assert!(e.to_string().contains("expected full or normal"), "{e}");
        let e = Config::load(
            None,
            env(&[("PLANNT_SQLITE_SYNC", "normal"), ("PLANNT_STORE", "memory")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("only the SQLite store"), "{e}");
    }

    #[test]
    fn a_session_route_is_accepted_on_every_store_redis_too() {
        let route = "[[routes]]\nid = \"chat\"\nmethod = \"POST\"\npath = \"/v1/chat/completions\"\nupstream = \"http://127.0.0.1:9000\"\nprice = { per = \"openai-tokens\", models = { \"gpt-4o\" = { input_per_1k = 2, output_per_1k = 8 } } }\nsession = { deposit_sats = 300, idle_secs = 300 }\n";
        for store in [
            "memory",
            "sqlite",
            "redis://127.0.0.1:6379",
            "redis+cluster://10.0.0.1:7000,10.0.0.2:7000",
            "redis+sentinel://10.0.0.1:26379/plannt",
        ] {
            let f = file(&format!("store = \"{store}\"\n{route}"));
            let config = Config::load(Some(&f.0), env(&[]))
                .unwrap_or_else(|e| panic!("a session route on {store}: {e}"));
            assert!(config.routes[0].session.is_some());
        }
        // What it still checks.
        let f = file(&format!(
            "store = \"redis://127.0.0.1:6379\"\n{}",
            route.replace("idle_secs = 300", "idle_secs = 0")
        ));
        let e = Config::load(Some(&f.0), env(&[])).unwrap_err();
        assert!(
            e.to_string().contains("idle_secs must be at least 1"),
            "{e}"
        );
    }

    #[test]
    fn redis_cluster_sentinel_and_replica_waits_are_read_and_checked() {
        let f = file(
            "store = \"redis+sentinel://:pw@10.0.0.1:26379,10.0.0.2:26379/plannt\"\nredis_wait_replicas = 1\nredis_wait_timeout_ms = 250\n",
        );
        let config = Config::load(Some(&f.0), env(&[])).unwrap();
        assert_eq!(
            (config.redis_wait_replicas, config.redis_wait_timeout_ms),
            (1, 250)
        );
        // Only the scheme is shown: the URL may hold a password.
        assert_eq!(config.store.to_string(), "redis+sentinel");
        let cluster = Config::load(
            None,
            env(&[
                (
                    "PLANNT_STORE",
                    "redis+cluster://10.0.0.1:7000,10.0.0.2:7000",
                ),
                ("PLANNT_REDIS_WAIT_REPLICAS", "2"),
            ]),
        )
        .unwrap();
        assert_eq!(cluster.redis_wait_replicas, 2);
        assert_eq!(Config::default().redis_wait_replicas, 0);

        for (vars, key, says) in [
            (
                &[("PLANNT_STORE", "redis+sentinel://10.0.0.1:26379")][..],
                "store",
                "no primary name",
            ),
            (
                &[("PLANNT_STORE", "redis+cluster://10.0.0.1")][..],
                "store",
                "host:port",
            ),
            (
                &[("PLANNT_REDIS_WAIT_REPLICAS", "1")][..],
                "redis_wait_replicas",
                "only a Redis store",
            ),
            (
                &[
                    ("PLANNT_STORE", "redis://127.0.0.1:6379"),
                    ("PLANNT_REDIS_WAIT_TIMEOUT_MS", "5000"),
                ][..],
                "redis_wait_timeout_ms",
                "1 to 1500",
            ),
        ] {
            let e = Config::load(None, env(vars)).unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{e}");
            assert!(e.to_string().contains(says), "{e}");
        }
        assert!(
            !Config::load(
                None,
                env(&[("PLANNT_STORE", "redis+sentinel://:hunter2@h:1")])
            )
            .unwrap_err()
            .to_string()
            .contains("hunter2")
        );
    }

    #[test]
    fn errors_name_the_source_and_key() {
        let f = file("listen = 5\n");
        let e = Config::load(Some(&f.0), env(&[])).unwrap_err();
        assert!(
            e.source.ends_with(".toml") && e.to_string().contains("listen"),
            "{e}"
        );
        let f = file("lisen = \"x\"\n");
        let e = Config::load(Some(&f.0), env(&[])).unwrap_err();
        assert!(e.to_string().contains("lisen"), "{e}");
        let e = Config::load(None, env(&[("PLANNT_CHALLENGE_BURST", "lots")])).unwrap_err();
        assert_eq!(e.source, "PLANNT_CHALLENGE_BURST");
        assert_eq!(e.key.as_deref(), Some("challenge_burst"));
        let e = Config::load(
            None,
            env(&[
                ("PLANNT_STORE", "redis://127.0.0.1:6379"),
                ("PLANNT_UPSTREAM_TIMEOUT_SECS", "600"),
            ]),
        )
        .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("upstream_timeout_secs"));
        let e = Config::load(None, env(&[("PLANNT_INVOICE_EXPIRY_SECS", "0")])).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("invoice_expiry_secs"));
        let f = file("[[routes]]\npath = \"/x\"\nprice_sats = 1\n");
        let e = Config::load(Some(&f.0), env(&[])).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("routes[0]"));
        let e = Config::load(Some(Path::new("/nonexistent/plannt.toml")), env(&[])).unwrap_err();
        assert!(e.message.contains("cannot read"));
    }
}
