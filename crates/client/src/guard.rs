//! Where a request may go, decided before anything is sent: on the URL asked for, on every
//! redirect hop, and on every address a host name resolves to.
//!
//! ```text
//! URL (first request, each redirect hop)   the wallet's own API?            -> wallet_api
//!                                          allowed_hosts?                   -> host_not_allowed
//!                                          an IP literal or localhost that is
//!                                          loopback, private, link-local, … -> private_network
//! DNS answer (the resolver the connection  each address checked the same way; the connection
//!   itself uses)                           is made only to addresses that passed
//! ```
//! The resolver is the one the connection uses, so a name that resolves to a public address
//! when checked and to a private one when connected (DNS rebinding) has no second answer to
//! slip through. IP literals never reach a resolver, so the URL check covers them.
//!
//! The wallet's API is found by comparing normalised places (host, port, path prefix): a host
//! name in any case or with a trailing dot, every spelling of a loopback or unspecified address
//! (`127.0.0.2`, `0x7f.1`, `[::ffff:127.0.0.1]`, `0.0.0.0`, `localhost.`), a path with
//! percent-encoding, `//`, `;` parameters, dot segments or another case. A host name that is not
//! the wallet's, on the port and path of a wallet that lives on an address, is connected through
//! a resolver that also refuses the wallet's addresses.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use plannt_lightning::BackendUri;
use url::{Host, Url};

use crate::checks::Refusal;
use crate::policy::Policy;

/// Where a wallet's own API lives: requests there are never sent, whatever the settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalletApi {
    places: Vec<Place>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Place {
    host: HostKey,
    port: u16,
    /// A normalised path prefix; `None`: the whole host and port.
    prefix: Option<String>,
    /// As shown in refusals: no secret (backend URIs keep theirs in parameters).
    shown: String,
}

/// A host as the comparison sees it: every loopback and unspecified spelling is one host.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostKey {
    Local,
    Ip(IpAddr),
    Name(String),
}

impl WalletApi {
    /// No API to keep requests from (a wallet in the process, such as `dev`).
    pub fn none() -> WalletApi {
        WalletApi::default()
    }

    /// Where the API of the wallet `uri` names lives: for `dev+http` the dev network's
    /// `/_plannt/dev/` under its base URL (the same host also serves a gateway); for LNbits its
    /// `/api/`; for LND, Core Lightning and phoenixd the whole host and port; for Nostr Wallet
    /// Connect each relay's host and port.
    pub fn of(uri: &BackendUri) -> WalletApi {
        let under = |url: &Url, suffix: &str| {
            let base = url.path().trim_end_matches('/');
            place(url, Some(&format!("{base}{suffix}")))
        };
        let places = match uri {
            BackendUri::Dev { .. } => Vec::new(),
            BackendUri::DevHttp { url, .. } => {
                vec![under(url, plannt_lightning::dev::http::PREFIX)]
            }
            BackendUri::LnBits { url, .. } => vec![under(url, "/api")],
            BackendUri::Lnd { url, .. }
            | BackendUri::Cln { url, .. }
            | BackendUri::Phoenixd { url, .. } => vec![place(url, None)],
            BackendUri::Nwc { relays, .. } => relays.iter().map(|r| place(r, None)).collect(),
        };
        WalletApi {
            places: places.into_iter().flatten().collect(),
        }
    }

    /// The places, as refusals show them.
    pub fn places(&self) -> Vec<String> {
        self.places.iter().map(|p| p.shown.clone()).collect()
    }

    /// The place `url` would reach, comparing normalised forms.
    fn place_of(&self, url: &Url) -> Option<&Place> {
        let host = host_key(url.host()?);
        let port = url.port_or_known_default()?;
        let path = normalise_path(url.path());
        self.places
            .iter()
            .find(|p| p.host == host && p.port == port && p.covers(&path))
    }

