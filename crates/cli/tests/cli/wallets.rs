//! `plannt wallet balance` (and `pay`, `lookup`) with each node backend's URI form, against the
//! test kit's fakes of LND, Core Lightning and phoenixd, which plannt-lightning's tests use too
//! (each follows its node's API field by field): the balance is the node's, a credential that
//! cannot read it is refused with a clear error, and no secret reaches the output.

use std::process::Output;

use plannt_testkit::fakes;
use plannt_testkit::process::clean_command;
use serde_json::Value;

use crate::PLANNT;

/// `plannt wallet --wallet URI balance --json`, with none of the caller's settings.
async fn balance(uri: String) -> Output {
    wallet(uri, &["balance", "--json"]).await
}

/// `plannt wallet --wallet URI ARGS…`, with none of the caller's settings.
async fn wallet(uri: String, args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let home = tempfile::tempdir().unwrap();
    tokio::task::spawn_blocking(move || {
        let mut command = clean_command(PLANNT);
        command
            .env("XDG_CONFIG_HOME", home.path().join("config"))
            .env("XDG_DATA_HOME", home.path().join("data"))
            .env("PLANNT_DATA_DIR", home.path())
            .args(["wallet", "--wallet", &uri])
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// The balance in msat that a successful run printed.
fn balance_msat(output: &Output) -> u64 {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "plannt wallet failed: {stderr}");
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    json["balance_msat"].as_u64().unwrap()
}

/// A run that failed, its stderr free of `secret`.
fn refused(output: &Output, secret: &str) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "unexpected success: {stdout}");
    assert!(
        !stdout.contains(secret) && !stderr.contains(secret),
        "a secret in the output: {stderr}"
    );
    stderr
}

#[tokio::test(flavor = "multi_thread")]
async fn lnd_with_a_pinned_cert_and_a_macaroon_file_or_hex() {
    let node = fakes::lnd::Lnd::new(fakes::network());
    let server = node.serve_tls().await;
    let port = server.url.port().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("tls.cert");
    std::fs::write(&cert, fakes::LND_TLS_CERT).unwrap();
    let admin = node.state().admin_macaroon.clone();
    let file = dir.path().join("admin.macaroon");
    std::fs::write(&file, hex::decode(&admin).unwrap()).unwrap();

    for macaroon in [admin.clone(), file.display().to_string()] {
        let uri = format!(
            "lnd+https://127.0.0.1:{port}?macaroon={macaroon}&cert={}&network=regtest",
            cert.display()
        );
        assert_eq!(
            balance_msat(&balance(uri).await),
            fakes::lnd::CHANNEL_BALANCE_MSAT
        );
    }

    // invoice.macaroon issues invoices and cannot read balances.
    let invoice = node.state().invoice_macaroon.clone();
    let uri = format!(
        "lnd+https://127.0.0.1:{port}?macaroon={invoice}&cert={}&network=regtest",
        cert.display()
    );
    let stderr = refused(&balance(uri).await, &invoice);
    assert!(stderr.contains("permission denied"), "{stderr}");

    // Without the pinned cert, the platform's roots do not trust the node.
    let uri = format!("lnd+https://127.0.0.1:{port}?macaroon={admin}&network=regtest");
    refused(&balance(uri).await, &admin);
}

#[tokio::test(flavor = "multi_thread")]
async fn core_lightning_with_a_rune() {
    let node = fakes::cln::Cln::new(fakes::network());
    let server = node.serve().await;
    let port = server.url.port().unwrap();
    let rune = node.state().rune.clone();
    let uri = format!("cln+http://127.0.0.1:{port}?rune={rune}&network=regtest");
    // listfunds: the channel in CHANNELD_NORMAL counts, the closed one does not.
    assert_eq!(balance_msat(&balance(uri.clone()).await), 700_000_321);

    // Pay, then look the payment up by its hash: `listpays` has it, with the same preimage.
    let bolt11 = fakes::payable(&node.state().network, 9);
    let paid = wallet(uri.clone(), &["pay", "--json", &bolt11]).await;
    assert!(
        paid.status.success(),
        "{}",
        String::from_utf8_lossy(&paid.stderr)
    );
    let paid: Value = serde_json::from_slice(&paid.stdout).unwrap();
    let hash = paid["payment_hash"].as_str().unwrap();
    let found = wallet(uri.clone(), &["lookup", "--json", hash]).await;
    assert!(
        found.status.success(),
        "{}",
        String::from_utf8_lossy(&found.stderr)
    );
    let found: Value = serde_json::from_slice(&found.stdout).unwrap();
    assert_eq!(found["state"], "paid");
    assert_eq!(found["preimage"], paid["preimage"]);
    let unknown = wallet(uri.clone(), &["lookup", "--json", &"cd".repeat(32)]).await;
    let unknown: Value = serde_json::from_slice(&unknown.stdout).unwrap();
    assert_eq!(unknown["state"], "not_found");
    let bad = wallet(uri.clone(), &["lookup", "not-a-hash"]).await;
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("64 hex digits"));

    // A rune limited to invoices is refused, and says why.
    let limited = node.state().invoice_rune.clone();
    let uri = format!("cln+http://127.0.0.1:{port}?rune={limited}&network=regtest");
    let stderr = refused(&balance(uri).await, &limited);
    assert!(stderr.contains("Not permitted"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn phoenixd_with_its_password() {
    let node = fakes::phoenixd::Phoenixd::new(fakes::network());
    let server = node.serve().await;
    let port = server.url.port().unwrap();
    let password = node.state().full_password.clone();
    let uri = format!("phoenixd+http://127.0.0.1:{port}?password={password}&network=regtest");
    assert_eq!(
        balance_msat(&balance(uri).await),
        fakes::phoenixd::BALANCE_SAT * 1000
    );

    let wrong = "not-the-password-0123456789";
    let uri = format!("phoenixd+http://127.0.0.1:{port}?password={wrong}&network=regtest");
    let stderr = refused(&balance(uri).await, wrong);
    assert!(stderr.contains("refused our credentials"), "{stderr}");
}
