//! Prepaid session balances (the MPP `session` intent, [`crate::session`]): a deposit opens a
//! balance, each request holds the most it can cost before it is forwarded and settles to what
//! it used after, top-ups add to it, and a close pays back what is left.
//!
//! **Holds, not debits after the fact.** [`SessionStore::hold`] takes the request's maximum
//! price from the balance in one atomic step, or refuses: parallel requests can never spend
//! more than the balance. [`SessionStore::settle`] gives back what the request did not use. A
//! stream that needs more than it held asks [`SessionStore::hold`] again for the difference,
//! and stops when refused, so a balance never goes below zero.
//!
//! **Every deposit counts once.** The payment hash of a deposit, whether it opened a session or
//! topped one up, is recorded with the credit in the same atomic write: a deposit cannot open
//! two sessions, top up twice, or both open one and top up another.
//!
//! **A refund is paid at most once.** A close first records the session as `closing` with the
//! refund it owes ([`SessionStore::begin_close`]), durably, and only then is the refund paid;
//! [`SessionStore::finish_close`] records `closed` and how the payment went. A crash in between
//! leaves the session `closing`: a restart lists it ([`SessionStore::closing`]) and asks the
//! backend whether the refund went out before paying anything, so it is never paid twice.
//!
//! **A refund is owed until it is paid.** A refund payment that fails leaves the session
//! `closing`, owing it: the background task tries again later, each try first claimed
//! ([`SessionStore::claim_refund`]: one replica at a time, until `refund_at`) and first asking
//! the backend whether an earlier try went out. Only when the return invoice has expired, or
//! after [`REFUND_ATTEMPTS`] tries, is it recorded `closed`/`failed` for good, for the operator.
//!
//! **A hold does not outlive its request.** Every hold records when it was taken (`held_at`,
//! the latest hold's time; a stream that keeps flowing renews it). A gateway that crashes with
//! requests in flight leaves their holds behind; the background task gives back every hold of a
//! session whose latest hold is older than a bound (the upstream timeout and a margin) with
//! [`SessionStore::release_stale`]. The gateway cannot prove those requests delivered anything,
//! so it charges nothing for them. A request that was alive after all and settles later finds
//! less held than it took: it returns only what is still held and takes the rest of what it used
//! from the balance, as far as that goes, so it neither returns sats twice nor takes the balance
//! below zero.
//!
//! Three stores: [`MemorySessions`] (lost on restart: for tests and gateways that may lose their
//! balances), [`SqliteSessions`] (one file, each change durable before it returns) and
//! [`RedisSessions`] (shared by every replica on one Redis, Cluster or Sentinel primary).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use plannt_l402::PaymentHash;
use plannt_l402::mpp::RefundStatus;

use super::StoreError;
pub use super::redis_sessions::RedisSessions;
pub use super::sqlite_sessions::SqliteSessions;

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// Deposits in, requests served.
    Open,
    /// Closed to requests; its refund is being paid.
    Closing,
    /// Done; the refund was paid, failed or was not owed.
    Closed,
}

impl SessionState {
    /// The name stored and shown.
    pub fn as_str(&self) -> &'static str {
        match self {
            SessionState::Open => "open",
            SessionState::Closing => "closing",
            SessionState::Closed => "closed",
        }
    }

    /// Reads a stored name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "open" => Some(SessionState::Open),
            "closing" => Some(SessionState::Closing),
            "closed" => Some(SessionState::Closed),
            _ => None,
        }
    }
}

