//! One invoice, three challenges: a paid route's 402 offers the same invoice as L402, MPP and
//! x402, and whichever dialect presents the payment, it buys one answer. MPP credentials are
//! verified statelessly and answered with a `Payment-Receipt`; x402 payloads are checked to be
//! ours, then the backend is asked whether the invoice settled, and answered with a
//! `PAYMENT-RESPONSE`. The spent set is shared: one payment through two dialects is refused the
//! second time, and a race between them gives exactly one answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::Router;
use axum::http::StatusCode as AxumStatus;
use axum::response::IntoResponse;
use axum::routing::any;
use plannt_gateway::l402::mpp::{PaymentChallenge, PaymentCredential, Receipt, problem_type};
use plannt_gateway::l402::x402::{PaymentPayload, PaymentRequired, SettlementResponse};
use plannt_gateway::l402::{Dialect, Preimage};
use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{
    Answer, Challenge, RedisServer, TestGateway, authorization, config, serve_upstream, start,
    upstream_route,
};

/// Every challenge of one 402, read as a client reads them.
struct Offers {
    /// The scheme of each `WWW-Authenticate` value, in order (`L402`, `Payment`).
    schemes: Vec<String>,
    /// The L402 challenge, checked against the JSON body (absent from a problem body).
    l402: Option<Challenge>,
    mpp: Option<PaymentChallenge>,
    x402: Option<PaymentRequired>,
    answer: Answer,
}

impl Offers {
    fn of(answer: Answer) -> Offers {
        assert_eq!(answer.status, StatusCode::PAYMENT_REQUIRED, "{answer:?}");
        let values: Vec<&str> = answer
            .headers
            .get_all("www-authenticate")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        let schemes: Vec<String> = values
            .iter()
            .map(|v| v.split(' ').next().unwrap_or_default().to_string())
            .collect();
        let has_l402 = schemes.iter().any(|s| s == "L402");
        let l402 =
            (has_l402 && answer.json.get("macaroon").is_some()).then(|| Challenge::of(&answer));
        let mpp = PaymentChallenge::parse_all(values.iter().copied())
            .ok()
            .map(|mut all| {
                assert_eq!(all.len(), 1, "one MPP challenge");
                all.remove(0)
            });
        let x402 = answer
            .header("payment-required")
            .map(|v| PaymentRequired::decode(v).unwrap());
        Offers {
            schemes,
            l402,
            mpp,
            x402,
            answer,
        }
    }

    fn invoice(&self) -> String {
        self.answer.json["invoice"].as_str().unwrap().to_string()
    }

    fn mpp_credential(&self, preimage: &Preimage) -> String {
        let challenge = self.mpp.as_ref().expect("an MPP challenge");
        PaymentCredential::charge(challenge, preimage).to_header_value()
    }

    fn x402_payload(&self) -> String {
        let required = self.x402.as_ref().expect("an x402 offer");
        PaymentPayload::exact(required.resource.clone(), &required.accepts[0]).encode()
    }
}

async fn offers(gateway: &TestGateway, path: &str) -> Offers {
    Offers::of(gateway.get(path, None).await)
}

async fn send_x402(gateway: &TestGateway, path: &str, payload: &str) -> Answer {
    let request = gateway
        .http
        .get(gateway.url(path))
        .header("payment-signature", payload);
    Answer::read(request.send().await.unwrap()).await
}

fn assert_problem(answer: &Answer, status: StatusCode, kind: &str) {
    assert_eq!(answer.status, status, "{answer:?}");
    assert_eq!(
        answer.header("content-type"),
        Some(problem_type::CONTENT_TYPE),
        "{answer:?}"
    );
    assert_eq!(answer.json["type"], kind, "{answer:?}");
    assert_eq!(answer.json["status"], status.as_u16(), "{answer:?}");
}

