//! Invoices issued per second by the dev network: build, sign, re-parse and signature-check.
//!
//! `cargo bench -p plannt-lightning --bench dev`; the numbers go into `docs/benchmarks.md`.

// criterion_group! writes a public function that cannot carry a doc comment.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use plannt_lightning::InvoiceRequest;
use plannt_lightning::dev::DevNetwork;

fn bench(c: &mut Criterion) {
    let network = DevNetwork::ephemeral(1_000_000_000_000);
    let request = InvoiceRequest {
        amount_sats: 21,
        memo: "GET /v1/demo via Plannt".into(),
        expiry_secs: 600,
    };
    let mut group = c.benchmark_group("dev");
    group.throughput(Throughput::Elements(1));
    group.bench_function("create_invoice", |b| {
        b.iter(|| network.create_invoice(black_box(&request)).unwrap())
    });
    group.bench_function("pay", |b| {
        b.iter_batched(
            || network.create_invoice(&request).unwrap().bolt11,
            |bolt11| network.pay("bench", black_box(&bolt11)).unwrap(),
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
