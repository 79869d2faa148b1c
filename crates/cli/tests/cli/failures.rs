//! What `plannt get` and `plannt mcp` say, pay and keep when the wallet or the server does not
//! answer: a wallet that cannot be reached fails the payment (exit 5) having sent and paid
//! nothing and holding no budget, and an old pending payment its wallet never made is released;
//! each network failure names its cause (exit 7); `--max-time` bounds a server that never
//! answers; a timeout during or after a payment leaves it pending or paid, and the next run
//! finishes it without paying twice. `plannt mcp` checks its wallet at start and says what
//! it found, says what it is when started on a terminal, and says so when its input closes
//! before a client initialised it.

use std::process::Stdio;
use std::time::Duration;

use plannt_client::l402::PaymentHash;
use plannt_client::lightning::invoice::unix_now;
use plannt_client::{Budget, Ledger, Reservation, Window};
use plannt_testkit::broken::Broken;
use serde_json::json;

use crate::support::{
    Home, Mcp, START_MSAT, Scenario, Server, code, describe, random32, wait_until,
};

const PAYMENT_FAILED: i32 = 5;
const NETWORK_ERROR: i32 = 7;

/// A broken server on a runtime of its own, for as long as it is kept.
struct Running {
    server: Broken,
    _runtime: tokio::runtime::Runtime,
}

impl Running {
    fn silent() -> Running {
        Self::start(|| Box::pin(Broken::silent()))
    }

    fn hang_up() -> Running {
        Self::start(|| Box::pin(Broken::hang_up()))
    }

    fn start(
        make: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = Broken>>>,
    ) -> Running {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let server = runtime.block_on(make());
        Running {
            server,
            _runtime: runtime,
        }
    }

