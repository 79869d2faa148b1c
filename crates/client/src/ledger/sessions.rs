//! Prepaid sessions (MPP's Lightning `session` intent), as the ledger keeps them.
//!
//! A session is known by its id, the payment hash of its deposit. The deposit and every top-up
//! are payments like any other (`payments`, with their `session_id`): reserved against the
//! budgets before they are paid, counted when they are paid, and never turned into a token of
//! their own. The `sessions` row keeps what the session needs besides: the place it is for, the
//! challenge to echo, the return invoice the server pays the refund to, the price of a unit, the
//! server's idle timeout, the balance as last known, its state (`open`, `closing`, `closed`) and
//! the refund received. The preimage of the deposit, the session's bearer secret, stays where
//! the ledger keeps every preimage: in its payment's row, in the file only the user can read.
//! Each request served from a session is a row of `session_debits`: the debit the server
//! reported for it (`reported` = 1; a Plannt gateway says it in each answer), or, when it said
//! none or one that cannot be true, an estimate of one unit (`reported` = 0). Debits are never
//! counted by the budgets: the deposit and the top-ups were, when they were paid.
//!
//! A refund gives back to the budget windows what it returns, when it arrives, never more than
//! the session's own payments those windows counted (see `given_back_since`).

use plannt_l402::{PaymentHash, Preimage};
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::{Ledger, LedgerError, OverBudget, Reservation, Reserved, over_budget};
use super::{read_hash, read_preimage};
use crate::policy::Budget;

/// Why a session's deposit or top-up was not reserved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionRefused {
    /// A budget window cannot take it.
    OverBudget(OverBudget),
    /// The session would hold more than the policy lets a session with this host hold.
    OverDeposit {
        /// The most the session may hold, in sats (`session_deposit_sats`).
        limit_sats: u64,
        /// What was paid into it already, in sats.
        paid_in_sats: u64,
        /// What this payment would add, in sats.
        cost_sats: u64,
    },
}

/// The state of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionState {
    /// Opened: requests present it (`bearer`).
    Open,
    /// `close` was sent; the refund is awaited.
    Closing,
    /// Closed by the server; the refund, if any, is recorded.
    Closed,
}

impl SessionState {
    /// `open`, `closing` or `closed`.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Open => "open",
            SessionState::Closing => "closing",
            SessionState::Closed => "closed",
        }
    }

    fn read(text: &str) -> SessionState {
        match text {
            "open" => SessionState::Open,
            "closing" => SessionState::Closing,
            _ => SessionState::Closed,
        }
    }
}

impl std::fmt::Display for SessionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// A session whose deposit was paid, to record as open.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    /// Its id: the payment hash of the deposit (reserved and paid with
    /// [`Ledger::reserve_for_session`] and [`Ledger::mark_paid`]).
    pub session_id: &'a PaymentHash,
    /// Scheme, host and port of the server.
    pub origin: &'a str,
    /// The path it was opened for.
    pub path: &'a str,
    /// The challenge to echo in each credential, as JSON.
    pub challenge: &'a str,
    /// The amountless invoice the server pays the unspent balance to on close.
    pub return_invoice: &'a str,
    /// The price of one unit, in millisatoshis.
    pub unit_msat: u64,
    /// The server's idle timeout, if it gave one.
    pub idle_timeout_secs: Option<u64>,
    /// The method of the request that opened it: `close` is sent the same way.
    pub method: &'a str,
    /// The body of that request and its `Content-Type` (at most [`super::MAX_RECORDED_BODY`]
    /// bytes; `None` beyond): a server that prices each request from its body (a metered route)
    /// is sent `close` with it.
    pub close_body: Option<(&'a [u8], Option<&'a str>)>,
}

