//! The earnings ledger: every settled payment (when, route, dialect, sats, payment hash) and
//! every refusal (when, route, reason), kept in the spent store the gateway already uses, for
//! `plannt stats` and the admin API.
//!
//! **Off the paid path.** A paid request never waits for the ledger: [`Ledger::paid`] and
//! [`Ledger::refused`] add to counters in memory (one short lock, no I/O), and the paywall's
//! background task ([`crate::Paywall::spawn_purger`]) hands what gathered to the store every
//! [`LedgerOptions::flush_every`] in one write ([`SpentStore::record`]): with SQLite it joins
//! the writer's next group commit, with Redis it is one pipeline. A paid request thus costs no
//! round trip and no fsync more than before. The price of that: a gateway killed outright loses
//! the ledger entries of its last few seconds (never a spent token: those are committed before
//! the answer goes). A gateway that stops on a signal flushes first.
//!
//! **What is kept.** Counts per hour, per route, per event (`paid` with its dialect, `refused`
//! with its reason, and for prepaid sessions `refunded` and `used`, their detail
//! [`SESSION_DIALECT`]) with the sats of each ([`Tally`]), and one row per payment
//! ([`Payment`]).
//!
//! **Sessions.** A session's deposit and each top-up are payments (dialect [`SESSION_DIALECT`],
//! the sats paid in); a refund paid back is `refunded`, with its sats; each request served from
//! a session is `used`, with the sats it was debited (the metered usage, already paid for by
//! the deposits: not earnings of its own). What a gateway earned is its payments less its
//! refunds ([`Figures::earned_sats`]). Both are dropped after [`LedgerOptions::retention`] (90 days by default); the
//! memory store also keeps at most [`MEMORY_PAYMENTS`] payments, Redis a list of at most
//! [`REDIS_PAYMENTS`].
//!
//! [`Stats::of`] turns what a store returns ([`LedgerRead`]) into the figures people read: per
//! route, per day, per dialect, refusals by reason.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use plannt_l402::{Dialect, PaymentHash};
use serde::{Deserialize, Serialize};

use crate::store::{SpentStore, StoreError};

/// An hour, in seconds: the ledger's counts are per hour.
pub const HOUR: u64 = 3600;
/// A day, in seconds.
pub const DAY: u64 = 86_400;
/// The most payments the memory store keeps (the oldest go first).
pub const MEMORY_PAYMENTS: usize = 10_000;
/// The most payments a Redis store keeps in its list of recent payments.
pub const REDIS_PAYMENTS: usize = 10_000;
/// The most payments held in memory between two flushes (while the store cannot be written,
/// say): past it the oldest are dropped, and counted in the log. Counts are never dropped.
pub const PENDING_PAYMENTS: usize = 100_000;
/// The dialect detail of a prepaid session's deposits, refunds and usage.
pub const SESSION_DIALECT: &str = "mpp-session";
/// How many minutes of live counts the gateway keeps for the dashboard.
pub const LIVE_MINUTES: usize = 60;

/// How the ledger is kept.
#[derive(Debug, Clone)]
pub struct LedgerOptions {
    /// How long counts and payments are kept before they are pruned. Default 90 days.
    pub retention: Duration,
    /// How often what gathered in memory is written to the store. Default 5 s.
    pub flush_every: Duration,
}

impl Default for LedgerOptions {
    fn default() -> Self {
        LedgerOptions {
            retention: Duration::from_secs(90 * DAY),
            flush_every: Duration::from_secs(5),
        }
    }
}

/// What a tally counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    /// A payment settled: its token was spent on an answer. The detail is the dialect.
    Paid,
    /// A request was refused. The detail is the reason (`spent`, `expired`, `rate_limited`, …).
    Refused,
    /// A prepaid session's unspent balance was paid back. The detail is [`SESSION_DIALECT`].
    Refunded,
    /// A request was served from a prepaid session and debited. The detail is
    /// [`SESSION_DIALECT`].
    Used,
}

