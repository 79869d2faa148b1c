//! A paid request whose answer was lost after the credential left: the client presents the same
//! credential for the same request again and gets the answer the gateway kept (the test kit's
//! keeper, in front of the hostile server or of a server that speaks only MPP or x402), and never
//! pays twice. The connection cut before the answer, a `409` with `x-l402: pending`, a body
//! broken off midway, a timeout left for the ledger to retry; and a gateway that kept nothing,
//! which gets a clear error and no second payment.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::offers::{Kind, Lie, OfferServer};
use crate::support::{self, Hostile, Scenario, get, open_policy};
use plannt_client::lightning::Payer;
use plannt_client::{Client, ClientError, Ledger, Options, Outcome, Request};
use plannt_testkit::keeper::{Fault, Keeper};

const PAYER: &str = "payer";
const START_MSAT: u64 = 1_000_000_000;
const PAID_BODY: &[u8] = b"{\"result\":\"paid\"}";

/// A client on `ledger` that pays up to 1,000 sats a request.
fn client(wallet: Arc<dyn Payer>, ledger: &Ledger, max_time: Duration) -> Client {
    support::client(wallet, ledger, open_policy(1_000), max_time)
}

/// The answers the ledger recorded, newest first.
fn answers(ledger: &Ledger) -> Vec<Option<String>> {
    ledger
        .recent(100)
        .unwrap()
        .into_iter()
        .map(|r| r.answer)
        .collect()
}

/// A hostile server behind a keeper meeting its first paid request with `fault`, a ledger, and
/// a client paying through the server's dev network.
async fn kept(fault: Fault) -> (Hostile, Keeper, tempfile::TempDir, Ledger, Client) {
    let server = Hostile::start(Scenario::Honest, 21).await;
    let keeper = Keeper::start(server.addr, fault).await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
    let client = client(
        Arc::new(server.network().wallet(PAYER)),
        &ledger,
        Duration::from_secs(60),
    );
    (server, keeper, dir, ledger, client)
}

#[tokio::test]
async fn a_connection_cut_before_the_answer_gets_the_kept_answer_and_pays_once() {
    let (server, keeper, _dir, ledger, client) = kept(Fault::Cut).await;

    let mut response = get(&client, keeper.url("/paid")).await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.headers["x-l402"], "replayed");
    assert_eq!(&response.bytes(1024).await.unwrap()[..], PAID_BODY);
    let receipt = response.receipt.unwrap();
    assert!(receipt.recovered, "{receipt:?}");
    assert_eq!(receipt.amount_sats, 21);

    // One payment, one upstream answer, handed back once from what the keeper kept.
    assert_eq!(server.network().paid_count(), 1);
    assert_eq!(server.network().balance(PAYER), START_MSAT - 21_000);
    assert_eq!(server.shared.paid_requests.load(Ordering::SeqCst), 1);
    assert_eq!(keeper.shared.paid_requests.load(Ordering::SeqCst), 1);
    assert_eq!(keeper.shared.replayed.load(Ordering::SeqCst), 1);
    assert_eq!(answers(&ledger), [Some("recovered".to_string())]);
    assert!(ledger.unanswered().unwrap().is_empty());

    // The credential is spent: the next request pays for a new one, answered at once.
    let mut next = get(&client, keeper.url("/paid")).await.unwrap();
    assert_eq!(&next.bytes(1024).await.unwrap()[..], PAID_BODY);
    assert!(!next.receipt.unwrap().recovered);
    assert_eq!(server.network().paid_count(), 2);
    assert_eq!(
        answers(&ledger),
        [Some("answered".to_string()), Some("recovered".to_string())]
    );
}

#[tokio::test]
async fn a_409_pending_is_waited_out_and_the_same_credential_gets_the_answer() {
    let (server, keeper, _dir, ledger, client) = kept(Fault::Pending).await;

    let mut response = get(&client, keeper.url("/paid")).await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(&response.bytes(1024).await.unwrap()[..], PAID_BODY);
    assert!(response.receipt.unwrap().recovered);
    assert_eq!(server.network().paid_count(), 1);
    assert_eq!(server.shared.challenges.load(Ordering::SeqCst), 1);
    assert_eq!(keeper.shared.replayed.load(Ordering::SeqCst), 1);
    assert_eq!(answers(&ledger), [Some("recovered".to_string())]);
}

