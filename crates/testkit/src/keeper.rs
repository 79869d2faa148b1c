//! A gateway in front of another server (the hostile L402 server, say) that keeps paid answers
//! as Plannt's gateway does, and loses the first one on purpose: what a client that retries a
//! paid request whose answer was lost is tested against.
//!
//! The retry contract it follows: an answer the upstream committed (`x-l402: spent`, or a 2xx
//! from an upstream that speaks only MPP or x402) is kept
//! with its credential and request (method, target, SHA-256 of the body); the same credential
//! presented again for the same request gets it back with `x-l402: replayed`, and the upstream
//! is not called; anything else goes to the upstream (a spent credential there gets its 402).
//! The first paid request meets its [`Fault`]: its connection cut before the answer, a `409`
//! with `x-l402: pending`, the answer forgotten, the connection held until the test releases
//! it, the body broken off midway, or both connections closed once the test releases them (in
//! front of a `plannt serve` that keeps answers itself).
//!
//! HTTP/1.1 only, one request per connection (`connection: close`), bodies by
//! `content-length`: what Plannt's client sends.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use url::Url;

/// What happens to the first paid request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forwarded and its answer kept; the connection is closed before any answer.
    Cut,
    /// Forwarded and its answer kept; answered `409`, `x-l402: pending`, `Retry-After: 1`, as a
    /// second try is while the first is in flight.
    Pending,
    /// Forwarded, its answer not kept (too large, say); the connection is closed unanswered.
    Forget,
    /// Forwarded and its answer kept; the connection is held unanswered until
    /// [`KeeperShared::release`], then closed.
    Hold,
    /// Forwarded and its answer kept; the status, the headers and half the body are sent, then
    /// the connection is closed.
    BreakBody,
    /// Sent upstream, both connections held until [`KeeperShared::release`] and then closed,
    /// nothing kept here: the upstream (a gateway that keeps answers itself) finishes on its own.
    HangUp,
    /// None: every request is forwarded and answered.
    None,
}

/// What the keeper shares with the test.
pub struct KeeperShared {
    fault: Mutex<Fault>,
    /// Paid requests (carrying a credential) that reached the keeper.
    pub paid_requests: AtomicU64,
    /// Answers given back from what was kept, without calling the upstream.
    pub replayed: AtomicU64,
    /// Set once the held request was forwarded (and, for [`Fault::Hold`], its answer kept).
    pub holding: AtomicBool,
    released: AtomicBool,
    kept: Mutex<HashMap<[u8; 32], Vec<u8>>>,
}

impl KeeperShared {
    /// Lets the held request's connection close ([`Fault::Hold`], [`Fault::HangUp`]).
    pub fn release(&self) {
        self.released.store(true, Ordering::SeqCst);
    }
}

/// The keeping gateway on a loopback port. It stops, and closes its connections, when dropped.
pub struct Keeper {
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it shares with the test.
    pub shared: Arc<KeeperShared>,
    task: JoinHandle<()>,
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Keeper {
    /// A keeper in front of `upstream`, meeting the first paid request with `fault`.
    pub async fn start(upstream: SocketAddr, fault: Fault) -> Keeper {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(KeeperShared {
            fault: Mutex::new(fault),
            paid_requests: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
            holding: AtomicBool::new(false),
            released: AtomicBool::new(false),
            kept: Mutex::new(HashMap::new()),
        });
        let state = shared.clone();
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                connections.spawn(serve(stream, upstream, state.clone()));
            }
        });
        Keeper { addr, shared, task }
    }

    /// A URL on this keeper.
    pub fn url(&self, path: &str) -> Url {
        Url::parse(&format!("http://{}{path}", self.addr)).expect("url")
    }
}

/// A request as read: its head's lines and its body.
struct Read {
    lines: Vec<String>,
    body: Vec<u8>,
}

impl Read {
    fn header(&self, name: &str) -> Option<&str> {
        self.lines.iter().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The credential it carries, in any dialect.
    fn credential(&self) -> Option<String> {
        let auth = self.header("authorization").filter(|v| {
            v.starts_with("L402 ") || v.starts_with("LSAT ") || v.starts_with("Payment ")
        });
        auth.or(self.header("payment-signature"))
            .map(str::to_string)
    }

    /// The request as sent upstream: `connection: close`.
    fn to_upstream(&self) -> Vec<u8> {
        let mut out = String::new();
        for line in &self.lines {
            if line.to_ascii_lowercase().starts_with("connection:") {
                continue;
            }
            out += line;
            out += "\r\n";
        }
        out += "connection: close\r\n\r\n";
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// Where the head ends (the index after its blank line).
fn head_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}

async fn read_request(stream: &mut TcpStream) -> Option<Read> {
    let mut seen = Vec::new();
    let mut buffer = [0u8; 8192];
    let end = loop {
        if let Some(end) = head_end(&seen) {
            break end;
        }
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => seen.extend_from_slice(&buffer[..n]),
        }
    };
    let head = String::from_utf8_lossy(&seen[..end - 4]).into_owned();
    let lines: Vec<String> = head.split("\r\n").map(str::to_string).collect();
    let mut read = Read {
        lines,
        body: seen[end..].to_vec(),
    };
    let length: usize = read
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while read.body.len() < length {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => read.body.extend_from_slice(&buffer[..n]),
        }
    }
    Some(read)
}

