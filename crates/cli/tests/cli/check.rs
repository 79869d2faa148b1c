//! `plannt check URL`: against `plannt serve` (every check passes, the JSON shape, the dialects of
//! each route, `--pay` in each dialect with its receipt and a refused replay), against the test
//! kit's hostile L402 server (a macaroon bound to another payment hash, an expired invoice, a
//! token accepted twice), and against a server crafted here whose 402s lie in the MPP request,
//! the x402 offer, the headers, the body or the catalog, or run past the read limits.

use std::net::SocketAddr;
use std::time::{Duration, UNIX_EPOCH};

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use plannt_client::l402::mpp::{ChargeRequest, MethodDetails, PaymentChallenge};
use plannt_client::l402::x402::{PaymentRequired, PaymentRequirements, ResourceInfo};
use plannt_client::l402::{Challenge, KeyRing, MintRequest, Network, RootKey};
use plannt_client::lightning::InvoiceRequest;
use plannt_client::lightning::dev::DevNetwork;
use serde_json::{Value, json};

use crate::cluster::Serve;
use crate::support::{Home, Scenario, Server, code, describe};

/// `plannt check ARGS` in `home`: the exit code and the JSON report (`--json` is added).
fn check_json(home: &Home, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["check", "--json"];
    all.extend_from_slice(args);
    let output = home.run(&all);
    let report = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", describe(&output)));
    (code(&output), report)
}

/// The findings of `check` (and `dialect`, `null` for none) with their results.
fn results(report: &Value, check: &str, dialect: Option<&str>) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == check && f["dialect"].as_str() == dialect)
        .map(|f| f["result"].as_str().unwrap().to_string())
        .collect()
}

/// The detail of the first failing finding of `check`, or a panic showing the report.
fn failing(report: &Value, check: &str) -> String {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == check && f["result"] == "fail")
        .unwrap_or_else(|| panic!("no failing {check}: {report:#}"))["detail"]
        .as_str()
        .unwrap()
        .to_string()
}

fn dialects(report: &Value) -> Vec<String> {
    report["offers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["dialect"].as_str().unwrap().to_string())
        .collect()
}

/// `plannt serve` with the demo service, its files under `home`.
/// `plannt serve` without kept answers: the probe's replay check sends the same request again,
/// which a gateway that keeps answers serves with the kept answer (`x-l402: replayed`).
fn gateway(home: &Home, args: &[&str]) -> Serve {
    Serve::start(
        &home.path().join("gateway"),
        args,
        &[("PLANNT_KEEP_ANSWER_BYTES", "0")],
    )
}

#[test]
fn every_check_passes_against_plannt_serve_and_the_json_has_its_documented_shape() {
    let home = Home::new();
    let serve = gateway(&home, &[]);
    let (status, report) = check_json(&home, &[&serve.url("/v1/demo")]);
    assert_eq!(status, 0, "{report:#}");
    assert_eq!(report["verdict"], "pass", "{report:#}");
    assert_eq!(report["status"], 402);
    assert_eq!(report["url"], serve.url("/v1/demo"));
    assert!(report["paid"].is_null());
    assert_eq!(dialects(&report), ["mpp", "l402", "x402"]);
    let offers = report["offers"].as_array().unwrap();
    for offer in offers {
        for key in [
            "invoice",
            "payment_hash",
            "amount_msat",
            "network",
            "expires_at",
        ] {
            assert!(!offer[key].is_null(), "{key} in {offer}");
        }
        assert_eq!(offer["amount_msat"], 21_000);
        assert_eq!(offer["network"], "regtest");
        assert_eq!(offer["payment_hash"], offers[0]["payment_hash"]);
    }
    for finding in report["findings"].as_array().unwrap() {
        let keys: Vec<&str> = finding
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 4, "{finding}");
        for key in ["check", "dialect", "result", "detail"] {
            assert!(finding.get(key).is_some(), "{key} in {finding}");
        }
        assert_eq!(finding["result"], "pass", "{finding}");
    }
    for (check, dialect) in [
        ("payment_hash", Some("l402")),
        ("amount", Some("mpp")),
        ("network", Some("x402")),
        ("max_timeout", Some("x402")),
        ("expires", Some("mpp")),
        ("same_invoice", None),
        ("body", None),
        ("catalog_price", None),
        ("catalog_dialects", None),
    ] {
        assert_eq!(
            results(&report, check, dialect),
            ["pass"],
            "{check} {dialect:?}"
        );
    }
    // Nothing secret in the report: no macaroon.
    let text = report.to_string();
    assert!(!text.contains("AgE"), "{text}");

    // The table, for people: aligned columns, a verdict line, no colours on a pipe.
    let output = home.run(&["check", &serve.url("/v1/demo")]);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    let table = String::from_utf8(output.stdout).unwrap();
    assert!(table.contains("RESULT  DIALECT  CHECK"), "{table}");
    assert!(
        table.trim_end().ends_with("(28 pass, 0 warn, 0 fail)"),
        "{table}"
    );
    assert!(!table.contains('\x1b'), "{table}");
}

