//! Twenty `plannt get` processes at once, sharing one ledger, against a daily budget that fits
//! ten payments: ten pay, the other ten exit 3 (over budget) having paid nothing. The count is
//! checked in the ledger and in what the dev network received.

use std::process::Stdio;

use crate::support::{Home, Scenario, Server, code, describe};

const PRICE: u64 = 21;
const PROCESSES: usize = 20;
const FITS: usize = 10;

#[test]
fn twenty_processes_share_one_budget_of_ten_payments() {
    let server = Server::start(Scenario::Honest, PRICE);
    let home = Home::new();
    let budget = (PRICE * FITS as u64).to_string();
    let wallet = server.wallet();
    let url = server.url("/paid");
    let children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            home.plannt(&["get", "--wallet", &wallet, &url])
                .env("PLANNT_BUDGET_DAILY_SATS", &budget)
                .env("PLANNT_BUDGET_HOURLY_SATS", "none")
                // The reservation counts the fee limit too: none, so ten fit exactly.
                .env("PLANNT_MAX_FEE_SATS", "0")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();

    // Every process that did otherwise is named, not only the first: one that failed may have
    // left something behind that another then met.
    let mut paid = 0;
    let mut over_budget = 0;
    let mut unexpected = Vec::new();
    for output in &outputs {
        let stderr = String::from_utf8_lossy(&output.stderr);
        match code(output) {
            0 if output.stdout == b"{\"result\":\"paid\"}" => paid += 1,
            3 if output.stdout.is_empty() && stderr.contains("over budget: the day budget") => {
                over_budget += 1
            }
            _ => unexpected.push(describe(output)),
        }
    }
    assert!(
        unexpected.is_empty(),
        "expected exit 0 with the answer or exit 3 over budget:\n{}\nthe ledger: {:?}",
        unexpected.join("\n"),
        home.ledger().recent(100)
    );
    assert_eq!((paid, over_budget), (FITS, PROCESSES - FITS));

    let records = home.ledger().recent(100).unwrap();
    let settled: Vec<_> = records.iter().filter(|r| r.status == "paid").collect();
    assert_eq!(settled.len(), FITS, "{records:?}");
    assert!(records.iter().all(|r| r.status == "paid"), "{records:?}");
    assert_eq!(server.paid_count(), FITS);
    assert_eq!(server.received(), FITS as u64 * PRICE * 1000);
    let refusals = home.ledger().refusals(100).unwrap();
    assert_eq!(refusals.len(), PROCESSES - FITS);
    assert!(refusals.iter().all(|r| r.check == "over_budget"));
}