/// A session as the store holds it. Amounts in sats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The session id: the payment hash of the deposit that opened it.
    pub id: PaymentHash,
    /// The route it spends on.
    pub route: String,
    /// Every deposit paid in, the first and the top-ups.
    pub deposited: u64,
    /// What requests may still hold.
    pub balance: u64,
    /// What requests in flight hold.
    pub held: u64,
    /// What settled requests used.
    pub spent: u64,
    /// The amountless invoice the refund is paid to.
    pub return_invoice: String,
    /// Seconds without a request after which it is closed.
    pub idle_secs: u64,
    /// Unix seconds of the last request (or the open).
    pub last_used: u64,
    /// Where it is in its life.
    pub state: SessionState,
    /// The refund owed (`closing`) or paid (`closed`).
    pub refund: u64,
    /// How paying the refund went, once `closed`.
    pub refund_status: Option<RefundStatus>,
    /// Unix seconds of the latest hold still counted in `held` (0 for none yet).
    pub held_at: u64,
    /// How many times its refund was tried (claimed), while `closing`.
    pub refund_attempts: u64,
    /// While `closing`: Unix seconds before which nobody else tries its refund (the close, or
    /// the retry, that claimed it is paying).
    pub refund_at: u64,
}

/// How many times a refund is tried before it is recorded `failed` for good.
pub const REFUND_ATTEMPTS: u64 = 8;

/// How long a close (or a retry) owns the refund it is paying: no other replica or tick tries
/// it before then.
pub const REFUND_CLAIM_SECS: u64 = 120;

/// When the refund may be tried again after `attempts` tries: a minute, doubling, at most an
/// hour; never sooner than a claim lasts.
pub fn refund_backoff(attempts: u64) -> u64 {
    let minutes = 1u64 << attempts.saturating_sub(1).min(6);
    (minutes * 60).clamp(REFUND_CLAIM_SECS, 3600)
}

/// A session to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    /// The deposit's payment hash.
    pub id: PaymentHash,
    /// The route.
    pub route: String,
    /// The deposit, in sats.
    pub deposit: u64,
    /// The amountless invoice refunds go to.
    pub return_invoice: String,
    /// The idle timeout in seconds.
    pub idle_secs: u64,
    /// Unix seconds now.
    pub now: u64,
}

/// What opening did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Open {
    /// Opened now.
    Opened(Session),
    /// This deposit opened this session before (a retry of the open): as it is now.
    Exists(Session),
    /// This deposit already paid for something else (a top-up): it opens nothing.
    DepositSpent,
}

/// What holding did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Held: the balance left after it.
    Held {
        /// What is left to hold.
        balance: u64,
    },
    /// The balance cannot cover it; nothing held.
    Short {
        /// What there is.
        balance: u64,
        /// What was spent so far.
        spent: u64,
    },
    /// The session is closing or closed.
    NotOpen,
    /// No such session.
    Unknown,
}

/// What a top-up did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopUp {
    /// Credited: the balance after it.
    Credited {
        /// The balance.
        balance: u64,
    },
    /// This deposit was counted before (a retry, or it opened a session): nothing credited.
    DepositSpent,
    /// The session is closing or closed: nothing credited.
    NotOpen,
    /// No such session.
    Unknown,
}

/// What beginning a close did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BeginClose {
    /// Now `closing`, durably: pay `session.refund` to its return invoice, then
    /// [`SessionStore::finish_close`].
    Closing(Session),
    /// Requests are in flight: nothing changed; close after they are answered.
    Busy,
    /// Already `closing` (another close is paying, or a crash left it): as it is.
    AlreadyClosing(Session),
    /// Already closed: as it was closed.
    Closed(Session),
    /// No such session.
    Unknown,
}

