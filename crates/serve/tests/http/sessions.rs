//! Prepaid sessions on a metered route (the MPP `session` intent): the 402's session challenge,
//! open with a deposit and a return invoice, bearer requests debited by the usage the upstream
//! reports, a top-up when the balance is short, a close that pays the unspent balance to the
//! return invoice on the dev network (and, on a gateway whose backend is LND, with LND's
//! `SendPaymentV2` and `amt_msat`), the idle close, parallel requests that cannot overdraw,
//! forged preimages refused, a stream that outgrows its balance, and two replicas sharing one
//! session through Redis.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use plannt_gateway::l402::Preimage;
use plannt_gateway::l402::mpp::{
    NeedTopUp, PaymentChallenge, PaymentCredential, RefundStatus, SessionDebit, SessionPayload,
    SessionReceipt, SessionRequest,
};
use plannt_gateway::store::sessions::{Session, SessionState};
use plannt_meter::Usage;
use plannt_serve::config::{MatchKind, RouteConfig, SessionConfig};
use plannt_testkit::openai::OpenAi;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::metering::{PATH, chat, rule};
use crate::support::{Answer, RedisServer, TestGateway, config, start, start_in};

/// The dev account that pays deposits and receives refunds.
const CLIENT: &str = "session-client";

fn route(upstream: &str, deposit_sats: u64, idle_secs: u64) -> RouteConfig {
    RouteConfig {
        id: Some("chat".into()),
        method: Some(Method::POST),
        path: PATH.into(),
        matching: MatchKind::Exact,
        price_sats: None,
        price: Some(rule()),
        description: "Chat completions, in sessions".into(),
        upstream: Some(upstream.parse().unwrap()),
        handler: None,
        on_upstream_failure: None,
        dialects: None,
        free: None,
        rate_limit: None,
        session: Some(SessionConfig {
            deposit_sats,
            idle_secs,
        }),
    }
}

/// A gateway on `store` selling [`PATH`] in sessions, in front of `upstream`.
async fn gateway(store: &str, upstream: &str, deposit_sats: u64, idle_secs: u64) -> TestGateway {
    let mut config = config(store);
    config.routes = vec![route(upstream, deposit_sats, idle_secs)];
    start(config).await
}

async fn ask(gateway: &TestGateway, credential: Option<&str>, body: &Value) -> Answer {
    gateway
        .send(Method::POST, PATH, credential, Some(body.clone()))
        .await
}

/// The session challenge of a 402.
fn session_challenge(answer: &Answer) -> PaymentChallenge {
    let values = answer
        .headers
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap());
    PaymentChallenge::parse_all(values)
        .unwrap()
        .into_iter()
        .find(PaymentChallenge::is_lightning_session)
        .unwrap_or_else(|| panic!("no session challenge in {answer:?}"))
}

fn dev(gateway: &TestGateway) -> &plannt_gateway::lightning::dev::DevNetwork {
    gateway.dev.as_ref().expect("the dev network")
}

/// Pays a session challenge's deposit invoice from [`CLIENT`].
fn pay_deposit(gateway: &TestGateway, challenge: &PaymentChallenge) -> Preimage {
    let request = challenge.session_request().unwrap();
    dev(gateway)
        .pay(CLIENT, request.deposit_invoice.as_deref().unwrap())
        .unwrap()
        .preimage
}

/// A return invoice of [`CLIENT`]'s, without an amount.
fn return_invoice(gateway: &TestGateway) -> String {
    dev(gateway)
        .create_amountless_invoice(CLIENT, "refund", 3600)
        .unwrap()
        .bolt11
}

/// Opens a session with the 402 of `body`: `(challenge, deposit preimage, the open's answer)`.
async fn open(gateway: &TestGateway, body: &Value) -> (PaymentChallenge, Preimage, Answer) {
    let answer = ask(gateway, None, body).await;
    assert_eq!(answer.status, StatusCode::PAYMENT_REQUIRED);
    let challenge = session_challenge(&answer);
    let preimage = pay_deposit(gateway, &challenge);
    let credential = PaymentCredential::session(
        &challenge,
        &SessionPayload::open(&preimage, &return_invoice(gateway)),
    )
    .to_header_value();
    let opened = ask(gateway, Some(&credential), body).await;
    (challenge, preimage, opened)
}

fn bearer(challenge: &PaymentChallenge, preimage: &Preimage) -> String {
    PaymentCredential::session(challenge, &SessionPayload::bearer(preimage)).to_header_value()
}

