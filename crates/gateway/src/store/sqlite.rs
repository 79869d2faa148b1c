//! The SQLite spent set: the default store, one file that survives a crash.
//!
//! The file holds one table, `spent(id INTEGER PRIMARY KEY, hash BLOB NOT NULL, until INTEGER
//! NOT NULL, kept_until INTEGER NULL, kept BLOB NULL)`: one row per committed payment hash, with
//! the sealed answer it bought while that is kept (`kept_until`). Rows are appended in the order
//! of their commits, and the two indexes, on `until` and `kept_until`, grow in time order too: a
//! group commit writes the last pages of the table and of each index, and no page chosen by a
//! hash. (An index of hashes took one such page a commit; with it, and a claim's read of it, a
//! paid request cost about 23 µs more CPU: docs/benchmarks.md, run H.)
//!
//! Files of the earlier shapes are copied into this one at open, in one transaction: rows with a
//! unique index of hashes, and before them `spent(hash BLOB PRIMARY KEY, until, ticket[,
//! kept_until, kept]) WITHOUT ROWID`, whose rows with a `ticket` were claims of a process that
//! never answered them, and are dropped.
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
//! **The index lives in memory.** One process at a time holds the file (`open` takes an
//! exclusive lock on a sidecar `<file>.lock` and refuses a file another process has open), so
//! what it holds in memory is the whole truth: the claims in flight, and the row of every
//! committed hash (its first 16 bytes, and the row id: 30 to 60 bytes a spent token as the
//! table fills and doubles, read from the file at open into a table sized for them). A claim is answered from memory alone, under one
//! mutex; only the commit is a durable write. A claim that process never committed belongs to a
//! request it never answered, so after a crash it must be released anyway: a crash loses exactly
//! pending claims, which a restart releases. A paid request costs one fsync (its commit), not two.
//!
//! The price is memory: the set's index grows with the paid rate times the tokens' lifetime, as
//! the memory store's does (10 paid requests a second, tokens living 70 minutes: about 2 MB; a
//! million live tokens: 61 MB, read in half a second at start), where the file alone kept it
//! flat. A gateway paid thousands of times a second for hours belongs on Redis.
//!
//! **Group commit.** SQLite is blocking and every write costs an fsync. One worker thread owns
//! the connection; the async methods hand it jobs over a channel and await the answer. The worker
//! takes every job waiting in the queue, runs them in one transaction and answers them all after
//! a single `COMMIT`: under load many commits share one fsync, and nothing is answered before it
//! is durable. If the transaction fails, every job in it gets a [`StoreError`] (nothing of it was
//! written), and the gateway fails closed.
//!
//! **Reads beside the writer.** A retry's lookup of its kept answer, and the ledger's reads, go
//! to a second worker with a read-only connection, batched the same way in one read transaction.
//! In WAL mode a reader sees every transaction committed before it began and never waits for the
//! writer's fsync. A committed hash enters the index only once its row is durable, and its claim
//! stays pending until then: a claim checks both, so it cannot miss a commit in flight.

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

use super::{Claim, Keep, Lookup, Quick, SpentStore, StoreError, Ticket, short};
use crate::ledger::{Event, LedgerBatch, LedgerRead, Payment, Tally};

/// The most jobs one transaction carries.
const MAX_BATCH: usize = 256;

/// How long a statement waits for a lock held by another connection (a `sqlite3` shell reading
/// the file, say) before it fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const TABLE: &str = "CREATE TABLE IF NOT EXISTS spent (
    id         INTEGER PRIMARY KEY,
    hash       BLOB NOT NULL,
    until      INTEGER NOT NULL,
    kept_until INTEGER NULL,
    kept       BLOB NULL
)";
/// A table of an earlier shape is renamed, copied into the current one, and dropped.
const MIGRATE: &str = "DROP INDEX IF EXISTS spent_until;
                       DROP INDEX IF EXISTS spent_kept_until;
                       ALTER TABLE spent RENAME TO spent_before;";
/// The rows of a table keyed by hash (before rows were appended): without the claims of a
/// process that never answered them. `{kept}`: its kept-answer columns, or two NULLs for a
/// table made before kept answers.
const MIGRATE_KEYED: &str = "INSERT INTO spent (hash, until, kept_until, kept)
                             SELECT hash, until, {kept} FROM spent_before
                             WHERE ticket IS NULL ORDER BY until;
                             DROP TABLE spent_before;";
