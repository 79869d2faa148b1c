//! `Macaroon::from_binary` on arbitrary bytes: the libmacaroons V2 reader.
//!
//! Checks that it never panics, and that whatever it accepts survives a round trip: `to_binary()`
//! parses back to an equal macaroon, and encoding that copy gives the same bytes again (the first
//! encoding may differ from the input only by non-minimal varints, which we read but never write).
//! Signature verification and `Debug` of an accepted macaroon must not panic either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plannt_l402::{Macaroon, RootKey};

fuzz_target!(|data: &[u8]| {
    let Ok(macaroon) = Macaroon::from_binary(data) else {
        return;
    };
    let encoded = macaroon.to_binary();
    assert!(encoded.len() <= data.len(), "re-encoding grew the macaroon");
    let reparsed = Macaroon::from_binary(&encoded).expect("our own encoding must parse");
    assert_eq!(reparsed, macaroon);
    assert_eq!(reparsed.to_binary(), encoded);

    let _ = macaroon.verify_signature(&RootKey::new([7; 32]));
    let _ = format!("{macaroon:?}");
});
