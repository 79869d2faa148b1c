//! Discovery: a server's catalog at `/.well-known/l402.json` (the L402 discovery manifest,
//! lightninglabs/L402 PR #27) read into a price list, free and without paying anything, through
//! the paying client so that where it goes is checked as for every other request.

use std::time::Duration;

use plannt_client::{Client, ClientError, Request};
use reqwest::header::{ACCEPT, HeaderValue};
use serde_json::{Value, json};
use url::Url;

/// The catalog's place on a server.
pub const CATALOG_PATH: &str = "/.well-known/l402.json";

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
pub async fn fetch_catalog(client: &Client, url: &Url) -> Result<Option<Value>, ClientError> {
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
    let Ok(catalog) = serde_json::from_slice::<Value>(&body) else {
        return Ok(None);
    };
    Ok(catalog["services"].is_array().then_some(catalog))
}

/// The catalog as a price list: one entry per endpoint, with its full URL, method and price.
pub fn price_list(catalog: &Value, base: &Url) -> Vec<Value> {
    let mut out = Vec::new();
    for service in catalog["services"].as_array().into_iter().flatten() {
        let pricing = &service["pricing"];
        let price = pricing["amount_sats"].as_u64().or_else(|| {
            service["tiers"]
                .as_array()
                .and_then(|t| t.first())
                .and_then(|t| t["amount_sats"].as_u64())
        });
        let free = pricing["model"] == "free";
        for endpoint in service["endpoints"].as_array().into_iter().flatten() {
            let Some(path) = endpoint["path"].as_str() else {
                continue;
            };
            let full = base.join(path).map(|u| u.to_string()).unwrap_or_default();
            let mut entry = json!({
                "service": service["name"],
                "description": service["description"],
                "method": endpoint["method"].as_str().unwrap_or("*"),
                "url": full,
                "match": endpoint["match"].as_str().unwrap_or("exact"),
            });
            if free {
                entry["price_sats"] = json!(0);
                entry["free"] = json!(true);
            } else if let Some(sats) = price {
                entry["price_sats"] = json!(sats);
                entry["per"] = pricing["per"].clone();
            }
            if service["token"]["single_use"] == true {
                entry["single_use_token"] = json!(true);
            }
            out.push(entry);
        }
    }
    out
}

/// The entry of `list` that serves `url`'s path, if any: an exact match first, then the
/// longest prefix.
pub fn matching<'a>(list: &'a [Value], url: &Url) -> Option<&'a Value> {
    let path = url.path();
    let entry_path = |e: &Value| {
        e["url"]
            .as_str()
            .and_then(|u| Url::parse(u).ok())
            .map(|u| u.path().to_string())
    };
    list.iter()
        .find(|e| e["match"] == "exact" && entry_path(e).as_deref() == Some(path))
        .or_else(|| {
            list.iter()
                .filter(|e| e["match"] == "prefix")
                .filter_map(|e| entry_path(e).map(|p| (e, p)))
                .filter(|(_, p)| path.starts_with(p.as_str()))
                .max_by_key(|(_, p)| p.len())
                .map(|(e, _)| e)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Value {
        json!({
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
        })
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
        assert_eq!(list[0]["url"], "http://127.0.0.1:8402/v1/demo");
        assert_eq!(list[0]["price_sats"], 21);
        assert_eq!(list[0]["single_use_token"], true);
        assert_eq!(list[1]["price_sats"], 5);
        assert_eq!(list[2]["free"], true);

        let at = |u: &str| matching(&list, &Url::parse(u).unwrap()).map(|e| e["service"].clone());
        assert_eq!(at("http://127.0.0.1:8402/v1/demo"), Some(json!("demo")));
        assert_eq!(at("http://127.0.0.1:8402/api/v2/x"), Some(json!("api")));
        assert_eq!(at("http://127.0.0.1:8402/v1/demo/more"), None);
    }
}
