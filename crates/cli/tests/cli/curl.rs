//! `plannt get` as curl: the body on stdout byte for byte (or in `-o FILE`), `--json`, `-i`,
//! `-d @file` and `-d -`, `-L`, `--dry-run` (the budgets checked too), exit 6 for an HTTP error
//! and 7 for an unreachable server, then `plannt ledger --json` and `plannt demo`.

use std::io::Write;
use std::process::Stdio;

use crate::support::{Home, START_MSAT, Scenario, Server, code, describe, random32};
use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Every byte value, then 64 KiB of random bytes.
fn binary_body() -> Vec<u8> {
    let mut body: Vec<u8> = (0..=255u8).collect();
    for _ in 0..2048 {
        body.extend_from_slice(&random32());
    }
    body
}

#[test]
fn a_binary_body_reaches_stdout_and_a_file_byte_for_byte() {
    let server = Server::start(Scenario::Honest, 21);
    let body = binary_body();
    server.shared().set_body(body.clone());
    let home = Home::new();
    let wallet = server.wallet();
    let url = server.url("/paid");

    let output = home.run(&["get", "--wallet", &wallet, &url]);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert!(output.stdout == body, "stdout differs from the body");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("paid 21 sats"), "{stderr}");

    let file = home.path().join("out.bin");
    let output = home.run(&[
        "get",
        "-s",
        "-o",
        file.to_str().unwrap(),
        "--wallet",
        &wallet,
        &url,
    ]);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert!(output.stdout.is_empty());
    assert!(output.stderr.is_empty(), "{}", describe(&output));
    assert!(std::fs::read(&file).unwrap() == body, "the file differs");
    assert_eq!(server.paid_count(), 2);
}

#[test]
fn json_summarizes_the_payment_and_carries_the_body() {
    let server = Server::start(Scenario::Honest, 21);
    let home = Home::new();
    let wallet = server.wallet();
    let url = server.url("/paid");

    let output = home.run(&["get", "--json", "--wallet", &wallet, &url]);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["status"], 200);
    assert_eq!(summary["paid_sats"], 21);
    assert_eq!(summary["fee_msat"], 0);
    assert_eq!(summary["reused_token"], false);
    assert_eq!(summary["content_type"], "application/octet-stream");
    assert_eq!(summary["body"], "{\"result\":\"paid\"}");
    assert!(summary["time_ms"].is_u64());
    let hash = hex::decode(summary["payment_hash"].as_str().unwrap()).unwrap();
    let preimage = hex::decode(summary["preimage"].as_str().unwrap()).unwrap();
    assert_eq!(Sha256::digest(&preimage).to_vec(), hash);
    assert_eq!(
        home.ledger().recent(1).unwrap()[0].payment_hash,
        summary["payment_hash"].as_str().unwrap()
    );

    // A body that is not UTF-8 comes as base64.
    let body = binary_body();
    server.shared().set_body(body.clone());
    let output = home.run(&["get", "--json", "--wallet", &wallet, &url]);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(summary.get("body").is_none());
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(summary["body_base64"].as_str().unwrap())
        .unwrap();
    assert!(decoded == body);
}

#[test]
fn include_prints_the_status_line_and_headers_before_the_body() {
    let server = Server::start(Scenario::Honest, 21);
    let home = Home::new();
    let output = home.run(&[
        "get",
        "-i",
        "--wallet",
        &server.wallet(),
        &server.url("/paid"),
    ]);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    let text = String::from_utf8(output.stdout.clone()).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let lines: Vec<&str> = head.split("\r\n").collect();
    assert!(lines.contains(&"x-l402: spent"), "{head}");
    assert!(lines.contains(&"x-hostile-method: GET"), "{head}");
    assert!(
        lines.contains(&"content-type: application/octet-stream"),
        "{head}"
    );
    assert_eq!(body, "{\"result\":\"paid\"}");
}