/// What a request presents for an open session, and what the ledger knows of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionToken {
    /// The session id: the deposit's payment hash.
    pub session_id: PaymentHash,
    /// The deposit's preimage: the session's bearer secret.
    pub preimage: Preimage,
    /// Scheme, host and port.
    pub origin: String,
    /// The path it was opened for.
    pub path: String,
    /// The challenge to echo, as JSON.
    pub challenge: String,
    /// The return invoice given at open.
    pub return_invoice: String,
    /// The price of one unit, in millisatoshis.
    pub unit_msat: u64,
    /// Millisatoshis paid in: the deposit and every top-up paid.
    pub paid_in_msat: u64,
    /// The balance as last known, in millisatoshis.
    pub balance_msat: u64,
    /// The server's idle timeout, if it gave one.
    pub idle_timeout_secs: Option<u64>,
    /// Unix seconds of its last use.
    pub last_used_at: u64,
    /// Its state.
    pub state: SessionState,
    /// The method `close` is sent with.
    pub method: String,
    /// The body `close` is sent with, and its `Content-Type`.
    pub close_body: Option<(Vec<u8>, Option<String>)>,
}

/// A session as `plannt session list` and the MCP tools show it (no secret).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SessionRecord {
    /// The session id, hex.
    pub session_id: String,
    /// Scheme, host and port.
    pub origin: String,
    /// The path it was opened for.
    pub path: String,
    /// Sats paid in (deposit and top-ups).
    pub deposit_sats: u64,
    /// Sats the server debited, as it reported them (with an estimate of one unit for each
    /// request it reported no debit for: `estimated_debits`).
    pub spent_sats: u64,
    /// Sats left, as the server last said (less the estimates since).
    pub balance_sats: u64,
    /// How many of its debits are the client's estimates, not the server's word.
    pub estimated_debits: u64,
    /// `open`, `closing` or `closed`.
    pub state: SessionState,
    /// Sats refunded.
    pub refund_sats: u64,
    /// What the server said of the refund: `succeeded`, `failed`, `skipped`; `None` before.
    pub refund_status: Option<String>,
    /// Unix seconds it was opened at.
    pub opened_at: u64,
    /// Unix seconds of its last use (idle since).
    pub last_used_at: u64,
    /// The server's idle timeout, if it gave one.
    pub idle_timeout_secs: Option<u64>,
}

/// A debit the server reported for a request made in a session.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SessionDebit {
    /// The session id, hex.
    pub session_id: String,
    /// The path requested.
    pub path: String,
    /// Millisatoshis debited.
    pub amount_msat: u64,
    /// The balance after it, if the server said.
    pub balance_msat: Option<u64>,
    /// Unix seconds.
    pub at: u64,
    /// True if the server reported it; false for the client's estimate of one unit.
    pub reported: bool,
}

/// What [`read_token`] reads, in its order (`s`: sessions, `p`: the deposit's payment).
const TOKEN_COLUMNS: &str = "s.session_id, p.preimage, s.origin, s.path, s.challenge, s.return_invoice, s.unit_msat,
    (SELECT COALESCE(SUM(amount_msat), 0) FROM payments WHERE session_id = s.session_id AND status = 'paid'),
    s.balance_msat, s.idle_timeout_secs, s.last_used_at, s.state, s.method, s.close_body, s.close_type";

const TOKEN_FROM: &str =
    "FROM sessions s JOIN payments p ON p.payment_hash = s.session_id AND p.status = 'paid'";

fn read_token(row: &rusqlite::Row<'_>) -> Result<SessionToken, rusqlite::Error> {
    let paid_in = row.get::<_, i64>(7)?.max(0) as u64;
    Ok(SessionToken {
        session_id: read_hash(&row.get::<_, String>(0)?),
        preimage: read_preimage(&row.get::<_, Option<String>>(1)?.unwrap_or_default()),
        origin: row.get(2)?,
        path: row.get(3)?,
        challenge: row.get(4)?,
        return_invoice: row.get(5)?,
        unit_msat: row.get::<_, i64>(6)?.max(0) as u64,
        paid_in_msat: paid_in,
        balance_msat: row
            .get::<_, Option<i64>>(8)?
            .map_or(paid_in, |b| b.max(0) as u64),
        idle_timeout_secs: row.get::<_, Option<i64>>(9)?.map(|t| t.max(0) as u64),
        last_used_at: row.get::<_, i64>(10)?.max(0) as u64,
        state: SessionState::read(&row.get::<_, String>(11)?),
        method: row.get(12)?,
        close_body: row
            .get::<_, Option<Vec<u8>>>(13)?
            .map(|body| Ok::<_, rusqlite::Error>((body, row.get::<_, Option<String>>(14)?)))
            .transpose()?,
    })
}

