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
                method: "POST",
                close_body: None,
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

// Against a server of sessions (`plannt_testkit::sessions`, a minimal server that follows
// draft-lightning-session-00 with Plannt's wire types, a charge offered beside each session),
// paid on its dev network (or through a fake LND that pays into it), refunds included.

mod live {
    use std::sync::Arc;
    use std::time::Duration;

    use plannt_client::lightning::dev::DevNetwork;
    use plannt_client::{
        Client, ClientError, Ledger, Options, Outcome, Policy, Request, Response, SessionState,
        Timeouts, Window,
    };
    use plannt_testkit::sessions::{SessionScenario, SessionServer};

    use crate::support::open_policy;

    const PAYER: &str = "session-payer";
    const START_MSAT: u64 = 1_000_000_000;

    /// A policy with an hourly budget of 1,000 sats, 10 sats a request, and sessions of up to
    /// `deposit` sats with the loopback host of the test server.
    fn policy(deposit: u64) -> Policy {
        let mut policy = open_policy(10);
        policy.budget.hourly_sats = Some(1_000);
        policy.session_deposits = vec![("127.0.0.1".into(), deposit)];
        policy
    }

    fn client(network: &DevNetwork, ledger: &Ledger, policy: Policy) -> Client {
        let wallet = Arc::new(network.wallet(PAYER));
        Client::builder(wallet.clone(), ledger.clone(), policy)
            .timeouts(Timeouts {
                connect: Duration::from_secs(10),
                max_time: Duration::from_secs(30),
            })
            .return_invoices(wallet)
            .build()
    }

    async fn get(client: &Client, server: &SessionServer) -> Result<Response, ClientError> {
        let request = Request::get(server.url("/v1/thing"));
        match client.send(&request, &Options::default()).await? {
            Outcome::Response(r) => Ok(r),
            Outcome::DryRun(_) => panic!("not a dry run"),
        }
    }

    fn hour(ledger: &Ledger, policy: &Policy) -> u64 {
        ledger
            .usage(
                &policy.budget,
                plannt_client::lightning::invoice::unix_now(),
            )
            .unwrap()
            .into_iter()
            .find(|w| w.window == Window::Hour)
            .unwrap()
            .used_sats
    }

    async fn server(scenario: SessionScenario, unit: u64, deposit: u64) -> SessionServer {
        SessionServer::start(DevNetwork::ephemeral(1_000_000), scenario, unit, deposit).await
    }

    #[tokio::test]
    async fn a_session_opens_serves_bearer_requests_and_closes_with_its_refund_in_the_wallet() {
        let server = server(SessionScenario::Honest, 2, 100).await;
        let network = server.shared.network.clone();
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
        let policy = policy(100);
        let client = client(&network, &ledger, policy.clone());

        let first = get(&client, &server).await.unwrap();
        assert_eq!(first.status, 200);
        let receipt = first.receipt.clone().unwrap();
        let session = receipt.session.clone().expect("paid from a session");
        assert_eq!(
            (
                session.action.as_str(),
                receipt.amount_sats,
                session.balance_sats
            ),
            ("open", 100, 98)
        );
        // The deposit's preimage spends the session: it is not in the receipt.
        assert!(receipt.preimage.is_empty());
        for left in [96, 94] {
            let r = get(&client, &server).await.unwrap();
            assert_eq!(r.status, 200);
            let s = r.receipt.unwrap().session.unwrap();
            assert_eq!((s.action.as_str(), s.balance_sats), ("bearer", left));
        }
        assert_eq!(
            server
                .shared
                .opened
                .load(std::sync::atomic::Ordering::SeqCst),
            1
        );
        assert_eq!(
            server
                .shared
                .served_in_session
                .load(std::sync::atomic::Ordering::SeqCst),
            3
        );
        assert_eq!(network.balance(PAYER), START_MSAT - 100_000);
        assert_eq!(hour(&ledger, &policy), 100);

        let id = plannt_client::l402::PaymentHash::from_hex(&session.id).unwrap();
        let closed = client.close_session(&id).await.unwrap();
        assert_eq!(
            (
                closed.refund_claimed_sats,
                closed.refund_received_sats,
                closed.refund_status.as_str()
            ),
            (94, 94, "succeeded")
        );
        // The refund landed in the payer's dev wallet, and the budget got it back.
        assert_eq!(network.balance(PAYER), START_MSAT - 6_000);
        assert_eq!(hour(&ledger, &policy), 6);
        let record = &ledger.sessions(true).unwrap()[0];
        assert_eq!(
            (
                record.state,
                record.deposit_sats,
                record.spent_sats,
                record.refund_sats
            ),
            (SessionState::Closed, 100, 6, 94)
        );
        // Each debit is the one the server reported (its receipt's `debitSats`), not an estimate.
        let debits = ledger.session_debits(&id).unwrap();
        assert_eq!(
            debits
                .iter()
                .map(|d| (d.amount_msat, d.balance_msat, d.reported))
                .collect::<Vec<_>>(),
            vec![
                (2_000, Some(98_000), true),
                (2_000, Some(96_000), true),
                (2_000, Some(94_000), true)
            ]
        );
        assert_eq!(record.estimated_debits, 0);
        // A closed session is not presented again: the next request opens a new one.
        let again = get(&client, &server).await.unwrap();
        assert_eq!(again.receipt.unwrap().session.unwrap().action, "open");
        assert_eq!(
            server
                .shared
                .opened
                .load(std::sync::atomic::Ordering::SeqCst),
            2
        );
    }

