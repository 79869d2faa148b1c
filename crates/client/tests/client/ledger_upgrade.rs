//! A ledger written before payments and tokens had owners, and before payments had the time they
//! are charged at, opens, keeps its rows, and works: its unused token is presented, its pending
//! payment can be recovered, and its payments stay in the budget windows they were counted in; a
//! ledger written before payments had a dialect reads its rows as L402; a ledger written before
//! a paid request was remembered until answered reads its payments as never presented, and
//! remembers the next one.

use std::path::PathBuf;

use plannt_client::{Budget, Ledger, PresentedRequest, Reservation, Reserved};

/// A ledger file an older Plannt wrote: `schema` run on a new file, in a folder of its own.
fn written_by_an_older_plannt(schema: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(schema)
        .unwrap();
    (dir, path)
}

/// The schema of the first ledgers, without the `owner` columns and `charged_at`.
const OLD_SCHEMA: &str = "
CREATE TABLE payments (
    payment_hash TEXT PRIMARY KEY, origin TEXT NOT NULL, path TEXT NOT NULL, bolt11 TEXT NOT NULL,
    macaroon TEXT NOT NULL, amount_msat INTEGER NOT NULL, max_fee_msat INTEGER NOT NULL,
    fee_msat INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL CHECK (status IN ('pending', 'paid', 'failed')),
    preimage TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL
);
CREATE INDEX payments_created ON payments (created_at);
CREATE TABLE tokens (
    payment_hash TEXT PRIMARY KEY REFERENCES payments (payment_hash), origin TEXT NOT NULL,
    path TEXT NOT NULL, macaroon TEXT NOT NULL, preimage TEXT NOT NULL,
    used INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL
);
CREATE INDEX tokens_place ON tokens (origin, path);
INSERT INTO payments VALUES ('aa' || printf('%062d', 0), 'http://old.example', '/paid', 'lnbcrt1', 'AgE', 21000, 0, 0, 'paid', 'bb' || printf('%062d', 0), 1700000000, 1700000000);
INSERT INTO tokens VALUES ('aa' || printf('%062d', 0), 'http://old.example', '/paid', 'AgE', 'bb' || printf('%062d', 0), 0, 1700000000);
INSERT INTO payments VALUES ('cc' || printf('%062d', 0), 'http://old.example', '/other', 'lnbcrt1', 'AgE', 21000, 0, 0, 'pending', NULL, 1700000000, 1700000000);
";

#[test]
fn a_ledger_without_owners_is_upgraded_in_place() {
    let (_dir, path) = written_by_an_older_plannt(OLD_SCHEMA);

    let ledger = Ledger::open(&path).unwrap();
    let token = ledger
        .token_for("http://old.example", "/paid")
        .unwrap()
        .expect("the old token");
    assert_eq!(
        hex::encode(token.payment_hash),
        format!("aa{}", "0".repeat(62))
    );
    assert!(!token.used);
    let pending = ledger.pending_to_recover().unwrap();
    assert_eq!(
        pending.iter().map(hex::encode).collect::<Vec<_>>(),
        [format!("cc{}", "0".repeat(62))]
    );
    assert_eq!(ledger.recent(10).unwrap().len(), 2);

    // New payments are recorded as before, and a second open finds the columns in place.
    let hash = plannt_client::l402::PaymentHash([7u8; 32]);
    let reservation = Reservation {
        dialect: plannt_client::Dialect::L402,
        payment_hash: &hash,
        origin: "http://new.example",
        path: "/",
        bolt11: "lnbcrt1",
        macaroon: "AgE",
        amount_msat: 1_000,
        max_fee_msat: 0,
    };
    assert_eq!(
        ledger
            .reserve(&reservation, &Budget::default(), 1_800_000_000)
            .unwrap(),
        Ok(Reserved::New)
    );
    drop(ledger);
    let again = Ledger::open(&path).unwrap();
    assert_eq!(again.recent(10).unwrap().len(), 3);
}

