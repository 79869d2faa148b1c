//! The ledger: every payment and every paid token, in one SQLite file under the data directory,
//! shared by every process of the user (a CLI and an MCP server at once).
//!
//! A payment is recorded as `pending` **before** it is paid, with its amount reserved against
//! the budgets in the same transaction, then marked `paid` (with preimage and fee) or `failed`.
//! Budgets count pending and paid payments, so two processes cannot both spend the last sats:
//! the reservation runs under SQLite's write lock (`BEGIN IMMEDIATE`). A payment counts in the
//! rolling windows from when it was last reserved, then from when it was paid (`charged_at`),
//! never from when its invoice was first tried: a payee that fails an invoice once cannot have it
//! paid later outside the window.
//!
//! Paid tokens are kept with their origin and path until used. A token that was paid for but
//! never presented (the process died between paying and retrying) is presented by the next
//! request to the same place, so nothing is paid twice.
//!
//! A paid credential is recorded with the request it is presented for (method, URL, headers
//! without credentials, the body up to [`MAX_RECORDED_BODY`]) as `unanswered` until its
//! answer arrives: a request whose answer was lost (the connection broke, the process died) is
//! sent again with the same credential, never paid again, and an answer recovered that way is
//! recorded as such.
//!
//! A prepaid session (MPP's `session` intent) is kept beside the payments that paid into it,
//! its deposit and top-ups, which buy no token of their own; a refund gives back to the budget
//! windows what it returned (see the `sessions` module).
//!
//! A payment in flight and a token not yet presented belong to the process that made them (its
//! `owner`), so another process neither fails the one nor presents the other while that process
//! lives. Each open ledger holds an exclusive lock on a file of its own under
//! `<ledger>.owners/`; the operating system releases the lock when the process ends, however it
//! ends, and that is how the others tell an owner that died from one still at work.

mod error;
mod owner;
mod records;
mod schema;
mod sessions;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use plannt_l402::{Dialect, PaymentHash, Preimage};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::policy::Budget;
use error::{io, open};
use owner::Owner;
use schema::{
    SCHEMA, add_charged_at, add_debit_reported, add_dialect, add_owner_columns,
    add_request_columns, add_session_column,
};

pub use error::LedgerError;
pub use records::{
    MAX_RECORDED_BODY, OverBudget, PresentedRequest, Record, RefusalRecord, Reservation, Reserved,
    StoredToken, Totals, Unanswered, WindowUse,
};
pub use sessions::{
    NewSession, SessionDebit, SessionRecord, SessionRefused, SessionState, SessionToken,
};

/// The ledger. Cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    conn: Arc<Mutex<Connection>>,
    owner: Arc<Owner>,
}

/// How long a write waits for another process's to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Switches the ledger to WAL mode. The switch takes an exclusive lock and SQLite answers
/// `SQLITE_BUSY` at once, without the busy timeout, while another process opens the same new
/// file: wait for it here, as a write would.
fn wal(conn: &Connection) -> Result<(), rusqlite::Error> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            done => return done,
        }
    }
}

/// How long a dry run's price binds the next real call to the same place.
pub const QUOTE_SECS: u64 = 3_600;

