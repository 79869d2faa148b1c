//! Routes priced by the request: the OpenAI-compatible upstream the tests price against
//! (plannt_testkit::openai), answering as OpenAI's API does; a metered route's 402 asking the
//! price of the request in front of it, refusing what it cannot price before any invoice; and a
//! token bound to the price it paid, in L402, MPP and x402, which no dearer request, no
//! attenuation and no token without a price can get past.

use plannt_gateway::l402::mpp::{PaymentChallenge, PaymentCredential};
use plannt_gateway::l402::x402::{PaymentPayload, PaymentRequired};
use plannt_meter::{Encoding, PriceRule, Usage};
use plannt_serve::config::{MatchKind, RouteConfig};
use plannt_testkit::openai::OpenAi;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{
    Answer, Challenge, TestGateway, attenuate, authorization, client, config, keys, mint, now,
    start,
};

/// The route every test meters (and the session tests sell).
pub(crate) const PATH: &str = "/v1/chat/completions";
/// Its id, minted into tokens.
const ROUTE: &str = "chat";

/// The price rule of [`PATH`].
pub(crate) fn rule() -> PriceRule {
    serde_json::from_value(json!({
        "per": "openai-tokens",
        "models": {
            "gpt-4o-mini": {"input_per_1k": 2, "output_per_1k": 8},
            "gpt-4o": {"input_per_1k": 10, "output_per_1k": 40},
        },
        "default_max_tokens": 256,
        "max_tokens_ceiling": 2048,
        "min_sats": 1,
        "max_body_bytes": 65536,
    }))
    .unwrap()
}

/// A gateway selling [`PATH`] by [`rule`] in front of a fresh upstream.
async fn metered() -> (TestGateway, OpenAi) {
    let upstream = OpenAi::start().await;
    let mut config = config("memory");
    config.routes = vec![RouteConfig {
        id: Some(ROUTE.into()),
        method: Some(Method::POST),
        path: PATH.into(),
        matching: MatchKind::Exact,
        price_sats: None,
        price: Some(rule()),
        description: "Chat completions, priced by their tokens".into(),
        upstream: Some(upstream.base_url().parse().unwrap()),
        handler: None,
        on_upstream_failure: None,
        dialects: None,
        free: None,
        rate_limit: None,
        session: None,
    }];
    (start(config).await, upstream)
}

/// A chat completion request of one user message.
pub(crate) fn chat(model: &str, prompt: &str, max_tokens: u64) -> Value {
    json!({
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
    })
}

/// What the rule asks for `body`.
fn price_of(body: &Value) -> u64 {
    rule()
        .price(&serde_json::to_vec(body).unwrap())
        .unwrap()
        .sats
}

async fn ask(gateway: &TestGateway, credential: Option<&str>, body: &Value) -> Answer {
    gateway
        .send(Method::POST, PATH, credential, Some(body.clone()))
        .await
}

/// The 402 for `body`, its price checked against the rule and the invoice.
async fn challenge(gateway: &TestGateway, body: &Value) -> (Challenge, Answer) {
    let answer = ask(gateway, None, body).await;
    let challenge = Challenge::of(&answer);
    let price = price_of(body);
    assert_eq!(answer.json["amount_sats"], price, "{answer:?}");
    let invoice = plannt_gateway::lightning::decode_invoice(&challenge.invoice).unwrap();
    assert_eq!(
        invoice.amount_msat,
        Some(price * 1000),
        "the invoice asks the price"
    );
    (challenge, answer)
}

/// A paid L402 credential for `body`.
async fn paid(gateway: &TestGateway, body: &Value) -> String {
    let (challenge, _) = challenge(gateway, body).await;
    let preimage = gateway.pay(&challenge.invoice);
    authorization(&challenge.macaroon, &preimage)
}

async fn post(url: &str, body: &Value) -> (StatusCode, String, String) {
    let response = client().post(url).json(body).send().await.unwrap();
    let status = response.status();
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, kind, response.text().await.unwrap())
}