#[test]
fn each_route_is_checked_for_the_dialects_it_offers() {
    let home = Home::new();
    let config = home.path().join("plannt.toml");
    std::fs::write(
        &config,
        r#"
[[routes]]
id = "status"
path = "/status"
handler = "status"

[[routes]]
id = "mpp-only"
path = "/v1/mpp"
price_sats = 5
handler = "demo"
dialects = ["mpp"]

[[routes]]
id = "two"
path = "/v1/two"
price_sats = 7
handler = "demo"
dialects = ["x402", "l402"]
"#,
    )
    .unwrap();
    let serve = gateway(&home, &["--config", config.to_str().unwrap()]);
    let (status, report) = check_json(&home, &[&serve.url("/v1/mpp")]);
    assert_eq!(
        (status, &report["verdict"]),
        (0, &json!("pass")),
        "{report:#}"
    );
    assert_eq!(dialects(&report), ["mpp"]);
    assert_eq!(report["offers"][0]["amount_msat"], 5_000);
    assert_eq!(results(&report, "catalog_dialects", None), ["pass"]);

    let (status, report) = check_json(&home, &[&serve.url("/v1/two")]);
    assert_eq!(
        (status, &report["verdict"]),
        (0, &json!("pass")),
        "{report:#}"
    );
    assert_eq!(dialects(&report), ["l402", "x402"]);

    // A dialect asked for and not offered fails, with exit status 8.
    let (status, report) = check_json(&home, &["--dialect", "mpp", &serve.url("/v1/two")]);
    assert_eq!(status, 8, "{report:#}");
    assert_eq!(report["verdict"], "fail");
    assert_eq!(
        failing(&report, "dialects"),
        "the 402 offers no mpp challenge"
    );
}

#[test]
fn pay_checks_the_receipt_and_a_replay_of_plannt_serve_is_refused() {
    let home = Home::new();
    let serve = gateway(&home, &[]);
    let wallet = format!("dev+http://127.0.0.1:{}", serve.port);
    let (status, report) = check_json(
        &home,
        &["--pay", "--wallet", &wallet, &serve.url("/v1/demo")],
    );
    assert_eq!(status, 0, "{report:#}");
    assert_eq!(report["verdict"], "pass", "{report:#}");
    let paid = &report["paid"];
    assert_eq!(paid["dialect"], "l402");
    assert_eq!(paid["status"], 200);
    assert_eq!(paid["amount_sats"], 21);
    assert_eq!(paid["reused_token"], false);
    assert_eq!(paid["replay_status"], 402);
    assert_eq!(paid["replay"], "refused");
    assert_eq!(paid["payment_hash"].as_str().unwrap().len(), 64);
    assert!(paid.get("preimage").is_none(), "{paid}");
    assert_eq!(results(&report, "receipt", Some("l402")), ["pass"]);
    // The payment is in the ledger, as any other.
    let recent = home.ledger().recent(10).unwrap();
    assert_eq!(recent.len(), 1);
    assert_eq!(
        recent[0].payment_hash,
        paid["payment_hash"].as_str().unwrap()
    );
    assert_eq!(recent[0].status, "paid");

    // A dialect the paying side may not pay (pay_dialects): refused (4), nothing paid, after
    // the report of the unpaid checks.
    let output = home
        .plannt(&[
            "check",
            "--pay",
            "--dialect",
            "mpp",
            "--wallet",
            &wallet,
            &serve.url("/v1/demo"),
        ])
        .env("PLANNT_PAY_DIALECTS", "l402")
        .output()
        .unwrap();
    assert_eq!(code(&output), 4, "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("verdict: pass"),
        "{}",
        describe(&output)
    );
    assert_eq!(home.ledger().recent(10).unwrap().len(), 1);
}

