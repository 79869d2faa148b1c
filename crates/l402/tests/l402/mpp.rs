//! MPP through the public API of `plannt-l402`: Aperture's conformance vectors byte for byte
//! (`tests/data/aperture-mpp-vectors.json`: JCS, base64url, challenge headers and lists,
//! challenge ids, credentials, receipts), round trips of every header (proptest), one test per
//! reason a charge credential is refused, and hostile input to every parser.

use plannt_l402::jcs::{self, JcsError};
use plannt_l402::mpp::{
    self, ChallengeKey, ChallengeKeys, ChargeExpect, ChargeOffer, ChargeRequest, CredentialError,
    MethodDetails, MintError, NeedTopUp, PaymentChallenge, PaymentCredential, Problem, Receipt,
    RefundStatus, SessionAction, SessionPayload, SessionReceipt, SessionRequest, VerifyError,
    problem_type,
};
use plannt_l402::{
    KeyRing, MAX_HEADER_LEN, Network, PaymentHash, Preimage, Reason, RootKey, base64url_decode,
    base64url_encode,
};
use proptest::prelude::*;
use serde_json::Value;

/// Whether an error is the one expected.
type Check<E> = fn(&E) -> bool;

// ---------------------------------------------------------------------------------------------
// Aperture's vectors.

fn vectors() -> Value {
    let text = include_str!("../data/aperture-mpp-vectors.json");
    serde_json::from_str(text).expect("the vector file is JSON")
}

fn group(name: &str) -> Vec<Value> {
    vectors()[name].as_array().expect("a group").clone()
}

fn s(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or("").to_string()
}

fn is_error(v: &Value) -> bool {
    v["error"].as_bool() == Some(true)
}

fn params(v: &Value) -> PaymentChallenge {
    serde_json::from_value(v.clone()).expect("challenge params")
}

#[test]
fn aperture_jcs_vectors_pass_byte_for_byte() {
    let cases = group("canonicalization");
    assert_eq!(cases.len(), 22);
    for case in cases {
        let got = jcs::canonicalize(&s(&case, "input"));
        if is_error(&case) {
            assert!(got.is_err(), "{}: {got:?}", s(&case, "name"));
        } else {
            assert_eq!(
                got.as_deref(),
                Ok(&*s(&case, "canonical")),
                "{}",
                s(&case, "name")
            );
        }
    }
}

#[test]
fn aperture_base64url_vectors_pass() {
    let cases = group("base64url");
    assert_eq!(cases.len(), 17);
    for case in cases {
        let name = s(&case, "name");
        let decoded = base64url_decode(&s(&case, "encoded"));
        if is_error(&case) {
            assert_eq!(decoded, None, "{name}");
            continue;
        }
        let bytes = hex::decode(s(&case, "decodedHex")).unwrap();
        assert_eq!(decoded.as_deref(), Some(&bytes[..]), "{name}");
        if case["canonical"].as_bool() == Some(true) {
            assert_eq!(base64url_encode(&bytes), s(&case, "encoded"), "{name}");
        }
    }
}

#[test]
fn aperture_challenge_headers_are_written_and_read_byte_for_byte() {
    let cases = group("challengeHeaders");
    assert_eq!(cases.len(), 6);
    for case in cases {
        let name = s(&case, "name");
        let challenge = params(&case["params"]);
        assert_eq!(challenge.to_header_value(), s(&case, "header"), "{name}");
        let parsed = PaymentChallenge::parse_list(&s(&case, "header")).unwrap();
        assert_eq!(parsed, vec![params(&case["parsed"])], "{name}");
    }
}

#[test]
fn the_charge_request_of_the_vectors_is_our_encoding() {
    let header = &group("challengeHeaders")[0];
    let request = ChargeRequest {
        amount: "100".into(),
        currency: "sat".into(),
        description: Some("Weather report".into()),
        recipient: None,
        external_id: None,
        method_details: MethodDetails {
            invoice: "lnbc1u1pexample".into(),
            payment_hash: Some("bc230847".into()),
            network: Some("mainnet".into()),
        },
    };
    assert_eq!(request.encode(), s(&header["params"], "request"));
    assert_eq!(ChargeRequest::decode(&request.encode()), Ok(request));
}

#[test]
fn aperture_challenge_lists_split_as_aperture_splits_them() {
    let cases = group("challengeLists");
    assert_eq!(cases.len(), 11);
    for case in cases {
        let name = s(&case, "name");
        let got = PaymentChallenge::parse_list(&s(&case, "header"));
        if is_error(&case) {
            assert!(got.is_err(), "{name}: {got:?}");
            continue;
        }
        let want: Vec<PaymentChallenge> = case["challenges"]
            .as_array()
            .unwrap()
            .iter()
            .map(params)
            .collect();
        assert_eq!(got.unwrap(), want, "{name}");
    }
}

#[test]
fn aperture_challenge_ids_pass_byte_for_byte() {
    let secret = hex::decode(s(&vectors(), "hmacSecretHex")).unwrap();
    let key = ChallengeKey::from_secret(&secret);
    let cases = group("challengeIds");
    assert_eq!(cases.len(), 4);
    for case in cases {
        let name = s(&case, "name");
        let challenge = params(&case["params"]);
        assert_eq!(challenge.hmac_input(), s(&case, "hmacInput"), "{name}");
        assert_eq!(key.challenge_id(&challenge), challenge.id, "{name}");
        assert!(key.verifies(&challenge), "{name}");
        // The description is the one parameter the id does not cover.
        let mut other = challenge.clone();
        other.description = Some("changed".into());
        assert!(key.verifies(&other), "{name}");
        other.request.push('A');
        assert!(!key.verifies(&other), "{name}");
    }
    assert!(
        !ChallengeKey::from_secret(b"another")
            .verifies(&params(&group("challengeIds")[0]["params"]))
    );
}

