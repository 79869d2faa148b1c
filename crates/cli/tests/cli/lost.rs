//! A paid answer lost after the credential left, through the binary: `plannt get` killed
//! (SIGKILL) while the gateway holds its answer leaves the request unanswered in the ledger,
//! `plannt ledger` shows it, and `plannt ledger retry` gets the kept answer with the same
//! credential; `plannt mcp`'s `fetch` recovers a cut connection; a gateway that kept nothing
//! gets a clear error; and a real `plannt serve` keeps a slow upstream's answer for the retry of a
//! client whose connection closed. Each pays once.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::cluster::Serve;
use crate::support::{
    Fault, Home, Keeper, Mcp, START_MSAT, Scenario, Server, code, describe, wait_until,
};

const PAID_BODY: &[u8] = b"{\"result\":\"paid\"}";

#[test]
fn a_killed_get_leaves_its_request_unanswered_and_ledger_retry_gets_the_kept_answer() {
    let server = Server::start(Scenario::Honest, 21);
    let keeper = server.keeper(Fault::Hold);
    let home = Home::new();
    let wallet = server.wallet();
    let url = keeper.url("/paid?q=1").to_string();
    let args = [
        "post",
        "--wallet",
        &wallet,
        &url,
        "-d",
        "{\"q\":1}",
        "-H",
        "content-type: application/json",
        "-H",
        "cookie: session=SECRET",
    ];
    let mut child = home
        .plannt(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the gateway holds the paid request's answer", || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("plannt post ended before it was killed: {status}");
        }
        keeper.shared.holding.load(Ordering::SeqCst)
    });
    child.kill().unwrap();
    let killed = child.wait_with_output().unwrap();
    assert!(killed.status.code().is_none(), "{}", describe(&killed));
    keeper.shared.release();
    assert_eq!(server.paid_count(), 1);

    // The ledger shows the request paid and unanswered, as recorded, without the cookie.
    let unanswered = home.ledger().unanswered().unwrap();
    assert_eq!(unanswered.len(), 1, "{unanswered:?}");
    let hash = unanswered[0].payment_hash.clone();
    let recorded = &unanswered[0].request;
    assert_eq!(
        (recorded.method.as_str(), recorded.url.as_str()),
        ("POST", url.as_str())
    );
    assert_eq!(recorded.body.as_deref(), Some(&b"{\"q\":1}"[..]));
    assert!(
        recorded
            .headers
            .contains(&("content-type".into(), "application/json".into())),
        "{recorded:?}"
    );
    assert!(
        !recorded.headers.iter().any(|(n, _)| n == "cookie"),
        "{recorded:?}"
    );
    let shown = home.run(&["ledger"]);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains("paid requests without an answer"), "{text}");
    assert!(
        text.contains(&format!(
            "POST   {}/paid",
            keeper.url("/").as_str().trim_end_matches('/')
        )),
        "{text}"
    );
    assert!(text.contains(&hash), "{text}");
    assert!(!text.contains("SECRET"), "{text}");
    let json_out = home.run(&["ledger", "--json"]);
    let value: Value = serde_json::from_slice(&json_out.stdout).unwrap();
    assert_eq!(
        value["unanswered"][0]["payment_hash"],
        json!(hash),
        "{value}"
    );
    assert_eq!(value["unanswered"][0]["retryable"], json!(true), "{value}");

    // The retry sends it again with the same credential: the kept answer, nothing paid.
    let output = home.run(&["ledger", "retry", "--wallet", &wallet]);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert_eq!(output.stdout, PAID_BODY);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("recovered"), "{stderr}");
    assert_eq!(server.paid_count(), 1);
    assert_eq!(server.balance(), START_MSAT - 21_000);
    assert_eq!(server.shared().paid_requests.load(Ordering::SeqCst), 1);
    assert_eq!(keeper.shared.replayed.load(Ordering::SeqCst), 1);

    // The ledger records the answer recovered, and has nothing left to retry.
    let records = home.ledger().recent(10).unwrap();
    assert_eq!(records[0].answer.as_deref(), Some("recovered"));
    let text = String::from_utf8_lossy(&home.run(&["ledger"]).stdout).into_owned();
    assert!(text.contains("answer recovered"), "{text}");
    assert!(!text.contains("paid requests without an answer"), "{text}");
    let again = home.run(&["ledger", "retry", "--wallet", &wallet]);
    assert_eq!(code(&again), 2, "{}", describe(&again));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("nothing to retry"),
        "{}",
        describe(&again)
    );
}