#[test]
fn a_ledger_without_charged_at_counts_old_payments_when_they_were_reserved() {
    let (_dir, path) = written_by_an_older_plannt(OLD_SCHEMA);

    // Before `charged_at`, windows counted from `created_at`: the old rows stay there.
    let ledger = Ledger::open(&path).unwrap();
    let budget = Budget::default();
    let used = |now: u64| -> Vec<u64> {
        ledger
            .usage(&budget, now)
            .unwrap()
            .iter()
            .map(|w| w.used_sats)
            .collect()
    };
    // The paid payment and the pending one, 21 sats each.
    assert_eq!(used(1_700_000_100), [42, 42, 42]);
    assert_eq!(used(1_700_004_000), [0, 42, 42]);
    drop(ledger);
    let charged: Vec<Option<i64>> = rusqlite::Connection::open(&path)
        .unwrap()
        .prepare("SELECT charged_at FROM payments ORDER BY payment_hash")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(charged, [Some(1_700_000_000), Some(1_700_000_000)]);
}

/// The schema before the client paid MPP and x402: owners and `charged_at`, no `dialect`.
const SCHEMA_BEFORE_DIALECTS: &str = "
CREATE TABLE payments (
    payment_hash TEXT PRIMARY KEY, origin TEXT NOT NULL, path TEXT NOT NULL, bolt11 TEXT NOT NULL,
    macaroon TEXT NOT NULL, amount_msat INTEGER NOT NULL, max_fee_msat INTEGER NOT NULL,
    fee_msat INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL CHECK (status IN ('pending', 'paid', 'failed')),
    preimage TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, owner TEXT,
    charged_at INTEGER
);
CREATE TABLE tokens (
    payment_hash TEXT PRIMARY KEY REFERENCES payments (payment_hash), origin TEXT NOT NULL,
    path TEXT NOT NULL, macaroon TEXT NOT NULL, preimage TEXT NOT NULL,
    used INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL, owner TEXT
);
INSERT INTO payments VALUES ('aa' || printf('%062d', 0), 'http://old.example', '/paid', 'lnbcrt1', 'AgE', 21000, 0, 0, 'paid', 'bb' || printf('%062d', 0), 1700000000, 1700000000, NULL, 1700000000);
INSERT INTO tokens VALUES ('aa' || printf('%062d', 0), 'http://old.example', '/paid', 'AgE', 'bb' || printf('%062d', 0), 0, 1700000000, NULL);
";

#[test]
fn a_ledger_without_dialects_reads_its_rows_as_l402_and_records_the_dialect_of_new_ones() {
    let (_dir, path) = written_by_an_older_plannt(SCHEMA_BEFORE_DIALECTS);

    let ledger = Ledger::open(&path).unwrap();
    let token = ledger
        .token_for("http://old.example", "/paid")
        .unwrap()
        .expect("the old token");
    assert_eq!(token.dialect, plannt_client::Dialect::L402);
    assert_eq!(token.macaroon, "AgE");
    assert_eq!(ledger.recent(10).unwrap()[0].dialect, "l402");

    // An MPP payment keeps its dialect and its challenge to echo, through to its token.
    let hash = plannt_client::l402::PaymentHash([8u8; 32]);
    let reservation = Reservation {
        dialect: plannt_client::Dialect::Mpp,
        payment_hash: &hash,
        origin: "http://new.example",
        path: "/mpp",
        bolt11: "lnbcrt1",
        macaroon: "{\"id\":\"x\"}",
        amount_msat: 1_000,
        max_fee_msat: 0,
    };
    assert_eq!(
        ledger
            .reserve(&reservation, &Budget::default(), 1_800_000_000)
            .unwrap(),
        Ok(Reserved::New)
    );
    ledger
        .mark_paid(
            &hash,
            &plannt_client::l402::Preimage::new([3; 32]),
            0,
            1_800_000_000,
        )
        .unwrap();
    drop(ledger);
    let ledger = Ledger::open(&path).unwrap();
    let token = ledger
        .token_for("http://new.example", "/mpp")
        .unwrap()
        .unwrap();
    assert_eq!(token.dialect, plannt_client::Dialect::Mpp);
    assert_eq!(token.macaroon, "{\"id\":\"x\"}");
    let dialects: Vec<String> = ledger
        .recent(10)
        .unwrap()
        .into_iter()
        .map(|r| r.dialect)
        .collect();
    assert_eq!(dialects, ["mpp", "l402"]);
}

