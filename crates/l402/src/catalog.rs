//! The catalog at `/.well-known/l402.json`: what a server sells and at what price, free to read.
//!
//! It follows the compact JSON profile of the L402 discovery proposal (lightninglabs/L402 PR
//! #27): a version, the provider, the payment scheme, and services, each with its endpoints, its
//! price and the caveats its tokens carry. Plannt adds, as fields other readers ignore: the
//! payment dialects a 402 offers (`payment.dialects`, each service's `dialects`) and where the
//! same routes are described as OpenAPI (`openapi`). A Plannt gateway writes it with these types and
//! Plannt's client reads it with them, so writer and reader cannot drift apart. Reading is
//! lenient where other servers differ: unknown fields are ignored, and most fields may be
//! missing.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a server serves its catalog.
pub const CATALOG_PATH: &str = "/.well-known/l402.json";

/// The catalog document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    /// `"0"`.
    #[serde(default)]
    pub l402_version: String,
    /// Who serves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Provider>,
    /// How to pay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment: Option<PaymentTerms>,
    /// What it sells.
    pub services: Vec<Service>,
    /// Where the same routes are described as an OpenAPI document (a path on this server, or a
    /// URL). A Plannt extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openapi: Option<String>,
}

/// The server's provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provider {
    /// A name for people.
    #[serde(default)]
    pub name: String,
    /// The software, e.g. `plannt/0.1.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software: Option<String>,
}

/// How the server is paid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentTerms {
    /// `L402` when a paid route accepts L402 (what readers of the L402 profile look for), else
    /// the scheme of the first dialect offered (`Payment` for MPP, `x402`). `dialects` has all.
    #[serde(default)]
    pub scheme: String,
    /// The Lightning network: `mainnet`, `regtest`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// The credential's form, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<String>,
    /// The challenge's form, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge: Option<String>,
    /// Every payment dialect the server knows, in the order its 402s carry them, each said to be
    /// offered or not; empty when the catalog does not say (then L402 alone). A Plannt
    /// extension: readers that do not know it ignore it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dialects: Vec<DialectTerms>,
}

/// One payment dialect: whether it is offered, and its headers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DialectTerms {
    /// `l402`, `mpp` or `x402`.
    pub name: String,
    /// Whether some paid route offers it.
    #[serde(default)]
    pub offered: bool,
    /// Why it is not offered, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why_not: Option<String>,
    /// The challenge's form, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge: Option<String>,
    /// The credential's form, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// The header of the paid answer that proves it was paid, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<String>,
}

/// One service: a route of the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// Its name: the route id its tokens are minted for.
    #[serde(default)]
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: String,
    /// Where it is served.
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    /// Its price; `None` when the catalog does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing: Option<Pricing>,
    /// Prices per tier (Plannt sells tier 0 only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tiers: Vec<Tier>,
    /// The caveats its tokens carry, e.g. `services=demo:0`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caveats: Vec<String>,
    /// How its tokens may be used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenTerms>,
    /// `proxy` for a route forwarded to an upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The payment dialects its 402 offers, by name (`l402`, `mpp`, `x402`), in the order the
    /// 402 carries them; empty when the catalog does not say (then L402 alone). A Plannt
    /// extension: readers that do not know it ignore it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dialects: Vec<String>,
    /// Requests a client address may make without paying, per window; `None`: none. A Plannt
    /// extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free: Option<QuotaTerms>,
    /// Requests a client address may make at all, paid or not, per window (429 beyond);
    /// `None`: no such limit. A Plannt extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<QuotaTerms>,
    /// The prepaid sessions its 402 offers beside single payments (MPP's `intent="session"`);
    /// `None`: none. A Plannt extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionTerms>,
}

/// A service's prepaid sessions: one deposit, requests debited from it, the rest refunded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionTerms {
    /// The deposit that opens a session (and each top-up), in sats.
    pub deposit_sats: u64,
    /// Seconds without a request after which the server closes the session and refunds it.
    pub idle_secs: u64,
}

