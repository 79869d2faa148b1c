//! The in-memory spent set: for tests, benchmarks and single-process gateways that may forget
//! spent tokens on restart.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{Claim, SpentStore, StoreError, Ticket};

#[derive(Clone, Copy)]
struct Entry {
    until: u64,
    /// The ticket of a pending claim; `None` once committed.
    pending: Option<Ticket>,
}

/// A spent set in a sharded hash map.
pub struct MemoryStore {
    shards: Vec<Mutex<HashMap<[u8; 32], Entry>>>,
}

const SHARDS: usize = 64;

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl MemoryStore {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    fn shard(&self, hash: &[u8; 32]) -> &Mutex<HashMap<[u8; 32], Entry>> {
        // Payment hashes are uniformly random: their first byte spreads the load.
        &self.shards[hash[0] as usize % SHARDS]
    }
}

#[async_trait]
impl SpentStore for MemoryStore {
    async fn claim(&self, payment_hash: &[u8; 32], until: u64) -> Result<Claim, StoreError> {
        let mut shard = self.shard(payment_hash).lock().expect("store lock");
        if shard.contains_key(payment_hash) {
            return Ok(Claim::Spent);
        }
        let ticket = Ticket::new();
        shard.insert(
            *payment_hash,
            Entry {
                until,
                pending: Some(ticket),
            },
        );
        Ok(Claim::Won(ticket))
    }

    async fn commit(
        &self,
        payment_hash: &[u8; 32],
        _ticket: &Ticket,
        until: u64,
    ) -> Result<(), StoreError> {
        let mut shard = self.shard(payment_hash).lock().expect("store lock");
        shard.insert(
            *payment_hash,
            Entry {
                until,
                pending: None,
            },
        );
        Ok(())
    }

    async fn release(&self, payment_hash: &[u8; 32], ticket: &Ticket) -> Result<(), StoreError> {
        let mut shard = self.shard(payment_hash).lock().expect("store lock");
        if shard
            .get(payment_hash)
            .is_some_and(|e| e.pending == Some(*ticket))
        {
            shard.remove(payment_hash);
        }
        Ok(())
    }

    async fn purge(&self, now: u64) -> Result<u64, StoreError> {
        let mut purged = 0;
        for shard in &self.shards {
            let mut shard = shard.lock().expect("store lock");
            let before = shard.len();
            shard.retain(|_, e| e.until >= now);
            purged += (before - shard.len()) as u64;
        }
        Ok(purged)
    }

    async fn len(&self) -> Result<u64, StoreError> {
        Ok(self
            .shards
            .iter()
            .map(|s| s.lock().expect("store lock").len() as u64)
            .sum())
    }

    async fn health(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}
