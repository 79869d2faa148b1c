//! The `Authorization` credential: `Credential::parse` on the input as lossy UTF-8, and
//! `Credential::from_headers` on the input split on `\n` into raw header values (bytes, possibly
//! not UTF-8), as a server receives them.
//!
//! Checks that neither panics; that an accepted credential written with `to_header_value()`
//! parses back equal; and that `KeyRing::verify` of it, for route `demo` at a fixed time, returns
//! `Ok` or an error without panicking. The fuzzer cannot forge a signature, so each accepted
//! credential is also re-signed under the ring's key and bound to its preimage, which takes
//! verification past the signature into the caveat checks; if that copy verifies, what it
//! reports must be the payment hash, token id and key it was built with.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use plannt_l402::{Credential, Identifier, KeyRing, Macaroon, NoConditions, Request, RootKey};
use sha2::{Digest, Sha256};

const KEY_ID: &str = "fuzz";

static RING: LazyLock<KeyRing> = LazyLock::new(|| {
    let mut ring = KeyRing::new();
    ring.add("old", RootKey::new([1; 32])).unwrap();
    ring.add(KEY_ID, RootKey::new([7; 32])).unwrap();
    ring
});

const REQUEST: Request<'static> = Request {
    route: "demo",
    now: 1_800_000_000,
    conditions: &NoConditions,
};

fn check(credential: &Credential) {
    let header = credential.to_header_value();
    let again = Credential::parse(&header).expect("our own header must parse");
    assert_eq!(&again, credential);

    let _ = RING.verify(credential, &REQUEST);

    // The same caveats under a genuine signature and a paid identifier.
    let payment_hash =
        plannt_l402::PaymentHash(Sha256::digest(credential.preimage.as_bytes()).into());
    let key = RING.get(KEY_ID).unwrap();
    let macaroons: Vec<Macaroon> = credential
        .macaroons
        .iter()
        .map(|m| {
            let token_id = Identifier::decode(m.identifier()).map_or([0; 32], |id| id.token_id);
            let identifier = Identifier {
                payment_hash,
                token_id,
            }
            .encode();
            let mut signed = Macaroon::new(key, Some(KEY_ID.as_bytes()), &identifier);
            for caveat in m.caveats() {
                signed.add_first_party_caveat(&caveat.id);
            }
            signed
        })
        .collect();
    let signed = Credential {
        macaroons,
        ..credential.clone()
    };
    if let Ok(verified) = RING.verify(&signed, &REQUEST) {
        assert_eq!(verified.payment_hash, payment_hash);
        assert_eq!(verified.key_id, KEY_ID);
        assert!(verified.valid_until.is_none_or(|t| REQUEST.now < t));
        let token_ids: Vec<[u8; 32]> = signed
            .macaroons
            .iter()
            .map(|m| Identifier::decode(m.identifier()).unwrap().token_id)
            .collect();
        assert!(token_ids.contains(&verified.token_id));
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(credential) = Credential::parse(&String::from_utf8_lossy(data)) {
        check(&credential);
    }
    let values: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    if let Ok(Some(credential)) = Credential::from_headers(values) {
        check(&credential);
    }
});