    /// A wallet that lives on an address, whose port and path `url` shares under a host name
    /// that is not the wallet's: that name may resolve to the wallet's address.
    fn behind_a_name(&self, url: &Url) -> Option<&Place> {
        let Some(HostKey::Name(_)) = url.host().map(host_key) else {
            return None;
        };
        let port = url.port_or_known_default()?;
        let path = normalise_path(url.path());
        self.places
            .iter()
            .find(|p| !matches!(p.host, HostKey::Name(_)) && p.port == port && p.covers(&path))
    }

    /// The place on address `ip`, for a resolver that refuses the wallet's addresses.
    fn at_address(&self, ip: IpAddr) -> Option<&Place> {
        let key = ip_key(ip);
        self.places.iter().find(|p| p.host == key)
    }
}

impl Place {
    fn covers(&self, path: &str) -> bool {
        match &self.prefix {
            None => true,
            Some(prefix) => {
                path == prefix
                    || path
                        .strip_prefix(prefix.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            }
        }
    }
}

fn place(url: &Url, prefix: Option<&str>) -> Option<Place> {
    let host = url.host()?;
    let port = url.port_or_known_default()?;
    let prefix = prefix.map(normalise_path);
    let shown = format!(
        "{}://{}:{port}{}",
        url.scheme(),
        host,
        prefix
            .as_deref()
            .map(|p| format!("{p}/"))
            .unwrap_or_default()
    );
    Some(Place {
        host: host_key(host),
        port,
        prefix,
        shown,
    })
}

fn host_key(host: Host<&str>) -> HostKey {
    match host {
        Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if is_localhost(&name) {
                HostKey::Local
            } else {
                HostKey::Name(name)
            }
        }
        Host::Ipv4(ip) => ip_key(IpAddr::V4(ip)),
        Host::Ipv6(ip) => ip_key(IpAddr::V6(ip)),
    }
}

fn ip_key(ip: IpAddr) -> HostKey {
    let ip = unmapped(ip);
    let local = match ip {
        // 0.0.0.0 and the rest of 0/8 reach this machine on Linux.
        IpAddr::V4(v4) => v4.is_loopback() || v4.octets()[0] == 0,
        IpAddr::V6(v6) => v6.is_loopback() || v6.is_unspecified(),
    };
    if local {
        HostKey::Local
    } else {
        HostKey::Ip(ip)
    }
}

/// `localhost` and `*.localhost` (RFC 6761), lowercase and without a trailing dot.
fn is_localhost(name: &str) -> bool {
    name == "localhost" || name.ends_with(".localhost")
}

/// An IPv4-mapped (`::ffff:a.b.c.d`) or IPv4-compatible (`::a.b.c.d`) address as the IPv4
/// address it stands for.
fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) if !v6.is_loopback() && !v6.is_unspecified() => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            if s[..6] == [0; 6] {
                return IpAddr::V4(v4_from(s[6], s[7]));
            }
            ip
        }
        _ => ip,
    }
}

fn v4_from(high: u16, low: u16) -> Ipv4Addr {
    let [a, b] = high.to_be_bytes();
    let [c, d] = low.to_be_bytes();
    Ipv4Addr::new(a, b, c, d)
}

/// The IPv4 address an IPv6 address carries, if it carries one a network may deliver to:
/// mapped, compatible, NAT64 (`64:ff9b::/96`) or 6to4 (`2002::/16`).
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    if let IpAddr::V4(v4) = unmapped(IpAddr::V6(v6)) {
        return Some(v4);
    }
    let s = v6.segments();
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] {
        return Some(v4_from(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return Some(v4_from(s[1], s[2]));
    }
    None
}

/// What kind of non-public address `ip` is, if it is one: loopback, private (RFC 1918, unique
/// local), link-local (with the cloud metadata address 169.254.169.254), shared (CGNAT
/// 100.64/10), unspecified, multicast, broadcast, reserved; an IPv6 form of any of these is the
/// same kind.
pub(crate) fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => {
            if v6.is_unspecified() {
                return Some("unspecified");
            }
            if v6.is_loopback() {
                return Some("loopback");
            }
            if let Some(v4) = embedded_v4(v6) {
                return non_public_v4(v4);
            }
            let first = v6.segments()[0];
            match first {
                _ if first & 0xffc0 == 0xfe80 => Some("link-local"),
                _ if first & 0xffc0 == 0xfec0 => Some("site-local"),
                _ if first & 0xfe00 == 0xfc00 => Some("private (unique local)"),
                _ if first & 0xff00 == 0xff00 => Some("multicast"),
                _ => None,
            }
        }
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    match ip.octets() {
        [0, ..] => Some("unspecified"),
        [10, ..] => Some("private"),
        [100, b, ..] if (64..128).contains(&b) => Some("shared (CGNAT)"),
        [127, ..] => Some("loopback"),
        [169, 254, ..] => Some("link-local"),
        [172, b, ..] if (16..32).contains(&b) => Some("private"),
        [192, 0, 0, _] => Some("reserved"),
        [192, 168, ..] => Some("private"),
        [198, 18 | 19, ..] => Some("reserved"),
        [224..=239, ..] => Some("multicast"),
        [255, 255, 255, 255] => Some("broadcast"),
        [240..=255, ..] => Some("reserved"),
        _ => None,
    }
}

