//! `plannt session`: the prepaid sessions (MPP's Lightning `session` intent) the ledger knows,
//! and closing them so that their unspent balance is refunded to the wallet.

use std::process::ExitCode;
use std::time::Duration;

use plannt_client::l402::PaymentHash;
use plannt_client::{Ledger, SessionRecord};
use plannt_lightning::invoice::unix_now;
use serde_json::json;

use crate::error::Error;
use crate::out::{errln, outln, sats};
use crate::setup::{self, Setup};

const SESSION_HELP: &str = "A session is opened when a server offers one (MPP, intent=\"session\") and session_deposit_sats allows it for that host (PLANNT_SESSION_DEPOSIT_SATS, e.g. \"api.example.com=500\"; none by default): its deposit is paid once, and later requests to the same place spend from it. Closing it has the server pay what is left to the return invoice the wallet issued; the refund recorded is what the wallet received. Sessions idle past the server's idle timeout are closed by the next plannt get, post, request or mcp.";

#[derive(clap::Args)]
#[command(after_help = SESSION_HELP)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// List the sessions: host, id, deposit, spent, balance, state, idle since. Spent and
    /// balance are as the server reported them; `~` marks a session with a debit the server did
    /// not report (or reported beyond what was paid in), counted as one unit, an estimate.
    List(ListArgs),
    /// Close a session (or every open one): the server refunds what it holds.
    Close(CloseArgs),
}

#[derive(clap::Args)]
struct ListArgs {
    /// Closed sessions too.
    #[arg(long)]
    all: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct CloseArgs {
    /// The session id, or a prefix of it of at least 8 hex digits (`plannt session list`).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    id: Option<String>,
    /// Close every session not closed yet.
    #[arg(long)]
    all: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Give up on each close after SECS seconds [default: max_time_secs, or 120].
    #[arg(short = 'm', long, value_name = "SECS", value_parser = plannt_client::timeout_secs)]
    max_time: Option<Duration>,
    /// The wallet, as a backend URI [default: the config file, PLANNT_WALLET, or dev+http://127.0.0.1:8402].
    #[arg(long)]
    wallet: Option<String>,
}

pub fn run(args: &Args) -> Result<ExitCode, Error> {
    match &args.action {
        Action::List(list) => {
            let ledger = setup::open_ledger()?;
            print(&ledger.sessions(list.all)?, list.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Action::Close(close_args) => crate::runtime()?.block_on(close(close_args)),
    }
}

/// `5m`, `2h`, `3d`: how long ago `at` was.
fn ago(at: u64, now: u64) -> String {
    let secs = now.saturating_sub(at);
    match secs {
        0..60 => format!("{secs}s"),
        60..3_600 => format!("{}m", secs / 60),
        3_600..86_400 => format!("{}h", secs / 3_600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// Prints sessions as a table (or JSON); `plannt ledger` shows its own this way.
pub fn print(sessions: &[SessionRecord], as_json: bool) -> Result<(), Error> {
    if as_json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({ "sessions": sessions }))
                .expect("JSON values serialize")
        )?;
        return Ok(());
    }
    if sessions.is_empty() {
        outln!("no sessions")?;
        return Ok(());
    }
    let estimated = sessions.iter().any(|s| s.estimated_debits > 0);
    let now = unix_now();
    outln!(
        "{:<32} {:<16} {:>8} {:>8} {:>8} {:<8} {:>6} {:>8}",
        "host",
        "id",
        "deposit",
        "spent",
        "balance",
        "state",
        "idle",
        "refund"
    )?;
    for s in sessions {
        let host = s
            .origin
            .split_once("://")
            .map_or(s.origin.as_str(), |(_, h)| h);
        outln!(
            "{:<32} {:<16} {:>8} {:>8} {:>8} {:<8} {:>6} {:>8}",
            host,
            &s.session_id[..16.min(s.session_id.len())],
            s.deposit_sats,
            if s.estimated_debits > 0 {
                format!("~{}", s.spent_sats)
            } else {
                s.spent_sats.to_string()
            },
            if s.estimated_debits > 0 {
                format!("~{}", s.balance_sats)
            } else {
                s.balance_sats.to_string()
            },
            s.state,
            ago(s.last_used_at, now),
            if s.refund_status.is_some() {
                s.refund_sats.to_string()
            } else {
                "-".into()
            }
        )?;
    }
    if estimated {
        outln!(
            "~ the server did not report every debit: one unit counted for each, an estimate until its refund"
        )?;
    }
    Ok(())
}

/// The sessions a close names: the one whose id starts with `id`, or every one not closed.
fn chosen(ledger: &Ledger, id: Option<&str>) -> Result<Vec<PaymentHash>, Error> {
    let open = ledger.sessions(false)?;
    let read = |hex: &str| {
        PaymentHash::from_hex(hex)
            .map_err(|_| Error::Usage("a session id in the ledger is unreadable".into()))
    };
    let Some(prefix) = id.map(|p| p.trim().to_ascii_lowercase()) else {
        return open.iter().map(|s| read(&s.session_id)).collect();
    };
    if prefix.len() < 8 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::Usage(format!(
            "{prefix:?} is not a session id: give at least 8 hex digits of one (plannt session list)"
        )));
    }
    let all = ledger.sessions(true)?;
    let matching: Vec<_> = all
        .iter()
        .filter(|s| s.session_id.starts_with(&prefix))
        .collect();
    match matching.as_slice() {
        [] => Err(Error::Usage(format!(
            "no session's id starts with {prefix} (plannt session list --all shows them)"
        ))),
        [one] => Ok(vec![read(&one.session_id)?]),
        many => Err(Error::Usage(format!(
            "{} sessions' ids start with {prefix}: give more of it",
            many.len()
        ))),
    }
}

/// `plannt session close ID|--all`.
async fn close(args: &CloseArgs) -> Result<ExitCode, Error> {
    let settings = setup::settings()?;
    let ids = chosen(&setup::open_ledger()?, args.id.as_deref())?;
    let mut timeouts = settings.timeouts;
    timeouts.max_time = args.max_time.unwrap_or(timeouts.max_time);
    let client = setup::open_client(
        &settings,
        Setup {
            wallet: args.wallet.as_deref(),
            // A person asks for it, as with `plannt get`.
            policy: settings.policy_for(true),
            redirects: 0,
            pins: Vec::new(),
            timeouts,
        },
    )
    .await?;
    let mut closed = Vec::new();
    let mut failed: Option<plannt_client::ClientError> = None;
    for id in &ids {
        // The client's start may have closed it already, idle.
        if client
            .ledger()
            .session(id)?
            .is_some_and(|s| s.state == plannt_client::SessionState::Closed)
        {
            continue;
        }
        match client.close_session(id).await {
            Ok(c) => closed.push(c),
            Err(e) => {
                // Each failure is said; the last one is the command's error.
                if let Some(before) = failed.replace(e) {
                    errln!("plannt: {before}");
                }
            }
        }
    }
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({ "closed": closed }))
                .expect("JSON values serialize")
        )?;
    } else if closed.is_empty() && failed.is_none() {
        outln!("no open session to close")?;
    }
    if !args.json {
        for c in &closed {
            outln!(
                "closed {} with {}: refund {} received (the server said {} {})",
                &c.session_id[..16],
                c.origin,
                sats(c.refund_received_sats),
                c.refund_status,
                sats(c.refund_claimed_sats)
            )?;
        }
    }
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(ExitCode::SUCCESS),
    }
}
