//! `plannt ledger`: receipts, refusals, totals per host and per day, what each budget has
//! left, and the paid requests whose answer was lost; `plannt ledger retry` sends one of those
//! again with the credential it was paid for.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use plannt_client::l402::PaymentHash;
use plannt_client::{Ledger, Options};
use plannt_lightning::invoice::unix_now;
use serde_json::json;

use crate::error::Error;
use crate::get::{Output, print_answer};
use crate::out::{errln, outln, plural, sats};
use crate::setup::{self, Setup};

const LEDGER_HELP: &str = "A paid request whose answer was lost after its credential was sent (the connection cut, the time ran out, the process killed) is listed under \"paid requests without an answer\" (and \"unanswered\" in --json). `plannt ledger retry HASH` sends it again as recorded (method, URL, headers without credentials, body) with the same credential: a Plannt gateway answers with the answer it kept, and nothing is paid. Running the same `plannt get` again does the same. The answer column of each payment says what became of its answer: answered, recovered (by presenting the credential again), lost (the server kept none), unanswered, or - (never presented).";

#[derive(clap::Args)]
#[command(after_help = LEDGER_HELP, args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
    /// How many receipts and refusals to show.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Send again a paid request whose answer was lost, with the credential it was paid for.
    ///
    /// The request is sent as the ledger recorded it (method, URL, the headers given without
    /// credentials, the body), with the same credential: a Plannt gateway answers with the answer
    /// it kept (x-l402: replayed). Nothing is paid: a 402 means the server kept no answer (exit 7).
    /// The answer is printed as `plannt get` prints it. A request whose body was over 64 KiB was
    /// recorded by its digest only and cannot be sent again.
    Retry(RetryArgs),
}

#[derive(clap::Args)]
struct RetryArgs {
    /// The payment hash of the request (`plannt ledger` lists them) [default: the only paid
    /// request without an answer].
    hash: Option<String>,
    /// Print the response status line and headers before the body.
    #[arg(short = 'i', long)]
    include: bool,
    /// Write the body to FILE instead of standard output.
    #[arg(short = 'o', long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// No notes on stderr (errors still show).
    #[arg(short = 's', long)]
    silent: bool,
    /// Print a JSON summary to stdout, as `plannt get --json`.
    #[arg(long)]
    json: bool,
    /// Give up connecting to the server after SECS seconds [default: connect_timeout_secs, or 10].
    #[arg(long, value_name = "SECS", value_parser = plannt_client::timeout_secs)]
    connect_timeout: Option<Duration>,
    /// Give up on the whole request after SECS seconds [default: max_time_secs, or 120].
    #[arg(short = 'm', long, value_name = "SECS", value_parser = plannt_client::timeout_secs)]
    max_time: Option<Duration>,
    /// The wallet, as a backend URI [default: the config file, PLANNT_WALLET, or dev+http://127.0.0.1:8402].
    #[arg(long)]
    wallet: Option<String>,
}