impl Event {
    /// `paid` or `refused`.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Paid => "paid",
            Event::Refused => "refused",
            Event::Refunded => "refunded",
            Event::Used => "used",
        }
    }

    /// Reads [`Event::as_str`] back.
    pub fn parse(text: &str) -> Option<Event> {
        match text {
            "paid" => Some(Event::Paid),
            "refused" => Some(Event::Refused),
            "refunded" => Some(Event::Refunded),
            "used" => Some(Event::Used),
            _ => None,
        }
    }
}

/// A count of one event on one route in one hour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// The hour's start, unix seconds (a multiple of [`HOUR`]).
    pub hour: u64,
    /// The route id.
    pub route: String,
    /// What happened.
    pub event: Event,
    /// The dialect of a payment, the reason of a refusal.
    pub detail: String,
    /// How many times.
    pub count: u64,
    /// The sats they earned (0 for refusals).
    pub sats: u64,
}

/// One settled payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    /// When it settled, unix seconds.
    pub at: u64,
    /// The route id.
    pub route: String,
    /// `l402`, `mpp` or `x402`.
    pub dialect: String,
    /// The price it paid.
    pub sats: u64,
    /// The payment hash, hex.
    pub payment_hash: String,
}

/// What the ledger hands the store in one write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerBatch {
    /// Counts to add to the store's.
    pub tallies: Vec<Tally>,
    /// Payments to add.
    pub payments: Vec<Payment>,
    /// How long the store keeps them (a store that expires keys itself, Redis, uses it; the
    /// others are pruned with [`SpentStore::prune_ledger`]).
    pub retention: Duration,
}

impl LedgerBatch {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.tallies.is_empty() && self.payments.is_empty()
    }
}

/// What a store holds between two times.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerRead {
    /// The counts of every hour that overlaps the span, summed per hour, route, event and detail.
    pub tallies: Vec<Tally>,
    /// The payments in the span, newest first, at most as many as asked for.
    pub payments: Vec<Payment>,
}

/// Sums tallies that share an hour, route, event and detail, in a stable order.
pub fn merge_tallies(tallies: impl IntoIterator<Item = Tally>) -> Vec<Tally> {
    let mut sums: BTreeMap<(u64, String, Event, String), (u64, u64)> = BTreeMap::new();
    for t in tallies {
        let entry = sums
            .entry((t.hour, t.route, t.event, t.detail))
            .or_default();
        entry.0 += t.count;
        entry.1 += t.sats;
    }
    sums.into_iter()
        .map(|((hour, route, event, detail), (count, sats))| Tally {
            hour,
            route,
            event,
            detail,
            count,
            sats,
        })
        .collect()
}

/// Whether a tally's hour overlaps `[since, until)`.
pub fn hour_in(hour: u64, since: u64, until: u64) -> bool {
    hour.saturating_add(HOUR) > since && hour < until
}

/// The events of one minute, for the dashboard's live view (this process only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Minute {
    /// The minute's start, unix seconds.
    pub minute: u64,
    /// 402 challenges issued.
    pub challenges: u64,
    /// Payments settled.
    pub paid: u64,
    /// Sats they earned.
    pub sats: u64,
    /// Requests refused.
    pub refused: u64,
}

/// What a pending count is kept under: the hour, route, event and detail of a [`Tally`]. The
/// map is searched with borrowed strings ([`CountView`]), so a count that exists costs no
/// allocation; a new one allocates its route and detail once.
struct CountKey {
    hour: u64,
    route: Arc<str>,
    event: Event,
    detail: Box<str>,
}

/// A count's key as borrowed parts: what [`Pending::counts`] is searched with.
trait CountView {
    fn parts(&self) -> (u64, &str, Event, &str);
}

impl CountView for CountKey {
    fn parts(&self) -> (u64, &str, Event, &str) {
        (self.hour, &self.route, self.event, &self.detail)
    }
}

impl CountView for (u64, &str, Event, &str) {
    fn parts(&self) -> (u64, &str, Event, &str) {
        *self
    }
}

