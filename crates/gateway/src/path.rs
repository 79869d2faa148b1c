//! The one spelling of a request path that routes are matched against and upstreams are sent.
//!
//! A route's price must be the price of what the upstream will serve, and upstreams resolve
//! paths in many ways: they decode `%68` to `h`, merge `//`, resolve `..` and `%2e%2e`, split
//! at `;` (Tomcat, Jetty), decode twice. So before any route is chosen the gateway either
//! rewrites the path into one canonical form, which it then forwards as is, or refuses it:
//!
//! | form | example | done |
//! |---|---|---|
//! | an unreserved character percent-encoded | `/v1/searc%68` | decoded: `/v1/search` |
//! | lowercase hex in a percent-encoding | `/a%2a` | uppercased: `/a%2A` |
//! | repeated slashes | `/v1//search` | merged: `/v1/search` |
//! | a `.` or `..` segment, plain or encoded | `/docs/%2e%2e/api` | refused |
//! | an encoded `/` or `\`, or a raw `\` | `/docs/..%2fapi` | refused |
//! | a `;` (path parameters) | `/v1/search;x` | refused |
//! | an encoded `%` (double encoding) | `/v1/searc%2568` | refused |
//! | an encoded control character | `/v1/a%00` | refused |
//! | a malformed escape, or bytes that are not UTF-8 once decoded | `/a%zz`, `/%c0%ae` | refused |
//!
//! Case, a trailing slash and a format suffix are left as sent and handled by route matching
//! ([`crate::routes`]), which prices such a variant as the route it may resolve to.

use std::borrow::Cow;

/// Why a path is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// A `.` or `..` segment.
    #[error("the path has a dot segment")]
    DotSegment,
    /// An encoded `/` or `\`, or a raw `\`.
    #[error("the path hides a separator (%2F, %5C or a backslash)")]
    HiddenSeparator,
    /// A `;`.
    #[error("the path has a ';' (path parameters are not accepted)")]
    Parameters,
    /// `%25`: an upstream that decodes twice would see another path.
    #[error("the path is percent-encoded twice (%25)")]
    DoubleEncoded,
    /// `%00` to `%1F`, or `%7F`.
    #[error("the path encodes a control character")]
    ControlCharacter,
    /// `%` not followed by two hex digits, or bytes that do not decode to UTF-8.
    #[error("the path has a malformed percent-encoding")]
    Malformed,
}

/// The canonical form of `path` (borrowed when it already is), or why it is refused.
pub fn canonical(path: &str) -> Result<Cow<'_, str>, PathError> {
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => return Err(PathError::HiddenSeparator),
            b';' => return Err(PathError::Parameters),
            b'%' => {
                let (Some(&hi), Some(&lo)) = (bytes.get(i + 1), bytes.get(i + 2)) else {
                    return Err(PathError::Malformed);
                };
                let byte = hex(hi)
                    .zip(hex(lo))
                    .map(|(h, l)| h << 4 | l)
                    .ok_or(PathError::Malformed)?;
                match byte {
                    b'/' | b'\\' => return Err(PathError::HiddenSeparator),
                    b'%' => return Err(PathError::DoubleEncoded),
                    0x00..=0x1f | 0x7f => return Err(PathError::ControlCharacter),
                    _ => {}
                }
                decoded.push(byte);
                i += 3;
            }
            byte => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    // Overlong and other invalid UTF-8 (`%c0%ae` for `.`) is what old decoders turn into dots.
    let text = std::str::from_utf8(&decoded).map_err(|_| PathError::Malformed)?;
    if text
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err(PathError::DotSegment);
    }
    if is_canonical(bytes) {
        return Ok(Cow::Borrowed(path));
    }
    Ok(Cow::Owned(rewrite(path)))
}

