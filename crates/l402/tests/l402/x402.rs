//! x402 `exact` on Lightning through the public API of `plannt-l402`: the three headers in the
//! shapes the scheme text and `@getalby/lightning-tools` 9.0.1 write them, round trips (proptest),
//! the client's checks before paying one by one, one test per reason the server refuses a
//! payload, and hostile input.

use plannt_l402::x402::{
    self, DecodeError, ExactExpect, ExactOffer, LightningPayload, MintError, PaymentPayload,
    PaymentRequired, PaymentRequirements, ResourceInfo, SettlementResponse, TagKey, TagKeys,
    VerifyError,
};
use plannt_l402::{
    InvoiceFacts, KeyRing, MAX_HEADER_LEN, Network, PayCheckError, PaymentHash, Preimage, Reason,
    RootKey, base64_encode,
};
use proptest::prelude::*;
use serde_json::{Value, json};

const NOW: u64 = 1_800_000_000;

/// Whether a decode error is the one expected.
type Check = fn(&DecodeError) -> bool;
const INVOICE: &str = "lnbcrt210n1pexample";

fn keys() -> TagKeys {
    TagKeys::from_ring(&KeyRing::single(RootKey::new([7; 32])))
}

fn hash() -> PaymentHash {
    Preimage::new([42; 32]).hash()
}

fn offer() -> ExactOffer<'static> {
    ExactOffer {
        route: "demo",
        amount_msat: 21_000,
        invoice: INVOICE,
        payment_hash: hash(),
        network: Network::Regtest,
        max_timeout_seconds: 600,
        valid_until: NOW + 4200,
    }
}

fn expect(now: u64) -> ExactExpect<'static> {
    ExactExpect {
        route: "demo",
        price_msat: 21_000,
        network: Network::Regtest,
        now,
    }
}

fn resource() -> ResourceInfo {
    ResourceInfo {
        url: "https://api.example.com/v1/demo".into(),
        description: Some("the demo".into()),
        mime_type: Some("application/json".into()),
    }
}

/// The `PAYMENT-REQUIRED` value a gateway sends and the `PAYMENT-SIGNATURE` a client answers with.
fn exchange() -> (String, String) {
    let requirements = keys().requirements(&offer()).unwrap();
    let required = PaymentRequired::new(resource(), vec![requirements]).encode();
    let read = PaymentRequired::decode(&required).unwrap();
    let signature = PaymentPayload::exact(read.resource.clone(), &read.accepts[0]).encode();
    (required, signature)
}

#[test]
fn the_networks_are_the_bip122_genesis_prefixes() {
    let genesis = [
        (
            Network::Mainnet,
            "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
        ),
        (
            Network::Testnet,
            "000000000933ea01ad0ee984209779baaec3ced90fa3f408719526f8d77f4943",
        ),
        (
            Network::Signet,
            "00000008819873e925422c1ff0f99f7cc9bbb232af63a077a480a3633bee1ef6",
        ),
        (
            Network::Regtest,
            "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206",
        ),
    ];
    for (network, hash) in genesis {
        assert_eq!(network.caip2(), format!("bip122:{}", &hash[..32]));
        assert_eq!(Network::from_caip2(network.caip2()), Some(network));
        assert_eq!(
            Network::from_caip2(&network.caip2().to_uppercase().replace("BIP122", "bip122")),
            Some(network)
        );
        assert_eq!(Network::from_name(network.name()), Some(network));
    }
    for bad in [
        "",
        "bip122:",
        "eip155:8453",
        "lnbtc:000000000019d6689c085ae165831e93",
        "bip122:000000000019d6689c085ae165831e9",
    ] {
        assert_eq!(Network::from_caip2(bad), None, "{bad}");
    }
}

