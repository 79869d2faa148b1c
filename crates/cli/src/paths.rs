//! Where Plannt keeps its files: the XDG directories, overridable by environment.

use std::path::PathBuf;

/// `PLANNT_DATA_DIR`, else `$XDG_DATA_HOME/plannt`, else `~/.local/share/plannt`.
pub fn data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PLANNT_DATA_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("plannt");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".local/share/plannt")
}