impl fmt::Display for SessionTerms {
    /// `a 500 sats deposit, refunded less what was spent at close or after 300 s idle`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a {} sats deposit, refunded less what was spent at close or after {} s idle",
            self.deposit_sats, self.idle_secs
        )
    }
}

/// So many requests per window, per client address (IPv6 by /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaTerms {
    /// Requests per window.
    pub requests: u32,
    /// The window, in seconds.
    pub per_secs: u64,
}

impl fmt::Display for QuotaTerms {
    /// `10 requests per 3600 s per client address`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let noun = if self.requests == 1 {
            "request"
        } else {
            "requests"
        };
        write!(
            f,
            "{} {noun} per {} s per client address",
            self.requests, self.per_secs
        )
    }
}

impl Service {
    /// The price of one request in sats: the fixed amount, else the first tier's; `Some(0)` for
    /// a free service; `None` when the catalog gives none.
    pub fn price_sats(&self) -> Option<u64> {
        match &self.pricing {
            Some(pricing) if pricing.is_free() => Some(0),
            Some(Pricing {
                amount_sats: Some(sats),
                ..
            }) => Some(*sats),
            _ => self.tiers.first().map(|t| t.amount_sats),
        }
    }

    /// Whether it is free.
    pub fn is_free(&self) -> bool {
        self.pricing.as_ref().is_some_and(Pricing::is_free)
    }

    /// Whether each token buys one request.
    pub fn single_use(&self) -> bool {
        self.token.as_ref().is_some_and(|t| t.single_use)
    }
}

/// A place a service is served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The method, or `*` for any.
    #[serde(default = "any_method")]
    pub method: String,
    /// The path; empty when the catalog gives none (such an endpoint cannot be called).
    #[serde(default)]
    pub path: String,
    /// How the path matches.
    #[serde(rename = "match", default)]
    pub matching: Match,
}

fn any_method() -> String {
    "*".to_string()
}

/// How an endpoint's path matches a request's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Match {
    /// The request path is this path.
    #[default]
    Exact,
    /// The request path starts with this path.
    Prefix,
}

/// A service's price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pricing {
    /// `fixed` or `free`, or a model another server names.
    pub model: String,
    /// The price in sats, for `fixed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_sats: Option<u64>,
    /// What the price buys: `request`; for `metered`, what is counted (`openai-tokens`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per: Option<String>,
    /// For `metered`: the rule each request is priced by (its models and their prices per 1,000
    /// tokens, the output caps, the minimum). A Plannt extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<serde_json::Value>,
}

impl Pricing {
    /// `amount_sats` for each request.
    pub fn per_request(amount_sats: u64) -> Pricing {
        Pricing {
            model: "fixed".into(),
            amount_sats: Some(amount_sats),
            per: Some("request".into()),
            rule: None,
        }
    }

    /// No price.
    pub fn free() -> Pricing {
        Pricing {
            model: "free".into(),
            amount_sats: None,
            per: None,
            rule: None,
        }
    }

    /// Each request priced by `rule`, counting `per`: the amount is the 402's.
    pub fn metered(per: &str, rule: serde_json::Value) -> Pricing {
        Pricing {
            model: "metered".into(),
            amount_sats: None,
            per: Some(per.into()),
            rule: Some(rule),
        }
    }

    /// Whether it is the free model.
    pub fn is_free(&self) -> bool {
        self.model == "free"
    }

    /// The rule of a `metered` price, typed; `None` when there is none, or not one of the
    /// shape Plannt writes.
    pub fn metered_rule(&self) -> Option<MeteredRule> {
        let rule = self.rule.as_ref().filter(|_| self.model == "metered")?;
        serde_json::from_value(rule.clone()).ok()
    }
}

