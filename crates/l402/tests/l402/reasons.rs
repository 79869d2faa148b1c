//! Every way a credential fails, by its `Reason` code, through the public API of `plannt-l402`.
//!
//! One test per code (`malformed`, `bad_signature`, `bad_preimage`, `expired`, `wrong_route`,
//! `unknown_key`, `caveat_failed`, and `spent`, which only the spent-token store produces), each
//! checking the typed error, `reason()`, `code()`, `status()` and `pay_again()`. Also: key
//! rotation, credentials carrying several macaroons, secrets kept out of `Debug` and `Display`,
//! and a real token minted by Aperture.

use hmac::{Hmac, Mac};
use plannt_l402::{
    Caveat, CaveatFailure, Conditions, Credential, CredentialError, Identifier, IdentifierError,
    KeyRing, Macaroon, MintRequest, NoConditions, PaymentHash, Preimage, Reason, Request, RootKey,
    Scheme, Service, Verified, VerifyError,
};
use sha2::{Digest, Sha256};

const NOW: u64 = 1_800_000_000;
const UNTIL: u64 = NOW + 600;
const PREIMAGE: [u8; 32] = [42; 32];

fn hash(preimage: [u8; 32]) -> PaymentHash {
    PaymentHash(Sha256::digest(preimage).into())
}

fn ring() -> KeyRing {
    let mut ring = KeyRing::new();
    ring.add("2026-11", RootKey::new([7; 32])).unwrap();
    ring
}

fn mint(ring: &KeyRing, route: &str, preimage: [u8; 32]) -> Macaroon {
    mint_with(ring, route, preimage, &[])
}

fn mint_with(
    ring: &KeyRing,
    route: &str,
    preimage: [u8; 32],
    conditions: &[(&str, &str)],
) -> Macaroon {
    ring.mint(&MintRequest {
        payment_hash: hash(preimage),
        route,
        valid_until: UNTIL,
        conditions,
    })
    .unwrap()
}

fn at(route: &str, now: u64) -> Request<'_> {
    Request {
        route,
        now,
        conditions: &NoConditions,
    }
}

fn verify(
    ring: &KeyRing,
    macaroon: &Macaroon,
    preimage: [u8; 32],
    request: &Request<'_>,
) -> Result<Verified, VerifyError> {
    ring.verify(&Credential::new(macaroon.clone(), preimage), request)
}

/// Checks the code, status and pay-again flag of a failure.
fn assert_reason(error: &VerifyError, reason: Reason) {
    assert_eq!(error.reason(), reason, "{error:?}");
    let (code, status) = match reason {
        Reason::Malformed => ("malformed", 401),
        Reason::BadSignature => ("bad_signature", 401),
        Reason::BadPreimage => ("bad_preimage", 401),
        Reason::Expired => ("expired", 402),
        Reason::WrongRoute => ("wrong_route", 402),
        Reason::UnknownKey => ("unknown_key", 402),
        Reason::CaveatFailed => ("caveat_failed", 402),
        Reason::Spent => ("spent", 402),
    };
    assert_eq!(error.reason().code(), code);
    assert_eq!(error.reason().to_string(), code);
    assert_eq!(error.reason().status(), status);
    assert_eq!(error.reason().pay_again(), status == 402);
    assert!(!error.to_string().is_empty());
}

/// Replaces the first occurrence of `from` in the binary form and reads the macaroon back.
fn tamper(macaroon: &Macaroon, from: &[u8], to: &[u8]) -> Macaroon {
    assert_eq!(from.len(), to.len());
    let mut bytes = macaroon.to_binary();
    let pos = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("bytes to tamper with are present");
    bytes[pos..pos + to.len()].copy_from_slice(to);
    Macaroon::from_binary(&bytes).unwrap()
}

// ---------------------------------------------------------------------------------------------
// The codes themselves.