impl Hash for dyn CountView + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.parts().hash(state);
    }
}

impl PartialEq for dyn CountView + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn CountView + '_ {}

impl Hash for CountKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The same as its borrowed form's, as `Borrow` requires.
        (self as &dyn CountView).hash(state);
    }
}

impl PartialEq for CountKey {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for CountKey {}

impl<'a> Borrow<dyn CountView + 'a> for CountKey {
    fn borrow(&self) -> &(dyn CountView + 'a) {
        self
    }
}

/// A count and its sats, with the route's string (shared with the key) for the payments that
/// go with it.
struct Sums {
    count: u64,
    sats: u64,
    route: Arc<str>,
}

/// A payment waiting for the next flush. A new one holds its route shared with its count, its
/// dialect and its hash as they are: it becomes a [`Payment`] (strings, the hash's hex) only
/// when the batch is taken, off the paid path. One given back by a failed write stays as it was.
enum Queued {
    New {
        at: u64,
        route: Arc<str>,
        dialect: &'static str,
        sats: u64,
        hash: PaymentHash,
    },
    Back(Payment),
}

impl Queued {
    fn into_payment(self) -> Payment {
        match self {
            Queued::New {
                at,
                route,
                dialect,
                sats,
                hash,
            } => Payment {
                at,
                route: route.as_ref().to_owned(),
                dialect: dialect.to_owned(),
                sats,
                payment_hash: hash.to_hex(),
            },
            Queued::Back(payment) => payment,
        }
    }
}

#[derive(Default)]
struct Pending {
    counts: HashMap<CountKey, Sums>,
    payments: VecDeque<Queued>,
    dropped: u64,
}

impl Pending {
    /// Adds `count` events and their `sats` to a count; gives back the route's shared string.
    fn add(
        &mut self,
        (hour, route, event, detail): (u64, &str, Event, &str),
        count: u64,
        sats: u64,
    ) -> Arc<str> {
        if let Some(sums) = self
            .counts
            .get_mut(&(hour, route, event, detail) as &dyn CountView)
        {
            sums.count += count;
            sums.sats += sats;
            return sums.route.clone();
        }
        let route: Arc<str> = Arc::from(route);
        self.counts.insert(
            CountKey {
                hour,
                route: route.clone(),
                event,
                detail: detail.into(),
            },
            Sums {
                count,
                sats,
                route: route.clone(),
            },
        );
        route
    }
}

/// The ledger's side in the gateway: counts gathered in memory until the next flush, and the
/// last hour's live counts.
#[derive(Default)]
pub struct Ledger {
    pending: Mutex<Pending>,
    live: Mutex<VecDeque<Minute>>,
    /// One flush at a time, so batches reach the store in order.
    flushing: tokio::sync::Mutex<()>,
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Self {
        Ledger::default()
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn minute(&self, now: u64, add: impl FnOnce(&mut Minute)) {
        let start = now - now % 60;
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if live.back().is_none_or(|m| m.minute < start) {
            live.push_back(Minute {
                minute: start,
                ..Minute::default()
            });
            while live.len() > LIVE_MINUTES {
                live.pop_front();
            }
        }
        if let Some(last) = live.back_mut() {
            add(last);
        }
    }

    /// A payment settled at `now` on `route`, in `dialect`, for `sats`. Allocates nothing once
    /// the hour's count for the route and dialect exists (the payment's strings are made when
    /// the ledger is flushed).
    pub fn paid(&self, now: u64, route: &str, dialect: Dialect, sats: u64, hash: &PaymentHash) {
        self.paid_as(now, route, dialect.as_str(), sats, hash);
    }

    /// A prepaid session's deposit (or top-up) of `sats` settled at `now` on `route`: a
    /// payment in [`SESSION_DIALECT`].
    pub fn deposited(&self, now: u64, route: &str, sats: u64, hash: &PaymentHash) {
        self.paid_as(now, route, SESSION_DIALECT, sats, hash);
    }

    /// A prepaid session on `route` was refunded `sats` at `now`.
    pub fn refunded(&self, now: u64, route: &str, sats: u64) {
        self.count(now, route, Event::Refunded, SESSION_DIALECT, sats);
    }

    /// A request served from a prepaid session on `route` was debited `sats` at `now`.
    pub fn used(&self, now: u64, route: &str, sats: u64) {
        self.count(now, route, Event::Used, SESSION_DIALECT, sats);
    }

    fn count(&self, now: u64, route: &str, event: Event, detail: &str, sats: u64) {
        self.pending()
            .add((now - now % HOUR, route, event, detail), 1, sats);
    }

    fn paid_as(&self, now: u64, route: &str, dialect: &'static str, sats: u64, hash: &PaymentHash) {
        {
            let mut pending = self.pending();
            let key = (now - now % HOUR, route, Event::Paid, dialect);
            let route = pending.add(key, 1, sats);
            if pending.payments.len() >= PENDING_PAYMENTS {
                pending.payments.pop_front();
                pending.dropped += 1;
            }
            pending.payments.push_back(Queued::New {
                at: now,
                route,
                dialect,
                sats,
                hash: *hash,
            });
        }
        self.minute(now, |m| {
            m.paid += 1;
            m.sats += sats;
        });
    }

    /// A request on `route` was refused at `now`, for `reason` (a reason code such as `spent`,
    /// or `rate_limited`, `not_paid`).
    pub fn refused(&self, now: u64, route: &str, reason: &str) {
        self.pending()
            .add((now - now % HOUR, route, Event::Refused, reason), 1, 0);
        self.minute(now, |m| m.refused += 1);
    }

    /// A 402 challenge was issued at `now` (live counts only: the metrics count them per route).
    pub fn challenged(&self, now: u64) {
        self.minute(now, |m| m.challenges += 1);
    }

    /// The live counts of the last [`LIVE_MINUTES`] minutes up to `now`, oldest first, one entry
    /// per minute (minutes without events are zeros).
    pub fn live(&self, now: u64) -> Vec<Minute> {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let end = now - now % 60;
        let start = end.saturating_sub(60 * (LIVE_MINUTES as u64 - 1));
        (0..LIVE_MINUTES as u64)
            .map(|i| start + 60 * i)
            .map(|minute| {
                live.iter()
                    .find(|m| m.minute == minute)
                    .copied()
                    .unwrap_or(Minute {
                        minute,
                        ..Minute::default()
                    })
            })
            .collect()
    }

    /// Takes what gathered since the last flush.
    fn take(&self, retention: Duration) -> LedgerBatch {
        let mut pending = self.pending();
        if pending.dropped > 0 {
            tracing::warn!(
                dropped = pending.dropped,
                "the ledger dropped payments it could not write in time (their counts are kept)"
            );
            pending.dropped = 0;
        }
        let tallies = pending
            .counts
            .drain()
            .map(|(key, sums)| Tally {
                hour: key.hour,
                route: key.route.as_ref().to_owned(),
                event: key.event,
                detail: key.detail.into(),
                count: sums.count,
                sats: sums.sats,
            })
            .collect();
        LedgerBatch {
            tallies,
            payments: pending
                .payments
                .drain(..)
                .map(Queued::into_payment)
                .collect(),
            retention,
        }
    }

    /// Gives back a batch the store could not take, to go with the next flush.
    fn put_back(&self, batch: LedgerBatch) {
        let mut pending = self.pending();
        for t in batch.tallies {
            pending.add((t.hour, &t.route, t.event, &t.detail), t.count, t.sats);
        }
        for (i, payment) in batch.payments.into_iter().enumerate() {
            pending.payments.insert(i, Queued::Back(payment));
        }
        while pending.payments.len() > PENDING_PAYMENTS {
            pending.payments.pop_front();
            pending.dropped += 1;
        }
    }

    /// Writes what gathered to `store` in one write, keeping it for `retention`. On failure it
    /// stays in memory for the next flush.
    pub async fn flush(
        &self,
        store: &dyn SpentStore,
        retention: Duration,
    ) -> Result<(), StoreError> {
        let _one = self.flushing.lock().await;
        let batch = self.take(retention);
        if batch.is_empty() {
            return Ok(());
        }
        match store.record(&batch).await {
            Ok(()) => Ok(()),
            Err(e) => {
                self.put_back(batch);
                Err(e)
            }
        }
    }
}

/// Figures for one key (a route, a day, a dialect).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Figures {
    /// Payments settled (a session's deposit and each top-up among them).
    pub payments: u64,
    /// Sats they paid.
    pub sats: u64,
    /// Requests refused.
    pub refusals: u64,
    /// Prepaid sessions refunded.
    #[serde(default)]
    pub refunds: u64,
    /// Sats refunded.
    #[serde(default)]
    pub refunded_sats: u64,
    /// What was earned: the sats paid less the sats refunded.
    #[serde(default)]
    pub earned_sats: u64,
    /// Requests served from prepaid sessions (metered usage).
    #[serde(default)]
    pub metered: u64,
    /// Sats they were debited (paid for by the deposits: part of `sats`, not added to it).
    #[serde(default)]
    pub metered_sats: u64,
}

/// The ledger's figures over a span, for people (`plannt stats`) and programs (the admin API).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// The span's start, unix seconds.
    pub since: u64,
    /// The span's end, unix seconds.
    pub until: u64,
    /// Everything in the span.
    pub total: Figures,
    /// By route id.
    pub routes: BTreeMap<String, Figures>,
    /// By day (`YYYY-MM-DD`, UTC).
    pub days: BTreeMap<String, Figures>,
    /// By dialect.
    pub dialects: BTreeMap<String, Figures>,
    /// Refusals by reason.
    pub refusals: BTreeMap<String, u64>,
    /// Earnings per hour (start of the hour, unix seconds, to sats), oldest first.
    pub hours: Vec<(u64, Figures)>,
    /// The latest payments, newest first.
    pub recent: Vec<Payment>,
}

