//! A few seconds of the load harness (`plannt-load`, bench/load) against two real `plannt serve`:
//! paid traffic beside replays, a challenge flood and garbage credentials, each from a loopback
//! address of its own. Asserts what each gets (200 exactly once, 402 spent, 429 after the burst,
//! 401) and that the `plannt_spent_tokens` gauge falls back to zero once the short-lived tokens
//! are purged: behaviour only, never a time or a throughput (bench/flood.sh and bench/soak.sh
//! measure those).

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use plannt_load::{Client, Kind, Plan, Role, Supply};
use plannt_testkit::process::clean_command;

use crate::PLANNT;

/// The root key both gateways share, so the mint's tokens verify on the gateway under load.
const ROOT_KEY: &str = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";

/// A `plannt serve` on a free loopback port, killed when dropped.
struct Gateway {
    child: Child,
    addr: SocketAddr,
    log: std::path::PathBuf,
}

impl Gateway {
    fn start(dir: &Path, name: &str, envs: &[(&str, &str)]) -> Gateway {
        let data = dir.join(name);
        std::fs::create_dir_all(&data).unwrap();
        let log = dir.join(format!("{name}.log"));
        let mut command = clean_command(PLANNT);
        command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--store",
                "memory",
                "--log-json",
            ])
            .env("PLANNT_DATA_DIR", &data)
            .env("PLANNT_ROOT_KEY", ROOT_KEY)
            // Tokens valid 6 s (5 to pay, 1 more to use): the gateway purges every 6 s.
            .env("PLANNT_INVOICE_EXPIRY_SECS", "5")
            .env("PLANNT_TOKEN_LIFETIME_SECS", "1")
            // The replay role presents spent tokens for the same request again: with kept
            // answers that is the kept answer, not a refusal; this test checks the refusal.
            .env("PLANNT_KEEP_ANSWER_BYTES", "0")
            .env("RUST_LOG", "warn,plannt=info")
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap());
        let mut child = command.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let found = text
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|v| {
                    v["message"] == "plannt gateway listening"
                        || v["fields"]["message"] == "plannt gateway listening"
                })
                .and_then(|v| {
                    v["addr"]
                        .as_str()
                        .or(v["fields"]["addr"].as_str())
                        .map(str::to_string)
                });
            if let Some(addr) = found {
                break addr.parse().unwrap();
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("plannt serve ({name}) exited ({status}):\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "plannt serve ({name}) did not start in 60 s:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        Gateway { child, addr, log }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn role(kind: Kind, last_octet: u8, connections: usize, rate: f64) -> Role {
    Role {
        kind,
        source: Ipv4Addr::new(127, 0, 0, last_octet),
        connections,
        rate: Some(rate),
    }
}

#[test]
fn paid_traffic_beside_replays_a_flood_and_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let mint = Gateway::start(dir.path(), "mint", &[("PLANNT_CHALLENGES_PER_SECOND", "0")]);
    let gateway = Gateway::start(
        dir.path(),
        "gateway",
        &[
            ("PLANNT_CHALLENGES_PER_SECOND", "5"),
            ("PLANNT_CHALLENGE_BURST", "20"),
        ],
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let plan = Plan {
        gateway: gateway.addr,
        path: "/v1/demo".into(),
        duration: Duration::from_secs(4),
        roles: vec![
            role(Kind::Paid, 1, 2, 40.0),
            role(Kind::Flood, 2, 2, 200.0),
            role(Kind::Garbage, 3, 1, 100.0),
            role(Kind::Replay, 4, 1, 10.0),
        ],
        supply: Arc::new(Supply::During {
            mint: mint.addr,
            buyers: 2,
        }),
    };
    let began = Instant::now();
    let pid = gateway.child.id();
    let (outcome, samples) = runtime.block_on(plannt_load::run_sampled(
        &plan,
        Some(pid),
        Duration::from_millis(250),
        |_| {},
    ));
    let elapsed = began.elapsed().as_secs_f64();
    let logs = || {
        format!(
            "gateway log:\n{}",
            std::fs::read_to_string(&gateway.log).unwrap_or_default()
        )
    };
    for (kind, stats) in &outcome.roles {
        eprintln!("{}: {}", kind.name(), stats.counts_text());
        assert_eq!(
            stats.errors,
            0,
            "{}: {} ({})",
            kind.name(),
            stats.counts_text(),
            logs()
        );
    }

    // Every paid request: 200, its token marked spent.
    let paid = &outcome.roles[&Kind::Paid];
    assert!(paid.answered() > 0, "no paid request was made");
    assert_eq!(
        paid.count("200"),
        paid.answered(),
        "paid: {}",
        paid.counts_text()
    );
    assert_eq!(paid.not_marked_spent, 0, "paid 200s without x-l402: spent");

    // And only once: the same tokens again get 402 spent (expired once past their 6 s, 429 once
    // the replaying address has used up its challenges), never 200.
    let replay = &outcome.roles[&Kind::Replay];
    assert!(
        replay.count("402 spent") > 0,
        "replay: {}",
        replay.counts_text()
    );
    assert_eq!(
        replay.count("402 spent") + replay.count("402 expired") + replay.count("429"),
        replay.answered(),
        "replay: {}",
        replay.counts_text()
    );

    // The flood: challenges for the burst and the rate, then 429.
    let flood = &outcome.roles[&Kind::Flood];
    let (challenges, limited) = (flood.count("402"), flood.count("429"));
    assert_eq!(
        challenges + limited,
        flood.answered(),
        "flood: {}",
        flood.counts_text()
    );
    assert!(challenges >= 20, "flood: {}", flood.counts_text());
    assert!(
        challenges as f64 <= 20.0 + 5.0 * (elapsed + 1.0),
        "flood got more challenges than burst + rate allow: {}",
        flood.counts_text()
    );
    assert!(limited > 0, "flood: {}", flood.counts_text());

    // Garbage: 401 only.
    let garbage = &outcome.roles[&Kind::Garbage];
    assert!(garbage.answered() > 0);
    assert_eq!(
        garbage.count("401"),
        garbage.answered(),
        "garbage: {}",
        garbage.counts_text()
    );
    for reason in ["401 malformed", "401 bad_preimage"] {
        assert!(
            garbage.count(reason) > 0,
            "garbage: {}",
            garbage.counts_text()
        );
    }

    // The sampler saw the process and the gauge rise.
    assert!(
        samples.iter().all(|s| s.rss_kib > 0),
        "no RSS read for pid {pid}"
    );
    let most = samples.iter().filter_map(|s| s.spent).max();
    assert!(
        most.is_some_and(|n| n > 0),
        "the gauge never rose: {samples:?}"
    );

    // Then it falls to zero: the tokens expire 6 s after issue and are purged every 6 s.
    let fell = runtime.block_on(async {
        let mut client = Client::new(Ipv4Addr::LOCALHOST, gateway.addr);
        for _ in 0..120 {
            if plannt_load::spent_gauge(&mut client).await == Some(0) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        false
    });
    assert!(
        fell,
        "the spent-set gauge did not fall to 0 within 30 s ({})",
        logs()
    );
}