    fn url(&self, path: &str) -> String {
        self.server.url(path).to_string()
    }
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn statuses(ledger: &Ledger) -> Vec<String> {
    ledger
        .recent(100)
        .unwrap()
        .into_iter()
        .map(|r| r.status)
        .collect()
}

/// Sats the day's budget has used, as `plannt ledger` counts them.
fn day_used(ledger: &Ledger) -> u64 {
    ledger
        .usage(&Budget::default(), unix_now())
        .unwrap()
        .into_iter()
        .find(|w| w.window == Window::Day)
        .unwrap()
        .used_sats
}

#[test]
fn an_unreachable_wallet_fails_the_payment_sends_nothing_and_holds_no_budget() {
    let server = Server::start(Scenario::Honest, 100);
    let home = Home::new();
    let url = server.url("/paid");
    let dead = plannt_testkit::dead_port();
    let wallet = format!("dev+http://127.0.0.1:{dead}?account=cli");

    // Each run makes a new invoice; none may be left holding the budget.
    for _ in 0..2 {
        let output = home.run(&["get", "--wallet", &wallet, &url]);
        assert_eq!(code(&output), PAYMENT_FAILED, "{}", describe(&output));
        let text = stderr(&output);
        assert!(text.contains(&format!("dev at 127.0.0.1:{dead}")), "{text}");
        assert!(text.contains("nothing was sent"), "{text}");
        assert!(text.contains("Nothing was paid"), "{text}");
        assert!(!text.contains("in flight"), "{text}");
    }
    let ledger = home.ledger();
    assert_eq!(statuses(&ledger), ["failed", "failed"]);
    assert_eq!(day_used(&ledger), 0);

    // The wallet that answers pays at once, from a budget nothing holds.
    let output = home.run(&["get", "--wallet", &server.wallet(), &url]);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert_eq!(day_used(&home.ledger()), 100);
    assert_eq!(server.balance(), START_MSAT - 100_000);
}

#[test]
fn an_old_pending_payment_its_wallet_never_made_is_released_by_the_next_run() {
    let server = Server::start(Scenario::Honest, 100);
    let home = Home::new();
    // One payment of 100 sats and its fee reserve of 10 fits the day; two do not.
    let budget = [("PLANNT_BUDGET_DAILY_SATS", "120")];
    {
        // As a run against a wallet that could not be reached left it, before it was released.
        let older = home.ledger();
        let hash = PaymentHash(random32());
        let reservation = Reservation {
            dialect: plannt_client::Dialect::L402,
            payment_hash: &hash,
            origin: &format!("http://{}", server.hostile.addr),
            path: "/paid",
            bolt11: "lnbcrt1000n1older",
            macaroon: "AgE",
            amount_msat: 100_000,
            max_fee_msat: 10_000,
        };
        let daily = Budget {
            daily_sats: Some(120),
            ..Budget::default()
        };
        older
            .reserve(&reservation, &daily, unix_now())
            .unwrap()
            .unwrap();
        assert_eq!(statuses(&older), ["pending"]);
    }
    let mut get = home.plannt(&["get", "--wallet", &server.wallet(), &server.url("/paid")]);
    let output = get.envs(budget).output().unwrap();
    assert_eq!(code(&output), 0, "{}", describe(&output));
    let mut seen = statuses(&home.ledger());
    seen.sort();
    assert_eq!(seen, ["failed", "paid"]);
    assert_eq!(server.paid_count(), 1);
}

#[test]
fn each_network_failure_names_its_cause_and_exits_7() {
    let server = Server::start(Scenario::Honest, 21);
    let home = Home::new();
    let wallet = server.wallet();
    let dead = plannt_testkit::dead_port();
    let hang_up = Running::hang_up();
    let tls = server.url("/paid").replacen("http://", "https://", 1);
    let cases = [
        (
            format!("http://127.0.0.1:{dead}/paid"),
            "refused the connection: nothing listens on that port",
        ),
        (
            "http://plannt-test.invalid/paid".to_string(),
            "the host name of http://plannt-test.invalid does not resolve (DNS",
        ),
        (tls, "the TLS handshake with https://127.0.0.1:"),
        (
            hang_up.url("/paid"),
            "was reset or closed before the answer was complete",
        ),
    ];
    for (url, words) in cases {
        let output = home.run(&["get", "--wallet", &wallet, &url]);
        assert_eq!(code(&output), NETWORK_ERROR, "{url}: {}", describe(&output));
        assert!(output.stdout.is_empty(), "{url}");
        let text = stderr(&output);
        assert!(text.contains("network error: "), "{url}: {text}");
        assert!(text.contains(words), "{url}: {text}");
        assert!(!text.contains("error sending request"), "{url}: {text}");
    }
    assert!(home.ledger().recent(10).unwrap().is_empty());
    assert_eq!(server.paid_count(), 0);
}

#[test]
fn max_time_bounds_a_server_that_never_answers() {
    let silent = Running::silent();
    let home = Home::new();
    let url = silent.url("/");
    let output = home.run(&["get", "--max-time", "1", &url]);
    assert_eq!(code(&output), NETWORK_ERROR, "{}", describe(&output));
    let text = stderr(&output);
    assert!(text.contains("timeout: "), "{text}");
    assert!(text.contains("did not answer within 1 s"), "{text}");
    assert!(text.contains("--max-time"), "{text}");

    // The same from the settings, in a fraction of a second.
    let mut get = home.plannt(&["get", &url]);
    let output = get.env("PLANNT_MAX_TIME_SECS", "0.5").output().unwrap();
    assert_eq!(code(&output), NETWORK_ERROR, "{}", describe(&output));
    assert!(
        stderr(&output).contains("within 0.5 s"),
        "{}",
        describe(&output)
    );

    // A limit of nothing is no limit a person means.
    let output = home.run(&["get", "--max-time", "0", &url]);
    assert_ne!(code(&output), 0);
    assert!(
        stderr(&output).contains("more than 0 seconds"),
        "{}",
        describe(&output)
    );
}

#[test]
fn a_paid_retry_that_gets_no_answer_keeps_the_token_for_the_next_run() {
    let server = Server::start(Scenario::HangOnRetry, 21);
    let home = Home::new();
    let wallet = server.wallet();
    let url = server.url("/paid");
    // Time enough to ask and pay on a loaded machine; the retry then hangs until it runs out.
    let output = home.run(&["get", "--max-time", "10", "--wallet", &wallet, &url]);
    assert_eq!(code(&output), NETWORK_ERROR, "{}", describe(&output));
    let text = stderr(&output);
    assert!(text.contains("timeout: "), "{text}");
    assert!(
        text.contains("a token paid for this request is kept"),
        "{text}"
    );
    assert_eq!(statuses(&home.ledger()), ["paid"]);
    assert_eq!(server.paid_count(), 1);

    server.shared().set_scenario(Scenario::Honest);
    let output = home.run(&["get", "--wallet", &wallet, &url]);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert_eq!(output.stdout, b"{\"result\":\"paid\"}");
    assert!(
        stderr(&output).contains("presented a token paid earlier"),
        "{}",
        describe(&output)
    );
    assert_eq!(server.paid_count(), 1);
    assert_eq!(server.balance(), START_MSAT - 21_000);
}

#[test]
fn the_max_time_running_out_while_paying_leaves_it_pending_for_the_next_run() {
    let server = Server::start(Scenario::Honest, 21);
    let home = Home::new();
    let url = server.url("/paid");
    // A wallet that takes the payment and never answers.
    let silent = Running::silent();
    let hung = format!("dev+http://{}?account=cli", silent.server.addr);
    let output = home.run(&["get", "--max-time", "3", "--wallet", &hung, &url]);
    assert_eq!(code(&output), PAYMENT_FAILED, "{}", describe(&output));
    let text = stderr(&output);
    assert!(text.contains("ran out while the payment"), "{text}");
    assert!(text.contains("stays pending"), "{text}");
    assert_eq!(statuses(&home.ledger()), ["pending"]);

    // The next run looks it up first: this wallet never made it, so it is released, and the
    // request is paid once.
    let output = home.run(&["get", "--wallet", &server.wallet(), &url]);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    let mut seen = statuses(&home.ledger());
    seen.sort();
    assert_eq!(seen, ["failed", "paid"]);
    assert_eq!(server.paid_count(), 1);
    assert_eq!(server.balance(), START_MSAT - 21_000);
}

#[test]
fn plannt_mcp_says_when_its_wallet_cannot_be_reached_and_fetch_pays_nothing() {
    let server = Server::start(Scenario::Honest, 21);
    let home = Home::new();
    let dead = plannt_testkit::dead_port();
    let key = "0123456789abcdef0123456789abcdef";
    let wallet = format!("lnbits+http://127.0.0.1:{dead}?key={key}&network=regtest");
    let mut mcp = Mcp::start(
        &home,
        &[
            ("PLANNT_WALLET", &wallet),
            ("PLANNT_ALLOW_PRIVATE_NETWORKS", "true"),
        ],
    );
    let logged = mcp.stderr();
    assert!(logged.contains("the wallet cannot be reached"), "{logged}");
    assert!(logged.contains(&format!("127.0.0.1:{dead}")), "{logged}");
    assert!(!logged.contains(key), "the key shows in {logged}");

    let (error, result) = mcp.call("fetch", json!({"url": server.url("/paid")}));
    assert!(error, "{result}");
    assert_eq!(result["error"], "wallet_unreachable", "{result}");
    assert_eq!(result["paid"], false, "{result}");
    let message = result["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("lnbits at 127.0.0.1:{dead}")),
        "{message}"
    );
    assert!(message.contains("Nothing was paid"), "{message}");
    assert!(!message.contains(key), "{message}");
    let (_, spending) = mcp.call("spending", json!({}));
    let day = spending["windows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["window"] == "day")
        .unwrap()
        .clone();
    assert_eq!(day["used_sats"], 0, "{spending}");
    assert_eq!(
        spending["recent_payments"][0]["status"], "failed",
        "{spending}"
    );
    assert_eq!(server.paid_count(), 0);
}

#[test]
fn plannt_mcp_fetch_is_bounded_by_the_max_time_and_says_so() {
    let server = Server::start(Scenario::Honest, 21);
    let silent = Running::silent();
    let home = Home::new();
    let mut mcp = Mcp::start(
        &home,
        &[
            ("PLANNT_WALLET", &server.wallet()),
            ("PLANNT_ALLOW_PRIVATE_NETWORKS", "true"),
            ("PLANNT_MAX_TIME_SECS", "1"),
        ],
    );
    assert!(
        mcp.stderr().contains("the wallet answers"),
        "{}",
        mcp.stderr()
    );
    let (error, result) = mcp.call("fetch", json!({"url": silent.url("/slow")}));
    assert!(error, "{result}");
    assert_eq!(result["error"], "network_error", "{result}");
    assert_eq!(
        (result["cause"].clone(), result["timeout_secs"].clone()),
        (json!("timeout"), json!(1.0)),
        "{result}"
    );
    let message = result["message"].as_str().unwrap();
    assert!(message.contains("within 1 s"), "{message}");
    assert!(message.contains("PLANNT_MAX_TIME_SECS"), "{message}");
}

#[test]
fn plannt_mcp_whose_input_closes_before_a_client_initialised_it_says_so() {
    let home = Home::new();
    let output = home.run(&["mcp"]);
    assert_ne!(code(&output), 0, "{}", describe(&output));
    let text = stderr(&output);
    assert!(
        text.contains("standard input closed before an MCP client initialised the session"),
        "{text}"
    );
    assert!(text.contains("docs/mcp.md"), "{text}");
    // Not on a terminal: no words for a person.
    assert!(
        !text.contains("is meant to be started by an MCP client such as"),
        "{text}"
    );
}

#[cfg(unix)]
#[test]
fn plannt_mcp_started_on_a_terminal_says_what_it_is_and_keeps_serving() {
    use std::io::{BufRead, BufReader, Write};

    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};

    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let name = ptsname(&master, Vec::new()).unwrap();
    let terminal = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(name.to_str().unwrap())
        .unwrap();
    let home = Home::new();
    let log = home.path().join("stderr.log");
    let mut child = home
        .plannt(&["mcp"])
        .env("PLANNT_WALLET", "dev")
        .stdin(Stdio::from(terminal))
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_until("plannt mcp says what it is", || {
        read_log().contains("plannt mcp is an MCP server")
    });
    let said = read_log();
    assert!(said.contains("claude mcp add plannt"), "{said}");
    assert!(said.contains("docs/mcp.md"), "{said}");

    // Still serving: an initialization typed on the terminal is answered.
    let mut keys = std::fs::File::from(master);
    let initialize = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "a person", "version": "1"}}
    });
    writeln!(keys, "{initialize}").unwrap();
    let stdout = child.stdout.take().unwrap();
    let (sender, answers) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = sender.send(line);
    });
    let answer = answers
        .recv_timeout(Duration::from_secs(60))
        .expect("an answer to initialize");
    assert!(answer.contains("serverInfo"), "{answer}");

    // Ctrl-D ends the session.
    keys.write_all(b"\x04").unwrap();
    let mut status = None;
    wait_until("plannt mcp ends at end of input", || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    drop(keys);
    assert!(status.unwrap().success(), "{}", read_log());
}
