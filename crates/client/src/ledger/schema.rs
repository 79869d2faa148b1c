//! The ledger's tables, and the upgrades of a file an older Plannt wrote.

use rusqlite::{Connection, TransactionBehavior};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS payments (
    payment_hash TEXT PRIMARY KEY,
    origin       TEXT NOT NULL,
    path         TEXT NOT NULL,
    bolt11       TEXT NOT NULL,
    macaroon     TEXT NOT NULL,
    amount_msat  INTEGER NOT NULL,
    max_fee_msat INTEGER NOT NULL,
    fee_msat     INTEGER NOT NULL DEFAULT 0,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'paid', 'failed')),
    preimage     TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    owner        TEXT,
    charged_at   INTEGER,
    dialect      TEXT NOT NULL DEFAULT 'l402'
);
CREATE INDEX IF NOT EXISTS payments_created ON payments (created_at);
CREATE TABLE IF NOT EXISTS tokens (
    payment_hash TEXT PRIMARY KEY REFERENCES payments (payment_hash),
    origin       TEXT NOT NULL,
    path         TEXT NOT NULL,
    macaroon     TEXT NOT NULL,
    preimage     TEXT NOT NULL,
    used         INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    owner        TEXT,
    dialect      TEXT NOT NULL DEFAULT 'l402'
);
CREATE INDEX IF NOT EXISTS tokens_place ON tokens (origin, path);
CREATE TABLE IF NOT EXISTS quotes (
    origin      TEXT NOT NULL,
    path        TEXT NOT NULL,
    amount_msat INTEGER NOT NULL,
    quoted_at   INTEGER NOT NULL,
    PRIMARY KEY (origin, path)
);
CREATE TABLE IF NOT EXISTS sessions (
    session_id        TEXT PRIMARY KEY,
    origin            TEXT NOT NULL,
    path              TEXT NOT NULL,
    challenge         TEXT NOT NULL,
    return_invoice    TEXT NOT NULL,
    unit_msat         INTEGER NOT NULL,
    idle_timeout_secs INTEGER,
    method            TEXT NOT NULL DEFAULT 'GET',
    close_body        BLOB,
    close_type        TEXT,
    spent_msat        INTEGER NOT NULL DEFAULT 0,
    balance_msat      INTEGER,
    state             TEXT NOT NULL CHECK (state IN ('open', 'closing', 'closed')),
    refund_msat       INTEGER NOT NULL DEFAULT 0,
    refund_status     TEXT,
    opened_at         INTEGER NOT NULL,
    last_used_at      INTEGER NOT NULL,
    closed_at         INTEGER,
    refunded_at       INTEGER
);
CREATE INDEX IF NOT EXISTS sessions_place ON sessions (origin, path, state);
CREATE TABLE IF NOT EXISTS session_debits (
    session_id   TEXT NOT NULL REFERENCES sessions (session_id),
    path         TEXT NOT NULL,
    amount_msat  INTEGER NOT NULL,
    balance_msat INTEGER,
    at           INTEGER NOT NULL,
    reported     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS session_debits_session ON session_debits (session_id);
CREATE TABLE IF NOT EXISTS refusals (
    origin     TEXT NOT NULL,
    path       TEXT NOT NULL,
    check_name TEXT NOT NULL,
    detail     TEXT NOT NULL,
    at         INTEGER NOT NULL
);
";

/// Adds the `owner` columns to a ledger written before they existed.
pub(super) fn add_owner_columns(conn: &mut Connection) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for table in ["payments", "tokens"] {
        let has: i64 = tx.query_row(
            &format!("SELECT COUNT(*) FROM pragma_table_info('{table}') WHERE name = 'owner'"),
            [],
            |row| row.get(0),
        )?;
        if has == 0 {
            tx.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN owner TEXT"))?;
        }
    }
    tx.commit()
}

/// Adds `charged_at` to a ledger written before it existed: until then payments were counted in
/// the budget windows from `created_at`, so that is where the old ones stay.
pub(super) fn add_charged_at(conn: &mut Connection) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let has: i64 = tx.query_row(
        "SELECT COUNT(*) FROM pragma_table_info('payments') WHERE name = 'charged_at'",
        [],
        |row| row.get(0),
    )?;
    if has == 0 {
        tx.execute_batch("ALTER TABLE payments ADD COLUMN charged_at INTEGER")?;
    }
    tx.execute_batch(
        "UPDATE payments SET charged_at = created_at WHERE charged_at IS NULL;
         CREATE INDEX IF NOT EXISTS payments_charged ON payments (charged_at);",
    )?;
    tx.commit()
}

