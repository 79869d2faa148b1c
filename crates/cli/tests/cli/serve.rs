//! `plannt serve` as a process: paid through `plannt wallet` over the dev network's HTTP door,
//! killed with SIGKILL and restarted on the same data directory, where the spent token stays
//! spent. Also: a bad configuration stops it with an error naming the file and the key, and
//! `plannt decode` reads a real Aperture token.

use std::path::Path;
use std::time::Duration;

use plannt_testkit::free_port;
use serde_json::Value;

use crate::cluster::{Serve, plannt, run};

/// A real Aperture token (service `meme`, tier 0).
const APERTURE_TOKEN: &str = "AgEEbHNhdAJCAAAwpHpumws6ufQoDwiTLNcge0QPUIWA0+tVY+tKPYAJ/zSfmEGlIpNm3VzxuzCqLhEp5KGiyPLUM9L+kcB7uzS+AAIPc2VydmljZXM9bWVtZTowAAISbWVtZV9jYXBhYmlsaXRpZXM9AAAGILA1VCEIExukt4nG+XR9tX8WJ2BVMiHG3UNt1uYJ+NRD";

/// `plannt serve` on the SQLite store at `port`, its files under `data_dir`.
fn serve(data_dir: &Path, port: u16) -> Serve {
    Serve::start_at(data_dir, port, &["--store", "sqlite"], &[])
}

/// A GET on a runtime of its own: `(status, headers, JSON body)`, or `None` if the connection
/// failed.
pub fn get(
    url: &str,
    authorization: Option<&str>,
) -> Option<(u16, reqwest::header::HeaderMap, Value)> {
    plannt_lightning::install_tls_provider();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let mut request = client.get(url);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await.ok()?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.json().await.unwrap_or(Value::Null);
        Some((status, headers, body))
    })
}

/// Pays `invoice` with `plannt wallet` through the server's dev network; returns the preimage.
pub fn pay(wallet_dir: &Path, port: u16, invoice: &str) -> String {
    let mut command = plannt(wallet_dir);
    command.args([
        "wallet",
        "--wallet",
        &format!("dev+http://127.0.0.1:{port}"),
        "pay",
        invoice,
    ]);
    let output = run(command, "plannt wallet pay");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "plannt wallet pay failed: {stderr}"
    );
    let preimage = String::from_utf8(output.stdout).unwrap().trim().to_string();
    assert_eq!(preimage.len(), 64, "stdout is the preimage: {preimage:?}");
    assert!(preimage.bytes().all(|b| b.is_ascii_hexdigit()));
    preimage
}

pub fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[test]
fn a_token_paid_through_plannt_wallet_stays_spent_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("server");
    let wallet_dir = dir.path().join("wallet");
    std::fs::create_dir_all(&data_dir).unwrap();
    std::fs::create_dir_all(&wallet_dir).unwrap();
    let port = free_port();
    let mut server = serve(&data_dir, port);

    let (status, headers, challenge) = get(&server.url("/v1/demo"), None).unwrap();
    assert_eq!(status, 402, "{challenge}");
    assert!(
        headers
            .get_all("www-authenticate")
            .iter()
            .any(|h| h.as_bytes().starts_with(b"L402 macaroon=\""))
    );
    let macaroon = challenge["macaroon"].as_str().unwrap().to_string();
    let invoice = challenge["invoice"].as_str().unwrap().to_string();
    assert!(
        invoice.starts_with("lnbcrt210n"),
        "21 sats on regtest: {invoice}"
    );

    let preimage = pay(&wallet_dir, port, &invoice);
    let credential = format!("L402 {macaroon}:{preimage}");
    let (status, headers, body) = get(&server.url("/v1/demo"), Some(&credential)).unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, serde_json::json!({"result": "verified"}));
    assert_eq!(header(&headers, "x-l402"), Some("spent"));

    // The same invoice cannot be paid twice.
    let mut again = plannt(&wallet_dir);
    again.args([
        "wallet",
        "--wallet",
        &format!("dev+http://127.0.0.1:{port}"),
        "pay",
        &invoice,
    ]);
    assert!(!run(again, "a second payment").status.success());

    // SIGKILL: no destructor, no graceful shutdown, no flush.
    server.stop();
    let restarted = serve(&data_dir, port);

    // The answer was kept with the commit: the same request gets it again after the kill...
    let (status, headers, body) = get(&restarted.url("/v1/demo"), Some(&credential)).unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "x-l402"), Some("replayed"));
    assert_eq!(body["result"], "verified");
    // ...and any other request is refused as spent.
    let (status, headers, body) =
        get(&restarted.url("/v1/demo?again=1"), Some(&credential)).unwrap();
    assert_eq!(status, 402, "{body}");
    assert_eq!(body["reason"], "spent");
    assert_eq!(header(&headers, "x-l402-reason"), Some("spent"));
    let fresh = body["invoice"].as_str().unwrap();
    assert_ne!(fresh, invoice, "a fresh invoice");

    // The restarted gateway kept its root key and dev node: a fresh token works as before.
    let preimage = pay(&wallet_dir, port, fresh);
    let credential = format!("L402 {}:{preimage}", body["macaroon"].as_str().unwrap());
    let (status, _, body) = get(&restarted.url("/v1/demo"), Some(&credential)).unwrap();
    assert_eq!(status, 200, "{body}");
}

