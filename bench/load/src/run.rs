//! One run: the roles of traffic, each on its own connections and source address, their
//! statistics, and the plan and outcome of the whole.

use std::collections::{BTreeMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::http::Client;
use crate::tokens::buy;
use crate::{MAX_CONNECTION_RATE, SPENT_POOL};

/// The kinds of traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A token of its own on each request: 200 expected.
    Paid,
    /// Tokens the paid role spent: 402 `spent` expected.
    Replay,
    /// No credential: 402, then 429 past the burst.
    Flood,
    /// Malformed or forged credentials: 401 expected.
    Garbage,
}

impl Kind {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Paid => "paid",
            Kind::Replay => "replay",
            Kind::Flood => "flood",
            Kind::Garbage => "garbage",
        }
    }
}

/// One role: a kind of traffic from one source address over some connections, as fast as the
/// gateway answers or at a fixed total rate.
#[derive(Debug, Clone)]
pub struct Role {
    /// What it sends.
    pub kind: Kind,
    /// The loopback address it sends from.
    pub source: Ipv4Addr,
    /// Connections it keeps open.
    pub connections: usize,
    /// Requests per second over all the role's connections; `None`: each connection sends the
    /// next request as soon as the last is answered.
    pub rate: Option<f64>,
}

/// Where the paid role's tokens come from.
pub enum Supply {
    /// Bought beforehand.
    Bought(Mutex<VecDeque<String>>),
    /// Bought during the run by `buyers` connections from the paid role's address.
    During {
        /// The gateway that sells them.
        mint: SocketAddr,
        /// Connections buying at once.
        buyers: usize,
    },
}

/// What one role saw.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Answers by [`Answer::label`].
    pub counts: BTreeMap<String, u64>,
    /// Latency of each answered request, microseconds.
    pub latencies_us: Vec<u32>,
    /// Requests that got no answer (connect, read, timeout) or could not be made.
    pub errors: u64,
    /// The first of those errors, for the report.
    pub first_error: Option<String>,
    /// Paid only: tokens the `x-l402` header did not say were spent on a 200.
    pub not_marked_spent: u64,
    /// Paid only: the role ran out of tokens.
    pub starved: u64,
    /// Connections opened.
    pub connects: u64,
    /// How long the role ran.
    pub elapsed: Duration,
}

impl Stats {
    fn merge(&mut self, other: Stats) {
        for (label, n) in other.counts {
            *self.counts.entry(label).or_default() += n;
        }
        self.latencies_us.extend(other.latencies_us);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.not_marked_spent += other.not_marked_spent;
        self.starved += other.starved;
        self.connects += other.connects;
    }

    fn error(&mut self, e: impl std::fmt::Display) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e.to_string());
        }
    }

    /// Answered requests.
    pub fn answered(&self) -> u64 {
        self.counts.values().sum()
    }

    /// Answers whose label starts with `prefix` (`"402"`, `"402 spent"`).
    pub fn count(&self, prefix: &str) -> u64 {
        self.counts
            .iter()
            .filter(|(label, _)| *label == prefix || label.starts_with(&format!("{prefix} ")))
            .map(|(_, n)| n)
            .sum()
    }

    /// Answered requests per second.
    pub fn throughput(&self) -> f64 {
        self.answered() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile (0..=1) of the latencies, microseconds (nearest rank).
    pub fn quantile_us(&self, q: f64) -> u32 {
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        if sorted.is_empty() {
            return 0;
        }
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }

    /// The counts as `200: 5, 429: 3`.
    pub fn counts_text(&self) -> String {
        let mut parts: Vec<String> = self
            .counts
            .iter()
            .map(|(l, n)| format!("{l}: {n}"))
            .collect();
        if self.errors > 0 {
            parts.push(format!(
                "errors: {} ({})",
                self.errors,
                self.first_error.as_deref().unwrap_or("")
            ));
        }
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }
}

/// Counters the sampler reads while the run goes on: requests answered so far, per role.
#[derive(Default)]
pub struct Progress {
    /// Requests answered so far, by [`Kind`] (paid, replay, flood, garbage).
    pub answered: [AtomicU64; 4],
}