#[tokio::test]
async fn one_invoice_three_challenges_mpp_first_by_default() {
    let gateway = start(config("memory")).await;
    let offers = offers(&gateway, "/v1/demo").await;
    assert_eq!(offers.schemes, ["Payment", "L402"], "MPP's challenge first");
    let l402 = offers.l402.as_ref().expect("an L402 challenge");
    let mpp = offers.mpp.as_ref().expect("an MPP challenge");
    let x402 = offers.x402.as_ref().expect("an x402 offer");
    let values = offers.answer.headers.get_all("www-authenticate");
    assert_eq!(values.iter().count(), 2, "L402 and MPP, one value each");

    let request = mpp.charge_request().unwrap();
    assert_eq!(request.method_details.invoice, l402.invoice);
    assert_eq!(request.payment_hash(), Some(l402.payment_hash));
    assert_eq!(request.external_id.as_deref(), Some("demo"));
    assert_eq!(request.amount, "21");
    let accepted = &x402.accepts[0];
    assert_eq!(accepted.invoice(), Some(l402.invoice.as_str()));
    assert_eq!(accepted.payment_hash(), Some(l402.payment_hash));
    assert_eq!(accepted.amount, "21000");

    // The MPP challenge and the x402 offer expire with the invoice; the macaroon later.
    let invoice = plannt_gateway::lightning::decode_invoice(&l402.invoice).unwrap();
    let mpp_until = mpp.expires_at().unwrap();
    let x402_until = accepted.extra["plannt"]["validUntil"].as_u64().unwrap();
    assert!(mpp_until <= invoice.expires_at(), "{mpp_until}");
    assert!(mpp_until + 5 >= invoice.expires_at(), "{mpp_until}");
    assert_eq!(x402_until, mpp_until);
    // The JSON body keeps its fields.
    for field in [
        "invoice",
        "macaroon",
        "payment_hash",
        "amount_sats",
        "expires_at",
        "format",
    ] {
        assert!(offers.answer.json.get(field).is_some(), "{field}");
    }
}

#[tokio::test]
async fn dialects_are_chosen_globally_and_per_route_and_listed_in_the_catalog() {
    let (url, _) = flaky_upstream(0).await;
    let mut config = config("memory");
    config.dialects = Some(vec![Dialect::L402]);
    let mut mpp_only = upstream_route("mpponly", "/mpp/", 5, &url);
    mpp_only.dialects = Some(vec![Dialect::Mpp]);
    config.routes = vec![upstream_route("plain", "/plain/", 5, &url), mpp_only];
    let gateway = start(config).await;

    let plain = offers(&gateway, "/plain/x").await;
    assert!(plain.l402.is_some() && plain.mpp.is_none() && plain.x402.is_none());
    let mpp = offers(&gateway, "/mpp/x").await;
    assert!(mpp.l402.is_none() && mpp.mpp.is_some() && mpp.x402.is_none());
    assert!(mpp.answer.json.get("macaroon").is_none(), "no token minted");

    // An MPP credential where only L402 is offered is no credential: a fresh challenge.
    let preimage = gateway.pay(&mpp.invoice());
    let elsewhere = gateway
        .get("/plain/x", Some(&mpp.mpp_credential(&preimage)))
        .await;
    assert_eq!(elsewhere.status, StatusCode::PAYMENT_REQUIRED);
    let ok = gateway
        .get("/mpp/x", Some(&mpp.mpp_credential(&preimage)))
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{ok:?}");

    let catalog = gateway.get("/.well-known/l402.json", None).await;
    let services = catalog.json["services"].as_array().unwrap();
    let dialects = |name: &str| -> Value {
        services.iter().find(|s| s["name"] == name).unwrap()["dialects"].clone()
    };
    assert_eq!(dialects("plain"), serde_json::json!(["l402"]));
    assert_eq!(dialects("mpponly"), serde_json::json!(["mpp"]));
}

