//! Base64 and hex as they appear in L402 headers.
//!
//! For L402 we always write standard, padded base64 (what `macaroon-spec.md` and every
//! regex-based client expect) and read every flavour real clients send: standard or URL-safe,
//! padded or not. The `Payment` scheme of MPP is stricter: base64url written without padding, read
//! with or without it, and every other spelling refused ([`base64url_decode`]), because its
//! encoded forms are compared and hashed as strings.

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

const STANDARD: GeneralPurpose = base64::engine::general_purpose::STANDARD;

const READ_CONFIG: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const READ_STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, READ_CONFIG);
const READ_URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, READ_CONFIG);
const URL_SAFE_NO_PAD: GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Encodes bytes as standard base64 with padding.
pub fn base64_encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Decodes base64 in any of the flavours L402 clients use. Mixing the two alphabets is refused.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let url_safe = text.bytes().any(|b| b == b'-' || b == b'_');
    let standard = text.bytes().any(|b| b == b'+' || b == b'/');
    match (url_safe, standard) {
        (true, true) => None,
        (true, false) => READ_URL_SAFE.decode(text).ok(),
        (false, _) => READ_STANDARD.decode(text).ok(),
    }
}

/// Encodes bytes as base64url without padding (RFC 4648 section 5), as the `Payment` scheme writes
/// its request, credential and receipt.
pub fn base64url_encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url strictly: the URL-safe alphabet only, no whitespace, padding either absent or
/// exactly the canonical `=` or `==`, and no stray bits in the last character. Each byte string
/// thus has one unpadded and at most one padded spelling.
pub fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let body = text.trim_end_matches('=');
    let pads = text.len() - body.len();
    if pads > 0 && (pads > 2 || !text.len().is_multiple_of(4)) {
        return None;
    }
    // The engine refuses any byte outside the URL-safe alphabet (`=`, `+`, `/` and whitespace
    // included) and stray bits in the last character.
    URL_SAFE_NO_PAD.decode(body).ok()
}

/// Decodes exactly 32 bytes of hex, either case.
pub fn hex32(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_flavour() {
        let bytes: Vec<u8> = (0u8..=255).collect();
        let std = base64_encode(&bytes);
        let url = base64::engine::general_purpose::URL_SAFE.encode(&bytes);
        for text in [
            std.clone(),
            std.trim_end_matches('=').to_string(),
            url.clone(),
            url.trim_end_matches('=').to_string(),
        ] {
            assert_eq!(base64_decode(&text).as_deref(), Some(&bytes[..]), "{text}");
        }
    }

    #[test]
    fn refuses_bad_base64() {
        for text in ["a+b-", "!!!!", "QQ=a", "QR==", "Q", "QQ==="] {
            assert_eq!(base64_decode(text), None, "{text}");
        }
    }

    #[test]
    fn base64url_has_one_spelling_each_way() {
        let bytes: Vec<u8> = (0u8..=255).collect();
        let text = base64url_encode(&bytes);
        assert!(!text.contains('='));
        assert_eq!(base64url_decode(&text).as_deref(), Some(&bytes[..]));
        for (text, ok) in [
            ("aGVsbG8", true),
            ("aGVsbG8=", true),
            ("", true),
            ("AA==", true),
            ("AB", false),
            ("aGVs\nbG8", false),
            ("a+b/", false),
            ("aGV=bG8", false),
            ("aGVsbG8==", false),
            ("aGVsbG8===", false),
            ("aGVsbG=", false),
            ("aGVsb", false),
            (" aGVsbG8", false),
        ] {
            assert_eq!(base64url_decode(text).is_some(), ok, "{text:?}");
        }
    }

    #[test]
    fn hex32_needs_exactly_32_bytes() {
        assert!(hex32(&"Ab".repeat(32)).is_some());
        assert!(hex32(&"ab".repeat(31)).is_none());
        assert!(hex32(&"ab".repeat(33)).is_none());
        assert!(hex32(&"zz".repeat(32)).is_none());
    }
}