impl Ledger {
    /// Opens (or creates) the ledger file.
    pub fn open(path: &Path) -> Result<Ledger, LedgerError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        // The ledger holds paid tokens not yet used: readable by the user alone. (SQLite gives
        // its -wal and -shm files the database file's permissions.)
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)
                .map_err(io(path))?;
        }
        let mut conn = Connection::open(path).map_err(open(path))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        wal(&conn)?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SCHEMA).map_err(open(path))?;
        add_owner_columns(&mut conn).map_err(open(path))?;
        add_charged_at(&mut conn).map_err(open(path))?;
        add_dialect(&mut conn).map_err(open(path))?;
        add_request_columns(&mut conn).map_err(open(path))?;
        add_session_column(&mut conn).map_err(open(path))?;
        add_debit_reported(&mut conn).map_err(open(path))?;
        let name = path
            .file_name()
            .map_or_else(|| "ledger".into(), |n| n.to_string_lossy().into_owned());
        let owner = Owner::take(path.with_file_name(format!("{name}.owners")))?;
        Ok(Ledger {
            conn: Arc::new(Mutex::new(conn)),
            owner: Arc::new(owner),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, rusqlite::Error>,
    ) -> Result<T, LedgerError> {
        let mut conn = self.conn.lock().map_err(|_| LedgerError::Poisoned)?;
        Ok(f(&mut conn)?)
    }

    /// Runs one statement that changes rows (an `UPDATE`, `INSERT` or `DELETE`) on its own,
    /// outside any transaction of more statements.
    fn execute(&self, sql: &str, params: impl rusqlite::Params) -> Result<(), LedgerError> {
        self.with(|conn| conn.execute(sql, params).map(drop))
    }

    /// Reserves a payment against the budget and records it as pending, atomically across
    /// processes. `Err(OverBudget)` records nothing.
    pub fn reserve(
        &self,
        r: &Reservation<'_>,
        budget: &Budget,
        now: u64,
    ) -> Result<Result<Reserved, OverBudget>, LedgerError> {
        let hash = hex::encode(r.payment_hash);
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
                    let preimage = read_preimage(&preimage);
                    return Ok(Ok(Reserved::AlreadyPaid(preimage)));
                }
                _ => {}
            }
            let cost = r.amount_msat.saturating_add(r.max_fee_msat);
            if let Some(over) = over_budget(&tx, cost, budget, now)? {
                return Ok(Err(over));
            }
            // A payment counts in the budget windows from the moment it is reserved: a failed
            // payment reserved again is charged now, not when it was first tried.
            tx.execute(
                "INSERT INTO payments (payment_hash, origin, path, bolt11, macaroon, amount_msat, max_fee_msat, status, created_at, updated_at, owner, charged_at, dialect)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8, ?8, ?9, ?8, ?10)
                 ON CONFLICT (payment_hash) DO UPDATE SET status = 'pending', max_fee_msat = ?7, updated_at = ?8, owner = ?9, charged_at = ?8, macaroon = ?5, dialect = ?10",
                params![hash, r.origin, r.path, r.bolt11, r.macaroon, r.amount_msat as i64, r.max_fee_msat as i64, now as i64, self.owner.id, r.dialect.as_str()],
            )?;
            tx.commit()?;
            Ok(Ok(Reserved::New))
        })
    }

    /// Whether a payment of `payment_hash` costing `cost_msat` (its amount plus its fee limit)
    /// would fit every budget window now, as [`Ledger::reserve`] would decide, without reserving
    /// anything: what a dry run checks. A payment hash already pending or paid costs nothing more.
    pub fn fits(
        &self,
        payment_hash: &PaymentHash,
        cost_msat: u64,
        budget: &Budget,
        now: u64,
    ) -> Result<Result<(), OverBudget>, LedgerError> {
        let hash = hex::encode(payment_hash);
        self.with(|conn| {
            let known: Option<String> = conn
                .query_row(
                    "SELECT status FROM payments WHERE payment_hash = ?1 AND status IN ('pending', 'paid')",
                    params![hash],
                    |row| row.get(0),
                )
                .optional()?;
            if known.is_some() {
                return Ok(Ok(()));
            }
            Ok(match over_budget(conn, cost_msat, budget, now)? {
                Some(over) => Err(over),
                None => Ok(()),
            })
        })
    }

    /// Marks a payment paid and stores its token for the place it was bought for (a session's
    /// deposit or top-up buys no token: the session is presented instead). The token
    /// stays this ledger's to present if it made the payment; a payment found paid after its
    /// owner died leaves a token for anyone. From now on it counts in the budget windows at `now`,
    /// when it was paid. A payment already paid is left as it is: another process that saw it
    /// pending and its owner gone (the owner finished it and exited meanwhile) settles it again,
    /// and its token, spent and dropped by then, must not come back for anyone to present.
    pub fn mark_paid(
        &self,
        payment_hash: &PaymentHash,
        preimage: &Preimage,
        fee_msat: u64,
        now: u64,
    ) -> Result<(), LedgerError> {
        let hash = hex::encode(payment_hash);
        let preimage = preimage.to_hex();
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let changed = tx.execute(
                "UPDATE payments SET status = 'paid', preimage = ?2, fee_msat = ?3, updated_at = ?4, charged_at = ?4 WHERE payment_hash = ?1 AND status <> 'paid'",
                params![hash, preimage, fee_msat as i64, now as i64],
            )?;
            if changed == 0 {
                return Ok(());
            }
            tx.execute(
                "INSERT OR IGNORE INTO tokens (payment_hash, origin, path, macaroon, preimage, used, created_at, owner, dialect)
                 SELECT payment_hash, origin, path, macaroon, ?2, 0, ?3, CASE WHEN owner = ?4 THEN ?4 END, dialect
                 FROM payments WHERE payment_hash = ?1 AND session_id IS NULL",
                params![hash, preimage, now as i64, self.owner.id],
            )?;
            tx.commit()
        })
    }

    /// Marks a payment failed: nothing was paid, its reservation is released.
    pub fn mark_failed(&self, payment_hash: &PaymentHash, now: u64) -> Result<(), LedgerError> {
        let hash = hex::encode(payment_hash);
        self.execute(
            "UPDATE payments SET status = 'failed', updated_at = ?2 WHERE payment_hash = ?1 AND status = 'pending'",
            params![hash, now as i64],
        )
    }

    /// The token to present for a place: an unused paid one first (a crash may have left it),
    /// then a used one the server let us reuse. A token presented for a request whose answer
    /// was lost is kept for that request ([`Ledger::unanswered_for`]). An unused token that another open ledger paid
    /// for and is about to present is left to it; one whose owner died is claimed for this one,
    /// so two processes never present the same single-use token.
    pub fn token_for(&self, origin: &str, path: &str) -> Result<Option<StoredToken>, LedgerError> {
        let owner = &self.owner;
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let candidates = {
                let mut stmt = tx.prepare(
                    "SELECT payment_hash, macaroon, preimage, used, owner, dialect FROM tokens WHERE origin = ?1 AND path = ?2
                     AND payment_hash NOT IN (SELECT payment_hash FROM payments WHERE answer = 'unanswered')
                     ORDER BY used ASC, created_at DESC",
                )?;
                let rows = stmt.query_map(params![origin, path], |row| {
                    let hash: String = row.get(0)?;
                    let preimage: String = row.get(2)?;
                    let token = StoredToken {
                        dialect: read_dialect(&row.get::<_, String>(5)?),
                        payment_hash: read_hash(&hash),
                        macaroon: row.get(1)?,
                        preimage: read_preimage(&preimage),
                        used: row.get::<_, i64>(3)? != 0,
                    };
                    Ok((hash, token, row.get::<_, Option<String>>(4)?))
                })?;
                rows.collect::<Result<Vec<_>, _>>()?
            };
            for (hash, token, held_by) in candidates {
                match held_by.as_deref() {
                    // A reusable token is shared; this ledger's own is its to present.
                    _ if token.used => return Ok(Some(token)),
                    Some(id) if id == owner.id => return Ok(Some(token)),
                    Some(id) if owner.alive(id) => continue,
                    _ => {
                        tx.execute(
                            "UPDATE tokens SET owner = ?2 WHERE payment_hash = ?1",
                            params![hash, owner.id],
                        )?;
                        tx.commit()?;
                        return Ok(Some(token));
                    }
                }
            }
            Ok(None)
        })
    }

    /// The server accepted the token and lets it be reused: keep it, marked used.
    pub fn token_used(&self, payment_hash: &PaymentHash) -> Result<(), LedgerError> {
        let hash = hex::encode(payment_hash);
        self.execute(
            "UPDATE tokens SET used = 1, owner = NULL WHERE payment_hash = ?1",
            params![hash],
        )
    }

    /// The token is spent (or refused): forget it.
    pub fn drop_token(&self, payment_hash: &PaymentHash) -> Result<(), LedgerError> {
        let hash = hex::encode(payment_hash);
        self.execute("DELETE FROM tokens WHERE payment_hash = ?1", params![hash])
    }

    /// Payments still pending: a crash interrupted them. Look each up before anything else.
    pub fn pending(&self) -> Result<Vec<(String, PaymentHash)>, LedgerError> {
        self.with(|conn| {
            let mut stmt =
                conn.prepare("SELECT payment_hash, bolt11 FROM payments WHERE status = 'pending'")?;
            let rows = stmt.query_map([], |row| {
                let hash: String = row.get(0)?;
                let bolt11: String = row.get(1)?;
                Ok((bolt11, read_hash(&hash)))
            })?;
            rows.collect()
        })
    }

    /// Pending payments to look up: those of this ledger, and those whose owner died (a crash
    /// interrupted them). A payment another open ledger is making is left to it.
    pub fn pending_to_recover(&self) -> Result<Vec<PaymentHash>, LedgerError> {
        let owner = &self.owner;
        self.with(|conn| {
            let mut stmt =
                conn.prepare("SELECT payment_hash, owner FROM payments WHERE status = 'pending'")?;
            let rows = stmt.query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, Option<String>>(1)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (hash, held_by) = row?;
                if held_by.is_some_and(|id| id != owner.id && owner.alive(&id)) {
                    continue;
                }
                out.push(read_hash(&hash));
            }
            Ok(out)
        })
    }

    /// Records the price a dry run saw for a place.
    pub fn record_quote(
        &self,
        origin: &str,
        path: &str,
        amount_msat: u64,
        now: u64,
    ) -> Result<(), LedgerError> {
        self.execute(
            "INSERT INTO quotes (origin, path, amount_msat, quoted_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (origin, path) DO UPDATE SET amount_msat = ?3, quoted_at = ?4",
            params![origin, path, amount_msat as i64, now as i64],
        )
    }

    /// The price a recent dry run saw for a place, if any (within [`QUOTE_SECS`]).
    pub fn quote_for(
        &self,
        origin: &str,
        path: &str,
        now: u64,
    ) -> Result<Option<u64>, LedgerError> {
        self.with(|conn| {
            conn.query_row(
                "SELECT amount_msat FROM quotes WHERE origin = ?1 AND path = ?2 AND quoted_at >= ?3",
                params![origin, path, now.saturating_sub(QUOTE_SECS) as i64],
                |row| row.get::<_, i64>(0),
            )
            .optional()
            .map(|v| v.map(|m| m as u64))
        })
    }

    /// Records a refused challenge: nothing was paid, and the ledger says why.
    pub fn record_refusal(
        &self,
        origin: &str,
        path: &str,
        check: &str,
        detail: &str,
        now: u64,
    ) -> Result<(), LedgerError> {
        self.execute(
            "INSERT INTO refusals (origin, path, check_name, detail, at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![origin, path, check, detail, now as i64],
        )
    }

    /// The latest refusals, newest first.
    pub fn refusals(&self, limit: usize) -> Result<Vec<RefusalRecord>, LedgerError> {
        self.with(|conn| {
            let mut stmt = conn.prepare(
                "SELECT origin, path, check_name, detail, at FROM refusals ORDER BY at DESC, rowid DESC LIMIT ?1",
            )?;
            let rows = stmt.query_map(params![limit as i64], |row| {
                Ok(RefusalRecord {
                    origin: row.get(0)?,
                    path: row.get(1)?,
                    check: row.get(2)?,
                    detail: row.get(3)?,
                    at: row.get::<_, i64>(4)? as u64,
                })
            })?;
            rows.collect()
        })
    }

    /// Sats paid (amount and fee) per host and per UTC day, for `plannt ledger`.
    pub fn totals(&self) -> Result<Totals, LedgerError> {
        self.with(|conn| {
            let mut by_host = conn.prepare(
                "SELECT origin, COUNT(*), COALESCE(SUM(amount_msat + fee_msat), 0) FROM payments
                 WHERE status = 'paid' GROUP BY origin ORDER BY 3 DESC",
            )?;
            let hosts = by_host
                .query_map([], |row| Ok((row.get(0)?, row.get::<_, i64>(1)? as u64, (row.get::<_, i64>(2)? as u64).div_ceil(1000))))?
                .collect::<Result<Vec<_>, _>>()?;
            let mut by_day = conn.prepare(
                "SELECT date(created_at, 'unixepoch'), COUNT(*), COALESCE(SUM(amount_msat + fee_msat), 0) FROM payments
                 WHERE status = 'paid' GROUP BY 1 ORDER BY 1 DESC",
            )?;
            let days = by_day
                .query_map([], |row| Ok((row.get(0)?, row.get::<_, i64>(1)? as u64, (row.get::<_, i64>(2)? as u64).div_ceil(1000))))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Totals { hosts, days })
        })
    }

    /// What each budget window has used and has left.
    pub fn usage(&self, budget: &Budget, now: u64) -> Result<Vec<WindowUse>, LedgerError> {
        self.with(|conn| {
            budget
                .windows(now)
                .into_iter()
                .map(|(window, limit, since)| {
                    let used = spent_since(conn, since)?.div_ceil(1000);
                    Ok(WindowUse {
                        window,
                        limit_sats: limit,
                        used_sats: used,
                        left_sats: limit.map(|l| l.saturating_sub(used)),
                    })
                })
                .collect()
        })
    }

    /// Records the request a paid credential is about to be presented for: it stays
    /// `unanswered` until [`Ledger::answered`].
    pub fn presenting(
        &self,
        payment_hash: &PaymentHash,
        request: &PresentedRequest,
        now: u64,
    ) -> Result<(), LedgerError> {
        let hash = hex::encode(payment_hash);
        let headers = serde_json::to_string(&request.headers).expect("pairs of strings serialize");
        self.execute(
            "UPDATE payments SET request_method = ?2, request_url = ?3, request_headers = ?4, request_body = ?5,
             request_sha256 = ?6, request_len = ?7, presented_at = ?8, answer = 'unanswered', updated_at = ?8
             WHERE payment_hash = ?1",
            params![hash, request.method, request.url, headers, request.body, request.body_sha256, request.body_len as i64, now as i64],
        )
    }

    /// The credential never left: the connection to the server could not be made. A payment
    /// presented before stays unanswered; one presented for the first time reads as never
    /// presented again.
    pub fn not_presented(&self, payment_hash: &PaymentHash) -> Result<(), LedgerError> {
        let hash = hex::encode(payment_hash);
        self.execute(
            "UPDATE payments SET answer = NULL WHERE payment_hash = ?1 AND answer = 'unanswered'",
            params![hash],
        )
    }

    /// The answer arrived (its status and headers; a body that breaks off later is
    /// [`Ledger::answer_broke_off`]): `recovered` when it came to the same credential presented
    /// again after the first answer was lost.
    pub fn answered(
        &self,
        payment_hash: &PaymentHash,
        recovered: bool,
        now: u64,
    ) -> Result<(), LedgerError> {
        let hash = hex::encode(payment_hash);
        let answer = if recovered { "recovered" } else { "answered" };
        self.execute(
            "UPDATE payments SET answer = ?2, updated_at = ?3 WHERE payment_hash = ?1 AND answer = 'unanswered'",
            params![hash, answer, now as i64],
        )
    }

    /// The body of the answer broke off: the request is unanswered again, to be sent again.
    pub fn answer_broke_off(&self, payment_hash: &PaymentHash) -> Result<(), LedgerError> {
        let hash = hex::encode(payment_hash);
        self.execute(
            "UPDATE payments SET answer = 'unanswered' WHERE payment_hash = ?1 AND answer IN ('answered', 'recovered')",
            params![hash],
        )
    }

    /// The server kept no answer to the request: it is not sent again from the ledger.
    pub fn answer_lost(&self, payment_hash: &PaymentHash, now: u64) -> Result<(), LedgerError> {
        let hash = hex::encode(payment_hash);
        self.execute(
            "UPDATE payments SET answer = 'lost', updated_at = ?2 WHERE payment_hash = ?1 AND answer = 'unanswered'",
            params![hash, now as i64],
        )
    }

    /// Paid requests presented and never answered, newest first.
    pub fn unanswered(&self) -> Result<Vec<Unanswered>, LedgerError> {
        self.with(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {UNANSWERED_COLUMNS} FROM payments WHERE answer = 'unanswered' AND status = 'paid'
                 ORDER BY presented_at DESC, rowid DESC"
            ))?;
            let rows = stmt.query_map([], |row| Ok(read_unanswered(row)?.0))?;
            rows.collect()
        })
    }

    /// The paid request `payment_hash` presented and never answered, with the token to present
    /// for it again; `None` when there is none (never presented, answered, or lost).
    pub fn unanswered_token(
        &self,
        payment_hash: &PaymentHash,
    ) -> Result<Option<(Unanswered, StoredToken)>, LedgerError> {
        let hash = hex::encode(payment_hash);
        self.with(|conn| {
            conn.query_row(
                &format!(
                    "SELECT {UNANSWERED_COLUMNS} FROM payments WHERE payment_hash = ?1 AND answer = 'unanswered' AND status = 'paid'"
                ),
                params![hash],
                read_unanswered,
            )
            .optional()
        })
    }

    /// The token of a paid request presented and never answered that is the same request as
    /// `request` (method, URL, body digest), to present again instead of paying. One whose
    /// payer still runs is left to it; one whose payer died is claimed for this ledger.
    pub fn unanswered_for(
        &self,
        request: &PresentedRequest,
    ) -> Result<Option<StoredToken>, LedgerError> {
        let owner = &self.owner;
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let candidates = {
                let mut stmt = tx.prepare(&format!(
                    "SELECT {UNANSWERED_COLUMNS}, owner FROM payments WHERE answer = 'unanswered' AND status = 'paid'
                     AND request_method = ?1 AND request_url = ?2 AND request_sha256 = ?3
                     ORDER BY presented_at DESC, rowid DESC"
                ))?;
                let rows = stmt.query_map(
                    params![request.method, request.url, request.body_sha256],
                    |row| Ok((read_unanswered(row)?.1, row.get::<_, Option<String>>(14)?)),
                )?;
                rows.collect::<Result<Vec<_>, _>>()?
            };
            for (token, held_by) in candidates {
                if held_by
                    .as_deref()
                    .is_some_and(|id| id != owner.id && owner.alive(id))
                {
                    continue;
                }
                tx.execute(
                    "UPDATE payments SET owner = ?2 WHERE payment_hash = ?1",
                    params![hex::encode(token.payment_hash), owner.id],
                )?;
                tx.commit()?;
                return Ok(Some(token));
            }
            Ok(None)
        })
    }

    /// The latest payments, newest first.
    pub fn recent(&self, limit: usize) -> Result<Vec<Record>, LedgerError> {
        self.with(|conn| {
            let mut stmt = conn.prepare(
                "SELECT payment_hash, origin, path, amount_msat, fee_msat, status, preimage, created_at, dialect, answer
                 FROM payments ORDER BY created_at DESC, rowid DESC LIMIT ?1",
            )?;
            let rows = stmt.query_map(params![limit as i64], |row| {
                Ok(Record {
                    payment_hash: row.get(0)?,
                    origin: row.get(1)?,
                    path: row.get(2)?,
                    amount_sats: (row.get::<_, i64>(3)? as u64).div_ceil(1000),
                    fee_msat: row.get::<_, i64>(4)? as u64,
                    status: row.get(5)?,
                    preimage: row.get(6)?,
                    created_at: row.get::<_, i64>(7)? as u64,
                    dialect: row.get(8)?,
                    answer: row.get(9)?,
                })
            })?;
            rows.collect()
        })
    }
}