/// Whether `url`'s host is loopback: 127.0.0.0/8, `::1` (or an IPv6 form of 127/8),
/// `localhost` or `*.localhost`.
pub(crate) fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(name)) => is_localhost(&name.trim_end_matches('.').to_ascii_lowercase()),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => unmapped(IpAddr::V6(ip)).is_loopback(),
        None => false,
    }
}

/// A path as the comparison sees it: percent-decoded (repeatedly), backslashes as slashes,
/// empty and `.` segments dropped, `..` applied, `;` parameters cut, lowercase.
fn normalise_path(path: &str) -> String {
    let mut decoded = path.to_string();
    for _ in 0..4 {
        let next = percent_decode(&decoded);
        if next == decoded {
            break;
        }
        decoded = next;
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split(['/', '\\']) {
        let segment = segment.split(';').next().unwrap_or_default();
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    format!("/{}", segments.join("/")).to_lowercase()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A URL as a refusal shows it: scheme, host, port and path; never the query, which may hold
/// a key.
pub(crate) fn shown(url: &Url) -> String {
    format!("{}{}", url.origin().ascii_serialization(), url.path())
}

/// The decision of where requests may go, shared by the client, its redirect policy and its
/// resolver.
pub(crate) struct Guard {
    pub(crate) policy: Policy,
    pub(crate) wallet: WalletApi,
    /// Host names pinned to addresses (lowercase): used instead of DNS, checked the same way.
    pub(crate) pins: HashMap<String, Vec<IpAddr>>,
}

impl Guard {
    /// Whether a request to `url` must be connected through the resolver that refuses the
    /// wallet's addresses.
    pub(crate) fn needs_strict(&self, url: &Url) -> bool {
        self.wallet.behind_a_name(url).is_some()
    }

    /// Checks `url` before anything is sent to it. `strict`: the connection goes through the
    /// resolver that refuses the wallet's addresses.
    pub(crate) fn check(&self, url: &Url, strict: bool) -> Result<(), Refusal> {
        if let Some(place) = self.wallet.place_of(url) {
            return Err(Refusal::WalletApi {
                target: shown(url),
                place: place.shown.clone(),
                how: String::new(),
            });
        }
        let host = url.host_str().unwrap_or_default();
        if !self.policy.host_allowed(host) {
            return Err(Refusal::HostNotAllowed(host.to_string()));
        }
        if !self.policy.allow_private_networks {
            let literal = match url.host() {
                Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
                Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
                _ => None,
            };
            if let Some(ip) = literal
                && let Some(kind) = non_public(ip)
            {
                return Err(Refusal::PrivateNetwork {
                    host: host.to_string(),
                    address: ip.to_string(),
                    kind: kind.to_string(),
                });
            }
            if literal.is_none() && is_loopback_host(url) {
                // A loopback name by definition (RFC 6761): no need to ask DNS.
                return Err(Refusal::PrivateNetwork {
                    host: host.to_string(),
                    address: host.to_string(),
                    kind: "loopback".into(),
                });
            }
        }
        if !strict && let Some(place) = self.wallet.behind_a_name(url) {
            return Err(Refusal::WalletApi {
                target: shown(url),
                place: place.shown.clone(),
                how: " (its host name may resolve to the wallet's address)".into(),
            });
        }
        Ok(())
    }

    /// The addresses `name` resolved to that a connection may use; a refusal when none is left.
    pub(crate) fn filter(
        &self,
        name: &str,
        addresses: Vec<IpAddr>,
        strict: bool,
    ) -> Result<Vec<IpAddr>, Refusal> {
        let mut refusal = None;
        let mut kept = Vec::new();
        for ip in addresses {
            if strict && let Some(place) = self.wallet.at_address(ip) {
                refusal.get_or_insert(Refusal::WalletApi {
                    target: name.to_string(),
                    place: place.shown.clone(),
                    how: format!(" (it resolves to {ip})"),
                });
                continue;
            }
            if !self.policy.allow_private_networks
                && let Some(kind) = non_public(ip)
            {
                refusal.get_or_insert(Refusal::PrivateNetwork {
                    host: name.to_string(),
                    address: ip.to_string(),
                    kind: kind.to_string(),
                });
                continue;
            }
            kept.push(ip);
        }
        match (kept.is_empty(), refusal) {
            (true, Some(refusal)) => Err(refusal),
            _ => Ok(kept),
        }
    }
}

/// A refusal carried through reqwest's errors (from the redirect policy or the resolver).
#[derive(Debug)]
pub(crate) struct Blocked {
    pub(crate) refusal: Refusal,
    /// The redirect hop refused, when it was one.
    pub(crate) url: Option<Url>,
}

impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.refusal.fmt(f)
    }
}

impl std::error::Error for Blocked {}

/// The refusal inside a reqwest error, if a check made it.
pub(crate) fn blocked_in(error: &reqwest::Error) -> Option<&Blocked> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(blocked) = e.downcast_ref::<Blocked>() {
            return Some(blocked);
        }
        source = e.source();
    }
    None
}