    /// The client's wallet is LND (the test kit's fake LND REST API, paying into the server's
    /// dev network) and its return invoices another backend's (an account of that network):
    /// the deposit goes out through LND, the session serves bearer requests, and its refund
    /// arrives in the wallet that issued the return invoice, exactly.
    #[tokio::test]
    async fn a_session_paid_through_lnd_gets_its_refund_in_the_wallet_of_its_return_invoice() {
        use plannt_client::lightning::{Lnd, Network, Secret};
        use plannt_testkit::fakes::lnd as fake_lnd;

        let server = server(SessionScenario::Honest, 2, 100).await;
        let network = server.shared.network.clone();
        let node = fake_lnd::Lnd::new(network.clone());
        let rest = node.serve().await;
        let macaroon = node.state().admin_macaroon.clone();
        let lnd = Arc::new(Lnd::new(
            rest.url.clone(),
            Secret::new(macaroon),
            Network::Regtest,
        ));
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
        let mut policy = policy(100);
        // LND's route costs a sat.
        policy.max_fee_sats = 1;
        let client = Client::builder(lnd, ledger.clone(), policy)
            .timeouts(Timeouts {
                connect: Duration::from_secs(10),
                max_time: Duration::from_secs(30),
            })
            .return_invoices(Arc::new(network.wallet(PAYER)))
            .build();

        let opened = get(&client, &server).await.unwrap();
        let session = opened
            .receipt
            .unwrap()
            .session
            .expect("paid from a session");
        assert_eq!(
            (session.action.as_str(), session.balance_sats),
            ("open", 98)
        );
        assert_eq!(
            node.state().payments_started,
            1,
            "the deposit went through LND"
        );
        let r = get(&client, &server).await.unwrap();
        let s = r.receipt.unwrap().session.unwrap();
        assert_eq!((s.action.as_str(), s.balance_sats), ("bearer", 96));

        let id = plannt_client::l402::PaymentHash::from_hex(&session.id).unwrap();
        let closed = client.close_session(&id).await.unwrap();
        assert_eq!(
            (
                closed.refund_claimed_sats,
                closed.refund_received_sats,
                closed.refund_status.as_str()
            ),
            (96, 96, "succeeded")
        );
        assert_eq!(network.balance(PAYER), START_MSAT + 96_000);
    }

    #[tokio::test]
    async fn a_second_process_reuses_the_session_the_first_opened() {
        let server = server(SessionScenario::Honest, 2, 100).await;
        let network = server.shared.network.clone();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.sqlite");
        let first = Ledger::open(&path).unwrap();
        let opened = get(&client(&network, &first, policy(100)), &server)
            .await
            .unwrap();
        assert_eq!(opened.receipt.unwrap().session.unwrap().action, "open");
        drop(first);
        // Another process: its own open of the ledger file, its own client.
        let second = Ledger::open(&path).unwrap();
        let r = get(&client(&network, &second, policy(100)), &server)
            .await
            .unwrap();
        let s = r.receipt.unwrap().session.unwrap();
        assert_eq!((s.action.as_str(), s.balance_sats), ("bearer", 96));
        assert_eq!(
            server
                .shared
                .opened
                .load(std::sync::atomic::Ordering::SeqCst),
            1
        );
        assert_eq!(network.balance(PAYER), START_MSAT - 100_000);
    }