/// Adds `dialect` to the payments and tokens of a ledger written before the client paid MPP and
/// x402: every payment until then was L402. With it, the `macaroon` column holds what the
/// dialect presents besides the preimage: the macaroon (L402), the challenge echoed as JSON
/// (MPP), the `PAYMENT-SIGNATURE` payload (x402).
pub(super) fn add_dialect(conn: &mut Connection) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for table in ["payments", "tokens"] {
        let has: i64 = tx.query_row(
            &format!("SELECT COUNT(*) FROM pragma_table_info('{table}') WHERE name = 'dialect'"),
            [],
            |row| row.get(0),
        )?;
        if has == 0 {
            tx.execute_batch(&format!(
                "ALTER TABLE {table} ADD COLUMN dialect TEXT NOT NULL DEFAULT 'l402'"
            ))?;
        }
    }
    tx.commit()
}

/// The columns of the request a paid credential was presented for, and what became of its
/// answer: `request_method`, `request_url`, `request_headers` (JSON pairs, credentials left
/// out), `request_body` (NULL when over the bound the ledger records), `request_sha256`,
/// `request_len`, `presented_at`, and `answer`: NULL (not presented), `unanswered`, `answered`,
/// `recovered` (answered to the same credential presented again), `lost` (the server kept none).
pub(super) const REQUEST_COLUMNS: [(&str, &str); 8] = [
    ("request_method", "TEXT"),
    ("request_url", "TEXT"),
    ("request_headers", "TEXT"),
    ("request_body", "BLOB"),
    ("request_sha256", "TEXT"),
    ("request_len", "INTEGER"),
    ("presented_at", "INTEGER"),
    ("answer", "TEXT"),
];

/// Adds the request columns to the payments of a ledger written before a paid request was
/// remembered until it was answered: older payments read as never presented.
pub(super) fn add_request_columns(conn: &mut Connection) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for (column, kind) in REQUEST_COLUMNS {
        let has: i64 = tx.query_row(
            "SELECT COUNT(*) FROM pragma_table_info('payments') WHERE name = ?1",
            [column],
            |row| row.get(0),
        )?;
        if has == 0 {
            tx.execute_batch(&format!("ALTER TABLE payments ADD COLUMN {column} {kind}"))?;
        }
    }
    tx.execute_batch(
        "CREATE INDEX IF NOT EXISTS payments_unanswered ON payments (answer) WHERE answer = 'unanswered';",
    )?;
    tx.commit()
}

/// Adds `session_id` to the payments of a ledger written before the client opened prepaid
/// sessions: a payment with one is a session's deposit or top-up, which buys no token of its
/// own. Every older payment reads as a charge.
pub(super) fn add_session_column(conn: &mut Connection) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let has: i64 = tx.query_row(
        "SELECT COUNT(*) FROM pragma_table_info('payments') WHERE name = 'session_id'",
        [],
        |row| row.get(0),
    )?;
    if has == 0 {
        tx.execute_batch("ALTER TABLE payments ADD COLUMN session_id TEXT")?;
    }
    tx.execute_batch(
        "CREATE INDEX IF NOT EXISTS payments_session ON payments (session_id) WHERE session_id IS NOT NULL;",
    )?;
    tx.commit()
}

/// Adds `reported` to the session debits of a ledger written before the server reported each
/// request's debit: a debit with 1 is what the server said it debited, one with 0 the client's
/// estimate (one unit). Every older debit was an estimate.
pub(super) fn add_debit_reported(conn: &mut Connection) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let has: i64 = tx.query_row(
        "SELECT COUNT(*) FROM pragma_table_info('session_debits') WHERE name = 'reported'",
        [],
        |row| row.get(0),
    )?;
    if has == 0 {
        tx.execute_batch(
            "ALTER TABLE session_debits ADD COLUMN reported INTEGER NOT NULL DEFAULT 0",
        )?;
    }
    tx.commit()
}
