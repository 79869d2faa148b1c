//! Prices from the request: the price rule of an OpenAI-compatible route (`price = { per =
//! "openai-tokens", … }`), the prompt counted with OpenAI's own tokenizers (o200k_base,
//! cl100k_base) the way OpenAI counts a chat, and the usage an answer reports.
//!
//! No I/O, no clock: the gateway hands [`PriceRule::price`] the request body and gets the price
//! of that request in whole sats, or the client error that refuses it before any invoice.
//!
//! ```text
//! body -> ChatRequest::parse -> model's prices, Encoding::count_chat (prompt),
//!         max_tokens (defaulted, at most the ceiling) × n (output) -> Quote { sats, … }
//! ```

pub mod openai;
mod rule;
mod tokens;

pub use openai::{ApiError, ChatRequest, Message, RequestError, Usage};
pub use rule::{ModelPrice, Per, PriceError, PriceRule, Quote, RuleError, SatsPer1k};
pub use tokens::Encoding;