#[test]
fn the_offer_is_the_scheme_texts_shape() {
    let requirements = keys().requirements(&offer()).unwrap();
    let json = serde_json::to_value(&requirements).unwrap();
    assert_eq!(json["scheme"], "exact");
    assert_eq!(json["network"], "bip122:0f9188f13cb7b2c71f2a335e3a4fc328");
    assert_eq!(json["amount"], "21000");
    assert_eq!(json["asset"], "BTC");
    assert_eq!(json["payTo"], "anonymous");
    assert_eq!(json["maxTimeoutSeconds"], 600);
    assert_eq!(json["extra"]["paymentMethod"], "lightning");
    assert_eq!(json["extra"]["invoice"], INVOICE);
    assert_eq!(json["extra"]["paymentHash"], hash().to_hex());
    assert_eq!(json["extra"]["plannt"]["route"], "demo");
    assert_eq!(json["extra"]["plannt"]["validUntil"], NOW + 4200);
    assert_eq!(json["extra"]["plannt"]["tag"].as_str().unwrap().len(), 43);
    let (required, _) = exchange();
    let body: Value =
        serde_json::from_slice(&plannt_l402::base64_decode(&required).unwrap()).unwrap();
    assert_eq!(body["x402Version"], 2);
    assert_eq!(body["resource"]["url"], "https://api.example.com/v1/demo");
    assert_eq!(body["accepts"].as_array().unwrap().len(), 1);
    assert!(
        required.ends_with('=') || required.len() % 4 == 0,
        "standard, padded base64"
    );
}

#[test]
fn a_paid_offer_verifies_and_its_response_names_the_payment_hash() {
    let (_, signature) = exchange();
    let verified = keys().verify_header(&signature, &expect(NOW)).unwrap();
    assert_eq!(verified.payment_hash, hash());
    assert_eq!(verified.invoice, INVOICE);
    assert_eq!(verified.valid_until, NOW + 4200);
    assert_eq!(verified.amount_msat, 21_000);
    let response = SettlementResponse::lightning(&verified, NOW);
    let read = SettlementResponse::decode(&response.encode()).unwrap();
    assert_eq!(read, response);
    let json = serde_json::to_value(&read).unwrap();
    assert_eq!(
        json,
        json!({"success": true, "transaction": hash().to_hex(),
               "network": "bip122:0f9188f13cb7b2c71f2a335e3a4fc328", "payer": "anonymous",
               "extra": {"invoice": INVOICE, "settledAt": NOW}})
    );
    assert_eq!(read.payment_hash(), Some(hash()));
}

#[test]
fn what_lightning_tools_sends_is_read_and_verified() {
    // @getalby/lightning-tools 9.0.1 reads `accepts`, pays the invoice of the first entry whose
    // extra.paymentMethod is "lightning", and sends btoa(JSON.stringify({x402Version: 2, scheme,
    // network, payload: {invoice}, accepted: requirements})).
    let (required, _) = exchange();
    let read = PaymentRequired::decode(&required).unwrap();
    let accepted = serde_json::to_value(&read.accepts[0]).unwrap();
    let sent = json!({
        "x402Version": 2,
        "scheme": accepted["scheme"],
        "network": accepted["network"],
        "payload": {"invoice": INVOICE},
        "accepted": accepted,
    });
    let header = base64_encode(sent.to_string().as_bytes());
    let verified = keys().verify_header(&header, &expect(NOW)).unwrap();
    assert_eq!(verified.payment_hash, hash());

    // Its test server's header: no version checks of ours fail on `asset: "btc"`, and an entry
    // without payTo or maxTimeoutSeconds still reads.
    let theirs = json!({"x402Version": 2, "accepts": [
        {"scheme": "exact", "network": "bip122:000000000019d6689c085ae165831e93", "amount": "402000",
         "asset": "btc", "extra": {"invoice": "lnbc4020n1p", "paymentMethod": "lightning"}}]});
    let read = PaymentRequired::decode(&base64_encode(theirs.to_string().as_bytes())).unwrap();
    assert!(read.accepts[0].is_exact_lightning());
    assert_eq!(read.accepts[0].amount_msat(), Some(402_000));
    assert_eq!(read.accepts[0].network(), Some(Network::Mainnet));
    assert_eq!(read.accepts[0].pay_to, None);
}

#[test]
fn odd_entries_of_accepts_are_dropped_and_the_others_kept() {
    let body = json!({"x402Version": 2, "accepts": [
        {"scheme": "exact", "network": "eip155:8453", "amount": "10000", "asset": "0xabc",
         "payTo": "0xdef", "maxTimeoutSeconds": 60, "extra": {"name": "USDC", "version": "2"}},
        {"scheme": "exact", "amount": 5},
        "nonsense",
        serde_json::to_value(keys().requirements(&offer()).unwrap()).unwrap(),
    ]});
    let read = PaymentRequired::decode(&base64_encode(body.to_string().as_bytes())).unwrap();
    assert_eq!(read.accepts.len(), 2);
    assert!(!read.accepts[0].is_exact_lightning());
    assert!(read.accepts[1].is_exact_lightning());
}

