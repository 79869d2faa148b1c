//! Prepaid sessions in the ledger: a deposit and each top-up count in the budgets when paid,
//! a refund gives back what it returns when it arrives (never more than the session's own
//! payments, never to a window that did not count them), and a session never holds more than
//! the policy lets it, whatever a server asks.

use plannt_client::l402::{PaymentHash, Preimage};
use plannt_client::{
    Budget, Dialect, Ledger, NewSession, Reservation, Reserved, SessionRefused, SessionState,
    Window,
};

const T0: u64 = 1_800_000_000;

fn budget() -> Budget {
    Budget {
        per_request_sats: 10,
        hourly_sats: Some(1_000),
        daily_sats: Some(2_000),
        total_sats: None,
    }
}

fn used(ledger: &Ledger, window: Window, now: u64) -> u64 {
    ledger
        .usage(&budget(), now)
        .unwrap()
        .into_iter()
        .find(|w| w.window == window)
        .unwrap()
        .used_sats
}

fn reservation(hash: &PaymentHash, sats: u64) -> Reservation<'_> {
    Reservation {
        dialect: Dialect::Mpp,
        payment_hash: hash,
        origin: "https://api.example.com",
        path: "/v1/chat",
        bolt11: "lnbcrt1",
        macaroon: "{\"id\":\"c\"}",
        amount_msat: sats * 1_000,
        max_fee_msat: 0,
    }
}

/// Pays a deposit of `sats` and records the session open at `now`.
fn open(ledger: &Ledger, id: &PaymentHash, sats: u64, limit: u64, now: u64) {
    assert_eq!(
        ledger
            .reserve_for_session(&reservation(id, sats), id, limit, &budget(), now)
            .unwrap(),
        Ok(Reserved::New)
    );
    ledger
        .mark_paid(id, &Preimage::new([id.0[0]; 32]), 0, now)
        .unwrap();
    ledger
        .open_session(
            &NewSession {
                session_id: id,
                origin: "https://api.example.com",
                path: "/v1/chat",
                challenge: "{\"id\":\"c\"}",
                return_invoice: "lnbcrt1return",
                unit_msat: 1_000,
                idle_timeout_secs: Some(600),
            },
            now,
        )
        .unwrap();
}

#[test]
fn a_deposit_counts_when_paid_and_its_refund_gives_back_when_it_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
    let id = PaymentHash([1; 32]);
    open(&ledger, &id, 500, 500, T0);
    assert_eq!(used(&ledger, Window::Hour, T0), 500);

    // Debits spend from the deposit: the budget counted it already.
    ledger
        .session_debit(&id, "/v1/chat", 30_000, Some(470_000), T0 + 1)
        .unwrap();
    ledger
        .session_debit(&id, "/v1/chat", 20_000, None, T0 + 2)
        .unwrap();
    assert_eq!(used(&ledger, Window::Hour, T0 + 2), 500);
    let session = ledger.session(&id).unwrap().unwrap();
    assert_eq!(session.balance_msat, 450_000);
    assert_eq!(ledger.session_debits(&id).unwrap().len(), 2);

    // Closing stops it being presented; the refund gives back what it returned.
    ledger.session_closing(&id, T0 + 10).unwrap();
    assert!(
        ledger
            .session_for("https://api.example.com", "/v1/chat")
            .unwrap()
            .is_none()
    );
    assert_eq!(used(&ledger, Window::Hour, T0 + 10), 500);
    ledger
        .session_closed(&id, 450_000, "succeeded", T0 + 11)
        .unwrap();
    assert_eq!(used(&ledger, Window::Hour, T0 + 11), 50);
    assert_eq!(used(&ledger, Window::Day, T0 + 11), 50);
    let record = &ledger.sessions(true).unwrap()[0];
    assert_eq!(
        (
            record.deposit_sats,
            record.spent_sats,
            record.refund_sats,
            record.state
        ),
        (500, 50, 450, SessionState::Closed)
    );
    assert!(ledger.sessions(false).unwrap().is_empty());
}

