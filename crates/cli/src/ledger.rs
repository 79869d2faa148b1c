//! `plannt ledger`: receipts, refusals, totals per host and per day, and what each budget has
//! left.

use plannt_client::Ledger;
use plannt_lightning::invoice::unix_now;
use serde_json::json;

use crate::error::Error;
use crate::out::{outln, plural, sats};
use crate::setup;

#[derive(clap::Args)]
pub struct Args {
    /// How many receipts and refusals to show.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &Args) -> Result<(), Error> {
    let settings = setup::settings()?;
    let ledger = setup::open_ledger()?;
    print(&ledger, &settings.policy.budget, args.limit, args.json)
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
    if as_json {
        let value = json!({
            "budgets": usage,
            "per_request_cap_sats": budget.per_request_sats,
            "totals": totals,
            "receipts": receipts,
            "refusals": refusals,
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
    outln!("latest payments")?;
    if receipts.is_empty() {
        outln!("  (none)")?;
    }
    for r in &receipts {
        let when = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(r.created_at),
        );
        outln!(
            "  {when}  {:<7} {:<4} {:>6} {:<4}  fee {:>5} msat  {}{}  hash {}",
            r.status,
            r.dialect,
            r.amount_sats,
            plural(r.amount_sats, "sat", "sats"),
            r.fee_msat,
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
