//! Attacks on the `plannt` binary's client side, each a named test: `plannt get` and `plannt mcp`
//! (driven over stdio with plain JSON-RPC lines) against the hostile server of the client's tests,
//! whose dev network API (`/_plannt/dev/*`) is also the wallet they pay with. Each asserts the
//! exit status or tool error, that no sat moved, that no request reached the server when none
//! should, and what the ledger recorded.

use std::sync::atomic::Ordering;

use crate::support::{Home, Mcp, PAYER, START_MSAT, Scenario, Server, code, describe};
use serde_json::json;

const REFUSED: i32 = 4;

fn requests(server: &Server) -> u64 {
    server.shared().requests.load(Ordering::SeqCst)
}

fn checks(home: &Home) -> Vec<String> {
    let mut checks: Vec<String> = home
        .ledger()
        .refusals(100)
        .unwrap()
        .into_iter()
        .map(|r| r.check)
        .collect();
    checks.reverse();
    checks
}

/// A 600-sat invoice of the server's dev network, and the body of a `pay` of it by the payer.
fn pay_body(server: &Server) -> String {
    let invoice = server
        .hostile
        .network()
        .create_invoice(&plannt_client::lightning::InvoiceRequest {
            amount_sats: 600,
            memo: "the operator's".into(),
            expiry_secs: 600,
        })
        .unwrap();
    json!({"invoice": invoice.bolt11, "account": PAYER}).to_string()
}

#[test]
fn plannt_get_never_sends_a_request_to_the_wallets_own_api() {
    let server = Server::start(Scenario::Honest, 21);
    let home = Home::new();
    let wallet = server.wallet();
    let body = pay_body(&server);
    let port = server.hostile.addr.port();
    for url in [
        server.url("/_plannt/dev/pay"),
        format!("http://localhost:{port}/%5Fplannt/dev/pay"),
        format!("http://[::ffff:127.0.0.1]:{port}//_plannt/DEV/pay"),
    ] {
        let output = home.run(&[
            "post",
            "-H",
            "Content-Type: application/json",
            "-d",
            &body,
            "--wallet",
            &wallet,
            &url,
        ]);
        assert_eq!(code(&output), REFUSED, "{url}: {}", describe(&output));
        assert!(output.stdout.is_empty(), "{}", describe(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("refused to send the request")
                && stderr.contains("the wallet's own API"),
            "{stderr}"
        );
    }
    assert_eq!(requests(&server), 0, "a request reached the server");
    assert_eq!(server.balance(), START_MSAT, "the wallet paid");
    assert_eq!(server.paid_count(), 0);
    assert_eq!(checks(&home), ["wallet_api", "wallet_api", "wallet_api"]);

    // The gateway beside it, on the same address, is paid as in the README.
    let output = home.run(&["get", "--wallet", &wallet, &server.url("/paid")]);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert_eq!(server.balance(), START_MSAT - 21_000);
}

#[test]
fn plannt_get_refuses_private_addresses_when_told_to() {
    let server = Server::start(Scenario::Honest, 21);
    let home = Home::new();
    let wallet = server.wallet();
    let url = server.url("/paid");
    let output = home.run(&["get", "--no-private-networks", "--wallet", &wallet, &url]);
    assert_eq!(code(&output), REFUSED, "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refused to send the request: 127.0.0.1 is a loopback address"),
        "{stderr}"
    );
    let mut command = home.plannt(&["get", "--wallet", &wallet, &url]);
    command.env("PLANNT_ALLOW_PRIVATE_NETWORKS", "false");
    let output = command.output().unwrap();
    assert_eq!(code(&output), REFUSED, "{}", describe(&output));
    assert_eq!(requests(&server), 0, "a request reached the server");
    assert_eq!(server.balance(), START_MSAT);
    assert_eq!(checks(&home), ["private_network", "private_network"]);
}

