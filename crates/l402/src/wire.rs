//! The headers a Plannt gateway adds to what it forwards and answers, beside the L402
//! `WWW-Authenticate` and `Authorization` of [`crate::header`]: their names, and the values of
//! `x-l402`. The reasons of `x-l402-reason` are [`crate::Reason`] codes.

use std::fmt;

/// On a paid request's answer: what became of the token ([`TokenState`]).
pub const X_L402: &str = "x-l402";
/// On a refusal: the [`crate::Reason`] code.
pub const X_L402_REASON: &str = "x-l402-reason";
/// To the upstream: the hex payment hash of the token that paid for the request.
pub const X_L402_PAYMENT_HASH: &str = "x-l402-payment-hash";
/// To the upstream: `"<hex payment hash>"`, the same for every retry of one payment
/// (draft-ietf-httpapi-idempotency-key-header).
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The value of `x-l402`: what a gateway did with the token a request presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenState {
    /// The token bought this answer and cannot be used again.
    Spent,
    /// The request failed before the token bought anything: the same credential works again.
    Released,
}

impl TokenState {
    /// The header value.
    pub fn as_str(&self) -> &'static str {
        match self {
            TokenState::Spent => "spent",
            TokenState::Released => "released",
        }
    }

    /// Reads a header value, in any case.
    pub fn parse(value: &[u8]) -> Option<TokenState> {
        [TokenState::Spent, TokenState::Released]
            .into_iter()
            .find(|state| value.eq_ignore_ascii_case(state.as_str().as_bytes()))
    }
}

impl fmt::Display for TokenState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `"<hex payment hash>"`: the idempotency key of a payment, a Structured Field string.
pub fn idempotency_key(hash: &crate::PaymentHash) -> String {
    let mut key = String::with_capacity(66);
    key.push('"');
    key.push_str(&hash.to_hex());
    key.push('"');
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_states_read_back_in_any_case() {
        for state in [TokenState::Spent, TokenState::Released] {
            assert_eq!(TokenState::parse(state.as_str().as_bytes()), Some(state));
            let upper = state.as_str().to_uppercase();
            assert_eq!(TokenState::parse(upper.as_bytes()), Some(state));
        }
        assert_eq!(TokenState::parse(b"used"), None);
    }
}
