//! The user's settings: `~/.config/plannt/config.toml`, each key overridable by a `PLANNT_*`
//! variable (and by flags, in the CLI). The defaults are safe for a new user: a small cap per
//! request and a small daily budget.
//!
//! ```toml
//! wallet = "lnbits+https://lnbits.example?key=…"   # PLANNT_WALLET
//! max_sats_per_request = 500                        # PLANNT_MAX_SATS_PER_REQUEST
//! budget_hourly_sats = 2000                         # PLANNT_BUDGET_HOURLY_SATS ("none": no limit)
//! budget_daily_sats = 5000                          # PLANNT_BUDGET_DAILY_SATS
//! budget_total_sats = "none"                        # PLANNT_BUDGET_TOTAL_SATS
//! max_fee_sats = 10                                 # PLANNT_MAX_FEE_SATS
//! allowed_hosts = ["api.example.com", "*.plannt.com"]   # PLANNT_ALLOWED_HOSTS (comma-separated)
//! confirm_above_sats = 100                          # PLANNT_CONFIRM_ABOVE_SATS (MCP: ask a human)
//! allow_private_networks = false                    # PLANNT_ALLOW_PRIVATE_NETWORKS (default: false
//!                                                   #   for plannt mcp, true for plannt get)
//! allow_insecure_http = false                       # PLANNT_ALLOW_INSECURE_HTTP
//! connect_timeout_secs = 10                         # PLANNT_CONNECT_TIMEOUT_SECS
//! max_time_secs = 120                               # PLANNT_MAX_TIME_SECS
//! pay_dialects = ["l402", "mpp", "x402"]            # PLANNT_PAY_DIALECTS (comma-separated)
//! session_deposit_sats = { "api.example.com" = 500, "*.plannt.com" = 200 }
//!                                                   # PLANNT_SESSION_DEPOSIT_SATS
//!                                                   #   ("api.example.com=500,*.plannt.com=200")
//! ```
//!
//! `allowed_hosts` and `allow_private_networks` bind every request, paid or free; the wallet's
//! own API is never reachable, whatever the settings. `allow_insecure_http` lets a challenge that
//! came over plain `http` from a host that is not loopback be paid. `connect_timeout_secs` and
//! `max_time_secs` bound a request as curl's `--connect-timeout` and `--max-time` do (seconds,
//! fractions allowed): the connection to the server, and the whole request, its payment and
//! its answer included. `pay_dialects` lists the payment dialects the client may pay, in the order
//! it prefers them when a 402 offers several; one left out is never paid.
//! `session_deposit_sats` is the most a prepaid session with a host may hold, its deposit and
//! every top-up together: a table of host patterns (as `allowed_hosts`, `*` for every host) to
//! sats, or one number for every host. A host it does not name, or names with 0, never has a
//! session opened (the default: none at all).

use std::path::{Path, PathBuf};
use std::time::Duration;

use plannt_l402::Dialect;

use crate::policy::{Budget, Policy};

/// How long a request may take, as curl's `--connect-timeout` and `--max-time`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// To connect to the server (TCP, and the TLS handshake).
    pub connect: Duration,
    /// The whole request: every exchange with the server, the payment, and reading the answer.
    /// A payment already sent is not abandoned when it runs out: it stays pending in the ledger,
    /// and is looked up by the next run, never paid twice.
    pub max_time: Duration,
}

impl Timeouts {
    /// The connect timeout when none is set: 10 s, time enough for any reachable server.
    pub const DEFAULT_CONNECT: Duration = Duration::from_secs(10);
    /// The whole request when no limit is set: 120 s, beyond a Lightning payment's own 90 s.
    pub const DEFAULT_MAX_TIME: Duration = Duration::from_secs(120);
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Self::DEFAULT_CONNECT,
            max_time: Self::DEFAULT_MAX_TIME,
        }
    }
}

/// The most seconds a timeout may be set to (about 136 years): beyond it, a typo.
const MAX_TIMEOUT_SECS: f64 = u32::MAX as f64;

/// A number of seconds as a timeout: more than 0, fractions allowed (`0.5`).
pub fn timeout_secs(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    seconds(secs).ok_or_else(|| format!("{text:?}: expected more than 0 seconds"))
}

fn seconds(secs: f64) -> Option<Duration> {
    (secs.is_finite() && secs > 0.0 && secs <= MAX_TIMEOUT_SECS)
        .then(|| Duration::from_secs_f64(secs))
}

