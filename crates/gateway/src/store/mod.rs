//! Spent-token stores: the only state of the gateway, a set of payment hashes.
//!
//! A request with a valid token first **claims** its payment hash: exactly one of any number of
//! concurrent claims wins. The request is then forwarded. If the upstream never got it (or, for
//! safe and idempotent methods, failed) the claim is **released** and the same token may be used
//! again; otherwise it is **committed** and the token is spent for good.
//!
//! A claim that is neither committed nor released (the gateway died mid-request) does not strand
//! the payment: it lapses after [`PENDING_TTL`] (Redis) or with the process (SQLite, memory),
//! because its response never reached the client. A committed entry lives until the expiry the
//! token was minted with, after which every macaroon of that payment
//! hash fails verification anyway and the entry may be purged: the set is bounded by request
//! rate × token lifetime. Never until an expiry the holder chose: a holder may append an
//! earlier one to a copy of the macaroon and keep the original.
//!
//! Three stores implement [`SpentStore`]:
//! - [`MemoryStore`]: a hash map, for tests, benchmarks and gateways that may forget spent
//!   tokens on restart.
//! - [`SqliteStore`]: one file, the default. A commit (with its kept answer) is durable before it
//!   returns, so a token that got a response is never accepted again after a crash; claims in
//!   flight live in memory, since one process holds the file at a time.
//! - [`RedisStore`]: one set shared by several replicas, in one Redis, a Redis Cluster or the
//!   primary Sentinels name; pending claims lapse after [`PENDING_TTL`], committed ones at their
//!   `until`.
//!
//! **Kept answers.** A commit may carry the answer it bought, sealed ([`crate::keep`]), with
//! the time it may be given again until: the store writes it with the commit, in the same
//! durable write, so an answer is never sent before the commit and its kept copy are both
//! stored. [`SpentStore::lookup`] tells a retry of a spent hash what there is: a claim still in
//! flight, a kept answer, a commit without one, or nothing. Stores hold kept answers for a short
//! while only (the gateway's `keep_answer_secs`), and never past the spent entry.
//!
//! **The earnings ledger.** Each store also keeps the ledger of payments and refusals
//! ([`crate::ledger`]), written in batches off the paid path ([`SpentStore::record`]) and pruned
//! after its retention.
//!
//! Every store fails with [`StoreError`] rather than guess, and the gateway then fails closed.
//!
//! The balances of prepaid sessions are a second kind of state, in [`sessions`]
//! ([`sessions::SessionStore`]: memory, SQLite or Redis).

mod memory;
mod redis;
mod redis_batch;
mod redis_sessions;
pub mod sessions;
mod sqlite;
mod sqlite_sessions;

use plannt_l402::PaymentHash;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::ledger::{LedgerBatch, LedgerRead};

pub use self::memory::MemoryStore;
pub use self::redis::{CLOCK_MARGIN, RedisOptions, RedisStore, RedisTopology, WaitReplicas};
pub use self::sqlite::{SqliteStore, SqliteSync, read_ledger as read_sqlite_ledger};

/// Hashes a key by its first eight bytes. Only payment hashes of tokens whose signature verified
/// reach a store, and those come from the Lightning backend's random preimages: uniformly random
/// already, and not chosen by a client.
#[derive(Default)]
struct FirstBytes(u64);

impl Hasher for FirstBytes {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut word = [0u8; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        self.0 ^= u64::from_le_bytes(word);
    }
}

/// The hasher of the in-memory sets keyed by payment hash.
type Quick = BuildHasherDefault<FirstBytes>;

/// A payment hash's first 16 bytes: the key of an in-memory set of spent hashes. Two hashes of
/// live tokens sharing them is a 2^-128 chance per pair; it would refuse a token, never accept
/// one twice.
fn short(hash: &PaymentHash) -> [u8; 16] {
    let mut out = [0u8; 16];
    out.copy_from_slice(&hash.0[..16]);
    out
}

/// How long an uncommitted claim holds in a shared store before it lapses.
pub const PENDING_TTL: Duration = Duration::from_secs(300);

/// The outcome of a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This request holds the token now: commit or release it with this ticket.
    Won(Ticket),
    /// The token was spent, or another request holds it.
    Spent,
}

/// Names one claim, so a release removes only its own claim and never a later one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ticket(pub [u8; 16]);

impl Ticket {
    /// A fresh ticket, unlike any other this process or (but for a 2^-64 chance) another one
    /// makes.
    pub fn new() -> Self {
        Ticket(crate::unique::unique16())
    }

    /// The ticket as 32 hex digits (how the Redis store writes it).
    pub fn to_hex(&self) -> String {
        let mut hex = [0u8; 32];
        hex::encode_to_slice(self.0, &mut hex).expect("16 bytes are 32 hex digits");
        // hex::encode collects chars one at a time; a claim writes its ticket once.
        String::from_utf8(hex.to_vec()).expect("hex digits are ASCII")
    }
}

impl Default for Ticket {
    fn default() -> Self {
        Self::new()
    }
}

/// A sealed answer to keep with a commit ([`crate::keep`]): opaque bytes to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keep {
    /// The sealed answer.
    pub sealed: Vec<u8>,
    /// Until when (unix seconds) it may be given again; the store may drop it after.
    pub until: u64,
}

/// What the store holds for a payment hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// A claim is in flight: neither committed nor released yet.
    Pending,
    /// Committed, with this sealed answer (not yet past its `until`).
    Kept(Vec<u8>),
    /// Committed, with no kept answer (none was kept, or it expired).
    Committed,
    /// Nothing: never claimed, released, or purged.
    Unknown,
}