#[test]
fn plannt_get_pays_plain_http_from_a_remote_host_only_when_allowed() {
    let server = Server::start(Scenario::Honest, 21);
    let home = Home::new();
    let wallet = server.wallet();
    let port = server.hostile.addr.port();
    let resolve = format!("api.example:{port}:127.0.0.1");
    let url = format!("http://api.example:{port}/paid");

    let output = home.run(&["get", "--resolve", &resolve, "--wallet", &wallet, &url]);
    assert_eq!(code(&output), REFUSED, "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refused to pay: the challenge came over plain http from api.example")
            && stderr.contains("--allow-insecure-http"),
        "{stderr}"
    );
    assert_eq!(server.balance(), START_MSAT, "the wallet paid");
    assert!(home.ledger().recent(10).unwrap().is_empty());
    assert_eq!(checks(&home), ["insecure_http"]);

    let output = home.run(&[
        "get",
        "--allow-insecure-http",
        "--resolve",
        &resolve,
        "--wallet",
        &wallet,
        &url,
    ]);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert_eq!(output.stdout, b"{\"result\":\"paid\"}");
    assert_eq!(server.balance(), START_MSAT - 21_000);
}

#[test]
fn plannt_mcp_cannot_pay_from_the_wallets_own_api_and_spending_shows_it() {
    let server = Server::start(Scenario::Honest, 21);
    let home = Home::new();
    let wallet = server.wallet();
    // As reported: allowed_hosts names another API, a 10-sat cap, a 50-sat daily budget.
    let mut mcp = Mcp::start(
        &home,
        &[
            ("PLANNT_WALLET", &wallet),
            ("PLANNT_ALLOWED_HOSTS", "api.example.com"),
            ("PLANNT_MAX_SATS_PER_REQUEST", "10"),
            ("PLANNT_BUDGET_DAILY_SATS", "50"),
        ],
    );
    // What reached the server so far: the wallet check at start, through the wallet's own API.
    let at_start = requests(&server);
    let (error, result) = mcp.call(
        "fetch",
        json!({"url": server.url("/_plannt/dev/pay"), "method": "POST", "body": pay_body(&server)}),
    );
    assert!(error, "{result}");
    assert_eq!(result["error"], "wallet_api", "{result}");
    assert_eq!(
        (result["paid"].clone(), result["sent"].clone()),
        (json!(false), json!(false))
    );
    let (_, spending) = mcp.call("spending", json!({}));
    assert_eq!(
        spending["recent_refusals"][0]["check"], "wallet_api",
        "{spending}"
    );
    assert_eq!(spending["allow_private_networks"], false, "{spending}");
    assert_eq!(requests(&server), at_start, "a request reached the server");
    assert_eq!(server.balance(), START_MSAT, "the operator's account paid");
    assert_eq!(server.paid_count(), 0);
}

#[test]
fn plannt_mcp_refuses_loopback_unless_the_operator_allows_it() {
    let server = Server::start(Scenario::Honest, 21);
    let home = Home::new();
    let wallet = server.wallet();
    let url = server.url("/paid");
    let at_start;
    {
        let mut mcp = Mcp::start(&home, &[("PLANNT_WALLET", &wallet)]);
        // What reached the server so far: the wallet check at start, through the wallet's API.
        at_start = requests(&server);
        let (error, result) = mcp.call("fetch", json!({"url": url}));
        assert!(error, "{result}");
        assert_eq!(result["error"], "private_network", "{result}");
        let (error, result) = mcp.call("discover", json!({"url": url}));
        assert!(error, "{result}");
        assert_eq!(result["error"], "private_network", "{result}");
    }
    assert_eq!(requests(&server), at_start, "a request reached the server");
    assert_eq!(server.balance(), START_MSAT);

    let mut mcp = Mcp::start(
        &home,
        &[
            ("PLANNT_WALLET", &wallet),
            ("PLANNT_ALLOW_PRIVATE_NETWORKS", "true"),
        ],
    );
    let (error, result) = mcp.call("fetch", json!({"url": url}));
    assert!(!error, "{result}");
    assert_eq!(result["receipt"]["amount_sats"], 21, "{result}");
    assert_eq!(server.balance(), START_MSAT - 21_000);
}
