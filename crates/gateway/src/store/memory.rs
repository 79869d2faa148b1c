//! The in-memory spent set: for tests, benchmarks and single-process gateways that may forget
//! spent tokens on restart.
//!
//! Kept answers live beside the spent entries, bounded in bytes ([`MemoryStore::with_keep_limit`],
//! 64 MiB by default): past the bound the oldest kept answers go first, their spent entries stay.
//! The ledger's counts are kept until pruned, its payments up to [`MEMORY_PAYMENTS`] (the oldest
//! go first).

use plannt_l402::PaymentHash;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{Claim, Keep, Lookup, Quick, SpentStore, StoreError, Ticket, short};
use crate::ledger::{
    Event, LedgerBatch, LedgerRead, MEMORY_PAYMENTS, Payment, Tally, hour_in, merge_tallies,
};

/// One shard: spent hashes (the first 16 bytes of each, with `until` in unix seconds, 20 bytes
/// an entry) and the few claims in flight (whole hashes, with their tickets).
#[derive(Default)]
struct Shard {
    spent: HashMap<[u8; 16], u32, Quick>,
    pending: HashMap<PaymentHash, (Ticket, u64), Quick>,
}

/// A spent set in a sharded hash map.
///
/// Committed tokens are kept by the first 16 bytes of their payment hash: two payment hashes
/// sharing them (a chance of one in 2^64 even among billions of tokens) would only make the
/// later token refused as spent, which fails closed.
pub struct MemoryStore {
    shards: Vec<Mutex<Shard>>,
    kept: Mutex<Kept>,
    ledger: Mutex<MemoryLedger>,
}

/// The ledger: counts by hour, route, event and detail; payments oldest first.
#[derive(Default)]
struct MemoryLedger {
    counts: HashMap<(u64, String, Event, String), (u64, u64)>,
    payments: VecDeque<Payment>,
}

/// The kept answers of every shard, oldest first in `order`, at most `limit` bytes in all.
#[derive(Default)]
struct Kept {
    answers: HashMap<PaymentHash, KeptEntry, Quick>,
    /// Hashes in the order they were kept, with the sequence number of that keeping: an entry
    /// whose number no longer matches was replaced or dropped since.
    order: VecDeque<(PaymentHash, u64)>,
    bytes: usize,
    limit: usize,
    next: u64,
}

struct KeptEntry {
    sealed: Vec<u8>,
    until: u64,
    seq: u64,
}

/// What an entry costs beyond its sealed bytes (its slot in the map and the order, the vector's
/// header and the allocator's rounding), counted against the limit so that many small answers
/// cannot hold much more memory than it says.
const ENTRY_OVERHEAD: usize = 128;

impl Kept {
    fn insert(&mut self, hash: PaymentHash, keep: Keep) {
        self.remove(&hash);
        if keep.sealed.len() + ENTRY_OVERHEAD > self.limit {
            return;
        }
        let seq = self.next;
        self.next += 1;
        self.bytes += keep.sealed.len() + ENTRY_OVERHEAD;
        self.order.push_back((hash, seq));
        self.answers.insert(
            hash,
            KeptEntry {
                sealed: keep.sealed,
                until: keep.until,
                seq,
            },
        );
        while self.bytes > self.limit {
            let Some((oldest, seq)) = self.order.pop_front() else {
                break;
            };
            if self.answers.get(&oldest).is_some_and(|e| e.seq == seq) {
                self.remove(&oldest);
            }
        }
    }

    fn remove(&mut self, hash: &PaymentHash) {
        if let Some(entry) = self.answers.remove(hash) {
            self.bytes -= entry.sealed.len() + ENTRY_OVERHEAD;
        }
    }

    fn purge(&mut self, now: u64) {
        let expired: Vec<PaymentHash> = self
            .answers
            .iter()
            .filter(|(_, e)| e.until < now)
            .map(|(h, _)| *h)
            .collect();
        for hash in expired {
            self.remove(&hash);
        }
        let answers = &self.answers;
        self.order
            .retain(|(hash, seq)| answers.get(hash).is_some_and(|e| e.seq == *seq));
    }
}

const SHARDS: usize = 64;

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_keep_limit(Self::DEFAULT_KEEP_LIMIT)
    }
}

impl MemoryStore {
    /// The default bound on the bytes of kept answers: 64 MiB.
    pub const DEFAULT_KEEP_LIMIT: usize = 64 * 1024 * 1024;

    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty set that holds at most `bytes` of kept answers, each counted with a fixed
    /// overhead for its entry (0: keeps none).
    pub fn with_keep_limit(bytes: usize) -> Self {
        MemoryStore {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            kept: Mutex::new(Kept {
                limit: bytes,
                ..Kept::default()
            }),
            ledger: Mutex::new(MemoryLedger::default()),
        }
    }

    /// The bytes of kept answers held now, their entries' overhead included.
    pub fn kept_bytes(&self) -> usize {
        self.kept.lock().expect("store lock").bytes
    }

    fn shard(&self, hash: &PaymentHash) -> &Mutex<Shard> {
        // The last byte picks the shard, the first ones hash within it: independent bits.
        &self.shards[hash.0[31] as usize % SHARDS]
    }
}

