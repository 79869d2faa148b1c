//! The SQLite spent set: the default store, one file that survives a crash.
//!
//! The file holds one table, `spent(id INTEGER PRIMARY KEY, hash BLOB NOT NULL UNIQUE, until
//! INTEGER NOT NULL, kept_until INTEGER NULL, kept BLOB NULL)`: one row per committed payment
//! hash, with the sealed answer it bought while that is kept (`kept_until`). Rows are appended
//! in the order of their commits, so a commit writes to the table's last page and to the last
//! pages of the `until` indexes (which grow in time order too); only the index of hashes takes
//! one page chosen by the hash. Keyed by the hash itself, as files before were, a commit dirtied
//! three pages at random (the table's and both `until` indexes', whose entries then sorted by
//! hash within each second), and under load every group commit wrote and checkpointed about
//! 22 KB a paid request (docs/benchmarks.md).
//!
//! Files of the earlier shapes (`spent(hash BLOB PRIMARY KEY, until, ticket[, kept_until,
//! kept]) WITHOUT ROWID`) are copied into this one at open, in one transaction; their rows with
//! a `ticket` were claims of a process that never answered them, and are dropped.
//!
//! The earnings ledger ([`crate::ledger`]) lives in two more tables, made at open in a file
//! that lacks them: `ledger_hours(hour, route, event, detail, count, sats)`, one row of counts
//! per hour, route, event and detail, and `ledger_payments(at, route, dialect, sats, hash)`,
//! one row per payment. A batch of it is a job of the writer like a commit, so it joins the
//! next group commit: it adds no fsync of its own to a paid request. [`read_ledger`] reads them
//! from a file another process holds, read-only (`plannt stats --store sqlite:PATH`).
//!
//! **Durable before it answers.** The database runs in WAL mode with `synchronous=FULL`, so a
//! commit, with its kept answer, is on disk (the WAL fsynced) before [`SpentStore::commit`]
//! returns and the gateway sends the answer. A token whose request got a response is never
//! accepted again, even after `kill -9` or a power cut and a restart, and the answer's kept copy
//! is there for the client's retry.
//!
//! [`SqliteSync::Normal`] (`synchronous=NORMAL`) gives up the power cut: a commit is written to
//! the WAL (the operating system holds it) but not fsynced, so it survives the gateway's own
//! crash, `kill -9` included, and is lost only if the machine itself goes down before the next
//! checkpoint. It is not faster under load on a disk whose fsync is short: without the fsync
//! fewer commits wait to share each transaction. docs/benchmarks.md measures both against the
//! disk's fsync floor.
//!
//! **Pending claims live in memory.** A claim only needs to hold against other requests of this
//! process while it is in flight: one process at a time holds the file (`open` takes an
//! exclusive lock on a sidecar `<file>.lock` and refuses a file another process has open), and a
//! claim that process never committed belongs to a request it never answered, so after a crash
//! it must be released anyway. A claim is therefore a map entry in the store (under a mutex)
//! plus a read of the durable table for a committed row; only the commit is a durable write. A
//! crash loses exactly what it lost before: pending claims, which a restart released. A paid
//! request costs one fsync (its commit), not two.
//!
//! **Group commit.** SQLite is blocking and every write costs an fsync. One worker thread owns
//! the connection; the async methods hand it jobs over a channel and await the answer. The worker
//! takes every job waiting in the queue, runs them in one transaction and answers them all after
//! a single `COMMIT`: under load many commits share one fsync, and nothing is answered before it
//! is durable. If the transaction fails, every job in it gets a [`StoreError`] (nothing of it was
//! written), and the gateway fails closed.
//!
//! **Reads beside the writer.** A claim's check for a committed row runs in the thread that
//! claims, on a read-only connection of a small pool that maps the file into memory: a read of a
//! page or two, with no hop to another thread and back. If that connection finds the file busy
//! it does not wait; the check goes, like a retry's lookup, to a second worker with a read-only
//! connection, batched the same way in one read transaction. In WAL mode a reader sees every
//! transaction committed before it began and never waits for the writer's fsync. A claim cannot
//! miss a commit in flight: the hash stays in the pending map until its row is durable, and a
//! claim checks that map first.

