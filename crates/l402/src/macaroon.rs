//! Macaroons: the libmacaroons V2 binary format and signature chain.
//!
//! The chain is the one libmacaroons, go-macaroon and pymacaroons compute (and not the one in
//! Lightning Labs' `macaroon-spec.md`, which leaves out the key generator):
//!
//! ```text
//! k      = HMAC-SHA256(key = "macaroons-key-generator", msg = root_key)
//! sig_0  = HMAC-SHA256(k, identifier)
//! sig_i  = HMAC-SHA256(sig_{i-1}, caveat_i)
//! ```
//!
//! The V2 packet: `0x02`, `[location]`, `identifier`, `EOS`, then per caveat `[location]`,
//! `identifier`, `[verification id]`, `EOS`, then `EOS` and the 32-byte signature. Each field is
//! `varint type, varint length, data`; an `EOS` is a lone type byte `0x00`.

use std::fmt;

use crate::encoding;
use crate::key::RootKey;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// The largest macaroon we read, in bytes of binary encoding. Real tokens are a few hundred.
pub const MAX_MACAROON_BYTES: usize = 8 * 1024;
/// The most caveats we read in one macaroon.
pub const MAX_CAVEATS: usize = 64;

const VERSION_2: u8 = 2;
const FIELD_EOS: u64 = 0;
const FIELD_LOCATION: u64 = 1;
const FIELD_IDENTIFIER: u64 = 2;
const FIELD_VERIFICATION_ID: u64 = 4;
const FIELD_SIGNATURE: u64 = 6;

/// One caveat as it travels: first-party caveats carry only an identifier (the condition text).
#[derive(Clone, PartialEq, Eq)]
pub struct CaveatPacket {
    /// The third-party location, if any.
    pub location: Option<Vec<u8>>,
    /// The caveat identifier: the condition, for a first-party caveat.
    pub id: Vec<u8>,
    /// The verification id of a third-party caveat.
    pub verification_id: Option<Vec<u8>>,
}

impl CaveatPacket {
    /// A first-party caveat has neither a location nor a verification id.
    pub fn is_first_party(&self) -> bool {
        self.location.is_none() && self.verification_id.is_none()
    }
}

impl fmt::Debug for CaveatPacket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_first_party() {
            write!(f, "{:?}", String::from_utf8_lossy(&self.id))
        } else {
            f.debug_struct("ThirdPartyCaveat")
                .field(
                    "location",
                    &self.location.as_deref().map(String::from_utf8_lossy),
                )
                .field("id", &hex::encode(&self.id))
                .finish()
        }
    }
}

/// A macaroon: location hint, identifier, caveats and the chained signature.
#[derive(Clone, PartialEq, Eq)]
pub struct Macaroon {
    location: Option<Vec<u8>>,
    identifier: Vec<u8>,
    caveats: Vec<CaveatPacket>,
    signature: [u8; 32],
}

/// Why bytes are not a V2 macaroon.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MacaroonError {
    /// The input was empty.
    #[error("the macaroon is empty")]
    Empty,
    /// The input is not base64 in any flavour.
    #[error("the macaroon is not valid base64")]
    NotBase64,
    /// The input is larger than [`MAX_MACAROON_BYTES`].
    #[error("the macaroon is {0} bytes, more than the {MAX_MACAROON_BYTES} we accept")]
    TooLarge(usize),
    /// The first byte is not the V2 version byte.
    #[error("the macaroon starts with byte {0:#04x}, expected 0x02 (libmacaroons V2 binary)")]
    UnsupportedVersion(u8),
    /// The input ended inside a field.
    #[error("the macaroon is truncated")]
    Truncated,
    /// A varint is longer than ten bytes or overflows.
    #[error("the macaroon has a malformed varint")]
    BadVarint,
    /// A field appeared where another was expected.
    #[error("the macaroon has field type {found} where {expected} was expected")]
    UnexpectedField {
        /// What the format allows here.
        expected: &'static str,
        /// The field type found.
        found: u64,
    },
    /// The identifier field is missing or empty.
    #[error("the macaroon has no identifier")]
    MissingIdentifier,
    /// The signature is not 32 bytes.
    #[error("the macaroon signature is {0} bytes, expected 32")]
    BadSignatureLength(usize),
    /// More than [`MAX_CAVEATS`] caveats.
    #[error("the macaroon has more than {MAX_CAVEATS} caveats")]
    TooManyCaveats,
    /// Bytes follow the signature.
    #[error("the macaroon has {0} bytes after its signature")]
    TrailingBytes(usize),
}

