//! Every check before a payment, against a server that breaks it: each is refused with its own
//! `Refusal`, nothing is paid (the dev wallet's balance does not move and the ledger holds no
//! payment), and the ledger records the refusal under the check's name. A dry run runs every
//! check the payment would, the budgets included, and reserves nothing.

use std::sync::Arc;

use crate::support::{Hostile, Scenario, open_policy};
use plannt_client::lightning::Network;
use plannt_client::{Client, ClientError, Ledger, Options, Outcome, Policy, Refusal, Request};

const PAYER: &str = "payer";

struct Setup {
    server: Hostile,
    client: Client,
    ledger: Ledger,
    _dir: tempfile::TempDir,
}

async fn setup(scenario: Scenario, price_sats: u64, policy: Policy) -> Setup {
    let server = Hostile::start(scenario, price_sats).await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
    let client = Client::new(
        Arc::new(server.network().wallet(PAYER)),
        ledger.clone(),
        policy,
    );
    Setup {
        server,
        client,
        ledger,
        _dir: dir,
    }
}

/// Sends a GET of `/paid` and expects a refusal.
async fn refused(setup: &Setup, options: &Options<'_>) -> Refusal {
    let request = Request::get(setup.server.url("/paid"));
    match setup.client.send(&request, options).await {
        Err(ClientError::Refused(refusal)) => refusal,
        Err(other) => panic!("expected a refusal, got the error {other}"),
        Ok(Outcome::DryRun(quote)) => panic!("expected a refusal, got a quote of {quote:?}"),
        Ok(Outcome::Response(r)) => panic!("expected a refusal, got HTTP {}", r.status),
    }
}