#[test]
fn codes_read_back_and_split_into_401_and_402() {
    let mut codes = Vec::new();
    for reason in Reason::ALL {
        assert_eq!(Reason::from_code(reason.code()), Some(reason));
        assert_eq!(reason.to_string(), reason.code());
        assert_eq!(reason.status() == 402, reason.pay_again());
        assert!(matches!(reason.status(), 401 | 402));
        codes.push(reason.code());
    }
    assert_eq!(
        codes,
        [
            "malformed",
            "bad_signature",
            "bad_preimage",
            "expired",
            "wrong_route",
            "unknown_key",
            "caveat_failed",
            "spent"
        ]
    );
    for unknown in [
        "",
        "Spent",
        "SPENT",
        "spent ",
        "bad-signature",
        "ok",
        "unknown",
    ] {
        assert_eq!(Reason::from_code(unknown), None, "{unknown:?}");
    }
}

#[test]
fn spent_is_a_code_only_and_means_pay_again() {
    let spent = Reason::from_code("spent").unwrap();
    assert_eq!(spent, Reason::Spent);
    assert_eq!(spent.status(), 402);
    assert!(spent.pay_again());
    assert_eq!(spent.code(), "spent");
}

// ---------------------------------------------------------------------------------------------
// One test per code.

#[test]
fn malformed_header() {
    let ring = ring();
    for header in [
        "",
        "Bearer x",
        "L402",
        "L402 nope",
        "L402 AgE=:00",
        "L402 !!!!:",
    ] {
        let err = ring.verify_header(header, &at("demo", NOW)).unwrap_err();
        assert!(
            matches!(err, VerifyError::Malformed(_)),
            "{header:?}: {err:?}"
        );
        assert_reason(&err, Reason::Malformed);
    }
    let err = ring
        .verify_header("L402 nope", &at("demo", NOW))
        .unwrap_err();
    assert_eq!(err, VerifyError::Malformed(CredentialError::NoColon));
}

#[test]
fn malformed_identifier_length() {
    let ring = ring();
    let (id, key) = ring.current().unwrap();
    for len in [0usize, 1, 65, 67, 200] {
        let mut m = Macaroon::new(key, Some(id.as_bytes()), &vec![0u8; len]);
        m.add_first_party_caveat(b"services=demo:0");
        let err = verify(&ring, &m, PREIMAGE, &at("demo", NOW)).unwrap_err();
        assert_eq!(
            err,
            VerifyError::Identifier(IdentifierError::WrongLength(len))
        );
        assert_reason(&err, Reason::Malformed);
    }
    // An identifier of the right length but an unknown version.
    let mut bytes = Identifier {
        payment_hash: hash(PREIMAGE),
        token_id: [1; 32],
    }
    .encode();
    bytes[1] = 1;
    let m = Macaroon::new(key, Some(id.as_bytes()), &bytes);
    let err = verify(&ring, &m, PREIMAGE, &at("demo", NOW)).unwrap_err();
    assert_eq!(
        err,
        VerifyError::Identifier(IdentifierError::UnknownVersion(1))
    );
    assert_reason(&err, Reason::Malformed);
}

#[test]
fn bad_signature_when_a_caveat_is_tampered_with() {
    let ring = ring();
    let m = mint(&ring, "demo", PREIMAGE);
    // Push the expiry out by changing one digit of the signed caveat.
    let until = UNTIL.to_string();
    let later = format!("9{}", &until[1..]);
    let tampered = tamper(&m, until.as_bytes(), later.as_bytes());
    assert_eq!(
        Caveat::parse(&tampered.caveats()[1].id).unwrap(),
        Caveat::ValidUntil {
            service: "demo".into(),
            unix: later.parse().unwrap()
        }
    );
    let err = verify(&ring, &tampered, PREIMAGE, &at("demo", NOW)).unwrap_err();
    assert_eq!(err, VerifyError::BadSignature);
    assert_reason(&err, Reason::BadSignature);

    // Re-point the route.
    let tampered = tamper(&m, b"services=demo:0", b"services=data:0");
    let err = verify(&ring, &tampered, PREIMAGE, &at("data", NOW)).unwrap_err();
    assert_eq!(err, VerifyError::BadSignature);
}

