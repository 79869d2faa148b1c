//! The exit statuses: each one of the table produced by a real run of `plannt get` (and of
//! `plannt wallet pay`, which shares 4 and 5), and the table the same in `plannt --help`,
//! `plannt get --help` and the README.

use std::process::Output;

use plannt_lightning::InvoiceRequest;
use serde_json::Value;

use crate::support::{Home, Scenario, Server, code, describe};

/// Asserts that `output` exited with `status` and said `says` on stderr.
fn assert_exit(output: &Output, status: i32, says: &str) {
    assert_eq!(code(output), status, "{}", describe(output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(says),
        "{says:?} missing: {}",
        describe(output)
    );
    assert!(!stderr.contains("panicked"), "{}", describe(output));
}

/// `plannt get --wallet WALLET EXTRA…`.
fn get_with<'a>(wallet: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["get", "--wallet", wallet];
    args.extend_from_slice(extra);
    args
}

#[test]
fn every_exit_status_of_the_table_comes_from_a_real_run() {
    let server = Server::start(Scenario::Honest, 21);
    let home = Home::new();
    let wallet = server.wallet();
    let url = server.url("/paid");

    // 0: paid and answered.
    assert_exit(&home.run(&get_with(&wallet, &[&url])), 0, "paid 21 sats");
    assert_eq!(server.paid_count(), 1);

    // 1: a setting that cannot be used.
    let output = home
        .plannt(&get_with(&wallet, &[&url]))
        .env("PLANNT_MAX_SATS_PER_REQUEST", "lots")
        .output()
        .unwrap();
    assert_exit(&output, 1, "PLANNT_MAX_SATS_PER_REQUEST");

    // 2: bad usage, whether clap or plannt finds it.
    assert_exit(
        &home.run(&get_with(&wallet, &["--no-such-flag", &url])),
        2,
        "--no-such-flag",
    );
    assert_exit(&home.run(&["get"]), 2, "<URL>");
    assert_exit(
        &home.run(&get_with(&wallet, &["-H", "no colon", &url])),
        2,
        "Name: value",
    );
    assert_exit(
        &home.run(&get_with(&wallet, &["ftp://example.com/x"])),
        2,
        "only http://",
    );

    // 3: over a budget; 4: refused by a check. Nothing paid in either.
    let output = home
        .plannt(&get_with(&wallet, &[&url]))
        .env("PLANNT_BUDGET_DAILY_SATS", "10")
        .output()
        .unwrap();
    assert_exit(&output, 3, "budget");
    assert_exit(
        &home.run(&get_with(&wallet, &["--max-sats", "5", &url])),
        4,
        "refused",
    );
    assert_eq!(server.paid_count(), 1);

    // 5: the payment failed (the wallet holds 1,000,000 sats; this costs 2,000,000).
    server.shared().set_price(2_000_000);
    let output = home
        .plannt(&get_with(&wallet, &[&url]))
        .env("PLANNT_MAX_SATS_PER_REQUEST", "3000000")
        .env("PLANNT_BUDGET_HOURLY_SATS", "none")
        .env("PLANNT_BUDGET_DAILY_SATS", "none")
        .output()
        .unwrap();
    assert_exit(&output, 5, "payment failed");
    server.shared().set_price(21);

    // 6: the server answered an HTTP error (a credential of the user's own, refused).
    let output = home.run(&get_with(
        &wallet,
        &["-H", "Authorization: L402 AgE=:00", &url],
    ));
    assert_exit(&output, 6, "401");

    // 7: nothing listens there.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/paid", gone.local_addr().unwrap());
    drop(gone);
    assert_exit(&home.run(&get_with(&wallet, &[&dead])), 7, "");
    assert_eq!(server.paid_count(), 1);

    // plannt wallet pay: 4 for an invoice it refuses, 5 for a payment that fails.
    let mainnet = Server::start(Scenario::Mainnet, 21);
    let challenge = challenge_of(&mainnet.url("/paid"));
    let invoice = challenge["invoice"].as_str().unwrap();
    let output = home.run(&["wallet", "--wallet", &wallet, "pay", invoice]);
    assert_exit(&output, 4, "refusing to pay: a bitcoin invoice");
    let dear = server
        .hostile
        .network()
        .create_invoice(&InvoiceRequest {
            amount_sats: 2_000_000,
            memo: "dear".into(),
            expiry_secs: 600,
        })
        .unwrap();
    let output = home.run(&["wallet", "--wallet", &wallet, "pay", &dear.bolt11]);
    assert_exit(&output, 5, "payment failed");
}

/// The JSON body of the 402 at `url`.
fn challenge_of(url: &str) -> Value {
    plannt_lightning::install_tls_provider();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let response = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(url)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 402);
        response.json().await.unwrap()
    })
}

/// `N phrase` for each status of the help's "Exit status:" sentence.
fn help_table(help: &str) -> Vec<String> {
    let text: String = help.split_whitespace().collect::<Vec<_>>().join(" ");
    let start = text.find("Exit status: ").expect("an exit status sentence") + 13;
    let end = start + text[start..].find('.').expect("the sentence ends");
    text[start..end].split("; ").map(str::to_string).collect()
}

#[test]
fn the_exit_status_table_reads_the_same_in_help_and_readme() {
    let home = Home::new();
    let top = home.run(&["--help"]);
    let get = home.run(&["get", "--help"]);
    assert_eq!(code(&top), 0);
    let table = help_table(&String::from_utf8_lossy(&top.stdout));
    assert_eq!(table, help_table(&String::from_utf8_lossy(&get.stdout)));
    let codes: Vec<&str> = table.iter().map(|t| t.split(' ').next().unwrap()).collect();
    assert_eq!(
        codes,
        ["0", "1", "2", "3", "4", "5", "6", "7", "8"],
        "{table:?}"
    );

    // The README's table: a row `| N | phrase |` for each.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let rows: Vec<String> = readme
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            match cells[..] {
                ["", n, phrase, ""] if n.len() == 1 && n.as_bytes()[0].is_ascii_digit() => {
                    Some(format!("{n} {phrase}"))
                }
                _ => None,
            }
        })
        .collect();
    assert_eq!(rows, table, "README.md's exit status table");
}
