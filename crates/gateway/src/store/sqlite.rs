//! The SQLite spent set: the default store, one file that survives a crash.
//!
//! The file holds one table, `spent(hash BLOB PRIMARY KEY, until INTEGER NOT NULL, ticket BLOB
//! NULL)`: a row with a ticket is a pending claim, a row without one is spent for good.
//!
//! **Durable before it answers.** The database runs in WAL mode with `synchronous=FULL`, so every
//! write transaction is on disk (the WAL fsynced) before [`SpentStore::claim`] returns
//! [`Claim::Won`] and the gateway forwards the request. A token whose request got a response is
//! never accepted again, even after `kill -9` or a power cut and a restart.
//!
//! **Pending claims are released at open.** A pending row left by a previous process belongs to
//! a request that process never answered (it died between the claim and the commit): no client
//! got a response for that token, so [`SqliteStore::open`] deletes these rows and the tokens work
//! again. To make that safe, one process at a time holds the file: `open` takes an exclusive lock
//! on a sidecar `<file>.lock` and refuses, with an error, a file another process has open.
//!
//! **Group commit.** SQLite is blocking and every write costs an fsync. One worker thread owns
//! the connection; the async methods hand it jobs over a channel and await the answer. The worker
//! takes every job waiting in the queue, runs them in one transaction and answers them all after
//! a single `COMMIT`: under load many claims share one fsync, and nothing is answered before it
//! is durable. If the transaction fails, every job in it gets a [`StoreError`] (nothing of it was
//! written), and the gateway fails closed.

use plannt_l402::PaymentHash;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, ErrorCode, params};
use tokio::sync::oneshot;

use super::{Claim, SpentStore, StoreError, Ticket};

/// The most jobs one transaction carries.
const MAX_BATCH: usize = 256;

/// How long a statement waits for a lock held by another connection (a `sqlite3` shell reading
/// the file, say) before it fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const TABLE: &str = "CREATE TABLE IF NOT EXISTS spent (
    hash   BLOB PRIMARY KEY,
    until  INTEGER NOT NULL,
    ticket BLOB NULL
) WITHOUT ROWID";
/// For purge, which would otherwise read the whole table.
const INDEX: &str = "CREATE INDEX IF NOT EXISTS spent_until ON spent (until)";

const CLAIM: &str = "INSERT INTO spent (hash, until, ticket) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (hash) DO NOTHING";
// An upsert, not a plain UPDATE: if the row went (purged because the token expired mid-request),
// the token is still recorded as spent.
const COMMIT: &str = "INSERT INTO spent (hash, until, ticket) VALUES (?1, ?2, NULL) \
                      ON CONFLICT (hash) DO UPDATE SET ticket = NULL, until = excluded.until";
const RELEASE: &str = "DELETE FROM spent WHERE hash = ?1 AND ticket = ?2";
const PURGE: &str = "DELETE FROM spent WHERE until < ?1";
const COUNT: &str = "SELECT count(*) FROM spent";

/// A spent set in a SQLite file. See the [module docs](self).
pub struct SqliteStore {
    jobs: Option<mpsc::Sender<Job>>,
    worker: Option<JoinHandle<()>>,
    path: PathBuf,
}

enum Op {
    Claim {
        hash: PaymentHash,
        until: u64,
        ticket: Ticket,
    },
    Commit {
        hash: PaymentHash,
        until: u64,
    },
    Release {
        hash: PaymentHash,
        ticket: Ticket,
    },
    Purge {
        now: u64,
    },
    Len,
    Health,
}

enum Answer {
    Claim(Claim),
    Count(u64),
    Done,
}

struct Job {
    op: Op,
    answer: oneshot::Sender<Result<Answer, StoreError>>,
}

