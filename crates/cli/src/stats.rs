//! `plannt stats`: what a gateway earned and refused, from its earnings ledger: per route, per
//! day, per dialect, refusals by reason, and the latest payments, over a span. It asks a
//! running gateway's admin API, or reads its store directly (read-only).

use std::path::PathBuf;
use std::time::Duration;

use plannt_lightning::invoice::unix_now;
use plannt_serve::config::Store;
use plannt_serve::gateway::ledger::{DAY, Figures, LedgerRead, SESSION_DIALECT, Stats, parse_when};
use plannt_serve::gateway::store::{RedisStore, SpentStore, read_sqlite_ledger};
use serde_json::Value;

use crate::error::Error;
use crate::out::{outln, plural};
use crate::setup;

const STATS_HELP: &str = "\
Where the figures come from (one of):
  --admin URL     a running gateway's admin API (the default, http://127.0.0.1:8402), with the
                  admin token from --token-file or PLANNT_ADMIN_TOKEN. Its figures include the
                  last seconds the gateway has not written to its store yet.
  --store STORE   the gateway's store, read-only, beside the running gateway or without it:
                  sqlite:PATH, sqlite (spent.sqlite under the data directory), or a redis://,
                  redis+cluster:// or redis+sentinel:// URL. A gateway writes its ledger to the
                  store every few seconds, so the very last payments may not show yet.

Times (--since, --until): a duration back from now (24h, 7d, 90m), a date (2026-01-31, its
midnight UTC), an RFC 3339 time (2026-01-31T12:00:00Z), now, or unix seconds. Counts are kept per
hour: a span that starts or ends within an hour counts that whole hour; payments are listed by
their exact time. The ledger keeps 90 days unless the gateway's ledger_retention_days says
otherwise.

Examples:
  plannt stats                                    the last 7 days, from the local gateway
  plannt stats --since 24h --json                 the last day, for a program
  plannt stats --store sqlite:/var/lib/plannt/spent.sqlite --since 2026-01-01 --until 2026-02-01
  PLANNT_ADMIN_TOKEN=… plannt stats --admin https://gw.example:8402";

#[derive(clap::Args)]
#[command(after_help = STATS_HELP)]
pub struct Args {
    /// The start of the span [default: 7d, a week ago].
    #[arg(long, value_name = "WHEN", default_value = "7d")]
    since: String,
    /// The end of the span [default: now].
    #[arg(long, value_name = "WHEN", default_value = "now")]
    until: String,
    /// A running gateway's address, whose admin API to ask [default: http://127.0.0.1:8402].
    #[arg(long, value_name = "URL", conflicts_with = "store")]
    admin: Option<String>,
    /// A file holding the admin token [default: PLANNT_ADMIN_TOKEN].
    #[arg(long, value_name = "FILE", conflicts_with = "store")]
    token_file: Option<PathBuf>,
    /// Read the gateway's store directly, read-only: sqlite:PATH, sqlite, or a Redis URL.
    #[arg(long, value_name = "STORE")]
    store: Option<Store>,
    /// How many of the latest payments to list.
    #[arg(long, value_name = "N", default_value_t = 10)]
    recent: usize,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: &Args) -> Result<(), Error> {
    let now = unix_now();
    let since = parse_when(&args.since, now).map_err(|e| Error::Usage(format!("--since: {e}")))?;
    let until = parse_when(&args.until, now)
        .map_err(|e| Error::Usage(format!("--until: {e}")))?
        // `now` includes this second.
        .saturating_add(u64::from(args.until.trim() == "now"));
    if since >= until {
        return Err(Error::Usage(format!(
            "--since ({}) must come before --until ({})",
            args.since, args.until
        )));
    }
    let mut stats = match &args.store {
        Some(store) => from_store(store, since, until, args.recent).await?,
        None => from_admin(args, since, until).await?,
    };
    stats.recent.truncate(args.recent);
    if args.json {
        let value = serde_json::to_value(&stats).expect("stats serialize");
        return outln!(
            "{}",
            serde_json::to_string_pretty(&value).expect("JSON values serialize")
        );
    }
    print(&stats)
}

/// Reads the store directly.
async fn from_store(store: &Store, since: u64, until: u64, recent: usize) -> Result<Stats, Error> {
    let read: LedgerRead = match store {
        Store::Memory => {
            return Err(Error::Usage(
                "the memory store lives inside the gateway's process: ask it with --admin URL"
                    .into(),
            ));
        }
        Store::Sqlite(path) => {
            let path = path
                .clone()
                .unwrap_or_else(|| setup::data_dir().join("spent.sqlite"));
            read_sqlite_ledger(&path, since, until, recent).map_err(Error::other)?
        }
        Store::Redis(url) => {
            let redis = RedisStore::connect(url).await.map_err(Error::other)?;
            redis
                .ledger(since, until, recent)
                .await
                .map_err(Error::other)?
        }
    };
    Ok(Stats::of(&read, since, until))
}

