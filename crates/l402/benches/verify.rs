//! Verifying one credential end to end against its floor: the same HMAC-SHA256 calls and one
//! SHA-256 with nothing else around them; and beside it an MPP Lightning charge credential
//! (`Authorization: Payment …`) and an x402 `PAYMENT-SIGNATURE`, each for the same route. Then
//! what each dialect's challenge costs a 402: minting it and writing its header value.
//!
//! `cargo bench -p plannt-l402 --bench verify`; the numbers go into `docs/benchmarks.md`.

// criterion_group! writes a public function that cannot carry a doc comment.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hmac::{Hmac, Mac};
use plannt_l402::mpp::{ChallengeKeys, ChargeExpect, ChargeOffer, PaymentCredential};
use plannt_l402::x402::{
    ExactExpect, ExactOffer, PaymentPayload, PaymentRequired, ResourceInfo, TagKeys,
};
use plannt_l402::{
    Challenge, Credential, KeyRing, MintRequest, Network, NoConditions, PaymentHash, Preimage,
    Request, RootKey,
};
use sha2::{Digest, Sha256};

fn bench(c: &mut Criterion) {
    let keys = KeyRing::single(RootKey::new([7; 32]));
    let preimage = [42u8; 32];
    let payment_hash = PaymentHash(Sha256::digest(preimage).into());
    let macaroon = keys
        .mint(&MintRequest {
            payment_hash,
            route: "demo",
            valid_until: 4_000_000_000,
            conditions: &[],
        })
        .unwrap();
    let header = Credential::new(macaroon.clone(), preimage).to_header_value();
    let request = Request {
        route: "demo",
        now: 1_800_000_000,
        conditions: &NoConditions,
    };
    assert!(keys.verify_header(&header, &request).is_ok());

    let mut group = c.benchmark_group("l402");
    group.bench_function("verify_credential", |b| {
        b.iter(|| keys.verify_header(black_box(&header), &request).unwrap())
    });

    // The floor: one HMAC per signature step (identifier and each caveat, the key already
    // derived) and the SHA-256 of the preimage, over the same bytes.
    let derived = [9u8; 32];
    let identifier = macaroon.identifier().to_vec();
    let caveats: Vec<Vec<u8>> = macaroon.caveats().iter().map(|c| c.id.clone()).collect();
    group.bench_function("floor_hmacs_and_sha256", |b| {
        b.iter(|| {
            let mut mac = Hmac::<Sha256>::new_from_slice(black_box(&derived)).unwrap();
            mac.update(black_box(&identifier));
            let mut sig: [u8; 32] = mac.finalize().into_bytes().into();
            for caveat in &caveats {
                let mut mac = Hmac::<Sha256>::new_from_slice(&sig).unwrap();
                mac.update(black_box(caveat));
                sig = mac.finalize().into_bytes().into();
            }
            let hash = PaymentHash(Sha256::digest(black_box(preimage)).into());
            (sig, hash)
        })
    });
    group.finish();

    // The same payment as MPP: a challenge minted for it, the credential a client sends.
    // An invoice of the dev network, 324 characters: the MPP credential echoes it.
    let invoice = "lnbcrt210n1p4s0gz6dq2wpkxzmnwwspp5uheer045dxl5gtsp7m3dsp7ss9e7xvjysffawscenzv0826wlgxssp5g27z7rs9qqp0hw8nsm29edzrgqnpcl4gc0dmvy9qhr8mgq2je63q9qrsgqcqzysxqrrssnp4qt0yta0hlvcls3jqp4a9vm3n9z5psmvmnphmts3fgdt0n6cyngn5cpszy8k2y3fkmcm0vw28cjavd7dnk567e9nspr8pku3dhcjjz4z7p5gzcdjccrk5ys9dapqw3j0wxczrt6a2nszr57we74c527fyy0sqqmgr2uq";
    let mpp_keys = ChallengeKeys::from_ring(&keys);
    let challenge = mpp_keys
        .mint_charge(&ChargeOffer {
            realm: "api.example.com",
            route: "demo",
            amount_sats: 21,
            invoice,
            payment_hash,
            network: Network::Regtest,
            expires_at: 4_000_000_000,
            description: None,
        })
        .unwrap();
    let mpp_header =
        PaymentCredential::charge(&challenge, &Preimage::new(preimage)).to_header_value();
    let expect = ChargeExpect {
        route: "demo",
        price_sats: 21,
        now: 1_800_000_000,
    };
    assert!(mpp_keys.verify_header(&mpp_header, &expect).is_ok());

    // And as x402: the payload naming the invoice (whether it was paid is the node's to say).
    let tag_keys = TagKeys::from_ring(&keys);
    let requirements = tag_keys
        .requirements(&ExactOffer {
            route: "demo",
            amount_msat: 21_000,
            invoice,
            payment_hash,
            network: Network::Regtest,
            max_timeout_seconds: 600,
            valid_until: 4_000_000_000,
        })
        .unwrap();
    let x402_header = PaymentPayload::exact(None, &requirements).encode();
    let x402_expect = ExactExpect {
        route: "demo",
        price_msat: 21_000,
        network: Network::Regtest,
        now: 1_800_000_000,
    };
    assert!(tag_keys.verify_header(&x402_header, &x402_expect).is_ok());

    let mut group = c.benchmark_group("dialects");
    group.bench_function("l402_verify_credential", |b| {
        b.iter(|| keys.verify_header(black_box(&header), &request).unwrap())
    });
    group.bench_function("mpp_verify_credential", |b| {
        b.iter(|| {
            mpp_keys
                .verify_header(black_box(&mpp_header), &expect)
                .unwrap()
        })
    });
    group.bench_function("x402_verify_payload", |b| {
        b.iter(|| {
            tag_keys
                .verify_header(black_box(&x402_header), &x402_expect)
                .unwrap()
        })
    });
    group.finish();

    // What a 402 costs each dialect beyond the invoice: the challenge minted for it and written
    // as its header value.
    let mut group = c.benchmark_group("challenge");
    group.bench_function("l402_mint_and_write", |b| {
        b.iter(|| {
            let macaroon = keys
                .mint(&MintRequest {
                    payment_hash: black_box(payment_hash),
                    route: "demo",
                    valid_until: 4_000_000_000,
                    conditions: &[],
                })
                .unwrap();
            Challenge::new(macaroon, invoice.to_string()).to_header_value()
        })
    });
    group.bench_function("mpp_mint_and_write", |b| {
        b.iter(|| {
            mpp_keys
                .mint_charge(&ChargeOffer {
                    realm: "plannt",
                    route: "demo",
                    amount_sats: 21,
                    invoice: black_box(invoice),
                    payment_hash,
                    network: Network::Regtest,
                    expires_at: 4_000_000_000,
                    description: None,
                })
                .unwrap()
                .to_header_value()
        })
    });
    group.bench_function("x402_offer_and_write", |b| {
        b.iter(|| {
            let offer = tag_keys
                .requirements(&ExactOffer {
                    route: "demo",
                    amount_msat: 21_000,
                    invoice: black_box(invoice),
                    payment_hash,
                    network: Network::Regtest,
                    max_timeout_seconds: 600,
                    valid_until: 4_000_000_000,
                })
                .unwrap();
            let resource = ResourceInfo {
                url: "/v1/demo".to_string(),
                description: Some("The demo answer".to_string()),
                mime_type: None,
            };
            PaymentRequired::new(resource, vec![offer]).encode()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
