//! The gateway's load harness: several roles of traffic at once against one `plannt serve`,
//! each from a loopback source address of its own (the gateway limits challenges per address).
//!
//! - **paid**: buys tokens (a 402 from the mint gateway, then `POST /_plannt/dev/pay`), before or
//!   during the run, and presents each once: expects 200.
//! - **replay**: presents tokens the paid role has spent: expects 402 `spent` (or 429 once its
//!   address has used up its challenges: a 402 for a spent token is a challenge too).
//! - **flood**: asks for challenges without a credential: 402 until the burst is gone, then 429.
//! - **garbage**: malformed or forged `Authorization` values: expects 401.
//!
//! A sampler reads the gateway's RSS (`/proc/PID/status`) and its `plannt_spent_tokens` gauge
//! (`/metrics`) every few seconds. Only tokio and serde_json: the HTTP/1.1 client is the few lines
//! below (keep-alive, `Content-Length` or chunked bodies), so the `plannt` binary's tests can
//! include this file too.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The longest one request may take before it counts as an error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest response head or body read.
const MAX_RESPONSE: usize = 1 << 20;
/// The highest rate one connection of a fixed-rate role is given, requests per second.
pub const MAX_CONNECTION_RATE: f64 = 250.0;
/// How many spent tokens the replay role picks from.
const SPENT_POOL: usize = 10_000;

/// One HTTP/1.1 answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    /// `x-l402-reason`, when present.
    pub reason: Option<String>,
    /// `x-l402`, when present.
    pub l402: Option<String>,
    pub body: Vec<u8>,
}

impl Answer {
    /// The status and the reason, as counted: `200`, `402 spent`, `401 malformed`, `429`.
    pub fn label(&self) -> String {
        match &self.reason {
            Some(r) => format!("{} {r}", self.status),
            None => self.status.to_string(),
        }
    }
}

/// A keep-alive HTTP/1.1 connection from a chosen loopback source address, opened again after the
/// server closes it or an error.
pub struct Client {
    source: Ipv4Addr,
    server: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    /// Connections opened.
    pub connects: u64,
}

impl Client {
    pub fn new(source: Ipv4Addr, server: SocketAddr) -> Self {
        Client {
            source,
            server,
            stream: None,
            buf: Vec::with_capacity(4096),
            connects: 0,
        }
    }

    async fn connect(&mut self) -> io::Result<()> {
        if self.stream.is_none() {
            let socket = TcpSocket::new_v4()?;
            socket.bind(SocketAddr::from((self.source, 0)))?;
            let stream = socket.connect(self.server).await?;
            stream.set_nodelay(true)?;
            self.stream = Some(stream);
            self.buf.clear();
            self.connects += 1;
        }
        Ok(())
    }

    /// Sends one request and reads its answer, within [`REQUEST_TIMEOUT`]. After an error the
    /// connection is dropped (the next request opens a new one).
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        authorization: Option<&str>,
        json_body: Option<&str>,
    ) -> io::Result<Answer> {
        let result = tokio::time::timeout(
            REQUEST_TIMEOUT,
            self.exchange(method, path, authorization, json_body),
        )
        .await
        .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "no answer in 10 s")));
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    async fn exchange(
        &mut self,
        method: &str,
        path: &str,
        authorization: Option<&str>,
        json_body: Option<&str>,
    ) -> io::Result<Answer> {
        let mut request = format!("{method} {path} HTTP/1.1\r\nhost: {}\r\n", self.server);
        if let Some(a) = authorization {
            let _ = write!(request, "authorization: {a}\r\n");
        }
        if let Some(b) = json_body {
            let _ = write!(
                request,
                "content-type: application/json\r\ncontent-length: {}\r\n\r\n{b}",
                b.len()
            );
        } else {
            request.push_str("\r\n");
        }
        self.connect().await?;
        let stream = self.stream.as_mut().expect("just connected");
        stream.write_all(request.as_bytes()).await?;
        let (answer, close) = read_answer(stream, &mut self.buf).await?;
        if close {
            self.stream = None;
        }
        Ok(answer)
    }
}

fn bad(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads more bytes into `buf`; an end of stream is an error (a whole answer was expected).
async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<()> {
    if buf.len() > MAX_RESPONSE {
        return Err(bad("answer over 1 MiB"));
    }
    let mut chunk = [0u8; 16384];
    let n = stream.read(&mut chunk).await?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the server closed the connection",
        ));
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

/// Reads one answer; says whether the server will close the connection after it.
async fn read_answer(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<(Answer, bool)> {
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        fill(stream, buf).await?;
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| bad("head not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bad status line {status_line:?}")))?;
    let (mut length, mut chunked, mut close) = (None, false, false);
    let (mut reason, mut l402) = (None, None);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                length = Some(
                    value
                        .parse::<usize>()
                        .map_err(|_| bad("bad content-length"))?,
                )
            }
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "connection" => close = value.eq_ignore_ascii_case("close"),
            "x-l402-reason" => reason = Some(value.to_string()),
            "x-l402" => l402 = Some(value.to_string()),
            _ => {}
        }
    }
    buf.drain(..head_end);
    let body = if chunked {
        loop {
            if let Some((body, used)) = dechunk(buf)? {
                buf.drain(..used);
                break body;
            }
            fill(stream, buf).await?;
        }
    } else {
        let length = length.unwrap_or(0);
        if length > MAX_RESPONSE {
            return Err(bad("body over 1 MiB"));
        }
        while buf.len() < length {
            fill(stream, buf).await?;
        }
        buf.drain(..length).collect()
    };
    let answer = Answer {
        status,
        reason,
        l402,
        body,
    };
    Ok((answer, close))
}