#[test]
fn pay_through_mpp_and_x402_checks_their_receipts_and_a_replay_is_refused() {
    let home = Home::new();
    let serve = gateway(&home, &[]);
    let wallet = format!("dev+http://127.0.0.1:{}", serve.port);
    for dialect in ["mpp", "x402"] {
        let output = home.run(&[
            "check",
            "--json",
            "--pay",
            "--dialect",
            dialect,
            "--wallet",
            &wallet,
            &serve.url("/v1/demo"),
        ]);
        assert_eq!(code(&output), 0, "{dialect}: {}", describe(&output));
        let report: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(report["verdict"], "pass", "{report:#}");
        let paid = &report["paid"];
        assert_eq!(paid["dialect"], dialect, "{report:#}");
        assert_eq!(paid["status"], 200);
        assert_eq!(paid["amount_sats"], 21);
        assert_eq!(paid["reused_token"], false);
        assert_eq!(paid["replay"], "refused", "{report:#}");
        assert_eq!(paid["replay_status"], 402, "{report:#}");
        assert_eq!(results(&report, "paid", Some(dialect)), ["pass"]);
        // Payment-Receipt's reference, PAYMENT-RESPONSE's transaction: the payment hash paid.
        assert_eq!(
            results(&report, "receipt", Some(dialect)),
            ["pass"],
            "{report:#}"
        );
        assert_eq!(results(&report, "replay", Some(dialect)), ["pass"]);
        // Paid once, through the dialect asked for; the ledger has it, as any other payment.
        let record = home
            .ledger()
            .recent(10)
            .unwrap()
            .into_iter()
            .find(|r| r.payment_hash == paid["payment_hash"].as_str().unwrap())
            .unwrap_or_else(|| panic!("not in the ledger: {report:#}"));
        assert_eq!(
            (record.status.as_str(), record.dialect.as_str()),
            ("paid", dialect)
        );
        // The credential replayed proves the payment: its preimage is on neither output.
        let preimage = record.preimage.unwrap();
        assert!(!describe(&output).contains(&preimage), "{dialect}");
    }
    assert_eq!(home.ledger().recent(10).unwrap().len(), 2);
}

#[test]
fn pay_reports_a_token_a_server_accepts_twice_as_reusable() {
    let server = Server::start(Scenario::Reusable { uses: 2 }, 21);
    let home = Home::new();
    let (status, report) = check_json(
        &home,
        &["--pay", "--wallet", &server.wallet(), &server.url("/paid")],
    );
    assert_eq!(report["paid"]["replay"], "served", "{report:#}");
    assert_eq!(report["paid"]["replay_status"], 200);
    assert_eq!(results(&report, "replay", Some("l402")), ["pass"]);
    // It says nothing of spent or released: a warning, not a failure.
    assert_eq!(results(&report, "receipt", Some("l402")), ["warn"]);
    assert_eq!(
        (status, &report["verdict"]),
        (0, &json!("warn")),
        "{report:#}"
    );
    assert_eq!(server.paid_count(), 1);
}

