//! `plannt`: L402 for agents. One binary for the gateway, the paying client and the MCP server.
//!
//! Subcommands only: the logic lives in the library crates.

mod decode;
mod demo;
mod dev;
mod get;
mod ledger;
mod logging;
mod mcp;
mod paths;
mod serve;
mod wallet;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    let paying = match &cli.command {
        Command::Get(args) => Some((args, "GET")),
        Command::Post(args) => Some((args, "POST")),
        Command::Request(args) => Some((args, "GET")),
        _ => None,
    };
    if let Some((args, method)) = paying {
        return match runtime() {
            Ok(rt) => rt.block_on(get::run(args, method)),
            Err(e) => {
                eprintln!("plannt: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let result = match &cli.command {
        Command::Serve(args) => runtime().and_then(|rt| rt.block_on(serve::run(args))),
        Command::Decode(args) => decode::run(args),
        Command::Ledger(args) => ledger::run(args),
        Command::Demo => runtime().and_then(|rt| rt.block_on(demo::run())),
        Command::Wallet(args) => runtime().and_then(|rt| rt.block_on(wallet::run(args))),
        Command::Dev(args) => runtime().and_then(|rt| rt.block_on(dev::run(args))),
        Command::Mcp(args) => runtime().and_then(|rt| rt.block_on(mcp::run(args))),
        Command::Get(_) | Command::Post(_) | Command::Request(_) => unreachable!("handled above"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("plannt: {message}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}
