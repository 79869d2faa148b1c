//! Typed first-party caveats and the rules that check them.
//!
//! Plannt mints, in this order: `services=<route>:0`, `<route>_valid_until=<unix seconds>`, then
//! any `<route>_<name>=<value>` a route adds. Aperture's `<service>_capabilities=<csv>` is read too.
//!
//! Checking fails closed, unlike Aperture: a caveat we cannot read, a caveat about a service the
//! token never named, a later caveat that widens an earlier one, or a route condition nobody
//! knows rejects the token.

use std::fmt;

/// One service a token grants, with its tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// The route id.
    pub name: String,
    /// The tier; Plannt always mints 0.
    pub tier: u8,
}

/// A first-party caveat, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caveat {
    /// `services=a:0,b:1`: the routes the token may buy.
    Services(Vec<Service>),
    /// `<service>_valid_until=<unix seconds>`: the token is refused from that second on.
    ValidUntil {
        /// The service the expiry applies to.
        service: String,
        /// Unix seconds.
        unix: u64,
    },
    /// `<service>_capabilities=a,b`: what the backend may allow (Aperture); only narrowed here.
    Capabilities {
        /// The service.
        service: String,
        /// The capabilities, possibly none.
        capabilities: Vec<String>,
    },
    /// `<service>_<name>=<value>`: a condition a route adds and checks itself.
    Condition {
        /// The service.
        service: String,
        /// The condition's name.
        name: String,
        /// Its value.
        value: String,
    },
}

/// Why a caveat is not readable, or why a name or value cannot be minted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CaveatError {
    /// Not UTF-8, no `=`, or a part that does not fit its grammar.
    #[error("caveat {caveat:?} is not readable: {why}")]
    Unreadable {
        /// The caveat, lossily decoded.
        caveat: String,
        /// What is wrong.
        why: &'static str,
    },
}

fn unreadable(caveat: &str, why: &'static str) -> CaveatError {
    CaveatError::Unreadable {
        caveat: caveat.to_string(),
        why,
    }
}

/// Route ids: letters, digits, `.` and `-`. No `_` (it separates the service from the condition),
/// and none of `,:=` (they separate the services list).
pub fn is_route_id(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
}

/// Condition names: lowercase letters, digits and `_`, not ending in a reserved name (the caveat
/// `<route>_x_valid_until=…` would read back as the expiry of service `<route>_x`).
pub fn is_condition_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !text.ends_with("valid_until")
        && !text.ends_with("capabilities")
}

// Aperture service names may contain `_`; we only need to read them, so be lenient there.
fn is_service_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

impl Caveat {
    /// Parses the text of a first-party caveat.
    pub fn parse(bytes: &[u8]) -> Result<Caveat, CaveatError> {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| unreadable(&String::from_utf8_lossy(bytes), "not UTF-8"))?;
        let (key, value) = text
            .split_once('=')
            .ok_or_else(|| unreadable(text, "no `=`"))?;
        if key == "services" {
            let mut services = Vec::new();
            for part in value.split(',') {
                let (name, tier) = part
                    .split_once(':')
                    .ok_or_else(|| unreadable(text, "a service is not `name:tier`"))?;
                if !is_service_name(name) {
                    return Err(unreadable(text, "a service name is not plain"));
                }
                let tier = parse_decimal(tier)
                    .and_then(|t| u8::try_from(t).ok())
                    .ok_or_else(|| unreadable(text, "a tier is not a number from 0 to 255"))?;
                services.push(Service {
                    name: name.to_string(),
                    tier,
                });
            }
            return Ok(Caveat::Services(services));
        }
        if let Some(service) = key.strip_suffix("_valid_until") {
            check_service(text, service)?;
            let unix = parse_decimal(value)
                .ok_or_else(|| unreadable(text, "expiry is not unix seconds"))?;
            return Ok(Caveat::ValidUntil {
                service: service.to_string(),
                unix,
            });
        }
        if let Some(service) = key.strip_suffix("_capabilities") {
            check_service(text, service)?;
            let capabilities = if value.is_empty() {
                Vec::new()
            } else {
                value.split(',').map(str::to_string).collect()
            };
            if capabilities.iter().any(|c| c.is_empty()) {
                return Err(unreadable(text, "an empty capability"));
            }
            return Ok(Caveat::Capabilities {
                service: service.to_string(),
                capabilities,
            });
        }
        let (service, name) = key
            .split_once('_')
            .ok_or_else(|| unreadable(text, "unknown caveat"))?;
        if !is_route_id(service) || !is_condition_name(name) {
            return Err(unreadable(text, "unknown caveat"));
        }
        if value.chars().any(char::is_control) {
            return Err(unreadable(text, "a control character in the value"));
        }
        Ok(Caveat::Condition {
            service: service.to_string(),
            name: name.to_string(),
            value: value.to_string(),
        })
    }

    /// The service a scoped caveat applies to; `None` for `services`.
    pub fn service(&self) -> Option<&str> {
        match self {
            Caveat::Services(_) => None,
            Caveat::ValidUntil { service, .. }
            | Caveat::Capabilities { service, .. }
            | Caveat::Condition { service, .. } => Some(service),
        }
    }
}