#[test]
fn bad_signature_when_the_signature_or_identifier_is_tampered_with() {
    let ring = ring();
    let m = mint(&ring, "demo", PREIMAGE);
    for i in [0usize, 15, 31] {
        let mut sig = *m.signature();
        let from = sig;
        sig[i] ^= 0x01;
        let tampered = tamper(&m, &from, &sig);
        let err = verify(&ring, &tampered, PREIMAGE, &at("demo", NOW)).unwrap_err();
        assert_eq!(err, VerifyError::BadSignature);
        assert_reason(&err, Reason::BadSignature);
    }
    // A holder who swaps in the payment hash of a preimage they know still cannot pass.
    let mine = [9u8; 32];
    let tampered = tamper(&m, hash(PREIMAGE).as_bytes(), hash(mine).as_bytes());
    let err = verify(&ring, &tampered, mine, &at("demo", NOW)).unwrap_err();
    assert_eq!(err, VerifyError::BadSignature);
    assert_reason(&err, Reason::BadSignature);
}

#[test]
fn bad_signature_when_signed_by_another_key_under_the_same_id() {
    let ours = ring();
    let mut theirs = KeyRing::new();
    theirs.add("2026-11", RootKey::new([8; 32])).unwrap();
    let m = mint(&theirs, "demo", PREIMAGE);
    assert_eq!(m.location(), Some(&b"2026-11"[..]));
    let err = verify(&ours, &m, PREIMAGE, &at("demo", NOW)).unwrap_err();
    assert_eq!(err, VerifyError::BadSignature);
    assert_reason(&err, Reason::BadSignature);
}

#[test]
fn bad_preimage() {
    let ring = ring();
    let m = mint(&ring, "demo", PREIMAGE);
    for wrong in [[0u8; 32], [41; 32], hash(PREIMAGE).0] {
        let err = verify(&ring, &m, wrong, &at("demo", NOW)).unwrap_err();
        assert_eq!(err, VerifyError::BadPreimage);
        assert_reason(&err, Reason::BadPreimage);
    }
    // Through the header too.
    let header = format!("L402 {}:{}", m.to_base64(), "00".repeat(32));
    let err = ring.verify_header(&header, &at("demo", NOW)).unwrap_err();
    assert_eq!(err, VerifyError::BadPreimage);
}

#[test]
fn expired_at_exactly_valid_until_and_after() {
    let ring = ring();
    let m = mint(&ring, "demo", PREIMAGE);
    let ok = verify(&ring, &m, PREIMAGE, &at("demo", UNTIL - 1)).unwrap();
    assert_eq!(ok.valid_until, Some(UNTIL));
    for now in [UNTIL, UNTIL + 1, UNTIL + 86_400, u64::MAX] {
        let err = verify(&ring, &m, PREIMAGE, &at("demo", now)).unwrap_err();
        assert_eq!(
            err,
            VerifyError::Caveat(CaveatFailure::Expired { valid_until: UNTIL })
        );
        assert_reason(&err, Reason::Expired);
    }
}

#[test]
fn wrong_route() {
    let ring = ring();
    let m = mint(&ring, "demo", PREIMAGE);
    let err = verify(&ring, &m, PREIMAGE, &at("data", NOW)).unwrap_err();
    assert!(
        matches!(
            &err,
            VerifyError::Caveat(CaveatFailure::WrongRoute { granted, requested })
                if granted == "demo" && requested == "data"
        ),
        "{err:?}"
    );
    assert_reason(&err, Reason::WrongRoute);
    // Route ids are compared exactly.
    for route in ["Demo", "demo ", "dem", "demos", ""] {
        let err = verify(&ring, &m, PREIMAGE, &at(route, NOW)).unwrap_err();
        assert_reason(&err, Reason::WrongRoute);
    }
}