/// The wallet used when none is configured: the dev network of a local `plannt serve`.
pub const DEFAULT_WALLET: &str = "dev+http://127.0.0.1:8402";

/// The user's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The wallet URI.
    pub wallet: String,
    /// The spending policy.
    pub policy: Policy,
    /// Above this many sats, the MCP server asks a human first.
    pub confirm_above_sats: Option<u64>,
    /// Whether requests may reach loopback, private and link-local addresses, when set; each
    /// command has its own default ([`Settings::policy_for`]).
    pub allow_private_networks: Option<bool>,
    /// How long a request may take.
    pub timeouts: Timeouts,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            wallet: DEFAULT_WALLET.into(),
            policy: Policy {
                budget: Budget {
                    per_request_sats: 500,
                    hourly_sats: Some(2_000),
                    daily_sats: Some(5_000),
                    total_sats: None,
                },
                max_fee_sats: 10,
                allowed_hosts: Vec::new(),
                allow_private_networks: false,
                allow_insecure_http: false,
                dialects: Dialect::ALL.to_vec(),
                session_deposits: Vec::new(),
            },
            confirm_above_sats: Some(100),
            allow_private_networks: None,
            timeouts: Timeouts::default(),
        }
    }
}

impl Settings {
    /// The policy for a command whose default for private addresses is
    /// `private_networks_by_default`: `plannt get` (a person typed the URL) allows them,
    /// `plannt mcp` (an agent chose it) does not. `allow_private_networks`, when set, decides.
    pub fn policy_for(&self, private_networks_by_default: bool) -> Policy {
        Policy {
            allow_private_networks: self
                .allow_private_networks
                .unwrap_or(private_networks_by_default),
            ..self.policy.clone()
        }
    }
}

/// A bad setting: where, which key, what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {key}: {message}")]
pub struct SettingsError {
    /// The file or variable.
    pub origin: String,
    /// The key.
    pub key: String,
    /// What was expected.
    pub message: String,
}

/// `~/.config/plannt/config.toml`, or under `$XDG_CONFIG_HOME`, or `$PLANNT_CONFIG_DIR`.
pub fn default_path(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(dir) = env("PLANNT_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("config.toml");
    }
    if let Some(dir) = env("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("plannt/config.toml");
    }
    let home = env("HOME").unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".config/plannt/config.toml")
}

const KEYS: [&str; 14] = [
    "wallet",
    "max_sats_per_request",
    "budget_hourly_sats",
    "budget_daily_sats",
    "budget_total_sats",
    "max_fee_sats",
    "allowed_hosts",
    "confirm_above_sats",
    "allow_private_networks",
    "allow_insecure_http",
    "connect_timeout_secs",
    "max_time_secs",
    "pay_dialects",
    "session_deposit_sats",
];

