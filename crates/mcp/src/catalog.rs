//! Discovery: a server's catalog at `/.well-known/l402.json` (the L402 discovery manifest,
//! lightninglabs/L402 PR #27) read into a price list, free and without paying anything, through
//! the paying client so that where it goes is checked as for every other request. The catalog's
//! types are [`plannt_client::l402::catalog`]'s, the ones a Plannt gateway writes it with.

use std::time::Duration;

use plannt_client::l402::catalog::{CATALOG_PATH, Catalog, Match};
use plannt_client::{Client, ClientError, Request};
use reqwest::header::{ACCEPT, HeaderValue};
use serde::Serialize;
use url::Url;

/// The most of a catalog we read.
const MAX_CATALOG_BYTES: usize = 1024 * 1024;

/// The catalog URL for the server of `url`.
pub fn catalog_url(url: &Url) -> Url {
    let mut catalog = url.clone();
    catalog.set_path(CATALOG_PATH);
    catalog.set_query(None);
    catalog.set_fragment(None);
    catalog
}

/// How long a catalog may take to arrive.
const CATALOG_TIMEOUT: Duration = Duration::from_secs(30);

/// Fetches the catalog through `client`, which checks where the request may go and never pays:
/// `Ok(None)` when the server has none (or not one we can read, or not in time), `Err` when the
/// request was refused.
pub async fn fetch_catalog(client: &Client, url: &Url) -> Result<Option<Catalog>, ClientError> {
    let mut request = Request::get(url.clone());
    request
        .headers
        .insert(ACCEPT, HeaderValue::from_static("application/json"));
    let fetched = tokio::time::timeout(CATALOG_TIMEOUT, async {
        let mut response = client.send_unpaid(&request).await?;
        if !response.status.is_success() {
            return Ok(None);
        }
        Ok(response.bytes(MAX_CATALOG_BYTES).await.ok())
    })
    .await;
    let body = match fetched {
        Ok(Ok(Some(body))) => body,
        Ok(Err(ClientError::Refused(refusal))) => return Err(ClientError::Refused(refusal)),
        _ => return Ok(None),
    };
    Ok(serde_json::from_slice::<Catalog>(&body).ok())
}

/// One endpoint of the price list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// The service (route) it belongs to.
    pub service: String,
    /// What it does.
    pub description: String,
    /// Its method, or `*`.
    pub method: String,
    /// Its full URL.
    pub url: String,
    /// `exact` or `prefix`.
    #[serde(rename = "match")]
    pub matching: Match,
    /// Its price in sats, when the catalog gives one (0 when free).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price_sats: Option<u64>,
    /// True for a free endpoint.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub free: bool,
    /// What the price buys (`request`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per: Option<String>,
    /// True when each token buys one request.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub single_use_token: bool,
}

/// The catalog as a price list: one entry per endpoint that names a path, with its full URL,
/// method and price.
pub fn price_list(catalog: &Catalog, base: &Url) -> Vec<Entry> {
    let mut out = Vec::new();
    for service in &catalog.services {
        let free = service.is_free();
        for endpoint in service.endpoints.iter().filter(|e| !e.path.is_empty()) {
            out.push(Entry {
                service: service.name.clone(),
                description: service.description.clone(),
                method: endpoint.method.clone(),
                url: base
                    .join(&endpoint.path)
                    .map(|u| u.to_string())
                    .unwrap_or_default(),
                matching: endpoint.matching,
                price_sats: service.price_sats(),
                free,
                per: if free {
                    None
                } else {
                    service.pricing.as_ref().and_then(|p| p.per.clone())
                },
                single_use_token: service.single_use(),
            });
        }
    }
    out
}

/// The entry of `list` that serves `url`'s path, if any: an exact match first, then the
/// longest prefix.
pub fn matching<'a>(list: &'a [Entry], url: &Url) -> Option<&'a Entry> {
    let path = url.path();
    let entry_path = |e: &Entry| Url::parse(&e.url).ok().map(|u| u.path().to_string());
    list.iter()
        .find(|e| e.matching == Match::Exact && entry_path(e).as_deref() == Some(path))
        .or_else(|| {
            list.iter()
                .filter(|e| e.matching == Match::Prefix)
                .filter_map(|e| entry_path(e).map(|p| (e, p)))
                .filter(|(_, p)| path.starts_with(p.as_str()))
                .max_by_key(|(_, p)| p.len())
                .map(|(e, _)| e)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn catalog() -> Catalog {
        serde_json::from_value(json!({
            "l402_version": "0",
            "services": [
                {"name": "demo", "description": "Demo", "pricing": {"model": "fixed", "amount_sats": 21, "per": "request"},
                 "token": {"single_use": true},
                 "endpoints": [{"method": "GET", "path": "/v1/demo", "match": "exact"}]},
                {"name": "api", "pricing": {"model": "fixed", "amount_sats": 5},
                 "endpoints": [{"method": "*", "path": "/api", "match": "prefix"}]},
                {"name": "status", "pricing": {"model": "free"},
                 "endpoints": [{"method": "GET", "path": "/status", "match": "exact"}]},
                {"name": "broken", "endpoints": [{"method": "GET"}]}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn a_catalog_becomes_a_price_list() {
        let base = Url::parse("http://127.0.0.1:8402/anything?x=1").unwrap();
        assert_eq!(
            catalog_url(&base).as_str(),
            "http://127.0.0.1:8402/.well-known/l402.json"
        );
        let list = price_list(&catalog(), &base);
        assert_eq!(list.len(), 3);
        assert_eq!(list[0].url, "http://127.0.0.1:8402/v1/demo");
        assert_eq!(list[0].price_sats, Some(21));
        assert!(list[0].single_use_token);
        assert_eq!(list[1].price_sats, Some(5));
        assert!(list[2].free);
        let json = serde_json::to_value(&list[0]).unwrap();
        assert_eq!(json["match"], "exact");
        assert_eq!(json["per"], "request");

        let at = |u: &str| matching(&list, &Url::parse(u).unwrap()).map(|e| e.service.clone());
        assert_eq!(at("http://127.0.0.1:8402/v1/demo"), Some("demo".into()));
        assert_eq!(at("http://127.0.0.1:8402/api/v2/x"), Some("api".into()));
        assert_eq!(at("http://127.0.0.1:8402/v1/demo/more"), None);
    }
}
