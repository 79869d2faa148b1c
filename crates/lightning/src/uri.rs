//! Backend URIs: one line that selects a Lightning backend and carries what it needs.
//!
//! The same URI configures either side (issuing or paying). Secrets in a URI are held as
//! [`Secret`]s: `Display` and `Debug` of a [`BackendUri`] print them as `<redacted>`, and no
//! error message repeats them.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use url::Url;

use crate::{Network, Secret};

/// The account a dev wallet pays from when the URI names none.
pub const DEFAULT_DEV_ACCOUNT: &str = "default";

/// Where an LND macaroon comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MacaroonSource {
    /// Given in the URI, as hex.
    Hex(Secret),
    /// A file holding the binary macaroon (`admin.macaroon`, `invoice.macaroon`).
    File(PathBuf),
}

/// A parsed backend URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendUri {
    /// `dev[?account=NAME]`: the embedded simulated network.
    Dev {
        /// The paying account.
        account: String,
    },
    /// `dev+http://HOST:PORT[?account=NAME]`: a dev network served by another process.
    DevHttp {
        /// The serving process's base URL.
        url: Url,
        /// The paying account.
        account: String,
    },
    /// `lnbits+http(s)://HOST:PORT[/PATH]?key=KEY[&network=N]`.
    LnBits {
        /// Base URL.
        url: Url,
        /// The invoice key (receive) or admin key (receive and pay).
        key: Secret,
        /// The network of the funding source.
        network: Network,
    },
    /// `lnd+https://HOST:PORT?macaroon=HEX_OR_FILE[&cert=FILE][&network=N]`.
    Lnd {
        /// Base URL of the REST API.
        url: Url,
        /// The macaroon.
        macaroon: MacaroonSource,
        /// The node's `tls.cert`, pinned.
        cert: Option<PathBuf>,
        /// The node's network.
        network: Network,
    },
    /// `cln+https://HOST:PORT?rune=RUNE[&network=N]`: clnrest.
    Cln {
        /// Base URL.
        url: Url,
        /// The rune.
        rune: Secret,
        /// The node's network.
        network: Network,
    },
    /// `phoenixd+http://HOST:PORT?password=PASSWORD[&network=N]`.
    Phoenixd {
        /// Base URL.
        url: Url,
        /// The HTTP password.
        password: Secret,
        /// The node's network.
        network: Network,
    },
    /// `nostr+walletconnect://PUBKEY?relay=URL[&relay=URL]&secret=HEX[&lud16=ADDRESS]`.
    Nwc {
        /// The wallet service's public key, hex.
        wallet_pubkey: String,
        /// The relays.
        relays: Vec<Url>,
        /// The client's secret key, hex.
        secret: Secret,
        /// The wallet's lightning address, if given.
        lud16: Option<String>,
        /// The wallet's network.
        network: Network,
    },
}

/// Why a backend URI is unusable: which part, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad Lightning backend URI ({backend}): {part}: {expected}")]
pub struct UriError {
    /// The backend the URI names, or `unknown`.
    pub backend: String,
    /// The part at fault: `scheme`, `host`, or `parameter key`, …
    pub part: String,
    /// What was expected there.
    pub expected: String,
}

fn err(backend: &str, part: impl Into<String>, expected: impl Into<String>) -> UriError {
    UriError {
        backend: backend.to_string(),
        part: part.into(),
        expected: expected.into(),
    }
}

const SCHEMES: &str = "dev, dev+http, lnbits+http(s), lnd+https, cln+http(s), phoenixd+http(s) or nostr+walletconnect";

struct Params {
    backend: &'static str,
    pairs: Vec<(String, String)>,
}

impl Params {
    fn new(backend: &'static str, url: &Url, allowed: &[&str]) -> Result<Self, UriError> {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        for (key, _) in &pairs {
            if !allowed.contains(&key.as_str()) {
                return Err(err(
                    backend,
                    format!("parameter {key:?}"),
                    format!(
                        "not a parameter of this backend; expected {}",
                        allowed.join(", ")
                    ),
                ));
            }
        }
        Ok(Params { backend, pairs })
    }

    fn all(&self, key: &str) -> impl Iterator<Item = &str> {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn optional(&self, key: &str) -> Result<Option<&str>, UriError> {
        let mut values = self.all(key);
        let first = values.next();
        if values.next().is_some() {
            return Err(err(
                self.backend,
                format!("parameter {key:?}"),
                "given once",
            ));
        }
        match first {
            Some("") => Err(err(self.backend, format!("parameter {key:?}"), "a value")),
            other => Ok(other),
        }
    }

    fn required(&self, key: &str, what: &str) -> Result<&str, UriError> {
        self.optional(key)?.ok_or_else(|| {
            err(
                self.backend,
                format!("parameter {key:?}"),
                format!("missing: {what}"),
            )
        })
    }

    fn network(&self, default: Network) -> Result<Network, UriError> {
        match self.optional("network")? {
            None => Ok(default),
            Some(text) => text
                .parse()
                .map_err(|e: String| err(self.backend, "parameter \"network\"", e)),
        }
    }
}