impl Macaroon {
    /// Mints a macaroon with no caveats under `key`.
    pub fn new(key: &RootKey, location: Option<&[u8]>, identifier: &[u8]) -> Self {
        let mut mac = HmacSha256::new_from_slice(key.derived()).expect("HMAC takes any key length");
        mac.update(identifier);
        Macaroon {
            location: location.map(<[u8]>::to_vec),
            identifier: identifier.to_vec(),
            caveats: Vec::new(),
            signature: mac.finalize().into_bytes().into(),
        }
    }

    /// Adds a first-party caveat. Anyone holding the macaroon can do this: caveats only narrow.
    pub fn add_first_party_caveat(&mut self, condition: &[u8]) {
        self.signature = chain_step(&self.signature, condition);
        self.caveats.push(CaveatPacket {
            location: None,
            id: condition.to_vec(),
            verification_id: None,
        });
    }

    /// The location hint (not covered by the signature).
    pub fn location(&self) -> Option<&[u8]> {
        self.location.as_deref()
    }

    /// The identifier bytes.
    pub fn identifier(&self) -> &[u8] {
        &self.identifier
    }

    /// The caveats in order.
    pub fn caveats(&self) -> &[CaveatPacket] {
        &self.caveats
    }

    /// The signature.
    pub fn signature(&self) -> &[u8; 32] {
        &self.signature
    }

    /// Recomputes the signature chain under `key` and compares it in constant time.
    ///
    /// A macaroon with a third-party caveat never verifies: Plannt does not discharge them.
    pub fn verify_signature(&self, key: &RootKey) -> bool {
        if !self.caveats.iter().all(CaveatPacket::is_first_party) {
            return false;
        }
        let mut mac = HmacSha256::new_from_slice(key.derived()).expect("HMAC takes any key length");
        mac.update(&self.identifier);
        let mut sig: [u8; 32] = mac.finalize().into_bytes().into();
        for caveat in &self.caveats {
            sig = chain_step(&sig, &caveat.id);
        }
        sig.ct_eq(&self.signature).into()
    }