/// The schema before a paid request was remembered until answered: owners, `charged_at` and
/// `dialect`, no request columns.
const SCHEMA_BEFORE_REQUESTS: &str = "
CREATE TABLE payments (
    payment_hash TEXT PRIMARY KEY, origin TEXT NOT NULL, path TEXT NOT NULL, bolt11 TEXT NOT NULL,
    macaroon TEXT NOT NULL, amount_msat INTEGER NOT NULL, max_fee_msat INTEGER NOT NULL,
    fee_msat INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL CHECK (status IN ('pending', 'paid', 'failed')),
    preimage TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, owner TEXT,
    charged_at INTEGER, dialect TEXT NOT NULL DEFAULT 'l402'
);
CREATE TABLE tokens (
    payment_hash TEXT PRIMARY KEY REFERENCES payments (payment_hash), origin TEXT NOT NULL,
    path TEXT NOT NULL, macaroon TEXT NOT NULL, preimage TEXT NOT NULL,
    used INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL, owner TEXT,
    dialect TEXT NOT NULL DEFAULT 'l402'
);
INSERT INTO payments VALUES ('aa' || printf('%062d', 0), 'http://old.example', '/paid', 'lnbcrt1', 'AgE', 21000, 0, 0, 'paid', 'bb' || printf('%062d', 0), 1700000000, 1700000000, NULL, 1700000000, 'l402');
INSERT INTO tokens VALUES ('aa' || printf('%062d', 0), 'http://old.example', '/paid', 'AgE', 'bb' || printf('%062d', 0), 0, 1700000000, NULL, 'l402');
";