#[tokio::test]
async fn a_402_to_the_retry_is_a_clear_error_and_nothing_is_paid_again() {
    let (server, keeper, _dir, ledger, client) = kept(Fault::Forget).await;

    let error = get(&client, keeper.url("/paid"))
        .await
        .err()
        .expect("an error");
    let ClientError::AnswerLost {
        payment_hash,
        origin,
    } = &error
    else {
        panic!("expected the answer lost, got {error}");
    };
    assert_eq!(origin, &format!("http://{}", keeper.addr));
    let text = error.to_string();
    assert!(
        text.starts_with("paid; the answer was lost and the server kept none"),
        "{text}"
    );
    assert!(text.contains("Nothing more was paid"), "{text}");
    // Paid once; the retry's 402 offered a new invoice, and it was not paid.
    assert_eq!(server.network().paid_count(), 1);
    assert_eq!(server.shared.challenges.load(Ordering::SeqCst), 2);
    assert_eq!(server.network().balance(PAYER), START_MSAT - 21_000);
    let records = ledger.recent(10).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(&records[0].payment_hash, payment_hash);
    assert_eq!(records[0].answer.as_deref(), Some("lost"));
    assert!(ledger.unanswered().unwrap().is_empty());

    // Asked again, the same request pays for a new answer: the person's choice, not a retry's.
    let mut again = get(&client, keeper.url("/paid")).await.unwrap();
    assert_eq!(&again.bytes(1024).await.unwrap()[..], PAID_BODY);
    assert_eq!(server.network().paid_count(), 2);
}

#[tokio::test]
async fn a_body_broken_off_leaves_the_request_unanswered_and_the_same_request_recovers_it() {
    let (server, keeper, _dir, ledger, client) = kept(Fault::BreakBody).await;

    let mut response = get(&client, keeper.url("/paid")).await.unwrap();
    assert_eq!(response.status, 200);
    let Err(ClientError::Network(e)) = response.bytes(1024).await else {
        panic!("expected the body to break off");
    };
    let hash = e.token_kept.clone().expect("the payment hash is named");
    assert!(e.to_string().contains("nothing more is paid"), "{e}");
    let unanswered = ledger.unanswered().unwrap();
    assert_eq!(unanswered.len(), 1);
    assert_eq!(unanswered[0].payment_hash, hash);
    assert!(unanswered[0].retryable);

    // The same request presents the same credential: the kept answer, nothing paid.
    let mut again = get(&client, keeper.url("/paid")).await.unwrap();
    assert_eq!(&again.bytes(1024).await.unwrap()[..], PAID_BODY);
    let receipt = again.receipt.unwrap();
    assert!(receipt.recovered && receipt.reused_token, "{receipt:?}");
    assert_eq!(receipt.payment_hash, hash);
    assert_eq!(server.network().paid_count(), 1);
    assert_eq!(keeper.shared.replayed.load(Ordering::SeqCst), 1);
    assert_eq!(answers(&ledger), [Some("recovered".to_string())]);
}

#[tokio::test]
async fn a_request_still_unanswered_at_the_max_time_is_retried_from_the_ledger() {
    let server = Hostile::start(Scenario::Honest, 21).await;
    let keeper = Keeper::start(server.addr, Fault::Hold).await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
    let wallet: Arc<dyn Payer> = Arc::new(server.network().wallet(PAYER));
    // Time enough to ask and pay on a loaded machine; the held answer then outlasts it.
    let quick = client(wallet.clone(), &ledger, Duration::from_secs(5));
    let request = Request {
        method: reqwest::Method::POST,
        body: bytes::Bytes::from_static(b"{\"q\":1}"),
        ..Request::get(keeper.url("/paid?x=1"))
    };

    let error = match quick.send(&request, &Options::default()).await {
        Err(e) => e,
        Ok(_) => panic!("expected the max time to run out"),
    };
    let ClientError::Network(e) = &error else {
        panic!("expected a network error, got {error}");
    };
    let hash = e.token_kept.clone().expect("the paid token is kept");
    assert!(keeper.shared.holding.load(Ordering::SeqCst));
    let unanswered = ledger.unanswered().unwrap();
    assert_eq!(unanswered.len(), 1);
    let u = &unanswered[0];
    assert_eq!(
        (u.payment_hash.as_str(), u.method.as_str(), u.path.as_str()),
        (hash.as_str(), "POST", "/paid")
    );
    assert_eq!(u.request.body.as_deref(), Some(&b"{\"q\":1}"[..]));
    assert_eq!(u.request.url, keeper.url("/paid?x=1").as_str());

    // The ledger's retry sends the recorded request with the same credential.
    keeper.shared.release();
    let patient = client(wallet, &ledger, Duration::from_secs(60));
    let payment_hash = plannt_client::l402::PaymentHash::from_hex(&hash).unwrap();
    let mut response = patient
        .retry_unanswered(&payment_hash, &Options::default())
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(&response.bytes(1024).await.unwrap()[..], PAID_BODY);
    assert!(response.receipt.unwrap().recovered);
    assert_eq!(server.network().paid_count(), 1);
    assert_eq!(keeper.shared.replayed.load(Ordering::SeqCst), 1);
    assert_eq!(answers(&ledger), [Some("recovered".to_string())]);
    // Nothing is left to retry.
    let again = patient
        .retry_unanswered(&payment_hash, &Options::default())
        .await;
    assert!(
        matches!(again, Err(ClientError::NotRetryable { .. })),
        "{:?}",
        again.err()
    );
}