/// What [`read_unanswered`] reads, in its order.
const UNANSWERED_COLUMNS: &str = "payment_hash, dialect, amount_msat, origin, path, request_method, request_url, request_headers, request_body, request_sha256, request_len, presented_at, macaroon, preimage";

/// A row of [`UNANSWERED_COLUMNS`]: the request, and the token to present for it again.
fn read_unanswered(row: &rusqlite::Row<'_>) -> Result<(Unanswered, StoredToken), rusqlite::Error> {
    let hash: String = row.get(0)?;
    let dialect: String = row.get(1)?;
    let headers: Option<String> = row.get(7)?;
    let body: Option<Vec<u8>> = row.get(8)?;
    let request = PresentedRequest {
        method: row.get::<_, Option<String>>(5)?.unwrap_or_default(),
        url: row.get::<_, Option<String>>(6)?.unwrap_or_default(),
        headers: headers
            .and_then(|h| serde_json::from_str(&h).ok())
            .unwrap_or_default(),
        body,
        body_sha256: row.get::<_, Option<String>>(9)?.unwrap_or_default(),
        body_len: row.get::<_, Option<i64>>(10)?.unwrap_or_default() as u64,
    };
    let token = StoredToken {
        dialect: read_dialect(&dialect),
        payment_hash: read_hash(&hash),
        macaroon: row.get(12)?,
        preimage: read_preimage(&row.get::<_, Option<String>>(13)?.unwrap_or_default()),
        used: false,
    };
    let unanswered = Unanswered {
        payment_hash: hash,
        dialect,
        amount_sats: (row.get::<_, i64>(2)? as u64).div_ceil(1000),
        origin: row.get(3)?,
        path: row.get(4)?,
        method: request.method.clone(),
        presented_at: row.get::<_, Option<i64>>(11)?.unwrap_or_default() as u64,
        retryable: request.body.is_some() && !request.url.is_empty(),
        request,
    };
    Ok((unanswered, token))
}

