//! The three dialects side by side: one 402 carrying L402, MPP and x402 challenges for one
//! invoice, read back into offers in every shape the headers arrive in, and each dialect's
//! credential verifying to the same payment hash, the one key of the spent set.

use plannt_l402::mpp::{ChallengeKeys, ChargeExpect, ChargeOffer, PaymentCredential};
use plannt_l402::x402::{
    ExactExpect, ExactOffer, PaymentPayload, PaymentRequired, ResourceInfo, TagKeys,
};
use plannt_l402::{
    Challenge, Credential, Dialect, KeyRing, MintRequest, NoConditions, Offer, Offers, Preimage,
    Request, RootKey,
};

const NOW: u64 = 1_800_000_000;
const INVOICE: &str = "lnbcrt210n1pexample";

struct Gateway402 {
    l402: String,
    mpp: String,
    x402: String,
}

fn ring() -> KeyRing {
    KeyRing::single(RootKey::new([7; 32]))
}

/// What a gateway answers to one request for `demo` (21 sats) with one invoice.
fn answer(preimage: &Preimage) -> Gateway402 {
    let ring = ring();
    let hash = preimage.hash();
    let macaroon = ring
        .mint(&MintRequest {
            payment_hash: hash,
            route: "demo",
            valid_until: NOW + 4200,
            conditions: &[],
        })
        .unwrap();
    let mpp = ChallengeKeys::from_ring(&ring)
        .mint_charge(&ChargeOffer {
            realm: "127.0.0.1:8402",
            route: "demo",
            amount_sats: 21,
            invoice: INVOICE,
            payment_hash: hash,
            network: plannt_l402::Network::Regtest,
            expires_at: NOW + 4200,
            description: None,
        })
        .unwrap();
    let x402 = TagKeys::from_ring(&ring)
        .requirements(&ExactOffer {
            route: "demo",
            amount_msat: 21_000,
            invoice: INVOICE,
            payment_hash: hash,
            network: plannt_l402::Network::Regtest,
            max_timeout_seconds: 600,
            valid_until: NOW + 4200,
        })
        .unwrap();
    let resource = ResourceInfo {
        url: "http://127.0.0.1:8402/v1/demo".into(),
        description: None,
        mime_type: None,
    };
    Gateway402 {
        l402: Challenge::new(macaroon, INVOICE).to_header_value(),
        mpp: mpp.to_header_value(),
        x402: PaymentRequired::new(resource, vec![x402]).encode(),
    }
}

#[test]
fn dialects_have_names_and_read_back() {
    for dialect in Dialect::ALL {
        assert_eq!(dialect.as_str().parse::<Dialect>(), Ok(dialect));
        assert_eq!(
            dialect.to_string().to_uppercase().parse::<Dialect>(),
            Ok(dialect)
        );
    }
    assert_eq!(" lsat ".parse::<Dialect>(), Ok(Dialect::L402));
    assert_eq!(
        Dialect::ALL.map(|d| d.as_str()),
        ["l402", "mpp", "x402"],
        "the order of preference"
    );
    let error = "payment".parse::<Dialect>().unwrap_err();
    assert!(error.to_string().contains("l402, mpp or x402"), "{error}");
}

#[test]
fn one_402_gives_three_offers_for_one_invoice() {
    let preimage = Preimage::new([42; 32]);
    let answer = answer(&preimage);
    let offers = Offers::from_headers(
        [answer.l402.as_str(), answer.mpp.as_str()],
        [answer.x402.as_str()],
    );
    assert_eq!(offers.skipped, vec![]);
    assert_eq!(
        offers.offers.iter().map(Offer::dialect).collect::<Vec<_>>(),
        Dialect::ALL
    );
    for offer in &offers.offers {
        assert_eq!(offer.invoice(), INVOICE, "{:?}", offer.dialect());
        assert_eq!(
            offer.payment_hash(),
            Some(preimage.hash()),
            "{:?}",
            offer.dialect()
        );
    }
    assert!(offers.first(Dialect::Mpp).is_some());
}

