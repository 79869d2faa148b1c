//! When the server or the wallet does not answer: a wallet that cannot be reached fails the
//! payment at once, paying nothing and holding no budget; each cause of a network failure is
//! named (refused, unknown host, TLS, timeout, connection closed) with the server's origin; the
//! max time bounds a whole call; and a timeout during or after a payment leaves it pending or
//! paid, so that the next call finishes it and never pays twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::support::{Hostile, Scenario, client, get, open_policy};
use async_trait::async_trait;
use plannt_client::l402::PaymentHash;
use plannt_client::lightning::dev::DevWallet;
use plannt_client::lightning::dev::http::DevHttp;
use plannt_client::lightning::invoice::unix_now;
use plannt_client::lightning::{Balance, LightningError, Network, Payer, Payment, PaymentLookup};
use plannt_client::{
    Client, ClientError, Ledger, NetworkCause, NetworkError, Policy, Step, Window,
};
use plannt_testkit::broken::Broken;

const PAYER: &str = "payer";
const START_MSAT: u64 = 1_000_000_000;

fn ledger_in(dir: &tempfile::TempDir) -> Ledger {
    Ledger::open(&dir.path().join("ledger.sqlite")).unwrap()
}

async fn network_error(client: &Client, url: url::Url) -> NetworkError {
    match get(client, url).await {
        Err(ClientError::Network(e)) => e,
        Err(other) => panic!("expected a network error, got {other}"),
        Ok(r) => panic!("expected a network error, got HTTP {}", r.status),
    }
}

fn statuses(ledger: &Ledger) -> Vec<String> {
    ledger
        .recent(100)
        .unwrap()
        .into_iter()
        .map(|r| r.status)
        .collect()
}

fn day_used(ledger: &Ledger, policy: &Policy) -> u64 {
    ledger
        .usage(&policy.budget, unix_now())
        .unwrap()
        .into_iter()
        .find(|w| w.window == Window::Day)
        .unwrap()
        .used_sats
}

#[tokio::test]
async fn a_wallet_that_cannot_be_reached_fails_the_payment_and_holds_no_budget() {
    let server = Hostile::start(Scenario::Honest, 100).await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger_in(&dir);
    let mut policy = open_policy(1_000);
    policy.max_fee_sats = 10;
    policy.budget.daily_sats = Some(2_000);
    let dead = plannt_testkit::dead_port();
    let wallet = DevHttp::new(format!("http://127.0.0.1:{dead}").parse().unwrap(), PAYER);
    let client = client(
        Arc::new(wallet),
        &ledger,
        policy.clone(),
        Duration::from_secs(60),
    );

    // Every try makes a new invoice; none may leave a reservation behind.
    for _ in 0..2 {
        let error = get(&client, server.url("/paid"))
            .await
            .err()
            .expect("an error");
        let ClientError::PaymentFailed(LightningError::Unreachable(why)) = &error else {
            panic!("expected an unreachable wallet, got {error}");
        };
        assert!(why.contains(&format!("dev at 127.0.0.1:{dead}")), "{why}");
        assert!(why.contains("nothing was sent"), "{why}");
        let text = error.to_string();
        assert!(text.contains("Nothing was paid"), "{text}");
        assert!(text.contains("PLANNT_WALLET"), "{text}");
    }
    assert_eq!(statuses(&ledger), ["failed", "failed"]);
    assert_eq!(day_used(&ledger, &policy), 0);
    assert_eq!(client.recover().await.unwrap(), 0);

    // The same budget pays through a wallet that answers.
    let reachable = DevHttp::new(server.url("/"), PAYER);
    let client = self::client(
        Arc::new(reachable),
        &ledger,
        policy.clone(),
        Duration::from_secs(60),
    );
    let response = get(&client, server.url("/paid")).await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(day_used(&ledger, &policy), 100);
    assert_eq!(server.network().balance(PAYER), START_MSAT - 100_000);
}

#[tokio::test]
async fn each_cause_of_a_network_failure_is_named_with_the_origin() {
    let server = Hostile::start(Scenario::Honest, 21).await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger_in(&dir);
    let wallet = Arc::new(server.network().wallet(PAYER));
    // Time enough for a slow resolver; the silent server below gets a client of 1 s.
    let client = self::client(
        wallet.clone(),
        &ledger,
        open_policy(1_000),
        Duration::from_secs(60),
    );

    // Refused: nothing listens.
    let dead = plannt_testkit::dead_port();
    let e = network_error(
        &client,
        format!("http://127.0.0.1:{dead}/x?key=SECRET")
            .parse()
            .unwrap(),
    )
    .await;
    assert_eq!(e.cause, NetworkCause::Refused);
    assert_eq!(e.origin, format!("http://127.0.0.1:{dead}"));
    assert!(!e.may_have_been_sent());
    let text = ClientError::Network(e).to_string();
    assert!(text.contains("refused the connection"), "{text}");
    assert!(!text.contains("SECRET"), "{text}");

    // A host name that cannot resolve (RFC 6761's .invalid).
    let e = network_error(&client, "http://plannt-test.invalid/".parse().unwrap()).await;
    assert_eq!(e.cause, NetworkCause::UnknownHost, "{e}");
    assert!(e.to_string().contains("does not resolve (DNS"), "{e}");
    assert!(e.to_string().contains("http://plannt-test.invalid"), "{e}");

    // TLS spoken to a plain HTTP server.
    let mut tls = server.url("/paid");
    tls.set_scheme("https").unwrap();
    let e = network_error(&client, tls).await;
    assert_eq!(e.cause, NetworkCause::Tls, "{e}");
    assert!(e.to_string().contains("TLS handshake"), "{e}");

    // Connected, and no answer within the max time.
    let silent = Broken::silent().await;
    let quick = self::client(wallet, &ledger, open_policy(1_000), Duration::from_secs(1));
    let e = network_error(&quick, silent.url("/")).await;
    assert_eq!(e.cause, NetworkCause::Timeout, "{e}");
    assert_eq!(
        (e.step, e.limit),
        (Step::Request, Some(Duration::from_secs(1)))
    );
    assert!(e.may_have_been_sent());
    let text = e.to_string();
    assert!(text.starts_with("timeout: "), "{text}");
    assert!(text.contains("within 1 s, the max time"), "{text}");

    // Connected, and the connection closed without an answer.
    let hang_up = Broken::hang_up().await;
    let e = network_error(&client, hang_up.url("/")).await;
    assert_eq!(e.cause, NetworkCause::Closed, "{e}");
    assert!(e.to_string().contains("reset or closed"), "{e}");

    // None of it paid or reserved anything.
    assert!(ledger.recent(10).unwrap().is_empty());
    assert_eq!(server.network().paid_count(), 0);
}