    /// Writes the libmacaroons V2 binary form.
    pub fn to_binary(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.identifier.len());
        out.push(VERSION_2);
        if let Some(location) = &self.location {
            put_field(&mut out, FIELD_LOCATION, location);
        }
        put_field(&mut out, FIELD_IDENTIFIER, &self.identifier);
        out.push(FIELD_EOS as u8);
        for caveat in &self.caveats {
            if let Some(location) = &caveat.location {
                put_field(&mut out, FIELD_LOCATION, location);
            }
            put_field(&mut out, FIELD_IDENTIFIER, &caveat.id);
            if let Some(vid) = &caveat.verification_id {
                put_field(&mut out, FIELD_VERIFICATION_ID, vid);
            }
            out.push(FIELD_EOS as u8);
        }
        out.push(FIELD_EOS as u8);
        put_field(&mut out, FIELD_SIGNATURE, &self.signature);
        out
    }

    /// Reads the libmacaroons V2 binary form, strictly: no unknown fields, no trailing bytes.
    pub fn from_binary(bytes: &[u8]) -> Result<Self, MacaroonError> {
        if bytes.is_empty() {
            return Err(MacaroonError::Empty);
        }
        if bytes.len() > MAX_MACAROON_BYTES {
            return Err(MacaroonError::TooLarge(bytes.len()));
        }
        if bytes[0] != VERSION_2 {
            return Err(MacaroonError::UnsupportedVersion(bytes[0]));
        }
        let mut reader = Reader { rest: &bytes[1..] };

        let mut field = reader.field()?;
        let location = if field.kind == FIELD_LOCATION {
            let location = field.data.to_vec();
            field = reader.field()?;
            Some(location)
        } else {
            None
        };
        if field.kind != FIELD_IDENTIFIER {
            return Err(unexpected("an identifier", field.kind));
        }
        if field.data.is_empty() {
            return Err(MacaroonError::MissingIdentifier);
        }
        let identifier = field.data.to_vec();
        reader.eos("the end of the header")?;

        let mut caveats = Vec::new();
        loop {
            let mut field = reader.field()?;
            if field.kind == FIELD_EOS {
                break;
            }
            if caveats.len() == MAX_CAVEATS {
                return Err(MacaroonError::TooManyCaveats);
            }
            let location = if field.kind == FIELD_LOCATION {
                let location = field.data.to_vec();
                field = reader.field()?;
                Some(location)
            } else {
                None
            };
            if field.kind != FIELD_IDENTIFIER {
                return Err(unexpected("a caveat identifier", field.kind));
            }
            let id = field.data.to_vec();
            let next = reader.field()?;
            let verification_id = match next.kind {
                FIELD_EOS => None,
                FIELD_VERIFICATION_ID => {
                    let vid = next.data.to_vec();
                    reader.eos("the end of a caveat")?;
                    Some(vid)
                }
                other => return Err(unexpected("the end of a caveat", other)),
            };
            caveats.push(CaveatPacket {
                location,
                id,
                verification_id,
            });
        }

        let field = reader.field()?;
        if field.kind != FIELD_SIGNATURE {
            return Err(unexpected("the signature", field.kind));
        }
        let signature: [u8; 32] = field
            .data
            .try_into()
            .map_err(|_| MacaroonError::BadSignatureLength(field.data.len()))?;
        if !reader.rest.is_empty() {
            return Err(MacaroonError::TrailingBytes(reader.rest.len()));
        }
        Ok(Macaroon {
            location,
            identifier,
            caveats,
            signature,
        })
    }

    /// Writes standard, padded base64 of the binary form: what goes into a header.
    pub fn to_base64(&self) -> String {
        encoding::base64_encode(&self.to_binary())
    }

    /// Reads base64 of any flavour, then the binary form.
    pub fn from_base64(text: &str) -> Result<Self, MacaroonError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(MacaroonError::Empty);
        }
        // Four base64 characters carry three bytes: refuse oversized input before decoding it.
        if text.len() / 4 * 3 > MAX_MACAROON_BYTES + 3 {
            return Err(MacaroonError::TooLarge(text.len() / 4 * 3));
        }
        let bytes = encoding::base64_decode(text).ok_or(MacaroonError::NotBase64)?;
        Self::from_binary(&bytes)
    }
}

impl fmt::Debug for Macaroon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Macaroon")
            .field(
                "location",
                &self.location.as_deref().map(String::from_utf8_lossy),
            )
            .field("identifier", &hex::encode(&self.identifier))
            .field("caveats", &self.caveats)
            .field("signature", &hex::encode(self.signature))
            .finish()
    }
}