#[test]
fn unknown_key_after_removal_or_when_the_location_names_no_key() {
    let mut ring = ring();
    let m = mint(&ring, "demo", PREIMAGE);
    assert!(verify(&ring, &m, PREIMAGE, &at("demo", NOW)).is_ok());
    let removed = ring.remove("2026-11");
    assert!(removed.is_some());
    let err = verify(&ring, &m, PREIMAGE, &at("demo", NOW)).unwrap_err();
    assert_eq!(err, VerifyError::UnknownKey("2026-11".into()));
    assert_reason(&err, Reason::UnknownKey);

    let ring = self::ring();
    let (_, key) = ring.current().unwrap();
    let identifier = Identifier {
        payment_hash: hash(PREIMAGE),
        token_id: [3; 32],
    }
    .encode();
    for (location, named) in [
        (Some(&b"no-such-key"[..]), "no-such-key"),
        (None, ""),
        (Some(&b""[..]), ""),
        (Some(&b"2026-11 "[..]), "2026-11 "),
    ] {
        let mut m = Macaroon::new(key, location, &identifier);
        m.add_first_party_caveat(b"services=demo:0");
        let err = verify(&ring, &m, PREIMAGE, &at("demo", NOW)).unwrap_err();
        assert_eq!(err, VerifyError::UnknownKey(named.into()), "{location:?}");
        assert_reason(&err, Reason::UnknownKey);
    }
}

fn assert_caveat_failed(result: Result<Verified, VerifyError>) {
    let err = result.unwrap_err();
    assert!(
        matches!(err, VerifyError::Caveat(CaveatFailure::Refused { .. })),
        "{err:?}"
    );
    assert_reason(&err, Reason::CaveatFailed);
}

#[test]
fn caveat_failed_for_a_caveat_the_holder_adds_that_nobody_knows() {
    let ring = ring();
    for extra in [
        &b"demo_color=red"[..],
        b"time < 2020-01-01T00:00",
        b"account = 3735928559",
        b"data_valid_until=9999999999",
        b"",
        b"\xff\xfe",
    ] {
        let mut m = mint(&ring, "demo", PREIMAGE);
        m.add_first_party_caveat(extra);
        assert!(m.verify_signature(ring.get("2026-11").unwrap()));
        assert_caveat_failed(verify(&ring, &m, PREIMAGE, &at("demo", NOW)));
    }
}

#[test]
fn caveat_failed_for_a_caveat_that_widens_an_earlier_one() {
    let ring = ring();
    let widening = [
        format!("demo_valid_until={}", UNTIL + 1),
        format!("demo_valid_until={}", u64::MAX),
        "services=demo:0,data:0".to_string(),
        "services=data:0".to_string(),
    ];
    for extra in &widening {
        let mut m = mint(&ring, "demo", PREIMAGE);
        m.add_first_party_caveat(extra.as_bytes());
        assert_caveat_failed(verify(&ring, &m, PREIMAGE, &at("demo", NOW)));
    }
    // Narrowing is the holder's right, and it takes effect.
    let mut m = mint(&ring, "demo", PREIMAGE);
    m.add_first_party_caveat(format!("demo_valid_until={}", NOW + 10).as_bytes());
    assert_eq!(
        verify(&ring, &m, PREIMAGE, &at("demo", NOW))
            .unwrap()
            .valid_until,
        Some(NOW + 10)
    );
    let err = verify(&ring, &m, PREIMAGE, &at("demo", NOW + 10)).unwrap_err();
    assert_reason(&err, Reason::Expired);
}

#[test]
fn caveat_failed_for_an_unsatisfied_route_condition() {
    let ring = ring();
    let m = mint_with(&ring, "demo", PREIMAGE, &[("max_tokens", "100")]);
    let texts: Vec<&[u8]> = m.caveats().iter().map(|c| &c.id[..]).collect();
    assert_eq!(
        texts,
        [
            &b"services=demo:0"[..],
            format!("demo_valid_until={UNTIL}").as_bytes(),
            b"demo_max_tokens=100"
        ]
    );
    let judge = |limit: u32| {
        move |name: &str, value: &str| match name {
            "max_tokens" => Some(value.parse::<u32>().is_ok_and(|v| v <= limit)),
            _ => None,
        }
    };
    let allow = judge(1000);
    let deny = judge(10);
    fn request(conditions: &dyn Conditions) -> Request<'_> {
        Request {
            route: "demo",
            now: NOW,
            conditions,
        }
    }
    assert!(verify(&ring, &m, PREIMAGE, &request(&allow)).is_ok());
    assert_caveat_failed(verify(&ring, &m, PREIMAGE, &request(&deny)));
    // A route that does not know the condition refuses it too.
    assert_caveat_failed(verify(&ring, &m, PREIMAGE, &request(&NoConditions)));
}