/// A store that cannot answer, and why. The gateway then refuses paid requests (fails closed)
/// with 503.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite failed on the file: not a database, corrupt, locked, read-only, disk full…
    #[error("SQLite: {doing} {path}: {source}{hint}")]
    Sqlite {
        /// What was being done: `cannot open`, `cannot write to`, …
        doing: &'static str,
        /// The file.
        path: String,
        /// What to do about it, when that is known.
        hint: &'static str,
        /// SQLite's error.
        #[source]
        source: Arc<rusqlite::Error>,
    },
    /// Another process holds the SQLite file.
    #[error(
        "the spent set {path} is in use by another process (it holds {lock}): stop it, or give this gateway its own file"
    )]
    InUse {
        /// The file.
        path: String,
        /// Its lock file.
        lock: String,
    },
    /// A file, folder or thread the store needs could not be made.
    #[error("{doing} {path}: {source}")]
    Io {
        /// What was being done.
        doing: &'static str,
        /// The file or folder.
        path: String,
        /// The error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The store's worker has stopped: the gateway is shutting down.
    #[error("the SQLite worker for {0} has stopped")]
    Stopped(String),
    /// A Redis URL that cannot be used.
    #[error("bad Redis URL {url}: {why}")]
    BadUrl {
        /// The URL, without its password.
        url: String,
        /// Why, and what is expected.
        why: String,
    },
    /// Redis could not be reached.
    #[error("cannot connect to Redis at {url}: {why}")]
    Unreachable {
        /// The URL, without its password.
        url: String,
        /// Why.
        why: String,
    },
    /// Redis failed a command.
    #[error("Redis at {url} failed {what}: {source}")]
    Redis {
        /// The URL, without its password.
        url: String,
        /// The command, for people: `a claim (SET NX)`.
        what: &'static str,
        /// Redis's error.
        #[source]
        source: Arc<::redis::RedisError>,
    },
    /// Redis did not answer a command in time.
    #[error("Redis at {url} did not answer {what} within {timeout:?}")]
    Timeout {
        /// The URL, without its password.
        url: String,
        /// The command.
        what: &'static str,
        /// The bound.
        timeout: Duration,
    },
    /// The store answered something it should not have.
    #[error("{0}")]
    Unexpected(String),
    /// A store setting that cannot be used, and why.
    #[error("{0}")]
    Setting(String),
    /// Fewer Redis replicas than required acknowledged a claim or commit in time: a failover
    /// now could lose it, so it does not count.
    #[error(
        "Redis at {url}: {acked} of {wanted} replicas acknowledged {what} within {timeout:?}: \
         check the replicas' links to the primary, or lower the replicas to wait for"
    )]
    NotReplicated {
        /// The URL, without its password.
        url: String,
        /// The command.
        what: &'static str,
        /// How many replicas acknowledged it.
        acked: u64,
        /// How many were required.
        wanted: u32,
        /// How long Redis waited.
        timeout: Duration,
    },
}

/// The spent set. Keys are payment hashes; `until` (unix seconds) is when the entry may go: the
/// token's minted expiry.
#[async_trait]
pub trait SpentStore: Send + Sync + 'static {
    /// Atomically claims a payment hash: of concurrent claims exactly one wins.
    async fn claim(&self, payment_hash: &PaymentHash, until: u64) -> Result<Claim, StoreError>;
    /// Marks a won claim as spent for good, until `until`, with the answer it bought when
    /// `keep` is given: both in one durable write.
    async fn commit(
        &self,
        payment_hash: &PaymentHash,
        ticket: &Ticket,
        until: u64,
        keep: Option<Keep>,
    ) -> Result<(), StoreError>;
    /// What the store holds for a payment hash, a kept answer only while `now` is not past its
    /// `until`.
    async fn lookup(&self, payment_hash: &PaymentHash, now: u64) -> Result<Lookup, StoreError>;
    /// Gives a won claim back, so the token can be used again. Removes only this ticket's
    /// pending claim, never a committed one or another request's.
    async fn release(&self, payment_hash: &PaymentHash, ticket: &Ticket) -> Result<(), StoreError>;
    /// Drops entries whose `until` is before `now`; returns how many went.
    async fn purge(&self, now: u64) -> Result<u64, StoreError>;
    /// How many entries the set holds (pending and committed).
    async fn len(&self) -> Result<u64, StoreError>;
    /// Whether the set holds no entry.
    async fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len().await? == 0)
    }
    /// Checks that the store answers.
    async fn health(&self) -> Result<(), StoreError>;
    /// Adds one to the counter `key` (a route's free tier or rate limit for one client and
    /// window, [`crate::quota`]), which lives `window_secs`, and returns its count: shared by
    /// every replica on this store. `None` (the default, memory and SQLite): the store counts
    /// nothing shared, and the paywall counts in its own process.
    async fn count_request(&self, key: &str, window_secs: u64) -> Result<Option<u64>, StoreError> {
        let _ = (key, window_secs);
        Ok(None)
    }
    /// Adds a batch of the earnings ledger ([`crate::ledger`]): its counts to the store's, its
    /// payments to its list. One write: with SQLite it joins the writer's next transaction.
    async fn record(&self, batch: &LedgerBatch) -> Result<(), StoreError>;
    /// The ledger's counts of every hour that overlaps `[since, until)` and the latest `recent`
    /// payments in it, newest first.
    async fn ledger(&self, since: u64, until: u64, recent: usize)
    -> Result<LedgerRead, StoreError>;
    /// Drops the ledger's counts and payments from before `before`; returns how many went.
    async fn prune_ledger(&self, before: u64) -> Result<u64, StoreError>;
    /// A short name: `memory`, `sqlite`, `redis`.
    fn name(&self) -> &'static str;
}

#[cfg(test)]
pub(crate) mod tests;