#[test]
fn a_bad_configuration_names_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("plannt.toml");
    std::fs::write(&config, "listen = 5\n").unwrap();
    let mut command = plannt(dir.path());
    command.arg("serve").arg("--config").arg(&config);
    let output = run(command, "plannt serve with a bad configuration");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "it must not start: {stderr}");
    assert!(
        stderr.contains(&config.display().to_string()),
        "the error names the file: {stderr}"
    );
    assert!(
        stderr.contains("listen"),
        "the error names the key: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn decode_reads_the_aperture_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = plannt(dir.path());
    command.args(["decode", "--json", APERTURE_TOKEN]);
    let output = run(command, "plannt decode");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let decoded: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(decoded["kind"], "macaroon");
    assert_eq!(decoded["location"], "lsat");
    assert_eq!(decoded["identifier"]["version"], 0);
    let hash = decoded["identifier"]["payment_hash"].as_str().unwrap();
    assert!(hash.starts_with("30a47a6e"), "{hash}");
    assert_eq!(hash.len(), 64);
    let caveats: Vec<&str> = decoded["caveats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    assert_eq!(caveats, ["services=meme:0", "meme_capabilities="]);
    assert_eq!(decoded["caveats"][0]["services"][0]["name"], "meme");
    assert_eq!(decoded["caveats"][0]["services"][0]["tier"], 0);
}

/// The log line that tells how to pay the dev network's gateway.
fn pay_with(log: &str) -> &str {
    log.lines()
        .find(|l| l.contains("pay with: "))
        .unwrap_or_else(|| panic!("no pay with line: {log}"))
}

#[test]
fn serve_suggests_a_route_it_serves() {
    let dir = tempfile::tempdir().unwrap();
    // The demo service: its own /v1/demo.
    let demo = Serve::start(&dir.path().join("demo"), &["--store", "memory"], &[]);
    let wallet = format!("dev+http://127.0.0.1:{}", demo.port);
    assert!(
        demo.log().contains(&format!(
            "pay with: plannt get --wallet {wallet} {}",
            demo.url("/v1/demo")
        )),
        "{}",
        demo.log()
    );

    // Routes of one's own: the first paid route a GET reaches, never the demo's.
    let config = dir.path().join("plannt.toml");
    std::fs::write(
        &config,
        "[[routes]]\npath = \"/status\"\nhandler = \"status\"\n\n[[routes]]\nmethod = \"POST\"\npath = \"/v2/submit\"\nprice_sats = 9\nhandler = \"demo\"\n\n[[routes]]\npath = \"/paid/\"\nmatch = \"prefix\"\nprice_sats = 5\nhandler = \"demo\"\n",
    )
    .unwrap();
    let custom = Serve::start(
        &dir.path().join("custom"),
        &["--store", "memory", "--config", config.to_str().unwrap()],
        &[],
    );
    let log = custom.log();
    let line = pay_with(&log);
    assert!(line.contains(&custom.url("/paid/")), "{line}");
    assert!(
        !line.contains("/v1/demo") && !line.contains("/v2/submit"),
        "{line}"
    );

    // Nothing a GET can buy: no URL is made up.
    std::fs::write(
        &config,
        "[[routes]]\npath = \"/status\"\nhandler = \"status\"\n",
    )
    .unwrap();
    let free = Serve::start(
        &dir.path().join("free"),
        &["--store", "memory", "--config", config.to_str().unwrap()],
        &[],
    );
    let log = free.log();
    let line = pay_with(&log);
    assert!(
        line.contains("pay with: plannt get --wallet dev+http://"),
        "{line}"
    );
    assert!(!line.contains(&free.url("/")), "{line}");
}

#[test]
fn serve_on_an_address_in_use_stops_before_writing_a_root_key() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    let mut command = plannt(dir.path());
    command.args(["serve", "--listen", &listen]);
    let output = run(command, "plannt serve on an address in use");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {listen}")),
        "{stderr}"
    );
    assert!(!dir.path().join("root.key").exists(), "{stderr}");
    assert!(!dir.path().join("dev-node.key").exists(), "{stderr}");
}

#[test]
fn a_real_backend_without_routes_starts_only_with_demo_routes() {
    let dir = tempfile::tempdir().unwrap();
    let lnbits = format!(
        "lnbits+http://127.0.0.1:{}?key=x",
        plannt_testkit::dead_port()
    );
    let mut command = plannt(dir.path());
    command.args(["serve", "--listen", "127.0.0.1:0", "--lightning", &lnbits]);
    let output = run(command, "plannt serve with a real backend and no routes");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("/v1/demo") && stderr.contains("--demo-routes"),
        "{stderr}"
    );
    assert!(!dir.path().join("root.key").exists(), "{stderr}");

    // Asked for: it starts, and says loudly what it sells.
    let log = dir.path().join("serve.log");
    let mut command = plannt(dir.path());
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--demo-routes"])
        .env("PLANNT_LIGHTNING", &lnbits)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut child = command.spawn().unwrap();
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    plannt_testkit::process::wait_until(
        "plannt serve --demo-routes listening",
        Duration::from_secs(60),
        || read().contains("plannt gateway listening") || child.try_wait().unwrap().is_some(),
    );
    let _ = child.kill();
    let _ = child.wait();
    let text = read();
    assert!(text.contains("plannt gateway listening"), "{text}");
    assert!(
        text.contains("WARN") && text.contains("selling the demo service"),
        "{text}"
    );
}

/// The gateway runs without transparent huge pages (src/serve.rs says why); the kernel shows
/// the process's setting in `/proc/PID/status`.
#[cfg(target_os = "linux")]
#[test]
fn serve_runs_without_transparent_huge_pages() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &["--store", "memory"], &[]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", serve.pid())).unwrap();
    let thp = status
        .lines()
        .find_map(|line| line.strip_prefix("THP_enabled:"))
        .map(str::trim);
    assert_eq!(thp, Some("0"), "{status}");
}
