//! `plannt stats` against a running `plannt serve` (its admin API) and against its SQLite store
//! read beside it, and `SIGHUP` reloading that gateway's prices while a paid request is in
//! flight, a bad configuration refused with the running one kept.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cluster::{Serve, plannt, run};
use crate::serve::{get, header, pay};

const TOKEN: &str = "stats-admin-token-0123456789";

/// Pays `/v1/demo` once through the gateway's dev network; returns the credential.
fn paid(server: &Serve, wallet_dir: &Path) -> String {
    let (status, _, challenge) = get(&server.url("/v1/demo"), None).unwrap();
    assert_eq!(status, 402, "{challenge}");
    let preimage = pay(
        wallet_dir,
        server.port,
        challenge["invoice"].as_str().unwrap(),
    );
    let credential = format!(
        "L402 {}:{preimage}",
        challenge["macaroon"].as_str().unwrap()
    );
    let (status, _, body) = get(&server.url("/v1/demo"), Some(&credential)).unwrap();
    assert_eq!(status, 200, "{body}");
    credential
}

fn stats(data_dir: &Path, args: &[&str], token: Option<&str>) -> std::process::Output {
    let mut command = plannt(data_dir);
    command
        .arg("stats")
        .args(args)
        .env_remove("PLANNT_ADMIN_TOKEN");
    if let Some(token) = token {
        command.env("PLANNT_ADMIN_TOKEN", token);
    }
    run(command, "plannt stats")
}

fn json(output: &std::process::Output) -> Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn stats_from_the_admin_api_and_from_the_store_agree() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("server");
    let wallet_dir = dir.path().join("wallet");
    std::fs::create_dir_all(&wallet_dir).unwrap();
    let server = Serve::start(
        &data_dir,
        &["--store", "sqlite"],
        &[("PLANNT_ADMIN_TOKEN", TOKEN)],
    );
    let first = paid(&server, &wallet_dir);
    paid(&server, &wallet_dir);
    // Another request with a spent credential (the same one would get its kept answer).
    let (status, _, again) = get(&server.url("/v1/demo?again=1"), Some(&first)).unwrap();
    assert_eq!(status, 402);
    assert_eq!(again["reason"], "spent");

    let admin = server.url("");
    let from_admin = json(&stats(
        &data_dir,
        &["--admin", &admin, "--since", "1h", "--json"],
        Some(TOKEN),
    ));
    assert_eq!(from_admin["total"]["payments"], 2, "{from_admin}");
    assert_eq!(from_admin["total"]["sats"], 42);
    assert_eq!(from_admin["routes"]["demo"]["payments"], 2);
    assert_eq!(from_admin["dialects"]["l402"]["sats"], 42);
    assert_eq!(from_admin["refusals"]["spent"], 1);
    assert_eq!(from_admin["recent"].as_array().unwrap().len(), 2);

    // The store, read-only beside the running gateway (the admin call flushed the ledger).
    let store = format!("sqlite:{}", data_dir.join("spent.sqlite").display());
    let from_store = json(&stats(
        &data_dir,
        &["--store", &store, "--since", "1h", "--json"],
        None,
    ));
    assert_eq!(from_store["total"], from_admin["total"]);
    assert_eq!(from_store["routes"], from_admin["routes"]);
    assert_eq!(from_store["refusals"], from_admin["refusals"]);
    assert_eq!(from_store["recent"], from_admin["recent"]);

    // The table for people.
    let text = stats(
        &data_dir,
        &["--admin", &admin, "--since", "24h"],
        Some(TOKEN),
    );
    let text = String::from_utf8(text.stdout).unwrap();
    for says in [
        "42 sats earned, 2 payments, 1 refusal",
        "Per route:",
        "demo",
        "Per day (UTC):",
        "Refusals by reason:",
        "spent",
        "Latest payments:",
    ] {
        assert!(text.contains(says), "{says:?} missing:\n{text}");
    }

    // A wrong token, no token, a bad time: clear errors, exit status 2.
    let wrong = stats(
        &data_dir,
        &["--admin", &admin],
        Some("not-the-token-at-all"),
    );
    assert_eq!(wrong.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("refused the token"));
    let none = stats(&data_dir, &["--admin", &admin], None);
    assert_eq!(none.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&none.stderr).contains("PLANNT_ADMIN_TOKEN"));
    let bad = stats(
        &data_dir,
        &["--store", &store, "--since", "last week"],
        None,
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--since"));
}

/// An upstream on loopback that answers `slow` to each request once told to, one request at
/// a time.
fn slow_upstream() -> (u16, mpsc::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (go, gate) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                line.clear();
            }
            if gate.recv().is_err() {
                return;
            }
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 4\r\nconnection: close\r\n\r\nslow",
            );
        }
    });
    (port, go)
}

fn write_config(path: &Path, upstream: u16, price: u64) {
    let text = format!(
        "[[routes]]\nid = \"status\"\npath = \"/status\"\nhandler = \"status\"\n\n\
         [[routes]]\nid = \"slow\"\npath = \"/slow\"\nprice_sats = {price}\n\
         upstream = \"http://127.0.0.1:{upstream}\"\n"
    );
    std::fs::write(path, text).unwrap();
}

fn price(server: &Serve) -> u64 {
    let (status, _, body) = get(&server.url("/slow"), None).unwrap();
    assert_eq!(status, 402, "{body}");
    body["amount_sats"].as_u64().unwrap()
}

fn hangup(server: &Serve) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "not within 20 s: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sighup_reloads_prices_with_a_request_in_flight_and_keeps_a_bad_configuration_out() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("server");
    let wallet_dir = dir.path().join("wallet");
    std::fs::create_dir_all(&wallet_dir).unwrap();
    std::fs::create_dir_all(&data_dir).unwrap();
    let (upstream, go) = slow_upstream();
    let config = dir.path().join("plannt.toml");
    write_config(&config, upstream, 10);
    let server = Serve::start(
        &data_dir,
        &["--config", config.to_str().unwrap(), "--store", "memory"],
        &[],
    );
    assert_eq!(price(&server), 10);

    // A paid request, held by the upstream.
    let (_, _, challenge) = get(&server.url("/slow"), None).unwrap();
    let preimage = pay(
        &wallet_dir,
        server.port,
        challenge["invoice"].as_str().unwrap(),
    );
    let credential = format!(
        "L402 {}:{preimage}",
        challenge["macaroon"].as_str().unwrap()
    );
    let url = server.url("/slow");
    let in_flight = std::thread::spawn(move || get(&url, Some(&credential)).unwrap());
    std::thread::sleep(Duration::from_millis(300));
    assert!(!in_flight.is_finished(), "the upstream holds the request");

    write_config(&config, upstream, 25);
    hangup(&server);
    wait_for("the new price after SIGHUP", || price(&server) == 25);
    assert!(
        server.log().contains("configuration reloaded"),
        "{}",
        server.log()
    );

    // The request in flight was not dropped: it gets its answer and its token is spent.
    go.send(()).unwrap();
    let (status, headers, _) = in_flight.join().unwrap();
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "x-l402"), Some("spent"));

    // A configuration that does not parse: refused, logged, the running one kept.
    std::fs::write(&config, "routes = [[[").unwrap();
    hangup(&server);
    wait_for("the refusal in the log", || {
        server.log().contains("reload refused")
    });
    assert_eq!(price(&server), 25);
    assert!(server.log().contains("plannt.toml"), "{}", server.log());
}
