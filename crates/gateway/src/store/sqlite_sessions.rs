//! Prepaid session balances in SQLite: one file, every change durable before it returns.
//!
//! Two tables: `sessions` (one row per session, its balance, holds, spending, return invoice,
//! state and refund) and `deposits` (every deposit's payment hash, the open's and each top-up's,
//! with the session it credited). Each method is one `BEGIN IMMEDIATE` transaction: the row is
//! read, changed and written back under SQLite's write lock, so parallel holds on one session
//! are serialised and a deposit is credited once. The file runs in WAL mode with
//! `synchronous=FULL`: an open, a top-up or a `closing` mark is on disk before the gateway
//! answers, or pays.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use plannt_l402::PaymentHash;
use plannt_l402::mpp::RefundStatus;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::StoreError;
use super::sessions::{
    BeginClose, Hold, NewSession, Open, Session, SessionState, SessionStore, TopUp, step,
};
use super::sqlite::sql_error;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sessions (
    id             BLOB PRIMARY KEY,
    route          TEXT NOT NULL,
    deposited      INTEGER NOT NULL,
    balance        INTEGER NOT NULL,
    held           INTEGER NOT NULL,
    spent          INTEGER NOT NULL,
    return_invoice TEXT NOT NULL,
    idle_secs      INTEGER NOT NULL,
    last_used      INTEGER NOT NULL,
    state          TEXT NOT NULL,
    refund         INTEGER NOT NULL,
    refund_status  TEXT NULL,
    held_at        INTEGER NOT NULL DEFAULT 0,
    refund_attempts INTEGER NOT NULL DEFAULT 0,
    refund_at      INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sessions_state ON sessions (state);
CREATE TABLE IF NOT EXISTS deposits (
    hash    BLOB PRIMARY KEY,
    session BLOB NOT NULL
) WITHOUT ROWID;";

const COLUMNS: &str = "id, route, deposited, balance, held, spent, return_invoice, idle_secs, \
                       last_used, state, refund, refund_status, held_at, refund_attempts, \
                       refund_at";

/// The columns added after the first release, with their definitions: a file made before them
/// gets them when it is opened (its holds then count as taken at 0, and so as stale, which
/// they are: one process holds the file, and it has restarted).
const ADDED: [(&str, &str); 3] = [
    ("held_at", "INTEGER NOT NULL DEFAULT 0"),
    ("refund_attempts", "INTEGER NOT NULL DEFAULT 0"),
    ("refund_at", "INTEGER NOT NULL DEFAULT 0"),
];

/// Sessions in a SQLite file. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct SqliteSessions {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteSessions")
            .field("path", &self.path)
            .finish()
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn read_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Session> {
    let id: Vec<u8> = row.get(0)?;
    let id: [u8; 32] = id.try_into().unwrap_or([0; 32]);
    let state: String = row.get(9)?;
    let status: Option<String> = row.get(11)?;
    Ok(Session {
        id: PaymentHash(id),
        route: row.get(1)?,
        deposited: to_u64(row.get(2)?),
        balance: to_u64(row.get(3)?),
        held: to_u64(row.get(4)?),
        spent: to_u64(row.get(5)?),
        return_invoice: row.get(6)?,
        idle_secs: to_u64(row.get(7)?),
        last_used: to_u64(row.get(8)?),
        state: SessionState::from_name(&state).unwrap_or(SessionState::Closed),
        refund: to_u64(row.get(10)?),
        refund_status: status.as_deref().and_then(|s| match s {
            "succeeded" => Some(RefundStatus::Succeeded),
            "failed" => Some(RefundStatus::Failed),
            "skipped" => Some(RefundStatus::Skipped),
            _ => None,
        }),
        held_at: to_u64(row.get(12)?),
        refund_attempts: to_u64(row.get(13)?),
        refund_at: to_u64(row.get(14)?),
    })
}

fn load(tx: &Transaction<'_>, id: &PaymentHash) -> rusqlite::Result<Option<Session>> {
    tx.query_row(
        &format!("SELECT {COLUMNS} FROM sessions WHERE id = ?1"),
        params![&id.0[..]],
        read_row,
    )
    .optional()
}

fn save(tx: &Transaction<'_>, s: &Session) -> rusqlite::Result<()> {
    tx.execute(
        &format!(
            "INSERT OR REPLACE INTO sessions ({COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
        ),
        params![
            &s.id.0[..],
            s.route,
            to_i64(s.deposited),
            to_i64(s.balance),
            to_i64(s.held),
            to_i64(s.spent),
            s.return_invoice,
            to_i64(s.idle_secs),
            to_i64(s.last_used),
            s.state.as_str(),
            to_i64(s.refund),
            s.refund_status.map(|r| r.as_str()),
            to_i64(s.held_at),
            to_i64(s.refund_attempts),
            to_i64(s.refund_at),
        ],
    )?;
    Ok(())
}

fn deposit_counted(tx: &Transaction<'_>, hash: &PaymentHash) -> rusqlite::Result<bool> {
    Ok(tx
        .query_row(
            "SELECT 1 FROM deposits WHERE hash = ?1",
            params![&hash.0[..]],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

fn count_deposit(
    tx: &Transaction<'_>,
    hash: &PaymentHash,
    session: &PaymentHash,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO deposits (hash, session) VALUES (?1, ?2)",
        params![&hash.0[..], &session.0[..]],
    )?;
    Ok(())
}

/// Adds the columns a file made before them lacks.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let mut statement = conn.prepare("SELECT name FROM pragma_table_info('sessions')")?;
    let have: Vec<String> = statement
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for (column, definition) in ADDED {
        if !have.iter().any(|c| c == column) {
            conn.execute_batch(&format!(
                "ALTER TABLE sessions ADD COLUMN {column} {definition}"
            ))?;
        }
    }
    Ok(())
}

impl SqliteSessions {
    /// Opens (creating if needed) the sessions file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let shown = path.display().to_string();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::Io {
                doing: "cannot create the folder of",
                path: shown.clone(),
                source: Arc::new(e),
            })?;
        }
        let conn = Connection::open(&path).map_err(|e| sql_error(&shown, "cannot open", e))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(|e| sql_error(&shown, "cannot configure", e))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| sql_error(&shown, "cannot set WAL on", e))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| sql_error(&shown, "cannot set synchronous on", e))?;
        conn.execute_batch(SCHEMA)
            .map_err(|e| sql_error(&shown, "cannot create the tables of", e))?;
        migrate(&conn).map_err(|e| sql_error(&shown, "cannot add the new columns to", e))?;
        Ok(SqliteSessions {
            conn: Arc::new(Mutex::new(conn)),
            path,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in one immediate transaction on a blocking thread, committed if it succeeds.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        let shown = self.path.display().to_string();
        let failed_path = shown.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| sql_error(&shown, "cannot write to", e))?;
            let out = f(&tx).map_err(|e| sql_error(&shown, "cannot write to", e))?;
            tx.commit()
                .map_err(|e| sql_error(&shown, "cannot write to", e))?;
            Ok(out)
        })
        .await
        .map_err(|_| StoreError::Stopped(failed_path))?
    }

    /// Changes one session in one transaction.
    async fn change<T: Send + 'static>(
        &self,
        id: &PaymentHash,
        unknown: T,
        f: impl FnOnce(&mut Session) -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        let id = *id;
        self.write(move |tx| match load(tx, &id)? {
            Some(mut session) => {
                let out = f(&mut session);
                save(tx, &session)?;
                Ok(out)
            }
            None => Ok(unknown),
        })
        .await
    }

    async fn select(&self, filter: &'static str) -> Result<Vec<Session>, StoreError> {
        self.write(move |tx| {
            let mut statement = tx.prepare(&format!("SELECT {COLUMNS} FROM sessions {filter}"))?;
            let rows = statement.query_map([], read_row)?;
            rows.collect()
        })
        .await
    }
}