/// A whole chunked body at the start of `buf`, and how many bytes it took; `None` if more are needed.
fn dechunk(buf: &[u8]) -> io::Result<Option<(Vec<u8>, usize)>> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let Some(eol) = find(&buf[at..], b"\r\n") else {
            return Ok(None);
        };
        let size_text = std::str::from_utf8(&buf[at..at + eol]).map_err(|_| bad("chunk size"))?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| bad("chunk size"))?;
        at += eol + 2;
        if size == 0 {
            // No trailers from our gateway: the final CRLF.
            if buf.len() < at + 2 {
                return Ok(None);
            }
            return Ok(Some((body, at + 2)));
        }
        if buf.len() < at + size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&buf[at..at + size]);
        at += size + 2;
    }
}

/// Buys one token: a challenge from the mint gateway, paid through its dev network.
pub async fn buy(client: &mut Client, path: &str) -> Result<String, String> {
    let challenge = client
        .send("GET", path, None, None)
        .await
        .map_err(|e| format!("challenge: {e}"))?;
    if challenge.status != 402 {
        return Err(format!(
            "challenge: expected 402, got {} {}",
            challenge.status,
            String::from_utf8_lossy(&challenge.body)
        ));
    }
    let body: serde_json::Value =
        serde_json::from_slice(&challenge.body).map_err(|e| format!("challenge body: {e}"))?;
    let (Some(macaroon), Some(invoice)) = (body["macaroon"].as_str(), body["invoice"].as_str())
    else {
        return Err(format!("challenge without macaroon or invoice: {body}"));
    };
    let request = serde_json::json!({ "invoice": invoice, "account": "load" }).to_string();
    let paid = client
        .send("POST", "/_plannt/dev/pay", None, Some(&request))
        .await
        .map_err(|e| format!("dev pay: {e}"))?;
    let paid_body: serde_json::Value =
        serde_json::from_slice(&paid.body).map_err(|e| format!("dev pay body: {e}"))?;
    match (paid.status, paid_body["preimage"].as_str()) {
        (200, Some(preimage)) => Ok(format!("L402 {macaroon}:{preimage}")),
        _ => Err(format!("dev pay: {} {paid_body}", paid.status)),
    }
}

/// Buys `count` tokens with `concurrency` connections from `source`.
pub async fn buy_many(
    mint: SocketAddr,
    source: Ipv4Addr,
    path: &str,
    count: usize,
    concurrency: usize,
) -> Result<Vec<String>, String> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let next = next.clone();
        let path = path.to_string();
        tasks.push(tokio::spawn(async move {
            let mut client = Client::new(source, mint);
            let mut tokens = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < count as u64 {
                tokens.push(buy(&mut client, &path).await?);
            }
            Ok::<_, String>(tokens)
        }));
    }
    let mut all = Vec::with_capacity(count);
    for task in tasks {
        all.extend(task.await.map_err(|e| e.to_string())??);
    }
    Ok(all)
}

/// The kinds of traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Paid,
    Replay,
    Flood,
    Garbage,
}

impl Kind {
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
    pub kind: Kind,
    pub source: Ipv4Addr,
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
    During { mint: SocketAddr, buyers: usize },
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
    pub first_error: Option<String>,
    /// Paid only: tokens the `x-l402` header did not say were spent on a 200.
    pub not_marked_spent: u64,
    /// Paid only: the role ran out of tokens.
    pub starved: u64,
    pub connects: u64,
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
    pub answered: [AtomicU64; 4],
}

impl Progress {
    fn add(&self, kind: Kind) {
        self.answered[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, kind: Kind) -> u64 {
        self.answered[kind as usize].load(Ordering::Relaxed)
    }
}

/// A run: roles against one gateway, for a while.
pub struct Plan {
    pub gateway: SocketAddr,
    /// The priced path every role asks for.
    pub path: String,
    pub duration: Duration,
    pub roles: Vec<Role>,
    pub supply: Arc<Supply>,
}

/// What a run saw, by role.
pub struct Outcome {
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

/// One sample of the gateway process.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub at: Duration,
    pub rss_kib: u64,
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

/// Microseconds as text: `850 µs`, `1.25 ms`.
pub fn micros(us: u32) -> String {
    if us >= 1000 {
        format!("{:.2} ms", f64::from(us) / 1000.0)
    } else {
        format!("{us} µs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dechunks_a_body() {
        let (body, used) = dechunk(b"3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\nNEXT")
            .unwrap()
            .unwrap();
        assert_eq!(body, b"abcde");
        assert_eq!(used, 24);
        assert!(dechunk(b"3\r\nab").unwrap().is_none());
        assert!(dechunk(b"zz\r\n").is_err());
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let stats = Stats {
            latencies_us: (1..=100).rev().collect(),
            ..Stats::default()
        };
        assert_eq!(stats.quantile_us(0.5), 50);
        assert_eq!(stats.quantile_us(0.99), 99);
        assert_eq!(stats.quantile_us(1.0), 100);
        assert_eq!(Stats::default().quantile_us(0.99), 0);
    }

    #[test]
    fn reads_a_metric() {
        let text =
            "# TYPE plannt_spent_tokens gauge\nplannt_spent_tokens 42\nplannt_spent_tokens_x 1\n";
        assert_eq!(metric(text, "plannt_spent_tokens"), Some(42));
        assert_eq!(metric(text, "plannt_other"), None);
    }

    #[test]
    fn counts_by_status_prefix() {
        let mut stats = Stats::default();
        stats.counts.insert("402 spent".into(), 3);
        stats.counts.insert("402".into(), 2);
        stats.counts.insert("4020".into(), 7);
        stats.counts.insert("429".into(), 1);
        assert_eq!(stats.count("402"), 5);
        assert_eq!(stats.count("402 spent"), 3);
        assert_eq!(stats.answered(), 13);
    }
}
