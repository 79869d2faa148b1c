//! Sampling the gateway while it runs: its resident memory (`/proc/PID/status`) and its
//! `plannt_spent_tokens` gauge (`/metrics`).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::http::Client;
use crate::run::{Kind, Outcome, Plan, Progress, run};

/// One sample of the gateway process.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// Since the run began.
    pub at: Duration,
    /// Resident memory, KiB.
    pub rss_kib: u64,
    /// Peak resident memory so far, KiB.
    pub hwm_kib: u64,
    /// `plannt_spent_tokens`, when `/metrics` answered with it.
    pub spent: Option<u64>,
    /// Requests answered so far, by role (paid, replay, flood, garbage).
    pub answered: [u64; 4],
}

/// `VmRSS` and `VmHWM` of a process, KiB.
pub fn memory_of(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// The value of an unlabelled metric in a Prometheus text.
pub fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.split(' ').next() == Some(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as u64)
}

/// Reads the spent-set gauge from the gateway's `/metrics`.
pub async fn spent_gauge(client: &mut Client) -> Option<u64> {
    let answer = client.send("GET", "/metrics", None, None).await.ok()?;
    metric(
        &String::from_utf8_lossy(&answer.body),
        "plannt_spent_tokens",
    )
}

/// Samples the gateway every `every` until `stop` is set; returns the samples.
pub async fn sample(
    gateway: SocketAddr,
    pid: Option<u32>,
    every: Duration,
    progress: Arc<Progress>,
    stop: Arc<AtomicBool>,
    mut each: impl FnMut(&Sample) + Send,
) -> Vec<Sample> {
    let mut client = Client::new(Ipv4Addr::LOCALHOST, gateway);
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (rss_kib, hwm_kib) = pid.and_then(memory_of).unwrap_or_default();
        let sample = Sample {
            at: started.elapsed(),
            rss_kib,
            hwm_kib,
            spent: spent_gauge(&mut client).await,
            answered: [Kind::Paid, Kind::Replay, Kind::Flood, Kind::Garbage]
                .map(|k| progress.get(k)),
        };
        each(&sample);
        samples.push(sample);
        if stop.load(Ordering::Relaxed) {
            return samples;
        }
    }
}

/// Runs `plan` while sampling the gateway; returns the outcome and the samples (one at the start,
/// one every `every`, one at the end).
pub async fn run_sampled(
    plan: &Plan,
    pid: Option<u32>,
    every: Duration,
    each: impl FnMut(&Sample) + Send + 'static,
) -> (Outcome, Vec<Sample>) {
    let progress = Arc::new(Progress::default());
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn(sample(
        plan.gateway,
        pid,
        every,
        progress.clone(),
        stop.clone(),
        each,
    ));
    let outcome = run(plan, progress).await;
    stop.store(true, Ordering::Relaxed);
    let samples = sampler.await.unwrap_or_default();
    (outcome, samples)
}
