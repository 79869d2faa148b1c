//! What a new user reads in the first hour: a URL typed without its scheme, `-v` telling each
//! step once, counts in the singular when there is one, no progress line where no one watches,
//! one configuration story in `--help` (and it holds), shell completions and the manual page.

use std::process::Output;

use crate::support::{Home, Scenario, Server, code, describe};

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn a_url_without_a_scheme_is_http_on_loopback_and_https_elsewhere() {
    let server = Server::start(Scenario::Honest, 21);
    let home = Home::new();
    let wallet = server.wallet();
    let addr = server.hostile.addr;

    for url in [
        format!("127.0.0.1:{}/paid", addr.port()),
        format!("localhost:{}/paid", addr.port()),
    ] {
        let output = home.run(&["get", "-v", "--wallet", &wallet, &url]);
        assert_eq!(code(&output), 0, "{url}: {}", describe(&output));
        assert_eq!(stdout(&output), "{\"result\":\"paid\"}");
        assert!(
            stderr(&output).contains(&format!("> GET http://{url}")),
            "{}",
            describe(&output)
        );
    }
    assert_eq!(server.paid_count(), 2);

    // Any other host is asked over https (here a name pinned to a port where nothing listens).
    let dead = plannt_testkit::dead_port();
    let url = format!("api.example.invalid:{dead}/v1/x");
    let pin = format!("api.example.invalid:{dead}:127.0.0.1");
    let output = home.run(&["get", "-v", "--resolve", &pin, "--wallet", &wallet, &url]);
    assert_eq!(code(&output), 7, "{}", describe(&output));
    assert!(
        stderr(&output).contains(&format!("> GET https://{url}")),
        "{}",
        describe(&output)
    );

    // Not a URL with or without a scheme: bad usage, in words.
    let output = home.run(&["get", "--wallet", &wallet, "no such/host:x"]);
    assert_eq!(code(&output), 2, "{}", describe(&output));
    assert!(
        stderr(&output).contains("is not a URL"),
        "{}",
        describe(&output)
    );
    assert!(!stderr(&output).contains("relative URL without a base"));
}

#[test]
fn verbose_tells_each_step_once_and_counts_take_their_plural() {
    let server = Server::start(Scenario::Honest, 1);
    let home = Home::new();
    let wallet = server.wallet();
    let url = server.url("/paid");

    let output = home.run(&["get", "-v", "--wallet", &wallet, &url]);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    let text = stderr(&output);
    assert_eq!(
        text.matches("402 Payment Required").count(),
        1,
        "the 402's status line once: {text}"
    );
    assert!(text.contains("<   price:    1 sat\n"), "{text}");
    assert!(text.contains("* paying 1 sat over Lightning"), "{text}");
    assert!(text.contains("plannt: paid 1 sat over l402 (fee"), "{text}");
    assert!(text.contains("<   dialect:  l402\n"), "{text}");
    // stderr is not a terminal here: no progress line, no terminal codes.
    assert!(!text.contains('\r') && !text.contains('\x1b'), "{text:?}");

    let output = home.run(&["ledger"]);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    let ledger = stdout(&output);
    let host = ledger
        .lines()
        .find(|l| l.contains("http://127.0.0.1"))
        .unwrap_or_else(|| panic!("a line per host: {ledger}"));
    assert!(
        host.contains(" 1 payment ") && host.ends_with(" 1 sat"),
        "{host:?}"
    );
    assert!(
        !ledger.contains(" 1 payments") && !ledger.contains(" 1 sats"),
        "{ledger}"
    );

    server.shared().set_price(21);
    assert_eq!(
        code(&home.run(&["get", "-s", "--wallet", &wallet, &url])),
        0
    );
    let ledger = stdout(&home.run(&["ledger"]));
    assert!(
        ledger.contains(" 2 payments ") && ledger.contains(" 22 sats"),
        "{ledger}"
    );
}

#[test]
fn help_tells_one_configuration_story_and_it_holds() {
    let server = Server::start(Scenario::Honest, 21);
    let home = Home::new();
    let output = home.run(&["--help"]);
    assert_eq!(code(&output), 0);
    let help = stdout(&output)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for says in [
        "--config or PLANNT_CONFIG",
        "config.toml in $PLANNT_CONFIG_DIR, else $XDG_CONFIG_HOME/plannt, else ~/.config/plannt",
        "$PLANNT_DATA_DIR, else $XDG_DATA_HOME/plannt, else ~/.local/share/plannt",
        "then PLANNT_<KEY> environment variables, then flags",
    ] {
        assert!(help.contains(says), "{says:?} missing: {help}");
    }
    // The README tells it in one place, which the other docs point to.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    assert!(readme.contains("\n## Configuration\n"), "README.md");
    for doc in ["gateway.md", "mcp.md"] {
        let text =
            std::fs::read_to_string(format!("{}/../../docs/{doc}", env!("CARGO_MANIFEST_DIR")))
                .unwrap();
        assert!(
            text.contains("../README.md#configuration"),
            "docs/{doc} points to the README's story"
        );
    }

    // And it holds for the paying side: the file, then the variable over it.
    let wallet = server.wallet();
    let url = server.url("/paid");
    std::fs::write(
        home.path().join("config/config.toml"),
        "max_sats_per_request = 5\n",
    )
    .unwrap();
    let output = home.run(&["get", "--wallet", &wallet, &url]);
    assert_eq!(code(&output), 4, "the file's cap: {}", describe(&output));
    let output = home
        .plannt(&["get", "-s", "--wallet", &wallet, &url])
        .env("PLANNT_MAX_SATS_PER_REQUEST", "50")
        .output()
        .unwrap();
    assert_eq!(
        code(&output),
        0,
        "the variable's cap: {}",
        describe(&output)
    );
}

#[test]
fn completions_and_the_manual_come_from_the_same_definitions_as_help() {
    let home = Home::new();
    let output = home.run(&["completions", "bash"]);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    let bash = stdout(&output);
    assert!(bash.contains("complete -F _plannt"), "{bash}");
    for word in ["get", "ledger", "serve", "--max-sats", "--dry-run"] {
        assert!(
            bash.contains(word),
            "{word} missing from the bash completions"
        );
    }
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let output = home.run(&["completions", shell]);
        assert_eq!(code(&output), 0, "{shell}: {}", describe(&output));
        assert!(stdout(&output).contains("max-sats"), "{shell}");
    }
    assert_eq!(code(&home.run(&["completions", "tcsh"])), 2);

    let output = home.run(&["man"]);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    let page = stdout(&output);
    assert!(
        page.starts_with(".ie") || page.starts_with(".TH"),
        "roff: {page}"
    );
    for section in [
        ".TH plannt 1",
        ".SH NAME",
        ".SH SUBCOMMANDS",
        "plannt\\-get(1)",
    ] {
        assert!(page.contains(section), "{section} missing: {page}");
    }
    let output = home.run(&["man", "get"]);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    let page = stdout(&output);
    for section in [
        ".TH plannt-get 1",
        ".SH NAME",
        "\\-\\-max\\-sats",
        "Exit status: 0",
    ] {
        assert!(page.contains(section), "{section} missing: {page}");
    }
    let output = home.run(&["man", "nope"]);
    assert_eq!(code(&output), 2, "{}", describe(&output));
}