/// Sends `request` to the upstream and reads its whole answer (it closes the connection).
async fn forward(upstream: SocketAddr, request: &Read) -> Vec<u8> {
    let mut stream = TcpStream::connect(upstream).await.expect("upstream");
    stream
        .write_all(&request.to_upstream())
        .await
        .expect("write upstream");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    answer
}

/// The answer with `x-l402: replayed` for its `x-l402` and `connection: close`.
fn replayed(answer: &[u8]) -> Vec<u8> {
    let end = head_end(answer).unwrap_or(answer.len());
    let head = String::from_utf8_lossy(&answer[..end]).into_owned();
    let mut out = String::new();
    for line in head.split("\r\n").filter(|l| !l.is_empty()) {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("x-l402") || lower.starts_with("connection:") {
            continue;
        }
        out += line;
        out += "\r\n";
    }
    out += "x-l402: replayed\r\nconnection: close\r\n\r\n";
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&answer[end..]);
    bytes
}

/// Whether the upstream committed the credential: `x-l402: spent`, or a 2xx (an upstream that
/// speaks MPP or x402 only).
fn committed(answer: &[u8]) -> bool {
    let end = head_end(answer).unwrap_or(answer.len());
    let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
    head.starts_with("http/1.1 2") || head.contains("\r\nx-l402: spent")
}

/// The contract's answer to a credential whose first request is still in flight.
fn pending() -> String {
    let body = r#"{"error":"Conflict","reason":"in_progress","message":"this credential's request is still in flight: send the same credential again shortly"}"#;
    format!(
        "HTTP/1.1 409 Conflict\r\ncontent-type: application/json\r\nx-l402: pending\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

async fn serve(mut stream: TcpStream, upstream: SocketAddr, shared: Arc<KeeperShared>) {
    let Some(request) = read_request(&mut stream).await else {
        return;
    };
    let Some(credential) = request.credential() else {
        let answer = forward(upstream, &request).await;
        let _ = stream.write_all(&answer).await;
        return;
    };
    let mut key = Sha256::new();
    key.update(credential.as_bytes());
    key.update([0]);
    key.update(request.lines[0].as_bytes());
    key.update([0]);
    key.update(Sha256::digest(&request.body));
    let key: [u8; 32] = key.finalize().into();
    let kept = shared.kept.lock().expect("kept").get(&key).cloned();
    if let Some(answer) = kept {
        shared.replayed.fetch_add(1, Ordering::SeqCst);
        let _ = stream.write_all(&replayed(&answer)).await;
        return;
    }
    let first = shared.paid_requests.fetch_add(1, Ordering::SeqCst) == 0;
    let fault = if first {
        *shared.fault.lock().expect("fault")
    } else {
        Fault::None
    };
    if fault == Fault::HangUp {
        let mut upstream = TcpStream::connect(upstream).await.expect("upstream");
        let _ = upstream.write_all(&request.to_upstream()).await;
        let _ = upstream.flush().await;
        shared.holding.store(true, Ordering::SeqCst);
        while !shared.released.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        return;
    }
    let answer = forward(upstream, &request).await;
    if committed(&answer) && fault != Fault::Forget {
        shared
            .kept
            .lock()
            .expect("kept")
            .insert(key, answer.clone());
    }
    match fault {
        Fault::None => {
            let _ = stream.write_all(&answer).await;
        }
        Fault::Cut | Fault::Forget | Fault::HangUp => {}
        Fault::Pending => {
            let _ = stream.write_all(pending().as_bytes()).await;
        }
        Fault::Hold => {
            shared.holding.store(true, Ordering::SeqCst);
            while !shared.released.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Fault::BreakBody => {
            let end = head_end(&answer).unwrap_or(answer.len());
            let half = end + (answer.len() - end) / 2;
            let _ = stream.write_all(&answer[..half]).await;
        }
    }
    // Dropping the stream closes the connection.
}