#[test]
fn data_comes_from_a_file_or_standard_input() {
    let server = Server::start(Scenario::Honest, 21);
    let home = Home::new();
    let wallet = server.wallet();
    let url = server.url("/echo");
    let sent = binary_body();
    let file = home.path().join("body.bin");
    std::fs::write(&file, &sent).unwrap();

    let from_file = format!("@{}", file.display());
    let output = home.run(&["get", "-i", "-d", &from_file, "--wallet", &wallet, &url]);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    let at = output
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap();
    let head = String::from_utf8_lossy(&output.stdout[..at]);
    assert!(head.contains("x-hostile-method: POST\r\n"), "{head}");
    assert!(
        output.stdout[at + 4..] == sent[..],
        "the echoed body differs"
    );

    let mut child = home
        .plannt(&["post", "-d", "-", "--wallet", &wallet, &url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = {
        let sent = sent.clone();
        std::thread::spawn(move || stdin.write_all(&sent).unwrap())
    };
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert!(output.stdout == sent, "the echoed body differs");
    assert_eq!(server.paid_count(), 2);
}

#[test]
fn location_follows_a_redirect_to_a_paid_resource() {
    let server = Server::start(Scenario::Honest, 21);
    let home = Home::new();
    let wallet = server.wallet();
    let url = server.url("/redirect");

    let output = home.run(&["get", "-i", "--wallet", &wallet, &url]);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.starts_with("HTTP/1.1 302 Found\r\n"), "{text}");
    assert!(text.contains("location: /paid\r\n"), "{text}");
    assert_eq!(server.paid_count(), 0);

    let output = home.run(&["get", "-L", "--wallet", &wallet, &url]);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert_eq!(output.stdout, b"{\"result\":\"paid\"}");
    assert_eq!(server.paid_count(), 1);
    assert_eq!(server.balance(), START_MSAT - 21_000);
}

#[test]
fn a_dry_run_shows_the_price_and_pays_nothing() {
    let server = Server::start(Scenario::Honest, 21);
    let home = Home::new();
    let wallet = server.wallet();
    let url = server.url("/paid");

    let output = home.run(&["get", "--dry-run", "--wallet", &wallet, &url]);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("costs 21 sats"), "{stderr}");
    assert!(stderr.contains("the budgets included"), "{stderr}");
    assert!(stderr.contains("nothing was paid"), "{stderr}");

    let output = home.run(&["get", "--dry-run", "--json", "--wallet", &wallet, &url]);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    let quote: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(quote["dry_run"], true);
    assert_eq!(quote["price_sats"], 21);
    assert_eq!(quote["network"], "regtest");
    assert_eq!(quote["would_reserve_sats"], 21 + 10);

    assert_eq!(server.balance(), START_MSAT);
    assert_eq!(server.paid_count(), 0);
    assert!(home.ledger().recent(10).unwrap().is_empty());
}

