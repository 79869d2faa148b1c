//! The route table: which requests cost what, and where they go.
//!
//! The same table prices the 402s, dispatches requests and writes the catalog, so the three
//! cannot drift apart.

use std::sync::Arc;

use axum::http::Method;
use plannt_l402::Dialect;
use plannt_meter::PriceRule;
use url::Url;

use crate::quota::Quota;

/// Where a route's requests go once paid for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Forwarded to this upstream URL (the request path is appended to its path) by a
    /// [`crate::Proxy`].
    Upstream(Url),
    /// Answered by the service the paywall layer wraps (in `plannt serve`, a built-in handler).
    Service,
}

/// What an upstream failure (a 5xx answer, or no answer in time) does to the token, when the
/// upstream received the request and may have acted on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnUpstreamFailure {
    /// The token is given back (`x-l402: released`): the client retries with it.
    Release,
    /// The token is spent (`x-l402: spent`): the failure is the answer it bought.
    Spend,
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
    /// What an upstream failure does to the token; `None`: decided by the method
    /// ([`Route::releases_on_failure`]).
    pub on_upstream_failure: Option<OnUpstreamFailure>,
    /// The payment dialects the route's 402 offers and its requests are redeemed in; `None`:
    /// the paywall's ([`crate::PaywallOptions::dialects`]). x402 is offered only when the
    /// backend can look up invoices.
    pub dialects: Option<Vec<Dialect>>,
    /// Requests a client address may make without paying, per window: counted before any
    /// invoice; `None`: none.
    pub free: Option<Quota>,
    /// Requests a client address may make at all, paid or not, per window (429 beyond);
    /// `None`: no limit beyond the challenge rate.
    pub rate_limit: Option<Quota>,
    /// The rule that prices each request from its body (`price = { per = "openai-tokens", … }`),
    /// instead of `price_sats`; `None`: the fixed price.
    pub meter: Option<Arc<PriceRule>>,
    /// Prepaid sessions on a metered route (the MPP `session` intent, [`crate::session`]);
    /// `None`: single-use payments only.
    pub session: Option<SessionPolicy>,
}

/// A metered route's prepaid sessions: `session = { deposit_sats = 2000, idle_secs = 300 }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// The deposit that opens a session (and each top-up), in sats; at least the price of the
    /// request that asks for it.
    pub deposit_sats: u64,
    /// Seconds without a request after which the gateway closes the session and refunds it.
    pub idle_secs: u64,
}

/// How well a route matches a path: a higher rank wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    /// Under a prefix, the longer prefix ranking higher.
    Prefix(usize),
    /// An exact route's path with another case, a trailing slash or a format suffix.
    Variant,
    /// An exact route's path, in any case.
    Exact,
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
            on_upstream_failure: None,
            dialects: None,
            free: None,
            rate_limit: None,
            meter: None,
            session: None,
        }
    }

    /// Whether the route serves a request for `method` and `path` (a path in the canonical
    /// form of [`crate::path::canonical`]).
    pub fn matches(&self, method: &Method, path: &str) -> bool {
        self.rank(method, path).is_some()
    }

    /// Upstreams fold case, ignore a trailing slash, or read `/search.json` as `/search` with a
    /// format: an exact route claims each of those spellings, so a variant is never priced as
    /// a cheaper prefix route and then served as this one.
    fn rank(&self, method: &Method, path: &str) -> Option<Rank> {
        let method_ok = match &self.method {
            None => true,
            Some(m) => m == method || (m == Method::GET && method == Method::HEAD),
        };
        if !method_ok {
            return None;
        }
        let (route, path) = (self.path.as_bytes(), path.as_bytes());
        if self.prefix {
            let under = starts_with_ignore_case(path, route)
                // `/v1/search` is what a framework serves for a `/v1/search/` route.
                || (route.last() == Some(&b'/') && route[..route.len() - 1].eq_ignore_ascii_case(path));
            return under.then_some(Rank::Prefix(route.len()));
        }
        if route.eq_ignore_ascii_case(path) {
            return Some(Rank::Exact);
        }
        let route = route.strip_suffix(b"/").unwrap_or(route);
        let bare = path.strip_suffix(b"/").unwrap_or(path);
        if route.eq_ignore_ascii_case(bare) {
            return Some(Rank::Variant);
        }
        let suffixed = starts_with_ignore_case(path, route)
            && path[route.len()..]
                .strip_prefix(b".")
                .is_some_and(|format| {
                    (1..=10).contains(&format.len()) && format.iter().all(u8::is_ascii_alphanumeric)
                });
        suffixed.then_some(Rank::Variant)
    }

    /// True if anyone may call it without paying.
    pub fn is_public(&self) -> bool {
        self.price_sats.is_none() && self.meter.is_none()
    }

    /// Whether a failure of the upstream after it received a request of `method` gives the
    /// token back: as the route says, else only for methods that are safe or idempotent
    /// (RFC 9110 9.2: GET, HEAD, OPTIONS, TRACE, PUT, DELETE), which can run again harmlessly.
    /// A POST the upstream received may have taken effect, so its token is spent.
    pub fn releases_on_failure(&self, method: &Method) -> bool {
        match self.on_upstream_failure {
            Some(policy) => policy == OnUpstreamFailure::Release,
            None => matches!(
                *method,
                Method::GET
                    | Method::HEAD
                    | Method::OPTIONS
                    | Method::TRACE
                    | Method::PUT
                    | Method::DELETE
            ),
        }
    }

    fn overlaps(&self, other: &Route) -> bool {
        let methods = match (&self.method, &other.method) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        // Paths compare as matching does: without case, and an exact path without its
        // trailing slash.
        let key = |r: &Route| {
            let path = r.path.to_ascii_lowercase();
            match r.prefix {
                true => path,
                false => path.trim_end_matches('/').to_string(),
            }
        };
        let (a, b) = (key(self), key(other));
        let paths = match (self.prefix, other.prefix) {
            (false, false) => a == b,
            (true, false) => b.starts_with(&a),
            (false, true) => a.starts_with(&b),
            (true, true) => a == b,
        };
        methods && paths
    }
}

