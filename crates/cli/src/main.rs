//! `plannt`: L402 for agents. One binary for the gateway, the paying client and the MCP server.
//!
//! Subcommands only: the logic lives in the library crates.

mod decode;
mod demo;
mod dev;
mod error;
mod get;
mod ledger;
mod logging;
mod mcp;
mod serve;
mod setup;
mod wallet;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use error::Error;

/// Plannt: pay-per-request APIs over Lightning, for agents.
///
/// Every protected request is answered `402 Payment Required` with a Lightning invoice and a
/// macaroon; the client pays, and retries with `Authorization: L402 <macaroon>:<preimage>`.
#[derive(Parser)]
#[command(
    name = "plannt",
    version,
    propagate_version = true,
    max_term_width = 100
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
    /// GET a URL, paying its L402 challenge if it asks (curl that pays).
    Get(get::Args),
    /// POST to a URL, paying its L402 challenge if it asks.
    Post(get::Args),
    /// Send any request (-X METHOD), paying its L402 challenge if it asks.
    Request(get::Args),
    /// Show the receipts, refusals, totals per host and day, and what each budget has left.
    Ledger(ledger::Args),
    /// Show what a macaroon, credential, challenge or invoice holds.
    ///
    /// Accepts a macaroon (base64 of any flavour, or hex), an `Authorization` value
    /// (`L402 <macaroon>:<preimage>`), a `WWW-Authenticate` value (`L402 macaroon="…",
    /// invoice="…"`), each with or without its header name, or a BOLT11 invoice.
    Decode(decode::Args),
    /// Use a Lightning wallet: balance, pay an invoice, issue one.
    Wallet(wallet::Args),
    /// Run the simulated Lightning network alone on loopback. No real money moves.
    Dev(dev::Args),
    /// Run the MCP server (stdio, or --http ADDR): tools for an agent to discover, pay for and call L402 APIs within your budgets.
    Mcp(mcp::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("plannt: {e}");
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
        Command::Serve(args) => runtime()?.block_on(serve::run(args)).map(done),
        Command::Decode(args) => decode::run(args).map(done),
        Command::Ledger(args) => ledger::run(args).map(done),
        Command::Demo => runtime()?.block_on(demo::run()).map(done),
        Command::Wallet(args) => runtime()?.block_on(wallet::run(args)).map(done),
        Command::Dev(args) => runtime()?.block_on(dev::run(args)).map(done),
        Command::Mcp(args) => runtime()?.block_on(mcp::run(args)).map(done),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::failed("cannot start the async runtime", e))
}
