//! The route table: which requests cost what, and where they go.
//!
//! The same table prices the 402s, dispatches requests and writes the catalog, so the three
//! cannot drift apart.

use axum::http::Method;
use url::Url;

/// Where a route's requests go once paid for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Forwarded to this upstream URL (the request path is appended to its path).
    Upstream(Url),
    /// Answered by a built-in handler: `demo`, `data`, `generate`, `status`.
    Builtin(String),
}

/// One route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The id minted into tokens (`services=<id>:0`): letters, digits, `.` and `-`.
    pub id: String,
    /// The method, or `None` for any.
    pub method: Option<Method>,
    /// The path.
    pub path: String,
    /// Whether `path` is a prefix (`/v1/` matches `/v1/anything`) rather than exact.
    pub prefix: bool,
    /// The price in sats; `None` for a public route.
    pub price_sats: Option<u64>,
    /// What it does, for the catalog.
    pub description: String,
    /// Where it goes.
    pub target: Target,
    /// Why the route cannot be served now (answered 503 before any invoice, left out of the
    /// catalog); `None` when it can.
    pub unavailable: Option<String>,
}

impl Route {
    /// A paid route answered by `target`.
    pub fn paid(id: &str, method: Method, path: &str, price_sats: u64, target: Target) -> Self {
        Route {
            id: id.to_string(),
            method: Some(method),
            path: path.to_string(),
            prefix: false,
            price_sats: Some(price_sats),
            description: String::new(),
            target,
            unavailable: None,
        }
    }

    /// Whether the route serves a request for `method` and `path`.
    pub fn matches(&self, method: &Method, path: &str) -> bool {
        let method_ok = match &self.method {
            None => true,
            Some(m) => m == method || (m == Method::GET && method == Method::HEAD),
        };
        method_ok
            && if self.prefix {
                path.starts_with(&self.path)
            } else {
                path == self.path
            }
    }

    /// True if anyone may call it without paying.
    pub fn is_public(&self) -> bool {
        self.price_sats.is_none()
    }

    fn overlaps(&self, other: &Route) -> bool {
        let methods = match (&self.method, &other.method) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        let paths = match (self.prefix, other.prefix) {
            (false, false) => self.path == other.path,
            (true, false) => other.path.starts_with(&self.path),
            (false, true) => self.path.starts_with(&other.path),
            (true, true) => self.path == other.path,
        };
        methods && paths
    }
}

/// Why a route table cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// Two routes claim the same requests.
    #[error(
        "routes {0:?} and {1:?} both match the same requests; make their paths or methods differ"
    )]
    Ambiguous(String, String),
    /// Two routes share an id.
    #[error("two routes have the id {0:?}; ids must be unique")]
    DuplicateId(String),
    /// An id that cannot be minted into a caveat.
    #[error("route id {0:?} must be 1 to 64 characters of A-Z a-z 0-9 . -")]
    BadId(String),
    /// A path that does not start with `/`.
    #[error("route {0:?}: the path must start with /")]
    BadPath(String),
    /// A paid route with a price of zero.
    #[error("route {0:?}: a price must be at least 1 sat (leave it out for a public route)")]
    ZeroPrice(String),
}

/// The routes, checked: unique ids, no two matching the same request (except an exact path or a
/// longer prefix inside a shorter prefix, where the most specific wins).
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// Checks and builds the table.
    pub fn new(routes: Vec<Route>) -> Result<Self, RouteError> {
        for (i, route) in routes.iter().enumerate() {
            if !plannt_l402::is_route_id(&route.id) {
                return Err(RouteError::BadId(route.id.clone()));
            }
            if !route.path.starts_with('/') {
                return Err(RouteError::BadPath(route.id.clone()));
            }
            if route.price_sats == Some(0) {
                return Err(RouteError::ZeroPrice(route.id.clone()));
            }
            for other in &routes[..i] {
                if other.id == route.id {
                    return Err(RouteError::DuplicateId(route.id.clone()));
                }
                // An exact path inside a prefix, or a longer prefix inside a shorter one, is fine:
                // the most specific wins. Two of the same kind on the same path are not.
                if route.prefix == other.prefix && route.overlaps(other) {
                    return Err(RouteError::Ambiguous(other.id.clone(), route.id.clone()));
                }
            }
        }
        Ok(RouteTable { routes })
    }

    /// The route that serves a request: an exact match first, then the longest prefix.
    pub fn find(&self, method: &Method, path: &str) -> Option<&Route> {
        let mut best: Option<&Route> = None;
        for route in self.routes.iter().filter(|r| r.matches(method, path)) {
            best = match best {
                None => Some(route),
                Some(b) if !route.prefix && b.prefix => Some(route),
                Some(b) if route.prefix && b.prefix && route.path.len() > b.path.len() => {
                    Some(route)
                }
                Some(b) => Some(b),
            };
        }
        best
    }

    /// Every route, in configuration order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(id: &str, method: Option<Method>, path: &str, prefix: bool) -> Route {
        Route {
            id: id.into(),
            method,
            path: path.into(),
            prefix,
            price_sats: Some(1),
            description: String::new(),
            target: Target::Builtin("demo".into()),
            unavailable: None,
        }
    }

    #[test]
    fn finds_exact_then_longest_prefix() {
        let table = RouteTable::new(vec![
            route("api", None, "/api/", true),
            route("api-v2", None, "/api/v2/", true),
            route("special", Some(Method::GET), "/api/v2/special", false),
        ])
        .unwrap();
        let find = |m: Method, p: &str| table.find(&m, p).map(|r| r.id.as_str());
        assert_eq!(find(Method::GET, "/api/x"), Some("api"));
        assert_eq!(find(Method::POST, "/api/v2/x"), Some("api-v2"));
        assert_eq!(find(Method::GET, "/api/v2/special"), Some("special"));
        assert_eq!(find(Method::HEAD, "/api/v2/special"), Some("special"));
        assert_eq!(find(Method::POST, "/api/v2/special"), Some("api-v2"));
        assert_eq!(find(Method::GET, "/other"), None);
    }

    #[test]
    fn refuses_ambiguous_and_bad_routes() {
        let same = RouteTable::new(vec![
            route("a", Some(Method::GET), "/x", false),
            route("b", None, "/x", false),
        ]);
        assert!(matches!(same, Err(RouteError::Ambiguous(_, _))));
        let same_prefix = RouteTable::new(vec![
            route("a", None, "/x/", true),
            route("b", None, "/x/", true),
        ]);
        assert!(matches!(same_prefix, Err(RouteError::Ambiguous(_, _))));
        let methods_differ = RouteTable::new(vec![
            route("a", Some(Method::GET), "/x", false),
            route("b", Some(Method::POST), "/x", false),
        ]);
        assert!(methods_differ.is_ok());
        assert!(matches!(
            RouteTable::new(vec![
                route("a", None, "/x", false),
                route("a", None, "/y", false)
            ]),
            Err(RouteError::DuplicateId(_))
        ));
        assert!(matches!(
            RouteTable::new(vec![route("a_b", None, "/x", false)]),
            Err(RouteError::BadId(_))
        ));
        assert!(matches!(
            RouteTable::new(vec![route("a", None, "x", false)]),
            Err(RouteError::BadPath(_))
        ));
        let mut free = route("a", None, "/x", false);
        free.price_sats = Some(0);
        assert!(matches!(
            RouteTable::new(vec![free]),
            Err(RouteError::ZeroPrice(_))
        ));
    }
}