// ---------------------------------------------------------------------------------------------
// Key rotation.

#[test]
fn key_rotation_keeps_tokens_in_flight_until_their_key_is_removed() {
    let mut ring = KeyRing::new();
    ring.add("a", RootKey::new([0xa; 32])).unwrap();
    let old = mint(&ring, "demo", PREIMAGE);
    assert_eq!(old.location(), Some(&b"a"[..]));

    ring.add("b", RootKey::new([0xb; 32])).unwrap();
    assert_eq!(ring.current().unwrap().0, "b");
    let new = mint(&ring, "demo", PREIMAGE);
    assert_eq!(new.location(), Some(&b"b"[..]));
    assert!(!new.verify_signature(ring.get("a").unwrap()));
    assert!(new.verify_signature(ring.get("b").unwrap()));

    let v = verify(&ring, &old, PREIMAGE, &at("demo", NOW)).unwrap();
    assert_eq!(v.key_id, "a");
    let v = verify(&ring, &new, PREIMAGE, &at("demo", NOW)).unwrap();
    assert_eq!(v.key_id, "b");

    ring.remove("a").unwrap();
    let err = verify(&ring, &old, PREIMAGE, &at("demo", NOW)).unwrap_err();
    assert_eq!(err, VerifyError::UnknownKey("a".into()));
    assert_reason(&err, Reason::UnknownKey);
    assert!(verify(&ring, &new, PREIMAGE, &at("demo", NOW)).is_ok());
    assert_eq!(ring.ids().collect::<Vec<_>>(), ["b"]);
}

#[test]
fn the_default_key_id_is_the_fingerprint() {
    let key = RootKey::new([5; 32]);
    let fingerprint = key.fingerprint().to_string();
    let ring = KeyRing::single(key);
    let m = mint(&ring, "demo", PREIMAGE);
    assert_eq!(m.location(), Some(fingerprint.as_bytes()));
    assert_eq!(
        verify(&ring, &m, PREIMAGE, &at("demo", NOW))
            .unwrap()
            .key_id,
        fingerprint
    );
}

// ---------------------------------------------------------------------------------------------
// Several macaroons in one credential.

#[test]
fn with_several_macaroons_the_paid_one_is_used_and_the_others_ignored() {
    let ring = ring();
    let ours = mint(&ring, "demo", PREIMAGE);
    // Unpaid by this preimage, each broken in its own way.
    let other_payment = mint(&ring, "demo", [1; 32]);
    let mut foreign = KeyRing::new();
    foreign.add("elsewhere", RootKey::new([2; 32])).unwrap();
    let foreign = mint(&foreign, "data", [3; 32]);
    let (id, key) = ring.current().unwrap();
    let bad_identifier = Macaroon::new(key, Some(id.as_bytes()), b"short");

    let orders = [
        vec![
            ours.clone(),
            other_payment.clone(),
            foreign.clone(),
            bad_identifier.clone(),
        ],
        vec![
            bad_identifier.clone(),
            foreign.clone(),
            other_payment.clone(),
            ours.clone(),
        ],
        vec![other_payment.clone(), ours.clone(), bad_identifier.clone()],
    ];
    let want = Identifier::decode(ours.identifier()).unwrap();
    for macaroons in orders {
        let cred = Credential {
            scheme: Scheme::L402,
            macaroons,
            preimage: Preimage::new(PREIMAGE),
        };
        let v = ring.verify(&cred, &at("demo", NOW)).unwrap();
        assert_eq!(v.payment_hash, want.payment_hash);
        assert_eq!(v.token_id, want.token_id);
        // And through the comma-separated header.
        let v = ring
            .verify_header(&cred.to_header_value(), &at("demo", NOW))
            .unwrap();
        assert_eq!(v.token_id, want.token_id);
    }

    // None paid by the preimage.
    let cred = Credential {
        scheme: Scheme::L402,
        macaroons: vec![
            other_payment.clone(),
            foreign.clone(),
            bad_identifier.clone(),
        ],
        preimage: Preimage::new(PREIMAGE),
    };
    let err = ring.verify(&cred, &at("demo", NOW)).unwrap_err();
    assert_eq!(err, VerifyError::BadPreimage);
    assert_reason(&err, Reason::BadPreimage);

    // Only unreadable identifiers: malformed.
    let cred = Credential {
        scheme: Scheme::L402,
        macaroons: vec![bad_identifier],
        preimage: Preimage::new(PREIMAGE),
    };
    let err = ring.verify(&cred, &at("demo", NOW)).unwrap_err();
    assert_eq!(
        err,
        VerifyError::Identifier(IdentifierError::WrongLength(5))
    );
    assert_reason(&err, Reason::Malformed);
}