#[tokio::test]
async fn a_paid_retry_that_gets_no_answer_keeps_the_token_and_the_next_call_pays_nothing_more() {
    let server = Hostile::start(Scenario::HangOnRetry, 21).await;
    let network = server.network().clone();
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger_in(&dir);
    let wallet = Arc::new(network.wallet(PAYER));
    // Time enough to ask and pay on a loaded machine; the retry then hangs until it runs out.
    let client = client(wallet, &ledger, open_policy(1_000), Duration::from_secs(10));

    let e = network_error(&client, server.url("/paid")).await;
    assert_eq!(e.cause, NetworkCause::Timeout, "{e}");
    let hash = e.token_kept.clone().expect("the paid token is kept");
    assert!(e.to_string().contains("nothing more is paid"), "{e}");
    assert_eq!(statuses(&ledger), ["paid"]);
    assert_eq!(ledger.recent(1).unwrap()[0].payment_hash, hash);
    assert_eq!(network.paid_count(), 1);

    // The server is fixed: the next call presents the token kept, and pays nothing.
    server.shared.set_scenario(Scenario::Honest);
    let response = get(&client, server.url("/paid")).await.unwrap();
    assert_eq!(response.status, 200);
    let receipt = response.receipt.unwrap();
    assert!(receipt.reused_token);
    assert_eq!(receipt.payment_hash, hash);
    assert_eq!(network.paid_count(), 1);
    assert_eq!(network.balance(PAYER), START_MSAT - 21_000);
}

/// A wallet that holds every payment until `open` is set, then pays through the dev network.
struct Gate {
    inner: DevWallet,
    open: AtomicBool,
}

#[async_trait]
impl Payer for Gate {
    async fn pay(&self, bolt11: &str, max_fee_msat: u64) -> Result<Payment, LightningError> {
        while !self.open.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.inner.pay(bolt11, max_fee_msat).await
    }

    async fn balance(&self) -> Result<Balance, LightningError> {
        self.inner.balance().await
    }

    async fn lookup_payment(&self, hash: &PaymentHash) -> Result<PaymentLookup, LightningError> {
        self.inner.lookup_payment(hash).await
    }

    fn network(&self) -> Network {
        Network::Regtest
    }

    fn name(&self) -> &'static str {
        "gate"
    }
}

#[tokio::test]
async fn the_max_time_running_out_while_paying_leaves_the_payment_pending_never_abandoned() {
    let server = Hostile::start(Scenario::Honest, 21).await;
    let network = server.network().clone();
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger_in(&dir);
    let gate = Arc::new(Gate {
        inner: network.wallet(PAYER),
        open: false.into(),
    });
    // Time enough to ask for the price on a loaded machine; the payment then outlasts it.
    let client = client(
        gate.clone(),
        &ledger,
        open_policy(1_000),
        Duration::from_secs(5),
    );

    let error = get(&client, server.url("/paid"))
        .await
        .err()
        .expect("an error");
    let ClientError::PaymentTimedOut {
        payment_hash,
        limit,
    } = &error
    else {
        panic!("expected the max time to run out while paying, got {error}");
    };
    assert_eq!(*limit, Duration::from_secs(5));
    assert!(error.to_string().contains("pending"), "{error}");
    assert_eq!(statuses(&ledger), ["pending"]);

    // The wallet answers after the call returned: the payment is recorded, not lost.
    gate.open.store(true, Ordering::SeqCst);
    // (On this test's runtime, which runs the payment's task: wait without blocking it.)
    let started = std::time::Instant::now();
    while statuses(&ledger) != ["paid"] {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "gave up waiting for the payment to be recorded: {:?}",
            statuses(&ledger)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(network.paid_count(), 1);
    // And the next call presents its token: nothing more is paid.
    let response = get(&client, server.url("/paid")).await.unwrap();
    assert_eq!(response.status, 200);
    let receipt = response.receipt.unwrap();
    assert!(receipt.reused_token);
    assert_eq!(&receipt.payment_hash, payment_hash);
    assert_eq!(network.paid_count(), 1);
    assert_eq!(network.balance(PAYER), START_MSAT - 21_000);
}
