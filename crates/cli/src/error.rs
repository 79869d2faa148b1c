//! The CLI's one error type: what a command says when it fails (`plannt: …` on stderr) and the
//! exit status it leaves, written in `plannt get --help` and the README:
//!
//! ```text
//! 1  bad usage or setup: an argument, the settings, the wallet, the ledger, a file, a port
//! 3  over budget (nothing paid)                      ClientError::OverBudget
//! 4  a check refused the request or the payment      ClientError::Refused
//! 5  the payment failed, or is still in flight       ClientError::PaymentFailed, PaymentPending,
//!                                                    PaymentTimedOut
//! 6  the server answered an HTTP error               ClientError::BadChallenge (and `plannt get`'s
//!                                                    own answer of a 4xx or 5xx)
//! 7  the server could not be reached                 ClientError::Network
//! ```

use std::process::ExitCode;

use plannt_client::{ClientError, LedgerError, SettingsError};

/// Exit statuses beyond 0 and 1.
pub mod exit {
    /// The request was refused for going over a budget. Nothing was paid.
    pub const OVER_BUDGET: u8 = 3;
    /// A check refused the invoice. Nothing was paid.
    pub const REFUSED: u8 = 4;
    /// The payment failed (or is still in flight and will be finished by the next run).
    pub const PAYMENT_FAILED: u8 = 5;
    /// The server answered with an HTTP error (4xx or 5xx).
    pub const HTTP_ERROR: u8 = 6;
    /// The server could not be reached.
    pub const NETWORK_ERROR: u8 = 7;
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad argument or a setting that cannot be used, in words.
    #[error("{0}")]
    Usage(String),
    /// Something failed underneath: what the command was doing, and why.
    #[error("{context}: {source}")]
    Failed {
        /// What the command was doing: "cannot read standard input", "payment failed", …
        context: String,
        /// What failed underneath.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The settings (config file or environment) are wrong.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The ledger cannot be used.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// A paying request failed; its exit status says how.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The MCP server stopped or could not start.
    #[error(transparent)]
    Mcp(#[from] plannt_mcp::ServeError),
    /// Any other error, in its own words.
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// A failure underneath `context`.
    pub fn failed(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Error {
        Error::Failed {
            context: context.into(),
            source: source.into(),
        }
    }

    /// Any error, in its own words.
    pub fn other(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
        Error::Other(source.into())
    }

    /// The exit status this error leaves.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Client(e) => ExitCode::from(client_status(e)),
            _ => ExitCode::FAILURE,
        }
    }
}

/// The exit status of a failed paying request.
fn client_status(e: &ClientError) -> u8 {
    match e {
        ClientError::OverBudget(_) => exit::OVER_BUDGET,
        ClientError::Refused(_) => exit::REFUSED,
        ClientError::PaymentFailed(_)
        | ClientError::PaymentPending(_)
        | ClientError::PaymentTimedOut { .. } => exit::PAYMENT_FAILED,
        ClientError::Network(_) => exit::NETWORK_ERROR,
        ClientError::BadChallenge(_) => exit::HTTP_ERROR,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_leaves_its_exit_status_and_its_words() {
        let refused = Error::from(ClientError::Refused(plannt_client::Refusal::NoAmount));
        assert_eq!(refused.exit_code(), ExitCode::from(exit::REFUSED));
        assert!(
            refused.to_string().starts_with("refused to pay: "),
            "{refused}"
        );
        let pending = Error::from(ClientError::PaymentPending("ab".into()));
        assert_eq!(pending.exit_code(), ExitCode::from(exit::PAYMENT_FAILED));
        let usage = Error::Usage("--max-body-bytes must be at least 1".into());
        assert_eq!(usage.exit_code(), ExitCode::FAILURE);
        assert_eq!(usage.to_string(), "--max-body-bytes must be at least 1");
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let failed = Error::failed("cannot read body.json", io);
        assert_eq!(failed.to_string(), "cannot read body.json: gone");
        assert!(std::error::Error::source(&failed).is_some());
        assert_eq!(failed.exit_code(), ExitCode::FAILURE);
    }
}