#[test]
fn with_several_paid_macaroons_the_first_that_verifies_wins_else_the_first_error() {
    let ring = ring();
    let good = mint(&ring, "demo", PREIMAGE);
    let for_data = mint(&ring, "data", PREIMAGE);
    let mut tampered_sig = *good.signature();
    tampered_sig[0] ^= 1;
    let tampered = tamper(&good, good.signature(), &tampered_sig);

    let cred = Credential {
        scheme: Scheme::L402,
        macaroons: vec![tampered.clone(), for_data.clone(), good.clone()],
        preimage: Preimage::new(PREIMAGE),
    };
    let v = ring.verify(&cred, &at("demo", NOW)).unwrap();
    assert_eq!(
        v.token_id,
        Identifier::decode(good.identifier()).unwrap().token_id
    );

    let cred = Credential {
        scheme: Scheme::L402,
        macaroons: vec![for_data, tampered],
        preimage: Preimage::new(PREIMAGE),
    };
    let err = ring.verify(&cred, &at("demo", NOW)).unwrap_err();
    assert_reason(&err, Reason::WrongRoute);
}

// ---------------------------------------------------------------------------------------------
// Secrets stay out of logs.

#[test]
fn credential_debug_hides_the_preimage() {
    let ring = ring();
    let preimage: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ 0x5c);
    let cred = Credential::new(mint(&ring, "demo", preimage), preimage);
    let hex = hex::encode(preimage);
    for text in [format!("{cred:?}"), format!("{cred:#?}")] {
        assert!(!text.contains(&hex), "{text}");
        assert!(!text.contains(&hex.to_uppercase()), "{text}");
        assert!(!text.contains(&hex[..16]), "{text}");
        assert!(text.contains("Credential"));
    }
    // The header carries it, of course.
    assert!(cred.to_header_value().ends_with(&hex));
}

fn derived(root: &[u8; 32]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(b"macaroons-key-generator").unwrap();
    mac.update(root);
    mac.finalize().into_bytes().into()
}

/// True if any 16-character run of the hex of `secret` (either case) is in `text`.
fn leaks(text: &str, secret: &[u8; 32]) -> bool {
    let lower = hex::encode(secret);
    let upper = lower.to_uppercase();
    (0..=lower.len() - 16)
        .any(|i| text.contains(&lower[i..i + 16]) || text.contains(&upper[i..i + 16]))
}

#[test]
fn root_keys_and_key_rings_never_print_key_bytes() {
    let roots: [[u8; 32]; 3] = [
        std::array::from_fn(|i| (i as u8).wrapping_mul(73).wrapping_add(11)),
        [0x11; 32],
        [0xab; 32],
    ];
    let mut ring = KeyRing::new();
    for (i, root) in roots.iter().enumerate() {
        let key = RootKey::from_hex(&hex::encode(root)).unwrap();
        ring.add(&format!("k{i}"), key.clone()).unwrap();
        let texts = [
            format!("{key:?}"),
            format!("{key:#?}"),
            format!("{key}"),
            format!("{ring:?}"),
            format!("{ring:#?}"),
        ];
        for text in &texts {
            for secret in &roots[..=i] {
                assert!(!leaks(text, secret), "root key in {text}");
                assert!(!leaks(text, &derived(secret)), "derived key in {text}");
            }
            assert!(
                !text.contains(&format!("{:?}", root)),
                "byte list in {text}"
            );
        }
        assert_eq!(format!("{key}"), "<redacted>");
        assert!(format!("{key:?}").contains(key.fingerprint()));
    }
    assert_eq!(ring.ids().collect::<Vec<_>>(), ["k0", "k1", "k2"]);
}

