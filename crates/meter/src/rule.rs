//! The price rule of a metered route: what a chat completion request costs, before it runs.
//!
//! ```text
//! sats = max(min_sats, ceil((prompt_tokens × input_per_1k + max_output × output_per_1k) / 1000))
//! max_output = (max_completion_tokens | max_tokens | default_max_tokens) × n,  each at most the ceiling
//! ```
//! The prompt is counted with the model's tokenizer; the output is priced at the most the client
//! allows (the upstream may write less, never more), so the price covers the dearest answer the
//! request can get.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::openai::{ApiError, ChatRequest, RequestError};
use crate::tokens::Encoding;

/// The largest request body a rule reads unless it says otherwise: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// What a rule counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Per {
    /// The tokens of an OpenAI-compatible chat completion (`POST /v1/chat/completions`).
    #[serde(rename = "openai-tokens")]
    OpenaiTokens,
}

/// A price per 1,000 tokens, in millisatoshis: written in sats, with up to three decimals
/// (`2`, `0.15`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SatsPer1k {
    /// Millisatoshis per 1,000 tokens.
    pub msat: u64,
}

impl fmt::Display for SatsPer1k {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (sats, rest) = (self.msat / 1000, self.msat % 1000);
        if rest == 0 {
            write!(f, "{sats}")
        } else {
            let decimals = format!("{rest:03}");
            write!(f, "{sats}.{}", decimals.trim_end_matches('0'))
        }
    }
}

impl Serialize for SatsPer1k {
    /// As a JSON number of sats (`0.15`).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.msat.is_multiple_of(1000) {
            serializer.serialize_u64(self.msat / 1000)
        } else {
            serializer.serialize_f64(self.msat as f64 / 1000.0)
        }
    }
}

impl<'de> Deserialize<'de> for SatsPer1k {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Sats;
        impl Visitor<'_> for Sats {
            type Value = SatsPer1k;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("sats per 1,000 tokens: a number of at least 0 with at most 3 decimals")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<SatsPer1k, E> {
                v.checked_mul(1000)
                    .map(|msat| SatsPer1k { msat })
                    .ok_or_else(|| E::custom("a price per 1k tokens that large is not a price"))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<SatsPer1k, E> {
                let v = u64::try_from(v).map_err(|_| E::custom("a price cannot be negative"))?;
                self.visit_u64(v)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<SatsPer1k, E> {
                let msat = v * 1000.0;
                if !v.is_finite() || v < 0.0 || msat > 1e15 {
                    return Err(E::custom(
                        "a price per 1k tokens must be a number of at least 0",
                    ));
                }
                if (msat - msat.round()).abs() > 1e-6 {
                    return Err(E::custom(
                        "a price per 1k tokens has at most 3 decimals (millisatoshis)",
                    ));
                }
                Ok(SatsPer1k {
                    msat: msat.round() as u64,
                })
            }
        }
        deserializer.deserialize_any(Sats)
    }
}

/// What one model costs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// Sats per 1,000 prompt tokens.
    pub input_per_1k: SatsPer1k,
    /// Sats per 1,000 output tokens.
    pub output_per_1k: SatsPer1k,
    /// The tokenizer to count with; default: the model's own (`o200k_base` for a name OpenAI's
    /// tiktoken does not know).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<Encoding>,
}

fn default_max_tokens() -> u64 {
    1024
}
fn default_ceiling() -> u64 {
    4096
}
fn default_min_sats() -> u64 {
    1
}
fn default_max_body_bytes() -> usize {
    DEFAULT_MAX_BODY_BYTES
}

/// A route's price rule: `price = { per = "openai-tokens", models = { … }, … }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceRule {
    /// What is counted.
    pub per: Per,
    /// The models the route sells, by the name a request gives, and their prices.
    pub models: BTreeMap<String, ModelPrice>,
    /// The output cap priced when a request sets none.
    #[serde(default = "default_max_tokens")]
    pub default_max_tokens: u64,
    /// The largest output cap a request may set (per choice); above it the request is refused.
    #[serde(default = "default_ceiling")]
    pub max_tokens_ceiling: u64,
    /// The least a request costs.
    #[serde(default = "default_min_sats")]
    pub min_sats: u64,
    /// The largest request body read to price it; a larger one is refused (413).
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
}

/// Why a rule cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    /// No model is priced.
    #[error("price.models must price at least one model")]
    NoModels,
    /// The default output cap is above the ceiling, or a limit is zero.
    #[error(
        "price.default_max_tokens ({default}) must be between 1 and price.max_tokens_ceiling ({ceiling})"
    )]
    Caps {
        /// The default.
        default: u64,
        /// The ceiling.
        ceiling: u64,
    },
    /// A minimum of zero.
    #[error("price.min_sats must be at least 1 (a paid request costs something)")]
    ZeroMinimum,
    /// A body limit of zero.
    #[error("price.max_body_bytes must be at least 1")]
    ZeroBody,
}