#[tokio::test]
async fn the_test_upstream_answers_chat_completions_as_openai_does() {
    let upstream = OpenAi::start().await;
    let url = format!("{}/v1/chat/completions", upstream.base_url());
    let body = json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "the quick brown fox jumps over the lazy dog"}
        ],
        "max_tokens": 5,
    });
    let (status, kind, text) = post(&url, &body).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(kind.starts_with("application/json"));
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert!(answer["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(answer["object"], "chat.completion");
    assert!(answer["created"].is_u64());
    assert_eq!(answer["model"], "gpt-4o-mini");
    let choice = &answer["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["finish_reason"], "length", "cut at max_tokens");
    let content = choice["message"]["content"].as_str().unwrap();
    assert!(content.starts_with("echo: the quick"), "{content}");
    // Honest usage: the completion counted with the model's tokenizer, within the cap; the
    // prompt as OpenAI counts a chat.
    let e = Encoding::O200kBase;
    let usage = Usage::from_answer(text.as_bytes()).unwrap();
    assert_eq!(usage.completion_tokens, e.count(content));
    assert!(usage.completion_tokens <= 5);
    let prompt = 3
        + (3 + e.count("system") + e.count("Be brief."))
        + (3 + e.count("user") + e.count("the quick brown fox jumps over the lazy dog"));
    assert_eq!(usage.prompt_tokens, prompt);
    assert_eq!(
        usage.total_tokens,
        usage.prompt_tokens + usage.completion_tokens
    );

    // Without a cap the whole echo, finished with "stop"; the same request, the same answer.
    let uncapped =
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi there"}]});
    let (_, _, first) = post(&url, &uncapped).await;
    let (_, _, again) = post(&url, &uncapped).await;
    assert_eq!(first, again, "deterministic");
    let first: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["choices"][0]["message"]["content"], "echo: hi there");
    assert_eq!(first["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        upstream
            .seen
            .completions
            .load(std::sync::atomic::Ordering::SeqCst),
        3
    );
}

#[tokio::test]
async fn the_test_upstream_streams_chunks_and_a_last_usage_chunk() {
    let upstream = OpenAi::start().await;
    let url = format!("{}/v1/chat/completions", upstream.base_url());
    let body = json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "one two three"}],
        "max_completion_tokens": 50,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    let (status, kind, text) = post(&url, &body).await;
    assert_eq!(status, StatusCode::OK);
    assert!(kind.starts_with("text/event-stream"), "{kind}");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let chunks: Vec<Value> = text
        .split("\n\n")
        .filter_map(|frame| frame.strip_prefix("data: "))
        .filter(|data| *data != "[DONE]")
        .map(|data| serde_json::from_str(data).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(streamed, "echo: one two three");
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]), "the usage chunk has no choices");
    let finished = &chunks[chunks.len() - 2];
    assert_eq!(finished["choices"][0]["finish_reason"], "stop");
    assert!(
        finished["usage"].is_null(),
        "every other chunk says usage: null"
    );
    let usage = Usage::from_stream(text.as_bytes()).unwrap();
    assert_eq!(
        usage.completion_tokens,
        Encoding::O200kBase.count(&streamed)
    );

    // Without include_usage: no usage chunk, no usage field.
    let plain = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "stream": true});
    let (_, _, text) = post(&url, &plain).await;
    assert_eq!(Usage::from_stream(text.as_bytes()), None);
    assert!(!text.contains("\"usage\""));
}

