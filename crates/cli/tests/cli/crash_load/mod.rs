//! Crash safety under load: `plannt serve` on the SQLite store is killed with SIGKILL several
//! times while client tasks buy tokens (a 402, a payment through the dev network's
//! `POST /_plannt/dev/pay`, the credential) and spend them on a route forwarded to an upstream of
//! this test's own; each time it is started again on the same port, data directory and root key.
//!
//! Every token's outcomes are recorded. After the load the gateway is killed and started once
//! more, and every token is presented again: one that got a 200 must get the same answer again,
//! kept (`x-l402: replayed`, no upstream call), and be refused as `spent` for another request;
//! one that never got a 200 (its request was cut by a kill, or its upstream failed) must get its
//! answer now, and only one. The upstream counts what it answered for each payment hash, which
//! tells a token the gateway spent after an upstream answer from one it spent for nothing.
//!
//! The gateway commits a token, with its answer kept, durably before the status line leaves, so
//! that a 200 is never followed by a second upstream call after a crash. A kill between the two
//! spends the token although its client saw only a cut connection: its retry must get the kept
//! answer (counted). The run fails if any paid token ends spent without an answer its retry can
//! get (every answer here is far under `keep_answer_bytes`).
//!
//! - `tokens_that_got_a_200_stay_spent_across_kills`: the upstream always answers 200.
//! - `released_tokens_work_later_across_kills`: it answers 500 to every other request; each 5xx
//!   must carry `x-l402: released`, and its token must get a 200 later.
//! - `an_invoice_of_a_killed_gateway_is_paid_and_used_after_its_restart`: buying does not need
//!   the process that issued the invoice (the dev network derives preimages from `dev-node.key`;
//!   its paid set and balances live in memory and start empty at each start).
//!
//! Short by default (`PLANNT_CRASH_SECONDS`, 8 s of load, and `PLANNT_CRASH_KILLS`, 4 kills, per
//! test); `bench/crash.sh` runs it long. `PLANNT_CRASH_SEED` repeats the kill schedule of a run.
//! Each test prints its counts as a Markdown table row, on a line starting with `crash-row `.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::cluster::header;
use fixtures::{Gateway, PATH, Upstream};

mod fixtures;

/// Client tasks buying and spending tokens at once.
const CLIENTS: usize = 6;
/// The most answers one token gets during the load before it is left for the end (released
/// answers in a row, with an upstream failing half the time).
const MAX_USES: usize = 20;
/// The longest a client waits for a gateway that is down, or a request for its answer.
const PATIENCE: Duration = Duration::from_secs(60);

/// How long and how hard: from the environment, small by default.
struct Settings {
    seconds: u64,
    kills: u64,
    seed: u64,
}

impl Settings {
    fn from_env() -> Settings {
        let number = |name: &str, default: u64| match std::env::var(name) {
            Ok(v) => v
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("{name}={v:?}: expected a whole number")),
            Err(_) => default,
        };
        let clock = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        Settings {
            seconds: number("PLANNT_CRASH_SECONDS", 8).max(1),
            kills: number("PLANNT_CRASH_KILLS", 4),
            seed: number("PLANNT_CRASH_SEED", clock) | 1,
        }
    }
}

/// xorshift64: the kill schedule, repeatable from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A duration between `low` and `high`.
    fn between(&mut self, low: Duration, high: Duration) -> Duration {
        let span = high.saturating_sub(low).as_millis() as u64;
        low + Duration::from_millis(self.next() % (span + 1))
    }
}

// --- the clients -------------------------------------------------------------------------------

/// One answer to one presentation of a token.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// 200 with `x-l402: spent` and the upstream's answer for this very token (`body_cut`: the
    /// status came, the body was cut off by a kill).
    Accepted { body_cut: bool },
    /// 200 with `x-l402: replayed` and the upstream's answer for this very token, kept.
    Replayed,
    /// 409 with `x-l402: pending`: the token's first request is still in flight.
    Pending,
    /// A 5xx with `x-l402: released`.
    Released(u16),
    /// 402 with reason `spent`.
    Spent,
    /// Sent, and no answer came: the gateway died.
    Broken,
    /// Anything else (a test failure).
    Other(String),
}

#[derive(Debug)]
struct Token {
    hash: String,
    credential: String,
    outcomes: Vec<Outcome>,
}

impl Token {
    fn accepted(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Accepted { .. }))
            .count()
    }

    fn count(&self, outcome: fn(&Outcome) -> bool) -> usize {
        self.outcomes.iter().filter(|o| outcome(o)).count()
    }
}