#[test]
fn a_dry_run_over_budget_exits_3_as_the_payment_would_and_reserves_nothing() {
    let server = Server::start(Scenario::Honest, 21);
    let home = Home::new();
    let wallet = server.wallet();
    let url = server.url("/paid");
    // 21 sats plus the fee reserve of 10: 31, and the day allows 30.
    let mut dry = home.plannt(&["get", "--dry-run", "--wallet", &wallet, &url]);
    let output = dry.env("PLANNT_BUDGET_DAILY_SATS", "30").output().unwrap();
    assert_eq!(code(&output), 3, "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("over budget: the day budget of 30 sats"),
        "{stderr}"
    );
    assert!(stderr.contains("needs 31"), "{stderr}");
    assert!(!stderr.contains("every check passed"), "{stderr}");
    let mut real = home.plannt(&["get", "--wallet", &wallet, &url]);
    let output = real.env("PLANNT_BUDGET_DAILY_SATS", "30").output().unwrap();
    assert_eq!(code(&output), 3, "{}", describe(&output));

    // Nothing was reserved or paid; both refusals are in the ledger.
    assert!(home.ledger().recent(10).unwrap().is_empty());
    let checks: Vec<String> = home
        .ledger()
        .refusals(10)
        .unwrap()
        .into_iter()
        .map(|r| r.check)
        .collect();
    assert_eq!(checks, ["over_budget", "over_budget"]);
    assert_eq!(server.paid_count(), 0);

    let mut dry = home.plannt(&["get", "--dry-run", "--json", "--wallet", &wallet, &url]);
    let output = dry.env("PLANNT_BUDGET_DAILY_SATS", "31").output().unwrap();
    assert_eq!(code(&output), 0, "{}", describe(&output));
    let quote: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(
        quote["checks_passed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c.as_str().unwrap().contains("budgets")),
        "{quote}"
    );
    assert!(home.ledger().recent(10).unwrap().is_empty());
}

#[test]
fn ledger_json_shows_receipts_totals_and_budgets() {
    let server = Server::start(Scenario::Honest, 21);
    let home = Home::new();
    let wallet = server.wallet();
    let url = server.url("/paid");
    let mut hashes = Vec::new();
    for _ in 0..2 {
        let output = home.run(&["get", "--json", "--wallet", &wallet, &url]);
        assert_eq!(code(&output), 0, "{}", describe(&output));
        let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
        hashes.push(summary["payment_hash"].as_str().unwrap().to_string());
    }

    let output = home.run(&["ledger", "--json"]);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    let ledger: Value = serde_json::from_slice(&output.stdout).unwrap();
    let origin = format!("http://{}", server.hostile.addr);
    let receipts = ledger["receipts"].as_array().unwrap();
    assert_eq!(receipts.len(), 2);
    for receipt in receipts {
        assert_eq!(receipt["status"], "paid");
        assert_eq!(receipt["amount_sats"], 21);
        assert_eq!(receipt["fee_msat"], 0);
        assert_eq!(receipt["origin"], origin.as_str());
        assert_eq!(receipt["path"], "/paid");
        assert!(hashes.contains(&receipt["payment_hash"].as_str().unwrap().to_string()));
        let preimage = hex::decode(receipt["preimage"].as_str().unwrap()).unwrap();
        assert_eq!(
            hex::encode(Sha256::digest(&preimage)),
            receipt["payment_hash"].as_str().unwrap()
        );
    }
    assert_eq!(
        ledger["totals"]["hosts"],
        serde_json::json!([[origin, 2, 42]])
    );
    assert_eq!(ledger["totals"]["days"][0][1], 2);
    assert_eq!(ledger["totals"]["days"][0][2], 42);
    assert_eq!(ledger["per_request_cap_sats"], 500);
    let day = ledger["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["window"] == "day")
        .unwrap();
    assert_eq!(day["limit_sats"], 5_000);
    assert_eq!(day["used_sats"], 42);
    assert_eq!(day["left_sats"], 5_000 - 42);
    assert_eq!(ledger["refusals"], serde_json::json!([]));
}

#[test]
fn the_demo_walks_the_five_steps_and_shows_the_ledger() {
    let home = Home::new();
    let output = home.run(&["demo"]);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    let text = String::from_utf8(output.stdout).unwrap();
    let steps = [
        "1. GET /v1/demo",
        "2. 402 Payment Required: 21 sats",
        "3. lightning.pay()",
        "4. GET /v1/demo",
        "5. 200 OK",
    ];
    let mut from = 0;
    for step in steps {
        let at = text[from..]
            .find(step)
            .unwrap_or_else(|| panic!("no {step:?} after byte {from}:\n{text}"));
        from += at + step.len();
    }
    assert!(text.contains("x-l402: spent"), "{text}");
    assert!(
        text.contains("402 Payment Required, reason: spent"),
        "{text}"
    );
    assert!(text.contains("latest payments"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains(" paid ") && l.contains(" 21 sats") && l.contains("/v1/demo")),
        "{text}"
    );
}

#[test]
fn an_http_error_exits_6_and_an_unreachable_server_exits_7() {
    let server = Server::start(Scenario::Honest, 21);
    let home = Home::new();
    // A credential of the user's own (-H) goes out as given: the server refuses it with 401.
    let output = home.run(&[
        "get",
        "-H",
        "Authorization: L402 AgE=:00",
        "--wallet",
        &server.wallet(),
        &server.url("/paid"),
    ]);
    assert_eq!(code(&output), 6, "{}", describe(&output));
    let body: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(body["error"], "Unauthorized");
    assert!(String::from_utf8_lossy(&output.stderr).contains("401"));
    assert_eq!(server.paid_count(), 0);

    // Nothing listens on the port of a server that has gone.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/paid", gone.local_addr().unwrap());
    drop(gone);
    let output = home.run(&["get", "--wallet", &server.wallet(), &url]);
    assert_eq!(code(&output), 7, "{}", describe(&output));
    assert!(output.stdout.is_empty());
    assert!(String::from_utf8_lossy(&output.stderr).contains("network error"));
}