#[test]
fn challenges_are_found_however_the_headers_are_joined() {
    let preimage = Preimage::new([42; 32]);
    let a = answer(&preimage);
    // The Fetch standard joins repeated header lines with ", ".
    let joined = format!("{}, {}", a.l402, a.mpp);
    let other_schemes = format!("Bearer realm=\"x\", {}, Basic realm=\"y\"", a.mpp);
    for www in [
        vec![joined.as_str()],
        vec![a.mpp.as_str(), a.l402.as_str()],
        vec!["Basic realm=\"z\"", a.l402.as_str(), other_schemes.as_str()],
    ] {
        let offers = Offers::from_headers(www.clone(), [a.x402.as_str()]);
        assert_eq!(offers.skipped, vec![], "{www:?}");
        let mut dialects: Vec<_> = offers.offers.iter().map(Offer::dialect).collect();
        dialects.sort();
        assert_eq!(dialects, Dialect::ALL, "{www:?}");
    }
}

#[test]
fn the_l402_challenge_is_read_in_its_2026_form_too() {
    let preimage = Preimage::new([42; 32]);
    let a = answer(&preimage);
    let classic = Challenge::parse([a.l402.as_str()]).unwrap();
    // lightninglabs/L402's revised header: version="0" and token= instead of macaroon=.
    let v2026 = classic.to_header_value_v2026();
    assert!(
        v2026.starts_with("L402 version=\"0\", token=\"AgE"),
        "{v2026}"
    );
    let offers = Offers::from_headers([v2026.as_str()], []);
    let Some(Offer::L402(read)) = offers.offers.first() else {
        panic!("{offers:?}")
    };
    assert_eq!(read.version.as_deref(), Some("0"));
    assert_eq!(read.macaroon, classic.macaroon);
    // We keep sending the classic form, which every regex-based client reads.
    assert!(a.l402.starts_with("L402 macaroon=\"AgE"), "{}", a.l402);
}

#[test]
fn the_l402_challenge_is_found_after_mpps_in_either_form() {
    let preimage = Preimage::new([42; 32]);
    let a = answer(&preimage);
    let classic = Challenge::parse([a.l402.as_str()]).unwrap();
    let v2026 = classic.to_header_value_v2026();
    for l402 in [a.l402.as_str(), v2026.as_str()] {
        // MPP's challenge first, as a Plannt gateway sends by default; joined as fetch() joins
        // them, and as two values.
        let joined = format!("{}, {l402}", a.mpp);
        for www in [vec![joined.as_str()], vec![a.mpp.as_str(), l402]] {
            let read = Challenge::parse(www.iter().copied()).unwrap();
            assert_eq!(read.macaroon, classic.macaroon, "{www:?}");
            assert_eq!(read.invoice, INVOICE, "{www:?}");
            let offers = Offers::from_headers(www.clone(), []);
            assert_eq!(offers.skipped, vec![], "{www:?}");
            let dialects: Vec<_> = offers.offers.iter().map(Offer::dialect).collect();
            assert_eq!(dialects, [Dialect::Mpp, Dialect::L402], "{www:?}");
        }
    }
    let joined = format!("{}, {v2026}", a.mpp);
    let read = Challenge::parse([joined.as_str()]).unwrap();
    assert_eq!(read.version.as_deref(), Some("0"));
}