/// The rule a `metered` service prices each request by (`pricing.rule`), as Plannt's gateway
/// writes it for an OpenAI-compatible route:
/// `sats = max(min_sats, ceil((prompt tokens × input_per_1k + max_tokens × output_per_1k) / 1000))`.
/// Read leniently: fields it does not know are ignored, the limits may be missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeteredRule {
    /// What is counted: `openai-tokens`.
    pub per: String,
    /// The models sold, by name, with their prices.
    #[serde(default)]
    pub models: BTreeMap<String, ModelRate>,
    /// The output cap priced when a request sets none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_max_tokens: Option<u64>,
    /// The largest output cap a request may set; above it the request is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens_ceiling: Option<u64>,
    /// The least a request costs, in sats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_sats: Option<u64>,
}

/// What one model of a metered rule costs, in sats per 1,000 tokens (up to 3 decimals).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRate {
    /// Sats per 1,000 prompt tokens.
    pub input_per_1k: serde_json::Number,
    /// Sats per 1,000 output tokens, priced at the request's output cap.
    pub output_per_1k: serde_json::Number,
}

impl fmt::Display for MeteredRule {
    /// `per 1k input/output tokens: gpt-4o 10/40 sats, gpt-4o-mini 2/8 sats; output priced at
    /// max_tokens (256 when unset, at most 2048); at least 1 sat`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let models: Vec<String> = self
            .models
            .iter()
            .map(|(name, rate)| format!("{name} {}/{} sats", rate.input_per_1k, rate.output_per_1k))
            .collect();
        write!(
            f,
            "{} per 1k input/output tokens: {}; output priced at max_tokens",
            self.per,
            models.join(", ")
        )?;
        match (self.default_max_tokens, self.max_tokens_ceiling) {
            (Some(default), Some(ceiling)) => {
                write!(f, " ({default} when unset, at most {ceiling})")?
            }
            (Some(default), None) => write!(f, " ({default} when unset)")?,
            (None, Some(ceiling)) => write!(f, " (at most {ceiling})")?,
            (None, None) => {}
        }
        if let Some(min) = self.min_sats {
            write!(
                f,
                "; at least {min} {}",
                if min == 1 { "sat" } else { "sats" }
            )?;
        }
        Ok(())
    }
}

/// The price of a tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    /// The tier, as in `services=<name>:<tier>`.
    pub tier: u8,
    /// Its price in sats.
    pub amount_sats: u64,
}

