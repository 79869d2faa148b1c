//! Root keys and the key ring: several keys by id, the newest mints, every one verifies.
//!
//! A configured 32-byte key is the macaroon root key itself, so any libmacaroons-compatible
//! library verifies our tokens given it. We keep only the derived key
//! `HMAC-SHA256("macaroons-key-generator", root)`, zeroized on drop and never printed.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// A macaroon root key. `Debug` and `Display` print `<redacted>`.
#[derive(Clone)]
pub struct RootKey {
    derived: Zeroizing<[u8; 32]>,
    fingerprint: String,
}

/// Why a key or key id cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The hex text is not 64 hex characters.
    #[error("a root key is 64 hex characters (32 bytes); got {0} characters that are not that")]
    BadHex(usize),
    /// A key id uses characters outside `[A-Za-z0-9._-]` or is empty or over 64 characters.
    #[error("key id {0:?} must be 1 to 64 characters of A-Z a-z 0-9 . _ -")]
    BadId(String),
    /// Two keys share an id.
    #[error("key id {0:?} is configured twice")]
    DuplicateId(String),
    /// The ring has no key to mint with.
    #[error("no root key is configured")]
    Empty,
    /// Random bytes could not be had from the operating system.
    #[error("the operating system's random source failed: {0}")]
    Random(String),
}

impl RootKey {
    /// A 32-byte root key.
    pub fn new(bytes: [u8; 32]) -> Self {
        let bytes = Zeroizing::new(bytes);
        Self::from_secret(&bytes[..])
    }

    /// A root key of any length, as libmacaroons allows; Plannt itself uses 32 bytes.
    pub fn from_secret(secret: &[u8]) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"macaroons-key-generator")
            .expect("HMAC takes any key length");
        mac.update(secret);
        let derived = Zeroizing::new(<[u8; 32]>::from(mac.finalize().into_bytes()));
        // The fingerprint names the key without revealing it: 4 bytes of a hash of the derived key.
        let digest = Sha256::new()
            .chain_update(b"plannt key fingerprint")
            .chain_update(&derived[..])
            .finalize();
        RootKey {
            derived,
            fingerprint: hex::encode(&digest[..4]),
        }
    }

    /// Parses 64 hex characters, the form of `PLANNT_ROOT_KEY`.
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let text = Zeroizing::new(text.trim().to_string());
        let mut bytes = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text.as_bytes(), &mut bytes[..])
            .map_err(|_| KeyError::BadHex(text.len()))?;
        Ok(Self::new(*bytes))
    }

    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Self, KeyError> {
        Ok(Self::new(random32()?))
    }

    /// A short public name for the key, stable across restarts: the default key id.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub(crate) fn derived(&self) -> &[u8; 32] {
        &self.derived
    }

    /// A 32-byte secret for another purpose, named by `label`: `HMAC-SHA256(k, label)`, `k` the
    /// derived macaroon key. Different labels give unrelated secrets, and none reveals the key.
    pub fn derive_secret(&self, label: &str) -> Zeroizing<[u8; 32]> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.derived[..]).expect("any key length");
        mac.update(label.as_bytes());
        Zeroizing::new(mac.finalize().into_bytes().into())
    }
}

impl fmt::Debug for RootKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RootKey(<redacted>, fingerprint {})", self.fingerprint)
    }
}

impl fmt::Display for RootKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// 32 random bytes from the operating system.
pub(crate) fn random32() -> Result<[u8; 32], KeyError> {
    let mut out = [0u8; 32];
    getrandom::fill(&mut out).map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(out)
}

/// Checks a key id: it travels in the macaroon's location, so it stays short and plain.
pub(crate) fn check_id(id: &str) -> Result<(), KeyError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(KeyError::BadId(id.to_string()))
    }
}

/// Root keys by id. The last key added mints; every key verifies.
#[derive(Clone, Debug, Default)]
pub struct KeyRing {
    keys: Vec<(String, RootKey)>,
}

