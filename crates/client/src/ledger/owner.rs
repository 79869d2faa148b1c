//! Who owns what is in flight: each open ledger holds an exclusive lock on a file of its own
//! under `<ledger>.owners/`, which the operating system releases when the process ends, however
//! it ends. A payment or token whose owner's lock is free belongs to a process that died.

use std::fs::{File, TryLockError};
use std::path::PathBuf;

use super::error::{LedgerError, io};

/// This open ledger's claim on what it has in flight: a lock file held while it is open.
pub(super) struct Owner {
    pub(super) id: String,
    dir: PathBuf,
    _file: File,
}

impl Owner {
    pub(super) fn take(dir: PathBuf) -> Result<Owner, LedgerError> {
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(LedgerError::Randomness)?;
        let id = hex::encode(bytes);
        let file = File::create(dir.join(format!("{id}.lock"))).map_err(io(&dir))?;
        file.lock().map_err(io(&dir))?;
        Ok(Owner {
            id,
            dir,
            _file: file,
        })
    }

    /// Whether the owner `id` is this ledger or another that is still open.
    pub(super) fn alive(&self, id: &str) -> bool {
        if id == self.id {
            return true;
        }
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return false;
        }
        let path = self.dir.join(format!("{id}.lock"));
        let file = match File::options().read(true).write(true).open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return false,
            // Cannot tell: treat it as alive, which never pays or presents anything twice.
            Err(_) => return true,
        };
        match file.try_lock() {
            Ok(()) => {
                // Its process is gone: tidy up after it.
                let _ = std::fs::remove_file(&path);
                false
            }
            // Held by its process; or it cannot be told, and alive is the safe answer.
            Err(TryLockError::WouldBlock | TryLockError::Error(_)) => true,
        }
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.dir.join(format!("{}.lock", self.id)));
    }
}
