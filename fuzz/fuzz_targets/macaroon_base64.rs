//! `Macaroon::from_base64` on arbitrary text (the input, read as lossy UTF-8): the form a macaroon
//! takes in every header.
//!
//! Checks that it never panics, and that an accepted macaroon written with `to_base64()` reads
//! back equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plannt_l402::Macaroon;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(macaroon) = Macaroon::from_base64(&text) {
        let again =
            Macaroon::from_base64(&macaroon.to_base64()).expect("our own base64 must parse");
        assert_eq!(again, macaroon);
    }
});