fn check_service(text: &str, service: &str) -> Result<(), CaveatError> {
    if is_service_name(service) {
        Ok(())
    } else {
        Err(unreadable(text, "the service name is not plain"))
    }
}

// Plain ASCII digits only: `str::parse` would also take a leading `+`.
fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

impl fmt::Display for Caveat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Caveat::Services(services) => {
                f.write_str("services=")?;
                for (i, s) in services.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{}:{}", s.name, s.tier)?;
                }
                Ok(())
            }
            Caveat::ValidUntil { service, unix } => write!(f, "{service}_valid_until={unix}"),
            Caveat::Capabilities {
                service,
                capabilities,
            } => write!(f, "{service}_capabilities={}", capabilities.join(",")),
            Caveat::Condition {
                service,
                name,
                value,
            } => write!(f, "{service}_{name}={value}"),
        }
    }
}

/// How a route judges the conditions it adds to its tokens.
pub trait Conditions {
    /// `Some(true)` if the condition holds for this request, `Some(false)` if it does not,
    /// `None` if the route does not know the condition (the token is then refused).
    fn check(&self, name: &str, value: &str) -> Option<bool>;
}

/// A route with no conditions of its own: any condition refuses the token.
pub struct NoConditions;

impl Conditions for NoConditions {
    fn check(&self, _name: &str, _value: &str) -> Option<bool> {
        None
    }
}

impl<F: Fn(&str, &str) -> Option<bool>> Conditions for F {
    fn check(&self, name: &str, value: &str) -> Option<bool> {
        self(name, value)
    }
}

/// Why the caveats of a genuine token do not let it buy this request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CaveatFailure {
    /// The route requested is not among the token's services.
    #[error("the token buys {granted}, not {requested}")]
    WrongRoute {
        /// The services the token names.
        granted: String,
        /// The route requested.
        requested: String,
    },
    /// The token's expiry has passed.
    #[error("the token expired at unix time {valid_until}")]
    Expired {
        /// Unix seconds.
        valid_until: u64,
    },
    /// A caveat is unreadable, unknown, widens an earlier one, or is not satisfied.
    #[error("caveat {caveat:?} {why}")]
    Refused {
        /// The caveat text.
        caveat: String,
        /// Why it refuses the token.
        why: String,
    },
}

/// What the caveats of a token granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The token's expiry for the route, if it has one: the narrowest of its expiries.
    pub valid_until: Option<u64>,
    /// The first expiry for the route in the chain. A later one may only narrow it, so it is the
    /// widest any macaroon sharing this identifier can carry: for a token whose minter wrote an
    /// expiry, the minter's, whatever a holder appends. What a spent set must outlive.
    pub minted_valid_until: Option<u64>,
    /// Aperture-style capabilities for the route, if the token names any; the backend enforces them.
    pub capabilities: Option<Vec<String>>,
}