/// What the clients met besides their tokens' outcomes.
#[derive(Debug, Default)]
struct Doings {
    /// Connections refused while the gateway was down (nothing sent).
    refused_while_down: u64,
    /// Challenges and payments whose answer a kill cut off (asked again).
    challenges_broken: u64,
    payments_broken: u64,
    /// Payments made by a process that was killed before it answered, read back by lookup.
    payments_looked_up: u64,
}

struct Reply {
    status: u16,
    x_l402: Option<String>,
    reason: Option<String>,
    body: Value,
}

enum Sent {
    Answer(Reply),
    /// The connection was refused: the request was not sent.
    Down,
    /// Sent (or maybe sent), and no answer came.
    Broken,
}

async fn send(request: reqwest::RequestBuilder) -> Sent {
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) if e.is_connect() => return Sent::Down,
        Err(_) => return Sent::Broken,
    };
    let status = response.status().as_u16();
    let x_l402 = header(&response, "x-l402");
    let reason = header(&response, "x-l402-reason");
    // The status line came, so the gateway decided; a body cut off by a kill reads as null.
    let body = match response.bytes().await {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        Err(_) => Value::Null,
    };
    Sent::Answer(Reply {
        status,
        x_l402,
        reason,
        body,
    })
}

/// Without a connection pool: a connection belongs to one request, so a refused connection
/// means the request was not sent.
fn http() -> reqwest::Client {
    plannt_lightning::install_tls_provider();
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(PATIENCE)
        .build()
        .unwrap()
}