impl Settings {
    /// Reads `path` (a missing file is fine), then the environment, over the defaults.
    pub fn load(
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, SettingsError> {
        let source = path.display().to_string();
        let table: toml::Table = match std::fs::read_to_string(path) {
            Ok(text) => text.parse().map_err(|e: toml::de::Error| SettingsError {
                origin: source.clone(),
                key: "(syntax)".into(),
                message: e.message().to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => toml::Table::new(),
            Err(e) => {
                return Err(SettingsError {
                    origin: source,
                    key: "(file)".into(),
                    message: format!("cannot read it: {e}"),
                });
            }
        };
        for key in table.keys() {
            if !KEYS.contains(&key.as_str()) {
                return Err(SettingsError {
                    origin: source,
                    key: key.clone(),
                    message: format!("unknown key; expected one of {}", KEYS.join(", ")),
                });
            }
        }
        let mut settings = Settings::default();
        for key in KEYS {
            let var = format!("PLANNT_{}", key.to_ascii_uppercase());
            let (from, value) = match env(&var) {
                Some(text) => (var.clone(), Value::Env(text)),
                None => match table.get(key) {
                    Some(v) => (source.clone(), Value::Toml(v.clone())),
                    None => continue,
                },
            };
            let bad = |message: &str| SettingsError {
                origin: from.clone(),
                key: key.to_string(),
                message: message.to_string(),
            };
            match key {
                "wallet" => {
                    settings.wallet = value
                        .text()
                        .ok_or_else(|| bad("expected a backend URI string"))?
                }
                "allowed_hosts" => {
                    settings.policy.allowed_hosts = value
                        .list()
                        .ok_or_else(|| bad("expected a list of host names"))?
                }
                "pay_dialects" => {
                    settings.policy.dialects = value
                        .list()
                        .and_then(|names| dialects(&names))
                        .ok_or_else(|| {
                            bad("expected a list of one or more of \"l402\", \"mpp\", \"x402\"")
                        })?
                }
                "session_deposit_sats" => {
                    settings.policy.session_deposits = value.host_sats().ok_or_else(|| {
                        bad("expected a number of sats, or host patterns to sats (\"api.example.com\" = 500)")
                    })?
                }
                "allow_private_networks" => {
                    settings.allow_private_networks =
                        Some(value.flag().ok_or_else(|| bad("expected true or false"))?)
                }
                "allow_insecure_http" => {
                    settings.policy.allow_insecure_http =
                        value.flag().ok_or_else(|| bad("expected true or false"))?
                }
                "connect_timeout_secs" | "max_time_secs" => {
                    let timeout = value
                        .seconds()
                        .ok_or_else(|| bad("expected a number of seconds above 0"))?;
                    match key {
                        "connect_timeout_secs" => settings.timeouts.connect = timeout,
                        _ => settings.timeouts.max_time = timeout,
                    }
                }
                _ => {
                    let limit = value
                        .limit()
                        .ok_or_else(|| bad("expected a number of sats, or \"none\""))?;
                    match key {
                        "max_sats_per_request" => {
                            settings.policy.budget.per_request_sats = limit.unwrap_or(u64::MAX)
                        }
                        "budget_hourly_sats" => settings.policy.budget.hourly_sats = limit,
                        "budget_daily_sats" => settings.policy.budget.daily_sats = limit,
                        "budget_total_sats" => settings.policy.budget.total_sats = limit,
                        "max_fee_sats" => settings.policy.max_fee_sats = limit.unwrap_or(u64::MAX),
                        "confirm_above_sats" => settings.confirm_above_sats = limit,
                        _ => unreachable!("every key is handled"),
                    }
                }
            }
        }
        Ok(settings)
    }
}

/// Dialect names, each once, in their order; `None` if one is no dialect or there are none.
fn dialects(names: &[String]) -> Option<Vec<Dialect>> {
    let mut out = Vec::new();
    for name in names {
        let dialect: Dialect = name.parse().ok()?;
        if !out.contains(&dialect) {
            out.push(dialect);
        }
    }
    (!out.is_empty()).then_some(out)
}

enum Value {
    Env(String),
    Toml(toml::Value),
}

impl Value {
    fn text(&self) -> Option<String> {
        match self {
            Value::Env(t) => Some(t.clone()),
            Value::Toml(toml::Value::String(t)) => Some(t.clone()),
            Value::Toml(_) => None,
        }
    }

    fn list(&self) -> Option<Vec<String>> {
        match self {
            Value::Env(t) => Some(
                t.split(',')
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .map(str::to_string)
                    .collect(),
            ),
            Value::Toml(toml::Value::Array(items)) => items
                .iter()
                .map(|i| i.as_str().map(str::to_string))
                .collect(),
            Value::Toml(_) => None,
        }
    }

    /// Host patterns to sats: a table (`{ "a.example" = 500 }`), `host=sats` pairs separated by
    /// commas in the environment, or one number for every host (`*`).
    fn host_sats(&self) -> Option<Vec<(String, u64)>> {
        match self {
            Value::Env(t) => {
                if let Ok(sats) = t.trim().parse::<u64>() {
                    return Some(vec![("*".into(), sats)]);
                }
                t.split(',')
                    .map(str::trim)
                    .filter(|pair| !pair.is_empty())
                    .map(|pair| {
                        let (host, sats) = pair.split_once('=')?;
                        let host = host.trim();
                        (!host.is_empty())
                            .then(|| Some((host.to_string(), sats.trim().parse().ok()?)))?
                    })
                    .collect()
            }
            Value::Toml(toml::Value::Integer(n)) => {
                Some(vec![("*".into(), u64::try_from(*n).ok()?)])
            }
            Value::Toml(toml::Value::Table(table)) => table
                .iter()
                .map(|(host, sats)| {
                    let sats = u64::try_from(sats.as_integer()?).ok()?;
                    (!host.trim().is_empty()).then(|| (host.trim().to_string(), sats))
                })
                .collect(),
            Value::Toml(_) => None,
        }
    }

    /// `true` or `false` (also `1`/`0`, `yes`/`no` in the environment).
    fn flag(&self) -> Option<bool> {
        match self {
            Value::Env(t) => match t.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Some(true),
                "false" | "0" | "no" => Some(false),
                _ => None,
            },
            Value::Toml(toml::Value::Boolean(b)) => Some(*b),
            Value::Toml(_) => None,
        }
    }

    /// A timeout: seconds above 0, fractions allowed.
    fn seconds(&self) -> Option<Duration> {
        match self {
            Value::Env(t) | Value::Toml(toml::Value::String(t)) => timeout_secs(t).ok(),
            Value::Toml(toml::Value::Integer(n)) => seconds(*n as f64),
            Value::Toml(toml::Value::Float(f)) => seconds(*f),
            Value::Toml(_) => None,
        }
    }

    /// `Some(Some(n))`, or `Some(None)` for "none".
    fn limit(&self) -> Option<Option<u64>> {
        match self {
            Value::Env(t) | Value::Toml(toml::Value::String(t))
                if t.trim().eq_ignore_ascii_case("none") =>
            {
                Some(None)
            }
            Value::Env(t) => t.trim().parse().ok().map(Some),
            Value::Toml(toml::Value::Integer(n)) => u64::try_from(*n).ok().map(Some),
            Value::Toml(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn defaults_are_small() {
        let s = Settings::load(Path::new("/nonexistent/config.toml"), &env(&[])).unwrap();
        assert_eq!(s, Settings::default());
        assert!(s.policy.budget.per_request_sats <= 1_000);
        assert!(s.policy.budget.daily_sats.is_some());
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "wallet = \"dev\"\nbudget_daily_sats = 7\nallowed_hosts = [\"a.example\"]\nbudget_total_sats = \"none\"\n").unwrap();
        let s = Settings::load(
            &path,
            &env(&[
                ("PLANNT_BUDGET_DAILY_SATS", "9"),
                ("PLANNT_MAX_FEE_SATS", "none"),
            ]),
        )
        .unwrap();
        assert_eq!(s.wallet, "dev");
        assert_eq!(s.policy.budget.daily_sats, Some(9));
        assert_eq!(s.policy.budget.total_sats, None);
        assert_eq!(s.policy.max_fee_sats, u64::MAX);
        assert_eq!(s.policy.allowed_hosts, ["a.example"]);
    }

    #[test]
    fn private_networks_default_per_command_unless_set() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let s = Settings::load(&path, &env(&[])).unwrap();
        assert_eq!(s.allow_private_networks, None);
        assert!(s.policy_for(true).allow_private_networks);
        assert!(!s.policy_for(false).allow_private_networks);
        assert!(!s.policy.allow_insecure_http);

        std::fs::write(
            &path,
            "allow_private_networks = false\nallow_insecure_http = true\n",
        )
        .unwrap();
        let s = Settings::load(&path, &env(&[])).unwrap();
        assert!(!s.policy_for(true).allow_private_networks);
        assert!(s.policy_for(true).allow_insecure_http);
        let s = Settings::load(&path, &env(&[("PLANNT_ALLOW_PRIVATE_NETWORKS", "true")])).unwrap();
        assert!(s.policy_for(false).allow_private_networks);
        let e =
            Settings::load(&path, &env(&[("PLANNT_ALLOW_INSECURE_HTTP", "maybe")])).unwrap_err();
        assert_eq!(e.key, "allow_insecure_http");
    }

    #[test]
    fn timeouts_default_to_what_suits_an_agent_and_take_fractions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let s = Settings::load(&path, &env(&[])).unwrap();
        assert_eq!(s.timeouts.connect, Duration::from_secs(10));
        assert_eq!(s.timeouts.max_time, Duration::from_secs(120));
        std::fs::write(&path, "connect_timeout_secs = 3\nmax_time_secs = 2.5\n").unwrap();
        let s = Settings::load(&path, &env(&[])).unwrap();
        assert_eq!(s.timeouts.connect, Duration::from_secs(3));
        assert_eq!(s.timeouts.max_time, Duration::from_millis(2_500));
        let s = Settings::load(&path, &env(&[("PLANNT_MAX_TIME_SECS", "0.25")])).unwrap();
        assert_eq!(s.timeouts.max_time, Duration::from_millis(250));
        for bad in ["0", "-1", "soon", "nan", "inf"] {
            let e =
                Settings::load(&path, &env_one("PLANNT_CONNECT_TIMEOUT_SECS", bad)).unwrap_err();
            assert_eq!(e.key, "connect_timeout_secs", "{bad}");
        }
        assert!(timeout_secs("1e12").is_err());
    }

    #[test]
    fn dialects_are_a_preference_order_and_an_allow_list() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let s = Settings::load(&path, &env(&[])).unwrap();
        assert_eq!(s.policy.dialects, Dialect::ALL);
        std::fs::write(&path, "pay_dialects = [\"x402\", \"MPP\", \"x402\"]\n").unwrap();
        let s = Settings::load(&path, &env(&[])).unwrap();
        assert_eq!(s.policy.dialects, [Dialect::X402, Dialect::Mpp]);
        let s = Settings::load(&path, &env_one("PLANNT_PAY_DIALECTS", "mpp, l402")).unwrap();
        assert_eq!(s.policy.dialects, [Dialect::Mpp, Dialect::L402]);
        for bad in ["", "bolt12", "l402,card"] {
            let e = Settings::load(&path, &env_one("PLANNT_PAY_DIALECTS", bad)).unwrap_err();
            assert_eq!(e.key, "pay_dialects", "{bad}");
            assert!(e.message.contains("l402"), "{e}");
        }
        std::fs::write(&path, "pay_dialects = []\n").unwrap();
        assert_eq!(
            Settings::load(&path, &env(&[])).unwrap_err().key,
            "pay_dialects"
        );
    }

    #[test]
    fn session_deposits_are_off_unless_set_per_host() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let s = Settings::load(&path, &env(&[])).unwrap();
        assert_eq!(s.policy.session_deposit_sats("api.example.com"), 0);
        std::fs::write(
            &path,
            "[session_deposit_sats]\n\"api.example.com\" = 500\n\"*.plannt.com\" = 200\n",
        )
        .unwrap();
        let s = Settings::load(&path, &env(&[])).unwrap();
        assert_eq!(s.policy.session_deposit_sats("api.example.com"), 500);
        assert_eq!(s.policy.session_deposit_sats("x.plannt.com"), 200);
        assert_eq!(s.policy.session_deposit_sats("other.org"), 0);
        let s = Settings::load(&path, &env_one("PLANNT_SESSION_DEPOSIT_SATS", "300")).unwrap();
        assert_eq!(s.policy.session_deposit_sats("other.org"), 300);
        let s = Settings::load(
            &path,
            &env_one(
                "PLANNT_SESSION_DEPOSIT_SATS",
                "a.example=7, *.b.example = 9",
            ),
        )
        .unwrap();
        assert_eq!(s.policy.session_deposit_sats("a.example"), 7);
        assert_eq!(s.policy.session_deposit_sats("x.b.example"), 9);
        assert_eq!(s.policy.session_deposit_sats("api.example.com"), 0);
        for bad in ["lots", "a.example=", "=5", "a.example=-1"] {
            let e =
                Settings::load(&path, &env_one("PLANNT_SESSION_DEPOSIT_SATS", bad)).unwrap_err();
            assert_eq!(e.key, "session_deposit_sats", "{bad}");
        }
        std::fs::write(
            &path,
            "session_deposit_sats = { \"a.example\" = \"many\" }\n",
        )
        .unwrap();
        assert_eq!(
            Settings::load(&path, &env(&[])).unwrap_err().key,
            "session_deposit_sats"
        );
    }

    fn env_one(key: &'static str, value: &'static str) -> impl Fn(&str) -> Option<String> {
        move |k| (k == key).then(|| value.to_string())
    }

    #[test]
    fn errors_name_the_source_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "budget_daily_sats = \"lots\"\n").unwrap();
        let e = Settings::load(&path, &env(&[])).unwrap_err();
        assert_eq!(
            (e.key.as_str(), e.origin.ends_with("config.toml")),
            ("budget_daily_sats", true)
        );
        std::fs::write(&path, "walet = \"dev\"\n").unwrap();
        assert_eq!(Settings::load(&path, &env(&[])).unwrap_err().key, "walet");
        let e = Settings::load(
            Path::new("/nonexistent"),
            &env(&[("PLANNT_MAX_SATS_PER_REQUEST", "-1")]),
        )
        .unwrap_err();
        assert_eq!(e.origin, "PLANNT_MAX_SATS_PER_REQUEST");
    }
}