// ---------------------------------------------------------------------------------------------
// The real Aperture token.

const APERTURE_TOKEN: &str = "AgEEbHNhdAJCAAAwpHpumws6ufQoDwiTLNcge0QPUIWA0+tVY+tKPYAJ/zSfmEGlIpNm3VzxuzCqLhEp5KGiyPLUM9L+kcB7uzS+AAIPc2VydmljZXM9bWVtZTowAAISbWVtZV9jYXBhYmlsaXRpZXM9AAAGILA1VCEIExukt4nG+XR9tX8WJ2BVMiHG3UNt1uYJ+NRD";

#[test]
fn the_real_aperture_token_decodes_and_re_encodes_byte_identical() {
    let m = Macaroon::from_base64(APERTURE_TOKEN).unwrap();
    assert_eq!(m.location(), Some(&b"lsat"[..]));

    let raw = m.identifier();
    assert_eq!(raw.len(), 66);
    assert_eq!(u16::from_be_bytes([raw[0], raw[1]]), 0, "version 0");
    let id = Identifier::decode(raw).unwrap();
    assert!(hex::encode(id.payment_hash).starts_with("30a47a6e"));

    let caveats: Vec<Caveat> = m
        .caveats()
        .iter()
        .map(|c| {
            assert!(c.is_first_party());
            Caveat::parse(&c.id).unwrap()
        })
        .collect();
    assert_eq!(
        caveats,
        [
            Caveat::Services(vec![Service {
                name: "meme".into(),
                tier: 0
            }]),
            Caveat::Capabilities {
                service: "meme".into(),
                capabilities: vec![]
            },
        ]
    );
    assert_eq!(caveats[0].to_string(), "services=meme:0");
    assert_eq!(caveats[1].to_string(), "meme_capabilities=");

    assert_eq!(m.to_base64(), APERTURE_TOKEN);
    assert_eq!(
        m.to_binary(),
        plannt_l402::base64_decode(APERTURE_TOKEN).unwrap()
    );
    // Every flavour a client might send reads to the same token.
    let url = APERTURE_TOKEN.replace('+', "-").replace('/', "_");
    for text in [
        url.as_str(),
        url.trim_end_matches('='),
        APERTURE_TOKEN.trim_end_matches('='),
    ] {
        assert_eq!(Macaroon::from_base64(text).unwrap(), m);
    }

    // Our ring does not hold Aperture's key: with the right preimage it would be unknown_key,
    // without it the payment hash does not match first.
    let err = verify(&ring(), &m, PREIMAGE, &at("meme", NOW)).unwrap_err();
    assert_reason(&err, Reason::BadPreimage);
}

#[test]
fn from_headers_counts_the_same_credential_once() {
    let value = Credential::new(mint(&ring(), "demo", PREIMAGE), PREIMAGE).to_header_value();
    let lsat = value.replacen("L402", "LSAT", 1);
    assert!(matches!(
        Credential::from_headers([value.as_bytes(), value.as_bytes()]),
        Ok(Some(_))
    ));
    assert!(matches!(
        Credential::from_headers([lsat.as_bytes(), value.as_bytes()]),
        Ok(Some(_))
    ));
}

#[test]
fn condition_names_ending_in_a_reserved_name_are_refused() {
    for name in [
        "x_valid_until",
        "x_capabilities",
        "valid_until",
        "capabilities",
    ] {
        assert!(!plannt_l402::is_condition_name(name), "{name}");
    }
    assert!(plannt_l402::is_condition_name("max_tokens"));
}
