//! Routes priced by the request: the body read (within the rule's limit) and priced before
//! anything else, a client error for what cannot be priced (before any invoice), and the binding
//! of a token to the price it paid.
//!
//! ```text
//! metered route -> read the body (413 over the rule's max_body_bytes) -> PriceRule::price
//!                  error: OpenAI's error body, 400 / 404 / 413, no invoice
//!                  price: the 402 asks it; L402 mints `<route>_price_sats=<price>`, MPP's
//!                  challenge and x402's offer carry it as their amount (HMAC-bound)
//! credential    -> it buys this request only if what it paid covers this request's price:
//!                  L402 every `price_sats` caveat of the chain (the minted one first; a holder
//!                  can only add more, each must hold) >= price, and one must be there; MPP and
//!                  x402 their amount >= price. Else 402 `caveat_failed`, a challenge at the
//!                  price of this request
//! ```

use std::cell::Cell;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use plannt_meter::{PriceError, PriceRule, Quote};

/// Bodies larger than this are priced on a blocking thread.
const BLOCKING_ABOVE_BYTES: usize = 16 * 1024;

/// The name of the condition a metered route mints: `<route>_price_sats=<sats>`.
pub(crate) const PRICE_CONDITION: &str = "price_sats";

/// Reads `request`'s body within `rule`'s limit and prices it: the request, its body put back,
/// and the quote; or the client error that refuses it.
pub(super) async fn price(
    rule: &Arc<PriceRule>,
    request: Request<Body>,
) -> Result<(Request<Body>, Quote), Response> {
    let limit = rule.max_body_bytes;
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(refusal(&PriceError::TooLarge { limit }));
    }
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        // Over the limit (a body without a length), or cut off: nothing to price either way.
        Err(_) => return Err(refusal(&PriceError::TooLarge { limit })),
    };
    // A long prompt takes milliseconds to count (docs/benchmarks.md): off the async workers.
    let quote = if bytes.len() > BLOCKING_ABOVE_BYTES {
        let (rule, body) = (rule.clone(), bytes.clone());
        tokio::task::spawn_blocking(move || rule.price(&body))
            .await
            .map_err(|_| {
                super::gateway_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the request could not be priced",
                )
            })?
    } else {
        rule.price(&bytes)
    };
    let quote = quote.map_err(|e| refusal(&e))?;
    Ok((Request::from_parts(parts, Body::from(bytes)), quote))
}

/// A request that cannot be priced, answered as OpenAI's API answers (its SDKs raise the error
/// with the message): no invoice was made.
fn refusal(e: &PriceError) -> Response {
    let api = e.to_api_error();
    let status = StatusCode::from_u16(api.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = (status, axum::Json(api.to_json())).into_response();
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

/// Judges the `price_sats` conditions of an L402 token for a request that costs `price`: each
/// must cover it. Records whether one was seen (a metered route's token must carry one) and the
/// least any of them paid, for the refusal's message.
pub(super) struct PriceBinding {
    price: u64,
    seen: Cell<bool>,
    short: Cell<Option<u64>>,
}

impl PriceBinding {
    pub(super) fn new(price: u64) -> Self {
        PriceBinding {
            price,
            seen: Cell::new(false),
            short: Cell::new(None),
        }
    }

    /// Whether the token carried a price.
    pub(super) fn seen(&self) -> bool {
        self.seen.get()
    }

    /// Why the token cannot buy this request, if a price it carries is short of it.
    pub(super) fn shortfall(&self) -> Option<String> {
        self.short.get().map(|paid| {
            format!(
                "the token paid for a request of {paid} sats; this one costs {} sats (a larger max_tokens, a longer prompt or a dearer model): pay the new invoice",
                self.price
            )
        })
    }

    /// The condition check [`plannt_l402::KeyRing::verify`] calls.
    pub(super) fn check(&self, name: &str, value: &str) -> Option<bool> {
        if name != PRICE_CONDITION {
            return None;
        }
        self.seen.set(true);
        // Plain digits only, as every other number of a caveat.
        let paid =
            (!value.is_empty() && value.len() <= 20 && value.bytes().all(|b| b.is_ascii_digit()))
                .then(|| value.parse::<u64>().ok())
                .flatten()?;
        if paid >= self.price {
            Some(true)
        } else {
            let least = self.short.get().map_or(paid, |s| s.min(paid));
            self.short.set(Some(least));
            Some(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_price_a_token_carries_must_cover_the_request() {
        let binding = PriceBinding::new(10);
        assert!(!binding.seen());
        assert_eq!(binding.check("price_sats", "10"), Some(true));
        assert_eq!(binding.check("price_sats", "11"), Some(true));
        assert!(binding.seen());
        assert_eq!(binding.shortfall(), None);
        assert_eq!(binding.check("price_sats", "9"), Some(false));
        assert!(
            binding
                .shortfall()
                .unwrap()
                .contains("9 sats; this one costs 10 sats")
        );
        for unreadable in ["", "+10", "1e3", "ten", "99999999999999999999999"] {
            assert_eq!(
                binding.check("price_sats", unreadable),
                None,
                "{unreadable:?}"
            );
        }
        assert_eq!(
            binding.check("color", "red"),
            None,
            "other conditions are unknown"
        );
    }
}
