//! `plannt`: L402 for agents. One binary for the gateway, the paying client and the MCP server.
//!
//! Subcommands only: the logic lives in the library crates.

mod check;
mod decode;
mod demo;
mod dev;
mod error;
mod get;
mod ledger;
mod logging;
mod manual;
mod mcp;
mod out;
mod serve;
mod session;
mod setup;
mod stats;
mod wallet;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use error::Error;
use out::errln;

// Many small allocations a request, freed on whichever worker thread ends it: mimalloc's
// thread-local free lists serve that pattern better than glibc's arenas.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Where each side's settings live, shown by `plannt --help` (and told in the README's
/// "Configuration").
macro_rules! configuration {
    () => {
        "Configuration, the same story for every command: built-in defaults, then a TOML file, then PLANNT_<KEY> environment variables, then flags (each wins over the ones before it).
  plannt serve (the gateway): the file named by --config or PLANNT_CONFIG (e.g. plannt.toml; none by default: the demo service on the dev network). Keys: docs/gateway.md.
  get, post, request, ledger, wallet, mcp (the paying side): config.toml in $PLANNT_CONFIG_DIR, else $XDG_CONFIG_HOME/plannt, else ~/.config/plannt (a missing file is fine). Keys: plannt get --help.
  Files both keep (the ledger; the gateway's root.key and spent.sqlite): $PLANNT_DATA_DIR, else $XDG_DATA_HOME/plannt, else ~/.local/share/plannt.
  Logs: RUST_LOG (e.g. RUST_LOG=debug)."
    };
}

/// Plannt: pay-per-request APIs over Lightning, for agents.
///
/// Every protected request is answered `402 Payment Required` with a Lightning invoice and a
/// macaroon; the client pays, and retries with `Authorization: L402 <macaroon>:<preimage>`.
#[derive(Parser)]
#[command(
    name = "plannt",
    version,
    propagate_version = true,
    max_term_width = 100,
    after_help = concat!(configuration!(), "\n\n", error::exit_status!())
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Walk the five steps of L402 for real: a gateway and a wallet on the dev network, in one process.
    Demo,
    /// Run the gateway: an L402 paywall in front of your API (or the demo service).
    Serve(serve::Args),
    /// GET a URL, paying its 402 (L402, MPP or x402) if it asks (curl that pays).
    Get(get::Args),
    /// POST to a URL, paying its 402 (L402, MPP or x402) if it asks.
    Post(get::Args),
    /// Send any request (-X METHOD), paying its 402 (L402, MPP or x402) if it asks.
    Request(get::Args),
    /// Check a 402 server's challenges (L402, MPP, x402), invoices and catalog; pays only with --pay.
    Check(check::Args),
    /// Show the receipts, refusals, totals per host and day, what each budget has left, and paid
    /// requests without an answer (`plannt ledger retry` sends one again, paying nothing).
    Ledger(ledger::Args),
    /// Show what a gateway earned and refused: per route, per day, per dialect, refusals by
    /// reason, the latest payments (from its admin API, or read from its store).
    Stats(stats::Args),
    /// List the prepaid sessions (MPP) the ledger knows, and close them to get their balance back.
    Session(session::Args),
    /// Show what a macaroon, credential, challenge, invoice or receipt holds, in any dialect.
    ///
    /// Accepts a macaroon (base64 of any flavour, or hex), an `Authorization` value
    /// (`L402 <macaroon>:<preimage>`, `Payment <credential>`), a `WWW-Authenticate` value
    /// (`L402 macaroon="…", invoice="…"`, `Payment id="…", …`), a `Payment-Receipt` (a
    /// charge's, or a session's with its debit, hold, balance or refund), `PAYMENT-REQUIRED`,
    /// `PAYMENT-SIGNATURE` or `PAYMENT-RESPONSE` value, each with or without its header name, a
    /// session stream's `: plannt-session-debit {…}` comment (alone or in a pasted stream), or a
    /// BOLT11 invoice.
    Decode(decode::Args),
    /// Use a Lightning wallet: balance, pay an invoice, issue one.
    Wallet(wallet::Args),
    /// Run the simulated Lightning network alone on loopback. No real money moves.
    Dev(dev::Args),
    /// Run the MCP server (stdio, or --http ADDR): tools for an agent to discover, pay for and call L402 APIs within your budgets.
    Mcp(mcp::Args),
    /// Print the shell completion script for bash, zsh, fish, elvish or powershell.
    Completions(manual::CompletionsArgs),
    /// Print the manual page (roff): `plannt man | man -l -`.
    Man(manual::ManArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli.command) {
        Ok(code) => code,
        // The reader of standard output is gone (`plannt ledger | head`): nothing to say.
        Err(Error::Closed) => ExitCode::SUCCESS,
        Err(e) => {
            errln!("plannt: {e}");
            e.exit_code()
        }
    }
}

/// Runs a command: its exit status, or the error that stopped it.
fn run(command: &Command) -> Result<ExitCode, Error> {
    let done = |()| ExitCode::SUCCESS;
    match command {
        Command::Get(args) => runtime()?.block_on(get::run(args, "GET")),
        Command::Post(args) => runtime()?.block_on(get::run(args, "POST")),
        Command::Request(args) => runtime()?.block_on(get::run(args, "GET")),
        Command::Check(args) => runtime()?.block_on(check::run(args)),
        Command::Serve(args) => runtime()?.block_on(serve::run(args)).map(done),
        Command::Decode(args) => decode::run(args).map(done),
        Command::Ledger(args) => ledger::run(args),
        Command::Stats(args) => runtime()?.block_on(stats::run(args)).map(done),
        Command::Session(args) => session::run(args),
        Command::Demo => runtime()?.block_on(demo::run()).map(done),
        Command::Wallet(args) => runtime()?.block_on(wallet::run(args)).map(done),
        Command::Dev(args) => runtime()?.block_on(dev::run(args)).map(done),
        Command::Mcp(args) => runtime()?.block_on(mcp::run(args)).map(done),
        Command::Completions(args) => manual::completions(args, Cli::command()).map(done),
        Command::Man(args) => manual::man(args, Cli::command()).map(done),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::failed("cannot start the async runtime", e))
}