fn chain_step(signature: &[u8; 32], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(signature).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn unexpected(expected: &'static str, found: u64) -> MacaroonError {
    MacaroonError::UnexpectedField { expected, found }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_field(out: &mut Vec<u8>, kind: u64, data: &[u8]) {
    put_varint(out, kind);
    put_varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

struct Field<'a> {
    kind: u64,
    data: &'a [u8],
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, MacaroonError> {
        let mut value: u64 = 0;
        for (i, &byte) in self.rest.iter().enumerate().take(10) {
            let bits = u64::from(byte & 0x7f);
            if i == 9 && byte > 1 {
                return Err(MacaroonError::BadVarint);
            }
            value |= bits << (7 * i);
            if byte & 0x80 == 0 {
                self.rest = &self.rest[i + 1..];
                return Ok(value);
            }
        }
        if self.rest.len() < 10 {
            Err(MacaroonError::Truncated)
        } else {
            Err(MacaroonError::BadVarint)
        }
    }

    fn field(&mut self) -> Result<Field<'a>, MacaroonError> {
        let kind = self.varint()?;
        if kind == FIELD_EOS {
            return Ok(Field { kind, data: &[] });
        }
        let len = self.varint()?;
        if len > self.rest.len() as u64 {
            return Err(MacaroonError::Truncated);
        }
        let (data, rest) = self.rest.split_at(len as usize);
        self.rest = rest;
        Ok(Field { kind, data })
    }

    fn eos(&mut self, expected: &'static str) -> Result<(), MacaroonError> {
        let kind = self.varint()?;
        if kind == FIELD_EOS {
            Ok(())
        } else {
            Err(unexpected(expected, kind))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const APERTURE_TOKEN: &str = "AgEEbHNhdAJCAAAwpHpumws6ufQoDwiTLNcge0QPUIWA0+tVY+tKPYAJ/zSfmEGlIpNm3VzxuzCqLhEp5KGiyPLUM9L+kcB7uzS+AAIPc2VydmljZXM9bWVtZTowAAISbWVtZV9jYXBhYmlsaXRpZXM9AAAGILA1VCEIExukt4nG+XR9tX8WJ2BVMiHG3UNt1uYJ+NRD";

    #[test]
    fn libmacaroons_signature_vectors() {
        // From the libmacaroons README, reproduced by pymacaroons and go-macaroon.
        let key = RootKey::from_secret(b"this is our super secret key; only we should know it");
        let mut m = Macaroon::new(&key, Some(b"http://mybank/"), b"we used our secret key");
        assert_eq!(
            hex::encode(m.signature()),
            "e3d9e02908526c4c0039ae15114115d97fdd68bf2ba379b342aaf0f617d0552f"
        );
        m.add_first_party_caveat(b"account = 3735928559");
        assert_eq!(
            hex::encode(m.signature()),
            "1efe4763f290dbce0c1d08477367e11f4eee456a64933cf662d79772dbb82128"
        );
        m.add_first_party_caveat(b"time < 2020-01-01T00:00");
        assert_eq!(
            hex::encode(m.signature()),
            "b5f06c8c8ef92f6c82c6ff282cd1f8bd1849301d09a2db634ba182536a611c49"
        );
        m.add_first_party_caveat(b"email = alice@example.org");
        assert_eq!(
            hex::encode(m.signature()),
            "ddf553e46083e55b8d71ab822be3d8fcf21d6bf19c40d617bb9fb438934474b6"
        );
        assert!(m.verify_signature(&key));
        let other = RootKey::from_secret(b"this is not the secret key");
        assert!(!m.verify_signature(&other));
    }

    #[test]
    fn aperture_token_round_trips_byte_for_byte() {
        let m = Macaroon::from_base64(APERTURE_TOKEN).unwrap();
        assert_eq!(m.location(), Some(&b"lsat"[..]));
        assert_eq!(m.identifier().len(), 66);
        let caveats: Vec<&[u8]> = m.caveats().iter().map(|c| &c.id[..]).collect();
        assert_eq!(caveats, [&b"services=meme:0"[..], b"meme_capabilities="]);
        assert_eq!(m.to_base64(), APERTURE_TOKEN);
    }

    #[test]
    fn tampering_breaks_the_signature() {
        let key = RootKey::from_secret(b"k");
        let mut m = Macaroon::new(&key, None, b"id");
        m.add_first_party_caveat(b"a=1");
        let mut bytes = m.to_binary();
        let pos = bytes.windows(3).position(|w| w == b"a=1").unwrap();
        bytes[pos + 2] = b'2';
        let tampered = Macaroon::from_binary(&bytes).unwrap();
        assert!(!tampered.verify_signature(&key));
    }

    #[test]
    fn third_party_caveats_parse_but_never_verify() {
        let key = RootKey::from_secret(b"k");
        let mut m = Macaroon::new(&key, None, b"id");
        m.caveats.push(CaveatPacket {
            location: Some(b"https://auth".to_vec()),
            id: b"cid".to_vec(),
            verification_id: Some(vec![1; 48]),
        });
        let parsed = Macaroon::from_binary(&m.to_binary()).unwrap();
        assert_eq!(parsed, m);
        assert!(!parsed.caveats()[0].is_first_party());
        assert!(!parsed.verify_signature(&key));
    }
}
