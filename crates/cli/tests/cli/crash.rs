//! `plannt get` killed between paying and retrying: the server took the payment and never
//! answers the retry; the process is killed once the ledger shows the payment paid. The next run
//! of the same URL presents the stored token, gets the answer, and pays nothing more.

use std::process::Stdio;
use std::sync::atomic::Ordering;

use crate::support::{Home, START_MSAT, Scenario, Server, code, describe, wait_until};

#[test]
fn the_next_run_finishes_with_the_token_a_killed_run_paid_for() {
    let server = Server::start(Scenario::HangOnRetry, 21);
    let home = Home::new();
    let wallet = server.wallet();
    let url = server.url("/paid");
    let mut child = home
        .plannt(&["get", "--wallet", &wallet, &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ledger_file = home.data_dir().join("ledger.sqlite");
    wait_until("the ledger shows the payment paid", || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("plannt get ended before it was killed: {status}");
        }
        ledger_file.exists()
            && home
                .ledger()
                .recent(10)
                .is_ok_and(|r| r.len() == 1 && r[0].status == "paid")
    });
    child.kill().unwrap();
    let killed = child.wait_with_output().unwrap();
    assert!(killed.status.code().is_none(), "{}", describe(&killed));
    assert!(killed.stdout.is_empty());
    assert_eq!(server.balance(), START_MSAT - 21_000);
    assert_eq!(server.paid_count(), 1);
    assert_eq!(server.shared().challenges.load(Ordering::SeqCst), 1);

    // The server answers again; the next run presents the token the killed one paid for.
    server.shared().set_scenario(Scenario::Honest);
    let output = home.run(&["get", "--wallet", &wallet, &url]);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert_eq!(output.stdout, b"{\"result\":\"paid\"}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("presented a token paid earlier"),
        "{stderr}"
    );

    // Paid once: no new challenge was asked for, the balance moved once.
    assert_eq!(server.balance(), START_MSAT - 21_000);
    assert_eq!(server.received(), 21_000);
    assert_eq!(server.paid_count(), 1);
    assert_eq!(server.shared().challenges.load(Ordering::SeqCst), 1);
    assert_eq!(server.shared().paid_requests.load(Ordering::SeqCst), 1);
    let records = home.ledger().recent(10).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].status, "paid");

    // The token was spent: the run after that pays for a new one.
    let output = home.run(&["get", "--wallet", &wallet, &url]);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert_eq!(server.paid_count(), 2);
    assert_eq!(server.balance(), START_MSAT - 42_000);
}