// ---------------------------------------------------------------------------------------------
// The client's checks before paying.

fn facts() -> InvoiceFacts {
    InvoiceFacts {
        payment_hash: hash(),
        amount_msat: Some(21_000),
        network: Network::Regtest,
        expires_at: NOW + 600,
        payee: "02".to_string() + &"ab".repeat(32),
    }
}

fn requirements() -> PaymentRequirements {
    keys().requirements(&offer()).unwrap()
}

fn check(r: &PaymentRequirements, f: &InvoiceFacts, wallet: Network, now: u64) -> PayCheckError {
    r.check_before_paying(f, wallet, now).unwrap_err()
}

#[test]
fn the_client_pays_a_matching_offer() {
    assert_eq!(
        requirements().check_before_paying(&facts(), Network::Regtest, NOW),
        Ok(())
    );
    // payTo naming the payee, in either case, is fine too.
    let mut named = requirements();
    named.pay_to = Some(facts().payee.to_uppercase());
    assert_eq!(
        named.check_before_paying(&facts(), Network::Regtest, NOW),
        Ok(())
    );
}

#[test]
fn the_client_refuses_an_invoice_for_another_amount() {
    for amount in [Some(20_999), Some(21_001), Some(21)] {
        let f = InvoiceFacts {
            amount_msat: amount,
            ..facts()
        };
        let error = check(&requirements(), &f, Network::Regtest, NOW);
        assert!(
            matches!(
                error,
                PayCheckError::AmountMismatch {
                    offer_msat: 21_000,
                    ..
                }
            ),
            "{error}"
        );
        assert_eq!(error.code(), "amount_mismatch");
    }
    let f = InvoiceFacts {
        amount_msat: None,
        ..facts()
    };
    assert_eq!(
        check(&requirements(), &f, Network::Regtest, NOW),
        PayCheckError::NoAmount
    );
}

#[test]
fn the_client_refuses_an_amount_that_is_not_whole_msat() {
    for amount in [
        "",
        "0",
        "-1",
        "21000.0",
        "2.1e4",
        "021000",
        " 21000",
        "18446744073709551616",
    ] {
        let mut r = requirements();
        r.amount = amount.into();
        let error = check(&r, &facts(), Network::Regtest, NOW);
        assert_eq!(error, PayCheckError::BadAmount(amount.into()), "{amount:?}");
    }
}

#[test]
fn the_client_refuses_another_network() {
    let mut r = requirements();
    r.network = Network::Mainnet.caip2().into();
    assert!(matches!(
        check(&r, &facts(), Network::Regtest, NOW),
        PayCheckError::WrongNetwork { .. }
    ));
    r.network = "bip122:unknown".into();
    assert!(matches!(
        check(&r, &facts(), Network::Regtest, NOW),
        PayCheckError::WrongNetwork { .. }
    ));
    let error = check(&requirements(), &facts(), Network::Signet, NOW);
    assert_eq!(error.code(), "wrong_network");
}

#[test]
fn the_client_refuses_another_payee_or_payment_hash() {
    let mut r = requirements();
    r.pay_to = Some("03".to_string() + &"cd".repeat(32));
    assert!(matches!(
        check(&r, &facts(), Network::Regtest, NOW),
        PayCheckError::PayeeMismatch { .. }
    ));
    let mut r = requirements();
    r.extra
        .insert("paymentHash".into(), PaymentHash([1; 32]).to_hex().into());
    assert_eq!(
        check(&r, &facts(), Network::Regtest, NOW),
        PayCheckError::HashMismatch
    );
    r.extra.insert("paymentHash".into(), "not hex".into());
    assert_eq!(
        check(&r, &facts(), Network::Regtest, NOW),
        PayCheckError::HashMismatch
    );
}

#[test]
fn the_client_refuses_an_expired_invoice() {
    assert!(
        requirements()
            .check_before_paying(&facts(), Network::Regtest, NOW + 599)
            .is_ok()
    );
    for now in [NOW + 600, NOW + 601] {
        let error = check(&requirements(), &facts(), Network::Regtest, now);
        assert_eq!(
            error,
            PayCheckError::Expired {
                expired_at: NOW + 600
            }
        );
    }
}