#[tokio::test]
async fn the_challenges_come_in_the_order_the_dialects_are_listed() {
    let (url, _) = flaky_upstream(0).await;
    let mut config = config("memory");
    config.dialects = Some(vec![Dialect::L402, Dialect::Mpp, Dialect::X402]);
    let mut reversed = upstream_route("reversed", "/reversed/", 5, &url);
    reversed.dialects = Some(vec![Dialect::X402, Dialect::Mpp, Dialect::L402]);
    config.routes = vec![upstream_route("plain", "/plain/", 5, &url), reversed];
    let gateway = start(config).await;

    let l402_first = offers(&gateway, "/plain/x").await;
    assert_eq!(l402_first.schemes, ["L402", "Payment"]);
    let reversed = offers(&gateway, "/reversed/x").await;
    assert_eq!(reversed.schemes, ["Payment", "L402"]);
    for offers in [&l402_first, &reversed] {
        let l402 = offers.l402.as_ref().expect("an L402 challenge");
        let request = offers.mpp.as_ref().unwrap().charge_request().unwrap();
        assert_eq!(request.method_details.invoice, l402.invoice);
        assert!(offers.x402.is_some());
    }

    // Either order, the L402 credential and the MPP credential each buy an answer.
    let preimage = gateway.pay(&l402_first.invoice());
    let l402 = l402_first.l402.as_ref().unwrap();
    let paid = gateway
        .get("/plain/x", Some(&authorization(&l402.macaroon, &preimage)))
        .await;
    assert_eq!(paid.status, StatusCode::OK, "{paid:?}");
    let preimage = gateway.pay(&reversed.invoice());
    let paid = gateway
        .get("/reversed/x", Some(&reversed.mpp_credential(&preimage)))
        .await;
    assert_eq!(paid.status, StatusCode::OK, "{paid:?}");

    let catalog = gateway.get("/.well-known/l402.json", None).await;
    let services = catalog.json["services"].as_array().unwrap();
    let dialects = |name: &str| -> Value {
        services.iter().find(|s| s["name"] == name).unwrap()["dialects"].clone()
    };
    assert_eq!(
        dialects("plain"),
        serde_json::json!(["l402", "mpp", "x402"])
    );
    assert_eq!(
        dialects("reversed"),
        serde_json::json!(["x402", "mpp", "l402"])
    );
}

