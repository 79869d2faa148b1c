//! Payments a crash left `pending` in the ledger: each is looked up, then finished (its token
//! used by the next request) or failed (its reservation released), and never paid twice.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::support::{Hostile, Scenario, open_policy};
use async_trait::async_trait;
use plannt_client::l402::{Challenge, PaymentHash};
use plannt_client::lightning::dev::DevWallet;
use plannt_client::lightning::invoice::unix_now;
use plannt_client::lightning::{
    Balance, LightningError, Network, Payer, Payment, PaymentLookup, decode_invoice,
};
use plannt_client::{
    Budget, Client, ClientError, Ledger, Options, Outcome, Reservation, Reserved, Response, Window,
};

const PAYER: &str = "payer";
const START_MSAT: u64 = 1_000_000_000;

/// A challenge the server sent, as a client would read it.
struct Challenged {
    bolt11: String,
    macaroon: String,
    hash: PaymentHash,
    amount_msat: u64,
}

async fn challenge_of(server: &Hostile) -> Challenged {
    plannt_client::lightning::install_tls_provider();
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(server.url("/paid"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 402);
    let header = response.headers()["www-authenticate"].to_str().unwrap();
    let challenge = Challenge::parse([header]).unwrap();
    let invoice = decode_invoice(&challenge.invoice).unwrap();
    Challenged {
        bolt11: challenge.invoice.clone(),
        macaroon: challenge.macaroon.to_base64(),
        hash: invoice.payment_hash,
        amount_msat: invoice.amount_msat.unwrap(),
    }
}

/// Records a challenge as pending, as `Client::send` does just before it pays.
fn reserve(ledger: &Ledger, server: &Hostile, c: &Challenged, budget: &Budget) {
    let reservation = Reservation {
        dialect: plannt_client::Dialect::L402,
        payment_hash: &c.hash,
        origin: &format!("http://{}", server.addr),
        path: "/paid",
        bolt11: &c.bolt11,
        macaroon: &c.macaroon,
        amount_msat: c.amount_msat,
        max_fee_msat: 0,
    };
    assert_eq!(
        ledger.reserve(&reservation, budget, unix_now()).unwrap(),
        Ok(Reserved::New)
    );
    assert_eq!(status_of(ledger, &c.hash), "pending");
}

fn status_of(ledger: &Ledger, hash: &PaymentHash) -> String {
    ledger
        .recent(100)
        .unwrap()
        .into_iter()
        .find(|r| r.payment_hash == hex::encode(hash))
        .map(|r| r.status)
        .unwrap_or_else(|| "(absent)".into())
}

async fn get(client: &Client, server: &Hostile) -> Result<Response, ClientError> {
    match client
        .send(
            &plannt_client::Request::get(server.url("/paid")),
            &Options::default(),
        )
        .await?
    {
        Outcome::Response(r) => Ok(r),
        Outcome::DryRun(_) => panic!("not a dry run"),
    }
}

fn ledger_in(dir: &tempfile::TempDir) -> Ledger {
    Ledger::open(&dir.path().join("ledger.sqlite")).unwrap()
}

#[tokio::test]
async fn a_pending_payment_that_went_through_is_finished_and_its_token_presented() {
    let server = Hostile::start(Scenario::Honest, 21).await;
    let network = server.network().clone();
    let dir = tempfile::tempdir().unwrap();
    let c = challenge_of(&server).await;
    // A process reserved and paid; it died before it could record the payment.
    let crashed = ledger_in(&dir);
    reserve(&crashed, &server, &c, &open_policy(1_000).budget);
    network.pay(PAYER, &c.bolt11).unwrap();
    drop(crashed);
    let ledger = ledger_in(&dir);
    assert_eq!(status_of(&ledger, &c.hash), "pending");

    let client = Client::new(
        Arc::new(network.wallet(PAYER)),
        ledger.clone(),
        open_policy(1_000),
    );
    assert_eq!(client.recover().await.unwrap(), 1);
    assert_eq!(status_of(&ledger, &c.hash), "paid");
    let record = &ledger.recent(1).unwrap()[0];
    assert_eq!(
        plannt_client::l402::hex32(record.preimage.as_deref().unwrap()).map(sha256),
        Some(c.hash)
    );
    assert_eq!(client.recover().await.unwrap(), 0);

    // The next request presents that token and pays nothing.
    let mut response = get(&client, &server).await.unwrap();
    assert_eq!(response.status, 200);
    let receipt = response.receipt.clone().unwrap();
    assert!(receipt.reused_token);
    assert_eq!(receipt.amount_sats, 0);
    assert_eq!(receipt.payment_hash, hex::encode(c.hash));
    assert_eq!(
        &response.bytes(1024).await.unwrap()[..],
        b"{\"result\":\"paid\"}"
    );
    assert_eq!(network.paid_count(), 1);
    assert_eq!(network.balance(PAYER), START_MSAT - 21_000);
    // One bare request: the one that fetched the challenge above.
    assert_eq!(server.shared.bare_requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_pending_payment_never_made_is_failed_and_its_reservation_released() {
    let server = Hostile::start(Scenario::Honest, 21).await;
    let network = server.network().clone();
    let dir = tempfile::tempdir().unwrap();
    // A daily budget of exactly one payment.
    let mut policy = open_policy(1_000);
    policy.budget.daily_sats = Some(21);
    let c = challenge_of(&server).await;
    // A process reserved, then died before paying.
    let crashed = ledger_in(&dir);
    reserve(&crashed, &server, &c, &policy.budget);
    drop(crashed);
    let ledger = ledger_in(&dir);
    let day = |ledger: &Ledger| {
        ledger
            .usage(&policy.budget, unix_now())
            .unwrap()
            .into_iter()
            .find(|w| w.window == Window::Day)
            .unwrap()
    };
    assert_eq!(day(&ledger).left_sats, Some(0));

    let client = Client::new(
        Arc::new(network.wallet(PAYER)),
        ledger.clone(),
        policy.clone(),
    );
    assert_eq!(client.recover().await.unwrap(), 0);
    assert_eq!(status_of(&ledger, &c.hash), "failed");
    assert_eq!(day(&ledger).left_sats, Some(21));
    assert_eq!(network.balance(PAYER), START_MSAT);
    assert_eq!(network.paid_count(), 0);

    // The released budget pays the next request, once.
    let response = get(&client, &server).await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.receipt.unwrap().amount_sats, 21);
    assert_eq!(network.balance(PAYER), START_MSAT - 21_000);
    assert_eq!(day(&ledger).left_sats, Some(0));
    // The failed one is still failed, never paid.
    assert_eq!(status_of(&ledger, &c.hash), "failed");
    assert_eq!(network.lookup(PAYER, &c.hash), PaymentLookup::NotFound);
}

#[tokio::test]
async fn a_challenge_already_paid_while_pending_is_looked_up_not_paid_again() {
    // The server sends the same challenge every time, as a retried request would see it.
    let server = Hostile::start(Scenario::Fixed, 21).await;
    let network = server.network().clone();
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger_in(&dir);
    let c = challenge_of(&server).await;
    reserve(&ledger, &server, &c, &open_policy(1_000).budget);
    network.pay(PAYER, &c.bolt11).unwrap();

    let client = Client::new(
        Arc::new(network.wallet(PAYER)),
        ledger.clone(),
        open_policy(1_000),
    );
    let response = get(&client, &server).await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.receipt.unwrap().payment_hash, hex::encode(c.hash));
    assert_eq!(status_of(&ledger, &c.hash), "paid");
    assert_eq!(network.paid_count(), 1);
    assert_eq!(network.balance(PAYER), START_MSAT - 21_000);
}

#[tokio::test]
async fn a_challenge_pending_but_never_paid_is_paid_once() {
    let server = Hostile::start(Scenario::Fixed, 21).await;
    let network = server.network().clone();
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger_in(&dir);
    let c = challenge_of(&server).await;
    reserve(&ledger, &server, &c, &open_policy(1_000).budget);

    let client = Client::new(
        Arc::new(network.wallet(PAYER)),
        ledger.clone(),
        open_policy(1_000),
    );
    let response = get(&client, &server).await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(status_of(&ledger, &c.hash), "paid");
    assert_eq!(network.paid_count(), 1);
    assert_eq!(network.balance(PAYER), START_MSAT - 21_000);
}

#[tokio::test]
async fn a_payment_another_process_is_making_is_left_to_it() {
    let server = Hostile::start(Scenario::Honest, 21).await;
    let network = server.network().clone();
    let dir = tempfile::tempdir().unwrap();
    let c = challenge_of(&server).await;
    // Another process has reserved this payment and is paying it now.
    let paying = ledger_in(&dir);
    reserve(&paying, &server, &c, &open_policy(1_000).budget);

    let ledger = ledger_in(&dir);
    let client = Client::new(
        Arc::new(network.wallet(PAYER)),
        ledger.clone(),
        open_policy(1_000),
    );
    // The wallet has no record of it yet, which must not fail it under the other's feet.
    assert_eq!(client.recover().await.unwrap(), 0);
    assert_eq!(status_of(&ledger, &c.hash), "pending");

    // The other process pays and records it; its token is its own to present.
    let payment = network.pay(PAYER, &c.bolt11).unwrap();
    paying
        .mark_paid(&c.hash, &payment.preimage, 0, unix_now())
        .unwrap();
    let origin = format!("http://{}", server.addr);
    assert_eq!(ledger.token_for(&origin, "/paid").unwrap(), None);
    assert!(paying.token_for(&origin, "/paid").unwrap().is_some());

    // It dies before presenting the token: the token is this process's to present, and no
    // third process may present it as well.
    drop(paying);
    let token = ledger
        .token_for(&origin, "/paid")
        .unwrap()
        .expect("a token");
    assert_eq!(token.payment_hash, c.hash);
    assert!(!token.used);
    assert_eq!(ledger_in(&dir).token_for(&origin, "/paid").unwrap(), None);
    let response = get(&client, &server).await.unwrap();
    assert_eq!(response.status, 200);
    assert!(response.receipt.unwrap().reused_token);
    assert_eq!(network.paid_count(), 1);
    assert_eq!(network.balance(PAYER), START_MSAT - 21_000);
}

#[tokio::test]
async fn a_pending_payment_whose_owner_died_is_failed_by_the_next_process() {
    let server = Hostile::start(Scenario::Honest, 21).await;
    let network = server.network().clone();
    let dir = tempfile::tempdir().unwrap();
    let c = challenge_of(&server).await;
    let paying = ledger_in(&dir);
    reserve(&paying, &server, &c, &open_policy(1_000).budget);
    let ledger = ledger_in(&dir);
    let client = Client::new(
        Arc::new(network.wallet(PAYER)),
        ledger.clone(),
        open_policy(1_000),
    );
    assert_eq!(client.recover().await.unwrap(), 0);
    assert_eq!(status_of(&ledger, &c.hash), "pending");
    drop(paying);
    assert_eq!(client.recover().await.unwrap(), 0);
    assert_eq!(status_of(&ledger, &c.hash), "failed");
    assert_eq!(network.balance(PAYER), START_MSAT);
}

/// A wallet whose payment goes through but whose answer is lost (a timeout), and which cannot
/// tell what happened until `answers` is set.
struct LostAnswer {
    inner: DevWallet,
    answers: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl Payer for LostAnswer {
    async fn pay(&self, bolt11: &str, max_fee_msat: u64) -> Result<Payment, LightningError> {
        self.inner.pay(bolt11, max_fee_msat).await?;
        Err(LightningError::Timeout)
    }

    async fn balance(&self) -> Result<Balance, LightningError> {
        self.inner.balance().await
    }

    async fn lookup_payment(&self, hash: &PaymentHash) -> Result<PaymentLookup, LightningError> {
        if self.answers.load(Ordering::SeqCst) {
            self.inner.lookup_payment(hash).await
        } else {
            Ok(PaymentLookup::Pending)
        }
    }

    fn network(&self) -> Network {
        Network::Regtest
    }

    fn name(&self) -> &'static str {
        "lost-answer"
    }
}

#[tokio::test]
async fn a_payment_whose_outcome_is_unknown_stays_pending_and_is_finished_later() {
    let server = Hostile::start(Scenario::Honest, 21).await;
    let network = server.network().clone();
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger_in(&dir);
    let wallet = Arc::new(LostAnswer {
        inner: network.wallet(PAYER),
        answers: false.into(),
    });
    let client = Client::new(wallet.clone(), ledger.clone(), open_policy(1_000));

    let error = get(&client, &server).await.err().expect("an error");
    let ClientError::PaymentPending(hash) = &error else {
        panic!("expected a pending payment, got {error}");
    };
    let hash = PaymentHash::from_hex(hash).unwrap();
    assert_eq!(status_of(&ledger, &hash), "pending");
    assert_eq!(network.paid_count(), 1);
    // Still unknown: recovery leaves it pending.
    assert_eq!(client.recover().await.unwrap(), 0);
    assert_eq!(status_of(&ledger, &hash), "pending");

    // The wallet answers again: recovery finishes it, and its token buys the next request.
    wallet.answers.store(true, Ordering::SeqCst);
    assert_eq!(client.recover().await.unwrap(), 1);
    assert_eq!(status_of(&ledger, &hash), "paid");
    let honest = Client::new(
        Arc::new(network.wallet(PAYER)),
        ledger.clone(),
        open_policy(1_000),
    );
    let response = get(&honest, &server).await.unwrap();
    assert_eq!(response.status, 200);
    let receipt = response.receipt.unwrap();
    assert!(receipt.reused_token);
    assert_eq!(receipt.payment_hash, hex::encode(hash));
    assert_eq!(network.paid_count(), 1);
    assert_eq!(network.balance(PAYER), START_MSAT - 21_000);
}

fn sha256(bytes: [u8; 32]) -> PaymentHash {
    use sha2::Digest;
    PaymentHash(sha2::Sha256::digest(bytes).into())
}