#[test]
fn the_client_refuses_what_is_not_exact_on_lightning() {
    let changes: [fn(&mut PaymentRequirements); 5] = [
        |r| r.scheme = "upto".into(),
        |r| {
            r.extra.insert("paymentMethod".into(), "on-chain".into());
        },
        |r| {
            r.extra.remove("invoice");
        },
        |r| {
            r.extra.insert("invoice".into(), 7.into());
        },
        |r| r.asset = Some("USDC".into()),
    ];
    for change in changes {
        let mut r = requirements();
        change(&mut r);
        let error = check(&r, &facts(), Network::Regtest, NOW);
        assert!(matches!(error, PayCheckError::Unsupported(_)), "{error}");
    }
}

// ---------------------------------------------------------------------------------------------
// Every reason the server refuses a payload.

fn payload() -> PaymentPayload {
    PaymentPayload::decode(&exchange().1).unwrap()
}

fn refused(p: &PaymentPayload, expect: &ExactExpect<'_>) -> VerifyError {
    keys().verify_exact(p, expect).unwrap_err()
}

#[test]
fn malformed_when_the_header_does_not_decode() {
    let cases: Vec<(String, Check)> = vec![
        ("!!!".into(), |e| matches!(e, DecodeError::NotBase64)),
        (base64_encode(b"not json"), |e| {
            matches!(e, DecodeError::NotJson(_))
        }),
        (base64_encode(b"{}"), |e| {
            matches!(e, DecodeError::NotJson(_))
        }),
        (base64_encode(b"[]"), |e| {
            matches!(e, DecodeError::NotJson(_))
        }),
        ("A".repeat(MAX_HEADER_LEN + 1), |e| {
            matches!(e, DecodeError::TooLong(_))
        }),
    ];
    for (value, check) in cases {
        let error = keys().verify_header(&value, &expect(NOW)).unwrap_err();
        let VerifyError::Malformed(inner) = &error else {
            panic!("{error}")
        };
        assert!(check(inner), "{error}");
        assert_eq!(error.reason(), Reason::Malformed);
        assert_eq!(error.reason().status(), 401);
    }
}

#[test]
fn malformed_for_another_version() {
    for version in [0, 1, 3] {
        let mut p = payload();
        p.x402_version = version;
        assert_eq!(
            refused(&p, &expect(NOW)),
            VerifyError::Malformed(DecodeError::Version(version))
        );
        assert!(matches!(
            PaymentPayload::decode(&p.encode()),
            Err(DecodeError::Version(v)) if v == version
        ));
    }
}

#[test]
fn malformed_for_what_is_not_exact_on_lightning() {
    let mut p = payload();
    p.accepted.scheme = "upto".into();
    let error = refused(&p, &expect(NOW));
    assert!(matches!(error, VerifyError::Unsupported(_)), "{error}");
    assert_eq!(error.reason(), Reason::Malformed);
}

#[test]
fn malformed_when_the_invoice_paid_is_not_the_one_accepted() {
    let mut p = payload();
    p.payload = LightningPayload {
        invoice: "lnbcrt1other".into(),
    };
    assert_eq!(refused(&p, &expect(NOW)), VerifyError::InvoiceMismatch);
    assert_eq!(VerifyError::InvoiceMismatch.reason(), Reason::Malformed);
}

#[test]
fn bad_signature_when_any_tagged_field_changes_or_the_tag_is_missing() {
    let changes: [fn(&mut PaymentPayload); 9] = [
        |p| p.accepted.amount = "21001".into(),
        |p| p.accepted.network = Network::Mainnet.caip2().into(),
        |p| {
            p.accepted
                .extra
                .insert("paymentHash".into(), PaymentHash([1; 32]).to_hex().into());
        },
        |p| {
            p.accepted.extra["plannt"]["route"] = "other".into();
        },
        |p| {
            p.accepted.extra["plannt"]["validUntil"] = (NOW + 99_999).into();
        },
        |p| {
            p.accepted.extra["plannt"]["tag"] = "A".repeat(43).into();
        },
        |p| {
            p.accepted.extra["plannt"]
                .as_object_mut()
                .unwrap()
                .remove("tag");
        },
        |p| {
            p.accepted.extra.remove("plannt");
        },
        |p| {
            p.accepted
                .extra
                .insert("invoice".into(), "lnbcrt1other".into());
            p.payload.invoice = "lnbcrt1other".into();
        },
    ];
    for change in changes {
        let mut p = payload();
        change(&mut p);
        let error = refused(&p, &expect(NOW));
        assert_eq!(error, VerifyError::UnknownInvoice);
        assert_eq!(error.reason(), Reason::BadSignature);
    }
    // Fields the tag does not cover change nothing.
    let mut p = payload();
    p.accepted.max_timeout_seconds = Some(1);
    p.accepted.pay_to = None;
    p.resource = None;
    assert!(keys().verify_exact(&p, &expect(NOW)).is_ok());
    // Another server's key.
    let other = TagKeys::new(vec![TagKey::new([9; 32])]);
    assert_eq!(
        other.verify_exact(&payload(), &expect(NOW)),
        Err(VerifyError::UnknownInvoice)
    );
}