async fn session(gateway: &TestGateway, preimage: &Preimage) -> Session {
    gateway
        .paywall
        .session_store()
        .expect("sessions are offered")
        .get(&preimage.hash())
        .await
        .unwrap()
        .expect("the session is stored")
}

/// The session receipt of an answer.
fn receipt(answer: &Answer) -> SessionReceipt {
    SessionReceipt::parse(answer.header("payment-receipt").expect("a receipt")).unwrap()
}

/// The debit comments of a stream, in order.
fn debits(text: &str) -> Vec<SessionDebit> {
    text.lines()
        .filter_map(SessionDebit::parse_line)
        .map(|d| d.expect("a well-formed debit"))
        .collect()
}

/// What the rule charges for the usage a JSON answer reports.
fn cost(model: &str, answer: &Value) -> u64 {
    let usage = Usage::from_answer(answer.to_string().as_bytes()).expect("usage");
    let rule = rule();
    rule.sats(
        &rule.models[model],
        usage.prompt_tokens,
        usage.completion_tokens,
    )
}

async fn open_bearer_top_up_close(store: &str) {
    let upstream = OpenAi::start().await;
    let gateway = gateway(store, &upstream.base_url(), 60, 300).await;
    let small = chat("gpt-4o", "the quick brown fox jumps", 16);

    // The 402 offers a session beside the single-use charge.
    let offer = ask(&gateway, None, &small).await;
    let challenge = session_challenge(&offer);
    let request: SessionRequest = challenge.session_request().unwrap();
    assert_eq!(request.deposit_sats(), Some(60));
    assert_eq!(request.idle_secs(), Some(300));
    assert_eq!(request.unit_type.as_deref(), Some("token"));
    assert_eq!(
        request.amount_sats(),
        Some(1),
        "40 sats per 1k tokens: 1 sat a token, rounded up"
    );
    assert_eq!(request.external_id.as_deref(), Some("chat"));

    // Open: served, and debited by what the upstream reports it used.
    let client_before = dev(&gateway).balance(CLIENT);
    let (challenge, preimage, opened) = open(&gateway, &small).await;
    assert_eq!(opened.status, StatusCode::OK, "{opened:?}");
    let said = receipt(&opened);
    assert_eq!(said.session_id(), Some(preimage.hash()));
    let first = cost("gpt-4o", &opened.json);
    let s = session(&gateway, &preimage).await;
    assert_eq!(
        (s.deposited, s.spent, s.balance, s.held),
        (60, first, 60 - first, 0)
    );
    // The answer says what it debited and what is left, as the store has it.
    assert_eq!(
        (said.debit_sats, said.held_sats, said.balance_sats),
        (Some(first), None, Some(s.balance))
    );

    // Bearer: served and debited again.
    let again = ask(&gateway, Some(&bearer(&challenge, &preimage)), &small).await;
    assert_eq!(again.status, StatusCode::OK, "{again:?}");
    let second = cost("gpt-4o", &again.json);
    let s = session(&gateway, &preimage).await;
    assert_eq!(s.spent, first + second);
    let said = receipt(&again);
    assert_eq!(
        (said.debit_sats, said.balance_sats),
        (Some(second), Some(s.balance))
    );

    // A request the balance cannot hold: a 402 with a top-up challenge, nothing held.
    let big = chat("gpt-4o", "the quick brown fox jumps", 2048);
    let short = ask(&gateway, Some(&bearer(&challenge, &preimage)), &big).await;
    assert_eq!(short.status, StatusCode::PAYMENT_REQUIRED, "{short:?}");
    assert_eq!(
        short.json["type"],
        "https://paymentauth.org/problems/payment-insufficient"
    );
    let top_up_challenge = session_challenge(&short);
    let top_up = pay_deposit(&gateway, &top_up_challenge);
    let credential = PaymentCredential::session(
        &top_up_challenge,
        &SessionPayload::top_up(&preimage.hash(), &top_up),
    )
    .to_header_value();
    let topped = ask(&gateway, Some(&credential), &big).await;
    assert_eq!(topped.status, StatusCode::OK, "{topped:?}");
    let s = session(&gateway, &preimage).await;
    assert_eq!(s.deposited, 120);
    assert_eq!(topped.json["balance"], s.balance);
    // The same top-up again counts nothing.
    let twice = ask(&gateway, Some(&credential), &big).await;
    assert_eq!(twice.status, StatusCode::PAYMENT_REQUIRED, "{twice:?}");
    assert_eq!(session(&gateway, &preimage).await.deposited, 120);

    let served = ask(&gateway, Some(&bearer(&challenge, &preimage)), &big).await;
    assert_eq!(served.status, StatusCode::OK, "{served:?}");
    let third = cost("gpt-4o", &served.json);
    let s = session(&gateway, &preimage).await;
    assert_eq!(
        s.spent,
        first + second + third,
        "debited by usage, not the quote"
    );
    let left = s.balance;
    assert_eq!(left, 120 - s.spent);
    let said = receipt(&served);
    assert_eq!(
        (said.debit_sats, said.balance_sats),
        (Some(third), Some(left))
    );
    // /metrics counts the three served requests and earns what they were debited.
    let metrics = gateway.get("/metrics", None).await.text;
    for line in [
        "plannt_tokens_accepted_total{route=\"chat\"} 3".to_string(),
        format!("plannt_sats_earned_total{{route=\"chat\"}} {}", s.spent),
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "/metrics lacks {line:?}:\n{metrics}"
        );
    }

    // Close: the balance goes back to the return invoice, exactly.
    let close =
        PaymentCredential::session(&challenge, &SessionPayload::close(&preimage)).to_header_value();
    let closed = ask(&gateway, Some(&close), &small).await;
    assert_eq!(closed.status, StatusCode::OK, "{closed:?}");
    let receipt = SessionReceipt::parse(closed.header("payment-receipt").unwrap()).unwrap();
    assert_eq!(receipt.refund_sats, left);
    assert_eq!(receipt.refund_status, Some(RefundStatus::Succeeded));
    let client_after = dev(&gateway).balance(CLIENT);
    assert_eq!(
        client_after,
        client_before - 120_000 + left * 1000,
        "the client paid two deposits and got back exactly the unspent balance"
    );
    let s = session(&gateway, &preimage).await;
    assert_eq!(s.state, SessionState::Closed);

    // A closed session buys nothing more; a second close pays nothing more.
    let after = ask(&gateway, Some(&bearer(&challenge, &preimage)), &small).await;
    assert_eq!(after.status, StatusCode::PAYMENT_REQUIRED);
    let again = ask(&gateway, Some(&close), &small).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(dev(&gateway).balance(CLIENT), client_after);
}