#[tokio::test]
async fn mpp_and_x402_answers_lost_are_recovered_with_the_same_credential() {
    for kind in [Kind::Mpp, Kind::X402] {
        let server = OfferServer::start(kind, Lie::None, 21).await;
        let keeper = Keeper::start(server.addr, Fault::Cut).await;
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
        let client = client(
            Arc::new(server.network().wallet(PAYER)),
            &ledger,
            Duration::from_secs(60),
        );

        let mut response = get(&client, keeper.url("/dialects")).await.unwrap();
        assert_eq!(response.status, 200, "{kind:?}");
        let body = response.bytes(1024).await.unwrap();
        assert!(body.starts_with(b"paid over"), "{kind:?}");
        let receipt = response.receipt.unwrap();
        assert!(receipt.recovered, "{kind:?}");
        assert_eq!(server.network().paid_count(), 1, "{kind:?}");
        assert_eq!(server.shared.paid.load(Ordering::SeqCst), 1, "{kind:?}");
        assert_eq!(keeper.shared.replayed.load(Ordering::SeqCst), 1, "{kind:?}");
        assert_eq!(answers(&ledger), [Some("recovered".to_string())]);
    }
}

#[tokio::test]
async fn a_body_over_the_recorded_bound_is_not_resent_from_the_ledger_but_the_same_request_recovers_it()
 {
    let server = Hostile::start(Scenario::Honest, 21).await;
    let keeper = Keeper::start(server.addr, Fault::Hold).await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
    let wallet: Arc<dyn Payer> = Arc::new(server.network().wallet(PAYER));
    let quick = client(wallet.clone(), &ledger, Duration::from_secs(5));
    let big = vec![b'x'; plannt_client::MAX_RECORDED_BODY + 1];
    let request = Request {
        method: reqwest::Method::POST,
        body: bytes::Bytes::from(big.clone()),
        ..Request::get(keeper.url("/echo"))
    };
    assert!(quick.send(&request, &Options::default()).await.is_err());
    let unanswered = ledger.unanswered().unwrap();
    assert_eq!(unanswered.len(), 1);
    assert!(!unanswered[0].retryable);
    assert_eq!(unanswered[0].request.body, None);
    assert_eq!(unanswered[0].request.body_len, big.len() as u64);
    keeper.shared.release();

    // The ledger holds only its digest: it cannot send it again, and says why.
    let patient = client(wallet, &ledger, Duration::from_secs(60));
    let hash = plannt_client::l402::PaymentHash::from_hex(&unanswered[0].payment_hash).unwrap();
    let error = patient
        .retry_unanswered(&hash, &Options::default())
        .await
        .err()
        .expect("not retryable");
    assert!(matches!(error, ClientError::NotRetryable { .. }), "{error}");
    assert!(error.to_string().contains("over the 64 KiB"), "{error}");
    assert!(error.to_string().contains("nothing was paid"), "{error}");

    // The caller sends the same request again: the same credential, the kept answer.
    let mut response = match patient.send(&request, &Options::default()).await.unwrap() {
        Outcome::Response(r) => r,
        Outcome::DryRun(_) => panic!("not a dry run"),
    };
    assert_eq!(response.bytes(1 << 20).await.unwrap().len(), big.len());
    assert!(response.receipt.unwrap().recovered);
    assert_eq!(server.network().paid_count(), 1);
    assert_eq!(keeper.shared.replayed.load(Ordering::SeqCst), 1);
}
