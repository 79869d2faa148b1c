//! The three dialects from the paying side: the client picks the first dialect of its
//! preference order that the 402 offers, pays it under the same checks, budgets and ledger, and
//! never pays a dialect the policy (or the call) leaves out.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::support::{Hostile, Scenario, open_policy};
use plannt_client::{Client, ClientError, Dialect, Ledger, Options, Outcome, Request};

const PAYER: &str = "payer";
const START_MSAT: u64 = 1_000_000_000;

fn l402_client(server: &Hostile, dir: &tempfile::TempDir) -> Client {
    Client::new(
        Arc::new(server.network().wallet(PAYER)),
        Ledger::open(&dir.path().join("ledger.sqlite")).unwrap(),
        open_policy(1_000),
    )
}

#[tokio::test]
async fn a_dialect_the_server_does_not_offer_is_a_clear_error_and_nothing_is_paid() {
    let server = Hostile::start(Scenario::Honest, 21).await;
    let dir = tempfile::tempdir().unwrap();
    let client = l402_client(&server, &dir);
    let options = Options {
        dialects: Some(&[Dialect::Mpp, Dialect::X402]),
        ..Options::default()
    };
    let error = match client
        .send(&Request::get(server.url("/paid")), &options)
        .await
    {
        Err(e) => e,
        Ok(_) => panic!("a dialect the server does not offer was paid"),
    };
    let ClientError::NoDialect { offered, allowed } = &error else {
        panic!("expected NoDialect, got {error}");
    };
    assert_eq!(offered, &[Dialect::L402]);
    assert_eq!(allowed, &[Dialect::Mpp, Dialect::X402]);
    let text = error.to_string();
    assert!(text.contains("offers l402"), "{text}");
    assert!(text.contains("nothing was paid"), "{text}");
    assert_eq!(server.network().balance(PAYER), START_MSAT);
    assert_eq!(server.network().paid_count(), 0);
    assert!(client.ledger().recent(10).unwrap().is_empty());
    assert_eq!(server.shared.paid_requests.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_paid_l402_call_says_its_dialect() {
    let server = Hostile::start(Scenario::Honest, 21).await;
    let dir = tempfile::tempdir().unwrap();
    let client = l402_client(&server, &dir);
    let Outcome::Response(response) = client
        .send(&Request::get(server.url("/paid")), &Options::default())
        .await
        .unwrap()
    else {
        panic!("not a dry run")
    };
    assert_eq!(response.status, 200);
    let receipt = response.receipt.unwrap();
    assert_eq!(receipt.dialect, Dialect::L402);
    assert_eq!(
        serde_json::to_value(&receipt).unwrap()["dialect"],
        serde_json::json!("l402")
    );
}