/// Why a request cannot be priced: a client error, answered before any invoice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PriceError {
    /// The body is larger than the rule reads.
    #[error("the request body is larger than {limit} bytes, the most this route reads")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The body is not a request the rule can read.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// A model the route does not sell.
    #[error("the model '{model}' is not sold here; ask for one of: {known}")]
    UnknownModel {
        /// The model asked for.
        model: String,
        /// The models sold, comma-separated.
        known: String,
    },
    /// An output cap above the ceiling.
    #[error(
        "{param} is {asked}, above this route's ceiling of {ceiling}; ask for at most {ceiling}"
    )]
    AboveCeiling {
        /// The field that set it.
        param: &'static str,
        /// The cap asked for.
        asked: u64,
        /// The ceiling.
        ceiling: u64,
    },
}

impl PriceError {
    /// The answer to give, worded as OpenAI's API words its errors.
    pub fn to_api_error(&self) -> ApiError {
        match self {
            PriceError::TooLarge { .. } => ApiError {
                status: 413,
                message: self.to_string(),
                kind: "invalid_request_error",
                param: None,
                code: Some("request_too_large"),
            },
            PriceError::Request(e) => ApiError::from(e),
            PriceError::UnknownModel { .. } => ApiError {
                status: 404,
                message: self.to_string(),
                kind: "invalid_request_error",
                param: Some("model".into()),
                code: Some("model_not_found"),
            },
            PriceError::AboveCeiling { param, .. } => ApiError {
                status: 400,
                message: self.to_string(),
                kind: "invalid_request_error",
                param: Some((*param).to_string()),
                code: Some("max_tokens_above_ceiling"),
            },
        }
    }
}

/// The price of one request, and what it was made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    /// The model.
    pub model: String,
    /// The prompt's tokens, counted as OpenAI counts a chat.
    pub input_tokens: u64,
    /// The output priced: the output cap times the choices.
    pub output_tokens: u64,
    /// The price, in whole sats.
    pub sats: u64,
}

impl PriceRule {
    /// Checks the rule, once, when the configuration is read.
    pub fn check(&self) -> Result<(), RuleError> {
        if self.models.is_empty() {
            return Err(RuleError::NoModels);
        }
        if self.default_max_tokens == 0 || self.default_max_tokens > self.max_tokens_ceiling {
            return Err(RuleError::Caps {
                default: self.default_max_tokens,
                ceiling: self.max_tokens_ceiling,
            });
        }
        if self.min_sats == 0 {
            return Err(RuleError::ZeroMinimum);
        }
        if self.max_body_bytes == 0 {
            return Err(RuleError::ZeroBody);
        }
        Ok(())
    }

    /// Loads the tokenizers the rule's models count with, so no request waits for them.
    pub fn load_tokenizers(&self) {
        for (model, price) in &self.models {
            self.encoding(model, price).load();
        }
    }

    fn encoding(&self, model: &str, price: &ModelPrice) -> Encoding {
        price
            .tokenizer
            .unwrap_or_else(|| Encoding::for_model(model))
    }

    /// The tokenizer a model of this rule is counted with, if the rule sells it.
    pub fn encoding_of(&self, model: &str) -> Option<Encoding> {
        self.models.get(model).map(|p| self.encoding(model, p))
    }

    /// The price of the request `body`.
    pub fn price(&self, body: &[u8]) -> Result<Quote, PriceError> {
        if body.len() > self.max_body_bytes {
            return Err(PriceError::TooLarge {
                limit: self.max_body_bytes,
            });
        }
        let chat = ChatRequest::parse(body)?;
        let Some(price) = self.models.get(&chat.model) else {
            return Err(PriceError::UnknownModel {
                model: chat.model,
                known: self.models.keys().cloned().collect::<Vec<_>>().join(", "),
            });
        };
        let cap = chat.max_tokens.unwrap_or(self.default_max_tokens);
        if cap > self.max_tokens_ceiling {
            return Err(PriceError::AboveCeiling {
                param: "max_tokens",
                asked: cap,
                ceiling: self.max_tokens_ceiling,
            });
        }
        let input_tokens = self.encoding(&chat.model, price).count_chat(&chat);
        let output_tokens = cap * chat.n;
        Ok(Quote {
            sats: self.sats(price, input_tokens, output_tokens),
            model: chat.model,
            input_tokens,
            output_tokens,
        })
    }

    /// The whole sats `input` prompt tokens and `output` output tokens of `price` cost: rounded
    /// up, at least the minimum.
    pub fn sats(&self, price: &ModelPrice, input: u64, output: u64) -> u64 {
        let per_1k_msat = u128::from(input) * u128::from(price.input_per_1k.msat)
            + u128::from(output) * u128::from(price.output_per_1k.msat);
        // tokens × msat per 1,000 tokens / 1,000 = msat; / 1,000 again = sats.
        let sats = per_1k_msat.div_ceil(1_000_000);
        u64::try_from(sats).unwrap_or(u64::MAX).max(self.min_sats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> PriceRule {
        let text = r#"{"per":"openai-tokens","models":{
            "gpt-4o-mini":{"input_per_1k":2,"output_per_1k":8},
            "cheap":{"input_per_1k":0.15,"output_per_1k":0.6}},
            "default_max_tokens":1024,"max_tokens_ceiling":4096,"min_sats":1}"#;
        serde_json::from_str(text).unwrap()
    }