/// The rows of a table with a unique index of hashes, ids and order kept.
const MIGRATE_UNIQUE: &str = "INSERT INTO spent (id, hash, until, kept_until, kept)
                              SELECT id, hash, until, kept_until, kept FROM spent_before
                              ORDER BY id;
                              DROP TABLE spent_before;";
/// For purge, which would otherwise read the whole table.
const INDEX: &str = "CREATE INDEX IF NOT EXISTS spent_until ON spent (until);
                     CREATE INDEX IF NOT EXISTS spent_kept_until ON spent (kept_until)
                         WHERE kept_until IS NOT NULL";

const ROWS: &str = "SELECT id, hash FROM spent";
const COUNT: &str = "SELECT count(*) FROM spent";
const COMMIT: &str = "INSERT INTO spent (hash, until, kept_until, kept) VALUES (?1, ?2, ?3, ?4)";
/// A hash committed again (a revocation of a spent token): its row, with the newer answer.
const RECOMMIT: &str = "UPDATE spent SET until = ?3, kept_until = ?4, kept = ?5 \
                        WHERE id = ?1 AND hash = ?2";
const LOOKUP: &str = "SELECT hash, kept_until, kept FROM spent WHERE id = ?1";
const PURGE: &str = "DELETE FROM spent WHERE until < ?1 RETURNING id, hash";
const PURGE_KEPT: &str = "UPDATE spent SET kept_until = NULL, kept = NULL WHERE kept_until < ?1";

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
    /// What this process knows of the set, shared with the writer.
    index: Arc<Mutex<Index>>,
    jobs: Option<mpsc::Sender<Job>>,
    worker: Option<JoinHandle<()>>,
    /// Reads (a retry's lookup, the ledger) on a read-only connection of their own: in WAL mode
    /// they run beside the writer and never wait for its fsync.
    reads: Option<mpsc::Sender<Job>>,
    reader: Option<JoinHandle<()>>,
    path: PathBuf,
}

/// The set in memory: the claims in flight, and where each committed hash's row is. See the
/// [module docs](self).
struct Index {
    /// Claims in flight: ticket and `until` by payment hash.
    pending: HashMap<PaymentHash, (Ticket, u64)>,
    /// The row id of every committed hash, by its first 16 bytes: read at open, added to by each
    /// commit once it is durable, taken from by each purge.
    committed: HashMap<[u8; 16], i64, Quick>,
}

/// What a write transaction changes in the index: applied once it is durable, by hash the
/// last change of the transaction.
#[derive(Default)]
struct Changes(HashMap<[u8; 16], Row, Quick>);

/// A hash's row, by its id, as the transaction left it.
#[derive(Clone, Copy)]
enum Row {
    /// Inserted or updated.
    Written(i64),
    /// Deleted by a purge: dropped from the index only if the index still names this row.
    Deleted(i64),
}

impl Changes {
    /// The row of this hash as the transaction leaves it so far, if it changed it.
    fn get(&self, key: &[u8; 16]) -> Option<Option<i64>> {
        self.0.get(key).map(|row| match row {
            Row::Written(id) => Some(*id),
            Row::Deleted(_) => None,
        })
    }

    fn apply(self, index: &mut Index) {
        for (key, row) in self.0 {
            match row {
                Row::Written(id) => {
                    index.committed.insert(key, id);
                }
                Row::Deleted(id) => {
                    if index.committed.get(&key) == Some(&id) {
                        index.committed.remove(&key);
                    }
                }
            }
        }
    }
}