#[tokio::test]
async fn the_test_upstream_lists_models_and_refuses_as_openai_does() {
    let upstream = OpenAi::start().await;
    let models: Value = client()
        .get(format!("{}/v1/models", upstream.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["object"], "list");
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["gpt-4o-mini", "gpt-4o"]);
    assert_eq!(models["data"][0]["object"], "model");

    let url = format!("{}/v1/chat/completions", upstream.base_url());
    for (body, status, param, code) in [
        (
            json!({"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]}),
            404,
            json!("model"),
            "model_not_found",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}]}),
            400,
            json!("model"),
            "missing_required_parameter",
        ),
        (
            json!({"model": "gpt-4o", "messages": "x"}),
            400,
            json!("messages"),
            "invalid_value",
        ),
    ] {
        let (got, _, text) = post(&url, &body).await;
        assert_eq!(got.as_u16(), status, "{text}");
        let error: Value = serde_json::from_str(&text).unwrap();
        let error = &error["error"];
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(error["type"], "invalid_request_error");
        assert_eq!(
            (&error["param"], error["code"].as_str().unwrap()),
            (&param, code)
        );
    }
    let not_json = client().post(&url).body("{").send().await.unwrap();
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);
    let elsewhere = client()
        .get(format!("{}/v1/nothing", upstream.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        upstream
            .seen
            .completions
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

#[tokio::test]
async fn a_metered_route_asks_the_price_of_the_request_and_sells_it() {
    let (gateway, upstream) = metered().await;
    let small = chat("gpt-4o-mini", "say hello to the gateway", 10);
    let large = chat("gpt-4o-mini", "say hello to the gateway", 2000);
    let dear = chat("gpt-4o", "say hello to the gateway", 2000);
    let defaulted =
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    let (_, answer) = challenge(&gateway, &small).await;
    // 12 prompt tokens (3 + 3 + "user" + 5 words of one token each) × 2 + 10 × 8 msat-per-1k
    // units: 0.104 sats, rounded up to 1.
    assert_eq!(answer.json["amount_sats"], 1);
    assert_eq!(answer.json["price"]["input_tokens"], 12);
    assert_eq!(answer.json["price"]["output_tokens"], 10);
    assert_eq!(answer.json["price"]["model"], "gpt-4o-mini");
    // 12 × 2 + 2000 × 8 = 16024 → 17 sats; gpt-4o: 12 × 10 + 2000 × 40 → 81; the default cap.
    assert_eq!(challenge(&gateway, &large).await.1.json["amount_sats"], 17);
    assert_eq!(challenge(&gateway, &dear).await.1.json["amount_sats"], 81);
    assert_eq!(
        challenge(&gateway, &defaulted).await.1.json["price"]["output_tokens"],
        256
    );

    // Paid, it is forwarded and answered; the usage is the upstream's, the prompt counted as
    // the price counted it.
    let credential = paid(&gateway, &small).await;
    let answer = ask(&gateway, Some(&credential), &small).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.header("x-l402"), Some("spent"));
    let usage = Usage::from_answer(answer.text.as_bytes()).unwrap();
    assert_eq!(usage.prompt_tokens, 12);
    assert!(usage.completion_tokens <= 10);
    assert!(
        upstream.seen.last_authorization.lock().unwrap().is_none(),
        "the credential stays at the gateway"
    );
    assert!(upstream.seen.last_payment_hash.lock().unwrap().is_some());

    // The catalog gives the rule and its table; the OpenAPI document says the amount is the
    // 402's, with the rule beside it.
    let catalog = gateway.get("/.well-known/l402.json", None).await.json;
    let service = &catalog["services"][0];
    assert_eq!(service["pricing"]["model"], "metered");
    assert_eq!(service["pricing"]["per"], "openai-tokens");
    assert_eq!(
        service["pricing"]["rule"]["models"]["gpt-4o"]["output_per_1k"],
        40
    );
    assert_eq!(service["pricing"]["rule"]["max_tokens_ceiling"], 2048);
    assert!(
        service["caveats"]
            .as_array()
            .unwrap()
            .contains(&json!("chat_price_sats"))
    );
    let openapi = gateway.get("/openapi.json", None).await.json;
    let offer = &openapi["paths"][PATH]["post"]["x-payment-info"]["offers"][0];
    assert!(offer["amount"].is_null(), "{offer}");
    assert_eq!(
        offer["x-plannt-price-rule"]["models"]["gpt-4o-mini"]["input_per_1k"],
        2
    );
}

#[tokio::test]
async fn what_cannot_be_priced_is_refused_before_any_invoice() {
    let (gateway, upstream) = metered().await;
    let over = "word ".repeat(20_000);
    for (body, status, code) in [
        (chat("gpt-5", "hi", 10), 404, "model_not_found"),
        (
            chat("gpt-4o-mini", "hi", 2049),
            400,
            "max_tokens_above_ceiling",
        ),
        (
            json!({"messages": [{"role": "user", "content": "hi"}]}),
            400,
            "missing_required_parameter",
        ),
        (
            json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}),
            400,
            "unsupported_content",
        ),
        (chat("gpt-4o-mini", &over, 10), 413, "request_too_large"),
    ] {
        let answer = ask(&gateway, None, &body).await;
        assert_eq!(answer.status.as_u16(), status, "{answer:?}");
        assert_eq!(answer.json["error"]["code"], code, "{answer:?}");
        assert!(answer.json["error"]["message"].as_str().unwrap().len() > 10);
        assert!(
            answer.header("www-authenticate").is_none(),
            "no invoice: {answer:?}"
        );
        assert!(answer.json.get("invoice").is_none());
    }
    let not_json = gateway
        .http
        .post(gateway.url(PATH))
        .body("model=gpt-4o-mini")
        .send()
        .await
        .unwrap();
    let not_json = Answer::read(not_json).await;
    assert_eq!(not_json.status, StatusCode::BAD_REQUEST);
    assert_eq!(not_json.json["error"]["code"], "invalid_json");
    // A paid credential does not get past the price either.
    let credential = paid(&gateway, &chat("gpt-4o-mini", "hi", 10)).await;
    let refused = ask(&gateway, Some(&credential), &chat("gpt-5", "hi", 10)).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    let metrics = gateway.get("/metrics", None).await.text;
    assert!(
        metrics.contains("plannt_challenges_total{route=\"chat\"} 1"),
        "one invoice, for the paid request alone: {metrics}"
    );
    assert_eq!(
        upstream
            .seen
            .completions
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

#[tokio::test]
async fn an_l402_token_paid_for_a_cheap_request_cannot_buy_a_dearer_one() {
    let (gateway, upstream) = metered().await;
    let cheap = chat("gpt-4o-mini", "one two three", 100);
    let credential = paid(&gateway, &cheap).await;
    let paid_sats = price_of(&cheap);
    for dearer in [
        chat("gpt-4o-mini", "one two three", 2000),
        chat("gpt-4o-mini", &"one two three ".repeat(500), 100),
        chat("gpt-4o", "one two three", 100),
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "one two three"}], "max_tokens": 100, "n": 20}),
    ] {
        let price = price_of(&dearer);
        assert!(price > paid_sats, "{dearer}");
        let refused = ask(&gateway, Some(&credential), &dearer).await;
        assert_eq!(refused.status, StatusCode::PAYMENT_REQUIRED, "{refused:?}");
        assert_eq!(refused.reason(), Some("caveat_failed"));
        let message = refused.json["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("{paid_sats} sats; this one costs {price} sats")),
            "{message}"
        );
        // A new challenge at the price of this request.
        assert_eq!(refused.json["amount_sats"], price);
        Challenge::of(&refused);
    }
    assert_eq!(
        upstream
            .seen
            .completions
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    // Refusals spend nothing: the token still buys what it paid for, or a cheaper request.
    let cheaper = chat("gpt-4o-mini", "one", 50);
    assert!(price_of(&cheaper) <= paid_sats);
    let answer = ask(&gateway, Some(&credential), &cheaper).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    // Once: the next request with it is refused as spent.
    let again = ask(&gateway, Some(&credential), &cheap).await;
    assert_eq!(again.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(again.reason(), Some("spent"));
}

#[tokio::test]
async fn attenuation_cannot_widen_the_price_and_a_token_without_one_buys_nothing() {
    let (gateway, _upstream) = metered().await;
    let cheap = chat("gpt-4o-mini", "hi", 10);
    let dear = chat("gpt-4o-mini", "hi", 2000);
    let (challenge, _) = challenge(&gateway, &cheap).await;
    let preimage = gateway.pay(&challenge.invoice);
    // A holder appends a larger price: the minted one still binds.
    let widened = attenuate(&challenge.macaroon, "chat_price_sats=1000000");
    let refused = ask(&gateway, Some(&authorization(&widened, &preimage)), &dear).await;
    assert_eq!(refused.status, StatusCode::PAYMENT_REQUIRED, "{refused:?}");
    assert_eq!(refused.reason(), Some("caveat_failed"));
    // A price that is not a number refuses the token.
    let garbled = attenuate(&challenge.macaroon, "chat_price_sats=lots");
    let refused = ask(&gateway, Some(&authorization(&garbled, &preimage)), &cheap).await;
    assert_eq!(refused.reason(), Some("caveat_failed"));
    // A lower one only narrows: the cheap request still fits the one minted, not a lower one.
    let narrowed = attenuate(&challenge.macaroon, "chat_price_sats=0");
    let refused = ask(&gateway, Some(&authorization(&narrowed, &preimage)), &cheap).await;
    assert_eq!(refused.reason(), Some("caveat_failed"));

    // A genuine, paid token of this route without a price (as a fixed-price route mints) buys
    // nothing here.
    let (challenge, _) = self::challenge(&gateway, &cheap).await;
    let preimage = gateway.pay(&challenge.invoice);
    let bare = mint(&keys(), ROUTE, challenge.payment_hash, now() + 600);
    let refused = ask(&gateway, Some(&authorization(&bare, &preimage)), &cheap).await;
    assert_eq!(refused.status, StatusCode::PAYMENT_REQUIRED, "{refused:?}");
    assert_eq!(refused.reason(), Some("caveat_failed"));
    assert!(
        refused.json["message"]
            .as_str()
            .unwrap()
            .contains("no price_sats caveat")
    );
    // The minted token itself still works.
    let answer = ask(
        &gateway,
        Some(&authorization(&challenge.macaroon, &preimage)),
        &cheap,
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
}

#[tokio::test]
async fn mpp_and_x402_payments_are_bound_to_their_amount() {
    let (gateway, _upstream) = metered().await;
    let cheap = chat("gpt-4o-mini", "hi", 10);
    let dear = chat("gpt-4o-mini", "hi", 2000);
    let post = |header: (&'static str, String), body: &Value| {
        let request = gateway
            .http
            .post(gateway.url(PATH))
            .header(header.0, header.1)
            .json(body);
        async move { Answer::read(request.send().await.unwrap()).await }
    };

    // MPP: the challenge's amount is the price of the request it was made for.
    let answer = ask(&gateway, None, &cheap).await;
    let values: Vec<&str> = answer
        .headers
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    let mpp = PaymentChallenge::parse_all(values.iter().copied())
        .unwrap()
        .remove(0);
    assert_eq!(
        mpp.charge_request().unwrap().amount_sats(),
        Some(price_of(&cheap))
    );
    let preimage = gateway.pay(answer.json["invoice"].as_str().unwrap());
    let credential = PaymentCredential::charge(&mpp, &preimage).to_header_value();
    let refused = post(("authorization", credential.clone()), &dear).await;
    assert_eq!(refused.status, StatusCode::PAYMENT_REQUIRED, "{refused:?}");
    assert_eq!(
        refused.header("x-l402-reason"),
        Some("caveat_failed"),
        "{refused:?}"
    );
    let answer = post(("authorization", credential), &cheap).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert!(answer.header("payment-receipt").is_some());

    // x402: the offer's amount, likewise.
    let answer = ask(&gateway, None, &cheap).await;
    let required = PaymentRequired::decode(answer.header("payment-required").unwrap()).unwrap();
    assert_eq!(
        required.accepts[0].amount,
        (price_of(&cheap) * 1000).to_string()
    );
    gateway.pay(answer.json["invoice"].as_str().unwrap());
    let payload = PaymentPayload::exact(required.resource.clone(), &required.accepts[0]).encode();
    let refused = post(("payment-signature", payload.clone()), &dear).await;
    assert_eq!(refused.status, StatusCode::PAYMENT_REQUIRED, "{refused:?}");
    assert_eq!(refused.reason(), Some("caveat_failed"));
    let answer = post(("payment-signature", payload), &cheap).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert!(answer.header("payment-response").is_some());
}

#[tokio::test]
async fn a_metered_answer_streams_through_with_its_usage() {
    let (gateway, _upstream) = metered().await;
    let body = json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "stream these words please"}],
        "max_completion_tokens": 64,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    let credential = paid(&gateway, &body).await;
    let answer = ask(&gateway, Some(&credential), &body).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert!(
        answer
            .header("content-type")
            .unwrap()
            .starts_with("text/event-stream")
    );
    let usage = Usage::from_stream(answer.text.as_bytes()).unwrap();
    let quote = rule().price(&serde_json::to_vec(&body).unwrap()).unwrap();
    assert_eq!(usage.prompt_tokens, quote.input_tokens);
    assert!(usage.completion_tokens <= quote.output_tokens);
}

