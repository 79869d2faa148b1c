//! `plannt session list`, `plannt session close` and `plannt ledger` on prepaid sessions, and
//! `plannt get` opening a session that another `plannt get` spends from, with the test kit's
//! session server (a minimal server that follows draft-lightning-session-00, a charge offered
//! beside each session) and its dev network (a `dev+http://` wallet issues the return invoices).

use std::sync::Arc;
use std::time::Duration;

use plannt_client::{Client, Options, Outcome, Request, Timeouts};
use plannt_testkit::sessions::{SessionScenario, SessionServer};
use serde_json::Value;

use crate::support::{Home, PAYER, START_MSAT, code, describe};

/// The default policy, with the test server's loopback address allowed.
fn open_policy_for_loopback() -> plannt_client::Policy {
    plannt_client::Policy {
        allow_private_networks: true,
        ..plannt_client::Policy::default()
    }
}

/// A session server on a runtime of its own, for a test that runs the binary synchronously.
struct Sessions {
    server: SessionServer,
    runtime: tokio::runtime::Runtime,
}

impl Sessions {
    fn start() -> Sessions {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = runtime.block_on(SessionServer::start(
            plannt_client::lightning::dev::DevNetwork::ephemeral(1_000_000),
            SessionScenario::Honest,
            2,
            100,
        ));
        Sessions { server, runtime }
    }

    fn wallet(&self) -> String {
        let url = self.server.url("/");
        format!(
            "dev+http://{}:{}?account={PAYER}",
            url.host_str().unwrap(),
            url.port().unwrap()
        )
    }

    fn balance(&self) -> u64 {
        self.server.shared.network.balance(PAYER)
    }

    /// Opens a session with the library, as `plannt` would with a wallet that issues return
    /// invoices, on the home's ledger: one request, 2 sats spent of a 100-sat deposit.
    fn open_in(&self, home: &Home) -> String {
        self.open_with_receipt_in(home).0
    }

    /// [`Sessions::open_in`], with the `Payment-Receipt` value the server answered.
    fn open_with_receipt_in(&self, home: &Home) -> (String, String) {
        let wallet = Arc::new(self.server.shared.network.wallet(PAYER));
        let mut policy = open_policy_for_loopback();
        policy.session_deposits = vec![("127.0.0.1".into(), 100)];
        let client = Client::builder(wallet.clone(), home.ledger(), policy)
            .timeouts(Timeouts {
                connect: Duration::from_secs(10),
                max_time: Duration::from_secs(30),
            })
            .return_invoices(wallet)
            .build();
        let request = Request::get(self.server.url("/v1/thing"));
        let outcome = self
            .runtime
            .block_on(client.send(&request, &Options::default()))
            .unwrap();
        let Outcome::Response(response) = outcome else {
            panic!("not a dry run")
        };
        let receipt = response.headers["payment-receipt"]
            .to_str()
            .unwrap()
            .to_string();
        (response.receipt.unwrap().session.unwrap().id, receipt)
    }
}

fn json(output: &std::process::Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(output)))
}