    fn body(model: &str, extra: &str) -> Vec<u8> {
        format!(
            r#"{{"model":"{model}","messages":[{{"role":"user","content":"hello world"}}]{extra}}}"#
        )
        .into_bytes()
    }

    #[test]
    fn prices_the_prompt_and_the_most_output_the_request_allows() {
        let rule = rule();
        rule.check().unwrap();
        // 9 prompt tokens (3 + 3 + "user" 1 + "hello world" 2) and 100 output tokens:
        // 9 × 2 + 100 × 8 = 818 msat-per-1k units: 0.818 sats, rounded up to 1.
        let q = rule
            .price(&body("gpt-4o-mini", r#","max_tokens":100"#))
            .unwrap();
        assert_eq!((q.input_tokens, q.output_tokens, q.sats), (9, 100, 1));
        // The default cap: 9 × 2 + 1024 × 8 = 8210 → 9 sats.
        let q = rule.price(&body("gpt-4o-mini", "")).unwrap();
        assert_eq!((q.output_tokens, q.sats), (1024, 9));
        // max_completion_tokens, and n multiplies the output.
        let q = rule
            .price(&body(
                "gpt-4o-mini",
                r#","max_completion_tokens":4000,"n":3"#,
            ))
            .unwrap();
        assert_eq!(q.output_tokens, 12_000);
        assert_eq!(q.sats, (9 * 2000 + 12_000 * 8000_u64).div_ceil(1_000_000));
        // Fractional prices, in msat.
        let q = rule.price(&body("cheap", r#","max_tokens":4096"#)).unwrap();
        assert_eq!(q.sats, (9 * 150 + 4096 * 600_u64).div_ceil(1_000_000));
    }

    #[test]
    fn a_dearer_request_never_costs_less() {
        let rule = rule();
        let price = |extra: &str| rule.price(&body("gpt-4o-mini", extra)).unwrap().sats;
        let mut last = 0;
        for cap in [1, 10, 100, 500, 1000, 2000, 4096] {
            let now = price(&format!(r#","max_tokens":{cap}"#));
            assert!(now >= last, "{cap}");
            last = now;
        }
        let long = format!(
            r#"{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"{}"}}],"max_tokens":100}}"#,
            "word ".repeat(2000)
        );
        assert!(rule.price(long.as_bytes()).unwrap().sats > price(r#","max_tokens":100"#));
    }

    #[test]
    fn refuses_before_any_invoice_with_a_clear_client_error() {
        let rule = rule();
        let e = rule.price(&body("gpt-5", "")).unwrap_err();
        assert!(matches!(e, PriceError::UnknownModel { .. }));
        let api = e.to_api_error();
        assert_eq!((api.status, api.code), (404, Some("model_not_found")));
        assert!(
            api.message.contains("cheap, gpt-4o-mini"),
            "{}",
            api.message
        );

        let e = rule
            .price(&body("gpt-4o-mini", r#","max_tokens":4097"#))
            .unwrap_err();
        let api = e.to_api_error();
        assert_eq!(
            (api.status, api.param.as_deref()),
            (400, Some("max_tokens"))
        );
        assert!(api.message.contains("4096"));

        assert_eq!(rule.price(b"{").unwrap_err().to_api_error().status, 400);
        let small = PriceRule {
            max_body_bytes: 10,
            ..rule.clone()
        };
        let api = small
            .price(&body("gpt-4o-mini", ""))
            .unwrap_err()
            .to_api_error();
        assert_eq!((api.status, api.code), (413, Some("request_too_large")));
    }

    #[test]
    fn rules_are_checked_and_prices_read_to_the_millisat() {
        let mut bad = rule();
        bad.default_max_tokens = 5000;
        assert!(matches!(bad.check(), Err(RuleError::Caps { .. })));
        let mut bad = rule();
        bad.min_sats = 0;
        assert_eq!(bad.check(), Err(RuleError::ZeroMinimum));
        let mut bad = rule();
        bad.models.clear();
        assert_eq!(bad.check(), Err(RuleError::NoModels));

        for (text, msat) in [("2", 2000), ("0.15", 150), ("0.001", 1), ("0", 0)] {
            let p: SatsPer1k = serde_json::from_str(text).unwrap();
            assert_eq!(p.msat, msat, "{text}");
            assert_eq!(p.to_string(), text);
        }
        for text in ["-1", "0.0001", "\"2\""] {
            assert!(serde_json::from_str::<SatsPer1k>(text).is_err(), "{text}");
        }
        let unknown = r#"{"per":"openai-tokens","models":{},"colour":1}"#;
        assert!(serde_json::from_str::<PriceRule>(unknown).is_err());
        let other = r#"{"per":"requests","models":{}}"#;
        assert!(serde_json::from_str::<PriceRule>(other).is_err());
    }
}