#[tokio::test]
async fn a_route_with_both_prices_or_a_bad_rule_does_not_start() {
    for (price_sats, rule) in [
        (Some(5), rule()),
        (
            None,
            PriceRule {
                default_max_tokens: 9000,
                ..rule()
            },
        ),
        (
            None,
            PriceRule {
                min_sats: 0,
                ..rule()
            },
        ),
    ] {
        let mut config = config("memory");
        config.routes = vec![RouteConfig {
            id: None,
            method: Some(Method::POST),
            path: PATH.into(),
            matching: MatchKind::Exact,
            price_sats,
            price: Some(rule),
            description: String::new(),
            upstream: Some("http://127.0.0.1:9".parse().unwrap()),
            handler: None,
            on_upstream_failure: None,
            dialects: None,
            free: None,
            rate_limit: None,
            session: None,
        }];
        let dir = tempfile::tempdir().unwrap();
        let Err(e) = plannt_serve::Gateway::build(config, dir.path().to_path_buf()).await else {
            panic!("the gateway started");
        };
        assert!(e.to_string().contains("routes[0]"), "{e}");
    }
}

#[tokio::test]
async fn a_price_rule_is_read_from_toml_with_prices_to_the_millisat() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plannt.toml");
    std::fs::write(
        &file,
        r#"
[[routes]]
id = "chat"
path = "/v1/chat/completions"
method = "POST"
upstream = "http://127.0.0.1:9"
price = { per = "openai-tokens", models = { "gpt-4o-mini" = { input_per_1k = 0.15, output_per_1k = 0.6 }, "gpt-4" = { input_per_1k = 30, output_per_1k = 60, tokenizer = "cl100k_base" } }, max_tokens_ceiling = 8192 }
"#,
    )
    .unwrap();
    let config = plannt_serve::Config::load(Some(&file), |_| None).unwrap();
    let rule = config.routes[0].price.as_ref().unwrap();
    assert_eq!(rule.models["gpt-4o-mini"].input_per_1k.msat, 150);
    assert_eq!(rule.models["gpt-4o-mini"].output_per_1k.msat, 600);
    assert_eq!(rule.encoding_of("gpt-4"), Some(Encoding::Cl100kBase));
    assert_eq!(
        (
            rule.default_max_tokens,
            rule.max_tokens_ceiling,
            rule.min_sats
        ),
        (1024, 8192, 1)
    );

    for bad in [
        "price = { per = \"openai-tokens\", models = { m = { input_per_1k = 0.0001, output_per_1k = 1 } } }",
        "price = { per = \"requests\", models = {} }",
        "price = { per = \"openai-tokens\", models = { m = { input_per_1k = 1, output_per_1k = 1 } }, colour = 1 }",
    ] {
        std::fs::write(
            &file,
            format!("[[routes]]\npath = \"/x\"\nupstream = \"http://127.0.0.1:9\"\n{bad}\n"),
        )
        .unwrap();
        let e = plannt_serve::Config::load(Some(&file), |_| None).unwrap_err();
        assert!(e.to_string().contains("plannt.toml"), "{e}");
    }
}

