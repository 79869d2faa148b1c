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
//! slip through. IP literals never reach a resolver, so the URL check covers them. Where the
//! wallet's API lives is `wallet_api`'s to say; what kind of address a host is, `address`'s.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use url::{Host, Url};

use crate::address::{is_loopback_host, non_public};
use crate::checks::Refusal;
use crate::policy::Policy;
use crate::wallet_api::WalletApi;

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
