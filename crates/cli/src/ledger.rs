//! `plannt ledger`: receipts, refusals, totals per host and per day, and what each budget has
//! left.

use plannt_client::Ledger;
use plannt_lightning::invoice::unix_now;
use serde_json::json;

use crate::error::Error;
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
        println!(
            "{}",
            serde_json::to_string_pretty(&value).expect("JSON values serialize")
        );
        return Ok(());
    }
    println!(
        "budgets (per request at most {} sats)",
        budget.per_request_sats
    );
    for w in &usage {
        match (w.limit_sats, w.left_sats) {
            (Some(limit), Some(left)) => println!(
                "  {:<6} {:>8} of {:>8} sats used, {left} left",
                w.window, w.used_sats, limit
            ),
            _ => println!("  {:<6} {:>8} sats used, no limit", w.window, w.used_sats),
        }
    }
    println!("paid per host");
    for (host, count, sats) in &totals.hosts {
        println!("  {host:<40} {count:>5} payments {sats:>9} sats");
    }
    println!("paid per day (UTC)");
    for (day, count, sats) in &totals.days {
        println!("  {day:<40} {count:>5} payments {sats:>9} sats");
    }
    println!("latest payments");
    if receipts.is_empty() {
        println!("  (none)");
    }
    for r in &receipts {
        let when = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(r.created_at),
        );
        println!(
            "  {when}  {:<7} {:>6} sats  fee {:>5} msat  {}{}  hash {}",
            r.status, r.amount_sats, r.fee_msat, r.origin, r.path, r.payment_hash
        );
    }
    if !refusals.is_empty() {
        println!("latest refusals (nothing paid)");
        for r in &refusals {
            let when = humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(r.at),
            );
            println!(
                "  {when}  {:<16} {}{}: {}",
                r.check, r.origin, r.path, r.detail
            );
        }
    }
    Ok(())
}