/// The balances of prepaid sessions. Every method is one atomic step.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Opens a session with its deposit, durably before it returns. The deposit's hash is
    /// counted once ever.
    async fn open(&self, session: &NewSession) -> Result<Open, StoreError>;
    /// Holds `sats` of an open session's balance for a request (and marks it used at `now`),
    /// or refuses without holding anything.
    async fn hold(&self, id: &PaymentHash, sats: u64, now: u64) -> Result<Hold, StoreError>;
    /// Settles a hold of `held` sats: `used` (at most `held`) is spent, the rest returns to the
    /// balance. Whether the session is open or not (a close waits for holds). A hold given back
    /// meanwhile ([`SessionStore::release_stale`]) is spent from the balance instead, never
    /// below zero. Returns the balance after it, from the same step (`None`: no such
    /// session), so an answer can report it without another read.
    async fn settle(
        &self,
        id: &PaymentHash,
        held: u64,
        used: u64,
        now: u64,
    ) -> Result<Option<u64>, StoreError>;
    /// Credits a paid top-up of `sats` whose payment hash is `deposit`, counted once ever.
    async fn top_up(
        &self,
        id: &PaymentHash,
        deposit: &PaymentHash,
        sats: u64,
        now: u64,
    ) -> Result<TopUp, StoreError>;
    /// Marks an open session with no request in flight `closing`, owing its balance, durably;
    /// its refund is claimed by this close until `now` + [`REFUND_CLAIM_SECS`].
    async fn begin_close(&self, id: &PaymentHash, now: u64) -> Result<BeginClose, StoreError>;
    /// Claims a `closing` session's refund for one try, if nobody holds it at `now`: counts the
    /// try and holds it until `until`. `None` when it is not `closing` or claimed by another.
    async fn claim_refund(
        &self,
        id: &PaymentHash,
        now: u64,
        until: u64,
    ) -> Result<Option<Session>, StoreError>;
    /// Gives back every hold of each open session whose latest hold is `older_than` seconds old
    /// or more at `now` (requests a crash left behind). Returns the sessions and what each got
    /// back.
    async fn release_stale(
        &self,
        now: u64,
        older_than: u64,
    ) -> Result<Vec<(PaymentHash, u64)>, StoreError>;
    /// Marks a `closing` session `closed` with how its refund went; a closed one is left as
    /// it is. Returns the session as it is after.
    async fn finish_close(
        &self,
        id: &PaymentHash,
        status: RefundStatus,
    ) -> Result<Option<Session>, StoreError>;
    /// A session, as it is.
    async fn get(&self, id: &PaymentHash) -> Result<Option<Session>, StoreError>;
    /// Open sessions with nothing in flight whose last request is `idle_secs` or more before
    /// `now`.
    async fn idle(&self, now: u64) -> Result<Vec<PaymentHash>, StoreError>;
    /// Sessions left `closing` (a crash between the two steps of a close).
    async fn closing(&self) -> Result<Vec<Session>, StoreError>;
    /// A short name: `memory`, `sqlite`, `redis`.
    fn name(&self) -> &'static str;
}

/// Sessions in a map: lost on restart.
#[derive(Debug, Default)]
pub struct MemorySessions {
    inner: Mutex<Sessions>,
}

#[derive(Debug, Default)]
struct Sessions {
    sessions: HashMap<PaymentHash, Session>,
    deposits: HashSet<PaymentHash>,
}

impl MemorySessions {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Sessions) -> T) -> T {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut inner)
    }
}

/// The steps every store takes, on a session it has read, in one atomic step.
pub(super) mod step {
    use super::*;

    pub(in crate::store) fn hold(session: &mut Session, sats: u64, now: u64) -> Hold {
        if session.state != SessionState::Open {
            return Hold::NotOpen;
        }
        if session.balance < sats {
            return Hold::Short {
                balance: session.balance,
                spent: session.spent,
            };
        }
        session.balance -= sats;
        session.held += sats;
        session.held_at = session.held_at.max(now);
        session.last_used = session.last_used.max(now);
        Hold::Held {
            balance: session.balance,
        }
    }

    /// Settles a hold: `used` (at most `held`) is spent from what is held, the rest of the
    /// hold returns to the balance. A hold given back meanwhile (a request taken for crashed
    /// that was alive after all) finds less held than it took: what it used beyond that is
    /// taken from the balance, as far as the balance goes and never below zero.
    pub(in crate::store) fn settle(session: &mut Session, held: u64, used: u64, now: u64) {
        let used = used.min(held);
        let from_hold = held.min(session.held);
        let used_from_hold = used.min(from_hold);
        let beyond = (used - used_from_hold).min(session.balance);
        session.held -= from_hold;
        session.balance = session.balance + (from_hold - used_from_hold) - beyond;
        session.spent += used_from_hold + beyond;
        session.last_used = session.last_used.max(now);
    }