#[test]
fn aperture_credentials_parse_and_ours_match_byte_for_byte() {
    let cases = group("credentials");
    assert_eq!(cases.len(), 11);
    for case in cases {
        let name = s(&case, "name");
        let got = PaymentCredential::parse(&s(&case, "header"));
        if is_error(&case) {
            assert!(got.is_err(), "{name}: {got:?}");
            continue;
        }
        let credential = got.unwrap();
        let json: Value = serde_json::from_str(&s(&case, "credentialJson")).unwrap();
        assert_eq!(credential.challenge, params(&json["challenge"]), "{name}");
        assert_eq!(
            credential.source.as_deref(),
            json["source"].as_str(),
            "{name}"
        );
        assert_eq!(
            Value::Object(credential.payload.clone()),
            json["payload"],
            "{name}"
        );
        assert_eq!(serde_json::to_value(&credential).unwrap(), json, "{name}");
    }
    // Our encoder writes the charge credential exactly as Aperture does.
    let charge = &group("credentials")[0];
    let credential = PaymentCredential::parse(&s(charge, "header")).unwrap();
    assert_eq!(credential.to_header_value(), s(charge, "header"));
}

#[test]
fn aperture_receipts_decode_and_ours_match_byte_for_byte() {
    let cases = group("receipts");
    assert_eq!(cases.len(), 8);
    for case in &cases {
        let bytes = base64url_decode(&s(case, "header")).unwrap();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            s(case, "receiptJson"),
            "{}",
            s(case, "name")
        );
    }
    for case in &cases[..2] {
        let receipt = Receipt::parse(&s(case, "header")).unwrap();
        assert_eq!(receipt.to_header_value(), s(case, "header"));
    }
    let receipt = Receipt::parse(&s(&cases[0], "header")).unwrap();
    assert_eq!(
        receipt.challenge_id.as_deref(),
        Some("kM9xPqWvT2nJrHsY4aDfEb")
    );
    assert_eq!(receipt.payment_hash(), None, "not 32 bytes of hex");
}

#[test]
fn aperture_session_vectors_read_as_our_session_types() {
    // The session request of the JCS vectors: ours writes its canonical form.
    let jcs_case = group("canonicalization")
        .into_iter()
        .find(|c| s(c, "name") == "session request")
        .expect("a session request vector");
    let request: SessionRequest = serde_json::from_str(&s(&jcs_case, "input")).unwrap();
    assert_eq!(request.canonical_json(), s(&jcs_case, "canonical"));
    assert_eq!(request.amount_sats(), Some(3));
    assert_eq!(request.deposit_sats(), Some(5000));
    assert_eq!(request.idle_secs(), Some(900));
    assert_eq!(request.unit_type.as_deref(), Some("token"));

    // The session challenge header: its request decodes, and re-encodes to the same bytes.
    let header = group("challengeHeaders")
        .into_iter()
        .find(|c| s(c, "name") == "session challenge with every parameter")
        .expect("a session challenge vector");
    let challenge = PaymentChallenge::parse_list(&s(&header, "header")).unwrap()[0].clone();
    assert!(challenge.is_lightning_session());
    let request = challenge.session_request().unwrap();
    assert_eq!(
        request.deposit_invoice.as_deref(),
        Some("lnbc500n1pexample")
    );
    assert_eq!(request.encode(), challenge.request);

    // The open and bearer credentials: their payloads read as session payloads, and written
    // back they are the same JSON.
    let credentials = group("credentials");
    for (name, action) in [
        ("session open credential with a source", SessionAction::Open),
        ("session bearer credential", SessionAction::Bearer),
    ] {
        let case = credentials
            .iter()
            .find(|c| s(c, "name") == name)
            .expect("a session credential vector");
        let credential = PaymentCredential::parse(&s(case, "header")).unwrap();
        let payload = SessionPayload::from_credential(&credential).unwrap();
        assert_eq!(payload.action, action, "{name}");
        let rebuilt = PaymentCredential {
            source: credential.source.clone(),
            ..PaymentCredential::session(&credential.challenge, &payload)
        };
        assert_eq!(rebuilt, credential, "{name}");
        // The same JSON (Go writes the payload in its struct's order, ours sorts its members).
        let ours: Value = serde_json::to_value(&rebuilt).unwrap();
        let theirs: Value = serde_json::from_str(&s(case, "credentialJson")).unwrap();
        assert_eq!(ours, theirs, "{name}");
    }

    // The session receipts: ours writes the same bytes, up to the largest u64 an i64 holds.
    let receipts: Vec<Value> = group("receipts")
        .into_iter()
        .filter(|c| s(c, "name").contains("refund") || s(c, "name").starts_with("session"))
        .collect();
    assert_eq!(receipts.len(), 4);
    for case in &receipts {
        let receipt = SessionReceipt::parse(&s(case, "header")).unwrap();
        assert_eq!(
            receipt.to_header_value(),
            s(case, "header"),
            "{}",
            s(case, "name")
        );
        assert!(receipt.refund_status.is_some());
    }
    let close = SessionReceipt::parse(&s(&receipts[0], "header")).unwrap();
    assert_eq!(
        (close.refund_sats, close.refund_status),
        (140, Some(RefundStatus::Succeeded))
    );
    let skipped = SessionReceipt::parse(&s(&receipts[1], "header")).unwrap();
    assert_eq!(
        (skipped.refund_sats, skipped.refund_status),
        (0, Some(RefundStatus::Skipped))
    );

    // The need-top-up events (in the receipts group): ours writes the same JSON.
    let events: Vec<Value> = group("receipts")
        .into_iter()
        .filter(|c| s(c, "name").starts_with("need top-up"))
        .collect();
    assert_eq!(events.len(), 2);
    for case in &events {
        let event = NeedTopUp::parse_data(&s(case, "receiptJson")).unwrap();
        assert_eq!(
            base64url_encode(serde_json::to_string(&event).unwrap().as_bytes()),
            s(case, "header"),
            "{}",
            s(case, "name")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// A gateway's side: mint, the client's credential, verify.

const NOW: u64 = 1_800_000_000;

fn keys() -> ChallengeKeys {
    ChallengeKeys::from_ring(&KeyRing::single(RootKey::new([7; 32])))
}

fn offer<'a>(invoice: &'a str, hash: PaymentHash) -> ChargeOffer<'a> {
    ChargeOffer {
        realm: "api.example.com",
        route: "demo",
        amount_sats: 21,
        invoice,
        payment_hash: hash,
        network: Network::Regtest,
        expires_at: NOW + 600,
        description: Some("Q&A <b> endpoint"),
    }
}

fn expect(now: u64) -> ChargeExpect<'static> {
    ChargeExpect {
        route: "demo",
        price_sats: 21,
        now,
    }
}