/// The base URL: the URI with the backend prefix taken off the scheme and no query.
fn base_url(backend: &str, url: &Url, inner_scheme: &str) -> Result<Url, UriError> {
    if url.host_str().is_none_or(str::is_empty) {
        return Err(err(
            backend,
            "host",
            "a host name or address, as in http://127.0.0.1:5000",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(err(
            backend,
            "user info",
            "credentials as parameters (?key=…), not before the host",
        ));
    }
    let mut text = format!("{inner_scheme}://{}", url.host_str().unwrap_or_default());
    if let Some(port) = url.port() {
        text += &format!(":{port}");
    }
    text += url.path().trim_end_matches('/');
    Url::parse(&text).map_err(|e| err(backend, "host", e.to_string()))
}

/// Whether `account` is a dev account's name: 1 to 64 characters of A-Z a-z 0-9 - _ .
pub(crate) fn is_account_name(account: &str) -> bool {
    !account.is_empty()
        && account.len() <= 64
        && account
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn check_account(backend: &str, account: &str) -> Result<String, UriError> {
    if is_account_name(account) {
        Ok(account.to_string())
    } else {
        Err(err(
            backend,
            "parameter \"account\"",
            "1 to 64 characters of A-Z a-z 0-9 - _ .",
        ))
    }
}

impl FromStr for BackendUri {
    type Err = UriError;

    fn from_str(text: &str) -> Result<Self, UriError> {
        let text = text.trim();
        if text == "dev" || text.starts_with("dev?") {
            let url = Url::parse(&format!("dev://local{}", &text[3..]))
                .map_err(|e| err("dev", "parameters", e.to_string()))?;
            let params = Params::new("dev", &url, &["account"])?;
            let account = params.optional("account")?.unwrap_or(DEFAULT_DEV_ACCOUNT);
            return Ok(BackendUri::Dev {
                account: check_account("dev", account)?,
            });
        }
        let url = Url::parse(text).map_err(|e| {
            // Name the backend only when the text starts with a known one: anything else of the
            // input may be a secret.
            let prefix: String = text.chars().take_while(char::is_ascii_lowercase).collect();
            let backend = ["dev", "lnbits", "lnd", "cln", "phoenixd", "nostr"]
                .into_iter()
                .find(|b| *b == prefix)
                .unwrap_or("unknown");
            let part = if text.contains("://") {
                "syntax"
            } else {
                "scheme"
            };
            err(
                backend,
                part,
                format!("a URI such as lnbits+http://127.0.0.1:5000?key=… ({e})"),
            )
        })?;
        let (backend, inner) = match url.scheme().split_once('+') {
            Some((b, i)) => (b, i),
            None => (url.scheme(), ""),
        };
        match (backend, inner) {
            ("dev", "http" | "https") => {
                let params = Params::new("dev", &url, &["account"])?;
                let account = params.optional("account")?.unwrap_or(DEFAULT_DEV_ACCOUNT);
                Ok(BackendUri::DevHttp {
                    url: base_url("dev", &url, inner)?,
                    account: check_account("dev", account)?,
                })
            }
            ("lnbits", "http" | "https") => {
                let params = Params::new("lnbits", &url, &["key", "network"])?;
                Ok(BackendUri::LnBits {
                    url: base_url("lnbits", &url, inner)?,
                    key: Secret::new(params.required(
                        "key",
                        "the wallet's invoice key (to receive) or admin key (to pay)",
                    )?),
                    network: params.network(Network::Bitcoin)?,
                })
            }
            ("lnd", "https" | "http") => {
                let params = Params::new("lnd", &url, &["macaroon", "cert", "network"])?;
                let macaroon = params.required(
                    "macaroon",
                    "the macaroon as hex, or the path of admin.macaroon",
                )?;
                // All hex digits: a macaroon given inline (never printed, even when malformed).
                let macaroon = if macaroon.bytes().all(|b| b.is_ascii_hexdigit()) {
                    if macaroon.len() % 2 != 0 || macaroon.len() < 32 {
                        return Err(err(
                            "lnd",
                            "parameter \"macaroon\"",
                            "an inline macaroon is an even number of hex digits (at least 32); or give the path of admin.macaroon",
                        ));
                    }
                    MacaroonSource::Hex(Secret::new(macaroon))
                } else {
                    MacaroonSource::File(PathBuf::from(macaroon))
                };
                Ok(BackendUri::Lnd {
                    url: base_url("lnd", &url, inner)?,
                    macaroon,
                    cert: params.optional("cert")?.map(PathBuf::from),
                    network: params.network(Network::Bitcoin)?,
                })
            }
            ("cln", "https" | "http") => {
                let params = Params::new("cln", &url, &["rune", "network"])?;
                Ok(BackendUri::Cln {
                    url: base_url("cln", &url, inner)?,
                    rune: Secret::new(
                        params.required("rune", "a rune from `lightning-cli createrune`")?,
                    ),
                    network: params.network(Network::Bitcoin)?,
                })
            }
            ("phoenixd", "http" | "https") => {
                let params = Params::new("phoenixd", &url, &["password", "network"])?;
                Ok(BackendUri::Phoenixd {
                    url: base_url("phoenixd", &url, inner)?,
                    password: Secret::new(
                        params
                            .required("password", "http-password from ~/.phoenix/phoenix.conf")?,
                    ),
                    network: params.network(Network::Bitcoin)?,
                })
            }
            ("nostr", "walletconnect") => {
                let params = Params::new("nwc", &url, &["relay", "secret", "lud16", "network"])?;
                let pubkey = url.host_str().unwrap_or_default().to_ascii_lowercase();
                if pubkey.len() != 64 || !pubkey.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(err(
                        "nwc",
                        "wallet public key",
                        "64 hex characters after nostr+walletconnect://",
                    ));
                }
                let relays = params
                    .all("relay")
                    .map(|r| {
                        Url::parse(r)
                            .ok()
                            .filter(|u| matches!(u.scheme(), "ws" | "wss"))
                            .ok_or_else(|| {
                                err("nwc", "parameter \"relay\"", "a ws:// or wss:// URL")
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                if relays.is_empty() {
                    return Err(err(
                        "nwc",
                        "parameter \"relay\"",
                        "missing: at least one relay URL",
                    ));
                }
                let secret = params.required("secret", "the client's 32-byte secret key as hex")?;
                if secret.len() != 64 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(err("nwc", "parameter \"secret\"", "64 hex characters"));
                }
                Ok(BackendUri::Nwc {
                    wallet_pubkey: pubkey,
                    relays,
                    secret: Secret::new(secret),
                    lud16: params.optional("lud16")?.map(str::to_string),
                    network: params.network(Network::Bitcoin)?,
                })
            }
            ("dev" | "lnbits" | "lnd" | "cln" | "phoenixd", _) => Err(err(
                backend,
                "scheme",
                format!("{backend}+http:// or {backend}+https://"),
            )),
            _ => Err(err("unknown", "scheme", format!("one of {SCHEMES}"))),
        }
    }
}

impl BackendUri {
    /// The backend's short name.
    pub fn backend(&self) -> &'static str {
        match self {
            BackendUri::Dev { .. } | BackendUri::DevHttp { .. } => "dev",
            BackendUri::LnBits { .. } => "lnbits",
            BackendUri::Lnd { .. } => "lnd",
            BackendUri::Cln { .. } => "cln",
            BackendUri::Phoenixd { .. } => "phoenixd",
            BackendUri::Nwc { .. } => "nwc",
        }
    }
}

impl fmt::Display for BackendUri {
    /// The URI with every secret replaced by `<redacted>`: safe to log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let base = |url: &Url| url.as_str().trim_end_matches('/').to_string();
        match self {
            BackendUri::Dev { account } => write!(f, "dev?account={account}"),
            BackendUri::DevHttp { url, account } => {
                write!(f, "dev+{}?account={account}", base(url))
            }
            BackendUri::LnBits { url, network, .. } => {
                write!(f, "lnbits+{}?key=<redacted>&network={network}", base(url))
            }
            BackendUri::Lnd {
                url,
                macaroon,
                cert,
                network,
            } => {
                write!(f, "lnd+{}?macaroon=", base(url))?;
                match macaroon {
                    MacaroonSource::Hex(_) => f.write_str("<redacted>")?,
                    MacaroonSource::File(path) => write!(f, "{}", path.display())?,
                }
                if let Some(cert) = cert {
                    write!(f, "&cert={}", cert.display())?;
                }
                write!(f, "&network={network}")
            }
            BackendUri::Cln { url, network, .. } => {
                write!(f, "cln+{}?rune=<redacted>&network={network}", base(url))
            }
            BackendUri::Phoenixd { url, network, .. } => {
                write!(
                    f,
                    "phoenixd+{}?password=<redacted>&network={network}",
                    base(url)
                )
            }
            BackendUri::Nwc {
                wallet_pubkey,
                relays,
                ..
            } => {
                write!(f, "nostr+walletconnect://{wallet_pubkey}?")?;
                for relay in relays {
                    write!(f, "relay={}&", relay.as_str())?;
                }
                f.write_str("secret=<redacted>")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_backend() {
        let dev: BackendUri = "dev".parse().unwrap();
        assert_eq!(
            dev,
            BackendUri::Dev {
                account: "default".into()
            }
        );
        let dev: BackendUri = "dev?account=alice".parse().unwrap();
        assert_eq!(
            dev,
            BackendUri::Dev {
                account: "alice".into()
            }
        );
        let BackendUri::DevHttp { url, account } = "dev+http://127.0.0.1:8402".parse().unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (url.as_str(), account.as_str()),
            ("http://127.0.0.1:8402/", "default")
        );
        let BackendUri::LnBits { url, key, network } = "lnbits+http://host:5000/lnbits/?key=abc123"
            .parse()
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(url.as_str(), "http://host:5000/lnbits");
        assert_eq!(key.expose(), "abc123");
        assert_eq!(network, Network::Bitcoin);
        let lnd: BackendUri = format!(
            "lnd+https://host:8080?macaroon={}&cert=/x/tls.cert",
            "0a".repeat(40)
        )
        .parse()
        .unwrap();
        assert!(matches!(
            lnd,
            BackendUri::Lnd {
                macaroon: MacaroonSource::Hex(_),
                cert: Some(_),
                ..
            }
        ));
        let lnd: BackendUri = "lnd+https://host:8080?macaroon=/x/admin.macaroon"
            .parse()
            .unwrap();
        assert!(matches!(
            lnd,
            BackendUri::Lnd {
                macaroon: MacaroonSource::File(_),
                cert: None,
                ..
            }
        ));
        assert_eq!(
            "cln+https://h:3010?rune=r"
                .parse::<BackendUri>()
                .unwrap()
                .backend(),
            "cln"
        );
        assert_eq!(
            "phoenixd+http://h:9740?password=p&network=regtest"
                .parse::<BackendUri>()
                .unwrap()
                .backend(),
            "phoenixd"
        );
        let nwc = format!(
            "nostr+walletconnect://{}?relay=wss%3A%2F%2Frelay.example&relay=ws://127.0.0.1:7000&secret={}",
            "b".repeat(64),
            "c".repeat(64)
        );
        let BackendUri::Nwc { relays, .. } = nwc.parse().unwrap() else {
            panic!()
        };
        assert_eq!(relays.len(), 2);
    }

    #[test]
    fn secrets_never_print() {
        for text in [
            "lnbits+http://h:5000?key=SECRETKEY",
            "cln+https://h:3010?rune=SECRETKEY",
            "phoenixd+http://h:9740?password=SECRETKEY",
            "lnd+https://h:8080?macaroon=5ECE7EE5ECE7EE5ECE7EE5ECE7EE5ECE7E",
        ] {
            let uri: BackendUri = text.parse().unwrap();
            for shown in [uri.to_string(), format!("{uri:?}")] {
                assert!(
                    !shown.contains("SECRETKEY") && !shown.contains("5ECE7"),
                    "{shown}"
                );
                assert!(shown.contains("redacted"), "{shown}");
            }
        }
    }

    #[test]
    fn bad_uris_say_which_part() {
        let cases: &[(&str, &str)] = &[
            ("", "scheme"),
            ("lnbits://h:5000?key=k", "scheme"),
            ("lnbits+ftp://h?key=k", "scheme"),
            ("lnbits+http://h:5000", "parameter \"key\""),
            ("lnbits+http://h:5000?key=", "parameter \"key\""),
            ("lnbits+http://h:5000?key=a&key=b", "parameter \"key\""),
            ("lnbits+http://h:5000?kye=k", "parameter \"kye\""),
            (
                "lnbits+http://h:5000?key=k&network=moon",
                "parameter \"network\"",
            ),
            ("lnbits+http://user:pw@h:5000?key=k", "user info"),
            ("lnd+https://h:8080", "parameter \"macaroon\""),
            ("cln+https://h:3010", "parameter \"rune\""),
            ("phoenixd+http://h:9740", "parameter \"password\""),
            ("dev?account=a%20b", "parameter \"account\""),
            ("dev?acount=x", "parameter \"acount\""),
            ("bolt://x", "scheme"),
            (
                "nostr+walletconnect://abc?relay=wss://r&secret=aa",
                "wallet public key",
            ),
        ];
        for (text, part) in cases {
            let e = text.parse::<BackendUri>().unwrap_err();
            assert_eq!(&e.part, part, "{text}: {e}");
        }
        let e = "lnbits+http://h:5000?key=SECRETKEY&kye=1"
            .parse::<BackendUri>()
            .unwrap_err();
        assert!(!e.to_string().contains("SECRETKEY"));
    }
}
