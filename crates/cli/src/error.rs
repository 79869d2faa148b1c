//! The CLI's one error type: what a command says when it fails (`plannt: …` on stderr) and the
//! exit status it leaves. The table is `exit_status!()`, shown by `plannt --help` and
//! `plannt get --help` and copied in the README:
//!
//! ```text
//! 0  success; also a closed standard output (`plannt ledger | head`)   Error::Closed
//! 1  setup or other failure: the settings, the wallet, the ledger, a file, a port
//! 2  bad usage: an argument (clap's own errors, and Error::Usage)
//! 3  over budget (nothing paid)                      ClientError::OverBudget
//! 4  a check refused the request or the payment      ClientError::Refused, NoDialect, TopUpRefused,
//!                                                    Error::Refused
//! 5  the payment failed, or is still in flight       ClientError::PaymentFailed, PaymentPending,
//!                                                    PaymentTimedOut, Error::PaymentFailed
//! 6  the server answered an HTTP error               ClientError::BadChallenge, SessionStillUnpaid,
//!                                                    SessionNotClosed (and `plannt get`'s own
//!                                                    answer of a 4xx or 5xx)
//! 7  the server could not be reached, or the answer  ClientError::Network, AnswerLost
//!    to a paid request was lost and none was kept
//! 8  `plannt check` found a check that failed        (its own verdict, not an error)
//! ```
//!
//! 2 for bad usage is what clap exits with, as grep, diff, ls and Python's argparse do: a
//! script can tell "the command line is wrong" (2) from "the command could not do its work" (1).

use std::process::ExitCode;

use plannt_client::{ClientError, LedgerError, SettingsError};

/// The exit statuses, as `plannt --help`, `plannt get --help` and the README give them: a
/// literal, for `concat!` in the commands' help.
macro_rules! exit_status {
    () => {
        "Exit status: 0 success (also when the reader of standard output goes away early, as `head` does: the command ends quietly); 1 setup or other failure (the settings, the wallet, the ledger, a file, a port); 2 bad usage (an unknown or malformed argument); 3 over budget (nothing paid); 4 a check refused the request or the payment (nothing sent, or nothing paid); 5 the payment failed, or is still in flight; 6 the server answered an HTTP error; 7 the server could not be reached, or the answer to a paid request was lost and the server kept none (nothing is paid twice); 8 plannt check found a failing check."
    };
}
pub(crate) use exit_status;

/// Exit statuses beyond 0 and 1.
pub mod exit {
    /// Bad usage: an unknown or malformed argument. clap exits with it too.
    pub const USAGE: u8 = 2;
    /// The request was refused for going over a budget. Nothing was paid.
    pub const OVER_BUDGET: u8 = 3;
    /// A check refused the invoice. Nothing was paid.
    pub const REFUSED: u8 = 4;
    /// The payment failed (or is still in flight and will be finished by the next run).
    pub const PAYMENT_FAILED: u8 = 5;
    /// The server answered with an HTTP error (4xx or 5xx).
    pub const HTTP_ERROR: u8 = 6;
    /// The server could not be reached, or the answer to a paid request was lost and the server
    /// kept none.
    pub const NETWORK_ERROR: u8 = 7;
    /// `plannt check` found at least one check that failed.
    pub const CHECK_FAILED: u8 = 8;
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad argument, in words (exit status 2, as clap's own errors).
    #[error("{0}")]
    Usage(String),
    /// Standard output was closed by its reader: the command ends quietly, with exit status 0.
    #[error("standard output is closed")]
    Closed,
    /// A check refused to pay, in words: nothing was paid.
    #[error("refusing to pay: {0}")]
    Refused(String),
    /// A payment the command made failed.
    #[error("payment failed: {0}")]
    PaymentFailed(#[source] Box<dyn std::error::Error + Send + Sync>),
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
            Error::Usage(_) => ExitCode::from(exit::USAGE),
            Error::Closed => ExitCode::SUCCESS,
            Error::Refused(_) => ExitCode::from(exit::REFUSED),
            Error::PaymentFailed(_) => ExitCode::from(exit::PAYMENT_FAILED),
            _ => ExitCode::FAILURE,
        }
    }
}

/// The exit status of a failed paying request.
fn client_status(e: &ClientError) -> u8 {
    match e {
        ClientError::OverBudget(_) => exit::OVER_BUDGET,
        ClientError::Refused(_)
        | ClientError::NoDialect { .. }
        | ClientError::TopUpRefused { .. } => exit::REFUSED,
        ClientError::PaymentFailed(_)
        | ClientError::PaymentPending(_)
        | ClientError::PaymentTimedOut { .. } => exit::PAYMENT_FAILED,
        ClientError::Network(_) | ClientError::AnswerLost { .. } => exit::NETWORK_ERROR,
        ClientError::BadChallenge(_)
        | ClientError::SessionStillUnpaid { .. }
        | ClientError::SessionNotClosed { .. } => exit::HTTP_ERROR,
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
        let lost = Error::from(ClientError::AnswerLost {
            payment_hash: "ab".repeat(32),
            origin: "https://api.example".into(),
        });
        assert_eq!(lost.exit_code(), ExitCode::from(exit::NETWORK_ERROR));
        assert!(
            lost.to_string()
                .starts_with("paid; the answer was lost and the server kept none"),
            "{lost}"
        );
        let usage = Error::Usage("--max-body-bytes must be at least 1".into());
        assert_eq!(usage.exit_code(), ExitCode::from(exit::USAGE));
        assert_eq!(usage.to_string(), "--max-body-bytes must be at least 1");
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let failed = Error::failed("cannot read body.json", io);
        assert_eq!(failed.to_string(), "cannot read body.json: gone");
        assert!(std::error::Error::source(&failed).is_some());
        assert_eq!(failed.exit_code(), ExitCode::FAILURE);
        assert_eq!(Error::Closed.exit_code(), ExitCode::SUCCESS);
        let refused = Error::Refused("a bitcoin invoice".into());
        assert_eq!(refused.exit_code(), ExitCode::from(exit::REFUSED));
        assert_eq!(refused.to_string(), "refusing to pay: a bitcoin invoice");
    }
}