/// Nothing was paid or reserved, the server never saw a credential, and the ledger names `check`.
fn assert_refused_and_recorded(setup: &Setup, check: &str) {
    let network = setup.server.network();
    assert_eq!(network.balance(PAYER), 1_000_000_000, "the payer paid");
    assert_eq!(network.paid_count(), 0, "the network settled a payment");
    assert!(
        setup.ledger.recent(10).unwrap().is_empty(),
        "a payment was reserved: {:?}",
        setup.ledger.recent(10).unwrap()
    );
    assert_eq!(
        setup
            .server
            .shared
            .paid_requests
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    let refusals = setup.ledger.refusals(10).unwrap();
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(refusals[0].check, check);
    assert_eq!(refusals[0].path, "/paid");
    assert_eq!(
        refusals[0].origin,
        format!("http://{}", setup.server.addr),
        "{refusals:?}"
    );
    assert!(!refusals[0].detail.is_empty());
}

#[tokio::test]
async fn an_invoice_for_another_payment_hash_is_refused() {
    let setup = setup(Scenario::HashMismatch, 21, open_policy(1_000)).await;
    let refusal = refused(&setup, &Options::default()).await;
    let Refusal::HashMismatch { invoice, macaroon } = &refusal else {
        panic!("expected a hash mismatch, got {refusal:?}");
    };
    assert_ne!(invoice, macaroon);
    assert_eq!(refusal.check(), "hash_mismatch");
    assert_refused_and_recorded(&setup, "hash_mismatch");
}

#[tokio::test]
async fn an_amount_above_the_cap_is_refused() {
    let setup = setup(Scenario::Honest, 1_001, open_policy(1_000)).await;
    let refusal = refused(&setup, &Options::default()).await;
    assert_eq!(
        refusal,
        Refusal::OverCap {
            amount_sats: 1_001,
            cap_sats: 1_000
        }
    );
    assert_refused_and_recorded(&setup, "over_cap");
}

#[tokio::test]
async fn a_per_call_cap_lowers_the_configured_one() {
    let setup = setup(Scenario::Honest, 21, open_policy(1_000)).await;
    let options = Options {
        max_sats: Some(20),
        ..Options::default()
    };
    let refusal = refused(&setup, &options).await;
    assert_eq!(
        refusal,
        Refusal::OverCap {
            amount_sats: 21,
            cap_sats: 20
        }
    );
    assert_refused_and_recorded(&setup, "over_cap");
}

#[tokio::test]
async fn an_amountless_invoice_is_refused() {
    let setup = setup(Scenario::Amountless, 21, open_policy(1_000)).await;
    assert_eq!(
        refused(&setup, &Options::default()).await,
        Refusal::NoAmount
    );
    assert_refused_and_recorded(&setup, "no_amount");
}

#[tokio::test]
async fn a_mainnet_invoice_is_refused_by_a_regtest_wallet() {
    let setup = setup(Scenario::Mainnet, 21, open_policy(1_000)).await;
    assert_eq!(
        refused(&setup, &Options::default()).await,
        Refusal::WrongNetwork {
            invoice: Network::Bitcoin,
            wallet: Network::Regtest
        }
    );
    assert_refused_and_recorded(&setup, "wrong_network");
}

#[tokio::test]
async fn an_expired_invoice_is_refused() {
    let setup = setup(Scenario::Expired, 21, open_policy(1_000)).await;
    let refusal = refused(&setup, &Options::default()).await;
    let Refusal::Expired { expires_at } = refusal else {
        panic!("expected an expired invoice, got {refusal:?}");
    };
    assert!(expires_at < plannt_client::lightning::invoice::unix_now());
    assert_refused_and_recorded(&setup, "expired");
}

#[tokio::test]
async fn a_host_not_allowed_is_refused() {
    let mut policy = open_policy(1_000);
    policy.allowed_hosts = vec!["api.example.com".into(), "*.plannt.com".into()];
    let setup = setup(Scenario::Honest, 21, policy).await;
    assert_eq!(
        refused(&setup, &Options::default()).await,
        Refusal::HostNotAllowed("127.0.0.1".into())
    );
    assert_refused_and_recorded(&setup, "host_not_allowed");
}

#[tokio::test]
async fn a_price_raised_after_a_dry_run_is_refused() {
    let setup = setup(Scenario::PriceRises { step: 79 }, 21, open_policy(1_000)).await;
    let request = Request::get(setup.server.url("/paid"));
    let dry = Options {
        dry_run: true,
        ..Options::default()
    };
    let Ok(Outcome::DryRun(quote)) = setup.client.send(&request, &dry).await else {
        panic!("expected a quote from the dry run");
    };
    assert_eq!(quote.amount_sats(), 21);
    assert_eq!(
        refused(&setup, &Options::default()).await,
        Refusal::PriceChanged {
            quoted_sats: 21,
            amount_sats: 100
        }
    );
    assert_refused_and_recorded(&setup, "price_changed");
}

#[tokio::test]
async fn a_dry_run_pays_nothing_and_the_same_price_is_then_paid() {
    let setup = setup(Scenario::Honest, 21, open_policy(1_000)).await;
    let request = Request::get(setup.server.url("/paid"));
    let dry = Options {
        dry_run: true,
        ..Options::default()
    };
    let Ok(Outcome::DryRun(quote)) = setup.client.send(&request, &dry).await else {
        panic!("expected a quote from the dry run");
    };
    assert_eq!(quote.amount_sats(), 21);
    assert_eq!(setup.server.network().paid_count(), 0);
    assert!(setup.ledger.recent(10).unwrap().is_empty());

    // The price held: the real call pays it.
    let Ok(Outcome::Response(mut response)) =
        setup.client.send(&request, &Options::default()).await
    else {
        panic!("expected a paid response");
    };
    assert_eq!(response.status, 200);
    assert_eq!(
        &response.bytes(1 << 20).await.unwrap()[..],
        b"{\"result\":\"paid\"}"
    );
    assert_eq!(response.receipt.as_ref().unwrap().amount_sats, 21);
    assert_eq!(
        setup.server.network().balance(PAYER),
        1_000_000_000 - 21_000
    );
    assert!(setup.ledger.refusals(10).unwrap().is_empty());
}

#[tokio::test]
async fn a_dry_run_checks_the_budgets_and_reserves_nothing() {
    // 21 sats and a fee reserve of 10: 31 to reserve, and the day has 30.
    let mut policy = open_policy(1_000);
    policy.max_fee_sats = 10;
    policy.budget.daily_sats = Some(30);
    let setup = setup(Scenario::Honest, 21, policy.clone()).await;
    let request = Request::get(setup.server.url("/paid"));
    let dry = Options {
        dry_run: true,
        ..Options::default()
    };
    let over = match setup.client.send(&request, &dry).await {
        Err(ClientError::OverBudget(over)) => over,
        Err(other) => panic!("expected over budget, got {other}"),
        Ok(_) => panic!("a dry run passed that the payment would fail"),
    };
    assert_eq!(over.window, plannt_client::Window::Day);
    assert_eq!((over.left_sats, over.cost_sats), (30, 31));
    // Nothing was reserved, and the refusal is recorded as the payment's would be.
    assert_refused_and_recorded(&setup, "over_budget");
    let day = |ledger: &Ledger| {
        ledger
            .usage(
                &policy.budget,
                plannt_client::lightning::invoice::unix_now(),
            )
            .unwrap()[1]
            .used_sats
    };
    assert_eq!(day(&setup.ledger), 0);
    // The real call fails the same check.
    assert!(matches!(
        setup.client.send(&request, &Options::default()).await,
        Err(ClientError::OverBudget(_))
    ));

    // With room for it, the dry run passes and still reserves nothing.
    let mut roomy = policy.clone();
    roomy.budget.daily_sats = Some(31);
    let setup = self::setup(Scenario::Honest, 21, roomy).await;
    let request = Request::get(setup.server.url("/paid"));
    let Ok(Outcome::DryRun(quote)) = setup.client.send(&request, &dry).await else {
        panic!("expected a quote from the dry run");
    };
    assert_eq!(quote.amount_sats(), 21);
    assert_eq!(day(&setup.ledger), 0);
    assert!(setup.ledger.recent(10).unwrap().is_empty());
    assert_eq!(setup.server.network().paid_count(), 0);
}