/// A challenge minted for `preimage`'s hash and the header a client sends after paying it.
fn paid(preimage: &Preimage) -> (PaymentChallenge, String) {
    let challenge = keys()
        .mint_charge(&offer("lnbcrt210n1pexample", preimage.hash()))
        .unwrap();
    let header = PaymentCredential::charge(&challenge, preimage).to_header_value();
    (challenge, header)
}

#[test]
fn a_minted_challenge_carries_route_price_invoice_and_expiry() {
    let preimage = Preimage::new([42; 32]);
    let (challenge, _) = paid(&preimage);
    assert!(challenge.is_lightning_charge());
    assert_eq!(challenge.expires.as_deref(), Some("2027-01-15T08:10:00Z"));
    assert_eq!(challenge.expires_at(), Some(NOW + 600));
    assert_eq!(challenge.opaque, None, "clients need not echo opaque");
    let request = challenge.charge_request().unwrap();
    assert_eq!(request.amount_sats(), Some(21));
    assert_eq!(request.currency, mpp::CURRENCY_SAT);
    assert_eq!(request.external_id.as_deref(), Some("demo"));
    assert_eq!(request.payment_hash(), Some(preimage.hash()));
    assert_eq!(request.network(), Some(Network::Regtest));
    assert_eq!(request.description.as_deref(), Some("Q&A <b> endpoint"));
    // The request is canonical JSON: re-canonicalizing changes nothing.
    let json = String::from_utf8(base64url_decode(&challenge.request).unwrap()).unwrap();
    assert_eq!(jcs::canonicalize(&json).unwrap(), json);
    assert!(json.contains("Q&A <b>"), "no HTML escapes: {json}");
    // The header reads back to the same challenge, and the id verifies.
    let header = challenge.to_header_value();
    assert!(header.starts_with("Payment id=\""), "{header}");
    assert_eq!(
        PaymentChallenge::parse_list(&header).unwrap(),
        vec![challenge]
    );
}

#[test]
fn a_paid_charge_verifies_and_its_receipt_names_the_payment_hash() {
    let preimage = Preimage::new([42; 32]);
    let (challenge, header) = paid(&preimage);
    let verified = keys().verify_header(&header, &expect(NOW)).unwrap();
    assert_eq!(verified.payment_hash, preimage.hash());
    assert_eq!(verified.challenge_id, challenge.id);
    assert_eq!(verified.valid_until, NOW + 600);
    assert_eq!(verified.amount_sats, 21);
    // A price lowered since the challenge still takes it.
    let cheaper = ChargeExpect {
        price_sats: 5,
        ..expect(NOW)
    };
    assert!(keys().verify_header(&header, &cheaper).is_ok());

    let receipt = Receipt::charge(&verified.payment_hash, &verified.challenge_id, NOW);
    let read = Receipt::parse(&receipt.to_header_value()).unwrap();
    assert_eq!(read, receipt);
    assert_eq!(read.status, "success");
    assert_eq!(read.method, mpp::METHOD_LIGHTNING);
    assert_eq!(read.timestamp, "2027-01-15T08:00:00Z");
    assert_eq!(read.payment_hash(), Some(preimage.hash()));
    assert!(!receipt.to_header_value().contains(&preimage.to_hex()));
}

#[test]
fn a_key_ring_mints_with_its_newest_key_and_verifies_with_every_key() {
    let preimage = Preimage::new([1; 32]);
    let mut ring = KeyRing::single(RootKey::new([7; 32]));
    let (_, old) = paid(&preimage);
    ring.add("next", RootKey::new([8; 32])).unwrap();
    let both = ChallengeKeys::from_ring(&ring);
    let new = both
        .mint_charge(&offer("lnbcrt1", preimage.hash()))
        .unwrap();
    let new = PaymentCredential::charge(&new, &preimage).to_header_value();
    assert!(both.verify_header(&old, &expect(NOW)).is_ok());
    assert!(both.verify_header(&new, &expect(NOW)).is_ok());
    assert_eq!(
        keys().verify_header(&new, &expect(NOW)),
        Err(VerifyError::UnknownChallenge)
    );
    let first = ring.ids().next().unwrap().to_string();
    ring.remove(&first);
    let only_new = ChallengeKeys::from_ring(&ring);
    assert_eq!(
        only_new.verify_header(&old, &expect(NOW)),
        Err(VerifyError::UnknownChallenge)
    );
}

// ---------------------------------------------------------------------------------------------
// Every reason a credential is refused, with its code, status and problem type.

/// The credential of `paid`, altered by `change` (its id is not recomputed).
fn altered(change: impl FnOnce(&mut PaymentCredential)) -> PaymentCredential {
    let (_, header) = paid(&Preimage::new([42; 32]));
    let mut credential = PaymentCredential::parse(&header).unwrap();
    change(&mut credential);
    credential
}

/// A credential for a challenge minted by our key over a request of our choosing.
fn resigned(change: impl FnOnce(&mut PaymentChallenge)) -> PaymentCredential {
    let preimage = Preimage::new([42; 32]);
    let (mut challenge, _) = paid(&preimage);
    change(&mut challenge);
    let key = ChallengeKey::derive(&RootKey::new([7; 32]));
    challenge.id = key.challenge_id(&challenge);
    PaymentCredential::charge(&challenge, &preimage)
}

fn refused(credential: &PaymentCredential, expect: &ChargeExpect<'_>) -> VerifyError {
    keys().verify_charge(credential, expect).unwrap_err()
}

