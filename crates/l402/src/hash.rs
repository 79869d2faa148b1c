//! The two 32-byte values an L402 payment turns on: the payment hash, public, and its
//! preimage, a secret until paid and the proof of payment after.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Why text is not 32 bytes of hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("expected 64 hex characters")]
pub struct HexError;

fn from_hex(text: &str) -> Result<[u8; 32], HexError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).map_err(|_| HexError)?;
    Ok(out)
}

/// `sha256(preimage)`: names an invoice, and the token bound to it. Public: compared plainly.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PaymentHash(pub [u8; 32]);

impl PaymentHash {
    /// Reads 64 hex characters, either case.
    pub fn from_hex(text: &str) -> Result<Self, HexError> {
        from_hex(text).map(PaymentHash)
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        let mut hex = [0u8; 64];
        hex::encode_to_slice(self.0, &mut hex).expect("32 bytes are 64 hex digits");
        // hex::encode collects chars one at a time; a payment hash is written once a request.
        String::from_utf8(hex.to_vec()).expect("hex digits are ASCII")
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl From<[u8; 32]> for PaymentHash {
    fn from(bytes: [u8; 32]) -> Self {
        PaymentHash(bytes)
    }
}

impl AsRef<[u8]> for PaymentHash {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl FromStr for PaymentHash {
    type Err = HexError;

    fn from_str(text: &str) -> Result<Self, HexError> {
        PaymentHash::from_hex(text)
    }
}

impl fmt::Display for PaymentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PaymentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PaymentHash({})", self.to_hex())
    }
}

impl serde::Serialize for PaymentHash {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for PaymentHash {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        PaymentHash::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

/// The secret whose hash is the payment hash. Whoever holds it before the payment can use the
/// token unpaid; after it, it is the proof of payment. So: compared in constant time, never in
/// `Debug` output, and written out only on purpose, with [`Preimage::to_hex`].
#[derive(Clone, Copy)]
pub struct Preimage([u8; 32]);

impl Preimage {
    /// A preimage of these bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        Preimage(bytes)
    }

    /// A fresh random preimage.
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        Ok(Preimage(bytes))
    }

    /// Reads 64 hex characters, either case.
    pub fn from_hex(text: &str) -> Result<Self, HexError> {
        from_hex(text).map(Preimage)
    }

    /// Lowercase hex: the proof of payment, for receipts.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// `sha256(preimage)`.
    pub fn hash(&self) -> PaymentHash {
        PaymentHash(Sha256::digest(self.0).into())
    }

    /// Whether this preimage pays `hash`.
    pub fn pays(&self, hash: &PaymentHash) -> bool {
        self.hash() == *hash
    }
}

impl From<[u8; 32]> for Preimage {
    fn from(bytes: [u8; 32]) -> Self {
        Preimage(bytes)
    }
}

impl PartialEq for Preimage {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for Preimage {}

impl fmt::Debug for Preimage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Preimage(<redacted>)")
    }
}

impl serde::Serialize for Preimage {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for Preimage {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Preimage::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_in_either_case() {
        let preimage = Preimage::new([0xab; 32]);
        let hash = preimage.hash();
        assert_eq!(PaymentHash::from_hex(&hash.to_hex()), Ok(hash));
        assert_eq!(
            PaymentHash::from_hex(&hash.to_hex().to_uppercase()),
            Ok(hash)
        );
        assert_eq!(Preimage::from_hex(&"AB".repeat(32)), Ok(preimage));
        for bad in ["", "ab", &"zz".repeat(32), &"ab".repeat(33)] {
            assert_eq!(PaymentHash::from_hex(bad), Err(HexError), "{bad}");
            assert_eq!(Preimage::from_hex(bad), Err(HexError), "{bad}");
        }
    }

    #[test]
    fn a_preimage_pays_its_hash_only() {
        let preimage = Preimage::new([1; 32]);
        let hash = PaymentHash(Sha256::digest([1u8; 32]).into());
        assert!(preimage.pays(&hash));
        assert!(!Preimage::new([2; 32]).pays(&hash));
        assert_ne!(Preimage::new([2; 32]), preimage);
    }

    #[test]
    fn a_preimage_never_prints() {
        let preimage = Preimage::new([0xcd; 32]);
        let shown = format!("{preimage:?}");
        assert!(!shown.contains("cd"), "{shown}");
        assert_eq!(
            format!("{:?}", preimage.hash()),
            format!("PaymentHash({})", preimage.hash())
        );
    }

    #[test]
    fn serde_forms_are_hex_strings() {
        let preimage = Preimage::new([7; 32]);
        let json = serde_json::to_string(&(preimage.hash(), preimage)).unwrap();
        assert_eq!(
            json,
            format!("[\"{}\",\"{}\"]", preimage.hash(), "07".repeat(32))
        );
        let back: (PaymentHash, Preimage) = serde_json::from_str(&json).unwrap();
        assert_eq!(back, (preimage.hash(), preimage));
        assert!(serde_json::from_str::<PaymentHash>("\"00\"").is_err());
    }
}