#[tokio::test]
async fn a_session_opens_serves_tops_up_and_closes_with_its_refund_in_memory() {
    open_bearer_top_up_close("memory").await;
}

#[tokio::test]
async fn a_session_opens_serves_tops_up_and_closes_with_its_refund_in_sqlite() {
    open_bearer_top_up_close("sqlite").await;
}

#[tokio::test]
async fn a_session_opens_serves_tops_up_and_closes_with_its_refund_in_redis() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    open_bearer_top_up_close(&redis.url()).await;
}

/// Two gateway replicas on one Redis, sharing a data directory (so their dev networks sign with
/// one node key and each pays the other's invoices); every payment of the client's goes through
/// replica A's dev network.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_one_redis_share_a_session_and_refund_it_once() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let upstream = OpenAi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let replica = || {
        let mut config = config(&redis.url());
        config.routes = vec![route(&upstream.base_url(), 60, 300)];
        start_in(config, dir.path())
    };
    let (a, b) = (replica().await, replica().await);
    let small = chat("gpt-4o", "the quick brown fox jumps", 16);
    let before = dev(&a).balance(CLIENT);

    // Open on A, spend on B.
    let (challenge, preimage, opened) = open(&a, &small).await;
    assert_eq!(opened.status, StatusCode::OK, "{opened:?}");
    let served = ask(&b, Some(&bearer(&challenge, &preimage)), &small).await;
    assert_eq!(served.status, StatusCode::OK, "{served:?}");
    let spent = cost("gpt-4o", &opened.json) + cost("gpt-4o", &served.json);
    assert_eq!(
        session(&a, &preimage).await.spent,
        spent,
        "A sees B's debit"
    );

    // Top up on B (its invoice, paid from A's network), once.
    let big = chat("gpt-4o", "the quick brown fox jumps", 2048);
    let short = ask(&b, Some(&bearer(&challenge, &preimage)), &big).await;
    assert_eq!(short.status, StatusCode::PAYMENT_REQUIRED, "{short:?}");
    let top_up_challenge = session_challenge(&short);
    let top_up = pay_deposit(&a, &top_up_challenge);
    let credential = PaymentCredential::session(
        &top_up_challenge,
        &SessionPayload::top_up(&preimage.hash(), &top_up),
    )
    .to_header_value();
    let topped = ask(&b, Some(&credential), &big).await;
    assert_eq!(topped.status, StatusCode::OK, "{topped:?}");
    let twice = ask(&a, Some(&credential), &big).await;
    assert_eq!(twice.status, StatusCode::PAYMENT_REQUIRED, "{twice:?}");
    let s = session(&a, &preimage).await;
    assert_eq!((s.deposited, s.balance), (120, 120 - spent));

    // Close on A: the refund paid once; B's close answers as closed and pays nothing.
    let close =
        PaymentCredential::session(&challenge, &SessionPayload::close(&preimage)).to_header_value();
    let closed = ask(&a, Some(&close), &small).await;
    assert_eq!(closed.status, StatusCode::OK, "{closed:?}");
    let receipt = SessionReceipt::parse(closed.header("payment-receipt").unwrap()).unwrap();
    assert_eq!(receipt.refund_sats, 120 - spent);
    assert_eq!(receipt.refund_status, Some(RefundStatus::Succeeded));
    let (client_a, client_b) = (dev(&a).balance(CLIENT), dev(&b).balance(CLIENT));
    assert_eq!(client_a, before - 120_000 + (120 - spent) * 1000);
    let again = ask(&b, Some(&close), &small).await;
    assert_eq!(again.status, StatusCode::OK, "{again:?}");
    let receipt = SessionReceipt::parse(again.header("payment-receipt").unwrap()).unwrap();
    assert_eq!(receipt.refund_sats, 120 - spent);
    assert_eq!(
        (dev(&a).balance(CLIENT), dev(&b).balance(CLIENT)),
        (client_a, client_b),
        "no second refund, from either replica"
    );
    let after = ask(&b, Some(&bearer(&challenge, &preimage)), &small).await;
    assert_eq!(after.status, StatusCode::PAYMENT_REQUIRED, "{after:?}");
}