/// `YYYY-MM-DD` of a unix time, UTC.
pub fn day_of(unix: u64) -> String {
    let at = UNIX_EPOCH + Duration::from_secs(unix.min(253_402_300_799));
    humantime::format_rfc3339_seconds(at).to_string()[..10].to_owned()
}

/// Reads a point in time for `since` and `until`, relative to `now` (unix seconds): a duration
/// back from now (`24h`, `7d`, `90m`, `1w`), a date (`2026-01-31`, its midnight UTC), an RFC 3339
/// time (`2026-01-31T12:00:00Z`), `now`, or unix seconds.
pub fn parse_when(text: &str, now: u64) -> Result<u64, String> {
    let text = text.trim();
    if text == "now" {
        return Ok(now);
    }
    if let Ok(unix) = text.parse::<u64>() {
        return Ok(unix);
    }
    if let Ok(back) = humantime::parse_duration(text) {
        return Ok(now.saturating_sub(back.as_secs()));
    }
    let full = if text.len() == 10 {
        format!("{text}T00:00:00Z")
    } else {
        text.to_owned()
    };
    match humantime::parse_rfc3339_weak(&full) {
        Ok(at) => Ok(at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())),
        Err(_) => Err(format!(
            "{text:?} is not a time: use a duration back from now (24h, 7d), a date \
             (2026-01-31), an RFC 3339 time (2026-01-31T12:00:00Z), now, or unix seconds"
        )),
    }
}