    pub(in crate::store) fn top_up(session: &mut Session, sats: u64, now: u64) -> TopUp {
        if session.state != SessionState::Open {
            return TopUp::NotOpen;
        }
        session.deposited += sats;
        session.balance += sats;
        session.last_used = session.last_used.max(now);
        TopUp::Credited {
            balance: session.balance,
        }
    }

    pub(in crate::store) fn begin_close(session: &mut Session, now: u64) -> BeginClose {
        match session.state {
            SessionState::Closing => BeginClose::AlreadyClosing(session.clone()),
            SessionState::Closed => BeginClose::Closed(session.clone()),
            SessionState::Open if session.held > 0 => BeginClose::Busy,
            SessionState::Open => {
                session.state = SessionState::Closing;
                session.refund = session.balance;
                session.balance = 0;
                session.refund_attempts = 1;
                session.refund_at = now.saturating_add(REFUND_CLAIM_SECS);
                BeginClose::Closing(session.clone())
            }
        }
    }

    pub(in crate::store) fn claim_refund(session: &mut Session, now: u64, until: u64) -> bool {
        if session.state != SessionState::Closing || session.refund_at > now {
            return false;
        }
        session.refund_attempts += 1;
        session.refund_at = until;
        true
    }

    /// Whether a session holds sats for requests none of which can still be running.
    pub(in crate::store) fn is_stale(session: &Session, taken_by: u64) -> bool {
        session.state == SessionState::Open && session.held > 0 && session.held_at <= taken_by
    }

    /// Gives back what is held: returns how much.
    pub(in crate::store) fn release(session: &mut Session) -> u64 {
        let held = session.held;
        session.balance += held;
        session.held = 0;
        held
    }

    pub(in crate::store) fn finish_close(session: &mut Session, status: RefundStatus) {
        // A refund that failed for good stays on the record (`refund`, `failed`) for the
        // operator; it does not go back to a balance nothing can spend any more.
        if session.state == SessionState::Closing {
            session.state = SessionState::Closed;
            session.refund_status = Some(status);
        }
    }

    pub(in crate::store) fn new_session(new: &NewSession) -> Session {
        Session {
            id: new.id,
            route: new.route.clone(),
            deposited: new.deposit,
            balance: new.deposit,
            held: 0,
            spent: 0,
            return_invoice: new.return_invoice.clone(),
            idle_secs: new.idle_secs,
            last_used: new.now,
            state: SessionState::Open,
            refund: 0,
            refund_status: None,
            held_at: 0,
            refund_attempts: 0,
            refund_at: 0,
        }
    }

    pub(in crate::store) fn is_idle(session: &Session, now: u64) -> bool {
        session.state == SessionState::Open
            && session.held == 0
            && session.idle_secs > 0
            && now >= session.last_used.saturating_add(session.idle_secs)
    }
}

#[async_trait]
impl SessionStore for MemorySessions {
    async fn open(&self, new: &NewSession) -> Result<Open, StoreError> {
        Ok(self.with(|s| {
            if let Some(existing) = s.sessions.get(&new.id) {
                return Open::Exists(existing.clone());
            }
            if !s.deposits.insert(new.id) {
                return Open::DepositSpent;
            }
            let session = step::new_session(new);
            s.sessions.insert(new.id, session.clone());
            Open::Opened(session)
        }))
    }

    async fn hold(&self, id: &PaymentHash, sats: u64, now: u64) -> Result<Hold, StoreError> {
        Ok(self.with(|s| match s.sessions.get_mut(id) {
            Some(session) => step::hold(session, sats, now),
            None => Hold::Unknown,
        }))
    }

    async fn settle(
        &self,
        id: &PaymentHash,
        held: u64,
        used: u64,
        now: u64,
    ) -> Result<Option<u64>, StoreError> {
        Ok(self.with(|s| {
            s.sessions.get_mut(id).map(|session| {
                step::settle(session, held, used, now);
                session.balance
            })
        }))
    }

