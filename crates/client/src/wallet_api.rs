//! Where a wallet's own API lives, and whether a URL reaches it: requests there are never sent,
//! whatever the settings (see `guard`, which asks).
//!
//! The wallet's API is found by comparing normalised places (host, port, path prefix): a host
//! name in any case or with a trailing dot, every spelling of a loopback or unspecified address
//! (`127.0.0.2`, `0x7f.1`, `[::ffff:127.0.0.1]`, `0.0.0.0`, `localhost.`), a path with
//! percent-encoding, `//`, `;` parameters, dot segments or another case. A host name that is not
//! the wallet's, on the port and path of a wallet that lives on an address, is connected through
//! a resolver that also refuses the wallet's addresses.

use std::net::IpAddr;

use plannt_lightning::BackendUri;
use url::{Host, Url};

use crate::address::{is_localhost, unmapped};

/// Where a wallet's own API lives: requests there are never sent, whatever the settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalletApi {
    places: Vec<Place>,
}

/// One place of a wallet's API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Place {
    host: HostKey,
    port: u16,
    /// A normalised path prefix; `None`: the whole host and port.
    prefix: Option<String>,
    /// As shown in refusals: no secret (backend URIs keep theirs in parameters).
    pub(crate) shown: String,
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
    pub(crate) fn place_of(&self, url: &Url) -> Option<&Place> {
        let host = host_key(url.host()?);
        let port = url.port_or_known_default()?;
        let path = normalise_path(url.path());
        self.places
            .iter()
            .find(|p| p.host == host && p.port == port && p.covers(&path))
    }

    /// A wallet that lives on an address, whose port and path `url` shares under a host name
    /// that is not the wallet's: that name may resolve to the wallet's address.
    pub(crate) fn behind_a_name(&self, url: &Url) -> Option<&Place> {
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
    pub(crate) fn at_address(&self, ip: IpAddr) -> Option<&Place> {
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