#[tokio::test]
async fn a_retry_of_a_paid_metered_request_gets_its_kept_answer() {
    let upstream = OpenAi::start().await;
    let mut config = crate::support::keeping_config("memory");
    config.routes = vec![RouteConfig {
        id: Some(ROUTE.into()),
        method: Some(Method::POST),
        path: PATH.into(),
        matching: MatchKind::Exact,
        price_sats: None,
        price: Some(rule()),
        description: String::new(),
        upstream: Some(upstream.base_url().parse().unwrap()),
        handler: None,
        on_upstream_failure: None,
        dialects: None,
        free: None,
        rate_limit: None,
        session: None,
    }];
    let gateway = start(config).await;
    let body = chat("gpt-4o-mini", "keep this answer", 20);
    let credential = paid(&gateway, &body).await;
    let first = ask(&gateway, Some(&credential), &body).await;
    assert_eq!(first.status, StatusCode::OK, "{first:?}");
    // The same credential and body again: the kept answer, the upstream not called again.
    let again = ask(&gateway, Some(&credential), &body).await;
    assert_eq!(again.status, StatusCode::OK, "{again:?}");
    assert_eq!(again.header("x-l402"), Some("replayed"));
    assert_eq!(again.text, first.text);
    assert_eq!(
        upstream
            .seen
            .completions
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    // Another body of the same price: refused as spent.
    let other = chat("gpt-4o-mini", "keep that answer", 20);
    assert_eq!(price_of(&other), price_of(&body));
    let refused = ask(&gateway, Some(&credential), &other).await;
    assert_eq!(refused.reason(), Some("spent"));
}