use plannt_l402::PaymentHash;
use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params};
use tokio::sync::oneshot;

use super::{Claim, Keep, Lookup, SpentStore, StoreError, Ticket};
use crate::ledger::{Event, LedgerBatch, LedgerRead, Payment, Tally};

/// The most jobs one transaction carries.
const MAX_BATCH: usize = 256;

/// How much of the file readers map into memory: a claim's read of a cached page is then a
/// memory access, not a `pread`.
const MMAP_BYTES: i64 = 1 << 30;

/// How long a statement waits for a lock held by another connection (a `sqlite3` shell reading
/// the file, say) before it fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const TABLE: &str = "CREATE TABLE IF NOT EXISTS spent (
    id         INTEGER PRIMARY KEY,
    hash       BLOB NOT NULL UNIQUE,
    until      INTEGER NOT NULL,
    kept_until INTEGER NULL,
    kept       BLOB NULL
)";
/// The shape of the table before rows were appended (and, older still, before kept answers):
/// copied into the new one, without the claims of a process that never answered them.
const MIGRATE: &str = "DROP INDEX IF EXISTS spent_until;
                       DROP INDEX IF EXISTS spent_kept_until;
                       ALTER TABLE spent RENAME TO spent_before;";
/// `{kept}`: the old table's kept-answer columns, or two NULLs for a table made before them.
const MIGRATE_ROWS: &str = "INSERT INTO spent (hash, until, kept_until, kept)
                            SELECT hash, until, {kept} FROM spent_before
                            WHERE ticket IS NULL ORDER BY until;
                            DROP TABLE spent_before;";
/// For purge, which would otherwise read the whole table.
const INDEX: &str = "CREATE INDEX IF NOT EXISTS spent_until ON spent (until);
                     CREATE INDEX IF NOT EXISTS spent_kept_until ON spent (kept_until)
                         WHERE kept_until IS NOT NULL";

const EXISTS: &str = "SELECT 1 FROM spent WHERE hash = ?1";
// An upsert: if the row is there already (committed by an earlier process whose pending claim
// this one never saw), the token stays spent and the newer answer is kept.
const COMMIT: &str = "INSERT INTO spent (hash, until, kept_until, kept) \
                      VALUES (?1, ?2, ?3, ?4) \
                      ON CONFLICT (hash) DO UPDATE SET until = excluded.until, \
                      kept_until = excluded.kept_until, kept = excluded.kept";
const LOOKUP: &str = "SELECT kept_until, kept FROM spent WHERE hash = ?1";
const PURGE: &str = "DELETE FROM spent WHERE until < ?1";
const PURGE_KEPT: &str = "UPDATE spent SET kept_until = NULL, kept = NULL WHERE kept_until < ?1";
const COUNT: &str = "SELECT count(*) FROM spent";

