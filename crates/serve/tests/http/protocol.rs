//! The wire protocol of docs/protocol.md against a real gateway on loopback: the five steps of the
//! product page, every reason code, the schemes and encodings clients send, the rate limit, a
//! Lightning backend that is down, the free endpoints and CORS.

use std::net::Ipv4Addr;

use plannt_gateway::l402::{KeyRing, Macaroon, PaymentHash, Preimage, RootKey};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{
    Answer, Challenge, authorization, client_from, config, dead_port, key_id, keys, mint, now,
    payment_hash, start,
};

/// Asserts a 401 of docs/protocol.md (2.4): the reason in the body and the header, no invoice.
fn assert_refused(answer: &Answer, reason: &str) {
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{answer:?}");
    assert_eq!(answer.json["error"], "Unauthorized", "{answer:?}");
    assert_eq!(answer.reason(), Some(reason), "{answer:?}");
    assert_eq!(answer.header("x-l402-reason"), Some(reason));
    assert!(
        answer.json["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{answer:?}"
    );
    assert!(answer.header("www-authenticate").is_none(), "{answer:?}");
    assert!(answer.json.get("invoice").is_none(), "{answer:?}");
}

/// Asserts a 402 that refuses a genuine credential: the reason, and a fresh challenge whose
/// payment hash differs from `old_hash`.
fn assert_pay_again(answer: &Answer, reason: &str, old_hash: PaymentHash) -> Challenge {
    let challenge = Challenge::of(answer);
    assert_eq!(answer.reason(), Some(reason), "{answer:?}");
    assert_eq!(answer.header("x-l402-reason"), Some(reason));
    assert_ne!(
        challenge.payment_hash, old_hash,
        "the 402 carries a fresh invoice"
    );
    challenge
}

#[tokio::test]
async fn the_five_steps_of_the_product_page() {
    let gateway = start(config("memory")).await;

    // 1. A request without a credential: 402 with the challenge.
    let first = gateway.get("/v1/demo", None).await;
    let challenge = Challenge::of(&first);
    assert_eq!(first.header("cache-control"), Some("no-store"));
    assert!(
        first
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json"))
    );
    let body = &first.json;
    assert_eq!(body["error"], "Payment Required");
    assert_eq!(body["amount_sats"], 21);
    assert_eq!(body["format"], "L402 <macaroon>:<preimage>");
    assert!(
        body.get("reason").is_none(),
        "a first challenge has no reason"
    );
    assert!(
        body["macaroon"].as_str().unwrap().starts_with("AgE"),
        "standard base64 of a V2 macaroon"
    );
    let invoice = plannt_gateway::lightning::decode_invoice(&challenge.invoice).unwrap();
    assert_eq!(invoice.amount_msat, Some(21_000));
    let expires_at = humantime::parse_rfc3339(body["expires_at"].as_str().unwrap())
        .expect("expires_at is RFC 3339");
    let expires_at = expires_at
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(expires_at, invoice.expires_at());
    assert!(expires_at > now(), "the invoice is payable");

    // 2. Pay the invoice.
    let preimage = gateway.pay(&challenge.invoice);

    // 3. Retry with the credential: the protected answer, and the token is spent.
    let credential = authorization(&challenge.macaroon, &preimage);
    let paid = gateway.get("/v1/demo", Some(&credential)).await;
    assert_eq!(paid.status, StatusCode::OK, "{paid:?}");
    assert_eq!(paid.json, json!({ "result": "verified" }));
    assert_eq!(paid.header("x-l402"), Some("spent"));

    // 4. Replay: 402, reason spent, with a fresh invoice to pay.
    let replay = gateway.get("/v1/demo", Some(&credential)).await;
    let fresh = assert_pay_again(&replay, "spent", challenge.payment_hash);
    assert_eq!(replay.header("cache-control"), Some("no-store"));
    assert_eq!(replay.json["amount_sats"], 21);
    assert!(replay.header("x-l402").is_none(), "nothing was spent");

    // 5. The fresh invoice buys exactly one more answer.
    let preimage = gateway.pay(&fresh.invoice);
    let again = gateway
        .get("/v1/demo", Some(&authorization(&fresh.macaroon, &preimage)))
        .await;
    assert_eq!(again.status, StatusCode::OK, "{again:?}");

    // And /metrics counted it all.
    let metrics = gateway.get("/metrics", None).await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(
        metrics
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain"))
    );
    for line in [
        "plannt_challenges_total{route=\"demo\"} 2",
        "plannt_tokens_accepted_total{route=\"demo\"} 2",
        "plannt_sats_earned_total{route=\"demo\"} 42",
        "plannt_rejections_total{reason=\"spent\"} 1",
        "plannt_challenges_total{route=\"data\"} 0",
        "plannt_rate_limited_total 0",
    ] {
        assert!(
            metrics.text.lines().any(|l| l == line),
            "/metrics lacks {line:?}:\n{}",
            metrics.text
        );
    }
}

#[tokio::test]
async fn the_data_route_costs_100_and_answers_its_payload() {
    let gateway = start(config("memory")).await;
    let answer = gateway.get("/v1/data", None).await;
    let challenge = Challenge::of(&answer);
    assert_eq!(answer.json["amount_sats"], 100);
    let preimage = gateway.pay(&challenge.invoice);
    let paid = gateway
        .get(
            "/v1/data",
            Some(&authorization(&challenge.macaroon, &preimage)),
        )
        .await;
    assert_eq!(paid.status, StatusCode::OK, "{paid:?}");
    assert_eq!(paid.json["result"], "verified");
    assert!(paid.json["data"]["points"].is_array());
}

#[tokio::test]
async fn a_credential_that_does_not_parse_is_malformed() {
    let gateway = start(config("memory")).await;
    let (macaroon, preimage) = gateway.token("/v1/demo").await;
    for value in [
        "L402 !!!not-base64!!!:00".to_string(),
        format!("L402 {macaroon}"),
        format!("L402 {macaroon}:{}", &preimage.to_hex()[..62]),
        format!("L402 :{}", preimage.to_hex()),
        // A macaroon that decodes but whose identifier is not Aperture's 66 bytes.
        format!(
            "L402 {}:{}",
            Macaroon::new(
                &RootKey::from_hex(crate::support::ROOT_KEY).unwrap(),
                None,
                b"short"
            )
            .to_base64(),
            preimage.to_hex()
        ),
    ] {
        let answer = gateway.get("/v1/demo", Some(&value)).await;
        assert_refused(&answer, "malformed");
    }
    // None of that spent the token.
    let paid = gateway
        .get("/v1/demo", Some(&authorization(&macaroon, &preimage)))
        .await;
    assert_eq!(paid.status, StatusCode::OK, "{paid:?}");
}

#[tokio::test]
async fn a_tampered_caveat_is_a_bad_signature() {
    let gateway = start(config("memory")).await;
    let (macaroon, preimage) = gateway.token("/v1/demo").await;

    // Push the expiry out by changing one digit of `demo_valid_until=<unix>`.
    let mut bytes = Macaroon::from_base64(&macaroon).unwrap().to_binary();
    let at = bytes
        .windows(17)
        .position(|w| w == b"demo_valid_until=")
        .expect("the token carries its expiry")
        + 17;
    assert!(bytes[at].is_ascii_digit());
    bytes[at] = if bytes[at] == b'9' {
        b'8'
    } else {
        bytes[at] + 1
    };
    let tampered = Macaroon::from_binary(&bytes).unwrap().to_base64();
    let answer = gateway
        .get("/v1/demo", Some(&authorization(&tampered, &preimage)))
        .await;
    assert_refused(&answer, "bad_signature");

    // Widening the route by rewriting `services=demo:0` is refused the same way.
    let mut bytes = Macaroon::from_base64(&macaroon).unwrap().to_binary();
    let at = bytes
        .windows(15)
        .position(|w| w == b"services=demo:0")
        .unwrap();
    bytes[at + 9..at + 13].copy_from_slice(b"data");
    let tampered = Macaroon::from_binary(&bytes).unwrap().to_base64();
    let answer = gateway
        .get("/v1/data", Some(&authorization(&tampered, &preimage)))
        .await;
    assert_refused(&answer, "bad_signature");

    // The genuine token is untouched by all that.
    let paid = gateway
        .get("/v1/demo", Some(&authorization(&macaroon, &preimage)))
        .await;
    assert_eq!(paid.status, StatusCode::OK, "{paid:?}");
}

#[tokio::test]
async fn a_token_signed_with_another_key_under_our_key_id_is_a_bad_signature() {
    let gateway = start(config("memory")).await;
    let (hash, preimage) = gateway.paid_hash("/v1/demo").await;
    let mut forger = KeyRing::new();
    forger.add(&key_id(), RootKey::new([0x42; 32])).unwrap();
    let forged = mint(&forger, "demo", hash, now() + 600);
    let answer = gateway
        .get("/v1/demo", Some(&authorization(&forged, &preimage)))
        .await;
    assert_refused(&answer, "bad_signature");
}

#[tokio::test]
async fn a_preimage_that_does_not_pay_the_token_is_a_bad_preimage() {
    let gateway = start(config("memory")).await;
    let challenge = gateway.challenge("/v1/demo").await;
    // Unpaid: any preimage is a guess.
    let answer = gateway
        .get(
            "/v1/demo",
            Some(&authorization(&challenge.macaroon, &Preimage::new([7; 32]))),
        )
        .await;
    assert_refused(&answer, "bad_preimage");
    // The preimage of another payment does not pay this one either.
    let (_, other_preimage) = gateway.token("/v1/demo").await;
    let answer = gateway
        .get(
            "/v1/demo",
            Some(&authorization(&challenge.macaroon, &other_preimage)),
        )
        .await;
    assert_refused(&answer, "bad_preimage");
}

#[tokio::test]
async fn an_expired_token_gets_a_fresh_challenge() {
    let gateway = start(config("memory")).await;
    let (hash, preimage) = gateway.paid_hash("/v1/demo").await;
    // Minted by the gateway's own key, paid for, but past its valid_until.
    let expired = mint(&keys(), "demo", hash, now() - 1);
    let answer = gateway
        .get("/v1/demo", Some(&authorization(&expired, &preimage)))
        .await;
    assert_pay_again(&answer, "expired", hash);
    // The same payment under a token that has not expired works: only the expiry was wrong.
    let fine = mint(&keys(), "demo", hash, now() + 600);
    let answer = gateway
        .get("/v1/demo", Some(&authorization(&fine, &preimage)))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
}

#[tokio::test]
async fn a_token_expires_with_the_configured_lifetimes() {
    let mut config = config("memory");
    config.invoice_expiry_secs = 2;
    config.token_lifetime_secs = 1;
    let gateway = start(config).await;
    let (macaroon, preimage) = gateway.token("/v1/demo").await;
    let caveats = String::from_utf8_lossy(&Macaroon::from_base64(&macaroon).unwrap().to_binary())
        .into_owned();
    let valid_until: u64 = caveats
        .split("demo_valid_until=")
        .nth(1)
        .unwrap()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap();
    assert!(
        valid_until <= now() + 3,
        "minted for invoice expiry + token lifetime"
    );
    while now() <= valid_until {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let answer = gateway
        .get("/v1/demo", Some(&authorization(&macaroon, &preimage)))
        .await;
    assert_pay_again(&answer, "expired", PaymentHash([0; 32]));
}

#[tokio::test]
async fn a_token_for_another_route_is_wrong_route() {
    let gateway = start(config("memory")).await;
    let (macaroon, preimage) = gateway.token("/v1/demo").await;
    let hash = payment_hash(&macaroon);
    let credential = authorization(&macaroon, &preimage);
    let answer = gateway.get("/v1/data", Some(&credential)).await;
    let fresh = assert_pay_again(&answer, "wrong_route", hash);
    assert_eq!(
        answer.json["amount_sats"], 100,
        "the challenge is for /v1/data"
    );
    assert!(
        String::from_utf8_lossy(&Macaroon::from_base64(&fresh.macaroon).unwrap().to_binary())
            .contains("services=data:0")
    );
    // Refused there, it still buys the route it was minted for.
    let answer = gateway.get("/v1/demo", Some(&credential)).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
}

#[tokio::test]
async fn a_token_of_a_key_we_do_not_hold_is_unknown_key() {
    let gateway = start(config("memory")).await;
    let (hash, preimage) = gateway.paid_hash("/v1/demo").await;
    let mut retired = KeyRing::new();
    retired.add("retired", RootKey::new([9; 32])).unwrap();
    let token = mint(&retired, "demo", hash, now() + 600);
    let answer = gateway
        .get("/v1/demo", Some(&authorization(&token, &preimage)))
        .await;
    assert_pay_again(&answer, "unknown_key", hash);
}

#[tokio::test]
async fn a_caveat_we_did_not_mint_is_refused_with_a_fresh_challenge() {
    let gateway = start(config("memory")).await;
    let (macaroon, preimage) = gateway.token("/v1/demo").await;
    // Anyone may add a caveat, and the signature still verifies; we do not know this one.
    let mut narrowed = Macaroon::from_base64(&macaroon).unwrap();
    narrowed.add_first_party_caveat(b"demo_color=blue");
    let hash = payment_hash(&macaroon);
    let answer = gateway
        .get(
            "/v1/demo",
            Some(&authorization(&narrowed.to_base64(), &preimage)),
        )
        .await;
    assert_pay_again(&answer, "caveat_failed", hash);
}

/// Writes a credential header from a macaroon (standard base64) and a preimage.
type Spelling = Box<dyn Fn(&str, &Preimage) -> String>;

#[tokio::test]
async fn every_scheme_spelling_and_base64_flavour_is_accepted() {
    let gateway = start(config("memory")).await;
    let url_safe = |m: &str| m.replace('+', "-").replace('/', "_");
    let cases: Vec<(&str, Spelling)> = vec![
        ("LSAT", Box::new(|m, p| format!("LSAT {m}:{}", p.to_hex()))),
        (
            "lowercase l402",
            Box::new(|m, p| format!("l402 {m}:{}", p.to_hex())),
        ),
        (
            "lowercase lsat",
            Box::new(|m, p| format!("lsat {m}:{}", p.to_hex())),
        ),
        (
            "URL-safe base64",
            Box::new(move |m, p| format!("L402 {}:{}", url_safe(m), p.to_hex())),
        ),
        (
            "URL-safe base64 without padding",
            Box::new(move |m, p| {
                format!("L402 {}:{}", url_safe(m).trim_end_matches('='), p.to_hex())
            }),
        ),
        (
            "standard base64 without padding",
            Box::new(|m, p| format!("L402 {}:{}", m.trim_end_matches('='), p.to_hex())),
        ),
        (
            "uppercase preimage",
            Box::new(|m, p| format!("L402 {m}:{}", p.to_hex().to_uppercase())),
        ),
    ];
    for (name, spell) in cases {
        let (macaroon, preimage) = gateway.token("/v1/demo").await;
        let answer = gateway
            .get("/v1/demo", Some(&spell(&macaroon, &preimage)))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{name}: {answer:?}");
        assert_eq!(answer.header("x-l402"), Some("spent"), "{name}");
    }
}

#[tokio::test]
async fn of_several_macaroons_the_paid_one_is_used() {
    let gateway = start(config("memory")).await;
    let (stranger, _) = gateway.token("/v1/demo").await;
    let (macaroon, preimage) = gateway.token("/v1/demo").await;
    let value = format!("L402 {stranger},{macaroon}:{}", preimage.to_hex());
    let answer = gateway.get("/v1/demo", Some(&value)).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    // The other macaroon was not spent by that.
    let replay = gateway.get("/v1/demo", Some(&value)).await;
    assert_eq!(replay.reason(), Some("spent"));
}

#[tokio::test]
async fn a_challenge_flood_is_limited_per_client_address() {
    let mut config = config("memory");
    config.challenges_per_second = 1.0;
    config.challenge_burst = 3;
    let gateway = start(config).await;
    let flooder = client_from(Ipv4Addr::LOCALHOST);
    let neighbour = client_from(Ipv4Addr::new(127, 0, 0, 2));

    let mut answers = Vec::new();
    for _ in 0..20 {
        let response = flooder.get(gateway.url("/v1/demo")).send().await.unwrap();
        let answer = Answer::read(response).await;
        let limited = answer.status == StatusCode::TOO_MANY_REQUESTS;
        answers.push(answer);
        if limited {
            break;
        }
    }
    // The burst is served: the first three are challenges.
    for answer in &answers[..3] {
        Challenge::of(answer);
    }
    let limited = answers.last().unwrap();
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "20 challenges in a row, none refused"
    );
    let retry_after: u64 = limited
        .header("retry-after")
        .expect("a 429 says when to come back")
        .parse()
        .unwrap();
    assert!(retry_after >= 1, "Retry-After: {retry_after}");
    assert!(limited.header("www-authenticate").is_none());
    assert!(limited.json.get("invoice").is_none());

    // Another address is not held back by the first one's flood.
    let response = neighbour.get(gateway.url("/v1/demo")).send().await.unwrap();
    Challenge::of(&Answer::read(response).await);

    // Only challenges are limited: the flooding address still spends a paid token.
    let response = neighbour.get(gateway.url("/v1/demo")).send().await.unwrap();
    let challenge = Challenge::of(&Answer::read(response).await);
    let preimage = gateway.pay(&challenge.invoice);
    let response = flooder
        .get(gateway.url("/v1/demo"))
        .header(
            "authorization",
            authorization(&challenge.macaroon, &preimage),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let metrics = gateway.get("/metrics", None).await;
    assert!(
        metrics
            .text
            .lines()
            .any(|l| l.starts_with("plannt_rate_limited_total ") && !l.ends_with(" 0")),
        "{}",
        metrics.text
    );
}

#[tokio::test]
async fn a_lightning_backend_that_is_down_gives_503_and_no_invoice() {
    let mut config = config("memory");
    config.lightning = format!("lnbits+http://127.0.0.1:{}?key=x", dead_port())
        .parse()
        .unwrap();
    config.demo_routes = true;
    let gateway = start(config).await;
    for (method, path) in [(Method::GET, "/v1/demo"), (Method::GET, "/v1/data")] {
        let answer = gateway.send(method, path, None, None).await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{answer:?}");
        assert_eq!(answer.reason(), Some("lightning_unavailable"));
        assert!(answer.header("www-authenticate").is_none());
        assert!(answer.json.get("invoice").is_none());
        assert!(answer.header("retry-after").is_some());
    }
    // /status tells a load balancer so.
    let status = gateway.get("/status", None).await;
    assert_eq!(status.status, StatusCode::SERVICE_UNAVAILABLE, "{status:?}");
    assert_eq!(status.json["lightning"]["reachable"], false);
    assert_eq!(status.json["lightning"]["backend"], "lnbits");
    assert_eq!(status.json["store"]["healthy"], true);
    let metrics = gateway.get("/metrics", None).await;
    assert!(
        metrics
            .text
            .lines()
            .any(|l| l == "plannt_invoice_failures_total 2"),
        "{}",
        metrics.text
    );
}

#[tokio::test]
async fn status_catalog_and_an_unoffered_route() {
    let gateway = start(config("sqlite")).await;

    let status = gateway.get("/status", None).await;
    assert_eq!(status.status, StatusCode::OK, "{status:?}");
    assert_eq!(status.json["status"], "ok");
    assert_eq!(status.json["lightning"]["reachable"], true);
    assert_eq!(status.json["lightning"]["backend"], "dev");
    assert_eq!(status.json["store"]["healthy"], true);
    assert_eq!(status.json["store"]["backend"], "sqlite");
    assert!(
        status.json["warning"]
            .as_str()
            .is_some_and(|w| w.contains("no real money")),
        "dev mode says so: {status:?}"
    );

    let catalog = gateway.get("/.well-known/l402.json", None).await;
    assert_eq!(catalog.status, StatusCode::OK, "{catalog:?}");
    let services = catalog.json["services"].as_array().unwrap();
    let price = |name: &str| {
        services
            .iter()
            .find(|s| s["name"] == name)
            .map(|s| s["pricing"]["amount_sats"].clone())
    };
    assert_eq!(price("demo"), Some(json!(21)));
    assert_eq!(price("data"), Some(json!(100)));
    assert_eq!(price("generate"), None, "not offered without an upstream");
    assert_eq!(catalog.json["payment"]["network"], "regtest");

    let generate = gateway
        .send(
            Method::POST,
            "/v1/generate",
            None,
            Some(json!({"prompt": "hello"})),
        )
        .await;
    assert_eq!(
        generate.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{generate:?}"
    );
    assert_eq!(generate.reason(), Some("route_unavailable"));
    assert!(generate.header("www-authenticate").is_none());
    assert!(generate.json.get("invoice").is_none());

    // A path no route serves is a plain 404, free.
    let nothing = gateway.get("/v1/nothing-here", None).await;
    assert_eq!(nothing.status, StatusCode::NOT_FOUND, "{nothing:?}");
}

#[tokio::test]
async fn cors_lets_a_browser_read_the_challenge() {
    let gateway = start(config("memory")).await;
    let preflight = gateway
        .http
        .request(Method::OPTIONS, gateway.url("/v1/demo"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    let preflight = Answer::read(preflight).await;
    assert!(preflight.status.is_success(), "{preflight:?}");
    assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));
    assert!(
        preflight
            .header("access-control-allow-headers")
            .is_some_and(|h| h.to_ascii_lowercase().contains("authorization")),
        "{preflight:?}"
    );
    assert!(preflight.header("access-control-allow-methods").is_some());
    assert!(
        preflight.header("www-authenticate").is_none(),
        "a preflight costs no invoice"
    );

    let challenge = gateway
        .http
        .get(gateway.url("/v1/demo"))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    let challenge = Answer::read(challenge).await;
    Challenge::of(&challenge);
    assert_eq!(challenge.header("access-control-allow-origin"), Some("*"));
    let exposed = challenge
        .header("access-control-expose-headers")
        .expect("the 402 exposes its headers")
        .to_ascii_lowercase();
    for name in ["www-authenticate", "x-l402-reason"] {
        assert!(exposed.contains(name), "{name} is not exposed: {exposed}");
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket() {
    let mut config = config("memory");
    config.challenges_per_second = 0.01;
    config.challenge_burst = 2;
    config.trusted_proxies = vec!["127.0.0.1".into()];
    let gateway = start(config).await;
    let balancer = client_from(Ipv4Addr::LOCALHOST);
    let stranger = client_from(Ipv4Addr::new(127, 0, 0, 2));
    let ask = |client: &reqwest::Client, forwarded_for: &str| {
        client
            .get(gateway.url("/v1/demo"))
            .header("x-forwarded-for", forwarded_for)
            .send()
    };

    // Through the trusted balancer: one client's flood does not hold back another client.
    for _ in 0..2 {
        Challenge::of(&Answer::read(ask(&balancer, "198.51.100.1").await.unwrap()).await);
    }
    let limited = Answer::read(ask(&balancer, "198.51.100.1").await.unwrap()).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    Challenge::of(&Answer::read(ask(&balancer, "198.51.100.2").await.unwrap()).await);

    // A client that is not a trusted proxy cannot escape its bucket by naming others.
    for name in ["203.0.113.1", "203.0.113.2"] {
        Challenge::of(&Answer::read(ask(&stranger, name).await.unwrap()).await);
    }
    let limited = Answer::read(ask(&stranger, "203.0.113.3").await.unwrap()).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
}
