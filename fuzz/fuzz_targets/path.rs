//! The gateway's request paths: `canonical` on arbitrary bytes (as lossy UTF-8: hyper hands the
//! gateway text).
//!
//! Checks that it never panics; that the canonical form is a fixed point (borrowed when given
//! back); that it has no `//`, no escape of an unreserved character and no lowercase escape; and
//! that it means what the input meant: decoding both gives the same text up to merged slashes,
//! with no `.` or `..` segment and no `/` that was hidden as an escape.
#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/gateway/src/path.rs"]
#[allow(dead_code)]
mod path;

fn decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

fn merge_slashes(bytes: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    for &b in bytes {
        if !(b == b'/' && out.last() == Some(&b'/')) {
            out.push(b);
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let Ok(canonical) = path::canonical(&input) else {
        return;
    };
    let once = canonical.clone().into_owned();
    assert!(
        matches!(path::canonical(&once), Ok(Cow::Borrowed(_))),
        "{once:?} is not a fixed point"
    );
    assert!(!once.contains("//"), "{once:?}");
    let bytes = once.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'%' {
            let (hi, lo) = (bytes[i + 1], bytes[i + 2]);
            assert!(
                !hi.is_ascii_lowercase() && !lo.is_ascii_lowercase(),
                "{once:?}"
            );
            let byte =
                u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap(), 16).unwrap();
            assert!(
                !(byte.is_ascii_alphanumeric() || b"-._~".contains(&byte)),
                "{once:?} escapes an unreserved character"
            );
        }
    }
    let meant = decode(&once);
    assert_eq!(
        meant,
        merge_slashes(&decode(&input)),
        "{input:?} -> {once:?}"
    );
    let text = std::str::from_utf8(&meant).expect("canonical paths decode to UTF-8");
    assert!(text.split('/').all(|s| s != "." && s != ".."), "{once:?}");
    assert_eq!(
        once.matches('/').count(),
        text.matches('/').count(),
        "no separator is hidden in {once:?}"
    );
});
