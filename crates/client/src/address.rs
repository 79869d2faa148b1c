//! What kind of address a host is: loopback (in every spelling), private, link-local or
//! otherwise not public, with the IPv4 address an IPv6 form carries.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// `localhost` and `*.localhost` (RFC 6761), lowercase and without a trailing dot.
pub(crate) fn is_localhost(name: &str) -> bool {
    name == "localhost" || name.ends_with(".localhost")
}

/// An IPv4-mapped (`::ffff:a.b.c.d`) or IPv4-compatible (`::a.b.c.d`) address as the IPv4
/// address it stands for.
pub(crate) fn unmapped(ip: IpAddr) -> IpAddr {
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