#[tokio::test]
async fn the_catalog_lists_all_three_dialects_by_default() {
    let gateway = start(config("memory")).await;
    let catalog = gateway.get("/.well-known/l402.json", None).await;
    let demo = catalog.json["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "demo")
        .unwrap()
        .clone();
    assert_eq!(demo["dialects"], serde_json::json!(["mpp", "l402", "x402"]));
}

#[tokio::test]
async fn mpp_redeems_once_with_a_receipt_then_is_refused_as_spent() {
    let gateway = start(config("memory")).await;
    let offers = offers(&gateway, "/v1/demo").await;
    let preimage = gateway.pay(&offers.invoice());
    let credential = offers.mpp_credential(&preimage);

    let first = gateway.get("/v1/demo", Some(&credential)).await;
    assert_eq!(first.status, StatusCode::OK, "{first:?}");
    assert_eq!(first.header("x-l402"), Some("spent"));
    let receipt = Receipt::parse(first.header("payment-receipt").unwrap()).unwrap();
    assert_eq!(receipt.status, "success");
    assert_eq!(
        receipt.payment_hash(),
        offers.l402.as_ref().map(|c| c.payment_hash)
    );
    assert_eq!(
        receipt.challenge_id.as_deref(),
        offers.mpp.as_ref().map(|c| c.id.as_str())
    );

    let again = gateway.get("/v1/demo", Some(&credential)).await;
    assert_problem(
        &again,
        StatusCode::PAYMENT_REQUIRED,
        problem_type::LIGHTNING_UNKNOWN_CHALLENGE,
    );
    assert_eq!(again.header("x-l402-reason"), Some("spent"));
    // A fresh challenge set for a new invoice.
    let fresh = Offers::of(again);
    assert_eq!(fresh.schemes, ["Payment", "L402"]);
    assert!(fresh.mpp.is_some());
    assert_ne!(fresh.mpp.unwrap().id, offers.mpp.unwrap().id);
}

#[tokio::test]
async fn mpp_refusals_are_problem_details() {
    let gateway = start(config("memory")).await;
    let offers = offers(&gateway, "/v1/demo").await;
    // Not paid: the preimage does not hash to the payment hash.
    let wrong = offers.mpp_credential(&Preimage::new([9; 32]));
    let answer = gateway.get("/v1/demo", Some(&wrong)).await;
    assert_problem(
        &answer,
        StatusCode::UNAUTHORIZED,
        problem_type::LIGHTNING_INVALID_PREIMAGE,
    );
    // Presented for another route: 402 with fresh challenges.
    let preimage = gateway.pay(&offers.invoice());
    let answer = gateway
        .get("/v1/data", Some(&offers.mpp_credential(&preimage)))
        .await;
    assert_problem(
        &answer,
        StatusCode::PAYMENT_REQUIRED,
        problem_type::INVALID_CHALLENGE,
    );
    assert!(Offers::of(answer).mpp.is_some());
    // Not a credential at all.
    let answer = gateway.get("/v1/demo", Some("Payment !!!")).await;
    assert_problem(
        &answer,
        StatusCode::UNAUTHORIZED,
        problem_type::LIGHTNING_MALFORMED_CREDENTIAL,
    );
}

#[tokio::test]
async fn one_payment_buys_one_answer_across_l402_and_mpp() {
    let gateway = start(config("memory")).await;
    // MPP first, then the same preimage through L402.
    let offers_a = offers(&gateway, "/v1/demo").await;
    let preimage = gateway.pay(&offers_a.invoice());
    let mpp = gateway
        .get("/v1/demo", Some(&offers_a.mpp_credential(&preimage)))
        .await;
    assert_eq!(mpp.status, StatusCode::OK);
    let macaroon = &offers_a.l402.as_ref().unwrap().macaroon;
    let l402 = gateway
        .get("/v1/demo", Some(&authorization(macaroon, &preimage)))
        .await;
    assert_eq!(l402.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(l402.reason(), Some("spent"));

    // L402 first, then the same preimage through MPP.
    let offers_b = offers(&gateway, "/v1/demo").await;
    let preimage = gateway.pay(&offers_b.invoice());
    let macaroon = &offers_b.l402.as_ref().unwrap().macaroon;
    let l402 = gateway
        .get("/v1/demo", Some(&authorization(macaroon, &preimage)))
        .await;
    assert_eq!(l402.status, StatusCode::OK);
    let mpp = gateway
        .get("/v1/demo", Some(&offers_b.mpp_credential(&preimage)))
        .await;
    assert_problem(
        &mpp,
        StatusCode::PAYMENT_REQUIRED,
        problem_type::LIGHTNING_UNKNOWN_CHALLENGE,
    );
}

/// An upstream that answers 500 to its first `failures` requests, then 200.
async fn flaky_upstream(failures: u32) -> (String, Arc<AtomicU32>) {
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let router = Router::new().fallback(any(move || {
        let counted = counted.clone();
        async move {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            if n < failures {
                (AxumStatus::INTERNAL_SERVER_ERROR, "down").into_response()
            } else {
                (AxumStatus::OK, "served").into_response()
            }
        }
    }));
    (format!("http://{}", serve_upstream(router).await), calls)
}

#[tokio::test]
async fn a_failed_upstream_releases_the_claim_for_mpp_and_x402() {
    let (url, calls) = flaky_upstream(1).await;
    let mut config = config("memory");
    config.routes = vec![upstream_route("jobs", "/jobs/", 50, &url)];
    let gateway = start(config).await;

    let offers_a = offers(&gateway, "/jobs/run").await;
    let preimage = gateway.pay(&offers_a.invoice());
    let credential = offers_a.mpp_credential(&preimage);
    let failed = gateway.get("/jobs/run", Some(&credential)).await;
    assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(failed.header("x-l402"), Some("released"));
    assert!(failed.header("payment-receipt").is_none(), "no receipt");
    let retried = gateway.get("/jobs/run", Some(&credential)).await;
    assert_eq!(retried.status, StatusCode::OK, "{retried:?}");
    assert_eq!(retried.text, "served");
    assert!(retried.header("payment-receipt").is_some());
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    let (url, _) = flaky_upstream(1).await;
    let mut config = crate::support::config("memory");
    config.routes = vec![upstream_route("jobs", "/jobs/", 50, &url)];
    let gateway = start(config).await;
    let offers_b = offers(&gateway, "/jobs/run").await;
    gateway.pay(&offers_b.invoice());
    let payload = offers_b.x402_payload();
    let failed = send_x402(&gateway, "/jobs/run", &payload).await;
    assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(failed.header("x-l402"), Some("released"));
    assert!(failed.header("payment-response").is_none());
    let retried = send_x402(&gateway, "/jobs/run", &payload).await;
    assert_eq!(retried.status, StatusCode::OK, "{retried:?}");
}

#[tokio::test]
async fn x402_is_refused_until_paid_then_redeems_once_with_a_payment_response() {
    let gateway = start(config("memory")).await;
    let offers = offers(&gateway, "/v1/demo").await;
    let payload = offers.x402_payload();

    let early = send_x402(&gateway, "/v1/demo", &payload).await;
    assert_eq!(early.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(early.reason(), Some("not_paid"));
    assert_eq!(early.header("retry-after"), Some("1"));
    assert!(early.header("www-authenticate").is_none(), "no new invoice");

    gateway.pay(&offers.invoice());
    let paid = send_x402(&gateway, "/v1/demo", &payload).await;
    assert_eq!(paid.status, StatusCode::OK, "{paid:?}");
    let settled = SettlementResponse::decode(paid.header("payment-response").unwrap()).unwrap();
    assert!(settled.success);
    assert_eq!(
        settled.payment_hash(),
        offers.l402.as_ref().map(|c| c.payment_hash)
    );

    let again = send_x402(&gateway, "/v1/demo", &payload).await;
    assert_eq!(again.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(again.reason(), Some("spent"));
    assert!(again.header("payment-required").is_some(), "a fresh offer");

    // An offer for another route, or altered, is refused without asking the backend.
    let data = send_x402(&gateway, "/v1/data", &payload).await;
    assert_eq!(data.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(data.reason(), Some("wrong_route"));
    let mut required = offers.x402.clone().unwrap();
    required.accepts[0].amount = "1000".into();
    let cheap = PaymentPayload::exact(None, &required.accepts[0]).encode();
    let forged = send_x402(&gateway, "/v1/demo", &cheap).await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    assert_eq!(forged.reason(), Some("bad_signature"));
}

#[tokio::test]
async fn one_payment_buys_one_answer_across_x402_and_the_others() {
    let gateway = start(config("memory")).await;
    // x402 first, then L402 and MPP with the same payment.
    let offers_a = offers(&gateway, "/v1/demo").await;
    let preimage = gateway.pay(&offers_a.invoice());
    let x402 = send_x402(&gateway, "/v1/demo", &offers_a.x402_payload()).await;
    assert_eq!(x402.status, StatusCode::OK);
    let macaroon = &offers_a.l402.as_ref().unwrap().macaroon;
    let l402 = gateway
        .get("/v1/demo", Some(&authorization(macaroon, &preimage)))
        .await;
    assert_eq!(l402.reason(), Some("spent"));
    let mpp = gateway
        .get("/v1/demo", Some(&offers_a.mpp_credential(&preimage)))
        .await;
    assert_eq!(mpp.header("x-l402-reason"), Some("spent"));

    // MPP first, then x402.
    let offers_b = offers(&gateway, "/v1/demo").await;
    let preimage = gateway.pay(&offers_b.invoice());
    let mpp = gateway
        .get("/v1/demo", Some(&offers_b.mpp_credential(&preimage)))
        .await;
    assert_eq!(mpp.status, StatusCode::OK);
    let x402 = send_x402(&gateway, "/v1/demo", &offers_b.x402_payload()).await;
    assert_eq!(x402.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(x402.reason(), Some("spent"));
}

/// 21 concurrent requests with one payment, split between L402, MPP and x402: one answer.
async fn a_race_across_dialects_gives_one_answer(store: &str) {
    let gateway = Arc::new(start(config(store)).await);
    let offers = Arc::new(offers(&gateway, "/v1/demo").await);
    let preimage = gateway.pay(&offers.invoice());
    let l402 = authorization(&offers.l402.as_ref().unwrap().macaroon, &preimage);
    let mpp = offers.mpp_credential(&preimage);
    let x402 = offers.x402_payload();
    let mut tasks = Vec::new();
    for i in 0..21 {
        let gateway = gateway.clone();
        let (l402, mpp, x402) = (l402.clone(), mpp.clone(), x402.clone());
        tasks.push(tokio::spawn(async move {
            match i % 3 {
                0 => gateway.get("/v1/demo", Some(&l402)).await,
                1 => gateway.get("/v1/demo", Some(&mpp)).await,
                _ => send_x402(&gateway, "/v1/demo", &x402).await,
            }
        }));
    }
    let mut ok = 0;
    for task in tasks {
        let answer = task.await.unwrap();
        match answer.status {
            StatusCode::OK => ok += 1,
            StatusCode::PAYMENT_REQUIRED => {
                let reason = answer
                    .header("x-l402-reason")
                    .map(str::to_string)
                    .or_else(|| answer.reason().map(str::to_string));
                assert_eq!(reason.as_deref(), Some("spent"), "{answer:?}");
            }
            other => panic!("unexpected {other}: {answer:?}"),
        }
    }
    assert_eq!(ok, 1, "one payment, one answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_race_across_dialects_gives_one_answer_memory() {
    a_race_across_dialects_gives_one_answer("memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_race_across_dialects_gives_one_answer_sqlite() {
    a_race_across_dialects_gives_one_answer("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_race_across_dialects_gives_one_answer_redis() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    a_race_across_dialects_gives_one_answer(&redis.url()).await;
}

#[tokio::test]
async fn x402_lookups_count_against_the_challenge_rate() {
    let mut config = config("memory");
    config.challenges_per_second = 0.01;
    config.challenge_burst = 3;
    let gateway = start(config).await;
    let offers = offers(&gateway, "/v1/demo").await;
    let payload = offers.x402_payload();
    for _ in 0..2 {
        let early = send_x402(&gateway, "/v1/demo", &payload).await;
        assert_eq!(early.reason(), Some("not_paid"), "{early:?}");
    }
    let flood = send_x402(&gateway, "/v1/demo", &payload).await;
    assert_eq!(flood.status, StatusCode::TOO_MANY_REQUESTS, "{flood:?}");
    assert!(flood.header("retry-after").is_some());
}

/// A payment redeemed through MPP or x402 stays spent until the macaroon minted for the same
/// invoice expires, the latest of the three expiries: a purge just before that moment keeps it,
/// so the L402 credential of the same payment is still refused.
async fn spent_until_the_macaroon_expires(store: &str, redeem_with_mpp: bool) {
    let gateway = start(config(store)).await;
    let challenged_at = crate::support::now();
    let offers = offers(&gateway, "/v1/demo").await;
    let preimage = gateway.pay(&offers.invoice());
    let paid = if redeem_with_mpp {
        gateway
            .get("/v1/demo", Some(&offers.mpp_credential(&preimage)))
            .await
    } else {
        send_x402(&gateway, "/v1/demo", &offers.x402_payload()).await
    };
    assert_eq!(paid.status, StatusCode::OK, "{paid:?}");
    // The defaults: invoices live 600 s, tokens 3600 s more.
    let macaroon_expires = challenged_at + 600 + 3600;
    let purged = gateway
        .paywall
        .store()
        .purge(macaroon_expires - 1)
        .await
        .unwrap();
    assert_eq!(
        purged, 0,
        "nothing of this payment is purged before its macaroon expires"
    );
    let macaroon = &offers.l402.as_ref().unwrap().macaroon;
    let l402 = gateway
        .get("/v1/demo", Some(&authorization(macaroon, &preimage)))
        .await;
    assert_eq!(l402.reason(), Some("spent"), "{l402:?}");
}

#[tokio::test]
async fn an_mpp_redemption_stays_spent_until_the_macaroon_expires_sqlite() {
    spent_until_the_macaroon_expires("sqlite", true).await;
}

#[tokio::test]
async fn an_x402_redemption_stays_spent_until_the_macaroon_expires_sqlite() {
    spent_until_the_macaroon_expires("sqlite", false).await;
}