#[test]
fn a_ledger_without_request_columns_reads_its_payments_as_never_presented() {
    let (_dir, path) = written_by_an_older_plannt(SCHEMA_BEFORE_REQUESTS);

    let ledger = Ledger::open(&path).unwrap();
    assert_eq!(ledger.recent(10).unwrap()[0].answer, None);
    assert!(ledger.unanswered().unwrap().is_empty());
    // Its unused token is still presented to its place.
    let token = ledger
        .token_for("http://old.example", "/paid")
        .unwrap()
        .expect("the old token");

    // Presented, it is remembered with its request until answered, across opens.
    let request = PresentedRequest {
        method: "POST".into(),
        url: "http://old.example/paid?q=1".into(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: Some(b"{}".to_vec()),
        body_sha256: "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a".into(),
        body_len: 2,
    };
    ledger
        .presenting(&token.payment_hash, &request, 1_800_000_000)
        .unwrap();
    drop(ledger);
    let ledger = Ledger::open(&path).unwrap();
    let unanswered = ledger.unanswered().unwrap();
    assert_eq!(unanswered.len(), 1);
    assert_eq!(unanswered[0].request, request);
    assert!(unanswered[0].retryable);
    assert_eq!(unanswered[0].presented_at, 1_800_000_000);
    // The same request finds its token; the place's tokens leave it to that request.
    assert_eq!(
        ledger.unanswered_for(&request).unwrap(),
        Some(token.clone())
    );
    assert_eq!(
        ledger.token_for("http://old.example", "/paid").unwrap(),
        None
    );
    ledger
        .answered(&token.payment_hash, true, 1_800_000_001)
        .unwrap();
    assert!(ledger.unanswered().unwrap().is_empty());
    assert_eq!(
        ledger.recent(10).unwrap()[0].answer.as_deref(),
        Some("recovered")
    );
}

/// The schema before prepaid sessions: every column of payments but `session_id`, no
/// `sessions` or `session_debits` tables.
const SCHEMA_BEFORE_SESSIONS: &str = "
CREATE TABLE payments (
    payment_hash TEXT PRIMARY KEY, origin TEXT NOT NULL, path TEXT NOT NULL, bolt11 TEXT NOT NULL,
    macaroon TEXT NOT NULL, amount_msat INTEGER NOT NULL, max_fee_msat INTEGER NOT NULL,
    fee_msat INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL CHECK (status IN ('pending', 'paid', 'failed')),
    preimage TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, owner TEXT,
    charged_at INTEGER, dialect TEXT NOT NULL DEFAULT 'l402',
    request_method TEXT, request_url TEXT, request_headers TEXT, request_body BLOB,
    request_sha256 TEXT, request_len INTEGER, presented_at INTEGER, answer TEXT
);
CREATE TABLE tokens (
    payment_hash TEXT PRIMARY KEY REFERENCES payments (payment_hash), origin TEXT NOT NULL,
    path TEXT NOT NULL, macaroon TEXT NOT NULL, preimage TEXT NOT NULL,
    used INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL, owner TEXT,
    dialect TEXT NOT NULL DEFAULT 'l402'
);
INSERT INTO payments (payment_hash, origin, path, bolt11, macaroon, amount_msat, max_fee_msat, fee_msat, status, preimage, created_at, updated_at, charged_at, dialect)
VALUES ('aa' || printf('%062d', 0), 'http://old.example', '/paid', 'lnbcrt1', '{}', 21000, 0, 0, 'paid', 'bb' || printf('%062d', 0), 1800000000, 1800000000, 1800000000, 'mpp');
INSERT INTO tokens VALUES ('aa' || printf('%062d', 0), 'http://old.example', '/paid', '{}', 'bb' || printf('%062d', 0), 0, 1800000000, NULL, 'mpp');
";

#[test]
fn a_ledger_without_sessions_reads_its_payments_as_charges_and_opens_sessions() {
    use plannt_client::NewSession;
    use plannt_client::l402::{PaymentHash, Preimage};

    let (_dir, path) = written_by_an_older_plannt(SCHEMA_BEFORE_SESSIONS);
    let ledger = Ledger::open(&path).unwrap();
    assert!(ledger.sessions(true).unwrap().is_empty());
    // The old payment is a charge: its token is still presented, and it still counts.
    assert!(
        ledger
            .token_for("http://old.example", "/paid")
            .unwrap()
            .is_some()
    );
    let budget = Budget {
        daily_sats: Some(100),
        hourly_sats: None,
        ..Budget::default()
    };
    let day = |ledger: &Ledger| ledger.usage(&budget, 1_800_000_100).unwrap()[1].used_sats;
    assert_eq!(day(&ledger), 21);

    // A session's deposit is reserved, paid, recorded, and found again after a reopen.
    let id = PaymentHash([5u8; 32]);
    let deposit = Reservation {
        dialect: plannt_client::Dialect::Mpp,
        payment_hash: &id,
        origin: "http://new.example",
        path: "/v1/chat",
        bolt11: "lnbcrt1",
        macaroon: "{\"id\":\"s\"}",
        amount_msat: 50_000,
        max_fee_msat: 0,
    };
    assert_eq!(
        ledger
            .reserve_for_session(&deposit, &id, 50, &budget, 1_800_000_000)
            .unwrap(),
        Ok(Reserved::New)
    );
    ledger
        .mark_paid(&id, &Preimage::new([6; 32]), 0, 1_800_000_000)
        .unwrap();
    ledger
        .open_session(
            &NewSession {
                session_id: &id,
                origin: "http://new.example",
                path: "/v1/chat",
                challenge: "{\"id\":\"s\"}",
                return_invoice: "lnbcrt1return",
                unit_msat: 2_000,
                idle_timeout_secs: Some(300),
                method: "POST",
                close_body: None,
            },
            1_800_000_000,
        )
        .unwrap();
    drop(ledger);
    let ledger = Ledger::open(&path).unwrap();
    let session = ledger
        .session_for("http://new.example", "/v1/chat")
        .unwrap()
        .expect("the session");
    assert_eq!(session.preimage, Preimage::new([6; 32]));
    assert_eq!(session.balance_msat, 50_000);
    // The deposit bought no token of its own, and counts in the budget.
    assert!(
        ledger
            .token_for("http://new.example", "/v1/chat")
            .unwrap()
            .is_none()
    );
    assert_eq!(day(&ledger), 71);
}