/// The ledger's tables: made in any file that lacks them (a file of an older version too).
const LEDGER_TABLES: &str = "CREATE TABLE IF NOT EXISTS ledger_hours (
    hour   INTEGER NOT NULL,
    route  TEXT NOT NULL,
    event  TEXT NOT NULL,
    detail TEXT NOT NULL,
    count  INTEGER NOT NULL,
    sats   INTEGER NOT NULL,
    PRIMARY KEY (hour, route, event, detail)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ledger_payments (
    at      INTEGER NOT NULL,
    route   TEXT NOT NULL,
    dialect TEXT NOT NULL,
    sats    INTEGER NOT NULL,
    hash    BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_payments_at ON ledger_payments (at);";
const LEDGER_ADD: &str = "INSERT INTO ledger_hours (hour, route, event, detail, count, sats) \
                          VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                          ON CONFLICT (hour, route, event, detail) DO UPDATE SET \
                          count = count + excluded.count, sats = sats + excluded.sats";
const LEDGER_PAYMENT: &str =
    "INSERT INTO ledger_payments (at, route, dialect, sats, hash) VALUES (?1, ?2, ?3, ?4, ?5)";
const LEDGER_HOURS: &str = "SELECT hour, route, event, detail, count, sats FROM ledger_hours \
                            WHERE hour > ?1 - 3600 AND hour < ?2 ORDER BY hour, route, event, detail";
const LEDGER_PAYMENTS: &str = "SELECT at, route, dialect, sats, hash FROM ledger_payments \
                               WHERE at >= ?1 AND at < ?2 ORDER BY at DESC, rowid DESC LIMIT ?3";
const LEDGER_PRUNE_HOURS: &str = "DELETE FROM ledger_hours WHERE hour <= ?1 - 3600";
const LEDGER_PRUNE_PAYMENTS: &str = "DELETE FROM ledger_payments WHERE at < ?1";

/// How a commit is made durable before the gateway answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SqliteSync {
    /// `synchronous=FULL`: the WAL is fsynced at every commit; a power cut loses nothing that
    /// was answered. The default.
    #[default]
    Full,
    /// `synchronous=NORMAL`: the WAL is written at every commit and fsynced at checkpoints; the
    /// gateway's own crash loses nothing, a power cut may lose the last commits.
    Normal,
}

impl SqliteSync {
    fn pragma(self) -> &'static str {
        match self {
            SqliteSync::Full => "FULL",
            SqliteSync::Normal => "NORMAL",
        }
    }
}

/// A spent set in a SQLite file. See the [module docs](self).
pub struct SqliteStore {
    /// Claims in flight: ticket and `until` by payment hash.
    pending: Mutex<HashMap<PaymentHash, (Ticket, u64)>>,
    jobs: Option<mpsc::Sender<Job>>,
    worker: Option<JoinHandle<()>>,
    /// Reads (a claim's check for a committed row, a retry's lookup) on a read-only connection
    /// of their own: in WAL mode they run beside the writer and never wait for its fsync.
    reads: Option<mpsc::Sender<Job>>,
    reader: Option<JoinHandle<()>>,
    /// Read-only connections a claim checks for a committed row on, in the thread that claims:
    /// one at most per thread claiming at once. See [`SqliteStore::committed_here`].
    claim_reads: Mutex<Vec<Connection>>,
    path: PathBuf,
}

enum Op {
    Exists {
        hash: PaymentHash,
    },
    Commit {
        hash: PaymentHash,
        until: u64,
        keep: Option<Keep>,
    },
    Lookup {
        hash: PaymentHash,
        now: u64,
    },
    Purge {
        now: u64,
    },
    Len,
    Health,
    Record(LedgerBatch),
    Ledger {
        since: u64,
        until: u64,
        recent: usize,
    },
    PruneLedger {
        before: u64,
    },
}