/// Checks caveats, in order, for a request of `route` at unix time `now`.
pub fn check_caveats<'a>(
    caveats: impl IntoIterator<Item = &'a [u8]>,
    route: &str,
    now: u64,
    conditions: &dyn Conditions,
) -> Result<Grant, CaveatFailure> {
    let refused = |caveat: &Caveat, why: &str| CaveatFailure::Refused {
        caveat: caveat.to_string(),
        why: why.to_string(),
    };
    let mut first_services: Option<Vec<Service>> = None;
    let mut services: Option<Vec<Service>> = None;
    let mut expiries: Vec<(String, u64)> = Vec::new();
    let mut first_expiries: Vec<(String, u64)> = Vec::new();
    let mut capabilities: Vec<(String, Vec<String>)> = Vec::new();
    let mut route_conditions: Vec<Caveat> = Vec::new();

    for bytes in caveats {
        let caveat = Caveat::parse(bytes).map_err(|e| CaveatFailure::Refused {
            caveat: String::from_utf8_lossy(bytes).into_owned(),
            why: e.to_string(),
        })?;
        if let Some(service) = caveat.service() {
            let named = first_services
                .as_ref()
                .is_some_and(|list| list.iter().any(|s| s.name == service));
            if !named {
                return Err(refused(
                    &caveat,
                    "is about a service the token does not name",
                ));
            }
        }
        match &caveat {
            Caveat::Services(list) => {
                if let Some(earlier) = &services {
                    if !list.iter().all(|s| earlier.contains(s)) {
                        return Err(refused(&caveat, "widens an earlier services caveat"));
                    }
                } else {
                    first_services = Some(list.clone());
                }
                services = Some(list.clone());
            }
            Caveat::ValidUntil { service, unix } => {
                match expiries.iter_mut().find(|(s, _)| s == service) {
                    Some((_, earlier)) if *unix > *earlier => {
                        return Err(refused(&caveat, "extends an earlier expiry"));
                    }
                    Some((_, earlier)) => *earlier = *unix,
                    None => {
                        expiries.push((service.clone(), *unix));
                        first_expiries.push((service.clone(), *unix));
                    }
                }
            }
            Caveat::Capabilities {
                service,
                capabilities: list,
            } => match capabilities.iter_mut().find(|(s, _)| s == service) {
                Some((_, earlier)) if !list.iter().all(|c| earlier.contains(c)) => {
                    return Err(refused(&caveat, "widens earlier capabilities"));
                }
                Some((_, earlier)) => *earlier = list.clone(),
                None => capabilities.push((service.clone(), list.clone())),
            },
            Caveat::Condition { service, .. } => {
                if service == route {
                    route_conditions.push(caveat.clone());
                }
            }
        }
    }

    let Some(services) = services else {
        return Err(CaveatFailure::Refused {
            caveat: String::new(),
            why: "is missing: a token must name its services".to_string(),
        });
    };
    if !services.iter().any(|s| s.name == route) {
        let granted = services
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(",");
        return Err(CaveatFailure::WrongRoute {
            granted,
            requested: route.to_string(),
        });
    }
    let valid_until = expiries.iter().find(|(s, _)| s == route).map(|(_, t)| *t);
    let minted_valid_until = first_expiries
        .iter()
        .find(|(s, _)| s == route)
        .map(|(_, t)| *t);
    if let Some(valid_until) = valid_until
        && now >= valid_until
    {
        return Err(CaveatFailure::Expired { valid_until });
    }
    for caveat in &route_conditions {
        let Caveat::Condition { name, value, .. } = caveat else {
            unreachable!("only conditions are collected")
        };
        match conditions.check(name, value) {
            Some(true) => {}
            Some(false) => return Err(refused(caveat, "is not satisfied by this request")),
            None => return Err(refused(caveat, "is a condition this route does not know")),
        }
    }
    Ok(Grant {
        valid_until,
        minted_valid_until,
        capabilities: capabilities
            .into_iter()
            .find(|(s, _)| s == route)
            .map(|(_, c)| c),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(caveats: &[&str], route: &str, now: u64) -> Result<Grant, CaveatFailure> {
        check_caveats(
            caveats.iter().map(|c| c.as_bytes()),
            route,
            now,
            &|name: &str, value: &str| match name {
                "max_tokens" => Some(value.parse::<u32>().is_ok_and(|v| v >= 100)),
                _ => None,
            },
        )
    }

    #[test]
    fn parses_and_prints_each_kind() {
        for text in [
            "services=demo:0",
            "services=a:0,b-2.x:255",
            "demo_valid_until=1800000000",
            "meme_capabilities=",
            "meme_capabilities=read,write",
            "demo_max_tokens=100",
        ] {
            let caveat = Caveat::parse(text.as_bytes()).unwrap();
            assert_eq!(caveat.to_string(), text);
        }
        assert_eq!(
            Caveat::parse(b"my_svc_valid_until=5").unwrap(),
            Caveat::ValidUntil {
                service: "my_svc".into(),
                unix: 5
            }
        );
    }

    #[test]
    fn refuses_unreadable_caveats() {
        for text in [
            "",
            "services",
            "services=",
            "services=demo",
            "services=demo:256",
            "services=demo:-1",
            "services=demo:+1",
            "services=:0",
            "services=de mo:0",
            "demo_valid_until=",
            "demo_valid_until=soon",
            "demo_valid_until=99999999999999999999999",
            "_valid_until=5",
            "meme_capabilities=a,,b",
            "time < 2020",
            "demo_Upper=1",
            "demo_x=a\nb",
            "nounderscore=1",
        ] {
            assert!(Caveat::parse(text.as_bytes()).is_err(), "{text:?}");
        }
        assert!(Caveat::parse(&[0xff, b'=', b'1']).is_err());
    }

    #[test]
    fn grants_a_token_for_its_route_until_it_expires() {
        let caveats = ["services=demo:0", "demo_valid_until=100"];
        assert_eq!(check(&caveats, "demo", 99).unwrap().valid_until, Some(100));
        assert_eq!(
            check(&caveats, "demo", 100),
            Err(CaveatFailure::Expired { valid_until: 100 })
        );
        assert!(matches!(
            check(&caveats, "data", 1),
            Err(CaveatFailure::WrongRoute { .. })
        ));
    }

    #[test]
    fn refuses_widening() {
        let widen_expiry = [
            "services=demo:0",
            "demo_valid_until=100",
            "demo_valid_until=200",
        ];
        assert!(matches!(
            check(&widen_expiry, "demo", 1),
            Err(CaveatFailure::Refused { .. })
        ));
        let narrow_expiry = [
            "services=demo:0",
            "demo_valid_until=200",
            "demo_valid_until=100",
        ];
        assert_eq!(
            check(&narrow_expiry, "demo", 1).unwrap().valid_until,
            Some(100)
        );
        assert!(check(&narrow_expiry, "demo", 150).is_err());

        let widen_services = ["services=demo:0", "services=demo:0,data:0"];
        assert!(matches!(
            check(&widen_services, "data", 1),
            Err(CaveatFailure::Refused { .. })
        ));
        let narrow_services = ["services=demo:0,data:0", "services=data:0"];
        assert!(check(&narrow_services, "data", 1).is_ok());
        assert!(matches!(
            check(&narrow_services, "demo", 1),
            Err(CaveatFailure::WrongRoute { .. })
        ));

        let widen_caps = ["services=m:0", "m_capabilities=a", "m_capabilities=a,b"];
        assert!(check(&widen_caps, "m", 1).is_err());
        let narrow_caps = ["services=m:0", "m_capabilities=a,b", "m_capabilities=b"];
        assert_eq!(
            check(&narrow_caps, "m", 1).unwrap().capabilities,
            Some(vec!["b".to_string()])
        );
    }

    #[test]
    fn the_minted_expiry_is_the_first_whatever_a_holder_appends() {
        let minted = ["services=demo:0", "demo_valid_until=200"];
        let grant = check(&minted, "demo", 1).unwrap();
        assert_eq!(
            (grant.valid_until, grant.minted_valid_until),
            (Some(200), Some(200))
        );
        let attenuated = [
            "services=demo:0",
            "demo_valid_until=200",
            "demo_valid_until=150",
            "services=demo:0",
            "demo_valid_until=3",
        ];
        let grant = check(&attenuated, "demo", 1).unwrap();
        assert_eq!(
            (grant.valid_until, grant.minted_valid_until),
            (Some(3), Some(200))
        );
        // Expiries of other services say nothing about this route's.
        let two = ["services=a:0,b:0", "b_valid_until=9", "a_valid_until=50"];
        assert_eq!(check(&two, "a", 1).unwrap().minted_valid_until, Some(50));
    }

    #[test]
    fn fails_closed() {
        // No services caveat at all.
        assert!(check(&["demo_valid_until=100"], "demo", 1).is_err());
        assert!(check(&[], "demo", 1).is_err());
        // A caveat about a service the token never named.
        assert!(check(&["services=demo:0", "data_valid_until=5"], "demo", 1).is_err());
        // A caveat before the services caveat cannot be tied to a service.
        assert!(check(&["demo_valid_until=5", "services=demo:0"], "demo", 1).is_err());
        // Unknown and unsatisfied route conditions.
        assert!(check(&["services=demo:0", "demo_color=red"], "demo", 1).is_err());
        assert!(check(&["services=demo:0", "demo_max_tokens=5"], "demo", 1).is_err());
        assert!(check(&["services=demo:0", "demo_max_tokens=500"], "demo", 1).is_ok());
        // Unreadable text.
        assert!(check(&["services=demo:0", "time < 2020"], "demo", 1).is_err());
    }

    #[test]
    fn conditions_of_other_services_are_theirs_to_check() {
        let caveats = ["services=a:0,b:0", "b_color=red", "services=a:0"];
        assert!(check(&caveats, "a", 1).is_ok());
    }
}