#[async_trait]
impl SessionStore for SqliteSessions {
    async fn open(&self, new: &NewSession) -> Result<Open, StoreError> {
        let new = new.clone();
        self.write(move |tx| {
            if let Some(existing) = load(tx, &new.id)? {
                return Ok(Open::Exists(existing));
            }
            if deposit_counted(tx, &new.id)? {
                return Ok(Open::DepositSpent);
            }
            let session = step::new_session(&new);
            count_deposit(tx, &new.id, &new.id)?;
            save(tx, &session)?;
            Ok(Open::Opened(session))
        })
        .await
    }

    async fn hold(&self, id: &PaymentHash, sats: u64, now: u64) -> Result<Hold, StoreError> {
        self.change(id, Hold::Unknown, move |s| step::hold(s, sats, now))
            .await
    }

    async fn settle(
        &self,
        id: &PaymentHash,
        held: u64,
        used: u64,
        now: u64,
    ) -> Result<Option<u64>, StoreError> {
        self.change(id, None, move |s| {
            step::settle(s, held, used, now);
            Some(s.balance)
        })
        .await
    }

    async fn top_up(
        &self,
        id: &PaymentHash,
        deposit: &PaymentHash,
        sats: u64,
        now: u64,
    ) -> Result<TopUp, StoreError> {
        let (id, deposit) = (*id, *deposit);
        self.write(move |tx| {
            let Some(mut session) = load(tx, &id)? else {
                return Ok(TopUp::Unknown);
            };
            if session.state != SessionState::Open {
                return Ok(TopUp::NotOpen);
            }
            if deposit_counted(tx, &deposit)? {
                return Ok(TopUp::DepositSpent);
            }
            let done = step::top_up(&mut session, sats, now);
            count_deposit(tx, &deposit, &id)?;
            save(tx, &session)?;
            Ok(done)
        })
        .await
    }