#[test]
fn session_list_shows_a_session_and_session_close_brings_its_refund_into_the_wallet() {
    let sessions = Sessions::start();
    let home = Home::new();
    let id = sessions.open_in(&home);
    assert_eq!(sessions.balance(), START_MSAT - 100_000);

    let listed = home.run(&["session", "list", "--json"]);
    assert_eq!(code(&listed), 0, "{}", describe(&listed));
    let list = json(&listed);
    let s = &list["sessions"][0];
    assert_eq!(s["session_id"], id.as_str());
    assert_eq!(
        (
            &s["deposit_sats"],
            &s["spent_sats"],
            &s["balance_sats"],
            &s["state"]
        ),
        (
            &Value::from(100),
            &Value::from(2),
            &Value::from(98),
            &Value::from("open")
        )
    );
    // No secret is shown: the deposit's preimage spends the balance.
    assert!(!String::from_utf8_lossy(&listed.stdout).contains("preimage"));
    let table = home.run(&["session", "list"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains(&id[..16]) && text.contains("open"), "{text}");

    let closed = home.run(&[
        "session",
        "close",
        &id[..12],
        "--wallet",
        &sessions.wallet(),
    ]);
    assert_eq!(code(&closed), 0, "{}", describe(&closed));
    let text = String::from_utf8_lossy(&closed.stdout);
    assert!(text.contains("refund 98 sats received"), "{text}");
    assert_eq!(sessions.balance(), START_MSAT - 2_000);

    let ledger = json(&home.run(&["ledger", "--json"]));
    let entry = &ledger["sessions"][0];
    assert_eq!(entry["session"]["refund_sats"], 98);
    assert_eq!(entry["session"]["state"], "closed");
    assert_eq!(entry["debits"].as_array().unwrap().len(), 1);
    // The hour's budget got the refund back: 2 sats spent.
    let hour = ledger["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["window"] == "hour")
        .unwrap()
        .clone();
    assert_eq!(hour["used_sats"], 2);
    // Nothing left to close; the open list is empty.
    let again = home.run(&["session", "close", "--all", "--wallet", &sessions.wallet()]);
    assert_eq!(code(&again), 0, "{}", describe(&again));
    assert!(String::from_utf8_lossy(&again.stdout).contains("no open session"));
    let bad = home.run(&["session", "close", "zz"]);
    assert_eq!(code(&bad), 2, "{}", describe(&bad));
}

#[test]
fn plannt_get_opens_a_session_and_another_plannt_get_spends_from_it() {
    let sessions = Sessions::start();
    let home = Home::new();
    let get = || {
        home.plannt(&[
            "get",
            sessions.server.url("/v1/thing").as_str(),
            "--json",
            "--wallet",
            &sessions.wallet(),
        ])
        .env("PLANNT_SESSION_DEPOSIT_SATS", "127.0.0.1=500")
        .output()
        .unwrap()
    };
    let first = get();
    assert_eq!(code(&first), 0, "{}", describe(&first));
    let first = json(&first);
    assert_eq!(first["session"]["action"], "open");
    assert_eq!(first["paid_sats"], 100);
    assert_eq!(first["preimage"], "");
    // Another process: the session is found in the ledger and spent from; nothing is paid.
    let second = get();
    assert_eq!(code(&second), 0, "{}", describe(&second));
    let second = json(&second);
    assert_eq!(second["session"]["action"], "bearer");
    assert_eq!(second["session"]["balance_sats"], 96);
    assert_eq!(second["paid_sats"], 0);
    assert_eq!(sessions.balance(), START_MSAT - 100_000);
    assert_eq!(
        sessions
            .server
            .shared
            .opened
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    // Without session_deposit_sats for the host, plannt get pays a charge.
    let other = Home::new();
    let out = other.run(&[
        "get",
        sessions.server.url("/v1/thing").as_str(),
        "--json",
        "--wallet",
        &sessions.wallet(),
    ]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(json(&out)["session"], Value::Null);
    assert_eq!(sessions.balance(), START_MSAT - 102_000);
}

/// The admin token of the real gateway below.
const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";

/// `plannt post` against a real `plannt serve` whose metered chat route sells sessions, in front
/// of the test kit's OpenAI-compatible upstream: the first request opens a session, the second
/// (another process) spends from it, a third streams from it, each debit recorded as the gateway
/// reported it, `plannt session close --all` has the gateway refund the rest to the dev wallet,
/// the ledger's refund is what arrived, the deposit less it is the sum of the debits recorded, and
/// `plannt stats` shows the deposit, the refund and the metered usage.
#[test]
fn plannt_post_opens_reuses_and_closes_a_session_of_a_real_plannt_serve() {
    use crate::cluster::Serve;
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
            "[[routes]]\nid = \"status\"\npath = \"/status\"\nhandler = \"status\"\n\n[[routes]]\nid = \"chat\"\nmethod = \"POST\"\npath = \"/v1/chat/completions\"\nupstream = \"http://{}\"\nprice = {{ per = \"openai-tokens\", models = {{ \"gpt-4o-mini\" = {{ input_per_1k = 2, output_per_1k = 8 }} }}, default_max_tokens = 256, max_tokens_ceiling = 2048, min_sats = 1 }}\nsession = {{ deposit_sats = 300, idle_secs = 300 }}\n",
            upstream.addr
        ),
    )
    .unwrap();
    let serve = Serve::start(
        &home.path().join("gateway"),
        &["--config", config.to_str().unwrap(), "--store", "sqlite"],
        &[("PLANNT_ADMIN_TOKEN", ADMIN_TOKEN)],
    );
    let wallet = format!("dev+http://127.0.0.1:{}?account={PAYER}", serve.port);
    let url = serve.url("/v1/chat/completions");
    let body =
        r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}],"max_tokens":16}"#;
    let post_body = |body: &str| {
        home.plannt(&["post", &url, "-d", body, "--json", "--wallet", &wallet])
            .env("PLANNT_SESSION_DEPOSIT_SATS", "127.0.0.1=1000")
            .output()
            .unwrap()
    };
    let post = || post_body(body);
    let first = post();
    assert_eq!(code(&first), 0, "{}", describe(&first));
    let first = json(&first);
    assert_eq!(first["status"], 200, "{first}");
    assert_eq!(first["session"]["action"], "open", "{first}");
    assert_eq!(first["paid_sats"], 300);
    let second = post();
    assert_eq!(code(&second), 0, "{}", describe(&second));
    let second = json(&second);
    assert_eq!(second["session"]["action"], "bearer", "{second}");
    assert_eq!(second["paid_sats"], 0);
    // A stream: its debit comes as its last comment, before `data: [DONE]`.
    let streamed = post_body(
        r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}],"max_tokens":16,"stream":true}"#,
    );
    assert_eq!(code(&streamed), 0, "{}", describe(&streamed));
    // The ledger has each debit as the gateway reported it, none estimated.
    let listed = json(&home.run(&["session", "list", "--json"]));
    let s = &listed["sessions"][0];
    assert_eq!(s["estimated_debits"], 0, "{listed}");
    let (spent, balance) = (
        s["spent_sats"].as_u64().unwrap(),
        s["balance_sats"].as_u64().unwrap(),
    );
    assert!(spent >= 2 && spent + balance == 300, "{listed}");

    let closed = home.run(&["session", "close", "--all", "--json", "--wallet", &wallet]);
    assert_eq!(code(&closed), 0, "{}", describe(&closed));
    let closed = json(&closed);
    let c = &closed["closed"][0];
    assert_eq!(c["refund_status"], "succeeded", "{closed}");
    let refund = c["refund_received_sats"].as_u64().unwrap();
    assert_eq!(c["refund_claimed_sats"].as_u64().unwrap(), refund);
    assert!(refund > 0 && refund < 300, "{closed}");
    // The gateway's own books: it refunded the deposit less what it debited, which is what the
    // client recorded from its answers, to the sat.
    assert_eq!(refund, balance, "{closed}");
    assert_eq!(300 - refund, spent);
    let ledger = json(&home.run(&["ledger", "--json"]));
    let debits = ledger["sessions"][0]["debits"].as_array().unwrap().clone();
    assert_eq!(debits.len(), 3, "{ledger}");
    assert!(debits.iter().all(|d| d["reported"] == true), "{ledger}");
    let recorded: u64 = debits
        .iter()
        .map(|d| d["amount_msat"].as_u64().unwrap())
        .sum();
    assert_eq!(recorded, spent * 1000);

    // The gateway's earnings: the deposit paid in, the refund paid back, the three requests
    // metered at what they were debited; earned, the deposit less the refund.
    let stats = |args: &[&str]| {
        home.plannt(&[&["stats", "--admin", &serve.url(""), "--since", "1h"], args].concat())
            .env("PLANNT_ADMIN_TOKEN", ADMIN_TOKEN)
            .output()
            .unwrap()
    };
    let figures = stats(&["--json"]);
    assert_eq!(code(&figures), 0, "{}", describe(&figures));
    let figures = json(&figures);
    let session = &figures["dialects"]["mpp-session"];
    assert_eq!(
        (
            &session["sats"],
            &session["refunded_sats"],
            &session["metered"],
            &session["metered_sats"]
        ),
        (
            &Value::from(300),
            &Value::from(refund),
            &Value::from(3),
            &Value::from(spent)
        ),
        "{figures}"
    );
    assert_eq!(figures["total"]["earned_sats"], spent, "{figures}");
    let table = stats(&[]);
    let text = String::from_utf8_lossy(&table.stdout);
    for says in [
        format!("{spent} sats earned, 1 payment"),
        format!(
            "prepaid sessions: 300 sats paid in, {refund} sats refunded (1 refund), {spent} sats metered over 3 requests"
        ),
        "refunded".to_string(),
        "mpp-session".to_string(),
    ] {
        assert!(text.contains(&says), "{says:?} missing:\n{text}");
    }
    assert_eq!(ledger["sessions"][0]["session"]["refund_sats"], refund);
    assert_eq!(ledger["sessions"][0]["session"]["state"], "closed");
    drop(serve);
    drop(upstream);
}

#[test]
fn plannt_decode_reads_a_session_receipt_s_debit_and_balance() {
    let sessions = Sessions::start();
    let home = Home::new();
    let (id, receipt) = sessions.open_with_receipt_in(&home);
    let header = format!("Payment-Receipt: {receipt}");
    let output = home.run(&["decode", "--json", &header]);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    let decoded = json(&output);
    assert_eq!(decoded["kind"], "mpp_session_receipt", "{decoded}");
    assert_eq!(decoded["session_id"], id.as_str(), "{decoded}");
    assert_eq!(
        (
            decoded["debit_sats"].as_u64(),
            decoded["balance_sats"].as_u64()
        ),
        (Some(2), Some(98)),
        "{decoded}"
    );
    let output = home.run(&["decode", &receipt]);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.starts_with("session receipt (MPP)\n"), "{text}");
    assert!(text.contains(&format!("session id    {id}\n")), "{text}");
    assert!(text.contains("debited       2 sats\n"), "{text}");
    assert!(text.contains("balance       98 sats left\n"), "{text}");
}