    async fn top_up(
        &self,
        id: &PaymentHash,
        deposit: &PaymentHash,
        sats: u64,
        now: u64,
    ) -> Result<TopUp, StoreError> {
        Ok(self.with(|s| {
            let Some(session) = s.sessions.get_mut(id) else {
                return TopUp::Unknown;
            };
            if session.state != SessionState::Open {
                return TopUp::NotOpen;
            }
            if s.deposits.contains(deposit) {
                return TopUp::DepositSpent;
            }
            let done = step::top_up(session, sats, now);
            s.deposits.insert(*deposit);
            done
        }))
    }

    async fn begin_close(&self, id: &PaymentHash, now: u64) -> Result<BeginClose, StoreError> {
        Ok(self.with(|s| match s.sessions.get_mut(id) {
            Some(session) => step::begin_close(session, now),
            None => BeginClose::Unknown,
        }))
    }

    async fn claim_refund(
        &self,
        id: &PaymentHash,
        now: u64,
        until: u64,
    ) -> Result<Option<Session>, StoreError> {
        Ok(self.with(|s| {
            let session = s.sessions.get_mut(id)?;
            step::claim_refund(session, now, until).then(|| session.clone())
        }))
    }

    async fn release_stale(
        &self,
        now: u64,
        older_than: u64,
    ) -> Result<Vec<(PaymentHash, u64)>, StoreError> {
        let taken_by = now.saturating_sub(older_than);
        Ok(self.with(|s| {
            s.sessions
                .values_mut()
                .filter(|session| step::is_stale(session, taken_by))
                .map(|session| (session.id, step::release(session)))
                .collect()
        }))
    }

    async fn finish_close(
        &self,
        id: &PaymentHash,
        status: RefundStatus,
    ) -> Result<Option<Session>, StoreError> {
        Ok(self.with(|s| {
            s.sessions.get_mut(id).map(|session| {
                step::finish_close(session, status);
                session.clone()
            })
        }))
    }

    async fn get(&self, id: &PaymentHash) -> Result<Option<Session>, StoreError> {
        Ok(self.with(|s| s.sessions.get(id).cloned()))
    }

    async fn idle(&self, now: u64) -> Result<Vec<PaymentHash>, StoreError> {
        Ok(self.with(|s| {
            s.sessions
                .values()
                .filter(|session| step::is_idle(session, now))
                .map(|session| session.id)
                .collect()
        }))
    }

