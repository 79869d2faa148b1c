//! The root keys: the configured ones, else a key generated once into `root.key` (mode 0600)
//! under the data directory.

use std::path::Path;

use plannt_l402::{KeyRing, RootKey};

use crate::config::Config;
use crate::error::StartError;

/// Loads the root keys of `config`, or the key file under `data_dir` (created on first start).
pub fn load(config: &Config, data_dir: &Path) -> Result<KeyRing, StartError> {
    if !config.root_keys.is_empty() {
        let mut ring = KeyRing::new();
        for k in &config.root_keys {
            let bad = |source| StartError::Key {
                key: format!("root_keys ({})", k.id),
                source,
            };
            let key = RootKey::from_hex(&k.key).map_err(bad)?;
            ring.add(&k.id, key).map_err(bad)?;
        }
        return Ok(ring);
    }
    if let Some(hex) = &config.root_key {
        return KeyRing::from_hex(hex).map_err(|source| StartError::Key {
            key: "root_key (PLANNT_ROOT_KEY)".into(),
            source,
        });
    }
    let path = data_dir.join("root.key");
    let file_error = |doing, path: &Path, source| StartError::KeyFile {
        doing,
        path: path.to_path_buf(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => KeyRing::from_hex(&text).map_err(|source| StartError::Key {
            key: path.display().to_string(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir)
                .map_err(|e| file_error("cannot create", data_dir, e))?;
            let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
            getrandom::fill(&mut bytes[..]).map_err(|e| {
                file_error(
                    "no randomness for",
                    &path,
                    std::io::Error::other(e.to_string()),
                )
            })?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options
                .open(&path)
                .map_err(|e| file_error("cannot create", &path, e))?;
            let text = zeroize::Zeroizing::new(hex::encode(&bytes[..]));
            std::io::Write::write_all(&mut file, text.as_bytes())
                .map_err(|e| file_error("cannot write", &path, e))?;
            tracing::info!(path = %path.display(), "generated a root key");
            Ok(KeyRing::single(RootKey::new(*bytes)))
        }
        Err(e) => Err(file_error("cannot read", &path, e)),
    }
}
