//! Claims per second of each spent store: one claim at a time, and 64 tasks claiming at once
//! (the SQLite store shares one fsync among the claims queued together).
//!
//! `cargo bench -p plannt-gateway --bench stores`; the numbers go into `docs/benchmarks.md`.
//! The Redis group starts a `redis-server` of its own on a free loopback port, and is skipped
//! (with a notice) where none is installed.

// criterion_group! writes a public function that cannot carry a doc comment.
#![allow(missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use plannt_gateway::l402::PaymentHash;
use plannt_gateway::store::{Claim, MemoryStore, RedisStore, SpentStore, SqliteStore};
use tokio::runtime::Runtime;

/// Far in the future: nothing expires during a run.
const FAR: u64 = 4_000_000_000;
/// Tasks claiming at once in the concurrent measurement.
const TASKS: u64 = 64;

/// A payment hash no earlier claim of this run used.
fn fresh(counter: &AtomicU64) -> PaymentHash {
    let n = counter.fetch_add(1, Ordering::Relaxed);
    let mut hash = [0xa5u8; 32];
    hash[..8].copy_from_slice(&n.to_be_bytes());
    PaymentHash(hash)
}

async fn claim_fresh(store: &dyn SpentStore, counter: &AtomicU64) {
    let claim = store.claim(&fresh(counter), FAR).await.unwrap();
    assert!(matches!(claim, Claim::Won(_)), "a fresh hash is always won");
}

fn bench_store(c: &mut Criterion, runtime: &Runtime, store: Arc<dyn SpentStore>) {
    let counter = Arc::new(AtomicU64::new(0));
    let mut group = c.benchmark_group(format!("store/{}", store.name()));
    group.throughput(Throughput::Elements(1));
    group.bench_function("claim", |b| {
        b.iter(|| runtime.block_on(claim_fresh(&*store, &counter)))
    });
    group.bench_function(format!("claim_{TASKS}_tasks"), |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            runtime.block_on(async {
                let tasks: Vec<_> = (0..TASKS)
                    .map(|task| {
                        let (store, counter) = (store.clone(), counter.clone());
                        // Task t claims iterations t, t + TASKS, …: `iters` claims in all.
                        let mine = iters / TASKS + u64::from(task < iters % TASKS);
                        tokio::spawn(async move {
                            for _ in 0..mine {
                                claim_fresh(&*store, &counter).await;
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.unwrap();
                }
            });
            started.elapsed()
        })
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    bench_store(c, &runtime, Arc::new(MemoryStore::new()));

    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(dir.path().join("spent.sqlite")).unwrap();
    bench_store(c, &runtime, Arc::new(sqlite));

    // Without redis-server the Redis group is skipped, with a notice.
    if let Some(server) = plannt_testkit::Redis::start() {
        let store = runtime
            .block_on(RedisStore::connect(&server.url()))
            .unwrap();
        bench_store(c, &runtime, Arc::new(store));
    }
}

criterion_group!(stores, benches);
criterion_main!(stores);