    async fn closing(&self) -> Result<Vec<Session>, StoreError> {
        Ok(self.with(|s| {
            s.sessions
                .values()
                .filter(|session| session.state == SessionState::Closing)
                .cloned()
                .collect()
        }))
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    fn new(id: u8, deposit: u64, now: u64) -> NewSession {
        NewSession {
            id: PaymentHash([id; 32]),
            route: "chat".into(),
            deposit,
            return_invoice: "lnbcrt1preturn".into(),
            idle_secs: 60,
            now,
        }
    }

    /// Every store: open once per deposit, hold or refuse, settle to the usage, top-ups counted
    /// once, a close that waits for holds and owes the balance.
    pub(in crate::store) async fn lifecycle(store: &dyn SessionStore) {
        let id = PaymentHash([1; 32]);
        let Open::Opened(opened) = store.open(&new(1, 100, 10)).await.unwrap() else {
            panic!("a fresh deposit opens");
        };
        assert_eq!((opened.balance, opened.state), (100, SessionState::Open));
        assert!(matches!(
            store.open(&new(1, 100, 11)).await.unwrap(),
            Open::Exists(_)
        ));

        assert_eq!(
            store.hold(&id, 70, 12).await.unwrap(),
            Hold::Held { balance: 30 }
        );
        assert_eq!(
            store.hold(&id, 31, 12).await.unwrap(),
            Hold::Short {
                balance: 30,
                spent: 0
            }
        );
        assert_eq!(
            store.begin_close(&id, 20).await.unwrap(),
            BeginClose::Busy,
            "a request is in flight"
        );
        assert_eq!(store.settle(&id, 70, 25, 13).await.unwrap(), Some(75));
        assert_eq!(
            store
                .settle(&PaymentHash([99; 32]), 1, 1, 13)
                .await
                .unwrap(),
            None
        );
        let s = store.get(&id).await.unwrap().unwrap();
        assert_eq!((s.balance, s.held, s.spent, s.last_used), (75, 0, 25, 13));

        // A top-up counts once; a deposit that opened a session is no top-up.
        let top = PaymentHash([2; 32]);
        assert_eq!(
            store.top_up(&id, &top, 50, 14).await.unwrap(),
            TopUp::Credited { balance: 125 }
        );
        assert_eq!(
            store.top_up(&id, &top, 50, 14).await.unwrap(),
            TopUp::DepositSpent
        );
        assert_eq!(
            store.top_up(&id, &id, 100, 14).await.unwrap(),
            TopUp::DepositSpent
        );
        // And a top-up's deposit opens nothing.
        assert_eq!(
            store.open(&new(2, 50, 15)).await.unwrap(),
            Open::DepositSpent
        );
        assert_eq!(
            store
                .top_up(&PaymentHash([9; 32]), &PaymentHash([8; 32]), 5, 15)
                .await
                .unwrap(),
            TopUp::Unknown
        );

        // Idle once idle_secs pass without a request.
        assert!(store.idle(14 + 59).await.unwrap().is_empty());
        assert_eq!(store.idle(14 + 60).await.unwrap(), vec![id]);

        // Close: closing owes the balance; nothing can hold or top up; finished once.
        let BeginClose::Closing(closing) = store.begin_close(&id, 20).await.unwrap() else {
            panic!("an idle open session closes");
        };
        assert_eq!((closing.refund, closing.balance), (125, 0));
        assert_eq!(store.closing().await.unwrap().len(), 1);
        assert!(matches!(
            store.begin_close(&id, 20).await.unwrap(),
            BeginClose::AlreadyClosing(_)
        ));
        assert_eq!(store.hold(&id, 1, 20).await.unwrap(), Hold::NotOpen);
        assert_eq!(
            store
                .top_up(&id, &PaymentHash([3; 32]), 5, 20)
                .await
                .unwrap(),
            TopUp::NotOpen
        );
        let closed = store
            .finish_close(&id, RefundStatus::Succeeded)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(closed.state, SessionState::Closed);
        assert_eq!(closed.refund_status, Some(RefundStatus::Succeeded));
        // A second finish changes nothing.
        let again = store
            .finish_close(&id, RefundStatus::Failed)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again.refund_status, Some(RefundStatus::Succeeded));
        assert!(store.closing().await.unwrap().is_empty());
        assert!(matches!(
            store.begin_close(&id, 20).await.unwrap(),
            BeginClose::Closed(_)
        ));
        assert_eq!(
            store.hold(&PaymentHash([7; 32]), 1, 1).await.unwrap(),
            Hold::Unknown
        );
    }