/// Sends until the gateway answers or the connection breaks: waits out a gateway that is down
/// (at most `PATIENCE`).
async fn send_when_up(
    make: impl Fn() -> reqwest::RequestBuilder,
    doings: &mut Doings,
) -> Option<Reply> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match send(make()).await {
            Sent::Answer(reply) => return Some(reply),
            Sent::Broken => return None,
            Sent::Down => {
                doings.refused_while_down += 1;
                assert!(
                    Instant::now() < deadline,
                    "the gateway stayed down for {PATIENCE:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// A 402 for the route, then a payment on the dev network: a token, paid.
async fn buy(http: &reqwest::Client, base: &str, account: &str, doings: &mut Doings) -> Token {
    let url = format!("{base}{PATH}");
    let mut challenge = None;
    for _ in 0..100 {
        match send_when_up(|| http.get(&url), doings).await {
            Some(reply) => {
                challenge = Some(reply);
                break;
            }
            None => doings.challenges_broken += 1,
        }
    }
    let challenge = challenge.expect("a challenge within 100 tries");
    assert_eq!(challenge.status, 402, "{:?}", challenge.body);
    let field = |name: &str| {
        challenge.body[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name} in {}", challenge.body))
            .to_string()
    };
    let (macaroon, invoice, hash) = (field("macaroon"), field("invoice"), field("payment_hash"));

    // Paying needs a gateway up, not the one that issued the invoice: the preimage derives from
    // the node key in the data directory.
    let pay = format!("{base}/_plannt/dev/pay");
    let lookup = format!("{base}/_plannt/dev/payments/{hash}?account={account}");
    let mut preimage = None;
    for _ in 0..100 {
        let request = || {
            http.post(&pay)
                .json(&json!({"invoice": invoice, "account": account}))
        };
        let Some(reply) = send_when_up(request, doings).await else {
            doings.payments_broken += 1;
            continue;
        };
        let paid = match reply.status {
            200 => reply.body,
            // Already paid, to this very process: an earlier try's answer was cut off. Read
            // the payment back.
            409 => {
                let Some(found) = send_when_up(|| http.get(&lookup), doings).await else {
                    continue;
                };
                assert_eq!(found.body["status"], "succeeded", "{}", found.body);
                doings.payments_looked_up += 1;
                found.body
            }
            status => panic!("dev pay answered {status}: {}", reply.body),
        };
        preimage = Some(paid["preimage"].as_str().expect("a preimage").to_string());
        break;
    }
    let preimage = preimage.expect("a payment within 100 tries");
    Token {
        hash,
        credential: format!("L402 {macaroon}:{preimage}"),
        outcomes: Vec::new(),
    }
}

/// Presents `token` once and records what came back; `None` if the gateway stayed down.
async fn present(
    http: &reqwest::Client,
    base: &str,
    token: &mut Token,
    doings: &mut Doings,
) -> Outcome {
    present_at(http, base, PATH, token, doings).await
}

/// Presents `token` once for `path` (the route's, with a query or not) and records the outcome.
async fn present_at(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    token: &mut Token,
    doings: &mut Doings,
) -> Outcome {
    let url = format!("{base}{path}");
    let request = || http.get(&url).header("authorization", &token.credential);
    let outcome = match send_when_up(request, doings).await {
        None => Outcome::Broken,
        Some(reply) => classify(&reply, &token.hash),
    };
    token.outcomes.push(outcome.clone());
    outcome
}

fn classify(reply: &Reply, hash: &str) -> Outcome {
    let x_l402 = reply.x_l402.as_deref();
    match reply.status {
        200 if x_l402 == Some("spent") && reply.body == json!({"served": hash}) => {
            Outcome::Accepted { body_cut: false }
        }
        200 if x_l402 == Some("spent") && reply.body.is_null() => {
            Outcome::Accepted { body_cut: true }
        }
        200 if x_l402 == Some("replayed") && reply.body == json!({"served": hash}) => {
            Outcome::Replayed
        }
        409 if x_l402 == Some("pending") && reply.body["reason"] == "in_progress" => {
            Outcome::Pending
        }
        500..=599 if x_l402 == Some("released") => Outcome::Released(reply.status),
        402 if reply.reason.as_deref() == Some("spent") && reply.body["reason"] == "spent" => {
            Outcome::Spent
        }
        status => Outcome::Other(format!(
            "{status}, x-l402 {x_l402:?}, x-l402-reason {:?}: {}",
            reply.reason, reply.body
        )),
    }
}

/// One client: buys a token, presents it until it gets an answer other than `released`, and
/// again, until `end`. A token whose request a kill cut off is left for the end.
async fn client(n: usize, base: String, end: Instant) -> (Vec<Token>, Doings) {
    let http = http();
    let account = format!("client-{n}");
    let mut tokens = Vec::new();
    let mut doings = Doings::default();
    while Instant::now() < end {
        let mut token = buy(&http, &base, &account, &mut doings).await;
        for _ in 0..MAX_USES {
            match present(&http, &base, &mut token, &mut doings).await {
                Outcome::Released(_) => continue,
                _ => break,
            }
        }
        tokens.push(token);
    }
    (tokens, doings)
}

// --- the run -----------------------------------------------------------------------------------

/// The counts of one run.
#[derive(Debug, Default)]
struct Counts {
    kills: u64,
    paid: usize,
    accepted: usize,
    released: usize,
    broken: usize,
    /// Tokens that got a 200 in the load and got the same answer, kept, when presented again.
    replayed: usize,
    /// Tokens refused as spent for another request (a query added) after the load.
    refused_other: usize,
    /// Tokens without a 200 in the load that got one after it (their claim was released).
    recovered: usize,
    /// Tokens without a 200 in the load whose retry got the kept answer: a kill fell between
    /// the commit and the status line.
    kept_after_kill: usize,
    /// Tokens spent without an answer their retry could get (must be none).
    lost: usize,
    upstream_ok: u64,
    upstream_failed: u64,
}

fn run(failing_half: bool) -> Counts {
    let settings = Settings::from_env();
    let name = if failing_half {
        "upstream failing half the time"
    } else {
        "healthy upstream"
    };
    eprintln!(
        "crash load, {name}: {} s, {} kills, PLANNT_CRASH_SEED={}",
        settings.seconds, settings.kills, settings.seed
    );
    let mut rng = Rng(settings.seed);
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::start(failing_half);
    let mut gateway = Gateway::start(dir.path(), &upstream);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // The load, with kills at random moments: the k-th around k/(kills+1) of the way.
    let started = Instant::now();
    let duration = Duration::from_secs(settings.seconds);
    let end = started + duration;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| runtime.spawn(client(n, gateway.base(), end)))
        .collect();
    let step = duration / (settings.kills as u32 + 1);
    for k in 1..=settings.kills {
        let at = started + step * k as u32 + rng.between(Duration::ZERO, step / 2) - step / 4;
        if let Some(wait) = at.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        gateway.kill_and_restart();
    }
    let mut tokens = Vec::new();
    let mut doings = Doings::default();
    for task in clients {
        let (mine, met) = runtime.block_on(task).unwrap();
        tokens.extend(mine);
        doings.refused_while_down += met.refused_while_down;
        doings.challenges_broken += met.challenges_broken;
        doings.payments_broken += met.payments_broken;
        doings.payments_looked_up += met.payments_looked_up;
    }
    let kills = gateway.restarts;
    let during_load: Vec<usize> = tokens.iter().map(Token::accepted).collect();
    let load_outcomes: Vec<usize> = tokens.iter().map(|t| t.outcomes.len()).collect();

    // Once more, with nothing in flight: every token that got a 200 must be refused by a process
    // that never saw it.
    gateway.kill_and_restart();
    let http = http();
    let base = gateway.base();
    let mut lost = Vec::new();
    let mut kept_after_kill = Vec::new();
    let mut recovered = 0;
    let mut replayed = 0;
    let mut refused_other = 0;
    runtime.block_on(async {
        for (token, &before) in tokens.iter_mut().zip(&during_load) {
            if before == 0 {
                // Never a 200: its request was cut off by a kill, or released, or left.
                for _ in 0..MAX_USES {
                    match present(&http, &base, token, &mut doings).await {
                        Outcome::Released(_) => continue,
                        Outcome::Accepted { .. } => recovered += 1,
                        Outcome::Replayed => kept_after_kill.push(token.hash.clone()),
                        Outcome::Spent => lost.push(token.hash.clone()),
                        _ => {}
                    }
                    break;
                }
            }
            // Whatever happened, it is spent now: the same request gets the kept answer (no
            // upstream call), another one is refused as spent.
            let again = present(&http, &base, token, &mut doings).await;
            if !lost.contains(&token.hash) {
                assert_eq!(
                    again,
                    Outcome::Replayed,
                    "a token presented again after it got its answer: {token:?}"
                );
                if before == 1 {
                    replayed += 1;
                }
            }
            let other = format!("{PATH}?again=1");
            let refused = present_at(&http, &base, &other, token, &mut doings).await;
            assert_eq!(
                refused,
                Outcome::Spent,
                "a spent token presented for another request: {token:?}"
            );
            refused_other += 1;
        }
    });

    let answered = upstream.answered();
    let released_at_start = gateway.released_at_start();
    let counts = Counts {
        kills,
        paid: tokens.len(),
        accepted: during_load.iter().sum(),
        released: tokens
            .iter()
            .map(|t| t.count(|o| matches!(o, Outcome::Released(_))))
            .sum(),
        broken: tokens
            .iter()
            .map(|t| t.count(|o| *o == Outcome::Broken))
            .sum(),
        replayed,
        refused_other,
        recovered,
        kept_after_kill: kept_after_kill.len(),
        lost: lost.len(),
        upstream_ok: answered.values().map(|a| u64::from(a.ok)).sum(),
        upstream_failed: answered.values().map(|a| u64::from(a.failed)).sum(),
    };
    eprintln!("{name}: {counts:?}\n{doings:?}");
    println!(
        "crash-row | {name} | {} s | {} + 1 | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} |",
        settings.seconds,
        counts.kills,
        counts.paid,
        counts.accepted,
        counts.released,
        counts.broken,
        counts.recovered,
        counts.kept_after_kill,
        counts.replayed,
        counts.refused_other,
        counts.lost,
        counts.upstream_ok,
        counts.upstream_failed,
    );

    // No token got two 200s, in the load and after it together; each 200 carried the upstream's
    // answer for that very token (or its body was cut off by a kill), each 5xx `x-l402: released`.
    for (token, &load) in tokens.iter().zip(&load_outcomes) {
        assert!(token.accepted() <= 1, "two 200s for one token: {token:?}");
        // In the load a token is presented again only after a release: never refused as spent,
        // never replayed, never in flight.
        for outcome in [Outcome::Spent, Outcome::Replayed, Outcome::Pending] {
            assert!(
                !token.outcomes[..load].contains(&outcome),
                "{outcome:?} in the load: {token:?}"
            );
        }
        for outcome in &token.outcomes {
            assert!(
                !matches!(outcome, Outcome::Other(_)),
                "an answer the gateway must not give: {outcome:?} for {token:?}"
            );
        }
    }
    // The upstream's view: a token the gateway spent was answered by the upstream (never spent
    // for nothing), and the upstream answered a token more often than its client saw answers only
    // when kills cut requests off.
    for token in &tokens {
        let seen = answered.get(&token.hash).copied().unwrap_or_default();
        let broken = token.count(|o| *o == Outcome::Broken) as u32;
        let released = token.count(|o| matches!(o, Outcome::Released(_))) as u32;
        assert!(
            seen.ok >= 1,
            "spent without an upstream answer: {token:?}, {seen:?}"
        );
        assert!(
            seen.ok as usize <= token.accepted() + broken as usize,
            "the upstream served it {} times with {broken} broken requests: {token:?}",
            seen.ok
        );
        assert!(
            seen.failed >= released && seen.failed <= released + broken,
            "upstream failures {} against {released} released answers: {token:?}",
            seen.failed
        );
    }
    // Every pending claim a start released was a request in flight at a kill.
    assert!(
        released_at_start as usize <= counts.broken,
        "{counts:?}\n{}",
        gateway.logs()
    );
    // The counts add up: every paid token got its one answer, during the load or after it.
    assert_eq!(
        counts.accepted + counts.recovered + counts.kept_after_kill + counts.lost,
        counts.paid,
        "{counts:?}"
    );
    assert_eq!(counts.replayed, counts.accepted, "{counts:?}");
    assert_eq!(counts.refused_other, counts.paid, "{counts:?}");
    // A token is spent without its client getting the answer only when a kill fell between the
    // commit (durable, with the kept answer, before the status line is sent) and the status
    // line: a request cut off by a kill, the last thing its token did in the load, after the
    // upstream answered it. Its retry gets the kept answer; none is lost.
    for (token, &load) in tokens.iter().zip(&load_outcomes) {
        if kept_after_kill.contains(&token.hash) || lost.contains(&token.hash) {
            assert_eq!(
                token.outcomes[..load].last(),
                Some(&Outcome::Broken),
                "spent without a 200 and not cut off by a kill: {token:?}"
            );
        }
    }
    assert!(
        (counts.kept_after_kill + counts.lost) as u64 + released_at_start <= counts.broken as u64,
        "{counts:?}"
    );
    assert_eq!(
        counts.lost, 0,
        "paid tokens spent without an answer their retry can get: {lost:?}\n{counts:?}"
    );
    if counts.kept_after_kill > 0 {
        eprintln!(
            "{name}: {} paid token(s) spent by a kill between the commit and the status line; \
             each retry got the kept answer: {kept_after_kill:?}",
            counts.kept_after_kill
        );
    }
    assert_eq!(counts.kills, settings.kills, "{counts:?}");
    assert!(counts.paid > 0, "{counts:?}");
    counts
}

#[test]
fn tokens_that_got_a_200_stay_spent_across_kills() {
    let counts = run(false);
    assert_eq!(counts.released, 0, "the upstream never fails: {counts:?}");
}

#[test]
fn released_tokens_work_later_across_kills() {
    let counts = run(true);
    assert!(
        counts.released > 0,
        "half the upstream answers fail: {counts:?}"
    );
}

#[test]
fn an_invoice_of_a_killed_gateway_is_paid_and_used_after_its_restart() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::start(false);
    let mut gateway = Gateway::start(dir.path(), &upstream);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = http();
    let url = format!("{}{PATH}", gateway.base());
    let mut doings = Doings::default();
    let challenge = runtime
        .block_on(send_when_up(|| http.get(&url), &mut doings))
        .expect("a challenge");
    assert_eq!(challenge.status, 402, "{}", challenge.body);

    // The process that issued the invoice is gone; the next one pays it (the preimage derives
    // from the node key in the data directory) and honours the token (the same root key).
    gateway.kill_and_restart();
    let invoice = challenge.body["invoice"].as_str().unwrap();
    let paid = runtime
        .block_on(send_when_up(
            || {
                http.post(format!("{}/_plannt/dev/pay", gateway.base()))
                    .json(&json!({"invoice": invoice, "account": "late"}))
            },
            &mut doings,
        ))
        .expect("a payment");
    assert_eq!(paid.status, 200, "{}", paid.body);
    let mut token = Token {
        hash: challenge.body["payment_hash"].as_str().unwrap().to_string(),
        credential: format!(
            "L402 {}:{}",
            challenge.body["macaroon"].as_str().unwrap(),
            paid.body["preimage"].as_str().unwrap()
        ),
        outcomes: Vec::new(),
    };
    let base = gateway.base();
    let first = runtime.block_on(present(&http, &base, &mut token, &mut doings));
    assert_eq!(first, Outcome::Accepted { body_cut: false }, "{token:?}");
    gateway.kill_and_restart();
    let again = runtime.block_on(present(&http, &base, &mut token, &mut doings));
    assert_eq!(again, Outcome::Replayed, "{token:?}");
    let other = format!("{PATH}?again=1");
    let refused = runtime.block_on(present_at(&http, &base, &other, &mut token, &mut doings));
    assert_eq!(refused, Outcome::Spent, "{token:?}");
    assert_eq!(upstream.answered()[&token.hash].ok, 1);
}