#[test]
fn a_refund_gives_back_no_more_than_the_session_was_paid_nor_to_a_window_that_did_not_count_it() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
    let id = PaymentHash([2; 32]);
    open(&ledger, &id, 300, 300, T0);
    // A server that says it refunded more than it was paid gives back only what was paid.
    ledger
        .session_closed(&id, 9_000_000, "succeeded", T0 + 5)
        .unwrap();
    assert_eq!(used(&ledger, Window::Hour, T0 + 5), 0);

    // A refund arriving two hours after its deposit leaves the hour alone (it never counted the
    // deposit) and gives back to the day, which did.
    let late = PaymentHash([3; 32]);
    open(&ledger, &late, 400, 400, T0 + 100);
    let charge = PaymentHash([4; 32]);
    let r = reservation(&charge, 5);
    ledger.reserve(&r, &budget(), T0 + 7_300).unwrap().unwrap();
    ledger
        .mark_paid(&charge, &Preimage::new([4; 32]), 0, T0 + 7_300)
        .unwrap();
    ledger
        .session_closed(&late, 400_000, "succeeded", T0 + 7_400)
        .unwrap();
    assert_eq!(used(&ledger, Window::Hour, T0 + 7_400), 5);
    assert_eq!(used(&ledger, Window::Day, T0 + 7_400), 5);
}

#[test]
fn a_session_never_holds_more_than_the_policy_lets_it_nor_more_than_the_budgets() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
    let id = PaymentHash([5; 32]);
    open(&ledger, &id, 200, 300, T0);

    // A top-up within the session's limit is reserved against the budgets like a deposit.
    let top_up = PaymentHash([6; 32]);
    assert_eq!(
        ledger
            .reserve_for_session(&reservation(&top_up, 100), &id, 300, &budget(), T0 + 1)
            .unwrap(),
        Ok(Reserved::New)
    );
    ledger
        .mark_paid(&top_up, &Preimage::new([6; 32]), 0, T0 + 1)
        .unwrap();
    ledger.session_topped_up(&id, 100_000, T0 + 1).unwrap();
    assert_eq!(used(&ledger, Window::Hour, T0 + 1), 300);
    assert_eq!(ledger.session(&id).unwrap().unwrap().paid_in_msat, 300_000);
    // No top-up bought a token: nothing is presented but the session.
    assert!(
        ledger
            .token_for("https://api.example.com", "/v1/chat")
            .unwrap()
            .is_none()
    );

    // The next top-up, asked again and again, is refused by the session's limit and records
    // nothing: the budget does not move.
    for n in 0..5u8 {
        let again = PaymentHash([10 + n; 32]);
        assert_eq!(
            ledger
                .reserve_for_session(&reservation(&again, 1), &id, 300, &budget(), T0 + 2)
                .unwrap(),
            Err(SessionRefused::OverDeposit {
                limit_sats: 300,
                paid_in_sats: 300,
                cost_sats: 1
            })
        );
    }
    assert_eq!(used(&ledger, Window::Hour, T0 + 2), 300);

    // A deposit the hour cannot take is refused by the budget, whatever the session's limit.
    let big = PaymentHash([20; 32]);
    match ledger
        .reserve_for_session(&reservation(&big, 800), &big, 10_000, &budget(), T0 + 3)
        .unwrap()
    {
        Err(SessionRefused::OverBudget(over)) => {
            assert_eq!((over.window, over.left_sats), (Window::Hour, 700))
        }
        other => panic!("expected over budget, got {other:?}"),
    }
}

#[test]
fn sessions_idle_past_the_servers_timeout_are_found_to_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    let ledger = Ledger::open(&path).unwrap();
    let id = PaymentHash([7; 32]);
    open(&ledger, &id, 100, 100, T0);
    assert!(ledger.idle_sessions(T0 + 599).unwrap().is_empty());
    ledger
        .session_debit(&id, "/v1/chat", 1_000, None, T0 + 500)
        .unwrap();
    assert!(ledger.idle_sessions(T0 + 1_000).unwrap().is_empty());
    // Another process (another open of the file) finds it idle once the timeout has passed.
    let other = Ledger::open(&path).unwrap();
    let idle = other.idle_sessions(T0 + 1_100).unwrap();
    assert_eq!(idle.len(), 1);
    assert_eq!(idle[0].session_id, id);
    assert_eq!(idle[0].state, SessionState::Open);
}