#[tokio::test]
async fn a_forged_or_another_sessions_preimage_is_refused() {
    let upstream = OpenAi::start().await;
    let gateway = gateway("memory", &upstream.base_url(), 100, 300).await;
    let body = chat("gpt-4o-mini", "hello there", 8);
    let (challenge, alice, opened) = open(&gateway, &body).await;
    assert_eq!(opened.status, StatusCode::OK);
    let (_, bob, opened) = open(&gateway, &body).await;
    assert_eq!(opened.status, StatusCode::OK);
    let spent = session(&gateway, &alice).await.spent;

    // Alice's session id with a made-up preimage, or with Bob's.
    for preimage in [Preimage::new([9; 32]), bob] {
        let mut payload = SessionPayload::bearer(&alice);
        payload.preimage = Some(preimage.to_hex());
        let forged = PaymentCredential::session(&challenge, &payload).to_header_value();
        let refused = ask(&gateway, Some(&forged), &body).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{refused:?}");
        assert_eq!(refused.header("x-l402-reason"), Some("bad_preimage"));
        assert_eq!(
            refused.json["type"],
            "https://paymentauth.org/problems/lightning/invalid-preimage"
        );
    }
    // A genuine preimage of a session never opened here.
    let stranger =
        PaymentCredential::session(&challenge, &SessionPayload::bearer(&Preimage::new([7; 32])))
            .to_header_value();
    let refused = ask(&gateway, Some(&stranger), &body).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{refused:?}");
    // An open with an invoice that names an amount, or a deposit paid by nobody.
    let answer = ask(&gateway, None, &body).await;
    let fresh = session_challenge(&answer);
    let unpaid = PaymentCredential::session(
        &fresh,
        &SessionPayload::open(&Preimage::new([3; 32]), &return_invoice(&gateway)),
    )
    .to_header_value();
    let refused = ask(&gateway, Some(&unpaid), &body).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{refused:?}");
    let deposit = pay_deposit(&gateway, &fresh);
    let with_amount = dev(&gateway)
        .create_invoice(&plannt_gateway::lightning::InvoiceRequest {
            amount_sats: 5,
            memo: "not a return invoice".into(),
            expiry_secs: 3600,
        })
        .unwrap()
        .bolt11;
    let bad_return =
        PaymentCredential::session(&fresh, &SessionPayload::open(&deposit, &with_amount))
            .to_header_value();
    let refused = ask(&gateway, Some(&bad_return), &body).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{refused:?}");
    assert!(refused.text.contains("names an amount"), "{}", refused.text);
    assert_eq!(
        session(&gateway, &alice).await.spent,
        spent,
        "nothing was debited"
    );
}