    #[tokio::test]
    async fn a_session_the_policy_refuses_falls_back_to_a_charge() {
        let server = server(SessionScenario::Honest, 2, 100).await;
        let network = server.shared.network.clone();
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
        // Sessions of at most 50 sats with this host: the 100-sat deposit is refused.
        let r = get(&client(&network, &ledger, policy(50)), &server)
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        let receipt = r.receipt.unwrap();
        assert_eq!((receipt.amount_sats, receipt.session), (2, None));
        assert_eq!(
            server
                .shared
                .served_by_charge
                .load(std::sync::atomic::Ordering::SeqCst),
            1
        );
        assert!(ledger.sessions(true).unwrap().is_empty());
        assert_eq!(ledger.refusals(5).unwrap()[0].check, "over_session_deposit");
        // With no session_deposit_sats for the host at all, the same: a charge.
        let mut none = policy(0);
        none.session_deposits.clear();
        let r = get(&client(&network, &ledger, none), &server)
            .await
            .unwrap();
        assert_eq!(r.receipt.unwrap().session, None);
        assert_eq!(network.balance(PAYER), START_MSAT - 4_000);
        // A budget the deposit does not fit: a charge too.
        let mut tight = policy(100);
        tight.budget.hourly_sats = Some(50);
        let r = get(&client(&network, &ledger, tight), &server)
            .await
            .unwrap();
        assert_eq!(r.receipt.unwrap().session, None);
        assert!(ledger.sessions(true).unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_short_session_is_topped_up_within_its_limit() {
        // 4 sats a request, deposits of 10: open (6 left), bearer (2 left), then a top-up.
        let server = server(SessionScenario::Honest, 4, 10).await;
        let network = server.shared.network.clone();
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
        let policy = policy(20);
        let client = client(&network, &ledger, policy.clone());
        let actions: Vec<String> = {
            let mut out = Vec::new();
            for _ in 0..3 {
                let r = get(&client, &server).await.unwrap();
                assert_eq!(r.status, 200);
                out.push(r.receipt.unwrap().session.unwrap().action);
            }
            out
        };
        assert_eq!(actions, ["open", "bearer", "topUp"]);
        assert_eq!(hour(&ledger, &policy), 20);
        // 8 sats left: two more requests. Then the session holds its limit: the next top-up is
        // refused, and a charge is paid.
        for left in [4, 0] {
            let r = get(&client, &server).await.unwrap();
            let s = r.receipt.unwrap().session.unwrap();
            assert_eq!((s.action.as_str(), s.balance_sats), ("bearer", left));
        }
        let r = get(&client, &server).await.unwrap();
        assert_eq!(r.status, 200);
        let receipt = r.receipt.unwrap();
        assert_eq!((receipt.session, receipt.amount_sats), (None, 4));
        assert_eq!(hour(&ledger, &policy), 24);
    }

    #[tokio::test]
    async fn a_refund_that_never_comes_is_not_given_back_to_the_budget() {
        let server = server(SessionScenario::NoRefund, 2, 100).await;
        let network = server.shared.network.clone();
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
        let policy = policy(100);
        let client = client(&network, &ledger, policy.clone());
        let r = get(&client, &server).await.unwrap();
        let id =
            plannt_client::l402::PaymentHash::from_hex(&r.receipt.unwrap().session.unwrap().id)
                .unwrap();
        let closed = client.close_session(&id).await.unwrap();
        // The server claims 98 sats refunded; the wallet received none, and that is recorded.
        assert_eq!(
            (closed.refund_claimed_sats, closed.refund_received_sats),
            (98, 0)
        );
        assert_eq!(hour(&ledger, &policy), 100);
        assert_eq!(network.balance(PAYER), START_MSAT - 100_000);
        assert_eq!(ledger.sessions(true).unwrap()[0].refund_sats, 0);
    }

    #[tokio::test]
    async fn a_server_asking_for_top_ups_again_and_again_cannot_drain_the_budget() {
        let server = server(SessionScenario::TopUpForever, 2, 100).await;
        let network = server.shared.network.clone();
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
        let policy = policy(250);
        let client = client(&network, &ledger, policy.clone());
        assert_eq!(get(&client, &server).await.unwrap().status, 200);
        let mut still_unpaid = 0;
        for _ in 0..6 {
            match get(&client, &server).await {
                Err(ClientError::SessionStillUnpaid { .. }) => still_unpaid += 1,
                Ok(r) => assert_eq!(r.receipt.unwrap().session, None, "a charge"),
                Err(e) => panic!("unexpected: {e}"),
            }
        }
        // One top-up was paid and refused; the session's limit stopped the next; the rest were
        // single charges of 2 sats.
        assert_eq!(still_unpaid, 1);
        let record = &ledger.sessions(true).unwrap()[0];
        assert_eq!(record.deposit_sats, 200);
        assert!(record.deposit_sats <= 250);
        assert_eq!(hour(&ledger, &policy), 200 + 5 * 2);
        assert_eq!(network.balance(PAYER), START_MSAT - 210_000);
    }

    #[tokio::test]
    async fn a_server_that_forgets_sessions_gets_one_deposit_not_one_a_call() {
        let server = server(SessionScenario::Forgetful, 2, 100).await;
        let network = server.shared.network.clone();
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
        let policy = policy(100);
        let client = client(&network, &ledger, policy.clone());
        let first = get(&client, &server).await.unwrap();
        assert_eq!(first.receipt.unwrap().session.unwrap().action, "open");
        // The server no longer knows it: the session is recorded lost, and the place is paid
        // by charges, not new sessions.
        for _ in 0..4 {
            let r = get(&client, &server).await.unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(r.receipt.unwrap().session, None);
        }
        assert_eq!(
            server
                .shared
                .opened
                .load(std::sync::atomic::Ordering::SeqCst),
            1
        );
        let record = &ledger.sessions(true).unwrap()[0];
        assert_eq!(
            (record.state, record.refund_status.as_deref()),
            (SessionState::Closed, Some("unknown"))
        );
        assert_eq!(hour(&ledger, &policy), 100 + 4 * 2);
    }

    #[tokio::test]
    async fn idle_sessions_are_closed_on_the_next_run() {
        let server = server(SessionScenario::Honest, 2, 100).await;
        let network = server.shared.network.clone();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.sqlite");
        let ledger = Ledger::open(&path).unwrap();
        get(&client(&network, &ledger, policy(100)), &server)
            .await
            .unwrap();
        // Idle past the server's timeout, as the ledger sees it: made so by setting its last use
        // back, as if the run had been long ago.
        drop(ledger);
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute("UPDATE sessions SET last_used_at = last_used_at - 3600", [])
            .unwrap();
        let ledger = Ledger::open(&path).unwrap();
        let closed = client(&network, &ledger, policy(100))
            .close_idle_sessions()
            .await
            .unwrap();
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].refund_received_sats, 98);
        assert_eq!(ledger.sessions(false).unwrap().len(), 0);
        assert_eq!(network.balance(PAYER), START_MSAT - 2_000);
    }