/// Asks a running gateway's admin API.
async fn from_admin(args: &Args, since: u64, until: u64) -> Result<Stats, Error> {
    let token = match &args.token_file {
        Some(file) => std::fs::read_to_string(file)
            .map_err(|e| Error::failed(format!("cannot read {}", file.display()), e))?
            .trim()
            .to_owned(),
        None => std::env::var("PLANNT_ADMIN_TOKEN")
            .ok()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                Error::Usage(
                    "no admin token: give --token-file FILE or set PLANNT_ADMIN_TOKEN (or read the store with --store)".into(),
                )
            })?,
    };
    let base = args
        .admin
        .clone()
        .unwrap_or_else(|| "http://127.0.0.1:8402".into());
    let url = format!(
        "{}/_plannt/admin/stats?since={since}&until={until}",
        base.trim_end_matches('/')
    );
    plannt_lightning::install_tls_provider();
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured(plannt_lightning::tls_config())
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(Error::other)?;
    let answer = http
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .map_err(|e| Error::failed(format!("cannot reach the admin API at {base}"), e))?;
    let status = answer.status();
    let body: Value = answer.json().await.unwrap_or(Value::Null);
    let said = body["message"].as_str().unwrap_or("");
    match status.as_u16() {
        200 => serde_json::from_value(body).map_err(|e| {
            Error::failed(
                format!("the admin API at {base} answered something else"),
                e,
            )
        }),
        401 => Err(Error::Usage(format!(
            "the admin API at {base} refused the token (401): check --token-file or PLANNT_ADMIN_TOKEN"
        ))),
        403 => Err(Error::Usage(format!(
            "the admin API at {base} answers loopback clients only (403): run this on the gateway's host, or set admin_allow_remote = true there"
        ))),
        404 => Err(Error::Usage(format!(
            "{base} has no admin API (404): give the gateway a token (admin_token_file or PLANNT_ADMIN_TOKEN), or read its store with --store"
        ))),
        _ => Err(Error::Usage(format!(
            "the admin API at {base} answered {status}: {said}"
        ))),
    }
}

/// What was earned: the sats paid less the sats refunded (computed here, so that an older
/// gateway's figures, without `earned_sats`, read right).
fn earned(f: &Figures) -> u64 {
    f.sats.saturating_sub(f.refunded_sats)
}

fn row(name: &str, f: &Figures, sessions: bool) -> String {
    if sessions {
        format!(
            "  {name:<24} {:>10} {:>14} {:>10} {:>14} {:>10} {:>14}",
            f.payments,
            f.sats,
            f.refusals,
            f.refunded_sats,
            earned(f),
            f.metered_sats
        )
    } else {
        format!(
            "  {name:<24} {:>10} {:>14} {:>10}",
            f.payments, f.sats, f.refusals
        )
    }
}

fn print(stats: &Stats) -> Result<(), Error> {
    let days = (stats.until - stats.since).div_ceil(DAY);
    outln!(
        "From {} to {} ({days} {}):",
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(stats.since)),
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(stats.until)),
        plural(days, "day", "days"),
    )?;
    let t = &stats.total;
    outln!(
        "  {} earned, {} {}, {} {}",
        crate::out::sats(earned(t)),
        t.payments,
        plural(t.payments, "payment", "payments"),
        t.refusals,
        plural(t.refusals, "refusal", "refusals"),
    )?;
    // Prepaid sessions: deposits are payments; refunds come off the earnings; the metered
    // usage is what the deposits paid for.
    let sessions = t.refunds > 0 || t.metered > 0;
    if sessions {
        outln!(
            "  prepaid sessions: {} paid in, {} refunded ({} {}), {} metered over {} {}",
            crate::out::sats(stats.dialects.get(SESSION_DIALECT).map_or(0, |f| f.sats)),
            crate::out::sats(t.refunded_sats),
            t.refunds,
            plural(t.refunds, "refund", "refunds"),
            crate::out::sats(t.metered_sats),
            t.metered,
            plural(t.metered, "request", "requests"),
        )?;
    }
    let header = |first: &str| {
        if sessions {
            format!(
                "  {first:<24} {:>10} {:>14} {:>10} {:>14} {:>10} {:>14}",
                "payments", "sats", "refusals", "refunded", "earned", "metered"
            )
        } else {
            format!(
                "  {first:<24} {:>10} {:>14} {:>10}",
                "payments", "sats", "refusals"
            )
        }
    };
    for (title, first, map) in [
        ("Per route", "route", &stats.routes),
        ("Per day (UTC)", "day", &stats.days),
        ("Per dialect", "dialect", &stats.dialects),
    ] {
        outln!()?;
        outln!("{title}:")?;
        if map.is_empty() {
            outln!("  none")?;
            continue;
        }
        outln!("{}", header(first))?;
        for (name, figures) in map {
            outln!("{}", row(name, figures, sessions))?;
        }
    }
    outln!()?;
    outln!("Refusals by reason:")?;
    if stats.refusals.is_empty() {
        outln!("  none")?;
    }
    for (reason, count) in &stats.refusals {
        outln!("  {reason:<24} {count:>10}")?;
    }
    outln!()?;
    outln!("Latest payments:")?;
    if stats.recent.is_empty() {
        outln!("  none")?;
    }
    for p in &stats.recent {
        let at =
            humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(p.at));
        outln!(
            "  {at}  {:<16} {:<5} {:>8}  {}",
            p.route,
            p.dialect,
            crate::out::sats(p.sats),
            p.payment_hash
        )?;
    }
    Ok(())
}