/// True when `path` has no escape of an unreserved character, no lowercase escape and no `//`.
fn is_canonical(bytes: &[u8]) -> bool {
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let byte = hex(bytes[i + 1])
                    .zip(hex(bytes[i + 2]))
                    .map(|(h, l)| h << 4 | l);
                if byte.is_some_and(is_unreserved)
                    || bytes[i + 1].is_ascii_lowercase()
                    || bytes[i + 2].is_ascii_lowercase()
                {
                    return false;
                }
                i += 3;
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => return false,
            _ => i += 1,
        }
    }
    true
}

/// Decodes escaped unreserved characters, uppercases the other escapes, merges `//`. Only
/// called on a path [`canonical`] has checked.
fn rewrite(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let (hi, lo) = (bytes[i + 1], bytes[i + 2]);
                let byte = hex(hi).zip(hex(lo)).map_or(0, |(h, l)| h << 4 | l);
                if is_unreserved(byte) {
                    out.push(byte);
                } else {
                    out.extend_from_slice(&[
                        b'%',
                        hi.to_ascii_uppercase(),
                        lo.to_ascii_uppercase(),
                    ]);
                }
                i += 3;
            }
            b'/' if out.last() == Some(&b'/') => i += 1,
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    // Only ASCII was replaced by ASCII: the rest is the input's own UTF-8.
    String::from_utf8(out).expect("a rewritten path stays UTF-8")
}

fn hex(byte: u8) -> Option<u8> {
    char::from(byte).to_digit(16).map(|d| d as u8)
}

/// RFC 3986 2.3: an escape of one of these means the character itself.
fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_are_borrowed_as_they_are() {
        for path in [
            "/",
            "/v1/demo",
            "/docs/a.b/c",
            "/x/...",
            "/a/.hidden",
            "/%20x",
            "/%C3%A9",
        ] {
            assert!(
                matches!(canonical(path), Ok(Cow::Borrowed(p)) if p == path),
                "{path}"
            );
        }
    }

    #[test]
    fn variants_are_rewritten_to_one_spelling() {
        for (path, want) in [
            ("/v1/searc%68", "/v1/search"),
            ("/v1/%73earch", "/v1/search"),
            ("/v1/%73%65%61%72%63%68", "/v1/search"),
            ("/v1//search", "/v1/search"),
            ("//v1///search//", "/v1/search/"),
            ("/a%2a", "/a%2A"),
            ("/%7e%2D%5f", "/~-_"),
            ("/caf%c3%a9", "/caf%C3%A9"),
            ("/v1\u{fffd}searc%68", "/v1\u{fffd}search"),
        ] {
            assert_eq!(canonical(path).unwrap(), want, "{path}");
            // The canonical form is a fixed point.
            assert!(matches!(canonical(want), Ok(Cow::Borrowed(_))), "{want}");
        }
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        use PathError::*;
        for (path, why) in [
            ("/docs/../api/secret", DotSegment),
            ("/docs/%2e%2e/api/secret", DotSegment),
            ("/docs/%2E%2e/api", DotSegment),
            ("/docs/.%2e/api", DotSegment),
            ("/./v1/demo", DotSegment),
            ("/docs/%2e/x", DotSegment),
            ("/docs/..", DotSegment),
            ("/docs/..%2fapi", HiddenSeparator),
            ("/docs/%2Fapi", HiddenSeparator),
            ("/docs/%5c..%5capi", HiddenSeparator),
            ("/docs\\..\\api", HiddenSeparator),
            ("/v1/search;x", Parameters),
            ("/docs/..;/api", Parameters),
            ("/v1/searc%2568", DoubleEncoded),
            ("/v1/a%00", ControlCharacter),
            ("/v1/a%0a", ControlCharacter),
            ("/v1/a%7F", ControlCharacter),
            ("/a%zz", Malformed),
            ("/a%4", Malformed),
            ("/a%", Malformed),
            ("/%c0%ae%c0%ae/api", Malformed),
            ("/%ff", Malformed),
        ] {
            assert_eq!(canonical(path), Err(why), "{path}");
        }
    }
}
