//! The three dialects from the paying side: the client picks the first dialect of its
//! preference order that the 402 offers, pays it under the same checks, budgets and ledger, and
//! never pays a dialect the policy (or the call) leaves out. `plannt check --pay`'s probe presents
//! the credential paid once more, verbatim, in every dialect.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::offers::{Kind, Lie, OfferServer};
use crate::support::{Hostile, Scenario, open_policy};
use plannt_client::l402::mpp::PaymentChallenge;
use plannt_client::lightning::decode_invoice;
use plannt_client::lightning::dev::DevNetwork;
use plannt_client::lightning::invoice::unix_now;
use plannt_client::probe::{self, Verdict};
use plannt_client::{
    Client, ClientError, Dialect, Ledger, Options, Outcome, Policy, Refusal, Request, Reservation,
    Reserved, Response, Window,
};

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

/// A client paying from the payer account of `network`, under `policy`.
fn client_on(network: &DevNetwork, dir: &tempfile::TempDir, policy: Policy) -> Client {
    Client::new(
        Arc::new(network.wallet(PAYER)),
        Ledger::open(&dir.path().join("ledger.sqlite")).unwrap(),
        policy,
    )
}

async fn send(
    client: &Client,
    url: url::Url,
    dialects: Option<&[Dialect]>,
) -> Result<Response, ClientError> {
    let options = Options {
        dialects,
        ..Options::default()
    };
    match client.send(&Request::get(url), &options).await? {
        Outcome::Response(r) => Ok(r),
        Outcome::DryRun(_) => panic!("not a dry run"),
    }
}

fn refusal(result: Result<Response, ClientError>) -> Refusal {
    match result {
        Err(ClientError::Refused(refusal)) => refusal,
        Err(other) => panic!("expected a refusal, got the error {other}"),
        Ok(r) => panic!("expected a refusal, got HTTP {}", r.status),
    }
}

/// A server of `kind` telling `lie`, a client under a cap of `cap_sats`, and what the client's
/// one request to it was refused as (the temporary folder holds the client's ledger).
async fn refused_by(
    kind: Kind,
    lie: Lie,
    cap_sats: u64,
) -> (OfferServer, Client, tempfile::TempDir, Refusal) {
    let server = OfferServer::start(kind, lie, 21).await;
    let dir = tempfile::tempdir().unwrap();
    let client = client_on(server.network(), &dir, open_policy(cap_sats));
    let refused = refusal(send(&client, server.url("/dialects"), None).await);
    (server, client, dir, refused)
}