/// A payment hash as the ledger stores it: hex it wrote itself (all zeros if the file was
/// edited into something else, which matches no real payment).
fn read_hash(text: &str) -> PaymentHash {
    PaymentHash::from_hex(text).unwrap_or(PaymentHash([0; 32]))
}

/// A dialect as the ledger stores it (L402, the dialect of every older row, if unknown).
fn read_dialect(text: &str) -> Dialect {
    text.parse().unwrap_or(Dialect::L402)
}

/// A preimage as the ledger stores it (all zeros, which pays nothing, if unreadable).
fn read_preimage(text: &str) -> Preimage {
    Preimage::from_hex(text).unwrap_or(Preimage::new([0; 32]))
}

/// When a payment counts in the budget windows: when it was last reserved, or when it was paid.
/// (`created_at` stands in for a row an older Plannt wrote while this one had the ledger open.)
const CHARGED_AT: &str = "COALESCE(charged_at, created_at)";

/// Millisatoshis paid or reserved since `since` (all time for `None`): pending payments count
/// their amount plus their fee limit, paid ones their amount plus the fee, less what sessions
/// refunded ([`given_back_since`]).
fn spent_since(conn: &Connection, since: Option<u64>) -> Result<u64, rusqlite::Error> {
    let since = since.unwrap_or(0) as i64;
    let spent = conn
        .query_row(
            &format!("SELECT COALESCE(SUM(CASE status WHEN 'pending' THEN amount_msat + max_fee_msat ELSE amount_msat + fee_msat END), 0)
             FROM payments WHERE status IN ('pending', 'paid') AND {CHARGED_AT} >= ?1"),
            params![since],
            |row| row.get::<_, i64>(0),
        )?
        .max(0) as u64;
    Ok(spent.saturating_sub(given_back_since(conn, since)?))
}

/// Millisatoshis sessions refunded that a window starting at `since` gives back: a refund
/// counts in a window once it has arrived, and never for more than the deposits and top-ups of
/// its session the same window counted (a refund for a deposit paid before the window gives
/// nothing back to it, and a server that refunds more than it was paid gives back no more).
fn given_back_since(conn: &Connection, since: i64) -> Result<u64, rusqlite::Error> {
    conn.query_row(
        "SELECT COALESCE(SUM(MIN(s.refund_msat, (SELECT COALESCE(SUM(p.amount_msat), 0) FROM payments p
           WHERE p.session_id = s.session_id AND p.status = 'paid' AND COALESCE(p.charged_at, p.created_at) >= ?1))), 0)
         FROM sessions s WHERE s.refund_msat > 0 AND s.refunded_at >= ?1",
        params![since],
        |row| row.get::<_, i64>(0),
    )
    .map(|v| v.max(0) as u64)
}

