//! One suite that every spent store must pass.

use std::sync::Arc;

use super::{Claim, SpentStore, Ticket};

fn hash(n: u8) -> [u8; 32] {
    let mut h = [0u8; 32];
    h[0] = n;
    h[31] = n.wrapping_mul(7);
    h
}

async fn won(store: &dyn SpentStore, n: u8, until: u64) -> Ticket {
    match store.claim(&hash(n), until).await.unwrap() {
        Claim::Won(ticket) => ticket,
        Claim::Spent => panic!("claim {n} should have won"),
    }
}

/// Runs the whole suite against a fresh, empty store.
pub(crate) async fn suite(store: Arc<dyn SpentStore>) {
    let far = 4_000_000_000;
    // Claim once, then spent.
    let ticket = won(&*store, 1, far).await;
    assert_eq!(store.claim(&hash(1), far).await.unwrap(), Claim::Spent);
    // A stranger's release changes nothing; the owner's gives the token back.
    store.release(&hash(1), &Ticket::new()).await.unwrap();
    assert_eq!(store.claim(&hash(1), far).await.unwrap(), Claim::Spent);
    store.release(&hash(1), &ticket).await.unwrap();
    let ticket = won(&*store, 1, far).await;
    // Commit makes it stick; release after commit changes nothing.
    store.commit(&hash(1), &ticket, far).await.unwrap();
    store.release(&hash(1), &ticket).await.unwrap();
    assert_eq!(store.claim(&hash(1), far).await.unwrap(), Claim::Spent);
    // Releasing what was never claimed is harmless.
    store.release(&hash(2), &Ticket::new()).await.unwrap();
    assert_eq!(store.len().await.unwrap(), 1);

    // Purge drops only what expired.
    let now = plannt_lightning::invoice::unix_now();
    let ticket = won(&*store, 3, now + 2).await;
    store.commit(&hash(3), &ticket, now + 2).await.unwrap();
    assert_eq!(store.len().await.unwrap(), 2);
    store.purge(now + 3).await.unwrap();
    assert_eq!(store.len().await.unwrap(), 1);
    assert_eq!(store.claim(&hash(1), far).await.unwrap(), Claim::Spent);

    // Exactly one of many concurrent claims wins.
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.claim(&hash(9), far).await.unwrap() })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        if matches!(task.await.unwrap(), Claim::Won(_)) {
            wins += 1;
        }
    }
    assert_eq!(wins, 1);
    store.health().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_passes_the_suite() {
    suite(Arc::new(super::MemoryStore::new())).await;
}