#[test]
fn challenges_plannt_cannot_pay_are_skipped_with_the_reason() {
    let session =
        "Payment id=\"a\", realm=\"r\", method=\"lightning\", intent=\"session\", request=\"cQ\"";
    let tempo =
        "Payment id=\"a\", realm=\"r\", method=\"tempo\", intent=\"charge\", request=\"cQ\"";
    let bad_request =
        "Payment id=\"a\", realm=\"r\", method=\"lightning\", intent=\"charge\", request=\"!!\"";
    let incomplete = "Payment id=\"a\", realm=\"r\"";
    let no_invoice = "L402 macaroon=\"AgE\"";
    let evm_only = plannt_l402::base64_encode(
        br#"{"x402Version":2,"accepts":[{"scheme":"exact","network":"eip155:8453","amount":"1","asset":"0x","payTo":"0x","maxTimeoutSeconds":60}]}"#,
    );
    let offers = Offers::from_headers(
        [
            session,
            tempo,
            bad_request,
            incomplete,
            no_invoice,
            "Bearer x",
            "L402 macaroon=\"unterminated",
        ],
        [evm_only.as_str(), "%%%"],
    );
    assert_eq!(offers.offers, vec![]);
    let skipped: Vec<_> = offers.skipped.iter().map(|e| e.dialect).collect();
    assert_eq!(
        skipped,
        [
            Dialect::Mpp,
            Dialect::Mpp,
            Dialect::Mpp,
            Dialect::Mpp,
            Dialect::L402,
            Dialect::L402,
            Dialect::X402,
            Dialect::X402
        ]
    );
    assert!(
        offers.skipped[0].to_string().contains("session"),
        "{}",
        offers.skipped[0]
    );
    // One unusable challenge never hides a good one beside it.
    let a = answer(&Preimage::new([1; 32]));
    let mixed = format!("{session}, {}", a.mpp);
    let offers = Offers::from_headers([mixed.as_str()], []);
    assert_eq!(offers.offers.len(), 1);
    assert_eq!(offers.skipped.len(), 1);
}

#[test]
fn each_dialects_credential_verifies_to_the_same_payment_hash() {
    let preimage = Preimage::new([42; 32]);
    let a = answer(&preimage);
    let ring = ring();
    let offers = Offers::from_headers([a.l402.as_str(), a.mpp.as_str()], [a.x402.as_str()]);

    let Some(Offer::L402(l402)) = offers.first(Dialect::L402) else {
        panic!()
    };
    let header = Credential::new(l402.macaroon.clone(), preimage).to_header_value();
    let request = Request {
        route: "demo",
        now: NOW,
        conditions: &NoConditions,
    };
    let by_l402 = ring.verify_header(&header, &request).unwrap().payment_hash;

    let Some(Offer::Mpp(mpp)) = offers.first(Dialect::Mpp) else {
        panic!()
    };
    let header = PaymentCredential::charge(&mpp.challenge, &preimage).to_header_value();
    let expect = ChargeExpect {
        route: "demo",
        price_sats: 21,
        now: NOW,
    };
    let by_mpp = ChallengeKeys::from_ring(&ring)
        .verify_header(&header, &expect)
        .unwrap()
        .payment_hash;

    let Some(Offer::X402(x402)) = offers.first(Dialect::X402) else {
        panic!()
    };
    let header = PaymentPayload::exact(x402.resource.clone(), &x402.requirements).encode();
    let expect = ExactExpect {
        route: "demo",
        price_msat: 21_000,
        network: plannt_l402::Network::Regtest,
        now: NOW,
    };
    let by_x402 = TagKeys::from_ring(&ring)
        .verify_header(&header, &expect)
        .unwrap()
        .payment_hash;

    assert_eq!(by_l402, preimage.hash());
    assert_eq!(by_mpp, preimage.hash());
    assert_eq!(by_x402, preimage.hash());
}

#[test]
fn offers_from_hostile_headers_never_panic() {
    let long = "L402 ".to_string() + &"x".repeat(plannt_l402::MAX_HEADER_LEN);
    let values = [
        "",
        ",,,",
        "Payment",
        "payment ID=a",
        "L402",
        "LSAT macaroon=, invoice=",
        "\"",
        "Payment id=\"\\",
        long.as_str(),
    ];
    let offers = Offers::from_headers(values, ["", "e30=", "eyJ4NDAyVmVyc2lvbiI6MX0="]);
    assert_eq!(offers.offers, vec![]);
    assert!(offers.skipped.len() >= 5, "{:?}", offers.skipped);
}