/// The first budget window that cannot take `cost` more millisatoshis now, if any.
fn over_budget(
    conn: &Connection,
    cost: u64,
    budget: &Budget,
    now: u64,
) -> Result<Option<OverBudget>, rusqlite::Error> {
    for (window, limit, since) in budget.windows(now) {
        let Some(limit) = limit else { continue };
        let used = spent_since(conn, since)?;
        let limit_msat = limit.saturating_mul(1000);
        if used.saturating_add(cost) > limit_msat {
            let renews_in_secs = match since {
                Some(_) => oldest_since(conn, since)?
                    .map(|t| (t + budget.window_secs(window)).saturating_sub(now)),
                None => None,
            };
            return Ok(Some(OverBudget {
                window,
                limit_sats: limit,
                left_sats: limit_msat.saturating_sub(used) / 1000,
                renews_in_secs,
                cost_sats: cost.div_ceil(1000),
            }));
        }
    }
    Ok(None)
}

fn oldest_since(conn: &Connection, since: Option<u64>) -> Result<Option<u64>, rusqlite::Error> {
    let since = since.unwrap_or(0) as i64;
    conn.query_row(
        &format!("SELECT MIN({CHARGED_AT}) FROM payments WHERE status IN ('pending', 'paid') AND {CHARGED_AT} >= ?1"),
        params![since],
        |row| row.get::<_, Option<i64>>(0),
    )
    .map(|v| v.map(|t| t as u64))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// Reserves and pays 21 sats for `http://a.example/paid` under `hash`.
    fn paid(ledger: &Ledger, hash: &PaymentHash, preimage: &Preimage) {
        let reservation = Reservation {
            dialect: Dialect::L402,
            payment_hash: hash,
            origin: "http://a.example",
            path: "/paid",
            bolt11: "lnbcrt1",
            macaroon: "AgE",
            amount_msat: 21_000,
            max_fee_msat: 0,
        };
        ledger
            .reserve(&reservation, &Budget::default(), 1_800_000_000)
            .unwrap()
            .unwrap();
        ledger.mark_paid(hash, preimage, 0, 1_800_000_000).unwrap();
    }

    #[test]
    fn the_ledger_and_its_wal_and_shm_files_are_the_users_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.sqlite");
        let ledger = Ledger::open(&path).unwrap();
        paid(&ledger, &PaymentHash([9u8; 32]), &Preimage::new([1; 32]));
        // While it is open, SQLite keeps its write-ahead log and shared memory beside it.
        for name in ["ledger.sqlite", "ledger.sqlite-wal", "ledger.sqlite-shm"] {
            let mode = std::fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
    }

    /// Twenty processes that start at once on a new ledger each open it: SQLite's switch to WAL
    /// does not wait for the busy timeout on its own. (Threads, each with a connection of its
    /// own, race as processes do; without the wait, two runs of three failed within 20 rounds.)
    #[test]
    fn twenty_ledgers_opened_at_once_on_a_new_file_all_open() {
        for _ in 0..40 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("ledger.sqlite");
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(20));
            let opened: Vec<_> = (0..20)
                .map(|_| {
                    let (path, barrier) = (path.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        Ledger::open(&path).map(drop)
                    })
                })
                .collect();
            for handle in opened {
                handle.join().unwrap().unwrap();
            }
        }
    }

    /// Two processes: one pays, presents and drops its spent token, and exits; the other, which
    /// listed the payment as pending before that and found its owner gone after, settles it
    /// again. The token stays dropped and the payment answered: nobody presents a spent token,
    /// and nobody takes its request over as one whose answer was lost.
    #[test]
    fn a_payment_settled_again_after_its_owner_finished_it_stays_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.sqlite");
        let payer = Ledger::open(&path).unwrap();
        let hash = PaymentHash([7u8; 32]);
        let preimage = Preimage::new([2; 32]);
        let request = PresentedRequest {
            method: "GET".into(),
            url: "http://a.example/paid".into(),
            headers: Vec::new(),
            body: Some(Vec::new()),
            body_sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"")),
            body_len: 0,
        };
        paid(&payer, &hash, &preimage);
        payer.presenting(&hash, &request, 1_800_000_001).unwrap();
        payer.drop_token(&hash).unwrap();
        payer.answered(&hash, false, 1_800_000_001).unwrap();
        drop(payer);

        let other = Ledger::open(&path).unwrap();
        other.mark_paid(&hash, &preimage, 0, 1_800_000_005).unwrap();
        assert!(
            other
                .token_for("http://a.example", "/paid")
                .unwrap()
                .is_none()
        );
        assert!(other.unanswered_for(&request).unwrap().is_none());
        let records = other.recent(10).unwrap();
        assert_eq!(records.len(), 1, "{records:?}");
        assert_eq!(records[0].status, "paid");
        assert_eq!(records[0].answer.as_deref(), Some("answered"));
    }
}