enum Op {
    Commit {
        hash: PaymentHash,
        until: u64,
        keep: Option<Keep>,
    },
    Lookup {
        id: i64,
        hash: PaymentHash,
        now: u64,
    },
    Purge {
        now: u64,
    },
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
        let committed = read_index(&conn).map_err(|e| sql_error(&shown, "cannot read", e))?;
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
        let index = Arc::new(Mutex::new(Index {
            pending: HashMap::new(),
            committed,
        }));
        let (jobs, queue) = mpsc::channel();
        let writer_path = shown.clone();
        let writer = Batch::Write(index.clone());
        let worker = spawn(
            "plannt-sqlite",
            Box::new(move || work(&conn, queue, &writer_path, writer, Some(lock))),
        )?;
        let (reads, read_queue) = mpsc::channel();
        let reader = spawn(
            "plannt-sqlite-read",
            Box::new(move || work(&read_conn, read_queue, &shown, Batch::Read, None)),
        )?;
        Ok(SqliteStore {
            index,
            jobs: Some(jobs),
            worker: Some(worker),
            reads: Some(reads),
            reader: Some(reader),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().expect("spent index lock")
    }

    /// Drops this ticket's pending claim, if it is still there.
    fn forget(&self, hash: &PaymentHash, ticket: &Ticket) {
        let pending = &mut self.index().pending;
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

/// Every committed hash's row, for the index.
fn read_index(conn: &Connection) -> rusqlite::Result<HashMap<[u8; 16], i64, Quick>> {
    // Sized once: a map grown row by row would leave the tables it outgrew to the allocator.
    let count: i64 = conn.query_row(COUNT, [], |row| row.get(0))?;
    let mut committed = HashMap::with_capacity_and_hasher(
        usize::try_from(count).unwrap_or_default(),
        Quick::default(),
    );
    let mut statement = conn.prepare(ROWS)?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        // A hash of another length cannot be a payment's: no claim could ever match it.
        if let Ok(hash) = <[u8; 32]>::try_from(row.get_ref(1)?.as_blob()?) {
            committed.insert(short(&PaymentHash::from(hash)), id);
        }
    }
    Ok(committed)
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
    for sql in [
        ROWS, COMMIT, RECOMMIT, LOOKUP, PURGE, PURGE_KEPT, LEDGER_ADD,
    ] {
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

/// Makes the `spent` table, or copies a table of an earlier shape Plannt made (with a unique
/// index of hashes; before that keyed by `hash`, with `ticket`, with or without the kept-answer
/// columns) into the current one. Returns how many claims of an earlier process it dropped. A
/// table of another shape is left alone, to be refused.
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
    let unique: bool = conn
        .prepare("SELECT 1 FROM pragma_index_list('spent') WHERE origin = 'u'")
        .and_then(|mut statement| statement.exists([]))
        .map_err(|e| sql_error(path, "cannot read the shape of the spent table in", e))?;
    let keyed = has("hash") && has("until") && has("ticket") && !has("id");
    let indexed = unique && has("id") && has("hash") && has("kept") && !has("ticket");
    let rows = if keyed {
        let kept = if has("kept_until") && has("kept") {
            "kept_until, kept"
        } else {
            "NULL, NULL"
        };
        MIGRATE_KEYED.replace("{kept}", kept)
    } else if indexed {
        MIGRATE_UNIQUE.to_string()
    } else {
        conn.execute_batch(TABLE)
            .map_err(|e| sql_error(path, "cannot create the spent table in", e))?;
        return Ok(0);
    };
    let copy = || -> rusqlite::Result<usize> {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let released: i64 = if keyed {
            conn.query_row(
                "SELECT count(*) FROM spent WHERE ticket IS NOT NULL",
                [],
                |row| row.get(0),
            )?
        } else {
            0
        };
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
        "copied the spent set to its current shape (rows in commit order, no index of hashes)"
    );
    Ok(released)
}

/// What a worker's batches are.
enum Batch {
    /// Writes, in one `BEGIN IMMEDIATE` transaction each, applied to the index once durable.
    Write(Arc<Mutex<Index>>),
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
    let (begin, index) = match &kind {
        // IMMEDIATE takes the write lock up front, so the batch cannot fail half-way on a lock.
        Batch::Write(index) => ("BEGIN IMMEDIATE", Some(&**index)),
        Batch::Read => ("BEGIN", None),
    };
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        match run_batch(conn, begin, &batch, index) {
            Ok(answers) => {
                for (job, answer) in batch.into_iter().zip(answers) {
                    let _ = job.answer.send(Ok(answer));
                }
            }
            Err(e) => {
                let doing = match kind {
                    Batch::Write(_) => "cannot write to",
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

/// Runs a batch in one transaction; answers only once it is committed, and only then enters
/// what it wrote in the index.
fn run_batch(
    conn: &Connection,
    begin: &str,
    batch: &[Job],
    index: Option<&Mutex<Index>>,
) -> rusqlite::Result<Vec<Answer>> {
    conn.execute_batch(begin)?;
    let mut changes = Changes::default();
    let answers = batch
        .iter()
        .map(|job| run_op(conn, &job.op, index, &mut changes))
        .collect::<rusqlite::Result<Vec<_>>>();
    match answers {
        Ok(answers) => match conn.execute_batch("COMMIT") {
            Ok(()) => {
                if let Some(index) = index {
                    changes.apply(&mut index.lock().expect("spent index lock"));
                }
                Ok(answers)
            }
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

/// Runs one job in the open transaction. A write notes in `changes` the rows it wrote or
/// deleted; `index` (the writer's) says where the rows committed before are.
fn run_op(
    conn: &Connection,
    op: &Op,
    index: Option<&Mutex<Index>>,
    changes: &mut Changes,
) -> rusqlite::Result<Answer> {
    Ok(match op {
        Op::Commit { hash, until, keep } => {
            let key = short(hash);
            let row = changes.get(&key).unwrap_or_else(|| {
                index.and_then(|index| {
                    let index = index.lock().expect("spent index lock");
                    index.committed.get(&key).copied()
                })
            });
            let (kept_until, kept) = match keep {
                Some(keep) => (Some(sql_time(keep.until)), Some(&keep.sealed[..])),
                None => (None, None),
            };
            // A hash committed before (a spent token revoked) has its row updated; a stale id
            // updates nothing, and the hash gets a row of its own.
            let updated = match row {
                Some(id) => conn.prepare_cached(RECOMMIT)?.execute(params![
                    id,
                    &hash.0[..],
                    sql_time(*until),
                    kept_until,
                    kept
                ])?,
                None => 0,
            };
            if updated == 0 {
                conn.prepare_cached(COMMIT)?.execute(params![
                    &hash.0[..],
                    sql_time(*until),
                    kept_until,
                    kept
                ])?;
                changes
                    .0
                    .insert(key, Row::Written(conn.last_insert_rowid()));
            }
            Answer::Done
        }
        Op::Lookup { id, hash, now } => {
            let row = conn
                .prepare_cached(LOOKUP)?
                .query_row(params![id], |row| {
                    Ok((
                        row.get::<_, Vec<u8>>(0)?,
                        row.get::<_, Option<i64>>(1)?,
                        row.get::<_, Option<Vec<u8>>>(2)?,
                    ))
                })
                .optional()?;
            Answer::Found(match row {
                // Purged since, or another hash with the same first 16 bytes.
                None => Lookup::Unknown,
                Some((found, _, _)) if found[..] != hash.0[..] => Lookup::Unknown,
                Some((_, Some(until), Some(sealed))) if until >= sql_time(*now) => {
                    Lookup::Kept(sealed)
                }
                Some(_) => Lookup::Committed,
            })
        }
        Op::Purge { now } => {
            conn.prepare_cached(PURGE_KEPT)?
                .execute(params![sql_time(*now)])?;
            let mut purge = conn.prepare_cached(PURGE)?;
            let mut rows = purge.query(params![sql_time(*now)])?;
            let mut purged = 0;
            while let Some(row) = rows.next()? {
                purged += 1;
                let id: i64 = row.get(0)?;
                if let Ok(hash) = <[u8; 32]>::try_from(row.get_ref(1)?.as_blob()?) {
                    changes
                        .0
                        .insert(short(&PaymentHash::from(hash)), Row::Deleted(id));
                }
            }
            Answer::Count(purged)
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
        let mut index = self.index();
        if index.pending.contains_key(payment_hash)
            || index.committed.contains_key(&short(payment_hash))
        {
            return Ok(Claim::Spent);
        }
        // Held from here: a concurrent claim of the same hash now loses, and a commit only
        // clears its own pending entry after its row is durable and in the index.
        let ticket = Ticket::new();
        index.pending.insert(*payment_hash, (ticket, until));
        Ok(Claim::Won(ticket))
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
        let id = {
            let index = self.index();
            if index.pending.contains_key(payment_hash) {
                return Ok(Lookup::Pending);
            }
            match index.committed.get(&short(payment_hash)) {
                Some(id) => *id,
                None => return Ok(Lookup::Unknown),
            }
        };
        match self
            .read(Op::Lookup {
                id,
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
            let pending = &mut self.index().pending;
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
        let index = self.index();
        Ok((index.committed.len() + index.pending.len()) as u64)
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
