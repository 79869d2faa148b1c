//! `plannt-load`: the command bench/flood.sh and bench/soak.sh run against a `plannt serve` they
//! started. `flood` measures paid traffic alone, then beside a challenge flood and garbage
//! credentials, and says whether its goals hold (bench/flood.sh lists them); `soak` runs mixed
//! traffic for a while and writes the gateway's RSS and spent-set size over time to a CSV.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use plannt_load::{
    Kind, Outcome, Plan, Role, Sample, Stats, Supply, buy_many, micros, run_sampled,
};

const PAID: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const FLOOD: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const GARBAGE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
const REPLAY: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 4);

#[derive(Parser)]
#[command(about = "Load harness for plannt serve (loopback only)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct Common {
    /// The gateway under load (a loopback address).
    #[arg(long)]
    gateway: SocketAddr,
    /// A gateway with the same root key and no challenge limit, whose dev network sells the
    /// tokens (default: the gateway under load).
    #[arg(long)]
    mint: Option<SocketAddr>,
    /// The gateway's process id, for its RSS.
    #[arg(long)]
    pid: Option<u32>,
    /// The priced path.
    #[arg(long, default_value = "/v1/demo")]
    path: String,
    /// Paid requests per second (a fixed rate: latency counts from when each was due).
    #[arg(long, default_value_t = 1000.0)]
    paid_rate: f64,
    #[arg(long, default_value_t = 16)]
    paid_connections: usize,
    /// Challenge-flood requests per second; 0: as fast as the gateway answers.
    #[arg(long, default_value_t = 0.0)]
    flood_rate: f64,
    #[arg(long, default_value_t = 4)]
    flood_connections: usize,
    /// Garbage-credential requests per second; 0: as fast as the gateway answers.
    #[arg(long, default_value_t = 0.0)]
    garbage_rate: f64,
    #[arg(long, default_value_t = 4)]
    garbage_connections: usize,
    /// The gateway's challenges_per_second and challenge_burst, to check the flood's 402s.
    #[arg(long, default_value_t = 5.0)]
    challenges_per_second: f64,
    #[arg(long, default_value_t = 20)]
    challenge_burst: u64,
    /// Seconds between samples of RSS and the spent-set gauge.
    #[arg(long, default_value_t = 1.0)]
    sample_secs: f64,
}

#[derive(Subcommand)]
enum Command {
    /// Paid traffic alone, then with a challenge flood and garbage credentials beside it.
    Flood {
        #[command(flatten)]
        common: Common,
        /// Seconds per phase.
        #[arg(long, default_value_t = 20)]
        secs: u64,
    },
    /// Mixed traffic (paid, replays, flood, garbage) with tokens bought during the run.
    Soak {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 600)]
        secs: u64,
        /// Connections buying tokens from the mint gateway during the run.
        #[arg(long, default_value_t = 4)]
        buyers: usize,
        /// Replay requests per second (spent tokens presented again).
        #[arg(long, default_value_t = 4.0)]
        replay_rate: f64,
        /// Where the samples go.
        #[arg(long)]
        csv: std::path::PathBuf,
    },
}

fn rate(r: f64) -> Option<f64> {
    (r > 0.0).then_some(r)
}

fn role(kind: Kind, source: Ipv4Addr, connections: usize, r: f64) -> Role {
    Role {
        kind,
        source,
        connections,
        rate: rate(r),
    }
}

