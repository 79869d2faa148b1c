//! The MPP challenge: `PaymentChallenge::parse_all` and `Offers::from_headers` on the input split
//! on `\n` into several `WWW-Authenticate` values, each read as lossy UTF-8, as a client receives
//! them.
//!
//! Checks that neither panics; that every challenge read, written with `to_header_value()`,
//! reads back equal (when it holds no control character other than the tab, which a
//! quoted-string cannot carry and the writer drops); that its `request` decodes or is refused
//! without panicking; and that every L402 offer found has an invoice of letters and digits.
#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use plannt_l402::mpp::PaymentChallenge;
use plannt_l402::{Offer, Offers};

fn writable(c: &PaymentChallenge) -> bool {
    let fields = [&c.id, &c.realm, &c.method, &c.intent, &c.request];
    let optional = [&c.expires, &c.digest, &c.description, &c.opaque];
    fields
        .into_iter()
        .chain(optional.into_iter().flatten())
        .all(|v| !v.chars().any(|ch| ch.is_ascii_control() && ch != '\t'))
}

fuzz_target!(|data: &[u8]| {
    let values: Vec<Cow<'_, str>> = data
        .split(|&b| b == b'\n')
        .map(String::from_utf8_lossy)
        .collect();
    if let Ok(challenges) = PaymentChallenge::parse_all(values.iter().map(|v| v.as_ref())) {
        for challenge in challenges {
            let _ = challenge.charge_request();
            let _ = challenge.expires_at();
            if writable(&challenge) {
                let header = challenge.to_header_value();
                let again = PaymentChallenge::parse_list(&header).expect("our own header parses");
                assert_eq!(again, vec![challenge]);
            }
        }
    }
    let offers = Offers::from_headers(values.iter().map(|v| v.as_ref()), []);
    for offer in &offers.offers {
        let _ = offer.payment_hash();
        if let Offer::L402(challenge) = offer {
            assert!(challenge.invoice.bytes().all(|b| b.is_ascii_alphanumeric()));
        }
    }
});
