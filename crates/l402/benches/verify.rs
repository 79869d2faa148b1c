//! Verifying one credential end to end against its floor: the same HMAC-SHA256 calls and one
//! SHA-256 with nothing else around them.
//!
//! `cargo bench -p plannt-l402 --bench verify`; the numbers go into `docs/benchmarks.md`.

// criterion_group! writes a public function that cannot carry a doc comment.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hmac::{Hmac, Mac};
use plannt_l402::{Credential, KeyRing, MintRequest, NoConditions, PaymentHash, Request, RootKey};
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
}

criterion_group!(benches, bench);
criterion_main!(benches);
