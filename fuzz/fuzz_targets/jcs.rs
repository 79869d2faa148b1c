//! RFC 8785 canonical JSON: `jcs::canonicalize` on the input as lossy UTF-8.
//!
//! Checks that it never panics; that an accepted text's canonical form is a fixed point (its own
//! canonical form), reads back to the same value, and holds no raw control character (they are
//! all escaped).
#![no_main]

use libfuzzer_sys::fuzz_target;
use plannt_l402::jcs;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(canonical) = jcs::canonicalize(&text) else {
        return;
    };
    assert_eq!(
        jcs::canonicalize(&canonical).as_deref(),
        Ok(canonical.as_str())
    );
    assert_eq!(jcs::parse(&canonical), jcs::parse(&text));
    assert!(!canonical.bytes().any(|b| b < 0x20), "{canonical:?}");
});
