//! The `WWW-Authenticate` challenge: `Challenge::parse` on the input split on `\n` into several
//! header values, each read as lossy UTF-8, as a client receives them.
//!
//! Checks that it never panics, and that an accepted challenge written with `to_header_value()`
//! parses back to the same scheme, macaroon and invoice.
#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use plannt_l402::Challenge;

fuzz_target!(|data: &[u8]| {
    let values: Vec<Cow<'_, str>> = data
        .split(|&b| b == b'\n')
        .map(String::from_utf8_lossy)
        .collect();
    let Ok(challenge) = Challenge::parse(values.iter().map(|v| v.as_ref())) else {
        return;
    };
    let header = challenge.to_header_value();
    let again = Challenge::parse([header.as_str()]).expect("our own challenge must parse");
    assert_eq!(again.scheme, challenge.scheme);
    assert_eq!(again.macaroon, challenge.macaroon);
    assert_eq!(again.invoice, challenge.invoice);
});
