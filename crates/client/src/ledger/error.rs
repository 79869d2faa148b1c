//! What can go wrong with the ledger: each error says "the payment ledger is unusable: …" and
//! keeps what failed underneath (SQLite's error, the operating system's) as its source.

use std::path::{Path, PathBuf};

/// A ledger error: the file cannot be opened or written. Each says "the payment ledger is
/// unusable: …" and keeps what failed underneath as its source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// A file or folder of the ledger cannot be created, opened or locked.
    #[error("the payment ledger is unusable: {}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// SQLite cannot open the file, or set it up.
    #[error("the payment ledger is unusable: {}: {source}", path.display())]
    Open {
        /// The ledger file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// A read or a write failed.
    #[error("the payment ledger is unusable: {0}")]
    Sqlite(#[source] rusqlite::Error),
    /// No randomness for this open ledger's owner id.
    #[error("the payment ledger is unusable: no randomness for the ledger's owner id: {0}")]
    Randomness(#[source] getrandom::Error),
    /// A call panicked while it held the connection.
    #[error("the payment ledger is unusable: a ledger call panicked")]
    Poisoned,
}

impl From<rusqlite::Error> for LedgerError {
    fn from(e: rusqlite::Error) -> Self {
        LedgerError::Sqlite(e)
    }
}

pub(super) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LedgerError + '_ {
    move |source| LedgerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(super) fn open(path: &Path) -> impl FnOnce(rusqlite::Error) -> LedgerError + '_ {
    move |source| LedgerError::Open {
        path: path.to_path_buf(),
        source,
    }
}
