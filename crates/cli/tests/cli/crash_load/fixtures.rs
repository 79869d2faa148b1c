//! The two processes of the crash tests: an upstream of the test's own that counts what it
//! answered for each payment hash, and `plannt serve` in front of it, killed and started again
//! on the same port, data directory and root key.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use plannt_testkit::free_port;
use serde_json::json;

use crate::cluster::Serve;

/// The root key of every start of the gateway.
const ROOT_KEY: &str = "0c1d2e3f405162738495a6b7c8d9eafb0c1d2e3f405162738495a6b7c8d9eaf1";
/// The priced route, forwarded to the test's upstream.
pub(super) const PATH: &str = "/v1/work";

// --- the upstream ------------------------------------------------------------------------------

/// What the upstream answered for one payment hash.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Answered {
    pub(super) ok: u32,
    pub(super) failed: u32,
}

/// A plain HTTP/1.1 server on loopback, a thread per connection: answers
/// `{"served":"<x-l402-payment-hash>"}` after a few milliseconds (so kills find claims pending),
/// or, when `failing_half`, a 500 to every other request. It records each answer before sending
/// it.
pub(super) struct Upstream {
    port: u16,
    stop: Arc<AtomicBool>,
    answered: Arc<Mutex<HashMap<String, Answered>>>,
    thread: Option<JoinHandle<()>>,
}

impl Upstream {
    pub(super) fn start(failing_half: bool) -> Upstream {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(Mutex::new(HashMap::new()));
        let count = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, answered) = (stop.clone(), answered.clone());
            std::thread::spawn(move || {
                // Ends when the upstream is dropped: it sets `stop` and connects once.
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (answered, count) = (answered.clone(), count.clone());
                    std::thread::spawn(move || {
                        answer(stream, failing_half, &count, &answered);
                    });
                }
            })
        };
        Upstream {
            port,
            stop,
            answered,
            thread: Some(thread),
        }
    }

    pub(super) fn answered(&self) -> HashMap<String, Answered> {
        self.answered.lock().unwrap().clone()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn answer(
    mut stream: TcpStream,
    failing_half: bool,
    count: &AtomicU64,
    answered: &Mutex<HashMap<String, Answered>>,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut buffer = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > 65_536 {
            return;
        }
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buffer[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head);
    let hash = text
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("x-l402-payment-hash")
                .then(|| value.trim().to_string())
        })
        .unwrap_or_default();
    let n = count.fetch_add(1, Ordering::SeqCst);
    let fail = failing_half && n % 2 == 1;
    std::thread::sleep(Duration::from_millis(2 + n % 5));
    let (status, body) = if fail {
        (
            "500 Internal Server Error",
            json!({"error": "upstream failed"}),
        )
    } else {
        ("200 OK", json!({"served": hash}))
    };
    // Recorded before it is sent: the gateway cannot have seen an answer not counted here.
    {
        let mut answered = answered.lock().unwrap();
        let entry = answered.entry(hash).or_default();
        if fail {
            entry.failed += 1;
        } else {
            entry.ok += 1;
        }
    }
    let body = body.to_string();
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
}

// --- the gateway -------------------------------------------------------------------------------

/// `plannt serve` on the SQLite store with one route to the upstream, on a fixed port, with the
/// same data directory and root key at every start.
pub(super) struct Gateway {
    serve: Serve,
    data_dir: PathBuf,
    config: PathBuf,
    port: u16,
    pub(super) restarts: u64,
}

impl Gateway {
    pub(super) fn start(dir: &Path, upstream: &Upstream) -> Gateway {
        let data_dir = dir.join("gateway");
        std::fs::create_dir_all(&data_dir).unwrap();
        let config = dir.join("plannt.toml");
        std::fs::write(
            &config,
            format!(
                "[[routes]]\nid = \"work\"\nmethod = \"GET\"\npath = \"{PATH}\"\n\
                 price_sats = 21\nupstream = \"http://127.0.0.1:{}\"\n\n\
                 [[routes]]\npath = \"/status\"\nhandler = \"status\"\n",
                upstream.port
            ),
        )
        .unwrap();
        let port = free_port();
        let serve = Gateway::spawn(&data_dir, &config, port);
        Gateway {
            serve,
            data_dir,
            config,
            port,
            restarts: 0,
        }
    }

    fn spawn(data_dir: &Path, config: &Path, port: u16) -> Serve {
        let config = config.to_str().unwrap();
        Serve::start_at(
            data_dir,
            port,
            &["--config", config, "--store", "sqlite"],
            &[("PLANNT_ROOT_KEY", ROOT_KEY)],
        )
    }

    /// SIGKILL, then a new process on the same port and files, ready.
    pub(super) fn kill_and_restart(&mut self) {
        self.serve.stop();
        self.serve = Gateway::spawn(&self.data_dir, &self.config, self.port);
        self.restarts += 1;
    }

    pub(super) fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every log of every start, oldest first.
    pub(super) fn logs(&self) -> String {
        (0..=self.restarts)
            .map(|n| {
                std::fs::read_to_string(self.data_dir.join(format!("serve.{n}.log")))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The pending claims the starts released, as their logs say.
    pub(super) fn released_at_start(&self) -> u64 {
        self.logs()
            .lines()
            .filter(|line| line.contains("released pending claims"))
            .map(|line| {
                let after = line.split("released=").nth(1).unwrap_or_default();
                let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
                digits
                    .parse::<u64>()
                    .unwrap_or_else(|_| panic!("no count in {line:?}"))
            })
            .sum()
    }
}
