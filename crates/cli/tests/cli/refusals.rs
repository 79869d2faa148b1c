//! `plannt get` against a hostile server: every check refuses with exit status 4, pays nothing
//! (the dev wallet's balance is unchanged), writes nothing to stdout, and the ledger (read by the
//! library and by `plannt ledger --json`) records the check that refused.

use crate::support::{Home, START_MSAT, Scenario, Server, code, describe};
use serde_json::Value;

const REFUSED: i32 = 4;

/// Runs `plannt get` of `/paid` with `extra` flags and environment, expects exit 4 and the
/// refusal of `check` recorded.
fn assert_refused(server: &Server, home: &Home, env: &[(&str, &str)], check: &str) {
    let wallet = server.wallet();
    let url = server.url("/paid");
    let mut command = home.plannt(&["get", "--wallet", &wallet, &url]);
    command.envs(env.iter().copied());
    let output = command.output().unwrap();
    assert_eq!(code(&output), REFUSED, "{}", describe(&output));
    assert!(output.stdout.is_empty(), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Where a request may go is checked before it is sent; the challenge, before paying.
    let refused = if check == "host_not_allowed" {
        "refused to send the request"
    } else {
        "refused to pay"
    };
    assert!(stderr.contains(refused), "{stderr}");
    if check == "host_not_allowed" {
        assert_eq!(
            server
                .shared()
                .requests
                .load(std::sync::atomic::Ordering::SeqCst),
            0,
            "a request reached a host that is not allowed"
        );
    }

    assert_eq!(server.balance(), START_MSAT, "the wallet paid");
    assert_eq!(server.paid_count(), 0);
    assert_eq!(
        server
            .shared()
            .paid_requests
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );

    let ledger = home.ledger();
    assert!(
        ledger.recent(10).unwrap().is_empty(),
        "a payment was reserved"
    );
    let refusals = ledger.refusals(10).unwrap();
    assert_eq!(
        refusals
            .iter()
            .map(|r| r.check.as_str())
            .collect::<Vec<_>>(),
        [check]
    );
    assert_eq!(refusals[0].path, "/paid");

    let shown = home.run(&["ledger", "--json"]);
    assert_eq!(code(&shown), 0, "{}", describe(&shown));
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["refusals"][0]["check"], check);
    assert_eq!(shown["receipts"], serde_json::json!([]));
}

#[test]
fn an_invoice_for_another_payment_hash_is_refused() {
    let server = Server::start(Scenario::HashMismatch, 21);
    assert_refused(&server, &Home::new(), &[], "hash_mismatch");
}

#[test]
fn an_amount_above_the_cap_is_refused() {
    let server = Server::start(Scenario::Honest, 21);
    let home = Home::new();
    assert_refused(
        &server,
        &home,
        &[("PLANNT_MAX_SATS_PER_REQUEST", "20")],
        "over_cap",
    );
}

#[test]
fn an_amount_above_max_sats_is_refused() {
    let server = Server::start(Scenario::Honest, 21);
    let home = Home::new();
    let output = home.run(&[
        "get",
        "--max-sats",
        "20",
        "--wallet",
        &server.wallet(),
        &server.url("/paid"),
    ]);
    assert_eq!(code(&output), REFUSED, "{}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("more than the 20 sats"));
    assert_eq!(server.balance(), START_MSAT);
    assert_eq!(home.ledger().refusals(10).unwrap()[0].check, "over_cap");
}

#[test]
fn an_amountless_invoice_is_refused() {
    let server = Server::start(Scenario::Amountless, 21);
    assert_refused(&server, &Home::new(), &[], "no_amount");
}

#[test]
fn a_mainnet_invoice_is_refused_by_a_regtest_wallet() {
    let server = Server::start(Scenario::Mainnet, 21);
    assert_refused(&server, &Home::new(), &[], "wrong_network");
}

#[test]
fn an_expired_invoice_is_refused() {
    let server = Server::start(Scenario::Expired, 21);
    assert_refused(&server, &Home::new(), &[], "expired");
}

#[test]
fn a_host_not_allowed_is_refused() {
    let server = Server::start(Scenario::Honest, 21);
    assert_refused(
        &server,
        &Home::new(),
        &[("PLANNT_ALLOWED_HOSTS", "api.example.com, *.plannt.com")],
        "host_not_allowed",
    );
}

#[test]
fn a_price_raised_after_a_dry_run_is_refused() {
    let server = Server::start(Scenario::PriceRises { step: 79 }, 21);
    let home = Home::new();
    let dry = home.run(&[
        "get",
        "--dry-run",
        "--json",
        "--wallet",
        &server.wallet(),
        &server.url("/paid"),
    ]);
    assert_eq!(code(&dry), 0, "{}", describe(&dry));
    let quote: Value = serde_json::from_slice(&dry.stdout).unwrap();
    assert_eq!(quote["dry_run"], true);
    assert_eq!(quote["price_sats"], 21);
    assert_refused(&server, &home, &[], "price_changed");
    let home2 = home.run(&["ledger", "--json"]);
    let shown: Value = serde_json::from_slice(&home2.stdout).unwrap();
    let detail = shown["refusals"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("21") && detail.contains("100"), "{detail}");
}
