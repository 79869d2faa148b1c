//! `plannt mcp`: the MCP server, on stdio (for `claude mcp add plannt -- plannt mcp`) or on
//! streamable HTTP with `--http ADDR`.
//!
//! The wallet, the budgets, the allowed hosts and the confirmation threshold come from the
//! config file and the environment, as for `plannt get`; payments go in the same ledger.
//! Standard output belongs to the protocol: logs go to standard error. At start it asks the
//! wallet for its balance (bounded by [`WALLET_CHECK`]) and logs what it answered; it serves
//! even when the wallet cannot be reached, and says so. Started by hand on a terminal, it says
//! what it is and how an MCP client starts it.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::time::Duration;

use plannt_mcp::{Config, HTTP_PATH, PlanntMcp};

use crate::error::Error;
use crate::out::errln;
use crate::setup::{self, Setup};

const AFTER_HELP: &str = "Add it to Claude Code:
  claude mcp add plannt -e PLANNT_WALLET=… -e PLANNT_BUDGET_DAILY_SATS=2000 -- plannt mcp

Tools: fetch (call a URL, paying its L402, MPP or x402 price within the policy), discover (a server's prices, free), balance, spending.

The policy is the operator's, never the agent's: ~/.config/plannt/config.toml, each key overridable by the environment: max_sats_per_request (PLANNT_MAX_SATS_PER_REQUEST, default 500), budget_hourly_sats (2000), budget_daily_sats (5000), budget_total_sats (none), max_fee_sats (10), allowed_hosts (PLANNT_ALLOWED_HOSTS: every request, paid or not), allow_private_networks (PLANNT_ALLOW_PRIVATE_NETWORKS, default false: loopback, private, link-local and cloud-metadata addresses are refused, after DNS too; proxies are then not used), allow_insecure_http (PLANNT_ALLOW_INSECURE_HTTP, default false: a challenge over plain http is paid only from a loopback host), confirm_above_sats (PLANNT_CONFIRM_ABOVE_SATS, default 100: above it a human confirms through the MCP client, and a client that cannot ask is refused). A tool's max_sats argument only lowers the cap. No tool call ever reaches the wallet's own API (e.g. /_plannt/dev/ of a dev+http wallet, /api/ of LNbits, the whole LND, CLN or phoenixd address), whatever the settings. Payments are recorded in ledger.sqlite under the data directory (PLANNT_DATA_DIR), shared with `plannt get` and `plannt ledger`.

Timeouts: connect_timeout_secs (PLANNT_CONNECT_TIMEOUT_SECS, default 10) bounds each connection and max_time_secs (PLANNT_MAX_TIME_SECS, default 120) a whole fetch, payment included; no tool argument raises them. At start the wallet is asked for its balance and the answer logged (an unreachable wallet is said, and the server serves anyway).";

#[derive(clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// Serve streamable HTTP on ADDR (e.g. 127.0.0.1:8403), at /mcp, instead of stdio.
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
    /// Let --http listen on a non-loopback address. Anyone who reaches it can spend the budget.
    #[arg(long)]
    allow_remote: bool,
    /// The wallet, as a backend URI [default: the config file, PLANNT_WALLET, or dev+http://127.0.0.1:8402].
    #[arg(long)]
    wallet: Option<String>,
    /// Cut response bodies in tool results at this many bytes (the result says when it did).
    #[arg(long, env = "PLANNT_MCP_MAX_BODY_BYTES", default_value_t = plannt_mcp::DEFAULT_MAX_BODY_BYTES)]
    max_body_bytes: usize,
    /// Log JSON lines (to stderr).
    #[arg(long)]
    log_json: bool,
}

/// The default log filter: as `plannt serve`, but with the MCP SDK's per-session chatter at
/// `warn` unless `RUST_LOG` asks for it.
const LOG_FILTER: &str = "info,rmcp=warn";

/// How long the wallet has to answer the check at start.
const WALLET_CHECK: Duration = Duration::from_secs(5);

/// What `plannt mcp` says when a person starts it on a terminal.
const ON_A_TERMINAL: &str = "plannt mcp is an MCP server: it speaks JSON-RPC on standard input and output, and is meant to be started by an MCP client such as Claude Code or Cursor, for example:

  claude mcp add plannt -e PLANNT_WALLET='lnbits+https://lnbits.example?key=…' -e PLANNT_BUDGET_DAILY_SATS=2000 -- plannt mcp

docs/mcp.md shows the setup for each client, the tools and the policy. It is serving on this terminal now: press Ctrl-D to end it, or Ctrl-C.";

/// Asks the wallet for its balance, within [`WALLET_CHECK`], and logs what it answered. An
/// unreachable wallet is said, not fatal: the server starts, and a payment fails (paying
/// nothing) until the wallet answers.
async fn check_wallet(client: &plannt_client::Client, wallet: &str) {
    match tokio::time::timeout(WALLET_CHECK, client.wallet().balance()).await {
        Ok(Ok(balance)) => tracing::info!(
            wallet,
            balance_sats = balance.msat / 1000,
            "the wallet answers"
        ),
        Ok(Err(e)) => tracing::warn!(
            wallet,
            error = %e,
            "the wallet cannot be reached or refused the check: plannt mcp serves anyway, and fetch pays nothing until the wallet answers"
        ),
        Err(_) => tracing::warn!(
            wallet,
            "the wallet did not answer within {} s: plannt mcp serves anyway, and fetch pays nothing until the wallet answers",
            WALLET_CHECK.as_secs()
        ),
    }
}

pub async fn run(args: &Args) -> Result<(), Error> {
    crate::logging::init_with(args.log_json, LOG_FILTER);
    if args.max_body_bytes == 0 {
        return Err(Error::Usage("--max-body-bytes must be at least 1".into()));
    }
    if let Some(addr) = args.http
        && !addr.ip().is_loopback()
        && !args.allow_remote
    {
        return Err(Error::Usage(format!(
            "--http {addr} is not a loopback address: anyone who reaches it could spend the budget. Use 127.0.0.1, or add --allow-remote behind your own authentication."
        )));
    }
    let settings = setup::settings()?;
    if args.http.is_none() && std::io::stdin().is_terminal() {
        errln!("{ON_A_TERMINAL}");
    }
    // An agent chose these URLs: private addresses only if the operator allows them.
    let client = setup::open_client(
        &settings,
        Setup {
            wallet: args.wallet.as_deref(),
            policy: settings.policy_for(false),
            redirects: 0,
            pins: Vec::new(),
            timeouts: settings.timeouts,
        },
    )
    .await?;
    if client.wallet().name() == "dev" {
        tracing::warn!("{}", plannt_lightning::dev::WARNING);
    }
    // The URI as logs may show it: every secret redacted.
    let wallet = setup::wallet_uri(args.wallet.as_deref(), &settings)?.to_string();
    check_wallet(&client, &wallet).await;
    let server = PlanntMcp::new(
        client,
        Config {
            confirm_above_sats: settings.confirm_above_sats,
            max_body_bytes: args.max_body_bytes,
        },
    );
    match args.http {
        None => {
            tracing::info!("plannt mcp on stdio");
            Ok(plannt_mcp::serve_stdio(server).await?)
        }
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| Error::failed(format!("cannot listen on {addr}"), e))?;
            let local = listener
                .local_addr()
                .map_err(|e| Error::failed("the listener has no address", e))?;
            tracing::info!(addr = %local, url = %format!("http://{local}{HTTP_PATH}"), "plannt mcp listening");
            let shutdown = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            Ok(plannt_mcp::serve_http(server, listener, shutdown).await?)
        }
    }
}
