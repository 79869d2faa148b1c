//! Discovery: a server's catalog at `/.well-known/l402.json` (the L402 discovery manifest,
//! lightninglabs/L402 PR #27) read into a price list, free and without paying anything, through
//! the paying client so that where it goes is checked as for every other request. The catalog's
//! types are [`plannt_client::l402::catalog`]'s, the ones a Plannt gateway writes it with.

use std::time::Duration;

use plannt_client::l402::catalog::{
    CATALOG_PATH, Catalog, Match, MeteredRule, QuotaTerms, SessionTerms,
};
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
    /// For a route priced by its tokens (`per`: `openai-tokens`): the rule, each model's sats
    /// per 1k input and output tokens, the output caps and the minimum. The exact price is the
    /// 402's, for each request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price_rule: Option<MeteredRule>,
    /// Requests a client address may make without paying, per window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub free_tier: Option<QuotaTerms>,
    /// Requests a client address may make at all, paid or not, per window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<QuotaTerms>,
    /// The prepaid sessions the server offers: the deposit and the idle timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionTerms>,
}

impl Entry {
    /// How the entry is priced, in one sentence for the agent: the price or the rule, then the
    /// free tier, the rate limit and the sessions, each if any.
    pub fn price_words(&self) -> String {
        let mut words = match (&self.price_rule, self.price_sats) {
            _ if self.free => "free".to_string(),
            (Some(rule), _) => {
                format!("priced by its tokens, the exact price in each request's 402: {rule}")
            }
            (None, Some(sats)) => format!("{sats} sats per request"),
            (None, None) => "price not given".to_string(),
        };
        if let Some(free) = &self.free_tier {
            words += &format!("; free for {free}");
        }
        if let Some(limit) = &self.rate_limit {
            words += &format!("; limited to {limit}, paid or not");
        }
        if let Some(session) = &self.session {
            words += &format!("; prepaid sessions: {session}");
        }
        words
    }
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
                price_rule: service.pricing.as_ref().and_then(|p| p.metered_rule()),
                free_tier: service.free,
                rate_limit: service.rate_limit,
                session: service.session,
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
                {"name": "broken", "endpoints": [{"method": "GET"}]},
                {"name": "chat", "pricing": {"model": "metered", "per": "openai-tokens",
                  "rule": {"per": "openai-tokens", "models": {"gpt-4o": {"input_per_1k": 10, "output_per_1k": 40}},
                           "default_max_tokens": 256, "max_tokens_ceiling": 2048, "min_sats": 1, "max_body_bytes": 1048576}},
                 "free": {"requests": 2, "per_secs": 60}, "rate_limit": {"requests": 100, "per_secs": 60},
                 "session": {"deposit_sats": 500, "idle_secs": 300},
                 "endpoints": [{"method": "POST", "path": "/v1/chat/completions", "match": "exact"}]}
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
        assert_eq!(list.len(), 4);
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
        assert_eq!(list[0].price_words(), "21 sats per request");

        // A metered service: its rule, free tier, rate limit and sessions, in JSON and in words.
        let chat = &list[3];
        assert_eq!(
            (chat.price_sats, chat.per.as_deref()),
            (None, Some("openai-tokens"))
        );
        let json = serde_json::to_value(chat).unwrap();
        assert_eq!(json["price_rule"]["models"]["gpt-4o"]["output_per_1k"], 40);
        assert_eq!(json["price_rule"]["max_tokens_ceiling"], 2048);
        assert_eq!(json["free_tier"], json!({"requests": 2, "per_secs": 60}));
        assert_eq!(json["rate_limit"], json!({"requests": 100, "per_secs": 60}));
        assert_eq!(
            json["session"],
            json!({"deposit_sats": 500, "idle_secs": 300})
        );
        assert_eq!(
            chat.price_words(),
            "priced by its tokens, the exact price in each request's 402: openai-tokens per 1k \
             input/output tokens: gpt-4o 10/40 sats; output priced at max_tokens (256 when unset, \
             at most 2048); at least 1 sat; free for 2 requests per 60 s per client address; \
             limited to 100 requests per 60 s per client address, paid or not; prepaid sessions: \
             a 500 sats deposit, refunded less what was spent at close or after 300 s idle"
        );
        let fixed = serde_json::to_value(&list[0]).unwrap();
        assert!(fixed.get("price_rule").is_none() && fixed.get("session").is_none());
    }
}