impl Stats {
    /// The figures of what a store returned for `[since, until)`.
    pub fn of(read: &LedgerRead, since: u64, until: u64) -> Stats {
        let mut stats = Stats {
            since,
            until,
            ..Stats::default()
        };
        let mut hours: BTreeMap<u64, Figures> = BTreeMap::new();
        for t in read
            .tallies
            .iter()
            .filter(|t| hour_in(t.hour, since, until))
        {
            let add = |f: &mut Figures| {
                match t.event {
                    Event::Paid => {
                        f.payments += t.count;
                        f.sats += t.sats;
                    }
                    Event::Refused => f.refusals += t.count,
                    Event::Refunded => {
                        f.refunds += t.count;
                        f.refunded_sats += t.sats;
                    }
                    Event::Used => {
                        f.metered += t.count;
                        f.metered_sats += t.sats;
                    }
                }
                f.earned_sats = f.sats.saturating_sub(f.refunded_sats);
            };
            add(&mut stats.total);
            add(stats.routes.entry(t.route.clone()).or_default());
            add(stats.days.entry(day_of(t.hour)).or_default());
            add(hours.entry(t.hour).or_default());
            match t.event {
                Event::Paid | Event::Refunded | Event::Used => {
                    add(stats.dialects.entry(t.detail.clone()).or_default())
                }
                Event::Refused => *stats.refusals.entry(t.detail.clone()).or_default() += t.count,
            }
        }
        stats.hours = hours.into_iter().collect();
        stats.recent = read
            .payments
            .iter()
            .filter(|p| p.at >= since && p.at < until)
            .cloned()
            .collect();
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_gather_per_hour_route_and_detail_and_the_stats_sum_them() {
        let ledger = Ledger::new();
        let t0 = 1_767_225_600; // 2026-01-01T00:00:00Z
        let hash = PaymentHash([3; 32]);
        ledger.paid(t0 + 10, "demo", Dialect::L402, 21, &hash);
        ledger.paid(t0 + 20, "demo", Dialect::Mpp, 21, &hash);
        ledger.paid(t0 + HOUR + 5, "data", Dialect::L402, 100, &hash);
        ledger.refused(t0 + 30, "demo", "spent");
        ledger.refused(t0 + DAY + 30, "demo", "rate_limited");
        let batch = ledger.take(Duration::from_secs(DAY));
        assert_eq!(batch.payments.len(), 3);
        let read = LedgerRead {
            tallies: merge_tallies(batch.tallies),
            payments: batch.payments.into_iter().rev().collect(),
        };
        let stats = Stats::of(&read, t0, t0 + 2 * DAY);
        assert_eq!(stats.total.payments, 3);
        assert_eq!(stats.total.sats, 142);
        assert_eq!(stats.total.refusals, 2);
        assert_eq!(stats.routes["demo"].sats, 42);
        assert_eq!(stats.routes["data"].payments, 1);
        assert_eq!(stats.dialects["l402"].sats, 121);
        assert_eq!(stats.days["2026-01-01"].payments, 3);
        assert_eq!(stats.days["2026-01-02"].refusals, 1);
        assert_eq!(stats.refusals["spent"], 1);
        assert_eq!(stats.hours.len(), 3);
        assert_eq!(stats.recent[0].route, "data");
        // A narrower span leaves the second day out.
        let first_day = Stats::of(&read, t0, t0 + DAY);
        assert_eq!(first_day.total.refusals, 1);
        assert!(ledger.take(Duration::ZERO).is_empty(), "taken once");
    }

    #[test]
    fn a_sessions_deposits_usage_and_refund_are_counted_and_earnings_are_net_of_refunds() {
        let ledger = Ledger::new();
        let t0 = 1_767_225_600;
        ledger.paid(t0 + 1, "chat", Dialect::L402, 40, &PaymentHash([1; 32]));
        ledger.deposited(t0 + 2, "chat", 500, &PaymentHash([2; 32]));
        ledger.used(t0 + 3, "chat", 17);
        ledger.used(t0 + 4, "chat", 23);
        ledger.deposited(t0 + 5, "chat", 200, &PaymentHash([3; 32]));
        ledger.refunded(t0 + 6, "chat", 660);
        let batch = ledger.take(Duration::from_secs(DAY));
        assert_eq!(batch.payments.len(), 3, "the charge and the two deposits");
        assert_eq!(batch.payments[1].dialect, SESSION_DIALECT);
        let read = LedgerRead {
            tallies: merge_tallies(batch.tallies),
            payments: batch.payments.into_iter().rev().collect(),
        };
        let stats = Stats::of(&read, t0, t0 + DAY);
        let session = &stats.dialects[SESSION_DIALECT];
        assert_eq!((session.payments, session.sats), (2, 700));
        assert_eq!((session.metered, session.metered_sats), (2, 40));
        assert_eq!((session.refunds, session.refunded_sats), (1, 660));
        assert_eq!(
            session.earned_sats, 40,
            "deposits less the refund: what was used"
        );
        assert_eq!(stats.dialects["l402"].earned_sats, 40);
        assert_eq!(stats.total.sats, 740);
        assert_eq!(stats.total.earned_sats, 80);
        assert_eq!(stats.routes["chat"].earned_sats, 80);
        assert_eq!(stats.days["2026-01-01"].refunded_sats, 660);
        // Read back as the admin API gives it, and as an older gateway's JSON without them.
        let json = serde_json::to_value(&stats.total).unwrap();
        assert_eq!(json["earned_sats"], 80);
        let old: Figures =
            serde_json::from_str(r#"{"payments":1,"sats":21,"refusals":0}"#).unwrap();
        assert_eq!((old.refunded_sats, old.metered), (0, 0));
    }

    #[test]
    fn a_batch_given_back_goes_with_the_next_flush() {
        let ledger = Ledger::new();
        let hash = PaymentHash([4; 32]);
        ledger.paid(7_200, "demo", Dialect::X402, 5, &hash);
        let batch = ledger.take(Duration::ZERO);
        ledger.paid(7_300, "demo", Dialect::X402, 5, &hash);
        ledger.put_back(batch);
        let again = ledger.take(Duration::ZERO);
        assert_eq!(again.payments.len(), 2);
        assert_eq!(again.payments[0].at, 7_200, "the older payment stays first");
        assert_eq!(again.tallies.len(), 1);
        assert_eq!(again.tallies[0].count, 2);
        assert_eq!(again.tallies[0].sats, 10);
    }

    #[test]
    fn live_counts_cover_the_last_hour_minute_by_minute() {
        let ledger = Ledger::new();
        let now = 1_000_000 * 60;
        ledger.challenged(now - 120);
        ledger.challenged(now - 119);
        ledger.paid(now, "demo", Dialect::L402, 21, &PaymentHash([1; 32]));
        ledger.refused(now + 5, "demo", "spent");
        let live = ledger.live(now + 5);
        assert_eq!(live.len(), LIVE_MINUTES);
        assert_eq!(live.last().unwrap().minute, now);
        assert_eq!(live.last().unwrap().paid, 1);
        assert_eq!(live.last().unwrap().refused, 1);
        assert_eq!(live[LIVE_MINUTES - 3].challenges, 2);
        assert_eq!(live.iter().map(|m| m.sats).sum::<u64>(), 21);
    }

    #[test]
    fn times_read_as_durations_dates_rfc3339_or_unix_seconds() {
        let now = 1_767_225_600 + 7_200; // 2026-01-01T02:00:00Z
        assert_eq!(parse_when("24h", now), Ok(now - DAY));
        assert_eq!(parse_when("7d", now), Ok(now - 7 * DAY));
        assert_eq!(parse_when("2026-01-01", now), Ok(1_767_225_600));
        assert_eq!(parse_when("2026-01-01T01:00:00Z", now), Ok(1_767_229_200));
        assert_eq!(parse_when("now", now), Ok(now));
        assert_eq!(parse_when("12345", now), Ok(12_345));
        let bad = parse_when("yesterday", now).unwrap_err();
        assert!(bad.contains("24h") && bad.contains("2026-01-31"), "{bad}");
    }

    #[test]
    fn days_are_utc_dates() {
        assert_eq!(day_of(0), "1970-01-01");
        assert_eq!(day_of(1_767_225_599), "2025-12-31");
    }
}
