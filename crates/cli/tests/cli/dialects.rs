//! `plannt get` against a `plannt serve` whose routes offer one dialect (`PLANNT_DIALECTS`):
//! it pays MPP or x402 as it pays L402, says which dialect it paid in (`-v`, the receipt line,
//! `--json`, `plannt ledger`), and `--dialect` narrows what it may pay: a dialect the gateway
//! does not offer is a refusal (exit 4) that pays nothing. `plannt mcp`'s `fetch` the same: the
//! agent's `dialects` narrows the operator's, never widens them.

use serde_json::{Value, json};

use crate::cluster::{Serve, decode};
use crate::support::{Home, Mcp, code, describe};

fn gateway(dir: &tempfile::TempDir, dialects: &str) -> Serve {
    Serve::start(
        &dir.path().join("gateway"),
        &["--store", "memory"],
        &[("PLANNT_DIALECTS", dialects)],
    )
}

#[test]
fn get_pays_a_gateway_that_offers_only_mpp_or_only_x402_and_says_so() {
    for dialect in ["mpp", "x402"] {
        let dir = tempfile::tempdir().unwrap();
        let serve = gateway(&dir, dialect);
        let home = Home::new();
        let wallet = format!("dev+http://127.0.0.1:{}", serve.port);
        let url = serve.url("/v1/demo");
        let output = home.run(&["get", "-v", "--json", "--wallet", &wallet, &url]);
        assert_eq!(code(&output), 0, "{dialect}: {}", describe(&output));
        let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(summary["status"], 200, "{summary}");
        assert_eq!(summary["dialect"], dialect, "{summary}");
        assert_eq!(summary["paid_sats"], 21, "{summary}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(&format!("dialect:  {dialect}")), "{stderr}");
        let output = home.run(&["get", "--wallet", &wallet, &url]);
        assert_eq!(code(&output), 0, "{}", describe(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!("paid 21 sats over {dialect}")),
            "{stderr}"
        );
        let output = home.run(&["ledger"]);
        let text = String::from_utf8_lossy(&output.stdout);
        let paid = text
            .lines()
            .filter(|l| l.contains(" paid ") && l.contains(&format!(" {dialect} ")))
            .count();
        assert_eq!(paid, 2, "{text}");
    }
}

#[test]
fn a_dialect_the_gateway_does_not_offer_is_refused_and_nothing_is_paid() {
    let dir = tempfile::tempdir().unwrap();
    let serve = gateway(&dir, "mpp");
    let home = Home::new();
    let wallet = format!("dev+http://127.0.0.1:{}", serve.port);
    let output = home.run(&[
        "get",
        "--dialect",
        "x402,l402",
        "--wallet",
        &wallet,
        &serve.url("/v1/demo"),
    ]);
    assert_eq!(code(&output), 4, "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the server offers mpp but this call may pay only x402, l402"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was paid"), "{stderr}");
    assert!(home.ledger().recent(10).unwrap().is_empty());

    // The setting binds too: --dialect cannot widen it.
    std::fs::write(
        home.path().join("config/config.toml"),
        "pay_dialects = [\"l402\"]\n",
    )
    .unwrap();
    let output = home.run(&[
        "get",
        "--dialect",
        "mpp",
        "--wallet",
        &wallet,
        &serve.url("/v1/demo"),
    ]);
    assert_eq!(code(&output), 4, "{}", describe(&output));
    assert!(home.ledger().recent(10).unwrap().is_empty());

    let output = home.run(&["get", "--dialect", "bolt12", &serve.url("/v1/demo")]);
    assert_eq!(code(&output), 2, "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("use l402, mpp or x402"), "{stderr}");
}

#[test]
fn mcp_fetch_pays_any_dialect_under_the_policy_and_the_agent_only_narrows() {
    let dir = tempfile::tempdir().unwrap();
    let serve = gateway(&dir, "x402");
    let home = Home::new();
    let wallet = format!("dev+http://127.0.0.1:{}", serve.port);
    let url = serve.url("/v1/demo");
    let mut mcp = Mcp::start(
        &home,
        &[
            ("PLANNT_WALLET", &wallet),
            ("PLANNT_ALLOW_PRIVATE_NETWORKS", "true"),
            ("PLANNT_CONFIRM_ABOVE_SATS", "none"),
            ("PLANNT_PAY_DIALECTS", "mpp,x402"),
        ],
    );
    let (error, result) = mcp.call("fetch", json!({"url": url}));
    assert!(!error, "{result}");
    assert_eq!(result["receipt"]["dialect"], "x402", "{result}");
    assert_eq!(result["receipt"]["amount_sats"], 21, "{result}");

    // The agent narrows to a dialect the server does not offer: refused, nothing paid.
    let (error, result) = mcp.call("fetch", json!({"url": url, "dialects": ["mpp"]}));
    assert!(error, "{result}");
    assert_eq!(result["error"], "no_dialect", "{result}");
    assert_eq!(result["paid"], false, "{result}");
    assert_eq!(result["offered"], json!(["x402"]), "{result}");
    // It cannot widen: L402 is not the operator's to pay here.
    let (error, result) = mcp.call("fetch", json!({"url": url, "dialects": ["l402", "x402"]}));
    assert!(!error, "{result}");
    assert_eq!(result["receipt"]["dialect"], "x402", "{result}");
    let (error, result) = mcp.call("fetch", json!({"url": url, "dialects": ["bolt12"]}));
    assert!(error, "{result}");
    assert_eq!(result["error"], "bad_argument", "{result}");
    let paid = home
        .ledger()
        .recent(10)
        .unwrap()
        .into_iter()
        .filter(|r| r.status == "paid")
        .map(|r| r.dialect)
        .collect::<Vec<_>>();
    assert_eq!(paid, ["x402", "x402"]);
}

#[test]
fn decode_reads_what_a_gateway_sends_in_each_dialect() {
    let dir = tempfile::tempdir().unwrap();
    let serve = gateway(&dir, "mpp,x402");
    let answer = tokio::runtime::Runtime::new().unwrap().block_on(async {
        crate::cluster::client()
            .get(serve.url("/v1/demo"))
            .send()
            .await
            .unwrap()
    });
    assert_eq!(answer.status(), 402);
    let header = |name: &str| answer.headers()[name].to_str().unwrap().to_string();
    let challenge = decode(
        dir.path(),
        &format!("WWW-Authenticate: {}", header("www-authenticate")),
    );
    assert_eq!(challenge["kind"], "mpp_challenge", "{challenge}");
    assert_eq!(challenge["request"]["amount"], "21", "{challenge}");
    assert_eq!(
        challenge["payment_hash_matches_invoice"], true,
        "{challenge}"
    );
    assert_eq!(challenge["invoice"]["amount_sats"], 21, "{challenge}");
    let required = decode(dir.path(), &header("payment-required"));
    assert_eq!(required["kind"], "x402_payment_required", "{required}");
    assert_eq!(required["accepts"][0]["amount_msat"], "21000", "{required}");
    assert_eq!(
        required["accepts"][0]["invoice"]["payment_hash"], challenge["invoice"]["payment_hash"],
        "one invoice for both dialects"
    );
}