impl Progress {
    fn add(&self, kind: Kind) {
        self.answered[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Requests of `kind` answered so far.
    pub fn get(&self, kind: Kind) -> u64 {
        self.answered[kind as usize].load(Ordering::Relaxed)
    }
}

/// A run: roles against one gateway, for a while.
pub struct Plan {
    /// The gateway under load.
    pub gateway: SocketAddr,
    /// The priced path every role asks for.
    pub path: String,
    /// How long the roles send.
    pub duration: Duration,
    /// Who sends what.
    pub roles: Vec<Role>,
    /// Where the paid role's tokens come from.
    pub supply: Arc<Supply>,
}

/// What a run saw, by role.
pub struct Outcome {
    /// Each role's statistics.
    pub roles: BTreeMap<Kind, Stats>,
}

/// The malformed and forged credentials the garbage role cycles through: each must get a 401.
/// (Another scheme, `Bearer …`, is no L402 credential at all: it gets a challenge.)
pub fn garbage_credentials() -> Vec<String> {
    // Values that do not parse, and a real macaroon (Aperture's) with a preimage that does not
    // hash to its payment hash.
    let forged = "AgEEbHNhdAJCAAAwpHpumws6ufQoDwiTLNcge0QPUIWA0+tVY+tKPYAJ/zSfmEGlIpNm3VzxuzCqLhEp5KGiyPLUM9L+kcB7uzS+AAIPc2VydmljZXM9bWVtZTowAAISbWVtZV9jYXBhYmlsaXRpZXM9AAAGILA1VCEIExukt4nG+XR9tX8WJ2BVMiHG3UNt1uYJ+NRD";
    vec![
        "L402 garbage".into(),
        "L402 :".into(),
        "L402 AgEE!!!!:00".into(),
        format!("L402 {}:{}", "A".repeat(4000), "0".repeat(64)),
        format!("L402 {forged}:{}", "ab".repeat(32)),
        format!("LSAT {forged}:{}", "zz".repeat(32)),
    ]
}

/// Runs the plan to its end and says what each role saw.
pub async fn run(plan: &Plan, progress: Arc<Progress>) -> Outcome {
    let spent = Arc::new(Mutex::new(VecDeque::<String>::new()));
    let started = Instant::now();
    let deadline = started + plan.duration;
    let mut tasks = Vec::new();
    // Tokens bought during the run come through a small queue, so none waits long to be used.
    let mut bought = None;
    if let Supply::During { mint, buyers } = &*plan.supply
        && let Some(paid) = plan.roles.iter().find(|r| r.kind == Kind::Paid)
    {
        let (tx, rx) = mpsc::channel::<String>(16);
        for _ in 0..(*buyers).max(1) {
            let (tx, path, mint, source) = (tx.clone(), plan.path.clone(), *mint, paid.source);
            tasks.push(tokio::spawn(async move {
                let mut client = Client::new(source, mint);
                let mut stats = Stats::default();
                while Instant::now() < deadline {
                    match buy(&mut client, &path).await {
                        Ok(token) => {
                            if tx.send(token).await.is_err() {
                                break;
                            }
                        }
                        Err(e) => {
                            stats.error(format!("buying: {e}"));
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
                (Kind::Paid, stats)
            }));
        }
        bought = Some(Arc::new(tokio::sync::Mutex::new(rx)));
    }
    let garbage = Arc::new(garbage_credentials());
    for role in &plan.roles {
        // A connection sends at most MAX_CONNECTION_RATE requests a second on schedule (the
        // timer wakes to the millisecond): more connections for a higher rate.
        let connections = match role.rate {
            Some(r) => role
                .connections
                .max((r / MAX_CONNECTION_RATE).ceil() as usize),
            None => role.connections,
        }
        .max(1);
        let interval = role
            .rate
            .map(|r| Duration::from_secs_f64(connections as f64 / r.max(1e-3)));
        for c in 0..connections {
            let role = role.clone();
            let (spent, supply, bought, garbage, progress) = (
                spent.clone(),
                plan.supply.clone(),
                bought.clone(),
                garbage.clone(),
                progress.clone(),
            );
            let (gateway, path) = (plan.gateway, plan.path.clone());
            tasks.push(tokio::spawn(async move {
                let mut client = Client::new(role.source, gateway);
                let mut stats = Stats::default();
                // Spread the connections' schedules over one interval.
                let mut next = interval.map(|i| started + i.mul_f64(c as f64 / connections as f64));
                let mut n = c;
                let mut last_answer: Option<Instant> = None;
                loop {
                    if let Some(at) = next {
                        if at >= deadline {
                            break;
                        }
                        tokio::time::sleep_until(at).await;
                    } else if Instant::now() >= deadline {
                        break;
                    }
                    let before = Instant::now();
                    let credential = match role.kind {
                        Kind::Flood => None,
                        Kind::Garbage => Some(garbage[n % garbage.len()].clone()),
                        Kind::Replay => {
                            let token = {
                                let pool = spent.lock().expect("spent pool");
                                // One of the last hundred spent: still valid, so the answer
                                // is `spent` rather than `expired`.
                                let recent = pool.len().min(100);
                                (recent > 0).then(|| pool[pool.len() - 1 - n % recent].clone())
                            };
                            match token {
                                Some(t) => Some(t),
                                None => {
                                    // Nothing spent yet: wait for the paid role.
                                    tokio::time::sleep(Duration::from_millis(20)).await;
                                    if let Some(i) = interval {
                                        next = next.map(|at| at.max(Instant::now()) + i);
                                    }
                                    continue;
                                }
                            }
                        }
                        Kind::Paid => {
                            match next_token(&supply, bought.as_deref(), deadline).await {
                                Some(t) => Some(t),
                                None => {
                                    stats.starved += 1;
                                    break;
                                }
                            }
                        }
                    };
                    n += connections;
                    // At a fixed rate, a request that is late because the gateway answered the
                    // previous one after this one was due counts its latency from when it was
                    // due: it waited on the gateway. Otherwise (the timer woke late, the
                    // harness itself was busy, a token was being bought) from when it is sent.
                    let ready = Instant::now();
                    let sent = match (next, last_answer) {
                        (Some(due), Some(answered))
                            if answered > due && ready - before < Duration::from_millis(1) =>
                        {
                            due
                        }
                        _ => ready,
                    };
                    let result = client.send("GET", &path, credential.as_deref(), None).await;
                    last_answer = Some(Instant::now());
                    let took = sent.elapsed();
                    match result {
                        Ok(answer) => {
                            if role.kind == Kind::Paid && answer.status == 200 {
                                if answer.l402.as_deref() != Some("spent") {
                                    stats.not_marked_spent += 1;
                                }
                                let mut pool = spent.lock().expect("spent pool");
                                if pool.len() >= SPENT_POOL {
                                    pool.pop_front();
                                }
                                pool.push_back(credential.expect("paid has a token"));
                            }
                            *stats.counts.entry(answer.label()).or_default() += 1;
                            stats
                                .latencies_us
                                .push(took.as_micros().min(u32::MAX as u128) as u32);
                            progress.add(role.kind);
                        }
                        Err(e) => stats.error(e),
                    }
                    if let Some(i) = interval {
                        next = next.map(|at| at + i);
                    }
                }
                stats.connects = client.connects;
                (role.kind, stats)
            }));
        }
    }
    let mut roles: BTreeMap<Kind, Stats> = BTreeMap::new();
    for role in &plan.roles {
        roles.entry(role.kind).or_default();
    }
    // Every task stops by itself at the deadline (buyers: or when the paid role is gone, which
    // needs this last handle on the queue dropped).
    drop(bought);
    for task in tasks {
        if let Ok((kind, stats)) = task.await {
            roles.entry(kind).or_default().merge(stats);
        }
    }
    let elapsed = started
        .elapsed()
        .min(plan.duration.max(Duration::from_millis(1)));
    for stats in roles.values_mut() {
        stats.elapsed = elapsed;
    }
    Outcome { roles }
}

async fn next_token(
    supply: &Supply,
    bought: Option<&tokio::sync::Mutex<mpsc::Receiver<String>>>,
    deadline: Instant,
) -> Option<String> {
    match supply {
        Supply::Bought(tokens) => tokens.lock().expect("token list").pop_front(),
        Supply::During { .. } => {
            let rx = bought?;
            let mut rx = rx.lock().await;
            tokio::time::timeout_at(deadline, rx.recv())
                .await
                .ok()
                .flatten()
        }
    }
}