    /// A server that reports a debit larger than the deposit, or a balance that grows with each
    /// request, is not believed: each of its debits is recorded as an estimate of one unit, the
    /// budgets count the deposit paid and nothing else, and the refund gives back what arrived.
    #[tokio::test]
    async fn a_server_reporting_impossible_debits_cannot_move_the_budget() {
        for scenario in [SessionScenario::Overdebit, SessionScenario::GrowingBalance] {
            let server = server(scenario, 2, 100).await;
            let network = server.shared.network.clone();
            let dir = tempfile::tempdir().unwrap();
            let ledger = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
            let policy = policy(100);
            let client = client(&network, &ledger, policy.clone());
            let mut id = None;
            for _ in 0..3 {
                let r = get(&client, &server).await.unwrap();
                assert_eq!(r.status, 200, "{scenario:?}");
                id = Some(r.receipt.unwrap().session.unwrap().id);
            }
            assert_eq!(
                hour(&ledger, &policy),
                100,
                "{scenario:?}: the deposit, no more"
            );
            let id = plannt_client::l402::PaymentHash::from_hex(&id.unwrap()).unwrap();
            let debits = ledger.session_debits(&id).unwrap();
            assert_eq!(debits.len(), 3, "{scenario:?}");
            assert!(
                debits.iter().all(|d| !d.reported && d.amount_msat == 2_000),
                "{scenario:?}: {debits:?}"
            );
            let record = &ledger.sessions(false).unwrap()[0];
            assert_eq!(
                (
                    record.spent_sats,
                    record.balance_sats,
                    record.estimated_debits
                ),
                (6, 94, 3),
                "{scenario:?}"
            );
            let closed = client.close_session(&id).await.unwrap();
            assert_eq!(closed.refund_received_sats, 94, "{scenario:?}");
            assert_eq!(hour(&ledger, &policy), 6, "{scenario:?}");
            assert_eq!(network.balance(PAYER), START_MSAT - 6_000, "{scenario:?}");
        }
    }
}