pub fn run(args: &Args) -> Result<ExitCode, Error> {
    match &args.action {
        Some(Action::Retry(retry_args)) => crate::runtime()?.block_on(retry(retry_args)),
        None => {
            let settings = setup::settings()?;
            let ledger = setup::open_ledger()?;
            print(&ledger, &settings.policy.budget, args.limit, args.json)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The payment hash to retry: the one given, or the only paid request without an answer.
fn chosen(ledger: &Ledger, given: Option<&str>) -> Result<PaymentHash, Error> {
    if let Some(text) = given {
        return PaymentHash::from_hex(text.trim()).map_err(|_| {
            Error::Usage(format!(
                "{text:?} is not a payment hash (64 hex digits, as `plannt ledger` lists them)"
            ))
        });
    }
    let unanswered = ledger.unanswered()?;
    match unanswered.as_slice() {
        [] => Err(Error::Usage(
            "no paid request is without an answer: nothing to retry".into(),
        )),
        [one] => Ok(PaymentHash::from_hex(&one.payment_hash).map_err(|_| {
            Error::Usage("the ledger's payment hash is unreadable: give it as HASH".into())
        })?),
        many => Err(Error::Usage(format!(
            "{} paid requests are without an answer: name one, `plannt ledger retry HASH` ({})",
            many.len(),
            many.iter()
                .map(|u| u.payment_hash.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// `plannt ledger retry [HASH]`.
async fn retry(args: &RetryArgs) -> Result<ExitCode, Error> {
    let settings = setup::settings()?;
    let hash = chosen(&setup::open_ledger()?, args.hash.as_deref())?;
    let mut timeouts = settings.timeouts;
    timeouts.connect = args.connect_timeout.unwrap_or(timeouts.connect);
    timeouts.max_time = args.max_time.unwrap_or(timeouts.max_time);
    let client = setup::open_client(
        &settings,
        Setup {
            wallet: args.wallet.as_deref(),
            // As `plannt get`: a person asks for it.
            policy: settings.policy_for(true),
            redirects: 0,
            pins: Vec::new(),
            timeouts,
        },
    )
    .await?;
    let started = Instant::now();
    if !args.silent && !args.json {
        errln!(
            "plannt: sending again the request paid by {}, with the same credential",
            hex::encode(hash)
        );
    }
    let response = client.retry_unanswered(&hash, &Options::default()).await?;
    let output = Output {
        include: args.include,
        output: args.output.clone(),
        silent: args.silent,
        json: args.json,
    };
    print_answer(response, &output, started).await
}

/// Prints a ledger; `plannt demo` shows its own this way.
pub fn print(
    ledger: &Ledger,
    budget: &plannt_client::Budget,
    limit: usize,
    as_json: bool,
) -> Result<(), Error> {
    let now = unix_now();
    let usage = ledger.usage(budget, now)?;
    let totals = ledger.totals()?;
    let receipts = ledger.recent(limit)?;
    let refusals = ledger.refusals(limit)?;
    let unanswered = ledger.unanswered()?;
    let sessions = ledger.sessions(true)?;
    if as_json {
        let sessions: Vec<_> = sessions
            .iter()
            .map(|s| {
                let debits = PaymentHash::from_hex(&s.session_id)
                    .ok()
                    .map(|id| ledger.session_debits(&id))
                    .transpose()?
                    .unwrap_or_default();
                Ok(json!({ "session": s, "debits": debits }))
            })
            .collect::<Result<_, plannt_client::LedgerError>>()?;
        let value = json!({
            "budgets": usage,
            "per_request_cap_sats": budget.per_request_sats,
            "totals": totals,
            "receipts": receipts,
            "refusals": refusals,
            "unanswered": unanswered,
            "sessions": sessions,
        });
        outln!(
            "{}",
            serde_json::to_string_pretty(&value).expect("JSON values serialize")
        )?;
        return Ok(());
    }
    outln!(
        "budgets (per request at most {})",
        sats(budget.per_request_sats)
    )?;
    for w in &usage {
        match (w.limit_sats, w.left_sats) {
            (Some(limit), Some(left)) => outln!(
                "  {:<6} {:>8} of {:>8} {} used, {} left",
                w.window,
                w.used_sats,
                limit,
                plural(limit, "sat", "sats"),
                sats(left)
            )?,
            _ => outln!(
                "  {:<6} {:>8} {} used, no limit",
                w.window,
                w.used_sats,
                plural(w.used_sats, "sat", "sats")
            )?,
        }
    }
    outln!("paid per host")?;
    for (host, count, paid) in &totals.hosts {
        outln!("  {host:<40} {}", count_and_sats(*count, *paid))?;
    }
    outln!("paid per day (UTC)")?;
    for (day, count, paid) in &totals.days {
        outln!("  {day:<40} {}", count_and_sats(*count, *paid))?;
    }
    if !unanswered.is_empty() {
        outln!(
            "paid requests without an answer (plannt ledger retry HASH sends one again with its credential; nothing is paid)"
        )?;
        for u in &unanswered {
            let when = humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(u.presented_at),
            );
            let note = if u.retryable {
                ""
            } else {
                "  (its body was over 64 KiB: recorded by its digest only, it cannot be sent again)"
            };
            outln!(
                "  {when}  {:<6} {}{}  {} over {}  hash {}{note}",
                u.method,
                u.origin,
                u.path,
                sats(u.amount_sats),
                u.dialect,
                u.payment_hash
            )?;
        }
    }
    if !sessions.is_empty() {
        outln!(
            "prepaid sessions (deposits and top-ups are among the payments; plannt session close ID refunds one)"
        )?;
        for s in sessions.iter().take(limit) {
            outln!(
                "  {}{}  id {}  {:<7} deposit {}, spent {}, balance {}, refund {}",
                s.origin,
                s.path,
                &s.session_id[..16.min(s.session_id.len())],
                s.state,
                sats(s.deposit_sats),
                sats(s.spent_sats),
                sats(s.balance_sats),
                match &s.refund_status {
                    Some(status) => format!("{} ({status})", sats(s.refund_sats)),
                    None => "-".into(),
                }
            )?;
        }
    }
    outln!("latest payments")?;
    if receipts.is_empty() {
        outln!("  (none)")?;
    }
    for r in &receipts {
        let when = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(r.created_at),
        );
        outln!(
            "  {when}  {:<7} {:<4} {:>6} {:<4}  fee {:>5} msat  answer {:<10} {}{}  hash {}",
            r.status,
            r.dialect,
            r.amount_sats,
            plural(r.amount_sats, "sat", "sats"),
            r.fee_msat,
            r.answer.as_deref().unwrap_or("-"),
            r.origin,
            r.path,
            r.payment_hash
        )?;
    }
    if !refusals.is_empty() {
        outln!("latest refusals (nothing paid)")?;
        for r in &refusals {
            let when = humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(r.at),
            );
            outln!(
                "  {when}  {:<16} {}{}: {}",
                r.check,
                r.origin,
                r.path,
                r.detail
            )?;
        }
    }
    Ok(())
}

/// `    1 payment        21 sats`, in columns.
fn count_and_sats(count: u64, paid: u64) -> String {
    format!(
        "{count:>5} {:<8} {paid:>9} {}",
        plural(count, "payment", "payments"),
        plural(paid, "sat", "sats")
    )
}