/// How a service's tokens may be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenTerms {
    /// True when a token buys one request.
    #[serde(default)]
    pub single_use: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_other_servers_write_and_skips_what_it_does_not_know() {
        let text = r#"{
            "l402_version": "0",
            "services": [
                {"name": "demo", "pricing": {"model": "fixed", "amount_sats": 21, "per": "request"},
                 "token": {"single_use": true}, "extra": [1, 2],
                 "endpoints": [{"method": "GET", "path": "/v1/demo", "match": "exact"}]},
                {"name": "api", "tiers": [{"tier": 0, "amount_sats": 5}],
                 "endpoints": [{"path": "/api/", "match": "prefix"}]},
                {"name": "status", "pricing": {"model": "free"}, "endpoints": [{"method": "GET"}]}
            ]
        }"#;
        let catalog: Catalog = serde_json::from_str(text).unwrap();
        let [demo, api, status] = &catalog.services[..] else {
            panic!("three services")
        };
        assert_eq!((demo.price_sats(), demo.single_use()), (Some(21), true));
        assert_eq!((api.price_sats(), api.single_use()), (Some(5), false));
        assert_eq!(api.endpoints[0].method, "*");
        assert_eq!(api.endpoints[0].matching, Match::Prefix);
        assert_eq!((status.price_sats(), status.is_free()), (Some(0), true));
        assert_eq!(status.endpoints[0].path, "");
        assert!(catalog.provider.is_none());
    }

    #[test]
    fn a_metered_rule_reads_typed_and_says_itself_in_words() {
        let pricing: Pricing = serde_json::from_str(
            r#"{"model": "metered", "per": "openai-tokens",
                "rule": {"per": "openai-tokens", "max_body_bytes": 1048576,
                         "models": {"gpt-4o-mini": {"input_per_1k": 0.15, "output_per_1k": 8},
                                    "gpt-4o": {"input_per_1k": 10, "output_per_1k": 40}},
                         "default_max_tokens": 256, "max_tokens_ceiling": 2048, "min_sats": 1}}"#,
        )
        .unwrap();
        let rule = pricing.metered_rule().unwrap();
        assert_eq!(rule.max_tokens_ceiling, Some(2048));
        assert_eq!(rule.models["gpt-4o-mini"].input_per_1k.as_f64(), Some(0.15));
        assert_eq!(
            rule.to_string(),
            "openai-tokens per 1k input/output tokens: gpt-4o 10/40 sats, gpt-4o-mini 0.15/8 sats; \
             output priced at max_tokens (256 when unset, at most 2048); at least 1 sat"
        );
        // A fixed price has no rule; a rule of another shape is not read as one.
        assert_eq!(Pricing::per_request(21).metered_rule(), None);
        let odd = Pricing::metered("openai-tokens", serde_json::json!({"models": 3}));
        assert_eq!(odd.metered_rule(), None);
        let quota = QuotaTerms {
            requests: 3,
            per_secs: 60,
        };
        assert_eq!(quota.to_string(), "3 requests per 60 s per client address");
    }

    #[test]
    fn what_it_writes_reads_back_equal() {
        let catalog = Catalog {
            l402_version: "0".into(),
            provider: Some(Provider {
                name: "Plannt gateway".into(),
                software: Some("plannt/0.1.0".into()),
            }),
            payment: Some(PaymentTerms {
                scheme: "L402".into(),
                network: Some("regtest".into()),
                authorization: None,
                challenge: None,
                dialects: vec![DialectTerms {
                    name: "x402".into(),
                    offered: false,
                    why_not: Some("the backend cannot look up invoices".into()),
                    challenge: None,
                    credential: None,
                    receipt: None,
                }],
            }),
            services: vec![Service {
                name: "demo".into(),
                description: "Demo".into(),
                endpoints: vec![Endpoint {
                    method: "GET".into(),
                    path: "/v1/demo".into(),
                    matching: Match::Exact,
                }],
                pricing: Some(Pricing::per_request(21)),
                tiers: vec![Tier {
                    tier: 0,
                    amount_sats: 21,
                }],
                caveats: vec!["services=demo:0".into()],
                token: Some(TokenTerms { single_use: true }),
                kind: None,
                dialects: vec!["l402".into(), "mpp".into()],
                free: Some(QuotaTerms {
                    requests: 10,
                    per_secs: 3600,
                }),
                rate_limit: None,
                session: Some(SessionTerms {
                    deposit_sats: 500,
                    idle_secs: 300,
                }),
            }],
            openapi: Some("/openapi.json".into()),
        };
        let text = serde_json::to_string(&catalog).unwrap();
        assert!(text.contains(r#""match":"exact""#), "{text}");
        assert!(text.contains(r#""dialects":["l402","mpp"]"#), "{text}");
        assert!(
            text.contains(r#""free":{"requests":10,"per_secs":3600}"#),
            "{text}"
        );
        assert!(!text.contains("rate_limit"), "left out when none: {text}");
        assert!(
            text.contains(r#""session":{"deposit_sats":500,"idle_secs":300}"#),
            "{text}"
        );
        assert!(text.contains(r#""name":"x402","offered":false"#), "{text}");
        // A reader of the L402 profile alone still finds the scheme it knows.
        let old: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(old["payment"]["scheme"], "L402");
        assert_eq!(serde_json::from_str::<Catalog>(&text).unwrap(), catalog);
    }
}