#[test]
fn caveat_failed_for_an_offer_on_another_network() {
    let on_mainnet = ExactExpect {
        network: Network::Mainnet,
        ..expect(NOW)
    };
    let error = refused(&payload(), &on_mainnet);
    assert!(matches!(error, VerifyError::WrongNetwork(_)), "{error}");
    assert_eq!(error.reason(), Reason::CaveatFailed);
}

#[test]
fn expired_at_exactly_valid_until_and_after() {
    assert!(keys().verify_exact(&payload(), &expect(NOW + 4199)).is_ok());
    for now in [NOW + 4200, u64::MAX] {
        let error = refused(&payload(), &expect(now));
        assert_eq!(
            error,
            VerifyError::Expired {
                expired_at: NOW + 4200
            }
        );
        assert_eq!(error.reason(), Reason::Expired);
        assert_eq!(error.reason().status(), 402);
    }
}

#[test]
fn wrong_route_for_an_offer_issued_for_another() {
    let other = ExactExpect {
        route: "other",
        ..expect(NOW)
    };
    let error = refused(&payload(), &other);
    assert_eq!(
        error,
        VerifyError::WrongRoute {
            issued_for: "demo".into()
        }
    );
    assert_eq!(error.reason(), Reason::WrongRoute);
}

#[test]
fn caveat_failed_when_the_price_rose_above_the_offer() {
    let dearer = ExactExpect {
        price_msat: 21_001,
        ..expect(NOW)
    };
    let error = refused(&payload(), &dearer);
    assert_eq!(
        error,
        VerifyError::Underpaid {
            paid: 21_000,
            price: 21_001
        }
    );
    assert_eq!(error.reason(), Reason::CaveatFailed);
    let cheaper = ExactExpect {
        price_msat: 1,
        ..expect(NOW)
    };
    assert!(keys().verify_exact(&payload(), &cheaper).is_ok());
}

#[test]
fn a_ring_tags_with_its_newest_key_and_verifies_with_every_key() {
    let mut ring = KeyRing::single(RootKey::new([7; 32]));
    ring.add("next", RootKey::new([8; 32])).unwrap();
    let both = TagKeys::from_ring(&ring);
    let old = payload();
    let new = PaymentPayload::exact(None, &both.requirements(&offer()).unwrap());
    assert!(both.verify_exact(&old, &expect(NOW)).is_ok());
    assert!(both.verify_exact(&new, &expect(NOW)).is_ok());
    assert_eq!(
        keys().verify_exact(&new, &expect(NOW)),
        Err(VerifyError::UnknownInvoice)
    );
}

#[test]
fn requirements_refuse_what_they_cannot_tag() {
    let cases: Vec<(ExactOffer<'_>, MintError)> = vec![
        (
            ExactOffer {
                route: "a_b",
                ..offer()
            },
            MintError::BadRoute("a_b".into()),
        ),
        (
            ExactOffer {
                invoice: "ln\0bc",
                ..offer()
            },
            MintError::BadInvoice,
        ),
        (
            ExactOffer {
                invoice: "",
                ..offer()
            },
            MintError::BadInvoice,
        ),
        (
            ExactOffer {
                amount_msat: 0,
                ..offer()
            },
            MintError::ZeroAmount,
        ),
    ];
    for (offer, want) in cases {
        assert_eq!(keys().requirements(&offer), Err(want));
    }
    assert_eq!(
        TagKeys::default().requirements(&offer()),
        Err(MintError::NoKey)
    );
}

// ---------------------------------------------------------------------------------------------
// Round trips and hostile input.

