//! The MPP `Payment-Receipt`: `Receipt::parse` on the input as lossy UTF-8, and on the input
//! base64url-encoded (so the fuzzer reaches the JSON directly).
//!
//! Checks that it never panics, and that an accepted receipt written with `to_header_value()`
//! parses back equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plannt_l402::base64url_encode;
use plannt_l402::mpp::Receipt;

fn check(value: &str) {
    if let Ok(receipt) = Receipt::parse(value) {
        let _ = receipt.payment_hash();
        let again = Receipt::parse(&receipt.to_header_value()).expect("our own receipt parses");
        assert_eq!(again, receipt);
    }
}

fuzz_target!(|data: &[u8]| {
    check(&String::from_utf8_lossy(data));
    check(&base64url_encode(data));
});
