//! Who the client is behind a reverse proxy: `X-Forwarded-For` and `-Proto` are believed only
//! from the proxies the operator names (`trusted_proxies`), never from anyone else.

use std::net::IpAddr;

use axum::http::HeaderMap;

/// Addresses and networks (`10.0.0.0/8`, `::1`) whose forwarding headers are believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    /// Parses `ADDRESS` or `ADDRESS/PREFIX` entries.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let mut out = Vec::new();
        for entry in entries {
            let (addr, bits) = match entry.split_once('/') {
                Some((a, b)) => (a, Some(b)),
                None => (entry.as_str(), None),
            };
            let addr: IpAddr = addr
                .trim()
                .parse()
                .map_err(|_| format!("{entry:?} is not an IP address or network"))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                None => max,
                Some(b) => b
                    .trim()
                    .parse::<u8>()
                    .ok()
                    .filter(|b| *b <= max)
                    .ok_or_else(|| format!("{entry:?}: the prefix length must be 0 to {max}"))?,
            };
            out.push((addr, bits));
        }
        Ok(TrustedProxies(out))
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0
            .iter()
            .any(|(net, bits)| match (canonical(*net), ip) {
                (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), *bits),
                (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), *bits),
                _ => false,
            })
    }

    /// The client's address: the peer's, or, when the peer is a trusted proxy, the rightmost
    /// address of `X-Forwarded-For` that is not itself a trusted proxy.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.contains(peer) {
            return peer;
        }
        let mut client = peer;
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        for hop in hops.iter().rev() {
            match hop.parse::<IpAddr>() {
                Ok(ip) if self.contains(ip) => client = ip,
                Ok(ip) => return ip,
                // Garbage in the chain: stop at the last address we could trust.
                Err(_) => return client,
            }
        }
        client
    }

    /// The scheme the client used: a trusted proxy's `X-Forwarded-Proto`, else `http`.
    pub fn proto(&self, peer: IpAddr, headers: &HeaderMap) -> &'static str {
        let told = headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_ascii_lowercase());
        match told.as_deref() {
            Some("https") if self.contains(peer) => "https",
            _ => "http",
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let full = usize::from(bits / 8);
    let rest = bits % 8;
    if a[..full] != b[..full] {
        return false;
    }
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        a[full] & mask == b[full] & mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_str(xff).unwrap());
        h
    }

    #[test]
    fn believes_only_trusted_proxies() {
        let trusted = TrustedProxies::parse(&["10.0.0.0/8".into(), "::1".into()]).unwrap();
        let lb: IpAddr = "10.1.2.3".parse().unwrap();
        let stranger: IpAddr = "203.0.113.9".parse().unwrap();
        // From the load balancer: the client it names.
        assert_eq!(
            trusted.client(lb, &headers("198.51.100.7")),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        // A client cannot pick its own address by sending the header through the balancer:
        // the rightmost untrusted hop wins.
        assert_eq!(
            trusted.client(lb, &headers("1.1.1.1, 198.51.100.7, 10.9.9.9")),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        // From anyone else: the peer, whatever it says.
        assert_eq!(trusted.client(stranger, &headers("1.1.1.1")), stranger);
        // Garbage: stop at the proxy.
        assert_eq!(trusted.client(lb, &headers("not-an-ip")), lb);
        assert!(trusted.contains("::1".parse().unwrap()));
        assert!(trusted.contains("::ffff:10.0.0.1".parse().unwrap()));
        assert!(!trusted.contains("11.0.0.1".parse().unwrap()));
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert_eq!(trusted.proto(lb, &h), "https");
        assert_eq!(trusted.proto(stranger, &h), "http");
        assert_eq!(
            TrustedProxies::default().client(lb, &headers("1.2.3.4")),
            lb
        );
    }

    #[test]
    fn refuses_bad_entries() {
        for bad in ["10.0.0.0/33", "x", "::1/129", "10.0.0.1/"] {
            assert!(TrustedProxies::parse(&[bad.into()]).is_err(), "{bad}");
        }
        assert!(
            TrustedProxies::parse(&["192.168.1.0/23".into()])
                .unwrap()
                .contains("192.168.0.200".parse().unwrap())
        );
    }
}