#[test]
fn a_macaroon_bound_to_another_payment_hash_fails_and_nothing_is_paid() {
    let server = Server::start(Scenario::HashMismatch, 21);
    let home = Home::new();
    let (status, report) = check_json(&home, &[&server.url("/paid")]);
    assert_eq!(status, 8, "{report:#}");
    let detail = failing(&report, "payment_hash");
    assert!(detail.contains("paying it buys no token"), "{detail}");
    assert_eq!(server.paid_count(), 0);
    // --pay: the client's own check refuses it (exit 4), after the report.
    let output = home.run(&[
        "check",
        "--pay",
        "--wallet",
        &server.wallet(),
        &server.url("/paid"),
    ]);
    assert_eq!(code(&output), 4, "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("verdict: fail"),
        "{}",
        describe(&output)
    );
    assert_eq!(server.paid_count(), 0);
}

#[test]
fn an_expired_invoice_fails() {
    let server = Server::start(Scenario::Expired, 21);
    let home = Home::new();
    let (status, report) = check_json(&home, &[&server.url("/paid")]);
    assert_eq!(status, 8, "{report:#}");
    let detail = failing(&report, "expiry");
    assert!(detail.starts_with("the invoice expired"), "{detail}");
}

/// A server whose 402s are wrong in the ways the probe must catch, with a catalog that
/// disagrees with it, on a runtime of its own.
struct Crafted {
    addr: SocketAddr,
    _runtime: tokio::runtime::Runtime,
}

impl Crafted {
    fn start() -> Crafted {
        let network = DevNetwork::ephemeral(1_000);
        let huge = huge_body(network.clone());
        let offer = move |mpp_sats: u64, x402_msat: u64| {
            let network = network.clone();
            move || {
                let network = network.clone();
                async move { crafted_402(&network, mpp_sats, x402_msat) }
            }
        };
        let router = Router::new()
            .route("/honest", get(offer(21, 21_000)))
            .route("/catalog-wrong", get(offer(21, 21_000)))
            .route("/mpp-amount", get(offer(22, 21_000)))
            .route("/x402-amount", get(offer(21, 20_000)))
            .route("/garbage", get(garbage))
            .route("/huge-body", get(huge))
            .route("/free", get(|| async { "free" }))
            .route(
                "/.well-known/l402.json",
                get(|| async {
                    axum::Json(json!({
                        "l402_version": "0",
                        "services": [
                            {"name": "wrong", "pricing": {"model": "fixed", "amount_sats": 99},
                             "endpoints": [{"method": "GET", "path": "/catalog-wrong"}],
                             "dialects": ["l402"]},
                            {"name": "mpp", "pricing": {"model": "fixed", "amount_sats": 21},
                             "endpoints": [{"method": "GET", "path": "/mpp-amount"}],
                             "dialects": ["l402", "mpp", "x402"]}
                        ]
                    }))
                }),
            );
        Crafted::serve(router)
    }