enum Answer {
    Ledger(LedgerRead),
    Exists(bool),
    Found(Lookup),
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
        Self::open_with(path, SqliteSync::Full)
    }

    /// [`open`](Self::open), with commits made durable as `sync` says.
    pub fn open_with(path: impl AsRef<Path>, sync: SqliteSync) -> Result<Self, StoreError> {
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
        let released = prepare(&conn, &shown, sync)?;
        if released > 0 {
            tracing::info!(
                path = %shown,
                released,
                "released pending claims left by a previous process: their requests were never answered"
            );
        }
        // Opened after `prepare`, so it finds the table (and WAL mode) in place.
        let read_conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| sql_error(&shown, "cannot open for reading", e))?;
        read_conn
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| sql_error(&shown, "cannot set the busy timeout on", e))?;
        let spawn = |name: &str, run: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(run)
                .map_err(|e| StoreError::Io {
                    doing: "cannot start a SQLite worker thread for",
                    path: path.display().to_string(),
                    source: Arc::new(e),
                })
        };
        let (jobs, queue) = mpsc::channel();
        let writer_path = shown.clone();
        let worker = spawn(
            "plannt-sqlite",
            Box::new(move || work(&conn, queue, &writer_path, Batch::Write, Some(lock))),
        )?;
        let (reads, read_queue) = mpsc::channel();
        let reader = spawn(
            "plannt-sqlite-read",
            Box::new(move || work(&read_conn, read_queue, &shown, Batch::Read, None)),
        )?;
        Ok(SqliteStore {
            pending: Mutex::new(HashMap::new()),
            jobs: Some(jobs),
            worker: Some(worker),
            reads: Some(reads),
            reader: Some(reader),
            claim_reads: Mutex::new(Vec::new()),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<PaymentHash, (Ticket, u64)>> {
        self.pending.lock().expect("pending claims lock")
    }

    /// Whether a row for this hash is committed, read where the claim runs, without a hop to
    /// the reader thread and back: the read of a page or two that WAL mode never makes wait for
    /// the writer (the database is mapped into memory, so a cached page costs no system call).
    /// `None` when it cannot tell at once (the file is busy, or failing): the claim then asks
    /// the reader thread, which waits, retries and reports.
    fn committed_here(&self, hash: &PaymentHash) -> Option<bool> {
        let taken = self.claim_reads.lock().expect("claim readers lock").pop();
        let conn = match taken {
            Some(conn) => conn,
            None => open_claim_reader(&self.path).ok()?,
        };
        let committed = conn
            .prepare_cached(EXISTS)
            .and_then(|mut statement| statement.exists(params![&hash.0[..]]))
            .ok();
        self.claim_reads
            .lock()
            .expect("claim readers lock")
            .push(conn);
        committed
    }

    /// Drops this ticket's pending claim, if it is still there.
    fn forget(&self, hash: &PaymentHash, ticket: &Ticket) {
        let mut pending = self.pending();
        if pending.get(hash).is_some_and(|(t, _)| t == ticket) {
            pending.remove(hash);
        }
    }

    async fn run(&self, op: Op) -> Result<Answer, StoreError> {
        Self::send(&self.jobs, op, &self.path).await
    }

    async fn read(&self, op: Op) -> Result<Answer, StoreError> {
        Self::send(&self.reads, op, &self.path).await
    }

    async fn send(
        queue: &Option<mpsc::Sender<Job>>,
        op: Op,
        path: &Path,
    ) -> Result<Answer, StoreError> {
        let (answer, answered) = oneshot::channel();
        let stopped = || StoreError::Stopped(path.display().to_string());
        queue
            .as_ref()
            .ok_or_else(stopped)?
            .send(Job { op, answer })
            .map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing a queue stops its worker once it has answered what it holds; waiting for them
        // closes the database (the reader first) and frees the lock before a new `open` of the
        // same file.
        self.claim_reads
            .get_mut()
            .map(Vec::clear)
            .unwrap_or_default();
        drop(self.reads.take());
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        drop(self.jobs.take());
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// A read-only connection for claims: it fails at once rather than wait on a busy file (the
/// claim then asks the reader thread, which waits), and maps the database into memory.
fn open_claim_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::ZERO)?;
    conn.pragma_update(None, "mmap_size", MMAP_BYTES)?;
    Ok(conn)
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
fn prepare(conn: &Connection, path: &str, sync: SqliteSync) -> Result<usize, StoreError> {
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
    conn.pragma_update(None, "synchronous", sync.pragma())
        .map_err(|e| sql_error(path, "cannot set synchronous on", e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| sql_error(path, "cannot set the busy timeout on", e))?;
    let released = migrate(conn, path)?;
    conn.execute_batch(LEDGER_TABLES)
        .map_err(|e| sql_error(path, "cannot create the ledger tables in", e))?;
    // Preparing every statement now finds a `spent` table of another shape at once, not at the
    // first paid request.
    for sql in [EXISTS, COMMIT, LOOKUP, PURGE, PURGE_KEPT, COUNT, LEDGER_ADD] {
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
    Ok(released)
}

/// Makes the `spent` table, or copies a table of an earlier shape Plannt made (keyed by `hash`,
/// with `ticket`, with or without the kept-answer columns) into the current one. Returns how
/// many claims of an earlier process it dropped. A table of another shape is left alone, to be
/// refused.
fn migrate(conn: &Connection, path: &str) -> Result<usize, StoreError> {
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('spent')")
        .and_then(|mut statement| {
            statement
                .query_map([], |row| row.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()
        })
        .map_err(|e| sql_error(path, "cannot read the shape of the spent table in", e))?;
    let has = |name: &str| columns.iter().any(|c| c == name);
    if !(has("hash") && has("until") && has("ticket") && !has("id")) {
        conn.execute_batch(TABLE)
            .map_err(|e| sql_error(path, "cannot create the spent table in", e))?;
        return Ok(0);
    }
    let kept = if has("kept_until") && has("kept") {
        "kept_until, kept"
    } else {
        "NULL, NULL"
    };
    let rows = MIGRATE_ROWS.replace("{kept}", kept);
    let copy = || -> rusqlite::Result<usize> {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let released: i64 = conn.query_row(
            "SELECT count(*) FROM spent WHERE ticket IS NOT NULL",
            [],
            |row| row.get(0),
        )?;
        conn.execute_batch(MIGRATE)?;
        conn.execute_batch(TABLE)?;
        conn.execute_batch(&rows)?;
        conn.execute_batch("COMMIT")?;
        Ok(released.max(0) as usize)
    };
    let released = copy().map_err(|e| {
        rollback(conn);
        sql_error(path, "cannot copy the spent set to its current shape in", e)
    })?;
    tracing::info!(
        path,
        "copied the spent set to its current shape (rows in commit order)"
    );
    Ok(released)
}

/// What a worker's batches are.
#[derive(Clone, Copy)]
enum Batch {
    /// Writes, in one `BEGIN IMMEDIATE` transaction each.
    Write,
    /// Reads, in one read transaction each (one snapshot, taken once the batch is gathered).
    Read,
}

/// A worker thread: runs the jobs of its queue on its connection, a batch at a time, until the
/// queue closes.
/// The writer holds the file's lock (`_lock`) for as long as it runs.
fn work(
    conn: &Connection,
    queue: mpsc::Receiver<Job>,
    path: &str,
    kind: Batch,
    _lock: Option<File>,
) {
    let begin = match kind {
        // IMMEDIATE takes the write lock up front, so the batch cannot fail half-way on a lock.
        Batch::Write => "BEGIN IMMEDIATE",
        Batch::Read => "BEGIN",
    };
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        match run_batch(conn, begin, &batch) {
            Ok(answers) => {
                for (job, answer) in batch.into_iter().zip(answers) {
                    let _ = job.answer.send(Ok(answer));
                }
            }
            Err(e) => {
                let doing = match kind {
                    Batch::Write => "cannot write to",
                    Batch::Read => "cannot read",
                };
                let error = sql_error(path, doing, e);
                tracing::error!(path, error = %error, jobs = batch.len(), "spent-set transaction failed");
                for job in batch {
                    let _ = job.answer.send(Err(error.clone()));
                }
            }
        }
    }
}

/// Runs a batch in one transaction; answers only once it is committed.
fn run_batch(conn: &Connection, begin: &str, batch: &[Job]) -> rusqlite::Result<Vec<Answer>> {
    conn.execute_batch(begin)?;
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
        Op::Exists { hash } => {
            Answer::Exists(conn.prepare_cached(EXISTS)?.exists(params![&hash.0[..]])?)
        }
        Op::Commit { hash, until, keep } => {
            conn.prepare_cached(COMMIT)?.execute(params![
                &hash.0[..],
                sql_time(*until),
                keep.as_ref().map(|k| sql_time(k.until)),
                keep.as_ref().map(|k| &k.sealed[..]),
            ])?;
            Answer::Done
        }
        Op::Lookup { hash, now } => {
            let row = conn
                .prepare_cached(LOOKUP)?
                .query_row(params![&hash.0[..]], |row| {
                    Ok((
                        row.get::<_, Option<i64>>(0)?,
                        row.get::<_, Option<Vec<u8>>>(1)?,
                    ))
                })
                .optional()?;
            Answer::Found(match row {
                None => Lookup::Unknown,
                Some((Some(until), Some(sealed))) if until >= sql_time(*now) => {
                    Lookup::Kept(sealed)
                }
                Some(_) => Lookup::Committed,
            })
        }
        Op::Purge { now } => {
            conn.prepare_cached(PURGE_KEPT)?
                .execute(params![sql_time(*now)])?;
            Answer::Count(
                conn.prepare_cached(PURGE)?
                    .execute(params![sql_time(*now)])? as u64,
            )
        }
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
        Op::Record(batch) => {
            let mut add = conn.prepare_cached(LEDGER_ADD)?;
            for t in &batch.tallies {
                add.execute(params![
                    sql_time(t.hour),
                    t.route,
                    t.event.as_str(),
                    t.detail,
                    sql_time(t.count),
                    sql_time(t.sats),
                ])?;
            }
            let mut pay = conn.prepare_cached(LEDGER_PAYMENT)?;
            for p in &batch.payments {
                pay.execute(params![
                    sql_time(p.at),
                    p.route,
                    p.dialect,
                    sql_time(p.sats),
                    hex::decode(&p.payment_hash).unwrap_or_default(),
                ])?;
            }
            Answer::Done
        }
        Op::Ledger {
            since,
            until,
            recent,
        } => Answer::Ledger(read_tables(conn, *since, *until, *recent)?),
        Op::PruneLedger { before } => {
            let hours = conn
                .prepare_cached(LEDGER_PRUNE_HOURS)?
                .execute(params![sql_time(*before)])?;
            let payments = conn
                .prepare_cached(LEDGER_PRUNE_PAYMENTS)?
                .execute(params![sql_time(*before)])?;
            Answer::Count((hours + payments) as u64)
        }
    })
}

/// Reads the ledger's tables for `[since, until)`.
fn read_tables(
    conn: &Connection,
    since: u64,
    until: u64,
    recent: usize,
) -> rusqlite::Result<LedgerRead> {
    let tallies = conn
        .prepare_cached(LEDGER_HOURS)?
        .query_map(params![sql_time(since), sql_time(until)], |row| {
            let event: String = row.get(2)?;
            Ok(Tally {
                hour: row.get::<_, i64>(0)?.max(0) as u64,
                route: row.get(1)?,
                event: Event::parse(&event).unwrap_or(Event::Refused),
                detail: row.get(3)?,
                count: row.get::<_, i64>(4)?.max(0) as u64,
                sats: row.get::<_, i64>(5)?.max(0) as u64,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let payments = conn
        .prepare_cached(LEDGER_PAYMENTS)?
        .query_map(
            params![
                sql_time(since),
                sql_time(until),
                i64::try_from(recent).unwrap_or(i64::MAX)
            ],
            |row| {
                Ok(Payment {
                    at: row.get::<_, i64>(0)?.max(0) as u64,
                    route: row.get(1)?,
                    dialect: row.get(2)?,
                    sats: row.get::<_, i64>(3)?.max(0) as u64,
                    payment_hash: hex::encode(row.get::<_, Vec<u8>>(4)?),
                })
            },
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(LedgerRead { tallies, payments })
}

/// Reads the ledger of the spent set at `path` for `[since, until)`, with its latest `recent`
/// payments, without taking the file: read-only, beside the gateway that holds it. A file made
/// before the ledger holds none (an empty answer).
pub fn read_ledger(
    path: &Path,
    since: u64,
    until: u64,
    recent: usize,
) -> Result<LedgerRead, StoreError> {
    let shown = path.display().to_string();
    if !path.is_file() {
        return Err(StoreError::Io {
            doing: "cannot read the ledger in",
            path: shown,
            source: Arc::new(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such file (is this the gateway's store? see `store` in its configuration)",
            )),
        });
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| sql_error(&shown, "cannot open for reading", e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| sql_error(&shown, "cannot set the busy timeout on", e))?;
    let has_ledger = conn
        .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'ledger_hours'")
        .and_then(|mut s| s.exists([]))
        .map_err(|e| sql_error(&shown, "cannot read", e))?;
    if !has_ledger {
        return Ok(LedgerRead::default());
    }
    read_tables(&conn, since, until, recent).map_err(|e| sql_error(&shown, "cannot read", e))
}

/// Unix seconds as SQLite's signed integer (far-future times saturate).
fn sql_time(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

pub(super) fn sql_error(path: &str, doing: &'static str, e: rusqlite::Error) -> StoreError {
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
        let ticket = Ticket::new();
        {
            let mut pending = self.pending();
            if pending.contains_key(payment_hash) {
                return Ok(Claim::Spent);
            }
            // Held from here: a concurrent claim of the same hash now loses, and a commit only
            // clears its own pending entry after its row is durable.
            pending.insert(*payment_hash, (ticket, until));
        }
        let committed = match self.committed_here(payment_hash) {
            Some(committed) => Ok(Answer::Exists(committed)),
            None => {
                self.read(Op::Exists {
                    hash: *payment_hash,
                })
                .await
            }
        };
        let committed = match committed {
            Ok(Answer::Exists(committed)) => committed,
            Ok(_) => {
                self.forget(payment_hash, &ticket);
                return Err(unexpected("claim"));
            }
            Err(e) => {
                self.forget(payment_hash, &ticket);
                return Err(e);
            }
        };
        if committed {
            self.forget(payment_hash, &ticket);
            Ok(Claim::Spent)
        } else {
            Ok(Claim::Won(ticket))
        }
    }

    async fn commit(
        &self,
        payment_hash: &PaymentHash,
        ticket: &Ticket,
        until: u64,
        keep: Option<Keep>,
    ) -> Result<(), StoreError> {
        self.run(Op::Commit {
            hash: *payment_hash,
            until,
            keep,
        })
        .await?;
        // Only once the row is durable: until then the pending claim refuses the token. A
        // commit that failed leaves it refusing the token until this process ends.
        self.forget(payment_hash, ticket);
        Ok(())
    }

    async fn lookup(&self, payment_hash: &PaymentHash, now: u64) -> Result<Lookup, StoreError> {
        if self.pending().contains_key(payment_hash) {
            return Ok(Lookup::Pending);
        }
        match self
            .read(Op::Lookup {
                hash: *payment_hash,
                now,
            })
            .await?
        {
            Answer::Found(found) => Ok(found),
            _ => Err(unexpected("lookup")),
        }
    }

    async fn release(&self, payment_hash: &PaymentHash, ticket: &Ticket) -> Result<(), StoreError> {
        self.forget(payment_hash, ticket);
        Ok(())
    }

    async fn purge(&self, now: u64) -> Result<u64, StoreError> {
        let lapsed = {
            let mut pending = self.pending();
            let before = pending.len();
            pending.retain(|_, (_, until)| *until >= now);
            (before - pending.len()) as u64
        };
        match self.run(Op::Purge { now }).await? {
            Answer::Count(n) => Ok(n + lapsed),
            _ => Err(unexpected("purge")),
        }
    }

    async fn len(&self) -> Result<u64, StoreError> {
        let pending = self.pending().len() as u64;
        match self.run(Op::Len).await? {
            Answer::Count(n) => Ok(n + pending),
            _ => Err(unexpected("len")),
        }
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.run(Op::Health).await.map(drop)
    }

    async fn record(&self, batch: &LedgerBatch) -> Result<(), StoreError> {
        self.run(Op::Record(batch.clone())).await.map(drop)
    }

    async fn ledger(
        &self,
        since: u64,
        until: u64,
        recent: usize,
    ) -> Result<LedgerRead, StoreError> {
        match self
            .read(Op::Ledger {
                since,
                until,
                recent,
            })
            .await?
        {
            Answer::Ledger(read) => Ok(read),
            _ => Err(unexpected("ledger")),
        }
    }

    async fn prune_ledger(&self, before: u64) -> Result<u64, StoreError> {
        match self.run(Op::PruneLedger { before }).await? {
            Answer::Count(n) => Ok(n),
            _ => Err(unexpected("prune_ledger")),
        }
    }

    fn name(&self) -> &'static str {
        "sqlite"
    }
}