fn source_of(kind: Kind) -> Ipv4Addr {
    match kind {
        Kind::Paid => PAID,
        Kind::Flood => FLOOD,
        Kind::Garbage => GARBAGE,
        Kind::Replay => REPLAY,
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// The per-role table of one run.
fn roles_table(outcome: &Outcome) -> String {
    let mut t = String::from(
        "| role | from | requests | req/s | answers | p50 | p99 | max |\n|---|---|---:|---:|---|---:|---:|---:|\n",
    );
    for (kind, s) in &outcome.roles {
        let _ = writeln!(
            t,
            "| {} | {} | {} | {:.0} | {} | {} | {} | {} |",
            kind.name(),
            source_of(*kind),
            s.answered(),
            s.throughput(),
            s.counts_text(),
            micros(s.quantile_us(0.5)),
            micros(s.quantile_us(0.99)),
            micros(s.quantile_us(1.0)),
        );
    }
    t
}

fn peak(samples: &[Sample], f: impl Fn(&Sample) -> u64) -> u64 {
    samples.iter().map(f).max().unwrap_or(0)
}

/// The flooders' answers are what they should be; the reasons why not.
fn check_flooders(outcome: &Outcome, common: &Common, secs: f64, misses: &mut Vec<String>) {
    if let Some(f) = outcome.roles.get(&Kind::Flood) {
        let (c402, c429) = (f.count("402"), f.count("429"));
        if c402 + c429 != f.answered() || c429 == 0 {
            misses.push(format!(
                "the flood got other answers than 402/429, or no 429: {}",
                f.counts_text()
            ));
        }
        let allowed = common.challenge_burst as f64 + common.challenges_per_second * (secs + 1.0);
        if c402 as f64 > allowed {
            misses.push(format!(
                "the flood got {c402} challenges, more than burst + rate × time ({allowed:.0})"
            ));
        }
    }
    if let Some(g) = outcome.roles.get(&Kind::Garbage)
        && (g.count("401") != g.answered() || g.answered() == 0)
    {
        misses.push(format!(
            "garbage got other answers than 401: {}",
            g.counts_text()
        ));
    }
}

fn check_paid(stats: &Stats, phase: &str, misses: &mut Vec<String>) {
    if stats.count("200") != stats.answered() || stats.errors > 0 || stats.answered() == 0 {
        misses.push(format!(
            "{phase}: paid requests not all answered 200: {}",
            stats.counts_text()
        ));
    }
    if stats.not_marked_spent > 0 {
        misses.push(format!(
            "{phase}: {} paid 200s without x-l402: spent",
            stats.not_marked_spent
        ));
    }
    if stats.starved > 0 {
        misses.push(format!("{phase}: the paid role ran out of tokens"));
    }
}

async fn flood(common: Common, secs: u64) -> Result<bool, String> {
    let mint = common.mint.unwrap_or(common.gateway);
    let duration = Duration::from_secs(secs);
    let count = (common.paid_rate * secs as f64 * 2.0 * 1.05) as usize + 200;
    let began = Instant::now();
    let tokens = buy_many(mint, PAID, &common.path, count, 16).await?;
    eprintln!(
        "bought {} tokens in {:.1} s",
        tokens.len(),
        began.elapsed().as_secs_f64()
    );
    let supply = Arc::new(Supply::Bought(Mutex::new(tokens.into())));
    let every = Duration::from_secs_f64(common.sample_secs);
    let paid = role(Kind::Paid, PAID, common.paid_connections, common.paid_rate);
    let baseline = Plan {
        gateway: common.gateway,
        path: common.path.clone(),
        duration,
        roles: vec![paid.clone()],
        supply: supply.clone(),
    };
    eprintln!("phase 1: paid alone for {secs} s");
    let (a, a_samples) = run_sampled(&baseline, common.pid, every, |_| {}).await;
    let flooded = Plan {
        roles: vec![
            paid,
            role(
                Kind::Flood,
                FLOOD,
                common.flood_connections,
                common.flood_rate,
            ),
            role(
                Kind::Garbage,
                GARBAGE,
                common.garbage_connections,
                common.garbage_rate,
            ),
        ],
        ..baseline
    };
    eprintln!("phase 2: paid + challenge flood + garbage for {secs} s");
    let (b, b_samples) = run_sampled(&flooded, common.pid, every, |_| {}).await;

    let (pa, pb) = (&a.roles[&Kind::Paid], &b.roles[&Kind::Paid]);
    let throughput_ratio = pb.throughput() / pa.throughput().max(1e-9);
    let (p99a, p99b) = (pa.quantile_us(0.99), pb.quantile_us(0.99));
    let p99_ratio = f64::from(p99b) / f64::from(p99a.max(1));
    let (rss_a, rss_b) = (
        peak(&a_samples, |s| s.rss_kib),
        peak(&b_samples, |s| s.rss_kib),
    );
    let hwm = peak(&b_samples, |s| s.hwm_kib);
    let mut misses = Vec::new();
    check_paid(pa, "baseline", &mut misses);
    check_paid(pb, "flooded", &mut misses);
    if throughput_ratio < 0.8 {
        misses.push(format!(
            "paid throughput fell to {throughput_ratio:.2} of the baseline (goal: ≥ 0.80)"
        ));
    }
    if p99_ratio > 2.0 {
        misses.push(format!(
            "paid p99 rose to {p99_ratio:.2}× the baseline (goal: ≤ 2×)"
        ));
    }
    check_flooders(&b, &common, secs as f64, &mut misses);
    if common.pid.is_some() && rss_b > rss_a * 2 {
        misses.push(format!(
            "RSS under the flood ({} MiB) more than twice the baseline's ({} MiB)",
            mib(rss_b),
            mib(rss_a)
        ));
    }
    let spent_end = b_samples.last().and_then(|s| s.spent);

    let mut out = String::new();
    let _ = writeln!(
        out,
        "Phase 1, paid alone ({secs} s):\n\n{}",
        roles_table(&a)
    );
    let _ = writeln!(
        out,
        "Phase 2, paid + challenge flood + garbage ({secs} s):\n\n{}",
        roles_table(&b)
    );
    let _ = writeln!(
        out,
        "| paid | alone | with the flood | ratio | goal |\n|---|---:|---:|---:|---|\n\
         | throughput (req/s) | {:.0} | {:.0} | {throughput_ratio:.2} | ≥ 0.80 |\n\
         | p50 | {} | {} | {:.2} | |\n\
         | p99 | {} | {} | {p99_ratio:.2} | ≤ 2 |\n\
         | peak RSS (MiB) | {} | {} | {:.2} | bounded (≤ 2) |\n",
        pa.throughput(),
        pb.throughput(),
        micros(pa.quantile_us(0.5)),
        micros(pb.quantile_us(0.5)),
        f64::from(pb.quantile_us(0.5)) / f64::from(pa.quantile_us(0.5).max(1)),
        micros(p99a),
        micros(p99b),
        mib(rss_a),
        mib(rss_b),
        rss_b as f64 / rss_a.max(1) as f64,
    );
    let _ = writeln!(
        out,
        "Gateway peak RSS (VmHWM) at the end: {} MiB; spent-set gauge at the end: {}.\n",
        mib(hwm),
        spent_end.map_or("-".into(), |n| n.to_string())
    );
    if misses.is_empty() {
        let _ = writeln!(
            out,
            "Goals met: paid throughput within 20 %, p99 within 2×, flooders answered 429/401, RSS bounded."
        );
    } else {
        let _ = writeln!(out, "Goals missed:");
        for m in &misses {
            let _ = writeln!(out, "- {m}");
        }
    }
    print!("{out}");
    Ok(misses.is_empty())
}

/// The largest value of `f` among the samples in `[from, to)` of the run's length.
fn max_in(
    samples: &[Sample],
    from: f64,
    to: f64,
    f: impl Fn(&Sample) -> Option<u64>,
) -> Option<u64> {
    let end = samples.last()?.at.as_secs_f64();
    samples
        .iter()
        .filter(|s| {
            let x = s.at.as_secs_f64() / end.max(1e-9);
            x >= from && x < to
        })
        .filter_map(f)
        .max()
}

async fn soak(
    common: Common,
    secs: u64,
    buyers: usize,
    replay_rate: f64,
    csv: std::path::PathBuf,
) -> Result<bool, String> {
    let mint = common.mint.unwrap_or(common.gateway);
    let plan = Plan {
        gateway: common.gateway,
        path: common.path.clone(),
        duration: Duration::from_secs(secs),
        roles: vec![
            role(Kind::Paid, PAID, common.paid_connections, common.paid_rate),
            role(Kind::Replay, REPLAY, 1, replay_rate),
            role(
                Kind::Flood,
                FLOOD,
                common.flood_connections,
                common.flood_rate,
            ),
            role(
                Kind::Garbage,
                GARBAGE,
                common.garbage_connections,
                common.garbage_rate,
            ),
        ],
        supply: Arc::new(Supply::During { mint, buyers }),
    };
    let mut file = std::fs::File::create(&csv).map_err(|e| format!("{}: {e}", csv.display()))?;
    writeln!(
        file,
        "seconds,rss_kib,hwm_kib,spent_tokens,paid,replay,flood,garbage"
    )
    .map_err(|e| e.to_string())?;
    let file = Arc::new(Mutex::new(file));
    let writer = file.clone();
    let each = move |s: &Sample| {
        let mut f = writer.lock().expect("csv");
        let _ = writeln!(
            f,
            "{:.1},{},{},{},{},{},{},{}",
            s.at.as_secs_f64(),
            s.rss_kib,
            s.hwm_kib,
            s.spent.map_or(String::new(), |n| n.to_string()),
            s.answered[0],
            s.answered[1],
            s.answered[2],
            s.answered[3]
        );
        let _ = f.flush();
    };
    eprintln!(
        "soak: {secs} s of paid, replay, flood and garbage traffic; samples to {}",
        csv.display()
    );
    let every = Duration::from_secs_f64(common.sample_secs);
    let (outcome, samples) = run_sampled(&plan, common.pid, every, each).await;

    let mut misses = Vec::new();
    if let Some(p) = outcome.roles.get(&Kind::Paid) {
        check_paid(p, "soak", &mut misses);
    }
    if let Some(r) = outcome.roles.get(&Kind::Replay)
        && (r.count("200") > 0 || r.count("402 spent") == 0)
    {
        misses.push(format!("replays: {}", r.counts_text()));
    }
    check_flooders(&outcome, &common, secs as f64, &mut misses);
    let rss = |s: &Sample| (s.rss_kib > 0).then_some(s.rss_kib);
    let (rss_mid, rss_last) = (
        max_in(&samples, 1.0 / 3.0, 2.0 / 3.0, rss),
        max_in(&samples, 2.0 / 3.0, 1.01, rss),
    );
    let (spent_mid, spent_last) = (
        max_in(&samples, 1.0 / 3.0, 2.0 / 3.0, |s| s.spent),
        max_in(&samples, 2.0 / 3.0, 1.01, |s| s.spent),
    );
    let flat = |mid: Option<u64>, last: Option<u64>, slack: f64| match (mid, last) {
        (Some(m), Some(l)) => (l as f64) <= m as f64 * slack,
        _ => false,
    };
    let rss_flat = common.pid.is_none() || flat(rss_mid, rss_last, 1.10);
    let spent_flat = flat(spent_mid, spent_last, 1.20);
    if !rss_flat {
        misses.push(
            "RSS grew in the last third (more than 10 % over the middle third's peak)".into(),
        );
    }
    if !spent_flat {
        misses.push(
            "the spent set grew in the last third (more than 20 % over the middle third's peak)"
                .into(),
        );
    }
    let first = samples.first().cloned().unwrap_or_default();
    let last = samples.last().cloned().unwrap_or_default();
    let show = |v: Option<u64>| v.map_or("-".into(), |n| n.to_string());
    let show_mib = |v: Option<u64>| v.map_or("-".into(), mib);
    println!("Soak, {secs} s:\n\n{}", roles_table(&outcome));
    println!(
        "| gateway | start | peak, middle third | peak, last third | end |\n|---|---:|---:|---:|---:|\n\
         | RSS (MiB) | {} | {} | {} | {} |\n\
         | spent set (entries) | {} | {} | {} | {} |\n",
        mib(first.rss_kib),
        show_mib(rss_mid),
        show_mib(rss_last),
        mib(last.rss_kib),
        show(first.spent),
        show(spent_mid),
        show(spent_last),
        show(last.spent),
    );
    println!(
        "Peak RSS (VmHWM): {} MiB; {} samples.\n",
        mib(last.hwm_kib),
        samples.len()
    );
    if misses.is_empty() {
        println!(
            "Flat: RSS and the spent set stayed within their middle-third peaks; every role answered as it should."
        );
    } else {
        println!("Missed:");
        for m in &misses {
            println!("- {m}");
        }
    }
    Ok(misses.is_empty())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let common = match &cli.command {
        Command::Flood { common, .. } | Command::Soak { common, .. } => common,
    };
    if !common.gateway.ip().is_loopback() || common.mint.is_some_and(|m| !m.ip().is_loopback()) {
        eprintln!("plannt-load: loopback gateways only");
        return ExitCode::from(2);
    }
    let result = runtime.block_on(async {
        match cli.command {
            Command::Flood { common, secs } => flood(common, secs).await,
            Command::Soak {
                common,
                secs,
                buyers,
                replay_rate,
                csv,
            } => soak(common, secs, buyers, replay_rate, csv).await,
        }
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("plannt-load: {e}");
            ExitCode::from(2)
        }
    }
}
