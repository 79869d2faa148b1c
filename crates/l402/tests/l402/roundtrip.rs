//! Round trips through the public API of `plannt-l402`, driven by proptest.
//!
//! Covers: macaroons (location, identifier, first-party caveats, and third-party caveats read from
//! a V2 binary assembled by hand here, independently of the crate's encoder) through the binary
//! and every base64 flavour a client may send; identifiers; typed caveats within their grammar;
//! `Authorization` credentials in the forms real clients write them; `WWW-Authenticate`
//! challenges in both the classic and the 2026 form, amid other schemes and split across header
//! values; and minting followed by verification for the right and the wrong route and time.

use plannt_l402::{
    Caveat, CaveatFailure, Challenge, Credential, IDENTIFIER_LEN, Identifier, KeyRing, MintRequest,
    NoConditions, PaymentHash, Preimage, Request, RootKey, Scheme, Service, VerifyError,
    base64_encode,
};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------------------------
// An independent V2 encoder, written from the libmacaroons format description.

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_field(out: &mut Vec<u8>, kind: u64, data: &[u8]) {
    put_varint(out, kind);
    put_varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

#[derive(Debug, Clone)]
struct RawCaveat {
    location: Option<Vec<u8>>,
    id: Vec<u8>,
    verification_id: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
struct RawMacaroon {
    location: Option<Vec<u8>>,
    identifier: Vec<u8>,
    caveats: Vec<RawCaveat>,
    signature: [u8; 32],
}

impl RawMacaroon {
    fn assemble(&self) -> Vec<u8> {
        let mut out = vec![2u8];
        if let Some(location) = &self.location {
            put_field(&mut out, 1, location);
        }
        put_field(&mut out, 2, &self.identifier);
        out.push(0);
        for caveat in &self.caveats {
            if let Some(location) = &caveat.location {
                put_field(&mut out, 1, location);
            }
            put_field(&mut out, 2, &caveat.id);
            if let Some(vid) = &caveat.verification_id {
                put_field(&mut out, 4, vid);
            }
            out.push(0);
        }
        out.push(0);
        put_field(&mut out, 6, &self.signature);
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies.

fn raw_caveat() -> impl Strategy<Value = RawCaveat> {
    prop_oneof![
        3 => vec(any::<u8>(), 0..64).prop_map(|id| RawCaveat {
            location: None,
            id,
            verification_id: None,
        }),
        1 => (
            option::of(vec(any::<u8>(), 0..40)),
            vec(any::<u8>(), 0..64),
            option::of(vec(any::<u8>(), 0..80)),
        )
            .prop_map(|(location, id, verification_id)| RawCaveat {
                location,
                id,
                verification_id,
            }),
    ]
}

fn raw_macaroon() -> impl Strategy<Value = RawMacaroon> {
    (
        option::of(vec(any::<u8>(), 0..40)),
        vec(any::<u8>(), 1..200),
        vec(raw_caveat(), 0..10),
        any::<[u8; 32]>(),
    )
        .prop_map(|(location, identifier, caveats, signature)| RawMacaroon {
            location,
            identifier,
            caveats,
            signature,
        })
}

/// A macaroon built through the public API: `Macaroon::new` and first-party caveats.
#[derive(Debug, Clone)]
struct Built {
    key: [u8; 32],
    location: Option<Vec<u8>>,
    identifier: Vec<u8>,
    caveats: Vec<Vec<u8>>,
}

impl Built {
    fn root_key(&self) -> RootKey {
        RootKey::new(self.key)
    }

    fn build(&self) -> plannt_l402::Macaroon {
        let mut m = plannt_l402::Macaroon::new(
            &self.root_key(),
            self.location.as_deref(),
            &self.identifier,
        );
        for caveat in &self.caveats {
            m.add_first_party_caveat(caveat);
        }
        m
    }
}

fn built() -> impl Strategy<Value = Built> {
    (
        any::<[u8; 32]>(),
        option::of(vec(any::<u8>(), 0..40)),
        vec(any::<u8>(), 1..200),
        vec(vec(any::<u8>(), 0..64), 0..10),
    )
        .prop_map(|(key, location, identifier, caveats)| Built {
            key,
            location,
            identifier,
            caveats,
        })
}

/// Any macaroon the codec must carry: built through the API, or parsed from a hand-made binary
/// (which may hold third-party caveats).
fn any_macaroon() -> impl Strategy<Value = plannt_l402::Macaroon> {
    prop_oneof![
        built().prop_map(|b| b.build()),
        raw_macaroon().prop_map(|raw| {
            plannt_l402::Macaroon::from_binary(&raw.assemble()).expect("hand-assembled V2 parses")
        }),
    ]
}

fn route_id() -> impl Strategy<Value = String> {
    "[A-Za-z0-9.-]{1,20}"
}

fn condition_name() -> impl Strategy<Value = String> {
    // Names that end in `_valid_until` or `_capabilities` are excluded: the crate's grammar admits
    // them but their text reads back as another caveat (reported separately as a bug).
    "[a-z0-9_]{1,20}".prop_filter("reserved or ambiguous condition name", |name| {
        name != "valid_until"
            && name != "capabilities"
            && !name.ends_with("_valid_until")
            && !name.ends_with("_capabilities")
    })
}

fn typed_caveat() -> impl Strategy<Value = Caveat> {
    prop_oneof![
        vec((route_id(), any::<u8>()), 1..5).prop_map(|list| Caveat::Services(
            list.into_iter()
                .map(|(name, tier)| Service { name, tier })
                .collect()
        )),
        (route_id(), any::<u64>()).prop_map(|(service, unix)| Caveat::ValidUntil { service, unix }),
        (route_id(), vec("[A-Za-z0-9._-]{1,12}", 0..5)).prop_map(|(service, capabilities)| {
            Caveat::Capabilities {
                service,
                capabilities,
            }
        }),
        (route_id(), condition_name(), "\\P{Cc}{0,30}").prop_map(|(service, name, value)| {
            Caveat::Condition {
                service,
                name,
                value,
            }
        }),
    ]
}

fn invoice() -> impl Strategy<Value = String> {
    "lnbc(rt)?[0-9]{0,6}[munp]?1[02-9ac-hj-np-z]{20,300}"
}

fn url_safe(text: &str) -> String {
    text.replace('+', "-").replace('/', "_")
}

fn unpadded(text: &str) -> String {
    text.trim_end_matches('=').to_string()
}

// ---------------------------------------------------------------------------------------------
// Macaroons.

proptest! {
    #[test]
    fn built_macaroons_round_trip_through_binary_and_every_base64_flavour(spec in built()) {
        let m = spec.build();
        prop_assert_eq!(m.location(), spec.location.as_deref());
        prop_assert_eq!(m.identifier(), &spec.identifier[..]);
        prop_assert_eq!(m.caveats().len(), spec.caveats.len());
        prop_assert!(m.caveats().iter().all(|c| c.is_first_party()));

        let binary = m.to_binary();
        let back = plannt_l402::Macaroon::from_binary(&binary).unwrap();
        prop_assert_eq!(&back, &m);
        prop_assert_eq!(back.to_binary(), binary.clone());
        prop_assert!(back.verify_signature(&spec.root_key()));

        let text = m.to_base64();
        prop_assert_eq!(&text, &base64_encode(&binary));
        prop_assert_eq!(text.len() % 4, 0, "standard base64 is padded");
        prop_assert!(!text.contains('-') && !text.contains('_'));
        for flavour in [text.clone(), unpadded(&text), url_safe(&text), unpadded(&url_safe(&text))] {
            let back = plannt_l402::Macaroon::from_base64(&flavour).unwrap();
            prop_assert_eq!(&back, &m, "{}", flavour);
        }
        // Surrounding whitespace, as it arrives from a header, is ignored.
        let padded = format!(" \t{text}\n ");
        prop_assert_eq!(plannt_l402::Macaroon::from_base64(&padded).unwrap(), m);
    }

    #[test]
    fn a_hand_assembled_v2_binary_parses_to_its_fields_and_re_encodes_byte_identical(
        raw in raw_macaroon()
    ) {
        let binary = raw.assemble();
        let m = plannt_l402::Macaroon::from_binary(&binary).unwrap();
        prop_assert_eq!(m.location(), raw.location.as_deref());
        prop_assert_eq!(m.identifier(), &raw.identifier[..]);
        prop_assert_eq!(m.signature(), &raw.signature);
        prop_assert_eq!(m.caveats().len(), raw.caveats.len());
        for (parsed, want) in m.caveats().iter().zip(&raw.caveats) {
            prop_assert_eq!(&parsed.location, &want.location);
            prop_assert_eq!(&parsed.id, &want.id);
            prop_assert_eq!(&parsed.verification_id, &want.verification_id);
            prop_assert_eq!(
                parsed.is_first_party(),
                want.location.is_none() && want.verification_id.is_none()
            );
        }
        prop_assert_eq!(m.to_binary(), binary);
        let text = m.to_base64();
        for flavour in [text.clone(), unpadded(&text), url_safe(&text), unpadded(&url_safe(&text))] {
            prop_assert_eq!(&plannt_l402::Macaroon::from_base64(&flavour).unwrap(), &m);
        }
    }

    #[test]
    fn third_party_caveats_survive_the_round_trip_but_never_verify(
        spec in built(),
        location in vec(any::<u8>(), 0..30),
        id in vec(any::<u8>(), 0..30),
        vid in vec(any::<u8>(), 1..60),
    ) {
        // The signature of a built macaroon, with a third-party caveat appended by hand.
        let m = spec.build();
        let raw = RawMacaroon {
            location: spec.location.clone(),
            identifier: spec.identifier.clone(),
            caveats: spec
                .caveats
                .iter()
                .map(|c| RawCaveat { location: None, id: c.clone(), verification_id: None })
                .chain([RawCaveat { location: Some(location), id, verification_id: Some(vid) }])
                .collect(),
            signature: *m.signature(),
        };
        let parsed = plannt_l402::Macaroon::from_binary(&raw.assemble()).unwrap();
        prop_assert!(!parsed.caveats().last().unwrap().is_first_party());
        prop_assert_eq!(parsed.to_binary(), raw.assemble());
        prop_assert!(!parsed.verify_signature(&spec.root_key()));
    }

    #[test]
    fn adding_a_caveat_changes_the_signature_and_keeps_it_verifiable(
        spec in built(),
        extra in vec(any::<u8>(), 0..64),
        other_key in any::<[u8; 32]>(),
    ) {
        let m = spec.build();
        let mut narrowed = m.clone();
        narrowed.add_first_party_caveat(&extra);
        prop_assert_ne!(narrowed.signature(), m.signature());
        prop_assert!(narrowed.verify_signature(&spec.root_key()));
        if other_key != spec.key {
            prop_assert!(!narrowed.verify_signature(&RootKey::new(other_key)));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Identifiers and caveats.

proptest! {
    #[test]
    fn identifiers_round_trip(payment_hash in any::<[u8; 32]>(), token_id in any::<[u8; 32]>()) {
        let id = Identifier { payment_hash: PaymentHash(payment_hash), token_id };
        let bytes = id.encode();
        prop_assert_eq!(bytes.len(), IDENTIFIER_LEN);
        prop_assert_eq!(&bytes[..2], &[0u8, 0][..]);
        prop_assert_eq!(&bytes[2..34], &payment_hash[..]);
        prop_assert_eq!(&bytes[34..], &token_id[..]);
        prop_assert_eq!(Identifier::decode(&bytes).unwrap(), id);
    }

    #[test]
    fn typed_caveats_print_and_parse_back(caveat in typed_caveat()) {
        let text = caveat.to_string();
        prop_assert_eq!(Caveat::parse(text.as_bytes()).unwrap(), caveat.clone());
        // And the text is stable through a second trip.
        prop_assert_eq!(Caveat::parse(text.as_bytes()).unwrap().to_string(), text);
    }

    #[test]
    fn a_typed_caveat_carried_in_a_macaroon_reads_back(
        caveat in typed_caveat(),
        key in any::<[u8; 32]>(),
    ) {
        let root = RootKey::new(key);
        let mut m = plannt_l402::Macaroon::new(&root, None, b"identifier");
        m.add_first_party_caveat(caveat.to_string().as_bytes());
        let back = plannt_l402::Macaroon::from_base64(&m.to_base64()).unwrap();
        prop_assert_eq!(Caveat::parse(&back.caveats()[0].id).unwrap(), caveat);
        prop_assert!(back.verify_signature(&root));
    }
}

// ---------------------------------------------------------------------------------------------
// Credentials.

fn credential() -> impl Strategy<Value = Credential> {
    (vec(any_macaroon(), 1..=8), any::<[u8; 32]>()).prop_map(|(macaroons, preimage)| Credential {
        scheme: Scheme::L402,
        macaroons,
        preimage: Preimage::new(preimage),
    })
}

fn same(a: &Credential, b: &Credential) -> bool {
    a.macaroons == b.macaroons && a.preimage == b.preimage
}

proptest! {
    #[test]
    fn credentials_round_trip_in_every_form_clients_send(cred in credential()) {
        let header = cred.to_header_value();
        prop_assert!(header.starts_with("L402 "));
        let parsed = Credential::parse(&header).unwrap();
        prop_assert_eq!(&parsed, &cred);
        prop_assert_eq!(parsed.to_header_value(), header.clone());

        let (head, preimage_hex) = header.rsplit_once(':').unwrap();
        prop_assert_eq!(preimage_hex, cred.preimage.to_hex());
        let body = head.strip_prefix("L402 ").unwrap();
        let list: Vec<String> = cred.macaroons.iter().map(|m| m.to_base64()).collect();

        // The scheme in any case, and the old name.
        for scheme in ["L402", "l402", "LSAT", "lsat", "LsAt"] {
            let value = format!("{scheme} {body}:{preimage_hex}");
            let parsed = Credential::parse(&value).unwrap();
            prop_assert!(same(&parsed, &cred), "{}", value);
            let want = if scheme.eq_ignore_ascii_case("lsat") { Scheme::Lsat } else { Scheme::L402 };
            prop_assert_eq!(parsed.scheme, want);
        }
        // LSAT writes itself back as LSAT.
        let lsat = Credential { scheme: Scheme::Lsat, ..cred.clone() };
        prop_assert!(lsat.to_header_value().starts_with("LSAT "));
        prop_assert_eq!(Credential::parse(&lsat.to_header_value()).unwrap(), lsat);

        // The preimage in upper case.
        let upper = format!("L402 {body}:{}", preimage_hex.to_uppercase());
        prop_assert!(same(&Credential::parse(&upper).unwrap(), &cred));

        // Extra spaces and tabs everywhere whitespace can go.
        let spaced = format!("  L402 \t  {} \t:  {}  ", list.join(" , "), preimage_hex);
        prop_assert!(same(&Credential::parse(&spaced).unwrap(), &cred), "{}", spaced);
        let tabbed = format!("L402\t{body}:{preimage_hex}");
        prop_assert!(same(&Credential::parse(&tabbed).unwrap(), &cred));

        // URL-safe and unpadded macaroons.
        let url: Vec<String> = list.iter().map(|m| unpadded(&url_safe(m))).collect();
        let value = format!("L402 {}:{}", url.join(","), preimage_hex);
        prop_assert!(same(&Credential::parse(&value).unwrap(), &cred));

        // Found among other Authorization values.
        let values: Vec<&[u8]> = vec![b"Bearer abc.def.ghi", header.as_bytes(), b"Basic dXNlcjpwYXNz"];
        let found = Credential::from_headers(values).unwrap().unwrap();
        prop_assert!(same(&found, &cred));
    }

    #[test]
    fn credential_debug_never_shows_the_preimage(cred in credential()) {
        let hex = cred.preimage.to_hex();
        for text in [format!("{cred:?}"), format!("{cred:#?}")] {
            prop_assert!(!text.contains(&hex));
            prop_assert!(!text.contains(&hex.to_uppercase()));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Challenges.

proptest! {
    #[test]
    fn challenges_round_trip_in_every_form_servers_send(
        macaroon in any_macaroon(),
        other in any_macaroon(),
        invoice in invoice(),
        other_invoice in invoice(),
    ) {
        let challenge = Challenge::new(macaroon.clone(), invoice.clone());
        let b64 = macaroon.to_base64();

        let header = challenge.to_header_value();
        prop_assert_eq!(&header, &format!("L402 macaroon=\"{b64}\", invoice=\"{invoice}\""));
        prop_assert_eq!(Challenge::parse([header.as_str()]).unwrap(), challenge.clone());

        let v2026 = challenge.to_header_value_v2026();
        prop_assert_eq!(&v2026, &format!("L402 version=\"0\", token=\"{b64}\", invoice=\"{invoice}\""));
        let parsed = Challenge::parse([v2026.as_str()]).unwrap();
        prop_assert_eq!(&parsed.macaroon, &macaroon);
        prop_assert_eq!(&parsed.invoice, &invoice);
        prop_assert_eq!(parsed.version.as_deref(), Some("0"));
        prop_assert_eq!(parsed.scheme, Scheme::L402);

        let forms = [
            // Other schemes before and after, in one header value.
            format!("Bearer realm=\"x\", {header}, Basic realm=\"y\""),
            format!("Bearer realm=\"x\", {v2026}, Basic realm=\"y\""),
            format!("Negotiate, Bearer, {header}"),
            // Unquoted values.
            format!("L402 macaroon={b64}, invoice={invoice}"),
            format!("L402 token={b64}, invoice={invoice}"),
            format!("L402 macaroon={}, invoice={invoice}", unpadded(&url_safe(&b64))),
            // Parameter names and scheme in another case.
            format!("L402 MACAROON=\"{b64}\", Invoice=\"{invoice}\""),
            format!("l402 Macaroon=\"{b64}\", INVOICE=\"{invoice}\""),
            // Unknown parameters around and between, odd spacing.
            format!("L402 realm=\"api\", macaroon=\"{b64}\", charset=UTF-8, invoice=\"{invoice}\", amount=21"),
            format!("L402   macaroon = \"{b64}\" ,invoice=\"{invoice}\"  "),
            // Invoice first.
            format!("L402 invoice=\"{invoice}\", macaroon=\"{b64}\""),
        ];
        for form in &forms {
            let parsed = Challenge::parse([form.as_str()]);
            prop_assert!(parsed.is_ok(), "{} -> {:?}", form, parsed);
            let parsed = parsed.unwrap();
            prop_assert_eq!(&parsed.macaroon, &macaroon, "{}", form);
            prop_assert_eq!(&parsed.invoice, &invoice, "{}", form);
            prop_assert_eq!(parsed.scheme, Scheme::L402, "{}", form);
        }

        // Split across several header values, an LSAT one first: L402 is preferred.
        let lsat = format!(
            "LSAT macaroon=\"{}\", invoice=\"{other_invoice}\"",
            other.to_base64()
        );
        let values = [lsat.as_str(), "Basic realm=\"y\"", header.as_str()];
        let parsed = Challenge::parse(values).unwrap();
        prop_assert_eq!(&parsed, &challenge);
        // Both in one value, LSAT first: still L402.
        let joined = format!("{lsat}, {header}");
        prop_assert_eq!(Challenge::parse([joined.as_str()]).unwrap(), challenge.clone());
        // LSAT alone is used, with its scheme.
        let parsed = Challenge::parse([lsat.as_str(), "Bearer"]).unwrap();
        prop_assert_eq!(parsed.scheme, Scheme::Lsat);
        prop_assert_eq!(&parsed.macaroon, &other);
        prop_assert_eq!(&parsed.invoice, &other_invoice);
    }
}

// ---------------------------------------------------------------------------------------------
// Mint, then verify.

fn ring_for(key: [u8; 32]) -> KeyRing {
    KeyRing::single(RootKey::new(key))
}

proptest! {
    #[test]
    fn minted_tokens_verify_for_their_route_and_time_only(
        key in any::<[u8; 32]>(),
        preimage in any::<[u8; 32]>(),
        wrong_preimage in any::<[u8; 32]>(),
        route in route_id(),
        other_route in route_id(),
        valid_until in 1u64..,
        before in any::<u64>(),
        after in any::<u64>(),
    ) {
        let ring = ring_for(key);
        let payment_hash = PaymentHash(Sha256::digest(preimage).into());
        let macaroon = ring
            .mint(&MintRequest { payment_hash, route: &route, valid_until, conditions: &[] })
            .unwrap();
        let (key_id, _) = ring.current().unwrap();
        prop_assert_eq!(macaroon.location(), Some(key_id.as_bytes()));
        let identifier = Identifier::decode(macaroon.identifier()).unwrap();
        prop_assert_eq!(identifier.payment_hash, payment_hash);
        let texts: Vec<String> = macaroon
            .caveats()
            .iter()
            .map(|c| String::from_utf8(c.id.clone()).unwrap())
            .collect();
        prop_assert_eq!(
            texts,
            vec![format!("services={route}:0"), format!("{route}_valid_until={valid_until}")]
        );

        // Through the header, as a client sends it.
        let header = Credential::new(macaroon.clone(), preimage).to_header_value();
        let now = before % valid_until;
        let verified = ring
            .verify_header(&header, &Request { route: &route, now, conditions: &NoConditions })
            .unwrap();
        prop_assert_eq!(verified.payment_hash, payment_hash);
        prop_assert_eq!(verified.token_id, identifier.token_id);
        prop_assert_eq!(verified.key_id, key_id);
        prop_assert_eq!(verified.valid_until, Some(valid_until));
        prop_assert_eq!(verified.capabilities, None);

        // At or after its expiry.
        let late = valid_until.saturating_add(after % 1_000_000);
        let err = ring
            .verify_header(&header, &Request { route: &route, now: late, conditions: &NoConditions })
            .unwrap_err();
        prop_assert!(
            matches!(err, VerifyError::Caveat(CaveatFailure::Expired { valid_until: v }) if v == valid_until),
            "{:?}", err
        );

        // For another route.
        if other_route != route {
            let err = ring
                .verify_header(&header, &Request { route: &other_route, now, conditions: &NoConditions })
                .unwrap_err();
            prop_assert!(matches!(err, VerifyError::Caveat(CaveatFailure::WrongRoute { .. })), "{:?}", err);
        }

        // With a preimage that does not pay it.
        if wrong_preimage != preimage {
            let cred = Credential::new(macaroon.clone(), wrong_preimage);
            let err = ring
                .verify(&cred, &Request { route: &route, now, conditions: &NoConditions })
                .unwrap_err();
            prop_assert_eq!(err, VerifyError::BadPreimage);
        }

        // Under another key.
        let other_ring = ring_for(key.map(|b| b ^ 0xa5));
        let err = other_ring
            .verify_header(&header, &Request { route: &route, now, conditions: &NoConditions })
            .unwrap_err();
        prop_assert!(matches!(err, VerifyError::UnknownKey(_)), "{:?}", err);
    }

    #[test]
    fn minted_route_conditions_are_checked_by_the_route(
        key in any::<[u8; 32]>(),
        preimage in any::<[u8; 32]>(),
        route in route_id(),
        name in condition_name(),
        value in "\\P{Cc}{0,30}",
        satisfied in any::<bool>(),
    ) {
        let ring = ring_for(key);
        let payment_hash = PaymentHash(Sha256::digest(preimage).into());
        let conditions = [(name.as_str(), value.as_str())];
        let macaroon = ring
            .mint(&MintRequest { payment_hash, route: &route, valid_until: 2_000_000_000, conditions: &conditions })
            .unwrap();
        prop_assert_eq!(
            Caveat::parse(&macaroon.caveats()[2].id).unwrap(),
            Caveat::Condition { service: route.clone(), name: name.clone(), value: value.clone() }
        );
        let judge = |n: &str, v: &str| (n == name && v == value).then_some(satisfied);
        let result = ring.verify(
            &Credential::new(macaroon, preimage),
            &Request { route: &route, now: 1_900_000_000, conditions: &judge },
        );
        if satisfied {
            prop_assert!(result.is_ok(), "{:?}", result);
        } else {
            prop_assert!(matches!(result, Err(VerifyError::Caveat(CaveatFailure::Refused { .. }))), "{:?}", result);
        }
    }
}
