//! A closed standard output (`plannt ledger | head -1`, the reader gone) ends every command
//! that prints quietly: exit status 0, no panic, no message. Each command here writes to a pipe
//! whose read end was closed before it started, so its very first write fails.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::support::{Home, Scenario, Server, describe};

/// An Aperture token, for `plannt decode`.
const TOKEN: &str = "AgEEbHNhdAJCAAAwpHpumws6ufQoDwiTLNcge0QPUIWA0+tVY+tKPYAJ/zSfmEGlIpNm3VzxuzCqLhEp5KGiyPLUM9L+kcB7uzS+AAIPc2VydmljZXM9bWVtZTowAAISbWVtZV9jYXBhYmlsaXRpZXM9AAAGILA1VCEIExukt4nG+XR9tX8WJ2BVMiHG3UNt1uYJ+NRD";

/// Runs `command` with its standard output a pipe nobody reads (its read end closed first).
fn into_closed_pipe(mut command: Command, what: &str) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut child = command
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The child holds the only write end; the command's copy goes with it.
    drop(command);
    plannt_testkit::process::wait(&mut child, Duration::from_secs(60), what);
    child.wait_with_output().unwrap()
}

/// Asserts that `args` ended quietly: exit 0, and on stderr at most the lines `allowed` lets
/// through (a receipt, a note), never a panic or an error.
fn assert_quiet(home: &Home, args: &[&str], allowed: impl Fn(&str) -> bool) -> Output {
    let output = into_closed_pipe(home.plannt(args), &format!("plannt {}", args.join(" ")));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(0),
        "plannt {args:?}: {}",
        describe(&output)
    );
    for line in stderr.lines() {
        assert!(
            allowed(line) && !line.contains("panicked") && !line.contains("Broken pipe"),
            "plannt {args:?} said {line:?}: {}",
            describe(&output)
        );
    }
    output
}

#[test]
fn a_closed_standard_output_ends_every_command_quietly() {
    let server = Server::start(Scenario::Honest, 21);
    let home = Home::new();
    let wallet = server.wallet();
    let url = server.url("/paid");
    let nothing = |_: &str| false;

    for args in [
        &["--help"][..],
        &["--version"],
        &["get", "--help"],
        &["completions", "bash"],
        &["man"],
        &["man", "get"],
        &["ledger"],
        &["ledger", "--json"],
        &["decode", TOKEN],
        &["decode", "--json", TOKEN],
        &["demo"],
    ] {
        assert_quiet(&home, args, nothing);
    }
    // `plannt wallet` notes on stderr that the dev network moves no real money.
    let note = |line: &str| line.starts_with("note: ");
    for args in [
        &["wallet", "--wallet", &wallet, "balance"][..],
        &["wallet", "--wallet", &wallet, "--json", "balance"],
        &["wallet", "--wallet", &wallet, "invoice", "21"],
    ] {
        assert_quiet(&home, args, note);
    }

    // A paid request: the reader left, the payment stands, and its receipt is still told.
    let paid_before = server.paid_count();
    let output = assert_quiet(&home, &["get", "--wallet", &wallet, &url], |line| {
        line.starts_with("plannt: paid 21 sats")
    });
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("plannt: paid 21 sats"),
        "{}",
        describe(&output)
    );
    for args in [
        &["get", "-s", "-i", "--wallet", &wallet, &url][..],
        &["get", "--json", "--wallet", &wallet, &url],
        &[
            "get",
            "-s",
            "--dry-run",
            "--json",
            "--wallet",
            &wallet,
            &url,
        ],
    ] {
        assert_quiet(&home, args, nothing);
    }
    assert_eq!(server.paid_count(), paid_before + 3);
    assert_eq!(home.ledger().recent(10).unwrap().len(), 3);
}