fn starts_with_ignore_case(text: &[u8], prefix: &[u8]) -> bool {
    text.len() >= prefix.len() && text[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// Why a route table cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
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

    /// The route that serves a request (its path in canonical form): an exact route's own path
    /// first, then its variants, then the longest prefix.
    pub fn find(&self, method: &Method, path: &str) -> Option<&Route> {
        self.routes
            .iter()
            .filter_map(|r| r.rank(method, path).map(|rank| (rank, r)))
            // Of equal ranks the first configured wins, as `max_by_key` keeps the last.
            .rev()
            .max_by_key(|(rank, _)| *rank)
            .map(|(_, r)| r)
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
            target: Target::Service,
            unavailable: None,
            on_upstream_failure: None,
            dialects: None,
            free: None,
            rate_limit: None,
            meter: None,
            session: None,
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
    fn variants_of_an_exact_path_are_priced_as_it() {
        // The example of docs/gateway.md: a dear exact route inside a cheap prefix.
        let table = RouteTable::new(vec![
            route("search", Some(Method::GET), "/v1/search", false),
            route("v1", None, "/v1/", true),
            route("report", None, "/v1/report/", true),
            route("search-json", Some(Method::GET), "/v1/search.xml", false),
        ])
        .unwrap();
        let find = |p: &str| table.find(&Method::GET, p).map(|r| r.id.as_str());
        for path in [
            "/v1/search",
            "/v1/SEARCH",
            "/V1/Search",
            "/v1/search/",
            "/v1/search.json",
            "/v1/SEARCH.Json",
        ] {
            assert_eq!(find(path), Some("search"), "{path}");
        }
        assert_eq!(find("/v1/search.xml"), Some("search-json"));
        assert_eq!(find("/v1/searchx"), Some("v1"));
        assert_eq!(find("/v1/search.tar.gz"), Some("v1"));
        assert_eq!(find("/v1/search/x"), Some("v1"));
        assert_eq!(find("/V1/other"), Some("v1"));
        assert_eq!(find("/v1/report"), Some("report"));
        assert_eq!(find("/v1/REPORT/2026"), Some("report"));
        assert_eq!(find("/v2/search"), None);
    }

    #[test]
    fn the_method_decides_what_an_upstream_failure_does_unless_the_route_says() {
        let mut r = route("a", None, "/a", false);
        for method in [
            Method::GET,
            Method::HEAD,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ] {
            assert!(r.releases_on_failure(&method), "{method}");
        }
        for method in [Method::POST, Method::PATCH, Method::CONNECT] {
            assert!(!r.releases_on_failure(&method), "{method}");
        }
        r.on_upstream_failure = Some(OnUpstreamFailure::Release);
        assert!(r.releases_on_failure(&Method::POST));
        r.on_upstream_failure = Some(OnUpstreamFailure::Spend);
        assert!(!r.releases_on_failure(&Method::GET));
    }

    #[test]
    fn refuses_ambiguous_and_bad_routes() {
        for (a, b) in [("/x", "/X"), ("/x", "/x/")] {
            let folded =
                RouteTable::new(vec![route("a", None, a, false), route("b", None, b, false)]);
            assert!(
                matches!(folded, Err(RouteError::Ambiguous(_, _))),
                "{a} {b}"
            );
        }
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