/// The resolver of the client's connections: the system's (or a pinned answer), each address
/// checked before the connection may use it.
pub(crate) struct Resolver {
    pub(crate) guard: Arc<Guard>,
    pub(crate) strict: bool,
}

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.guard.clone();
        let strict = self.strict;
        let name = name.as_str().to_string();
        Box::pin(async move {
            let key = name.trim_end_matches('.').to_ascii_lowercase();
            let addresses: Vec<IpAddr> = match guard.pins.get(&key) {
                Some(pinned) => pinned.clone(),
                None => tokio::net::lookup_host((name.as_str(), 0))
                    .await?
                    .map(|a| a.ip())
                    .collect(),
            };
            let kept = guard.filter(&name, addresses, strict).map_err(|refusal| {
                Box::new(Blocked { refusal, url: None }) as Box<dyn std::error::Error + Send + Sync>
            })?;
            let addrs: reqwest::dns::Addrs =
                Box::new(kept.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    fn guard(wallet: &str, private: bool) -> Guard {
        Guard {
            policy: Policy {
                allow_private_networks: private,
                ..Policy::default()
            },
            wallet: WalletApi::of(&wallet.parse().unwrap()),
            pins: HashMap::new(),
        }
    }

    fn check(guard: &Guard, text: &str) -> Option<&'static str> {
        guard.check(&url(text), false).err().map(|r| r.check())
    }

    #[test]
    fn every_spelling_of_the_dev_wallets_api_is_its_api() {
        let g = guard("dev+http://127.0.0.1:8402", true);
        for variant in [
            "http://127.0.0.1:8402/_plannt/dev/pay",
            "http://127.0.0.1:8402/_plannt/dev",
            "http://127.0.0.1:8402/_plannt/dev/",
            "HTTP://127.0.0.1:8402/_PLANNT/DEV/PAY",
            "http://localhost:8402/_plannt/dev/pay",
            "http://LOCALHOST.:8402/_plannt/dev/pay",
            "http://api.localhost:8402/_plannt/dev/pay",
            "http://127.0.0.2:8402/_plannt/dev/pay",
            "http://127.1:8402/_plannt/dev/pay",
            "http://2130706433:8402/_plannt/dev/pay",
            "http://0x7f.0.0.1:8402/_plannt/dev/pay",
            "http://0.0.0.0:8402/_plannt/dev/pay",
            "http://[::1]:8402/_plannt/dev/pay",
            "http://[::ffff:127.0.0.1]:8402/_plannt/dev/pay",
            "http://[::127.0.0.1]:8402/_plannt/dev/pay",
            "http://[::]:8402/_plannt/dev/pay",
            "https://127.0.0.1:8402/_plannt/dev/pay",
            "http://127.0.0.1:08402/_plannt/dev/pay",
            "http://127.0.0.1:8402//_plannt//dev/pay",
            "http://127.0.0.1:8402/x/../_plannt/dev/pay",
            "http://127.0.0.1:8402/./_plannt/./dev/pay",
            "http://127.0.0.1:8402/%2e%2e/_plannt/dev/pay",
            "http://127.0.0.1:8402/%5Fplannt/dev/pay",
            "http://127.0.0.1:8402/_plannt/dev/%70ay",
            "http://127.0.0.1:8402/_plannt%2Fdev%2Fpay",
            "http://127.0.0.1:8402/_plannt%252Fdev/pay",
            "http://127.0.0.1:8402/_plannt\\dev\\pay",
            "http://127.0.0.1:8402/_plannt;x/dev/pay",
            "http://127.0.0.1:8402/_plannt/dev/pay?account=x#y",
        ] {
            assert_eq!(check(&g, variant), Some("wallet_api"), "{variant}");
        }
        // The gateway on the same host and port stays reachable, and the same path elsewhere.
        for fine in [
            "http://127.0.0.1:8402/v1/demo",
            "http://127.0.0.1:8402/_plannt/devices",
            "http://127.0.0.1:8402/_plannt",
            "http://127.0.0.1:8403/_plannt/dev/pay",
            "http://api.example.com:8402/v1/demo",
        ] {
            assert_eq!(check(&g, fine), None, "{fine}");
        }
        // Another name on the wallet's port and path may resolve to it: only the resolver that
        // refuses the wallet's addresses may connect it.
        let alias = url("http://wallet.example:8402/_plannt/dev/pay");
        assert!(g.needs_strict(&alias));
        assert_eq!(g.check(&alias, false).unwrap_err().check(), "wallet_api");
        assert_eq!(g.check(&alias, true), Ok(()));
        assert!(!g.needs_strict(&url("http://wallet.example:8402/v1/demo")));
        let refused = g.filter("wallet.example", vec!["127.0.0.1".parse().unwrap()], true);
        assert_eq!(refused.unwrap_err().check(), "wallet_api");
    }

    #[test]
    fn each_backend_has_its_places() {
        let places = |uri: &str| WalletApi::of(&uri.parse().unwrap()).places();
        assert_eq!(
            places("dev+http://127.0.0.1:8402/base/?account=a"),
            ["http://127.0.0.1:8402/base/_plannt/dev/"]
        );
        assert_eq!(
            places("lnbits+https://LNbits.Example.?key=secret"),
            ["https://lnbits.example.:443/api/"]
        );
        assert_eq!(
            places("lnd+https://10.0.0.5:8080?macaroon=00112233445566778899aabbccddeeff"),
            ["https://10.0.0.5:8080"]
        );
        assert_eq!(
            places("cln+https://node.example?rune=r"),
            ["https://node.example:443"]
        );
        assert_eq!(
            places("phoenixd+http://127.0.0.1:9740?password=p"),
            ["http://127.0.0.1:9740"]
        );
        assert_eq!(
            places(&format!(
                "nostr+walletconnect://{}?relay=wss://relay.example&relay=ws://127.0.0.1:7777&secret={}",
                "a".repeat(64),
                "b".repeat(64)
            )),
            ["wss://relay.example:443", "ws://127.0.0.1:7777"]
        );
        assert!(places("dev").is_empty());
        assert!(
            !places("lnbits+https://lnbits.example?key=secret")
                .concat()
                .contains("secret")
        );

        let lnbits = guard("lnbits+https://lnbits.example?key=k", true);
        assert_eq!(
            check(&lnbits, "https://LNBITS.example./api/v1/payments"),
            Some("wallet_api")
        );
        assert_eq!(
            check(&lnbits, "https://lnbits.example:443/%61pi/v1/wallet"),
            Some("wallet_api")
        );
        assert_eq!(check(&lnbits, "https://lnbits.example/wallet"), None);
        assert_eq!(check(&lnbits, "http://lnbits.example/api/v1/wallet"), None);

        let lnd = guard(
            "lnd+https://10.0.0.5:8080?macaroon=00112233445566778899aabbccddeeff",
            true,
        );
        assert_eq!(
            check(&lnd, "https://10.0.0.5:8080/v1/getinfo"),
            Some("wallet_api")
        );
        assert_eq!(
            check(&lnd, "http://[::ffff:a00:5]:8080/"),
            Some("wallet_api")
        );
        assert_eq!(check(&lnd, "https://10.0.0.5:8081/"), None);

        let nwc = guard(
            &format!(
                "nostr+walletconnect://{}?relay=wss://relay.example&secret={}",
                "a".repeat(64),
                "b".repeat(64)
            ),
            true,
        );
        assert_eq!(check(&nwc, "https://relay.example/"), Some("wallet_api"));
        assert_eq!(check(&nwc, "http://relay.example/"), None);
    }

    #[test]
    fn non_public_addresses_are_refused_in_every_form() {
        let g = guard("dev", false);
        for refused in [
            "http://127.0.0.1/",
            "http://127.8.9.10/",
            "http://localhost/",
            "http://a.localhost./",
            "http://0.0.0.0/",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://172.31.255.255/",
            "http://192.168.1.1/",
            "http://100.64.0.1/",
            "http://100.127.255.255/",
            "http://169.254.169.254/latest/meta-data/",
            "http://224.0.0.1/",
            "http://255.255.255.255/",
            "http://[::1]/",
            "http://[::]/",
            "http://[fe80::1]/",
            "http://[febf::1]/",
            "http://[fc00::1]/",
            "http://[fd12:3456::1]/",
            "http://[ff02::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:169.254.169.254]/",
            "http://[::ffff:10.0.0.1]/",
            "http://[::10.0.0.1]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[2002:c0a8:0101::1]/",
        ] {
            assert_eq!(check(&g, refused), Some("private_network"), "{refused}");
        }
        for public in [
            "http://8.8.8.8/",
            "http://100.63.255.255/",
            "http://100.128.0.1/",
            "http://172.32.0.1/",
            "http://[2606:4700::1111]/",
            "http://[::ffff:8.8.8.8]/",
            "https://api.example.com/",
        ] {
            assert_eq!(check(&g, public), None, "{public}");
        }
        assert_eq!(check(&guard("dev", true), "http://127.0.0.1/"), None);

        // After DNS: private addresses are dropped; a name with nothing else left is refused.
        let ips = |list: &[&str]| {
            list.iter()
                .map(|i| i.parse().unwrap())
                .collect::<Vec<IpAddr>>()
        };
        assert_eq!(
            g.filter("mixed.example", ips(&["10.0.0.1", "8.8.8.8"]), false),
            Ok(ips(&["8.8.8.8"]))
        );
        let refusal = g
            .filter("rebind.example", ips(&["169.254.169.254", "::1"]), false)
            .unwrap_err();
        assert_eq!(refusal.check(), "private_network");
        assert!(refusal.to_string().contains("169.254.169.254"), "{refusal}");
    }

    #[test]
    fn loopback_hosts_for_plain_http() {
        for loopback in [
            "http://127.0.0.1/",
            "http://127.3.2.1/",
            "http://[::1]/",
            "http://localhost/",
            "http://Api.LocalHost./",
        ] {
            assert!(is_loopback_host(&url(loopback)), "{loopback}");
        }
        for remote in [
            "http://api.example.com/",
            "http://10.0.0.1/",
            "http://0.0.0.0/",
            "http://localhost.example/",
        ] {
            assert!(!is_loopback_host(&url(remote)), "{remote}");
        }
    }
}