proptest! {
    #[test]
    fn offers_round_trip_and_verify_for_their_terms_only(
        secret in any::<[u8; 32]>(),
        amount in 1u64..u64::MAX / 2,
        route in "[a-z0-9.-]{1,16}",
        valid_for in 1u64..100_000,
        network in proptest::sample::select(Network::ALL.to_vec()),
        invoice in "ln[a-z0-9]{1,80}",
    ) {
        let keys = TagKeys::new(vec![TagKey::new(secret)]);
        let hash = Preimage::new(secret).hash();
        let requirements = keys.requirements(&ExactOffer {
            route: &route, amount_msat: amount, invoice: &invoice, payment_hash: hash, network,
            max_timeout_seconds: valid_for, valid_until: NOW + valid_for,
        }).unwrap();
        let required = PaymentRequired::new(resource(), vec![requirements.clone()]);
        let read = PaymentRequired::decode(&required.encode()).unwrap();
        prop_assert_eq!(&read, &required);
        let payload = PaymentPayload::exact(read.resource.clone(), &read.accepts[0]);
        let sent = PaymentPayload::decode(&payload.encode()).unwrap();
        prop_assert_eq!(&sent, &payload);
        let at = |route: &str, price, now| keys.verify_exact(&sent, &ExactExpect { route, price_msat: price, network, now });
        let ok = at(&route, amount, NOW).unwrap();
        prop_assert_eq!(ok.payment_hash, hash);
        prop_assert_eq!(ok.invoice, invoice);
        prop_assert!(matches!(at(&route, amount + 1, NOW), Err(VerifyError::Underpaid { .. })), "underpaid");
        prop_assert!(matches!(at(&route, amount, NOW + valid_for), Err(VerifyError::Expired { .. })), "expired");
        let other = format!("{route}x");
        prop_assert!(matches!(at(&other, amount, NOW), Err(VerifyError::WrongRoute { .. })), "wrong route");
        let facts = InvoiceFacts { payment_hash: hash, amount_msat: Some(amount), network,
            expires_at: NOW + valid_for, payee: "02".repeat(33) };
        prop_assert_eq!(read.accepts[0].check_before_paying(&facts, network, NOW), Ok(()));
    }

    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = PaymentRequired::decode(&text);
        let _ = PaymentPayload::decode(&text);
        let _ = SettlementResponse::decode(&text);
        let encoded = base64_encode(&bytes);
        let _ = PaymentRequired::decode(&encoded);
        let _ = keys().verify_header(&encoded, &expect(NOW));
    }
}

#[test]
fn hostile_json_is_refused_without_panicking() {
    let enc = |v: &str| base64_encode(v.as_bytes());
    for value in [
        enc(&format!("{}{}", "[".repeat(5000), "]".repeat(5000))),
        enc(r#"{"x402Version":2,"x402Version":2,"accepts":[]}"#),
        enc(r#"{"x402Version":-1,"accepts":[]}"#),
        enc(r#"{"x402Version":2.5,"accepts":[]}"#),
        enc(r#"{"x402Version":4294967296,"accepts":[]}"#),
        enc(r#"{"x402Version":2,"accepts":{}}"#),
        enc("\u{feff}{}"),
    ] {
        assert!(PaymentRequired::decode(&value).is_err(), "{value}");
        assert!(PaymentPayload::decode(&value).is_err(), "{value}");
    }
    let payload = json!({"x402Version": 2, "accepted": {"scheme": "exact", "network": "x",
        "amount": "1", "extra": {"paymentMethod": "lightning", "invoice": "lnbc1",
        "plannt": {"route": "demo", "validUntil": "soon", "tag": 7}}},
        "payload": {"invoice": "lnbc1"}});
    assert_eq!(
        keys().verify_header(&enc(&payload.to_string()), &expect(NOW)),
        Err(VerifyError::UnknownInvoice)
    );
    // The header constants are the names the scheme text uses, lowercased.
    assert_eq!(
        [
            x402::PAYMENT_REQUIRED,
            x402::PAYMENT_SIGNATURE,
            x402::PAYMENT_RESPONSE
        ],
        ["payment-required", "payment-signature", "payment-response"]
    );
}

#[test]
fn tag_keys_never_print() {
    let key = TagKey::new([0x5c; 32]);
    let ring = TagKeys::new(vec![key.clone()]);
    for text in [format!("{key:?}"), format!("{ring:?}")] {
        assert!(!text.contains("5c5c") && !text.contains("92, 92"), "{text}");
    }
}