/// Nothing moved on the dev network, and no credential reached the server.
fn assert_unpaid(server: &OfferServer) {
    assert_eq!(
        server.network().balance(PAYER),
        START_MSAT,
        "the payer paid"
    );
    assert_eq!(server.network().paid_count(), 0, "an invoice was paid");
    assert_eq!(server.shared.presented.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_server_offering_only_mpp_is_paid_in_mpp() {
    let server = OfferServer::start(Kind::Mpp, Lie::None, 21).await;
    let dir = tempfile::tempdir().unwrap();
    let client = client_on(server.network(), &dir, open_policy(1_000));
    let mut response = send(&client, server.url("/dialects"), None).await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(
        &response.bytes(1 << 16).await.unwrap()[..],
        b"paid over mpp"
    );
    assert!(response.headers.contains_key("payment-receipt"));
    let receipt = response.receipt.unwrap();
    assert_eq!(receipt.dialect, Dialect::Mpp);
    assert_eq!(receipt.amount_sats, 21);
    assert!(!receipt.reused_token);
    assert_eq!(server.network().balance(PAYER), START_MSAT - 21_000);
    assert_eq!(server.shared.paid.load(Ordering::SeqCst), 1);
    let record = &client.ledger().recent(1).unwrap()[0];
    assert_eq!(
        (record.dialect.as_str(), record.status.as_str()),
        ("mpp", "paid")
    );
    // The charge bought one answer: the token is gone, and the next request pays again.
    assert!(
        client
            .ledger()
            .token_for(&origin(&server), "/dialects")
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_server_offering_only_x402_is_paid_in_x402() {
    let server = OfferServer::start(Kind::X402, Lie::None, 21).await;
    let dir = tempfile::tempdir().unwrap();
    let client = client_on(server.network(), &dir, open_policy(1_000));
    let mut response = send(&client, server.url("/dialects"), None).await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(
        &response.bytes(1 << 16).await.unwrap()[..],
        b"paid over x402"
    );
    assert!(response.headers.contains_key("payment-response"));
    let receipt = response.receipt.unwrap();
    assert_eq!(receipt.dialect, Dialect::X402);
    assert_eq!(server.network().balance(PAYER), START_MSAT - 21_000);
    assert_eq!(server.shared.paid.load(Ordering::SeqCst), 1);
    assert_eq!(client.ledger().recent(1).unwrap()[0].dialect, "x402");
}

#[tokio::test]
async fn the_preference_order_picks_the_dialect_and_a_call_narrows_it() {
    let server = OfferServer::start(Kind::Both, Lie::None, 21).await;
    let dir = tempfile::tempdir().unwrap();
    // The default order: L402 (not offered), then MPP.
    let client = client_on(server.network(), &dir, open_policy(1_000));
    let receipt = send(&client, server.url("/a"), None)
        .await
        .unwrap()
        .receipt
        .unwrap();
    assert_eq!(receipt.dialect, Dialect::Mpp);
    // A call may reorder within what the policy allows.
    let receipt = send(
        &client,
        server.url("/b"),
        Some(&[Dialect::X402, Dialect::Mpp]),
    )
    .await
    .unwrap()
    .receipt
    .unwrap();
    assert_eq!(receipt.dialect, Dialect::X402);
    // A policy without MPP never pays it, whatever the call asks.
    let dir = tempfile::tempdir().unwrap();
    let mut policy = open_policy(1_000);
    policy.dialects = vec![Dialect::X402];
    let client = client_on(server.network(), &dir, policy);
    let receipt = send(&client, server.url("/c"), None)
        .await
        .unwrap()
        .receipt
        .unwrap();
    assert_eq!(receipt.dialect, Dialect::X402);
    let error = send(&client, server.url("/d"), Some(&[Dialect::Mpp]))
        .await
        .err()
        .expect("MPP is not allowed");
    assert!(
        matches!(&error, ClientError::NoDialect { offered, allowed }
            if offered == &[Dialect::Mpp, Dialect::X402] && allowed.is_empty()),
        "{error}"
    );
    assert_eq!(server.shared.paid.load(Ordering::SeqCst), 3);
    assert_eq!(server.network().balance(PAYER), START_MSAT - 3 * 21_000);
}

#[tokio::test]
async fn an_mpp_challenge_that_disagrees_with_its_invoice_is_never_paid() {
    for (lie, check) in [
        (Lie::Hash, "hash_mismatch"),
        (Lie::Amount, "amount_mismatch"),
        (Lie::Network, "wrong_network"),
        (Lie::ExpiredChallenge, "expired"),
        (Lie::UnreadableExpiry, "unsupported_offer"),
    ] {
        let (server, client, _dir, refused) = refused_by(Kind::Mpp, lie, 1_000).await;
        assert_eq!(refused.check(), check, "{lie:?}: {refused}");
        assert!(refused.to_string().contains("mpp offer"), "{refused}");
        assert_unpaid(&server);
        assert!(client.ledger().recent(10).unwrap().is_empty(), "{lie:?}");
        assert_eq!(client.ledger().refusals(10).unwrap()[0].check, check);
    }
}

#[tokio::test]
async fn an_x402_offer_that_disagrees_with_its_invoice_is_never_paid() {
    for (lie, check) in [
        (Lie::Amount, "amount_mismatch"),
        (Lie::Network, "wrong_network"),
        (Lie::PayTo, "payee_mismatch"),
        (Lie::Hash, "hash_mismatch"),
    ] {
        let (server, _client, _dir, refused) = refused_by(Kind::X402, lie, 1_000).await;
        assert_eq!(refused.check(), check, "{lie:?}: {refused}");
        assert!(refused.to_string().contains("x402 offer"), "{refused}");
        assert_unpaid(&server);
    }
}

#[tokio::test]
async fn an_expired_invoice_is_refused_in_every_dialect() {
    for kind in [Kind::Mpp, Kind::X402] {
        let (server, _client, _dir, refused) = refused_by(kind, Lie::ExpiredInvoice, 1_000).await;
        assert_eq!(refused.check(), "expired", "{kind:?}: {refused}");
        assert_unpaid(&server);
    }
}

#[tokio::test]
async fn offers_above_the_cap_are_refused_in_every_dialect() {
    for kind in [Kind::Mpp, Kind::X402] {
        let (server, _client, _dir, refused) = refused_by(kind, Lie::None, 20).await;
        assert_eq!(refused.check(), "over_cap", "{kind:?}");
        assert_unpaid(&server);
    }
}

#[tokio::test]
async fn a_paid_retry_answered_with_402_again_is_not_paid_twice() {
    for kind in [Kind::Mpp, Kind::X402] {
        let server = OfferServer::start(kind, Lie::RefusePaid, 21).await;
        let dir = tempfile::tempdir().unwrap();
        let client = client_on(server.network(), &dir, open_policy(1_000));
        let response = send(&client, server.url("/dialects"), None).await.unwrap();
        assert_eq!(response.status, 402, "{kind:?}");
        assert_eq!(server.network().paid_count(), 1, "{kind:?}: paid again");
        assert_eq!(server.network().balance(PAYER), START_MSAT - 21_000);
        assert_eq!(
            server.shared.presented.load(Ordering::SeqCst),
            1,
            "{kind:?}"
        );
        // The refused token is forgotten: nothing is presented again without a new payment.
        assert!(
            client
                .ledger()
                .token_for(&origin(&server), "/dialects")
                .unwrap()
                .is_none()
        );
    }
}

#[tokio::test]
async fn an_x402_payment_not_settled_yet_is_presented_again_never_paid_again() {
    let server = OfferServer::start(Kind::X402, Lie::NotSettledYet(2), 21).await;
    let dir = tempfile::tempdir().unwrap();
    let client = client_on(server.network(), &dir, open_policy(1_000));
    let response = send(&client, server.url("/dialects"), None).await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(server.shared.presented.load(Ordering::SeqCst), 3);
    assert_eq!(server.shared.offers.load(Ordering::SeqCst), 1);
    assert_eq!(server.network().paid_count(), 1);
    assert_eq!(server.network().balance(PAYER), START_MSAT - 21_000);
}

#[tokio::test]
async fn an_x402_payment_still_unsettled_at_the_max_time_is_kept_for_the_next_run() {
    let server = OfferServer::start(Kind::X402, Lie::NotSettledYet(u64::MAX), 21).await;
    let dir = tempfile::tempdir().unwrap();
    let client = Client::builder(
        Arc::new(server.network().wallet(PAYER)),
        Ledger::open(&dir.path().join("ledger.sqlite")).unwrap(),
        open_policy(1_000),
    )
    .timeouts(plannt_client::Timeouts {
        connect: std::time::Duration::from_secs(5),
        max_time: std::time::Duration::from_millis(2_500),
    })
    .build();
    let response = send(&client, server.url("/dialects"), None).await.unwrap();
    assert_eq!(response.status, 402);
    assert_eq!(server.network().paid_count(), 1);
    // Kept: the next request presents it, and pays nothing more.
    assert!(
        client
            .ledger()
            .token_for(&origin(&server), "/dialects")
            .unwrap()
            .is_some()
    );
    server.set_lie(Lie::None);
    let response = send(&client, server.url("/dialects"), None).await.unwrap();
    assert_eq!(response.status, 200);
    assert!(response.receipt.unwrap().reused_token);
    assert_eq!(server.network().paid_count(), 1);
    assert_eq!(server.shared.offers.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn budgets_count_every_dialect_together() {
    let network = DevNetwork::ephemeral(1_000_000);
    let l402 = Hostile::start_on(network.clone(), Scenario::Honest, 21).await;
    let mpp = OfferServer::start_on(network.clone(), Kind::Mpp, Lie::None, 21).await;
    let x402 = OfferServer::start_on(network.clone(), Kind::X402, Lie::None, 21).await;
    let dir = tempfile::tempdir().unwrap();
    let mut policy = open_policy(1_000);
    policy.budget.daily_sats = Some(50);
    let client = client_on(&network, &dir, policy);
    send(&client, mpp.url("/dialects"), None).await.unwrap();
    send(&client, x402.url("/dialects"), None).await.unwrap();
    // 42 of 50 sats spent across two dialects: a third payment of 21, in any dialect, is over.
    for url in [l402.url("/paid"), mpp.url("/again"), x402.url("/again")] {
        match send(&client, url.clone(), None).await {
            Err(ClientError::OverBudget(over)) => {
                assert_eq!(over.window, Window::Day);
                assert_eq!(over.left_sats, 8);
            }
            Err(other) => panic!("{url}: expected over budget, got {other}"),
            Ok(r) => panic!("{url}: expected over budget, got HTTP {}", r.status),
        }
    }
    assert_eq!(network.paid_count(), 2);
    assert_eq!(network.balance(PAYER), START_MSAT - 42_000);
}

#[tokio::test]
async fn an_mpp_payment_a_crash_left_pending_is_finished_and_presented_once() {
    let server = OfferServer::start(Kind::Mpp, Lie::None, 21).await;
    let dir = tempfile::tempdir().unwrap();
    // What a client reads from the 402, as `Client::send` does before it reserves and pays.
    plannt_client::lightning::install_tls_provider();
    let bare = reqwest::Client::builder().no_proxy().build().unwrap();
    let answer = bare.get(server.url("/dialects")).send().await.unwrap();
    let header = answer.headers()["www-authenticate"].to_str().unwrap();
    let challenge = PaymentChallenge::parse_list(header).unwrap().remove(0);
    let bolt11 = challenge.charge_request().unwrap().method_details.invoice;
    let invoice = decode_invoice(&bolt11).unwrap();
    let echo = serde_json::to_string(&challenge).unwrap();
    {
        // A process reserved and paid, then died before recording the payment.
        let crashed = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
        let reserved = crashed
            .reserve(
                &Reservation {
                    dialect: Dialect::Mpp,
                    payment_hash: &invoice.payment_hash,
                    origin: &origin(&server),
                    path: "/dialects",
                    bolt11: &bolt11,
                    macaroon: &echo,
                    amount_msat: 21_000,
                    max_fee_msat: 0,
                },
                &open_policy(1_000).budget,
                unix_now(),
            )
            .unwrap();
        assert_eq!(reserved, Ok(Reserved::New));
        server.network().pay(PAYER, &bolt11).unwrap();
    }
    let client = client_on(server.network(), &dir, open_policy(1_000));
    assert_eq!(client.recover().await.unwrap(), 1);
    let record = &client.ledger().recent(1).unwrap()[0];
    assert_eq!(
        (record.dialect.as_str(), record.status.as_str()),
        ("mpp", "paid")
    );
    // The next request presents the MPP credential it paid for; nothing more is paid.
    let response = send(&client, server.url("/dialects"), None).await.unwrap();
    assert_eq!(response.status, 200);
    let receipt = response.receipt.unwrap();
    assert_eq!(receipt.dialect, Dialect::Mpp);
    assert!(receipt.reused_token);
    assert_eq!(server.network().paid_count(), 1);
    assert_eq!(server.network().balance(PAYER), START_MSAT - 21_000);
    assert_eq!(server.shared.paid.load(Ordering::SeqCst), 1);
    assert_eq!(server.shared.offers.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_probe_replays_mpp_and_x402_credentials_verbatim_and_one_served_twice_is_reusable() {
    for (kind, dialect) in [(Kind::Mpp, Dialect::Mpp), (Kind::X402, Dialect::X402)] {
        for (lie, replay, status) in [(Lie::Reusable, "served", 200), (Lie::None, "refused", 402)] {
            let server = OfferServer::start(kind, lie, 21).await;
            let dir = tempfile::tempdir().unwrap();
            let client = client_on(server.network(), &dir, open_policy(1_000));
            let request = Request::get(server.url("/dialects"));
            let mut report = probe::probe(&client, &request, &[dialect]).await.unwrap();
            probe::pay(&client, &request, &mut report, Some(dialect), None)
                .await
                .unwrap();
            let paid = report.paid.clone().unwrap();
            assert_eq!(paid.dialect, dialect, "{report:#?}");
            assert_eq!(paid.status, 200, "{report:#?}");
            assert_eq!(
                (paid.replay, paid.replay_status),
                (Some(replay), Some(status)),
                "{kind:?} {lie:?}: {report:#?}"
            );
            let replays: Vec<_> = report
                .findings
                .iter()
                .filter(|f| f.check == "replay")
                .collect();
            assert_eq!(replays.len(), 1, "{report:#?}");
            assert_eq!(replays[0].dialect, Some(dialect));
            assert_eq!(replays[0].result, Verdict::Pass, "{report:#?}");
            // Paid once; the credential came twice, the second time byte for byte the first.
            assert_eq!(server.network().paid_count(), 1, "{kind:?} {lie:?}");
            let credentials = server.shared.credentials.lock().unwrap().clone();
            assert_eq!(credentials.len(), 2, "{kind:?} {lie:?}");
            assert_eq!(credentials[0], credentials[1], "{kind:?} {lie:?}");
            let served = if lie == Lie::Reusable { 2 } else { 1 };
            assert_eq!(server.shared.paid.load(Ordering::SeqCst), served);
            // The credential is a secret: in neither the report nor its Debug form.
            let json = serde_json::to_string(&report).unwrap();
            let debug = format!("{report:?}");
            for text in [json, debug] {
                assert!(!text.contains(&credentials[0]), "{kind:?}: {text}");
            }
        }
    }
}

fn origin(server: &OfferServer) -> String {
    format!("http://{}", server.addr)
}