    async fn begin_close(&self, id: &PaymentHash, now: u64) -> Result<BeginClose, StoreError> {
        self.change(id, BeginClose::Unknown, move |s| step::begin_close(s, now))
            .await
    }

    async fn claim_refund(
        &self,
        id: &PaymentHash,
        now: u64,
        until: u64,
    ) -> Result<Option<Session>, StoreError> {
        self.change(id, None, move |s| {
            step::claim_refund(s, now, until).then(|| s.clone())
        })
        .await
    }

    async fn release_stale(
        &self,
        now: u64,
        older_than: u64,
    ) -> Result<Vec<(PaymentHash, u64)>, StoreError> {
        let taken_by = now.saturating_sub(older_than);
        self.write(move |tx| {
            let stale: Vec<Session> = {
                let mut statement = tx.prepare(&format!(
                    "SELECT {COLUMNS} FROM sessions WHERE state = 'open' AND held > 0 \
                     AND held_at <= ?1"
                ))?;
                let rows = statement.query_map(params![to_i64(taken_by)], read_row)?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            let mut released = Vec::new();
            for mut session in stale {
                if step::is_stale(&session, taken_by) {
                    let sats = step::release(&mut session);
                    save(tx, &session)?;
                    released.push((session.id, sats));
                }
            }
            Ok(released)
        })
        .await
    }

    async fn finish_close(
        &self,
        id: &PaymentHash,
        status: RefundStatus,
    ) -> Result<Option<Session>, StoreError> {
        self.change(id, None, move |s| {
            step::finish_close(s, status);
            Some(s.clone())
        })
        .await
    }

    async fn get(&self, id: &PaymentHash) -> Result<Option<Session>, StoreError> {
        let id = *id;
        self.write(move |tx| load(tx, &id)).await
    }

    async fn idle(&self, now: u64) -> Result<Vec<PaymentHash>, StoreError> {
        Ok(self
            .select("WHERE state = 'open' AND held = 0")
            .await?
            .into_iter()
            .filter(|s| step::is_idle(s, now))
            .map(|s| s.id)
            .collect())
    }

    async fn closing(&self) -> Result<Vec<Session>, StoreError> {
        self.select("WHERE state = 'closing'").await
    }

    fn name(&self) -> &'static str {
        "sqlite"
    }
}
