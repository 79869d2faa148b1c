//! Tokens kept between requests: a server that lets a token be reused (like Aperture: no
//! `x-l402: spent`) gets it presented again until it answers 402, and only then is paid again;
//! a server that spends tokens (`x-l402: spent`) is paid for every request.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::support::{Hostile, Scenario, open_policy};
use plannt_client::{Client, Ledger, Options, Outcome, Receipt, Request};

const PAYER: &str = "payer";
const START_MSAT: u64 = 1_000_000_000;

async fn paid_get(client: &Client, server: &Hostile) -> Receipt {
    let outcome = client
        .send(&Request::get(server.url("/paid")), &Options::default())
        .await;
    let mut response = match outcome {
        Ok(Outcome::Response(response)) => response,
        Ok(Outcome::DryRun(_)) => panic!("expected a response, got a dry run"),
        Err(e) => panic!("expected a response, got {e}"),
    };
    assert_eq!(response.status, 200);
    assert_eq!(
        &response.bytes(1024).await.unwrap()[..],
        b"{\"result\":\"paid\"}"
    );
    response.receipt.expect("a receipt")
}

#[tokio::test]
async fn a_reusable_token_is_presented_until_the_server_asks_again() {
    let server = Hostile::start(Scenario::Reusable { uses: 3 }, 21).await;
    let network = server.network().clone();
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
    let client = Client::new(
        Arc::new(network.wallet(PAYER)),
        ledger.clone(),
        open_policy(1_000),
    );

    let first = paid_get(&client, &server).await;
    assert!(!first.reused_token);
    assert_eq!(first.amount_sats, 21);
    for _ in 0..2 {
        let again = paid_get(&client, &server).await;
        assert!(again.reused_token, "{again:?}");
        assert_eq!(again.amount_sats, 0);
        assert_eq!(again.payment_hash, first.payment_hash);
    }
    // One payment bought three requests; only the first went without a credential.
    assert_eq!(network.paid_count(), 1);
    assert_eq!(network.balance(PAYER), START_MSAT - 21_000);
    assert_eq!(server.shared.bare_requests.load(Ordering::SeqCst), 1);
    assert_eq!(server.shared.paid_requests.load(Ordering::SeqCst), 3);

    // The server has had enough of that token: its 402 is paid, and the new token reused.
    let fourth = paid_get(&client, &server).await;
    assert!(!fourth.reused_token);
    assert_eq!(fourth.amount_sats, 21);
    assert_ne!(fourth.payment_hash, first.payment_hash);
    let fifth = paid_get(&client, &server).await;
    assert!(fifth.reused_token);
    assert_eq!(fifth.payment_hash, fourth.payment_hash);

    assert_eq!(network.paid_count(), 2);
    assert_eq!(network.balance(PAYER), START_MSAT - 42_000);
    assert_eq!(server.shared.bare_requests.load(Ordering::SeqCst), 1);
    let paid: Vec<_> = ledger
        .recent(10)
        .unwrap()
        .into_iter()
        .filter(|r| r.status == "paid")
        .collect();
    assert_eq!(paid.len(), 2);
}

#[tokio::test]
async fn a_spent_token_is_not_presented_again() {
    let server = Hostile::start(Scenario::Honest, 21).await;
    let network = server.network().clone();
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
    let client = Client::new(
        Arc::new(network.wallet(PAYER)),
        ledger.clone(),
        open_policy(1_000),
    );
    let first = paid_get(&client, &server).await;
    let second = paid_get(&client, &server).await;
    assert!(!first.reused_token && !second.reused_token);
    assert_ne!(first.payment_hash, second.payment_hash);
    assert_eq!(network.paid_count(), 2);
    assert_eq!(network.balance(PAYER), START_MSAT - 42_000);
    // The spent token was forgotten, not replayed: both requests went out bare first.
    assert_eq!(server.shared.bare_requests.load(Ordering::SeqCst), 2);
    assert_eq!(server.shared.challenges.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_stored_token_refused_with_an_l402_reason_is_dropped() {
    let server = Hostile::start(Scenario::Reusable { uses: 10 }, 21).await;
    let network = server.network().clone();
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
    let client = Client::new(Arc::new(network.wallet(PAYER)), ledger, open_policy(1_000));
    paid_get(&client, &server).await;

    // The server now refuses the token itself (401 with an L402 reason).
    server.shared.set_scenario(Scenario::RefuseCredentials);
    let Ok(Outcome::Response(response)) = client
        .send(&Request::get(server.url("/paid")), &Options::default())
        .await
    else {
        panic!("expected a response");
    };
    assert_eq!(response.status, 401);

    // It is not presented again: the next request is challenged and paid anew.
    server.shared.set_scenario(Scenario::Reusable { uses: 10 });
    let again = paid_get(&client, &server).await;
    assert!(!again.reused_token, "{again:?}");
    assert_eq!(network.paid_count(), 2);
}
