//! The MPP credential: `PaymentCredential::parse` on the input as lossy UTF-8, and
//! `PaymentCredential::from_headers` on the input split on `\n` into raw `Authorization` values.
//!
//! Checks that neither panics; that an accepted credential written with `to_header_value()`
//! parses back to the same challenge, source and preimage; and that `ChallengeKeys::verify_charge`
//! (route `demo`, 21 sats, a fixed time) returns `Ok` or an error. The fuzzer cannot forge a
//! challenge id, so each accepted credential is also given the id our key computes for its
//! parameters, which takes verification past the id into the request, preimage, expiry, route and
//! price checks; if that copy verifies, it must report the preimage's hash and an expiry after now.
//! `ChallengeKeys::verify_header`, which reads the JSON without copying it, must refuse or accept
//! every input exactly as `parse` followed by `verify_charge` does.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use plannt_l402::mpp::{
    ChallengeKey, ChallengeKeys, ChargeExpect, CredentialError, PaymentCredential, VerifyError,
};

static KEY: LazyLock<ChallengeKey> = LazyLock::new(|| ChallengeKey::from_secret(&[7; 32]));
static KEYS: LazyLock<ChallengeKeys> = LazyLock::new(|| ChallengeKeys::new(vec![KEY.clone()]));

const EXPECT: ChargeExpect<'static> = ChargeExpect {
    route: "demo",
    price_sats: 21,
    now: 1_800_000_000,
};

fn check(credential: &PaymentCredential) {
    let header = credential.to_header_value();
    let again = PaymentCredential::parse(&header).expect("our own header must parse");
    assert_eq!(again.challenge, credential.challenge);
    assert_eq!(again.source, credential.source);
    assert_eq!(again.preimage(), credential.preimage());

    let _ = KEYS.verify_charge(credential, &EXPECT);
    let mut ours = credential.clone();
    ours.challenge.id = KEY.challenge_id(&ours.challenge);
    if let Ok(verified) = KEYS.verify_charge(&ours, &EXPECT) {
        let preimage = ours.preimage().expect("verified with a preimage");
        assert_eq!(verified.payment_hash, preimage.hash());
        assert!(verified.valid_until > EXPECT.now);
        assert!(verified.amount_sats >= EXPECT.price_sats);
    }
}

fn same_as_the_slow_path(text: &str) {
    let slow = PaymentCredential::parse(text)
        .map_err(VerifyError::from)
        .and_then(|c| KEYS.verify_charge(&c, &EXPECT));
    let fast = KEYS.verify_header(text, &EXPECT);
    let not_json = |r: &Result<_, VerifyError>| {
        matches!(r, Err(VerifyError::Malformed(CredentialError::NotJson(_))))
    };
    if !(not_json(&slow) && not_json(&fast)) {
        assert_eq!(slow, fast);
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    same_as_the_slow_path(&text);
    if let Ok(credential) = PaymentCredential::parse(&text) {
        check(&credential);
        same_as_the_slow_path(&credential.to_header_value());
    }
    if let Ok(Some(credential)) = PaymentCredential::from_headers(data.split(|&b| b == b'\n')) {
        check(&credential);
    }
});