#[tokio::test]
async fn parallel_bearer_requests_cannot_overdraw_a_session() {
    let upstream = OpenAi::start().await;
    let gateway = Arc::new(gateway("sqlite", &upstream.base_url(), 40, 300).await);
    let small = chat("gpt-4o", "one two", 4);
    let (challenge, preimage, opened) = open(&gateway, &small).await;
    assert_eq!(opened.status, StatusCode::OK);
    // Each holds its quote, 14 sats, and uses about as much (the upstream echoes the long
    // prompt up to its cap): of the 39 sats left, two can be held, whatever the timing.
    let big = chat("gpt-4o", &"word ".repeat(300), 256);
    let credential = bearer(&challenge, &preimage);
    let answers = futures_util::future::join_all((0..12).map(|_| {
        let (gateway, credential, big) = (gateway.clone(), credential.clone(), big.clone());
        async move { ask(&gateway, Some(&credential), &big).await.status }
    }))
    .await;
    let served = answers.iter().filter(|s| **s == StatusCode::OK).count();
    let short = answers
        .iter()
        .filter(|s| **s == StatusCode::PAYMENT_REQUIRED)
        .count();
    assert_eq!(served + short, 12, "{answers:?}");
    assert_eq!(served, 2, "{answers:?}");
    let s = session(&gateway, &preimage).await;
    assert_eq!(s.held, 0, "every hold settled");
    assert!(s.spent <= s.deposited, "{s:?}");
    assert_eq!(s.balance + s.spent, s.deposited, "{s:?}");
}