impl SqliteStore {
    /// Opens (or creates, with its parent folders) the spent set at `path`, and releases the
    /// pending claims a previous process left behind.
    ///
    /// Fails if the file is not a SQLite database, holds a `spent` table of another shape, or is
    /// open in another process.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let shown = path.display().to_string();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::Io {
                doing: "cannot create the folder for the spent set",
                path: parent.display().to_string(),
                source: Arc::new(e),
            })?;
        }
        let lock = lock_file(&path)?;
        let conn = Connection::open(&path).map_err(|e| sql_error(&shown, "cannot open", e))?;
        let released = prepare(&conn, &shown)?;
        if released > 0 {
            tracing::info!(
                path = %shown,
                released,
                "released pending claims left by a previous process: their requests were never answered"
            );
        }
        let (jobs, queue) = mpsc::channel();
        let worker = std::thread::Builder::new()
            .name("plannt-sqlite".into())
            .spawn(move || work(conn, lock, queue, shown))
            .map_err(|e| StoreError::Io {
                doing: "cannot start the SQLite worker thread for",
                path: path.display().to_string(),
                source: Arc::new(e),
            })?;
        Ok(SqliteStore {
            jobs: Some(jobs),
            worker: Some(worker),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn run(&self, op: Op) -> Result<Answer, StoreError> {
        let (answer, answered) = oneshot::channel();
        let stopped = || StoreError::Stopped(self.path.display().to_string());
        self.jobs
            .as_ref()
            .ok_or_else(stopped)?
            .send(Job { op, answer })
            .map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the queue stops the worker once it has answered what it holds; waiting for it
        // closes the database and frees the lock before a new `open` of the same file.
        drop(self.jobs.take());
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// Takes the exclusive lock that makes this process the only user of the file.
fn lock_file(path: &Path) -> Result<File, StoreError> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| StoreError::Io {
            doing: "cannot open the lock file",
            path: lock_path.display().to_string(),
            source: Arc::new(e),
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(StoreError::InUse {
            path: path.display().to_string(),
            lock: lock_path.display().to_string(),
        }),
        Err(TryLockError::Error(e)) => Err(StoreError::Io {
            doing: "cannot lock",
            path: lock_path.display().to_string(),
            source: Arc::new(e),
        }),
    }
}

/// Sets the file up and releases leftover pending claims; returns how many.
fn prepare(conn: &Connection, path: &str) -> Result<usize, StoreError> {
    // The first statement to read the file: this is where a file that is not a database fails.
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(|e| sql_error(path, "cannot set WAL mode on", e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        // Still durable with synchronous=FULL, only slower (e.g. a file system without shared
        // memory).
        tracing::warn!(
            path,
            mode,
            "SQLite refused WAL mode; the spent set stays durable but slower"
        );
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| sql_error(path, "cannot set synchronous=FULL on", e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| sql_error(path, "cannot set the busy timeout on", e))?;
    conn.execute_batch(TABLE)
        .map_err(|e| sql_error(path, "cannot create the spent table in", e))?;
    // Preparing every statement now finds a `spent` table of another shape at once, not at the
    // first paid request.
    for sql in [CLAIM, COMMIT, RELEASE, PURGE, COUNT] {
        conn.prepare_cached(sql).map_err(|e| {
            sql_error(
                path,
                "has a `spent` table that Plannt did not make (wrong columns):",
                e,
            )
        })?;
    }
    conn.execute_batch(INDEX)
        .map_err(|e| sql_error(path, "cannot create the index in", e))?;
    conn.execute("DELETE FROM spent WHERE ticket IS NOT NULL", [])
        .map_err(|e| sql_error(path, "cannot release pending claims in", e))
}

/// The worker thread: owns the connection (and the lock) until the queue closes.
fn work(conn: Connection, _lock: File, queue: mpsc::Receiver<Job>, path: String) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        match run_batch(&conn, &batch) {
            Ok(answers) => {
                for (job, answer) in batch.into_iter().zip(answers) {
                    let _ = job.answer.send(Ok(answer));
                }
            }
            Err(e) => {
                let error = sql_error(&path, "cannot write to", e);
                tracing::error!(path, error = %error, jobs = batch.len(), "spent-set transaction failed");
                for job in batch {
                    let _ = job.answer.send(Err(error.clone()));
                }
            }
        }
    }
}

/// Runs a batch in one transaction; answers only once it is committed.
fn run_batch(conn: &Connection, batch: &[Job]) -> rusqlite::Result<Vec<Answer>> {
    // IMMEDIATE takes the write lock up front, so the batch cannot fail half-way on a lock.
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let answers = batch
        .iter()
        .map(|job| run_op(conn, &job.op))
        .collect::<rusqlite::Result<Vec<_>>>();
    match answers {
        Ok(answers) => match conn.execute_batch("COMMIT") {
            Ok(()) => Ok(answers),
            Err(e) => {
                rollback(conn);
                Err(e)
            }
        },
        Err(e) => {
            rollback(conn);
            Err(e)
        }
    }
}

fn rollback(conn: &Connection) {
    // Some errors roll the transaction back by themselves; then there is nothing left to undo.
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
}

fn run_op(conn: &Connection, op: &Op) -> rusqlite::Result<Answer> {
    Ok(match op {
        Op::Claim {
            hash,
            until,
            ticket,
        } => {
            let inserted = conn.prepare_cached(CLAIM)?.execute(params![
                &hash.0[..],
                sql_time(*until),
                &ticket.0[..]
            ])?;
            Answer::Claim(if inserted == 1 {
                Claim::Won(*ticket)
            } else {
                Claim::Spent
            })
        }
        Op::Commit { hash, until } => {
            conn.prepare_cached(COMMIT)?
                .execute(params![&hash.0[..], sql_time(*until)])?;
            Answer::Done
        }
        Op::Release { hash, ticket } => {
            conn.prepare_cached(RELEASE)?
                .execute(params![&hash.0[..], &ticket.0[..]])?;
            Answer::Done
        }
        Op::Purge { now } => Answer::Count(
            conn.prepare_cached(PURGE)?
                .execute(params![sql_time(*now)])? as u64,
        ),
        Op::Len => {
            let count: i64 = conn
                .prepare_cached(COUNT)?
                .query_row([], |row| row.get(0))?;
            Answer::Count(count.max(0) as u64)
        }
        Op::Health => {
            conn.prepare_cached("SELECT 1")?
                .query_row([], |row| row.get::<_, i64>(0))?;
            Answer::Done
        }
    })
}

/// Unix seconds as SQLite's signed integer (far-future times saturate).
fn sql_time(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

fn sql_error(path: &str, doing: &'static str, e: rusqlite::Error) -> StoreError {
    let hint = match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => {
            " (this file is not a SQLite database: point the spent set at a new file)"
        }
        Some(ErrorCode::DatabaseCorrupt) => {
            " (the file is corrupt: restore it or start a new file; spent tokens in it are lost)"
        }
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            " (another program holds a lock on the file)"
        }
        Some(ErrorCode::ReadOnly | ErrorCode::PermissionDenied | ErrorCode::CannotOpen) => {
            " (check the file's and its folder's permissions)"
        }
        Some(ErrorCode::DiskFull) => " (the disk is full)",
        _ => "",
    };
    StoreError::Sqlite {
        doing,
        path: path.to_string(),
        hint,
        source: Arc::new(e),
    }
}

fn unexpected(op: &str) -> StoreError {
    StoreError::Unexpected(format!(
        "the SQLite worker gave an unexpected answer to {op}"
    ))
}

#[async_trait]
impl SpentStore for SqliteStore {
    async fn claim(&self, payment_hash: &PaymentHash, until: u64) -> Result<Claim, StoreError> {
        match self
            .run(Op::Claim {
                hash: *payment_hash,
                until,
                ticket: Ticket::new(),
            })
            .await?
        {
            Answer::Claim(claim) => Ok(claim),
            _ => Err(unexpected("claim")),
        }
    }

    async fn commit(
        &self,
        payment_hash: &PaymentHash,
        _ticket: &Ticket,
        until: u64,
    ) -> Result<(), StoreError> {
        self.run(Op::Commit {
            hash: *payment_hash,
            until,
        })
        .await
        .map(drop)
    }

    async fn release(&self, payment_hash: &PaymentHash, ticket: &Ticket) -> Result<(), StoreError> {
        self.run(Op::Release {
            hash: *payment_hash,
            ticket: *ticket,
        })
        .await
        .map(drop)
    }

    async fn purge(&self, now: u64) -> Result<u64, StoreError> {
        match self.run(Op::Purge { now }).await? {
            Answer::Count(n) => Ok(n),
            _ => Err(unexpected("purge")),
        }
    }

    async fn len(&self) -> Result<u64, StoreError> {
        match self.run(Op::Len).await? {
            Answer::Count(n) => Ok(n),
            _ => Err(unexpected("len")),
        }
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.run(Op::Health).await.map(drop)
    }

    fn name(&self) -> &'static str {
        "sqlite"
    }
}