fn assert_refusal(error: &VerifyError, reason: Reason, kind: &str) {
    assert_eq!(error.reason(), reason, "{error}");
    let problem = error.problem();
    assert_eq!(problem.kind, kind, "{error}");
    assert_eq!(problem.status, reason.status(), "{error}");
    let json: Value = serde_json::from_str(&problem.to_json()).unwrap();
    assert_eq!(json["type"], kind);
    assert_eq!(json["status"], reason.status());
    assert!(!problem.to_json().contains(&"2a".repeat(32)), "no preimage");
}

#[test]
fn malformed_when_the_header_does_not_parse() {
    let error = keys()
        .verify_header("Payment !!!", &expect(NOW))
        .unwrap_err();
    assert_eq!(error, VerifyError::Malformed(CredentialError::NotBase64url));
    assert_refusal(
        &error,
        Reason::Malformed,
        problem_type::LIGHTNING_MALFORMED_CREDENTIAL,
    );
}

#[test]
fn malformed_for_another_method_or_intent() {
    for (method, intent) in [
        ("tempo", "charge"),
        ("lightning", "session"),
        ("Lightning", "charge"),
    ] {
        let credential = altered(|c| {
            c.challenge.method = method.into();
            c.challenge.intent = intent.into();
        });
        let error = refused(&credential, &expect(NOW));
        assert!(matches!(error, VerifyError::Unsupported { .. }), "{error}");
        assert_refusal(&error, Reason::Malformed, problem_type::METHOD_UNSUPPORTED);
    }
}

#[test]
fn malformed_without_a_preimage_of_64_hex_characters() {
    for payload in [
        serde_json::json!({}),
        serde_json::json!({"preimage": "ab"}),
        serde_json::json!({"preimage": 7}),
        serde_json::json!({"preimage": "zz".repeat(32)}),
    ] {
        let credential = altered(|c| c.payload = payload.as_object().unwrap().clone());
        let error = refused(&credential, &expect(NOW));
        assert_eq!(error, VerifyError::NoPreimage);
        assert_refusal(
            &error,
            Reason::Malformed,
            problem_type::LIGHTNING_MALFORMED_CREDENTIAL,
        );
    }
}

#[test]
fn bad_signature_when_any_covered_parameter_changes() {
    let changes: [fn(&mut PaymentChallenge); 7] = [
        |c| c.id = "x".repeat(43),
        |c| c.realm.push('x'),
        |c| c.request.push('A'),
        |c| c.expires = Some("2099-01-01T00:00:00Z".into()),
        |c| c.expires = None,
        |c| c.digest = Some("sha-256=:AAAA:".into()),
        |c| c.opaque = Some("e30".into()),
    ];
    for change in changes {
        let credential = altered(|c| change(&mut c.challenge));
        let error = refused(&credential, &expect(NOW));
        assert_eq!(error, VerifyError::UnknownChallenge);
        assert_refusal(
            &error,
            Reason::BadSignature,
            problem_type::LIGHTNING_UNKNOWN_CHALLENGE,
        );
    }
    // A padded spelling of the right id is another string: refused too.
    let credential = altered(|c| c.challenge.id.push('='));
    assert_eq!(
        refused(&credential, &expect(NOW)),
        VerifyError::UnknownChallenge
    );
    // The description is not covered: changing it changes nothing.
    let credential = altered(|c| c.challenge.description = Some("hello".into()));
    assert!(keys().verify_charge(&credential, &expect(NOW)).is_ok());
}

#[test]
fn bad_preimage_when_it_does_not_pay_the_payment_hash() {
    let credential = altered(|c| {
        c.payload
            .insert("preimage".into(), Preimage::new([43; 32]).to_hex().into());
    });
    let error = refused(&credential, &expect(NOW));
    assert_eq!(error, VerifyError::BadPreimage);
    assert_refusal(
        &error,
        Reason::BadPreimage,
        problem_type::LIGHTNING_INVALID_PREIMAGE,
    );
    // Upper case hex of the right preimage is the same preimage.
    let credential = altered(|c| {
        c.payload.insert("preimage".into(), "2A".repeat(32).into());
    });
    assert!(keys().verify_charge(&credential, &expect(NOW)).is_ok());
}

#[test]
fn expired_at_exactly_expires_and_after() {
    assert!(
        keys()
            .verify_charge(&altered(|_| {}), &expect(NOW + 599))
            .is_ok()
    );
    for now in [NOW + 600, NOW + 601, u64::MAX] {
        let error = refused(&altered(|_| {}), &expect(now));
        assert_eq!(
            error,
            VerifyError::Expired {
                expired_at: NOW + 600
            }
        );
        assert_refusal(
            &error,
            Reason::Expired,
            problem_type::LIGHTNING_EXPIRED_INVOICE,
        );
    }
}

#[test]
fn caveat_failed_for_a_genuine_challenge_without_an_expiry() {
    for expires in [None, Some("tomorrow".to_string())] {
        let credential = resigned(|c| c.expires = expires);
        let error = refused(&credential, &expect(NOW));
        assert_eq!(error, VerifyError::NoExpiry);
        assert_refusal(
            &error,
            Reason::CaveatFailed,
            problem_type::INVALID_CHALLENGE,
        );
    }
}

#[test]
fn wrong_route_for_a_challenge_issued_for_another() {
    let credential = altered(|_| {});
    let other = ChargeExpect {
        route: "other",
        ..expect(NOW)
    };
    let error = refused(&credential, &other);
    assert_eq!(
        error,
        VerifyError::WrongRoute {
            issued_for: "demo".into()
        }
    );
    assert_refusal(&error, Reason::WrongRoute, problem_type::INVALID_CHALLENGE);
}

#[test]
fn caveat_failed_when_the_price_rose_above_what_was_paid() {
    let dearer = ChargeExpect {
        price_sats: 22,
        ..expect(NOW)
    };
    let error = refused(&altered(|_| {}), &dearer);
    assert_eq!(
        error,
        VerifyError::Underpaid {
            paid: 21,
            price: 22
        }
    );
    assert_refusal(
        &error,
        Reason::CaveatFailed,
        problem_type::PAYMENT_INSUFFICIENT,
    );
}