    /// Serves `router` on a free loopback port.
    fn serve(router: Router) -> Crafted {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        runtime.spawn(async move { axum::serve(listener, router).await });
        Crafted {
            addr,
            _runtime: runtime,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// A 402 for a fresh 21-sat invoice, in all three dialects, with the MPP request asking
/// `mpp_sats` and the x402 offer `x402_msat`.
fn crafted_402(network: &DevNetwork, mpp_sats: u64, x402_msat: u64) -> Response {
    let issued = network
        .create_invoice(&InvoiceRequest {
            amount_sats: 21,
            memo: "crafted".into(),
            expiry_secs: 600,
        })
        .unwrap();
    let hash = issued.payment_hash;
    let keys = KeyRing::single(RootKey::new([7; 32]));
    let macaroon = keys
        .mint(&MintRequest {
            payment_hash: hash,
            route: "crafted",
            valid_until: issued.expires_at + 3600,
            conditions: &[],
        })
        .unwrap();
    let request = ChargeRequest {
        amount: mpp_sats.to_string(),
        currency: "sat".into(),
        description: None,
        recipient: None,
        external_id: Some("crafted".into()),
        method_details: MethodDetails {
            invoice: issued.bolt11.clone(),
            payment_hash: Some(hash.to_hex()),
            network: Some("regtest".into()),
        },
    };
    let expires =
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(issued.expires_at))
            .to_string();
    let mpp = PaymentChallenge {
        id: "crafted".into(),
        realm: "crafted".into(),
        method: "lightning".into(),
        intent: "charge".into(),
        request: request.encode(),
        expires: Some(expires),
        ..PaymentChallenge::default()
    };
    let mut extra = serde_json::Map::new();
    extra.insert("paymentMethod".into(), json!("lightning"));
    extra.insert("invoice".into(), json!(issued.bolt11));
    extra.insert("paymentHash".into(), json!(hash.to_hex()));
    let x402 = PaymentRequired::new(
        ResourceInfo {
            url: "http://crafted/".into(),
            description: None,
            mime_type: None,
        },
        vec![PaymentRequirements {
            scheme: "exact".into(),
            network: Network::Regtest.caip2().into(),
            amount: x402_msat.to_string(),
            asset: Some("BTC".into()),
            pay_to: Some("anonymous".into()),
            max_timeout_seconds: Some(600),
            extra,
        }],
    );
    let mut headers = HeaderMap::new();
    let l402 = Challenge::new(macaroon, issued.bolt11.clone()).to_header_value();
    for value in [l402, mpp.to_header_value()] {
        headers.append(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_str(&value).unwrap(),
        );
    }
    headers.insert(
        "payment-required",
        HeaderValue::from_str(&x402.encode()).unwrap(),
    );
    let body = json!({"invoice": issued.bolt11, "payment_hash": hash.to_hex(), "amount_sats": 21});
    (StatusCode::PAYMENT_REQUIRED, headers, axum::Json(body)).into_response()
}

/// An honest 402 whose body runs to 200 KiB.
fn huge_body(network: DevNetwork) -> impl Fn() -> std::future::Ready<Response> + Clone {
    move || {
        let (parts, _) = crafted_402(&network, 21, 21_000).into_parts();
        let body = format!("{{\"pad\":\"{}\"}}", "x".repeat(200 * 1024));
        std::future::ready(Response::from_parts(parts, axum::body::Body::from(body)))
    }
}

async fn garbage() -> Response {
    let mut headers = HeaderMap::new();
    for value in [
        "L402 macaroon=\"%%% not base64\", invoice=\"lnbcrt1\"",
        "Payment id=\"x\", realm=\"r\"",
        "L402 macaroon=\"unterminated",
    ] {
        headers.append(header::WWW_AUTHENTICATE, HeaderValue::from_static(value));
    }
    headers.insert(
        "payment-required",
        HeaderValue::from_static("!!not base64!!"),
    );
    (StatusCode::PAYMENT_REQUIRED, headers, "<html>pay me</html>").into_response()
}

#[test]
fn an_mpp_request_asking_another_amount_than_its_invoice_fails() {
    let server = Crafted::start();
    let home = Home::new();
    let (status, report) = check_json(&home, &[&server.url("/mpp-amount")]);
    assert_eq!(status, 8, "{report:#}");
    assert_eq!(results(&report, "amount", Some("mpp")), ["fail"]);
    assert_eq!(
        failing(&report, "amount"),
        "the request says 22 sats but the invoice asks 21 sats"
    );
    // L402 and x402 agree with the invoice.
    assert_eq!(results(&report, "amount", Some("x402")), ["pass"]);
    assert_eq!(results(&report, "payment_hash", Some("l402")), ["pass"]);
    assert_eq!(results(&report, "catalog_price", None), ["pass"]);
}

#[test]
fn an_x402_offer_asking_another_amount_than_its_invoice_fails() {
    let server = Crafted::start();
    let home = Home::new();
    let (status, report) = check_json(&home, &[&server.url("/x402-amount")]);
    assert_eq!(status, 8, "{report:#}");
    assert_eq!(results(&report, "amount", Some("x402")), ["fail"]);
    assert_eq!(
        failing(&report, "amount"),
        "the offer says 20000 msat but the invoice asks 21000 msat"
    );
    assert_eq!(results(&report, "amount", Some("mpp")), ["pass"]);
}

#[test]
fn a_catalog_that_disagrees_with_the_402_fails_and_a_missing_route_warns() {
    let server = Crafted::start();
    let home = Home::new();
    let (status, report) = check_json(&home, &[&server.url("/catalog-wrong")]);
    assert_eq!(status, 8, "{report:#}");
    assert_eq!(
        failing(&report, "catalog_price"),
        "the catalog says 99 sats, the invoice asks 21"
    );
    assert_eq!(
        failing(&report, "catalog_dialects"),
        "the catalog lists l402, the 402 offers l402, mpp, x402"
    );
    // A route the catalog leaves out: a warning, and the exit status stays 0.
    let (status, report) = check_json(&home, &[&server.url("/honest")]);
    assert_eq!(status, 0, "{report:#}");
    assert_eq!(report["verdict"], "warn");
    assert_eq!(results(&report, "catalog", None), ["warn"]);
}

#[test]
fn garbage_headers_fail_with_the_parsers_words() {
    let server = Crafted::start();
    let home = Home::new();
    let (status, report) = check_json(&home, &[&server.url("/garbage")]);
    assert_eq!(status, 8, "{report:#}");
    assert!(
        report["offers"].as_array().unwrap().is_empty(),
        "{report:#}"
    );
    assert_eq!(results(&report, "parse", Some("l402")), ["fail", "fail"]);
    assert_eq!(results(&report, "parse", Some("mpp")), ["fail"]);
    assert_eq!(results(&report, "parse", Some("x402")), ["fail"]);
    assert_eq!(results(&report, "offers", None), ["fail"]);
    assert_eq!(results(&report, "body", None), ["warn"]);
    let text = report.to_string();
    for words in [
        "the macaroon is not valid base64",
        "the Payment challenge has no method parameter",
        "a quoted value in WWW-Authenticate never ends",
        "the x402 header is not base64",
    ] {
        assert!(text.contains(words), "{words}: {text}");
    }
}

#[test]
fn an_answer_that_is_not_a_402_fails_and_a_dead_port_is_a_network_error() {
    let server = Crafted::start();
    let home = Home::new();
    let (status, report) = check_json(&home, &[&server.url("/free")]);
    assert_eq!(status, 8, "{report:#}");
    assert_eq!(report["status"], 200);
    assert!(failing(&report, "status").starts_with("the server answered 200 OK, not 402"));
    let dead = format!("http://127.0.0.1:{}/x", plannt_testkit::dead_port());
    let output = home.run(&["check", &dead]);
    assert_eq!(code(&output), 7, "{}", describe(&output));
}

#[test]
fn a_host_name_that_resolves_to_a_private_address_is_refused_before_anything_is_sent() {
    let server = Crafted::start();
    let home = Home::new();
    let port = server.addr.port();
    let output = home.run(&[
        "check",
        "--resolve",
        &format!("api.example:{port}:127.0.0.1"),
        &format!("http://api.example:{port}/honest"),
    ]);
    assert_eq!(code(&output), 4, "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("loopback"), "{stderr}");
    // The URL naming the address itself is checked; --no-private-networks refuses it too.
    let output = home.run(&["check", "--no-private-networks", &server.url("/honest")]);
    assert_eq!(code(&output), 4, "{}", describe(&output));
}

#[test]
fn a_402_body_or_a_catalog_past_the_read_limits_is_reported_not_read_whole() {
    let server = Crafted::start();
    let home = Home::new();
    let (status, report) = check_json(&home, &[&server.url("/huge-body")]);
    // The challenges still check out; the body is cut at 64 KiB and said so.
    assert_eq!(results(&report, "body", None), ["warn"], "{report:#}");
    assert_eq!(results(&report, "amount", Some("mpp")), ["pass"]);
    assert_eq!(status, 0, "{report:#}");

    // A catalog of 2 MiB on the same origin as an honest 402: a failure, read no further.
    let network = DevNetwork::ephemeral(1_000);
    let router = Router::new()
        .route(
            "/paid",
            get(move || {
                let network = network.clone();
                async move { crafted_402(&network, 21, 21_000) }
            }),
        )
        .route(
            "/.well-known/l402.json",
            get(|| async {
                let pad = "x".repeat(2 * 1024 * 1024);
                axum::Json(json!({"l402_version": "0", "services": [], "pad": pad}))
            }),
        );
    let big = Crafted::serve(router);
    let (status, report) = check_json(&home, &[&big.url("/paid")]);
    assert_eq!(status, 8, "{report:#}");
    assert!(
        failing(&report, "catalog").contains("larger than"),
        "{report:#}"
    );
    assert_eq!(results(&report, "payment_hash", Some("l402")), ["pass"]);
}

/// One plain GET to `url` (a loopback `http://` URL), its status: spends a free request.
fn plain_get(url: &str) -> u16 {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer.split(' ').nth(1).unwrap().parse().unwrap()
}

/// The rule of the chat route below, as `plannt check` and `discover` give it.
fn assert_chat_rule(rule: &Value) {
    assert_eq!(
        rule["models"],
        json!({"gpt-4o-mini": {"input_per_1k": 2, "output_per_1k": 8}}),
        "{rule}"
    );
    assert_eq!(
        (
            &rule["default_max_tokens"],
            &rule["max_tokens_ceiling"],
            &rule["min_sats"]
        ),
        (&json!(256), &json!(2048), &json!(1)),
        "{rule}"
    );
}

/// A real `plannt serve` with a route priced by its tokens (in front of the test kit's
/// OpenAI-compatible upstream, rate limited, selling sessions) and a fixed-price route with a
/// free tier: `plannt check` shows each route's rule or price, this request's price by the
/// rule (which must be the invoice's), the free tier, the rate limit and the session deposit, in
/// JSON and in the table; `plannt mcp`'s `discover` shows the same from the catalog.
#[test]
fn check_and_discover_show_a_metered_rule_a_free_tier_a_rate_limit_and_sessions() {
    use crate::support::{Mcp, PAYER};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let upstream = runtime.block_on(plannt_testkit::openai::OpenAi::start());
    let home = Home::new();
    let config = home.path().join("plannt.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[routes]]
id = "status"
path = "/status"
handler = "status"

[[routes]]
id = "demo"
path = "/v1/demo"
handler = "demo"
price_sats = 21
free = {{ requests = 1, per = "1h" }}

[[routes]]
id = "chat"
method = "POST"
path = "/v1/chat/completions"
upstream = "http://{}"
price = {{ per = "openai-tokens", models = {{ "gpt-4o-mini" = {{ input_per_1k = 2, output_per_1k = 8 }} }}, default_max_tokens = 256, max_tokens_ceiling = 2048, min_sats = 1 }}
rate_limit = {{ requests = 100, per = "1m" }}
session = {{ deposit_sats = 300, idle_secs = 300 }}
"#,
            upstream.addr
        ),
    )
    .unwrap();
    let serve = gateway(&home, &["--config", config.to_str().unwrap()]);
    let chat = serve.url("/v1/chat/completions");
    let body =
        r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}],"max_tokens":16}"#;
    let args = [
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        body,
        &chat,
    ];

    let (status, report) = check_json(&home, &args);
    assert_eq!(
        (status, &report["verdict"]),
        (0, &json!("pass")),
        "{report:#}"
    );
    let pricing = &report["pricing"];
    assert_eq!(pricing["model"], "metered", "{report:#}");
    assert_eq!(pricing["per"], "openai-tokens");
    assert_chat_rule(&pricing["rule"]);
    // This request's price is the rule applied to it, and the invoice's.
    let quote = &pricing["quote"];
    assert_eq!(
        (&quote["model"], &quote["output_tokens"]),
        (&json!("gpt-4o-mini"), &json!(16))
    );
    let input = quote["input_tokens"].as_u64().unwrap();
    assert!(input > 0, "{quote}");
    let by_rule = (input * 2_000 + 16 * 8_000).div_ceil(1_000_000).max(1);
    assert_eq!(quote["sats"], by_rule);
    assert_eq!(report["offers"][0]["amount_msat"], by_rule * 1000);
    assert_eq!(results(&report, "catalog_price", None), ["pass"]);
    assert_eq!(
        pricing["rate_limit"],
        json!({"requests": 100, "per_secs": 60})
    );
    assert_eq!(pricing["free"], Value::Null);
    assert_eq!(
        pricing["session"],
        json!({"deposit_sats": 300, "idle_secs": 300})
    );

    let output = home.run(&[
        "check", args[0], args[1], args[2], args[3], args[4], args[5], &chat,
    ]);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    let table = String::from_utf8(output.stdout).unwrap();
    for line in [
        "price:    metered, openai-tokens per 1k input/output tokens: gpt-4o-mini 2/8 sats; output priced at max_tokens (256 when unset, at most 2048); at least 1 sat\n".to_string(),
        format!("          this request: {by_rule} sats (gpt-4o-mini, {input} input tokens, 16 output tokens at most)\n"),
        "limit:    100 requests per 60 s per client address, paid or not\n".into(),
        "session:  a 300 sats deposit, refunded less what was spent at close or after 300 s idle\n".into(),
    ] {
        assert!(table.contains(&line), "{line:?} in\n{table}");
    }
    assert!(!table.contains("free:"), "{table}");

    // The fixed route's free request spent, it answers 402: its price and free tier.
    let demo = serve.url("/v1/demo");
    assert_eq!(plain_get(&demo), 200, "the free request");
    let (status, report) = check_json(&home, &[&demo]);
    assert_eq!(
        (status, &report["verdict"]),
        (0, &json!("pass")),
        "{report:#}"
    );
    let pricing = &report["pricing"];
    assert_eq!(
        (&pricing["model"], &pricing["amount_sats"]),
        (&json!("fixed"), &json!(21))
    );
    assert_eq!(pricing["free"], json!({"requests": 1, "per_secs": 3600}));
    assert_eq!(
        (&pricing["rule"], &pricing["session"]),
        (&Value::Null, &Value::Null)
    );
    let output = home.run(&["check", &demo]);
    let table = String::from_utf8(output.stdout).unwrap();
    assert!(table.contains("price:    21 sats per request\n"), "{table}");
    assert!(
        table.contains("free:     1 request per 3600 s per client address, before any payment\n"),
        "{table}"
    );

    // discover, through plannt mcp: the same, from the catalog.
    let wallet = format!("dev+http://127.0.0.1:{}?account={PAYER}", serve.port);
    let mut mcp = Mcp::start(
        &home,
        &[
            ("PLANNT_WALLET", &wallet),
            ("PLANNT_ALLOW_PRIVATE_NETWORKS", "true"),
        ],
    );
    let (error, result) = mcp.call("discover", json!({"url": chat}));
    assert!(!error, "{result}");
    assert_eq!(result["source"], "catalog", "{result}");
    let entry = &result["match"];
    assert_eq!(entry["service"], "chat", "{result}");
    assert_eq!(entry["per"], "openai-tokens");
    assert_chat_rule(&entry["price_rule"]);
    assert_eq!(
        entry["rate_limit"],
        json!({"requests": 100, "per_secs": 60})
    );
    assert_eq!(
        entry["session"],
        json!({"deposit_sats": 300, "idle_secs": 300})
    );
    let note = result["note"].as_str().unwrap();
    assert!(note.contains("priced by its tokens"), "{note}");
    assert!(note.contains("gpt-4o-mini 2/8 sats"), "{note}");
    assert!(note.contains("a 300 sats deposit"), "{note}");
    let (error, result) = mcp.call("discover", json!({"url": demo}));
    assert!(!error, "{result}");
    let entry = &result["match"];
    assert_eq!(
        (&entry["service"], &entry["price_sats"]),
        (&json!("demo"), &json!(21))
    );
    assert_eq!(entry["free_tier"], json!({"requests": 1, "per_secs": 3600}));
    assert!(entry.get("price_rule").is_none(), "{entry}");
    assert!(
        result["note"]
            .as_str()
            .unwrap()
            .contains("21 sats per request; free for 1 request per 3600 s per client address"),
        "{result}"
    );
}