impl KeyRing {
    /// An empty ring. It verifies nothing and cannot mint until a key is added.
    pub fn new() -> Self {
        Self::default()
    }

    /// A ring of one key, named by its fingerprint.
    pub fn single(key: RootKey) -> Self {
        let id = key.fingerprint().to_string();
        KeyRing {
            keys: vec![(id, key)],
        }
    }

    /// A ring of one key given as 64 hex characters: what `PLANNT_ROOT_KEY` holds.
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        Ok(Self::single(RootKey::from_hex(text)?))
    }

    /// Adds a key; it becomes the one that mints.
    pub fn add(&mut self, id: &str, key: RootKey) -> Result<(), KeyError> {
        check_id(id)?;
        if self.get(id).is_some() {
            return Err(KeyError::DuplicateId(id.to_string()));
        }
        self.keys.push((id.to_string(), key));
        Ok(())
    }

    /// Removes a key: tokens minted with it are refused from now on with `unknown_key`.
    pub fn remove(&mut self, id: &str) -> Option<RootKey> {
        let pos = self.keys.iter().position(|(k, _)| k == id)?;
        Some(self.keys.remove(pos).1)
    }

    /// The key with this id.
    pub fn get(&self, id: &str) -> Option<&RootKey> {
        self.keys.iter().find(|(k, _)| k == id).map(|(_, key)| key)
    }

    /// The id and key that mint new tokens.
    pub fn current(&self) -> Result<(&str, &RootKey), KeyError> {
        self.keys
            .last()
            .map(|(id, key)| (id.as_str(), key))
            .ok_or(KeyError::Empty)
    }

    /// The ids of every key, oldest first.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(id, _)| id.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_never_print() {
        let hex = "11".repeat(32);
        let key = RootKey::from_hex(&hex).unwrap();
        let ring = KeyRing::single(key.clone());
        for text in [
            format!("{key:?}"),
            format!("{key}"),
            format!("{ring:?}"),
            format!("{:#?}", ring),
        ] {
            assert!(!text.contains("1111"), "{text}");
            assert!(!text.contains(&hex::encode(key.derived())), "{text}");
        }
    }

    #[test]
    fn from_hex_needs_64_hex_characters() {
        assert!(RootKey::from_hex(&"ab".repeat(32)).is_ok());
        assert!(RootKey::from_hex(&format!(" {} \n", "AB".repeat(32))).is_ok());
        for bad in [
            "",
            "ab",
            &"ab".repeat(31),
            &"ab".repeat(33),
            &"zz".repeat(32),
        ] {
            assert!(
                matches!(RootKey::from_hex(bad), Err(KeyError::BadHex(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn newest_key_mints_and_ids_are_checked() {
        let mut ring = KeyRing::new();
        assert_eq!(ring.current().unwrap_err(), KeyError::Empty);
        ring.add("2026-10", RootKey::new([1; 32])).unwrap();
        ring.add("2026-11", RootKey::new([2; 32])).unwrap();
        assert_eq!(ring.current().unwrap().0, "2026-11");
        assert_eq!(
            ring.add("2026-11", RootKey::new([3; 32])),
            Err(KeyError::DuplicateId("2026-11".into()))
        );
        for bad in ["", "a b", "ключ", &"a".repeat(65), "a:b"] {
            assert!(matches!(
                ring.add(bad, RootKey::new([4; 32])),
                Err(KeyError::BadId(_))
            ));
        }
        assert!(ring.remove("2026-11").is_some());
        assert_eq!(ring.current().unwrap().0, "2026-10");
        assert_eq!(ring.ids().collect::<Vec<_>>(), ["2026-10"]);
    }

    #[test]
    fn fingerprint_is_stable_and_distinct() {
        assert_eq!(
            RootKey::new([1; 32]).fingerprint(),
            RootKey::new([1; 32]).fingerprint()
        );
        assert_ne!(
            RootKey::new([1; 32]).fingerprint(),
            RootKey::new([2; 32]).fingerprint()
        );
        assert_eq!(RootKey::new([1; 32]).fingerprint().len(), 8);
    }
}