#[test]
fn a_killed_get_run_again_presents_the_same_credential_instead_of_paying() {
    let server = Server::start(Scenario::Honest, 21);
    let keeper = server.keeper(Fault::Hold);
    let home = Home::new();
    let wallet = server.wallet();
    let url = keeper.url("/paid").to_string();
    let mut child = home
        .plannt(&["get", "--wallet", &wallet, &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the gateway holds the paid request's answer", || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("plannt get ended before it was killed: {status}");
        }
        keeper.shared.holding.load(Ordering::SeqCst)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    keeper.shared.release();

    let output = home.run(&["get", "--wallet", &wallet, &url]);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert_eq!(output.stdout, PAID_BODY);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("recovered"), "{stderr}");
    assert_eq!(server.paid_count(), 1);
    assert_eq!(server.shared().challenges.load(Ordering::SeqCst), 1);
    assert_eq!(keeper.shared.replayed.load(Ordering::SeqCst), 1);
}

#[test]
fn a_gateway_that_kept_nothing_is_a_clear_error_and_no_second_payment() {
    let server = Server::start(Scenario::Honest, 21);
    let keeper = server.keeper(Fault::Forget);
    let home = Home::new();
    let wallet = server.wallet();
    let output = home.run(&["get", "--wallet", &wallet, keeper.url("/paid").as_str()]);
    assert_eq!(code(&output), 7, "{}", describe(&output));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("paid; the answer was lost and the server kept none"),
        "{stderr}"
    );
    assert_eq!(server.paid_count(), 1);
    assert_eq!(server.balance(), START_MSAT - 21_000);
    let records = home.ledger().recent(10).unwrap();
    assert_eq!(records[0].answer.as_deref(), Some("lost"));
}

#[test]
fn mcp_fetch_recovers_an_answer_lost_on_a_cut_connection() {
    let server = Server::start(Scenario::Honest, 21);
    let keeper = server.keeper(Fault::Cut);
    let home = Home::new();
    let wallet = server.wallet();
    let mut mcp = Mcp::start(
        &home,
        &[
            ("PLANNT_WALLET", &wallet),
            ("PLANNT_ALLOW_PRIVATE_NETWORKS", "true"),
        ],
    );
    let (error, result) = mcp.call("fetch", json!({"url": keeper.url("/paid").as_str()}));
    assert!(!error, "{result}");
    assert_eq!(result["status"], 200, "{result}");
    assert_eq!(result["receipt"]["recovered"], true, "{result}");
    assert_eq!(result["receipt"]["amount_sats"], 21, "{result}");
    assert_eq!(server.paid_count(), 1);
    assert_eq!(keeper.shared.replayed.load(Ordering::SeqCst), 1);
    assert_eq!(
        home.ledger().recent(10).unwrap()[0].answer.as_deref(),
        Some("recovered")
    );
}

#[test]
fn plannt_serve_keeps_a_slow_upstreams_answer_and_get_recovers_it_after_a_hang_up() {
    let home = Home::new();
    // An upstream that takes a second to answer, counting its calls.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let calls = Arc::new(AtomicU64::new(0));
    let counted = calls.clone();
    let upstream = runtime.block_on(async move {
        let app = axum::Router::new().route(
            "/v1/slow",
            axum::routing::get(move || {
                let counted = counted.clone();
                async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    axum::Json(json!({"slow": "done"}))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    });
    let config = home.path().join("plannt.toml");
    std::fs::write(
        &config,
        format!(
            "[[routes]]\nid = \"status\"\npath = \"/status\"\nhandler = \"status\"\n\n[[routes]]\nid = \"slow\"\npath = \"/v1/slow\"\nprice_sats = 21\nupstream = \"http://{upstream}\"\n"
        ),
    )
    .unwrap();
    let serve = Serve::start(
        &home.path().join("gateway"),
        &["--config", config.to_str().unwrap()],
        &[],
    );
    // In front of it, a hop that closes the client's connection once the upstream has the paid
    // request: the gateway finishes it and keeps its answer.
    let keeper = runtime.block_on(Keeper::start(
        SocketAddr::from(([127, 0, 0, 1], serve.port)),
        Fault::HangUp,
    ));
    let wallet = format!("dev+http://127.0.0.1:{}", serve.port);
    let (shared, called) = (keeper.shared.clone(), calls.clone());
    let releaser = std::thread::spawn(move || {
        wait_until("the upstream has the paid request", || {
            called.load(Ordering::SeqCst) > 0
        });
        shared.release();
    });

    let output = home.run(&[
        "get",
        "-v",
        "--max-time",
        "30",
        "--wallet",
        &wallet,
        keeper.url("/v1/slow").as_str(),
    ]);
    releaser.join().unwrap();
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert_eq!(output.stdout, b"{\"slow\":\"done\"}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("< 200 OK (x-l402: replayed)"), "{stderr}");
    assert!(stderr.contains("recovered"), "{stderr}");
    // One payment, one upstream call.
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let records = home.ledger().recent(10).unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].status, "paid");
    assert_eq!(records[0].answer.as_deref(), Some("recovered"));
}
