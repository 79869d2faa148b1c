//! The typed errors of every backend: each one a caller can act on.

/// What went wrong talking to Lightning. [`LightningError::code`] names it on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LightningError {
    /// The wallet cannot cover the amount and the fee.
    #[error("insufficient balance: {0}")]
    InsufficientBalance(String),
    /// No path to the payee.
    #[error("no route to the payee: {0}")]
    NoRoute(String),
    /// The invoice expired before it was paid.
    #[error("the invoice has expired")]
    InvoiceExpired,
    /// The invoice was paid before.
    #[error("the invoice is already paid")]
    AlreadyPaid,
    /// The backend refused our credentials, or they do not allow this (an invoice-only key paying).
    #[error("the Lightning backend refused our credentials: {0}")]
    Unauthorized(String),
    /// The backend cannot be reached: no connection was made (refused, unknown host, TLS
    /// handshake failed, no connection in time), or it answered that it cannot serve now (LND
    /// locked or starting). Nothing was sent, so a payment that fails this way paid nothing. The
    /// message names the backend and its host and port, never a secret.
    #[error("cannot reach the Lightning backend: {0}")]
    Unreachable(String),
    /// The backend did not answer in time. A payment may still complete: look it up by hash.
    #[error("the Lightning backend did not answer in time")]
    Timeout,
    /// The request reached the backend, and its answer broke off (the connection was reset or
    /// closed). A payment may still complete: look it up by hash.
    #[error("the Lightning backend's answer broke off: {0}")]
    Interrupted(String),
    /// The invoice is not one this backend can pay or issue.
    #[error("invalid invoice: {0}")]
    InvalidInvoice(String),
    /// The payment failed for another reason; nothing was paid.
    #[error("the payment failed: {0}")]
    PaymentFailed(String),
    /// The backend answered something we do not understand.
    #[error("the Lightning backend answered unexpectedly: {0}")]
    Backend(String),
}

impl LightningError {
    /// A stable code for the error, used by the dev network's HTTP API and in JSON output.
    pub fn code(&self) -> &'static str {
        match self {
            LightningError::InsufficientBalance(_) => "insufficient_balance",
            LightningError::NoRoute(_) => "no_route",
            LightningError::InvoiceExpired => "invoice_expired",
            LightningError::AlreadyPaid => "already_paid",
            LightningError::Unauthorized(_) => "unauthorized",
            LightningError::Unreachable(_) => "unreachable",
            LightningError::Timeout => "timeout",
            LightningError::Interrupted(_) => "interrupted",
            LightningError::InvalidInvoice(_) => "invalid_invoice",
            LightningError::PaymentFailed(_) => "payment_failed",
            LightningError::Backend(_) => "backend",
        }
    }

    /// Rebuilds an error from its code and message.
    pub fn from_code(code: &str, message: String) -> Self {
        match code {
            "insufficient_balance" => LightningError::InsufficientBalance(message),
            "no_route" => LightningError::NoRoute(message),
            "invoice_expired" => LightningError::InvoiceExpired,
            "already_paid" => LightningError::AlreadyPaid,
            "unauthorized" => LightningError::Unauthorized(message),
            "unreachable" => LightningError::Unreachable(message),
            "timeout" => LightningError::Timeout,
            "interrupted" => LightningError::Interrupted(message),
            "invalid_invoice" => LightningError::InvalidInvoice(message),
            "payment_failed" => LightningError::PaymentFailed(message),
            _ => LightningError::Backend(message),
        }
    }

    /// True when the outcome of a payment is unknown and must be looked up before paying again:
    /// the request was sent (or may have been) and no final answer came. A backend that could
    /// not be reached ([`LightningError::Unreachable`]) was sent nothing: its outcome is known.
    pub fn outcome_unknown(&self) -> bool {
        matches!(
            self,
            LightningError::Timeout | LightningError::Interrupted(_) | LightningError::Backend(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_reads_back_and_only_a_sent_request_leaves_the_outcome_unknown() {
        let all = [
            LightningError::InsufficientBalance("x".into()),
            LightningError::NoRoute("x".into()),
            LightningError::InvoiceExpired,
            LightningError::AlreadyPaid,
            LightningError::Unauthorized("x".into()),
            LightningError::Unreachable("x".into()),
            LightningError::Timeout,
            LightningError::Interrupted("x".into()),
            LightningError::InvalidInvoice("x".into()),
            LightningError::PaymentFailed("x".into()),
            LightningError::Backend("x".into()),
        ];
        for error in &all {
            assert_eq!(
                &LightningError::from_code(error.code(), "x".into()),
                error,
                "{error}"
            );
        }
        let unknown: Vec<&str> = all
            .iter()
            .filter(|e| e.outcome_unknown())
            .map(LightningError::code)
            .collect();
        assert_eq!(unknown, ["timeout", "interrupted", "backend"]);
    }
}
