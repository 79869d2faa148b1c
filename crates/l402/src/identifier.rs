//! The macaroon identifier: Aperture's 66-byte layout.
//!
//! ```text
//! [0..2)   u16 version = 0 (big-endian)
//! [2..34)  payment hash
//! [34..66) token id (32 random bytes)
//! ```
//! The code of Aperture, `macaroon-spec.md` and real tokens all put the payment hash first.

use std::fmt;

use crate::PaymentHash;

/// The length of an identifier in bytes.
pub const IDENTIFIER_LEN: usize = 66;

/// A decoded macaroon identifier.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Identifier {
    /// The payment hash of the invoice that buys the token.
    pub payment_hash: PaymentHash,
    /// A random id that tells tokens for the same payment apart.
    pub token_id: [u8; 32],
}

/// Why bytes are not an identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentifierError {
    /// The identifier is not exactly 66 bytes.
    #[error("the macaroon identifier is {0} bytes, expected {IDENTIFIER_LEN}")]
    WrongLength(usize),
    /// The version field is not 0.
    #[error("the macaroon identifier has version {0}, only version 0 is known")]
    UnknownVersion(u16),
}

impl Identifier {
    /// The only identifier version in use.
    pub const VERSION: u16 = 0;

    /// Writes the 66 bytes.
    pub fn encode(&self) -> [u8; IDENTIFIER_LEN] {
        let mut out = [0u8; IDENTIFIER_LEN];
        out[..2].copy_from_slice(&Self::VERSION.to_be_bytes());
        out[2..34].copy_from_slice(self.payment_hash.as_bytes());
        out[34..].copy_from_slice(&self.token_id);
        out
    }

    /// Reads exactly 66 bytes of version 0.
    pub fn decode(bytes: &[u8]) -> Result<Self, IdentifierError> {
        if bytes.len() != IDENTIFIER_LEN {
            return Err(IdentifierError::WrongLength(bytes.len()));
        }
        let version = u16::from_be_bytes([bytes[0], bytes[1]]);
        if version != Self::VERSION {
            return Err(IdentifierError::UnknownVersion(version));
        }
        let mut id = Identifier {
            payment_hash: PaymentHash([0; 32]),
            token_id: [0; 32],
        };
        id.payment_hash.0.copy_from_slice(&bytes[2..34]);
        id.token_id.copy_from_slice(&bytes[34..]);
        Ok(id)
    }
}

impl fmt::Debug for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identifier")
            .field("version", &Self::VERSION)
            .field("payment_hash", &hex::encode(self.payment_hash))
            .field("token_id", &hex::encode(self.token_id))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let id = Identifier {
            payment_hash: PaymentHash([7; 32]),
            token_id: [9; 32],
        };
        let bytes = id.encode();
        assert_eq!(&bytes[..2], &[0, 0]);
        assert_eq!(Identifier::decode(&bytes), Ok(id));
    }

    #[test]
    fn requires_exactly_66_bytes_of_version_0() {
        assert_eq!(
            Identifier::decode(&[0; 65]),
            Err(IdentifierError::WrongLength(65))
        );
        assert_eq!(
            Identifier::decode(&[0; 67]),
            Err(IdentifierError::WrongLength(67))
        );
        let mut bytes = [0u8; 66];
        bytes[1] = 1;
        assert_eq!(
            Identifier::decode(&bytes),
            Err(IdentifierError::UnknownVersion(1))
        );
    }
}