    /// Every store: a hold a crash left behind is given back once it is older than the bound,
    /// then the session closes with its whole unspent balance and goes idle; a request that
    /// settles after its hold was given back takes the balance below nothing; a refund is
    /// claimed by one try at a time.
    pub(in crate::store) async fn stale_holds_and_refund_claims(store: &dyn SessionStore) {
        let books = |s: &Session| (s.balance + s.held + s.spent, s.deposited);
        // A "crashed" request: held at 11, never settled.
        let (crashed, idle) = (PaymentHash([70; 32]), PaymentHash([71; 32]));
        for n in [70, 71] {
            store.open(&new(n, 100, 10)).await.unwrap();
            store.hold(&PaymentHash([n; 32]), 30, 11).await.unwrap();
        }
        assert_eq!(
            store.begin_close(&crashed, 12).await.unwrap(),
            BeginClose::Busy
        );
        assert!(
            store.release_stale(75, 65).await.unwrap().is_empty(),
            "not old yet"
        );
        let mut released = store.release_stale(75, 64).await.unwrap();
        released.sort_by_key(|(id, _)| id.0);
        assert_eq!(released, vec![(crashed, 30), (idle, 30)]);
        assert!(
            store.release_stale(75, 64).await.unwrap().is_empty(),
            "once"
        );
        let s = store.get(&crashed).await.unwrap().unwrap();
        assert_eq!((s.balance, s.held, s.spent), (100, 0, 0));
        // The whole unspent balance is refunded; the other goes idle.
        let BeginClose::Closing(closing) = store.begin_close(&crashed, 76).await.unwrap() else {
            panic!("no hold left in the way");
        };
        assert_eq!(closing.refund, 100);
        assert!(store.idle(11 + 60).await.unwrap().contains(&idle));

        // A request alive after all: its settle after the release finds nothing held, and
        // another request's hold is not given back twice.
        let live = PaymentHash([72; 32]);
        store.open(&new(72, 100, 10)).await.unwrap();
        store.hold(&live, 40, 11).await.unwrap();
        store.release_stale(75, 64).await.unwrap();
        store.hold(&live, 90, 80).await.unwrap();
        store.settle(&live, 40, 40, 81).await.unwrap();
        let s = store.get(&live).await.unwrap().unwrap();
        assert_eq!(books(&s), (100, 100), "{s:?}");
        // The other request finds part of its hold spent: the rest of its use comes from the
        // balance, as far as it goes.
        store.settle(&live, 90, 90, 82).await.unwrap();
        let s = store.get(&live).await.unwrap().unwrap();
        assert_eq!(books(&s), (100, 100), "{s:?}");
        assert_eq!((s.balance, s.held, s.spent), (0, 0, 100), "{s:?}");
        // Alone, a late settle is charged from the balance; a hold of nothing renews the holds.
        let late = PaymentHash([73; 32]);
        store.open(&new(73, 100, 10)).await.unwrap();
        store.hold(&late, 30, 11).await.unwrap();
        store.hold(&late, 0, 70).await.unwrap();
        assert!(
            store.release_stale(75, 64).await.unwrap().is_empty(),
            "renewed at 70"
        );
        assert_eq!(
            store.release_stale(134, 64).await.unwrap(),
            vec![(late, 30)]
        );
        store.settle(&late, 30, 20, 135).await.unwrap();
        let s = store.get(&late).await.unwrap().unwrap();
        assert_eq!((s.balance, s.held, s.spent), (80, 0, 20), "{s:?}");

        // The close claimed its refund until 76 + the claim; a retry claims it after that, once.
        assert_eq!(
            (closing.refund_attempts, closing.refund_at),
            (1, 76 + REFUND_CLAIM_SECS)
        );
        assert!(
            store
                .claim_refund(&crashed, 100, 1000)
                .await
                .unwrap()
                .is_none()
        );
        let at = 76 + REFUND_CLAIM_SECS;
        let claimed = store
            .claim_refund(&crashed, at, 1000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((claimed.refund_attempts, claimed.refund_at), (2, 1000));
        assert!(
            store
                .claim_refund(&crashed, at, 2000)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .claim_refund(&live, 5000, 6000)
                .await
                .unwrap()
                .is_none(),
            "open"
        );
        store
            .finish_close(&crashed, RefundStatus::Succeeded)
            .await
            .unwrap();
        assert!(
            store
                .claim_refund(&crashed, 5000, 6000)
                .await
                .unwrap()
                .is_none(),
            "closed"
        );
    }

    /// Many holds at once on one session: never more held than the balance.
    pub(in crate::store) async fn parallel_holds(store: std::sync::Arc<dyn SessionStore>) {
        let id = PaymentHash([4; 32]);
        store.open(&new(4, 100, 1)).await.unwrap();
        let holds = futures_util::future::join_all((0..40).map(|_| {
            let store = store.clone();
            async move { store.hold(&id, 7, 2).await.unwrap() }
        }))
        .await;
        let held = holds
            .iter()
            .filter(|h| matches!(h, Hold::Held { .. }))
            .count();
        assert_eq!(held, 14, "100 sats hold fourteen of 7");
        let s = store.get(&id).await.unwrap().unwrap();
        assert_eq!((s.balance, s.held), (2, 98));
    }

    #[tokio::test]
    async fn the_memory_store_keeps_a_session_s_books() {
        lifecycle(&MemorySessions::new()).await;
        parallel_holds(std::sync::Arc::new(MemorySessions::new())).await;
        stale_holds_and_refund_claims(&MemorySessions::new()).await;
    }

    #[tokio::test]
    async fn a_sqlite_file_of_the_first_shape_gets_the_new_columns_and_its_holds_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sessions.sqlite");
        {
            // The tables as the first release made them, a session holding 30 of 100 sats.
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE sessions (id BLOB PRIMARY KEY, route TEXT NOT NULL, \
                 deposited INTEGER NOT NULL, balance INTEGER NOT NULL, held INTEGER NOT NULL, \
                 spent INTEGER NOT NULL, return_invoice TEXT NOT NULL, \
                 idle_secs INTEGER NOT NULL, last_used INTEGER NOT NULL, state TEXT NOT NULL, \
                 refund INTEGER NOT NULL, refund_status TEXT NULL) WITHOUT ROWID;
                 CREATE INDEX sessions_state ON sessions (state);
                 CREATE TABLE deposits (hash BLOB PRIMARY KEY, session BLOB NOT NULL) WITHOUT ROWID;",
            )
            .unwrap();
            conn.execute(
                "INSERT INTO sessions VALUES (?1, 'chat', 100, 70, 30, 0, 'lnbcrt1p', 60, 50, \
                 'open', 0, NULL)",
                rusqlite::params![&[6u8; 32][..]],
            )
            .unwrap();
        }
        let store = SqliteSessions::open(&path).unwrap();
        let id = PaymentHash([6; 32]);
        let s = store.get(&id).await.unwrap().unwrap();
        assert_eq!(
            (s.balance, s.held, s.held_at, s.refund_attempts, s.refund_at),
            (70, 30, 0, 0, 0)
        );
        // Its holds are from before the restart: given back at the first look.
        assert_eq!(store.release_stale(100, 90).await.unwrap(), vec![(id, 30)]);
        assert!(matches!(
            store.begin_close(&id, 101).await.unwrap(),
            BeginClose::Closing(Session { refund: 100, .. })
        ));
        drop(store);
        // Opened again: nothing to add.
        let store = SqliteSessions::open(&path).unwrap();
        assert_eq!(store.get(&id).await.unwrap().unwrap().refund, 100);
    }

    #[tokio::test]
    async fn the_sqlite_store_keeps_a_session_s_books_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sessions.sqlite");
        lifecycle(&SqliteSessions::open(&path).unwrap()).await;
        stale_holds_and_refund_claims(
            &SqliteSessions::open(dir.path().join("stale.sqlite")).unwrap(),
        )
        .await;
        parallel_holds(std::sync::Arc::new(
            SqliteSessions::open(dir.path().join("other.sqlite")).unwrap(),
        ))
        .await;
        // Open, then "crash" (drop) and reopen: the balance and the counted deposits are there.
        let id = PaymentHash([5; 32]);
        {
            let store = SqliteSessions::open(&path).unwrap();
            store.open(&new(5, 40, 1)).await.unwrap();
            store.hold(&id, 10, 2).await.unwrap();
            store.settle(&id, 10, 4, 3).await.unwrap();
            store.begin_close(&PaymentHash([5; 32]), 4).await.unwrap();
        }
        let store = SqliteSessions::open(&path).unwrap();
        let s = store.get(&id).await.unwrap().unwrap();
        assert_eq!(
            (s.deposited, s.spent, s.refund, s.state),
            (40, 4, 36, SessionState::Closing)
        );
        assert_eq!(store.closing().await.unwrap().len(), 1);
        assert_eq!(
            store.open(&new(5, 40, 9)).await.unwrap(),
            Open::Exists(s),
            "the deposit opens nothing new"
        );
    }
}