impl Ledger {
    /// Reserves a session's deposit (`session_id` = the payment's own hash) or a top-up against
    /// the budgets and against `max_session_sats`, the most the session may hold, deposit and
    /// top-ups together; recorded pending as [`Ledger::reserve`] does, atomically across
    /// processes. A refusal records nothing.
    pub fn reserve_for_session(
        &self,
        r: &Reservation<'_>,
        session_id: &PaymentHash,
        max_session_sats: u64,
        budget: &Budget,
        now: u64,
    ) -> Result<Result<Reserved, SessionRefused>, LedgerError> {
        let hash = hex::encode(r.payment_hash);
        let session = hex::encode(session_id);
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let existing: Option<(String, Option<String>)> = tx
                .query_row(
                    "SELECT status, preimage FROM payments WHERE payment_hash = ?1",
                    params![hash],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            match existing {
                Some((status, _)) if status == "pending" => return Ok(Ok(Reserved::AlreadyPending)),
                Some((status, Some(preimage))) if status == "paid" => {
                    return Ok(Ok(Reserved::AlreadyPaid(read_preimage(&preimage))));
                }
                _ => {}
            }
            let paid_in: i64 = tx.query_row(
                "SELECT COALESCE(SUM(amount_msat), 0) FROM payments WHERE session_id = ?1 AND status IN ('pending', 'paid') AND payment_hash <> ?2",
                params![session, hash],
                |row| row.get(0),
            )?;
            let paid_in = paid_in.max(0) as u64;
            if paid_in.saturating_add(r.amount_msat) > max_session_sats.saturating_mul(1000) {
                return Ok(Err(SessionRefused::OverDeposit {
                    limit_sats: max_session_sats,
                    paid_in_sats: paid_in.div_ceil(1000),
                    cost_sats: r.amount_msat.div_ceil(1000),
                }));
            }
            let cost = r.amount_msat.saturating_add(r.max_fee_msat);
            if let Some(over) = over_budget(&tx, cost, budget, now)? {
                return Ok(Err(SessionRefused::OverBudget(over)));
            }
            tx.execute(
                "INSERT INTO payments (payment_hash, origin, path, bolt11, macaroon, amount_msat, max_fee_msat, status, created_at, updated_at, owner, charged_at, dialect, session_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8, ?8, ?9, ?8, ?10, ?11)
                 ON CONFLICT (payment_hash) DO UPDATE SET status = 'pending', max_fee_msat = ?7, updated_at = ?8, owner = ?9, charged_at = ?8, macaroon = ?5, dialect = ?10, session_id = ?11",
                params![hash, r.origin, r.path, r.bolt11, r.macaroon, r.amount_msat as i64, r.max_fee_msat as i64, now as i64, self.owner.id, r.dialect.as_str(), session],
            )?;
            tx.commit()?;
            Ok(Ok(Reserved::New))
        })
    }

    /// Records a session whose deposit was paid as open, its balance the deposit. Recording it
    /// again changes nothing.
    pub fn open_session(&self, s: &NewSession<'_>, now: u64) -> Result<(), LedgerError> {
        let id = hex::encode(s.session_id);
        self.execute(
            "INSERT OR IGNORE INTO sessions (session_id, origin, path, challenge, return_invoice, unit_msat, idle_timeout_secs, balance_msat, state, opened_at, last_used_at, method, close_body, close_type)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, COALESCE(SUM(amount_msat), 0), 'open', ?8, ?8, ?9, ?10, ?11
             FROM payments WHERE session_id = ?1 AND status = 'paid'",
            params![id, s.origin, s.path, s.challenge, s.return_invoice, s.unit_msat as i64, s.idle_timeout_secs.map(|t| t as i64), now as i64,
                s.method, s.close_body.map(|(b, _)| b), s.close_body.and_then(|(_, t)| t)],
        )
    }

    /// The open session to present for a place, the most recently used first.
    pub fn session_for(
        &self,
        origin: &str,
        path: &str,
    ) -> Result<Option<SessionToken>, LedgerError> {
        self.with(|conn| {
            conn.query_row(
                &format!(
                    "SELECT {TOKEN_COLUMNS} {TOKEN_FROM} WHERE s.origin = ?1 AND s.path = ?2 AND s.state = 'open'
                     ORDER BY s.last_used_at DESC, s.rowid DESC LIMIT 1"
                ),
                params![origin, path],
                read_token,
            )
            .optional()
        })
    }

    /// A session by its id.
    pub fn session(&self, session_id: &PaymentHash) -> Result<Option<SessionToken>, LedgerError> {
        let id = hex::encode(session_id);
        self.with(|conn| {
            conn.query_row(
                &format!("SELECT {TOKEN_COLUMNS} {TOKEN_FROM} WHERE s.session_id = ?1"),
                params![id],
                read_token,
            )
            .optional()
        })
    }

    /// Open sessions nobody used for longer than the server's idle timeout (the server closes
    /// them on its side): to close, so that their balance comes back.
    pub fn idle_sessions(&self, now: u64) -> Result<Vec<SessionToken>, LedgerError> {
        self.with(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {TOKEN_COLUMNS} {TOKEN_FROM} WHERE s.state IN ('open', 'closing') AND s.idle_timeout_secs IS NOT NULL
                 AND s.last_used_at + s.idle_timeout_secs <= ?1 ORDER BY s.last_used_at"
            ))?;
            let rows = stmt.query_map(params![now as i64], read_token)?;
            rows.collect()
        })
    }

    /// Records the debit the server reported for a request made in the session, and the
    /// balance it said is left, when they can be true: the debits it reported, this one among
    /// them, and the balance it gives, together no more than what was paid into the session.
    /// Otherwise (a server that debits more than it was paid, or whose balance grows without a
    /// top-up) `estimate_msat` is recorded instead, as [`Ledger::session_debit`] does, and the
    /// answer is `false`. Either way the budgets do not change: they counted the payments.
    pub fn session_debit_reported(
        &self,
        session_id: &PaymentHash,
        path: &str,
        (debit_msat, balance_msat): (u64, Option<u64>),
        estimate_msat: u64,
        now: u64,
    ) -> Result<bool, LedgerError> {
        let id = hex::encode(session_id);
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let (paid_in, reported): (i64, i64) = tx.query_row(
                "SELECT (SELECT COALESCE(SUM(amount_msat), 0) FROM payments WHERE session_id = ?1 AND status = 'paid'),
                        (SELECT COALESCE(SUM(amount_msat), 0) FROM session_debits WHERE session_id = ?1 AND reported = 1)",
                params![id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?;
            let (paid_in, reported) = (paid_in.max(0) as u64, reported.max(0) as u64);
            let total = reported
                .checked_add(debit_msat)
                .and_then(|t| t.checked_add(balance_msat.unwrap_or(0)));
            let credible = total.is_some_and(|t| t <= paid_in) && debit_msat <= i64::MAX as u64;
            let (amount, balance, flag) = if credible {
                (debit_msat, balance_msat, 1)
            } else {
                (estimate_msat, None, 0)
            };
            tx.execute(
                "INSERT INTO session_debits (session_id, path, amount_msat, balance_msat, at, reported) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, path, amount as i64, balance.map(|b| b as i64), now as i64, flag],
            )?;
            tx.execute(
                "UPDATE sessions SET spent_msat = spent_msat + ?2, last_used_at = ?4,
                 balance_msat = COALESCE(?3, MAX(COALESCE(balance_msat, 0) - ?2, 0)) WHERE session_id = ?1",
                params![id, amount as i64, balance.map(|b| b as i64), now as i64],
            )?;
            tx.commit()?;
            Ok(credible)
        })
    }

    /// Records the client's estimate of a debit for a request made in the session (one unit:
    /// the server reported none), and the balance left: `balance_msat` if given, else the
    /// balance as last known less the estimate.
    pub fn session_debit(
        &self,
        session_id: &PaymentHash,
        path: &str,
        amount_msat: u64,
        balance_msat: Option<u64>,
        now: u64,
    ) -> Result<(), LedgerError> {
        let id = hex::encode(session_id);
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT INTO session_debits (session_id, path, amount_msat, balance_msat, at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, path, amount_msat as i64, balance_msat.map(|b| b as i64), now as i64],
            )?;
            tx.execute(
                "UPDATE sessions SET spent_msat = spent_msat + ?2, last_used_at = ?4,
                 balance_msat = COALESCE(?3, MAX(COALESCE(balance_msat, 0) - ?2, 0)) WHERE session_id = ?1",
                params![id, amount_msat as i64, balance_msat.map(|b| b as i64), now as i64],
            )?;
            tx.commit()
        })
    }

    /// A top-up of `amount_msat` was paid and accepted: the balance as last known grows by it.
    pub fn session_topped_up(
        &self,
        session_id: &PaymentHash,
        amount_msat: u64,
        now: u64,
    ) -> Result<(), LedgerError> {
        let id = hex::encode(session_id);
        self.execute(
            "UPDATE sessions SET balance_msat = COALESCE(balance_msat, 0) + ?2, last_used_at = ?3 WHERE session_id = ?1",
            params![id, amount_msat as i64, now as i64],
        )
    }

    /// The balance the server said the session holds, in msat.
    pub fn session_balance(
        &self,
        session_id: &PaymentHash,
        balance_msat: u64,
        now: u64,
    ) -> Result<(), LedgerError> {
        let id = hex::encode(session_id);
        self.execute(
            "UPDATE sessions SET balance_msat = ?2, last_used_at = ?3 WHERE session_id = ?1",
            params![id, balance_msat as i64, now as i64],
        )
    }

    /// Whether a session for this place was lost since `since`: closed without a refund the
    /// wallet can account for because the server refused its open, forgot it, or did not answer
    /// its close. No new session is opened there until a day has passed: a server that forgets
    /// sessions loses one deposit a day, not one a call.
    pub fn session_lost_since(
        &self,
        origin: &str,
        path: &str,
        since: u64,
    ) -> Result<bool, LedgerError> {
        self.with(|conn| {
            conn.query_row(
                "SELECT COUNT(*) FROM sessions WHERE origin = ?1 AND path = ?2 AND state = 'closed'
                 AND refund_status IN ('unknown', 'refused') AND refund_msat = 0 AND closed_at >= ?3",
                params![origin, path, since as i64],
                |row| row.get::<_, i64>(0),
            )
            .map(|n| n > 0)
        })
    }

    /// The server said the session cannot pay for more (its `payment-need-topup` event): the
    /// balance as last known is 0, so the next request tops it up.
    pub fn session_short(&self, session_id: &PaymentHash) -> Result<(), LedgerError> {
        let id = hex::encode(session_id);
        self.execute(
            "UPDATE sessions SET balance_msat = 0 WHERE session_id = ?1",
            params![id],
        )
    }

    /// `close` is about to be sent: the session is no longer presented.
    pub fn session_closing(&self, session_id: &PaymentHash, now: u64) -> Result<(), LedgerError> {
        let id = hex::encode(session_id);
        self.execute(
            "UPDATE sessions SET state = 'closing', closed_at = ?2 WHERE session_id = ?1 AND state = 'open'",
            params![id, now as i64],
        )
    }

    /// The server closed the session: records the refund received (`refund_msat`, what the
    /// return invoice was paid) and what the server said of it. From now on the refund gives
    /// back to the budget windows that counted the session's payments.
    pub fn session_closed(
        &self,
        session_id: &PaymentHash,
        refund_msat: u64,
        refund_status: &str,
        now: u64,
    ) -> Result<(), LedgerError> {
        let id = hex::encode(session_id);
        self.execute(
            "UPDATE sessions SET state = 'closed', refund_msat = ?2, refund_status = ?3,
             refunded_at = CASE WHEN ?2 > 0 THEN ?4 END, closed_at = COALESCE(closed_at, ?4),
             balance_msat = 0 WHERE session_id = ?1",
            params![id, refund_msat as i64, refund_status, now as i64],
        )
    }

    /// Every session (`all`) or those not closed, the most recently used first.
    pub fn sessions(&self, all: bool) -> Result<Vec<SessionRecord>, LedgerError> {
        self.with(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT s.session_id, s.origin, s.path,
                 (SELECT COALESCE(SUM(amount_msat), 0) FROM payments WHERE session_id = s.session_id AND status = 'paid'),
                 s.spent_msat, s.balance_msat, s.state, s.refund_msat, s.refund_status, s.opened_at, s.last_used_at, s.idle_timeout_secs,
                 (SELECT COUNT(*) FROM session_debits WHERE session_id = s.session_id AND reported = 0)
                 FROM sessions s {} ORDER BY s.last_used_at DESC, s.rowid DESC",
                if all { "" } else { "WHERE s.state <> 'closed'" }
            ))?;
            let rows = stmt.query_map([], |row| {
                let msat = |i: usize| -> Result<u64, rusqlite::Error> {
                    Ok(row.get::<_, Option<i64>>(i)?.unwrap_or(0).max(0) as u64)
                };
                let paid_in = msat(3)?;
                Ok(SessionRecord {
                    session_id: row.get(0)?,
                    origin: row.get(1)?,
                    path: row.get(2)?,
                    deposit_sats: paid_in.div_ceil(1000),
                    spent_sats: msat(4)?.div_ceil(1000),
                    balance_sats: row
                        .get::<_, Option<i64>>(5)?
                        .map_or(paid_in, |b| b.max(0) as u64)
                        / 1000,
                    state: SessionState::read(&row.get::<_, String>(6)?),
                    refund_sats: msat(7)? / 1000,
                    refund_status: row.get(8)?,
                    opened_at: msat(9)?,
                    last_used_at: msat(10)?,
                    idle_timeout_secs: row.get::<_, Option<i64>>(11)?.map(|t| t.max(0) as u64),
                    estimated_debits: msat(12)?,
                })
            })?;
            rows.collect()
        })
    }

    /// The debits of a session, oldest first.
    pub fn session_debits(
        &self,
        session_id: &PaymentHash,
    ) -> Result<Vec<SessionDebit>, LedgerError> {
        let id = hex::encode(session_id);
        self.with(|conn| {
            let mut stmt = conn.prepare(
                "SELECT session_id, path, amount_msat, balance_msat, at, reported FROM session_debits WHERE session_id = ?1 ORDER BY at, rowid",
            )?;
            let rows = stmt.query_map(params![id], |row| {
                Ok(SessionDebit {
                    session_id: row.get(0)?,
                    path: row.get(1)?,
                    amount_msat: row.get::<_, i64>(2)?.max(0) as u64,
                    balance_msat: row.get::<_, Option<i64>>(3)?.map(|b| b.max(0) as u64),
                    at: row.get::<_, i64>(4)?.max(0) as u64,
                    reported: row.get::<_, i64>(5)? != 0,
                })
            })?;
            rows.collect()
        })
    }
}
