//! Serving connections within bounds: a slow or idle client cannot hold the gateway's sockets.
//!
//! - **Header-read timeout**: a connection must send a request's whole header block within
//!   `header_read_timeout` of opening, and again of each answer ending (hyper starts the timer
//!   whenever the connection waits for a request, so it bounds an idle keep-alive connection
//!   too), or it is closed.
//! - **Caps**: at most `max_connections` at once, and at most `max_per_address` from one client
//!   address (an IPv6 client by its /64); a connection over a cap is answered 503 or 429 at once
//!   and closed. Addresses of trusted reverse proxies count only toward the global cap.
//! - **Shutdown**: no new connections; each open one finishes the request it is serving and
//!   closes.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::ServiceExt;

use crate::forwarded::TrustedProxies;
use crate::limiter::client_key;

/// The bounds on connections.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// The longest a connection may take to send a request's headers, counted from when it
    /// opens or its previous answer ends.
    pub header_read_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// Connections open at once from one client address.
    pub max_per_address: usize,
    /// Reverse proxies, which carry many clients' connections: no per-address cap.
    pub trusted_proxies: TrustedProxies,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            max_connections: default_max_connections(),
            max_per_address: 256,
            trusted_proxies: TrustedProxies::default(),
        }
    }
}

/// The most connections the process's file descriptors allow: its soft limit is first raised to
/// the hard one, then each connection is given two descriptors (its own and one to an upstream)
/// with 64 kept for files, the store and the Lightning backend.
pub fn default_max_connections() -> usize {
    let limit = rlimit::increase_nofile_limit(u64::MAX)
        .or_else(|_| rlimit::getrlimit(rlimit::Resource::NOFILE).map(|(soft, _)| soft))
        .unwrap_or(1024);
    let usable = limit.saturating_sub(64) / 2;
    usize::try_from(usable)
        .unwrap_or(usize::MAX)
        .clamp(16, 10_000)
}

/// Who holds how many connections.
#[derive(Default)]
struct Counts {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// Why a connection is turned away.
enum Over {
    Total,
    Address,
}

/// One admitted connection; dropping it frees its place.
struct Slot {
    counts: Arc<Mutex<Counts>>,
    key: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().expect("connection counts lock");
        counts.total -= 1;
        if let Some(key) = self.key
            && let Some(n) = counts.by_address.get_mut(&key)
        {
            *n -= 1;
            if *n == 0 {
                counts.by_address.remove(&key);
            }
        }
    }
}

fn admit(
    counts: &Arc<Mutex<Counts>>,
    limits: &ConnectionLimits,
    peer: IpAddr,
) -> Result<Slot, Over> {
    let mut guard = counts.lock().expect("connection counts lock");
    if guard.total >= limits.max_connections {
        return Err(Over::Total);
    }
    let key = (!limits.trusted_proxies.contains(peer)).then(|| client_key(peer));
    if let Some(key) = key {
        let n = guard.by_address.entry(key).or_insert(0);
        if *n >= limits.max_per_address {
            return Err(Over::Address);
        }
        *n += 1;
    }
    guard.total += 1;
    Ok(Slot {
        counts: counts.clone(),
        key,
    })
}

/// Answers a connection over a cap and closes it. A new socket's send buffer is empty, so the
/// short answer is written without waiting; if not, the connection is just closed.
fn turn_away(stream: TcpStream, over: Over) {
    let (status, title, message) = match over {
        Over::Total => (
            "503 Service Unavailable",
            "Service Unavailable",
            "the gateway has too many connections open",
        ),
        Over::Address => (
            "429 Too Many Requests",
            "Too Many Requests",
            "too many connections are open from your address",
        ),
    };
    let body = format!(r#"{{"error":"{title}","message":"{message}"}}"#);
    let answer = format!(
        "HTTP/1.1 {status}\r\nConnection: close\r\nRetry-After: 5\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(answer.as_bytes());
}

/// Serves `router` on `listener` within `limits` until `shutdown` resolves, then waits for every
/// open connection to finish the request it is serving.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let counts = Arc::new(Mutex::new(Counts::default()));
    // Each connection holds a receiver: the send tells them to finish, and the sender sees
    // every receiver gone once they all have.
    let (stop, stopped) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_per_connection(&e) => continue,
                Err(e) => {
                    // Out of descriptors or memory: wait rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        let slot = match admit(&counts, &limits, peer.ip()) {
            Ok(slot) => slot,
            Err(over) => {
                turn_away(stream, over);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(
            stream,
            peer,
            router.clone(),
            limits.header_read_timeout,
            stopped.clone(),
            slot,
        ));
    }
    drop(listener);
    let _ = stop.send(true);
    drop(stopped);
    stop.closed().await;
    Ok(())
}

fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    header_read_timeout: Duration,
    mut stop: watch::Receiver<bool>,
    _slot: Slot,
) {
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(request)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::trace!(error = %e, %peer, "connection ended with an error");
            }
        }
        _ = async { stop.wait_for(|stop| *stop).await.map(|_| ()) } => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