#[tokio::test]
async fn an_idle_session_is_closed_and_refunded() {
    let upstream = OpenAi::start().await;
    let gateway = gateway("memory", &upstream.base_url(), 50, 1).await;
    let body = chat("gpt-4o-mini", "hello", 4);
    let before = dev(&gateway).balance(CLIENT);
    let (_, preimage, opened) = open(&gateway, &body).await;
    assert_eq!(opened.status, StatusCode::OK);
    let mut s = session(&gateway, &preimage).await;
    for _ in 0..40 {
        if s.state == SessionState::Closed {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        s = session(&gateway, &preimage).await;
    }
    assert_eq!(s.state, SessionState::Closed, "{s:?}");
    assert_eq!(s.refund_status, Some(RefundStatus::Succeeded));
    assert_eq!(s.refund, 50 - s.spent);
    assert_eq!(dev(&gateway).balance(CLIENT), before - s.spent * 1000);
    // The idle close's refund reaches the earnings ledger (counted by the task just after it
    // records the session closed): earned is what was spent.
    let now = plannt_gateway::lightning::invoice::unix_now();
    let mut stats = plannt_gateway::ledger::Stats::default();
    for _ in 0..40 {
        gateway.paywall.flush_ledger().await.unwrap();
        let read = gateway
            .paywall
            .store()
            .ledger(now - 3_600, now + 3_600, 10)
            .await
            .unwrap();
        stats = plannt_gateway::ledger::Stats::of(&read, now - 3_600, now + 3_600);
        if stats.total.refunds > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let session = &stats.dialects["mpp-session"];
    assert_eq!(
        (
            session.sats,
            session.refunded_sats,
            session.metered_sats,
            session.earned_sats
        ),
        (50, s.refund, s.spent, s.spent),
        "{stats:?}"
    );
}

/// An upstream that ignores `max_tokens` and streams 400 words with no usage chunk, one every
/// `pause_ms`.
async fn runaway_upstream(pause_ms: u64) -> (String, tokio::task::JoinHandle<()>) {
    let app = axum::Router::new().route(
        PATH,
        axum::routing::post(move || async move {
            let frames = futures_util::stream::unfold(0u32, move |i| async move {
                if i > 400 {
                    return None;
                }
                if pause_ms > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(pause_ms)).await;
                }
                let frame = if i == 400 {
                    "data: [DONE]\n\n".to_string()
                } else {
                    let chunk = json!({
                        "id": "chatcmpl-runaway",
                        "object": "chat.completion.chunk",
                        "model": "gpt-4o",
                        "choices": [{"index": 0, "delta": {"content": format!(" word{i}")}}],
                    });
                    format!("data: {chunk}\n\n")
                };
                Some((Ok::<_, Infallible>(frame), i + 1))
            });
            Response::builder()
                .header("content-type", "text/event-stream")
                .body(Body::from_stream(frames))
                .unwrap()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}"), task)
}

#[tokio::test]
async fn a_stream_that_outgrows_its_balance_gets_the_need_top_up_event_then_done() {
    let (upstream, _task) = runaway_upstream(0).await;
    let gateway = gateway("memory", &upstream, 8, 300).await;
    let mut body = chat("gpt-4o", "go on", 4);
    body["stream"] = json!(true);
    let (challenge, preimage, opened) = open(&gateway, &body).await;
    assert_eq!(opened.status, StatusCode::OK, "{opened:?}");
    // The open's own stream already ran the balance out.
    let text = opened.text;
    let event = text
        .split("\n\n")
        .position(|e| e.starts_with("event: payment-need-topup"))
        .unwrap_or_else(|| panic!("no need-top-up event in {text}"));
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(
        events.last(),
        Some(&"data: [DONE]"),
        "the stream ends cleanly"
    );
    let data = text
        .split("\n\n")
        .nth(event)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap();
    let need = NeedTopUp::parse_data(data.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(need.session_id, preimage.hash().to_hex());
    assert!(need.balance_required >= 1);
    assert!(
        events.len() < 400,
        "the stream was cut: {} events",
        events.len()
    );
    let s = session(&gateway, &preimage).await;
    assert_eq!(s.held, 0);
    assert_eq!(
        s.spent, 8,
        "the whole deposit was delivered, no more: {s:?}"
    );
    assert_eq!(s.balance, 0);
    // The debit goes between the event and the end: the whole deposit, nothing left.
    let debit = &events[events.len() - 2];
    let debit = SessionDebit::parse_line(debit).expect("the debit").unwrap();
    assert_eq!(
        (debit.session_id, debit.debit_sats, debit.balance_sats),
        (preimage.hash().to_hex(), 8, Some(0))
    );
    assert!(events[events.len() - 3].starts_with("event: payment-need-topup"));
    // The next request is refused for a top-up.
    let next = ask(&gateway, Some(&bearer(&challenge, &preimage)), &body).await;
    assert_eq!(next.status, StatusCode::PAYMENT_REQUIRED);
}

#[tokio::test]
async fn a_streamed_answer_is_debited_by_its_usage_chunk() {
    let upstream = OpenAi::start().await;
    let gateway = gateway("memory", &upstream.base_url(), 200, 300).await;
    let mut body = chat("gpt-4o", "the quick brown fox jumps over the lazy dog", 6);
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (_, preimage, opened) = open(&gateway, &body).await;
    assert_eq!(opened.status, StatusCode::OK, "{opened:?}");
    let usage = Usage::from_stream(opened.text.as_bytes()).expect("the usage chunk");
    let rule = rule();
    let expected = rule.sats(
        &rule.models["gpt-4o"],
        usage.prompt_tokens,
        usage.completion_tokens,
    );
    let s = session(&gateway, &preimage).await;
    assert_eq!(s.spent, expected);
    // The headers went before the usage was known: the receipt gives the hold (the quote) and
    // the balance after it; the debit comes as the stream's last comment, before its end.
    let quote = rule
        .price(&serde_json::to_vec(&body).unwrap())
        .unwrap()
        .sats;
    let said = receipt(&opened);
    assert_eq!(
        (said.debit_sats, said.held_sats, said.balance_sats),
        (None, Some(quote), Some(200 - quote))
    );
    assert_eq!(
        debits(&opened.text),
        vec![SessionDebit {
            session_id: preimage.hash().to_hex(),
            debit_sats: expected,
            balance_sats: Some(s.balance),
        }]
    );
    let events: Vec<&str> = opened
        .text
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .collect();
    assert!(events[events.len() - 2].starts_with(": plannt-session-debit "));
    assert_eq!(events.last(), Some(&"data: [DONE]"));
}

#[tokio::test]
async fn an_abandoned_stream_is_debited_what_was_delivered_not_its_quote() {
    let (upstream, _task) = runaway_upstream(20).await;
    let gateway = gateway("memory", &upstream, 500, 300).await;
    let small = chat("gpt-4o-mini", "hi", 4);
    let (challenge, preimage, opened) = open(&gateway, &small).await;
    assert_eq!(opened.status, StatusCode::OK);
    let before = session(&gateway, &preimage).await.spent;
    // A stream whose quote is 82 sats (2048 output tokens of gpt-4o), abandoned after a few
    // events.
    let mut body = chat("gpt-4o", "go on", 2048);
    body["stream"] = json!(true);
    let quote = rule()
        .price(&serde_json::to_vec(&body).unwrap())
        .unwrap()
        .sats;
    assert!(quote >= 80);
    let mut response = gateway
        .http
        .post(gateway.url(PATH))
        .header("authorization", bearer(&challenge, &preimage))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut read = String::new();
    while read.matches("\n\n").count() < 5 {
        let chunk = response.chunk().await.unwrap().expect("more of the stream");
        read.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(response);
    let mut s = session(&gateway, &preimage).await;
    for _ in 0..40 {
        if s.held == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        s = session(&gateway, &preimage).await;
    }
    assert_eq!(
        s.held, 0,
        "the hold was settled when the client went: {s:?}"
    );
    let debited = s.spent - before;
    assert!(debited >= 1, "what was delivered is paid for");
    assert!(
        debited <= 2,
        "a few words cost a sat or two, not the quote of {quote}: {debited}"
    );
    assert_eq!(s.balance + s.spent, s.deposited);
}

/// A session on a gateway whose Lightning backend is LND (the test kit's fake LND REST API, on
/// a dev network that stands for the rest of Lightning), with the client's wallet another
/// backend that issues return invoices (an account of that dev network): the deposit is paid to
/// the node, the session opens and serves a bearer request, and its close pays the unspent
/// balance to the client's return invoice with LND's `SendPaymentV2` and `amt_msat`: exactly
/// that balance arrives.
#[tokio::test]
async fn a_session_on_an_lnd_gateway_refunds_the_clients_return_invoice() {
    use plannt_gateway::lightning::{InvoiceState, Lnd, Network, Receiver, Secret, decode_invoice};
    use plannt_testkit::fakes::{self, lnd as fake_lnd};

    let upstream = OpenAi::start().await;
    let network = fakes::network();
    let node = fake_lnd::Lnd::new(network.clone());
    let server = node.serve().await;
    let macaroon = node.state().admin_macaroon.clone();
    let mut config = config("memory");
    config.lightning = format!(
        "lnd+http://127.0.0.1:{}?macaroon={macaroon}&network=regtest",
        server.url.port().unwrap()
    )
    .parse()
    .unwrap();
    config.routes = vec![route(&upstream.base_url(), 60, 300)];
    let gateway = start(config).await;
    assert!(gateway.paywall.session_store().is_some(), "LND can refund");
    let body = chat("gpt-4o", "the quick brown fox jumps", 16);

    // The rest of the network pays the deposit invoice LND issued; its preimage is the
    // client's proof.
    let offer = ask(&gateway, None, &body).await;
    let challenge = session_challenge(&offer);
    let request = challenge.session_request().unwrap();
    let deposit = decode_invoice(request.deposit_invoice.as_deref().unwrap()).unwrap();
    assert_eq!(deposit.amount_msat, Some(60_000));
    node.settle(&deposit.payment_hash);
    let lnd = Lnd::new(server.url.clone(), Secret::new(macaroon), Network::Regtest);
    let preimage = match lnd.lookup_invoice(&deposit.payment_hash).await.unwrap() {
        InvoiceState::Settled { preimage, .. } => preimage,
        other => panic!("the deposit is settled, not {other:?}"),
    };

    // The client's wallet issues the return invoice.
    let wallet = network.wallet(CLIENT);
    let returned = wallet
        .create_amountless_invoice("refund", 3600)
        .await
        .unwrap();
    let credential = PaymentCredential::session(
        &challenge,
        &SessionPayload::open(&preimage, &returned.bolt11),
    )
    .to_header_value();
    let opened = ask(&gateway, Some(&credential), &body).await;
    assert_eq!(opened.status, StatusCode::OK, "{opened:?}");
    let again = ask(&gateway, Some(&bearer(&challenge, &preimage)), &body).await;
    assert_eq!(again.status, StatusCode::OK, "{again:?}");
    let spent = cost("gpt-4o", &opened.json) + cost("gpt-4o", &again.json);
    let left = session(&gateway, &preimage).await.balance;
    assert_eq!(left, 60 - spent);
    assert!(left > 0);

    let before = network.balance(CLIENT);
    let close =
        PaymentCredential::session(&challenge, &SessionPayload::close(&preimage)).to_header_value();
    let closed = ask(&gateway, Some(&close), &body).await;
    assert_eq!(closed.status, StatusCode::OK, "{closed:?}");
    let receipt = SessionReceipt::parse(closed.header("payment-receipt").unwrap()).unwrap();
    assert_eq!(receipt.refund_sats, left);
    assert_eq!(receipt.refund_status, Some(RefundStatus::Succeeded));
    assert_eq!(
        network.balance(CLIENT) - before,
        left * 1000,
        "exactly the unspent balance arrived"
    );
    let state = node.state();
    let (_, sent) = state
        .posted
        .iter()
        .rev()
        .find(|(path, _)| *path == "/v2/router/send")
        .expect("the refund went through SendPaymentV2");
    assert_eq!(sent["payment_request"], returned.bolt11);
    assert_eq!(sent["amt_msat"], (left * 1000).to_string());
}

/// A gateway given LND's `invoice.macaroon` (the least a gateway needs to sell single-use
/// payments) could take deposits but never refund them: it offers no sessions, only charges.
#[tokio::test]
async fn a_gateway_whose_credential_cannot_pay_offers_no_sessions() {
    use plannt_testkit::fakes::{self, lnd as fake_lnd};

    let upstream = OpenAi::start().await;
    let node = fake_lnd::Lnd::new(fakes::network());
    let server = node.serve().await;
    let macaroon = node.state().invoice_macaroon.clone();
    let mut config = config("memory");
    config.lightning = format!(
        "lnd+http://127.0.0.1:{}?macaroon={macaroon}&network=regtest",
        server.url.port().unwrap()
    )
    .parse()
    .unwrap();
    config.routes = vec![route(&upstream.base_url(), 60, 300)];
    let gateway = start(config).await;
    assert!(gateway.paywall.session_store().is_none());
    let offer = ask(&gateway, None, &chat("gpt-4o", "hello", 16)).await;
    assert_eq!(offer.status, StatusCode::PAYMENT_REQUIRED);
    let values = offer
        .headers
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap());
    let challenges = PaymentChallenge::parse_all(values).unwrap();
    assert!(!challenges.is_empty(), "single-use payments are still sold");
    assert!(
        !challenges
            .iter()
            .any(PaymentChallenge::is_lightning_session)
    );
}

/// The earnings ledger counts a session: its deposit as a payment (`mpp-session`), each
/// request's debit as metered usage, and the refund, so that what was earned is the deposit
/// less the refund, which is what the requests were debited.
async fn stats_count_a_session(store: &str) {
    const TOKEN: &str = "admin-token-0123456789abcdef";
    let upstream = OpenAi::start().await;
    let mut config = config(store);
    config.routes = vec![route(&upstream.base_url(), 100, 300)];
    config.admin_token = Some(plannt_serve::config::AdminToken(zeroize::Zeroizing::new(
        TOKEN.to_string(),
    )));
    let gateway = start(config).await;
    let small = chat("gpt-4o", "the quick brown fox jumps", 16);
    let (challenge, preimage, opened) = open(&gateway, &small).await;
    assert_eq!(opened.status, StatusCode::OK, "{opened:?}");
    let mut debited = receipt(&opened).debit_sats.unwrap();
    for _ in 0..2 {
        let again = ask(&gateway, Some(&bearer(&challenge, &preimage)), &small).await;
        assert_eq!(again.status, StatusCode::OK, "{again:?}");
        debited += receipt(&again).debit_sats.unwrap();
    }
    let close =
        PaymentCredential::session(&challenge, &SessionPayload::close(&preimage)).to_header_value();
    let closed = ask(&gateway, Some(&close), &small).await;
    assert_eq!(closed.status, StatusCode::OK, "{closed:?}");
    let refund = receipt(&closed).refund_sats;
    assert_eq!(refund, 100 - debited);
    // A close asked again refunds nothing more, and counts nothing more.
    let again = ask(&gateway, Some(&close), &small).await;
    assert_eq!(again.status, StatusCode::OK);

    let stats = gateway
        .http
        .get(gateway.url("/_plannt/admin/stats?since=1h"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(stats.status(), StatusCode::OK);
    let s: Value = stats.json().await.unwrap();
    let session = &s["dialects"]["mpp-session"];
    assert_eq!(session["payments"], 1, "the deposit: {s}");
    assert_eq!(session["sats"], 100, "{s}");
    assert_eq!(session["refunds"], 1, "{s}");
    assert_eq!(session["refunded_sats"], refund, "{s}");
    assert_eq!(session["metered"], 3, "the open and two bearers: {s}");
    assert_eq!(session["metered_sats"], debited, "{s}");
    assert_eq!(session["earned_sats"], debited, "{s}");
    let chat = &s["routes"]["chat"];
    assert_eq!(
        (&chat["sats"], &chat["refunded_sats"], &chat["earned_sats"]),
        (&json!(100), &json!(refund), &json!(100 - refund)),
        "{s}"
    );
    assert_eq!(s["total"]["earned_sats"], 100 - refund, "{s}");
    let recent = s["recent"].as_array().unwrap();
    assert_eq!(recent[0]["dialect"], "mpp-session", "{s}");
    assert_eq!(recent[0]["payment_hash"], preimage.hash().to_hex());
}

#[tokio::test]
async fn stats_count_a_sessions_deposit_usage_and_refund_in_memory() {
    stats_count_a_session("memory").await;
}

#[tokio::test]
async fn stats_count_a_sessions_deposit_usage_and_refund_in_sqlite() {
    stats_count_a_session("sqlite").await;
}