mod streams {
    use std::sync::Arc;
    use std::time::Duration;

    use plannt_client::lightning::dev::DevNetwork;
    use plannt_client::{Client, Ledger, Options, Outcome, Request, Timeouts};
    use plannt_testkit::sessions::{STREAM_PATH, SessionScenario, SessionServer};

    use crate::support::open_policy;

    #[tokio::test]
    async fn a_stream_that_ends_with_need_top_up_says_so_and_the_next_call_tops_up() {
        let network = DevNetwork::ephemeral(1_000_000);
        let server = SessionServer::start(network.clone(), SessionScenario::Honest, 2, 20).await;
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
        let mut policy = open_policy(10);
        policy.session_deposits = vec![("127.0.0.1".into(), 40)];
        let wallet = Arc::new(network.wallet("streamer"));
        let client = Client::builder(wallet.clone(), ledger.clone(), policy)
            .timeouts(Timeouts {
                connect: Duration::from_secs(10),
                max_time: Duration::from_secs(30),
            })
            .return_invoices(wallet)
            .build();
        let send = |path: &str| {
            let request = Request::get(server.url(path));
            let client = &client;
            async move {
                match client.send(&request, &Options::default()).await.unwrap() {
                    Outcome::Response(r) => r,
                    Outcome::DryRun(_) => panic!("not a dry run"),
                }
            }
        };
        // Open on the stream's place, then a bearer request whose stream runs the balance out.
        let opened = send(STREAM_PATH).await;
        assert_eq!(opened.receipt.unwrap().session.unwrap().action, "open");
        let mut stream = send(STREAM_PATH).await;
        assert_eq!(
            stream.receipt.clone().unwrap().session.unwrap().action,
            "bearer"
        );
        assert!(stream.need_top_up.is_none());
        let body = stream.bytes(1 << 20).await.unwrap();
        assert!(body.starts_with(b"data: {\"n\":1}"));
        let event = stream.need_top_up.clone().expect("the event was seen");
        assert_eq!(event.balance_required, 2);
        // The stream's debit came as its last comment: recorded as the server said it.
        let id = plannt_client::l402::PaymentHash::from_hex(
            &stream.receipt.clone().unwrap().session.unwrap().id,
        )
        .unwrap();
        let debits = ledger.session_debits(&id).unwrap();
        let last = debits.last().unwrap();
        assert_eq!(
            (last.amount_msat, last.balance_msat, last.reported),
            (18_000, Some(0), true),
            "{debits:?}"
        );
        let record = &ledger.sessions(false).unwrap()[0];
        assert_eq!((record.spent_sats, record.balance_sats), (20, 0));
        // The ledger knows the session is short: the next call tops it up, within the limit.
        let next = send(STREAM_PATH).await;
        assert_eq!(next.status, 200);
        assert_eq!(next.receipt.unwrap().session.unwrap().action, "topUp");
        assert_eq!(network.balance("streamer"), 1_000_000_000 - 40_000);
    }
}