#[test]
fn a_genuine_id_over_a_request_we_never_mint_is_malformed() {
    let preimage = Preimage::new([42; 32]);
    for request in [
        "!!".to_string(),
        base64url_encode(b"{}"),
        base64url_encode(br#"{"amount":"21","currency":"sat","methodDetails":{"invoice":"x"}}"#),
        base64url_encode(
            format!(
                r#"{{"amount":"0","currency":"sat","methodDetails":{{"invoice":"x","paymentHash":"{}"}}}}"#,
                preimage.hash()
            )
            .as_bytes(),
        ),
        base64url_encode(
            format!(
                r#"{{"amount":"21","currency":"usd","methodDetails":{{"invoice":"x","paymentHash":"{}"}}}}"#,
                preimage.hash()
            )
            .as_bytes(),
        ),
    ] {
        let credential = resigned(|c| c.request = request.clone());
        let error = refused(&credential, &expect(NOW));
        assert!(matches!(error, VerifyError::BadRequest(_)), "{request}: {error}");
        assert_eq!(error.reason(), Reason::Malformed);
    }
}

#[test]
fn every_reason_has_a_problem_type_and_a_status() {
    for reason in Reason::ALL {
        let problem = Problem::for_reason(reason, "detail").with_challenge_id("cid");
        assert!(
            problem
                .kind
                .starts_with("https://paymentauth.org/problems/")
        );
        assert_eq!(problem.status, reason.status());
        let json: Value = serde_json::from_str(&problem.to_json()).unwrap();
        assert_eq!(json["challengeId"], "cid");
        assert_eq!(json["detail"], "detail");
    }
    let required = Problem::payment_required();
    assert_eq!(
        required.to_json(),
        r#"{"type":"https://paymentauth.org/problems/payment-required","title":"Payment Required","status":402,"detail":"Payment required for access."}"#
    );
}

#[test]
fn mint_refuses_what_it_cannot_bind() {
    let hash = Preimage::new([1; 32]).hash();
    let base = offer("lnbcrt1", hash);
    let cases: Vec<(ChargeOffer<'_>, Check<MintError>)> = vec![
        (
            ChargeOffer {
                route: "a_b",
                ..base
            },
            |e| matches!(e, MintError::BadRoute(_)),
        ),
        (ChargeOffer { route: "", ..base }, |e| {
            matches!(e, MintError::BadRoute(_))
        }),
        (ChargeOffer { realm: "", ..base }, |e| {
            matches!(e, MintError::BadRealm(_))
        }),
        (
            ChargeOffer {
                realm: "a|b",
                ..base
            },
            |e| matches!(e, MintError::BadRealm(_)),
        ),
        (
            ChargeOffer {
                realm: "a\r\nX: y",
                ..base
            },
            |e| matches!(e, MintError::BadRealm(_)),
        ),
        (
            ChargeOffer {
                description: Some("a\nb"),
                ..base
            },
            |e| matches!(e, MintError::BadDescription),
        ),
        (
            ChargeOffer {
                invoice: "lnbc\"1",
                ..base
            },
            |e| matches!(e, MintError::BadInvoice),
        ),
        (
            ChargeOffer {
                invoice: "",
                ..base
            },
            |e| matches!(e, MintError::BadInvoice),
        ),
        (
            ChargeOffer {
                amount_sats: 0,
                ..base
            },
            |e| matches!(e, MintError::ZeroAmount),
        ),
        (
            ChargeOffer {
                expires_at: u64::MAX,
                ..base
            },
            |e| matches!(e, MintError::BadExpiry(_)),
        ),
    ];
    for (offer, check) in cases {
        let error = keys().mint_charge(&offer).unwrap_err();
        assert!(check(&error), "{error}");
    }
    assert_eq!(
        ChallengeKeys::default().mint_charge(&base).unwrap_err(),
        MintError::NoKey
    );
}

// ---------------------------------------------------------------------------------------------
// The client's checks before paying.

fn facts(hash: PaymentHash) -> plannt_l402::InvoiceFacts {
    plannt_l402::InvoiceFacts {
        payment_hash: hash,
        amount_msat: Some(21_000),
        network: Network::Regtest,
        expires_at: NOW + 600,
        payee: "02".to_string() + &"ab".repeat(32),
    }
}

#[test]
fn the_client_checks_amount_hash_network_and_both_expiries() {
    use plannt_l402::PayCheckError as E;
    let preimage = Preimage::new([42; 32]);
    let (challenge, _) = paid(&preimage);
    let request = challenge.charge_request().unwrap();
    let until = challenge.expires_at();
    let good = facts(preimage.hash());
    assert_eq!(
        request.check_before_paying(&good, Network::Regtest, until, NOW),
        Ok(())
    );
    let check = |f: plannt_l402::InvoiceFacts, wallet, now| {
        request
            .check_before_paying(&f, wallet, until, now)
            .unwrap_err()
    };
    let more = plannt_l402::InvoiceFacts {
        amount_msat: Some(21_001),
        ..good.clone()
    };
    assert!(matches!(
        check(more, Network::Regtest, NOW),
        E::AmountMismatch { .. }
    ));
    let none = plannt_l402::InvoiceFacts {
        amount_msat: None,
        ..good.clone()
    };
    assert_eq!(check(none, Network::Regtest, NOW), E::NoAmount);
    let other = plannt_l402::InvoiceFacts {
        payment_hash: PaymentHash([0; 32]),
        ..good.clone()
    };
    assert_eq!(check(other, Network::Regtest, NOW), E::HashMismatch);
    let mainnet = plannt_l402::InvoiceFacts {
        network: Network::Mainnet,
        ..good.clone()
    };
    assert!(matches!(
        check(mainnet, Network::Mainnet, NOW),
        E::WrongNetwork { .. }
    ));
    assert!(matches!(
        check(good.clone(), Network::Mainnet, NOW),
        E::WrongNetwork { .. }
    ));
    let soon = plannt_l402::InvoiceFacts {
        expires_at: NOW + 10,
        ..good.clone()
    };
    assert!(matches!(
        check(soon, Network::Regtest, NOW + 10),
        E::Expired { .. }
    ));
    // The challenge's expiry counts too, even if the invoice lives longer.
    let long = plannt_l402::InvoiceFacts {
        expires_at: NOW + 9999,
        ..good.clone()
    };
    assert_eq!(
        check(long, Network::Regtest, NOW + 600),
        E::Expired {
            expired_at: NOW + 600
        }
    );
    // Another currency, and an amount that is no whole number, are refused before anything else.
    let mut usd = request.clone();
    usd.currency = "usd".into();
    assert!(matches!(
        usd.check_before_paying(&good, Network::Regtest, until, NOW),
        Err(E::Unsupported(_))
    ));
    for amount in ["", "0", "021", "-1", "1.5", "1e3", "99999999999999999999"] {
        let mut odd = request.clone();
        odd.amount = amount.into();
        assert!(
            matches!(
                odd.check_before_paying(&good, Network::Regtest, until, NOW),
                Err(E::BadAmount(_))
            ),
            "{amount:?}"
        );
    }
    // No network named: mainnet.
    let mut unnamed = request.clone();
    unnamed.method_details.network = None;
    assert_eq!(unnamed.network(), Some(Network::Mainnet));
    let main = plannt_l402::InvoiceFacts {
        network: Network::Mainnet,
        ..good
    };
    assert_eq!(
        unnamed.check_before_paying(&main, Network::Mainnet, until, NOW),
        Ok(())
    );
}

// ---------------------------------------------------------------------------------------------
// Round trips.

fn param_text() -> impl Strategy<Value = String> {
    // Anything a quoted-string carries: printable ASCII (quotes and backslashes included), tab,
    // and non-ASCII.
    "[ -~\t\u{e9}\u{3042}\u{1f600}]{0,24}"
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| serde_json::Number::from_f64(f).unwrap().into()),
        "[\u{0}-\u{7f}\u{e000}\u{ffff}\u{10000}\u{2028}]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map("[a-zA-Z0-9\u{e000}\u{10000}]{0,4}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn challenge_headers_round_trip(
        id in "[A-Za-z0-9_-]{1,43}",
        realm in param_text(),
        request in "[A-Za-z0-9_-]{1,64}",
        expires in proptest::option::of(param_text()),
        digest in proptest::option::of(param_text()),
        description in proptest::option::of(param_text()),
        opaque in proptest::option::of(param_text()),
    ) {
        let blank = |v: Option<String>| v.filter(|v| !v.is_empty());
        let challenge = PaymentChallenge {
            id, realm, method: "lightning".into(), intent: "charge".into(), request,
            expires: blank(expires), digest: blank(digest),
            description: blank(description), opaque: blank(opaque),
        };
        let header = challenge.to_header_value();
        prop_assert_eq!(PaymentChallenge::parse_list(&header).unwrap(), vec![challenge.clone()]);
        // Joined with another challenge, as fetch joins header lines, it still reads alone.
        let joined = format!("{header}, Basic realm=\"x\", {header}");
        prop_assert_eq!(
            PaymentChallenge::parse_list(&joined).unwrap(),
            vec![challenge.clone(), challenge]
        );
    }

    #[test]
    fn jcs_is_a_fixed_point_and_keeps_the_value(value in json_value()) {
        let canonical = jcs::to_canonical_string(&value);
        prop_assert_eq!(jcs::canonicalize(&canonical).unwrap(), canonical.clone());
        prop_assert_eq!(jcs::parse(&canonical).unwrap(), value.clone());
        // Pretty-printed, the same value has the same canonical form.
        let pretty = serde_json::to_string_pretty(&value).unwrap();
        prop_assert_eq!(jcs::canonicalize(&pretty).unwrap(), canonical);
    }

    #[test]
    fn base64url_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        let text = base64url_encode(&bytes);
        prop_assert_eq!(base64url_decode(&text), Some(bytes.clone()));
        let padded = format!("{text}{}", "=".repeat((4 - text.len() % 4) % 4));
        prop_assert_eq!(base64url_decode(&padded), Some(bytes));
    }

    #[test]
    fn minted_charges_verify_for_their_route_price_and_time_only(
        secret in any::<[u8; 32]>(),
        amount in 1u64..2_100_000_000_000_000,
        route in "[a-z0-9.-]{1,16}",
        realm in "[ -{}~]{1,32}",
        expires_in in 1u64..100_000,
    ) {
        let keys = ChallengeKeys::from_ring(&KeyRing::single(RootKey::new(secret)));
        let preimage = Preimage::new(secret);
        let challenge = keys.mint_charge(&ChargeOffer {
            realm: &realm, route: &route, amount_sats: amount, invoice: "lnbc1x",
            payment_hash: preimage.hash(), network: Network::Mainnet,
            expires_at: NOW + expires_in, description: None,
        }).unwrap();
        // Through the client: the header parsed, the credential built and sent.
        let seen = PaymentChallenge::parse_list(&challenge.to_header_value()).unwrap().remove(0);
        let header = PaymentCredential::charge(&seen, &preimage).to_header_value();
        let other_route = format!("{route}x");
        let at = |now, route: &str, price| {
            keys.verify_header(&header, &ChargeExpect { route, price_sats: price, now })
        };
        let ok = at(NOW, &route, amount).unwrap();
        prop_assert_eq!(ok.payment_hash, preimage.hash());
        prop_assert_eq!(ok.valid_until, NOW + expires_in);
        let expired = at(NOW + expires_in, &route, amount);
        prop_assert!(matches!(expired, Err(VerifyError::Expired { .. })), "expired");
        let other = at(NOW, &other_route, amount);
        prop_assert!(matches!(other, Err(VerifyError::WrongRoute { .. })), "wrong route");
        let dearer = at(NOW, &route, amount + 1);
        prop_assert!(matches!(dearer, Err(VerifyError::Underpaid { .. })), "underpaid");
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile input.

#[test]
fn hostile_credentials_are_refused_with_their_reason() {
    let big = "A".repeat(MAX_HEADER_LEN);
    let json = |text: &str| format!("Payment {}", base64url_encode(text.as_bytes()));
    let cases: Vec<(String, Check<CredentialError>)> = vec![
        ("".into(), |e| matches!(e, CredentialError::NotPayment)),
        ("Bearer abc".into(), |e| {
            matches!(e, CredentialError::NotPayment)
        }),
        ("Payments abc".into(), |e| {
            matches!(e, CredentialError::NotPayment)
        }),
        ("L402 abc:def".into(), |e| {
            matches!(e, CredentialError::NotPayment)
        }),
        ("Payment".into(), |e| matches!(e, CredentialError::Empty)),
        ("Payment \t ".into(), |e| {
            matches!(e, CredentialError::Empty)
        }),
        (format!("Payment {big}"), |e| {
            matches!(e, CredentialError::TooLong(_))
        }),
        ("Payment a b".into(), |e| {
            matches!(e, CredentialError::NotBase64url)
        }),
        ("Payment eyJ+".into(), |e| {
            matches!(e, CredentialError::NotBase64url)
        }),
        ("Payment e30===".into(), |e| {
            matches!(e, CredentialError::NotBase64url)
        }),
        (json("{}"), |e| matches!(e, CredentialError::NotJson(_))),
        (json("[]"), |e| matches!(e, CredentialError::NotJson(_))),
        (json("null"), |e| matches!(e, CredentialError::NotJson(_))),
        (json(&"[".repeat(10_000)), |e| {
            matches!(e, CredentialError::NotJson(_))
        }),
        (
            json(
                r#"{"challenge":{"id":"i","realm":"r","method":"m","intent":"c","request":"q"},"payload":null}"#,
            ),
            |e| matches!(e, CredentialError::NotJson(_)),
        ),
        (
            json(
                r#"{"challenge":{"id":"i","realm":"r","method":"m","intent":"c","request":"q"},"payload":"x"}"#,
            ),
            |e| matches!(e, CredentialError::NotJson(_)),
        ),
        (
            json(
                r#"{"challenge":{"id":"i","id":"j","realm":"r","method":"m","intent":"c","request":"q"},"payload":{}}"#,
            ),
            |e| matches!(e, CredentialError::NotJson(_)),
        ),
        (
            json(
                r#"{"challenge":{"id":7,"realm":"r","method":"m","intent":"c","request":"q"},"payload":{}}"#,
            ),
            |e| matches!(e, CredentialError::NotJson(_)),
        ),
        (
            json(
                r#"{"challenge":{"id":"","realm":"r","method":"m","intent":"c","request":"q"},"payload":{}}"#,
            ),
            |e| matches!(e, CredentialError::Missing("challenge.id")),
        ),
        (
            json(
                r#"{"challenge":{"id":"i","realm":"","method":"m","intent":"c","request":"q"},"payload":{}}"#,
            ),
            |e| matches!(e, CredentialError::Missing("challenge.realm")),
        ),
        (
            json(
                r#"{"challenge":{"id":"i","realm":"r","method":"m","intent":"c","request":""},"payload":{}}"#,
            ),
            |e| matches!(e, CredentialError::Missing("challenge.request")),
        ),
        (json("{\"challenge\":{\"id\":\"\u{0}\"}}"), |e| {
            matches!(e, CredentialError::NotJson(_))
        }),
    ];
    for (input, check) in cases {
        let error = PaymentCredential::parse(&input).unwrap_err();
        assert!(
            check(&error),
            "{:?}: {error}",
            &input[..input.len().min(80)]
        );
    }
    // Extra fields are another implementation's business, not a refusal.
    let extra = json(
        r#"{"challenge":{"id":"i","realm":"r","method":"m","intent":"c","request":"q","x":1},"payload":{},"y":[]}"#,
    );
    assert!(PaymentCredential::parse(&extra).is_ok());
}

#[test]
fn from_headers_finds_one_credential_among_other_schemes() {
    let (_, header) = paid(&Preimage::new([42; 32]));
    let other = paid(&Preimage::new([43; 32])).1;
    let get =
        |values: &[&str]| PaymentCredential::from_headers(values.iter().map(|v| v.as_bytes()));
    assert_eq!(get(&["Bearer x", "L402 a:b"]), Ok(None));
    assert!(get(&["Bearer x", &header]).unwrap().is_some());
    assert!(get(&[&header, &format!("  {header}  ")]).unwrap().is_some());
    assert_eq!(get(&[&header, &other]), Err(CredentialError::Conflicting));
    assert_eq!(get(&["Payment !"]), Err(CredentialError::NotBase64url));
    assert_eq!(get(&["PaymentX abc"]), Ok(None));
    let binary: &[u8] = b"Payment \xff\xfe";
    assert_eq!(
        PaymentCredential::from_headers([binary]),
        Err(CredentialError::NotText)
    );
    let not_ours: &[u8] = b"Basic \xff";
    assert_eq!(PaymentCredential::from_headers([not_ours]), Ok(None));
}

#[test]
fn hostile_challenge_values_never_panic_and_refuse_as_they_should() {
    use mpp::ChallengeListError as E;
    assert_eq!(PaymentChallenge::parse_list(""), Err(E::Missing));
    assert_eq!(
        PaymentChallenge::parse_list("Payment"),
        Err(E::Incomplete("id"))
    );
    assert_eq!(
        PaymentChallenge::parse_list("Payment id=\"a"),
        Err(E::UnterminatedQuote)
    );
    assert_eq!(
        PaymentChallenge::parse_list(&"x".repeat(MAX_HEADER_LEN + 1)),
        Err(E::TooLong(MAX_HEADER_LEN + 1))
    );
    for value in [
        "Payment ,,,,",
        "Payment id=, realm=, method=, intent=, request=",
        "Payment id=\"\\\"",
        "Payment =\"x\"",
        "Payment id=\"é\\é\"",
        "\u{0}Payment id=a",
        "Payment id=a realm=b",
        "Payment\tid=a,\trealm=r,\tmethod=m,\tintent=i,\trequest=q",
        "Payment id=\"a\", realm=\"r\", method=\"m\", intent=\"i\", request=\"q\"\"",
    ] {
        let _ = PaymentChallenge::parse_list(value);
    }
    // A tab between parameters is whitespace.
    let tabbed =
        PaymentChallenge::parse_list("Payment\tid=a,\trealm=r,\tmethod=m,\tintent=i,\trequest=q")
            .unwrap();
    assert_eq!(tabbed[0].request, "q");
    // Control characters a header cannot carry are dropped when written, never sent.
    let challenge = PaymentChallenge {
        realm: "evil\r\nX-Injected: yes".into(),
        ..Default::default()
    };
    let header = challenge.to_header_value();
    assert!(!header.contains('\r') && !header.contains('\n'), "{header}");
}

#[test]
fn jcs_refuses_hostile_text() {
    assert!(matches!(
        jcs::canonicalize(&"[".repeat(100_000)),
        Err(JcsError::TooDeep)
    ));
    assert!(matches!(
        jcs::canonicalize("{\"a\":1,\"a\":1}"),
        Err(JcsError::DuplicateName(_))
    ));
    assert!(matches!(
        jcs::canonicalize("\"\\ud83d\""),
        Err(JcsError::LoneSurrogate(_))
    ));
    assert!(matches!(
        jcs::canonicalize("-1e999"),
        Err(JcsError::NumberOutOfRange(_))
    ));
    assert!(matches!(
        jcs::canonicalize("\u{feff}{}"),
        Err(JcsError::Syntax { .. })
    ));
    assert!(matches!(
        jcs::canonicalize("{}\n\0"),
        Err(JcsError::Syntax { .. })
    ));
    assert_eq!(jcs::canonicalize(" \t\r\n{ } ").unwrap(), "{}");
}

#[test]
fn neither_keys_nor_preimages_print() {
    let preimage = Preimage::new([0x2a; 32]);
    let (_, header) = paid(&preimage);
    let credential = PaymentCredential::parse(&header).unwrap();
    let key = ChallengeKey::from_secret(&[0x5c; 32]);
    for text in [
        format!("{credential:?}"),
        format!("{key:?}"),
        format!("{:?}", keys()),
    ] {
        assert!(!text.contains(&preimage.to_hex()), "{text}");
        assert!(!text.contains("5c5c5c"), "{text}");
        assert!(!text.contains("[92, 92"), "{text}");
    }
    assert!(
        format!("{credential:?}").contains("preimage"),
        "the field name shows"
    );
}

#[test]
fn verify_header_refuses_exactly_as_parse_then_verify_charge() {
    let preimage = Preimage::new([42; 32]);
    let (challenge, good) = paid(&preimage);
    let c = serde_json::to_value(&challenge).unwrap();
    let hex = preimage.to_hex();
    let json = |v: Value| format!("Payment {}", base64url_encode(v.to_string().as_bytes()));
    let escaped = format!(
        r#"{{"challenge":{},"payload":{{"preimage":"{}\u0061"}}}}"#,
        c,
        &hex[..63]
    );
    let inputs = vec![
        good.clone(),
        good.to_lowercase(),
        format!("  {good}\t"),
        json(
            serde_json::json!({"challenge": c, "payload": {"preimage": hex, "x": [1, {"y": null}]}}),
        ),
        json(serde_json::json!({"challenge": c, "payload": {"preimage": 7}})),
        json(serde_json::json!({"challenge": c, "payload": [hex]})),
        json(serde_json::json!({"challenge": c, "payload": {}, "source": "did:x"})),
        json(serde_json::json!({"challenge": c, "payload": {"preimage": hex}, "source": 5})),
        json(
            serde_json::json!({"challenge": [c["id"], c["realm"], c["method"], c["intent"], c["request"], c["expires"]], "payload": {"preimage": hex}}),
        ),
        json(serde_json::json!({"challenge": c, "payload": {"preimage": hex}, "extra": true})),
        format!("Payment {}", base64url_encode(escaped.as_bytes())),
        format!(
            "Payment {}",
            base64url_encode(
                format!(r#"{{"challenge":{c},"payload":{{"preimage":"{hex}","preimage":"00"}}}}"#)
                    .as_bytes()
            )
        ),
        "Payment e30".into(),
        // Found by the mpp_credential fuzz target: bytes that are not UTF-8 in a field only one
        // of the two readers keeps.
        format!(
            "Payment {}",
            base64url_encode(
                &[
                    format!(r#"{{"challenge":{c},"payload":{{"x":""#).as_bytes(),
                    b"\xf8\xd3",
                    br#""}}"#,
                ]
                .concat()
            )
        ),
        format!(
            "Payment {}",
            base64url_encode(
                &[
                    br#"{"challenge":{"id":"i","realm":"r","method":"m","intent":"c","request":"q","x":""#.as_slice(),
                    b"\xff",
                    br#""},"payload":{}}"#,
                ]
                .concat()
            )
        ),
        "Basic x".into(),
        "Payment".into(),
    ];
    for input in inputs {
        let slow = PaymentCredential::parse(&input)
            .map_err(VerifyError::from)
            .and_then(|c| keys().verify_charge(&c, &expect(NOW)));
        let fast = keys().verify_header(&input, &expect(NOW));
        match (&slow, &fast) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{input}"),
            (
                Err(VerifyError::Malformed(CredentialError::NotJson(_))),
                Err(VerifyError::Malformed(CredentialError::NotJson(_))),
            ) => {}
            _ => assert_eq!(slow, fast, "{input}"),
        }
    }
    assert!(keys().verify_header(&good, &expect(NOW)).is_ok());
}