fn until32(until: u64) -> u32 {
    u32::try_from(until).unwrap_or(u32::MAX)
}

#[async_trait]
impl SpentStore for MemoryStore {
    async fn claim(&self, payment_hash: &PaymentHash, until: u64) -> Result<Claim, StoreError> {
        let mut shard = self.shard(payment_hash).lock().expect("store lock");
        if shard.spent.contains_key(&short(payment_hash))
            || shard.pending.contains_key(payment_hash)
        {
            return Ok(Claim::Spent);
        }
        let ticket = Ticket::new();
        shard.pending.insert(*payment_hash, (ticket, until));
        Ok(Claim::Won(ticket))
    }

    async fn commit(
        &self,
        payment_hash: &PaymentHash,
        _ticket: &Ticket,
        until: u64,
        keep: Option<Keep>,
    ) -> Result<(), StoreError> {
        // Under the shard's lock: a lookup sees the commit and its kept answer together.
        let mut shard = self.shard(payment_hash).lock().expect("store lock");
        shard.pending.remove(payment_hash);
        shard.spent.insert(short(payment_hash), until32(until));
        if let Some(keep) = keep {
            self.kept
                .lock()
                .expect("store lock")
                .insert(*payment_hash, keep);
        }
        Ok(())
    }

    async fn lookup(&self, payment_hash: &PaymentHash, now: u64) -> Result<Lookup, StoreError> {
        let shard = self.shard(payment_hash).lock().expect("store lock");
        if shard.pending.contains_key(payment_hash) {
            return Ok(Lookup::Pending);
        }
        if !shard.spent.contains_key(&short(payment_hash)) {
            return Ok(Lookup::Unknown);
        }
        let kept = self.kept.lock().expect("store lock");
        Ok(match kept.answers.get(payment_hash) {
            Some(entry) if entry.until >= now => Lookup::Kept(entry.sealed.clone()),
            _ => Lookup::Committed,
        })
    }

    async fn release(&self, payment_hash: &PaymentHash, ticket: &Ticket) -> Result<(), StoreError> {
        let mut shard = self.shard(payment_hash).lock().expect("store lock");
        if shard
            .pending
            .get(payment_hash)
            .is_some_and(|(t, _)| t == ticket)
        {
            shard.pending.remove(payment_hash);
        }
        Ok(())
    }

    async fn purge(&self, now: u64) -> Result<u64, StoreError> {
        let mut purged = 0;
        for shard in &self.shards {
            let mut shard = shard.lock().expect("store lock");
            let before = shard.spent.len() + shard.pending.len();
            shard.spent.retain(|_, until| u64::from(*until) >= now);
            shard.pending.retain(|_, (_, until)| *until >= now);
            purged += (before - shard.spent.len() - shard.pending.len()) as u64;
        }
        self.kept.lock().expect("store lock").purge(now);
        Ok(purged)
    }

    async fn len(&self) -> Result<u64, StoreError> {
        Ok(self
            .shards
            .iter()
            .map(|s| {
                let s = s.lock().expect("store lock");
                (s.spent.len() + s.pending.len()) as u64
            })
            .sum())
    }

    async fn health(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn record(&self, batch: &LedgerBatch) -> Result<(), StoreError> {
        let mut ledger = self.ledger.lock().expect("store lock");
        for t in &batch.tallies {
            let key = (t.hour, t.route.clone(), t.event, t.detail.clone());
            let entry = ledger.counts.entry(key).or_default();
            entry.0 += t.count;
            entry.1 += t.sats;
        }
        for payment in &batch.payments {
            if ledger.payments.len() >= MEMORY_PAYMENTS {
                ledger.payments.pop_front();
            }
            ledger.payments.push_back(payment.clone());
        }
        Ok(())
    }

    async fn ledger(
        &self,
        since: u64,
        until: u64,
        recent: usize,
    ) -> Result<LedgerRead, StoreError> {
        let ledger = self.ledger.lock().expect("store lock");
        let tallies = ledger
            .counts
            .iter()
            .filter(|((hour, ..), _)| hour_in(*hour, since, until))
            .map(|((hour, route, event, detail), (count, sats))| Tally {
                hour: *hour,
                route: route.clone(),
                event: *event,
                detail: detail.clone(),
                count: *count,
                sats: *sats,
            });
        Ok(LedgerRead {
            tallies: merge_tallies(tallies),
            payments: ledger
                .payments
                .iter()
                .rev()
                .filter(|p| p.at >= since && p.at < until)
                .take(recent)
                .cloned()
                .collect(),
        })
    }

    async fn prune_ledger(&self, before: u64) -> Result<u64, StoreError> {
        let mut ledger = self.ledger.lock().expect("store lock");
        let was = ledger.counts.len() + ledger.payments.len();
        ledger
            .counts
            .retain(|(hour, ..), _| hour.saturating_add(crate::ledger::HOUR) > before);
        ledger.payments.retain(|p| p.at >= before);
        Ok((was - ledger.counts.len() - ledger.payments.len()) as u64)
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}
